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
