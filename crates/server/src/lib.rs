//! `mayfly-ca`, the certificate authority server: configuration loading, TLS, the HTTP API and
//! its error mapping, dev mode. Decisions belong to `mayfly-authority`; this crate only wires
//! them to the network.
#![forbid(unsafe_code)]

pub mod api;
pub mod body;
pub mod dev;
pub mod error;
pub mod serve;
pub mod startup;
pub mod tls;

/// `$MAYFLY_PATH`, or `~/.mayfly`.
pub fn mayfly_path() -> anyhow::Result<std::path::PathBuf> {
    use anyhow::Context;
    if let Some(path) = std::env::var_os("MAYFLY_PATH").filter(|p| !p.is_empty()) {
        return Ok(path.into());
    }
    let home = std::env::var_os("HOME").context("neither MAYFLY_PATH nor HOME is set")?;
    Ok(std::path::PathBuf::from(home).join(".mayfly"))
}
