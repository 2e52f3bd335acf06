//! ca.json `publication.dir`: mayfly-ca keeps a static copy of what relying parties fetch, for a
//! web server or a CDN to serve when the CA cannot (see `mayfly_authority::static_site`).
//!
//! The whole copy, with an OCSP response re-signed for every unexpired certificate, is
//! rewritten every `publication.interval`; between two, the CRLs are rewritten as soon as they
//! change, and each new revocation's OCSP response at once, so a revocation reaches the copy
//! within about a second.

use std::collections::HashMap;
use std::sync::Arc;

use mayfly_authority::Authority;
use mayfly_authority::static_site::{Published, StaticSite};
use mayfly_authority::store::{FullStore, RevokedQuery};
use mayfly_config::duration::GoDuration;
use time::{Duration, OffsetDateTime};

/// How often the whole copy is rewritten when ca.json does not say.
pub const DEFAULT_INTERVAL: Duration = Duration::minutes(1);
/// How far back each check for revocations looks (clock skew between instances, late polls).
const LOOKBACK: Duration = Duration::seconds(30);

/// The static copy's state between two rounds.
pub struct StaticPublisher {
    site: StaticSite,
    interval: Duration,
    store: Arc<dyn FullStore>,
    last_full: Option<OffsetDateTime>,
    last_check: Option<OffsetDateTime>,
    /// Revocations already written, and when they were first seen.
    written: HashMap<String, OffsetDateTime>,
}

impl StaticPublisher {
    /// `None` unless ca.json has `publication.dir`.
    pub fn from_config(
        config: &mayfly_config::config::CaConfig,
        store: Arc<dyn FullStore>,
    ) -> anyhow::Result<Option<Self>> {
        let Some(publication) = &config.publication else {
            return Ok(None);
        };
        let Some(dir) = &publication.dir else {
            return Ok(None);
        };
        let interval = publication
            .interval
            .map_or(DEFAULT_INTERVAL, |GoDuration(d)| d);
        if interval <= Duration::ZERO {
            anyhow::bail!("publication.interval must be longer than 0");
        }
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("publication.dir: cannot create {dir:?}: {e}"))?;
        Ok(Some(Self {
            site: StaticSite::new(dir),
            interval,
            store,
            last_full: None,
            last_check: None,
            written: HashMap::new(),
        }))
    }

    /// One round: the whole copy when it is due, else what changed.
    pub async fn round(&mut self, authority: &Authority) -> mayfly_authority::Result<Published> {
        let now = authority.clock().now();
        let since = self.last_check.map(|at| at - LOOKBACK);
        self.last_check = Some(now);
        if self.last_full.is_none_or(|at| now - at >= self.interval) {
            let report = self.site.publish(authority, self.store.as_ref()).await?;
            self.last_full = Some(now);
            return Ok(report);
        }
        let mut report = self.site.publish_crls(authority).await?;
        let recent = self
            .store
            .revoked_certificates(RevokedQuery {
                revoked_since: since,
                unexpired_at: Some(now),
                shard: None,
            })
            .await
            .map_err(mayfly_authority::Error::Store)?;
        self.written.retain(|_, at| now - *at < LOOKBACK * 4);
        for entry in recent {
            if self.written.contains_key(&entry.serial) {
                continue;
            }
            let stored = self
                .store
                .certificate(&entry.serial)
                .await
                .map_err(mayfly_authority::Error::Store)?;
            if let Some(stored) = stored {
                self.site.publish_ocsp(authority, &stored).await?;
                report.ocsp_responses += 1;
            }
            self.written.insert(entry.serial, now);
        }
        Ok(report)
    }
}
