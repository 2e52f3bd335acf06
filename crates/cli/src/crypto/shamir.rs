//! `mayfly crypto shamir split|combine`: Shamir secret sharing over GF(256), so that a secret
//! such as the root key's password can be given to N people of whom any K together recover it
//! and any K-1 learn nothing about it.
//!
//! Why it is written here rather than taken from a crate: the scheme is a page of arithmetic,
//! and the interesting parts are the ones a library would not decide for us — a share format
//! that survives being copied by hand and is checked on the way back in, and a check of the
//! recovered secret so that wrong or mixed shares fail loudly instead of printing garbage.
//!
//! Each byte of the secret is the constant term of its own random polynomial of degree K-1;
//! share `x` (1..=N) holds the value of every polynomial at `x`. Before splitting, the first
//! 4 bytes of SHA-256 of the secret are appended, and `combine` verifies and strips them.
//! Field arithmetic uses AES's polynomial x⁸+x⁴+x³+x+1, computed without tables or branches on
//! secret values, so that timing does not depend on the secret.
//!
//! A share is one line of text:
//!
//! ```text
//! mayfly-shamir-1-<K>-<x>-<hex of the y bytes>-<checksum>
//! ```
//!
//! `K` and `x` in decimal, the checksum the first 8 hex digits of SHA-256 over everything
//! before its dash. Case is ignored on input.

use std::io::{IsTerminal as _, Read, Write as _};
use std::path::PathBuf;

use anyhow::{Context, bail};
use mayfly_pki::cert::fingerprint_sha256;
use zeroize::Zeroizing;

use crate::output::write_stdout;

/// The longest secret `split` accepts, in bytes.
pub const MAX_SECRET: usize = 1024;
/// Bytes of SHA-256(secret) appended to the secret before it is split.
const SECRET_CHECK_LEN: usize = 4;
/// Hex digits of the checksum that ends each share.
const SHARE_CHECK_HEX: usize = 8;
/// Every share starts with this; the `1` is the format version.
const PREFIX: &str = "mayfly-shamir-1-";
/// Shares read from standard input: at most 255 lines of about 2 KiB each.
const MAX_SHARE_INPUT: u64 = 1024 * 1024;

#[derive(Debug, clap::Subcommand)]
pub enum ShamirCommand {
    /// Split a secret into N shares, any K of which recover it.
    ///
    /// The secret (at most 1024 bytes, used byte for byte, a trailing newline included) is read
    /// from --secret-file, or from standard input. The shares are printed one per line; give
    /// each to a different person. Fewer than K shares reveal nothing about the secret.
    ///
    /// Example: split the root key's password among 5 people, any 3 of whom can recover it:
    ///
    ///   mayfly crypto shamir split --threshold 3 --shares 5 --secret-file root-password.txt
    Split(SplitArgs),
    /// Recover a secret from K (or more) shares made by `split`.
    ///
    /// The shares are taken from the arguments, or read from standard input one per line
    /// (which keeps them out of the shell history). Each share's checksum is verified, and so
    /// is the recovered secret: too few shares, or shares of different splits, are refused.
    /// The secret is printed to standard output exactly as it was split, with no newline added.
    ///
    /// Example: recover the root key's password into a file only you can read:
    ///
    ///   (umask 077; mayfly crypto shamir combine < shares.txt > root-password.txt)
    Combine(CombineArgs),
}

#[derive(Debug, clap::Args)]
pub struct SplitArgs {
    /// How many shares are needed to recover the secret: K, from 2 to 255.
    #[arg(long, short = 't', value_name = "K", value_parser = clap::value_parser!(u8).range(2..))]
    threshold: u8,
    /// How many shares to create: N, from K to 255.
    #[arg(long, short = 'n', value_name = "N", value_parser = clap::value_parser!(u8).range(2..))]
    shares: u8,
    /// File with the secret, at most 1024 bytes [default: standard input, or ask at the
    /// terminal].
    #[arg(long, value_name = "FILE")]
    secret_file: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct CombineArgs {
    /// The shares [default: read from standard input, one per line].
    #[arg(value_name = "SHARE")]
    shares: Vec<String>,
}

pub fn run(command: ShamirCommand) -> anyhow::Result<()> {
    match command {
        ShamirCommand::Split(args) => run_split(args),
        ShamirCommand::Combine(args) => run_combine(args),
    }
}

fn run_split(args: SplitArgs) -> anyhow::Result<()> {
    let (k, n) = (args.threshold, args.shares);
    if n < k {
        bail!("--shares ({n}) must be at least --threshold ({k})");
    }
    let secret = match &args.secret_file {
        Some(path) => read_secret(
            std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?,
        )
        .with_context(|| path.display().to_string())?,
        None if std::io::stdin().is_terminal() => {
            let typed = Zeroizing::new(
                rpassword::prompt_password("Please enter the secret to split: ")
                    .context("reading the secret")?,
            );
            check_secret_len(typed.as_bytes())?;
            Zeroizing::new(typed.as_bytes().to_vec())
        }
        None => read_secret(std::io::stdin().lock()).context("standard input")?,
    };
    let shares = split(&secret, k, n)?;
    let mut text = Zeroizing::new(String::new());
    for share in &shares {
        text.push_str(&share.to_text());
        text.push('\n');
    }
    write_stdout(&text)?;
    note!("Any {k} of these {n} shares recover the secret; fewer reveal nothing about it.");
    Ok(())
}

fn run_combine(args: CombineArgs) -> anyhow::Result<()> {
    // (label for error messages, share text)
    let mut inputs: Vec<(String, Zeroizing<String>)> = Vec::new();
    if args.shares.is_empty() {
        let stdin = std::io::stdin();
        if stdin.is_terminal() {
            note!("Enter the shares, one per line, then press Ctrl-D:");
        }
        let mut raw = Zeroizing::new(Vec::new());
        stdin
            .lock()
            .take(MAX_SHARE_INPUT + 1)
            .read_to_end(&mut raw)
            .context("reading the shares from standard input")?;
        if raw.len() as u64 > MAX_SHARE_INPUT {
            bail!(
                "standard input is longer than {MAX_SHARE_INPUT} bytes: that is not a list of shares"
            );
        }
        let text = std::str::from_utf8(&raw)
            .context("standard input is not text: expected shares, one per line")?;
        for (number, line) in text.lines().enumerate() {
            if !line.trim().is_empty() {
                inputs.push((
                    format!("the share on line {}", number + 1),
                    Zeroizing::new(line.to_string()),
                ));
            }
        }
        if inputs.is_empty() {
            bail!("no shares given: pass them as arguments or on standard input, one per line");
        }
    } else {
        for (number, share) in args.shares.iter().enumerate() {
            inputs.push((
                format!("share {}", number + 1),
                Zeroizing::new(share.clone()),
            ));
        }
    }
    let mut shares = Vec::with_capacity(inputs.len());
    for (label, text) in &inputs {
        shares.push((label.as_str(), Share::parse(text).context(label.clone())?));
    }
    let secret = combine(&shares)?;
    write_stdout_bytes(&secret)
}

/// Reads a secret of 1 to [`MAX_SECRET`] bytes.
fn read_secret(reader: impl Read) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    let mut secret = Zeroizing::new(Vec::new());
    reader
        .take(MAX_SECRET as u64 + 1)
        .read_to_end(&mut secret)
        .context("reading the secret")?;
    check_secret_len(&secret)?;
    Ok(secret)
}

fn check_secret_len(secret: &[u8]) -> anyhow::Result<()> {
    if secret.is_empty() {
        bail!("the secret is empty");
    }
    if secret.len() > MAX_SECRET {
        bail!("the secret is longer than {MAX_SECRET} bytes");
    }
    Ok(())
}

/// Prints raw bytes; a closed pipe is not worth a message.
fn write_stdout_bytes(bytes: &[u8]) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(e).context("cannot write to standard output")
        }
        _ => Ok(()),
    }
}

/// One share: the threshold, the evaluation point and the values of all byte polynomials.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Share {
    threshold: u8,
    x: u8,
    y: Zeroizing<Vec<u8>>,
}

impl Share {
    fn to_text(&self) -> Zeroizing<String> {
        let body = Zeroizing::new(format!(
            "{PREFIX}{}-{}-{}",
            self.threshold,
            self.x,
            Zeroizing::new(hex::encode(&*self.y)).as_str()
        ));
        Zeroizing::new(format!("{}-{}", body.as_str(), share_checksum(&body)))
    }

    fn parse(text: &str) -> anyhow::Result<Share> {
        let text = Zeroizing::new(text.trim().to_ascii_lowercase());
        let Some(rest) = text.strip_prefix(PREFIX) else {
            if text.starts_with("mayfly-shamir-") {
                bail!("unsupported share format: expected it to start with {PREFIX}");
            }
            bail!("not a mayfly share: expected {PREFIX}K-X-DATA-CHECKSUM");
        };
        let mut parts = rest.split('-');
        let (Some(k), Some(x), Some(data), Some(sum), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            bail!("malformed share: expected {PREFIX}K-X-DATA-CHECKSUM");
        };
        let body_len = text.len() - sum.len() - 1;
        let body = text.get(..body_len).unwrap_or_default();
        if sum != share_checksum(body) {
            bail!("checksum mismatch: the share is damaged or mistyped");
        }
        let threshold: u8 = k
            .parse()
            .ok()
            .filter(|k| *k >= 2)
            .context("malformed share: the threshold must be a number from 2 to 255")?;
        let x: u8 = x
            .parse()
            .ok()
            .filter(|x| *x >= 1)
            .context("malformed share: the share number must be a number from 1 to 255")?;
        let y = Zeroizing::new(
            hex::decode(data).map_err(|_| anyhow::anyhow!("malformed share: bad hex data"))?,
        );
        if y.len() <= SECRET_CHECK_LEN || y.len() > MAX_SECRET + SECRET_CHECK_LEN {
            bail!("malformed share: {} data bytes", y.len());
        }
        Ok(Share { threshold, x, y })
    }
}

/// The 8 hex digits that end a share: SHA-256 over the text before them.
fn share_checksum(body: &str) -> String {
    let digest = fingerprint_sha256(body.as_bytes());
    digest
        .get(..SHARE_CHECK_HEX)
        .unwrap_or_default()
        .to_string()
}

/// The first bytes of SHA-256(secret), appended before splitting.
fn secret_check(secret: &[u8]) -> anyhow::Result<[u8; SECRET_CHECK_LEN]> {
    let digest = Zeroizing::new(fingerprint_sha256(secret));
    let mut check = [0u8; SECRET_CHECK_LEN];
    hex::decode_to_slice(
        digest.get(..2 * SECRET_CHECK_LEN).unwrap_or_default(),
        &mut check,
    )
    .context("computing the secret's checksum")?;
    Ok(check)
}

/// Splits `secret` into `n` shares with threshold `k` (2 ≤ k ≤ n).
fn split(secret: &[u8], k: u8, n: u8) -> anyhow::Result<Vec<Share>> {
    if k < 2 || n < k {
        bail!("invalid threshold {k} of {n} shares");
    }
    check_secret_len(secret)?;
    let mut data = Zeroizing::new(secret.to_vec());
    data.extend_from_slice(&secret_check(secret)?);
    let degree = usize::from(k - 1);
    // coefficients[i * degree + j] is the coefficient of x^(j+1) of byte i's polynomial.
    let coefficients = Zeroizing::new(
        mayfly_pki::random::random_bytes(data.len() * degree)
            .context("drawing random coefficients")?,
    );
    let shares = (1..=n)
        .map(|x| {
            let y = data
                .iter()
                .zip(coefficients.chunks_exact(degree))
                .map(|(&constant, higher)| {
                    // Horner: ((c_d·x + c_{d-1})·x + …)·x + c_0.
                    let top = higher
                        .iter()
                        .rev()
                        .fold(0u8, |acc, &c| gf256::mul(acc, x) ^ c);
                    gf256::mul(top, x) ^ constant
                })
                .collect();
            Share {
                threshold: k,
                x,
                y: Zeroizing::new(y),
            }
        })
        .collect();
    Ok(shares)
}

/// Recovers the secret from labelled shares, checking that they belong together.
fn combine(shares: &[(&str, Share)]) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    let Some((first_label, first)) = shares.first() else {
        bail!("no shares given");
    };
    for (i, (label, share)) in shares.iter().enumerate() {
        if share.threshold != first.threshold {
            bail!(
                "{label} needs {} shares but {first_label} needs {}: they come from different splits",
                share.threshold,
                first.threshold
            );
        }
        if share.y.len() != first.y.len() {
            bail!(
                "{label} and {first_label} have different lengths: they come from different splits"
            );
        }
        if let Some((earlier, _)) = shares.iter().take(i).find(|(_, other)| other.x == share.x) {
            bail!(
                "{label} has the same number ({}) as {earlier}: each share may be given once",
                share.x
            );
        }
    }
    if shares.len() < usize::from(first.threshold) {
        bail!(
            "{} share(s) given but {} are needed",
            shares.len(),
            first.threshold
        );
    }
    // Lagrange basis at 0: l_j = Π_{m≠j} x_m / (x_m − x_j); subtraction is XOR in GF(2⁸).
    let basis: Vec<u8> = shares
        .iter()
        .map(|(_, sj)| {
            shares
                .iter()
                .filter(|(_, sm)| sm.x != sj.x)
                .fold(1u8, |acc, (_, sm)| {
                    gf256::mul(acc, gf256::mul(sm.x, gf256::inv(sm.x ^ sj.x)))
                })
        })
        .collect();
    let mut data = Zeroizing::new(vec![0u8; first.y.len()]);
    for ((_, share), &l) in shares.iter().zip(&basis) {
        for (out, &y) in data.iter_mut().zip(share.y.iter()) {
            *out ^= gf256::mul(l, y);
        }
    }
    let secret_len = data.len().saturating_sub(SECRET_CHECK_LEN);
    let (secret, check) = data.split_at(secret_len);
    if secret.is_empty() || secret_check(secret)? != check {
        bail!("the shares do not combine to a valid secret (too few, or from different splits)");
    }
    Ok(Zeroizing::new(secret.to_vec()))
}

/// Arithmetic in GF(2⁸) modulo x⁸+x⁴+x³+x+1, in constant time.
mod gf256 {
    /// The product of `a` and `b`: shift-and-add with masks instead of branches or tables.
    pub fn mul(mut a: u8, mut b: u8) -> u8 {
        let mut product = 0u8;
        for _ in 0..8 {
            product ^= a & (b & 1).wrapping_neg();
            let carry = (a >> 7).wrapping_neg();
            a = (a << 1) ^ (0x1b & carry);
            b >>= 1;
        }
        product
    }

    /// The multiplicative inverse, as a²⁵⁴ (a²⁵⁵ = 1 for a ≠ 0); 0 for 0.
    pub fn inv(a: u8) -> u8 {
        // 254 = 2 + 4 + … + 128: multiply a^(2^i) for i = 1..=7.
        let mut square = a;
        let mut result = 1u8;
        for _ in 1..8 {
            square = mul(square, square);
            result = mul(result, square);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::gf256::{inv, mul};
    use super::*;

    /// Log and exp tables built from the generator 3, to check `mul` and `inv` against.
    fn tables() -> ([u8; 256], [u8; 255]) {
        let mut log = [0u8; 256];
        let mut exp = [0u8; 255];
        let mut value = 1u8;
        for (i, e) in exp.iter_mut().enumerate() {
            *e = value;
            log[usize::from(value)] = u8::try_from(i).unwrap();
            value = mul(value, 3);
        }
        assert_eq!(value, 1, "3 has order 255");
        (log, exp)
    }

    #[test]
    fn three_generates_the_multiplicative_group() {
        let (_, exp) = tables();
        let mut seen = [false; 256];
        for e in exp {
            assert!(!seen[usize::from(e)], "{e} repeats");
            seen[usize::from(e)] = true;
        }
        assert!(!seen[0]);
        assert!(seen[1..].iter().all(|s| *s));
    }

    #[test]
    fn mul_matches_the_log_tables_for_all_pairs() {
        let (log, exp) = tables();
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                let expected = if a == 0 || b == 0 {
                    0
                } else {
                    exp[(usize::from(log[usize::from(a)]) + usize::from(log[usize::from(b)])) % 255]
                };
                assert_eq!(mul(a, b), expected, "{a:#x} * {b:#x}");
                assert_eq!(mul(a, b), mul(b, a));
            }
        }
    }

    #[test]
    fn known_products_and_inverses_from_fips_197() {
        assert_eq!(mul(0x57, 0x83), 0xc1);
        assert_eq!(mul(0x57, 0x13), 0xfe);
        assert_eq!(mul(0x53, 0xca), 0x01);
        assert_eq!(inv(0x53), 0xca);
        assert_eq!(inv(1), 1);
        assert_eq!(inv(0), 0);
    }

    #[test]
    fn every_nonzero_element_times_its_inverse_is_one() {
        let (log, exp) = tables();
        for a in 1..=255u8 {
            assert_eq!(mul(a, inv(a)), 1, "{a:#x}");
            assert_eq!(inv(inv(a)), a);
            assert_eq!(inv(a), exp[(255 - usize::from(log[usize::from(a)])) % 255]);
        }
    }

    #[test]
    fn the_field_laws_hold() {
        for a in 0..=255u8 {
            assert_eq!(mul(a, 1), a);
            assert_eq!(mul(a, 0), 0);
            for b in (0..=255u8).step_by(7) {
                for c in (0..=255u8).step_by(13) {
                    assert_eq!(mul(a, b ^ c), mul(a, b) ^ mul(a, c));
                    assert_eq!(mul(mul(a, b), c), mul(a, mul(b, c)));
                }
            }
        }
    }

    fn labelled(shares: &[Share]) -> Vec<(&'static str, Share)> {
        shares.iter().map(|s| ("share", s.clone())).collect()
    }

    #[test]
    fn every_k_subset_recovers_and_no_smaller_one_does() {
        let secret = b"a long CA password";
        let shares = split(secret, 3, 5).unwrap();
        assert_eq!(shares.len(), 5);
        let xs: Vec<u8> = shares.iter().map(|s| s.x).collect();
        assert_eq!(xs, [1, 2, 3, 4, 5]);
        for mask in 1u32..32 {
            let subset: Vec<Share> = shares
                .iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .map(|(_, s)| s.clone())
                .collect();
            let result = combine(&labelled(&subset));
            if subset.len() >= 3 {
                assert_eq!(result.unwrap().as_slice(), secret, "{mask:#b}");
            } else {
                let err = result.unwrap_err().to_string();
                assert!(err.contains("are needed"), "{err}");
            }
        }
    }

    #[test]
    fn too_few_shares_claiming_a_lower_threshold_fail_the_secret_check() {
        // Shares relabelled as 2-of-N (as a forger could, recomputing the checksum) do not
        // interpolate the right polynomial, and the secret check catches it.
        let shares = split(b"secret", 3, 5).unwrap();
        let forged: Vec<Share> = shares
            .iter()
            .take(2)
            .map(|s| Share {
                threshold: 2,
                ..s.clone()
            })
            .collect();
        let err = combine(&labelled(&forged)).unwrap_err().to_string();
        assert!(err.contains("do not combine to a valid secret"), "{err}");
    }

    #[test]
    fn shares_of_two_splits_do_not_combine() {
        let a = split(b"same secret", 2, 3).unwrap();
        let b = split(b"same secret", 2, 3).unwrap();
        let mixed = vec![a[0].clone(), b[1].clone()];
        let err = combine(&labelled(&mixed)).unwrap_err().to_string();
        assert!(err.contains("do not combine to a valid secret"), "{err}");
        let c = split(b"same secret", 3, 3).unwrap();
        let err = combine(&labelled(&[a[0].clone(), c[1].clone()]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("different splits"), "{err}");
        let d = split(b"another secret", 2, 3).unwrap();
        let err = combine(&labelled(&[a[0].clone(), d[1].clone()]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("different lengths"), "{err}");
    }

    #[test]
    fn duplicates_are_refused() {
        let a = split(b"secret", 2, 3).unwrap();
        let err = combine(&[("share 1", a[0].clone()), ("share 2", a[0].clone())])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("share 2 has the same number (1) as share 1"),
            "{err}"
        );
    }

    #[test]
    fn text_round_trips_and_every_changed_character_is_caught() {
        let share = split(&[0, 1, 2, 255], 2, 2).unwrap().remove(1);
        let text = share.to_text();
        assert!(
            text.starts_with("mayfly-shamir-1-2-2-"),
            "{}",
            text.as_str()
        );
        let parts: Vec<&str> = text.split('-').collect();
        assert_eq!(parts.len(), 7);
        assert_eq!(parts[5].len(), 2 * (4 + SECRET_CHECK_LEN));
        assert_eq!(parts[6].len(), 8);
        assert_eq!(Share::parse(&text).unwrap(), share);
        assert_eq!(
            Share::parse(&format!("  {}\n", text.to_ascii_uppercase())).unwrap(),
            share
        );
        for (i, c) in text.char_indices().skip(PREFIX.len()) {
            for replacement in ['0', '7', 'a', 'f'] {
                if replacement == c {
                    continue;
                }
                let mut changed = text.to_string();
                changed.replace_range(i..i + 1, &replacement.to_string());
                assert!(Share::parse(&changed).is_err(), "{changed} was accepted");
            }
        }
        let err = Share::parse("mayfly-shamir-2-2-1-00-00000000")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unsupported share format"), "{err}");
        assert!(Share::parse("hello").is_err());
    }

    #[test]
    fn share_zero_is_refused_even_with_a_good_checksum() {
        let body = format!("{PREFIX}2-0-{}", "00".repeat(8));
        let text = format!("{body}-{}", share_checksum(&body));
        let err = Share::parse(&text).unwrap_err().to_string();
        assert!(err.contains("share number"), "{err}");
    }

    #[test]
    fn the_largest_secret_and_extreme_parameters_work() {
        let secret: Vec<u8> = (0..MAX_SECRET).map(|i| (i * 7) as u8).collect();
        let shares = split(&secret, 2, 255).unwrap();
        let pair = [shares[0].clone(), shares[254].clone()];
        assert_eq!(combine(&labelled(&pair)).unwrap().as_slice(), secret);
        let shares = split(b"k", 255, 255).unwrap();
        assert_eq!(combine(&labelled(&shares)).unwrap().as_slice(), b"k");
        let err = combine(&labelled(&shares[1..])).unwrap_err().to_string();
        assert!(
            err.contains("254 share(s) given but 255 are needed"),
            "{err}"
        );
        assert!(split(&[0; MAX_SECRET + 1], 2, 3).is_err());
        assert!(split(b"", 2, 3).is_err());
        assert!(split(b"x", 1, 3).is_err());
        assert!(split(b"x", 4, 3).is_err());
    }

    #[test]
    fn read_secret_enforces_the_size_limit() {
        assert_eq!(
            read_secret(&[9u8; MAX_SECRET][..]).unwrap().len(),
            MAX_SECRET
        );
        let err = read_secret(&[9u8; MAX_SECRET + 1][..]).unwrap_err();
        assert!(err.to_string().contains("longer than 1024 bytes"), "{err}");
        assert!(read_secret(&b""[..]).is_err());
    }

    #[test]
    fn more_shares_than_needed_also_recover() {
        let secret: Vec<u8> = (0..=255u8).collect();
        let shares = split(&secret, 3, 7).unwrap();
        assert_eq!(combine(&labelled(&shares)).unwrap().as_slice(), secret);
        assert_eq!(
            combine(&labelled(&shares[2..6])).unwrap().as_slice(),
            secret
        );
    }
}
