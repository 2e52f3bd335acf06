//! The JSON request bodies of the HTTP API.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mayfly_proto::{RevokeRequest, SignRequest};

fuzz_target!(|data: &[u8]| {
    if let Ok(sign) = serde_json::from_slice::<SignRequest>(data) {
        let _ = mayfly_pki::Csr::from_pem(&sign.csr);
        for (field, value) in [("notBefore", &sign.not_before), ("notAfter", &sign.not_after)] {
            if let Some(value) = value {
                let _ = mayfly_authority::policy::TimeSpec::parse(field, value);
            }
        }
    }
    if let Ok(revoke) = serde_json::from_slice::<RevokeRequest>(data) {
        let _ = mayfly_authority::revocation::ReasonCode::from_code(revoke.reason_code);
        let _ = mayfly_pki::SerialNumber::from_decimal(&revoke.serial);
    }
});
