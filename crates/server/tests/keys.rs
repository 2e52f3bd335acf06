//! Keys and certificates made offline: `mayfly certificate create`'s profiles, and
//! `mayfly crypto change-pass` (the CA runs with its new password; it asks before overwriting).

mod support;

use support::ca::{Init, InitCa};
use support::{mayfly_err, mayfly_ok, mode, openssl, require_tool};

#[test]
fn certificate_create_profiles_build_a_chain_openssl_verifies() {
    require_tool("openssl", "openssl");
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    let home = work.join("home");
    support::write_secret(work.join("pw"), "secret");
    mayfly_ok(
        &home,
        work,
        &[
            "certificate",
            "create",
            "Test Root",
            "root.crt",
            "root.key",
            "--profile",
            "root-ca",
            "--password-file",
            "pw",
        ],
    );
    mayfly_ok(
        &home,
        work,
        &[
            "certificate",
            "create",
            "Test Intermediate",
            "int.crt",
            "int.key",
            "--profile",
            "intermediate-ca",
            "--ca",
            "root.crt",
            "--ca-key",
            "root.key",
            "--ca-password-file",
            "pw",
            "--password-file",
            "pw",
        ],
    );
    mayfly_ok(
        &home,
        work,
        &[
            "certificate",
            "create",
            "leaf.internal",
            "leaf.crt",
            "leaf.key",
            "--profile",
            "leaf",
            "--ca",
            "int.crt",
            "--ca-key",
            "int.key",
            "--ca-password-file",
            "pw",
            "--no-password",
            "--insecure",
        ],
    );
    mayfly_ok(
        &home,
        work,
        &[
            "certificate",
            "create",
            "self.internal",
            "self.crt",
            "self.key",
            "--profile",
            "self-signed",
            "--no-password",
            "--insecure",
        ],
    );
    let ok = openssl(
        &[
            "verify",
            "-x509_strict",
            "-CAfile",
            "root.crt",
            "-untrusted",
            "int.crt",
            "leaf.crt",
        ],
        work,
    );
    assert!(ok.contains("leaf.crt: OK"), "{ok}");
    // A self-signed TLS leaf is its own trust anchor; OpenSSL wants -partial_chain for a
    // certificate whose key usage has no keyCertSign. The signature is checked separately.
    let ok = openssl(
        &[
            "verify",
            "-partial_chain",
            "-CAfile",
            "self.crt",
            "self.crt",
        ],
        work,
    );
    assert!(ok.contains("self.crt: OK"), "{ok}");
    let der =
        mayfly_pki::cert::certificates_from_pem(&std::fs::read(work.join("self.crt")).unwrap())
            .unwrap();
    let (_, parsed) = x509_parser::parse_x509_certificate(&der[0]).unwrap();
    parsed
        .verify_signature(None)
        .expect("self-signed signature");
    assert_eq!(parsed.subject(), parsed.issuer());
    assert!(
        std::fs::read_to_string(work.join("root.key"))
            .unwrap()
            .contains("ENCRYPTED PRIVATE KEY")
    );
    assert!(
        std::fs::read_to_string(work.join("leaf.key"))
            .unwrap()
            .contains("BEGIN PRIVATE KEY")
    );
    assert_eq!(mode(&work.join("root.key")), 0o600);
    mayfly_err(
        &home,
        work,
        &[
            "certificate",
            "create",
            "x",
            "x.crt",
            "x.key",
            "--no-password",
        ],
        "--insecure",
    );
    mayfly_err(
        &home,
        work,
        &[
            "certificate",
            "create",
            "x",
            "x.crt",
            "x.key",
            "--no-password",
            "--insecure",
        ],
        "--ca FILE --ca-key FILE",
    );
    std::fs::write(work.join("wrong"), "wrong").unwrap();
    mayfly_err(
        &home,
        work,
        &[
            "certificate",
            "create",
            "y",
            "y.crt",
            "y.key",
            "--ca",
            "int.crt",
            "--ca-key",
            "int.key",
            "--ca-password-file",
            "wrong",
            "--no-password",
            "--insecure",
        ],
        "password is incorrect",
    );
    assert!(!work.join("y.crt").exists() && !work.join("y.key").exists());
}

#[test]
fn the_ca_runs_with_its_key_password_changed() {
    let ca = InitCa::new(Init {
        name: "Pw",
        ..Init::default()
    });
    let (home, work, config) = (ca.home.clone(), ca.work(), &ca.config);
    // The CA's password in pw.txt is the old one.
    support::write_secret(work.join("new.txt"), "new password\n");
    let key = home.join("secrets/intermediate_ca_key");
    mayfly_ok(
        &home,
        work,
        &[
            "crypto",
            "change-pass",
            key.to_str().unwrap(),
            "--password-file",
            "pw.txt",
            "--new-password-file",
            "new.txt",
        ],
    );
    assert_eq!(mode(&key), 0o600);
    let refused = std::process::Command::new(support::server_bin())
        .args([
            config.to_str().unwrap(),
            "--password-file",
            work.join("pw.txt").to_str().unwrap(),
        ])
        .env("MAYFLY_PATH", &home)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("password is incorrect"),
        "{refused:?}"
    );
    let _server = ca.start_with_password("new.txt");
    ca.certificate(["svc.internal", "svc.crt", "svc.key"], &[]);
}

#[test]
fn change_pass_asks_before_overwriting_at_a_terminal() {
    require_tool("script", "bsdutils");
    use std::io::Write;
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    let home = work.join("home");
    support::write_secret(work.join("old"), "old password");
    support::write_secret(work.join("new"), "new password");
    mayfly_ok(
        &home,
        work,
        &[
            "certificate",
            "create",
            "x",
            "x.crt",
            "x.key",
            "--profile",
            "self-signed",
            "--password-file",
            "old",
        ],
    );
    std::fs::write(work.join("taken.key"), "keep").unwrap();
    let ask = |answer: &[u8]| {
        let command = format!(
            "{} crypto change-pass x.key --password-file old --new-password-file new --out taken.key",
            support::client_bin().display()
        );
        let mut child = std::process::Command::new("script")
            .args(["-qec", &command, "/dev/null"])
            .env("MAYFLY_PATH", &home)
            .current_dir(work)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(answer).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while child.try_wait().unwrap().is_none() {
            assert!(
                std::time::Instant::now() < deadline,
                "change-pass did not finish"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        drop(stdin);
        String::from_utf8_lossy(&child.wait_with_output().unwrap().stdout).into_owned()
    };
    let text = ask(b"n\n");
    assert!(
        text.contains("Would you like to overwrite taken.key [y/n]"),
        "{text}"
    );
    assert_eq!(
        std::fs::read_to_string(work.join("taken.key")).unwrap(),
        "keep"
    );
    ask(b"y\n");
    let written = std::fs::read_to_string(work.join("taken.key")).unwrap();
    assert!(written.contains("ENCRYPTED PRIVATE KEY"), "{written}");
    assert_eq!(mode(&work.join("taken.key")), 0o600);
}
