//! A CA made by `mayfly ca init` with everything observable switched on, and raw HTTP and TLS
//! clients to poke at its listeners: for the observability and limits tests.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::{Server, ServerOptions, mayfly, mayfly_ok, require_tool, write_secret};

pub const CA_PASSWORD: &str = "observability CA password 7f3a";
pub const PROVISIONER_PASSWORD: &str = "observability provisioner password 91c2";

/// A CA made by `mayfly ca init --ssh`, with an admin provisioner, CRLs and OCSP on a
/// plain-HTTP listener, and `/metrics`; `adjust` changes ca.json before the start.
pub struct ObservedCa {
    pub server: Option<Server>,
    pub home: PathBuf,
    pub work: PathBuf,
    pub port: u16,
    pub http_port: u16,
    pub metrics_port: u16,
    pub log: PathBuf,
    _tmp: tempfile::TempDir,
}

impl ObservedCa {
    pub fn start(adjust: impl FnOnce(&mut Value)) -> ObservedCa {
        require_tool("openssl", "openssl");
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("mayfly");
        let work = tmp.path().join("work");
        std::fs::create_dir_all(&work).unwrap();
        write_secret(work.join("pw.txt"), format!("{CA_PASSWORD}\n"));
        write_secret(
            work.join("prov-pw.txt"),
            format!("{PROVISIONER_PASSWORD}\n"),
        );
        let port = super::free_port();
        mayfly_ok(
            &home,
            &work,
            &[
                "ca",
                "init",
                "--name",
                "Observed",
                "--dns",
                "127.0.0.1",
                "--address",
                &format!("127.0.0.1:{port}"),
                "--provisioner",
                "ops",
                "--password-file",
                "pw.txt",
                "--provisioner-password-file",
                "prov-pw.txt",
                "--ssh",
            ],
        );
        let http_port = super::free_port();
        let metrics_port = super::free_port();
        let config_path = home.join("config/ca.json");
        let mut config: Value =
            serde_json::from_str(&std::fs::read_to_string(&config_path).unwrap()).unwrap();
        config["insecureAddress"] = format!("127.0.0.1:{http_port}").into();
        config["metricsAddress"] = format!("127.0.0.1:{metrics_port}").into();
        config["authority"]["provisioners"][0]["admin"] = true.into();
        adjust(&mut config);
        std::fs::write(&config_path, config.to_string()).unwrap();
        let log = tmp.path().join("mayfly-ca.log");
        let mut ca = ObservedCa {
            server: None,
            home,
            work,
            port,
            http_port,
            metrics_port,
            log,
            _tmp: tmp,
        };
        ca.restart();
        ca
    }

    pub fn restart(&mut self) {
        if let Some(server) = self.server.take() {
            server.stop();
        }
        let config = self.home.join("config/ca.json");
        let options = ServerOptions {
            cwd: Some(&self.work),
            env: vec![("MAYFLY_LOG", "debug".into())],
            log_file: Some(&self.log),
        };
        self.server = Some(Server::start_with(
            &[
                config.to_str().unwrap(),
                "--password-file",
                "pw.txt",
                "--log-format",
                "json",
            ],
            &self.home,
            &options,
            "serving metrics on",
        ));
    }

    /// `mayfly ARGS` in the work directory; stdout on success. Its stderr goes to `errors`.
    pub fn mayfly(&self, args: &[&str], errors: &mut String) -> String {
        let out = mayfly(&self.home, &self.work, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        errors.push_str(&stderr);
        assert!(out.status.success(), "mayfly {args:?} failed: {stderr}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `mayfly ARGS`, which must fail with `expected` in its message (kept in `errors`).
    pub fn mayfly_fails(&self, args: &[&str], expected: &str, errors: &mut String) {
        let out = mayfly(&self.home, &self.work, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        errors.push_str(&stderr);
        assert!(!out.status.success(), "mayfly {args:?} should fail");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }

    pub fn file(&self, name: &str) -> String {
        self.work.join(name).to_str().unwrap().to_owned()
    }

    pub fn root(&self) -> PathBuf {
        self.home.join("certs/root_ca.crt")
    }

    /// The serial of a certificate file, decimal.
    pub fn serial(&self, name: &str) -> String {
        let (ok, text) = super::run(
            "openssl",
            &["x509", "-in", &self.file(name), "-noout", "-serial"],
            &self.work,
        );
        assert!(ok, "{text}");
        let hex = text.trim().trim_start_matches("serial=");
        u128::from_str_radix(hex, 16).unwrap().to_string()
    }

    /// The `/metrics` exposition, parsed as Prometheus parses it ([`scrape`]).
    pub fn scrape(&self) -> Vec<Sample> {
        scrape(self.metrics_port, &self.work)
    }
}

/// One sample of a scrape: name, labels, value.
pub type Sample = (String, serde_json::Map<String, Value>, f64);

/// Scrapes `/metrics` on `port` and parses it with Prometheus' Python parser into samples; the
/// parser refusing the text fails the test. `work` holds the scraped text.
pub fn scrape(port: u16, work: &Path) -> Vec<Sample> {
    let (status, _, body) = plain_http(port, "GET /metrics HTTP/1.1\r\n");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let path = work.join("metrics.txt");
    std::fs::write(&path, &body).unwrap();
    let script = "import json, sys\n\
        from prometheus_client.parser import text_string_to_metric_families\n\
        text = open(sys.argv[1]).read()\n\
        out = []\n\
        for family in text_string_to_metric_families(text):\n\
        \x20   for s in family.samples:\n\
        \x20       out.append([s.name, s.labels, s.value])\n\
        print(json.dumps(out))\n";
    let output = std::process::Command::new("python3")
        .args(["-c", script, path.to_str().unwrap()])
        .output()
        .expect("python3 is required (with prometheus_client from PyPI)");
    assert!(
        output.status.success(),
        "the Prometheus parser refused /metrics: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&body)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The sum of the samples named `name` whose labels include every pair of `labels`.
pub fn metric(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).and_then(Value::as_str) == Some(*v))
        })
        .map(|(_, _, value)| value)
        .sum()
}

/// One HTTP/1.1 exchange on a plain TCP port: `head` is the request line and any headers.
pub fn plain_http(port: u16, head: &str) -> (u16, String, Vec<u8>) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .write_all(format!("{head}Host: 127.0.0.1\r\nConnection: close\r\n\r\n").as_bytes())
        .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    split_response(&raw)
}

/// Status, head and body of a raw HTTP/1.1 response.
pub fn split_response(raw: &[u8]) -> (u16, String, Vec<u8>) {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    let mut body = raw[end + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = unchunk(&body);
    }
    (status, head, body)
}

fn unchunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(line_end) = body.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size =
            usize::from_str_radix(std::str::from_utf8(&body[..line_end]).unwrap().trim(), 16)
                .unwrap_or(0);
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&body[line_end + 2..line_end + 2 + size]);
        body = &body[line_end + 2 + size + 2..];
    }
}

/// A TLS client trusting `root` only.
pub fn tls_config(root: &Path) -> Arc<rustls::ClientConfig> {
    let pem = std::fs::read(root).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for block in pem::parse_many(&pem).unwrap() {
        roots
            .add(rustls::pki_types::CertificateDer::from(
                block.contents().to_vec(),
            ))
            .unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// A TLS connection to the CA at `127.0.0.1:port`, handshake done.
pub fn tls_connect(
    port: u16,
    config: &Arc<rustls::ClientConfig>,
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let connection = rustls::ClientConnection::new(Arc::clone(config), name).unwrap();
    let mut stream = rustls::StreamOwned::new(connection, tcp);
    while stream.conn.is_handshaking() {
        stream
            .conn
            .complete_io(&mut stream.sock)
            .expect("TLS handshake");
    }
    stream
}

/// Reads one response (head and a `Content-Length` body) from `stream`.
pub fn read_response(stream: &mut impl Read) -> (u16, String, Vec<u8>) {
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        let n = stream.read(&mut byte).expect("reading a response");
        assert!(n == 1, "the connection closed before a response: {raw:?}");
        raw.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&raw).into_owned();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).unwrap();
    raw.extend_from_slice(&body);
    split_response(&raw)
}

/// One request over a new TLS connection: `head` is the request line and headers (without the
/// blank line), `body` what follows.
pub fn https(
    ca: &ObservedCa,
    config: &Arc<rustls::ClientConfig>,
    head: &str,
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    let mut stream = tls_connect(ca.port, config);
    let request = format!(
        "{head}Host: 127.0.0.1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    stream.flush().unwrap();
    read_response(&mut stream)
}
