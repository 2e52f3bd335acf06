//! Provisioners: who may ask for certificates, and how they prove it.
//!
//! A closed set, so every place that acts on a provisioner handles every kind. JWK provisioners
//! authorise `/sign` with tokens; ACME provisioners authorise issuance through the ACME protocol
//! (`mayfly-acme`); other kinds from a step config are kept (listed, named in errors) but
//! authorise nothing until mayfly implements them.

use mayfly_pki::jose::jwk::Jwk;

use crate::error::{Error, Result};
pub use mayfly_config::acme::{ACME_DEFAULT_REVOCATION_REASONS, AcmeSettings};
use mayfly_config::claims::Claims;
use mayfly_config::config::ProvisionerConfig;

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

/// An ACME provisioner (RFC 8555): accounts prove control of identifiers by challenges.
#[derive(Debug, Clone)]
pub struct AcmeProvisioner {
    pub name: String,
    pub claims: Claims,
    pub settings: AcmeSettings,
}

/// An SSH-POP provisioner (step's `SSHPOP`): the holder of an SSH certificate this CA issued
/// proves possession of its key to renew, rekey or revoke it. Tokens name it in their audience
/// fragment (`…/1.0/ssh/renew#sshpop/NAME`) and as their issuer.
#[derive(Debug, Clone)]
pub struct SshPopProvisioner {
    pub name: String,
    pub claims: Claims,
}

impl SshPopProvisioner {
    /// The provisioner's id in token audiences, as step-ca writes it (`sshpop/NAME`).
    pub fn audience_fragment(&self) -> String {
        format!("sshpop/{}", self.name)
    }
}

/// The longest provisioner name: the store records it with every certificate.
pub const MAX_NAME_LEN: usize = 255;

/// A provisioner kind mayfly reads from config but does not implement yet.
#[derive(Debug, Clone)]
pub struct UnsupportedProvisioner {
    pub kind: String,
    pub name: String,
}

#[derive(Debug, Clone)]
pub enum Provisioner {
    Jwk(Box<JwkProvisioner>),
    Acme(Box<AcmeProvisioner>),
    SshPop(Box<SshPopProvisioner>),
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
        if config.name.chars().count() > MAX_NAME_LEN {
            return Err(Error::Config(format!(
                "provisioner name {:?}... is longer than {MAX_NAME_LEN} characters",
                config.name.chars().take(20).collect::<String>()
            )));
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
            "ACME" => {
                let fields: serde_json::Map<String, serde_json::Value> = config
                    .other
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                let settings: AcmeSettings =
                    serde_json::from_value(serde_json::Value::Object(fields)).map_err(|e| {
                        Error::Config(format!("ACME provisioner {:?}: {e}", config.name))
                    })?;
                for challenge in &settings.challenges {
                    if !matches!(challenge.as_str(), "http-01" | "dns-01" | "tls-alpn-01") {
                        return Err(Error::Config(format!(
                            "ACME provisioner {:?}: challenge {challenge:?} is not one of http-01, dns-01, tls-alpn-01",
                            config.name
                        )));
                    }
                }
                for code in settings.allowed_revocation_reasons() {
                    crate::revocation::ReasonCode::from_code(i64::from(*code))
                        .and_then(crate::revocation::ReasonCode::revocable)
                        .map_err(|e| {
                            Error::Config(format!(
                                "ACME provisioner {:?}: revocationReasons: {e}",
                                config.name
                            ))
                        })?;
                }
                if settings.insecure_http01_port.is_some()
                    || settings.insecure_tls_alpn01_port.is_some()
                    || settings.insecure_validation_address.is_some()
                    || settings.insecure_dns_resolver.is_some()
                {
                    tracing::warn!(
                        provisioner = %config.name,
                        "ACME provisioner validates challenges with insecure test settings \
                         (insecureHttp01Port, insecureTlsAlpn01Port, insecureValidationAddress, \
                         insecureDnsResolver): never use them in production"
                    );
                }
                Ok(Provisioner::Acme(Box::new(AcmeProvisioner {
                    name: config.name.clone(),
                    claims,
                    settings,
                })))
            }
            "SSHPOP" => Ok(Provisioner::SshPop(Box::new(SshPopProvisioner {
                name: config.name.clone(),
                claims,
            }))),
            _ => Ok(Provisioner::Unsupported(UnsupportedProvisioner {
                kind: config.kind.to_ascii_uppercase(),
                name: config.name.clone(),
            })),
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Provisioner::Jwk(p) => &p.name,
            Provisioner::Acme(p) => &p.name,
            Provisioner::SshPop(p) => &p.name,
            Provisioner::Unsupported(p) => &p.name,
        }
    }

    /// The type as step's API writes it.
    pub fn kind(&self) -> &str {
        match self {
            Provisioner::Jwk(_) => "JWK",
            Provisioner::Acme(_) => "ACME",
            Provisioner::SshPop(_) => "SSHPOP",
            Provisioner::Unsupported(p) => &p.kind,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_the_column_that_records_them() {
        let named = |name: String| ProvisionerConfig {
            kind: "SSHPOP".into(),
            name,
            key: None,
            encrypted_key: None,
            claims: None,
            options: None,
            admin: false,
            policy: None,
            other: Default::default(),
        };
        let longest = "é".repeat(MAX_NAME_LEN);
        assert!(Provisioner::from_config(&named(longest), Claims::DEFAULT).is_ok());
        let error = Provisioner::from_config(&named("n".repeat(MAX_NAME_LEN + 1)), Claims::DEFAULT)
            .unwrap_err();
        assert!(error.to_string().contains("longer than 255"), "{error}");
    }

    fn acme(fields: serde_json::Value) -> Result<Provisioner> {
        let other = match fields {
            serde_json::Value::Object(map) => map.into_iter().collect(),
            _ => Default::default(),
        };
        let config = ProvisionerConfig {
            kind: "acme".into(),
            name: "acme".into(),
            key: None,
            encrypted_key: None,
            claims: None,
            options: None,
            admin: false,
            policy: None,
            other,
        };
        Provisioner::from_config(&config, Claims::DEFAULT)
    }

    #[test]
    fn acme_settings_are_read_and_checked() {
        let Provisioner::Acme(p) = acme(serde_json::json!({
            "requireEAB": true,
            "challenges": ["dns-01"],
            "revocationReasons": [0, 3],
            "forceCN": true,
        }))
        .unwrap() else {
            panic!("expected an ACME provisioner")
        };
        assert!(p.settings.require_eab);
        assert_eq!(p.settings.allowed_revocation_reasons(), &[0, 3]);
        let Provisioner::Acme(default) = acme(serde_json::json!({})).unwrap() else {
            panic!("expected an ACME provisioner")
        };
        assert_eq!(default.settings.allowed_revocation_reasons(), &[0, 1, 4, 5]);
        let cases = [
            (
                serde_json::json!({"challenges": ["http-02"]}),
                "\"http-02\" is not one of",
            ),
            (
                serde_json::json!({"revocationReasons": [7]}),
                "revocationReasons",
            ),
            (
                serde_json::json!({"insecureHttp01Port": "x"}),
                "invalid type",
            ),
            (
                serde_json::json!({"insecureDnsResolver": "nowhere"}),
                "acme",
            ),
        ];
        for (fields, expected) in cases {
            let err = acme(fields.clone()).unwrap_err().to_string();
            assert!(err.contains(expected), "{fields}: {err}");
        }
    }
}
