//! Private keys: generation, import from the DER forms step and OpenSSL write, and signing.
//!
//! A [`PrivateKey`] always keeps its PKCS#8 v1 encoding, because that is the one form every
//! consumer (rcgen, rustls, the PKCS#8 encrypter) accepts. It knows nothing about PEM or
//! passwords: `keyfile` owns those.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// The kind and size of a key, as the CLI's `--kty`, `--curve` and `--size` select it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlgorithm {
    EcP256,
    EcP384,
    /// RSA with the modulus size in bits.
    Rsa(usize),
    Ed25519,
}

impl KeyAlgorithm {
    /// Parses step's `--kty`/`--curve`/`--size` triple. Defaults: EC P-256, RSA 2048.
    pub fn from_flags(kty: &str, curve: Option<&str>, size: Option<usize>) -> Result<Self> {
        match kty.to_ascii_uppercase().as_str() {
            "EC" => match curve.unwrap_or("P-256") {
                "P-256" => Ok(KeyAlgorithm::EcP256),
                "P-384" => Ok(KeyAlgorithm::EcP384),
                other => Err(Error::KeyUnsupported(format!(
                    "curve {other:?} for EC keys: expected P-256 or P-384"
                ))),
            },
            "OKP" => match curve.unwrap_or("Ed25519") {
                "Ed25519" => Ok(KeyAlgorithm::Ed25519),
                other => Err(Error::KeyUnsupported(format!(
                    "curve {other:?} for OKP keys: expected Ed25519"
                ))),
            },
            "RSA" => {
                let bits = size.unwrap_or(2048);
                if !(2048..=4096).contains(&bits) || !bits.is_multiple_of(8) {
                    return Err(Error::KeyUnsupported(format!(
                        "RSA size {bits}: expected 2048, 3072 or 4096 bits"
                    )));
                }
                Ok(KeyAlgorithm::Rsa(bits))
            }
            other => Err(Error::KeyUnsupported(format!(
                "key type {other:?}: expected EC, RSA or OKP"
            ))),
        }
    }

    /// A short human description, as `certificate inspect --short` shows it.
    pub fn describe(&self) -> String {
        match self {
            KeyAlgorithm::EcP256 => "ECDSA P-256".into(),
            KeyAlgorithm::EcP384 => "ECDSA P-384".into(),
            KeyAlgorithm::Rsa(bits) => format!("RSA {bits}"),
            KeyAlgorithm::Ed25519 => "Ed25519".into(),
        }
    }
}

/// The key in aws-lc's form, ready to sign.
enum Pair {
    Ecdsa(EcdsaKeyPair),
    Rsa(RsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

/// A private key held in memory, with its PKCS#8 encoding.
pub struct PrivateKey {
    algorithm: KeyAlgorithm,
    pkcs8: Zeroizing<Vec<u8>>,
    pair: Pair,
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivateKey")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl PrivateKey {
    /// Generates a fresh key. RSA generation takes up to seconds; call it off async threads.
    pub fn generate(algorithm: KeyAlgorithm) -> Result<Self> {
        let pkcs8: Vec<u8> = match algorithm {
            KeyAlgorithm::EcP256 | KeyAlgorithm::EcP384 => {
                let alg = ecdsa_signing_alg(algorithm);
                let pair =
                    EcdsaKeyPair::generate(alg).map_err(|_| Error::Crypto("EC key generation"))?;
                pair.to_pkcs8v1()
                    .map_err(|_| Error::Crypto("EC key export"))?
                    .as_ref()
                    .to_vec()
            }
            KeyAlgorithm::Ed25519 => {
                let pair = Ed25519KeyPair::generate()
                    .map_err(|_| Error::Crypto("Ed25519 key generation"))?;
                pair.to_pkcs8v1()
                    .map_err(|_| Error::Crypto("Ed25519 key export"))?
                    .as_ref()
                    .to_vec()
            }
            KeyAlgorithm::Rsa(bits) => {
                let size = match bits {
                    2048 => aws_lc_rs::rsa::KeySize::Rsa2048,
                    3072 => aws_lc_rs::rsa::KeySize::Rsa3072,
                    4096 => aws_lc_rs::rsa::KeySize::Rsa4096,
                    other => {
                        return Err(Error::KeyUnsupported(format!(
                            "RSA size {other}: expected 2048, 3072 or 4096 bits"
                        )));
                    }
                };
                let pair =
                    RsaKeyPair::generate(size).map_err(|_| Error::Crypto("RSA key generation"))?;
                let der = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&pair)
                    .map_err(|_| Error::Crypto("RSA key export"))?;
                der.as_ref().to_vec()
            }
        };
        Self::from_pkcs8_der(&pkcs8)
    }

    /// Imports an unencrypted PKCS#8 (RFC 5208/5958) private key.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self> {
        let reject = |e: aws_lc_rs::error::KeyRejected| Error::KeyRejected(e.to_string());
        if let Ok(pair) = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, der)
        {
            return Ok(Self::with_pair(
                KeyAlgorithm::EcP256,
                der,
                Pair::Ecdsa(pair),
            ));
        }
        if let Ok(pair) = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P384_SHA384_FIXED_SIGNING, der)
        {
            return Ok(Self::with_pair(
                KeyAlgorithm::EcP384,
                der,
                Pair::Ecdsa(pair),
            ));
        }
        if let Ok(pair) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der) {
            // Normalise v2 (with public key) to v1 so every consumer reads it.
            let v1 = pair
                .to_pkcs8v1()
                .map_err(|_| Error::Crypto("Ed25519 key export"))?;
            return Ok(Self::with_pair(
                KeyAlgorithm::Ed25519,
                v1.as_ref(),
                Pair::Ed25519(pair),
            ));
        }
        let pair = RsaKeyPair::from_pkcs8(der).map_err(reject)?;
        Self::from_rsa(pair)
    }

    /// Imports a SEC1 (RFC 5915, `EC PRIVATE KEY`) key on P-256 or P-384.
    pub fn from_sec1_der(der: &[u8]) -> Result<Self> {
        for algorithm in [KeyAlgorithm::EcP256, KeyAlgorithm::EcP384] {
            if let Ok(pair) = EcdsaKeyPair::from_private_key_der(ecdsa_signing_alg(algorithm), der)
            {
                let pkcs8 = pair
                    .to_pkcs8v1()
                    .map_err(|_| Error::Crypto("EC key export"))?;
                return Self::from_pkcs8_der(pkcs8.as_ref());
            }
        }
        Err(Error::KeyRejected(
            "not a SEC1 EC private key on P-256 or P-384".into(),
        ))
    }

    /// Imports a PKCS#1 (`RSA PRIVATE KEY`) key.
    pub fn from_pkcs1_der(der: &[u8]) -> Result<Self> {
        let pair = RsaKeyPair::from_der(der).map_err(|e| Error::KeyRejected(e.to_string()))?;
        Self::from_rsa(pair)
    }

    fn from_rsa(pair: RsaKeyPair) -> Result<Self> {
        let bits = pair.public_modulus_len() * 8;
        if !(2048..=8192).contains(&bits) {
            return Err(Error::KeyUnsupported(format!(
                "RSA key of {bits} bits: expected 2048 to 8192"
            )));
        }
        let der = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&pair)
            .map_err(|_| Error::Crypto("RSA key export"))?;
        let pkcs8 = der.as_ref().to_vec();
        Ok(Self::with_pair(
            KeyAlgorithm::Rsa(bits),
            &pkcs8,
            Pair::Rsa(pair),
        ))
    }

    fn with_pair(algorithm: KeyAlgorithm, pkcs8: &[u8], pair: Pair) -> Self {
        Self {
            algorithm,
            pkcs8: Zeroizing::new(pkcs8.to_vec()),
            pair,
        }
    }

    pub fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    /// The PKCS#8 v1 DER encoding. Secret: never log it.
    pub fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The public key as a DER SubjectPublicKeyInfo.
    pub fn public_key_spki_der(&self) -> Result<Vec<u8>> {
        let der = match &self.pair {
            Pair::Ecdsa(pair) => pair.public_key().as_der().map(|d| d.as_ref().to_vec()),
            Pair::Ed25519(pair) => pair.public_key().as_der().map(|d| d.as_ref().to_vec()),
            Pair::Rsa(pair) => pair.public_key().as_der().map(|d| d.as_ref().to_vec()),
        };
        der.map_err(|_| Error::Crypto("public key export"))
    }

    /// The raw public key bytes: the uncompressed point for EC, 32 bytes for Ed25519, and the
    /// PKCS#1 `RSAPublicKey` DER for RSA.
    pub fn public_key_raw(&self) -> Vec<u8> {
        match &self.pair {
            Pair::Ecdsa(pair) => pair.public_key().as_ref().to_vec(),
            Pair::Ed25519(pair) => pair.public_key().as_ref().to_vec(),
            Pair::Rsa(pair) => pair.public_key().as_ref().to_vec(),
        }
    }

    /// Signs `message` the way JWS wants it: ECDSA as fixed-width `r || s`, RSA PKCS#1 v1.5 with
    /// SHA-256, Ed25519 plain.
    pub fn sign_jws(&self, message: &[u8]) -> Result<Vec<u8>> {
        let rng = SystemRandom::new();
        match &self.pair {
            Pair::Ecdsa(pair) => pair
                .sign(&rng, message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| Error::Crypto("ECDSA signing")),
            Pair::Ed25519(pair) => Ok(pair.sign(message).as_ref().to_vec()),
            Pair::Rsa(pair) => {
                let mut out = vec![0u8; pair.public_modulus_len()];
                pair.sign(&signature::RSA_PKCS1_SHA256, &rng, message, &mut out)
                    .map_err(|_| Error::Crypto("RSA signing"))?;
                Ok(out)
            }
        }
    }

    /// The JWS `alg` that [`PrivateKey::sign_jws`] produces.
    pub fn jws_algorithm(&self) -> &'static str {
        match self.algorithm {
            KeyAlgorithm::EcP256 => "ES256",
            KeyAlgorithm::EcP384 => "ES384",
            KeyAlgorithm::Ed25519 => "EdDSA",
            KeyAlgorithm::Rsa(_) => "RS256",
        }
    }

    /// Builds an EC key from its private scalar and public point, as a JWK carries them.
    pub(crate) fn from_ec_scalar(
        algorithm: KeyAlgorithm,
        scalar: &[u8],
        point: &[u8],
    ) -> Result<Self> {
        let pair = EcdsaKeyPair::from_private_key_and_public_key(
            ecdsa_signing_alg(algorithm),
            scalar,
            point,
        )
        .map_err(|e| {
            Error::KeyRejected(format!(
                "EC private key does not match its public point: {e}"
            ))
        })?;
        let pkcs8 = pair
            .to_pkcs8v1()
            .map_err(|_| Error::Crypto("EC key export"))?;
        Self::from_pkcs8_der(pkcs8.as_ref())
    }

    /// Builds an Ed25519 key from its 32-byte seed (the JWK `d`).
    pub(crate) fn from_ed25519_seed(seed: &[u8]) -> Result<Self> {
        let pair = Ed25519KeyPair::from_seed_unchecked(seed)
            .map_err(|e| Error::KeyRejected(format!("Ed25519 seed: {e}")))?;
        let pkcs8 = pair
            .to_pkcs8v1()
            .map_err(|_| Error::Crypto("Ed25519 key export"))?;
        Self::from_pkcs8_der(pkcs8.as_ref())
    }

    /// The private scalar (EC) or seed (Ed25519): the JWK `d`. Secret.
    pub(crate) fn private_scalar(&self) -> Result<Zeroizing<Vec<u8>>> {
        use aws_lc_rs::encoding::AsBigEndian;
        match &self.pair {
            Pair::Ecdsa(pair) => {
                let bin = AsBigEndian::<aws_lc_rs::encoding::EcPrivateKeyBin>::as_be_bytes(
                    &pair.private_key(),
                )
                .map_err(|_| Error::Crypto("EC private key export"))?;
                Ok(Zeroizing::new(bin.as_ref().to_vec()))
            }
            Pair::Ed25519(pair) => {
                let seed = pair
                    .seed()
                    .map_err(|_| Error::Crypto("Ed25519 seed export"))?;
                let bin = AsBigEndian::<aws_lc_rs::encoding::Curve25519SeedBin>::as_be_bytes(&seed)
                    .map_err(|_| Error::Crypto("Ed25519 seed export"))?;
                Ok(Zeroizing::new(bin.as_ref().to_vec()))
            }
            Pair::Rsa(_) => Err(Error::KeyUnsupported(
                "RSA keys cannot be written as private JWKs here: use EC or Ed25519".into(),
            )),
        }
    }

    /// The key in the form rcgen signs with (it picks the signature algorithm from the key:
    /// ECDSA with the curve's hash, Ed25519, or RSA PKCS#1 v1.5 with SHA-256).
    pub fn to_rcgen(&self) -> Result<rcgen::KeyPair> {
        rcgen::KeyPair::try_from(self.pkcs8.as_slice())
            .map_err(|e| Error::KeyRejected(e.to_string()))
    }
}

fn ecdsa_signing_alg(algorithm: KeyAlgorithm) -> &'static signature::EcdsaSigningAlgorithm {
    match algorithm {
        KeyAlgorithm::EcP384 => &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
        _ => &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_round_trip_through_pkcs8() {
        for alg in [
            KeyAlgorithm::EcP256,
            KeyAlgorithm::EcP384,
            KeyAlgorithm::Ed25519,
        ] {
            let key = PrivateKey::generate(alg).unwrap();
            let again = PrivateKey::from_pkcs8_der(key.pkcs8_der()).unwrap();
            assert_eq!(again.algorithm(), alg);
            assert_eq!(again.public_key_raw(), key.public_key_raw());
        }
    }

    #[test]
    fn key_flags_reject_unknown_values_by_name() {
        let err = KeyAlgorithm::from_flags("EC", Some("P-521"), None).unwrap_err();
        assert!(err.to_string().contains("P-521"), "{err}");
        let err = KeyAlgorithm::from_flags("DSA", None, None).unwrap_err();
        assert!(err.to_string().contains("DSA"), "{err}");
        assert_eq!(
            KeyAlgorithm::from_flags("rsa", None, Some(3072)).unwrap(),
            KeyAlgorithm::Rsa(3072)
        );
    }
}
