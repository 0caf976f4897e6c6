//! The mail outbox: mails written with the change that asks for them, and
//! claimed, sent and settled by whichever instance gets to them first.

use sqlx::{AnyConnection, Connection as _, FromRow as _, Row as _};

use super::Store;
use super::single_use::{self, SingleUse};
use crate::clock::UnixMillis;
use crate::ids::{TokenHash, UserId};

/// What a mail is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MailKind {
    /// A link to set a new password.
    PasswordReset,
    /// A link that proves the account's address.
    EmailVerification,
    /// A link, sent to a new address, that makes it the account's.
    EmailChange,
    /// A notice to the old, verified address that the address changed.
    EmailChanged,
}

impl MailKind {
    pub const ALL: [Self; 4] = [
        Self::PasswordReset,
        Self::EmailVerification,
        Self::EmailChange,
        Self::EmailChanged,
    ];

    /// The name stored in `mail_outbox.kind` (and, for the kinds that carry
    /// a link, `account_tokens.purpose`), and shown in `/metrics`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PasswordReset => "password_reset",
            Self::EmailVerification => "email_verification",
            Self::EmailChange => "email_change",
            Self::EmailChanged => "email_changed",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }

    /// Whether the mail carries a single-use link.
    pub fn has_link(self) -> bool {
        !matches!(self, Self::EmailChanged)
    }
}

/// Where a mail is in its life (`mail_outbox.state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MailState {
    /// A password reset naming a username or address, not yet looked up.
    Requested,
    /// To send, due at `next_attempt_at`.
    Queued,
    Sent,
    /// Refused for good by the server, or no longer useful.
    Failed,
    /// Not sent: no such account, or past the account's allowance.
    Dropped,
    /// A request turned into its accounts' queued mails.
    Resolved,
}

impl MailState {
    pub const ALL: [Self; 6] = [
        Self::Requested,
        Self::Queued,
        Self::Sent,
        Self::Failed,
        Self::Dropped,
        Self::Resolved,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Requested => "requested",
            Self::Queued => "queued",
            Self::Sent => "sent",
            Self::Failed => "failed",
            Self::Dropped => "dropped",
            Self::Resolved => "resolved",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.as_str() == name)
    }
}

/// A mail to write into the outbox.
#[derive(Debug, Clone)]
pub struct NewMail {
    pub id: String,
    pub kind: MailKind,
    pub state: MailState,
    pub user_id: Option<UserId>,
    /// What a password reset request named: `username:…` or `email:…`.
    pub lookup: Option<String>,
    pub recipient: Option<String>,
    /// The client address that asked for it (for the audit trail).
    pub ip: Option<String>,
}

impl NewMail {
    /// A mail of `kind` to send to `recipient`, about `user_id`.
    pub fn queued(kind: MailKind, user_id: &UserId, recipient: &str, ip: Option<&str>) -> Self {
        Self {
            id: uuid::Uuid::new_v4().to_string(),
            kind,
            state: MailState::Queued,
            user_id: Some(user_id.clone()),
            lookup: None,
            recipient: Some(recipient.to_owned()),
            ip: ip.map(str::to_owned),
        }
    }

    /// A request for a mail of `kind` to `recipient` about `user_id`, to be
    /// checked against the account's allowance before it is queued.
    pub fn requested(kind: MailKind, user_id: &UserId, recipient: &str, ip: Option<&str>) -> Self {
        Self {
            state: MailState::Requested,
            ..Self::queued(kind, user_id, recipient, ip)
        }
    }

    /// A password reset request for the account that `lookup` names.
    pub fn reset_request(lookup: String, ip: Option<&str>) -> Self {
        Self {
            id: uuid::Uuid::new_v4().to_string(),
            kind: MailKind::PasswordReset,
            state: MailState::Requested,
            user_id: None,
            lookup: Some(lookup),
            recipient: None,
            ip: ip.map(str::to_owned),
        }
    }
}

/// A mail as stored.
#[derive(Debug, Clone)]
pub struct OutboxMail {
    pub id: String,
    pub kind: MailKind,
    pub state: MailState,
    pub user_id: Option<UserId>,
    pub lookup: Option<String>,
    pub recipient: Option<String>,
    pub sealed_token: Option<String>,
    pub ip: Option<String>,
    pub attempts: i64,
    pub created_at: UnixMillis,
    pub next_attempt_at: UnixMillis,
    pub last_error: Option<String>,
}

const MAIL_COLUMNS: &str = "id, kind, state, user_id, lookup, recipient, sealed_token, ip, \
     attempts, created_at, next_attempt_at, last_error";

impl OutboxMail {
    fn from_row(row: &sqlx::any::AnyRow) -> Result<Self, sqlx::Error> {
        let kind: String = row.try_get("kind")?;
        let state: String = row.try_get("state")?;
        let unknown = |what: &str, name: &str| {
            sqlx::Error::Decode(format!("unknown mail {what} {name:?}").into())
        };
        Ok(Self {
            id: row.try_get("id")?,
            kind: MailKind::parse(&kind).ok_or_else(|| unknown("kind", &kind))?,
            state: MailState::parse(&state).ok_or_else(|| unknown("state", &state))?,
            user_id: row.try_get("user_id")?,
            lookup: row.try_get("lookup")?,
            recipient: row.try_get("recipient")?,
            sealed_token: row.try_get("sealed_token")?,
            ip: row.try_get("ip")?,
            attempts: row.try_get("attempts")?,
            created_at: row.try_get("created_at")?,
            next_attempt_at: row.try_get("next_attempt_at")?,
            last_error: row.try_get("last_error")?,
        })
    }
}

/// A single-use token to store with the mail that carries it.
#[derive(Debug, Clone)]
pub struct NewAccountToken {
    pub hash: TokenHash,
    pub purpose: MailKind,
    pub user_id: UserId,
    /// The address the token proves (for an email change, the new one).
    pub email: Option<String>,
    pub created_at: UnixMillis,
    pub expires_at: UnixMillis,
}

/// A stored single-use token.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AccountToken {
    pub purpose: String,
    pub user_id: UserId,
    pub email: Option<String>,
    pub expires_at: UnixMillis,
    pub used_at: Option<UnixMillis>,
}

const INSERT_MAIL: &str = "INSERT INTO mail_outbox \
     (id, kind, state, user_id, lookup, recipient, ip, attempts, created_at, next_attempt_at) \
     VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?)";

/// Writes `mail` on `conn`, due at once, so that a transaction can queue a
/// mail with the change that asks for it.
pub(super) async fn insert_mail(
    conn: &mut AnyConnection,
    mail: &NewMail,
    now: UnixMillis,
) -> Result<(), sqlx::Error> {
    sqlx::query(INSERT_MAIL)
        .bind(&mail.id)
        .bind(mail.kind.as_str())
        .bind(mail.state.as_str())
        .bind(&mail.user_id)
        .bind(&mail.lookup)
        .bind(&mail.recipient)
        .bind(&mail.ip)
        .bind(now)
        .bind(now)
        .execute(conn)
        .await
        .map(drop)
}

impl Store {
    /// Writes `mail` into the outbox, due at once.
    pub async fn enqueue_mail(&self, mail: &NewMail, now: UnixMillis) -> Result<(), sqlx::Error> {
        self.run(async |conn| insert_mail(conn, mail, now).await)
            .await
    }

    /// Up to `limit` mails to look at now: requested or queued, due, and
    /// claimed by nobody (or by a sender whose lease ran out), oldest first.
    pub async fn due_mails(
        &self,
        now: UnixMillis,
        limit: i64,
    ) -> Result<Vec<OutboxMail>, sqlx::Error> {
        let sql = format!(
            "SELECT {MAIL_COLUMNS} FROM mail_outbox \
             WHERE state IN ('requested', 'queued') AND next_attempt_at <= ? \
             AND (lease_until IS NULL OR lease_until <= ?) \
             ORDER BY next_attempt_at LIMIT ?"
        );
        let rows = self
            .run(async |conn| {
                sqlx::query(&sql)
                    .bind(now)
                    .bind(now)
                    .bind(limit)
                    .fetch_all(conn)
                    .await
            })
            .await?;
        rows.iter().map(OutboxMail::from_row).collect()
    }

    /// Every mail, oldest first (for the tests and the admin).
    pub async fn all_mails(&self) -> Result<Vec<OutboxMail>, sqlx::Error> {
        let sql = format!("SELECT {MAIL_COLUMNS} FROM mail_outbox ORDER BY created_at, id");
        let rows = self
            .run(async |conn| sqlx::query(&sql).fetch_all(conn).await)
            .await?;
        rows.iter().map(OutboxMail::from_row).collect()
    }

    /// Claims mail `id` for `owner` until `lease_until`, if it is still
    /// due and unclaimed at `now`; whether this call did. Of instances
    /// racing for one mail, the database lets one win (a loser the
    /// database aborted hears `false` too).
    pub async fn claim_mail(
        &self,
        id: &str,
        owner: &str,
        now: UnixMillis,
        lease_until: UnixMillis,
    ) -> Result<bool, sqlx::Error> {
        let update = sqlx::query(
            "UPDATE mail_outbox SET lease_owner = ?, lease_until = ? \
             WHERE id = ? AND state IN ('requested', 'queued') AND next_attempt_at <= ? \
             AND (lease_until IS NULL OR lease_until <= ?)",
        )
        .bind(owner)
        .bind(lease_until)
        .bind(id)
        .bind(now)
        .bind(now);
        match self.run(async |conn| update.execute(conn).await).await {
            Ok(done) => Ok(done.rows_affected() == 1),
            // Another instance claimed it at the same moment (on a Galera
            // cluster, through another node: a certification failure).
            Err(err) if super::is_transient(&err) => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// Settles the request `id` claimed by `owner`: it becomes `state`
    /// (resolved or dropped) and `mails` are queued, in one transaction;
    /// whether `owner` still held it.
    pub async fn resolve_request(
        &self,
        id: &str,
        owner: &str,
        state: MailState,
        mails: &[NewMail],
        now: UnixMillis,
    ) -> Result<bool, sqlx::Error> {
        let begin = self.begin_write();
        self.retry_aborted(|| {
            self.run(async |conn| {
                let mut tx = conn.begin_with(begin).await?;
                let settled = sqlx::query(
                    "UPDATE mail_outbox SET state = ?, finished_at = ?, lease_until = NULL \
                 WHERE id = ? AND lease_owner = ? AND state = 'requested'",
                )
                .bind(state.as_str())
                .bind(now)
                .bind(id)
                .bind(owner)
                .execute(&mut *tx)
                .await?;
                if settled.rows_affected() != 1 {
                    return Ok(false);
                }
                for mail in mails {
                    insert_mail(&mut tx, mail, now).await?;
                }
                tx.commit().await?;
                Ok(true)
            })
        })
        .await
    }

    /// Stores `token` and the mail's sealed copy of it together, if mail
    /// `id` is still `owner`'s and has none yet; whether it did.
    pub async fn attach_token(
        &self,
        id: &str,
        owner: &str,
        sealed: &str,
        token: &NewAccountToken,
    ) -> Result<bool, sqlx::Error> {
        let begin = self.begin_write();
        self.retry_aborted(|| {
            self.run(async |conn| {
                let mut tx = conn.begin_with(begin).await?;
                let attached = sqlx::query(
                    "UPDATE mail_outbox SET sealed_token = ? \
                 WHERE id = ? AND lease_owner = ? AND sealed_token IS NULL AND state = 'queued'",
                )
                .bind(sealed)
                .bind(id)
                .bind(owner)
                .execute(&mut *tx)
                .await?;
                if attached.rows_affected() != 1 {
                    return Ok(false);
                }
                insert_token(&mut tx, token).await?;
                tx.commit().await?;
                Ok(true)
            })
        })
        .await
    }

    /// Stores a token that no mail carries (an administrator's link).
    pub async fn insert_account_token(&self, token: &NewAccountToken) -> Result<(), sqlx::Error> {
        self.run(async |conn| insert_token(conn, token).await).await
    }

    /// Ends mail `id` as `state` (sent, failed or dropped), forgetting its
    /// token, if `owner` still holds it; whether it did.
    pub async fn finish_mail(
        &self,
        id: &str,
        owner: &str,
        state: MailState,
        error: Option<&str>,
        now: UnixMillis,
    ) -> Result<bool, sqlx::Error> {
        let update = sqlx::query(
            "UPDATE mail_outbox SET state = ?, sealed_token = NULL, finished_at = ?, \
             lease_until = NULL, attempts = attempts + 1, last_error = ? \
             WHERE id = ? AND lease_owner = ? AND state = 'queued'",
        )
        .bind(state.as_str())
        .bind(now)
        .bind(error)
        .bind(id)
        .bind(owner);
        let done = self.run(async |conn| update.execute(conn).await).await?;
        Ok(done.rows_affected() == 1)
    }

    /// Puts mail `id` back for another attempt at `next_attempt_at`, with
    /// why this one failed, if `owner` still holds it.
    pub async fn retry_mail(
        &self,
        id: &str,
        owner: &str,
        next_attempt_at: UnixMillis,
        error: &str,
    ) -> Result<bool, sqlx::Error> {
        let update = sqlx::query(
            "UPDATE mail_outbox SET next_attempt_at = ?, lease_until = NULL, \
             attempts = attempts + 1, last_error = ? \
             WHERE id = ? AND lease_owner = ? AND state = 'queued'",
        )
        .bind(next_attempt_at)
        .bind(error)
        .bind(id)
        .bind(owner);
        let done = self.run(async |conn| update.execute(conn).await).await?;
        Ok(done.rows_affected() == 1)
    }

    /// How many mails were queued for `user_id` since `since`: what the
    /// hourly allowance counts.
    pub async fn mails_queued_for(
        &self,
        user_id: &UserId,
        since: UnixMillis,
    ) -> Result<i64, sqlx::Error> {
        let select = sqlx::query(
            "SELECT COUNT(*) FROM mail_outbox WHERE user_id = ? AND created_at >= ? \
             AND state IN ('queued', 'sent', 'failed')",
        )
        .bind(user_id)
        .bind(since);
        let row = self.run(async |conn| select.fetch_one(conn).await).await?;
        row.try_get(0)
    }

    /// Deletes settled mails that settled before `before`, and account
    /// tokens that expired before it; how many of each.
    pub async fn prune_mail(&self, before: UnixMillis) -> Result<(u64, u64), sqlx::Error> {
        self.run(async |conn| {
            let mails = sqlx::query(
                "DELETE FROM mail_outbox WHERE state NOT IN ('requested', 'queued') \
                 AND finished_at < ?",
            )
            .bind(before)
            .execute(&mut *conn)
            .await?
            .rows_affected();
            let tokens = sqlx::query("DELETE FROM account_tokens WHERE expires_at < ?")
                .bind(before)
                .execute(&mut *conn)
                .await?
                .rows_affected();
            Ok((mails, tokens))
        })
        .await
    }
}

/// What confirming a password reset changed.
#[derive(Debug, Clone)]
pub struct PasswordReset {
    pub user_id: UserId,
    pub username: String,
    /// The sessions it revoked.
    pub revoked: Vec<crate::ids::SessionId>,
}

/// What confirming an address changed.
#[derive(Debug, Clone)]
pub struct EmailConfirmed {
    pub user_id: UserId,
    pub email: String,
    /// Whether the address changed (an email-change link), rather than
    /// was proven as it was.
    pub changed: bool,
    /// The verified address it replaced (told of the change), if any.
    pub replaced: Option<String>,
}

impl Store {
    /// The unused, unexpired token `hash` for one of `purposes`.
    pub async fn find_account_token(
        &self,
        hash: &TokenHash,
        purposes: &[MailKind],
        now: UnixMillis,
    ) -> Result<Option<AccountToken>, sqlx::Error> {
        let select = sqlx::query(
            "SELECT purpose, user_id, email, expires_at, used_at FROM account_tokens \
             WHERE token_hash = ? AND used_at IS NULL AND expires_at > ?",
        )
        .bind(hash)
        .bind(now);
        let row = self
            .run(async |conn| select.fetch_optional(conn).await)
            .await?;
        let token = row.as_ref().map(AccountToken::from_row).transpose()?;
        Ok(token.filter(|token| purposes.iter().any(|p| p.as_str() == token.purpose)))
    }

    /// Spends the reset token `hash` and, in the same transaction, sets
    /// `password_hash`, ends the session epoch and every session, retires
    /// the account's other reset tokens, marks its address verified (the
    /// link proved the mailbox) and records `event`. `None` if the token
    /// was not there to spend (unknown, used, expired, another purpose).
    pub async fn reset_password(
        &self,
        hash: &TokenHash,
        password_hash: &str,
        event: &super::AuditEvent,
        now: UnixMillis,
    ) -> Result<Option<PasswordReset>, sqlx::Error> {
        let begin = self.begin_write();
        let select_sessions = format!(
            "SELECT id FROM sessions WHERE user_id = ? AND revoked_at IS NULL{}",
            self.for_update()
        );
        self.retry_aborted(|| {
            self.run(async |conn| {
                let mut tx = conn.begin_with(begin).await?;
                let Some(user_id) = spend(&mut tx, hash, MailKind::PasswordReset, now).await?
                else {
                    return Ok(None);
                };
                sqlx::query(
                    "UPDATE users SET password_hash = ?, session_epoch = session_epoch + 1 \
                 WHERE id = ?",
                )
                .bind(password_hash)
                .bind(&user_id)
                .execute(&mut *tx)
                .await?;
                // The link proved the mailbox it was sent to, if that is still
                // the account's address.
                sqlx::query(
                    "UPDATE users SET email_verified_at = COALESCE(email_verified_at, ?) \
                 WHERE id = ? AND email = (SELECT email FROM account_tokens WHERE token_hash = ?)",
                )
                .bind(now)
                .bind(&user_id)
                .bind(hash)
                .execute(&mut *tx)
                .await?;
                let revoked: Vec<crate::ids::SessionId> = sqlx::query(&select_sessions)
                    .bind(&user_id)
                    .fetch_all(&mut *tx)
                    .await?
                    .into_iter()
                    .map(|row| row.try_get(0))
                    .collect::<Result<_, _>>()?;
                sqlx::query(
                    "UPDATE sessions SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL",
                )
                .bind(now)
                .bind(&user_id)
                .execute(&mut *tx)
                .await?;
                retire_tokens(&mut tx, &user_id, &[MailKind::PasswordReset], now).await?;
                let username: String = sqlx::query("SELECT username FROM users WHERE id = ?")
                    .bind(&user_id)
                    .fetch_one(&mut *tx)
                    .await?
                    .try_get(0)?;
                let event = super::AuditEvent {
                    user_id: Some(user_id.clone()),
                    ..event.clone()
                };
                super::audit::insert_audit_event(&mut tx, &event).await?;
                tx.commit().await?;
                Ok(Some(PasswordReset {
                    user_id,
                    username,
                    revoked,
                }))
            })
        })
        .await
    }

    /// Spends the verification or email-change token `hash` and, in the
    /// same transaction, makes its address the account's, verified; for a
    /// change whose old address was verified, queues `notice` (its
    /// recipient filled in) to tell it. `None` if the
    /// token was not there to spend, or proves an address the account no
    /// longer has (a verification link older than a change).
    pub async fn confirm_email(
        &self,
        hash: &TokenHash,
        notice: impl Fn(&UserId, &str) -> NewMail,
        now: UnixMillis,
    ) -> Result<Option<EmailConfirmed>, sqlx::Error> {
        let begin = self.begin_write();
        self.retry_aborted(|| {
            self.run(async |conn| {
                let mut tx = conn.begin_with(begin).await?;
                let token = sqlx::query(
                    "SELECT purpose, user_id, email, expires_at, used_at FROM account_tokens \
                 WHERE token_hash = ?",
                )
                .bind(hash)
                .fetch_optional(&mut *tx)
                .await?
                .as_ref()
                .map(AccountToken::from_row)
                .transpose()?;
                let Some(token) = token else {
                    return Ok(None);
                };
                let Some(email) = token.email.clone() else {
                    return Ok(None);
                };
                let purpose = if token.purpose == MailKind::EmailChange.as_str() {
                    MailKind::EmailChange
                } else if token.purpose == MailKind::EmailVerification.as_str() {
                    MailKind::EmailVerification
                } else {
                    return Ok(None);
                };
                if spend(&mut tx, hash, purpose, now).await?.is_none() {
                    return Ok(None);
                }
                let current =
                    sqlx::query("SELECT email, email_verified_at FROM users WHERE id = ?")
                        .bind(&token.user_id)
                        .fetch_one(&mut *tx)
                        .await?;
                let current_email: Option<String> = current.try_get(0)?;
                let current_verified: Option<UnixMillis> = current.try_get(1)?;
                let replaced = match purpose {
                    MailKind::EmailVerification => {
                        if current_email.as_deref() != Some(email.as_str()) {
                            // Spent for nothing: the account's address moved on.
                            tx.commit().await?;
                            return Ok(None);
                        }
                        sqlx::query(
                            "UPDATE users SET email_verified_at = COALESCE(email_verified_at, ?) \
                         WHERE id = ?",
                        )
                        .bind(now)
                        .bind(&token.user_id)
                        .execute(&mut *tx)
                        .await?;
                        None
                    }
                    _ => {
                        sqlx::query(
                            "UPDATE users SET email = ?, email_verified_at = ? WHERE id = ?",
                        )
                        .bind(&email)
                        .bind(now)
                        .bind(&token.user_id)
                        .execute(&mut *tx)
                        .await?;
                        let replaced =
                            current_email.filter(|old| current_verified.is_some() && *old != email);
                        if let Some(old) = &replaced {
                            insert_mail(&mut tx, &notice(&token.user_id, old), now).await?;
                        }
                        replaced
                    }
                };
                retire_tokens(
                    &mut tx,
                    &token.user_id,
                    &[MailKind::EmailVerification, MailKind::EmailChange],
                    now,
                )
                .await?;
                tx.commit().await?;
                Ok(Some(EmailConfirmed {
                    user_id: token.user_id,
                    email,
                    changed: purpose == MailKind::EmailChange,
                    replaced,
                }))
            })
        })
        .await
    }

    /// Retires every unused token of `user_id` for `purposes` (a password
    /// change retires outstanding resets).
    pub async fn retire_account_tokens(
        &self,
        user_id: &UserId,
        purposes: &[MailKind],
        now: UnixMillis,
    ) -> Result<(), sqlx::Error> {
        self.run(async |conn| retire_tokens(conn, user_id, purposes, now).await)
            .await
    }
}

async fn insert_token(
    conn: &mut AnyConnection,
    token: &NewAccountToken,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO account_tokens \
         (token_hash, purpose, user_id, email, created_at, expires_at) \
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(&token.hash)
    .bind(token.purpose.as_str())
    .bind(&token.user_id)
    .bind(&token.email)
    .bind(token.created_at)
    .bind(token.expires_at)
    .execute(conn)
    .await
    .map(drop)
}

/// Spends token `hash` of `purpose` ([`single_use::consume`]); its user, if
/// this call spent it.
async fn spend(
    conn: &mut AnyConnection,
    hash: &TokenHash,
    purpose: MailKind,
    now: UnixMillis,
) -> Result<Option<UserId>, sqlx::Error> {
    let owner =
        sqlx::query("SELECT user_id FROM account_tokens WHERE token_hash = ? AND purpose = ?")
            .bind(hash)
            .bind(purpose.as_str())
            .fetch_optional(&mut *conn)
            .await?;
    let Some(owner) = owner else {
        return Ok(None);
    };
    if !single_use::consume(conn, SingleUse::AccountTokens, hash, now).await? {
        return Ok(None);
    }
    Ok(Some(owner.try_get(0)?))
}

pub(super) async fn retire_tokens(
    conn: &mut AnyConnection,
    user_id: &UserId,
    purposes: &[MailKind],
    now: UnixMillis,
) -> Result<(), sqlx::Error> {
    for purpose in purposes {
        sqlx::query(
            "UPDATE account_tokens SET used_at = ? \
             WHERE user_id = ? AND purpose = ? AND used_at IS NULL",
        )
        .bind(now)
        .bind(user_id)
        .bind(purpose.as_str())
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}
