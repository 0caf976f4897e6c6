//! A real SMTP server for the tests: `tests/mail/smtp_sink.py` (aiosmtpd)
//! in a process of its own, recording each mail it accepts into a
//! directory, and told per message to accept, defer (451), reject (550) or
//! dawdle. Stopping and restarting it is an SMTP outage.

use std::io::BufRead as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

/// How the server wants to be talked to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SinkTls {
    #[default]
    None,
    StartTls,
    Implicit,
}

/// The SMTP server process.
pub struct SmtpSink {
    pub port: u16,
    dir: tempfile::TempDir,
    tls: SinkTls,
    auth: Option<(String, String)>,
    child: Option<Child>,
}

/// One mail the server accepted.
#[derive(Debug, Clone)]
pub struct ReceivedMail(pub Value);

impl ReceivedMail {
    pub fn to(&self) -> Vec<String> {
        self.0["rcpt_tos"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    }

    pub fn subject(&self) -> &str {
        self.0["subject"].as_str().unwrap()
    }

    pub fn text(&self) -> &str {
        self.0["text"].as_str().unwrap_or_default()
    }

    pub fn html(&self) -> &str {
        self.0["html"].as_str().unwrap_or_default()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.0["headers"][name.to_ascii_lowercase()].as_str()
    }

    /// Whether it came over TLS, and authenticated.
    pub fn tls(&self) -> bool {
        self.0["tls"].as_bool().unwrap()
    }

    pub fn authenticated(&self) -> bool {
        self.0["authenticated"].as_bool().unwrap()
    }

    /// The link of the text part (the line starting with http).
    pub fn link(&self) -> String {
        self.text()
            .lines()
            .find(|line| line.starts_with("http"))
            .unwrap_or_else(|| panic!("a link in {}", self.text()))
            .trim()
            .to_owned()
    }

    /// The `token` parameter of its link.
    pub fn token(&self) -> String {
        let link = self.link();
        link.split_once("token=")
            .unwrap_or_else(|| panic!("a token in {link}"))
            .1
            .split('&')
            .next()
            .unwrap()
            .to_owned()
    }
}

/// A Python that has the sink's packages (`tests/mail/requirements.txt`):
/// `python3` if it has them, else a virtualenv made once under the target
/// directory, so that `cargo test` alone is enough on a fresh machine.
fn python() -> &'static PathBuf {
    static PYTHON: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PYTHON.get_or_init(|| {
        let has_packages = |python: &std::path::Path| {
            Command::new(python)
                .args(["-c", "import aiosmtpd, trustme"])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|status| status.success())
        };
        let system = PathBuf::from("python3");
        if has_packages(&system) {
            return system;
        }
        let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("smtp-sink-venv");
        let python = venv.join("bin/python");
        if !has_packages(&python) {
            let made = Command::new("python3")
                .args(["-m", "venv"])
                .arg(&venv)
                .status()
                .expect("python3 runs");
            assert!(made.success(), "python3 -m venv {}", venv.display());
            let requirements = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mail/requirements.txt");
            let installed = Command::new(&python)
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "-r",
                ])
                .arg(requirements)
                .status()
                .expect("pip runs");
            assert!(installed.success(), "pip install -r {requirements}");
        }
        python
    })
}

impl SmtpSink {
    /// A plain SMTP server on a free port.
    pub async fn start() -> Self {
        Self::start_with(SinkTls::None, None).await
    }

    /// A server with `tls`, requiring `auth` (user, password) if given.
    pub async fn start_with(tls: SinkTls, auth: Option<(&str, &str)>) -> Self {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let mut sink = Self {
            port,
            dir: tempfile::tempdir().unwrap(),
            tls,
            auth: auth.map(|(u, p)| (u.to_owned(), p.to_owned())),
            child: None,
        };
        sink.launch().await;
        sink
    }

    async fn launch(&mut self) {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mail/smtp_sink.py");
        let python = tokio::task::spawn_blocking(python).await.unwrap();
        let mut command = Command::new(python);
        command
            .arg(script)
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        match self.tls {
            SinkTls::None => {}
            SinkTls::StartTls => {
                command.args(["--tls", "starttls"]);
            }
            SinkTls::Implicit => {
                command.args(["--tls", "implicit"]);
            }
        }
        if let Some((user, password)) = &self.auth {
            command.arg("--auth").arg(format!("{user}:{password}"));
        }
        let mut child = command
            .spawn()
            .expect("python runs tests/mail/smtp_sink.py");
        let stdout = child.stdout.take().unwrap();
        let ready = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            std::io::BufReader::new(stdout)
                .read_line(&mut line)
                .unwrap();
            line
        })
        .await
        .unwrap();
        assert_eq!(ready.trim(), "ready", "the SMTP sink started");
        self.child = Some(child);
    }

    /// The `--smtp-url` that reaches it.
    pub fn url(&self) -> String {
        let credentials = self
            .auth
            .as_ref()
            .map_or(String::new(), |(u, p)| format!("{u}:{p}@"));
        match self.tls {
            SinkTls::None => format!("smtp://{credentials}127.0.0.1:{}", self.port),
            SinkTls::StartTls => {
                format!("smtp://{credentials}localhost:{}?tls=required", self.port)
            }
            SinkTls::Implicit => format!("smtps://{credentials}localhost:{}", self.port),
        }
    }

    /// The CA that signed its certificate (with TLS).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// Every mail accepted so far, in order.
    pub fn mails(&self) -> Vec<ReceivedMail> {
        let mut names: Vec<_> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|path| {
                ReceivedMail(serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap())
            })
            .collect()
    }

    /// The mails accepted for `address`.
    pub fn mails_to(&self, address: &str) -> Vec<ReceivedMail> {
        self.mails()
            .into_iter()
            .filter(|mail| mail.to().iter().any(|to| to == address))
            .collect()
    }

    /// How it answers the next messages: `ok`, `defer`, `reject`, `slow 1`.
    pub fn set_mode(&self, mode: &str) {
        std::fs::write(self.dir.path().join("mode"), mode).unwrap();
    }

    /// Whether a mail has been in the middle of its hand-over (in `slow`
    /// mode) since the last call.
    pub fn take_inflight(&self) -> bool {
        std::fs::remove_file(self.dir.path().join("inflight")).is_ok()
    }

    /// Stops it: connections are refused until [`SmtpSink::restart`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, keeping what it recorded.
    pub async fn restart(&mut self) {
        self.stop();
        self.launch().await;
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.stop();
    }
}
