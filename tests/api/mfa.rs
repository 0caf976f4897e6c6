//! A second factor: enrolling an authenticator app, logging in with its
//! codes or a recovery code, and the attacks on each step (replay, race,
//! guessing, forged tokens).

use std::sync::Arc;
use std::time::Duration;

use poem::http::Method;
use secrecy::SecretBox;
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, Reply, Store, TestApp, claims_of};
use crate::on_both_stores;

on_both_stores!(
    enrolling_needs_the_password_and_changes_nothing_until_confirmed,
    confirming_turns_it_on_ends_the_other_sessions_and_shows_ten_recovery_codes,
    a_login_needs_the_code_after_the_password_and_its_tokens_say_so_across_refreshes,
    a_wrong_password_is_still_invalid_grant_and_reveals_no_mfa_token,
    a_code_is_accepted_once_per_account,
    a_code_one_step_early_or_late_is_accepted_and_two_steps_are_not,
    instances_racing_the_same_code_let_exactly_one_login_through,
    a_recovery_code_signs_in_once,
    forged_expired_used_and_foreign_mfa_tokens_are_invalid_grant,
    one_mfa_token_takes_five_wrong_codes_at_most,
    thirty_wrong_codes_are_throttled_and_never_reach_the_right_one,
    removing_needs_the_password_and_a_code,
    enrolment_conflicts_are_409,
    a_password_reset_keeps_the_second_factor,
    an_operator_reset_removes_it_and_is_audited,
    the_secret_is_sealed_and_the_codes_and_tokens_hashed_at_rest,
    bad_second_factor_bodies_are_clear_4xx,
);

pub(crate) const MFA_OTP: &str = "urn:gatehouse:grant-type:mfa-otp";
pub(crate) const MFA_RECOVERY_CODE: &str = "urn:gatehouse:grant-type:mfa-recovery-code";

/// An account with a confirmed authenticator app.
pub(crate) struct Enrolled {
    /// The session that enrolled.
    pub tokens: Reply,
    /// The TOTP secret, base32.
    pub secret: String,
    pub recovery_codes: Vec<String>,
}

/// The code of `secret` (base32) at the app's clock, `steps` steps away.
pub(crate) fn code(app: &TestApp, secret: &str, steps: i64) -> String {
    let bytes = totp_rs::Secret::try_from_base32(secret)
        .expect("a base32 secret")
        .as_bytes()
        .to_vec();
    let bytes: [u8; 20] = bytes.try_into().expect("a 160-bit secret");
    let now = app.state.clock.now().as_secs() + steps * 30;
    gatehouse::auth::mfa::totp::code_at(&SecretBox::new(Box::new(bytes)), now as u64)
}

/// A code of none of the steps the server accepts now.
pub(crate) fn wrong_code(app: &TestApp, secret: &str, seed: u32) -> String {
    let valid: Vec<_> = (-1..=1).map(|steps| code(app, secret, steps)).collect();
    (seed..)
        .map(|n| format!("{:06}", (n * 7919 + 12345) % 1_000_000))
        .find(|candidate| !valid.contains(candidate))
        .expect("a wrong code")
}

/// Registers `username`, logs in, enrols and confirms an app; the clock is
/// frozen and then moved to the next step, so the next code is fresh.
pub(crate) async fn enrolled(app: &TestApp, username: &str) -> Enrolled {
    app.clock.freeze();
    let tokens = app.user_with_tokens(username).await;
    let access = tokens.str("access_token").to_owned();
    let started = start(app, &access, PASSWORD).await;
    started.assert_status(200);
    let secret = started.str("secret").to_owned();
    let confirmed = confirm(app, &access, &code(app, &secret, 0)).await;
    confirmed.assert_status(200);
    let recovery_codes = confirmed.body["recovery_codes"]
        .as_array()
        .expect("recovery codes")
        .iter()
        .map(|code| code.as_str().unwrap().to_owned())
        .collect();
    app.clock.advance(Duration::from_secs(30));
    Enrolled {
        tokens,
        secret,
        recovery_codes,
    }
}

pub(crate) async fn start(app: &TestApp, access: &str, password: &str) -> Reply {
    let body = json!({"current_password": password});
    app.json_with_token(Method::POST, "/users/me/mfa/totp", access, &body)
        .await
}

pub(crate) async fn confirm(app: &TestApp, access: &str, code: &str) -> Reply {
    let body = json!({"code": code});
    app.json_with_token(Method::POST, "/users/me/mfa/totp/confirm", access, &body)
        .await
}

async fn remove(app: &TestApp, access: &str, password: &str, code: &str) -> Reply {
    let body = json!({"current_password": password, "code": code});
    app.json_with_token(Method::DELETE, "/users/me/mfa/totp", access, &body)
        .await
}

/// The `mfa_token` of a password login that needs a second factor.
pub(crate) async fn mfa_token(app: &TestApp, username: &str) -> String {
    let answer = app.login(username, PASSWORD).await;
    answer.assert_error(403, "mfa_required");
    answer.str("mfa_token").to_owned()
}

/// The second step of the password grant, with a TOTP code.
pub(crate) async fn with_otp(app: &TestApp, mfa_token: &str, otp: &str) -> Reply {
    app.post_form(
        "/oauth/token",
        &[
            ("grant_type", MFA_OTP),
            ("mfa_token", mfa_token),
            ("otp", otp),
        ],
    )
    .await
}

async fn with_recovery_code(app: &TestApp, mfa_token: &str, code: &str) -> Reply {
    app.post_form(
        "/oauth/token",
        &[
            ("grant_type", MFA_RECOVERY_CODE),
            ("mfa_token", mfa_token),
            ("recovery_code", code),
        ],
    )
    .await
}

fn amr(tokens: &Reply) -> Value {
    claims_of(tokens.str("access_token"))["amr"].clone()
}

async fn enrolling_needs_the_password_and_changes_nothing_until_confirmed(store: Store) {
    let app = TestApp::spawn(store).await;
    let tokens = app.user_with_tokens("alice").await;
    let access = tokens.str("access_token");

    start(&app, access, "not my password")
        .await
        .assert_error(400, "invalid_current_password");
    let started = start(&app, access, PASSWORD).await;
    started.assert_status(200);
    assert_eq!(started.header("cache-control"), Some("no-store"));
    let secret = started.str("secret");
    assert_eq!(secret.len(), 32, "160 bits in base32: {secret}");
    assert_eq!(
        started.str("otpauth_uri"),
        format!("otpauth://totp/Gatehouse:alice?secret={secret}&issuer=Gatehouse")
    );
    assert!(started.str("qr_svg").contains("<svg"));

    app.login("alice", PASSWORD).await.assert_status(200);
    let me = app.me(access).await;
    assert_eq!(me.body["mfa_enabled"], false);
    // The enrolment waits 15 minutes, then a code no longer confirms it.
    app.clock.freeze();
    app.clock.advance(Duration::from_secs(16 * 60));
    let later = app.login("alice", PASSWORD).await;
    confirm(&app, later.str("access_token"), &code(&app, secret, 0))
        .await
        .assert_error(409, "mfa_not_started");
}

async fn confirming_turns_it_on_ends_the_other_sessions_and_shows_ten_recovery_codes(store: Store) {
    let app = TestApp::spawn(store).await;
    app.clock.freeze();
    let here = app.user_with_tokens("alice").await;
    let elsewhere = app.login("alice", PASSWORD).await;
    let bob = app.user_with_tokens("bob").await;
    let access = here.str("access_token");
    let started = start(&app, access, PASSWORD).await;
    let secret = started.str("secret");

    confirm(&app, access, &wrong_code(&app, secret, 1))
        .await
        .assert_error(400, "invalid_code");
    app.me(elsewhere.str("access_token"))
        .await
        .assert_status(200);

    let confirmed = confirm(&app, access, &code(&app, secret, 0)).await;
    confirmed.assert_status(200);
    assert_eq!(confirmed.header("cache-control"), Some("no-store"));
    let codes: Vec<_> = confirmed.body["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|code| code.as_str().unwrap())
        .collect();
    assert_eq!(codes.len(), 10);
    let distinct: std::collections::HashSet<_> = codes.iter().collect();
    assert_eq!(distinct.len(), 10);
    assert!(
        codes
            .iter()
            .all(|code| code.len() == 11 && &code[5..6] == "-")
    );

    app.assert_session_ended(&elsewhere).await;
    assert_eq!(app.me(access).await.body["mfa_enabled"], true);
    app.refresh(here.str("refresh_token"))
        .await
        .assert_status(200);
    app.me(bob.str("access_token")).await.assert_status(200);
    app.login("bob", PASSWORD).await.assert_status(200);
    app.login("alice", PASSWORD)
        .await
        .assert_error(403, "mfa_required");
}

async fn a_login_needs_the_code_after_the_password_and_its_tokens_say_so_across_refreshes(
    store: Store,
) {
    let app = TestApp::spawn(store).await;
    let alice = enrolled(&app, "alice").await;

    let answer = app.login("alice", PASSWORD).await;
    answer.assert_error(403, "mfa_required");
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    assert!(answer.body["error_description"].is_string());
    assert!(answer.body.get("access_token").is_none());
    let token = answer.str("mfa_token");
    let tokens = with_otp(&app, token, &code(&app, &alice.secret, 0)).await;
    tokens.assert_status(200);
    assert_eq!(amr(&tokens), json!(["pwd", "otp", "mfa"]));
    let refreshed = app.refresh(tokens.str("refresh_token")).await;
    refreshed.assert_status(200);
    assert_eq!(amr(&refreshed), json!(["pwd", "otp", "mfa"]));

    // The JSON twin, for SDKs.
    app.clock.advance(Duration::from_secs(30));
    let answer = app
        .post_json(
            "/auth/login",
            &json!({"username": "alice", "password": PASSWORD}),
        )
        .await;
    answer.assert_error(403, "mfa_required");
    let body = json!({"mfa_token": answer.str("mfa_token"), "otp": code(&app, &alice.secret, 0)});
    let twin = app.post_json("/auth/login/mfa", &body).await;
    twin.assert_status(200);
    assert_eq!(amr(&twin), json!(["pwd", "otp", "mfa"]));

    // The sessions list says how each signed in.
    let sessions = app
        .get_with_token("/users/me/sessions", twin.str("access_token"))
        .await;
    let listed: Vec<_> = sessions.body.as_array().unwrap().iter().collect();
    assert!(
        listed.iter().any(|s| s["amr"] == json!(["pwd"])),
        "{listed:?}"
    );
    assert_eq!(
        listed
            .iter()
            .filter(|s| s["amr"] == json!(["pwd", "otp", "mfa"]))
            .count(),
        2
    );
    let _ = alice.tokens;
}

async fn a_wrong_password_is_still_invalid_grant_and_reveals_no_mfa_token(store: Store) {
    let app = TestApp::spawn(store).await;
    enrolled(&app, "alice").await;
    for (username, password) in [("alice", "not my password"), ("nobody", PASSWORD)] {
        let answer = app.login(username, password).await;
        answer.assert_error(400, "invalid_grant");
        assert!(answer.body.get("mfa_token").is_none(), "{}", answer.body);
    }
}

async fn a_code_is_accepted_once_per_account(store: Store) {
    let app = TestApp::spawn(store).await;
    let alice = enrolled(&app, "alice").await;
    let now = code(&app, &alice.secret, 0);
    let first = mfa_token(&app, "alice").await;
    let second = mfa_token(&app, "alice").await;
    with_otp(&app, &first, &now).await.assert_status(200);
    // The same code again, with another login: refused.
    with_otp(&app, &second, &now)
        .await
        .assert_error(400, "invalid_grant");
    // So is the previous step's, still within the skew.
    let third = mfa_token(&app, "alice").await;
    with_otp(&app, &third, &code(&app, &alice.secret, -1))
        .await
        .assert_error(400, "invalid_grant");
    // The next step's code is new.
    app.clock.advance(Duration::from_secs(30));
    let fourth = mfa_token(&app, "alice").await;
    with_otp(&app, &fourth, &code(&app, &alice.secret, 0))
        .await
        .assert_status(200);
}

async fn a_code_one_step_early_or_late_is_accepted_and_two_steps_are_not(store: Store) {
    let app = TestApp::spawn(store).await;
    let alice = enrolled(&app, "alice").await;
    // Each accepted code moves the account on, so go from late to early.
    app.clock.advance(Duration::from_secs(300));
    for steps in [-2, 2] {
        let token = mfa_token(&app, "alice").await;
        with_otp(&app, &token, &code(&app, &alice.secret, steps))
            .await
            .assert_error(400, "invalid_grant");
    }
    for steps in [-1, 0, 1] {
        let token = mfa_token(&app, "alice").await;
        with_otp(&app, &token, &code(&app, &alice.secret, steps))
            .await
            .assert_status(200);
    }
}

async fn instances_racing_the_same_code_let_exactly_one_login_through(store: Store) {
    let app = Arc::new(TestApp::spawn(store).await);
    let alice = enrolled(&app, "alice").await;
    let other = Arc::new(app.another_instance(|_| {}).await);
    let otp = code(&app, &alice.secret, 0);
    let mut tokens = Vec::new();
    for _ in 0..8 {
        tokens.push(mfa_token(&app, "alice").await);
    }
    let racers: Vec<_> = tokens
        .into_iter()
        .enumerate()
        .map(|(at, token)| {
            let instance = if at % 2 == 0 {
                app.clone()
            } else {
                other.clone()
            };
            let otp = otp.clone();
            tokio::spawn(async move { with_otp(&instance, &token, &otp).await })
        })
        .collect();
    let mut statuses = Vec::new();
    for racer in racers {
        statuses.push(racer.await.unwrap().status.as_u16());
    }
    // One login; each loser spent a guess (past five, the throttle answers).
    statuses.sort_unstable();
    assert_eq!(statuses[0], 200, "{statuses:?}");
    assert!(
        statuses[1..]
            .iter()
            .all(|status| [400, 429].contains(status)),
        "{statuses:?}"
    );

    // One mfa_token raced with the right code and a recovery code: one
    // session (another account, whose counters the race above left alone).
    let bob = enrolled(&app, "bob").await;
    let token = mfa_token(&app, "bob").await;
    let otp = code(&app, &bob.secret, 0);
    let (a, b) = tokio::join!(
        with_otp(&app, &token, &otp),
        with_recovery_code(&other, &token, &bob.recovery_codes[0])
    );
    let mut statuses = [a.status.as_u16(), b.status.as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 400]);
}

async fn a_recovery_code_signs_in_once(store: Store) {
    let app = TestApp::spawn(store).await;
    let alice = enrolled(&app, "alice").await;
    let token = mfa_token(&app, "alice").await;
    let tokens = with_recovery_code(&app, &token, &alice.recovery_codes[0]).await;
    tokens.assert_status(200);
    assert_eq!(amr(&tokens), json!(["pwd", "mfa"]));
    let token = mfa_token(&app, "alice").await;
    with_recovery_code(&app, &token, &alice.recovery_codes[0])
        .await
        .assert_error(400, "invalid_grant");
    // Typed in capitals without the dash, another one works.
    let typed = alice.recovery_codes[1].to_uppercase().replace('-', "");
    let token = mfa_token(&app, "alice").await;
    with_recovery_code(&app, &token, &typed)
        .await
        .assert_status(200);
    // The JSON twin takes them too.
    let token = mfa_token(&app, "alice").await;
    let body = json!({"mfa_token": token, "recovery_code": alice.recovery_codes[2]});
    app.post_json("/auth/login/mfa", &body)
        .await
        .assert_status(200);
    let used = app
        .query_strings(
            "SELECT CAST(COUNT(*) AS CHAR) FROM mfa_recovery_codes WHERE used_at IS NOT NULL",
        )
        .await;
    assert_eq!(used, ["3"]);
}

async fn forged_expired_used_and_foreign_mfa_tokens_are_invalid_grant(store: Store) {
    let app = TestApp::spawn(store).await;
    let alice = enrolled(&app, "alice").await;
    let otp = code(&app, &alice.secret, 0);
    for forged in ["", "x", &"A".repeat(43), &"é".repeat(60)] {
        let answer = with_otp(&app, forged, &otp).await;
        let expected = if forged.is_empty() {
            "invalid_request"
        } else {
            "invalid_grant"
        };
        answer.assert_error(400, expected);
    }
    // Expired: five minutes.
    let token = mfa_token(&app, "alice").await;
    app.clock.advance(Duration::from_secs(5 * 60 + 1));
    let otp = code(&app, &alice.secret, 0);
    with_otp(&app, &token, &otp)
        .await
        .assert_error(400, "invalid_grant");
    // Used.
    let token = mfa_token(&app, "alice").await;
    with_otp(&app, &token, &otp).await.assert_status(200);
    app.clock.advance(Duration::from_secs(30));
    let otp = code(&app, &alice.secret, 0);
    with_otp(&app, &token, &otp)
        .await
        .assert_error(400, "invalid_grant");
    // From another client: a registered app cannot finish the built-in
    // client's login.
    let client_id = "partner";
    let secret = app
        .register_client(client_id, true, &["password"], &["profile"])
        .await
        .expect("a confidential client's secret");
    let token = mfa_token(&app, "alice").await;
    let answer = app
        .post_form(
            "/oauth/token",
            &[
                ("grant_type", MFA_OTP),
                ("mfa_token", &token),
                ("otp", &otp),
                ("client_id", client_id),
                ("client_secret", &secret),
            ],
        )
        .await;
    answer.assert_error(400, "invalid_grant");
    // The token is still good for its own client.
    with_otp(&app, &token, &otp).await.assert_status(200);
}

async fn one_mfa_token_takes_five_wrong_codes_at_most(store: Store) {
    let app = TestApp::spawn(store).await;
    let alice = enrolled(&app, "alice").await;
    let token = mfa_token(&app, "alice").await;
    for seed in 0..5 {
        with_otp(&app, &token, &wrong_code(&app, &alice.secret, seed))
            .await
            .assert_error(400, "invalid_grant");
    }
    with_otp(&app, &token, &code(&app, &alice.secret, 0))
        .await
        .assert_error(400, "invalid_grant");
    // A new login (the account's counters were cleared by none of this).
    app.clock.advance(Duration::from_secs(20 * 60));
    let token = mfa_token(&app, "alice").await;
    with_otp(&app, &token, &code(&app, &alice.secret, 0))
        .await
        .assert_status(200);
}

async fn thirty_wrong_codes_are_throttled_and_never_reach_the_right_one(store: Store) {
    let app = TestApp::spawn(store).await;
    let alice = enrolled(&app, "alice").await;
    let mut statuses = Vec::new();
    let mut token = mfa_token(&app, "alice").await;
    for seed in 0..30 {
        if seed % 5 == 4 {
            token = mfa_token(&app, "alice").await;
        }
        let answer = with_otp(&app, &token, &wrong_code(&app, &alice.secret, seed)).await;
        statuses.push(answer.status.as_u16());
        if answer.status == 429 {
            assert!(answer.header("retry-after").is_some());
        }
    }
    // Five free failures, a sixth that blocks ahead of its check, then
    // nothing is checked until the block ends.
    assert_eq!(&statuses[..6], [400; 6], "{statuses:?}");
    assert!(
        statuses[6..].iter().all(|status| *status == 429),
        "{statuses:?}"
    );
    // Blocked: the right code is refused all the same, without being checked.
    let token = mfa_token(&app, "alice").await;
    with_otp(&app, &token, &code(&app, &alice.secret, 0))
        .await
        .assert_error(429, "too_many_attempts");
    let failed = app
        .query_strings("SELECT event FROM audit_events WHERE event = 'mfa_failed'")
        .await;
    assert!(failed.len() >= 5, "{failed:?}");
    // The block ends; the owner gets in.
    app.clock.advance(Duration::from_secs(60));
    let token = mfa_token(&app, "alice").await;
    with_otp(&app, &token, &code(&app, &alice.secret, 0))
        .await
        .assert_status(200);
}

async fn removing_needs_the_password_and_a_code(store: Store) {
    let app = TestApp::spawn(store).await;
    let alice = enrolled(&app, "alice").await;
    let access = alice.tokens.str("access_token");
    let otp = code(&app, &alice.secret, 0);
    remove(&app, access, "not my password", &otp)
        .await
        .assert_error(400, "invalid_current_password");
    remove(&app, access, PASSWORD, &wrong_code(&app, &alice.secret, 3))
        .await
        .assert_error(400, "invalid_code");
    remove(&app, access, PASSWORD, "zzzzz-zzzzz")
        .await
        .assert_error(400, "invalid_code");
    app.login("alice", PASSWORD)
        .await
        .assert_error(403, "mfa_required");
    remove(&app, access, PASSWORD, &otp)
        .await
        .assert_status(204);
    assert_eq!(app.me(access).await.body["mfa_enabled"], false);
    let tokens = app.login("alice", PASSWORD).await;
    tokens.assert_status(200);
    assert_eq!(amr(&tokens), json!(["pwd"]));
    remove(&app, access, PASSWORD, &otp)
        .await
        .assert_error(409, "mfa_not_enabled");

    // With a recovery code instead of the phone.
    let bob = enrolled(&app, "bob").await;
    remove(
        &app,
        bob.tokens.str("access_token"),
        PASSWORD,
        &bob.recovery_codes[9],
    )
    .await
    .assert_status(204);
    let removed = app
        .query_strings("SELECT event FROM audit_events WHERE event = 'mfa_disabled'")
        .await;
    assert_eq!(removed.len(), 2);
}

async fn enrolment_conflicts_are_409(store: Store) {
    let app = TestApp::spawn(store).await;
    let tokens = app.user_with_tokens("carol").await;
    confirm(&app, tokens.str("access_token"), "123456")
        .await
        .assert_error(409, "mfa_not_started");
    let alice = enrolled(&app, "alice").await;
    let access = alice.tokens.str("access_token");
    start(&app, access, PASSWORD)
        .await
        .assert_error(409, "mfa_already_enabled");
    confirm(&app, access, &code(&app, &alice.secret, 0))
        .await
        .assert_error(409, "mfa_already_enabled");
    // Starting twice: the second secret is the one that confirms.
    let bob = app.user_with_tokens("bob").await;
    let access = bob.str("access_token");
    let first = start(&app, access, PASSWORD).await;
    let second = start(&app, access, PASSWORD).await;
    assert_ne!(first.str("secret"), second.str("secret"));
    confirm(&app, access, &code(&app, first.str("secret"), 0))
        .await
        .assert_error(400, "invalid_code");
    confirm(&app, access, &code(&app, second.str("secret"), 0))
        .await
        .assert_status(200);
}

async fn a_password_reset_keeps_the_second_factor(store: Store) {
    let app = TestApp::spawn(store).await;
    let alice = enrolled(&app, "alice").await;
    let args = gatehouse::ResetLinkArgs {
        public_url: Some("http://gatehouse.test".into()),
        password_reset_url: None,
        ttl: Duration::from_secs(3600),
        issuer: None,
    };
    let link = gatehouse::reset_link("alice", &app.config.database, &args)
        .await
        .expect("a reset link");
    let token = link.split("token=").nth(1).expect("a token in the link");
    let new_password = "a brand new passphrase";
    app.post_json(
        "/auth/password-reset/confirm",
        &json!({"token": token, "new_password": new_password}),
    )
    .await
    .assert_status(204);
    let answer = app.login("alice", new_password).await;
    answer.assert_error(403, "mfa_required");
    with_otp(&app, answer.str("mfa_token"), &code(&app, &alice.secret, 0))
        .await
        .assert_status(200);
}

async fn an_operator_reset_removes_it_and_is_audited(store: Store) {
    let app = TestApp::spawn(store).await;
    enrolled(&app, "alice").await;
    app.register("bob", PASSWORD).await.assert_status(201);
    let database = &app.config.database;
    assert!(gatehouse::reset_user_mfa("ALICE", database).await.unwrap());
    assert!(!gatehouse::reset_user_mfa("bob", database).await.unwrap());
    assert!(matches!(
        gatehouse::reset_user_mfa("nobody", database).await,
        Err(gatehouse::StartError::UnknownUser(_))
    ));
    app.state.sessions.check().account_changed();
    let tokens = app.login("alice", PASSWORD).await;
    tokens.assert_status(200);
    assert_eq!(
        app.me(tokens.str("access_token")).await.body["mfa_enabled"],
        false
    );
    let events = app
        .query_strings("SELECT event FROM audit_events WHERE event = 'mfa_reset'")
        .await;
    assert_eq!(events, ["mfa_reset"]);
    let left = app
        .query_strings("SELECT CAST(COUNT(*) AS CHAR) FROM mfa_recovery_codes")
        .await;
    assert_eq!(left, ["0"]);
}

async fn the_secret_is_sealed_and_the_codes_and_tokens_hashed_at_rest(store: Store) {
    let app = TestApp::spawn(store).await;
    let alice = enrolled(&app, "alice").await;
    let token = mfa_token(&app, "alice").await;
    let sealed = app
        .query_strings("SELECT totp_sealed FROM users WHERE username = 'alice'")
        .await;
    let raw = totp_rs::Secret::try_from_base32(&alice.secret)
        .unwrap()
        .as_bytes()
        .to_vec();
    use base64::Engine as _;
    for encoding in [
        alice.secret.clone(),
        alice.secret.to_lowercase(),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&raw),
        base64::engine::general_purpose::STANDARD.encode(&raw),
    ] {
        assert!(!sealed[0].contains(&encoding), "{sealed:?}");
    }
    let mut stored = app
        .query_strings("SELECT code_hash FROM mfa_recovery_codes")
        .await;
    stored.extend(
        app.query_strings("SELECT token_hash FROM mfa_challenges")
            .await,
    );
    for code in &alice.recovery_codes {
        let plain = code.replace('-', "");
        assert!(stored.iter().all(|s| !s.contains(&plain)), "{code}");
    }
    assert!(stored.iter().all(|s| !s.contains(&token)));
    assert!(stored.iter().all(|s| s.len() == 64));
}

async fn bad_second_factor_bodies_are_clear_4xx(store: Store) {
    let app = TestApp::spawn(store).await;
    let alice = enrolled(&app, "alice").await;
    let access = alice.tokens.str("access_token");
    let token = mfa_token(&app, "alice").await;
    for body in [
        json!({"mfa_token": token}),
        json!({"mfa_token": token, "otp": "123456", "recovery_code": "ybndr-fg8ej"}),
        json!({"mfa_token": token, "otp": 123456}),
        json!({"otp": "123456"}),
        json!([]),
    ] {
        let answer = app.post_json("/auth/login/mfa", &body).await;
        answer.assert_status(400);
        assert!(answer.body["error"].is_string(), "{body}: {}", answer.body);
    }
    for otp in ["", "12345", "1234567", "abcdef", &"9".repeat(5000)] {
        let answer = with_otp(&app, &token, otp).await;
        assert_eq!(answer.status, 400, "{otp:?}: {}", answer.body);
    }
    let missing = app
        .post_form(
            "/oauth/token",
            &[("grant_type", MFA_RECOVERY_CODE), ("mfa_token", &token)],
        )
        .await;
    missing.assert_error(400, "invalid_request");
    for (method, path, body) in [
        (Method::POST, "/users/me/mfa/totp", json!({})),
        (
            Method::POST,
            "/users/me/mfa/totp",
            json!({"current_password": 1}),
        ),
        (
            Method::POST,
            "/users/me/mfa/totp/confirm",
            json!({"code": null}),
        ),
        (
            Method::DELETE,
            "/users/me/mfa/totp",
            json!({"current_password": PASSWORD}),
        ),
    ] {
        let answer = app.json_with_token(method, path, access, &body).await;
        answer.assert_status(400);
        assert!(answer.body["error"].is_string());
    }
    let no_token = app
        .post_json("/users/me/mfa/totp", &json!({"current_password": PASSWORD}))
        .await;
    no_token.assert_error(401, "invalid_token");
    // The token survived all of it (the wrong codes took 4 of its 5).
    with_otp(&app, &token, &code(&app, &alice.secret, 0))
        .await
        .assert_status(200);
}
