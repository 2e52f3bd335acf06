//! Stage three of the pipeline: a [`Template`] is signed and recorded, with the token its
//! authorization burns and its audit entry, in one store transaction. A certificate is never
//! returned unless it is stored; a replayed token costs one signature that is thrown away.

use mayfly_pki::cert::certificate_pem;

use crate::audit::{AuditAction, AuditContext};
use crate::authority::Authority;
use crate::credential::Authorization;
use crate::error::{Error, Result};
use crate::policy::Template;
use crate::store::{IssuedCertificate, StoreError, UsedToken};

/// A signed certificate with its chain, as `/sign` returns it.
#[derive(Debug, Clone)]
pub struct Issued {
    pub certificate_der: Vec<u8>,
    pub serial: String,
    /// The intermediate, DER.
    pub issuer_der: Vec<u8>,
}

impl Issued {
    pub fn certificate_pem(&self) -> String {
        certificate_pem(&self.certificate_der)
    }
}

/// Who a certificate is recorded for, and what pays for it.
pub(crate) struct Record<'a> {
    /// The provisioner's name, as the store keeps it; empty for the CA's own certificates.
    pub provisioner: &'a str,
    pub burn: Option<&'a UsedToken>,
    pub audit: AuditContext,
}

impl<'a> Record<'a> {
    /// What `authorization` buys, audited as `action` with `detail` (the authorization's own
    /// detail when `None`).
    pub(crate) fn of(
        authorization: &'a Authorization,
        action: AuditAction,
        at: time::OffsetDateTime,
        detail: Option<String>,
    ) -> Self {
        Record {
            provisioner: &authorization.provisioner.name,
            burn: authorization.burn.as_ref(),
            audit: AuditContext::of_request(
                action,
                at,
                authorization.credential.clone(),
                detail.unwrap_or_else(|| authorization.detail.clone()),
            ),
        }
    }
}

impl Authority {
    /// Signs `template` for the key `spki_der` and records it before returning it; the audit
    /// log line of every X.509 issuance, renewal and rekey is written here, once recorded.
    pub(crate) async fn issue(
        &self,
        template: &Template,
        spki_der: &[u8],
        record: Record<'_>,
    ) -> Result<Issued> {
        // A shard is chosen once, here, and the certificate carries its URL for life; the
        // store keeps the choice so the shard's CRL lists it if it is revoked.
        let shard = self
            .crl_publisher()
            .and_then(|crl| Some((crl, crl.settings().shard_for(template.serial())?)));
        let der = match shard {
            Some((crl, shard)) => self.leaf_signer().sign_in_shard(
                template.leaf(),
                spki_der,
                &crl.settings().shard_url(shard),
            )?,
            None => self.leaf_signer().sign(template.leaf(), spki_der)?,
        };
        let serial = template.serial().to_decimal();
        let stored = IssuedCertificate {
            serial: serial.clone(),
            der: der.clone(),
            subject: template.common_name().to_owned(),
            sans: template.sans().iter().map(ToString::to_string).collect(),
            not_before: template.not_before(),
            not_after: template.not_after(),
            provisioner: record.provisioner.to_owned(),
            crl_shard: shard.map(|(_, shard)| shard),
        };
        self.store()
            .record_issuance(&stored, record.burn, &record.audit)
            .await
            .map_err(|e| match e {
                StoreError::TokenAlreadyUsed { .. } => Error::TokenAlreadyUsed,
                other => Error::Store(other),
            })?;
        tracing::info!(
            target: "mayfly::audit",
            serial = %serial,
            provisioner = %record.provisioner,
            credential = %record.audit.credential,
            detail = %record.audit.detail,
            subject = %template.common_name(),
            "certificate {}",
            record.audit.action.as_str()
        );
        Ok(Issued {
            certificate_der: der,
            serial,
            issuer_der: self.intermediate_der().to_vec(),
        })
    }
}
