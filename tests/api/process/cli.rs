//! Admin commands and configuration: what they print and how they fail.

use std::io::Write as _;
use std::process::Stdio;

use super::*;

#[test]
fn bad_configuration_exits_2_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| gatehouse(args, dir.path()).output().unwrap();
    assert_fails_with_one_line(
        &run(&["--database-url", "postgres://localhost/x"]),
        "unsupported database URL",
    );
    assert_fails_with_one_line(
        &run(&["--refresh-ttl", "1m", "--access-ttl", "1h"]),
        "--refresh-ttl",
    );
    assert_fails_with_one_line(
        &run(&["--signing-key-file", "/nonexistent/key.pem"]),
        "signing key",
    );
    std::fs::write(dir.path().join("garbage.pem"), "garbage").unwrap();
    assert_fails_with_one_line(&run(&["--signing-key-file", "garbage.pem"]), "PKCS#8");
    assert_fails_with_one_line(&run(&["--jwt-algorithm", "hs256"]), "--hs256-secret-file");
    std::fs::write(dir.path().join("short.secret"), "too short\n").unwrap();
    let short = run(&[
        "--jwt-algorithm",
        "hs256",
        "--hs256-secret-file",
        "short.secret",
    ]);
    assert_fails_with_one_line(&short, "at least 32 random bytes");
    // clap's own errors also exit 2.
    assert_eq!(run(&["--access-ttl", "soon"]).status.code(), Some(2));
    assert_eq!(run(&["--no-such-flag"]).status.code(), Some(2));
}

#[test]
fn an_unreachable_database_exits_2_quickly() {
    let dir = tempfile::tempdir().unwrap();
    let unused = free_port();
    let url = format!("mysql://root@127.0.0.1:{unused}/gatehouse");
    let output = gatehouse(&["--database-url", &url, "--db-timeout", "2s"], dir.path())
        .output()
        .unwrap();
    assert_fails_with_one_line(&output, "cannot connect to the database");
}

#[test]
fn the_openapi_command_prints_the_committed_spec() {
    let dir = tempfile::tempdir().unwrap();
    let output = gatehouse(&["openapi"], dir.path()).output().unwrap();
    assert!(output.status.success());
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json"))
            .unwrap();
    let printed = String::from_utf8(output.stdout).unwrap();
    assert!(
        printed.trim_end() == committed.trim_end(),
        "`gatehouse openapi` differs from openapi/openapi.json; regenerate it"
    );
}

#[test]
fn migrate_user_create_disable_and_enable_prepare_a_database_for_login() {
    let dir = tempfile::tempdir().unwrap();
    let status = gatehouse(&["migrate"], dir.path()).status().unwrap();
    assert!(status.success());
    let mut create = gatehouse(
        &[
            "user",
            "create",
            "--username",
            "admin",
            "--argon2-memory-kib",
            "256",
            "--argon2-iterations",
            "1",
        ],
        dir.path(),
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    create
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{PASSWORD}\n").as_bytes())
        .unwrap();
    let output = create.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(uuid::Uuid::parse_str(String::from_utf8_lossy(&output.stdout).trim()).is_ok());

    let cheap = ["--argon2-memory-kib", "256", "--argon2-iterations", "1"];
    let mut disable = gatehouse(
        &[&["user", "disable", "--username", "admin"][..], &cheap].concat(),
        dir.path(),
    );
    assert!(disable.status().unwrap().success());
    let mut unknown = gatehouse(
        &[&["user", "disable", "--username", "ghost"][..], &cheap].concat(),
        dir.path(),
    );
    assert_fails_with_one_line(&unknown.output().unwrap(), "no user is called \"ghost\"");
    let mut enable = gatehouse(
        &[&["user", "enable", "--username", "admin"][..], &cheap].concat(),
        dir.path(),
    );
    assert!(enable.status().unwrap().success());

    let server = Server::start(dir.path(), &[]);
    let body = format!(
        "grant_type=password&username=admin&password={}",
        PASSWORD.replace(' ', "+")
    );
    let response = server.request(
        "POST",
        "/oauth/token",
        "application/x-www-form-urlencoded",
        &body,
    );
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    server.stop();
}

#[test]
fn plain_database_url_is_used_when_no_gatehouse_url_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("elsewhere/from-env.db");
    let status = gatehouse(&["migrate"], dir.path())
        .env("DATABASE_URL", format!("sqlite://{}", file.display()))
        .status()
        .unwrap();
    assert!(status.success());
    assert!(file.exists(), "DATABASE_URL was used");
    assert!(
        !dir.path().join("gatehouse.db").exists(),
        "the default database was not created"
    );
}
