//! The SSH routes' bodies, as step-ca writes them: keys and certificates are standard base64
//! of their OpenSSH wire encoding.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `POST /ssh/sign`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshSignRequest {
    /// The public key to certify, base64 wire encoding.
    #[serde(rename = "publicKey")]
    pub public_key: String,
    /// A one-time token carrying `step.ssh` claims.
    pub ott: String,
    /// `user` or `host` [default: the token's, else user].
    #[serde(rename = "certType", default, skip_serializing_if = "Option::is_none")]
    pub cert_type: Option<String>,
    #[serde(rename = "keyID", default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// At most the token's principals [default: all of them].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub principals: Vec<String>,
    /// RFC 3339 time or duration from now.
    #[serde(
        rename = "validAfter",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub valid_after: Option<String>,
    #[serde(
        rename = "validBefore",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub valid_before: Option<String>,
    /// Critical options; each must be allowed by the token with the same value (mayfly).
    #[serde(
        rename = "criticalOptions",
        default,
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub critical_options: BTreeMap<String, String>,
}

/// `/ssh/sign`, `/ssh/renew`, `/ssh/rekey`: the certificate, base64 wire encoding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshSignResponse {
    pub crt: String,
}

/// `POST /ssh/renew`: an SSH-POP token signed by the current certificate's key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshRenewRequest {
    pub ott: String,
}

/// `POST /ssh/rekey`: an SSH-POP token of the current certificate, and the new public key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshRekeyRequest {
    pub ott: String,
    #[serde(rename = "publicKey")]
    pub public_key: String,
}

/// `GET /ssh/roots` and `/ssh/federation`: CA public keys, base64 wire encoding.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshRootsResponse {
    #[serde(rename = "userKey", default)]
    pub user_key: Vec<String>,
    #[serde(rename = "hostKey", default)]
    pub host_key: Vec<String>,
}

/// `POST /ssh/config`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshConfigRequest {
    /// `user` or `host`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// Paths to render into the snippets (`HostKey`, `TrustedUserCAKeys`, ...).
    #[serde(default)]
    pub data: BTreeMap<String, String>,
}

/// One rendered configuration file or snippet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshTemplate {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub comment: String,
    pub path: String,
    /// The rendered text. step-ca's field is Go bytes, which JSON carries as standard base64;
    /// the step CLI decodes it so, and so does this type.
    #[serde(with = "base64_bytes")]
    pub content: Vec<u8>,
}

/// Bytes as Go's `encoding/json` writes `[]byte`: standard base64 with padding.
mod base64_bytes {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        STANDARD
            .decode(text.as_bytes())
            .map_err(|e| serde::de::Error::custom(format!("\"content\" is not base64: {e}")))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshConfigResponse {
    #[serde(
        rename = "userTemplates",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub user_templates: Vec<SshTemplate>,
    #[serde(
        rename = "hostTemplates",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub host_templates: Vec<SshTemplate>,
}

/// `POST /ssh/check-host`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshCheckHostRequest {
    /// `host`: step-ca refuses the request without it; mayfly-ca reads it absent as `host`.
    #[serde(rename = "type", default)]
    pub kind: String,
    pub principal: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshCheckHostResponse {
    pub exists: bool,
}

/// One host of `GET /ssh/hosts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshHost {
    pub hostname: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshHostsResponse {
    pub hosts: Vec<SshHost>,
}
