//! ACME Renewal Information (RFC 9773): when a client should renew a certificate.
//!
//! The certID is `base64url(AKI keyIdentifier) "." base64url(serial)`. The suggested window
//! starts at two thirds of the lifetime and lasts a sixth of it; once the certificate is
//! revoked the window opens at the revocation, so clients renew at once.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use mayfly_authority::Authority;
use mayfly_authority::store::CertificateStatus;
use mayfly_pki::SerialNumber;

use crate::error::{Error, Result};

/// Longest Retry-After suggested (RFC 9773 4.3 suggests a few hours).
const MAX_RETRY_AFTER: i64 = 6 * 3600;
const MIN_RETRY_AFTER: i64 = 60;

/// A suggested renewal window, in unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RenewalWindow {
    pub start: i64,
    pub end: i64,
    pub retry_after: u64,
}

fn parts(cert_id: &str) -> Result<(Vec<u8>, Vec<u8>)> {
    let malformed = || {
        Error::malformed(format!(
            "certID {cert_id:?} is not base64url(keyIdentifier) \".\" base64url(serial)"
        ))
    };
    let (aki, serial) = cert_id.split_once('.').ok_or_else(malformed)?;
    let aki = B64.decode(aki).map_err(|_| malformed())?;
    let serial = B64.decode(serial).map_err(|_| malformed())?;
    if aki.is_empty() || serial.is_empty() || serial.len() > 21 {
        return Err(malformed());
    }
    Ok((aki, serial))
}

/// The serial a certID names.
pub fn serial_of_cert_id(cert_id: &str) -> Result<SerialNumber> {
    let (_, serial) = parts(cert_id)?;
    Ok(SerialNumber::from_be_bytes(&serial))
}

/// The certID of a DER certificate.
pub fn cert_id(der: &[u8]) -> Result<String> {
    use x509_parser::prelude::*;
    let (_, cert) = X509Certificate::from_der(der)
        .map_err(|e| Error::malformed(format!("certificate: {e}")))?;
    let aki = authority_key_id(&cert)
        .ok_or_else(|| Error::malformed("the certificate has no authority key identifier"))?;
    Ok(format!(
        "{}.{}",
        B64.encode(aki),
        B64.encode(cert.tbs_certificate.raw_serial())
    ))
}

fn authority_key_id(cert: &x509_parser::certificate::X509Certificate<'_>) -> Option<Vec<u8>> {
    use x509_parser::extensions::ParsedExtension;
    cert.extensions()
        .iter()
        .find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(aki) => {
                aki.key_identifier.as_ref().map(|k| k.0.to_vec())
            }
            _ => None,
        })
}

/// The window for the certificate `cert_id` names, which must be one this CA stored.
pub async fn renewal_info(authority: &Authority, cert_id: &str) -> Result<RenewalWindow> {
    use x509_parser::prelude::*;
    let (aki, serial) = parts(cert_id)?;
    let serial = SerialNumber::from_be_bytes(&serial).to_decimal();
    let not_found = || Error::NotFound(format!("certificate {cert_id:?}"));
    let stored = authority
        .store()
        .certificate(&serial)
        .await
        .map_err(|e| Error::Internal(e.to_string()))?
        .ok_or_else(not_found)?;
    let (_, cert) = X509Certificate::from_der(&stored.certificate.der)
        .map_err(|e| Error::Internal(format!("stored certificate {serial}: {e}")))?;
    if authority_key_id(&cert).as_deref() != Some(aki.as_slice()) {
        return Err(not_found());
    }
    let not_before = stored.certificate.not_before.unix_timestamp();
    let not_after = stored.certificate.not_after.unix_timestamp();
    let lifetime = (not_after - not_before).max(1);
    let mut start = not_before + lifetime * 2 / 3;
    let mut end = start + lifetime / 6;
    if stored.status == CertificateStatus::Revoked {
        let revoked_at = stored.revocation.as_ref().map_or_else(
            || authority.clock().now().unix_timestamp(),
            |r| r.revoked_at.unix_timestamp(),
        );
        start = start.min(revoked_at);
        end = end.max(revoked_at + lifetime / 6);
    }
    let retry_after = (lifetime / 10).clamp(MIN_RETRY_AFTER, MAX_RETRY_AFTER) as u64;
    Ok(RenewalWindow {
        start,
        end,
        retry_after,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cert_ids_are_checked_for_form() {
        assert_eq!(serial_of_cert_id("AQID.AIE").unwrap().to_decimal(), "129");
        for bad in ["", "AQID", ".AIE", "AQID.", "!!.AIE", "AQID.!!"] {
            assert!(serial_of_cert_id(bad).is_err(), "{bad:?}");
        }
    }
}
