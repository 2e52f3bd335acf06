//! Storage backends of mayfly: implementations of the authority's [`CertStore`] trait.
//!
//! The authority owns the trait and decides what must be recorded; this crate owns how. SQLite is
//! the embedded default (one file beside the CA, no server to run). The schema is kept to a
//! portable SQL subset and the expected behaviour is written down once, in [`conformance`], so
//! that PostgreSQL and MySQL backends can later be added and held to the same rules.
//!
//! [`CertStore`]: mayfly_authority::store::CertStore

use std::path::{Path, PathBuf};
use std::sync::Arc;

use mayfly_authority::store::CertStore;

mod acme;
pub mod acme_conformance;
pub mod bulk;
mod codec;
pub mod conformance;
pub mod conformance_ssh;
mod dialect;
mod dsn;
mod engine;
mod group;
pub mod metered;
mod networked;
mod parts;
mod shared;
mod sqlite;
mod ssh;
pub mod step;
pub mod testing;

pub use bulk::BulkCertificate;
pub use dialect::Dialect;
pub use networked::{NetworkedStore, redact};
pub use sqlite::{ConnectionSettings, SqliteStore};

/// Why a store could not be opened.
///
/// Failures of individual calls once open are [`mayfly_authority::store::StoreError`]s; these are
/// the ones an operator has to act on at start-up, so each names the database (a URL without its
/// password).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database could not be opened or configured.
    #[error("cannot open database {database}: {source}")]
    Open {
        database: String,
        #[source]
        source: sqlx::Error,
    },
    /// The database file could not be created.
    #[error("cannot create database {database}: {source}")]
    Create {
        database: String,
        #[source]
        source: std::io::Error,
    },
    /// A schema migration failed. On SQLite and PostgreSQL it was rolled back; on MySQL, which
    /// commits each schema change on its own, part of it may be applied. Earlier ones stay.
    #[error("cannot migrate database {database} to schema version {version}: {source}")]
    Migrate {
        database: String,
        version: i64,
        #[source]
        source: sqlx::Error,
    },
    /// The database was migrated by a newer mayfly; writing to it with this one could corrupt it.
    #[error(
        "database {database} has schema version {found}, but this mayfly knows only up to \
         {known}; upgrade mayfly"
    )]
    SchemaTooNew {
        database: String,
        found: i64,
        known: i64,
    },
    /// ca.json names a database type this build cannot use.
    #[error(
        "db.type {0:?} is not supported: expected \"sqlite\", \"postgresql\", \"mysql\" or \
         step-ca's \"badgerv2\" (read as SQLite beside it)"
    )]
    UnsupportedBackend(String),
    /// The database's location could not be worked out or prepared.
    #[error("{0}")]
    Location(String),
    /// step-ca's records could not be read, or not written into mayfly's store.
    #[error("{0}")]
    Import(String),
}

/// Where ca.json's `db` says the records are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL or MySQL/MariaDB server, by URL (`dataSource`).
    Server { dialect: Dialect, url: String },
}

impl Location {
    /// What ca.json's `db` names; `config_path` is the ca.json it came from, against whose
    /// directory a relative path resolves (wherever the server is started from).
    ///
    /// Without `db` (step-ca then keeps nothing), mayfly still records what it issues, in
    /// `$MAYFLY_PATH/db/mayfly.db`, never beside the config, whose directory may be read-only.
    pub fn of(
        config: &mayfly_config::config::CaConfig,
        config_path: &Path,
    ) -> Result<Location, Error> {
        let Some(db) = &config.db else {
            let base =
                mayfly_config::init::mayfly_path().map_err(|e| Error::Location(e.to_string()))?;
            return Ok(Location::Sqlite(base.join("db/mayfly.db")));
        };
        let dialect = match StoreKind::of(db)? {
            StoreKind::Sqlite => {
                return Ok(Location::Sqlite(beside_config(
                    config_path,
                    db.data_source.as_str(),
                )?));
            }
            StoreKind::StepBadger => {
                return Ok(Location::Sqlite(beside_badger(config_path, db)?));
            }
            StoreKind::Server(dialect) => dialect,
        };
        let url = dsn::server_url(dialect, &db.data_source, db.database.as_deref())?;
        Ok(Location::Server { dialect, url })
    }

    /// The one line the server logs when ca.json names step-ca's badger database, which mayfly
    /// does not read: where the records go instead, and how to bring step-ca's over.
    pub fn step_store_notice(
        config: &mayfly_config::config::CaConfig,
        config_path: &Path,
    ) -> Option<String> {
        let db = config.db.as_ref()?;
        if StoreKind::of(db).ok()? != StoreKind::StepBadger {
            return None;
        }
        let sqlite = beside_badger(config_path, db).ok()?;
        Some(format!(
            "db.type {:?}: step-ca's badger database {} is left untouched; mayfly-ca keeps its \
             records in SQLite at {} (step-ca's history: see `mayfly-ca import-step --help`)",
            db.kind,
            resolve_beside(config_path, db.data_source.as_str()).display(),
            sqlite.display()
        ))
    }

    /// The database for messages: a file's path, or a URL without its password.
    pub fn display_name(&self) -> String {
        match self {
            Location::Sqlite(path) => path.display().to_string(),
            Location::Server { url, .. } => redact(url),
        }
    }
}

/// A database's schema against what this mayfly knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaStatus {
    /// The highest migration applied (0: none).
    pub found: i64,
    /// The highest migration this mayfly has.
    pub known: i64,
}

/// How ca.json's `db.type` is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StoreKind {
    Sqlite,
    /// step-ca's badger (v1 or v2): a SQLite file beside its directory.
    StepBadger,
    Server(Dialect),
}

impl StoreKind {
    fn of(db: &mayfly_config::config::DbConfig) -> Result<StoreKind, Error> {
        Ok(match db.kind.to_ascii_lowercase().as_str() {
            "sqlite" | "sqlite3" => StoreKind::Sqlite,
            "badger" | "badgerv1" | "badgerv2" => StoreKind::StepBadger,
            // step-ca's names, and the obvious aliases.
            "postgresql" | "postgres" => StoreKind::Server(Dialect::Postgres),
            "mysql" | "mariadb" => StoreKind::Server(Dialect::MySql),
            other => return Err(Error::UnsupportedBackend(other.to_string())),
        })
    }
}

/// `path` from ca.json, relative to ca.json's directory.
fn resolve_beside(config_path: &Path, path: &str) -> PathBuf {
    let dir = config_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    mayfly_config::config::resolve_path(dir, path)
}

fn beside_config(config_path: &Path, path: &str) -> Result<PathBuf, Error> {
    if path.trim().is_empty() {
        return Err(Error::Location(
            "db.dataSource is empty: name the SQLite database file".into(),
        ));
    }
    Ok(resolve_beside(config_path, path))
}

/// The SQLite file that stands in for step-ca's badger directory: beside it, named after it
/// (`$STEPPATH/db` gives `$STEPPATH/db-mayfly.db`). Not inside: that directory is badger's,
/// and step-ca must still open it if the operator goes back.
fn beside_badger(
    config_path: &Path,
    db: &mayfly_config::config::DbConfig,
) -> Result<PathBuf, Error> {
    let badger = beside_config(config_path, db.data_source.as_str()).map_err(|_| {
        Error::Location(
            "db.dataSource is empty: mayfly's SQLite store goes beside step-ca's badger \
             directory, which it names"
                .into(),
        )
    })?;
    let name = badger.file_name().ok_or_else(|| {
        Error::Location(format!(
            "db.dataSource {:?} does not end in a directory name",
            db.data_source.as_str()
        ))
    })?;
    let mut file = name.to_os_string();
    file.push("-mayfly.db");
    Ok(badger.with_file_name(file))
}

/// An open store of any backend, with what only the server needs beside the [`CertStore`] calls.
#[derive(Debug, Clone)]
pub enum AnyStore {
    Sqlite(SqliteStore),
    Networked(NetworkedStore),
}

impl AnyStore {
    /// Opens the store at `location` and brings its schema up to date.
    pub async fn open(location: &Location) -> Result<AnyStore, Error> {
        match location {
            Location::Sqlite(path) => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    mayfly_config::files::create_dir_private(parent)
                        .map_err(|e| Error::Location(e.to_string()))?;
                }
                Ok(AnyStore::Sqlite(SqliteStore::open(path).await?))
            }
            Location::Server { url, .. } => {
                Ok(AnyStore::Networked(NetworkedStore::open(url).await?))
            }
        }
    }

    /// The store as the authority uses it, each call timed for `/metrics`.
    pub fn cert_store(&self) -> Arc<dyn CertStore> {
        let store: Arc<dyn CertStore> = match self {
            AnyStore::Sqlite(store) => Arc::new(store.clone()),
            AnyStore::Networked(store) => Arc::new(store.clone()),
        };
        Arc::new(metered::Metered::new(store))
    }

    /// The ACME protocol's state, in the same database.
    pub fn acme_store(&self) -> Arc<dyn mayfly_acme::store::AcmeStore> {
        match self {
            AnyStore::Sqlite(store) => Arc::new(store.clone()),
            AnyStore::Networked(store) => Arc::new(store.clone()),
        }
    }

    /// The SSH records, in the same database.
    pub fn ssh_store(&self) -> Arc<dyn mayfly_authority::ssh::store::SshStore> {
        match self {
            AnyStore::Sqlite(store) => Arc::new(store.clone()),
            AnyStore::Networked(store) => Arc::new(store.clone()),
        }
    }

    /// The store with its listing, retention and lease calls too.
    pub fn full(&self) -> Arc<dyn mayfly_authority::store::FullStore> {
        match self {
            AnyStore::Sqlite(store) => Arc::new(store.clone()),
            AnyStore::Networked(store) => Arc::new(store.clone()),
        }
    }

    /// Records tokens used at another CA as used here (see [`step`]); returns how many were
    /// not recorded yet.
    pub async fn import_used_tokens(
        &self,
        tokens: &[mayfly_authority::store::UsedToken],
    ) -> Result<u64, mayfly_authority::store::StoreError> {
        for token in tokens {
            codec::check_token_lengths(token)?;
        }
        match self {
            AnyStore::Sqlite(store) => store.burn_imported(tokens).await,
            AnyStore::Networked(store) => store.burn_imported(tokens).await,
        }
    }

    /// Writes `records` in one transaction (see [`bulk`]: for measurements at scale, not for a
    /// CA's own records); returns how many certificates were stored.
    pub async fn bulk_load(
        &self,
        records: &[BulkCertificate],
    ) -> Result<u64, mayfly_authority::store::StoreError> {
        match self {
            AnyStore::Sqlite(store) => store.bulk_load(records).await,
            AnyStore::Networked(store) => store.bulk_load(records).await,
        }
    }

    /// The bytes the database takes, tables and indexes, as its engine counts them.
    pub async fn database_size(&self) -> Result<u64, mayfly_authority::store::StoreError> {
        match self {
            AnyStore::Sqlite(store) => store.database_size().await,
            AnyStore::Networked(store) => store.database_size().await,
        }
    }

    /// Waits for calls in progress, then closes every connection.
    pub async fn close(&self) {
        match self {
            AnyStore::Sqlite(store) => store.close().await,
            AnyStore::Networked(store) => store.close().await,
        }
    }

    /// Whether the database answers a trivial query now.
    pub async fn ping(&self) -> Result<(), mayfly_authority::store::StoreError> {
        match self {
            AnyStore::Sqlite(store) => store.ping().await,
            AnyStore::Networked(store) => store.ping().await,
        }
    }
}

/// The schema version of the database at `location`, read without changing it.
pub async fn schema_status(location: &Location) -> Result<SchemaStatus, Error> {
    let found = match location {
        Location::Sqlite(path) => sqlite::schema_version_at(path).await?,
        Location::Server { url, .. } => {
            let store = NetworkedStore::connect(url).await?;
            let version = store.schema_version().await;
            store.close().await;
            version?
        }
    };
    Ok(SchemaStatus {
        found,
        known: schema_version(),
    })
}

/// Brings the database at `location` up to this mayfly's schema; returns the status after.
pub async fn migrate(location: &Location) -> Result<SchemaStatus, Error> {
    match AnyStore::open(location).await? {
        AnyStore::Sqlite(store) => store.close().await,
        AnyStore::Networked(store) => store.close().await,
    }
    schema_status(location).await
}

/// The schema migrations, in order: `(version, SQL)`.
///
/// Shared by every backend so that they all end up with the same tables. A migration is never
/// edited once released (databases in the field already ran it); changes go in a new one.
pub(crate) const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/0001_init.sql")),
    (2, include_str!("../migrations/0002_revocation.sql")),
    (3, include_str!("../migrations/0003_crl.sql")),
    (4, include_str!("../migrations/0004_ssh.sql")),
    (5, include_str!("../migrations/0005_acme.sql")),
    (6, include_str!("../migrations/0006_retention.sql")),
    (7, include_str!("../migrations/0007_published_crls.sql")),
    (8, include_str!("../migrations/0008_audit.sql")),
    (9, include_str!("../migrations/0009_crl_shards.sql")),
    (10, include_str!("../migrations/0010_revoked_covering.sql")),
    (
        11,
        include_str!("../migrations/0011_revocation_sequence.sql"),
    ),
    (12, include_str!("../migrations/0012_stored_parts.sql")),
];

/// The versions of this build's migrations, in order. Numbers are reserved per feature, so
/// there may be gaps (a branch's migration lands later).
pub fn migration_versions() -> Vec<i64> {
    MIGRATIONS.iter().map(|&(version, _)| version).collect()
}

/// The SQL of the shipped migration `version`, as written (before [`Dialect::translate_migration`]):
/// for tests that build a database at an older schema and upgrade it.
pub fn migration_sql(version: i64) -> Option<&'static str> {
    MIGRATIONS
        .iter()
        .find(|&&(shipped, _)| shipped == version)
        .map(|&(_, sql)| sql)
}

/// The schema version this build migrates databases to: the last migration's.
pub fn schema_version() -> i64 {
    MIGRATIONS.last().map_or(0, |&(version, _)| version)
}

/// Longest decimal serial number stored; the schema's `VARCHAR(64)`.
pub const MAX_SERIAL_LEN: usize = 64;
/// Longest CRL distribution point URL remembered; the schema's `VARCHAR(512)`, and the longest
/// the authority accepts in its configuration.
pub const MAX_CRL_URL_LEN: usize = 512;
/// Longest token `jti` stored; the schema's `VARCHAR(255)`, and the longest the authority
/// accepts in a token, so that a token it accepts can always be recorded.
pub const MAX_JTI_LEN: usize = mayfly_authority::token::MAX_TOKEN_ID_LEN;
/// Longest provisioner name stored; the schema's `VARCHAR(255)`, and the longest a
/// provisioner's name may be in ca.json.
pub const MAX_PROVISIONER_LEN: usize = mayfly_authority::provisioner::MAX_NAME_LEN;

/// What `/health` asks: answers only when the server is up, the database exists and its schema
/// is in place (a database dropped under a running instance fails it on every engine).
pub(crate) const PING: &str = "SELECT COUNT(*) FROM schema_migrations";

#[cfg(test)]
mod tests {
    use super::*;
    use mayfly_config::config::CaConfig;

    fn config_with_db(db: &str) -> CaConfig {
        let text = format!(
            r#"{{"root":"r","crt":"c","key":"k","address":":1","dnsNames":[],"db":{db},
            "authority":{{"provisioners":[]}}}}"#
        );
        CaConfig::parse(&text).unwrap().0
    }

    /// Relative paths follow ca.json, wherever the server was started and whatever
    /// MAYFLY_PATH says.
    #[test]
    fn relative_paths_resolve_against_the_config_directory() {
        let config_path = Path::new("/etc/step-ca/config/ca.json");
        for (db, expected) in [
            (
                r#"{"type":"sqlite","dataSource":"db/mayfly.db"}"#,
                "/etc/step-ca/config/db/mayfly.db",
            ),
            (
                r#"{"type":"sqlite","dataSource":"/var/lib/mayfly.db"}"#,
                "/var/lib/mayfly.db",
            ),
            (
                r#"{"type":"badgerv2","dataSource":"../db","badgerFileLoadingMode":""}"#,
                "/etc/step-ca/config/../db-mayfly.db",
            ),
            (
                r#"{"type":"badger","dataSource":"/var/lib/step-ca/db/"}"#,
                "/var/lib/step-ca/db-mayfly.db",
            ),
        ] {
            let location = Location::of(&config_with_db(db), config_path).unwrap();
            assert_eq!(location, Location::Sqlite(PathBuf::from(expected)), "{db}");
        }
        let location = Location::of(
            &config_with_db(r#"{"type":"sqlite","dataSource":"mayfly.db"}"#),
            Path::new("ca.json"),
        )
        .unwrap();
        assert_eq!(location, Location::Sqlite(PathBuf::from("./mayfly.db")));
    }

    #[test]
    fn badger_is_announced_in_one_line_and_nothing_else_is() {
        let config_path = Path::new("/s/config/ca.json");
        let badger = config_with_db(r#"{"type":"badgerv2","dataSource":"/s/db"}"#);
        let notice = Location::step_store_notice(&badger, config_path).unwrap();
        assert_eq!(notice.lines().count(), 1, "{notice}");
        assert!(notice.contains("/s/db is left untouched"), "{notice}");
        assert!(notice.contains("SQLite at /s/db-mayfly.db"), "{notice}");
        assert!(notice.contains("mayfly-ca import-step"), "{notice}");
        let sqlite = config_with_db(r#"{"type":"sqlite","dataSource":"/s/db"}"#);
        assert_eq!(Location::step_store_notice(&sqlite, config_path), None);
        for db in [
            r#"{"type":"badgerv2","dataSource":""}"#,
            r#"{"type":"badgerv2","dataSource":"/"}"#,
        ] {
            let err = Location::of(&config_with_db(db), config_path)
                .unwrap_err()
                .to_string();
            assert!(err.contains("db.dataSource"), "{db}: {err}");
        }
    }

    #[test]
    fn step_spellings_of_a_server_become_urls() {
        let config = config_with_db(
            r#"{"type":"mysql","dataSource":"ca:pw@tcp(db:3306)/","database":"stepca"}"#,
        );
        let location = Location::of(&config, Path::new("/x/ca.json")).unwrap();
        assert_eq!(
            location,
            Location::Server {
                dialect: Dialect::MySql,
                url: "mysql://ca:pw@db:3306/stepca".into()
            }
        );
        assert_eq!(location.display_name(), "mysql://ca:***@db:3306/stepca");
        let config =
            config_with_db(r#"{"type":"postgresql","dataSource":"host=db user=ca dbname=ca"}"#);
        let location = Location::of(&config, Path::new("/x/ca.json")).unwrap();
        assert_eq!(location.display_name(), "postgresql://ca@db/ca");
    }
}
