//! Public keys on their own, as PEM: the keys that verify tokens signed elsewhere, such as a
//! Kubernetes cluster's service-account keys. Every key comes out as a DER
//! SubjectPublicKeyInfo, the form [`crate::jose::jws::Jws::verify_with_spki`] takes.

use x509_parser::prelude::FromDer;

use crate::der;
use crate::error::{Error, Result};

/// The PEM blocks a public-key file may hold.
const EXPECTED: &str = "PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE";

/// 1.2.840.113549.1.1.1 (rsaEncryption).
const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

/// Every public key of a PEM text, in order, as DER SubjectPublicKeyInfo: `PUBLIC KEY` blocks
/// (PKIX), `RSA PUBLIC KEY` blocks (PKCS #1) and the keys of `CERTIFICATE` blocks, as step
/// reads them. Fails on any other block (a private key above all: it has no place beside
/// public ones), on a key of a type tokens are not signed with here, and when there is none.
pub fn public_keys_from_pem(text: &[u8]) -> Result<Vec<Vec<u8>>> {
    let blocks = pem::parse_many(text).map_err(|e| Error::PemMalformed(e.to_string()))?;
    if blocks.is_empty() {
        return Err(Error::PemMissing {
            expected: "PUBLIC KEY",
        });
    }
    blocks
        .iter()
        .map(|block| {
            let spki = match block.tag() {
                "PUBLIC KEY" => block.contents().to_vec(),
                "RSA PUBLIC KEY" => der::sequence(&[
                    &der::sequence(&[&der::oid(RSA_ENCRYPTION), &der::null()]),
                    &der::bit_string(block.contents()),
                ]),
                "CERTIFICATE" => crate::cert::subject_public_key_info(block.contents())?,
                other => {
                    return Err(Error::PemUnexpectedLabel {
                        found: other.to_string(),
                        expected: EXPECTED,
                    });
                }
            };
            check_supported(&spki)?;
            Ok(spki)
        })
        .collect()
}

/// A DER SubjectPublicKeyInfo as a `PUBLIC KEY` PEM block.
pub fn public_key_pem(spki_der: &[u8]) -> String {
    pem::encode_config(
        &pem::Pem::new("PUBLIC KEY", spki_der.to_vec()),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

/// Refuses keys no token signature here can be checked with: RSA, ECDSA on P-256 or P-384, and
/// Ed25519 are the ones [`crate::jose::jws::Jws::verify_with_spki`] knows.
fn check_supported(spki_der: &[u8]) -> Result<()> {
    use x509_parser::public_key::PublicKey;
    let (rest, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(spki_der)
        .map_err(|e| Error::KeyUnsupported(format!("public key: {e}")))?;
    if !rest.is_empty() {
        return Err(Error::KeyUnsupported(
            "public key: trailing data after the key".into(),
        ));
    }
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok())
        .map(|oid| oid.to_id_string());
    match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) if rsa.key_size() >= 2048 => Ok(()),
        Ok(PublicKey::RSA(rsa)) => Err(Error::KeyUnsupported(format!(
            "RSA key of {} bits: at least 2048 are required",
            rsa.key_size()
        ))),
        Ok(PublicKey::EC(_))
            if matches!(
                curve.as_deref(),
                Some("1.2.840.10045.3.1.7" | "1.3.132.0.34")
            ) =>
        {
            Ok(())
        }
        Ok(PublicKey::EC(_)) => Err(Error::KeyUnsupported(format!(
            "EC key on curve {}: P-256 or P-384 is required",
            curve.as_deref().unwrap_or("(none)")
        ))),
        _ if spki.algorithm.algorithm.to_id_string() == "1.3.101.112" => Ok(()),
        _ => Err(Error::KeyUnsupported(format!(
            "public key of type {}: RSA, EC (P-256, P-384) or Ed25519 is required",
            spki.algorithm.algorithm.to_id_string()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{KeyAlgorithm, PrivateKey};

    #[test]
    fn pkix_and_certificate_blocks_give_their_keys_in_order() {
        let ec = PrivateKey::generate(KeyAlgorithm::EcP256).unwrap();
        let ed = PrivateKey::generate(KeyAlgorithm::Ed25519).unwrap();
        let root = crate::cert::create_root(
            "Keys Root",
            &ed,
            time::OffsetDateTime::now_utc() + time::Duration::days(1),
        )
        .unwrap();
        let text = format!(
            "{}{}",
            public_key_pem(&ec.public_key_spki_der().unwrap()),
            crate::cert::certificate_pem(&root)
        );
        let keys = public_keys_from_pem(text.as_bytes()).unwrap();
        assert_eq!(
            keys,
            vec![
                ec.public_key_spki_der().unwrap(),
                ed.public_key_spki_der().unwrap()
            ]
        );
    }

    #[test]
    fn a_pkcs1_rsa_key_becomes_the_same_spki() {
        let rsa = PrivateKey::generate(KeyAlgorithm::Rsa(2048)).unwrap();
        let spki = rsa.public_key_spki_der().unwrap();
        let (_, parsed) = x509_parser::x509::SubjectPublicKeyInfo::from_der(&spki).unwrap();
        let pkcs1 = parsed.subject_public_key.data.to_vec();
        let text = pem::encode(&pem::Pem::new("RSA PUBLIC KEY", pkcs1));
        assert_eq!(public_keys_from_pem(text.as_bytes()).unwrap(), vec![spki]);
    }

    #[test]
    fn private_keys_other_blocks_and_empty_files_are_refused() {
        let key = PrivateKey::generate(KeyAlgorithm::EcP256).unwrap();
        let private = crate::keyfile::encode_private_key_pem(&key, None).unwrap();
        let error = public_keys_from_pem(private.as_bytes()).unwrap_err();
        assert!(error.to_string().contains("\"PRIVATE KEY\""), "{error}");
        let error = public_keys_from_pem(b"no pem here").unwrap_err();
        assert!(error.to_string().contains("PUBLIC KEY"), "{error}");
        let junk = pem::encode(&pem::Pem::new("PUBLIC KEY", vec![1, 2, 3]));
        assert!(matches!(
            public_keys_from_pem(junk.as_bytes()),
            Err(Error::KeyUnsupported(_))
        ));
    }
}
