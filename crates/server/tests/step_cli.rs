//! The real step CLI (`../shared/tools/step`, 0.19) against mayfly-ca, through every flow a
//! step user runs: bootstrap, tokens, certificates of every key type, CSR signing, renewal
//! (once, on a schedule, as a daemon), rekey, revocation by token and by certificate and key,
//! SSH user and host certificates, SSH configuration, SSH-POP renewal, rekey and revocation,
//! and ACME with step as the client. And mayfly's own client against the real step-ca, for
//! the tokens both must share (renewal token, SSH-POP, check-host, `/ssh/config`).
//!
//! Without `../shared` each test says it skipped; `.ci/run` makes the peers required.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use mayfly_pki::cert::{CertificateInfo, certificates_from_pem};
use support::step::{Step, StepCa};
use support::{DevInfo, Server, free_port, mayfly_ok, require_tool, run};

/// A dev CA and a step CLI bootstrapped to it.
struct Setup {
    _dir: tempfile::TempDir,
    work: std::path::PathBuf,
    server: Server,
    dev: DevInfo,
    step: Step,
}

fn setup(test: &str) -> Option<Setup> {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let step = Step::new(test, &work)?;
    let (server, dev) = Server::dev(dir.path(), &dir.path().join("mayfly"));
    step.bootstrap(&dev.url, &dev.fingerprint);
    Some(Setup {
        _dir: dir,
        work,
        server,
        dev,
        step,
    })
}

impl Setup {
    fn step_ok(&self, args: &[&str]) -> String {
        self.step.ok(args)
    }

    fn step_err(&self, args: &[&str], expected: &str) -> String {
        self.step.err(args, expected)
    }

    fn password(&self) -> &str {
        self.dev.password_file.to_str().unwrap()
    }

    /// `step ca certificate` with the dev provisioner and `extra` flags before the arguments.
    fn certificate(&self, name: &str, crt: &str, key: &str, extra: &[&str]) -> String {
        let mut args = vec![
            "ca",
            "certificate",
            "--provisioner",
            "dev",
            "--provisioner-password-file",
            self.password(),
        ];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[name, crt, key]);
        self.step_ok(&args)
    }

    fn token(&self, extra: &[&str]) -> String {
        let mut args = vec![
            "ca",
            "token",
            "--provisioner",
            "dev",
            "--password-file",
            self.password(),
        ];
        args.extend_from_slice(extra);
        let out = self.step.run(&args);
        assert!(
            out.status.success(),
            "step ca token {extra:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn leaf(&self, crt: &str) -> CertificateInfo {
        let pem = std::fs::read(self.work.join(crt)).unwrap();
        CertificateInfo::from_der(&certificates_from_pem(&pem).unwrap()[0]).unwrap()
    }

    fn openssl_verify(&self, crt: &str) {
        let root = self.step.steppath.join("certs/root_ca.crt");
        let (ok, text) = run(
            "openssl",
            &[
                "verify",
                "-CAfile",
                root.to_str().unwrap(),
                "-untrusted",
                crt,
                crt,
            ],
            &self.work,
        );
        assert!(ok && text.contains(": OK"), "openssl verify {crt}: {text}");
    }
}

fn ssh_serial(work: &Path, certificate: &str) -> String {
    let (ok, text) = run("ssh-keygen", &["-L", "-f", certificate], work);
    assert!(ok, "{text}");
    text.lines()
        .find_map(|l| l.trim().strip_prefix("Serial: "))
        .unwrap_or_else(|| panic!("no serial in {text}"))
        .trim()
        .to_string()
}

#[test]
fn step_x509_flows_against_mayfly_ca() {
    let Some(s) = setup("step_x509_flows_against_mayfly_ca") else {
        return;
    };
    require_tool("openssl", "openssl");
    assert!(s.step_ok(&["ca", "health"]).contains("ok"));
    s.step_ok(&["ca", "roots", "roots.pem"]);
    assert_eq!(
        certificates_from_pem(&std::fs::read(s.work.join("roots.pem")).unwrap())
            .unwrap()
            .len(),
        1
    );
    let provisioners: serde_json::Value =
        serde_json::from_str(&s.step_ok(&["ca", "provisioner", "list"])).unwrap();
    let kinds: Vec<&str> = provisioners
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["type"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"JWK") && kinds.contains(&"SSHPOP"),
        "{kinds:?}"
    );

    // A token, as step inspects it.
    let token = s.token(&["--san", "a.internal", "--san", "10.0.0.7", "a.internal"]);
    let inspected = s
        .step
        .command(&["crypto", "jwt", "inspect", "--insecure"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write as _;
            child.stdin.take().unwrap().write_all(token.as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    let inspected: serde_json::Value = serde_json::from_slice(&inspected.stdout).unwrap();
    assert_eq!(inspected["payload"]["iss"], "dev");
    assert_eq!(
        inspected["payload"]["sans"],
        serde_json::json!(["a.internal", "10.0.0.7"])
    );
    assert_eq!(inspected["payload"]["sha"], s.dev.fingerprint);

    // Certificates for every key type, one with the token's SANs, one shorter than the default.
    s.step_ok(&[
        "ca",
        "certificate",
        "--token",
        &token,
        "a.internal",
        "a.crt",
        "a.key",
    ]);
    let a = s.leaf("a.crt");
    assert_eq!(a.sans.len(), 2, "{:?}", a.sans);
    s.openssl_verify("a.crt");
    s.step_err(
        &[
            "ca",
            "certificate",
            "--token",
            &token,
            "a.internal",
            "a2.crt",
            "a2.key",
        ],
        "already used",
    );
    assert!(!s.work.join("a2.crt").exists());
    s.certificate("ec.internal", "ec.crt", "ec.key", &[]);
    s.certificate("rsa.internal", "rsa.crt", "rsa.key", &["--kty", "RSA"]);
    s.certificate(
        "ed.internal",
        "ed.crt",
        "ed.key",
        &["--kty", "OKP", "--crv", "Ed25519"],
    );
    for crt in ["ec.crt", "rsa.crt", "ed.crt"] {
        s.openssl_verify(crt);
    }
    assert!(s.leaf("rsa.crt").is_rsa);
    s.certificate(
        "short.internal",
        "short.crt",
        "short.key",
        &["--not-after", "2h"],
    );
    let short = s.leaf("short.crt");
    let lifetime = short.not_after - short.not_before;
    assert!(
        lifetime <= time::Duration::hours(2) + time::Duration::minutes(2),
        "{lifetime}"
    );

    // A CSR made by step, signed with a token.
    s.step_ok(&[
        "certificate",
        "create",
        "--csr",
        "--no-password",
        "--insecure",
        "csr.internal",
        "csr.csr",
        "csr.key",
    ]);
    let token = s.token(&["csr.internal"]);
    s.step_ok(&["ca", "sign", "--token", &token, "csr.csr", "csr.crt"]);
    assert_eq!(s.leaf("csr.crt").common_name, "csr.internal");

    // Renew over mutual TLS: forced, and skipped while far from expiry.
    let before = s.leaf("ec.crt").serial.to_decimal();
    s.step_ok(&["ca", "renew", "--force", "ec.crt", "ec.key"]);
    assert_ne!(s.leaf("ec.crt").serial.to_decimal(), before);
    let out = s.step_ok(&[
        "ca",
        "renew",
        "--force",
        "--expires-in",
        "1h",
        "ec.crt",
        "ec.key",
    ]);
    assert!(out.contains("not renewed"), "{out}");
    // Inside the window: the short certificate (2h, +1m backdate) has under 2h0m30s left.
    let before = short.serial.to_decimal();
    let out = s.step_ok(&[
        "ca",
        "renew",
        "--force",
        "--expires-in",
        "2h0m30s",
        "short.crt",
        "short.key",
    ]);
    assert!(out.contains("saved"), "{out}");
    assert_ne!(s.leaf("short.crt").serial.to_decimal(), before);

    // Rekey: a new key for the same names.
    let old_key = std::fs::read(s.work.join("rsa.key")).unwrap();
    s.step_ok(&["ca", "rekey", "--force", "rsa.crt", "rsa.key"]);
    assert_ne!(std::fs::read(s.work.join("rsa.key")).unwrap(), old_key);
    assert_eq!(s.leaf("rsa.crt").common_name, "rsa.internal");
    s.openssl_verify("rsa.crt");

    // Revoke by serial with a revocation token, and by certificate and key; neither renews.
    let serial = s.leaf("ed.crt").serial.to_decimal();
    let token = s.token(&["--revoke", &serial]);
    let out = s.step_ok(&["ca", "revoke", "--token", &token, &serial]);
    assert!(out.contains(&serial), "{out}");
    s.step_err(&["ca", "renew", "--force", "ed.crt", "ed.key"], "revoked");
    let serial = s.leaf("csr.crt").serial.to_decimal();
    s.step_ok(&["ca", "revoke", "--cert", "csr.crt", "--key", "csr.key"]);
    let out = s.step_err(&["ca", "renew", "--force", "csr.crt", "csr.key"], "revoked");
    assert!(out.contains(&serial), "{out}");
    drop(s.server);
}

#[test]
fn step_renew_daemon_against_mayfly_ca() {
    let Some(s) = setup("step_renew_daemon_against_mayfly_ca") else {
        return;
    };
    s.certificate("d.internal", "d.crt", "d.key", &[]);
    let first = s.leaf("d.crt").serial.to_decimal();
    let mut daemon = s
        .step
        .command(&[
            "ca",
            "renew",
            "--daemon",
            "--renew-period",
            "1s",
            "d.crt",
            "d.key",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = std::collections::BTreeSet::new();
    while seen.len() < 3 && Instant::now() < deadline {
        if let Ok(pem) = std::fs::read(s.work.join("d.crt"))
            && let Ok(chain) = certificates_from_pem(&pem)
            && let Some(leaf) = chain.first()
        {
            seen.insert(CertificateInfo::from_der(leaf).unwrap().serial.to_decimal());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = daemon.kill();
    let _ = daemon.wait();
    assert!(
        seen.len() >= 3 && seen.contains(&first),
        "the daemon renewed twice: {seen:?}"
    );
}

#[test]
fn step_ssh_flows_against_mayfly_ca() {
    let Some(s) = setup("step_ssh_flows_against_mayfly_ca") else {
        return;
    };
    require_tool("ssh-keygen", "openssh-client");
    let ssh = |extra: &[&str], args: &[&str]| {
        let mut all = vec![
            "ssh",
            "certificate",
            "--provisioner",
            "dev",
            "--provisioner-password-file",
            s.password(),
        ];
        all.extend_from_slice(extra);
        all.extend_from_slice(args);
        s.step_ok(&all)
    };
    // A user certificate, a host certificate, and one for a key made elsewhere.
    ssh(
        &["--no-password", "--insecure", "--no-agent"],
        &["alice", "id_ecdsa"],
    );
    let (ok, text) = run("ssh-keygen", &["-L", "-f", "id_ecdsa-cert.pub"], &s.work);
    assert!(
        ok && text.contains("user certificate") && text.contains("alice"),
        "{text}"
    );
    ssh(
        &["--host", "--no-password", "--insecure"],
        &["web1.internal", "host"],
    );
    let (ok, text) = run("ssh-keygen", &["-L", "-f", "host-cert.pub"], &s.work);
    assert!(
        ok && text.contains("host certificate") && text.contains("web1.internal"),
        "{text}"
    );
    let (ok, text) = run(
        "ssh-keygen",
        &["-q", "-t", "ed25519", "-N", "", "-f", "bob"],
        &s.work,
    );
    assert!(ok, "{text}");
    ssh(&["--sign"], &["bob", "bob.pub"]);
    let (ok, text) = run("ssh-keygen", &["-L", "-f", "bob-cert.pub"], &s.work);
    assert!(ok && text.contains("bob"), "{text}");

    // The CA keys, and the configuration snippets for users and hosts.
    let user_ca = s.step_ok(&["ssh", "config", "--roots"]);
    let host_ca = s.step_ok(&["ssh", "config", "--host", "--roots"]);
    assert!(user_ca.starts_with("ecdsa-sha2-nistp256 "), "{user_ca}");
    assert!(host_ca.starts_with("ecdsa-sha2-nistp256 ") && host_ca != user_ca);
    let out = s.step_ok(&["ssh", "config", "--set", "User=alice", "--dry-run"]);
    assert!(
        out.contains(&format!("@cert-authority * {}", host_ca.trim())),
        "{out}"
    );
    let out = s.step_ok(&[
        "ssh",
        "config",
        "--host",
        "--set",
        "Certificate=/etc/ssh/host-cert.pub",
        "--set",
        "Key=/etc/ssh/host",
        "--dry-run",
    ]);
    assert!(
        out.contains("HostKey /etc/ssh/host\n")
            && out.contains("HostCertificate /etc/ssh/host-cert.pub"),
        "{out}"
    );
    assert!(out.contains(user_ca.trim()), "{out}");
    let out = s.step_ok(&["ssh", "check-host", "--verbose", "web1.internal"]);
    assert!(out.contains("true"), "{out}");

    // SSH-POP: the host renews and rekeys with its own key, then revokes its certificate.
    let first = ssh_serial(&s.work, "host-cert.pub");
    let out = s.step_ok(&["ssh", "renew", "--force", "host-cert.pub", "host"]);
    assert!(out.contains("SSHPOP"), "{out}");
    let renewed = ssh_serial(&s.work, "host-cert.pub");
    assert_ne!(renewed, first);
    let old_key = std::fs::read(s.work.join("host")).unwrap();
    s.step_ok(&[
        "ssh",
        "rekey",
        "--force",
        "--no-password",
        "--insecure",
        "host-cert.pub",
        "host",
    ]);
    assert_ne!(std::fs::read(s.work.join("host")).unwrap(), old_key);
    let rekeyed = ssh_serial(&s.work, "host-cert.pub");
    let out = s.step_ok(&[
        "ssh",
        "revoke",
        "--sshpop-cert",
        "host-cert.pub",
        "--sshpop-key",
        "host",
    ]);
    assert!(out.contains(&rekeyed), "{out}");
    s.step_err(
        &["ssh", "renew", "--force", "host-cert.pub", "host"],
        "revoked",
    );

    // Revocation by serial with a provisioner token, minted first or by step itself.
    ssh(
        &["--host", "--no-password", "--insecure"],
        &["web2.internal", "web2"],
    );
    let serial = ssh_serial(&s.work, "web2-cert.pub");
    let token = s.token(&["--ssh", "--host", "--revoke", &serial]);
    let out = s.step_ok(&["ssh", "revoke", "--token", &token, &serial]);
    assert!(out.contains(&serial), "{out}");
    ssh(
        &["--host", "--no-password", "--insecure"],
        &["web3.internal", "web3"],
    );
    let serial = ssh_serial(&s.work, "web3-cert.pub");
    s.step_ok(&[
        "ssh",
        "revoke",
        "--provisioner",
        "dev",
        "--provisioner-password-file",
        s.password(),
        &serial,
    ]);
    s.step_err(
        &["ssh", "renew", "--force", "web3-cert.pub", "web3"],
        "revoked",
    );
}

#[test]
fn step_as_an_acme_client_of_mayfly_ca() {
    let Some(s) = setup("step_as_an_acme_client_of_mayfly_ca") else {
        return;
    };
    require_tool("openssl", "openssl");
    // An ACME provisioner validating http-01 on a test port, put in force by a reload.
    let home = s.dev.ca_dir.parent().unwrap().join("mayfly");
    let config = s.dev.ca_dir.join("config/ca.json");
    mayfly_ok(
        &home,
        &s.work,
        &[
            "ca",
            "provisioner",
            "add",
            "acme",
            "--type",
            "ACME",
            "--ca-config",
            config.to_str().unwrap(),
        ],
    );
    let port = free_port();
    let mut ca_json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    for provisioner in ca_json["authority"]["provisioners"].as_array_mut().unwrap() {
        if provisioner["type"] == "ACME" {
            provisioner["insecureHttp01Port"] = port.into();
            provisioner["insecureValidationAddress"] = "127.0.0.1".into();
        }
    }
    std::fs::write(&config, serde_json::to_vec_pretty(&ca_json).unwrap()).unwrap();
    s.server.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !s
        .step_ok(&["ca", "provisioner", "list"])
        .contains("\"ACME\"")
    {
        assert!(
            Instant::now() < deadline,
            "the reload did not add the ACME provisioner"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // step sends Go's zero time as the order's notBefore and notAfter.
    let listen = format!("127.0.0.1:{port}");
    let out = s.step_ok(&[
        "ca",
        "certificate",
        "--provisioner",
        "acme",
        "--standalone",
        "--http-listen",
        &listen,
        "acme.internal",
        "acme.crt",
        "acme.key",
    ]);
    assert!(out.contains("acme.crt"), "{out}");
    assert_eq!(s.leaf("acme.crt").common_name, "acme.internal");
    s.openssl_verify("acme.crt");
}

/// mayfly's client against the real step-ca: the tokens it writes for renewal (x5cInsecure),
/// SSH-POP and check-host are step's, and it reads step-ca's `/ssh/config` answer.
#[test]
fn mayfly_client_against_step_ca() {
    let dir = tempfile::tempdir().unwrap();
    let Some(ca) = StepCa::start("mayfly_client_against_step_ca", dir.path()) else {
        return;
    };
    let home = dir.path().join("mayfly");
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let password = ca.password_file.to_str().unwrap();
    mayfly_ok(
        &home,
        &work,
        &[
            "ca",
            "bootstrap",
            "--ca-url",
            &ca.url,
            "--fingerprint",
            &ca.fingerprint,
        ],
    );
    mayfly_ok(
        &home,
        &work,
        &[
            "ca",
            "certificate",
            "svc.internal",
            "svc.crt",
            "svc.key",
            "--provisioner",
            "admin",
            "--provisioner-password-file",
            password,
        ],
    );
    let serial = |file: &str| {
        let pem = std::fs::read(work.join(file)).unwrap();
        CertificateInfo::from_der(&certificates_from_pem(&pem).unwrap()[0])
            .unwrap()
            .serial
            .to_decimal()
    };
    let before = serial("svc.crt");
    mayfly_ok(
        &home,
        &work,
        &[
            "ca",
            "renew",
            "svc.crt",
            "svc.key",
            "--mtls=false",
            "--force",
        ],
    );
    assert_ne!(
        serial("svc.crt"),
        before,
        "step-ca renewed with mayfly's token"
    );

    mayfly_ok(
        &home,
        &work,
        &[
            "ssh",
            "certificate",
            "web1.internal",
            "host",
            "--host",
            "--no-password",
            "--insecure",
            "--provisioner",
            "admin",
            "--provisioner-password-file",
            password,
        ],
    );
    let out = mayfly_ok(&home, &work, &["ssh", "check-host", "web1.internal"]);
    assert!(out.contains("true"), "{out}");
    let first = ssh_serial(&work, "host-cert.pub");
    mayfly_ok(
        &home,
        &work,
        &["ssh", "renew", "host-cert.pub", "host", "--force"],
    );
    let renewed = ssh_serial(&work, "host-cert.pub");
    assert_ne!(
        renewed, first,
        "step-ca renewed with mayfly's SSH-POP token"
    );
    let out = mayfly_ok(
        &home,
        &work,
        &[
            "ssh",
            "config",
            "--host",
            "--set",
            "Certificate=host-cert.pub",
            "--set",
            "Key=host",
        ],
    );
    assert!(
        out.contains("HostCertificate /etc/ssh/host-cert.pub")
            && out.contains("HostKey /etc/ssh/host"),
        "step-ca's template, decoded: {out}"
    );
    mayfly_ok(
        &home,
        &work,
        &[
            "ssh",
            "revoke",
            "--sshpop-cert",
            "host-cert.pub",
            "--sshpop-key",
            "host",
        ],
    );
    // Recorded there: a second revocation of the same certificate is refused.
    let out = support::mayfly(
        &home,
        &work,
        &[
            "ssh",
            "revoke",
            "--sshpop-cert",
            "host-cert.pub",
            "--sshpop-key",
            "host",
        ],
    );
    assert!(!out.status.success(), "step-ca recorded the revocation");
    drop(ca);
}
