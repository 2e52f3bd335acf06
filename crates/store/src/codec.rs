//! Conversions between the authority's types and the columns of the portable schema.
//!
//! Kept apart from any one backend so that every backend encodes a certificate the same way and
//! refuses the same inputs: a database written by one must read back identically through another.

use mayfly_authority::store::{CertificateStatus, IssuedCertificate, StoreError, UsedToken};
use time::OffsetDateTime;

use crate::{MAX_JTI_LEN, MAX_PROVISIONER_LEN, MAX_SERIAL_LEN};

/// Refuses keys longer than the schema's `VARCHAR` columns.
///
/// SQLite would store them anyway and MySQL in non-strict mode would silently truncate them (so
/// two distinct `jti`s could collide); checking here makes all backends agree.
pub(crate) fn check_lengths(
    certificate: &IssuedCertificate,
    token: Option<&UsedToken>,
) -> Result<(), StoreError> {
    check_length("serial number", &certificate.serial, MAX_SERIAL_LEN)?;
    check_length(
        "provisioner name",
        &certificate.provisioner,
        MAX_PROVISIONER_LEN,
    )?;
    if let Some(token) = token {
        check_length("token jti", &token.jti, MAX_JTI_LEN)?;
        check_length(
            "token provisioner name",
            &token.provisioner,
            MAX_PROVISIONER_LEN,
        )?;
    }
    Ok(())
}

fn check_length(what: &str, value: &str, max: usize) -> Result<(), StoreError> {
    // VARCHAR(n) counts characters in PostgreSQL and MySQL, not bytes.
    let length = value.chars().count();
    if length > max {
        return Err(StoreError::Backend(format!(
            "{what} is {length} characters long; at most {max} can be stored"
        )));
    }
    Ok(())
}

/// Unix seconds. Sub-second parts are dropped: X.509 times carry whole seconds only, and flooring
/// never makes a token's recorded expiry later than the real one.
pub(crate) fn to_unix(instant: OffsetDateTime) -> i64 {
    instant.unix_timestamp()
}

pub(crate) fn from_unix(
    column: &str,
    serial: &str,
    seconds: i64,
) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp(seconds).map_err(|error| {
        StoreError::Backend(format!(
            "certificate {serial}: column {column} holds {seconds}, not a usable time: {error}"
        ))
    })
}

pub(crate) fn encode_sans(sans: &[String]) -> Result<String, StoreError> {
    serde_json::to_string(sans)
        .map_err(|error| StoreError::Backend(format!("cannot encode the SAN list: {error}")))
}

pub(crate) fn decode_sans(serial: &str, text: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(text).map_err(|error| {
        StoreError::Backend(format!(
            "certificate {serial}: column sans is not a JSON array of strings: {error}"
        ))
    })
}

pub(crate) fn decode_status(serial: &str, text: &str) -> Result<CertificateStatus, StoreError> {
    CertificateStatus::parse(text).ok_or_else(|| {
        StoreError::Backend(format!(
            "certificate {serial}: column status holds unknown status {text:?}"
        ))
    })
}

/// A backend failure with what was being done, for the logs.
pub(crate) fn backend(context: &str, error: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("{context}: {error}"))
}

/// A stored CRLReason code. A value outside 0..=255 means the row was written by something else
/// and is reported, never silently turned into "unspecified".
pub(crate) fn decode_reason(serial: &str, code: Option<i64>) -> Result<u8, StoreError> {
    let code = code.unwrap_or(0);
    u8::try_from(code).map_err(|_| {
        StoreError::Backend(format!(
            "certificate {serial}: stored revocation reason {code} is not a CRLReason"
        ))
    })
}
