//! Counters of failed logins, shared by every instance.

use sqlx::FromRow as _;
use sqlx::Row;

use super::Store;
use crate::clock::UnixMillis;

/// One throttle counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct ThrottleRow {
    /// Attempts counted in the current window.
    pub failures: i64,
    /// When the current window started (Unix ms).
    pub window_start: UnixMillis,
    /// Attempts are refused until then (Unix ms).
    pub blocked_until: Option<UnixMillis>,
}

impl Store {
    /// The counters of `keys` that exist, by key, in one query.
    pub async fn throttle_rows(
        &self,
        keys: &[&str],
    ) -> Result<Vec<(String, ThrottleRow)>, sqlx::Error> {
        let places = vec!["?"; keys.len()].join(", ");
        let select = format!(
            "SELECT throttle_key, failures, window_start, blocked_until FROM login_throttle \
             WHERE throttle_key IN ({places})"
        );
        let rows = self
            .run(async |conn| {
                let mut query = sqlx::query(&select);
                for key in keys {
                    query = query.bind(*key);
                }
                query.fetch_all(conn).await
            })
            .await?;
        rows.iter()
            .map(|row| Ok((row.try_get(0)?, ThrottleRow::from_row(row)?)))
            .collect()
    }

    /// Replaces the counter `key` with `new` if it is still `old` (absent
    /// if `None`): whether it was. The database decides between racers:
    /// of two instances that read the same counter, one writes.
    pub async fn swap_throttle_row(
        &self,
        key: &str,
        old: Option<&ThrottleRow>,
        new: &ThrottleRow,
    ) -> Result<bool, sqlx::Error> {
        let written =
            match old {
                None => {
                    let insert = super::dialect::insert_if_absent(
                        self.backend,
                        "login_throttle",
                        &["throttle_key", "failures", "window_start", "blocked_until"],
                        "throttle_key",
                    );
                    let insert = sqlx::query(&insert)
                        .bind(key)
                        .bind(new.failures)
                        .bind(new.window_start)
                        .bind(new.blocked_until);
                    self.run(async |conn| insert.execute(conn).await).await
                }
                Some(old) => {
                    let update = sqlx::query(
                    "UPDATE login_throttle SET failures = ?, window_start = ?, blocked_until = ? \
                     WHERE throttle_key = ? AND failures = ? AND window_start = ? \
                     AND COALESCE(blocked_until, -1) = ?",
                )
                .bind(new.failures)
                .bind(new.window_start)
                .bind(new.blocked_until)
                .bind(key)
                .bind(old.failures)
                .bind(old.window_start)
                .bind(old.blocked_until.map_or(-1, crate::clock::UnixMillis::as_millis));
                    self.run(async |conn| update.execute(conn).await).await
                }
            };
        match written {
            Ok(done) => Ok(done.rows_affected() == 1),
            // Another instance wrote first (a cluster's certification
            // failure, a deadlock): read again.
            Err(err) if super::is_transient(&err) => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// Counts one failure for `key` in a `window` (a window
    /// older than that starts over), atomically; returns the failures so far.
    pub async fn record_failure(
        &self,
        key: &str,
        window: std::time::Duration,
        now: UnixMillis,
    ) -> Result<i64, sqlx::Error> {
        let expired = now - window;
        let upsert = super::dialect::upsert(
            self.backend,
            "login_throttle",
            &["throttle_key", "failures", "window_start"],
            "throttle_key",
            "failures = CASE WHEN window_start < ? THEN 1 ELSE failures + 1 END, \
             window_start = CASE WHEN window_start < ? THEN ? ELSE window_start END",
        );
        self.retry_aborted(|| {
            self.run(async |conn| {
                sqlx::query(&upsert)
                    .bind(key)
                    .bind(1_i64)
                    .bind(now)
                    .bind(expired)
                    .bind(expired)
                    .bind(now)
                    .execute(&mut *conn)
                    .await?;
                sqlx::query("SELECT failures FROM login_throttle WHERE throttle_key = ?")
                    .bind(key)
                    .fetch_one(&mut *conn)
                    .await?
                    .try_get::<i64, _>(0)
            })
        })
        .await
    }

    /// Refuses attempts for `key` until `until` (Unix ms); never shortens a
    /// block already in place.
    pub async fn block(&self, key: &str, until: UnixMillis) -> Result<(), sqlx::Error> {
        self.retry_aborted(|| {
            let update = sqlx::query(
                "UPDATE login_throttle SET blocked_until = ? \
                 WHERE throttle_key = ? AND (blocked_until IS NULL OR blocked_until < ?)",
            )
            .bind(until)
            .bind(key)
            .bind(until);
            self.run(async |conn| update.execute(conn).await.map(drop))
        })
        .await
    }

    /// Forgets the failures of `keys` (after a successful login).
    pub async fn clear_failures(&self, keys: &[&str]) -> Result<(), sqlx::Error> {
        // Racing attempts on other nodes write the same counters: a
        // certification failure is tried again.
        self.retry_aborted(|| {
            self.run(async |conn| {
                for key in keys {
                    sqlx::query("DELETE FROM login_throttle WHERE throttle_key = ?")
                        .bind(*key)
                        .execute(&mut *conn)
                        .await?;
                }
                Ok(())
            })
        })
        .await
    }
}
