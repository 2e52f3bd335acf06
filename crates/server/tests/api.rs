//! The HTTP API, driven in-process through the real router with a real SQLite store: every
//! route's success shape, and a table of bad requests with the status and message each must get
//! and proof that none of them stored anything.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use mayfly_authority::clock::SystemClock;
use mayfly_authority::provisioner::Provisioner;
use mayfly_authority::publication::{PublicPorts, Publication};
use mayfly_authority::{Authority, AuthorityParts, LoadedMaterial};
use mayfly_config::init::{self, InitOptions, Layout};
use mayfly_pki::jose::{jwe, jwk::Jwk, jws};
use mayfly_pki::{KeyAlgorithm, PrivateKey, San};
use mayfly_server::api::{AppState, router};
use mayfly_server::tls::TlsSettings;
use serde_json::{Value, json};
use tower::ServiceExt;
use x509_parser::prelude::FromDer;

const PROVISIONER_PASSWORD: &[u8] = b"provisioner password";
const AUDIENCE: &str = "https://ca.test/1.0/sign";

struct Harness {
    _dir: tempfile::TempDir,
    state: Arc<AppState>,
    db_path: std::path::PathBuf,
    app: axum::Router,
    provisioner_key: PrivateKey,
    kid: String,
    root_fingerprint: String,
}

async fn harness() -> Harness {
    harness_with_clock(Arc::new(SystemClock)).await
}

/// Passive revocation only: ca.json's `crl` and `ocsp` blocks are left out.
async fn harness_with_clock(clock: Arc<dyn mayfly_authority::clock::Clock>) -> Harness {
    harness_with(clock, false).await
}

async fn harness_with(clock: Arc<dyn mayfly_authority::clock::Clock>, active: bool) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::new(dir.path());
    let options = InitOptions {
        name: "Test".into(),
        dns_names: vec!["ca.test".into()],
        address: ":443".into(),
        provisioner: "admin".into(),
        key_password: None,
        provisioner_password: PROVISIONER_PASSWORD.to_vec(),
        existing_root: None,
        pki_only: false,
        kdf_iterations: 1000,
        ssh: None,
        insecure_address: None,
    };
    let plan = init::plan(&options, &layout).unwrap();
    init::write(&plan, &layout, false).unwrap();
    let loaded = mayfly_config::config::CaConfig::load(&layout.ca_config()).unwrap();
    let material = LoadedMaterial::load(&loaded.config, dir.path(), None).unwrap();
    let db_path = layout.database();
    let store = mayfly_store::SqliteStore::open(&db_path).await.unwrap();
    let Provisioner::Jwk(provisioner) = &material.provisioners[0] else {
        panic!("expected a JWK provisioner")
    };
    let private = jwe::decrypt_pbes2(
        provisioner.encrypted_key.as_deref().unwrap(),
        PROVISIONER_PASSWORD,
    )
    .unwrap();
    let provisioner_key = Jwk::from_json(&private).unwrap().to_private_key().unwrap();
    let kid = provisioner.kid.clone();
    let authority = Authority::new(AuthorityParts {
        ssh: None,
        roots: material.roots,
        federated_roots: material.federated_roots,
        intermediate: material.intermediate,
        provisioners: material.provisioners,
        name_policies: material.name_policies,
        backdate: material.backdate,
        dns_names: loaded.config.dns_names.clone(),
        store: Arc::new(store),
        clock,
        publication: if active {
            Publication::from_config(
                &loaded.config,
                PublicPorts {
                    https: 443,
                    http: None,
                },
            )
            .unwrap()
        } else {
            Publication::default()
        },
    })
    .unwrap();
    let tls_options = TlsSettings::from_config(None).unwrap().advertised;
    let state = Arc::new(AppState::new(authority, tls_options));
    let app = router(Arc::clone(&state));
    Harness {
        _dir: dir,
        state,
        db_path,
        app,
        provisioner_key,
        kid,
        root_fingerprint: plan.root_fingerprint,
    }
}

impl Harness {
    fn claims(&self, subject: &str) -> Value {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        json!({
            "aud": AUDIENCE, "iss": "admin", "sub": subject, "sans": [subject],
            "nbf": now, "iat": now, "exp": now + 300,
            "jti": mayfly_pki::random::random_hex(32).unwrap(),
            "sha": self.root_fingerprint,
        })
    }

    /// A certificate for `name` and `key`, signed with a fresh token: its chain, DER.
    async fn issued_chain(&self, key: &PrivateKey, name: &str) -> Vec<Vec<u8>> {
        let csr = mayfly_pki::csr::create_pem(key, name, &[San::parse(name).unwrap()]).unwrap();
        let (status, body) = self
            .sign(json!({"csr": csr, "ott": self.token(&self.claims(name))}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["certChain"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|pem| {
                mayfly_pki::cert::certificates_from_pem(pem.as_str().unwrap().as_bytes()).unwrap()
            })
            .collect()
    }

    fn token(&self, claims: &Value) -> String {
        jws::sign_compact(
            &self.provisioner_key,
            &self.kid,
            claims.to_string().as_bytes(),
        )
        .unwrap()
    }

    async fn call(&self, method: &str, uri: &str, body: Body) -> (StatusCode, Value) {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json")
            .body(body)
            .unwrap();
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        (status, value)
    }

    /// `POST /1.0/renew` with `Authorization: Bearer TOKEN`.
    async fn renew_with_token(&self, token: &str) -> (StatusCode, Value) {
        let request = Request::builder()
            .method("POST")
            .uri("/1.0/renew")
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap();
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn sign(&self, body: Value) -> (StatusCode, Value) {
        self.call("POST", "/1.0/sign", Body::from(body.to_string()))
            .await
    }

    fn stored_certificates(&self) -> usize {
        let out = std::process::Command::new("sqlite3")
            .arg(&self.db_path)
            .arg("SELECT COUNT(*) FROM certificates")
            .output()
            .expect("sqlite3 is needed (Debian package sqlite3)");
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    }
}

fn csr_for(name: &str) -> String {
    let key = PrivateKey::generate(KeyAlgorithm::EcP256).unwrap();
    mayfly_pki::csr::create_pem(&key, name, &[San::parse(name).unwrap()]).unwrap()
}

#[tokio::test]
async fn read_routes_answer_at_both_prefixes() {
    let h = harness().await;
    for prefix in ["", "/1.0"] {
        let (status, body) = h
            .call("GET", &format!("{prefix}/health"), Body::empty())
            .await;
        assert_eq!((status, body), (StatusCode::OK, json!({"status": "ok"})));

        // The step CLI asks before every SSH flow; step-ca answers the same two fields.
        let (status, body) = h
            .call("GET", &format!("{prefix}/version"), Body::empty())
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(body["requireClientAuthentication"], false);

        let (status, body) = h
            .call(
                "GET",
                &format!("{prefix}/root/{}", h.root_fingerprint),
                Body::empty(),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let der = mayfly_pki::cert::certificates_from_pem(body["ca"].as_str().unwrap().as_bytes())
            .unwrap();
        assert_eq!(
            mayfly_pki::cert::fingerprint_sha256(&der[0]),
            h.root_fingerprint
        );

        let (status, body) = h
            .call("GET", &format!("{prefix}/roots"), Body::empty())
            .await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(body["crts"].as_array().unwrap().len(), 1);

        let (status, body) = h
            .call("GET", &format!("{prefix}/federation"), Body::empty())
            .await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(body["crts"].as_array().unwrap().len(), 1);

        let (status, body) = h
            .call("GET", &format!("{prefix}/provisioners"), Body::empty())
            .await;
        assert_eq!(status, StatusCode::OK);
        let p = &body["provisioners"][0];
        assert_eq!(
            (p["type"].as_str(), p["name"].as_str()),
            (Some("JWK"), Some("admin"))
        );
        assert_eq!(p["key"]["kid"].as_str(), Some(h.kid.as_str()));
        let jwe = p["encryptedKey"].as_str().unwrap();
        let header: Value =
            serde_json::from_slice(&base64_decode(jwe.split('.').next().unwrap())).unwrap();
        assert_eq!(header["alg"], "PBES2-HS256+A128KW");
        assert_eq!(header["enc"], "A256GCM");
        assert_eq!(header["cty"], "jwk+json");
        assert_eq!(body["nextCursor"], "");

        let (status, body) = h
            .call(
                "GET",
                &format!("{prefix}/provisioners/{}/encrypted-key", h.kid),
                Body::empty(),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["key"].as_str(), Some(jwe));
    }
    for (uri, expected) in [
        ("/root/0000", "no root with SHA-256 fingerprint"),
        (
            "/provisioners/nope/encrypted-key",
            "no provisioner with key id",
        ),
        ("/nothing-here", "no such route"),
        ("/provisioners?cursor=99", "cursor"),
    ] {
        let (status, body) = h.call("GET", uri, Body::empty()).await;
        assert!(status.is_client_error(), "{uri}: {status}");
        assert_eq!(
            body["status"].as_u64(),
            Some(u64::from(status.as_u16())),
            "{uri}: {body}"
        );
        assert!(
            body["message"].as_str().unwrap().contains(expected),
            "{uri}: {body}"
        );
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .unwrap()
}

#[tokio::test]
async fn sign_returns_the_chain_and_stores_the_certificate() {
    let h = harness().await;
    let token = h.token(&h.claims("svc.internal"));
    let (status, body) = h
        .sign(json!({"csr": csr_for("svc.internal"), "ott": token}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let chain = body["certChain"].as_array().unwrap();
    assert_eq!(chain.len(), 2);
    assert_eq!(chain[0], body["crt"]);
    assert_eq!(chain[1], body["ca"]);
    assert_eq!(body["tlsOptions"]["minVersion"], 1.2);
    assert_eq!(h.stored_certificates(), 1);

    let der =
        mayfly_pki::cert::certificates_from_pem(body["crt"].as_str().unwrap().as_bytes()).unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(&der[0]).unwrap();
    let lifetime = cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp();
    assert_eq!(lifetime, 24 * 3600 + 60, "24 h plus the 1 minute backdate");
    assert!(cert.raw_serial().len() >= 8, "at least 64 bits of serial");
}

#[tokio::test]
async fn bad_requests_get_a_precise_error_and_store_nothing() {
    let h = harness().await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let good_csr = csr_for("svc.internal");
    let with = |changes: Value| {
        let mut claims = h.claims("svc.internal");
        for (k, v) in changes.as_object().unwrap() {
            claims[k] = v.clone();
        }
        claims
    };
    let other_key = PrivateKey::generate(KeyAlgorithm::EcP256).unwrap();
    let other_kid = Jwk::public_from_key(&other_key).unwrap().kid.unwrap();
    let foreign_token = jws::sign_compact(
        &other_key,
        &other_kid,
        h.claims("svc.internal").to_string().as_bytes(),
    )
    .unwrap();
    let mut tampered = h.token(&h.claims("svc.internal"));
    tampered.truncate(tampered.len() - 4);
    tampered.push_str("AAAA");
    let mut cases: Vec<(&str, String, StatusCode, &str)> = vec![
        ("malformed JSON", "{\"csr\": ".into(), StatusCode::BAD_REQUEST, "not valid JSON"),
        ("missing field", json!({"csr": good_csr}).to_string(), StatusCode::BAD_REQUEST, "missing field `ott`"),
        ("wrong type", json!({"csr": 5, "ott": "x"}).to_string(), StatusCode::BAD_REQUEST, "wrong shape"),
        ("CSR not PEM", json!({"csr": "hello", "ott": h.token(&h.claims("svc.internal"))}).to_string(), StatusCode::BAD_REQUEST, "not PEM"),
        ("expired token", json!({"csr": good_csr, "ott": h.token(&with(json!({"nbf": now - 900, "iat": now - 900, "exp": now - 600})))}).to_string(), StatusCode::UNAUTHORIZED, "token expired"),
        ("token not yet valid", json!({"csr": good_csr, "ott": h.token(&with(json!({"nbf": now + 600, "iat": now, "exp": now + 900})))}).to_string(), StatusCode::UNAUTHORIZED, "not valid before"),
        ("token valid too long", json!({"csr": good_csr, "ott": h.token(&with(json!({"exp": now + 7200})))}).to_string(), StatusCode::UNAUTHORIZED, "more than the allowed 1 hour"),
        ("wrong audience", json!({"csr": good_csr, "ott": h.token(&with(json!({"aud": "https://other.test/1.0/sign"})))}).to_string(), StatusCode::UNAUTHORIZED, "audience"),
        ("wrong issuer", json!({"csr": good_csr, "ott": h.token(&with(json!({"iss": "mallory"})))}).to_string(), StatusCode::UNAUTHORIZED, "issuer \"mallory\""),
        ("wrong root fingerprint", json!({"csr": good_csr, "ott": h.token(&with(json!({"sha": "00".repeat(32)})))}).to_string(), StatusCode::UNAUTHORIZED, "root fingerprint"),
        ("unknown signing key", json!({"csr": good_csr, "ott": foreign_token}).to_string(), StatusCode::UNAUTHORIZED, "no provisioner's key"),
        ("tampered signature", json!({"csr": good_csr, "ott": tampered}).to_string(), StatusCode::UNAUTHORIZED, "signature is invalid"),
        ("garbage token", json!({"csr": good_csr, "ott": "not.a.token"}).to_string(), StatusCode::UNAUTHORIZED, "malformed token"),
        ("empty token", json!({"csr": good_csr, "ott": ""}).to_string(), StatusCode::UNAUTHORIZED, "one-time token is required"),
        ("missing jti", json!({"csr": good_csr, "ott": h.token(&with(json!({"jti": ""})))}).to_string(), StatusCode::UNAUTHORIZED, "jti"),
        ("jti longer than its column", json!({"csr": good_csr, "ott": h.token(&with(json!({"jti": "j".repeat(256)})))}).to_string(), StatusCode::UNAUTHORIZED, "longer than 255"),
        ("critical header extension", json!({"csr": good_csr, "ott": jws::sign_compact_chain(&h.provisioner_key, "crit", &[b"exp".to_vec()], h.claims("svc.internal").to_string().as_bytes()).unwrap()}).to_string(), StatusCode::UNAUTHORIZED, "\"crit\""),
        ("unauthorized SAN", json!({"csr": csr_for("evil.internal"), "ott": h.token(&h.claims("svc.internal"))}).to_string(), StatusCode::FORBIDDEN, "\"evil.internal\" is not authorized"),
        ("duration too long", json!({"csr": good_csr, "ott": h.token(&h.claims("svc.internal")), "notAfter": "48h"}).to_string(), StatusCode::BAD_REQUEST, "outside the allowed range 5m0s to 24h0m0s"),
        ("duration too short", json!({"csr": good_csr, "ott": h.token(&h.claims("svc.internal")), "notAfter": "1m"}).to_string(), StatusCode::BAD_REQUEST, "outside the allowed range"),
        ("notBefore in the past", json!({"csr": good_csr, "ott": h.token(&h.claims("svc.internal")), "notBefore": "2020-01-01T00:00:00Z", "notAfter": "2020-01-01T12:00:00Z"}).to_string(), StatusCode::BAD_REQUEST, "notBefore 2020-01-01T00:00:00Z is in the past"),
        ("notAfter before notBefore", json!({"csr": good_csr, "ott": h.token(&h.claims("svc.internal")), "notBefore": "1h", "notAfter": "30m"}).to_string(), StatusCode::BAD_REQUEST, "must be after notBefore"),
        ("malformed notAfter", json!({"csr": good_csr, "ott": h.token(&h.claims("svc.internal")), "notAfter": "tomorrow"}).to_string(), StatusCode::BAD_REQUEST, "notAfter \"tomorrow\""),
        ("body over the route's 128 KiB", json!({"csr": "x".repeat(128 * 1024), "ott": "x"}).to_string(), StatusCode::PAYLOAD_TOO_LARGE, "larger than 131072 bytes"),
    ];
    // step's deliberately broken CSR, from the interop vectors beside the checkout.
    if let Some(vectors) =
        mayfly_testkit::interop_vectors("bad_requests_get_a_precise_error_and_store_nothing")
    {
        let badsig_csr = std::fs::read_to_string(
            vectors.join("certificates/authority/testdata/certs/badsig.csr"),
        )
        .unwrap();
        cases.push((
            "CSR with a bad signature",
            json!({"csr": badsig_csr, "ott": h.token(&with(json!({"sub": "example.acme.com", "sans": ["example.acme.com"]})))}).to_string(),
            StatusCode::BAD_REQUEST,
            "signature is invalid",
        ));
    }
    // A CSR refused by the CA's rules, made by openssl: RSASSA-PSS over SHA-1. The rule it breaks
    // reaches the client in the 400's message.
    if let Some(openssl) = mayfly_testkit::program(
        "bad_requests_get_a_precise_error_and_store_nothing",
        "openssl",
        "openssl",
    ) {
        let dir = tempfile::tempdir().unwrap();
        let run = |args: &[&str]| {
            let out = std::process::Command::new(&openssl)
                .args(args)
                .current_dir(dir.path())
                .output()
                .unwrap();
            assert!(out.status.success(), "openssl {args:?}: {out:?}");
        };
        run(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            "rsa.key",
        ]);
        run(&[
            "req",
            "-new",
            "-key",
            "rsa.key",
            "-subj",
            "/CN=svc.internal",
            "-sha1",
            "-sigopt",
            "rsa_padding_mode:pss",
            "-out",
            "pss-sha1.csr",
        ]);
        let csr = std::fs::read_to_string(dir.path().join("pss-sha1.csr")).unwrap();
        cases.push((
            "CSR signed with RSASSA-PSS over SHA-1",
            json!({"csr": csr, "ott": h.token(&h.claims("svc.internal"))}).to_string(),
            StatusCode::BAD_REQUEST,
            "signed with RSASSA-PSS with SHA-1 as its hash: signatures over SHA-1 or MD5",
        ));
    }
    for (name, body, status, message) in cases {
        let (got_status, got) = h.call("POST", "/sign", Body::from(body)).await;
        assert_eq!(got_status, status, "{name}: {got}");
        assert_eq!(
            got["status"].as_u64(),
            Some(u64::from(status.as_u16())),
            "{name}: {got}"
        );
        let text = got["message"].as_str().unwrap_or_default();
        assert!(
            text.contains(message),
            "{name}: {text:?} should contain {message:?}"
        );
    }
    assert_eq!(
        h.stored_certificates(),
        0,
        "no refused request may store a certificate"
    );
}

/// The longest `jti` a token may carry is the longest the store records: accepted and burnt
/// whole, one byte more refused before any work.
#[tokio::test]
async fn a_jti_of_the_column_s_length_is_accepted_once() {
    let h = harness().await;
    let mut claims = h.claims("svc.internal");
    claims["jti"] = json!("j".repeat(255));
    let token = h.token(&claims);
    let body = json!({"csr": csr_for("svc.internal"), "ott": token});
    let (status, answer) = h.sign(body.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let (status, answer) = h.sign(body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
    assert!(
        answer["message"].as_str().unwrap().contains("already used"),
        "{answer}"
    );
}

#[tokio::test]
async fn a_token_is_accepted_once() {
    let h = harness().await;
    let token = h.token(&h.claims("svc.internal"));
    let (first, body) = h
        .sign(json!({"csr": csr_for("svc.internal"), "ott": token}))
        .await;
    assert_eq!(first, StatusCode::CREATED, "{body}");
    let (second, body) = h
        .sign(json!({"csr": csr_for("svc.internal"), "ott": token}))
        .await;
    assert_eq!(second, StatusCode::UNAUTHORIZED);
    assert!(
        body["message"].as_str().unwrap().contains("already used"),
        "{body}"
    );
    assert_eq!(h.stored_certificates(), 1);
}

/// step's `cnf` claim (`x5rt#S256`, the SHA-256 of the request's DER) binds a token to one
/// CSR, as step-ca checks it: that CSR is signed, another is refused with 403 and nothing is
/// stored, and the token stays unspent for its own request.
#[tokio::test]
async fn a_token_bound_to_a_csr_signs_that_csr_only() {
    use base64::Engine as _;
    let h = harness().await;
    let bound = csr_for("svc.internal");
    let der = mayfly_pki::Csr::from_pem(&bound).unwrap().der().to_vec();
    let fingerprint =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mayfly_pki::cert::sha256(&der));
    let mut claims = h.claims("svc.internal");
    claims["cnf"] = json!({"x5rt#S256": fingerprint});
    let token = h.token(&claims);
    let (status, body) = h
        .sign(json!({"csr": csr_for("svc.internal"), "ott": token}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("bound to"),
        "{body}"
    );
    assert_eq!(h.stored_certificates(), 0);
    let (status, body) = h.sign(json!({"csr": bound, "ott": token})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // A claim that is no SHA-256 is a malformed token.
    claims["cnf"] = json!({"x5rt#S256": "not-a-digest"});
    let (status, body) = h
        .sign(json!({"csr": csr_for("svc.internal"), "ott": h.token(&claims)}))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(body["message"].as_str().unwrap().contains("cnf"), "{body}");
}

#[tokio::test]
async fn a_csr_may_ask_for_fewer_names_but_gets_exactly_the_tokens() {
    let h = harness().await;
    let mut claims = h.claims("svc.internal");
    claims["sans"] = json!(["svc.internal", "10.0.0.7", "alt.internal"]);
    let (status, body) = h
        .sign(json!({"csr": csr_for("svc.internal"), "ott": h.token(&claims)}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let der =
        mayfly_pki::cert::certificates_from_pem(body["crt"].as_str().unwrap().as_bytes()).unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(&der[0]).unwrap();
    let sans = cert
        .subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names
        .len();
    assert_eq!(sans, 3);
}

#[tokio::test]
async fn the_server_certificate_is_renewed_at_two_thirds_of_its_life_without_restart() {
    use mayfly_authority::clock::FixedClock;
    use mayfly_server::tls::{SERVER_CERT_LIFETIME, ServerTls};
    let start = time::OffsetDateTime::now_utc();
    let clock = Arc::new(FixedClock::new(start));
    let h = harness_with_clock(clock.clone()).await;
    let names = vec!["ca.test".to_string()];
    let settings = TlsSettings::from_config(None).unwrap();
    let tls = ServerTls::new(&h.state.authority(), &names, &settings)
        .await
        .unwrap();
    let resolver = tls.resolver();
    let first = resolver.current_leaf_der().unwrap();
    let not_before = |der: &[u8]| {
        x509_parser::parse_x509_certificate(der)
            .unwrap()
            .1
            .validity()
            .not_before
            .timestamp()
    };
    let renewal = tokio::spawn(tls.renew_forever(
        Arc::clone(&h.state),
        names,
        std::time::Duration::from_millis(20),
    ));

    // Before two thirds of the lifetime nothing changes.
    clock.set(start + SERVER_CERT_LIFETIME / 2);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(resolver.current_leaf_der().unwrap(), first);

    // Past two thirds, the running resolver serves a new certificate.
    let later = start + SERVER_CERT_LIFETIME * 2 / 3 + time::Duration::minutes(1);
    clock.set(later);
    let mut renewed = None;
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let current = resolver.current_leaf_der().unwrap();
        if current != first {
            renewed = Some(current);
            break;
        }
    }
    renewal.abort();
    let renewed = renewed.expect("the certificate was not renewed");
    assert_eq!(
        not_before(&renewed) - not_before(&first),
        (later - start).whole_seconds()
    );
    assert_eq!(
        h.stored_certificates(),
        2,
        "every server certificate is recorded"
    );
}

#[tokio::test]
async fn clock_skew_of_up_to_a_minute_is_tolerated() {
    let h = harness().await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    for (nbf, exp, what) in [
        (now + 30, now + 330, "30 s early"),
        (now - 330, now - 30, "30 s late"),
    ] {
        let mut claims = h.claims("svc.internal");
        claims["nbf"] = json!(nbf);
        claims["iat"] = json!(nbf);
        claims["exp"] = json!(exp);
        let (status, body) = h
            .sign(json!({"csr": csr_for("svc.internal"), "ott": h.token(&claims)}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{what}: {body}");
    }
}

#[tokio::test]
async fn renew_and_revoke_need_credentials_and_valid_requests() {
    let h = harness().await;
    let (status, body) = h.call("POST", "/1.0/renew", Body::empty()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        body["message"].as_str().unwrap().contains("mutual TLS"),
        "{body}"
    );

    let token = h.token(&h.claims("svc.internal"));
    let (status, body) = h
        .sign(json!({"csr": csr_for("svc.internal"), "ott": token}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let der =
        mayfly_pki::cert::certificates_from_pem(body["crt"].as_str().unwrap().as_bytes()).unwrap();
    let serial = mayfly_pki::cert::CertificateInfo::from_der(&der[0])
        .unwrap()
        .serial
        .to_decimal();
    let revoke_token = |subject: &str| {
        let mut claims = h.claims(subject);
        claims["aud"] = json!("https://ca.test/1.0/revoke");
        h.token(&claims)
    };
    let cases: Vec<(Value, StatusCode, &str)> = vec![
        (
            json!({"serial": serial}),
            StatusCode::UNAUTHORIZED,
            "one-time token",
        ),
        (
            json!({"serial": serial, "ott": revoke_token(&serial), "passive": false}),
            StatusCode::NOT_IMPLEMENTED,
            "active revocation",
        ),
        (
            json!({"serial": serial, "ott": revoke_token(&serial), "reasonCode": 7}),
            StatusCode::BAD_REQUEST,
            "reason code 7",
        ),
        (
            json!({"serial": serial, "ott": revoke_token(&serial), "reasonCode": 8}),
            StatusCode::BAD_REQUEST,
            "only in delta CRLs",
        ),
        (
            json!({"serial": serial, "ott": revoke_token(&serial), "reasonCode": 6}),
            StatusCode::BAD_REQUEST,
            "certificateHold",
        ),
        (
            json!({"serial": serial, "ott": revoke_token(&serial), "reasonCode": 2}),
            StatusCode::BAD_REQUEST,
            "cACompromise",
        ),
        (
            json!({"serial": serial, "ott": revoke_token(&serial), "reasonCode": 10}),
            StatusCode::BAD_REQUEST,
            "aACompromise",
        ),
        (
            json!({"serial": serial, "ott": revoke_token("999")}),
            StatusCode::FORBIDDEN,
            "not ",
        ),
        (
            json!({"serial": serial, "ott": h.token(&h.claims(&serial))}),
            StatusCode::UNAUTHORIZED,
            "audience",
        ),
        (
            json!({"serial": "12ab", "ott": revoke_token("12ab")}),
            StatusCode::BAD_REQUEST,
            "not a decimal number",
        ),
        (
            json!({"serial": "424242", "ott": revoke_token("424242")}),
            StatusCode::NOT_FOUND,
            "no certificate with serial number 424242",
        ),
    ];
    for (body, status, message) in cases {
        let (got, answer) = h
            .call("POST", "/1.0/revoke", Body::from(body.to_string()))
            .await;
        assert_eq!(got, status, "{body}: {answer}");
        assert!(
            answer["message"].as_str().unwrap().contains(message),
            "{body}: {answer}"
        );
    }
    let (status, body) = h
        .call(
            "POST",
            "/revoke",
            Body::from(
                json!({"serial": serial, "ott": revoke_token(&serial), "reasonCode": 1})
                    .to_string(),
            ),
        )
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ok"})));
}

/// step's renewal token, exactly as `step ca renew --mtls=false` writes it: the chain in
/// `x5cInsecure`, `iss` step-ca-client/1.0, `sub` the common name, `aud` the CA URL's `/renew`
/// (with the client's port), no `jti`.
fn step_renewal_token(key: &PrivateKey, chain: &[Vec<u8>], claims: &Value) -> String {
    jws::sign_compact_chain(key, "x5cInsecure", chain, claims.to_string().as_bytes()).unwrap()
}

#[tokio::test]
async fn steps_renewal_token_renews_once() {
    let h = harness().await;
    let key = PrivateKey::generate(KeyAlgorithm::EcP256).unwrap();
    let chain = h.issued_chain(&key, "svc.internal").await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let claims = json!({
        "aud": "https://ca.test:9000/renew",
        "iss": "step-ca-client/1.0",
        "sub": "svc.internal",
        "nbf": now, "iat": now, "exp": now + 300,
    });
    let refused: Vec<(Value, &str)> = vec![
        (json!({"iss": "someone"}), "issuer"),
        (json!({"sub": "other.internal"}), "common name"),
        (json!({"aud": "https://ca.test/1.0/sign"}), "audience"),
        (json!({"aud": "https://other.test/renew"}), "audience"),
        (
            json!({"exp": now - 120, "nbf": now - 400, "iat": now - 400}),
            "expired",
        ),
    ];
    for (change, message) in refused {
        let mut bad = claims.clone();
        for (name, value) in change.as_object().unwrap() {
            bad[name] = value.clone();
        }
        let (status, body) = h
            .renew_with_token(&step_renewal_token(&key, &chain, &bad))
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{change}: {body}");
        assert!(
            body["message"].as_str().unwrap().contains(message),
            "{change}: {body}"
        );
    }
    let mut long_jti = claims.clone();
    long_jti["jti"] = json!("j".repeat(256));
    let (status, body) = h
        .renew_with_token(&step_renewal_token(&key, &chain, &long_jti))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("longer than 255"),
        "{body}"
    );
    let other = PrivateKey::generate(KeyAlgorithm::EcP256).unwrap();
    let (status, body) = h
        .renew_with_token(&step_renewal_token(&other, &chain, &claims))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(
        h.stored_certificates(),
        1,
        "no refused token bought a certificate"
    );

    let token = step_renewal_token(&key, &chain, &claims);
    let (status, body) = h.renew_with_token(&token).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let renewed =
        mayfly_pki::cert::certificates_from_pem(body["crt"].as_str().unwrap().as_bytes()).unwrap();
    let renewed = mayfly_pki::cert::CertificateInfo::from_der(&renewed[0]).unwrap();
    assert_eq!(renewed.common_name, "svc.internal");
    // The same token again: burnt with the renewal (keyed by its hash, as it has no jti).
    let (status, body) = h.renew_with_token(&token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("already used"),
        "{body}"
    );
    // The provisioner's name as issuer, as older step clients wrote it, is accepted too.
    let mut older = claims.clone();
    older["iss"] = json!("admin");
    let (status, body) = h
        .renew_with_token(&step_renewal_token(&key, &chain, &older))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(h.stored_certificates(), 3);
}

/// A renewal token with a `jti` is single use by that `jti`: the form `mayfly ca renew
/// --mtls=false` writes (chain in `x5cInsecure`), the same with the chain in `x5c`, and a `jti`
/// of the used-token column's 255 bytes, each renew once; the second use, or another token
/// carrying a used `jti`, is refused as a replay.
#[tokio::test]
async fn a_renewal_token_with_a_jti_renews_once() {
    let h = harness().await;
    let key = PrivateKey::generate(KeyAlgorithm::EcP256).unwrap();
    let chain = h.issued_chain(&key, "svc.internal").await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let claims = |jti: &str, iat: i64| {
        json!({
            "aud": "https://ca.test/1.0/renew",
            "iss": mayfly_authority::token::RENEWAL_TOKEN_ISSUER,
            "sub": "svc.internal",
            "nbf": iat, "iat": iat, "exp": iat + 300,
            "jti": jti,
        })
    };
    let cases = [
        ("x5cInsecure", mayfly_pki::random::random_hex(16).unwrap()),
        ("x5c", mayfly_pki::random::random_hex(16).unwrap()),
        ("x5cInsecure", "j".repeat(255)),
    ];
    for (header, jti) in &cases {
        let token = jws::sign_compact_chain(
            &key,
            header,
            &chain,
            claims(jti, now).to_string().as_bytes(),
        )
        .unwrap();
        let (status, body) = h.renew_with_token(&token).await;
        assert_eq!(status, StatusCode::CREATED, "{header}, jti {jti}: {body}");
        let (status, body) = h.renew_with_token(&token).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{header}, jti {jti}: {body}"
        );
        assert!(
            body["message"].as_str().unwrap().contains("already used"),
            "{header}, jti {jti}: {body}"
        );
        // Another token (other bytes: an earlier iat) with the same jti: the jti is the key.
        let other = jws::sign_compact_chain(
            &key,
            header,
            &chain,
            claims(jti, now - 1).to_string().as_bytes(),
        )
        .unwrap();
        let (status, body) = h.renew_with_token(&other).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{header}, jti {jti}: {body}"
        );
        assert!(
            body["message"].as_str().unwrap().contains("already used"),
            "{header}, jti {jti}: {body}"
        );
    }
    assert_eq!(
        h.stored_certificates(),
        1 + cases.len(),
        "one renewal per token"
    );
}

/// With CRLs and OCSP configured, `passive: false` is accepted and the revocation reaches the
/// CRL; without them the CRL routes answer 404 in the API's error shape.
#[tokio::test]
async fn active_revocation_is_accepted_where_configured() {
    let passive = harness().await;
    let (status, body) = passive.call("GET", "/1.0/crl", Body::empty()).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("crl.enabled"),
        "{body}"
    );

    let h = harness_with(Arc::new(SystemClock), true).await;
    let token = h.token(&h.claims("svc.internal"));
    let (status, body) = h
        .sign(json!({"csr": csr_for("svc.internal"), "ott": token}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let der =
        mayfly_pki::cert::certificates_from_pem(body["crt"].as_str().unwrap().as_bytes()).unwrap();
    let info = mayfly_pki::cert::CertificateInfo::from_der(&der[0]).unwrap();
    let serial = info.serial.to_decimal();
    let mut claims = h.claims(&serial);
    claims["aud"] = json!("https://ca.test/1.0/revoke");
    let (status, body) = h
        .call(
            "POST",
            "/1.0/revoke",
            Body::from(
                json!({"serial": serial, "ott": h.token(&claims), "reasonCode": 4, "passive": false})
                    .to_string(),
            ),
        )
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ok"})));
    h.state.authority().refresh_publication().await.unwrap();
    // The refresh saved the revoked set for the next start (ADR 18), as of this revocation.
    let saved = h
        .state
        .authority()
        .store()
        .revoked_snapshot(mayfly_authority::store::RevokedSetKind::Unexpired)
        .await
        .unwrap()
        .expect("the revoked set is saved after a refresh");
    assert_eq!(
        saved.meta.seq,
        h.state.authority().store().revocation_seq().await.unwrap()
    );
    let request = Request::builder().uri("/crl").body(Body::empty()).unwrap();
    let response = h.app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let (_, crl) =
        x509_parser::revocation_list::CertificateRevocationList::from_der(&bytes).unwrap();
    let entry = crl
        .iter_revoked_certificates()
        .find(|e| e.raw_serial() == info.serial.as_be_bytes())
        .expect("the revoked serial is on the CRL");
    assert_eq!(entry.reason_code().map(|(_, r)| r.0), Some(4), "superseded");
    let (status, _) = h.call("GET", "/1.0/crl?pem=maybe", Body::empty()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // The plain-HTTP router serves revocation information only.
    let plain = mayfly_server::api::plain_router(Arc::clone(&h.state));
    for (method, uri, expected) in [
        ("GET", "/1.0/crl", StatusCode::OK),
        ("GET", "/1.0/intermediate.crt", StatusCode::OK),
        ("GET", "/health", StatusCode::OK),
        ("POST", "/1.0/sign", StatusCode::NOT_FOUND),
        ("GET", "/1.0/provisioners", StatusCode::NOT_FOUND),
    ] {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::empty())
            .unwrap();
        let response = plain.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), expected, "{method} {uri}");
    }
}

async fn ocsp_post(h: &Harness, request: Vec<u8>) -> mayfly_pki::ocsp::ParsedResponse {
    mayfly_pki::ocsp::parse_response(&ocsp_post_raw(h, request).await).unwrap()
}

async fn ocsp_post_raw(h: &Harness, request: Vec<u8>) -> Vec<u8> {
    let request = Request::builder()
        .method("POST")
        .uri("/ocsp")
        .header("content-type", "application/ocsp-request")
        .body(Body::from(request))
        .unwrap();
    let response = h.app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec()
}

/// The responder certificate is replaced at 2/3 of its life, responses never outlive it, and a
/// revocation written straight into the store (another instance, `revoke --offline`) reaches
/// the responder through the poll.
#[tokio::test]
async fn ocsp_responder_rotates_and_sees_revocations_made_elsewhere() {
    use mayfly_authority::clock::FixedClock;
    use mayfly_pki::issuer::{CertIdHash, IssuerIdentity};
    use mayfly_pki::ocsp::CertStatus;
    let start = time::OffsetDateTime::now_utc();
    let clock = Arc::new(FixedClock::new(start));
    let h = harness_with(clock.clone(), true).await;
    let token = h.token(&h.claims("svc.internal"));
    let (status, body) = h
        .sign(json!({"csr": csr_for("svc.internal"), "ott": token}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let leaf =
        mayfly_pki::cert::certificates_from_pem(body["crt"].as_str().unwrap().as_bytes()).unwrap();
    let serial = mayfly_pki::cert::CertificateInfo::from_der(&leaf[0])
        .unwrap()
        .serial;
    let intermediate = h.state.authority().intermediate_der().to_vec();
    let issuer = IssuerIdentity::from_certificate(&intermediate).unwrap();
    let request =
        mayfly_pki::ocsp::build_request(&issuer, serial.as_be_bytes(), CertIdHash::Sha256, None);

    let never_issued =
        mayfly_pki::ocsp::build_request(&issuer, &[0x42; 16], CertIdHash::Sha1, None);
    let unknown = ocsp_post(&h, never_issued).await;
    assert_eq!(unknown.responses[0].status, CertStatus::Unknown);

    let first = ocsp_post(&h, request.clone()).await;
    assert_eq!(first.responses[0].status, CertStatus::Good);
    let responder = first.certificates[0].clone();
    let responder_end = mayfly_pki::cert::not_after(&responder).unwrap();
    assert!(first.responses[0].next_update.unwrap() <= responder_end);
    // The client-side check accepts it: delegated signer, matching CertID, current.
    let raw = ocsp_post_raw(&h, request.clone()).await;
    let verdict = mayfly_pki::verify::ocsp_status(
        &raw,
        &intermediate,
        &leaf[0],
        CertIdHash::Sha256,
        None,
        start,
    )
    .unwrap();
    assert_eq!(verdict, mayfly_pki::verify::RevocationStatus::Good);
    let mut tampered = raw.clone();
    // Byte 60 lies in the signed ResponseData (after the response and basic-response headers).
    tampered[60] ^= 1;
    assert!(
        mayfly_pki::verify::ocsp_status(
            &tampered,
            &intermediate,
            &leaf[0],
            CertIdHash::Sha256,
            None,
            start
        )
        .is_err(),
        "a changed byte is caught"
    );

    clock.set(start + time::Duration::hours(17));
    let later = ocsp_post(&h, request.clone()).await;
    assert_ne!(
        later.certificates[0], responder,
        "a new responder certificate at 2/3 of the old one's life"
    );

    let revocation = mayfly_authority::store::Revocation {
        serial: serial.to_decimal(),
        reason_code: 1,
        reason: String::new(),
        revoked_at: start + time::Duration::hours(17),
        revoked_by: "offline".into(),
    };
    h.state
        .authority()
        .store()
        .revoke(&revocation, None, &mayfly_store::conformance::REVOKED_AUDIT)
        .await
        .unwrap();
    let cached = ocsp_post(&h, request.clone()).await;
    assert_eq!(cached.responses[0].status, CertStatus::Good, "not seen yet");
    h.state.authority().refresh_publication().await.unwrap();
    let seen = ocsp_post(&h, request).await;
    assert!(
        matches!(
            seen.responses[0].status,
            CertStatus::Revoked {
                reason: Some(1),
                ..
            }
        ),
        "{:?}",
        seen.responses[0].status
    );
}

/// thisUpdate of CRLs and OCSP answers is set back as leaves' notBefore (1 minute), so a
/// relying party whose clock is behind does not find them "not yet valid"; nextUpdate keeps
/// its full lifetime from now; an `unspecified` revocation carries no reason in OCSP, as in the
/// CRL; and a CRL may be cached 5 minutes at most, not until its nextUpdate.
#[tokio::test]
async fn crls_and_ocsp_answers_are_backdated_and_unspecified_reasons_left_out() {
    use mayfly_authority::clock::FixedClock;
    use mayfly_pki::issuer::{CertIdHash, IssuerIdentity};
    use mayfly_pki::ocsp::CertStatus;
    let start = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap();
    let clock = Arc::new(FixedClock::new(start));
    let h = harness_with(clock, true).await;
    let (status, body) = h
        .sign(json!({"csr": csr_for("svc.internal"), "ott": h.token(&h.claims("svc.internal"))}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let leaf =
        mayfly_pki::cert::certificates_from_pem(body["crt"].as_str().unwrap().as_bytes()).unwrap();
    let serial = mayfly_pki::cert::CertificateInfo::from_der(&leaf[0])
        .unwrap()
        .serial;
    let mut claims = h.claims(&serial.to_decimal());
    claims["aud"] = json!("https://ca.test/1.0/revoke");
    let revoke = json!({"serial": serial.to_decimal(), "reasonCode": 0, "ott": h.token(&claims)});
    let (status, body) = h
        .call("POST", "/1.0/revoke", Body::from(revoke.to_string()))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let request = Request::builder()
        .uri("/1.0/crl")
        .body(Body::empty())
        .unwrap();
    let response = h.app.clone().oneshot(request).await.unwrap();
    let max_age: i64 = response.headers()["cache-control"]
        .to_str()
        .unwrap()
        .split(',')
        .find_map(|d| d.trim().strip_prefix("max-age="))
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=300).contains(&max_age), "max-age={max_age}");
    let der = response.into_body().collect().await.unwrap().to_bytes();
    let (_, crl) = x509_parser::revocation_list::CertificateRevocationList::from_der(&der).unwrap();
    let this_update = crl.last_update().to_datetime();
    let next_update = crl.next_update().unwrap().to_datetime();
    assert_eq!(this_update, start - time::Duration::minutes(1));
    assert_eq!(next_update, start + time::Duration::hours(24));
    let entry = crl.iter_revoked_certificates().next().unwrap();
    assert!(
        entry.reason_code().is_none(),
        "unspecified is left out of the CRL"
    );

    let intermediate = h.state.authority().intermediate_der().to_vec();
    let issuer = IssuerIdentity::from_certificate(&intermediate).unwrap();
    let answer = ocsp_post(
        &h,
        mayfly_pki::ocsp::build_request(&issuer, serial.as_be_bytes(), CertIdHash::Sha256, None),
    )
    .await;
    let single = &answer.responses[0];
    assert_eq!(single.this_update, start - time::Duration::minutes(1));
    assert!(
        matches!(single.status, CertStatus::Revoked { reason: None, .. }),
        "{:?}",
        single.status
    );
}
