//! Orders (RFC 8555 7.4): creation with its authorizations, the per-hour limits, `replaces`
//! (RFC 9773 5), and reading an order with its status as of now.

use std::collections::BTreeSet;

use mayfly_authority::Authority;
use mayfly_authority::policy::{TimeSpec, ValidityRequest};
use mayfly_authority::provisioner::AcmeSettings;
use mayfly_pki::cert::CertificateInfo;
use serde::Deserialize;
use serde_json::{Value, json};

use super::authenticate::KeyMode;
use super::authorizations::offered_challenges;
use super::{Acme, Reply, Request, acme_provisioner, from_json, now, random_id, to_json};
use crate::error::{Error, ProblemType, Result};
use crate::jws::payload;
use crate::model::{
    Account, Authorization, AuthorizationStatus, Challenge, ChallengeStatus, Identifier, Order,
    OrderStatus, RequestedIdentifier, rfc3339,
};
use crate::renewal;
use crate::store::{AuthorizationRow, OrderRow};

/// How long an order (and its pending authorizations) may take to complete.
pub(super) const ORDER_LIFETIME: i64 = 24 * 3600;
/// Identifiers per order.
const MAX_IDENTIFIERS: usize = 100;
/// The window of the per-hour order limits.
const RATE_WINDOW: i64 = 3600;

/// The first second of the rate-limit window ending at `now`: orders created at or after it
/// count.
fn rate_window_start(now: i64) -> i64 {
    now - RATE_WINDOW
}

/// A limit of `limit` orders per window is reached once `count` orders are in the window.
fn limit_reached(count: u64, limit: u32) -> bool {
    count >= u64::from(limit)
}

/// Counts an order entering `state`, for `/metrics`.
pub(super) fn order_reached(state: OrderStatus) {
    metrics::counter!("mayfly_acme_orders_total", "state" => state.as_str()).increment(1);
}

/// The order object (RFC 8555 7.1.3), with the status as of now.
pub(super) fn order_json(order: &Order, status: OrderStatus, base: &str) -> Value {
    let mut out = json!({
        "status": status,
        "expires": rfc3339(order.expires),
        "identifiers": order.identifiers,
        "authorizations": order
            .authorizations
            .iter()
            .map(|id| format!("{base}/authz/{id}"))
            .collect::<Vec<_>>(),
        "finalize": format!("{base}/order/{}/finalize", order.id),
    });
    if let Some(serial) = &order.certificate {
        out["certificate"] = json!(format!("{base}/certificate/{}", serial.to_decimal()));
    }
    if let Some(error) = &order.error {
        out["error"] = json!(error);
    }
    if let Some(replaces) = &order.replaces {
        out["replaces"] = json!(replaces);
    }
    if let Some(not_before) = &order.not_before {
        out["notBefore"] = json!(not_before);
    }
    if let Some(not_after) = &order.not_after {
        out["notAfter"] = json!(not_after);
    }
    out
}

/// An order's `notBefore`/`notAfter` (RFC 3339), `None` when absent or Go's zero time
/// (`0001-01-01T00:00:00Z`): every released step CLI sends the zero time for fields it leaves
/// unset, and means nothing by it.
fn requested_time(field: &str, value: Option<&str>) -> Result<Option<time::OffsetDateTime>> {
    let Some(text) = value else {
        return Ok(None);
    };
    let at = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|e| Error::malformed(format!("{field} {text:?} is not an RFC 3339 time: {e}")))?;
    let go_zero = time::macros::datetime!(0001-01-01 0:00 UTC);
    Ok((at != go_zero).then_some(at))
}

/// What an order's times ask of its certificate's validity.
pub(super) fn order_validity(
    not_before: Option<time::OffsetDateTime>,
    not_after: Option<time::OffsetDateTime>,
) -> ValidityRequest {
    ValidityRequest {
        not_before: not_before.map(TimeSpec::At),
        not_after: not_after.map(TimeSpec::At),
    }
}

impl Acme {
    /// `POST new-order` (RFC 8555 7.4, `replaces` from RFC 9773 5).
    pub async fn new_order(
        &self,
        authority: &Authority,
        provisioner: &str,
        req: &Request<'_>,
    ) -> Result<Reply> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct NewOrder {
            identifiers: Vec<RequestedIdentifier>,
            #[serde(default)]
            not_before: Option<String>,
            #[serde(default)]
            not_after: Option<String>,
            #[serde(default)]
            replaces: Option<String>,
        }
        let acme = acme_provisioner(authority, provisioner)?;
        let auth = self.authenticate(authority, req, KeyMode::Kid).await?;
        let account = auth.account()?;
        let body: NewOrder = payload("newOrder", &auth.payload)?;
        // The validity asked for, as step-ca takes it: within the provisioner's claims, checked
        // now, and the certificate gets exactly it when the order is finalized.
        let not_before = requested_time("notBefore", body.not_before.as_deref())?;
        let not_after = requested_time("notAfter", body.not_after.as_deref())?;
        authority
            .check_acme_validity(provisioner, &order_validity(not_before, not_after))
            .map_err(|e| Error::malformed(e.to_string()))?;
        if body.identifiers.is_empty() || body.identifiers.len() > MAX_IDENTIFIERS {
            return Err(Error::malformed(format!(
                "an order needs 1 to {MAX_IDENTIFIERS} identifiers, not {}",
                body.identifiers.len()
            )));
        }
        let identifiers: BTreeSet<Identifier> = body
            .identifiers
            .into_iter()
            .map(RequestedIdentifier::validate)
            .collect::<Result<_>>()?;
        let identifiers: Vec<Identifier> = identifiers.into_iter().collect();
        // The name policy of the authority and of this provisioner, before anything is made
        // or counted: an order for a refused name is never created.
        let sans = identifiers
            .iter()
            .map(Identifier::to_san)
            .collect::<Result<Vec<_>>>()?;
        authority
            .check_acme_identifiers(provisioner, &sans)
            .map_err(|e| Error::problem(ProblemType::RejectedIdentifier, e.to_string()))?;
        let now = now(authority);
        self.check_rate_limits(&acme.settings, &account.id, &identifiers, now)
            .await?;
        if let Some(replaces) = &body.replaces {
            self.check_replaces(authority, account, &identifiers, replaces)
                .await?;
        }

        let mut authorization_ids = Vec::with_capacity(identifiers.len());
        let mut new_authorizations: Vec<(Authorization, String)> = Vec::new();
        for identifier in &identifiers {
            let reusable = self
                .store
                .valid_authorizations(&account.id, &identifier.key(), now)
                .await?;
            if let Some(existing) = reusable.first() {
                authorization_ids.push(existing.id.clone());
                continue;
            }
            let challenges = offered_challenges(identifier, &acme.settings)
                .into_iter()
                .map(|kind| {
                    Ok(Challenge {
                        kind,
                        token: random_id()?,
                        status: ChallengeStatus::Pending,
                        validated: None,
                        error: None,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            if challenges.is_empty() {
                return Err(Error::problem(
                    ProblemType::RejectedIdentifier,
                    format!(
                        "no challenge type this provisioner offers can validate {}",
                        identifier.value
                    ),
                ));
            }
            let authorization = Authorization {
                id: random_id()?,
                account: account.id.clone(),
                identifier: identifier.authorization_identifier(),
                status: AuthorizationStatus::Pending,
                expires: now + ORDER_LIFETIME,
                wildcard: identifier.is_wildcard(),
                challenges,
            };
            authorization_ids.push(authorization.id.clone());
            let text = to_json(&authorization)?;
            new_authorizations.push((authorization, text));
        }
        let order = Order {
            id: random_id()?,
            account: account.id.clone(),
            status: OrderStatus::Pending,
            expires: now + ORDER_LIFETIME,
            identifiers: identifiers.clone(),
            authorizations: authorization_ids,
            not_before: not_before.map(|t| rfc3339(t.unix_timestamp())),
            not_after: not_after.map(|t| rfc3339(t.unix_timestamp())),
            certificate: None,
            error: None,
            replaces: body.replaces,
            created_at: now,
        };
        let order_text = to_json(&order)?;
        let keys: Vec<String> = identifiers.iter().map(Identifier::key).collect();
        let index_keys: Vec<String> = new_authorizations
            .iter()
            .map(|(a, _)| a.index_key())
            .collect();
        let rows: Vec<AuthorizationRow> = new_authorizations
            .iter()
            .zip(&index_keys)
            .map(|((a, text), key)| AuthorizationRow {
                id: &a.id,
                account: &a.account,
                identifier: key,
                status: a.status,
                expires_at: a.expires,
                body: text,
            })
            .collect();
        self.store
            .insert_order(
                &OrderRow {
                    id: &order.id,
                    account: &order.account,
                    identifiers: &keys,
                    body: &order_text,
                    created_at: now,
                },
                &rows,
            )
            .await?;
        order_reached(OrderStatus::Pending);
        let (status, _) = self.effective_order(&order, now).await?;
        let location = format!("{}/order/{}", req.base_url, order.id);
        Ok(Reply::json(order_json(&order, status, req.base_url))
            .with_location(location)
            .created())
    }

    async fn check_rate_limits(
        &self,
        settings: &AcmeSettings,
        account: &str,
        identifiers: &[Identifier],
        now: i64,
    ) -> Result<()> {
        let since = rate_window_start(now);
        if let Some(limit) = settings.orders_per_account_per_hour {
            let count = self.store.count_orders_by_account(account, since).await?;
            if limit_reached(count, limit) {
                return Err(Error::RateLimited {
                    detail: format!(
                        "this account created {count} orders in the last hour; the limit is {limit}"
                    ),
                    retry_after_seconds: RATE_WINDOW as u64,
                });
            }
        }
        if let Some(limit) = settings.orders_per_identifier_per_hour {
            for identifier in identifiers {
                let count = self
                    .store
                    .count_orders_by_identifier(&identifier.key(), since)
                    .await?;
                if limit_reached(count, limit) {
                    return Err(Error::RateLimited {
                        detail: format!(
                            "{} was ordered {count} times in the last hour; the limit is {limit}",
                            identifier.value
                        ),
                        retry_after_seconds: RATE_WINDOW as u64,
                    });
                }
            }
        }
        Ok(())
    }

    /// RFC 9773 5: `replaces` must name a certificate of this account that shares an
    /// identifier with the new order.
    async fn check_replaces(
        &self,
        authority: &Authority,
        account: &Account,
        identifiers: &[Identifier],
        cert_id: &str,
    ) -> Result<()> {
        let serial = renewal::serial_of_cert_id(cert_id)?;
        let issued_to = self.store.certificate_account(&serial).await?;
        if issued_to.as_deref() != Some(account.id.as_str()) {
            return Err(Error::malformed(format!(
                "replaces {cert_id:?} is not a certificate issued to this account"
            )));
        }
        let stored = authority
            .store()
            .certificate(&serial.to_decimal())
            .await
            .map_err(|e| Error::Internal(e.to_string()))?
            .ok_or_else(|| {
                Error::malformed(format!("replaces {cert_id:?}: no such certificate"))
            })?;
        let info = CertificateInfo::from_der(&stored.certificate.der)
            .map_err(|e| Error::Internal(e.to_string()))?;
        let shares = info
            .sans
            .iter()
            .filter_map(Identifier::from_san)
            .any(|id| identifiers.contains(&id));
        if !shares {
            return Err(Error::malformed(format!(
                "replaces {cert_id:?}: the certificate shares no identifier with this order"
            )));
        }
        Ok(())
    }

    /// The order's status as clients see it ([`OrderStatus::as_of`]) and its authorizations.
    pub(super) async fn effective_order(
        &self,
        order: &Order,
        now: i64,
    ) -> Result<(OrderStatus, Vec<Authorization>)> {
        let mut authorizations = Vec::with_capacity(order.authorizations.len());
        for id in &order.authorizations {
            let stored = self
                .store
                .authorization(id)
                .await?
                .ok_or_else(|| Error::Internal(format!("authorization {id} missing")))?;
            authorizations.push(from_json::<Authorization>("authorization", &stored)?);
        }
        let statuses: Vec<AuthorizationStatus> =
            authorizations.iter().map(|a| a.status_as_of(now)).collect();
        let status = order.status.as_of(order.expires, &statuses, now);
        Ok((status, authorizations))
    }

    /// The order `id` if `account` owns it; another account's order does not exist for it.
    pub(super) async fn owned_order(&self, account: &Account, id: &str) -> Result<(Order, i64)> {
        let stored = self
            .store
            .order(id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("order {id}")))?;
        let order: Order = from_json("order", &stored)?;
        if order.account != account.id {
            return Err(Error::NotFound(format!("order {id}")));
        }
        Ok((order, stored.version))
    }

    /// `POST order/{id}` as GET.
    pub async fn order(&self, authority: &Authority, req: &Request<'_>, id: &str) -> Result<Reply> {
        let auth = self.authenticate(authority, req, KeyMode::Kid).await?;
        let (order, _) = self.owned_order(auth.account()?, id).await?;
        let (status, _) = self.effective_order(&order, now(authority)).await?;
        let mut reply = Reply::json(order_json(&order, status, req.base_url))
            .with_location(format!("{}/order/{id}", req.base_url));
        if status == OrderStatus::Processing {
            reply.retry_after = Some(1);
        }
        Ok(reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_zero_times_in_an_order_mean_unset() {
        assert_eq!(requested_time("notBefore", None).unwrap(), None);
        // What every released step CLI sends for an order without validity bounds.
        assert_eq!(
            requested_time("notBefore", Some("0001-01-01T00:00:00Z")).unwrap(),
            None
        );
        assert_eq!(
            requested_time("notAfter", Some("0001-01-01T00:00:00+00:00")).unwrap(),
            None
        );
        assert!(
            requested_time("notAfter", Some("2030-01-01T00:00:00Z"))
                .unwrap()
                .is_some()
        );
        let error = requested_time("notAfter", Some("tomorrow")).unwrap_err();
        assert!(
            error.to_string().contains("notAfter \"tomorrow\""),
            "{error}"
        );
    }

    /// The per-hour limits count the orders of the last 3600 seconds, the window's first
    /// second included, and refuse the order that would exceed the limit.
    #[test]
    fn the_order_limits_count_the_last_hour_and_refuse_at_the_limit() {
        let now = 1_800_000_000;
        assert_eq!(rate_window_start(now), now - 3600);
        assert!(!limit_reached(0, 1));
        assert!(!limit_reached(2, 3));
        assert!(limit_reached(3, 3));
        assert!(limit_reached(4, 3));
        assert!(limit_reached(0, 0), "a limit of zero refuses every order");
    }
}
