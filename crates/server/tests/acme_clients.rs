//! ACME end to end with real clients: lego and certbot (Debian packages) against a real
//! `mayfly-ca`, http-01 on a loopback port (the provisioner's insecure test settings), the
//! certificates judged by `openssl verify`.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::{Server, ServerOptions, mayfly_ok, require_tool, run};

/// A CA with an ACME provisioner named `acme` whose challenges are validated on loopback.
pub struct AcmeCa {
    pub server: Server,
    pub home: PathBuf,
    pub directory: String,
    pub root: PathBuf,
    pub intermediate: PathBuf,
    pub http_port: u16,
    pub tls_port: u16,
    /// The `/metrics` listener.
    pub metrics_port: u16,
    /// One file per TXT record (named by the record's name), served by the test's DNS server.
    pub dns_records: PathBuf,
}

pub fn start_acme_ca(work: &Path, extra: serde_json::Value) -> AcmeCa {
    start_acme_ca_with(work, extra, &ServerOptions::default())
}

/// [`start_acme_ca`], the server started with `options` (its working directory is `home`).
pub fn start_acme_ca_with(
    work: &Path,
    extra: serde_json::Value,
    options: &ServerOptions<'_>,
) -> AcmeCa {
    let home = work.join("mayfly");
    support::write_secret(work.join("pw.txt"), "ca password\n");
    let port = support::free_port();
    let address = format!("127.0.0.1:{port}");
    mayfly_ok(
        &home,
        work,
        &[
            "ca",
            "init",
            "--name",
            "ACME Test",
            "--dns",
            "127.0.0.1",
            "--address",
            &address,
            "--provisioner",
            "admin",
            "--password-file",
            "pw.txt",
        ],
    );
    mayfly_ok(
        &home,
        work,
        &["ca", "provisioner", "add", "acme", "--type", "ACME"],
    );
    let http_port = support::free_port();
    let tls_port = support::free_port();
    let dns_records = work.join("dns-records");
    std::fs::create_dir_all(&dns_records).unwrap();
    let resolver = start_dns(dns_records.clone());
    let config_path = home.join("config/ca.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&config_path).unwrap()).unwrap();
    let provisioners = config["authority"]["provisioners"].as_array_mut().unwrap();
    let acme = provisioners
        .iter_mut()
        .find(|p| p["name"] == "acme")
        .unwrap();
    acme["insecureHttp01Port"] = http_port.into();
    acme["insecureValidationAddress"] = "127.0.0.1".into();
    acme["insecureTlsAlpn01Port"] = tls_port.into();
    acme["insecureDnsResolver"] = resolver.to_string().into();
    if let serde_json::Value::Object(extra) = extra {
        for (k, v) in extra {
            acme[k] = v;
        }
    }
    let metrics_port = support::free_port();
    config["metricsAddress"] = format!("127.0.0.1:{metrics_port}").into();
    std::fs::write(&config_path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
    let server = Server::start_with(
        &[
            config_path.to_str().unwrap(),
            "--password-file",
            work.join("pw.txt").to_str().unwrap(),
        ],
        &home,
        options,
        "serving on",
    );
    AcmeCa {
        server,
        directory: format!("https://127.0.0.1:{port}/acme/acme/directory"),
        root: home.join("certs/root_ca.crt"),
        intermediate: home.join("certs/intermediate_ca.crt"),
        home,
        http_port,
        tls_port,
        metrics_port,
        dns_records,
    }
}

/// A DNS server on UDP loopback answering TXT questions from the files in `records`.
fn start_dns(records: PathBuf) -> std::net::SocketAddr {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let address = socket.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((n, peer)) = socket.recv_from(&mut buf) {
            let query = &buf[..n];
            let mut at = 12;
            let mut labels = Vec::new();
            while at < n && query[at] != 0 {
                let len = query[at] as usize;
                if at + 1 + len > n {
                    break;
                }
                labels.push(String::from_utf8_lossy(&query[at + 1..at + 1 + len]).to_lowercase());
                at += 1 + len;
            }
            let question_end = (at + 5).min(n);
            let value = std::fs::read_to_string(records.join(labels.join("."))).ok();
            let mut answer = query[..question_end].to_vec();
            answer[2] = 0x81;
            answer[3] = if value.is_some() { 0x80 } else { 0x83 };
            answer[6] = 0;
            answer[7] = u8::from(value.is_some());
            if let Some(value) = value {
                answer.extend_from_slice(&[0xc0, 0x0c, 0, 16, 0, 1, 0, 0, 0, 0]);
                answer.extend_from_slice(&((value.len() + 1) as u16).to_be_bytes());
                answer.push(value.len() as u8);
                answer.extend_from_slice(value.as_bytes());
            }
            let _ = socket.send_to(&answer, peer);
        }
    });
    address
}

fn openssl_verify(ca: &AcmeCa, cert: &Path, work: &Path) {
    let (ok, text) = run(
        "openssl",
        &[
            "verify",
            "-CAfile",
            ca.root.to_str().unwrap(),
            "-untrusted",
            ca.intermediate.to_str().unwrap(),
            cert.to_str().unwrap(),
        ],
        work,
    );
    assert!(ok && text.contains(": OK"), "{text}");
}

/// `status:reason` of every certificate the ACME provisioner issued, oldest first.
fn acme_certificate_states(ca: &AcmeCa, work: &Path) -> Vec<String> {
    let db = ca.home.join("db/mayfly.db");
    assert!(db.exists(), "{} missing", db.display());
    let (ok, text) = run(
        "sqlite3",
        &[
            db.to_str().unwrap(),
            "SELECT status || ':' || COALESCE(revocation_reason, '') FROM certificates \
             WHERE provisioner = 'acme' ORDER BY created_at, serial",
        ],
        work,
    );
    assert!(ok, "{text}");
    let mut states: Vec<String> = text.lines().map(str::to_string).collect();
    states.sort();
    states
}

fn command_output(command: &mut Command) -> (bool, String) {
    let out = command.output().expect("running the ACME client");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn lego(ca: &AcmeCa, dir: &Path, args: &[&str]) -> (bool, String) {
    command_output(&mut lego_command(ca, dir, args))
}

/// lego against the CA, with its state in `dir`.
fn lego_command(ca: &AcmeCa, dir: &Path, args: &[&str]) -> Command {
    // lego's exec DNS provider runs this script to set and remove the TXT record.
    let script = dir.join("set-txt.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nname=$(echo \"$2\" | sed 's/\\.$//')\ncase \"$1\" in\n  present) printf '%s' \"$3\" > \"{dir}/$name\" ;;\n  cleanup) rm -f \"{dir}/$name\" ;;\nesac\n",
            dir = ca.dns_records.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut command = Command::new("lego");
    command
        .env("LEGO_CA_CERTIFICATES", &ca.root)
        .env("EXEC_PATH", &script)
        // Both names of a wildcard order share one TXT name; lego solves them one after
        // the other, 60 s apart by default.
        .env("EXEC_SEQUENCE_INTERVAL", "1")
        .args([
            "--server",
            &ca.directory,
            "--email",
            "ops@example.test",
            "--accept-tos",
            "--path",
            dir.to_str().unwrap(),
        ])
        .args(args)
        .current_dir(dir);
    command
}

/// Whether `programs` (ACME clients, each the Debian package of its name) are installed: a
/// fresh clone's machine may lack them, and the test then says it skipped (a failure under
/// MAYFLY_REQUIRE_PEERS, as in CI, where .ci/run installs them).
fn peers(test: &str, programs: &[&str]) -> bool {
    programs
        .iter()
        .all(|program| mayfly_testkit::program(test, program, program).is_some())
}

#[test]
fn lego_obtains_over_http01_and_revokes() {
    if !peers("lego_obtains_over_http01_and_revokes", &["lego"]) {
        return;
    }
    require_tool("openssl", "openssl");
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    let ca = start_acme_ca(work, serde_json::json!({}));
    let lego_dir = work.join("lego");
    std::fs::create_dir_all(&lego_dir).unwrap();
    let http = format!(":{}", ca.http_port);
    let (ok, text) = lego(
        &ca,
        &lego_dir,
        &[
            "--domains",
            "www.example.test",
            "--domains",
            "api.example.test",
            "--http",
            "--http.port",
            &http,
            "run",
        ],
    );
    assert!(ok, "lego run: {text}");
    let cert = lego_dir.join("certificates/www.example.test.crt");
    openssl_verify(&ca, &cert, work);
    let (_, text) = run(
        "openssl",
        &[
            "x509",
            "-in",
            cert.to_str().unwrap(),
            "-noout",
            "-ext",
            "subjectAltName",
        ],
        work,
    );
    assert!(
        text.contains("DNS:www.example.test") && text.contains("DNS:api.example.test"),
        "{text}"
    );
    // The order's way through its states, and the certificate, in the metrics.
    let samples = support::observed::scrape(ca.metrics_port, work);
    let count =
        |name: &str, labels: &[(&str, &str)]| support::observed::metric(&samples, name, labels);
    for state in ["pending", "processing", "valid"] {
        assert_eq!(
            count("mayfly_acme_orders_total", &[("state", state)]),
            1.0,
            "{state}"
        );
    }
    assert_eq!(
        count("mayfly_acme_orders_total", &[("state", "invalid")]),
        0.0
    );
    assert_eq!(
        count("mayfly_acme_challenges_total", &[("outcome", "valid")]),
        2.0,
        "one http-01 challenge per name"
    );
    assert_eq!(
        count(
            "mayfly_certificates_total",
            &[
                ("operation", "acme"),
                ("provisioner", "acme"),
                ("outcome", "success")
            ]
        ),
        1.0
    );

    let (ok, text) = lego(
        &ca,
        &lego_dir,
        &[
            "--domains",
            "www.example.test",
            "revoke",
            "--keep",
            "--reason",
            "4",
        ],
    );
    assert!(ok, "lego revoke: {text}");
    assert_eq!(
        acme_certificate_states(&ca, work),
        vec!["revoked:4".to_string()],
        "the revocation is in the CA's store, where CRL and OCSP read it"
    );
    // A second revocation is refused: alreadyRevoked.
    let (ok, text) = lego(&ca, &lego_dir, &["--domains", "www.example.test", "revoke"]);
    assert!(!ok && text.contains("alreadyRevoked"), "{text}");

    // tls-alpn-01 (RFC 8737), lego answering on the loopback port the provisioner names.
    let tls = format!(":{}", ca.tls_port);
    let (ok, text) = lego(
        &ca,
        &lego_dir,
        &[
            "--domains",
            "tls.example.test",
            "--tls",
            "--tls.port",
            &tls,
            "run",
        ],
    );
    assert!(ok, "lego run --tls: {text}");
    openssl_verify(
        &ca,
        &lego_dir.join("certificates/tls.example.test.crt"),
        work,
    );

    // dns-01 with a wildcard, the TXT record set by lego's exec provider in the test's DNS
    // server, which the CA asks.
    let (ok, text) = lego(
        &ca,
        &lego_dir,
        &[
            "--domains",
            "*.dns.example.test",
            "--domains",
            "dns.example.test",
            "--dns",
            "exec",
            "--dns.disable-cp",
            "run",
        ],
    );
    assert!(ok, "lego run --dns exec: {text}");
    openssl_verify(
        &ca,
        &lego_dir.join("certificates/_.dns.example.test.crt"),
        work,
    );
}

fn certbot(ca: &AcmeCa, dir: &Path, args: &[&str]) -> (bool, String) {
    command_output(
        Command::new("certbot")
            .env("REQUESTS_CA_BUNDLE", &ca.root)
            .args(args)
            .args([
                "--server",
                &ca.directory,
                "--non-interactive",
                "--config-dir",
                dir.join("config").to_str().unwrap(),
                "--work-dir",
                dir.join("work").to_str().unwrap(),
                "--logs-dir",
                dir.join("logs").to_str().unwrap(),
            ])
            .current_dir(dir),
    )
}

#[test]
fn certbot_obtains_renews_and_revokes_by_account_and_by_key() {
    if !peers(
        "certbot_obtains_renews_and_revokes_by_account_and_by_key",
        &["certbot"],
    ) {
        return;
    }
    require_tool("openssl", "openssl");
    require_tool("sqlite3", "sqlite3");
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    let ca = start_acme_ca(work, serde_json::json!({}));
    let dir = work.join("certbot");
    std::fs::create_dir_all(&dir).unwrap();
    let port = ca.http_port.to_string();
    let obtain = |domain: &str| {
        let (ok, text) = certbot(
            &ca,
            &dir,
            &[
                "certonly",
                "--standalone",
                "--http-01-port",
                &port,
                "--http-01-address",
                "127.0.0.1",
                "-d",
                domain,
                "--agree-tos",
                "-m",
                "ops@example.test",
            ],
        );
        assert!(ok, "certbot certonly {domain}: {text}");
    };
    obtain("web.example.test");
    let live = dir.join("config/live/web.example.test");
    openssl_verify(&ca, &live.join("cert.pem"), work);
    openssl_verify(&ca, &live.join("fullchain.pem"), work);
    let first = std::fs::read_to_string(live.join("cert.pem")).unwrap();

    let (ok, text) = certbot(
        &ca,
        &dir,
        &[
            "renew",
            "--force-renewal",
            "--no-random-sleep-on-renew",
            "--http-01-port",
            &port,
            "--http-01-address",
            "127.0.0.1",
        ],
    );
    assert!(ok, "certbot renew: {text}");
    let renewed = std::fs::read_to_string(live.join("cert.pem")).unwrap();
    assert_ne!(first, renewed, "renewal gives a new certificate");
    openssl_verify(&ca, &live.join("cert.pem"), work);

    // By the account that ordered it.
    let (ok, text) = certbot(
        &ca,
        &dir,
        &[
            "revoke",
            "--cert-path",
            live.join("cert.pem").to_str().unwrap(),
            "--reason",
            "keycompromise",
            "--no-delete-after-revoke",
        ],
    );
    assert!(ok, "certbot revoke by account: {text}");

    // By the certificate's key, without the account.
    obtain("key.example.test");
    let other = dir.join("config/live/key.example.test");

    // A reason outside Let's Encrypt's set is refused. Debian's certbot 2.1 crashes on any ACME
    // error under Python 3.11, so the refusal is read from its log.
    let (ok, text) = certbot(
        &ca,
        &dir,
        &[
            "revoke",
            "--cert-path",
            other.join("cert.pem").to_str().unwrap(),
            "--reason",
            "affiliationchanged",
            "--no-delete-after-revoke",
        ],
    );
    assert!(!ok, "reason 3 must be refused: {text}");
    let log = std::fs::read_to_string(dir.join("logs/letsencrypt.log")).unwrap();
    assert!(
        log.contains("urn:ietf:params:acme:error:badRevocationReason"),
        "the refusal is in certbot's log: {text}"
    );
    let (ok, text) = certbot(
        &ca,
        &dir,
        &[
            "revoke",
            "--cert-path",
            other.join("cert.pem").to_str().unwrap(),
            "--key-path",
            other.join("privkey.pem").to_str().unwrap(),
            "--reason",
            "keycompromise",
            "--no-delete-after-revoke",
        ],
    );
    assert!(ok, "certbot revoke by key: {text}");
    assert_eq!(
        acme_certificate_states(&ca, work),
        vec!["revoked:1", "revoked:1", "valid:"],
    );
}

/// SIGTERM while the CA validates a challenge: the server waits for the validation, whose
/// outcome is recorded, before it exits; the challenge is not left `processing` for good.
#[test]
fn sigterm_during_a_validation_waits_for_its_outcome() {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    if !peers(
        "sigterm_during_a_validation_waits_for_its_outcome",
        &["lego"],
    ) {
        return;
    }
    require_tool("sqlite3", "sqlite3");
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    let log = work.join("server.log");
    let options = ServerOptions {
        env: vec![("MAYFLY_LOG", "info".to_string())],
        log_file: Some(&log),
        ..ServerOptions::default()
    };
    let mut ca = start_acme_ca_with(work, serde_json::json!({}), &options);
    // The CA fetches http-01 answers from `http_port`. The test stands there: it gets the
    // answer from lego's own server and holds it back until the server is shutting down.
    let listener = TcpListener::bind(("127.0.0.1", ca.http_port)).unwrap();
    let lego_port = support::free_port();
    let (arrived, fetch_arrived) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        let Ok((mut from_ca, _)) = listener.accept() else {
            return;
        };
        let mut request = Vec::new();
        let mut chunk = [0u8; 4096];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            match from_ca.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => request.extend_from_slice(&chunk[..n]),
            }
        }
        // lego's answer is fetched at once: lego stops serving it when the CA goes away.
        let mut to_lego = TcpStream::connect(("127.0.0.1", lego_port)).unwrap();
        to_lego.write_all(&request).unwrap();
        let mut response = Vec::new();
        let _ = to_lego.read_to_end(&mut response);
        let _ = arrived.send(());
        if released.recv().is_ok() {
            let _ = from_ca.write_all(&response);
        }
    });
    let lego_dir = work.join("lego");
    std::fs::create_dir_all(&lego_dir).unwrap();
    let http = format!(":{lego_port}");
    let mut lego = lego_command(
        &ca,
        &lego_dir,
        &[
            "--domains",
            "drain.example.test",
            "--http",
            "--http.port",
            &http,
            "run",
        ],
    )
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null())
    .spawn()
    .expect("starting lego");

    fetch_arrived
        .recv_timeout(Duration::from_secs(120))
        .expect("the CA never fetched the http-01 answer");
    ca.server.signal("TERM");
    // Released once the server says it waits for the validation, not after some delay.
    let give_up = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("waiting for ACME challenge validations")
    {
        if let Some(status) = ca.server.wait_exit(Duration::from_millis(20)) {
            panic!(
                "the server exited ({status:?}) during a validation: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        assert!(Instant::now() < give_up, "the server never waited");
    }
    release.send(()).unwrap();
    let status = ca
        .server
        .wait_exit(Duration::from_secs(60))
        .expect("the server did not exit after the validation");
    assert!(status.success(), "{status:?}");
    let _ = lego.kill();
    let _ = lego.wait();

    let db = ca.home.join("db/mayfly.db");
    let query = |sql: &str| {
        let (ok, text) = run("sqlite3", &[db.to_str().unwrap(), sql], work);
        assert!(ok, "{text}");
        text.trim().to_string()
    };
    assert_eq!(query("SELECT status FROM acme_authorizations"), "valid");
    let body: serde_json::Value =
        serde_json::from_str(&query("SELECT body FROM acme_authorizations")).unwrap();
    let challenges = body["challenges"].as_array().unwrap();
    let http01 = challenges.iter().find(|c| c["type"] == "http-01").unwrap();
    assert_eq!(http01["status"], "valid", "{body}");
    assert!(
        challenges.iter().all(|c| c["status"] != "processing"),
        "{body}"
    );
}
