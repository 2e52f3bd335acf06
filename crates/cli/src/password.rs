//! Passwords: from a file (step's rules: trailing whitespace trimmed, leading kept), or typed at
//! a terminal. Never from a flag value, so they stay out of shell history and `ps`.
//!
//! Every function that may ask takes `flag`, the flag that supplies the password instead (with
//! its `FILE` placeholder, e.g. `--provisioner-password-file FILE`): without a terminal the
//! error names it, so the fix is in the message.

use std::path::Path;

use anyhow::{Context, bail};
use base64::Engine as _;
use zeroize::Zeroizing;

use crate::prompt::{ATTEMPTS, interactive};

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

/// The password from `file` if given, else typed at the terminal after `prompt`.
pub fn obtain(file: Option<&Path>, prompt: &str, flag: &str) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    match file {
        Some(file) => from_file(file),
        None => ask(prompt, flag),
    }
}

/// Asks once, without echo.
fn ask(prompt: &str, flag: &str) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    if !interactive() {
        bail!("no terminal to ask for {}: pass {flag}", topic(prompt));
    }
    let typed =
        rpassword::prompt_password(format!("{prompt}: ")).context("reading the password")?;
    Ok(Zeroizing::new(typed.into_bytes()))
}

/// "the password to decrypt X" from "Please enter the password to decrypt X", for errors.
fn topic(prompt: &str) -> &str {
    ["Please enter ", "Choose "]
        .iter()
        .find_map(|lead| prompt.strip_prefix(lead))
        .unwrap_or(prompt)
}

/// A new password: from `file` (which must not be empty), or typed twice at the terminal. An
/// empty or mismatched answer is asked again, as step does.
pub fn obtain_new(
    file: Option<&Path>,
    prompt: &str,
    flag: &str,
) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    match file {
        Some(file) => nonempty_file(file),
        None => choose(prompt, flag, false),
    }
}

/// Like [`obtain_new`], but at the terminal an empty answer generates a strong password, which
/// is shown once (step's `ca init`).
pub fn obtain_new_or_generate(
    file: Option<&Path>,
    prompt: &str,
    flag: &str,
) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    match file {
        Some(file) => nonempty_file(file),
        None => choose(prompt, flag, true),
    }
}

fn nonempty_file(file: &Path) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    let password = from_file(file)?;
    if password.is_empty() {
        bail!("password file {} is empty", file.display());
    }
    Ok(password)
}

fn choose(prompt: &str, flag: &str, generate: bool) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    if !interactive() {
        bail!("no terminal to ask for {}: pass {flag}", topic(prompt));
    }
    let asked = if generate {
        format!("{prompt} [leave empty and we'll generate one]")
    } else {
        prompt.to_string()
    };
    for _ in 0..ATTEMPTS {
        let first = ask(&asked, flag)?;
        if first.is_empty() {
            if generate {
                let password = generated()?;
                note!(
                    "✔ Password: {}\n  Keep it safe: it is shown only this once.",
                    String::from_utf8_lossy(&password)
                );
                return Ok(password);
            }
            note!("The password must not be empty. Try again.");
            continue;
        }
        let again = ask("Confirm the password", flag)?;
        if *first == *again {
            return Ok(first);
        }
        note!("The passwords do not match. Try again.");
    }
    bail!("no password chosen after {ATTEMPTS} attempts")
}

/// 32 characters of base64url over 24 random bytes: 192 bits, easy to copy.
fn generated() -> anyhow::Result<Zeroizing<Vec<u8>>> {
    let bytes = Zeroizing::new(mayfly_pki::random::random_bytes(24)?);
    Ok(Zeroizing::new(
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(bytes.as_slice())
            .into_bytes(),
    ))
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
