//! The SQLite backend against the SSH store conformance cases, on a real file.

use mayfly_store::{SqliteStore, conformance_ssh};

#[tokio::test]
async fn sqlite_passes_the_ssh_conformance_cases() {
    let dir = std::env::temp_dir().join(format!("mayfly-ssh-store-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store = SqliteStore::open(&dir.join("mayfly.db")).await.unwrap();
    conformance_ssh::run_all(&store).await;
    store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}
