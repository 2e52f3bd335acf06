//! What a verified token and an SSH sign request together may yield.
//!
//! The token is the provisioner's word: its certificate type, key id and principals bound the
//! request, which may narrow them, never widen them. Critical options restrict a certificate,
//! but only the token may add them, so a holder cannot swap one restriction for a weaker one.

use std::collections::BTreeMap;

use mayfly_pki::ssh::{CertType, SshCertTemplate};
use serde::Deserialize;
use time::OffsetDateTime;

use super::{NamePolicy, TimeSpec};
use crate::credential::CredentialValidity;
use crate::error::{Error, Result};
use crate::ssh::claims::SshClaims;
use mayfly_config::duration::GoDuration;

/// Extensions of user certificates, as `ssh-keygen` and step set them by default.
pub const DEFAULT_USER_EXTENSIONS: &[&str] = &[
    "permit-X11-forwarding",
    "permit-agent-forwarding",
    "permit-port-forwarding",
    "permit-pty",
    "permit-user-rc",
];

/// Critical options OpenSSH defines; any other name would make sshd refuse the certificate.
const KNOWN_CRITICAL_OPTIONS: &[&str] = &["force-command", "source-address", "verify-required"];

/// Longest principal accepted (a host name is at most 253 characters).
const MAX_PRINCIPAL_LEN: usize = 255;
/// Most principals in one certificate.
const MAX_PRINCIPALS: usize = 64;

/// The `step.ssh` claims of a token, as step writes them.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SshTokenClaims {
    #[serde(default)]
    pub cert_type: String,
    #[serde(default, rename = "keyID")]
    pub key_id: String,
    #[serde(default)]
    pub principals: Vec<String>,
    #[serde(default)]
    pub valid_after: String,
    #[serde(default)]
    pub valid_before: String,
    /// Critical options the provisioner allows (mayfly addition; step sets them by template).
    #[serde(default)]
    pub critical_options: BTreeMap<String, String>,
}

/// The request's side of an SSH signature, before policy.
#[derive(Debug, Clone, Default)]
pub struct SshSignOptions {
    pub cert_type: Option<String>,
    pub key_id: Option<String>,
    pub principals: Vec<String>,
    pub valid_after: Option<String>,
    pub valid_before: Option<String>,
    pub critical_options: BTreeMap<String, String>,
}

fn non_empty(text: &str) -> Option<&str> {
    let trimmed = text.trim();
    (!trimmed.is_empty()).then_some(trimmed)
}

fn check_principal(principal: &str) -> Result<()> {
    if principal.is_empty()
        || principal.len() > MAX_PRINCIPAL_LEN
        || principal
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == ',')
    {
        return Err(Error::SshPrincipalInvalid(principal.to_string()));
    }
    Ok(())
}

/// The SSH claims of a credential that grants what the request asks (a Kubernetes
/// service-account token, which carries none): the request's type, key id and principals,
/// each of which it must name, as step-ca requires for such tokens. Critical options are
/// not granted: nothing vouches for them.
pub fn requested_claims(request: &SshSignOptions) -> Result<SshTokenClaims> {
    let cert_type = request.cert_type.as_deref().and_then(non_empty);
    let key_id = request.key_id.as_deref().and_then(non_empty);
    match (cert_type, key_id, request.principals.is_empty()) {
        (Some(cert_type), Some(key_id), false) => Ok(SshTokenClaims {
            cert_type: cert_type.to_owned(),
            key_id: key_id.to_owned(),
            principals: request.principals.clone(),
            ..SshTokenClaims::default()
        }),
        _ => Err(Error::SshRequestInvalid(
            "this credential carries no SSH claims: the request must name certType, keyID and \
             principals"
                .into(),
        )),
    }
}

/// What bounds an SSH certificate besides its token and the request.
#[derive(Debug, Clone, Copy)]
pub struct SshBounds<'a> {
    /// The provisioner's SSH claims (lifetimes).
    pub claims: &'a SshClaims,
    /// The validity of a credential that is a certificate (an X5C token's leaf): by default
    /// the SSH certificate ends no later, and a request for more is refused.
    pub within: Option<&'a CredentialValidity>,
    /// The name policy its principals meet.
    pub names: NamePolicy<'a>,
}

/// Builds the template: token claims merged with the request, within `bounds`. `subject` is
/// the token's `sub`, the key id when nothing else names one.
pub fn ssh_template(
    token: &SshTokenClaims,
    subject: &str,
    request: &SshSignOptions,
    bounds: SshBounds<'_>,
    backdate: time::Duration,
    now: OffsetDateTime,
) -> Result<SshTemplate> {
    let SshBounds {
        claims,
        within,
        names,
    } = bounds;
    let token_type = non_empty(&token.cert_type)
        .map(CertType::parse)
        .transpose()
        .map_err(|e| Error::TokenMalformed(format!("claim \"step.ssh.certType\": {e}")))?;
    let requested_type = request
        .cert_type
        .as_deref()
        .and_then(non_empty)
        .map(CertType::parse)
        .transpose()
        .map_err(|e| Error::SshRequestInvalid(e.to_string()))?;
    let cert_type = match (token_type, requested_type) {
        (Some(t), Some(r)) if t != r => {
            return Err(Error::SshTokenMismatch {
                field: "certType",
                token: t.as_str().into(),
                requested: r.as_str().into(),
            });
        }
        (Some(t), _) => t,
        (None, Some(r)) => r,
        (None, None) => CertType::User,
    };

    let token_key_id = non_empty(&token.key_id).or_else(|| non_empty(subject));
    let key_id = match (token_key_id, request.key_id.as_deref().and_then(non_empty)) {
        (Some(t), Some(r)) if t != r => {
            return Err(Error::SshTokenMismatch {
                field: "keyID",
                token: t.into(),
                requested: r.into(),
            });
        }
        (Some(t), _) => t.to_string(),
        (None, Some(r)) => r.to_string(),
        (None, None) => String::new(),
    };

    for principal in token.principals.iter().chain(&request.principals) {
        check_principal(principal)?;
    }
    let principals = if request.principals.is_empty() {
        token.principals.clone()
    } else {
        for principal in &request.principals {
            if !token.principals.contains(principal) {
                return Err(Error::SshPrincipalNotAuthorized {
                    principal: principal.clone(),
                    authorized: token.principals.clone(),
                });
            }
        }
        request.principals.clone()
    };
    if principals.is_empty() {
        return Err(Error::SshNoPrincipals);
    }
    if principals.len() > MAX_PRINCIPALS {
        return Err(Error::SshRequestInvalid(format!(
            "{} principals: at most {MAX_PRINCIPALS}",
            principals.len()
        )));
    }
    names.check_ssh(cert_type, &principals)?;

    if let Some(name) = token
        .critical_options
        .keys()
        .find(|name| !KNOWN_CRITICAL_OPTIONS.contains(&name.as_str()))
    {
        return Err(Error::TokenMalformed(format!(
            "critical option {name:?} is not one OpenSSH knows ({KNOWN_CRITICAL_OPTIONS:?})"
        )));
    }
    for (name, value) in &request.critical_options {
        if !KNOWN_CRITICAL_OPTIONS.contains(&name.as_str()) {
            return Err(Error::SshRequestInvalid(format!(
                "critical option {name:?}: expected one of {KNOWN_CRITICAL_OPTIONS:?}"
            )));
        }
        if token.critical_options.get(name) != Some(value) {
            return Err(Error::SshCriticalOptionNotAllowed { name: name.clone() });
        }
    }

    let (min, default, max) = match cert_type {
        CertType::User => (claims.user_min, claims.user_default, claims.user_max),
        CertType::Host => (claims.host_min, claims.host_default, claims.host_max),
    };
    let time = |field: &'static str, text: Option<&str>| -> Result<Option<OffsetDateTime>> {
        text.and_then(non_empty)
            .map(|t| TimeSpec::parse(field, t).map(|spec| spec.resolve(now)))
            .transpose()
    };
    // The token's bounds win over the request's, as the provisioner signed them.
    let after = match time("validAfter", Some(&token.valid_after))? {
        Some(at) => Some(at),
        None => time("validAfter", request.valid_after.as_deref())?,
    };
    let before = match time("validBefore", Some(&token.valid_before))? {
        Some(at) => Some(at),
        None => time("validBefore", request.valid_before.as_deref())?,
    };
    let start = after.unwrap_or(now);
    let end = match (before, within) {
        (Some(before), _) => before,
        (None, Some(within)) => (start + default).min(within.not_after),
        (None, None) => start + default,
    };
    let rfc3339 = |t: OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|_| t.to_string())
    };
    if let Some(within) = within {
        let limit = || format!("valid until {}", rfc3339(within.not_after));
        for (field, at) in [("validAfter", start), ("validBefore", end)] {
            if at > within.not_after {
                return Err(Error::OutsideCredentialValidity {
                    field,
                    requested: rfc3339(at),
                    limit: limit(),
                });
            }
        }
    }
    if end <= start {
        return Err(Error::ValidityInverted {
            not_before: rfc3339(start),
            not_after: rfc3339(end),
        });
    }
    if start < now - backdate - crate::token::LEEWAY {
        return Err(Error::NotBeforeInPast {
            not_before: rfc3339(start),
            now: rfc3339(now),
        });
    }
    let duration = end - start;
    if duration < min || duration > max {
        return Err(Error::DurationOutOfRange {
            requested: GoDuration(duration).to_string(),
            min: GoDuration(min).to_string(),
            max: GoDuration(max).to_string(),
        });
    }
    let valid_after = if after.is_none() {
        start - backdate
    } else {
        start
    };

    let extensions = match cert_type {
        CertType::User => DEFAULT_USER_EXTENSIONS
            .iter()
            .map(|e| (e.to_string(), String::new()))
            .collect(),
        CertType::Host => BTreeMap::new(),
    };
    Ok(SshTemplate(SshCertTemplate {
        cert_type,
        serial: mayfly_pki::ssh::random_serial()?,
        key_id,
        principals,
        valid_after: unix(valid_after),
        valid_before: unix(end),
        critical_options: token.critical_options.clone(),
        extensions,
    }))
}

/// An SSH certificate as the policy decided it: the only form an SSH certificate takes before
/// it is signed. Its field is private, so one is made by [`ssh_template`] or
/// [`renewal_template`] alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTemplate(SshCertTemplate);

impl SshTemplate {
    /// What the signer encodes.
    pub fn certificate(&self) -> &SshCertTemplate {
        &self.0
    }
}

/// The template that replaces `old` (a host certificate's renewal or rekey): the same type,
/// key id, principals and options, for the same lifetime from now, with a new serial. The
/// principals meet the name policy in force now (step-ca does not check them again).
pub fn renewal_template(
    old: &SshCertTemplate,
    backdate: time::Duration,
    now: OffsetDateTime,
    names: NamePolicy<'_>,
) -> Result<SshTemplate> {
    names.check_ssh(old.cert_type, &old.principals)?;
    let lifetime = old.valid_before.saturating_sub(old.valid_after);
    let valid_after = unix(now - backdate);
    Ok(SshTemplate(SshCertTemplate {
        serial: mayfly_pki::ssh::random_serial()?,
        valid_after,
        valid_before: valid_after.saturating_add(lifetime),
        ..old.clone()
    }))
}

/// Unix seconds; times before 1970 cannot reach here (they would be in the past).
pub(crate) fn unix(at: OffsetDateTime) -> u64 {
    u64::try_from(at.unix_timestamp()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use time::Duration;

    use super::*;
    use crate::policy::NamePolicies;

    /// The tests' now.
    const T: i64 = 1_800_000_000;
    const BACKDATE: Duration = Duration::minutes(1);

    fn at(seconds: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(seconds).unwrap()
    }

    fn rfc3339(seconds: i64) -> String {
        at(seconds)
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    }

    /// Users 1 h by default and 2 h at most, hosts 10 h and 20 h: apart from step's defaults,
    /// so that which one applied shows.
    const CLAIMS: SshClaims = SshClaims {
        enabled: true,
        user_min: Duration::minutes(5),
        user_default: Duration::hours(1),
        user_max: Duration::hours(2),
        host_min: Duration::minutes(5),
        host_default: Duration::hours(10),
        host_max: Duration::hours(20),
    };

    fn token(cert_type: &str, principals: &[&str]) -> SshTokenClaims {
        SshTokenClaims {
            cert_type: cert_type.into(),
            principals: principals.iter().map(|p| p.to_string()).collect(),
            ..SshTokenClaims::default()
        }
    }

    fn strings(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    /// The template for `token` and `request` at T, for provisioner `ops` with `policies`.
    fn template_with(
        token: &SshTokenClaims,
        request: &SshSignOptions,
        within: Option<&CredentialValidity>,
        policies: &NamePolicies,
    ) -> Result<SshCertTemplate> {
        let bounds = SshBounds {
            claims: &CLAIMS,
            within,
            names: policies.for_provisioner("ops"),
        };
        ssh_template(token, "alice@example.com", request, bounds, BACKDATE, at(T))
            .map(|t| t.certificate().clone())
    }

    fn template(token: &SshTokenClaims, request: &SshSignOptions) -> Result<SshCertTemplate> {
        template_with(token, request, None, &NamePolicies::default())
    }

    fn valid_before(text: &str) -> SshSignOptions {
        SshSignOptions {
            valid_before: Some(text.into()),
            ..SshSignOptions::default()
        }
    }

    fn t(seconds: i64) -> u64 {
        u64::try_from(seconds).unwrap()
    }

    #[test]
    fn the_default_lifetime_is_the_provisioner_s_for_users_and_for_hosts() {
        let user = template(&token("user", &["alice"]), &SshSignOptions::default()).unwrap();
        // Backdated; the lifetime is counted from now.
        assert_eq!(user.valid_after, t(T - 60));
        assert_eq!(user.valid_before, t(T + 3600));
        let host = template(&token("host", &["web.test"]), &SshSignOptions::default()).unwrap();
        assert_eq!(host.valid_after, t(T - 60));
        assert_eq!(host.valid_before, t(T + 10 * 3600));
    }

    #[test]
    fn a_request_s_lifetime_is_capped_by_the_provisioner_s_user_and_host_claims() {
        let user = token("user", &["alice"]);
        let host = token("host", &["web.test"]);
        assert_eq!(
            template(&user, &valid_before("2h")).unwrap().valid_before,
            t(T + 7200)
        );
        for (token, asked) in [(&user, "2h1s"), (&user, "4m59s"), (&host, "20h1s")] {
            assert!(
                matches!(
                    template(token, &valid_before(asked)),
                    Err(Error::DurationOutOfRange { .. })
                ),
                "{} for {asked}",
                token.cert_type
            );
        }
        // A host may have what a user may not.
        assert_eq!(
            template(&host, &valid_before("20h")).unwrap().valid_before,
            t(T + 20 * 3600)
        );
        // The token's bound wins over the request's.
        let bound = SshTokenClaims {
            valid_before: "90m".into(),
            ..user.clone()
        };
        assert_eq!(
            template(&bound, &valid_before("5m")).unwrap().valid_before,
            t(T + 5400)
        );
    }

    #[test]
    fn a_start_may_be_backdated_by_the_backdate_and_the_leeway_no_more() {
        let user = token("user", &["alice"]);
        let starting = |seconds: i64| SshSignOptions {
            valid_after: Some(rfc3339(seconds)),
            ..SshSignOptions::default()
        };
        // A start that is asked for is kept as asked, not backdated again.
        assert_eq!(
            template(&user, &starting(T - 120)).unwrap().valid_after,
            t(T - 120)
        );
        assert!(matches!(
            template(&user, &starting(T - 121)),
            Err(Error::NotBeforeInPast { .. })
        ));
        assert!(matches!(
            template(&user, &valid_before(&rfc3339(T - 1))),
            Err(Error::ValidityInverted { .. })
        ));
    }

    #[test]
    fn principals_come_from_the_token_and_a_request_may_ask_for_fewer_never_others() {
        let user = token("user", &["alice", "admin"]);
        assert_eq!(
            template(&user, &SshSignOptions::default())
                .unwrap()
                .principals,
            strings(&["alice", "admin"])
        );
        let asking = |principals: &[&str]| SshSignOptions {
            principals: strings(principals),
            ..SshSignOptions::default()
        };
        assert_eq!(
            template(&user, &asking(&["admin"])).unwrap().principals,
            strings(&["admin"])
        );
        match template(&user, &asking(&["alice", "root"])) {
            Err(Error::SshPrincipalNotAuthorized { principal, .. }) => {
                assert_eq!(principal, "root")
            }
            other => panic!("root: {other:?}"),
        }
        assert!(matches!(
            template(&token("user", &[]), &SshSignOptions::default()),
            Err(Error::SshNoPrincipals)
        ));
        assert!(matches!(
            template(&token("user", &["al ice"]), &SshSignOptions::default()),
            Err(Error::SshPrincipalInvalid(_))
        ));
    }

    #[test]
    fn the_key_id_is_the_token_s_else_the_subject_and_a_request_may_not_change_it() {
        let user = token("user", &["alice"]);
        assert_eq!(
            template(&user, &SshSignOptions::default()).unwrap().key_id,
            "alice@example.com"
        );
        let named = SshTokenClaims {
            key_id: "laptop".into(),
            ..user.clone()
        };
        assert_eq!(
            template(&named, &SshSignOptions::default()).unwrap().key_id,
            "laptop"
        );
        let other = SshSignOptions {
            key_id: Some("server".into()),
            ..SshSignOptions::default()
        };
        assert!(matches!(
            template(&named, &other),
            Err(Error::SshTokenMismatch { field: "keyID", .. })
        ));
    }

    #[test]
    fn the_type_is_the_token_s_and_users_get_the_permit_extensions_hosts_none() {
        let user = template(&token("", &["alice"]), &SshSignOptions::default()).unwrap();
        assert_eq!(user.cert_type, CertType::User, "user by default");
        let expected: BTreeMap<String, String> = DEFAULT_USER_EXTENSIONS
            .iter()
            .map(|e| (e.to_string(), String::new()))
            .collect();
        assert_eq!(user.extensions, expected);
        let host = template(&token("host", &["web.test"]), &SshSignOptions::default()).unwrap();
        assert_eq!(host.cert_type, CertType::Host);
        assert!(host.extensions.is_empty());
        let as_user = SshSignOptions {
            cert_type: Some("user".into()),
            ..SshSignOptions::default()
        };
        assert!(matches!(
            template(&token("host", &["web.test"]), &as_user),
            Err(Error::SshTokenMismatch {
                field: "certType",
                ..
            })
        ));
    }

    #[test]
    fn critical_options_are_the_token_s_only() {
        let mut restricted = token("user", &["alice"]);
        restricted
            .critical_options
            .insert("force-command".into(), "/bin/ls".into());
        let asking = |name: &str, value: &str| SshSignOptions {
            critical_options: [(name.to_string(), value.to_string())].into(),
            ..SshSignOptions::default()
        };
        let kept = template(&restricted, &SshSignOptions::default()).unwrap();
        assert_eq!(kept.critical_options, restricted.critical_options);
        assert!(template(&restricted, &asking("force-command", "/bin/ls")).is_ok());
        assert!(matches!(
            template(&restricted, &asking("force-command", "/bin/sh")),
            Err(Error::SshCriticalOptionNotAllowed { .. })
        ));
        assert!(matches!(
            template(&restricted, &asking("no-such-option", "")),
            Err(Error::SshRequestInvalid(_))
        ));
    }

    #[test]
    fn the_name_policy_is_applied_to_the_principals() {
        let config: mayfly_config::config::AuthorityConfig = serde_json::from_value(json!({
            "provisioners": [{"type": "JWK", "name": "ops",
                "policy": {"ssh": {"user": {"allow": {"principal": ["alice"]}}}}}],
        }))
        .unwrap();
        let policies = NamePolicies::from_config(&config).unwrap();
        let user = token("user", &["alice", "root"]);
        assert!(matches!(
            template_with(&user, &SshSignOptions::default(), None, &policies),
            Err(Error::NameNotAllowed { .. })
        ));
        let only_alice = SshSignOptions {
            principals: strings(&["alice"]),
            ..SshSignOptions::default()
        };
        assert!(template_with(&user, &only_alice, None, &policies).is_ok());
    }

    #[test]
    fn a_certificate_credential_bounds_the_ssh_certificate() {
        let within = CredentialValidity {
            not_before: at(T - 3600),
            not_after: at(T + 1800),
        };
        let user = token("user", &["alice"]);
        let policies = NamePolicies::default();
        let cut = template_with(&user, &SshSignOptions::default(), Some(&within), &policies);
        assert_eq!(cut.unwrap().valid_before, t(T + 1800));
        assert!(matches!(
            template_with(&user, &valid_before("31m"), Some(&within), &policies),
            Err(Error::OutsideCredentialValidity { .. })
        ));
    }

    #[test]
    fn requested_claims_need_a_type_a_key_id_and_principals() {
        let full = SshSignOptions {
            cert_type: Some("host".into()),
            key_id: Some("web".into()),
            principals: strings(&["web.test"]),
            critical_options: [("force-command".to_string(), "/bin/ls".to_string())].into(),
            ..SshSignOptions::default()
        };
        let claims = requested_claims(&full).unwrap();
        assert_eq!(
            (claims.cert_type.as_str(), claims.key_id.as_str()),
            ("host", "web")
        );
        assert_eq!(claims.principals, strings(&["web.test"]));
        // Nothing vouches for a restriction's value, so none is granted.
        assert!(claims.critical_options.is_empty());
        for missing in [
            SshSignOptions {
                cert_type: Some(" ".into()),
                ..full.clone()
            },
            SshSignOptions {
                key_id: None,
                ..full.clone()
            },
            SshSignOptions {
                principals: Vec::new(),
                ..full.clone()
            },
        ] {
            assert!(matches!(
                requested_claims(&missing),
                Err(Error::SshRequestInvalid(_))
            ));
        }
    }

    fn old_host_certificate() -> SshCertTemplate {
        SshCertTemplate {
            cert_type: CertType::Host,
            serial: 7,
            key_id: "web".into(),
            principals: strings(&["web.test", "10.0.0.1"]),
            valid_after: t(T - 5 * 3600),
            valid_before: t(T + 3600),
            critical_options: [("source-address".to_string(), "10.0.0.0/8".to_string())].into(),
            extensions: BTreeMap::new(),
        }
    }

    #[test]
    fn a_renewal_keeps_the_certificate_and_its_lifetime_from_now_with_a_new_serial() {
        let old = old_host_certificate();
        let policies = NamePolicies::default();
        let new = renewal_template(&old, BACKDATE, at(T), policies.for_provisioner("ops"))
            .unwrap()
            .certificate()
            .clone();
        assert_eq!(new.valid_after, t(T - 60));
        assert_eq!(new.valid_before, t(T - 60 + 6 * 3600));
        assert_ne!(new.serial, old.serial);
        assert_eq!(
            SshCertTemplate {
                serial: old.serial,
                valid_after: old.valid_after,
                valid_before: old.valid_before,
                ..new
            },
            old,
            "type, key id, principals, options and extensions kept"
        );
    }

    #[test]
    fn a_renewal_meets_the_name_policy_in_force_now() {
        let config: mayfly_config::config::AuthorityConfig = serde_json::from_value(json!({
            "policy": {"ssh": {"host": {"deny": {"dns": ["web.test"]}}}},
        }))
        .unwrap();
        let policies = NamePolicies::from_config(&config).unwrap();
        assert!(matches!(
            renewal_template(
                &old_host_certificate(),
                BACKDATE,
                at(T),
                policies.for_provisioner("ops")
            ),
            Err(Error::NameDenied { .. })
        ));
    }
}
