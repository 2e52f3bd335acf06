//! The HTTP API (step-ca compatible): routes served at `/` and under `/1.0/`.
//!
//! Handlers only translate: JSON in, a call into the authority, JSON out. Decisions live in
//! `mayfly-authority`.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use mayfly_authority::Authority;
use mayfly_authority::Presented;
use mayfly_authority::policy::{TimeSpec, ValidityRequest};
use mayfly_authority::provisioner::Provisioner;
use mayfly_authority::revocation::ReasonCode;
use mayfly_pki::cert::certificate_pem;
use mayfly_proto::{
    EncryptedKeyResponse, HealthResponse, ProvisionerBody, ProvisionersResponse, RekeyRequest,
    RevokeRequest, RootResponse, RootsResponse, SignRequest, SignResponse, StatusResponse,
    TlsOptions, VersionResponse,
};
use serde::Deserialize;

use crate::body::JsonBody;
use crate::error::{ApiError, RequestError};
use crate::limits::RateLimiter;
use crate::revocation;
use crate::serve::PeerCertificates;

/// What every handler can reach.
pub struct AppState {
    /// Swapped whole on reload; each request works with the snapshot it took, so requests in
    /// flight finish under the configuration they started with.
    current: std::sync::RwLock<Arc<Authority>>,
    pub tls_options: TlsOptions,
    /// The store's connection, for `/health`; without it `/health` reports only that the
    /// process answers.
    database: Option<mayfly_store::AnyStore>,
    /// The ACME protocol's state; without it the ACME routes answer 404.
    acme: Option<mayfly_acme::Acme>,
    /// Requests per client address to the unauthenticated routes; unlimited without it.
    rate_limiter: Option<Arc<RateLimiter>>,
    /// The port of the HTTPS listener, for URLs built when a request names no known host.
    https_port: u16,
}

/// How long `/health` waits for the database before calling it unreachable; a load balancer
/// probing every few seconds must get an answer before its own timeout.
const HEALTH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

impl AppState {
    pub fn new(authority: Authority, tls_options: TlsOptions) -> Self {
        Self {
            current: std::sync::RwLock::new(Arc::new(authority)),
            tls_options,
            database: None,
            acme: None,
            rate_limiter: None,
            https_port: 443,
        }
    }

    /// The port the HTTPS listener is bound to [default: 443].
    pub fn with_https_port(mut self, port: u16) -> Self {
        self.https_port = port;
        self
    }

    pub fn https_port(&self) -> u16 {
        self.https_port
    }

    /// Limits the unauthenticated routes to `per_second` requests per client address, in
    /// bursts of up to `burst`.
    pub fn with_rate_limit(mut self, per_second: f64, burst: u32) -> Self {
        self.rate_limiter = Some(Arc::new(RateLimiter::new(per_second, burst)));
        self
    }

    /// The store's connection, when the server was given one.
    pub fn database(&self) -> Option<&mayfly_store::AnyStore> {
        self.database.as_ref()
    }

    /// Makes `/health` check that `database` answers.
    pub fn with_database(mut self, database: mayfly_store::AnyStore) -> Self {
        self.database = Some(database);
        self
    }

    /// Serves ACME (RFC 8555) with its state in `store`, with the default per-address limits.
    pub fn with_acme(self, store: Arc<dyn mayfly_acme::store::AcmeStore>) -> Self {
        self.with_acme_limits(store, mayfly_acme::limits::AddressLimitSettings::default())
    }

    /// [`AppState::with_acme`] with these per-address limits.
    pub fn with_acme_limits(
        mut self,
        store: Arc<dyn mayfly_acme::store::AcmeStore>,
        limits: mayfly_acme::limits::AddressLimitSettings,
    ) -> Self {
        self.acme = Some(mayfly_acme::Acme::with_limits(store, limits));
        self
    }

    /// Keeps ACME nonces in `book` rather than in the store.
    pub fn with_acme_nonces(mut self, book: mayfly_acme::nonces::NonceBook) -> Self {
        self.acme = self.acme.take().map(|acme| acme.with_nonces(book));
        self
    }

    pub fn acme(&self) -> Option<&mayfly_acme::Acme> {
        self.acme.as_ref()
    }

    /// The authority in force now.
    pub fn authority(&self) -> Arc<Authority> {
        match self.current.read() {
            Ok(current) => Arc::clone(&current),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Puts a reloaded authority in force for the requests that start from now on.
    pub fn replace(&self, authority: Authority) {
        let next = Arc::new(authority);
        match self.current.write() {
            Ok(mut current) => *current = next,
            Err(poisoned) => *poisoned.into_inner() = next,
        }
    }
}

/// The API router, with routes at `/` and `/1.0/`.
pub fn router(state: Arc<AppState>) -> Router {
    let api = Router::new()
        .merge(rate_limited(public_routes(), &state))
        .route("/sign", post(sign))
        .route("/renew", post(renew))
        .route("/rekey", post(rekey))
        .route("/revoke", post(revoke))
        .merge(crate::admin::routes())
        .merge(revocation_routes())
        .merge(crate::ssh::routes());
    let app = Router::new()
        .merge(api.clone())
        .nest("/1.0", api)
        .merge(crate::acme::router())
        .route("/ocsp", post(revocation::ocsp_post))
        .route("/ocsp/{*request}", get(revocation::ocsp_get))
        .fallback(not_found);
    observed(app).with_state(state)
}

/// What anyone may ask without a credential, and so what the per-address rate limit guards.
/// CRLs and OCSP are left out: relying parties behind one proxy legitimately fetch them in
/// volume, and their answers are pre-signed and cached, so they cost little.
fn public_routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/health", get(health))
        .route("/version", get(version))
        .route("/root/{fingerprint}", get(root))
        .route("/roots", get(roots))
        .route("/roots.pem", get(roots_pem))
        .route("/federation", get(federation))
        .route("/provisioners", get(provisioners))
        .route("/provisioners/{kid}/encrypted-key", get(encrypted_key))
}

fn rate_limited(routes: Router<Arc<AppState>>, state: &AppState) -> Router<Arc<AppState>> {
    match &state.rate_limiter {
        Some(limiter) => routes.route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(limiter),
            crate::limits::rate_limit,
        )),
        None => routes,
    }
}

/// Every request's id, span, metrics and audit address ([`crate::observe`]), and its body read
/// within the limits ([`crate::limits::read_body`]).
fn observed(app: Router<Arc<AppState>>) -> Router<Arc<AppState>> {
    app.layer(axum::middleware::from_fn(crate::limits::read_body))
        .layer(axum::middleware::from_fn(crate::observe::track))
}

/// What relying parties fetch to check revocation.
fn revocation_routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/crl", get(revocation::crl))
        // `/crl/delta` is where deltas were served first; certificates carry it.
        .route("/crl/delta", get(revocation::delta_crl))
        .route("/crl-delta", get(revocation::delta_crl))
        .route("/crls/{shard}", get(revocation::shard_crl))
        .route("/root.crl", get(revocation::root_crl))
        .route("/intermediate.crt", get(revocation::intermediate))
}

/// The plain-HTTP listener (`insecureAddress`): revocation information, the CA certificates
/// and health only, since nothing that issues or changes a certificate may travel without TLS.
/// (The roots are public; whoever fetches them over plain HTTP must still check them against
/// a fingerprint, as `mayfly ca bootstrap` does.)
pub fn plain_router(state: Arc<AppState>) -> Router {
    let public = Router::new()
        .route("/health", get(health))
        .route("/roots.pem", get(roots_pem));
    let api = revocation_routes()
        .route("/ssh/krl", get(crate::ssh::krl))
        .merge(rate_limited(public, &state));
    let app = Router::new()
        .merge(api.clone())
        .nest("/1.0", api)
        .route("/ocsp", post(revocation::ocsp_post))
        .route("/ocsp/{*request}", get(revocation::ocsp_get))
        .fallback(not_found);
    observed(app).with_state(state)
}

async fn not_found() -> RequestError {
    RequestError::NoRoute
}

/// 200 while the process serves and its database answers; 503 when the database does not,
/// so a load balancer sends requests to the instances that can issue.
async fn health(State(state): State<Arc<AppState>>) -> Result<Json<HealthResponse>, ApiError> {
    if let Some(database) = &state.database {
        let outcome = tokio::time::timeout(HEALTH_TIMEOUT, database.ping()).await;
        let cause = match outcome {
            Ok(Ok(())) => None,
            Ok(Err(error)) => Some(error.to_string()),
            Err(_) => Some(format!("no answer within {HEALTH_TIMEOUT:?}")),
        };
        if let Some(cause) = cause {
            tracing::warn!(%cause, "health check: the database is unreachable");
            return Err(RequestError::DatabaseUnreachable.into());
        }
    }
    Ok(Json(HealthResponse {
        status: "ok".into(),
    }))
}

/// mayfly never requires a client certificate before an SSH request: SSH tokens and SSH-POP
/// are the credentials there.
async fn version() -> Json<VersionResponse> {
    Json(VersionResponse {
        version: env!("CARGO_PKG_VERSION").into(),
        require_client_authentication: false,
    })
}

async fn root(
    State(state): State<Arc<AppState>>,
    Path(fingerprint): Path<String>,
) -> Result<Json<RootResponse>, ApiError> {
    state
        .authority()
        .root_by_fingerprint(&fingerprint)
        .map(|der| {
            Json(RootResponse {
                ca: certificate_pem(der),
            })
        })
        .ok_or_else(|| RequestError::RootNotFound { fingerprint }.into())
}

async fn roots(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let crts = state
        .authority()
        .roots()
        .iter()
        .map(|r| certificate_pem(r))
        .collect();
    (StatusCode::CREATED, Json(RootsResponse { crts }))
}

async fn roots_pem(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let pem: String = state
        .authority()
        .roots()
        .iter()
        .map(|r| certificate_pem(r))
        .collect();
    (
        [(axum::http::header::CONTENT_TYPE, "application/x-pem-file")],
        pem,
    )
}

async fn federation(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let crts = state
        .authority()
        .federation()
        .iter()
        .map(|r| certificate_pem(r))
        .collect();
    (StatusCode::CREATED, Json(RootsResponse { crts }))
}

#[derive(Debug, Deserialize)]
struct Page {
    cursor: Option<String>,
    limit: Option<usize>,
}

/// step's default and maximum page sizes.
const DEFAULT_PAGE: usize = 20;
const MAX_PAGE: usize = 100;

async fn provisioners(
    State(state): State<Arc<AppState>>,
    Query(page): Query<Page>,
) -> Result<Json<ProvisionersResponse>, ApiError> {
    let authority = state.authority();
    let all = authority.provisioners();
    let start = match page.cursor.as_deref().filter(|c| !c.is_empty()) {
        None => 0,
        Some(cursor) => cursor
            .parse::<usize>()
            .ok()
            .filter(|&i| i <= all.len())
            .ok_or_else(|| RequestError::CursorInvalid {
                cursor: cursor.to_owned(),
            })?,
    };
    let limit = page.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
    let end = (start + limit).min(all.len());
    let provisioners = all[start..end].iter().map(provisioner_body).collect();
    let next_cursor = if end < all.len() {
        end.to_string()
    } else {
        String::new()
    };
    Ok(Json(ProvisionersResponse {
        provisioners,
        next_cursor,
    }))
}

fn provisioner_body(provisioner: &Provisioner) -> ProvisionerBody {
    match provisioner {
        Provisioner::Jwk(p) => ProvisionerBody {
            kind: "JWK".into(),
            name: p.name.clone(),
            key: serde_json::to_value(&p.key).ok(),
            encrypted_key: p.encrypted_key.clone(),
            claims: None,
            oidc: None,
        },
        Provisioner::Acme(p) => ProvisionerBody {
            kind: "ACME".into(),
            name: p.name.clone(),
            key: None,
            encrypted_key: None,
            claims: None,
            oidc: None,
        },
        Provisioner::SshPop(p) => ProvisionerBody {
            kind: "SSHPOP".into(),
            name: p.name.clone(),
            key: None,
            encrypted_key: None,
            claims: None,
            oidc: None,
        },
        Provisioner::Oidc(p) => ProvisionerBody {
            kind: "OIDC".into(),
            name: p.name.clone(),
            key: None,
            encrypted_key: None,
            claims: None,
            oidc: Some(mayfly_proto::OidcClientBody {
                client_id: p.client_id.clone(),
                client_secret: p.client_secret.clone(),
                configuration_endpoint: p.configuration_endpoint.clone(),
                listen_address: p.listen_address.clone(),
            }),
        },
        // Their roots and public keys stay in ca.json: no client needs them to make a token.
        Provisioner::X5c(_) | Provisioner::K8sSa(_) => ProvisionerBody {
            kind: provisioner.kind().into(),
            name: provisioner.name().into(),
            key: None,
            encrypted_key: None,
            claims: None,
            oidc: None,
        },
        Provisioner::Unsupported(p) => ProvisionerBody {
            kind: p.kind.clone(),
            name: p.name.clone(),
            key: None,
            encrypted_key: None,
            claims: None,
            oidc: None,
        },
    }
}

async fn encrypted_key(
    State(state): State<Arc<AppState>>,
    Path(kid): Path<String>,
) -> Result<Json<EncryptedKeyResponse>, ApiError> {
    state
        .authority()
        .provisioners()
        .iter()
        .find_map(|p| match p {
            Provisioner::Jwk(jwk) if jwk.kid == kid => jwk.encrypted_key.clone(),
            _ => None,
        })
        .map(|key| Json(EncryptedKeyResponse { key }))
        .ok_or_else(|| RequestError::EncryptedKeyNotFound { kid }.into())
}

async fn sign(
    State(state): State<Arc<AppState>>,
    JsonBody(request): JsonBody<SignRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let validity = ValidityRequest {
        not_before: request
            .not_before
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(|s| TimeSpec::parse("notBefore", s))
            .transpose()?,
        not_after: request
            .not_after
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(|s| TimeSpec::parse("notAfter", s))
            .transpose()?,
    };
    if request.csr.trim().is_empty() {
        return Err(RequestError::FieldEmpty { field: "csr" }.into());
    }
    if request.ott.trim().is_empty() {
        return Err(RequestError::TokenMissing.into());
    }
    let issued = state
        .authority()
        .sign(&request.csr, &request.ott, validity)
        .await?;
    Ok((StatusCode::CREATED, Json(sign_response(&state, &issued))))
}

fn sign_response(state: &AppState, issued: &mayfly_authority::Issued) -> SignResponse {
    let crt = issued.certificate_pem();
    let ca = certificate_pem(&issued.issuer_der);
    SignResponse {
        crt: crt.clone(),
        ca: ca.clone(),
        cert_chain: vec![crt, ca],
        tls_options: Some(state.tls_options.clone()),
    }
}

/// The leaf of the client certificate chain verified during the TLS handshake, if any.
pub(crate) fn client_leaf(peer: &Option<axum::Extension<PeerCertificates>>) -> Option<&[u8]> {
    peer.as_ref()?.chain.as_ref()?.first().map(Vec::as_slice)
}

async fn renew(
    State(state): State<Arc<AppState>>,
    peer: Option<axum::Extension<PeerCertificates>>,
    headers: axum::http::HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    let bearer = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    let issued = match (bearer, client_leaf(&peer)) {
        (Some(token), _) => state.authority().renew_with_token(token.trim()).await?,
        (None, Some(leaf)) => state.authority().renew(leaf).await?,
        (None, None) => {
            return Err(RequestError::RenewalCredentialMissing.into());
        }
    };
    Ok((StatusCode::CREATED, Json(sign_response(&state, &issued))))
}

async fn rekey(
    State(state): State<Arc<AppState>>,
    peer: Option<axum::Extension<PeerCertificates>>,
    JsonBody(request): JsonBody<RekeyRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let leaf = client_leaf(&peer).ok_or(RequestError::RekeyCertificateMissing)?;
    let issued = state.authority().rekey(leaf, &request.csr).await?;
    Ok((StatusCode::CREATED, Json(sign_response(&state, &issued))))
}

async fn revoke(
    State(state): State<Arc<AppState>>,
    peer: Option<axum::Extension<PeerCertificates>>,
    JsonBody(request): JsonBody<RevokeRequest>,
) -> Result<Json<StatusResponse>, ApiError> {
    let authorization = match (
        request.ott.as_deref().filter(|t| !t.is_empty()),
        client_leaf(&peer),
    ) {
        (Some(ott), _) => Presented::Token(ott),
        (None, Some(leaf)) => Presented::Certificate(leaf),
        (None, None) => {
            return Err(RequestError::RevocationCredentialMissing.into());
        }
    };
    let revoke = mayfly_authority::revocation::RevokeRequest {
        serial: request.serial,
        reason_code: ReasonCode::from_code(request.reason_code)?.revocable()?,
        reason: request.reason,
        passive: request.passive,
    };
    state.authority().revoke(&revoke, authorization).await?;
    Ok(Json(StatusResponse {
        status: "ok".into(),
    }))
}
