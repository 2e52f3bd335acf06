//! The storage the authority needs, as small traits it owns.
//!
//! Backends live in `mayfly-store`; this crate only says what it must be able to record. The
//! issuance record and the token's `jti` are written in one call so that a backend can make them
//! one transaction: either the token is burnt and the certificate stored, or neither.

use std::future::Future;
use std::pin::Pin;

use time::OffsetDateTime;

use crate::audit::{AuditContext, AuditEntry, AuditQuery};

/// A boxed future, so the traits stay usable as trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The one-time token's `jti` was recorded before: the token was already used.
    #[error("token {jti:?} was already used")]
    TokenAlreadyUsed { jti: String },
    /// A certificate with this serial number is already stored.
    #[error("serial number {serial} is already stored")]
    SerialTaken { serial: String },
    /// No certificate with this serial number was ever recorded.
    #[error("no certificate with serial number {serial} was issued by this CA")]
    CertificateNotFound { serial: String },
    /// The certificate is revoked already; a revocation is final and happens once.
    #[error("certificate {serial} is already revoked")]
    AlreadyRevoked { serial: String },
    /// The backend failed; the text is for logs, not for clients.
    #[error("storage backend failed: {0}")]
    Backend(String),
}

/// Status of a stored certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertificateStatus {
    Valid,
    Revoked,
}

impl CertificateStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CertificateStatus::Valid => "valid",
            CertificateStatus::Revoked => "revoked",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "valid" => Some(CertificateStatus::Valid),
            "revoked" => Some(CertificateStatus::Revoked),
            _ => None,
        }
    }
}

/// A certificate the authority signed, as it is recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCertificate {
    /// Decimal serial number, as the HTTP API writes it.
    pub serial: String,
    pub der: Vec<u8>,
    /// The subject common name (empty when there is none).
    pub subject: String,
    /// Subject alternative names, each as written in the request (`dns`, IP, e-mail or URI).
    pub sans: Vec<String>,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    /// Name of the provisioner that authorised it.
    pub provisioner: String,
    /// The CRL shard whose URL the certificate carries; `None` when it carries the complete
    /// CRL's URL (or none). Chosen at issuance and kept for the certificate's life.
    pub crl_shard: Option<CrlShard>,
}

/// One shard of a sharded CRL: an index below `crl.shards`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CrlShard(u16);

impl CrlShard {
    /// Most shards a CA may have.
    pub const MAX_COUNT: u16 = 4096;

    pub fn new(index: u16) -> Option<CrlShard> {
        (index < Self::MAX_COUNT).then_some(CrlShard(index))
    }

    pub fn index(self) -> u16 {
        self.0
    }
}

impl std::fmt::Display for CrlShard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A stored certificate with its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCertificate {
    pub certificate: IssuedCertificate,
    pub status: CertificateStatus,
    /// Present when `status` is revoked.
    pub revocation: Option<Revocation>,
}

/// A revocation, as it is recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    pub serial: String,
    /// RFC 5280 5.3.1 CRLReason code.
    pub reason_code: u8,
    /// Free text from the requester.
    pub reason: String,
    pub revoked_at: OffsetDateTime,
    /// Who asked: `token:<provisioner>`, `mtls:<subject>`, `offline`.
    pub revoked_by: String,
}

/// A one-time token's identity, recorded so a second use is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsedToken {
    pub jti: String,
    pub provisioner: String,
    /// After this instant the token is expired anyway, so its record may be pruned.
    pub expires_at: OffsetDateTime,
}

/// A revoked certificate as a CRL lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedEntry {
    /// Decimal serial number.
    pub serial: String,
    pub revoked_at: OffsetDateTime,
    /// RFC 5280 5.3.1 CRLReason code.
    pub reason_code: u8,
    pub not_after: OffsetDateTime,
    /// The shard the certificate belongs to, when it carries a shard's URL.
    pub crl_shard: Option<CrlShard>,
}

/// Where a revocation stands in the order revocations were recorded, by any instance: the
/// store numbers them one after another, so a reader that has seen a number has seen every
/// revocation before it. Lets a CRL publisher read only what is new since its last CRL, which
/// the revocation time cannot tell (an imported revocation is dated when it happened).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RevocationSeq(pub u64);

/// The revocations recorded after a [`RevocationSeq`], as [`CertStore::revocations_after`]
/// reads them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RevocationNews {
    /// In the order they were recorded.
    pub entries: Vec<RevokedEntry>,
    /// The number of the last one, or the number asked after when there is none.
    pub last: RevocationSeq,
}

/// Where a page of revoked certificates ends, in the order they are paged: revocation time,
/// then serial (as the store compares its serial column).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedKey {
    pub revoked_at: OffsetDateTime,
    pub serial: String,
}

/// One page of [`CertStore::revoked_page`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RevokedPage {
    pub entries: Vec<RevokedEntry>,
    /// Where the next page starts; `None` after the last page.
    pub next: Option<RevokedKey>,
}

/// Which revoked certificates to list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RevokedQuery {
    /// Only those revoked at or after this instant (a delta CRL, or a poll for news).
    pub revoked_since: Option<OffsetDateTime>,
    /// Only those still valid at this instant (expired ones leave the CRL).
    pub unexpired_at: Option<OffsetDateTime>,
    /// Only those of this shard (a shard's CRL); all when `None`.
    pub shard: Option<CrlShard>,
}

/// Durable record of issued certificates and used token ids.
pub trait CertStore: Send + Sync {
    /// Records `certificate` and, when given, burns `token`, atomically. Returns only once both
    /// are durable. Fails with [`StoreError::TokenAlreadyUsed`] (and stores nothing) when the
    /// token's `jti` was recorded before, by this or any other instance sharing the database.
    ///
    /// `audit` becomes the certificate's audit entry, in the same transaction.
    fn record_issuance<'a>(
        &'a self,
        certificate: &'a IssuedCertificate,
        token: Option<&'a UsedToken>,
        audit: &'a AuditContext,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Looks a certificate up by its decimal serial number.
    fn certificate<'a>(
        &'a self,
        serial: &'a str,
    ) -> BoxFuture<'a, Result<Option<StoredCertificate>, StoreError>>;

    /// Marks a valid certificate revoked and, when given, burns `token`, atomically. Fails with
    /// [`StoreError::CertificateNotFound`], [`StoreError::AlreadyRevoked`] or
    /// [`StoreError::TokenAlreadyUsed`], and then changes nothing. `audit` becomes the audit
    /// entry of the revocation, in the same transaction.
    fn revoke<'a>(
        &'a self,
        revocation: &'a Revocation,
        token: Option<&'a UsedToken>,
        audit: &'a AuditContext,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Deletes used-token records that expired before `now`; returns how many were removed.
    fn prune_used_tokens(&self, now: OffsetDateTime) -> BoxFuture<'_, Result<u64, StoreError>>;

    /// Lists revoked certificates, in no particular order.
    fn revoked_certificates(
        &self,
        query: RevokedQuery,
    ) -> BoxFuture<'_, Result<Vec<RevokedEntry>, StoreError>>;

    /// Revoked certificates of every shard still valid at `unexpired_at` (all with `None`), a
    /// page of the store's choosing at a time after `after` (from the first with `None`): a
    /// reader of a million converts each page before it reads the next, rather than holding
    /// every row at once.
    fn revoked_page(
        &self,
        unexpired_at: Option<OffsetDateTime>,
        after: Option<RevokedKey>,
    ) -> BoxFuture<'_, Result<RevokedPage, StoreError>>;

    /// The number of the last revocation recorded (0 before any). Every revocation up to it
    /// is seen by any read that starts after this returns.
    fn revocation_seq(&self) -> BoxFuture<'_, Result<RevocationSeq, StoreError>>;

    /// The revocations numbered after `after`, whatever their revocation time, expired ones
    /// included.
    fn revocations_after(
        &self,
        after: RevocationSeq,
    ) -> BoxFuture<'_, Result<RevocationNews, StoreError>>;

    /// Takes the next CRL number: one more than any number handed out before, by this or any
    /// other instance sharing the database, also across restarts.
    fn next_crl_number(&self) -> BoxFuture<'_, Result<u64, StoreError>>;

    /// Keeps `crl` as the latest of its scope unless one with a higher number is kept already,
    /// so that every instance can serve the newest CRL any of them made.
    fn publish_crl<'a>(&'a self, crl: &'a StoredCrl) -> BoxFuture<'a, Result<(), StoreError>>;

    /// The CRL of `scope` with the highest number published so far, when that number is above
    /// `newer_than` (0 for any). Asked on every CRL request: a complete CRL of a million
    /// entries is 46 MB, read only when it is newer than the one the caller holds.
    fn latest_crl(
        &self,
        scope: CrlScopeName,
        newer_than: u64,
    ) -> BoxFuture<'_, Result<Option<StoredCrl>, StoreError>>;

    /// Keeps `meta`'s snapshot of the revoked set, whose parts `parts` yields (each at most
    /// [`MAX_STORED_PART`] bytes), unless one of its kind as of a later revocation is kept:
    /// then nothing changes and the answer is `false`. All or nothing.
    fn keep_revoked_snapshot<'a>(
        &'a self,
        meta: &'a RevokedSnapshotMeta,
        parts: &'a mut (dyn Iterator<Item = Vec<u8>> + Send),
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// The snapshot of `kind` kept last, if any.
    fn revoked_snapshot(
        &self,
        kind: RevokedSetKind,
    ) -> BoxFuture<'_, Result<Option<RevokedSnapshot>, StoreError>>;

    /// Records that certificates carry `url` as the distribution point of `shard`; recording
    /// it again changes nothing. A shard's CRL names every URL it was ever published under, so a
    /// certificate issued before a URL change still finds its CRL authoritative.
    fn remember_crl_url<'a>(
        &'a self,
        shard: CrlShard,
        url: &'a str,
        now: OffsetDateTime,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Every URL recorded by [`CertStore::remember_crl_url`], with its shard, oldest first.
    fn crl_urls(&self) -> BoxFuture<'_, Result<Vec<(CrlShard, String)>, StoreError>>;
}

/// Which CRL a stored one is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrlScopeName {
    Full,
    Delta,
    Shard(CrlShard),
}

impl CrlScopeName {
    /// The scope's key in the store and in metrics: `full`, `delta` or `shard-N`.
    pub fn key(self) -> std::borrow::Cow<'static, str> {
        match self {
            CrlScopeName::Full => "full".into(),
            CrlScopeName::Delta => "delta".into(),
            CrlScopeName::Shard(shard) => format!("shard-{shard}").into(),
        }
    }

    /// The scope's label in metrics: every shard is one `shard`, so that thousands of shards
    /// do not become thousands of series.
    pub fn metric_label(self) -> &'static str {
        match self {
            CrlScopeName::Full => "full",
            CrlScopeName::Delta => "delta",
            CrlScopeName::Shard(_) => "shard",
        }
    }
}

/// A signed CRL as kept in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCrl {
    pub scope: CrlScopeName,
    pub number: u64,
    pub this_update: OffsetDateTime,
    pub next_update: OffsetDateTime,
    pub der: Vec<u8>,
}

/// Which revoked set a [`RevokedSnapshot`] holds: a CA that keeps expired certificates on its
/// CRL lists more than one that drops them, so the two are kept apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokedSetKind {
    /// Revoked certificates unexpired when the snapshot was taken.
    Unexpired,
    /// Every revoked certificate (`crl.keepExpired`).
    WithExpired,
}

impl RevokedSetKind {
    pub fn new(keep_expired: bool) -> Self {
        if keep_expired {
            RevokedSetKind::WithExpired
        } else {
            RevokedSetKind::Unexpired
        }
    }

    /// The snapshot's key in the store.
    pub fn key(self) -> &'static str {
        match self {
            RevokedSetKind::Unexpired => "unexpired",
            RevokedSetKind::WithExpired => "all",
        }
    }
}

/// What a [`RevokedSnapshot`] is: which set, and as of which revocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RevokedSnapshotMeta {
    pub kind: RevokedSetKind,
    /// Every revocation numbered up to this one is in the snapshot, and none after it.
    pub seq: RevocationSeq,
    pub taken_at: OffsetDateTime,
}

/// The revoked set a CRL publisher keeps in memory, saved so that the first complete CRL after
/// a start reads it and the revocations numbered since, not every revoked row. The bytes are
/// the publisher's own encoding; the store keeps them as they are, in parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedSnapshot {
    pub meta: RevokedSnapshotMeta,
    /// In the order they were kept; each under [`MAX_STORED_PART`] bytes.
    pub parts: Vec<Vec<u8>>,
}

/// The largest value the store writes in one statement: MariaDB refuses a statement above its
/// `max_allowed_packet` (16 MiB by default), and sqlx holds two copies of each value it sends.
/// A complete CRL of a million entries (46 MB) and a revoked-set snapshot are kept in parts.
pub const MAX_STORED_PART: usize = 1 << 20;

/// Which certificates a listing returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListStatus {
    /// Not revoked and not expired at the listing's `now`.
    Active,
    Revoked,
    /// Not revoked, and expired at the listing's `now`.
    Expired,
}

impl ListStatus {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "active" => Some(ListStatus::Active),
            "revoked" => Some(ListStatus::Revoked),
            "expired" => Some(ListStatus::Expired),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ListStatus::Active => "active",
            ListStatus::Revoked => "revoked",
            ListStatus::Expired => "expired",
        }
    }
}

/// One page of a certificate listing, in ascending serial order (as text): keyset paging, so a
/// page never repeats or skips a certificate because others were added meanwhile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificatePage {
    /// Only these; all when `None`.
    pub status: Option<ListStatus>,
    /// What "expired" is measured against.
    pub now: OffsetDateTime,
    /// Serials after this one (the last of the previous page).
    pub after: Option<String>,
    /// At most this many.
    pub limit: u32,
}

/// How many rows the store holds, to watch its growth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreCounts {
    pub certificates: u64,
    pub used_tokens: u64,
}

/// What only operations across instances need: listing, retention, and a lease so that one
/// instance at a time runs a job. Kept apart from [`CertStore`] so the issuing path's trait stays
/// small; every backend implements both.
pub trait AdminStore: Send + Sync {
    /// A page of stored certificates.
    fn list_certificates<'a>(
        &'a self,
        page: &'a CertificatePage,
    ) -> BoxFuture<'a, Result<Vec<StoredCertificate>, StoreError>>;

    /// Deletes certificates whose notAfter is before `expired_before`; returns how many.
    fn prune_certificates(
        &self,
        expired_before: OffsetDateTime,
    ) -> BoxFuture<'_, Result<u64, StoreError>>;

    /// Row counts.
    fn counts(&self) -> BoxFuture<'_, Result<StoreCounts, StoreError>>;

    /// Takes or extends the lease `name` for `holder` until `until` when it is free, expired at
    /// `now`, or `holder`'s already; true when `holder` holds it afterwards. Atomic across
    /// instances: of several asking at once, one gets it.
    fn acquire_lease<'a>(
        &'a self,
        name: &'a str,
        holder: &'a str,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// A page of the audit log. The log is never pruned: retention leaves it alone.
    fn audit_entries<'a>(
        &'a self,
        query: &'a AuditQuery,
    ) -> BoxFuture<'a, Result<Vec<AuditEntry>, StoreError>>;
}

/// A store with both traits, as the server holds it.
pub trait FullStore: CertStore + AdminStore {}

impl<T: CertStore + AdminStore + ?Sized> FullStore for T {}
