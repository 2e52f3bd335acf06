//! Where the client's state lives: `$MAYFLY_PATH` (like STEPPATH) and its `config/defaults.json`
//! (`ca-url`, `fingerprint`, `root`), with flags and environment variables taking precedence.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

/// `$MAYFLY_PATH`, or `~/.mayfly`.
pub fn mayfly_path() -> anyhow::Result<PathBuf> {
    Ok(mayfly_config::init::mayfly_path()?)
}

/// `config/defaults.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Defaults {
    #[serde(rename = "ca-url", default, skip_serializing_if = "Option::is_none")]
    pub ca_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<String>,
    #[serde(rename = "ca-config", default, skip_serializing_if = "Option::is_none")]
    pub ca_config: Option<String>,
}

impl Defaults {
    pub fn path() -> anyhow::Result<PathBuf> {
        Ok(mayfly_path()?.join("config/defaults.json"))
    }

    /// Reads defaults.json; a missing file means no defaults.
    pub fn load() -> anyhow::Result<Self> {
        let path = Self::path()?;
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .with_context(|| format!("{} is not valid defaults JSON", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }
}

/// The flags every command that talks to a CA takes.
#[derive(Debug, Clone, clap::Args)]
pub struct CaFlags {
    /// URL of the CA [default: "ca-url" in $MAYFLY_PATH/config/defaults.json].
    #[arg(long, value_name = "URI", env = "MAYFLY_CA_URL")]
    pub ca_url: Option<String>,
    /// Root certificate (PEM) the CA must chain to [default: "root" in defaults.json].
    #[arg(long, value_name = "FILE", env = "MAYFLY_ROOT")]
    pub root: Option<PathBuf>,
}

/// A CA to talk to, with its root loaded.
pub struct CaTarget {
    pub url: String,
    pub roots: Vec<Vec<u8>>,
}

impl CaTarget {
    pub fn client(&self) -> anyhow::Result<mayfly_client::Client> {
        Ok(mayfly_client::Client::new(&self.url, &self.roots)?)
    }

    /// SHA-256 fingerprint of the first root.
    pub fn root_fingerprint(&self) -> String {
        self.roots
            .first()
            .map(|r| mayfly_pki::cert::fingerprint_sha256(r))
            .unwrap_or_default()
    }
}

impl CaFlags {
    /// Resolves URL and root from flags, then defaults.json.
    pub fn target(&self) -> anyhow::Result<CaTarget> {
        let defaults = Defaults::load()?;
        let url = self.ca_url.clone().or(defaults.ca_url).context(
            "no CA URL: pass --ca-url or run 'mayfly ca bootstrap --ca-url URL --fingerprint FP' first",
        )?;
        let root = match (&self.root, &defaults.root) {
            (Some(root), _) => root.clone(),
            (None, Some(root)) => PathBuf::from(root),
            (None, None) => {
                bail!("no root certificate: pass --root or run 'mayfly ca bootstrap' first")
            }
        };
        let roots = read_certificates(&root)?;
        Ok(CaTarget { url, roots })
    }
}

/// All certificates of a PEM file.
/// The database of the CA whose ca.json is `given` [default: "ca-config" in defaults.json, else
/// $MAYFLY_PATH/config/ca.json], opened directly, for the `--offline` commands.
pub async fn offline_database(given: Option<&Path>) -> anyhow::Result<mayfly_store::AnyStore> {
    let config_path = ca_config_path(given)?;
    let loaded = mayfly_config::config::CaConfig::load(&config_path)?;
    open_database(&loaded).await
}

/// The CA's ca.json: `given`, else "ca-config" in defaults.json, else
/// $MAYFLY_PATH/config/ca.json.
pub fn ca_config_path(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    Ok(match given {
        Some(path) => path.to_path_buf(),
        None => match Defaults::load()?.ca_config {
            Some(path) => PathBuf::from(path),
            None => mayfly_path()?.join("config/ca.json"),
        },
    })
}

/// The database a loaded ca.json names.
pub async fn open_database(
    loaded: &mayfly_config::config::LoadedConfig,
) -> anyhow::Result<mayfly_store::AnyStore> {
    let config_path = &loaded.path;
    let in_file = || format!("{}: db", config_path.display());
    let location =
        mayfly_store::Location::of(&loaded.config, &loaded.path).with_context(in_file)?;
    mayfly_store::AnyStore::open(&location)
        .await
        .with_context(in_file)
}

pub fn read_certificates(path: &Path) -> anyhow::Result<Vec<Vec<u8>>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    mayfly_pki::cert::certificates_from_pem(&bytes).with_context(|| path.display().to_string())
}
