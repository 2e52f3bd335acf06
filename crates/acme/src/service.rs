//! The RFC 8555 state machine: one method per ACME resource.
//!
//! Each method takes the request (its URL, body and content type, as the server saw them) and
//! answers a [`Reply`] the server renders; it never sees HTTP types. Authentication comes first
//! in every POST (RFC 8555 6.2-6.5): content type, JWS form and algorithm, `url` equal to the
//! request URL, the key (`jwk` only for newAccount and revokeCert, `kid` otherwise), the
//! signature, then the single-use nonce. State transitions are compare-and-set in the store.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use mayfly_authority::Authority;
use mayfly_authority::provisioner::{AcmeProvisioner, AcmeSettings, Provisioner};
use mayfly_authority::revocation::ReasonCode;
use mayfly_authority::store::CertificateStatus;
use mayfly_pki::cert::{CertificateInfo, certificate_pem};
use mayfly_pki::jose::jwk::Jwk;
use mayfly_pki::{Csr, San};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::{Error, ProblemType, Result};
use crate::jws::{SignedRequest, payload};
use crate::limits::{AddressLimitSettings, AddressLimits};
use crate::model::{Account, Authorization, Challenge, Identifier, Order, Problem, rfc3339};
use crate::renewal;
use crate::store::{AccountRow, AcmeStore, AcmeStoreError, AuthorizationRow, OrderRow, Versioned};

/// How long a nonce stays usable.
const NONCE_LIFETIME: i64 = 3600;
/// How long an order (and its pending authorizations) may take to complete.
const ORDER_LIFETIME: i64 = 24 * 3600;
/// How long a valid authorization is reused for new orders of the same account.
const VALID_AUTHORIZATION_LIFETIME: i64 = 7 * 24 * 3600;
/// Orders listed by `account/{id}/orders`; older ones are left out.
const MAX_LISTED_ORDERS: u32 = 1000;
/// Identifiers per order.
const MAX_IDENTIFIERS: usize = 100;
/// Contacts one account may list: a few addresses to warn, not a mailing list.
const MAX_CONTACTS: usize = 10;
/// Validation attempts before a challenge fails, and the pause between them: a client may
/// answer the challenge a moment after it says it is ready.
const VALIDATION_ATTEMPTS: u32 = 3;
const VALIDATION_RETRY_PAUSE: std::time::Duration = std::time::Duration::from_secs(1);
/// Rate-limit window.
const RATE_WINDOW: i64 = 3600;
/// RFC 8555 media type of requests.
pub const JOSE_CONTENT_TYPE: &str = "application/jose+json";

/// A request as the server received it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// `https://host[:port]/acme/{provisioner}` (or under `/2.0/acme/`), without a final slash.
    pub base_url: &'a str,
    /// The full URL of this request, which the JWS `url` must equal.
    pub url: &'a str,
    pub content_type: Option<&'a str>,
    pub body: &'a [u8],
    /// The client's address, for the per-address limits; none for in-process callers.
    pub client: Option<IpAddr>,
}

/// What to answer.
#[derive(Debug, Clone)]
pub struct Reply {
    /// 201 instead of 200.
    pub created: bool,
    pub location: Option<String>,
    pub body: ReplyBody,
    /// `Link` header values (`<url>;rel="up"`).
    pub links: Vec<String>,
    pub retry_after: Option<u64>,
}

#[derive(Debug, Clone)]
pub enum ReplyBody {
    Json(Value),
    /// `application/pem-certificate-chain`.
    PemChain(String),
    Empty,
}

impl Reply {
    fn json(body: Value) -> Self {
        Reply {
            created: false,
            location: None,
            body: ReplyBody::Json(body),
            links: Vec::new(),
            retry_after: None,
        }
    }

    fn with_location(mut self, location: String) -> Self {
        self.location = Some(location);
        self
    }

    fn created(mut self) -> Self {
        self.created = true;
        self
    }
}

/// The ACME service over a store; the authority (which may be reloaded) is passed per call.
#[derive(Clone)]
pub struct Acme {
    store: Arc<dyn AcmeStore>,
    limits: Arc<AddressLimits>,
}

/// An authenticated request.
struct Authenticated {
    request: SignedRequest,
    payload: Vec<u8>,
    account: Option<(Account, i64)>,
}

impl Authenticated {
    fn account(&self) -> Result<&Account> {
        self.account
            .as_ref()
            .map(|(a, _)| a)
            .ok_or_else(|| Error::Internal("account expected after kid authentication".into()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyMode {
    Kid,
    Jwk,
    Either,
}

/// The provisioner the URL names, if it is an ACME one.
pub fn acme_provisioner<'a>(authority: &'a Authority, name: &str) -> Result<&'a AcmeProvisioner> {
    authority
        .provisioners()
        .iter()
        .find_map(|p| match p {
            Provisioner::Acme(acme) if acme.name == name => Some(acme.as_ref()),
            _ => None,
        })
        .ok_or_else(|| Error::NotFound(format!("ACME provisioner {name:?}")))
}

fn random_id() -> Result<String> {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| Error::Internal("no randomness".into()))?;
    Ok(B64.encode(bytes))
}

fn spki_sha256(spki_der: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, spki_der).as_ref())
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::Internal(format!("serialising: {e}")))
}

fn from_json<T: serde::de::DeserializeOwned>(what: &str, stored: &Versioned) -> Result<T> {
    serde_json::from_str(&stored.body)
        .map_err(|e| Error::Internal(format!("stored {what} {} unreadable: {e}", stored.id)))
}

impl Acme {
    pub fn new(store: Arc<dyn AcmeStore>) -> Self {
        Self::with_limits(store, AddressLimitSettings::default())
    }

    /// [`Acme::new`] with per-address limits other than the defaults.
    pub fn with_limits(store: Arc<dyn AcmeStore>, limits: AddressLimitSettings) -> Self {
        Self {
            store,
            limits: Arc::new(AddressLimits::new(limits)),
        }
    }

    /// A `newNonce` request from `client`: `Err` (rate limited) past its per-second budget.
    pub fn nonce_request(&self, client: Option<IpAddr>) -> Result<()> {
        match client {
            Some(client) => self.limits.nonce_request(client),
            None => Ok(()),
        }
    }

    /// Deletes expired nonces; the server calls it now and then.
    pub async fn prune_nonces(&self, authority: &Authority) -> Result<u64> {
        let now = authority.clock().now().unix_timestamp();
        Ok(self.store.prune_nonces(now).await?)
    }

    /// `GET directory` (RFC 8555 7.1.1).
    pub fn directory(&self, authority: &Authority, provisioner: &str, base: &str) -> Result<Reply> {
        let settings = &acme_provisioner(authority, provisioner)?.settings;
        let mut meta = json!({"externalAccountRequired": settings.require_eab});
        if let Some(terms) = &settings.terms_of_service {
            meta["termsOfService"] = json!(terms);
        }
        if let Some(website) = &settings.website {
            meta["website"] = json!(website);
        }
        Ok(Reply::json(json!({
            "newNonce": format!("{base}/new-nonce"),
            "newAccount": format!("{base}/new-account"),
            "newOrder": format!("{base}/new-order"),
            "revokeCert": format!("{base}/revoke-cert"),
            "keyChange": format!("{base}/key-change"),
            "renewalInfo": format!("{base}/renewal-info"),
            "meta": meta,
        })))
    }

    /// A fresh nonce for `client`, recorded so that any instance sharing the store accepts it
    /// once; `Err` (rate limited) while the client holds as many unused nonces as it may.
    pub async fn new_nonce(&self, authority: &Authority, client: Option<IpAddr>) -> Result<String> {
        if let Some(client) = client {
            self.limits.nonce_issued(client)?;
        }
        let nonce = random_id()?;
        let now = authority.clock().now().unix_timestamp();
        self.store
            .insert_nonce(&nonce, now + NONCE_LIFETIME)
            .await?;
        Ok(nonce)
    }

    async fn authenticate(
        &self,
        authority: &Authority,
        req: &Request<'_>,
        mode: KeyMode,
    ) -> Result<Authenticated> {
        let content_type = req.content_type.unwrap_or("");
        let media = content_type.split(';').next().unwrap_or("").trim();
        if !media.eq_ignore_ascii_case(JOSE_CONTENT_TYPE) {
            return Err(Error::ContentType {
                found: content_type.to_string(),
            });
        }
        let request = SignedRequest::parse(req.body)?;
        if request.protected.url != req.url {
            return Err(Error::unauthorized(format!(
                "the JWS url {:?} is not the request URL {:?}",
                request.protected.url, req.url
            )));
        }
        let (payload, account) = match (&request.protected.jwk, &request.protected.kid, mode) {
            (Some(_), _, KeyMode::Kid) => {
                return Err(Error::malformed(
                    "this request must be signed by an account key named by \"kid\", not \"jwk\"",
                ));
            }
            (_, Some(_), KeyMode::Jwk) => {
                return Err(Error::malformed(
                    "this request must carry the key as \"jwk\", not \"kid\"",
                ));
            }
            (Some(jwk), None, _) => (request.verify(jwk)?.to_vec(), None),
            (None, Some(kid), _) => {
                let prefix = format!("{}/account/", req.base_url);
                let id = kid.strip_prefix(&prefix).ok_or_else(|| {
                    Error::problem(
                        ProblemType::AccountDoesNotExist,
                        format!("kid {kid:?} is not an account URL of this server"),
                    )
                })?;
                let stored = self.store.account(id).await?.ok_or_else(|| {
                    Error::problem(
                        ProblemType::AccountDoesNotExist,
                        format!("account {kid:?} does not exist"),
                    )
                })?;
                let account: Account = from_json("account", &stored)?;
                let payload = request.verify(&account.key)?.to_vec();
                if account.status != "valid" {
                    return Err(Error::unauthorized(format!(
                        "account {kid:?} is {}",
                        account.status
                    )));
                }
                (payload, Some((account, stored.version)))
            }
            (None, None, _) | (Some(_), Some(_), _) => {
                return Err(Error::malformed(
                    "the protected header needs exactly one of \"jwk\" and \"kid\"",
                ));
            }
        };
        let nonce = request
            .protected
            .nonce
            .as_deref()
            .ok_or_else(|| Error::problem(ProblemType::BadNonce, "the JWS has no nonce"))?;
        let now = authority.clock().now().unix_timestamp();
        if !self.store.consume_nonce(nonce, now).await? {
            return Err(Error::problem(
                ProblemType::BadNonce,
                format!("nonce {nonce:?} is unknown, expired or already used"),
            ));
        }
        if let Some(client) = req.client {
            self.limits.nonce_used(client);
        }
        Ok(Authenticated {
            request,
            payload,
            account,
        })
    }

    fn account_json(account: &Account, base: &str) -> Value {
        json!({
            "status": account.status,
            "contact": account.contact,
            "termsOfServiceAgreed": account.terms_of_service_agreed,
            "orders": format!("{base}/account/{}/orders", account.id),
        })
    }

    /// `POST new-account` (RFC 8555 7.3).
    pub async fn new_account(
        &self,
        authority: &Authority,
        provisioner: &str,
        req: &Request<'_>,
    ) -> Result<Reply> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct NewAccount {
            #[serde(default)]
            contact: Vec<String>,
            #[serde(default)]
            terms_of_service_agreed: bool,
            #[serde(default)]
            only_return_existing: bool,
            #[serde(default)]
            external_account_binding: Option<Value>,
        }
        let settings = &acme_provisioner(authority, provisioner)?.settings;
        let auth = self.authenticate(authority, req, KeyMode::Jwk).await?;
        let body: NewAccount = payload("newAccount", &auth.payload)?;
        let jwk = auth
            .request
            .protected
            .jwk
            .clone()
            .ok_or_else(|| Error::malformed("newAccount needs \"jwk\""))?
            .to_public();
        let thumbprint = jwk
            .thumbprint()
            .map_err(|e| Error::problem(ProblemType::BadPublicKey, e.to_string()))?;
        if let Some(stored) = self.store.account_by_key(&thumbprint).await? {
            let account: Account = from_json("account", &stored)?;
            if account.status != "valid" {
                return Err(Error::unauthorized(format!(
                    "the account of this key is {}",
                    account.status
                )));
            }
            let location = format!("{}/account/{}", req.base_url, account.id);
            return Ok(
                Reply::json(Self::account_json(&account, req.base_url)).with_location(location)
            );
        }
        if body.only_return_existing {
            return Err(Error::problem(
                ProblemType::AccountDoesNotExist,
                "no account has this key",
            ));
        }
        if settings.terms_of_service.is_some() && !body.terms_of_service_agreed {
            return Err(Error::malformed(
                "the terms of service must be agreed to (termsOfServiceAgreed: true)",
            ));
        }
        validate_contacts(&body.contact)?;
        if let Some(client) = req.client {
            self.limits.new_account(client)?;
        }
        let external_account = match &body.external_account_binding {
            Some(binding) => Some(crate::eab::verify(binding, &jwk, req.url, settings)?),
            None if settings.require_eab => {
                return Err(Error::problem(
                    ProblemType::ExternalAccountRequired,
                    "this provisioner requires an external account binding",
                ));
            }
            None => None,
        };
        let now = authority.clock().now().unix_timestamp();
        let account = Account {
            id: random_id()?,
            key: jwk,
            status: "valid".into(),
            contact: body.contact,
            terms_of_service_agreed: body.terms_of_service_agreed,
            created_at: now,
            external_account,
        };
        let text = to_json(&account)?;
        let row = AccountRow {
            id: &account.id,
            key_thumbprint: &thumbprint,
            body: &text,
            created_at: now,
        };
        match self.store.insert_account(&row).await {
            Ok(()) => {}
            // Another request with the same key won the race: answer with its account.
            Err(AcmeStoreError::KeyTaken { account: id, .. }) => {
                let location = format!("{}/account/{id}", req.base_url);
                let stored = self
                    .store
                    .account(&id)
                    .await?
                    .ok_or_else(|| Error::Internal("account vanished".into()))?;
                let existing: Account = from_json("account", &stored)?;
                return Ok(Reply::json(Self::account_json(&existing, req.base_url))
                    .with_location(location));
            }
            Err(e) => return Err(e.into()),
        }
        tracing::info!(target: "mayfly::audit", account = %account.id, %provisioner, "ACME account created");
        let location = format!("{}/account/{}", req.base_url, account.id);
        Ok(Reply::json(Self::account_json(&account, req.base_url))
            .with_location(location)
            .created())
    }

    /// `POST account/{id}`: read, update contacts, or deactivate (RFC 8555 7.3.2, 7.3.6).
    pub async fn account(
        &self,
        authority: &Authority,
        req: &Request<'_>,
        id: &str,
    ) -> Result<Reply> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields, rename_all = "camelCase")]
        struct Update {
            #[serde(default)]
            status: Option<String>,
            #[serde(default)]
            contact: Option<Vec<String>>,
            #[serde(default)]
            terms_of_service_agreed: Option<bool>,
        }
        let auth = self.authenticate(authority, req, KeyMode::Kid).await?;
        let (mut account, version) = auth
            .account
            .clone()
            .ok_or_else(|| Error::Internal("no account".into()))?;
        if account.id != id {
            return Err(Error::unauthorized(
                "an account may only be managed with its own key",
            ));
        }
        if !auth.request.is_post_as_get() {
            let update: Update = payload("account update", &auth.payload)?;
            if let Some(contact) = update.contact {
                validate_contacts(&contact)?;
                account.contact = contact;
            }
            if update.terms_of_service_agreed == Some(true) {
                account.terms_of_service_agreed = true;
            }
            match update.status.as_deref() {
                None | Some("valid") => {}
                Some("deactivated") => account.status = "deactivated".into(),
                Some(other) => {
                    return Err(Error::malformed(format!(
                        "account status {other:?} cannot be requested: only \"deactivated\""
                    )));
                }
            }
            let thumbprint = account
                .key
                .thumbprint()
                .map_err(|e| Error::Internal(e.to_string()))?;
            let text = to_json(&account)?;
            let row = AccountRow {
                id: &account.id,
                key_thumbprint: &thumbprint,
                body: &text,
                created_at: account.created_at,
            };
            self.store
                .update_account(&row, version)
                .await
                .map_err(conflict_as_retry)?;
            if account.status == "deactivated" {
                tracing::info!(target: "mayfly::audit", account = %account.id, "ACME account deactivated");
            }
        }
        let location = format!("{}/account/{}", req.base_url, account.id);
        Ok(Reply::json(Self::account_json(&account, req.base_url)).with_location(location))
    }

    /// `POST account/{id}/orders` (RFC 8555 7.1.2.1): the account's orders, newest first.
    pub async fn account_orders(
        &self,
        authority: &Authority,
        req: &Request<'_>,
        id: &str,
    ) -> Result<Reply> {
        let auth = self.authenticate(authority, req, KeyMode::Kid).await?;
        if auth.account()?.id != id {
            return Err(Error::unauthorized("another account's orders"));
        }
        let orders: Vec<String> = self
            .store
            .account_orders(id, MAX_LISTED_ORDERS)
            .await?
            .into_iter()
            .map(|order| format!("{}/order/{order}", req.base_url))
            .collect();
        Ok(Reply::json(json!({ "orders": orders })))
    }

    /// `POST key-change` (RFC 8555 7.3.5): the outer JWS is signed by the old key, the inner by
    /// the new one; afterwards the old key is refused.
    pub async fn key_change(&self, authority: &Authority, req: &Request<'_>) -> Result<Reply> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct KeyChange {
            account: String,
            old_key: Jwk,
        }
        let auth = self.authenticate(authority, req, KeyMode::Kid).await?;
        let (mut account, version) = auth
            .account
            .clone()
            .ok_or_else(|| Error::Internal("no account".into()))?;
        let inner = SignedRequest::parse(&auth.payload)
            .map_err(|e| Error::malformed(format!("keyChange inner JWS: {e}")))?;
        if inner.protected.url != req.url {
            return Err(Error::malformed(
                "the inner JWS url is not the keyChange URL",
            ));
        }
        if inner.protected.nonce.is_some() {
            return Err(Error::malformed("the inner JWS must not have a nonce"));
        }
        let new_key = inner
            .protected
            .jwk
            .clone()
            .ok_or_else(|| Error::malformed("the inner JWS must carry the new key as \"jwk\""))?
            .to_public();
        let inner_payload = inner.verify(&new_key)?;
        let change: KeyChange = payload("keyChange", inner_payload)?;
        let account_url = format!("{}/account/{}", req.base_url, account.id);
        if change.account != account_url {
            return Err(Error::unauthorized(format!(
                "the inner JWS names account {:?}, not the signer {account_url:?}",
                change.account
            )));
        }
        let old = account
            .key
            .thumbprint()
            .map_err(|e| Error::Internal(e.to_string()))?;
        let claimed_old = change
            .old_key
            .thumbprint()
            .map_err(|e| Error::malformed(format!("oldKey: {e}")))?;
        if claimed_old != old {
            return Err(Error::unauthorized(
                "oldKey is not the account's current key",
            ));
        }
        let new_thumbprint = new_key
            .thumbprint()
            .map_err(|e| Error::problem(ProblemType::BadPublicKey, e.to_string()))?;
        if let Some(other) = self.store.account_by_key(&new_thumbprint).await? {
            return Err(Error::KeyInUse {
                location: format!("{}/account/{}", req.base_url, other.id),
            });
        }
        account.key = new_key;
        let text = to_json(&account)?;
        let row = AccountRow {
            id: &account.id,
            key_thumbprint: &new_thumbprint,
            body: &text,
            created_at: account.created_at,
        };
        match self.store.update_account(&row, version).await {
            Ok(()) => {}
            Err(AcmeStoreError::KeyTaken { account: other, .. }) => {
                return Err(Error::KeyInUse {
                    location: format!("{}/account/{other}", req.base_url),
                });
            }
            Err(e) => return Err(conflict_as_retry(e)),
        }
        tracing::info!(target: "mayfly::audit", account = %account.id, "ACME account key changed");
        Ok(Reply::json(Self::account_json(&account, req.base_url)).with_location(account_url))
    }

    /// `POST new-order` (RFC 8555 7.4, `replaces` from RFC 9773 5).
    pub async fn new_order(
        &self,
        authority: &Authority,
        provisioner: &str,
        req: &Request<'_>,
    ) -> Result<Reply> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct NewOrder {
            identifiers: Vec<Identifier>,
            #[serde(default)]
            not_before: Option<String>,
            #[serde(default)]
            not_after: Option<String>,
            #[serde(default)]
            replaces: Option<String>,
        }
        let acme = acme_provisioner(authority, provisioner)?;
        let auth = self.authenticate(authority, req, KeyMode::Kid).await?;
        let account = auth.account()?;
        let body: NewOrder = payload("newOrder", &auth.payload)?;
        if requested_time("notBefore", body.not_before.as_deref())?.is_some()
            || requested_time("notAfter", body.not_after.as_deref())?.is_some()
        {
            return Err(Error::malformed(
                "notBefore and notAfter are not supported: the provisioner's claims set the validity",
            ));
        }
        if body.identifiers.is_empty() || body.identifiers.len() > MAX_IDENTIFIERS {
            return Err(Error::malformed(format!(
                "an order needs 1 to {MAX_IDENTIFIERS} identifiers, not {}",
                body.identifiers.len()
            )));
        }
        let identifiers: BTreeSet<Identifier> = body
            .identifiers
            .into_iter()
            .map(Identifier::validate)
            .collect::<Result<_>>()?;
        let identifiers: Vec<Identifier> = identifiers.into_iter().collect();
        let now = authority.clock().now().unix_timestamp();
        self.check_rate_limits(&acme.settings, &account.id, &identifiers, now)
            .await?;
        if let Some(replaces) = &body.replaces {
            self.check_replaces(authority, account, &identifiers, replaces)
                .await?;
        }

        let mut authorization_ids = Vec::with_capacity(identifiers.len());
        let mut new_authorizations: Vec<(Authorization, String)> = Vec::new();
        for identifier in &identifiers {
            let wildcard = identifier.is_wildcard();
            let reusable = self
                .store
                .valid_authorizations(&account.id, &identifier.key(), now)
                .await?;
            if let Some(existing) = reusable.first() {
                authorization_ids.push(existing.id.clone());
                continue;
            }
            let challenges = offered_challenges(identifier, &acme.settings)
                .into_iter()
                .map(|kind| {
                    Ok(Challenge {
                        kind: kind.to_string(),
                        token: random_id()?,
                        status: "pending".into(),
                        validated: None,
                        error: None,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            if challenges.is_empty() {
                return Err(Error::problem(
                    ProblemType::RejectedIdentifier,
                    format!(
                        "no challenge type this provisioner offers can validate {}",
                        identifier.value
                    ),
                ));
            }
            let authorization = Authorization {
                id: random_id()?,
                account: account.id.clone(),
                identifier: identifier.authorization_identifier(),
                status: "pending".into(),
                expires: now + ORDER_LIFETIME,
                wildcard,
                challenges,
            };
            authorization_ids.push(authorization.id.clone());
            let text = to_json(&authorization)?;
            new_authorizations.push((authorization, text));
        }
        let order = Order {
            id: random_id()?,
            account: account.id.clone(),
            status: "pending".into(),
            expires: now + ORDER_LIFETIME,
            identifiers: identifiers.clone(),
            authorizations: authorization_ids,
            not_before: None,
            not_after: None,
            certificate: None,
            error: None,
            replaces: body.replaces,
            created_at: now,
        };
        let order_text = to_json(&order)?;
        let keys: Vec<String> = identifiers.iter().map(Identifier::key).collect();
        let index_keys: Vec<String> = new_authorizations
            .iter()
            .map(|(a, _)| a.index_key())
            .collect();
        let rows: Vec<AuthorizationRow> = new_authorizations
            .iter()
            .zip(&index_keys)
            .map(|((a, text), key)| AuthorizationRow {
                id: &a.id,
                account: &a.account,
                identifier: key,
                status: &a.status,
                expires_at: a.expires,
                body: text,
            })
            .collect();
        self.store
            .insert_order(
                &OrderRow {
                    id: &order.id,
                    account: &order.account,
                    identifiers: &keys,
                    body: &order_text,
                    created_at: now,
                },
                &rows,
            )
            .await?;
        order_reached("pending");
        let (status, _) = self.effective_order(&order, now).await?;
        let location = format!("{}/order/{}", req.base_url, order.id);
        Ok(Reply::json(order_json(&order, &status, req.base_url))
            .with_location(location)
            .created())
    }

    async fn check_rate_limits(
        &self,
        settings: &AcmeSettings,
        account: &str,
        identifiers: &[Identifier],
        now: i64,
    ) -> Result<()> {
        let since = now - RATE_WINDOW;
        if let Some(limit) = settings.orders_per_account_per_hour {
            let count = self.store.count_orders_by_account(account, since).await?;
            if count >= u64::from(limit) {
                return Err(Error::RateLimited {
                    detail: format!(
                        "this account created {count} orders in the last hour; the limit is {limit}"
                    ),
                    retry_after_seconds: RATE_WINDOW as u64,
                });
            }
        }
        if let Some(limit) = settings.orders_per_identifier_per_hour {
            for identifier in identifiers {
                let count = self
                    .store
                    .count_orders_by_identifier(&identifier.key(), since)
                    .await?;
                if count >= u64::from(limit) {
                    return Err(Error::RateLimited {
                        detail: format!(
                            "{} was ordered {count} times in the last hour; the limit is {limit}",
                            identifier.value
                        ),
                        retry_after_seconds: RATE_WINDOW as u64,
                    });
                }
            }
        }
        Ok(())
    }

    /// RFC 9773 5: `replaces` must name a certificate of this account that shares an
    /// identifier with the new order.
    async fn check_replaces(
        &self,
        authority: &Authority,
        account: &Account,
        identifiers: &[Identifier],
        cert_id: &str,
    ) -> Result<()> {
        let serial = renewal::serial_of_cert_id(cert_id)?;
        let issued_to = self.store.certificate_account(&serial).await?;
        if issued_to.as_deref() != Some(account.id.as_str()) {
            return Err(Error::malformed(format!(
                "replaces {cert_id:?} is not a certificate issued to this account"
            )));
        }
        let stored = authority
            .store()
            .certificate(&serial)
            .await
            .map_err(|e| Error::Internal(e.to_string()))?
            .ok_or_else(|| {
                Error::malformed(format!("replaces {cert_id:?}: no such certificate"))
            })?;
        let info = CertificateInfo::from_der(&stored.certificate.der)
            .map_err(|e| Error::Internal(e.to_string()))?;
        let shares = info
            .sans
            .iter()
            .filter_map(Identifier::from_san)
            .any(|id| identifiers.contains(&id));
        if !shares {
            return Err(Error::malformed(format!(
                "replaces {cert_id:?}: the certificate shares no identifier with this order"
            )));
        }
        Ok(())
    }

    /// The order's status as clients see it (`ready` derived from the authorizations) and its
    /// authorizations.
    async fn effective_order(
        &self,
        order: &Order,
        now: i64,
    ) -> Result<(String, Vec<Authorization>)> {
        let mut authorizations = Vec::with_capacity(order.authorizations.len());
        for id in &order.authorizations {
            let stored = self
                .store
                .authorization(id)
                .await?
                .ok_or_else(|| Error::Internal(format!("authorization {id} missing")))?;
            authorizations.push(from_json::<Authorization>("authorization", &stored)?);
        }
        if order.status != "pending" {
            return Ok((order.status.clone(), authorizations));
        }
        let statuses: Vec<String> = authorizations
            .iter()
            .map(|a| authorization_status(a, now))
            .collect();
        let status = if now > order.expires
            || statuses.iter().any(|s| {
                matches!(
                    s.as_str(),
                    "invalid" | "deactivated" | "expired" | "revoked"
                )
            }) {
            "invalid"
        } else if statuses.iter().all(|s| s == "valid") {
            "ready"
        } else {
            "pending"
        };
        Ok((status.into(), authorizations))
    }

    async fn owned_order(&self, account: &Account, id: &str) -> Result<(Order, i64)> {
        let stored = self
            .store
            .order(id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("order {id}")))?;
        let order: Order = from_json("order", &stored)?;
        if order.account != account.id {
            return Err(Error::NotFound(format!("order {id}")));
        }
        Ok((order, stored.version))
    }

    /// `POST order/{id}` as GET.
    pub async fn order(&self, authority: &Authority, req: &Request<'_>, id: &str) -> Result<Reply> {
        let auth = self.authenticate(authority, req, KeyMode::Kid).await?;
        let (order, _) = self.owned_order(auth.account()?, id).await?;
        let now = authority.clock().now().unix_timestamp();
        let (status, _) = self.effective_order(&order, now).await?;
        let mut reply = Reply::json(order_json(&order, &status, req.base_url))
            .with_location(format!("{}/order/{id}", req.base_url));
        if status == "processing" {
            reply.retry_after = Some(1);
        }
        Ok(reply)
    }

    async fn owned_authorization(
        &self,
        account: &Account,
        id: &str,
    ) -> Result<(Authorization, i64)> {
        let stored = self
            .store
            .authorization(id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("authorization {id}")))?;
        let authorization: Authorization = from_json("authorization", &stored)?;
        if authorization.account != account.id {
            return Err(Error::NotFound(format!("authorization {id}")));
        }
        Ok((authorization, stored.version))
    }

    /// `POST authz/{id}`: read, or deactivate (RFC 8555 7.5.2).
    pub async fn authorization(
        &self,
        authority: &Authority,
        req: &Request<'_>,
        id: &str,
    ) -> Result<Reply> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Update {
            status: String,
        }
        let auth = self.authenticate(authority, req, KeyMode::Kid).await?;
        let (mut authorization, version) = self.owned_authorization(auth.account()?, id).await?;
        let now = authority.clock().now().unix_timestamp();
        if !auth.request.is_post_as_get() {
            let update: Update = payload("authorization update", &auth.payload)?;
            if update.status != "deactivated" {
                return Err(Error::malformed(format!(
                    "authorization status {:?} cannot be requested: only \"deactivated\"",
                    update.status
                )));
            }
            if !matches!(authorization.status.as_str(), "pending" | "valid") {
                return Err(Error::malformed(format!(
                    "a {} authorization cannot be deactivated",
                    authorization.status
                )));
            }
            authorization.status = "deactivated".into();
            self.save_authorization(&authorization, version).await?;
        }
        let status = authorization_status(&authorization, now);
        Ok(Reply::json(authorization_json(
            &authorization,
            &status,
            req.base_url,
        )))
    }

    async fn save_authorization(&self, authorization: &Authorization, version: i64) -> Result<()> {
        save_authorization(self.store.as_ref(), authorization, version)
            .await
            .map_err(conflict_as_retry)
    }

    /// `POST challenge/{authz}/{index}`: `{}` asks for validation, which runs in the background
    /// (RFC 8555 7.5.1); an empty payload only reads.
    pub async fn challenge(
        &self,
        authority: &Authority,
        provisioner: &str,
        req: &Request<'_>,
        authorization_id: &str,
        index: usize,
    ) -> Result<Reply> {
        let settings = acme_provisioner(authority, provisioner)?.settings.clone();
        let auth = self.authenticate(authority, req, KeyMode::Kid).await?;
        let account = auth.account()?.clone();
        let (mut authorization, version) =
            self.owned_authorization(&account, authorization_id).await?;
        if index >= authorization.challenges.len() {
            return Err(Error::NotFound(format!(
                "challenge {index} of authorization {authorization_id}"
            )));
        }
        let now = authority.clock().now().unix_timestamp();
        let start = !auth.request.is_post_as_get()
            && authorization_status(&authorization, now) == "pending"
            && authorization.challenges[index].status == "pending"
            && !authorization
                .challenges
                .iter()
                .any(|c| c.status == "processing");
        if start {
            authorization.challenges[index].status = "processing".into();
            // Only the request that wins this compare-and-set starts a validation, so no
            // challenge is validated twice however many clients push it at once.
            match save_authorization(self.store.as_ref(), &authorization, version).await {
                Ok(()) => {
                    let thumbprint = account
                        .key
                        .thumbprint()
                        .map_err(|e| Error::Internal(e.to_string()))?;
                    let challenge = &authorization.challenges[index];
                    let key_authorization = format!("{}.{thumbprint}", challenge.token);
                    tokio::spawn(run_validation(
                        Arc::clone(&self.store),
                        Arc::clone(authority.clock()),
                        settings,
                        authorization.id.clone(),
                        index,
                        key_authorization,
                    ));
                }
                Err(AcmeStoreError::VersionMismatch { .. }) => {
                    let (current, _) = self.owned_authorization(&account, authorization_id).await?;
                    authorization = current;
                }
                Err(e) => return Err(e.into()),
            }
        }
        let challenge = &authorization.challenges[index];
        let mut reply = Reply::json(challenge_json(
            challenge,
            &authorization.id,
            index,
            req.base_url,
        ));
        reply.links.push(format!(
            "<{}/authz/{}>;rel=\"up\"",
            req.base_url, authorization.id
        ));
        Ok(reply)
    }

    /// `POST order/{id}/finalize` (RFC 8555 7.4): the CSR must name exactly the order's
    /// identifiers; the certificate is signed and stored before the order turns valid.
    pub async fn finalize(
        &self,
        authority: &Authority,
        provisioner: &str,
        req: &Request<'_>,
        id: &str,
    ) -> Result<Reply> {
        #[derive(Deserialize)]
        struct Finalize {
            csr: String,
        }
        acme_provisioner(authority, provisioner)?;
        let auth = self.authenticate(authority, req, KeyMode::Kid).await?;
        let account = auth.account()?.clone();
        let (mut order, version) = self.owned_order(&account, id).await?;
        let now = authority.clock().now().unix_timestamp();
        let (status, _) = self.effective_order(&order, now).await?;
        if status != "ready" {
            return Err(Error::problem(
                ProblemType::OrderNotReady,
                format!("order {id} is {status}, not ready"),
            ));
        }
        let body: Finalize = payload("finalize", &auth.payload)?;
        let der = B64.decode(body.csr.trim_end_matches('=')).map_err(|e| {
            Error::problem(ProblemType::BadCsr, format!("csr is not base64url: {e}"))
        })?;
        let csr =
            Csr::from_der(&der).map_err(|e| Error::problem(ProblemType::BadCsr, e.to_string()))?;
        let sans = csr_identifiers_match(&csr, &order.identifiers)?;
        if self
            .store
            .key_blocked(&spki_sha256(csr.public_key_spki_der()))
            .await?
        {
            return Err(Error::problem(
                ProblemType::BadPublicKey,
                "the CSR's key was reported compromised and is blocked",
            ));
        }
        let account_key_spki = account_spki_matches(&account.key, csr.public_key_spki_der());
        if account_key_spki {
            return Err(Error::problem(
                ProblemType::BadCsr,
                "the certificate key must not be the account key",
            ));
        }
        order.status = "processing".into();
        let text = to_json(&order)?;
        let version = match self.store.update_order(&order.id, version, &text).await {
            Ok(()) => version + 1,
            Err(AcmeStoreError::VersionMismatch { .. }) => {
                return Err(Error::problem(
                    ProblemType::OrderNotReady,
                    format!("order {id} is being finalized by another request"),
                ));
            }
            Err(e) => return Err(e.into()),
        };
        order_reached("processing");
        let issued = match authority
            .sign_acme(provisioner, &csr, sans, &account.id)
            .await
        {
            Ok(issued) => issued,
            Err(e) => {
                order_reached("invalid");
                order.status = "invalid".into();
                order.error = Some(Problem::new(ProblemType::ServerInternal, "issuance failed"));
                if let Ok(text) = to_json(&order) {
                    let _ = self.store.update_order(&order.id, version, &text).await;
                }
                return Err(Error::Authority(e));
            }
        };
        self.store
            .record_certificate(&issued.serial, &account.id, &order.id)
            .await?;
        order.status = "valid".into();
        order.certificate = Some(issued.serial.clone());
        let text = to_json(&order)?;
        self.store.update_order(&order.id, version, &text).await?;
        order_reached("valid");
        let location = format!("{}/order/{id}", req.base_url);
        Ok(Reply::json(order_json(&order, "valid", req.base_url)).with_location(location))
    }

    /// `POST certificate/{serial}`: the PEM chain, leaf first, for the account it was issued to.
    pub async fn certificate(
        &self,
        authority: &Authority,
        req: &Request<'_>,
        serial: &str,
    ) -> Result<Reply> {
        let auth = self.authenticate(authority, req, KeyMode::Kid).await?;
        let account = auth.account()?;
        if self.store.certificate_account(serial).await?.as_deref() != Some(account.id.as_str()) {
            return Err(Error::NotFound(format!("certificate {serial}")));
        }
        let stored = authority
            .store()
            .certificate(serial)
            .await
            .map_err(|e| Error::Internal(e.to_string()))?
            .ok_or_else(|| Error::NotFound(format!("certificate {serial}")))?;
        let chain = format!(
            "{}{}",
            certificate_pem(&stored.certificate.der),
            certificate_pem(authority.intermediate_der())
        );
        Ok(Reply {
            created: false,
            location: None,
            body: ReplyBody::PemChain(chain),
            links: Vec::new(),
            retry_after: None,
        })
    }

    /// `POST revoke-cert` (RFC 8555 7.6, Let's Encrypt's rules from seed 004): by the issuing
    /// account, by an account holding valid authorizations for every identifier of the
    /// certificate, or by the certificate's key.
    pub async fn revoke(
        &self,
        authority: &Authority,
        provisioner: &str,
        req: &Request<'_>,
    ) -> Result<Reply> {
        #[derive(Deserialize)]
        struct Revoke {
            certificate: String,
            #[serde(default)]
            reason: Option<i64>,
        }
        let acme = acme_provisioner(authority, provisioner)?;
        let auth = self.authenticate(authority, req, KeyMode::Either).await?;
        let body: Revoke = payload("revokeCert", &auth.payload)?;
        let der = B64
            .decode(body.certificate.trim_end_matches('='))
            .map_err(|e| Error::malformed(format!("certificate is not base64url: {e}")))?;
        let info = CertificateInfo::from_der(&der)
            .map_err(|e| Error::malformed(format!("certificate: {e}")))?;
        let serial = info.serial.to_decimal();
        let stored = authority
            .store()
            .certificate(&serial)
            .await
            .map_err(|e| Error::Internal(e.to_string()))?
            .filter(|s| s.certificate.der == der)
            .ok_or_else(|| Error::NotFound(format!("certificate {serial} issued by this CA")))?;
        let code = body.reason.unwrap_or(0);
        let allowed = acme.settings.allowed_revocation_reasons();
        let reason = ReasonCode::from_code(code)
            .and_then(ReasonCode::revocable)
            .ok()
            .filter(|r| allowed.contains(&r.code()))
            .ok_or_else(|| {
                Error::problem(
                    ProblemType::BadRevocationReason,
                    format!("reason code {code} is not accepted: expected one of {allowed:?}"),
                )
            })?;
        if stored.status == CertificateStatus::Revoked {
            return Err(Error::problem(
                ProblemType::AlreadyRevoked,
                format!("certificate {serial} is already revoked"),
            ));
        }
        let (revoked_by, reason) = match &auth.account {
            None => {
                // Signed with the `jwk` it carries; that key must be the certificate's.
                auth.request.verify_with_spki(&info.spki_der).map_err(|_| {
                    Error::unauthorized("the request is not signed by the certificate's key")
                })?;
                ("acme:certificate-key".to_string(), reason)
            }
            Some((account, _)) => {
                let issued_to = self.store.certificate_account(&serial).await?;
                if issued_to.as_deref() == Some(account.id.as_str()) {
                    (format!("acme:account:{}", account.id), reason)
                } else {
                    self.check_control(account, &info.sans, authority).await?;
                    // Seed 004: another authorized account revokes as cessationOfOperation
                    // unless it reports the key compromised.
                    let reason = if reason.code() == 1 {
                        reason
                    } else {
                        ReasonCode::from_code(5).map_err(Error::Authority)?
                    };
                    (format!("acme:authorized-account:{}", account.id), reason)
                }
            }
        };
        authority
            .record_revocation(&serial, reason, "", &revoked_by, None)
            .await
            .map_err(|e| match e {
                mayfly_authority::Error::AlreadyRevoked { serial } => Error::problem(
                    ProblemType::AlreadyRevoked,
                    format!("certificate {serial} is already revoked"),
                ),
                other => Error::Authority(other),
            })?;
        if reason.code() == 1 {
            let now = authority.clock().now().unix_timestamp();
            self.store
                .block_key(&spki_sha256(&info.spki_der), now)
                .await?;
        }
        Ok(Reply {
            created: false,
            location: None,
            body: ReplyBody::Empty,
            links: Vec::new(),
            retry_after: None,
        })
    }

    async fn check_control(
        &self,
        account: &Account,
        sans: &[San],
        authority: &Authority,
    ) -> Result<()> {
        let now = authority.clock().now().unix_timestamp();
        for san in sans {
            let identifier = Identifier::from_san(san).ok_or_else(|| {
                Error::unauthorized(format!("{san} is not an identifier ACME can authorize"))
            })?;
            let found = self
                .store
                .valid_authorizations(&account.id, &identifier.key(), now)
                .await?;
            if found.is_empty() {
                return Err(Error::unauthorized(format!(
                    "this account neither ordered the certificate nor holds a valid authorization for {}",
                    identifier.value
                )));
            }
        }
        Ok(())
    }

    /// `GET renewal-info/{certID}` (RFC 9773 4).
    pub async fn renewal_info(
        &self,
        authority: &Authority,
        provisioner: &str,
        cert_id: &str,
    ) -> Result<Reply> {
        acme_provisioner(authority, provisioner)?;
        let info = renewal::renewal_info(authority, cert_id).await?;
        let mut reply = Reply::json(json!({
            "suggestedWindow": {
                "start": rfc3339(info.start),
                "end": rfc3339(info.end),
            }
        }));
        reply.retry_after = Some(info.retry_after);
        Ok(reply)
    }
}

/// A concurrent writer won: the client should simply try again.
fn conflict_as_retry(e: AcmeStoreError) -> Error {
    match e {
        AcmeStoreError::VersionMismatch { what, id } => Error::malformed(format!(
            "{what} {id} was changed by another request meanwhile; try again"
        )),
        other => other.into(),
    }
}

async fn save_authorization(
    store: &dyn AcmeStore,
    authorization: &Authorization,
    version: i64,
) -> Result<(), AcmeStoreError> {
    let text = serde_json::to_string(authorization)
        .map_err(|e| AcmeStoreError::Backend(format!("serialising: {e}")))?;
    let key = authorization.index_key();
    store
        .update_authorization(
            &AuthorizationRow {
                id: &authorization.id,
                account: &authorization.account,
                identifier: &key,
                status: &authorization.status,
                expires_at: authorization.expires,
                body: &text,
            },
            version,
        )
        .await
}

/// Validates one challenge (with retries) and records the outcome.
async fn run_validation(
    store: Arc<dyn AcmeStore>,
    clock: Arc<dyn mayfly_authority::clock::Clock>,
    settings: AcmeSettings,
    authorization_id: String,
    index: usize,
    key_authorization: String,
) {
    let outcome = async {
        let stored = store
            .authorization(&authorization_id)
            .await?
            .ok_or_else(|| AcmeStoreError::Backend("authorization vanished".into()))?;
        let authorization: Authorization = serde_json::from_str(&stored.body)
            .map_err(|e| AcmeStoreError::Backend(e.to_string()))?;
        let challenge = authorization
            .challenges
            .get(index)
            .ok_or_else(|| AcmeStoreError::Backend("challenge vanished".into()))?
            .clone();
        let identifier = if authorization.wildcard {
            Identifier {
                kind: authorization.identifier.kind.clone(),
                value: authorization.identifier.value.clone(),
            }
        } else {
            authorization.identifier.clone()
        };
        let mut result = Ok(());
        for attempt in 1..=VALIDATION_ATTEMPTS {
            result = crate::validate::validate(
                &challenge.kind,
                &identifier,
                &challenge.token,
                &key_authorization,
                &settings,
            )
            .await;
            if result.is_ok() || attempt == VALIDATION_ATTEMPTS {
                break;
            }
            tokio::time::sleep(VALIDATION_RETRY_PAUSE).await;
        }
        // The validating task is the only writer of a processing challenge, but the client may
        // deactivate the authorization meanwhile: re-read and re-apply until the write lands.
        loop {
            let stored = store
                .authorization(&authorization_id)
                .await?
                .ok_or_else(|| AcmeStoreError::Backend("authorization vanished".into()))?;
            let mut current: Authorization = serde_json::from_str(&stored.body)
                .map_err(|e| AcmeStoreError::Backend(e.to_string()))?;
            let Some(challenge) = current.challenges.get_mut(index) else {
                return Ok(());
            };
            if challenge.status != "processing" {
                return Ok(());
            }
            let now = clock.now().unix_timestamp();
            match &result {
                Ok(()) => {
                    challenge.status = "valid".into();
                    challenge.validated = Some(now);
                    if current.status == "pending" {
                        current.status = "valid".into();
                        current.expires = now + VALID_AUTHORIZATION_LIFETIME;
                    }
                }
                Err(problem) => {
                    challenge.status = "invalid".into();
                    challenge.error = Some(problem.clone());
                    if current.status == "pending" {
                        current.status = "invalid".into();
                    }
                }
            }
            match save_authorization(store.as_ref(), &current, stored.version).await {
                Ok(()) => {
                    tracing::info!(
                        target: "mayfly::audit",
                        authorization = %authorization_id,
                        identifier = %current.identifier.value,
                        challenge = %current.challenges[index].kind,
                        valid = result.is_ok(),
                        "ACME challenge validated"
                    );
                    let outcome = if result.is_ok() { "valid" } else { "invalid" };
                    metrics::counter!("mayfly_acme_challenges_total", "outcome" => outcome)
                        .increment(1);
                    return Ok(());
                }
                Err(AcmeStoreError::VersionMismatch { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
    };
    if let Err(e) = outcome.await {
        tracing::error!(error = %e, authorization = %authorization_id, "recording a challenge result failed");
    }
}

/// The authorization's status as of `now`.
fn authorization_status(authorization: &Authorization, now: i64) -> String {
    match authorization.status.as_str() {
        "pending" | "valid" if now > authorization.expires => "expired".into(),
        other => other.into(),
    }
}

fn offered_challenges(identifier: &Identifier, settings: &AcmeSettings) -> Vec<&'static str> {
    let candidates: &[&'static str] = if identifier.is_wildcard() {
        &["dns-01"]
    } else if identifier.kind == "ip" {
        &["http-01"]
    } else {
        &["http-01", "dns-01", "tls-alpn-01"]
    };
    candidates
        .iter()
        .copied()
        .filter(|c| settings.challenges.is_empty() || settings.challenges.iter().any(|s| s == c))
        .collect()
}

/// The CSR must name exactly the order's identifiers (as SANs; a CN must be one of them).
fn csr_identifiers_match(csr: &Csr, identifiers: &[Identifier]) -> Result<Vec<San>> {
    let mut requested = BTreeSet::new();
    for san in csr.sans() {
        let identifier = Identifier::from_san(san).ok_or_else(|| {
            Error::problem(
                ProblemType::BadCsr,
                format!("the CSR names {san}, which is not a DNS name or IP address"),
            )
        })?;
        requested.insert(identifier);
    }
    if let Some(cn) = csr.common_name().filter(|cn| !cn.is_empty()) {
        let identifier = San::parse(cn)
            .ok()
            .as_ref()
            .and_then(Identifier::from_san)
            .ok_or_else(|| {
                Error::problem(
                    ProblemType::BadCsr,
                    format!("the CSR's common name {cn:?} is not a DNS name or IP address"),
                )
            })?;
        requested.insert(identifier);
    }
    let ordered: BTreeSet<Identifier> = identifiers.iter().cloned().collect();
    if requested != ordered {
        let names = |set: &BTreeSet<Identifier>| {
            set.iter()
                .map(|i| i.value.clone())
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Err(Error::problem(
            ProblemType::BadCsr,
            format!(
                "the CSR names [{}] but the order is for [{}]: they must be the same",
                names(&requested),
                names(&ordered)
            ),
        ));
    }
    identifiers.iter().map(Identifier::to_san).collect()
}

/// Whether the CSR's key is the account key (compared by RFC 7638 thumbprint).
fn account_spki_matches(account_key: &Jwk, spki_der: &[u8]) -> bool {
    let Ok(account) = account_key.thumbprint() else {
        return false;
    };
    crate::eab::jwk_from_spki(spki_der)
        .and_then(|jwk| jwk.thumbprint().ok())
        .is_some_and(|t| t == account)
}

fn validate_contacts(contacts: &[String]) -> Result<()> {
    if contacts.len() > MAX_CONTACTS {
        return Err(Error::problem(
            ProblemType::InvalidContact,
            format!(
                "{} contacts: an account may have at most {MAX_CONTACTS}",
                contacts.len()
            ),
        ));
    }
    for contact in contacts {
        let Some(address) = contact.strip_prefix("mailto:") else {
            return Err(Error::problem(
                ProblemType::UnsupportedContact,
                format!("contact {contact:?} is not a mailto: URL"),
            ));
        };
        let valid = address.split('@').count() == 2
            && !address.contains(['?', ',', ' '])
            && address.split('@').all(|part| !part.is_empty());
        if !valid {
            return Err(Error::problem(
                ProblemType::InvalidContact,
                format!("contact {contact:?} is not one e-mail address"),
            ));
        }
    }
    Ok(())
}

/// Counts an order entering `state`, for `/metrics`.
fn order_reached(state: &'static str) {
    metrics::counter!("mayfly_acme_orders_total", "state" => state).increment(1);
}

fn order_json(order: &Order, status: &str, base: &str) -> Value {
    let mut out = json!({
        "status": status,
        "expires": rfc3339(order.expires),
        "identifiers": order.identifiers,
        "authorizations": order
            .authorizations
            .iter()
            .map(|id| format!("{base}/authz/{id}"))
            .collect::<Vec<_>>(),
        "finalize": format!("{base}/order/{}/finalize", order.id),
    });
    if let Some(serial) = &order.certificate {
        out["certificate"] = json!(format!("{base}/certificate/{serial}"));
    }
    if let Some(error) = &order.error {
        out["error"] = json!(error);
    }
    if let Some(replaces) = &order.replaces {
        out["replaces"] = json!(replaces);
    }
    out
}

fn challenge_json(challenge: &Challenge, authorization: &str, index: usize, base: &str) -> Value {
    let mut out = json!({
        "type": challenge.kind,
        "url": format!("{base}/challenge/{authorization}/{index}"),
        "token": challenge.token,
        "status": challenge.status,
    });
    if let Some(validated) = challenge.validated {
        out["validated"] = json!(rfc3339(validated));
    }
    if let Some(error) = &challenge.error {
        out["error"] = json!(error);
    }
    out
}

fn authorization_json(authorization: &Authorization, status: &str, base: &str) -> Value {
    let mut out = json!({
        "identifier": authorization.identifier,
        "status": status,
        "expires": rfc3339(authorization.expires),
        "challenges": authorization
            .challenges
            .iter()
            .enumerate()
            .map(|(i, c)| challenge_json(c, &authorization.id, i, base))
            .collect::<Vec<_>>(),
    });
    if authorization.wildcard {
        out["wildcard"] = json!(true);
    }
    out
}

/// An order's `notBefore`/`notAfter` (RFC 3339), `None` when absent or Go's zero time
/// (`0001-01-01T00:00:00Z`): every released step CLI sends the zero time for fields it leaves
/// unset, and means nothing by it.
fn requested_time(field: &str, value: Option<&str>) -> Result<Option<time::OffsetDateTime>> {
    let Some(text) = value else {
        return Ok(None);
    };
    let at = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|e| Error::malformed(format!("{field} {text:?} is not an RFC 3339 time: {e}")))?;
    let go_zero = time::macros::datetime!(0001-01-01 0:00 UTC);
    Ok((at != go_zero).then_some(at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_zero_times_in_an_order_mean_unset() {
        assert_eq!(requested_time("notBefore", None).unwrap(), None);
        // What every released step CLI sends for an order without validity bounds.
        assert_eq!(
            requested_time("notBefore", Some("0001-01-01T00:00:00Z")).unwrap(),
            None
        );
        assert_eq!(
            requested_time("notAfter", Some("0001-01-01T00:00:00+00:00")).unwrap(),
            None
        );
        assert!(
            requested_time("notAfter", Some("2030-01-01T00:00:00Z"))
                .unwrap()
                .is_some()
        );
        let error = requested_time("notAfter", Some("tomorrow")).unwrap_err();
        assert!(
            error.to_string().contains("notAfter \"tomorrow\""),
            "{error}"
        );
    }

    #[test]
    fn contacts_must_be_single_mailto_addresses() {
        assert!(validate_contacts(&["mailto:a@example.com".into()]).is_ok());
        let cases = [
            ("tel:+1", ProblemType::UnsupportedContact),
            ("mailto:a", ProblemType::InvalidContact),
            ("mailto:a@b,c@d", ProblemType::InvalidContact),
            ("mailto:a@b?subject=x", ProblemType::InvalidContact),
            ("mailto:@b", ProblemType::InvalidContact),
        ];
        for (contact, problem) in cases {
            let err = validate_contacts(&[contact.into()]).unwrap_err();
            assert_eq!(err.problem_type(), problem, "{contact}");
        }
    }

    #[test]
    fn wildcards_get_only_dns01() {
        let settings = AcmeSettings::default();
        let wildcard = Identifier {
            kind: "dns".into(),
            value: "*.example.com".into(),
        };
        assert_eq!(offered_challenges(&wildcard, &settings), vec!["dns-01"]);
        let ip = Identifier {
            kind: "ip".into(),
            value: "127.0.0.1".into(),
        };
        assert_eq!(offered_challenges(&ip, &settings), vec!["http-01"]);
        let only_http = AcmeSettings {
            challenges: vec!["http-01".into()],
            ..AcmeSettings::default()
        };
        assert!(offered_challenges(&wildcard, &only_http).is_empty());
    }
}
