//! The outbox against a real SMTP server that goes down, defers, refuses
//! and dawdles; senders that crash and race; TLS and authentication.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::helpers::{SinkTls, SmtpSink, Store, TestApp};
use crate::on_both_stores;
use crate::password_reset::register_with_email;

on_both_stores!(
    mails_requested_while_the_server_is_down_go_once_it_is_back,
    a_deferral_is_retried_and_a_refusal_is_given_up_and_recorded,
    a_mail_that_could_no_longer_be_useful_is_given_up,
    a_sender_that_dies_mid_send_loses_its_lease_and_the_mail_still_goes,
    two_instances_sending_at_once_send_each_mail_once,
);

async fn reset(app: &TestApp, username: &str) {
    app.post_json("/auth/password-reset", &json!({"username": username}))
        .await
        .assert_status(202);
}

async fn mails_requested_while_the_server_is_down_go_once_it_is_back(store: Store) {
    let mut sink = SmtpSink::start().await;
    let app = TestApp::spawn_with_mail(store, &sink, |_| {}).await;
    sink.stop();
    for n in 0..5 {
        register_with_email(
            &app,
            &format!("user{n}"),
            Some(&format!("user{n}@example.org")),
        )
        .await;
    }
    let pass = app.deliver_mail().await;
    assert_eq!(pass.retried, 5, "{pass:?}");
    // Down for a while: every attempt is deferred, none is lost.
    for _ in 0..3 {
        app.clock.advance(Duration::from_secs(20));
        app.deliver_mail().await;
    }
    sink.restart().await;
    app.clock.advance(Duration::from_secs(300));
    app.deliver_mail().await;
    for n in 0..5 {
        assert_eq!(
            sink.mails_to(&format!("user{n}@example.org")).len(),
            1,
            "user{n}"
        );
    }
    let metrics = crate::metrics::metrics(&app).await;
    assert!(
        metrics.contains("gatehouse_mail_total{outcome=\"sent\"} 5"),
        "{metrics}"
    );
}

async fn a_deferral_is_retried_and_a_refusal_is_given_up_and_recorded(store: Store) {
    let sink = SmtpSink::start().await;
    let app = TestApp::spawn_with_mail(store, &sink, |_| {}).await;
    sink.set_mode("defer");
    register_with_email(&app, "alice", Some("alice@example.org")).await;
    let pass = app.deliver_mail().await;
    assert_eq!((pass.sent, pass.retried), (0, 1));
    sink.set_mode("ok");
    app.clock.advance(Duration::from_secs(300));
    let pass = app.deliver_mail().await;
    assert_eq!(pass.sent, 1);
    assert_eq!(sink.mails_to("alice@example.org").len(), 1);

    sink.set_mode("reject");
    register_with_email(&app, "bob", Some("bob@example.org")).await;
    let pass = app.deliver_mail().await;
    assert_eq!(pass.failed, 1, "{pass:?}");
    app.clock.advance(Duration::from_secs(3600));
    sink.set_mode("ok");
    assert_eq!(
        app.deliver_mail().await,
        Default::default(),
        "not tried again"
    );
    let failed = crate::rotation::audit_events(&app, "mail_failed").await;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].detail.as_deref(), Some("email_verification"));
    let mails = app.state.store.all_mails().await.unwrap();
    let refused = mails
        .iter()
        .find(|mail| mail.state == gatehouse::store::MailState::Failed)
        .unwrap();
    assert!(
        refused
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("550"),
        "{refused:?}"
    );
}

async fn a_mail_that_could_no_longer_be_useful_is_given_up(store: Store) {
    let mut sink = SmtpSink::start().await;
    let app = TestApp::spawn_with_mail(store, &sink, |_| {}).await;
    register_with_email(&app, "alice", Some("alice@example.org")).await;
    app.deliver_mail().await;
    sink.stop();
    reset(&app, "alice").await;
    app.deliver_mail().await;
    sink.restart().await;
    app.clock.advance(Duration::from_secs(31 * 60));
    let pass = app.deliver_mail().await;
    assert_eq!(pass.failed, 1, "{pass:?}");
    assert_eq!(
        sink.mails_to("alice@example.org").len(),
        1,
        "only the verification"
    );
}

async fn a_sender_that_dies_mid_send_loses_its_lease_and_the_mail_still_goes(store: Store) {
    let sink = SmtpSink::start().await;
    let app = TestApp::spawn_with_mail(store, &sink, |_| {}).await;
    register_with_email(&app, "alice", Some("alice@example.org")).await;
    sink.set_mode("slow 5");
    // The sender dies (its task is dropped) while the server dawdles.
    let dying = app.state.mailer.clone();
    let send = tokio::spawn(async move {
        dying.deliver_due().await?; // looks the request up
        dying.deliver_due().await // sends, slowly
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    send.abort();
    assert!(send.await.unwrap_err().is_cancelled());
    sink.set_mode("ok");

    // Another instance finds it claimed until the lease runs out.
    let other = app.another_instance(|_| {}).await;
    assert_eq!(other.deliver_mail().await, Default::default());
    app.clock.advance(Duration::from_secs(120));
    let pass = other.deliver_mail().await;
    assert_eq!(pass.sent, 1, "{pass:?}");
    let mails = sink.mails_to("alice@example.org");
    assert_eq!(mails.len(), 1, "the aborted attempt never finished");
}

async fn two_instances_sending_at_once_send_each_mail_once(store: Store) {
    let sink = SmtpSink::start().await;
    let app = Arc::new(TestApp::spawn_with_mail(store, &sink, |_| {}).await);
    let other = Arc::new(app.another_instance(|_| {}).await);
    for n in 0..12 {
        register_with_email(
            &app,
            &format!("user{n}"),
            Some(&format!("user{n}@example.org")),
        )
        .await;
    }
    let (a, b) = tokio::join!(app.deliver_mail(), other.deliver_mail());
    assert_eq!(a.resolved + b.resolved, 12, "{a:?} {b:?}");
    for n in 0..12 {
        assert_eq!(
            sink.mails_to(&format!("user{n}@example.org")).len(),
            1,
            "user{n}"
        );
    }
}

mod tls {
    use super::*;

    async fn sends_over(tls: SinkTls, auth: Option<(&str, &str)>) -> crate::helpers::ReceivedMail {
        let sink = SmtpSink::start_with(tls, auth).await;
        let app = TestApp::spawn_with_mail(Store::Sqlite, &sink, |_| {}).await;
        register_with_email(&app, "alice", Some("alice@example.org")).await;
        let pass = app.deliver_mail().await;
        assert_eq!(pass.sent, 1, "{pass:?}");
        sink.mails().pop().unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn starttls_with_the_servers_ca_and_authentication() {
        let mail = sends_over(SinkTls::StartTls, Some(("gatehouse", "s3cret"))).await;
        assert!(mail.tls());
        assert!(mail.authenticated());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn implicit_tls() {
        let mail = sends_over(SinkTls::Implicit, None).await;
        assert!(mail.tls());
        assert_eq!(
            mail.header("from").unwrap(),
            "Gatehouse <no-reply@gatehouse.test>"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_certificate_nobody_vouches_for_is_refused() {
        let sink = SmtpSink::start_with(SinkTls::StartTls, None).await;
        let app = TestApp::spawn_with_mail(Store::Sqlite, &sink, |config| {
            config.smtp_ca_file = None;
        })
        .await;
        register_with_email(&app, "alice", Some("alice@example.org")).await;
        let pass = app.deliver_mail().await;
        assert_eq!((pass.sent, pass.retried), (0, 1), "{pass:?}");
        assert!(sink.mails().is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_mail_dir_holds_each_mail_readable_by_its_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let mail_dir = dir.path().join("mail");
        let app = TestApp::spawn_with(Store::Sqlite, |config| {
            config.mail_dir = Some(mail_dir.clone());
        })
        .await;
        register_with_email(&app, "alice", Some("alice@example.org")).await;
        app.deliver_mail().await;
        let files: Vec<_> = std::fs::read_dir(&mail_dir)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .collect();
        assert_eq!(files.len(), 1, "{files:?}");
        let eml = std::fs::read_to_string(&files[0]).unwrap();
        assert!(eml.contains("To: alice@example.org"), "{eml}");
        assert!(eml.contains("Subject: Confirm your email address for Gatehouse"));
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&files[0]).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
