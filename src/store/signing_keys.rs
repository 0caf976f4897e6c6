//! The signing keys shared by every instance (sealed private keys).

use sqlx::FromRow as _;
use sqlx::Row;

use super::Store;
use crate::clock::UnixMillis;

/// One signing key as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SigningKeyRecord {
    /// Orders the keys; unique, so concurrent rotations cannot collide.
    pub generation: i64,
    pub kid: String,
    /// The JWS `alg`, e.g. `EdDSA`.
    pub algorithm: String,
    /// The private key, sealed with the key-encryption key `kek_id`.
    pub private_key: String,
    pub kek_id: String,
    pub created_at: UnixMillis,
    /// From when instances sign with it (Unix ms).
    pub activates_at: UnixMillis,
}

impl Store {
    /// Every signing key, oldest generation first.
    pub async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>, sqlx::Error> {
        let select = sqlx::query(
            "SELECT generation, kid, algorithm, private_key, kek_id, created_at, activates_at \
             FROM signing_keys ORDER BY generation",
        );
        let rows = self.run(async |conn| select.fetch_all(conn).await).await?;
        rows.iter().map(SigningKeyRecord::from_row).collect()
    }

    /// Stores a key; `false` if its generation (or kid) is taken, i.e. a
    /// concurrent rotation or first start got there first.
    pub async fn insert_signing_key(&self, key: &SigningKeyRecord) -> Result<bool, sqlx::Error> {
        let inserted = self
            .run_idempotent(async |conn| {
                sqlx::query(
                    "INSERT INTO signing_keys \
                     (generation, kid, algorithm, private_key, kek_id, created_at, activates_at) \
                     VALUES (?, ?, ?, ?, ?, ?, ?)",
                )
                .bind(key.generation)
                .bind(&key.kid)
                .bind(&key.algorithm)
                .bind(&key.private_key)
                .bind(&key.kek_id)
                .bind(key.created_at)
                .bind(key.activates_at)
                .execute(conn)
                .await
            })
            .await;
        match inserted {
            Ok(_) => Ok(true),
            Err(sqlx::Error::Database(err)) if err.is_unique_violation() => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// Deletes the keys older than the newest one active since
    /// `superseded_before`: no token they signed verifies any more.
    pub async fn prune_signing_keys(
        &self,
        superseded_before: UnixMillis,
    ) -> Result<u64, sqlx::Error> {
        let select =
            sqlx::query("SELECT MAX(generation) FROM signing_keys WHERE activates_at <= ?")
                .bind(superseded_before);
        let newest: Option<i64> = self
            .run(async |conn| select.fetch_one(conn).await)
            .await?
            .try_get(0)?;
        match newest {
            Some(newest) => self.delete_signing_keys_before(newest).await,
            None => Ok(0),
        }
    }

    /// Re-seals every key under the key-encryption key `kek_id`, in one
    /// transaction: `reseal` gives a key's private key sealed anew, or an
    /// error that leaves every key as it was. The keys are read locked (on
    /// SQLite a concurrent writer makes the commit fail instead), so a key
    /// added meanwhile cannot be left under the old key-encryption key.
    pub async fn reseal_signing_keys<E: From<sqlx::Error>>(
        &self,
        kek_id: &str,
        reseal: impl Fn(&SigningKeyRecord) -> Result<String, E>,
    ) -> Result<u64, E> {
        let lock = self.for_update();
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(&format!(
            "SELECT generation, kid, algorithm, private_key, kek_id, created_at, activates_at \
             FROM signing_keys ORDER BY generation{lock}"
        ))
        .fetch_all(&mut *tx)
        .await?;
        let mut resealed = 0;
        for row in rows {
            let record = SigningKeyRecord::from_row(&row)?;
            let private_key = reseal(&record)?;
            resealed += sqlx::query(
                "UPDATE signing_keys SET private_key = ?, kek_id = ? WHERE generation = ?",
            )
            .bind(private_key)
            .bind(kek_id)
            .bind(record.generation)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        Ok(resealed)
    }

    /// Deletes every key older than `generation`.
    pub async fn delete_signing_keys_before(&self, generation: i64) -> Result<u64, sqlx::Error> {
        let delete = sqlx::query("DELETE FROM signing_keys WHERE generation < ?").bind(generation);
        Ok(self
            .run(async |conn| delete.execute(conn).await)
            .await?
            .rows_affected())
    }
}
