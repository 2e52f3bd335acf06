//! `mayfly ca revoke`: passive revocation (the CA refuses to renew the certificate), authorised
//! by a one-time token for the serial or by the certificate and its key over mutual TLS.

use std::path::PathBuf;

use anyhow::{Context, bail};
use mayfly_authority::revocation::ReasonCode;
use mayfly_pki::cert::CertificateInfo;
use mayfly_proto::RevokeRequest;

use super::token::{self, ProvisionerFlags, TokenRequest};
use crate::context::{CaFlags, read_certificates};
use crate::password;

#[derive(Debug, clap::Args)]
pub struct RevokeArgs {
    /// Serial number (decimal) of the certificate to revoke; with --cert, taken from it.
    #[arg(required_unless_present = "cert")]
    serial: Option<String>,
    /// Revoke this certificate, proving possession of --key over mutual TLS.
    #[arg(long, value_name = "FILE", requires = "key", conflicts_with = "token")]
    cert: Option<PathBuf>,
    /// The private key of --cert.
    #[arg(long, value_name = "FILE", requires = "cert")]
    key: Option<PathBuf>,
    /// File with the password of --key, if it is encrypted.
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
    /// RFC 5280 reason: 0 unspecified, 1 keyCompromise, 3 affiliationChanged, 4 superseded,
    /// 5 cessationOfOperation, 9 privilegeWithdrawn (the code or the name).
    #[arg(
        long = "reasonCode",
        alias = "reason-code",
        value_name = "CODE|NAME",
        default_value = "unspecified"
    )]
    reason_code: String,
    /// Why, in words; recorded with the revocation.
    #[arg(long, value_name = "TEXT", default_value = "")]
    reason: String,
    /// A revocation token from `mayfly ca token SERIAL --revoke` [default: create one with the
    /// provisioner key].
    #[arg(long, value_name = "TOKEN", env = "MAYFLY_TOKEN")]
    token: Option<String>,
    #[command(flatten)]
    provisioner: ProvisionerFlags,
    /// Revoke in the CA's database directly, without the HTTP API: for when the CA is down, or
    /// from the CA's host. Works while mayfly-ca runs on the same SQLite store.
    #[arg(long, conflicts_with_all = ["cert", "token"])]
    offline: bool,
    /// The CA's configuration, for --offline [default: "ca-config" in defaults.json, else
    /// $MAYFLY_PATH/config/ca.json].
    #[arg(long, value_name = "FILE", requires = "offline")]
    ca_config: Option<PathBuf>,
    /// File holding the provisioner password (when a token is created here).
    #[arg(long, value_name = "FILE", env = "MAYFLY_PROVISIONER_PASSWORD_FILE")]
    provisioner_password_file: Option<PathBuf>,
    #[command(flatten)]
    ca: CaFlags,
}

pub async fn run(args: RevokeArgs) -> anyhow::Result<()> {
    let reason_code = ReasonCode::parse(&args.reason_code)
        .map_err(|_| anyhow::anyhow!("--reasonCode {:?} is not an RFC 5280 reason: use 0, 1, 3, 4, 5, 9 or a name such as keyCompromise", args.reason_code))?
        .revocable()
        .map_err(|e| anyhow::anyhow!("--reasonCode: {e}"))?;
    if args.offline {
        return offline(&args, reason_code).await;
    }
    let target = args.ca.target()?;
    let (serial, client, ott) = match (&args.cert, &args.key) {
        (Some(cert), Some(key_file)) => {
            let chain = read_certificates(cert)?;
            let leaf = chain
                .first()
                .with_context(|| format!("{}: no certificate", cert.display()))?;
            let serial = CertificateInfo::from_der(leaf)?.serial.to_decimal();
            if let Some(asked) = &args.serial
                && *asked != serial
            {
                bail!("{} has serial number {serial}, not {asked}", cert.display());
            }
            let key = password::read_private_key(
                key_file,
                args.password_file.as_deref(),
                "--password-file FILE",
            )?;
            crate::identity::check(cert, &chain, key_file, &key, &target.roots)?;
            let client = mayfly_client::Client::with_identity(
                &target.url,
                &target.roots,
                &chain,
                key.pkcs8_der(),
            )?;
            (serial, client, None)
        }
        _ => {
            let serial = args
                .serial
                .clone()
                .context("the serial number to revoke is missing")?;
            let ott = match &args.token {
                Some(token) => token.trim().to_string(),
                None => {
                    token::mint(
                        &target,
                        &TokenRequest {
                            ssh: None,
                            subject: &serial,
                            endpoint: "revoke",
                            sans: &[],
                            not_before: None,
                            not_after: None,
                            provisioner: args.provisioner.provisioner.as_deref(),
                            password_file: args.provisioner_password_file.as_deref(),
                        },
                    )
                    .await?
                }
            };
            (serial, target.client()?, Some(ott))
        }
    };
    client
        .revoke(&RevokeRequest {
            serial: serial.clone(),
            ott,
            reason_code: i64::from(reason_code.code()),
            reason: args.reason.clone(),
            passive: true,
        })
        .await?;
    note!("✔ CA: {}", target.url);
    outln!("Certificate with Serial Number {serial} has been revoked.")?;
    Ok(())
}

/// The audit entry's detail of an offline revocation: the reason, and who ran the command, since
/// no credential says it.
fn offline_detail(reason_code: ReasonCode, reason: &str) -> String {
    let user = std::env::var("USER").unwrap_or_default();
    let mut detail = mayfly_authority::audit::revocation_detail(reason_code, reason);
    if !user.is_empty() {
        detail.push_str(&format!(" (mayfly ca revoke --offline by {user})"));
    }
    detail
}

/// Records the revocation in the store named by ca.json. Passive revocation needs no key, so no
/// password is asked for.
async fn offline(args: &RevokeArgs, reason_code: ReasonCode) -> anyhow::Result<()> {
    let serial = args
        .serial
        .clone()
        .context("the serial number to revoke is missing")?;
    let serial = mayfly_pki::SerialNumber::from_decimal(&serial)
        .map_err(|_| anyhow::anyhow!("serial number {serial:?} is not a decimal number"))?
        .to_decimal();
    let store = crate::context::offline_database(args.ca_config.as_deref())
        .await?
        .cert_store();
    let revocation = mayfly_authority::store::Revocation {
        serial: serial.clone(),
        reason_code: reason_code.code(),
        reason: args.reason.clone(),
        revoked_at: time::OffsetDateTime::now_utc(),
        revoked_by: "offline".into(),
    };
    let audit = mayfly_authority::audit::AuditContext::without_client(
        mayfly_authority::audit::AuditAction::Revoked,
        revocation.revoked_at,
        "offline",
        offline_detail(reason_code, &args.reason),
    );
    mayfly_authority::revocation::record(store.as_ref(), revocation, None, &audit).await?;
    outln!("Certificate with Serial Number {serial} has been revoked.")?;
    Ok(())
}
