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

const MYSQL: Embedded = &[
    (
        1,
        "initial",
        include_str!("../../migrations/mysql/0001_initial.sql"),
    ),
    (
        2,
        "user disabled_at",
        include_str!("../../migrations/mysql/0002_user_disabled_at.sql"),
    ),
    (
        3,
        "login throttle",
        include_str!("../../migrations/mysql/0003_login_throttle.sql"),
    ),
    (
        4,
        "audit events",
        include_str!("../../migrations/mysql/0004_audit_events.sql"),
    ),
    (
        5,
        "username key",
        include_str!("../../migrations/mysql/0005_username_key.sql"),
    ),
    (
        6,
        "signing keys",
        include_str!("../../migrations/mysql/0006_signing_keys.sql"),
    ),
];

const SQLITE: Embedded = &[
    (
        1,
        "initial",
        include_str!("../../migrations/sqlite/0001_initial.sql"),
    ),
    (
        2,
        "user disabled_at",
        include_str!("../../migrations/sqlite/0002_user_disabled_at.sql"),
    ),
    (
        3,
        "login throttle",
        include_str!("../../migrations/sqlite/0003_login_throttle.sql"),
    ),
    (
        4,
        "audit events",
        include_str!("../../migrations/sqlite/0004_audit_events.sql"),
    ),
    (
        5,
        "username key",
        include_str!("../../migrations/sqlite/0005_username_key.sql"),
    ),
    (
        6,
        "signing keys",
        include_str!("../../migrations/sqlite/0006_signing_keys.sql"),
    ),
];

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_migration_file_is_embedded_in_order() {
        for backend in [Backend::MySql, Backend::Sqlite] {
            let folder = match backend {
                Backend::MySql => "mysql",
                Backend::Sqlite => "sqlite",
            };
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("migrations")
                .join(folder);
            let mut files: Vec<String> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            files.sort();
            let embedded = EmbeddedMigrations(backend).files();
            assert_eq!(
                files.len(),
                embedded.len(),
                "{folder}: every file is listed in migrations.rs"
            );
            for (position, (file, (version, _, sql))) in files.iter().zip(embedded).enumerate() {
                assert_eq!(
                    *version,
                    position as i64 + 1,
                    "{folder}: versions are 1, 2, 3…"
                );
                assert!(
                    file.starts_with(&format!("{version:04}_")),
                    "{folder}: {file} is version {version}"
                );
                assert_eq!(
                    std::fs::read_to_string(dir.join(file)).unwrap(),
                    *sql,
                    "{folder}/{file}"
                );
            }
        }
    }
}
