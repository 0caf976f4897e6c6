//! The authorization code flow's rows: codes (single use, decided by a
//! conditional update), browser sessions of the login page, and consents.

use sqlx::{Connection as _, Row as _};

use super::Store;
use crate::clock::UnixMillis;
use crate::ids::{SessionId, TokenHash, UserId};

/// A code about to be handed to a client.
#[derive(Debug, Clone)]
pub struct NewCode<'a> {
    pub hash: &'a TokenHash,
    pub client_id: &'a str,
    pub user_id: &'a UserId,
    pub redirect_uri: &'a str,
    pub scope: &'a str,
    pub code_challenge: &'a str,
    pub auth_time: UnixMillis,
    pub user_epoch: i64,
    /// How the user authenticated (RFC 8176), for the session it opens.
    pub amr: &'a str,
    pub created_at: UnixMillis,
    pub expires_at: UnixMillis,
}

/// What a redeemed code was issued for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeRecord {
    pub client_id: String,
    pub user_id: UserId,
    pub redirect_uri: String,
    pub scope: String,
    pub code_challenge: String,
    pub auth_time: UnixMillis,
    pub user_epoch: i64,
    pub amr: String,
}

/// What redeeming a code found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redemption {
    /// This call redeemed it, naming the session it opens.
    Redeemed(CodeRecord),
    /// It was redeemed before: this is a replay. The session the first
    /// redemption named is given, for revoking.
    Replayed(Option<SessionId>),
    /// No such code, or it expired unredeemed.
    Unknown,
}

/// A consent, as listed to its user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentRecord {
    pub client_id: String,
    /// The client's name (absent if it was deleted from the registry).
    pub client_name: Option<String>,
    pub scope: String,
    pub granted_at: UnixMillis,
}

/// A browser session of the login page, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrowserSession {
    pub user_id: UserId,
    pub auth_time: UnixMillis,
    pub user_epoch: i64,
    /// How the user signed in (RFC 8176 values, space-separated).
    pub amr: String,
}

impl Store {
    pub async fn insert_authorization_code(&self, code: &NewCode<'_>) -> Result<(), sqlx::Error> {
        let insert = sqlx::query(
            "INSERT INTO authorization_codes (token_hash, client_id, user_id, redirect_uri, \
             scope, code_challenge, auth_time, user_epoch, amr, created_at, expires_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(code.hash)
        .bind(code.client_id)
        .bind(code.user_id)
        .bind(code.redirect_uri)
        .bind(code.scope)
        .bind(code.code_challenge)
        .bind(code.auth_time)
        .bind(code.user_epoch)
        .bind(code.amr)
        .bind(code.created_at)
        .bind(code.expires_at);
        self.run(async |conn| insert.execute(conn).await.map(drop))
            .await
    }

    /// Redeems the code `hash` at `now` for the session `session_id`, once:
    /// a conditional update decides, however many redemptions race on
    /// however many instances. A code redeemed before is marked replayed.
    pub async fn redeem_authorization_code(
        &self,
        hash: &TokenHash,
        session_id: &SessionId,
        now: UnixMillis,
    ) -> Result<Redemption, sqlx::Error> {
        self.retry_aborted(|| {
            self.run(async |conn| {
                let mut tx = conn.begin().await?;
                let redeemed = sqlx::query(
                    "UPDATE authorization_codes SET used_at = ?, session_id = ? \
                     WHERE token_hash = ? AND used_at IS NULL AND expires_at > ?",
                )
                .bind(now)
                .bind(session_id)
                .bind(hash)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                let redemption = if redeemed {
                    let row = sqlx::query(
                        "SELECT client_id, user_id, redirect_uri, scope, code_challenge, \
                         auth_time, user_epoch, amr FROM authorization_codes WHERE token_hash = ?",
                    )
                    .bind(hash)
                    .fetch_one(&mut *tx)
                    .await?;
                    Redemption::Redeemed(CodeRecord {
                        client_id: row.try_get("client_id")?,
                        user_id: row.try_get("user_id")?,
                        redirect_uri: row.try_get("redirect_uri")?,
                        scope: row.try_get("scope")?,
                        code_challenge: row.try_get("code_challenge")?,
                        auth_time: row.try_get("auth_time")?,
                        user_epoch: row.try_get("user_epoch")?,
                        amr: row.try_get("amr")?,
                    })
                } else {
                    let replayed = sqlx::query(
                        "UPDATE authorization_codes SET replayed_at = ? \
                         WHERE token_hash = ? AND used_at IS NOT NULL",
                    )
                    .bind(now)
                    .bind(hash)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                        == 1;
                    if replayed {
                        let session = sqlx::query(
                            "SELECT session_id FROM authorization_codes WHERE token_hash = ?",
                        )
                        .bind(hash)
                        .fetch_one(&mut *tx)
                        .await?
                        .try_get::<Option<SessionId>, _>("session_id")?;
                        Redemption::Replayed(session)
                    } else {
                        Redemption::Unknown
                    }
                };
                tx.commit().await?;
                Ok(redemption)
            })
        })
        .await
    }

    /// Whether the code `hash` was redeemed a second time (read after the
    /// first redemption stored its session: a replay that came between
    /// found no session to revoke).
    pub async fn authorization_code_replayed(&self, hash: &TokenHash) -> Result<bool, sqlx::Error> {
        let select =
            sqlx::query("SELECT replayed_at FROM authorization_codes WHERE token_hash = ?")
                .bind(hash);
        let row = self
            .run(async |conn| select.fetch_optional(conn).await)
            .await?;
        Ok(match row {
            Some(row) => row
                .try_get::<Option<UnixMillis>, _>("replayed_at")?
                .is_some(),
            None => false,
        })
    }

    pub async fn insert_browser_session(
        &self,
        hash: &TokenHash,
        signed_in: &BrowserSession,
        expires_at: UnixMillis,
    ) -> Result<(), sqlx::Error> {
        let insert = sqlx::query(
            "INSERT INTO browser_sessions (token_hash, user_id, user_epoch, auth_time, \
             amr, expires_at) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(hash)
        .bind(&signed_in.user_id)
        .bind(signed_in.user_epoch)
        .bind(signed_in.auth_time)
        .bind(&signed_in.amr)
        .bind(expires_at);
        self.run(async |conn| insert.execute(conn).await.map(drop))
            .await
    }

    /// The browser session `hash` if it is live at `now`: not revoked, not
    /// expired, its account enabled and its password unchanged since, and
    /// signed in with a second factor if the account has one now.
    pub async fn live_browser_session(
        &self,
        hash: &TokenHash,
        now: UnixMillis,
    ) -> Result<Option<BrowserSession>, sqlx::Error> {
        let select = sqlx::query(
            "SELECT b.user_id, b.auth_time, b.user_epoch, b.amr FROM browser_sessions b \
             JOIN users u ON u.id = b.user_id \
             WHERE b.token_hash = ? AND b.revoked_at IS NULL AND b.expires_at > ? \
             AND u.disabled_at IS NULL AND u.session_epoch = b.user_epoch \
             AND (u.mfa_enabled_at IS NULL OR b.amr LIKE '%mfa%')",
        )
        .bind(hash)
        .bind(now);
        let row = self
            .run(async |conn| select.fetch_optional(conn).await)
            .await?;
        row.map(|row| {
            Ok(BrowserSession {
                user_id: row.try_get("user_id")?,
                auth_time: row.try_get("auth_time")?,
                user_epoch: row.try_get("user_epoch")?,
                amr: row.try_get("amr")?,
            })
        })
        .transpose()
    }

    /// The scopes `user_id` allowed `client_id`, if any.
    pub async fn consent(
        &self,
        user_id: &UserId,
        client_id: &str,
    ) -> Result<Option<String>, sqlx::Error> {
        let select = sqlx::query("SELECT scope FROM consents WHERE user_id = ? AND client_id = ?")
            .bind(user_id)
            .bind(client_id);
        let row = self
            .run(async |conn| select.fetch_optional(conn).await)
            .await?;
        row.map(|row| row.try_get("scope")).transpose()
    }

    /// Records that `user_id` allowed `client_id` the scopes `scope`
    /// (replacing what it allowed before).
    pub async fn put_consent(
        &self,
        user_id: &UserId,
        client_id: &str,
        scope: &str,
        now: UnixMillis,
    ) -> Result<(), sqlx::Error> {
        self.retry_aborted(|| {
            self.run(async |conn| {
                let mut tx = conn.begin().await?;
                sqlx::query("DELETE FROM consents WHERE user_id = ? AND client_id = ?")
                    .bind(user_id)
                    .bind(client_id)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                "INSERT INTO consents (user_id, client_id, scope, granted_at) VALUES (?, ?, ?, ?)",
            )
            .bind(user_id)
            .bind(client_id)
            .bind(scope)
            .bind(now)
            .execute(&mut *tx)
            .await?;
                tx.commit().await
            })
        })
        .await
    }

    /// The consents `user_id` gave, by client id.
    pub async fn consents_of(&self, user_id: &UserId) -> Result<Vec<ConsentRecord>, sqlx::Error> {
        let select = sqlx::query(
            "SELECT c.client_id, k.name, c.scope, c.granted_at FROM consents c \
             LEFT JOIN clients k ON k.client_id = c.client_id \
             WHERE c.user_id = ? ORDER BY c.client_id",
        )
        .bind(user_id);
        let rows = self.run(async |conn| select.fetch_all(conn).await).await?;
        rows.iter()
            .map(|row| {
                Ok(ConsentRecord {
                    client_id: row.try_get("client_id")?,
                    client_name: row.try_get("name")?,
                    scope: row.try_get("scope")?,
                    granted_at: row.try_get("granted_at")?,
                })
            })
            .collect()
    }

    /// Withdraws `user_id`'s consent to `client_id` and revokes the live
    /// sessions that client holds for the user, in one transaction; the
    /// sessions revoked, or `None` if there was no such consent.
    pub async fn withdraw_consent(
        &self,
        user_id: &UserId,
        client_id: &str,
        now: UnixMillis,
    ) -> Result<Option<Vec<SessionId>>, sqlx::Error> {
        let select = format!(
            "SELECT id FROM sessions WHERE user_id = ? AND client_id = ? AND revoked_at IS NULL{}",
            self.for_update()
        );
        let begin = self.begin_write();
        self.retry_aborted(|| {
            self.run(async |conn| {
                let mut tx = conn.begin_with(begin).await?;
                let withdrawn =
                    sqlx::query("DELETE FROM consents WHERE user_id = ? AND client_id = ?")
                        .bind(user_id)
                        .bind(client_id)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected()
                        == 1;
                if !withdrawn {
                    tx.rollback().await?;
                    return Ok(None);
                }
                let ids: Vec<SessionId> = sqlx::query(&select)
                    .bind(user_id)
                    .bind(client_id)
                    .fetch_all(&mut *tx)
                    .await?
                    .into_iter()
                    .map(|row| row.try_get(0))
                    .collect::<Result<_, _>>()?;
                sqlx::query(
                    "UPDATE sessions SET revoked_at = ? \
                     WHERE user_id = ? AND client_id = ? AND revoked_at IS NULL",
                )
                .bind(now)
                .bind(user_id)
                .bind(client_id)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(Some(ids))
            })
        })
        .await
    }
}
