//! `mayfly certificate verify`: check a certificate like a relying party does. The chain must
//! reach a trusted root; with `--verify-crl` the CRL named in the certificate must not list it,
//! and with `--verify-ocsp` the OCSP responder named in it must say it is good.

use std::path::PathBuf;

use anyhow::{Context, bail};
use mayfly_authority::revocation::ReasonCode;
use mayfly_pki::issuer::CertIdHash;
use mayfly_pki::verify::{self, RevocationStatus};

use crate::context::{Defaults, read_certificates};

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The certificate (PEM), followed by its intermediates as `mayfly ca certificate` writes
    /// them.
    crt_file: PathBuf,
    /// Trusted roots (PEM) [default: "root" in $MAYFLY_PATH/config/defaults.json].
    #[arg(long, value_name = "FILE", env = "MAYFLY_ROOT")]
    roots: Option<PathBuf>,
    /// Also fetch the CRL from the certificate's CRL Distribution Point and check that it does
    /// not list the certificate.
    #[arg(long)]
    verify_crl: bool,
    /// Also ask the OCSP responder named in the certificate's Authority Information Access
    /// (with a nonce) and check that it answers good.
    #[arg(long)]
    verify_ocsp: bool,
}

pub async fn run(args: VerifyArgs) -> anyhow::Result<()> {
    let presented = read_certificates(&args.crt_file)?;
    let roots_file = match &args.roots {
        Some(path) => path.clone(),
        None => Defaults::load()?
            .root
            .map(PathBuf::from)
            .context("no roots: pass --roots or run 'mayfly ca bootstrap' first")?,
    };
    let roots = read_certificates(&roots_file)?;
    let now = time::OffsetDateTime::now_utc();
    let chain = verify::verify_chain(&presented, &roots, now)
        .with_context(|| args.crt_file.display().to_string())?;
    let urls = verify::revocation_urls(chain.leaf())?;
    let mut checks = vec!["chain".to_string()];
    if args.verify_crl {
        let url = urls.crl.as_deref().with_context(|| {
            format!(
                "{} has no CRL Distribution Point: --verify-crl cannot be used",
                args.crt_file.display()
            )
        })?;
        let crl = mayfly_client::Client::fetch_url(url, &roots, None)
            .await
            .with_context(|| format!("fetching the CRL from {url}"))?;
        let status = verify::crl_status(&crl, chain.issuer(), chain.leaf(), now)
            .with_context(|| format!("the CRL from {url}"))?;
        judge(&status, "the CRL")?;
        checks.push("CRL".into());
    }
    if args.verify_ocsp {
        let url = urls.ocsp.as_deref().with_context(|| {
            format!(
                "{} has no OCSP responder URL: --verify-ocsp cannot be used",
                args.crt_file.display()
            )
        })?;
        let issuer = mayfly_pki::issuer::IssuerIdentity::from_certificate(chain.issuer())?;
        let serial = mayfly_pki::cert::CertificateInfo::from_der(chain.leaf())?.serial;
        let nonce = mayfly_pki::random::random_bytes(16)?;
        let request = mayfly_pki::ocsp::build_request(
            &issuer,
            serial.as_be_bytes(),
            CertIdHash::Sha256,
            Some(&nonce),
        );
        let response = mayfly_client::Client::fetch_url(
            url,
            &roots,
            Some(("application/ocsp-request", request)),
        )
        .await
        .with_context(|| format!("asking the OCSP responder at {url}"))?;
        let status = verify::ocsp_status(
            &response,
            chain.issuer(),
            chain.leaf(),
            CertIdHash::Sha256,
            Some(&nonce),
            now,
        )
        .with_context(|| format!("the OCSP responder at {url}"))?;
        judge(&status, "the OCSP responder")?;
        checks.push("OCSP".into());
    }
    outln!("{}: OK ({})", args.crt_file.display(), checks.join(", "))?;
    Ok(())
}

fn judge(status: &RevocationStatus, source: &str) -> anyhow::Result<()> {
    match status {
        RevocationStatus::Good => Ok(()),
        RevocationStatus::Revoked { at, reason } => {
            let reason = reason
                .and_then(|code| ReasonCode::from_code(i64::from(code)).ok())
                .map_or("unspecified", ReasonCode::name);
            bail!("certificate revoked at {at} ({reason}), says {source}")
        }
        RevocationStatus::Unknown => bail!("{source} does not know this certificate"),
    }
}
