//! Account key rollover (RFC 8555 7.3.5).

use mayfly_authority::Authority;
use mayfly_pki::jose::jwk::Jwk;
use serde::Deserialize;

use super::accounts::{account_json, account_url};
use super::authenticate::KeyMode;
use super::{Acme, Reply, Request, conflict_as_retry, to_json};
use crate::error::{Error, ProblemType, Result};
use crate::jws::{SignedRequest, payload};
use crate::store::{AccountRow, AcmeStoreError};

impl Acme {
    /// `POST key-change` (RFC 8555 7.3.5): the outer JWS is signed by the old key, the inner by
    /// the new one; afterwards the old key is refused.
    pub async fn key_change(&self, authority: &Authority, req: &Request<'_>) -> Result<Reply> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct KeyChange {
            account: String,
            old_key: Jwk,
        }
        let auth = self.authenticate(authority, req, KeyMode::Kid).await?;
        let (mut account, version) = auth.versioned_account()?;
        let inner = SignedRequest::parse(&auth.payload)
            .map_err(|e| Error::malformed(format!("keyChange inner JWS: {e}")))?;
        if inner.protected.url != req.url {
            return Err(Error::malformed(
                "the inner JWS url is not the keyChange URL",
            ));
        }
        if inner.protected.nonce.is_some() {
            return Err(Error::malformed("the inner JWS must not have a nonce"));
        }
        let new_key = inner
            .protected
            .jwk
            .clone()
            .ok_or_else(|| Error::malformed("the inner JWS must carry the new key as \"jwk\""))?
            .to_public();
        let inner_payload = inner.verify(&new_key)?;
        let change: KeyChange = payload("keyChange", inner_payload)?;
        let url = account_url(req.base_url, &account.id);
        if change.account != url {
            return Err(Error::unauthorized(format!(
                "the inner JWS names account {:?}, not the signer {url:?}",
                change.account
            )));
        }
        let old = account
            .key
            .thumbprint()
            .map_err(|e| Error::Internal(e.to_string()))?;
        let claimed_old = change
            .old_key
            .thumbprint()
            .map_err(|e| Error::malformed(format!("oldKey: {e}")))?;
        if claimed_old != old {
            return Err(Error::unauthorized(
                "oldKey is not the account's current key",
            ));
        }
        let new_thumbprint = new_key
            .thumbprint()
            .map_err(|e| Error::problem(ProblemType::BadPublicKey, e.to_string()))?;
        if let Some(other) = self.store.account_by_key(&new_thumbprint).await? {
            return Err(Error::KeyInUse {
                location: account_url(req.base_url, &other.id),
            });
        }
        account.key = new_key;
        let text = to_json(&account)?;
        let row = AccountRow {
            id: &account.id,
            key_thumbprint: &new_thumbprint,
            body: &text,
            created_at: account.created_at,
        };
        match self.store.update_account(&row, version).await {
            Ok(()) => {}
            Err(AcmeStoreError::KeyTaken { account: other, .. }) => {
                return Err(Error::KeyInUse {
                    location: account_url(req.base_url, &other),
                });
            }
            Err(e) => return Err(conflict_as_retry(e)),
        }
        tracing::info!(target: "mayfly::audit", account = %account.id, "ACME account key changed");
        Ok(Reply::json(account_json(&account, req.base_url)).with_location(url))
    }
}
