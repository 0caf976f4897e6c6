//! Server secrets that every instance shares: the refresh-token secret
//! (sealed with the key-encryption key), the default issuer, and the legacy
//! refresh secret until nothing needs it.

use sqlx::Row as _;

use super::{Store, dialect};
use crate::clock::UnixMillis;

impl Store {
    /// The shared secret called `name` and the id of the key-encryption
    /// key that sealed it (`None`: kept as it is), created from `candidate`
    /// if no instance has created it yet. Every instance ends up with the
    /// same value: the first insert wins and everyone reads what it wrote.
    pub async fn get_or_create_secret(
        &self,
        name: &str,
        candidate: &str,
        kek_id: Option<&str>,
        now: UnixMillis,
    ) -> Result<(String, Option<String>), sqlx::Error> {
        let insert = dialect::insert_if_absent(
            self.backend,
            "server_secrets",
            &["name", "secret", "created_at", "kek_id"],
            "name",
        );
        self.run_idempotent(async |conn| {
            sqlx::query(&insert)
                .bind(name)
                .bind(candidate)
                .bind(now)
                .bind(kek_id)
                .execute(&mut *conn)
                .await?;
            let row = sqlx::query("SELECT secret, kek_id FROM server_secrets WHERE name = ?")
                .bind(name)
                .fetch_one(&mut *conn)
                .await?;
            Ok((row.try_get(0)?, row.try_get(1)?))
        })
        .await
    }

    /// The secret called `name`, if it is stored.
    pub async fn find_secret(&self, name: &str) -> Result<Option<String>, sqlx::Error> {
        let row = self
            .run_idempotent(async |conn| {
                sqlx::query("SELECT secret FROM server_secrets WHERE name = ?")
                    .bind(name)
                    .fetch_optional(conn)
                    .await
            })
            .await?;
        row.map(|row| row.try_get(0)).transpose()
    }

    /// Replaces the sealed secret `name` with `sealed` under `kek_id`, if it
    /// is still sealed under `old_kek_id`; whether it was.
    pub async fn reseal_secret(
        &self,
        name: &str,
        old_kek_id: &str,
        sealed: &str,
        kek_id: &str,
    ) -> Result<bool, sqlx::Error> {
        let update = sqlx::query(
            "UPDATE server_secrets SET secret = ?, kek_id = ? WHERE name = ? AND kek_id = ?",
        )
        .bind(sealed)
        .bind(kek_id)
        .bind(name)
        .bind(old_kek_id);
        let done = self.run(async |conn| update.execute(conn).await).await?;
        Ok(done.rows_affected() == 1)
    }

    /// Stores `sealed` as the secret `name` under `kek_id`, replacing any.
    pub async fn replace_secret(
        &self,
        name: &str,
        sealed: &str,
        kek_id: &str,
        now: UnixMillis,
    ) -> Result<(), sqlx::Error> {
        let upsert = dialect::upsert(
            self.backend,
            "server_secrets",
            &["name", "secret", "created_at", "kek_id"],
            "name",
            "secret = ?, created_at = ?, kek_id = ?",
        );
        self.run(async |conn| {
            sqlx::query(&upsert)
                .bind(name)
                .bind(sealed)
                .bind(now)
                .bind(kek_id)
                .bind(sealed)
                .bind(now)
                .bind(kek_id)
                .execute(conn)
                .await
                .map(drop)
        })
        .await
    }

    /// Deletes the legacy refresh secret `name` once no token rotated
    /// before successors were recorded was rotated after `rotated_since`
    /// (Unix ms): nothing can be replayed with it any more.
    pub async fn prune_legacy_secret(
        &self,
        name: &str,
        rotated_since: UnixMillis,
    ) -> Result<bool, sqlx::Error> {
        let delete = sqlx::query(
            "DELETE FROM server_secrets WHERE name = ? AND NOT EXISTS \
             (SELECT 1 FROM refresh_tokens WHERE successor_hash IS NULL \
              AND rotated_at IS NOT NULL AND rotated_at > ?)",
        )
        .bind(name)
        .bind(rotated_since);
        let done = self.run(async |conn| delete.execute(conn).await).await?;
        Ok(done.rows_affected() == 1)
    }
}
