//! PostgreSQL and MySQL/MariaDB: a database server that several mayfly-ca instances share.
//!
//! One implementation for both engines (sqlx's `Any` driver), the differences being the few
//! spellings in [`Dialect`]. What makes several instances behave as one CA is in the statements,
//! not in the process: a token is burnt by one `INSERT ... ON CONFLICT DO NOTHING` (`INSERT
//! IGNORE` on MySQL) whose affected-row count says whether this instance was first, inside the
//! transaction that stores the certificate; there is no read-then-write window for a second
//! instance to slip through. Every lookup reads the database, so a revocation committed by one
//! instance is seen by the next request on any other. On PostgreSQL and MariaDB one writer task
//! per instance records concurrent issuances in one transaction ([`crate::group`]); MySQL, which
//! cannot say which rows of a multi-row insert went in, records each in its own.

use std::future::Future;
use std::time::Duration;

use mayfly_authority::audit::AuditContext;
use mayfly_authority::store::{CertificateStatus, IssuedCertificate, StoreError, UsedToken};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyPool, AssertSqlSafe, Transaction};
use time::OffsetDateTime;
use tokio::sync::mpsc;

use crate::codec;
use crate::dialect::Dialect;
use crate::engine::{Engine, Outcome, in_transaction};
use crate::group::{self, Pending, Writer};
use crate::{Error, MIGRATIONS};

/// Connections per instance. Each request holds one for a transaction of two or three statements.
const MAX_CONNECTIONS: u32 = 16;
/// How long a request waits for a free connection, or a new one, before failing cleanly.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// Key of the advisory lock that serialises migrations between instances starting at once.
const MIGRATION_LOCK: i64 = 0x6d61_7966_6c79;

/// The store traits ([`CertStore`], [`AdminStore`], [`SshStore`], [`AcmeStore`]) on a
/// PostgreSQL or MySQL/MariaDB server.
///
/// [`CertStore`]: mayfly_authority::store::CertStore
/// [`AdminStore`]: mayfly_authority::store::AdminStore
/// [`SshStore`]: mayfly_authority::ssh::store::SshStore
/// [`AcmeStore`]: mayfly_acme::store::AcmeStore
#[derive(Debug, Clone)]
pub struct NetworkedStore {
    pool: AnyPool,
    dialect: Dialect,
    /// Issuances waiting for the writer task (PostgreSQL, MariaDB), which records them in
    /// groups.
    queue: Option<mpsc::Sender<Pending>>,
    /// The URL without its password, for messages.
    name: String,
}

impl NetworkedStore {
    /// Connects to `url` (`postgres://…` or `mysql://…`) and brings the schema up to date.
    pub async fn open(url: &str) -> Result<NetworkedStore, Error> {
        let store = NetworkedStore::connect(url).await?;
        store.migrate().await?;
        tracing::info!(database = %store.name, "opened {} store", store.dialect.name());
        Ok(store)
    }

    /// Connects without touching the schema (for `mayfly-ca db check`).
    pub async fn connect(url: &str) -> Result<NetworkedStore, Error> {
        sqlx::any::install_default_drivers();
        let name = redact(url);
        let dialect = dialect_of(url).ok_or_else(|| {
            Error::Location(format!(
                "{name}: not a PostgreSQL (postgres://) or MySQL (mysql://) URL"
            ))
        })?;
        let open_error = |source| Error::Open {
            database: name.clone(),
            source,
        };
        let options: AnyConnectOptions = url.parse().map_err(open_error)?;
        let pool = AnyPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .after_connect(move |connection, _| {
                Box::pin(async move {
                    if dialect == Dialect::MySql {
                        // Refuse a value that does not fit instead of truncating it (two long
                        // jtis truncated alike would collide), whatever the server's default.
                        sqlx::raw_sql(
                            "SET SESSION sql_mode = CONCAT(@@sql_mode, ',STRICT_ALL_TABLES'), \
                             time_zone = '+00:00'",
                        )
                        .execute(&mut *connection)
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(open_error)?;
        let groups = match dialect {
            Dialect::Postgres => true,
            Dialect::MySql => inserts_return_rows(&pool).await.map_err(open_error)?,
            Dialect::Sqlite => false,
        };
        let queue = groups.then(|| {
            let writer = Writer {
                dialect,
                begin: "BEGIN",
                retryable: <NetworkedStore as Engine>::retryable,
            };
            group::any::spawn_writer(pool.clone(), writer)
        });
        Ok(NetworkedStore {
            pool,
            dialect,
            queue,
            name,
        })
    }

    /// Which engine this is.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Whether concurrent issuances are recorded in one transaction (PostgreSQL, MariaDB 10.5
    /// and later) or each in its own (MySQL); see [`crate::group`].
    pub fn records_issuances_in_groups(&self) -> bool {
        self.queue.is_some()
    }

    /// The database's URL without its password.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Waits for calls in progress, then closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The highest migration applied (0 for an empty database).
    pub async fn schema_version(&self) -> Result<i64, Error> {
        let open_error = |source| Error::Open {
            database: self.name.clone(),
            source,
        };
        let version: Option<i64> = match sqlx::query_scalar::<_, Option<i64>>(
            "SELECT MAX(version) FROM schema_migrations",
        )
        .fetch_one(&self.pool)
        .await
        {
            Ok(version) => version,
            Err(error) if is_missing_table(&error) => None,
            Err(error) => return Err(open_error(error)),
        };
        Ok(version.unwrap_or(0))
    }

    /// Applies the migrations this database has not seen, holding an advisory lock so that two
    /// instances starting at once take turns. Refuses a database newer than this mayfly.
    pub async fn migrate(&self) -> Result<(), Error> {
        let open_error = |source| Error::Open {
            database: self.name.clone(),
            source,
        };
        let mut connection = self.pool.acquire().await.map_err(open_error)?;
        let (lock, unlock) = match self.dialect {
            Dialect::Postgres => (
                format!("SELECT COUNT(*) FROM (SELECT pg_advisory_lock({MIGRATION_LOCK})) AS l"),
                format!("SELECT COUNT(*) FROM (SELECT pg_advisory_unlock({MIGRATION_LOCK})) AS l"),
            ),
            _ => (
                format!("SELECT GET_LOCK('mayfly-{MIGRATION_LOCK}', 60)"),
                format!("SELECT RELEASE_LOCK('mayfly-{MIGRATION_LOCK}')"),
            ),
        };
        // PostgreSQL waits as long as it takes; MySQL answers 0 after its timeout.
        let locked = sqlx::query_scalar::<_, Option<i64>>(AssertSqlSafe(lock))
            .fetch_one(&mut *connection)
            .await
            .map_err(open_error)?;
        if locked != Some(1) {
            return Err(Error::Location(format!(
                "{}: another instance has held the schema migration lock for 60 s; try again",
                self.name
            )));
        }
        let outcome = self.migrate_locked(&mut connection).await;
        let released = sqlx::query_scalar::<_, Option<i64>>(AssertSqlSafe(unlock))
            .fetch_one(&mut *connection)
            .await;
        if let Err(error) = released {
            // Closing the connection releases the lock too.
            tracing::warn!(%error, "releasing the migration lock failed");
            let _ = connection.detach();
        }
        outcome
    }

    async fn migrate_locked(&self, connection: &mut sqlx::AnyConnection) -> Result<(), Error> {
        let open_error = |source| Error::Open {
            database: self.name.clone(),
            source,
        };
        // step-ca's tables share names with mayfly's (acme_accounts, acme_orders) and hold
        // step-ca's history; mayfly writes into a database of its own and copies that history
        // over (`mayfly-ca import-step`), so step-ca's stays as it was.
        if crate::step::has_step_tables(&mut *connection)
            .await
            .map_err(open_error)?
        {
            return Err(Error::Location(format!(
                "database {} holds step-ca's tables (x509_certs, used_ott, ...): mayfly-ca keeps \
                 its records in a database of its own; name a new one in db (\"database\", or \
                 the URL's path) and copy step-ca's history into it with `mayfly-ca import-step`",
                self.name
            )));
        }
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS schema_migrations (\
                 version BIGINT NOT NULL PRIMARY KEY, \
                 applied_at BIGINT NOT NULL)",
        )
        .execute(&mut *connection)
        .await
        .map_err(open_error)?;
        let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM schema_migrations")
            .fetch_all(&mut *connection)
            .await
            .map_err(open_error)?;
        let found = applied.iter().copied().max().unwrap_or(0);
        let known = crate::schema_version();
        if found > known {
            return Err(Error::SchemaTooNew {
                database: self.name.clone(),
                found,
                known,
            });
        }
        // Each missing version, not only those above the highest: a migration numbered below
        // one already applied (merged from another line of work) is applied too.
        let missing = MIGRATIONS
            .iter()
            .filter(|(version, _)| !applied.contains(version));
        for &(version, sql) in missing {
            let migrate_error = |source| Error::Migrate {
                database: self.name.clone(),
                version,
                source,
            };
            // PostgreSQL runs DDL in the transaction; MySQL commits each DDL statement on its
            // own, so there a failed migration can leave part of itself applied (it says so).
            let mut tx = sqlx::Connection::begin(&mut *connection)
                .await
                .map_err(migrate_error)?;
            for statement in self.dialect.translate_migration(sql) {
                sqlx::raw_sql(AssertSqlSafe(statement))
                    .execute(&mut *tx)
                    .await
                    .map_err(migrate_error)?;
            }
            sqlx::query(
                self.dialect
                    .sql("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)"),
            )
            .bind(version)
            .bind(codec::to_unix(OffsetDateTime::now_utc()))
            .execute(&mut *tx)
            .await
            .map_err(migrate_error)?;
            tx.commit().await.map_err(migrate_error)?;
            tracing::info!(database = %self.name, version, "applied schema migration");
        }
        Ok(())
    }
}

/// A server's own ways: one pool for everything, and a transaction the engine aborted to break a
/// deadlock is run again.
impl Engine for NetworkedStore {
    type Db = Any;

    fn dialect(&self) -> Dialect {
        self.dialect
    }

    fn reads(&self) -> &AnyPool {
        &self.pool
    }

    fn writes(&self) -> &AnyPool {
        &self.pool
    }

    fn begin_write(
        &self,
    ) -> impl Future<Output = Result<Transaction<'static, Any>, sqlx::Error>> + Send {
        self.pool.begin()
    }

    /// Deadlock or serialisation failure: SQLSTATE 40001 (both engines) or 40P01 (PostgreSQL).
    fn retryable(error: &sqlx::Error) -> bool {
        match error {
            sqlx::Error::Database(database) => {
                matches!(database.code().as_deref(), Some("40001" | "40P01"))
            }
            _ => false,
        }
    }

    /// PostgreSQL, MariaDB: through the writer task, in groups. MySQL: one transaction per
    /// issuance.
    /// Either way the token's burn and the certificate's insert meet other instances' in the
    /// database.
    async fn record(
        &self,
        certificate: &IssuedCertificate,
        token: Option<&UsedToken>,
        audit: &AuditContext,
    ) -> Result<(), StoreError> {
        if let Some(queue) = &self.queue {
            return group::record(queue, certificate, token, audit).await;
        }
        codec::check_lengths(certificate, token)?;
        let sans = codec::encode_sans(&certificate.sans)?;
        let sans = sans.as_str();
        let context = format!("recording certificate {}", certificate.serial);
        let dialect = self.dialect;
        in_transaction(self, &context, |mut tx| async move {
            let outcome = record_in(&mut tx, dialect, certificate, token, sans, audit).await;
            (tx, outcome)
        })
        .await
    }
}

/// The statements of an issuance inside its transaction.
async fn record_in(
    tx: &mut Transaction<'static, Any>,
    dialect: Dialect,
    certificate: &IssuedCertificate,
    token: Option<&UsedToken>,
    sans: &str,
    audit: &AuditContext,
) -> Outcome<()> {
    if let Err(refusal) = crate::shared::any::spend(tx, dialect, token).await? {
        return Ok(Err(refusal));
    }
    let stored = sqlx::query(dialect.insert_sql(&codec::ISSUED_CERTIFICATE.rows(1)))
        .bind(certificate.serial.as_str())
        .bind(certificate.der.as_slice())
        .bind(certificate.subject.as_str())
        .bind(sans)
        .bind(codec::to_unix(certificate.not_before))
        .bind(codec::to_unix(certificate.not_after))
        .bind(certificate.provisioner.as_str())
        .bind(CertificateStatus::Valid.as_str())
        .bind(codec::to_unix(OffsetDateTime::now_utc()))
        .bind(codec::shard_column(certificate.crl_shard))
        .execute(&mut **tx)
        .await?;
    if stored.rows_affected() == 0 {
        return Ok(Err(StoreError::SerialTaken {
            serial: certificate.serial.clone(),
        }));
    }
    crate::shared::any::audit_issued_in(
        tx,
        dialect,
        audit,
        &certificate.serial,
        &certificate.subject,
        sans,
        &certificate.provisioner,
    )
    .await?;
    Ok(Ok(()))
}

/// Whether this MySQL-protocol server is a MariaDB with `INSERT … RETURNING` (10.5 and later),
/// which group commit needs; MySQL itself has none.
async fn inserts_return_rows(pool: &AnyPool) -> Result<bool, sqlx::Error> {
    let version: String = sqlx::query_scalar("SELECT VERSION()")
        .fetch_one(pool)
        .await?;
    Ok(mariadb_with_returning(&version))
}

/// [`inserts_return_rows`] from the server's version, `10.11.19-MariaDB-0+deb12u1` or, as some
/// proxies report it, `5.5.5-10.11.19-MariaDB`.
fn mariadb_with_returning(version: &str) -> bool {
    if !version.contains("MariaDB") {
        return false;
    }
    let version = version.strip_prefix("5.5.5-").unwrap_or(version);
    let mut numbers = version
        .split(|c: char| !c.is_ascii_digit())
        .map(|part| part.parse::<u32>().unwrap_or(0));
    let major = numbers.next().unwrap_or(0);
    let minor = numbers.next().unwrap_or(0);
    (major, minor) >= (10, 5)
}

/// The engine a URL names, by its scheme.
pub(crate) fn dialect_of(url: &str) -> Option<Dialect> {
    let scheme = url.split_once("://")?.0.to_ascii_lowercase();
    match scheme.as_str() {
        "postgres" | "postgresql" => Some(Dialect::Postgres),
        "mysql" => Some(Dialect::MySql),
        _ => None,
    }
}

/// `url` with any password replaced by `***`, so it can be logged and shown.
pub fn redact(url: &str) -> String {
    mayfly_config::datasource::redact_url(url)
}

/// "No such table": SQLSTATE 42P01 on PostgreSQL, 42S02 on MySQL.
pub(crate) fn is_missing_table(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(database) => {
            matches!(database.code().as_deref(), Some("42P01" | "42S02"))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::{dialect_of, mariadb_with_returning, redact};
    use crate::dialect::Dialect;

    #[test]
    fn only_mariadb_from_10_5_groups_issuances() {
        for (version, groups) in [
            ("10.11.19-MariaDB-0+deb12u1", true),
            ("5.5.5-10.11.19-MariaDB", true),
            ("10.5.0-MariaDB", true),
            ("11.4.2-MariaDB-log", true),
            ("10.4.34-MariaDB", false),
            ("8.0.36", false),
            ("8.4.0-0ubuntu0.24.04.1", false),
            ("", false),
        ] {
            assert_eq!(mariadb_with_returning(version), groups, "{version}");
        }
    }

    #[test]
    fn passwords_never_reach_messages() {
        for (url, shown) in [
            (
                "postgres://mayfly:s3cret@db.example:5432/ca?sslmode=require",
                "postgres://mayfly:***@db.example:5432/ca?sslmode=require",
            ),
            (
                "mysql://root:p@ss:word@127.0.0.1/ca",
                "mysql://root:***@127.0.0.1/ca",
            ),
            (
                "postgres://postgres@127.0.0.1/test",
                "postgres://postgres@127.0.0.1/test",
            ),
            ("mysql://127.0.0.1/ca", "mysql://127.0.0.1/ca"),
        ] {
            assert_eq!(redact(url), shown, "{url}");
        }
    }

    #[test]
    fn the_scheme_names_the_engine() {
        assert_eq!(dialect_of("postgresql://h/db"), Some(Dialect::Postgres));
        assert_eq!(dialect_of("postgres://h/db"), Some(Dialect::Postgres));
        assert_eq!(dialect_of("mysql://h/db"), Some(Dialect::MySql));
        assert_eq!(dialect_of("MySQL://h/db"), Some(Dialect::MySql));
        assert_eq!(dialect_of("sqlite://x.db"), None);
        assert_eq!(dialect_of("h/db"), None);
    }
}
