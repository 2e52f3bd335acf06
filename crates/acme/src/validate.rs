//! Challenge validation against the real network: http-01 (RFC 8555 8.3), dns-01 (8.4),
//! tls-alpn-01 (RFC 8737).
//!
//! Tests point validation at loopback through the provisioner's `insecure…` settings (port,
//! address, resolver); without them validation goes where the RFC says.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use mayfly_authority::provisioner::AcmeSettings;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::ProblemType;
use crate::model::{ChallengeKind, Identifier, IdentifierKind, Problem};

/// How long one attempt may take, connection and answer together.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest http-01 response read; a key authorization is under 200 bytes.
const MAX_HTTP_RESPONSE: usize = 16 * 1024;

/// Checks one challenge once; `Err` carries the problem the challenge records.
pub async fn validate(
    kind: ChallengeKind,
    identifier: &Identifier,
    token: &str,
    key_authorization: &str,
    settings: &AcmeSettings,
) -> Result<(), Problem> {
    let attempt = async {
        match kind {
            ChallengeKind::Http01 => http01(identifier, token, key_authorization, settings).await,
            ChallengeKind::Dns01 => dns01(identifier, key_authorization, settings).await,
            ChallengeKind::TlsAlpn01 => tls_alpn01(identifier, key_authorization, settings).await,
        }
    };
    match tokio::time::timeout(ATTEMPT_TIMEOUT, attempt).await {
        Ok(result) => result,
        Err(_) => Err(Problem::new(
            ProblemType::Connection,
            format!(
                "{kind} validation of {} timed out after {ATTEMPT_TIMEOUT:?}",
                identifier.value
            ),
        )),
    }
}

async fn http01(
    identifier: &Identifier,
    token: &str,
    key_authorization: &str,
    settings: &AcmeSettings,
) -> Result<(), Problem> {
    let port = settings.insecure_http01_port.unwrap_or(80);
    let address = target_address(identifier, port, settings).await?;
    let connection_problem = |e: std::io::Error| {
        Problem::new(
            ProblemType::Connection,
            format!("http-01: cannot connect to {address}: {e}"),
        )
    };
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .map_err(connection_problem)?;
    let host = match identifier.kind {
        IdentifierKind::Ip if identifier.value.contains(':') => format!("[{}]", identifier.value),
        _ => identifier.value.clone(),
    };
    let request = format!(
        "GET /.well-known/acme-challenge/{token} HTTP/1.1\r\nHost: {host}\r\n\
         User-Agent: mayfly-acme\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(connection_problem)?;
    let mut response = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).await.map_err(connection_problem)?;
        if n == 0 {
            break;
        }
        response.extend_from_slice(&chunk[..n]);
        if response.len() > MAX_HTTP_RESPONSE {
            return Err(Problem::new(
                ProblemType::Unauthorized,
                format!(
                    "http-01: response from {address} is larger than {MAX_HTTP_RESPONSE} bytes"
                ),
            ));
        }
    }
    let url = format!("http://{host}/.well-known/acme-challenge/{token}");
    let body = crate::http01::body(&response).map_err(|refusal| match refusal {
        crate::http01::Refusal::Status(status) => Problem::new(
            ProblemType::Unauthorized,
            format!("http-01: {url} answered status {status:?}, expected 200"),
        ),
        crate::http01::Refusal::Malformed(detail) => Problem::new(
            ProblemType::IncorrectResponse,
            format!("http-01: {url} answered malformed HTTP: {detail}"),
        ),
    })?;
    // RFC 8555 8.3: the client may add trailing white space.
    if body.trim_ascii_end() != key_authorization.as_bytes() {
        return Err(Problem::new(
            ProblemType::IncorrectResponse,
            format!(
                "http-01: the response for token {token} is not the expected key authorization"
            ),
        ));
    }
    Ok(())
}

async fn tls_alpn01(
    identifier: &Identifier,
    key_authorization: &str,
    settings: &AcmeSettings,
) -> Result<(), Problem> {
    let port = settings.insecure_tls_alpn01_port.unwrap_or(443);
    let address = target_address(identifier, port, settings).await?;
    crate::tls_alpn::validate(address, &identifier.value, key_authorization)
        .await
        .map_err(|failure| match failure {
            crate::tls_alpn::Failure::Connection(detail) => {
                Problem::new(ProblemType::Tls, format!("tls-alpn-01: {detail}"))
            }
            crate::tls_alpn::Failure::Certificate(detail) => Problem::new(
                ProblemType::IncorrectResponse,
                format!("tls-alpn-01: {detail}"),
            ),
        })
}

/// Where to connect for an identifier: the insecure override, the IP itself, or the name
/// resolved by the system.
async fn target_address(
    identifier: &Identifier,
    port: u16,
    settings: &AcmeSettings,
) -> Result<SocketAddr, Problem> {
    if let Some(ip) = settings.insecure_validation_address {
        return Ok(SocketAddr::new(ip, port));
    }
    if let Ok(ip) = identifier.value.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    let mut found = tokio::net::lookup_host((identifier.value.as_str(), port))
        .await
        .map_err(|e| {
            Problem::new(
                ProblemType::Dns,
                format!("cannot resolve {}: {e}", identifier.value),
            )
        })?;
    found.next().ok_or_else(|| {
        Problem::new(
            ProblemType::Dns,
            format!("{} has no address", identifier.value),
        )
    })
}

/// The dns-01 TXT value: base64url(SHA-256(key authorization)).
pub fn dns01_txt_value(key_authorization: &str) -> String {
    let digest =
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key_authorization.as_bytes());
    B64.encode(digest.as_ref())
}

async fn dns01(
    identifier: &Identifier,
    key_authorization: &str,
    settings: &AcmeSettings,
) -> Result<(), Problem> {
    let name = format!("_acme-challenge.{}", identifier.value);
    let server = match settings.insecure_dns_resolver {
        Some(server) => server,
        None => system_resolver().ok_or_else(|| {
            Problem::new(
                ProblemType::Dns,
                "no nameserver in /etc/resolv.conf to ask for dns-01",
            )
        })?,
    };
    let records = crate::dns::query_txt(server, &name).await.map_err(|e| {
        Problem::new(
            ProblemType::Dns,
            format!("dns-01: TXT lookup of {name} at {server}: {e}"),
        )
    })?;
    let expected = dns01_txt_value(key_authorization);
    if records.iter().any(|r| r == &expected) {
        return Ok(());
    }
    Err(Problem::new(
        ProblemType::IncorrectResponse,
        format!(
            "dns-01: {name} has {} TXT record(s), none the expected digest",
            records.len()
        ),
    ))
}

fn system_resolver() -> Option<SocketAddr> {
    let text = std::fs::read_to_string("/etc/resolv.conf").ok()?;
    text.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        (words.next() == Some("nameserver"))
            .then(|| words.next())
            .flatten()
            .and_then(|ip| ip.parse::<IpAddr>().ok())
            .map(|ip| SocketAddr::new(ip, 53))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns01_value_matches_rfc_8555_construction() {
        // SHA-256("") in base64url.
        assert_eq!(
            dns01_txt_value(""),
            "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"
        );
    }
}
