//! `mayfly certificate ...`: local certificate work, no CA involved.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Subcommand, ValueEnum};
use mayfly_pki::cert::{
    LeafSigner, LeafTemplate, certificate_pem, create_intermediate, create_root,
    create_self_signed_leaf,
};
use mayfly_pki::{KeyAlgorithm, PrivateKey, San, SerialNumber, keyfile};
use time::OffsetDateTime;

use crate::ca::token::resolve_time;
use crate::inspect;
use crate::output::{Output, write_all};
use crate::password;

#[derive(Debug, Subcommand)]
pub enum CertificateCommand {
    /// Create a key and a certificate (root CA, intermediate CA, leaf, self-signed) or a CSR.
    ///
    /// Example: mayfly certificate create --csr svc.internal svc.csr svc.key --no-password --insecure
    Create(CreateArgs),
    /// Print a certificate (or CSR) from a file or a TLS server.
    ///
    /// Example: mayfly certificate inspect svc.crt --short
    Inspect(inspect::InspectArgs),
    /// Print the SHA-256 fingerprint of a certificate.
    Fingerprint(inspect::FingerprintArgs),
    /// Verify a certificate's chain to the trusted roots and, on request, its revocation status
    /// from its CRL and its OCSP responder.
    ///
    /// Example: mayfly certificate verify svc.crt --verify-crl --verify-ocsp
    Verify(crate::verify::VerifyArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Profile {
    /// A self-signed root CA (path length 1).
    RootCa,
    /// An intermediate CA signed by --ca (path length 0).
    IntermediateCa,
    /// A TLS leaf signed by --ca.
    Leaf,
    /// A self-signed TLS leaf.
    SelfSigned,
}

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// The subject common name.
    subject: String,
    /// Where to write the certificate (or the CSR with --csr).
    crt_file: PathBuf,
    /// Where to write the private key.
    key_file: PathBuf,
    /// Write a certificate signing request instead of a certificate.
    #[arg(long)]
    csr: bool,
    /// What kind of certificate to create [default: leaf].
    #[arg(long, value_enum)]
    profile: Option<Profile>,
    /// The issuing CA's certificate (for leaf and intermediate-ca).
    #[arg(long, value_name = "FILE", requires = "ca_key")]
    ca: Option<PathBuf>,
    /// The issuing CA's private key.
    #[arg(long, value_name = "FILE", requires = "ca")]
    ca_key: Option<PathBuf>,
    /// File with the password of --ca-key, if it is encrypted.
    #[arg(long, value_name = "FILE")]
    ca_password_file: Option<PathBuf>,
    /// File with the password that encrypts the new private key.
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
    /// Do not encrypt the new private key (requires --insecure).
    #[arg(long, requires = "insecure")]
    no_password: bool,
    /// Allow insecure choices such as --no-password.
    #[arg(long)]
    insecure: bool,
    /// A subject alternative name; repeatable [default: the subject, for leaves].
    #[arg(long, value_name = "SAN")]
    san: Vec<String>,
    /// Validity end: RFC 3339 time or duration [default: 24h for leaves, 10 years for CAs].
    #[arg(long, value_name = "TIME|DURATION")]
    not_after: Option<String>,
    /// Key type: EC, RSA or OKP.
    #[arg(long, value_name = "KTY", default_value = "EC")]
    kty: String,
    /// Curve for EC or OKP keys.
    #[arg(long, value_name = "CURVE")]
    curve: Option<String>,
    /// RSA key size in bits.
    #[arg(long, value_name = "BITS")]
    size: Option<usize>,
    /// Overwrite existing files.
    #[arg(long, short)]
    force: bool,
}

pub async fn run(command: CertificateCommand) -> anyhow::Result<()> {
    match command {
        CertificateCommand::Create(args) => create(args).await,
        CertificateCommand::Inspect(args) => inspect::run(args).await,
        CertificateCommand::Fingerprint(args) => inspect::run_fingerprint(args),
        CertificateCommand::Verify(args) => crate::verify::run(args).await,
    }
}

async fn create(args: CreateArgs) -> anyhow::Result<()> {
    if !args.force
        && let Some(existing) = [&args.crt_file, &args.key_file]
            .into_iter()
            .find(|p| p.exists())
    {
        bail!(
            "{} already exists: use --force to overwrite it",
            existing.display()
        );
    }
    let profile = args.profile.unwrap_or(Profile::Leaf);
    let key_password = if args.no_password {
        None
    } else {
        Some(password::obtain_new(
            args.password_file.as_deref(),
            "Please enter the password to encrypt the private key",
            "--password-file FILE (or --no-password --insecure)",
        )?)
    };
    let algorithm = KeyAlgorithm::from_flags(&args.kty, args.curve.as_deref(), args.size)?;
    let key = tokio::task::spawn_blocking(move || PrivateKey::generate(algorithm)).await??;
    let sans: Vec<San> = if !args.san.is_empty() {
        args.san
            .iter()
            .map(|s| San::parse(s))
            .collect::<Result<_, _>>()?
    } else if matches!(profile, Profile::Leaf | Profile::SelfSigned) || args.csr {
        San::parse(&args.subject)
            .map(|s| vec![s])
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let now = OffsetDateTime::now_utc();
    let is_ca = matches!(profile, Profile::RootCa | Profile::IntermediateCa);
    let not_after = match &args.not_after {
        Some(text) => resolve_time("--not-after", text, now)?,
        None if is_ca => now + mayfly_config::init::CA_VALIDITY,
        None => now + time::Duration::hours(24),
    };

    let (output, what) = if args.csr {
        (
            mayfly_pki::csr::create_pem(&key, &args.subject, &sans)?,
            "certificate signing request",
        )
    } else {
        let issuer = match (&args.ca, &args.ca_key) {
            (Some(ca), Some(ca_key)) => {
                let ca_der = crate::context::read_certificates(ca)?
                    .into_iter()
                    .next()
                    .with_context(|| format!("{}: no certificate", ca.display()))?;
                let ca_key = password::read_private_key(
                    ca_key,
                    args.ca_password_file.as_deref(),
                    "--ca-password-file FILE",
                )?;
                Some((ca_der, std::sync::Arc::new(ca_key)))
            }
            _ => None,
        };
        let der = match (profile, &issuer) {
            (Profile::RootCa, _) => create_root(&args.subject, &key, not_after)?,
            (Profile::SelfSigned, _) => create_self_signed_leaf(
                &leaf_template(&args.subject, sans, now, not_after, &key)?,
                &key,
            )?,
            (Profile::IntermediateCa, Some((ca_der, ca_key))) => {
                create_intermediate(&args.subject, &key, ca_der, ca_key, not_after, None)?
            }
            (Profile::Leaf, Some((ca_der, ca_key))) => LeafSigner::new(ca_der, ca_key.clone())?
                .sign(
                    &leaf_template(&args.subject, sans, now, not_after, &key)?,
                    &key.public_key_spki_der()?,
                )?,
            (Profile::IntermediateCa | Profile::Leaf, None) => {
                bail!(
                    "this profile needs the issuing CA: pass --ca FILE --ca-key FILE (or use --profile self-signed)"
                )
            }
        };
        (certificate_pem(&der), "certificate")
    };
    let key_pem =
        keyfile::encode_private_key_pem(&key, key_password.as_ref().map(|p| p.as_slice()))?;
    write_all(
        &[
            Output {
                path: &args.crt_file,
                contents: output.as_bytes(),
                secret: false,
            },
            Output {
                path: &args.key_file,
                contents: key_pem.as_bytes(),
                secret: true,
            },
        ],
        args.force,
    )?;
    note!("Your {what} has been saved in {}.", args.crt_file.display());
    note!(
        "Your private key has been saved in {}.",
        args.key_file.display()
    );
    Ok(())
}

fn leaf_template(
    subject: &str,
    sans: Vec<San>,
    now: OffsetDateTime,
    not_after: OffsetDateTime,
    key: &PrivateKey,
) -> anyhow::Result<LeafTemplate> {
    Ok(LeafTemplate {
        common_name: subject.to_string(),
        sans,
        not_before: now - time::Duration::minutes(1),
        not_after,
        serial: SerialNumber::random()?,
        rsa_key: matches!(key.algorithm(), KeyAlgorithm::Rsa(_)),
        provisioner: None,
    })
}
