//! Files that hold a secret in clear (a private key without encryption, the password file, a
//! ca.json with a password in it) are refused when every user of the host can read them, as
//! OpenSSH refuses a private key anyone can read: a world-readable copy of the CA's key is a
//! compromise waiting for its first local user. `--insecure-allow-world-readable` turns the
//! refusal off.
//!
//! A world-readable file whose secrets are encrypted (step's keys, a ca.json with only
//! password-encrypted provisioner keys: what `step ca init` writes, with ca.json at 0644) is
//! not a compromise, but it invites offline guessing of the password, so it is named in one
//! warning and the server starts.

use std::path::{Path, PathBuf};

use mayfly_config::config::{CaConfig, resolve_path};

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

/// How exposed a file's secret is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secrecy {
    /// The file holds a secret in clear: refused when others can read it.
    Clear,
    /// The file's secrets are encrypted: a warning when others can read it.
    Encrypted,
}

/// A file others can read whose secrets are encrypted; the caller warns about these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readable {
    pub path: PathBuf,
    pub mode: u32,
    /// `Clear` only when the refusal is turned off.
    pub secrecy: Secrecy,
}

/// Checks `path`: an error when others may access it and it holds a secret in clear, a
/// [`Readable`] when they may and its secrets are encrypted. Missing files pass: reading them
/// fails later with a message about what is missing.
pub fn check_file(
    path: &Path,
    what: &str,
    secrecy: Secrecy,
    policy: FilePermissions,
) -> anyhow::Result<Option<Readable>> {
    use std::os::unix::fs::PermissionsExt;
    let Ok(metadata) = std::fs::metadata(path) else {
        return Ok(None);
    };
    let mode = metadata.permissions().mode() & 0o777;
    if mode & OTHERS == 0 {
        return Ok(None);
    }
    if secrecy == Secrecy::Clear && policy == FilePermissions::Enforce {
        anyhow::bail!(
            "{} ({what}) can be read by every user of this host (mode {mode:04o}): run \
             `chmod o-rwx {}`, or start mayfly-ca with --insecure-allow-world-readable",
            path.display(),
            path.display()
        );
    }
    Ok(Some(Readable {
        path: path.to_path_buf(),
        mode,
        secrecy,
    }))
}

/// A private key file: in clear unless it is an encrypted PEM key. A file that cannot be read
/// counts as in clear (the check must not pass what it cannot see).
fn key_secrecy(path: &Path) -> Secrecy {
    match std::fs::read(path) {
        Ok(text) if mayfly_pki::keyfile::is_encrypted_pem(&text) => Secrecy::Encrypted,
        _ => Secrecy::Clear,
    }
}

/// Checks ca.json at `config_path` and the private keys it names (relative paths resolve against
/// `base_dir`, as when they are loaded). Returns the one warning line to log when some of them
/// are readable by everyone but hold no secret in clear.
pub fn check_config_files(
    config: &CaConfig,
    config_path: &Path,
    base_dir: &Path,
    policy: FilePermissions,
) -> anyhow::Result<Option<String>> {
    let in_clear = config.secrets_in_clear();
    let (config_secrecy, config_what) = if in_clear.is_empty() {
        (Secrecy::Encrypted, "the CA configuration".to_owned())
    } else {
        (
            Secrecy::Clear,
            format!(
                "the CA configuration, with {} in clear",
                in_clear.join(" and ")
            ),
        )
    };
    let mut readable = Vec::new();
    readable.extend(check_file(
        config_path,
        &config_what,
        config_secrecy,
        policy,
    )?);
    let resolve = |p: &str| resolve_path(base_dir, p);
    let mut keys = vec![(resolve(&config.key), "the intermediate CA key")];
    if let Some(ssh) = &config.ssh {
        keys.push((resolve(&ssh.host_key), "the SSH host CA key"));
        keys.push((resolve(&ssh.user_key), "the SSH user CA key"));
    }
    for (path, what) in keys {
        let secrecy = key_secrecy(&path);
        let what = match secrecy {
            Secrecy::Clear => format!("{what}, not encrypted"),
            Secrecy::Encrypted => what.to_owned(),
        };
        readable.extend(check_file(&path, &what, secrecy, policy)?);
    }
    // The embedded database: no key in it, but the inventory of every certificate, the audit
    // log, and the used tokens whose loss would let a token be replayed; mayfly creates its
    // files 0600, and one left open to every user (by an older version, or a copy) is refused.
    if let Ok(mayfly_store::Location::Sqlite(database)) =
        mayfly_store::Location::of(config, config_path)
    {
        for suffix in ["", "-wal", "-shm"] {
            let mut name = database.clone().into_os_string();
            name.push(suffix);
            let path = PathBuf::from(name);
            let what = "the database of certificates, used tokens and the audit log";
            readable.extend(check_file(&path, what, Secrecy::Clear, policy)?);
        }
    }
    Ok(warning(&readable))
}

/// One line naming every file others can read whose secrets are encrypted (those in clear
/// pass only under `--insecure-allow-world-readable`, which has its own warning).
fn warning(readable: &[Readable]) -> Option<String> {
    let files: Vec<String> = readable
        .iter()
        .filter(|r| r.secrecy == Secrecy::Encrypted)
        .map(|r| format!("{} (mode {:04o})", r.path.display(), r.mode))
        .collect();
    if files.is_empty() {
        return None;
    }
    Some(format!(
        "{}: readable by every user of this host; no secret is there in clear, but the \
         password-encrypted keys invite offline guessing: consider `chmod o-rwx`",
        files.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn only_access_by_others_to_a_clear_secret_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        std::fs::write(&file, "x").unwrap();
        for (mode, exposed) in [
            (0o600, false),
            (0o640, false),
            (0o400, false),
            (0o644, true),
            (0o604, true),
            (0o602, true),
        ] {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
            let outcome = check_file(&file, "a secret", Secrecy::Clear, FilePermissions::Enforce);
            assert_eq!(outcome.is_err(), exposed, "mode {mode:o}: {outcome:?}");
            if let Err(error) = outcome {
                let message = error.to_string();
                assert!(message.contains(&format!("mode {mode:04o}")), "{message}");
                assert!(message.contains("chmod o-rwx"), "{message}");
                assert!(
                    message.contains("--insecure-allow-world-readable"),
                    "{message}"
                );
            }
            let allowed = check_file(
                &file,
                "a secret",
                Secrecy::Clear,
                FilePermissions::AllowWorldReadable,
            )
            .unwrap();
            assert_eq!(allowed.is_some(), exposed, "mode {mode:o}");
            let encrypted =
                check_file(&file, "a key", Secrecy::Encrypted, FilePermissions::Enforce).unwrap();
            assert_eq!(encrypted.map(|r| r.mode), exposed.then_some(mode));
        }
        assert!(
            check_file(
                &dir.path().join("missing"),
                "a secret",
                Secrecy::Clear,
                FilePermissions::Enforce
            )
            .unwrap()
            .is_none()
        );
    }

    /// The decision per file: what `step ca init` writes (ca.json 0644 without secrets, keys
    /// encrypted) starts with one warning; a key in clear, or a ca.json with a password, stops.
    #[test]
    fn what_a_file_holds_decides_between_warning_and_refusal() {
        let dir = tempfile::tempdir().unwrap();
        let key =
            mayfly_pki::key::PrivateKey::generate(mayfly_pki::key::KeyAlgorithm::EcP256).unwrap();
        let encrypted =
            mayfly_pki::keyfile::encode_private_key_pem_with_iterations(&key, Some(b"pw"), 1000)
                .unwrap();
        let clear = mayfly_pki::keyfile::encode_private_key_pem(&key, None).unwrap();
        let key_path = dir.path().join("key");
        let config_path = dir.path().join("ca.json");
        let write = |path: &Path, text: &str, mode: u32| {
            std::fs::write(path, text).unwrap();
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        let config_text = |extra: &str| {
            format!(
                r#"{{"root":"r","crt":"c","key":"{}","address":":1","dnsNames":[],{extra}
                "authority":{{"provisioners":[]}}}}"#,
                key_path.display()
            )
        };
        let cases = [
            // (ca.json extra fields, ca.json mode, key text, key mode, outcome)
            ("", 0o644, &encrypted, 0o600, Ok(1)),
            ("", 0o644, &encrypted, 0o644, Ok(2)),
            ("", 0o600, &encrypted, 0o600, Ok(0)),
            (
                "",
                0o600,
                &clear,
                0o644,
                Err("the intermediate CA key, not encrypted"),
            ),
            ("", 0o600, &clear, 0o600, Ok(0)),
            (
                r#""password":"pw","#,
                0o644,
                &encrypted,
                0o600,
                Err("with password in clear"),
            ),
            (
                r#""db":{"type":"mysql","dataSource":"ca:pw@tcp(h)/","database":"d"},"#,
                0o604,
                &encrypted,
                0o600,
                Err("with db.dataSource in clear"),
            ),
            (
                r#""db":{"type":"mysql","dataSource":"ca@tcp(h)/","database":"d"},"#,
                0o604,
                &encrypted,
                0o600,
                Ok(1),
            ),
        ];
        for (extra, config_mode, key_text, key_mode, expected) in cases {
            write(&config_path, &config_text(extra), config_mode);
            write(&key_path, key_text, key_mode);
            let (config, _) = CaConfig::parse(&config_text(extra)).unwrap();
            let outcome =
                check_config_files(&config, &config_path, dir.path(), FilePermissions::Enforce);
            match (outcome, expected) {
                (Ok(warning), Ok(files)) => {
                    let count = warning
                        .as_deref()
                        .map_or(0, |w| w.matches("(mode ").count());
                    assert_eq!(
                        count, files,
                        "{extra} {config_mode:o} {key_mode:o}: {warning:?}"
                    );
                    if let Some(warning) = warning {
                        assert_eq!(warning.lines().count(), 1, "{warning}");
                    }
                }
                (Err(error), Err(expected)) => {
                    let message = error.to_string();
                    assert!(message.contains(expected), "{message}");
                    assert!(!message.contains("pw@"), "{message}");
                    let allowed = check_config_files(
                        &config,
                        &config_path,
                        dir.path(),
                        FilePermissions::AllowWorldReadable,
                    );
                    assert!(allowed.is_ok(), "{allowed:?}");
                }
                (outcome, expected) => {
                    panic!(
                        "{extra} {config_mode:o} {key_mode:o}: {outcome:?}, expected {expected:?}"
                    )
                }
            }
        }
    }

    /// The embedded database and its WAL files are refused when every user may read them: the
    /// inventory, the audit log and the used tokens are the CA's business only.
    #[test]
    fn a_database_open_to_every_user_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("ca.json");
        let database = dir.path().join("mayfly.db");
        let text = format!(
            r#"{{"root":"r","crt":"c","key":"k","address":":1","dnsNames":[],
            "db":{{"type":"sqlite","dataSource":"{}"}},"authority":{{"provisioners":[]}}}}"#,
            database.display()
        );
        std::fs::write(&config_path, &text).unwrap();
        std::fs::set_permissions(&config_path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let (config, _) = CaConfig::parse(&text).unwrap();
        let check =
            || check_config_files(&config, &config_path, dir.path(), FilePermissions::Enforce);
        assert!(check().is_ok(), "no database yet: nothing to refuse");
        for suffix in ["", "-wal", "-shm"] {
            let path = PathBuf::from(format!("{}{suffix}", database.display()));
            std::fs::write(&path, b"").unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            assert!(check().is_ok(), "{suffix}: 0600 is fine");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            let error = check().unwrap_err().to_string();
            assert!(
                error.contains(&path.display().to_string()) && error.contains("audit log"),
                "{error}"
            );
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
    }
}
