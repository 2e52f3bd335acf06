//! The ACME protocol (RFC 8555) of mayfly: accounts, orders, authorizations, challenges
//! (http-01, dns-01, tls-alpn-01), finalization through the authority's sign-and-record path, revocation by
//! Let's Encrypt's rules, key change, and renewal information (RFC 9773).
//!
//! No HTTP types: the server hands requests in as URL, content type and body, and renders the
//! [`Reply`] or the [`Error`] (whose problem type is named here). State lives behind the
//! [`store::AcmeStore`] trait, implemented in `mayfly-store`.
#![forbid(unsafe_code)]

pub mod dns;
pub mod eab;
pub mod error;
pub mod http01;
pub mod jws;
pub mod limits;
pub mod model;
pub mod nonces;
pub mod renewal;
pub mod service;
pub mod store;
pub mod tasks;
pub mod tls_alpn;
pub mod validate;

pub use error::{Error, ErrorKind, ProblemType, Result};
pub use service::{Acme, Reply, ReplyBody, Request};
