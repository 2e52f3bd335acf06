//! The OCSP responder: who answers (a delegated, short-lived responder certificate), what it
//! answers (the store's record of each serial), and which answers are reused.
//!
//! Requests without a nonce get a response signed ahead and kept until half its validity has
//! passed, so a busy responder mostly copies bytes; a revocation drops the serial's cached
//! responses at once. Only answers about certificates this CA issued are cached: "unknown" for
//! random serials is signed each time rather than letting strangers fill the cache.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use mayfly_pki::issuer::{CertIdHash, IssuerIdentity};
use mayfly_pki::ocsp::{
    CertStatus, OcspRequest, ResponderIdentity, ResponseStatus, SingleResponse, build_response,
    error_response,
};
use mayfly_pki::{KeyAlgorithm, LeafSigner, PrivateKey, SerialNumber};
use time::{Duration, OffsetDateTime};

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::store::{CertStore, CertificateStatus, IssuedCertificate, StoredCertificate};

/// Cached responses kept at most; past it the cache starts over (it refills from the store).
const MAX_CACHED: usize = 200_000;
/// The responder certificate's subject common name.
const RESPONDER_NAME: &str = "mayfly OCSP responder";

/// How the responder works, resolved from ca.json's `ocsp` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OcspSettings {
    /// The responder URL written in certificates.
    pub url: String,
    /// nextUpdate - thisUpdate of each response.
    pub response_lifetime: Duration,
    /// Lifetime of the delegated responder certificate.
    pub responder_lifetime: Duration,
}

/// An OCSP answer, with what HTTP caches need when it may be cached.
#[derive(Debug, Clone)]
pub struct OcspAnswer {
    pub der: Arc<Vec<u8>>,
    /// `None` for error statuses and nonce responses, which must not be cached.
    pub cache: Option<CacheInfo>,
}

/// RFC 5019 section 6 cache headers of a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheInfo {
    pub this_update: OffsetDateTime,
    pub next_update: OffsetDateTime,
    pub etag: String,
}

struct Responder {
    key: PrivateKey,
    key_hash: Vec<u8>,
    certificate: Vec<u8>,
    renew_at: OffsetDateTime,
    not_after: OffsetDateTime,
}

struct Cached {
    cert_id: Vec<u8>,
    answer: OcspAnswer,
    refresh_at: OffsetDateTime,
}

/// The OCSP responder of one CA.
pub struct OcspResponder {
    settings: OcspSettings,
    issuer: IssuerIdentity,
    intermediate: Vec<u8>,
    signer: Arc<LeafSigner>,
    store: Arc<dyn CertStore>,
    clock: Arc<dyn Clock>,
    backdate: Duration,
    responder: RwLock<Option<Arc<Responder>>>,
    rotating: tokio::sync::Mutex<()>,
    /// Keyed by serial magnitude; each serial may be asked about with several hash algorithms.
    cache: RwLock<HashMap<Vec<u8>, Vec<Cached>>>,
}

/// What the responder needs from the authority.
pub struct OcspParts {
    pub settings: OcspSettings,
    pub intermediate_der: Vec<u8>,
    pub signer: Arc<LeafSigner>,
    pub store: Arc<dyn CertStore>,
    pub clock: Arc<dyn Clock>,
    pub backdate: Duration,
}

impl OcspResponder {
    pub fn new(parts: OcspParts) -> Result<Self> {
        Ok(Self {
            issuer: IssuerIdentity::from_certificate(&parts.intermediate_der)?,
            settings: parts.settings,
            intermediate: parts.intermediate_der,
            signer: parts.signer,
            store: parts.store,
            clock: parts.clock,
            backdate: parts.backdate,
            responder: RwLock::new(None),
            rotating: tokio::sync::Mutex::new(()),
            cache: RwLock::new(HashMap::new()),
        })
    }

    pub fn settings(&self) -> &OcspSettings {
        &self.settings
    }

    /// Answers a DER `OCSPRequest`. Never fails: problems become OCSP error statuses.
    pub async fn respond(&self, request_der: &[u8]) -> OcspAnswer {
        let (answer, source) = self.answer(request_der).await;
        crate::telemetry::ocsp_answered(source);
        answer
    }

    /// The answer to `request_der`, and how it was made (`hit`, `signed`, `error`).
    async fn answer(&self, request_der: &[u8]) -> (OcspAnswer, &'static str) {
        let request = match OcspRequest::from_der(request_der) {
            Ok(request) => request,
            Err(e) => {
                tracing::debug!(error = %e, "malformed OCSP request");
                return (status_answer(ResponseStatus::MalformedRequest), "error");
            }
        };
        if !request
            .cert_ids
            .iter()
            .all(|id| id.is_issued_by(&self.issuer))
        {
            return (status_answer(ResponseStatus::Unauthorized), "error");
        }
        let now = self.clock.now();
        let cacheable = request.nonce_extension.is_none() && request.cert_ids.len() == 1;
        if cacheable
            && let Some(answer) =
                self.cached(request.cert_ids[0].serial, request.cert_ids[0].der, now)
        {
            return (answer, "hit");
        }
        match self.sign_answer(&request, now, cacheable).await {
            Ok(answer) => (answer, "signed"),
            Err(e) => {
                tracing::error!(error = %e, "OCSP response failed");
                (status_answer(ResponseStatus::InternalError), "error")
            }
        }
    }

    /// Drops cached responses about `serial` (decimal) after it was revoked.
    pub fn revoked(&self, serial: &str) {
        if let Ok(serial) = SerialNumber::from_decimal(serial) {
            self.write_cache().remove(serial.as_be_bytes());
        }
    }

    /// Issues a new responder certificate when the current one reached 2/3 of its life.
    pub async fn rotate_if_due(&self) -> Result<()> {
        self.responder().await.map(|_| ())
    }

    fn cached(&self, serial: &[u8], cert_id: &[u8], now: OffsetDateTime) -> Option<OcspAnswer> {
        let cache = match self.cache.read() {
            Ok(cache) => cache,
            Err(poisoned) => poisoned.into_inner(),
        };
        cache
            .get(serial)?
            .iter()
            .find(|c| c.cert_id == cert_id && c.refresh_at > now)
            .map(|c| c.answer.clone())
    }

    fn write_cache(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<Vec<u8>, Vec<Cached>>> {
        match self.cache.write() {
            Ok(cache) => cache,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    async fn sign_answer(
        &self,
        request: &OcspRequest<'_>,
        now: OffsetDateTime,
        cacheable: bool,
    ) -> Result<OcspAnswer> {
        let responder = self.responder().await?;
        // Backdated as leaves are, so a relying party whose clock is behind accepts it.
        let now = now.replace_nanosecond(0).unwrap_or(now);
        let this_update = now - self.backdate;
        let next_update = (now + self.settings.response_lifetime).min(responder.not_after);
        let mut singles = Vec::with_capacity(request.cert_ids.len());
        let mut known = true;
        for id in &request.cert_ids {
            let serial = SerialNumber::from_be_bytes(id.serial).to_decimal();
            let stored = self
                .store
                .certificate(&serial)
                .await
                .map_err(Error::Store)?;
            known &= stored.is_some();
            let status = status_of(stored.as_ref());
            singles.push(SingleResponse {
                cert_id_der: id.der,
                status,
                this_update,
                next_update,
            });
        }
        let certificates: [&[u8]; 2] = [&responder.certificate, &self.intermediate];
        let identity = ResponderIdentity {
            key: &responder.key,
            key_hash: &responder.key_hash,
            certificates: &certificates,
        };
        let der = build_response(&identity, this_update, &singles, request.nonce_extension)?;
        if !(cacheable && known) {
            return Ok(OcspAnswer {
                der: Arc::new(der),
                cache: None,
            });
        }
        let etag = format!(
            "\"{}\"",
            hex::encode(&CertIdHash::Sha256.digest(&der)[..16])
        );
        let answer = OcspAnswer {
            der: Arc::new(der),
            cache: Some(CacheInfo {
                this_update,
                next_update,
                etag,
            }),
        };
        let id = &request.cert_ids[0];
        let mut cache = self.write_cache();
        if cache.len() >= MAX_CACHED {
            cache.clear();
        }
        let entries = cache.entry(id.serial.to_vec()).or_default();
        entries.retain(|c| c.cert_id != id.der);
        entries.push(Cached {
            cert_id: id.der.to_vec(),
            answer: answer.clone(),
            refresh_at: this_update + (next_update - this_update) / 2,
        });
        Ok(answer)
    }

    /// A response about one certificate whose record the caller read, as a GET request naming
    /// `cert_id_der` and no nonce gets it: for publication as a file (RFC 5019).
    pub async fn presign(
        &self,
        cert_id_der: &[u8],
        stored: Option<&StoredCertificate>,
    ) -> Result<Vec<u8>> {
        let responder = self.responder().await?;
        let now = self.clock.now();
        let now = now.replace_nanosecond(0).unwrap_or(now);
        let this_update = now - self.backdate;
        let single = SingleResponse {
            cert_id_der,
            status: status_of(stored),
            this_update,
            next_update: (now + self.settings.response_lifetime).min(responder.not_after),
        };
        let certificates: [&[u8]; 2] = [&responder.certificate, &self.intermediate];
        let identity = ResponderIdentity {
            key: &responder.key,
            key_hash: &responder.key_hash,
            certificates: &certificates,
        };
        Ok(build_response(&identity, this_update, &[single], None)?)
    }

    /// The issuer every request must name.
    pub fn issuer(&self) -> &IssuerIdentity {
        &self.issuer
    }

    /// The responder in force, issued first when there is none or it is due.
    async fn responder(&self) -> Result<Arc<Responder>> {
        let now = self.clock.now();
        if let Some(current) = self.current_responder().filter(|r| r.renew_at > now) {
            return Ok(current);
        }
        let _one_at_a_time = self.rotating.lock().await;
        if let Some(current) = self.current_responder().filter(|r| r.renew_at > now) {
            return Ok(current);
        }
        let responder = Arc::new(self.issue_responder(now).await?);
        match self.responder.write() {
            Ok(mut slot) => *slot = Some(Arc::clone(&responder)),
            Err(poisoned) => *poisoned.into_inner() = Some(Arc::clone(&responder)),
        }
        // Responses signed by the old responder stay valid, but new ones should all carry
        // the same certificate.
        self.write_cache().clear();
        Ok(responder)
    }

    fn current_responder(&self) -> Option<Arc<Responder>> {
        match self.responder.read() {
            Ok(slot) => slot.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    async fn issue_responder(&self, now: OffsetDateTime) -> Result<Responder> {
        let key = PrivateKey::generate(KeyAlgorithm::EcP256)?;
        let spki = key.public_key_spki_der()?;
        let serial = SerialNumber::random()?;
        let not_before = now - self.backdate;
        let not_after = now + self.settings.responder_lifetime;
        let certificate = self.signer.sign_ocsp_responder(
            RESPONDER_NAME,
            &serial,
            not_before,
            not_after,
            &spki,
        )?;
        let identity = IssuerIdentity::from_certificate(&certificate)?;
        // Like every certificate this CA signs, the responder's is on record before it is used.
        let record = IssuedCertificate {
            serial: serial.to_decimal(),
            der: certificate.clone(),
            subject: RESPONDER_NAME.into(),
            sans: Vec::new(),
            not_before,
            not_after,
            provisioner: String::new(),
            crl_shard: None,
        };
        let audit = crate::audit::AuditContext::without_client(
            crate::audit::AuditAction::Issued,
            now,
            "server",
            "OCSP responder certificate",
        );
        self.store
            .record_issuance(&record, None, &audit)
            .await
            .map_err(Error::Store)?;
        tracing::info!(serial = %record.serial, %not_after, "issued an OCSP responder certificate");
        Ok(Responder {
            key_hash: identity.key_hash(CertIdHash::Sha1),
            key,
            certificate,
            renew_at: now + self.settings.responder_lifetime * 2 / 3,
            not_after,
        })
    }
}

/// A certificate's status as OCSP says it; unknown when the CA has no record of it.
fn status_of(stored: Option<&StoredCertificate>) -> CertStatus {
    match stored {
        None => CertStatus::Unknown,
        Some(stored) => match (stored.status, &stored.revocation) {
            (CertificateStatus::Revoked, Some(revocation)) => CertStatus::Revoked {
                at: revocation.revoked_at,
                // As the CRL, which leaves `unspecified` out (RFC 5280 5.3.1).
                reason: (revocation.reason_code != 0).then_some(revocation.reason_code),
            },
            _ => CertStatus::Good,
        },
    }
}

fn status_answer(status: ResponseStatus) -> OcspAnswer {
    OcspAnswer {
        der: Arc::new(error_response(status)),
        cache: None,
    }
}
