//! Authorizations (RFC 8555 7.5): which challenges an identifier is offered, reading an
//! authorization with its status as of now, and deactivation (7.5.2).

use mayfly_authority::Authority;
use mayfly_authority::provisioner::AcmeSettings;
use serde::Deserialize;
use serde_json::{Value, json};

use super::authenticate::KeyMode;
use super::{Acme, Reply, Request, conflict_as_retry, from_json, now};
use crate::error::{Error, Result};
use crate::jws::payload;
use crate::model::{
    Account, Authorization, AuthorizationStatus, Challenge, ChallengeKind, Identifier,
    IdentifierKind, rfc3339,
};
use crate::store::{AcmeStore, AcmeStoreError, AuthorizationRow};

/// The challenges offered for `identifier`: a wildcard only dns-01 (only it proves control of
/// a zone), an IP address only http-01 (RFC 8738 7), a name all three; then only those the
/// provisioner allows.
pub(super) fn offered_challenges(
    identifier: &Identifier,
    settings: &AcmeSettings,
) -> Vec<ChallengeKind> {
    let candidates: &[ChallengeKind] = if identifier.is_wildcard() {
        &[ChallengeKind::Dns01]
    } else if identifier.kind == IdentifierKind::Ip {
        &[ChallengeKind::Http01]
    } else {
        &[
            ChallengeKind::Http01,
            ChallengeKind::Dns01,
            ChallengeKind::TlsAlpn01,
        ]
    };
    candidates
        .iter()
        .copied()
        .filter(|c| {
            settings.challenges.is_empty() || settings.challenges.iter().any(|s| s == c.as_str())
        })
        .collect()
}

/// The challenge object (RFC 8555 8).
pub(super) fn challenge_json(
    challenge: &Challenge,
    authorization: &str,
    index: usize,
    base: &str,
) -> Value {
    let mut out = json!({
        "type": challenge.kind,
        "url": format!("{base}/challenge/{authorization}/{index}"),
        "token": challenge.token,
        "status": challenge.status,
    });
    if let Some(validated) = challenge.validated {
        out["validated"] = json!(rfc3339(validated));
    }
    if let Some(error) = &challenge.error {
        out["error"] = json!(error);
    }
    out
}

/// The authorization object (RFC 8555 7.1.4), with the status as of now.
fn authorization_json(
    authorization: &Authorization,
    status: AuthorizationStatus,
    base: &str,
) -> Value {
    let mut out = json!({
        "identifier": authorization.identifier,
        "status": status,
        "expires": rfc3339(authorization.expires),
        "challenges": authorization
            .challenges
            .iter()
            .enumerate()
            .map(|(i, c)| challenge_json(c, &authorization.id, i, base))
            .collect::<Vec<_>>(),
    });
    if authorization.wildcard {
        out["wildcard"] = json!(true);
    }
    out
}

/// Writes `authorization` if it is still at `version` (compare-and-set), with the indexed
/// columns the store looks authorizations up by.
pub(super) async fn save_authorization(
    store: &dyn AcmeStore,
    authorization: &Authorization,
    version: i64,
) -> Result<(), AcmeStoreError> {
    let text = serde_json::to_string(authorization)
        .map_err(|e| AcmeStoreError::Backend(format!("serialising: {e}")))?;
    let key = authorization.index_key();
    store
        .update_authorization(
            &AuthorizationRow {
                id: &authorization.id,
                account: &authorization.account,
                identifier: &key,
                status: authorization.status,
                expires_at: authorization.expires,
                body: &text,
            },
            version,
        )
        .await
}

impl Acme {
    /// The authorization `id` if `account` owns it; another account's does not exist for it.
    pub(super) async fn owned_authorization(
        &self,
        account: &Account,
        id: &str,
    ) -> Result<(Authorization, i64)> {
        let stored = self
            .store
            .authorization(id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("authorization {id}")))?;
        let authorization: Authorization = from_json("authorization", &stored)?;
        if authorization.account != account.id {
            return Err(Error::NotFound(format!("authorization {id}")));
        }
        Ok((authorization, stored.version))
    }

    /// `POST authz/{id}`: read, or deactivate (RFC 8555 7.5.2).
    pub async fn authorization(
        &self,
        authority: &Authority,
        req: &Request<'_>,
        id: &str,
    ) -> Result<Reply> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Update {
            status: String,
        }
        let auth = self.authenticate(authority, req, KeyMode::Kid).await?;
        let (mut authorization, version) = self.owned_authorization(auth.account()?, id).await?;
        let now = now(authority);
        if !auth.request.is_post_as_get() {
            let update: Update = payload("authorization update", &auth.payload)?;
            if update.status != AuthorizationStatus::Deactivated.as_str() {
                return Err(Error::malformed(format!(
                    "authorization status {:?} cannot be requested: only \"deactivated\"",
                    update.status
                )));
            }
            if !matches!(
                authorization.status,
                AuthorizationStatus::Pending | AuthorizationStatus::Valid
            ) {
                return Err(Error::malformed(format!(
                    "a {} authorization cannot be deactivated",
                    authorization.status
                )));
            }
            authorization.status = AuthorizationStatus::Deactivated;
            save_authorization(self.store.as_ref(), &authorization, version)
                .await
                .map_err(conflict_as_retry)?;
        }
        let status = authorization.status_as_of(now);
        Ok(Reply::json(authorization_json(
            &authorization,
            status,
            req.base_url,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_get_only_dns01() {
        let settings = AcmeSettings::default();
        let wildcard = Identifier {
            kind: IdentifierKind::Dns,
            value: "*.example.com".into(),
        };
        assert_eq!(
            offered_challenges(&wildcard, &settings),
            vec![ChallengeKind::Dns01]
        );
        let ip = Identifier {
            kind: IdentifierKind::Ip,
            value: "127.0.0.1".into(),
        };
        assert_eq!(
            offered_challenges(&ip, &settings),
            vec![ChallengeKind::Http01]
        );
        let name = Identifier {
            kind: IdentifierKind::Dns,
            value: "example.com".into(),
        };
        assert_eq!(offered_challenges(&name, &settings).len(), 3);
        let only_http = AcmeSettings {
            challenges: vec!["http-01".into()],
            ..AcmeSettings::default()
        };
        assert!(offered_challenges(&wildcard, &only_http).is_empty());
        assert_eq!(
            offered_challenges(&name, &only_http),
            vec![ChallengeKind::Http01]
        );
    }
}
