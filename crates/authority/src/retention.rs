//! The retention job: keeps the database from growing without end.
//!
//! Deletes used-token records once their token has expired (a replay would be refused as
//! expired anyway) and certificates expired for longer than `keep_expired`. A revoked
//! certificate is deleted under the same rule, so it stays while it is on the CRL (a CRL lists
//! a revoked certificate until it expires) and for `keep_expired` after. With several instances
//! on one database, a lease row makes one instance at a time do the work; if it dies, another
//! takes over once the lease expires.

use time::Duration;

use crate::clock::Clock;
use crate::store::{AdminStore, CertStore, StoreError};
use mayfly_config::config::RetentionConfig;

/// Name of the lease row the job takes.
pub const LEASE: &str = "retention";

/// What the job keeps and how often it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    pub keep_expired: Duration,
    pub interval: Duration,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        RetentionPolicy {
            keep_expired: Duration::days(30),
            interval: Duration::minutes(10),
        }
    }
}

impl RetentionPolicy {
    /// The policy ca.json's `db.retention` asks for, defaults filled in.
    pub fn from_config(config: Option<&RetentionConfig>) -> Result<Self, String> {
        let default = RetentionPolicy::default();
        let Some(config) = config else {
            return Ok(default);
        };
        let policy = RetentionPolicy {
            keep_expired: config.keep_expired.map_or(default.keep_expired, |d| d.0),
            interval: config.interval.map_or(default.interval, |d| d.0),
        };
        if policy.interval < Duration::seconds(1) {
            return Err(format!(
                "db.retention.interval must be at least 1s, not {}",
                policy.interval
            ));
        }
        Ok(policy)
    }

    /// How long the lease lasts: a few runs, so a holder that misses one keeps it, and one that
    /// died is replaced soon.
    pub fn lease_length(&self) -> Duration {
        self.interval * 3
    }
}

/// What one run deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pruned {
    pub used_tokens: u64,
    pub certificates: u64,
}

/// One run of the job as `holder` (an id unique to this instance). `None` when another instance
/// holds the lease.
pub async fn run_once<S>(
    store: &S,
    clock: &dyn Clock,
    policy: &RetentionPolicy,
    holder: &str,
) -> Result<Option<Pruned>, StoreError>
where
    S: CertStore + AdminStore + ?Sized,
{
    let now = clock.now();
    if !store
        .acquire_lease(LEASE, holder, now, now + policy.lease_length())
        .await?
    {
        return Ok(None);
    }
    let used_tokens = store.prune_used_tokens(now).await?;
    let certificates = store.prune_certificates(now - policy.keep_expired).await?;
    Ok(Some(Pruned {
        used_tokens,
        certificates,
    }))
}
