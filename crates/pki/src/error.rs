//! The one error type of `mayfly-pki`.
//!
//! Variants name the fault and carry what was seen; `kind()` gives callers a coarse, stable
//! category so that the server can pick an HTTP status without matching every variant.

/// Coarse category of an [`Error`], for callers that map errors to protocol codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The input was malformed or unsupported.
    BadInput,
    /// A signature or MAC did not verify, or a password was wrong.
    BadCredential,
    /// A cryptographic operation failed for a reason that is not the caller's input.
    Internal,
}

/// Everything that can go wrong in `mayfly-pki`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("no PEM block found: expected -----BEGIN {expected}-----")]
    PemMissing { expected: &'static str },
    #[error("malformed PEM: {0}")]
    PemMalformed(String),
    #[error("unexpected PEM block {found:?}: expected {expected}")]
    PemUnexpectedLabel {
        found: String,
        expected: &'static str,
    },
    #[error("malformed DER in {what}: {detail}")]
    DerMalformed { what: &'static str, detail: String },
    #[error("unsupported key: {0}")]
    KeyUnsupported(String),
    #[error("invalid private key: {0}")]
    KeyRejected(String),
    #[error("the private key is encrypted: a password is required")]
    PasswordRequired,
    #[error("decryption failed: the password is incorrect or the data is corrupt")]
    PasswordIncorrect,
    #[error("unsupported encryption: {0}")]
    EncryptionUnsupported(String),
    #[error("PBES2 iteration count {count} exceeds the limit of {limit}")]
    IterationsTooHigh { count: u64, limit: u64 },
    #[error("malformed certificate request: {0}")]
    CsrMalformed(String),
    #[error("certificate request signature is invalid")]
    CsrSignatureInvalid,
    /// A well-formed request that breaks one of the CA's rules (the message names the rule).
    #[error("certificate request refused: {0}")]
    CsrRefused(String),
    #[error("malformed certificate: {0}")]
    CertificateMalformed(String),
    #[error("malformed JOSE object: {0}")]
    JoseMalformed(String),
    #[error("unsupported JOSE algorithm {0:?}")]
    JoseAlgorithmUnsupported(String),
    #[error("JWS signature is invalid")]
    JwsSignatureInvalid,
    #[error("certificate generation failed: {0}")]
    CertificateGeneration(String),
    #[error("malformed SSH data: {0}")]
    SshMalformed(String),
    #[error("SSH signature is invalid")]
    SshSignatureInvalid,
    #[error("certificate chain does not verify: {0}")]
    ChainInvalid(String),
    #[error("CRL rejected: {0}")]
    CrlInvalid(String),
    #[error("OCSP response rejected: {0}")]
    OcspInvalid(String),
    #[error("cryptographic operation failed: {0}")]
    Crypto(&'static str),
}

impl Error {
    /// The coarse category of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::PasswordIncorrect
            | Error::CsrSignatureInvalid
            | Error::JwsSignatureInvalid
            | Error::SshSignatureInvalid => ErrorKind::BadCredential,
            Error::CertificateGeneration(_) | Error::Crypto(_) => ErrorKind::Internal,
            _ => ErrorKind::BadInput,
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
