//! OpenSSH key revocation lists (PROTOCOL.krl), which sshd's `RevokedKeys` reads: revoked
//! certificates listed by serial number under the CA key that signed them.

use super::key::SshPublicKey;
use super::wire::Writer;

const KRL_MAGIC: u64 = 0x5353_484b_524c_0a00;
const KRL_FORMAT_VERSION: u32 = 1;
const KRL_SECTION_CERTIFICATES: u8 = 1;
const KRL_SECTION_CERT_SERIAL_LIST: u8 = 0x20;

/// Builds a KRL. `version` should grow with every change; `revoked` pairs each CA key with the
/// serials it signed that are revoked.
pub fn build_krl(
    version: u64,
    generated_at: u64,
    comment: &str,
    revoked: &[(&SshPublicKey, Vec<u64>)],
) -> Vec<u8> {
    let mut w = Writer::new();
    w.u64(KRL_MAGIC)
        .u32(KRL_FORMAT_VERSION)
        .u64(version)
        .u64(generated_at)
        .u64(0)
        .string(&[])
        .string(comment.as_bytes());
    for (ca, serials) in revoked {
        let mut serials: Vec<u64> = serials.iter().copied().filter(|&s| s != 0).collect();
        if serials.is_empty() {
            continue;
        }
        serials.sort_unstable();
        serials.dedup();
        let mut list = Writer::new();
        for serial in serials {
            list.u64(serial);
        }
        let mut section = Writer::new();
        section
            .string(ca.blob())
            .string(&[])
            .u8(KRL_SECTION_CERT_SERIAL_LIST)
            .string(&list.into_bytes());
        w.u8(KRL_SECTION_CERTIFICATES).string(&section.into_bytes());
    }
    w.into_bytes()
}
