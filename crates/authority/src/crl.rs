//! Publishing CRLs: when to make a new one, what goes on it, and the numbering.
//!
//! Complete CRLs are remade at `renewPeriod` (2/3 of their lifetime by default) and soon after a
//! revocation. The last complete CRL made on schedule is the *base* of the delta CRLs: each delta
//! lists what was revoked since that base, so a relying party holding any complete CRL at least
//! as new as the base can combine it with the current delta. Complete CRLs made after a
//! revocation do not move the base, so that deltas stay usable with the complete CRLs relying
//! parties already cached. Every CRL, complete or delta, takes its number from the store, so
//! numbers only grow across restarts and across instances.

use std::sync::{Arc, Mutex};

use mayfly_pki::Signer;
use mayfly_pki::crl::{CrlEntry, CrlParams, CrlScope, build_crl};
use mayfly_pki::issuer::IssuerIdentity;
use time::{Duration, OffsetDateTime};

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::store::{CertStore, CrlScopeName, RevokedQuery, StoredCrl};

/// How CRLs are published, resolved from ca.json's `crl` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlSettings {
    /// The distribution point URL: in certificates (CDP) and in the CRL (IDP).
    pub url: String,
    /// nextUpdate - thisUpdate of complete CRLs.
    pub lifetime: Duration,
    /// Age at which a complete CRL is remade.
    pub renew_after: Duration,
    /// Remake soon after each revocation.
    pub generate_on_revoke: bool,
    pub keep_expired: bool,
    pub delta: Option<DeltaSettings>,
}

/// Delta CRL publication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeltaSettings {
    pub url: String,
    pub lifetime: Duration,
}

/// A signed CRL as served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCrl {
    pub der: Vec<u8>,
    pub number: u64,
    pub this_update: OffsetDateTime,
    pub next_update: OffsetDateTime,
    /// A strong validator for HTTP caches: the CRL number and the scope.
    pub etag: String,
}

/// Complete or delta.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrlKind {
    Full,
    Delta,
}

#[derive(Default)]
struct Published {
    full: Option<Arc<SignedCrl>>,
    delta: Option<Arc<SignedCrl>>,
    /// The base of deltas: number and thisUpdate of the last complete CRL made on schedule.
    base: Option<(u64, OffsetDateTime)>,
    /// A revocation happened since the last CRLs were made.
    stale: bool,
}

/// The CRLs of one CA, made on demand and kept fresh by [`CrlPublisher::refresh`].
pub struct CrlPublisher {
    settings: CrlSettings,
    issuer: IssuerIdentity,
    key: Arc<dyn Signer>,
    store: Arc<dyn CertStore>,
    clock: Arc<dyn Clock>,
    /// How far thisUpdate is set back, as leaves' notBefore: a relying party whose clock is a
    /// little behind must not find the CRL "not yet valid".
    backdate: time::Duration,
    published: Mutex<Published>,
    /// One generation at a time: two requests finding no CRL make it once.
    generating: tokio::sync::Mutex<()>,
}

impl CrlPublisher {
    pub fn new(
        settings: CrlSettings,
        issuer: IssuerIdentity,
        key: Arc<dyn Signer>,
        store: Arc<dyn CertStore>,
        clock: Arc<dyn Clock>,
        backdate: time::Duration,
    ) -> Self {
        Self {
            settings,
            issuer,
            key,
            store,
            clock,
            backdate,
            published: Mutex::new(Published::default()),
            generating: tokio::sync::Mutex::new(()),
        }
    }

    pub fn settings(&self) -> &CrlSettings {
        &self.settings
    }

    /// The current CRL of `kind`, made first if there is none yet or it is due.
    pub async fn current(&self, kind: CrlKind) -> Result<Arc<SignedCrl>> {
        if kind == CrlKind::Delta && self.settings.delta.is_none() {
            return Err(Error::DeltaCrlDisabled);
        }
        let fresh = self.fresh(kind);
        crate::telemetry::crl_requested(kind.scope_name().metric_label(), fresh.is_some());
        let local = match fresh {
            Some(crl) => crl,
            None => {
                self.refresh().await?;
                self.lock()
                    .crl(kind)
                    .ok_or_else(|| Error::Config("no CRL was produced".into()))?
            }
        };
        self.newest(kind, local).await
    }

    /// `local`, or the newer CRL another instance sharing the database made meanwhile, so that
    /// a relying party moving between instances never gets a lower number than it has seen.
    async fn newest(&self, kind: CrlKind, local: Arc<SignedCrl>) -> Result<Arc<SignedCrl>> {
        let stored = self
            .store
            .latest_crl(kind.scope_name())
            .await
            .map_err(Error::Store)?;
        let Some(stored) =
            stored.filter(|s| s.number > local.number && s.next_update > self.clock.now())
        else {
            return Ok(local);
        };
        let adopted = Arc::new(SignedCrl {
            etag: etag(kind == CrlKind::Delta, stored.number),
            der: stored.der,
            number: stored.number,
            this_update: stored.this_update,
            next_update: stored.next_update,
        });
        let mut published = self.lock();
        let slot = match kind {
            CrlKind::Full => &mut published.full,
            CrlKind::Delta => &mut published.delta,
        };
        if slot
            .as_ref()
            .is_none_or(|mine| mine.number < adopted.number)
        {
            *slot = Some(Arc::clone(&adopted));
        }
        Ok(adopted)
    }

    /// Notes that a certificate was revoked; the next [`CrlPublisher::refresh`] remakes the CRLs
    /// (when `generateOnRevoke` is on).
    pub fn revoked(&self) {
        if self.settings.generate_on_revoke {
            self.lock().stale = true;
        }
    }

    /// Makes whatever is due: complete and delta CRLs when a revocation happened or the
    /// complete CRL reached its renewal age, the delta alone when it did.
    pub async fn refresh(&self) -> Result<()> {
        let _one_at_a_time = self.generating.lock().await;
        let now = self.clock.now();
        let (full_due, scheduled, delta_due) = {
            let published = self.lock();
            let full_age = published.full.as_ref().map(|crl| now - crl.this_update);
            let scheduled = full_age.is_none_or(|age| age >= self.settings.renew_after);
            let delta_due = self.settings.delta.as_ref().is_some_and(|delta| {
                published
                    .delta
                    .as_ref()
                    .is_none_or(|crl| now - crl.this_update >= delta.lifetime * 2 / 3)
            });
            (scheduled || published.stale, scheduled, delta_due)
        };
        if full_due {
            self.lock().stale = false;
            let full = self.make_full(now).await?;
            let mut published = self.lock();
            if scheduled || published.base.is_none() {
                published.base = Some((full.number, full.this_update));
            }
            published.full = Some(Arc::new(full));
        }
        if self.settings.delta.is_some() && (full_due || delta_due) {
            let delta = self.make_delta(now).await?;
            self.lock().delta = Some(Arc::new(delta));
        }
        Ok(())
    }

    fn fresh(&self, kind: CrlKind) -> Option<Arc<SignedCrl>> {
        let now = self.clock.now();
        self.lock().crl(kind).filter(|crl| crl.next_update > now)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Published> {
        match self.published.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    async fn make_full(&self, now: OffsetDateTime) -> Result<SignedCrl> {
        let query = RevokedQuery {
            revoked_since: None,
            unexpired_at: (!self.settings.keep_expired).then_some(now),
            shard: None,
        };
        let scope = CrlScope::Full {
            freshest: self.settings.delta.as_ref().map(|d| d.url.clone()),
        };
        self.make(now, query, scope, self.settings.lifetime).await
    }

    async fn make_delta(&self, now: OffsetDateTime) -> Result<SignedCrl> {
        let (base_number, base_time) = self
            .lock()
            .base
            .ok_or_else(|| Error::Config("a delta CRL needs a complete CRL first".into()))?;
        let lifetime = self
            .settings
            .delta
            .as_ref()
            .map_or(self.settings.lifetime, |d| d.lifetime);
        let query = RevokedQuery {
            revoked_since: Some(base_time),
            unexpired_at: (!self.settings.keep_expired).then_some(now),
            shard: None,
        };
        self.make(now, query, CrlScope::Delta { base_number }, lifetime)
            .await
    }

    async fn make(
        &self,
        now: OffsetDateTime,
        query: RevokedQuery,
        scope: CrlScope,
        lifetime: Duration,
    ) -> Result<SignedCrl> {
        let started = std::time::Instant::now();
        let revoked = self
            .store
            .revoked_certificates(query)
            .await
            .map_err(Error::Store)?;
        let entries = revoked
            .iter()
            .map(|entry| {
                let serial = mayfly_pki::SerialNumber::from_decimal(&entry.serial)
                    .map_err(|_| Error::SerialMalformed(entry.serial.clone()))?;
                Ok(CrlEntry {
                    serial: serial.as_be_bytes().to_vec(),
                    revoked_at: entry.revoked_at,
                    reason_code: entry.reason_code,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let number = self.store.next_crl_number().await.map_err(Error::Store)?;
        // X.509 times have whole seconds; keep the served times equal to the encoded ones.
        let now = now.replace_nanosecond(0).unwrap_or(now);
        let this_update = now - self.backdate;
        let next_update = now + lifetime;
        let delta = matches!(scope, CrlScope::Delta { .. });
        let params = CrlParams {
            number,
            this_update,
            next_update,
            distribution_point: &self.settings.url,
            scope,
        };
        let der = build_crl(&self.issuer, self.key.as_ref(), &params, &entries)?;
        tracing::info!(
            number,
            entries = entries.len(),
            delta,
            bytes = der.len(),
            "published a CRL"
        );
        let scope = if delta {
            CrlScopeName::Delta
        } else {
            CrlScopeName::Full
        };
        self.store
            .publish_crl(&StoredCrl {
                scope,
                number,
                this_update,
                next_update,
                der: der.clone(),
            })
            .await
            .map_err(Error::Store)?;
        crate::telemetry::crl_generated(scope.metric_label(), started.elapsed());
        Ok(SignedCrl {
            der,
            number,
            this_update,
            next_update,
            etag: etag(delta, number),
        })
    }
}

/// A strong validator for HTTP caches: the scope and the CRL number.
fn etag(delta: bool, number: u64) -> String {
    format!("\"{}{number}\"", if delta { "delta-" } else { "crl-" })
}

impl CrlKind {
    fn scope_name(self) -> CrlScopeName {
        match self {
            CrlKind::Full => CrlScopeName::Full,
            CrlKind::Delta => CrlScopeName::Delta,
        }
    }
}

impl Published {
    fn crl(&self, kind: CrlKind) -> Option<Arc<SignedCrl>> {
        match kind {
            CrlKind::Full => self.full.clone(),
            CrlKind::Delta => self.delta.clone(),
        }
    }
}
