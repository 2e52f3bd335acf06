//! The SSH routes (step-ca's `/ssh/*`): JSON in, a call into the authority's SSH CA, JSON out.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use mayfly_authority::policy::ssh::SshSignOptions;
use mayfly_authority::revocation::ReasonCode;
use mayfly_authority::ssh::render;
use mayfly_proto::StatusResponse;
use mayfly_proto::ssh::{
    SshCheckHostRequest, SshCheckHostResponse, SshConfigRequest, SshConfigResponse, SshHost,
    SshHostsResponse, SshRekeyRequest, SshRenewRequest, SshRootsResponse, SshSignRequest,
    SshSignResponse, SshTemplate,
};

use crate::api::AppState;
use crate::body::JsonBody;
use crate::error::{ApiError, RequestError};
use crate::serve::PeerCertificates;

/// The `/ssh/*` routes, merged into the API router (so they are served under `/1.0/` too).
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/ssh/sign", post(sign))
        .route("/ssh/renew", post(renew))
        .route("/ssh/rekey", post(rekey))
        .route("/ssh/revoke", post(revoke))
        .route("/ssh/roots", get(roots))
        .route("/ssh/federation", get(roots))
        .route("/ssh/config", post(config))
        .route("/ssh/config/{kind}", post(config_of_kind))
        .route("/ssh/check-host", post(check_host))
        .route("/ssh/hosts", get(hosts))
        .route("/ssh/krl", get(krl))
}

fn require_token(ott: &str) -> Result<(), RequestError> {
    if ott.trim().is_empty() {
        return Err(RequestError::TokenMissing);
    }
    Ok(())
}

fn issued(issued: &mayfly_authority::ssh::SshIssued) -> impl IntoResponse + use<> {
    (
        StatusCode::CREATED,
        Json(SshSignResponse {
            crt: issued.certificate.to_base64(),
        }),
    )
}

async fn sign(
    State(state): State<Arc<AppState>>,
    JsonBody(request): JsonBody<SshSignRequest>,
) -> Result<impl IntoResponse, ApiError> {
    if request.public_key.trim().is_empty() {
        return Err(RequestError::FieldEmpty { field: "publicKey" }.into());
    }
    require_token(&request.ott)?;
    let options = SshSignOptions {
        cert_type: request.cert_type,
        key_id: request.key_id,
        principals: request.principals,
        valid_after: request.valid_after,
        valid_before: request.valid_before,
        critical_options: request.critical_options,
    };
    let certificate = state
        .authority()
        .ssh_sign(&request.public_key, &request.ott, &options)
        .await?;
    Ok(issued(&certificate))
}

async fn renew(
    State(state): State<Arc<AppState>>,
    JsonBody(request): JsonBody<SshRenewRequest>,
) -> Result<impl IntoResponse, ApiError> {
    require_token(&request.ott)?;
    let certificate = state.authority().ssh_renew(&request.ott).await?;
    Ok(issued(&certificate))
}

async fn rekey(
    State(state): State<Arc<AppState>>,
    JsonBody(request): JsonBody<SshRekeyRequest>,
) -> Result<impl IntoResponse, ApiError> {
    require_token(&request.ott)?;
    if request.public_key.trim().is_empty() {
        return Err(RequestError::FieldEmpty { field: "publicKey" }.into());
    }
    let certificate = state
        .authority()
        .ssh_rekey(&request.ott, &request.public_key)
        .await?;
    Ok(issued(&certificate))
}

async fn revoke(
    State(state): State<Arc<AppState>>,
    JsonBody(request): JsonBody<mayfly_proto::RevokeRequest>,
) -> Result<Json<StatusResponse>, ApiError> {
    let ott = request.ott.clone().unwrap_or_default();
    require_token(&ott)?;
    let revoke = mayfly_authority::revocation::RevokeRequest {
        serial: request.serial,
        reason_code: ReasonCode::from_code(request.reason_code)?.revocable()?,
        reason: request.reason,
        passive: request.passive,
    };
    state.authority().ssh_revoke(&revoke, &ott).await?;
    Ok(Json(StatusResponse {
        status: "ok".into(),
    }))
}

async fn roots(State(state): State<Arc<AppState>>) -> Result<Json<SshRootsResponse>, ApiError> {
    let authority = state.authority();
    let ssh = authority.ssh()?;
    Ok(Json(SshRootsResponse {
        user_key: vec![STANDARD.encode(ssh.user_public_key().blob())],
        host_key: vec![STANDARD.encode(ssh.host_public_key().blob())],
    }))
}

async fn config(
    State(state): State<Arc<AppState>>,
    JsonBody(request): JsonBody<SshConfigRequest>,
) -> Result<Json<SshConfigResponse>, ApiError> {
    render_config(&state, request)
}

/// step-ca also serves `/ssh/config/{user|host}`.
async fn config_of_kind(
    State(state): State<Arc<AppState>>,
    axum::extract::Path(kind): axum::extract::Path<String>,
    JsonBody(mut request): JsonBody<SshConfigRequest>,
) -> Result<Json<SshConfigResponse>, ApiError> {
    request.kind = kind;
    render_config(&state, request)
}

fn render_config(
    state: &AppState,
    request: SshConfigRequest,
) -> Result<Json<SshConfigResponse>, ApiError> {
    let authority = state.authority();
    let ssh = authority.ssh()?;
    let templates = |snippets: Vec<render::Snippet>| -> Vec<SshTemplate> {
        snippets
            .into_iter()
            .map(|s| SshTemplate {
                name: s.name,
                kind: s.kind.into(),
                comment: s.comment,
                path: s.path,
                content: s.content.into_bytes(),
            })
            .collect()
    };
    let response = match request.kind.to_ascii_lowercase().as_str() {
        "" | "user" => SshConfigResponse {
            user_templates: templates(
                render::user(ssh, &request.data).map_err(RequestError::SshConfigData)?,
            ),
            host_templates: Vec::new(),
        },
        "host" => SshConfigResponse {
            user_templates: Vec::new(),
            host_templates: templates(
                render::host(ssh, &request.data).map_err(RequestError::SshConfigData)?,
            ),
        },
        other => {
            return Err(RequestError::SshConfigTypeInvalid {
                kind: other.to_owned(),
            }
            .into());
        }
    };
    Ok(Json(response))
}

async fn check_host(
    State(state): State<Arc<AppState>>,
    JsonBody(request): JsonBody<SshCheckHostRequest>,
) -> Result<Json<SshCheckHostResponse>, ApiError> {
    if !matches!(request.kind.as_str(), "" | "host") {
        return Err(RequestError::SshCheckHostTypeInvalid { kind: request.kind }.into());
    }
    if request.principal.trim().is_empty() {
        return Err(RequestError::FieldEmpty { field: "principal" }.into());
    }
    let hosts = state.authority().ssh_hosts().await?;
    Ok(Json(SshCheckHostResponse {
        exists: hosts.iter().any(|h| h == request.principal.trim()),
    }))
}

/// The host inventory is not public: like step-ca, only clients with a certificate from this
/// CA (verified in the TLS handshake) may list it.
async fn hosts(
    State(state): State<Arc<AppState>>,
    peer: Option<axum::Extension<PeerCertificates>>,
) -> Result<Json<SshHostsResponse>, ApiError> {
    let has_client_certificate = peer
        .as_ref()
        .and_then(|p| p.chain.as_ref())
        .is_some_and(|chain| !chain.is_empty());
    if !has_client_certificate {
        return Err(RequestError::SshHostsCertificateMissing.into());
    }
    let hosts = state.authority().ssh_hosts().await?;
    Ok(Json(SshHostsResponse {
        hosts: hosts
            .into_iter()
            .map(|hostname| SshHost { hostname })
            .collect(),
    }))
}

/// The OpenSSH KRL of revoked SSH certificates, for sshd's `RevokedKeys`.
pub(crate) async fn krl(State(state): State<Arc<AppState>>) -> Result<impl IntoResponse, ApiError> {
    let krl = state.authority().ssh_krl().await?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/octet-stream")],
        krl,
    ))
}
