//! The decisions of the mayfly CA: configuration, provisioners, one-time tokens, issuance policy,
//! and the storage traits they need.
//!
//! No HTTP and no printing: the server maps [`Error::kind`] to statuses, the CLI prints. Time
//! comes from an injected [`clock::Clock`] so tests can move it.
#![forbid(unsafe_code)]

pub mod audit;
pub mod authority;
pub mod clock;
pub mod credential;
pub mod crl;
pub mod error;
pub mod issue;
pub mod material;
pub mod ocsp;
pub mod policy;
pub mod provisioner;
pub mod publication;
pub mod retention;
pub mod revocation;
pub mod ssh;
pub mod static_site;
pub mod store;
pub mod telemetry;
pub mod token;
pub mod x509;

pub use authority::{Authority, AuthorityParts};
pub use credential::Presented;
pub use error::{Error, ErrorKind, Result};
pub use issue::Issued;
pub use material::LoadedMaterial;
