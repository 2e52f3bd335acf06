//! JSON Web Keys (RFC 7517) for EC P-256/P-384, Ed25519 (OKP, RFC 8037) and RSA, and their
//! RFC 7638 thumbprints, which step uses as the provisioner key id (`kid`).
//!
//! The field order of [`Jwk`] is the order step writes, so that the JSON we emit for a
//! provisioner reads the same as step's.

use aws_lc_rs::digest;
use aws_lc_rs::signature::{self, UnparsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::key::{KeyAlgorithm, PrivateKey};

/// A JSON Web Key; `d` is present only in private keys.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Jwk {
    #[serde(rename = "use", skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
    pub kty: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub d: Option<String>,
}

impl std::fmt::Debug for Jwk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwk")
            .field("kty", &self.kty)
            .field("kid", &self.kid)
            .field("crv", &self.crv)
            .field("alg", &self.alg)
            .field("d", &self.d.as_ref().map(|_| "[redacted]"))
            .finish_non_exhaustive()
    }
}

impl Jwk {
    /// Parses a JWK from JSON.
    pub fn from_json(json: &[u8]) -> Result<Self> {
        serde_json::from_slice(json).map_err(|e| Error::JoseMalformed(format!("JWK: {e}")))
    }

    /// The public JWK of `key`, with `use`, `alg` and `kid` (its thumbprint) set as step does.
    pub fn public_from_key(key: &PrivateKey) -> Result<Self> {
        let raw = key.public_key_raw();
        let mut jwk = match key.algorithm() {
            KeyAlgorithm::EcP256 | KeyAlgorithm::EcP384 => {
                let (crv, len) = if key.algorithm() == KeyAlgorithm::EcP256 {
                    ("P-256", 32)
                } else {
                    ("P-384", 48)
                };
                // Uncompressed point: 0x04 || x || y.
                if raw.len() != 1 + 2 * len {
                    return Err(Error::Crypto("unexpected EC public key length"));
                }
                Jwk {
                    kty: "EC".into(),
                    crv: Some(crv.into()),
                    x: Some(B64.encode(&raw[1..1 + len])),
                    y: Some(B64.encode(&raw[1 + len..])),
                    ..Jwk::default()
                }
            }
            KeyAlgorithm::Ed25519 => Jwk {
                kty: "OKP".into(),
                crv: Some("Ed25519".into()),
                x: Some(B64.encode(&raw)),
                ..Jwk::default()
            },
            KeyAlgorithm::Rsa(_) => {
                let (n, e) = rsa_public_components(&key.public_key_spki_der()?)?;
                Jwk {
                    kty: "RSA".into(),
                    n: Some(B64.encode(n)),
                    e: Some(B64.encode(e)),
                    ..Jwk::default()
                }
            }
        };
        jwk.use_ = Some("sig".into());
        jwk.alg = Some(key.jws_algorithm().into());
        jwk.kid = Some(jwk.thumbprint()?);
        Ok(jwk)
    }

    /// The private JWK of `key` (EC and Ed25519 only, as step's provisioner keys are).
    pub fn private_from_key(key: &PrivateKey) -> Result<Zeroizing<String>> {
        let mut jwk = Self::public_from_key(key)?;
        jwk.d = Some(B64.encode(key.private_scalar()?.as_slice()));
        let json = serde_json::to_string(&jwk)
            .map_err(|e| Error::JoseMalformed(format!("JWK serialisation: {e}")))?;
        Ok(Zeroizing::new(json))
    }

    /// The private key of a private JWK (EC P-256/P-384 or Ed25519).
    pub fn to_private_key(&self) -> Result<PrivateKey> {
        let d = self
            .d
            .as_deref()
            .ok_or_else(|| Error::JoseMalformed("JWK has no private part \"d\"".into()))?;
        let d = Zeroizing::new(b64_field("d", d)?);
        match (self.kty.as_str(), self.crv.as_deref()) {
            ("EC", Some(crv @ ("P-256" | "P-384"))) => {
                let alg = if crv == "P-256" {
                    KeyAlgorithm::EcP256
                } else {
                    KeyAlgorithm::EcP384
                };
                PrivateKey::from_ec_scalar(alg, &d, &self.ec_point()?)
            }
            ("OKP", Some("Ed25519")) => PrivateKey::from_ed25519_seed(&d),
            (kty, crv) => Err(Error::KeyUnsupported(format!(
                "private JWK of type {kty:?} curve {crv:?}: expected EC P-256/P-384 or OKP Ed25519"
            ))),
        }
    }

    /// The RFC 7638 SHA-256 thumbprint, base64url without padding.
    pub fn thumbprint(&self) -> Result<String> {
        let missing = |field: &str| Error::JoseMalformed(format!("JWK has no {field:?}"));
        // RFC 7638 3.2: only the required members, in lexicographic order, no white space.
        let canonical = match self.kty.as_str() {
            "EC" => serde_json::json!({
                "crv": self.crv.as_deref().ok_or_else(|| missing("crv"))?,
                "kty": "EC",
                "x": self.x.as_deref().ok_or_else(|| missing("x"))?,
                "y": self.y.as_deref().ok_or_else(|| missing("y"))?,
            }),
            "OKP" => serde_json::json!({
                "crv": self.crv.as_deref().ok_or_else(|| missing("crv"))?,
                "kty": "OKP",
                "x": self.x.as_deref().ok_or_else(|| missing("x"))?,
            }),
            "RSA" => serde_json::json!({
                "e": self.e.as_deref().ok_or_else(|| missing("e"))?,
                "kty": "RSA",
                "n": self.n.as_deref().ok_or_else(|| missing("n"))?,
            }),
            other => return Err(Error::KeyUnsupported(format!("JWK key type {other:?}"))),
        };
        // serde_json's map is ordered by key, which is exactly RFC 7638's order.
        let text = canonical.to_string();
        Ok(B64.encode(digest::digest(&digest::SHA256, text.as_bytes())))
    }

    /// The public part only (drops `d`).
    pub fn to_public(&self) -> Jwk {
        Jwk {
            d: None,
            ..self.clone()
        }
    }

    /// Verifies a JWS signature made with this key under `alg`.
    pub fn verify(&self, alg: &str, message: &[u8], signature_bytes: &[u8]) -> Result<()> {
        let result = match (alg, self.kty.as_str(), self.crv.as_deref()) {
            ("ES256", "EC", Some("P-256")) => {
                UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, self.ec_point()?)
                    .verify(message, signature_bytes)
            }
            ("ES384", "EC", Some("P-384")) => {
                UnparsedPublicKey::new(&signature::ECDSA_P384_SHA384_FIXED, self.ec_point()?)
                    .verify(message, signature_bytes)
            }
            ("EdDSA", "OKP", Some("Ed25519")) => {
                let x = b64_field("x", self.x.as_deref().unwrap_or_default())?;
                UnparsedPublicKey::new(&signature::ED25519, x).verify(message, signature_bytes)
            }
            ("RS256", "RSA", _) => {
                let n = b64_field("n", self.n.as_deref().unwrap_or_default())?;
                let e = b64_field("e", self.e.as_deref().unwrap_or_default())?;
                signature::RsaPublicKeyComponents { n: &n, e: &e }.verify(
                    &signature::RSA_PKCS1_2048_8192_SHA256,
                    message,
                    signature_bytes,
                )
            }
            (alg, kty, crv) => {
                return Err(Error::JoseAlgorithmUnsupported(format!(
                    "{alg} with a {kty} key on curve {crv:?}"
                )));
            }
        };
        result.map_err(|_| Error::JwsSignatureInvalid)
    }

    fn ec_point(&self) -> Result<Vec<u8>> {
        let x = b64_field("x", self.x.as_deref().unwrap_or_default())?;
        let y = b64_field("y", self.y.as_deref().unwrap_or_default())?;
        let expected = match self.crv.as_deref() {
            Some("P-256") => 32,
            Some("P-384") => 48,
            other => return Err(Error::KeyUnsupported(format!("EC curve {other:?}"))),
        };
        if x.len() != expected || y.len() != expected {
            return Err(Error::JoseMalformed(format!(
                "EC JWK coordinates must be {expected} bytes"
            )));
        }
        let mut point = Vec::with_capacity(1 + 2 * expected);
        point.push(0x04);
        point.extend_from_slice(&x);
        point.extend_from_slice(&y);
        Ok(point)
    }
}

fn b64_field(name: &str, value: &str) -> Result<Vec<u8>> {
    B64.decode(value)
        .map_err(|e| Error::JoseMalformed(format!("JWK member {name:?} is not base64url: {e}")))
}

/// Splits an RSA SubjectPublicKeyInfo into modulus and exponent, without leading zero bytes.
fn rsa_public_components(spki_der: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
    use x509_parser::prelude::FromDer;
    use x509_parser::public_key::PublicKey;
    let malformed = |detail: String| Error::DerMalformed {
        what: "RSA public key",
        detail,
    };
    let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(spki_der)
        .map_err(|e| malformed(e.to_string()))?;
    match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) => {
            let strip = |b: &[u8]| {
                let start = b.iter().position(|&x| x != 0).unwrap_or(b.len());
                b[start..].to_vec()
            };
            Ok((strip(rsa.modulus), strip(rsa.exponent)))
        }
        _ => Err(malformed("not an RSA key".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbprint_matches_rfc_7638_example() {
        // RFC 7638 3.1 example key.
        let jwk = Jwk {
            kty: "RSA".into(),
            n: Some("0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw".into()),
            e: Some("AQAB".into()),
            ..Jwk::default()
        };
        assert_eq!(
            jwk.thumbprint().unwrap(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn private_jwk_round_trips_for_ec_and_ed25519() {
        for alg in [
            KeyAlgorithm::EcP256,
            KeyAlgorithm::EcP384,
            KeyAlgorithm::Ed25519,
        ] {
            let key = PrivateKey::generate(alg).unwrap();
            let json = Jwk::private_from_key(&key).unwrap();
            let jwk = Jwk::from_json(json.as_bytes()).unwrap();
            let again = jwk.to_private_key().unwrap();
            assert_eq!(again.public_key_raw(), key.public_key_raw());
            assert_eq!(jwk.kid, Some(jwk.thumbprint().unwrap()));
            let sig = key.sign_jws(b"message").unwrap();
            jwk.verify(key.jws_algorithm(), b"message", &sig).unwrap();
            assert!(matches!(
                jwk.verify(key.jws_algorithm(), b"other", &sig),
                Err(Error::JwsSignatureInvalid)
            ));
        }
    }

    #[test]
    fn algorithm_confusion_is_refused() {
        let key = PrivateKey::generate(KeyAlgorithm::EcP256).unwrap();
        let jwk = Jwk::public_from_key(&key).unwrap();
        let sig = key.sign_jws(b"m").unwrap();
        assert!(matches!(
            jwk.verify("HS256", b"m", &sig),
            Err(Error::JoseAlgorithmUnsupported(_))
        ));
        assert!(matches!(
            jwk.verify("ES384", b"m", &sig),
            Err(Error::JoseAlgorithmUnsupported(_))
        ));
    }
}
