//! A certificate presented by its holder, as the credential of its own renewal, rekey or
//! revocation: over mutual TLS (the TLS layer verified the chain and the key), or in step's
//! renewal token signed by its key ([`super::renewal`]). It counts only as a certificate this CA
//! stored, byte for byte.

use mayfly_pki::cert::CertificateInfo;

use super::renewal::{RENEWAL_TOKEN_ISSUER, RenewalToken};
use super::{Authorization, Grant, Vouched};
use crate::authority::Authority;
use crate::error::{Error, Result};
use crate::provisioner::Provisioner;
use crate::store::{CertificateStatus, StoredCertificate, UsedToken};

/// How the holder presented its certificate.
#[derive(Debug, Clone, Copy)]
pub enum Presentation<'a> {
    /// As the client certificate of the TLS connection.
    MutualTls,
    /// In a renewal token signed by its key.
    Token(&'a RenewalToken),
}

impl Presentation<'_> {
    /// How the audit log names the credential.
    fn label(&self) -> &'static str {
        match self {
            Presentation::MutualTls => "mtls",
            Presentation::Token(_) => "x5c",
        }
    }
}

/// A renewal's authorization and the certificate it replaces.
pub struct Renewal {
    pub authorization: Authorization,
    pub old: CertificateInfo,
}

impl Authority {
    /// A presented certificate's record, when this CA stored exactly these bytes: a
    /// certificate counts as a credential only as issued here, whatever its chain says.
    pub(crate) async fn stored_as_presented(
        &self,
        leaf_der: &[u8],
        serial: &str,
    ) -> Result<Option<StoredCertificate>> {
        Ok(self
            .store()
            .certificate(serial)
            .await
            .map_err(Error::Store)?
            .filter(|stored| stored.certificate.der == leaf_der))
    }

    /// The checks every renewal and rekey passes: issued here (stored byte for byte), not
    /// revoked, renewal allowed by its provisioner, not expired unless the provisioner allows
    /// renewal after expiry; a renewal token must also be for this certificate's provisioner.
    pub(crate) async fn presented_for_renewal(
        &self,
        leaf_der: &[u8],
        presentation: Presentation<'_>,
    ) -> Result<Renewal> {
        let now = self.clock().now();
        let old = CertificateInfo::from_der(leaf_der)?;
        let serial = old.serial.to_decimal();
        let stored = self
            .stored_as_presented(leaf_der, &serial)
            .await?
            .ok_or_else(|| Error::RenewNotIssuedHere {
                serial: serial.clone(),
            })?;
        if stored.status == CertificateStatus::Revoked {
            return Err(Error::RenewRevoked { serial });
        }
        let provisioner = self
            .configured_vouching(&stored.certificate.provisioner)
            // ACME clients renew by ordering again.
            .filter(|vouched| vouched.type_code != mayfly_pki::cert::STEP_PROVISIONER_TYPE_ACME)
            // The CA's own TLS certificates, and those of removed provisioners, are not renewed.
            .ok_or_else(|| Error::RenewNotIssuedHere {
                serial: serial.clone(),
            })?;
        if provisioner.claims.disable_renewal {
            return Err(Error::RenewalDisabled {
                provisioner: provisioner.name.clone(),
            });
        }
        if now > old.not_after && !provisioner.claims.allow_renewal_after_expiry {
            return Err(Error::RenewExpired {
                serial,
                not_after: old.not_after.to_string(),
            });
        }
        let burn = match presentation {
            Presentation::MutualTls => None,
            Presentation::Token(token) => {
                if token.issuer != RENEWAL_TOKEN_ISSUER && token.issuer != provisioner.name {
                    return Err(Error::TokenIssuerMismatch {
                        iss: token.issuer.clone(),
                        provisioner: format!("{RENEWAL_TOKEN_ISSUER} or {}", provisioner.name),
                    });
                }
                // Namespaced by the certificate: a token can only ever renew the certificate
                // whose key signed it.
                Some(UsedToken {
                    jti: token.reuse_key.clone(),
                    provisioner: format!("renew:{serial}"),
                    expires_at: token.expires_at,
                })
            }
        };
        let authorization = Authorization {
            provisioner,
            subject: old.common_name.clone(),
            grant: Grant::Fixed(old.sans.clone()),
            ssh: None,
            burn,
            credential: format!("{}:{}", presentation.label(), old.common_name),
            detail: format!("replaces {serial}"),
            within: None,
            confirms: None,
        };
        Ok(Renewal { authorization, old })
    }
}

impl Authority {
    /// A certificate presented over mutual TLS as the credential of its own revocation: it may
    /// revoke itself and nothing else, and counts only as a certificate this CA stored. Not
    /// single use: a certificate revokes itself once, the store refuses the second time.
    pub(crate) async fn presented_for_revocation(
        &self,
        leaf_der: &[u8],
        serial: &str,
    ) -> Result<Authorization> {
        let presented = CertificateInfo::from_der(leaf_der)?;
        let own = presented.serial.to_decimal();
        if own != serial {
            return Err(Error::RevokeSerialMismatch {
                authorized: format!("only the certificate presented ({own})"),
                requested: serial.to_string(),
            });
        }
        let stored = self
            .stored_as_presented(leaf_der, serial)
            .await?
            .ok_or_else(|| Error::CertificateNotFound {
                serial: serial.to_string(),
            })?;
        Ok(Authorization::of_presented_certificate(
            self.vouched_by_name(&stored.certificate.provisioner),
            &presented.common_name,
        ))
    }

    /// Who vouched for a stored certificate: its provisioner as ca.json configures it now, or
    /// only its name when it is gone from ca.json (its certificates can still be revoked).
    fn vouched_by_name(&self, name: &str) -> Vouched {
        self.configured_vouching(name).unwrap_or_else(|| Vouched {
            name: name.to_string(),
            type_code: 0,
            credential_id: String::new(),
            claims: mayfly_config::claims::Claims::DEFAULT,
            admin: false,
        })
    }

    /// The vouching of the provisioner ca.json configures under `name`, for the kinds whose
    /// certificates are stored under a provisioner (not SSHPOP, which issues no X.509).
    fn configured_vouching(&self, name: &str) -> Option<Vouched> {
        match self.provisioners().iter().find(|p| p.name() == name)? {
            Provisioner::Jwk(jwk) => Some(super::jwk::vouched(jwk)),
            Provisioner::X5c(x5c) => Some(super::x5c::vouched(x5c)),
            Provisioner::K8sSa(k8s) => Some(super::k8ssa::vouched(k8s)),
            Provisioner::Oidc(oidc) => Some(super::oidc::vouched(oidc)),
            Provisioner::Acme(acme) => Some(super::acme::vouched(acme)),
            _ => None,
        }
    }
}
