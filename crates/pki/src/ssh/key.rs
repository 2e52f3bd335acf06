//! SSH public keys: the authorized_keys line, the wire blob, fingerprints, and signatures made
//! and checked the way OpenSSH does.

use aws_lc_rs::signature::{self, ParsedPublicKey, RsaPublicKeyComponents};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};

use super::wire::{Reader, Writer};
use crate::error::{Error, Result};
use crate::key::{KeyAlgorithm, PrivateKey};
use crate::signer::Signer;

/// Smallest RSA modulus accepted in a certificate.
const MIN_RSA_BITS: usize = 2048;
/// Largest RSA modulus accepted (OpenSSH's own limit).
const MAX_RSA_BITS: usize = 16384;

/// The kinds of SSH public key mayfly certifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SshKeyAlgorithm {
    Ed25519,
    EcdsaP256,
    EcdsaP384,
    EcdsaP521,
    /// RSA with the modulus size in bits.
    Rsa(usize),
}

impl SshKeyAlgorithm {
    /// The key type name, as the first word of a `.pub` line.
    pub fn key_type(&self) -> &'static str {
        match self {
            SshKeyAlgorithm::Ed25519 => "ssh-ed25519",
            SshKeyAlgorithm::EcdsaP256 => "ecdsa-sha2-nistp256",
            SshKeyAlgorithm::EcdsaP384 => "ecdsa-sha2-nistp384",
            SshKeyAlgorithm::EcdsaP521 => "ecdsa-sha2-nistp521",
            SshKeyAlgorithm::Rsa(_) => "ssh-rsa",
        }
    }

    /// The certificate type name for keys of this kind.
    pub fn certificate_type(&self) -> &'static str {
        match self {
            SshKeyAlgorithm::Ed25519 => "ssh-ed25519-cert-v01@openssh.com",
            SshKeyAlgorithm::EcdsaP256 => "ecdsa-sha2-nistp256-cert-v01@openssh.com",
            SshKeyAlgorithm::EcdsaP384 => "ecdsa-sha2-nistp384-cert-v01@openssh.com",
            SshKeyAlgorithm::EcdsaP521 => "ecdsa-sha2-nistp521-cert-v01@openssh.com",
            SshKeyAlgorithm::Rsa(_) => "ssh-rsa-cert-v01@openssh.com",
        }
    }

    /// As `ssh-keygen -l` names it: `ED25519`, `ECDSA`, `RSA`.
    pub fn short_name(&self) -> &'static str {
        match self {
            SshKeyAlgorithm::Ed25519 => "ED25519",
            SshKeyAlgorithm::Rsa(_) => "RSA",
            _ => "ECDSA",
        }
    }

    /// The key size in bits, as `ssh-keygen -l` prints it.
    pub fn bits(&self) -> usize {
        match self {
            SshKeyAlgorithm::Ed25519 | SshKeyAlgorithm::EcdsaP256 => 256,
            SshKeyAlgorithm::EcdsaP384 => 384,
            SshKeyAlgorithm::EcdsaP521 => 521,
            SshKeyAlgorithm::Rsa(bits) => *bits,
        }
    }

    fn curve(&self) -> Option<&'static str> {
        match self {
            SshKeyAlgorithm::EcdsaP256 => Some("nistp256"),
            SshKeyAlgorithm::EcdsaP384 => Some("nistp384"),
            SshKeyAlgorithm::EcdsaP521 => Some("nistp521"),
            _ => None,
        }
    }
}

/// A validated SSH public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshPublicKey {
    algorithm: SshKeyAlgorithm,
    /// The whole wire blob, key type name included.
    blob: Vec<u8>,
    /// Offset of the key's fields after the type name: what a certificate embeds.
    fields_at: usize,
}

impl SshPublicKey {
    /// Parses an OpenSSH public key line (`ssh-ed25519 AAAA... comment`). Only plain keys:
    /// a certificate is not a key to certify.
    pub fn parse_line(text: &str) -> Result<Self> {
        let mut words = text.split_whitespace();
        let key_type = words
            .next()
            .ok_or_else(|| Error::SshMalformed("the public key is empty".into()))?;
        let data = words.next().ok_or_else(|| {
            Error::SshMalformed(format!(
                "public key {key_type:?} has no base64 key data after its type"
            ))
        })?;
        let blob = STANDARD
            .decode(data.as_bytes())
            .map_err(|e| Error::SshMalformed(format!("the public key data is not base64: {e}")))?;
        let key = Self::from_blob(&blob)?;
        if key.algorithm.key_type() != key_type {
            return Err(Error::SshMalformed(format!(
                "the line says {key_type:?} but the key data is {:?}",
                key.algorithm.key_type()
            )));
        }
        Ok(key)
    }

    /// Parses and validates a public key wire blob.
    pub fn from_blob(blob: &[u8]) -> Result<Self> {
        let mut reader = Reader::new(blob, "SSH public key");
        let key_type = reader.text("key type")?;
        let fields_at = blob.len() - reader.remaining();
        let algorithm = read_key_fields(&key_type, &mut reader)?;
        reader.finish()?;
        Ok(Self {
            algorithm,
            blob: blob.to_vec(),
            fields_at,
        })
    }

    /// Reads a key whose type name was already read, from the fields that follow it (as inside
    /// a certificate). Returns the key rebuilt as a standalone blob.
    pub(crate) fn read_fields(key_type: &str, reader: &mut Reader<'_>) -> Result<Self> {
        let before = reader.clone();
        let algorithm = read_key_fields(key_type, reader)?;
        let used = before.remaining() - reader.remaining();
        let mut fields = before;
        let mut w = Writer::new();
        w.string(key_type.as_bytes());
        let fields_at = w.len();
        for _ in 0..used {
            w.u8(fields.u8("key")?);
        }
        Ok(Self {
            algorithm,
            blob: w.into_bytes(),
            fields_at,
        })
    }

    /// The public half of `key`.
    pub fn from_private_key(key: &PrivateKey) -> Result<Self> {
        Self::from_signer(key)
    }

    /// The public half of the key `signer` holds.
    pub fn from_signer(key: &dyn Signer) -> Result<Self> {
        let raw = key.public_key_raw();
        let mut w = Writer::new();
        let algorithm = match key.algorithm() {
            KeyAlgorithm::Ed25519 => SshKeyAlgorithm::Ed25519,
            KeyAlgorithm::EcP256 => SshKeyAlgorithm::EcdsaP256,
            KeyAlgorithm::EcP384 => SshKeyAlgorithm::EcdsaP384,
            KeyAlgorithm::Rsa(_) => {
                return Err(Error::KeyUnsupported(
                    "RSA keys are not used for SSH here: use EC P-256, P-384 or Ed25519".into(),
                ));
            }
        };
        w.string(algorithm.key_type().as_bytes());
        if let Some(curve) = algorithm.curve() {
            w.string(curve.as_bytes());
        }
        w.string(&raw);
        Self::from_blob(&w.into_bytes())
    }

    pub fn algorithm(&self) -> SshKeyAlgorithm {
        self.algorithm
    }

    /// The wire blob.
    pub fn blob(&self) -> &[u8] {
        &self.blob
    }

    /// The fields after the type name, as a certificate carries them.
    pub(crate) fn fields(&self) -> &[u8] {
        &self.blob[self.fields_at..]
    }

    /// `type base64`, as in a `.pub` file or after `@cert-authority *` in known_hosts.
    pub fn to_line(&self) -> String {
        format!(
            "{} {}",
            self.algorithm.key_type(),
            STANDARD.encode(&self.blob)
        )
    }

    /// `SHA256:...`, as `ssh-keygen -l` prints it.
    pub fn fingerprint(&self) -> String {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &self.blob);
        format!("SHA256:{}", STANDARD_NO_PAD.encode(digest.as_ref()))
    }

    /// The raw key for signature checks: EC point or Ed25519 bytes.
    fn raw_key(&self) -> Result<Vec<u8>> {
        let mut reader = Reader::new(self.fields(), "SSH public key");
        if self.algorithm.curve().is_some() {
            reader.string("curve")?;
        }
        Ok(reader.string("key")?.to_vec())
    }

    /// Checks an SSH signature blob (`string alg, string sig`) over `data`.
    pub fn verify(&self, data: &[u8], signature_blob: &[u8]) -> Result<()> {
        let mut reader = Reader::new(signature_blob, "SSH signature");
        let alg = reader.text("signature algorithm")?;
        let signature = reader.string("signature")?;
        reader.finish()?;
        let invalid = || Error::SshSignatureInvalid;
        match self.algorithm {
            SshKeyAlgorithm::Ed25519 => {
                if alg != "ssh-ed25519" {
                    return Err(Error::SshMalformed(format!(
                        "signature algorithm {alg:?} does not suit an Ed25519 key"
                    )));
                }
                signature::UnparsedPublicKey::new(&signature::ED25519, self.raw_key()?)
                    .verify(data, signature)
                    .map_err(|_| invalid())
            }
            SshKeyAlgorithm::EcdsaP256
            | SshKeyAlgorithm::EcdsaP384
            | SshKeyAlgorithm::EcdsaP521 => {
                if alg != self.algorithm.key_type() {
                    return Err(Error::SshMalformed(format!(
                        "signature algorithm {alg:?} does not suit a {} key",
                        self.algorithm.key_type()
                    )));
                }
                let (verifier, width): (&'static signature::EcdsaVerificationAlgorithm, usize) =
                    match self.algorithm {
                        SshKeyAlgorithm::EcdsaP256 => (&signature::ECDSA_P256_SHA256_FIXED, 32),
                        SshKeyAlgorithm::EcdsaP384 => (&signature::ECDSA_P384_SHA384_FIXED, 48),
                        _ => (&signature::ECDSA_P521_SHA512_FIXED, 66),
                    };
                let mut inner = Reader::new(signature, "ECDSA signature");
                let r = inner.positive_mpint("r")?;
                let s = inner.positive_mpint("s")?;
                inner.finish()?;
                if r.len() > width || s.len() > width {
                    return Err(invalid());
                }
                let mut fixed = vec![0u8; 2 * width];
                fixed[width - r.len()..width].copy_from_slice(r);
                fixed[2 * width - s.len()..].copy_from_slice(s);
                signature::UnparsedPublicKey::new(verifier, self.raw_key()?)
                    .verify(data, &fixed)
                    .map_err(|_| invalid())
            }
            SshKeyAlgorithm::Rsa(_) => {
                let params: &'static signature::RsaParameters = match alg.as_str() {
                    "rsa-sha2-256" => &signature::RSA_PKCS1_2048_8192_SHA256,
                    "rsa-sha2-512" => &signature::RSA_PKCS1_2048_8192_SHA512,
                    other => {
                        return Err(Error::SshMalformed(format!(
                            "signature algorithm {other:?} is not accepted for RSA: expected rsa-sha2-256 or rsa-sha2-512"
                        )));
                    }
                };
                let mut reader = Reader::new(self.fields(), "SSH RSA key");
                let e = reader.positive_mpint("e")?;
                let n = reader.positive_mpint("n")?;
                RsaPublicKeyComponents { n, e }
                    .verify(params, data, signature)
                    .map_err(|_| invalid())
            }
        }
    }

    /// Checks a JWS signature (`r || s` for ECDSA, plain for Ed25519) made with this key over
    /// `signing_input`, with the JWS algorithm `alg`: how a host proves it holds its key.
    pub fn verify_jws(&self, alg: &str, signing_input: &[u8], signature: &[u8]) -> Result<()> {
        let verifier: &'static dyn signature::VerificationAlgorithm = match (alg, self.algorithm) {
            ("ES256", SshKeyAlgorithm::EcdsaP256) => &signature::ECDSA_P256_SHA256_FIXED,
            ("ES384", SshKeyAlgorithm::EcdsaP384) => &signature::ECDSA_P384_SHA384_FIXED,
            ("EdDSA", SshKeyAlgorithm::Ed25519) => &signature::ED25519,
            (alg, key) => {
                return Err(Error::JoseAlgorithmUnsupported(format!(
                    "{alg} with an SSH key of type {}",
                    key.key_type()
                )));
            }
        };
        signature::UnparsedPublicKey::new(verifier, self.raw_key()?)
            .verify(signing_input, signature)
            .map_err(|_| Error::JwsSignatureInvalid)
    }
}

/// Validates the fields of a key of type `key_type`.
fn read_key_fields(key_type: &str, reader: &mut Reader<'_>) -> Result<SshKeyAlgorithm> {
    let point = |reader: &mut Reader<'_>,
                 curve: &str,
                 verifier: &'static signature::EcdsaVerificationAlgorithm,
                 algorithm: SshKeyAlgorithm|
     -> Result<SshKeyAlgorithm> {
        let named = reader.text("curve")?;
        if named != curve {
            return Err(Error::SshMalformed(format!(
                "key type {key_type:?} names curve {named:?}: expected {curve:?}"
            )));
        }
        let q = reader.string("EC point")?;
        ParsedPublicKey::new(verifier, q).map_err(|_| {
            Error::SshMalformed(format!("the {curve} point is not a valid public key"))
        })?;
        Ok(algorithm)
    };
    match key_type {
        "ssh-ed25519" => {
            let key = reader.string("Ed25519 key")?;
            if key.len() != 32 {
                return Err(Error::SshMalformed(format!(
                    "an Ed25519 key has 32 bytes, not {}",
                    key.len()
                )));
            }
            Ok(SshKeyAlgorithm::Ed25519)
        }
        "ecdsa-sha2-nistp256" => point(
            reader,
            "nistp256",
            &signature::ECDSA_P256_SHA256_FIXED,
            SshKeyAlgorithm::EcdsaP256,
        ),
        "ecdsa-sha2-nistp384" => point(
            reader,
            "nistp384",
            &signature::ECDSA_P384_SHA384_FIXED,
            SshKeyAlgorithm::EcdsaP384,
        ),
        "ecdsa-sha2-nistp521" => point(
            reader,
            "nistp521",
            &signature::ECDSA_P521_SHA512_FIXED,
            SshKeyAlgorithm::EcdsaP521,
        ),
        "ssh-rsa" => {
            let e = reader.positive_mpint("RSA exponent")?;
            let n = reader.positive_mpint("RSA modulus")?;
            let bits = n.len() * 8 - n.first().map_or(8, |b| b.leading_zeros() as usize);
            if e.is_empty() || e.len() > 8 {
                return Err(Error::SshMalformed(
                    "the RSA exponent is out of range".into(),
                ));
            }
            if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
                return Err(Error::KeyUnsupported(format!(
                    "RSA key of {bits} bits: expected {MIN_RSA_BITS} to {MAX_RSA_BITS}"
                )));
            }
            Ok(SshKeyAlgorithm::Rsa(bits))
        }
        other if other.contains("-cert-v01@openssh.com") => Err(Error::KeyUnsupported(format!(
            "{other:?} is a certificate, not a public key"
        ))),
        other => Err(Error::KeyUnsupported(format!(
            "SSH key type {other:?}: expected ssh-ed25519, ecdsa-sha2-nistp256/384/521 or ssh-rsa"
        ))),
    }
}

/// Signs `data` with `key` as an SSH signature blob.
pub(crate) fn sign(key: &dyn Signer, data: &[u8]) -> Result<Vec<u8>> {
    let raw = key.sign_raw(data)?;
    let mut w = Writer::new();
    match key.algorithm() {
        KeyAlgorithm::Ed25519 => {
            w.string(b"ssh-ed25519").string(&raw);
        }
        KeyAlgorithm::EcP256 | KeyAlgorithm::EcP384 => {
            let name = if key.algorithm() == KeyAlgorithm::EcP256 {
                "ecdsa-sha2-nistp256"
            } else {
                "ecdsa-sha2-nistp384"
            };
            let (r, s) = raw.split_at(raw.len() / 2);
            let mut inner = Writer::new();
            inner.mpint(r).mpint(s);
            w.string(name.as_bytes()).string(&inner.into_bytes());
        }
        KeyAlgorithm::Rsa(_) => {
            return Err(Error::KeyUnsupported(
                "an SSH CA key must be EC P-256, P-384 or Ed25519".into(),
            ));
        }
    }
    Ok(w.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_round_trip_through_their_line() {
        for algorithm in [
            KeyAlgorithm::EcP256,
            KeyAlgorithm::EcP384,
            KeyAlgorithm::Ed25519,
        ] {
            let key = PrivateKey::generate(algorithm).unwrap();
            let public = SshPublicKey::from_private_key(&key).unwrap();
            let line = format!("{} comment here", public.to_line());
            assert_eq!(SshPublicKey::parse_line(&line).unwrap(), public);
            let signature = sign(&key, b"data").unwrap();
            public.verify(b"data", &signature).unwrap();
            assert!(public.verify(b"other", &signature).is_err());
        }
    }
}
