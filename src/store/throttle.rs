//! Counters of failed logins, shared by every instance.

use sqlx::Row;

use super::{Backend, Store};

impl Store {
    /// The latest `blocked_until` (Unix ms) among `keys`, if any is set.
    pub async fn blocked_until(&self, keys: &[&str]) -> Result<Option<i64>, sqlx::Error> {
        self.run(async |conn| {
            let mut latest = None;
            for key in keys {
                let row =
                    sqlx::query("SELECT blocked_until FROM login_throttle WHERE throttle_key = ?")
                        .bind(*key)
                        .fetch_optional(&mut *conn)
                        .await?;
                let until: Option<i64> = row.map(|row| row.try_get(0)).transpose()?.flatten();
                latest = latest.max(until);
            }
            Ok(latest)
        })
        .await
    }

    /// Counts one failure for `key` in a window of `window_ms` (a window
    /// older than that starts over), atomically; returns the failures so far.
    pub async fn record_failure(
        &self,
        key: &str,
        window_ms: i64,
        now: i64,
    ) -> Result<i64, sqlx::Error> {
        let expired = now - window_ms;
        let upsert = match self.backend {
            Backend::MySql => {
                "INSERT INTO login_throttle (throttle_key, failures, window_start) VALUES (?, 1, ?) \
                 ON DUPLICATE KEY UPDATE \
                 failures = CASE WHEN window_start < ? THEN 1 ELSE failures + 1 END, \
                 window_start = CASE WHEN window_start < ? THEN ? ELSE window_start END"
            }
            Backend::Sqlite => {
                "INSERT INTO login_throttle (throttle_key, failures, window_start) VALUES (?, 1, ?) \
                 ON CONFLICT (throttle_key) DO UPDATE SET \
                 failures = CASE WHEN window_start < ? THEN 1 ELSE failures + 1 END, \
                 window_start = CASE WHEN window_start < ? THEN ? ELSE window_start END"
            }
        };
        self.run(async |conn| {
            sqlx::query(upsert)
                .bind(key)
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
        .await
    }

    /// Refuses attempts for `key` until `until` (Unix ms); never shortens a
    /// block already in place.
    pub async fn block(&self, key: &str, until: i64) -> Result<(), sqlx::Error> {
        let update = sqlx::query(
            "UPDATE login_throttle SET blocked_until = ? \
             WHERE throttle_key = ? AND (blocked_until IS NULL OR blocked_until < ?)",
        )
        .bind(until)
        .bind(key)
        .bind(until);
        self.run(async |conn| update.execute(conn).await.map(drop))
            .await
    }

    /// Forgets the failures of `key` (after a successful login).
    pub async fn clear_failures(&self, key: &str) -> Result<(), sqlx::Error> {
        let delete = sqlx::query("DELETE FROM login_throttle WHERE throttle_key = ?").bind(key);
        self.run(async |conn| delete.execute(conn).await.map(drop))
            .await
    }
}
