//! ca.json `publication.dir`: mayfly-ca keeps a static copy of what relying parties fetch, for a
//! web server or a CDN to serve when the CA cannot (see `mayfly_authority::static_site`).
//!
//! The whole copy, with an OCSP response re-signed for every unexpired certificate, is
//! rewritten every `publication.interval`; between two, the CRLs are rewritten as soon as they
//! change, and each new revocation's OCSP response at once, so a revocation reaches the copy
//! within about a second.

use std::sync::Arc;

use mayfly_authority::Authority;
use mayfly_authority::static_site::{Published, StaticSite};
use mayfly_authority::store::{FullStore, RevocationSeq};
use mayfly_config::duration::GoDuration;
use time::{Duration, OffsetDateTime};

/// How often the whole copy is rewritten when ca.json does not say.
pub const DEFAULT_INTERVAL: Duration = Duration::minutes(1);

/// The static copy's state between two rounds.
pub struct StaticPublisher {
    site: StaticSite,
    interval: Duration,
    store: Arc<dyn FullStore>,
    last_full: Option<OffsetDateTime>,
    /// The last revocation whose OCSP answer is in the copy, by the store's numbering (which
    /// every instance's revocations follow, whatever their date): the next round writes those
    /// after it.
    written: Option<RevocationSeq>,
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
            written: None,
        }))
    }

    /// One round: the whole copy when it is due, else what changed. The copy moves on only
    /// once a round succeeded: after an error the next round writes the same revocations again.
    pub async fn round(&mut self, authority: &Authority) -> mayfly_authority::Result<Published> {
        let now = authority.clock().now();
        let store_error = mayfly_authority::Error::Store;
        if self.last_full.is_none_or(|at| now - at >= self.interval) || self.written.is_none() {
            // The number first: a revocation recorded while the copy is written comes next
            // round, even if the copy has it already.
            let before = self.store.revocation_seq().await.map_err(store_error)?;
            let report = self.site.publish(authority, self.store.as_ref()).await?;
            self.last_full = Some(now);
            self.written = Some(before);
            return Ok(report);
        }
        let mut report = self.site.publish_crls(authority).await?;
        let after = self.written.unwrap_or_default();
        let news = self
            .store
            .revocations_after(after)
            .await
            .map_err(store_error)?;
        for entry in news.entries.iter().filter(|entry| entry.not_after >= now) {
            let stored = self
                .store
                .certificate(&entry.serial)
                .await
                .map_err(store_error)?;
            if let Some(stored) = stored {
                self.site.publish_ocsp(authority, &stored).await?;
                report.ocsp_responses += 1;
            }
        }
        self.written = Some(news.last);
        Ok(report)
    }
}
