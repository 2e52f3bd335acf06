//! Accepting connections: TLS handshake, then HTTP/1.1 with keep-alive. The verified client
//! certificate chain (if any) is attached to each request as [`PeerCertificates`].

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::response::IntoResponse;
use hyper::rt::{Read, Write};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::connections::{ConnectionState, Connections, Refusal, Slot};
use crate::error::RequestError;
use crate::limits::{self, BodyBudget, Limits};
/// Connections the kernel queues for a listener before `accept`: bursts of new connections
/// (an attacker's, or a fleet renewing at once) wait here rather than retrying their SYN a
/// second later. The kernel caps it at `net.core.somaxconn`.
const LISTEN_BACKLOG: u32 = 4096;

/// Binds a listener on `address` (`host:port`, resolved; the first address that binds wins)
/// with a backlog of [`LISTEN_BACKLOG`].
pub async fn listen(address: &str) -> std::io::Result<TcpListener> {
    let mut last = None;
    for resolved in tokio::net::lookup_host(address).await? {
        let socket = if resolved.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        // As the standard library does: a restarted server binds while old connections linger.
        socket.set_reuseaddr(true)?;
        match socket
            .bind(resolved)
            .and_then(|()| socket.listen(LISTEN_BACKLOG))
        {
            Ok(listener) => return Ok(listener),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{address:?} resolves to no address"),
        )
    }))
}

/// After a shutdown signal, requests in flight get this long to finish before the process
/// exits anyway. Longer than any one request takes; shorter than systemd's stop timeout.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// The client's certificate chain as verified during the handshake (leaf first), and its address.
#[derive(Debug, Clone)]
pub struct PeerCertificates {
    pub chain: Option<Arc<Vec<Vec<u8>>>>,
    pub remote: SocketAddr,
}

/// How long a request's body may take to arrive, as a request extension for the extractors
/// that read bodies.
#[derive(Debug, Clone, Copy)]
pub struct BodyTimeout(pub Duration);

/// A slot for a connection from `remote`: `Ok(None)` when every slot is busy (the connection
/// is then only told so), `Err` when its address holds its share already (it is closed unread).
fn take_slot(connections: &Arc<Connections>, remote: SocketAddr) -> Result<Option<Slot>, ()> {
    match connections.admit(remote.ip()) {
        Ok(slot) => Ok(Some(slot)),
        Err(Refusal::Full) => {
            limits::refused("connections");
            Ok(None)
        }
        Err(Refusal::PerAddress) => {
            limits::refused("connections_per_address");
            tracing::debug!(%remote, "connection refused: its address holds its share");
            Err(())
        }
    }
}

/// `app` with each request marked on its connection's state (so an idle connection can be told
/// from a busy one) and given the connection's peer and body timeout.
fn connection_service(
    app: Router,
    state: Arc<ConnectionState>,
    peer: PeerCertificates,
    body_timeout: BodyTimeout,
    budget: BodyBudget,
) -> impl tower::Service<
    hyper::Request<hyper::body::Incoming>,
    Response = axum::response::Response,
    Error = std::convert::Infallible,
    Future = impl Future<Output = Result<axum::response::Response, std::convert::Infallible>> + Send,
> + Clone {
    tower::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
        let busy = state.request();
        request.extensions_mut().insert(peer.clone());
        request.extensions_mut().insert(body_timeout);
        request.extensions_mut().insert(budget.clone());
        let app = app.clone();
        async move {
            let response = app.oneshot(request.map(axum::body::Body::new)).await;
            drop(busy);
            response
        }
    })
}

/// HTTP/1.1 with the limits on the request head.
fn http1(limits: &Limits) -> hyper::server::conn::http1::Builder {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.read_timeout)
        .max_buf_size(limits.max_header_bytes)
        .keep_alive(true);
    builder
}

/// Answers every request on a connection over the limit with 503, then closes it.
async fn refuse_connection<I>(io: I, limits: &Limits)
where
    I: Read + Write + Unpin + Send + 'static,
{
    let max = limits.max_connections;
    let service = hyper::service::service_fn(move |_request| async move {
        Ok::<_, std::convert::Infallible>(RequestError::ConnectionLimit { max }.into_response())
    });
    let mut builder = http1(limits);
    builder.keep_alive(false);
    let _ = builder.serve_connection(io, service).await;
}

/// Serves HTTP/1.1 on a connection that got `slot` (its TLS handshake done, if any) until it
/// ends, `stop` completes (shutdown: the request in progress is finished first), or its slot
/// goes to a newcomer (it is idle then: it closes at once).
async fn serve_admitted<I>(
    io: I,
    app: Router,
    slot: &Slot,
    peer: PeerCertificates,
    limits: &Limits,
    budget: BodyBudget,
    stop: impl Future<Output = ()>,
) -> Result<(), hyper::Error>
where
    I: Read + Write + Unpin + Send + 'static,
{
    slot.state.handshake_done();
    let body_timeout = BodyTimeout(limits.read_timeout);
    let service = connection_service(app, Arc::clone(&slot.state), peer, body_timeout, budget);
    let connection = http1(limits).serve_connection(io, TowerToHyperService::new(service));
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => result,
        () = stop => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
        () = slot.state.closing() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    }
}

/// Serves `app` over TLS on `listener` until `shutdown` completes, then shuts down gracefully:
/// the listener is closed at once (a load balancer's next connection goes to another instance),
/// idle keep-alive connections are closed, and requests in flight finish and are answered,
/// for at most [`SHUTDOWN_GRACE`]. Request bodies draw on `limits.body_memory`, which the
/// other listeners given a clone of the same `limits` share.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let limits = Arc::new(limits);
    let connections = Connections::new(limits.max_connections, limits.max_connections_per_address);
    let budget = limits.body_memory.clone();
    tokio::pin!(shutdown);
    let (stopping, stop) = tokio::sync::watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        while tasks.try_join_next().is_some() {}
        let (tcp, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(slot) = take_slot(&connections, remote) else {
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let app = app.clone();
        let mut stop = stop.clone();
        let limits = Arc::clone(&limits);
        let budget = budget.clone();
        tasks.spawn(async move {
            let handshake = tokio::time::timeout(limits.handshake_timeout, acceptor.accept(tcp));
            let stream = tokio::select! {
                handshake = handshake => match handshake {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(e)) => {
                        tracing::debug!(%remote, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        limits::refused("handshake_timeout");
                        tracing::debug!(%remote, "TLS handshake timed out");
                        return;
                    }
                },
                () = stopped(&mut stop) => return,
            };
            let Some(slot) = slot else {
                refuse_connection(TokioIo::new(stream), &limits).await;
                return;
            };
            let chain = stream
                .get_ref()
                .1
                .peer_certificates()
                .map(|certs| Arc::new(certs.iter().map(|c| c.to_vec()).collect::<Vec<_>>()));
            let peer = PeerCertificates { chain, remote };
            let result = serve_admitted(
                TokioIo::new(stream),
                app,
                &slot,
                peer,
                &limits,
                budget,
                stopped(&mut stop),
            )
            .await;
            if let Err(e) = result {
                tracing::debug!(%remote, error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    let _ = stopping.send(true);
    let open = tasks.len();
    if open > 0 {
        tracing::info!(connections = open, "waiting for requests in flight");
    }
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            connections = tasks.len(),
            "requests still in flight after {SHUTDOWN_GRACE:?}; closing them"
        );
        tasks.abort_all();
    }
}

/// Completes once shutdown has begun (or the server is gone).
async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopping| *stopping).await;
}

/// Serves `app` over plain HTTP on `listener`, for relying parties fetching CRLs and OCSP
/// responses (and for `/metrics`). Runs until the task is aborted. Request bodies draw on
/// `limits.body_memory`, shared with the TLS listener when `limits` is a clone of its own.
pub async fn serve_plain(listener: TcpListener, app: Router, limits: Limits) {
    let limits = Arc::new(limits);
    let connections = Connections::new(limits.max_connections, limits.max_connections_per_address);
    let budget = limits.body_memory.clone();
    loop {
        let (tcp, remote) = match listener.accept().await {
            Ok(pair) => pair,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = take_slot(&connections, remote) else {
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let limits = Arc::clone(&limits);
        let peer = PeerCertificates {
            chain: None,
            remote,
        };
        let app = app.clone();
        let budget = budget.clone();
        tokio::spawn(async move {
            let Some(slot) = slot else {
                refuse_connection(TokioIo::new(tcp), &limits).await;
                return;
            };
            // The plain listener serves until the task is aborted: no shutdown to wait for.
            let result = serve_admitted(
                TokioIo::new(tcp),
                app,
                &slot,
                peer,
                &limits,
                budget,
                std::future::pending(),
            )
            .await;
            if let Err(e) = result {
                tracing::debug!(%remote, error = %e, "connection ended with an error");
            }
        });
    }
}
