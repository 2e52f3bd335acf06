//! Adding a key and its certificate to the running ssh-agent over `$SSH_AUTH_SOCK`.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use anyhow::{Context, bail};
use mayfly_pki::PrivateKey;
use mayfly_pki::ssh::SshCertificate;
use mayfly_pki::ssh::agent::{SSH_AGENT_SUCCESS, add_identity_request};

/// Adds `key` with `certificate`, to be forgotten when the certificate expires; returns that
/// lifetime in seconds.
pub fn add(key: &PrivateKey, certificate: &SshCertificate, comment: &str) -> anyhow::Result<u32> {
    let socket = std::env::var_os("SSH_AUTH_SOCK")
        .context("--add-to-agent: SSH_AUTH_SOCK is not set: no ssh-agent is running")?;
    let now = u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp()).unwrap_or(0);
    let remaining = certificate.template.valid_before.saturating_sub(now);
    if remaining == 0 {
        bail!("--add-to-agent: the certificate has already expired");
    }
    let lifetime = u32::try_from(remaining).unwrap_or(u32::MAX);
    let request = add_identity_request(key, certificate, comment, lifetime)?;
    let mut stream = UnixStream::connect(&socket)
        .with_context(|| format!("cannot reach ssh-agent at {}", socket.to_string_lossy()))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(&request).context("writing to ssh-agent")?;
    let mut length = [0u8; 4];
    stream
        .read_exact(&mut length)
        .context("reading ssh-agent's answer")?;
    let length = u32::from_be_bytes(length) as usize;
    if length == 0 || length > 1024 {
        bail!("ssh-agent answered with a malformed message");
    }
    let mut answer = vec![0u8; length];
    stream
        .read_exact(&mut answer)
        .context("reading ssh-agent's answer")?;
    if answer[0] != SSH_AGENT_SUCCESS {
        bail!("ssh-agent refused the key (answer {})", answer[0]);
    }
    Ok(lifetime)
}
