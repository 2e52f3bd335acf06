//! `mayfly crypto change-pass`: re-encrypt a private key file with a new password.
//!
//! Passwords of CA keys should change when people who knew them leave, without reissuing
//! anything. step's `crypto change-pass` does this but writes `--out` with mode 0644 and
//! in place without an atomic rename; here the key is written through
//! [`mayfly_config::files::write_atomic`] with mode 0600 in every case, so a crash leaves the
//! old key or the new one, never half of either, and a wrong old password leaves the file
//! untouched.

use std::path::{Path, PathBuf};

use anyhow::Context;
use mayfly_config::files::{SECRET_MODE, write_atomic};
use mayfly_pki::keyfile;

#[derive(Debug, clap::Args)]
pub struct ChangePassArgs {
    /// The private key file (PEM: PKCS#8, encrypted PKCS#8, SEC1 or PKCS#1, legacy encryption
    /// included).
    key_file: PathBuf,
    /// File with the current password of the key [default: ask at the terminal].
    ///
    /// Not needed when the key is not encrypted.
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
    /// File with the new password [default: ask twice at the terminal].
    #[arg(long, value_name = "FILE", conflicts_with = "no_password")]
    new_password_file: Option<PathBuf>,
    /// Write the re-encrypted key here instead of replacing KEY_FILE (mode 0600).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Write the key without encryption (requires --insecure).
    #[arg(long, requires = "insecure")]
    no_password: bool,
    /// Allow insecure choices such as --no-password.
    #[arg(long)]
    insecure: bool,
    /// Overwrite the --out file if it exists.
    #[arg(long, short)]
    force: bool,
}

pub fn run(args: ChangePassArgs) -> anyhow::Result<()> {
    let target = args.out.as_deref().unwrap_or(&args.key_file);
    if args.out.is_some() && !args.force {
        crate::output::confirm_overwrite(target)?;
    }
    let pem = zeroize::Zeroizing::new(
        std::fs::read(&args.key_file)
            .with_context(|| format!("cannot read {}", args.key_file.display()))?,
    );
    let old_password = if keyfile::is_encrypted_pem(&pem) {
        Some(crate::password::obtain(
            args.password_file.as_deref(),
            &format!(
                "Please enter the password to decrypt {}",
                args.key_file.display()
            ),
            "--password-file FILE",
        )?)
    } else {
        None
    };
    let key = keyfile::decode_private_key_pem(&pem, old_password.as_ref().map(|p| p.as_slice()))
        .with_context(|| args.key_file.display().to_string())?;
    let new_password = if args.no_password {
        None
    } else {
        Some(crate::password::obtain_new(
            args.new_password_file.as_deref(),
            &format!(
                "Please enter the new password to encrypt {}",
                target.display()
            ),
            "--new-password-file FILE (or --no-password --insecure)",
        )?)
    };
    let new_pem = zeroize::Zeroizing::new(keyfile::encode_private_key_pem(
        &key,
        new_password.as_ref().map(|p| p.as_slice()),
    )?);
    let path = write_path(target);
    write_atomic(&path, new_pem.as_bytes(), SECRET_MODE)?;
    note!("Your private key has been saved in {}.", target.display());
    Ok(())
}

/// The file to replace: through a symbolic link to the file it names, so that a key linked
/// from elsewhere is updated rather than the link replaced by a copy.
fn write_path(target: &Path) -> PathBuf {
    match std::fs::symlink_metadata(target) {
        Ok(meta) if meta.file_type().is_symlink() => {
            std::fs::canonicalize(target).unwrap_or_else(|_| target.to_path_buf())
        }
        _ => target.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_symlink_is_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.key");
        let link = dir.path().join("link.key");
        std::fs::write(&real, b"x").unwrap();
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert_eq!(write_path(&link), std::fs::canonicalize(&real).unwrap());
        assert_eq!(write_path(&real), real);
        let missing = dir.path().join("missing.key");
        assert_eq!(write_path(&missing), missing);
    }

    fn args(key: &Path, old: &Path, new: &Path, out: Option<&Path>) -> ChangePassArgs {
        ChangePassArgs {
            key_file: key.to_path_buf(),
            password_file: Some(old.to_path_buf()),
            new_password_file: Some(new.to_path_buf()),
            out: out.map(Path::to_path_buf),
            no_password: false,
            insecure: false,
            force: false,
        }
    }

    #[test]
    fn re_encrypts_in_place_and_a_wrong_password_changes_nothing() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let (key_path, old, new) = (
            dir.path().join("k.key"),
            dir.path().join("old"),
            dir.path().join("new"),
        );
        std::fs::write(&old, "old password\n").unwrap();
        std::fs::write(&new, "new password\n").unwrap();
        let key = mayfly_pki::PrivateKey::generate(mayfly_pki::KeyAlgorithm::EcP256).unwrap();
        let pem =
            keyfile::encode_private_key_pem_with_iterations(&key, Some(b"old password"), 1000)
                .unwrap();
        std::fs::write(&key_path, &pem).unwrap();

        // The new password file given as the old one: refused, file unchanged.
        let err = run(args(&key_path, &new, &new, None)).unwrap_err();
        assert!(
            format!("{err:#}").contains("password is incorrect"),
            "{err:#}"
        );
        assert_eq!(std::fs::read_to_string(&key_path).unwrap(), pem);

        run(args(&key_path, &old, &new, None)).unwrap();
        let written = std::fs::read(&key_path).unwrap();
        assert!(keyfile::decode_private_key_pem(&written, Some(b"old password")).is_err());
        let again = keyfile::decode_private_key_pem(&written, Some(b"new password")).unwrap();
        assert_eq!(again.pkcs8_der(), key.pkcs8_der());
        let mode = std::fs::metadata(&key_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);

        // --out that exists needs --force.
        let out = dir.path().join("out.key");
        std::fs::write(&out, b"keep").unwrap();
        let err = run(args(&key_path, &new, &old, Some(&out))).unwrap_err();
        assert!(err.to_string().contains("--force"), "{err}");
        assert_eq!(std::fs::read(&out).unwrap(), b"keep");
        let mut forced = args(&key_path, &new, &old, Some(&out));
        forced.force = true;
        run(forced).unwrap();
        let out_key =
            keyfile::decode_private_key_pem(&std::fs::read(&out).unwrap(), Some(b"old password"))
                .unwrap();
        assert_eq!(out_key.pkcs8_der(), key.pkcs8_der());
    }

    #[test]
    fn no_password_requires_insecure() {
        use clap::Parser;
        #[derive(Debug, Parser)]
        struct Cli {
            #[command(flatten)]
            args: ChangePassArgs,
        }
        assert!(Cli::try_parse_from(["t", "k.key", "--no-password"]).is_err());
        let cli = Cli::try_parse_from(["t", "k.key", "--no-password", "--insecure"]).unwrap();
        assert!(cli.args.no_password);
        assert!(
            Cli::try_parse_from([
                "t",
                "k.key",
                "--no-password",
                "--insecure",
                "--new-password-file",
                "p"
            ])
            .is_err()
        );
    }
}
