//! Stage two of the pipeline: an [`Authorization`] and a request become a [`Template`], the
//! only form a certificate takes before it is signed, built in this module alone.
//!
//! The certificate carries exactly the names the credential grants; a request may ask for
//! fewer, never for others. Validity comes from the request, bounded by the provisioner's
//! claims; a renewal keeps the old certificate's names and lifetime. Every template then meets
//! the name policy ([`names`]) of the authority and of the provisioner that vouched for it.
//! SSH certificates have theirs in [`ssh`], from the same authorizations.

pub mod names;
mod rules;
pub mod ssh;

use mayfly_pki::{Csr, LeafTemplate, ProvisionerExtension, San, SerialNumber};
use time::OffsetDateTime;

pub use names::{NamePolicies, NamePolicy};

use crate::credential::{Authorization, Grant};
use crate::error::{Error, Result};
use mayfly_config::duration::GoDuration;

/// A validity bound in a request: an RFC 3339 instant or a duration from now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeSpec {
    At(OffsetDateTime),
    FromNow(time::Duration),
}

impl TimeSpec {
    /// Parses `"2026-01-02T03:04:05Z"` or `"24h"`; `field` names the field in errors.
    pub fn parse(field: &'static str, text: &str) -> Result<Self> {
        if let Ok(at) = OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        {
            return Ok(TimeSpec::At(at));
        }
        text.parse::<GoDuration>()
            .map(|d| TimeSpec::FromNow(d.0))
            .map_err(|_| Error::TimeMalformed {
                field,
                value: text.to_string(),
            })
    }

    pub fn resolve(self, now: OffsetDateTime) -> OffsetDateTime {
        match self {
            TimeSpec::At(at) => at,
            TimeSpec::FromNow(d) => now + d,
        }
    }
}

/// What the requester asked for besides the CSR.
#[derive(Debug, Clone, Copy, Default)]
pub struct ValidityRequest {
    pub not_before: Option<TimeSpec>,
    pub not_after: Option<TimeSpec>,
}

/// A certificate as the policy decided it, ready for the issuer: its fields can be read, and
/// set only by this module.
#[derive(Debug, Clone)]
pub struct Template {
    leaf: LeafTemplate,
}

impl Template {
    pub fn serial(&self) -> &SerialNumber {
        &self.leaf.serial
    }

    pub fn common_name(&self) -> &str {
        &self.leaf.common_name
    }

    pub fn sans(&self) -> &[San] {
        &self.leaf.sans
    }

    pub fn not_before(&self) -> OffsetDateTime {
        self.leaf.not_before
    }

    pub fn not_after(&self) -> OffsetDateTime {
        self.leaf.not_after
    }

    /// What the signer reads.
    pub(crate) fn leaf(&self) -> &LeafTemplate {
        &self.leaf
    }
}

/// The extension leaves carry to say which provisioner vouched for them (step's), when one did.
fn extension(authorization: &Authorization) -> ProvisionerExtension {
    ProvisionerExtension {
        type_code: authorization.provisioner.type_code,
        name: authorization.provisioner.name.clone(),
        credential_id: authorization.provisioner.credential_id.clone(),
    }
}

/// The names `grant` allows a request for `csr` with `subject`: the certificate's SANs.
fn names(grant: &Grant, csr: &Csr, subject: &str) -> Result<Vec<San>> {
    match grant {
        Grant::Token(text) => {
            // Every SAN a token authorises goes into the certificate, so the token is held to
            // the CSR's limit.
            if text.len() > mayfly_pki::csr::MAX_SANS {
                return Err(Error::TooManySans {
                    count: text.len(),
                    max: mayfly_pki::csr::MAX_SANS,
                });
            }
            let authorized: Vec<San> = text
                .iter()
                .map(|s| {
                    San::parse(s).map_err(|e| Error::TokenMalformed(format!("claim \"sans\": {e}")))
                })
                .collect::<Result<_>>()?;
            let refused = |san: String| Error::SanNotAuthorized {
                san,
                authorized: text.clone(),
            };
            if let Some(requested) = csr.sans().iter().find(|s| !authorized.contains(s)) {
                return Err(refused(requested.to_string()));
            }
            if let Some(cn) = csr.common_name()
                && !cn.is_empty()
                && cn != subject
                && !San::parse(cn).is_ok_and(|san| authorized.contains(&san))
            {
                return Err(refused(cn.to_owned()));
            }
            Ok(authorized)
        }
        Grant::Requested => {
            let mut sans = csr.sans().to_vec();
            if sans.is_empty()
                && let Some(cn) = csr.common_name().and_then(|cn| San::parse(cn).ok())
            {
                sans.push(cn);
            }
            Ok(sans)
        }
        Grant::Fixed(sans) => Ok(sans.clone()),
    }
}

/// The template for a certificate request (`/sign`) under `authorization`, within `policies`.
pub fn for_request(
    authorization: &Authorization,
    csr: &Csr,
    validity: ValidityRequest,
    backdate: time::Duration,
    now: OffsetDateTime,
    policies: &NamePolicies,
) -> Result<Template> {
    if let Some(bound) = &authorization.confirms
        && !bound.matches(csr.der())
    {
        return Err(Error::CsrNotConfirmed {
            fingerprint: bound.to_base64url(),
        });
    }
    let sans = names(&authorization.grant, csr, &authorization.subject)?;
    let (not_before, not_after) =
        window(authorization, &validity, backdate, now, Start::NotInThePast)?;
    let common_name = match (&authorization.grant, csr.common_name()) {
        // A fixed grant decides the subject too: the request's is ignored.
        (Grant::Fixed(_), _) | (_, None) => authorization.subject.clone(),
        (_, Some(cn)) => cn.to_owned(),
    };
    policies
        .for_provisioner(&authorization.provisioner.name)
        .check_x509(&common_name, &sans)?;
    Ok(Template {
        leaf: LeafTemplate {
            common_name,
            sans,
            not_before,
            not_after,
            serial: SerialNumber::random()?,
            rsa_key: csr.is_rsa(),
            provisioner: Some(extension(authorization)),
        },
    })
}

/// Whether a requested `notBefore` may lie in the past when the certificate is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Checked now: a token's request is decided as it arrives.
    NotInThePast,
    /// Checked when it was asked for: an ACME order's times were checked when the order was
    /// made, and its validation may take minutes before the certificate is.
    CheckedEarlier,
}

/// The validity a request asks for (`notBefore`/`notAfter`, each optional), bounded as every
/// issuance is: within a credential that is itself a certificate, after its start, for a
/// duration within the provisioner's claims, not starting in the past; the provisioner's
/// default duration when `notAfter` is not asked for, and the backdate when `notBefore` is not.
fn window(
    authorization: &Authorization,
    validity: &ValidityRequest,
    backdate: time::Duration,
    now: OffsetDateTime,
    start: Start,
) -> Result<(OffsetDateTime, OffsetDateTime)> {
    let claims = &authorization.provisioner.claims;
    let not_before = validity.not_before.map_or(now, |t| t.resolve(now));
    let not_after = match (validity.not_after, &authorization.within) {
        (Some(t), _) => t.resolve(now),
        // By default a credential that is a certificate buys no more than it has left.
        (None, Some(within)) => (not_before + claims.default_tls_duration).min(within.not_after),
        (None, None) => not_before + claims.default_tls_duration,
    };
    let rfc3339 = |t: OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|_| t.to_string())
    };
    if let Some(within) = &authorization.within {
        let limit = || {
            format!(
                "valid {} to {}",
                rfc3339(within.not_before),
                rfc3339(within.not_after)
            )
        };
        if not_before < within.not_before {
            return Err(Error::OutsideCredentialValidity {
                field: "notBefore",
                requested: rfc3339(not_before),
                limit: limit(),
            });
        }
        if not_after > within.not_after {
            return Err(Error::OutsideCredentialValidity {
                field: "notAfter",
                requested: rfc3339(not_after),
                limit: limit(),
            });
        }
    }
    if not_after <= not_before {
        return Err(Error::ValidityInverted {
            not_before: rfc3339(not_before),
            not_after: rfc3339(not_after),
        });
    }
    let requested = not_after - not_before;
    if requested < claims.min_tls_duration || requested > claims.max_tls_duration {
        return Err(Error::DurationOutOfRange {
            requested: GoDuration(requested).to_string(),
            min: GoDuration(claims.min_tls_duration).to_string(),
            max: GoDuration(claims.max_tls_duration).to_string(),
        });
    }
    // A notBefore in the past (beyond the backdate) would let a token mint history.
    if start == Start::NotInThePast && not_before < now - backdate - crate::credential::jwt::LEEWAY
    {
        return Err(Error::NotBeforeInPast {
            not_before: rfc3339(not_before),
            now: rfc3339(now),
        });
    }
    // Backdate only when the requester did not pin notBefore, like step.
    let not_before = if validity.not_before.is_none() {
        not_before - backdate
    } else {
        not_before
    };
    Ok((not_before, not_after))
}

/// Checks the validity an ACME order asks for, when the order is made, as its certificate's
/// will be when it is finalized (and, now, that it does not start in the past).
pub fn check_order_validity(
    authorization: &Authorization,
    validity: &ValidityRequest,
    backdate: time::Duration,
    now: OffsetDateTime,
) -> Result<()> {
    window(authorization, validity, backdate, now, Start::NotInThePast).map(|_| ())
}

/// The template that replaces `old` (a renewal, or a rekey for a key whose CSR says
/// `rsa_key`): same subject, names, provisioner and lifetime, from now. The names meet the
/// policy in force now, of the provisioner `authorization` names: a name denied since the old
/// certificate was issued is not renewed (step-ca renews it).
pub fn for_renewal(
    authorization: &Authorization,
    old: &mayfly_pki::cert::CertificateInfo,
    rsa_key: bool,
    backdate: time::Duration,
    now: OffsetDateTime,
    policies: &NamePolicies,
) -> Result<Template> {
    policies
        .for_provisioner(&authorization.provisioner.name)
        .check_x509(&old.common_name, &old.sans)?;
    let lifetime = old.not_after - old.not_before;
    let not_before = now - backdate;
    Ok(Template {
        leaf: LeafTemplate {
            common_name: old.common_name.clone(),
            sans: old.sans.clone(),
            not_before,
            not_after: not_before + lifetime,
            serial: SerialNumber::random()?,
            rsa_key,
            provisioner: old.provisioner.clone(),
        },
    })
}

/// The template for an ACME order's CSR: the order's identifiers, which the account proved
/// control of (the caller checked that the CSR names exactly these); the common name is the
/// CSR's when it is one of them, else the first identifier. The order was checked against the
/// name policy when it was made; it is checked again, as the policy may have been reloaded since.
pub fn for_acme_order(
    authorization: &Authorization,
    csr: &Csr,
    validity: ValidityRequest,
    backdate: time::Duration,
    now: OffsetDateTime,
    policies: &NamePolicies,
) -> Result<Template> {
    let Grant::Fixed(identifiers) = &authorization.grant else {
        return Err(Error::Config("an ACME order grants fixed names".into()));
    };
    let common_name = csr
        .common_name()
        .filter(|cn| San::parse(cn).is_ok_and(|san| identifiers.contains(&san)))
        .map(str::to_string)
        .or_else(|| identifiers.first().map(ToString::to_string))
        .unwrap_or_default();
    policies
        .for_provisioner(&authorization.provisioner.name)
        .check_x509(&common_name, identifiers)?;
    let (not_before, not_after) = window(
        authorization,
        &validity,
        backdate,
        now,
        Start::CheckedEarlier,
    )?;
    Ok(Template {
        leaf: LeafTemplate {
            common_name,
            sans: identifiers.clone(),
            not_before,
            not_after,
            serial: SerialNumber::random()?,
            rsa_key: csr.is_rsa(),
            provisioner: Some(extension(authorization)),
        },
    })
}

/// The template of the CA's own TLS certificate: its DNS names, no provisioner. The name
/// policy governs what provisioners vouch for, not the names ca.json gives the CA itself.
pub fn for_server(
    dns_names: &[String],
    lifetime: time::Duration,
    backdate: time::Duration,
    now: OffsetDateTime,
) -> Result<Template> {
    let sans = dns_names
        .iter()
        .map(|n| San::parse(n))
        .collect::<mayfly_pki::Result<Vec<_>>>()?;
    Ok(Template {
        leaf: LeafTemplate {
            common_name: dns_names.first().cloned().unwrap_or_default(),
            sans,
            not_before: now - backdate,
            not_after: now + lifetime,
            serial: SerialNumber::random()?,
            rsa_key: false,
            provisioner: None,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credential::{CredentialValidity, Vouched};

    fn authorization(within: Option<CredentialValidity>) -> Authorization {
        Authorization {
            provisioner: Vouched {
                name: "devices".into(),
                type_code: mayfly_pki::cert::STEP_PROVISIONER_TYPE_X5C,
                credential_id: String::new(),
                claims: mayfly_config::claims::Claims::DEFAULT,
                admin: false,
            },
            subject: "app.example".into(),
            grant: Grant::Token(vec!["app.example".into()]),
            ssh: None,
            burn: None,
            credential: "token:devices".into(),
            detail: String::new(),
            within,
            confirms: None,
        }
    }

    #[test]
    fn a_credential_certificate_bounds_what_it_buys() {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let key = mayfly_pki::PrivateKey::generate(mayfly_pki::KeyAlgorithm::EcP256).unwrap();
        let csr =
            Csr::from_pem(&mayfly_pki::csr::create_pem(&key, "app.example", &[]).unwrap()).unwrap();
        let within = CredentialValidity {
            not_before: now - time::Duration::hours(1),
            not_after: now + time::Duration::hours(2),
        };
        let backdate = time::Duration::minutes(1);
        let request = |not_before: Option<TimeSpec>, not_after: Option<TimeSpec>| {
            for_request(
                &authorization(Some(within)),
                &csr,
                ValidityRequest {
                    not_before,
                    not_after,
                },
                backdate,
                now,
                &NamePolicies::default(),
            )
        };
        // The default 24h is cut to the credential's end; without one it is not.
        assert_eq!(request(None, None).unwrap().not_after(), within.not_after);
        let free = for_request(
            &authorization(None),
            &csr,
            ValidityRequest::default(),
            backdate,
            now,
            &NamePolicies::default(),
        )
        .unwrap();
        assert_eq!(free.not_after(), now + time::Duration::hours(24));
        // Within the credential: as asked.
        let hour = TimeSpec::FromNow(time::Duration::hours(1));
        assert_eq!(
            request(None, Some(hour)).unwrap().not_after(),
            now + time::Duration::hours(1)
        );
        // Beyond it, either end: refused.
        let late = TimeSpec::FromNow(time::Duration::hours(3));
        assert!(matches!(
            request(None, Some(late)),
            Err(Error::OutsideCredentialValidity {
                field: "notAfter",
                ..
            })
        ));
        let early = TimeSpec::At(within.not_before - time::Duration::seconds(1));
        assert!(matches!(
            request(Some(early), Some(hour)),
            Err(Error::OutsideCredentialValidity {
                field: "notBefore",
                ..
            })
        ));
    }

    fn csr(cn: &str, sans: &[&str]) -> Csr {
        let key = mayfly_pki::PrivateKey::generate(mayfly_pki::KeyAlgorithm::EcP256).unwrap();
        let sans: Vec<San> = sans.iter().map(|s| San::parse(s).unwrap()).collect();
        Csr::from_pem(&mayfly_pki::csr::create_pem(&key, cn, &sans).unwrap()).unwrap()
    }

    fn granting(grant: Grant) -> Authorization {
        Authorization {
            grant,
            ..authorization(None)
        }
    }

    const NOW: i64 = 1_800_000_000;
    const BACKDATE: time::Duration = time::Duration::minutes(1);

    fn at(seconds: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(seconds).unwrap()
    }

    #[test]
    fn a_token_bound_to_a_request_buys_a_certificate_for_that_request_only() {
        use crate::credential::CsrFingerprint;
        use base64::Engine as _;
        let bound = csr("app.example", &[]);
        let other = csr("app.example", &[]);
        let claim = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(mayfly_pki::cert::sha256(bound.der()));
        let bound_token = Authorization {
            confirms: Some(CsrFingerprint::parse(&claim).unwrap()),
            ..authorization(None)
        };
        let sign = |csr: &Csr| {
            for_request(
                &bound_token,
                csr,
                ValidityRequest::default(),
                BACKDATE,
                at(NOW),
                &NamePolicies::default(),
            )
        };
        assert!(sign(&bound).is_ok());
        match sign(&other) {
            Err(Error::CsrNotConfirmed { fingerprint }) => assert_eq!(fingerprint, claim),
            other => panic!("another request with a bound token: {other:?}"),
        }
        // Unbound, any request the names allow will do.
        assert!(
            for_request(
                &authorization(None),
                &other,
                ValidityRequest::default(),
                BACKDATE,
                at(NOW),
                &NamePolicies::default(),
            )
            .is_ok()
        );
        // The claim must be a SHA-256 in base64url.
        for bad in ["", "not base64!", "AAAA"] {
            assert!(CsrFingerprint::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_token_s_names_go_in_whole_and_the_request_may_only_ask_for_fewer() {
        let grant = Grant::Token(vec!["a.example".into(), "10.0.0.1".into()]);
        let sign = |csr: &Csr| {
            for_request(
                &granting(grant.clone()),
                csr,
                ValidityRequest::default(),
                BACKDATE,
                at(NOW),
                &NamePolicies::default(),
            )
        };
        let fewer = sign(&csr("a.example", &["a.example"])).unwrap();
        assert_eq!(fewer.sans().len(), 2, "the certificate carries every name");
        assert_eq!(fewer.common_name(), "a.example");
        for (cn, sans, refused) in [
            ("a.example", vec!["b.example"], "b.example"),
            ("b.example", vec!["a.example"], "b.example"),
            ("a.example", vec!["a.example", "10.0.0.2"], "10.0.0.2"),
        ] {
            let error = sign(&csr(cn, &sans)).unwrap_err();
            assert!(
                matches!(&error, Error::SanNotAuthorized { san, .. } if san == refused),
                "{cn} {sans:?}: {error}"
            );
        }
        let too_many = Grant::Token((0..=100).map(|i| format!("n{i}.example")).collect());
        assert!(matches!(
            for_request(
                &granting(too_many),
                &csr("n0.example", &[]),
                ValidityRequest::default(),
                BACKDATE,
                at(NOW),
                &NamePolicies::default(),
            ),
            Err(Error::TooManySans { count: 101, .. })
        ));
    }

    #[test]
    fn fixed_names_ignore_the_request_and_requested_names_follow_it() {
        let fixed = Grant::Fixed(vec![San::parse("me@example.com").unwrap()]);
        let template = for_request(
            &granting(fixed),
            &csr("other.example", &["other.example"]),
            ValidityRequest::default(),
            BACKDATE,
            at(NOW),
            &NamePolicies::default(),
        )
        .unwrap();
        assert_eq!(
            template.common_name(),
            "app.example",
            "the subject, not the CSR's"
        );
        assert_eq!(template.sans(), &[San::parse("me@example.com").unwrap()]);
        let requested = for_request(
            &granting(Grant::Requested),
            &csr("svc.example", &["svc.example", "10.1.1.1"]),
            ValidityRequest::default(),
            BACKDATE,
            at(NOW),
            &NamePolicies::default(),
        )
        .unwrap();
        assert_eq!(requested.common_name(), "svc.example");
        assert_eq!(requested.sans().len(), 2);
    }

    #[test]
    fn validity_is_bounded_by_the_claims_and_backdated_unless_pinned() {
        let sign = |validity: ValidityRequest| {
            for_request(
                &granting(Grant::Token(vec!["app.example".into()])),
                &csr("app.example", &[]),
                validity,
                BACKDATE,
                at(NOW),
                &NamePolicies::default(),
            )
        };
        let default = sign(ValidityRequest::default()).unwrap();
        assert_eq!(default.not_before(), at(NOW) - BACKDATE);
        assert_eq!(default.not_after(), at(NOW) + time::Duration::hours(24));
        let from_now = |d: time::Duration| Some(TimeSpec::FromNow(d));
        for (not_after, ok) in [
            (time::Duration::minutes(5), true),
            (
                time::Duration::minutes(5) - time::Duration::seconds(1),
                false,
            ),
            (time::Duration::hours(24), true),
            (
                time::Duration::hours(24) + time::Duration::seconds(1),
                false,
            ),
        ] {
            let outcome = sign(ValidityRequest {
                not_before: None,
                not_after: from_now(not_after),
            });
            assert_eq!(outcome.is_ok(), ok, "{not_after}: {outcome:?}");
        }
        let pinned = sign(ValidityRequest {
            not_before: from_now(time::Duration::hours(1)),
            not_after: from_now(time::Duration::hours(2)),
        })
        .unwrap();
        assert_eq!(
            pinned.not_before(),
            at(NOW + 3600),
            "a pinned start is not backdated"
        );
        // A start in the past beyond the backdate and the leeway would mint history.
        for (seconds, ok) in [(-120, true), (-121, false)] {
            let outcome = sign(ValidityRequest {
                not_before: Some(TimeSpec::At(at(NOW + seconds))),
                not_after: from_now(time::Duration::hours(1)),
            });
            assert_eq!(outcome.is_ok(), ok, "{seconds}: {outcome:?}");
        }
        assert!(matches!(
            sign(ValidityRequest {
                not_before: from_now(time::Duration::hours(2)),
                not_after: from_now(time::Duration::hours(1)),
            }),
            Err(Error::ValidityInverted { .. })
        ));
    }
}
