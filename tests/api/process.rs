//! The `gatehouse` binary as operators run it, and the database going away.
//! The binary tests use SQLite (or no database at all): they test the
//! process, not a store.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::{PASSWORD, Reply, Store, TestApp};
use crate::on_both_stores;

const BIN: &str = env!("CARGO_BIN_EXE_gatehouse");

on_both_stores!(a_lost_database_is_503_json_and_ready_says_so);

async fn a_lost_database_is_503_json_and_ready_says_so(store: Store) {
    let app = TestApp::spawn(store).await;
    let tokens = app.user_with_tokens("alice").await;
    app.state.store.close().await;
    let ready = Reply::read(app.client.get("/health/ready").send().await).await;
    ready.assert_error(503, "unavailable");
    Reply::read(app.client.get("/health/live").send().await)
        .await
        .assert_status(200);
    app.login("alice", PASSWORD)
        .await
        .assert_error(503, "unavailable");
    app.refresh(tokens.str("refresh_token"))
        .await
        .assert_error(503, "unavailable");
    app.me(tokens.str("access_token"))
        .await
        .assert_error(503, "unavailable");
    app.register("bob", PASSWORD)
        .await
        .assert_error(503, "unavailable");
    assert!(
        !ready.body.to_string().to_lowercase().contains("pool"),
        "no internals leak: {}",
        ready.body
    );
}

fn gatehouse(args: &[&str], data_dir: &std::path::Path) -> Command {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .current_dir(data_dir)
        .env_remove("DATABASE_URL")
        .env("GATEHOUSE_DATA_DIR", data_dir)
        .env("GATEHOUSE_LOG", "warn")
        .stdin(Stdio::null());
    command
}

#[track_caller]
fn assert_fails_with_one_line(output: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "stderr: {stderr}");
    let lines: Vec<_> = stderr
        .lines()
        .filter(|line| !line.trim().is_empty())
        .collect();
    assert_eq!(lines.len(), 1, "one line expected: {stderr}");
    assert!(lines[0].starts_with("gatehouse: error: "), "{stderr}");
    assert!(lines[0].contains(needle), "expected {needle:?} in {stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr}"
    );
}

#[test]
fn logs_to_a_file_or_a_pipe_carry_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let output = gatehouse(&["migrate"], dir.path())
        .env("GATEHOUSE_LOG", "debug")
        .output()
        .unwrap();
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.trim().is_empty(), "something was logged");
    assert!(!stderr.contains('\x1b'), "no ANSI escape codes: {stderr:?}");
}

#[test]
fn with_log_format_json_every_log_line_is_one_json_object() {
    let dir = tempfile::tempdir().unwrap();
    for (args, format) in [
        (&["migrate", "--log-format", "json"][..], "text"),
        (&["migrate"][..], "json"),
    ] {
        let output = gatehouse(args, dir.path())
            .env("GATEHOUSE_LOG", "debug")
            .env("GATEHOUSE_LOG_FORMAT", format)
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.trim().is_empty(), "something was logged");
        for line in stderr.lines() {
            let object: serde_json::Value = serde_json::from_str(line).expect(line);
            assert!(object["level"].is_string(), "{line}");
            assert!(object["timestamp"].is_string(), "{line}");
        }
    }
}

#[test]
fn every_answer_carries_a_request_id_that_its_log_line_names() {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("gatehouse.log");
    let server = Server::start_logging_to(dir.path(), &[], Some(&log_path));
    let request_id = |response: &str| {
        let header = response
            .lines()
            .find_map(|line| line.strip_prefix("x-request-id: "))
            .unwrap_or_else(|| panic!("no x-request-id in {response}"));
        uuid::Uuid::parse_str(header.trim()).expect("a UUID")
    };
    let live = server.request("GET", "/health/live", "text/plain", "");
    let missing = server.request("GET", "/no/such/path", "text/plain", "");
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
    let (live_id, missing_id) = (request_id(&live), request_id(&missing));
    assert_ne!(live_id, missing_id, "one id per request");
    server.signal("TERM");
    assert_eq!(server.wait().code(), Some(0));
    let log = std::fs::read_to_string(&log_path).unwrap();
    for (id, path) in [(live_id, "/health/live"), (missing_id, "/no/such/path")] {
        let line = log
            .lines()
            .find(|line| line.contains(&format!("request_id={id}")))
            .unwrap_or_else(|| panic!("no log line names {id}: {log}"));
        assert!(line.contains(&format!("path={path}")), "{line}");
    }
}

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

#[test]
fn sigterm_finishes_in_flight_requests_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    // Expensive hashing (about a second) keeps a login in flight while the signal arrives.
    let server = Server::start(
        dir.path(),
        &["--argon2-memory-kib", "262144", "--argon2-iterations", "4"],
    );
    let addr = server.addr;
    let in_flight = std::thread::spawn(move || {
        http(
            addr,
            "POST",
            "/oauth/token",
            "application/x-www-form-urlencoded",
            "grant_type=password&username=nobody&password=whatever1",
        )
    });
    std::thread::sleep(Duration::from_millis(300));
    server.signal("TERM");
    let response = in_flight.join().unwrap();
    assert!(
        response.starts_with("HTTP/1.1 400"),
        "the in-flight request completes: {response}"
    );
    assert!(response.contains("invalid_grant"), "{response}");
    let status = server.wait();
    assert_eq!(status.code(), Some(0));
}

#[test]
fn keys_rotate_reaches_a_running_server_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--key-reload-interval", "1s"]);
    let jwks_kids = || {
        let response = server.request("GET", "/.well-known/jwks.json", "text/plain", "");
        let body = response
            .split("\r\n\r\n")
            .nth(1)
            .unwrap_or_default()
            .to_owned();
        let jwks: serde_json::Value = serde_json::from_str(&body).expect("JWKS JSON");
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|key| key["kid"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let first = jwks_kids();
    assert_eq!(first.len(), 1);

    let output = gatehouse(&["keys", "rotate"], dir.path()).output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let new_kid = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    assert_ne!(new_kid, first[0]);
    let listed = gatehouse(&["keys", "list"], dir.path()).output().unwrap();
    let listed = String::from_utf8(listed.stdout).unwrap();
    assert!(
        listed.contains(&first[0]) && listed.contains(&new_kid),
        "{listed}"
    );

    // The server picks the new key up on its next reload, and keeps the old one.
    let deadline = Instant::now() + Duration::from_secs(30);
    while jwks_kids() != [first[0].clone(), new_kid.clone()] {
        assert!(
            Instant::now() < deadline,
            "the rotation never reached the server"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    server.stop();

    // A fixed key file is the operator's to replace, not ours to rotate.
    let refused = gatehouse(
        &["keys", "rotate", "--signing-key-file", "x.pem"],
        dir.path(),
    )
    .output()
    .unwrap();
    assert_fails_with_one_line(&refused, "--signing-key-file");
}

#[test]
fn slow_and_idle_connections_are_closed_after_the_header_read_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--header-read-timeout", "1s"]);
    // Slowloris: half a request line, then nothing.
    let mut slow = server.connect();
    slow.write_all(b"GET /health/li").unwrap();
    // Idle: one request answered, then nothing on the kept-alive connection.
    let mut idle = server.connect();
    write!(
        idle,
        "GET /health/live HTTP/1.1\r\nHost: {}\r\n\r\n",
        server.addr
    )
    .unwrap();
    for (name, stream) in [("slow", &mut slow), ("idle", &mut idle)] {
        let mut received = Vec::new();
        let closed = stream.read_to_end(&mut received);
        assert!(
            closed.is_ok(),
            "the {name} connection stayed open: {closed:?}"
        );
    }
    // The server itself is fine.
    server.assert_live();
    server.stop();
}

#[test]
fn silent_half_preface_and_idle_http2_connections_are_closed_in_time() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &["--header-read-timeout", "1s", "--idle-timeout", "1s"],
    );
    // Connected, and not a byte since.
    let mut silent = server.connect();
    // Half the HTTP/2 preface, then nothing.
    let mut half_preface = server.connect();
    half_preface.write_all(b"PRI * HTTP/2.0\r\n").unwrap();
    // The whole preface and an empty SETTINGS frame, then no request,
    // though it answers every ping: only the idle timeout closes it.
    let mut idle_h2 = server.connect();
    idle_h2
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .unwrap();
    let answering = std::thread::spawn(move || answer_pings_until_closed(idle_h2));
    for (name, stream) in [("silent", &mut silent), ("half-preface", &mut half_preface)] {
        assert!(
            read_until_closed(stream).is_some(),
            "the {name} connection stayed open"
        );
    }
    assert!(
        answering.join().unwrap() >= 1,
        "the server pinged the idle HTTP/2 connection before closing it"
    );
    server.assert_live();
    server.stop();
}

#[test]
fn at_the_connection_cap_a_fresh_client_displaces_a_silent_one_but_not_a_talking_one() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &["--max-connections", "3", "--header-read-timeout", "3s"],
    );
    let read_closed = |stream: &mut TcpStream| {
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        read_until_closed(stream).expect("the server closes the connection")
    };
    let fresh = || {
        let mut stream = TcpStream::connect(server.addr).unwrap();
        let _ = write!(
            stream,
            "GET /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        );
        stream
    };
    // Three silent connections take every place.
    let mut silent: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(server.addr).unwrap())
        .collect();
    server.wait_for_connections(3);
    // A fresh client is answered, in the place of the oldest silent one,
    // which is closed long before its header timeout.
    let answer = String::from_utf8(read_closed(&mut fresh())).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let started = Instant::now();
    assert!(read_closed(&mut silent[0]).is_empty());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "evicted at once"
    );
    drop(silent);
    server.wait_for_connections(0);
    // Three clients that have begun a request take every place, and are
    // not displaced: a fresh client is closed unanswered…
    let mut talking: Vec<TcpStream> = (0..3)
        .map(|_| {
            let mut stream = TcpStream::connect(server.addr).unwrap();
            stream.write_all(b"GET /health/li").unwrap();
            stream
        })
        .collect();
    server.wait_for_connections(3);
    assert!(read_closed(&mut fresh()).is_empty(), "refused at the cap");
    // …until their header timeout closes them; then it is served.
    for stream in &mut talking {
        read_closed(stream);
    }
    server.wait_for_connections(0);
    let answer = String::from_utf8(read_closed(&mut fresh())).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    server.stop();
}

/// What a connection received until the server closed it, or `None` if the
/// read failed otherwise (its timeout: it stayed open). A server that closes
/// with what the client sent unread resets the connection: closed too.
fn read_until_closed(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut received = Vec::new();
    match stream.read_to_end(&mut received) {
        Ok(_) => Some(received),
        Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => Some(received),
        Err(_) => None,
    }
}

/// Reads HTTP/2 frames, acknowledging every PING, until the server closes
/// the connection (panics if it stays open 30 s); the pings answered.
fn answer_pings_until_closed(mut stream: TcpStream) -> usize {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut pings = 0;
    loop {
        assert!(
            Instant::now() < deadline,
            "the idle HTTP/2 connection stayed open"
        );
        let mut header = [0u8; 9];
        if let Err(err) = stream.read_exact(&mut header) {
            assert!(
                matches!(
                    err.kind(),
                    std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
                ),
                "the idle HTTP/2 connection stayed open: {err}"
            );
            return pings;
        }
        let length =
            usize::from(header[0]) << 16 | usize::from(header[1]) << 8 | usize::from(header[2]);
        let mut payload = vec![0; length];
        if stream.read_exact(&mut payload).is_err() {
            return pings;
        }
        let (kind, flags) = (header[3], header[4]);
        if kind == 0x6 && flags & 0x1 == 0 {
            let mut ack = vec![0, 0, 8, 0x6, 0x1, 0, 0, 0, 0];
            ack.extend_from_slice(&payload);
            if stream.write_all(&ack).is_err() {
                return pings;
            }
            pings += 1;
        }
    }
}

/// A `gatehouse` process serving on a free port.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn start(data_dir: &std::path::Path, extra: &[&str]) -> Self {
        Self::start_logging_to(data_dir, extra, None)
    }

    /// [`Server::start`] with its standard error (its log, at `info`)
    /// written to the file at `log`.
    /// A free port may be taken by another test before the server binds it:
    /// then the server exits, and it is started again on another port.
    fn start_logging_to(
        data_dir: &std::path::Path,
        extra: &[&str],
        log: Option<&std::path::Path>,
    ) -> Self {
        for _ in 0..5 {
            let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
            let listen = addr.to_string();
            let mut args = vec!["--listen", &listen];
            args.extend_from_slice(extra);
            let stderr = log.map_or_else(Stdio::null, |path| {
                Stdio::from(std::fs::File::create(path).unwrap())
            });
            let mut command = gatehouse(&args, data_dir);
            if log.is_some() {
                command.env("GATEHOUSE_LOG", "info");
            }
            let child = command
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .unwrap();
            let mut server = Self { child, addr };
            let deadline = Instant::now() + Duration::from_secs(60);
            // Listening itself, not merely a port that accepts.
            while server.sockets_in_state("0A") == 0 {
                if server.child.try_wait().unwrap().is_some() {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "gatehouse did not start listening"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
            if server.sockets_in_state("0A") > 0 {
                return server;
            }
        }
        panic!("gatehouse found no free port in five tries");
    }

    /// Client connections the server process holds open now: its sockets
    /// that are established connections to its listening port.
    fn connections(&self) -> usize {
        self.sockets_in_state("01")
    }

    /// The server process's TCP sockets on its port in `state` (as
    /// /proc/net/tcp writes it: `01` established, `0A` listening).
    fn sockets_in_state(&self, state: &str) -> usize {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{}/fd", self.child.id())) else {
            return 0;
        };
        let sockets: std::collections::HashSet<String> = fds
            .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
            .filter_map(|target| {
                let target = target.to_str()?;
                Some(
                    target
                        .strip_prefix("socket:[")?
                        .strip_suffix(']')?
                        .to_owned(),
                )
            })
            .collect();
        let local = format!(":{:04X}", self.addr.port());
        std::fs::read_to_string("/proc/net/tcp")
            .unwrap()
            .lines()
            .skip(1)
            .map(|line| line.split_whitespace().collect::<Vec<_>>())
            .filter(|fields| {
                fields.len() > 9
                    && fields[1].ends_with(&local)
                    && fields[3] == state
                    && sockets.contains(fields[9])
            })
            .count()
    }

    /// Until the server holds `count` client connections (bounded).
    fn wait_for_connections(&self, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.connections() != count {
            assert!(
                Instant::now() < deadline,
                "the server holds {} connections, not {count}",
                self.connections()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn request(&self, method: &str, path: &str, content_type: &str, body: &str) -> String {
        http(self.addr, method, path, content_type, body)
    }

    /// A client connection whose reads give up after 30 s.
    fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(self.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        stream
    }

    /// The server still answers.
    #[track_caller]
    fn assert_live(&self) {
        let live = self.request("GET", "/health/live", "text/plain", "");
        assert!(live.starts_with("HTTP/1.1 200"), "{live}");
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status();
        assert!(status.unwrap().success());
    }

    fn wait(mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "gatehouse did not exit after the signal"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(self) {
        self.signal("TERM");
        assert_eq!(self.wait().code(), Some(0));
    }
}

/// A test that fails leaves no server behind.
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.1 request; returns the whole response as text.
fn http(addr: SocketAddr, method: &str, path: &str, content_type: &str, body: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
