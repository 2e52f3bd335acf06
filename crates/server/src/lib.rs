//! `mayfly-ca`, the certificate authority server: configuration loading, TLS, the HTTP API and
//! its error mapping, dev mode. Decisions belong to `mayfly-authority`; this crate only wires
//! them to the network.
#![forbid(unsafe_code)]

pub mod acme;
pub mod admin;
pub mod api;
pub mod body;
pub mod connections;
pub mod dev;
pub mod error;
pub mod limits;
pub mod metrics;
pub mod observe;
pub mod oidc;
pub mod permissions;
pub mod revocation;
pub mod serve;
pub mod ssh;
pub mod startup;
pub mod static_publish;
pub mod tls;
