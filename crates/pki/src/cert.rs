//! Certificate building: the root and intermediate of a new PKI, and leaf certificates signed by
//! an intermediate. Also fingerprints, PEM helpers and step's provisioner extension.
//!
//! Policy (which names, how long) is decided by `mayfly-authority`; a [`LeafTemplate`] arrives
//! here already validated, and this module only encodes it.

use std::sync::Arc;

use aws_lc_rs::digest;
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyUsagePurpose, SanType,
};
use time::OffsetDateTime;

use crate::crl::RevocationUrls;
use crate::error::{Error, Result};
use crate::key::PrivateKey;
use crate::san::San;
use crate::serial::SerialNumber;
use crate::signer::{RcgenKey, Signer};

/// step's provisioner extension, 1.3.6.1.4.1.37476.9000.64.1: which provisioner authorised a
/// certificate. step reads it on renew and revoke, and `certificate inspect` shows it.
pub const STEP_PROVISIONER_OID: &[u64] = &[1, 3, 6, 1, 4, 1, 37476, 9000, 64, 1];
/// The provisioner type code step writes for JWK provisioners.
pub const STEP_PROVISIONER_TYPE_JWK: u8 = 1;
/// step's provisioner type code for OIDC provisioners.
pub const STEP_PROVISIONER_TYPE_OIDC: u8 = 2;
/// step's provisioner type code for ACME provisioners.
pub const STEP_PROVISIONER_TYPE_ACME: u8 = 6;
/// step's provisioner type code for X5C provisioners.
pub const STEP_PROVISIONER_TYPE_X5C: u8 = 7;
/// step's provisioner type code for K8sSA (Kubernetes service account) provisioners.
pub const STEP_PROVISIONER_TYPE_K8SSA: u8 = 8;
/// step's provisioner type code for SSHPOP provisioners.
pub const STEP_PROVISIONER_TYPE_SSHPOP: u8 = 9;

/// The SHA-256 fingerprint of a DER certificate, lower-case hex, as step prints it.
pub fn fingerprint_sha256(der: &[u8]) -> String {
    hex::encode(sha256(der))
}

/// The SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let mut sum = [0u8; 32];
    sum.copy_from_slice(digest::digest(&digest::SHA256, data).as_ref());
    sum
}

/// PEM-encodes a DER certificate.
pub fn certificate_pem(der: &[u8]) -> String {
    pem::encode_config(
        &pem::Pem::new("CERTIFICATE", der.to_vec()),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

/// All `CERTIFICATE` blocks of a PEM text, in order. Fails when there is none.
pub fn certificates_from_pem(text: &[u8]) -> Result<Vec<Vec<u8>>> {
    let blocks = pem::parse_many(text).map_err(|e| Error::PemMalformed(e.to_string()))?;
    let certs: Vec<Vec<u8>> = blocks
        .into_iter()
        .filter(|b| b.tag() == "CERTIFICATE")
        .map(|b| b.into_contents())
        .collect();
    if certs.is_empty() {
        return Err(Error::PemMissing {
            expected: "CERTIFICATE",
        });
    }
    Ok(certs)
}

/// The DER SubjectPublicKeyInfo of a DER certificate.
pub fn subject_public_key_info(cert_der: &[u8]) -> Result<Vec<u8>> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|e| Error::CertificateMalformed(e.to_string()))?;
    Ok(cert.tbs_certificate.subject_pki.raw.to_vec())
}

/// What renewal and revocation need to know about an issued certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateInfo {
    pub serial: SerialNumber,
    pub common_name: String,
    pub sans: Vec<San>,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    /// DER SubjectPublicKeyInfo.
    pub spki_der: Vec<u8>,
    pub is_rsa: bool,
    pub provisioner: Option<ProvisionerExtension>,
}

impl CertificateInfo {
    /// Parses a DER certificate (its signature is not checked here: callers get it from a
    /// verified TLS chain or from their own store).
    pub fn from_der(der: &[u8]) -> Result<Self> {
        use x509_parser::extensions::GeneralName;
        let (_, cert) = x509_parser::parse_x509_certificate(der)
            .map_err(|e| Error::CertificateMalformed(e.to_string()))?;
        let common_name = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .unwrap_or_default()
            .to_string();
        let mut sans = Vec::new();
        if let Ok(Some(names)) = cert.subject_alternative_name() {
            for name in &names.value.general_names {
                let san = match name {
                    GeneralName::DNSName(dns) => San::parse(dns)?,
                    GeneralName::RFC822Name(email) => San::Email((*email).to_string()),
                    GeneralName::URI(uri) => San::Uri((*uri).to_string()),
                    GeneralName::IPAddress(bytes) => match bytes.len() {
                        4 => San::Ip(std::net::IpAddr::from([
                            bytes[0], bytes[1], bytes[2], bytes[3],
                        ])),
                        16 => {
                            let mut octets = [0u8; 16];
                            octets.copy_from_slice(bytes);
                            San::Ip(std::net::IpAddr::from(octets))
                        }
                        n => {
                            return Err(Error::CertificateMalformed(format!(
                                "IP address SAN of {n} bytes"
                            )));
                        }
                    },
                    _ => continue,
                };
                sans.push(san);
            }
        }
        let spki = &cert.tbs_certificate.subject_pki;
        let is_rsa = matches!(
            spki.parsed(),
            Ok(x509_parser::public_key::PublicKey::RSA(_))
        );
        Ok(Self {
            serial: SerialNumber::from_be_bytes(cert.raw_serial()),
            common_name,
            sans,
            not_before: cert.validity().not_before.to_datetime(),
            not_after: cert.validity().not_after.to_datetime(),
            spki_der: spki.raw.to_vec(),
            is_rsa,
            provisioner: ProvisionerExtension::from_certificate(&cert),
        })
    }
}

/// Whether a DER certificate's key may sign (key usage digitalSignature). A certificate without
/// the key usage extension may not, as step-ca reads it: the extension says what a key is for.
pub fn allows_digital_signature(cert_der: &[u8]) -> Result<bool> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|e| Error::CertificateMalformed(e.to_string()))?;
    let usage = cert
        .key_usage()
        .map_err(|e| Error::CertificateMalformed(format!("key usage: {e}")))?;
    Ok(usage.is_some_and(|u| u.value.digital_signature()))
}

/// Whether a DER certificate may issue certificates: a CA (basic constraints) whose key usage
/// includes keyCertSign.
pub fn is_certificate_signer(cert_der: &[u8]) -> Result<bool> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|e| Error::CertificateMalformed(e.to_string()))?;
    let ca = cert
        .basic_constraints()
        .map_err(|e| Error::CertificateMalformed(format!("basic constraints: {e}")))?
        .is_some_and(|bc| bc.value.ca);
    let usage = cert
        .key_usage()
        .map_err(|e| Error::CertificateMalformed(format!("key usage: {e}")))?;
    Ok(ca && usage.is_some_and(|u| u.value.key_cert_sign()))
}

/// The notAfter of a DER certificate.
pub fn not_after(cert_der: &[u8]) -> Result<OffsetDateTime> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|e| Error::CertificateMalformed(e.to_string()))?;
    Ok(cert.validity().not_after.to_datetime())
}

/// Creates a self-signed root CA certificate: path length 1, as step's default PKI.
pub fn create_root(
    common_name: &str,
    key: &PrivateKey,
    not_after: OffsetDateTime,
) -> Result<Vec<u8>> {
    let params = ca_params(common_name, key, 1, not_after)?;
    let key_pair = key.to_rcgen()?;
    let cert = params.self_signed(&key_pair).map_err(generation)?;
    Ok(cert.der().to_vec())
}

/// Creates an intermediate CA certificate (path length 0) signed by the root. With `root_crl`,
/// it carries that URL as its CRL distribution point, so that relying parties checking the
/// whole chain (`openssl verify -crl_check_all`) find the root's CRL.
pub fn create_intermediate(
    common_name: &str,
    key: &PrivateKey,
    root_der: &[u8],
    root_key: &PrivateKey,
    not_after: OffsetDateTime,
    root_crl: Option<&str>,
) -> Result<Vec<u8>> {
    let mut params = ca_params(common_name, key, 0, not_after)?;
    params.use_authority_key_identifier_extension = true;
    let revocation = RevocationUrls {
        crl: root_crl.map(str::to_owned),
        ..Default::default()
    };
    for (oid, value) in revocation.extensions() {
        params
            .custom_extensions
            .push(CustomExtension::from_oid_content(oid, value));
    }
    // A copy of the root key behind the signer seam; making an intermediate is rare.
    let root: Arc<dyn Signer> = Arc::new(PrivateKey::from_pkcs8_der(root_key.pkcs8_der())?);
    let issuer = issuer_from(root_der, root)?;
    let subject_key = key.to_rcgen()?;
    let cert = params
        .signed_by(&subject_key, &issuer)
        .map_err(generation)?;
    Ok(cert.der().to_vec())
}

/// Creates a self-signed certificate for an ordinary (non-CA) key.
pub fn create_self_signed_leaf(template: &LeafTemplate, key: &PrivateKey) -> Result<Vec<u8>> {
    let mut params = template.params()?;
    // Self-issued: the issuer is the subject, so an authority key identifier adds nothing.
    params.use_authority_key_identifier_extension = false;
    let ski = crate::der::octet_string(&subject_key_identifier(&key.public_key_spki_der()?)?);
    params.custom_extensions.insert(
        0,
        CustomExtension::from_oid_content(SUBJECT_KEY_IDENTIFIER_OID, ski),
    );
    let key_pair = key.to_rcgen()?;
    let cert = params.self_signed(&key_pair).map_err(generation)?;
    Ok(cert.der().to_vec())
}

fn ca_params(
    common_name: &str,
    key: &PrivateKey,
    path_len: u8,
    not_after: OffsetDateTime,
) -> Result<CertificateParams> {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(path_len));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    // The method leaves use (RFC 7093 method 1), which linters recognise; rcgen's own hashes
    // the whole SubjectPublicKeyInfo, a method no RFC names.
    params.key_identifier_method =
        KeyIdMethod::PreSpecified(subject_key_identifier(&key.public_key_spki_der()?)?);
    let now = OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::minutes(1);
    params.not_after = not_after;
    params.serial_number = Some(rcgen_serial(&SerialNumber::random()?));
    Ok(params)
}

fn issuer_from(ca_der: &[u8], signer: Arc<dyn Signer>) -> Result<Issuer<'static, RcgenKey>> {
    Issuer::from_ca_cert_der(&ca_der.to_vec().into(), RcgenKey::new(signer))
        .map_err(|e| Error::CertificateMalformed(format!("issuer certificate: {e}")))
}

fn generation(e: rcgen::Error) -> Error {
    Error::CertificateGeneration(e.to_string())
}

fn rcgen_serial(serial: &SerialNumber) -> rcgen::SerialNumber {
    rcgen::SerialNumber::from_slice(serial.as_be_bytes())
}

/// Converts SANs to rcgen's form.
pub(crate) fn rcgen_sans(sans: &[San]) -> Result<Vec<SanType>> {
    sans.iter()
        .map(|san| {
            let ia5 = |s: &str| {
                s.to_string()
                    .try_into()
                    .map_err(|_| Error::CsrMalformed(format!("{s:?} is not an IA5 string")))
            };
            Ok(match san {
                San::Dns(name) => SanType::DnsName(ia5(name)?),
                San::Ip(ip) => SanType::IpAddress(*ip),
                San::Email(email) => SanType::Rfc822Name(ia5(email)?),
                San::Uri(uri) => SanType::URI(ia5(uri)?),
            })
        })
        .collect()
}

/// Which provisioner authorised a certificate, written as step's provisioner extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisionerExtension {
    pub type_code: u8,
    pub name: String,
    pub credential_id: String,
}

impl ProvisionerExtension {
    /// DER of `SEQUENCE { INTEGER type, OCTET STRING name, OCTET STRING credentialID }`.
    pub fn to_der(&self) -> Vec<u8> {
        use crate::der;
        der::sequence(&[
            &der::integer_u64(u64::from(self.type_code)),
            &der::octet_string(self.name.as_bytes()),
            &der::octet_string(self.credential_id.as_bytes()),
        ])
    }

    /// Reads the extension from a certificate, if present.
    pub fn from_certificate(cert: &x509_parser::certificate::X509Certificate<'_>) -> Option<Self> {
        let oid = x509_parser::oid_registry::Oid::from(STEP_PROVISIONER_OID).ok()?;
        let ext = cert.extensions().iter().find(|e| e.oid == oid)?;
        Self::from_der(ext.value)
    }

    fn from_der(der: &[u8]) -> Option<Self> {
        use x509_parser::der_parser::ber::BerObjectContent;
        let (_, seq) = x509_parser::der_parser::parse_der(der).ok()?;
        let items = seq.as_sequence().ok()?;
        let type_code = items.first()?.as_u32().ok()?;
        let text = |i: usize| match items.get(i).map(|o| &o.content) {
            Some(BerObjectContent::OctetString(b)) => String::from_utf8(b.to_vec()).ok(),
            _ => None,
        };
        Some(Self {
            type_code: u8::try_from(type_code).ok()?,
            name: text(1)?,
            credential_id: text(2)?,
        })
    }
}

/// A validated description of a leaf certificate.
#[derive(Debug, Clone)]
pub struct LeafTemplate {
    pub common_name: String,
    pub sans: Vec<San>,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub serial: SerialNumber,
    /// RSA keys also get keyEncipherment, for TLS 1.2 RSA key exchange.
    pub rsa_key: bool,
    pub provisioner: Option<ProvisionerExtension>,
}

/// Subject key identifier, RFC 7093 section 2 method 1: the leftmost 160 bits of the SHA-256 of
/// the subjectPublicKey BIT STRING's value.
fn subject_key_identifier(spki_der: &[u8]) -> Result<Vec<u8>> {
    use x509_parser::prelude::FromDer;
    let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(spki_der)
        .map_err(|e| Error::KeyUnsupported(format!("subject public key: {e}")))?;
    let hash = digest::digest(&digest::SHA256, &spki.subject_public_key.data);
    Ok(hash.as_ref()[..20].to_vec())
}

/// OID of the subjectKeyIdentifier extension (RFC 5280 4.2.1.2).
const SUBJECT_KEY_IDENTIFIER_OID: &[u64] = &[2, 5, 29, 14];
/// id-pkix-ocsp-nocheck (RFC 6960 4.2.2.2.1).
const OCSP_NOCHECK_OID: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 48, 1, 5];

impl LeafTemplate {
    fn params(&self) -> Result<CertificateParams> {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        if !self.common_name.is_empty() {
            params
                .distinguished_name
                .push(DnType::CommonName, self.common_name.as_str());
        }
        params.subject_alt_names = rcgen_sans(&self.sans)?;
        params.not_before = self.not_before;
        params.not_after = self.not_after;
        params.serial_number = Some(rcgen_serial(&self.serial));
        params.is_ca = IsCa::NoCa;
        params.key_usages = if self.rsa_key {
            vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyEncipherment,
            ]
        } else {
            vec![KeyUsagePurpose::DigitalSignature]
        };
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.key_identifier_method = KeyIdMethod::Sha256;
        params.use_authority_key_identifier_extension = true;
        if let Some(provisioner) = &self.provisioner {
            params
                .custom_extensions
                .push(CustomExtension::from_oid_content(
                    STEP_PROVISIONER_OID,
                    provisioner.to_der(),
                ));
        }
        Ok(params)
    }
}

/// Signs leaf certificates with an intermediate CA's key.
pub struct LeafSigner {
    issuer: Issuer<'static, RcgenKey>,
    /// Written into every leaf, so relying parties find the CRL and the OCSP responder.
    revocation: RevocationUrls,
}

impl std::fmt::Debug for LeafSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeafSigner").finish_non_exhaustive()
    }
}

impl LeafSigner {
    /// `ca_der` is the intermediate's certificate, whose key `signer` holds; its SKI becomes
    /// every leaf's AKI.
    pub fn new(ca_der: &[u8], signer: Arc<dyn Signer>) -> Result<Self> {
        Ok(Self {
            issuer: issuer_from(ca_der, signer)?,
            revocation: RevocationUrls::default(),
        })
    }

    /// Leaves signed from now on carry these CRL and OCSP locations.
    pub fn with_revocation_urls(mut self, urls: RevocationUrls) -> Self {
        self.revocation = urls;
        self
    }

    /// Signs a delegated OCSP responder certificate (RFC 6960 4.2.2.2): extended key usage
    /// OCSPSigning only, and id-pkix-ocsp-nocheck, so clients do not ask about the responder's
    /// own status (it is short-lived instead).
    pub fn sign_ocsp_responder(
        &self,
        common_name: &str,
        serial: &SerialNumber,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
        subject_spki_der: &[u8],
    ) -> Result<Vec<u8>> {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.not_before = not_before;
        params.not_after = not_after;
        params.serial_number = Some(rcgen_serial(serial));
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::OcspSigning];
        // RFC 7093 method 1, as every other certificate here (see `ca_params`).
        params.key_identifier_method =
            KeyIdMethod::PreSpecified(subject_key_identifier(subject_spki_der)?);
        params.use_authority_key_identifier_extension = true;
        // rcgen writes the subject key identifier itself along with basicConstraints CA:FALSE.
        params.custom_extensions = vec![CustomExtension::from_oid_content(
            OCSP_NOCHECK_OID,
            vec![0x05, 0x00],
        )];
        let public_key = rcgen::SubjectPublicKeyInfo::from_der(subject_spki_der)
            .map_err(|e| Error::KeyUnsupported(format!("subject public key: {e}")))?;
        let cert = params
            .signed_by(&public_key, &self.issuer)
            .map_err(generation)?;
        Ok(cert.der().to_vec())
    }

    /// Signs `template` for the public key `subject_spki_der` (DER SubjectPublicKeyInfo).
    pub fn sign(&self, template: &LeafTemplate, subject_spki_der: &[u8]) -> Result<Vec<u8>> {
        self.sign_with(template, subject_spki_der, &self.revocation)
    }

    /// Signs like [`LeafSigner::sign`] a certificate whose CRL is the shard at `shard_crl`: it
    /// carries that URL as its only distribution point, and no delta CRL (a delta's scope is
    /// the complete CRL, not the shard).
    pub fn sign_in_shard(
        &self,
        template: &LeafTemplate,
        subject_spki_der: &[u8],
        shard_crl: &str,
    ) -> Result<Vec<u8>> {
        let urls = RevocationUrls {
            crl: Some(shard_crl.to_owned()),
            delta_crl: None,
            ..self.revocation.clone()
        };
        self.sign_with(template, subject_spki_der, &urls)
    }

    fn sign_with(
        &self,
        template: &LeafTemplate,
        subject_spki_der: &[u8],
        revocation: &RevocationUrls,
    ) -> Result<Vec<u8>> {
        let mut params = template.params()?;
        // rcgen writes a subject key identifier only for CAs; RFC 5280 4.2.1.2 wants one in
        // every certificate, and path builders use it.
        let ski = crate::der::octet_string(&subject_key_identifier(subject_spki_der)?);
        params.custom_extensions.insert(
            0,
            CustomExtension::from_oid_content(SUBJECT_KEY_IDENTIFIER_OID, ski),
        );
        for (oid, value) in revocation.extensions() {
            params
                .custom_extensions
                .push(CustomExtension::from_oid_content(oid, value));
        }
        let public_key = rcgen::SubjectPublicKeyInfo::from_der(subject_spki_der)
            .map_err(|e| Error::KeyUnsupported(format!("subject public key: {e}")))?;
        let cert = params
            .signed_by(&public_key, &self.issuer)
            .map_err(generation)?;
        Ok(cert.der().to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::KeyAlgorithm;
    use x509_parser::prelude::*;

    #[test]
    fn chain_links_by_key_identifiers_and_carries_the_profile() {
        let ten_years = OffsetDateTime::now_utc() + ::time::Duration::days(3650);
        let root_key = PrivateKey::generate(KeyAlgorithm::EcP256).unwrap();
        let root = create_root("Test Root CA", &root_key, ten_years).unwrap();
        let int_key = PrivateKey::generate(KeyAlgorithm::EcP256).unwrap();
        let int = create_intermediate(
            "Test Intermediate CA",
            &int_key,
            &root,
            &root_key,
            ten_years,
            Some("http://ca.internal/1.0/root.crl"),
        )
        .unwrap();
        let urls = crate::verify::revocation_urls(&int).unwrap();
        assert_eq!(
            urls.crl.as_deref(),
            Some("http://ca.internal/1.0/root.crl"),
            "the intermediate points at the root's CRL"
        );
        let signer = LeafSigner::new(&int, Arc::new(int_key)).unwrap();
        let leaf_key = PrivateKey::generate(KeyAlgorithm::EcP256).unwrap();
        let now = OffsetDateTime::now_utc();
        let template = LeafTemplate {
            common_name: "svc.internal".into(),
            sans: vec![San::parse("svc.internal").unwrap()],
            not_before: now,
            not_after: now + ::time::Duration::hours(24),
            serial: SerialNumber::random().unwrap(),
            rsa_key: false,
            provisioner: Some(ProvisionerExtension {
                type_code: STEP_PROVISIONER_TYPE_JWK,
                name: "admin".into(),
                credential_id: "kid".into(),
            }),
        };
        let leaf = signer
            .sign(&template, &leaf_key.public_key_spki_der().unwrap())
            .unwrap();

        let (_, root) = parse_x509_certificate(&root).unwrap();
        let (_, int) = parse_x509_certificate(&int).unwrap();
        let (_, leaf) = parse_x509_certificate(&leaf).unwrap();
        let ski = |c: &X509Certificate<'_>| {
            c.extensions()
                .iter()
                .find_map(|e| match e.parsed_extension() {
                    ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
                    _ => None,
                })
        };
        let aki = |c: &X509Certificate<'_>| {
            c.extensions()
                .iter()
                .find_map(|e| match e.parsed_extension() {
                    ParsedExtension::AuthorityKeyIdentifier(k) => {
                        k.key_identifier.as_ref().map(|k| k.0.to_vec())
                    }
                    _ => None,
                })
        };
        assert_eq!(aki(&int), ski(&root));
        assert_eq!(aki(&leaf), ski(&int));
        // Every key identifier is RFC 7093 method 1 (SHA-256 of the key bits, 160 bits).
        for cert in [&root, &int, &leaf] {
            let bits = &cert.public_key().subject_public_key.data;
            let method_1 = digest::digest(&digest::SHA256, bits).as_ref()[..20].to_vec();
            assert_eq!(ski(cert), Some(method_1), "{}", cert.subject());
        }
        assert_eq!(
            root.basic_constraints()
                .unwrap()
                .unwrap()
                .value
                .path_len_constraint,
            Some(1)
        );
        assert_eq!(
            int.basic_constraints()
                .unwrap()
                .unwrap()
                .value
                .path_len_constraint,
            Some(0)
        );
        int.verify_signature(Some(root.public_key())).unwrap();
        leaf.verify_signature(Some(int.public_key())).unwrap();
        let eku = leaf.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && eku.client_auth);
        assert_eq!(leaf.raw_serial(), template.serial.as_be_bytes());
        let ext = ProvisionerExtension::from_certificate(&leaf).unwrap();
        assert_eq!(ext.name, "admin");
        assert_eq!(ext.credential_id, "kid");
    }

    #[test]
    fn provisioner_extension_matches_steps_bytes() {
        // From step's foo.crt (interop vectors): type 1, "step-cli", the kid.
        let ext = ProvisionerExtension {
            type_code: 1,
            name: "step-cli".into(),
            credential_id: "4UELJx8e0aS9m0CH3fZ0EB7D5aUPICb759zALHFejvc".into(),
        };
        let der = ext.to_der();
        assert_eq!(hex::encode(&der[..7]), "303a0201010408");
        assert_eq!(ProvisionerExtension::from_der(&der), Some(ext));
    }

    #[test]
    fn provisioner_extension_lengths_beyond_64_kib_are_encoded_whole() {
        // A two-byte length form once truncated lengths of 64 KiB and more.
        for len in [0x7f, 0x80, 0xff, 0x100, 0xffff, 0x1_0000, 0x1_2345] {
            let ext = ProvisionerExtension {
                type_code: 200,
                name: "n".repeat(len),
                credential_id: "kid".into(),
            };
            let der = ext.to_der();
            assert_eq!(
                ProvisionerExtension::from_der(&der),
                Some(ext),
                "name of {len} bytes"
            );
        }
    }
}
