//! The ACME routes (RFC 8555) at `/acme/{provisioner}/…` and `/2.0/acme/{provisioner}/…`.
//!
//! One generic handler serves every resource of the table [`ROUTES`]: it only translates. The
//! request's URL, content type and body go to `mayfly-acme`, whose [`Reply`] becomes the
//! response here, or whose [`Error`] becomes a problem document in [`crate::error`]. Every
//! answer to a signed request (a POST) carries a fresh `Replay-Nonce` and a `Link` to the
//! directory.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, on};
use mayfly_acme::{Acme, Error, Reply, ReplyBody, Request};
use mayfly_authority::Authority;

use crate::api::AppState;
use crate::error::AcmeProblem;
use crate::serve::PeerCertificates;

const PREFIXES: &[&str] = &["/acme", "/2.0/acme"];

/// The ACME resources (RFC 8555 7.1, RFC 9773 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resource {
    Directory,
    NewNonce,
    NewAccount,
    NewOrder,
    RevokeCert,
    KeyChange,
    Account,
    AccountOrders,
    Order,
    Finalize,
    Authorization,
    Challenge,
    Certificate,
    RenewalInfo,
}

/// Where each resource is under `{prefix}/{provisioner}/`. Path parameters are named `id`
/// (whatever the resource identifies by) and `index`.
const ROUTES: &[(&str, Resource)] = &[
    ("directory", Resource::Directory),
    ("new-nonce", Resource::NewNonce),
    ("new-account", Resource::NewAccount),
    ("new-order", Resource::NewOrder),
    ("revoke-cert", Resource::RevokeCert),
    ("key-change", Resource::KeyChange),
    ("account/{id}", Resource::Account),
    ("account/{id}/orders", Resource::AccountOrders),
    ("order/{id}", Resource::Order),
    ("order/{id}/finalize", Resource::Finalize),
    ("authz/{id}", Resource::Authorization),
    ("challenge/{id}/{index}", Resource::Challenge),
    ("certificate/{id}", Resource::Certificate),
    ("renewal-info/{id}", Resource::RenewalInfo),
];

impl Resource {
    /// The methods it answers: the directory, nonces and renewal information are fetched
    /// (RFC 8555 7.1.1, 7.2; RFC 9773 4), everything else is a signed POST (6.3).
    fn methods(self) -> MethodFilter {
        match self {
            Resource::Directory | Resource::RenewalInfo => MethodFilter::GET,
            Resource::NewNonce => MethodFilter::GET.or(MethodFilter::HEAD),
            _ => MethodFilter::POST,
        }
    }

    fn signed(self) -> bool {
        !matches!(
            self,
            Resource::Directory | Resource::NewNonce | Resource::RenewalInfo
        )
    }
}

/// The ACME routes, under both prefixes.
pub fn router() -> Router<Arc<AppState>> {
    let mut router = Router::new();
    for prefix in PREFIXES {
        for &(path, resource) in ROUTES {
            router = router.route(
                &format!("{prefix}/{{provisioner}}/{path}"),
                on(
                    resource.methods(),
                    move |method: Method,
                          Path(params): Path<HashMap<String, String>>,
                          context: Context,
                          body: Bytes| {
                        handle(resource, method, params, context, body)
                    },
                ),
            );
        }
    }
    router
}

/// The one ACME handler.
async fn handle(
    resource: Resource,
    method: Method,
    params: HashMap<String, String>,
    context: Context,
    body: Bytes,
) -> Response {
    let param = |name: &str| params.get(name).map_or("", String::as_str);
    let provisioner = param("provisioner");
    let id = param("id");
    let (acme, authority) = (&context.acme, context.authority.as_ref());
    let req = context.request(&body);
    let result = match resource {
        Resource::NewNonce => {
            // RFC 8555 7.2: 204 to GET, 200 to HEAD.
            let status = if method == Method::HEAD {
                StatusCode::OK
            } else {
                StatusCode::NO_CONTENT
            };
            return new_nonce(provisioner, &context, status).await;
        }
        Resource::Directory => acme.directory(authority, provisioner, &context.base_url),
        Resource::RenewalInfo => acme.renewal_info(authority, provisioner, id).await,
        Resource::NewAccount => acme.new_account(authority, provisioner, &req).await,
        Resource::NewOrder => acme.new_order(authority, provisioner, &req).await,
        Resource::RevokeCert => acme.revoke(authority, provisioner, &req).await,
        Resource::KeyChange => acme.key_change(authority, &req).await,
        Resource::Account => acme.account(authority, &req, id).await,
        Resource::AccountOrders => acme.account_orders(authority, &req, id).await,
        Resource::Order => acme.order(authority, &req, id).await,
        Resource::Finalize => acme.finalize(authority, provisioner, &req, id).await,
        Resource::Authorization => acme.authorization(authority, &req, id).await,
        Resource::Challenge => {
            let index = param("index");
            match index.parse::<usize>() {
                Ok(index) => {
                    acme.challenge(authority, provisioner, &req, id, index)
                        .await
                }
                Err(_) => Err(Error::NotFound(format!("challenge {index:?}"))),
            }
        }
        Resource::Certificate => acme.certificate(authority, &req, id).await,
    };
    if resource.signed() {
        context.respond(result).await
    } else {
        match result {
            Ok(reply) => render(reply),
            Err(error) => AcmeProblem(error).into_response(),
        }
    }
}

/// What every ACME handler works from, extracted from the request.
struct Context {
    authority: Arc<Authority>,
    acme: Acme,
    base_url: String,
    url: String,
    content_type: Option<String>,
    /// The client's address, which the per-address limits count against.
    client: Option<IpAddr>,
}

impl FromRequestParts<Arc<AppState>> for Context {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let client = parts
            .extensions
            .get::<PeerCertificates>()
            .map(|peer| peer.remote.ip());
        Context::new(state, &parts.headers, &parts.uri, client).map_err(IntoResponse::into_response)
    }
}

impl Context {
    fn new(
        state: &AppState,
        headers: &HeaderMap,
        uri: &Uri,
        client: Option<IpAddr>,
    ) -> Result<Self, AcmeProblem> {
        let authority = state.authority();
        let acme = state
            .acme()
            .cloned()
            .ok_or_else(|| AcmeProblem(Error::NotFound("ACME".into())))?;
        let requested = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| uri.authority().map(|a| a.as_str()));
        let host = url_host(requested, authority.dns_names(), state.https_port());
        let path = uri.path();
        let prefix = PREFIXES
            .iter()
            .rev()
            .find(|p| path.starts_with(&format!("{p}/")))
            .copied()
            .unwrap_or("/acme");
        // The provisioner segment as sent (still percent-encoded), so URLs round-trip.
        let segment = path[prefix.len() + 1..].split('/').next().unwrap_or("");
        let base_url = format!("https://{host}{prefix}/{segment}");
        Ok(Context {
            authority,
            acme,
            base_url,
            url: format!("https://{host}{path}"),
            content_type: headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            client,
        })
    }

    fn request<'a>(&'a self, body: &'a [u8]) -> Request<'a> {
        Request {
            base_url: &self.base_url,
            url: &self.url,
            content_type: self.content_type.as_deref(),
            body,
            client: self.client,
        }
    }

    /// A fresh nonce for the response; none when the client holds as many unused ones as it
    /// may (RFC 8555 6.5 asks for one in error responses only as a SHOULD).
    async fn nonce(&self) -> Option<HeaderValue> {
        match self.acme.new_nonce(&self.authority, self.client).await {
            Ok(nonce) => HeaderValue::from_str(&nonce).ok(),
            Err(Error::RateLimited { .. }) => None,
            Err(e) => {
                tracing::error!(error = %e, "creating a nonce failed");
                None
            }
        }
    }

    async fn respond(&self, result: Result<Reply, Error>) -> Response {
        let nonce = self.nonce().await;
        let index =
            HeaderValue::from_str(&format!("<{}/directory>;rel=\"index\"", self.base_url)).ok();
        let mut response = match result {
            Ok(reply) => render(reply),
            Err(error) => AcmeProblem(error).into_response(),
        };
        let headers = response.headers_mut();
        if let Some(nonce) = nonce {
            headers.insert("replay-nonce", nonce);
        }
        if let Some(index) = index {
            headers.append(header::LINK, index);
        }
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

/// The `host[:port]` of every URL an ACME answer carries: the one the client asked for when its
/// host is one of the CA's names (so a client behind a load balancer gets its own port back),
/// else the CA's first name on its own port. A `Host` header is the client's to choose: taken
/// as it came, it would let anyone make the directory point elsewhere.
fn url_host(requested: Option<&str>, dns_names: &[String], port: u16) -> String {
    let known = |name: &str| dns_names.iter().any(|n| n.eq_ignore_ascii_case(name));
    if let Some(requested) = requested {
        let (name, port_text) = match requested.strip_prefix('[') {
            Some(rest) => match rest.split_once(']') {
                Some((name, tail)) => (name, tail.strip_prefix(':')),
                None => ("", None),
            },
            None => match requested.rsplit_once(':') {
                Some((name, port)) => (name, Some(port)),
                None => (requested, None),
            },
        };
        let port_ok = port_text.is_none_or(|p| !p.is_empty() && p.parse::<u16>().is_ok());
        if !name.is_empty() && port_ok && known(name) {
            return requested.to_owned();
        }
    }
    let name = dns_names.first().map_or("localhost", String::as_str);
    let name = if name.contains(':') {
        format!("[{name}]")
    } else {
        name.to_owned()
    };
    if port == 443 {
        name
    } else {
        format!("{name}:{port}")
    }
}

fn render(reply: Reply) -> Response {
    let status = if reply.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut response = match reply.body {
        ReplyBody::Json(value) => (status, axum::Json(value)).into_response(),
        ReplyBody::PemChain(pem) => (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/pem-certificate-chain"),
            )],
            pem,
        )
            .into_response(),
        ReplyBody::Empty => status.into_response(),
    };
    let headers = response.headers_mut();
    if let Some(location) = reply.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
        headers.insert(header::LOCATION, location);
    }
    for link in reply.links {
        if let Ok(value) = HeaderValue::from_str(&link) {
            headers.append(header::LINK, value);
        }
    }
    if let Some(seconds) = reply.retry_after {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// `newNonce`: rate-limited per client address, and refused (429) while the address holds as
/// many unused nonces as it may.
async fn new_nonce(provisioner: &str, context: &Context, status: StatusCode) -> Response {
    if let Err(e) = mayfly_acme::service::acme_provisioner(&context.authority, provisioner) {
        return AcmeProblem(e).into_response();
    }
    let nonce = match context.acme.nonce_request(context.client) {
        Ok(()) => {
            context
                .acme
                .new_nonce(&context.authority, context.client)
                .await
        }
        Err(refused) => Err(refused),
    };
    let nonce = match nonce {
        Ok(nonce) => nonce,
        Err(e) => return AcmeProblem(e).into_response(),
    };
    let mut response = status.into_response();
    if let Ok(nonce) = HeaderValue::from_str(&nonce) {
        response.headers_mut().insert("replay-nonce", nonce);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::url_host;

    #[test]
    fn urls_name_the_ca_whatever_host_a_request_claims() {
        let names = ["ca.internal".to_owned(), "::1".to_owned()];
        let host = |requested: Option<&str>| url_host(requested, &names, 9000);
        assert_eq!(host(Some("ca.internal:9000")), "ca.internal:9000");
        // Behind a load balancer the client's port is the balancer's.
        assert_eq!(host(Some("CA.internal")), "CA.internal");
        assert_eq!(host(Some("[::1]:8443")), "[::1]:8443");
        for attack in [
            Some("evil.example"),
            Some("evil.example:9000"),
            Some("ca.internal.evil.example"),
            Some("ca.internal:9000/evil"),
            Some("ca.internal:"),
            Some("ca.internal:99999"),
            Some("[::2]:9000"),
            Some("[::1"),
            Some(""),
            None,
        ] {
            assert_eq!(host(attack), "ca.internal:9000", "{attack:?}");
        }
        assert_eq!(url_host(None, &names, 443), "ca.internal");
        assert_eq!(url_host(None, &["::1".to_owned()], 9000), "[::1]:9000");
    }
}
