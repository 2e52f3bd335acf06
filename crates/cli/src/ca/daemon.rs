//! `mayfly ca renew --daemon`: keep a certificate fresh.
//!
//! Renews at two thirds of each lifetime plus a random delay (so a fleet does not renew at the
//! same moment), retries with capped exponential backoff while the certificate is still valid
//! (so it rides out CA restarts), renews at once on SIGHUP, and after each renewal runs
//! `--exec` as an argument vector (no shell: quoted arguments keep their spaces) and/or signals
//! `--pid`. Each step is one line on stderr.

use std::time::Duration;

use anyhow::{Context, bail};
use mayfly_config::duration::GoDuration;
use mayfly_pki::cert::CertificateInfo;
use time::OffsetDateTime;
use tokio::signal::unix::{SignalKind, signal};

use super::renew::{RenewArgs, Renewer};
use crate::context::read_certificates;

/// The first retry comes quickly (a CA restart takes seconds); later ones back off to this.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

pub(super) async fn run(args: &RenewArgs, renewer: &Renewer) -> anyhow::Result<()> {
    let renew_period = parse_duration("--renew-period", args.renew_period.as_deref())?;
    let jitter = parse_duration("--jitter", args.jitter.as_deref())?;
    let mut hangup = signal(SignalKind::hangup()).context("listening for SIGHUP")?;
    let current_path = || {
        if renewer.out.exists() {
            renewer.out.clone()
        } else {
            renewer.source.clone()
        }
    };
    let mut info = current_info(&current_path())?;
    log(&format!("renewing {} as a daemon", renewer.out.display()));
    loop {
        let lifetime = info.not_after - info.not_before;
        let base = info.not_before + renew_period.unwrap_or(lifetime * 2 / 3);
        let spread = jitter.unwrap_or(lifetime / 20);
        let renew_at = base + spread * random_fraction()?;
        log(&format!(
            "next renewal at {} (certificate expires at {})",
            rfc3339(renew_at),
            rfc3339(info.not_after)
        ));
        let wait = renew_at - OffsetDateTime::now_utc();
        if wait > time::Duration::ZERO {
            tokio::select! {
                () = tokio::time::sleep(wait.unsigned_abs()) => {}
                _ = hangup.recv() => log("SIGHUP: renewing now"),
            }
        }
        let mut backoff = Duration::from_secs(1);
        info = loop {
            match renewer.renew().await {
                Ok(renewed) => {
                    log(&format!(
                        "renewed {}: serial {}, valid until {}",
                        renewer.out.display(),
                        renewed.serial.to_decimal(),
                        rfc3339(renewed.not_after)
                    ));
                    after_renewal(args);
                    break renewed;
                }
                Err(error) => {
                    if OffsetDateTime::now_utc() >= info.not_after {
                        bail!(
                            "{} expired before it could be renewed: {}",
                            renewer.out.display(),
                            mayfly_authority::error::one_line(error.as_ref())
                        );
                    }
                    log(&format!(
                        "renewal failed, retrying in {}s: {}",
                        backoff.as_secs(),
                        mayfly_authority::error::one_line(error.as_ref())
                    ));
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        _ = hangup.recv() => log("SIGHUP: retrying now"),
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        };
    }
}

/// Runs `--exec` and signals `--pid`, logging what happened; a failing hook does not stop
/// renewals (the next renewal runs it again).
pub(super) fn after_renewal(args: &RenewArgs) {
    if let Some(command) = &args.exec {
        match split_command(command) {
            Ok(argv) => match argv.split_first() {
                Some((program, rest)) => {
                    match std::process::Command::new(program).args(rest).status() {
                        Ok(status) => log(&format!("--exec {command:?} exited with {status}")),
                        Err(e) => log(&format!("--exec {command:?} could not start: {e}")),
                    }
                }
                None => log("--exec is empty: nothing run"),
            },
            Err(e) => log(&format!("--exec {command:?}: {e}")),
        }
    }
    if let Some(pid) = args.pid {
        match std::process::Command::new("kill")
            .args(["-s", &args.signal, &pid.to_string()])
            .status()
        {
            Ok(status) if status.success() => {
                log(&format!("sent SIG{} to process {pid}", args.signal))
            }
            Ok(status) => log(&format!(
                "signalling process {pid} failed: kill exited with {status}"
            )),
            Err(e) => log(&format!("signalling process {pid} failed: {e}")),
        }
    }
}

fn current_info(path: &std::path::Path) -> anyhow::Result<CertificateInfo> {
    let chain = read_certificates(path)?;
    let leaf = chain
        .first()
        .with_context(|| format!("{}: no certificate", path.display()))?;
    Ok(CertificateInfo::from_der(leaf)?)
}

fn parse_duration(flag: &str, text: Option<&str>) -> anyhow::Result<Option<time::Duration>> {
    text.map(|t| {
        t.parse::<GoDuration>()
            .map(|d| d.0)
            .with_context(|| format!("{flag} {t:?}"))
    })
    .transpose()
}

/// A uniformly random number in [0, 1).
fn random_fraction() -> anyhow::Result<f64> {
    let bytes = mayfly_pki::random::random_bytes(4)?;
    let value = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    Ok(f64::from(value) / (f64::from(u32::MAX) + 1.0))
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

fn log(message: &str) {
    note!(
        "{} mayfly ca renew: {message}",
        rfc3339(OffsetDateTime::now_utc())
    );
}

/// Splits a command line as a POSIX shell splits words: blanks separate, single quotes keep
/// everything, double quotes keep blanks (backslash escapes `"`, `\\`, `$`, `` ` ``), a
/// backslash outside quotes escapes the next character. No expansion of any kind.
fn split_command(command: &str) -> anyhow::Result<Vec<String>> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = command.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => bail!("unterminated single quote"),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => bail!("unterminated double quote"),
                        },
                        Some(c) => word.push(c),
                        None => bail!("unterminated double quote"),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(c) => word.push(c),
                    None => bail!("a trailing backslash escapes nothing"),
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_split_like_a_shell_without_expanding() {
        let cases: &[(&str, &[&str])] = &[
            ("systemctl reload nginx", &["systemctl", "reload", "nginx"]),
            (
                "cp '/etc/my certs/a.crt' b",
                &["cp", "/etc/my certs/a.crt", "b"],
            ),
            (
                r#"sh -c "echo \"hi there\" > '$HOME/x'""#,
                &["sh", "-c", "echo \"hi there\" > '$HOME/x'"],
            ),
            (r"touch with\ space", &["touch", "with space"]),
            ("  a   b  ", &["a", "b"]),
            ("''", &[""]),
            ("", &[]),
        ];
        for (command, expected) in cases {
            assert_eq!(split_command(command).unwrap(), *expected, "{command}");
        }
        for bad in ["'open", "\"open", "trailing\\"] {
            assert!(split_command(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn random_fractions_stay_in_range() {
        for _ in 0..1000 {
            let f = random_fraction().unwrap();
            assert!((0.0..1.0).contains(&f));
        }
    }
}
