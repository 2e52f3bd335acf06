//! Checking a certificate the way a relying party does: its chain to a trusted root, and its
//! revocation status from a CRL or an OCSP response. Fetching is the caller's business; these
//! functions only judge bytes.

use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{DistributionPointName, GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;

use crate::crl::RevocationUrls;
use crate::error::{Error, Result};
use crate::issuer::{CertIdHash, IssuerIdentity};
use crate::ocsp::{self, CertStatus, ResponseStatus};

/// A chain that verified: each certificate, leaf first, up to and including the root.
#[derive(Debug, Clone)]
pub struct VerifiedChain {
    pub certificates: Vec<Vec<u8>>,
}

impl VerifiedChain {
    /// The leaf's issuer (DER).
    pub fn issuer(&self) -> &[u8] {
        self.certificates
            .get(1)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// The leaf (DER).
    pub fn leaf(&self) -> &[u8] {
        self.certificates
            .first()
            .map(Vec::as_slice)
            .unwrap_or_default()
    }
}

/// The status a CRL or an OCSP response gives a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevocationStatus {
    Good,
    Revoked {
        at: OffsetDateTime,
        reason: Option<u8>,
    },
    Unknown,
}

fn parse(der: &[u8]) -> Result<X509Certificate<'_>> {
    x509_parser::parse_x509_certificate(der)
        .map(|(_, cert)| cert)
        .map_err(|e| Error::CertificateMalformed(e.to_string()))
}

fn invalid(detail: impl Into<String>) -> Error {
    Error::ChainInvalid(detail.into())
}

/// Builds and checks the chain of `presented[0]` using the other presented certificates as
/// intermediates and `roots` as trust anchors: names link, signatures verify, every certificate
/// is valid at `now`, and every issuer is a CA.
pub fn verify_chain(
    presented: &[Vec<u8>],
    roots: &[Vec<u8>],
    now: OffsetDateTime,
) -> Result<VerifiedChain> {
    let leaf = presented
        .first()
        .ok_or_else(|| invalid("no certificate to verify"))?;
    let at = x509_parser::time::ASN1Time::from(now);
    let mut chain = vec![leaf.clone()];
    let mut current = leaf.clone();
    // A chain longer than this is a loop or an attack; this CA's are three long.
    for _ in 0..8 {
        let cert = parse(&current)?;
        if !cert.validity().is_valid_at(at) {
            return Err(invalid(format!(
                "{} is not valid now (valid {} to {})",
                cert.subject(),
                cert.validity().not_before,
                cert.validity().not_after
            )));
        }
        if roots.iter().any(|r| r.as_slice() == current.as_slice()) {
            return Ok(VerifiedChain {
                certificates: chain,
            });
        }
        let issuer = roots
            .iter()
            .chain(presented.iter().skip(1))
            .find(|candidate| {
                parse(candidate).is_ok_and(|c| {
                    c.subject().as_raw() == cert.issuer().as_raw()
                        && cert.verify_signature(Some(c.public_key())).is_ok()
                })
            })
            .ok_or_else(|| {
                invalid(format!(
                    "no trusted issuer found for {}: unable to reach a root",
                    cert.subject()
                ))
            })?
            .clone();
        let issuer_cert = parse(&issuer)?;
        let is_ca = issuer_cert
            .basic_constraints()
            .ok()
            .flatten()
            .is_some_and(|bc| bc.value.ca);
        if !is_ca {
            return Err(invalid(format!(
                "{} signed {} but is not a CA",
                issuer_cert.subject(),
                cert.subject()
            )));
        }
        chain.push(issuer.clone());
        current = issuer;
    }
    Err(invalid("the chain is longer than 8 certificates"))
}

/// [`verify_chain`] for a certificate that authenticates a client, as Go's verifier checks it
/// with `ExtKeyUsageClientAuth` (so step-ca for X5C tokens): besides the links, signatures,
/// validity and CA flags, every certificate of the chain that limits its extended key usage
/// allows client authentication (or any usage), and no CA has more CAs below it than its path
/// length constraint allows.
pub fn verify_chain_for_client_auth(
    presented: &[Vec<u8>],
    roots: &[Vec<u8>],
    now: OffsetDateTime,
) -> Result<VerifiedChain> {
    let chain = verify_chain(presented, roots, now)?;
    for (position, der) in chain.certificates.iter().enumerate() {
        let cert = parse(der)?;
        let eku = cert
            .extended_key_usage()
            .map_err(|e| invalid(format!("{}: extended key usage: {e}", cert.subject())))?;
        if let Some(eku) = eku
            && !eku.value.client_auth
            && !eku.value.any
        {
            return Err(invalid(format!(
                "{} is not valid for client authentication (its extended key usage excludes it)",
                cert.subject()
            )));
        }
        // The CAs between this issuer and the leaf.
        let below = position.saturating_sub(1);
        if position > 0
            && let Ok(Some(constraints)) = cert.basic_constraints()
            && let Some(limit) = constraints.value.path_len_constraint
            && below > limit as usize
        {
            return Err(invalid(format!(
                "{} allows {limit} CA certificates below it, the chain has {below}",
                cert.subject()
            )));
        }
    }
    Ok(chain)
}

/// The CRL and OCSP URLs a certificate carries.
pub fn revocation_urls(der: &[u8]) -> Result<RevocationUrls> {
    let cert = parse(der)?;
    let mut urls = RevocationUrls::default();
    let first_uri = |names: &[GeneralName<'_>]| {
        names.iter().find_map(|n| match n {
            GeneralName::URI(uri) => Some((*uri).to_string()),
            _ => None,
        })
    };
    for extension in cert.extensions() {
        match extension.parsed_extension() {
            ParsedExtension::CRLDistributionPoints(points) => {
                urls.crl = points.iter().find_map(|p| match &p.distribution_point {
                    Some(DistributionPointName::FullName(names)) => first_uri(names),
                    _ => None,
                });
            }
            ParsedExtension::AuthorityInfoAccess(aia) => {
                for access in &aia.accessdescs {
                    let id = access.access_method.to_id_string();
                    let uri = first_uri(std::slice::from_ref(&access.access_location));
                    match id.as_str() {
                        "1.3.6.1.5.5.7.48.1" => urls.ocsp = urls.ocsp.take().or(uri),
                        "1.3.6.1.5.5.7.48.2" => urls.ca_issuers = urls.ca_issuers.take().or(uri),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Ok(urls)
}

/// When a CRL was made and when it expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrlValidity {
    pub this_update: OffsetDateTime,
    pub next_update: Option<OffsetDateTime>,
}

/// Checks that `crl_der` is a CRL issued by `issuer_der` whose signature verifies with its key,
/// and tells its validity period (not compared with any clock).
pub fn check_crl_signature(crl_der: &[u8], issuer_der: &[u8]) -> Result<CrlValidity> {
    use x509_parser::revocation_list::CertificateRevocationList;
    let (_, crl) = CertificateRevocationList::from_der(crl_der)
        .map_err(|e| Error::CrlInvalid(format!("not a CRL: {e}")))?;
    check_parsed_crl(&crl, issuer_der)
}

fn check_parsed_crl(
    crl: &x509_parser::revocation_list::CertificateRevocationList<'_>,
    issuer_der: &[u8],
) -> Result<CrlValidity> {
    let bad = |detail: String| Error::CrlInvalid(detail);
    let issuer = parse(issuer_der)?;
    if crl.issuer().as_raw() != issuer.subject().as_raw() {
        return Err(bad(format!(
            "the CRL is issued by {}, not by {}",
            crl.issuer(),
            issuer.subject()
        )));
    }
    crl.verify_signature(issuer.public_key())
        .map_err(|_| bad("the CRL's signature does not verify with its issuer's key".into()))?;
    Ok(CrlValidity {
        this_update: crl.last_update().to_datetime(),
        next_update: crl.next_update().map(|t| t.to_datetime()),
    })
}

/// Looks `leaf` up in a complete CRL signed by `issuer`, after checking the CRL's signature and
/// that it is current.
pub fn crl_status(
    crl_der: &[u8],
    issuer_der: &[u8],
    leaf_der: &[u8],
    now: OffsetDateTime,
) -> Result<RevocationStatus> {
    use x509_parser::revocation_list::CertificateRevocationList;
    let bad = |detail: String| Error::CrlInvalid(detail);
    let (_, crl) =
        CertificateRevocationList::from_der(crl_der).map_err(|e| bad(format!("not a CRL: {e}")))?;
    let validity = check_parsed_crl(&crl, issuer_der)?;
    let leaf = parse(leaf_der)?;
    if validity.this_update > now {
        return Err(bad(format!(
            "the CRL is not valid before {}",
            validity.this_update
        )));
    }
    if let Some(next) = validity.next_update
        && next < now
    {
        return Err(bad(format!("the CRL expired at {next}")));
    }
    let serial = leaf.raw_serial();
    let found = crl
        .iter_revoked_certificates()
        .find(|entry| entry.raw_serial() == serial);
    Ok(match found {
        None => RevocationStatus::Good,
        Some(entry) => RevocationStatus::Revoked {
            at: entry.revocation_date.to_datetime(),
            reason: entry.reason_code().map(|(_, code)| code.0),
        },
    })
}

/// Judges an OCSP response about `leaf` from `issuer`'s responder: the status must be
/// successful, the signature must verify with the issuer's key or with a responder certificate
/// the issuer signed for OCSPSigning, the nonce (when one was sent) must come back, and the
/// answer must be current.
pub fn ocsp_status(
    response_der: &[u8],
    issuer_der: &[u8],
    leaf_der: &[u8],
    hash: CertIdHash,
    nonce: Option<&[u8]>,
    now: OffsetDateTime,
) -> Result<RevocationStatus> {
    let bad = |detail: String| Error::OcspInvalid(detail);
    let response = ocsp::parse_response(response_der)?;
    if response.status != ResponseStatus::Successful {
        return Err(bad(format!("the responder answered {:?}", response.status)));
    }
    let issuer = parse(issuer_der)?;
    let signer_der = match response.certificates.first() {
        Some(responder) => {
            let cert = parse(responder)?;
            if responder.as_slice() != issuer_der {
                cert.verify_signature(Some(issuer.public_key()))
                    .map_err(|_| {
                        bad("the responder certificate is not signed by the issuer".into())
                    })?;
                let delegated = cert
                    .extended_key_usage()
                    .ok()
                    .flatten()
                    .is_some_and(|eku| eku.value.ocsp_signing);
                if !delegated {
                    return Err(bad(
                        "the responder certificate lacks the OCSPSigning extended key usage".into(),
                    ));
                }
                if !cert
                    .validity()
                    .is_valid_at(x509_parser::time::ASN1Time::from(now))
                {
                    return Err(bad("the responder certificate is not valid now".into()));
                }
            }
            responder.clone()
        }
        None => issuer_der.to_vec(),
    };
    let signer = parse(&signer_der)?;
    let (_, algorithm) =
        x509_parser::x509::AlgorithmIdentifier::from_der(&response.signature_algorithm_der)
            .map_err(|e| bad(format!("signature algorithm: {e}")))?;
    let signature = x509_parser::asn1_rs::BitString::new(0, &response.signature);
    x509_parser::verify::verify_signature(
        signer.public_key(),
        &algorithm,
        &signature,
        &response.tbs_der,
    )
    .map_err(|_| bad("the response's signature does not verify".into()))?;
    if let Some(sent) = nonce {
        let expected = crate::der::octet_string(sent);
        if response.nonce.as_deref() != Some(expected.as_slice()) {
            return Err(bad(
                "the response does not carry the nonce that was sent".into()
            ));
        }
    }
    let identity = IssuerIdentity::from_certificate(issuer_der)?;
    let leaf = parse(leaf_der)?;
    let serial = crate::serial::SerialNumber::from_be_bytes(leaf.raw_serial());
    let wanted = ocsp::cert_id_der(&identity, serial.as_be_bytes(), hash);
    let single = response
        .responses
        .iter()
        .find(|r| r.cert_id_der == wanted)
        .ok_or_else(|| bad("the response says nothing about this certificate".into()))?;
    if single.this_update > now + time::Duration::minutes(5) {
        return Err(bad(format!(
            "the response is dated in the future ({})",
            single.this_update
        )));
    }
    if let Some(next) = single.next_update
        && next < now
    {
        return Err(bad(format!("the response expired at {next}")));
    }
    Ok(match single.status {
        CertStatus::Good => RevocationStatus::Good,
        CertStatus::Revoked { at, reason } => RevocationStatus::Revoked { at, reason },
        CertStatus::Unknown => RevocationStatus::Unknown,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{KeyAlgorithm, PrivateKey};
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyUsagePurpose,
    };

    /// A certificate for a new key, signed by `issuer` (self-signed when `None`).
    fn certificate(
        name: &str,
        ca: Option<u8>,
        eku: &[ExtendedKeyUsagePurpose],
        issuer: Option<(&[u8], &PrivateKey)>,
    ) -> (Vec<u8>, PrivateKey) {
        let key = PrivateKey::generate(KeyAlgorithm::EcP256).unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = match ca {
            Some(len) => IsCa::Ca(BasicConstraints::Constrained(len)),
            None => IsCa::NoCa,
        };
        params.key_usages = match ca {
            Some(_) => vec![KeyUsagePurpose::KeyCertSign],
            None => vec![KeyUsagePurpose::DigitalSignature],
        };
        params.extended_key_usages = eku.to_vec();
        let pair = key.to_rcgen().unwrap();
        let der = match issuer {
            None => params.self_signed(&pair).unwrap().der().to_vec(),
            Some((issuer_der, issuer_key)) => {
                let issuer_pair = issuer_key.to_rcgen().unwrap();
                let issuer =
                    Issuer::from_ca_cert_der(&issuer_der.to_vec().into(), issuer_pair).unwrap();
                params.signed_by(&pair, &issuer).unwrap().der().to_vec()
            }
        };
        (der, key)
    }

    #[test]
    fn client_chains_allow_client_authentication_at_every_level() {
        use ExtendedKeyUsagePurpose::{ClientAuth, ServerAuth};
        let now = OffsetDateTime::now_utc();
        let (root, root_key) = certificate("root", Some(1), &[], None);
        let roots = std::slice::from_ref(&root);
        let (leaf, _) = certificate("client", None, &[ClientAuth], Some((&root, &root_key)));
        assert!(verify_chain_for_client_auth(&[leaf], roots, now).is_ok());
        // No extended key usage at all allows every usage.
        let (plain, _) = certificate("plain", None, &[], Some((&root, &root_key)));
        assert!(verify_chain_for_client_auth(&[plain], roots, now).is_ok());
        let (server, _) = certificate("server", None, &[ServerAuth], Some((&root, &root_key)));
        let error = verify_chain_for_client_auth(&[server], roots, now).unwrap_err();
        assert!(
            error.to_string().contains("client authentication"),
            "{error}"
        );
        // An intermediate limited to server authentication limits its leaves too.
        let (int, int_key) = certificate("int", Some(0), &[ServerAuth], Some((&root, &root_key)));
        let (leaf, _) = certificate("client", None, &[ClientAuth], Some((&int, &int_key)));
        let error = verify_chain_for_client_auth(&[leaf, int], roots, now).unwrap_err();
        assert!(error.to_string().contains("CN=int"), "{error}");
    }

    #[test]
    fn path_length_constraints_hold() {
        let now = OffsetDateTime::now_utc();
        let (root, root_key) = certificate("root", Some(0), &[], None);
        let (int, int_key) = certificate("int", Some(0), &[], Some((&root, &root_key)));
        let (leaf, _) = certificate("client", None, &[], Some((&int, &int_key)));
        let error =
            verify_chain_for_client_auth(&[leaf.clone(), int.clone()], &[root], now).unwrap_err();
        assert!(error.to_string().contains("allows 0 CA"), "{error}");
        let (root, root_key) = certificate("root", Some(1), &[], None);
        let (int, int_key) = certificate("int", Some(0), &[], Some((&root, &root_key)));
        let (leaf, _) = certificate("client", None, &[], Some((&int, &int_key)));
        assert!(verify_chain_for_client_auth(&[leaf, int], &[root], now).is_ok());
    }
}
