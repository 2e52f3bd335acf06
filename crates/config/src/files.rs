//! Writing files the way a CA must: atomically (temp file in the same directory, fsync, rename)
//! and with the permissions fixed before any byte of a secret reaches the disk.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::error::{Error, Result};

/// Mode of private keys and other secrets.
pub const SECRET_MODE: u32 = 0o600;
/// Mode of public files (certificates, configs without secrets).
pub const PUBLIC_MODE: u32 = 0o644;
/// Mode of the directories mayfly creates.
pub const DIR_MODE: u32 = 0o700;

/// Creates `dir` and its missing parents with mode 0700.
pub fn create_dir_private(dir: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .map_err(|e| Error::Io(format!("cannot create directory {}: {e}", dir.display())))
}

/// Writes `contents` to `path` atomically with `mode`. A reader sees the old file or the whole
/// new one; a crash leaves at most a stray `.tmp` file, never a truncated key.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    replace(path, contents, mode, true)
}

/// Like [`write_atomic`] but without the syncs: readers still see the old file or the whole new
/// one, yet a crash may lose the new one. For files regenerated anyway (published CRLs and OCSP
/// responses), where a sync per file would cost more than the writing.
pub fn replace_unsynced(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    replace(path, contents, mode, false)
}

fn replace(path: &Path, contents: &[u8], mode: u32, sync: bool) -> Result<()> {
    let io =
        |what: &str, e: std::io::Error| Error::Io(format!("cannot {what} {}: {e}", path.display()));
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .ok_or_else(|| Error::Io(format!("{} is not a file path", path.display())))?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
            .map_err(|e| io("create a temporary file for", e))?;
        // The umask may have narrowed the mode; secrets must never be wider than asked.
        file.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(|e| io("set permissions of", e))?;
        file.write_all(contents).map_err(|e| io("write", e))?;
        if sync {
            file.sync_all().map_err(|e| io("sync", e))?;
        }
        fs::rename(&tmp, path).map_err(|e| io("replace", e))?;
        if sync && let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_with_the_requested_mode_and_replaces_whole() {
        let dir = std::env::temp_dir().join(format!("mayfly-files-{}", std::process::id()));
        create_dir_private(&dir).unwrap();
        let path = dir.join("key");
        write_atomic(&path, b"one", SECRET_MODE).unwrap();
        write_atomic(&path, b"two", SECRET_MODE).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        assert_eq!(
            fs::read_dir(&dir).unwrap().count(),
            1,
            "no temporary file left"
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_directory_is_an_error_naming_the_path() {
        let err = write_atomic(Path::new("/nonexistent-dir/x/key"), b"k", SECRET_MODE).unwrap_err();
        assert!(err.to_string().contains("/nonexistent-dir/x/key"), "{err}");
    }
}
