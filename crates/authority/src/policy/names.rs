//! The name policy: allow and deny lists of the names certificates may carry, in ca.json at
//! `authority.policy` (every certificate) and on a provisioner (its certificates), in step-ca's
//! format (`mayfly_config::policy`).
//!
//! The policy stage checks every template against it, whatever the credential, just before
//! the template leaves [`crate::policy`] (and [`crate::policy::ssh`]); ACME orders are also
//! checked when they are made. A name must pass both levels:
//!
//! 1. no deny rule of either level touches it (deny wins, over both levels' allow lists);
//! 2. a literal wildcard (`*.example.com`) needs `allowWildcardNames` at each level that has
//!    DNS rules;
//! 3. at each level that has an allow list of the certificate's kind, one of its rules covers
//!    it. A level with only deny rules allows what they do not touch.
//!
//! The first refusal is returned, naming the level and the rule (or the list) that refused.
//! [`super::rules`] says what touches and covers mean for each kind of rule.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;

use mayfly_config::config::AuthorityConfig;
use mayfly_config::policy::{PolicyConfig, SshNamesConfig, SshRulesConfig, X509NamesConfig};
use mayfly_pki::San;
use mayfly_pki::ssh::CertType;

use super::rules::{
    DomainName, DomainRule, EmailRule, ExactRule, IpRule, Mailbox, Meets, Unjudgeable, uri_host,
    uri_rule,
};
use crate::error::{Error, Result};

/// A name as a refusal names it: `dns name "x.example.com"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyName {
    noun: &'static str,
    value: String,
}

impl fmt::Display for PolicyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?}", self.noun, self.value)
    }
}

/// Whose policy refused: the authority's or a provisioner's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyLevel {
    Authority,
    Provisioner(String),
}

impl fmt::Display for PolicyLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyLevel::Authority => f.write_str("the authority policy"),
            PolicyLevel::Provisioner(name) => write!(f, "provisioner {name:?}"),
        }
    }
}

/// A rule with its text as ca.json writes it, for refusals to quote.
#[derive(Debug, Clone)]
struct Rule<T> {
    text: String,
    rule: T,
}

/// One allow or deny list.
#[derive(Debug, Clone, Default)]
struct List {
    cn: Vec<Rule<ExactRule>>,
    dns: Vec<Rule<DomainRule>>,
    ip: Vec<Rule<IpRule>>,
    email: Vec<Rule<EmailRule>>,
    uri: Vec<Rule<DomainRule>>,
    principal: Vec<Rule<ExactRule>>,
}

impl List {
    fn is_empty(&self) -> bool {
        self.count(Kind::Cn) == 0
            && self.count(Kind::Dns) == 0
            && self.count(Kind::Ip) == 0
            && self.count(Kind::Email) == 0
            && self.count(Kind::Uri) == 0
            && self.count(Kind::Principal) == 0
    }

    fn count(&self, kind: Kind) -> usize {
        match kind {
            Kind::Cn => self.cn.len(),
            Kind::Dns => self.dns.len(),
            Kind::Ip => self.ip.len(),
            Kind::Email => self.email.len(),
            Kind::Uri => self.uri.len(),
            Kind::Principal => self.principal.len(),
        }
    }
}

/// The rules of one level for one kind of certificate.
#[derive(Debug, Clone, Default)]
struct Rules {
    allow: List,
    deny: List,
    /// `allowWildcardNames` (X.509 only).
    allow_wildcards: bool,
}

impl Rules {
    fn has_dns_rules(&self) -> bool {
        !self.allow.dns.is_empty() || !self.deny.dns.is_empty()
    }
}

/// One level's policy; `None` where it has no rules for that kind of certificate.
#[derive(Debug, Clone, Default)]
struct LevelRules {
    x509: Option<Rules>,
    ssh_user: Option<Rules>,
    ssh_host: Option<Rules>,
}

/// Reads each rule of `texts` with `parse`; errors name the rule by its ca.json path.
fn rules<T>(
    path: &str,
    texts: &[String],
    parse: impl Fn(&str) -> std::result::Result<T, String>,
) -> Result<Vec<Rule<T>>> {
    texts
        .iter()
        .enumerate()
        .map(|(index, text)| {
            parse(text)
                .map(|rule| Rule {
                    text: text.trim().to_string(),
                    rule,
                })
                .map_err(|why| Error::Config(format!("{path}[{index}] {text:?}: {why}")))
        })
        .collect()
}

fn x509_list(path: &str, names: Option<&X509NamesConfig>) -> Result<List> {
    let Some(names) = names else {
        return Ok(List::default());
    };
    Ok(List {
        cn: rules(&format!("{path}.cn"), &names.cn, |t| {
            ExactRule::parse(t, false)
        })?,
        dns: rules(&format!("{path}.dns"), &names.dns, DomainRule::parse)?,
        ip: rules(&format!("{path}.ip"), &names.ip, IpRule::parse)?,
        email: rules(&format!("{path}.email"), &names.email, EmailRule::parse)?,
        uri: rules(&format!("{path}.uri"), &names.uri, uri_rule)?,
        principal: Vec::new(),
    })
}

/// An SSH list; `user` lists take e-mail addresses and principals, host lists DNS names, IP
/// addresses and principals: any other field would never meet a principal of that kind.
fn ssh_list(path: &str, names: Option<&SshNamesConfig>, user: bool) -> Result<List> {
    let Some(names) = names else {
        return Ok(List::default());
    };
    let misplaced = if user {
        [("dns", &names.dns), ("ip", &names.ip)]
            .into_iter()
            .find(|(_, list)| !list.is_empty())
            .map(|(field, _)| {
                (
                    field,
                    "user certificates name users: use email or principal",
                )
            })
    } else {
        (!names.email.is_empty()).then_some((
            "email",
            "host certificates name hosts: use dns, ip or principal",
        ))
    };
    if let Some((field, why)) = misplaced {
        return Err(Error::Config(format!("{path}.{field}: {why}")));
    }
    Ok(List {
        cn: Vec::new(),
        dns: rules(&format!("{path}.dns"), &names.dns, DomainRule::parse)?,
        ip: rules(&format!("{path}.ip"), &names.ip, IpRule::parse)?,
        email: rules(&format!("{path}.email"), &names.email, EmailRule::parse)?,
        uri: Vec::new(),
        principal: rules(&format!("{path}.principal"), &names.principal, |t| {
            ExactRule::parse(t, true)
        })?,
    })
}

fn ssh_rules(path: &str, config: Option<&SshRulesConfig>, user: bool) -> Result<Option<Rules>> {
    let Some(config) = config else {
        return Ok(None);
    };
    let rules = Rules {
        allow: ssh_list(&format!("{path}.allow"), config.allow.as_ref(), user)?,
        deny: ssh_list(&format!("{path}.deny"), config.deny.as_ref(), user)?,
        allow_wildcards: false,
    };
    Ok((!rules.allow.is_empty() || !rules.deny.is_empty()).then_some(rules))
}

impl LevelRules {
    fn from_config(path: &str, config: &PolicyConfig) -> Result<Self> {
        let x509 = match &config.x509 {
            None => None,
            Some(x509) => {
                let rules = Rules {
                    allow: x509_list(&format!("{path}.x509.allow"), x509.allow.as_ref())?,
                    deny: x509_list(&format!("{path}.x509.deny"), x509.deny.as_ref())?,
                    allow_wildcards: x509.allow_wildcard_names,
                };
                (!rules.allow.is_empty() || !rules.deny.is_empty()).then_some(rules)
            }
        };
        let ssh = config.ssh.as_ref();
        Ok(Self {
            x509,
            ssh_user: ssh_rules(
                &format!("{path}.ssh.user"),
                ssh.and_then(|s| s.user.as_ref()),
                true,
            )?,
            ssh_host: ssh_rules(
                &format!("{path}.ssh.host"),
                ssh.and_then(|s| s.host.as_ref()),
                false,
            )?,
        })
    }
}

/// Every name policy of a CA: the authority's and each provisioner's, by provisioner name (so
/// that every kind of credential meets the same policy, whoever verified it).
#[derive(Debug, Clone, Default)]
pub struct NamePolicies {
    authority: LevelRules,
    provisioners: HashMap<String, LevelRules>,
}

impl NamePolicies {
    /// Reads `authority.policy` and each provisioner's `policy`; an error names the rule.
    pub fn from_config(config: &AuthorityConfig) -> Result<Self> {
        let authority = match &config.policy {
            Some(policy) => LevelRules::from_config("authority.policy", policy)?,
            None => LevelRules::default(),
        };
        let mut provisioners = HashMap::new();
        for (index, provisioner) in config.provisioners.iter().enumerate() {
            let Some(policy) = &provisioner.policy else {
                continue;
            };
            // A policy found by name must belong to one provisioner only.
            if config
                .provisioners
                .iter()
                .filter(|p| p.name == provisioner.name)
                .count()
                > 1
            {
                return Err(Error::Config(format!(
                    "authority.provisioners[{index}].policy: more than one provisioner is named \
                     {:?}, so which one the policy is for is ambiguous: rename one",
                    provisioner.name
                )));
            }
            let rules = LevelRules::from_config(
                &format!("authority.provisioners[{index}].policy"),
                policy,
            )?;
            provisioners.insert(provisioner.name.clone(), rules);
        }
        Ok(Self {
            authority,
            provisioners,
        })
    }

    /// The policy a certificate vouched for by `provisioner` meets.
    pub fn for_provisioner<'a>(&'a self, provisioner: &'a str) -> NamePolicy<'a> {
        NamePolicy {
            authority: &self.authority,
            provisioner: self
                .provisioners
                .get(provisioner)
                .map(|rules| (provisioner, rules)),
        }
    }
}

/// The two levels one provisioner's certificates meet.
#[derive(Debug, Clone, Copy)]
pub struct NamePolicy<'a> {
    authority: &'a LevelRules,
    provisioner: Option<(&'a str, &'a LevelRules)>,
}

/// The kinds of rules; their names are ca.json's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Cn,
    Dns,
    Ip,
    Email,
    Uri,
    Principal,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Cn => "cn",
            Kind::Dns => "dns",
            Kind::Ip => "ip",
            Kind::Email => "email",
            Kind::Uri => "uri",
            Kind::Principal => "principal",
        }
    }
}

/// A name to check, as the certificate will carry it.
#[derive(Debug, Clone, Copy)]
enum Checked<'a> {
    CommonName(&'a str),
    San(&'a San),
    UserPrincipal(&'a str),
    HostPrincipal(&'a str),
}

impl Checked<'_> {
    fn for_refusal(&self) -> PolicyName {
        let (noun, value) = match self {
            Checked::CommonName(cn) => ("common name", cn.to_string()),
            Checked::San(San::Dns(dns)) => ("dns name", dns.clone()),
            Checked::San(San::Ip(ip)) => ("ip address", ip.to_string()),
            Checked::San(San::Email(email)) => ("email address", email.clone()),
            Checked::San(San::Uri(uri)) => ("uri", uri.clone()),
            Checked::UserPrincipal(p) | Checked::HostPrincipal(p) => ("principal", p.to_string()),
        };
        PolicyName { noun, value }
    }

    /// The ways rules see this name: a common name is itself and, when it reads as one, a
    /// DNS name, IP address, e-mail address or URI; a user principal is an e-mail address
    /// (with `@`) or a user name; a host principal an IP address or a host name, which DNS
    /// and principal rules both judge.
    fn views(&self) -> Vec<View> {
        let of_san = |san: &San| match san {
            San::Dns(dns) => View::Dns(dns.clone()),
            San::Ip(ip) => View::Ip(*ip),
            San::Email(email) => View::Email(email.clone()),
            San::Uri(uri) => View::Uri(uri.clone()),
        };
        match self {
            Checked::CommonName(cn) => std::iter::once(View::Exact(Kind::Cn, cn.to_string()))
                .chain(San::parse(cn).ok().as_ref().map(of_san))
                .collect(),
            Checked::San(san) => vec![of_san(san)],
            Checked::UserPrincipal(p) if p.contains('@') => vec![View::Email(p.to_string())],
            Checked::UserPrincipal(p) => vec![View::Exact(Kind::Principal, p.to_string())],
            // sshd matches host principals as patterns: one is only as narrow as its
            // wildcards, which no rule can bound, so a policy refuses it.
            Checked::HostPrincipal(p) if p.contains(['*', '?']) => vec![View::Pattern],
            Checked::HostPrincipal(p) => match p.parse::<IpAddr>() {
                Ok(ip) => vec![View::Ip(ip)],
                Err(_) => vec![
                    View::Dns(p.to_string()),
                    View::Exact(Kind::Principal, p.to_string()),
                ],
            },
        }
    }
}

/// A name as one kind of rule sees it.
#[derive(Debug, Clone)]
enum View {
    Exact(Kind, String),
    Dns(String),
    Ip(IpAddr),
    Email(String),
    Uri(String),
    /// A host principal with wildcards: every kind of host rule would have to judge it.
    Pattern,
}

/// Whether a list is asked which rule denies a name or which allows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Deny,
    Allow,
}

/// What a list says of one view of a name.
enum Verdict<'a> {
    /// This rule touches (deny) or covers (allow) it.
    Met(&'a str),
    /// The list has rules of this kind, none meeting it.
    NotMet(Kind),
    /// The list has rules of this kind, which cannot judge it.
    Unjudgeable(Kind, Unjudgeable),
    /// The list has no rules of this kind.
    NoRules,
}

fn verdict<'a, T: Meets<N>, N: ?Sized>(
    kind: Kind,
    rules: &'a [Rule<T>],
    name: std::result::Result<&N, Unjudgeable>,
    mode: Mode,
) -> Verdict<'a> {
    if rules.is_empty() {
        return Verdict::NoRules;
    }
    let name = match name {
        Ok(name) => name,
        Err(why) => return Verdict::Unjudgeable(kind, why),
    };
    let met = rules.iter().find(|r| match mode {
        Mode::Deny => r.rule.touches(name),
        Mode::Allow => r.rule.covers(name),
    });
    match met {
        Some(rule) => Verdict::Met(&rule.text),
        None => Verdict::NotMet(kind),
    }
}

impl List {
    fn judge<'a>(&'a self, view: &View, mode: Mode) -> Verdict<'a> {
        // Parsed only when there are rules to judge it: a name of a kind no rule names is
        // never refused for its form.
        match view {
            View::Exact(Kind::Cn, text) => verdict(Kind::Cn, &self.cn, Ok(text.as_str()), mode),
            View::Exact(kind, text) => verdict(*kind, &self.principal, Ok(text.as_str()), mode),
            View::Dns(text) if !self.dns.is_empty() => {
                let name = DomainName::parse(text);
                verdict(
                    Kind::Dns,
                    &self.dns,
                    name.as_ref().map_err(Clone::clone),
                    mode,
                )
            }
            View::Ip(ip) => verdict(Kind::Ip, &self.ip, Ok(ip), mode),
            View::Email(text) if !self.email.is_empty() => {
                let mailbox = Mailbox::parse(text);
                verdict(
                    Kind::Email,
                    &self.email,
                    mailbox.as_ref().map_err(Clone::clone),
                    mode,
                )
            }
            View::Uri(text) if !self.uri.is_empty() => {
                let host = uri_host(text);
                verdict(
                    Kind::Uri,
                    &self.uri,
                    host.as_ref().map_err(Clone::clone),
                    mode,
                )
            }
            View::Dns(_) | View::Email(_) | View::Uri(_) => Verdict::NoRules,
            View::Pattern => match [Kind::Dns, Kind::Ip, Kind::Principal]
                .into_iter()
                .find(|kind| self.count(*kind) > 0)
            {
                Some(kind) => Verdict::Unjudgeable(
                    kind,
                    "it has wildcards ('*' or '?'), and a pattern cannot be checked".into(),
                ),
                None => Verdict::NoRules,
            },
        }
    }
}

/// The rule kinds that could judge a name's views, for "it has no ... rules".
fn kinds_of(views: &[View]) -> Vec<Kind> {
    let mut kinds: Vec<Kind> = Vec::new();
    for view in views {
        let kind = match view {
            View::Exact(kind, _) => *kind,
            View::Dns(_) => Kind::Dns,
            View::Ip(_) => Kind::Ip,
            View::Email(_) => Kind::Email,
            View::Uri(_) => Kind::Uri,
            View::Pattern => Kind::Principal,
        };
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    kinds
}

fn joined(kinds: &[Kind]) -> String {
    kinds
        .iter()
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(" or ")
}

/// Which of a level's rules a kind of certificate meets.
type Pick = fn(&LevelRules) -> Option<&Rules>;

impl<'a> NamePolicy<'a> {
    /// Checks a certificate's SANs and subject common name (an empty common name is not a
    /// name). The common name comes last: it is usually one of the SANs, which a refusal
    /// had better name as what it is.
    pub fn check_x509(&self, common_name: &str, sans: &[San]) -> Result<()> {
        let names: Vec<Checked> = sans
            .iter()
            .map(Checked::San)
            .chain((!common_name.is_empty()).then_some(Checked::CommonName(common_name)))
            .collect();
        self.check(&names, |level| level.x509.as_ref())
    }

    /// Checks an SSH certificate's principals against the user or host rules.
    pub fn check_ssh(&self, cert_type: CertType, principals: &[String]) -> Result<()> {
        match cert_type {
            CertType::User => {
                let names: Vec<Checked> = principals
                    .iter()
                    .map(|p| Checked::UserPrincipal(p))
                    .collect();
                self.check(&names, |level| level.ssh_user.as_ref())
            }
            CertType::Host => {
                let names: Vec<Checked> = principals
                    .iter()
                    .map(|p| Checked::HostPrincipal(p))
                    .collect();
                self.check(&names, |level| level.ssh_host.as_ref())
            }
        }
    }

    /// The levels with rules for this kind of certificate, the authority first.
    fn levels(&self, pick: Pick) -> Vec<(PolicyLevel, &'a Rules)> {
        let mut levels = Vec::new();
        if let Some(rules) = pick(self.authority) {
            levels.push((PolicyLevel::Authority, rules));
        }
        if let Some((name, level)) = self.provisioner
            && let Some(rules) = pick(level)
        {
            levels.push((PolicyLevel::Provisioner(name.to_string()), rules));
        }
        levels
    }

    fn check(&self, names: &[Checked], pick: Pick) -> Result<()> {
        let levels = self.levels(pick);
        if levels.is_empty() {
            return Ok(());
        }
        let viewed: Vec<(&Checked, Vec<View>)> = names.iter().map(|n| (n, n.views())).collect();
        let unjudgeable =
            |name: &Checked, level: &PolicyLevel, kind: Kind, why: String| Error::NameUncheckable {
                name: name.for_refusal(),
                level: level.clone(),
                kind: kind.as_str(),
                why,
            };
        // Deny wins: every deny rule of both levels before any allow list.
        for (level, rules) in &levels {
            for (name, views) in &viewed {
                for view in views {
                    match rules.deny.judge(view, Mode::Deny) {
                        Verdict::Met(rule) => {
                            return Err(Error::NameDenied {
                                name: name.for_refusal(),
                                level: level.clone(),
                                rule: rule.to_string(),
                            });
                        }
                        Verdict::Unjudgeable(kind, why) => {
                            return Err(unjudgeable(name, level, kind, why));
                        }
                        Verdict::NotMet(_) | Verdict::NoRules => {}
                    }
                }
            }
        }
        for (level, rules) in &levels {
            if rules.allow_wildcards || !rules.has_dns_rules() {
                continue;
            }
            for (name, views) in &viewed {
                let wildcard = views.iter().any(|view| {
                    matches!(view, View::Dns(text)
                        if DomainName::parse(text).is_ok_and(|n| n.is_wildcard()))
                });
                if wildcard {
                    return Err(Error::WildcardNameNotAllowed {
                        name: name.for_refusal(),
                        level: level.clone(),
                    });
                }
            }
        }
        for (level, rules) in &levels {
            if rules.allow.is_empty() {
                continue;
            }
            for (name, views) in &viewed {
                let mut not_met = Vec::new();
                let mut why_not = None;
                let mut allowed = false;
                for view in views {
                    match rules.allow.judge(view, Mode::Allow) {
                        Verdict::Met(_) => allowed = true,
                        Verdict::NotMet(kind) => not_met.push(kind),
                        Verdict::Unjudgeable(kind, why) => {
                            why_not.get_or_insert((kind, why));
                        }
                        Verdict::NoRules => {}
                    }
                }
                if allowed {
                    continue;
                }
                if let Some((kind, why)) = why_not {
                    return Err(unjudgeable(name, level, kind, why));
                }
                let reason = if not_met.is_empty() {
                    format!("it has no {} rules", joined(&kinds_of(views)))
                } else {
                    format!("no {} rule matches it", joined(&not_met))
                };
                return Err(Error::NameNotAllowed {
                    name: name.for_refusal(),
                    level: level.clone(),
                    reason,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    /// A CA whose provisioner `ops` has `provisioner` as its policy, beside `authority`.
    fn policies(authority: &Value, provisioner: &Value) -> Result<NamePolicies> {
        let config: AuthorityConfig = serde_json::from_value(json!({
            "policy": authority,
            "provisioners": [
                {"type": "JWK", "name": "ops", "policy": provisioner},
                {"type": "JWK", "name": "plain"},
            ],
        }))
        .expect("a policy in ca.json's format");
        NamePolicies::from_config(&config)
    }

    /// What a certificate names.
    #[derive(Debug, Clone, Copy)]
    enum Cert {
        X509(&'static str, &'static [&'static str]),
        User(&'static [&'static str]),
        Host(&'static [&'static str]),
    }

    fn check(policies: &NamePolicies, provisioner: &str, cert: Cert) -> Result<()> {
        let policy = policies.for_provisioner(provisioner);
        let owned = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        match cert {
            Cert::X509(cn, sans) => {
                let sans: Vec<San> = sans.iter().map(|s| San::parse(s).unwrap()).collect();
                policy.check_x509(cn, &sans)
            }
            Cert::User(principals) => policy.check_ssh(CertType::User, &owned(principals)),
            Cert::Host(principals) => policy.check_ssh(CertType::Host, &owned(principals)),
        }
    }

    fn x509(names: Value) -> Value {
        json!({"x509": names})
    }

    fn dns(name: &'static [&'static str]) -> Cert {
        Cert::X509("", name)
    }

    /// Every rule kind, allow and deny, both levels: (case, authority policy, `ops`'s policy,
    /// certificate, None when allowed or the refusal's exact message).
    #[test]
    fn every_rule_kind_allows_and_refuses_what_it_says() {
        let none = Value::Null;
        let allow_dns = |rules: &[&str]| x509(json!({"allow": {"dns": rules}}));
        let deny_dns = |rules: &[&str]| x509(json!({"deny": {"dns": rules}}));
        let cases: Vec<(&str, Value, Value, Cert, Option<&str>)> = vec![
            (
                "no policy allows anything",
                none.clone(),
                none.clone(),
                Cert::X509(
                    "anything",
                    &["anything.test", "10.9.9.9", "a@b.test", "https://x.test/"],
                ),
                None,
            ),
            (
                "empty blocks are no policy",
                json!({"x509": {"allow": {}, "deny": {"dns": null}}, "ssh": {"user": {}}}),
                json!({}),
                Cert::User(&["root"]),
                None,
            ),
            // dns, exact
            (
                "dns exact allow",
                allow_dns(&["www.example.com"]),
                none.clone(),
                dns(&["www.example.com"]),
                None,
            ),
            (
                "dns exact allow, another name",
                allow_dns(&["www.example.com"]),
                none.clone(),
                dns(&["api.example.com"]),
                Some(
                    r#"dns name "api.example.com" is not allowed by the authority policy's allow list: no dns rule matches it"#,
                ),
            ),
            (
                "dns exact deny ignores case",
                deny_dns(&["WWW.Evil.test"]),
                none.clone(),
                dns(&["www.evil.test"]),
                Some(
                    r#"dns name "www.evil.test" is denied by the authority policy's deny rule "WWW.Evil.test""#,
                ),
            ),
            (
                "dns exact deny, its parent",
                deny_dns(&["www.evil.test"]),
                none.clone(),
                dns(&["evil.test"]),
                None,
            ),
            // dns, wildcard
            (
                "dns wildcard allow, one label",
                allow_dns(&["*.example.com"]),
                none.clone(),
                dns(&["web.example.com"]),
                None,
            ),
            (
                "dns wildcard allow, two labels",
                allow_dns(&["*.example.com"]),
                none.clone(),
                dns(&["a.web.example.com"]),
                Some(
                    r#"dns name "a.web.example.com" is not allowed by the authority policy's allow list: no dns rule matches it"#,
                ),
            ),
            (
                "dns wildcard allow, the domain itself",
                allow_dns(&["*.example.com"]),
                none.clone(),
                dns(&["example.com"]),
                Some(
                    r#"dns name "example.com" is not allowed by the authority policy's allow list: no dns rule matches it"#,
                ),
            ),
            (
                "dns wildcard deny, any depth",
                deny_dns(&["*.evil.test"]),
                none.clone(),
                dns(&["a.b.evil.test"]),
                Some(
                    r#"dns name "a.b.evil.test" is denied by the authority policy's deny rule "*.evil.test""#,
                ),
            ),
            (
                "dns wildcard deny, a lookalike",
                deny_dns(&["*.evil.test"]),
                none.clone(),
                dns(&["notevil.test", "evil.test"]),
                None,
            ),
            // literal wildcard names
            (
                "wildcard name without allowWildcardNames",
                allow_dns(&["*.example.com"]),
                none.clone(),
                dns(&["*.example.com"]),
                Some(
                    r#"dns name "*.example.com" is a wildcard, which the authority policy does not allow ("allowWildcardNames")"#,
                ),
            ),
            (
                "wildcard name with allowWildcardNames",
                x509(json!({"allow": {"dns": ["*.example.com"]}, "allowWildcardNames": true})),
                none.clone(),
                dns(&["*.example.com"]),
                None,
            ),
            (
                "wildcard name covering a denied name",
                x509(json!({"deny": {"dns": ["admin.example.com"]}, "allowWildcardNames": true})),
                none.clone(),
                dns(&["*.example.com"]),
                Some(
                    r#"dns name "*.example.com" is denied by the authority policy's deny rule "admin.example.com""#,
                ),
            ),
            (
                "wildcard name under a denied domain",
                x509(json!({"deny": {"dns": ["*.example.com"]}, "allowWildcardNames": true})),
                none.clone(),
                dns(&["*.a.example.com"]),
                Some(
                    r#"dns name "*.a.example.com" is denied by the authority policy's deny rule "*.example.com""#,
                ),
            ),
            (
                "wildcard name beside a level without dns rules",
                x509(json!({"deny": {"ip": ["10.0.0.0/8"]}})),
                none.clone(),
                dns(&["*.example.com"]),
                None,
            ),
            // ip
            (
                "ip single allow",
                x509(json!({"allow": {"ip": ["192.0.2.1"]}})),
                none.clone(),
                dns(&["192.0.2.1"]),
                None,
            ),
            (
                "ip single allow, its neighbour",
                x509(json!({"allow": {"ip": ["192.0.2.1"]}})),
                none.clone(),
                dns(&["192.0.2.2"]),
                Some(
                    r#"ip address "192.0.2.2" is not allowed by the authority policy's allow list: no ip rule matches it"#,
                ),
            ),
            (
                "ip v4 range allow",
                x509(json!({"allow": {"ip": ["10.0.0.0/8"]}})),
                none.clone(),
                dns(&["10.1.2.3", "::ffff:10.3.2.1"]),
                None,
            ),
            (
                "ip v4 range allow, outside",
                x509(json!({"allow": {"ip": ["10.0.0.0/8"]}})),
                none.clone(),
                dns(&["11.0.0.1"]),
                Some(
                    r#"ip address "11.0.0.1" is not allowed by the authority policy's allow list: no ip rule matches it"#,
                ),
            ),
            (
                "ip v6 range deny",
                x509(json!({"deny": {"ip": ["2001:db8::/32"]}})),
                none.clone(),
                dns(&["2001:db8:1::1"]),
                Some(
                    r#"ip address "2001:db8:1::1" is denied by the authority policy's deny rule "2001:db8::/32""#,
                ),
            ),
            (
                "ip v6 range deny, outside",
                x509(json!({"deny": {"ip": ["2001:db8::/32"]}})),
                none.clone(),
                dns(&["2001:db9::1"]),
                None,
            ),
            (
                "an allow list without ip rules",
                allow_dns(&["*.example.com"]),
                none.clone(),
                dns(&["10.0.0.1"]),
                Some(
                    r#"ip address "10.0.0.1" is not allowed by the authority policy's allow list: it has no ip rules"#,
                ),
            ),
            // email
            (
                "email exact allow",
                x509(json!({"allow": {"email": ["alice@example.com"]}})),
                none.clone(),
                dns(&["alice@example.com", "alice@EXAMPLE.com"]),
                None,
            ),
            (
                "email exact allow, another case of the local part",
                x509(json!({"allow": {"email": ["alice@example.com"]}})),
                none.clone(),
                dns(&["Alice@example.com"]),
                Some(
                    r#"email address "Alice@example.com" is not allowed by the authority policy's allow list: no email rule matches it"#,
                ),
            ),
            (
                "email exact deny ignores case",
                x509(json!({"deny": {"email": ["mallory@example.com"]}})),
                none.clone(),
                dns(&["Mallory@Example.com"]),
                Some(
                    r#"email address "Mallory@Example.com" is denied by the authority policy's deny rule "mallory@example.com""#,
                ),
            ),
            (
                "email domain allow",
                x509(json!({"allow": {"email": ["@example.com"]}})),
                none.clone(),
                dns(&["bob@example.com"]),
                None,
            ),
            (
                "email domain allow, a subdomain",
                x509(json!({"allow": {"email": ["example.com"]}})),
                none.clone(),
                dns(&["bob@mail.example.com"]),
                Some(
                    r#"email address "bob@mail.example.com" is not allowed by the authority policy's allow list: no email rule matches it"#,
                ),
            ),
            // uri
            (
                "uri domain allow",
                x509(json!({"allow": {"uri": ["*.example.com"]}})),
                none.clone(),
                dns(&["spiffe://web.example.com/ns/a"]),
                None,
            ),
            (
                "uri domain allow, the domain itself",
                x509(json!({"allow": {"uri": ["*.example.com"]}})),
                none.clone(),
                dns(&["https://example.com/"]),
                Some(
                    r#"uri "https://example.com/" is not allowed by the authority policy's allow list: no uri rule matches it"#,
                ),
            ),
            (
                "uri domain deny, with port and user",
                x509(json!({"deny": {"uri": ["evil.test"]}})),
                none.clone(),
                dns(&["https://u@evil.test:8443/x"]),
                Some(
                    r#"uri "https://u@evil.test:8443/x" is denied by the authority policy's deny rule "evil.test""#,
                ),
            ),
            (
                "uri without a host",
                x509(json!({"deny": {"uri": ["evil.test"]}})),
                none.clone(),
                dns(&["urn://"]),
                Some(
                    r#"uri "urn://" cannot be checked against the authority policy's uri rules: its host "": it is empty"#,
                ),
            ),
            // common names
            (
                "cn allow",
                x509(json!({"allow": {"cn": ["Build Server"]}})),
                none.clone(),
                Cert::X509("Build Server", &[]),
                None,
            ),
            (
                "cn allow, another case",
                x509(json!({"allow": {"cn": ["Build Server"]}})),
                none.clone(),
                Cert::X509("build server", &[]),
                Some(
                    r#"common name "build server" is not allowed by the authority policy's allow list: no cn rule matches it"#,
                ),
            ),
            (
                "cn allowed as a dns name",
                allow_dns(&["*.example.com"]),
                none.clone(),
                Cert::X509("web.example.com", &["web.example.com"]),
                None,
            ),
            (
                "cn denied as a dns name",
                deny_dns(&["*.evil.test"]),
                none.clone(),
                Cert::X509("x.evil.test", &[]),
                Some(
                    r#"common name "x.evil.test" is denied by the authority policy's deny rule "*.evil.test""#,
                ),
            ),
            (
                "cn that is no name, under an allow list without cn rules",
                allow_dns(&["*.example.com"]),
                none.clone(),
                Cert::X509("Build Server", &[]),
                Some(
                    r#"common name "Build Server" is not allowed by the authority policy's allow list: it has no cn rules"#,
                ),
            ),
            // names no rule can judge
            (
                "dns name ending in a dot",
                deny_dns(&["*.evil.test"]),
                none.clone(),
                dns(&["x.evil.test."]),
                Some(
                    r#"dns name "x.evil.test." cannot be checked against the authority policy's dns rules: it ends with a dot"#,
                ),
            ),
            // ssh user certificates
            (
                "user principal allow",
                json!({"ssh": {"user": {"allow": {"principal": ["alice"]}}}}),
                none.clone(),
                Cert::User(&["alice"]),
                None,
            ),
            (
                "user principal allow, another case",
                json!({"ssh": {"user": {"allow": {"principal": ["alice"]}}}}),
                none.clone(),
                Cert::User(&["Alice"]),
                Some(
                    r#"principal "Alice" is not allowed by the authority policy's allow list: no principal rule matches it"#,
                ),
            ),
            (
                "user principal deny ignores case",
                json!({"ssh": {"user": {"deny": {"principal": ["root"]}}}}),
                none.clone(),
                Cert::User(&["alice", "ROOT"]),
                Some(r#"principal "ROOT" is denied by the authority policy's deny rule "root""#),
            ),
            (
                "user principal * allows user names",
                json!({"ssh": {"user": {"allow": {"principal": ["*"]}}}}),
                none.clone(),
                Cert::User(&["alice", "deploy"]),
                None,
            ),
            (
                "user principal * is not an email rule",
                json!({"ssh": {"user": {"allow": {"principal": ["*"]}}}}),
                none.clone(),
                Cert::User(&["alice@example.com"]),
                Some(
                    r#"principal "alice@example.com" is not allowed by the authority policy's allow list: it has no email rules"#,
                ),
            ),
            (
                "user email allow",
                json!({"ssh": {"user": {"allow": {"email": ["@example.com"]}}}}),
                none.clone(),
                Cert::User(&["alice@example.com"]),
                None,
            ),
            (
                "user email deny",
                json!({"ssh": {"user": {"deny": {"email": ["@evil.test"]}}}}),
                none.clone(),
                Cert::User(&["eve@evil.test"]),
                Some(
                    r#"principal "eve@evil.test" is denied by the authority policy's deny rule "@evil.test""#,
                ),
            ),
            // ssh host certificates
            (
                "host dns allow",
                json!({"ssh": {"host": {"allow": {"dns": ["*.example.com"]}}}}),
                none.clone(),
                Cert::Host(&["web.example.com"]),
                None,
            ),
            (
                "host dns allow, another domain",
                json!({"ssh": {"host": {"allow": {"dns": ["*.example.com"]}}}}),
                none.clone(),
                Cert::Host(&["web.other.test"]),
                Some(
                    r#"principal "web.other.test" is not allowed by the authority policy's allow list: no dns rule matches it"#,
                ),
            ),
            (
                "host dns deny",
                json!({"ssh": {"host": {"deny": {"dns": ["*.evil.test"]}}}}),
                none.clone(),
                Cert::Host(&["db.evil.test"]),
                Some(
                    r#"principal "db.evil.test" is denied by the authority policy's deny rule "*.evil.test""#,
                ),
            ),
            (
                "host principal allow",
                json!({"ssh": {"host": {"allow": {"principal": ["bastion"]}}}}),
                none.clone(),
                Cert::Host(&["bastion"]),
                None,
            ),
            (
                "host principal deny",
                json!({"ssh": {"host": {"deny": {"principal": ["bastion"]}}}}),
                none.clone(),
                Cert::Host(&["Bastion"]),
                Some(
                    r#"principal "Bastion" is denied by the authority policy's deny rule "bastion""#,
                ),
            ),
            (
                "host ip allow",
                json!({"ssh": {"host": {"allow": {"ip": ["10.0.0.0/8"]}}}}),
                none.clone(),
                Cert::Host(&["10.2.3.4"]),
                None,
            ),
            (
                "host principal with a wildcard",
                json!({"ssh": {"host": {"deny": {"dns": ["*.evil.test"]}}}}),
                none.clone(),
                Cert::Host(&["*.example.com"]),
                Some(
                    r#"principal "*.example.com" cannot be checked against the authority policy's dns rules: it has wildcards ('*' or '?'), and a pattern cannot be checked"#,
                ),
            ),
            // the kinds of certificate keep to their own rules
            (
                "x509 rules do not bind ssh",
                allow_dns(&["*.example.com"]),
                none.clone(),
                Cert::Host(&["web.other.test"]),
                None,
            ),
            (
                "ssh rules do not bind x509",
                json!({"ssh": {"host": {"allow": {"dns": ["*.example.com"]}}}}),
                none.clone(),
                dns(&["web.other.test"]),
                None,
            ),
            // authority and provisioner together
            (
                "both allow",
                allow_dns(&["*.example.com"]),
                allow_dns(&["web.example.com"]),
                dns(&["web.example.com"]),
                None,
            ),
            (
                "the authority allows, the provisioner does not",
                allow_dns(&["*.example.com"]),
                allow_dns(&["web.example.com"]),
                dns(&["api.example.com"]),
                Some(
                    r#"dns name "api.example.com" is not allowed by provisioner "ops"'s allow list: no dns rule matches it"#,
                ),
            ),
            (
                "the provisioner allows, the authority does not",
                allow_dns(&["*.example.com"]),
                allow_dns(&["*.other.test"]),
                dns(&["web.other.test"]),
                Some(
                    r#"dns name "web.other.test" is not allowed by the authority policy's allow list: no dns rule matches it"#,
                ),
            ),
            (
                "the authority's deny beats the provisioner's allow",
                deny_dns(&["*.evil.test"]),
                allow_dns(&["*.evil.test"]),
                dns(&["x.evil.test"]),
                Some(
                    r#"dns name "x.evil.test" is denied by the authority policy's deny rule "*.evil.test""#,
                ),
            ),
            (
                "the provisioner's deny is named before the authority's allow list",
                allow_dns(&["*.example.com"]),
                deny_dns(&["x.evil.test"]),
                dns(&["x.evil.test"]),
                Some(
                    r#"dns name "x.evil.test" is denied by provisioner "ops"'s deny rule "x.evil.test""#,
                ),
            ),
            (
                "deny wins within a level",
                x509(
                    json!({"allow": {"dns": ["*.example.com"]}, "deny": {"dns": ["admin.example.com"]}}),
                ),
                none.clone(),
                dns(&["www.example.com", "admin.example.com"]),
                Some(
                    r#"dns name "admin.example.com" is denied by the authority policy's deny rule "admin.example.com""#,
                ),
            ),
        ];
        for (case, authority, provisioner, cert, expected) in cases {
            let policies = policies(&authority, &provisioner).unwrap();
            let outcome = check(&policies, "ops", cert);
            match (expected, outcome) {
                (None, Ok(())) => {}
                (Some(message), Err(error)) => {
                    assert_eq!(error.to_string(), message, "{case}");
                    assert_eq!(error.kind(), crate::error::ErrorKind::Forbidden, "{case}");
                    assert!(error.refused_by_name_policy(), "{case}");
                }
                (expected, outcome) => {
                    panic!("{case}: expected {expected:?}, got {outcome:?}")
                }
            }
        }
    }

    #[test]
    fn a_provisioner_without_a_policy_meets_the_authoritys_alone() {
        let policies = policies(
            &json!({"x509": {"deny": {"dns": ["*.evil.test"]}}}),
            &json!({"x509": {"allow": {"dns": ["web.example.com"]}}}),
        )
        .unwrap();
        assert!(check(&policies, "plain", dns(&["api.example.com"])).is_ok());
        assert!(check(&policies, "unknown", dns(&["api.example.com"])).is_ok());
        let error = check(&policies, "plain", dns(&["x.evil.test"])).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("the authority policy's deny rule")
        );
        assert!(check(&policies, "ops", dns(&["api.example.com"])).is_err());
    }

    #[test]
    fn a_bad_rule_is_named_by_its_place_in_ca_json() {
        let cases = [
            (
                x509(json!({"allow": {"dns": ["a.example.com", ".example.com"]}})),
                Value::Null,
                r#"authority.policy.x509.allow.dns[1] ".example.com": write a rule for the names under example.com as *.example.com"#,
            ),
            (
                Value::Null,
                x509(json!({"deny": {"ip": ["10.0.0.0/40"]}})),
                r#"authority.provisioners[0].policy.x509.deny.ip[0] "10.0.0.0/40": prefix length "40" is not 0 to 32"#,
            ),
            (
                json!({"ssh": {"user": {"allow": {"dns": ["*.example.com"]}}}}),
                Value::Null,
                "authority.policy.ssh.user.allow.dns: user certificates name users: use email or principal",
            ),
            (
                Value::Null,
                json!({"ssh": {"host": {"deny": {"email": ["@example.com"]}}}}),
                "authority.provisioners[0].policy.ssh.host.deny.email: host certificates name hosts: use dns, ip or principal",
            ),
            (
                x509(json!({"allow": {"cn": ["*"]}})),
                Value::Null,
                r#"authority.policy.x509.allow.cn[0] "*": a rule for every name is no rule: leave the list out"#,
            ),
            (
                x509(json!({"allow": {"uri": ["https://example.com"]}})),
                Value::Null,
                r#"authority.policy.x509.allow.uri[0] "https://example.com": name the host only, without a scheme"#,
            ),
            (
                x509(json!({"allow": {"email": ["*@example.com"]}})),
                Value::Null,
                r#"authority.policy.x509.allow.email[0] "*@example.com": e-mail rules have no wildcards: write @example.com for a domain"#,
            ),
        ];
        for (authority, provisioner, message) in cases {
            let error = policies(&authority, &provisioner).unwrap_err();
            assert_eq!(error.to_string(), message);
            assert_eq!(error.kind(), crate::error::ErrorKind::Internal);
        }
    }

    #[test]
    fn a_policy_for_a_name_two_provisioners_share_is_refused() {
        let config: AuthorityConfig = serde_json::from_value(json!({
            "provisioners": [
                {"type": "JWK", "name": "ops", "policy": x509(json!({"allow": {"dns": ["a.test"]}}))},
                {"type": "ACME", "name": "ops"},
            ],
        }))
        .unwrap();
        let error = NamePolicies::from_config(&config).unwrap_err().to_string();
        assert!(
            error.contains("more than one provisioner is named \"ops\""),
            "{error}"
        );
    }
}
