//! The [`Authority`]: the CA's keys, provisioners, store and clock, which every stage of the
//! pipeline reads. The stages live in their own modules: [`crate::credential`] (a credential
//! becomes an authorization), [`crate::policy`] (an authorization and a request become a
//! template), [`crate::issue`] (a template is signed and recorded); [`crate::x509`],
//! [`crate::revocation`] and [`crate::ssh`] put them in a row for each operation.

use std::sync::Arc;

use mayfly_pki::LeafSigner;
use mayfly_pki::cert::fingerprint_sha256;
use mayfly_pki::issuer::IssuerIdentity;

use crate::clock::Clock;
use crate::credential::{self, Audiences, Authorization, Endpoint, TokenContext};
use crate::crl::CrlPublisher;
use crate::error::{Error, Result};
use crate::ocsp::{OcspParts, OcspResponder};
use crate::policy::NamePolicies;
use crate::provisioner::Provisioner;
use crate::publication::Publication;
use crate::store::CrlShard;
use crate::store::{CertStore, RevocationSeq, RevokedQuery};

/// The intermediate CA's certificate and key, as loaded for signing.
pub struct IntermediateCa {
    pub certificate_der: Vec<u8>,
    pub key: Arc<dyn mayfly_pki::Signer>,
}

/// How long a revocation is remembered once acted on, so that the poll, which sees this
/// instance's own revocations too, does not act on them again.
const REVOCATION_MEMORY: time::Duration = time::Duration::minutes(2);
/// How far back the first poll looks by revocation time: revocations recorded between this
/// authority's construction (when it may already have answered OCSP) and its first poll, which
/// is where it starts following the store's numbering.
const FIRST_POLL_LOOKBACK: time::Duration = time::Duration::seconds(30);
/// How long before the root CRL expires mayfly-ca starts to warn.
const ROOT_CRL_WARNING: time::Duration = time::Duration::days(30);

/// The certificate authority.
pub struct Authority {
    roots: Vec<Vec<u8>>,
    federated_roots: Vec<Vec<u8>>,
    root_fingerprints: Vec<String>,
    intermediate_der: Vec<u8>,
    signer: Arc<LeafSigner>,
    crl: Option<CrlPublisher>,
    ocsp: Option<OcspResponder>,
    /// Revocations already acted on: when first seen, and whether their CRL shard (known only
    /// once the store is read) has been marked stale too.
    seen_revocations: std::sync::Mutex<std::collections::HashMap<String, SeenRevocation>>,
    /// The last revocation the poll read (the store numbers them in commit order, on every
    /// instance); `None` before the first poll, which starts from the store's last number.
    polled: tokio::sync::Mutex<Option<RevocationSeq>>,
    provisioners: Vec<Provisioner>,
    name_policies: NamePolicies,
    backdate: time::Duration,
    audiences: Audiences,
    store: Arc<dyn CertStore>,
    clock: Arc<dyn Clock>,
    dns_names: Vec<String>,
    ssh: Option<crate::ssh::SshCa>,
    /// How OIDC provisioners reach their providers; without it their tokens are refused.
    oidc_fetch: Option<Arc<dyn credential::oidc::keys::Fetch>>,
    /// The root's CRL, signed offline (`mayfly ca root-crl`) and served as it is.
    root_crl: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority")
            .field("root_fingerprints", &self.root_fingerprints)
            .field("dns_names", &self.dns_names)
            .finish_non_exhaustive()
    }
}

/// Everything [`Authority::new`] needs, already loaded.
pub struct AuthorityParts {
    pub roots: Vec<Vec<u8>>,
    pub federated_roots: Vec<Vec<u8>>,
    pub intermediate: IntermediateCa,
    pub provisioners: Vec<Provisioner>,
    /// The names certificates may carry: `authority.policy` and each provisioner's `policy`.
    pub name_policies: NamePolicies,
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
                parts.backdate,
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
        let audiences = Audiences::new(&parts.dns_names);
        Ok(Self {
            roots: parts.roots,
            federated_roots: parts.federated_roots,
            root_fingerprints,
            intermediate_der: parts.intermediate.certificate_der,
            signer,
            crl,
            ocsp,
            seen_revocations: std::sync::Mutex::new(std::collections::HashMap::new()),
            polled: tokio::sync::Mutex::new(None),
            provisioners: parts.provisioners,
            name_policies: parts.name_policies,
            backdate: parts.backdate,
            audiences,
            store: parts.store,
            clock: parts.clock,
            dns_names: parts.dns_names,
            ssh: parts.ssh,
            oidc_fetch: None,
            root_crl: None,
        })
    }

    /// Lets OIDC provisioners fetch their providers' discovery documents and keys through
    /// `fetch` (the server's HTTPS client: this crate makes no connections).
    pub fn with_root_crl(mut self, path: std::path::PathBuf) -> Self {
        self.root_crl = Some(path);
        self
    }

    /// The root's CRL, read from its file on each call (it is re-signed offline while the CA
    /// runs) and served only when one of the roots signed it.
    pub fn root_crl(&self) -> Result<Vec<u8>> {
        self.read_root_crl().map(|(der, _)| der)
    }

    /// The root CRL's bytes and validity, once one of the roots is found to have signed it.
    fn read_root_crl(&self) -> Result<(Vec<u8>, mayfly_pki::verify::CrlValidity)> {
        let path = self.root_crl.as_ref().ok_or(Error::RootCrlUnconfigured)?;
        let invalid = |detail: String| Error::RootCrlInvalid {
            path: path.display().to_string(),
            detail,
        };
        // DER, as relying parties fetch it (`ca init` and `mayfly ca root-crl` write DER).
        let der = std::fs::read(path).map_err(|e| invalid(e.to_string()))?;
        let mut last = None;
        for root in &self.roots {
            match mayfly_pki::verify::check_crl_signature(&der, root) {
                Ok(validity) => return Ok((der, validity)),
                Err(e) => last = Some(e),
            }
        }
        Err(invalid(
            last.map_or_else(|| "no root".into(), |e| e.to_string()),
        ))
    }

    /// Says what a relying party would see of the root CRL at `now`: `None` when all is well.
    pub fn root_crl_warning(&self, now: time::OffsetDateTime) -> Option<String> {
        self.root_crl.as_ref()?;
        let next = match self.read_root_crl() {
            Ok((_, validity)) => validity.next_update?,
            Err(e) => return Some(e.to_string()),
        };
        if next < now + ROOT_CRL_WARNING {
            Some(format!(
                "the root CRL expires at {next}: re-sign it with `mayfly ca root-crl` before \
                 then, or relying parties that check it refuse every certificate"
            ))
        } else {
            None
        }
    }

    pub fn with_oidc_fetch(mut self, fetch: Arc<dyn credential::oidc::keys::Fetch>) -> Self {
        self.oidc_fetch = Some(fetch);
        self
    }

    /// The SSH CA, if this authority has one.
    pub fn ssh_ca(&self) -> Option<&crate::ssh::SshCa> {
        self.ssh.as_ref()
    }

    /// The audiences a token for `endpoint` must name.
    pub fn audiences_for(&self, endpoint: Endpoint) -> &[String] {
        self.audiences.of(endpoint)
    }

    /// Verifies a token of any provisioner kind for `endpoint`: the first stage of every
    /// token-authorised operation.
    pub(crate) async fn verify_token(
        &self,
        token: &str,
        endpoint: Endpoint,
        now: time::OffsetDateTime,
    ) -> Result<Authorization> {
        credential::verify_token(
            token,
            &TokenContext {
                provisioners: &self.provisioners,
                audiences: self.audiences.of(endpoint),
                root_fingerprints: &self.root_fingerprints,
                now,
                endpoint,
                oidc: self.oidc_fetch.as_deref(),
            },
        )
        .await
    }

    /// Signs leaves with the intermediate's key.
    pub(crate) fn leaf_signer(&self) -> &LeafSigner {
        &self.signer
    }

    /// The name policies every template meets.
    pub(crate) fn name_policies(&self) -> &NamePolicies {
        &self.name_policies
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

    /// The audiences `/sign` tokens must name.
    pub fn audiences(&self) -> &[String] {
        self.audiences.of(Endpoint::Sign)
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    pub fn store(&self) -> &Arc<dyn CertStore> {
        &self.store
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
    /// `mayfly ca revoke --offline` or an import), then remakes CRLs and rotates the OCSP
    /// responder as due.
    ///
    /// Revocations are read by the store's numbering, not by their time: however long a poll
    /// was late, and however far back a revocation is dated, none is missed.
    pub async fn refresh_publication(&self) -> Result<()> {
        if self.crl.is_none() && self.ocsp.is_none() {
            return Ok(());
        }
        {
            let mut polled = self.polled.lock().await;
            let now = self.clock.now();
            let after = match *polled {
                Some(after) => after,
                None => {
                    // What was revoked before this authority was made is in what it reads
                    // first (the CRLs it makes, the OCSP answers it caches), except what came
                    // in between: read by time, once.
                    let after = self.store.revocation_seq().await.map_err(Error::Store)?;
                    let recent = self
                        .store
                        .revoked_certificates(RevokedQuery {
                            revoked_since: Some(now - FIRST_POLL_LOOKBACK),
                            unexpired_at: None,
                            shard: None,
                        })
                        .await
                        .map_err(Error::Store)?;
                    for entry in &recent {
                        self.revocation_seen(&entry.serial, entry.crl_shard, now);
                    }
                    after
                }
            };
            let news = self
                .store
                .revocations_after(after)
                .await
                .map_err(Error::Store)?;
            for entry in &news.entries {
                self.revocation_seen(&entry.serial, entry.crl_shard, now);
            }
            *polled = Some(news.last);
        }
        if let Some(ocsp) = &self.ocsp {
            ocsp.rotate_if_due().await?;
        }
        if let Some(crl) = &self.crl {
            crl.refresh().await?;
            // Only a faster start is lost when it fails; the next round tries again.
            if let Err(error) = crl.save_revoked_set().await {
                tracing::warn!(%error, "saving the revoked set for the next start failed");
            }
        }
        Ok(())
    }

    /// Acts once on a revocation: drops cached OCSP answers and marks the CRLs stale, and
    /// the certificate's shard once that is known.
    pub(crate) fn revocation_seen(
        &self,
        serial: &str,
        shard: Option<CrlShard>,
        now: time::OffsetDateTime,
    ) {
        let (first_time, shard_news) = {
            let mut seen = match self.seen_revocations.lock() {
                Ok(seen) => seen,
                Err(poisoned) => poisoned.into_inner(),
            };
            seen.retain(|_, seen| now - seen.at < REVOCATION_MEMORY);
            match seen.get_mut(serial) {
                Some(earlier) => {
                    let news = shard.is_some() && !earlier.shard_marked;
                    earlier.shard_marked |= shard.is_some();
                    (false, news)
                }
                None => {
                    let entry = SeenRevocation {
                        at: now,
                        shard_marked: shard.is_some(),
                    };
                    seen.insert(serial.to_string(), entry);
                    (true, shard.is_some())
                }
            }
        };
        if let Some(ocsp) = self.ocsp.as_ref().filter(|_| first_time) {
            ocsp.revoked(serial);
        }
        if let Some(crl) = self.crl.as_ref().filter(|_| first_time || shard_news) {
            crl.revoked(shard.filter(|_| shard_news));
        }
    }
}

/// A revocation this instance has acted on.
#[derive(Debug, Clone, Copy)]
struct SeenRevocation {
    at: time::OffsetDateTime,
    shard_marked: bool,
}
