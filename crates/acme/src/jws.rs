//! ACME request bodies: JWS in the flattened JSON serialization (RFC 8555 6.2).
//!
//! Parsing checks the form (one signature, a protected header only, an allowed algorithm, a
//! `url`, exactly one of `jwk` and `kid`); the signature is checked by the JOSE code in
//! `mayfly-pki`, which the flattened form is turned into the compact form for.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use mayfly_pki::jose::jwk::Jwk;
use mayfly_pki::jose::jws::Jws;
use serde::Deserialize;

use crate::error::{Error, ProblemType, Result};

/// Largest request body accepted; a finalize with an RSA 4096 CSR is under 4 KiB.
pub const MAX_BODY_LEN: usize = 64 * 1024;

/// Algorithms accepted (RFC 8555 6.2 requires ES256 and recommends EdDSA).
pub const ALGORITHMS: &[&str] = &["ES256", "ES384", "RS256", "EdDSA"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Flattened {
    protected: String,
    payload: String,
    signature: String,
}

/// The protected header of an ACME request.
#[derive(Debug, Clone, Deserialize)]
pub struct Protected {
    pub alg: String,
    #[serde(default)]
    pub nonce: Option<String>,
    pub url: String,
    #[serde(default)]
    pub jwk: Option<Jwk>,
    #[serde(default)]
    pub kid: Option<String>,
}

/// A parsed, not yet verified, ACME request.
#[derive(Debug, Clone)]
pub struct SignedRequest {
    pub protected: Protected,
    jws: Jws,
    payload_empty: bool,
}

impl SignedRequest {
    /// Parses a request body. Errors are `malformed` or `badSignatureAlgorithm`.
    pub fn parse(body: &[u8]) -> Result<Self> {
        if body.len() > MAX_BODY_LEN {
            return Err(Error::malformed(format!(
                "request body is {} bytes, more than the limit of {MAX_BODY_LEN}",
                body.len()
            )));
        }
        let flattened: Flattened = serde_json::from_slice(body).map_err(|e| {
            Error::malformed(format!(
                "request body is not a flattened JWS (protected, payload, signature): {e}"
            ))
        })?;
        let header_bytes = B64
            .decode(&flattened.protected)
            .map_err(|e| Error::malformed(format!("protected header is not base64url: {e}")))?;
        let protected: Protected = serde_json::from_slice(&header_bytes)
            .map_err(|e| Error::malformed(format!("protected header: {e}")))?;
        if !ALGORITHMS.contains(&protected.alg.as_str()) {
            return Err(Error::problem(
                ProblemType::BadSignatureAlgorithm,
                format!(
                    "algorithm {:?} is not accepted: expected one of {ALGORITHMS:?}",
                    protected.alg
                ),
            ));
        }
        match (&protected.jwk, &protected.kid) {
            (Some(_), Some(_)) => {
                return Err(Error::malformed(
                    "the protected header has both \"jwk\" and \"kid\": expected one",
                ));
            }
            (None, None) => {
                return Err(Error::malformed(
                    "the protected header has neither \"jwk\" nor \"kid\"",
                ));
            }
            _ => {}
        }
        let compact = format!(
            "{}.{}.{}",
            flattened.protected, flattened.payload, flattened.signature
        );
        let jws =
            Jws::parse(&compact).map_err(|e| Error::malformed(format!("request JWS: {e}")))?;
        Ok(Self {
            protected,
            jws,
            payload_empty: flattened.payload.is_empty(),
        })
    }

    /// Checks the signature with `key`; returns the payload.
    pub fn verify(&self, key: &Jwk) -> Result<&[u8]> {
        // The account key's `alg` member, if any, is not a constraint ACME clients honour.
        let key = Jwk {
            alg: None,
            ..key.clone()
        };
        self.jws.verify(&key).map_err(signature_error)
    }

    /// Checks the signature with a certificate's public key (revocation by certificate key).
    pub fn verify_with_spki(&self, spki_der: &[u8]) -> Result<&[u8]> {
        self.jws.verify_with_spki(spki_der).map_err(signature_error)
    }

    /// POST-as-GET: the payload is the empty string.
    pub fn is_post_as_get(&self) -> bool {
        self.payload_empty
    }
}

fn signature_error(e: mayfly_pki::Error) -> Error {
    match e {
        mayfly_pki::Error::JwsSignatureInvalid => {
            Error::malformed("JWS signature verification failed")
        }
        mayfly_pki::Error::JoseAlgorithmUnsupported(detail) => {
            Error::problem(ProblemType::BadSignatureAlgorithm, detail)
        }
        other => Error::malformed(format!("JWS: {other}")),
    }
}

/// Parses a JSON payload, naming the request in the error.
pub fn payload<T: serde::de::DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| Error::malformed(format!("{what} payload: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mayfly_pki::{KeyAlgorithm, PrivateKey};

    /// A request signed with `key`, its JWK in the header, as `newAccount` sends it.
    fn signed(key: &PrivateKey, payload: &str) -> Vec<u8> {
        let jwk = Jwk::public_from_key(key).unwrap();
        let header =
            serde_json::json!({"alg": key.jws_algorithm(), "nonce": "n", "url": "u", "jwk": jwk});
        let protected = B64.encode(header.to_string());
        let payload = B64.encode(payload);
        let signature = key
            .sign_jws(format!("{protected}.{payload}").as_bytes())
            .unwrap();
        serde_json::json!({"protected": protected, "payload": payload, "signature": B64.encode(signature)})
            .to_string()
            .into_bytes()
    }

    #[test]
    fn every_allowed_algorithm_verifies_and_another_key_does_not() {
        for algorithm in [
            KeyAlgorithm::EcP256,
            KeyAlgorithm::EcP384,
            KeyAlgorithm::Ed25519,
            KeyAlgorithm::Rsa(2048),
        ] {
            let key = PrivateKey::generate(algorithm).unwrap();
            let request = SignedRequest::parse(&signed(&key, "{}")).unwrap();
            assert!(ALGORITHMS.contains(&request.protected.alg.as_str()));
            let jwk = request.protected.jwk.clone().unwrap();
            assert_eq!(request.verify(&jwk).unwrap(), b"{}", "{algorithm:?}");
            let other = PrivateKey::generate(algorithm).unwrap();
            let other_jwk = Jwk::public_from_key(&other).unwrap();
            assert!(
                request.verify(&other_jwk).is_err(),
                "{algorithm:?} with another key"
            );
        }
    }

    fn flattened(header: &serde_json::Value, payload: &str) -> Vec<u8> {
        serde_json::json!({
            "protected": B64.encode(header.to_string()),
            "payload": payload,
            "signature": "AAAA",
        })
        .to_string()
        .into_bytes()
    }

    #[test]
    fn malformed_requests_are_refused_with_their_problem() {
        let jwk = serde_json::json!({"kty":"EC","crv":"P-256","x":"AA","y":"AA"});
        let cases: Vec<(Vec<u8>, ProblemType, &str)> = vec![
            (
                b"not json".to_vec(),
                ProblemType::Malformed,
                "flattened JWS",
            ),
            (
                br#"{"protected":"e30","payload":"","signature":"","header":{}}"#.to_vec(),
                ProblemType::Malformed,
                "unknown field",
            ),
            (
                flattened(&serde_json::json!({"alg":"none","url":"u","kid":"k"}), ""),
                ProblemType::BadSignatureAlgorithm,
                "\"none\"",
            ),
            (
                flattened(&serde_json::json!({"alg":"HS256","url":"u","kid":"k"}), ""),
                ProblemType::BadSignatureAlgorithm,
                "HS256",
            ),
            (
                flattened(
                    &serde_json::json!({"alg":"ES256","url":"u","kid":"k","jwk":jwk}),
                    "",
                ),
                ProblemType::Malformed,
                "both",
            ),
            (
                flattened(&serde_json::json!({"alg":"ES256","url":"u"}), ""),
                ProblemType::Malformed,
                "neither",
            ),
            (
                flattened(&serde_json::json!({"alg":"ES256","kid":"k"}), ""),
                ProblemType::Malformed,
                "missing field `url`",
            ),
            (
                br#"{"protected":"!!","payload":"","signature":""}"#.to_vec(),
                ProblemType::Malformed,
                "base64url",
            ),
            (
                vec![b' '; MAX_BODY_LEN + 1],
                ProblemType::Malformed,
                "limit",
            ),
        ];
        for (body, problem, text) in cases {
            let err = SignedRequest::parse(&body).unwrap_err();
            assert_eq!(err.problem_type(), problem, "{err}");
            assert!(err.to_string().contains(text), "{err}");
        }
    }
}
