//! The X.509 operations, each the pipeline's three stages in a row: the credential is verified
//! into an authorization ([`crate::credential`]), the policy makes the template
//! ([`crate::policy`]), the issuer signs and records it ([`crate::issue`]).

use mayfly_pki::{Csr, PrivateKey, San};

use crate::audit::{AuditAction, AuditContext};
use crate::authority::Authority;
use crate::credential::presented::Presentation;
use crate::credential::{self, Authorization, Endpoint};
use crate::error::{Error, Result};
use crate::issue::{Issued, Record};
use crate::policy::{self, ValidityRequest};
use crate::telemetry::{Attempt, Operation};

impl Authority {
    /// Signs a certificate for `/sign`: a token of any provisioner kind, a CSR, optional
    /// validity bounds.
    pub async fn sign(
        &self,
        csr_pem: &str,
        ott: &str,
        validity: ValidityRequest,
    ) -> Result<Issued> {
        let mut attempt = Attempt::new(Operation::Sign);
        let outcome = async {
            let now = self.clock().now();
            let authorization = self.verify_token(ott, Endpoint::Sign, now).await?;
            attempt.provisioner(&authorization.provisioner.name);
            let csr = Csr::from_pem(csr_pem).map_err(Error::Csr)?;
            let template = policy::for_request(
                &authorization,
                &csr,
                validity,
                self.backdate(),
                now,
                self.name_policies(),
            )?;
            self.issue_for_csr(&authorization, &template, &csr, now)
                .await
        }
        .await;
        attempt.finish(&outcome);
        outcome
    }

    /// Renews a certificate this CA issued, for its holder: same subject, SANs, key and
    /// lifetime, a new serial. `leaf_der` comes from a TLS chain verified against our roots.
    pub async fn renew(&self, leaf_der: &[u8]) -> Result<Issued> {
        self.reissue(leaf_der, None, Presentation::MutualTls).await
    }

    /// Renews the certificate carried in a renewal token (step's `x5cInsecure` header), the
    /// token being signed with that certificate's key (`Authorization: Bearer`, for clients
    /// behind TLS-terminating proxies). The token is burnt in the renewal's transaction, so it
    /// buys one certificate.
    pub async fn renew_with_token(&self, token: &str) -> Result<Issued> {
        let audiences = self.audiences_for(Endpoint::Renew);
        let renewal =
            match credential::renewal::verify_renewal_token(token, audiences, self.clock().now()) {
                Ok(renewal) => renewal,
                Err(e) => {
                    let refused = Err(e);
                    Attempt::new(Operation::Renew).finish(&refused);
                    return refused;
                }
            };
        self.reissue(&renewal.leaf, None, Presentation::Token(&renewal))
            .await
    }

    /// Like [`Authority::renew`], but for a new key: the CSR (checked, including its signature)
    /// supplies only the public key; subject, SANs and lifetime come from the old certificate.
    pub async fn rekey(&self, leaf_der: &[u8], csr_pem: &str) -> Result<Issued> {
        match Csr::from_pem(csr_pem) {
            Ok(csr) => {
                self.reissue(leaf_der, Some(&csr), Presentation::MutualTls)
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
    /// (rekey).
    async fn reissue(
        &self,
        leaf_der: &[u8],
        new_key: Option<&Csr>,
        presentation: Presentation<'_>,
    ) -> Result<Issued> {
        let (operation, action) = match new_key {
            None => (Operation::Renew, AuditAction::Renewed),
            Some(_) => (Operation::Rekey, AuditAction::Rekeyed),
        };
        let mut attempt = Attempt::new(operation);
        let outcome = async {
            let renewal = self.presented_for_renewal(leaf_der, presentation).await?;
            let authorization = &renewal.authorization;
            attempt.provisioner(&authorization.provisioner.name);
            let now = self.clock().now();
            let (rsa_key, spki_der) = match new_key {
                Some(csr) => (csr.is_rsa(), csr.public_key_spki_der()),
                None => (renewal.old.is_rsa, renewal.old.spki_der.as_slice()),
            };
            let template = policy::for_renewal(
                authorization,
                &renewal.old,
                rsa_key,
                self.backdate(),
                now,
                self.name_policies(),
            )?;
            let record = Record::of(authorization, action, now, None);
            self.issue(&template, spki_der, record).await
        }
        .await;
        attempt.finish(&outcome);
        outcome
    }

    /// Signs a certificate for an ACME order. `identifiers` are the order's, which the account
    /// proved control of; the caller has checked that the CSR names exactly these. The CSR
    /// supplies the key (its signature was checked when it was parsed). `account` is who
    /// ordered it, for the audit log.
    pub async fn sign_acme(
        &self,
        provisioner: &str,
        csr: &Csr,
        identifiers: Vec<San>,
        validity: ValidityRequest,
        account: &str,
    ) -> Result<Issued> {
        let mut attempt = Attempt::new(Operation::Acme);
        attempt.provisioner(provisioner);
        let outcome = async {
            let authorization = credential::acme::verify_order(
                self.provisioners(),
                provisioner,
                identifiers,
                account,
            )?;
            let now = self.clock().now();
            let template = policy::for_acme_order(
                &authorization,
                csr,
                validity,
                self.backdate(),
                now,
                self.name_policies(),
            )?;
            self.issue_for_csr(&authorization, &template, csr, now)
                .await
        }
        .await;
        attempt.finish(&outcome);
        outcome
    }

    /// Issues what a request's authorization and CSR made into `template`, for the CSR's key.
    async fn issue_for_csr(
        &self,
        authorization: &Authorization,
        template: &policy::Template,
        csr: &Csr,
        now: time::OffsetDateTime,
    ) -> Result<Issued> {
        let record = Record::of(authorization, AuditAction::Issued, now, None);
        self.issue(template, csr.public_key_spki_der(), record)
            .await
    }

    /// Checks the `notBefore`/`notAfter` an ACME order asks for against the ACME provisioner
    /// `provisioner`'s claims, when the order is made (its certificate will have exactly these).
    pub fn check_acme_validity(&self, provisioner: &str, validity: &ValidityRequest) -> Result<()> {
        let authorization =
            credential::acme::verify_order(self.provisioners(), provisioner, Vec::new(), "")?;
        policy::check_order_validity(
            &authorization,
            validity,
            self.backdate(),
            self.clock().now(),
        )
    }

    /// Checks an ACME order's identifiers against the name policy of the authority and of the
    /// ACME provisioner `provisioner`, when the order is made (the certificate meets it again
    /// when the order is finalized).
    pub fn check_acme_identifiers(&self, provisioner: &str, identifiers: &[San]) -> Result<()> {
        self.name_policies()
            .for_provisioner(provisioner)
            .check_x509("", identifiers)
    }

    /// Signs a TLS certificate for the server itself, outside any provisioner: the server is the
    /// CA, so no token is involved. It is recorded like any other certificate.
    pub async fn sign_server_certificate(
        &self,
        key: &PrivateKey,
        dns_names: &[String],
        lifetime: time::Duration,
    ) -> Result<Issued> {
        let now = self.clock().now();
        let template = policy::for_server(dns_names, lifetime, self.backdate(), now)?;
        let record = Record {
            provisioner: "",
            burn: None,
            audit: AuditContext::without_client(
                AuditAction::Issued,
                now,
                "server",
                "the CA's own TLS certificate",
            ),
        };
        self.issue(&template, &key.public_key_spki_der()?, record)
            .await
    }
}
