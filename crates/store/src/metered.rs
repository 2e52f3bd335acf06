//! Store latency for `/metrics`: a [`CertStore`] that times every call of the one it wraps.
//! Recorded through the `metrics` facade, so it costs nothing measurable where no recorder is
//! installed.

use std::sync::Arc;
use std::time::Instant;

use mayfly_authority::audit::AuditContext;
use mayfly_authority::store::{
    BoxFuture, CertStore, CrlScopeName, CrlShard, IssuedCertificate, Revocation, RevocationNews,
    RevocationSeq, RevokedEntry, RevokedKey, RevokedPage, RevokedQuery, RevokedSetKind,
    RevokedSnapshot, RevokedSnapshotMeta, StoreError, StoredCertificate, StoredCrl, UsedToken,
};
use time::OffsetDateTime;

/// Latency of store calls, by operation.
pub const STORE_SECONDS: &str = "mayfly_store_operation_duration_seconds";

/// Times each call of `inner`.
pub struct Metered {
    inner: Arc<dyn CertStore>,
}

impl Metered {
    pub fn new(inner: Arc<dyn CertStore>) -> Metered {
        Metered { inner }
    }
}

fn timed<'a, T: 'a>(
    operation: &'static str,
    call: BoxFuture<'a, Result<T, StoreError>>,
) -> BoxFuture<'a, Result<T, StoreError>> {
    Box::pin(async move {
        let started = Instant::now();
        let result = call.await;
        metrics::histogram!(STORE_SECONDS, "operation" => operation)
            .record(started.elapsed().as_secs_f64());
        result
    })
}

impl CertStore for Metered {
    fn record_issuance<'a>(
        &'a self,
        certificate: &'a IssuedCertificate,
        token: Option<&'a UsedToken>,
        audit: &'a AuditContext,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        timed(
            "record_issuance",
            self.inner.record_issuance(certificate, token, audit),
        )
    }

    fn certificate<'a>(
        &'a self,
        serial: &'a str,
    ) -> BoxFuture<'a, Result<Option<StoredCertificate>, StoreError>> {
        timed("certificate", self.inner.certificate(serial))
    }

    fn revoke<'a>(
        &'a self,
        revocation: &'a Revocation,
        token: Option<&'a UsedToken>,
        audit: &'a AuditContext,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        timed("revoke", self.inner.revoke(revocation, token, audit))
    }

    fn prune_used_tokens(&self, now: OffsetDateTime) -> BoxFuture<'_, Result<u64, StoreError>> {
        timed("prune_used_tokens", self.inner.prune_used_tokens(now))
    }

    fn revoked_certificates(
        &self,
        query: RevokedQuery,
    ) -> BoxFuture<'_, Result<Vec<RevokedEntry>, StoreError>> {
        timed(
            "revoked_certificates",
            self.inner.revoked_certificates(query),
        )
    }

    fn revoked_page(
        &self,
        unexpired_at: Option<OffsetDateTime>,
        after: Option<RevokedKey>,
    ) -> BoxFuture<'_, Result<RevokedPage, StoreError>> {
        timed("revoked_page", self.inner.revoked_page(unexpired_at, after))
    }

    fn revocation_seq(&self) -> BoxFuture<'_, Result<RevocationSeq, StoreError>> {
        timed("revocation_seq", self.inner.revocation_seq())
    }

    fn revocations_after(
        &self,
        after: RevocationSeq,
    ) -> BoxFuture<'_, Result<RevocationNews, StoreError>> {
        timed("revocations_after", self.inner.revocations_after(after))
    }

    fn next_crl_number(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        timed("next_crl_number", self.inner.next_crl_number())
    }

    fn publish_crl<'a>(&'a self, crl: &'a StoredCrl) -> BoxFuture<'a, Result<(), StoreError>> {
        timed("publish_crl", self.inner.publish_crl(crl))
    }

    fn latest_crl(
        &self,
        scope: CrlScopeName,
        newer_than: u64,
    ) -> BoxFuture<'_, Result<Option<StoredCrl>, StoreError>> {
        timed("latest_crl", self.inner.latest_crl(scope, newer_than))
    }

    fn keep_revoked_snapshot<'a>(
        &'a self,
        meta: &'a RevokedSnapshotMeta,
        parts: &'a mut (dyn Iterator<Item = Vec<u8>> + Send),
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        timed(
            "keep_revoked_snapshot",
            self.inner.keep_revoked_snapshot(meta, parts),
        )
    }

    fn revoked_snapshot(
        &self,
        kind: RevokedSetKind,
    ) -> BoxFuture<'_, Result<Option<RevokedSnapshot>, StoreError>> {
        timed("revoked_snapshot", self.inner.revoked_snapshot(kind))
    }

    fn remember_crl_url<'a>(
        &'a self,
        shard: CrlShard,
        url: &'a str,
        now: OffsetDateTime,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        timed(
            "remember_crl_url",
            self.inner.remember_crl_url(shard, url, now),
        )
    }

    fn crl_urls(&self) -> BoxFuture<'_, Result<Vec<(CrlShard, String)>, StoreError>> {
        timed("crl_urls", self.inner.crl_urls())
    }
}
