//! End-to-end tests of `mayfly crypto change-pass` and `mayfly crypto shamir split|combine`:
//! the real binary in a temp dir, keys made by `mayfly certificate create` and judged by
//! `openssl`, so that "the new password works" is not only mayfly's own opinion.

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Stdio};

struct Run {
    success: bool,
    stdout: Vec<u8>,
    stderr: String,
}

impl Run {
    #[track_caller]
    fn ok(self) -> Vec<u8> {
        assert!(self.success, "mayfly failed: {}", self.stderr);
        self.stdout
    }

    #[track_caller]
    fn ok_text(self) -> String {
        String::from_utf8(self.ok()).expect("utf-8 stdout")
    }

    /// A failure is one line on stderr and nothing on stdout; returns that line.
    #[track_caller]
    fn failure(self) -> String {
        assert!(
            !self.success,
            "mayfly succeeded unexpectedly: {:?}",
            String::from_utf8_lossy(&self.stdout)
        );
        assert!(
            self.stdout.is_empty(),
            "a failure must print nothing on stdout"
        );
        assert_eq!(
            self.stderr.trim_end().lines().count(),
            1,
            "one line on stderr: {:?}",
            self.stderr
        );
        assert!(
            self.stderr.starts_with("mayfly: error: "),
            "{}",
            self.stderr
        );
        self.stderr.trim_end().to_string()
    }
}

/// Runs `mayfly ARGS` in `dir` with `MAYFLY_PATH` inside it; stdin is `stdin`, or null.
fn mayfly_with_stdin(dir: &Path, args: &[&str], stdin: Option<&[u8]>) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mayfly"))
        .args(args)
        .current_dir(dir)
        .env("MAYFLY_PATH", dir.join("mayfly-home"))
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run mayfly");
    if let Some(input) = stdin {
        // The process may exit before reading its input; that is not the test's concern.
        let _ = child.stdin.take().expect("stdin").write_all(input);
    }
    let output = child.wait_with_output().expect("wait for mayfly");
    Run {
        success: output.status.success(),
        stdout: output.stdout,
        stderr: String::from_utf8(output.stderr).expect("utf-8 stderr"),
    }
}

fn mayfly(dir: &Path, args: &[&str]) -> Run {
    mayfly_with_stdin(dir, args, None)
}

fn temp() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

fn openssl(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("openssl is required: install the Debian package openssl")
}

/// The public key of `key` as openssl reads it with the password in `password_file`, or
/// `None` when openssl cannot read it.
fn openssl_public_key(dir: &Path, key: &str, password_file: Option<&str>) -> Option<Vec<u8>> {
    let pass = password_file.map(|f| format!("file:{f}"));
    let mut args = vec!["pkey", "-in", key, "-pubout"];
    if let Some(pass) = &pass {
        args.extend(["-passin", pass.as_str()]);
    } else {
        // Without this, openssl would ask for a password where there is no terminal.
        args.extend(["-passin", "pass:"]);
    }
    let out = openssl(dir, &args);
    out.status.success().then_some(out.stdout)
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("stat").permissions().mode() & 0o777
}

/// A temp dir holding a self-signed certificate and its key `x.key`, encrypted with the
/// password in `old`; `new` and `other` hold two more passwords.
fn key_dir() -> tempfile::TempDir {
    let dir = temp();
    let path = dir.path();
    std::fs::write(path.join("old"), "the old password\n").expect("write old");
    std::fs::write(path.join("new"), "the new password\n").expect("write new");
    std::fs::write(path.join("other"), "yet another password\n").expect("write other");
    mayfly(
        path,
        &[
            "certificate",
            "create",
            "--profile",
            "self-signed",
            "x",
            "x.crt",
            "x.key",
            "--password-file",
            "old",
        ],
    )
    .ok();
    dir
}

/// The names in `dir`, sorted, to check that nothing stray was left behind.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn change_pass_in_place_replaces_the_password_and_keeps_0600() {
    let dir = key_dir();
    let path = dir.path();
    let public = openssl_public_key(path, "x.key", Some("old")).expect("old password works");
    // A key created readable by others is tightened too.
    std::fs::set_permissions(path.join("x.key"), std::fs::Permissions::from_mode(0o644))
        .expect("chmod");

    let run = mayfly(
        path,
        &[
            "crypto",
            "change-pass",
            "x.key",
            "--password-file",
            "old",
            "--new-password-file",
            "new",
        ],
    );
    assert!(run.stderr.contains("x.key"), "{}", run.stderr);
    assert!(run.ok().is_empty(), "nothing on stdout");

    let pem = std::fs::read_to_string(path.join("x.key")).expect("read key");
    assert!(
        pem.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----\n"),
        "{pem}"
    );
    assert_eq!(mode(&path.join("x.key")), 0o600);
    assert_eq!(
        openssl_public_key(path, "x.key", Some("new")).as_deref(),
        Some(public.as_slice()),
        "the new password opens the same key"
    );
    assert!(
        openssl(
            path,
            &["pkey", "-in", "x.key", "-passin", "file:new", "-noout"]
        )
        .status
        .success()
    );
    assert_eq!(openssl_public_key(path, "x.key", Some("old")), None);

    // mayfly agrees: the old password is refused, the new one decrypts it.
    let err = mayfly(
        path,
        &[
            "crypto",
            "change-pass",
            "x.key",
            "--password-file",
            "old",
            "--new-password-file",
            "other",
            "--out",
            "y.key",
        ],
    )
    .failure();
    assert!(err.contains("password is incorrect"), "{err}");
    mayfly(
        path,
        &[
            "crypto",
            "change-pass",
            "x.key",
            "--password-file",
            "new",
            "--new-password-file",
            "other",
            "--out",
            "y.key",
        ],
    )
    .ok();
    assert_eq!(
        openssl_public_key(path, "y.key", Some("other")).as_deref(),
        Some(public.as_slice())
    );
    assert_eq!(
        names(path),
        ["new", "old", "other", "x.crt", "x.key", "y.key"],
        "no temporary files left behind"
    );
}

#[test]
fn change_pass_to_out_writes_0600_and_leaves_the_original() {
    let dir = key_dir();
    let path = dir.path();
    let original = std::fs::read(path.join("x.key")).expect("read key");
    mayfly(
        path,
        &[
            "crypto",
            "change-pass",
            "x.key",
            "--password-file",
            "old",
            "--new-password-file",
            "new",
            "--out",
            "copy.key",
        ],
    )
    .ok();
    assert_eq!(std::fs::read(path.join("x.key")).expect("read"), original);
    assert_eq!(mode(&path.join("copy.key")), 0o600);
    let public = openssl_public_key(path, "x.key", Some("old")).expect("original still opens");
    assert_eq!(
        openssl_public_key(path, "copy.key", Some("new")).as_deref(),
        Some(public.as_slice())
    );

    // An existing --out is refused without --force, and left as it was.
    let args = [
        "crypto",
        "change-pass",
        "x.key",
        "--password-file",
        "old",
        "--new-password-file",
        "other",
        "--out",
        "copy.key",
    ];
    let before = std::fs::read(path.join("copy.key")).expect("read");
    let err = mayfly(path, &args).failure();
    assert!(
        err.contains("copy.key already exists: use --force to overwrite it"),
        "{err}"
    );
    assert_eq!(std::fs::read(path.join("copy.key")).expect("read"), before);

    let mut forced = args.to_vec();
    forced.push("--force");
    mayfly(path, &forced).ok();
    assert_eq!(mode(&path.join("copy.key")), 0o600);
    assert_eq!(
        openssl_public_key(path, "copy.key", Some("other")).as_deref(),
        Some(public.as_slice())
    );
}

#[test]
fn change_pass_with_a_wrong_password_changes_nothing() {
    let dir = key_dir();
    let path = dir.path();
    let before = std::fs::read(path.join("x.key")).expect("read key");
    let names_before = names(path);
    let err = mayfly(
        path,
        &[
            "crypto",
            "change-pass",
            "x.key",
            "--password-file",
            "other",
            "--new-password-file",
            "new",
        ],
    )
    .failure();
    assert!(err.contains("x.key"), "{err}");
    assert!(err.contains("password is incorrect"), "{err}");
    assert_eq!(std::fs::read(path.join("x.key")).expect("read"), before);
    assert_eq!(names(path), names_before);
    assert!(openssl_public_key(path, "x.key", Some("old")).is_some());
}

#[test]
fn change_pass_without_a_terminal_names_the_flag() {
    let dir = key_dir();
    let path = dir.path();
    let err = mayfly(
        path,
        &[
            "crypto",
            "change-pass",
            "x.key",
            "--new-password-file",
            "new",
        ],
    )
    .failure();
    assert!(err.contains("--password-file"), "{err}");
    let err = mayfly(
        path,
        &["crypto", "change-pass", "x.key", "--password-file", "old"],
    )
    .failure();
    assert!(err.contains("--new-password-file"), "{err}");
    let err = mayfly(path, &["crypto", "change-pass", "missing.key"]).failure();
    assert!(err.contains("missing.key"), "{err}");
}

#[test]
fn change_pass_can_remove_the_password_only_with_insecure() {
    let dir = key_dir();
    let path = dir.path();
    let refused = mayfly(
        path,
        &[
            "crypto",
            "change-pass",
            "x.key",
            "--password-file",
            "old",
            "--no-password",
        ],
    );
    assert!(!refused.success);
    assert!(refused.stderr.contains("--insecure"), "{}", refused.stderr);

    let public = openssl_public_key(path, "x.key", Some("old")).expect("old password works");
    mayfly(
        path,
        &[
            "crypto",
            "change-pass",
            "x.key",
            "--password-file",
            "old",
            "--no-password",
            "--insecure",
        ],
    )
    .ok();
    let pem = std::fs::read_to_string(path.join("x.key")).expect("read key");
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{pem}");
    assert_eq!(mode(&path.join("x.key")), 0o600);
    assert_eq!(
        openssl_public_key(path, "x.key", None).as_deref(),
        Some(public.as_slice())
    );

    // And back: an unencrypted key needs no old password.
    mayfly(
        path,
        &[
            "crypto",
            "change-pass",
            "x.key",
            "--new-password-file",
            "new",
        ],
    )
    .ok();
    assert_eq!(
        openssl_public_key(path, "x.key", Some("new")).as_deref(),
        Some(public.as_slice())
    );
}

/// Splits `secret` (written to a file) and returns the share lines.
fn split(dir: &Path, secret: &[u8], k: &str, n: &str) -> Vec<String> {
    std::fs::write(dir.join("secret"), secret).expect("write secret");
    let out = mayfly(
        dir,
        &[
            "crypto",
            "shamir",
            "split",
            "--threshold",
            k,
            "--shares",
            n,
            "--secret-file",
            "secret",
        ],
    )
    .ok_text();
    assert!(out.ends_with('\n'));
    out.lines().map(str::to_string).collect()
}

fn combine(dir: &Path, shares: &[&str]) -> Run {
    let mut args = vec!["crypto", "shamir", "combine"];
    args.extend_from_slice(shares);
    mayfly(dir, &args)
}

#[test]
fn any_three_of_five_shares_recover_the_secret_and_no_two_do() {
    let dir = temp();
    let path = dir.path();
    let secret = b"a long CA password\n";
    let shares = split(path, secret, "3", "5");
    assert_eq!(shares.len(), 5);
    for (i, share) in shares.iter().enumerate() {
        let prefix = format!("mayfly-shamir-1-3-{}-", i + 1);
        assert!(share.starts_with(&prefix), "{share}");
        let parts: Vec<&str> = share.split('-').collect();
        assert_eq!(parts.len(), 7, "{share}");
        assert_eq!(parts[5].len(), 2 * (secret.len() + 4), "{share}");
        assert_eq!(parts[6].len(), 8, "{share}");
        assert!(parts[5..].iter().all(|p| {
            p.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        }));
    }

    let mut recovered = 0;
    for a in 0..5 {
        for b in a + 1..5 {
            let err = combine(path, &[&shares[a], &shares[b]]).failure();
            assert!(err.contains("2 share(s) given but 3 are needed"), "{err}");
            for c in b + 1..5 {
                let out = combine(path, &[&shares[c], &shares[a], &shares[b]]).ok();
                assert_eq!(out, secret, "shares {a}, {b}, {c}");
                recovered += 1;
            }
        }
    }
    assert_eq!(recovered, 10);

    // All five also work, and so do shares on standard input, one per line.
    let all: Vec<&str> = shares.iter().map(String::as_str).collect();
    assert_eq!(combine(path, &all).ok(), secret);
    let lines = format!("\n{}\n\n{}\n  {}  \n", shares[4], shares[0], shares[2]);
    let out = mayfly_with_stdin(
        path,
        &["crypto", "shamir", "combine"],
        Some(lines.as_bytes()),
    )
    .ok();
    assert_eq!(out, secret);
}

#[test]
fn a_share_with_one_changed_digit_is_rejected_by_name() {
    let dir = temp();
    let path = dir.path();
    let shares = split(path, b"secret", "2", "3");
    let mut damaged = shares[1].clone().into_bytes();
    // A digit in the middle of the data: '0' becomes '1', anything else becomes '0'.
    let at = "mayfly-shamir-1-2-2-".len() + 5;
    damaged[at] = if damaged[at] == b'0' { b'1' } else { b'0' };
    let damaged = String::from_utf8(damaged).expect("ascii");
    let err = combine(path, &[&shares[0], &damaged]).failure();
    assert!(err.contains("share 2"), "{err}");
    assert!(err.contains("checksum mismatch"), "{err}");

    let lines = format!("{}\n{damaged}\n", shares[2]);
    let err = mayfly_with_stdin(
        path,
        &["crypto", "shamir", "combine"],
        Some(lines.as_bytes()),
    )
    .failure();
    assert!(err.contains("line 2"), "{err}");
    assert!(err.contains("checksum mismatch"), "{err}");

    let err = combine(path, &[&shares[0], "not-a-share"]).failure();
    assert!(err.contains("share 2: not a mayfly share"), "{err}");
    let err = combine(path, &[&shares[0], &shares[0]]).failure();
    assert!(
        err.contains("share 2 has the same number (1) as share 1"),
        "{err}"
    );
}

#[test]
fn shares_of_different_splits_do_not_combine() {
    let dir = temp();
    let path = dir.path();
    let first = split(path, b"the same secret", "2", "3");
    let second = split(path, b"the same secret", "2", "3");
    let err = combine(path, &[&first[0], &second[1]]).failure();
    assert!(
        err.contains(
            "the shares do not combine to a valid secret (too few, or from different splits)"
        ),
        "{err}"
    );
    let three = split(path, b"the same secret", "3", "3");
    let err = combine(path, &[&first[0], &three[1], &three[2]]).failure();
    assert!(err.contains("different splits"), "{err}");
    let longer = split(path, b"a different secret", "2", "3");
    let err = combine(path, &[&first[0], &longer[1]]).failure();
    assert!(err.contains("different lengths"), "{err}");
}

#[test]
fn binary_secrets_round_trip() {
    let dir = temp();
    let path = dir.path();
    let secret: Vec<u8> = (0..=255u8).rev().chain(0..=255u8).collect();
    let shares = split(path, &secret, "2", "4");
    assert_eq!(combine(path, &[&shares[3], &shares[1]]).ok(), secret);

    // From standard input too, and at the size limit.
    let big: Vec<u8> = (0..1024u32).map(|i| (i % 256) as u8).collect();
    let out = mayfly_with_stdin(
        path,
        &["crypto", "shamir", "split", "-t", "2", "-n", "2"],
        Some(&big),
    )
    .ok_text();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(combine(path, &lines).ok(), big);
}

#[test]
fn split_refuses_bad_parameters_and_secrets() {
    let dir = temp();
    let path = dir.path();
    std::fs::write(path.join("secret"), b"s").expect("write");
    let split_args = |k: &'static str, n: &'static str| {
        [
            "crypto",
            "shamir",
            "split",
            "--threshold",
            k,
            "--shares",
            n,
            "--secret-file",
            "secret",
        ]
    };
    let err = mayfly(path, &split_args("3", "2")).failure();
    assert!(
        err.contains("--shares (2) must be at least --threshold (3)"),
        "{err}"
    );
    for (k, n) in [("1", "3"), ("2", "256"), ("0", "2")] {
        let run = mayfly(path, &split_args(k, n));
        assert!(!run.success, "{k} of {n} accepted");
        assert!(run.stdout.is_empty());
    }
    assert_eq!(split(path, b"s", "255", "255").len(), 255);

    std::fs::write(path.join("secret"), vec![b'a'; 1025]).expect("write");
    let err = mayfly(path, &split_args("2", "3")).failure();
    assert!(err.contains("longer than 1024 bytes"), "{err}");
    let err = mayfly(path, &["crypto", "shamir", "split", "-t", "2", "-n", "3"]).failure();
    assert!(err.contains("the secret is empty"), "{err}");
    let err = mayfly(path, &["crypto", "shamir", "combine"]).failure();
    assert!(err.contains("no shares given"), "{err}");
}
