//! Migrations embedded in the binary, one list per store.
//!
//! The files under `migrations/{mysql,sqlite}/` are the source of truth; a test
//! checks that every file there is listed here, so none can be forgotten.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;

use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType};

use super::Backend;

/// `(version, description, sql)` for each migration file.
type Embedded = &'static [(i64, &'static str, &'static str)];

const MYSQL: Embedded = &[(
    1,
    "initial",
    include_str!("../../migrations/mysql/0001_initial.sql"),
)];

const SQLITE: Embedded = &[(
    1,
    "initial",
    include_str!("../../migrations/sqlite/0001_initial.sql"),
)];

/// The migrations of one backend, as a source for [`sqlx::migrate::Migrator`].
#[derive(Debug, Clone, Copy)]
pub struct EmbeddedMigrations(pub Backend);

impl EmbeddedMigrations {
    /// The embedded `(version, description, sql)` triples, in order.
    pub fn files(self) -> Embedded {
        match self.0 {
            Backend::MySql => MYSQL,
            Backend::Sqlite => SQLITE,
        }
    }
}

impl MigrationSource<'static> for EmbeddedMigrations {
    fn resolve(
        self,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, BoxDynError>> + Send + 'static>> {
        let migrations = self
            .files()
            .iter()
            .map(|&(version, description, sql)| {
                Migration::new(
                    version,
                    Cow::Borrowed(description),
                    MigrationType::Simple,
                    Cow::Borrowed(sql),
                    false,
                )
            })
            .collect();
        Box::pin(async move { Ok(migrations) })
    }
}
