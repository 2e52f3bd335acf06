//! `mayfly ca publish`: write everything relying parties fetch (CRLs, pre-signed OCSP responses,
//! the CA certificates, the SSH KRL) as files for a plain web server or a CDN, from the CA's
//! own ca.json, keys and database: it needs no running mayfly-ca, and works beside one.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use mayfly_authority::publication::PublicPorts;
use mayfly_authority::static_site::StaticSite;
use mayfly_config::init::address_port;

use crate::output::write_stdout;

#[derive(Debug, clap::Args)]
pub struct PublishArgs {
    /// The directory to write to [default: ca.json's publication.dir]. Created if missing;
    /// each file in it is replaced atomically.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// The CA's configuration [default: "ca-config" in defaults.json, else
    /// $MAYFLY_PATH/config/ca.json].
    #[arg(long, value_name = "FILE")]
    ca_config: Option<PathBuf>,
    /// The file holding the password of the intermediate key (which signs the CRLs and the
    /// OCSP responder's certificate); ca.json's `password`, else asked at a terminal.
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
}

pub async fn run(args: PublishArgs) -> anyhow::Result<()> {
    let config_path = crate::context::ca_config_path(args.ca_config.as_deref())?;
    let loaded = mayfly_config::config::CaConfig::load(&config_path)?;
    let config = &loaded.config;
    let dir = match (
        &args.dir,
        config.publication.as_ref().and_then(|p| p.dir.as_ref()),
    ) {
        (Some(dir), _) => dir.clone(),
        (None, Some(dir)) => PathBuf::from(dir),
        (None, None) => anyhow::bail!(
            "no directory to publish to: give --dir, or set publication.dir in {}",
            config_path.display()
        ),
    };
    let ports = ports_of(config).with_context(|| config_path.display().to_string())?;
    let base_dir = std::env::current_dir().context("reading the working directory")?;
    let key_path = mayfly_config::config::resolve_path(&base_dir, &config.key);
    let key_is_encrypted = std::fs::read(&key_path)
        .map(|pem| mayfly_pki::keyfile::is_encrypted_pem(&pem))
        .unwrap_or(false);
    let password = match &args.password_file {
        Some(path) => Some(crate::password::from_file(path)?),
        None if config.password.is_some() || !key_is_encrypted => None,
        None => {
            let prompt = format!("Please enter the password to decrypt {}", config.key);
            Some(crate::password::obtain(None, &prompt, "--password-file")?)
        }
    };
    let material = mayfly_authority::LoadedMaterial::load(
        config,
        &base_dir,
        password.as_ref().map(|p| p.as_slice()),
    )
    .map_err(|e| e.in_file(&config_path))?;
    let database = crate::context::open_database(&loaded).await?;
    let authority = material
        .into_authority(
            config,
            ports,
            database.cert_store(),
            Some(database.ssh_store()),
            Arc::new(mayfly_authority::clock::SystemClock),
        )
        .map_err(|e| e.in_file(&config_path))?;
    let site = StaticSite::new(&dir);
    let full = database.full();
    let report = site
        .publish(&authority, full.as_ref())
        .await
        .with_context(|| format!("publishing to {}", dir.display()))?;
    note!(
        "Published to {}: {} CRLs, {} OCSP responses ({} removed), {} bytes.",
        dir.display(),
        report.crls,
        report.ocsp_responses,
        report.ocsp_removed,
        report.bytes
    );
    write_stdout(&format!("{}\n", dir.display()))
}

/// The ports the URLs in certificates name, as mayfly-ca derives them; a port chosen at start
/// (`:0`) is unknown here, and publishing under a wrong URL would be worse than refusing.
fn ports_of(config: &mayfly_config::config::CaConfig) -> anyhow::Result<PublicPorts> {
    let known = |field: &str, address: &str| -> anyhow::Result<u16> {
        address_port(address).filter(|p| *p != 0).ok_or_else(|| {
            anyhow::anyhow!(
                "{field} {address:?} names no fixed port, so the URLs certificates carry are \
                 unknown here: set publication.baseURL"
            )
        })
    };
    let base_url_set = config
        .publication
        .as_ref()
        .is_some_and(|p| p.base_url.is_some());
    if base_url_set {
        // The base URL decides; the ports are not used.
        return Ok(PublicPorts {
            https: address_port(&config.address).unwrap_or(443),
            http: None,
        });
    }
    let http = match config.insecure_address.as_deref().filter(|a| !a.is_empty()) {
        Some(address) => Some(known("insecureAddress", address)?),
        None => None,
    };
    Ok(PublicPorts {
        https: known("address", &config.address)?,
        http,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mayfly_config::config::{CaConfig, PublicationConfig};

    #[test]
    fn ports_must_be_fixed_unless_the_base_url_is_given() {
        let mut config = CaConfig {
            address: "127.0.0.1:9000".into(),
            insecure_address: Some(":9001".into()),
            ..Default::default()
        };
        let ports = ports_of(&config).unwrap();
        assert_eq!((ports.https, ports.http), (9000, Some(9001)));
        config.insecure_address = Some("127.0.0.1:0".into());
        let err = ports_of(&config).unwrap_err().to_string();
        assert!(
            err.contains("insecureAddress") && err.contains("publication.baseURL"),
            "{err}"
        );
        config.insecure_address = None;
        config.address = ":0".into();
        assert!(ports_of(&config).is_err());
        config.publication = Some(PublicationConfig {
            base_url: Some("http://pki.example".into()),
            ..Default::default()
        });
        assert!(ports_of(&config).is_ok());
    }
}
