//! Man pages, generated from the clap definitions themselves so they cannot drift from `--help`.

use std::path::Path;

use anyhow::Context;

/// Writes `command`'s man page and one for each of its subcommands, recursively, into `dir`
/// (`mayfly.1`, `mayfly-ca.1`, `mayfly-ca-init.1`, ...), in manual `section`, each naming
/// `source` (the program and version) in its footer.
pub fn write_man_pages(
    command: clap::Command,
    dir: &Path,
    section: &str,
    source: &str,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut command = command.disable_help_subcommand(true);
    // Gives every subcommand its full name (mayfly-ca-init) for its page's title and file.
    command.build();
    let written = write_tree(&command, dir, section, source)?;
    note!("{written} man pages written to {}", dir.display());
    Ok(())
}

fn write_tree(
    command: &clap::Command,
    dir: &Path,
    section: &str,
    source: &str,
) -> anyhow::Result<usize> {
    let mut written = 0;
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        written += write_tree(sub, dir, section, source)?;
    }
    let man = clap_mangen::Man::new(command.clone())
        .section(section)
        .source(source);
    let mut page = Vec::new();
    man.render(&mut page)
        .with_context(|| format!("rendering the man page of {}", command.get_name()))?;
    let path = dir.join(man.get_filename());
    mayfly_config::files::write_atomic(&path, &page, mayfly_config::files::PUBLIC_MODE)?;
    Ok(written + 1)
}
