//! `mayfly ca root-crl`: sign the root's CRL offline, with the root key, as an offline root's
//! CRL is made. The intermediate `ca init` creates points at it (`/1.0/root.crl`), and mayfly-ca
//! serves the file as it is, so re-signing it before it expires (or to revoke an intermediate)
//! needs no restart.
//!
//! The entries of the CRL already there are kept: the file is the root CRL's only record.

use std::path::PathBuf;

use anyhow::Context;
use mayfly_authority::revocation::ReasonCode;
use mayfly_pki::crl::CrlEntry;
use x509_parser::prelude::FromDer;
use x509_parser::revocation_list::CertificateRevocationList;

use crate::output::write_stdout;

#[derive(Debug, clap::Args)]
pub struct RootCrlArgs {
    /// The root certificate [default: $MAYFLY_PATH/certs/root_ca.crt].
    #[arg(long, value_name = "FILE")]
    root: Option<PathBuf>,
    /// The root's private key [default: $MAYFLY_PATH/secrets/root_ca_key].
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
    /// The file holding the password of the root key; asked at a terminal otherwise.
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
    /// The root CRL: its entries are kept, and the new CRL replaces it (DER)
    /// [default: $MAYFLY_PATH/certs/root_ca.crl].
    #[arg(long, value_name = "FILE")]
    crl: Option<PathBuf>,
    /// Also list this intermediate certificate (PEM) as revoked; repeatable.
    #[arg(long, value_name = "CERT_FILE")]
    revoke: Vec<PathBuf>,
    /// The reason of the --revoke entries: an RFC 5280 name or number (cACompromise,
    /// superseded, cessationOfOperation, ...).
    #[arg(
        long = "reasonCode",
        alias = "reason-code",
        default_value = "unspecified"
    )]
    reason_code: String,
    /// How long the CRL is valid (nextUpdate - thisUpdate), e.g. 8760h.
    #[arg(long, value_name = "DURATION", default_value = "8760h")]
    lifetime: String,
}

pub async fn run(args: RootCrlArgs) -> anyhow::Result<()> {
    let base = crate::context::mayfly_path()?;
    let layout = mayfly_config::init::Layout::new(&base);
    let root_path = args.root.unwrap_or_else(|| layout.root_cert());
    let key_path = args.key.unwrap_or_else(|| layout.root_key());
    let crl_path = args.crl.unwrap_or_else(|| layout.root_crl());
    let lifetime = args
        .lifetime
        .parse::<mayfly_config::duration::GoDuration>()
        .map(|d| d.0)
        .with_context(|| format!("--lifetime {:?}", args.lifetime))?;
    if lifetime <= time::Duration::ZERO {
        anyhow::bail!("--lifetime must be longer than 0");
    }
    let reason = reason_for_a_ca(&args.reason_code)?;

    let root = crate::context::read_certificates(&root_path)?
        .into_iter()
        .next()
        .with_context(|| format!("{}: no certificate", root_path.display()))?;
    let mut entries = match std::fs::read(&crl_path) {
        Ok(der) => earlier_entries(&der, &root)
            .with_context(|| format!("{} (the root CRL to extend)", crl_path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", crl_path.display())),
    };
    let now = time::OffsetDateTime::now_utc();
    for path in &args.revoke {
        let der = crate::context::read_certificates(path)?
            .into_iter()
            .next()
            .with_context(|| format!("{}: no certificate", path.display()))?;
        signed_by_root(&der, &root)
            .with_context(|| format!("{} is not issued by the root", path.display()))?;
        let serial = mayfly_pki::cert::CertificateInfo::from_der(&der)?
            .serial
            .as_be_bytes()
            .to_vec();
        if entries.iter().any(|e: &CrlEntry| e.serial == serial) {
            note!("{} is already on the root CRL.", path.display());
            continue;
        }
        entries.push(CrlEntry {
            serial,
            revoked_at: now,
            reason_code: reason.code(),
        });
    }
    let key = crate::password::read_private_key(
        &key_path,
        args.password_file.as_deref(),
        "--password-file",
    )?;
    let der = mayfly_config::init::sign_root_crl(&root, &key, &entries, now, lifetime)?;
    mayfly_config::files::write_atomic(&crl_path, &der, 0o644)?;
    note!(
        "The root CRL has been saved in {}: {} revoked, valid until {}.",
        crl_path.display(),
        entries.len(),
        now + lifetime
    );
    write_stdout(&format!("{}\n", crl_path.display()))
}

/// The reasons an intermediate is revoked for: not a hold (final here) nor removeFromCRL
/// (deltas only), nor aACompromise (attribute authorities).
fn reason_for_a_ca(text: &str) -> anyhow::Result<ReasonCode> {
    let reason = ReasonCode::parse(text).map_err(|_| {
        anyhow::anyhow!("--reasonCode {text:?} is not an RFC 5280 reason name or number")
    })?;
    if matches!(reason.code(), 6 | 8 | 10) {
        anyhow::bail!(
            "--reasonCode {} cannot revoke an intermediate on a complete CRL",
            reason.name()
        );
    }
    Ok(reason)
}

/// Entries of the current root CRL, which must be the root's.
fn earlier_entries(der: &[u8], root: &[u8]) -> anyhow::Result<Vec<CrlEntry>> {
    mayfly_pki::verify::check_crl_signature(der, root)?;
    let (_, crl) =
        CertificateRevocationList::from_der(der).map_err(|e| anyhow::anyhow!("not a CRL: {e}"))?;
    Ok(crl
        .iter_revoked_certificates()
        .map(|entry| CrlEntry {
            serial: magnitude(entry.raw_serial()),
            revoked_at: entry.revocation_date.to_datetime(),
            reason_code: entry.reason_code().map_or(0, |(_, code)| code.0),
        })
        .collect())
}

/// An expired intermediate may still be listed: its signature is what matters.
fn signed_by_root(der: &[u8], root: &[u8]) -> anyhow::Result<()> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| anyhow::anyhow!("not a certificate: {e}"))?;
    let (_, root) =
        x509_parser::parse_x509_certificate(root).map_err(|e| anyhow::anyhow!("the root: {e}"))?;
    cert.verify_signature(Some(root.public_key()))
        .map_err(|_| anyhow::anyhow!("its signature does not verify with the root's key"))
}

/// A DER INTEGER's content bytes as the magnitude `CrlEntry` holds: without the leading zero
/// that keeps a positive number's sign.
fn magnitude(raw: &[u8]) -> Vec<u8> {
    let start = raw
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(raw.len().saturating_sub(1));
    raw[start..].to_vec()
}
