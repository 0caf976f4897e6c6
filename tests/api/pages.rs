//! Gatehouse's own pages behind mailed links: plain forms that work with
//! no JavaScript, that opening a link never spends, and that no other
//! site can frame, restyle or read the token from.

use serde_json::json;

use crate::helpers::{PASSWORD, SmtpSink, Store, TestApp};
use crate::on_both_stores;
use crate::password_reset::{register_with_email, request_reset};

on_both_stores!(
    the_reset_page_sets_a_new_password_without_javascript,
    the_reset_page_says_what_is_wrong_and_keeps_the_link_usable,
    the_verification_page_confirms_the_address_on_its_button_not_on_opening,
    a_page_without_its_token_or_with_a_spent_one_says_so,
);

/// A page's status, headers and HTML.
struct Page {
    status: u16,
    headers: poem::http::HeaderMap,
    html: String,
}

async fn read(response: poem::test::TestResponse) -> Page {
    let response = response.0;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let html = response.into_body().into_string().await.unwrap();
    Page {
        status,
        headers,
        html,
    }
}

async fn open(app: &TestApp, path: &str, token: &str) -> Page {
    read(app.client.get(path).query("token", &token).send().await).await
}

async fn submit(app: &TestApp, path: &str, form: &[(&str, &str)]) -> Page {
    read(app.client.post(path).form(&form).send().await).await
}

/// The token of the last mail to `address`, after delivering what is due.
async fn mailed_token(app: &TestApp, sink: &SmtpSink, address: &str) -> String {
    app.deliver_mail().await;
    sink.mails_to(address).last().expect("a mail").token()
}

fn assert_guarded(page: &Page) {
    let header = |name: &str| page.headers.get(name).unwrap().to_str().unwrap();
    assert_eq!(header("content-type"), "text/html; charset=utf-8");
    assert_eq!(header("cache-control"), "no-store");
    assert_eq!(header("referrer-policy"), "no-referrer");
    assert_eq!(header("x-frame-options"), "DENY");
    let policy = header("content-security-policy");
    for directive in [
        "default-src 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "style-src 'sha256-",
    ] {
        assert!(policy.contains(directive), "{policy}");
    }
    assert!(!page.html.contains("<script"), "no script");
    assert!(
        !page.html.contains("http://") && !page.html.contains("https://"),
        "no third-party asset"
    );
}

async fn the_reset_page_sets_a_new_password_without_javascript(store: Store) {
    let sink = SmtpSink::start().await;
    let app = TestApp::spawn_with_mail(store, &sink, |_| {}).await;
    register_with_email(&app, "alice", Some("alice@example.org")).await;
    request_reset(&app, json!({"username": "alice"})).await;
    app.deliver_mail().await;
    let mail = sink
        .mails_to("alice@example.org")
        .into_iter()
        .find(|mail| mail.subject().starts_with("Reset"))
        .unwrap();
    let token = mail.token();
    let path = "/account/reset-password";
    assert!(mail.link().contains(path));

    let page = open(&app, path, &token).await;
    assert_eq!(page.status, 200);
    assert_guarded(&page);
    assert!(
        page.html
            .contains(r#"<form method="post" action="/account/reset-password">"#)
    );
    assert!(
        page.html
            .contains(&format!(r#"name="token" value="{token}""#))
    );
    assert!(page.html.contains(r#"autocomplete="new-password""#));
    // Opening it spent nothing.
    let page = open(&app, path, &token).await;
    assert_eq!(page.status, 200);

    let new = "a brand new passphrase";
    let done = submit(
        &app,
        path,
        &[
            ("token", &token),
            ("new_password", new),
            ("confirm_password", new),
        ],
    )
    .await;
    assert_eq!(done.status, 200, "{}", done.html);
    assert_guarded(&done);
    assert!(
        done.html.contains("Your password is changed"),
        "{}",
        done.html
    );
    app.login("alice", new).await.assert_status(200);
    app.login("alice", PASSWORD).await.assert_status(400);
}

async fn the_reset_page_says_what_is_wrong_and_keeps_the_link_usable(store: Store) {
    let sink = SmtpSink::start().await;
    let app = TestApp::spawn_with_mail(store, &sink, |_| {}).await;
    register_with_email(&app, "alice", Some("alice@example.org")).await;
    app.deliver_mail().await;
    request_reset(&app, json!({"username": "alice"})).await;
    let token = mailed_token(&app, &sink, "alice@example.org").await;
    let path = "/account/reset-password";

    let differ = submit(
        &app,
        path,
        &[
            ("token", &token),
            ("new_password", "one long passphrase"),
            ("confirm_password", "another long one"),
        ],
    )
    .await;
    assert_eq!(differ.status, 400);
    assert!(
        differ.html.contains("The two passwords differ"),
        "{}",
        differ.html
    );
    assert!(
        differ.html.contains(&token),
        "the form comes back with its token"
    );

    let weak = submit(
        &app,
        path,
        &[
            ("token", &token),
            ("new_password", "short"),
            ("confirm_password", "short"),
        ],
    )
    .await;
    assert_eq!(weak.status, 400);
    assert!(
        weak.html.contains("Choose another password"),
        "{}",
        weak.html
    );

    let new = "a brand new passphrase";
    let done = submit(
        &app,
        path,
        &[
            ("token", &token),
            ("new_password", new),
            ("confirm_password", new),
        ],
    )
    .await;
    assert_eq!(done.status, 200, "{}", done.html);
}

async fn the_verification_page_confirms_the_address_on_its_button_not_on_opening(store: Store) {
    let sink = SmtpSink::start().await;
    let app = TestApp::spawn_with_mail(store, &sink, |_| {}).await;
    register_with_email(&app, "alice", Some("alice@example.org")).await;
    let token = mailed_token(&app, &sink, "alice@example.org").await;
    let tokens = app.login("alice", PASSWORD).await;
    let path = "/account/verify-email";

    let page = open(&app, path, &token).await;
    assert_eq!(page.status, 200);
    assert_guarded(&page);
    assert!(page.html.contains("Confirm my address"));
    let me = app.me(tokens.str("access_token")).await;
    assert_eq!(
        me.body["email_verified"], false,
        "a mail scanner opening it confirms nothing"
    );

    let done = submit(&app, path, &[("token", &token)]).await;
    assert_eq!(done.status, 200, "{}", done.html);
    assert!(done.html.contains("Your address is confirmed"));
    let me = app.me(tokens.str("access_token")).await;
    assert_eq!(me.body["email_verified"], true);
}

async fn a_page_without_its_token_or_with_a_spent_one_says_so(store: Store) {
    let app = TestApp::spawn(store).await;
    for path in ["/account/reset-password", "/account/verify-email"] {
        let page = read(app.client.get(path).send().await).await;
        assert_eq!(page.status, 400);
        assert!(
            page.html.contains("This link is incomplete"),
            "{}",
            page.html
        );
    }
    let spent = submit(&app, "/account/verify-email", &[("token", "no-such-token")]).await;
    assert_eq!(spent.status, 400);
    assert!(spent.html.contains("This link does not work"));
    let page = open(
        &app,
        "/account/reset-password",
        "\"><script>alert(1)</script>",
    )
    .await;
    assert!(!page.html.contains("<script>alert"), "the token is escaped");
}
