//! OCSP responses, as `mayfly certificate verify --verify-ocsp` reads them from a responder.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = mayfly_pki::ocsp::parse_response(data);
});
