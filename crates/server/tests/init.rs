//! `mayfly ca init`: the layout, modes and encryption of what it writes, a CA built on step's
//! root, the prompts at a terminal; and the CA it makes serving tokens once across a restart.

mod support;

use support::ca::{Init, InitCa};
use support::{create_csr, mayfly_err, mayfly_ok, mode, openssl, require_tool, verify_chain};

#[test]
fn init_with_passwords_serves_tokens_once_and_survives_restart() {
    require_tool("openssl", "openssl");
    let ca = InitCa::new(Init {
        name: "Acme",
        provisioner: "ops@acme.test",
        dns: &["localhost"],
        provisioner_password: Some("provisioner secret\n"),
        ..Init::default()
    });
    let (home, work, config) = (ca.home.clone(), ca.work(), &ca.config);
    let init_args: Vec<&str> = ca.init_args.iter().map(String::as_str).collect();
    let out = &ca.output;
    let fingerprint_line = out
        .lines()
        .find(|l| l.contains("Root fingerprint:"))
        .unwrap();
    let fingerprint = fingerprint_line.rsplit(' ').next().unwrap().to_string();
    assert_eq!(fingerprint.len(), 64, "{out}");

    // Layout, modes, encryption at rest.
    for (file, expected) in [
        ("secrets/root_ca_key", 0o600),
        ("secrets/intermediate_ca_key", 0o600),
        ("config/ca.json", 0o600),
        ("certs/root_ca.crt", 0o644),
        ("secrets", 0o700),
        ("config", 0o700),
        ("db", 0o700),
    ] {
        assert_eq!(mode(&home.join(file)), expected, "{file}");
    }
    for key in ["secrets/root_ca_key", "secrets/intermediate_ca_key"] {
        let text = std::fs::read_to_string(home.join(key)).unwrap();
        assert!(
            text.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"),
            "{key}"
        );
        openssl(
            &[
                "pkey",
                "-in",
                home.join(key).to_str().unwrap(),
                "-passin",
                "file:pw.txt",
                "-noout",
            ],
            work,
        );
    }
    let root_text = openssl(
        &[
            "x509",
            "-in",
            home.join("certs/root_ca.crt").to_str().unwrap(),
            "-noout",
            "-text",
        ],
        work,
    );
    assert!(root_text.contains("CA:TRUE, pathlen:1"), "{root_text}");
    let int_text = openssl(
        &[
            "x509",
            "-in",
            home.join("certs/intermediate_ca.crt").to_str().unwrap(),
            "-noout",
            "-text",
        ],
        work,
    );
    assert!(int_text.contains("CA:TRUE, pathlen:0"), "{int_text}");
    let fp = openssl(
        &[
            "x509",
            "-in",
            home.join("certs/root_ca.crt").to_str().unwrap(),
            "-noout",
            "-fingerprint",
            "-sha256",
        ],
        work,
    );
    assert_eq!(
        fp.trim()
            .rsplit('=')
            .next()
            .unwrap()
            .replace(':', "")
            .to_lowercase(),
        fingerprint
    );

    // A second init refuses to overwrite, and changes nothing.
    let before = std::fs::read(home.join("secrets/root_ca_key")).unwrap();
    mayfly_err(&home, work, &init_args, "already exists");
    assert_eq!(
        std::fs::read(home.join("secrets/root_ca_key")).unwrap(),
        before
    );

    // The encrypted intermediate key needs its password.
    let out = std::process::Command::new(support::server_bin())
        .arg(config)
        .env("MAYFLY_PATH", &home)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("intermediate_ca_key is encrypted") && stderr.contains("--password-file"),
        "{out:?}"
    );

    let server = ca.start();
    assert_eq!(mayfly_ok(&home, work, &["ca", "health"]).trim(), "ok");

    // Token, CSR, sign: step's flow.
    let token = mayfly_ok(
        &home,
        work,
        &[
            "ca",
            "token",
            "svc.internal",
            "--password-file",
            "prov-pw.txt",
        ],
    )
    .trim()
    .to_string();
    create_csr(&home, work, ["svc.internal", "svc.csr", "svc.key"], &[]);
    mayfly_ok(
        &home,
        work,
        &["ca", "sign", "svc.csr", "svc.crt", "--token", &token],
    );
    let root = home.join("certs/root_ca.crt");
    verify_chain(&root, "svc.crt", work);

    // The same token again is refused, and no file is written.
    mayfly_err(
        &home,
        work,
        &["ca", "sign", "svc.csr", "again.crt", "--token", &token],
        "token was already used",
    );
    assert!(!work.join("again.crt").exists());

    // A token minted before a restart is accepted after it.
    let early = mayfly_ok(
        &home,
        work,
        &[
            "ca",
            "token",
            "svc.internal",
            "--password-file",
            "prov-pw.txt",
        ],
    )
    .trim()
    .to_string();
    server.stop();
    let server = ca.start();
    mayfly_ok(
        &home,
        work,
        &[
            "ca",
            "sign",
            "svc.csr",
            "after-restart.crt",
            "--token",
            &early,
        ],
    );
    // Replay protection survives the restart too.
    mayfly_err(
        &home,
        work,
        &["ca", "sign", "svc.csr", "again.crt", "--token", &token],
        "already used",
    );

    // `ca certificate` with a wrong provisioner password: one line, no files.
    std::fs::write(work.join("wrong.txt"), "nope").unwrap();
    mayfly_err(
        &home,
        work,
        &[
            "ca",
            "certificate",
            "x.internal",
            "x.crt",
            "x.key",
            "--provisioner-password-file",
            "wrong.txt",
        ],
        "cannot decrypt the provisioner key",
    );
    assert!(!work.join("x.crt").exists() && !work.join("x.key").exists());
    drop(server);
}

#[test]
fn init_builds_on_a_root_and_key_written_by_step() {
    require_tool("openssl", "openssl");
    let Some(vectors) =
        mayfly_testkit::interop_vectors("init_builds_on_a_root_and_key_written_by_step")
    else {
        return;
    };
    let vectors = vectors.join("certificates/ca/testdata/secrets");
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    let home = work.join("home");
    support::write_secret(work.join("pw"), "new password");
    support::write_secret(work.join("step-pw"), "password");
    let root = vectors.join("root_ca.crt");
    let key = vectors.join("root_ca_key");
    mayfly_ok(
        &home,
        work,
        &[
            "ca",
            "init",
            "--name",
            "Reuse",
            "--dns",
            "127.0.0.1",
            "--address",
            "127.0.0.1:9999",
            "--provisioner",
            "admin",
            "--password-file",
            "pw",
            "--root",
            root.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
            "--key-password-file",
            "step-pw",
        ],
    );
    assert_eq!(
        std::fs::read(home.join("certs/root_ca.crt"))
            .map(|b| !b.is_empty())
            .ok(),
        Some(true)
    );
    assert!(
        !home.join("secrets/root_ca_key").exists(),
        "the existing root key is not copied"
    );
    let ok = openssl(
        &[
            "verify",
            "-CAfile",
            root.to_str().unwrap(),
            home.join("certs/intermediate_ca.crt").to_str().unwrap(),
        ],
        work,
    );
    assert!(ok.contains(": OK"), "{ok}");
    // A wrong password for step's key is refused and nothing is written.
    let other = work.join("other");
    mayfly_err(
        &other,
        work,
        &[
            "ca",
            "init",
            "--name",
            "Reuse",
            "--dns",
            "127.0.0.1",
            "--address",
            ":9999",
            "--provisioner",
            "admin",
            "--password-file",
            "pw",
            "--root",
            root.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
        ],
        "password is incorrect",
    );
    assert!(!other.exists());

    // --pki: keys and certificates only.
    let pki = work.join("pki");
    mayfly_ok(
        &pki,
        work,
        &[
            "ca",
            "init",
            "--pki",
            "--name",
            "Only",
            "--password-file",
            "pw",
        ],
    );
    assert!(
        pki.join("certs/root_ca.crt").exists() && pki.join("secrets/intermediate_ca_key").exists()
    );
    assert!(!pki.join("config/ca.json").exists() && !pki.join("config/defaults.json").exists());
}

#[test]
fn init_asks_for_missing_values_at_a_terminal() {
    require_tool("script", "bsdutils");
    require_tool("openssl", "openssl");
    use std::io::Write;
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let command = format!("{} ca init", support::client_bin().display());
    // `script` gives the command a terminal; stdin stays open until it exits, like a person.
    let mut child = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("MAYFLY_PATH", &home)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(
            b"Pty Test\n127.0.0.1, localhost\n127.0.0.1:9443\nadmin\nsecret-pass\nsecret-pass\n",
        )
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "ca init did not finish"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    for prompt in [
        "name your new PKI",
        "DNS names or IP addresses",
        "bind to",
        "first provisioner",
        "Confirm the password",
    ] {
        assert!(text.contains(prompt), "no prompt {prompt:?} in {text}");
    }
    let config = std::fs::read_to_string(home.join("config/ca.json")).unwrap();
    assert!(
        config.contains("\"127.0.0.1:9443\"") && config.contains("\"localhost\""),
        "{config}"
    );
    let key = home.join("secrets/intermediate_ca_key");
    openssl(
        &[
            "pkey",
            "-in",
            key.to_str().unwrap(),
            "-passin",
            "pass:secret-pass",
            "-noout",
        ],
        tmp.path(),
    );
}
