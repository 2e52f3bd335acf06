//! Tokens of K8sSA provisioners: the service-account JWTs a Kubernetes cluster signs (issuer
//! `kubernetes/serviceaccount`, subject `system:serviceaccount:NAMESPACE:NAME`), checked
//! against the public keys the provisioner lists, as step-ca checks them. The token vouches for
//! a workload, not for names: the request's names are granted, within the name policy.
//!
//! Such tokens are long-lived, carry no `jti` and, as the secret-based ones, may carry no `exp`
//! either: `exp`, `nbf` and `iat` are checked (with the leeway) when present, without the
//! one-hour cap of the tokens this CA's clients mint, and a token is single use by its SHA-256.

use mayfly_pki::jose::jws::Jws;
use serde::Deserialize;
use time::OffsetDateTime;

use super::jwt::{self, Audience};
use super::{Authorization, Grant, TokenContext, Vouched};
use crate::error::{Error, Result};
use crate::provisioner::{K8sSaProvisioner, Provisioner};
use crate::store::UsedToken;

/// The issuer of Kubernetes service-account tokens, which routes a token to the K8sSA
/// provisioner.
pub const ISSUER: &str = "kubernetes/serviceaccount";

/// The prefix of a service account's token subject.
const SUBJECT_PREFIX: &str = "system:serviceaccount:";

/// How long the use of a token without `exp` is remembered: as long as the token works, for
/// ever. 9999-12-31T23:59:59Z.
const NEVER_EXPIRES: i64 = 253_402_300_799;

/// The claims of a service-account token.
#[derive(Debug, Deserialize)]
struct ServiceAccountClaims {
    #[serde(default)]
    iss: String,
    #[serde(default)]
    sub: String,
    #[serde(default)]
    aud: Audience,
    #[serde(default)]
    exp: Option<i64>,
    #[serde(default)]
    nbf: Option<i64>,
    #[serde(default)]
    iat: Option<i64>,
    #[serde(default, rename = "kubernetes.io/serviceaccount/namespace")]
    namespace: Option<String>,
    #[serde(default, rename = "kubernetes.io/serviceaccount/service-account.name")]
    service_account: Option<String>,
}

/// A service account: namespace and name, from the token's subject.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ServiceAccount {
    namespace: String,
    name: String,
}

impl ServiceAccount {
    /// `system:serviceaccount:NAMESPACE:NAME`, both parts non-empty; the namespace and name
    /// claims, when the token has them, must say the same.
    fn from_claims(claims: &ServiceAccountClaims) -> Result<Self> {
        let malformed = || {
            Error::TokenMalformed(format!(
                "claim \"sub\" {:?} is not a service account (system:serviceaccount:NAMESPACE:NAME)",
                claims.sub
            ))
        };
        let rest = claims
            .sub
            .strip_prefix(SUBJECT_PREFIX)
            .ok_or_else(malformed)?;
        let (namespace, name) = rest.split_once(':').ok_or_else(malformed)?;
        if namespace.is_empty() || name.is_empty() || name.contains(':') {
            return Err(malformed());
        }
        for (claim, value, expected) in [
            ("namespace", &claims.namespace, namespace),
            ("service-account.name", &claims.service_account, name),
        ] {
            if let Some(value) = value
                && value != expected
            {
                return Err(Error::TokenMalformed(format!(
                    "claim \"kubernetes.io/serviceaccount/{claim}\" is {value:?}, but \"sub\" says {expected:?}"
                )));
            }
        }
        Ok(Self {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        })
    }
}

/// Verifies a service-account token (its `iss` is [`ISSUER`]) for the CA's K8sSA provisioner.
pub fn verify(jws: &Jws, token: &str, context: &TokenContext<'_>) -> Result<Authorization> {
    let provisioner = context
        .provisioners
        .iter()
        .find_map(|p| match p {
            Provisioner::K8sSa(k8s) => Some(k8s.as_ref()),
            _ => None,
        })
        .ok_or_else(|| Error::TokenUnknownProvisioner {
            id: "k8ssa (a Kubernetes service-account token)".into(),
        })?;
    let payload = provisioner
        .public_keys
        .iter()
        .find_map(|key| jws.verify_with_spki(key).ok())
        .ok_or_else(|| Error::TokenKeyNotTrusted {
            provisioner: provisioner.name.clone(),
        })?;
    let claims: ServiceAccountClaims = serde_json::from_slice(payload)
        .map_err(|e| Error::TokenMalformed(format!("claims: {e}")))?;
    if claims.iss != ISSUER {
        return Err(Error::TokenIssuerMismatch {
            iss: claims.iss,
            provisioner: provisioner.name.clone(),
        });
    }
    let exp = check_times(&claims, context.now)?;
    check_audience(&claims.aud, context.audiences)?;
    let account = ServiceAccount::from_claims(&claims)?;
    let burn = UsedToken {
        jti: jwt::token_hash(token),
        provisioner: provisioner.name.clone(),
        expires_at: match exp {
            Some(exp) => exp + jwt::LEEWAY,
            None => OffsetDateTime::from_unix_timestamp(NEVER_EXPIRES)
                .map_err(|_| Error::Config("the end of time is out of range".into()))?,
        },
    };
    Ok(Authorization {
        provisioner: vouched(provisioner),
        // step-ca makes the service account's name the template's common name; the request's
        // common name, when it has one, comes first.
        subject: account.name.clone(),
        grant: Grant::Requested,
        ssh: None,
        detail: format!(
            "service account {}/{}, token sha256 {}",
            account.namespace, account.name, burn.jti
        ),
        burn: Some(burn),
        credential: format!("token:{}", provisioner.name),
        within: None,
        confirms: None,
    })
}

/// How leaves issued through `provisioner` name it: step writes no credential id for K8sSA.
pub fn vouched(provisioner: &K8sSaProvisioner) -> Vouched {
    Vouched {
        name: provisioner.name.clone(),
        type_code: mayfly_pki::cert::STEP_PROVISIONER_TYPE_K8SSA,
        credential_id: String::new(),
        claims: provisioner.claims,
        admin: false,
    }
}

/// `exp`, `nbf` and `iat`, each when present, with the leeway; returns `exp`.
fn check_times(
    claims: &ServiceAccountClaims,
    now: OffsetDateTime,
) -> Result<Option<OffsetDateTime>> {
    let at =
        |field: &str, seconds: Option<i64>| seconds.map(|s| jwt::timestamp(field, s)).transpose();
    let exp = at("exp", claims.exp)?;
    jwt::check_window(exp, [at("nbf", claims.nbf)?, at("iat", claims.iat)?], now)?;
    Ok(exp)
}

/// A token that names audiences must name this CA's endpoint (ports aside): one minted for
/// another service is not for us. Secret-based service-account tokens name none, and step-ca
/// reads no audience at all.
fn check_audience(aud: &Audience, expected: &[String]) -> Result<()> {
    let found = aud.values();
    if found.is_empty()
        || found
            .iter()
            .any(|a| expected.iter().any(|e| jwt::same_audience(a, e)))
    {
        return Ok(());
    }
    Err(Error::TokenAudienceMismatch {
        found,
        expected: expected.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(value: serde_json::Value) -> ServiceAccountClaims {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn the_subject_names_a_service_account_and_agrees_with_the_other_claims() {
        let ok = claims(serde_json::json!({
            "sub": "system:serviceaccount:prod:web",
            "kubernetes.io/serviceaccount/namespace": "prod",
            "kubernetes.io/serviceaccount/service-account.name": "web",
        }));
        assert_eq!(
            ServiceAccount::from_claims(&ok).unwrap(),
            ServiceAccount {
                namespace: "prod".into(),
                name: "web".into()
            }
        );
        for (value, expected) in [
            (
                serde_json::json!({"sub": "web"}),
                "is not a service account",
            ),
            (
                serde_json::json!({"sub": "system:serviceaccount:prod"}),
                "is not a service account",
            ),
            (
                serde_json::json!({"sub": "system:serviceaccount::web"}),
                "is not a service account",
            ),
            (
                serde_json::json!({"sub": "system:serviceaccount:prod:web:x"}),
                "is not a service account",
            ),
            (
                serde_json::json!({
                    "sub": "system:serviceaccount:prod:web",
                    "kubernetes.io/serviceaccount/namespace": "dev",
                }),
                "\"dev\", but \"sub\" says \"prod\"",
            ),
        ] {
            let error = ServiceAccount::from_claims(&claims(value.clone())).unwrap_err();
            assert!(error.to_string().contains(expected), "{value}: {error}");
        }
    }

    #[test]
    fn times_are_checked_when_present_with_the_leeway_and_no_cap() {
        let t = 1_800_000_000;
        let now = OffsetDateTime::from_unix_timestamp(t).unwrap();
        // A secret-based token: no times at all.
        assert_eq!(
            check_times(&claims(serde_json::json!({})), now).unwrap(),
            None
        );
        // A year-long token is fine while it lasts.
        let long = claims(serde_json::json!({"iat": t - 100, "exp": t + 31_536_000}));
        assert!(check_times(&long, now).unwrap().is_some());
        let expired = claims(serde_json::json!({"exp": t - 61}));
        assert!(matches!(
            check_times(&expired, now),
            Err(Error::TokenExpired { .. })
        ));
        assert!(check_times(&claims(serde_json::json!({"exp": t - 60})), now).is_ok());
        for field in ["nbf", "iat"] {
            let early = claims(serde_json::json!({ field: t + 61 }));
            assert!(matches!(
                check_times(&early, now),
                Err(Error::TokenNotYetValid { .. })
            ));
        }
    }

    #[test]
    fn an_audience_when_named_must_be_ours() {
        let ours = vec!["https://ca.example/1.0/sign".to_string()];
        let aud = |v: serde_json::Value| -> Audience { serde_json::from_value(v).unwrap() };
        assert!(check_audience(&Audience::None, &ours).is_ok());
        assert!(check_audience(&aud(serde_json::json!([])), &ours).is_ok());
        assert!(
            check_audience(
                &aud(serde_json::json!([
                    "vault",
                    "https://ca.example:9000/1.0/sign"
                ])),
                &ours
            )
            .is_ok()
        );
        assert!(matches!(
            check_audience(&aud(serde_json::json!("vault")), &ours),
            Err(Error::TokenAudienceMismatch { .. })
        ));
    }
}
