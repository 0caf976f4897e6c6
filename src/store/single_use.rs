//! Single-use things (mailed account tokens today; authorization codes and
//! recovery codes next), consumed once, decided by the database.

use sqlx::AnyConnection;

use crate::clock::UnixMillis;
use crate::ids::TokenHash;

/// A table of single-use rows: keyed by `token_hash`, with `expires_at`
/// and a `used_at` that is set once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SingleUse {
    AccountTokens,
}

impl SingleUse {
    fn table(self) -> &'static str {
        match self {
            Self::AccountTokens => "account_tokens",
        }
    }
}

/// Marks the row `hash` of `table` used at `now` if it is neither used nor
/// expired; whether this call did. However many calls race, on however many
/// instances, the conditional update lets exactly one of them see its row
/// change. Run it inside the transaction that does what the token allows,
/// so the token is spent if and only if that is done.
pub(super) async fn consume(
    conn: &mut AnyConnection,
    table: SingleUse,
    hash: &TokenHash,
    now: UnixMillis,
) -> Result<bool, sqlx::Error> {
    let sql = format!(
        "UPDATE {} SET used_at = ? WHERE token_hash = ? AND used_at IS NULL AND expires_at > ?",
        table.table()
    );
    let done = sqlx::query(&sql)
        .bind(now)
        .bind(hash)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}
