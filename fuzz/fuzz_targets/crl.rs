//! CRLs, as `mayfly ca crl` and `certificate verify --verify-crl` read them: the certificate
//! fields a CRL is matched against come from the input too.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let now = time::OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let _ = mayfly_pki::verify::crl_status(data, data, data, now);
    let _ = mayfly_pki::verify::revocation_urls(data);
    let _ = mayfly_pki::issuer::IssuerIdentity::from_certificate(data);
});
