//! The ssh-agent messages mayfly sends (PROTOCOL.agent): adding a private key with its
//! certificate (`SSH2_AGENTC_ADD_ID_CONSTRAINED`), so a key that OpenSSH cannot read from our
//! PEM files still reaches the agent, with a lifetime; listing the agent's identities and
//! removing them (`ssh login`, `ssh list`, `ssh logout`).

use super::cert::SshCertificate;
use super::key::SshPublicKey;
use super::wire::{Reader, Writer};
use crate::error::{Error, Result};
use crate::key::{KeyAlgorithm, PrivateKey};

const SSH2_AGENTC_REQUEST_IDENTITIES: u8 = 11;
const SSH2_AGENT_IDENTITIES_ANSWER: u8 = 12;
const SSH2_AGENTC_REMOVE_IDENTITY: u8 = 18;
const SSH2_AGENTC_REMOVE_ALL_IDENTITIES: u8 = 19;
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

/// The framed request for the agent's identities.
pub fn request_identities() -> Vec<u8> {
    framed(&[SSH2_AGENTC_REQUEST_IDENTITIES])
}

/// The framed request removing the identity whose public key (or certificate) is `blob`.
pub fn remove_identity_request(blob: &[u8]) -> Vec<u8> {
    let mut body = Writer::new();
    body.u8(SSH2_AGENTC_REMOVE_IDENTITY).string(blob);
    framed(&body.into_bytes())
}

/// The framed request removing every identity.
pub fn remove_all_identities_request() -> Vec<u8> {
    framed(&[SSH2_AGENTC_REMOVE_ALL_IDENTITIES])
}

fn framed(body: &[u8]) -> Vec<u8> {
    let mut framed = Writer::new();
    framed.string(body);
    framed.into_bytes()
}

/// An identity the agent holds: its public key or certificate, and its comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentIdentity {
    pub blob: Vec<u8>,
    pub comment: String,
}

/// Reads the answer to [`request_identities`] (the message without its length).
pub fn parse_identities_answer(message: &[u8]) -> Result<Vec<AgentIdentity>> {
    let mut reader = Reader::new(message, "ssh-agent identities answer");
    let kind = reader.u8("type")?;
    if kind != SSH2_AGENT_IDENTITIES_ANSWER {
        return Err(Error::SshMalformed(format!(
            "ssh-agent answered message type {kind} to a request for identities"
        )));
    }
    let count = reader.u32("count")?;
    // Each identity takes at least 8 bytes: a bound the agent cannot talk us past.
    if usize::try_from(count).unwrap_or(usize::MAX) > reader.remaining() / 8 {
        return Err(Error::SshMalformed(format!(
            "ssh-agent announced {count} identities in {} bytes",
            reader.remaining()
        )));
    }
    (0..count)
        .map(|_| {
            Ok(AgentIdentity {
                blob: reader.string("key blob")?.to_vec(),
                comment: String::from_utf8_lossy(reader.string("comment")?).into_owned(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identities_answer_is_read_and_a_lying_count_refused() {
        let mut answer = Writer::new();
        answer
            .u8(SSH2_AGENT_IDENTITIES_ANSWER)
            .u32(2)
            .string(b"blob-1")
            .string(b"alice@example.com")
            .string(b"blob-2")
            .string(b"");
        let identities = parse_identities_answer(&answer.into_bytes()).unwrap();
        assert_eq!(identities.len(), 2);
        assert_eq!(identities[0].comment, "alice@example.com");
        assert_eq!(identities[1].blob, b"blob-2");
        let mut lying = Writer::new();
        lying.u8(SSH2_AGENT_IDENTITIES_ANSWER).u32(1_000_000);
        assert!(parse_identities_answer(&lying.into_bytes()).is_err());
        assert!(parse_identities_answer(&[SSH_AGENT_SUCCESS]).is_err());
        assert_eq!(request_identities(), [0, 0, 0, 1, 11]);
        assert_eq!(remove_all_identities_request(), [0, 0, 0, 1, 19]);
    }
}
