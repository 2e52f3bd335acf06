//! The embedded SQLite backend: one database file beside the CA, no server to run.
//!
//! What matters here is that an issuance is durable and a token can be burnt only once, even with
//! several mayfly processes sharing the file. Hence WAL with `synchronous = FULL` (a commit is on
//! disk before the certificate is handed out), `BEGIN IMMEDIATE` for every write transaction (the
//! write lock is taken up front, so two writers queue on the busy timeout instead of one failing
//! halfway), and one writer connection per process with a few separate reader connections
//! (SQLite serialises writers anyway; queueing them in the pool is cheaper than busy-waiting).
//! Issuances go through one writer task that commits whatever is queued in a single transaction
//! (group commit): concurrent requests share one fsync, and each is answered after the commit.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use mayfly_authority::audit::AuditContext;
use mayfly_authority::store::{IssuedCertificate, StoreError, UsedToken};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use time::OffsetDateTime;
use tokio::sync::mpsc;

use crate::codec::{self, backend};
use crate::engine::Engine;
use crate::group::{self, Pending, Writer};
use crate::{Dialect, Error, MIGRATIONS};

/// How long a statement waits for another connection's lock before failing with "busy".
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Reader connections per process; lookups are single-row, so a few are plenty.
const READERS: u32 = 4;

/// How the writer task writes: `BEGIN IMMEDIATE`, like every write here, and no retries (there
/// is no deadlock for SQLite to break; see [`SqliteStore::retryable`]).
const WRITER: Writer = Writer {
    dialect: Dialect::Sqlite,
    begin: "BEGIN IMMEDIATE",
    retryable: |_| false,
};

/// Name used in error messages for an in-memory database.
const IN_MEMORY: &str = ":memory:";

/// The store traits ([`CertStore`], [`AdminStore`], [`SshStore`], [`AcmeStore`]) in a SQLite
/// database.
///
/// Cloning is cheap and clones share the connections.
///
/// [`CertStore`]: mayfly_authority::store::CertStore
/// [`AdminStore`]: mayfly_authority::store::AdminStore
/// [`SshStore`]: mayfly_authority::ssh::store::SshStore
/// [`AcmeStore`]: mayfly_acme::store::AcmeStore
#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// Every write goes through this pool of one connection.
    writer: SqlitePool,
    /// Lookups; the same pool as `writer` for an in-memory database, whose data lives in that one
    /// connection.
    reader: SqlitePool,
    /// Issuances waiting for the writer task, which commits them in groups.
    queue: mpsc::Sender<Pending>,
    path: PathBuf,
}

/// The settings in force on the writer connection, to check (or log) that durability is as
/// configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionSettings {
    /// `PRAGMA journal_mode`, lower case as SQLite reports it: `wal` for a file database.
    pub journal_mode: String,
    /// `PRAGMA synchronous` by name: `OFF`, `NORMAL`, `FULL` or `EXTRA`.
    pub synchronous: String,
    /// `PRAGMA foreign_keys`.
    pub foreign_keys: bool,
    /// `PRAGMA busy_timeout`, in milliseconds.
    pub busy_timeout_ms: i64,
}

impl SqliteStore {
    /// Opens the database at `path`, creating the file if it is missing (its directory must
    /// exist), and brings its schema up to date.
    pub async fn open(path: &Path) -> Result<SqliteStore, Error> {
        let open_error = |source| Error::Open {
            database: path.display().to_string(),
            source,
        };
        create_private(path)?;
        let base = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT)
            // A multi-row insert's statement journal stays in memory instead of a temp file.
            .pragma("temp_store", "MEMORY");

        // WAL is a property of the file, set once by the writer. Readers leave the journal mode
        // alone: changing it needs an exclusive lock that the busy timeout does not wait for.
        let writer = local_pool(1)
            .connect_with(base.clone().journal_mode(SqliteJournalMode::Wal))
            .await
            .map_err(open_error)?;
        migrate(&writer, path).await?;
        let reader = local_pool(READERS)
            .connect_with(base)
            .await
            .map_err(open_error)?;

        tracing::info!(path = %path.display(), "opened SQLite store");
        Ok(SqliteStore {
            queue: group::sqlite::spawn_writer(writer.clone(), WRITER),
            writer,
            reader,
            path: path.to_owned(),
        })
    }

    /// Opens a fresh, empty database that lives in memory until the store is dropped or closed.
    /// For tests and throw-away runs: nothing is durable.
    pub async fn open_in_memory() -> Result<SqliteStore, Error> {
        let path = Path::new(IN_MEMORY);
        let open_error = |source| Error::Open {
            database: path.display().to_string(),
            source,
        };
        let options = SqliteConnectOptions::from_str("sqlite::memory:")
            .map_err(open_error)?
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        // The data lives only as long as its connection, so the pool must keep exactly one and
        // never retire it.
        let pool = SqlitePoolOptions::new()
            .min_connections(1)
            .max_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await
            .map_err(open_error)?;
        migrate(&pool, path).await?;
        Ok(SqliteStore {
            queue: group::sqlite::spawn_writer(pool.clone(), WRITER),
            writer: pool.clone(),
            reader: pool,
            path: path.to_owned(),
        })
    }

    /// The database file (`:memory:` for an in-memory one).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Waits for calls in progress, then closes every connection. Later calls fail.
    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }

    /// Reads the settings in force on the writer connection.
    pub async fn connection_settings(&self) -> Result<ConnectionSettings, StoreError> {
        let context = "reading connection settings";
        let mut connection = self
            .writer
            .acquire()
            .await
            .map_err(|e| backend(context, e))?;
        let journal_mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&mut *connection)
            .await
            .map_err(|e| backend(context, e))?;
        let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&mut *connection)
            .await
            .map_err(|e| backend(context, e))?;
        let foreign_keys: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
            .fetch_one(&mut *connection)
            .await
            .map_err(|e| backend(context, e))?;
        let busy_timeout_ms: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
            .fetch_one(&mut *connection)
            .await
            .map_err(|e| backend(context, e))?;
        let synchronous = match synchronous {
            0 => "OFF".to_owned(),
            1 => "NORMAL".to_owned(),
            2 => "FULL".to_owned(),
            3 => "EXTRA".to_owned(),
            other => other.to_string(),
        };
        Ok(ConnectionSettings {
            journal_mode,
            synchronous,
            foreign_keys: foreign_keys != 0,
            busy_timeout_ms,
        })
    }
}

/// SQLite's own ways: writes on the one writer connection, lookups on the readers, and
/// `BEGIN IMMEDIATE`, so writers queue on the busy timeout instead of one failing halfway.
impl Engine for SqliteStore {
    type Db = sqlx::Sqlite;

    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    /// The reader connections, so a long group commit holds up no lookup.
    fn reads(&self) -> &SqlitePool {
        &self.reader
    }

    /// The one writer connection: SQLite serialises writers anyway.
    fn writes(&self) -> &SqlitePool {
        &self.writer
    }

    fn begin_write(
        &self,
    ) -> impl Future<Output = Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error>> + Send
    {
        self.writer.begin_with("BEGIN IMMEDIATE")
    }

    /// Never: the write lock is taken up front, so there is no deadlock for SQLite to break,
    /// and a busy database has already been waited for (the busy timeout).
    fn retryable(_: &sqlx::Error) -> bool {
        false
    }

    /// Through the writer task, which commits what is queued as one group.
    async fn record(
        &self,
        certificate: &IssuedCertificate,
        token: Option<&UsedToken>,
        audit: &AuditContext,
    ) -> Result<(), StoreError> {
        group::record(&self.queue, certificate, token, audit).await
    }
}

/// A pool of up to `connections` connections to a database file on this host. No ping before
/// each use: it is one more round trip to the connection's SQLite thread, and it can find nothing
/// wrong with a local file that the statements that follow would not.
fn local_pool(connections: u32) -> SqlitePoolOptions {
    SqlitePoolOptions::new()
        .max_connections(connections)
        .test_before_acquire(false)
}

/// Applies the migrations this database has not seen yet, each in its own transaction.
///
/// `BEGIN IMMEDIATE` makes two processes opening a new database at once take turns: the second
/// sees the first's version row and skips that migration.
async fn migrate(pool: &SqlitePool, path: &Path) -> Result<(), Error> {
    let open_error = |source| Error::Open {
        database: path.display().to_string(),
        source,
    };
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS schema_migrations (\
             version INTEGER NOT NULL PRIMARY KEY, \
             applied_at BIGINT NOT NULL)",
    )
    .execute(pool)
    .await
    .map_err(open_error)?;

    let known = crate::schema_version();
    let found: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM schema_migrations")
        .fetch_one(pool)
        .await
        .map_err(open_error)?;
    if let Some(found) = found.filter(|&found| found > known) {
        return Err(Error::SchemaTooNew {
            database: path.display().to_string(),
            found,
            known,
        });
    }

    for &(version, sql) in MIGRATIONS {
        let migrate_error = |source| Error::Migrate {
            database: path.display().to_string(),
            version,
            source,
        };
        let mut tx = pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(migrate_error)?;
        let applied: Option<i64> =
            sqlx::query_scalar("SELECT version FROM schema_migrations WHERE version = ?")
                .bind(version)
                .fetch_optional(&mut *tx)
                .await
                .map_err(migrate_error)?;
        if applied.is_some() {
            tx.rollback().await.map_err(migrate_error)?;
            continue;
        }
        for statement in Dialect::Sqlite.translate_migration(sql) {
            sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
                .execute(&mut *tx)
                .await
                .map_err(migrate_error)?;
        }
        sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)")
            .bind(version)
            .bind(codec::to_unix(OffsetDateTime::now_utc()))
            .execute(&mut *tx)
            .await
            .map_err(migrate_error)?;
        tx.commit().await.map_err(migrate_error)?;
        tracing::info!(path = %path.display(), version, "applied schema migration");
    }
    Ok(())
}

/// Creates the database file with mode 0600 when it does not exist yet. SQLite would create it
/// 0644 (less the umask), and it gives the `-wal` and `-shm` files the mode of the database
/// file, so creating this one private keeps all three private: they hold every certificate and
/// the used token ids. An existing file keeps the mode its administrator gave it.
fn create_private(path: &Path) -> Result<(), Error> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(Error::Create {
            database: path.display().to_string(),
            source: e,
        }),
    }
}

/// The highest migration applied to the database at `path`, read without changing the file
/// (0 when it has no schema yet). For `mayfly-ca db check`.
pub async fn schema_version_at(path: &Path) -> Result<i64, Error> {
    use sqlx::Connection;
    let open_error = |source| Error::Open {
        database: path.display().to_string(),
        source,
    };
    let options = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .busy_timeout(BUSY_TIMEOUT);
    let mut connection = sqlx::SqliteConnection::connect_with(&options)
        .await
        .map_err(open_error)?;
    let has_table: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'",
    )
    .fetch_one(&mut connection)
    .await
    .map_err(open_error)?;
    let version = if has_table == 0 {
        None
    } else {
        sqlx::query_scalar::<_, Option<i64>>("SELECT MAX(version) FROM schema_migrations")
            .fetch_one(&mut connection)
            .await
            .map_err(open_error)?
    };
    let _ = connection.close().await;
    Ok(version.unwrap_or(0))
}
