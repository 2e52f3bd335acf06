//! From a ca.json to a listening server.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use mayfly_authority::clock::SystemClock;
use mayfly_authority::publication::PublicPorts;
use mayfly_authority::retention::{self, RetentionPolicy};
use mayfly_authority::{Authority, LoadedMaterial};
use mayfly_config::config::{CaConfig, LoadedConfig};
use tokio::net::TcpListener;

use crate::api::{AppState, plain_router, router};
use crate::limits::Limits;
use crate::permissions::{FilePermissions, check_config_files};
use crate::tls::{ServerTls, TlsSettings};

/// How often the TLS certificate's renewal time is checked.
const RENEWAL_CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30);

/// How often revocation publication is refreshed: new revocations reach the CRL and the OCSP
/// responder of every instance within about this long.
const PUBLICATION_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// A server ready to serve: bound, keys loaded, TLS certificate issued.
pub struct Prepared {
    pub listener: TcpListener,
    pub local_addr: SocketAddr,
    /// The plain-HTTP listener for CRLs and OCSP (`insecureAddress`), when configured.
    pub insecure_listener: Option<TcpListener>,
    pub insecure_addr: Option<SocketAddr>,
    /// The `/metrics` listener (`metricsAddress`), when configured.
    pub metrics_addr: Option<SocketAddr>,
    metrics: Option<(TcpListener, metrics_exporter_prometheus::PrometheusHandle)>,
    pub limits: Limits,
    pub state: Arc<AppState>,
    tls: ServerTls,
    dns_names: Vec<String>,
    database: mayfly_store::AnyStore,
    retention: RetentionPolicy,
    /// `publication.dir`'s static copy, when configured.
    static_copy: Option<crate::static_publish::StaticPublisher>,
}

/// Loads `config_path` and prepares the server. `password` decrypts the intermediate key;
/// `listener`, when given, is used instead of binding the config's `address`; `permissions`
/// says whether world-readable secret files stop it.
pub async fn prepare(
    config_path: &Path,
    password: Option<&[u8]>,
    listener: Option<TcpListener>,
    permissions: FilePermissions,
) -> anyhow::Result<Prepared> {
    let LoadedConfig {
        config,
        path,
        unknown_keys,
    } = CaConfig::load(config_path)?;
    for key in &unknown_keys {
        tracing::warn!(file = %path.display(), key = %key, "ca.json: unknown key ignored");
    }
    let base_dir = std::env::current_dir().context("reading the working directory")?;
    if let Some(warning) = check_config_files(&config, &path, &base_dir, permissions)? {
        tracing::warn!("{warning}");
    }
    let limits =
        Limits::from_config(config.limits.as_ref()).with_context(|| path.display().to_string())?;
    // Installed before anything is counted, so the first requests are not missed.
    let metrics = match config.metrics_address.as_deref().filter(|a| !a.is_empty()) {
        Some(address) => {
            let handle = crate::metrics::recorder()?;
            let listener = crate::serve::listen(&listen_address(address))
                .await
                .with_context(|| {
                    format!(
                        "{}: metricsAddress: cannot listen on {address:?}",
                        path.display()
                    )
                })?;
            Some((listener, handle))
        }
        None => None,
    };
    let metrics_addr = metrics
        .as_ref()
        .map(|(listener, _)| listener.local_addr())
        .transpose()
        .context("reading the bound metrics address")?;
    let material =
        LoadedMaterial::load(&config, &base_dir, password).map_err(|e| e.in_file(&path))?;
    let location = mayfly_store::Location::of(&config, &path)
        .with_context(|| format!("{}: db", path.display()))?;
    if let Some(notice) = mayfly_store::Location::step_store_notice(&config, &path) {
        tracing::warn!(file = %path.display(), "{notice}");
    }
    let database = mayfly_store::AnyStore::open(&location)
        .await
        .with_context(|| format!("{}: db", path.display()))?;
    let store = database.cert_store();
    let retention =
        RetentionPolicy::from_config(config.db.as_ref().and_then(|db| db.retention.as_ref()))
            .map_err(|message| anyhow::anyhow!("{}: {message}", path.display()))?;
    let listener = match listener {
        Some(listener) => listener,
        None => crate::serve::listen(&listen_address(&config.address))
            .await
            .with_context(|| {
                format!(
                    "{}: address: cannot listen on {:?}",
                    path.display(),
                    config.address
                )
            })?,
    };
    let local_addr = listener.local_addr().context("reading the bound address")?;
    let insecure_listener = match config.insecure_address.as_deref().filter(|a| !a.is_empty()) {
        Some(address) => Some(
            crate::serve::listen(&listen_address(address))
                .await
                .with_context(|| {
                    format!(
                        "{}: insecureAddress: cannot listen on {address:?}",
                        path.display()
                    )
                })?,
        ),
        None => None,
    };
    let insecure_addr = insecure_listener
        .as_ref()
        .map(TcpListener::local_addr)
        .transpose()
        .context("reading the bound plain-HTTP address")?;
    let ports = PublicPorts {
        https: local_addr.port(),
        http: insecure_addr.map(|a| a.port()),
    };
    let authority = authority_from(
        material,
        &config,
        ports,
        store,
        Some(database.ssh_store()),
        Arc::new(SystemClock),
    )
    .map_err(|e| e.in_file(&path))?;
    let settings = TlsSettings::from_config(config.tls.as_ref())
        .with_context(|| path.display().to_string())?;
    let tls = ServerTls::new(&authority, &config.dns_names, &settings).await?;
    let static_copy = crate::static_publish::StaticPublisher::from_config(&config, database.full())
        .with_context(|| path.display().to_string())?;
    let mut state = AppState::new(authority, settings.advertised.clone())
        .with_https_port(local_addr.port())
        .with_database(database.clone())
        .with_acme_limits(database.acme_store(), limits.acme);
    if matches!(database, mayfly_store::AnyStore::Sqlite(_)) {
        // One SQLite file is one CA process: nonces need not be shared, nor written and
        // fsynced twice a request (mayfly_acme::nonces).
        state = state.with_acme_nonces(mayfly_acme::nonces::NonceBook::memory());
    }
    if let Some((per_second, burst)) = limits.rate {
        state = state.with_rate_limit(per_second, burst);
    }
    Ok(Prepared {
        listener,
        local_addr,
        insecure_listener,
        insecure_addr,
        metrics_addr,
        metrics,
        limits,
        state: Arc::new(state),
        tls,
        dns_names: config.dns_names,
        database,
        retention,
        static_copy,
    })
}

/// `:9000` listens on every interface, as in Go.
fn listen_address(address: &str) -> String {
    if address.starts_with(':') {
        format!("0.0.0.0{address}")
    } else {
        address.to_string()
    }
}

/// The authority a configuration describes, on an existing store and clock.
fn authority_from(
    material: LoadedMaterial,
    config: &CaConfig,
    ports: PublicPorts,
    store: Arc<dyn mayfly_authority::store::CertStore>,
    ssh_store: Option<Arc<dyn mayfly_authority::ssh::store::SshStore>>,
    clock: Arc<dyn mayfly_authority::clock::Clock>,
) -> mayfly_authority::Result<Authority> {
    let oidc = material
        .provisioners
        .iter()
        .any(|p| matches!(p, mayfly_authority::provisioner::Provisioner::Oidc(_)));
    let authority = material.into_authority(config, ports, store, ssh_store, clock)?;
    if let Some(warning) = authority.root_crl_warning(time::OffsetDateTime::now_utc()) {
        tracing::warn!("{warning}");
    }
    if !oidc {
        return Ok(authority);
    }
    let fetch = crate::oidc::HttpsFetch::new()
        .map_err(|e| mayfly_authority::Error::Config(format!("OIDC providers' client: {e}")))?;
    Ok(authority.with_oidc_fetch(std::sync::Arc::new(fetch)))
}

/// Re-reads `config_path` and puts the new keys, provisioners and claims in force for new
/// requests. The listener, TLS settings and database stay as they are (those need a restart).
/// On any error nothing changes: the running configuration stays in force.
pub fn reload(
    state: &AppState,
    config_path: &Path,
    password: Option<&[u8]>,
    ports: PublicPorts,
    permissions: FilePermissions,
) -> anyhow::Result<()> {
    let LoadedConfig {
        config,
        path,
        unknown_keys,
    } = CaConfig::load(config_path)?;
    for key in &unknown_keys {
        tracing::warn!(file = %path.display(), key = %key, "ca.json: unknown key ignored");
    }
    let base_dir = std::env::current_dir().context("reading the working directory")?;
    if let Some(warning) = check_config_files(&config, &path, &base_dir, permissions)? {
        tracing::warn!("{warning}");
    }
    let material =
        LoadedMaterial::load(&config, &base_dir, password).map_err(|e| e.in_file(&path))?;
    let current = state.authority();
    let authority = authority_from(
        material,
        &config,
        ports,
        Arc::clone(current.store()),
        current.ssh_ca().map(|ssh| Arc::clone(ssh.store())),
        Arc::clone(current.clock()),
    )
    .map_err(|e| e.in_file(&path))?;
    state.replace(authority);
    Ok(())
}

/// Serves until `shutdown` completes; renews the TLS certificate and runs the retention job
/// meanwhile. After `shutdown`, requests in flight and ACME challenge validations are waited
/// for, both within [`crate::serve::SHUTDOWN_GRACE`] of it.
pub async fn run(prepared: Prepared, shutdown: impl std::future::Future<Output = ()>) {
    let Prepared {
        listener,
        local_addr,
        insecure_listener,
        metrics,
        limits,
        state,
        tls,
        dns_names,
        database,
        retention,
        static_copy,
        ..
    } = prepared;
    let config = Arc::clone(&tls.config);
    let renewal =
        tokio::spawn(tls.renew_forever(Arc::clone(&state), dns_names, RENEWAL_CHECK_INTERVAL));
    let holder = format!(
        "{local_addr}/pid {}/{}",
        std::process::id(),
        time::OffsetDateTime::now_utc().unix_timestamp_nanos()
    );
    let pruning = tokio::spawn(retention_forever(
        Arc::clone(&state),
        database.full(),
        retention,
        holder,
    ));
    let publishing = tokio::spawn(publish_forever(Arc::clone(&state), static_copy));
    // Every listener gets a clone of `limits`, and so draws on its one body budget: the memory
    // that request bodies hold is bounded for the process, not per listener.
    let plain = insecure_listener.map(|listener| {
        tokio::spawn(crate::serve::serve_plain(
            listener,
            plain_router(Arc::clone(&state)),
            limits.clone(),
        ))
    });
    let scraping = metrics.map(|(listener, handle)| {
        tokio::spawn(crate::metrics::serve(listener, handle, limits.clone()))
    });
    // The grace period runs from the signal: requests in flight and ACME validations share it.
    let mut deadline = None;
    let shutdown = async {
        shutdown.await;
        deadline = Some(tokio::time::Instant::now() + crate::serve::SHUTDOWN_GRACE);
    };
    crate::serve::serve(
        listener,
        config,
        router(Arc::clone(&state)),
        limits,
        shutdown,
    )
    .await;
    if let Some(acme) = state.acme() {
        // Validations record their outcome on their challenge; dropped unfinished, they would
        // leave it `processing` for good.
        let deadline =
            deadline.unwrap_or_else(|| tokio::time::Instant::now() + crate::serve::SHUTDOWN_GRACE);
        acme.validations().finish(deadline).await;
    }
    renewal.abort();
    pruning.abort();
    publishing.abort();
    for task in [plain, scraping].into_iter().flatten() {
        task.abort();
    }
}

/// The port numbers a running server publishes in its URLs.
pub fn public_ports(prepared: &Prepared) -> PublicPorts {
    PublicPorts {
        https: prepared.local_addr.port(),
        http: prepared.insecure_addr.map(|a| a.port()),
    }
}

async fn publish_forever(
    state: Arc<AppState>,
    mut static_copy: Option<crate::static_publish::StaticPublisher>,
) {
    loop {
        let authority = state.authority();
        if let Err(e) = authority.refresh_publication().await {
            tracing::warn!(error = %e, "refreshing CRLs and OCSP failed; retrying");
        }
        if let Some(copy) = static_copy.as_mut() {
            match copy.round(&authority).await {
                Ok(report) if report.ocsp_responses > 1000 => tracing::info!(
                    crls = report.crls,
                    ocsp_responses = report.ocsp_responses,
                    ocsp_removed = report.ocsp_removed,
                    "static copy rewritten"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "writing the static copy failed; retrying"),
            }
        }
        tokio::time::sleep(PUBLICATION_INTERVAL).await;
    }
}

/// The retention job, every `policy.interval`, on whichever instance holds its lease.
async fn retention_forever(
    state: Arc<AppState>,
    store: Arc<dyn mayfly_authority::store::FullStore>,
    policy: RetentionPolicy,
    holder: String,
) {
    let interval = std::time::Duration::try_from(policy.interval)
        .unwrap_or(std::time::Duration::from_secs(600));
    loop {
        let clock = Arc::clone(state.authority().clock());
        match retention::run_once(&*store, &*clock, &policy, &holder).await {
            Ok(Some(pruned)) if pruned != retention::Pruned::default() => tracing::info!(
                used_tokens = pruned.used_tokens,
                certificates = pruned.certificates,
                "retention: pruned expired records"
            ),
            Ok(Some(_)) => {}
            Ok(None) => tracing::debug!("retention: another instance holds the lease"),
            Err(e) => tracing::warn!(error = %e, "retention job failed"),
        }
        if let Some(acme) = state.acme() {
            match acme.prune_nonces(&state.authority()).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(removed = n, "pruned expired ACME nonces"),
                Err(e) => tracing::warn!(error = %e, "pruning ACME nonces failed"),
            }
        }
        tokio::time::sleep(interval).await;
    }
}
