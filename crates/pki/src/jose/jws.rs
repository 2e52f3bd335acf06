//! JWS compact serialization (RFC 7515) for signed JWTs such as one-time tokens.
//!
//! Parsing only decodes; nothing here trusts a token. [`Jws::verify`] is the single way to
//! obtain the payload as something the authority may act on.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::{Deserialize, Serialize};

use super::jwk::Jwk;
use crate::error::{Error, Result};
use crate::key::PrivateKey;

/// Upper bound on a token's size; step's tokens are under 1 KiB, x5c ones a few KiB.
const MAX_COMPACT_LEN: usize = 64 * 1024;

/// The protected header of a JWS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwsHeader {
    pub alg: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub typ: Option<String>,
}

/// A decoded, not yet verified, compact JWS.
#[derive(Debug, Clone)]
pub struct Jws {
    header: JwsHeader,
    header_json: serde_json::Value,
    payload: Vec<u8>,
    signing_input_len: usize,
    compact: String,
    signature: Vec<u8>,
}

impl Jws {
    /// Decodes `compact` (`header.payload.signature`) without verifying it.
    pub fn parse(compact: &str) -> Result<Self> {
        let compact = compact.trim();
        if compact.len() > MAX_COMPACT_LEN {
            return Err(Error::JoseMalformed(format!(
                "token is {} bytes, more than the limit of {MAX_COMPACT_LEN}",
                compact.len()
            )));
        }
        let mut parts = compact.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Error::JoseMalformed(
                "expected three base64url parts separated by '.'".into(),
            ));
        };
        let decode = |what: &str, part: &str| {
            B64.decode(part)
                .map_err(|e| Error::JoseMalformed(format!("{what} is not base64url: {e}")))
        };
        let header_bytes = decode("header", h)?;
        let header_json: serde_json::Value = serde_json::from_slice(&header_bytes)
            .map_err(|e| Error::JoseMalformed(format!("header is not JSON: {e}")))?;
        // RFC 7515 4.1.11: a recipient must refuse a JWS whose `crit` names an extension it
        // does not understand, and this one understands none.
        if let Some(crit) = header_json.get("crit") {
            return Err(Error::JoseMalformed(format!(
                "header \"crit\" ({crit}) names extensions that are not understood here"
            )));
        }
        let header: JwsHeader = serde_json::from_value(header_json.clone())
            .map_err(|e| Error::JoseMalformed(format!("header: {e}")))?;
        Ok(Self {
            header,
            header_json,
            payload: decode("payload", p)?,
            signing_input_len: h.len() + 1 + p.len(),
            compact: compact.to_string(),
            signature: decode("signature", s)?,
        })
    }

    pub fn header(&self) -> &JwsHeader {
        &self.header
    }

    /// The header as JSON, for inspection (`crypto jwt inspect`).
    pub fn header_json(&self) -> &serde_json::Value {
        &self.header_json
    }

    /// The payload bytes, unverified. Only inspection may use this; policy must use
    /// [`Jws::verify`].
    pub fn unverified_payload(&self) -> &[u8] {
        &self.payload
    }

    /// The bytes the signature covers (`header.payload`), for checks with keys that are not
    /// JWKs or certificates, such as an SSH certificate's key.
    pub fn signing_input(&self) -> &[u8] {
        &self.compact.as_bytes()[..self.signing_input_len]
    }

    /// The raw signature bytes.
    pub fn signature(&self) -> &[u8] {
        &self.signature
    }

    /// The signature part as base64url, as `crypto jwt inspect` prints it.
    pub fn signature_b64(&self) -> String {
        B64.encode(&self.signature)
    }

    /// Checks the signature with `key` and returns the payload.
    pub fn verify(&self, key: &Jwk) -> Result<&[u8]> {
        if let Some(key_alg) = key.alg.as_deref()
            && key_alg != self.header.alg
        {
            return Err(Error::JoseAlgorithmUnsupported(format!(
                "token is signed with {} but the key is for {key_alg}",
                self.header.alg
            )));
        }
        let signing_input = &self.compact.as_bytes()[..self.signing_input_len];
        key.verify(&self.header.alg, signing_input, &self.signature)?;
        Ok(&self.payload)
    }
}

impl Jws {
    /// The certificates of the `x5c` header (RFC 7515 4.1.6: base64, not base64url, DER), leaf
    /// first; empty when there is none.
    pub fn x5c(&self) -> Result<Vec<Vec<u8>>> {
        self.certificate_chain("x5c")
    }

    /// The certificates of header `name`, in `x5c`'s encoding: step's renewal tokens carry the
    /// chain in `x5cInsecure`, whose name says that the chain is not checked against roots by
    /// whoever reads the token; the CA checks it against what it issued.
    pub fn certificate_chain(&self, name: &str) -> Result<Vec<Vec<u8>>> {
        use base64::engine::general_purpose::STANDARD;
        let Some(list) = self.header_json.get(name) else {
            return Ok(Vec::new());
        };
        let items = list
            .as_array()
            .ok_or_else(|| Error::JoseMalformed(format!("header {name:?} is not an array")))?;
        items
            .iter()
            .map(|item| {
                let text = item.as_str().ok_or_else(|| {
                    Error::JoseMalformed(format!("header {name:?} holds a non-string"))
                })?;
                STANDARD.decode(text).map_err(|e| {
                    Error::JoseMalformed(format!("header {name:?} is not base64: {e}"))
                })
            })
            .collect()
    }

    /// Checks the signature with the public key of a certificate (DER SubjectPublicKeyInfo),
    /// as for `x5c` tokens, and returns the payload. The algorithm must suit the key.
    pub fn verify_with_spki(&self, spki_der: &[u8]) -> Result<&[u8]> {
        use aws_lc_rs::signature::{self, UnparsedPublicKey};
        use x509_parser::prelude::FromDer;
        let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(spki_der)
            .map_err(|e| Error::JoseMalformed(format!("x5c certificate key: {e}")))?;
        let key_bits: &[u8] = &spki.subject_public_key.data;
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok())
            .map(|oid| oid.to_id_string());
        let algorithm: &'static dyn signature::VerificationAlgorithm = match (
            self.header.alg.as_str(),
            spki.algorithm.algorithm.to_id_string().as_str(),
            curve.as_deref(),
        ) {
            ("ES256", "1.2.840.10045.2.1", Some("1.2.840.10045.3.1.7")) => {
                &signature::ECDSA_P256_SHA256_FIXED
            }
            ("ES384", "1.2.840.10045.2.1", Some("1.3.132.0.34")) => {
                &signature::ECDSA_P384_SHA384_FIXED
            }
            ("EdDSA", "1.3.101.112", _) => &signature::ED25519,
            ("RS256", "1.2.840.113549.1.1.1", _) => &signature::RSA_PKCS1_2048_8192_SHA256,
            (alg, key, _) => {
                return Err(Error::JoseAlgorithmUnsupported(format!(
                    "{alg} with a key of type {key}"
                )));
            }
        };
        let signing_input = &self.compact.as_bytes()[..self.signing_input_len];
        UnparsedPublicKey::new(algorithm, key_bits)
            .verify(signing_input, &self.signature)
            .map_err(|_| Error::JwsSignatureInvalid)?;
        Ok(&self.payload)
    }
}

/// Signs `payload` as a compact JWS whose `x5c` header carries `chain` (DER, leaf first),
/// signed by the certificate's own key.
pub fn sign_compact_x5c(key: &PrivateKey, chain: &[Vec<u8>], payload: &[u8]) -> Result<String> {
    sign_compact_chain(key, "x5c", chain, payload)
}

/// Like [`sign_compact_x5c`] with the chain in header `name`: step's renewal tokens use
/// `x5cInsecure`.
pub fn sign_compact_chain(
    key: &PrivateKey,
    name: &str,
    chain: &[Vec<u8>],
    payload: &[u8],
) -> Result<String> {
    use base64::engine::general_purpose::STANDARD;
    let encoded: Vec<String> = chain.iter().map(|c| STANDARD.encode(c)).collect();
    let mut header = serde_json::json!({"alg": key.jws_algorithm(), "typ": "JWT"});
    if let Some(map) = header.as_object_mut() {
        map.insert(name.to_owned(), encoded.into());
    }
    sign_with_header(key, &header, payload)
}

/// Signs `payload` as a compact JWS whose `sshpop` header carries an SSH certificate (base64
/// wire encoding), signed by the certificate's own key: step's SSH-POP tokens.
pub fn sign_compact_sshpop(
    key: &PrivateKey,
    certificate_b64: &str,
    payload: &[u8],
) -> Result<String> {
    let header =
        serde_json::json!({"alg": key.jws_algorithm(), "typ": "JWT", "sshpop": certificate_b64});
    sign_with_header(key, &header, payload)
}

fn sign_with_header(
    key: &PrivateKey,
    header: &serde_json::Value,
    payload: &[u8],
) -> Result<String> {
    let mut out = B64.encode(header.to_string());
    out.push('.');
    out.push_str(&B64.encode(payload));
    let signature = key.sign_jws(out.as_bytes())?;
    out.push('.');
    out.push_str(&B64.encode(signature));
    Ok(out)
}

/// Signs `payload` as a compact JWS with `key`; the header gets `kid` and `typ: JWT`.
pub fn sign_compact(key: &PrivateKey, kid: &str, payload: &[u8]) -> Result<String> {
    let header = JwsHeader {
        alg: key.jws_algorithm().into(),
        kid: Some(kid.into()),
        typ: Some("JWT".into()),
    };
    let header_json = serde_json::to_vec(&header)
        .map_err(|e| Error::JoseMalformed(format!("header serialisation: {e}")))?;
    let mut out = B64.encode(header_json);
    out.push('.');
    out.push_str(&B64.encode(payload));
    let signature = key.sign_jws(out.as_bytes())?;
    out.push('.');
    out.push_str(&B64.encode(signature));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::KeyAlgorithm;

    #[test]
    fn a_critical_extension_is_refused() {
        let key = PrivateKey::generate(KeyAlgorithm::EcP256).unwrap();
        for crit in [
            serde_json::json!(["exp"]),
            serde_json::json!(["b64"]),
            serde_json::json!([]),
            serde_json::json!("x"),
        ] {
            let header = serde_json::json!({"alg": "ES256", "kid": "k", "crit": crit, "exp": 1});
            let token = sign_with_header(&key, &header, b"{}").unwrap();
            let error = Jws::parse(&token).unwrap_err();
            assert!(error.to_string().contains("\"crit\""), "{crit}: {error}");
        }
        let header = serde_json::json!({"alg": "ES256", "kid": "k"});
        assert!(Jws::parse(&sign_with_header(&key, &header, b"{}").unwrap()).is_ok());
    }

    #[test]
    fn signed_tokens_verify_and_tampering_is_detected() {
        let key = PrivateKey::generate(KeyAlgorithm::EcP256).unwrap();
        let jwk = Jwk::public_from_key(&key).unwrap();
        let token = sign_compact(&key, jwk.kid.as_deref().unwrap(), br#"{"sub":"a"}"#).unwrap();
        let jws = Jws::parse(&token).unwrap();
        assert_eq!(jws.verify(&jwk).unwrap(), br#"{"sub":"a"}"#);

        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = B64.encode(br#"{"sub":"b"}"#);
        parts[1] = &forged;
        let tampered = parts.join(".");
        assert!(matches!(
            Jws::parse(&tampered).unwrap().verify(&jwk),
            Err(Error::JwsSignatureInvalid)
        ));
    }

    #[test]
    fn x5c_tokens_verify_with_the_certificate_key_only() {
        for algorithm in [KeyAlgorithm::EcP256, KeyAlgorithm::Ed25519] {
            let key = PrivateKey::generate(algorithm).unwrap();
            let fake_cert = vec![1u8, 2, 3];
            let token = sign_compact_x5c(&key, std::slice::from_ref(&fake_cert), b"{}").unwrap();
            let jws = Jws::parse(&token).unwrap();
            assert_eq!(jws.x5c().unwrap(), vec![fake_cert]);
            let spki = key.public_key_spki_der().unwrap();
            assert_eq!(jws.verify_with_spki(&spki).unwrap(), b"{}");
            let other = PrivateKey::generate(algorithm)
                .unwrap()
                .public_key_spki_der()
                .unwrap();
            assert!(matches!(
                jws.verify_with_spki(&other),
                Err(Error::JwsSignatureInvalid)
            ));
        }
        let ec = PrivateKey::generate(KeyAlgorithm::EcP256).unwrap();
        let ed = PrivateKey::generate(KeyAlgorithm::Ed25519).unwrap();
        let token = sign_compact_x5c(&ec, &[], b"{}").unwrap();
        let jws = Jws::parse(&token).unwrap();
        let err = jws.verify_with_spki(&ed.public_key_spki_der().unwrap());
        assert!(
            matches!(err, Err(Error::JoseAlgorithmUnsupported(_))),
            "{err:?}"
        );
    }

    #[test]
    fn malformed_tokens_are_refused_with_a_reason() {
        let cases = [
            ("", "three base64url parts"),
            ("a.b", "three base64url parts"),
            ("a.b.c.d", "three base64url parts"),
            ("!!.e30.AA", "header is not base64url"),
            ("e30.e30.AA", "header: missing field `alg`"),
            ("bm90IGpzb24.e30.AA", "header is not JSON"),
        ];
        for (input, expected) in cases {
            let err = Jws::parse(input).unwrap_err().to_string();
            assert!(err.contains(expected), "{input:?}: {err}");
        }
    }
}
