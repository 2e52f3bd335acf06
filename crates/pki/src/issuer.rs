//! What revocation structures need to know about the CA certificate that vouches for them:
//! its subject name as encoded, its key identifier, and its public key bits.
//!
//! CRLs name their issuer by copying the CA certificate's subject bytes (never re-encoding them:
//! relying parties compare names byte for byte), and OCSP identifies the issuer by hashes of the
//! same subject bytes and of the public key.

use aws_lc_rs::digest;

use crate::error::{Error, Result};

/// The parts of a CA certificate that CRLs and OCSP refer to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerIdentity {
    /// The DER `Name` of the subject, exactly as in the certificate.
    pub subject_der: Vec<u8>,
    /// The subject key identifier extension's value, which becomes the authority key identifier
    /// of what this CA signs. Computed like the certificate's SKI when the extension is missing.
    pub key_identifier: Vec<u8>,
    /// The subjectPublicKey BIT STRING's content (without the unused-bits octet).
    pub public_key_bits: Vec<u8>,
}

/// Hash algorithms an OCSP CertID may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CertIdHash {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl CertIdHash {
    pub const ALL: [CertIdHash; 4] = [
        CertIdHash::Sha1,
        CertIdHash::Sha256,
        CertIdHash::Sha384,
        CertIdHash::Sha512,
    ];

    pub(crate) fn from_oid(algorithm: &[u8]) -> Option<Self> {
        use crate::der::oid;
        [
            (oid::SHA1, CertIdHash::Sha1),
            (oid::SHA256, CertIdHash::Sha256),
            (oid::SHA384, CertIdHash::Sha384),
            (oid::SHA512, CertIdHash::Sha512),
        ]
        .into_iter()
        .find_map(|(known, hash)| (known == algorithm).then_some(hash))
    }

    pub(crate) fn oid(self) -> &'static [u8] {
        use crate::der::oid;
        match self {
            CertIdHash::Sha1 => oid::SHA1,
            CertIdHash::Sha256 => oid::SHA256,
            CertIdHash::Sha384 => oid::SHA384,
            CertIdHash::Sha512 => oid::SHA512,
        }
    }

    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        let algorithm = match self {
            CertIdHash::Sha1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
            CertIdHash::Sha256 => &digest::SHA256,
            CertIdHash::Sha384 => &digest::SHA384,
            CertIdHash::Sha512 => &digest::SHA512,
        };
        digest::digest(algorithm, data).as_ref().to_vec()
    }
}

impl IssuerIdentity {
    /// Reads a DER CA certificate.
    pub fn from_certificate(der: &[u8]) -> Result<Self> {
        use x509_parser::extensions::ParsedExtension;
        let (_, cert) = x509_parser::parse_x509_certificate(der)
            .map_err(|e| Error::CertificateMalformed(e.to_string()))?;
        let public_key_bits = cert
            .tbs_certificate
            .subject_pki
            .subject_public_key
            .data
            .to_vec();
        let key_identifier = cert
            .extensions()
            .iter()
            .find_map(|e| match e.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0.to_vec()),
                _ => None,
            })
            .unwrap_or_else(|| {
                digest::digest(&digest::SHA256, &public_key_bits).as_ref()[..20].to_vec()
            });
        Ok(Self {
            subject_der: cert.tbs_certificate.subject.as_raw().to_vec(),
            key_identifier,
            public_key_bits,
        })
    }

    /// `issuerNameHash` of an OCSP CertID.
    pub fn name_hash(&self, hash: CertIdHash) -> Vec<u8> {
        hash.digest(&self.subject_der)
    }

    /// `issuerKeyHash` of an OCSP CertID, and the `byKey` responder ID (with SHA-1).
    pub fn key_hash(&self, hash: CertIdHash) -> Vec<u8> {
        hash.digest(&self.public_key_bits)
    }

    /// The authorityKeyIdentifier extension value pointing at this issuer.
    pub(crate) fn authority_key_identifier(&self) -> Vec<u8> {
        use crate::der;
        der::sequence(&[&der::context_primitive(0, &self.key_identifier)])
    }
}
