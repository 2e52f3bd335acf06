//! Writing results: refuse to overwrite without `--force`, check every target before writing
//! any, and write each file atomically with its mode so a failure leaves no partial output.

use std::path::Path;

use anyhow::bail;
use mayfly_config::files::{self, PUBLIC_MODE, SECRET_MODE};

/// A file a command is about to write.
pub struct Output<'a> {
    pub path: &'a Path,
    pub contents: &'a [u8],
    pub secret: bool,
}

/// Writes all `outputs`, or none if one exists and `force` is not set.
pub fn write_all(outputs: &[Output<'_>], force: bool) -> anyhow::Result<()> {
    if !force && let Some(existing) = outputs.iter().find(|o| o.path.exists()) {
        bail!(
            "{} already exists: use --force to overwrite it",
            existing.path.display()
        );
    }
    for output in outputs {
        let mode = if output.secret {
            SECRET_MODE
        } else {
            PUBLIC_MODE
        };
        files::write_atomic(output.path, output.contents, mode)?;
    }
    Ok(())
}

/// Creates the parent directory of a file inside MAYFLY_PATH.
pub fn ensure_parent(path: &Path) -> anyhow::Result<()> {
    if let Some(parent) = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty() && !p.exists())
    {
        files::create_dir_private(parent)?;
    }
    Ok(())
}

/// Standard output was closed by its reader (`mayfly ca roots | head`). Not a failure: the
/// command stops writing and exits 0 without a message, as `head` wanted.
#[derive(Debug)]
pub struct ClosedPipe;

impl std::fmt::Display for ClosedPipe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("standard output was closed")
    }
}

impl std::error::Error for ClosedPipe {}

/// Prints `text`; a closed pipe is [`ClosedPipe`], never a panic.
pub fn write_stdout(text: &str) -> anyhow::Result<()> {
    use anyhow::Context as _;
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(ClosedPipe.into()),
        Err(e) => Err(e).context("cannot write to standard output"),
    }
}

/// Prints `text` on standard error, ignoring failures (see `note!`).
pub fn write_stderr(text: &str) {
    use std::io::Write as _;
    let mut stderr = std::io::stderr().lock();
    let _ = stderr
        .write_all(text.as_bytes())
        .and_then(|()| stderr.flush());
}

/// step asks before overwriting a file that exists; without a terminal, `--force` is required.
pub fn confirm_overwrite(path: &Path) -> anyhow::Result<()> {
    if !path.exists() {
        return Ok(());
    }
    if !crate::prompt::interactive() {
        bail!(
            "{} already exists: use --force to overwrite it",
            path.display()
        );
    }
    if crate::prompt::confirm(
        &format!("Would you like to overwrite {}", path.display()),
        "--force",
    )? {
        Ok(())
    } else {
        bail!("{} already exists and was not overwritten", path.display())
    }
}
