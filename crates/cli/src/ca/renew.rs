//! `mayfly ca renew`: renew a certificate over mutual TLS, authenticated by the certificate and
//! its key themselves. One-shot; `--expires-in` makes it cheap to run from cron or a timer.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context, bail};
use mayfly_pki::cert::CertificateInfo;
use time::OffsetDateTime;

use crate::context::{CaFlags, read_certificates};
use crate::output::{Output, write_all};
use crate::password;

#[derive(Debug, clap::Args)]
pub struct RenewArgs {
    /// The certificate to renew (PEM; the leaf first, as `mayfly ca certificate` writes it).
    crt_file: PathBuf,
    /// Its private key.
    key_file: PathBuf,
    /// Renew only if the certificate expires within DURATION (e.g. "8h"); otherwise exit 0
    /// without contacting the CA. For cron jobs and systemd timers.
    #[arg(long, value_name = "DURATION")]
    expires_in: Option<String>,
    /// Write the new certificate to FILE instead of over CRT_FILE.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Overwrite the output without asking.
    #[arg(long, short)]
    force: bool,
    /// File with the password of KEY_FILE, if it is encrypted.
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
    #[command(flatten)]
    ca: CaFlags,
}

pub async fn run(args: RenewArgs) -> anyhow::Result<()> {
    let chain = read_certificates(&args.crt_file)?;
    let leaf = chain
        .first()
        .with_context(|| format!("{}: no certificate", args.crt_file.display()))?;
    let info =
        CertificateInfo::from_der(leaf).with_context(|| args.crt_file.display().to_string())?;
    let now = OffsetDateTime::now_utc();
    if let Some(window) = &args.expires_in {
        let window: mayfly_authority::duration::GoDuration = window
            .parse()
            .with_context(|| format!("--expires-in {window:?}"))?;
        if info.not_after - now > window.0 {
            eprintln!(
                "{} expires at {}, not within {window}: not renewed",
                args.crt_file.display(),
                info.not_after
            );
            return Ok(());
        }
    }
    if now > info.not_after {
        bail!(
            "{} expired at {}: renewal over mutual TLS needs a valid certificate; get a new one with 'mayfly ca certificate'",
            args.crt_file.display(),
            info.not_after
        );
    }
    let out = args.out.clone().unwrap_or_else(|| args.crt_file.clone());
    let force = args.force || confirm_overwrite(&out)?;
    let key_pem = std::fs::read(&args.key_file)
        .with_context(|| format!("cannot read {}", args.key_file.display()))?;
    let key_password = if mayfly_pki::keyfile::is_encrypted_pem(&key_pem) {
        Some(password::obtain(
            args.password_file.as_deref(),
            "Please enter the password to decrypt the private key",
            "--password-file",
        )?)
    } else {
        None
    };
    let key = mayfly_pki::keyfile::decode_private_key_pem(
        &key_pem,
        key_password.as_ref().map(|p| p.as_slice()),
    )
    .with_context(|| args.key_file.display().to_string())?;
    let target = args.ca.target()?;
    let client =
        mayfly_client::Client::with_identity(&target.url, &target.roots, &chain, key.pkcs8_der())?;
    let response = client.renew().await?;
    let renewed = response.cert_chain.concat();
    write_all(
        &[Output {
            path: &out,
            contents: renewed.as_bytes(),
            secret: false,
        }],
        force,
    )?;
    eprintln!("Your certificate has been saved in {}.", out.display());
    Ok(())
}

/// step asks before overwriting; without a terminal, `--force` is required.
fn confirm_overwrite(path: &std::path::Path) -> anyhow::Result<bool> {
    if !path.exists() {
        return Ok(false);
    }
    if !std::io::stdin().is_terminal() {
        bail!(
            "{} already exists: use --force to overwrite it",
            path.display()
        );
    }
    let answer = password::prompt_line(
        &format!("Would you like to overwrite {} [y/n]", path.display()),
        "--force",
    )?;
    if answer.eq_ignore_ascii_case("y") || answer.eq_ignore_ascii_case("yes") {
        Ok(true)
    } else {
        bail!("not overwriting {}", path.display())
    }
}
