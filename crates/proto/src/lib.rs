//! Serde types of the mayfly HTTP API (compatible with step-ca's), shared by the server and the
//! client so that the two cannot drift apart. No behaviour lives here.
#![forbid(unsafe_code)]

use serde::{Deserialize, Serialize};

pub mod ssh;

/// Every error response: `{"status": 400, "message": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub status: u16,
    pub message: String,
}

/// `GET /health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthResponse {
    pub status: String,
}

/// `GET /version`: the step CLI asks before its SSH flows whether it must first get an X.509
/// identity certificate (`requireClientAuthentication`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionResponse {
    pub version: String,
    /// step-ca omits it when false; mayfly always writes it, and reads it absent as false.
    #[serde(default)]
    pub require_client_authentication: bool,
}

/// `GET /root/{sha256}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootResponse {
    /// The root certificate, PEM.
    pub ca: String,
}

/// `GET /roots` and `GET /federation`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootsResponse {
    pub crts: Vec<String>,
}

/// One provisioner as `GET /provisioners` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProvisionerBody {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    /// The public JWK (JWK provisioners).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<serde_json::Value>,
    /// The private JWK as a compact PBES2 JWE (JWK provisioners).
    #[serde(
        default,
        rename = "encryptedKey",
        skip_serializing_if = "Option::is_none"
    )]
    pub encrypted_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claims: Option<serde_json::Value>,
    /// What a client needs to log in through an OIDC provisioner's provider (OIDC
    /// provisioners), step-ca's field names.
    #[serde(flatten, default)]
    pub oidc: Option<OidcClientBody>,
}

/// An OIDC provisioner's client, as `GET /provisioners` lists it: what `mayfly` needs to run
/// the provider's authorization-code flow. Who is an administrator, and which domains and
/// groups are let in, stay with the CA.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OidcClientBody {
    #[serde(rename = "clientID")]
    pub client_id: String,
    /// A native app's secret, which cannot be kept: step-ca publishes it too.
    #[serde(rename = "clientSecret", default)]
    pub client_secret: String,
    #[serde(rename = "configurationEndpoint")]
    pub configuration_endpoint: String,
    #[serde(
        rename = "listenAddress",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub listen_address: Option<String>,
}

/// `GET /provisioners`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProvisionersResponse {
    pub provisioners: Vec<ProvisionerBody>,
    #[serde(rename = "nextCursor", default)]
    pub next_cursor: String,
}

/// `GET /provisioners/{kid}/encrypted-key`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptedKeyResponse {
    pub key: String,
}

/// `POST /rekey`: a new key for the certificate presented over mutual TLS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RekeyRequest {
    /// The certificate request for the new key, PEM; only its key is used.
    pub csr: String,
}

/// `POST /sign`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignRequest {
    /// The certificate request, PEM.
    pub csr: String,
    /// The one-time token.
    pub ott: String,
    /// RFC 3339 time or Go duration relative to now.
    #[serde(rename = "notBefore", default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<String>,
    #[serde(rename = "notAfter", default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<String>,
    #[serde(
        rename = "templateData",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub template_data: Option<serde_json::Value>,
}

/// TLS options advertised with a signed certificate, as step-ca does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TlsOptions {
    #[serde(rename = "cipherSuites")]
    pub cipher_suites: Vec<String>,
    #[serde(rename = "minVersion")]
    pub min_version: f32,
    #[serde(rename = "maxVersion")]
    pub max_version: f32,
    pub renegotiation: bool,
}

/// `POST /sign`, `/renew`, `/rekey` responses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignResponse {
    /// The new certificate, PEM.
    pub crt: String,
    /// The issuing (intermediate) certificate, PEM.
    pub ca: String,
    /// Leaf then intermediate, PEM each.
    #[serde(rename = "certChain")]
    pub cert_chain: Vec<String>,
    #[serde(
        rename = "tlsOptions",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub tls_options: Option<TlsOptions>,
}

/// `POST /revoke`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RevokeRequest {
    /// Decimal serial number of the certificate to revoke.
    pub serial: String,
    /// A one-time token whose `sub` is the serial; absent when the certificate itself is
    /// presented over mutual TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ott: Option<String>,
    /// RFC 5280 CRLReason code.
    #[serde(rename = "reasonCode", default)]
    pub reason_code: i64,
    #[serde(default)]
    pub reason: String,
    /// Passive revocation (refuse renewals) unless `false`.
    #[serde(default = "passive_by_default")]
    pub passive: bool,
}

fn passive_by_default() -> bool {
    true
}

/// `POST /revoke` success.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusResponse {
    pub status: String,
}

/// One certificate of `GET /admin/certificates`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateEntry {
    /// Decimal serial number.
    pub serial: String,
    /// Subject common name (empty when there is none).
    pub subject: String,
    pub sans: Vec<String>,
    /// RFC 3339.
    #[serde(rename = "notBefore")]
    pub not_before: String,
    /// RFC 3339.
    #[serde(rename = "notAfter")]
    pub not_after: String,
    pub provisioner: String,
    /// `active`, `revoked` or `expired` (at the time of the listing).
    pub status: String,
    /// RFC 3339, when revoked.
    #[serde(rename = "revokedAt", default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
    /// RFC 5280 CRLReason code, when revoked.
    #[serde(
        rename = "reasonCode",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub reason_code: Option<u8>,
    /// The certificate, PEM.
    pub certificate: String,
}

/// `GET /admin/certificates?status=&after=&limit=`: one page, in ascending serial order (as
/// text).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificatesResponse {
    pub certificates: Vec<CertificateEntry>,
    /// Pass as `after` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// One entry of the audit log (`GET /1.0/admin/audit`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntryBody {
    /// Increasing; pass the last one seen as `after` for the next page.
    pub id: u64,
    /// RFC 3339.
    pub at: String,
    /// `issued`, `renewed`, `rekeyed`, `revoked`, `ssh-issued`, `ssh-renewed`, `ssh-rekeyed`,
    /// `ssh-revoked`.
    pub action: String,
    /// Decimal serial number (X.509 or SSH).
    pub serial: String,
    /// Subject common name, or an SSH certificate's key id.
    pub subject: String,
    /// SANs, or an SSH certificate's principals.
    pub sans: Vec<String>,
    pub provisioner: String,
    /// What authorised the change: `token:<provisioner>`, `mtls:<subject>`, `x5c:<subject>`,
    /// `sshpop:<serial>`, `acme:account:<id>`, `offline`, `server`.
    pub credential: String,
    /// The client's IP address; empty when the change did not come over the network.
    pub address: String,
    pub detail: String,
}

/// A page of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditResponse {
    pub entries: Vec<AuditEntryBody>,
    /// Pass as `after` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_oidc_provisioner_reads_with_step_cas_field_names_and_others_without_them() {
        let oidc: ProvisionerBody = serde_json::from_value(serde_json::json!({
            "type": "OIDC", "name": "idp", "clientID": "mayfly", "clientSecret": "s",
            "configurationEndpoint": "https://idp.example/.well-known/openid-configuration",
            "admins": ["a@example.com"],
        }))
        .unwrap();
        let client = oidc.oidc.clone().unwrap();
        assert_eq!(client.client_id, "mayfly");
        assert_eq!(client.listen_address, None);
        let written = serde_json::to_value(&oidc).unwrap();
        assert_eq!(written["clientID"], "mayfly");
        assert!(written.get("listenAddress").is_none());
        let jwk: ProvisionerBody =
            serde_json::from_value(serde_json::json!({"type": "JWK", "name": "ops"})).unwrap();
        assert_eq!(jwk.oidc, None);
        assert!(
            serde_json::to_value(&jwk)
                .unwrap()
                .get("clientID")
                .is_none()
        );
    }
}
