//! Migrations embedded in the binary by `sqlx::migrate!`, one directory
//! per store (`migrations/{mysql,sqlite}/`), and the lock that lets one
//! instance at a time apply them.

use std::time::{Duration, Instant};

use sqlx::AnyPool;
use sqlx::migrate::Migrator;

use super::Backend;

static MYSQL: Migrator = sqlx::migrate!("migrations/mysql");
static SQLITE: Migrator = sqlx::migrate!("migrations/sqlite");

/// The migrations of `backend`.
pub fn migrator(backend: Backend) -> &'static Migrator {
    match backend {
        Backend::MySql => &MYSQL,
        Backend::Sqlite => &SQLITE,
    }
}

/// How long the migration lock is held without renewal before another
/// instance may take it (its holder died); the holder renews it every third
/// of that.
const LEASE: Duration = Duration::from_secs(30);
/// How long an instance waits for another to finish migrating.
const WAIT_AT_MOST: Duration = Duration::from_secs(600);
const NAME: &str = "migrate";
/// How often an instance looks whether the lock is free again.
const POLL: super::retry::Backoff = super::retry::Backoff {
    first: Duration::from_millis(50),
    max: Duration::from_millis(400),
};

/// The lock that lets one instance at a time migrate a database, however
/// many start at once and on whichever node of a cluster: a row in a table
/// of its own, taken by an insert that only one instance can commit (on
/// Galera, where `GET_LOCK` locks one node only, the others fail
/// certification) and held on a lease that its holder renews, so that an
/// instance that dies while migrating does not block the others for more
/// than [`LEASE`].
pub(super) struct MigrationLock {
    pool: AnyPool,
    owner: String,
    renewal: tokio::task::JoinHandle<()>,
}

impl MigrationLock {
    pub(super) async fn acquire(pool: &AnyPool, backend: Backend) -> Result<Self, sqlx::Error> {
        let create = super::dialect::create_lock_table(backend);
        let take_free = super::dialect::insert_if_absent(
            backend,
            "gatehouse_locks",
            &["name", "owner", "expires_at"],
            "name",
        );
        sqlx::query(create).execute(pool).await?;
        let owner = uuid::Uuid::new_v4().to_string();
        let started = Instant::now();
        let mut waited = false;
        let mut polls = 0;
        loop {
            match try_take(pool, &take_free, &owner).await {
                Ok(true) => break,
                Ok(false) => {}
                // Two instances raced for it and the database chose.
                Err(err) if super::is_transient(&err) => {}
                Err(err) => return Err(err),
            }
            if started.elapsed() > WAIT_AT_MOST {
                return Err(sqlx::Error::Protocol(format!(
                    "another instance has held the migration lock for more than {}s",
                    WAIT_AT_MOST.as_secs()
                )));
            }
            if !waited {
                tracing::info!("another instance is migrating the database; waiting for it");
                waited = true;
            }
            polls += 1;
            tokio::time::sleep(POLL.pause(polls)).await;
        }
        let renewal = tokio::spawn({
            let (pool, owner) = (pool.clone(), owner.clone());
            async move {
                loop {
                    tokio::time::sleep(LEASE / 3).await;
                    let renewed = sqlx::query(
                        "UPDATE gatehouse_locks SET expires_at = ? WHERE name = ? AND owner = ?",
                    )
                    .bind(lease_end())
                    .bind(NAME)
                    .bind(&owner)
                    .execute(&pool)
                    .await;
                    if let Err(err) = renewed {
                        tracing::warn!(error = %err, "could not renew the migration lock");
                    }
                }
            }
        });
        Ok(Self {
            pool: pool.clone(),
            owner,
            renewal,
        })
    }

    /// Lets the next instance migrate (which finds nothing left to do).
    pub(super) async fn release(self) {
        self.renewal.abort();
        let released = sqlx::query("DELETE FROM gatehouse_locks WHERE name = ? AND owner = ?")
            .bind(NAME)
            .bind(&self.owner)
            .execute(&self.pool)
            .await;
        if let Err(err) = released {
            // Its lease runs out instead.
            tracing::warn!(error = %err, "could not release the migration lock");
        }
    }
}

/// Takes the lock if it is free or its lease ran out.
async fn try_take(pool: &AnyPool, take_free: &str, owner: &str) -> Result<bool, sqlx::Error> {
    let taken = sqlx::query(take_free)
        .bind(NAME)
        .bind(owner)
        .bind(lease_end())
        .execute(pool)
        .await?
        .rows_affected();
    if taken == 1 {
        return Ok(true);
    }
    let stolen = sqlx::query(
        "UPDATE gatehouse_locks SET owner = ?, expires_at = ? WHERE name = ? AND expires_at < ?",
    )
    .bind(owner)
    .bind(lease_end())
    .bind(NAME)
    .bind(wall_clock())
    .execute(pool)
    .await?
    .rows_affected();
    Ok(stolen == 1)
}

fn lease_end() -> crate::clock::UnixMillis {
    wall_clock() + LEASE
}

/// The lease is held against other processes, which share no injected
/// clock, and migrations run before the app's clock exists: wall time.
fn wall_clock() -> crate::clock::UnixMillis {
    use crate::clock::Clock as _;
    crate::clock::SystemClock.now()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_stores_have_the_same_migrations_numbered_from_one() {
        let list = |backend| {
            migrator(backend)
                .iter()
                .map(|m| (m.version, m.description.to_string()))
                .collect::<Vec<_>>()
        };
        let mysql = list(Backend::MySql);
        assert_eq!(
            mysql,
            list(Backend::Sqlite),
            "one schema change, both stores"
        );
        let versions: Vec<i64> = mysql.iter().map(|(version, _)| *version).collect();
        let expected: Vec<i64> = (1..=versions.len() as i64).collect();
        assert_eq!(versions, expected);
    }
}
