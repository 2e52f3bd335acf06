//! The RFC 8555 state machine, one module per resource: the directory and nonces, accounts,
//! key change, orders, finalization, authorizations, challenges (with their background
//! validation), certificates and revocation, renewal information.
//!
//! Each method takes the request (its URL, body and content type, as the server saw them) and
//! answers a [`Reply`] the server renders; it never sees HTTP types. Authentication comes first
//! in every POST (RFC 8555 6.2-6.5, `authenticate`). State transitions are compare-and-set in
//! the store.

use std::net::IpAddr;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use mayfly_authority::Authority;
use mayfly_authority::provisioner::{AcmeProvisioner, Provisioner};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::limits::{AddressLimitSettings, AddressLimits};
use crate::store::{AcmeStore, AcmeStoreError, Versioned};
use crate::tasks::ValidationTasks;

mod accounts;
mod authenticate;
mod authorizations;
mod certificates;
mod challenges;
mod directory;
mod finalize;
mod key_change;
mod orders;
mod renewal_info;

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
    fn with_body(body: ReplyBody) -> Self {
        Reply {
            created: false,
            location: None,
            body,
            links: Vec::new(),
            retry_after: None,
        }
    }

    fn json(body: Value) -> Self {
        Self::with_body(ReplyBody::Json(body))
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
    nonces: Arc<crate::nonces::NonceBook>,
    limits: Arc<AddressLimits>,
    validations: ValidationTasks,
}

impl Acme {
    pub fn new(store: Arc<dyn AcmeStore>) -> Self {
        Self::with_limits(store, AddressLimitSettings::default())
    }

    /// [`Acme::new`] with per-address limits other than the defaults.
    pub fn with_limits(store: Arc<dyn AcmeStore>, limits: AddressLimitSettings) -> Self {
        Self {
            store,
            nonces: Arc::new(crate::nonces::NonceBook::Store),
            limits: Arc::new(AddressLimits::new(limits)),
            validations: ValidationTasks::default(),
        }
    }

    /// Keeps nonces in `book` instead of the store.
    pub fn with_nonces(mut self, book: crate::nonces::NonceBook) -> Self {
        self.nonces = Arc::new(book);
        self
    }

    /// The challenge validations running in the background, which a shutting-down server
    /// finishes ([`ValidationTasks::finish`]).
    pub fn validations(&self) -> &ValidationTasks {
        &self.validations
    }
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

/// The hex SHA-256 of a SubjectPublicKeyInfo, under which compromised keys are blocked.
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

/// A concurrent writer won: the client should simply try again.
fn conflict_as_retry(e: AcmeStoreError) -> Error {
    match e {
        AcmeStoreError::VersionMismatch { what, id } => Error::malformed(format!(
            "{what} {id} was changed by another request meanwhile; try again"
        )),
        other => other.into(),
    }
}

/// The current time of the authority, in unix seconds, which every expiry is measured in.
fn now(authority: &Authority) -> i64 {
    authority.clock().now().unix_timestamp()
}
