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
        Self::start_with(|_| {})
    }

    /// `ca init` with the plain-HTTP listener on a free port, then `edit` on ca.json.
    fn start_with(edit: impl FnOnce(&mut serde_json::Value)) -> ActiveCa {
        require_tool("openssl", "openssl");
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("mayfly");
        let work = tmp.path().to_path_buf();
        support::write_secret(work.join("pw.txt"), "ca password\n");
        support::write_secret(work.join("prov-pw.txt"), "provisioner password\n");
        let address = format!("127.0.0.1:{}", support::free_port());
        let http_port = support::free_port();
        let insecure = format!("127.0.0.1:{http_port}");
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
                "--insecure-address",
                &insecure,
                "--provisioner",
                "ops",
                "--password-file",
                "pw.txt",
                "--provisioner-password-file",
                "prov-pw.txt",
            ],
        );
        let config_path = home.join("config/ca.json");
        let mut config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&config_path).unwrap()).unwrap();
        assert_eq!(config["crl"]["enabled"], true, "ca init turns CRLs on");
        assert_eq!(config["ocsp"]["enabled"], true, "ca init turns OCSP on");
        assert_eq!(config["insecureAddress"], insecure.as_str());
        edit(&mut config);
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
        format!("URI:{base_url}/1.0/crl-delta"),
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
    // The complete CRL covers every certificate of the intermediate, whatever URL it carries,
    // so it names no distribution point (RFC 5280 5.2.5: no IDP, full scope).
    assert!(!listing.contains("Issuing Distribution Point"), "{listing}");

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
    let delta = ca.get("/1.0/crl-delta");
    assert_eq!(delta.status, 200);
    // Where deltas were first served, and earlier certificates point.
    assert_eq!(ca.get("/1.0/crl/delta").body, delta.body);
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
            "--shards",
            "4",
            "--publish",
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
    assert!(report["full"]["seconds"].is_number(), "{report}");
    assert!(
        report["all_shards_and_full"]["seconds"].is_number(),
        "{report}"
    );
    assert!(
        report["revocation_to_shard_seconds"].is_number(),
        "{report}"
    );
    // The complete CRL and four shards, written as files.
    assert_eq!(report["published_files"], 5, "{report}");
    let site = ca.work.join("crl-bench/site/1.0");
    assert!(site.join("crl").is_file() && site.join("crls/3").is_file());
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

/// The CDP URL in a leaf, as openssl prints it.
fn crl_url_of(ca: &ActiveCa, leaf: &str) -> String {
    let text = ca.openssl(&[
        "x509",
        "-in",
        leaf,
        "-noout",
        "-ext",
        "crlDistributionPoints",
    ]);
    text.lines()
        .find_map(|line| line.trim().strip_prefix("URI:"))
        .unwrap_or_else(|| panic!("{leaf} has no CDP URI:\n{text}"))
        .to_string()
}

/// `openssl verify -crl_check_all` with the PEM CRLs `crls` (work files) together: the whole
/// chain, root included (openssl wants a CRL for the self-signed root too, which only the
/// root's own CRL gives).
fn verify_chain_with_crls(ca: &ActiveCa, leaf: &str, crls: &[&str]) -> (bool, String) {
    let joined: String = crls
        .iter()
        .map(|file| std::fs::read_to_string(ca.work.join(file)).unwrap())
        .collect();
    std::fs::write(ca.work.join("chain-crls.pem"), joined).unwrap();
    let root = ca.path("root");
    let intermediate = ca.path("intermediate");
    ca.openssl_any(&[
        "verify",
        "-crl_check_all",
        "-CAfile",
        &root,
        "-untrusted",
        &intermediate,
        "-CRLfile",
        "chain-crls.pem",
        leaf,
    ])
}

/// `openssl verify -crl_check -crl_download`: the CRL comes from the leaf's own CDP URL.
fn verify_downloading(ca: &ActiveCa, leaf: &str, all: bool) -> (bool, String) {
    let root = ca.path("root");
    let intermediate = ca.path("intermediate");
    let check = if all { "-crl_check_all" } else { "-crl_check" };
    ca.openssl_any(&[
        "verify",
        check,
        "-crl_download",
        "-CAfile",
        &root,
        "-untrusted",
        &intermediate,
        leaf,
    ])
}

#[test]
fn shards_give_each_leaf_the_crl_it_names_and_openssl_downloads_it() {
    let shards = 3;
    let ca = ActiveCa::start_with(|config| config["crl"]["shards"] = shards.into());
    let base = format!("http://127.0.0.1:{}/1.0/crls/", ca.http_port);
    // Leaves until two share a shard and one is elsewhere (serials are random).
    let mut by_shard: std::collections::BTreeMap<u16, Vec<(String, String)>> = Default::default();
    for i in 0..30 {
        let name = format!("leaf{i}");
        let serial = ca.certificate(&name);
        let file = format!("{name}.crt");
        let url = crl_url_of(&ca, &file);
        let index: u16 = url
            .strip_prefix(&base)
            .unwrap_or_else(|| panic!("{file} carries {url}, not a shard of {base}"))
            .parse()
            .unwrap();
        assert!(index < shards, "{url}");
        let text = ca.openssl(&["x509", "-in", &file, "-noout", "-text"]);
        assert!(
            !text.contains("Freshest CRL"),
            "a shard has no delta:\n{text}"
        );
        by_shard.entry(index).or_default().push((file, serial));
        if by_shard.values().any(|v| v.len() >= 2) && by_shard.len() >= 2 {
            break;
        }
    }
    let (&shard, leaves) = by_shard.iter().find(|(_, v)| v.len() >= 2).unwrap();
    let (revoked, revoked_serial) = leaves[0].clone();
    let (sibling, _) = leaves[1].clone();
    let (elsewhere, _) = by_shard
        .iter()
        .find(|(s, _)| **s != shard)
        .map(|(_, v)| v[0].clone())
        .unwrap();
    for leaf in [&revoked, &sibling, &elsewhere] {
        let (ok, out) = verify_downloading(&ca, leaf, false);
        assert!(ok, "{leaf} before any revocation: {out}");
    }

    let path = format!("/1.0/crls/{shard}");
    let before = ca.crl_number(&path);
    ca.revoke(&revoked_serial, "superseded");
    wait_for("the revocation to reach its shard", || {
        ca.crl_number(&path) > before
    });
    let (ok, out) = verify_downloading(&ca, &revoked, false);
    assert!(!ok && out.contains("certificate revoked"), "{out}");
    for leaf in [&sibling, &elsewhere] {
        let (ok, out) = verify_downloading(&ca, leaf, false);
        assert!(ok, "{leaf}: {out}");
    }
    // The shard's CRL is scoped by its URL; the complete CRL lists everything, unscoped.
    pem_crl(&ca.get(&path).body, &ca.work.join("shard.pem"));
    let shard_text = ca.openssl(&["crl", "-in", "shard.pem", "-noout", "-text"]);
    assert!(
        shard_text.contains("Issuing Distribution Point"),
        "{shard_text}"
    );
    assert!(
        shard_text.contains(&format!("URI:{base}{shard}")),
        "{shard_text}"
    );
    assert!(shard_text.contains("Superseded"), "{shard_text}");
    pem_crl(&ca.get("/1.0/crl").body, &ca.work.join("full.pem"));
    let (ok, out) = ca.verify_with_crls(&revoked, "full.pem", false);
    assert!(!ok && out.contains("certificate revoked"), "{out}");
    let other = ca.get(&format!(
        "/1.0/crls/{}",
        by_shard.keys().find(|s| **s != shard).unwrap()
    ));
    pem_crl(&other.body, &ca.work.join("other.pem"));
    let other_text = ca.openssl(&["crl", "-in", "other.pem", "-noout", "-text"]);
    let hex = format!("{:X}", revoked_serial.parse::<u128>().unwrap());
    assert!(!other_text.contains(&hex), "{other_text}");

    // The root's CRL, which the intermediate names, is served too: the whole chain checks
    // (`-crl_check_all` wants a CRL for the self-signed root as well, which only the root's
    // own CRL gives, and the root carries no URL: hence -CRLfile rather than -crl_download).
    let root_crl_url = crl_url_of(&ca, &ca.path("intermediate"));
    assert_eq!(
        root_crl_url,
        format!("http://127.0.0.1:{}/1.0/root.crl", ca.http_port)
    );
    let root_crl = ca.get("/1.0/root.crl");
    assert_eq!(root_crl.status, 200);
    assert!(root_crl.headers.contains("application/pkix-crl"));
    pem_crl(&root_crl.body, &ca.work.join("root-crl.pem"));
    let (ok, out) = verify_chain_with_crls(&ca, &sibling, &["root-crl.pem", "shard.pem"]);
    assert!(ok, "-crl_check_all: {out}");

    // Shards that do not exist, or not in their one spelling: 404 with a JSON body.
    for bad in [
        format!("/1.0/crls/{shards}"),
        "/1.0/crls/4096".into(),
        "/1.0/crls/01".into(),
        "/1.0/crls/-1".into(),
        "/1.0/crls/x".into(),
    ] {
        let response = ca.get(&bad);
        assert_eq!(response.status, 404, "{bad}");
        let body: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
        assert!(
            body["message"].as_str().unwrap().contains("no CRL shard"),
            "{bad}: {body}"
        );
    }
}

/// A certificate carries its CRL URL for life: after the CA's URLs change, one issued before
/// still finds a CRL that speaks for it, both the complete one and its shard's.
#[test]
fn a_leaf_issued_before_a_url_change_still_checks() {
    let mut ca = ActiveCa::start_with(|config| config["crl"]["shards"] = 2.into());
    let old_serial = ca.certificate("old");
    let old_url = crl_url_of(&ca, "old.crt");
    assert!(old_url.starts_with("http://127.0.0.1:"), "{old_url}");

    // The first DNS name is the host of every URL: put another name first.
    let config_path = ca.home.join("config/ca.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&config_path).unwrap()).unwrap();
    config["dnsNames"] = serde_json::json!(["localhost", "127.0.0.1"]);
    std::fs::write(&config_path, config.to_string()).unwrap();
    ca.restart();
    ca.certificate("new");
    let new_url = crl_url_of(&ca, "new.crt");
    assert!(new_url.starts_with("http://localhost:"), "{new_url}");

    ca.revoke(&old_serial, "keyCompromise");
    let old_path = old_url
        .split_once("/1.0/")
        .map(|(_, p)| format!("/1.0/{p}"))
        .unwrap();
    let hex = format!("{:X}", old_serial.parse::<u128>().unwrap());
    wait_for("the revocation to reach the old leaf's shard", || {
        pem_crl(&ca.get(&old_path).body, &ca.work.join("old-shard.pem"));
        ca.openssl(&["crl", "-in", "old-shard.pem", "-noout", "-text"])
            .contains(&hex)
    });
    // The shard's IDP lists the URL the old leaf carries beside today's.
    let text = ca.openssl(&["crl", "-in", "old-shard.pem", "-noout", "-text"]);
    assert!(text.contains(&format!("URI:{old_url}")), "{text}");
    let (ok, out) = verify_downloading(&ca, "old.crt", false);
    assert!(
        !ok && out.contains("certificate revoked"),
        "old leaf: {out}"
    );
    let (ok, out) = verify_downloading(&ca, "new.crt", false);
    assert!(ok, "new leaf: {out}");
    pem_crl(&ca.get("/1.0/crl").body, &ca.work.join("full.pem"));
    let (ok, out) = ca.verify_with_crls("old.crt", "full.pem", false);
    assert!(
        !ok && out.contains("certificate revoked"),
        "complete CRL: {out}"
    );

    // webpki matches the CRL's IDP against the certificate's CDP, as RFC 5280 6.3.3 says.
    let der = |file: &str| {
        let pem = std::fs::read(ca.work.join(file)).unwrap();
        pem::parse(pem).unwrap().into_contents()
    };
    let shard_der = ca.get(&old_path).body;
    let root_der = der(&ca.path("root"));
    let intermediate_der = der(&ca.path("intermediate"));
    let verdict = webpki_check(&root_der, &intermediate_der, &der("old.crt"), &shard_der);
    assert!(
        matches!(verdict, Err(webpki::Error::CertRevoked)),
        "webpki on the old leaf with its shard: {verdict:?}"
    );
    let full_der = ca.get("/1.0/crl").body;
    let verdict = webpki_check(&root_der, &intermediate_der, &der("old.crt"), &full_der);
    assert!(
        matches!(verdict, Err(webpki::Error::CertRevoked)),
        "webpki on the old leaf with the complete CRL: {verdict:?}"
    );
    let verdict = webpki_check(&root_der, &intermediate_der, &der("new.crt"), &full_der);
    assert!(verdict.is_ok(), "webpki on the new leaf: {verdict:?}");
}

/// rustls-webpki's path building with `crl` as the only revocation source, checking the leaf
/// only (the root CRL is another test's).
fn webpki_check(
    root: &[u8],
    intermediate: &[u8],
    leaf: &[u8],
    crl: &[u8],
) -> Result<(), webpki::Error> {
    use rustls::pki_types::{CertificateDer, UnixTime};
    let root = CertificateDer::from(root.to_vec());
    let anchor = webpki::anchor_from_trusted_cert(&root)?;
    let leaf = CertificateDer::from(leaf.to_vec());
    let end_entity = webpki::EndEntityCert::try_from(&leaf)?;
    let crl = webpki::CertRevocationList::from(webpki::OwnedCertRevocationList::from_der(crl)?);
    let crls = [&crl];
    let revocation = webpki::RevocationOptionsBuilder::new(&crls)
        .map_err(|_| webpki::Error::UnsupportedRevocationReason)?
        .with_depth(webpki::RevocationCheckDepth::EndEntity)
        .with_status_policy(webpki::UnknownStatusPolicy::Deny)
        .build();
    end_entity
        .verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &[anchor],
            &[CertificateDer::from(intermediate.to_vec())],
            UnixTime::now(),
            webpki::KeyUsage::server_auth(),
            Some(revocation),
            None,
        )
        .map(|_| ())
}

/// `mayfly ca root-crl` re-signs the root CRL offline; mayfly-ca serves the new file at once,
/// and a revoked intermediate fails `-crl_check_all`.
#[test]
fn the_root_crl_is_re_signed_offline_and_served_without_a_restart() {
    let ca = ActiveCa::start();
    ca.certificate("svc");
    let first = ca.get("/1.0/root.crl").body;
    pem_crl(&first, &ca.work.join("root-crl-1.pem"));
    let text = ca.openssl(&["crl", "-in", "root-crl-1.pem", "-noout", "-text"]);
    assert!(text.contains("No Revoked Certificates"), "{text}");

    // Refusals change nothing.
    let intermediate = ca.path("intermediate");
    for (args, expected) in [
        (
            vec!["--revoke", &intermediate, "--reasonCode", "certificateHold"],
            "cannot revoke an intermediate",
        ),
        (vec!["--revoke", "svc.crt"], "is not issued by the root"),
        (vec!["--lifetime", "0s"], "--lifetime must be longer than 0"),
        (vec!["--lifetime", "soon"], "--lifetime"),
        (vec!["--reasonCode", "sometimes"], "not an RFC 5280 reason"),
    ] {
        let mut full = vec!["ca", "root-crl", "--password-file", "pw.txt"];
        full.extend(args);
        support::mayfly_err(&ca.home, &ca.work, &full, expected);
        assert_eq!(
            std::fs::read(ca.home.join("certs/root_ca.crl")).unwrap(),
            first
        );
    }

    ca.mayfly(&[
        "ca",
        "root-crl",
        "--password-file",
        "pw.txt",
        "--revoke",
        &intermediate,
        "--reasonCode",
        "cACompromise",
    ]);
    let second = ca.get("/1.0/root.crl").body;
    assert_ne!(second, first);
    pem_crl(&second, &ca.work.join("root-crl-2.pem"));
    let text = ca.openssl(&["crl", "-in", "root-crl-2.pem", "-noout", "-text"]);
    assert!(text.contains("CA Compromise"), "{text}");
    let leaf_crl = ca.get("/1.0/crl").body;
    pem_crl(&leaf_crl, &ca.work.join("leaf-crl.pem"));
    let (ok, out) = verify_chain_with_crls(&ca, "svc.crt", &["root-crl-2.pem", "leaf-crl.pem"]);
    assert!(!ok && out.contains("certificate revoked"), "{out}");

    // Signing again keeps the entry (the file is the root CRL's only record).
    ca.mayfly(&["ca", "root-crl", "--password-file", "pw.txt"]);
    pem_crl(
        &ca.get("/1.0/root.crl").body,
        &ca.work.join("root-crl-3.pem"),
    );
    let text = ca.openssl(&["crl", "-in", "root-crl-3.pem", "-noout", "-text"]);
    assert!(text.contains("CA Compromise"), "{text}");

    // A file that is not the root's CRL is not served.
    std::fs::write(ca.home.join("certs/root_ca.crl"), &leaf_crl).unwrap();
    let response = ca.get("/1.0/root.crl");
    assert_eq!(response.status, 500, "{}", response.headers);
}

/// A plain nginx serving `root` on 127.0.0.1:`port` the way docs/PUBLICATION.md configures it.
struct Nginx {
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Nginx {
    fn serve(nginx: &Path, root: &Path, port: u16) -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("nginx.conf");
        let prefix = dir.path().display().to_string();
        std::fs::write(
            &conf,
            format!(
                "daemon off;\nmaster_process off;\nworker_processes 1;\npid {prefix}/nginx.pid;\n\
                 error_log {prefix}/error.log;\nevents {{}}\nhttp {{\n access_log off;\n\
                 client_body_temp_path {prefix}/body;\n proxy_temp_path {prefix}/proxy;\n\
                 fastcgi_temp_path {prefix}/fastcgi;\n uwsgi_temp_path {prefix}/uwsgi;\n\
                 scgi_temp_path {prefix}/scgi;\n{}\n}}\n",
                include_str!("../../../docs/nginx-publication.conf")
                    .replace("127.0.0.1:80", &format!("127.0.0.1:{port}"))
                    .replace("/var/www/pki", root.to_str().unwrap())
            ),
        )
        .unwrap();
        let child = std::process::Command::new(nginx)
            .args(["-p", &prefix, "-c", conf.to_str().unwrap()])
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nginx did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Nginx { child, _dir: dir }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `mayfly ca publish` writes what relying parties fetch; with the CA stopped, nginx serves
/// the directory at the URLs the certificates carry, and openssl still tells a revoked
/// certificate from a good one, by CRL (shards, downloaded) and by OCSP (RFC 5019 GET).
#[test]
fn a_published_directory_answers_relying_parties_while_the_ca_is_down() {
    let test = "a_published_directory_answers_relying_parties_while_the_ca_is_down";
    let Some(nginx) = mayfly_testkit::program(test, "nginx", "nginx") else {
        return;
    };
    let mut ca = ActiveCa::start_with(|config| config["crl"]["shards"] = 2.into());
    let good_serial = ca.certificate("good");
    let bad_serial = ca.certificate("bad");
    ca.revoke(&bad_serial, "keyCompromise");
    ca.server.take().unwrap().stop();

    let site = ca.work.join("site");
    // Refused without a directory, or with a wrong password: nothing is written.
    support::mayfly_err(
        &ca.home,
        &ca.work,
        &["ca", "publish", "--password-file", "pw.txt"],
        "no directory to publish to",
    );
    support::write_secret(ca.work.join("wrong.txt"), "not it\n");
    support::mayfly_err(
        &ca.home,
        &ca.work,
        &[
            "ca",
            "publish",
            "--dir",
            "site",
            "--password-file",
            "wrong.txt",
        ],
        "key",
    );
    assert!(!site.join("1.0").exists());
    let out = ca.mayfly(&[
        "ca",
        "publish",
        "--dir",
        "site",
        "--password-file",
        "pw.txt",
    ]);
    assert!(out.contains("site"), "{out}");
    for file in [
        "1.0/crl",
        "1.0/crls/0",
        "1.0/crls/1",
        "1.0/root.crl",
        "1.0/intermediate.crt",
        "roots.pem",
    ] {
        assert!(site.join(file).is_file(), "{file} missing");
    }
    // The web server reads what the CA wrote; the tempdir is private to its owner.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&ca.work, std::fs::Permissions::from_mode(0o755)).unwrap();
    let _nginx = Nginx::serve(&nginx, &site, ca.http_port);

    let (ok, out) = verify_downloading(&ca, "bad.crt", false);
    assert!(!ok && out.contains("certificate revoked"), "{out}");
    let (ok, out) = verify_downloading(&ca, "good.crt", false);
    assert!(ok, "{out}");
    let crl = ca.get("/1.0/crl");
    assert_eq!(crl.status, 200);
    assert!(
        crl.headers.contains("application/pkix-crl"),
        "{}",
        crl.headers
    );

    // OCSP: openssl's own request, sent as RFC 5019 GET, finds its pre-signed response.
    let intermediate = ca.path("intermediate");
    let root = ca.path("root");
    for (leaf, serial, expected) in [
        ("good.crt", &good_serial, "good"),
        ("bad.crt", &bad_serial, "revoked"),
    ] {
        ca.openssl(&[
            "ocsp",
            "-issuer",
            &intermediate,
            "-cert",
            leaf,
            "-no_nonce",
            "-reqout",
            "req.der",
        ]);
        let request = std::fs::read(ca.work.join("req.der")).unwrap();
        for encoded in [
            base64_encode(&request),
            base64_encode(&request)
                .replace('/', "%2F")
                .replace('+', "%2B")
                .replace('=', "%3D"),
        ] {
            let response = ca.get(&format!("/ocsp/{encoded}"));
            assert_eq!(response.status, 200, "{leaf} {serial} at {encoded}");
            assert!(
                response.headers.contains("application/ocsp-response"),
                "{}",
                response.headers
            );
            std::fs::write(ca.work.join("resp.der"), &response.body).unwrap();
            let out = ca.openssl(&[
                "ocsp",
                "-respin",
                "resp.der",
                "-issuer",
                &intermediate,
                "-cert",
                leaf,
                "-CAfile",
                &root,
            ]);
            assert!(out.contains(&format!("{leaf}: {expected}")), "{out}");
            assert!(out.contains("Response verify OK"), "{out}");
        }
    }
}

/// ca.json `publication.dir`: mayfly-ca keeps the copy itself, and a revocation reaches it
/// (CRL shard and OCSP response) within seconds, without a full rewrite.
#[test]
fn mayfly_ca_keeps_the_published_copy_current() {
    let mut site = PathBuf::new();
    let ca = ActiveCa::start_with(|config| {
        config["crl"]["shards"] = 2.into();
        config["publication"] = serde_json::json!({"dir": "site", "interval": "1h"});
    });
    site.push(ca.work.join("site"));
    wait_for("the first copy", || site.join("1.0/crl").is_file());
    let serial = ca.certificate("svc");
    let url = crl_url_of(&ca, "svc.crt");
    let path = url
        .split_once("/1.0/")
        .map(|(_, p)| format!("1.0/{p}"))
        .unwrap();
    ca.revoke(&serial, "cessationOfOperation");
    let hex = format!("{:X}", serial.parse::<u128>().unwrap());
    wait_for("the revocation in the copy's shard", || {
        let Ok(der) = std::fs::read(site.join(&path)) else {
            return false;
        };
        pem_crl(&der, &ca.work.join("copy.pem"));
        ca.openssl(&["crl", "-in", "copy.pem", "-noout", "-text"])
            .contains(&hex)
    });
    // The certificate was issued after the full copy (interval 1h), so its OCSP response was
    // written when it was revoked.
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
    let encoded = base64_encode(&request);
    let mut file = site.join("ocsp");
    for part in encoded.split('/').filter(|p| !p.is_empty()) {
        file.push(part);
    }
    if encoded.ends_with('/') {
        file.push("index.der");
    }
    wait_for("the revoked certificate's OCSP response", || file.is_file());
    let root = ca.path("root");
    let out = ca.openssl(&[
        "ocsp",
        "-respin",
        file.to_str().unwrap(),
        "-issuer",
        &intermediate,
        "-cert",
        "svc.crt",
        "-CAfile",
        &root,
    ]);
    assert!(out.contains("svc.crt: revoked"), "{out}");
}
