//! The storage SSH issuance needs: issued certificates by serial, their revocation, and the
//! lists a KRL and `/ssh/hosts` are made from. Owned here; `mayfly-store` implements it.

use mayfly_pki::ssh::CertType;
use time::OffsetDateTime;

use crate::audit::AuditContext;
use crate::store::{BoxFuture, CertificateStatus, Revocation, StoreError, UsedToken};

/// An SSH certificate the authority signed, as it is recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedSshCertificate {
    pub serial: u64,
    pub cert_type: CertType,
    pub key_id: String,
    pub principals: Vec<String>,
    pub valid_after: OffsetDateTime,
    pub valid_before: OffsetDateTime,
    /// The certificate's wire blob.
    pub blob: Vec<u8>,
    /// Name of the provisioner that authorised it.
    pub provisioner: String,
}

/// A stored SSH certificate with its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSshCertificate {
    pub certificate: IssuedSshCertificate,
    pub status: CertificateStatus,
    pub revocation: Option<Revocation>,
}

/// A revoked SSH certificate, as a KRL lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RevokedSsh {
    pub serial: u64,
    pub cert_type: CertType,
}

/// Durable record of SSH certificates.
pub trait SshStore: Send + Sync {
    /// Records `certificate` and, when given, burns `token`, atomically (as
    /// [`crate::store::CertStore::record_issuance`]).
    fn record_ssh_issuance<'a>(
        &'a self,
        certificate: &'a IssuedSshCertificate,
        token: Option<&'a UsedToken>,
        audit: &'a AuditContext,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    fn ssh_certificate(
        &self,
        serial: u64,
    ) -> BoxFuture<'_, Result<Option<StoredSshCertificate>, StoreError>>;

    /// Marks a valid SSH certificate revoked (the revocation's serial is decimal) and burns
    /// `token`, atomically; refusals change nothing.
    fn revoke_ssh<'a>(
        &'a self,
        revocation: &'a Revocation,
        token: Option<&'a UsedToken>,
        audit: &'a AuditContext,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Every revoked SSH certificate that has not expired by `now`.
    fn revoked_ssh(
        &self,
        now: OffsetDateTime,
    ) -> BoxFuture<'_, Result<Vec<RevokedSsh>, StoreError>>;

    /// Host certificates valid at `now` and not revoked.
    fn ssh_hosts(
        &self,
        now: OffsetDateTime,
    ) -> BoxFuture<'_, Result<Vec<IssuedSshCertificate>, StoreError>>;
}
