//! `mayfly ca certificates list|export`: what the CA has stored, through the admin API
//! (`GET /1.0/admin/certificates`), a page at a time.
//!
//! Authenticated by a token of a provisioner marked `"admin": true` in ca.json (minted here
//! from its key, or given with --token), or by a client certificate issued through such a
//! provisioner (--cert and --key, over mutual TLS).

use std::path::PathBuf;

use anyhow::Context;
use mayfly_proto::CertificateEntry;

use super::token::{self, ProvisionerFlags, TokenRequest};
use crate::context::{CaFlags, read_certificates};
use crate::output::{Output, write_all, write_stdout};
use crate::password;

/// Certificates asked for per request.
const PAGE: u32 = 500;

#[derive(Debug, clap::Subcommand)]
pub enum CertificatesCommand {
    /// List the certificates the CA has stored (admin API).
    ///
    /// Example: mayfly ca certificates list --status revoked --provisioner-password-file prov-pw.txt
    List(ListArgs),
    /// Export every stored certificate, with its status and PEM, as one JSON document (admin
    /// API).
    ///
    /// Example: mayfly ca certificates export --out certificates.json --cert admin.crt --key admin.key
    Export(ExportArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Status {
    /// Neither revoked nor expired.
    Active,
    Revoked,
    /// Expired, not revoked.
    Expired,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One line per certificate: serial, status, notAfter, provisioner, subject.
    Table,
    /// A JSON array of the certificates, with their PEM.
    Json,
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Only certificates with this status [default: all].
    #[arg(long, value_enum)]
    status: Option<Status>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    #[command(flatten)]
    admin: AdminFlags,
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// Write to FILE (atomically; refused if it exists, unless --force) [default: standard
    /// output].
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Overwrite --out.
    #[arg(long, requires = "out")]
    force: bool,
    #[command(flatten)]
    admin: AdminFlags,
}

/// How the admin API request proves itself.
#[derive(Debug, clap::Args)]
pub struct AdminFlags {
    /// A token of an admin provisioner for the audience <CA URL>/1.0/admin [default: create one
    /// with the provisioner key].
    #[arg(
        long,
        value_name = "TOKEN",
        env = "MAYFLY_TOKEN",
        conflicts_with = "cert"
    )]
    token: Option<String>,
    #[command(flatten)]
    provisioner: ProvisionerFlags,
    /// File holding the provisioner password (when a token is created here).
    #[arg(long, value_name = "FILE", env = "MAYFLY_PROVISIONER_PASSWORD_FILE")]
    provisioner_password_file: Option<PathBuf>,
    /// Authenticate with this certificate (issued through an admin provisioner) over mutual TLS.
    #[arg(long, value_name = "FILE", requires = "key")]
    cert: Option<PathBuf>,
    /// The private key of --cert.
    #[arg(long, value_name = "FILE", requires = "cert")]
    key: Option<PathBuf>,
    /// File with the password of --key, if it is encrypted.
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
    #[command(flatten)]
    ca: CaFlags,
}

pub async fn run(command: CertificatesCommand) -> anyhow::Result<()> {
    match command {
        CertificatesCommand::List(args) => {
            let status = args.status.map(|s| match s {
                Status::Active => "active",
                Status::Revoked => "revoked",
                Status::Expired => "expired",
            });
            let certificates = fetch_all(&args.admin, status).await?;
            let text = match args.format {
                Format::Json => format!("{}\n", serde_json::to_string_pretty(&certificates)?),
                Format::Table => table(&certificates),
            };
            write_stdout(&text)
        }
        CertificatesCommand::Export(args) => {
            let certificates = fetch_all(&args.admin, None).await?;
            let text = format!(
                "{}\n",
                serde_json::to_string_pretty(&serde_json::json!({ "certificates": certificates }))?
            );
            match &args.out {
                Some(path) => {
                    write_all(
                        &[Output {
                            path,
                            contents: text.as_bytes(),
                            secret: false,
                        }],
                        args.force,
                    )?;
                    note!(
                        "Exported {} certificates to {}",
                        certificates.len(),
                        path.display()
                    );
                    Ok(())
                }
                None => write_stdout(&text),
            }
        }
    }
}

/// Every page, in serial order.
async fn fetch_all(
    flags: &AdminFlags,
    status: Option<&str>,
) -> anyhow::Result<Vec<CertificateEntry>> {
    let (client, token) = admin_client(flags).await?;
    let mut all = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = client
            .certificates_page(status, after.as_deref(), PAGE, token.as_deref())
            .await
            .context("listing certificates")?;
        all.extend(page.certificates);
        match page.next {
            Some(next) if after.as_ref() != Some(&next) => after = Some(next),
            _ => return Ok(all),
        }
    }
}

/// A client for the admin API as `flags` say, and the token to send (none over mutual TLS).
pub(super) async fn admin_client(
    flags: &AdminFlags,
) -> anyhow::Result<(mayfly_client::Client, Option<String>)> {
    let target = flags.ca.target()?;
    match (&flags.cert, &flags.key) {
        (Some(cert), Some(key_file)) => {
            let chain = read_certificates(cert)?;
            let key = password::read_private_key(
                key_file,
                flags.password_file.as_deref(),
                "--password-file FILE",
            )?;
            crate::identity::check(cert, &chain, key_file, &key, &target.roots)?;
            let client = mayfly_client::Client::with_identity(
                &target.url,
                &target.roots,
                &chain,
                key.pkcs8_der(),
            )?;
            Ok((client, None))
        }
        _ => {
            let token = match &flags.token {
                Some(token) => token.trim().to_string(),
                None => {
                    token::mint(
                        &target,
                        &TokenRequest {
                            subject: "admin",
                            endpoint: "admin",
                            sans: &[],
                            not_before: None,
                            not_after: None,
                            provisioner: flags.provisioner.provisioner.as_deref(),
                            password_file: flags.provisioner_password_file.as_deref(),
                            ssh: None,
                        },
                    )
                    .await?
                }
            };
            Ok((target.client()?, Some(token)))
        }
    }
}

fn table(certificates: &[CertificateEntry]) -> String {
    let mut out = format!(
        "{:<40}  {:<8}  {:<20}  {:<20}  SUBJECT\n",
        "SERIAL", "STATUS", "NOT AFTER", "PROVISIONER"
    );
    for c in certificates {
        out.push_str(&format!(
            "{:<40}  {:<8}  {:<20}  {:<20}  {}\n",
            c.serial, c.status, c.not_after, c.provisioner, c.subject
        ));
    }
    out
}
