//! The OAuth client registry.

use sqlx::FromRow as _;

use super::Store;
use crate::clock::UnixMillis;
use crate::ids::TokenHash;

/// A registered client as stored. Lists are space-separated.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ClientRecord {
    pub client_id: String,
    pub name: String,
    /// 1 for a confidential client (it has a secret), 0 for a public one.
    pub confidential: i64,
    /// 1 for a client of the service itself (no consent asked).
    pub first_party: i64,
    pub grant_types: String,
    pub redirect_uris: String,
    pub scopes: String,
    /// The SHA-256 of a confidential client's secret.
    pub secret_hash: Option<TokenHash>,
    pub created_at: UnixMillis,
    pub disabled_at: Option<UnixMillis>,
}

const CLIENT_COLUMNS: &str = "client_id, name, confidential, first_party, grant_types, \
     redirect_uris, scopes, secret_hash, created_at, disabled_at";

impl Store {
    /// Registers `client`; `false` if its id is taken.
    pub async fn insert_client(&self, client: &ClientRecord) -> Result<bool, sqlx::Error> {
        let insert = sqlx::query(
            "INSERT INTO clients (client_id, name, confidential, first_party, grant_types, \
             redirect_uris, scopes, secret_hash, created_at, disabled_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&client.client_id)
        .bind(&client.name)
        .bind(client.confidential)
        .bind(client.first_party)
        .bind(&client.grant_types)
        .bind(&client.redirect_uris)
        .bind(&client.scopes)
        .bind(&client.secret_hash)
        .bind(client.created_at)
        .bind(client.disabled_at);
        match self.run(async |conn| insert.execute(conn).await).await {
            Ok(_) => Ok(true),
            Err(sqlx::Error::Database(err)) if err.is_unique_violation() => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// The client `client_id`, disabled or not.
    pub async fn find_client(&self, client_id: &str) -> Result<Option<ClientRecord>, sqlx::Error> {
        let sql = format!("SELECT {CLIENT_COLUMNS} FROM clients WHERE client_id = ?");
        let row = self
            .run(async |conn| sqlx::query(&sql).bind(client_id).fetch_optional(conn).await)
            .await?;
        row.as_ref().map(ClientRecord::from_row).transpose()
    }

    /// Every client, oldest first.
    pub async fn list_clients(&self) -> Result<Vec<ClientRecord>, sqlx::Error> {
        let sql = format!("SELECT {CLIENT_COLUMNS} FROM clients ORDER BY created_at, client_id");
        let rows = self
            .run(async |conn| sqlx::query(&sql).fetch_all(conn).await)
            .await?;
        rows.iter().map(ClientRecord::from_row).collect()
    }

    /// Disables the client (`Some(now)`); whether it exists.
    pub async fn disable_client(
        &self,
        client_id: &str,
        now: UnixMillis,
    ) -> Result<bool, sqlx::Error> {
        let update = sqlx::query(
            "UPDATE clients SET disabled_at = COALESCE(disabled_at, ?) WHERE client_id = ?",
        )
        .bind(now)
        .bind(client_id);
        let done = self.run(async |conn| update.execute(conn).await).await?;
        Ok(done.rows_affected() == 1)
    }

    /// Replaces a confidential client's secret hash; whether it is one.
    pub async fn set_client_secret(
        &self,
        client_id: &str,
        secret_hash: &TokenHash,
    ) -> Result<bool, sqlx::Error> {
        let update = sqlx::query(
            "UPDATE clients SET secret_hash = ? WHERE client_id = ? AND confidential = 1",
        )
        .bind(secret_hash)
        .bind(client_id);
        let done = self.run(async |conn| update.execute(conn).await).await?;
        Ok(done.rows_affected() == 1)
    }
}
