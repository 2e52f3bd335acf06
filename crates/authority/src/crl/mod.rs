//! Publishing CRLs: when to make a new one, what goes on it, and the numbering.
//!
//! Complete CRLs are remade at `renewPeriod` (2/3 of their lifetime by default) and soon after a
//! revocation. The last complete CRL made on schedule is the *base* of the delta CRLs: each delta
//! lists what was revoked since that base, so a relying party holding any complete CRL at least
//! as new as the base can combine it with the current delta. Complete CRLs made after a
//! revocation do not move the base, so that deltas stay usable with the complete CRLs relying
//! parties already cached. Every CRL, complete or delta, takes its number from the store, so
//! numbers only grow across restarts and across instances.
//!
//! With `crl.shards` above 1, each certificate carries the URL of one shard, chosen from its
//! serial's random bits when it is issued and recorded with it, and each shard is a complete
//! CRL of its certificates, scoped by an Issuing Distribution Point that names every URL the
//! shard was ever published under (so a certificate issued before a URL change still finds the
//! CRL authoritative). A revocation remakes only its shard. The complete CRL has no Issuing
//! Distribution Point: it covers every certificate, whatever URL it carries.

mod revoked_set;
mod snapshot;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use mayfly_pki::Signer;
use mayfly_pki::crl::{CrlParams, CrlScope, build_crl};
use mayfly_pki::issuer::IssuerIdentity;
use time::{Duration, OffsetDateTime};

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::store::{CertStore, CrlScopeName, CrlShard, RevokedQuery, StoredCrl};
use revoked_set::{Listed, RevokedSet};

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
    /// How many shards certificates are spread over; 1 for none.
    pub shards: u16,
    /// The shards' URLs: shard N is at `{shard_base}/N`.
    pub shard_base: String,
}

impl CrlSettings {
    /// The URL certificates of `shard` carry.
    pub fn shard_url(&self, shard: CrlShard) -> String {
        format!("{}/{shard}", self.shard_base)
    }

    /// The shard of a new certificate with `serial`: its low 64 bits (random, see
    /// `SerialNumber::random`) modulo the shard count, so shards fill evenly. `None` with one
    /// shard: the certificate then carries the complete CRL's URL.
    pub fn shard_for(&self, serial: &mayfly_pki::SerialNumber) -> Option<CrlShard> {
        if self.shards <= 1 {
            return None;
        }
        let bytes = serial.as_be_bytes();
        let low = bytes[bytes.len().saturating_sub(8)..]
            .iter()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
        let index = u16::try_from(low % u64::from(self.shards)).ok()?;
        CrlShard::new(index)
    }
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

/// Complete, delta, or one shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrlKind {
    Full,
    Delta,
    Shard(CrlShard),
}

/// How soon after the last one a sharded CA remakes a large complete CRL for a revocation.
const FULL_REMAKE_WITH_SHARDS: Duration = Duration::minutes(1);
/// A complete CRL this large (about 100,000 entries) is remade only as often as
/// [`FULL_REMAKE_WITH_SHARDS`] allows when shards carry the revocations at once.
const LARGE_CRL_BYTES: usize = 4 << 20;

#[derive(Default)]
struct Published {
    full: Option<Arc<SignedCrl>>,
    delta: Option<Arc<SignedCrl>>,
    shards: HashMap<CrlShard, Arc<SignedCrl>>,
    /// The base of deltas: number and thisUpdate of the last complete CRL made on schedule.
    base: Option<(u64, OffsetDateTime)>,
    /// A revocation happened since the last CRLs were made.
    stale: bool,
    /// Shards with a revocation since their CRL was made.
    stale_shards: BTreeSet<CrlShard>,
    /// Every URL each shard was published under, as the store remembers them; `None` until
    /// this instance recorded its own.
    shard_urls: Option<BTreeMap<CrlShard, Vec<String>>>,
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
    /// One generation of complete and delta CRLs at a time: two requests finding none make it
    /// once. It guards what the complete CRL lists, kept in memory between CRLs.
    generating: tokio::sync::Mutex<RevokedSet>,
    /// The same for shards, apart: a shard remade for a revocation must not wait for a
    /// complete CRL of millions of entries being made meanwhile.
    generating_shards: tokio::sync::Mutex<()>,
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
            generating: tokio::sync::Mutex::new(RevokedSet::default()),
            generating_shards: tokio::sync::Mutex::new(()),
        }
    }

    pub fn settings(&self) -> &CrlSettings {
        &self.settings
    }

    /// The current CRL of `kind`, made first if there is none yet or it is due.
    pub async fn current(&self, kind: CrlKind) -> Result<Arc<SignedCrl>> {
        match kind {
            CrlKind::Delta if self.settings.delta.is_none() => {
                return Err(Error::DeltaCrlDisabled);
            }
            CrlKind::Shard(shard) if !self.is_published_shard(shard).await? => {
                return Err(Error::CrlShardUnknown(shard.to_string()));
            }
            _ => {}
        }
        let fresh = self.fresh(kind);
        crate::telemetry::crl_requested(kind.scope_name().metric_label(), fresh.is_some());
        let local = match fresh {
            Some(crl) => crl,
            None => {
                match kind {
                    CrlKind::Shard(_) => self.refresh_shards().await?,
                    CrlKind::Full | CrlKind::Delta => self.refresh_complete().await?,
                }
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
            .latest_crl(kind.scope_name(), local.number)
            .await
            .map_err(Error::Store)?;
        // The store returns it only when its number is higher than `local`'s.
        let Some(stored) = stored.filter(|s| s.next_update > self.clock.now()) else {
            return Ok(local);
        };
        let adopted = Arc::new(SignedCrl {
            etag: etag(kind.scope_name(), stored.number),
            der: stored.der,
            number: stored.number,
            this_update: stored.this_update,
            next_update: stored.next_update,
        });
        let mut published = self.lock();
        let older = |mine: Option<&Arc<SignedCrl>>| mine.is_none_or(|m| m.number < adopted.number);
        match kind {
            CrlKind::Full if older(published.full.as_ref()) => {
                published.full = Some(Arc::clone(&adopted));
            }
            CrlKind::Delta if older(published.delta.as_ref()) => {
                published.delta = Some(Arc::clone(&adopted));
            }
            CrlKind::Shard(shard) if older(published.shards.get(&shard)) => {
                published.shards.insert(shard, Arc::clone(&adopted));
            }
            _ => {}
        }
        Ok(adopted)
    }

    /// Notes that a certificate of `shard` (`None`: one carrying the complete CRL's URL) was
    /// revoked; the next [`CrlPublisher::refresh`] remakes the complete CRL, the delta and that
    /// shard (when `generateOnRevoke` is on).
    pub fn revoked(&self, shard: Option<CrlShard>) {
        if self.settings.generate_on_revoke {
            let mut published = self.lock();
            published.stale = true;
            if let Some(shard) = shard {
                published.stale_shards.insert(shard);
            }
        }
    }

    /// Shards published: those below `crl.shards`, and any an earlier configuration had (its
    /// certificates still carry their URLs).
    pub async fn shards(&self) -> Result<Vec<CrlShard>> {
        let urls = self.shard_urls().await?;
        let mut shards: BTreeSet<CrlShard> = urls.keys().copied().collect();
        if self.settings.shards > 1 {
            shards.extend((0..self.settings.shards).filter_map(CrlShard::new));
        }
        Ok(shards.into_iter().collect())
    }

    async fn is_published_shard(&self, shard: CrlShard) -> Result<bool> {
        Ok(
            shard.index() < self.settings.shards && self.settings.shards > 1
                || self.shard_urls().await?.contains_key(&shard),
        )
    }

    /// Every URL of every shard: this instance's own recorded first, then the store's list.
    async fn shard_urls(&self) -> Result<BTreeMap<CrlShard, Vec<String>>> {
        if let Some(urls) = self.lock().shard_urls.clone() {
            return Ok(urls);
        }
        self.reload_shard_urls().await
    }

    async fn reload_shard_urls(&self) -> Result<BTreeMap<CrlShard, Vec<String>>> {
        let now = self.clock.now();
        if self.settings.shards > 1 && self.lock().shard_urls.is_none() {
            for shard in (0..self.settings.shards).filter_map(CrlShard::new) {
                self.store
                    .remember_crl_url(shard, &self.settings.shard_url(shard), now)
                    .await
                    .map_err(Error::Store)?;
            }
        }
        let mut urls: BTreeMap<CrlShard, Vec<String>> = BTreeMap::new();
        for (shard, url) in self.store.crl_urls().await.map_err(Error::Store)? {
            urls.entry(shard).or_default().push(url);
        }
        self.lock().shard_urls = Some(urls.clone());
        Ok(urls)
    }

    /// Makes whatever is due: complete and delta CRLs when a revocation happened or the
    /// complete CRL reached its renewal age, the delta alone when it did.
    pub async fn refresh(&self) -> Result<()> {
        // Shards first: they are what certificates point to, and each is small.
        self.refresh_shards().await?;
        self.refresh_complete().await
    }

    /// Remakes the shards that are stale or due.
    async fn refresh_shards(&self) -> Result<()> {
        let _one_at_a_time = self.generating_shards.lock().await;
        let now = self.clock.now();
        let scheduled = self
            .lock()
            .full
            .as_ref()
            .is_none_or(|crl| now - crl.this_update >= self.settings.renew_after);
        if scheduled {
            // Another instance (or a new configuration) may have published under more URLs.
            self.reload_shard_urls().await?;
        }
        for shard in self.shards().await? {
            let due = {
                let published = self.lock();
                published.stale_shards.contains(&shard)
                    || published
                        .shards
                        .get(&shard)
                        .is_none_or(|crl| now - crl.this_update >= self.settings.renew_after)
            };
            if due {
                self.lock().stale_shards.remove(&shard);
                let crl = self.make_shard(now, shard).await?;
                self.lock().shards.insert(shard, Arc::new(crl));
            }
        }
        Ok(())
    }

    /// Remakes the complete and delta CRLs when due.
    async fn refresh_complete(&self) -> Result<()> {
        let mut revoked = self.generating.lock().await;
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
            let stale_due = published.stale && self.complete_follows_now(&published, now);
            (scheduled || stale_due, scheduled, delta_due)
        };
        if full_due {
            self.lock().stale = false;
            let full = self.make_full(now, &mut revoked).await?;
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

    /// Saves the revoked set of the complete CRL to the store when due (ADR 18), so that the
    /// first complete CRL after a start reads it instead of every revoked row. Apart from
    /// [`CrlPublisher::refresh`]: never in the way of a CRL being served. Whether it wrote one.
    pub async fn save_revoked_set(&self) -> Result<bool> {
        let mut revoked = self.generating.lock().await;
        revoked
            .save_if_due(
                self.store.as_ref(),
                self.clock.now(),
                self.settings.keep_expired,
            )
            .await
    }

    /// Whether a revocation makes the complete CRL due at once. With shards, certificates point
    /// at their shard; a large complete CRL, kept for tools that want one, follows revocations
    /// at most once a minute, since at millions of entries remaking it costs seconds of CPU.
    fn complete_follows_now(&self, published: &Published, now: OffsetDateTime) -> bool {
        let Some(full) = published.full.as_ref() else {
            return true;
        };
        self.settings.shards <= 1
            || full.der.len() <= LARGE_CRL_BYTES
            // thisUpdate is backdated; the age counts from when it was made.
            || now - (full.this_update + self.backdate) >= FULL_REMAKE_WITH_SHARDS
    }

    /// The CRL of `kind` made here, unless it expired or a revocation it lacks is known: then
    /// the caller remakes it before answering, so a revocation is served as soon as it is seen.
    /// (A large complete CRL of a sharded CA waits for its schedule instead; see `refresh`.)
    fn fresh(&self, kind: CrlKind) -> Option<Arc<SignedCrl>> {
        let now = self.clock.now();
        let published = self.lock();
        let stale = match kind {
            CrlKind::Shard(shard) => published.stale_shards.contains(&shard),
            CrlKind::Full | CrlKind::Delta => {
                published.stale && self.complete_follows_now(&published, now)
            }
        };
        if stale {
            return None;
        }
        published.crl(kind).filter(|crl| crl.next_update > now)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Published> {
        match self.published.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// The complete CRL, from the revoked set brought up to date.
    async fn make_full(&self, now: OffsetDateTime, revoked: &mut RevokedSet) -> Result<SignedCrl> {
        let started = std::time::Instant::now();
        revoked
            .update(self.store.as_ref(), now, self.settings.keep_expired)
            .await?;
        let scope = CrlScope::Full {
            freshest: self.settings.delta.as_ref().map(|d| d.url.clone()),
        };
        self.sign_and_keep(
            started,
            now,
            revoked.listed(),
            scope,
            CrlScopeName::Full,
            &[],
            self.settings.lifetime,
        )
        .await
    }

    async fn make_shard(&self, now: OffsetDateTime, shard: CrlShard) -> Result<SignedCrl> {
        let query = RevokedQuery {
            revoked_since: None,
            unexpired_at: (!self.settings.keep_expired).then_some(now),
            shard: Some(shard),
        };
        let urls = self
            .shard_urls()
            .await?
            .remove(&shard)
            .unwrap_or_else(|| vec![self.settings.shard_url(shard)]);
        let scope = CrlScope::Full { freshest: None };
        self.make(
            now,
            query,
            scope,
            CrlScopeName::Shard(shard),
            &urls,
            self.settings.lifetime,
        )
        .await
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
        self.make(
            now,
            query,
            CrlScope::Delta { base_number },
            CrlScopeName::Delta,
            &[],
            lifetime,
        )
        .await
    }

    /// A CRL of what `query` lists in the store.
    async fn make(
        &self,
        now: OffsetDateTime,
        query: RevokedQuery,
        scope: CrlScope,
        name: CrlScopeName,
        distribution_points: &[String],
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
            .map(Listed::from_entry)
            .collect::<Result<Vec<_>>>()?;
        drop(revoked);
        self.sign_and_keep(
            started,
            now,
            &entries,
            scope,
            name,
            distribution_points,
            lifetime,
        )
        .await
    }

    /// Numbers and signs a CRL of `entries`, and keeps it in the store as its scope's latest.
    #[allow(clippy::too_many_arguments)]
    async fn sign_and_keep(
        &self,
        started: std::time::Instant,
        now: OffsetDateTime,
        entries: &[Listed],
        scope: CrlScope,
        name: CrlScopeName,
        distribution_points: &[String],
        lifetime: Duration,
    ) -> Result<SignedCrl> {
        let number = self.store.next_crl_number().await.map_err(Error::Store)?;
        // X.509 times have whole seconds; keep the served times equal to the encoded ones.
        let now = now.replace_nanosecond(0).unwrap_or(now);
        let this_update = now - self.backdate;
        let next_update = now + lifetime;
        let params = CrlParams {
            number,
            this_update,
            next_update,
            distribution_points,
            scope,
        };
        let der = build_crl(&self.issuer, self.key.as_ref(), &params, entries)?;
        tracing::info!(
            number,
            entries = entries.len(),
            scope = %name.key(),
            bytes = der.len(),
            "published a CRL"
        );
        let stored = StoredCrl {
            scope: name,
            number,
            this_update,
            next_update,
            der,
        };
        self.store
            .publish_crl(&stored)
            .await
            .map_err(Error::Store)?;
        crate::telemetry::crl_generated(name.metric_label(), started.elapsed());
        Ok(SignedCrl {
            der: stored.der,
            number,
            this_update,
            next_update,
            etag: etag(name, number),
        })
    }
}

/// A strong validator for HTTP caches: the scope and the CRL number.
fn etag(scope: CrlScopeName, number: u64) -> String {
    format!("\"{}-{number}\"", scope.key())
}

impl CrlKind {
    fn scope_name(self) -> CrlScopeName {
        match self {
            CrlKind::Full => CrlScopeName::Full,
            CrlKind::Delta => CrlScopeName::Delta,
            CrlKind::Shard(shard) => CrlScopeName::Shard(shard),
        }
    }
}

impl Published {
    fn crl(&self, kind: CrlKind) -> Option<Arc<SignedCrl>> {
        match kind {
            CrlKind::Full => self.full.clone(),
            CrlKind::Delta => self.delta.clone(),
            CrlKind::Shard(shard) => self.shards.get(&shard).cloned(),
        }
    }
}
