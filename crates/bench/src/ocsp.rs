//! `mayfly-bench ocsp`: one OCSP request (no nonce, so the responder may answer from its cache)
//! sent N times over keep-alive plain-HTTP connections by C tasks.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use mayfly_pki::issuer::{CertIdHash, IssuerIdentity};

use crate::Outcome;

#[derive(Debug, clap::Args)]
pub struct OcspArgs {
    /// The responder URL, http://host:port/ocsp (the CA's plain-HTTP listener).
    #[arg(long, value_name = "URL")]
    pub url: String,
    /// The issuing CA's certificate (PEM): the intermediate.
    #[arg(long, value_name = "FILE")]
    pub issuer: PathBuf,
    /// The certificate to ask about (PEM; the first certificate of the file).
    #[arg(long, value_name = "FILE")]
    pub cert: PathBuf,
    /// Number of requests.
    #[arg(short = 'n', long = "requests", value_name = "N", default_value_t = 100_000,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub requests: u32,
    /// Requests in flight at once (each task keeps its own keep-alive connection).
    #[arg(short = 'c', long, value_name = "C", default_value_t = 32,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub concurrency: u32,
    /// PID of the mayfly-ca process, to report its CPU time per response (Linux /proc).
    #[arg(long, value_name = "PID")]
    pub pid: Option<u32>,
    /// Print the report as one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// The DER request for `cert` from `issuer`, as `openssl ocsp -no_nonce` sends it.
pub fn request_der(issuer_pem: &[u8], cert_pem: &[u8]) -> anyhow::Result<Vec<u8>> {
    let issuer = mayfly_pki::cert::certificates_from_pem(issuer_pem)?
        .into_iter()
        .next()
        .context("no issuer certificate")?;
    let cert = mayfly_pki::cert::certificates_from_pem(cert_pem)?
        .into_iter()
        .next()
        .context("no certificate")?;
    let serial = mayfly_pki::cert::CertificateInfo::from_der(&cert)?.serial;
    let identity = IssuerIdentity::from_certificate(&issuer)?;
    Ok(mayfly_pki::ocsp::build_request(
        &identity,
        serial.as_be_bytes(),
        CertIdHash::Sha1,
        None,
    ))
}

/// The timed section: `concurrency` tasks send the same request until `n` were sent. A
/// response counts as a success when its status is `successful`.
pub async fn load(url: String, request: Vec<u8>, n: usize, concurrency: usize) -> Outcome {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: HyperClient<_, Full<Bytes>> = HyperClient::builder(TokioExecutor::new())
        .pool_max_idle_per_host(concurrency)
        .build(connector);
    let body = Bytes::from(request);
    let next = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let client = client.clone();
            let next = Arc::clone(&next);
            let body = body.clone();
            let url = url.clone();
            tokio::spawn(async move {
                let mut outcome = Outcome::default();
                while next.fetch_add(1, Ordering::Relaxed) < n {
                    let start = Instant::now();
                    let request = hyper::Request::post(url.as_str())
                        .header(hyper::header::CONTENT_TYPE, "application/ocsp-request")
                        .body(Full::new(body.clone()));
                    let request = match request {
                        Ok(request) => request,
                        Err(e) => {
                            outcome.fail(format!("{url}: {e}"));
                            continue;
                        }
                    };
                    match client.request(request).await {
                        Ok(response) => match response.into_body().collect().await {
                            // OCSPResponse ::= SEQUENCE { ENUMERATED 0 (successful), ... }
                            Ok(collected) => {
                                if successful(&collected.to_bytes()) {
                                    outcome.latencies.push(start.elapsed());
                                } else {
                                    outcome.fail("the responder did not answer successful".into());
                                }
                            }
                            Err(e) => outcome.fail(e.to_string()),
                        },
                        Err(e) => outcome.fail(e.to_string()),
                    }
                }
                outcome
            })
        })
        .collect();
    let mut total = Outcome::default();
    for task in tasks {
        match task.await {
            Ok(outcome) => total.merge(outcome),
            Err(error) => total.fail(format!("a load task failed: {error}")),
        }
    }
    total
}

fn successful(response: &[u8]) -> bool {
    mayfly_pki::ocsp::parse_response(response)
        .is_ok_and(|r| r.status == mayfly_pki::ocsp::ResponseStatus::Successful)
}
