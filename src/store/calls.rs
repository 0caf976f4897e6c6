//! How one store call gets its connection: within a deadline, on a
//! connection that is discarded unless the call finished with it, tried
//! again where that is safe, and (on SQLite) in its turn to write.

use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection};
use tokio::time::Instant;

use super::Store;
use super::dialect::{is_broken_connection, is_transient};
use super::retry::Backoff;

impl Store {
    /// Runs `work` on one pooled connection within the store's deadline
    /// (see [`StoreOptions::timeout`]).
    pub(super) async fn run<T>(
        &self,
        work: impl AsyncFnOnce(&mut AnyConnection) -> Result<T, sqlx::Error>,
    ) -> Result<T, sqlx::Error> {
        self.run_until(Instant::now() + self.timeout, work).await
    }

    /// [`Store::run`] for work that may safely be done twice (an insert if
    /// absent, a read): tried again, after a short pause, while the
    /// database aborts it to resolve contention ([`is_transient`]; on a
    /// Galera cluster, instances starting at once collide so), until the
    /// deadline.
    pub(super) async fn run_idempotent<T>(
        &self,
        work: impl AsyncFn(&mut AnyConnection) -> Result<T, sqlx::Error>,
    ) -> Result<T, sqlx::Error> {
        let deadline = Instant::now() + self.timeout;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let pause = Backoff::TRANSACTION.pause(attempt);
            match self
                .run_until(deadline, async |conn| work(conn).await)
                .await
            {
                Err(err) if is_transient(&err) && Instant::now() + pause < deadline => {
                    tracing::debug!(error = %err, "aborted by the database; trying again");
                    tokio::time::sleep(pause).await;
                }
                done => return done,
            }
        }
    }

    /// A transaction, `attempt` (one [`Store::run`] of it), tried again while
    /// the database aborts it to resolve contention ([`is_transient`]: a
    /// deadlock, a lock wait, a Galera certification failure, SQLite busy),
    /// which leaves nothing of it behind; until the store's deadline, after
    /// which the abort is the answer (503). Never a client's error.
    pub(super) async fn retry_aborted<T, Attempt>(
        &self,
        mut attempt: impl FnMut() -> Attempt,
    ) -> Result<T, sqlx::Error>
    where
        Attempt: Future<Output = Result<T, sqlx::Error>>,
    {
        let deadline = Instant::now() + self.timeout;
        let mut tries = 0;
        loop {
            tries += 1;
            let pause = Backoff::TRANSACTION.pause(tries);
            match attempt().await {
                Err(err) if is_transient(&err) && Instant::now() + pause < deadline => {
                    tracing::debug!(error = %err, "transaction aborted by the database; trying again");
                    self.count_retry();
                    tokio::time::sleep(pause).await;
                }
                done => return done,
            }
        }
    }

    /// Runs `work` on one pooled connection, waiting for the connection and
    /// running the statements together until `deadline`. A connection whose
    /// work did not finish, because it ran out of time, failed on the wire
    /// or was abandoned (the request was cancelled), is discarded: its
    /// statement may still be running, its answer half read or its
    /// transaction open, so it is never used again.
    pub(super) async fn run_until<T>(
        &self,
        deadline: Instant,
        work: impl AsyncFnOnce(&mut AnyConnection) -> Result<T, sqlx::Error>,
    ) -> Result<T, sqlx::Error> {
        let conn = match tokio::time::timeout_at(deadline, self.pool.acquire()).await {
            Ok(conn) => conn?,
            Err(_) => return Err(sqlx::Error::PoolTimedOut),
        };
        let mut lent = Lent(Some(conn));
        let Some(conn) = lent.0.as_mut() else {
            unreachable!("the connection was just lent");
        };
        match tokio::time::timeout_at(deadline, work(conn)).await {
            Ok(Err(err)) if is_broken_connection(&err) => Err(err),
            Ok(result) => {
                lent.give_back();
                result
            }
            Err(_) => Err(sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the database did not answer within --db-timeout",
            ))),
        }
    }

    /// This process's turn to write, on SQLite (the `writer` field),
    /// waited for until `deadline`; `None` where the database orders
    /// writers itself.
    pub(super) async fn turn_to_write(
        &self,
        deadline: Instant,
    ) -> Result<Option<tokio::sync::OwnedMutexGuard<()>>, sqlx::Error> {
        let Some(writer) = &self.writer else {
            return Ok(None);
        };
        match tokio::time::timeout_at(deadline, writer.clone().lock_owned()).await {
            Ok(turn) => Ok(Some(turn)),
            Err(_) => Err(sqlx::Error::PoolTimedOut),
        }
    }
}

/// A pooled connection lent to one call: discarded when dropped, unless
/// the call finished with it and gave it back to the pool.
struct Lent(Option<PoolConnection<Any>>);

impl Lent {
    fn give_back(&mut self) {
        drop(self.0.take());
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        if let Some(conn) = self.0.take() {
            // Closes its socket (the server rolls back what it had begun)
            // and frees its place in the pool at once.
            drop(conn.detach());
        }
    }
}
