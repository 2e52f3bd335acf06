//! `mayfly ssh inspect`: an SSH certificate as `ssh-keygen -L` prints it, or as JSON.

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;
use clap::ValueEnum;
use mayfly_pki::ssh::SshCertificate;
use mayfly_pki::ssh::cert::FOREVER;

use crate::output::write_stdout;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// The certificate file (KEY-cert.pub), or - for standard input.
    cert_file: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

/// A certificate time as ssh-keygen writes it, in UTC.
fn when(seconds: u64) -> String {
    if seconds == FOREVER {
        return "forever".into();
    }
    i64::try_from(seconds)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second]"
            ))
            .ok()
        })
        .unwrap_or_else(|| seconds.to_string())
}

fn rfc3339(seconds: u64) -> String {
    i64::try_from(seconds)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| seconds.to_string())
}

pub fn run(args: InspectArgs) -> anyhow::Result<()> {
    let text = if args.cert_file.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading standard input")?;
        text
    } else {
        std::fs::read_to_string(&args.cert_file)
            .with_context(|| format!("cannot read {}", args.cert_file.display()))?
    };
    let certificate =
        SshCertificate::parse_line(&text).with_context(|| args.cert_file.display().to_string())?;
    let t = &certificate.template;
    let out = match args.format {
        Format::Json => {
            let value = serde_json::json!({
                "type": certificate.public_key.algorithm().certificate_type(),
                "certType": t.cert_type.as_str(),
                "publicKey": certificate.public_key.fingerprint(),
                "signingCA": certificate.signature_key.fingerprint(),
                "keyID": t.key_id,
                "serial": t.serial.to_string(),
                "validAfter": rfc3339(t.valid_after),
                "validBefore": if t.valid_before == FOREVER { "forever".to_string() } else { rfc3339(t.valid_before) },
                "principals": t.principals,
                "criticalOptions": t.critical_options,
                "extensions": t.extensions,
            });
            format!("{}\n", serde_json::to_string_pretty(&value)?)
        }
        Format::Text => {
            let list = |items: Vec<String>| {
                if items.is_empty() {
                    " (none)\n".to_string()
                } else {
                    items
                        .iter()
                        .map(|i| format!("\n                {i}"))
                        .collect::<String>()
                        + "\n"
                }
            };
            let options = |map: &std::collections::BTreeMap<String, String>| {
                list(
                    map.iter()
                        .map(|(k, v)| {
                            if v.is_empty() {
                                k.clone()
                            } else {
                                format!("{k} {v}")
                            }
                        })
                        .collect(),
                )
            };
            format!(
                "{}:\n        Type: {} {} certificate\n        Public key: {}-CERT {}\n        \
                 Signing CA: {} {}\n        Key ID: \"{}\"\n        Serial: {}\n        \
                 Valid: from {} to {} (UTC)\n        Principals:{}        Critical Options:{}        \
                 Extensions:{}",
                args.cert_file.display(),
                certificate.public_key.algorithm().certificate_type(),
                t.cert_type.as_str(),
                certificate.public_key.algorithm().short_name(),
                certificate.public_key.fingerprint(),
                certificate.signature_key.algorithm().short_name(),
                certificate.signature_key.fingerprint(),
                t.key_id,
                t.serial,
                when(t.valid_after),
                when(t.valid_before),
                list(t.principals.clone()),
                options(&t.critical_options),
                options(&t.extensions),
            )
        }
    };
    write_stdout(&out)
}
