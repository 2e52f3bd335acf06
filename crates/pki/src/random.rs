//! Random bytes from the system CSPRNG (through aws-lc), for secrets and identifiers.

use aws_lc_rs::rand::{SecureRandom, SystemRandom};

use crate::error::{Error, Result};

/// `len` bytes from the system CSPRNG.
pub fn random_bytes(len: usize) -> Result<Vec<u8>> {
    let mut out = vec![0u8; len];
    SystemRandom::new()
        .fill(&mut out)
        .map_err(|_| Error::Crypto("system random number generator"))?;
    Ok(out)
}

/// `len` random bytes as lower-case hex (2 × `len` characters).
pub fn random_hex(len: usize) -> Result<String> {
    random_bytes(len).map(hex::encode)
}
