//! `mayfly ssh ...` and `mayfly ca token --ssh` against a dev CA (which has SSH keys): tokens
//! minted apart from the request, and a table of bad invocations, each refused with one clear
//! line and a non-zero exit, none of which writes a file.

mod support;

use support::{Server, mayfly_err, mayfly_ok};

#[test]
fn ssh_commands_work_and_refuse_bad_input_with_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let client = tmp.path().join("client");
    let work = tmp.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let (server, dev) = Server::dev(tmp.path(), &client);
    dev.bootstrap(&client, &work);
    let pw = dev.password_file.to_str().unwrap();

    // The dev banner's SSH command works as printed.
    let banner_command = server
        .lines
        .iter()
        .map(|l| l.trim())
        .find(|l| l.contains(" ssh certificate "))
        .unwrap_or_else(|| panic!("no SSH command in the banner: {:?}", server.lines));
    let bin_dir = support::client_bin().parent().unwrap().to_path_buf();
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(banner_command)
        .env(
            "PATH",
            format!(
                "{}:{}",
                bin_dir.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .env("MAYFLY_PATH", &client)
        .current_dir(&work)
        .output()
        .unwrap();
    assert!(out.status.success(), "{banner_command}: {out:?}");
    // `ssh inspect -` reads standard input.
    let inspected = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{} ssh inspect - --format json < id_ecdsa-cert.pub",
            support::client_bin().display()
        ))
        .env("MAYFLY_PATH", &client)
        .current_dir(&work)
        .output()
        .unwrap();
    let value: serde_json::Value =
        serde_json::from_slice(&inspected.stdout).unwrap_or_else(|e| panic!("{e}: {inspected:?}"));
    assert_eq!(value["certType"], "user");
    assert_eq!(value["principals"], serde_json::json!(["alice"]));
    assert_eq!(value["keyID"], "alice");

    // A token minted on its own, then used for the certificate.
    let token = mayfly_ok(
        &client,
        &work,
        &[
            "ca",
            "token",
            "web1",
            "--ssh",
            "--host",
            "--principal",
            "web1",
            "--password-file",
            pw,
        ],
    );
    let payload = token.trim().split('.').nth(1).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["step"]["ssh"]["certType"], "host", "{claims}");
    assert_eq!(claims["step"]["ssh"]["principals"][0], "web1", "{claims}");
    assert!(
        claims["aud"].as_str().unwrap().ends_with("/1.0/ssh/sign"),
        "{claims}"
    );
    mayfly_ok(
        &client,
        &work,
        &[
            "ssh",
            "certificate",
            "web1",
            "web1_key",
            "--host",
            "--token",
            token.trim(),
            "--no-password",
            "--insecure",
        ],
    );
    let json = mayfly_ok(
        &client,
        &work,
        &["ssh", "inspect", "web1_key-cert.pub", "--format", "json"],
    );
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["certType"], "host");
    assert_eq!(value["principals"][0], "web1");
    assert_eq!(value["extensions"], serde_json::json!({}));
    // The same token again is refused: it was used.
    mayfly_err(
        &client,
        &work,
        &[
            "ssh",
            "certificate",
            "web1",
            "web1_again",
            "--host",
            "--token",
            token.trim(),
            "--no-password",
            "--insecure",
        ],
        "token was already used",
    );
    // Reading a certificate from standard input is covered by "-"; here: a user certificate.
    mayfly_ok(
        &client,
        &work,
        &[
            "ssh",
            "certificate",
            "alice",
            "alice_key",
            "--no-password",
            "--insecure",
            "--provisioner-password-file",
            pw,
        ],
    );
    // --sign certifies an existing public key; only the certificate is written.
    std::fs::copy(work.join("alice_key.pub"), work.join("other.pub")).unwrap();
    mayfly_ok(
        &client,
        &work,
        &[
            "ssh",
            "certificate",
            "alice",
            "other.pub",
            "--sign",
            "--provisioner-password-file",
            pw,
        ],
    );
    assert!(work.join("other-cert.pub").exists());
    std::fs::write(
        work.join("garbage-cert.pub"),
        "ecdsa-sha2-nistp256-cert-v01@openssh.com AAAA\n",
    )
    .unwrap();
    std::fs::write(work.join("bad.pub"), "ssh-dss AAAAB3NzaC1kc3M= me\n").unwrap();

    let before: Vec<_> = std::fs::read_dir(&work)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let with_pw = |mut args: Vec<&'static str>| -> Vec<String> {
        args.extend(["--provisioner-password-file"]);
        let mut out: Vec<String> = args.into_iter().map(String::from).collect();
        out.push(pw.to_string());
        out
    };
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["ssh".into(), "inspect".into(), "missing-cert.pub".into()],
            "cannot read",
        ),
        (
            vec!["ssh".into(), "inspect".into(), "garbage-cert.pub".into()],
            "truncated",
        ),
        (
            vec!["ssh".into(), "inspect".into(), "alice_key.pub".into()],
            "not an OpenSSH certificate type",
        ),
        (
            with_pw(vec!["ssh", "certificate", "bob", "bob_key", "--kty", "OKP"]),
            "only be written unencrypted",
        ),
        (
            with_pw(vec![
                "ssh",
                "certificate",
                "bob",
                "bob_key",
                "--kty",
                "RSA",
                "--no-password",
                "--insecure",
            ]),
            "EC or OKP",
        ),
        (
            with_pw(vec!["ssh", "certificate", "bob", "missing.pub", "--sign"]),
            "cannot read",
        ),
        (
            with_pw(vec!["ssh", "certificate", "bob", "bad.pub", "--sign"]),
            "ssh-dss",
        ),
        (
            with_pw(vec![
                "ssh",
                "certificate",
                "bob",
                "bob_key",
                "--not-after",
                "48h",
                "--no-password",
                "--insecure",
            ]),
            "outside the allowed range",
        ),
        (
            with_pw(vec![
                "ssh",
                "certificate",
                "bob",
                "bob_key",
                "--principal",
                "b ob",
                "--no-password",
                "--insecure",
            ]),
            "is invalid",
        ),
        (
            with_pw(vec![
                "ssh",
                "certificate",
                "bob",
                "bob_key",
                "--no-password",
            ]),
            "--insecure",
        ),
        (
            with_pw(vec![
                "ssh",
                "certificate",
                "alice",
                "alice_key",
                "--no-password",
                "--insecure",
            ]),
            "already exists",
        ),
        (
            with_pw(vec![
                "ssh",
                "certificate",
                "bob",
                "bob_key",
                "--add-to-agent",
                "--no-password",
                "--insecure",
            ]),
            "SSH_AUTH_SOCK is not set",
        ),
        (
            with_pw(vec![
                "ssh",
                "certificate",
                "bob",
                "other.pub",
                "--sign",
                "--add-to-agent",
            ]),
            "cannot be used with --sign",
        ),
        (
            with_pw(vec!["ssh", "revoke", "12ab"]),
            "not a decimal number",
        ),
        (
            with_pw(vec!["ssh", "revoke", "123"]),
            "no certificate with serial number 123",
        ),
        (
            with_pw(vec!["ssh", "revoke", "123", "--reasonCode", "7"]),
            "reason code",
        ),
        (
            vec![
                "ssh".into(),
                "config".into(),
                "--set".into(),
                "nonsense".into(),
            ],
            "expected NAME=VALUE",
        ),
        (
            vec![
                "ssh".into(),
                "config".into(),
                "--host".into(),
                "--set".into(),
                "HostKye=/k".into(),
            ],
            "unknown configuration value \"HostKye\"",
        ),
        (
            vec![
                "ssh".into(),
                "renew".into(),
                "missing-cert.pub".into(),
                "alice_key".into(),
                "--force".into(),
            ],
            "cannot read",
        ),
        (
            vec![
                "ssh".into(),
                "renew".into(),
                "web1_key-cert.pub".into(),
                "alice_key".into(),
                "--force".into(),
            ],
            "is not the key of the certificate",
        ),
        (
            vec![
                "ssh".into(),
                "renew".into(),
                "alice_key-cert.pub".into(),
                "alice_key".into(),
                "--force".into(),
            ],
            "only host certificates",
        ),
        (
            vec![
                "ssh".into(),
                "renew".into(),
                "web1_key-cert.pub".into(),
                "web1_key".into(),
            ],
            "use --force",
        ),
        (
            vec![
                "ssh".into(),
                "rekey".into(),
                "web1_key-cert.pub".into(),
                "web1_key".into(),
                "--out".into(),
                "alice_key".into(),
                "--no-password".into(),
                "--insecure".into(),
            ],
            "already exists",
        ),
        (vec!["ssh".into(), "krl".into()], "--out"),
        (
            vec!["ssh".into(), "check-host".into(), " ".into()],
            "host name is empty",
        ),
        (
            vec!["ca".into(), "token".into(), "x".into(), "--host".into()],
            "--ssh",
        ),
    ];
    for (args, expected) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        mayfly_err(&client, &work, &args, expected);
    }
    let after: Vec<_> = std::fs::read_dir(&work)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(before, after, "no refused command wrote a file");

    // A host key made by ssh-keygen (OpenSSH format) is certified with --sign and renews.
    let (ok, text) = support::run(
        "ssh-keygen",
        &["-q", "-t", "ed25519", "-N", "", "-f", "keygen_host"],
        &work,
    );
    assert!(ok, "{text}");
    mayfly_ok(
        &client,
        &work,
        &[
            "ssh",
            "certificate",
            "web2",
            "keygen_host.pub",
            "--sign",
            "--host",
            "--provisioner-password-file",
            pw,
        ],
    );
    let first = mayfly_ok(
        &client,
        &work,
        &["ssh", "inspect", "keygen_host-cert.pub", "--format", "json"],
    );
    mayfly_ok(
        &client,
        &work,
        &[
            "ssh",
            "renew",
            "keygen_host-cert.pub",
            "keygen_host",
            "--force",
        ],
    );
    let second = mayfly_ok(
        &client,
        &work,
        &["ssh", "inspect", "keygen_host-cert.pub", "--format", "json"],
    );
    let serial =
        |text: &str| serde_json::from_str::<serde_json::Value>(text).unwrap()["serial"].clone();
    assert_ne!(serial(&first), serial(&second));

    // The host certificate renews in place and rekeys; principals carry over.
    mayfly_ok(
        &client,
        &work,
        &["ssh", "renew", "web1_key-cert.pub", "web1_key", "--force"],
    );
    mayfly_ok(
        &client,
        &work,
        &[
            "ssh",
            "rekey",
            "web1_key-cert.pub",
            "web1_key",
            "--out",
            "web1_new",
            "--no-password",
            "--insecure",
        ],
    );
    let text = mayfly_ok(&client, &work, &["ssh", "inspect", "web1_new-cert.pub"]);
    assert!(
        text.contains("host certificate") && text.contains("                web1\n"),
        "{text}"
    );
    assert_eq!(
        mayfly_ok(&client, &work, &["ssh", "check-host", "web1"]).trim(),
        "true"
    );
    // The host list needs an X.509 client certificate from the CA.
    mayfly_ok(
        &client,
        &work,
        &[
            "ca",
            "certificate",
            "ops.internal",
            "ops.crt",
            "ops.key",
            "--provisioner-password-file",
            pw,
        ],
    );
    let hosts = mayfly_ok(
        &client,
        &work,
        &["ssh", "hosts", "--cert", "ops.crt", "--key", "ops.key"],
    );
    assert!(hosts.lines().any(|h| h == "web1"), "{hosts}");
    assert!(hosts.lines().any(|h| h == "web2"), "{hosts}");
    assert!(
        !hosts.lines().any(|h| h == "alice"),
        "user certificates are not hosts: {hosts}"
    );
    mayfly_err(
        &client,
        &work,
        &["ssh", "hosts", "--cert", "missing.crt", "--key", "ops.key"],
        "cannot read",
    );
    // The holder revokes its own certificate with SSH-POP (no provisioner), and it no longer
    // renews; the serial comes from the certificate, or is checked against it.
    mayfly_err(
        &client,
        &work,
        &[
            "ssh",
            "revoke",
            "123",
            "--sshpop-cert",
            "web1_new-cert.pub",
            "--sshpop-key",
            "web1_new",
        ],
        "123",
    );
    mayfly_ok(
        &client,
        &work,
        &[
            "ssh",
            "revoke",
            "--sshpop-cert",
            "web1_new-cert.pub",
            "--sshpop-key",
            "web1_new",
            "--reasonCode",
            "keyCompromise",
        ],
    );
    mayfly_err(
        &client,
        &work,
        &["ssh", "renew", "web1_new-cert.pub", "web1_new", "--force"],
        "revoked",
    );
    mayfly_err(
        &client,
        &work,
        &["ssh", "revoke", "--sshpop-cert", "web1_new-cert.pub"],
        "--sshpop-key",
    );
    mayfly_ok(&client, &work, &["ssh", "krl", "--out", "krl.bin"]);
    assert!(
        std::fs::read(work.join("krl.bin"))
            .unwrap()
            .starts_with(b"SSHKRL\n\0")
    );

    // The KRL is published with the rest; sshd's RevokedKeys can come from a web server.
    let config_path = dev.ca_dir.join("config/ca.json");
    let config_arg = config_path.to_str().unwrap();
    mayfly_ok(
        &client,
        &work,
        &["ca", "publish", "--dir", "site", "--ca-config", config_arg],
    );
    let (ok, out) = support::run(
        "ssh-keygen",
        &["-Q", "-f", "site/1.0/ssh/krl", "web1_new-cert.pub"],
        &work,
    );
    assert!(!ok && out.contains("REVOKED"), "{out}");
}

/// SSH claims changed in ca.json take effect on SIGHUP, with the SSH CA and its store kept.
#[test]
fn ssh_claims_follow_a_reload() {
    let tmp = tempfile::tempdir().unwrap();
    let client = tmp.path().join("client");
    let work = tmp.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let (server, dev) = Server::dev(tmp.path(), &client);
    dev.bootstrap(&client, &work);
    let pw = dev.password_file.to_str().unwrap();
    let args = |name: &'static str| {
        vec![
            "ssh",
            "certificate",
            "alice",
            name,
            "--not-after",
            "30h",
            "--no-password",
            "--insecure",
            "--provisioner-password-file",
            pw,
        ]
    };
    mayfly_err(&client, &work, &args("first"), "outside the allowed range");

    let ca_json = dev.ca_dir.join("config/ca.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&ca_json).unwrap()).unwrap();
    config["authority"]["claims"] = serde_json::json!({"maxUserSSHCertDuration": "48h"});
    std::fs::write(&ca_json, config.to_string()).unwrap();
    let (ok, text) = support::run("kill", &["-HUP", &server.pid().to_string()], &work);
    assert!(ok, "{text}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let out = support::mayfly(&client, &work, &args("second"));
        if out.status.success() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the reload did not take effect: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let json = mayfly_ok(
        &client,
        &work,
        &["ssh", "inspect", "second-cert.pub", "--format", "json"],
    );
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    let at = |field: &str| {
        time::OffsetDateTime::parse(
            value[field].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap()
    };
    assert!(
        at("validBefore") - at("validAfter") > time::Duration::hours(29),
        "{value}"
    );
    // The store survived the reload: the certificate issued before it can still be revoked.
    let serial = value["serial"].as_str().unwrap().to_string();
    mayfly_ok(
        &client,
        &work,
        &["ssh", "revoke", &serial, "--provisioner-password-file", pw],
    );
}
