//! Finalization (RFC 8555 7.4): a ready order's CSR is checked, signed through the authority's
//! sign-and-record path, and the order turns valid only once the certificate is stored.

use std::collections::BTreeSet;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use mayfly_authority::Authority;
use mayfly_pki::jose::jwk::Jwk;
use mayfly_pki::{Csr, San, SerialNumber};
use serde::Deserialize;

use super::authenticate::KeyMode;
use super::orders::{order_json, order_reached};
use super::{Acme, Reply, Request, acme_provisioner, now, spki_sha256, to_json};
use crate::error::{Error, ProblemType, Result};
use crate::jws::payload;
use crate::model::{Identifier, OrderStatus, Problem};
use crate::store::AcmeStoreError;

impl Acme {
    /// `POST order/{id}/finalize` (RFC 8555 7.4): the CSR must name exactly the order's
    /// identifiers; the certificate is signed and stored before the order turns valid.
    pub async fn finalize(
        &self,
        authority: &Authority,
        provisioner: &str,
        req: &Request<'_>,
        id: &str,
    ) -> Result<Reply> {
        #[derive(Deserialize)]
        struct Finalize {
            csr: String,
        }
        acme_provisioner(authority, provisioner)?;
        let auth = self.authenticate(authority, req, KeyMode::Kid).await?;
        let account = auth.account()?.clone();
        let (mut order, version) = self.owned_order(&account, id).await?;
        let (status, _) = self.effective_order(&order, now(authority)).await?;
        if status != OrderStatus::Ready {
            return Err(Error::problem(
                ProblemType::OrderNotReady,
                format!("order {id} is {status}, not ready"),
            ));
        }
        let body: Finalize = payload("finalize", &auth.payload)?;
        let der = B64.decode(body.csr.trim_end_matches('=')).map_err(|e| {
            Error::problem(ProblemType::BadCsr, format!("csr is not base64url: {e}"))
        })?;
        let csr =
            Csr::from_der(&der).map_err(|e| Error::problem(ProblemType::BadCsr, e.to_string()))?;
        let sans = csr_identifiers_match(&csr, &order.identifiers)?;
        if self
            .store
            .key_blocked(&spki_sha256(csr.public_key_spki_der()))
            .await?
        {
            return Err(Error::problem(
                ProblemType::BadPublicKey,
                "the CSR's key was reported compromised and is blocked",
            ));
        }
        if account_spki_matches(&account.key, csr.public_key_spki_der()) {
            return Err(Error::problem(
                ProblemType::BadCsr,
                "the certificate key must not be the account key",
            ));
        }
        // Read before the order moves on, so that a bad stored time leaves it as it was.
        let validity = super::orders::order_validity(
            stored_time("notBefore", order.not_before.as_deref())?,
            stored_time("notAfter", order.not_after.as_deref())?,
        );
        order.status = OrderStatus::Processing;
        let text = to_json(&order)?;
        let version = match self.store.update_order(&order.id, version, &text).await {
            Ok(()) => version + 1,
            Err(AcmeStoreError::VersionMismatch { .. }) => {
                return Err(Error::problem(
                    ProblemType::OrderNotReady,
                    format!("order {id} is being finalized by another request"),
                ));
            }
            Err(e) => return Err(e.into()),
        };
        order_reached(OrderStatus::Processing);
        let issued = match authority
            .sign_acme(provisioner, &csr, sans, validity, &account.id)
            .await
        {
            Ok(issued) => issued,
            Err(e) => {
                order_reached(OrderStatus::Invalid);
                order.status = OrderStatus::Invalid;
                // A name the policy refuses (reloaded since the order was made) is the
                // client's to see; anything else stays inside.
                order.error = Some(if e.refused_by_name_policy() {
                    Problem::new(ProblemType::RejectedIdentifier, e.to_string())
                } else {
                    Problem::new(ProblemType::ServerInternal, "issuance failed")
                });
                if let Ok(text) = to_json(&order) {
                    let _ = self.store.update_order(&order.id, version, &text).await;
                }
                return Err(Error::Authority(e));
            }
        };
        // The authority hands serials over in their decimal form.
        let serial = SerialNumber::from_decimal(&issued.serial)
            .map_err(|e| Error::Internal(format!("issued serial {:?}: {e}", issued.serial)))?;
        self.store
            .record_certificate(&serial, &account.id, &order.id)
            .await?;
        order.status = OrderStatus::Valid;
        order.certificate = Some(serial);
        let text = to_json(&order)?;
        self.store.update_order(&order.id, version, &text).await?;
        order_reached(OrderStatus::Valid);
        let location = format!("{}/order/{id}", req.base_url);
        Ok(
            Reply::json(order_json(&order, OrderStatus::Valid, req.base_url))
                .with_location(location),
        )
    }
}

/// The CSR must name exactly the order's identifiers (as SANs; a CN must be one of them).
fn csr_identifiers_match(csr: &Csr, identifiers: &[Identifier]) -> Result<Vec<San>> {
    let mut requested = BTreeSet::new();
    for san in csr.sans() {
        let identifier = Identifier::from_san(san).ok_or_else(|| {
            Error::problem(
                ProblemType::BadCsr,
                format!("the CSR names {san}, which is not a DNS name or IP address"),
            )
        })?;
        requested.insert(identifier);
    }
    if let Some(cn) = csr.common_name().filter(|cn| !cn.is_empty()) {
        let identifier = San::parse(cn)
            .ok()
            .as_ref()
            .and_then(Identifier::from_san)
            .ok_or_else(|| {
                Error::problem(
                    ProblemType::BadCsr,
                    format!("the CSR's common name {cn:?} is not a DNS name or IP address"),
                )
            })?;
        requested.insert(identifier);
    }
    let ordered: BTreeSet<Identifier> = identifiers.iter().cloned().collect();
    if requested != ordered {
        let names = |set: &BTreeSet<Identifier>| {
            set.iter()
                .map(|i| i.value.clone())
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Err(Error::problem(
            ProblemType::BadCsr,
            format!(
                "the CSR names [{}] but the order is for [{}]: they must be the same",
                names(&requested),
                names(&ordered)
            ),
        ));
    }
    identifiers.iter().map(Identifier::to_san).collect()
}

/// Whether the CSR's key is the account key (compared by RFC 7638 thumbprint).
fn account_spki_matches(account_key: &Jwk, spki_der: &[u8]) -> bool {
    let Ok(account) = account_key.thumbprint() else {
        return false;
    };
    crate::eab::jwk_from_spki(spki_der)
        .and_then(|jwk| jwk.thumbprint().ok())
        .is_some_and(|t| t == account)
}

/// An order's stored `notBefore`/`notAfter` (RFC 3339, written by the order's creation).
fn stored_time(field: &str, text: Option<&str>) -> Result<Option<time::OffsetDateTime>> {
    text.map(|text| {
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
            .map_err(|e| Error::Internal(format!("stored {field} {text:?}: {e}")))
    })
    .transpose()
}
