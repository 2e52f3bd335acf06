//! Dev mode end to end: the banner's commands as a new user pastes them, the TLS it serves,
//! and the certificates it issues, judged by openssl and rustls.

mod support;

use support::ca::DevCa;
use support::{mayfly_err, mayfly_ok, mode, openssl, require_tool, verify_chain};

#[test]
fn dev_mode_banner_commands_give_a_certificate_openssl_verifies() {
    require_tool("openssl", "openssl");
    let ca = DevCa::start();
    let (client, work) = (&ca.client, ca.work());

    // Run the banner's own commands, as a new user would paste them.
    let banner = ca.server.lines.join("\n");
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
            .env("MAYFLY_PATH", client)
            .current_dir(work)
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

    let crt = work.join("svc.crt");
    let key = work.join("svc.key");
    assert_eq!(mode(&key), 0o600);
    let text = openssl(&["x509", "-in", "svc.crt", "-noout", "-text"], work);
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
    std::fs::write(work.join("int.crt"), intermediate).unwrap();
    let ski = openssl(
        &[
            "x509",
            "-in",
            "int.crt",
            "-noout",
            "-ext",
            "subjectKeyIdentifier",
        ],
        work,
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
        work,
    );
    let ski_value = ski.lines().last().unwrap().trim().to_string();
    assert!(
        aki.contains(&ski_value),
        "AKI {aki} should be the intermediate SKI {ski_value}"
    );
    // 24 h validity plus the 1 minute backdate.
    let dates = openssl(
        &["x509", "-in", "svc.crt", "-noout", "-startdate", "-enddate"],
        work,
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
    drop(ca);
}

#[test]
fn tls_is_1_2_minimum_with_step_ca_cipher_suites() {
    require_tool("openssl", "openssl");
    let ca = DevCa::start();
    let host = ca.dev.url.trim_start_matches("https://").to_string();
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

#[tokio::test]
async fn rustls_client_handshakes_with_a_server_using_an_issued_certificate() {
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ca = DevCa::bootstrapped();
    let (client, work) = (ca.client.clone(), ca.work());
    ca.certificate(["localhost", "tls.crt", "tls.key"], &[]);

    let chain: Vec<rustls::pki_types::CertificateDer<'static>> =
        mayfly_pki::cert::certificates_from_pem(&std::fs::read(work.join("tls.crt")).unwrap())
            .unwrap()
            .into_iter()
            .map(Into::into)
            .collect();
    let key = mayfly_pki::keyfile::decode_private_key_pem(
        &std::fs::read(work.join("tls.key")).unwrap(),
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
fn root_roots_and_rsa_certificates() {
    require_tool("openssl", "openssl");
    let ca = DevCa::bootstrapped();
    let (client, work) = (ca.client.clone(), ca.work());
    let expected = std::fs::read_to_string(client.join("certs/root_ca.crt")).unwrap();
    assert_eq!(mayfly_ok(&client, work, &["ca", "root"]), expected);
    mayfly_ok(&client, work, &["ca", "root", "root.crt"]);
    assert_eq!(
        std::fs::read_to_string(work.join("root.crt")).unwrap(),
        expected
    );
    mayfly_err(&client, work, &["ca", "root", "root.crt"], "already exists");
    assert_eq!(mayfly_ok(&client, work, &["ca", "roots"]), expected);

    let pw = ca.password_file();
    ca.certificate(
        ["rsa.internal", "rsa.crt", "rsa.key"],
        &["--kty", "RSA", "--size", "2048"],
    );
    let text = openssl(&["x509", "-in", "rsa.crt", "-noout", "-text"], work);
    assert!(
        text.contains("Digital Signature, Key Encipherment"),
        "{text}"
    );
    assert!(text.contains("Public-Key: (2048 bit)"), "{text}");
    ca.certificate(
        ["ed.internal", "ed.crt", "ed.key"],
        &[
            "--kty",
            "OKP",
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
        verify_chain(&root, crt, work);
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
