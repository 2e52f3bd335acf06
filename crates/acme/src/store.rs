//! The storage the ACME state machine needs, as a trait it owns (backends in `mayfly-store`).
//!
//! Accounts, orders and authorizations are stored as JSON documents (this crate's serde types)
//! beside the few columns that are looked up or compared. Each document has a version; every
//! state transition is a compare-and-set on it, so two instances (or two requests) racing on
//! one object cannot both win: the loser sees [`AcmeStoreError::VersionMismatch`] and re-reads.
//! Times are unix seconds.

pub use mayfly_authority::store::BoxFuture;
use mayfly_pki::SerialNumber;

use crate::model::AuthorizationStatus;

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AcmeStoreError {
    /// Another account already has this key (RFC 7638 thumbprint).
    #[error("key {thumbprint} belongs to account {account}")]
    KeyTaken { thumbprint: String, account: String },
    /// The object changed since it was read; the caller re-reads and decides again.
    #[error("{what} {id} changed meanwhile")]
    VersionMismatch { what: &'static str, id: String },
    /// An object with this id exists already.
    #[error("{what} {id} exists already")]
    Duplicate { what: &'static str, id: String },
    #[error("storage backend failed: {0}")]
    Backend(String),
}

/// A stored document with its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    pub id: String,
    pub version: i64,
    /// JSON of the object.
    pub body: String,
}

/// An account row: the document and the key that identifies it.
#[derive(Debug, Clone)]
pub struct AccountRow<'a> {
    pub id: &'a str,
    pub key_thumbprint: &'a str,
    pub body: &'a str,
    pub created_at: i64,
}

/// An order row; `identifiers` (`dns:example.com`) are indexed for rate limits.
#[derive(Debug, Clone)]
pub struct OrderRow<'a> {
    pub id: &'a str,
    pub account: &'a str,
    pub identifiers: &'a [String],
    pub body: &'a str,
    pub created_at: i64,
}

/// An authorization row; `identifier` (`dns:example.com`, `dns:*.example.com`) is indexed so a
/// valid authorization can be reused and can prove control for revocation.
#[derive(Debug, Clone)]
pub struct AuthorizationRow<'a> {
    pub id: &'a str,
    pub account: &'a str,
    pub identifier: &'a str,
    /// Stored as its RFC 8555 name; only `valid` ones are found again.
    pub status: AuthorizationStatus,
    pub expires_at: i64,
    pub body: &'a str,
}

/// Durable state of the ACME protocol.
pub trait AcmeStore: Send + Sync {
    /// Records a fresh nonce.
    fn insert_nonce<'a>(
        &'a self,
        nonce: &'a str,
        expires_at: i64,
    ) -> BoxFuture<'a, Result<(), AcmeStoreError>>;

    /// Deletes the nonce if it is recorded and not expired; true when it was (first use).
    fn consume_nonce<'a>(
        &'a self,
        nonce: &'a str,
        now: i64,
    ) -> BoxFuture<'a, Result<bool, AcmeStoreError>>;

    /// Deletes nonces that expired before `now`; returns how many.
    fn prune_nonces(&self, now: i64) -> BoxFuture<'_, Result<u64, AcmeStoreError>>;

    /// Fails with [`AcmeStoreError::KeyTaken`] when another account has the key.
    fn insert_account<'a>(
        &'a self,
        account: &'a AccountRow<'a>,
    ) -> BoxFuture<'a, Result<(), AcmeStoreError>>;

    fn account<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Versioned>, AcmeStoreError>>;

    fn account_by_key<'a>(
        &'a self,
        thumbprint: &'a str,
    ) -> BoxFuture<'a, Result<Option<Versioned>, AcmeStoreError>>;

    /// Compare-and-set on the account's version; the key may change (keyChange).
    fn update_account<'a>(
        &'a self,
        account: &'a AccountRow<'a>,
        expected_version: i64,
    ) -> BoxFuture<'a, Result<(), AcmeStoreError>>;

    /// Records an order with the authorizations it creates, in one transaction.
    fn insert_order<'a>(
        &'a self,
        order: &'a OrderRow<'a>,
        authorizations: &'a [AuthorizationRow<'a>],
    ) -> BoxFuture<'a, Result<(), AcmeStoreError>>;

    fn order<'a>(&'a self, id: &'a str)
    -> BoxFuture<'a, Result<Option<Versioned>, AcmeStoreError>>;

    /// Ids of the account's orders, newest first, at most `limit`.
    fn account_orders<'a>(
        &'a self,
        account: &'a str,
        limit: u32,
    ) -> BoxFuture<'a, Result<Vec<String>, AcmeStoreError>>;

    /// Compare-and-set on the order's version.
    fn update_order<'a>(
        &'a self,
        id: &'a str,
        expected_version: i64,
        body: &'a str,
    ) -> BoxFuture<'a, Result<(), AcmeStoreError>>;

    fn authorization<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Versioned>, AcmeStoreError>>;

    /// Compare-and-set on the authorization's version.
    fn update_authorization<'a>(
        &'a self,
        row: &'a AuthorizationRow<'a>,
        expected_version: i64,
    ) -> BoxFuture<'a, Result<(), AcmeStoreError>>;

    /// The account's valid authorizations for `identifier` that expire after `now`.
    fn valid_authorizations<'a>(
        &'a self,
        account: &'a str,
        identifier: &'a str,
        now: i64,
    ) -> BoxFuture<'a, Result<Vec<Versioned>, AcmeStoreError>>;

    /// Orders created since `since` by `account`.
    fn count_orders_by_account<'a>(
        &'a self,
        account: &'a str,
        since: i64,
    ) -> BoxFuture<'a, Result<u64, AcmeStoreError>>;

    /// Orders created since `since` naming `identifier`, over all accounts.
    fn count_orders_by_identifier<'a>(
        &'a self,
        identifier: &'a str,
        since: i64,
    ) -> BoxFuture<'a, Result<u64, AcmeStoreError>>;

    /// Remembers which account and order a certificate was issued for (keyed by the decimal
    /// serial, as the certificate store keys it).
    fn record_certificate<'a>(
        &'a self,
        serial: &'a SerialNumber,
        account: &'a str,
        order: &'a str,
    ) -> BoxFuture<'a, Result<(), AcmeStoreError>>;

    /// The account a certificate was issued for, when it was issued over ACME.
    fn certificate_account<'a>(
        &'a self,
        serial: &'a SerialNumber,
    ) -> BoxFuture<'a, Result<Option<String>, AcmeStoreError>>;

    /// Blocks a public key (hex SHA-256 of its SubjectPublicKeyInfo) for future certificates.
    fn block_key<'a>(
        &'a self,
        spki_sha256: &'a str,
        at: i64,
    ) -> BoxFuture<'a, Result<(), AcmeStoreError>>;

    fn key_blocked<'a>(
        &'a self,
        spki_sha256: &'a str,
    ) -> BoxFuture<'a, Result<bool, AcmeStoreError>>;
}
