//! Renewal end to end: over mutual TLS, by step's x5c token (after expiry where the provisioner
//! allows it), and by the renewal daemon on its schedule.

mod support;

use std::path::Path;

use support::ca::{DevCa, Init, InitCa};
use support::{
    ca_certificate, mayfly, mayfly_err, mayfly_ok, openssl, require_tool, run, serial_of,
    verify_chain,
};

#[test]
fn renew_over_mutual_tls_and_passive_revocation() {
    require_tool("openssl", "openssl");
    let ca = DevCa::bootstrapped();
    let (client, work) = (ca.client.clone(), ca.work());
    let pw = ca.password_file();
    let root = client.join("certs/root_ca.crt");
    ca.certificate(
        ["svc.internal", "svc.crt", "svc.key"],
        &[
            "--san",
            "svc.internal",
            "--san",
            "10.0.0.9",
            "--not-after",
            "2h",
        ],
    );
    let first = serial_of(&client, work, "svc.crt");

    // --expires-in: far from expiry, nothing happens and the CA is not asked.
    let out = mayfly(
        &client,
        work,
        &[
            "ca",
            "renew",
            "svc.crt",
            "svc.key",
            "--expires-in",
            "1h",
            "--ca-url",
            "https://127.0.0.1:1",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("not renewed"));
    assert_eq!(serial_of(&client, work, "svc.crt"), first);
    // Overwriting needs --force without a terminal.
    mayfly_err(
        &client,
        work,
        &["ca", "renew", "svc.crt", "svc.key"],
        "use --force",
    );

    // Within the window it renews: new serial, same names, same lifetime, chains to the root.
    mayfly_ok(
        &client,
        work,
        &[
            "ca",
            "renew",
            "svc.crt",
            "svc.key",
            "--expires-in",
            "3h",
            "--force",
        ],
    );
    let second = serial_of(&client, work, "svc.crt");
    assert_ne!(first, second);
    verify_chain(&root, "svc.crt", work);
    let text = openssl(
        &[
            "x509",
            "-in",
            "svc.crt",
            "-noout",
            "-ext",
            "subjectAltName",
            "-startdate",
            "-enddate",
        ],
        work,
    );
    assert!(
        text.contains("DNS:svc.internal") && text.contains("IP Address:10.0.0.9"),
        "{text}"
    );
    let info = mayfly_pki::cert::CertificateInfo::from_der(
        &mayfly_pki::cert::certificates_from_pem(&std::fs::read(work.join("svc.crt")).unwrap())
            .unwrap()[0],
    )
    .unwrap();
    assert_eq!(
        (info.not_after - info.not_before).whole_seconds(),
        2 * 3600 + 60,
        "same lifetime"
    );
    mayfly_ok(
        &client,
        work,
        &["ca", "renew", "svc.crt", "svc.key", "--out", "copy.crt"],
    );
    assert_ne!(serial_of(&client, work, "copy.crt"), second);

    // Revoke by token; the revocation happens once and stops renewal at once.
    mayfly_ok(
        &client,
        work,
        &[
            "ca",
            "revoke",
            &second,
            "--reasonCode",
            "keyCompromise",
            "--reason",
            "key leaked",
            "--provisioner-password-file",
            pw,
        ],
    );
    mayfly_err(
        &client,
        work,
        &["ca", "revoke", &second, "--provisioner-password-file", pw],
        "already revoked",
    );
    mayfly_err(
        &client,
        work,
        &["ca", "renew", "svc.crt", "svc.key", "--force"],
        "was revoked and cannot be renewed",
    );

    // A revocation token is bound to its serial.
    let copy = serial_of(&client, work, "copy.crt");
    let token = mayfly_ok(
        &client,
        work,
        &["ca", "token", &copy, "--revoke", "--password-file", pw],
    );
    mayfly_err(
        &client,
        work,
        &[
            "ca",
            "revoke",
            "12345678901234567890",
            "--token",
            token.trim(),
        ],
        "403",
    );
    mayfly_ok(
        &client,
        work,
        &["ca", "revoke", &copy, "--token", token.trim()],
    );
    mayfly_err(
        &client,
        work,
        &["ca", "revoke", &copy, "--token", token.trim()],
        "already",
    );

    // Revoke with the certificate and its key over mutual TLS.
    ca.certificate(["b.internal", "b.crt", "b.key"], &[]);
    let out = mayfly_ok(
        &client,
        work,
        &[
            "ca",
            "revoke",
            "--cert",
            "b.crt",
            "--key",
            "b.key",
            "--reasonCode",
            "superseded",
        ],
    );
    assert!(
        out.contains(&format!(
            "Serial Number {} has been revoked",
            serial_of(&client, work, "b.crt")
        )),
        "{out}"
    );
    mayfly_err(
        &client,
        work,
        &["ca", "renew", "b.crt", "b.key", "--force"],
        "was revoked",
    );

    // Bad input.
    mayfly_err(
        &client,
        work,
        &["ca", "revoke", "12345", "--provisioner-password-file", pw],
        "404",
    );
    mayfly_err(
        &client,
        work,
        &[
            "ca",
            "revoke",
            "12345",
            "--reasonCode",
            "7",
            "--provisioner-password-file",
            pw,
        ],
        "not an RFC 5280 reason",
    );
    mayfly_err(
        &client,
        work,
        &[
            "ca",
            "revoke",
            "12345",
            "--reasonCode",
            "stolen",
            "--provisioner-password-file",
            pw,
        ],
        "not an RFC 5280 reason",
    );
}

#[test]
fn renewal_by_x5c_token_and_after_expiry_only_where_allowed() {
    let ca = InitCa::new(Init {
        name: "X5c",
        provisioner: "lenient",
        ..Init::default()
    });
    let (home, work) = (ca.home.clone(), ca.work());
    support::write_secret(work.join("pw2.txt"), "strict password\n");
    mayfly_ok(
        &home,
        work,
        &[
            "ca",
            "provisioner",
            "update",
            "lenient",
            "--x509-min-dur",
            "5s",
            "--x509-default-dur",
            "6s",
            "--allow-renewal-after-expiry",
        ],
    );
    mayfly_ok(
        &home,
        work,
        &[
            "ca",
            "provisioner",
            "add",
            "strict",
            "--create",
            "--password-file",
            "pw2.txt",
            "--x509-min-dur",
            "5s",
            "--x509-default-dur",
            "6s",
        ],
    );
    let server = ca.start();
    ca.certificate(
        ["a.internal", "a.crt", "a.key"],
        &["--provisioner", "lenient"],
    );
    ca_certificate(
        &home,
        work,
        "pw2.txt",
        ["b.internal", "b.crt", "b.key"],
        &["--provisioner", "strict"],
    );

    // Without mutual TLS: the certificate travels in a token signed by its key.
    let before = serial_of(&home, work, "a.crt");
    mayfly_ok(
        &home,
        work,
        &["ca", "renew", "a.crt", "a.key", "--mtls=false", "--force"],
    );
    assert_ne!(serial_of(&home, work, "a.crt"), before);

    std::thread::sleep(std::time::Duration::from_secs(8));
    // Expired: mutual TLS cannot present it; the token form can, where the provisioner allows.
    mayfly_err(
        &home,
        work,
        &["ca", "renew", "a.crt", "a.key", "--force"],
        "--mtls=false",
    );
    mayfly_ok(
        &home,
        work,
        &["ca", "renew", "a.crt", "a.key", "--mtls=false", "--force"],
    );
    let renewed = mayfly_pki::cert::CertificateInfo::from_der(
        &mayfly_pki::cert::certificates_from_pem(&std::fs::read(work.join("a.crt")).unwrap())
            .unwrap()[0],
    )
    .unwrap();
    assert!(
        renewed.not_after > time::OffsetDateTime::now_utc(),
        "the renewed certificate is valid"
    );
    mayfly_err(
        &home,
        work,
        &["ca", "renew", "b.crt", "b.key", "--mtls=false", "--force"],
        "does not allow renewal after expiry",
    );

    // A token signed by another key is refused.
    let other = mayfly_pki::PrivateKey::generate(mayfly_pki::KeyAlgorithm::EcP256).unwrap();
    std::fs::write(
        work.join("other.key"),
        mayfly_pki::keyfile::encode_private_key_pem(&other, None).unwrap(),
    )
    .unwrap();
    mayfly_err(
        &home,
        work,
        &[
            "ca",
            "renew",
            "a.crt",
            "other.key",
            "--mtls=false",
            "--out",
            "x.crt",
        ],
        "a.crt and other.key do not match",
    );
    assert!(!work.join("x.crt").exists());
    // The client refuses that before asking; the CA refuses it too.
    let refused = renew_with_raw_token(&home, &work.join("a.crt"), &other).unwrap_err();
    assert_eq!(refused.status(), Some(401), "{refused}");
    assert!(
        refused.to_string().contains("signature is invalid"),
        "{refused}"
    );

    // A certificate this CA never issued is refused, even with a valid signature.
    mayfly_ok(
        &home,
        work,
        &[
            "certificate",
            "create",
            "c.internal",
            "c.crt",
            "c.key",
            "--profile",
            "self-signed",
            "--no-password",
            "--insecure",
        ],
    );
    mayfly_err(
        &home,
        work,
        &[
            "ca",
            "renew",
            "c.crt",
            "c.key",
            "--mtls=false",
            "--out",
            "y.crt",
        ],
        "was not issued by this CA",
    );
    let self_signed = mayfly_pki::keyfile::decode_private_key_pem(
        &std::fs::read(work.join("c.key")).unwrap(),
        None,
    )
    .unwrap();
    let refused = renew_with_raw_token(&home, &work.join("c.crt"), &self_signed).unwrap_err();
    assert!(
        refused.to_string().contains("was not issued by this CA"),
        "{refused}"
    );

    // disableRenewal, put in force by a reload, refuses renewals of that provisioner.
    ca_certificate(
        &home,
        work,
        "pw2.txt",
        ["d.internal", "d.crt", "d.key"],
        &["--provisioner", "strict"],
    );
    mayfly_ok(
        &home,
        work,
        &["ca", "provisioner", "update", "strict", "--disable-renewal"],
    );
    let (ok, text) = run("kill", &["-HUP", &server.pid().to_string()], work);
    assert!(ok, "{text}");
    std::thread::sleep(std::time::Duration::from_millis(700));
    mayfly_err(
        &home,
        work,
        &["ca", "renew", "d.crt", "d.key", "--force"],
        "does not allow renewal (disableRenewal)",
    );
}

/// Sends step's renewal token (the chain in `x5c`, signed by `key`) straight to the CA that
/// `home`'s defaults.json names, past the client's own checks, to see what the CA decides.
fn renew_with_raw_token(
    home: &Path,
    chain_file: &Path,
    key: &mayfly_pki::PrivateKey,
) -> Result<mayfly_proto::SignResponse, mayfly_client::Error> {
    let defaults: serde_json::Value =
        serde_json::from_slice(&std::fs::read(home.join("config/defaults.json")).unwrap()).unwrap();
    let url = defaults["ca-url"].as_str().unwrap().to_string();
    let root = std::fs::read(defaults["root"].as_str().unwrap()).unwrap();
    let roots = mayfly_pki::cert::certificates_from_pem(&root).unwrap();
    let chain =
        mayfly_pki::cert::certificates_from_pem(&std::fs::read(chain_file).unwrap()).unwrap();
    let subject = mayfly_pki::cert::CertificateInfo::from_der(&chain[0])
        .unwrap()
        .common_name;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let claims = serde_json::json!({
        "aud": format!("{url}/1.0/renew"),
        "sub": subject,
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": mayfly_pki::random::random_hex(16).unwrap(),
    });
    let token = mayfly_pki::jose::jws::sign_compact_x5c(key, &chain, claims.to_string().as_bytes())
        .unwrap();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            mayfly_client::Client::new(&url, &roots)
                .unwrap()
                .renew_with_token(&token)
                .await
        })
}

#[test]
fn renewal_daemon_keeps_a_short_lived_certificate_fresh() {
    let ca = short_lived_ca();
    let (home, work) = (ca.home.clone(), ca.work());
    let server = ca.start();
    ca.certificate(["svc.internal", "svc.crt", "svc.key"], &[]);
    let first = serial_of(&home, work, "svc.crt");

    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    std::fs::create_dir(work.join("hook dir")).unwrap();
    // A process that counts the signals --pid sends it.
    let watcher = std::process::Command::new("sh")
        .args([
            "-c",
            "trap 'echo signalled >> signals.log' USR1; while :; do sleep 0.1; done",
        ])
        .current_dir(work)
        .spawn()
        .unwrap();
    let watcher = Kill(watcher);
    std::thread::sleep(std::time::Duration::from_millis(300));
    // A reader that must never see a half-written certificate.
    let stop_reading = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let stop = std::sync::Arc::clone(&stop_reading);
        let path = work.join("svc.crt");
        std::thread::spawn(move || {
            let mut reads = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let bytes = std::fs::read(&path).expect("the certificate file always exists");
                let chain =
                    mayfly_pki::cert::certificates_from_pem(&bytes).expect("a whole PEM chain");
                assert_eq!(
                    chain.len(),
                    2,
                    "leaf and intermediate, never a partial file"
                );
                reads += 1;
            }
            reads
        })
    };
    let daemon = std::process::Command::new(support::client_bin())
        .args([
            "ca",
            "renew",
            "--daemon",
            "svc.crt",
            "svc.key",
            "--exec",
            // Each line: when the hook ran, and the new certificate's notBefore (Unix seconds).
            "sh -c 'echo $(date +%s.%N) $(date -d \"$(openssl x509 -in svc.crt -noout -startdate \
             | cut -d= -f2)\" +%s) >> \"hook dir/renewals log\"'",
            "--pid",
            &watcher.0.id().to_string(),
            "--signal",
            "USR1",
        ])
        .env("MAYFLY_PATH", &home)
        .current_dir(work)
        .stdin(std::process::Stdio::null())
        .stderr(std::fs::File::create(work.join("daemon.log")).unwrap())
        .spawn()
        .unwrap();
    let daemon = Kill(daemon);
    let hook_log = work.join("hook dir/renewals log");
    let renewals = || {
        std::fs::read_to_string(&hook_log)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    };
    let wait_for = |count: usize, seconds: u64| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
        while renewals() < count {
            let log = std::fs::read_to_string(work.join("daemon.log")).unwrap_or_default();
            assert!(
                std::time::Instant::now() < deadline,
                "{count} renewals expected; daemon log:\n{log}"
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    };

    // Three renewals, each at 2/3 of the 20 s lifetime plus at most 5 % jitter, counted from
    // the notBefore of the certificate it replaces (recorded by the hook of the renewal before):
    // never early, and always before that certificate lapses. The hook runs after its renewal,
    // so its time bounds the renewal's from above: the lower bound is exact. The upper bound is
    // the lifetime, not the jitter's end: a loaded machine may take a second or two to run one
    // renewal and its hook, which is late but harmless, while a renewal after expiry is the
    // failure that matters. (Gaps between hooks say less: notBefore is whole seconds, and a
    // hook that ran late shortens the next gap.)
    wait_for(3, 60);
    let lines: Vec<(f64, f64)> = std::fs::read_to_string(&hook_log)
        .unwrap()
        .lines()
        .map(|line| {
            let (ran, not_before) = line
                .split_once(' ')
                .unwrap_or_else(|| panic!("hook line {line:?}"));
            (ran.parse().unwrap(), not_before.parse().unwrap())
        })
        .collect();
    for pair in lines.windows(2) {
        let ((_, not_before), (ran, _)) = (pair[0], pair[1]);
        let after = ran - not_before;
        assert!(
            (20.0 * 2.0 / 3.0..20.0).contains(&after),
            "renewed {after:.2} s after the replaced certificate's start, expected about 13.3 \
             to 14.3 s and under its 20 s lifetime"
        );
    }
    assert_ne!(serial_of(&home, work, "svc.crt"), first);

    // SIGHUP renews at once.
    let before = renewals();
    let (ok, text) = run("kill", &["-HUP", &daemon.0.id().to_string()], work);
    assert!(ok, "{text}");
    wait_for(before + 1, 5);

    // The CA goes away for longer than the renewal point; the daemon retries and recovers.
    let before = renewals();
    server.stop();
    std::thread::sleep(std::time::Duration::from_secs(15));
    assert_eq!(renewals(), before, "no renewal while the CA is down");
    let _server = ca.start();
    wait_for(before + 1, 10);
    let log = std::fs::read_to_string(work.join("daemon.log")).unwrap();
    assert!(log.contains("renewal failed, retrying"), "{log}");
    verify_chain(&home.join("certs/root_ca.crt"), "svc.crt", work);
    drop(daemon);
    stop_reading.store(true, std::sync::atomic::Ordering::Relaxed);
    let reads = reader.join().expect("the reader saw only whole files");
    assert!(reads > 100, "the reader ran ({reads} reads)");
    // The watcher handles a signal only between its sleeps, so on a loaded machine its log can
    // lag behind the renewals: give it time to catch up before counting.
    let signals = || {
        std::fs::read_to_string(work.join("signals.log"))
            .unwrap_or_default()
            .lines()
            .count()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while signals() + 1 < renewals() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        signals() + 1 >= renewals(),
        "{} signals for {} renewals",
        signals(),
        renewals()
    );
    drop(watcher);
}

#[test]
fn renew_period_sets_the_daemon_schedule() {
    let ca = short_lived_ca();
    let (home, work) = (ca.home.clone(), ca.work());
    let _server = ca.start();
    ca.certificate(["svc.internal", "svc.crt", "svc.key"], &[]);
    let mut daemon = std::process::Command::new(support::client_bin())
        .args([
            "ca",
            "renew",
            "--daemon",
            "svc.crt",
            "svc.key",
            "--renew-period",
            "4s",
            "--jitter",
            "0s",
            "--exec",
            "sh -c 'date +%s.%N >> renewals.log'",
        ])
        .env("MAYFLY_PATH", &home)
        .current_dir(work)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(13_500));
    let _ = daemon.kill();
    let _ = daemon.wait();
    let times: Vec<f64> = std::fs::read_to_string(work.join("renewals.log"))
        .unwrap_or_default()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    assert!(
        times.len() >= 3,
        "renewals every 4 s expected, got {times:?}"
    );
    for pair in times.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            (3.5..5.0).contains(&gap),
            "renewals {gap:.2} s apart, expected 4 s"
        );
    }
}

/// A CA whose certificates last 20 s with no backdate (provisioner "ops", CA and provisioner
/// password in `pw.txt`), for renewal tests.
fn short_lived_ca() -> InitCa {
    let ca = InitCa::new(Init {
        name: "Daemon",
        ..Init::default()
    });
    ca.edit_config(|config| {
        config["authority"]["backdate"] = serde_json::json!("0s");
        config["authority"]["provisioners"][0]["claims"] =
            serde_json::json!({"minTLSCertDuration": "5s", "defaultTLSCertDuration": "20s"});
    });
    ca
}
