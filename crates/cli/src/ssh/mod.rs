//! `mayfly ssh ...`: SSH user and host certificates from the CA's SSH CA.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use clap::Subcommand;
use mayfly_pki::ssh::SshPublicKey;
use mayfly_proto::ssh::SshConfigRequest;

use crate::ca::token::{self, ProvisionerFlags, TokenRequest};
use crate::context::CaFlags;
use crate::output::{Output, write_all, write_stdout};

mod agent;
mod certificate;
mod inspect;
mod login;

#[derive(Debug, Subcommand)]
pub enum SshCommand {
    /// Create an SSH key pair (or sign an existing public key with --sign) and get a user or
    /// host certificate for it: writes KEY_FILE, KEY_FILE.pub and KEY_FILE-cert.pub.
    ///
    /// Example: mayfly ssh certificate alice@example.com id_ecdsa --principal alice --add-to-agent
    Certificate(certificate::CertificateArgs),
    /// Get an SSH user certificate for a new key and put both in the ssh-agent: with an OIDC
    /// provisioner, after logging in at its provider; with a JWK provisioner, for IDENTITY.
    ///
    /// The key is never written to disk; the agent forgets it when the certificate expires.
    /// Without --force nothing is done while the agent holds a valid certificate from this CA
    /// for IDENTITY. Examples:
    ///
    ///   mayfly ssh login --provisioner Google
    ///
    ///   mayfly ssh login alice --provisioner ops --not-after 1h
    Login(login::LoginArgs),
    /// Remove this CA's certificates (with --all: every key) from the ssh-agent; with IDENTITY
    /// only those whose comment it is.
    ///
    /// Example: mayfly ssh logout alice@example.com
    Logout(login::LogoutArgs),
    /// List the keys and certificates in the ssh-agent, like `ssh-add -l` (-L with --raw).
    ///
    /// Example: mayfly ssh list alice@example.com --raw
    List(login::ListArgs),
    /// Print an SSH certificate, like `ssh-keygen -L` (or as JSON).
    ///
    /// Example: mayfly ssh inspect id_ecdsa-cert.pub --format json
    Inspect(inspect::InspectArgs),
    /// Print the CA keys or configuration snippets for SSH clients and hosts.
    ///
    /// --roots prints the user CA keys (for sshd's TrustedUserCAKeys); --host --roots the host
    /// CA keys (for `@cert-authority` in known_hosts); --host the sshd_config lines; no flag
    /// the client's `@cert-authority` known_hosts line. Example:
    ///
    ///   mayfly ssh config --host --set HostKey=/etc/ssh/ssh_host_ecdsa_key
    Config(ConfigArgs),
    /// Renew a host certificate: the host's key proves possession (SSH-POP), the new
    /// certificate has the same principals and lifetime.
    ///
    /// Example: mayfly ssh renew ssh_host_ecdsa_key-cert.pub ssh_host_ecdsa_key --force
    Renew(certificate::RenewArgs),
    /// Replace a host's key: a new key pair and a certificate for it, authorised by the
    /// current certificate and key (SSH-POP).
    ///
    /// Example: mayfly ssh rekey ssh_host_ecdsa_key-cert.pub ssh_host_ecdsa_key --out new_host_key
    Rekey(certificate::RekeyArgs),
    /// Revoke an SSH certificate by serial number; it then appears in the KRL (`ssh krl`).
    ///
    /// Example: mayfly ssh revoke 7887351871112993341 --reason "laptop lost"
    Revoke(RevokeArgs),
    /// Download the OpenSSH key revocation list of revoked SSH certificates, for sshd's
    /// RevokedKeys.
    ///
    /// Example: mayfly ssh krl --out /etc/ssh/mayfly.krl
    Krl(KrlArgs),
    /// Ask the CA whether a host has a valid host certificate: prints true or false.
    ///
    /// Example: mayfly ssh check-host web1.internal
    CheckHost(CheckHostArgs),
    /// List the hosts that have a valid host certificate, one per line. The CA answers only
    /// clients with an X.509 certificate it issued (mutual TLS).
    ///
    /// Example: mayfly ssh hosts --cert me.crt --key me.key
    Hosts(HostsArgs),
}

pub async fn run(command: SshCommand) -> anyhow::Result<()> {
    match command {
        SshCommand::Certificate(args) => certificate::run_certificate(args).await,
        SshCommand::Login(args) => login::run_login(args).await,
        SshCommand::Logout(args) => login::run_logout(args).await,
        SshCommand::List(args) => login::run_list(args).await,
        SshCommand::Inspect(args) => inspect::run(args),
        SshCommand::Config(args) => config(args).await,
        SshCommand::Renew(args) => certificate::run_renew(args).await,
        SshCommand::Rekey(args) => certificate::run_rekey(args).await,
        SshCommand::Revoke(args) => revoke(args).await,
        SshCommand::Krl(args) => krl(args).await,
        SshCommand::CheckHost(args) => check_host(args).await,
        SshCommand::Hosts(args) => hosts(args).await,
    }
}

#[derive(Debug, clap::Args)]
pub struct ConfigArgs {
    /// Print CA public keys instead of configuration: the user CA's, or with --host the host
    /// CA's.
    #[arg(long)]
    roots: bool,
    /// Like --roots, with the federated CA keys this CA also trusts.
    #[arg(long, conflicts_with = "roots")]
    federation: bool,
    /// The host side: sshd_config lines (or, with --roots, the host CA keys).
    #[arg(long)]
    host: bool,
    /// A value for the snippets, NAME=VALUE; repeatable. Hosts: HostKey (or Key),
    /// HostCertificate (or Certificate), TrustedUserCAKeys, RevokedKeys. Users: KnownHosts, Hosts.
    #[arg(long, value_name = "NAME=VALUE")]
    set: Vec<String>,
    #[command(flatten)]
    ca: CaFlags,
}

async fn config(args: ConfigArgs) -> anyhow::Result<()> {
    let client = args.ca.target()?.client()?;
    if args.roots || args.federation {
        let keys = if args.federation {
            client.ssh_federation().await?
        } else {
            client.ssh_roots().await?
        };
        let chosen = if args.host {
            keys.host_key
        } else {
            keys.user_key
        };
        let mut text = String::new();
        for key in chosen {
            let blob = STANDARD
                .decode(key.as_bytes())
                .context("the CA sent an SSH key that is not base64")?;
            text.push_str(&SshPublicKey::from_blob(&blob)?.to_line());
            text.push('\n');
        }
        return write_stdout(&text);
    }
    let mut data = BTreeMap::new();
    for item in &args.set {
        let (name, value) = item
            .split_once('=')
            .with_context(|| format!("--set {item:?}: expected NAME=VALUE"))?;
        data.insert(name.trim().to_string(), value.trim().to_string());
    }
    let response = client
        .ssh_config(&SshConfigRequest {
            kind: if args.host { "host" } else { "user" }.into(),
            data,
        })
        .await?;
    let templates = if args.host {
        response.host_templates
    } else {
        response.user_templates
    };
    // Only the configuration proper (sshd_config lines, or the known_hosts line), so the output
    // can be appended to its file as it is; the CA key files come from --roots.
    let first = templates
        .first()
        .context("the CA sent no configuration snippet")?;
    let text =
        std::str::from_utf8(&first.content).context("the CA sent a snippet that is not text")?;
    write_stdout(text)
}

#[derive(Debug, clap::Args)]
pub struct RevokeArgs {
    /// Serial number (decimal) of the SSH certificate to revoke [default: the serial of
    /// --sshpop-cert].
    #[arg(required_unless_present = "sshpop_cert")]
    serial: Option<String>,
    /// Prove possession instead of using a provisioner: the SSH certificate to revoke...
    #[arg(long, value_name = "FILE", requires = "sshpop_key")]
    sshpop_cert: Option<PathBuf>,
    /// ...and its private key, which signs the SSH-POP token.
    #[arg(long, value_name = "FILE", requires = "sshpop_cert")]
    sshpop_key: Option<PathBuf>,
    /// File with the password of --sshpop-key, if it is encrypted.
    #[arg(long, value_name = "FILE", requires = "sshpop_key")]
    password_file: Option<PathBuf>,
    /// Why, in words.
    #[arg(long, value_name = "TEXT", default_value = "")]
    reason: String,
    /// RFC 5280 reason: 0 unspecified, 1 keyCompromise, 3 affiliationChanged, 4 superseded,
    /// 5 cessationOfOperation, 9 privilegeWithdrawn (the code or the name).
    #[arg(
        long = "reasonCode",
        alias = "reason-code",
        value_name = "CODE",
        default_value = "0"
    )]
    reason_code: String,
    /// A revocation token from `mayfly ca token --ssh --revoke SERIAL` [default: create one
    /// with the provisioner key].
    #[arg(long, value_name = "TOKEN", env = "MAYFLY_TOKEN")]
    token: Option<String>,
    #[command(flatten)]
    provisioner: ProvisionerFlags,
    /// File holding the provisioner password (when no --token is given).
    #[arg(long, value_name = "FILE", env = "MAYFLY_PROVISIONER_PASSWORD_FILE")]
    provisioner_password_file: Option<PathBuf>,
    #[command(flatten)]
    ca: CaFlags,
}

async fn revoke(args: RevokeArgs) -> anyhow::Result<()> {
    let reason = mayfly_authority::revocation::ReasonCode::parse(&args.reason_code)?.revocable()?;
    let target = args.ca.target()?;
    let sshpop = match (&args.sshpop_cert, &args.sshpop_key) {
        (Some(cert), Some(key)) if args.token.is_none() => Some(
            certificate::sshpop_token(
                cert,
                key,
                args.password_file.as_deref(),
                &target,
                "ssh/revoke",
            )
            .await?,
        ),
        _ => None,
    };
    let serial: u64 = match (&args.serial, &sshpop) {
        (Some(text), _) => text
            .trim()
            .parse()
            .with_context(|| format!("serial {text:?} is not a decimal number"))?,
        (None, Some((certificate, _))) => certificate.template.serial,
        (None, None) => bail!("give the serial number, or --sshpop-cert and --sshpop-key"),
    };
    let ott = match (&args.token, sshpop) {
        (Some(token), _) => token.trim().to_string(),
        (None, Some((_, token))) => token,
        (None, None) => {
            token::mint(
                &target,
                &TokenRequest {
                    subject: &serial.to_string(),
                    endpoint: "ssh/revoke",
                    sans: &[],
                    not_before: None,
                    not_after: None,
                    provisioner: args.provisioner.provisioner.as_deref(),
                    password_file: args.provisioner_password_file.as_deref(),
                    ssh: None,
                },
            )
            .await?
        }
    };
    target
        .client()?
        .ssh_revoke(&mayfly_proto::RevokeRequest {
            serial: serial.to_string(),
            ott: Some(ott),
            reason_code: i64::from(reason.code()),
            reason: args.reason,
            passive: true,
        })
        .await?;
    note!("SSH certificate with serial number {serial} has been revoked.");
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct KrlArgs {
    /// Where to write the KRL (binary, as sshd's RevokedKeys reads it).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    #[command(flatten)]
    ca: CaFlags,
}

async fn krl(args: KrlArgs) -> anyhow::Result<()> {
    let krl = args.ca.target()?.client()?.ssh_krl().await?;
    // Replaced whole and atomically: sshd may read it at any moment.
    write_all(
        &[Output {
            path: &args.out,
            contents: &krl,
            secret: false,
        }],
        true,
    )?;
    note!("The KRL has been saved in {}.", args.out.display());
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct CheckHostArgs {
    /// The host name to look for among the principals of valid host certificates.
    hostname: String,
    #[command(flatten)]
    ca: CaFlags,
}

async fn check_host(args: CheckHostArgs) -> anyhow::Result<()> {
    if args.hostname.trim().is_empty() {
        bail!("the host name is empty");
    }
    let response = args
        .ca
        .target()?
        .client()?
        .ssh_check_host(&args.hostname)
        .await?;
    write_stdout(&format!("{}\n", response.exists))
}

#[derive(Debug, clap::Args)]
pub struct HostsArgs {
    /// An X.509 client certificate (chain, PEM) issued by this CA.
    #[arg(long, value_name = "FILE")]
    cert: PathBuf,
    /// Its private key (PEM).
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// File with the password of --key, if it is encrypted.
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
    #[command(flatten)]
    ca: CaFlags,
}

async fn hosts(args: HostsArgs) -> anyhow::Result<()> {
    let target = args.ca.target()?;
    let chain = crate::context::read_certificates(&args.cert)?;
    let key = crate::password::read_private_key(
        &args.key,
        args.password_file.as_deref(),
        "--password-file FILE",
    )?;
    crate::identity::check(&args.cert, &chain, &args.key, &key, &target.roots)?;
    let client =
        mayfly_client::Client::with_identity(&target.url, &target.roots, &chain, key.pkcs8_der())?;
    let response = client.ssh_hosts().await?;
    let text: String = response
        .hosts
        .iter()
        .map(|h| format!("{}\n", h.hostname))
        .collect();
    write_stdout(&text)
}
