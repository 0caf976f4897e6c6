//! The `gatehouse` binary as operators run it, and the database going away.
//! The binary tests use SQLite (or no database at all): they test the
//! process, not a store. Helpers here; tests by subject in the files below.

mod cli;
mod connections;
mod lifecycle;
mod logs;
mod mail;

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::{PASSWORD, Reply};

const BIN: &str = env!("CARGO_BIN_EXE_gatehouse");

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
                // Waiting for the other process to listen.
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
            // Waiting for the other process to accept or close them.
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
            // Waiting for the other process to exit.
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
    http_with(addr, method, path, content_type, "", body)
}

/// [`http`] with `headers` (each line ending in `\r\n`) added.
fn http_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    content_type: &str,
    headers: &str,
    body: &str,
) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\n{headers}\
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
