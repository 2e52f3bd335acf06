//! `mayfly ca audit`: the CA's audit log, one entry for every certificate issued, renewed,
//! rekeyed or revoked, through the admin API (`GET /1.0/admin/audit`), or with --offline
//! straight from the database ca.json names.

use std::path::PathBuf;

use anyhow::Context;
use mayfly_authority::audit::{AuditEntry, AuditQuery};
use mayfly_client::AuditFilter;
use mayfly_proto::AuditEntryBody;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::certificates::{AdminFlags, Format, admin_client};
use crate::output::write_stdout;

/// Entries asked for per request.
const PAGE: u32 = 500;

#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// Only the entries about this serial number (decimal).
    #[arg(long, value_name = "SERIAL")]
    serial: Option<String>,
    /// Only the entries from this time on: RFC 3339 (2026-12-01T00:00:00Z), or a duration
    /// before now (24h, 30m).
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// Only the entries after this id (the last one seen, to follow the log).
    #[arg(long, value_name = "ID")]
    after: Option<u64>,
    /// Output format: one line per entry, or a JSON array.
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    /// Read the database named by ca.json directly instead of asking the CA (on the CA's
    /// host, or anywhere its database is reachable; no admin credential is needed).
    #[arg(long)]
    offline: bool,
    /// The CA's configuration, for --offline [default: "ca-config" in defaults.json, else
    /// $MAYFLY_PATH/config/ca.json].
    #[arg(long, value_name = "FILE", requires = "offline")]
    ca_config: Option<PathBuf>,
    #[command(flatten)]
    admin: AdminFlags,
}

pub async fn run(args: AuditArgs) -> anyhow::Result<()> {
    if let Some(serial) = &args.serial
        && (serial.is_empty() || !serial.bytes().all(|b| b.is_ascii_digit()))
    {
        anyhow::bail!("--serial {serial:?} is not a decimal serial number");
    }
    let since = args.since.as_deref().map(parse_since).transpose()?;
    let entries = if args.offline {
        read_offline(&args, since).await?
    } else {
        read_online(&args, since).await?
    };
    let text = match args.format {
        Format::Json => format!("{}\n", serde_json::to_string_pretty(&entries)?),
        Format::Table => table(&entries),
    };
    write_stdout(&text)
}

/// `--since`: an RFC 3339 time, or a Go-style duration before now.
fn parse_since(text: &str) -> anyhow::Result<OffsetDateTime> {
    if let Ok(time) = OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(time);
    }
    let ago: mayfly_config::duration::GoDuration = text.parse().map_err(|_| {
        anyhow::anyhow!(
            "--since {text:?} is neither an RFC 3339 time (2026-12-01T00:00:00Z) nor a \
             duration (24h)"
        )
    })?;
    Ok(OffsetDateTime::now_utc() - ago.0)
}

async fn read_online(
    args: &AuditArgs,
    since: Option<OffsetDateTime>,
) -> anyhow::Result<Vec<AuditEntryBody>> {
    let (client, token) = admin_client(&args.admin).await?;
    let since = since.map(|t| t.format(&Rfc3339)).transpose()?;
    let filter = AuditFilter {
        serial: args.serial.as_deref(),
        since: since.as_deref(),
    };
    let mut all = Vec::new();
    let mut after = args.after;
    loop {
        let page = client
            .audit_page(&filter, after, PAGE, token.as_deref())
            .await
            .context("reading the audit log")?;
        all.extend(page.entries);
        match page.next {
            Some(next) if after != Some(next) => after = Some(next),
            _ => return Ok(all),
        }
    }
}

async fn read_offline(
    args: &AuditArgs,
    since: Option<OffsetDateTime>,
) -> anyhow::Result<Vec<AuditEntryBody>> {
    let store = crate::context::offline_database(args.ca_config.as_deref())
        .await?
        .full();
    let mut all = Vec::new();
    let mut after = args.after;
    loop {
        let query = AuditQuery {
            after,
            serial: args.serial.clone(),
            since,
            limit: PAGE,
        };
        let page = store
            .audit_entries(&query)
            .await
            .map_err(|e| anyhow::anyhow!("reading the audit log: {e}"))?;
        all.extend(page.iter().map(entry_body));
        match page.last() {
            Some(last) if page.len() == PAGE as usize => after = Some(last.id),
            _ => return Ok(all),
        }
    }
}

fn entry_body(entry: &AuditEntry) -> AuditEntryBody {
    AuditEntryBody {
        id: entry.id,
        at: entry
            .at
            .format(&Rfc3339)
            .unwrap_or_else(|_| entry.at.unix_timestamp().to_string()),
        action: entry.action.as_str().to_owned(),
        serial: entry.serial.clone(),
        subject: entry.subject.clone(),
        sans: entry.sans.clone(),
        provisioner: entry.provisioner.clone(),
        credential: entry.credential.clone(),
        address: entry.address.clone(),
        detail: entry.detail.clone(),
    }
}

fn table(entries: &[AuditEntryBody]) -> String {
    let mut out = format!(
        "{:<8}  {:<20}  {:<11}  {:<40}  {:<16}  {:<24}  {:<15}  SUBJECT\n",
        "ID", "TIME", "ACTION", "SERIAL", "PROVISIONER", "CREDENTIAL", "ADDRESS"
    );
    for e in entries {
        out.push_str(&format!(
            "{:<8}  {:<20}  {:<11}  {:<40}  {:<16}  {:<24}  {:<15}  {}\n",
            e.id, e.at, e.action, e.serial, e.provisioner, e.credential, e.address, e.subject
        ));
    }
    out
}
