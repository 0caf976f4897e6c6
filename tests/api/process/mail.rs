//! Mail as operators run it: a serving instance sends what is queued by
//! itself, readiness ignores the SMTP server, and installs without mail
//! get reset links from the command line.

use super::*;
use crate::helpers::SmtpSink;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

#[test]
fn a_serving_instance_sends_queued_mail_by_itself_and_stays_ready_without_smtp() {
    let runtime = runtime();
    let mut sink = runtime.block_on(SmtpSink::start());
    let dir = tempfile::tempdir().unwrap();
    let url = sink.url();
    let server = Server::start(
        dir.path(),
        &[
            "--smtp-url",
            &url,
            "--mail-from",
            "Gatehouse <no-reply@gatehouse.test>",
            "--argon2-memory-kib",
            "256",
            "--argon2-iterations",
            "1",
        ],
    );
    let body =
        format!(r#"{{"username":"alice","password":"{PASSWORD}","email":"alice@example.org"}}"#);
    let response = server.request("POST", "/users", "application/json", &body);
    assert!(response.starts_with("HTTP/1.1 201"), "{response}");
    let deadline = Instant::now() + Duration::from_secs(15);
    while sink.mails().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let mails = sink.mails_to("alice@example.org");
    assert_eq!(mails.len(), 1, "the verification mail went by itself");
    assert!(mails[0].link().contains("/account/verify-email?token="));

    sink.stop();
    let ready = server.request("GET", "/health/ready", "text/plain", "");
    assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
    server.stop();
}

#[test]
fn a_mail_whose_sender_crashed_mid_send_goes_after_the_restart() {
    let runtime = runtime();
    let sink = runtime.block_on(SmtpSink::start());
    sink.set_mode("slow 1.5");
    let dir = tempfile::tempdir().unwrap();
    let url = sink.url();
    let flags = [
        "--smtp-url",
        &url,
        "--mail-from",
        "Gatehouse <no-reply@gatehouse.test>",
        "--smtp-timeout",
        "2s",
        "--mail-poll-interval",
        "200ms",
        "--argon2-memory-kib",
        "256",
        "--argon2-iterations",
        "1",
    ];
    let server = Server::start(dir.path(), &flags);
    let body =
        format!(r#"{{"username":"alice","password":"{PASSWORD}","email":"alice@example.org"}}"#);
    let response = server.request("POST", "/users", "application/json", &body);
    assert!(response.starts_with("HTTP/1.1 201"), "{response}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sink.take_inflight() {
        assert!(Instant::now() < deadline, "the mail was never handed over");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Killed while the server holds the mail's DATA.
    server.signal("KILL");
    drop(server);
    std::thread::sleep(Duration::from_secs(2));
    assert!(sink.mails().is_empty(), "the hand-over never finished");

    sink.set_mode("ok");
    let restarted = Server::start(dir.path(), &flags);
    // The dead sender's lease (twice the 6 s deadline, and 10 s) runs out.
    let deadline = Instant::now() + Duration::from_secs(40);
    while sink.mails().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let mails = sink.mails_to("alice@example.org");
    assert_eq!(mails.len(), 1, "sent once, after the restart");
    restarted.stop();
}

#[test]
fn smtp_needs_a_sender_and_one_destination() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| gatehouse(args, dir.path()).output().unwrap();
    assert_fails_with_one_line(&run(&["--smtp-url", "smtp://localhost"]), "--mail-from");
    assert_fails_with_one_line(
        &run(&[
            "--smtp-url",
            "smtp://localhost",
            "--mail-from",
            "a@b.c",
            "--mail-dir",
            "mail",
        ]),
        "exclude each other",
    );
    assert_fails_with_one_line(
        &run(&["--password-reset-url", "https://app.example.org/reset"]),
        "{token}",
    );
    let secret = run(&[
        "--smtp-url",
        "ftp://user:hunter2@localhost",
        "--mail-from",
        "a@b.c",
    ]);
    assert_fails_with_one_line(&secret, "--smtp-url");
    assert!(!String::from_utf8_lossy(&secret.stderr).contains("hunter2"));
}

#[test]
fn reset_link_prints_a_link_that_sets_a_new_password() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &["--argon2-memory-kib", "256", "--argon2-iterations", "1"],
    );
    let body = format!(r#"{{"username":"admin","password":"{PASSWORD}"}}"#);
    let response = server.request("POST", "/users", "application/json", &body);
    assert!(response.starts_with("HTTP/1.1 201"), "{response}");

    let output = gatehouse(
        &[
            "user",
            "reset-link",
            "--username",
            "admin",
            "--public-url",
            "https://auth.example.org/",
        ],
        dir.path(),
    )
    .output()
    .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let link = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    let token = link
        .strip_prefix("https://auth.example.org/account/reset-password?token=")
        .unwrap_or_else(|| panic!("{link}"));
    assert_eq!(token.len(), 43);

    let body = format!(r#"{{"token":"{token}","new_password":"a brand new passphrase"}}"#);
    let confirmed = server.request(
        "POST",
        "/auth/password-reset/confirm",
        "application/json",
        &body,
    );
    assert!(confirmed.starts_with("HTTP/1.1 204"), "{confirmed}");
    let again = server.request(
        "POST",
        "/auth/password-reset/confirm",
        "application/json",
        &body,
    );
    assert!(again.starts_with("HTTP/1.1 400"), "{again}");

    let unknown = gatehouse(&["user", "reset-link", "--username", "ghost"], dir.path())
        .output()
        .unwrap();
    assert_fails_with_one_line(&unknown, "no user is called \"ghost\"");
    server.stop();
}
