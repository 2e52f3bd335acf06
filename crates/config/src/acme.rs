//! The `ACME` provisioner entry's own settings in ca.json.

/// Let's Encrypt's revocation reasons: unspecified, keyCompromise, superseded,
/// cessationOfOperation. Any other reason is refused with `badRevocationReason`.
pub const ACME_DEFAULT_REVOCATION_REASONS: &[u8] = &[0, 1, 4, 5];

/// The `ACME` entry's own fields in ca.json: step-ca's names (`requireEAB`, `termsOfService`,
/// `challenges`) and mayfly's additions.
#[derive(Debug, Clone, Default, serde::Deserialize)]
// Unknown keys are not refused here: ca.json's reader reports them (step-ca's ACME entries carry
// keys such as `forceCN` that mayfly does not act on).
#[serde(rename_all = "camelCase")]
pub struct AcmeSettings {
    /// URL shown as `meta.termsOfService`; when set, new accounts must agree to it.
    #[serde(default)]
    pub terms_of_service: Option<String>,
    #[serde(default)]
    pub website: Option<String>,
    /// External account binding required for new accounts (RFC 8555 7.3.4).
    #[serde(default, rename = "requireEAB")]
    pub require_eab: bool,
    /// External account keys: key id to base64url HMAC key (hidden from `Debug`).
    #[serde(default)]
    pub eab_keys: std::collections::BTreeMap<String, crate::config::Secret>,
    /// Challenge types offered (`http-01`, `dns-01`, `tls-alpn-01`); all when empty.
    #[serde(default)]
    pub challenges: Vec<String>,
    /// RFC 5280 reason codes ACME clients may give; Let's Encrypt's set by default.
    #[serde(default)]
    pub revocation_reasons: Option<Vec<u8>>,
    /// New orders one account may create per hour; unlimited when absent.
    #[serde(default)]
    pub orders_per_account_per_hour: Option<u32>,
    /// Orders naming one identifier per hour, over all accounts; unlimited when absent.
    #[serde(default)]
    pub orders_per_identifier_per_hour: Option<u32>,
    /// Tests only: validate http-01 on this port instead of 80.
    #[serde(default)]
    pub insecure_http01_port: Option<u16>,
    /// Tests only: validate tls-alpn-01 on this port instead of 443.
    #[serde(default)]
    pub insecure_tls_alpn01_port: Option<u16>,
    /// Tests only: connect to this address for http-01 and tls-alpn-01 instead of resolving the
    /// identifier.
    #[serde(default)]
    pub insecure_validation_address: Option<std::net::IpAddr>,
    /// Tests only: the DNS server (`ip:port`) asked for dns-01 TXT records, instead of the
    /// system's resolver.
    #[serde(default)]
    pub insecure_dns_resolver: Option<std::net::SocketAddr>,
}

impl AcmeSettings {
    /// The keys of a provisioner entry that belong to [`AcmeSettings`], so ca.json's reader does
    /// not report them as unknown.
    pub const KEYS: &[&str] = &[
        "termsOfService",
        "website",
        "requireEAB",
        "eabKeys",
        "challenges",
        "revocationReasons",
        "ordersPerAccountPerHour",
        "ordersPerIdentifierPerHour",
        "insecureHttp01Port",
        "insecureTlsAlpn01Port",
        "insecureValidationAddress",
        "insecureDnsResolver",
    ];

    /// The reason codes clients may give.
    pub fn allowed_revocation_reasons(&self) -> &[u8] {
        self.revocation_reasons
            .as_deref()
            .unwrap_or(ACME_DEFAULT_REVOCATION_REASONS)
    }
}
