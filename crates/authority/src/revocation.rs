//! Revocation requests: RFC 5280 reason codes and who may revoke what.

use crate::audit::{AuditAction, AuditContext, revocation_detail};
use crate::authority::Authority;
use crate::credential::{Endpoint, Presented};
use crate::error::{Error, Result};
use crate::store::{Revocation, UsedToken};
use crate::telemetry::{Attempt, Operation};

/// RFC 5280 5.3.1 CRLReason names by code; 7 is unused in the RFC.
const REASONS: &[(u8, &str)] = &[
    (0, "unspecified"),
    (1, "keyCompromise"),
    (2, "cACompromise"),
    (3, "affiliationChanged"),
    (4, "superseded"),
    (5, "cessationOfOperation"),
    (6, "certificateHold"),
    (8, "removeFromCRL"),
    (9, "privilegeWithdrawn"),
    (10, "aACompromise"),
];

/// The longest `revoked_by` the store keeps: the schema's `VARCHAR(255)`, which PostgreSQL and
/// MySQL count in characters.
pub const MAX_REVOKED_BY_LEN: usize = 255;

/// Who revoked a certificate, as the store's `revoked_by` column keeps it: the credential's name
/// (`token:NAME`, `oidc:NAME`, `mtls:CN`, `sshpop:SERIAL`, `acme:account:ID`), cut to the
/// column's 255 characters, the last one `…`, when longer. The prefix puts a provisioner name
/// of the longest allowed 255 characters past the column, and a certificate's common name has
/// no bound here at all: PostgreSQL and MariaDB would refuse the write, a 500 for a valid
/// revocation. Cut here, in the one place every revocation's record is made, rather than the
/// column widened by a migration on every engine: the audit entry written with it keeps the
/// whole name.
pub fn revoked_by_column(credential: &str) -> String {
    if credential.chars().count() <= MAX_REVOKED_BY_LEN {
        return credential.to_string();
    }
    let mut cut: String = credential.chars().take(MAX_REVOKED_BY_LEN - 1).collect();
    cut.push('…');
    cut
}

/// A valid CRLReason code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReasonCode(u8);

impl ReasonCode {
    /// From the number the API carries.
    pub fn from_code(code: i64) -> Result<Self> {
        REASONS
            .iter()
            .find(|(c, _)| i64::from(*c) == code)
            .map(|(c, _)| ReasonCode(*c))
            .ok_or(Error::ReasonCodeInvalid(code))
    }

    /// From a number or an RFC 5280 name, any case (`keyCompromise`, `keycompromise`, `1`).
    pub fn parse(text: &str) -> Result<Self> {
        if let Ok(code) = text.trim().parse::<i64>() {
            return Self::from_code(code);
        }
        REASONS
            .iter()
            .find(|(_, name)| name.eq_ignore_ascii_case(text.trim()))
            .map(|(c, _)| ReasonCode(*c))
            .ok_or(Error::ReasonCodeInvalid(-1))
    }

    /// This code as the reason of a leaf certificate's revocation: what RFC 5280 allows in a
    /// complete CRL about an end-entity certificate that stays revoked. `removeFromCRL` belongs
    /// to delta CRLs only (written there into a complete CRL, `openssl verify -crl_check` calls
    /// the certificate good), `certificateHold` would need unrevoking, which this CA never does,
    /// and the compromise of a CA or an attribute authority is said of their certificates.
    pub fn revocable(self) -> Result<Self> {
        let why = match self.0 {
            6 => "revocation here is final, and a hold is not (use another reason)",
            8 => "RFC 5280 allows it only in delta CRLs, to undo a hold",
            2 | 10 => {
                "it is the reason for a CA's own certificate; this CA revokes leaf certificates"
            }
            _ => return Ok(self),
        };
        Err(Error::ReasonCodeNotAllowed {
            code: self.0,
            name: self.name(),
            why,
        })
    }

    pub fn code(self) -> u8 {
        self.0
    }

    pub fn name(self) -> &'static str {
        REASONS
            .iter()
            .find(|(c, _)| *c == self.0)
            .map_or("unspecified", |(_, n)| n)
    }
}

/// Records the revocation of `serial` (decimal), its requester authorised, with its audit entry
/// in the same transaction and the token it burns: the one path every revocation takes, by
/// token, mutual TLS, ACME, or `mayfly ca revoke --offline` (which has no authority running,
/// only the store, and needs no CA key for it).
pub async fn record(
    store: &dyn crate::store::CertStore,
    revocation: crate::store::Revocation,
    used: Option<&crate::store::UsedToken>,
    audit: &crate::audit::AuditContext,
) -> Result<()> {
    store
        .revoke(&revocation, used, audit)
        .await
        .map_err(refused)?;
    tracing::info!(
        target: "mayfly::audit",
        serial = %revocation.serial,
        reason = revocation.reason_code,
        by = %revocation.revoked_by,
        "certificate revoked"
    );
    Ok(())
}

/// What a store's refusal of a revocation (X.509 or SSH) means to the requester.
pub(crate) fn refused(error: crate::store::StoreError) -> Error {
    use crate::store::StoreError;
    match error {
        StoreError::CertificateNotFound { serial } => Error::CertificateNotFound { serial },
        StoreError::AlreadyRevoked { serial } => Error::AlreadyRevoked { serial },
        StoreError::TokenAlreadyUsed { .. } => Error::TokenAlreadyUsed,
        other => Error::Store(other),
    }
}

/// A revocation as asked for, before authorisation.
#[derive(Debug, Clone)]
pub struct RevokeRequest {
    /// Decimal serial number.
    pub serial: String,
    pub reason_code: ReasonCode,
    pub reason: String,
    /// Passive: refuse renewals. Active (CRL/OCSP) comes with a later release.
    pub passive: bool,
}

impl Authority {
    /// Revokes a certificate (passively: renewals are refused from now on; and in the CRL and
    /// OCSP answers where those are on).
    pub async fn revoke(&self, request: &RevokeRequest, credential: Presented<'_>) -> Result<()> {
        let mut attempt = Attempt::new(Operation::Revoke);
        let outcome = async {
            if !request.passive && self.crl_publisher().is_none() && self.ocsp_responder().is_none()
            {
                return Err(Error::ActiveRevocationUnavailable);
            }
            let serial = mayfly_pki::SerialNumber::from_decimal(&request.serial)
                .map_err(|_| Error::SerialMalformed(request.serial.clone()))?
                .to_decimal();
            let now = self.clock().now();
            let authorization = match credential {
                Presented::Token(ott) => {
                    let authorization = self.verify_token(ott, Endpoint::Revoke, now).await?;
                    attempt.provisioner(&authorization.provisioner.name);
                    if authorization.subject != serial {
                        return Err(Error::RevokeSerialMismatch {
                            authorized: format!("certificate {:?}", authorization.subject),
                            requested: serial,
                        });
                    }
                    authorization
                }
                Presented::Certificate(leaf_der) => {
                    self.presented_for_revocation(leaf_der, &serial).await?
                }
            };
            self.record_revocation(
                &serial,
                request.reason_code,
                &request.reason,
                &authorization.credential,
                authorization.burn.as_ref(),
            )
            .await
        }
        .await;
        attempt.finish(&outcome);
        outcome
    }

    /// Records the revocation of `serial` (decimal) once its requester is authorised, and acts
    /// on it (OCSP answers dropped, CRLs remade): the one path every kind of revocation (token,
    /// mutual TLS, ACME) takes, so each reaches the same record.
    pub async fn record_revocation(
        &self,
        serial: &str,
        reason_code: ReasonCode,
        reason: &str,
        revoked_by: &str,
        used: Option<&UsedToken>,
    ) -> Result<()> {
        let now = self.clock().now();
        let revocation = Revocation {
            serial: serial.to_string(),
            reason_code: reason_code.code(),
            reason: reason.to_string(),
            revoked_at: now,
            revoked_by: revoked_by_column(revoked_by),
        };
        let audit = AuditContext::of_request(
            AuditAction::Revoked,
            now,
            revoked_by,
            revocation_detail(reason_code, reason),
        );
        record(self.store().as_ref(), revocation, used, &audit).await?;
        // The shard is on the certificate's record; a failed lookup only delays the shard's
        // remake to the next poll, which finds the revocation with its shard.
        let shard = match self.store().certificate(serial).await {
            Ok(found) => found.and_then(|stored| stored.certificate.crl_shard),
            Err(_) => None,
        };
        self.revocation_seen(serial, shard, now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_names_follow_rfc_5280() {
        assert_eq!(ReasonCode::parse("keyCompromise").unwrap().code(), 1);
        assert_eq!(ReasonCode::parse("KEYCOMPROMISE").unwrap().code(), 1);
        assert_eq!(ReasonCode::parse("10").unwrap().name(), "aACompromise");
        for bad in ["7", "11", "-1", "stolen", ""] {
            assert!(ReasonCode::parse(bad).is_err(), "{bad}");
        }
        assert!(ReasonCode::from_code(7).is_err());
    }

    #[test]
    fn who_revoked_fits_its_column_in_characters() {
        let name = "é".repeat(crate::provisioner::MAX_NAME_LEN);
        for credential in ["token:admin".to_string(), "m".repeat(MAX_REVOKED_BY_LEN)] {
            assert_eq!(revoked_by_column(&credential), credential);
        }
        for credential in [
            format!("token:{name}"),
            format!("oidc:{name}"),
            format!("mtls:{}", "c".repeat(4096)),
        ] {
            let recorded = revoked_by_column(&credential);
            assert_eq!(recorded.chars().count(), MAX_REVOKED_BY_LEN, "{recorded}");
            let kept = recorded.trim_end_matches('…');
            assert!(credential.starts_with(kept), "{recorded}");
            assert!(recorded.ends_with('…'), "{recorded}");
        }
    }

    #[test]
    fn leaves_are_revoked_only_for_reasons_a_complete_crl_can_carry() {
        for code in [0, 1, 3, 4, 5, 9] {
            assert!(
                ReasonCode::from_code(code).unwrap().revocable().is_ok(),
                "{code}"
            );
        }
        for (code, says) in [
            (2, "CA's own"),
            (6, "final"),
            (8, "delta CRLs"),
            (10, "CA's own"),
        ] {
            let error = ReasonCode::from_code(code)
                .unwrap()
                .revocable()
                .unwrap_err()
                .to_string();
            assert!(
                error.contains(&format!("reason code {code} (")) && error.contains(says),
                "{error}"
            );
        }
    }
}
