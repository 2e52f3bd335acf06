//! The one error type of `mayfly-authority`.

use crate::policy::names::{PolicyLevel, PolicyName};
use crate::store::StoreError;

/// Coarse category of an [`Error`]; the server turns it into an HTTP status in one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is malformed (400).
    BadRequest,
    /// The credential (token) is missing, invalid, expired or used (401).
    Unauthorized,
    /// The credential is fine but does not allow this request (403).
    Forbidden,
    /// The thing asked for does not exist (404).
    NotFound,
    /// Asked for something this configuration does not offer (501).
    NotImplemented,
    /// Our fault: configuration, storage, crypto (500). Not for clients' eyes.
    Internal,
    /// A service the decision needs cannot be reached now, such as an OpenID provider (503).
    Unavailable,
}

/// Everything that can go wrong in the authority.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{0}")]
    Config(String),
    /// Not a `#[source]`: the message already holds the inner one, and a chain printer
    /// (`{:#}`) would repeat it.
    #[error("{path}: {error}")]
    ConfigFile { path: String, error: Box<Error> },
    #[error("malformed token: {0}")]
    TokenMalformed(String),
    #[error("token signature is invalid")]
    TokenSignatureInvalid,
    #[error("token is signed with key {kid:?}, which is no provisioner's key")]
    TokenUnknownKey { kid: String },
    #[error("token issuer {iss:?} does not match provisioner {provisioner:?}")]
    TokenIssuerMismatch { iss: String, provisioner: String },
    #[error("token audience {found:?} is not this CA: expected one of {expected:?}")]
    TokenAudienceMismatch {
        found: Vec<String>,
        expected: Vec<String>,
    },
    #[error("token expired at {exp} (now {now})")]
    TokenExpired { exp: String, now: String },
    #[error("token is not valid before {nbf} (now {now})")]
    TokenNotYetValid { nbf: String, now: String },
    #[error("token is valid for {seconds} s, more than the allowed 1 hour")]
    TokenLifetimeTooLong { seconds: i64 },
    #[error("token was already used")]
    TokenAlreadyUsed,
    #[error("token root fingerprint {found} does not match this CA's root {expected}")]
    TokenRootMismatch { found: String, expected: String },
    #[error("token is for provisioner {id:?}, which this CA does not have")]
    TokenUnknownProvisioner { id: String },
    #[error("token certificate is not trusted by provisioner {provisioner:?}: {detail}")]
    TokenCertificateUntrusted { provisioner: String, detail: String },
    #[error("token is signed by none of the public keys of provisioner {provisioner:?}")]
    TokenKeyNotTrusted { provisioner: String },
    #[error(
        "requested {field} {requested} is outside the validity of the credential that asks for it ({limit})"
    )]
    OutsideCredentialValidity {
        field: &'static str,
        requested: String,
        limit: String,
    },
    #[error(
        "the certificate request is not the one the token is bound to (its \"cnf\" names the request with SHA-256 {fingerprint})"
    )]
    CsrNotConfirmed { fingerprint: String },
    #[error("certificate request: {0}")]
    Csr(#[source] mayfly_pki::Error),
    #[error(
        "subject alternative name {san:?} is not authorized by the token (authorized: {authorized:?})"
    )]
    SanNotAuthorized {
        san: String,
        authorized: Vec<String>,
    },
    #[error("the token authorizes {count} subject alternative names, more than the limit of {max}")]
    TooManySans { count: usize, max: usize },
    #[error("{field} {value:?} is not an RFC 3339 time or a duration like \"24h\"")]
    TimeMalformed { field: &'static str, value: String },
    #[error("requested validity of {requested} is outside the allowed range {min} to {max}")]
    DurationOutOfRange {
        requested: String,
        min: String,
        max: String,
    },
    #[error(
        "notBefore {not_before} is in the past (now {now}): certificates cannot start before they are issued"
    )]
    NotBeforeInPast { not_before: String, now: String },
    #[error("notAfter ({not_after}) must be after notBefore ({not_before})")]
    ValidityInverted {
        not_before: String,
        not_after: String,
    },
    #[error("certificate {serial} was not issued by this CA")]
    RenewNotIssuedHere { serial: String },
    #[error("certificate {serial} was revoked and cannot be renewed")]
    RenewRevoked { serial: String },
    #[error(
        "certificate {serial} expired at {not_after} and its provisioner does not allow renewal after expiry"
    )]
    RenewExpired { serial: String, not_after: String },
    /// An SSH-POP token's certificate outside its validity: SSH-POP proves possession of a
    /// certificate valid now, whatever the endpoint (renew, rekey or revoke).
    #[error("SSH certificate {serial} is not valid now: {why}")]
    SshPopCertificateNotValid { serial: String, why: String },
    #[error("provisioner {provisioner:?} does not allow renewal (disableRenewal)")]
    RenewalDisabled { provisioner: String },
    #[error("no certificate with serial number {serial} was issued by this CA")]
    CertificateNotFound { serial: String },
    #[error("certificate {serial} is already revoked")]
    AlreadyRevoked { serial: String },
    #[error(
        "reason code {0} is not an RFC 5280 CRLReason: expected 0-6 or 8-10 (or a name such as keyCompromise)"
    )]
    ReasonCodeInvalid(i64),
    #[error("reason code {code} ({name}) is not accepted: {why}")]
    ReasonCodeNotAllowed {
        code: u8,
        name: &'static str,
        why: &'static str,
    },
    #[error("{authorized} may be revoked with this credential, not {requested}")]
    RevokeSerialMismatch {
        authorized: String,
        requested: String,
    },
    #[error("active revocation (CRL/OCSP) is not configured on this CA: send \"passive\": true")]
    ActiveRevocationUnavailable,
    #[error("delta CRLs are not enabled on this CA (crl.delta.enabled)")]
    DeltaCrlDisabled,
    #[error("CRLs are not enabled on this CA (crl.enabled)")]
    CrlDisabled,
    #[error("this CA has no CRL shard {0:?}: its shards are numbered from 0 below crl.shards")]
    CrlShardUnknown(String),
    #[error("this CA publishes no root CRL (crl.rootCRL)")]
    RootCrlUnconfigured,
    #[error("the root CRL {path}: {detail}")]
    RootCrlInvalid { path: String, detail: String },
    #[error("serial number {0:?} is not a decimal number")]
    SerialMalformed(String),
    #[error("this CA has no SSH keys: initialise it with `mayfly ca init --ssh` (ca.json \"ssh\")")]
    SshNotEnabled,
    #[error("provisioner {0:?} does not sign SSH certificates (claims.enableSSHCA is not true)")]
    SshDisabledForProvisioner(String),
    #[error("the token carries no SSH claims (\"step\": {{\"ssh\": ...}}): create it for SSH")]
    SshTokenWithoutClaims,
    #[error("publicKey: {0}")]
    SshPublicKey(#[source] mayfly_pki::Error),
    #[error("{0}")]
    SshRequestInvalid(String),
    #[error("principal {principal:?} is not authorized by the token (authorized: {authorized:?})")]
    SshPrincipalNotAuthorized {
        principal: String,
        authorized: Vec<String>,
    },
    #[error(
        "principal {0:?} is invalid: it must be 1-255 characters without spaces, commas or control characters"
    )]
    SshPrincipalInvalid(String),
    #[error(
        "a certificate without principals would be valid for every user or host: name at least one principal"
    )]
    SshNoPrincipals,
    #[error("{field} {requested:?} does not match the token's {token:?}")]
    SshTokenMismatch {
        field: &'static str,
        token: String,
        requested: String,
    },
    #[error("critical option {name:?} is not allowed by the token")]
    SshCriticalOptionNotAllowed { name: String },
    #[error("only host certificates can be renewed or rekeyed; get a new user certificate instead")]
    SshRenewHostOnly,
    #[error("{name} is denied by {level}'s deny rule {rule:?}")]
    NameDenied {
        name: PolicyName,
        level: PolicyLevel,
        rule: String,
    },
    #[error("{name} is not allowed by {level}'s allow list: {reason}")]
    NameNotAllowed {
        name: PolicyName,
        level: PolicyLevel,
        reason: String,
    },
    #[error("{name} is a wildcard, which {level} does not allow (\"allowWildcardNames\")")]
    WildcardNameNotAllowed {
        name: PolicyName,
        level: PolicyLevel,
    },
    #[error("{name} cannot be checked against {level}'s {kind} rules: {why}")]
    NameUncheckable {
        name: PolicyName,
        level: PolicyLevel,
        kind: &'static str,
        why: String,
    },
    #[error("provisioner {0:?} not found")]
    ProvisionerNotFound(String),
    #[error(
        "the admin API needs a token of an admin provisioner (Authorization: Bearer) or a client \
         certificate issued through one"
    )]
    AdminCredentialsMissing,
    #[error("the token's e-mail address {email:?} is not verified by its OpenID provider")]
    OidcEmailUnverified { email: String },
    #[error("the token's e-mail address {email:?} is not in the provisioner's domains {domains:?}")]
    OidcEmailDomain { email: String, domains: Vec<String> },
    #[error("the token's groups {found:?} include none of the provisioner's {allowed:?}")]
    OidcGroups {
        found: Vec<String>,
        allowed: Vec<String>,
    },
    #[error("the token was issued to {azp:?}, not to this provisioner's client {client_id:?}")]
    OidcAuthorizedParty { azp: String, client_id: String },
    #[error(
        "an OIDC token authorizes /sign and /ssh/sign only, not /{endpoint} (OIDC provisioner {provisioner:?})"
    )]
    OidcEndpoint {
        endpoint: &'static str,
        provisioner: String,
    },
    /// The cause is logged where it happens; clients learn only which provisioner.
    #[error("the OpenID provider of provisioner {provisioner:?} cannot be reached now")]
    OidcProviderUnavailable { provisioner: String },
    #[error("{0} may not use the admin API: only provisioners marked \"admin\": true in ca.json")]
    NotAdmin(String),
    #[error("{0}")]
    Pki(#[source] mayfly_pki::Error),
    #[error("storage: {0}")]
    Store(#[source] StoreError),
    #[error("{0}")]
    Io(String),
}

impl From<mayfly_config::Error> for Error {
    fn from(error: mayfly_config::Error) -> Self {
        match error {
            mayfly_config::Error::Pki(e) => Error::Pki(e),
            mayfly_config::Error::Io(message) => Error::Io(message),
            other => Error::Config(other.to_string()),
        }
    }
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::TokenMalformed(_)
            | Error::TokenSignatureInvalid
            | Error::TokenUnknownKey { .. }
            | Error::TokenIssuerMismatch { .. }
            | Error::TokenAudienceMismatch { .. }
            | Error::TokenExpired { .. }
            | Error::TokenNotYetValid { .. }
            | Error::TokenLifetimeTooLong { .. }
            | Error::TokenAlreadyUsed
            | Error::TokenRootMismatch { .. }
            | Error::TokenUnknownProvisioner { .. }
            | Error::TokenCertificateUntrusted { .. }
            | Error::TokenKeyNotTrusted { .. }
            | Error::RenewNotIssuedHere { .. }
            | Error::RenewRevoked { .. }
            | Error::RenewExpired { .. }
            | Error::SshPopCertificateNotValid { .. }
            | Error::RenewalDisabled { .. }
            | Error::AdminCredentialsMissing
            | Error::OidcEmailUnverified { .. }
            | Error::OidcEmailDomain { .. }
            | Error::OidcGroups { .. }
            | Error::OidcAuthorizedParty { .. } => ErrorKind::Unauthorized,
            Error::OidcEndpoint { .. } => ErrorKind::Forbidden,
            Error::OidcProviderUnavailable { .. } => ErrorKind::Unavailable,
            Error::NotAdmin(_) => ErrorKind::Forbidden,
            Error::SanNotAuthorized { .. }
            | Error::RevokeSerialMismatch { .. }
            | Error::SshDisabledForProvisioner(_)
            | Error::SshPrincipalNotAuthorized { .. }
            | Error::SshTokenMismatch { .. }
            | Error::SshCriticalOptionNotAllowed { .. }
            | Error::SshRenewHostOnly
            | Error::OutsideCredentialValidity { .. }
            | Error::CsrNotConfirmed { .. } => ErrorKind::Forbidden,
            Error::NameDenied { .. }
            | Error::NameNotAllowed { .. }
            | Error::WildcardNameNotAllowed { .. }
            | Error::NameUncheckable { .. } => ErrorKind::Forbidden,
            Error::SshTokenWithoutClaims => ErrorKind::Unauthorized,
            Error::SshNotEnabled => ErrorKind::NotImplemented,
            Error::SshPublicKey(_)
            | Error::SshRequestInvalid(_)
            | Error::SshPrincipalInvalid(_)
            | Error::SshNoPrincipals => ErrorKind::BadRequest,
            Error::CertificateNotFound { .. } => ErrorKind::NotFound,
            Error::AlreadyRevoked { .. }
            | Error::ReasonCodeInvalid(_)
            | Error::ReasonCodeNotAllowed { .. }
            | Error::SerialMalformed(_) => ErrorKind::BadRequest,
            Error::ActiveRevocationUnavailable => ErrorKind::NotImplemented,
            Error::DeltaCrlDisabled
            | Error::CrlDisabled
            | Error::CrlShardUnknown(_)
            | Error::RootCrlUnconfigured => ErrorKind::NotFound,
            Error::Csr(_)
            | Error::TooManySans { .. }
            | Error::TimeMalformed { .. }
            | Error::DurationOutOfRange { .. }
            | Error::NotBeforeInPast { .. }
            | Error::ValidityInverted { .. } => ErrorKind::BadRequest,
            Error::ProvisionerNotFound(_) => ErrorKind::NotFound,
            Error::Pki(e) if e.kind() == mayfly_pki::ErrorKind::BadInput => ErrorKind::BadRequest,
            Error::Config(_)
            | Error::RootCrlInvalid { .. }
            | Error::ConfigFile { .. }
            | Error::Pki(_)
            | Error::Store(_)
            | Error::Io(_) => ErrorKind::Internal,
        }
    }

    /// Why a token was refused, as a metric label, when this error is a token's refusal.
    pub fn token_rejection(&self) -> Option<&'static str> {
        Some(match self {
            Error::TokenMalformed(_) => "malformed",
            Error::TokenSignatureInvalid => "bad_signature",
            Error::TokenUnknownKey { .. } => "unknown_key",
            Error::TokenIssuerMismatch { .. } => "wrong_issuer",
            Error::TokenAudienceMismatch { .. } => "wrong_audience",
            Error::TokenExpired { .. } => "expired",
            Error::TokenNotYetValid { .. } => "not_yet_valid",
            Error::TokenLifetimeTooLong { .. } => "lifetime_too_long",
            Error::TokenAlreadyUsed => "already_used",
            Error::TokenRootMismatch { .. } => "wrong_root",
            // The chain reaches none of the provisioner's roots (or breaks on the way).
            Error::TokenCertificateUntrusted { .. } => "wrong_root",
            Error::TokenUnknownProvisioner { .. } | Error::TokenKeyNotTrusted { .. } => {
                "unknown_key"
            }
            Error::OidcEmailUnverified { .. } => "email_unverified",
            Error::OidcEmailDomain { .. } => "email_domain",
            Error::OidcGroups { .. } => "groups",
            Error::OidcAuthorizedParty { .. } => "wrong_authorized_party",
            _ => return None,
        })
    }

    /// Whether the name policy refused the request (ACME calls this `rejectedIdentifier`).
    pub fn refused_by_name_policy(&self) -> bool {
        matches!(
            self,
            Error::NameDenied { .. }
                | Error::NameNotAllowed { .. }
                | Error::WildcardNameNotAllowed { .. }
                | Error::NameUncheckable { .. }
        )
    }

    /// Wraps a configuration error with the file it came from.
    pub fn in_file(self, path: &std::path::Path) -> Error {
        Error::ConfigFile {
            path: path.display().to_string(),
            error: Box::new(self),
        }
    }
}

impl From<mayfly_pki::Error> for Error {
    fn from(e: mayfly_pki::Error) -> Self {
        Error::Pki(e)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error and its causes on one line, `error: cause: cause`, each said once.
///
/// Messages here (and in the crates below) include their cause's text so that `to_string()`
/// alone is complete (API bodies, logs), yet they also expose the cause as `source()`, so
/// anyhow's `{:#}` would print it twice. A cause whose text the line already holds is skipped.
pub fn one_line(error: &(dyn std::error::Error + 'static)) -> String {
    let mut line = error.to_string();
    let mut cause = error.source();
    while let Some(current) = cause {
        let text = current.to_string();
        if !text.is_empty() && !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        cause = current.source();
    }
    line
}

#[cfg(test)]
mod one_line_tests {
    use super::*;

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let inner = Error::Config("no provisioners".into());
        let outer = inner.in_file(std::path::Path::new("ca.json"));
        assert_eq!(outer.to_string(), "ca.json: no provisioners");
        assert_eq!(one_line(&outer), "ca.json: no provisioners");
    }

    #[test]
    fn a_cause_not_in_the_message_is_appended() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("cannot read ca.json")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let error = Outer(std::io::Error::other("permission denied"));
        assert_eq!(one_line(&error), "cannot read ca.json: permission denied");
    }
}
