//! mayfly's configuration, below the authority: `ca.json` and `defaults.json` with step-ca's
//! field names, the provisioners' claims, the database's data source, `ca init`'s PKI, and
//! files written atomically with the modes their contents call for.
//!
//! The CLI and the store read configuration from here without depending on the authority, and
//! the authority turns what is read here into its runtime types.
#![forbid(unsafe_code)]

pub mod acme;
pub mod claims;
pub mod config;
pub mod datasource;
pub mod duration;
pub mod error;
pub mod files;
pub mod init;
pub mod policy;
pub mod urls;

pub use error::{Error, Result};
