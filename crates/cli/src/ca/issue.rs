//! `mayfly ca certificate` and `mayfly ca sign`: get a certificate from the CA.
//!
//! Outputs are checked before any work (an existing file is asked about, or refused without a
//! terminal, before the CA is contacted) and written only once the CA has answered, certificate
//! chain and key together.

use std::path::{Path, PathBuf};

use anyhow::Context;
use mayfly_pki::{Csr, KeyAlgorithm, PrivateKey, San, keyfile};
use mayfly_proto::SignRequest;

use super::token::{self, ProvisionerFlags, TokenRequest};
use crate::context::{CaFlags, CaTarget};
use crate::output::{Output, write_all};

/// Flags shared by `ca certificate` and `ca sign`.
#[derive(Debug, clap::Args)]
pub struct IssueFlags {
    /// A one-time token from `mayfly ca token` [default: create one with the provisioner key].
    #[arg(
        long,
        value_name = "TOKEN",
        env = "MAYFLY_TOKEN",
        conflicts_with = "x5c_cert"
    )]
    token: Option<String>,
    /// When the certificate becomes valid: RFC 3339 time or duration from now [default: now].
    #[arg(long, value_name = "TIME|DURATION")]
    not_before: Option<String>,
    /// When the certificate expires: RFC 3339 time or duration from now [default: the
    /// provisioner's default, 24h].
    #[arg(long, value_name = "TIME|DURATION")]
    not_after: Option<String>,
    #[command(flatten)]
    provisioner: ProvisionerFlags,
    #[command(flatten)]
    x5c: super::x5c::X5cFlags,
    /// File holding the provisioner password (when no --token is given); with --x5c-key, the
    /// password of that key when it is encrypted.
    #[arg(long, value_name = "FILE", env = "MAYFLY_PROVISIONER_PASSWORD_FILE")]
    provisioner_password_file: Option<PathBuf>,
    /// Overwrite existing output files without asking.
    #[arg(long, short)]
    force: bool,
    #[command(flatten)]
    ca: CaFlags,
}

#[derive(Debug, clap::Args)]
pub struct CertificateArgs {
    /// The subject: common name, and the only SAN unless --san is given.
    subject: String,
    /// Where to write the certificate chain (leaf, then intermediate).
    crt_file: PathBuf,
    /// Where to write the new private key (unencrypted PKCS#8, mode 0600).
    key_file: PathBuf,
    /// A subject alternative name (DNS name, IP, e-mail or URI); repeatable.
    #[arg(long, value_name = "SAN")]
    san: Vec<String>,
    /// Key type: EC, RSA or OKP.
    #[arg(long, value_name = "KTY", default_value = "EC")]
    kty: String,
    /// Curve for EC (P-256, P-384) or OKP (Ed25519) keys [default: P-256, Ed25519].
    #[arg(long, value_name = "CURVE")]
    curve: Option<String>,
    /// RSA key size in bits [default: 2048].
    #[arg(long, value_name = "BITS")]
    size: Option<usize>,
    #[command(flatten)]
    issue: IssueFlags,
}

#[derive(Debug, clap::Args)]
pub struct SignArgs {
    /// The certificate signing request (PEM).
    csr_file: PathBuf,
    /// Where to write the certificate chain (leaf, then intermediate).
    crt_file: PathBuf,
    #[command(flatten)]
    issue: IssueFlags,
}

pub async fn run_certificate(args: CertificateArgs) -> anyhow::Result<()> {
    confirm_outputs(&[&args.crt_file, &args.key_file], args.issue.force)?;
    let target = args.issue.ca.target()?;
    let algorithm = KeyAlgorithm::from_flags(&args.kty, args.curve.as_deref(), args.size)?;
    let key = tokio::task::spawn_blocking(move || PrivateKey::generate(algorithm)).await??;
    let sans: Vec<San> = if args.san.is_empty() {
        vec![San::parse(&args.subject)?]
    } else {
        args.san
            .iter()
            .map(|s| San::parse(s))
            .collect::<Result<_, _>>()?
    };
    let csr = mayfly_pki::csr::create_pem(&key, &args.subject, &sans)?;
    let chain = request(&target, &args.issue, &csr, &args.subject, &args.san).await?;
    let key_pem = keyfile::encode_private_key_pem(&key, None)?;
    write_all(
        &[
            Output {
                path: &args.crt_file,
                contents: chain.as_bytes(),
                secret: false,
            },
            Output {
                path: &args.key_file,
                contents: key_pem.as_bytes(),
                secret: true,
            },
        ],
        // Confirmed above.
        true,
    )?;
    note!("✔ CA: {}", target.url);
    note!("✔ Certificate: {}", args.crt_file.display());
    note!("✔ Private Key: {}", args.key_file.display());
    Ok(())
}

pub async fn run_sign(args: SignArgs) -> anyhow::Result<()> {
    confirm_outputs(&[&args.crt_file], args.issue.force)?;
    let target = args.issue.ca.target()?;
    let csr_pem = std::fs::read_to_string(&args.csr_file)
        .with_context(|| format!("cannot read {}", args.csr_file.display()))?;
    let csr = Csr::from_pem(&csr_pem).with_context(|| args.csr_file.display().to_string())?;
    let sans: Vec<String> = csr.sans().iter().map(ToString::to_string).collect();
    let subject = csr
        .common_name()
        .map(str::to_string)
        .or_else(|| sans.first().cloned())
        .with_context(|| {
            format!(
                "{}: the request has neither a common name nor a SAN",
                args.csr_file.display()
            )
        })?;
    let chain = request(&target, &args.issue, &csr_pem, &subject, &sans).await?;
    write_all(
        &[Output {
            path: &args.crt_file,
            contents: chain.as_bytes(),
            secret: false,
        }],
        // Confirmed above.
        true,
    )?;
    note!("✔ CA: {}", target.url);
    note!("✔ Certificate: {}", args.crt_file.display());
    Ok(())
}

/// Without --force, asks before overwriting each output that exists (step's prompt); without a
/// terminal an existing output is refused.
fn confirm_outputs(paths: &[&Path], force: bool) -> anyhow::Result<()> {
    if !force {
        for path in paths {
            crate::output::confirm_overwrite(path)?;
        }
    }
    Ok(())
}

/// Gets a token if none was given, sends the CSR, returns the chain as PEM.
async fn request(
    target: &CaTarget,
    flags: &IssueFlags,
    csr_pem: &str,
    subject: &str,
    sans: &[String],
) -> anyhow::Result<String> {
    let ott = match &flags.token {
        Some(token) => token.trim().to_string(),
        None => {
            let request = TokenRequest {
                ssh: None,
                subject,
                endpoint: "sign",
                sans,
                not_before: None,
                not_after: None,
                provisioner: flags.provisioner.provisioner.as_deref(),
                password_file: flags.provisioner_password_file.as_deref(),
            };
            match flags.x5c.load(request.password_file)? {
                Some(credential) => super::x5c::mint(target, &request, &credential).await?,
                None => token::mint(target, &request).await?,
            }
        }
    };
    let response = target
        .client()?
        .sign(&SignRequest {
            csr: csr_pem.to_string(),
            ott,
            not_before: flags.not_before.clone(),
            not_after: flags.not_after.clone(),
            template_data: None,
        })
        .await?;
    Ok(response.cert_chain.concat())
}
