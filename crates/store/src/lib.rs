//! Storage backends of mayfly: implementations of the authority's [`CertStore`] trait.
//!
//! The authority owns the trait and decides what must be recorded; this crate owns how. SQLite is
//! the embedded default (one file beside the CA, no server to run). The schema is kept to a
//! portable SQL subset and the expected behaviour is written down once, in [`conformance`], so
//! that PostgreSQL and MySQL backends can later be added and held to the same rules.
//!
//! [`CertStore`]: mayfly_authority::store::CertStore

use std::path::PathBuf;

mod acme;
pub mod acme_conformance;
mod codec;
pub mod conformance;
pub mod conformance_ssh;
mod sqlite;
mod sqlite_ssh;

pub use sqlite::{ConnectionSettings, SqliteStore};

/// Why a store could not be opened.
///
/// Failures of individual calls once open are [`mayfly_authority::store::StoreError`]s; these are
/// the ones an operator has to act on at start-up, so each names the database.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database could not be opened or configured.
    #[error("cannot open database {}: {source}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: sqlx::Error,
    },
    /// A schema migration failed; the failed one was rolled back, earlier ones stay applied.
    #[error("cannot migrate database {} to schema version {version}: {source}", path.display())]
    Migrate {
        path: PathBuf,
        version: i64,
        #[source]
        source: sqlx::Error,
    },
    /// The database was migrated by a newer mayfly; writing to it with this one could corrupt it.
    #[error(
        "database {} has schema version {found}, but this mayfly knows only up to {known}; \
         upgrade mayfly",
        path.display()
    )]
    SchemaTooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    /// ca.json names a database type this build cannot use.
    #[error("db.type {0:?} is not supported: expected \"sqlite\"")]
    UnsupportedBackend(String),
    /// The database's location could not be worked out or prepared.
    #[error("{0}")]
    Location(String),
}

/// Opens the store ca.json's `db` names. Without `db` (step-ca then keeps nothing), mayfly still
/// records what it issues, in `$MAYFLY_PATH/db/mayfly.db`, never beside the config, whose
/// directory may be read-only. Used by the server and by the client's offline commands, so both
/// reach the same database.
pub async fn open_configured(
    config: &mayfly_authority::config::CaConfig,
) -> Result<std::sync::Arc<dyn mayfly_authority::store::CertStore>, Error> {
    open_configured_stores(config)
        .await
        .map(|stores| stores.certificates)
}

/// The configured database behind every store trait: the authority's (X.509, SSH) and the ACME
/// protocol's.
pub struct Stores {
    pub certificates: std::sync::Arc<dyn mayfly_authority::store::CertStore>,
    pub ssh: std::sync::Arc<dyn mayfly_authority::ssh::store::SshStore>,
    pub acme: std::sync::Arc<dyn mayfly_acme::store::AcmeStore>,
}

/// Like [`open_configured`], for every record kind at once (one database).
pub async fn open_configured_stores(
    config: &mayfly_authority::config::CaConfig,
) -> Result<Stores, Error> {
    let (kind, source) = match &config.db {
        Some(db) => (db.kind.to_ascii_lowercase(), PathBuf::from(&db.data_source)),
        None => {
            let base = mayfly_authority::init::mayfly_path()
                .map_err(|e| Error::Location(e.to_string()))?;
            ("sqlite".to_string(), base.join("db/mayfly.db"))
        }
    };
    match kind.as_str() {
        "sqlite" | "sqlite3" => {
            if let Some(parent) = source.parent().filter(|p| !p.as_os_str().is_empty()) {
                mayfly_authority::files::create_dir_private(parent)
                    .map_err(|e| Error::Location(e.to_string()))?;
            }
            let store = std::sync::Arc::new(SqliteStore::open(&source).await?);
            Ok(Stores {
                certificates: store.clone(),
                ssh: store.clone(),
                acme: store,
            })
        }
        other => Err(Error::UnsupportedBackend(other.to_string())),
    }
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
