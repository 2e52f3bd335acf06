//! `mayfly ca crl`: fetch the CA's CRL and check it before showing or saving it: the intermediate
//! that signed it must chain to the trusted roots, and its signature must verify.

use std::path::PathBuf;

use anyhow::Context;
use mayfly_authority::revocation::ReasonCode;
use x509_parser::prelude::FromDer;
use x509_parser::revocation_list::CertificateRevocationList;

use crate::context::CaFlags;
use crate::output::{Output, write_all, write_stdout};

#[derive(Debug, clap::Args)]
pub struct CrlArgs {
    /// Write the CRL to FILE (DER, or PEM with --pem) instead of printing a summary.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// PEM instead of DER; without --out, print the PEM.
    #[arg(long)]
    pem: bool,
    /// The delta CRL instead of the complete one.
    #[arg(long)]
    delta: bool,
    /// Overwrite --out if it exists.
    #[arg(long, short)]
    force: bool,
    #[command(flatten)]
    ca: CaFlags,
}

pub async fn run(args: CrlArgs) -> anyhow::Result<()> {
    let target = args.ca.target()?;
    let client = target.client()?;
    let der = client.crl(args.delta).await?;
    let intermediate = client.intermediate().await?;
    let now = time::OffsetDateTime::now_utc();
    mayfly_pki::verify::verify_chain(std::slice::from_ref(&intermediate), &target.roots, now)
        .context("the CA's intermediate certificate does not chain to the trusted root")?;
    let (_, crl) = CertificateRevocationList::from_der(&der)
        .map_err(|e| anyhow::anyhow!("the CA sent something that is not a CRL: {e}"))?;
    let (_, issuer) = x509_parser::parse_x509_certificate(&intermediate)
        .map_err(|e| anyhow::anyhow!("the CA's intermediate certificate: {e}"))?;
    crl.verify_signature(issuer.public_key()).map_err(|_| {
        anyhow::anyhow!("the CRL's signature does not verify with the intermediate's key")
    })?;
    let pem_text = || {
        pem::encode_config(
            &pem::Pem::new("X509 CRL", der.clone()),
            pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
        )
    };
    match (&args.out, args.pem) {
        (Some(path), pem) => {
            let contents = if pem {
                pem_text().into_bytes()
            } else {
                der.clone()
            };
            write_all(
                &[Output {
                    path,
                    contents: &contents,
                    secret: false,
                }],
                args.force,
            )?;
            note!("The CRL has been saved in {}.", path.display());
            Ok(())
        }
        (None, true) => write_stdout(&pem_text()),
        (None, false) => write_stdout(&summary(&crl, args.delta)),
    }
}

fn summary(crl: &CertificateRevocationList<'_>, delta: bool) -> String {
    let mut out = String::new();
    let number = crl
        .crl_number()
        .map_or_else(|| "none".to_string(), ToString::to_string);
    out.push_str(&format!(
        "{} CRL number {number}, signature verified\n",
        if delta { "Delta" } else { "Complete" }
    ));
    out.push_str(&format!("Issuer:       {}\n", crl.issuer()));
    out.push_str(&format!(
        "This update:  {}\n",
        crl.last_update().to_datetime()
    ));
    if let Some(next) = crl.next_update() {
        out.push_str(&format!("Next update:  {}\n", next.to_datetime()));
    }
    let entries: Vec<_> = crl.iter_revoked_certificates().collect();
    out.push_str(&format!("Revoked:      {}\n", entries.len()));
    for entry in entries {
        let reason = entry
            .reason_code()
            .and_then(|(_, code)| ReasonCode::from_code(i64::from(code.0)).ok())
            .map_or("unspecified", ReasonCode::name);
        out.push_str(&format!(
            "  {}  {}  {reason}\n",
            mayfly_pki::SerialNumber::from_be_bytes(entry.raw_serial()).to_decimal(),
            entry.revocation_date.to_datetime()
        ));
    }
    out
}
