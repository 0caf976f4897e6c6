//! Connections outside the pool, for one hot read path (introspection's
//! session lookups, which must read the database on every call). The pool
//! pings a connection before lending it, a round trip kept for every other
//! call (see [`Store::connect`]); a connection its one user holds needs no
//! ping: a read that fails on it because it broke while idle (a database
//! restart, a network fault) is tried once more on a new connection, which
//! is safe for a read.

use sqlx::{AnyConnection, ConnectOptions as _};
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::dialect::{is_broken_connection, set_up_connection};
use super::{Account, Store};
use crate::clock::UnixMillis;
use crate::ids::SessionId;

/// A few connections of their own; see the module's documentation.
#[derive(Debug)]
pub struct OwnConnections {
    store: Store,
    slots: Vec<Mutex<Option<AnyConnection>>>,
}

impl Store {
    /// `count` connections outside the pool, opened when first used.
    pub fn own_connections(&self, count: usize) -> OwnConnections {
        OwnConnections {
            store: self.clone(),
            slots: (0..count.max(1)).map(|_| Mutex::new(None)).collect(),
        }
    }

    /// A new connection, set up as the pool's are.
    async fn open_connection(&self) -> Result<AnyConnection, sqlx::Error> {
        let mut conn = self.pool.connect_options().connect().await?;
        set_up_connection(self.backend, &mut conn).await?;
        Ok(conn)
    }
}

impl OwnConnections {
    /// The owner of each of `session_ids` that is live at `now`, in one
    /// statement (the others are absent), read on a free connection
    /// (waiting for one if all are busy) within the store's deadline; see
    /// the module's documentation.
    pub async fn live_session_owners(
        &self,
        session_ids: &[SessionId],
        now: UnixMillis,
    ) -> Result<Vec<(SessionId, Account)>, sqlx::Error> {
        let deadline = Instant::now() + self.store.timeout;
        let mut slot = match self.slots.iter().find_map(|slot| slot.try_lock().ok()) {
            Some(slot) => slot,
            None => match tokio::time::timeout_at(deadline, self.slots[0].lock()).await {
                Ok(slot) => slot,
                Err(_) => return Err(sqlx::Error::PoolTimedOut),
            },
        };
        let mut retried = false;
        loop {
            // A closed store serves no one, here as in the pool.
            if self.store.pool.is_closed() {
                *slot = None;
                return Err(sqlx::Error::PoolClosed);
            }
            let reused = slot.is_some();
            let conn = match slot.as_mut() {
                Some(conn) => conn,
                None => {
                    let opened =
                        match tokio::time::timeout_at(deadline, self.store.open_connection()).await
                        {
                            Ok(opened) => opened?,
                            Err(_) => return Err(sqlx::Error::PoolTimedOut),
                        };
                    slot.insert(opened)
                }
            };
            let read = super::sessions::live_session_owners(conn, session_ids, now);
            match tokio::time::timeout_at(deadline, read).await {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(err)) if is_broken_connection(&err) => {
                    *slot = None;
                    if reused && !retried {
                        retried = true;
                        tracing::debug!(error = %err, "an idle connection broke; reading on a new one");
                        continue;
                    }
                    return Err(err);
                }
                Ok(Err(err)) => return Err(err),
                Err(_) => {
                    // Its statement may still be running: never used again.
                    *slot = None;
                    return Err(sqlx::Error::Io(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "the database did not answer within --db-timeout",
                    )));
                }
            }
        }
    }
}
