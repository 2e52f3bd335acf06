//! CSRs arrive from anyone who holds a token: PEM in `/sign`, DER inside it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = mayfly_pki::Csr::from_der(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = mayfly_pki::Csr::from_pem(text);
    }
});
