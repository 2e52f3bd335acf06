//! Private key files: the PEM forms step, OpenSSL and Go write, with and without a password.
//!
//! Read: `PRIVATE KEY` (PKCS#8), `EC PRIVATE KEY` (SEC1) and `RSA PRIVATE KEY` (PKCS#1), each
//! optionally protected by legacy OpenSSL PEM encryption (`Proc-Type`/`DEK-Info` headers,
//! `EVP_BytesToKey` with MD5), and `ENCRYPTED PRIVATE KEY` (PKCS#8 PBES2 with PBKDF2). The
//! PBES2 reader is deliberately lenient about one defect: step before 2023-04 encoded the PRF
//! `AlgorithmIdentifier` parameters as `00 00` (EOC) instead of `05 00` (NULL), and its
//! Ed25519 keys from that time must still open.
//!
//! Write: unencrypted PKCS#8, or PBES2 with PBKDF2-HMAC-SHA256 (600,000 iterations, as
//! step writes today) and AES-256-CBC, with well-formed NULL PRF parameters so that OpenSSL
//! reads the result.
//!
//! Password files follow step's rule: trailing whitespace is trimmed, leading whitespace kept.

use std::num::NonZeroU32;

use aws_lc_rs::cipher::{self, DecryptingKey, DecryptionContext, EncryptingKey, UnboundCipherKey};
use aws_lc_rs::iv::FixedLength;
use aws_lc_rs::pbkdf2;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use md5::{Digest as _, Md5};
use zeroize::Zeroizing;

use crate::der::{self, Reader, oid, tag};
use crate::error::{Error, Result};
use crate::key::PrivateKey;

const LABEL_PKCS8: &str = "PRIVATE KEY";
const LABEL_ENCRYPTED_PKCS8: &str = "ENCRYPTED PRIVATE KEY";
const LABEL_SEC1: &str = "EC PRIVATE KEY";
const LABEL_PKCS1: &str = "RSA PRIVATE KEY";
const EXPECTED_LABELS: &str =
    "PRIVATE KEY, ENCRYPTED PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY";

/// PEM blocks that may precede a key in the same file and carry no key themselves
/// (`openssl ecparam -genkey` writes `EC PARAMETERS` first).
const SKIPPED_LABELS: &[&str] = &["EC PARAMETERS"];

/// The PBKDF2 iteration count written by [`encode_private_key_pem`]: step's current default.
const DEFAULT_PBKDF2_ITERATIONS: u32 = 600_000;

/// The highest PBKDF2 iteration count accepted when reading (and writing). It is over three
/// times step's default; the cap exists so that a hostile file cannot pin a CPU for minutes.
const MAX_PBKDF2_ITERATIONS: u32 = 2_000_000;

/// The salt length written by the encoder (step and OpenSSL 3 both use 16 bytes).
const SALT_LEN: usize = 16;

/// The four CBC ciphers found in key files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CbcCipher {
    Aes128,
    Aes192,
    Aes256,
    DesEde3,
}

impl CbcCipher {
    fn name(self) -> &'static str {
        match self {
            CbcCipher::Aes128 => "AES-128-CBC",
            CbcCipher::Aes192 => "AES-192-CBC",
            CbcCipher::Aes256 => "AES-256-CBC",
            CbcCipher::DesEde3 => "DES-EDE3-CBC",
        }
    }

    fn key_len(self) -> usize {
        match self {
            CbcCipher::Aes128 => 16,
            CbcCipher::Aes192 | CbcCipher::DesEde3 => 24,
            CbcCipher::Aes256 => 32,
        }
    }

    fn block_len(self) -> usize {
        match self {
            CbcCipher::DesEde3 => 8,
            _ => 16,
        }
    }

    // 3DES is deprecated in aws-lc-rs to steer new designs away from it; here it only
    // decrypts keys that OpenSSL wrote long ago.
    #[allow(deprecated)]
    fn algorithm(self) -> &'static cipher::Algorithm {
        match self {
            CbcCipher::Aes128 => &cipher::AES_128,
            CbcCipher::Aes192 => &cipher::AES_192,
            CbcCipher::Aes256 => &cipher::AES_256,
            CbcCipher::DesEde3 => &cipher::DES_EDE3_FOR_LEGACY_USE_ONLY,
        }
    }

    /// The cipher named in a legacy `DEK-Info` header (OpenSSL spells them in upper case, but
    /// OpenSSL itself looks them up case-insensitively).
    fn from_dek_name(name: &str) -> Option<Self> {
        [Self::Aes128, Self::Aes192, Self::Aes256, Self::DesEde3]
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(name))
    }

    /// The cipher of a PBES2 `encryptionScheme`.
    fn from_oid(content: &[u8]) -> Option<Self> {
        match content {
            oid::AES128_CBC => Some(Self::Aes128),
            oid::AES192_CBC => Some(Self::Aes192),
            oid::AES256_CBC => Some(Self::Aes256),
            oid::DES_EDE3_CBC => Some(Self::DesEde3),
            _ => None,
        }
    }

    /// The IV as the context aws-lc-rs wants; `None` when its length is wrong.
    fn context(self, iv: &[u8]) -> Option<DecryptionContext> {
        match self {
            CbcCipher::DesEde3 => FixedLength::try_from(iv).ok().map(DecryptionContext::Iv64),
            _ => FixedLength::try_from(iv).ok().map(DecryptionContext::Iv128),
        }
    }
}

/// CBC-decrypts `ciphertext` and strips the PKCS#7 padding.
///
/// Every padding failure is [`Error::PasswordIncorrect`]: with a wrong key CBC yields noise,
/// and noise is what bad padding reveals. The caller has already checked that the ciphertext
/// is a non-empty multiple of the block size and that the IV has the right length.
fn cbc_decrypt(
    cipher: CbcCipher,
    key: &[u8],
    iv: &[u8],
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    let context = cipher.context(iv).ok_or(Error::Crypto("CBC IV length"))?;
    let unbound = UnboundCipherKey::new(cipher.algorithm(), key)
        .map_err(|_| Error::Crypto("CBC key length"))?;
    // For 3DES, aws-lc rejects weak and degenerate subkeys here. A key derived from the right
    // password is (with overwhelming probability) not one, so a refusal means a wrong password.
    let decrypting = DecryptingKey::cbc(unbound).map_err(|_| Error::PasswordIncorrect)?;
    let mut buf = Zeroizing::new(ciphertext.to_vec());
    let plain_len = decrypting
        .decrypt(&mut buf, context)
        .map_err(|_| Error::Crypto("CBC decryption"))?
        .len();
    let unpadded = pkcs7_unpadded_len(buf.get(..plain_len).unwrap_or_default(), cipher.block_len())
        .ok_or(Error::PasswordIncorrect)?;
    buf.truncate(unpadded);
    Ok(buf)
}

/// The length of `data` without its PKCS#7 padding, or `None` when the padding is invalid.
fn pkcs7_unpadded_len(data: &[u8], block_len: usize) -> Option<usize> {
    let &last = data.last()?;
    let pad = usize::from(last);
    if pad == 0 || pad > block_len || pad > data.len() {
        return None;
    }
    let body = data.len() - pad;
    data.get(body..)?.iter().all(|&b| b == last).then_some(body)
}

/// Appends PKCS#7 padding for a block cipher with `block_len`-byte blocks (8 or 16).
fn pkcs7_pad(data: &mut Vec<u8>, block_len: usize) {
    let pad = block_len - data.len() % block_len;
    // pad is in 1..=block_len (16), so it fits in a byte.
    data.resize(data.len() + pad, pad as u8);
}

/// OpenSSL's `EVP_BytesToKey` with MD5 and one iteration, as legacy PEM encryption uses it:
/// `D_1 = MD5(password || salt)`, `D_i = MD5(D_{i-1} || password || salt)`, key = prefix.
fn evp_bytes_to_key_md5(password: &[u8], salt: &[u8], key_len: usize) -> Zeroizing<Vec<u8>> {
    let mut key = Zeroizing::new(Vec::with_capacity(key_len + 16));
    let mut previous: Option<Zeroizing<[u8; 16]>> = None;
    while key.len() < key_len {
        let mut hasher = Md5::new();
        if let Some(prev) = &previous {
            hasher.update(prev.as_slice());
        }
        hasher.update(password);
        hasher.update(salt);
        let digest = Zeroizing::new(<[u8; 16]>::from(hasher.finalize()));
        key.extend_from_slice(digest.as_slice());
        previous = Some(digest);
    }
    key.truncate(key_len);
    key
}

/// The DER form inside a PEM block, which decides which `PrivateKey` constructor applies.
#[derive(Clone, Copy, Debug)]
enum KeyFormat {
    Pkcs8,
    Sec1,
    Pkcs1,
}

impl KeyFormat {
    fn parse(self, der: &[u8]) -> Result<PrivateKey> {
        match self {
            KeyFormat::Pkcs8 => PrivateKey::from_pkcs8_der(der),
            KeyFormat::Sec1 => PrivateKey::from_sec1_der(der),
            KeyFormat::Pkcs1 => PrivateKey::from_pkcs1_der(der),
        }
    }
}

/// Parses a key that was just decrypted.
///
/// A wrong password passes the PKCS#7 check about once in 256 tries, so failure to parse the
/// result must also read as a wrong password. But a correct password on a key type mayfly does
/// not support (say, P-521) should say so. All three formats are a DER SEQUENCE starting with
/// an INTEGER version and filling the buffer exactly; noise almost never is, so only noise gets
/// `PasswordIncorrect` and a well-formed structure gets the parser's own error.
fn parse_decrypted(format: KeyFormat, plaintext: &[u8]) -> Result<PrivateKey> {
    let well_formed = {
        let mut outer = Reader::new(plaintext, "decrypted private key");
        outer
            .read_sequence()
            .is_ok_and(|inner| outer.finish().is_ok() && inner.peek_tag() == Some(tag::INTEGER))
    };
    if !well_formed {
        return Err(Error::PasswordIncorrect);
    }
    format.parse(plaintext)
}

/// Legacy OpenSSL PEM encryption parameters from the `DEK-Info` header.
struct LegacyEncryption {
    cipher: CbcCipher,
    iv: Vec<u8>,
}

/// Reads the legacy encryption headers of a block, if any.
///
/// Like Go's `x509.IsEncryptedPEMBlock`, `DEK-Info` is what marks a block as encrypted;
/// `Proc-Type: 4,ENCRYPTED` without it is an inconsistency worth reporting.
fn legacy_encryption(block: &PemBlock) -> Result<Option<LegacyEncryption>> {
    let Some(dek_info) = block.header("DEK-Info") else {
        if block
            .header("Proc-Type")
            .is_some_and(|v| v.contains("ENCRYPTED"))
        {
            return Err(Error::PemMalformed(
                "Proc-Type says ENCRYPTED but there is no DEK-Info header".into(),
            ));
        }
        return Ok(None);
    };
    let (name, iv_hex) = dek_info.split_once(',').ok_or_else(|| {
        Error::PemMalformed(format!("DEK-Info {dek_info:?}: expected <cipher>,<hex IV>"))
    })?;
    let name = name.trim();
    let cipher = CbcCipher::from_dek_name(name).ok_or_else(|| {
        Error::EncryptionUnsupported(format!(
            "legacy PEM cipher {name:?} (supported: AES-128-CBC, AES-192-CBC, AES-256-CBC, DES-EDE3-CBC)"
        ))
    })?;
    let iv = hex::decode(iv_hex.trim())
        .map_err(|e| Error::PemMalformed(format!("DEK-Info IV is not hex: {e}")))?;
    if iv.len() != cipher.block_len() {
        return Err(Error::PemMalformed(format!(
            "DEK-Info IV has {} bytes: {} needs {}",
            iv.len(),
            cipher.name(),
            cipher.block_len()
        )));
    }
    Ok(Some(LegacyEncryption { cipher, iv }))
}

/// Decrypts the body of a legacy-encrypted PEM block.
fn legacy_decrypt(
    enc: &LegacyEncryption,
    ciphertext: &[u8],
    password: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    let block_len = enc.cipher.block_len();
    if ciphertext.is_empty() || !ciphertext.len().is_multiple_of(block_len) {
        return Err(Error::PemMalformed(format!(
            "encrypted body of {} bytes is not a multiple of the {}-byte block size",
            ciphertext.len(),
            block_len
        )));
    }
    // The salt is the first 8 bytes of the IV, as OpenSSL's PEM_do_header uses it.
    let salt = enc
        .iv
        .get(..8)
        .ok_or(Error::Crypto("legacy PEM IV length"))?;
    let key = evp_bytes_to_key_md5(password, salt, enc.cipher.key_len());
    cbc_decrypt(enc.cipher, &key, &enc.iv, ciphertext)
}

/// The PBKDF2 pseudo-random function of a PBES2 key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Prf {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl Prf {
    fn from_oid(content: &[u8]) -> Option<Self> {
        match content {
            oid::HMAC_SHA1 => Some(Prf::Sha1),
            oid::HMAC_SHA256 => Some(Prf::Sha256),
            oid::HMAC_SHA384 => Some(Prf::Sha384),
            oid::HMAC_SHA512 => Some(Prf::Sha512),
            _ => None,
        }
    }

    fn algorithm(self) -> pbkdf2::Algorithm {
        match self {
            Prf::Sha1 => pbkdf2::PBKDF2_HMAC_SHA1,
            Prf::Sha256 => pbkdf2::PBKDF2_HMAC_SHA256,
            Prf::Sha384 => pbkdf2::PBKDF2_HMAC_SHA384,
            Prf::Sha512 => pbkdf2::PBKDF2_HMAC_SHA512,
        }
    }
}

/// The parts of a PKCS#8 `EncryptedPrivateKeyInfo` with PBES2/PBKDF2.
#[derive(Debug)]
struct Pbes2<'a> {
    prf: Prf,
    salt: &'a [u8],
    iterations: NonZeroU32,
    cipher: CbcCipher,
    iv: &'a [u8],
    encrypted: &'a [u8],
}

/// A readable name for an algorithm OID in "unsupported" messages.
fn describe_oid(content: &[u8]) -> String {
    let dotted = der::oid_to_string(content);
    let name = match dotted.as_str() {
        "1.2.840.113549.1.5.3" => "pbeWithMD5AndDES-CBC (PBES1)",
        "1.2.840.113549.1.5.10" => "pbeWithSHA1AndDES-CBC (PBES1)",
        "1.2.840.113549.1.12.1.3" => "pbeWithSHAAnd3-KeyTripleDES-CBC (PKCS#12)",
        "1.2.840.113549.1.12.1.6" => "pbeWithSHAAnd40BitRC2-CBC (PKCS#12)",
        "1.3.6.1.4.1.11591.4.11" => "scrypt",
        "1.2.840.113549.2.8" => "hmacWithSHA224",
        "1.2.840.113549.3.2" => "rc2-cbc",
        "1.3.14.3.2.7" => "des-cbc",
        _ => return dotted,
    };
    format!("{name} ({dotted})")
}

/// Parses an `EncryptedPrivateKeyInfo` (RFC 5958) whose algorithm is PBES2 (RFC 8018).
fn parse_pbes2(der_bytes: &[u8]) -> Result<Pbes2<'_>> {
    let mut top = Reader::new(der_bytes, "EncryptedPrivateKeyInfo");
    let mut info = top.read_sequence()?;
    top.finish()?;
    let mut algorithm = info.read_sequence()?;
    let encrypted = info.read_octet_string()?;
    info.finish()?;

    let scheme = algorithm.read_oid()?;
    if scheme != oid::PBES2 {
        return Err(Error::EncryptionUnsupported(format!(
            "PKCS#8 encryption scheme {} (only PBES2 is supported)",
            describe_oid(scheme)
        )));
    }
    let mut params = algorithm.read_sequence()?;
    algorithm.finish()?;
    let mut kdf = params.read_sequence()?;
    let mut scheme = params.read_sequence()?;
    params.finish()?;

    let kdf_oid = kdf.read_oid()?;
    if kdf_oid != oid::PBKDF2 {
        return Err(Error::EncryptionUnsupported(format!(
            "PBES2 key derivation function {} (only PBKDF2 is supported)",
            describe_oid(kdf_oid)
        )));
    }
    let mut kdf_params = kdf.read_sequence()?;
    kdf.finish()?;
    let salt = kdf_params.read_octet_string()?;
    let count = kdf_params.read_u64()?;
    let key_length = if kdf_params.peek_tag() == Some(tag::INTEGER) {
        Some(kdf_params.read_u64()?)
    } else {
        None
    };
    // The PRF defaults to hmacWithSHA1 when absent (RFC 8018 appendix A.2).
    let prf = if kdf_params.is_empty() {
        Prf::Sha1
    } else {
        let mut prf_id = kdf_params.read_sequence()?;
        let prf_oid = prf_id.read_oid()?;
        // Parameters must be NULL (`05 00`) or absent. step before 2023-04 wrote `00 00` (an
        // end-of-contents marker); accept exactly that too, because every Ed25519 key it wrote
        // then carries it. Anything else is genuinely malformed.
        match prf_id.peek_tag() {
            None => {}
            Some(tag::NULL) => prf_id.read_null()?,
            Some(0x00) if prf_id.read_tlv()?.1.is_empty() => {}
            Some(param_tag) => {
                return Err(Error::DerMalformed {
                    what: "EncryptedPrivateKeyInfo",
                    detail: format!(
                        "PBKDF2 PRF parameters must be NULL, found tag {param_tag:#04x}"
                    ),
                });
            }
        }
        prf_id.finish()?;
        Prf::from_oid(prf_oid).ok_or_else(|| {
            Error::EncryptionUnsupported(format!(
                "PBKDF2 PRF {} (supported: hmacWithSHA1, hmacWithSHA256, hmacWithSHA384, hmacWithSHA512)",
                describe_oid(prf_oid)
            ))
        })?
    };
    kdf_params.finish()?;

    let cipher_oid = scheme.read_oid()?;
    let cipher = CbcCipher::from_oid(cipher_oid).ok_or_else(|| {
        Error::EncryptionUnsupported(format!(
            "PBES2 cipher {} (supported: AES-128-CBC, AES-192-CBC, AES-256-CBC, DES-EDE3-CBC)",
            describe_oid(cipher_oid)
        ))
    })?;
    let iv = scheme.read_octet_string()?;
    scheme.finish()?;

    let malformed = |detail: String| Error::DerMalformed {
        what: "EncryptedPrivateKeyInfo",
        detail,
    };
    if count > u64::from(MAX_PBKDF2_ITERATIONS) {
        return Err(Error::IterationsTooHigh {
            count,
            limit: u64::from(MAX_PBKDF2_ITERATIONS),
        });
    }
    let iterations = u32::try_from(count)
        .ok()
        .and_then(NonZeroU32::new)
        .ok_or_else(|| malformed("PBKDF2 iteration count is 0".into()))?;
    if let Some(len) = key_length
        && len != cipher.key_len() as u64
    {
        return Err(malformed(format!(
            "PBKDF2 keyLength {len} does not match the {}-byte key of {}",
            cipher.key_len(),
            cipher.name()
        )));
    }
    if iv.len() != cipher.block_len() {
        return Err(malformed(format!(
            "{} IV has {} bytes, expected {}",
            cipher.name(),
            iv.len(),
            cipher.block_len()
        )));
    }
    if encrypted.is_empty() || !encrypted.len().is_multiple_of(cipher.block_len()) {
        return Err(malformed(format!(
            "encrypted data of {} bytes is not a multiple of the {}-byte block size",
            encrypted.len(),
            cipher.block_len()
        )));
    }
    Ok(Pbes2 {
        prf,
        salt,
        iterations,
        cipher,
        iv,
        encrypted,
    })
}

/// Derives the key and decrypts a PBES2 `EncryptedPrivateKeyInfo`'s payload.
fn pbes2_decrypt(p: &Pbes2<'_>, password: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    let mut key = Zeroizing::new(vec![0u8; p.cipher.key_len()]);
    pbkdf2::derive(p.prf.algorithm(), p.iterations, p.salt, password, &mut key);
    cbc_decrypt(p.cipher, &key, p.iv, p.encrypted)
}

/// One PEM block: label, RFC 1421 headers and decoded body.
#[derive(Debug)]
struct PemBlock {
    label: String,
    headers: Vec<(String, String)>,
    contents: Zeroizing<Vec<u8>>,
}

impl PemBlock {
    fn tag(&self) -> &str {
        &self.label
    }

    fn contents(&self) -> &[u8] {
        &self.contents
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// Byte-string search; PEM files are small, so the naive scan is fine.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Splits PEM text into blocks, the way Go's `encoding/pem` reads them.
///
/// Hand-written rather than `pem::parse_many` because that parser treats everything before the
/// first blank line as headers, so a key with a blank line before its `-----END` line (which
/// Go and OpenSSL read) would fail. Here headers are the leading `Key: value` lines, and the
/// body is every remaining line with white space removed. Text outside blocks is ignored.
fn parse_pem_blocks(text: &[u8]) -> Result<Vec<PemBlock>> {
    const BEGIN: &[u8] = b"-----BEGIN ";
    const DASHES: &[u8] = b"-----";
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(start) = find(rest, BEGIN) {
        let after_begin = rest.get(start + BEGIN.len()..).unwrap_or_default();
        let label_end = find(after_begin, DASHES);
        let label = label_end.and_then(|end| after_begin.get(..end));
        let Some(label) = label.filter(|l| !l.contains(&b'\n')) else {
            // "-----BEGIN " that does not start a block line; keep looking after it.
            rest = after_begin;
            continue;
        };
        let label = std::str::from_utf8(label)
            .map_err(|_| Error::PemMalformed("PEM label is not UTF-8".into()))?;
        let body_start = after_begin
            .get(label.len() + DASHES.len()..)
            .unwrap_or_default();
        let end_marker = format!("-----END {label}-----");
        let end = find(body_start, end_marker.as_bytes()).ok_or_else(|| {
            Error::PemMalformed(format!(
                "-----BEGIN {label}----- has no matching {end_marker}"
            ))
        })?;
        let body = body_start.get(..end).unwrap_or_default();
        rest = body_start.get(end + end_marker.len()..).unwrap_or_default();

        let body = std::str::from_utf8(body)
            .map_err(|_| Error::PemMalformed(format!("{label} block is not text")))?;
        // The first "line" is whatever followed the BEGIN marker on its line.
        let mut lines = body.lines().skip(1).peekable();
        let mut headers = Vec::new();
        while let Some((key, value)) = lines.peek().and_then(|line| line.split_once(':')) {
            headers.push((key.trim().to_string(), value.trim().to_string()));
            lines.next();
        }
        let base64_text: Zeroizing<String> = Zeroizing::new(
            lines
                .flat_map(|line| line.chars())
                .filter(|c| !c.is_ascii_whitespace())
                .collect(),
        );
        let contents = STANDARD
            .decode(base64_text.as_bytes())
            .map_err(|e| Error::PemMalformed(format!("{label} block body is not base64: {e}")))?;
        blocks.push(PemBlock {
            label: label.to_string(),
            headers,
            contents: Zeroizing::new(contents),
        });
    }
    Ok(blocks)
}

/// Finds the first private key block, skipping blocks such as `EC PARAMETERS`.
fn find_key_block(pem_text: &[u8]) -> Result<PemBlock> {
    let blocks = parse_pem_blocks(pem_text)?;
    let mut first_other: Option<String> = None;
    for block in blocks {
        match block.tag() {
            LABEL_PKCS8 | LABEL_ENCRYPTED_PKCS8 | LABEL_SEC1 | LABEL_PKCS1 => return Ok(block),
            label if SKIPPED_LABELS.contains(&label) => {}
            label => {
                if first_other.is_none() {
                    first_other = Some(label.to_string());
                }
            }
        }
    }
    Err(match first_other {
        Some(found) => Error::PemUnexpectedLabel {
            found,
            expected: EXPECTED_LABELS,
        },
        None => Error::PemMissing {
            expected: LABEL_PKCS8,
        },
    })
}

/// Reads a PEM private key, decrypting it with `password` when it is encrypted.
///
/// Accepts `PRIVATE KEY`, `EC PRIVATE KEY` and `RSA PRIVATE KEY`, each optionally with legacy
/// OpenSSL encryption (`DEK-Info: AES-128-CBC|AES-192-CBC|AES-256-CBC|DES-EDE3-CBC,<IV>`), and
/// `ENCRYPTED PRIVATE KEY` (PBES2, PBKDF2 with HMAC-SHA1/256/384/512, AES-CBC or DES-EDE3-CBC).
/// Blocks before the key that hold no key (`EC PARAMETERS`, certificates) are skipped. The
/// password is ignored for an unencrypted key.
///
/// # Errors
/// [`Error::PasswordRequired`] for an encrypted key without a password,
/// [`Error::PasswordIncorrect`] when decryption yields garbage,
/// [`Error::EncryptionUnsupported`] for other ciphers and schemes,
/// [`Error::IterationsTooHigh`] above 2,000,000 PBKDF2 iterations, and PEM/DER/key errors for
/// malformed input.
pub fn decode_private_key_pem(pem_text: &[u8], password: Option<&[u8]>) -> Result<PrivateKey> {
    let block = find_key_block(pem_text)?;
    let format = match block.tag() {
        LABEL_ENCRYPTED_PKCS8 => {
            let params = parse_pbes2(block.contents())?;
            let password = password.ok_or(Error::PasswordRequired)?;
            let plaintext = pbes2_decrypt(&params, password)?;
            return parse_decrypted(KeyFormat::Pkcs8, &plaintext);
        }
        LABEL_SEC1 => KeyFormat::Sec1,
        LABEL_PKCS1 => KeyFormat::Pkcs1,
        _ => KeyFormat::Pkcs8,
    };
    match legacy_encryption(&block)? {
        None => format.parse(block.contents()),
        Some(enc) => {
            let password = password.ok_or(Error::PasswordRequired)?;
            let plaintext = legacy_decrypt(&enc, block.contents(), password)?;
            parse_decrypted(format, &plaintext)
        }
    }
}

/// Whether the first private key in `pem_text` is encrypted (PBES2 or legacy PEM encryption).
/// Text that holds no readable key block is reported as not encrypted.
pub fn is_encrypted_pem(pem_text: &[u8]) -> bool {
    match find_key_block(pem_text) {
        Ok(block) => {
            block.tag() == LABEL_ENCRYPTED_PKCS8
                || block.header("DEK-Info").is_some()
                || block
                    .header("Proc-Type")
                    .is_some_and(|v| v.contains("ENCRYPTED"))
        }
        Err(_) => false,
    }
}

/// Writes `key` as PEM: `PRIVATE KEY` (PKCS#8) without a password, or `ENCRYPTED PRIVATE KEY`
/// (PBES2, PBKDF2-HMAC-SHA256 with 600,000 iterations, AES-256-CBC) with one.
pub fn encode_private_key_pem(key: &PrivateKey, password: Option<&[u8]>) -> Result<String> {
    encode_private_key_pem_with_iterations(key, password, DEFAULT_PBKDF2_ITERATIONS)
}

/// [`encode_private_key_pem`] with a chosen PBKDF2 iteration count (ignored without a
/// password). Tests use low counts; files meant to last should use the default.
///
/// # Errors
/// [`Error::IterationsTooHigh`] above 2,000,000 (the reader's own limit), and
/// [`Error::EncryptionUnsupported`] for 0.
pub fn encode_private_key_pem_with_iterations(
    key: &PrivateKey,
    password: Option<&[u8]>,
    iterations: u32,
) -> Result<String> {
    let Some(password) = password else {
        return Ok(pem_encode(LABEL_PKCS8, key.pkcs8_der()));
    };
    if iterations > MAX_PBKDF2_ITERATIONS {
        return Err(Error::IterationsTooHigh {
            count: u64::from(iterations),
            limit: u64::from(MAX_PBKDF2_ITERATIONS),
        });
    }
    let iterations = NonZeroU32::new(iterations)
        .ok_or_else(|| Error::EncryptionUnsupported("PBKDF2 with 0 iterations".into()))?;

    let mut salt = [0u8; SALT_LEN];
    aws_lc_rs::rand::fill(&mut salt).map_err(|_| Error::Crypto("random salt"))?;
    let cipher = CbcCipher::Aes256;
    let mut derived = Zeroizing::new(vec![0u8; cipher.key_len()]);
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        &salt,
        password,
        &mut derived,
    );

    let mut buf = Zeroizing::new(key.pkcs8_der().to_vec());
    pkcs7_pad(&mut buf, cipher.block_len());
    let unbound = UnboundCipherKey::new(cipher.algorithm(), &derived)
        .map_err(|_| Error::Crypto("AES-256 key"))?;
    let encrypting = EncryptingKey::cbc(unbound).map_err(|_| Error::Crypto("AES-256-CBC key"))?;
    // `encrypt` draws a fresh random IV and hands it back in the context.
    let context = encrypting
        .encrypt(&mut buf)
        .map_err(|_| Error::Crypto("AES-256-CBC encryption"))?;
    let iv: &[u8] = (&context)
        .try_into()
        .map_err(|_| Error::Crypto("AES-256-CBC IV"))?;

    let prf = der::sequence(&[&der::oid(oid::HMAC_SHA256), &der::null()]);
    let kdf_params = der::sequence(&[
        &der::octet_string(&salt),
        &der::integer_u64(u64::from(iterations.get())),
        &prf,
    ]);
    let kdf = der::sequence(&[&der::oid(oid::PBKDF2), &kdf_params]);
    let scheme = der::sequence(&[&der::oid(oid::AES256_CBC), &der::octet_string(iv)]);
    let algorithm = der::sequence(&[&der::oid(oid::PBES2), &der::sequence(&[&kdf, &scheme])]);
    let info = der::sequence(&[&algorithm, &der::octet_string(&buf)]);
    Ok(pem_encode(LABEL_ENCRYPTED_PKCS8, &info))
}

/// PEM with LF line endings and 64-column lines, as Go's `pem.Encode` and OpenSSL write.
fn pem_encode(label: &str, der_bytes: &[u8]) -> String {
    let block = pem::Pem::new(label, der_bytes);
    pem::encode_config(
        &block,
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

/// The password in a `--password-file`, with step's semantics: the raw bytes with trailing
/// whitespace removed and leading whitespace kept (`"  pass\n"` gives `"  pass"`).
///
/// This mirrors Go's `bytes.TrimRightFunc(b, unicode.IsSpace)`: characters are decoded from
/// the end and removed while they are Unicode white space; a byte that does not end a valid
/// UTF-8 character stops the trim, so non-UTF-8 passwords keep everything before their last
/// white-space run.
pub fn read_password_file_bytes(raw: &[u8]) -> Vec<u8> {
    let mut end = raw.len();
    'trim: while end > 0 {
        // The last character is the shortest valid UTF-8 suffix of at most four bytes.
        for width in 1..=end.min(4) {
            let Some(tail) = raw.get(end - width..end) else {
                break 'trim;
            };
            if let Ok(s) = std::str::from_utf8(tail) {
                let mut chars = s.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) if c.is_whitespace() => {
                        end -= width;
                        continue 'trim;
                    }
                    _ => break 'trim,
                }
            }
        }
        // No valid character ends here (Go sees U+FFFD, which is not white space).
        break;
    }
    raw.get(..end).unwrap_or_default().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::KeyAlgorithm;

    const PW: &[u8] = b"correct horse";

    fn enc(key: &PrivateKey) -> String {
        encode_private_key_pem_with_iterations(key, Some(PW), 1000).unwrap()
    }

    fn ec_key() -> PrivateKey {
        PrivateKey::generate(KeyAlgorithm::EcP256).unwrap()
    }

    fn assert_same_key(a: &PrivateKey, b: &PrivateKey) {
        assert_eq!(a.algorithm(), b.algorithm());
        assert_eq!(
            a.public_key_spki_der().unwrap(),
            b.public_key_spki_der().unwrap()
        );
    }

    /// Encrypts `der_bytes` the legacy way with a fixed IV, as `x509.EncryptPEMBlock` does.
    fn legacy_pem(
        label: &str,
        der_bytes: &[u8],
        cipher: CbcCipher,
        iv: &[u8],
        password: &[u8],
    ) -> String {
        let key = evp_bytes_to_key_md5(password, &iv[..8], cipher.key_len());
        let mut buf = der_bytes.to_vec();
        pkcs7_pad(&mut buf, cipher.block_len());
        let ctx = match cipher.block_len() {
            8 => cipher::EncryptionContext::Iv64(FixedLength::try_from(iv).unwrap()),
            _ => cipher::EncryptionContext::Iv128(FixedLength::try_from(iv).unwrap()),
        };
        let encrypting =
            EncryptingKey::cbc(UnboundCipherKey::new(cipher.algorithm(), &key).unwrap()).unwrap();
        encrypting.less_safe_encrypt(&mut buf, ctx).unwrap();
        let mut block = pem::Pem::new(label, buf);
        block.headers_mut().add("Proc-Type", "4,ENCRYPTED").unwrap();
        block
            .headers_mut()
            .add(
                "DEK-Info",
                &format!("{},{}", cipher.name(), hex::encode_upper(iv)),
            )
            .unwrap();
        pem::encode(&block)
    }

    #[test]
    fn evp_bytes_to_key_matches_openssl() {
        // `openssl enc -aes-256-cbc -k password -S 0102030405060708 -P -md md5`
        let key = evp_bytes_to_key_md5(b"password", &[1, 2, 3, 4, 5, 6, 7, 8], 32);
        assert_eq!(
            hex::encode_upper(&*key),
            "E7B0971E52CA5CC8D0539FB3412F6316F7BA2E6EE293D9F3457B99436B51CE02"
        );
        // Structural check independent of OpenSSL: the first 16 bytes are MD5(pw || salt).
        let mut h = Md5::new();
        h.update(b"password");
        h.update([1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&key[..16], &h.finalize()[..]);
        assert_eq!(evp_bytes_to_key_md5(b"pw", b"saltsalt", 24).len(), 24);
    }

    #[test]
    fn unencrypted_pkcs8_round_trips_for_every_key_type() {
        for alg in [
            KeyAlgorithm::EcP256,
            KeyAlgorithm::EcP384,
            KeyAlgorithm::Ed25519,
        ] {
            let key = PrivateKey::generate(alg).unwrap();
            let text = encode_private_key_pem(&key, None).unwrap();
            assert!(text.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{text}");
            assert!(!text.contains('\r'));
            assert!(!is_encrypted_pem(text.as_bytes()));
            let back = decode_private_key_pem(text.as_bytes(), None).unwrap();
            assert_same_key(&key, &back);
            // A password given for an unencrypted key is ignored, as step does.
            let back = decode_private_key_pem(text.as_bytes(), Some(b"unused")).unwrap();
            assert_same_key(&key, &back);
        }
    }

    #[test]
    fn encrypted_pkcs8_round_trips_and_has_the_expected_shape() {
        let key = PrivateKey::generate(KeyAlgorithm::Ed25519).unwrap();
        let text = enc(&key);
        assert!(
            text.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----\n"),
            "{text}"
        );
        assert!(is_encrypted_pem(text.as_bytes()));
        let back = decode_private_key_pem(text.as_bytes(), Some(PW)).unwrap();
        assert_same_key(&key, &back);

        let block = pem::parse(&text).unwrap();
        let p = parse_pbes2(block.contents()).unwrap();
        assert_eq!(p.prf, Prf::Sha256);
        assert_eq!(p.cipher, CbcCipher::Aes256);
        assert_eq!(p.iterations.get(), 1000);
        assert_eq!(p.salt.len(), 16);
        assert_eq!(p.iv.len(), 16);
        // Well-formed NULL PRF parameters: `hmacWithSHA256` OID followed by 05 00.
        let prf_id = [&der::oid(oid::HMAC_SHA256)[..], &[0x05, 0x00]].concat();
        assert!(block.contents().windows(prf_id.len()).any(|w| w == prf_id));

        // Fresh salt and IV every time.
        assert_ne!(enc(&key), text);
    }

    #[test]
    fn encoder_refuses_unreadable_iteration_counts() {
        let key = ec_key();
        assert!(matches!(
            encode_private_key_pem_with_iterations(&key, Some(PW), 0),
            Err(Error::EncryptionUnsupported(_))
        ));
        assert!(matches!(
            encode_private_key_pem_with_iterations(&key, Some(PW), MAX_PBKDF2_ITERATIONS + 1),
            Err(Error::IterationsTooHigh {
                count: 2_000_001,
                limit: 2_000_000
            })
        ));
        // Without a password the count does not matter.
        encode_private_key_pem_with_iterations(&key, None, 0).unwrap();
    }

    #[test]
    fn legacy_pem_decrypts_with_every_cipher_and_label() {
        let ec = ec_key();
        let sec1 = {
            // Recover SEC1 from the PKCS#8 wrapper: the OCTET STRING privateKey field.
            let mut r = Reader::new(ec.pkcs8_der(), "t");
            let mut seq = r.read_sequence().unwrap();
            seq.read_u64().unwrap();
            seq.read_sequence().unwrap();
            seq.read_octet_string().unwrap().to_vec()
        };
        let iv16: Vec<u8> = (1..=16).collect();
        let iv8: Vec<u8> = (1..=8).collect();
        for cipher in [
            CbcCipher::Aes128,
            CbcCipher::Aes192,
            CbcCipher::Aes256,
            CbcCipher::DesEde3,
        ] {
            let iv = if cipher.block_len() == 8 { &iv8 } else { &iv16 };
            for (label, der_bytes) in [(LABEL_SEC1, &sec1[..]), (LABEL_PKCS8, ec.pkcs8_der())] {
                let text = legacy_pem(label, der_bytes, cipher, iv, PW);
                assert!(is_encrypted_pem(text.as_bytes()), "{label} {cipher:?}");
                let back = decode_private_key_pem(text.as_bytes(), Some(PW))
                    .unwrap_or_else(|e| panic!("{label} {cipher:?}: {e}"));
                assert_same_key(&ec, &back);
                assert!(matches!(
                    decode_private_key_pem(text.as_bytes(), None),
                    Err(Error::PasswordRequired)
                ));
            }
        }
    }

    #[test]
    fn openssl_des_ede3_keys_decrypt() {
        // `openssl ecparam -name prime256v1 -genkey | openssl ec -des3 -passout pass:mypassword`
        // and `openssl pkcs8 -topk8 -v2 des3 -v2prf hmacWithSHA1 -passout pass:mypassword`:
        // a throwaway test key, nothing else uses it.
        const LEGACY: &str = "-----BEGIN EC PRIVATE KEY-----
Proc-Type: 4,ENCRYPTED
DEK-Info: DES-EDE3-CBC,C9374325AF668A25

01Kq+yi8xxW60nvMPXDh6m1I1g0AHCmCJKSPwg1TFggPvKIGghwXPKBqcjDOqanE
cLJefbCx2fFtiE0o9qYl06j7pnlH6QPZgGv5ww+zEvz4fMKu0jG4xC2YuiJo5lUb
f27bg+XCd7SdVNGhuh/8VQcrnrMVWg47vv9QnKCkjmI=
-----END EC PRIVATE KEY-----
";
        const PKCS8: &str = "-----BEGIN ENCRYPTED PRIVATE KEY-----
MIHVMEAGCSqGSIb3DQEFDTAzMBsGCSqGSIb3DQEFDDAOBAjDsG0lySHgrAICCAAw
FAYIKoZIhvcNAwcECIt79rKx1R/kBIGQIVjntgLkf5DdKC0CqH6ymPYypDtgcbzn
85zoIU4/Bl0nFWjg2sg5I85LbwfSUFFuaxE7v3lCzOeo6yZ4Lf0H/jLONt95sg1e
hPnBmu3mQwci8yNjOgEaPTzz8UPToT+kphwxG3cV+XK3ztxF+v+jUUD7tkoOTjQ6
MJOcsojtaI6/XYryKUZD6Fn+sweYoQo1
-----END ENCRYPTED PRIVATE KEY-----
";
        let a = decode_private_key_pem(LEGACY.as_bytes(), Some(b"mypassword")).unwrap();
        let b = decode_private_key_pem(PKCS8.as_bytes(), Some(b"mypassword")).unwrap();
        assert_same_key(&a, &b);
        assert!(matches!(
            decode_private_key_pem(LEGACY.as_bytes(), Some(b"wrong")),
            Err(Error::PasswordIncorrect)
        ));
    }

    #[test]
    fn skips_ec_parameters_and_other_blocks_before_the_key() {
        let key = ec_key();
        let params = pem_encode(
            "EC PARAMETERS",
            &der::oid(&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07]),
        );
        let cert = pem_encode("CERTIFICATE", b"not a certificate");
        let text = format!(
            "{params}{cert}{}",
            encode_private_key_pem(&key, None).unwrap()
        );
        assert_same_key(
            &key,
            &decode_private_key_pem(text.as_bytes(), None).unwrap(),
        );
        let text = format!("some preamble\n{params}{}", enc(&key));
        assert!(is_encrypted_pem(text.as_bytes()));
        assert_same_key(
            &key,
            &decode_private_key_pem(text.as_bytes(), Some(PW)).unwrap(),
        );
    }

    #[test]
    fn pem_reader_tolerates_what_go_and_openssl_tolerate() {
        let key = ec_key();
        let lf = enc(&key);
        let variants = [
            // A blank line before the END line (pem::parse_many fails on this one).
            lf.replace("\n-----END", "\n\n-----END"),
            // CRLF line endings.
            lf.replace('\n', "\r\n"),
            // Text around the block, trailing spaces, and a different line width.
            format!(
                "Bag Attributes\n  friendlyName: x\n{}\ntrailer\n",
                lf.replace('\n', "  \n")
            ),
            {
                let block = pem::parse(&lf).unwrap();
                let b64 = STANDARD.encode(block.contents());
                let lines: Vec<String> = b64
                    .as_bytes()
                    .chunks(76)
                    .map(|c| String::from_utf8(c.to_vec()).unwrap())
                    .collect();
                format!(
                    "-----BEGIN ENCRYPTED PRIVATE KEY-----\n{}\n-----END ENCRYPTED PRIVATE KEY-----",
                    lines.join("\n")
                )
            },
        ];
        for text in &variants {
            assert_same_key(
                &key,
                &decode_private_key_pem(text.as_bytes(), Some(PW)).unwrap(),
            );
            assert!(is_encrypted_pem(text.as_bytes()));
        }
        // Legacy headers survive CRLF and a blank line before END as well.
        let step_like = "-----BEGIN EC PRIVATE KEY-----\r\nProc-Type: 4,ENCRYPTED\r\nDEK-Info: AES-128-CBC,00\r\n\r\nAAAA\r\n\r\n-----END EC PRIVATE KEY-----\r\n";
        assert!(is_encrypted_pem(step_like.as_bytes()));
        // "-----BEGIN " inside text that is not a block line is skipped.
        let text = format!(
            "see -----BEGIN \nnothing\n{}",
            encode_private_key_pem(&key, None).unwrap()
        );
        assert_same_key(
            &key,
            &decode_private_key_pem(text.as_bytes(), None).unwrap(),
        );
    }

    /// Re-encodes the PBES2 structure of a fresh key with one field changed.
    fn pbes2_variant(
        prf: Option<&[u8]>,
        iterations: u64,
        cipher_oid: &[u8],
        iv: &[u8],
        key_length: Option<u64>,
    ) -> String {
        let ct = [0u8; 32];
        let mut kdf_fields = vec![der::octet_string(b"saltsalt"), der::integer_u64(iterations)];
        if let Some(len) = key_length {
            kdf_fields.push(der::integer_u64(len));
        }
        if let Some(prf) = prf {
            kdf_fields.push(prf.to_vec());
        }
        let kdf_refs: Vec<&[u8]> = kdf_fields.iter().map(Vec::as_slice).collect();
        let kdf = der::sequence(&[&der::oid(oid::PBKDF2), &der::sequence(&kdf_refs)]);
        let scheme = der::sequence(&[&der::oid(cipher_oid), &der::octet_string(iv)]);
        let alg = der::sequence(&[&der::oid(oid::PBES2), &der::sequence(&[&kdf, &scheme])]);
        pem_encode(
            LABEL_ENCRYPTED_PKCS8,
            &der::sequence(&[&alg, &der::octet_string(&ct)]),
        )
    }

    #[test]
    fn pbes2_accepts_absent_null_and_eoc_prf_parameters() {
        let sha256_null = der::sequence(&[&der::oid(oid::HMAC_SHA256), &der::null()]);
        let sha256_absent = der::sequence(&[&der::oid(oid::HMAC_SHA256)]);
        let sha256_eoc = der::sequence(&[&der::oid(oid::HMAC_SHA256), &[0x00, 0x00]]);
        let sha512 = der::sequence(&[&der::oid(oid::HMAC_SHA512), &der::null()]);
        let cases: [(Option<&[u8]>, Prf); 5] = [
            (None, Prf::Sha1),
            (Some(&sha256_null), Prf::Sha256),
            (Some(&sha256_absent), Prf::Sha256),
            (Some(&sha256_eoc), Prf::Sha256),
            (Some(&sha512), Prf::Sha512),
        ];
        for (prf, expected) in cases {
            let text = pbes2_variant(prf, 2048, oid::AES128_CBC, &[0; 16], Some(16));
            let block = pem::parse(&text).unwrap();
            assert_eq!(parse_pbes2(block.contents()).unwrap().prf, expected);
        }
    }

    #[test]
    fn bad_inputs_give_the_expected_errors() {
        let key = ec_key();
        let good = enc(&key);
        let unencrypted = encode_private_key_pem(&key, None).unwrap();
        let sha256 = der::sequence(&[&der::oid(oid::HMAC_SHA256), &der::null()]);
        let sha224 = der::sequence(&[
            &der::oid(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x08]),
            &der::null(),
        ]);
        let bad_params = der::sequence(&[&der::oid(oid::HMAC_SHA256), &der::octet_string(&[])]);
        let eoc_with_content = der::sequence(&[&der::oid(oid::HMAC_SHA256), &[0x00, 0x01, 0x00]]);
        let truncated = {
            let block = pem::parse(&good).unwrap();
            let contents = block.contents();
            pem_encode(LABEL_ENCRYPTED_PKCS8, &contents[..contents.len() - 20])
        };
        let tampered = {
            let block = pem::parse(&good).unwrap();
            let mut contents = block.contents().to_vec();
            let n = contents.len();
            contents[n - 1] ^= 0x55;
            pem_encode(LABEL_ENCRYPTED_PKCS8, &contents)
        };
        let legacy = legacy_pem(LABEL_SEC1, b"0123456789", CbcCipher::Aes128, &[7; 16], PW);
        let scrypt_scheme = {
            let text = good.clone();
            let block = pem::parse(&text).unwrap();
            let mut contents = block.contents().to_vec();
            // Replace the PBES2 OID (last arc 13) with PBES1 pbeWithMD5AndDES-CBC (arc 3).
            let at = contents
                .windows(oid::PBES2.len())
                .position(|w| w == oid::PBES2)
                .unwrap();
            contents[at + oid::PBES2.len() - 1] = 0x03;
            pem_encode(LABEL_ENCRYPTED_PKCS8, &contents)
        };

        type Check = fn(&Error) -> bool;
        let cases: Vec<(&str, String, Option<&[u8]>, Check)> = vec![
            ("empty input", String::new(), None, |e| matches!(e, Error::PemMissing { .. })),
            ("not PEM", "hello".into(), None, |e| matches!(e, Error::PemMissing { .. })),
            (
                "public key label",
                pem_encode("PUBLIC KEY", b"x"),
                None,
                |e| matches!(e, Error::PemUnexpectedLabel { found, .. } if found == "PUBLIC KEY"),
            ),
            (
                "openssh key label",
                pem_encode("OPENSSH PRIVATE KEY", b"x"),
                None,
                |e| matches!(e, Error::PemUnexpectedLabel { .. }),
            ),
            (
                "bad base64",
                "-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n".into(),
                None,
                |e| matches!(e, Error::PemMalformed(_)),
            ),
            (
                "missing END line",
                "-----BEGIN PRIVATE KEY-----\nAAAA\n".into(),
                None,
                |e| matches!(e, Error::PemMalformed(_)),
            ),
            (
                "mismatched labels",
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n".into(),
                None,
                |e| matches!(e, Error::PemMalformed(_)),
            ),
            (
                "garbage unencrypted pkcs8",
                pem_encode(LABEL_PKCS8, b"garbage"),
                None,
                |e| matches!(e, Error::KeyRejected(_)),
            ),
            ("no password (pbes2)", good.clone(), None, |e| matches!(e, Error::PasswordRequired)),
            ("no password (legacy)", legacy.clone(), None, |e| matches!(e, Error::PasswordRequired)),
            ("wrong password (pbes2)", good.clone(), Some(b"wrong"), |e| matches!(e, Error::PasswordIncorrect)),
            ("empty password (pbes2)", good.clone(), Some(b""), |e| matches!(e, Error::PasswordIncorrect)),
            ("wrong password (legacy)", legacy.clone(), Some(b"wrong"), |e| matches!(e, Error::PasswordIncorrect)),
            (
                // Right password, but the plaintext is not a key: still reads as noise.
                "right password, not a key (legacy)",
                legacy,
                Some(PW),
                |e| matches!(e, Error::PasswordIncorrect),
            ),
            ("tampered ciphertext", tampered, Some(PW), |e| matches!(e, Error::PasswordIncorrect)),
            ("truncated DER", truncated, Some(PW), |e| matches!(e, Error::DerMalformed { .. })),
            (
                "pbes1 scheme",
                scrypt_scheme,
                Some(PW),
                |e| matches!(e, Error::EncryptionUnsupported(m) if m.contains("PBES1")),
            ),
            (
                "iterations too high",
                pbes2_variant(Some(&sha256), 2_000_001, oid::AES256_CBC, &[0; 16], None),
                Some(PW),
                |e| matches!(e, Error::IterationsTooHigh { count: 2_000_001, limit: 2_000_000 }),
            ),
            (
                "iterations far too high (before asking for a password)",
                pbes2_variant(Some(&sha256), u64::MAX, oid::AES256_CBC, &[0; 16], None),
                None,
                |e| matches!(e, Error::IterationsTooHigh { .. }),
            ),
            (
                "zero iterations",
                pbes2_variant(Some(&sha256), 0, oid::AES256_CBC, &[0; 16], None),
                Some(PW),
                |e| matches!(e, Error::DerMalformed { .. }),
            ),
            (
                "unsupported prf",
                pbes2_variant(Some(&sha224), 2048, oid::AES256_CBC, &[0; 16], None),
                Some(PW),
                |e| matches!(e, Error::EncryptionUnsupported(m) if m.contains("hmacWithSHA224")),
            ),
            (
                "non-null prf parameters",
                pbes2_variant(Some(&bad_params), 2048, oid::AES256_CBC, &[0; 16], None),
                Some(PW),
                |e| matches!(e, Error::DerMalformed { .. }),
            ),
            (
                "end-of-contents prf parameters with content",
                pbes2_variant(Some(&eoc_with_content), 2048, oid::AES256_CBC, &[0; 16], None),
                Some(PW),
                |e| matches!(e, Error::DerMalformed { .. }),
            ),
            (
                "unsupported cipher",
                pbes2_variant(Some(&sha256), 2048, &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x03, 0x02], &[0; 8], None),
                Some(PW),
                |e| matches!(e, Error::EncryptionUnsupported(m) if m.contains("rc2-cbc")),
            ),
            (
                "wrong iv length",
                pbes2_variant(Some(&sha256), 2048, oid::AES256_CBC, &[0; 8], None),
                Some(PW),
                |e| matches!(e, Error::DerMalformed { .. }),
            ),
            (
                "key length mismatch",
                pbes2_variant(Some(&sha256), 2048, oid::AES256_CBC, &[0; 16], Some(16)),
                Some(PW),
                |e| matches!(e, Error::DerMalformed { .. }),
            ),
            (
                "unsupported legacy cipher",
                unencrypted.replace(
                    "-----BEGIN PRIVATE KEY-----\n",
                    "-----BEGIN PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CFB,00000000000000000000000000000000\n\n",
                ),
                Some(PW),
                |e| matches!(e, Error::EncryptionUnsupported(m) if m.contains("AES-256-CFB")),
            ),
            (
                "bad legacy iv",
                unencrypted.replace(
                    "-----BEGIN PRIVATE KEY-----\n",
                    "-----BEGIN PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,zz\n\n",
                ),
                Some(PW),
                |e| matches!(e, Error::PemMalformed(_)),
            ),
            (
                "short legacy iv",
                unencrypted.replace(
                    "-----BEGIN PRIVATE KEY-----\n",
                    "-----BEGIN PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,0011\n\n",
                ),
                Some(PW),
                |e| matches!(e, Error::PemMalformed(_)),
            ),
            (
                "proc-type without dek-info",
                unencrypted.replace(
                    "-----BEGIN PRIVATE KEY-----\n",
                    "-----BEGIN PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\n",
                ),
                Some(PW),
                |e| matches!(e, Error::PemMalformed(_)),
            ),
        ];
        for (name, text, password, check) in cases {
            match decode_private_key_pem(text.as_bytes(), password) {
                Ok(_) => panic!("{name}: decoded"),
                Err(e) => assert!(check(&e), "{name}: unexpected error {e:?}"),
            }
        }
    }

    #[test]
    fn legacy_body_not_a_block_multiple_is_malformed() {
        let text = "-----BEGIN EC PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,000102030405060708090A0B0C0D0E0F\n\nAAAA\n-----END EC PRIVATE KEY-----\n";
        assert!(matches!(
            decode_private_key_pem(text.as_bytes(), Some(PW)),
            Err(Error::PemMalformed(_))
        ));
    }

    #[test]
    fn pkcs7_padding_checks() {
        assert_eq!(pkcs7_unpadded_len(&[1, 2, 3, 1], 16), Some(3));
        assert_eq!(pkcs7_unpadded_len(&[4; 4], 16), Some(0));
        assert_eq!(pkcs7_unpadded_len(&[1, 2, 2, 3], 16), None);
        assert_eq!(pkcs7_unpadded_len(&[0; 16], 16), None);
        assert_eq!(pkcs7_unpadded_len(&[17; 32], 16), None);
        assert_eq!(pkcs7_unpadded_len(&[5; 4], 16), None);
        assert_eq!(pkcs7_unpadded_len(&[], 16), None);
        let mut v = vec![0u8; 16];
        pkcs7_pad(&mut v, 16);
        assert_eq!(v.len(), 32);
        assert_eq!(pkcs7_unpadded_len(&v, 16), Some(16));
    }

    #[test]
    fn password_files_trim_trailing_white_space_only() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"mypassword", b"mypassword"),
            (b"  pass\n", b"  pass"),
            (b"pass\r\n\t \x0b\x0c", b"pass"),
            (b"\n\n", b""),
            (b"", b""),
            (b"pa ss \n", b"pa ss"),
            // U+00A0 (no-break space) and U+3000 (ideographic space) are white space to Go.
            ("pass\u{a0}\u{3000}".as_bytes(), b"pass"),
            // U+200B (zero width space) is not.
            ("pass\u{200b}".as_bytes(), "pass\u{200b}".as_bytes()),
            // Non-UTF-8 passwords: trailing white space still goes, the odd bytes stay.
            (b"\xff\xfepass \n", b"\xff\xfepass"),
            (b"pass\xff", b"pass\xff"),
            (b"pass \xff", b"pass \xff"),
            // A lone continuation byte after a space stops the trim.
            (b"pass \xa0", b"pass \xa0"),
            (b"\x01\x03\x03\x07", b"\x01\x03\x03\x07"),
        ];
        for (raw, expected) in cases {
            assert_eq!(read_password_file_bytes(raw), *expected, "{raw:?}");
        }
    }
}
