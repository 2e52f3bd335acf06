//! How much any one client can ask of the server: connections at once, the size of a request
//! head, time to send each part of a request, and the rate of unauthenticated requests from one
//! address. Each refusal is counted in `/metrics` by the limit that caused it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use mayfly_acme::limits::AddressLimitSettings;
use mayfly_config::config::LimitsConfig;
use tokio::sync::Semaphore;

use crate::body::MAX_BODY_BYTES;
use crate::error::RequestError;
use crate::serve::{BodyTimeout, PeerCertificates};

/// Requests and connections refused by a limit, by limit.
pub const LIMITED: &str = "mayfly_limited_total";

const DEFAULT_MAX_CONNECTIONS: usize = 1024;
const DEFAULT_MAX_CONNECTIONS_PER_ADDRESS: usize = 64;
const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_MAX_BODY_MEMORY: usize = 64 * 1024 * 1024;
const DEFAULT_MAX_HEADER_BYTES: usize = 16 * 1024;
/// hyper refuses a smaller read buffer: a request head must fit in it.
const MIN_HEADER_BYTES: usize = 8192;
const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(15);
const DEFAULT_RATE: f64 = 20.0;
/// Addresses remembered by the rate limiter at most; past it, those idle long enough to have a
/// full bucket again are forgotten (they lose nothing by it).
const MAX_TRACKED_ADDRESSES: usize = 100_000;

/// The limits in force, from ca.json's `limits` block.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub max_connections: usize,
    pub max_connections_per_address: usize,
    pub max_header_bytes: usize,
    /// For the TLS handshake, which comes before any request: short, so that connections that
    /// never speak give their slot back soon.
    pub handshake_timeout: Duration,
    pub read_timeout: Duration,
    /// Bytes of request bodies in memory at once, over every listener of the process: the
    /// listeners built from one `Limits` (and its clones) share it.
    pub body_memory: BodyBudget,
    /// ACME's per-address limits.
    pub acme: AddressLimitSettings,
    /// Requests a second per address to the unauthenticated routes, and the burst; `None` when
    /// turned off.
    pub rate: Option<(f64, u32)>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_address: DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            read_timeout: DEFAULT_READ_TIMEOUT,
            body_memory: BodyBudget::new(DEFAULT_MAX_BODY_MEMORY),
            acme: AddressLimitSettings::default(),
            rate: Some((DEFAULT_RATE, burst_for(DEFAULT_RATE))),
        }
    }
}

fn burst_for(per_second: f64) -> u32 {
    // Saturating float-to-int: a huge rate gives the largest burst there is.
    ((per_second * 2.0).ceil() as u32).max(1)
}

impl Limits {
    /// Reads ca.json's `limits`; absent fields keep their defaults. Errors name the field.
    pub fn from_config(config: Option<&LimitsConfig>) -> anyhow::Result<Limits> {
        let mut limits = Limits::default();
        let Some(config) = config else {
            return Ok(limits);
        };
        if let Some(max) = config.max_connections {
            if max == 0 {
                bail!("limits.maxConnections must be at least 1");
            }
            limits.max_connections = max;
        }
        if let Some(max) = config.max_connections_per_address {
            if max == 0 {
                bail!("limits.maxConnectionsPerAddress must be at least 1");
            }
            limits.max_connections_per_address = max;
        }
        if let Some(timeout) = config.handshake_timeout {
            let timeout = Duration::try_from(timeout.0).ok().filter(|t| !t.is_zero());
            match timeout {
                Some(timeout) => limits.handshake_timeout = timeout,
                None => {
                    bail!("limits.handshakeTimeout must be a positive duration such as \"5s\"")
                }
            }
        }
        if let Some(bytes) = config.max_body_memory {
            if bytes < MAX_BODY_BYTES {
                bail!(
                    "limits.maxBodyMemory is {bytes}: it must be at least {MAX_BODY_BYTES}, the largest body"
                );
            }
            limits.body_memory = BodyBudget::new(bytes);
        }
        if let Some(acme) = &config.acme {
            let settings = &mut limits.acme;
            if let Some(rate) = acme.nonces_per_second {
                if !rate.is_finite() || rate <= 0.0 {
                    bail!("limits.acme.noncesPerSecond is {rate}: it must be more than 0");
                }
                settings.nonce_requests_per_second = rate;
            }
            for (value, field, target) in [
                (
                    acme.nonce_burst,
                    "nonceBurst",
                    &mut settings.nonce_request_burst,
                ),
                (
                    acme.unused_nonces,
                    "unusedNonces",
                    &mut settings.live_nonces,
                ),
                (
                    acme.accounts_per_hour,
                    "accountsPerHour",
                    &mut settings.accounts_per_hour,
                ),
            ] {
                match value {
                    Some(0) => bail!("limits.acme.{field} must be at least 1"),
                    Some(value) => *target = value,
                    None => {}
                }
            }
        }
        if let Some(bytes) = config.max_header_bytes {
            if bytes < MIN_HEADER_BYTES {
                bail!("limits.maxHeaderBytes is {bytes}: it must be at least {MIN_HEADER_BYTES}");
            }
            limits.max_header_bytes = bytes;
        }
        if let Some(timeout) = config.read_timeout {
            let timeout = Duration::try_from(timeout.0).ok().filter(|t| !t.is_zero());
            match timeout {
                Some(timeout) => limits.read_timeout = timeout,
                None => bail!("limits.readTimeout must be a positive duration such as \"15s\""),
            }
        }
        if let Some(rate) = &config.rate_limit {
            if !rate.per_second.is_finite() || rate.per_second < 0.0 {
                bail!(
                    "limits.rateLimit.perSecond is {}: it must be 0 (off) or more",
                    rate.per_second
                );
            }
            limits.rate = if rate.per_second == 0.0 {
                None
            } else {
                let burst = rate.burst.unwrap_or_else(|| burst_for(rate.per_second));
                if burst == 0 {
                    bail!("limits.rateLimit.burst must be at least 1");
                }
                Some((rate.per_second, burst))
            };
        }
        Ok(limits)
    }
}

/// Counts a refusal by `limit`.
pub fn refused(limit: &'static str) {
    metrics::counter!(LIMITED, "limit" => limit).increment(1);
}

/// A token bucket per client address.
pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl RateLimiter {
    pub fn new(per_second: f64, burst: u32) -> RateLimiter {
        RateLimiter {
            per_second,
            burst: f64::from(burst),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request's token for `address` at `now`; `Err` with how long until one is
    /// available when there is none.
    pub fn check(&self, address: IpAddr, now: Instant) -> Result<(), Duration> {
        let address = mayfly_acme::limits::client_key(address);
        let mut buckets = match self.buckets.lock() {
            Ok(buckets) => buckets,
            Err(poisoned) => poisoned.into_inner(),
        };
        if buckets.len() >= MAX_TRACKED_ADDRESSES && !buckets.contains_key(&address) {
            let refill = Duration::from_secs_f64(self.burst / self.per_second);
            buckets.retain(|_, bucket| now.duration_since(bucket.updated) < refill);
        }
        let bucket = buckets.entry(address).or_insert(Bucket {
            tokens: self.burst,
            updated: now,
        });
        let elapsed = now.duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.per_second).min(self.burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - bucket.tokens) / self.per_second,
            ))
        }
    }
}

/// The memory that request bodies may hold at once, in KiB permits. One budget serves every
/// listener of the process (TLS API, plain HTTP, metrics): a client that fills it on one
/// listener cannot gain another budget's worth by sending to the next.
#[derive(Debug, Clone)]
pub struct BodyBudget {
    bytes: usize,
    permits: Arc<Semaphore>,
}

impl BodyBudget {
    pub fn new(bytes: usize) -> Self {
        Self {
            bytes,
            permits: Arc::new(Semaphore::new(kib(bytes))),
        }
    }

    /// Whether `other` draws on the same memory.
    pub fn shared_with(&self, other: &BodyBudget) -> bool {
        Arc::ptr_eq(&self.permits, &other.permits)
    }
}

/// Two budgets of one size compare equal (what a configuration comparison asks); whether they
/// are one budget is [`BodyBudget::shared_with`].
impl PartialEq for BodyBudget {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

fn kib(bytes: usize) -> usize {
    bytes.div_ceil(1024)
}

/// The largest body `path` takes: a CSR and a token are a few KiB (a CSR is at most 64 KiB of
/// DER, which PEM and JSON make 90), an ACME request is at most what the ACME parser reads. An
/// OCSP request is a few KiB, but one too large for the responder is still answered in OCSP
/// (`malformedRequest`), which OCSP clients understand, up to 64 KiB.
pub fn body_limit(path: &str) -> usize {
    const API: usize = 128 * 1024;
    const OCSP: usize = 64 * 1024;
    if path.starts_with("/acme/") || path.starts_with("/2.0/acme/") {
        mayfly_acme::jws::MAX_BODY_LEN
    } else if path == "/ocsp" || path.starts_with("/ocsp/") {
        OCSP
    } else {
        API.min(MAX_BODY_BYTES)
    }
}

/// Middleware: reads the request body whole before the handler runs, within `readTimeout`
/// (408 after it), within the route's [`body_limit`] (413 past it), and within the process's
/// [`BodyBudget`] (503 with Retry-After when the bodies in flight hold it all). A client
/// trickling its body a byte at a time holds a connection for `readTimeout` at most, whatever
/// the route; a thousand clients sending large bodies at once hold the budget at most.
pub async fn read_body(request: Request, next: Next) -> Response {
    let timeout = request
        .extensions()
        .get::<BodyTimeout>()
        .map_or(DEFAULT_READ_TIMEOUT, |timeout| timeout.0);
    let limit = body_limit(request.uri().path());
    let too_large = || {
        refused("body_size");
        RequestError::BodyOverRouteLimit { limit }.into_response()
    };
    // An announced length over the limit is refused before a byte of it is read.
    let announced = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if announced.is_some_and(|length| length > limit as u64) {
        return too_large();
    }
    if announced == Some(0) {
        return next.run(request).await;
    }
    // The memory is reserved before the body is read: what was announced, or the route's
    // limit when nothing was.
    let reserve = announced.map_or(limit, |length| usize::try_from(length).unwrap_or(limit));
    let budget = request.extensions().get::<BodyBudget>().cloned();
    let _reserved = match &budget {
        Some(budget) => {
            let permits = u32::try_from(kib(reserve).max(1)).unwrap_or(u32::MAX);
            match Arc::clone(&budget.permits).try_acquire_many_owned(permits) {
                Ok(permit) => Some(permit),
                Err(_) => {
                    refused("body_memory");
                    return RequestError::BodyMemoryFull.into_response();
                }
            }
        }
        None => None,
    };
    let (parts, body) = request.into_parts();
    match tokio::time::timeout(timeout, axum::body::to_bytes(body, limit)).await {
        Ok(Ok(bytes)) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Ok(Err(_)) => too_large(),
        Err(_) => {
            refused("body_timeout");
            RequestError::BodyTimeout { after: timeout }.into_response()
        }
    }
}

/// Middleware: refuses a request with 429 and `Retry-After` when its address has no token left.
pub async fn rate_limit(
    State(limiter): State<Arc<RateLimiter>>,
    request: Request,
    next: Next,
) -> Response {
    let address = request
        .extensions()
        .get::<PeerCertificates>()
        .map(|peer| peer.remote.ip());
    if let Some(address) = address
        && let Err(wait) = limiter.check(address, Instant::now())
    {
        refused("rate");
        // Whole seconds, rounded up: Retry-After takes no fractions.
        let retry_after_seconds = wait
            .as_secs()
            .saturating_add(u64::from(wait.subsec_nanos() > 0))
            .max(1);
        return RequestError::RateLimited {
            address,
            per_second: limiter.per_second,
            retry_after_seconds,
        }
        .into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use mayfly_config::config::RateLimitConfig;

    #[test]
    fn the_addresses_of_one_ipv6_64_draw_on_one_bucket() {
        let limiter = RateLimiter::new(1.0, 2);
        let now = Instant::now();
        let host = |text: &str| -> IpAddr { text.parse().unwrap() };
        assert!(limiter.check(host("2001:db8:0:1::1"), now).is_ok());
        assert!(limiter.check(host("2001:db8:0:1::2"), now).is_ok());
        assert!(limiter.check(host("2001:db8:0:1:ffff::3"), now).is_err());
        assert!(limiter.check(host("2001:db8:0:2::1"), now).is_ok());
    }

    #[test]
    fn a_bucket_allows_its_burst_then_the_rate() {
        let limiter = RateLimiter::new(2.0, 3);
        let start = Instant::now();
        let address: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..3 {
            assert!(limiter.check(address, start).is_ok());
        }
        let wait = limiter.check(address, start).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(limiter.check(other, start).is_ok(), "addresses are apart");
        assert!(
            limiter
                .check(address, start + Duration::from_millis(500))
                .is_ok()
        );
        assert!(
            limiter
                .check(address, start + Duration::from_millis(600))
                .is_err()
        );
    }

    /// The TLS, plain-HTTP and metrics listeners each get a clone of the one `Limits`: what
    /// one of them holds is gone for the others.
    #[test]
    fn clones_of_the_limits_draw_on_one_body_budget() {
        let config = LimitsConfig {
            max_body_memory: Some(MAX_BODY_BYTES),
            ..Default::default()
        };
        let limits = Limits::from_config(Some(&config)).unwrap();
        let (tls, plain) = (limits.clone(), limits.clone());
        assert!(tls.body_memory.shared_with(&plain.body_memory));
        let all = u32::try_from(kib(MAX_BODY_BYTES)).unwrap();
        let held = Arc::clone(&tls.body_memory.permits)
            .try_acquire_many_owned(all)
            .unwrap();
        assert!(plain.body_memory.permits.try_acquire().is_err());
        drop(held);
        assert!(plain.body_memory.permits.try_acquire().is_ok());
        // Another configuration read is another process's worth: its own budget.
        let other = Limits::from_config(Some(&config)).unwrap();
        assert_eq!(other, limits);
        assert!(!other.body_memory.shared_with(&limits.body_memory));
    }

    #[test]
    fn limits_are_read_with_defaults_and_bad_values_named() {
        assert_eq!(Limits::from_config(None).unwrap(), Limits::default());
        let off = LimitsConfig {
            rate_limit: Some(RateLimitConfig {
                per_second: 0.0,
                burst: None,
            }),
            ..Default::default()
        };
        assert_eq!(Limits::from_config(Some(&off)).unwrap().rate, None);
        let bad = [
            (
                LimitsConfig {
                    max_connections: Some(0),
                    ..Default::default()
                },
                "limits.maxConnections",
            ),
            (
                LimitsConfig {
                    max_header_bytes: Some(100),
                    ..Default::default()
                },
                "limits.maxHeaderBytes",
            ),
            (
                LimitsConfig {
                    max_connections_per_address: Some(0),
                    ..Default::default()
                },
                "limits.maxConnectionsPerAddress",
            ),
            (
                LimitsConfig {
                    handshake_timeout: Some(mayfly_config::duration::GoDuration(
                        time::Duration::ZERO,
                    )),
                    ..Default::default()
                },
                "limits.handshakeTimeout",
            ),
            (
                LimitsConfig {
                    max_body_memory: Some(1024),
                    ..Default::default()
                },
                "limits.maxBodyMemory",
            ),
            (
                LimitsConfig {
                    acme: Some(mayfly_config::config::AcmeLimitsConfig {
                        accounts_per_hour: Some(0),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                "limits.acme.accountsPerHour",
            ),
            (
                LimitsConfig {
                    acme: Some(mayfly_config::config::AcmeLimitsConfig {
                        nonces_per_second: Some(-2.0),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                "limits.acme.noncesPerSecond",
            ),
            (
                LimitsConfig {
                    read_timeout: Some(mayfly_config::duration::GoDuration(time::Duration::ZERO)),
                    ..Default::default()
                },
                "limits.readTimeout",
            ),
            (
                LimitsConfig {
                    rate_limit: Some(RateLimitConfig {
                        per_second: -1.0,
                        burst: None,
                    }),
                    ..Default::default()
                },
                "limits.rateLimit.perSecond",
            ),
            (
                LimitsConfig {
                    rate_limit: Some(RateLimitConfig {
                        per_second: 5.0,
                        burst: Some(0),
                    }),
                    ..Default::default()
                },
                "limits.rateLimit.burst",
            ),
        ];
        for (config, field) in bad {
            let error = Limits::from_config(Some(&config)).unwrap_err().to_string();
            assert!(error.contains(field), "{error}");
        }
    }
}
