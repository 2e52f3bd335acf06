//! PostgreSQL and MySQL/MariaDB: a database server that several mayfly-ca instances share.
//!
//! One implementation for both engines (sqlx's `Any` driver), the differences being the few
//! spellings in [`Dialect`]. What makes several instances behave as one CA is in the statements,
//! not in the process: a token is burnt by one `INSERT ... ON CONFLICT DO NOTHING` (`INSERT
//! IGNORE` on MySQL) whose affected-row count says whether this instance was first, inside the
//! transaction that stores the certificate; there is no read-then-write window for a second
//! instance to slip through. Every lookup reads the database, so a revocation committed by one
//! instance is seen by the next request on any other.

use std::time::Duration;

use mayfly_authority::audit::{AuditContext, AuditEntry, AuditQuery};
use mayfly_authority::store::{
    AdminStore, BoxFuture, CertStore, CertificatePage, CertificateStatus, CrlScopeName,
    IssuedCertificate, Revocation, RevokedEntry, RevokedQuery, StoreCounts, StoreError,
    StoredCertificate, StoredCrl, UsedToken,
};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyPool, AssertSqlSafe, Transaction};
use time::OffsetDateTime;

use crate::codec::{self, backend};
use crate::dialect::Dialect;
use crate::{Error, MIGRATIONS};

/// Connections per instance. Each request holds one for a transaction of two or three statements.
const MAX_CONNECTIONS: u32 = 16;
/// How long a request waits for a free connection, or a new one, before failing cleanly.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// A deadlock or serialisation failure is retried this many times; the engine chose a victim,
/// and the statements are safe to run again.
const RETRIES: usize = 3;
/// Key of the advisory lock that serialises migrations between instances starting at once.
const MIGRATION_LOCK: i64 = 0x6d61_7966_6c79;

/// A [`CertStore`] on a PostgreSQL or MySQL/MariaDB server.
#[derive(Debug, Clone)]
pub struct NetworkedStore {
    pub(crate) pool: AnyPool,
    pub(crate) dialect: Dialect,
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
        Ok(NetworkedStore {
            pool,
            dialect,
            name,
        })
    }

    /// `query` (a constant of this crate, with `?` placeholders) for this engine. Only text
    /// written in this crate goes through here; values are always bound.
    fn sql(&self, query: &str) -> AssertSqlSafe<String> {
        AssertSqlSafe(self.dialect.placeholders(query))
    }

    /// See [`Dialect::insert_unless_present`]; `rest` is a constant of this crate.
    fn sql_insert(&self, rest: &str) -> AssertSqlSafe<String> {
        AssertSqlSafe(self.dialect.insert_unless_present(rest))
    }

    /// Which engine this is.
    pub fn dialect(&self) -> Dialect {
        self.dialect
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
                self.sql("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)"),
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

    /// Whether the database answers, for `/health`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query_scalar::<_, i64>(crate::PING)
            .fetch_one(&self.pool)
            .await
            .map(|_| ())
            .map_err(|e| backend("checking the database", e))
    }

    async fn record(
        &self,
        certificate: &IssuedCertificate,
        token: Option<&UsedToken>,
        audit: &AuditContext,
    ) -> Result<(), StoreError> {
        codec::check_lengths(certificate, token)?;
        let sans = codec::encode_sans(&certificate.sans)?;
        let context = format!("recording certificate {}", certificate.serial);
        self.in_transaction(
            &context,
            Write::Issue {
                certificate,
                token,
                sans: &sans,
                audit,
            },
        )
        .await
    }

    async fn record_in(
        &self,
        tx: &mut Transaction<'static, Any>,
        certificate: &IssuedCertificate,
        token: Option<&UsedToken>,
        sans: &str,
        audit: &AuditContext,
    ) -> Result<Result<(), StoreError>, sqlx::Error> {
        if let Some(token) = token
            && !crate::shared::any::burn(tx, self.dialect, token).await?
        {
            return Ok(Err(StoreError::TokenAlreadyUsed {
                jti: token.jti.clone(),
            }));
        }
        let stored = sqlx::query(self.sql_insert(
            "certificates (serial, der, subject, sans, not_before, not_after, provisioner, \
             status, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        ))
        .bind(certificate.serial.as_str())
        .bind(certificate.der.as_slice())
        .bind(certificate.subject.as_str())
        .bind(sans)
        .bind(codec::to_unix(certificate.not_before))
        .bind(codec::to_unix(certificate.not_after))
        .bind(certificate.provisioner.as_str())
        .bind(CertificateStatus::Valid.as_str())
        .bind(codec::to_unix(OffsetDateTime::now_utc()))
        .execute(&mut **tx)
        .await?;
        if stored.rows_affected() == 0 {
            return Ok(Err(StoreError::SerialTaken {
                serial: certificate.serial.clone(),
            }));
        }
        crate::shared::any::audit_issued_in(
            tx,
            self.dialect,
            audit,
            &certificate.serial,
            &certificate.subject,
            sans,
            &certificate.provisioner,
        )
        .await?;
        Ok(Ok(()))
    }

    async fn record_revocation(
        &self,
        revocation: &Revocation,
        token: Option<&UsedToken>,
        audit: &AuditContext,
    ) -> Result<(), StoreError> {
        let context = format!("revoking certificate {}", revocation.serial);
        self.in_transaction(
            &context,
            Write::Revoke {
                revocation,
                token,
                audit,
            },
        )
        .await
    }

    /// Runs `write` in a transaction: commits when it succeeds, rolls back on a refusal, and
    /// runs it again from the start when the engine broke a deadlock by aborting this one.
    pub(crate) async fn in_transaction(
        &self,
        context: &str,
        write: Write<'_>,
    ) -> Result<(), StoreError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let outcome = async {
                let mut tx = self.pool.begin().await?;
                let result = match write {
                    Write::Issue {
                        certificate,
                        token,
                        sans,
                        audit,
                    } => {
                        self.record_in(&mut tx, certificate, token, sans, audit)
                            .await
                    }
                    Write::Revoke {
                        revocation,
                        token,
                        audit,
                    } => {
                        crate::shared::any::revoke_in(
                            &mut tx,
                            self.dialect,
                            revocation,
                            token,
                            audit,
                        )
                        .await
                    }
                    Write::SshIssue {
                        certificate,
                        token,
                        audit,
                    } => {
                        crate::ssh::on_any::record_in(
                            &mut tx,
                            self.dialect,
                            certificate,
                            token,
                            audit,
                        )
                        .await
                    }
                    Write::SshRevoke {
                        revocation,
                        token,
                        audit,
                    } => {
                        crate::ssh::on_any::revoke_in(
                            &mut tx,
                            self.dialect,
                            revocation,
                            token,
                            audit,
                        )
                        .await
                    }
                };
                match result {
                    Ok(Ok(())) => tx.commit().await.map(Ok),
                    Ok(Err(refusal)) => {
                        tx.rollback().await?;
                        Ok(Err(refusal))
                    }
                    Err(error) => {
                        let _ = tx.rollback().await;
                        Err(error)
                    }
                }
            }
            .await;
            match outcome {
                Ok(result) => return result,
                Err(error) if attempt <= RETRIES && is_retryable(&error) => {
                    tracing::debug!(%error, attempt, "{context}: retrying after a deadlock");
                }
                Err(error) => return Err(backend(context, error)),
            }
        }
    }

    async fn load(&self, serial: &str) -> Result<Option<StoredCertificate>, StoreError> {
        crate::shared::any::load(&self.pool, self.dialect, serial).await
    }

    async fn prune(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        crate::shared::any::prune_used_tokens(&self.pool, self.dialect, now).await
    }
}

impl NetworkedStore {
    async fn list(&self, page: &CertificatePage) -> Result<Vec<StoredCertificate>, StoreError> {
        crate::shared::any::list(&self.pool, self.dialect, page).await
    }

    async fn prune_expired(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        crate::shared::any::prune_certificates(&self.pool, self.dialect, before).await
    }

    async fn count(&self) -> Result<StoreCounts, StoreError> {
        crate::shared::any::counts(&self.pool).await
    }

    async fn lease(
        &self,
        name: &str,
        holder: &str,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        crate::shared::any::acquire_lease(&self.pool, self.dialect, name, holder, now, until).await
    }
}

impl NetworkedStore {
    async fn revoked(&self, query: RevokedQuery) -> Result<Vec<RevokedEntry>, StoreError> {
        crate::shared::any::revoked(&self.pool, self.dialect, query).await
    }

    /// The bump and the read in one transaction: the UPDATE's row lock makes instances taking a
    /// number at once queue, and each reads the number its own UPDATE wrote.
    async fn crl_number(&self) -> Result<u64, StoreError> {
        let context = "taking the next CRL number";
        let mut attempt = 0;
        loop {
            attempt += 1;
            let outcome: Result<i64, sqlx::Error> = async {
                let mut tx = self.pool.begin().await?;
                sqlx::query(codec::CRL_NUMBER_BUMP)
                    .execute(&mut *tx)
                    .await?;
                let number: i64 = sqlx::query_scalar(codec::CRL_NUMBER)
                    .fetch_one(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(number)
            }
            .await;
            match outcome {
                Ok(number) => return codec::crl_number(number),
                Err(error) if attempt <= RETRIES && is_retryable(&error) => {}
                Err(error) => return Err(backend(context, error)),
            }
        }
    }
}

impl AdminStore for NetworkedStore {
    fn list_certificates<'a>(
        &'a self,
        page: &'a CertificatePage,
    ) -> BoxFuture<'a, Result<Vec<StoredCertificate>, StoreError>> {
        Box::pin(self.list(page))
    }

    fn prune_certificates(
        &self,
        expired_before: OffsetDateTime,
    ) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(self.prune_expired(expired_before))
    }

    fn counts(&self) -> BoxFuture<'_, Result<StoreCounts, StoreError>> {
        Box::pin(self.count())
    }

    fn acquire_lease<'a>(
        &'a self,
        name: &'a str,
        holder: &'a str,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(self.lease(name, holder, now, until))
    }

    fn audit_entries<'a>(
        &'a self,
        query: &'a AuditQuery,
    ) -> BoxFuture<'a, Result<Vec<AuditEntry>, StoreError>> {
        Box::pin(crate::shared::any::audit_entries(
            &self.pool,
            self.dialect,
            query,
        ))
    }
}

impl CertStore for NetworkedStore {
    fn record_issuance<'a>(
        &'a self,
        certificate: &'a IssuedCertificate,
        token: Option<&'a UsedToken>,
        audit: &'a AuditContext,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.record(certificate, token, audit))
    }

    fn certificate<'a>(
        &'a self,
        serial: &'a str,
    ) -> BoxFuture<'a, Result<Option<StoredCertificate>, StoreError>> {
        Box::pin(self.load(serial))
    }

    fn revoke<'a>(
        &'a self,
        revocation: &'a Revocation,
        token: Option<&'a UsedToken>,
        audit: &'a AuditContext,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.record_revocation(revocation, token, audit))
    }

    fn prune_used_tokens(&self, now: OffsetDateTime) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(self.prune(now))
    }

    fn revoked_certificates(
        &self,
        query: RevokedQuery,
    ) -> BoxFuture<'_, Result<Vec<RevokedEntry>, StoreError>> {
        Box::pin(self.revoked(query))
    }

    fn next_crl_number(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(self.crl_number())
    }

    fn publish_crl<'a>(&'a self, crl: &'a StoredCrl) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(crate::shared::any::publish_crl(
            &self.pool,
            self.dialect,
            crl,
        ))
    }

    fn latest_crl(
        &self,
        scope: CrlScopeName,
    ) -> BoxFuture<'_, Result<Option<StoredCrl>, StoreError>> {
        Box::pin(crate::shared::any::latest_crl(
            &self.pool,
            self.dialect,
            scope,
        ))
    }
}

/// A write that runs in one transaction.
#[derive(Clone, Copy)]
pub(crate) enum Write<'a> {
    Issue {
        certificate: &'a IssuedCertificate,
        token: Option<&'a UsedToken>,
        sans: &'a str,
        audit: &'a AuditContext,
    },
    Revoke {
        revocation: &'a Revocation,
        token: Option<&'a UsedToken>,
        audit: &'a AuditContext,
    },
    SshIssue {
        certificate: &'a mayfly_authority::ssh::store::IssuedSshCertificate,
        token: Option<&'a UsedToken>,
        audit: &'a AuditContext,
    },
    SshRevoke {
        revocation: &'a Revocation,
        token: Option<&'a UsedToken>,
        audit: &'a AuditContext,
    },
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

/// Deadlock or serialisation failure: SQLSTATE 40001 (both engines) or 40P01 (PostgreSQL).
fn is_retryable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(database) => {
            matches!(database.code().as_deref(), Some("40001" | "40P01"))
        }
        _ => false,
    }
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
    use super::{dialect_of, redact};
    use crate::dialect::Dialect;

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
