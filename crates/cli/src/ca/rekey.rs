//! `mayfly ca rekey`: replace a certificate's key. The current certificate and key authenticate
//! over mutual TLS; the CA issues the same names and lifetime for a freshly generated key.

use std::path::PathBuf;

use anyhow::{Context, bail};
use mayfly_pki::cert::CertificateInfo;
use mayfly_pki::{KeyAlgorithm, PrivateKey, keyfile};

use crate::context::{CaFlags, read_certificates};
use crate::output::{Output, write_all};
use crate::password;

#[derive(Debug, clap::Args)]
pub struct RekeyArgs {
    /// The current certificate (PEM, leaf first).
    crt_file: PathBuf,
    /// Its private key.
    key_file: PathBuf,
    /// Write the new certificate here [default: over CRT_FILE, which needs --force].
    #[arg(long, value_name = "FILE")]
    out_cert: Option<PathBuf>,
    /// Write the new key here [default: over KEY_FILE, which needs --force].
    #[arg(long, value_name = "FILE")]
    out_key: Option<PathBuf>,
    /// Key type of the new key: EC, RSA or OKP.
    #[arg(long, value_name = "KTY", default_value = "EC")]
    kty: String,
    /// Curve of the new key for EC (P-256, P-384) or OKP (Ed25519).
    #[arg(long, value_name = "CURVE")]
    curve: Option<String>,
    /// RSA size of the new key in bits.
    #[arg(long, value_name = "BITS")]
    size: Option<usize>,
    /// Overwrite existing output files.
    #[arg(long, short)]
    force: bool,
    /// File with the password of KEY_FILE, if it is encrypted.
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
    #[command(flatten)]
    ca: CaFlags,
}

pub async fn run(args: RekeyArgs) -> anyhow::Result<()> {
    let out_cert = args
        .out_cert
        .clone()
        .unwrap_or_else(|| args.crt_file.clone());
    let out_key = args
        .out_key
        .clone()
        .unwrap_or_else(|| args.key_file.clone());
    if !args.force
        && let Some(existing) = [&out_cert, &out_key].into_iter().find(|p| p.exists())
    {
        bail!(
            "{} already exists: use --force to overwrite it",
            existing.display()
        );
    }
    let chain = read_certificates(&args.crt_file)?;
    let leaf = chain
        .first()
        .with_context(|| format!("{}: no certificate", args.crt_file.display()))?;
    let info =
        CertificateInfo::from_der(leaf).with_context(|| args.crt_file.display().to_string())?;
    let current_key = password::read_private_key(
        &args.key_file,
        args.password_file.as_deref(),
        "--password-file FILE",
    )?;
    let algorithm = KeyAlgorithm::from_flags(&args.kty, args.curve.as_deref(), args.size)?;
    let new_key = tokio::task::spawn_blocking(move || PrivateKey::generate(algorithm)).await??;
    // The CA takes names from the current certificate; the CSR's own only need to be valid.
    let csr = mayfly_pki::csr::create_pem(&new_key, &info.common_name, &info.sans)?;
    let target = args.ca.target()?;
    crate::identity::check(
        &args.crt_file,
        &chain,
        &args.key_file,
        &current_key,
        &target.roots,
    )?;
    let client = mayfly_client::Client::with_identity(
        &target.url,
        &target.roots,
        &chain,
        current_key.pkcs8_der(),
    )?;
    let response = client.rekey(&csr).await?;
    let chain_pem = response.cert_chain.concat();
    let new_key_pem = keyfile::encode_private_key_pem(&new_key, None)?;
    write_all(
        &[
            Output {
                path: &out_cert,
                contents: chain_pem.as_bytes(),
                secret: false,
            },
            Output {
                path: &out_key,
                contents: new_key_pem.as_bytes(),
                secret: true,
            },
        ],
        true,
    )?;
    note!("Your certificate has been saved in {}.", out_cert.display());
    note!("Your private key has been saved in {}.", out_key.display());
    Ok(())
}
