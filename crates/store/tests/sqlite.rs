//! The SQLite backend against the conformance suite, plus what only SQLite has: the file's
//! journal mode and durability settings, the migration bookkeeping, and reopening a file.
//!
//! Everything runs on real files in a fresh directory under the system temp dir, because WAL,
//! reopening and several handles on one database are exactly what an in-memory database hides.

mod column_limits;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use mayfly_authority::store::{CertStore, StoreError};
use mayfly_store::{Error, SqliteStore, conformance};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, SqliteConnection};

/// A directory removed when the test ends, pass or fail.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "mayfly-store-test-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        // A leftover from an earlier run with the same pid would otherwise leak its data in.
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create the test directory");
        TempDir(path)
    }

    fn database(&self) -> PathBuf {
        self.0.join("mayfly.db")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn open(path: &Path) -> SqliteStore {
    SqliteStore::open(path)
        .await
        .unwrap_or_else(|error| panic!("opening {}: {error}", path.display()))
}

/// A plain connection of the test's own, to look at the file without going through the store.
async fn raw_connection(path: &Path) -> SqliteConnection {
    SqliteConnection::connect_with(&SqliteConnectOptions::new().filename(path))
        .await
        .expect("open a raw connection to the database")
}

async fn schema_versions(path: &Path) -> Vec<i64> {
    let mut connection = raw_connection(path).await;
    let versions = sqlx::query_scalar("SELECT version FROM schema_migrations ORDER BY version")
        .fetch_all(&mut connection)
        .await
        .expect("read schema_migrations");
    connection.close().await.expect("close the raw connection");
    versions
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_on_a_file() {
    let dir = TempDir::new();
    let store = open(&dir.database()).await;
    conformance::run_all(&store).await;
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_in_memory() {
    let store = SqliteStore::open_in_memory()
        .await
        .expect("open an in-memory store");
    conformance::run_all(&store).await;
}

/// More revoked certificates than one page holds, half with one revocation time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_certificates_page_through_every_entry() {
    let store = SqliteStore::open_in_memory()
        .await
        .expect("open an in-memory store");
    let records = conformance::many_revoked(45_000);
    store.bulk_load(&records).await.expect("bulk load");
    conformance::revoked_pages_cover_every_entry(&store, &records).await;
}

/// The ACME store's rules, with two handles on one file standing for two CA instances.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acme_conformance_on_a_file_with_two_handles() {
    let dir = TempDir::new();
    let first = open(&dir.database()).await;
    let second = open(&dir.database()).await;
    mayfly_store::acme_conformance::run_all(&first, &second).await;
    first.close().await;
    second.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acme_conformance_in_memory() {
    let store = SqliteStore::open_in_memory()
        .await
        .expect("open an in-memory store");
    mayfly_store::acme_conformance::run_all(&store, &store).await;
}

/// The longest values the checks upstream let through are stored whole (the same checks run
/// on PostgreSQL and MariaDB in `networked.rs`, where a column too short would refuse them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_at_their_longest_fit_their_columns() {
    let dir = TempDir::new();
    let store = open(&dir.database()).await;
    column_limits::revoked_by_at_the_longest_provisioner_name(&store).await;
    column_limits::acme_identifier_at_its_longest(&store).await;
    store.close().await;
}

/// Two handles on one file stand for two mayfly processes sharing the database: they take turns
/// through SQLite's file locks and the busy timeout, not through one pool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_handles_on_one_file_race_safely() {
    let dir = TempDir::new();
    let first = open(&dir.database()).await;
    let second = open(&dir.database()).await;
    let stores: [&dyn CertStore; 2] = [&first, &second];
    conformance::concurrent_token_use(&stores).await;
    conformance::concurrent_distinct_issuances(&stores).await;
    conformance::concurrent_lease(&[&first, &second]).await;
    conformance::crl_numbers_only_grow(&stores).await;
    conformance::revocations_are_numbered(&stores).await;
    first.close().await;
    second.close().await;
}

#[tokio::test]
async fn durability_settings_are_in_force() {
    let dir = TempDir::new();
    let store = open(&dir.database()).await;
    let settings = store
        .connection_settings()
        .await
        .expect("read the connection settings");
    assert_eq!(settings.journal_mode, "wal");
    assert_eq!(settings.synchronous, "FULL");
    assert!(settings.foreign_keys, "foreign keys should be enforced");
    assert_eq!(settings.busy_timeout_ms, 5000);
    store.close().await;

    // WAL is recorded in the file itself, so a connection that asks for nothing still gets it.
    let mut connection = raw_connection(&dir.database()).await;
    let journal_mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut connection)
        .await
        .expect("read the journal mode");
    assert_eq!(journal_mode, "wal");
    connection.close().await.expect("close the raw connection");
}

#[tokio::test]
async fn migrations_are_recorded_and_idempotent() {
    let all_versions = mayfly_store::migration_versions;
    let dir = TempDir::new();
    let path = dir.database();
    open(&path).await.close().await;
    assert_eq!(schema_versions(&path).await, all_versions());

    // Reopening must neither re-run a migration (CREATE TABLE would fail) nor record it again.
    open(&path).await.close().await;
    assert_eq!(schema_versions(&path).await, all_versions());
}

#[tokio::test]
async fn data_survives_close_and_reopen() {
    let dir = TempDir::new();
    let path = dir.database();
    let certificate = conformance::sample_certificate("reopen");
    let token = conformance::fresh_token("reopen");

    let store = open(&path).await;
    store
        .record_issuance(
            &certificate,
            Some(&token),
            &mayfly_store::conformance::ISSUED_AUDIT,
        )
        .await
        .expect("record an issuance");
    store.close().await;

    let store = open(&path).await;
    let loaded = store
        .certificate(&certificate.serial)
        .await
        .expect("look the certificate up after reopening")
        .expect("the certificate should still be stored after reopening");
    assert_eq!(loaded.certificate, certificate);

    let replay = conformance::sample_certificate("reopen");
    let result = store
        .record_issuance(
            &replay,
            Some(&token),
            &mayfly_store::conformance::ISSUED_AUDIT,
        )
        .await;
    assert!(
        matches!(result, Err(StoreError::TokenAlreadyUsed { .. })),
        "the token should still be burnt after reopening, got {result:?}"
    );
    store.close().await;
}

#[tokio::test]
async fn missing_directory_is_reported_with_the_path() {
    let dir = TempDir::new();
    let path = dir.0.join("no-such-directory").join("mayfly.db");
    let error = SqliteStore::open(&path)
        .await
        .expect_err("opening in a missing directory should fail");
    assert!(matches!(error, Error::Create { .. }), "got {error:?}");
    let message = error.to_string();
    assert!(
        message.contains(&path.display().to_string()),
        "the message should name the database: {message}"
    );
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let dir = TempDir::new();
    let path = dir.database();
    open(&path).await.close().await;

    let mut connection = raw_connection(&path).await;
    sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES (999, 0)")
        .execute(&mut connection)
        .await
        .expect("pretend a newer mayfly migrated the database");
    connection.close().await.expect("close the raw connection");

    let error = SqliteStore::open(&path)
        .await
        .expect_err("a database from a newer mayfly should be refused");
    assert!(
        matches!(
            error,
            Error::SchemaTooNew {
                found: 999,
                known,
                ..
            } if known == mayfly_store::schema_version()
        ),
        "got {error:?}"
    );
    assert!(error.to_string().contains(&path.display().to_string()));
}

/// The database and its `-wal` and `-shm` files hold every certificate and used token id: they
/// are created readable by their owner only, whatever the umask.
#[tokio::test]
async fn database_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new();
    let path = dir.database();
    let store = open(&path).await;
    store
        .record_issuance(
            &conformance::sample_certificate("private"),
            Some(&conformance::fresh_token("private")),
            &mayfly_store::conformance::ISSUED_AUDIT,
        )
        .await
        .expect("record an issuance");
    for suffix in ["", "-wal", "-shm"] {
        let file = PathBuf::from(format!("{}{suffix}", path.display()));
        let mode = std::fs::metadata(&file)
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{}", file.display());
    }
    store.close().await;
}

/// A database at schema 11 keeps its published CRL through the move of CRLs into parts
/// (schema 12): the CRL a running CA kept is read back whole after the upgrade.
#[tokio::test]
async fn a_kept_crl_survives_the_move_into_parts() {
    use mayfly_authority::store::CrlScopeName;
    use mayfly_store::Dialect;
    let dir = TempDir::new();
    let path = dir.database();
    let options = SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true);
    let mut connection = SqliteConnection::connect_with(&options)
        .await
        .expect("create the schema-11 database");
    sqlx::raw_sql(
        "CREATE TABLE schema_migrations (version INTEGER NOT NULL PRIMARY KEY, \
         applied_at BIGINT NOT NULL)",
    )
    .execute(&mut connection)
    .await
    .unwrap();
    for version in mayfly_store::migration_versions()
        .into_iter()
        .filter(|&v| v <= 11)
    {
        let sql = mayfly_store::migration_sql(version).expect("a shipped migration");
        for statement in Dialect::Sqlite.translate_migration(sql) {
            sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
                .execute(&mut connection)
                .await
                .unwrap_or_else(|e| panic!("migration {version}: {e}"));
        }
        sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES (?, 0)")
            .bind(version)
            .execute(&mut connection)
            .await
            .unwrap();
    }
    let der: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    sqlx::query(
        "INSERT INTO published_crls (scope, crl_number, this_update, next_update, der) \
         VALUES ('full', 41, 1900000000, 1900086400, ?)",
    )
    .bind(der.as_slice())
    .execute(&mut connection)
    .await
    .unwrap();
    connection.close().await.unwrap();

    let store = open(&path).await;
    let kept = store
        .latest_crl(CrlScopeName::Full, 0)
        .await
        .expect("read the kept CRL after the upgrade")
        .expect("the kept CRL survives the upgrade");
    assert_eq!((kept.number, kept.der), (41, der));
    store.close().await;
}
