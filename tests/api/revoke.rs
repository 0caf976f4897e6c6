//! Token revocation (RFC 7009).

use crate::helpers::{Store, TestApp};
use crate::on_both_stores;

on_both_stores!(
    revoking_a_refresh_token_revokes_its_family,
    revoking_an_access_token_ends_its_session,
    unknown_invalid_and_repeated_tokens_also_get_200,
    a_revocation_without_a_token_is_invalid_request,
);

async fn revoking_a_refresh_token_revokes_its_family(store: Store) {
    let app = TestApp::spawn(store).await;
    let login = app.user_with_tokens("alice").await;
    let successor = app.refresh(login.str("refresh_token")).await;
    let form = [
        ("token", successor.str("refresh_token")),
        ("token_type_hint", "refresh_token"),
    ];
    let reply = app.post_form("/oauth/revoke", &form).await;
    reply.assert_status(200);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    app.assert_session_ended(&successor).await;
    app.refresh(login.str("refresh_token"))
        .await
        .assert_error(400, "invalid_grant");
}

async fn revoking_an_access_token_ends_its_session(store: Store) {
    let app = TestApp::spawn(store).await;
    let login = app.user_with_tokens("alice").await;
    // No hint, or a wrong one: the token is still found.
    let form = [
        ("token", login.str("access_token")),
        ("token_type_hint", "refresh_token"),
    ];
    app.post_form("/oauth/revoke", &form)
        .await
        .assert_status(200);
    app.me(login.str("access_token"))
        .await
        .assert_error(401, "invalid_token");
    app.refresh(login.str("refresh_token"))
        .await
        .assert_error(400, "invalid_grant");
}

async fn unknown_invalid_and_repeated_tokens_also_get_200(store: Store) {
    let app = TestApp::spawn(store).await;
    let login = app.user_with_tokens("alice").await;
    for token in [
        "never-issued",
        "eyJhbGciOiJub25lIn0.e30.",
        &"x".repeat(5000),
    ] {
        app.post_form("/oauth/revoke", &[("token", token)])
            .await
            .assert_status(200);
        let hinted = [("token", token), ("token_type_hint", "access_token")];
        app.post_form("/oauth/revoke", &hinted)
            .await
            .assert_status(200);
    }
    let form = [
        ("token", login.str("refresh_token")),
        ("token_type_hint", "unknown_kind"),
    ];
    app.post_form("/oauth/revoke", &form)
        .await
        .assert_status(200);
    app.post_form("/oauth/revoke", &form)
        .await
        .assert_status(200);
    app.refresh(login.str("refresh_token"))
        .await
        .assert_error(400, "invalid_grant");
}

async fn a_revocation_without_a_token_is_invalid_request(store: Store) {
    let app = TestApp::spawn(store).await;
    app.post_form("/oauth/revoke", &[])
        .await
        .assert_error(400, "invalid_request");
    app.post_form("/oauth/revoke", &[("token", "")])
        .await
        .assert_error(400, "invalid_request");
    let malformed = app
        .post_form_with_authorization("/oauth/revoke", "Basic !!!", &[("token", "x")])
        .await;
    malformed.assert_error(401, "invalid_client");
    let control = app
        .post_form(
            "/oauth/revoke",
            &[("token", "x"), ("client_id", "a\u{84}b")],
        )
        .await;
    control.assert_error(400, "invalid_request");
}
