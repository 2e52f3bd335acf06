//! End to end: the real `mayfly-ca` and `mayfly` binaries, judged by real peers (openssl,
//! rustls, Python `cryptography`).

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use support::{DevInfo, Server, mayfly, mayfly_err, mayfly_ok, require_tool, run};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn openssl(args: &[&str], cwd: &Path) -> String {
    let (ok, text) = run("openssl", args, cwd);
    assert!(ok, "openssl {args:?}: {text}");
    text
}

/// Bootstraps a fresh client directory against a dev CA.
fn bootstrap(client: &Path, work: &Path, dev: &DevInfo) {
    mayfly_ok(
        client,
        work,
        &[
            "ca",
            "bootstrap",
            "--ca-url",
            &dev.url,
            "--fingerprint",
            &dev.fingerprint,
        ],
    );
}

#[test]
fn dev_mode_banner_commands_give_a_certificate_openssl_verifies() {
    require_tool("openssl", "openssl");
    let tmp = tempfile::tempdir().unwrap();
    let client = tmp.path().join("client");
    let (server, _dev) = Server::dev(tmp.path(), &client);

    // Run the banner's own commands, as a new user would paste them.
    let banner = server.lines.join("\n");
    let commands: Vec<&str> = banner
        .lines()
        .map(str::trim)
        .filter(|l| l.contains("mayfly ca ") || l.starts_with("openssl "))
        .collect();
    assert_eq!(commands.len(), 3, "{banner}");
    let bin_dir = support::client_bin().parent().unwrap().to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for command in commands {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(command)
            .env("PATH", &path)
            .env("MAYFLY_PATH", &client)
            .current_dir(tmp.path())
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{command}: {text}");
        if command.starts_with("openssl") {
            assert!(text.contains("svc.crt: OK"), "{text}");
        }
    }

    let crt = tmp.path().join("svc.crt");
    let key = tmp.path().join("svc.key");
    assert_eq!(mode(&key), 0o600);
    let text = openssl(&["x509", "-in", "svc.crt", "-noout", "-text"], tmp.path());
    for expected in [
        "Issuer: CN = Mayfly Dev Intermediate CA",
        "Subject: CN = svc.internal",
        "DNS:svc.internal",
        "TLS Web Server Authentication, TLS Web Client Authentication",
        "X509v3 Key Usage: critical\n                Digital Signature",
        "X509v3 Subject Key Identifier",
        "X509v3 Authority Key Identifier",
        "NIST CURVE: P-256",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
    // AKI of the leaf is the intermediate's SKI.
    let chain = std::fs::read_to_string(&crt).unwrap();
    let intermediate = &chain[chain.find("-----END CERTIFICATE-----").unwrap() + 26..];
    std::fs::write(tmp.path().join("int.crt"), intermediate).unwrap();
    let ski = openssl(
        &[
            "x509",
            "-in",
            "int.crt",
            "-noout",
            "-ext",
            "subjectKeyIdentifier",
        ],
        tmp.path(),
    );
    let aki = openssl(
        &[
            "x509",
            "-in",
            "svc.crt",
            "-noout",
            "-ext",
            "authorityKeyIdentifier",
        ],
        tmp.path(),
    );
    let ski_value = ski.lines().last().unwrap().trim().to_string();
    assert!(
        aki.contains(&ski_value),
        "AKI {aki} should be the intermediate SKI {ski_value}"
    );
    // 24 h validity plus the 1 minute backdate.
    let dates = openssl(
        &["x509", "-in", "svc.crt", "-noout", "-startdate", "-enddate"],
        tmp.path(),
    );
    let parse = |prefix: &str| {
        let line = dates.lines().find_map(|l| l.strip_prefix(prefix)).unwrap();
        time::PrimitiveDateTime::parse(
            line.trim().trim_end_matches(" GMT"),
            time::macros::format_description!(
                "[month repr:short] [day padding:space] [hour]:[minute]:[second] [year]"
            ),
        )
        .unwrap()
    };
    let lifetime = parse("notAfter=") - parse("notBefore=");
    assert_eq!(lifetime.whole_seconds(), 24 * 3600 + 60);
    drop(server);
}

#[test]
fn init_with_passwords_serves_tokens_once_and_survives_restart() {
    require_tool("openssl", "openssl");
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("mayfly");
    let work = tmp.path();
    support::write_secret(work.join("pw.txt"), "correct horse battery staple\n");
    support::write_secret(work.join("prov-pw.txt"), "provisioner secret\n");
    let port = support::free_port();
    let address = format!("127.0.0.1:{port}");
    let init_args = [
        "ca",
        "init",
        "--name",
        "Acme",
        "--dns",
        "127.0.0.1",
        "--dns",
        "localhost",
        "--address",
        &address,
        "--provisioner",
        "ops@acme.test",
        "--password-file",
        "pw.txt",
        "--provisioner-password-file",
        "prov-pw.txt",
    ];
    let out = mayfly_ok(&home, work, &init_args);
    let fingerprint_line = out
        .lines()
        .find(|l| l.contains("Root fingerprint:"))
        .unwrap();
    let fingerprint = fingerprint_line.rsplit(' ').next().unwrap().to_string();
    assert_eq!(fingerprint.len(), 64, "{out}");

    // Layout, modes, encryption at rest.
    for (file, expected) in [
        ("secrets/root_ca_key", 0o600),
        ("secrets/intermediate_ca_key", 0o600),
        ("config/ca.json", 0o600),
        ("certs/root_ca.crt", 0o644),
        ("secrets", 0o700),
        ("config", 0o700),
        ("db", 0o700),
    ] {
        assert_eq!(mode(&home.join(file)), expected, "{file}");
    }
    for key in ["secrets/root_ca_key", "secrets/intermediate_ca_key"] {
        let text = std::fs::read_to_string(home.join(key)).unwrap();
        assert!(
            text.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"),
            "{key}"
        );
        openssl(
            &[
                "pkey",
                "-in",
                home.join(key).to_str().unwrap(),
                "-passin",
                "file:pw.txt",
                "-noout",
            ],
            work,
        );
    }
    let root_text = openssl(
        &[
            "x509",
            "-in",
            home.join("certs/root_ca.crt").to_str().unwrap(),
            "-noout",
            "-text",
        ],
        work,
    );
    assert!(root_text.contains("CA:TRUE, pathlen:1"), "{root_text}");
    let int_text = openssl(
        &[
            "x509",
            "-in",
            home.join("certs/intermediate_ca.crt").to_str().unwrap(),
            "-noout",
            "-text",
        ],
        work,
    );
    assert!(int_text.contains("CA:TRUE, pathlen:0"), "{int_text}");
    let fp = openssl(
        &[
            "x509",
            "-in",
            home.join("certs/root_ca.crt").to_str().unwrap(),
            "-noout",
            "-fingerprint",
            "-sha256",
        ],
        work,
    );
    assert_eq!(
        fp.trim()
            .rsplit('=')
            .next()
            .unwrap()
            .replace(':', "")
            .to_lowercase(),
        fingerprint
    );

    // A second init refuses to overwrite, and changes nothing.
    let before = std::fs::read(home.join("secrets/root_ca_key")).unwrap();
    mayfly_err(&home, work, &init_args, "already exists");
    assert_eq!(
        std::fs::read(home.join("secrets/root_ca_key")).unwrap(),
        before
    );

    // The encrypted intermediate key needs its password.
    let config = home.join("config/ca.json");
    let out = std::process::Command::new(support::server_bin())
        .arg(&config)
        .env("MAYFLY_PATH", &home)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("intermediate_ca_key is encrypted") && stderr.contains("--password-file"),
        "{out:?}"
    );

    let server = Server::start(
        &[
            config.to_str().unwrap(),
            "--password-file",
            work.join("pw.txt").to_str().unwrap(),
        ],
        &home,
        None,
        "serving on",
    );
    assert_eq!(mayfly_ok(&home, work, &["ca", "health"]).trim(), "ok");

    // Token, CSR, sign: step's flow.
    let token = mayfly_ok(
        &home,
        work,
        &[
            "ca",
            "token",
            "svc.internal",
            "--password-file",
            "prov-pw.txt",
        ],
    )
    .trim()
    .to_string();
    mayfly_ok(
        &home,
        work,
        &[
            "certificate",
            "create",
            "--csr",
            "svc.internal",
            "svc.csr",
            "svc.key",
            "--no-password",
            "--insecure",
        ],
    );
    mayfly_ok(
        &home,
        work,
        &["ca", "sign", "svc.csr", "svc.crt", "--token", &token],
    );
    let root = home.join("certs/root_ca.crt");
    let verified = openssl(
        &[
            "verify",
            "-CAfile",
            root.to_str().unwrap(),
            "-untrusted",
            "svc.crt",
            "svc.crt",
        ],
        work,
    );
    assert!(verified.contains("svc.crt: OK"), "{verified}");

    // The same token again is refused, and no file is written.
    mayfly_err(
        &home,
        work,
        &["ca", "sign", "svc.csr", "again.crt", "--token", &token],
        "token was already used",
    );
    assert!(!work.join("again.crt").exists());

    // A token minted before a restart is accepted after it.
    let early = mayfly_ok(
        &home,
        work,
        &[
            "ca",
            "token",
            "svc.internal",
            "--password-file",
            "prov-pw.txt",
        ],
    )
    .trim()
    .to_string();
    server.stop();
    let server = Server::start(
        &[
            config.to_str().unwrap(),
            "--password-file",
            work.join("pw.txt").to_str().unwrap(),
        ],
        &home,
        None,
        "serving on",
    );
    mayfly_ok(
        &home,
        work,
        &[
            "ca",
            "sign",
            "svc.csr",
            "after-restart.crt",
            "--token",
            &early,
        ],
    );
    // Replay protection survives the restart too.
    mayfly_err(
        &home,
        work,
        &["ca", "sign", "svc.csr", "again.crt", "--token", &token],
        "already used",
    );

    // `ca certificate` with a wrong provisioner password: one line, no files.
    std::fs::write(work.join("wrong.txt"), "nope").unwrap();
    mayfly_err(
        &home,
        work,
        &[
            "ca",
            "certificate",
            "x.internal",
            "x.crt",
            "x.key",
            "--provisioner-password-file",
            "wrong.txt",
        ],
        "cannot decrypt the provisioner key",
    );
    assert!(!work.join("x.crt").exists() && !work.join("x.key").exists());
    drop(server);
}

#[test]
fn token_signature_verifies_with_python_cryptography() {
    require_tool("python3", "python3");
    let tmp = tempfile::tempdir().unwrap();
    let client = tmp.path().join("client");
    let (_server, dev) = Server::dev(tmp.path(), &client);
    bootstrap(&client, tmp.path(), &dev);
    let pw = dev.password_file.to_str().unwrap();
    let token = mayfly_ok(
        &client,
        tmp.path(),
        &["ca", "token", "svc.internal", "--password-file", pw],
    );
    let provisioners = mayfly_ok(&client, tmp.path(), &["ca", "provisioner", "list"]);
    std::fs::write(tmp.path().join("token"), token.trim()).unwrap();
    std::fs::write(tmp.path().join("provisioners.json"), provisioners).unwrap();
    let script = r#"
import base64, json, sys
try:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
except ImportError:
    sys.exit("python3 module cryptography is required (pip install cryptography)")
def b64(s): return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
token = open("token").read().strip()
key = json.load(open("provisioners.json"))[0]["key"]
h, p, s = token.split(".")
header = json.loads(b64(h))
assert header["alg"] == "ES256" and header["kid"] == key["kid"], header
pub = ec.EllipticCurvePublicNumbers(int.from_bytes(b64(key["x"]), "big"), int.from_bytes(b64(key["y"]), "big"), ec.SECP256R1()).public_key()
sig = b64(s)
der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
pub.verify(der, (h + "." + p).encode(), ec.ECDSA(hashes.SHA256()))
claims = json.loads(b64(p))
for claim in ["iss", "sub", "aud", "nbf", "iat", "exp", "jti", "sans", "sha"]:
    assert claim in claims, claim
assert claims["exp"] - claims["nbf"] == 300, claims
try:
    pub.verify(der, (h + "." + p + "x").encode(), ec.ECDSA(hashes.SHA256()))
    sys.exit("a tampered token verified")
except Exception:
    pass
print("verified")
"#;
    let (ok, text) = run("python3", &["-c", script], tmp.path());
    assert!(ok && text.contains("verified"), "{text}");
}

#[tokio::test]
async fn rustls_client_handshakes_with_a_server_using_an_issued_certificate() {
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tmp = tempfile::tempdir().unwrap();
    let client = tmp.path().join("client");
    let (_server, dev) = Server::dev(tmp.path(), &client);
    bootstrap(&client, tmp.path(), &dev);
    let pw = dev.password_file.to_str().unwrap().to_string();
    mayfly_ok(
        &client,
        tmp.path(),
        &[
            "ca",
            "certificate",
            "localhost",
            "tls.crt",
            "tls.key",
            "--provisioner-password-file",
            &pw,
        ],
    );

    let chain: Vec<rustls::pki_types::CertificateDer<'static>> =
        mayfly_pki::cert::certificates_from_pem(
            &std::fs::read(tmp.path().join("tls.crt")).unwrap(),
        )
        .unwrap()
        .into_iter()
        .map(Into::into)
        .collect();
    let key = mayfly_pki::keyfile::decode_private_key_pem(
        &std::fs::read(tmp.path().join("tls.key")).unwrap(),
        None,
    )
    .unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(key.pkcs8_der().to_vec().into());
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let server_config = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config));
    let serving = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut tls = acceptor.accept(tcp).await.unwrap();
        tls.write_all(b"hello").await.unwrap();
        tls.shutdown().await.unwrap();
    });

    let mut roots = rustls::RootCertStore::empty();
    for root in mayfly_pki::cert::certificates_from_pem(
        &std::fs::read(client.join("certs/root_ca.crt")).unwrap(),
    )
    .unwrap()
    {
        roots.add(root.into()).unwrap();
    }
    let client_config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector
        .connect(name, tcp)
        .await
        .expect("webpki accepts the issued chain");
    let mut greeting = Vec::new();
    tls.read_to_end(&mut greeting).await.unwrap();
    assert_eq!(greeting, b"hello");
    serving.await.unwrap();
}

#[test]
fn client_errors_are_one_line_and_leave_no_files() {
    let tmp = tempfile::tempdir().unwrap();
    let client = tmp.path().join("client");
    let work = tmp.path();
    let (_server, dev) = Server::dev(tmp.path(), &client);

    // Fingerprint unknown to the CA.
    mayfly_err(
        &client,
        work,
        &[
            "ca",
            "bootstrap",
            "--ca-url",
            &dev.url,
            "--fingerprint",
            &"ab".repeat(32),
        ],
        "404",
    );
    mayfly_err(
        &client,
        work,
        &[
            "ca",
            "bootstrap",
            "--ca-url",
            &dev.url,
            "--fingerprint",
            "xyz",
        ],
        "not a SHA-256 fingerprint",
    );
    // Unreachable CA.
    let dead = format!("https://127.0.0.1:{}", support::free_port());
    mayfly_err(
        &client,
        work,
        &[
            "ca",
            "bootstrap",
            "--ca-url",
            &dead,
            "--fingerprint",
            &dev.fingerprint,
        ],
        "cannot reach the CA",
    );
    assert!(
        !client.join("config/defaults.json").exists(),
        "no partial bootstrap"
    );

    // Not bootstrapped yet.
    mayfly_err(&client, work, &["ca", "health"], "no CA URL");
    bootstrap(&client, work, &dev);
    mayfly_err(
        &client,
        work,
        &[
            "ca",
            "bootstrap",
            "--ca-url",
            &dev.url,
            "--fingerprint",
            &dev.fingerprint,
        ],
        "already exists",
    );

    // Missing files.
    mayfly_err(
        &client,
        work,
        &["ca", "sign", "missing.csr", "out.crt", "--token", "x"],
        "cannot read missing.csr",
    );
    mayfly_err(
        &client,
        work,
        &["ca", "token", "svc", "--password-file", "missing-pw.txt"],
        "cannot read password file missing-pw.txt",
    );
    // Garbage CSR and token.
    std::fs::write(work.join("garbage.csr"), "not a csr").unwrap();
    mayfly_err(
        &client,
        work,
        &["ca", "sign", "garbage.csr", "out.crt", "--token", "x"],
        "garbage.csr",
    );
    mayfly_ok(
        &client,
        work,
        &[
            "certificate",
            "create",
            "--csr",
            "svc.internal",
            "svc.csr",
            "svc.key",
            "--no-password",
            "--insecure",
        ],
    );
    mayfly_err(
        &client,
        work,
        &["ca", "sign", "svc.csr", "out.crt", "--token", "garbage"],
        "the CA answered 401: malformed token",
    );
    // Existing outputs need --force.
    std::fs::write(work.join("taken.crt"), "keep me").unwrap();
    let pw = dev.password_file.to_str().unwrap();
    mayfly_err(
        &client,
        work,
        &[
            "ca",
            "certificate",
            "svc.internal",
            "taken.crt",
            "new.key",
            "--provisioner-password-file",
            pw,
        ],
        "already exists",
    );
    assert_eq!(
        std::fs::read_to_string(work.join("taken.crt")).unwrap(),
        "keep me"
    );
    assert!(!work.join("new.key").exists());
    mayfly_ok(
        &client,
        work,
        &[
            "ca",
            "certificate",
            "svc.internal",
            "taken.crt",
            "new.key",
            "--provisioner-password-file",
            pw,
            "--force",
        ],
    );
    // No terminal: missing values are errors, not prompts.
    mayfly_err(
        &tmp.path().join("other"),
        work,
        &["ca", "init", "--name", "X"],
        "missing --dns",
    );
    mayfly_err(&client, work, &["ca", "token", "svc"], "no terminal");
    // Several outputs of failures above left nothing behind.
    for file in ["out.crt", "again.crt"] {
        assert!(!work.join(file).exists(), "{file}");
    }
    assert!(mayfly(&client, work, &["path"]).status.success());
    assert_eq!(
        mayfly_ok(&client, work, &["path"]).trim(),
        client.display().to_string()
    );
}

#[tokio::test]
async fn bootstrap_refuses_a_root_whose_fingerprint_differs_whatever_the_server_says() {
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // A lying CA: answers every /root/{fp} with a root that has another fingerprint.
    let key = mayfly_pki::PrivateKey::generate(mayfly_pki::KeyAlgorithm::EcP256).unwrap();
    let root = mayfly_pki::cert::create_root(
        "Liar Root CA",
        &key,
        time::OffsetDateTime::now_utc() + time::Duration::days(1),
    )
    .unwrap();
    let claimed = "cd".repeat(32);
    let body = serde_json::json!({"ca": mayfly_pki::cert::certificate_pem(&root)}).to_string();
    let tls_key = mayfly_pki::PrivateKey::generate(mayfly_pki::KeyAlgorithm::EcP256).unwrap();
    let template = mayfly_pki::LeafTemplate {
        common_name: "127.0.0.1".into(),
        sans: vec![mayfly_pki::San::parse("127.0.0.1").unwrap()],
        not_before: time::OffsetDateTime::now_utc(),
        not_after: time::OffsetDateTime::now_utc() + time::Duration::hours(1),
        serial: mayfly_pki::SerialNumber::random().unwrap(),
        rsa_key: false,
        provisioner: None,
    };
    let cert = mayfly_pki::cert::create_self_signed_leaf(&template, &tls_key).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![cert.into()],
        rustls::pki_types::PrivateKeyDer::Pkcs8(tls_key.pkcs8_der().to_vec().into()),
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "https://127.0.0.1:{}",
        listener.local_addr().unwrap().port()
    );
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let body = body.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = [0u8; 4096];
                let _ = tls.read(&mut buf).await;
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(response.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    let tmp = tempfile::tempdir().unwrap();
    let client = tmp.path().join("client");
    let url2 = url.clone();
    let client2 = client.clone();
    let work = tmp.path().to_path_buf();
    let line = tokio::task::spawn_blocking(move || {
        mayfly_err(
            &client2,
            &work,
            &[
                "ca",
                "bootstrap",
                "--ca-url",
                &url2,
                "--fingerprint",
                &claimed,
            ],
            "root fingerprint mismatch",
        )
    })
    .await
    .unwrap();
    assert!(
        line.contains(&mayfly_pki::cert::fingerprint_sha256(&root)),
        "{line}"
    );
    assert!(!client.join("certs/root_ca.crt").exists());
    assert!(!client.join("config/defaults.json").exists());
}

/// Copies the directory `from` to `to`, every file readable by its owner only.
fn copy_private(from: &Path, to: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_private(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
    }
}

#[test]
fn a_step_ca_configuration_runs_unchanged() {
    require_tool("openssl", "openssl");
    let Some(vectors) = mayfly_testkit::interop_vectors("a_step_ca_configuration_runs_unchanged")
    else {
        return;
    };
    let vectors = vectors.join("certificates/ca");
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("mayfly");
    // step's tests run in the ca/ package directory, where the config's relative paths resolve.
    // The files are copied unchanged, then made private: mayfly-ca refuses a ca.json or a key
    // that every user can read, as the vectors' copies are.
    let ca_dir = tmp.path().join("ca");
    copy_private(&vectors.join("testdata"), &ca_dir.join("testdata"));
    let server = Server::start(&["testdata/ca.json"], &home, Some(&ca_dir), "serving on");
    let url = server
        .lines
        .iter()
        .find_map(|l| l.split("serving on ").nth(1))
        .unwrap()
        .trim()
        .to_string();
    let root = vectors.join("testdata/secrets/root_ca.crt");
    let fingerprint = openssl(
        &[
            "x509",
            "-in",
            root.to_str().unwrap(),
            "-noout",
            "-fingerprint",
            "-sha256",
        ],
        tmp.path(),
    );
    let fingerprint = fingerprint
        .trim()
        .rsplit('=')
        .next()
        .unwrap()
        .replace(':', "")
        .to_lowercase();
    let work = tmp.path();
    mayfly_ok(
        &home,
        work,
        &[
            "ca",
            "bootstrap",
            "--ca-url",
            &url,
            "--fingerprint",
            &fingerprint,
        ],
    );
    let provisioners = mayfly_ok(&home, work, &["ca", "provisioner", "list"]);
    for name in ["max", "mike", "step-cli", "mariano", "maxey"] {
        assert!(
            provisioners.contains(&format!("\"{name}\"")),
            "{name}: {provisioners}"
        );
    }
    support::write_secret(work.join("pass.txt"), "pass");
    mayfly_ok(
        &home,
        work,
        &[
            "ca",
            "certificate",
            "127.0.0.1",
            "step.crt",
            "step.key",
            "--provisioner",
            "step-cli",
            "--provisioner-password-file",
            "pass.txt",
        ],
    );
    let verified = openssl(
        &[
            "verify",
            "-CAfile",
            root.to_str().unwrap(),
            "-untrusted",
            "step.crt",
            "step.crt",
        ],
        work,
    );
    assert!(verified.contains("step.crt: OK"), "{verified}");
    let text = openssl(&["x509", "-in", "step.crt", "-noout", "-issuer"], work);
    assert!(text.contains("Smallstep Test Intermediate CA"), "{text}");
    drop(server);
}

#[test]
fn every_command_has_help() {
    let tmp = tempfile::tempdir().unwrap();
    let commands: &[&[&str]] = &[
        &[],
        &["ca"],
        &["ca", "init"],
        &["ca", "bootstrap"],
        &["ca", "root"],
        &["ca", "roots"],
        &["ca", "health"],
        &["ca", "provisioner"],
        &["ca", "provisioner", "list"],
        &["ca", "token"],
        &["ca", "certificate"],
        &["ca", "sign"],
        &["ca", "renew"],
        &["ca", "revoke"],
        &["ca", "rekey"],
        &["ca", "crl"],
        &["ca", "certificates", "list"],
        &["ca", "certificates", "export"],
        &["ca", "audit"],
        &["certificate"],
        &["certificate", "create"],
        &["certificate", "inspect"],
        &["certificate", "fingerprint"],
        &["certificate", "verify"],
        &["crypto"],
        &["crypto", "jwt"],
        &["crypto", "change-pass"],
        &["crypto", "shamir"],
        &["path"],
    ];
    for command in commands {
        let mut args = command.to_vec();
        args.push("--help");
        let out = mayfly_ok(tmp.path(), tmp.path(), &args);
        assert!(out.contains("Usage: mayfly"), "{command:?}: {out}");
    }
    for args in [
        &["--help"][..],
        &["dev", "--help"][..],
        &["db", "--help"][..],
        &["db", "migrate", "--help"][..],
        &["db", "check", "--help"][..],
    ] {
        let out = std::process::Command::new(support::server_bin())
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success());
        assert!(String::from_utf8_lossy(&out.stdout).contains("Usage: mayfly-ca"));
    }
}

#[test]
fn tls_is_1_2_minimum_with_step_ca_cipher_suites() {
    require_tool("openssl", "openssl");
    let tmp = tempfile::tempdir().unwrap();
    let client = tmp.path().join("client");
    let (_server, dev) = Server::dev(tmp.path(), &client);
    let host = dev.url.trim_start_matches("https://").to_string();
    let attempt = |args: &[&str]| {
        let mut all = vec![
            "s_client",
            "-connect",
            host.as_str(),
            "-servername",
            "127.0.0.1",
        ];
        all.extend_from_slice(args);
        let out = std::process::Command::new("openssl")
            .args(&all)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.contains("Cipher is") && !text.contains("Cipher is (NONE)")
    };
    assert!(attempt(&["-tls1_3"]), "TLS 1.3 must work");
    assert!(
        attempt(&["-tls1_2", "-cipher", "ECDHE-ECDSA-CHACHA20-POLY1305"]),
        "step's first suite"
    );
    assert!(
        attempt(&["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"]),
        "step's second suite"
    );
    assert!(
        !attempt(&["-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-SHA"]),
        "CBC suites are not offered"
    );
    assert!(
        !attempt(&["-tls1_1", "-cipher", "ALL:@SECLEVEL=0"]),
        "TLS 1.1 is refused"
    );
}

#[test]
fn root_roots_and_rsa_certificates() {
    require_tool("openssl", "openssl");
    let tmp = tempfile::tempdir().unwrap();
    let client = tmp.path().join("client");
    let work = tmp.path();
    let (_server, dev) = Server::dev(tmp.path(), &client);
    bootstrap(&client, work, &dev);
    let expected = std::fs::read_to_string(client.join("certs/root_ca.crt")).unwrap();
    assert_eq!(mayfly_ok(&client, work, &["ca", "root"]), expected);
    mayfly_ok(&client, work, &["ca", "root", "root.crt"]);
    assert_eq!(
        std::fs::read_to_string(work.join("root.crt")).unwrap(),
        expected
    );
    mayfly_err(&client, work, &["ca", "root", "root.crt"], "already exists");
    assert_eq!(mayfly_ok(&client, work, &["ca", "roots"]), expected);

    let pw = dev.password_file.to_str().unwrap();
    mayfly_ok(
        &client,
        work,
        &[
            "ca",
            "certificate",
            "rsa.internal",
            "rsa.crt",
            "rsa.key",
            "--kty",
            "RSA",
            "--size",
            "2048",
            "--provisioner-password-file",
            pw,
        ],
    );
    let text = openssl(&["x509", "-in", "rsa.crt", "-noout", "-text"], work);
    assert!(
        text.contains("Digital Signature, Key Encipherment"),
        "{text}"
    );
    assert!(text.contains("Public-Key: (2048 bit)"), "{text}");
    mayfly_ok(
        &client,
        work,
        &[
            "ca",
            "certificate",
            "ed.internal",
            "ed.crt",
            "ed.key",
            "--kty",
            "OKP",
            "--provisioner-password-file",
            pw,
            "--san",
            "ed.internal",
            "--san",
            "10.1.2.3",
            "--not-after",
            "1h",
        ],
    );
    let text = openssl(&["x509", "-in", "ed.crt", "-noout", "-text"], work);
    assert!(
        text.contains("ED25519") && text.contains("IP Address:10.1.2.3"),
        "{text}"
    );
    let root = client.join("certs/root_ca.crt");
    for crt in ["rsa.crt", "ed.crt"] {
        let ok = openssl(
            &[
                "verify",
                "-CAfile",
                root.to_str().unwrap(),
                "-untrusted",
                crt,
                crt,
            ],
            work,
        );
        assert!(ok.contains(": OK"), "{ok}");
    }
    mayfly_err(
        &client,
        work,
        &[
            "ca",
            "certificate",
            "x.internal",
            "x.crt",
            "x.key",
            "--kty",
            "EC",
            "--curve",
            "P-521",
            "--provisioner-password-file",
            pw,
        ],
        "P-521",
    );
}

#[test]
fn certificate_create_profiles_build_a_chain_openssl_verifies() {
    require_tool("openssl", "openssl");
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    let home = work.join("home");
    support::write_secret(work.join("pw"), "secret");
    mayfly_ok(
        &home,
        work,
        &[
            "certificate",
            "create",
            "Test Root",
            "root.crt",
            "root.key",
            "--profile",
            "root-ca",
            "--password-file",
            "pw",
        ],
    );
    mayfly_ok(
        &home,
        work,
        &[
            "certificate",
            "create",
            "Test Intermediate",
            "int.crt",
            "int.key",
            "--profile",
            "intermediate-ca",
            "--ca",
            "root.crt",
            "--ca-key",
            "root.key",
            "--ca-password-file",
            "pw",
            "--password-file",
            "pw",
        ],
    );
    mayfly_ok(
        &home,
        work,
        &[
            "certificate",
            "create",
            "leaf.internal",
            "leaf.crt",
            "leaf.key",
            "--profile",
            "leaf",
            "--ca",
            "int.crt",
            "--ca-key",
            "int.key",
            "--ca-password-file",
            "pw",
            "--no-password",
            "--insecure",
        ],
    );
    mayfly_ok(
        &home,
        work,
        &[
            "certificate",
            "create",
            "self.internal",
            "self.crt",
            "self.key",
            "--profile",
            "self-signed",
            "--no-password",
            "--insecure",
        ],
    );
    let ok = openssl(
        &[
            "verify",
            "-x509_strict",
            "-CAfile",
            "root.crt",
            "-untrusted",
            "int.crt",
            "leaf.crt",
        ],
        work,
    );
    assert!(ok.contains("leaf.crt: OK"), "{ok}");
    // A self-signed TLS leaf is its own trust anchor; OpenSSL wants -partial_chain for a
    // certificate whose key usage has no keyCertSign. The signature is checked separately.
    let ok = openssl(
        &[
            "verify",
            "-partial_chain",
            "-CAfile",
            "self.crt",
            "self.crt",
        ],
        work,
    );
    assert!(ok.contains("self.crt: OK"), "{ok}");
    let der =
        mayfly_pki::cert::certificates_from_pem(&std::fs::read(work.join("self.crt")).unwrap())
            .unwrap();
    let (_, parsed) = x509_parser::parse_x509_certificate(&der[0]).unwrap();
    parsed
        .verify_signature(None)
        .expect("self-signed signature");
    assert_eq!(parsed.subject(), parsed.issuer());
    assert!(
        std::fs::read_to_string(work.join("root.key"))
            .unwrap()
            .contains("ENCRYPTED PRIVATE KEY")
    );
    assert!(
        std::fs::read_to_string(work.join("leaf.key"))
            .unwrap()
            .contains("BEGIN PRIVATE KEY")
    );
    assert_eq!(mode(&work.join("root.key")), 0o600);
    mayfly_err(
        &home,
        work,
        &[
            "certificate",
            "create",
            "x",
            "x.crt",
            "x.key",
            "--no-password",
        ],
        "--insecure",
    );
    mayfly_err(
        &home,
        work,
        &[
            "certificate",
            "create",
            "x",
            "x.crt",
            "x.key",
            "--no-password",
            "--insecure",
        ],
        "--ca FILE --ca-key FILE",
    );
    std::fs::write(work.join("wrong"), "wrong").unwrap();
    mayfly_err(
        &home,
        work,
        &[
            "certificate",
            "create",
            "y",
            "y.crt",
            "y.key",
            "--ca",
            "int.crt",
            "--ca-key",
            "int.key",
            "--ca-password-file",
            "wrong",
            "--no-password",
            "--insecure",
        ],
        "password is incorrect",
    );
    assert!(!work.join("y.crt").exists() && !work.join("y.key").exists());
}

#[test]
fn init_builds_on_a_root_and_key_written_by_step() {
    require_tool("openssl", "openssl");
    let Some(vectors) =
        mayfly_testkit::interop_vectors("init_builds_on_a_root_and_key_written_by_step")
    else {
        return;
    };
    let vectors = vectors.join("certificates/ca/testdata/secrets");
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    let home = work.join("home");
    support::write_secret(work.join("pw"), "new password");
    support::write_secret(work.join("step-pw"), "password");
    let root = vectors.join("root_ca.crt");
    let key = vectors.join("root_ca_key");
    mayfly_ok(
        &home,
        work,
        &[
            "ca",
            "init",
            "--name",
            "Reuse",
            "--dns",
            "127.0.0.1",
            "--address",
            "127.0.0.1:9999",
            "--provisioner",
            "admin",
            "--password-file",
            "pw",
            "--root",
            root.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
            "--key-password-file",
            "step-pw",
        ],
    );
    assert_eq!(
        std::fs::read(home.join("certs/root_ca.crt"))
            .map(|b| !b.is_empty())
            .ok(),
        Some(true)
    );
    assert!(
        !home.join("secrets/root_ca_key").exists(),
        "the existing root key is not copied"
    );
    let ok = openssl(
        &[
            "verify",
            "-CAfile",
            root.to_str().unwrap(),
            home.join("certs/intermediate_ca.crt").to_str().unwrap(),
        ],
        work,
    );
    assert!(ok.contains(": OK"), "{ok}");
    // A wrong password for step's key is refused and nothing is written.
    let other = work.join("other");
    mayfly_err(
        &other,
        work,
        &[
            "ca",
            "init",
            "--name",
            "Reuse",
            "--dns",
            "127.0.0.1",
            "--address",
            ":9999",
            "--provisioner",
            "admin",
            "--password-file",
            "pw",
            "--root",
            root.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
        ],
        "password is incorrect",
    );
    assert!(!other.exists());

    // --pki: keys and certificates only.
    let pki = work.join("pki");
    mayfly_ok(
        &pki,
        work,
        &[
            "ca",
            "init",
            "--pki",
            "--name",
            "Only",
            "--password-file",
            "pw",
        ],
    );
    assert!(
        pki.join("certs/root_ca.crt").exists() && pki.join("secrets/intermediate_ca_key").exists()
    );
    assert!(!pki.join("config/ca.json").exists() && !pki.join("config/defaults.json").exists());
}

/// docs/cli.md is generated from the binaries' own `--help`, so it cannot drift from them, and
/// it covers every command: they are found through `--help` itself, recursively.
/// `MAYFLY_BLESS=1 cargo test -p mayfly-server --test e2e cli_reference` rewrites it.
#[test]
fn cli_reference_in_docs_matches_help() {
    let mut doc = String::from(
        "# Command reference\n\nGenerated from `--help` by the test `cli_reference_in_docs_matches_help`\n\
         (`MAYFLY_BLESS=1 cargo test -p mayfly-server --test e2e cli_reference` rewrites it).\n\
         Passwords are only read from files or a terminal, never from flag values.\n",
    );
    for (name, program) in [
        ("mayfly-ca", support::server_bin()),
        ("mayfly", support::client_bin()),
    ] {
        for path in support::command_paths(&program) {
            let args: Vec<&str> = path.iter().map(String::as_str).collect();
            let title = std::iter::once(name)
                .chain(args.iter().copied())
                .collect::<Vec<_>>()
                .join(" ");
            doc.push_str(&format!(
                "\n## {title}\n\n```text\n{}```\n",
                support::help(&program, &args)
            ));
        }
    }
    let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/cli.md"));
    if std::env::var_os("MAYFLY_BLESS").is_some() {
        std::fs::write(path, &doc).unwrap();
    }
    let current = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        current == doc,
        "docs/cli.md is out of date: run MAYFLY_BLESS=1 cargo test -p mayfly-server --test e2e cli_reference"
    );
}

#[test]
fn init_asks_for_missing_values_at_a_terminal() {
    require_tool("script", "bsdutils");
    require_tool("openssl", "openssl");
    use std::io::Write;
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let command = format!("{} ca init", support::client_bin().display());
    // `script` gives the command a terminal; stdin stays open until it exits, like a person.
    let mut child = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("MAYFLY_PATH", &home)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(
            b"Pty Test\n127.0.0.1, localhost\n127.0.0.1:9443\nadmin\nsecret-pass\nsecret-pass\n",
        )
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "ca init did not finish"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    for prompt in [
        "name your new PKI",
        "DNS names or IP addresses",
        "bind to",
        "first provisioner",
        "Confirm the password",
    ] {
        assert!(text.contains(prompt), "no prompt {prompt:?} in {text}");
    }
    let config = std::fs::read_to_string(home.join("config/ca.json")).unwrap();
    assert!(
        config.contains("\"127.0.0.1:9443\"") && config.contains("\"localhost\""),
        "{config}"
    );
    let key = home.join("secrets/intermediate_ca_key");
    openssl(
        &[
            "pkey",
            "-in",
            key.to_str().unwrap(),
            "-passin",
            "pass:secret-pass",
            "-noout",
        ],
        tmp.path(),
    );
}

#[test]
fn bad_configuration_is_one_line_naming_the_file_and_field() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let cases = [
        ("{\"root\": ", "line 1"),
        (
            "{\"root\":\"r\",\"crt\":\"c\",\"key\":\"k\",\"address\":\":0\",\"dnsNames\":[]}",
            "missing field `authority`",
        ),
        (
            "{\"root\":\"missing-root.crt\",\"crt\":\"c\",\"key\":\"k\",\"address\":\":0\",\"dnsNames\":[],\"authority\":{}}",
            "root: cannot read",
        ),
        (
            "{\"root\":\"r\",\"crt\":\"c\",\"key\":\"k\",\"address\":\":0\",\"dnsNames\":[],\"authority\":{\"claims\":{\"maxTLSCertDuration\":\"30\"}}}",
            "\"30\" is not a duration",
        ),
    ];
    for (text, expected) in cases {
        let path = tmp.path().join("ca.json");
        support::write_secret(&path, text);
        let out = std::process::Command::new(support::server_bin())
            .arg(&path)
            .env("MAYFLY_PATH", &home)
            .env("MAYFLY_LOG", "off")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{text}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(path.to_str().unwrap()), "{stderr}");
        assert!(
            stderr.contains(expected),
            "{stderr:?} should contain {expected:?}"
        );
    }
    let missing = std::process::Command::new(support::server_bin())
        .arg(tmp.path().join("nope.json"))
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot read"));
    let dev_twice = tmp.path().join("dev");
    let (server, _) = Server::dev(&dev_twice, &home);
    let again = std::process::Command::new(support::server_bin())
        .args([
            "dev",
            "--dir",
            dev_twice.join("ca").to_str().unwrap(),
            "--address",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds a CA"));
    drop(server);
}

#[test]
fn token_flags_shape_the_token() {
    let tmp = tempfile::tempdir().unwrap();
    let client = tmp.path().join("client");
    let work = tmp.path();
    let (_server, dev) = Server::dev(tmp.path(), &client);
    bootstrap(&client, work, &dev);
    let pw = dev.password_file.to_str().unwrap();
    mayfly_ok(
        &client,
        work,
        &[
            "ca",
            "token",
            "svc.internal",
            "--san",
            "svc.internal",
            "--san",
            "10.9.8.7",
            "--not-after",
            "10m",
            "--password-file",
            pw,
            "--output-file",
            "token.txt",
            "--provisioner",
            "dev",
        ],
    );
    assert_eq!(mode(&work.join("token.txt")), 0o600);
    let token = std::fs::read_to_string(work.join("token.txt")).unwrap();
    let inspect = std::process::Command::new(support::client_bin())
        .args(["crypto", "jwt", "inspect", "--insecure"])
        .stdin(std::fs::File::open(work.join("token.txt")).unwrap())
        .output()
        .unwrap();
    let shown: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    let payload = &shown["payload"];
    assert_eq!(
        payload["sans"],
        serde_json::json!(["svc.internal", "10.9.8.7"])
    );
    assert_eq!(
        payload["exp"].as_i64().unwrap() - payload["nbf"].as_i64().unwrap(),
        600
    );
    assert_eq!(payload["iss"], "dev");
    assert_eq!(payload["sha"].as_str(), Some(dev.fingerprint.as_str()));
    assert_eq!(
        payload["aud"].as_str().unwrap(),
        format!("{}/1.0/sign", dev.url)
    );
    mayfly_ok(
        &client,
        work,
        &[
            "certificate",
            "create",
            "--csr",
            "svc.internal",
            "svc.csr",
            "svc.key",
            "--no-password",
            "--insecure",
            "--san",
            "svc.internal",
            "--san",
            "10.9.8.7",
        ],
    );
    mayfly_ok(
        &client,
        work,
        &["ca", "sign", "svc.csr", "svc.crt", "--token", token.trim()],
    );
    let text = openssl(
        &["x509", "-in", "svc.crt", "-noout", "-ext", "subjectAltName"],
        work,
    );
    assert!(
        text.contains("DNS:svc.internal") && text.contains("IP Address:10.9.8.7"),
        "{text}"
    );

    // A token valid for two hours, which the CA would refuse ("token valid too long" in
    // api.rs), is not made.
    mayfly_err(
        &client,
        work,
        &[
            "ca",
            "token",
            "svc.internal",
            "--not-after",
            "2h",
            "--password-file",
            pw,
        ],
        "a token may be valid for at most 60 minutes",
    );
    mayfly_err(
        &client,
        work,
        &[
            "ca",
            "token",
            "svc.internal",
            "--provisioner",
            "nobody",
            "--password-file",
            pw,
        ],
        "no JWK provisioner named \"nobody\"",
    );
    mayfly_err(
        &client,
        work,
        &[
            "ca",
            "token",
            "svc.internal",
            "--not-after",
            "soon",
            "--password-file",
            pw,
        ],
        "--not-after \"soon\"",
    );
}

fn serial_of(client: &Path, work: &Path, crt: &str) -> String {
    let json = mayfly_ok(
        client,
        work,
        &["certificate", "inspect", crt, "--format", "json"],
    );
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    value["serial_number"].as_str().unwrap().to_string()
}

#[test]
fn renew_over_mutual_tls_and_passive_revocation() {
    require_tool("openssl", "openssl");
    let tmp = tempfile::tempdir().unwrap();
    let client = tmp.path().join("client");
    let work = tmp.path();
    let (_server, dev) = Server::dev(tmp.path(), &client);
    bootstrap(&client, work, &dev);
    let pw = dev.password_file.to_str().unwrap();
    let root = client.join("certs/root_ca.crt");
    mayfly_ok(
        &client,
        work,
        &[
            "ca",
            "certificate",
            "svc.internal",
            "svc.crt",
            "svc.key",
            "--san",
            "svc.internal",
            "--san",
            "10.0.0.9",
            "--not-after",
            "2h",
            "--provisioner-password-file",
            pw,
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
    let ok = openssl(
        &[
            "verify",
            "-CAfile",
            root.to_str().unwrap(),
            "-untrusted",
            "svc.crt",
            "svc.crt",
        ],
        work,
    );
    assert!(ok.contains("svc.crt: OK"), "{ok}");
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
    mayfly_ok(
        &client,
        work,
        &[
            "ca",
            "certificate",
            "b.internal",
            "b.crt",
            "b.key",
            "--provisioner-password-file",
            pw,
        ],
    );
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
fn renewal_daemon_keeps_a_short_lived_certificate_fresh() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("mayfly");
    let work = tmp.path();
    let config_path = short_lived_ca(&home, work);
    let start_ca = || {
        Server::start(
            &[
                config_path.to_str().unwrap(),
                "--password-file",
                work.join("pw.txt").to_str().unwrap(),
            ],
            &home,
            None,
            "serving on",
        )
    };
    let server = start_ca();
    mayfly_ok(
        &home,
        work,
        &[
            "ca",
            "certificate",
            "svc.internal",
            "svc.crt",
            "svc.key",
            "--provisioner-password-file",
            "pw.txt",
        ],
    );
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
            "sh -c 'date +%s.%N >> \"hook dir/renewals log\"'",
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

    // Three renewals, each at 2/3 of the 20 s lifetime plus at most 5 % jitter.
    wait_for(3, 60);
    let times: Vec<f64> = std::fs::read_to_string(&hook_log)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    for pair in times.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            (12.5..15.5).contains(&gap),
            "renewals {gap:.2} s apart, expected about 13.3 to 14.3 s"
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
    let _server = start_ca();
    wait_for(before + 1, 10);
    let log = std::fs::read_to_string(work.join("daemon.log")).unwrap();
    assert!(log.contains("renewal failed, retrying"), "{log}");
    let ok = openssl(
        &[
            "verify",
            "-CAfile",
            home.join("certs/root_ca.crt").to_str().unwrap(),
            "-untrusted",
            "svc.crt",
            "svc.crt",
        ],
        work,
    );
    assert!(ok.contains("svc.crt: OK"), "{ok}");
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
fn sighup_reloads_ca_json_and_keeps_the_old_one_when_the_new_one_is_broken() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("mayfly");
    let work = tmp.path();
    support::write_secret(work.join("pw.txt"), "ca password\n");
    support::write_secret(work.join("pw2.txt"), "deploy password\n");
    let address = format!("127.0.0.1:{}", support::free_port());
    mayfly_ok(
        &home,
        work,
        &[
            "ca",
            "init",
            "--name",
            "Reload",
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
    let config = home.join("config/ca.json");
    let server = Server::start(
        &[
            config.to_str().unwrap(),
            "--password-file",
            work.join("pw.txt").to_str().unwrap(),
        ],
        &home,
        None,
        "serving on",
    );
    let hup = || {
        let (ok, text) = run("kill", &["-HUP", &server.pid().to_string()], work);
        assert!(ok, "{text}");
    };
    let listed = |name: &str| {
        mayfly_ok(&home, work, &["ca", "provisioner", "list"]).contains(&format!("\"{name}\""))
    };
    let eventually = |what: &str, check: &dyn Fn() -> bool| {
        for _ in 0..50 {
            if check() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("{what} did not happen");
    };
    mayfly_ok(
        &client_csr_dir(work),
        work,
        &[
            "certificate",
            "create",
            "--csr",
            "svc.internal",
            "svc.csr",
            "svc.key",
            "--no-password",
            "--insecure",
        ],
    );

    // A provisioner added to ca.json works after SIGHUP, without a restart.
    mayfly_ok(
        &home,
        work,
        &[
            "ca",
            "provisioner",
            "add",
            "deploy",
            "--create",
            "--password-file",
            "pw2.txt",
        ],
    );
    assert!(!listed("deploy"));
    hup();
    eventually("the new provisioner appearing", &|| listed("deploy"));
    let token = mayfly_ok(
        &home,
        work,
        &[
            "ca",
            "token",
            "svc.internal",
            "--provisioner",
            "deploy",
            "--password-file",
            "pw2.txt",
        ],
    );
    mayfly_ok(
        &home,
        work,
        &["ca", "sign", "svc.csr", "a.crt", "--token", token.trim()],
    );

    // Removed and reloaded: its tokens are refused.
    let early = mayfly_ok(
        &home,
        work,
        &[
            "ca",
            "token",
            "svc.internal",
            "--provisioner",
            "deploy",
            "--password-file",
            "pw2.txt",
        ],
    );
    mayfly_ok(&home, work, &["ca", "provisioner", "remove", "deploy"]);
    hup();
    eventually("the provisioner going away", &|| !listed("deploy"));
    mayfly_err(
        &home,
        work,
        &["ca", "sign", "svc.csr", "b.crt", "--token", early.trim()],
        "no provisioner's key",
    );

    // A broken ca.json is refused on reload; the CA goes on with the configuration in force.
    let good = std::fs::read(&config).unwrap();
    std::fs::write(&config, "{ not json").unwrap();
    hup();
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(mayfly_ok(&home, work, &["ca", "health"]).trim(), "ok");
    let token = mayfly_ok(
        &home,
        work,
        &[
            "ca",
            "token",
            "svc.internal",
            "--provisioner",
            "admin",
            "--password-file",
            "pw.txt",
        ],
    );
    mayfly_ok(
        &home,
        work,
        &["ca", "sign", "svc.csr", "c.crt", "--token", token.trim()],
    );
    std::fs::write(&config, good).unwrap();
}

fn client_csr_dir(work: &Path) -> std::path::PathBuf {
    work.join("csr-home")
}

#[test]
fn rekey_and_offline_revocation() {
    require_tool("openssl", "openssl");
    let tmp = tempfile::tempdir().unwrap();
    let client = tmp.path().join("client");
    let work = tmp.path();
    let (_server, dev) = Server::dev(tmp.path(), &client);
    bootstrap(&client, work, &dev);
    let pw = dev.password_file.to_str().unwrap();
    mayfly_ok(
        &client,
        work,
        &[
            "ca",
            "certificate",
            "svc.internal",
            "svc.crt",
            "svc.key",
            "--provisioner-password-file",
            pw,
        ],
    );
    let old_key = std::fs::read(work.join("svc.key")).unwrap();
    let old_serial = serial_of(&client, work, "svc.crt");

    mayfly_err(
        &client,
        work,
        &["ca", "rekey", "svc.crt", "svc.key"],
        "use --force",
    );
    mayfly_ok(
        &client,
        work,
        &[
            "ca",
            "rekey",
            "svc.crt",
            "svc.key",
            "--out-cert",
            "new.crt",
            "--out-key",
            "new.key",
            "--kty",
            "OKP",
        ],
    );
    assert_eq!(mode(&work.join("new.key")), 0o600);
    assert_ne!(std::fs::read(work.join("new.key")).unwrap(), old_key);
    let cert_key = openssl(&["x509", "-in", "new.crt", "-noout", "-pubkey"], work);
    let new_key = openssl(&["pkey", "-in", "new.key", "-pubout"], work);
    assert_eq!(cert_key, new_key, "the new certificate is for the new key");
    let names = openssl(
        &[
            "x509",
            "-in",
            "new.crt",
            "-noout",
            "-subject",
            "-ext",
            "subjectAltName",
        ],
        work,
    );
    assert!(
        names.contains("CN = svc.internal") && names.contains("DNS:svc.internal"),
        "{names}"
    );
    let root = client.join("certs/root_ca.crt");
    let ok = openssl(
        &[
            "verify",
            "-CAfile",
            root.to_str().unwrap(),
            "-untrusted",
            "new.crt",
            "new.crt",
        ],
        work,
    );
    assert!(ok.contains("new.crt: OK"), "{ok}");
    assert_ne!(serial_of(&client, work, "new.crt"), old_serial);

    // Offline revocation writes to the store the running CA uses, and takes effect at once.
    let new_serial = serial_of(&client, work, "new.crt");
    let config = dev.ca_dir.join("config/ca.json");
    let out = mayfly_ok(
        &client,
        work,
        &[
            "ca",
            "revoke",
            &new_serial,
            "--offline",
            "--ca-config",
            config.to_str().unwrap(),
            "--reasonCode",
            "superseded",
        ],
    );
    assert!(out.contains("has been revoked"), "{out}");
    mayfly_err(
        &client,
        work,
        &["ca", "renew", "new.crt", "new.key", "--force"],
        "was revoked",
    );
    mayfly_err(
        &client,
        work,
        &[
            "ca",
            "revoke",
            &new_serial,
            "--offline",
            "--ca-config",
            config.to_str().unwrap(),
        ],
        "already revoked",
    );
    mayfly_err(
        &client,
        work,
        &[
            "ca",
            "revoke",
            "77",
            "--offline",
            "--ca-config",
            config.to_str().unwrap(),
        ],
        "no certificate with serial number 77",
    );
    // The old certificate is still valid and renewable: rekeying does not revoke it.
    mayfly_ok(
        &client,
        work,
        &["ca", "renew", "svc.crt", "svc.key", "--force"],
    );
}

#[test]
fn renewal_by_x5c_token_and_after_expiry_only_where_allowed() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("mayfly");
    let work = tmp.path();
    support::write_secret(work.join("pw.txt"), "ca password\n");
    support::write_secret(work.join("pw2.txt"), "strict password\n");
    let address = format!("127.0.0.1:{}", support::free_port());
    mayfly_ok(
        &home,
        work,
        &[
            "ca",
            "init",
            "--name",
            "X5c",
            "--dns",
            "127.0.0.1",
            "--address",
            &address,
            "--provisioner",
            "lenient",
            "--password-file",
            "pw.txt",
        ],
    );
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
    let config = home.join("config/ca.json");
    let server = Server::start(
        &[
            config.to_str().unwrap(),
            "--password-file",
            work.join("pw.txt").to_str().unwrap(),
        ],
        &home,
        None,
        "serving on",
    );
    mayfly_ok(
        &home,
        work,
        &[
            "ca",
            "certificate",
            "a.internal",
            "a.crt",
            "a.key",
            "--provisioner",
            "lenient",
            "--provisioner-password-file",
            "pw.txt",
        ],
    );
    mayfly_ok(
        &home,
        work,
        &[
            "ca",
            "certificate",
            "b.internal",
            "b.crt",
            "b.key",
            "--provisioner",
            "strict",
            "--provisioner-password-file",
            "pw2.txt",
        ],
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
    mayfly_ok(
        &home,
        work,
        &[
            "ca",
            "certificate",
            "d.internal",
            "d.crt",
            "d.key",
            "--provisioner",
            "strict",
            "--provisioner-password-file",
            "pw2.txt",
        ],
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
fn the_ca_runs_with_its_key_password_changed() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("mayfly");
    let work = tmp.path();
    support::write_secret(work.join("old.txt"), "old password\n");
    support::write_secret(work.join("new.txt"), "new password\n");
    let address = format!("127.0.0.1:{}", support::free_port());
    mayfly_ok(
        &home,
        work,
        &[
            "ca",
            "init",
            "--name",
            "Pw",
            "--dns",
            "127.0.0.1",
            "--address",
            &address,
            "--provisioner",
            "ops",
            "--password-file",
            "old.txt",
        ],
    );
    let key = home.join("secrets/intermediate_ca_key");
    mayfly_ok(
        &home,
        work,
        &[
            "crypto",
            "change-pass",
            key.to_str().unwrap(),
            "--password-file",
            "old.txt",
            "--new-password-file",
            "new.txt",
        ],
    );
    assert_eq!(mode(&key), 0o600);
    let config = home.join("config/ca.json");
    let refused = std::process::Command::new(support::server_bin())
        .args([
            config.to_str().unwrap(),
            "--password-file",
            work.join("old.txt").to_str().unwrap(),
        ])
        .env("MAYFLY_PATH", &home)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("password is incorrect"),
        "{refused:?}"
    );
    let _server = Server::start(
        &[
            config.to_str().unwrap(),
            "--password-file",
            work.join("new.txt").to_str().unwrap(),
        ],
        &home,
        None,
        "serving on",
    );
    mayfly_ok(
        &home,
        work,
        &[
            "ca",
            "certificate",
            "svc.internal",
            "svc.crt",
            "svc.key",
            "--provisioner-password-file",
            "old.txt",
        ],
    );
}

#[test]
fn change_pass_asks_before_overwriting_at_a_terminal() {
    require_tool("script", "bsdutils");
    use std::io::Write;
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    let home = work.join("home");
    support::write_secret(work.join("old"), "old password");
    support::write_secret(work.join("new"), "new password");
    mayfly_ok(
        &home,
        work,
        &[
            "certificate",
            "create",
            "x",
            "x.crt",
            "x.key",
            "--profile",
            "self-signed",
            "--password-file",
            "old",
        ],
    );
    std::fs::write(work.join("taken.key"), "keep").unwrap();
    let ask = |answer: &[u8]| {
        let command = format!(
            "{} crypto change-pass x.key --password-file old --new-password-file new --out taken.key",
            support::client_bin().display()
        );
        let mut child = std::process::Command::new("script")
            .args(["-qec", &command, "/dev/null"])
            .env("MAYFLY_PATH", &home)
            .current_dir(work)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(answer).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while child.try_wait().unwrap().is_none() {
            assert!(
                std::time::Instant::now() < deadline,
                "change-pass did not finish"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        drop(stdin);
        String::from_utf8_lossy(&child.wait_with_output().unwrap().stdout).into_owned()
    };
    let text = ask(b"n\n");
    assert!(
        text.contains("Would you like to overwrite taken.key [y/n]"),
        "{text}"
    );
    assert_eq!(
        std::fs::read_to_string(work.join("taken.key")).unwrap(),
        "keep"
    );
    ask(b"y\n");
    let written = std::fs::read_to_string(work.join("taken.key")).unwrap();
    assert!(written.contains("ENCRYPTED PRIVATE KEY"), "{written}");
    assert_eq!(mode(&work.join("taken.key")), 0o600);
}

/// A CA in `home` whose certificates last 20 s with no backdate (provisioner "ops", CA and
/// provisioner password in `work/pw.txt`), for renewal tests; returns its ca.json.
fn short_lived_ca(home: &Path, work: &Path) -> std::path::PathBuf {
    support::write_secret(work.join("pw.txt"), "ca password\n");
    let address = format!("127.0.0.1:{}", support::free_port());
    mayfly_ok(
        home,
        work,
        &[
            "ca",
            "init",
            "--name",
            "Daemon",
            "--dns",
            "127.0.0.1",
            "--address",
            &address,
            "--provisioner",
            "ops",
            "--password-file",
            "pw.txt",
        ],
    );
    let config_path = home.join("config/ca.json");
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&config_path).unwrap()).unwrap();
    config["authority"]["backdate"] = serde_json::json!("0s");
    config["authority"]["provisioners"][0]["claims"] =
        serde_json::json!({"minTLSCertDuration": "5s", "defaultTLSCertDuration": "20s"});
    std::fs::write(&config_path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
    config_path
}

#[test]
fn renew_period_sets_the_daemon_schedule() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("mayfly");
    let work = tmp.path();
    let config = short_lived_ca(&home, work);
    let _server = Server::start(
        &[
            config.to_str().unwrap(),
            "--password-file",
            work.join("pw.txt").to_str().unwrap(),
        ],
        &home,
        None,
        "serving on",
    );
    mayfly_ok(
        &home,
        work,
        &[
            "ca",
            "certificate",
            "svc.internal",
            "svc.crt",
            "svc.key",
            "--provisioner-password-file",
            "pw.txt",
        ],
    );
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
