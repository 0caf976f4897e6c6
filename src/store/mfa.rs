//! The second factor's rows: an account's TOTP secret (sealed) and the last
//! step it accepted, enrolments not yet confirmed, recovery codes (hashed),
//! and the password steps waiting for a second factor (`mfa_token`s). Each
//! single use is decided by a conditional update.

use sqlx::{Connection as _, Row as _};

use super::Store;
use crate::clock::UnixMillis;
use crate::ids::{TokenHash, UserId};

/// A TOTP secret sealed with the key-encryption key `kek_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedTotp {
    pub sealed: String,
    pub kek_id: String,
}

/// A password step that waits for a second factor.
#[derive(Debug, Clone)]
pub struct NewChallenge<'a> {
    pub hash: &'a TokenHash,
    pub user_id: &'a UserId,
    pub client_id: &'a str,
    pub client_confidential: bool,
    pub scope: &'a str,
    pub auth_time: UnixMillis,
    pub user_epoch: i64,
    pub created_at: UnixMillis,
    pub expires_at: UnixMillis,
}

/// A password step, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChallengeRecord {
    pub user_id: UserId,
    pub client_id: String,
    pub client_confidential: bool,
    pub scope: String,
    pub auth_time: UnixMillis,
    pub user_epoch: i64,
}

/// What proves the second factor, as [`Store::pass_challenge`] spends it.
#[derive(Debug, Clone)]
pub enum Proof {
    /// A TOTP code of this 30-second step: accepted if the account has
    /// accepted no code of this step or a later one.
    TotpStep(i64),
    /// A recovery code, by its hash: accepted if unused.
    RecoveryCode(TokenHash),
}

/// What [`Store::pass_challenge`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Passed {
    /// The challenge and the proof are spent, together.
    Passed(ChallengeRecord),
    /// The challenge is unknown, expired, used, or out of attempts.
    NoChallenge,
    /// The proof was spent before (a code's step, or a used recovery code),
    /// or the account has no second factor any more.
    ProofSpent,
}

impl Store {
    /// Starts (or restarts) an enrolment of `user_id`: its sealed secret,
    /// replacing any earlier one not yet confirmed.
    pub async fn start_totp_enrolment(
        &self,
        user_id: &UserId,
        secret: &SealedTotp,
        now: UnixMillis,
        expires_at: UnixMillis,
    ) -> Result<(), sqlx::Error> {
        let begin = self.begin_write();
        self.retry_aborted(|| {
            self.run(async |conn| {
                let mut tx = conn.begin_with(begin).await?;
                sqlx::query("DELETE FROM totp_enrolments WHERE user_id = ?")
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "INSERT INTO totp_enrolments (user_id, sealed, kek_id, created_at, expires_at) \
                     VALUES (?, ?, ?, ?, ?)",
                )
                .bind(user_id)
                .bind(&secret.sealed)
                .bind(&secret.kek_id)
                .bind(now)
                .bind(expires_at)
                .execute(&mut *tx)
                .await?;
                tx.commit().await
            })
        })
        .await
    }

    /// The enrolment of `user_id` waiting for confirmation at `now`.
    pub async fn totp_enrolment(
        &self,
        user_id: &UserId,
        now: UnixMillis,
    ) -> Result<Option<SealedTotp>, sqlx::Error> {
        let select = sqlx::query(
            "SELECT sealed, kek_id FROM totp_enrolments WHERE user_id = ? AND expires_at > ?",
        )
        .bind(user_id)
        .bind(now);
        let row = self
            .run(async |conn| select.fetch_optional(conn).await)
            .await?;
        row.map(|row| {
            Ok(SealedTotp {
                sealed: row.try_get("sealed")?,
                kek_id: row.try_get("kek_id")?,
            })
        })
        .transpose()
    }

    /// Confirms the enrolment `secret` of `user_id` with a code of `step`:
    /// moves the secret into the account, records the step as used,
    /// replaces the recovery codes with `codes` and ends the sign-in page's
    /// browser sessions (signed in with the password alone), in one
    /// transaction. `false` (nothing changed) if the account already has a
    /// second factor, or the enrolment was replaced or confirmed meanwhile.
    pub async fn confirm_totp(
        &self,
        user_id: &UserId,
        secret: &SealedTotp,
        step: i64,
        codes: &[TokenHash],
        now: UnixMillis,
    ) -> Result<bool, sqlx::Error> {
        let begin = self.begin_write();
        self.retry_aborted(|| {
            self.run(async |conn| {
                let mut tx = conn.begin_with(begin).await?;
                let enrolled = sqlx::query(
                    "DELETE FROM totp_enrolments WHERE user_id = ? AND sealed = ? AND expires_at > ?",
                )
                .bind(user_id)
                .bind(&secret.sealed)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                let enabled = enrolled
                    && sqlx::query(
                        "UPDATE users SET totp_sealed = ?, totp_kek_id = ?, mfa_enabled_at = ?, \
                         totp_last_step = ? WHERE id = ? AND mfa_enabled_at IS NULL",
                    )
                    .bind(&secret.sealed)
                    .bind(&secret.kek_id)
                    .bind(now)
                    .bind(step)
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                        == 1;
                if !enabled {
                    tx.rollback().await?;
                    return Ok(false);
                }
                sqlx::query("DELETE FROM mfa_recovery_codes WHERE user_id = ?")
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await?;
                // The sign-in page's browsers signed in with the password alone.
                sqlx::query(
                    "UPDATE browser_sessions SET revoked_at = ? \
                     WHERE user_id = ? AND revoked_at IS NULL",
                )
                .bind(now)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
                for code in codes {
                    sqlx::query(
                        "INSERT INTO mfa_recovery_codes (user_id, code_hash, created_at) \
                         VALUES (?, ?, ?)",
                    )
                    .bind(user_id)
                    .bind(code)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(true)
            })
        })
        .await
    }

    /// Spends a code of `step` for `user_id` if no code of it or a later
    /// step was accepted before: whether this call did.
    pub async fn claim_totp_step(&self, user_id: &UserId, step: i64) -> Result<bool, sqlx::Error> {
        self.retry_aborted(|| self.run(async |conn| claim_step(conn, user_id, step).await))
            .await
    }

    /// Spends the unused recovery code `hash` of `user_id`: whether this
    /// call did.
    pub async fn use_recovery_code(
        &self,
        user_id: &UserId,
        hash: &TokenHash,
        now: UnixMillis,
    ) -> Result<bool, sqlx::Error> {
        self.retry_aborted(|| {
            self.run(async |conn| use_recovery_code(conn, user_id, hash, now).await)
        })
        .await
    }

    /// Removes the second factor of `user_id`: its secret, recovery codes,
    /// enrolment and waiting password steps. `false` if it had none.
    pub async fn remove_second_factor(&self, user_id: &UserId) -> Result<bool, sqlx::Error> {
        let begin = self.begin_write();
        self.retry_aborted(|| {
            self.run(async |conn| {
                let mut tx = conn.begin_with(begin).await?;
                let removed = sqlx::query(
                    "UPDATE users SET totp_sealed = NULL, totp_kek_id = NULL, \
                     mfa_enabled_at = NULL, totp_last_step = NULL \
                     WHERE id = ? AND mfa_enabled_at IS NOT NULL",
                )
                .bind(user_id)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                for table in ["mfa_recovery_codes", "totp_enrolments", "mfa_challenges"] {
                    sqlx::query(&format!("DELETE FROM {table} WHERE user_id = ?"))
                        .bind(user_id)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(removed)
            })
        })
        .await
    }

    /// Stores a password step waiting for a second factor.
    pub async fn insert_challenge(&self, challenge: &NewChallenge<'_>) -> Result<(), sqlx::Error> {
        let insert = sqlx::query(
            "INSERT INTO mfa_challenges (token_hash, user_id, client_id, client_confidential, \
             scope, auth_time, user_epoch, created_at, expires_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(challenge.hash)
        .bind(challenge.user_id)
        .bind(challenge.client_id)
        .bind(i64::from(challenge.client_confidential))
        .bind(challenge.scope)
        .bind(challenge.auth_time)
        .bind(challenge.user_epoch)
        .bind(challenge.created_at)
        .bind(challenge.expires_at);
        self.run(async |conn| insert.execute(conn).await.map(drop))
            .await
    }

    /// The password step `hash`, if it can still be passed at `now`: not
    /// used, not expired, and with fewer than `max_failures` wrong codes.
    pub async fn live_challenge(
        &self,
        hash: &TokenHash,
        now: UnixMillis,
        max_failures: i64,
    ) -> Result<Option<ChallengeRecord>, sqlx::Error> {
        self.run(async |conn| {
            let row = sqlx::query(&format!(
                "SELECT {CHALLENGE_COLUMNS} FROM mfa_challenges WHERE token_hash = ? \
                 AND used_at IS NULL AND expires_at > ? AND failures < ?"
            ))
            .bind(hash)
            .bind(now)
            .bind(max_failures)
            .fetch_optional(conn)
            .await?;
            row.as_ref().map(challenge_of).transpose()
        })
        .await
    }

    /// Counts a wrong code given with the password step `hash`.
    pub async fn challenge_failed(&self, hash: &TokenHash) -> Result<(), sqlx::Error> {
        self.retry_aborted(|| {
            let update = sqlx::query(
                "UPDATE mfa_challenges SET failures = failures + 1 WHERE token_hash = ?",
            )
            .bind(hash);
            self.run(async |conn| update.execute(conn).await.map(drop))
        })
        .await
    }

    /// Passes the password step `hash` with `proof`, spending both in one
    /// transaction, or neither: however many attempts race, on however
    /// many instances, one challenge opens one session, and one code (or
    /// one code's step) passes one challenge.
    pub async fn pass_challenge(
        &self,
        hash: &TokenHash,
        proof: &Proof,
        now: UnixMillis,
        max_failures: i64,
    ) -> Result<Passed, sqlx::Error> {
        let begin = self.begin_write();
        self.retry_aborted(|| {
            self.run(async |conn| {
                let mut tx = conn.begin_with(begin).await?;
                let used = sqlx::query(
                    "UPDATE mfa_challenges SET used_at = ? WHERE token_hash = ? \
                     AND used_at IS NULL AND expires_at > ? AND failures < ?",
                )
                .bind(now)
                .bind(hash)
                .bind(now)
                .bind(max_failures)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                if !used {
                    tx.rollback().await?;
                    return Ok(Passed::NoChallenge);
                }
                let row = sqlx::query(&format!(
                    "SELECT {CHALLENGE_COLUMNS} FROM mfa_challenges WHERE token_hash = ?"
                ))
                .bind(hash)
                .fetch_one(&mut *tx)
                .await?;
                let challenge = challenge_of(&row)?;
                let spent = match proof {
                    Proof::TotpStep(step) => claim_step(&mut tx, &challenge.user_id, *step).await?,
                    Proof::RecoveryCode(code) => {
                        use_recovery_code(&mut tx, &challenge.user_id, code, now).await?
                    }
                };
                if !spent {
                    tx.rollback().await?;
                    return Ok(Passed::ProofSpent);
                }
                tx.commit().await?;
                Ok(Passed::Passed(challenge))
            })
        })
        .await
    }

    /// The recovery codes of `user_id` not yet used.
    pub async fn unused_recovery_codes(&self, user_id: &UserId) -> Result<i64, sqlx::Error> {
        let select = sqlx::query(
            "SELECT COUNT(*) AS unused FROM mfa_recovery_codes WHERE user_id = ? AND used_at IS NULL",
        )
        .bind(user_id);
        let row = self.run(async |conn| select.fetch_one(conn).await).await?;
        row.try_get("unused")
    }

    /// The accounts' TOTP secrets and enrolments sealed with `kek_id`, as
    /// `(user_id, sealed, confirmed)`.
    pub async fn totp_secrets_sealed_with(
        &self,
        kek_id: &str,
    ) -> Result<Vec<(UserId, String, bool)>, sqlx::Error> {
        let confirmed = sqlx::query(
            "SELECT id AS user_id, totp_sealed AS sealed FROM users \
             WHERE totp_kek_id = ? AND totp_sealed IS NOT NULL",
        )
        .bind(kek_id);
        let waiting = sqlx::query("SELECT user_id, sealed FROM totp_enrolments WHERE kek_id = ?")
            .bind(kek_id);
        let mut secrets = Vec::new();
        for (select, is_confirmed) in [(confirmed, true), (waiting, false)] {
            let rows = self.run(async |conn| select.fetch_all(conn).await).await?;
            for row in rows {
                secrets.push((
                    row.try_get("user_id")?,
                    row.try_get("sealed")?,
                    is_confirmed,
                ));
            }
        }
        Ok(secrets)
    }

    /// Replaces the TOTP secret `old` of `user_id` (sealed with `old_kek`)
    /// with `new`, sealed with `new_kek`; `false` if it changed meanwhile.
    pub async fn reseal_totp(
        &self,
        user_id: &UserId,
        confirmed: bool,
        old: &SealedTotp,
        new: &SealedTotp,
    ) -> Result<bool, sqlx::Error> {
        let sql = if confirmed {
            "UPDATE users SET totp_sealed = ?, totp_kek_id = ? \
             WHERE id = ? AND totp_sealed = ? AND totp_kek_id = ?"
        } else {
            "UPDATE totp_enrolments SET sealed = ?, kek_id = ? \
             WHERE user_id = ? AND sealed = ? AND kek_id = ?"
        };
        let update = sqlx::query(sql)
            .bind(&new.sealed)
            .bind(&new.kek_id)
            .bind(user_id)
            .bind(&old.sealed)
            .bind(&old.kek_id);
        let done = self.run(async |conn| update.execute(conn).await).await?;
        Ok(done.rows_affected() == 1)
    }
}

const CHALLENGE_COLUMNS: &str =
    "user_id, client_id, client_confidential, scope, auth_time, user_epoch";

fn challenge_of(row: &sqlx::any::AnyRow) -> Result<ChallengeRecord, sqlx::Error> {
    let confidential: i64 = row.try_get("client_confidential")?;
    Ok(ChallengeRecord {
        user_id: row.try_get("user_id")?,
        client_id: row.try_get("client_id")?,
        client_confidential: confidential == 1,
        scope: row.try_get("scope")?,
        auth_time: row.try_get("auth_time")?,
        user_epoch: row.try_get("user_epoch")?,
    })
}

/// Moves the account's last accepted step to `step` if it is earlier (or
/// unset) and the account has a second factor: whether it moved.
async fn claim_step(
    conn: &mut sqlx::AnyConnection,
    user_id: &UserId,
    step: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE users SET totp_last_step = ? WHERE id = ? AND mfa_enabled_at IS NOT NULL \
         AND (totp_last_step IS NULL OR totp_last_step < ?)",
    )
    .bind(step)
    .bind(user_id)
    .bind(step)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Marks the recovery code `hash` of `user_id` used if it is not: whether
/// it was this call.
async fn use_recovery_code(
    conn: &mut sqlx::AnyConnection,
    user_id: &UserId,
    hash: &TokenHash,
    now: UnixMillis,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE mfa_recovery_codes SET used_at = ? \
         WHERE user_id = ? AND code_hash = ? AND used_at IS NULL",
    )
    .bind(now)
    .bind(user_id)
    .bind(hash)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}
