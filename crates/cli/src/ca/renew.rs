//! `mayfly ca renew`: renew a certificate over mutual TLS, authenticated by the certificate and
//! its key themselves. One-shot (`--expires-in` makes it cheap to run from cron or a timer), or a
//! daemon that renews at two thirds of each lifetime (see `daemon.rs`).

use std::path::PathBuf;

use anyhow::{Context, bail};
use mayfly_pki::cert::CertificateInfo;
use time::OffsetDateTime;

use crate::context::{CaFlags, read_certificates};
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
    /// Keep running and renew at about two thirds of each certificate's lifetime, retrying with
    /// backoff on failure; SIGHUP renews at once. Overwrites the certificate without asking.
    #[arg(long, conflicts_with = "expires_in")]
    pub(super) daemon: bool,
    /// Daemon mode: renew this long after the certificate's start instead of at 2/3 of its
    /// lifetime.
    #[arg(long, value_name = "DURATION", requires = "daemon")]
    pub(super) renew_period: Option<String>,
    /// Daemon mode: the largest random delay added to each renewal, so a fleet does not renew at
    /// once [default: 5% of the lifetime].
    #[arg(long, value_name = "DURATION", requires = "daemon")]
    pub(super) jitter: Option<String>,
    /// After each renewal, run COMMAND, split into arguments as a shell would (quotes keep
    /// spaces), without a shell. Example: --exec "systemctl reload nginx".
    #[arg(long, value_name = "COMMAND")]
    pub(super) exec: Option<String>,
    /// After each renewal, send --signal to this process.
    #[arg(long, value_name = "PID")]
    pub(super) pid: Option<u32>,
    /// Authenticate with mutual TLS (the default). With --mtls=false the certificate is sent in
    /// a token signed by its key (`Authorization: Bearer`), for CAs behind TLS-terminating proxies
    /// and for renewing an expired certificate where the provisioner allows it.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    mtls: bool,
    /// The signal sent to --pid.
    #[arg(long, value_name = "SIGNAL", default_value = "HUP")]
    pub(super) signal: String,
    #[command(flatten)]
    ca: CaFlags,
}

/// What renewing needs, loaded once: the key, the CA, where to write.
pub(super) struct Renewer {
    mtls: bool,
    pub(super) source: PathBuf,
    pub(super) out: PathBuf,
    key: mayfly_pki::PrivateKey,
    target: crate::context::CaTarget,
}

impl Renewer {
    /// Renews the certificate currently in `out` (or `source` before the first renewal) and
    /// writes the new chain atomically, keeping the file's permissions.
    pub(super) async fn renew(&self) -> anyhow::Result<CertificateInfo> {
        let current = if self.out.exists() {
            &self.out
        } else {
            &self.source
        };
        let chain = read_certificates(current)?;
        let response = if self.mtls {
            let client = mayfly_client::Client::with_identity(
                &self.target.url,
                &self.target.roots,
                &chain,
                self.key.pkcs8_der(),
            )?;
            client.renew().await?
        } else {
            let token = renewal_token(&self.key, &chain, &self.target.url)?;
            self.target.client()?.renew_with_token(&token).await?
        };
        let renewed = response.cert_chain.concat();
        let mode = std::fs::metadata(&self.out)
            .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777)
            .unwrap_or(mayfly_config::files::PUBLIC_MODE);
        mayfly_config::files::write_atomic(&self.out, renewed.as_bytes(), mode)?;
        let leaf = mayfly_pki::cert::certificates_from_pem(renewed.as_bytes())?;
        let first = leaf.first().context("the CA returned no certificate")?;
        Ok(CertificateInfo::from_der(first)?)
    }
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
        let window: mayfly_config::duration::GoDuration = window
            .parse()
            .with_context(|| format!("--expires-in {window:?}"))?;
        if info.not_after - now > window.0 {
            note!(
                "{} expires at {}, not within {window}: not renewed",
                args.crt_file.display(),
                info.not_after
            );
            return Ok(());
        }
    }
    if now > info.not_after && args.mtls {
        bail!(
            "{} expired at {}: renewal over mutual TLS needs a valid certificate; get a new one with 'mayfly ca certificate', or use --mtls=false if the provisioner allows renewal after expiry",
            args.crt_file.display(),
            info.not_after
        );
    }
    let out = args.out.clone().unwrap_or_else(|| args.crt_file.clone());
    if args.daemon {
        let renewer = load(&args, out)?;
        return super::daemon::run(&args, &renewer).await;
    }
    if !args.force {
        crate::output::confirm_overwrite(&out)?;
    }
    let renewer = load(&args, out)?;
    renewer.renew().await?;
    note!(
        "Your certificate has been saved in {}.",
        renewer.out.display()
    );
    super::daemon::after_renewal(&args);
    Ok(())
}

/// Reads the key (asking for its password if needed) and resolves the CA.
fn load(args: &RenewArgs, out: PathBuf) -> anyhow::Result<Renewer> {
    let key = password::read_private_key(
        &args.key_file,
        args.password_file.as_deref(),
        "--password-file FILE",
    )?;
    let target = args.ca.target()?;
    crate::identity::check(
        &args.crt_file,
        &read_certificates(&args.crt_file)?,
        &args.key_file,
        &key,
        &target.roots,
    )?;
    Ok(Renewer {
        mtls: args.mtls,
        source: args.crt_file.clone(),
        out,
        key,
        target,
    })
}

/// step's renewal token, as `step ca renew --mtls=false` writes it: the certificate chain in the
/// `x5cInsecure` header, signed by the certificate's key, issuer `step-ca-client/1.0`, subject the
/// certificate's common name, for the CA's `/1.0/renew`, valid for 5 minutes. step-ca accepts it
/// as well as mayfly-ca; the `jti` (step's has none) only names the token in the CA's records.
fn renewal_token(
    key: &mayfly_pki::PrivateKey,
    chain: &[Vec<u8>],
    ca_url: &str,
) -> anyhow::Result<String> {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let subject = match chain.first() {
        Some(leaf) => CertificateInfo::from_der(leaf)?.common_name,
        None => bail!("no certificate to renew"),
    };
    let claims = serde_json::json!({
        "aud": format!("{}/1.0/renew", ca_url.trim_end_matches('/')),
        "iss": mayfly_authority::token::RENEWAL_TOKEN_ISSUER,
        "sub": subject,
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": mayfly_pki::random::random_hex(16)?,
    });
    Ok(mayfly_pki::jose::jws::sign_compact_chain(
        key,
        mayfly_authority::token::RENEWAL_CHAIN_HEADER,
        chain,
        claims.to_string().as_bytes(),
    )?)
}
