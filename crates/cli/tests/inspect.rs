//! End-to-end tests of `mayfly certificate inspect` and `mayfly certificate fingerprint`: the
//! real binary, in a fresh directory each, on step's own certificates (interop-vectors) and on
//! certificates, CSRs and a TLS server made by `openssl`, which also judges fingerprints and
//! serial numbers.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A file of the interop vectors beside the checkout; `None` after `test` said it skipped (the
/// part that needs it), which is a failure under `MAYFLY_REQUIRE_PEERS`.
fn vector(test: &str, path: &str) -> Option<PathBuf> {
    mayfly_testkit::interop_vectors(test).map(|vectors| vectors.join(path))
}

struct Run {
    success: bool,
    stdout: String,
    stderr: String,
}

impl Run {
    #[track_caller]
    fn ok(self) -> String {
        assert!(self.success, "mayfly failed: {}", self.stderr);
        self.stdout
    }

    /// A failure is one line on stderr and nothing on stdout; returns that line.
    #[track_caller]
    fn failure(self) -> String {
        assert!(
            !self.success,
            "mayfly succeeded unexpectedly: {}",
            self.stdout
        );
        assert_eq!(self.stdout, "", "a failure must print nothing on stdout");
        assert_eq!(
            self.stderr.trim_end().lines().count(),
            1,
            "one line on stderr: {:?}",
            self.stderr
        );
        self.stderr.trim_end().to_string()
    }
}

/// Runs `mayfly` in `dir` with `MAYFLY_PATH` there too, so no real configuration leaks in.
fn mayfly(dir: &Path, args: &[&str], stdin: &[u8]) -> Run {
    mayfly_with_path(dir, &dir.join("mayfly-home"), args, stdin)
}

fn mayfly_with_path(dir: &Path, mayfly_path: &Path, args: &[&str], stdin: &[u8]) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mayfly"))
        .args(args)
        .current_dir(dir)
        .env("MAYFLY_PATH", mayfly_path)
        .env_remove("MAYFLY_CA_URL")
        .env_remove("MAYFLY_ROOT")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run mayfly");
    // The process may exit before reading its input; that is not the test's concern.
    let _ = child.stdin.take().expect("stdin").write_all(stdin);
    let output = child.wait_with_output().expect("wait for mayfly");
    Run {
        success: output.status.success(),
        stdout: String::from_utf8(output.stdout).expect("utf-8 stdout"),
        stderr: String::from_utf8(output.stderr).expect("utf-8 stderr"),
    }
}

/// Runs `openssl` in `dir`, failing the test (naming the package) if it is missing or fails.
#[track_caller]
fn openssl(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("openssl not found: install the `openssl` package");
    assert!(
        output.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn temp() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

/// `sha256 Fingerprint=AB:CD:...` → `abcd...`.
fn openssl_fingerprint(dir: &Path, cert: &Path) -> String {
    let out = openssl(
        dir,
        &[
            "x509",
            "-in",
            path_str(cert),
            "-noout",
            "-fingerprint",
            "-sha256",
        ],
    );
    let (_, value) = out
        .trim()
        .split_once('=')
        .expect("openssl fingerprint line");
    value.replace(':', "").to_ascii_lowercase()
}

/// `serial=24D7...` → its decimal value.
fn openssl_serial_decimal(dir: &Path, cert: &Path) -> String {
    let out = openssl(dir, &["x509", "-in", path_str(cert), "-noout", "-serial"]);
    let (_, hex) = out.trim().split_once('=').expect("openssl serial line");
    hex_to_decimal(hex)
}

fn hex_to_decimal(hex: &str) -> String {
    // Little-endian base-10 digits; multiply by 16 and add each nibble.
    let mut digits: Vec<u32> = vec![0];
    for nibble in hex.chars().map(|c| c.to_digit(16).expect("hex digit")) {
        let mut carry = nibble;
        for digit in digits.iter_mut() {
            let value = *digit * 16 + carry;
            *digit = value % 10;
            carry = value / 10;
        }
        while carry > 0 {
            digits.push(carry % 10);
            carry /= 10;
        }
    }
    while digits.len() > 1 && digits.last() == Some(&0) {
        digits.pop();
    }
    digits
        .iter()
        .rev()
        .map(|d| char::from_digit(*d, 10).expect("digit"))
        .collect()
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// A root CA (pathlen 1) and a leaf with every kind of SAN, both made by openssl in `dir`.
fn openssl_pki(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-subj",
            "/CN=Test Root CA",
            "-days",
            "2",
            "-addext",
            "basicConstraints=critical,CA:TRUE,pathlen:1",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-384",
            "-nodes",
            "-keyout",
            "leaf.key",
            "-out",
            "leaf.csr",
            "-subj",
            "/O=Mayfly Test",
            "-addext",
            "subjectAltName=DNS:a.example,DNS:b.example,IP:10.0.0.1,IP:127.0.0.1,IP:::1,email:ops@example.com,URI:spiffe://example/svc",
        ],
    );
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=DNS:a.example,DNS:b.example,IP:10.0.0.1,IP:127.0.0.1,IP:::1,email:ops@example.com,URI:spiffe://example/svc\n\
         keyUsage=critical,digitalSignature\n\
         extendedKeyUsage=serverAuth,clientAuth\n\
         basicConstraints=critical,CA:FALSE\n",
    )
    .expect("write leaf.ext");
    openssl(
        dir,
        &[
            "x509", "-req", "-in", "leaf.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-out",
            "leaf.crt", "-days", "1", "-extfile", "leaf.ext",
        ],
    );
}

#[test]
fn fingerprint_equals_openssls() {
    let Some(vectors) = mayfly_testkit::interop_vectors("fingerprint_equals_openssls") else {
        return;
    };
    let dir = temp();
    for fixture in [
        "certificates/authority/testdata/certs/foo.crt",
        "certificates/ca/testdata/secrets/root_ca.crt",
        "certificates/ca/testdata/secrets/intermediate_ca.crt",
        "certificates/ca/testdata/secrets/rsa_root_ca.crt",
    ] {
        let path = vectors.join(fixture);
        let ours = mayfly(
            dir.path(),
            &["certificate", "fingerprint", path_str(&path)],
            b"",
        )
        .ok();
        assert_eq!(
            ours,
            format!("{}\n", openssl_fingerprint(dir.path(), &path)),
            "{fixture}"
        );
    }
}

#[test]
fn fingerprint_reads_der_from_stdin() {
    let Some(root) = vector(
        "fingerprint_reads_der_from_stdin",
        "certificates/ca/testdata/secrets/root_ca.crt",
    ) else {
        return;
    };
    let dir = temp();
    openssl(
        dir.path(),
        &[
            "x509",
            "-in",
            path_str(&root),
            "-outform",
            "DER",
            "-out",
            "root.der",
        ],
    );
    let der = std::fs::read(dir.path().join("root.der")).expect("read root.der");
    let ours = mayfly(dir.path(), &["certificate", "fingerprint", "-"], &der).ok();
    assert_eq!(ours.trim(), openssl_fingerprint(dir.path(), &root));
}

#[test]
fn short_output_of_a_step_certificate_shows_its_provisioner() {
    let Some(foo) = vector(
        "short_output_of_a_step_certificate_shows_its_provisioner",
        "certificates/authority/testdata/certs/foo.crt",
    ) else {
        return;
    };
    let dir = temp();
    let out = mayfly(
        dir.path(),
        &["certificate", "inspect", path_str(&foo), "--short"],
        b"",
    )
    .ok();
    let serial = openssl_serial_decimal(dir.path(), &foo);
    assert_eq!(serial, "102012593071130646873265215610956555026");
    assert_eq!(
        out,
        "X.509v3 TLS Certificate (ECDSA P-256) [Serial: 1020...5026]\n\
        \x20 Subject:     foo.smallstep.com\n\
        \x20 Issuer:      Example Inc. Intermediate CA\n\
        \x20 Provisioner: step-cli [ID: 4UEL...ejvc]\n\
        \x20 Valid from:  2019-03-22T22:29:29Z\n\
        \x20         to:  2019-03-23T22:29:29Z\n"
    );
}

#[test]
fn short_output_names_roots_intermediates_and_key_types() {
    let Some(vectors) =
        mayfly_testkit::interop_vectors("short_output_names_roots_intermediates_and_key_types")
    else {
        return;
    };
    let dir = temp();
    let cases = [
        (
            "certificates/ca/testdata/secrets/root_ca.crt",
            "X.509v3 Root CA Certificate (ECDSA P-256)",
        ),
        (
            "certificates/ca/testdata/secrets/intermediate_ca.crt",
            "X.509v3 Intermediate CA Certificate (ECDSA P-256)",
        ),
        (
            "certificates/ca/testdata/secrets/rsa_root_ca.crt",
            "X.509v3 Root CA Certificate (RSA 4096)",
        ),
    ];
    for (fixture, first_line) in cases {
        let path = vectors.join(fixture);
        let out = mayfly(
            dir.path(),
            &["certificate", "inspect", path_str(&path), "--short"],
            b"",
        )
        .ok();
        assert!(out.starts_with(first_line), "{fixture}: {out}");
        assert!(
            !out.contains("Provisioner:"),
            "{fixture} has no provisioner extension: {out}"
        );
    }

    openssl_pki(dir.path());
    let out = mayfly(
        dir.path(),
        &["certificate", "inspect", "leaf.crt", "--short"],
        b"",
    )
    .ok();
    // No CN: the first SAN stands in for the subject.
    assert!(
        out.starts_with("X.509v3 TLS Certificate (ECDSA P-384) [Serial: "),
        "{out}"
    );
    assert!(out.contains("  Subject:     a.example\n"), "{out}");
    assert!(out.contains("  Issuer:      Test Root CA\n"), "{out}");
}

#[test]
fn json_output_agrees_with_openssl() {
    let dir = temp();
    openssl_pki(dir.path());
    let leaf = dir.path().join("leaf.crt");
    let out = mayfly(
        dir.path(),
        &["certificate", "inspect", "leaf.crt", "--format", "json"],
        b"",
    )
    .ok();
    let json: serde_json::Value = serde_json::from_str(&out).expect("JSON output");

    assert_eq!(json["version"], 3);
    assert_eq!(
        json["serial_number"],
        openssl_serial_decimal(dir.path(), &leaf)
    );
    assert_eq!(
        json["fingerprint_sha256"],
        openssl_fingerprint(dir.path(), &leaf)
    );
    assert_eq!(json["subject"], "O=Mayfly Test");
    assert_eq!(json["issuer"], "CN=Test Root CA");
    assert_eq!(json["signature_algorithm"], "ECDSA-SHA256");
    assert_eq!(json["subject_key_info"]["key_algorithm"], "ECDSA");
    assert_eq!(json["subject_key_info"]["key_size"], 384);
    assert_eq!(
        json["sans"]["dns_names"],
        serde_json::json!(["a.example", "b.example"])
    );
    assert_eq!(
        json["sans"]["ip_addresses"],
        serde_json::json!(["10.0.0.1", "127.0.0.1", "::1"])
    );
    assert_eq!(
        json["sans"]["email_addresses"],
        serde_json::json!(["ops@example.com"])
    );
    assert_eq!(
        json["sans"]["uris"],
        serde_json::json!(["spiffe://example/svc"])
    );
    assert_eq!(json["is_ca"], false);
    assert_eq!(json["path_len"], serde_json::Value::Null);
    assert_eq!(json["key_usage"], serde_json::json!(["digitalSignature"]));
    assert_eq!(
        json["extended_key_usage"],
        serde_json::json!(["serverAuth", "clientAuth"])
    );
    assert_eq!(json["provisioner"], serde_json::Value::Null);

    // The leaf's authority key id is the CA's subject key id, as openssl prints it.
    let ca_ski = openssl(
        dir.path(),
        &[
            "x509",
            "-in",
            "ca.crt",
            "-noout",
            "-ext",
            "subjectKeyIdentifier",
        ],
    );
    let ca_ski = ca_ski
        .lines()
        .nth(1)
        .expect("SKI line")
        .trim()
        .replace(':', "")
        .to_ascii_lowercase();
    assert_eq!(json["authority_key_id"], ca_ski);
    let validity_end = json["validity"]["end"].as_str().expect("end");
    assert!(
        validity_end.ends_with('Z') && validity_end.contains('T'),
        "{validity_end}"
    );

    let ca = mayfly(
        dir.path(),
        &["certificate", "inspect", "ca.crt", "--format", "json"],
        b"",
    )
    .ok();
    let ca: serde_json::Value = serde_json::from_str(&ca).expect("JSON output");
    assert_eq!(ca["is_ca"], true);
    assert_eq!(ca["path_len"], 1);
    assert_eq!(
        ca["key_usage"],
        serde_json::json!(["keyCertSign", "cRLSign"])
    );
    assert_eq!(ca["subject_key_id"], ca_ski);
}

#[test]
fn json_output_of_a_step_certificate_carries_the_provisioner() {
    let Some(foo) = vector(
        "json_output_of_a_step_certificate_carries_the_provisioner",
        "certificates/authority/testdata/certs/foo.crt",
    ) else {
        return;
    };
    let dir = temp();
    let out = mayfly(
        dir.path(),
        &["certificate", "inspect", path_str(&foo), "--format", "json"],
        b"",
    )
    .ok();
    let json: serde_json::Value = serde_json::from_str(&out).expect("JSON output");
    assert_eq!(json["provisioner"]["name"], "step-cli");
    assert_eq!(
        json["provisioner"]["id"],
        "4UELJx8e0aS9m0CH3fZ0EB7D5aUPICb759zALHFejvc"
    );
    assert_eq!(
        json["serial_number"],
        "102012593071130646873265215610956555026"
    );
    assert_eq!(
        json["sans"]["dns_names"],
        serde_json::json!(["foo.smallstep.com"])
    );
}

#[test]
fn text_output_is_a_full_dump() {
    let dir = temp();
    openssl_pki(dir.path());
    let leaf = dir.path().join("leaf.crt");
    let out = mayfly(dir.path(), &["certificate", "inspect", "leaf.crt"], b"").ok();
    let serial = openssl_serial_decimal(dir.path(), &leaf);
    let expected = [
        "Certificate:\n    Data:\n        Version: 3 (0x2)\n",
        &format!("        Serial Number: {serial} (0x"),
        "    Signature Algorithm: ECDSA-SHA256\n",
        "        Issuer: CN=Test Root CA\n",
        "        Subject: O=Mayfly Test\n",
        "            Public Key Algorithm: ECDSA\n                Public-Key: (384 bit)\n",
        "                Curve: P-384\n",
        "            X509v3 Subject Alternative Name:\n                DNS:a.example, DNS:b.example\n                IP Address:10.0.0.1, IP Address:127.0.0.1, IP Address:::1\n                email:ops@example.com\n                URI:spiffe://example/svc\n",
        "            X509v3 Key Usage: critical\n                Digital Signature\n",
        "            X509v3 Extended Key Usage:\n                Server Authentication, Client Authentication\n",
        "            X509v3 Basic Constraints: critical\n                CA:FALSE\n",
        "            X509v3 Authority Key Identifier:\n                keyid:",
        &format!(
            "    SHA-256 Fingerprint: {}\n",
            openssl_fingerprint(dir.path(), &leaf)
        ),
    ];
    for part in expected {
        assert!(out.contains(part), "missing {part:?} in:\n{out}");
    }

    let ca = mayfly(dir.path(), &["certificate", "inspect", "ca.crt"], b"").ok();
    assert!(
        ca.contains(
            "            X509v3 Basic Constraints: critical\n                CA:TRUE, pathlen:1\n"
        ),
        "{ca}"
    );
    assert!(
        ca.contains(
            "            X509v3 Key Usage: critical\n                Certificate Sign, CRL Sign\n"
        ),
        "{ca}"
    );

    if let Some(foo) = vector(
        "text_output_is_a_full_dump",
        "certificates/authority/testdata/certs/foo.crt",
    ) {
        let foo = mayfly(dir.path(), &["certificate", "inspect", path_str(&foo)], b"").ok();
        assert!(
            foo.contains(
                "            X509v3 Step Provisioner:\n                Type: JWK\n                Name: step-cli\n                CredentialID: 4UELJx8e0aS9m0CH3fZ0EB7D5aUPICb759zALHFejvc\n"
            ),
            "{foo}"
        );
    }
}

#[test]
fn bundles_show_every_certificate_only_with_bundle() {
    let dir = temp();
    openssl_pki(dir.path());
    let leaf = std::fs::read_to_string(dir.path().join("leaf.crt")).expect("leaf");
    let ca = std::fs::read_to_string(dir.path().join("ca.crt")).expect("ca");
    std::fs::write(dir.path().join("chain.crt"), format!("{leaf}{ca}")).expect("write chain");

    let first = mayfly(
        dir.path(),
        &["certificate", "inspect", "chain.crt", "--short"],
        b"",
    )
    .ok();
    assert_eq!(first.matches("X.509v3 ").count(), 1, "{first}");
    assert!(first.starts_with("X.509v3 TLS Certificate"), "{first}");

    let all = mayfly(
        dir.path(),
        &["certificate", "inspect", "chain.crt", "--short", "--bundle"],
        b"",
    )
    .ok();
    assert_eq!(all.matches("X.509v3 ").count(), 2, "{all}");
    assert!(all.contains("X.509v3 Root CA Certificate"), "{all}");

    let json = mayfly(
        dir.path(),
        &[
            "certificate",
            "inspect",
            "chain.crt",
            "--format",
            "json",
            "--bundle",
        ],
        b"",
    )
    .ok();
    let json: serde_json::Value = serde_json::from_str(&json).expect("JSON output");
    assert_eq!(json.as_array().map(Vec::len), Some(2), "{json}");
    assert_eq!(json[1]["subject"], "CN=Test Root CA");

    // Standard input works the same, and the fingerprint is the first certificate's.
    let from_stdin = mayfly(
        dir.path(),
        &["certificate", "inspect", "-", "--short"],
        format!("{leaf}{ca}").as_bytes(),
    )
    .ok();
    assert_eq!(from_stdin, first);
    let fingerprint = mayfly(
        dir.path(),
        &["certificate", "fingerprint", "chain.crt"],
        b"",
    )
    .ok();
    assert_eq!(
        fingerprint.trim(),
        openssl_fingerprint(dir.path(), &dir.path().join("leaf.crt"))
    );
}

#[test]
fn der_certificates_and_ed25519_keys_are_read() {
    let dir = temp();
    openssl(
        dir.path(),
        &["genpkey", "-algorithm", "ed25519", "-out", "ed.key"],
    );
    openssl(
        dir.path(),
        &[
            "req",
            "-x509",
            "-key",
            "ed.key",
            "-out",
            "ed.crt",
            "-subj",
            "/CN=ed.example",
            "-days",
            "1",
            "-outform",
            "DER",
        ],
    );
    let out = mayfly(
        dir.path(),
        &["certificate", "inspect", "ed.crt", "--short"],
        b"",
    )
    .ok();
    assert!(out.contains("(Ed25519)"), "{out}");
    assert!(out.contains("  Subject:     ed.example\n"), "{out}");
    let fingerprint = mayfly(dir.path(), &["certificate", "fingerprint", "ed.crt"], b"").ok();
    let openssl_fp = openssl(
        dir.path(),
        &[
            "x509",
            "-inform",
            "DER",
            "-in",
            "ed.crt",
            "-noout",
            "-fingerprint",
            "-sha256",
        ],
    );
    let openssl_fp = openssl_fp
        .trim()
        .split_once('=')
        .expect("fingerprint")
        .1
        .replace(':', "")
        .to_ascii_lowercase();
    assert_eq!(fingerprint.trim(), openssl_fp);
}

#[test]
fn certificate_requests_are_inspected() {
    let dir = temp();
    openssl_pki(dir.path());
    let short = mayfly(
        dir.path(),
        &["certificate", "inspect", "leaf.csr", "--short"],
        b"",
    )
    .ok();
    assert!(
        short.starts_with("X.509v3 Certificate Signing Request (ECDSA P-384)\n"),
        "{short}"
    );
    assert!(short.contains("  Signature:   valid\n"), "{short}");

    let json = mayfly(
        dir.path(),
        &["certificate", "inspect", "leaf.csr", "--format", "json"],
        b"",
    )
    .ok();
    let json: serde_json::Value = serde_json::from_str(&json).expect("JSON output");
    assert_eq!(json["subject"], "O=Mayfly Test");
    assert_eq!(
        json["sans"]["dns_names"],
        serde_json::json!(["a.example", "b.example"])
    );
    assert_eq!(
        json["sans"]["uris"],
        serde_json::json!(["spiffe://example/svc"])
    );
    assert_eq!(json["signature_valid"], true);

    let text = mayfly(dir.path(), &["certificate", "inspect", "leaf.csr"], b"").ok();
    assert!(text.starts_with("Certificate Request:\n"), "{text}");
    assert!(
        text.contains(
            "        Requested Extensions:\n            X509v3 Subject Alternative Name:\n"
        ),
        "{text}"
    );

    // step's deliberately broken CSR: shown, with its signature called out.
    if let Some(badsig) = vector(
        "certificate_requests_are_inspected",
        "certificates/authority/testdata/certs/badsig.csr",
    ) {
        let out = mayfly(
            dir.path(),
            &["certificate", "inspect", path_str(&badsig), "--short"],
            b"",
        )
        .ok();
        assert!(out.contains("  Signature:   INVALID\n"), "{out}");
    }

    let err = mayfly(dir.path(), &["certificate", "fingerprint", "leaf.csr"], b"").failure();
    assert!(err.contains("certificate request"), "{err}");
}

#[test]
fn bad_inputs_fail_with_one_line() {
    let dir = temp();
    std::fs::write(
        dir.path().join("garbage.crt"),
        "this is not a certificate\n",
    )
    .expect("write");
    std::fs::write(
        dir.path().join("key.pem"),
        "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n",
    )
    .expect("write");
    std::fs::write(
        dir.path().join("broken.crt"),
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    )
    .expect("write");
    let cases: [(&[&str], &str); 8] = [
        (
            &["certificate", "inspect", "missing.crt"],
            "cannot read missing.crt: ",
        ),
        (
            &["certificate", "fingerprint", "missing.crt"],
            "cannot read missing.crt: ",
        ),
        (
            &["certificate", "inspect", "garbage.crt"],
            "garbage.crt: no certificate found (expected PEM CERTIFICATE or DER)",
        ),
        (
            &["certificate", "fingerprint", "garbage.crt"],
            "garbage.crt: no certificate found (expected PEM CERTIFICATE or DER)",
        ),
        (
            &["certificate", "inspect", "key.pem", "--short"],
            "key.pem: no certificate found",
        ),
        (
            &["certificate", "inspect", "broken.crt"],
            "broken.crt: certificate 1 is malformed",
        ),
        (
            &["certificate", "inspect", "garbage.crt", "--insecure"],
            "apply only to https:// URLs",
        ),
        (
            &["certificate", "inspect", "http://127.0.0.1:1"],
            "https://host[:port]",
        ),
    ];
    for (args, expected) in cases {
        let err = mayfly(dir.path(), args, b"").failure();
        assert!(err.contains(expected), "{args:?}: {err}");
    }
    let err = mayfly(dir.path(), &["certificate", "inspect", "-"], b"").failure();
    assert!(err.contains("-: no certificate found"), "{err}");
}

/// `openssl s_server` on an ephemeral port, killed when dropped.
struct TlsServer {
    child: Child,
    port: u16,
}

impl TlsServer {
    fn start(dir: &Path) -> Self {
        let mut child = Command::new("openssl")
            .args([
                "s_server",
                "-accept",
                "127.0.0.1:0",
                "-cert",
                "leaf.crt",
                "-key",
                "leaf.key",
            ])
            .args(["-cert_chain", "ca.crt"])
            .current_dir(dir)
            // s_server quits when its standard input closes, so keep it open (and unused).
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl not found: install the `openssl` package");
        let stdout = child.stdout.take().expect("s_server stdout");
        let mut lines = BufReader::new(stdout).lines();
        let port = loop {
            let line = lines
                .next()
                .expect("s_server exited before accepting")
                .expect("s_server output");
            // "ACCEPT 127.0.0.1:40123"
            if let Some(address) = line.strip_prefix("ACCEPT ") {
                break address
                    .rsplit(':')
                    .next()
                    .and_then(|p| p.parse().ok())
                    .expect("port in ACCEPT line");
            }
        };
        // Drain the rest so s_server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Self { child, port }
    }

    fn url(&self, host: &str) -> String {
        format!("https://{host}:{}", self.port)
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn https_urls_show_the_servers_certificate() {
    let dir = temp();
    openssl_pki(dir.path());
    let server = TlsServer::start(dir.path());
    let url = server.url("127.0.0.1");

    let out = mayfly(
        dir.path(),
        &[
            "certificate",
            "inspect",
            &url,
            "--roots",
            "ca.crt",
            "--short",
        ],
        b"",
    )
    .ok();
    assert!(
        out.starts_with("X.509v3 TLS Certificate (ECDSA P-384)"),
        "{out}"
    );
    assert!(out.contains("  Subject:     a.example\n"), "{out}");

    // --insecure shows what the server sends without checking it; --bundle, the whole chain.
    let bundle = mayfly(
        dir.path(),
        &[
            "certificate",
            "inspect",
            &url,
            "--insecure",
            "--bundle",
            "--format",
            "json",
        ],
        b"",
    )
    .ok();
    let bundle: serde_json::Value = serde_json::from_str(&bundle).expect("JSON output");
    assert_eq!(bundle.as_array().map(Vec::len), Some(2), "{bundle}");
    assert_eq!(
        bundle[0]["fingerprint_sha256"],
        openssl_fingerprint(dir.path(), &dir.path().join("leaf.crt"))
    );
    assert_eq!(bundle[1]["subject"], "CN=Test Root CA");

    // Untrusted roots: refused, naming the problem.
    if let Some(other_root) = vector(
        "https_urls_show_the_servers_certificate",
        "certificates/ca/testdata/secrets/root_ca.crt",
    ) {
        let err = mayfly(
            dir.path(),
            &[
                "certificate",
                "inspect",
                &url,
                "--roots",
                path_str(&other_root),
            ],
            b"",
        )
        .failure();
        assert!(err.contains("does not chain to the given roots"), "{err}");
    }

    // A name the certificate does not hold: refused, saying so.
    let err = mayfly(
        dir.path(),
        &[
            "certificate",
            "inspect",
            &server.url("localhost"),
            "--roots",
            "ca.crt",
        ],
        b"",
    )
    .failure();
    assert!(err.contains("not valid for this host name"), "{err}");

    // No roots at all: a clear error, unless $MAYFLY_PATH/certs/root_ca.crt exists.
    let err = mayfly(dir.path(), &["certificate", "inspect", &url], b"").failure();
    assert!(err.contains("--roots FILE, or --insecure"), "{err}");
    let home = dir.path().join("home");
    std::fs::create_dir_all(home.join("certs")).expect("mkdir");
    std::fs::copy(dir.path().join("ca.crt"), home.join("certs/root_ca.crt")).expect("copy root");
    let out = mayfly_with_path(
        dir.path(),
        &home,
        &["certificate", "inspect", &url, "--short"],
        b"",
    )
    .ok();
    assert!(out.contains("  Issuer:      Test Root CA\n"), "{out}");
}

#[test]
fn unreachable_servers_fail_with_one_line() {
    let dir = temp();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let url = format!("https://127.0.0.1:{port}");
    let err = mayfly(
        dir.path(),
        &["certificate", "inspect", &url, "--insecure"],
        b"",
    )
    .failure();
    assert!(
        err.contains(&format!("cannot connect to 127.0.0.1:{port}")),
        "{err}"
    );
}
