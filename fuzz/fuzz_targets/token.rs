//! One-time tokens and x5c renewal tokens: compact JWS from the network.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mayfly_pki::jose::jwk::Jwk;
use mayfly_pki::jose::jws::Jws;

/// A P-256 public key (step's test vector `p256.pub.json`), to run signature checks against.
const KEY: &str = r#"{"use":"sig","kty":"EC","kid":"V93A-Yh7Bhw1W2E0igFciviJzX4PXPswoVgriehm9Co","crv":"P-256","alg":"ES256","x":"JtPSvIKayHsCHobDnNWtOdoroh-MDwKQSYMW6Mo4cfU","y":"tP7xR5rpu6azzZsozdmzouyVByuTUDYSSAELTOAtu7g"}"#;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(jws) = Jws::parse(text) else {
        return;
    };
    let _ = jws.header_json();
    let _ = jws.x5c();
    if let Ok(key) = Jwk::from_json(KEY.as_bytes()) {
        let _ = jws.verify(&key);
    }
    let now = time::OffsetDateTime::from_unix_timestamp(1_800_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let _ = mayfly_authority::credential::renewal::verify_renewal_token(
        text,
        &["https://ca.internal/1.0/renew".to_string()],
        now,
    );
});
