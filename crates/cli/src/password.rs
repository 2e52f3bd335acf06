//! Passwords: from a file (step's rules: trailing whitespace trimmed, leading kept), or typed at
//! a terminal. Never from a flag value, so they stay out of shell history and `ps`.

use std::io::IsTerminal;
use std::path::Path;

use anyhow::{Context, bail};
use zeroize::Zeroizing;

/// Reads a password file.
pub fn from_file(path: &Path) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    let raw = Zeroizing::new(
        std::fs::read(path)
            .with_context(|| format!("cannot read password file {}", path.display()))?,
    );
    Ok(Zeroizing::new(
        mayfly_pki::keyfile::read_password_file_bytes(&raw),
    ))
}

/// The password from `file` if given, else typed at the terminal; `flag` names the flag to
/// suggest when there is no terminal.
pub fn obtain(file: Option<&Path>, prompt: &str, flag: &str) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    if let Some(file) = file {
        return from_file(file);
    }
    if !std::io::stdin().is_terminal() {
        bail!("{prompt}: no terminal to ask on; pass {flag} FILE");
    }
    let typed =
        rpassword::prompt_password(format!("{prompt}: ")).context("reading the password")?;
    Ok(Zeroizing::new(typed.into_bytes()))
}

/// Like [`obtain`], but a new password is asked twice and must not be empty.
pub fn obtain_new(
    file: Option<&Path>,
    prompt: &str,
    flag: &str,
) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    if let Some(file) = file {
        let password = from_file(file)?;
        if password.is_empty() {
            bail!("password file {} is empty", file.display());
        }
        return Ok(password);
    }
    let first = obtain(None, prompt, flag)?;
    if first.is_empty() {
        bail!("the password must not be empty");
    }
    let again = obtain(None, "Confirm the password", flag)?;
    if *first != *again {
        bail!("the passwords do not match");
    }
    Ok(first)
}

/// Reads a private key file, asking for its password (from `password_file`, or at a terminal)
/// only when the key is encrypted; `flag` names the password flag in errors.
pub fn read_private_key(
    key_file: &Path,
    password_file: Option<&Path>,
    flag: &str,
) -> anyhow::Result<mayfly_pki::PrivateKey> {
    let pem = Zeroizing::new(
        std::fs::read(key_file).with_context(|| format!("cannot read {}", key_file.display()))?,
    );
    let password = if mayfly_pki::keyfile::is_encrypted_pem(&pem) {
        let prompt = format!(
            "Please enter the password to decrypt {}",
            key_file.display()
        );
        Some(obtain(password_file, &prompt, flag)?)
    } else {
        None
    };
    mayfly_pki::keyfile::decode_private_key_pem(&pem, password.as_ref().map(|p| p.as_slice()))
        .with_context(|| key_file.display().to_string())
}

/// Reads a line typed at the terminal; fails naming `flag` when there is none.
pub fn prompt_line(prompt: &str, flag: &str) -> anyhow::Result<String> {
    if !std::io::stdin().is_terminal() {
        bail!("missing {flag}: pass it, or run in a terminal to be asked");
    }
    eprint!("{prompt}: ");
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("reading from the terminal")?;
    let line = line.trim().to_string();
    if line.is_empty() {
        bail!("missing {flag}");
    }
    Ok(line)
}
