//! ACME request bodies (flattened JWS, RFC 8555 6.2), their payloads, identifiers and RFC 9773
//! certIDs: everything the ACME routes parse before any signature is trusted.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mayfly_acme::jws::SignedRequest;
use mayfly_acme::model::RequestedIdentifier;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = SignedRequest::parse(data) {
        if let Some(jwk) = &request.protected.jwk {
            let _ = request.verify(jwk);
            let _ = jwk.thumbprint();
        }
        let _ = request.is_post_as_get();
    }
    if let Ok(identifier) = serde_json::from_slice::<RequestedIdentifier>(data) {
        if let Ok(valid) = identifier.validate() {
            let _ = valid.to_san();
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = mayfly_acme::renewal::serial_of_cert_id(text);
    }
});
