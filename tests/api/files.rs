//! What Gatehouse leaves on disk is its owner's alone. SQLite only: the
//! MySQL server keeps its own files.

use std::os::unix::fs::PermissionsExt as _;

use crate::helpers::{Store, TestApp};

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Issue 20, item 9: a data directory that existed before, with a
/// database file left at the umask.
#[tokio::test]
async fn the_sqlite_files_are_made_private_even_in_a_data_directory_that_existed() {
    let app = TestApp::spawn_with(Store::Sqlite, |config| {
        let dir = &config.database.data_dir;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let db = dir.join("gatehouse.db");
        std::fs::write(&db, b"").unwrap();
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    })
    .await;
    app.user_with_tokens("alice").await;
    let dir = app.config.database.data_dir.clone();
    for file in ["gatehouse.db", "gatehouse.db-wal", "gatehouse.db-shm"] {
        assert_eq!(mode(&dir.join(file)), 0o600, "{file}");
    }
    assert_eq!(mode(&dir.join("key-encryption-key")), 0o600);
}

#[tokio::test]
async fn a_new_sqlite_database_is_created_private() {
    let app = TestApp::spawn(Store::Sqlite).await;
    app.user_with_tokens("alice").await;
    let dir = &app.config.database.data_dir;
    for file in ["gatehouse.db", "gatehouse.db-wal", "gatehouse.db-shm"] {
        assert_eq!(mode(&dir.join(file)), 0o600, "{file}");
    }
}
