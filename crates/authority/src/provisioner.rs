//! Provisioners: who may ask for certificates, and how they prove it.
//!
//! A closed set, so every place that acts on a provisioner handles every kind. Only JWK
//! provisioners authorise issuance now; other kinds from a step config are kept (listed, named
//! in errors) but authorise nothing until mayfly implements them.

use mayfly_pki::jose::jwk::Jwk;

use crate::claims::Claims;
use crate::config::ProvisionerConfig;
use crate::error::{Error, Result};

/// A provisioner whose private key is a JWK: tokens are JWS signed with it.
#[derive(Debug, Clone)]
pub struct JwkProvisioner {
    pub name: String,
    pub key: Jwk,
    /// RFC 7638 thumbprint of `key`: the `kid` tokens carry.
    pub kid: String,
    pub encrypted_key: Option<String>,
    pub claims: Claims,
    /// May use the admin API (ca.json `"admin": true`).
    pub admin: bool,
}

/// A provisioner kind mayfly reads from config but does not implement yet.
#[derive(Debug, Clone)]
pub struct UnsupportedProvisioner {
    pub kind: String,
    pub name: String,
}

#[derive(Debug, Clone)]
pub enum Provisioner {
    Jwk(Box<JwkProvisioner>),
    Unsupported(UnsupportedProvisioner),
}

impl Provisioner {
    /// Builds a provisioner from its config entry; `global` are the authority-wide claims.
    pub fn from_config(config: &ProvisionerConfig, global: Claims) -> Result<Self> {
        let claims = Claims::resolve(global, config.claims.as_ref())
            .map_err(|e| Error::Config(format!("provisioner {:?}: {e}", config.name)))?;
        if config.name.trim().is_empty() {
            return Err(Error::Config("a provisioner has an empty \"name\"".into()));
        }
        match config.kind.to_ascii_uppercase().as_str() {
            "JWK" => {
                let key_json = config.key.as_ref().ok_or_else(|| {
                    Error::Config(format!("JWK provisioner {:?} has no \"key\"", config.name))
                })?;
                let key: Jwk = serde_json::from_value(key_json.clone()).map_err(|e| {
                    Error::Config(format!(
                        "JWK provisioner {:?}: \"key\" is not a JWK: {e}",
                        config.name
                    ))
                })?;
                if key.d.is_some() {
                    return Err(Error::Config(format!(
                        "JWK provisioner {:?}: \"key\" holds a private key; only the public key belongs in ca.json",
                        config.name
                    )));
                }
                let thumbprint = key.thumbprint().map_err(|e| {
                    Error::Config(format!("JWK provisioner {:?}: {e}", config.name))
                })?;
                if let Some(kid) = &key.kid
                    && kid != &thumbprint
                {
                    return Err(Error::Config(format!(
                        "JWK provisioner {:?}: key id {kid:?} is not the key's thumbprint {thumbprint:?}",
                        config.name
                    )));
                }
                Ok(Provisioner::Jwk(Box::new(JwkProvisioner {
                    name: config.name.clone(),
                    key,
                    kid: thumbprint,
                    encrypted_key: config.encrypted_key.clone(),
                    claims,
                    admin: config.admin,
                })))
            }
            _ => Ok(Provisioner::Unsupported(UnsupportedProvisioner {
                kind: config.kind.to_ascii_uppercase(),
                name: config.name.clone(),
            })),
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Provisioner::Jwk(p) => &p.name,
            Provisioner::Unsupported(p) => &p.name,
        }
    }

    /// The type as step's API writes it.
    pub fn kind(&self) -> &str {
        match self {
            Provisioner::Jwk(_) => "JWK",
            Provisioner::Unsupported(p) => &p.kind,
        }
    }
}
