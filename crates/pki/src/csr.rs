//! Certificate signing requests (PKCS#10, RFC 2986): parsed once, signature checked, and turned
//! into a [`Csr`] that later code can trust to be well-formed and self-signed by its key.

use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;
use x509_parser::signature_algorithm::RsaSsaPssParams;
use x509_parser::x509::AlgorithmIdentifier;

use crate::error::{Error, Result};
use crate::san::San;

/// Larger requests are refused before parsing; a CSR with an RSA-8192 key and 100 SANs is ~5 KiB.
const MAX_CSR_DER_LEN: usize = 64 * 1024;
/// More SANs than this is a mistake or an attack, not a service certificate.
pub const MAX_SANS: usize = 100;
/// RSA keys below this are breakable.
pub const MIN_RSA_BITS: usize = 2048;
/// RSA keys above this cost a verifier (and every relying party) disproportionate time; no
/// public CA accepts them.
pub const MAX_RSA_BITS: usize = 8192;

/// A parsed certificate request whose signature has been verified.
#[derive(Debug, Clone)]
pub struct Csr {
    der: Vec<u8>,
    common_name: Option<String>,
    sans: Vec<San>,
    spki_der: Vec<u8>,
    key_description: String,
    is_rsa: bool,
}

impl Csr {
    /// Parses a PEM `CERTIFICATE REQUEST` (also `NEW CERTIFICATE REQUEST`) and checks it. The
    /// text must hold that one block: a second request would be silently ignored otherwise.
    pub fn from_pem(text: &str) -> Result<Self> {
        let blocks = pem::parse_many(text.trim())
            .map_err(|e| Error::CsrMalformed(format!("not PEM: {e}")))?;
        let block = match blocks.as_slice() {
            [one] => one,
            [] => return Err(Error::CsrMalformed("not PEM: no PEM block found".into())),
            more => {
                return Err(Error::CsrRefused(format!(
                    "the PEM holds {} blocks ({}): one certificate request is expected",
                    more.len(),
                    more.iter()
                        .map(pem::Pem::tag)
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        };
        match block.tag() {
            "CERTIFICATE REQUEST" | "NEW CERTIFICATE REQUEST" => Self::from_der(block.contents()),
            other => Err(Error::PemUnexpectedLabel {
                found: other.to_string(),
                expected: "CERTIFICATE REQUEST",
            }),
        }
    }

    /// Parses a DER request, checks its signature and its key, and extracts its names.
    pub fn from_der(der: &[u8]) -> Result<Self> {
        if der.len() > MAX_CSR_DER_LEN {
            return Err(Error::CsrMalformed(format!(
                "{} bytes is more than the limit of {MAX_CSR_DER_LEN}",
                der.len()
            )));
        }
        let (rest, csr) = X509CertificationRequest::from_der(der)
            .map_err(|e| Error::CsrMalformed(e.to_string()))?;
        if !rest.is_empty() {
            return Err(Error::CsrMalformed(format!(
                "{} trailing bytes",
                rest.len()
            )));
        }
        // The key and the algorithm are checked before the signature, so a request that breaks
        // a rule costs nothing to refuse and is told which rule.
        check_signature_algorithm(&csr.signature_algorithm)?;
        let info = &csr.certification_request_info;
        let (key_description, is_rsa) = describe_key(&info.subject_pki)?;
        csr.verify_signature()
            .map_err(|_| Error::CsrSignatureInvalid)?;

        let common_name = info
            .subject
            .iter_common_name()
            .next()
            .map(|cn| {
                cn.as_str()
                    .map(str::to_string)
                    .map_err(|e| Error::CsrMalformed(format!("subject common name: {e}")))
            })
            .transpose()?;

        let mut sans = Vec::new();
        if let Some(extensions) = csr.requested_extensions() {
            for extension in extensions {
                if let ParsedExtension::SubjectAlternativeName(names) = extension {
                    for name in &names.general_names {
                        sans.push(san_from_general_name(name)?);
                    }
                }
            }
        }
        if sans.len() > MAX_SANS {
            return Err(Error::CsrMalformed(format!(
                "{} subject alternative names, more than the limit of {MAX_SANS}",
                sans.len()
            )));
        }
        sans.sort();
        sans.dedup();
        Ok(Self {
            der: der.to_vec(),
            common_name,
            sans,
            spki_der: info.subject_pki.raw.to_vec(),
            key_description,
            is_rsa,
        })
    }

    pub fn der(&self) -> &[u8] {
        &self.der
    }

    pub fn common_name(&self) -> Option<&str> {
        self.common_name.as_deref()
    }

    /// The requested SANs, sorted and without duplicates.
    pub fn sans(&self) -> &[San] {
        &self.sans
    }

    /// The requester's public key as a DER SubjectPublicKeyInfo.
    pub fn public_key_spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// "ECDSA P-256", "RSA 2048" or "Ed25519".
    pub fn key_description(&self) -> &str {
        &self.key_description
    }

    pub fn is_rsa(&self) -> bool {
        self.is_rsa
    }
}

/// The one RSA public exponent accepted (65537): every current key generator uses it, and
/// small exponents have a long history of broken padding checks in verifiers.
const RSA_EXPONENT: &[u8] = &[0x01, 0x00, 0x01];

/// Signature algorithms refused whatever the key: SHA-1, MD5 and the older digests collide
/// (RFC 9155 deprecates SHA-1 signatures), so a request signed with them does not prove what it
/// asks for.
const WEAK_SIGNATURE_ALGORITHMS: &[(&str, &str)] = &[
    ("1.2.840.113549.1.1.2", "md2WithRSAEncryption"),
    ("1.2.840.113549.1.1.3", "md4WithRSAEncryption"),
    ("1.2.840.113549.1.1.4", "md5WithRSAEncryption"),
    ("1.2.840.113549.1.1.5", "sha1WithRSAEncryption"),
    ("1.3.14.3.2.29", "sha1WithRSASignature"),
    ("1.2.840.10045.4.1", "ecdsa-with-SHA1"),
    ("1.2.840.10040.4.3", "dsa-with-SHA1"),
];

/// RSASSA-PSS (RFC 4055): one algorithm for every digest, named in its parameters.
const RSASSA_PSS: &str = "1.2.840.113549.1.1.10";

/// The same digests as they appear inside RSASSA-PSS parameters, as its hash or as the hash of
/// its mask generation function (both SHA-1 when the parameters leave them out).
const WEAK_DIGESTS: &[(&str, &str)] = &[
    ("1.2.840.113549.2.2", "MD2"),
    ("1.2.840.113549.2.4", "MD4"),
    ("1.2.840.113549.2.5", "MD5"),
    ("1.3.14.3.2.26", "SHA-1"),
];

fn weak_signature(what: &str) -> Error {
    Error::CsrRefused(format!(
        "signed with {what}: signatures over SHA-1 or MD5 (or older digests) are refused; sign with SHA-256 or better"
    ))
}

fn check_signature_algorithm(algorithm: &AlgorithmIdentifier<'_>) -> Result<()> {
    let oid = algorithm.algorithm.to_id_string();
    if let Some((_, name)) = WEAK_SIGNATURE_ALGORITHMS
        .iter()
        .find(|(weak, _)| *weak == oid)
    {
        return Err(weak_signature(name));
    }
    if oid != RSASSA_PSS {
        return Ok(());
    }
    // Without these checks a PSS request over SHA-1 would only fail its signature check (the
    // verifier has no SHA-1 PSS), as "invalid", not named by the rule it breaks.
    let parameters = algorithm.parameters.as_ref().ok_or_else(|| {
        Error::CsrMalformed("an RSASSA-PSS signature algorithm without its parameters".into())
    })?;
    let parameters = RsaSsaPssParams::try_from(parameters)
        .map_err(|e| Error::CsrMalformed(format!("RSASSA-PSS parameters: {e}")))?;
    let mask = parameters
        .mask_gen_algorithm()
        .map_err(|e| Error::CsrMalformed(format!("RSASSA-PSS mask generation: {e}")))?;
    for (role, digest) in [
        ("hash", parameters.hash_algorithm_oid().to_id_string()),
        ("mask generation hash", mask.hash.to_id_string()),
    ] {
        if let Some((_, name)) = WEAK_DIGESTS.iter().find(|(weak, _)| *weak == digest) {
            return Err(weak_signature(&format!(
                "RSASSA-PSS with {name} as its {role}"
            )));
        }
    }
    // The verifier (as Go's, and so step-ca's) takes a salt as long as the hash; OpenSSL's
    // default is the longest the key allows, which would otherwise fail as "invalid".
    let hash_len = match parameters.hash_algorithm_oid().to_id_string().as_str() {
        "2.16.840.1.101.3.4.2.1" => 32,
        "2.16.840.1.101.3.4.2.2" => 48,
        "2.16.840.1.101.3.4.2.3" => 64,
        _ => return Ok(()),
    };
    let salt = parameters.salt_length();
    if salt != hash_len {
        return Err(Error::CsrRefused(format!(
            "RSASSA-PSS with a salt of {salt} bytes: the salt must be as long as the hash ({hash_len} bytes; openssl: -sigopt rsa_pss_saltlen:digest)"
        )));
    }
    Ok(())
}

fn describe_key(spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>) -> Result<(String, bool)> {
    let unsupported = |what: String| Err(Error::KeyUnsupported(what));
    match spki.parsed() {
        Ok(PublicKey::EC(point)) => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|oid| oid.to_id_string());
            match curve.as_deref() {
                Some("1.2.840.10045.3.1.7") => Ok(("ECDSA P-256".into(), false)),
                Some("1.3.132.0.34") => Ok(("ECDSA P-384".into(), false)),
                other => unsupported(format!(
                    "EC key on curve {} ({} bytes): expected P-256 or P-384",
                    other.unwrap_or("unknown"),
                    point.data().len()
                )),
            }
        }
        Ok(PublicKey::RSA(rsa)) => {
            let exponent = rsa.exponent;
            let significant = &exponent[exponent.iter().take_while(|&&b| b == 0).count()..];
            if significant != RSA_EXPONENT {
                return Err(Error::CsrRefused(format!(
                    "RSA public exponent 0x{}: only 65537 is accepted",
                    hex::encode(significant)
                )));
            }
            let bits = rsa.key_size();
            if bits < MIN_RSA_BITS {
                return unsupported(format!(
                    "RSA key of {bits} bits: at least {MIN_RSA_BITS} are required"
                ));
            }
            if bits > MAX_RSA_BITS {
                return unsupported(format!(
                    "RSA key of {bits} bits: at most {MAX_RSA_BITS} are accepted"
                ));
            }
            Ok((format!("RSA {bits}"), true))
        }
        Ok(PublicKey::Unknown(_)) if spki.algorithm.algorithm.to_id_string() == "1.3.101.112" => {
            Ok(("Ed25519".into(), false))
        }
        Ok(_) => unsupported(format!(
            "public key algorithm {}: expected EC, RSA or Ed25519",
            spki.algorithm.algorithm.to_id_string()
        )),
        Err(e) => Err(Error::CsrMalformed(format!("public key: {e}"))),
    }
}

fn san_from_general_name(name: &GeneralName<'_>) -> Result<San> {
    match name {
        GeneralName::DNSName(dns) => San::parse(dns),
        GeneralName::RFC822Name(email) => Ok(San::Email((*email).to_string())),
        GeneralName::URI(uri) => Ok(San::Uri((*uri).to_string())),
        GeneralName::IPAddress(bytes) => match bytes.len() {
            4 => {
                let octets: [u8; 4] = [bytes[0], bytes[1], bytes[2], bytes[3]];
                Ok(San::Ip(std::net::IpAddr::from(octets)))
            }
            16 => {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(bytes);
                Ok(San::Ip(std::net::IpAddr::from(octets)))
            }
            n => Err(Error::CsrMalformed(format!("IP address SAN of {n} bytes"))),
        },
        other => Err(Error::CsrMalformed(format!(
            "unsupported subject alternative name {other}"
        ))),
    }
}

/// Builds a PEM CSR for `key` with the given common name and SANs.
pub fn create_pem(key: &crate::key::PrivateKey, common_name: &str, sans: &[San]) -> Result<String> {
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, common_name);
    params.subject_alt_names = crate::cert::rcgen_sans(sans)?;
    let key_pair = key.to_rcgen()?;
    let request = params
        .serialize_request(&key_pair)
        .map_err(|e| Error::CertificateGeneration(e.to_string()))?;
    request
        .pem()
        .map_err(|e| Error::CertificateGeneration(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{KeyAlgorithm, PrivateKey};

    #[test]
    fn created_requests_parse_with_their_names() {
        let key = PrivateKey::generate(KeyAlgorithm::EcP256).unwrap();
        let sans = vec![
            San::parse("b.internal").unwrap(),
            San::parse("10.1.2.3").unwrap(),
        ];
        let pem = create_pem(&key, "svc", &sans).unwrap();
        let csr = Csr::from_pem(&pem).unwrap();
        assert_eq!(csr.common_name(), Some("svc"));
        assert_eq!(csr.sans().len(), 2);
        assert_eq!(csr.key_description(), "ECDSA P-256");
        assert_eq!(
            csr.public_key_spki_der(),
            key.public_key_spki_der().unwrap()
        );
    }

    #[test]
    fn bad_requests_are_refused_with_the_reason() {
        let key = PrivateKey::generate(KeyAlgorithm::EcP256).unwrap();
        let good = Csr::from_pem(&create_pem(&key, "svc", &[]).unwrap()).unwrap();
        let mut flipped = good.der().to_vec();
        let last = flipped.len() - 3;
        flipped[last] ^= 0x55;
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (vec![], "malformed certificate request"),
            (b"not der".to_vec(), "malformed certificate request"),
            (flipped, "signature is invalid"),
            ([good.der(), b"x"].concat(), "trailing bytes"),
        ];
        for (input, expected) in cases {
            let err = Csr::from_der(&input).unwrap_err().to_string();
            assert!(err.contains(expected), "{err}");
        }
        let err = Csr::from_pem("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("CERTIFICATE REQUEST"), "{err}");
        assert!(
            Csr::from_pem("hello")
                .unwrap_err()
                .to_string()
                .contains("not PEM")
        );
    }

    /// A request for an RSA key of `bits` bits, with a signature that is only bytes: the key is
    /// judged before the signature is checked.
    fn rsa_request(bits: usize) -> Vec<u8> {
        const SHA256_WITH_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b];
        rsa_request_signed_with(
            bits,
            &crate::der::sequence(&[&crate::der::oid(SHA256_WITH_RSA), &crate::der::null()]),
        )
    }

    /// The same, naming `algorithm` (a DER AlgorithmIdentifier) as its signature algorithm.
    fn rsa_request_signed_with(bits: usize, algorithm: &[u8]) -> Vec<u8> {
        use crate::der;
        let mut modulus = vec![0xffu8; bits / 8];
        if let Some(last) = modulus.last_mut() {
            *last = 0xfd;
        }
        let rsa_key = der::sequence(&[&der::integer_unsigned(&modulus), &der::integer_u64(65_537)]);
        const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
        let spki = der::sequence(&[
            &der::sequence(&[&der::oid(RSA_ENCRYPTION), &der::null()]),
            &der::bit_string(&rsa_key),
        ]);
        let info = der::sequence(&[
            &der::integer_u64(0),
            &der::sequence(&[]),
            &spki,
            &der::context_constructed(0, &[]),
        ]);
        der::sequence(&[&info, algorithm, &der::bit_string(&vec![0x5a; bits / 8])])
    }

    #[test]
    fn rsa_keys_outside_2048_to_8192_bits_are_refused_before_their_signature() {
        for (bits, expected) in [
            (1024, "at least 2048"),
            (8192 + 64, "at most 8192"),
            (16384, "at most 8192"),
        ] {
            let err = Csr::from_der(&rsa_request(bits)).unwrap_err().to_string();
            assert!(err.contains(expected), "{bits} bits: {err}");
            assert!(err.contains(&format!("{bits} bits")), "{err}");
        }
        // In range, the same request is judged by its signature, which is bytes.
        let err = Csr::from_der(&rsa_request(2048)).unwrap_err().to_string();
        assert!(err.contains("signature is invalid"), "{err}");
    }

    /// RSASSA-PSS names its digests in its parameters (SHA-1 for both when left out): a weak
    /// one, as the hash or as the mask generation's hash, is refused by the rule, before the
    /// signature (bytes here) is looked at. OpenSSL 3 makes no PSS request over MD5, so these
    /// are built here.
    #[test]
    fn rsa_pss_over_sha1_or_md5_is_refused_by_the_rule() {
        use crate::der;
        const RSASSA_PSS: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a];
        const MGF1: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x08];
        const SHA1: &[u8] = &[0x2b, 0x0e, 0x03, 0x02, 0x1a];
        const MD5: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x05];
        const SHA256: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];
        let digest = |oid: &[u8]| der::sequence(&[&der::oid(oid), &der::null()]);
        let pss_salted = |hash: Option<&[u8]>, mask_hash: Option<&[u8]>, salt: Option<u64>| {
            let mut fields = Vec::new();
            if let Some(hash) = hash {
                fields.push(der::context_constructed(0, &digest(hash)));
            }
            if let Some(mask_hash) = mask_hash {
                let mgf1 = der::sequence(&[&der::oid(MGF1), &digest(mask_hash)]);
                fields.push(der::context_constructed(1, &mgf1));
            }
            if let Some(salt) = salt {
                fields.push(der::context_constructed(2, &der::integer_u64(salt)));
            }
            let fields: Vec<&[u8]> = fields.iter().map(Vec::as_slice).collect();
            der::sequence(&[&der::oid(RSASSA_PSS), &der::sequence(&fields)])
        };
        let pss = |hash: Option<&[u8]>, mask_hash: Option<&[u8]>| pss_salted(hash, mask_hash, None);
        for (algorithm, expected) in [
            (pss(None, None), "RSASSA-PSS with SHA-1 as its hash"),
            (
                pss(Some(SHA1), Some(SHA1)),
                "RSASSA-PSS with SHA-1 as its hash",
            ),
            (pss(Some(MD5), Some(MD5)), "RSASSA-PSS with MD5 as its hash"),
            (
                pss(Some(SHA256), None),
                "RSASSA-PSS with SHA-1 as its mask generation hash",
            ),
            (
                pss(Some(SHA256), Some(SHA1)),
                "RSASSA-PSS with SHA-1 as its mask generation hash",
            ),
        ] {
            let err = Csr::from_der(&rsa_request_signed_with(2048, &algorithm))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(expected) && err.contains("SHA-1 or MD5"),
                "{expected}: {err}"
            );
        }
        let bare = der::sequence(&[&der::oid(RSASSA_PSS)]);
        let err = Csr::from_der(&rsa_request_signed_with(2048, &bare))
            .unwrap_err()
            .to_string();
        assert!(err.contains("without its parameters"), "{err}");
        // The salt of a SHA-256 PSS signature is 32 bytes; 20 (when left out) or OpenSSL's
        // default, the longest the key allows, is refused by that rule.
        for salt in [None, Some(222)] {
            let err = Csr::from_der(&rsa_request_signed_with(
                2048,
                &pss_salted(Some(SHA256), Some(SHA256), salt),
            ))
            .unwrap_err()
            .to_string();
            let said = format!("salt of {} bytes", salt.unwrap_or(20));
            assert!(
                err.contains(&said) && err.contains("as long as the hash (32 bytes"),
                "{err}"
            );
        }
        // SHA-256 throughout with its 32-byte salt passes the rules; the signature, only bytes,
        // does not.
        let err = Csr::from_der(&rsa_request_signed_with(
            2048,
            &pss_salted(Some(SHA256), Some(SHA256), Some(32)),
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("signature is invalid"), "{err}");
    }
}
