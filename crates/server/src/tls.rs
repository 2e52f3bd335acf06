//! The server's TLS: rustls with step-ca's defaults (TLS 1.2 minimum, its ECDSA cipher suites,
//! TLS 1.3 preferred), a certificate the CA issues to itself, and renewal without restart.
//!
//! Client certificates are requested but optional: `/renew` (mTLS) needs them, every other route
//! works without. They are verified against the CA's roots here, during the handshake, and
//! reach handlers only through the connection, never through headers.

use std::sync::{Arc, RwLock};

use anyhow::{Context, bail};
use mayfly_authority::Authority;
use mayfly_config::config::TlsConfig;
use mayfly_pki::{KeyAlgorithm, PrivateKey};
use mayfly_proto::TlsOptions;
use rustls::crypto::CryptoProvider;
use rustls::crypto::aws_lc_rs::{self as provider, cipher_suite};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig, SupportedCipherSuite};
use time::OffsetDateTime;

/// Lifetime of the server's own certificate; it is renewed at two thirds of it.
pub const SERVER_CERT_LIFETIME: time::Duration = time::Duration::hours(24);

/// Resolved TLS settings.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    pub cipher_suites: Vec<SupportedCipherSuite>,
    pub versions: Vec<&'static rustls::SupportedProtocolVersion>,
    /// What `/sign` advertises, as step-ca does.
    pub advertised: TlsOptions,
}

impl TlsSettings {
    /// Reads ca.json's `tls`; absent means step's defaults.
    pub fn from_config(config: Option<&TlsConfig>) -> anyhow::Result<Self> {
        let default_names: Vec<String> = mayfly_config::init::DEFAULT_CIPHER_SUITES
            .iter()
            .map(|s| s.to_string())
            .collect();
        let names = config
            .map(|c| c.cipher_suites.clone())
            .filter(|n| !n.is_empty())
            .unwrap_or(default_names);
        let min = config.and_then(|c| c.min_version).unwrap_or(1.2);
        let max = config.and_then(|c| c.max_version).unwrap_or(1.3);
        let is = |v: f32, want: f32| (v - want).abs() < 0.001;
        if !(is(min, 1.2) || is(min, 1.3)) || !(is(max, 1.2) || is(max, 1.3)) || min > max + 0.001 {
            bail!(
                "tls: minVersion {min} and maxVersion {max} must be 1.2 or 1.3, min <= max (TLS 1.0 and 1.1 are not supported)"
            );
        }
        let mut suites = Vec::new();
        let mut unsupported = Vec::new();
        for name in &names {
            match tls12_suite(name) {
                Some(suite) => suites.push(suite),
                None => unsupported.push(name.clone()),
            }
        }
        if !unsupported.is_empty() {
            tracing::warn!(
                ?unsupported,
                "tls.cipherSuites: these suites are not offered (CBC and RSA key exchange are not supported)"
            );
        }
        let mut versions = Vec::new();
        if is(max, 1.3) {
            versions.push(&rustls::version::TLS13);
            suites.splice(
                0..0,
                [
                    cipher_suite::TLS13_AES_128_GCM_SHA256,
                    cipher_suite::TLS13_AES_256_GCM_SHA384,
                    cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
                ],
            );
        }
        if is(min, 1.2) {
            versions.push(&rustls::version::TLS12);
            if !suites
                .iter()
                .any(|s| s.version() == &rustls::version::TLS12)
            {
                bail!("tls.cipherSuites: none of {names:?} is supported for TLS 1.2");
            }
        }
        Ok(Self {
            cipher_suites: suites,
            versions,
            advertised: TlsOptions {
                cipher_suites: names,
                min_version: min,
                max_version: max,
                renegotiation: false,
            },
        })
    }
}

/// Maps step's (Go's) TLS 1.2 suite names to rustls suites.
fn tls12_suite(name: &str) -> Option<SupportedCipherSuite> {
    Some(match name {
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"
        | "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305" => {
            cipher_suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
        }
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" => {
            cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
        }
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384" => {
            cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
        }
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256" | "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305" => {
            cipher_suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
        }
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" => {
            cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
        }
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384" => {
            cipher_suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
        }
        _ => return None,
    })
}

/// Hands rustls whichever certificate is current; renewal swaps it under the lock.
#[derive(Debug)]
pub struct CertResolver {
    current: RwLock<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().map(|c| Arc::clone(&c))
    }
}

impl CertResolver {
    /// The DER of the leaf currently served.
    pub fn current_leaf_der(&self) -> Option<Vec<u8>> {
        let current = self.current.read().ok()?;
        current.cert.first().map(|c| c.to_vec())
    }

    fn replace(&self, key: Arc<CertifiedKey>) {
        if let Ok(mut current) = self.current.write() {
            *current = key;
        }
    }
}

/// A certificate for the server, with when to renew it.
struct ServerCert {
    certified: Arc<CertifiedKey>,
    renew_at: OffsetDateTime,
}

async fn issue_server_cert(
    authority: &Authority,
    dns_names: &[String],
    provider: &CryptoProvider,
) -> anyhow::Result<ServerCert> {
    let key = PrivateKey::generate(KeyAlgorithm::EcP256)?;
    let issued = authority
        .sign_server_certificate(&key, dns_names, SERVER_CERT_LIFETIME)
        .await
        .context("issuing the server's TLS certificate")?;
    let signing_key = provider
        .key_provider
        .load_private_key(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            key.pkcs8_der().to_vec(),
        )))
        .context("loading the server key into rustls")?;
    let chain = vec![
        CertificateDer::from(issued.certificate_der.clone()),
        CertificateDer::from(issued.issuer_der.clone()),
    ];
    let now = authority.clock().now();
    Ok(ServerCert {
        certified: Arc::new(CertifiedKey::new(chain, signing_key)),
        renew_at: now + SERVER_CERT_LIFETIME * 2 / 3,
    })
}

/// The rustls server configuration and the resolver that renewal updates.
pub struct ServerTls {
    pub config: Arc<ServerConfig>,
    resolver: Arc<CertResolver>,
    renew_at: OffsetDateTime,
    provider: Arc<CryptoProvider>,
}

impl ServerTls {
    pub async fn new(
        authority: &Authority,
        dns_names: &[String],
        settings: &TlsSettings,
    ) -> anyhow::Result<Self> {
        let provider = Arc::new(CryptoProvider {
            cipher_suites: settings.cipher_suites.clone(),
            ..provider::default_provider()
        });
        let first = issue_server_cert(authority, dns_names, &provider).await?;
        let resolver = Arc::new(CertResolver {
            current: RwLock::new(first.certified),
        });
        let mut roots = RootCertStore::empty();
        for root in authority.roots() {
            roots
                .add(CertificateDer::from(root.clone()))
                .context("adding a root to the client verifier")?;
        }
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
                .allow_unauthenticated()
                .build()
                .context("building the client certificate verifier")?;
        let mut config = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&settings.versions)
            .context("TLS protocol versions")?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(resolver.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            config: Arc::new(config),
            resolver,
            renew_at: first.renew_at,
            provider,
        })
    }

    /// The resolver, to observe which certificate is served.
    pub fn resolver(&self) -> Arc<CertResolver> {
        Arc::clone(&self.resolver)
    }

    /// Renews the server certificate at two thirds of its life, forever. The clock is re-read
    /// every `check_every` rather than sleeping until the renewal time, so a suspended machine
    /// or a stepped clock cannot make it miss renewal. A failed renewal is retried a minute later.
    pub async fn renew_forever(
        self,
        authority: Arc<crate::api::AppState>,
        dns_names: Vec<String>,
        check_every: std::time::Duration,
    ) {
        let mut renew_at = self.renew_at;
        loop {
            if authority.authority().clock().now() < renew_at {
                tokio::time::sleep(check_every).await;
                continue;
            }
            match issue_server_cert(&authority.authority(), &dns_names, &self.provider).await {
                Ok(next) => {
                    self.resolver.replace(next.certified);
                    renew_at = next.renew_at;
                    tracing::info!("renewed the server's TLS certificate");
                }
                Err(e) => {
                    tracing::error!(error = %mayfly_authority::error::one_line(e.as_ref()), "renewing the server's TLS certificate failed; retrying in 1 minute");
                    renew_at = authority.authority().clock().now() + time::Duration::minutes(1);
                }
            }
        }
    }
}
