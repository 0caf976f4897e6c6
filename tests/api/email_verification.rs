//! Proving an address: the link registration mails, sending it again, and
//! changing the address (which takes effect when the new one is proven).

use poem::http::Method;
use serde_json::json;

use crate::helpers::{PASSWORD, Reply, SmtpSink, Store, TestApp};
use crate::on_both_stores;
use crate::password_reset::register_with_email;

on_both_stores!(
    registering_with_an_address_mails_a_link_that_verifies_it,
    another_link_can_be_asked_for_until_the_address_is_verified,
    a_changed_address_takes_effect_when_its_link_is_confirmed,
    the_old_verified_address_is_told_of_a_change,
    an_email_change_needs_the_current_password,
    a_verification_link_older_than_a_change_proves_nothing,
    verification_links_work_once,
);

async fn verify(app: &TestApp, token: &str) -> Reply {
    app.post_json("/auth/email/verify", &json!({"token": token}))
        .await
}

async fn change_email(app: &TestApp, access: &str, email: &str, password: &str) -> Reply {
    let body = json!({"email": email, "current_password": password});
    app.json_with_token(Method::PUT, "/users/me/email", access, &body)
        .await
}

async fn resend(app: &TestApp, access: &str) -> Reply {
    app.json_with_token(
        Method::POST,
        "/users/me/email/verification",
        access,
        &json!(null),
    )
    .await
}

/// The token of the last mail `sink` holds for `address`.
async fn last_token(app: &TestApp, sink: &SmtpSink, address: &str) -> String {
    app.deliver_mail().await;
    sink.mails_to(address)
        .last()
        .unwrap_or_else(|| panic!("a mail to {address}"))
        .token()
}

async fn registering_with_an_address_mails_a_link_that_verifies_it(store: Store) {
    let sink = SmtpSink::start().await;
    let app = TestApp::spawn_with_mail(store, &sink, |_| {}).await;
    register_with_email(&app, "alice", Some("alice@example.org")).await;
    let tokens = app.login("alice", PASSWORD).await;
    let me = app.me(tokens.str("access_token")).await;
    assert_eq!(me.body["email_verified"], false);

    app.deliver_mail().await;
    let mails = sink.mails_to("alice@example.org");
    assert_eq!(mails.len(), 1);
    assert_eq!(
        mails[0].subject(),
        "Confirm your email address for Gatehouse"
    );
    assert!(
        mails[0]
            .link()
            .starts_with("https://auth.gatehouse.test/account/verify-email?token="),
        "{}",
        mails[0].link()
    );
    assert!(mails[0].text().contains("24 hours"), "{}", mails[0].text());

    verify(&app, &mails[0].token()).await.assert_status(204);
    // At once, through the session's cached account.
    let me = app.me(tokens.str("access_token")).await;
    assert_eq!(me.body["email_verified"], true, "{}", me.body);
    assert_eq!(
        crate::rotation::audit_events(&app, "email_verified")
            .await
            .len(),
        1
    );
}

async fn another_link_can_be_asked_for_until_the_address_is_verified(store: Store) {
    let sink = SmtpSink::start().await;
    let app = TestApp::spawn_with_mail(store, &sink, |_| {}).await;
    register_with_email(&app, "alice", Some("alice@example.org")).await;
    register_with_email(&app, "bob", None).await;
    let alice = app.login("alice", PASSWORD).await;
    let bob = app.login("bob", PASSWORD).await;

    resend(&app, bob.str("access_token"))
        .await
        .assert_error(400, "no_email");
    resend(&app, alice.str("access_token"))
        .await
        .assert_status(202);
    app.deliver_mail().await;
    let mails = sink.mails_to("alice@example.org");
    assert_eq!(mails.len(), 2, "the registration's and the resent");
    // Either link works; the first spent retires the other.
    verify(&app, &mails[1].token()).await.assert_status(204);
    verify(&app, &mails[0].token())
        .await
        .assert_error(400, "invalid_token");
    resend(&app, alice.str("access_token"))
        .await
        .assert_error(409, "already_verified");
    resend(&app, "not a token")
        .await
        .assert_error(401, "invalid_token");
}

async fn a_changed_address_takes_effect_when_its_link_is_confirmed(store: Store) {
    let sink = SmtpSink::start().await;
    let app = TestApp::spawn_with_mail(store, &sink, |_| {}).await;
    register_with_email(&app, "alice", Some("alice@example.org")).await;
    let tokens = app.login("alice", PASSWORD).await;
    let access = tokens.str("access_token");

    change_email(&app, access, "alice@example.net", PASSWORD)
        .await
        .assert_status(202);
    let me = app.me(access).await;
    assert_eq!(me.body["email"], "alice@example.org", "not before the link");

    let token = last_token(&app, &sink, "alice@example.net").await;
    let mail = sink.mails_to("alice@example.net").pop().unwrap();
    assert_eq!(
        mail.subject(),
        "Confirm your new email address for Gatehouse"
    );
    verify(&app, &token).await.assert_status(204);
    let me = app.me(access).await;
    assert_eq!(me.body["email"], "alice@example.net");
    assert_eq!(me.body["email_verified"], true);
    // Resets now go to the new address.
    app.post_json("/auth/password-reset", &json!({"username": "alice"}))
        .await
        .assert_status(202);
    app.deliver_mail().await;
    assert!(
        sink.mails_to("alice@example.net")
            .iter()
            .any(|mail| mail.subject().starts_with("Reset"))
    );
}

async fn the_old_verified_address_is_told_of_a_change(store: Store) {
    let sink = SmtpSink::start().await;
    let app = TestApp::spawn_with_mail(store, &sink, |_| {}).await;
    register_with_email(&app, "alice", Some("alice@example.org")).await;
    let first = last_token(&app, &sink, "alice@example.org").await;
    verify(&app, &first).await.assert_status(204);
    let tokens = app.login("alice", PASSWORD).await;

    change_email(
        &app,
        tokens.str("access_token"),
        "jane@example.net",
        PASSWORD,
    )
    .await
    .assert_status(202);
    let token = last_token(&app, &sink, "jane@example.net").await;
    verify(&app, &token).await.assert_status(204);
    app.deliver_mail().await;

    let old = sink.mails_to("alice@example.org");
    let notice = old.last().unwrap();
    assert_eq!(notice.subject(), "Your Gatehouse email address was changed");
    assert!(
        notice.text().contains("j***@example.net"),
        "{}",
        notice.text()
    );
    assert!(
        !notice.text().contains("token="),
        "a notice carries no link"
    );
}

async fn an_email_change_needs_the_current_password(store: Store) {
    let sink = SmtpSink::start().await;
    let app = TestApp::spawn_with_mail(store, &sink, |_| {}).await;
    register_with_email(&app, "alice", None).await;
    let tokens = app.login("alice", PASSWORD).await;
    let access = tokens.str("access_token");

    change_email(&app, access, "mallory@example.net", "not the password")
        .await
        .assert_error(400, "invalid_current_password");
    change_email(&app, access, "not an address", PASSWORD)
        .await
        .assert_error(400, "invalid_email");
    app.deliver_mail().await;
    assert!(sink.mails().is_empty(), "nothing was sent");
}

async fn a_verification_link_older_than_a_change_proves_nothing(store: Store) {
    let sink = SmtpSink::start().await;
    let app = TestApp::spawn_with_mail(store, &sink, |_| {}).await;
    register_with_email(&app, "alice", Some("alice@example.org")).await;
    let old_link = last_token(&app, &sink, "alice@example.org").await;
    let tokens = app.login("alice", PASSWORD).await;
    change_email(
        &app,
        tokens.str("access_token"),
        "alice@example.net",
        PASSWORD,
    )
    .await
    .assert_status(202);
    let change = last_token(&app, &sink, "alice@example.net").await;
    verify(&app, &change).await.assert_status(204);

    verify(&app, &old_link)
        .await
        .assert_error(400, "invalid_token");
    let me = app.me(tokens.str("access_token")).await;
    assert_eq!(me.body["email"], "alice@example.net");
}

async fn verification_links_work_once(store: Store) {
    let sink = SmtpSink::start().await;
    let app = TestApp::spawn_with_mail(store, &sink, |_| {}).await;
    register_with_email(&app, "alice", Some("alice@example.org")).await;
    let token = last_token(&app, &sink, "alice@example.org").await;
    verify(&app, &token).await.assert_status(204);
    verify(&app, &token)
        .await
        .assert_error(400, "invalid_token");
    verify(&app, "").await.assert_status(400);
}
