//! `certificate inspect` and `certificate fingerprint` (placeholder, being written).
#[derive(Debug, clap::Args)]
pub struct InspectArgs {}
#[derive(Debug, clap::Args)]
pub struct FingerprintArgs {}
pub async fn run(_args: InspectArgs) -> anyhow::Result<()> { anyhow::bail!("not yet") }
pub fn run_fingerprint(_args: FingerprintArgs) -> anyhow::Result<()> { anyhow::bail!("not yet") }
