//! http-01 answers: whatever bytes the server at a validated name sends back (RFC 8555 8.3).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(body) = mayfly_acme::http01::body(data) {
        assert!(body.len() <= data.len());
    }
});
