//! The one way a CA key is used: [`Signer`]. Certificates, CRLs, OCSP responses and SSH
//! certificates are all built here and handed to a signer, so a key held elsewhere (an HSM,
//! through PKCS#11) replaces the software [`PrivateKey`] without anything above this crate
//! changing.

use crate::der;
use std::sync::Arc;

use crate::error::Result;
use crate::key::{KeyAlgorithm, PrivateKey};

/// A private key that signs, wherever it lives.
pub trait Signer: Send + Sync + std::fmt::Debug {
    /// What kind of key it is: it decides every signature's algorithm.
    fn algorithm(&self) -> KeyAlgorithm;

    /// The public key: the uncompressed point for EC, 32 bytes for Ed25519, PKCS#1
    /// `RSAPublicKey` DER for RSA.
    fn public_key_raw(&self) -> Vec<u8>;

    /// The public key as a DER SubjectPublicKeyInfo.
    fn public_key_spki_der(&self) -> Result<Vec<u8>>;

    /// Signs `message` in the raw form JWS and SSH use: ECDSA as fixed-width `r || s` with the
    /// curve's hash, RSA PKCS#1 v1.5 with SHA-256, Ed25519 plain.
    fn sign_raw(&self, message: &[u8]) -> Result<Vec<u8>>;

    /// Signs `message` as X.509 structures carry it: ECDSA as the DER `Ecdsa-Sig-Value`.
    fn sign_x509(&self, message: &[u8]) -> Result<Vec<u8>> {
        let raw = self.sign_raw(message)?;
        Ok(match self.algorithm() {
            KeyAlgorithm::EcP256 | KeyAlgorithm::EcP384 => {
                let (r, s) = raw.split_at(raw.len() / 2);
                der::sequence(&[&der::integer_unsigned(r), &der::integer_unsigned(s)])
            }
            KeyAlgorithm::Ed25519 | KeyAlgorithm::Rsa(_) => raw,
        })
    }

    /// The DER `AlgorithmIdentifier` of [`Signer::sign_x509`]'s signatures.
    fn x509_signature_algorithm(&self) -> Vec<u8> {
        match self.algorithm() {
            KeyAlgorithm::EcP256 => der::sequence(&[&der::oid(der::oid::ECDSA_SHA256)]),
            KeyAlgorithm::EcP384 => der::sequence(&[&der::oid(der::oid::ECDSA_SHA384)]),
            KeyAlgorithm::Ed25519 => der::sequence(&[&der::oid(der::oid::ED25519)]),
            KeyAlgorithm::Rsa(_) => {
                der::sequence(&[&der::oid(der::oid::SHA256_WITH_RSA), &der::null()])
            }
        }
    }
}

impl Signer for PrivateKey {
    fn algorithm(&self) -> KeyAlgorithm {
        PrivateKey::algorithm(self)
    }

    fn public_key_raw(&self) -> Vec<u8> {
        PrivateKey::public_key_raw(self)
    }

    fn public_key_spki_der(&self) -> Result<Vec<u8>> {
        PrivateKey::public_key_spki_der(self)
    }

    fn sign_raw(&self, message: &[u8]) -> Result<Vec<u8>> {
        self.sign_jws(message)
    }
}

/// A [`Signer`] as rcgen signs with it: the issuer of the certificates rcgen builds.
pub(crate) struct RcgenKey {
    signer: Arc<dyn Signer>,
    public_raw: Vec<u8>,
    algorithm: &'static rcgen::SignatureAlgorithm,
}

impl RcgenKey {
    pub(crate) fn new(signer: Arc<dyn Signer>) -> Self {
        let algorithm = match signer.algorithm() {
            KeyAlgorithm::EcP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            KeyAlgorithm::EcP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            KeyAlgorithm::Ed25519 => &rcgen::PKCS_ED25519,
            KeyAlgorithm::Rsa(_) => &rcgen::PKCS_RSA_SHA256,
        };
        let public_raw = signer.public_key_raw();
        Self {
            signer,
            public_raw,
            algorithm,
        }
    }
}

impl rcgen::PublicKeyData for RcgenKey {
    fn der_bytes(&self) -> &[u8] {
        &self.public_raw
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        self.algorithm
    }
}

impl rcgen::SigningKey for RcgenKey {
    fn sign(&self, message: &[u8]) -> std::result::Result<Vec<u8>, rcgen::Error> {
        self.signer
            .sign_x509(message)
            .map_err(|_| rcgen::Error::RingUnspecified)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_private_key_signs_through_the_trait_as_it_does_itself() {
        for algorithm in [
            KeyAlgorithm::EcP256,
            KeyAlgorithm::EcP384,
            KeyAlgorithm::Ed25519,
        ] {
            let key = PrivateKey::generate(algorithm).unwrap();
            let signer: &dyn Signer = &key;
            assert_eq!(signer.algorithm(), algorithm);
            assert_eq!(
                signer.x509_signature_algorithm(),
                key.x509_signature_algorithm()
            );
            assert_eq!(
                signer.public_key_spki_der().unwrap(),
                key.public_key_spki_der().unwrap()
            );
            // ECDSA signatures are randomised; Ed25519's are not.
            if algorithm == KeyAlgorithm::Ed25519 {
                assert_eq!(
                    signer.sign_x509(b"m").unwrap(),
                    key.sign_x509(b"m").unwrap()
                );
            }
        }
    }
}
