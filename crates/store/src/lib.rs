//! Storage backends of mayfly: implementations of the authority's [`CertStore`] trait.
//!
//! The authority owns the trait and decides what must be recorded; this crate owns how. SQLite is
//! the embedded default (one file beside the CA, no server to run). The schema is kept to a
//! portable SQL subset and the expected behaviour is written down once, in [`conformance`], so
//! that PostgreSQL and MySQL backends can later be added and held to the same rules.
//!
//! [`CertStore`]: mayfly_authority::store::CertStore

use std::path::PathBuf;
use std::sync::Arc;

use mayfly_authority::store::CertStore;

mod acme;
pub mod acme_conformance;
mod codec;
pub mod conformance;
pub mod conformance_ssh;
mod dialect;
pub mod metered;
mod networked;
mod shared;
mod sqlite;
mod ssh;
pub mod testing;

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
    #[error("db.type {0:?} is not supported: expected \"sqlite\", \"postgresql\" or \"mysql\"")]
    UnsupportedBackend(String),
    /// The database's location could not be worked out or prepared.
    #[error("{0}")]
    Location(String),
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
    /// What ca.json's `db` names. Without `db` (step-ca then keeps nothing), mayfly still records
    /// what it issues, in `$MAYFLY_PATH/db/mayfly.db`, never beside the config, whose directory
    /// may be read-only.
    pub fn of(config: &mayfly_authority::config::CaConfig) -> Result<Location, Error> {
        let Some(db) = &config.db else {
            let base = mayfly_authority::init::mayfly_path()
                .map_err(|e| Error::Location(e.to_string()))?;
            return Ok(Location::Sqlite(base.join("db/mayfly.db")));
        };
        let dialect = match db.kind.to_ascii_lowercase().as_str() {
            "sqlite" | "sqlite3" => return Ok(Location::Sqlite(PathBuf::from(&db.data_source))),
            // step-ca's names, and the obvious aliases.
            "postgresql" | "postgres" => Dialect::Postgres,
            "mysql" | "mariadb" => Dialect::MySql,
            other => return Err(Error::UnsupportedBackend(other.to_string())),
        };
        let url = db.data_source.trim().to_owned();
        if networked::dialect_of(&url) != Some(dialect) {
            let scheme = if dialect == Dialect::Postgres {
                "postgresql://"
            } else {
                "mysql://"
            };
            return Err(Error::Location(format!(
                "db.dataSource {:?} is not a {} URL: expected {scheme}user[:password]@host[:port]/database",
                redact(&url),
                dialect.name()
            )));
        }
        Ok(Location::Server { dialect, url })
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
                    mayfly_authority::files::create_dir_private(parent)
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
];

/// The versions of this build's migrations, in order. Numbers are reserved per feature, so
/// there may be gaps (a branch's migration lands later).
pub fn migration_versions() -> Vec<i64> {
    MIGRATIONS.iter().map(|&(version, _)| version).collect()
}

/// The schema version this build migrates databases to: the last migration's.
pub fn schema_version() -> i64 {
    MIGRATIONS.last().map_or(0, |&(version, _)| version)
}

/// Longest decimal serial number stored; the schema's `VARCHAR(64)`.
pub const MAX_SERIAL_LEN: usize = 64;
/// Longest token `jti` stored; the schema's `VARCHAR(255)`.
pub const MAX_JTI_LEN: usize = 255;
/// Longest provisioner name stored; the schema's `VARCHAR(255)`.
pub const MAX_PROVISIONER_LEN: usize = 255;

/// What `/health` asks: answers only when the server is up, the database exists and its schema
/// is in place (a database dropped under a running instance fails it on every engine).
pub(crate) const PING: &str = "SELECT COUNT(*) FROM schema_migrations";
