//! Resource limits end to end: each limit of ca.json's `limits` block, and the fixed ones on
//! SANs and key sizes, answered with the documented status and a message that names it, and
//! counted in `/metrics`.

mod support;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::observed::{
    ObservedCa, https, metric, read_response, split_response, tls_config, tls_connect,
};

/// A CA with tight limits, so that each can be reached in a test. The handshake timeout is
/// shorter than the read timeout, so that which of the two closed a connection shows in when.
fn tight() -> ObservedCa {
    ObservedCa::start(|config| {
        config["limits"] = serde_json::json!({
            "maxConnections": 3,
            "maxHeaderBytes": 8192,
            "readTimeout": "3s",
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

    // A body trickling in: 408 after readTimeout (3 s).
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
        message(&body).contains("did not arrive within 3 s"),
        "{body:?}"
    );
    assert!(
        waited >= Duration::from_millis(2700) && waited < Duration::from_secs(8),
        "{waited:?}"
    );

    // A request head trickling in (slowloris) on an established connection: closed after
    // readTimeout (3 s), not after handshakeTimeout (1 s), which ends with the handshake.
    let mut stream = tls_connect(ca.port, &tls);
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .unwrap();
    stream.flush().unwrap();
    let (received, waited) = until_closed(&mut stream);
    assert!(
        waited >= Duration::from_millis(2700) && waited < Duration::from_secs(8),
        "{waited:?}"
    );
    if !received.is_empty() {
        assert_eq!(split_response(&received).0, 408);
    }

    // A TLS handshake that never starts: closed after handshakeTimeout (1 s), well before
    // readTimeout (3 s) would have.
    let mut tcp = TcpStream::connect(("127.0.0.1", ca.port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let (received, waited) = until_closed(&mut tcp);
    assert!(received.is_empty());
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_millis(2500),
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
    // bodies would be late only after readTimeout (3 s).
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

type TlsStream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A TCP connection to the CA from `source` (loopback has every 127.x.y.z address, so two
/// addresses are two clients on one machine).
fn connect_from(source: IpAddr, port: u16) -> TcpStream {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let tcp = runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(source, 0)).unwrap();
        let stream = socket
            .connect(SocketAddr::from(([127, 0, 0, 1], port)))
            .await
            .unwrap();
        stream.into_std().unwrap()
    });
    tcp.set_nonblocking(false).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    tcp
}

/// A TLS handshake over `tcp`: the error when the server ends it.
fn handshake(tcp: TcpStream, tls: &Arc<rustls::ClientConfig>) -> std::io::Result<TlsStream> {
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let connection = rustls::ClientConnection::new(Arc::clone(tls), name).unwrap();
    let mut stream = rustls::StreamOwned::new(connection, tcp);
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock)?;
    }
    Ok(stream)
}

/// One keep-alive request on an open connection.
fn exchange(stream: &mut TlsStream, head: &str) -> (u16, String, Vec<u8>) {
    stream
        .write_all(format!("{head}Host: 127.0.0.1\r\n\r\n").as_bytes())
        .unwrap();
    stream.flush().unwrap();
    read_response(stream)
}

/// `maxConnectionsPerAddress` of ca.json: with 3, an address holding 3 connections has its 4th
/// closed before its TLS handshake (and counted), while another address still gets through; a
/// slot given back is the address's again. The handshake timeout is long, so the only thing
/// that can end the 4th handshake is the cap.
#[test]
fn an_address_past_its_connection_share_is_closed_while_another_gets_through() {
    let ca = ObservedCa::start(|config| {
        config["limits"] = serde_json::json!({
            "maxConnectionsPerAddress": 3,
            "handshakeTimeout": "60s",
        });
    });
    let tls = tls_config(&ca.root());
    let greedy: IpAddr = "127.0.0.1".parse().unwrap();
    let modest: IpAddr = "127.0.0.2".parse().unwrap();
    let mut held: Vec<TlsStream> = (0..3)
        .map(|_| handshake(connect_from(greedy, ca.port), &tls).unwrap())
        .collect();
    for stream in &mut held {
        assert_eq!(exchange(stream, "GET /1.0/crl HTTP/1.1\r\n").0, 200);
    }
    let fourth = handshake(connect_from(greedy, ca.port), &tls);
    assert!(
        fourth.is_err(),
        "the 4th connection from one address was served"
    );
    let mut other = handshake(connect_from(modest, ca.port), &tls)
        .expect("another address is not held back by the first one's share");
    assert_eq!(exchange(&mut other, "GET /1.0/crl HTTP/1.1\r\n").0, 200);
    let samples = ca.scrape();
    assert_eq!(
        metric(
            &samples,
            "mayfly_limited_total",
            &[("limit", "connections_per_address")]
        ),
        1.0
    );
    // The held connections were not disturbed by the refusal.
    for stream in &mut held {
        assert_eq!(exchange(stream, "GET /1.0/crl HTTP/1.1\r\n").0, 200);
    }
    // A connection closed gives its slot back to its address (once the server has seen it go).
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(mut stream) = handshake(connect_from(greedy, ca.port), &tls) {
            assert_eq!(exchange(&mut stream, "GET /1.0/crl HTTP/1.1\r\n").0, 200);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the closed slot was not given back"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends a request head announcing `length` body bytes with `Expect: 100-continue`, and reads
/// the answer: 100 once the server has reserved the body's memory and waits for it, or the
/// refusal.
fn announce(stream: &mut impl Write, path: &str, length: usize) {
    stream
        .write_all(
            format!(
                "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
                 Content-Length: {length}\r\nExpect: 100-continue\r\n\r\n"
            )
            .as_bytes(),
        )
        .unwrap();
    stream.flush().unwrap();
}

/// `maxBodyMemory` bounds the process, not each listener: bodies held on the TLS listener and
/// on the plain-HTTP one fill one budget together, after which both listeners refuse with 503.
/// Also the OCSP route's body limit at its boundary.
#[test]
fn every_listener_draws_on_one_body_budget() {
    const MIB: usize = 1024 * 1024;
    let ca = ObservedCa::start(|config| {
        config["limits"] = serde_json::json!({
            "maxBodyMemory": MIB,
            // The bodies are held for the whole test.
            "readTimeout": "60s",
        });
    });
    let tls = tls_config(&ca.root());
    let plain = || {
        let stream = TcpStream::connect(("127.0.0.1", ca.http_port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        stream
    };

    // OCSP over POST takes 64 KiB: one byte more is refused unread, the limit itself is read
    // (and answered in OCSP).
    let limit = 64 * 1024;
    let mut stream = plain();
    announce(&mut stream, "/ocsp", limit + 1);
    let (status, _, body) = read_response(&mut stream);
    assert_eq!(status, 413);
    assert!(
        message(&body).contains(&format!("larger than {limit} bytes")),
        "{}",
        String::from_utf8_lossy(&body)
    );
    let mut stream = plain();
    announce(&mut stream, "/ocsp", limit);
    assert_eq!(read_response(&mut stream).0, 100);
    stream.write_all(&vec![0u8; limit]).unwrap();
    stream.flush().unwrap();
    let (status, head, _) = read_response(&mut stream);
    assert_ne!(status, 413, "{head}");
    drop(stream);

    // Half the budget on each listener: four 128 KiB bodies over TLS, eight 64 KiB ones over
    // plain HTTP, each reserved and waited for (100 Continue), none sent.
    let mut held_tls: Vec<TlsStream> = (0..4)
        .map(|_| {
            let mut stream = tls_connect(ca.port, &tls);
            announce(&mut stream, "/1.0/sign", 128 * 1024);
            assert_eq!(read_response(&mut stream).0, 100);
            stream
        })
        .collect();
    let mut held_plain: Vec<TcpStream> = Vec::new();
    for _ in 0..8 {
        let mut stream = plain();
        announce(&mut stream, "/ocsp", limit);
        assert_eq!(read_response(&mut stream).0, 100);
        held_plain.push(stream);
    }
    // Neither listener holds a budget's worth, yet both refuse: the budget is one.
    let refused = |(status, head, body): (u16, String, Vec<u8>)| {
        assert_eq!(status, 503, "{head}");
        assert!(
            head.to_ascii_lowercase().contains("retry-after: 1"),
            "{head}"
        );
        assert!(
            message(&body).contains("holds as many request bodies as it may"),
            "{}",
            String::from_utf8_lossy(&body)
        );
    };
    let mut stream = tls_connect(ca.port, &tls);
    announce(&mut stream, "/1.0/sign", 100);
    refused(read_response(&mut stream));
    let mut stream = plain();
    announce(&mut stream, "/ocsp", 100);
    refused(read_response(&mut stream));

    // What one listener gives back, the other can use (once the server has seen it go).
    drop(held_plain.pop());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut stream = tls_connect(ca.port, &tls);
        announce(&mut stream, "/1.0/sign", 64 * 1024);
        let (status, head, _) = read_response(&mut stream);
        if status == 100 {
            held_tls.push(stream);
            break;
        }
        assert_eq!(status, 503, "{head}");
        assert!(
            Instant::now() < deadline,
            "the freed memory was not given back"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let samples = ca.scrape();
    assert!(
        metric(
            &samples,
            "mayfly_limited_total",
            &[("limit", "body_memory")]
        ) >= 2.0
    );
    drop(held_tls);
    drop(held_plain);
}

/// ACME `newNonce` over the TLS listener: once an address holds `limits.acme.unusedNonces`
/// nonces it has not used, it is answered 429 `rateLimited` with `Retry-After`, while another
/// address still gets nonces.
#[test]
fn new_nonce_is_refused_once_an_address_holds_its_unused_nonces() {
    let ca = ObservedCa::start(|config| {
        config["authority"]["provisioners"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({"type": "ACME", "name": "acme"}));
        config["limits"] = serde_json::json!({ "acme": { "unusedNonces": 3 } });
    });
    let tls = tls_config(&ca.root());
    let new_nonce = "GET /acme/acme/new-nonce HTTP/1.1\r\n";
    for i in 0..3 {
        let (status, head, _) = https(&ca, &tls, new_nonce, b"");
        assert_eq!(status, 204, "nonce {i}: {head}");
        assert!(
            head.to_ascii_lowercase().contains("replay-nonce:"),
            "{head}"
        );
    }
    let (status, head, body) = https(&ca, &tls, new_nonce, b"");
    assert_eq!(status, 429, "{head}");
    let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(problem["type"], "urn:ietf:params:acme:error:rateLimited");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("holds 3 unused nonces"),
        "{problem}"
    );
    let retry_after: u64 = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("retry-after")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or_else(|| panic!("no Retry-After: {head}"));
    // Until the oldest counted nonce has expired: up to the nonce lifetime, an hour.
    assert!((1..=3600).contains(&retry_after), "{retry_after}");
    assert!(
        !head.to_ascii_lowercase().contains("replay-nonce:"),
        "{head}"
    );

    let mut other = handshake(connect_from("127.0.0.2".parse().unwrap(), ca.port), &tls).unwrap();
    let (status, head, _) = exchange(&mut other, new_nonce);
    assert_eq!(status, 204, "another address: {head}");
}
