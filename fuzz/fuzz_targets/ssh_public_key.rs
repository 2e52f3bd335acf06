//! SSH public keys and certificates: sent to `/ssh/sign`, `/ssh/renew` and `/ssh/rekey`, and read
//! by `mayfly ssh inspect` and the OpenSSH private key reader.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mayfly_pki::ssh::{SshCertificate, SshPublicKey};

fuzz_target!(|data: &[u8]| {
    let _ = SshPublicKey::from_blob(data);
    let _ = SshCertificate::from_blob(data);
    let _ = mayfly_pki::ssh::keyfile::decode_openssh_private_key(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = SshPublicKey::parse_line(text);
        let _ = SshCertificate::parse_line(text);
    }
});
