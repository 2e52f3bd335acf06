//! Subject alternative names as step writes them in tokens: one string each, classified by form.

use std::fmt;
use std::net::IpAddr;

use crate::error::{Error, Result};

/// A subject alternative name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum San {
    Dns(String),
    Ip(IpAddr),
    Email(String),
    Uri(String),
}

impl San {
    /// Classifies a SAN string the way step does: an IP address, an e-mail address (has `@`),
    /// a URI (has a scheme), or else a DNS name. DNS names are compared case-insensitively, so
    /// they are kept in lower case.
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        if text.is_empty() {
            return Err(Error::CsrMalformed("empty subject alternative name".into()));
        }
        if let Ok(ip) = text.parse::<IpAddr>() {
            return Ok(San::Ip(ip));
        }
        if text.contains("://") {
            return Ok(San::Uri(text.to_string()));
        }
        if text.contains('@') {
            return Ok(San::Email(text.to_string()));
        }
        if !text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'*' | b'_'))
            || text.len() > 253
        {
            return Err(Error::CsrMalformed(format!(
                "{text:?} is not a DNS name, IP address, e-mail address or URI"
            )));
        }
        Ok(San::Dns(text.to_ascii_lowercase()))
    }
}

impl fmt::Display for San {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            San::Dns(name) | San::Email(name) | San::Uri(name) => f.write_str(name),
            San::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_like_step() {
        assert_eq!(
            San::parse("Svc.Internal").unwrap(),
            San::Dns("svc.internal".into())
        );
        assert_eq!(
            San::parse("10.0.0.1").unwrap(),
            San::Ip("10.0.0.1".parse().unwrap())
        );
        assert_eq!(San::parse("::1").unwrap(), San::Ip("::1".parse().unwrap()));
        assert_eq!(San::parse("a@b.c").unwrap(), San::Email("a@b.c".into()));
        assert_eq!(
            San::parse("spiffe://x/y").unwrap(),
            San::Uri("spiffe://x/y".into())
        );
        assert!(San::parse("").is_err());
        assert!(San::parse("bad name").is_err());
    }
}
