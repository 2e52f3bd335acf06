//! `ca.json`: step-ca's configuration file, read with step's field names so that a step-ca
//! configuration runs unchanged where the features overlap.
//!
//! Two layers: [`CaConfig`] mirrors the file; [`crate::Authority::from_config`] turns it into
//! runtime types. Unknown keys are collected with their JSON path and returned to the caller,
//! which reports them: step's files carry keys mayfly does not act on (`logger`, `_logger`), and
//! refusing them would break "runs unchanged", while silently ignoring them hides typos.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::claims::ClaimsConfig;
use crate::duration::GoDuration;
use crate::error::{Error, Result};

/// The whole ca.json.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CaConfig {
    /// One root path or several.
    pub root: OneOrMany,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub federated_roots: Vec<String>,
    /// The intermediate certificate.
    pub crt: String,
    /// The intermediate's private key.
    pub key: String,
    /// The intermediate key's password, in clear. step allows it; prefer `--password-file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// `host:port` to listen on; `:9000` means every interface.
    pub address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_address: Option<String>,
    pub dns_names: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logger: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db: Option<DbConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
    pub authority: AuthorityConfig,
    /// Underscore-prefixed keys are comments in step's files.
    #[serde(flatten, skip_serializing)]
    pub comments: std::collections::BTreeMap<String, serde_json::Value>,
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

/// `db`: where the authority keeps its records.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DbConfig {
    #[serde(rename = "type")]
    pub kind: String,
    pub data_source: String,
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

/// `tls`: the server's TLS settings (step's names; versions as floats).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TlsConfig {
    #[serde(default)]
    pub cipher_suites: Vec<String>,
    #[serde(default)]
    pub min_version: Option<f32>,
    #[serde(default)]
    pub max_version: Option<f32>,
    #[serde(default)]
    pub renegotiation: Option<bool>,
}

/// `authority`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorityConfig {
    #[serde(default)]
    pub provisioners: Vec<ProvisionerConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claims: Option<ClaimsConfig>,
    /// How far back notBefore is set, to absorb clock skew. step's default: 1 minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backdate: Option<GoDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<serde_json::Value>,
}

/// One entry of `authority.provisioners`.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
    /// Type-specific fields of provisioners mayfly does not implement yet (`challenge`, ...).
    #[serde(flatten, skip_serializing)]
    pub other: std::collections::BTreeMap<String, serde_json::Value>,
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
            for key in provisioner.other.keys() {
                unknown.push(format!("authority.provisioners[{index}].{key}"));
            }
        }
        Ok((config, unknown))
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
}
