//! ACME objects as stored, and their RFC 8555 JSON renderings (which need the server's URLs).

use std::net::IpAddr;

use mayfly_pki::San;
use mayfly_pki::jose::jwk::Jwk;
use serde::{Deserialize, Serialize};

use crate::error::{Error, ProblemType, Result};

/// An identifier as sent in a newOrder (`{"type":"dns","value":"example.com"}`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Identifier {
    #[serde(rename = "type")]
    pub kind: String,
    pub value: String,
}

impl Identifier {
    /// Checks and normalises an identifier: `dns` names (lower case, a wildcard only as the
    /// whole first label) and `ip` addresses.
    pub fn validate(self) -> Result<Identifier> {
        match self.kind.as_str() {
            "dns" => {
                let value = self.value.trim_end_matches('.').to_ascii_lowercase();
                let base = value.strip_prefix("*.").unwrap_or(&value);
                let labels_ok = !base.is_empty()
                    && base.len() <= 253
                    && base.split('.').all(|label| {
                        !label.is_empty()
                            && label.len() <= 63
                            && !label.starts_with('-')
                            && !label.ends_with('-')
                            && label
                                .bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                    });
                if !labels_ok || base.parse::<IpAddr>().is_ok() {
                    return Err(Error::problem(
                        ProblemType::RejectedIdentifier,
                        format!(
                            "{:?} is not a DNS name (a wildcard is allowed only as the whole first label)",
                            self.value
                        ),
                    ));
                }
                Ok(Identifier {
                    kind: "dns".into(),
                    value,
                })
            }
            "ip" => {
                let ip: IpAddr = self.value.parse().map_err(|_| {
                    Error::problem(
                        ProblemType::RejectedIdentifier,
                        format!("{:?} is not an IP address", self.value),
                    )
                })?;
                Ok(Identifier {
                    kind: "ip".into(),
                    value: ip.to_string(),
                })
            }
            other => Err(Error::problem(
                ProblemType::UnsupportedIdentifier,
                format!("identifier type {other:?} is not supported: expected \"dns\" or \"ip\""),
            )),
        }
    }

    pub fn is_wildcard(&self) -> bool {
        self.kind == "dns" && self.value.starts_with("*.")
    }

    /// The identifier an authorization is for: a wildcard's authorization names the base domain
    /// (RFC 8555 7.1.3, `wildcard: true`).
    pub fn authorization_identifier(&self) -> Identifier {
        Identifier {
            kind: self.kind.clone(),
            value: self
                .value
                .strip_prefix("*.")
                .unwrap_or(&self.value)
                .to_string(),
        }
    }

    /// The key under which authorizations are indexed: `dns:example.com`, `dns:*.example.com`.
    pub fn key(&self) -> String {
        format!("{}:{}", self.kind, self.value)
    }

    /// The SAN a certificate carries for this identifier.
    pub fn to_san(&self) -> Result<San> {
        match self.kind.as_str() {
            "ip" => self
                .value
                .parse()
                .map(San::Ip)
                .map_err(|_| Error::Internal(format!("stored IP {:?} unparsable", self.value))),
            _ => Ok(San::Dns(self.value.clone())),
        }
    }

    /// The identifier a certificate SAN stands for, if it is a kind ACME issues.
    pub fn from_san(san: &San) -> Option<Identifier> {
        match san {
            San::Dns(name) => Some(Identifier {
                kind: "dns".into(),
                value: name.to_ascii_lowercase(),
            }),
            San::Ip(ip) => Some(Identifier {
                kind: "ip".into(),
                value: ip.to_string(),
            }),
            San::Email(_) | San::Uri(_) => None,
        }
    }
}

/// A problem document (RFC 7807) as stored in an order or challenge and sent to clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub detail: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
}

impl Problem {
    pub fn new(problem: ProblemType, detail: impl Into<String>) -> Self {
        Problem {
            kind: problem.urn(),
            detail: detail.into(),
            status: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Account {
    pub id: String,
    pub key: Jwk,
    /// `valid`, `deactivated` or `revoked`.
    pub status: String,
    #[serde(default)]
    pub contact: Vec<String>,
    #[serde(default)]
    pub terms_of_service_agreed: bool,
    pub created_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_account: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    pub id: String,
    pub account: String,
    /// As stored: `pending`, `processing`, `valid` or `invalid`; `ready` is derived from the
    /// authorizations when the order is read, so that no authorization update has to touch the
    /// order (and so cannot be lost).
    pub status: String,
    pub expires: i64,
    pub identifiers: Vec<Identifier>,
    pub authorizations: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<String>,
    /// Decimal serial of the issued certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Problem>,
    /// RFC 9773 certID of the certificate this order replaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<String>,
    pub created_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Authorization {
    pub id: String,
    pub account: String,
    pub identifier: Identifier,
    /// `pending`, `valid`, `invalid`, `deactivated`, `expired` or `revoked`.
    pub status: String,
    pub expires: i64,
    #[serde(default)]
    pub wildcard: bool,
    pub challenges: Vec<Challenge>,
}

impl Authorization {
    /// The index key: wildcard authorizations are kept apart from plain ones, since only
    /// dns-01 proves control of a whole zone.
    pub fn index_key(&self) -> String {
        if self.wildcard {
            format!("{}:*.{}", self.identifier.kind, self.identifier.value)
        } else {
            self.identifier.key()
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Challenge {
    #[serde(rename = "type")]
    pub kind: String,
    pub token: String,
    /// `pending`, `processing`, `valid` or `invalid`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validated: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Problem>,
}

/// RFC 3339 text of a unix time.
pub fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_normalised_or_refused() {
        let ok = [
            ("dns", "Example.COM.", "example.com"),
            ("dns", "*.example.com", "*.example.com"),
            ("ip", "127.0.0.1", "127.0.0.1"),
            ("ip", "::1", "::1"),
        ];
        for (kind, value, expected) in ok {
            let id = Identifier {
                kind: kind.into(),
                value: value.into(),
            }
            .validate()
            .unwrap();
            assert_eq!(id.value, expected);
        }
        let bad = [
            ("dns", "", ProblemType::RejectedIdentifier),
            ("dns", "a.*.example.com", ProblemType::RejectedIdentifier),
            ("dns", "*example.com", ProblemType::RejectedIdentifier),
            ("dns", "-a.example.com", ProblemType::RejectedIdentifier),
            ("dns", "a..example.com", ProblemType::RejectedIdentifier),
            ("dns", "127.0.0.1", ProblemType::RejectedIdentifier),
            ("ip", "example.com", ProblemType::RejectedIdentifier),
            ("email", "a@example.com", ProblemType::UnsupportedIdentifier),
        ];
        for (kind, value, problem) in bad {
            let err = Identifier {
                kind: kind.into(),
                value: value.into(),
            }
            .validate()
            .unwrap_err();
            assert_eq!(err.problem_type(), problem, "{value:?}: {err}");
        }
    }
}
