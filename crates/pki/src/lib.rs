//! X.509 and JOSE building blocks of mayfly.
//!
//! Pure functions over bytes: key generation and key files, CSR parsing with signature checks,
//! certificate building, fingerprints, JWS and the PBES2 JWE that protects provisioner keys.
//! No I/O, no async, no policy: `mayfly-authority` decides what to issue; this crate only knows
//! how to encode it correctly.
#![forbid(unsafe_code)]

pub mod cert;
pub mod crl;
pub mod csr;
pub(crate) mod der;
pub mod error;
pub mod issuer;
pub mod jose;
pub mod key;
pub mod keyfile;
pub mod ocsp;
pub mod pubkey;
pub mod random;
pub mod san;
pub mod serial;
pub mod signer;
pub mod ssh;
pub mod verify;

pub use cert::{LeafSigner, LeafTemplate, ProvisionerExtension};
pub use csr::Csr;
pub use error::{Error, ErrorKind, Result};
pub use key::{KeyAlgorithm, PrivateKey};
pub use san::San;
pub use serial::SerialNumber;
pub use signer::Signer;
