//! The directory (RFC 8555 7.1.1) and nonces (7.2): what a client asks before it signs anything.

use std::net::IpAddr;

use mayfly_authority::Authority;
use serde_json::json;

use super::{Acme, Reply, acme_provisioner, now, random_id};
use crate::error::Result;

/// How long a nonce stays usable: it is accepted up to and including the second
/// `issued + NONCE_LIFETIME`.
pub(crate) const NONCE_LIFETIME: i64 = 3600;

impl Acme {
    /// `GET directory` (RFC 8555 7.1.1).
    pub fn directory(&self, authority: &Authority, provisioner: &str, base: &str) -> Result<Reply> {
        let settings = &acme_provisioner(authority, provisioner)?.settings;
        let mut meta = json!({"externalAccountRequired": settings.require_eab});
        if let Some(terms) = &settings.terms_of_service {
            meta["termsOfService"] = json!(terms);
        }
        if let Some(website) = &settings.website {
            meta["website"] = json!(website);
        }
        Ok(Reply::json(json!({
            "newNonce": format!("{base}/new-nonce"),
            "newAccount": format!("{base}/new-account"),
            "newOrder": format!("{base}/new-order"),
            "revokeCert": format!("{base}/revoke-cert"),
            "keyChange": format!("{base}/key-change"),
            "renewalInfo": format!("{base}/renewal-info"),
            "meta": meta,
        })))
    }

    /// A `newNonce` request from `client`: `Err` (rate limited) past its per-second budget.
    pub fn nonce_request(&self, client: Option<IpAddr>) -> Result<()> {
        match client {
            Some(client) => self.limits.nonce_request(client),
            None => Ok(()),
        }
    }

    /// A fresh nonce for `client`, recorded so that it is accepted once (by any instance sharing
    /// the store when nonces are kept there); `Err` (rate limited) while the client holds as
    /// many unused nonces as it may.
    pub async fn new_nonce(&self, authority: &Authority, client: Option<IpAddr>) -> Result<String> {
        if let Some(client) = client {
            self.limits.nonce_issued(client)?;
        }
        let nonce = random_id()?;
        let now = now(authority);
        self.nonces
            .insert(self.store.as_ref(), &nonce, now, now + NONCE_LIFETIME)
            .await?;
        Ok(nonce)
    }

    /// Deletes expired nonces; the server calls it now and then.
    pub async fn prune_nonces(&self, authority: &Authority) -> Result<u64> {
        self.nonces.prune(self.store.as_ref(), now(authority)).await
    }
}
