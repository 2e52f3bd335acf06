//! OpenSSH's own private key files (`openssh-key-v1`, PROTOCOL.key), unencrypted: read so
//! that host keys made by ssh-keygen can prove possession for renewal, written for Ed25519,
//! which OpenSSH does not read from PKCS#8 PEM.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::key::SshPublicKey;
use super::wire::{Reader, Writer};
use crate::error::{Error, Result};
use crate::key::{KeyAlgorithm, PrivateKey};

const MAGIC: &[u8] = b"openssh-key-v1\0";
const BEGIN: &str = "-----BEGIN OPENSSH PRIVATE KEY-----";
const END: &str = "-----END OPENSSH PRIVATE KEY-----";
/// The cipher block size of "none", which pads the private section.
const BLOCK: usize = 8;

/// Whether `text` is an OpenSSH private key file.
pub fn is_openssh_private_key(text: &[u8]) -> bool {
    String::from_utf8_lossy(text).contains(BEGIN)
}

/// Reads an unencrypted OpenSSH private key (ECDSA P-256/P-384 or Ed25519).
pub fn decode_openssh_private_key(text: &[u8]) -> Result<PrivateKey> {
    let text = String::from_utf8_lossy(text);
    let start = text.find(BEGIN).ok_or(Error::PemMissing {
        expected: "OPENSSH PRIVATE KEY",
    })?;
    let body = &text[start + BEGIN.len()..];
    let end = body
        .find(END)
        .ok_or_else(|| Error::PemMalformed("no -----END OPENSSH PRIVATE KEY-----".into()))?;
    let b64: String = body[..end].split_whitespace().collect();
    let blob = STANDARD
        .decode(b64.as_bytes())
        .map_err(|e| Error::PemMalformed(format!("OpenSSH private key: {e}")))?;
    let rest = blob
        .strip_prefix(MAGIC)
        .ok_or_else(|| Error::SshMalformed("not an openssh-key-v1 file".into()))?;
    let mut reader = Reader::new(rest, "OpenSSH private key");
    let cipher = reader.text("cipher")?;
    let kdf = reader.text("kdf")?;
    reader.string("kdf options")?;
    if cipher != "none" || kdf != "none" {
        return Err(Error::EncryptionUnsupported(format!(
            "OpenSSH private key encrypted with {cipher}/{kdf}: remove its passphrase \
             (ssh-keygen -p) or use a PEM key"
        )));
    }
    if reader.u32("number of keys")? != 1 {
        return Err(Error::SshMalformed(
            "an OpenSSH private key file with other than one key".into(),
        ));
    }
    let public = SshPublicKey::from_blob(reader.string("public key")?)?;
    let mut private = Reader::new(reader.string("private keys")?, "OpenSSH private key");
    reader.finish()?;
    if private.u32("check")? != private.u32("check")? {
        return Err(Error::SshMalformed(
            "OpenSSH private key check values differ".into(),
        ));
    }
    let key_type = private.text("key type")?;
    let key = match key_type.as_str() {
        "ssh-ed25519" => {
            private.string("public key")?;
            let pair = private.string("private key")?;
            if pair.len() != 64 {
                return Err(Error::SshMalformed(format!(
                    "an Ed25519 private key has 64 bytes, not {}",
                    pair.len()
                )));
            }
            PrivateKey::from_ed25519_seed(&pair[..32])?
        }
        "ecdsa-sha2-nistp256" | "ecdsa-sha2-nistp384" => {
            let algorithm = if key_type.ends_with("256") {
                KeyAlgorithm::EcP256
            } else {
                KeyAlgorithm::EcP384
            };
            private.string("curve")?;
            let point = private.string("public point")?;
            let scalar = private.positive_mpint("private scalar")?;
            let width = if algorithm == KeyAlgorithm::EcP256 {
                32
            } else {
                48
            };
            if scalar.len() > width {
                return Err(Error::SshMalformed(
                    "the EC private scalar is too long".into(),
                ));
            }
            let mut fixed = vec![0u8; width];
            fixed[width - scalar.len()..].copy_from_slice(scalar);
            PrivateKey::from_ec_scalar(algorithm, &fixed, point)?
        }
        other => {
            return Err(Error::KeyUnsupported(format!(
                "OpenSSH private key of type {other:?}: expected ssh-ed25519 or ecdsa-sha2-nistp256/384"
            )));
        }
    };
    if SshPublicKey::from_private_key(&key)? != public {
        return Err(Error::KeyRejected(
            "the OpenSSH private key does not match its public key".into(),
        ));
    }
    Ok(key)
}

/// Writes `key` as an unencrypted OpenSSH private key file.
pub fn encode_openssh_private_key(key: &PrivateKey, comment: &str) -> Result<String> {
    let public = SshPublicKey::from_private_key(key)?;
    let check = crate::random::random_bytes(4)?;
    let mut private = Writer::new();
    private
        .raw(&check)
        .raw(&check)
        .string(public.algorithm().key_type().as_bytes());
    let secret = key.private_scalar()?;
    match key.algorithm() {
        KeyAlgorithm::Ed25519 => {
            let raw = key.public_key_raw();
            let mut pair = zeroize::Zeroizing::new(secret.to_vec());
            pair.extend_from_slice(&raw);
            private.string(&raw).string(&pair);
        }
        _ => {
            private.raw(public.fields()).mpint(&secret);
        }
    }
    private.string(comment.as_bytes());
    let mut pad = 1u8;
    while !private.len().is_multiple_of(BLOCK) {
        private.u8(pad);
        pad += 1;
    }
    let private = zeroize::Zeroizing::new(private.into_bytes());
    let mut w = Writer::new();
    w.raw(MAGIC)
        .string(b"none")
        .string(b"none")
        .string(&[])
        .u32(1)
        .string(public.blob())
        .string(&private);
    let encoded = zeroize::Zeroizing::new(STANDARD.encode(w.into_bytes()));
    let mut out = format!("{BEGIN}\n");
    for chunk in encoded.as_bytes().chunks(70) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(END);
    out.push('\n');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_openssh_files() {
        for algorithm in [
            KeyAlgorithm::Ed25519,
            KeyAlgorithm::EcP256,
            KeyAlgorithm::EcP384,
        ] {
            let key = PrivateKey::generate(algorithm).unwrap();
            let text = encode_openssh_private_key(&key, "me").unwrap();
            let back = decode_openssh_private_key(text.as_bytes()).unwrap();
            assert_eq!(
                SshPublicKey::from_private_key(&back).unwrap(),
                SshPublicKey::from_private_key(&key).unwrap()
            );
        }
    }
}
