//! ACME (RFC 8555) through the real router and a real SQLite store, driven by a small client
//! written here so every edge can be reached: key rollover, deactivation, revocation rules,
//! renewal info, bad requests, concurrency, rate limits, dns-01. Challenges are answered by real
//! loopback servers (HTTP on TCP, DNS on UDP) that the server's validator connects to.

use mayfly_acme::nonces::NonceBook;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use http_body_util::BodyExt;
use mayfly_authority::clock::{Clock, FixedClock, SystemClock};
use mayfly_authority::publication::{PublicPorts, Publication};
use mayfly_authority::{Authority, AuthorityParts, LoadedMaterial};
use mayfly_config::config::ProvisionerConfig;
use mayfly_config::init::{self, InitOptions, Layout};
use mayfly_config::policy::PolicyConfig;
use mayfly_pki::jose::jwk::Jwk;
use mayfly_pki::{KeyAlgorithm, PrivateKey, San};
use mayfly_server::api::{AppState, router};
use mayfly_server::tls::TlsSettings;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

const BASE: &str = "https://ca.test/acme/acme";

/// Key authorizations served over http-01, and how often each token was fetched.
#[derive(Default)]
struct Responder {
    answers: Mutex<HashMap<String, String>>,
    hits: Mutex<HashMap<String, usize>>,
    /// How many of a token's first fetches get a wrong body before its answer is served.
    wrong_first: Mutex<HashMap<String, usize>>,
    /// Whole responses, head and body, served as they are for a token.
    raw: Mutex<HashMap<String, Vec<u8>>>,
    /// Tokens whose fetch is held until the test releases it.
    held: Mutex<HashMap<String, Arc<Hold>>>,
}

/// A held http-01 fetch: `arrived` once the CA is waiting for its answer, answered once
/// `release` is notified.
#[derive(Default)]
struct Hold {
    arrived: tokio::sync::Notify,
    release: tokio::sync::Notify,
}

impl Responder {
    fn hold(&self, token: &str) -> Arc<Hold> {
        let hold = Arc::new(Hold::default());
        self.held
            .lock()
            .unwrap()
            .insert(token.to_string(), Arc::clone(&hold));
        hold
    }
}

async fn start_http01(responder: Arc<Responder>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let responder = Arc::clone(&responder);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut n = 0;
                while !buf[..n].windows(4).any(|w| w == b"\r\n\r\n") && n < buf.len() {
                    match stream.read(&mut buf[n..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(m) => n += m,
                    }
                }
                let text = String::from_utf8_lossy(&buf[..n]).to_string();
                let path = text.split_whitespace().nth(1).unwrap_or("").to_string();
                let token = path
                    .strip_prefix("/.well-known/acme-challenge/")
                    .unwrap_or("")
                    .to_string();
                let held = responder.held.lock().unwrap().get(&token).cloned();
                if let Some(hold) = held {
                    hold.arrived.notify_one();
                    hold.release.notified().await;
                }
                let hit = {
                    let mut hits = responder.hits.lock().unwrap();
                    let hit = hits.entry(token.clone()).or_default();
                    *hit += 1;
                    *hit
                };
                let wrong = responder
                    .wrong_first
                    .lock()
                    .unwrap()
                    .get(&token)
                    .is_some_and(|&n| hit <= n);
                let raw = responder.raw.lock().unwrap().get(&token).cloned();
                if let Some(raw) = raw {
                    let _ = stream.write_all(&raw).await;
                    return;
                }
                let answer = if wrong {
                    Some("not-the-key-authorization".to_string())
                } else {
                    responder.answers.lock().unwrap().get(&token).cloned()
                };
                let response = match answer {
                    Some(body) => format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    ),
                    None => {
                        "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                            .into()
                    }
                };
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    port
}

/// A DNS server on UDP loopback answering TXT questions from a map.
async fn start_dns(records: Arc<Mutex<HashMap<String, String>>>) -> std::net::SocketAddr {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let address = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 512];
        loop {
            let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
                return;
            };
            let query = &buf[..n];
            // Question name starts at 12.
            let mut at = 12;
            let mut labels = Vec::new();
            while at < n && query[at] != 0 {
                let len = query[at] as usize;
                labels.push(String::from_utf8_lossy(&query[at + 1..at + 1 + len]).to_string());
                at += 1 + len;
            }
            let question_end = at + 5;
            let name = labels.join(".");
            let value = records.lock().unwrap().get(&name).cloned();
            let mut answer = query[..question_end].to_vec();
            answer[2] = 0x81;
            answer[3] = if value.is_some() { 0x80 } else { 0x83 };
            answer[6] = 0;
            answer[7] = u8::from(value.is_some());
            if let Some(value) = value {
                answer.extend_from_slice(&[0xc0, 0x0c, 0, 16, 0, 1, 0, 0, 0, 0]);
                answer.extend_from_slice(&((value.len() + 1) as u16).to_be_bytes());
                answer.push(value.len() as u8);
                answer.extend_from_slice(value.as_bytes());
            }
            let _ = socket.send_to(&answer, peer).await;
        }
    });
    address
}

struct Harness {
    _dir: tempfile::TempDir,
    /// The ACME provisioner's entry in ca.json.
    acme: ProvisionerConfig,
    state: Arc<AppState>,
    app: axum::Router,
    responder: Arc<Responder>,
    dns: Arc<Mutex<HashMap<String, String>>>,
    db_path: std::path::PathBuf,
}

async fn harness(settings: Value) -> Harness {
    harness_with_clock(settings, Arc::new(SystemClock)).await
}

async fn harness_with_clock(settings: Value, clock: Arc<dyn Clock>) -> Harness {
    harness_with_nonces(settings, clock, NonceBook::Store).await
}

/// A harness whose ACME service keeps its nonces in `book`.
async fn harness_with_nonces(settings: Value, clock: Arc<dyn Clock>, book: NonceBook) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::new(dir.path());
    let options = InitOptions {
        name: "Test".into(),
        dns_names: vec!["ca.test".into()],
        address: ":443".into(),
        provisioner: "admin".into(),
        key_password: None,
        provisioner_password: b"pw".to_vec(),
        existing_root: None,
        pki_only: false,
        kdf_iterations: 1000,
        ssh: None,
        insecure_address: None,
    };
    let plan = init::plan(&options, &layout).unwrap();
    init::write(&plan, &layout, false).unwrap();
    let responder = Arc::new(Responder::default());
    let http_port = start_http01(Arc::clone(&responder)).await;
    let dns = Arc::new(Mutex::new(HashMap::new()));
    let resolver = start_dns(Arc::clone(&dns)).await;
    let mut other = serde_json::Map::new();
    other.insert("insecureHttp01Port".into(), json!(http_port));
    other.insert("insecureValidationAddress".into(), json!("127.0.0.1"));
    other.insert("insecureDnsResolver".into(), json!(resolver.to_string()));
    if let Value::Object(extra) = settings {
        other.extend(extra);
    }
    let acme = ProvisionerConfig {
        kind: "ACME".into(),
        name: "acme".into(),
        key: None,
        encrypted_key: None,
        claims: None,
        options: None,
        admin: false,
        policy: None,
        other: other.into_iter().collect(),
    };
    let db_path = layout.database();
    let store = Arc::new(mayfly_store::SqliteStore::open(&db_path).await.unwrap());
    let authority = acme_authority(dir.path(), &acme, None, store.clone(), clock);
    let tls_options = TlsSettings::from_config(None).unwrap().advertised;
    let state = Arc::new(
        AppState::new(authority, tls_options)
            .with_acme(store)
            .with_acme_nonces(book),
    );
    Harness {
        app: router(Arc::clone(&state)),
        state,
        responder,
        dns,
        db_path,
        acme,
        _dir: dir,
    }
}

/// The authority `ca init` made in `dir`, with the ACME provisioner `acme` and the authority
/// policy `policy`, on `store`.
fn acme_authority(
    dir: &std::path::Path,
    acme: &ProvisionerConfig,
    policy: Option<PolicyConfig>,
    store: Arc<dyn mayfly_authority::store::CertStore>,
    clock: Arc<dyn Clock>,
) -> Authority {
    let layout = Layout::new(dir);
    let mut loaded = mayfly_config::config::CaConfig::load(&layout.ca_config()).unwrap();
    loaded.config.authority.policy = policy;
    loaded.config.authority.provisioners.push(acme.clone());
    let material = LoadedMaterial::load(&loaded.config, dir, None).unwrap();
    Authority::new(AuthorityParts {
        roots: material.roots,
        federated_roots: material.federated_roots,
        intermediate: material.intermediate,
        provisioners: material.provisioners,
        name_policies: material.name_policies,
        backdate: material.backdate,
        dns_names: loaded.config.dns_names.clone(),
        store,
        clock,
        ssh: None,
        publication: Publication::from_config(
            &loaded.config,
            PublicPorts {
                https: 443,
                http: None,
            },
        )
        .unwrap(),
    })
    .unwrap()
}

struct Response {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
    text: String,
}

impl Response {
    fn problem(&self) -> &str {
        self.body["type"]
            .as_str()
            .unwrap_or("")
            .trim_start_matches("urn:ietf:params:acme:error:")
    }

    fn location(&self) -> String {
        self.headers["location"].to_str().unwrap().to_string()
    }
}

impl Harness {
    /// Puts `policy` in force as `authority.policy`, as a reload of ca.json would.
    fn reload_with_policy(&self, policy: Value) {
        let current = self.state.authority();
        self.state.replace(acme_authority(
            self._dir.path(),
            &self.acme,
            Some(serde_json::from_value(policy).unwrap()),
            Arc::clone(current.store()),
            Arc::clone(current.clock()),
        ));
    }

    async fn send(&self, method: &str, url: &str, content_type: &str, body: Vec<u8>) -> Response {
        self.send_from(None, method, url, content_type, body).await
    }

    /// [`Harness::send`] as if from `client`, as the TLS listener marks each request.
    async fn send_from(
        &self,
        client: Option<std::net::IpAddr>,
        method: &str,
        url: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Response {
        let path = url.strip_prefix("https://ca.test").unwrap_or(url);
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "ca.test")
            .header("content-type", content_type)
            .body(Body::from(body))
            .unwrap();
        if let Some(client) = client {
            request
                .extensions_mut()
                .insert(mayfly_server::serve::PeerCertificates {
                    chain: None,
                    remote: std::net::SocketAddr::new(client, 50000),
                });
        }
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).to_string();
        Response {
            status,
            headers,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            text,
        }
    }

    async fn nonce(&self) -> String {
        let r = self
            .send("HEAD", &format!("{BASE}/new-nonce"), "", Vec::new())
            .await;
        assert_eq!(r.status, StatusCode::OK);
        r.headers["replay-nonce"].to_str().unwrap().to_string()
    }

    fn sql(&self, query: &str) -> String {
        let out = std::process::Command::new("sqlite3")
            .arg(&self.db_path)
            .arg(query)
            .output()
            .expect("sqlite3 is needed (Debian package sqlite3)");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

/// Signs a flattened JWS.
fn jws(key: &PrivateKey, header: Value, payload: Option<&Value>) -> Vec<u8> {
    let protected = B64.encode(header.to_string());
    let payload = payload.map_or(String::new(), |p| B64.encode(p.to_string()));
    let signature = key
        .sign_jws(format!("{protected}.{payload}").as_bytes())
        .unwrap();
    json!({"protected": protected, "payload": payload, "signature": B64.encode(signature)})
        .to_string()
        .into_bytes()
}

fn public_jwk(key: &PrivateKey) -> Value {
    let mut jwk = serde_json::to_value(Jwk::public_from_key(key).unwrap()).unwrap();
    let map = jwk.as_object_mut().unwrap();
    map.remove("kid");
    map.remove("use");
    map.remove("alg");
    jwk
}

struct Client {
    key: PrivateKey,
    kid: String,
}

impl Client {
    async fn new(h: &Harness) -> Client {
        Self::with_key(h, PrivateKey::generate(KeyAlgorithm::EcP256).unwrap()).await
    }

    async fn with_key(h: &Harness, key: PrivateKey) -> Client {
        let url = format!("{BASE}/new-account");
        let body = jws(
            &key,
            json!({"alg": key.jws_algorithm(), "nonce": h.nonce().await, "url": url, "jwk": public_jwk(&key)}),
            Some(&json!({"termsOfServiceAgreed": true, "contact": ["mailto:ops@example.test"]})),
        );
        let r = h.send("POST", &url, "application/jose+json", body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        Client {
            key,
            kid: r.location(),
        }
    }

    async fn post(&self, h: &Harness, url: &str, payload: Option<&Value>) -> Response {
        let nonce = h.nonce().await;
        self.post_with_nonce(h, url, payload, &nonce).await
    }

    async fn post_with_nonce(
        &self,
        h: &Harness,
        url: &str,
        payload: Option<&Value>,
        nonce: &str,
    ) -> Response {
        let header =
            json!({"alg": self.key.jws_algorithm(), "nonce": nonce, "url": url, "kid": self.kid});
        h.send(
            "POST",
            url,
            "application/jose+json",
            jws(&self.key, header, payload),
        )
        .await
    }

    fn thumbprint(&self) -> String {
        Jwk::public_from_key(&self.key)
            .unwrap()
            .thumbprint()
            .unwrap()
    }

    async fn order(&self, h: &Harness, names: &[&str]) -> Response {
        let identifiers: Vec<Value> = names
            .iter()
            .map(|n| json!({"type": if n.parse::<std::net::IpAddr>().is_ok() {"ip"} else {"dns"}, "value": n}))
            .collect();
        self.post(
            h,
            &format!("{BASE}/new-order"),
            Some(&json!({"identifiers": identifiers})),
        )
        .await
    }

    /// Answers every authorization of the order with `kind` and waits until the order is ready.
    async fn authorize(&self, h: &Harness, order: &Response, kind: &str) {
        for authz_url in order.body["authorizations"].as_array().unwrap() {
            let authz = self.post(h, authz_url.as_str().unwrap(), None).await;
            if authz.body["status"] == "valid" {
                continue;
            }
            let challenge = authz.body["challenges"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["type"] == kind)
                .unwrap_or_else(|| panic!("no {kind} in {}", authz.text))
                .clone();
            let token = challenge["token"].as_str().unwrap().to_string();
            let key_authorization = format!("{token}.{}", self.thumbprint());
            if kind == "http-01" {
                h.responder
                    .answers
                    .lock()
                    .unwrap()
                    .insert(token, key_authorization);
            } else {
                let digest = aws_lc_rs::digest::digest(
                    &aws_lc_rs::digest::SHA256,
                    key_authorization.as_bytes(),
                );
                let name = format!(
                    "_acme-challenge.{}",
                    authz.body["identifier"]["value"].as_str().unwrap()
                );
                h.dns
                    .lock()
                    .unwrap()
                    .insert(name, B64.encode(digest.as_ref()));
            }
            let r = self
                .post(h, challenge["url"].as_str().unwrap(), Some(&json!({})))
                .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        }
        let url = order.location();
        for _ in 0..100 {
            let current = self.post(h, &url, None).await;
            match current.body["status"].as_str() {
                Some("ready") => return,
                Some("pending") => {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                other => panic!("order became {other:?}: {}", current.text),
            }
        }
        panic!("order never became ready");
    }

    async fn finalize(
        &self,
        h: &Harness,
        order: &Response,
        key: &PrivateKey,
        names: &[&str],
    ) -> Response {
        let sans: Vec<San> = names.iter().map(|n| San::parse(n).unwrap()).collect();
        let pem = mayfly_pki::csr::create_pem(key, names[0], &sans).unwrap();
        let der = pem::parse(pem).unwrap().into_contents();
        self.post(
            h,
            order.body["finalize"].as_str().unwrap(),
            Some(&json!({"csr": B64.encode(der)})),
        )
        .await
    }

    /// A full issuance; returns the leaf DER.
    async fn issue(&self, h: &Harness, names: &[&str], key: &PrivateKey) -> Vec<u8> {
        let order = self.order(h, names).await;
        assert_eq!(order.status, StatusCode::CREATED, "{}", order.text);
        self.authorize(h, &order, "http-01").await;
        let done = self.finalize(h, &order, key, names).await;
        assert_eq!(done.body["status"], "valid", "{}", done.text);
        let chain = self
            .post(h, done.body["certificate"].as_str().unwrap(), None)
            .await;
        assert_eq!(
            chain.headers["content-type"],
            "application/pem-certificate-chain"
        );
        let certs = mayfly_pki::cert::certificates_from_pem(chain.text.as_bytes()).unwrap();
        assert_eq!(certs.len(), 2, "leaf and intermediate");
        certs[0].clone()
    }

    async fn revoke(&self, h: &Harness, der: &[u8], reason: Option<i64>) -> Response {
        let mut payload = json!({"certificate": B64.encode(der)});
        if let Some(reason) = reason {
            payload["reason"] = json!(reason);
        }
        self.post(h, &format!("{BASE}/revoke-cert"), Some(&payload))
            .await
    }
}

fn leaf_key() -> PrivateKey {
    PrivateKey::generate(KeyAlgorithm::EcP256).unwrap()
}

/// A `Host` header naming another server does not change the URLs the directory hands out:
/// they stay the CA's own, or a client could be sent to whoever forged the header.
#[tokio::test]
async fn directory_urls_ignore_a_foreign_host_header() {
    let h = harness(json!({})).await;
    for (host, origin) in [
        ("evil.example", "https://ca.test"),
        ("evil.example:443", "https://ca.test"),
        ("ca.test:8443", "https://ca.test:8443"),
    ] {
        let request = Request::builder()
            .method("GET")
            .uri("/acme/acme/directory")
            .header("host", host)
            .body(Body::empty())
            .unwrap();
        let response = h.app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            body["newOrder"],
            format!("{origin}/acme/acme/new-order"),
            "Host {host}: {body}"
        );
        assert!(!body.to_string().contains("evil"), "{body}");
    }
}

#[tokio::test]
async fn directory_lists_every_resource() {
    let h = harness(json!({"termsOfService": "https://ca.test/terms"})).await;
    for url in [
        format!("{BASE}/directory"),
        "https://ca.test/2.0/acme/acme/directory".into(),
    ] {
        let r = h.send("GET", &url, "", Vec::new()).await;
        assert_eq!(r.status, StatusCode::OK);
        let base = url.trim_end_matches("/directory");
        for (field, path) in [
            ("newNonce", "new-nonce"),
            ("newAccount", "new-account"),
            ("newOrder", "new-order"),
            ("revokeCert", "revoke-cert"),
            ("keyChange", "key-change"),
            ("renewalInfo", "renewal-info"),
        ] {
            assert_eq!(r.body[field], format!("{base}/{path}"), "{}", r.text);
        }
        assert_eq!(r.body["meta"]["termsOfService"], "https://ca.test/terms");
        assert_eq!(r.body["meta"]["externalAccountRequired"], false);
    }
    let r = h
        .send("GET", "https://ca.test/acme/nope/directory", "", Vec::new())
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.headers["content-type"], "application/problem+json");
}

/// Each resource answers its methods only, and the answers to signed requests (even
/// refusals) carry a fresh nonce and the directory link, the others not.
#[tokio::test]
async fn every_resource_answers_its_methods_with_its_headers() {
    let h = harness(json!({})).await;
    let fetched = ["directory", "renewal-info/AQID.AIE"];
    let signed = [
        "new-account",
        "new-order",
        "revoke-cert",
        "key-change",
        "account/x",
        "account/x/orders",
        "order/x",
        "order/x/finalize",
        "authz/x",
        "challenge/x/0",
        "challenge/x/first",
        "certificate/1",
    ];
    for path in fetched {
        let url = format!("{BASE}/{path}");
        let r = h
            .send("POST", &url, "application/jose+json", Vec::new())
            .await;
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "POST {path}");
        let r = h.send("GET", &url, "", Vec::new()).await;
        assert_ne!(r.status, StatusCode::METHOD_NOT_ALLOWED, "GET {path}");
        assert!(!r.headers.contains_key("replay-nonce"), "GET {path}");
    }
    for path in signed {
        let url = format!("{BASE}/{path}");
        let r = h.send("GET", &url, "", Vec::new()).await;
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "GET {path}");
        // Refused before anything else: the body is not a JWS.
        let r = h.send("POST", &url, "text/plain", b"{}".to_vec()).await;
        let expected = if path == "challenge/x/first" {
            StatusCode::NOT_FOUND
        } else {
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        };
        assert_eq!(r.status, expected, "POST {path}: {}", r.text);
        assert_eq!(r.headers["content-type"], "application/problem+json");
        assert_eq!(r.body["status"], expected.as_u16(), "{}", r.text);
        assert!(r.headers.contains_key("replay-nonce"), "POST {path}");
        assert_eq!(
            r.headers["link"],
            format!("<{BASE}/directory>;rel=\"index\""),
            "POST {path}"
        );
        assert_eq!(r.headers["cache-control"], "no-store");
    }
    let url = format!("{BASE}/new-nonce");
    for (method, status) in [("GET", StatusCode::NO_CONTENT), ("HEAD", StatusCode::OK)] {
        let r = h.send(method, &url, "", Vec::new()).await;
        assert_eq!(r.status, status, "{method} new-nonce");
        assert!(r.headers.contains_key("replay-nonce"), "{method} new-nonce");
        assert_eq!(r.headers["cache-control"], "no-store");
    }
    let r = h
        .send("POST", &url, "application/jose+json", Vec::new())
        .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn http01_issuance_with_renewal_info_and_replaces() {
    let h = harness(json!({})).await;
    let client = Client::new(&h).await;
    let key = leaf_key();
    let der = client
        .issue(&h, &["www.example.test", "127.0.0.1"], &key)
        .await;
    let info = mayfly_pki::cert::CertificateInfo::from_der(&der).unwrap();
    assert!(info.sans.contains(&San::Dns("www.example.test".into())));
    assert!(info.sans.contains(&San::Ip("127.0.0.1".parse().unwrap())));

    // Authorizations are reused while valid: a second order is ready at once.
    let again = client.order(&h, &["www.example.test"]).await;
    assert_eq!(again.body["status"], "ready", "{}", again.text);
    let account = client.post(&h, &client.kid, None).await;
    let listed = client
        .post(&h, account.body["orders"].as_str().unwrap(), None)
        .await;
    let orders = listed.body["orders"].as_array().unwrap();
    assert_eq!(orders.len(), 2, "{}", listed.text);
    assert!(orders.contains(&json!(again.location())), "{}", listed.text);
    // The CSR must name exactly the order's identifiers.
    let wrong = client
        .finalize(
            &h,
            &again,
            &key,
            &["www.example.test", "other.example.test"],
        )
        .await;
    assert_eq!(wrong.problem(), "badCSR", "{}", wrong.text);

    // Renewal information: a window in the last third of the lifetime.
    let cert_id = mayfly_acme::renewal::cert_id(&der).unwrap();
    let r = h
        .send(
            "GET",
            &format!("{BASE}/renewal-info/{cert_id}"),
            "",
            Vec::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.headers.contains_key("retry-after"));
    let parse = |v: &Value| {
        time::OffsetDateTime::parse(
            v.as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap()
    };
    let start = parse(&r.body["suggestedWindow"]["start"]);
    let end = parse(&r.body["suggestedWindow"]["end"]);
    let lifetime = info.not_after - info.not_before;
    assert!(
        start > info.not_before + lifetime * 0.6 && start < end && end < info.not_after,
        "{}",
        r.text
    );
    let unknown = h
        .send(
            "GET",
            &format!("{BASE}/renewal-info/AQID.AQID"),
            "",
            Vec::new(),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);

    // `replaces` names the certificate the new order renews.
    let r = client
        .post(
            &h,
            &format!("{BASE}/new-order"),
            Some(&json!({"identifiers": [{"type":"dns","value":"www.example.test"}], "replaces": cert_id})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["replaces"], cert_id);
    let stranger = Client::new(&h).await;
    let r = stranger
        .post(
            &h,
            &format!("{BASE}/new-order"),
            Some(&json!({"identifiers": [{"type":"dns","value":"www.example.test"}], "replaces": cert_id})),
        )
        .await;
    assert_eq!(r.problem(), "malformed", "{}", r.text);

    // After revocation the window opens at once.
    let r = client.revoke(&h, &der, Some(4)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = h
        .send(
            "GET",
            &format!("{BASE}/renewal-info/{cert_id}"),
            "",
            Vec::new(),
        )
        .await;
    let revoked_start = parse(&r.body["suggestedWindow"]["start"]);
    assert!(
        revoked_start <= time::OffsetDateTime::now_utc(),
        "{}",
        r.text
    );
}

#[tokio::test]
async fn bad_requests_are_refused_with_their_problem_and_a_fresh_nonce() {
    let h = harness(json!({})).await;
    let client = Client::new(&h).await;
    let url = format!("{BASE}/new-order");
    let payload = json!({"identifiers": [{"type":"dns","value":"a.example.test"}]});
    let key = &client.key;
    let good_header = |nonce: &str| json!({"alg":"ES256","nonce":nonce,"url":url,"kid":client.kid});

    let used = h.nonce().await;
    let first = h
        .send(
            "POST",
            &url,
            "application/jose+json",
            jws(key, good_header(&used), Some(&payload)),
        )
        .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);

    let mut tampered = jws(key, good_header(&h.nonce().await), Some(&payload));
    let mut value: Value = serde_json::from_slice(&tampered).unwrap();
    value["payload"] =
        json!(B64.encode(json!({"identifiers": [{"type":"dns","value":"evil.test"}]}).to_string()));
    tampered = value.to_string().into_bytes();

    let other_key = leaf_key();
    let cases: Vec<(&str, &str, Vec<u8>, StatusCode, &str)> = vec![
        (
            "reused nonce",
            "application/jose+json",
            jws(key, good_header(&used), Some(&payload)),
            StatusCode::BAD_REQUEST,
            "badNonce",
        ),
        (
            "no nonce",
            "application/jose+json",
            jws(
                key,
                json!({"alg":"ES256","url":url,"kid":client.kid}),
                Some(&payload),
            ),
            StatusCode::BAD_REQUEST,
            "badNonce",
        ),
        (
            "wrong url",
            "application/jose+json",
            jws(
                key,
                json!({"alg":"ES256","nonce":h.nonce().await,"url":format!("{BASE}/new-account"),"kid":client.kid}),
                Some(&payload),
            ),
            StatusCode::FORBIDDEN,
            "unauthorized",
        ),
        (
            "wrong content type",
            "application/json",
            jws(key, good_header(&h.nonce().await), Some(&payload)),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "malformed",
        ),
        (
            "not a JWS",
            "application/jose+json",
            b"{}".to_vec(),
            StatusCode::BAD_REQUEST,
            "malformed",
        ),
        (
            "tampered signature",
            "application/jose+json",
            tampered,
            StatusCode::BAD_REQUEST,
            "malformed",
        ),
        (
            "signed by another key",
            "application/jose+json",
            jws(&other_key, good_header(&h.nonce().await), Some(&payload)),
            StatusCode::BAD_REQUEST,
            "malformed",
        ),
        (
            "unknown account",
            "application/jose+json",
            jws(
                key,
                json!({"alg":"ES256","nonce":h.nonce().await,"url":url,"kid":format!("{BASE}/account/nobody")}),
                Some(&payload),
            ),
            StatusCode::BAD_REQUEST,
            "accountDoesNotExist",
        ),
        (
            "jwk where kid is needed",
            "application/jose+json",
            jws(
                key,
                json!({"alg":"ES256","nonce":h.nonce().await,"url":url,"jwk":public_jwk(key)}),
                Some(&payload),
            ),
            StatusCode::BAD_REQUEST,
            "malformed",
        ),
        (
            "alg none",
            "application/jose+json",
            jws(
                key,
                json!({"alg":"none","nonce":h.nonce().await,"url":url,"kid":client.kid}),
                Some(&payload),
            ),
            StatusCode::BAD_REQUEST,
            "badSignatureAlgorithm",
        ),
        (
            "bad identifier",
            "application/jose+json",
            jws(
                key,
                good_header(&h.nonce().await),
                Some(&json!({"identifiers":[{"type":"dns","value":"a..b"}]})),
            ),
            StatusCode::BAD_REQUEST,
            "rejectedIdentifier",
        ),
        (
            "email identifier",
            "application/jose+json",
            jws(
                key,
                good_header(&h.nonce().await),
                Some(&json!({"identifiers":[{"type":"email","value":"a@b.test"}]})),
            ),
            StatusCode::BAD_REQUEST,
            "unsupportedIdentifier",
        ),
    ];
    let orders_before = h.sql("SELECT COUNT(*) FROM acme_orders");
    for (name, content_type, body, status, problem) in cases {
        let r = h.send("POST", &url, content_type, body).await;
        assert_eq!(r.status, status, "{name}: {}", r.text);
        assert_eq!(r.problem(), problem, "{name}: {}", r.text);
        assert_eq!(
            r.headers["content-type"], "application/problem+json",
            "{name}"
        );
        assert!(
            r.headers.contains_key("replay-nonce"),
            "{name}: a fresh nonce comes with every error"
        );
        assert!(
            !r.body["detail"].as_str().unwrap_or("").is_empty(),
            "{name}"
        );
    }
    assert_eq!(
        h.sql("SELECT COUNT(*) FROM acme_orders"),
        orders_before,
        "no refused request stored an order"
    );
}

#[tokio::test]
async fn revocation_follows_lets_encrypt_rules() {
    let h = harness(json!({})).await;
    let owner = Client::new(&h).await;
    let key = leaf_key();
    let der = owner.issue(&h, &["rev.example.test"], &key).await;

    for reason in [3, 6, 2, 11] {
        let r = owner.revoke(&h, &der, Some(reason)).await;
        assert_eq!(
            r.problem(),
            "badRevocationReason",
            "reason {reason}: {}",
            r.text
        );
    }
    // An account with no authorization for the name may not revoke.
    let stranger = Client::new(&h).await;
    let r = stranger.revoke(&h, &der, Some(0)).await;
    assert_eq!(r.problem(), "unauthorized", "{}", r.text);
    // Another account that proves control of every name may (as cessationOfOperation).
    let order = stranger.order(&h, &["rev.example.test"]).await;
    stranger.authorize(&h, &order, "http-01").await;
    let r = stranger.revoke(&h, &der, Some(0)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let serial = mayfly_pki::cert::CertificateInfo::from_der(&der)
        .unwrap()
        .serial
        .to_decimal();
    assert_eq!(
        h.sql(&format!(
            "SELECT status || ':' || revocation_reason FROM certificates WHERE serial = '{serial}'"
        )),
        "revoked:5"
    );
    let r = owner.revoke(&h, &der, Some(0)).await;
    assert_eq!(r.problem(), "alreadyRevoked", "{}", r.text);
    // The revocation reaches the CRL, as openssl reads it.
    let crl = h
        .send("GET", "https://ca.test/crl?pem=true", "", Vec::new())
        .await;
    assert_eq!(crl.status, StatusCode::OK, "{}", crl.text);
    let crl_path = h._dir.path().join("acme.crl");
    std::fs::write(&crl_path, &crl.text).unwrap();
    let out = std::process::Command::new("openssl")
        .args(["crl", "-noout", "-text", "-in"])
        .arg(&crl_path)
        .output()
        .expect("openssl is needed (Debian package openssl)");
    let listing = String::from_utf8_lossy(&out.stdout).to_ascii_uppercase();
    let serial_hex = hex::encode_upper(
        mayfly_pki::cert::CertificateInfo::from_der(&der)
            .unwrap()
            .serial
            .as_be_bytes(),
    );
    assert!(
        listing.contains(&serial_hex),
        "{serial_hex} not in {listing}"
    );
    assert!(listing.contains("CESSATION OF OPERATION"), "{listing}");

    // Revocation by the certificate's key (jwk = that key), reporting it compromised.
    let compromised = leaf_key();
    let der = owner.issue(&h, &["key.example.test"], &compromised).await;
    let url = format!("{BASE}/revoke-cert");
    let body = jws(
        &compromised,
        json!({"alg":"ES256","nonce":h.nonce().await,"url":url,"jwk":public_jwk(&compromised)}),
        Some(&json!({"certificate": B64.encode(&der), "reason": 1})),
    );
    let r = h.send("POST", &url, "application/jose+json", body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // A key that is not the certificate's cannot revoke it that way.
    let der2 = owner.issue(&h, &["key2.example.test"], &leaf_key()).await;
    let intruder = leaf_key();
    let body = jws(
        &intruder,
        json!({"alg":"ES256","nonce":h.nonce().await,"url":url,"jwk":public_jwk(&intruder)}),
        Some(&json!({"certificate": B64.encode(&der2)})),
    );
    let r = h.send("POST", &url, "application/jose+json", body).await;
    assert_eq!(r.problem(), "unauthorized", "{}", r.text);

    // The compromised key is blocked for future certificates.
    let order = owner.order(&h, &["key.example.test"]).await;
    assert_eq!(order.body["status"], "ready", "{}", order.text);
    let r = owner
        .finalize(&h, &order, &compromised, &["key.example.test"])
        .await;
    assert_eq!(r.problem(), "badPublicKey", "{}", r.text);
}

#[tokio::test]
async fn accounts_change_keys_deactivate_and_bind_external_accounts() {
    let h = harness(json!({})).await;
    let client = Client::new(&h).await;

    // onlyReturnExisting finds the account of a key, and only that.
    let url = format!("{BASE}/new-account");
    let lookup = |key: &PrivateKey, nonce: String| {
        jws(
            key,
            json!({"alg":"ES256","nonce":nonce,"url":url,"jwk":public_jwk(key)}),
            Some(&json!({"onlyReturnExisting": true})),
        )
    };
    let r = h
        .send(
            "POST",
            &url,
            "application/jose+json",
            lookup(&client.key, h.nonce().await),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.location(), client.kid);
    let r = h
        .send(
            "POST",
            &url,
            "application/jose+json",
            lookup(&leaf_key(), h.nonce().await),
        )
        .await;
    assert_eq!(r.problem(), "accountDoesNotExist", "{}", r.text);

    // keyChange: the inner JWS is signed by the new key; afterwards the old key is refused.
    let new_key = leaf_key();
    let change_url = format!("{BASE}/key-change");
    let inner = jws(
        &new_key,
        json!({"alg":"ES256","url":change_url,"jwk":public_jwk(&new_key)}),
        Some(&json!({"account": client.kid, "oldKey": public_jwk(&client.key)})),
    );
    let inner: Value = serde_json::from_slice(&inner).unwrap();
    let r = client.post(&h, &change_url, Some(&inner)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = client.post(&h, &client.kid, None).await;
    assert_eq!(
        r.status,
        StatusCode::BAD_REQUEST,
        "old key refused: {}",
        r.text
    );
    let rolled = Client {
        key: new_key,
        kid: client.kid.clone(),
    };
    let r = rolled.post(&h, &rolled.kid, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    // A key another account holds: 409 with that account's URL.
    let other = Client::new(&h).await;
    let inner = jws(
        &other.key,
        json!({"alg":"ES256","url":change_url,"jwk":public_jwk(&other.key)}),
        Some(&json!({"account": rolled.kid, "oldKey": public_jwk(&rolled.key)})),
    );
    let inner: Value = serde_json::from_slice(&inner).unwrap();
    let r = rolled.post(&h, &change_url, Some(&inner)).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.location(), other.kid);

    // Contacts update, then deactivation; a deactivated account is refused afterwards.
    let r = rolled
        .post(
            &h,
            &rolled.kid,
            Some(&json!({"contact": ["mailto:new@example.test"]})),
        )
        .await;
    assert_eq!(
        r.body["contact"],
        json!(["mailto:new@example.test"]),
        "{}",
        r.text
    );
    let r = rolled
        .post(&h, &rolled.kid, Some(&json!({"contact": ["tel:1"]})))
        .await;
    assert_eq!(r.problem(), "unsupportedContact", "{}", r.text);
    let r = rolled
        .post(&h, &rolled.kid, Some(&json!({"status": "deactivated"})))
        .await;
    assert_eq!(r.body["status"], "deactivated", "{}", r.text);
    let r = rolled.order(&h, &["a.example.test"]).await;
    assert_eq!(r.problem(), "unauthorized", "{}", r.text);

    // A provisioner that requires external account binding refuses accounts without one.
    let eab =
        harness(json!({"requireEAB": true, "eabKeys": {"kid-1": B64.encode(b"mac key")}})).await;
    let key = leaf_key();
    let body = jws(
        &key,
        json!({"alg":"ES256","nonce":eab.nonce().await,"url":url,"jwk":public_jwk(&key)}),
        Some(&json!({"termsOfServiceAgreed": true})),
    );
    let r = eab.send("POST", &url, "application/jose+json", body).await;
    assert_eq!(r.problem(), "externalAccountRequired", "{}", r.text);
    let protected = B64.encode(json!({"alg":"HS256","kid":"kid-1","url":url}).to_string());
    let payload = B64.encode(public_jwk(&key).to_string());
    let mac = aws_lc_rs::hmac::sign(
        &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, b"mac key"),
        format!("{protected}.{payload}").as_bytes(),
    );
    let binding =
        json!({"protected": protected, "payload": payload, "signature": B64.encode(mac.as_ref())});
    let body = jws(
        &key,
        json!({"alg":"ES256","nonce":eab.nonce().await,"url":url,"jwk":public_jwk(&key)}),
        Some(&json!({"termsOfServiceAgreed": true, "externalAccountBinding": binding})),
    );
    let r = eab.send("POST", &url, "application/jose+json", body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
}

#[tokio::test]
async fn dns01_validates_wildcards_through_the_configured_resolver() {
    let h = harness(json!({})).await;
    let client = Client::new(&h).await;
    let names = ["*.zone.example.test", "zone.example.test"];
    let order = client.order(&h, &names).await;
    assert_eq!(order.status, StatusCode::CREATED, "{}", order.text);
    client.authorize(&h, &order, "dns-01").await;
    let done = client.finalize(&h, &order, &leaf_key(), &names).await;
    assert_eq!(done.body["status"], "valid", "{}", done.text);

    // A wrong TXT value fails the challenge, with the problem recorded.
    let order = client.order(&h, &["bad.example.test"]).await;
    let authz = client
        .post(&h, order.body["authorizations"][0].as_str().unwrap(), None)
        .await;
    let challenge = authz.body["challenges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "dns-01")
        .unwrap()
        .clone();
    h.dns
        .lock()
        .unwrap()
        .insert("_acme-challenge.bad.example.test".into(), "wrong".into());
    client
        .post(&h, challenge["url"].as_str().unwrap(), Some(&json!({})))
        .await;
    for _ in 0..200 {
        let c = client
            .post(&h, challenge["url"].as_str().unwrap(), None)
            .await;
        if c.body["status"] == "invalid" {
            assert_eq!(
                c.body["error"]["type"], "urn:ietf:params:acme:error:incorrectResponse",
                "{}",
                c.text
            );
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the challenge never failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_orders_from_ten_accounts_in_parallel_all_complete() {
    let h = Arc::new(harness(json!({})).await);
    let mut clients = Vec::new();
    for _ in 0..10 {
        clients.push(Arc::new(Client::new(&h).await));
    }
    let mut tasks = Vec::new();
    for i in 0..50 {
        let h = Arc::clone(&h);
        let client = Arc::clone(&clients[i % 10]);
        tasks.push(tokio::spawn(async move {
            let name = format!("host{i}.example.test");
            client.issue(&h, &[&name], &leaf_key()).await
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(h.sql("SELECT COUNT(*) FROM acme_certificates"), "50");
    let hits = h.responder.hits.lock().unwrap();
    assert_eq!(hits.len(), 50);
    assert!(
        hits.values().all(|&n| n == 1),
        "each challenge validated once: {hits:?}"
    );
}

#[tokio::test]
async fn rate_limits_answer_rate_limited_with_retry_after() {
    let h = harness(json!({"ordersPerAccountPerHour": 2, "revocationReasons": [0, 1, 3]})).await;
    let client = Client::new(&h).await;
    for name in ["a.example.test", "b.example.test"] {
        let r = client.order(&h, &[name]).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    let r = client.order(&h, &["c.example.test"]).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
    assert_eq!(r.problem(), "rateLimited");
    assert!(r.headers.contains_key("retry-after"));

    // Per identifier, over all accounts.
    let h = harness(json!({"ordersPerIdentifierPerHour": 1})).await;
    let first = Client::new(&h).await;
    let second = Client::new(&h).await;
    let r = first.order(&h, &["popular.example.test"]).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = second
        .order(&h, &["popular.example.test", "other.example.test"])
        .await;
    assert_eq!(r.problem(), "rateLimited", "{}", r.text);
    let r = second.order(&h, &["other.example.test"]).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
}

/// One address cannot flood the nonce table or the account table: `newNonce` is rate-limited,
/// the nonces an address holds unused are capped (error responses then come without one), new
/// accounts per address per hour are capped, and an account lists at most ten contacts.
#[tokio::test]
async fn one_address_cannot_flood_nonces_or_accounts() {
    let h = harness(json!({})).await;
    let attacker: std::net::IpAddr = "192.0.2.66".parse().unwrap();
    let neighbour: std::net::IpAddr = "192.0.2.67".parse().unwrap();
    let new_nonce = format!("{BASE}/new-nonce");
    let mut limited = None;
    for n in 0..200 {
        let r = h
            .send_from(Some(attacker), "HEAD", &new_nonce, "", Vec::new())
            .await;
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            limited = Some((n, r));
            break;
        }
        assert_eq!(r.status, StatusCode::OK);
    }
    let (n, r) = limited.expect("1,000 nonces a second from one address went unlimited");
    assert!((50..60).contains(&n), "limited after {n} requests");
    assert!(r.headers.contains_key("retry-after"), "{:?}", r.headers);
    assert!(!r.headers.contains_key("replay-nonce"));
    let r = h
        .send_from(Some(neighbour), "HEAD", &new_nonce, "", Vec::new())
        .await;
    assert_eq!(r.status, StatusCode::OK, "another address is not limited");

    // Every error response hands out a nonce: the attacker collects them until its cap.
    let garbage = format!("{BASE}/new-order");
    let mut without = 0;
    for _ in 0..1100 {
        let r = h
            .send_from(
                Some(attacker),
                "POST",
                &garbage,
                "application/jose+json",
                b"{}".to_vec(),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
        if !r.headers.contains_key("replay-nonce") {
            without += 1;
        }
    }
    assert!(
        without >= 100,
        "only {without} answers came without a nonce"
    );
    let stored: u64 = h.sql("SELECT COUNT(*) FROM acme_nonces").parse().unwrap();
    assert!(stored <= 1100, "{stored} nonces stored");

    // Accounts: the 21st within the hour from one address is refused, with Retry-After.
    let key_for = |_| PrivateKey::generate(KeyAlgorithm::EcP256).unwrap();
    let url = format!("{BASE}/new-account");
    let register = |key: PrivateKey, contacts: Value| {
        let h = &h;
        let url = url.clone();
        async move {
            let body = jws(
                &key,
                json!({"alg": key.jws_algorithm(), "nonce": h.nonce().await, "url": url, "jwk": public_jwk(&key)}),
                Some(&json!({"termsOfServiceAgreed": true, "contact": contacts})),
            );
            h.send_from(Some(neighbour), "POST", &url, "application/jose+json", body)
                .await
        }
    };
    let many: Vec<String> = (0..11)
        .map(|i| format!("mailto:ops{i}@example.test"))
        .collect();
    let r = register(key_for(0), json!(many)).await;
    assert_eq!(r.problem(), "invalidContact", "{}", r.text);
    for i in 0..20 {
        let r = register(key_for(i), json!(["mailto:ops@example.test"])).await;
        assert_eq!(r.status, StatusCode::CREATED, "account {i}: {}", r.text);
    }
    let r = register(key_for(20), json!([])).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
    assert_eq!(r.problem(), "rateLimited");
    assert!(r.headers.contains_key("retry-after"));
    let accounts: u64 = h.sql("SELECT COUNT(*) FROM acme_accounts").parse().unwrap();
    assert_eq!(accounts, 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_challenge_pushed_by_many_requests_at_once_is_validated_once() {
    let h = Arc::new(harness(json!({})).await);
    let client = Arc::new(Client::new(&h).await);
    let order = client.order(&h, &["once.example.test"]).await;
    let authz = client
        .post(&h, order.body["authorizations"][0].as_str().unwrap(), None)
        .await;
    let challenge = authz.body["challenges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "http-01")
        .unwrap()
        .clone();
    let token = challenge["token"].as_str().unwrap().to_string();
    h.responder
        .answers
        .lock()
        .unwrap()
        .insert(token.clone(), format!("{token}.{}", client.thumbprint()));
    let url = challenge["url"].as_str().unwrap().to_string();
    let pushes: Vec<_> = (0..8)
        .map(|_| {
            let (h, client, url) = (Arc::clone(&h), Arc::clone(&client), url.clone());
            tokio::spawn(async move { client.post(&h, &url, Some(&json!({}))).await.status })
        })
        .collect();
    for push in pushes {
        assert_eq!(push.await.unwrap(), StatusCode::OK);
    }
    for _ in 0..100 {
        let c = client.post(&h, &url, None).await;
        if c.body["status"] == "valid" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(h.responder.hits.lock().unwrap().get(&token), Some(&1));
}

/// The first authorization of `order` and its http-01 challenge.
async fn http01_challenge(client: &Client, h: &Harness, order: &Response) -> (Response, Value) {
    let authz = client
        .post(h, order.body["authorizations"][0].as_str().unwrap(), None)
        .await;
    let challenge = authz.body["challenges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "http-01")
        .unwrap_or_else(|| panic!("no http-01 in {}", authz.text))
        .clone();
    (authz, challenge)
}

/// Polls the challenge at `url` until it is valid or invalid.
async fn settled(client: &Client, h: &Harness, url: &str) -> Response {
    for _ in 0..200 {
        let c = client.post(h, url, None).await;
        if matches!(c.body["status"].as_str(), Some("valid" | "invalid")) {
            return c;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the challenge at {url} never settled");
}

#[tokio::test]
async fn a_malformed_chunked_http01_answer_fails_the_challenge_without_a_panic() {
    let h = harness(json!({})).await;
    let client = Client::new(&h).await;
    let order = client.order(&h, &["chunks.example.test"]).await;
    assert_eq!(order.status, StatusCode::CREATED, "{}", order.text);
    let (_, challenge) = http01_challenge(&client, &h, &order).await;
    let token = challenge["token"].as_str().unwrap().to_string();
    // A chunk size that ends inside the two bytes of "é": once a panic in the validation task,
    // which left the challenge `processing` for good.
    let raw = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n1\r\né\r\n0\r\n\r\n";
    h.responder
        .raw
        .lock()
        .unwrap()
        .insert(token, raw.as_bytes().to_vec());
    let url = challenge["url"].as_str().unwrap();
    let r = client.post(&h, url, Some(&json!({}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let c = settled(&client, &h, url).await;
    assert_eq!(c.body["status"], "invalid", "{}", c.text);
    assert_eq!(
        c.body["error"]["type"], "urn:ietf:params:acme:error:incorrectResponse",
        "{}",
        c.text
    );
    assert!(
        c.body["error"]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("malformed HTTP")),
        "{}",
        c.text
    );
}

/// Asks for validation of `challenge` once the responder serves the right key authorization
/// after `wrong_first` wrong answers; returns the challenge once it settles, and the hits.
async fn validate_after_wrong_answers(wrong_first: usize) -> (Response, usize) {
    let h = harness(json!({})).await;
    let client = Client::new(&h).await;
    let order = client.order(&h, &["retry.example.test"]).await;
    assert_eq!(order.status, StatusCode::CREATED, "{}", order.text);
    let (_, challenge) = http01_challenge(&client, &h, &order).await;
    let token = challenge["token"].as_str().unwrap().to_string();
    h.responder
        .answers
        .lock()
        .unwrap()
        .insert(token.clone(), format!("{token}.{}", client.thumbprint()));
    h.responder
        .wrong_first
        .lock()
        .unwrap()
        .insert(token.clone(), wrong_first);
    let url = challenge["url"].as_str().unwrap();
    let r = client.post(&h, url, Some(&json!({}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // Three attempts one second apart settle within a few seconds.
    for _ in 0..200 {
        let c = client.post(&h, url, None).await;
        if matches!(c.body["status"].as_str(), Some("valid" | "invalid")) {
            // Let any further (wrong) attempt arrive before counting.
            tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
            let hits = h.responder.hits.lock().unwrap().get(&token).copied();
            return (c, hits.unwrap_or(0));
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the challenge never settled");
}

#[tokio::test]
async fn a_challenge_answered_wrongly_once_is_retried_and_becomes_valid() {
    let (challenge, hits) = validate_after_wrong_answers(1).await;
    assert_eq!(challenge.body["status"], "valid", "{}", challenge.text);
    assert_eq!(hits, 2, "one wrong answer, then the retry that succeeds");
}

#[tokio::test]
async fn a_challenge_always_answered_wrongly_fails_after_three_attempts() {
    let (challenge, hits) = validate_after_wrong_answers(usize::MAX).await;
    assert_eq!(challenge.body["status"], "invalid", "{}", challenge.text);
    assert_eq!(
        challenge.body["error"]["type"], "urn:ietf:params:acme:error:incorrectResponse",
        "{}",
        challenge.text
    );
    assert_eq!(hits, 3, "exactly three attempts before giving up");
}

fn parse_time(value: &Value) -> time::OffsetDateTime {
    time::OffsetDateTime::parse(
        value.as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap()
}

#[tokio::test]
async fn orders_and_authorizations_expire_with_the_authority_clock() {
    let start = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap();
    let clock = Arc::new(FixedClock::new(start));
    let h = harness_with_clock(json!({}), clock.clone()).await;
    let client = Client::new(&h).await;

    // A ready order (its authorization valid) and a pending one.
    let ready = client.order(&h, &["ready.example.test"]).await;
    assert_eq!(ready.status, StatusCode::CREATED, "{}", ready.text);
    client.authorize(&h, &ready, "http-01").await;
    let pending = client.order(&h, &["pending.example.test"]).await;
    assert_eq!(pending.body["status"], "pending", "{}", pending.text);
    let (pending_authz, _) = http01_challenge(&client, &h, &pending).await;
    assert_eq!(pending_authz.body["status"], "pending");
    let (ready_authz, _) = http01_challenge(&client, &h, &ready).await;
    assert_eq!(ready_authz.body["status"], "valid", "{}", ready_authz.text);

    let order_expires = parse_time(&ready.body["expires"]);
    let valid_authz_expires = parse_time(&ready_authz.body["expires"]);
    let pending_authz_expires = parse_time(&pending_authz.body["expires"]);
    assert!(order_expires > start && pending_authz_expires > start);

    // Up to the second of expiry nothing has changed.
    clock.set(order_expires);
    let r = client.post(&h, &ready.location(), None).await;
    assert_eq!(r.body["status"], "ready", "{}", r.text);

    let later = order_expires
        .max(valid_authz_expires)
        .max(pending_authz_expires)
        + time::Duration::seconds(1);
    clock.set(later);
    for order in [&ready, &pending] {
        let r = client.post(&h, &order.location(), None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.body["status"], "invalid", "{}", r.text);
        let url = order.body["authorizations"][0].as_str().unwrap();
        let authz = client.post(&h, url, None).await;
        assert_eq!(authz.body["status"], "expired", "{}", authz.text);
    }
    let refused = client
        .finalize(&h, &ready, &leaf_key(), &["ready.example.test"])
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text);
    assert_eq!(refused.problem(), "orderNotReady", "{}", refused.text);
    assert_eq!(h.sql("SELECT COUNT(*) FROM acme_certificates"), "0");
}

/// A nonce is good for an hour of the authority's clock, its last second included, and is
/// refused a second later: kept in the store or in memory.
#[tokio::test]
async fn nonces_expire_an_hour_after_they_are_issued() {
    for book in [NonceBook::Store, NonceBook::memory()] {
        nonces_expire_in(book).await;
    }
}

async fn nonces_expire_in(book: NonceBook) {
    let start = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap();
    let clock = Arc::new(FixedClock::new(start));
    let h = harness_with_nonces(json!({}), clock.clone(), book).await;
    let client = Client::new(&h).await;
    let (on_time, late) = (h.nonce().await, h.nonce().await);
    clock.set(start + time::Duration::seconds(3600));
    let r = client
        .post_with_nonce(&h, &client.kid, None, &on_time)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    clock.set(start + time::Duration::seconds(3601));
    let r = client.post_with_nonce(&h, &client.kid, None, &late).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(r.problem(), "badNonce", "{}", r.text);
    // The nonce of that refusal is fresh, hence good.
    let fresh = r.headers["replay-nonce"].to_str().unwrap().to_string();
    let r = client.post_with_nonce(&h, &client.kid, None, &fresh).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

/// Nonces kept in memory (a CA on one SQLite file) are accepted once, like those in the store,
/// and cost the store nothing: not a row is written for them.
#[tokio::test]
async fn nonces_in_memory_are_used_once_and_never_stored() {
    let h = harness_with_nonces(json!({}), Arc::new(SystemClock), NonceBook::memory()).await;
    let client = Client::new(&h).await;
    let nonce = h.nonce().await;
    let r = client.post_with_nonce(&h, &client.kid, None, &nonce).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = client.post_with_nonce(&h, &client.kid, None, &nonce).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(r.problem(), "badNonce", "used twice: {}", r.text);
    let r = client
        .post_with_nonce(&h, &client.kid, None, "never-handed-out")
        .await;
    assert_eq!(r.problem(), "badNonce", "{}", r.text);
    let fresh = r.headers["replay-nonce"].to_str().unwrap().to_string();
    let r = client.post_with_nonce(&h, &client.kid, None, &fresh).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(h.sql("SELECT COUNT(*) FROM acme_nonces"), "0");
}

/// The per-hour order limit counts the orders of the last hour of the authority's clock, the
/// order made exactly an hour ago included: a refused account may order again once its
/// oldest counted order is more than an hour old.
#[tokio::test]
async fn order_limits_count_the_last_hour_of_the_authority_clock() {
    let start = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap();
    let clock = Arc::new(FixedClock::new(start));
    let h = harness_with_clock(json!({"ordersPerAccountPerHour": 2}), clock.clone()).await;
    let client = Client::new(&h).await;
    let at = |seconds: i64| start + time::Duration::seconds(seconds);
    let r = client.order(&h, &["first.example.test"]).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    clock.set(at(1800));
    let r = client.order(&h, &["second.example.test"]).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    for now in [1800, 3600] {
        clock.set(at(now));
        let r = client.order(&h, &["third.example.test"]).await;
        assert_eq!(
            r.status,
            StatusCode::TOO_MANY_REQUESTS,
            "at {now}: {}",
            r.text
        );
        assert_eq!(r.problem(), "rateLimited");
        assert_eq!(r.headers["retry-after"], "3600");
    }
    clock.set(at(3601));
    let r = client.order(&h, &["third.example.test"]).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = client.order(&h, &["fourth.example.test"]).await;
    assert_eq!(
        r.status,
        StatusCode::TOO_MANY_REQUESTS,
        "the second and third orders are in the window: {}",
        r.text
    );
}

/// A new order for `name` whose http-01 challenge has been asked for, with the responder
/// holding the CA's fetch: returns the order, the challenge URL, the authorization id and the
/// hold once the CA is waiting for the answer.
async fn validation_in_progress(
    h: &Harness,
    client: &Client,
    name: &str,
) -> (Response, String, String, Arc<Hold>) {
    let order = client.order(h, &[name]).await;
    assert_eq!(order.status, StatusCode::CREATED, "{}", order.text);
    let (_, challenge) = http01_challenge(client, h, &order).await;
    let token = challenge["token"].as_str().unwrap().to_string();
    h.responder
        .answers
        .lock()
        .unwrap()
        .insert(token.clone(), format!("{token}.{}", client.thumbprint()));
    let hold = h.responder.hold(&token);
    let url = challenge["url"].as_str().unwrap().to_string();
    let r = client.post(h, &url, Some(&json!({}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["status"], "processing", "{}", r.text);
    hold.arrived.notified().await;
    let authz_id = authorization_id(&order);
    (order, url, authz_id, hold)
}

/// The authorization as stored: its status column and its document.
fn stored_authorization(h: &Harness, id: &str) -> (String, Value) {
    let status = h.sql(&format!(
        "SELECT status FROM acme_authorizations WHERE id = '{id}'"
    ));
    let body = h.sql(&format!(
        "SELECT body FROM acme_authorizations WHERE id = '{id}'"
    ));
    (status, serde_json::from_str(&body).unwrap())
}

/// The stored challenge a challenge URL names.
fn stored_challenge(h: &Harness, authz_id: &str, url: &str) -> Value {
    let index: usize = url.rsplit('/').next().unwrap().parse().unwrap();
    stored_authorization(h, authz_id).1["challenges"][index].clone()
}

/// A shutdown waits for a validation in progress: once `finish` returns, its outcome is in
/// the store (read directly, without polling).
#[tokio::test]
async fn a_shutdown_waits_for_a_validation_in_progress() {
    let h = harness(json!({})).await;
    let client = Client::new(&h).await;
    let (_, url, authz_id, hold) = validation_in_progress(&h, &client, "drain.example.test").await;
    let validations = h.state.acme().unwrap().validations().clone();
    assert_eq!(validations.running(), 1);
    let finishing = tokio::spawn(async move {
        validations
            .finish(tokio::time::Instant::now() + std::time::Duration::from_secs(3600))
            .await
    });
    hold.release.notify_one();
    assert_eq!(finishing.await.unwrap(), 0, "nothing was aborted");
    assert_eq!(stored_challenge(&h, &authz_id, &url)["status"], "valid");
    assert_eq!(stored_authorization(&h, &authz_id).0, "valid");
}

/// A validation that a shutdown stops before it has an answer fails its challenge with a
/// problem saying so; it is never left `processing`, which nothing would ever finish. A
/// validation asked for after the stop (by a request still in flight) fails the same way.
#[tokio::test]
async fn a_validation_stopped_by_a_shutdown_fails_instead_of_staying_processing() {
    let h = harness(json!({})).await;
    let client = Client::new(&h).await;
    let (order, url, authz_id, _never_released) =
        validation_in_progress(&h, &client, "stopped.example.test").await;
    let validations = h.state.acme().unwrap().validations().clone();
    let now = tokio::time::Instant::now();
    let aborted = validations
        .finish_by(now, now + std::time::Duration::from_secs(3600))
        .await;
    assert_eq!(aborted, 0, "the stopped validation recorded its outcome");
    let interrupted = |challenge: &Value| {
        assert_eq!(challenge["status"], "invalid", "{challenge}");
        assert_eq!(
            challenge["error"]["type"], "urn:ietf:params:acme:error:serverInternal",
            "{challenge}"
        );
        assert!(
            challenge["error"]["detail"]
                .as_str()
                .is_some_and(|d| d.contains("shut down")),
            "{challenge}"
        );
    };
    interrupted(&stored_challenge(&h, &authz_id, &url));
    assert_eq!(stored_authorization(&h, &authz_id).0, "invalid");
    // What the client reads.
    interrupted(&client.post(&h, &url, None).await.body);
    let r = client.post(&h, &order.location(), None).await;
    assert_eq!(r.body["status"], "invalid", "{}", r.text);

    let (late_url, late_authz) =
        validation_asked_after_stop(&h, &client, "late.example.test").await;
    assert_eq!(
        validations
            .finish_by(now, now + std::time::Duration::from_secs(3600))
            .await,
        0
    );
    interrupted(&stored_challenge(&h, &late_authz, &late_url));
    assert!(
        !h.sql("SELECT body FROM acme_authorizations")
            .contains("processing"),
        "no challenge is left processing"
    );
}

/// A new order for `name` whose http-01 challenge has been asked for, on a service whose
/// validations were stopped (so the CA never fetches): the challenge URL and authorization id.
async fn validation_asked_after_stop(h: &Harness, client: &Client, name: &str) -> (String, String) {
    let order = client.order(h, &[name]).await;
    assert_eq!(order.status, StatusCode::CREATED, "{}", order.text);
    let (_, challenge) = http01_challenge(client, h, &order).await;
    let url = challenge["url"].as_str().unwrap().to_string();
    let r = client.post(h, &url, Some(&json!({}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    (url, authorization_id(&order))
}

/// The id of the first authorization of an order.
fn authorization_id(order: &Response) -> String {
    order.body["authorizations"][0]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn the_name_policy_refuses_orders_when_made_and_when_finalized_after_a_reload() {
    let h = harness(json!({})).await;
    let client = Client::new(&h).await;
    let key = leaf_key();
    let order = client.order(&h, &["www.example.test"]).await;
    assert_eq!(order.status, StatusCode::CREATED, "{}", order.text);
    client.authorize(&h, &order, "http-01").await;

    // The policy changes between the order and its finalization: the certificate is refused,
    // and the order says why.
    h.reload_with_policy(json!({"x509": {"deny": {"dns": ["*.example.test"]}}}));
    let message = r#"dns name "www.example.test" is denied by the authority policy's deny rule "*.example.test""#;
    let done = client
        .finalize(&h, &order, &key, &["www.example.test"])
        .await;
    assert_eq!(done.status, StatusCode::BAD_REQUEST, "{}", done.text);
    assert_eq!(done.problem(), "rejectedIdentifier", "{}", done.text);
    assert_eq!(done.body["detail"], message, "{}", done.text);
    let after = client.post(&h, &order.location(), None).await;
    assert_eq!(after.body["status"], "invalid", "{}", after.text);
    assert_eq!(
        after.body["error"]["type"], "urn:ietf:params:acme:error:rejectedIdentifier",
        "{}",
        after.text
    );
    assert_eq!(after.body["error"]["detail"], message, "{}", after.text);

    // A new order for a denied name is refused when it is made, and nothing is stored for it.
    let orders = h.sql("SELECT COUNT(*) FROM acme_orders");
    let refused = client.order(&h, &["api.example.test", "other.test"]).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.text);
    assert_eq!(refused.problem(), "rejectedIdentifier", "{}", refused.text);
    assert_eq!(
        refused.body["detail"],
        r#"dns name "api.example.test" is denied by the authority policy's deny rule "*.example.test""#
    );
    assert_eq!(h.sql("SELECT COUNT(*) FROM acme_orders"), orders);
    // Names the policy leaves alone are still issued.
    client.issue(&h, &["other.test"], &key).await;
}

/// A POST of `length` bytes of padding to `path`, with its `Content-Length` announced or not
/// (then the body is only counted as it is read).
async fn post_sized(h: &Harness, path: &str, length: usize, announce: bool) -> Response {
    let mut request = Request::builder()
        .method("POST")
        .uri(path)
        .header("host", "ca.test")
        .header("content-type", "application/jose+json");
    if announce {
        request = request.header("content-length", length);
    }
    let request = request.body(Body::from(vec![b' '; length])).unwrap();
    let response = h.app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Response {
        status,
        headers,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        text: String::from_utf8_lossy(&bytes).to_string(),
    }
}

/// An ACME body is read up to the ACME parser's 64 KiB: one byte more is refused with 413
/// before it reaches ACME, whether its length is announced or not; the limit itself does reach
/// the parser (which finds no JWS in padding).
#[tokio::test]
async fn acme_bodies_are_refused_past_64_kib_and_read_up_to_it() {
    let h = harness(json!({})).await;
    let limit = mayfly_acme::jws::MAX_BODY_LEN;
    assert_eq!(limit, 64 * 1024);
    let path = "/acme/acme/new-account";
    for announce in [true, false] {
        let r = post_sized(&h, path, limit + 1, announce).await;
        assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.text);
        assert!(
            r.text.contains(&format!("larger than {limit} bytes")),
            "{}",
            r.text
        );
        let r = post_sized(&h, path, limit, announce).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
        assert_eq!(r.problem(), "malformed", "{}", r.text);
    }
}

/// The contact cap holds on both ways into an account: `newAccount` takes ten contacts, and an
/// update (`POST` to the account URL) with eleven is refused `invalidContact`, leaving the
/// account as it was.
#[tokio::test]
async fn an_account_takes_ten_contacts_and_an_update_to_eleven_is_refused() {
    let h = harness(json!({})).await;
    let contacts = |n: usize, tag: &str| -> Vec<String> {
        (0..n)
            .map(|i| format!("mailto:{tag}{i}@example.test"))
            .collect()
    };
    let key = leaf_key();
    let url = format!("{BASE}/new-account");
    let ten = contacts(10, "ops");
    let body = jws(
        &key,
        json!({"alg": key.jws_algorithm(), "nonce": h.nonce().await, "url": url, "jwk": public_jwk(&key)}),
        Some(&json!({"termsOfServiceAgreed": true, "contact": ten})),
    );
    let r = h.send("POST", &url, "application/jose+json", body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["contact"], json!(ten));
    let client = Client {
        key,
        kid: r.location(),
    };

    let r = client
        .post(
            &h,
            &client.kid,
            Some(&json!({"contact": contacts(11, "more")})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(r.problem(), "invalidContact", "{}", r.text);
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("11 contacts: an account may have at most 10"),
        "{}",
        r.text
    );
    let r = client.post(&h, &client.kid, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.body["contact"],
        json!(ten),
        "the refused update changed nothing"
    );

    // Ten others replace them.
    let others = contacts(10, "new");
    let r = client
        .post(&h, &client.kid, Some(&json!({"contact": others})))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["contact"], json!(others));
}

/// An order's `notBefore`/`notAfter` (RFC 8555 7.4), as step-ca takes them: checked against
/// the provisioner's claims when the order is made, echoed in the order, and given to its
/// certificate exactly. Times the claims do not allow are refused before an order exists.
#[tokio::test]
async fn an_order_s_validity_is_checked_when_made_and_given_to_its_certificate() {
    let h = harness(json!({})).await;
    let client = Client::new(&h).await;
    let rfc = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let now = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap();
    let order_for = |not_before: time::OffsetDateTime, not_after: time::OffsetDateTime| {
        json!({
            "identifiers": [{"type": "dns", "value": "timed.example.test"}],
            "notBefore": rfc(not_before),
            "notAfter": rfc(not_after),
        })
    };
    let new_order = format!("{BASE}/new-order");
    for (what, not_before, not_after, says) in [
        (
            "longer than the claims allow",
            now + time::Duration::hours(1),
            now + time::Duration::hours(30),
            "outside the allowed range",
        ),
        (
            "ending before it starts",
            now + time::Duration::hours(2),
            now + time::Duration::hours(1),
            "notAfter",
        ),
        (
            "starting in the past",
            now - time::Duration::hours(2),
            now + time::Duration::hours(2),
            "past",
        ),
    ] {
        let refused = client
            .post(&h, &new_order, Some(&order_for(not_before, not_after)))
            .await;
        assert_eq!(refused.problem(), "malformed", "{what}: {}", refused.text);
        assert!(
            refused.body["detail"].as_str().unwrap().contains(says),
            "{what}: {}",
            refused.text
        );
    }
    assert_eq!(h.sql("SELECT COUNT(*) FROM acme_orders"), "0");

    let not_before = now + time::Duration::hours(1);
    let not_after = not_before + time::Duration::hours(6);
    let order = client
        .post(&h, &new_order, Some(&order_for(not_before, not_after)))
        .await;
    assert_eq!(order.status, StatusCode::CREATED, "{}", order.text);
    assert_eq!(
        order.body["notBefore"],
        json!(rfc(not_before)),
        "{}",
        order.text
    );
    assert_eq!(
        order.body["notAfter"],
        json!(rfc(not_after)),
        "{}",
        order.text
    );
    client.authorize(&h, &order, "http-01").await;
    let key = leaf_key();
    let done = client
        .finalize(&h, &order, &key, &["timed.example.test"])
        .await;
    assert_eq!(done.body["status"], "valid", "{}", done.text);
    let chain = client
        .post(&h, done.body["certificate"].as_str().unwrap(), None)
        .await;
    let der = mayfly_pki::cert::certificates_from_pem(chain.text.as_bytes()).unwrap();
    let info = mayfly_pki::cert::CertificateInfo::from_der(&der[0]).unwrap();
    assert_eq!((info.not_before, info.not_after), (not_before, not_after));
}
