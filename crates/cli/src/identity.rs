//! A certificate and its key, as a command is about to authenticate with them (mutual TLS, or a
//! token signed by the key): checked here first, so that a wrong file is named as such instead
//! of surfacing as a TLS failure or a refusal from the CA.

use std::path::Path;

use anyhow::{Context, bail};
use time::OffsetDateTime;

/// Fails unless `key` is the key of the first certificate of `chain` and the chain reaches one
/// of `roots` (the CA's). Validity is judged at the leaf's expiry when that is past, so an
/// expired certificate is still recognised as this CA's (renewal after expiry is the CA's
/// decision).
pub fn check(
    crt_file: &Path,
    chain: &[Vec<u8>],
    key_file: &Path,
    key: &mayfly_pki::PrivateKey,
    roots: &[Vec<u8>],
) -> anyhow::Result<()> {
    let leaf = chain
        .first()
        .with_context(|| format!("{}: no certificate", crt_file.display()))?;
    let certified = mayfly_pki::cert::subject_public_key_info(leaf)
        .with_context(|| crt_file.display().to_string())?;
    if certified != key.public_key_spki_der()? {
        bail!(
            "{} and {} do not match: the key is not the certificate's",
            crt_file.display(),
            key_file.display()
        );
    }
    let expires =
        mayfly_pki::cert::not_after(leaf).with_context(|| crt_file.display().to_string())?;
    let at = OffsetDateTime::now_utc().min(expires);
    if mayfly_pki::verify::verify_chain(chain, roots, at).is_err() {
        bail!(
            "{} was not issued by this CA: it does not chain to the CA's root",
            crt_file.display()
        );
    }
    Ok(())
}
