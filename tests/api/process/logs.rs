//! The log lines: colour only on a terminal, JSON, request ids.

use super::*;

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
