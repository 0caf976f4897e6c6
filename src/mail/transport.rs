//! Where mail goes: an SMTP server (lettre: STARTTLS or implicit TLS with
//! certificate checks, authentication, pooled connections, a deadline on
//! every step), a directory of `.eml` files (development), or nowhere yet.

use std::path::PathBuf;
use std::time::Duration;

use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor};

/// How one attempt to hand a mail over ended, when it did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// Worth trying again later: a 4xx reply, a refused or broken
    /// connection, a timeout, a TLS failure (a certificate may be renewed).
    Transient(String),
    /// The server refused this mail for good (a 5xx reply).
    Permanent(String),
}

/// Where mail goes.
#[derive(Clone)]
pub enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    /// Each mail becomes `<id>.eml` in this directory (`--mail-dir`).
    Dir(PathBuf),
    /// Neither is configured: mails wait in the outbox.
    None,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Smtp(_) => f.write_str("Transport::Smtp"),
            Self::Dir(dir) => write!(f, "Transport::Dir({})", dir.display()),
            Self::None => f.write_str("Transport::None"),
        }
    }
}

/// How to reach the SMTP server.
#[derive(Debug, Clone)]
pub struct SmtpSettings {
    /// `smtp://[user:pass@]host[:port]` (`?tls=required` for STARTTLS),
    /// `smtps://…` (implicit TLS).
    pub url: String,
    /// PEM certificates trusted besides the system's (a private CA).
    pub ca_file: Option<PathBuf>,
    /// The deadline of each step: connecting, and each command's answer.
    pub timeout: Duration,
}

impl Transport {
    /// The SMTP transport `settings` describe; why not, in one line.
    pub fn smtp(settings: &SmtpSettings) -> Result<Self, String> {
        let url = url_without_secrets(&settings.url);
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(&settings.url)
            .map_err(|err| format!("--smtp-url {url}: {err}"))?;
        if let Some(ca_file) = &settings.ca_file {
            let pem = std::fs::read(ca_file)
                .map_err(|err| format!("--smtp-ca-file {}: {err}", ca_file.display()))?;
            let certificate = Certificate::from_pem(&pem)
                .map_err(|err| format!("--smtp-ca-file {}: {err}", ca_file.display()))?;
            let host = host_of(&settings.url).ok_or("--smtp-url names no host")?;
            let parameters = TlsParameters::builder(host)
                .add_root_certificate(certificate)
                .build()
                .map_err(|err| format!("--smtp-ca-file {}: {err}", ca_file.display()))?;
            let tls = match tls_mode(&settings.url) {
                TlsMode::Implicit => Tls::Wrapper(parameters),
                TlsMode::StartTls => Tls::Required(parameters),
                TlsMode::Opportunistic => Tls::Opportunistic(parameters),
                TlsMode::None => {
                    return Err(
                        "--smtp-ca-file needs TLS: smtps:// or smtp://…?tls=required".into(),
                    );
                }
            };
            builder = builder.tls(tls);
        }
        let transport = builder
            .timeout(Some(settings.timeout))
            .pool_config(
                PoolConfig::new()
                    .max_size(4)
                    .idle_timeout(Duration::from_secs(60)),
            )
            .build();
        Ok(Self::Smtp(transport))
    }

    /// Whether mail can go anywhere.
    pub fn is_configured(&self) -> bool {
        !matches!(self, Self::None)
    }

    /// Hands `message` over, as mail `id`, within `deadline`.
    pub async fn send(
        &self,
        id: &str,
        message: Message,
        deadline: Duration,
    ) -> Result<(), SendError> {
        match self {
            Self::Smtp(smtp) => match tokio::time::timeout(deadline, smtp.send(message)).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(err)) if err.is_permanent() => Err(SendError::Permanent(err.to_string())),
                Ok(Err(err)) => Err(SendError::Transient(err.to_string())),
                Err(_) => Err(SendError::Transient(format!(
                    "the SMTP server took longer than {deadline:?}"
                ))),
            },
            Self::Dir(dir) => write_eml(dir, id, &message.formatted())
                .await
                .map_err(|err| {
                    SendError::Transient(format!("--mail-dir {}: {err}", dir.display()))
                }),
            Self::None => Err(SendError::Transient("no --smtp-url or --mail-dir".into())),
        }
    }
}

/// Writes `<dir>/<id>.eml`, readable by its owner only (it holds a link
/// that works once), complete or not at all.
async fn write_eml(dir: &std::path::Path, id: &str, bytes: &[u8]) -> std::io::Result<()> {
    let dir = dir.to_owned();
    let id = id.to_owned();
    let bytes = bytes.to_owned();
    tokio::task::spawn_blocking(move || {
        use std::io::Write as _;
        crate::store::create_private_dir(&dir)?;
        let part = dir.join(format!(".{id}.eml.part"));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&part)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        std::fs::rename(&part, dir.join(format!("{id}.eml")))
    })
    .await
    .map_err(std::io::Error::other)?
}

enum TlsMode {
    None,
    Opportunistic,
    StartTls,
    Implicit,
}

fn tls_mode(url: &str) -> TlsMode {
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("smtps:") {
        TlsMode::Implicit
    } else if lower.contains("tls=required") {
        TlsMode::StartTls
    } else if lower.contains("tls=opportunistic") {
        TlsMode::Opportunistic
    } else {
        TlsMode::None
    }
}

/// The host of an `smtp://` or `smtps://` URL.
fn host_of(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split_once(']')?.0
    } else {
        host_port.split(':').next()?
    };
    (!host.is_empty()).then(|| host.to_owned())
}

/// The URL as it may be shown: its password replaced.
pub fn url_without_secrets(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "(not a URL)".into();
    };
    let (authority, path) = rest
        .find(['/', '?'])
        .map_or((rest, ""), |at| rest.split_at(at));
    match authority.rsplit_once('@') {
        Some((user_info, host)) => {
            let user = user_info.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}{path}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_is_read_from_every_form_of_url() {
        assert_eq!(
            host_of("smtp://mail.example.org").as_deref(),
            Some("mail.example.org")
        );
        assert_eq!(
            host_of("smtps://u:p%40ss@mail.example.org:465/").as_deref(),
            Some("mail.example.org")
        );
        assert_eq!(
            host_of("smtp://[::1]:25?tls=required").as_deref(),
            Some("::1")
        );
        assert_eq!(host_of("smtp://"), None);
    }

    #[test]
    fn a_shown_url_never_holds_the_password() {
        assert_eq!(
            url_without_secrets("smtp://user:secret@mail.example.org:587?tls=required"),
            "smtp://user:***@mail.example.org:587?tls=required"
        );
        assert_eq!(
            url_without_secrets("smtp://localhost:25"),
            "smtp://localhost:25"
        );
    }
}
