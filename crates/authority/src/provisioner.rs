//! Provisioners: who may ask for certificates, and how they prove it.
//!
//! A closed set, so every place that acts on a provisioner handles every kind. JWK, X5C and
//! K8sSA provisioners authorise requests with tokens (signed with the provisioner's key, by a
//! certificate chaining to its roots, by a Kubernetes cluster's service-account key); ACME
//! provisioners authorise issuance through the ACME protocol (`mayfly-acme`); SSHPOP ones let
//! SSH certificates renew themselves; other kinds from a step config are kept (listed, named in
//! errors) but authorise nothing until mayfly implements them.

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

/// An X5C provisioner (step's `X5C`): tokens are signed by the key of a certificate whose chain,
/// in the token's `x5c` header, reaches one of the provisioner's roots. Tokens name it in their
/// audience fragment (`…/1.0/sign#x5c/NAME`) and as their issuer.
#[derive(Debug, Clone)]
pub struct X5cProvisioner {
    pub name: String,
    /// The roots (DER) token chains must reach: the provisioner's own, not the CA's.
    pub roots: Vec<Vec<u8>>,
    pub claims: Claims,
}

impl X5cProvisioner {
    /// The provisioner's id in token audiences, as step-ca writes it (`x5c/NAME`).
    pub fn audience_fragment(&self) -> String {
        format!("x5c/{}", self.name)
    }
}

/// A Kubernetes service-account provisioner (step's `K8sSA`): tokens are the service-account
/// JWTs a cluster signs (issuer `kubernetes/serviceaccount`), checked against the cluster's
/// public keys. Such tokens do not say which provisioner they are for, so a CA has at most one.
#[derive(Debug, Clone)]
pub struct K8sSaProvisioner {
    pub name: String,
    /// The keys (DER SubjectPublicKeyInfo) that may sign service-account tokens.
    pub public_keys: Vec<Vec<u8>>,
    pub claims: Claims,
}

/// An OIDC provisioner: an OpenID provider's ID tokens, issued to this provisioner's client,
/// authorise certificates for the identity they carry (step's `OIDC`).
#[derive(Clone)]
pub struct OidcProvisioner {
    pub name: String,
    /// The client the ID tokens are issued to: their audience.
    pub client_id: String,
    /// What the client presents at the provider's token endpoint. Published to clients, as
    /// step-ca does: the flow is a native app's, whose secret cannot be kept.
    pub client_secret: String,
    /// The provider's discovery document (`…/.well-known/openid-configuration`).
    pub configuration_endpoint: String,
    /// E-mail addresses and groups whose tokens are the request's word on names.
    pub admins: Vec<String>,
    /// When set, only e-mail addresses in these domains (admins aside).
    pub domains: Vec<String>,
    /// When set, only tokens naming one of these groups.
    pub groups: Vec<String>,
    /// Where the client listens for the provider's redirect (`host:port`).
    pub listen_address: Option<String>,
    pub claims: Claims,
    /// The provider's issuer and keys, fetched when first needed.
    pub keys: std::sync::Arc<crate::credential::oidc::keys::ProviderKeys>,
}

impl std::fmt::Debug for OidcProvisioner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcProvisioner")
            .field("name", &self.name)
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .field("configuration_endpoint", &self.configuration_endpoint)
            .finish_non_exhaustive()
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
    X5c(Box<X5cProvisioner>),
    K8sSa(Box<K8sSaProvisioner>),
    Oidc(Box<OidcProvisioner>),
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
            "X5C" => {
                only_jwk_is_admin(config)?;
                let pem = pem_field(config, "roots")?;
                let roots = mayfly_pki::cert::certificates_from_pem(&pem).map_err(|e| {
                    Error::Config(format!("X5C provisioner {:?}: roots: {e}", config.name))
                })?;
                for root in &roots {
                    mayfly_pki::cert::CertificateInfo::from_der(root).map_err(|e| {
                        Error::Config(format!("X5C provisioner {:?}: roots: {e}", config.name))
                    })?;
                }
                Ok(Provisioner::X5c(Box::new(X5cProvisioner {
                    name: config.name.clone(),
                    roots,
                    claims,
                })))
            }
            "K8SSA" => {
                only_jwk_is_admin(config)?;
                let pem = pem_field(config, "publicKeys")?;
                let public_keys = mayfly_pki::pubkey::public_keys_from_pem(&pem).map_err(|e| {
                    Error::Config(format!(
                        "K8sSA provisioner {:?}: publicKeys: {e}",
                        config.name
                    ))
                })?;
                Ok(Provisioner::K8sSa(Box::new(K8sSaProvisioner {
                    name: config.name.clone(),
                    public_keys,
                    claims,
                })))
            }
            "OIDC" => {
                only_jwk_is_admin(config)?;
                Ok(Provisioner::Oidc(Box::new(oidc_from_config(
                    config, claims,
                )?)))
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
            Provisioner::Acme(p) => &p.name,
            Provisioner::SshPop(p) => &p.name,
            Provisioner::X5c(p) => &p.name,
            Provisioner::K8sSa(p) => &p.name,
            Provisioner::Oidc(p) => &p.name,
            Provisioner::Unsupported(p) => &p.name,
        }
    }

    /// The type as step's API writes it.
    pub fn kind(&self) -> &str {
        match self {
            Provisioner::Jwk(_) => "JWK",
            Provisioner::Acme(_) => "ACME",
            Provisioner::SshPop(_) => "SSHPOP",
            Provisioner::X5c(_) => "X5C",
            Provisioner::K8sSa(_) => "K8SSA",
            Provisioner::Oidc(_) => "OIDC",
            Provisioner::Unsupported(p) => &p.kind,
        }
    }
}

/// step-ca's OIDC fields, read from the entry's type-specific ones.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct OidcFields {
    #[serde(rename = "clientID", default)]
    client_id: String,
    #[serde(default)]
    client_secret: String,
    #[serde(default)]
    configuration_endpoint: String,
    #[serde(default)]
    admins: Vec<String>,
    #[serde(default)]
    domains: Vec<String>,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    listen_address: Option<String>,
}

fn oidc_from_config(config: &ProvisionerConfig, claims: Claims) -> Result<OidcProvisioner> {
    let refused =
        |what: String| Error::Config(format!("OIDC provisioner {:?}: {what}", config.name));
    let fields: serde_json::Map<String, serde_json::Value> = config
        .other
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let fields: OidcFields = serde_json::from_value(serde_json::Value::Object(fields))
        .map_err(|e| refused(e.to_string()))?;
    if fields.client_id.trim().is_empty() {
        return Err(refused("\"clientID\" is missing or empty".into()));
    }
    if fields.configuration_endpoint.trim().is_empty() {
        return Err(refused(
            "\"configurationEndpoint\" is missing or empty".into(),
        ));
    }
    let discovery = crate::credential::oidc::keys::discovery_url(&fields.configuration_endpoint)
        .map_err(|e| refused(format!("configurationEndpoint: {e}")))?;
    if let Some(address) = &fields.listen_address {
        check_listen_address(address)
            .map_err(|e| refused(format!("listenAddress {address:?}: {e}")))?;
    }
    Ok(OidcProvisioner {
        name: config.name.clone(),
        client_id: fields.client_id,
        client_secret: fields.client_secret,
        configuration_endpoint: fields.configuration_endpoint,
        admins: fields.admins,
        domains: fields.domains,
        groups: fields.groups,
        listen_address: fields.listen_address.filter(|a| !a.is_empty()),
        claims,
        keys: std::sync::Arc::new(crate::credential::oidc::keys::ProviderKeys::new(
            &config.name,
            discovery,
        )),
    })
}

/// `host:port` (the host may be empty, `:10000`, or a bracketed IPv6 address), as Go's
/// `net.SplitHostPort` reads a listen address.
fn check_listen_address(address: &str) -> std::result::Result<(), String> {
    let (host, port) = address
        .rsplit_once(':')
        .ok_or_else(|| "expected host:port".to_string())?;
    if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
        return Err("an IPv6 address must be in brackets".into());
    }
    port.parse::<u16>()
        .map(|_| ())
        .map_err(|_| format!("port {port:?} is not a number from 0 to 65535"))
}

/// The rules a set of provisioners obeys together, beyond each entry's own: at most one K8sSA
/// provisioner, as in step-ca, since a service-account token cannot say which one it is for.
pub fn check_together(provisioners: &[Provisioner]) -> Result<()> {
    let k8s: Vec<&str> = provisioners
        .iter()
        .filter(|p| matches!(p, Provisioner::K8sSa(_)))
        .map(Provisioner::name)
        .collect();
    if k8s.len() > 1 {
        return Err(Error::Config(format!(
            "K8sSA provisioners {k8s:?}: a CA has at most one, since service-account tokens do \
             not say which provisioner they are for"
        )));
    }
    Ok(())
}

/// `"admin": true` is for JWK provisioners, whose tokens and certificates the admin API knows.
fn only_jwk_is_admin(config: &ProvisionerConfig) -> Result<()> {
    if config.admin {
        return Err(Error::Config(format!(
            "{} provisioner {:?}: only JWK provisioners can be \"admin\"",
            config.kind.to_ascii_uppercase(),
            config.name
        )));
    }
    Ok(())
}

/// A PEM field of a provisioner entry as step writes it: base64 of the PEM text (Go's JSON form
/// of bytes). A PEM text written in clear is taken too, for hand-written files.
fn pem_field(config: &ProvisionerConfig, field: &str) -> Result<Vec<u8>> {
    use base64::Engine as _;
    let kind = config.kind.to_ascii_uppercase();
    let text = match config.other.get(field) {
        Some(serde_json::Value::String(text)) if !text.trim().is_empty() => text.trim(),
        Some(serde_json::Value::String(_) | serde_json::Value::Null) | None => {
            return Err(Error::Config(format!(
                "{kind} provisioner {:?} has no {field:?}",
                config.name
            )));
        }
        Some(_) => {
            return Err(Error::Config(format!(
                "{kind} provisioner {:?}: {field:?} is not a string (base64 of PEM)",
                config.name
            )));
        }
    };
    if text.starts_with("-----BEGIN") {
        return Ok(text.as_bytes().to_vec());
    }
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| {
            Error::Config(format!(
                "{kind} provisioner {:?}: {field:?} is not base64 of PEM: {e}",
                config.name
            ))
        })
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

    fn entry(kind: &str, name: &str, fields: serde_json::Value) -> Result<Provisioner> {
        let mut value = fields;
        value["type"] = kind.into();
        value["name"] = name.into();
        let config: ProvisionerConfig = serde_json::from_value(value).unwrap();
        Provisioner::from_config(&config, Claims::DEFAULT)
    }

    #[test]
    fn x5c_and_k8ssa_entries_are_read_as_step_writes_them() {
        use base64::Engine as _;
        let key = mayfly_pki::PrivateKey::generate(mayfly_pki::KeyAlgorithm::EcP256).unwrap();
        let later = time::OffsetDateTime::now_utc() + time::Duration::days(1);
        let root = mayfly_pki::cert::create_root("Devices", &key, later).unwrap();
        let pem = mayfly_pki::cert::certificate_pem(&root);
        let b64 = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
        // step writes base64 of the PEM; PEM in clear is read too.
        for roots in [b64(&pem), pem.clone()] {
            let Provisioner::X5c(x5c) =
                entry("X5C", "devices", serde_json::json!({"roots": roots})).unwrap()
            else {
                panic!("expected an X5C provisioner")
            };
            assert_eq!(x5c.roots, vec![root.clone()]);
            assert_eq!(x5c.audience_fragment(), "x5c/devices");
        }
        let spki = key.public_key_spki_der().unwrap();
        let keys = b64(&mayfly_pki::pubkey::public_key_pem(&spki));
        let Provisioner::K8sSa(k8s) =
            entry("k8sSA", "kube", serde_json::json!({"publicKeys": keys})).unwrap()
        else {
            panic!("expected a K8sSA provisioner")
        };
        assert_eq!(k8s.public_keys, vec![spki]);
        let cases = [
            ("X5C", serde_json::json!({}), "has no \"roots\""),
            ("X5C", serde_json::json!({"roots": 7}), "is not a string"),
            (
                "X5C",
                serde_json::json!({"roots": "%%%"}),
                "is not base64 of PEM",
            ),
            ("X5C", serde_json::json!({"roots": b64("nothing")}), "roots"),
            (
                "K8SSA",
                serde_json::json!({"publicKeys": null}),
                "has no \"publicKeys\"",
            ),
            (
                "K8SSA",
                serde_json::json!({"publicKeys": b64(&pem[..20])}),
                "publicKeys",
            ),
            (
                "X5C",
                serde_json::json!({"roots": b64(&pem), "admin": true}),
                "only JWK provisioners can be \"admin\"",
            ),
        ];
        for (kind, fields, expected) in cases {
            let error = entry(kind, "p", fields.clone()).unwrap_err().to_string();
            assert!(error.contains(expected), "{kind} {fields}: {error}");
        }
        let two = [
            entry("K8SSA", "a", serde_json::json!({"publicKeys": keys})).unwrap(),
            entry("K8SSA", "b", serde_json::json!({"publicKeys": keys})).unwrap(),
        ];
        assert!(check_together(&two[..1]).is_ok());
        let error = check_together(&two).unwrap_err().to_string();
        assert!(error.contains("at most one"), "{error}");
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
