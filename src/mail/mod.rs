//! Sending mail through the outbox.
//!
//! Every mail is a row of `mail_outbox`, written in the transaction of the
//! change that asks for it (a registration queues its verification) or as
//! the only write of a request (a password reset request, whose account is
//! looked up here, off the request path, so that every request does the
//! same work). [`Mailer::deliver_due`] is one pass over what is due: each
//! mail is claimed with a lease the database grants to one instance, its
//! link's token made (stored as a hash, and sealed with the key-encryption
//! key in the row so that a retry sends the same link), and handed to the
//! transport. A deferral is retried with backoff; a refusal, or a mail that
//! could no longer be useful, is given up and recorded. A sender that dies
//! mid-send loses its lease, and the mail goes out from another instance or
//! after the restart: a mail may go twice, never zero times.

mod compose;
mod transport;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::ExposeSecret as _;

pub use compose::{Letter, Sender, letter, spoken_duration};
pub use transport::{SendError, SmtpSettings, Transport, url_without_secrets};

use crate::audit::AuditKind;
use crate::auth::keys::Kek;
use crate::clock::{Clock, UnixMillis};
use crate::ids::{TokenHash, UserId, UsernameKey};
use crate::metrics::{MailOutcome, Metrics};
use crate::store::{
    AuditEvent, Backoff, MailKind, MailState, NewAccountToken, NewMail, OutboxMail, Store,
    UserRecord,
};

/// Accounts one password reset naming an address may reach.
const ACCOUNTS_PER_ADDRESS: i64 = 5;
/// Mails one pass looks at.
const BATCH: i64 = 100;
/// Mails handed to the transport at once.
const PARALLEL_SENDS: usize = 4;
/// How long a notice (no link) is worth sending.
const NOTICE_USEFUL_FOR: Duration = Duration::from_secs(7 * 24 * 3600);

/// How mail is written and paced.
#[derive(Debug, Clone)]
pub struct MailSettings {
    pub sender: Sender,
    /// Links to Gatehouse's own pages start here (`--public-url`).
    pub public_url: String,
    /// `--password-reset-url`, with `{token}`; default Gatehouse's page.
    pub reset_url: Option<String>,
    /// `--email-verify-url`, with `{token}`; default Gatehouse's page.
    pub verify_url: Option<String>,
    pub reset_ttl: Duration,
    pub verify_ttl: Duration,
    /// Mails an account may be sent per hour; more are dropped, silently.
    pub per_account_hourly: u32,
    /// Between attempts of a deferred mail.
    pub retry: Backoff,
    /// One attempt's deadline: connecting, talking, handing over.
    pub send_deadline: Duration,
}

impl MailSettings {
    /// The link that carries `token` for a mail of `kind`.
    pub fn link(&self, kind: MailKind, token: &str) -> String {
        let template = match kind {
            MailKind::PasswordReset => &self.reset_url,
            _ => &self.verify_url,
        };
        link(kind, &self.public_url, template.as_deref(), token)
    }

    /// How long a link of `kind` works, from when it is made.
    pub fn ttl(&self, kind: MailKind) -> Duration {
        match kind {
            MailKind::PasswordReset => self.reset_ttl,
            MailKind::EmailVerification | MailKind::EmailChange => self.verify_ttl,
            MailKind::EmailChanged => NOTICE_USEFUL_FOR,
        }
    }
}

/// The link that carries `token` for `kind`: the app's `template` with
/// `{token}` replaced, or Gatehouse's own page under `public_url`.
pub fn link(kind: MailKind, public_url: &str, template: Option<&str>, token: &str) -> String {
    let page = match kind {
        MailKind::PasswordReset => "reset-password",
        _ => "verify-email",
    };
    match template {
        Some(template) => template.replace("{token}", token),
        None => format!(
            "{}/account/{page}?token={token}",
            public_url.trim_end_matches('/')
        ),
    }
}

/// A new link token for `purpose`: 256 bits from the OS's CSPRNG, as the
/// link carries it (base64url), and the record that stores only its hash.
pub fn new_token(
    purpose: MailKind,
    user_id: &UserId,
    email: Option<&str>,
    now: UnixMillis,
    ttl: Duration,
) -> ([u8; 32], String, NewAccountToken) {
    let bytes = crate::auth::random_bytes::<32>();
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let record = NewAccountToken {
        hash: TokenHash::of(&token),
        purpose,
        user_id: user_id.clone(),
        email: email.map(str::to_owned),
        created_at: now,
        expires_at: now + ttl,
    };
    (bytes, token, record)
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pass {
    /// Requests looked up.
    pub resolved: usize,
    /// Mails handed over.
    pub sent: usize,
    /// Mails deferred, to try again.
    pub retried: usize,
    /// Mails given up.
    pub failed: usize,
}

/// The outbox's sender.
pub struct Mailer {
    store: Store,
    kek: Kek,
    settings: MailSettings,
    transport: Transport,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    /// Signalled when a mail is queued, so it goes at once.
    wake: Arc<tokio::sync::Notify>,
    /// This instance's name on the leases it takes.
    owner: String,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("transport", &self.transport)
            .field("owner", &self.owner)
            .finish()
    }
}

/// What one attempt at a claimed mail came to.
enum Attempt {
    Sent,
    Retry(String),
    GiveUp(String),
}

impl Mailer {
    pub fn new(
        store: Store,
        kek: Kek,
        settings: MailSettings,
        transport: Transport,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
        wake: Arc<tokio::sync::Notify>,
    ) -> Self {
        Self {
            store,
            kek,
            settings,
            transport,
            clock,
            metrics,
            wake,
            owner: uuid::Uuid::new_v4().to_string(),
        }
    }

    pub fn settings(&self) -> &MailSettings {
        &self.settings
    }

    /// Whether mail can go anywhere (`--smtp-url` or `--mail-dir`).
    pub fn can_send(&self) -> bool {
        self.transport.is_configured()
    }

    /// How long a lease lasts: longer than any attempt can take (the
    /// hand-over's deadline, and the few database calls around it).
    fn lease(&self) -> Duration {
        self.settings.send_deadline * 2 + Duration::from_secs(10)
    }

    /// Sends what is due, pass after pass, waking when a mail is queued here
    /// and every `poll` (for other instances' mails and retries); until
    /// aborted. Failures are logged and retried next time.
    pub async fn run(self: Arc<Self>, poll: Duration) {
        loop {
            match self.deliver_due().await {
                Ok(pass) if pass.resolved + pass.sent + pass.retried + pass.failed > 0 => {
                    tracing::debug!(?pass, "mail pass");
                    // More may be due at once (a full batch).
                    continue;
                }
                Ok(_) => {}
                Err(err) => tracing::warn!(error = %err, "cannot read the mail outbox"),
            }
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(poll) => {}
            }
        }
    }

    /// One pass: looks up the requests and sends the mails that are due
    /// and claimed by no other instance.
    pub async fn deliver_due(self: &Arc<Self>) -> Result<Pass, sqlx::Error> {
        let now = self.clock.now();
        let mut pass = Pass::default();
        let mut sends = tokio::task::JoinSet::new();
        for mail in self.store.due_mails(now, BATCH).await? {
            if mail.state == MailState::Queued && !self.can_send() {
                continue;
            }
            if !self
                .store
                .claim_mail(&mail.id, &self.owner, now, now + self.lease())
                .await?
            {
                continue;
            }
            if mail.state == MailState::Requested {
                // One request failing (a cluster's certification conflict,
                // say) does not hold up the others: its lease runs out and
                // it is looked up again.
                match self.resolve(&mail, now).await {
                    Ok(()) => pass.resolved += 1,
                    Err(err) => tracing::warn!(mail_id = %mail.id, error = %err,
                        "cannot look a mail request up; trying again later"),
                }
                continue;
            }
            if sends.len() >= PARALLEL_SENDS {
                count(&mut pass, sends.join_next().await);
            }
            let mailer = self.clone();
            sends.spawn(async move { mailer.attempt(mail).await });
        }
        while let Some(done) = sends.join_next().await {
            count(&mut pass, Some(done));
        }
        Ok(pass)
    }

    /// Turns the request `mail` into the mails of the accounts it names,
    /// each within its hourly allowance, or drops it.
    async fn resolve(&self, mail: &OutboxMail, now: UnixMillis) -> Result<(), sqlx::Error> {
        let users = self.accounts_of(mail).await?;
        let hour_ago = now - Duration::from_secs(3600);
        let mut mails = Vec::new();
        for user in &users {
            let recipient = match mail.kind {
                MailKind::PasswordReset => user.email.clone(),
                // Still the address to prove, and not proven yet.
                MailKind::EmailVerification => mail.recipient.clone().filter(|address| {
                    user.email.as_deref() == Some(address) && user.email_verified_at.is_none()
                }),
                MailKind::EmailChange | MailKind::EmailChanged => mail.recipient.clone(),
            };
            let Some(recipient) = recipient else {
                continue;
            };
            let queued = self.store.mails_queued_for(&user.id, hour_ago).await?;
            if queued >= i64::from(self.settings.per_account_hourly) {
                tracing::info!(user_id = %user.id, kind = mail.kind.as_str(),
                    "mail not sent: the account's hourly allowance is spent");
                continue;
            }
            mails.push(NewMail::queued(
                mail.kind,
                &user.id,
                &recipient,
                mail.ip.as_deref(),
            ));
        }
        let state = if mails.is_empty() {
            MailState::Dropped
        } else {
            MailState::Resolved
        };
        if !self
            .store
            .resolve_request(&mail.id, &self.owner, state, &mails, now)
            .await?
        {
            return Ok(());
        }
        if mail.kind == MailKind::PasswordReset {
            let ids: Vec<Option<&UserId>> = if users.is_empty() {
                vec![None]
            } else {
                users.iter().map(|user| Some(&user.id)).collect()
            };
            for user_id in ids {
                self.record(AuditKind::PasswordResetRequested, user_id, mail, None, now)
                    .await;
            }
        }
        if mails.is_empty() {
            self.metrics.mail(MailOutcome::Dropped);
        }
        for _ in &mails {
            self.metrics.mail(MailOutcome::Queued);
        }
        self.wake.notify_one();
        Ok(())
    }

    /// The enabled accounts a request is about: its user, or those its
    /// lookup names.
    async fn accounts_of(&self, mail: &OutboxMail) -> Result<Vec<UserRecord>, sqlx::Error> {
        let users = match (&mail.user_id, mail.lookup.as_deref()) {
            (Some(user_id), _) => self
                .store
                .find_user_by_id(user_id)
                .await?
                .into_iter()
                .collect(),
            (None, Some(lookup)) => match lookup.split_once(':') {
                Some(("username", name)) => {
                    let key = UsernameKey::of(name);
                    self.store
                        .find_user_by_key(&key)
                        .await?
                        .into_iter()
                        .collect()
                }
                Some(("email", address)) => {
                    self.store
                        .find_users_by_email(address, ACCOUNTS_PER_ADDRESS)
                        .await?
                }
                _ => Vec::new(),
            },
            (None, None) => Vec::new(),
        };
        Ok(users
            .into_iter()
            .filter(|user| user.disabled_at.is_none())
            .collect())
    }

    /// Makes or reopens the mail's link, writes the mail and hands it over;
    /// settles the row by the outcome.
    async fn attempt(&self, mail: OutboxMail) -> Result<Attempt, sqlx::Error> {
        let now = self.clock.now();
        let useful_until = mail.created_at + self.settings.ttl(mail.kind);
        let outcome = if now >= useful_until {
            Attempt::GiveUp("no longer useful: its link would have expired".into())
        } else {
            match self.write(&mail, now).await? {
                Ok(Some(message)) => {
                    match self
                        .transport
                        .send(&mail.id, message, self.settings.send_deadline)
                        .await
                    {
                        Ok(()) => Attempt::Sent,
                        Err(SendError::Transient(why)) => Attempt::Retry(why),
                        Err(SendError::Permanent(why)) => Attempt::GiveUp(why),
                    }
                }
                // Someone else holds it now.
                Ok(None) => return Ok(Attempt::Retry(String::new())),
                Err(why) => Attempt::GiveUp(why),
            }
        };
        let now = self.clock.now();
        match &outcome {
            Attempt::Sent => {
                self.store
                    .finish_mail(&mail.id, &self.owner, MailState::Sent, None, now)
                    .await?;
                self.metrics.mail(MailOutcome::Sent);
                tracing::info!(mail_id = %mail.id, kind = mail.kind.as_str(), "mail sent");
            }
            Attempt::Retry(why) if why.is_empty() => {}
            Attempt::Retry(why) => {
                let attempt = u32::try_from(mail.attempts + 1).unwrap_or(u32::MAX);
                let next = now + self.settings.retry.pause_from_half(attempt);
                if next >= useful_until {
                    return self.give_up(&mail, why, now).await;
                }
                self.store
                    .retry_mail(&mail.id, &self.owner, next, &short(why))
                    .await?;
                self.metrics.mail(MailOutcome::Retried);
                tracing::warn!(mail_id = %mail.id, error = %why, "mail deferred; trying again later");
            }
            Attempt::GiveUp(why) => return self.give_up(&mail, why, now).await,
        }
        Ok(outcome)
    }

    async fn give_up(
        &self,
        mail: &OutboxMail,
        why: &str,
        now: UnixMillis,
    ) -> Result<Attempt, sqlx::Error> {
        if self
            .store
            .finish_mail(
                &mail.id,
                &self.owner,
                MailState::Failed,
                Some(&short(why)),
                now,
            )
            .await?
        {
            tracing::warn!(mail_id = %mail.id, error = %why, "mail given up");
            self.metrics.mail(MailOutcome::Failed);
            self.record(
                AuditKind::MailFailed,
                mail.user_id.as_ref(),
                mail,
                Some(mail.kind.as_str()),
                now,
            )
            .await;
        }
        Ok(Attempt::GiveUp(why.to_owned()))
    }

    /// The message of `mail`, with its link (made on the first attempt);
    /// `Ok(None)` if the lease was lost meanwhile; `Err` if it cannot be
    /// written at all.
    async fn write(
        &self,
        mail: &OutboxMail,
        now: UnixMillis,
    ) -> Result<Result<Option<lettre::Message>, String>, sqlx::Error> {
        let (Some(user_id), Some(recipient)) = (&mail.user_id, &mail.recipient) else {
            return Ok(Err("the mail names no account or recipient".into()));
        };
        let Some(user) = self.store.find_user_by_id(user_id).await? else {
            return Ok(Err("the account no longer exists".into()));
        };
        let link = if mail.kind.has_link() {
            let token = match self.token_of(mail, recipient, now).await? {
                Some(token) => token,
                None => return Ok(Ok(None)),
            };
            self.settings.link(mail.kind, &token)
        } else {
            String::new()
        };
        let new_address = user.email.as_deref();
        let letter = letter(
            mail.kind,
            &self.settings.sender,
            &user.username,
            &link,
            self.settings.ttl(mail.kind),
            new_address,
        );
        Ok(compose::message(&self.settings.sender, recipient, letter).map(Some))
    }

    /// The token of `mail`'s link: opened from the row, or made now and
    /// stored (its hash, with what it proves) with its sealed copy.
    async fn token_of(
        &self,
        mail: &OutboxMail,
        recipient: &str,
        now: UnixMillis,
    ) -> Result<Option<String>, sqlx::Error> {
        let label = format!("mail:{}", mail.id);
        if let Some(sealed) = &mail.sealed_token {
            return Ok(self
                .kek
                .open_secret(&label, sealed)
                .map(|bytes| URL_SAFE_NO_PAD.encode(bytes.expose_secret())));
        }
        let Some(user_id) = &mail.user_id else {
            return Ok(None);
        };
        let ttl = self.settings.ttl(mail.kind);
        let (bytes, token, record) = new_token(mail.kind, user_id, Some(recipient), now, ttl);
        let sealed = self.kek.seal_secret(&label, &bytes);
        Ok(self
            .store
            .attach_token(&mail.id, &self.owner, &sealed, &record)
            .await?
            .then_some(token))
    }

    async fn record(
        &self,
        event: AuditKind,
        user_id: Option<&UserId>,
        mail: &OutboxMail,
        detail: Option<&str>,
        now: UnixMillis,
    ) {
        self.metrics.event(event);
        let record = AuditEvent {
            occurred_at: now,
            event: event.as_str().to_owned(),
            user_id: user_id.cloned(),
            session_id: None,
            ip: mail.ip.clone(),
            user_agent: None,
            detail: detail.map(str::to_owned),
        };
        if let Err(err) = self.store.insert_audit_event(&record).await {
            tracing::error!(error = %err, %event, "cannot record an audit event");
        }
    }
}

/// Adds one finished send to the pass and to the mail counters.
fn count(
    pass: &mut Pass,
    done: Option<Result<Result<Attempt, sqlx::Error>, tokio::task::JoinError>>,
) {
    match done {
        Some(Ok(Ok(Attempt::Sent))) => pass.sent += 1,
        Some(Ok(Ok(Attempt::Retry(why)))) if why.is_empty() => {}
        Some(Ok(Ok(Attempt::Retry(_)))) => pass.retried += 1,
        Some(Ok(Ok(Attempt::GiveUp(_)))) => pass.failed += 1,
        Some(Ok(Err(err))) => {
            tracing::warn!(error = %err, "cannot settle a mail; its lease will run out")
        }
        Some(Err(err)) => tracing::error!(error = %err, "a mail send task failed"),
        None => {}
    }
}

/// `why` cut to what the outbox keeps.
fn short(why: &str) -> String {
    why.chars().take(250).collect()
}
