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

/// Prints `text`; a closed pipe (`... | head`) is not an error worth a panic or a message.
pub fn write_stdout(text: &str) -> anyhow::Result<()> {
    use anyhow::Context as _;
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(e).context("cannot write to standard output")
        }
        _ => Ok(()),
    }
}

/// step asks before overwriting a file that exists; without a terminal, `--force` is required.
pub fn confirm_overwrite(path: &Path) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    if !path.exists() {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        bail!(
            "{} already exists: use --force to overwrite it",
            path.display()
        );
    }
    let answer = crate::password::prompt_line(
        &format!("Would you like to overwrite {} [y/n]", path.display()),
        "--force",
    )?;
    if answer.eq_ignore_ascii_case("y") || answer.eq_ignore_ascii_case("yes") {
        Ok(())
    } else {
        bail!("not overwriting {}", path.display())
    }
}
