//! Certificates (RFC 8555 7.4.2) and their revocation (7.6), by Let's Encrypt's rules: by
//! the issuing account, by an account holding valid authorizations for every identifier of
//! the certificate, or by the certificate's key.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use mayfly_authority::Authority;
use mayfly_authority::revocation::ReasonCode;
use mayfly_authority::store::CertificateStatus;
use mayfly_pki::San;
use mayfly_pki::cert::{CertificateInfo, certificate_pem};
use serde::Deserialize;

use super::authenticate::KeyMode;
use super::{Acme, Reply, ReplyBody, Request, acme_provisioner, now, spki_sha256};
use crate::error::{Error, ProblemType, Result};
use crate::jws::payload;
use crate::model::{Account, Identifier, serial_in_url};

/// RFC 5280 reason codes that matter to the rules here.
const KEY_COMPROMISE: u8 = 1;
const CESSATION_OF_OPERATION: u8 = 5;

impl Acme {
    /// `POST certificate/{serial}`: the PEM chain, leaf first, for the account it was issued to.
    pub async fn certificate(
        &self,
        authority: &Authority,
        req: &Request<'_>,
        serial: &str,
    ) -> Result<Reply> {
        let auth = self.authenticate(authority, req, KeyMode::Kid).await?;
        let account = auth.account()?;
        let not_found = || Error::NotFound(format!("certificate {serial}"));
        let serial_number = serial_in_url(serial).ok_or_else(not_found)?;
        if self
            .store
            .certificate_account(&serial_number)
            .await?
            .as_deref()
            != Some(account.id.as_str())
        {
            return Err(not_found());
        }
        let stored = authority
            .store()
            .certificate(serial)
            .await
            .map_err(|e| Error::Internal(e.to_string()))?
            .ok_or_else(not_found)?;
        let chain = format!(
            "{}{}",
            certificate_pem(&stored.certificate.der),
            certificate_pem(authority.intermediate_der())
        );
        Ok(Reply::with_body(ReplyBody::PemChain(chain)))
    }

    /// `POST revoke-cert` (RFC 8555 7.6).
    pub async fn revoke(
        &self,
        authority: &Authority,
        provisioner: &str,
        req: &Request<'_>,
    ) -> Result<Reply> {
        #[derive(Deserialize)]
        struct Revoke {
            certificate: String,
            #[serde(default)]
            reason: Option<i64>,
        }
        let acme = acme_provisioner(authority, provisioner)?;
        let auth = self.authenticate(authority, req, KeyMode::Either).await?;
        let body: Revoke = payload("revokeCert", &auth.payload)?;
        let der = B64
            .decode(body.certificate.trim_end_matches('='))
            .map_err(|e| Error::malformed(format!("certificate is not base64url: {e}")))?;
        let info = CertificateInfo::from_der(&der)
            .map_err(|e| Error::malformed(format!("certificate: {e}")))?;
        let serial = info.serial.to_decimal();
        let stored = authority
            .store()
            .certificate(&serial)
            .await
            .map_err(|e| Error::Internal(e.to_string()))?
            .filter(|s| s.certificate.der == der)
            .ok_or_else(|| Error::NotFound(format!("certificate {serial} issued by this CA")))?;
        let code = body.reason.unwrap_or(0);
        let allowed = acme.settings.allowed_revocation_reasons();
        let reason = ReasonCode::from_code(code)
            .and_then(ReasonCode::revocable)
            .ok()
            .filter(|r| allowed.contains(&r.code()))
            .ok_or_else(|| {
                Error::problem(
                    ProblemType::BadRevocationReason,
                    format!("reason code {code} is not accepted: expected one of {allowed:?}"),
                )
            })?;
        if stored.status == CertificateStatus::Revoked {
            return Err(Error::problem(
                ProblemType::AlreadyRevoked,
                format!("certificate {serial} is already revoked"),
            ));
        }
        let (revoked_by, reason) = match &auth.account {
            None => {
                // Signed with the `jwk` it carries; that key must be the certificate's.
                auth.request.verify_with_spki(&info.spki_der).map_err(|_| {
                    Error::unauthorized("the request is not signed by the certificate's key")
                })?;
                ("acme:certificate-key".to_string(), reason)
            }
            Some((account, _)) => {
                let issued_to = self.store.certificate_account(&info.serial).await?;
                if issued_to.as_deref() == Some(account.id.as_str()) {
                    (format!("acme:account:{}", account.id), reason)
                } else {
                    self.check_control(account, &info.sans, authority).await?;
                    // Another authorized account revokes as cessationOfOperation unless it
                    // reports the key compromised.
                    let reason = if reason.code() == KEY_COMPROMISE {
                        reason
                    } else {
                        ReasonCode::from_code(i64::from(CESSATION_OF_OPERATION))
                            .map_err(Error::Authority)?
                    };
                    (format!("acme:authorized-account:{}", account.id), reason)
                }
            }
        };
        authority
            .record_revocation(&serial, reason, "", &revoked_by, None)
            .await
            .map_err(|e| match e {
                mayfly_authority::Error::AlreadyRevoked { serial } => Error::problem(
                    ProblemType::AlreadyRevoked,
                    format!("certificate {serial} is already revoked"),
                ),
                other => Error::Authority(other),
            })?;
        if reason.code() == KEY_COMPROMISE {
            self.store
                .block_key(&spki_sha256(&info.spki_der), now(authority))
                .await?;
        }
        Ok(Reply::with_body(ReplyBody::Empty))
    }

    /// Whether `account` holds a valid authorization for every identifier in `sans`.
    async fn check_control(
        &self,
        account: &Account,
        sans: &[San],
        authority: &Authority,
    ) -> Result<()> {
        let now = now(authority);
        for san in sans {
            let identifier = Identifier::from_san(san).ok_or_else(|| {
                Error::unauthorized(format!("{san} is not an identifier ACME can authorize"))
            })?;
            let found = self
                .store
                .valid_authorizations(&account.id, &identifier.key(), now)
                .await?;
            if found.is_empty() {
                return Err(Error::unauthorized(format!(
                    "this account neither ordered the certificate nor holds a valid authorization for {}",
                    identifier.value
                )));
            }
        }
        Ok(())
    }
}
