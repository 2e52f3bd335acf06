//! Resource limits end to end: each limit of ca.json's `limits` block, and the fixed ones on
//! SANs and key sizes, answered with the documented status and a message that names it, and
//! counted in `/metrics`.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::observed::{
    ObservedCa, https, metric, read_response, split_response, tls_config, tls_connect,
};

/// A CA with tight limits, so that each can be reached in a test.
fn tight() -> ObservedCa {
    ObservedCa::start(|config| {
        config["limits"] = serde_json::json!({
            "maxConnections": 3,
            "maxHeaderBytes": 8192,
            "readTimeout": "1s",
            "handshakeTimeout": "1s",
            "rateLimit": { "perSecond": 1, "burst": 2 },
        });
    })
}

fn message(body: &[u8]) -> String {
    let value: serde_json::Value = serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(body)));
    value["message"].as_str().unwrap_or_default().to_owned()
}

/// Reads until the server closes the connection; returns what came and how long it took.
fn until_closed(stream: &mut impl Read) -> (Vec<u8>, Duration) {
    let started = Instant::now();
    let mut received = Vec::new();
    let mut buffer = [0u8; 1024];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => return (received, started.elapsed()),
            Ok(n) => received.extend_from_slice(&buffer[..n]),
        }
    }
}

#[test]
fn each_listener_limit_answers_as_documented() {
    let ca = tight();
    let tls = tls_config(&ca.root());

    // Unauthenticated routes: a burst of 2, then 429 with Retry-After; others are not limited.
    for _ in 0..2 {
        let (status, _, body) = https(&ca, &tls, "GET /health HTTP/1.1\r\n", b"");
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    }
    let (status, head, body) = https(&ca, &tls, "GET /1.0/provisioners HTTP/1.1\r\n", b"");
    assert_eq!(status, 429, "{head}");
    assert!(
        message(&body).contains("too many requests from 127.0.0.1"),
        "{body:?}"
    );
    assert!(
        head.to_ascii_lowercase().contains("retry-after: 1"),
        "{head}"
    );
    let (status, _, _) = https(&ca, &tls, "GET /1.0/crl HTTP/1.1\r\n", b"");
    assert_eq!(status, 200, "CRLs are not rate limited");
    let (status, _, body) = https(
        &ca,
        &tls,
        "POST /1.0/sign HTTP/1.1\r\nContent-Type: application/json\r\n",
        b"{}",
    );
    assert_eq!(status, 400, "authenticated routes are not rate limited");
    assert!(message(&body).contains("missing field"), "{body:?}");
    std::thread::sleep(Duration::from_millis(1100));
    let (status, _, _) = https(&ca, &tls, "GET /health HTTP/1.1\r\n", b"");
    assert_eq!(status, 200, "the bucket refills");

    // A request head larger than maxHeaderBytes: 431.
    let padding = "x".repeat(9000);
    let (status, _, _) = https(
        &ca,
        &tls,
        &format!("GET /1.0/crl HTTP/1.1\r\nX-Padding: {padding}\r\n"),
        b"",
    );
    assert_eq!(status, 431);

    // A body over the route's limit (128 KiB for a CSR and a token): 413 as soon as its
    // length is announced.
    let mut stream = tls_connect(ca.port, &tls);
    stream
        .write_all(
            b"POST /1.0/sign HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
              Content-Length: 131073\r\n\r\n",
        )
        .unwrap();
    stream.flush().unwrap();
    let (status, _, body) = read_response(&mut stream);
    assert_eq!(status, 413);
    assert!(
        message(&body).contains("larger than 131072 bytes"),
        "{}",
        String::from_utf8_lossy(&body)
    );

    // A body trickling in: 408 after readTimeout.
    let mut stream = tls_connect(ca.port, &tls);
    stream
        .write_all(
            b"POST /1.0/sign HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\n\r\n{\"csr\":",
        )
        .unwrap();
    stream.flush().unwrap();
    let started = Instant::now();
    let (status, head, body) = read_response(&mut stream);
    let waited = started.elapsed();
    assert_eq!(status, 408, "{head}");
    assert!(
        message(&body).contains("did not arrive within 1 s"),
        "{body:?}"
    );
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "{waited:?}"
    );

    // A request head trickling in (slowloris): the connection is closed after readTimeout.
    let mut stream = tls_connect(ca.port, &tls);
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .unwrap();
    stream.flush().unwrap();
    let (received, waited) = until_closed(&mut stream);
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    if !received.is_empty() {
        assert_eq!(split_response(&received).0, 408);
    }

    // A TLS handshake that never starts: closed after handshakeTimeout.
    let mut tcp = TcpStream::connect(("127.0.0.1", ca.port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let (received, waited) = until_closed(&mut tcp);
    assert!(received.is_empty());
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "{waited:?}"
    );

    // maxConnections: with every slot held by an idle keep-alive connection, a newcomer takes
    // the slot of one of them, which the server closes.
    std::thread::sleep(Duration::from_millis(300));
    let mut idle: Vec<_> = (0..3).map(|_| tls_connect(ca.port, &tls)).collect();
    for stream in &mut idle {
        stream
            .write_all(b"GET /1.0/crl HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .unwrap();
        stream.flush().unwrap();
        assert_eq!(read_response(stream).0, 200);
    }
    let (status, _, _) = https(&ca, &tls, "GET /1.0/crl HTTP/1.1\r\n", b"");
    assert_eq!(status, 200, "an idle connection gave way");
    let mut closed = 0;
    for stream in &mut idle {
        stream
            .sock
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut byte = [0u8; 1];
        if matches!(stream.read(&mut byte), Ok(0)) {
            closed += 1;
        }
    }
    assert!(
        closed >= 1,
        "no idle connection was closed for the newcomer"
    );
    drop(idle);
    std::thread::sleep(Duration::from_millis(300));

    // With every slot busy (bodies still arriving), a newcomer is told 503 and closed.
    let busy: Vec<_> = (0..3)
        .map(|_| {
            let mut stream = tls_connect(ca.port, &tls);
            stream
                .write_all(
                    b"POST /1.0/sign HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
                      Content-Length: 100\r\n\r\n{",
                )
                .unwrap();
            stream.flush().unwrap();
            stream
        })
        .collect();
    // Their heads must be read (they are busy from then on) before the newcomer arrives; their
    // bodies would be late only after readTimeout (1 s).
    std::thread::sleep(Duration::from_millis(200));
    let mut fourth = tls_connect(ca.port, &tls);
    fourth
        .write_all(b"GET /1.0/crl HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    fourth.flush().unwrap();
    let (status, head, body) = read_response(&mut fourth);
    assert_eq!(status, 503, "{head}");
    assert!(
        message(&body).contains("limit of 3 connections"),
        "{body:?}"
    );
    assert!(
        head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );
    drop(fourth);
    drop(busy);
    std::thread::sleep(Duration::from_millis(300));
    let (status, _, _) = https(&ca, &tls, "GET /1.0/crl HTTP/1.1\r\n", b"");
    assert_eq!(status, 200, "slots are given back");

    // Each refusal was counted by its limit.
    let samples = ca.scrape();
    for limit in [
        "rate",
        "body_size",
        "body_timeout",
        "handshake_timeout",
        "connections",
    ] {
        assert!(
            metric(&samples, "mayfly_limited_total", &[("limit", limit)]) >= 1.0,
            "{limit} was not counted"
        );
    }
}

#[test]
fn oversized_requests_are_refused_naming_the_limit() {
    let ca = ObservedCa::start(|_| {});
    let mut errors = String::new();
    let token = |sans: &[String], errors: &mut String| -> String {
        let mut args = vec![
            "ca".to_owned(),
            "token".into(),
            "big.internal".into(),
            "--password-file".into(),
            "prov-pw.txt".into(),
        ];
        for san in sans {
            args.extend(["--san".to_owned(), san.clone()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ca.mayfly(&args, errors).trim().to_owned()
    };
    let openssl_csr = |name: &str, key: &str, extra: &[&str]| {
        let mut args = vec![
            "req",
            "-new",
            "-nodes",
            "-subj",
            "/CN=big.internal",
            "-keyout",
            "big.key",
            "-out",
            name,
            "-newkey",
            key,
        ];
        args.extend_from_slice(extra);
        let (ok, text) = support::run("openssl", &args, &ca.work);
        assert!(ok, "{text}");
    };

    // A token authorising 101 names: every one of them would go into the certificate.
    let many: Vec<String> = (0..101).map(|i| format!("h{i}.internal")).collect();
    let wide = token(&many, &mut errors);
    openssl_csr("plain.csr", "ec", &["-pkeyopt", "ec_paramgen_curve:P-256"]);
    ca.mayfly_fails(
        &["ca", "sign", "plain.csr", "plain.crt", "--token", &wide],
        "the token authorizes 101 subject alternative names, more than the limit of 100",
        &mut errors,
    );
    // A CSR asking for 101 names.
    let names: Vec<String> = many.iter().map(|n| format!("DNS:{n}")).collect();
    let extension = format!("subjectAltName={}", names.join(","));
    openssl_csr(
        "wide.csr",
        "ec",
        &["-pkeyopt", "ec_paramgen_curve:P-256", "-addext", &extension],
    );
    let narrow = token(&[], &mut errors);
    ca.mayfly_fails(
        &["ca", "sign", "wide.csr", "wide.crt", "--token", &narrow],
        "101 subject alternative names, more than the limit of 100",
        &mut errors,
    );
    // An RSA key below 2048 bits (above 8192 is refused the same way; see the pki tests).
    openssl_csr("weak.csr", "rsa:1024", &[]);
    ca.mayfly_fails(
        &["ca", "sign", "weak.csr", "weak.crt", "--token", &narrow],
        "RSA key of 1024 bits: at least 2048 are required",
        &mut errors,
    );
    assert!(
        !ca.work.join("plain.crt").exists()
            && !ca.work.join("wide.crt").exists()
            && !ca.work.join("weak.crt").exists(),
        "nothing was written for a refused request"
    );
}
