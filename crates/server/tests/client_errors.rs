//! The client's errors: one line each, no file left behind, and a bootstrap that trusts only
//! the root whose fingerprint it was given.

mod support;

use support::ca::DevCa;
use support::{create_csr, mayfly, mayfly_err, mayfly_ok};

#[test]
fn client_errors_are_one_line_and_leave_no_files() {
    let ca = DevCa::start();
    let (client, work, dev) = (ca.client.clone(), ca.work(), &ca.dev);

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
    dev.bootstrap(&client, work);
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
    create_csr(&client, work, ["svc.internal", "svc.csr", "svc.key"], &[]);
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
    ca.certificate(["svc.internal", "taken.crt", "new.key"], &["--force"]);
    // No terminal: missing values are errors, not prompts.
    mayfly_err(
        &work.join("other"),
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
