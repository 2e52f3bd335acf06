//! Authentication of every POST (RFC 8555 6.2-6.5): content type, JWS form and algorithm,
//! `url` equal to the request URL, the key (`jwk` only for newAccount and revokeCert, `kid`
//! otherwise), the signature, then the single-use nonce.

use mayfly_authority::Authority;

use super::{Acme, JOSE_CONTENT_TYPE, Request, from_json, now};
use crate::error::{Error, ProblemType, Result};
use crate::jws::SignedRequest;
use crate::model::{Account, AccountStatus};

/// An authenticated request.
pub(super) struct Authenticated {
    pub(super) request: SignedRequest,
    pub(super) payload: Vec<u8>,
    /// The signing account and its stored version, when the request named it by `kid`.
    pub(super) account: Option<(Account, i64)>,
}

impl Authenticated {
    pub(super) fn account(&self) -> Result<&Account> {
        self.account
            .as_ref()
            .map(|(a, _)| a)
            .ok_or_else(|| Error::Internal("account expected after kid authentication".into()))
    }

    /// The account and its version, to be updated by compare-and-set.
    pub(super) fn versioned_account(&self) -> Result<(Account, i64)> {
        self.account
            .clone()
            .ok_or_else(|| Error::Internal("no account".into()))
    }
}

/// How a request must name its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum KeyMode {
    Kid,
    Jwk,
    Either,
}

impl Acme {
    pub(super) async fn authenticate(
        &self,
        authority: &Authority,
        req: &Request<'_>,
        mode: KeyMode,
    ) -> Result<Authenticated> {
        let content_type = req.content_type.unwrap_or("");
        let media = content_type.split(';').next().unwrap_or("").trim();
        if !media.eq_ignore_ascii_case(JOSE_CONTENT_TYPE) {
            return Err(Error::ContentType {
                found: content_type.to_string(),
            });
        }
        let request = SignedRequest::parse(req.body)?;
        if request.protected.url != req.url {
            return Err(Error::unauthorized(format!(
                "the JWS url {:?} is not the request URL {:?}",
                request.protected.url, req.url
            )));
        }
        let (payload, account) = match (&request.protected.jwk, &request.protected.kid, mode) {
            (Some(_), _, KeyMode::Kid) => {
                return Err(Error::malformed(
                    "this request must be signed by an account key named by \"kid\", not \"jwk\"",
                ));
            }
            (_, Some(_), KeyMode::Jwk) => {
                return Err(Error::malformed(
                    "this request must carry the key as \"jwk\", not \"kid\"",
                ));
            }
            (Some(jwk), None, _) => (request.verify(jwk)?.to_vec(), None),
            (None, Some(kid), _) => {
                let prefix = format!("{}/account/", req.base_url);
                let id = kid.strip_prefix(&prefix).ok_or_else(|| {
                    Error::problem(
                        ProblemType::AccountDoesNotExist,
                        format!("kid {kid:?} is not an account URL of this server"),
                    )
                })?;
                let stored = self.store.account(id).await?.ok_or_else(|| {
                    Error::problem(
                        ProblemType::AccountDoesNotExist,
                        format!("account {kid:?} does not exist"),
                    )
                })?;
                let account: Account = from_json("account", &stored)?;
                let payload = request.verify(&account.key)?.to_vec();
                if account.status != AccountStatus::Valid {
                    return Err(Error::unauthorized(format!(
                        "account {kid:?} is {}",
                        account.status
                    )));
                }
                (payload, Some((account, stored.version)))
            }
            (None, None, _) | (Some(_), Some(_), _) => {
                return Err(Error::malformed(
                    "the protected header needs exactly one of \"jwk\" and \"kid\"",
                ));
            }
        };
        let nonce = request
            .protected
            .nonce
            .as_deref()
            .ok_or_else(|| Error::problem(ProblemType::BadNonce, "the JWS has no nonce"))?;
        if !self
            .nonces
            .consume(self.store.as_ref(), nonce, now(authority))
            .await?
        {
            return Err(Error::problem(
                ProblemType::BadNonce,
                format!("nonce {nonce:?} is unknown, expired or already used"),
            ));
        }
        if let Some(client) = req.client {
            self.limits.nonce_used(client);
        }
        Ok(Authenticated {
            request,
            payload,
            account,
        })
    }
}
