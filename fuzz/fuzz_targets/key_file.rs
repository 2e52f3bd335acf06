//! Key files and encrypted provisioner keys: read from disk and from ca.json, possibly written by
//! other tools. The password is fixed; what varies is the container.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = mayfly_pki::keyfile::decode_private_key_pem(data, Some(b"password"));
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = mayfly_pki::jose::jwe::decrypt_pbes2(text, b"password");
    }
});
