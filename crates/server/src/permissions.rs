//! Files that hold secrets (ca.json, the CA's private keys, the password file) are refused when
//! every user of the host can read them, as OpenSSH refuses a private key anyone can read: a
//! world-readable copy of the CA's key is a compromise waiting for its first local user.
//! `--insecure-allow-world-readable` turns the check off.

use std::path::Path;

use mayfly_authority::config::{CaConfig, resolve_path};

/// Whether world-readable secret files stop the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilePermissions {
    /// Refuse them (the default).
    Enforce,
    /// Accept them (`--insecure-allow-world-readable`).
    AllowWorldReadable,
}

/// Bits of a mode that give every user some access.
const OTHERS: u32 = 0o007;

/// Refuses `path` when others may access it. Missing files pass: reading them fails later with a
/// message about what is missing.
pub fn check_file(path: &Path, what: &str, policy: FilePermissions) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if policy == FilePermissions::AllowWorldReadable {
        return Ok(());
    }
    let Ok(metadata) = std::fs::metadata(path) else {
        return Ok(());
    };
    let mode = metadata.permissions().mode() & 0o777;
    if mode & OTHERS != 0 {
        anyhow::bail!(
            "{} ({what}) can be read by every user of this host (mode {mode:04o}): run \
             `chmod o-rwx {}`, or start mayfly-ca with --insecure-allow-world-readable",
            path.display(),
            path.display()
        );
    }
    Ok(())
}

/// Checks ca.json at `config_path` and the private keys it names (relative paths resolve against
/// `base_dir`, as when they are loaded).
pub fn check_config_files(
    config: &CaConfig,
    config_path: &Path,
    base_dir: &Path,
    policy: FilePermissions,
) -> anyhow::Result<()> {
    check_file(config_path, "the CA configuration", policy)?;
    let resolve = |p: &str| resolve_path(base_dir, p);
    check_file(&resolve(&config.key), "the intermediate CA key", policy)?;
    if let Some(ssh) = &config.ssh {
        check_file(&resolve(&ssh.host_key), "the SSH host CA key", policy)?;
        check_file(&resolve(&ssh.user_key), "the SSH user CA key", policy)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn only_access_by_others_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        std::fs::write(&file, "x").unwrap();
        for (mode, refused) in [
            (0o600, false),
            (0o640, false),
            (0o400, false),
            (0o644, true),
            (0o604, true),
            (0o602, true),
        ] {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
            let outcome = check_file(&file, "a secret", FilePermissions::Enforce);
            assert_eq!(outcome.is_err(), refused, "mode {mode:o}: {outcome:?}");
            if let Err(error) = outcome {
                let message = error.to_string();
                assert!(message.contains(&format!("mode {mode:04o}")), "{message}");
                assert!(message.contains("chmod o-rwx"), "{message}");
                assert!(
                    message.contains("--insecure-allow-world-readable"),
                    "{message}"
                );
            }
            assert!(check_file(&file, "a secret", FilePermissions::AllowWorldReadable).is_ok());
        }
        assert!(
            check_file(
                &dir.path().join("missing"),
                "a secret",
                FilePermissions::Enforce
            )
            .is_ok()
        );
    }
}
