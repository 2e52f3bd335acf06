//! Challenges (RFC 8555 7.5.1): a client's `{}` starts a validation, which runs in the
//! background ([`crate::tasks`]) and records its outcome on the challenge and authorization.

use std::sync::Arc;

use mayfly_authority::Authority;
use mayfly_authority::clock::Clock;
use mayfly_authority::provisioner::AcmeSettings;

use super::authenticate::KeyMode;
use super::authorizations::{challenge_json, save_authorization};
use super::{Acme, Reply, Request, acme_provisioner, now};
use crate::error::{Error, ProblemType, Result};
use crate::model::{
    Authorization, AuthorizationStatus, Challenge, ChallengeStatus, Identifier, Problem,
};
use crate::store::{AcmeStore, AcmeStoreError};
use crate::tasks::StopSignal;

/// How long a valid authorization is reused for new orders of the same account.
const VALID_AUTHORIZATION_LIFETIME: i64 = 7 * 24 * 3600;
/// Validation attempts before a challenge fails, and the pause between them: a client may
/// answer the challenge a moment after it says it is ready.
const VALIDATION_ATTEMPTS: u32 = 3;
const VALIDATION_RETRY_PAUSE: std::time::Duration = std::time::Duration::from_secs(1);

impl Acme {
    /// `POST challenge/{authz}/{index}`: `{}` asks for validation, which runs in the background
    /// (RFC 8555 7.5.1); an empty payload only reads.
    pub async fn challenge(
        &self,
        authority: &Authority,
        provisioner: &str,
        req: &Request<'_>,
        authorization_id: &str,
        index: usize,
    ) -> Result<Reply> {
        let settings = acme_provisioner(authority, provisioner)?.settings.clone();
        let auth = self.authenticate(authority, req, KeyMode::Kid).await?;
        let account = auth.account()?.clone();
        let (mut authorization, version) =
            self.owned_authorization(&account, authorization_id).await?;
        if index >= authorization.challenges.len() {
            return Err(Error::NotFound(format!(
                "challenge {index} of authorization {authorization_id}"
            )));
        }
        let start = !auth.request.is_post_as_get()
            && authorization.status_as_of(now(authority)) == AuthorizationStatus::Pending
            && authorization.challenges[index].status == ChallengeStatus::Pending
            && !authorization
                .challenges
                .iter()
                .any(|c| c.status == ChallengeStatus::Processing);
        if start {
            authorization.challenges[index].status = ChallengeStatus::Processing;
            // Only the request that wins this compare-and-set starts a validation, so no
            // challenge is validated twice however many clients push it at once.
            match save_authorization(self.store.as_ref(), &authorization, version).await {
                Ok(()) => {
                    let thumbprint = account
                        .key
                        .thumbprint()
                        .map_err(|e| Error::Internal(e.to_string()))?;
                    let challenge = &authorization.challenges[index];
                    let validation = Validation {
                        store: Arc::clone(&self.store),
                        clock: Arc::clone(authority.clock()),
                        settings,
                        authorization_id: authorization.id.clone(),
                        index,
                        key_authorization: format!("{}.{thumbprint}", challenge.token),
                    };
                    self.validations.spawn(|stop| validation.run(stop));
                }
                Err(AcmeStoreError::VersionMismatch { .. }) => {
                    let (current, _) = self.owned_authorization(&account, authorization_id).await?;
                    authorization = current;
                }
                Err(e) => return Err(e.into()),
            }
        }
        let challenge = &authorization.challenges[index];
        let mut reply = Reply::json(challenge_json(
            challenge,
            &authorization.id,
            index,
            req.base_url,
        ));
        reply.links.push(format!(
            "<{}/authz/{}>;rel=\"up\"",
            req.base_url, authorization.id
        ));
        Ok(reply)
    }
}

/// The problem a validation records when the server stops it before it has an answer.
fn interrupted() -> Problem {
    Problem::new(
        ProblemType::ServerInternal,
        "the server shut down before this validation finished; create a new order to try again",
    )
}

/// One challenge's validation, owning what it needs to outlive the request that started it.
struct Validation {
    store: Arc<dyn AcmeStore>,
    clock: Arc<dyn Clock>,
    settings: AcmeSettings,
    authorization_id: String,
    index: usize,
    key_authorization: String,
}

impl Validation {
    /// Validates the challenge (with retries, until stopped) and records the outcome.
    async fn run(self, mut stop: StopSignal) {
        if let Err(e) = self.validate_and_record(&mut stop).await {
            tracing::error!(error = %e, authorization = %self.authorization_id, "recording a challenge result failed");
        }
    }

    async fn read(&self) -> Result<(Authorization, i64), AcmeStoreError> {
        let stored = self
            .store
            .authorization(&self.authorization_id)
            .await?
            .ok_or_else(|| AcmeStoreError::Backend("authorization vanished".into()))?;
        let authorization = serde_json::from_str(&stored.body)
            .map_err(|e| AcmeStoreError::Backend(e.to_string()))?;
        Ok((authorization, stored.version))
    }

    async fn validate_and_record(&self, stop: &mut StopSignal) -> Result<(), AcmeStoreError> {
        let (authorization, _) = self.read().await?;
        let challenge = authorization
            .challenges
            .get(self.index)
            .ok_or_else(|| AcmeStoreError::Backend("challenge vanished".into()))?
            .clone();
        let result = self
            .attempts(&challenge, &authorization.identifier, stop)
            .await;
        // The validating task is the only writer of a processing challenge, but the client may
        // deactivate the authorization meanwhile: re-read and re-apply until the write lands.
        loop {
            let (mut current, version) = self.read().await?;
            let now = self.clock.now().unix_timestamp();
            if !record(&mut current, self.index, &result, now) {
                return Ok(());
            }
            match save_authorization(self.store.as_ref(), &current, version).await {
                Ok(()) => {
                    tracing::info!(
                        target: "mayfly::audit",
                        authorization = %self.authorization_id,
                        identifier = %current.identifier.value,
                        challenge = %challenge.kind,
                        valid = result.is_ok(),
                        "ACME challenge validated"
                    );
                    let outcome = if result.is_ok() { "valid" } else { "invalid" };
                    metrics::counter!("mayfly_acme_challenges_total", "outcome" => outcome)
                        .increment(1);
                    return Ok(());
                }
                Err(AcmeStoreError::VersionMismatch { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Up to [`VALIDATION_ATTEMPTS`] attempts a pause apart, the first success ending them; a
    /// stop ends them at once as [`interrupted`].
    async fn attempts(
        &self,
        challenge: &Challenge,
        identifier: &Identifier,
        stop: &mut StopSignal,
    ) -> Result<(), Problem> {
        let mut attempt = 1;
        loop {
            let result = tokio::select! {
                result = crate::validate::validate(
                    challenge.kind,
                    identifier,
                    &challenge.token,
                    &self.key_authorization,
                    &self.settings,
                ) => result,
                () = stop.stopped() => return Err(interrupted()),
            };
            if result.is_ok() || attempt == VALIDATION_ATTEMPTS {
                return result;
            }
            attempt += 1;
            tokio::select! {
                () = tokio::time::sleep(VALIDATION_RETRY_PAUSE) => {}
                () = stop.stopped() => return Err(interrupted()),
            }
        }
    }
}

/// Applies a validation's outcome to the challenge `index` of `authorization` as of `now`;
/// false when there is nothing to record (the challenge is no longer processing).
fn record(
    authorization: &mut Authorization,
    index: usize,
    result: &Result<(), Problem>,
    now: i64,
) -> bool {
    let Some(challenge) = authorization.challenges.get_mut(index) else {
        return false;
    };
    if challenge.status != ChallengeStatus::Processing {
        return false;
    }
    match result {
        Ok(()) => {
            challenge.status = ChallengeStatus::Valid;
            challenge.validated = Some(now);
            if authorization.status == AuthorizationStatus::Pending {
                authorization.status = AuthorizationStatus::Valid;
                authorization.expires = now + VALID_AUTHORIZATION_LIFETIME;
            }
        }
        Err(problem) => {
            challenge.status = ChallengeStatus::Invalid;
            challenge.error = Some(problem.clone());
            if authorization.status == AuthorizationStatus::Pending {
                authorization.status = AuthorizationStatus::Invalid;
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ChallengeKind, IdentifierKind};

    fn processing(status: AuthorizationStatus) -> Authorization {
        Authorization {
            id: "a".into(),
            account: "acct".into(),
            identifier: Identifier {
                kind: IdentifierKind::Dns,
                value: "example.test".into(),
            },
            status,
            expires: 1000,
            wildcard: false,
            challenges: vec![Challenge {
                kind: ChallengeKind::Http01,
                token: "t".into(),
                status: ChallengeStatus::Processing,
                validated: None,
                error: None,
            }],
        }
    }

    /// A valid authorization is reused for a week from its validation, whatever its pending
    /// expiry was.
    #[test]
    fn a_success_makes_the_authorization_valid_for_a_week_from_now() {
        let mut authorization = processing(AuthorizationStatus::Pending);
        assert!(record(&mut authorization, 0, &Ok(()), 500));
        assert_eq!(authorization.status, AuthorizationStatus::Valid);
        assert_eq!(authorization.expires, 500 + 7 * 24 * 3600);
        assert_eq!(authorization.challenges[0].status, ChallengeStatus::Valid);
        assert_eq!(authorization.challenges[0].validated, Some(500));
        // Recorded once: the challenge is no longer processing.
        assert!(!record(&mut authorization, 0, &Ok(()), 600));
        assert!(!record(&mut authorization, 1, &Ok(()), 600));
    }

    #[test]
    fn a_failure_or_an_interruption_ends_in_invalid_never_processing() {
        for problem in [
            Problem::new(ProblemType::IncorrectResponse, "wrong"),
            interrupted(),
        ] {
            let mut authorization = processing(AuthorizationStatus::Pending);
            assert!(record(&mut authorization, 0, &Err(problem.clone()), 500));
            assert_eq!(authorization.status, AuthorizationStatus::Invalid);
            assert_eq!(authorization.expires, 1000);
            assert_eq!(authorization.challenges[0].status, ChallengeStatus::Invalid);
            assert_eq!(authorization.challenges[0].error, Some(problem));
        }
        // A client's deactivation meanwhile stands; only the challenge records the outcome.
        let mut deactivated = processing(AuthorizationStatus::Deactivated);
        assert!(record(&mut deactivated, 0, &Ok(()), 500));
        assert_eq!(deactivated.status, AuthorizationStatus::Deactivated);
        assert_eq!(deactivated.challenges[0].status, ChallengeStatus::Valid);
    }
}
