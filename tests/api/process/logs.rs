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

#[test]
fn client_secrets_and_mailed_tokens_reach_no_log_line() {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("gatehouse.log");
    let mail_dir = dir.path().join("mail");
    let mail_dir_arg = mail_dir.display().to_string();
    let server = Server::start_logging_to(
        dir.path(),
        &[
            "--mail-dir",
            &mail_dir_arg,
            "--argon2-memory-kib",
            "256",
            "--argon2-iterations",
            "1",
        ],
        Some(&log_path),
    );
    let created = gatehouse(
        &["client", "create", "--name", "worker", "--confidential"],
        dir.path(),
    )
    .output()
    .unwrap();
    assert!(created.status.success(), "{created:?}");
    let client: serde_json::Value = serde_json::from_slice(&created.stdout).unwrap();
    let (id, secret) = (
        client["client_id"].as_str().unwrap().to_owned(),
        client["client_secret"].as_str().unwrap().to_owned(),
    );
    for presented in [secret.as_str(), "a-wrong-secret-that-is-long-enough"] {
        let body =
            format!("grant_type=client_credentials&client_id={id}&client_secret={presented}");
        server.request(
            "POST",
            "/oauth/token",
            "application/x-www-form-urlencoded",
            &body,
        );
        let body = format!("token=junk&client_id={id}&client_secret={presented}");
        server.request(
            "POST",
            "/oauth/introspect",
            "application/x-www-form-urlencoded",
            &body,
        );
    }
    // A registration's verification mail, with its token.
    let body =
        format!(r#"{{"username":"alice","password":"{PASSWORD}","email":"alice@example.org"}}"#);
    server.request("POST", "/users", "application/json", &body);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mail = loop {
        let found = std::fs::read_dir(&mail_dir)
            .ok()
            .and_then(|mut entries| entries.next())
            .map(|entry| std::fs::read_to_string(entry.unwrap().path()).unwrap());
        if let Some(mail) = found {
            break mail;
        }
        assert!(Instant::now() < deadline, "the mail was written");
        std::thread::sleep(Duration::from_millis(50));
    };
    let unfolded = mail.replace("=\r\n", "").replace("=3D", "=");
    let token = unfolded
        .split("token=")
        .nth(1)
        .map(|rest| rest.chars().take(43).collect::<String>())
        .expect("a token in the mail");
    server.signal("TERM");
    assert_eq!(server.wait().code(), Some(0));
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.contains("mail sent"), "the log covers the flows: {log}");
    for secret in [
        secret.as_str(),
        "a-wrong-secret-that-is-long-enough",
        token.as_str(),
    ] {
        assert!(!log.contains(secret), "{secret} in the log");
    }
}

#[test]
fn the_authorization_code_flows_secrets_reach_no_log_line() {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("gatehouse.log");
    let server = Server::start_logging_to(
        dir.path(),
        &["--argon2-memory-kib", "256", "--argon2-iterations", "1"],
        Some(&log_path),
    );
    let body = format!(r#"{{"username":"alice","password":"{PASSWORD}"}}"#);
    server.request("POST", "/users", "application/json", &body);
    let created = gatehouse(
        &[
            "client",
            "create",
            "--name",
            "app",
            "--first-party",
            "--scope",
            "profile",
            "--redirect-uri",
            "http://127.0.0.1/callback",
        ],
        dir.path(),
    )
    .output()
    .unwrap();
    assert!(created.status.success(), "{created:?}");
    let client: serde_json::Value = serde_json::from_slice(&created.stdout).unwrap();
    let client_id = client["client_id"].as_str().unwrap().to_owned();
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let query = format!(
        "response_type=code&client_id={client_id}&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcallback\
         &scope=profile&state=st4te&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM\
         &code_challenge_method=S256"
    );
    let page = server.request(
        "GET",
        &format!("/oauth/authorize?{query}"),
        "text/plain",
        "",
    );
    let cookie_of = |response: &str, name: &str| {
        response
            .lines()
            .find_map(|line| line.strip_prefix(&format!("set-cookie: {name}=")))
            .and_then(|rest| rest.split(';').next())
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("no {name} cookie: {response}"))
    };
    let csrf = cookie_of(&page, "gatehouse-csrf");
    let form = |password: &str| {
        format!(
            "step=login&csrf={csrf}&{query}&username=alice&password={}",
            password.replace(' ', "+")
        )
    };
    let cookie = format!("Cookie: gatehouse-csrf={csrf}\r\n");
    let wrong = "a wrong password 42";
    let refused = http_with(
        server.addr,
        "POST",
        "/oauth/authorize",
        "application/x-www-form-urlencoded",
        &cookie,
        &form(wrong),
    );
    assert!(refused.starts_with("HTTP/1.1 400"), "{refused}");
    let back = http_with(
        server.addr,
        "POST",
        "/oauth/authorize",
        "application/x-www-form-urlencoded",
        &cookie,
        &form(PASSWORD),
    );
    assert!(back.starts_with("HTTP/1.1 302"), "{back}");
    let session = cookie_of(&back, "gatehouse-session");
    let code = back
        .split("code=")
        .nth(1)
        .map(|rest| rest.chars().take(43).collect::<String>())
        .expect("a code in the Location");
    let redeem = format!(
        "grant_type=authorization_code&client_id={client_id}&code={code}\
         &redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcallback&code_verifier={verifier}"
    );
    let tokens = server.request(
        "POST",
        "/oauth/token",
        "application/x-www-form-urlencoded",
        &redeem,
    );
    assert!(tokens.starts_with("HTTP/1.1 200"), "{tokens}");
    // Replayed: refused, and logged as such, without the code.
    server.request(
        "POST",
        "/oauth/token",
        "application/x-www-form-urlencoded",
        &redeem,
    );
    server.signal("TERM");
    assert_eq!(server.wait().code(), Some(0));
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        log.contains("redeemed twice"),
        "the log covers the flow: {log}"
    );
    for secret in [
        PASSWORD,
        wrong,
        csrf.as_str(),
        session.as_str(),
        code.as_str(),
        verifier,
        "st4te",
    ] {
        assert!(!log.contains(secret), "{secret} in the log");
    }
}

#[test]
fn the_second_factors_secrets_reach_no_log_line_and_an_operator_resets_it() {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("gatehouse.log");
    let server = Server::start_logging_to(
        dir.path(),
        &["--argon2-memory-kib", "256", "--argon2-iterations", "1"],
        Some(&log_path),
    );
    let json_of = |response: &str| -> serde_json::Value {
        let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
        serde_json::from_str(body).unwrap_or_else(|_| panic!("{response}"))
    };
    let body = format!(r#"{{"username":"alice","password":"{PASSWORD}"}}"#);
    server.request("POST", "/users", "application/json", &body);
    let tokens = json_of(&server.request("POST", "/auth/login", "application/json", &body));
    let bearer = format!(
        "Authorization: Bearer {}\r\n",
        tokens["access_token"].as_str().unwrap()
    );
    let authorized = |path: &str, body: &str| {
        json_of(&http_with(
            server.addr,
            "POST",
            path,
            "application/json",
            &bearer,
            body,
        ))
    };
    let started = authorized(
        "/users/me/mfa/totp",
        &format!(r#"{{"current_password":"{PASSWORD}"}}"#),
    );
    let secret = started["secret"].as_str().unwrap().to_owned();
    let bytes: [u8; 20] = totp_rs::Secret::try_from_base32(&secret)
        .unwrap()
        .as_bytes()
        .try_into()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let otp = gatehouse::auth::mfa::totp::code_at(&secrecy::SecretBox::new(Box::new(bytes)), now);
    let confirmed = authorized(
        "/users/me/mfa/totp/confirm",
        &format!(r#"{{"code":"{otp}"}}"#),
    );
    let codes: Vec<String> = confirmed["recovery_codes"]
        .as_array()
        .unwrap_or_else(|| panic!("{confirmed}"))
        .iter()
        .map(|code| code.as_str().unwrap().to_owned())
        .collect();
    let refused = server.request("POST", "/auth/login", "application/json", &body);
    assert!(refused.starts_with("HTTP/1.1 403"), "{refused}");
    let mfa_token = json_of(&refused)["mfa_token"].as_str().unwrap().to_owned();
    let second = format!(
        r#"{{"mfa_token":"{mfa_token}","recovery_code":"{}"}}"#,
        codes[0]
    );
    let signed_in = server.request("POST", "/auth/login/mfa", "application/json", &second);
    assert!(signed_in.starts_with("HTTP/1.1 200"), "{signed_in}");

    // The operator's reset, for a user who lost the phone and the codes.
    let reset = gatehouse(&["user", "mfa-reset", "--username", "alice"], dir.path())
        .output()
        .unwrap();
    assert!(reset.status.success(), "{reset:?}");
    assert!(String::from_utf8_lossy(&reset.stderr).contains("second factor of alice is removed"));
    let unknown = gatehouse(&["user", "mfa-reset", "--username", "nobody"], dir.path())
        .output()
        .unwrap();
    assert!(!unknown.status.success(), "{unknown:?}");
    // Other instances see it within --session-check-ttl; the login at once.
    let again = server.request("POST", "/auth/login", "application/json", &body);
    assert!(again.starts_with("HTTP/1.1 200"), "{again}");

    server.signal("TERM");
    assert_eq!(server.wait().code(), Some(0));
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        log.contains("second factor enabled") && log.contains("recovery code used"),
        "the log covers the flow: {log}"
    );
    let mut secrets = vec![secret.clone(), secret.to_lowercase(), otp, mfa_token];
    secrets.extend(codes.iter().cloned());
    secrets.extend(codes.iter().map(|code| code.replace('-', "")));
    for secret in &secrets {
        assert!(!log.contains(secret.as_str()), "{secret} in the log");
    }
}
