//! OCSP (RFC 6960): reading requests and writing signed responses for the responder, and the
//! reverse (writing a request, reading and checking a response) for clients.
//!
//! Requests come from anyone on the network, so the reader is the panic-free [`der::Reader`] and
//! every refusal is an error naming what was wrong; the responder answers those with
//! `malformedRequest`. CertIDs are kept as the exact bytes received and echoed verbatim in the
//! response, which is what clients compare.

use time::OffsetDateTime;

use crate::der::{self, Reader};
use crate::error::{Error, Result};
use crate::issuer::{CertIdHash, IssuerIdentity};
use crate::key::PrivateKey;
use crate::signer::Signer as _;

/// Most certificates asked about in one request. RFC 5019 clients ask about one; a few more are
/// allowed, and anything beyond is refused rather than signed for.
pub const MAX_REQUESTS: usize = 16;
/// Longest nonce extension value accepted. RFC 8954 allows nonces of 1 to 32 octets; the OCTET
/// STRING wrapping adds two.
pub const MAX_NONCE_LEN: usize = 34;

/// `OCSPResponseStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseStatus {
    Successful = 0,
    MalformedRequest = 1,
    InternalError = 2,
    TryLater = 3,
    SigRequired = 5,
    Unauthorized = 6,
}

impl ResponseStatus {
    fn from_code(code: u8) -> Option<Self> {
        [
            ResponseStatus::Successful,
            ResponseStatus::MalformedRequest,
            ResponseStatus::InternalError,
            ResponseStatus::TryLater,
            ResponseStatus::SigRequired,
            ResponseStatus::Unauthorized,
        ]
        .into_iter()
        .find(|s| *s as u8 == code)
    }
}

/// One `CertID`, borrowed from the request bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CertId<'a> {
    /// The whole encoded CertID, echoed in the response.
    pub der: &'a [u8],
    pub hash: Option<CertIdHash>,
    pub issuer_name_hash: &'a [u8],
    pub issuer_key_hash: &'a [u8],
    /// Big-endian magnitude of the serial number.
    pub serial: &'a [u8],
}

impl CertId<'_> {
    /// True when this CertID names `issuer` (with a hash algorithm this crate knows).
    pub fn is_issued_by(&self, issuer: &IssuerIdentity) -> bool {
        self.hash.is_some_and(|hash| {
            self.issuer_name_hash == issuer.name_hash(hash).as_slice()
                && self.issuer_key_hash == issuer.key_hash(hash).as_slice()
        })
    }
}

/// A parsed `OCSPRequest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OcspRequest<'a> {
    pub cert_ids: Vec<CertId<'a>>,
    /// The nonce `Extension`, whole, to echo in the response.
    pub nonce_extension: Option<&'a [u8]>,
}

impl<'a> OcspRequest<'a> {
    /// Parses a DER `OCSPRequest`. A signature on the request, if any, is ignored (RFC 6960
    /// makes it optional and this responder does not require one).
    pub fn from_der(input: &'a [u8]) -> Result<Self> {
        let mut outer = Reader::new(input, "OCSP request");
        let mut request = outer.read_sequence()?;
        outer.finish()?;
        let mut tbs = request.read_sequence()?;
        if request.peek_tag() == Some(0xa0) {
            request.read_tlv()?;
        }
        request.finish()?;
        if tbs.peek_tag() == Some(0xa0) {
            let mut version = Reader::new(tbs.read_tlv()?.1, "OCSP request version");
            if version.read_u64()? != 0 {
                return Err(malformed("only version 1 requests are understood"));
            }
            version.finish()?;
        }
        if tbs.peek_tag() == Some(0xa1) {
            tbs.read_tlv()?;
        }
        let mut list = tbs.read_sequence()?;
        let mut cert_ids = Vec::new();
        while !list.is_empty() {
            if cert_ids.len() == MAX_REQUESTS {
                return Err(malformed(format!(
                    "more than {MAX_REQUESTS} certificates in one request"
                )));
            }
            let mut single = list.read_sequence()?;
            cert_ids.push(read_cert_id(&mut single)?);
            if single.peek_tag() == Some(0xa0) {
                single.read_tlv()?;
            }
            single.finish()?;
        }
        if cert_ids.is_empty() {
            return Err(malformed("the request asks about no certificate"));
        }
        let mut nonce_extension = None;
        if tbs.peek_tag() == Some(0xa2) {
            let mut explicit = Reader::new(tbs.read_tlv()?.1, "OCSP request extensions");
            let mut extensions = explicit.read_sequence()?;
            explicit.finish()?;
            while !extensions.is_empty() {
                let raw = extensions.read_raw()?;
                let mut extension = Reader::new(raw, "OCSP request extension");
                let mut fields = extension.read_sequence()?;
                let oid = fields.read_oid()?;
                if fields.peek_tag() == Some(der::tag::BOOLEAN) {
                    fields.read_tlv()?;
                }
                let value = fields.read_octet_string()?;
                fields.finish()?;
                if oid == der::oid::OCSP_NONCE {
                    if value.is_empty() || value.len() > MAX_NONCE_LEN {
                        return Err(malformed(format!(
                            "nonce of {} bytes: expected 1 to 32",
                            value.len()
                        )));
                    }
                    nonce_extension = Some(raw);
                }
            }
        }
        tbs.finish()?;
        Ok(Self {
            cert_ids,
            nonce_extension,
        })
    }
}

fn read_cert_id<'a>(reader: &mut Reader<'a>) -> Result<CertId<'a>> {
    let der = reader.read_raw()?;
    let mut outer = Reader::new(der, "OCSP CertID");
    let mut fields = outer.read_sequence()?;
    let mut algorithm = fields.read_sequence()?;
    let hash = CertIdHash::from_oid(algorithm.read_oid()?);
    if !algorithm.is_empty() {
        algorithm.read_null()?;
    }
    algorithm.finish()?;
    let issuer_name_hash = fields.read_octet_string()?;
    let issuer_key_hash = fields.read_octet_string()?;
    let serial = fields.read_unsigned_bytes()?;
    fields.finish()?;
    if serial.len() > 20 {
        return Err(malformed(format!(
            "serial number of {} bytes: RFC 5280 allows at most 20",
            serial.len()
        )));
    }
    Ok(CertId {
        der,
        hash,
        issuer_name_hash,
        issuer_key_hash,
        serial,
    })
}

fn malformed(detail: impl Into<String>) -> Error {
    Error::DerMalformed {
        what: "OCSP request",
        detail: detail.into(),
    }
}

/// The status of one certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertStatus {
    Good,
    Revoked {
        at: OffsetDateTime,
        /// CRLReason; `None` leaves the optional field out.
        reason: Option<u8>,
    },
    Unknown,
}

/// One `SingleResponse` to sign.
#[derive(Debug, Clone)]
pub struct SingleResponse<'a> {
    /// The request's CertID, whole.
    pub cert_id_der: &'a [u8],
    pub status: CertStatus,
    pub this_update: OffsetDateTime,
    pub next_update: OffsetDateTime,
}

/// The key and certificates that sign responses.
#[derive(Debug)]
pub struct ResponderIdentity<'a> {
    pub key: &'a PrivateKey,
    /// SHA-1 of the responder's public key bits: the `byKey` ResponderID.
    pub key_hash: &'a [u8],
    /// Sent with every response, responder first, so clients can build its chain.
    pub certificates: &'a [&'a [u8]],
}

/// A complete `OCSPResponse` carrying a status other than successful.
pub fn error_response(status: ResponseStatus) -> Vec<u8> {
    der::sequence(&[&der::enumerated(status as u8)])
}

/// Builds and signs a successful `OCSPResponse` (basic response type).
pub fn build_response(
    responder: &ResponderIdentity<'_>,
    produced_at: OffsetDateTime,
    responses: &[SingleResponse<'_>],
    nonce_extension: Option<&[u8]>,
) -> Result<Vec<u8>> {
    let singles: Vec<Vec<u8>> = responses.iter().map(single_response).collect();
    let singles: Vec<&[u8]> = singles.iter().map(Vec::as_slice).collect();
    let responder_id = der::context_constructed(2, &der::octet_string(responder.key_hash));
    let extensions = nonce_extension
        .map(|ext| der::context_constructed(1, &der::sequence(&[ext])))
        .unwrap_or_default();
    let tbs = der::sequence(&[
        &responder_id,
        &der::generalized_time(produced_at),
        &der::sequence(&singles),
        &extensions,
    ]);
    let algorithm = responder.key.x509_signature_algorithm();
    let signature = responder.key.sign_x509(&tbs)?;
    let certs = der::context_constructed(0, &der::tlv(0x30, &responder.certificates.concat()));
    let basic = der::sequence(&[&tbs, &algorithm, &der::bit_string(&signature), &certs]);
    let response_bytes =
        der::sequence(&[&der::oid(der::oid::OCSP_BASIC), &der::octet_string(&basic)]);
    Ok(der::sequence(&[
        &der::enumerated(ResponseStatus::Successful as u8),
        &der::context_constructed(0, &response_bytes),
    ]))
}

fn single_response(single: &SingleResponse<'_>) -> Vec<u8> {
    let status = match single.status {
        CertStatus::Good => der::context_primitive(0, &[]),
        CertStatus::Revoked { at, reason } => {
            let reason = reason
                .map(|code| der::context_constructed(0, &der::enumerated(code)))
                .unwrap_or_default();
            der::context_constructed(1, &[der::generalized_time(at), reason].concat())
        }
        CertStatus::Unknown => der::context_primitive(2, &[]),
    };
    der::sequence(&[
        single.cert_id_der,
        &status,
        &der::generalized_time(single.this_update),
        &der::context_constructed(0, &der::generalized_time(single.next_update)),
    ])
}

/// Writes a request about one certificate, as a client sends it. `nonce`, when given, is
/// wrapped in an OCTET STRING as RFC 8954 specifies.
pub fn build_request(
    issuer: &IssuerIdentity,
    serial: &[u8],
    hash: CertIdHash,
    nonce: Option<&[u8]>,
) -> Vec<u8> {
    let cert_id = der::sequence(&[
        &der::sequence(&[&der::oid(hash.oid()), &der::null()]),
        &der::octet_string(&issuer.name_hash(hash)),
        &der::octet_string(&issuer.key_hash(hash)),
        &der::integer_unsigned(serial),
    ]);
    let extensions = nonce
        .map(|n| {
            der::context_constructed(
                2,
                &der::sequence(&[&der::extension(
                    der::oid::OCSP_NONCE,
                    false,
                    &der::octet_string(n),
                )]),
            )
        })
        .unwrap_or_default();
    let tbs = der::sequence(&[&der::sequence(&[&der::sequence(&[&cert_id])]), &extensions]);
    der::sequence(&[&tbs])
}

/// A response as a client reads it, before its signature is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedResponse {
    pub status: ResponseStatus,
    /// Empty unless the status is successful.
    pub responses: Vec<ParsedSingleResponse>,
    /// The nonce's extension value, when the response carries one.
    pub nonce: Option<Vec<u8>>,
    /// The signed `ResponseData`, whole.
    pub tbs_der: Vec<u8>,
    /// The `AlgorithmIdentifier`, whole.
    pub signature_algorithm_der: Vec<u8>,
    /// The signature bytes (BIT STRING content after the unused-bits octet).
    pub signature: Vec<u8>,
    /// The certificates sent with the response, DER.
    pub certificates: Vec<Vec<u8>>,
}

/// One status in a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedSingleResponse {
    pub cert_id_der: Vec<u8>,
    pub status: CertStatus,
    pub this_update: OffsetDateTime,
    pub next_update: Option<OffsetDateTime>,
}

/// Parses an `OCSPResponse`.
pub fn parse_response(input: &[u8]) -> Result<ParsedResponse> {
    let what = "OCSP response";
    let bad = |detail: &str| Error::DerMalformed {
        what,
        detail: detail.into(),
    };
    let mut outer = Reader::new(input, what);
    let mut response = outer.read_sequence()?;
    outer.finish()?;
    let code = match response.read_expected(der::tag::ENUMERATED, "ENUMERATED")? {
        [code] => *code,
        _ => return Err(bad("response status is not one octet")),
    };
    let status = ResponseStatus::from_code(code).ok_or_else(|| bad("unknown response status"))?;
    let mut parsed = ParsedResponse {
        status,
        responses: Vec::new(),
        nonce: None,
        tbs_der: Vec::new(),
        signature_algorithm_der: Vec::new(),
        signature: Vec::new(),
        certificates: Vec::new(),
    };
    if status != ResponseStatus::Successful {
        response.finish()?;
        return Ok(parsed);
    }
    let mut explicit = Reader::new(response.read_expected(0xa0, "responseBytes")?, what);
    response.finish()?;
    let mut bytes = explicit.read_sequence()?;
    explicit.finish()?;
    if bytes.read_oid()? != der::oid::OCSP_BASIC {
        return Err(bad("response type is not id-pkix-ocsp-basic"));
    }
    let basic_der = bytes.read_octet_string()?;
    bytes.finish()?;
    let mut basic_outer = Reader::new(basic_der, what);
    let mut basic = basic_outer.read_sequence()?;
    basic_outer.finish()?;
    let tbs_der = basic.read_raw()?;
    parsed.tbs_der = tbs_der.to_vec();
    parsed.signature_algorithm_der = basic.read_raw()?.to_vec();
    match basic.read_expected(der::tag::BIT_STRING, "BIT STRING")? {
        [0, signature @ ..] => parsed.signature = signature.to_vec(),
        _ => return Err(bad("signature BIT STRING has unused bits")),
    }
    if basic.peek_tag() == Some(0xa0) {
        let mut explicit = Reader::new(basic.read_tlv()?.1, what);
        let mut certs = explicit.read_sequence()?;
        while !certs.is_empty() {
            parsed.certificates.push(certs.read_raw()?.to_vec());
        }
    }
    basic.finish()?;

    let mut tbs_outer = Reader::new(tbs_der, what);
    let mut tbs = tbs_outer.read_sequence()?;
    if tbs.peek_tag() == Some(0xa0) {
        tbs.read_tlv()?;
    }
    tbs.read_tlv()?; // responderID
    tbs.read_expected(der::tag::GENERALIZED_TIME, "producedAt")?;
    let mut singles = tbs.read_sequence()?;
    while !singles.is_empty() {
        let mut single = singles.read_sequence()?;
        let cert_id_der = single.read_raw()?.to_vec();
        let status = match single.read_tlv()? {
            (0x80, _) => CertStatus::Good,
            (0x82, _) => CertStatus::Unknown,
            (0xa1, content) => {
                let mut info = Reader::new(content, what);
                let at = read_generalized_time(&mut info)?;
                let reason = if info.peek_tag() == Some(0xa0) {
                    let mut explicit = Reader::new(info.read_tlv()?.1, what);
                    match explicit.read_expected(der::tag::ENUMERATED, "CRLReason")? {
                        [code] => Some(*code),
                        _ => return Err(bad("CRLReason is not one octet")),
                    }
                } else {
                    None
                };
                CertStatus::Revoked { at, reason }
            }
            _ => return Err(bad("unknown certificate status")),
        };
        let this_update = read_generalized_time(&mut single)?;
        let next_update = if single.peek_tag() == Some(0xa0) {
            let mut explicit = Reader::new(single.read_tlv()?.1, what);
            Some(read_generalized_time(&mut explicit)?)
        } else {
            None
        };
        parsed.responses.push(ParsedSingleResponse {
            cert_id_der,
            status,
            this_update,
            next_update,
        });
    }
    if tbs.peek_tag() == Some(0xa1) {
        let mut explicit = Reader::new(tbs.read_tlv()?.1, what);
        let mut extensions = explicit.read_sequence()?;
        while !extensions.is_empty() {
            let mut extension = extensions.read_sequence()?;
            let oid = extension.read_oid()?;
            if extension.peek_tag() == Some(der::tag::BOOLEAN) {
                extension.read_tlv()?;
            }
            let value = extension.read_octet_string()?;
            if oid == der::oid::OCSP_NONCE {
                parsed.nonce = Some(value.to_vec());
            }
        }
    }
    Ok(parsed)
}

/// The CertID a client sends for `serial` of `issuer`, to find its answer in a response.
pub fn cert_id_der(issuer: &IssuerIdentity, serial: &[u8], hash: CertIdHash) -> Vec<u8> {
    der::sequence(&[
        &der::sequence(&[&der::oid(hash.oid()), &der::null()]),
        &der::octet_string(&issuer.name_hash(hash)),
        &der::octet_string(&issuer.key_hash(hash)),
        &der::integer_unsigned(serial),
    ])
}

fn read_generalized_time(reader: &mut Reader<'_>) -> Result<OffsetDateTime> {
    let text = reader.read_expected(der::tag::GENERALIZED_TIME, "GeneralizedTime")?;
    let bad = || Error::DerMalformed {
        what: "OCSP response",
        detail: format!("GeneralizedTime {:?}", String::from_utf8_lossy(text)),
    };
    let digits = text.get(..14).ok_or_else(bad)?;
    if !digits.iter().all(u8::is_ascii_digit) || text.last() != Some(&b'Z') {
        return Err(bad());
    }
    let number = |range: std::ops::Range<usize>| -> i32 {
        digits[range]
            .iter()
            .fold(0, |acc, d| acc * 10 + i32::from(d - b'0'))
    };
    let month = u8::try_from(number(4..6))
        .ok()
        .and_then(|m| time::Month::try_from(m).ok())
        .ok_or_else(bad)?;
    let date = time::Date::from_calendar_date(
        number(0..4),
        month,
        u8::try_from(number(6..8)).map_err(|_| bad())?,
    )
    .map_err(|_| bad())?;
    let clock = time::Time::from_hms(
        u8::try_from(number(8..10)).map_err(|_| bad())?,
        u8::try_from(number(10..12)).map_err(|_| bad())?,
        u8::try_from(number(12..14)).map_err(|_| bad())?,
    )
    .map_err(|_| bad())?;
    Ok(date.with_time(clock).assume_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::KeyAlgorithm;

    fn issuer() -> IssuerIdentity {
        let key = PrivateKey::generate(KeyAlgorithm::EcP256).unwrap();
        let later = OffsetDateTime::now_utc() + time::Duration::days(1);
        let ca = crate::cert::create_root("OCSP Test CA", &key, later).unwrap();
        IssuerIdentity::from_certificate(&ca).unwrap()
    }

    #[test]
    fn requests_round_trip_with_and_without_a_nonce() {
        let issuer = issuer();
        for nonce in [None, Some(&[7u8; 16][..])] {
            let der = build_request(&issuer, &[0x01, 0x02], CertIdHash::Sha1, nonce);
            let request = OcspRequest::from_der(&der).unwrap();
            assert_eq!(request.cert_ids.len(), 1);
            let id = request.cert_ids[0];
            assert!(id.is_issued_by(&issuer));
            assert_eq!(id.serial, &[0x01, 0x02]);
            assert_eq!(id.der, cert_id_der(&issuer, &[1, 2], CertIdHash::Sha1));
            assert_eq!(request.nonce_extension.is_some(), nonce.is_some());
        }
        let other = self::issuer();
        let der = build_request(&other, &[1], CertIdHash::Sha256, None);
        assert!(!OcspRequest::from_der(&der).unwrap().cert_ids[0].is_issued_by(&issuer));
    }

    #[test]
    fn every_truncation_and_garbage_is_refused_without_panicking() {
        let issuer = issuer();
        let der = build_request(&issuer, &[0x42; 16], CertIdHash::Sha256, Some(&[1; 16]));
        for len in 0..der.len() {
            assert!(OcspRequest::from_der(&der[..len]).is_err(), "prefix {len}");
        }
        let mut trailing = der.clone();
        trailing.push(0);
        assert!(OcspRequest::from_der(&trailing).is_err());
        for bad in [&b"GET / HTTP/1.1"[..], &[0x30, 0x80, 0, 0], &[0x30, 0x00]] {
            assert!(OcspRequest::from_der(bad).is_err());
        }
    }

    #[test]
    fn responses_parse_back_with_status_reason_and_nonce() {
        let issuer = issuer();
        let key = PrivateKey::generate(KeyAlgorithm::EcP256).unwrap();
        let id = cert_id_der(&issuer, &[9], CertIdHash::Sha1);
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let revoked = SingleResponse {
            cert_id_der: &id,
            status: CertStatus::Revoked {
                at: now,
                reason: Some(1),
            },
            this_update: now,
            next_update: now + time::Duration::hours(1),
        };
        let nonce = crate::der::extension(
            crate::der::oid::OCSP_NONCE,
            false,
            &crate::der::octet_string(&[3; 16]),
        );
        let responder = ResponderIdentity {
            key: &key,
            key_hash: &[0; 20],
            certificates: &[],
        };
        let der = build_response(&responder, now, &[revoked], Some(&nonce)).unwrap();
        let parsed = parse_response(&der).unwrap();
        assert_eq!(parsed.status, ResponseStatus::Successful);
        assert_eq!(parsed.responses[0].cert_id_der, id);
        assert_eq!(
            parsed.responses[0].status,
            CertStatus::Revoked {
                at: now,
                reason: Some(1)
            }
        );
        assert_eq!(parsed.nonce, Some(crate::der::octet_string(&[3; 16])));
        let refused = parse_response(&error_response(ResponseStatus::Unauthorized)).unwrap();
        assert_eq!(refused.status, ResponseStatus::Unauthorized);
    }
}
