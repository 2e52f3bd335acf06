//! The ssh-agent message that adds a private key with its certificate (PROTOCOL.agent,
//! `SSH2_AGENTC_ADD_ID_CONSTRAINED`), so a key that OpenSSH cannot read from our PEM files
//! still reaches the agent, with a lifetime.

use super::cert::SshCertificate;
use super::key::SshPublicKey;
use super::wire::Writer;
use crate::error::{Error, Result};
use crate::key::{KeyAlgorithm, PrivateKey};

const SSH2_AGENTC_ADD_ID_CONSTRAINED: u8 = 25;
const SSH_AGENT_CONSTRAIN_LIFETIME: u8 = 1;
/// The agent's answer on success.
pub const SSH_AGENT_SUCCESS: u8 = 6;

/// The framed request (length, type, body) adding `key` with `certificate` for `lifetime`
/// seconds. The key must be the certificate's.
pub fn add_identity_request(
    key: &PrivateKey,
    certificate: &SshCertificate,
    comment: &str,
    lifetime_seconds: u32,
) -> Result<Vec<u8>> {
    if SshPublicKey::from_private_key(key)? != certificate.public_key {
        return Err(Error::KeyRejected(
            "the private key does not belong to the certificate".into(),
        ));
    }
    let mut body = Writer::new();
    body.u8(SSH2_AGENTC_ADD_ID_CONSTRAINED)
        .string(
            certificate
                .public_key
                .algorithm()
                .certificate_type()
                .as_bytes(),
        )
        .string(certificate.blob());
    let secret = key.private_scalar()?;
    match key.algorithm() {
        KeyAlgorithm::EcP256 | KeyAlgorithm::EcP384 => {
            body.mpint(&secret);
        }
        KeyAlgorithm::Ed25519 => {
            let public = key.public_key_raw();
            let mut pair = zeroize::Zeroizing::new(secret.to_vec());
            pair.extend_from_slice(&public);
            body.string(&public).string(&pair);
        }
        KeyAlgorithm::Rsa(_) => {
            return Err(Error::KeyUnsupported(
                "RSA keys are not added to the agent here: use EC or Ed25519".into(),
            ));
        }
    }
    body.string(comment.as_bytes())
        .u8(SSH_AGENT_CONSTRAIN_LIFETIME)
        .u32(lifetime_seconds);
    let body = body.into_bytes();
    let mut framed = Writer::new();
    framed.string(&body);
    Ok(framed.into_bytes())
}
