//! `/metrics`: the Prometheus text exposition, served on a listener of its own
//! (`metricsAddress` in ca.json) so that it can be bound to an internal interface and is never
//! reachable through the API's port. Without `metricsAddress` no recorder is installed and every
//! metric call in the process is a no-op.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;

use crate::limits::Limits;

/// Histogram buckets, in seconds: from a cached OCSP answer to a slow database.
const BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// How often histograms are compacted between scrapes, so memory stays flat when nobody scrapes.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The content type of the text exposition format.
const EXPOSITION: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Whether a recorder is installed: without one, callers skip building label values at all.
static ENABLED: AtomicBool = AtomicBool::new(false);

/// Whether metrics are being recorded in this process.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The process's Prometheus recorder, installed on first use (it is global to the process; a
/// reload or a second server in the same process shares it).
pub fn recorder() -> anyhow::Result<PrometheusHandle> {
    static HANDLE: Mutex<Option<PrometheusHandle>> = Mutex::new(None);
    let mut slot = match HANDLE.lock() {
        Ok(slot) => slot,
        Err(poisoned) => poisoned.into_inner(),
    };
    if let Some(handle) = slot.as_ref() {
        return Ok(handle.clone());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets(BUCKETS)
        .context("metrics: histogram buckets")?
        .install_recorder()
        .context("metrics: installing the recorder")?;
    describe();
    metrics::gauge!(
        "mayfly_build_info",
        "version" => env!("CARGO_PKG_VERSION"),
    )
    .set(1.0);
    *slot = Some(handle.clone());
    ENABLED.store(true, Ordering::Relaxed);
    Ok(handle)
}

/// The help text of every metric the CA records.
fn describe() {
    use mayfly_authority::telemetry as t;
    metrics::describe_gauge!(
        "mayfly_build_info",
        "The mayfly-ca version running (always 1)."
    );
    metrics::describe_counter!(
        t::CERTIFICATES,
        "Certificate requests by operation (sign, renew, rekey, revoke, acme, ssh_*), provisioner and outcome (success, refused, error)."
    );
    metrics::describe_counter!(
        t::TOKEN_REJECTIONS,
        "One-time and renewal tokens refused, by reason."
    );
    metrics::describe_counter!(t::CRLS_GENERATED, "CRLs signed, by scope (full, delta).");
    metrics::describe_histogram!(
        t::CRL_GENERATION_SECONDS,
        metrics::Unit::Seconds,
        "Time to make, sign and store a CRL, by scope."
    );
    metrics::describe_counter!(
        t::CRL_REQUESTS,
        "CRL requests by scope, and whether the copy in memory was current (hit) or not (miss)."
    );
    metrics::describe_counter!(
        t::OCSP_RESPONSES,
        "OCSP answers by source: hit (pre-signed, cached), signed, error."
    );
    metrics::describe_histogram!(
        crate::observe::HTTP_REQUEST_SECONDS,
        metrics::Unit::Seconds,
        "HTTP request latency by route, method and status."
    );
    metrics::describe_histogram!(
        mayfly_store::metered::STORE_SECONDS,
        metrics::Unit::Seconds,
        "Latency of certificate store calls, by operation."
    );
    metrics::describe_counter!(
        "mayfly_acme_orders_total",
        "ACME orders entering a state: pending (created), processing (finalized), valid, invalid."
    );
    metrics::describe_counter!(
        "mayfly_acme_challenges_total",
        "ACME challenge validations by outcome (valid, invalid)."
    );
    metrics::describe_counter!(
        crate::limits::LIMITED,
        "Requests and connections refused by a resource limit, by limit."
    );
}

/// Serves `/metrics` from `handle` on `listener` until the task is aborted.
pub async fn serve(listener: TcpListener, handle: PrometheusHandle, limits: Limits) {
    let upkeep = {
        let handle = handle.clone();
        async move {
            loop {
                tokio::time::sleep(UPKEEP_INTERVAL).await;
                handle.run_upkeep();
            }
        }
    };
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let handle = handle.clone();
            async move { ([(header::CONTENT_TYPE, EXPOSITION)], handle.render()).into_response() }
        }),
    );
    tokio::select! {
        () = upkeep => {}
        () = crate::serve::serve_plain(listener, app, limits) => {}
    }
}
