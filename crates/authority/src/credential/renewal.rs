//! step's renewal token (`Authorization: Bearer` on `/renew`, `step ca renew --mtls=false`): the
//! certificate to renew travels in the token's `x5cInsecure` header, and the token is signed
//! with the certificate's key. This module checks the token; whether this CA issued the
//! certificate is the presented-certificate check's ([`super::presented`]).

use mayfly_pki::jose::jws::Jws;
use time::OffsetDateTime;

use super::jwt::{self, TokenClaims};
use crate::error::{Error, Result};

/// The issuer step's clients write into renewal tokens (older clients wrote the provisioner's
/// name, which is accepted too).
pub const RENEWAL_TOKEN_ISSUER: &str = "step-ca-client/1.0";

/// The header that carries the certificate chain of a renewal token, as step writes it.
pub const RENEWAL_CHAIN_HEADER: &str = "x5cInsecure";

/// A renewal token whose signature, audience, subject and time window were checked.
#[derive(Debug, Clone)]
pub struct RenewalToken {
    /// The certificate to renew (DER); whether this CA issued it is the caller's check.
    pub leaf: Vec<u8>,
    /// `iss`: [`RENEWAL_TOKEN_ISSUER`] or the name of the provisioner that issued the leaf,
    /// which only the caller knows.
    pub issuer: String,
    /// What makes the token single use: its `jti`, or the SHA-256 of the whole token when it
    /// has none (step's renewal tokens carry no `jti`), as step-ca keys it.
    pub reuse_key: String,
    pub expires_at: OffsetDateTime,
}

/// Verifies a renewal token (`Authorization: Bearer` on `/renew`, step's `ca renew
/// --mtls=false`): a JWS signed by the key of the certificate its `x5cInsecure` (or `x5c`)
/// header carries, for one of `audiences`, with `sub` the certificate's common name.
pub fn verify_renewal_token(
    token: &str,
    audiences: &[String],
    now: OffsetDateTime,
) -> Result<RenewalToken> {
    let jws = Jws::parse(token).map_err(|e| Error::TokenMalformed(e.to_string()))?;
    let mut chain = jws
        .certificate_chain(RENEWAL_CHAIN_HEADER)
        .map_err(|e| Error::TokenMalformed(e.to_string()))?;
    if chain.is_empty() {
        chain = jws
            .x5c()
            .map_err(|e| Error::TokenMalformed(e.to_string()))?;
    }
    let leaf = chain.into_iter().next().ok_or_else(|| {
        Error::TokenMalformed(format!(
            "header has no \"{RENEWAL_CHAIN_HEADER}\" (or \"x5c\") certificate"
        ))
    })?;
    let info = mayfly_pki::cert::CertificateInfo::from_der(&leaf)
        .map_err(|e| Error::TokenMalformed(format!("{RENEWAL_CHAIN_HEADER} certificate: {e}")))?;
    let spki = mayfly_pki::cert::subject_public_key_info(&leaf)
        .map_err(|e| Error::TokenMalformed(format!("{RENEWAL_CHAIN_HEADER} certificate: {e}")))?;
    let payload = jws.verify_with_spki(&spki).map_err(|e| match e {
        mayfly_pki::Error::JwsSignatureInvalid => Error::TokenSignatureInvalid,
        other => Error::TokenMalformed(other.to_string()),
    })?;
    let claims: TokenClaims = serde_json::from_slice(payload)
        .map_err(|e| Error::TokenMalformed(format!("claims: {e}")))?;
    jwt::check_audience(&claims, audiences)?;
    // step-ca expects the certificate's common name as `sub` when it has one.
    if !info.common_name.is_empty() && claims.sub != info.common_name {
        return Err(Error::TokenMalformed(format!(
            "claim \"sub\" is {:?}, not the certificate's common name {:?}",
            claims.sub, info.common_name
        )));
    }
    let exp = jwt::check_time_window(&claims, now)?;
    // step's renewal tokens carry no `jti`: the token's hash stands in for it.
    let reuse_key = jwt::reuse_key(&claims.jti, token)?;
    Ok(RenewalToken {
        leaf,
        issuer: claims.iss,
        reuse_key,
        expires_at: exp + jwt::LEEWAY,
    })
}
