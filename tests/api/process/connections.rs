//! Hostile and idle connections: header timeouts, HTTP/2, the connection cap.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::*;

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
