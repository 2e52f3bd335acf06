//! The rules of the name policy, one kind each: how a rule is read from ca.json and what it
//! matches. [`super::names`] decides which rules a name meets and in what order.
//!
//! A rule says whether it *touches* a name (a deny rule refuses every name it touches) and
//! whether it *covers* it (an allow list admits the names one of its rules covers). The two
//! differ only where a rule or a name stands for more than one name:
//!
//! - `*.example.com` as an allow rule covers exactly one label under `example.com`, as in
//!   step-ca; as a deny rule it touches every name under `example.com`, at any depth, so that
//!   `a.b.example.com` cannot slip past it.
//! - A wildcard name `*.example.com` is covered by an allow rule only when every name it stands
//!   for is (`*.example.com`), and touched by a deny rule when any one of them is
//!   (`www.example.com`, `*.example.com`, `*.com`).
//! - E-mail local parts and principals are compared exactly for allow rules and without regard
//!   to case for deny rules: `Root` is not admitted by `root`, nor let past it.

use std::net::IpAddr;

/// Why a name cannot be judged by rules of some kind; the name is then refused.
pub type Unjudgeable = String;

/// What a rule says of a name `N`: whether a deny rule refuses it, whether an allow rule admits
/// it.
pub trait Meets<N: ?Sized> {
    /// Some name `name` stands for is one this rule names (deny).
    fn touches(&self, name: &N) -> bool;
    /// Every name `name` stands for is one this rule names (allow).
    fn covers(&self, name: &N) -> bool;
}

/// Characters of a DNS label as certificates carry them: letters, digits, `-` and `_` (which
/// service names use). Anything else (a space, a dot at the end, `%`) cannot be compared
/// reliably with a rule, so such a name is refused rather than let past a deny rule.
fn label_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'-' || c == b'_'
}

/// The labels of a DNS name, lower case, or why it is not one.
fn labels(name: &str) -> Result<Vec<String>, Unjudgeable> {
    if name.is_empty() {
        return Err("it is empty".into());
    }
    if !name.is_ascii() {
        return Err("it is not ASCII: write it in its A-label (xn--) form".into());
    }
    if name.ends_with('.') {
        return Err("it ends with a dot".into());
    }
    let labels: Vec<String> = name.split('.').map(str::to_ascii_lowercase).collect();
    if labels.iter().any(String::is_empty) {
        return Err("it has an empty label".into());
    }
    if let Some(label) = labels.iter().find(|l| !l.bytes().all(label_char)) {
        return Err(format!(
            "label {label:?} has a character other than letters, digits, '-' and '_'"
        ));
    }
    Ok(labels)
}

/// A DNS name as policy sees it: a host name, or a literal wildcard `*.base`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainName {
    /// The labels after the wildcard, or all of them.
    base: Vec<String>,
    wildcard: bool,
}

impl DomainName {
    pub fn parse(name: &str) -> Result<Self, Unjudgeable> {
        match name.strip_prefix("*.") {
            Some(rest) => Ok(Self {
                base: labels(rest)?,
                wildcard: true,
            }),
            None if name.contains('*') => {
                Err("a wildcard may only be the whole first label (*.example.com)".into())
            }
            None => Ok(Self {
                base: labels(name)?,
                wildcard: false,
            }),
        }
    }

    pub fn is_wildcard(&self) -> bool {
        self.wildcard
    }
}

/// `suffix` ends `labels` (both in reading order), `extra` labels before it.
fn under(labels: &[String], suffix: &[String]) -> Option<usize> {
    labels
        .len()
        .checked_sub(suffix.len())
        .filter(|&extra| labels[extra..] == *suffix)
}

/// A DNS (or URI host) rule: `host.example.com`, or `*.example.com` for the names under it.
#[derive(Debug, Clone)]
pub struct DomainRule {
    base: Vec<String>,
    wildcard: bool,
}

impl DomainRule {
    /// Reads a rule as ca.json writes it.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text == "*" {
            return Err("a rule for every name is no rule: leave the list out".into());
        }
        let name = DomainName::parse(text).map_err(|why| match text.strip_prefix('.') {
            Some(domain) => format!("write a rule for the names under {domain} as *.{domain}"),
            None => why,
        })?;
        Ok(Self {
            base: name.base,
            wildcard: name.wildcard,
        })
    }
}

impl Meets<DomainName> for DomainRule {
    fn touches(&self, name: &DomainName) -> bool {
        match (self.wildcard, name.wildcard) {
            (false, false) => self.base == name.base,
            // Every name under the rule's domain, at any depth.
            (true, false) => under(&name.base, &self.base).is_some_and(|extra| extra >= 1),
            // `www.example.com` is one of the names `*.example.com` stands for.
            (false, true) => under(&self.base, &name.base) == Some(1),
            // The names `*.example.com` stands for are under both `*.example.com` and `*.com`.
            (true, true) => under(&name.base, &self.base).is_some(),
        }
    }

    fn covers(&self, name: &DomainName) -> bool {
        match (self.wildcard, name.wildcard) {
            (false, false) => self.base == name.base,
            // One label under the rule's domain, as in step-ca.
            (true, false) => under(&name.base, &self.base) == Some(1),
            (false, true) => false,
            (true, true) => self.base == name.base,
        }
    }
}

/// An IP rule: one address or a CIDR range, v4 or v6.
#[derive(Debug, Clone)]
pub struct IpRule {
    network: IpAddr,
    prefix: u8,
}

/// An IPv4 address written in IPv6 (`::ffff:10.0.0.1`) is that IPv4 address, so that it meets
/// the IPv4 rules.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

fn masked(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((bits & mask).into())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((bits & mask).into())
        }
    }
}

impl IpRule {
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let ip: IpAddr = address
            .parse()
            .map_err(|_| "not an IP address or a CIDR range (10.0.0.0/8, 2001:db8::/32)")?;
        let width: u8 = if ip.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => width,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= width)
                .ok_or_else(|| format!("prefix length {p:?} is not 0 to {width}"))?,
        };
        // `::ffff:10.0.0.0/104` is `10.0.0.0/8`.
        let (ip, prefix) = match (canonical(ip), ip) {
            (IpAddr::V4(v4), IpAddr::V6(_)) => (
                IpAddr::V4(v4),
                prefix.checked_sub(96).ok_or_else(|| {
                    "an IPv4-mapped range needs a prefix of at least 96".to_string()
                })?,
            ),
            (same, _) => (same, prefix),
        };
        Ok(Self {
            network: masked(ip, prefix),
            prefix,
        })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        ip.is_ipv4() == self.network.is_ipv4() && masked(ip, self.prefix) == self.network
    }
}

impl Meets<IpAddr> for IpRule {
    fn touches(&self, ip: &IpAddr) -> bool {
        self.contains(*ip)
    }

    fn covers(&self, ip: &IpAddr) -> bool {
        self.contains(*ip)
    }
}

/// An e-mail address as policy sees it.
#[derive(Debug, Clone)]
pub struct Mailbox {
    local: String,
    domain: Vec<String>,
}

impl Mailbox {
    pub fn parse(address: &str) -> Result<Self, Unjudgeable> {
        // The domain follows the last `@`: a quoted local part may hold one.
        let (local, domain) = address
            .rsplit_once('@')
            .ok_or_else(|| "it has no '@'".to_string())?;
        if local.is_empty() {
            return Err("its local part is empty".into());
        }
        if !local.is_ascii() {
            return Err("its local part is not ASCII".into());
        }
        let domain = labels(domain).map_err(|why| format!("its domain: {why}"))?;
        Ok(Self {
            local: local.to_string(),
            domain,
        })
    }
}

/// An e-mail rule: one mailbox, or every mailbox of one domain.
#[derive(Debug, Clone)]
pub enum EmailRule {
    Mailbox(Mailbox),
    /// `@example.com` (or `example.com`): that domain, not those under it, as in step-ca.
    Domain(Vec<String>),
}

impl EmailRule {
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.contains('*') {
            return Err("e-mail rules have no wildcards: write @example.com for a domain".into());
        }
        if text.matches('@').count() > 1 {
            return Err("more than one '@'".into());
        }
        match text.strip_prefix('@') {
            Some(domain) => Ok(Self::Domain(labels(domain)?)),
            None if text.contains('@') => Ok(Self::Mailbox(Mailbox::parse(text)?)),
            None => Ok(Self::Domain(labels(text)?)),
        }
    }
}

impl Meets<Mailbox> for EmailRule {
    fn touches(&self, mailbox: &Mailbox) -> bool {
        match self {
            Self::Mailbox(rule) => {
                rule.domain == mailbox.domain && rule.local.eq_ignore_ascii_case(&mailbox.local)
            }
            Self::Domain(domain) => *domain == mailbox.domain,
        }
    }

    fn covers(&self, mailbox: &Mailbox) -> bool {
        match self {
            Self::Mailbox(rule) => rule.domain == mailbox.domain && rule.local == mailbox.local,
            Self::Domain(domain) => *domain == mailbox.domain,
        }
    }
}

/// The host of a URI, which URI rules judge (RFC 5280 4.2.1.10 likewise constrains URIs by
/// their host).
pub fn uri_host(uri: &str) -> Result<DomainName, Unjudgeable> {
    let (_, rest) = uri
        .split_once("://")
        .ok_or_else(|| "it has no host (scheme://host/...)".to_string())?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host_port.starts_with('[') {
        return Err("its host is an IP address, which URI rules do not name".into());
    }
    let host = host_port
        .rsplit_once(':')
        .map_or(host_port, |(host, _)| host);
    if host.parse::<IpAddr>().is_ok() {
        return Err("its host is an IP address, which URI rules do not name".into());
    }
    if host.contains('*') {
        return Err("its host has a wildcard".into());
    }
    DomainName::parse(host).map_err(|why| format!("its host {host:?}: {why}"))
}

/// A URI rule: the host's domain, as a DNS rule.
pub fn uri_rule(text: &str) -> Result<DomainRule, String> {
    let text = text.trim();
    if text.contains("://") {
        return Err("name the host only, without a scheme".into());
    }
    if text.contains(['/', ':', '[', ']', '@']) {
        return Err("name the host only, without a port, path or user".into());
    }
    if text.parse::<IpAddr>().is_ok() {
        return Err("URI rules name hosts by domain, not by IP address".into());
    }
    DomainRule::parse(text)
}

/// A rule naming one string exactly (a principal or a common name); `*` for any, where the
/// kind allows it.
#[derive(Debug, Clone)]
pub struct ExactRule(String);

impl ExactRule {
    pub fn parse(text: &str, any_allowed: bool) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Err("empty".into());
        }
        if text == "*" && !any_allowed {
            return Err("a rule for every name is no rule: leave the list out".into());
        }
        Ok(Self(text.to_string()))
    }
}

impl Meets<str> for ExactRule {
    fn touches(&self, name: &str) -> bool {
        self.0 == "*" || self.0.eq_ignore_ascii_case(name)
    }

    fn covers(&self, name: &str) -> bool {
        self.0 == "*" || self.0 == name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_rules_say_why() {
        for (rule, why) in [
            ("*", "no rule"),
            (".example.com", "*.example.com"),
            ("a.*.example.com", "whole first label"),
            ("**.example.com", "whole first label"),
            ("example..com", "empty label"),
            ("example.com.", "ends with a dot"),
            ("bücher.example", "A-label"),
            ("exa mple.com", "character"),
        ] {
            let error = DomainRule::parse(rule).unwrap_err();
            assert!(error.contains(why), "{rule}: {error}");
        }
        for (rule, why) in [
            ("10.0.0.0/33", "prefix length"),
            ("10.0.0", "not an IP"),
            ("::ffff:10.0.0.0/64", "at least 96"),
        ] {
            let error = IpRule::parse(rule).unwrap_err();
            assert!(error.contains(why), "{rule}: {error}");
        }
        for (rule, why) in [
            ("*@example.com", "no wildcards"),
            ("a@b@example.com", "more than one"),
            ("@", "empty"),
            ("@.example.com", "empty label"),
        ] {
            let error = EmailRule::parse(rule).unwrap_err();
            assert!(error.contains(why), "{rule}: {error}");
        }
        for (rule, why) in [
            ("https://example.com", "scheme"),
            ("example.com:443", "port"),
            ("192.0.2.1", "IP address"),
        ] {
            let error = uri_rule(rule).unwrap_err();
            assert!(error.contains(why), "{rule}: {error}");
        }
        assert!(ExactRule::parse(" ", true).is_err());
        assert!(ExactRule::parse("*", false).is_err());
        assert!(ExactRule::parse("*", true).is_ok());
    }

    #[test]
    fn ip_rules_are_masked_and_mapped_addresses_meet_ipv4_rules() {
        let rule = IpRule::parse("10.1.2.3/8").unwrap();
        assert!(rule.contains("10.200.0.1".parse().unwrap()));
        assert!(rule.contains("::ffff:10.0.0.1".parse().unwrap()));
        assert!(!rule.contains("11.0.0.1".parse().unwrap()));
        assert!(!rule.contains("::a00:1".parse().unwrap()));
        let mapped = IpRule::parse("::ffff:10.0.0.0/104").unwrap();
        assert!(mapped.contains("10.9.9.9".parse().unwrap()));
        let all = IpRule::parse("0.0.0.0/0").unwrap();
        assert!(all.contains("203.0.113.9".parse().unwrap()));
        assert!(!all.contains("2001:db8::1".parse().unwrap()));
    }

    #[test]
    fn uri_hosts_are_read_without_user_port_or_path() {
        let host = |uri| uri_host(uri).map(|h| h.base.join("."));
        assert_eq!(
            host("https://user@Svc.Example.com:8443/a?b#c").unwrap(),
            "svc.example.com"
        );
        assert_eq!(host("spiffe://example.com/ns/web").unwrap(), "example.com");
        for uri in [
            "urn:uuid:1234",
            "https://[2001:db8::1]/",
            "https://192.0.2.1/",
            "https://*.example.com/",
            "https:///path",
        ] {
            assert!(uri_host(uri).is_err(), "{uri}");
        }
    }
}
