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
use support::ca::{Init, InitCa};
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

    /// `step ARGS` with `input` on standard input; returns standard output.
    fn step_with_input(&self, args: &[&str], input: &str) -> String {
        let out = self
            .step
            .command(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write as _;
                child.stdin.take().unwrap().write_all(input.as_bytes())?;
                child.wait_with_output()
            })
            .unwrap();
        assert!(
            out.status.success(),
            "step {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A `/sign` token for `subject` in today's form with the `cnf` and `user` claims that
    /// today's `step ca token --cnf-file CSR --set team=ops` adds (smallstep/cli
    /// token/options.go `WithFingerprint`, `WithUserData`), signed with the dev provisioner's
    /// encrypted key by `step crypto jwt sign`.
    fn todays_token(&self, csr: &str, subject: &str) -> String {
        let config: serde_json::Value =
            serde_json::from_slice(&std::fs::read(self.dev.ca_dir.join("config/ca.json")).unwrap())
                .unwrap();
        let encrypted = config["authority"]["provisioners"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "dev")
            .and_then(|p| p["encryptedKey"].as_str())
            .unwrap()
            .to_string();
        std::fs::write(self.work.join("dev.jwe"), encrypted).unwrap();
        let pem = std::fs::read(self.work.join(csr)).unwrap();
        let der = pem::parse(pem).unwrap().into_contents();
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &der);
        use base64::Engine as _;
        let fingerprint = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest);
        let claims = serde_json::json!({
            "sha": self.dev.fingerprint,
            "sans": [subject],
            "cnf": {"x5rt#S256": fingerprint},
            "user": {"team": "ops"},
        });
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        self.step_with_input(
            &[
                "crypto",
                "jwt",
                "sign",
                "--key",
                "dev.jwe",
                "--password-file",
                self.password(),
                "--iss",
                "dev",
                "--aud",
                &format!("{}/1.0/sign", self.dev.url),
                "--sub",
                subject,
                "--nbf",
                &now.to_string(),
                "--iat",
                &now.to_string(),
                "--exp",
                &(now + 300).to_string(),
            ],
            &claims.to_string(),
        )
        .trim()
        .to_string()
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
    let inspected = s.step_with_input(&["crypto", "jwt", "inspect", "--insecure"], &token);
    let inspected: serde_json::Value = serde_json::from_str(&inspected).unwrap();
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

    // A token as today's `step ca token --cnf-file csr.csr --set team=ops` writes it (step 0.24
    // and later; 0.19 has neither flag): `cnf` binds it to the CSR's SHA-256, `user` carries
    // template data. Made with step's own JOSE code from the provisioner key, signed by the real
    // `step ca sign`.
    let token = s.todays_token("csr.csr", "csr.internal");
    // Bound to csr.csr, it buys nothing for another request for the same name (step-ca's 403).
    s.step_ok(&[
        "certificate",
        "create",
        "--csr",
        "--no-password",
        "--insecure",
        "csr.internal",
        "other.csr",
        "other.key",
    ]);
    s.step_err(
        &["ca", "sign", "--token", &token, "other.csr", "other.crt"],
        "not the one the token is bound to",
    );
    s.step_ok(&["ca", "sign", "--token", &token, "csr.csr", "cnf.crt"]);
    let bound = s.leaf("cnf.crt");
    assert_eq!(bound.common_name, "csr.internal");
    assert_ne!(bound.serial, s.leaf("csr.crt").serial);

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

/// The leaf of the PEM chain in `dir/crt`.
fn leaf_in(dir: &Path, crt: &str) -> CertificateInfo {
    let pem = std::fs::read(dir.join(crt)).unwrap();
    CertificateInfo::from_der(&certificates_from_pem(&pem).unwrap()[0]).unwrap()
}

/// Sleeps until `leaf` has expired by the clock the CA shares with the test.
fn wait_until_expired(leaf: &CertificateInfo) {
    let left = leaf.not_after - time::OffsetDateTime::now_utc() + time::Duration::seconds(1);
    if left.is_positive() {
        std::thread::sleep(left.unsigned_abs());
    }
}

/// A renewal as today's step makes it without mutual TLS (`step ca renew --mtls=false`, step
/// 0.22 and later; `RenewWithToken` in smallstep/cli's command/ca/renew.go): a token signed by
/// the certificate's key with the chain in `x5cInsecure`, `iss` step-ca-client/1.0, `aud` the
/// CA's `/renew`, `sub` the common name, posted to `/renew` with no body and no content type,
/// with the `X-Request-Id` today's client adds to every request. The token is made by step's own
/// JOSE code (`step crypto jwt sign`), which also writes a `jti`. Returns the status and body;
/// on success the new chain replaces `crt`, as step writes it.
struct TodaysRenewal<'a> {
    step: &'a Step,
    /// The step's working directory, where the certificates are.
    dir: &'a Path,
    curl: &'a Path,
    url: &'a str,
}

impl TodaysRenewal<'_> {
    fn token(&self, crt: &str, key: &str, subject: &str) -> String {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        self.step
            .stdout(&[
                "crypto",
                "jwt",
                "sign",
                "--key",
                key,
                "--x5c-cert",
                crt,
                "--x5c-insecure",
                "--iss",
                "step-ca-client/1.0",
                "--aud",
                &format!("{}/renew", self.url),
                "--sub",
                subject,
                "--nbf",
                &now.to_string(),
                "--iat",
                &now.to_string(),
                "--exp",
                &(now + 300).to_string(),
            ])
            .trim()
            .to_string()
    }

    fn post(&self, token: &str, crt: &str) -> (u16, serde_json::Value) {
        let dir = self.dir;
        let request_id = format!("step-{}", token.len());
        let root = self.step.steppath.join("certs/root_ca.crt");
        let out = std::process::Command::new(self.curl)
            .args(["-sS", "-X", "POST", "--cacert"])
            .arg(&root)
            .args(["-H", &format!("Authorization: Bearer {token}")])
            .args(["-H", &format!("X-Request-Id: {request_id}")])
            .args(["-D", "headers.txt", "-o", "body.json", "-w", "%{http_code}"])
            .arg(format!("{}/renew", self.url))
            .current_dir(dir)
            .output()
            .unwrap();
        let status: u16 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("curl: {}", String::from_utf8_lossy(&out.stderr)));
        let body: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("body.json")).unwrap()).unwrap();
        let headers = std::fs::read_to_string(dir.join("headers.txt")).unwrap();
        assert!(
            headers
                .to_ascii_lowercase()
                .contains(&format!("x-request-id: {request_id}")),
            "the client's request id is kept: {headers}"
        );
        if status == 201 {
            let chain = body["certChain"]
                .as_array()
                .unwrap_or_else(|| panic!("{body}"))
                .iter()
                .map(|pem| pem.as_str().unwrap().to_string())
                .collect::<String>();
            std::fs::write(dir.join(crt), chain).unwrap();
        }
        (status, body)
    }
}

/// step's renewal without mutual TLS, the token flow of points 5 and 7: the real step renews an
/// expired certificate with a token (0.19 does so only after expiry: `RenewAfterExpiry`, the
/// same token as today's `--mtls=false`), again with a fresh token, and not a revoked one;
/// today's `--mtls=false` request for a certificate still valid is made as today's step makes
/// it, and the real `--mtls=false` runs as well when the step at hand has the flag.
#[test]
fn step_renews_with_a_token_against_mayfly_ca() {
    let test = "step_renews_with_a_token_against_mayfly_ca";
    let Some(program) = mayfly_testkit::step_cli(test) else {
        return;
    };
    let Some(curl) = mayfly_testkit::program(test, "curl", "curl") else {
        return;
    };
    let ca = InitCa::new(Init {
        name: "Token renewal",
        provisioner: "ops",
        ..Init::default()
    });
    // Short certificates that may be renewed once expired, as step-ca's
    // `allowRenewalAfterExpiry`.
    mayfly_ok(
        &ca.home,
        ca.work(),
        &[
            "ca",
            "provisioner",
            "update",
            "ops",
            "--x509-min-dur",
            "1s",
            "--allow-renewal-after-expiry",
        ],
    );
    let _server = ca.start();
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&ca.config).unwrap()).unwrap();
    let url = format!("https://{}", config["address"].as_str().unwrap());
    let root = std::fs::read(ca.home.join("certs/root_ca.crt")).unwrap();
    let fingerprint =
        mayfly_pki::cert::fingerprint_sha256(&certificates_from_pem(&root).unwrap()[0]);
    let work = ca.work().join("step");
    std::fs::create_dir_all(&work).unwrap();
    let step = Step::at(&program, work.join("steppath"), &work);
    step.bootstrap(&url, &fingerprint);
    let password = ca.work().join("pw.txt");
    let certificate = |name: &str, extra: &[&str]| {
        let subject = format!("{name}.internal");
        let (crt, key) = (format!("{name}.crt"), format!("{name}.key"));
        let mut args = vec![
            "ca",
            "certificate",
            "--provisioner",
            "ops",
            "--provisioner-password-file",
            password.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[&subject, &crt, &key]);
        step.ok(&args);
    };
    let serial = |crt: &str| leaf_in(&work, crt).serial.to_decimal();

    // Today's `--mtls=false` for a valid certificate, twice (each run signs a fresh token); the
    // same token a second time is refused, as a renewal token buys one certificate.
    certificate("long", &[]);
    let todays = TodaysRenewal {
        step: &step,
        dir: &work,
        curl: &curl,
        url: &url,
    };
    let first = serial("long.crt");
    let token = todays.token("long.crt", "long.key", "long.internal");
    let (status, body) = todays.post(&token, "long.crt");
    assert_eq!(status, 201, "{body}");
    let second = serial("long.crt");
    assert_ne!(second, first);
    let (status, body) = todays.post(&token, "long.crt");
    assert!(
        status == 401 || status == 403,
        "a replayed token: {status} {body}"
    );
    let token = todays.token("long.crt", "long.key", "long.internal");
    let (status, body) = todays.post(&token, "long.crt");
    assert_eq!(status, 201, "{body}");
    assert_ne!(serial("long.crt"), second);
    // The real flag, where the step at hand has it (0.19 has not; 0.22 and later have).
    let mtls_flag = step.ok(&["ca", "renew", "--help"]).contains("--mtls");
    if mtls_flag {
        for _ in 0..2 {
            let before = serial("long.crt");
            step.ok(&[
                "ca",
                "renew",
                "--mtls=false",
                "--force",
                "long.crt",
                "long.key",
            ]);
            assert_ne!(serial("long.crt"), before);
        }
    } else {
        eprintln!("{test}: this step has no --mtls flag; its token flow runs after expiry below");
    }

    // The real step's token flow: certificates of 3 s, one revoked while valid.
    certificate("short", &["--not-after", "3s"]);
    certificate("revoked", &["--not-after", "3s"]);
    step.ok(&[
        "ca",
        "revoke",
        "--cert",
        "revoked.crt",
        "--key",
        "revoked.key",
    ]);
    let short = leaf_in(&work, "short.crt");
    wait_until_expired(&short);
    wait_until_expired(&leaf_in(&work, "revoked.crt"));
    step.ok(&["ca", "renew", "--force", "short.crt", "short.key"]);
    let renewed = leaf_in(&work, "short.crt");
    assert_ne!(renewed.serial.to_decimal(), short.serial.to_decimal());
    assert!(renewed.not_after > time::OffsetDateTime::now_utc());
    let out = step.err(
        &["ca", "renew", "--force", "revoked.crt", "revoked.key"],
        "revoked",
    );
    assert!(!out.contains("saved"), "{out}");
    // Today's form is refused for the revoked certificate too (401, as step-ca answers), and so
    // is the real flag.
    let token = todays.token("revoked.crt", "revoked.key", "revoked.internal");
    let (status, body) = todays.post(&token, "revoked.crt");
    assert!(
        status == 401
            && body["message"]
                .as_str()
                .unwrap_or_default()
                .contains("revoked"),
        "{status} {body}"
    );
    if mtls_flag {
        step.err(
            &[
                "ca",
                "renew",
                "--mtls=false",
                "--force",
                "revoked.crt",
                "revoked.key",
            ],
            "revoked",
        );
    }
    // A second renewal of the renewed certificate, with a token step makes afresh.
    wait_until_expired(&renewed);
    step.ok(&["ca", "renew", "--force", "short.crt", "short.key"]);
    assert_ne!(serial("short.crt"), renewed.serial.to_decimal());
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
    // Today's `step ssh config --console` adds `Console: "true"` to the data (0.19 has no
    // such flag; its `--set` sends the same request).
    let out = s.step_ok(&[
        "ssh",
        "config",
        "--set",
        "User=alice",
        "--set",
        "Console=true",
        "--dry-run",
    ]);
    assert!(out.contains(host_ca.trim()), "{out}");
    // Today's `step ssh certificate --kty/--curve/--size` sends keys other than P-256 (0.19
    // generates P-256 only; `--sign` sends the same request for a key made elsewhere).
    for (name, kind, bits) in [
        ("p384", "ecdsa", "384"),
        ("p521", "ecdsa", "521"),
        ("rsa", "rsa", "3072"),
    ] {
        let (ok, text) = run(
            "ssh-keygen",
            &["-q", "-t", kind, "-b", bits, "-N", "", "-f", name],
            &s.work,
        );
        assert!(ok, "{text}");
        ssh(&["--sign"], &["carol", &format!("{name}.pub")]);
        let (ok, text) = run(
            "ssh-keygen",
            &["-L", "-f", &format!("{name}-cert.pub")],
            &s.work,
        );
        assert!(ok && text.contains("carol"), "{name}: {text}");
    }
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
