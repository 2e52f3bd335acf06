//! Observability end to end, on a CA made by `mayfly ca init`: after a scripted run of the real
//! `mayfly`, `/metrics` holds the expected counts and parses with Prometheus' own text parser
//! (Python `prometheus_client`), every certificate has its audit entry (`mayfly ca audit`, online
//! and --offline), the JSON log carries request ids, and no secret is in any log or error message.

mod support;

use std::path::Path;

use serde_json::Value;
use support::observed::{CA_PASSWORD, ObservedCa, PROVISIONER_PASSWORD, https, metric, tls_config};
use support::{Server, ServerOptions};

#[test]
fn a_scripted_run_is_counted_audited_and_logged_without_secrets() {
    let _ = python_parser_available();
    let ca = ObservedCa::start(|_| {});
    let mut errors = String::new();
    let pw = ["--provisioner-password-file", "prov-pw.txt"];
    fn with_pw<'a>(args: &[&'a str]) -> Vec<&'a str> {
        let mut all = args.to_vec();
        all.extend(["--provisioner-password-file", "prov-pw.txt"]);
        all
    }

    // Four certificates by /sign: three in one step, one from a token and a CSR.
    for name in ["a", "b", "c"] {
        let host = format!("{name}.internal");
        let mut args = vec![
            "ca".to_owned(),
            "certificate".into(),
            host,
            format!("{name}.crt"),
            format!("{name}.key"),
        ];
        args.extend(pw.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ca.mayfly(&args, &mut errors);
    }
    let token = ca
        .mayfly(
            &[
                "ca",
                "token",
                "d.internal",
                "--password-file",
                "prov-pw.txt",
            ],
            &mut errors,
        )
        .trim()
        .to_owned();
    ca.mayfly(
        &[
            "certificate",
            "create",
            "--csr",
            "d.internal",
            "d.csr",
            "d.key",
            "--no-password",
            "--insecure",
        ],
        &mut errors,
    );
    ca.mayfly(
        &["ca", "sign", "d.csr", "d.crt", "--token", &token],
        &mut errors,
    );
    // Refusals: the same token again (sent by hand, with our request id), and a malformed one.
    let tls = tls_config(&ca.root());
    let csr = std::fs::read_to_string(ca.work.join("d.csr")).unwrap();
    let body = serde_json::json!({ "csr": csr, "ott": token }).to_string();
    let (status, head, answer) = https(
        &ca,
        &tls,
        "POST /1.0/sign HTTP/1.1\r\nX-Request-Id: replay-7c1e\r\nContent-Type: application/json\r\n",
        body.as_bytes(),
    );
    assert_eq!(status, 401, "{}", String::from_utf8_lossy(&answer));
    assert!(
        head.to_ascii_lowercase()
            .contains("x-request-id: replay-7c1e"),
        "the request id comes back: {head}"
    );
    assert!(String::from_utf8_lossy(&answer).contains("token was already used"));
    ca.mayfly_fails(
        &["ca", "sign", "d.csr", "e.crt", "--token", "not.a.token"],
        "malformed token",
        &mut errors,
    );
    // Renew, rekey, revoke, an SSH certificate, OCSP and a CRL.
    ca.mayfly(&["ca", "renew", "a.crt", "a.key", "--force"], &mut errors);
    ca.mayfly(&["ca", "rekey", "c.crt", "c.key", "--force"], &mut errors);
    let b_serial = ca.serial("b.crt");
    ca.mayfly(
        &with_pw(&["ca", "revoke", &b_serial, "--reasonCode", "keyCompromise"]),
        &mut errors,
    );
    ca.mayfly(
        &with_pw(&[
            "ssh",
            "certificate",
            "alice",
            "alice_key",
            "--principal",
            "alice",
            "--no-password",
            "--insecure",
        ]),
        &mut errors,
    );
    let ocsp_url = format!("http://127.0.0.1:{}/ocsp", ca.http_port);
    let intermediate = ca.home.join("certs/intermediate_ca.crt");
    for _ in 0..2 {
        let (ok, text) = support::run(
            "openssl",
            &[
                "ocsp",
                "-issuer",
                intermediate.to_str().unwrap(),
                "-cert",
                &ca.file("d.crt"),
                "-url",
                &ocsp_url,
                "-no_nonce",
                "-noverify",
            ],
            &ca.work,
        );
        assert!(ok && text.contains(": good"), "{text}");
    }
    ca.mayfly(&["ca", "crl"], &mut errors);

    // The metrics, as Prometheus reads them.
    let samples = ca.scrape();
    let count = |name: &str, labels: &[(&str, &str)]| metric(&samples, name, labels);
    let certificates = "mayfly_certificates_total";
    let sign_ok = [
        ("operation", "sign"),
        ("provisioner", "ops"),
        ("outcome", "success"),
    ];
    assert_eq!(count(certificates, &sign_ok), 4.0, "{samples:?}");
    assert_eq!(
        count(
            certificates,
            &[("operation", "sign"), ("outcome", "refused")]
        ),
        2.0
    );
    for operation in ["renew", "rekey", "revoke", "ssh_sign"] {
        assert_eq!(
            count(
                certificates,
                &[
                    ("operation", operation),
                    ("provisioner", "ops"),
                    ("outcome", "success")
                ]
            ),
            1.0,
            "{operation}"
        );
    }
    let rejections = "mayfly_token_rejections_total";
    assert_eq!(count(rejections, &[("reason", "already_used")]), 1.0);
    assert_eq!(count(rejections, &[("reason", "malformed")]), 1.0);
    assert_eq!(count(rejections, &[]), 2.0, "no other rejection");
    let requests = "mayfly_http_request_duration_seconds_count";
    let signs = [("route", "/1.0/sign"), ("method", "POST")];
    assert_eq!(
        count(requests, &[signs[0], signs[1], ("status", "201")]),
        4.0
    );
    assert_eq!(
        count(requests, &[signs[0], signs[1], ("status", "401")]),
        2.0
    );
    assert_eq!(
        count("mayfly_ocsp_responses_total", &[("source", "hit")])
            + count("mayfly_ocsp_responses_total", &[("source", "signed")]),
        2.0,
        "two OCSP answers"
    );
    assert!(count("mayfly_crl_generated_total", &[("scope", "full")]) >= 1.0);
    assert_eq!(
        count("mayfly_crl_requests_total", &[("scope", "full")]),
        1.0
    );
    assert!(count("mayfly_crl_generation_seconds_count", &[("scope", "full")]) >= 1.0);
    assert_eq!(
        count(
            "mayfly_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );

    // The audit log: every stored certificate has its entry, and so does the revocation.
    let audit_json = ca.mayfly(&with_pw(&["ca", "audit", "--format", "json"]), &mut errors);
    let audit: Vec<Value> = serde_json::from_str(&audit_json).unwrap();
    let offline: Vec<Value> = serde_json::from_str(&ca.mayfly(
        &["ca", "audit", "--offline", "--format", "json"],
        &mut errors,
    ))
    .unwrap();
    assert_eq!(audit, offline, "the admin API and the database agree");
    let listed: Vec<Value> = serde_json::from_str(&ca.mayfly(
        &with_pw(&["ca", "certificates", "list", "--format", "json"]),
        &mut errors,
    ))
    .unwrap();
    let issued_actions = ["issued", "renewed", "rekeyed"];
    for certificate in &listed {
        let serial = certificate["serial"].as_str().unwrap();
        let entries: Vec<&Value> = audit
            .iter()
            .filter(|e| {
                e["serial"] == serial && issued_actions.contains(&e["action"].as_str().unwrap())
            })
            .collect();
        assert_eq!(entries.len(), 1, "certificate {serial}: {entries:?}");
        assert_eq!(entries[0]["subject"], certificate["subject"]);
        assert_eq!(entries[0]["sans"], certificate["sans"]);
    }
    let x509_issued = audit
        .iter()
        .filter(|e| issued_actions.contains(&e["action"].as_str().unwrap()))
        .count();
    assert_eq!(x509_issued, listed.len(), "no entry without a certificate");
    assert_eq!(
        count(
            "mayfly_store_operation_duration_seconds_count",
            &[("operation", "record_issuance")]
        ),
        // The replayed token reached the store too, which refused it.
        (x509_issued + 1) as f64,
        "one store write per certificate, and one for the replay"
    );
    let of =
        |action: &str| -> Vec<&Value> { audit.iter().filter(|e| e["action"] == action).collect() };
    let revoked = of("revoked");
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0]["serial"], b_serial.as_str());
    assert_eq!(revoked[0]["subject"], "b.internal");
    assert_eq!(revoked[0]["credential"], "token:ops");
    assert_eq!(revoked[0]["address"], "127.0.0.1");
    assert_eq!(revoked[0]["detail"], "keyCompromise");
    let renewed = of("renewed");
    assert_eq!(renewed.len(), 1);
    assert_eq!(renewed[0]["credential"], "mtls:a.internal");
    assert!(
        renewed[0]["detail"]
            .as_str()
            .unwrap()
            .starts_with("replaces ")
    );
    assert_eq!(of("rekeyed").len(), 1);
    let ssh = of("ssh-issued");
    assert_eq!(ssh.len(), 1);
    assert_eq!(ssh[0]["sans"], serde_json::json!(["alice"]));
    let signed: Vec<&Value> = of("issued")
        .into_iter()
        .filter(|e| e["credential"] == "token:ops")
        .collect();
    assert_eq!(signed.len(), 4, "{audit:?}");
    for entry in &signed {
        assert_eq!(entry["address"], "127.0.0.1");
        assert!(entry["detail"].as_str().unwrap().starts_with("jti "));
    }
    assert!(
        of("issued")
            .iter()
            .any(|e| e["credential"] == "server" && e["address"] == ""),
        "the CA's own TLS certificate is on record"
    );
    let by_serial: Vec<Value> = serde_json::from_str(&ca.mayfly(
        &with_pw(&["ca", "audit", "--serial", &b_serial, "--format", "json"]),
        &mut errors,
    ))
    .unwrap();
    let actions: Vec<&str> = by_serial
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["issued", "revoked"]);
    let table = ca.mayfly(&with_pw(&["ca", "audit", "--since", "1h"]), &mut errors);
    assert!(table.starts_with("ID"), "{table}");
    assert_eq!(table.lines().count(), audit.len() + 1, "{table}");
    // Following the log: only what came after the last id seen.
    let last_but_one = audit[audit.len() - 2]["id"].as_u64().unwrap().to_string();
    let tail: Vec<Value> = serde_json::from_str(&ca.mayfly(
        &with_pw(&["ca", "audit", "--after", &last_but_one, "--format", "json"]),
        &mut errors,
    ))
    .unwrap();
    assert_eq!(tail, audit[audit.len() - 1..]);
    // Bad filters are refused before anything is asked.
    ca.mayfly_fails(
        &["ca", "audit", "--offline", "--serial", "12ab"],
        "is not a decimal serial number",
        &mut errors,
    );
    ca.mayfly_fails(
        &["ca", "audit", "--offline", "--since", "yesterday"],
        "is neither an RFC 3339 time",
        &mut errors,
    );

    // The log: JSON lines, with the request id on the lines of that request.
    let log = std::fs::read_to_string(&ca.log).unwrap();
    let mut refused_with_id = false;
    for line in log.lines() {
        let value: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("a log line is not JSON ({e}): {line}"));
        if value["span"]["request_id"] == "replay-7c1e" {
            assert_eq!(value["span"]["path"], "/1.0/sign");
            assert_eq!(value["span"]["method"], "POST");
            if value["fields"]["message"] == "request refused" {
                refused_with_id = true;
            }
        }
    }
    assert!(
        refused_with_id,
        "the refusal is logged with its request id:\n{log}"
    );
    // The log is the full debug log of the run, so the search below means something.
    assert!(log.contains("\"message\":\"certificate issued\""), "{log}");
    assert!(log.contains("\"level\":\"DEBUG\""), "{log}");

    // No secret anywhere: passwords, tokens (whole or their signatures), private keys.
    let mut secrets = vec![
        CA_PASSWORD.to_owned(),
        PROVISIONER_PASSWORD.to_owned(),
        token.clone(),
        token.rsplit('.').next().unwrap().to_owned(),
    ];
    for key in ["a.key", "b.key", "d.key", "alice_key"] {
        let text = std::fs::read_to_string(ca.work.join(key)).unwrap();
        secrets.extend(
            text.lines()
                .filter(|l| !l.starts_with("-----") && l.len() > 20)
                .map(str::to_owned),
        );
    }
    let haystack = format!("{log}\n{errors}");
    for secret in &secrets {
        assert!(
            !haystack.contains(secret.as_str()),
            "a secret reached the logs or an error message: {secret}"
        );
    }
    assert!(
        !haystack.contains("PRIVATE KEY"),
        "a private key reached the logs"
    );
}

/// Installed by `.ci/run` from PyPI.
fn python_parser_available() -> bool {
    let ok = std::process::Command::new("python3")
        .args(["-c", "import prometheus_client"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "python3 with prometheus_client is required: python3 -m pip install prometheus-client"
    );
    ok
}

/// World-readable files stop the server when a secret is in them in clear; with their secrets
/// encrypted they are named in one warning line and the server starts.
#[test]
fn world_readable_secret_files_are_refused_unless_allowed() {
    use std::os::unix::fs::PermissionsExt;
    let mut ca = ObservedCa::start(|_| {});
    if let Some(server) = ca.server.take() {
        server.stop();
    }
    let config = ca.home.join("config/ca.json");
    let key = ca.home.join("secrets/intermediate_ca_key");
    let password = ca.work.join("pw.txt");
    let set_mode = |file: &Path, mode: u32| {
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    let refused = |file: &Path, what: &str| {
        let out = std::process::Command::new(support::server_bin())
            .args([config.to_str().unwrap(), "--password-file", "pw.txt"])
            .env("MAYFLY_PATH", &ca.home)
            .env("MAYFLY_LOG", "warn")
            .current_dir(&ca.work)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{what}: started anyway");
        let line = stderr
            .lines()
            .find(|l| l.starts_with("mayfly-ca: "))
            .unwrap_or_else(|| panic!("{stderr}"));
        let name = file.file_name().unwrap().to_str().unwrap();
        assert!(line.contains(name), "{line}");
        assert!(line.contains(what), "{line}");
        assert!(line.contains("mode 0644"), "{line}");
        assert!(line.contains("--insecure-allow-world-readable"), "{line}");
    };
    // The password file is a secret in clear.
    let mode_of = |file: &Path| std::fs::metadata(file).unwrap().permissions().mode() & 0o777;
    let before = mode_of(&password);
    set_mode(&password, 0o644);
    refused(&password, "--password-file");
    set_mode(&password, before);
    // ca.json with the key's password in it.
    let original_config = std::fs::read(&config).unwrap();
    let config_mode = mode_of(&config);
    let mut value: Value = serde_json::from_slice(&original_config).unwrap();
    value["password"] = "in clear".into();
    std::fs::write(&config, serde_json::to_vec_pretty(&value).unwrap()).unwrap();
    set_mode(&config, 0o644);
    refused(&config, "the CA configuration, with password in clear");
    std::fs::write(&config, &original_config).unwrap();
    set_mode(&config, config_mode);
    // The intermediate key without its encryption.
    let original_key = std::fs::read(&key).unwrap();
    let key_mode = mode_of(&key);
    let secret = mayfly_pki::keyfile::read_password_file_bytes(&std::fs::read(&password).unwrap());
    let decrypted =
        mayfly_pki::keyfile::decode_private_key_pem(&original_key, Some(&secret)).unwrap();
    let clear = mayfly_pki::keyfile::encode_private_key_pem(&decrypted, None).unwrap();
    std::fs::write(&key, clear).unwrap();
    set_mode(&key, 0o644);
    refused(&key, "the intermediate CA key, not encrypted");
    std::fs::write(&key, &original_key).unwrap();

    let options = ServerOptions {
        cwd: Some(&ca.work),
        env: Vec::new(),
        log_file: Some(&ca.log),
    };
    let start = |extra: &[&str]| {
        let mut args = vec![config.to_str().unwrap(), "--password-file", "pw.txt"];
        args.extend_from_slice(extra);
        Server::start_with(&args, &ca.home, &options, "serving on").stop();
        std::fs::read_to_string(&ca.log).unwrap()
    };
    // Encrypted secrets readable by all (ca.json's provisioner key, the intermediate key) start
    // the server, with one warning naming both.
    set_mode(&config, 0o644);
    set_mode(&key, 0o644);
    let log = start(&[]);
    let warned: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("readable by every user"))
        .collect();
    assert_eq!(warned.len(), 1, "{log}");
    assert!(warned[0].contains("ca.json (mode 0644)"), "{log}");
    assert!(
        warned[0].contains("intermediate_ca_key (mode 0644)"),
        "{log}"
    );
    set_mode(&key, key_mode);
    // Group access is the operator's business (a service group), and allowed without a word.
    set_mode(&config, 0o640);
    let log = start(&[]);
    assert!(!log.contains("readable by every user"), "{log}");
    // With the override, a secret in clear is accepted, with a warning.
    set_mode(&password, 0o644);
    let log = start(&["--insecure-allow-world-readable"]);
    assert!(log.contains("--insecure-allow-world-readable"), "{log}");
}
