//! SSH certificates as OpenSSH defines them (PROTOCOL.certkeys, PROTOCOL.krl): public keys,
//! certificates signed by a user or host CA key, and key revocation lists.
//!
//! Written on the wire encoding directly with aws-lc for the signatures, so the SSH CA shares
//! the X.509 side's one crypto backend; `ssh-keygen` and `sshd` check the result in the tests.

pub mod agent;
pub mod cert;
pub mod key;
pub mod keyfile;
pub mod krl;
pub(crate) mod wire;

pub use cert::{CertType, SshCertTemplate, SshCertificate, random_serial, sign_certificate};
pub use key::{SshKeyAlgorithm, SshPublicKey};
pub use krl::build_krl;
