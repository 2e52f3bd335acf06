//! ACME objects as stored, and their RFC 8555 JSON renderings (which need the server's URLs).
//!
//! States, challenge kinds, identifier kinds and certificate serials are types: they are
//! written to stored documents and to clients in RFC 8555's words (`"pending"`, `"http-01"`,
//! `"dns"`, a decimal serial) and nothing else can be stored or compared by mistake.

use std::fmt;
use std::net::IpAddr;

use mayfly_pki::jose::jwk::Jwk;
use mayfly_pki::{San, SerialNumber};
use serde::{Deserialize, Serialize};

use crate::error::{Error, ProblemType, Result};

/// Declares a state or kind enum with its RFC 8555 names, used alike in stored documents, in
/// answers and in log lines.
macro_rules! names {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// The RFC 8555 name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

names! {
    /// RFC 8555 7.1.6: an account is valid until its owner deactivates it (or the CA revokes it).
    AccountStatus {
        Valid = "valid",
        Deactivated = "deactivated",
        Revoked = "revoked",
    }
}

names! {
    /// RFC 8555 7.1.6. `Ready` is never stored: it is derived from the authorizations when an
    /// order is read, so that no authorization update has to touch the order (and so cannot
    /// be lost).
    OrderStatus {
        Pending = "pending",
        Ready = "ready",
        Processing = "processing",
        Valid = "valid",
        Invalid = "invalid",
    }
}

names! {
    /// RFC 8555 7.1.6. `Expired` is derived from `expires` when an authorization is read.
    AuthorizationStatus {
        Pending = "pending",
        Valid = "valid",
        Invalid = "invalid",
        Deactivated = "deactivated",
        Expired = "expired",
        Revoked = "revoked",
    }
}

names! {
    /// RFC 8555 7.1.6.
    ChallengeStatus {
        Pending = "pending",
        Processing = "processing",
        Valid = "valid",
        Invalid = "invalid",
    }
}

names! {
    /// The challenge types mayfly validates (RFC 8555 8.3, 8.4; RFC 8737).
    ChallengeKind {
        Http01 = "http-01",
        Dns01 = "dns-01",
        TlsAlpn01 = "tls-alpn-01",
    }
}

names! {
    /// The identifier types mayfly issues for (RFC 8555 9.7.7; RFC 8738).
    IdentifierKind {
        Dns = "dns",
        Ip = "ip",
    }
}

impl AuthorizationStatus {
    /// The status as of `now`: a pending or valid authorization whose `expires` has passed is
    /// expired; at `expires` itself it still holds.
    pub fn as_of(self, expires: i64, now: i64) -> AuthorizationStatus {
        match self {
            AuthorizationStatus::Pending | AuthorizationStatus::Valid if now > expires => {
                AuthorizationStatus::Expired
            }
            other => other,
        }
    }
}

impl OrderStatus {
    /// The status clients see: a stored `pending` order is `invalid` once it or one of its
    /// authorizations has expired or failed, `ready` once every authorization is valid, and
    /// `pending` otherwise; other stored states stand as they are. `authorizations` are the
    /// order's authorizations' statuses as of `now` ([`AuthorizationStatus::as_of`]).
    pub fn as_of(
        self,
        expires: i64,
        authorizations: &[AuthorizationStatus],
        now: i64,
    ) -> OrderStatus {
        if self != OrderStatus::Pending {
            return self;
        }
        let failed = authorizations.iter().any(|s| {
            matches!(
                s,
                AuthorizationStatus::Invalid
                    | AuthorizationStatus::Deactivated
                    | AuthorizationStatus::Expired
                    | AuthorizationStatus::Revoked
            )
        });
        if now > expires || failed {
            OrderStatus::Invalid
        } else if authorizations
            .iter()
            .all(|s| *s == AuthorizationStatus::Valid)
        {
            OrderStatus::Ready
        } else {
            OrderStatus::Pending
        }
    }
}

/// An identifier as a client sends it in a newOrder (`{"type":"dns","value":"example.com"}`),
/// before it is checked: its type may be one mayfly does not issue for, which is refused with
/// `unsupportedIdentifier` rather than as a malformed request.
#[derive(Debug, Clone, Deserialize)]
pub struct RequestedIdentifier {
    #[serde(rename = "type")]
    pub kind: String,
    pub value: String,
}

impl RequestedIdentifier {
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
                    kind: IdentifierKind::Dns,
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
                    kind: IdentifierKind::Ip,
                    value: ip.to_string(),
                })
            }
            other => Err(Error::problem(
                ProblemType::UnsupportedIdentifier,
                format!("identifier type {other:?} is not supported: expected \"dns\" or \"ip\""),
            )),
        }
    }
}

/// A checked identifier, as stored in orders and authorizations and sent to clients.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Identifier {
    #[serde(rename = "type")]
    pub kind: IdentifierKind,
    pub value: String,
}

impl Identifier {
    pub fn is_wildcard(&self) -> bool {
        self.kind == IdentifierKind::Dns && self.value.starts_with("*.")
    }

    /// The identifier an authorization is for: a wildcard's authorization names the base domain
    /// (RFC 8555 7.1.3, `wildcard: true`).
    pub fn authorization_identifier(&self) -> Identifier {
        Identifier {
            kind: self.kind,
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
        match self.kind {
            IdentifierKind::Ip => self
                .value
                .parse()
                .map(San::Ip)
                .map_err(|_| Error::Internal(format!("stored IP {:?} unparsable", self.value))),
            IdentifierKind::Dns => Ok(San::Dns(self.value.clone())),
        }
    }

    /// The identifier a certificate SAN stands for, if it is a kind ACME issues.
    pub fn from_san(san: &San) -> Option<Identifier> {
        match san {
            San::Dns(name) => Some(Identifier {
                kind: IdentifierKind::Dns,
                value: name.to_ascii_lowercase(),
            }),
            San::Ip(ip) => Some(Identifier {
                kind: IdentifierKind::Ip,
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
    pub status: AccountStatus,
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
    /// As stored: `pending`, `processing`, `valid` or `invalid` ([`OrderStatus::as_of`]
    /// derives what clients see).
    pub status: OrderStatus,
    pub expires: i64,
    pub identifiers: Vec<Identifier>,
    pub authorizations: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<String>,
    /// The serial of the issued certificate (stored in decimal, as every store keys
    /// certificates).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "decimal_serial"
    )]
    pub certificate: Option<SerialNumber>,
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
    /// As stored; [`AuthorizationStatus::as_of`] derives `expired`.
    pub status: AuthorizationStatus,
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

    /// The status as of `now`.
    pub fn status_as_of(&self, now: i64) -> AuthorizationStatus {
        self.status.as_of(self.expires, now)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Challenge {
    #[serde(rename = "type")]
    pub kind: ChallengeKind,
    pub token: String,
    pub status: ChallengeStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validated: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Problem>,
}

/// A serial number in its decimal text form.
pub(crate) mod decimal_serial {
    use mayfly_pki::SerialNumber;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        serial: &Option<SerialNumber>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match serial {
            Some(serial) => serializer.serialize_str(&serial.to_decimal()),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<SerialNumber>, D::Error> {
        Option::<String>::deserialize(deserializer)?
            .map(|text| SerialNumber::from_decimal(&text).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// The serial a `certificate/{serial}` URL names: its decimal form exactly as this server
/// writes it, so that one certificate has one URL.
pub fn serial_in_url(text: &str) -> Option<SerialNumber> {
    SerialNumber::from_decimal(text)
        .ok()
        .filter(|serial| serial.to_decimal() == text)
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

    fn requested(kind: &str, value: &str) -> RequestedIdentifier {
        RequestedIdentifier {
            kind: kind.into(),
            value: value.into(),
        }
    }

    #[test]
    fn identifiers_are_normalised_or_refused() {
        let ok = [
            ("dns", "Example.COM.", IdentifierKind::Dns, "example.com"),
            ("dns", "*.example.com", IdentifierKind::Dns, "*.example.com"),
            ("ip", "127.0.0.1", IdentifierKind::Ip, "127.0.0.1"),
            ("ip", "::1", IdentifierKind::Ip, "::1"),
        ];
        for (kind, value, expected_kind, expected) in ok {
            let id = requested(kind, value).validate().unwrap();
            assert_eq!((id.kind, id.value.as_str()), (expected_kind, expected));
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
            ("DNS", "example.com", ProblemType::UnsupportedIdentifier),
        ];
        for (kind, value, problem) in bad {
            let err = requested(kind, value).validate().unwrap_err();
            assert_eq!(err.problem_type(), problem, "{value:?}: {err}");
        }
    }

    #[test]
    fn names_are_rfc_8555_words_in_documents_and_text() {
        let challenge = Challenge {
            kind: ChallengeKind::TlsAlpn01,
            token: "t".into(),
            status: ChallengeStatus::Processing,
            validated: None,
            error: None,
        };
        let json = serde_json::to_value(&challenge).unwrap();
        assert_eq!(json["type"], "tls-alpn-01");
        assert_eq!(json["status"], "processing");
        for kind in [
            ChallengeKind::Http01,
            ChallengeKind::Dns01,
            ChallengeKind::TlsAlpn01,
        ] {
            let text = serde_json::to_string(&kind).unwrap();
            assert_eq!(text, format!("\"{kind}\""));
            assert_eq!(serde_json::from_str::<ChallengeKind>(&text).unwrap(), kind);
        }
        // A document naming a state RFC 8555 does not have is refused, not stored as text.
        assert!(serde_json::from_str::<ChallengeStatus>("\"done\"").is_err());
        assert!(serde_json::from_str::<OrderStatus>("\"Valid\"").is_err());
        assert_eq!(AuthorizationStatus::Deactivated.to_string(), "deactivated");
        assert_eq!(IdentifierKind::Ip.as_str(), "ip");
    }

    #[test]
    fn serials_are_stored_in_decimal_and_urls_name_them_canonically() {
        let serial = SerialNumber::from_decimal("30671613121311574910895916201205874495").unwrap();
        #[derive(Serialize, Deserialize)]
        struct Holder {
            #[serde(
                default,
                skip_serializing_if = "Option::is_none",
                with = "decimal_serial"
            )]
            certificate: Option<SerialNumber>,
        }
        let text = serde_json::to_string(&Holder {
            certificate: Some(serial.clone()),
        })
        .unwrap();
        assert_eq!(
            text,
            r#"{"certificate":"30671613121311574910895916201205874495"}"#
        );
        let back: Holder = serde_json::from_str(&text).unwrap();
        assert_eq!(back.certificate, Some(serial.clone()));
        let none: Holder = serde_json::from_str("{}").unwrap();
        assert_eq!(none.certificate, None);
        assert!(serde_json::from_str::<Holder>(r#"{"certificate":"12a"}"#).is_err());

        assert_eq!(
            serial_in_url("30671613121311574910895916201205874495"),
            Some(serial)
        );
        for other in ["", "012", "+12", "12a", " 12", "1".repeat(60).as_str()] {
            assert_eq!(serial_in_url(other), None, "{other:?}");
        }
    }

    /// The expiry rules, pinned at the second of expiry: `expires` itself is still in time.
    #[test]
    fn authorizations_expire_after_their_expires_second() {
        let expires = 1_000_000;
        for status in [AuthorizationStatus::Pending, AuthorizationStatus::Valid] {
            assert_eq!(status.as_of(expires, expires - 1), status);
            assert_eq!(status.as_of(expires, expires), status);
            assert_eq!(
                status.as_of(expires, expires + 1),
                AuthorizationStatus::Expired
            );
        }
        // Final states stay what they are.
        for status in [
            AuthorizationStatus::Invalid,
            AuthorizationStatus::Deactivated,
            AuthorizationStatus::Revoked,
        ] {
            assert_eq!(status.as_of(expires, expires + 1), status);
        }
    }

    #[test]
    fn an_order_is_ready_pending_or_invalid_by_its_authorizations_and_its_expiry() {
        use AuthorizationStatus as A;
        let expires = 1_000_000;
        let pending = OrderStatus::Pending;
        assert_eq!(
            pending.as_of(expires, &[A::Valid, A::Valid], expires),
            OrderStatus::Ready
        );
        assert_eq!(
            pending.as_of(expires, &[A::Valid, A::Pending], expires),
            OrderStatus::Pending
        );
        for failed in [A::Invalid, A::Deactivated, A::Expired, A::Revoked] {
            assert_eq!(
                pending.as_of(expires, &[A::Valid, failed], expires),
                OrderStatus::Invalid,
                "{failed}"
            );
        }
        // Past its expiry an order is invalid even with every authorization valid.
        assert_eq!(
            pending.as_of(expires, &[A::Valid], expires + 1),
            OrderStatus::Invalid
        );
        // Stored states other than pending are not re-derived.
        for stored in [
            OrderStatus::Processing,
            OrderStatus::Valid,
            OrderStatus::Invalid,
        ] {
            assert_eq!(stored.as_of(expires, &[A::Expired], expires + 1), stored);
        }
    }
}
