//! What one client address may ask of the unauthenticated parts of ACME: nonces (each a
//! database row until it is used or expires) and accounts (each a row for good). Without these
//! limits one client made 1,357 nonces a second and 300 accounts in 2.5 s.
//!
//! Kept in each instance's memory, per address: a token bucket for `newNonce` requests, a
//! count of the nonces handed to the address and not yet used by it, and a token bucket for new
//! accounts. An instance behind a load balancer limits what reaches it; several instances let
//! a client that many times the limit, which stays bounded.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// The client a limit counts an address against: an IPv4 address itself, an IPv6 address by its
/// /64 network (a host is given a whole /64 and picks addresses in it at will, so counting its
/// addresses one by one would multiply every per-client limit by 2^64), and an IPv4-mapped IPv6
/// address as the IPv4 one it is. Every per-address limit of the CA (connection share, request
/// rates, ACME nonces and accounts) keys its count by this.
pub fn client_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let network = u128::from(v6) & !u128::from(u64::MAX);
                IpAddr::V6(std::net::Ipv6Addr::from(network))
            }
        },
    }
}

/// The limits, per client address.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AddressLimitSettings {
    /// `newNonce` requests per second...
    pub nonce_requests_per_second: f64,
    /// ...in bursts of up to this many.
    pub nonce_request_burst: u32,
    /// Nonces handed to one address and not used by it, at most; a nonce the address never
    /// uses stops counting once it has expired (after `nonce_lifetime`).
    pub live_nonces: u32,
    pub nonce_lifetime: Duration,
    /// New accounts per hour, in bursts of up to this many.
    pub accounts_per_hour: u32,
}

impl Default for AddressLimitSettings {
    fn default() -> Self {
        Self {
            nonce_requests_per_second: 20.0,
            nonce_request_burst: 50,
            live_nonces: 1000,
            nonce_lifetime: Duration::from_secs(3600),
            accounts_per_hour: 20,
        }
    }
}

/// More addresses than this are not tracked at once: the oldest entries are dropped first.
const MAX_TRACKED_ADDRESSES: usize = 16_384;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl Bucket {
    fn full(capacity: f64, now: Instant) -> Self {
        Self {
            tokens: capacity,
            updated: now,
        }
    }

    /// Takes a token; `Err` with the wait until one is back.
    fn take(&mut self, capacity: f64, per_second: f64, now: Instant) -> Result<(), Duration> {
        let elapsed = now.duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * per_second).min(capacity);
        self.updated = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / per_second))
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct AddressState {
    nonce_requests: Bucket,
    accounts: Bucket,
    /// Nonces handed out and not used by this address since `window`; reset once a whole
    /// nonce lifetime has passed, when every nonce counted has expired.
    live: u32,
    window: Instant,
    seen: Instant,
}

/// The per-address limits of one ACME service.
#[derive(Debug)]
pub struct AddressLimits {
    settings: AddressLimitSettings,
    addresses: Mutex<HashMap<IpAddr, AddressState>>,
}

impl AddressLimits {
    pub fn new(settings: AddressLimitSettings) -> Self {
        Self {
            settings,
            addresses: Mutex::new(HashMap::new()),
        }
    }

    /// Runs `act` on the state of `address` as of `now` (the monotonic clock, injected so that
    /// tests can pin each window).
    fn with<T>(
        &self,
        address: IpAddr,
        now: Instant,
        act: impl FnOnce(&mut AddressState, Instant) -> T,
    ) -> T {
        let address = client_key(address);
        let mut addresses = match self.addresses.lock() {
            Ok(addresses) => addresses,
            Err(poisoned) => poisoned.into_inner(),
        };
        if addresses.len() >= MAX_TRACKED_ADDRESSES && !addresses.contains_key(&address) {
            // Forget the addresses idle for longest: their buckets have refilled anyway.
            let mut seen: Vec<Instant> = addresses.values().map(|s| s.seen).collect();
            seen.sort_unstable();
            let cutoff = seen[seen.len() / 2];
            addresses.retain(|_, state| state.seen > cutoff);
        }
        let settings = &self.settings;
        let state = addresses.entry(address).or_insert_with(|| AddressState {
            nonce_requests: Bucket::full(f64::from(settings.nonce_request_burst), now),
            accounts: Bucket::full(f64::from(settings.accounts_per_hour), now),
            live: 0,
            window: now,
            seen: now,
        });
        state.seen = now;
        if now.duration_since(state.window) >= settings.nonce_lifetime {
            state.live = 0;
            state.window = now;
        }
        act(state, now)
    }

    /// A `newNonce` request from `address`.
    pub fn nonce_request(&self, address: IpAddr) -> Result<()> {
        self.nonce_request_at(address, Instant::now())
    }

    fn nonce_request_at(&self, address: IpAddr, now: Instant) -> Result<()> {
        let settings = self.settings;
        self.with(address, now, |state, now| {
            state
                .nonce_requests
                .take(
                    f64::from(settings.nonce_request_burst),
                    settings.nonce_requests_per_second,
                    now,
                )
                .map_err(|wait| Error::RateLimited {
                    detail: format!(
                        "{address} asked for more than {} nonces a second",
                        settings.nonce_requests_per_second
                    ),
                    retry_after_seconds: wait.as_secs().max(1),
                })
        })
    }

    /// A nonce is about to be handed to `address`.
    pub fn nonce_issued(&self, address: IpAddr) -> Result<()> {
        self.nonce_issued_at(address, Instant::now())
    }

    fn nonce_issued_at(&self, address: IpAddr, now: Instant) -> Result<()> {
        let settings = self.settings;
        self.with(address, now, |state, now| {
            if state.live >= settings.live_nonces {
                let left = settings
                    .nonce_lifetime
                    .saturating_sub(now.duration_since(state.window));
                return Err(Error::RateLimited {
                    detail: format!(
                        "{address} holds {} unused nonces, the most one address may",
                        state.live
                    ),
                    retry_after_seconds: left.as_secs().max(1),
                });
            }
            state.live += 1;
            Ok(())
        })
    }

    /// `address` used one of its nonces.
    pub fn nonce_used(&self, address: IpAddr) {
        self.nonce_used_at(address, Instant::now());
    }

    fn nonce_used_at(&self, address: IpAddr, now: Instant) {
        self.with(address, now, |state, _| {
            state.live = state.live.saturating_sub(1)
        });
    }

    /// `address` is about to create an account.
    pub fn new_account(&self, address: IpAddr) -> Result<()> {
        self.new_account_at(address, Instant::now())
    }

    fn new_account_at(&self, address: IpAddr, now: Instant) -> Result<()> {
        let settings = self.settings;
        self.with(address, now, |state, now| {
            state
                .accounts
                .take(
                    f64::from(settings.accounts_per_hour),
                    f64::from(settings.accounts_per_hour) / 3600.0,
                    now,
                )
                .map_err(|wait| Error::RateLimited {
                    detail: format!(
                        "{address} created {} accounts within the hour, the most one address may",
                        settings.accounts_per_hour
                    ),
                    retry_after_seconds: wait.as_secs().max(1),
                })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_is_an_ipv4_address_or_an_ipv6_64() {
        let key = |text: &str| client_key(text.parse().unwrap()).to_string();
        assert_eq!(key("192.0.2.7"), "192.0.2.7");
        assert_eq!(key("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(key("2001:db8:1:2:aaaa:bbbb:cccc:dddd"), "2001:db8:1:2::");
        assert_eq!(key("2001:db8:1:2::1"), key("2001:db8:1:2:ffff::9"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
    }

    #[test]
    fn addresses_of_one_ipv6_64_share_their_limits() {
        let limits = limits(AddressLimitSettings {
            nonce_requests_per_second: 1.0,
            nonce_request_burst: 2,
            ..AddressLimitSettings::default()
        });
        let now = Instant::now();
        let host = |last: u16| IpAddr::from([0x2001, 0xdb8, 0, 1, 0, 0, 0, last]);
        assert!(limits.nonce_request_at(host(1), now).is_ok());
        assert!(limits.nonce_request_at(host(2), now).is_ok());
        // A third address of the same /64: the same client, out of its burst.
        assert!(limits.nonce_request_at(host(3), now).is_err());
        // Another /64 is another client.
        let other = IpAddr::from([0x2001, 0xdb8, 0, 2, 0, 0, 0, 1]);
        assert!(limits.nonce_request_at(other, now).is_ok());
    }

    fn limits(settings: AddressLimitSettings) -> AddressLimits {
        AddressLimits::new(settings)
    }

    #[test]
    fn nonce_requests_are_rate_limited_per_address() {
        let l = limits(AddressLimitSettings {
            nonce_request_burst: 3,
            nonce_requests_per_second: 0.001,
            ..Default::default()
        });
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..3 {
            l.nonce_request(a).unwrap();
        }
        let Err(Error::RateLimited {
            retry_after_seconds,
            ..
        }) = l.nonce_request(a)
        else {
            panic!("the fourth request in a burst of three passed");
        };
        assert!(retry_after_seconds >= 1);
        l.nonce_request(b)
            .expect("another address has its own bucket");
    }

    #[test]
    fn live_nonces_are_capped_net_of_those_used() {
        let l = limits(AddressLimitSettings {
            live_nonces: 2,
            ..Default::default()
        });
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        l.nonce_issued(a).unwrap();
        l.nonce_issued(a).unwrap();
        assert!(matches!(l.nonce_issued(a), Err(Error::RateLimited { .. })));
        // A client that uses its nonces, as every ACME client does, is never stopped.
        for _ in 0..10 {
            l.nonce_used(a);
            l.nonce_issued(a).unwrap();
        }
        let expired = limits(AddressLimitSettings {
            live_nonces: 1,
            nonce_lifetime: Duration::ZERO,
            ..Default::default()
        });
        expired.nonce_issued(a).unwrap();
        expired
            .nonce_issued(a)
            .expect("nonces older than their lifetime no longer count");
    }

    #[test]
    fn accounts_are_limited_per_address() {
        let l = limits(AddressLimitSettings {
            accounts_per_hour: 2,
            ..Default::default()
        });
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        l.new_account(a).unwrap();
        l.new_account(a).unwrap();
        let error = l.new_account(a).unwrap_err();
        assert!(error.to_string().contains("2 accounts"), "{error}");
    }

    fn retry_after(result: Result<()>) -> u64 {
        match result {
            Err(Error::RateLimited {
                retry_after_seconds,
                ..
            }) => retry_after_seconds,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    /// The nonce bucket refills at its rate: a token per 1/rate seconds, never above the burst.
    #[test]
    fn the_nonce_bucket_refills_at_its_rate_up_to_its_burst() {
        let l = limits(AddressLimitSettings {
            nonce_request_burst: 2,
            nonce_requests_per_second: 2.0,
            ..Default::default()
        });
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let t0 = Instant::now();
        l.nonce_request_at(a, t0).unwrap();
        l.nonce_request_at(a, t0).unwrap();
        assert_eq!(retry_after(l.nonce_request_at(a, t0)), 1);
        // Half a second brings one token back (2 a second), not two.
        let t1 = t0 + Duration::from_millis(500);
        l.nonce_request_at(a, t1).unwrap();
        assert!(l.nonce_request_at(a, t1).is_err());
        // A long pause refills to the burst and no further.
        let t2 = t1 + Duration::from_secs(3600);
        l.nonce_request_at(a, t2).unwrap();
        l.nonce_request_at(a, t2).unwrap();
        assert!(l.nonce_request_at(a, t2).is_err());
    }

    /// Unused nonces stop counting once a whole nonce lifetime has passed since the window
    /// opened; a moment before, they still count, and the refusal says how long is left.
    #[test]
    fn unused_nonces_count_for_one_nonce_lifetime() {
        let lifetime = Duration::from_secs(3600);
        let l = limits(AddressLimitSettings {
            live_nonces: 1,
            nonce_lifetime: lifetime,
            ..Default::default()
        });
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let t0 = Instant::now();
        l.nonce_issued_at(a, t0).unwrap();
        let before = t0 + lifetime - Duration::from_secs(10);
        assert_eq!(retry_after(l.nonce_issued_at(a, before)), 10);
        l.nonce_issued_at(a, t0 + lifetime)
            .expect("a lifetime after the window opened, the old nonces have expired");
        assert!(l.nonce_issued_at(a, t0 + lifetime).is_err());
    }

    /// Accounts: the burst at once, then one per 3600/limit seconds.
    #[test]
    fn accounts_come_back_one_per_hour_over_the_limit() {
        let l = limits(AddressLimitSettings {
            accounts_per_hour: 4,
            ..Default::default()
        });
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..4 {
            l.new_account_at(a, t0).unwrap();
        }
        // A token comes back every 900 s (the bucket counts in floating point).
        let wait = retry_after(l.new_account_at(a, t0));
        assert!((899..=900).contains(&wait), "{wait}");
        assert!(l.new_account_at(a, t0 + Duration::from_secs(899)).is_err());
        let t1 = t0 + Duration::from_secs(901);
        l.new_account_at(a, t1).unwrap();
        assert!(l.new_account_at(a, t1).is_err());
    }
}
