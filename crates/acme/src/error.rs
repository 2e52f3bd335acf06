//! The one error type of `mayfly-acme`, with the RFC 8555 problem type each error is sent as.
//!
//! Problem types are protocol, so they are named here; the server only renders them and picks
//! the HTTP status from [`Error::kind`].

use crate::store::AcmeStoreError;

/// RFC 8555 6.7 error types (and RFC 9773's `alreadyReplaced`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProblemType {
    AccountDoesNotExist,
    AlreadyReplaced,
    AlreadyRevoked,
    BadCsr,
    BadNonce,
    BadPublicKey,
    BadRevocationReason,
    BadSignatureAlgorithm,
    Connection,
    Dns,
    ExternalAccountRequired,
    IncorrectResponse,
    InvalidContact,
    Malformed,
    OrderNotReady,
    RateLimited,
    RejectedIdentifier,
    ServerInternal,
    Tls,
    Unauthorized,
    UnsupportedContact,
    UnsupportedIdentifier,
}

impl ProblemType {
    /// The name after `urn:ietf:params:acme:error:`.
    pub fn name(self) -> &'static str {
        match self {
            ProblemType::AccountDoesNotExist => "accountDoesNotExist",
            ProblemType::AlreadyReplaced => "alreadyReplaced",
            ProblemType::AlreadyRevoked => "alreadyRevoked",
            ProblemType::BadCsr => "badCSR",
            ProblemType::BadNonce => "badNonce",
            ProblemType::BadPublicKey => "badPublicKey",
            ProblemType::BadRevocationReason => "badRevocationReason",
            ProblemType::BadSignatureAlgorithm => "badSignatureAlgorithm",
            ProblemType::Connection => "connection",
            ProblemType::Dns => "dns",
            ProblemType::ExternalAccountRequired => "externalAccountRequired",
            ProblemType::IncorrectResponse => "incorrectResponse",
            ProblemType::InvalidContact => "invalidContact",
            ProblemType::Malformed => "malformed",
            ProblemType::OrderNotReady => "orderNotReady",
            ProblemType::RateLimited => "rateLimited",
            ProblemType::RejectedIdentifier => "rejectedIdentifier",
            ProblemType::ServerInternal => "serverInternal",
            ProblemType::Tls => "tls",
            ProblemType::Unauthorized => "unauthorized",
            ProblemType::UnsupportedContact => "unsupportedContact",
            ProblemType::UnsupportedIdentifier => "unsupportedIdentifier",
        }
    }

    /// The full URN of the `type` member of a problem document.
    pub fn urn(self) -> String {
        format!("urn:ietf:params:acme:error:{}", self.name())
    }
}

/// Coarse category of an [`Error`]; the server turns it into an HTTP status in one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// 400.
    BadRequest,
    /// 401: the request's signature or account does not authenticate it.
    Unauthorized,
    /// 403: authenticated, but not allowed (or not yet: `orderNotReady`).
    Forbidden,
    /// 404.
    NotFound,
    /// 405: GET on a POST-only resource.
    MethodNotAllowed,
    /// 409: the key belongs to another account.
    Conflict,
    /// 415: the body is not `application/jose+json`.
    UnsupportedMediaType,
    /// 429, with a Retry-After.
    RateLimited,
    /// 500: ours, not for clients' eyes.
    Internal,
}

/// Everything that can go wrong in an ACME request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A refusal with its RFC 8555 problem type and a detail for the client.
    #[error("{detail}")]
    Problem {
        problem: ProblemType,
        detail: String,
    },
    #[error("{0} does not exist")]
    NotFound(String),
    #[error("{0} accepts only POST")]
    MethodNotAllowed(String),
    #[error("content type {found:?} is not application/jose+json")]
    ContentType { found: String },
    /// keyChange to a key that another account uses (RFC 8555 7.3.5); `location` is that
    /// account's URL.
    #[error("the new key is already the key of another account")]
    KeyInUse { location: String },
    #[error("{detail}")]
    RateLimited {
        detail: String,
        retry_after_seconds: u64,
    },
    #[error("storage: {0}")]
    Store(#[source] AcmeStoreError),
    #[error("{0}")]
    Authority(#[source] mayfly_authority::Error),
    #[error("{0}")]
    Internal(String),
}

impl Error {
    pub fn problem(problem: ProblemType, detail: impl Into<String>) -> Self {
        Error::Problem {
            problem,
            detail: detail.into(),
        }
    }

    pub fn malformed(detail: impl Into<String>) -> Self {
        Self::problem(ProblemType::Malformed, detail)
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::problem(ProblemType::Unauthorized, detail)
    }

    /// The problem type the client sees.
    pub fn problem_type(&self) -> ProblemType {
        match self {
            Error::Problem { problem, .. } => *problem,
            Error::NotFound(_) | Error::MethodNotAllowed(_) | Error::ContentType { .. } => {
                ProblemType::Malformed
            }
            Error::KeyInUse { .. } => ProblemType::Malformed,
            Error::RateLimited { .. } => ProblemType::RateLimited,
            Error::Authority(e) if e.refused_by_name_policy() => ProblemType::RejectedIdentifier,
            Error::Authority(e) => match e.kind() {
                mayfly_authority::ErrorKind::BadRequest => ProblemType::BadCsr,
                mayfly_authority::ErrorKind::Internal => ProblemType::ServerInternal,
                _ => ProblemType::Unauthorized,
            },
            Error::Store(_) | Error::Internal(_) => ProblemType::ServerInternal,
        }
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Problem { problem, .. } => match problem {
                ProblemType::Unauthorized => ErrorKind::Forbidden,
                ProblemType::OrderNotReady => ErrorKind::Forbidden,
                ProblemType::ServerInternal => ErrorKind::Internal,
                ProblemType::RateLimited => ErrorKind::RateLimited,
                ProblemType::AlreadyReplaced => ErrorKind::Conflict,
                _ => ErrorKind::BadRequest,
            },
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::MethodNotAllowed(_) => ErrorKind::MethodNotAllowed,
            Error::ContentType { .. } => ErrorKind::UnsupportedMediaType,
            Error::KeyInUse { .. } => ErrorKind::Conflict,
            Error::RateLimited { .. } => ErrorKind::RateLimited,
            // As a `rejectedIdentifier` problem at new-order: 400, like step-ca.
            Error::Authority(e) if e.refused_by_name_policy() => ErrorKind::BadRequest,
            Error::Authority(e) => match e.kind() {
                mayfly_authority::ErrorKind::BadRequest => ErrorKind::BadRequest,
                mayfly_authority::ErrorKind::NotFound => ErrorKind::NotFound,
                mayfly_authority::ErrorKind::Internal
                | mayfly_authority::ErrorKind::NotImplemented => ErrorKind::Internal,
                _ => ErrorKind::Forbidden,
            },
            Error::Store(_) | Error::Internal(_) => ErrorKind::Internal,
        }
    }
}

impl From<AcmeStoreError> for Error {
    fn from(e: AcmeStoreError) -> Self {
        Error::Store(e)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
