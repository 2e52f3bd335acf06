//! Active revocation end to end: a CA made by `mayfly ca init` with a plain-HTTP listener
//! publishes CRLs and answers OCSP, and `openssl` (crl, verify -crl_check, ocsp) is the judge.

mod support;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::{Server, mayfly_ok, require_tool};

/// A running CA with CRLs and OCSP on a plain-HTTP listener.
struct ActiveCa {
    server: Option<Server>,
    home: PathBuf,
    work: PathBuf,
    http_port: u16,
    _tmp: tempfile::TempDir,
}

impl ActiveCa {
    fn start() -> ActiveCa {
        require_tool("openssl", "openssl");
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("mayfly");
        let work = tmp.path().to_path_buf();
        support::write_secret(work.join("pw.txt"), "ca password\n");
        support::write_secret(work.join("prov-pw.txt"), "provisioner password\n");
        let address = format!("127.0.0.1:{}", support::free_port());
        mayfly_ok(
            &home,
            &work,
            &[
                "ca",
                "init",
                "--name",
                "Revocation Test",
                "--dns",
                "127.0.0.1",
                "--address",
                &address,
                "--provisioner",
                "ops",
                "--password-file",
                "pw.txt",
                "--provisioner-password-file",
                "prov-pw.txt",
            ],
        );
        let http_port = support::free_port();
        let config_path = home.join("config/ca.json");
        let mut config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&config_path).unwrap()).unwrap();
        assert_eq!(config["crl"]["enabled"], true, "ca init turns CRLs on");
        assert_eq!(config["ocsp"]["enabled"], true, "ca init turns OCSP on");
        config["insecureAddress"] = format!("127.0.0.1:{http_port}").into();
        std::fs::write(&config_path, config.to_string()).unwrap();
        let mut ca = ActiveCa {
            server: None,
            home,
            work,
            http_port,
            _tmp: tmp,
        };
        ca.restart();
        ca
    }

    fn restart(&mut self) {
        if let Some(server) = self.server.take() {
            server.stop();
        }
        let config = self.home.join("config/ca.json");
        self.server = Some(Server::start(
            &[config.to_str().unwrap(), "--password-file", "pw.txt"],
            &self.home,
            Some(&self.work),
            "serving CRLs and OCSP on",
        ));
    }

    fn mayfly(&self, args: &[&str]) -> String {
        mayfly_ok(&self.home, &self.work, args)
    }

    fn certificate(&self, name: &str) -> String {
        self.mayfly(&[
            "ca",
            "certificate",
            name,
            &format!("{name}.crt"),
            &format!("{name}.key"),
            "--provisioner-password-file",
            "prov-pw.txt",
        ]);
        let text = self.openssl(&["x509", "-in", &format!("{name}.crt"), "-noout", "-serial"]);
        let hex = text.trim().trim_start_matches("serial=");
        u128::from_str_radix(hex, 16).unwrap().to_string()
    }

    fn revoke(&self, serial: &str, reason: &str) {
        self.mayfly(&[
            "ca",
            "revoke",
            serial,
            "--reasonCode",
            reason,
            "--provisioner-password-file",
            "prov-pw.txt",
        ]);
    }

    fn path(&self, name: &str) -> String {
        match name {
            "root" => self.home.join("certs/root_ca.crt"),
            "intermediate" => self.home.join("certs/intermediate_ca.crt"),
            other => self.work.join(other),
        }
        .to_str()
        .unwrap()
        .to_string()
    }

    fn openssl(&self, args: &[&str]) -> String {
        let (ok, text) = support::run("openssl", args, &self.work);
        assert!(ok, "openssl {args:?}: {text}");
        text
    }

    fn openssl_any(&self, args: &[&str]) -> (bool, String) {
        support::run("openssl", args, &self.work)
    }

    fn get(&self, path: &str) -> HttpResponse {
        http(self.http_port, "GET", path, "", &[])
    }

    fn crl_number(&self, path: &str) -> u64 {
        let der = self.get(path).body;
        std::fs::write(self.work.join("number.der"), der).unwrap();
        let text = self.openssl(&[
            "crl",
            "-inform",
            "DER",
            "-in",
            "number.der",
            "-noout",
            "-crlnumber",
        ]);
        let hex = text.trim().trim_start_matches("crlNumber=0x");
        u64::from_str_radix(hex, 16).unwrap_or_else(|_| panic!("crlNumber in {text:?}"))
    }

    fn verify_with_crls(&self, leaf: &str, crls: &str, deltas: bool) -> (bool, String) {
        let mut args = vec![
            "verify",
            "-crl_check",
            "-CAfile",
            "",
            "-untrusted",
            "",
            "-CRLfile",
            crls,
        ];
        let root = self.path("root");
        let intermediate = self.path("intermediate");
        args[3] = &root;
        args[5] = &intermediate;
        if deltas {
            args.push("-use_deltas");
        }
        args.push(leaf);
        self.openssl_any(&args)
    }

    fn ocsp(&self, leaf: &str, extra: &[&str]) -> String {
        let url = format!("http://127.0.0.1:{}/ocsp", self.http_port);
        let intermediate = self.path("intermediate");
        let root = self.path("root");
        let mut args = vec![
            "ocsp",
            "-issuer",
            &intermediate,
            "-cert",
            leaf,
            "-url",
            &url,
            "-CAfile",
            &root,
        ];
        args.extend_from_slice(extra);
        self.openssl(&args)
    }
}

struct HttpResponse {
    status: u16,
    headers: String,
    body: Vec<u8>,
}

/// One HTTP/1.1 request over a fresh connection to 127.0.0.1:`port`.
fn http(port: u16, method: &str, path: &str, content_type: &str, body: &[u8]) -> HttpResponse {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
         Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP response head");
    let headers = String::from_utf8_lossy(&raw[..split]).to_string();
    let status = headers
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap();
    HttpResponse {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn pem_crl(der: &[u8], out: &Path) {
    std::fs::write(out.with_extension("der"), der).unwrap();
    let (ok, text) = support::run(
        "openssl",
        &[
            "crl",
            "-inform",
            "DER",
            "-in",
            out.with_extension("der").to_str().unwrap(),
            "-out",
            out.to_str().unwrap(),
        ],
        out.parent().unwrap(),
    );
    assert!(ok, "{text}");
}

#[test]
fn crls_list_revocations_and_openssl_checks_leaves_against_them() {
    let mut ca = ActiveCa::start();
    let good = ca.certificate("good");
    let bad = ca.certificate("bad");
    let text = ca.openssl(&["x509", "-in", "bad.crt", "-noout", "-text"]);
    let base_url = format!("http://127.0.0.1:{}", ca.http_port);
    for expected in [
        "X509v3 CRL Distribution Points".to_string(),
        format!("URI:{base_url}/1.0/crl\n"),
        "X509v3 Freshest CRL".to_string(),
        format!("URI:{base_url}/1.0/crl/delta"),
        format!("OCSP - URI:{base_url}/ocsp"),
        format!("CA Issuers - URI:{base_url}/1.0/intermediate.crt"),
    ] {
        assert!(text.contains(&expected), "leaf lacks {expected:?}:\n{text}");
    }

    // The base CRL before any revocation: both leaves pass.
    let before = ca.get("/1.0/crl");
    assert_eq!(before.status, 200);
    assert!(
        before.headers.contains("application/pkix-crl"),
        "{}",
        before.headers
    );
    assert!(before.headers.contains("max-age="), "{}", before.headers);
    assert!(
        before.headers.to_lowercase().contains("etag: "),
        "{}",
        before.headers
    );
    pem_crl(&before.body, &ca.work.join("base.pem"));
    for leaf in ["good.crt", "bad.crt"] {
        let (ok, out) = ca.verify_with_crls(leaf, "base.pem", false);
        assert!(ok, "{leaf} with the first CRL: {out}");
    }
    let base_number = ca.crl_number("/1.0/crl");

    ca.revoke(&bad, "keyCompromise");
    // Within a second or so, the complete and the delta CRL list it with its reason.
    wait_for("the revocation to reach the CRL", || {
        ca.crl_number("/crl") > base_number
    });
    let after = ca.get("/crl?pem=true");
    assert!(after.headers.contains("application/x-pem-file"));
    std::fs::write(ca.work.join("full.pem"), &after.body).unwrap();
    let listing = ca.openssl(&["crl", "-in", "full.pem", "-noout", "-text"]);
    let bad_hex = format!("{:X}", bad.parse::<u128>().unwrap());
    assert!(listing.contains(&bad_hex), "{bad_hex} missing:\n{listing}");
    assert!(listing.contains("Key Compromise"), "{listing}");
    assert!(listing.contains("Issuing Distribution Point"), "{listing}");
    assert!(
        listing.contains(&format!("{base_url}/1.0/crl")),
        "{listing}"
    );

    let (ok, out) = ca.verify_with_crls("bad.crt", "full.pem", false);
    assert!(!ok && out.contains("certificate revoked"), "{out}");
    let (ok, out) = ca.verify_with_crls("good.crt", "full.pem", false);
    assert!(ok, "{out}");

    // `mayfly ca crl` checks the signature and shows the entry; `--out --pem` saves what openssl
    // reads; `mayfly certificate verify --verify-crl` judges like a relying party.
    let summary = ca.mayfly(&["ca", "crl"]);
    assert!(summary.contains("signature verified"), "{summary}");
    assert!(summary.contains(&format!("{bad}  ")), "{summary}");
    assert!(summary.contains("keyCompromise"), "{summary}");
    ca.mayfly(&["ca", "crl", "--out", "saved.pem", "--pem"]);
    let saved = ca.openssl(&["crl", "-in", "saved.pem", "-noout", "-text"]);
    assert!(saved.contains(&bad_hex), "{saved}");
    let delta_summary = ca.mayfly(&["ca", "crl", "--delta"]);
    assert!(
        delta_summary.starts_with("Delta CRL number"),
        "{delta_summary}"
    );
    let verified = ca.mayfly(&["certificate", "verify", "good.crt", "--verify-crl"]);
    assert!(verified.contains("good.crt: OK (chain, CRL)"), "{verified}");
    support::mayfly_err(
        &ca.home,
        &ca.work,
        &["certificate", "verify", "bad.crt", "--verify-crl"],
        "certificate revoked",
    );
    ca.openssl(&["x509", "-in", "bad.crt", "-out", "bad-leaf.pem"]);
    support::mayfly_err(
        &ca.home,
        &ca.work,
        &[
            "certificate",
            "verify",
            "good.crt",
            "--roots",
            "bad-leaf.pem",
        ],
        "no trusted issuer",
    );
    let root = ca.path("root");
    support::mayfly_err(
        &ca.home,
        &ca.work,
        &["certificate", "verify", &root, "--verify-crl"],
        "no CRL Distribution Point",
    );

    // The delta names the base and lists the revocation; with the old base alone the revoked
    // leaf still passes, with base + delta it fails.
    let delta = ca.get("/1.0/crl/delta");
    assert_eq!(delta.status, 200);
    pem_crl(&delta.body, &ca.work.join("delta.pem"));
    let delta_text = ca.openssl(&["crl", "-in", "delta.pem", "-noout", "-text"]);
    assert!(delta_text.contains("Delta CRL Indicator"), "{delta_text}");
    assert!(delta_text.contains(&bad_hex), "{delta_text}");
    let combined = format!(
        "{}{}",
        std::fs::read_to_string(ca.work.join("base.pem")).unwrap(),
        std::fs::read_to_string(ca.work.join("delta.pem")).unwrap()
    );
    std::fs::write(ca.work.join("base-and-delta.pem"), combined).unwrap();
    let (ok, out) = ca.verify_with_crls("bad.crt", "base-and-delta.pem", true);
    assert!(
        !ok && out.contains("certificate revoked"),
        "with the delta: {out}"
    );
    let (ok, out) = ca.verify_with_crls("good.crt", "base-and-delta.pem", true);
    assert!(ok, "{out}");
    assert_ne!(good, bad);

    // The CRL number keeps growing across a restart.
    let before_restart = ca.crl_number("/crl");
    ca.restart();
    let after_restart = ca.crl_number("/crl");
    assert!(
        after_restart > before_restart,
        "CRL number went from {before_restart} to {after_restart} across a restart"
    );
}

#[test]
fn ocsp_answers_good_then_revoked_by_post_and_get() {
    let ca = ActiveCa::start();
    let serial = ca.certificate("svc");
    for extra in [&[][..], &["-no_nonce"][..]] {
        let out = ca.ocsp("svc.crt", extra);
        assert!(out.contains("Response verify OK"), "{extra:?}: {out}");
        assert!(out.contains("svc.crt: good"), "{extra:?}: {out}");
        // openssl checks that the nonce it sent came back, and warns when it did not.
        assert!(!out.contains("WARNING"), "{extra:?}: {out}");
    }
    let verified = ca.mayfly(&[
        "certificate",
        "verify",
        "svc.crt",
        "--verify-ocsp",
        "--verify-crl",
    ]);
    assert!(
        verified.contains("svc.crt: OK (chain, CRL, OCSP)"),
        "{verified}"
    );

    // GET with the base64 request in the path, as RFC 6960 appendix A.1; cached headers.
    let intermediate = ca.path("intermediate");
    ca.openssl(&[
        "ocsp",
        "-issuer",
        &intermediate,
        "-cert",
        "svc.crt",
        "-no_nonce",
        "-reqout",
        "req.der",
    ]);
    let request = std::fs::read(ca.work.join("req.der")).unwrap();
    let encoded = base64_encode(&request)
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D");
    let get = ca.get(&format!("/ocsp/{encoded}"));
    assert_eq!(get.status, 200);
    assert!(
        get.headers.contains("application/ocsp-response"),
        "{}",
        get.headers
    );
    assert!(get.headers.contains("max-age="), "{}", get.headers);
    assert!(
        get.headers.to_lowercase().contains("last-modified"),
        "{}",
        get.headers
    );
    std::fs::write(ca.work.join("resp.der"), &get.body).unwrap();
    let root = ca.path("root");
    let read_back = |file: &str| {
        ca.openssl(&[
            "ocsp",
            "-respin",
            file,
            "-issuer",
            &intermediate,
            "-cert",
            "svc.crt",
            "-CAfile",
            &root,
        ])
    };
    let out = read_back("resp.der");
    assert!(out.contains("svc.crt: good"), "{out}");

    // Revoked, with the reason, at once: the cached answer is dropped.
    ca.revoke(&serial, "keyCompromise");
    for extra in [&[][..], &["-no_nonce"][..]] {
        let out = ca.ocsp("svc.crt", extra);
        assert!(out.contains("svc.crt: revoked"), "{extra:?}: {out}");
        assert!(out.contains("Reason: keyCompromise"), "{extra:?}: {out}");
    }
    let get = ca.get(&format!("/ocsp/{encoded}"));
    std::fs::write(ca.work.join("resp2.der"), &get.body).unwrap();
    let out = read_back("resp2.der");
    assert!(out.contains("svc.crt: revoked"), "{out}");
    let line = support::mayfly_err(
        &ca.home,
        &ca.work,
        &["certificate", "verify", "svc.crt", "--verify-ocsp"],
        "certificate revoked",
    );
    assert!(
        line.contains("keyCompromise") && line.contains("OCSP"),
        "{line}"
    );

    // A request naming another issuer (the root, here): unauthorized.
    let url = format!("http://127.0.0.1:{}/ocsp", ca.http_port);
    let (_, out) = ca.openssl_any(&[
        "ocsp", "-issuer", &root, "-cert", "svc.crt", "-url", &url, "-CAfile", &root,
    ]);
    assert!(out.contains("unauthorized"), "{out}");
}

/// The load generator's OCSP and CRL modes run against the real thing (a benchmark's smoke
/// test; the figures are in docs/PERFORMANCE.md).
#[test]
fn bench_ocsp_and_crl_modes_run() {
    let ca = ActiveCa::start();
    ca.certificate("svc");
    let bench = support::server_bin().with_file_name("mayfly-bench");
    let url = format!("http://127.0.0.1:{}/ocsp", ca.http_port);
    let intermediate = ca.path("intermediate");
    let (ok, out) = support::run(
        bench.to_str().unwrap(),
        &[
            "ocsp",
            "--url",
            &url,
            "--issuer",
            &intermediate,
            "--cert",
            "svc.crt",
            "-n",
            "300",
            "-c",
            "4",
            "--json",
        ],
        &ca.work,
    );
    assert!(ok, "{out}");
    let report: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(report["successes"], 300, "{report}");
    assert_eq!(report["unit"], "responses");
    let (ok, out) = support::run(
        bench.to_str().unwrap(),
        &[
            "crl",
            "--entries",
            "250",
            "--json",
            "--dir",
            ca.path("crl-bench").as_str(),
        ],
        &ca.work,
    );
    assert!(ok, "{out}");
    let report: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(report["entries"], 250, "{report}");
    assert!(report["crl_bytes"].as_u64().unwrap() > 250 * 40, "{report}");
}

#[test]
fn malformed_ocsp_requests_get_malformed_request() {
    let ca = ActiveCa::start();
    ca.certificate("svc");
    let intermediate = ca.path("intermediate");
    ca.openssl(&[
        "ocsp",
        "-issuer",
        &intermediate,
        "-cert",
        "svc.crt",
        "-reqout",
        "req.der",
    ]);
    let valid = std::fs::read(ca.work.join("req.der")).unwrap();
    let malformed_request = [0x30, 0x03, 0x0a, 0x01, 0x01];
    let oversized = vec![0x30; 64 * 1024];
    let mut trailing = valid.clone();
    trailing.extend_from_slice(&[0, 0]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty body", Vec::new()),
        ("text", b"not an OCSP request".to_vec()),
        ("truncated DER", valid[..valid.len() / 2].to_vec()),
        ("one byte short", valid[..valid.len() - 1].to_vec()),
        ("trailing bytes", trailing),
        ("indefinite length", vec![0x30, 0x80, 0x00, 0x00]),
        ("an empty SEQUENCE", vec![0x30, 0x00]),
        ("oversized body", oversized),
    ];
    for (what, body) in cases {
        let response = http(
            ca.http_port,
            "POST",
            "/ocsp",
            "application/ocsp-request",
            &body,
        );
        assert_eq!(response.status, 200, "{what}");
        assert_eq!(response.body, malformed_request, "{what}");
    }
    let response = ca.get("/ocsp/%%%not-base64");
    assert_eq!(response.body, malformed_request, "bad base64 in a GET");
    // The real request still works afterwards.
    let response = http(
        ca.http_port,
        "POST",
        "/ocsp",
        "application/ocsp-request",
        &valid,
    );
    assert_eq!(
        response.body[..2],
        [0x30, 0x82],
        "a response of a few hundred bytes"
    );
    assert_eq!(response.body[4..7], [0x0a, 0x01, 0x00], "status successful");
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
