//! What the authority counts for `/metrics`. Recorded through the `metrics` facade: the server
//! installs the Prometheus recorder; elsewhere (tests, the CLI) every call is a no-op.
//!
//! Label values are a small fixed set (operations, outcomes, reasons) plus provisioner names,
//! which the operator chooses, so no client can grow the number of series.

use std::time::Duration;

use crate::error::{Error, ErrorKind};

/// Certificates asked for, by operation, provisioner and outcome.
pub const CERTIFICATES: &str = "mayfly_certificates_total";
/// One-time and renewal tokens refused, by reason.
pub const TOKEN_REJECTIONS: &str = "mayfly_token_rejections_total";
/// CRLs signed, by scope (`full`, `delta`).
pub const CRLS_GENERATED: &str = "mayfly_crl_generated_total";
/// How long making and storing a CRL took, by scope.
pub const CRL_GENERATION_SECONDS: &str = "mayfly_crl_generation_seconds";
/// CRL requests, by whether this instance's copy was current (`hit`) or had to be made or
/// fetched (`miss`).
pub const CRL_REQUESTS: &str = "mayfly_crl_requests_total";
/// OCSP answers, by how they were made: `hit` (cached), `signed`, or `error`.
pub const OCSP_RESPONSES: &str = "mayfly_ocsp_responses_total";

/// What a client asked the authority to do to a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Sign,
    Renew,
    Rekey,
    Revoke,
    Acme,
    SshSign,
    SshRenew,
    SshRekey,
    SshRevoke,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Sign => "sign",
            Operation::Renew => "renew",
            Operation::Rekey => "rekey",
            Operation::Revoke => "revoke",
            Operation::Acme => "acme",
            Operation::SshSign => "ssh_sign",
            Operation::SshRenew => "ssh_renew",
            Operation::SshRekey => "ssh_rekey",
            Operation::SshRevoke => "ssh_revoke",
        }
    }
}

/// One request to the authority, counted when it ends with the provisioner it turned out to be
/// for (empty while no credential named one).
#[derive(Debug)]
pub struct Attempt {
    operation: Operation,
    provisioner: String,
}

impl Attempt {
    pub fn new(operation: Operation) -> Attempt {
        Attempt {
            operation,
            provisioner: String::new(),
        }
    }

    /// The provisioner the request is for, once a credential named it.
    pub fn provisioner(&mut self, name: &str) {
        name.clone_into(&mut self.provisioner);
    }

    /// Counts the outcome, and the token's rejection if that is why it failed.
    pub fn finish<T>(self, outcome: &Result<T, Error>) {
        let label = match outcome {
            Ok(_) => "success",
            Err(error) if error.kind() == ErrorKind::Internal => "error",
            Err(_) => "refused",
        };
        metrics::counter!(
            CERTIFICATES,
            "operation" => self.operation.as_str(),
            "provisioner" => self.provisioner,
            "outcome" => label,
        )
        .increment(1);
        if let Err(error) = outcome {
            token_rejected(error);
        }
    }
}

/// Counts `error` as a token rejection when it is one.
pub fn token_rejected(error: &Error) {
    if let Some(reason) = error.token_rejection() {
        metrics::counter!(TOKEN_REJECTIONS, "reason" => reason).increment(1);
    }
}

/// A CRL was made for `scope` in `took`.
pub fn crl_generated(scope: &'static str, took: Duration) {
    metrics::counter!(CRLS_GENERATED, "scope" => scope).increment(1);
    metrics::histogram!(CRL_GENERATION_SECONDS, "scope" => scope).record(took.as_secs_f64());
}

/// A CRL of `scope` was asked for; `hit` when the copy in memory was current.
pub fn crl_requested(scope: &'static str, hit: bool) {
    let cache = if hit { "hit" } else { "miss" };
    metrics::counter!(CRL_REQUESTS, "scope" => scope, "cache" => cache).increment(1);
}

/// An OCSP answer left, made as `how` (`hit`, `signed`, `error`).
pub fn ocsp_answered(how: &'static str) {
    metrics::counter!(OCSP_RESPONSES, "source" => how).increment(1);
}
