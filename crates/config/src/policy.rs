//! `policy`: which names certificates may carry, in step-ca's format. The same block sits at
//! `authority.policy` (every provisioner) and on a provisioner (its own certificates):
//!
//! ```json
//! "policy": {
//!   "x509": {
//!     "allow": {"dns": ["*.example.com"], "ip": ["10.0.0.0/8"], "email": ["@example.com"],
//!               "uri": ["*.example.com"], "cn": ["Build Server"]},
//!     "deny": {"dns": ["*.internal.example.com"]},
//!     "allowWildcardNames": false
//!   },
//!   "ssh": {
//!     "user": {"allow": {"email": ["@example.com"], "principal": ["alice"]}, "deny": {...}},
//!     "host": {"allow": {"dns": ["*.example.com"], "ip": ["10.0.0.0/8"], "principal": [...]}}
//!   }
//! }
//! ```
//!
//! These types only read the file; the authority checks each rule and says which one is wrong.
//! Unknown keys are refused here (unlike the rest of ca.json): a misspelt `"alow"` would
//! otherwise leave a CA issuing names its operator meant to forbid.

use serde::{Deserialize, Serialize};

/// `null` read as an empty list, as step writes it.
fn null_as_empty<'de, D>(deserializer: D) -> std::result::Result<Vec<String>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    Option::<Vec<String>>::deserialize(deserializer).map(Option::unwrap_or_default)
}

/// A `policy` block.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x509: Option<X509PolicyConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh: Option<SshPolicyConfig>,
}

/// `policy.x509`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct X509PolicyConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow: Option<X509NamesConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deny: Option<X509NamesConfig>,
    /// Certificates may name literal wildcards (`*.example.com`) [default: false].
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_wildcard_names: bool,
}

/// The names of an X.509 `allow` or `deny` list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct X509NamesConfig {
    /// Subject common names, exactly.
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub cn: Vec<String>,
    /// DNS names: `host.example.com`, or `*.example.com` for the names under it.
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub dns: Vec<String>,
    /// IP addresses and CIDR ranges, v4 or v6.
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub ip: Vec<String>,
    /// E-mail addresses: `user@example.com`, or `@example.com` (`example.com`) for a domain.
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub email: Vec<String>,
    /// The host of URIs: `example.com` or `*.example.com`.
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub uri: Vec<String>,
}

/// `policy.ssh`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SshPolicyConfig {
    /// User certificates: their principals are e-mail addresses or user names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<SshRulesConfig>,
    /// Host certificates: their principals are host names or IP addresses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<SshRulesConfig>,
}

/// `policy.ssh.user` or `policy.ssh.host`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SshRulesConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow: Option<SshNamesConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deny: Option<SshNamesConfig>,
}

/// The names of an SSH `allow` or `deny` list (step's fields; which of them a user or host
/// list may use is checked by the authority).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SshNamesConfig {
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub dns: Vec<String>,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub ip: Vec<String>,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub email: Vec<String>,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub principal: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_cas_policy_block_reads() {
        let policy: PolicyConfig = serde_json::from_str(
            r#"{
                "x509": {
                    "allow": {"dns": ["*.example.com"], "ip": ["10.0.0.0/8"], "cn": null},
                    "deny": {"email": ["@evil.com"], "uri": ["*.evil.com"]},
                    "allowWildcardNames": true
                },
                "ssh": {
                    "user": {"allow": {"email": ["@example.com"], "principal": ["alice"]}},
                    "host": {"deny": {"dns": ["*.evil.com"], "ip": ["192.0.2.1"]}}
                }
            }"#,
        )
        .unwrap();
        let x509 = policy.x509.as_ref().unwrap();
        assert!(x509.allow_wildcard_names);
        assert_eq!(x509.allow.as_ref().unwrap().dns, ["*.example.com"]);
        assert!(x509.allow.as_ref().unwrap().cn.is_empty());
        assert_eq!(x509.deny.as_ref().unwrap().uri, ["*.evil.com"]);
        let ssh = policy.ssh.as_ref().unwrap();
        assert_eq!(
            ssh.user.as_ref().unwrap().allow.as_ref().unwrap().principal,
            ["alice"]
        );
        assert_eq!(
            ssh.host.as_ref().unwrap().deny.as_ref().unwrap().ip,
            ["192.0.2.1"]
        );
        // Written back as read.
        let again: PolicyConfig =
            serde_json::from_str(&serde_json::to_string(&policy).unwrap()).unwrap();
        assert_eq!(again, policy);
    }

    #[test]
    fn a_misspelt_key_is_refused_not_ignored() {
        for (text, key) in [
            (r#"{"x509": {"alow": {"dns": ["a.com"]}}}"#, "alow"),
            (
                r#"{"x509": {"allow": {"dns": ["a.com"], "ips": []}}}"#,
                "ips",
            ),
            (r#"{"ssh": {"users": {}}}"#, "users"),
            (
                r#"{"ssh": {"user": {"allow": {"principals": []}}}}"#,
                "principals",
            ),
            (r#"{"x.509": {}}"#, "x.509"),
        ] {
            let error = serde_json::from_str::<PolicyConfig>(text)
                .unwrap_err()
                .to_string();
            assert!(error.contains(&format!("unknown field `{key}`")), "{error}");
        }
    }
}
