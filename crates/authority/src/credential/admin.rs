//! The admin API's credentials: a token of a provisioner marked `"admin": true`, or a client
//! certificate issued through one.

use mayfly_pki::cert::CertificateInfo;

use super::{Authorization, Endpoint, Presented};
use crate::authority::Authority;
use crate::error::{Error, Result};
use crate::provisioner::Provisioner;
use crate::store::CertificateStatus;

impl Authority {
    /// Checks the credentials of an admin API request into an [`Authorization`] of an admin
    /// provisioner (its `credential` names who it is, for the audit log).
    ///
    /// A token must be signed by a provisioner marked admin, for the audience `…/1.0/admin`;
    /// it is not burnt (the API only reads, and one listing takes several pages), so it is
    /// accepted until it expires. A client certificate must have been issued here through an
    /// admin provisioner, and be neither revoked nor expired.
    pub async fn authorize_admin(&self, credentials: Presented<'_>) -> Result<Authorization> {
        let now = self.clock().now();
        let authorization = match credentials {
            Presented::Token(ott) => {
                let authorization = self
                    .verify_token(ott, Endpoint::Admin, now)
                    .await
                    .inspect_err(crate::telemetry::token_rejected)?;
                if !authorization.provisioner.admin {
                    return Err(Error::NotAdmin(format!(
                        "provisioner {:?}",
                        authorization.provisioner.name
                    )));
                }
                authorization
            }
            Presented::Certificate(leaf_der) => {
                let presented = CertificateInfo::from_der(leaf_der)?;
                let serial = presented.serial.to_decimal();
                let refused = || Error::NotAdmin(format!("client certificate {serial}"));
                let stored = self
                    .stored_as_presented(leaf_der, &serial)
                    .await?
                    .ok_or_else(refused)?;
                // Only JWK provisioners can be marked admin.
                let admin = self.provisioners().iter().find_map(|p| match p {
                    Provisioner::Jwk(jwk)
                        if jwk.admin && jwk.name == stored.certificate.provisioner =>
                    {
                        Some(super::jwk::vouched(jwk))
                    }
                    _ => None,
                });
                let Some(provisioner) = admin else {
                    return Err(refused());
                };
                if stored.status == CertificateStatus::Revoked || now > stored.certificate.not_after
                {
                    return Err(refused());
                }
                // The admin API reads: the certificate grants no names.
                Authorization::of_presented_certificate(provisioner, &presented.common_name)
            }
        };
        tracing::info!(
            target: "mayfly::audit",
            by = %authorization.credential,
            "admin API request"
        );
        Ok(authorization)
    }
}
