//! Tokens of X5C provisioners: a JWS signed by the key of a certificate whose chain, in the
//! `x5c` header (leaf first), reaches one of the provisioner's roots, not the CA's. Tokens name
//! the provisioner in their audience fragment (`…/1.0/sign#x5c/NAME`) and as `iss`; their other
//! claims are a JWK token's (`sub`, `sans`, `step.ssh`), as `step ca token --x5c-cert` writes
//! them. What they buy cannot outlive the leaf.

use mayfly_pki::jose::jws::Jws;

use super::jwt::{self, TokenClaims};
use super::{Authorization, CredentialValidity, Grant, TokenContext, Vouched};
use crate::error::{Error, Result};
use crate::provisioner::{Provisioner, X5cProvisioner};
use crate::store::UsedToken;

/// The audience fragment prefix that names an X5C provisioner.
const FRAGMENT_PREFIX: &str = "x5c/";

/// The name of the X5C provisioner a token's audience names (`…#x5c/NAME`), if it names one.
pub fn provisioner_named(claims: &TokenClaims) -> Option<String> {
    claims.aud.values().into_iter().find_map(|aud| {
        let (_, fragment) = aud.split_once('#')?;
        fragment.strip_prefix(FRAGMENT_PREFIX).map(str::to_owned)
    })
}

/// Verifies a token for the X5C provisioner `name`.
pub fn verify(
    jws: &Jws,
    name: &str,
    token: &str,
    context: &TokenContext<'_>,
) -> Result<Authorization> {
    let provisioner = context
        .provisioners
        .iter()
        .find_map(|p| match p {
            Provisioner::X5c(x5c) if x5c.name == name => Some(x5c.as_ref()),
            _ => None,
        })
        .ok_or_else(|| Error::TokenUnknownProvisioner {
            id: format!("{FRAGMENT_PREFIX}{name}"),
        })?;
    let untrusted = |detail: String| Error::TokenCertificateUntrusted {
        provisioner: provisioner.name.clone(),
        detail,
    };
    let chain = jws
        .x5c()
        .map_err(|e| Error::TokenMalformed(e.to_string()))?;
    if chain.is_empty() {
        return Err(Error::TokenMalformed(
            "header has no \"x5c\" certificate chain".into(),
        ));
    }
    let verified =
        mayfly_pki::verify::verify_chain_for_client_auth(&chain, &provisioner.roots, context.now)
            .map_err(|e| match e {
            mayfly_pki::Error::ChainInvalid(detail) => untrusted(detail),
            other => Error::TokenMalformed(format!("x5c certificate: {other}")),
        })?;
    let leaf = mayfly_pki::cert::CertificateInfo::from_der(verified.leaf())
        .map_err(|e| Error::TokenMalformed(format!("x5c certificate: {e}")))?;
    if !mayfly_pki::cert::allows_digital_signature(verified.leaf())
        .map_err(|e| Error::TokenMalformed(format!("x5c certificate: {e}")))?
    {
        return Err(untrusted(format!(
            "certificate {} may not sign (its key usage lacks digitalSignature)",
            leaf.serial.to_decimal()
        )));
    }
    let payload = jws.verify_with_spki(&leaf.spki_der).map_err(|e| match e {
        mayfly_pki::Error::JwsSignatureInvalid => Error::TokenSignatureInvalid,
        other => Error::TokenMalformed(other.to_string()),
    })?;
    let claims: TokenClaims = serde_json::from_slice(payload)
        .map_err(|e| Error::TokenMalformed(format!("claims: {e}")))?;
    if claims.iss != provisioner.name {
        return Err(Error::TokenIssuerMismatch {
            iss: claims.iss,
            provisioner: provisioner.name.clone(),
        });
    }
    let fragment = provisioner.audience_fragment();
    let audiences: Vec<String> = context
        .audiences
        .iter()
        .map(|a| format!("{a}#{fragment}"))
        .collect();
    jwt::check_audience(&claims, &audiences)?;
    jwt::check_root(&claims, context.root_fingerprints)?;
    let exp = jwt::check_time_window(&claims, context.now)?;
    if claims.sub.trim().is_empty() {
        return Err(Error::TokenMalformed(
            "claim \"sub\" is missing or empty".into(),
        ));
    }
    // step's tokens carry a `jti`; one that has none is single use by its hash.
    let reuse_key = jwt::reuse_key(&claims.jti, token)?;
    let burn = UsedToken {
        jti: reuse_key.clone(),
        provisioner: provisioner.name.clone(),
        expires_at: exp + jwt::LEEWAY,
    };
    let detail = format!(
        "jti {reuse_key}, x5c certificate {} ({})",
        leaf.serial.to_decimal(),
        leaf.common_name
    );
    let confirms = claims.csr_fingerprint()?;
    Ok(Authorization {
        provisioner: vouched(provisioner),
        grant: Grant::Token(claims.authorized_sans()),
        ssh: claims.ssh().cloned(),
        subject: claims.sub,
        burn: Some(burn),
        credential: format!("token:{}", provisioner.name),
        detail,
        within: Some(CredentialValidity {
            not_before: leaf.not_before,
            not_after: leaf.not_after,
        }),
        confirms,
    })
}

/// How leaves issued through `provisioner` name it: step writes no credential id for X5C.
pub fn vouched(provisioner: &X5cProvisioner) -> Vouched {
    Vouched {
        name: provisioner.name.clone(),
        type_code: mayfly_pki::cert::STEP_PROVISIONER_TYPE_X5C,
        credential_id: String::new(),
        claims: provisioner.claims,
        admin: false,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use mayfly_config::claims::Claims;
    use mayfly_pki::cert::{LeafSigner, LeafTemplate, create_root};
    use mayfly_pki::{KeyAlgorithm, PrivateKey, San, SerialNumber};
    use serde_json::json;
    use time::{Duration, OffsetDateTime};

    use super::*;
    use crate::credential::{Audiences, Endpoint};

    /// The used-token column holds 255 bytes: a `jti` of that length is burnt whole, one byte
    /// more is refused before anything is recorded.
    #[test]
    fn a_jti_of_the_column_s_length_is_burnt_whole_and_a_longer_one_refused() {
        let now = OffsetDateTime::now_utc();
        let root_key = PrivateKey::generate(KeyAlgorithm::EcP256).unwrap();
        let root = create_root("Devices Root", &root_key, now + Duration::days(1)).unwrap();
        let signer = LeafSigner::new(&root, Arc::new(root_key)).unwrap();
        let key = PrivateKey::generate(KeyAlgorithm::EcP256).unwrap();
        let template = LeafTemplate {
            common_name: "device.test".into(),
            sans: vec![San::parse("device.test").unwrap()],
            not_before: now - Duration::minutes(1),
            not_after: now + Duration::hours(1),
            serial: SerialNumber::random().unwrap(),
            rsa_key: false,
            provisioner: None,
        };
        let leaf = signer
            .sign(&template, &key.public_key_spki_der().unwrap())
            .unwrap();
        let provisioners = [Provisioner::X5c(Box::new(X5cProvisioner {
            name: "devices".into(),
            roots: vec![root],
            claims: Claims::DEFAULT,
        }))];
        let audiences = Audiences::new(&["ca.test".to_string()]);
        let context = TokenContext {
            provisioners: &provisioners,
            audiences: audiences.of(Endpoint::Sign),
            root_fingerprints: &[],
            now,
            endpoint: Endpoint::Sign,
            oidc: None,
        };
        let verify_with_jti = |jti: &str| {
            let t = now.unix_timestamp();
            let claims = json!({
                "aud": "https://ca.test/1.0/sign#x5c/devices", "iss": "devices",
                "sub": "app.test", "nbf": t, "iat": t, "exp": t + 300, "jti": jti,
            });
            let token = mayfly_pki::jose::jws::sign_compact_x5c(
                &key,
                std::slice::from_ref(&leaf),
                claims.to_string().as_bytes(),
            )
            .unwrap();
            verify(&Jws::parse(&token).unwrap(), "devices", &token, &context)
        };

        let longest = "j".repeat(jwt::MAX_TOKEN_ID_LEN);
        let burn = verify_with_jti(&longest).unwrap().burn.unwrap();
        assert_eq!(burn.jti, longest);
        match verify_with_jti(&"j".repeat(jwt::MAX_TOKEN_ID_LEN + 1)) {
            Err(Error::TokenMalformed(message)) => {
                assert!(message.contains("longer than 255 bytes"), "{message}");
            }
            other => panic!("a jti of 256 bytes: {other:?}"),
        }
    }
}
