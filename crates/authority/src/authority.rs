//! The [`Authority`]: the CA's keys, provisioners and store, and the one place where a request
//! becomes a certificate.
//!
//! Order of an issuance: verify the token, parse and check the CSR, apply policy, sign, record
//! the certificate and burn the token in one store call, and only then return the certificate.
//! A replayed token costs one signature that is thrown away; it never yields a certificate.

use std::path::Path;
use std::sync::Arc;

use mayfly_pki::cert::{
    CertificateInfo, certificate_pem, certificates_from_pem, fingerprint_sha256,
};
use mayfly_pki::issuer::IssuerIdentity;
use mayfly_pki::{Csr, LeafSigner, PrivateKey};

use crate::audit::{AuditAction, AuditContext, revocation_detail};
use crate::claims::Claims;
use crate::clock::Clock;
use crate::config::CaConfig;
use crate::crl::CrlPublisher;
use crate::error::{Error, Result};
use crate::ocsp::{OcspParts, OcspResponder};
use crate::policy::{self, ValidityRequest};
use crate::provisioner::Provisioner;
use crate::publication::Publication;
use crate::revocation::{RevokeAuthorization, RevokeRequest};
use crate::store::{
    CertStore, CertificateStatus, IssuedCertificate, Revocation, RevokedQuery, StoreError,
    UsedToken,
};
use crate::telemetry::{Attempt, Operation};
use crate::token::{self, TokenExpectations};

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

/// How the holder of a certificate presented it for renewal or rekey.
#[derive(Debug, Clone, Copy)]
enum Presented<'a> {
    /// As the client certificate of the TLS connection.
    MutualTls,
    /// In a renewal token signed by its key.
    Token(&'a token::RenewalToken),
}

impl Presented<'_> {
    /// How the audit log names the credential.
    fn label(&self) -> &'static str {
        match self {
            Presented::MutualTls => "mtls",
            Presented::Token(_) => "x5c",
        }
    }
}

/// The intermediate CA's certificate and key, as loaded for signing.
pub struct IntermediateCa {
    pub certificate_der: Vec<u8>,
    pub key: Arc<dyn mayfly_pki::Signer>,
}

/// How long a revocation seen by the poll is remembered, so that it is acted on once.
const REVOCATION_MEMORY: time::Duration = time::Duration::minutes(2);
/// How far back each poll looks: covers clock skew between instances and a late poll.
const REVOCATION_LOOKBACK: time::Duration = time::Duration::seconds(30);

/// The certificate authority.
pub struct Authority {
    roots: Vec<Vec<u8>>,
    federated_roots: Vec<Vec<u8>>,
    root_fingerprints: Vec<String>,
    intermediate_der: Vec<u8>,
    signer: Arc<LeafSigner>,
    crl: Option<CrlPublisher>,
    ocsp: Option<OcspResponder>,
    /// Revocations already acted on (OCSP cache dropped, CRL remade), by serial.
    seen_revocations: std::sync::Mutex<std::collections::HashMap<String, time::OffsetDateTime>>,
    provisioners: Vec<Provisioner>,
    backdate: time::Duration,
    audiences: Vec<String>,
    revoke_audiences: Vec<String>,
    renew_audiences: Vec<String>,
    admin_audiences: Vec<String>,
    store: Arc<dyn CertStore>,
    clock: Arc<dyn Clock>,
    dns_names: Vec<String>,
    ssh: Option<crate::ssh::SshCa>,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority")
            .field("root_fingerprints", &self.root_fingerprints)
            .field("audiences", &self.audiences)
            .finish_non_exhaustive()
    }
}

/// How an admin API request proves who it is.
#[derive(Debug, Clone, Copy)]
pub enum AdminCredentials<'a> {
    /// A JWK token (`Authorization: Bearer`).
    Token(&'a str),
    /// The client certificate of the TLS connection (DER).
    Certificate(&'a [u8]),
}

/// Everything [`Authority::new`] needs, already loaded.
pub struct AuthorityParts {
    pub roots: Vec<Vec<u8>>,
    pub federated_roots: Vec<Vec<u8>>,
    pub intermediate: IntermediateCa,
    pub provisioners: Vec<Provisioner>,
    pub backdate: time::Duration,
    /// The host names (and IPs) clients use to reach this CA; token audiences name them, with
    /// any port (a load balancer's or an instance's) accepted.
    pub dns_names: Vec<String>,
    pub store: Arc<dyn CertStore>,
    pub clock: Arc<dyn Clock>,
    /// The SSH CA, when ca.json has an `ssh` block.
    pub ssh: Option<crate::ssh::SshCa>,
    /// CRL and OCSP publication (both off when not configured).
    pub publication: Publication,
}

impl Authority {
    pub fn new(parts: AuthorityParts) -> Result<Self> {
        if parts.roots.is_empty() {
            return Err(Error::Config("no root certificate configured".into()));
        }
        let signer = Arc::new(
            LeafSigner::new(
                &parts.intermediate.certificate_der,
                Arc::clone(&parts.intermediate.key),
            )?
            .with_revocation_urls(parts.publication.leaf_urls()),
        );
        let key = parts.intermediate.key;
        let crl = match parts.publication.crl {
            Some(settings) => Some(CrlPublisher::new(
                settings,
                IssuerIdentity::from_certificate(&parts.intermediate.certificate_der)?,
                Arc::clone(&key),
                Arc::clone(&parts.store),
                Arc::clone(&parts.clock),
            )),
            None => None,
        };
        let ocsp = match parts.publication.ocsp {
            Some(settings) => Some(OcspResponder::new(OcspParts {
                settings,
                intermediate_der: parts.intermediate.certificate_der.clone(),
                signer: Arc::clone(&signer),
                store: Arc::clone(&parts.store),
                clock: Arc::clone(&parts.clock),
                backdate: parts.backdate,
            })?),
            None => None,
        };
        let root_fingerprints = parts.roots.iter().map(|r| fingerprint_sha256(r)).collect();
        let audiences = endpoint_audiences(&parts.dns_names, "sign");
        let revoke_audiences = endpoint_audiences(&parts.dns_names, "revoke");
        let renew_audiences = endpoint_audiences(&parts.dns_names, "renew");
        let admin_audiences = endpoint_audiences(&parts.dns_names, "admin");
        Ok(Self {
            roots: parts.roots,
            federated_roots: parts.federated_roots,
            root_fingerprints,
            intermediate_der: parts.intermediate.certificate_der,
            signer,
            crl,
            ocsp,
            seen_revocations: std::sync::Mutex::new(std::collections::HashMap::new()),
            provisioners: parts.provisioners,
            backdate: parts.backdate,
            audiences,
            revoke_audiences,
            renew_audiences,
            admin_audiences,
            store: parts.store,
            clock: parts.clock,
            dns_names: parts.dns_names,
            ssh: parts.ssh,
        })
    }

    /// The SSH CA, if this authority has one.
    pub fn ssh_ca(&self) -> Option<&crate::ssh::SshCa> {
        self.ssh.as_ref()
    }

    /// The audiences a token for `endpoint` (`ssh/sign`, ...) must name.
    pub(crate) fn endpoint_audiences(&self, endpoint: &str) -> Vec<String> {
        endpoint_audiences(&self.dns_names, endpoint)
    }

    pub(crate) fn root_fingerprints(&self) -> &[String] {
        &self.root_fingerprints
    }

    pub(crate) fn backdate(&self) -> time::Duration {
        self.backdate
    }

    pub fn roots(&self) -> &[Vec<u8>] {
        &self.roots
    }

    /// Roots plus federated roots, for `/federation`.
    pub fn federation(&self) -> Vec<Vec<u8>> {
        self.roots
            .iter()
            .chain(self.federated_roots.iter())
            .cloned()
            .collect()
    }

    /// The root whose SHA-256 fingerprint is `fingerprint` (hex, any case).
    pub fn root_by_fingerprint(&self, fingerprint: &str) -> Option<&[u8]> {
        self.root_fingerprints
            .iter()
            .position(|fp| fp.eq_ignore_ascii_case(fingerprint))
            .and_then(|i| self.roots.get(i))
            .map(Vec::as_slice)
    }

    pub fn intermediate_der(&self) -> &[u8] {
        &self.intermediate_der
    }

    /// The names (and IP addresses) clients use to reach this CA, as ca.json lists them.
    pub fn dns_names(&self) -> &[String] {
        &self.dns_names
    }

    pub fn provisioners(&self) -> &[Provisioner] {
        &self.provisioners
    }

    /// The audiences tokens must name.
    pub fn audiences(&self) -> &[String] {
        &self.audiences
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    pub fn store(&self) -> &Arc<dyn CertStore> {
        &self.store
    }

    /// Signs a certificate for `/sign`: one-time token, CSR, optional validity bounds.
    pub async fn sign(
        &self,
        csr_pem: &str,
        ott: &str,
        validity: ValidityRequest,
    ) -> Result<Issued> {
        let mut attempt = Attempt::new(Operation::Sign);
        let outcome = self
            .sign_with_token(csr_pem, ott, validity, &mut attempt)
            .await;
        attempt.finish(&outcome);
        outcome
    }

    async fn sign_with_token(
        &self,
        csr_pem: &str,
        ott: &str,
        validity: ValidityRequest,
        attempt: &mut Attempt,
    ) -> Result<Issued> {
        let now = self.clock.now();
        let expect = TokenExpectations {
            audiences: &self.audiences,
            root_fingerprints: &self.root_fingerprints,
            now,
        };
        let verified = token::verify(ott, &self.provisioners, &expect)?;
        attempt.provisioner(&verified.provisioner.name);
        let csr = Csr::from_pem(csr_pem).map_err(Error::Csr)?;
        let claims = verified.provisioner.claims;
        let template =
            policy::leaf_template(&verified, &csr, validity, &claims, self.backdate, now)?;
        let used = UsedToken {
            jti: verified.claims.jti.clone(),
            provisioner: verified.provisioner.name.clone(),
            expires_at: verified.expires_at,
        };
        let audit = AuditContext::of_request(
            AuditAction::Issued,
            now,
            format!("token:{}", verified.provisioner.name),
            format!("jti {}", verified.claims.jti),
        );
        let issued = self
            .sign_and_record(
                &template,
                csr.public_key_spki_der(),
                &verified.provisioner.name,
                Some(&used),
                &audit,
            )
            .await?;
        let serial = &issued.serial;
        tracing::info!(
            target: "mayfly::audit",
            %serial,
            provisioner = %verified.provisioner.name,
            jti = %verified.claims.jti,
            subject = %template.common_name,
            "certificate issued"
        );
        Ok(issued)
    }

    /// Renews a certificate this CA issued, for its holder: same subject, SANs, key and
    /// lifetime, a new serial. `leaf_der` comes from a TLS chain verified against our roots.
    pub async fn renew(&self, leaf_der: &[u8]) -> Result<Issued> {
        self.reissue(leaf_der, None, Presented::MutualTls).await
    }

    /// Renews the certificate carried in a renewal token (step's `x5cInsecure` header), the
    /// token being signed with that certificate's key (`Authorization: Bearer`, for clients
    /// behind TLS-terminating proxies). The certificate must be one this CA stored, byte for
    /// byte; the token is burnt in the renewal's transaction, so it buys one certificate.
    pub async fn renew_with_token(&self, token: &str) -> Result<Issued> {
        let renewal =
            match token::verify_renewal_token(token, &self.renew_audiences, self.clock.now()) {
                Ok(renewal) => renewal,
                Err(e) => {
                    let refused = Err(e);
                    Attempt::new(Operation::Renew).finish(&refused);
                    return refused;
                }
            };
        let presented = Presented::Token(&renewal);
        self.reissue(&renewal.leaf, None, presented).await
    }

    /// Like [`Authority::renew`], but for a new key: the CSR (checked, including its signature)
    /// supplies only the public key; subject, SANs and lifetime come from the old certificate.
    pub async fn rekey(&self, leaf_der: &[u8], csr_pem: &str) -> Result<Issued> {
        match Csr::from_pem(csr_pem) {
            Ok(csr) => {
                self.reissue(leaf_der, Some(&csr), Presented::MutualTls)
                    .await
            }
            Err(e) => {
                let refused = Err(Error::Csr(e));
                Attempt::new(Operation::Rekey).finish(&refused);
                refused
            }
        }
    }

    /// A new certificate in place of `leaf_der` (renewal), for the key of `new_key` when given
    /// (rekey); `presented` is how the old certificate was presented.
    async fn reissue(
        &self,
        leaf_der: &[u8],
        new_key: Option<&Csr>,
        presented: Presented<'_>,
    ) -> Result<Issued> {
        let (operation, action, verb) = match new_key {
            None => (Operation::Renew, AuditAction::Renewed, "renewed"),
            Some(_) => (Operation::Rekey, AuditAction::Rekeyed, "rekeyed"),
        };
        let mut attempt = Attempt::new(operation);
        let outcome = async {
            let (mut template, old, provisioner) = self.renewal(leaf_der).await?;
            attempt.provisioner(&provisioner);
            let replaced = old.serial.to_decimal();
            let used = match presented {
                Presented::MutualTls => None,
                Presented::Token(renewal) => {
                    if renewal.issuer != token::RENEWAL_TOKEN_ISSUER
                        && renewal.issuer != provisioner
                    {
                        return Err(Error::TokenIssuerMismatch {
                            iss: renewal.issuer.clone(),
                            provisioner: format!(
                                "{} or {provisioner}",
                                token::RENEWAL_TOKEN_ISSUER
                            ),
                        });
                    }
                    // Namespaced by the certificate: a token can only ever renew the
                    // certificate whose key signed it.
                    Some(UsedToken {
                        jti: renewal.reuse_key.clone(),
                        provisioner: format!("renew:{replaced}"),
                        expires_at: renewal.expires_at,
                    })
                }
            };
            let spki_der = match new_key {
                Some(csr) => {
                    template.rsa_key = csr.is_rsa();
                    csr.public_key_spki_der()
                }
                None => &old.spki_der,
            };
            let audit = AuditContext::of_request(
                action,
                self.clock.now(),
                format!("{}:{}", presented.label(), old.common_name),
                format!("replaces {replaced}"),
            );
            let issued = self
                .sign_and_record(&template, spki_der, &provisioner, used.as_ref(), &audit)
                .await?;
            tracing::info!(
                target: "mayfly::audit",
                serial = %issued.serial,
                %replaced,
                %provisioner,
                "certificate {verb}"
            );
            Ok(issued)
        }
        .await;
        attempt.finish(&outcome);
        outcome
    }

    /// The checks every renewal passes (issued here, not revoked, not expired unless allowed,
    /// renewal enabled), and the template of the new certificate with the provisioner's name.
    async fn renewal(
        &self,
        leaf_der: &[u8],
    ) -> Result<(mayfly_pki::LeafTemplate, CertificateInfo, String)> {
        let now = self.clock.now();
        let old = CertificateInfo::from_der(leaf_der)?;
        let serial = old.serial.to_decimal();
        let stored = self
            .store
            .certificate(&serial)
            .await
            .map_err(Error::Store)?
            .filter(|stored| stored.certificate.der == leaf_der)
            .ok_or_else(|| Error::RenewNotIssuedHere {
                serial: serial.clone(),
            })?;
        if stored.status == CertificateStatus::Revoked {
            return Err(Error::RenewRevoked { serial });
        }
        let provisioner = self
            .provisioners
            .iter()
            .find(|p| p.name() == stored.certificate.provisioner)
            .and_then(|p| match p {
                Provisioner::Jwk(jwk) => Some(jwk),
                // ACME clients renew by ordering again.
                Provisioner::Acme(_) | Provisioner::SshPop(_) | Provisioner::Unsupported(_) => None,
            })
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
        let lifetime = old.not_after - old.not_before;
        let not_before = now - self.backdate;
        let template = mayfly_pki::LeafTemplate {
            common_name: old.common_name.clone(),
            sans: old.sans.clone(),
            not_before,
            not_after: not_before + lifetime,
            serial: mayfly_pki::SerialNumber::random()?,
            rsa_key: old.is_rsa,
            provisioner: old.provisioner.clone(),
        };
        Ok((template, old, provisioner.name.clone()))
    }

    /// Checks the credentials of an admin API request; returns who it is, for the audit log.
    ///
    /// A token must be signed by a provisioner marked admin, for the audience `…/1.0/admin`;
    /// it is not burnt (the API only reads, and one listing takes several pages), so it is
    /// accepted until it expires. A client certificate must have been issued here through an
    /// admin provisioner, and be neither revoked nor expired.
    pub async fn authorize_admin(&self, credentials: AdminCredentials<'_>) -> Result<String> {
        let now = self.clock.now();
        let who = match credentials {
            AdminCredentials::Token(ott) => {
                let expect = TokenExpectations {
                    audiences: &self.admin_audiences,
                    root_fingerprints: &self.root_fingerprints,
                    now,
                };
                let verified = token::verify(ott, &self.provisioners, &expect)
                    .inspect_err(crate::telemetry::token_rejected)?;
                if !verified.provisioner.admin {
                    return Err(Error::NotAdmin(format!(
                        "provisioner {:?}",
                        verified.provisioner.name
                    )));
                }
                format!("token:{}", verified.provisioner.name)
            }
            AdminCredentials::Certificate(leaf_der) => {
                let presented = CertificateInfo::from_der(leaf_der)?;
                let serial = presented.serial.to_decimal();
                let refused = || Error::NotAdmin(format!("client certificate {serial}"));
                let stored = self
                    .store
                    .certificate(&serial)
                    .await
                    .map_err(Error::Store)?
                    .filter(|stored| stored.certificate.der == leaf_der)
                    .ok_or_else(refused)?;
                // Only JWK provisioners can be marked admin.
                let admin = self.provisioners.iter().any(|p| match p {
                    Provisioner::Jwk(jwk) => {
                        jwk.admin && jwk.name == stored.certificate.provisioner
                    }
                    _ => false,
                });
                if !admin
                    || stored.status == CertificateStatus::Revoked
                    || now > stored.certificate.not_after
                {
                    return Err(refused());
                }
                format!("mtls:{}", presented.common_name)
            }
        };
        tracing::info!(target: "mayfly::audit", by = %who, "admin API request");
        Ok(who)
    }

    /// Revokes a certificate (passively: renewals are refused from now on).
    pub async fn revoke(
        &self,
        request: &RevokeRequest,
        authorization: RevokeAuthorization<'_>,
    ) -> Result<()> {
        let mut attempt = Attempt::new(Operation::Revoke);
        let outcome = self
            .revoke_authorized(request, authorization, &mut attempt)
            .await;
        attempt.finish(&outcome);
        outcome
    }

    async fn revoke_authorized(
        &self,
        request: &RevokeRequest,
        authorization: RevokeAuthorization<'_>,
        attempt: &mut Attempt,
    ) -> Result<()> {
        if !request.passive && self.crl.is_none() && self.ocsp.is_none() {
            return Err(Error::ActiveRevocationUnavailable);
        }
        let serial = mayfly_pki::SerialNumber::from_decimal(&request.serial)
            .map_err(|_| Error::SerialMalformed(request.serial.clone()))?
            .to_decimal();
        let now = self.clock.now();
        let (revoked_by, used) = match authorization {
            RevokeAuthorization::Token(ott) => {
                let expect = TokenExpectations {
                    audiences: &self.revoke_audiences,
                    root_fingerprints: &self.root_fingerprints,
                    now,
                };
                let verified = token::verify(ott, &self.provisioners, &expect)?;
                attempt.provisioner(&verified.provisioner.name);
                if verified.claims.sub != serial {
                    return Err(Error::RevokeSerialMismatch {
                        authorized: format!("certificate {:?}", verified.claims.sub),
                        requested: serial,
                    });
                }
                let used = UsedToken {
                    jti: verified.claims.jti.clone(),
                    provisioner: verified.provisioner.name.clone(),
                    expires_at: verified.expires_at,
                };
                (format!("token:{}", verified.provisioner.name), Some(used))
            }
            RevokeAuthorization::Certificate(leaf_der) => {
                let presented = CertificateInfo::from_der(leaf_der)?;
                if presented.serial.to_decimal() != serial {
                    return Err(Error::RevokeSerialMismatch {
                        authorized: format!(
                            "only the certificate presented ({})",
                            presented.serial.to_decimal()
                        ),
                        requested: serial,
                    });
                }
                (format!("mtls:{}", presented.common_name), None)
            }
        };
        self.record_revocation(
            &serial,
            request.reason_code,
            &request.reason,
            &revoked_by,
            used.as_ref(),
        )
        .await
    }

    /// Records the revocation of `serial` (decimal) once its requester is authorised; the one
    /// path every kind of revocation (token, mTLS, ACME) takes, so each reaches the same record.
    pub async fn record_revocation(
        &self,
        serial: &str,
        reason_code: crate::revocation::ReasonCode,
        reason: &str,
        revoked_by: &str,
        used: Option<&UsedToken>,
    ) -> Result<()> {
        let now = self.clock.now();
        let revocation = Revocation {
            serial: serial.to_string(),
            reason_code: reason_code.code(),
            reason: reason.to_string(),
            revoked_at: now,
            revoked_by: revoked_by.to_string(),
        };
        let audit = AuditContext::of_request(
            AuditAction::Revoked,
            now,
            revoked_by,
            revocation_detail(reason_code, reason),
        );
        crate::revocation::record(self.store.as_ref(), revocation, used, &audit).await?;
        self.revocation_seen(serial, now);
        Ok(())
    }

    /// Signs a certificate for an ACME order. `identifiers` are the order's, which the account
    /// proved control of; the caller has checked that the CSR names exactly these. The CSR
    /// supplies the key (its signature was checked when it was parsed).
    /// `account` is who ordered it, for the audit log.
    pub async fn sign_acme(
        &self,
        provisioner: &str,
        csr: &Csr,
        identifiers: Vec<mayfly_pki::San>,
        account: &str,
    ) -> Result<Issued> {
        let mut attempt = Attempt::new(Operation::Acme);
        attempt.provisioner(provisioner);
        let outcome = self
            .sign_acme_order(provisioner, csr, identifiers, account)
            .await;
        attempt.finish(&outcome);
        outcome
    }

    async fn sign_acme_order(
        &self,
        provisioner: &str,
        csr: &Csr,
        identifiers: Vec<mayfly_pki::San>,
        account: &str,
    ) -> Result<Issued> {
        let acme = self
            .provisioners
            .iter()
            .find_map(|p| match p {
                Provisioner::Acme(acme) if acme.name == provisioner => Some(acme),
                _ => None,
            })
            .ok_or_else(|| Error::ProvisionerNotFound(provisioner.to_string()))?;
        let now = self.clock.now();
        let common_name = csr
            .common_name()
            .filter(|cn| mayfly_pki::San::parse(cn).is_ok_and(|san| identifiers.contains(&san)))
            .map(str::to_string)
            .or_else(|| identifiers.first().map(ToString::to_string))
            .unwrap_or_default();
        let not_before = now - self.backdate;
        let template = mayfly_pki::LeafTemplate {
            common_name,
            sans: identifiers,
            not_before,
            not_after: now + acme.claims.default_tls_duration,
            serial: mayfly_pki::SerialNumber::random()?,
            rsa_key: csr.is_rsa(),
            provisioner: Some(mayfly_pki::cert::ProvisionerExtension {
                type_code: mayfly_pki::cert::STEP_PROVISIONER_TYPE_ACME,
                name: acme.name.clone(),
                credential_id: String::new(),
            }),
        };
        let audit = AuditContext::of_request(
            AuditAction::Issued,
            now,
            format!("acme:account:{account}"),
            "",
        );
        let issued = self
            .sign_and_record(
                &template,
                csr.public_key_spki_der(),
                &acme.name,
                None,
                &audit,
            )
            .await?;
        tracing::info!(
            target: "mayfly::audit",
            serial = %issued.serial,
            provisioner = %acme.name,
            subject = %template.common_name,
            "certificate issued over ACME"
        );
        Ok(issued)
    }

    /// The CRL publisher, when CRLs are enabled.
    pub fn crl_publisher(&self) -> Option<&CrlPublisher> {
        self.crl.as_ref()
    }

    /// The OCSP responder, when it is enabled.
    pub fn ocsp_responder(&self) -> Option<&OcspResponder> {
        self.ocsp.as_ref()
    }

    /// Keeps published revocation information current; the server calls it about once a
    /// second. Picks up revocations recorded by other instances sharing the store (and by
    /// `mayfly ca revoke --offline`), then remakes CRLs and rotates the OCSP responder as due.
    pub async fn refresh_publication(&self) -> Result<()> {
        if self.crl.is_none() && self.ocsp.is_none() {
            return Ok(());
        }
        let now = self.clock.now();
        let recent = self
            .store
            .revoked_certificates(RevokedQuery {
                revoked_since: Some(now - REVOCATION_LOOKBACK),
                unexpired_at: None,
            })
            .await
            .map_err(Error::Store)?;
        for entry in recent {
            self.revocation_seen(&entry.serial, now);
        }
        if let Some(ocsp) = &self.ocsp {
            ocsp.rotate_if_due().await?;
        }
        if let Some(crl) = &self.crl {
            crl.refresh().await?;
        }
        Ok(())
    }

    /// Acts once on a revocation: drops cached OCSP answers and marks the CRLs stale.
    fn revocation_seen(&self, serial: &str, now: time::OffsetDateTime) {
        let first_time = {
            let mut seen = match self.seen_revocations.lock() {
                Ok(seen) => seen,
                Err(poisoned) => poisoned.into_inner(),
            };
            seen.retain(|_, at| now - *at < REVOCATION_MEMORY);
            seen.insert(serial.to_string(), now).is_none()
        };
        if first_time {
            if let Some(ocsp) = &self.ocsp {
                ocsp.revoked(serial);
            }
            if let Some(crl) = &self.crl {
                crl.revoked();
            }
        }
    }

    /// Signs `template` for `spki_der` and records the certificate before returning it.
    async fn sign_and_record(
        &self,
        template: &mayfly_pki::LeafTemplate,
        spki_der: &[u8],
        provisioner: &str,
        token: Option<&UsedToken>,
        audit: &AuditContext,
    ) -> Result<Issued> {
        let der = self.signer.sign(template, spki_der)?;
        let serial = template.serial.to_decimal();
        let record = IssuedCertificate {
            serial: serial.clone(),
            der: der.clone(),
            subject: template.common_name.clone(),
            sans: template.sans.iter().map(ToString::to_string).collect(),
            not_before: template.not_before,
            not_after: template.not_after,
            provisioner: provisioner.to_string(),
        };
        self.store
            .record_issuance(&record, token, audit)
            .await
            .map_err(|e| match e {
                StoreError::TokenAlreadyUsed { .. } => Error::TokenAlreadyUsed,
                other => Error::Store(other),
            })?;
        Ok(Issued {
            certificate_der: der,
            serial,
            issuer_der: self.intermediate_der.clone(),
        })
    }

    /// Signs a TLS certificate for the server itself, outside any provisioner: the server is the
    /// CA, so no token is involved. It is recorded like any other certificate.
    pub async fn sign_server_certificate(
        &self,
        key: &PrivateKey,
        dns_names: &[String],
        lifetime: time::Duration,
    ) -> Result<Issued> {
        let now = self.clock.now();
        let sans = dns_names
            .iter()
            .map(|n| mayfly_pki::San::parse(n))
            .collect::<mayfly_pki::Result<Vec<_>>>()?;
        let template = mayfly_pki::LeafTemplate {
            common_name: dns_names.first().cloned().unwrap_or_default(),
            sans,
            not_before: now - self.backdate,
            not_after: now + lifetime,
            serial: mayfly_pki::SerialNumber::random()?,
            rsa_key: false,
            provisioner: None,
        };
        let audit = AuditContext::without_client(
            AuditAction::Issued,
            now,
            "server",
            "the CA's own TLS certificate",
        );
        self.sign_and_record(&template, &key.public_key_spki_der()?, "", None, &audit)
            .await
    }
}

/// `https://{name}/1.0/{endpoint}` and `https://{name}/{endpoint}` for every DNS name. A token's
/// audience matches one of them whatever port it names ([`token::same_audience`]).
fn endpoint_audiences(dns_names: &[String], endpoint: &str) -> Vec<String> {
    dns_names
        .iter()
        .flat_map(|name| {
            let host = if name.contains(':') {
                format!("[{name}]")
            } else {
                name.clone()
            };
            [
                format!("https://{host}/1.0/{endpoint}"),
                format!("https://{host}/{endpoint}"),
            ]
        })
        .collect()
}

/// Loads the key material and provisioners a [`CaConfig`] names. Relative paths resolve against
/// `base_dir` (the working directory, as step does).
pub struct LoadedMaterial {
    pub roots: Vec<Vec<u8>>,
    pub federated_roots: Vec<Vec<u8>>,
    pub intermediate: IntermediateCa,
    pub provisioners: Vec<Provisioner>,
    pub backdate: time::Duration,
    /// The SSH CA keys, when ca.json has an `ssh` block.
    pub ssh: Option<crate::ssh::SshKeys>,
}

impl LoadedMaterial {
    /// `password` decrypts the intermediate key; it falls back to the config's `password`.
    pub fn load(config: &CaConfig, base_dir: &Path, password: Option<&[u8]>) -> Result<Self> {
        let read = |field: &str, p: &str| -> Result<Vec<u8>> {
            let path = crate::config::resolve_path(base_dir, p);
            std::fs::read(&path)
                .map_err(|e| Error::Config(format!("{field}: cannot read {}: {e}", path.display())))
        };
        let certs = |field: &str, p: &str| -> Result<Vec<Vec<u8>>> {
            certificates_from_pem(&read(field, p)?)
                .map_err(|e| Error::Config(format!("{field}: {p}: {e}")))
        };
        let mut roots = Vec::new();
        for root in config.root.to_vec() {
            roots.extend(certs("root", &root)?);
        }
        let mut federated_roots = Vec::new();
        for root in &config.federated_roots {
            federated_roots.extend(certs("federatedRoots", root)?);
        }
        let intermediate_der = certs("crt", &config.crt)?
            .into_iter()
            .next()
            .ok_or_else(|| Error::Config("crt: no certificate".into()))?;
        let key_pem = read("key", &config.key)?;
        let password = password.or(config.password.as_ref().map(|p| p.expose().as_bytes()));
        let key = mayfly_pki::keyfile::decode_private_key_pem(&key_pem, password)
            .map_err(|e| Error::Config(format!("key: {}: {e}", config.key)))?;
        let intermediate_spki = mayfly_pki::cert::subject_public_key_info(&intermediate_der)
            .map_err(|e| Error::Config(format!("crt: {e}")))?;
        if intermediate_spki != key.public_key_spki_der()? {
            return Err(Error::Config(format!(
                "key: {} does not belong to the certificate in crt: {}",
                config.key, config.crt
            )));
        }
        let global = Claims::resolve(Claims::DEFAULT, config.authority.claims.as_ref())
            .map_err(|e| Error::Config(format!("authority.claims: {e}")))?;
        let provisioners = config
            .authority
            .provisioners
            .iter()
            .map(|p| Provisioner::from_config(p, global))
            .collect::<Result<Vec<_>>>()?;
        let backdate = config
            .authority
            .backdate
            .map_or(time::Duration::minutes(1), |d| d.0);
        let ssh = match &config.ssh {
            None => None,
            Some(ssh) => {
                let load_key = |field: &str, p: &str| -> Result<Arc<dyn mayfly_pki::Signer>> {
                    let pem = read(field, p)?;
                    let key = mayfly_pki::keyfile::decode_private_key_pem(&pem, password)
                        .map_err(|e| Error::Config(format!("{field}: {p}: {e}")))?;
                    Ok(Arc::new(key))
                };
                let global_ssh = crate::ssh::claims::SshClaims::resolve(
                    crate::ssh::claims::SshClaims::DEFAULT,
                    config.authority.claims.as_ref(),
                )
                .map_err(|e| Error::Config(format!("authority.claims: {e}")))?;
                let mut claims = std::collections::HashMap::new();
                for p in &config.authority.provisioners {
                    let resolved =
                        crate::ssh::claims::SshClaims::resolve(global_ssh, p.claims.as_ref())
                            .map_err(|e| Error::Config(format!("provisioner {:?}: {e}", p.name)))?;
                    claims.insert(p.name.clone(), resolved);
                }
                Some(crate::ssh::SshKeys {
                    user_key: load_key("ssh.userKey", &ssh.user_key)?,
                    host_key: load_key("ssh.hostKey", &ssh.host_key)?,
                    claims,
                })
            }
        };
        Ok(Self {
            roots,
            federated_roots,
            intermediate: IntermediateCa {
                certificate_der: intermediate_der,
                key: Arc::new(key),
            },
            provisioners,
            backdate,
            ssh,
        })
    }
}
