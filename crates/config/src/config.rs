//! `ca.json`: step-ca's configuration file, read with step's field names so that a step-ca
//! configuration runs unchanged where the features overlap.
//!
//! Two layers: [`CaConfig`] mirrors the file; the authority turns it into
//! runtime types. Unknown keys are collected with their JSON path and returned to the caller,
//! which reports them: step's files carry keys mayfly does not act on (`logger`, `_logger`), and
//! refusing them would break "runs unchanged", while silently ignoring them hides typos.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::claims::ClaimsConfig;
pub use crate::datasource::DataSource;
use crate::duration::GoDuration;
use crate::error::{Error, Result};
use crate::policy::PolicyConfig;

/// The whole ca.json.
///
/// step writes `null` for a list it has no entries for (`"federatedRoots": null`); every list
/// here reads `null` as empty, so such a file loads unchanged.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CaConfig {
    /// One root path or several.
    #[serde(deserialize_with = "null_as_default")]
    pub root: OneOrMany,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub federated_roots: Vec<String>,
    /// The intermediate certificate.
    pub crt: String,
    /// The intermediate's private key.
    pub key: String,
    /// The intermediate key's password, in clear. step allows it; prefer `--password-file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    /// `host:port` to listen on; `:9000` means every interface.
    pub address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_address: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub dns_names: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logger: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db: Option<DbConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
    /// Certificate revocation lists (step-ca's block, with mayfly's additions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crl: Option<CrlConfig>,
    /// The OCSP responder (mayfly's own block; step-ca has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ocsp: Option<OcspConfig>,
    /// Where relying parties fetch revocation information, and a static copy of it (mayfly's
    /// addition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publication: Option<PublicationConfig>,
    pub authority: AuthorityConfig,
    /// `host:port` of the Prometheus `/metrics` listener (mayfly's addition; none when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_address: Option<String>,
    /// Resource limits of the listeners (mayfly's addition; defaults when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<LimitsConfig>,
    /// `ssh`: the SSH user and host CA keys (step's `hostKey`, `userKey`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh: Option<SshConfig>,
    /// Underscore-prefixed keys are comments in step's files.
    #[serde(flatten, skip_serializing)]
    pub comments: std::collections::BTreeMap<String, serde_json::Value>,
}

/// `null` read as the type's default (an empty list), as step means it.
fn null_as_default<'de, D, T>(deserializer: D) -> std::result::Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Option::unwrap_or_default)
}

/// A secret written in clear in ca.json (the `password` field). Its `Debug` hides it, so that a
/// configuration printed for debugging does not leak it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(text: impl Into<String>) -> Secret {
        Secret(text.into())
    }

    /// The secret itself, for the one place that uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"[redacted]\"")
    }
}

/// A string or a list of strings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl Default for OneOrMany {
    fn default() -> Self {
        OneOrMany::Many(Vec::new())
    }
}

impl OneOrMany {
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            OneOrMany::One(one) => vec![one.clone()],
            OneOrMany::Many(many) => many.clone(),
        }
    }
}

/// `db`: where the authority keeps its records. step's fields, with mayfly's `retention`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DbConfig {
    /// `sqlite`, `postgresql`, `mysql`; step's `badger`/`badgerv2` are read as SQLite beside
    /// the badger directory.
    #[serde(rename = "type")]
    pub kind: String,
    /// A path, a URL, step's MySQL DSN or PostgreSQL's key=value string; may hold a password.
    pub data_source: DataSource,
    /// The database on the server, overriding the one `dataSource` names (step's field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// badger's value directory (step's field; mayfly does not open badger).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_dir: Option<String>,
    /// badger's file loading mode (step's field; mayfly does not open badger).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub badger_file_loading_mode: Option<String>,
    /// What the retention job deletes, and how often it runs (a mayfly extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<RetentionConfig>,
}

/// `db.retention`: `{"keepExpired": "720h", "interval": "10m"}`; both optional.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetentionConfig {
    /// How long a certificate is kept after its notAfter [default: 720h, 30 days].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_expired: Option<GoDuration>,
    /// How often the job runs [default: 10m].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<GoDuration>,
}

/// `limits`: how much any one client can ask of the server. Every field is optional.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LimitsConfig {
    /// Connections served at once per listener; more are answered 503 and closed
    /// [default: 1024].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<usize>,
    /// Largest request head (request line and headers) in bytes; larger ones are answered 431
    /// [default: 16384, at least 8192].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_header_bytes: Option<usize>,
    /// How long a client may take for each of the request head and the request body; slower
    /// ones are cut off (408 for a body) [default: 15s].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_timeout: Option<GoDuration>,
    /// Requests per client IP address to the unauthenticated API routes (health, roots,
    /// provisioners); past it, 429 [default: 20 a second, bursts of 40].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitConfig>,
    /// Connections one client IP address may hold at once; more are closed unanswered
    /// [default: 64].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections_per_address: Option<usize>,
    /// How long a new connection may take to finish its TLS handshake [default: 5s].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handshake_timeout: Option<GoDuration>,
    /// Bytes of request bodies held in memory at once, over all connections; past it, 503 with
    /// Retry-After [default: 64 MiB].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_body_memory: Option<usize>,
    /// What one client IP address may ask of ACME's unauthenticated parts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acme: Option<AcmeLimitsConfig>,
}

/// `limits.acme`: per client IP address; every field optional.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AcmeLimitsConfig {
    /// `newNonce` requests a second [default: 20].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonces_per_second: Option<f64>,
    /// ...in bursts of up to [default: 50].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce_burst: Option<u32>,
    /// Nonces handed out and not used, at most [default: 1000].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unused_nonces: Option<u32>,
    /// New accounts an hour [default: 20].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accounts_per_hour: Option<u32>,
}

/// `limits.rateLimit`: a token bucket per client address.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Sustained requests a second; 0 turns the limit off.
    pub per_second: f64,
    /// Requests allowed at once after a quiet spell [default: twice `perSecond`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
}

/// `tls`: the server's TLS settings (step's names; versions as floats).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TlsConfig {
    #[serde(default, deserialize_with = "null_as_default")]
    pub cipher_suites: Vec<String>,
    #[serde(default)]
    pub min_version: Option<f32>,
    #[serde(default)]
    pub max_version: Option<f32>,
    #[serde(default)]
    pub renegotiation: Option<bool>,
}

/// `ssh`: paths of the SSH CA private keys (encrypted PEM, same password as `key`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SshConfig {
    pub host_key: String,
    pub user_key: String,
}

/// `crl`: step-ca's fields (`enabled`, `generateOnRevoke`, `cacheDuration`, `renewPeriod`,
/// `idpURL`) plus mayfly's `keepExpired` and `delta`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CrlConfig {
    #[serde(default)]
    pub enabled: bool,
    /// Regenerate within a second of each revocation (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate_on_revoke: Option<bool>,
    /// The CRL's lifetime, its nextUpdate (default 24h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_duration: Option<GoDuration>,
    /// How long after thisUpdate a new CRL is made (default 2/3 of `cacheDuration`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renew_period: Option<GoDuration>,
    /// The distribution point URL written in certificates and in the CRL (default: the CA's
    /// plain-HTTP address when `insecureAddress` is set, else its HTTPS address, `/1.0/crl`).
    #[serde(default, rename = "idpURL", skip_serializing_if = "Option::is_none")]
    pub idp_url: Option<String>,
    /// Keep revoked certificates on the CRL after they expire (default false: dropped, as RFC
    /// 5280 5.1.2.6 allows).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub keep_expired: bool,
    /// Delta CRLs between complete ones (default: enabled, 1h lifetime).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<DeltaCrlConfig>,
    /// How many CRL shards certificates are spread over (default 1: every certificate carries
    /// the complete CRL's URL). Each certificate carries its shard's URL for life; the complete
    /// CRL stays published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shards: Option<u16>,
    /// The root's CRL, DER, signed by `mayfly ca init` or `mayfly ca root-crl` with the root key
    /// (which the CA does not hold): served at `/1.0/root.crl`, where intermediates made by
    /// `ca init` point.
    #[serde(default, rename = "rootCRL", skip_serializing_if = "Option::is_none")]
    pub root_crl: Option<String>,
}

/// `publication` (mayfly's addition).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PublicationConfig {
    /// The base URL written into certificates for CRLs, OCSP and the issuer's certificate
    /// (default: the plain-HTTP listener when `insecureAddress` is set, else the HTTPS one,
    /// at the first of `dnsNames`). Set it when relying parties fetch from a web server or a
    /// CDN that serves `dir`.
    #[serde(default, rename = "baseURL", skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// A directory mayfly-ca keeps a static copy of everything relying parties fetch in: CRLs,
    /// OCSP responses (at their RFC 5019 GET paths), the CA certificates and the SSH KRL,
    /// each file replaced atomically, laid out as the URLs are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<String>,
    /// How often the static copy is rewritten whole (default 1m); a revocation is written
    /// within a second of being seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<GoDuration>,
}

/// `crl.delta`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeltaCrlConfig {
    #[serde(default)]
    pub enabled: bool,
    /// The delta CRL's lifetime (default 1h); a new one is made at 2/3 of it and after each
    /// revocation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_duration: Option<GoDuration>,
    /// Where the delta CRL is published (default: `/1.0/crl-delta` at the publication's base
    /// URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// `ocsp`: the responder mayfly runs beside its CRLs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OcspConfig {
    #[serde(default)]
    pub enabled: bool,
    /// The responder URL written in certificates (default: the CA's plain-HTTP address when
    /// `insecureAddress` is set, else its HTTPS address, `/ocsp`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// How long a response is valid, its nextUpdate (default 1h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_duration: Option<GoDuration>,
    /// Lifetime of the delegated responder certificate (default 24h); a new one is issued at
    /// 2/3 of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub responder_lifetime: Option<GoDuration>,
}

/// `authority`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorityConfig {
    #[serde(default, deserialize_with = "null_as_default")]
    pub provisioners: Vec<ProvisionerConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claims: Option<ClaimsConfig>,
    /// How far back notBefore is set, to absorb clock skew. step's default: 1 minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backdate: Option<GoDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<serde_json::Value>,
    /// The names every provisioner's certificates may carry (step-ca's `authority.policy`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicyConfig>,
}

/// One entry of `authority.provisioners`.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProvisionerConfig {
    /// `JWK`, `ACME`, ... (case-insensitive).
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encrypted_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claims: Option<ClaimsConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<serde_json::Value>,
    /// Holders of this provisioner's key, and certificates issued through it, may use the admin
    /// API (`/admin/certificates`): a mayfly extension, off by default.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub admin: bool,
    /// The names this provisioner's certificates may carry, within `authority.policy` (step-ca
    /// keeps these in its admin database; mayfly reads them here, in the same format).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicyConfig>,
    /// Type-specific fields of provisioners mayfly does not implement yet (`challenge`, ...).
    #[serde(flatten, skip_serializing)]
    pub other: std::collections::BTreeMap<String, serde_json::Value>,
}

/// The key under which an ACME provisioner keeps its external account binding keys, in clear.
const EAB_KEYS: &str = "eabKeys";

impl std::fmt::Debug for ProvisionerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut other = self.other.clone();
        if let Some(serde_json::Value::Object(keys)) = other.get_mut(EAB_KEYS) {
            for value in keys.values_mut() {
                *value = serde_json::Value::String("[redacted]".into());
            }
        }
        f.debug_struct("ProvisionerConfig")
            .field("kind", &self.kind)
            .field("name", &self.name)
            .field("key", &self.key)
            .field("encrypted_key", &self.encrypted_key)
            .field("claims", &self.claims)
            .field("options", &self.options)
            .field("admin", &self.admin)
            .field("policy", &self.policy)
            .field("other", &other)
            .finish()
    }
}

/// A path as ca.json gives it, resolved as step resolves it: relative paths against `base_dir`
/// (the working directory).
pub fn resolve_path(base_dir: &Path, path: &str) -> PathBuf {
    let path = Path::new(path);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base_dir.join(path)
    }
}

/// A loaded configuration with the keys that were not understood.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub config: CaConfig,
    pub path: PathBuf,
    /// JSON paths of keys mayfly ignores (`authority.foo`).
    pub unknown_keys: Vec<String>,
}

impl CaConfig {
    /// Reads and parses `path`. Errors name the file and the field.
    pub fn load(path: &Path) -> Result<LoadedConfig> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Io(format!("cannot read {}: {e}", path.display())))?;
        Self::parse(&text)
            .map(|(config, unknown_keys)| LoadedConfig {
                config,
                path: path.to_path_buf(),
                unknown_keys,
            })
            .map_err(|e| e.in_file(path))
    }

    /// Parses ca.json text; returns the config and the unknown keys.
    pub fn parse(text: &str) -> Result<(CaConfig, Vec<String>)> {
        let mut unknown = Vec::new();
        let deserializer = &mut serde_json::Deserializer::from_str(text);
        let config: CaConfig = serde_ignored::deserialize(deserializer, |path| {
            unknown.push(path.to_string());
        })
        .map_err(|e| Error::Config(format!("line {}, column {}: {e}", e.line(), e.column())))?;
        for key in config.comments.keys() {
            if !key.starts_with('_') {
                unknown.push(key.clone());
            }
        }
        for (index, provisioner) in config.authority.provisioners.iter().enumerate() {
            let is_acme = provisioner.kind.eq_ignore_ascii_case("ACME");
            for key in provisioner.other.keys() {
                if is_acme && crate::acme::AcmeSettings::KEYS.contains(&key.as_str()) {
                    continue;
                }
                unknown.push(format!("authority.provisioners[{index}].{key}"));
            }
        }
        Ok((config, unknown))
    }

    /// The fields that hold a secret in clear (a password or a MAC key, as opposed to a key
    /// encrypted under one), by their ca.json names: such a file must not be readable by
    /// every user.
    pub fn secrets_in_clear(&self) -> Vec<String> {
        let mut fields = Vec::new();
        if self
            .password
            .as_ref()
            .is_some_and(|p| !p.expose().is_empty())
        {
            fields.push("password".to_owned());
        }
        if self
            .db
            .as_ref()
            .is_some_and(|db| db.data_source.has_password())
        {
            fields.push("db.dataSource".to_owned());
        }
        for (index, provisioner) in self.authority.provisioners.iter().enumerate() {
            let has_keys = match provisioner.other.get(EAB_KEYS) {
                Some(serde_json::Value::Object(keys)) => !keys.is_empty(),
                _ => false,
            };
            if has_keys {
                fields.push(format!("authority.provisioners[{index}].{EAB_KEYS}"));
            }
        }
        fields
    }

    /// Writes the config as pretty JSON.
    pub fn to_json_pretty(&self) -> Result<String> {
        serde_json::to_string_pretty(self)
            .map_err(|e| Error::Config(format!("serialising ca.json: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_position_and_the_problem() {
        let err = CaConfig::parse("{").unwrap_err().to_string();
        assert!(err.contains("line 1"), "{err}");
        let err =
            CaConfig::parse(r#"{"root":"r","crt":"c","key":"k","address":":1","dnsNames":[]}"#)
                .unwrap_err()
                .to_string();
        assert!(err.contains("authority"), "{err}");
        let text = r#"{"root":"r","crt":"c","key":"k","address":":1","dnsNames":[],
            "authority":{"provisioners":[{"type":"JWK","name":"a","claims":{"maxTLSCertDuration":"30"}}]}}"#;
        let err = CaConfig::parse(text).unwrap_err().to_string();
        assert!(err.contains("\"30\" is not a duration"), "{err}");
    }

    #[test]
    fn unknown_keys_are_reported_and_comments_are_not() {
        let text = r#"{"root":"r","crt":"c","key":"k","address":":1","dnsNames":[],"_logger":{},
            "authority":{"provisioners":[],"typo":1},"extra":true}"#;
        let (_, unknown) = CaConfig::parse(text).unwrap();
        assert!(
            unknown.contains(&"authority.typo".to_string()),
            "{unknown:?}"
        );
        assert!(unknown.contains(&"extra".to_string()), "{unknown:?}");
        assert!(
            !unknown.iter().any(|k| k.contains("_logger")),
            "{unknown:?}"
        );
    }

    /// What `step ca init` writes (0.19 and today's): every `null` and every key of its `db`.
    const STEP_CA_INIT: &str = r#"{
        "root": "/s/certs/root_ca.crt",
        "federatedRoots": null,
        "crt": "/s/certs/intermediate_ca.crt",
        "key": "/s/secrets/intermediate_ca_key",
        "address": ":443",
        "insecureAddress": "",
        "dnsNames": null,
        "logger": {"format": "text"},
        "db": {"type": "badgerv2", "dataSource": "/s/db", "badgerFileLoadingMode": ""},
        "authority": {"provisioners": null},
        "tls": {"cipherSuites": null, "minVersion": 1.2, "maxVersion": 1.3, "renegotiation": false}
    }"#;

    #[test]
    fn the_nulls_step_writes_read_as_empty() {
        let (config, unknown) = CaConfig::parse(STEP_CA_INIT).unwrap();
        assert!(unknown.is_empty(), "{unknown:?}");
        assert!(config.federated_roots.is_empty());
        assert!(config.dns_names.is_empty());
        assert!(config.authority.provisioners.is_empty());
        assert!(config.tls.unwrap().cipher_suites.is_empty());
        let db = config.db.unwrap();
        assert_eq!(
            (db.kind.as_str(), db.data_source.as_str()),
            ("badgerv2", "/s/db")
        );
        assert_eq!(db.badger_file_loading_mode.as_deref(), Some(""));
        // A null where a value is required is still an error naming the field.
        let err =
            CaConfig::parse(&STEP_CA_INIT.replace(r#""/s/certs/intermediate_ca.crt""#, "null"))
                .unwrap_err()
                .to_string();
        assert!(err.contains("invalid type: null"), "{err}");
    }

    #[test]
    fn debug_output_hides_every_password() {
        let text = STEP_CA_INIT
            .replace(
                r#""type": "badgerv2", "dataSource": "/s/db""#,
                r#""type": "mysql", "dataSource": "ca:db-s3cret@tcp(db:3306)/", "database": "ca""#,
            )
            .replace(r#""address""#, r#""password": "key-s3cret", "address""#);
        let (config, _) = CaConfig::parse(&text).unwrap();
        assert_eq!(
            config.password.as_ref().map(Secret::expose),
            Some("key-s3cret")
        );
        assert_eq!(
            config.db.as_ref().map(|db| db.data_source.as_str()),
            Some("ca:db-s3cret@tcp(db:3306)/")
        );
        assert_eq!(config.secrets_in_clear(), ["password", "db.dataSource"]);
        let shown = format!("{config:?} {config:#?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("ca:***@tcp(db:3306)/"), "{shown}");
        assert!(shown.contains("[redacted]"), "{shown}");
        // Written back unchanged: redaction is for display only.
        let json = config.to_json_pretty().unwrap();
        assert!(
            json.contains("key-s3cret") && json.contains("db-s3cret"),
            "{json}"
        );
    }

    #[test]
    fn policies_are_read_at_the_authority_and_on_provisioners() {
        let text = STEP_CA_INIT.replace(
            r#""provisioners": null"#,
            r#""policy": {"x509": {"deny": {"dns": ["*.evil.test"]}}},
               "provisioners": [{"type": "JWK", "name": "ops",
                   "policy": {"ssh": {"user": {"allow": {"principal": ["alice"]}}}}}]"#,
        );
        let (config, unknown) = CaConfig::parse(&text).unwrap();
        assert!(unknown.is_empty(), "{unknown:?}");
        let authority = config.authority.policy.as_ref().unwrap();
        assert_eq!(
            authority.x509.as_ref().unwrap().deny.as_ref().unwrap().dns,
            ["*.evil.test"]
        );
        let ops = config.authority.provisioners[0].policy.as_ref().unwrap();
        assert!(ops.ssh.as_ref().unwrap().user.is_some());
        // A misspelt key in a policy stops the load, with its place in the file.
        let error = CaConfig::parse(&text.replace(r#""deny""#, r#""dny""#))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("line ") && error.contains("unknown field `dny`"),
            "{error}"
        );
    }

    #[test]
    fn acme_mac_keys_are_secrets_too() {
        let text = STEP_CA_INIT.replace(
            r#""provisioners": null"#,
            r#""provisioners": [{"type": "ACME", "name": "acme", "requireEAB": true,
                "eabKeys": {"kid-1": "bWFjLXMzY3JldA"}}]"#,
        );
        let (config, unknown) = CaConfig::parse(&text).unwrap();
        assert!(unknown.is_empty(), "{unknown:?}");
        assert_eq!(
            config.secrets_in_clear(),
            ["authority.provisioners[0].eabKeys"]
        );
        let shown = format!("{config:?}");
        assert!(!shown.contains("bWFjLXMzY3JldA"), "{shown}");
        assert!(shown.contains("kid-1"), "{shown}");
        let (plain, _) = CaConfig::parse(STEP_CA_INIT).unwrap();
        assert!(plain.secrets_in_clear().is_empty());
    }
}
