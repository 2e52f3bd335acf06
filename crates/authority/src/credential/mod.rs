//! Stage one of the pipeline: a credential becomes an [`Authorization`].
//!
//! ```text
//! credential ──verify──▶ Authorization ──policy──▶ Template ──issue──▶ signed + recorded
//! ```
//!
//! Every way of asking (a token of any provisioner kind, a certificate presented by its holder
//! over mutual TLS or in a renewal token, an SSH certificate presented by SSH-POP, an ACME
//! order, an admin's token or certificate) is verified here, in one module per kind, into the
//! same [`Authorization`]: who vouches, for which names, the token to burn with what it buys,
//! and how the audit log names the credential. The policy stage ([`crate::policy`]) never sees
//! a credential, only authorizations; a new provisioner kind is one more verifier here and its
//! configuration.

pub mod acme;
pub mod admin;
pub mod jwk;
pub mod jwt;
pub mod k8ssa;
pub mod oidc;
pub mod presented;
pub mod renewal;
pub mod sshpop;
pub mod x5c;

use mayfly_config::claims::Claims;
use mayfly_pki::San;
use mayfly_pki::jose::jws::Jws;
use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::policy::ssh::SshTokenClaims;
use crate::provisioner::Provisioner;
use crate::store::UsedToken;

/// What a verified credential allows.
#[derive(Debug, Clone)]
pub struct Authorization {
    /// Who vouches for the request.
    pub provisioner: Vouched,
    /// The subject the credential names: a token's `sub`, a certificate's common name.
    pub subject: String,
    /// The names it grants for an X.509 certificate.
    pub grant: Grant,
    /// What it allows for an SSH certificate: a token's `step.ssh` claims (with a fixed grant,
    /// exactly these: an OIDC user's).
    pub ssh: Option<SshTokenClaims>,
    /// The token that pays for the request, burnt in the transaction that records what it
    /// buys; none for a credential that may be presented again (a certificate).
    pub burn: Option<UsedToken>,
    /// How the audit log names the credential: `token:NAME`, `mtls:CN`, `x5c:CN`, ...
    pub credential: String,
    /// What else the audit entry says about it (a token's `jti`).
    pub detail: String,
    /// The validity of a credential that is itself a certificate (an X5C token's leaf): what
    /// it buys may not outlive it.
    pub within: Option<CredentialValidity>,
    /// The one certificate request a token is bound to (step's `cnf` claim), if it is.
    pub confirms: Option<CsrFingerprint>,
}

/// The SHA-256 of the DER certificate request a token may be used with: step's `cnf` claim,
/// `{"x5rt#S256": base64url}`, which `step ca token --cnf`/`ca sign` write so that a token
/// leaked on its way buys nothing for another key. step-ca checks it the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CsrFingerprint([u8; 32]);

impl CsrFingerprint {
    /// From the claim's text: unpadded base64url of 32 bytes.
    pub fn parse(text: &str) -> Result<Self> {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text.trim_end_matches('='))
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| {
                Error::TokenMalformed(format!(
                    "claim \"cnf\": \"x5rt#S256\" {text:?} is not a base64url SHA-256"
                ))
            })?;
        Ok(CsrFingerprint(bytes))
    }

    /// Whether `csr_der` is the request this fingerprint names.
    pub fn matches(&self, csr_der: &[u8]) -> bool {
        mayfly_pki::cert::sha256(csr_der) == self.0
    }

    /// As the claim writes it.
    pub fn to_base64url(&self) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(self.0)
    }
}

impl Authorization {
    /// A certificate presented by its holder over mutual TLS, vouched for by `provisioner`, as
    /// the credential of an act on itself or of a read: it grants no names, and is not burnt
    /// (a certificate may be presented again).
    pub(crate) fn of_presented_certificate(provisioner: Vouched, common_name: &str) -> Self {
        Authorization {
            provisioner,
            subject: common_name.to_string(),
            grant: Grant::Fixed(Vec::new()),
            ssh: None,
            burn: None,
            credential: format!("mtls:{common_name}"),
            detail: String::new(),
            within: None,
            confirms: None,
        }
    }
}

/// What a request presents as its credential where either a token or the client certificate
/// of the TLS connection will do (revocation, the admin API).
#[derive(Debug, Clone, Copy)]
pub enum Presented<'a> {
    /// A token (`ott`, or `Authorization: Bearer`).
    Token(&'a str),
    /// The leaf of the client certificate chain verified in the TLS handshake (DER).
    Certificate(&'a [u8]),
}

/// When a credential is valid, as its certificate says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CredentialValidity {
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

/// The provisioner a credential was verified against, as leaves and the store record it.
#[derive(Debug, Clone)]
pub struct Vouched {
    pub name: String,
    /// step's provisioner type code (JWK 1, OIDC 2, ACME 6, X5C 7, K8sSA 8, SSHPOP 9), which
    /// leaves carry in step's provisioner extension.
    pub type_code: u8,
    /// The credential id leaves carry beside it: a JWK's key id, an OIDC client id.
    pub credential_id: String,
    /// Its X.509 claims (lifetimes, renewal).
    pub claims: Claims,
    /// May use the admin API.
    pub admin: bool,
}

/// The names a credential grants an X.509 certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// A token's names as step writes them (`sans`, or `sub` when there are none): exactly
    /// these go into the certificate, and the request may ask for fewer, never others (JWK and
    /// X5C tokens). Kept as written: only an X.509 request reads them as names.
    Token(Vec<String>),
    /// Whatever the request asks for, within the name policy: a Kubernetes service account,
    /// an OIDC administrator.
    Requested,
    /// These, whatever the request asks for: an OIDC user's e-mail and `issuer#subject`.
    Fixed(Vec<San>),
}

/// The endpoint a token is for: the path its audience names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Sign,
    Revoke,
    Renew,
    Admin,
    SshSign,
    SshRevoke,
    SshRenew,
    SshRekey,
}

impl Endpoint {
    const ALL: [Endpoint; 8] = [
        Endpoint::Sign,
        Endpoint::Revoke,
        Endpoint::Renew,
        Endpoint::Admin,
        Endpoint::SshSign,
        Endpoint::SshRevoke,
        Endpoint::SshRenew,
        Endpoint::SshRekey,
    ];

    /// The path after `/1.0/` (or `/`).
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Sign => "sign",
            Endpoint::Revoke => "revoke",
            Endpoint::Renew => "renew",
            Endpoint::Admin => "admin",
            Endpoint::SshSign => "ssh/sign",
            Endpoint::SshRevoke => "ssh/revoke",
            Endpoint::SshRenew => "ssh/renew",
            Endpoint::SshRekey => "ssh/rekey",
        }
    }
}

/// The audiences tokens for each endpoint must name, made once from the CA's DNS names:
/// `https://{name}/1.0/{path}` and `https://{name}/{path}`. A token's audience matches one of
/// them whatever port it names ([`jwt::same_audience`]).
#[derive(Debug, Clone)]
pub struct Audiences {
    by_endpoint: Vec<Vec<String>>,
}

impl Audiences {
    pub fn new(dns_names: &[String]) -> Self {
        let by_endpoint = Endpoint::ALL
            .iter()
            .map(|endpoint| {
                dns_names
                    .iter()
                    .flat_map(|name| {
                        let host = if name.contains(':') {
                            format!("[{name}]")
                        } else {
                            name.clone()
                        };
                        [
                            format!("https://{host}/1.0/{}", endpoint.path()),
                            format!("https://{host}/{}", endpoint.path()),
                        ]
                    })
                    .collect()
            })
            .collect();
        Self { by_endpoint }
    }

    pub fn of(&self, endpoint: Endpoint) -> &[String] {
        let index = Endpoint::ALL
            .iter()
            .position(|e| *e == endpoint)
            .unwrap_or_default();
        self.by_endpoint.get(index).map_or(&[], Vec::as_slice)
    }
}

/// What a token is checked against.
#[derive(Debug, Clone, Copy)]
pub struct TokenContext<'a> {
    pub provisioners: &'a [Provisioner],
    pub audiences: &'a [String],
    /// SHA-256 fingerprints of this CA's roots; a token's `sha`, when present, must be one.
    pub root_fingerprints: &'a [String],
    pub now: OffsetDateTime,
    /// The endpoint the token is presented to (`audiences` are its).
    pub endpoint: Endpoint,
    /// How OpenID providers' keys are fetched, when this CA can reach them.
    pub oidc: Option<&'a dyn oidc::keys::Fetch>,
}

/// Verifies a token of any provisioner kind for the endpoint `context` describes: finds the
/// provisioner the token names and hands it to that kind's verifier. Asynchronous because an
/// OIDC provisioner may first have to fetch its provider's keys.
pub async fn verify_token(token: &str, context: &TokenContext<'_>) -> Result<Authorization> {
    let jws = Jws::parse(token).map_err(|e| Error::TokenMalformed(e.to_string()))?;
    // An ID token names its provisioner by audience (the client id), not by key.
    if let Some(provisioner) = oidc::provisioner_for(&jws, context)? {
        return oidc::verify(token, &jws, provisioner, context).await;
    }
    // Decoded before the signature check only to find the provisioner; the verifier checks
    // the signature over exactly these bytes before acting on any claim.
    let unverified: jwt::TokenClaims = serde_json::from_slice(jws.unverified_payload())
        .map_err(|e| Error::TokenMalformed(format!("claims: {e}")))?;
    // Which kind of provisioner, as step-ca finds it: an X5C one by the audience's fragment,
    // the K8sSA one by the service-account issuer, a JWK one by the key id.
    if let Some(name) = x5c::provisioner_named(&unverified) {
        return x5c::verify(&jws, &name, token, context);
    }
    if unverified.iss == k8ssa::ISSUER {
        return k8ssa::verify(&jws, token, context);
    }
    let kid = jws
        .header()
        .kid
        .as_deref()
        .ok_or_else(|| Error::TokenMalformed("header has no \"kid\"".into()))?;
    jwk::verify(&jws, unverified, kid, context)
}
