//! External account binding (RFC 8555 7.3.4): a JWS over the account key, MACed with a key the
//! CA operator handed out, so that only known parties can open accounts.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use mayfly_authority::provisioner::AcmeSettings;
use mayfly_pki::jose::jwk::Jwk;
use serde::Deserialize;

use crate::error::{Error, ProblemType, Result};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Flattened {
    protected: String,
    payload: String,
    signature: String,
}

#[derive(Deserialize)]
struct Protected {
    alg: String,
    kid: String,
    url: String,
    #[serde(default)]
    nonce: Option<String>,
}

fn refused(detail: impl Into<String>) -> Error {
    Error::unauthorized(format!("externalAccountBinding: {}", detail.into()))
}

/// Checks a binding for `account_key`, sent to `url`; returns the external account's key id.
pub fn verify(
    binding: &serde_json::Value,
    account_key: &Jwk,
    url: &str,
    settings: &AcmeSettings,
) -> Result<String> {
    let flattened: Flattened = serde_json::from_value(binding.clone())
        .map_err(|e| Error::malformed(format!("externalAccountBinding is not a JWS: {e}")))?;
    let header = B64
        .decode(&flattened.protected)
        .map_err(|e| Error::malformed(format!("externalAccountBinding header: {e}")))?;
    let protected: Protected = serde_json::from_slice(&header)
        .map_err(|e| Error::malformed(format!("externalAccountBinding header: {e}")))?;
    if protected.alg != "HS256" {
        return Err(Error::problem(
            ProblemType::BadSignatureAlgorithm,
            format!(
                "externalAccountBinding algorithm {:?}: expected HS256",
                protected.alg
            ),
        ));
    }
    if protected.nonce.is_some() {
        return Err(Error::malformed(
            "externalAccountBinding must not have a nonce",
        ));
    }
    if protected.url != url {
        return Err(refused("url is not the newAccount URL"));
    }
    let key_b64 = settings
        .eab_keys
        .get(&protected.kid)
        .ok_or_else(|| refused(format!("unknown key id {:?}", protected.kid)))?;
    let key = B64
        .decode(key_b64.expose().trim_end_matches('='))
        .map_err(|_| Error::Internal(format!("eabKeys[{:?}] is not base64url", protected.kid)))?;
    let signature = B64
        .decode(&flattened.signature)
        .map_err(|e| Error::malformed(format!("externalAccountBinding signature: {e}")))?;
    let signing_input = format!("{}.{}", flattened.protected, flattened.payload);
    let mac_key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &key);
    aws_lc_rs::hmac::verify(&mac_key, signing_input.as_bytes(), &signature)
        .map_err(|_| refused("the MAC does not verify"))?;
    let payload = B64
        .decode(&flattened.payload)
        .map_err(|e| Error::malformed(format!("externalAccountBinding payload: {e}")))?;
    let bound = Jwk::from_json(&payload)
        .map_err(|e| Error::malformed(format!("externalAccountBinding payload: {e}")))?;
    let same = matches!(
        (bound.thumbprint(), account_key.thumbprint()),
        (Ok(a), Ok(b)) if a == b
    );
    if !same {
        return Err(refused("it binds another key than the account's"));
    }
    Ok(protected.kid)
}

/// The JWK of a DER SubjectPublicKeyInfo (EC P-256/P-384, Ed25519, RSA).
pub fn jwk_from_spki(spki_der: &[u8]) -> Option<Jwk> {
    use x509_parser::prelude::FromDer;
    use x509_parser::public_key::PublicKey;
    let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(spki_der).ok()?;
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok())
        .map(|oid| oid.to_id_string());
    match spki.parsed().ok()? {
        PublicKey::EC(point) => {
            let data = point.data();
            let (crv, len) = match curve.as_deref() {
                Some("1.2.840.10045.3.1.7") => ("P-256", 32),
                Some("1.3.132.0.34") => ("P-384", 48),
                _ => return None,
            };
            if data.len() != 1 + 2 * len || data[0] != 4 {
                return None;
            }
            Some(Jwk {
                kty: "EC".into(),
                crv: Some(crv.into()),
                x: Some(B64.encode(&data[1..1 + len])),
                y: Some(B64.encode(&data[1 + len..])),
                ..Jwk::default()
            })
        }
        PublicKey::RSA(rsa) => {
            let strip = |b: &[u8]| {
                let start = b.iter().position(|&x| x != 0).unwrap_or(b.len());
                B64.encode(&b[start..])
            };
            Some(Jwk {
                kty: "RSA".into(),
                n: Some(strip(rsa.modulus)),
                e: Some(strip(rsa.exponent)),
                ..Jwk::default()
            })
        }
        _ if spki.algorithm.algorithm.to_id_string() == "1.3.101.112" => Some(Jwk {
            kty: "OKP".into(),
            crv: Some("Ed25519".into()),
            x: Some(B64.encode(&spki.subject_public_key.data)),
            ..Jwk::default()
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mayfly_pki::{KeyAlgorithm, PrivateKey};

    #[test]
    fn spki_and_jwk_of_one_key_have_one_thumbprint() {
        for algorithm in [
            KeyAlgorithm::EcP256,
            KeyAlgorithm::EcP384,
            KeyAlgorithm::Ed25519,
        ] {
            let key = PrivateKey::generate(algorithm).unwrap();
            let from_spki = jwk_from_spki(&key.public_key_spki_der().unwrap()).unwrap();
            let direct = Jwk::public_from_key(&key).unwrap();
            assert_eq!(
                from_spki.thumbprint().unwrap(),
                direct.thumbprint().unwrap()
            );
        }
    }

    fn binding(key: &[u8], kid: &str, url: &str, jwk: &Jwk) -> serde_json::Value {
        let protected =
            B64.encode(serde_json::json!({"alg":"HS256","kid":kid,"url":url}).to_string());
        let payload = B64.encode(serde_json::to_vec(jwk).unwrap());
        let mac_key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key);
        let tag = aws_lc_rs::hmac::sign(&mac_key, format!("{protected}.{payload}").as_bytes());
        serde_json::json!({"protected":protected,"payload":payload,"signature":B64.encode(tag.as_ref())})
    }

    #[test]
    fn bindings_verify_only_with_the_right_key_url_and_account_key() {
        let account =
            Jwk::public_from_key(&PrivateKey::generate(KeyAlgorithm::EcP256).unwrap()).unwrap();
        let other =
            Jwk::public_from_key(&PrivateKey::generate(KeyAlgorithm::EcP256).unwrap()).unwrap();
        let settings = AcmeSettings {
            eab_keys: [(
                "kid-1".to_string(),
                mayfly_config::config::Secret::new(B64.encode(b"secret-mac-key")),
            )]
            .into(),
            ..AcmeSettings::default()
        };
        let url = "https://ca/acme/a/new-account";
        let good = binding(b"secret-mac-key", "kid-1", url, &account);
        assert_eq!(verify(&good, &account, url, &settings).unwrap(), "kid-1");
        let cases = [
            (binding(b"wrong", "kid-1", url, &account), "MAC"),
            (
                binding(b"secret-mac-key", "kid-2", url, &account),
                "unknown key id",
            ),
            (
                binding(b"secret-mac-key", "kid-1", "https://x", &account),
                "url",
            ),
            (
                binding(b"secret-mac-key", "kid-1", url, &other),
                "another key",
            ),
            (serde_json::json!({"protected":"e30"}), "not a JWS"),
        ];
        for (value, text) in cases {
            let err = verify(&value, &account, url, &settings).unwrap_err();
            assert!(err.to_string().contains(text), "{text}: {err}");
        }
    }
}
