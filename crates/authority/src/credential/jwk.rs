//! Tokens of JWK provisioners: a JWS signed with the provisioner's key, named by its `kid` (the
//! key's RFC 7638 thumbprint) and by `iss` (the provisioner's name), as `step ca token` writes
//! them.

use mayfly_pki::jose::jws::Jws;

use super::jwt::{self, TokenClaims};
use super::{Authorization, Grant, TokenContext, Vouched};
use crate::error::{Error, Result};
use crate::provisioner::{JwkProvisioner, Provisioner};
use crate::store::UsedToken;

/// Verifies a token whose header names the key `kid`; `claims` were decoded from it unverified.
pub fn verify(
    jws: &Jws,
    claims: TokenClaims,
    kid: &str,
    context: &TokenContext<'_>,
) -> Result<Authorization> {
    let mut by_kid = context.provisioners.iter().filter_map(|p| match p {
        Provisioner::Jwk(jwk) if jwk.kid == kid => Some(jwk.as_ref()),
        _ => None,
    });
    // Two provisioners may share a key; `iss` says which one is meant.
    let provisioner = by_kid
        .clone()
        .find(|p| p.name == claims.iss)
        .or_else(|| by_kid.next())
        .ok_or_else(|| Error::TokenUnknownKey {
            kid: kid.to_owned(),
        })?;
    jws.verify(&provisioner.key).map_err(|e| match e {
        mayfly_pki::Error::JwsSignatureInvalid => Error::TokenSignatureInvalid,
        other => Error::TokenMalformed(other.to_string()),
    })?;
    // The signature covers exactly the payload the claims were decoded from: they are verified.
    if claims.iss != provisioner.name {
        return Err(Error::TokenIssuerMismatch {
            iss: claims.iss,
            provisioner: provisioner.name.clone(),
        });
    }
    jwt::check_audience(&claims, context.audiences)?;
    jwt::check_token_id(&claims.jti)?;
    jwt::check_root(&claims, context.root_fingerprints)?;
    let exp = jwt::check_time_window(&claims, context.now)?;
    authorization(provisioner, claims, exp)
}

fn authorization(
    provisioner: &JwkProvisioner,
    claims: TokenClaims,
    exp: time::OffsetDateTime,
) -> Result<Authorization> {
    let grant = Grant::Token(claims.authorized_sans());
    let burn = UsedToken {
        jti: claims.jti.clone(),
        provisioner: provisioner.name.clone(),
        expires_at: exp + jwt::LEEWAY,
    };
    let detail = format!("jti {}", claims.jti);
    let ssh = claims.ssh().cloned();
    Ok(Authorization {
        provisioner: vouched(provisioner),
        subject: claims.sub,
        grant,
        ssh,
        burn: Some(burn),
        credential: format!("token:{}", provisioner.name),
        detail,
        within: None,
    })
}

/// How leaves issued through `provisioner` name it: step's JWK type and the key id.
pub fn vouched(provisioner: &JwkProvisioner) -> Vouched {
    Vouched {
        name: provisioner.name.clone(),
        type_code: mayfly_pki::cert::STEP_PROVISIONER_TYPE_JWK,
        credential_id: provisioner.kid.clone(),
        claims: provisioner.claims,
        admin: provisioner.admin,
    }
}
