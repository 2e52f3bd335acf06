//! Password-based JWE (RFC 7516 with the PBES2 key management of RFC 7518 §4.8), the form
//! in which step stores provisioner private keys (`encryptedKey` in `ca.json`, `*_priv.jwk`).
//!
//! Decryption accepts the compact serialization (as in `ca.json`) and the flattened JSON
//! serialization (as in step's `*_priv.jwk` files), `alg` `PBES2-HS256+A128KW`,
//! `PBES2-HS384+A192KW` or `PBES2-HS512+A256KW`, and `enc` `A128GCM`, `A192GCM` or `A256GCM`.
//! Encryption writes what step writes today: compact, `PBES2-HS256+A128KW`, `A256GCM`, a
//! 16-byte `p2s` and, usually, `cty` `jwk+json` and 600,000 iterations.
//!
//! Many JOSE libraries cap `p2c` low (jwcrypto at 16,384) to bound the work an attacker can
//! demand; step's files use 100,000 and 600,000, so the cap here is 1,000,000.

use std::num::NonZeroU32;

use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::cipher::{self, DecryptingKey, DecryptionContext, UnboundCipherKey};
use aws_lc_rs::key_wrap::{self, AesKek, KeyWrap as _};
use aws_lc_rs::pbkdf2;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// The PBKDF2 iteration count step's `jose.EncryptJWK` uses today (`jose.PBKDF2Iterations`).
pub const STEP_PBKDF2_ITERATIONS: u32 = 600_000;

/// The highest `p2c` accepted, when reading and when writing.
const MAX_P2C: u64 = 1_000_000;

/// RFC 7518 §4.8.1.1: the salt input must be at least 8 octets.
const MIN_P2S_LEN: usize = 8;

/// The `p2s` length written (step writes 16).
const P2S_LEN: usize = 16;

/// AES-GCM's nonce and tag sizes as JWE uses them (RFC 7518 §5.3).
const GCM_IV_LEN: usize = 12;
const GCM_TAG_LEN: usize = 16;

/// RFC 3394's default initial value.
const KW_IV: [u8; 8] = [0xa6; 8];

/// Decoding accepts base64url with or without padding: RFC 7515 forbids padding, but
/// rejecting it would only make hand-edited files fail for no security gain.
const B64_DECODE: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

fn malformed(detail: impl Into<String>) -> Error {
    Error::JoseMalformed(detail.into())
}

fn b64_decode(field: &str, value: &str) -> Result<Vec<u8>> {
    B64_DECODE
        .decode(value)
        .map_err(|e| malformed(format!("{field} is not base64url: {e}")))
}

/// The supported `alg` values: PRF and key-wrap key length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KeyManagement {
    Hs256A128,
    Hs384A192,
    Hs512A256,
}

impl KeyManagement {
    fn from_name(alg: &str) -> Result<Self> {
        match alg {
            "PBES2-HS256+A128KW" => Ok(Self::Hs256A128),
            "PBES2-HS384+A192KW" => Ok(Self::Hs384A192),
            "PBES2-HS512+A256KW" => Ok(Self::Hs512A256),
            other => Err(Error::JoseAlgorithmUnsupported(format!(
                "{other} (a password-protected JWE needs PBES2-HS256+A128KW, PBES2-HS384+A192KW or PBES2-HS512+A256KW)"
            ))),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Hs256A128 => "PBES2-HS256+A128KW",
            Self::Hs384A192 => "PBES2-HS384+A192KW",
            Self::Hs512A256 => "PBES2-HS512+A256KW",
        }
    }

    fn prf(self) -> pbkdf2::Algorithm {
        match self {
            Self::Hs256A128 => pbkdf2::PBKDF2_HMAC_SHA256,
            Self::Hs384A192 => pbkdf2::PBKDF2_HMAC_SHA384,
            Self::Hs512A256 => pbkdf2::PBKDF2_HMAC_SHA512,
        }
    }

    fn kek_len(self) -> usize {
        match self {
            Self::Hs256A128 => 16,
            Self::Hs384A192 => 24,
            Self::Hs512A256 => 32,
        }
    }

    /// The key-encryption key: PBKDF2 over `UTF8(alg) || 0x00 || p2s` (RFC 7518 §4.8.1.1).
    fn derive_kek(self, password: &[u8], p2s: &[u8], iterations: NonZeroU32) -> Zeroizing<Vec<u8>> {
        let salt = [self.name().as_bytes(), &[0], p2s].concat();
        let mut kek = Zeroizing::new(vec![0u8; self.kek_len()]);
        pbkdf2::derive(self.prf(), iterations, &salt, password, &mut kek);
        kek
    }
}

/// The supported `enc` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ContentEncryption {
    A128,
    A192,
    A256,
}

impl ContentEncryption {
    fn from_name(enc: &str) -> Result<Self> {
        match enc {
            "A128GCM" => Ok(Self::A128),
            "A192GCM" => Ok(Self::A192),
            "A256GCM" => Ok(Self::A256),
            other => Err(Error::JoseAlgorithmUnsupported(format!(
                "enc {other} (supported: A128GCM, A192GCM, A256GCM)"
            ))),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::A128 => "A128GCM",
            Self::A192 => "A192GCM",
            Self::A256 => "A256GCM",
        }
    }

    fn algorithm(self) -> &'static aead::Algorithm {
        match self {
            Self::A128 => &aead::AES_128_GCM,
            Self::A192 => &aead::AES_192_GCM,
            Self::A256 => &aead::AES_256_GCM,
        }
    }

    fn key_len(self) -> usize {
        self.algorithm().key_len()
    }
}

/// The protected header as read. Unknown members are ignored, except `crit` and `zip`, which
/// change how the object must be processed.
#[derive(Deserialize)]
struct HeaderIn {
    alg: Option<String>,
    enc: Option<String>,
    p2s: Option<String>,
    p2c: Option<serde_json::Value>,
    zip: Option<String>,
    crit: Option<Vec<String>>,
}

/// The protected header as written, members in the sorted order Go's JSON encoder (and so
/// step) produces.
#[derive(Serialize)]
struct HeaderOut<'a> {
    alg: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    cty: Option<&'a str>,
    enc: &'a str,
    p2c: u32,
    p2s: String,
}

/// The flattened JSON serialization (RFC 7516 §7.2.2), as step writes `*_priv.jwk`.
#[derive(Deserialize)]
struct Flattened {
    protected: Option<String>,
    encrypted_key: Option<String>,
    iv: Option<String>,
    ciphertext: Option<String>,
    tag: Option<String>,
    aad: Option<String>,
    header: Option<serde_json::Value>,
    unprotected: Option<serde_json::Value>,
    recipients: Option<serde_json::Value>,
}

/// The five parts of a JWE, still base64url-encoded.
struct Parts<'a> {
    protected: &'a str,
    encrypted_key: &'a str,
    iv: &'a str,
    ciphertext: &'a str,
    tag: &'a str,
    /// The JSON serialization's `aad` member, which extends the AAD (RFC 7516 §5.1 step 14).
    aad: Option<&'a str>,
}

/// Decrypts a PBES2 JWE, compact or flattened JSON, with `password` (raw bytes: step's
/// passwords need not be UTF-8).
///
/// # Errors
/// [`Error::PasswordIncorrect`] when the key unwrap or the GCM tag fails (a wrong password, or
/// a corrupted or tampered object), [`Error::IterationsTooHigh`] when `p2c` exceeds 1,000,000,
/// [`Error::JoseAlgorithmUnsupported`] for other `alg`/`enc`/`zip` values, and
/// [`Error::JoseMalformed`] for everything structurally wrong.
pub fn decrypt_pbes2(jwe: &str, password: &[u8]) -> Result<Vec<u8>> {
    let jwe = jwe.trim();
    if jwe.starts_with('{') {
        let flat: Flattened = serde_json::from_str(jwe)
            .map_err(|e| malformed(format!("JWE JSON serialization: {e}")))?;
        if flat.recipients.is_some() {
            return Err(malformed(
                "general JSON serialization (\"recipients\") is not supported: expected the flattened form",
            ));
        }
        if flat.header.is_some() || flat.unprotected.is_some() {
            return Err(malformed(
                "unprotected JWE headers are not supported: every parameter must be in \"protected\"",
            ));
        }
        // Members are optional in the type only so that a missing one gets a clear message.
        fn member<'a>(name: &str, value: &'a Option<String>) -> Result<&'a str> {
            value
                .as_deref()
                .ok_or_else(|| malformed(format!("JWE JSON serialization has no \"{name}\"")))
        }
        let parts = Parts {
            protected: member("protected", &flat.protected)?,
            encrypted_key: member("encrypted_key", &flat.encrypted_key)?,
            iv: member("iv", &flat.iv)?,
            ciphertext: member("ciphertext", &flat.ciphertext)?,
            tag: member("tag", &flat.tag)?,
            aad: flat.aad.as_deref(),
        };
        decrypt_parts(&parts, password)
    } else {
        let pieces: Vec<&str> = jwe.split('.').collect();
        let &[protected, encrypted_key, iv, ciphertext, tag] = pieces.as_slice() else {
            let hint = if pieces.len() == 3 {
                " (this looks like a JWS)"
            } else {
                ""
            };
            return Err(malformed(format!(
                "compact JWE must have 5 dot-separated parts, found {}{hint}",
                pieces.len()
            )));
        };
        decrypt_parts(
            &Parts {
                protected,
                encrypted_key,
                iv,
                ciphertext,
                tag,
                aad: None,
            },
            password,
        )
    }
}

fn decrypt_parts(parts: &Parts<'_>, password: &[u8]) -> Result<Vec<u8>> {
    let header_json = b64_decode("protected header", parts.protected)?;
    let header: HeaderIn = serde_json::from_slice(&header_json)
        .map_err(|e| malformed(format!("protected header is not a JSON object: {e}")))?;

    let alg = header
        .alg
        .as_deref()
        .ok_or_else(|| malformed("protected header has no \"alg\""))?;
    let km = KeyManagement::from_name(alg)?;
    let enc = header
        .enc
        .as_deref()
        .ok_or_else(|| malformed("protected header has no \"enc\""))?;
    let ce = ContentEncryption::from_name(enc)?;
    if let Some(zip) = &header.zip {
        return Err(Error::JoseAlgorithmUnsupported(format!(
            "zip {zip} (compressed JWE)"
        )));
    }
    if let Some(crit) = header.crit.as_ref().filter(|c| !c.is_empty()) {
        return Err(Error::JoseAlgorithmUnsupported(format!(
            "critical header parameters {crit:?}"
        )));
    }

    // The iteration cap comes before any expensive work and before a wrong password can be
    // detected, so a hostile object costs at most MAX_P2C PBKDF2 rounds.
    let p2c = header
        .p2c
        .as_ref()
        .ok_or_else(|| malformed("protected header has no \"p2c\""))?;
    let count = p2c
        .as_u64()
        .ok_or_else(|| malformed(format!("p2c must be a positive integer, found {p2c}")))?;
    if count > MAX_P2C {
        return Err(Error::IterationsTooHigh {
            count,
            limit: MAX_P2C,
        });
    }
    let iterations = u32::try_from(count)
        .ok()
        .and_then(NonZeroU32::new)
        .ok_or_else(|| malformed("p2c must be at least 1"))?;
    let p2s_text = header
        .p2s
        .as_deref()
        .ok_or_else(|| malformed("protected header has no \"p2s\""))?;
    let p2s = b64_decode("p2s", p2s_text)?;
    if p2s.len() < MIN_P2S_LEN {
        return Err(malformed(format!(
            "p2s has {} bytes, at least {MIN_P2S_LEN} are required",
            p2s.len()
        )));
    }

    let wrapped = b64_decode("encrypted_key", parts.encrypted_key)?;
    if wrapped.len() != ce.key_len() + 8 {
        return Err(malformed(format!(
            "encrypted_key has {} bytes: a wrapped {} key has {}",
            wrapped.len(),
            ce.name(),
            ce.key_len() + 8
        )));
    }
    let iv = b64_decode("iv", parts.iv)?;
    if iv.len() != GCM_IV_LEN {
        return Err(malformed(format!(
            "iv has {} bytes, AES-GCM needs {GCM_IV_LEN}",
            iv.len()
        )));
    }
    let tag = b64_decode("tag", parts.tag)?;
    if tag.len() != GCM_TAG_LEN {
        return Err(malformed(format!(
            "tag has {} bytes, expected {GCM_TAG_LEN}",
            tag.len()
        )));
    }
    let ciphertext = b64_decode("ciphertext", parts.ciphertext)?;

    let kek = km.derive_kek(password, &p2s, iterations);
    // The unwrap's integrity check is what detects a wrong password.
    let cek = aes_key_unwrap(&kek, &wrapped).ok_or(Error::PasswordIncorrect)?;

    // AAD is the protected header exactly as transmitted, plus ".aad" in the JSON form.
    let aad: Vec<u8> = match parts.aad {
        Some(extra) => [parts.protected.as_bytes(), b".", extra.as_bytes()].concat(),
        None => parts.protected.as_bytes().to_vec(),
    };
    let key = UnboundKey::new(ce.algorithm(), &cek).map_err(|_| Error::Crypto("AES-GCM key"))?;
    let key = LessSafeKey::new(key);
    let nonce =
        Nonce::try_assume_unique_for_key(&iv).map_err(|_| Error::Crypto("AES-GCM nonce"))?;
    let mut in_out = Zeroizing::new([ciphertext.as_slice(), tag.as_slice()].concat());
    // A tag failure after a successful unwrap means corruption or tampering (a wrong password
    // gets past the unwrap check with probability 2^-64); the error says both.
    let plaintext = key
        .open_in_place(nonce, Aad::from(aad), &mut in_out)
        .map_err(|_| Error::PasswordIncorrect)?;
    Ok(plaintext.to_vec())
}

/// RFC 3394 key unwrap; `None` when the integrity check fails or the input is unusable.
///
/// AES-128 and AES-256 go through aws-lc's implementation. aws-lc-rs has no AES-192 key wrap,
/// so `A192KW` runs the RFC 3394 algorithm here over single-block AES-192 (ECB on one block
/// is the raw block cipher the RFC is written in).
fn aes_key_unwrap(kek: &[u8], wrapped: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let mut out = Zeroizing::new(vec![0u8; wrapped.len().checked_sub(8)?]);
    let len = match kek.len() {
        16 | 32 => {
            let cipher = if kek.len() == 16 {
                &key_wrap::AES_128
            } else {
                &key_wrap::AES_256
            };
            AesKek::new(cipher, kek)
                .ok()?
                .unwrap(wrapped, &mut out)
                .ok()?
                .len()
        }
        24 => {
            aes192_unwrap(kek, wrapped, &mut out)?;
            out.len()
        }
        _ => return None,
    };
    out.truncate(len);
    Some(out)
}

/// RFC 3394 §2.2.2 (index-based unwrap) with AES-192; writes the key into `out`.
fn aes192_unwrap(kek: &[u8], wrapped: &[u8], out: &mut [u8]) -> Option<()> {
    if !wrapped.len().is_multiple_of(8) || wrapped.len() < 24 || out.len() != wrapped.len() - 8 {
        return None;
    }
    let n = out.len() / 8;
    let key = UnboundCipherKey::new(&cipher::AES_192, kek).ok()?;
    let block_cipher = DecryptingKey::ecb(key).ok()?;
    let (a_init, rest) = wrapped.split_first_chunk::<8>()?;
    let mut a = *a_init;
    out.copy_from_slice(rest);
    let mut block = Zeroizing::new([0u8; 16]);
    for j in (0..6u64).rev() {
        for i in (1..=n).rev() {
            let t = (n as u64) * j + i as u64;
            let r = out.get_mut((i - 1) * 8..i * 8)?;
            for (dst, (x, y)) in block.iter_mut().zip(a.iter().zip(t.to_be_bytes())) {
                *dst = x ^ y;
            }
            block.get_mut(8..)?.copy_from_slice(r);
            block_cipher
                .decrypt(block.as_mut_slice(), DecryptionContext::None)
                .ok()?;
            a.copy_from_slice(block.get(..8)?);
            r.copy_from_slice(block.get(8..)?);
        }
    }
    aws_lc_rs::constant_time::verify_slices_are_equal(&a, &KW_IV).ok()
}

/// Encrypts `plaintext` as a compact JWE: `PBES2-HS256+A128KW`, `A256GCM`, a random 16-byte
/// `p2s`, `p2c` = `iterations`, and `cty` when given. step writes JWKs with
/// `content_type = Some("jwk+json")` and [`STEP_PBKDF2_ITERATIONS`].
///
/// # Errors
/// [`Error::IterationsTooHigh`] above 1,000,000 (more than the decrypter accepts) and
/// [`Error::JoseMalformed`] for 0.
pub fn encrypt_pbes2(
    plaintext: &[u8],
    password: &[u8],
    content_type: Option<&str>,
    iterations: u32,
) -> Result<String> {
    if u64::from(iterations) > MAX_P2C {
        return Err(Error::IterationsTooHigh {
            count: u64::from(iterations),
            limit: MAX_P2C,
        });
    }
    let iterations =
        NonZeroU32::new(iterations).ok_or_else(|| malformed("p2c must be at least 1"))?;
    let km = KeyManagement::Hs256A128;
    let ce = ContentEncryption::A256;

    let mut p2s = [0u8; P2S_LEN];
    aws_lc_rs::rand::fill(&mut p2s).map_err(|_| Error::Crypto("random p2s"))?;
    let mut cek = Zeroizing::new(vec![0u8; ce.key_len()]);
    aws_lc_rs::rand::fill(&mut cek).map_err(|_| Error::Crypto("random content key"))?;
    let mut iv = [0u8; GCM_IV_LEN];
    aws_lc_rs::rand::fill(&mut iv).map_err(|_| Error::Crypto("random IV"))?;

    let header = HeaderOut {
        alg: km.name(),
        cty: content_type,
        enc: ce.name(),
        p2c: iterations.get(),
        p2s: URL_SAFE_NO_PAD.encode(p2s),
    };
    let header_json =
        serde_json::to_vec(&header).map_err(|_| Error::Crypto("JWE header encoding"))?;
    let protected = URL_SAFE_NO_PAD.encode(header_json);

    let kek = km.derive_kek(password, &p2s, iterations);
    let mut wrapped = vec![0u8; cek.len() + 8];
    let wrapped_len = AesKek::new(&key_wrap::AES_128, &kek)
        .and_then(|k| k.wrap(&cek, &mut wrapped).map(|w| w.len()))
        .map_err(|_| Error::Crypto("AES key wrap"))?;
    wrapped.truncate(wrapped_len);

    let key = UnboundKey::new(ce.algorithm(), &cek).map_err(|_| Error::Crypto("AES-GCM key"))?;
    let key = LessSafeKey::new(key);
    let mut ciphertext = plaintext.to_vec();
    let tag = key
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(iv),
            Aad::from(protected.as_bytes()),
            &mut ciphertext,
        )
        .map_err(|_| Error::Crypto("AES-GCM encryption"))?;

    Ok(format!(
        "{protected}.{}.{}.{}.{}",
        URL_SAFE_NO_PAD.encode(&wrapped),
        URL_SAFE_NO_PAD.encode(iv),
        URL_SAFE_NO_PAD.encode(&ciphertext),
        URL_SAFE_NO_PAD.encode(tag.as_ref()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PW: &[u8] = b"password";
    const MSG: &[u8] = br#"{"kty":"oct","k":"c2VjcmV0"}"#;

    /// step's `crypto/jose/testdata/p256.enc.priv.json` (flattened, A128GCM, p2c 100000),
    /// password `password`.
    const STEP_FLATTENED: &str = r#"{
  "protected": "eyJhbGciOiJQQkVTMi1IUzI1NitBMTI4S1ciLCJlbmMiOiJBMTI4R0NNIiwicDJjIjoxMDAwMDAsInAycyI6InFMYmNET3Yxczc3TlRGcnlKVUUtbmcifQ",
  "encrypted_key": "hY7Q7izJs6V1XvZI1l0RXJZ72XGg4anK",
  "iv": "gZb91xunOTgPqVF2",
  "ciphertext": "N-J28rcs385tnLyM32ynQpeRSn3nkcaaSoO9o0H7dxrsLJ7nV53DKGprDjAWhVWonbf3BxSIj1K5CUgMP8GPqUvJnZldgYILzvTRbGSPjYrGd5m2kUCAxIuRFbHNA35Lv02rfbNH9jvfdRvKhWvgunHS-a8vJCBCyk-Bd16Cp05G7tXp_EeVQXpUvNtQLd0v9NhWQ-tBeU86E3peCaJ97qipu7Xf23Axbng5azFzCGbSbmj4e0HN58HmHcpMDI8TgXrQ5-vDsRIE8U8YKJGqw5OVlRRM_gusQyZTBRHDFb5xkyFbD1SMpCRDdFTT0qS0k5vcH8ijpjSIs3K-sFo",
  "tag": "WG-RibO1NdWRaqHRHUwl3A"
}"#;

    /// Made with Python `cryptography` (PBKDF2HMAC, aes_key_wrap, AESGCM), an implementation
    /// independent of this one: PBES2-HS384+A192KW / A192GCM and PBES2-HS512+A256KW / A128GCM,
    /// password `password`, p2c 1000, plaintext `MSG`.
    const PY_HS384_A192: &str = "eyJhbGciOiJQQkVTMi1IUzM4NCtBMTkyS1ciLCJlbmMiOiJBMTkyR0NNIiwicDJjIjoxMDAwLCJwMnMiOiJJMDVLS2J5NXdEMFZmY0xpY2VFYm9BIn0.chfuPmT7BOcXgOAksHvjd9SVExtQepTPYVq6EGFChRc.rFICkHSTByYrc260.-8XHeni7E9axmQt4oZ97RfvqG50WFtgBxNhHsQ.lIcmtSRaqkuwGRzA3ADg1w";
    const PY_HS512_A256: &str = "eyJhbGciOiJQQkVTMi1IUzUxMitBMjU2S1ciLCJlbmMiOiJBMTI4R0NNIiwicDJjIjoxMDAwLCJwMnMiOiJFZVhDV0dRb1RpaWRyNE1NbUFCbF9RIn0.axlRkk6wOVjK5uN7t8KcPn_1R5EP6aty.QqBFN5-PEX3bSWCM.0sB4zJlMViKTcknYrkzpzMPXCl5IeKKYS5rKPA.IptjpksGxpsca1lOdh1y4g";

    fn compact_parts(jwe: &str) -> Vec<String> {
        jwe.split('.').map(str::to_string).collect()
    }

    fn with_header(jwe: &str, edit: impl FnOnce(&mut serde_json::Value)) -> String {
        let mut parts = compact_parts(jwe);
        let mut header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[0]).unwrap()).unwrap();
        edit(&mut header);
        parts[0] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap());
        parts.join(".")
    }

    #[test]
    fn round_trip_and_header_shape() {
        let jwe = encrypt_pbes2(MSG, PW, Some("jwk+json"), 1000).unwrap();
        assert_eq!(decrypt_pbes2(&jwe, PW).unwrap(), MSG);
        let parts = compact_parts(&jwe);
        assert_eq!(parts.len(), 5);
        assert!(parts.iter().all(|p| !p.contains('=')));
        let header = String::from_utf8(URL_SAFE_NO_PAD.decode(&parts[0]).unwrap()).unwrap();
        assert!(
            header.starts_with(
                r#"{"alg":"PBES2-HS256+A128KW","cty":"jwk+json","enc":"A256GCM","p2c":1000,"p2s":""#
            ),
            "{header}"
        );
        let p2s = serde_json::from_str::<serde_json::Value>(&header).unwrap()["p2s"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(URL_SAFE_NO_PAD.decode(p2s).unwrap().len(), 16);
        assert_eq!(URL_SAFE_NO_PAD.decode(&parts[1]).unwrap().len(), 40);
        assert_eq!(URL_SAFE_NO_PAD.decode(&parts[2]).unwrap().len(), 12);

        let no_cty = encrypt_pbes2(b"", PW, None, 1).unwrap();
        let header = URL_SAFE_NO_PAD
            .decode(compact_parts(&no_cty)[0].as_bytes())
            .unwrap();
        assert!(!String::from_utf8(header).unwrap().contains("cty"));
        assert_eq!(decrypt_pbes2(&no_cty, PW).unwrap(), b"");

        // Raw, non-UTF-8 passwords work (step's Helm test uses 01 03 03 07).
        let jwe = encrypt_pbes2(MSG, &[1, 3, 3, 7], None, 10).unwrap();
        assert_eq!(decrypt_pbes2(&jwe, &[1, 3, 3, 7]).unwrap(), MSG);
        assert!(matches!(
            decrypt_pbes2(&jwe, &[1, 3, 3, 8]),
            Err(Error::PasswordIncorrect)
        ));
    }

    #[test]
    fn step_flattened_vector_decrypts() {
        let plain = decrypt_pbes2(STEP_FLATTENED, PW).unwrap();
        let jwk: serde_json::Value = serde_json::from_slice(&plain).unwrap();
        assert_eq!(jwk["kid"], "V93A-Yh7Bhw1W2E0igFciviJzX4PXPswoVgriehm9Co");
        assert!(jwk["d"].is_string());
    }

    #[test]
    fn independently_made_vectors_for_the_other_algorithms_decrypt() {
        for jwe in [PY_HS384_A192, PY_HS512_A256] {
            assert_eq!(decrypt_pbes2(jwe, PW).unwrap(), MSG);
            assert!(matches!(
                decrypt_pbes2(jwe, b"nope"),
                Err(Error::PasswordIncorrect)
            ));
        }
    }

    #[test]
    fn flattened_form_with_aad_member_is_authenticated() {
        // Build a flattened object with `aad` by hand from the primitives.
        let protected = URL_SAFE_NO_PAD.encode(
            br#"{"alg":"PBES2-HS256+A128KW","enc":"A128GCM","p2c":10,"p2s":"AAAAAAAAAAAAAAAAAAAAAA"}"#,
        );
        let kek = KeyManagement::Hs256A128.derive_kek(PW, &[0; 16], NonZeroU32::new(10).unwrap());
        let cek = [9u8; 16];
        let mut wrapped = [0u8; 24];
        AesKek::new(&key_wrap::AES_128, &kek)
            .unwrap()
            .wrap(&cek, &mut wrapped)
            .unwrap();
        let aad_b64 = URL_SAFE_NO_PAD.encode(b"extra");
        let key = LessSafeKey::new(UnboundKey::new(&aead::AES_128_GCM, &cek).unwrap());
        let mut ct = MSG.to_vec();
        let full_aad = format!("{protected}.{aad_b64}");
        let tag = key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key([1; 12]),
                Aad::from(full_aad.as_bytes()),
                &mut ct,
            )
            .unwrap();
        let object = serde_json::json!({
            "protected": protected,
            "encrypted_key": URL_SAFE_NO_PAD.encode(wrapped),
            "iv": URL_SAFE_NO_PAD.encode([1u8; 12]),
            "ciphertext": URL_SAFE_NO_PAD.encode(&ct),
            "tag": URL_SAFE_NO_PAD.encode(tag.as_ref()),
            "aad": aad_b64,
        });
        assert_eq!(decrypt_pbes2(&object.to_string(), PW).unwrap(), MSG);
        let mut altered = object.clone();
        altered["aad"] = URL_SAFE_NO_PAD.encode(b"other").into();
        assert!(matches!(
            decrypt_pbes2(&altered.to_string(), PW),
            Err(Error::PasswordIncorrect)
        ));
    }

    #[test]
    fn aes192_key_wrap_matches_rfc3394() {
        // RFC 3394 §4.2: wrap 128 bits of key data with a 192-bit KEK.
        let kek: Vec<u8> = (0..24).collect();
        let wrapped = hex::decode("96778b25ae6ca435f92b5b97c050aed2468ab8a17ad84e5d").unwrap();
        let key = aes_key_unwrap(&kek, &wrapped).unwrap();
        assert_eq!(hex::encode(&*key), "00112233445566778899aabbccddeeff");
        // RFC 3394 §4.4: wrap 192 bits of key data with a 192-bit KEK.
        let wrapped =
            hex::decode("031d33264e15d33268f24ec260743edce1c6c7ddee725a936ba814915c6762d2")
                .unwrap();
        let key = aes_key_unwrap(&kek, &wrapped).unwrap();
        assert_eq!(
            hex::encode(&*key),
            "00112233445566778899aabbccddeeff0001020304050607"
        );
        let mut bad = wrapped.clone();
        bad[0] ^= 1;
        assert!(aes_key_unwrap(&kek, &bad).is_none());
        assert!(aes_key_unwrap(&kek, &wrapped[..16]).is_none());
        assert!(aes_key_unwrap(&kek, &[0; 7]).is_none());
        assert!(aes_key_unwrap(&[0; 20], &wrapped).is_none());
    }

    #[test]
    fn p2c_is_capped_at_one_million() {
        let jwe = encrypt_pbes2(MSG, PW, None, 1).unwrap();
        let at_cap = with_header(&jwe, |h| h["p2c"] = 1_000_000.into());
        // At the cap the header is accepted (the AAD changed, so the tag then fails).
        assert!(matches!(
            decrypt_pbes2(&at_cap, PW),
            Err(Error::PasswordIncorrect)
        ));
        assert!(matches!(
            encrypt_pbes2(MSG, PW, None, 1_000_001),
            Err(Error::IterationsTooHigh {
                count: 1_000_001,
                limit: 1_000_000
            })
        ));
    }

    #[test]
    fn bad_inputs_give_the_expected_errors() {
        let jwe = encrypt_pbes2(MSG, PW, Some("jwk+json"), 50).unwrap();
        let parts = compact_parts(&jwe);
        let replace = |i: usize, value: &str| {
            let mut p = parts.clone();
            p[i] = value.to_string();
            p.join(".")
        };
        let flip = |i: usize| {
            let mut bytes = URL_SAFE_NO_PAD.decode(&parts[i]).unwrap();
            let last = bytes.len() - 1;
            bytes[last] ^= 1;
            replace(i, &URL_SAFE_NO_PAD.encode(bytes))
        };
        let flat_missing_tag = {
            let mut v: serde_json::Value = serde_json::from_str(STEP_FLATTENED).unwrap();
            v.as_object_mut().unwrap().remove("tag");
            v.to_string()
        };
        let flat_unprotected = {
            let mut v: serde_json::Value = serde_json::from_str(STEP_FLATTENED).unwrap();
            v["unprotected"] = serde_json::json!({"kid": "x"});
            v.to_string()
        };
        let flat_recipients = {
            let mut v: serde_json::Value = serde_json::from_str(STEP_FLATTENED).unwrap();
            v["recipients"] = serde_json::json!([]);
            v.to_string()
        };

        type Check = fn(&Error) -> bool;
        let cases: Vec<(&str, String, &[u8], Check)> = vec![
            ("wrong password", jwe.clone(), b"wrong", |e| {
                matches!(e, Error::PasswordIncorrect)
            }),
            ("empty password", jwe.clone(), b"", |e| {
                matches!(e, Error::PasswordIncorrect)
            }),
            ("tampered tag", flip(4), PW, |e| {
                matches!(e, Error::PasswordIncorrect)
            }),
            ("tampered ciphertext", flip(3), PW, |e| {
                matches!(e, Error::PasswordIncorrect)
            }),
            ("tampered encrypted key", flip(1), PW, |e| {
                matches!(e, Error::PasswordIncorrect)
            }),
            ("tampered iv", flip(2), PW, |e| {
                matches!(e, Error::PasswordIncorrect)
            }),
            (
                "tampered header (AAD)",
                with_header(&jwe, |h| h["cty"] = "other".into()),
                PW,
                |e| matches!(e, Error::PasswordIncorrect),
            ),
            (
                "p2c too high",
                with_header(&jwe, |h| h["p2c"] = 1_000_001.into()),
                PW,
                |e| {
                    matches!(
                        e,
                        Error::IterationsTooHigh {
                            count: 1_000_001,
                            limit: 1_000_000
                        }
                    )
                },
            ),
            (
                "p2c huge",
                with_header(&jwe, |h| h["p2c"] = u64::MAX.into()),
                PW,
                |e| matches!(e, Error::IterationsTooHigh { .. }),
            ),
            (
                "p2c zero",
                with_header(&jwe, |h| h["p2c"] = 0.into()),
                PW,
                |e| matches!(e, Error::JoseMalformed(_)),
            ),
            (
                "p2c negative",
                with_header(&jwe, |h| h["p2c"] = (-5).into()),
                PW,
                |e| matches!(e, Error::JoseMalformed(_)),
            ),
            (
                "p2c string",
                with_header(&jwe, |h| h["p2c"] = "50".into()),
                PW,
                |e| matches!(e, Error::JoseMalformed(_)),
            ),
            (
                "p2c float",
                with_header(&jwe, |h| h["p2c"] = 50.5.into()),
                PW,
                |e| matches!(e, Error::JoseMalformed(_)),
            ),
            (
                "p2c missing",
                with_header(&jwe, |h| {
                    h.as_object_mut().unwrap().remove("p2c");
                }),
                PW,
                |e| matches!(e, Error::JoseMalformed(_)),
            ),
            (
                "p2s short",
                with_header(&jwe, |h| h["p2s"] = "AAAA".into()),
                PW,
                |e| matches!(e, Error::JoseMalformed(_)),
            ),
            (
                "p2s not base64",
                with_header(&jwe, |h| h["p2s"] = "!!".into()),
                PW,
                |e| matches!(e, Error::JoseMalformed(_)),
            ),
            (
                "unknown enc",
                with_header(&jwe, |h| h["enc"] = "A128CBC-HS256".into()),
                PW,
                |e| matches!(e, Error::JoseAlgorithmUnsupported(m) if m.contains("A128CBC-HS256")),
            ),
            (
                "unknown alg",
                with_header(&jwe, |h| h["alg"] = "dir".into()),
                PW,
                |e| matches!(e, Error::JoseAlgorithmUnsupported(m) if m.contains("dir")),
            ),
            (
                "missing alg",
                with_header(&jwe, |h| {
                    h.as_object_mut().unwrap().remove("alg");
                }),
                PW,
                |e| matches!(e, Error::JoseMalformed(_)),
            ),
            (
                "zip",
                with_header(&jwe, |h| h["zip"] = "DEF".into()),
                PW,
                |e| matches!(e, Error::JoseAlgorithmUnsupported(_)),
            ),
            (
                "crit",
                with_header(&jwe, |h| h["crit"] = serde_json::json!(["exp"])),
                PW,
                |e| matches!(e, Error::JoseAlgorithmUnsupported(_)),
            ),
            (
                "enc key size mismatch",
                with_header(&jwe, |h| h["enc"] = "A128GCM".into()),
                PW,
                |e| matches!(e, Error::JoseMalformed(_)),
            ),
            (
                "header not json",
                replace(0, &URL_SAFE_NO_PAD.encode(b"nope")),
                PW,
                |e| matches!(e, Error::JoseMalformed(_)),
            ),
            ("header not base64", replace(0, "***"), PW, |e| {
                matches!(e, Error::JoseMalformed(_))
            }),
            ("short iv", replace(2, "AAAA"), PW, |e| {
                matches!(e, Error::JoseMalformed(_))
            }),
            ("short tag", replace(4, "AAAA"), PW, |e| {
                matches!(e, Error::JoseMalformed(_))
            }),
            ("empty encrypted key", replace(1, ""), PW, |e| {
                matches!(e, Error::JoseMalformed(_))
            }),
            ("four parts", parts[..4].join("."), PW, |e| {
                matches!(e, Error::JoseMalformed(_))
            }),
            (
                "a JWS",
                parts[..3].join("."),
                PW,
                |e| matches!(e, Error::JoseMalformed(m) if m.contains("JWS")),
            ),
            ("empty", String::new(), PW, |e| {
                matches!(e, Error::JoseMalformed(_))
            }),
            ("bad json", "{\"protected\":".into(), PW, |e| {
                matches!(e, Error::JoseMalformed(_))
            }),
            (
                "json missing tag",
                flat_missing_tag,
                PW,
                |e| matches!(e, Error::JoseMalformed(m) if m.contains("tag")),
            ),
            ("json unprotected header", flat_unprotected, PW, |e| {
                matches!(e, Error::JoseMalformed(_))
            }),
            ("json general form", flat_recipients, PW, |e| {
                matches!(e, Error::JoseMalformed(_))
            }),
        ];
        for (name, input, password, check) in cases {
            match decrypt_pbes2(&input, password) {
                Ok(_) => panic!("{name}: decrypted"),
                Err(e) => assert!(check(&e), "{name}: unexpected error {e:?}"),
            }
        }
        assert!(matches!(
            encrypt_pbes2(MSG, PW, None, 0),
            Err(Error::JoseMalformed(_))
        ));
    }

    #[test]
    fn padded_base64_and_surrounding_white_space_are_tolerated() {
        let jwe = encrypt_pbes2(MSG, PW, None, 5).unwrap();
        let padded: Vec<String> = compact_parts(&jwe)
            .iter()
            .enumerate()
            // Padding the header would change the AAD, so only the other parts get padded.
            .map(|(i, p)| {
                if i == 0 || p.len() % 4 == 0 {
                    p.clone()
                } else {
                    format!("{p}{}", "=".repeat(4 - p.len() % 4))
                }
            })
            .collect();
        assert_eq!(
            decrypt_pbes2(&format!("\n {}\n", padded.join(".")), PW).unwrap(),
            MSG
        );
    }
}
