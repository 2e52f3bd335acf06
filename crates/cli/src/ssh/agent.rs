//! The running ssh-agent, over `$SSH_AUTH_SOCK`: adding a key with its certificate, listing
//! and removing identities.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use anyhow::{Context, bail};
use mayfly_pki::PrivateKey;
use mayfly_pki::ssh::SshCertificate;
use mayfly_pki::ssh::agent::{
    AgentIdentity, SSH_AGENT_SUCCESS, add_identity_request, parse_identities_answer,
    remove_all_identities_request, remove_identity_request, request_identities,
};

/// The agent's answers are short; a list of identities is the longest.
const MAX_ANSWER: usize = 256 * 1024;

/// A connection to the agent.
pub struct Agent {
    stream: UnixStream,
}

impl Agent {
    /// Connects to `$SSH_AUTH_SOCK`; `flag` names what needed it, for the error.
    pub fn connect(flag: &str) -> anyhow::Result<Self> {
        let socket = std::env::var_os("SSH_AUTH_SOCK").with_context(|| {
            format!("{flag}: SSH_AUTH_SOCK is not set: no ssh-agent is running")
        })?;
        let stream = UnixStream::connect(&socket)
            .with_context(|| format!("cannot reach ssh-agent at {}", socket.to_string_lossy()))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        Ok(Self { stream })
    }

    /// Sends a framed request and returns the answer without its length.
    fn exchange(&mut self, request: &[u8]) -> anyhow::Result<Vec<u8>> {
        self.stream
            .write_all(request)
            .context("writing to ssh-agent")?;
        let mut length = [0u8; 4];
        self.stream
            .read_exact(&mut length)
            .context("reading ssh-agent's answer")?;
        let length = u32::from_be_bytes(length) as usize;
        if length == 0 || length > MAX_ANSWER {
            bail!("ssh-agent answered with a malformed message");
        }
        let mut answer = vec![0u8; length];
        self.stream
            .read_exact(&mut answer)
            .context("reading ssh-agent's answer")?;
        Ok(answer)
    }

    fn expect_success(&mut self, request: &[u8], what: &str) -> anyhow::Result<()> {
        let answer = self.exchange(request)?;
        if answer.first() != Some(&SSH_AGENT_SUCCESS) {
            bail!("ssh-agent refused to {what} (answer {})", answer[0]);
        }
        Ok(())
    }

    /// Adds `key` with `certificate`, to be forgotten when the certificate expires; returns
    /// that lifetime in seconds.
    pub fn add(
        &mut self,
        key: &PrivateKey,
        certificate: &SshCertificate,
        comment: &str,
    ) -> anyhow::Result<u32> {
        let now = u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp()).unwrap_or(0);
        let remaining = certificate.template.valid_before.saturating_sub(now);
        if remaining == 0 {
            bail!("the certificate has already expired");
        }
        let lifetime = u32::try_from(remaining).unwrap_or(u32::MAX);
        let request = add_identity_request(key, certificate, comment, lifetime)?;
        self.expect_success(&request, "add the key")?;
        Ok(lifetime)
    }

    /// The identities the agent holds.
    pub fn list(&mut self) -> anyhow::Result<Vec<AgentIdentity>> {
        let answer = self.exchange(&request_identities())?;
        Ok(parse_identities_answer(&answer)?)
    }

    /// Removes one identity.
    pub fn remove(&mut self, identity: &AgentIdentity) -> anyhow::Result<()> {
        self.expect_success(&remove_identity_request(&identity.blob), "remove a key")
    }

    /// Removes every identity.
    pub fn remove_all(&mut self) -> anyhow::Result<()> {
        self.expect_success(&remove_all_identities_request(), "remove all keys")
    }
}

/// Adds `key` with `certificate` to the running agent (`--add-to-agent`).
pub fn add(key: &PrivateKey, certificate: &SshCertificate, comment: &str) -> anyhow::Result<u32> {
    Agent::connect("--add-to-agent")?
        .add(key, certificate, comment)
        .map_err(|e| e.context("--add-to-agent"))
}
