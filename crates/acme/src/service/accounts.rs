//! Accounts (RFC 8555 7.3): creation (with external account binding), lookup by key, contact
//! updates, deactivation, and the list of an account's orders.

use mayfly_authority::Authority;
use serde::Deserialize;
use serde_json::{Value, json};

use super::authenticate::KeyMode;
use super::{
    Acme, Reply, Request, acme_provisioner, conflict_as_retry, from_json, now, random_id, to_json,
};
use crate::error::{Error, ProblemType, Result};
use crate::jws::payload;
use crate::model::{Account, AccountStatus};
use crate::store::{AccountRow, AcmeStoreError};

/// Orders listed by `account/{id}/orders`; older ones are left out.
const MAX_LISTED_ORDERS: u32 = 1000;
/// Contacts one account may list: a few addresses to warn, not a mailing list.
const MAX_CONTACTS: usize = 10;

/// The account object (RFC 8555 7.1.2).
pub(super) fn account_json(account: &Account, base: &str) -> Value {
    json!({
        "status": account.status,
        "contact": account.contact,
        "termsOfServiceAgreed": account.terms_of_service_agreed,
        "orders": format!("{base}/account/{}/orders", account.id),
    })
}

/// The URL of an account, which is also its `kid`.
pub(super) fn account_url(base: &str, id: &str) -> String {
    format!("{base}/account/{id}")
}

impl Acme {
    /// `POST new-account` (RFC 8555 7.3).
    pub async fn new_account(
        &self,
        authority: &Authority,
        provisioner: &str,
        req: &Request<'_>,
    ) -> Result<Reply> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct NewAccount {
            #[serde(default)]
            contact: Vec<String>,
            #[serde(default)]
            terms_of_service_agreed: bool,
            #[serde(default)]
            only_return_existing: bool,
            #[serde(default)]
            external_account_binding: Option<Value>,
        }
        let settings = &acme_provisioner(authority, provisioner)?.settings;
        let auth = self.authenticate(authority, req, KeyMode::Jwk).await?;
        let body: NewAccount = payload("newAccount", &auth.payload)?;
        let jwk = auth
            .request
            .protected
            .jwk
            .clone()
            .ok_or_else(|| Error::malformed("newAccount needs \"jwk\""))?
            .to_public();
        let thumbprint = jwk
            .thumbprint()
            .map_err(|e| Error::problem(ProblemType::BadPublicKey, e.to_string()))?;
        if let Some(stored) = self.store.account_by_key(&thumbprint).await? {
            let account: Account = from_json("account", &stored)?;
            if account.status != AccountStatus::Valid {
                return Err(Error::unauthorized(format!(
                    "the account of this key is {}",
                    account.status
                )));
            }
            let location = account_url(req.base_url, &account.id);
            return Ok(Reply::json(account_json(&account, req.base_url)).with_location(location));
        }
        if body.only_return_existing {
            return Err(Error::problem(
                ProblemType::AccountDoesNotExist,
                "no account has this key",
            ));
        }
        if settings.terms_of_service.is_some() && !body.terms_of_service_agreed {
            return Err(Error::malformed(
                "the terms of service must be agreed to (termsOfServiceAgreed: true)",
            ));
        }
        validate_contacts(&body.contact)?;
        if let Some(client) = req.client {
            self.limits.new_account(client)?;
        }
        let external_account = match &body.external_account_binding {
            Some(binding) => Some(crate::eab::verify(binding, &jwk, req.url, settings)?),
            None if settings.require_eab => {
                return Err(Error::problem(
                    ProblemType::ExternalAccountRequired,
                    "this provisioner requires an external account binding",
                ));
            }
            None => None,
        };
        let now = now(authority);
        let account = Account {
            id: random_id()?,
            key: jwk,
            status: AccountStatus::Valid,
            contact: body.contact,
            terms_of_service_agreed: body.terms_of_service_agreed,
            created_at: now,
            external_account,
        };
        let text = to_json(&account)?;
        let row = AccountRow {
            id: &account.id,
            key_thumbprint: &thumbprint,
            body: &text,
            created_at: now,
        };
        match self.store.insert_account(&row).await {
            Ok(()) => {}
            // Another request with the same key won the race: answer with its account.
            Err(AcmeStoreError::KeyTaken { account: id, .. }) => {
                let stored = self
                    .store
                    .account(&id)
                    .await?
                    .ok_or_else(|| Error::Internal("account vanished".into()))?;
                let existing: Account = from_json("account", &stored)?;
                return Ok(Reply::json(account_json(&existing, req.base_url))
                    .with_location(account_url(req.base_url, &id)));
            }
            Err(e) => return Err(e.into()),
        }
        tracing::info!(target: "mayfly::audit", account = %account.id, %provisioner, "ACME account created");
        let location = account_url(req.base_url, &account.id);
        Ok(Reply::json(account_json(&account, req.base_url))
            .with_location(location)
            .created())
    }

    /// `POST account/{id}`: read, update contacts, or deactivate (RFC 8555 7.3.2, 7.3.6).
    pub async fn account(
        &self,
        authority: &Authority,
        req: &Request<'_>,
        id: &str,
    ) -> Result<Reply> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields, rename_all = "camelCase")]
        struct Update {
            #[serde(default)]
            status: Option<String>,
            #[serde(default)]
            contact: Option<Vec<String>>,
            #[serde(default)]
            terms_of_service_agreed: Option<bool>,
        }
        let auth = self.authenticate(authority, req, KeyMode::Kid).await?;
        let (mut account, version) = auth.versioned_account()?;
        if account.id != id {
            return Err(Error::unauthorized(
                "an account may only be managed with its own key",
            ));
        }
        if !auth.request.is_post_as_get() {
            let update: Update = payload("account update", &auth.payload)?;
            if let Some(contact) = update.contact {
                validate_contacts(&contact)?;
                account.contact = contact;
            }
            if update.terms_of_service_agreed == Some(true) {
                account.terms_of_service_agreed = true;
            }
            match update.status.as_deref() {
                None | Some("valid") => {}
                Some("deactivated") => account.status = AccountStatus::Deactivated,
                Some(other) => {
                    return Err(Error::malformed(format!(
                        "account status {other:?} cannot be requested: only \"deactivated\""
                    )));
                }
            }
            let thumbprint = account
                .key
                .thumbprint()
                .map_err(|e| Error::Internal(e.to_string()))?;
            let text = to_json(&account)?;
            let row = AccountRow {
                id: &account.id,
                key_thumbprint: &thumbprint,
                body: &text,
                created_at: account.created_at,
            };
            self.store
                .update_account(&row, version)
                .await
                .map_err(conflict_as_retry)?;
            if account.status == AccountStatus::Deactivated {
                tracing::info!(target: "mayfly::audit", account = %account.id, "ACME account deactivated");
            }
        }
        let location = account_url(req.base_url, &account.id);
        Ok(Reply::json(account_json(&account, req.base_url)).with_location(location))
    }

    /// `POST account/{id}/orders` (RFC 8555 7.1.2.1): the account's orders, newest first.
    pub async fn account_orders(
        &self,
        authority: &Authority,
        req: &Request<'_>,
        id: &str,
    ) -> Result<Reply> {
        let auth = self.authenticate(authority, req, KeyMode::Kid).await?;
        if auth.account()?.id != id {
            return Err(Error::unauthorized("another account's orders"));
        }
        let orders: Vec<String> = self
            .store
            .account_orders(id, MAX_LISTED_ORDERS)
            .await?
            .into_iter()
            .map(|order| format!("{}/order/{order}", req.base_url))
            .collect();
        Ok(Reply::json(json!({ "orders": orders })))
    }
}

fn validate_contacts(contacts: &[String]) -> Result<()> {
    if contacts.len() > MAX_CONTACTS {
        return Err(Error::problem(
            ProblemType::InvalidContact,
            format!(
                "{} contacts: an account may have at most {MAX_CONTACTS}",
                contacts.len()
            ),
        ));
    }
    for contact in contacts {
        let Some(address) = contact.strip_prefix("mailto:") else {
            return Err(Error::problem(
                ProblemType::UnsupportedContact,
                format!("contact {contact:?} is not a mailto: URL"),
            ));
        };
        let valid = address.split('@').count() == 2
            && !address.contains(['?', ',', ' '])
            && address.split('@').all(|part| !part.is_empty());
        if !valid {
            return Err(Error::problem(
                ProblemType::InvalidContact,
                format!("contact {contact:?} is not one e-mail address"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contacts_must_be_single_mailto_addresses() {
        assert!(validate_contacts(&["mailto:a@example.com".into()]).is_ok());
        let cases = [
            ("tel:+1", ProblemType::UnsupportedContact),
            ("mailto:a", ProblemType::InvalidContact),
            ("mailto:a@b,c@d", ProblemType::InvalidContact),
            ("mailto:a@b?subject=x", ProblemType::InvalidContact),
            ("mailto:@b", ProblemType::InvalidContact),
        ];
        for (contact, problem) in cases {
            let err = validate_contacts(&[contact.into()]).unwrap_err();
            assert_eq!(err.problem_type(), problem, "{contact}");
        }
        let many: Vec<String> = (0..=MAX_CONTACTS)
            .map(|i| format!("mailto:a{i}@example.com"))
            .collect();
        assert_eq!(
            validate_contacts(&many).unwrap_err().problem_type(),
            ProblemType::InvalidContact
        );
    }
}
