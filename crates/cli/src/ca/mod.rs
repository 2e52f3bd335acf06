//! `mayfly ca ...`: the commands that create or talk to a CA.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;

use crate::context::{CaFlags, Defaults, mayfly_path};
use crate::output::{Output, ensure_parent, write_all};

mod audit;
mod certificates;
mod choose;
mod crl;
mod daemon;
mod init;
mod issue;
mod provisioner;
mod provisioner_oidc;
mod publish;
mod rekey;
mod renew;
mod revoke;
mod root_crl;
pub mod token;
mod x5c;

#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Create a new PKI: root and intermediate CA, a JWK provisioner, ca.json and defaults.json.
    ///
    /// Example: mayfly ca init --name Example --dns ca.internal --address :9000 --provisioner admin --password-file pw.txt
    Init(init::InitArgs),
    /// Trust a CA: fetch its root by fingerprint, check the fingerprint, save defaults.json.
    ///
    /// Example: mayfly ca bootstrap --ca-url https://ca.internal:9000 --fingerprint 9dc3...0931
    Bootstrap(BootstrapArgs),
    /// Download the root certificate whose fingerprint is in defaults.json (or --fingerprint).
    Root(RootArgs),
    /// Download every root certificate of the CA.
    Roots(RootsArgs),
    /// Check that the CA is up: prints "ok".
    Health(HealthArgs),
    /// Provisioner commands.
    #[command(subcommand)]
    Provisioner(ProvisionerCommand),
    /// Create a one-time token that authorises one certificate.
    ///
    /// Example: TOKEN=$(mayfly ca token svc.internal --provisioner-password-file prov-pw.txt)
    Token(token::TokenArgs),
    /// Generate a key and get a certificate for it in one step.
    ///
    /// Example: mayfly ca certificate svc.internal svc.crt svc.key
    Certificate(issue::CertificateArgs),
    /// Renew a certificate over mutual TLS (its key proves possession).
    ///
    /// Example: mayfly ca renew --force --expires-in 8h svc.crt svc.key
    Renew(renew::RenewArgs),
    /// Replace a certificate's key: a new key, the same names and lifetime (mutual TLS).
    ///
    /// Example: mayfly ca rekey svc.crt svc.key --force
    Rekey(rekey::RekeyArgs),
    /// Revoke a certificate: the CA refuses to renew it from then on, and lists it on its CRL and
    /// OCSP responder when those are enabled.
    ///
    /// Example: mayfly ca revoke 30671613121311574910895916201205874495 --reasonCode keyCompromise
    Revoke(revoke::RevokeArgs),
    /// Get a certificate for an existing CSR.
    ///
    /// Example: mayfly ca sign svc.csr svc.crt --token "$TOKEN"
    Sign(issue::SignArgs),
    /// Fetch the CA's CRL, check its signature against the trusted roots, and print a summary
    /// or save it.
    ///
    /// Example: mayfly ca crl --out ca.crl --pem
    Crl(crl::CrlArgs),
    /// Sign the root's CRL offline with the root key, keeping its entries and listing
    /// revoked intermediates; mayfly-ca serves the file at /1.0/root.crl.
    ///
    /// Example: mayfly ca root-crl --revoke old_intermediate.crt --reasonCode cACompromise
    RootCrl(root_crl::RootCrlArgs),
    /// Write everything relying parties fetch (CRLs, pre-signed OCSP responses at their RFC
    /// 5019 GET paths, CA certificates, SSH KRL) as files for a web server or a CDN, from
    /// ca.json, the keys and the database: no running CA needed.
    ///
    /// Example: mayfly ca publish --dir /var/www/pki --password-file pw.txt
    Publish(publish::PublishArgs),
    /// The certificates the CA has stored, through its admin API: list or export them.
    #[command(subcommand)]
    Certificates(certificates::CertificatesCommand),
    /// The CA's audit log: every certificate issued, renewed, rekeyed or revoked, who asked
    /// and from where (admin API, or --offline from the database).
    ///
    /// Example: mayfly ca audit --since 24h --provisioner-password-file prov-pw.txt
    Audit(audit::AuditArgs),
}

#[derive(Debug, Subcommand)]
pub enum ProvisionerCommand {
    /// List the CA's provisioners as JSON.
    List(ProvisionerListArgs),
    /// Add a provisioner to ca.json (validated first; the old file is kept as ca.json.bak).
    ///
    /// Example: mayfly ca provisioner add deploy@example.com --type JWK --create --password-file prov-pw.txt --x509-default-dur 8h
    Add(provisioner::AddArgs),
    /// Remove a provisioner from ca.json (the old file is kept as ca.json.bak).
    ///
    /// Example: mayfly ca provisioner remove admin
    Remove(provisioner::RemoveArgs),
    /// Change the claims of a provisioner in ca.json (validated first; the old file is kept as
    /// ca.json.bak).
    ///
    /// Example: mayfly ca provisioner update deploy@example.com --x509-max-dur 72h --allow-renewal-after-expiry
    Update(provisioner::UpdateArgs),
}

#[derive(Debug, clap::Args)]
pub struct BootstrapArgs {
    /// URL of the CA.
    #[arg(long, value_name = "URI", env = "MAYFLY_CA_URL")]
    ca_url: String,
    /// SHA-256 fingerprint of the root certificate (hex), as `mayfly ca init` printed it.
    #[arg(long, value_name = "FINGERPRINT", env = "MAYFLY_FINGERPRINT")]
    fingerprint: String,
    /// Overwrite an existing root and defaults.json.
    #[arg(long, short)]
    force: bool,
}

#[derive(Debug, clap::Args)]
pub struct RootArgs {
    /// Where to write the root (PEM) [default: standard output].
    file: Option<PathBuf>,
    /// Fingerprint of the root to fetch [default: "fingerprint" in defaults.json].
    #[arg(long, value_name = "FINGERPRINT")]
    fingerprint: Option<String>,
    /// URL of the CA [default: "ca-url" in defaults.json].
    #[arg(long, value_name = "URI", env = "MAYFLY_CA_URL")]
    ca_url: Option<String>,
    /// Overwrite FILE if it exists.
    #[arg(long, short)]
    force: bool,
}

#[derive(Debug, clap::Args)]
pub struct RootsArgs {
    /// Where to write the roots (PEM) [default: standard output].
    file: Option<PathBuf>,
    #[command(flatten)]
    ca: CaFlags,
    /// Overwrite FILE if it exists.
    #[arg(long, short)]
    force: bool,
}

#[derive(Debug, clap::Args)]
pub struct HealthArgs {
    #[command(flatten)]
    ca: CaFlags,
}

#[derive(Debug, clap::Args)]
pub struct ProvisionerListArgs {
    #[command(flatten)]
    ca: CaFlags,
}

pub async fn run(command: CaCommand) -> anyhow::Result<()> {
    match command {
        CaCommand::Init(args) => init::run(args).await,
        CaCommand::Bootstrap(args) => bootstrap(args).await,
        CaCommand::Root(args) => root(args).await,
        CaCommand::Roots(args) => roots(args).await,
        CaCommand::Health(args) => {
            let health = args.ca.target()?.client()?.health().await?;
            outln!("{}", health.status)?;
            Ok(())
        }
        CaCommand::Provisioner(ProvisionerCommand::List(args)) => {
            let list = args.ca.target()?.client()?.provisioners().await?;
            outln!("{}", serde_json::to_string_pretty(&list)?)?;
            Ok(())
        }
        CaCommand::Provisioner(ProvisionerCommand::Add(args)) => provisioner::add(args).await,
        CaCommand::Provisioner(ProvisionerCommand::Remove(args)) => provisioner::remove(args).await,
        CaCommand::Provisioner(ProvisionerCommand::Update(args)) => provisioner::update(args).await,
        CaCommand::Token(args) => token::run(args).await,
        CaCommand::Certificate(args) => issue::run_certificate(args).await,
        CaCommand::Sign(args) => issue::run_sign(args).await,
        CaCommand::Renew(args) => renew::run(args).await,
        CaCommand::Revoke(args) => revoke::run(args).await,
        CaCommand::Rekey(args) => rekey::run(args).await,
        CaCommand::Crl(args) => crl::run(args).await,
        CaCommand::RootCrl(args) => root_crl::run(args).await,
        CaCommand::Publish(args) => publish::run(args).await,
        CaCommand::Certificates(command) => certificates::run(command).await,
        CaCommand::Audit(args) => audit::run(args).await,
    }
}

async fn bootstrap(args: BootstrapArgs) -> anyhow::Result<()> {
    let root = mayfly_client::Client::bootstrap_root(&args.ca_url, &args.fingerprint).await?;
    let base = mayfly_path()?;
    let root_path = base.join("certs/root_ca.crt");
    let defaults_path = Defaults::path()?;
    let defaults = Defaults {
        ca_url: Some(args.ca_url.trim_end_matches('/').to_string()),
        fingerprint: Some(mayfly_pki::cert::fingerprint_sha256(&root)),
        root: Some(root_path.display().to_string()),
        ca_config: None,
    };
    let root_pem = mayfly_pki::cert::certificate_pem(&root);
    let defaults_json = serde_json::to_vec_pretty(&defaults)?;
    ensure_parent(&root_path)?;
    ensure_parent(&defaults_path)?;
    write_all(
        &[
            Output {
                path: &root_path,
                contents: root_pem.as_bytes(),
                secret: false,
            },
            Output {
                path: &defaults_path,
                contents: &defaults_json,
                secret: false,
            },
        ],
        args.force,
    )?;
    note!(
        "The root certificate has been saved in {}.",
        root_path.display()
    );
    note!(
        "The authority configuration has been saved in {}.",
        defaults_path.display()
    );
    Ok(())
}

async fn root(args: RootArgs) -> anyhow::Result<()> {
    let defaults = Defaults::load()?;
    let url = args
        .ca_url
        .or(defaults.ca_url)
        .context("no CA URL: pass --ca-url or run 'mayfly ca bootstrap' first")?;
    let fingerprint = args
        .fingerprint
        .or(defaults.fingerprint)
        .context("no fingerprint: pass --fingerprint or run 'mayfly ca bootstrap' first")?;
    let root = mayfly_client::Client::bootstrap_root(&url, &fingerprint).await?;
    emit(
        args.file.as_deref(),
        &mayfly_pki::cert::certificate_pem(&root),
        args.force,
        "root certificate",
    )
}

async fn roots(args: RootsArgs) -> anyhow::Result<()> {
    let target = args.ca.target()?;
    let pems = target.client()?.roots().await?;
    emit(
        args.file.as_deref(),
        &pems.concat(),
        args.force,
        "root certificates",
    )
}

/// Writes `text` to `file`, or prints it.
fn emit(file: Option<&std::path::Path>, text: &str, force: bool, what: &str) -> anyhow::Result<()> {
    match file {
        Some(path) => {
            write_all(
                &[Output {
                    path,
                    contents: text.as_bytes(),
                    secret: false,
                }],
                force,
            )?;
            note!("The {what} has been saved in {}.", path.display());
        }
        None => out!("{text}")?,
    }
    Ok(())
}
