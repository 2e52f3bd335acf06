//! Certificate revocation lists (RFC 5280 section 5): full CRLs and delta CRLs, and the
//! distribution point extensions that lead relying parties to them.
//!
//! The encoder is written by hand rather than with a general ASN.1 builder because a CA's CRL can
//! hold a million entries: each entry is appended once into one buffer, and the only other copy
//! is the final wrapping. The distribution point URL is written from the same string into the
//! certificates' CRL Distribution Points and the CRL's Issuing Distribution Point, so the two match
//! byte for byte, as `openssl verify -crl_check` requires.

use time::OffsetDateTime;

use crate::der;
use crate::error::{Error, Result};
use crate::issuer::IssuerIdentity;
use crate::signer::Signer;

/// One revoked certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlEntry {
    /// Big-endian magnitude of the serial number.
    pub serial: Vec<u8>,
    pub revoked_at: OffsetDateTime,
    /// RFC 5280 CRLReason; 0 (unspecified) is left out of the entry, as 5.3.1 recommends.
    pub reason_code: u8,
}

/// What a CRL says of one revoked certificate. [`CrlEntry`] is one; a caller that keeps its
/// revoked certificates in a form of its own (a CA holding a million of them in memory) lists
/// them as they are, without a copy per CRL.
pub trait CrlListed {
    /// Big-endian magnitude of the serial number.
    fn serial(&self) -> &[u8];
    fn revoked_at(&self) -> OffsetDateTime;
    /// RFC 5280 CRLReason; 0 (unspecified) is left out of the entry.
    fn reason_code(&self) -> u8;
}

impl CrlListed for CrlEntry {
    fn serial(&self) -> &[u8] {
        &self.serial
    }
    fn revoked_at(&self) -> OffsetDateTime {
        self.revoked_at
    }
    fn reason_code(&self) -> u8 {
        self.reason_code
    }
}

/// Whether a CRL is complete or a delta on top of a complete one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CrlScope {
    /// A complete CRL; `freshest` is the delta CRL's URL when deltas are published.
    Full { freshest: Option<String> },
    /// A delta CRL listing what changed since the complete CRL numbered `base_number`.
    Delta { base_number: u64 },
}

/// What a CRL says besides its entries.
#[derive(Debug, Clone)]
pub struct CrlParams<'a> {
    /// The CRL Number: strictly increasing across every CRL this CA publishes.
    pub number: u64,
    pub this_update: OffsetDateTime,
    pub next_update: OffsetDateTime,
    /// The Issuing Distribution Point's URLs: every URL certificates carry for this CRL (a
    /// shard's, under each base URL it was ever published at). Empty for a CRL of every
    /// certificate the issuer signed, which has no Issuing Distribution Point: it is then
    /// authoritative for any certificate of the issuer, whatever URL that one carries.
    pub distribution_points: &'a [String],
    pub scope: CrlScope,
}

/// Builds and signs a CRL with the issuer's key. Returns DER.
///
/// `entries` is walked twice (lengths first, then the bytes), hence `Clone`: a slice, or a
/// filter over the caller's own records.
pub fn build_crl<'e, E, I>(
    issuer: &IssuerIdentity,
    key: &dyn Signer,
    params: &CrlParams<'_>,
    entries: I,
) -> Result<Vec<u8>>
where
    E: CrlListed + 'e,
    I: IntoIterator<Item = &'e E> + Clone,
{
    if params.next_update <= params.this_update {
        return Err(Error::CertificateGeneration(
            "CRL nextUpdate must be after thisUpdate".into(),
        ));
    }
    let algorithm = key.x509_signature_algorithm();
    let extensions = der::context_constructed(0, &crl_extensions(issuer, params));
    let head = [
        der::integer_u64(1),
        algorithm.clone(),
        issuer.subject_der.clone(),
        der::x509_time(params.this_update),
        der::x509_time(params.next_update),
    ]
    .concat();
    // The reason extensions, made once per code rather than once per entry.
    // RFC 5280 5.3.1 codes run to 10 (aACompromise); others are encoded one by one.
    let reasons: Vec<Vec<u8>> = (0..=10u8)
        .map(|code| {
            if code == 0 {
                Vec::new()
            } else {
                der::sequence(&[&der::extension(
                    der::oid::REASON_CODE,
                    false,
                    &der::enumerated(code),
                )])
            }
        })
        .collect();
    let reason_of = |code: u8| -> std::borrow::Cow<'_, [u8]> {
        match reasons.get(usize::from(code)) {
            Some(bytes) => std::borrow::Cow::Borrowed(bytes.as_slice()),
            None => std::borrow::Cow::Owned(der::sequence(&[&der::extension(
                der::oid::REASON_CODE,
                false,
                &der::enumerated(code),
            )])),
        }
    };
    // Lengths first, so that every byte is written once, in place: a million entries make a
    // CRL of about 49 MB, and each copy of it costs memory and page faults.
    let entry_content_len = |entry: &E| {
        der::integer_unsigned_len(entry.serial())
            + der::x509_time_len(entry.revoked_at())
            + reason_of(entry.reason_code()).len()
    };
    let body_len: usize = entries
        .clone()
        .into_iter()
        .map(|entry| {
            let content = entry_content_len(entry);
            1 + der::length_len(content) + content
        })
        .sum();
    // RFC 5280 5.1.2.6: no revokedCertificates at all, rather than an empty SEQUENCE. Every
    // entry has content, so the body is empty exactly when there is no entry.
    let listed = body_len > 0;
    let revoked_len = if !listed {
        0
    } else {
        1 + der::length_len(body_len) + body_len
    };
    let tbs_content_len = head.len() + revoked_len + extensions.len();
    let tbs_len = 1 + der::length_len(tbs_content_len) + tbs_content_len;
    // Room for the outer SEQUENCE's header, written once the signature's length is known.
    const OUTER_HEADER_MAX: usize = 10;
    let mut out = Vec::with_capacity(OUTER_HEADER_MAX + tbs_len + algorithm.len() + 80);
    out.resize(OUTER_HEADER_MAX, 0);
    out.push(0x30);
    der::push_length(&mut out, tbs_content_len);
    out.extend_from_slice(&head);
    if listed {
        out.push(0x30);
        der::push_length(&mut out, body_len);
        for entry in entries {
            out.push(0x30);
            der::push_length(&mut out, entry_content_len(entry));
            der::push_integer_unsigned(&mut out, entry.serial());
            der::push_x509_time(&mut out, entry.revoked_at());
            out.extend_from_slice(&reason_of(entry.reason_code()));
        }
    }
    out.extend_from_slice(&extensions);
    let tbs = out.get(OUTER_HEADER_MAX..).unwrap_or_default();
    if tbs.len() != tbs_len {
        return Err(Error::CertificateGeneration(format!(
            "CRL encoding: {} bytes written for a TBS of {tbs_len}",
            tbs.len()
        )));
    }
    let signature = der::bit_string(&key.sign_x509(tbs)?);
    let mut header = vec![0x30];
    der::push_length(&mut header, tbs_len + algorithm.len() + signature.len());
    let start = OUTER_HEADER_MAX - header.len();
    out[start..OUTER_HEADER_MAX].copy_from_slice(&header);
    out.extend_from_slice(&algorithm);
    out.extend_from_slice(&signature);
    out.drain(..start);
    Ok(out)
}

fn crl_extensions(issuer: &IssuerIdentity, params: &CrlParams<'_>) -> Vec<u8> {
    let mut extensions = vec![
        der::extension(
            der::oid::AUTHORITY_KEY_IDENTIFIER,
            false,
            &issuer.authority_key_identifier(),
        ),
        der::extension(
            der::oid::CRL_NUMBER,
            false,
            &der::integer_u64(params.number),
        ),
    ];
    if !params.distribution_points.is_empty() {
        // Critical, as RFC 5280 5.2.5 requires: a client that cannot read the scope must not
        // take this CRL for another one.
        extensions.push(der::extension(
            der::oid::ISSUING_DISTRIBUTION_POINT,
            true,
            &der::sequence(&[&distribution_point_name(params.distribution_points)]),
        ));
    }
    match &params.scope {
        CrlScope::Full {
            freshest: Some(url),
        } => extensions.push(der::extension(
            der::oid::FRESHEST_CRL,
            false,
            &distribution_points(url),
        )),
        CrlScope::Full { freshest: None } => {}
        CrlScope::Delta { base_number } => extensions.push(der::extension(
            der::oid::DELTA_CRL_INDICATOR,
            true,
            &der::integer_u64(*base_number),
        )),
    }
    der::tlv(0x30, &extensions.concat())
}

/// `distributionPoint [0] { fullName [0] { uniformResourceIdentifier [6] url, ... } }`, shared
/// by the IDP of CRLs and the CDP of certificates so that a URL is the same bytes in both.
fn distribution_point_name<S: AsRef<str>>(urls: &[S]) -> Vec<u8> {
    let names: Vec<u8> = urls
        .iter()
        .flat_map(|url| der::context_primitive(6, url.as_ref().as_bytes()))
        .collect();
    der::context_constructed(0, &der::context_constructed(0, &names))
}

/// The value of a CRL Distribution Points or Freshest CRL extension with one URL.
fn distribution_points(url: &str) -> Vec<u8> {
    der::sequence(&[&der::sequence(&[&distribution_point_name(&[url])])])
}

/// Where relying parties find revocation information for a certificate, written into it as
/// extensions: CRL Distribution Points, Freshest CRL and Authority Information Access.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RevocationUrls {
    /// The complete CRL.
    pub crl: Option<String>,
    /// The delta CRL (Freshest CRL extension).
    pub delta_crl: Option<String>,
    /// The OCSP responder.
    pub ocsp: Option<String>,
    /// Where the issuing CA's certificate can be downloaded (AIA caIssuers).
    pub ca_issuers: Option<String>,
}

impl RevocationUrls {
    /// The extensions, as `(OID arcs, DER value)` pairs, all non-critical.
    pub(crate) fn extensions(&self) -> Vec<(&'static [u64], Vec<u8>)> {
        let mut out: Vec<(&'static [u64], Vec<u8>)> = Vec::new();
        if let Some(url) = &self.crl {
            out.push((&[2, 5, 29, 31], distribution_points(url)));
        }
        if let Some(url) = &self.delta_crl {
            out.push((&[2, 5, 29, 46], distribution_points(url)));
        }
        let mut access = Vec::new();
        if let Some(url) = &self.ocsp {
            access.push(der::sequence(&[
                &der::oid(der::oid::AD_OCSP),
                &der::context_primitive(6, url.as_bytes()),
            ]));
        }
        if let Some(url) = &self.ca_issuers {
            access.push(der::sequence(&[
                &der::oid(der::oid::AD_CA_ISSUERS),
                &der::context_primitive(6, url.as_bytes()),
            ]));
        }
        if !access.is_empty() {
            out.push((
                &[1, 3, 6, 1, 5, 5, 7, 1, 1],
                der::tlv(0x30, &access.concat()),
            ));
        }
        out
    }
}

/// How many certificates a DER CRL lists, counted without decoding them: no memory per entry,
/// so a tool can count a million-entry CRL without a parser's copy of every entry.
pub fn count_entries(der_bytes: &[u8]) -> Result<usize> {
    use der::Reader;
    let mut outer = Reader::new(der_bytes, "CRL");
    let list = outer.read_expected(0x30, "CertificateList")?;
    let mut list = Reader::new(list, "CertificateList");
    let tbs = list.read_expected(0x30, "TBSCertList")?;
    let mut tbs = Reader::new(tbs, "TBSCertList");
    // version (optional), signature, issuer, thisUpdate, nextUpdate (optional).
    if tbs.peek_tag() == Some(0x02) {
        tbs.read_tlv()?;
    }
    tbs.read_expected(0x30, "signature")?;
    tbs.read_expected(0x30, "issuer")?;
    tbs.read_tlv()?;
    if matches!(tbs.peek_tag(), Some(0x17 | 0x18)) {
        tbs.read_tlv()?;
    }
    // revokedCertificates is absent when nothing is listed; the extensions are [0].
    if tbs.peek_tag() != Some(0x30) {
        return Ok(0);
    }
    let entries = tbs.read_expected(0x30, "revokedCertificates")?;
    let mut entries = Reader::new(entries, "revokedCertificates");
    let mut count = 0;
    while !entries.is_empty() {
        entries.read_expected(0x30, "a revoked certificate")?;
        count += 1;
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PrivateKey;
    use crate::key::KeyAlgorithm;
    use x509_parser::prelude::*;
    use x509_parser::revocation_list::CertificateRevocationList;

    fn ca() -> (Vec<u8>, PrivateKey) {
        let key = PrivateKey::generate(KeyAlgorithm::EcP256).unwrap();
        let later = OffsetDateTime::now_utc() + ::time::Duration::days(1);
        (
            crate::cert::create_root("CRL Test CA", &key, later).unwrap(),
            key,
        )
    }

    #[test]
    fn full_crl_parses_and_its_signature_verifies() {
        let (ca, key) = ca();
        let issuer = IssuerIdentity::from_certificate(&ca).unwrap();
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let entries = vec![
            CrlEntry {
                serial: vec![0x80, 0x01],
                revoked_at: now,
                reason_code: 1,
            },
            CrlEntry {
                serial: vec![0x05],
                revoked_at: now,
                reason_code: 0,
            },
        ];
        let params = CrlParams {
            number: 7,
            this_update: now,
            next_update: now + ::time::Duration::hours(24),
            distribution_points: &[
                "http://ca.internal:8080/1.0/crls/3".to_owned(),
                "http://old.internal/1.0/crls/3".to_owned(),
            ],
            scope: CrlScope::Full {
                freshest: Some("http://ca.internal:8080/1.0/crl/delta".into()),
            },
        };
        let der = build_crl(&issuer, &key, &params, &entries).unwrap();
        let (rest, crl) = CertificateRevocationList::from_der(&der).unwrap();
        assert!(rest.is_empty());
        let (_, ca_cert) = parse_x509_certificate(&ca).unwrap();
        crl.verify_signature(ca_cert.public_key()).unwrap();
        assert_eq!(crl.crl_number().map(|n| n.to_u64_digits()), Some(vec![7]));
        let revoked: Vec<_> = crl.iter_revoked_certificates().collect();
        assert_eq!(revoked.len(), 2);
        assert_eq!(count_entries(&der).unwrap(), 2);
        assert!(count_entries(&der[..der.len() - 1]).is_err(), "a cut CRL");
        assert_eq!(revoked[0].raw_serial(), &[0x00, 0x80, 0x01]);
        assert_eq!(
            revoked[0].reason_code().map(|(_, r)| r.0),
            Some(1),
            "keyCompromise"
        );
        assert!(revoked[1].reason_code().is_none());
        assert_eq!(crl.issuer().as_raw(), issuer.subject_der.as_slice());
        // The IDP names every URL, each as certificates carry it.
        let idp = crl
            .extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == "2.5.29.28")
            .expect("an issuing distribution point");
        assert!(idp.critical);
        let mut names = Vec::new();
        for url in [
            "http://ca.internal:8080/1.0/crls/3",
            "http://old.internal/1.0/crls/3",
        ] {
            names.extend(der::context_primitive(6, url.as_bytes()));
        }
        assert_eq!(
            idp.value,
            der::sequence(&[&der::context_constructed(
                0,
                &der::context_constructed(0, &names)
            )])
            .as_slice()
        );
        let cdp = distribution_points("http://ca.internal:8080/1.0/crls/3");
        let name = der::context_primitive(6, b"http://ca.internal:8080/1.0/crls/3");
        assert!(cdp.windows(name.len()).any(|w| w == name.as_slice()));
    }

    #[test]
    fn an_empty_crl_omits_the_entry_list_and_a_delta_names_its_base() {
        let (ca, key) = ca();
        let issuer = IssuerIdentity::from_certificate(&ca).unwrap();
        let now = OffsetDateTime::now_utc();
        let params = CrlParams {
            number: 9,
            this_update: now,
            next_update: now + ::time::Duration::hours(1),
            distribution_points: &[],
            scope: CrlScope::Delta { base_number: 8 },
        };
        let der = build_crl(&issuer, &key, &params, &[] as &[CrlEntry]).unwrap();
        let (_, crl) = CertificateRevocationList::from_der(&der).unwrap();
        assert_eq!(crl.iter_revoked_certificates().count(), 0);
        assert_eq!(count_entries(&der).unwrap(), 0);
        assert!(
            crl.extensions()
                .iter()
                .all(|e| e.oid.to_id_string() != "2.5.29.28"),
            "a CRL of every certificate has no issuing distribution point"
        );
        let delta = crl
            .extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == "2.5.29.27")
            .unwrap();
        assert!(delta.critical);
        assert_eq!(delta.value, &[0x02, 0x01, 0x08]);
        let bad = CrlParams {
            next_update: now,
            ..params
        };
        assert!(build_crl(&issuer, &key, &bad, &[] as &[CrlEntry]).is_err());
    }
}
