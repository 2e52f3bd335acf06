//! A minimal, panic-free DER reader and writer for the few ASN.1 structures this crate walks
//! by hand: PKCS#5 PBES2 parameters and `EncryptedPrivateKeyInfo` (RFC 8018, RFC 5958).
//!
//! Certificates and CSRs go through `x509-parser`; this module exists because the encrypted
//! key containers need two things a general parser does not give: tolerance of step's old
//! malformed PRF `AlgorithmIdentifier` (parameters `00 00` instead of `05 00`) and a writer.
//!
//! The reader never indexes past its input: every length is checked against what remains, and
//! every failure is an [`Error::DerMalformed`] naming the structure that was being read.

use crate::error::{Error, Result};

/// Universal tag numbers used here (all in low-tag-number form).
pub(crate) mod tag {
    pub(crate) const INTEGER: u8 = 0x02;
    pub(crate) const OCTET_STRING: u8 = 0x04;
    pub(crate) const NULL: u8 = 0x05;
    pub(crate) const OID: u8 = 0x06;
    pub(crate) const SEQUENCE: u8 = 0x30;
    pub(crate) const BOOLEAN: u8 = 0x01;
    pub(crate) const BIT_STRING: u8 = 0x03;
    pub(crate) const ENUMERATED: u8 = 0x0a;
    pub(crate) const UTC_TIME: u8 = 0x17;
    pub(crate) const GENERALIZED_TIME: u8 = 0x18;
}

/// The longest length field accepted, in bytes after the `0x8N` prefix. Four bytes (4 GiB)
/// is far beyond any key file; anything longer is malformed or hostile.
const MAX_LENGTH_BYTES: usize = 4;

/// A cursor over DER bytes. Cheap to copy; reading advances it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Reader<'a> {
    data: &'a [u8],
    /// The structure being read, for error messages.
    what: &'static str,
}

impl<'a> Reader<'a> {
    /// A reader over `data`; `what` names the structure in errors ("PBES2 parameters").
    pub(crate) fn new(data: &'a [u8], what: &'static str) -> Self {
        Self { data, what }
    }

    fn err(&self, detail: impl Into<String>) -> Error {
        Error::DerMalformed {
            what: self.what,
            detail: detail.into(),
        }
    }

    /// True when every byte has been consumed.
    pub(crate) fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The tag of the next element, without consuming it.
    pub(crate) fn peek_tag(&self) -> Option<u8> {
        self.data.first().copied()
    }

    /// Reads one tag-length-value and returns the tag and the content octets.
    ///
    /// Only low-tag-number form is accepted (all of PKCS#5/#8 uses it). Indefinite lengths
    /// (BER) are rejected; long-form lengths are accepted up to [`MAX_LENGTH_BYTES`] bytes and
    /// must fit in what remains. Non-minimal length encodings are tolerated because some old
    /// encoders emit them and they are unambiguous.
    pub(crate) fn read_tlv(&mut self) -> Result<(u8, &'a [u8])> {
        let (&tag, rest) = self
            .data
            .split_first()
            .ok_or_else(|| self.err("unexpected end of data: expected a tag"))?;
        if tag & 0x1f == 0x1f {
            return Err(self.err(format!(
                "high-tag-number form (tag byte {tag:#04x}) is not supported"
            )));
        }
        let (&first, mut rest) = rest
            .split_first()
            .ok_or_else(|| self.err("unexpected end of data: expected a length"))?;
        let len = if first < 0x80 {
            usize::from(first)
        } else if first == 0x80 {
            return Err(self.err("indefinite length is not allowed in DER"));
        } else {
            let count = usize::from(first & 0x7f);
            if count > MAX_LENGTH_BYTES {
                return Err(self.err(format!("length field of {count} bytes is too long")));
            }
            let (len_bytes, after) = rest
                .split_at_checked(count)
                .ok_or_else(|| self.err("unexpected end of data inside a length field"))?;
            rest = after;
            len_bytes
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b))
        };
        let (content, after) = rest.split_at_checked(len).ok_or_else(|| {
            self.err(format!(
                "element of {len} bytes (tag {tag:#04x}) runs past the end of the data ({} bytes left)",
                rest.len()
            ))
        })?;
        self.data = after;
        Ok((tag, content))
    }

    /// Reads one element that must carry `expected` as its tag; returns its content.
    pub(crate) fn read_expected(&mut self, expected: u8, name: &str) -> Result<&'a [u8]> {
        match self.peek_tag() {
            Some(t) if t == expected => self.read_tlv().map(|(_, content)| content),
            Some(t) => Err(self.err(format!(
                "expected {name} (tag {expected:#04x}), found tag {t:#04x}"
            ))),
            None => Err(self.err(format!("unexpected end of data: expected {name}"))),
        }
    }

    /// Reads a SEQUENCE and returns a reader over its content.
    pub(crate) fn read_sequence(&mut self) -> Result<Reader<'a>> {
        let content = self.read_expected(tag::SEQUENCE, "SEQUENCE")?;
        Ok(Reader {
            data: content,
            what: self.what,
        })
    }

    /// Reads one element and returns it whole, tag and length included (to echo it verbatim).
    pub(crate) fn read_raw(&mut self) -> Result<&'a [u8]> {
        let before = self.data;
        self.read_tlv()?;
        let consumed = before.len() - self.data.len();
        Ok(before.get(..consumed).unwrap_or_default())
    }

    /// Reads a non-negative INTEGER of any size and returns its magnitude, leading zero dropped.
    pub(crate) fn read_unsigned_bytes(&mut self) -> Result<&'a [u8]> {
        let content = self.read_expected(tag::INTEGER, "INTEGER")?;
        match content {
            [] => Err(self.err("empty INTEGER")),
            [first, ..] if first & 0x80 != 0 => Err(self.err("negative INTEGER")),
            [0, rest @ ..] if !rest.is_empty() => Ok(rest),
            _ => Ok(content),
        }
    }

    /// Reads an OBJECT IDENTIFIER and returns its encoded content (compare with `oid::*`).
    pub(crate) fn read_oid(&mut self) -> Result<&'a [u8]> {
        let content = self.read_expected(tag::OID, "OBJECT IDENTIFIER")?;
        if content.is_empty() {
            return Err(self.err("empty OBJECT IDENTIFIER"));
        }
        Ok(content)
    }

    /// Reads an OCTET STRING and returns its content.
    pub(crate) fn read_octet_string(&mut self) -> Result<&'a [u8]> {
        self.read_expected(tag::OCTET_STRING, "OCTET STRING")
    }

    /// Reads a NULL, which must have empty content.
    pub(crate) fn read_null(&mut self) -> Result<()> {
        let content = self.read_expected(tag::NULL, "NULL")?;
        if !content.is_empty() {
            return Err(self.err("NULL with non-empty content"));
        }
        Ok(())
    }

    /// Reads a non-negative INTEGER that fits in a `u64`.
    ///
    /// Values too large for a `u64` are reported as malformed: nothing this crate reads
    /// (iteration counts, key lengths, versions) can legitimately need more.
    pub(crate) fn read_u64(&mut self) -> Result<u64> {
        let content = self.read_expected(tag::INTEGER, "INTEGER")?;
        let (&first, _) = content
            .split_first()
            .ok_or_else(|| self.err("empty INTEGER"))?;
        if first & 0x80 != 0 {
            return Err(self.err("negative INTEGER where a non-negative one is required"));
        }
        // A leading 0x00 only marks the value as positive; drop it before measuring.
        let magnitude = match content {
            [0, rest @ ..] => rest,
            _ => content,
        };
        if magnitude.len() > 8 {
            return Err(self.err(format!("INTEGER of {} bytes is too large", content.len())));
        }
        Ok(magnitude
            .iter()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    /// Fails unless every byte has been consumed, so that trailing garbage is not ignored.
    pub(crate) fn finish(&self) -> Result<()> {
        if self.data.is_empty() {
            Ok(())
        } else {
            Err(self.err(format!("{} unexpected trailing bytes", self.data.len())))
        }
    }
}

/// Encoded OBJECT IDENTIFIER contents (without tag and length) of the algorithms used here.
pub(crate) mod oid {
    /// 1.2.840.113549.1.5.13 (PKCS#5 PBES2).
    pub(crate) const PBES2: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x0d];
    /// 1.2.840.113549.1.5.12 (PKCS#5 PBKDF2).
    pub(crate) const PBKDF2: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x0c];
    /// 1.2.840.113549.2.7 (hmacWithSHA1, the PBKDF2 default PRF).
    pub(crate) const HMAC_SHA1: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x07];
    /// 1.2.840.113549.2.9 (hmacWithSHA256).
    pub(crate) const HMAC_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x09];
    /// 1.2.840.113549.2.10 (hmacWithSHA384).
    pub(crate) const HMAC_SHA384: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x0a];
    /// 1.2.840.113549.2.11 (hmacWithSHA512).
    pub(crate) const HMAC_SHA512: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x0b];
    /// 2.16.840.1.101.3.4.1.2 (aes128-CBC).
    pub(crate) const AES128_CBC: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x02];
    /// 2.16.840.1.101.3.4.1.22 (aes192-CBC).
    pub(crate) const AES192_CBC: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x16];
    /// 2.16.840.1.101.3.4.1.42 (aes256-CBC).
    pub(crate) const AES256_CBC: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2a];
    /// 1.2.840.113549.3.7 (des-ede3-cbc).
    pub(crate) const DES_EDE3_CBC: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x03, 0x07];

    /// 1.2.840.10045.4.3.2 (ecdsa-with-SHA256).
    pub(crate) const ECDSA_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
    /// 1.2.840.10045.4.3.3 (ecdsa-with-SHA384).
    pub(crate) const ECDSA_SHA384: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03];
    /// 1.3.101.112 (Ed25519).
    pub(crate) const ED25519: &[u8] = &[0x2b, 0x65, 0x70];
    /// 1.2.840.113549.1.1.11 (sha256WithRSAEncryption).
    pub(crate) const SHA256_WITH_RSA: &[u8] =
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b];

    /// 1.3.14.3.2.26 (SHA-1, as OCSP CertIDs use it).
    pub(crate) const SHA1: &[u8] = &[0x2b, 0x0e, 0x03, 0x02, 0x1a];
    /// 2.16.840.1.101.3.4.2.1 (SHA-256).
    pub(crate) const SHA256: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];
    /// 2.16.840.1.101.3.4.2.2 (SHA-384).
    pub(crate) const SHA384: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02];
    /// 2.16.840.1.101.3.4.2.3 (SHA-512).
    pub(crate) const SHA512: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03];

    /// 2.5.29.20 (cRLNumber).
    pub(crate) const CRL_NUMBER: &[u8] = &[0x55, 0x1d, 0x14];
    /// 2.5.29.21 (reasonCode).
    pub(crate) const REASON_CODE: &[u8] = &[0x55, 0x1d, 0x15];
    /// 2.5.29.27 (deltaCRLIndicator).
    pub(crate) const DELTA_CRL_INDICATOR: &[u8] = &[0x55, 0x1d, 0x1b];
    /// 2.5.29.28 (issuingDistributionPoint).
    pub(crate) const ISSUING_DISTRIBUTION_POINT: &[u8] = &[0x55, 0x1d, 0x1c];
    /// 2.5.29.35 (authorityKeyIdentifier).
    pub(crate) const AUTHORITY_KEY_IDENTIFIER: &[u8] = &[0x55, 0x1d, 0x23];
    /// 2.5.29.46 (freshestCRL).
    pub(crate) const FRESHEST_CRL: &[u8] = &[0x55, 0x1d, 0x2e];

    /// 1.3.6.1.5.5.7.48.1 (id-ad-ocsp).
    pub(crate) const AD_OCSP: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01];
    /// 1.3.6.1.5.5.7.48.2 (id-ad-caIssuers).
    pub(crate) const AD_CA_ISSUERS: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x02];
    /// 1.3.6.1.5.5.7.48.1.1 (id-pkix-ocsp-basic).
    pub(crate) const OCSP_BASIC: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01, 0x01];
    /// 1.3.6.1.5.5.7.48.1.2 (id-pkix-ocsp-nonce).
    pub(crate) const OCSP_NONCE: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01, 0x02];
}

/// Renders encoded OID content in dotted form for error messages. Never fails: malformed
/// content is shown as hex instead.
pub(crate) fn oid_to_string(content: &[u8]) -> String {
    let mut arcs: Vec<u64> = Vec::new();
    let mut value: u64 = 0;
    let mut pending = false;
    for &b in content {
        // More than 63 bits in one arc: not an OID this crate could know.
        if value > (u64::MAX >> 7) {
            return format!("malformed OID {}", hex::encode(content));
        }
        value = (value << 7) | u64::from(b & 0x7f);
        pending = b & 0x80 != 0;
        if !pending {
            if arcs.is_empty() {
                // The first subidentifier packs the first two arcs: 40 * X + Y.
                let first = (value / 40).min(2);
                arcs.push(first);
                arcs.push(value - first * 40);
            } else {
                arcs.push(value);
            }
            value = 0;
        }
    }
    if pending || arcs.is_empty() {
        return format!("malformed OID {}", hex::encode(content));
    }
    arcs.iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

/// How many octets [`push_length`] writes for `len`.
pub(crate) fn length_len(len: usize) -> usize {
    if len < 0x80 {
        1
    } else {
        1 + (usize::BITS - len.leading_zeros()).div_ceil(8) as usize
    }
}

/// Appends a DER length.
pub(crate) fn push_length(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        // Fits the short form; the cast cannot truncate.
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        let significant = bytes.get(skip..).unwrap_or_default();
        // At most size_of::<usize>() bytes, so the count fits in the low seven bits.
        out.push(0x80 | significant.len() as u8);
        out.extend_from_slice(significant);
    }
}

/// Encodes one element: tag, minimal length, content.
pub(crate) fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    push_length(&mut out, content.len());
    out.extend_from_slice(content);
    out
}

/// Encodes a SEQUENCE of already-encoded elements.
pub(crate) fn sequence(elements: &[&[u8]]) -> Vec<u8> {
    tlv(tag::SEQUENCE, &elements.concat())
}

/// Encodes an OBJECT IDENTIFIER from its encoded content (one of the `oid::*` constants).
pub(crate) fn oid(content: &[u8]) -> Vec<u8> {
    tlv(tag::OID, content)
}

/// Encodes an OCTET STRING.
pub(crate) fn octet_string(content: &[u8]) -> Vec<u8> {
    tlv(tag::OCTET_STRING, content)
}

/// Encodes NULL.
pub(crate) fn null() -> Vec<u8> {
    tlv(tag::NULL, &[])
}

/// Encodes a non-negative INTEGER in minimal two's-complement form.
pub(crate) fn integer_u64(value: u64) -> Vec<u8> {
    let bytes = value.to_be_bytes();
    let skip = bytes.iter().take_while(|&&b| b == 0).count();
    let mut content = Vec::with_capacity(9);
    match bytes.get(skip..) {
        // Zero still needs one content octet.
        None | Some([]) => content.push(0),
        Some(significant) => {
            // A set top bit would read as negative: prefix a zero octet.
            if significant.first().is_some_and(|b| b & 0x80 != 0) {
                content.push(0);
            }
            content.extend_from_slice(significant);
        }
    }
    tlv(tag::INTEGER, &content)
}

/// Encodes a positive INTEGER from big-endian magnitude bytes (a serial number, an ECDSA
/// scalar): leading zeros dropped, a zero octet prefixed when the top bit is set.
pub(crate) fn integer_unsigned(magnitude: &[u8]) -> Vec<u8> {
    let start = magnitude
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(magnitude.len());
    let significant = magnitude.get(start..).unwrap_or_default();
    let mut content = Vec::with_capacity(significant.len() + 1);
    if significant.first().is_none_or(|b| b & 0x80 != 0) {
        content.push(0);
    }
    content.extend_from_slice(significant);
    tlv(tag::INTEGER, &content)
}

/// Encodes a BIT STRING with no unused bits.
pub(crate) fn bit_string(content: &[u8]) -> Vec<u8> {
    let mut value = Vec::with_capacity(content.len() + 1);
    value.push(0);
    value.extend_from_slice(content);
    tlv(tag::BIT_STRING, &value)
}

/// Encodes an ENUMERATED that fits one octet (CRLReason, OCSPResponseStatus).
pub(crate) fn enumerated(value: u8) -> Vec<u8> {
    if value & 0x80 != 0 {
        tlv(tag::ENUMERATED, &[0, value])
    } else {
        tlv(tag::ENUMERATED, &[value])
    }
}

/// Encodes a BOOLEAN (DER: TRUE is 0xff).
pub(crate) fn boolean(value: bool) -> Vec<u8> {
    tlv(tag::BOOLEAN, &[if value { 0xff } else { 0 }])
}

/// Wraps already-encoded content in a constructed context-specific tag `[n]` (EXPLICIT tagging,
/// or IMPLICIT tagging of a SEQUENCE or CHOICE).
pub(crate) fn context_constructed(number: u8, content: &[u8]) -> Vec<u8> {
    tlv(0xa0 | (number & 0x1f), content)
}

/// A primitive context-specific tag `[n]` (IMPLICIT tagging of a primitive type).
pub(crate) fn context_primitive(number: u8, content: &[u8]) -> Vec<u8> {
    tlv(0x80 | (number & 0x1f), content)
}

/// Encodes a GeneralizedTime (`YYYYMMDDHHMMSSZ`, whole seconds in UTC).
pub(crate) fn generalized_time(time: time::OffsetDateTime) -> Vec<u8> {
    let t = time.to_offset(time::UtcOffset::UTC);
    let text = format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    tlv(tag::GENERALIZED_TIME, text.as_bytes())
}

/// The encoded length of the INTEGER [`integer_unsigned`] writes for `magnitude`.
pub(crate) fn integer_unsigned_len(magnitude: &[u8]) -> usize {
    let significant = &magnitude[magnitude
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(magnitude.len())..];
    let pad = usize::from(significant.first().is_none_or(|b| b & 0x80 != 0));
    let content = significant.len() + pad;
    1 + length_len(content) + content
}

/// Appends what [`integer_unsigned`] returns, without allocating.
pub(crate) fn push_integer_unsigned(out: &mut Vec<u8>, magnitude: &[u8]) {
    let significant = &magnitude[magnitude
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(magnitude.len())..];
    let pad = significant.first().is_none_or(|b| b & 0x80 != 0);
    out.push(tag::INTEGER);
    push_length(out, significant.len() + usize::from(pad));
    if pad {
        out.push(0);
    }
    out.extend_from_slice(significant);
}

/// The encoded length of [`x509_time`]'s output: 15 (UTCTime) or 17 (GeneralizedTime).
pub(crate) fn x509_time_len(time: time::OffsetDateTime) -> usize {
    let year = time.to_offset(time::UtcOffset::UTC).year();
    if (1950..2050).contains(&year) { 15 } else { 17 }
}

/// Appends what [`x509_time`] returns, without formatting through `fmt` (a million-entry CRL
/// writes a million times).
pub(crate) fn push_x509_time(out: &mut Vec<u8>, time: time::OffsetDateTime) {
    fn two(out: &mut Vec<u8>, value: u32) {
        out.push(b'0' + (value / 10 % 10) as u8);
        out.push(b'0' + (value % 10) as u8);
    }
    let t = time.to_offset(time::UtcOffset::UTC);
    // Years outside 0..=9999 fit neither form; clamped rather than written as garbage.
    let year = t.year().clamp(0, 9999) as u32;
    if (1950..2050).contains(&year) {
        out.push(tag::UTC_TIME);
        out.push(13);
        two(out, year % 100);
    } else {
        out.push(tag::GENERALIZED_TIME);
        out.push(15);
        two(out, year / 100);
        two(out, year % 100);
    }
    for value in [
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
    ] {
        two(out, u32::from(value));
    }
    out.push(b'Z');
}

/// Encodes an X.509 `Time`: UTCTime through 2049, GeneralizedTime from 2050 (RFC 5280 4.1.2.5).
pub(crate) fn x509_time(time: time::OffsetDateTime) -> Vec<u8> {
    let t = time.to_offset(time::UtcOffset::UTC);
    if !(1950..2050).contains(&t.year()) {
        return generalized_time(t);
    }
    let text = format!(
        "{:02}{:02}{:02}{:02}{:02}{:02}Z",
        t.year() % 100,
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    tlv(tag::UTC_TIME, text.as_bytes())
}

/// Encodes one `Extension` (RFC 5280 4.1): the criticality flag is written only when set.
pub(crate) fn extension(oid_content: &[u8], critical: bool, value: &[u8]) -> Vec<u8> {
    if critical {
        sequence(&[&oid(oid_content), &boolean(true), &octet_string(value)])
    } else {
        sequence(&[&oid(oid_content), &octet_string(value)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_in_place_writers_write_what_the_allocating_ones_return() {
        let times = [
            (1950, 1, 1, 0, 0, 0),
            (1999, 12, 31, 23, 59, 59),
            (2026, 12, 4, 21, 5, 9),
            (2049, 12, 31, 23, 59, 59),
            (2050, 1, 1, 0, 0, 0),
            (1949, 6, 15, 12, 30, 45),
            (9999, 12, 31, 23, 59, 59),
        ];
        for (y, mo, d, h, mi, se) in times {
            let date =
                time::Date::from_calendar_date(y, time::Month::try_from(mo).unwrap(), d).unwrap();
            let t = date.with_hms(h, mi, se).unwrap().assume_utc();
            let mut out = Vec::new();
            push_x509_time(&mut out, t);
            assert_eq!(out, x509_time(t), "{t}");
            assert_eq!(out.len(), x509_time_len(t), "{t}");
        }
        for magnitude in [
            &[][..],
            &[0],
            &[0, 0, 1],
            &[0x7f],
            &[0x80],
            &[0xff; 20],
            &[0, 0x80, 1],
        ] {
            let mut out = Vec::new();
            push_integer_unsigned(&mut out, magnitude);
            assert_eq!(out, integer_unsigned(magnitude), "{magnitude:?}");
            assert_eq!(out.len(), integer_unsigned_len(magnitude), "{magnitude:?}");
        }
        for len in [0, 1, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000, 50_000_000] {
            let mut out = Vec::new();
            push_length(&mut out, len);
            assert_eq!(out.len(), length_len(len), "{len}");
        }
    }

    fn malformed(result: Result<impl std::fmt::Debug>) -> String {
        match result {
            Err(Error::DerMalformed { what, detail }) => {
                assert_eq!(what, "test");
                detail
            }
            other => panic!("expected DerMalformed, got {other:?}"),
        }
    }

    #[test]
    fn reads_nested_structures() {
        let encoded = sequence(&[
            &oid(oid::PBKDF2),
            &sequence(&[&octet_string(b"salt"), &integer_u64(100_000), &null()]),
        ]);
        let mut outer = Reader::new(&encoded, "test");
        let mut seq = outer.read_sequence().unwrap();
        outer.finish().unwrap();
        assert_eq!(seq.read_oid().unwrap(), oid::PBKDF2);
        let mut inner = seq.read_sequence().unwrap();
        seq.finish().unwrap();
        assert_eq!(inner.read_octet_string().unwrap(), b"salt");
        assert_eq!(inner.read_u64().unwrap(), 100_000);
        inner.read_null().unwrap();
        assert!(inner.is_empty());
        inner.finish().unwrap();
    }

    #[test]
    fn long_form_lengths_round_trip() {
        for len in [0usize, 1, 127, 128, 255, 256, 65_535, 65_536, 70_000] {
            let content = vec![0xab; len];
            let encoded = octet_string(&content);
            let mut r = Reader::new(&encoded, "test");
            assert_eq!(r.read_octet_string().unwrap(), &content[..], "length {len}");
            r.finish().unwrap();
        }
        assert_eq!(octet_string(&[0; 128])[..3], [0x04, 0x81, 0x80]);
        assert_eq!(octet_string(&[0; 256])[..4], [0x04, 0x82, 0x01, 0x00]);
    }

    #[test]
    fn integers_encode_minimally_and_round_trip() {
        let cases: [(u64, &[u8]); 6] = [
            (0, &[0x02, 0x01, 0x00]),
            (1, &[0x02, 0x01, 0x01]),
            (127, &[0x02, 0x01, 0x7f]),
            (128, &[0x02, 0x02, 0x00, 0x80]),
            (2048, &[0x02, 0x02, 0x08, 0x00]),
            (100_000, &[0x02, 0x03, 0x01, 0x86, 0xa0]),
        ];
        for (value, expected) in cases {
            assert_eq!(integer_u64(value), expected, "{value}");
            assert_eq!(Reader::new(expected, "test").read_u64().unwrap(), value);
        }
        let max = integer_u64(u64::MAX);
        assert_eq!(max.len(), 11);
        assert_eq!(Reader::new(&max, "test").read_u64().unwrap(), u64::MAX);
    }

    #[test]
    fn oid_constants_render_to_their_dotted_names() {
        let cases = [
            (oid::PBES2, "1.2.840.113549.1.5.13"),
            (oid::PBKDF2, "1.2.840.113549.1.5.12"),
            (oid::HMAC_SHA1, "1.2.840.113549.2.7"),
            (oid::HMAC_SHA256, "1.2.840.113549.2.9"),
            (oid::HMAC_SHA384, "1.2.840.113549.2.10"),
            (oid::HMAC_SHA512, "1.2.840.113549.2.11"),
            (oid::AES128_CBC, "2.16.840.1.101.3.4.1.2"),
            (oid::AES192_CBC, "2.16.840.1.101.3.4.1.22"),
            (oid::AES256_CBC, "2.16.840.1.101.3.4.1.42"),
            (oid::DES_EDE3_CBC, "1.2.840.113549.3.7"),
        ];
        for (content, dotted) in cases {
            assert_eq!(oid_to_string(content), dotted);
        }
        assert!(oid_to_string(&[0x2a, 0x86]).starts_with("malformed OID"));
        assert!(oid_to_string(&[]).starts_with("malformed OID"));
        assert!(oid_to_string(&[0xff; 12]).starts_with("malformed OID"));
    }

    #[test]
    fn tolerates_step_eoc_parameters_as_a_plain_element() {
        // step's old PRF AlgorithmIdentifier: SEQUENCE { OID hmacWithSHA256, 00 00 }.
        let bytes = [
            0x30, 0x0c, 0x06, 0x08, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x09, 0x00, 0x00,
        ];
        let mut r = Reader::new(&bytes, "test");
        let mut seq = r.read_sequence().unwrap();
        assert_eq!(seq.read_oid().unwrap(), oid::HMAC_SHA256);
        assert_eq!(seq.read_tlv().unwrap(), (0x00, &[][..]));
        seq.finish().unwrap();
    }

    #[test]
    fn rejects_malformed_input_without_panicking() {
        let cases: &[(&str, &[u8], &str)] = &[
            ("empty", &[], "expected SEQUENCE"),
            ("tag only", &[0x30], "expected a length"),
            (
                "truncated content",
                &[0x30, 0x05, 0x02, 0x01],
                "runs past the end",
            ),
            (
                "truncated long length",
                &[0x30, 0x82, 0x01],
                "inside a length field",
            ),
            ("indefinite length", &[0x30, 0x80, 0x00, 0x00], "indefinite"),
            (
                "huge length field",
                &[0x30, 0x89, 1, 2, 3, 4, 5, 6, 7, 8, 9],
                "too long",
            ),
            (
                "length past end",
                &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff],
                "runs past the end",
            ),
            ("wrong tag", &[0x04, 0x00], "expected SEQUENCE"),
        ];
        for (name, bytes, needle) in cases {
            let detail = malformed(Reader::new(bytes, "test").read_sequence());
            assert!(detail.contains(needle), "{name}: {detail}");
        }

        let int_cases: &[(&str, &[u8], &str)] = &[
            ("empty integer", &[0x02, 0x00], "empty INTEGER"),
            ("negative", &[0x02, 0x01, 0xff], "negative"),
            (
                "too large",
                &[0x02, 0x09, 0x01, 0, 0, 0, 0, 0, 0, 0, 0],
                "too large",
            ),
            ("not an integer", &[0x04, 0x01, 0x01], "expected INTEGER"),
        ];
        for (name, bytes, needle) in int_cases {
            let detail = malformed(Reader::new(bytes, "test").read_u64());
            assert!(detail.contains(needle), "{name}: {detail}");
        }

        let detail = malformed(Reader::new(&[0x3f, 0x01, 0x00], "test").read_tlv());
        assert!(detail.contains("high-tag-number"), "{detail}");
        let detail = malformed(Reader::new(&[0x05, 0x01, 0x00], "test").read_null());
        assert!(detail.contains("non-empty"), "{detail}");
        let detail = malformed(Reader::new(&[0x06, 0x00], "test").read_oid());
        assert!(detail.contains("empty OBJECT IDENTIFIER"), "{detail}");
        let mut r = Reader::new(&[0x05, 0x00, 0x05, 0x00], "test");
        r.read_null().unwrap();
        let detail = malformed(r.finish());
        assert!(detail.contains("trailing"), "{detail}");
    }

    #[test]
    fn every_prefix_of_a_valid_structure_fails_cleanly() {
        let encoded = sequence(&[&oid(oid::PBES2), &octet_string(&[7; 300]), &integer_u64(9)]);
        for cut in 0..encoded.len() {
            let mut r = Reader::new(&encoded[..cut], "test");
            assert!(r.read_sequence().is_err(), "prefix of {cut} bytes");
        }
    }
}
