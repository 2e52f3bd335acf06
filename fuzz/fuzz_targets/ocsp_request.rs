//! OCSP requests: DER from anyone, over plain HTTP.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = mayfly_pki::ocsp::OcspRequest::from_der(data) {
        assert!(!request.cert_ids.is_empty());
        assert!(request.cert_ids.len() <= mayfly_pki::ocsp::MAX_REQUESTS);
    }
});
