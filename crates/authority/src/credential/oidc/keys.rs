//! An OpenID provider's issuer and signing keys: its discovery document and JWKS, fetched over
//! HTTPS through the server's client ([`Fetch`]: this crate makes no connections) and cached
//! per provisioner.
//!
//! The cache lives as long as the JWKS response says (`Cache-Control: max-age`, within bounds;
//! 12 hours when it says nothing, as step-ca). A token signed with a key the cache does not
//! hold makes one early refetch, so a provider's key rotation is honoured at once; those
//! refetches draw on a small budget, so tokens with made-up key ids cannot make the CA hammer
//! the provider. While the provider cannot be reached, keys already fetched stay in use.

use std::sync::Arc;
use std::time::Duration;

use mayfly_pki::jose::jwk::Jwk;
use serde::Deserialize;
use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::store::BoxFuture;

/// The path a configuration endpoint gets when it does not name the document itself.
const WELL_KNOWN: &str = "/.well-known/openid-configuration";
/// How long keys are kept when the provider says nothing.
const DEFAULT_MAX_AGE: time::Duration = time::Duration::hours(12);
/// Bounds on what the provider may say: a `max-age=0` must not mean a fetch per token, nor a
/// large one keys that were rotated out for days.
const MIN_MAX_AGE: time::Duration = time::Duration::minutes(1);
const MAX_MAX_AGE: time::Duration = time::Duration::hours(24);
/// After a failed fetch, stale keys serve this long before the next try.
const RETRY_AFTER_FAILURE: time::Duration = time::Duration::minutes(1);
/// Early refetches for unknown key ids: at most this many in a row, then one per interval.
const REFETCH_BURST: u32 = 3;
const REFETCH_INTERVAL: time::Duration = time::Duration::seconds(20);

/// What a fetch returned.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub body: Vec<u8>,
    /// The response's `Cache-Control: max-age`.
    pub max_age: Option<Duration>,
}

/// An HTTPS client for the provider's documents, which the server supplies.
pub trait Fetch: Send + Sync + std::fmt::Debug {
    /// GETs `url` (always https): a 200's body, or why not, for the log.
    fn get<'a>(&'a self, url: &'a str) -> BoxFuture<'a, std::result::Result<Fetched, String>>;
}

/// The discovery URL for a configured `configurationEndpoint`: the well-known path is added
/// when the URL does not name it already (step-ca's rule). Only https: the keys fetched there
/// decide who gets certificates.
pub fn discovery_url(configured: &str) -> std::result::Result<String, String> {
    let mut url = https_url(configured)?;
    if !url.path().contains(WELL_KNOWN) {
        let path = format!("{}{WELL_KNOWN}", url.path().trim_end_matches('/'));
        url.set_path(&path);
    }
    Ok(url.to_string())
}

fn https_url(text: &str) -> std::result::Result<url::Url, String> {
    let url = url::Url::parse(text.trim()).map_err(|e| format!("{text:?} is not a URL: {e}"))?;
    if url.scheme() != "https" {
        return Err(format!("{text:?} is not an https URL"));
    }
    Ok(url)
}

/// The provider's keys at one moment.
#[derive(Debug)]
pub struct Snapshot {
    /// The `issuer` of the discovery document, which tokens must name exactly.
    pub issuer: String,
    keys: Vec<Jwk>,
    expires_at: OffsetDateTime,
}

impl Snapshot {
    /// The signing keys a token's `kid` may mean: those with that id, or all without one.
    fn matching(&self, kid: Option<&str>) -> Vec<Jwk> {
        self.keys
            .iter()
            .filter(|key| key.use_.as_deref().is_none_or(|u| u == "sig"))
            .filter(|key| kid.is_none_or(|kid| key.kid.as_deref() == Some(kid)))
            .cloned()
            .collect()
    }
}

/// A provisioner's view of its provider.
#[derive(Debug)]
pub struct ProviderKeys {
    provisioner: String,
    discovery_url: String,
    state: tokio::sync::Mutex<State>,
}

#[derive(Debug)]
struct State {
    current: Option<Arc<Snapshot>>,
    refetches: u32,
    refilled_at: Option<OffsetDateTime>,
}

impl State {
    /// Takes one early refetch from the budget, if there is one left.
    fn take_refetch(&mut self, now: OffsetDateTime) -> bool {
        let refilled_at = *self.refilled_at.get_or_insert(now);
        let earned = (now - refilled_at).whole_seconds() / REFETCH_INTERVAL.whole_seconds();
        if earned > 0 {
            let earned = u32::try_from(earned).unwrap_or(u32::MAX);
            self.refetches = self.refetches.saturating_add(earned).min(REFETCH_BURST);
            self.refilled_at = Some(now);
        }
        if self.refetches == 0 {
            return false;
        }
        self.refetches -= 1;
        true
    }
}

/// The document at the discovery URL, in the parts used here.
#[derive(Deserialize)]
struct Discovery {
    #[serde(default)]
    issuer: String,
    #[serde(default)]
    jwks_uri: String,
}

#[derive(Deserialize)]
struct KeySet {
    keys: Vec<serde_json::Value>,
}

impl ProviderKeys {
    pub fn new(provisioner: &str, discovery_url: String) -> Self {
        Self {
            provisioner: provisioner.to_string(),
            discovery_url,
            state: tokio::sync::Mutex::new(State {
                current: None,
                refetches: REFETCH_BURST,
                refilled_at: None,
            }),
        }
    }

    pub fn discovery_url(&self) -> &str {
        &self.discovery_url
    }

    /// The provider's issuer and the keys that may have signed a token naming `kid`; the
    /// keys are empty when none matches even after a refetch (or when the budget for those
    /// is spent).
    pub async fn keys_for(
        &self,
        kid: Option<&str>,
        fetch: &dyn Fetch,
        now: OffsetDateTime,
    ) -> Result<(Arc<Snapshot>, Vec<Jwk>)> {
        // Held across the fetch: concurrent first tokens wait for one fetch, not make many.
        let mut state = self.state.lock().await;
        let snapshot = match &state.current {
            Some(current) if now < current.expires_at => Arc::clone(current),
            stale => {
                let stale = stale.clone();
                self.refresh(&mut state, stale, fetch, now).await?
            }
        };
        let keys = snapshot.matching(kid);
        if !keys.is_empty() || !state.take_refetch(now) {
            return Ok((snapshot, keys));
        }
        tracing::info!(
            provisioner = %self.provisioner,
            kid = kid.unwrap_or(""),
            "OIDC token signed with a key not in the cached JWKS: fetching it again"
        );
        let snapshot = self.refresh(&mut state, Some(snapshot), fetch, now).await?;
        let keys = snapshot.matching(kid);
        Ok((snapshot, keys))
    }

    /// Fetches the documents again; on failure, `stale` keys (if any) serve a while longer.
    async fn refresh(
        &self,
        state: &mut State,
        stale: Option<Arc<Snapshot>>,
        fetch: &dyn Fetch,
        now: OffsetDateTime,
    ) -> Result<Arc<Snapshot>> {
        match self.fetch(fetch, now).await {
            Ok(fresh) => {
                let fresh = Arc::new(fresh);
                state.current = Some(Arc::clone(&fresh));
                Ok(fresh)
            }
            Err(reason) => {
                tracing::warn!(
                    provisioner = %self.provisioner,
                    url = %self.discovery_url,
                    reason = %reason,
                    "cannot fetch the OpenID provider's keys"
                );
                match stale {
                    Some(stale) => {
                        let kept = Arc::new(Snapshot {
                            issuer: stale.issuer.clone(),
                            keys: stale.keys.clone(),
                            expires_at: now + RETRY_AFTER_FAILURE,
                        });
                        state.current = Some(Arc::clone(&kept));
                        Ok(kept)
                    }
                    None => Err(Error::OidcProviderUnavailable {
                        provisioner: self.provisioner.clone(),
                    }),
                }
            }
        }
    }

    async fn fetch(
        &self,
        fetch: &dyn Fetch,
        now: OffsetDateTime,
    ) -> std::result::Result<Snapshot, String> {
        let document = fetch.get(&self.discovery_url).await?;
        let discovery: Discovery = serde_json::from_slice(&document.body)
            .map_err(|e| format!("{}: not a discovery document: {e}", self.discovery_url))?;
        if discovery.issuer.is_empty() {
            return Err(format!("{}: \"issuer\" is empty", self.discovery_url));
        }
        let jwks_uri = https_url(&discovery.jwks_uri)
            .map_err(|e| format!("{}: \"jwks_uri\": {e}", self.discovery_url))?;
        let jwks = fetch.get(jwks_uri.as_str()).await?;
        let set: KeySet = serde_json::from_slice(&jwks.body)
            .map_err(|e| format!("{jwks_uri}: not a JWK set: {e}"))?;
        // A key this CA cannot read (another key type) is skipped, not fatal: the others may
        // be the ones tokens are signed with.
        let keys: Vec<Jwk> = set
            .keys
            .into_iter()
            .filter_map(|key| serde_json::from_value::<Jwk>(key).ok())
            .filter(|key| key.d.is_none())
            .collect();
        if keys.is_empty() {
            return Err(format!("{jwks_uri}: no usable key"));
        }
        let max_age = jwks
            .max_age
            .and_then(|age| time::Duration::try_from(age).ok())
            .unwrap_or(DEFAULT_MAX_AGE)
            .clamp(MIN_MAX_AGE, MAX_MAX_AGE);
        Ok(Snapshot {
            issuer: discovery.issuer,
            keys,
            expires_at: now + max_age,
        })
    }
}

/// A provider's documents served from memory, for tests.
#[cfg(test)]
pub(crate) mod fake {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use super::{Fetch, Fetched};
    use crate::store::BoxFuture;

    /// Serves fixed documents by URL (none: the provider is down) and records the requests.
    #[derive(Debug, Default)]
    pub(crate) struct Documents {
        pub(crate) bodies: Mutex<HashMap<String, String>>,
        pub(crate) requests: Mutex<Vec<String>>,
    }

    impl Fetch for Documents {
        fn get<'a>(&'a self, url: &'a str) -> BoxFuture<'a, std::result::Result<Fetched, String>> {
            Box::pin(async move {
                self.requests.lock().unwrap().push(url.to_string());
                match self.bodies.lock().unwrap().get(url) {
                    Some(body) => Ok(Fetched {
                        body: body.clone().into_bytes(),
                        max_age: None,
                    }),
                    None => Err(format!("{url}: connection refused")),
                }
            })
        }
    }

    impl Documents {
        pub(crate) fn serve(&self, url: &str, body: serde_json::Value) {
            self.bodies
                .lock()
                .unwrap()
                .insert(url.to_string(), body.to_string());
        }

        pub(crate) fn requests(&self) -> usize {
            self.requests.lock().unwrap().len()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::Documents;
    use super::*;

    const DISCOVERY: &str = "https://idp.example/.well-known/openid-configuration";
    const JWKS: &str = "https://idp.example/jwks";

    fn provider(kids: &[&str]) -> Documents {
        let documents = Documents::default();
        let keys: Vec<serde_json::Value> = kids
            .iter()
            .map(|kid| serde_json::json!({"kty": "EC", "crv": "P-256", "x": "x", "y": "y", "kid": kid}))
            .collect();
        documents.serve(
            DISCOVERY,
            serde_json::json!({"issuer": "https://idp.example", "jwks_uri": JWKS}),
        );
        documents.serve(JWKS, serde_json::json!({ "keys": keys }));
        documents
    }

    fn at(seconds: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000 + seconds).unwrap()
    }

    fn kids(keys: &[Jwk]) -> Vec<String> {
        keys.iter().filter_map(|k| k.kid.clone()).collect()
    }

    #[test]
    fn the_well_known_path_is_added_unless_named_and_only_https_is_accepted() {
        assert_eq!(
            discovery_url("https://idp.example/realms/x").unwrap(),
            "https://idp.example/realms/x/.well-known/openid-configuration"
        );
        assert_eq!(discovery_url("https://idp.example/").unwrap(), DISCOVERY);
        assert_eq!(discovery_url(DISCOVERY).unwrap(), DISCOVERY);
        assert!(discovery_url("http://idp.example").is_err());
        assert!(discovery_url("idp.example").is_err());
    }

    #[tokio::test]
    async fn keys_are_fetched_once_and_served_from_the_cache() {
        let idp = provider(&["a"]);
        let keys = ProviderKeys::new("idp", DISCOVERY.into());
        let (snapshot, found) = keys.keys_for(Some("a"), &idp, at(0)).await.unwrap();
        assert_eq!(snapshot.issuer, "https://idp.example");
        assert_eq!(kids(&found), ["a"]);
        keys.keys_for(Some("a"), &idp, at(60)).await.unwrap();
        assert_eq!(idp.requests(), 2, "discovery and JWKS, once");
        // Past the default age the documents are fetched again.
        keys.keys_for(Some("a"), &idp, at(12 * 3600)).await.unwrap();
        assert_eq!(idp.requests(), 4);
    }

    #[tokio::test]
    async fn an_unknown_key_id_refetches_so_a_rotation_is_seen_at_once() {
        let idp = provider(&["old"]);
        let keys = ProviderKeys::new("idp", DISCOVERY.into());
        keys.keys_for(Some("old"), &idp, at(0)).await.unwrap();
        idp.serve(
            JWKS,
            serde_json::json!({"keys": [{"kty": "EC", "crv": "P-256", "x": "x", "y": "y", "kid": "new"}]}),
        );
        let (_, found) = keys.keys_for(Some("new"), &idp, at(1)).await.unwrap();
        assert_eq!(kids(&found), ["new"]);
    }

    #[tokio::test]
    async fn refetches_for_unknown_key_ids_are_rate_limited() {
        let idp = provider(&["a"]);
        let keys = ProviderKeys::new("idp", DISCOVERY.into());
        keys.keys_for(Some("a"), &idp, at(0)).await.unwrap();
        let fetched = || idp.requests();
        for _ in 0..REFETCH_BURST {
            let before = fetched();
            let (_, found) = keys.keys_for(Some("made-up"), &idp, at(1)).await.unwrap();
            assert!(found.is_empty());
            assert_eq!(fetched(), before + 2);
        }
        // The burst is spent: no fetch until the interval has passed.
        let before = fetched();
        keys.keys_for(Some("made-up"), &idp, at(2)).await.unwrap();
        assert_eq!(fetched(), before);
        keys.keys_for(
            Some("made-up"),
            &idp,
            at(1 + REFETCH_INTERVAL.whole_seconds()),
        )
        .await
        .unwrap();
        assert_eq!(fetched(), before + 2);
    }

    #[tokio::test]
    async fn stale_keys_serve_while_the_provider_is_down_and_none_is_an_error() {
        let idp = provider(&["a"]);
        let keys = ProviderKeys::new("idp", DISCOVERY.into());
        keys.keys_for(Some("a"), &idp, at(0)).await.unwrap();
        idp.bodies.lock().unwrap().clear();
        let (_, found) = keys.keys_for(Some("a"), &idp, at(13 * 3600)).await.unwrap();
        assert_eq!(kids(&found), ["a"]);

        let fresh = ProviderKeys::new("idp", DISCOVERY.into());
        let error = fresh.keys_for(Some("a"), &idp, at(0)).await.unwrap_err();
        assert!(
            matches!(error, Error::OidcProviderUnavailable { .. }),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_discovery_document_must_name_an_issuer_and_an_https_key_set() {
        for document in [
            serde_json::json!({"jwks_uri": JWKS}),
            serde_json::json!({"issuer": "https://idp.example", "jwks_uri": "http://idp.example/jwks"}),
        ] {
            let idp = provider(&["a"]);
            idp.serve(DISCOVERY, document);
            let keys = ProviderKeys::new("idp", DISCOVERY.into());
            assert!(keys.keys_for(Some("a"), &idp, at(0)).await.is_err());
        }
    }
}
