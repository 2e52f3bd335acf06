//! The SSH certificate authority: a user CA key and a host CA key, and the decisions of
//! `/ssh/sign`, `/ssh/renew`, `/ssh/rekey`, `/ssh/revoke`, the KRL and the host list.
//!
//! Sign is authorised by a provisioner token carrying `step.ssh` claims. Renew and rekey are
//! authorised by an SSH-POP token: a JWS signed with the key of the certificate it carries in
//! its `sshpop` header, so only the holder of a host's current key can extend its certificate.

pub mod claims;
pub mod render;
pub mod store;

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use mayfly_pki::Signer;
use mayfly_pki::jose::jws::Jws;
use mayfly_pki::ssh::{CertType, SshCertificate, SshPublicKey};
use time::OffsetDateTime;

use crate::audit::{AuditAction, AuditContext};
use crate::authority::Authority;
use crate::credential::sshpop::SshRenewal;
use crate::credential::{Endpoint, Grant};
use crate::error::{Error, Result};
use crate::policy::ssh::{self as policy, SshSignOptions};
use crate::revocation::RevokeRequest;
use crate::store::{Revocation, StoreError, UsedToken};
use crate::telemetry::{Attempt, Operation};
use claims::SshClaims;
use store::{IssuedSshCertificate, SshStore};

/// The SSH CA keys with the store their certificates are recorded in.
pub struct SshCa {
    user_key: Arc<dyn Signer>,
    host_key: Arc<dyn Signer>,
    user_public: SshPublicKey,
    host_public: SshPublicKey,
    /// SSH claims by provisioner name.
    claims: HashMap<String, SshClaims>,
    store: Arc<dyn SshStore>,
}

impl std::fmt::Debug for SshCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshCa")
            .field("user", &self.user_public.fingerprint())
            .field("host", &self.host_public.fingerprint())
            .finish_non_exhaustive()
    }
}

/// The SSH CA keys as loaded from ca.json's `ssh` block.
pub struct SshKeys {
    pub user_key: Arc<dyn Signer>,
    pub host_key: Arc<dyn Signer>,
    /// SSH claims by provisioner name.
    pub claims: HashMap<String, SshClaims>,
}

impl SshCa {
    pub fn new(keys: SshKeys, store: Arc<dyn SshStore>) -> Result<Self> {
        let user_public = SshPublicKey::from_signer(keys.user_key.as_ref())
            .map_err(|e| Error::Config(format!("ssh.userKey: {e}")))?;
        let host_public = SshPublicKey::from_signer(keys.host_key.as_ref())
            .map_err(|e| Error::Config(format!("ssh.hostKey: {e}")))?;
        Ok(Self {
            user_key: keys.user_key,
            host_key: keys.host_key,
            user_public,
            host_public,
            claims: keys.claims,
            store,
        })
    }

    pub fn user_public_key(&self) -> &SshPublicKey {
        &self.user_public
    }

    pub fn host_public_key(&self) -> &SshPublicKey {
        &self.host_public
    }

    pub fn store(&self) -> &Arc<dyn SshStore> {
        &self.store
    }

    fn key_for(&self, cert_type: CertType) -> &dyn Signer {
        match cert_type {
            CertType::User => self.user_key.as_ref(),
            CertType::Host => self.host_key.as_ref(),
        }
    }

    pub(crate) fn public_key_of(&self, cert_type: CertType) -> &SshPublicKey {
        match cert_type {
            CertType::User => &self.user_public,
            CertType::Host => &self.host_public,
        }
    }
}

/// An SSH certificate as `/ssh/sign` returns it.
#[derive(Debug, Clone)]
pub struct SshIssued {
    pub certificate: SshCertificate,
}

impl Authority {
    /// The SSH CA, or why there is none.
    pub fn ssh(&self) -> Result<&SshCa> {
        self.ssh_ca().ok_or(Error::SshNotEnabled)
    }

    /// Signs an SSH certificate for `/ssh/sign`.
    pub async fn ssh_sign(
        &self,
        public_key_b64: &str,
        ott: &str,
        options: &SshSignOptions,
    ) -> Result<SshIssued> {
        let mut attempt = Attempt::new(Operation::SshSign);
        let outcome = self
            .ssh_sign_with_token(public_key_b64, ott, options, &mut attempt)
            .await;
        attempt.finish(&outcome);
        outcome
    }

    async fn ssh_sign_with_token(
        &self,
        public_key_b64: &str,
        ott: &str,
        options: &SshSignOptions,
        attempt: &mut Attempt,
    ) -> Result<SshIssued> {
        let ssh = self.ssh()?;
        let now = self.clock().now();
        let authorization = self.verify_token(ott, Endpoint::SshSign, now).await?;
        let provisioner = authorization.provisioner.name.clone();
        attempt.provisioner(&provisioner);
        let claims = ssh
            .claims
            .get(&provisioner)
            .copied()
            .filter(|c| c.enabled)
            .ok_or_else(|| Error::SshDisabledForProvisioner(provisioner.clone()))?;
        let (token_claims, options) = match (&authorization.ssh, &authorization.grant) {
            // Fixed names fix the SSH certificate too (an OIDC user's principals and key id,
            // from their e-mail address): the request chooses only the validity, and a type
            // other than the claims' is refused.
            (Some(token_claims), Grant::Fixed(_)) => (
                token_claims.clone(),
                SshSignOptions {
                    key_id: None,
                    principals: Vec::new(),
                    ..options.clone()
                },
            ),
            (Some(token_claims), _) => (token_claims.clone(), options.clone()),
            // A credential that grants the request's names grants its SSH options too.
            (None, Grant::Requested) => (policy::requested_claims(options)?, options.clone()),
            (None, _) => return Err(Error::SshTokenWithoutClaims),
        };
        let public_key = decode_public_key(public_key_b64)?;
        let template = policy::ssh_template(
            &token_claims,
            &authorization.subject,
            &options,
            policy::SshBounds {
                claims: &claims,
                within: authorization.within.as_ref(),
                names: self.name_policies().for_provisioner(&provisioner),
            },
            self.backdate(),
            now,
        )?;
        let audit = AuditContext::of_request(
            AuditAction::SshIssued,
            now,
            authorization.credential.clone(),
            format!(
                "{} certificate, {}",
                template.certificate().cert_type.as_str(),
                authorization.detail
            ),
        );
        let issued = self
            .ssh_sign_and_record(
                ssh,
                &template,
                &public_key,
                &provisioner,
                authorization.burn.as_ref(),
                &audit,
            )
            .await?;
        tracing::info!(
            target: "mayfly::audit",
            serial = template.certificate().serial,
            cert_type = template.certificate().cert_type.as_str(),
            key_id = %template.certificate().key_id,
            principals = ?template.certificate().principals,
            %provisioner,
            "SSH certificate issued"
        );
        Ok(issued)
    }

    /// Renews a host certificate for its holder (SSH-POP token): same type, key id,
    /// principals, options and lifetime, from now, with a new serial.
    pub async fn ssh_renew(&self, ott: &str) -> Result<SshIssued> {
        let mut attempt = Attempt::new(Operation::SshRenew);
        let outcome = async {
            let ssh = self.ssh()?;
            let renewal = self
                .sshpop_for_renewal(ssh, ott, Endpoint::SshRenew)
                .await?;
            attempt.provisioner(&renewal.provisioner);
            let public_key = renewal.pop.certificate.public_key.clone();
            self.ssh_reissue(ssh, &renewal, &public_key, AuditAction::SshRenewed)
                .await
        }
        .await;
        attempt.finish(&outcome);
        outcome
    }

    /// Like [`Authority::ssh_renew`] but for a new key, which the request supplies.
    pub async fn ssh_rekey(&self, ott: &str, public_key_b64: &str) -> Result<SshIssued> {
        let mut attempt = Attempt::new(Operation::SshRekey);
        let outcome = async {
            let public_key = decode_public_key(public_key_b64)?;
            let ssh = self.ssh()?;
            let renewal = self
                .sshpop_for_renewal(ssh, ott, Endpoint::SshRekey)
                .await?;
            attempt.provisioner(&renewal.provisioner);
            self.ssh_reissue(ssh, &renewal, &public_key, AuditAction::SshRekeyed)
                .await
        }
        .await;
        attempt.finish(&outcome);
        outcome
    }

    async fn ssh_reissue(
        &self,
        ssh: &SshCa,
        renewal: &SshRenewal,
        public_key: &SshPublicKey,
        action: AuditAction,
    ) -> Result<SshIssued> {
        let now = self.clock().now();
        let (authorization, provisioner) = (&renewal.pop.authorization, &renewal.provisioner);
        let old = &renewal.pop.certificate.template;
        let template = policy::renewal_template(
            old,
            self.backdate(),
            now,
            self.name_policies().for_provisioner(provisioner),
        )?;
        let audit = AuditContext::of_request(
            action,
            now,
            authorization.credential.clone(),
            authorization.detail.clone(),
        );
        let issued = self
            .ssh_sign_and_record(
                ssh,
                &template,
                public_key,
                provisioner,
                authorization.burn.as_ref(),
                &audit,
            )
            .await?;
        tracing::info!(
            target: "mayfly::audit",
            serial = template.certificate().serial,
            old = old.serial,
            "SSH certificate {}",
            action.as_str()
        );
        Ok(issued)
    }

    /// Revokes an SSH certificate, authorised by a provisioner token whose `sub` is the serial
    /// (audience `/ssh/revoke`) or by an SSH-POP token of that very certificate.
    pub async fn ssh_revoke(&self, request: &RevokeRequest, ott: &str) -> Result<()> {
        let mut attempt = Attempt::new(Operation::SshRevoke);
        let outcome = self.ssh_revoke_authorized(request, ott, &mut attempt).await;
        attempt.finish(&outcome);
        outcome
    }

    async fn ssh_revoke_authorized(
        &self,
        request: &RevokeRequest,
        ott: &str,
        attempt: &mut Attempt,
    ) -> Result<()> {
        let ssh = self.ssh()?;
        let serial: u64 = request
            .serial
            .trim()
            .parse()
            .map_err(|_| Error::SerialMalformed(request.serial.clone()))?;
        let now = self.clock().now();
        let sshpop = Jws::parse(ott)
            .ok()
            .is_some_and(|j| j.header_json().get("sshpop").is_some());
        let (revoked_by, used) = if sshpop {
            let pop = self.verify_sshpop(ssh, ott, Endpoint::SshRevoke)?;
            if pop.certificate.template.serial != serial {
                return Err(Error::RevokeSerialMismatch {
                    authorized: format!(
                        "only the certificate presented ({})",
                        pop.certificate.template.serial
                    ),
                    requested: serial.to_string(),
                });
            }
            let burn = pop.authorization.burn.ok_or_else(|| {
                Error::TokenMalformed("an SSH-POP token must be single use".into())
            })?;
            (pop.authorization.credential, burn)
        } else {
            let authorization = self.verify_token(ott, Endpoint::SshRevoke, now).await?;
            attempt.provisioner(&authorization.provisioner.name);
            if authorization.subject != serial.to_string() {
                return Err(Error::RevokeSerialMismatch {
                    authorized: format!("certificate {:?}", authorization.subject),
                    requested: serial.to_string(),
                });
            }
            let burn = authorization.burn.ok_or_else(|| {
                Error::TokenMalformed("a revocation token must be single use".into())
            })?;
            (authorization.credential, burn)
        };
        let revocation = Revocation {
            serial: serial.to_string(),
            reason_code: request.reason_code.code(),
            reason: request.reason.clone(),
            revoked_at: now,
            revoked_by: crate::revocation::revoked_by_column(&revoked_by),
        };
        let audit = AuditContext::of_request(
            AuditAction::SshRevoked,
            now,
            revoked_by.clone(),
            crate::audit::revocation_detail(request.reason_code, &request.reason),
        );
        ssh.store
            .revoke_ssh(&revocation, Some(&used), &audit)
            .await
            .map_err(crate::revocation::refused)?;
        tracing::info!(
            target: "mayfly::audit",
            serial,
            reason = request.reason_code.name(),
            by = %revoked_by,
            "SSH certificate revoked"
        );
        Ok(())
    }

    /// The OpenSSH KRL of every revoked, unexpired SSH certificate.
    pub async fn ssh_krl(&self) -> Result<Vec<u8>> {
        let ssh = self.ssh()?;
        let now = self.clock().now();
        let revoked = ssh.store.revoked_ssh(now).await.map_err(Error::Store)?;
        let of = |kind: CertType| -> Vec<u64> {
            revoked
                .iter()
                .filter(|r| r.cert_type == kind)
                .map(|r| r.serial)
                .collect()
        };
        let seconds = policy::unix(now);
        Ok(mayfly_pki::ssh::build_krl(
            seconds,
            seconds,
            "mayfly",
            &[
                (&ssh.user_public, of(CertType::User)),
                (&ssh.host_public, of(CertType::Host)),
            ],
        ))
    }

    /// Host names with a valid, unrevoked host certificate.
    pub async fn ssh_hosts(&self) -> Result<Vec<String>> {
        let ssh = self.ssh()?;
        let hosts = ssh
            .store
            .ssh_hosts(self.clock().now())
            .await
            .map_err(Error::Store)?;
        let mut names: Vec<String> = hosts.into_iter().flat_map(|h| h.principals).collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    async fn ssh_sign_and_record(
        &self,
        ssh: &SshCa,
        template: &policy::SshTemplate,
        public_key: &SshPublicKey,
        provisioner: &str,
        token: Option<&UsedToken>,
        audit: &AuditContext,
    ) -> Result<SshIssued> {
        let template = template.certificate();
        let certificate = mayfly_pki::ssh::sign_certificate(
            template,
            public_key,
            ssh.key_for(template.cert_type),
        )?;
        // Times beyond year 9999 (OpenSSH's "forever") are kept as the latest time there is.
        let at = |seconds: u64| {
            i64::try_from(seconds)
                .ok()
                .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
                .unwrap_or(time::PrimitiveDateTime::MAX.assume_utc())
        };
        let record = IssuedSshCertificate {
            serial: template.serial,
            cert_type: template.cert_type,
            key_id: template.key_id.clone(),
            principals: template.principals.clone(),
            valid_after: at(template.valid_after),
            valid_before: at(template.valid_before),
            blob: certificate.blob().to_vec(),
            provisioner: provisioner.to_string(),
        };
        ssh.store
            .record_ssh_issuance(&record, token, audit)
            .await
            .map_err(|e| match e {
                StoreError::TokenAlreadyUsed { .. } => Error::TokenAlreadyUsed,
                other => Error::Store(other),
            })?;
        Ok(SshIssued { certificate })
    }
}

/// The `step.ssh` claims of a token whose signature was verified; a token without them was
/// made for X.509 and authorises no SSH certificate.
/// A public key as step-ca's JSON carries it: standard base64 of the wire blob. A
/// `type base64` line is accepted too.
fn decode_public_key(text: &str) -> Result<SshPublicKey> {
    let text = text.trim();
    if text.contains(' ') {
        return SshPublicKey::parse_line(text).map_err(Error::SshPublicKey);
    }
    let blob = base64::engine::general_purpose::STANDARD
        .decode(text.as_bytes())
        .map_err(|e| {
            Error::SshPublicKey(mayfly_pki::Error::SshMalformed(format!(
                "publicKey is not base64: {e}"
            )))
        })?;
    SshPublicKey::from_blob(&blob).map_err(Error::SshPublicKey)
}

#[cfg(test)]
mod tests {
    use mayfly_config::config::CaConfig;

    /// step's own ca.json with SSH: the `ssh` block and `enableSSHCA` are understood.
    #[test]
    fn a_step_ssh_configuration_is_read() {
        let Some(vectors) = mayfly_testkit::interop_vectors("a_step_ssh_configuration_is_read")
        else {
            return;
        };
        let text = std::fs::read_to_string(
            vectors.join("certificates/pki/testdata/helm/with-ssh-and-acme.ca.json"),
        )
        .unwrap();
        let (config, unknown) = CaConfig::parse(&text).unwrap();
        let ssh = config.ssh.expect("the ssh block");
        assert_eq!(ssh.host_key, "/home/step/secrets/ssh_host_ca_key");
        assert_eq!(ssh.user_key, "/home/step/secrets/ssh_user_ca_key");
        assert!(
            !unknown.iter().any(|k| k.contains("enableSSHCA")),
            "{unknown:?}"
        );
        let claims = config.authority.provisioners[0].claims.as_ref().unwrap();
        assert_eq!(claims.enable_ssh_ca, Some(true));
    }
}
