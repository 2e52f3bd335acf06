//! The `/ssh/*` routes, in-process through the real router and a real SQLite store: success
//! shapes, SSH-POP renewal and rekey, revocation into the KRL, and a table of bad requests with
//! the status and message each gets, none of which stores a certificate.

mod support;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http_body_util::BodyExt;
use mayfly_authority::clock::SystemClock;
use mayfly_authority::provisioner::Provisioner;
use mayfly_authority::{Authority, AuthorityParts, LoadedMaterial};
use mayfly_config::init::{self, InitOptions, Layout};
use mayfly_pki::jose::{jwe, jwk::Jwk, jws};
use mayfly_pki::ssh::{CertType, SshCertTemplate, SshCertificate, SshPublicKey};
use mayfly_pki::{KeyAlgorithm, PrivateKey, Signer};
use mayfly_server::api::{AppState, router};
use mayfly_server::tls::TlsSettings;
use serde_json::{Value, json};
use tower::ServiceExt;

const PROVISIONER_PASSWORD: &[u8] = b"provisioner password";

struct Harness {
    _dir: tempfile::TempDir,
    db_path: std::path::PathBuf,
    app: axum::Router,
    provisioner_key: PrivateKey,
    kid: String,
    root_fingerprint: String,
    /// The CA's SSH host key, to make certificates the CA would not issue (an expired one).
    host_ca: Option<Arc<dyn Signer>>,
}

/// The JWK provisioner's name policy: no user certificate for mallory, no host certificate
/// under evil.test. Deny rules only, so every other name in these tests passes.
fn admin_policy() -> Value {
    json!({"ssh": {
        "user": {"deny": {"principal": ["mallory"]}},
        "host": {"deny": {"dns": ["*.evil.test"]}}
    }})
}

async fn harness(ssh: Option<KeyAlgorithm>) -> Harness {
    harness_with(ssh, true).await
}

/// `sshpop: false` takes the SSHPOP provisioner that `ca init --ssh` writes out of ca.json, as
/// in a CA made before `ca init` wrote one.
async fn harness_with(ssh: Option<KeyAlgorithm>, sshpop: bool) -> Harness {
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
        ssh,
        insecure_address: None,
    };
    let plan = init::plan(&options, &layout).unwrap();
    init::write(&plan, &layout, false).unwrap();
    let mut written: Value =
        serde_json::from_slice(&std::fs::read(layout.ca_config()).unwrap()).unwrap();
    written["authority"]["provisioners"][0]["policy"] = admin_policy();
    std::fs::write(layout.ca_config(), written.to_string()).unwrap();
    let mut loaded = mayfly_config::config::CaConfig::load(&layout.ca_config()).unwrap();
    if !sshpop {
        loaded
            .config
            .authority
            .provisioners
            .retain(|p| p.kind != "SSHPOP");
    }
    let material = LoadedMaterial::load(&loaded.config, dir.path(), None).unwrap();
    let db_path = layout.database();
    let store = Arc::new(mayfly_store::SqliteStore::open(&db_path).await.unwrap());
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
    let host_ca = material.ssh.as_ref().map(|keys| keys.host_key.clone());
    let ssh = material
        .ssh
        .map(|keys| mayfly_authority::ssh::SshCa::new(keys, store.clone()).unwrap());
    let authority = Authority::new(AuthorityParts {
        ssh,
        roots: material.roots,
        federated_roots: material.federated_roots,
        intermediate: material.intermediate,
        provisioners: material.provisioners,
        name_policies: material.name_policies,
        backdate: material.backdate,
        dns_names: loaded.config.dns_names.clone(),
        store,
        clock: Arc::new(SystemClock),
        publication: mayfly_authority::publication::Publication::default(),
    })
    .unwrap();
    let tls_options = TlsSettings::from_config(None).unwrap().advertised;
    let state = Arc::new(AppState::new(authority, tls_options));
    Harness {
        _dir: dir,
        db_path,
        app: router(state),
        provisioner_key,
        kid,
        root_fingerprint: plan.root_fingerprint,
        host_ca,
    }
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

impl Harness {
    fn claims(&self, endpoint: &str, subject: &str, ssh: Option<Value>) -> Value {
        let mut claims = json!({
            "aud": format!("https://ca.test/1.0/{endpoint}"), "iss": "admin", "sub": subject,
            "nbf": now(), "iat": now(), "exp": now() + 300,
            "jti": mayfly_pki::random::random_hex(32).unwrap(),
            "sha": self.root_fingerprint,
        });
        if let Some(ssh) = ssh {
            claims["step"] = json!({ "ssh": ssh });
        }
        claims
    }

    fn token(&self, claims: &Value) -> String {
        jws::sign_compact(
            &self.provisioner_key,
            &self.kid,
            claims.to_string().as_bytes(),
        )
        .unwrap()
    }

    fn ssh_token(&self, cert_type: &str, key_id: &str, principals: &[&str]) -> String {
        self.token(&self.claims(
            "ssh/sign",
            key_id,
            Some(json!({"certType": cert_type, "keyID": key_id, "principals": principals})),
        ))
    }

    async fn call(&self, method: &str, uri: &str, body: Value) -> (StatusCode, Value) {
        self.call_as(method, uri, body, None).await
    }

    /// Like [`Harness::call`], as a client that presented `chain` in the TLS handshake.
    async fn call_as(
        &self,
        method: &str,
        uri: &str,
        body: Value,
        chain: Option<Vec<Vec<u8>>>,
    ) -> (StatusCode, Value) {
        let body = if body.is_null() {
            Body::empty()
        } else {
            Body::from(body.to_string())
        };
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json")
            .extension(mayfly_server::serve::PeerCertificates {
                chain: chain.map(Arc::new),
                remote: "127.0.0.1:50000".parse().unwrap(),
            })
            .body(body)
            .unwrap();
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(STANDARD.encode(&bytes)));
        (status, value)
    }

    fn stored(&self) -> usize {
        let out = std::process::Command::new("sqlite3")
            .arg(&self.db_path)
            .arg("SELECT COUNT(*) FROM ssh_certificates")
            .output()
            .expect("sqlite3 is required: install the Debian package sqlite3");
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    }

    /// Signs `key` and returns the parsed certificate.
    async fn sign(&self, key: &SshPublicKey, token: &str, extra: Value) -> SshCertificate {
        let mut body = json!({"publicKey": STANDARD.encode(key.blob()), "ott": token});
        if let Value::Object(extra) = extra {
            body.as_object_mut().unwrap().extend(extra);
        }
        let (status, value) = self.call("POST", "/1.0/ssh/sign", body).await;
        assert_eq!(status, StatusCode::CREATED, "{value}");
        SshCertificate::from_base64(value["crt"].as_str().unwrap()).unwrap()
    }
}

fn new_key() -> (PrivateKey, SshPublicKey) {
    let key = PrivateKey::generate(KeyAlgorithm::EcP256).unwrap();
    let public = SshPublicKey::from_private_key(&key).unwrap();
    (key, public)
}

/// An SSH-POP token as the step CLI writes it: the SSHPOP provisioner in the audience's
/// fragment and as issuer, the certificate's serial as subject.
fn sshpop(key: &PrivateKey, certificate: &SshCertificate, endpoint: &str) -> String {
    sshpop_with(key, certificate, &sshpop_claims(certificate, endpoint))
}

fn sshpop_claims(certificate: &SshCertificate, endpoint: &str) -> Value {
    json!({
        "aud": format!("https://ca.test/1.0/{endpoint}#sshpop/sshpop"), "iss": "sshpop",
        "sub": certificate.template.serial.to_string(), "nbf": now(), "iat": now(),
        "exp": now() + 300, "jti": mayfly_pki::random::random_hex(32).unwrap(),
    })
}

fn sshpop_with(key: &PrivateKey, certificate: &SshCertificate, claims: &Value) -> String {
    jws::sign_compact_sshpop(key, &certificate.to_base64(), claims.to_string().as_bytes()).unwrap()
}

#[tokio::test]
async fn sshpop_tokens_name_the_ssh_pop_provisioner_as_step_does() {
    let h = harness(Some(KeyAlgorithm::EcP256)).await;
    let (key, public) = new_key();
    let cert = h
        .sign(&public, &h.ssh_token("host", "web1", &["web1"]), json!({}))
        .await;
    let h = &h;
    let (key, cert) = (&key, &cert);
    let renew = |claims: Value| async move {
        let ott = sshpop_with(key, cert, &claims);
        h.call("POST", "/ssh/renew", json!({"ott": ott})).await
    };
    let base = sshpop_claims(cert, "ssh/renew");
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "no fragment",
            json!("https://ca.test/1.0/ssh/renew"),
            "audience",
        ),
        (
            "another provisioner",
            json!("https://ca.test/1.0/ssh/renew#sshpop/other"),
            "audience",
        ),
        (
            "another endpoint",
            json!("https://ca.test/1.0/ssh/rekey#sshpop/sshpop"),
            "audience",
        ),
    ];
    for (name, aud, message) in cases {
        let mut claims = base.clone();
        claims["aud"] = aud;
        let (status, body) = renew(claims).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{name}: {body}");
        assert!(
            body["message"].as_str().unwrap().contains(message),
            "{name}: {body}"
        );
    }
    let mut claims = base.clone();
    claims["jti"] = json!("j".repeat(256));
    let (status, body) = renew(claims).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("longer than 255"),
        "{body}"
    );
    let mut claims = base.clone();
    claims["iss"] = json!("someone");
    let (status, body) = renew(claims).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("someone"),
        "{body}"
    );
    assert_eq!(h.stored(), 1, "no refused token bought a certificate");

    // The client's port (a load balancer's) does not matter; the fragment and issuer do. A
    // jti as long as the column that records it is fine.
    let mut claims = base.clone();
    claims["jti"] = json!("j".repeat(255));
    claims["aud"] = json!("https://ca.test:8443/1.0/ssh/renew#sshpop/sshpop");
    let (status, body) = renew(claims).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // /provisioners lists it for the step CLI to find.
    let (_, body) = h.call("GET", "/provisioners", Value::Null).await;
    assert!(
        body["provisioners"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["type"] == "SSHPOP" && p["name"] == "sshpop"),
        "{body}"
    );
}

#[tokio::test]
async fn a_ca_without_an_sshpop_provisioner_takes_the_plain_audience() {
    let h = harness_with(Some(KeyAlgorithm::EcP256), false).await;
    let (key, public) = new_key();
    let cert = h
        .sign(&public, &h.ssh_token("host", "web1", &["web1"]), json!({}))
        .await;
    let mut claims = sshpop_claims(&cert, "ssh/renew");
    claims["aud"] = json!("https://ca.test/1.0/ssh/renew");
    let (status, body) = h
        .call(
            "POST",
            "/ssh/renew",
            json!({"ott": sshpop_with(&key, &cert, &claims)}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn user_and_host_certificates_follow_the_token_and_the_claims() {
    let h = harness(Some(KeyAlgorithm::EcP256)).await;
    let (status, roots) = h.call("GET", "/ssh/roots", Value::Null).await;
    assert_eq!(status, StatusCode::OK, "{roots}");
    let user_ca = SshPublicKey::from_blob(
        &STANDARD
            .decode(roots["userKey"][0].as_str().unwrap())
            .unwrap(),
    )
    .unwrap();
    let (_, public) = new_key();

    let token = h.ssh_token("user", "alice@example.com", &["alice", "ops"]);
    let cert = h.sign(&public, &token, json!({})).await;
    let t = &cert.template;
    assert_eq!(t.cert_type, CertType::User);
    assert_eq!(t.key_id, "alice@example.com");
    assert_eq!(t.principals, ["alice", "ops"]);
    assert_eq!(cert.signature_key, user_ca);
    // Default 16 h, backdated by a minute.
    assert_eq!(t.valid_before - t.valid_after, 16 * 3600 + 60);
    assert_eq!(
        t.extensions.keys().collect::<Vec<_>>(),
        [
            "permit-X11-forwarding",
            "permit-agent-forwarding",
            "permit-port-forwarding",
            "permit-pty",
            "permit-user-rc"
        ]
    );
    assert!(t.critical_options.is_empty());

    // The request narrows the token's principals.
    let token = h.ssh_token("user", "alice@example.com", &["alice", "ops"]);
    let cert = h
        .sign(
            &public,
            &token,
            json!({"principals": ["ops"], "validBefore": "1h"}),
        )
        .await;
    assert_eq!(cert.template.principals, ["ops"]);
    assert_eq!(
        cert.template.valid_before - cert.template.valid_after,
        3600 + 60
    );

    // Critical options only as the token allows them.
    let mut claims = h.claims(
        "ssh/sign",
        "deploy",
        Some(json!({"certType": "user", "principals": ["deploy"],
            "criticalOptions": {"force-command": "/usr/bin/deploy"}})),
    );
    let cert = h.sign(&public, &h.token(&claims), json!({})).await;
    assert_eq!(
        cert.template.critical_options["force-command"],
        "/usr/bin/deploy"
    );
    claims["jti"] = json!("another");
    let cert = h
        .sign(
            &public,
            &h.token(&claims),
            json!({"criticalOptions": {"force-command": "/usr/bin/deploy"}}),
        )
        .await;
    assert_eq!(cert.template.key_id, "deploy");

    let token = h.ssh_token("host", "web1.internal", &["web1.internal"]);
    let cert = h.sign(&public, &token, json!({})).await;
    assert_eq!(cert.template.cert_type, CertType::Host);
    assert!(cert.template.extensions.is_empty());
    assert_eq!(
        cert.template.valid_before - cert.template.valid_after,
        30 * 24 * 3600 + 60
    );
    assert_eq!(h.stored(), 5);

    let (status, body) = h
        .call(
            "POST",
            "/ssh/check-host",
            json!({"principal": "web1.internal"}),
        )
        .await;
    assert_eq!(
        (status, body["exists"].as_bool()),
        (StatusCode::OK, Some(true))
    );
    let (_, body) = h
        .call(
            "POST",
            "/ssh/check-host",
            json!({"principal": "web2.internal"}),
        )
        .await;
    assert_eq!(body["exists"].as_bool(), Some(false));
    let (status, body) = h.call("GET", "/ssh/hosts", Value::Null).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    // The TLS layer verified the client certificate against the roots before this point.
    let (status, body) = h
        .call_as("GET", "/ssh/hosts", Value::Null, Some(vec![vec![0x30]]))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["hosts"], json!([{"hostname": "web1.internal"}]));

    let (status, body) = h
        .call(
            "POST",
            "/ssh/config",
            json!({"type": "host", "data": {"HostKey": "/k"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Contents travel as step-ca sends them: base64 of the bytes.
    let content = |template: &Value| {
        String::from_utf8(
            STANDARD
                .decode(template["content"].as_str().unwrap())
                .unwrap(),
        )
        .unwrap()
    };
    let sshd = content(&body["hostTemplates"][0]);
    assert!(
        sshd.contains("HostKey /k\nHostCertificate /k-cert.pub\n"),
        "{sshd}"
    );
    assert!(sshd.contains("TrustedUserCAKeys "), "{sshd}");
    let (_, body) = h.call("POST", "/ssh/config", json!({"type": "user"})).await;
    let known = content(&body["userTemplates"][0]);
    assert!(
        known.starts_with("@cert-authority * ecdsa-sha2-nistp256 "),
        "{known}"
    );

    // What the step CLI sends: its own variables with every request, step-ca's `Certificate`
    // and `Key` for hosts, `User` for users.
    let step = json!({"GOOS": "linux", "StepPath": "/home/a/.step", "StepBasePath": "/home/a/.step",
                      "StepSSHTemplateVersion": "v2", "Context": "ca"});
    let mut host = step.clone();
    host["Certificate"] = json!("/etc/ssh/h-cert.pub");
    host["Key"] = json!("/etc/ssh/h");
    let (status, body) = h
        .call(
            "POST",
            "/1.0/ssh/config",
            json!({"type": "host", "data": host}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let sshd = content(&body["hostTemplates"][0]);
    assert!(
        sshd.contains("HostKey /etc/ssh/h\nHostCertificate /etc/ssh/h-cert.pub\n"),
        "{sshd}"
    );
    let mut user = step.clone();
    user["User"] = json!("alice");
    let (status, body) = h
        .call(
            "POST",
            "/1.0/ssh/config",
            json!({"type": "user", "data": user}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(content(&body["userTemplates"][0]), known);
}

#[tokio::test]
async fn hosts_renew_and_rekey_with_their_key_and_revoked_certificates_cannot() {
    let h = harness(Some(KeyAlgorithm::Ed25519)).await;
    let (key, public) = new_key();
    let token = h.ssh_token("host", "web1", &["web1", "web1.internal"]);
    let cert = h.sign(&public, &token, json!({})).await;

    let (status, body) = h
        .call(
            "POST",
            "/ssh/renew",
            json!({"ott": sshpop(&key, &cert, "ssh/renew")}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let renewed = SshCertificate::from_base64(body["crt"].as_str().unwrap()).unwrap();
    assert_ne!(renewed.template.serial, cert.template.serial);
    assert_eq!(renewed.template.principals, cert.template.principals);
    assert_eq!(renewed.public_key, public);

    // A token signed by another key does not prove possession.
    let (other, other_public) = new_key();
    let (status, body) = h
        .call(
            "POST",
            "/ssh/renew",
            json!({"ott": sshpop(&other, &renewed, "ssh/renew")}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("signature"),
        "{body}"
    );

    let (status, body) = h
        .call(
            "POST",
            "/ssh/rekey",
            json!({"ott": sshpop(&key, &renewed, "ssh/rekey"),
                   "publicKey": STANDARD.encode(other_public.blob())}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let rekeyed = SshCertificate::from_base64(body["crt"].as_str().unwrap()).unwrap();
    assert_eq!(rekeyed.public_key, other_public);
    assert_eq!(rekeyed.template.key_id, "web1");

    // Revoke by provisioner token; the serial appears in the KRL and renewal is refused.
    let serial = rekeyed.template.serial.to_string();
    let revoke = h.token(&h.claims("ssh/revoke", &serial, None));
    let (status, body) = h
        .call(
            "POST",
            "/ssh/revoke",
            json!({"serial": serial, "ott": revoke, "reasonCode": 1, "reason": "lost"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = h
        .call(
            "POST",
            "/ssh/renew",
            json!({"ott": sshpop(&other, &rekeyed, "ssh/renew")}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("revoked"),
        "{body}"
    );
    let (status, body) = h
        .call(
            "POST",
            "/ssh/check-host",
            json!({"principal": "web1.internal"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["exists"].as_bool(),
        Some(true),
        "the renewed one is valid"
    );

    let (status, krl) = h.call("GET", "/ssh/krl", Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    let krl = STANDARD.decode(krl.as_str().unwrap()).unwrap();
    assert!(krl.starts_with(b"SSHKRL\n\0"));
    assert!(
        krl.windows(8)
            .any(|w| w == rekeyed.template.serial.to_be_bytes()),
        "the KRL lists the revoked serial"
    );

    // The holder of a certificate may revoke it with SSH-POP; once.
    let serial = renewed.template.serial.to_string();
    let pop = sshpop(&key, &renewed, "ssh/revoke");
    let body = json!({"serial": serial, "ott": pop});
    let (status, answer) = h.call("POST", "/ssh/revoke", body.clone()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (status, answer) = h.call("POST", "/ssh/revoke", body).await;
    assert_refused(
        "revoking twice with one token",
        (status, answer),
        StatusCode::UNAUTHORIZED,
        "token was already used",
    );

    // User certificates are not renewed.
    let token = h.ssh_token("user", "alice", &["alice"]);
    let user = h.sign(&public, &token, json!({})).await;
    let (status, body) = h
        .call(
            "POST",
            "/ssh/renew",
            json!({"ott": sshpop(&key, &user, "ssh/renew")}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
}

#[tokio::test]
async fn bad_ssh_requests_get_a_clear_4xx_and_store_nothing() {
    let h = harness(Some(KeyAlgorithm::EcP256)).await;
    let (_, public) = new_key();
    let key_b64 = STANDARD.encode(public.blob());
    let user = |principals: &[&str]| h.ssh_token("user", "alice", principals);
    let rsa_1024 = {
        // ssh-rsa with a 1024-bit modulus.
        let mut blob = Vec::new();
        for part in [
            &b"ssh-rsa"[..],
            &[1, 0, 1],
            &[&[0x00u8][..], &[0xc5; 128]].concat(),
        ] {
            blob.extend_from_slice(&(part.len() as u32).to_be_bytes());
            blob.extend_from_slice(part);
        }
        STANDARD.encode(blob)
    };
    let x509_token = h.token(&h.claims("ssh/sign", "alice", None));
    let wrong_audience = h.token(&h.claims(
        "sign",
        "alice",
        Some(json!({"certType": "user", "principals": ["alice"]})),
    ));
    let cases: Vec<(&str, Value, StatusCode, &str)> = vec![
        (
            "empty key",
            json!({"publicKey": "", "ott": user(&["alice"])}),
            StatusCode::BAD_REQUEST,
            "publicKey\" is empty",
        ),
        (
            "not base64",
            json!({"publicKey": "!!", "ott": user(&["alice"])}),
            StatusCode::BAD_REQUEST,
            "not base64",
        ),
        (
            "truncated key",
            json!({"publicKey": STANDARD.encode(&public.blob()[..20]), "ott": user(&["alice"])}),
            StatusCode::BAD_REQUEST,
            "truncated",
        ),
        (
            "DSA key",
            json!({"publicKey": STANDARD.encode(b"\0\0\0\x07ssh-dss"), "ott": user(&["alice"])}),
            StatusCode::BAD_REQUEST,
            "ssh-dss",
        ),
        (
            "small RSA key",
            json!({"publicKey": rsa_1024, "ott": user(&["alice"])}),
            StatusCode::BAD_REQUEST,
            "RSA key of 1024 bits",
        ),
        (
            "no token",
            json!({"publicKey": key_b64, "ott": ""}),
            StatusCode::UNAUTHORIZED,
            "one-time token",
        ),
        (
            "X.509 token",
            json!({"publicKey": key_b64, "ott": x509_token}),
            StatusCode::UNAUTHORIZED,
            "no SSH claims",
        ),
        (
            "wrong audience",
            json!({"publicKey": key_b64, "ott": wrong_audience}),
            StatusCode::UNAUTHORIZED,
            "audience",
        ),
        (
            "principal not in token",
            json!({"publicKey": key_b64, "ott": user(&["alice"]), "principals": ["root"]}),
            StatusCode::FORBIDDEN,
            "\"root\" is not authorized",
        ),
        (
            "no principals",
            json!({"publicKey": key_b64, "ott": user(&[])}),
            StatusCode::BAD_REQUEST,
            "without principals",
        ),
        (
            "bad principal",
            json!({"publicKey": key_b64, "ott": user(&["al ice"])}),
            StatusCode::BAD_REQUEST,
            "is invalid",
        ),
        (
            "type mismatch",
            json!({"publicKey": key_b64, "ott": user(&["alice"]), "certType": "host"}),
            StatusCode::FORBIDDEN,
            "certType",
        ),
        (
            "unknown type",
            json!({"publicKey": key_b64, "ott": user(&["alice"]), "certType": "robot"}),
            StatusCode::BAD_REQUEST,
            "expected \"user\" or \"host\"",
        ),
        (
            "key id mismatch",
            json!({"publicKey": key_b64, "ott": user(&["alice"]), "keyID": "bob"}),
            StatusCode::FORBIDDEN,
            "keyID",
        ),
        (
            "too long",
            json!({"publicKey": key_b64, "ott": user(&["alice"]), "validBefore": "25h"}),
            StatusCode::BAD_REQUEST,
            "outside the allowed range",
        ),
        (
            "too short",
            json!({"publicKey": key_b64, "ott": user(&["alice"]), "validBefore": "1m"}),
            StatusCode::BAD_REQUEST,
            "outside the allowed range",
        ),
        (
            "inverted",
            json!({"publicKey": key_b64, "ott": user(&["alice"]), "validAfter": "2h", "validBefore": "1h"}),
            StatusCode::BAD_REQUEST,
            "must be after",
        ),
        (
            "in the past",
            json!({"publicKey": key_b64, "ott": user(&["alice"]), "validAfter": "2020-01-01T00:00:00Z", "validBefore": "2020-01-01T01:00:00Z"}),
            StatusCode::BAD_REQUEST,
            "in the past",
        ),
        (
            "bad time",
            json!({"publicKey": key_b64, "ott": user(&["alice"]), "validBefore": "soon"}),
            StatusCode::BAD_REQUEST,
            "not an RFC 3339 time",
        ),
        (
            "critical option not allowed",
            json!({"publicKey": key_b64, "ott": user(&["alice"]), "criticalOptions": {"force-command": "/bin/sh"}}),
            StatusCode::FORBIDDEN,
            "not allowed by the token",
        ),
        (
            "unknown critical option",
            json!({"publicKey": key_b64, "ott": user(&["alice"]), "criticalOptions": {"no-such": "x"}}),
            StatusCode::BAD_REQUEST,
            "critical option \"no-such\"",
        ),
        (
            "not JSON",
            Value::String("{".into()),
            StatusCode::BAD_REQUEST,
            "request body",
        ),
    ];
    for (name, body, status, message) in cases {
        let (got, answer) = h.call("POST", "/1.0/ssh/sign", body).await;
        assert_eq!(got, status, "{name}: {answer}");
        let text = answer["message"].as_str().unwrap_or_default();
        assert!(
            text.contains(message),
            "{name}: {text:?} should contain {message:?}"
        );
        assert_eq!(
            answer["status"].as_u64(),
            Some(u64::from(status.as_u16())),
            "{name}"
        );
    }
    assert_eq!(h.stored(), 0, "no refused request stored a certificate");

    let others: Vec<(&str, &str, Value, StatusCode, &str)> = vec![
        (
            "renew without token",
            "/ssh/renew",
            json!({"ott": ""}),
            StatusCode::UNAUTHORIZED,
            "one-time token",
        ),
        (
            "renew with a provisioner token",
            "/ssh/renew",
            json!({"ott": user(&["alice"])}),
            StatusCode::UNAUTHORIZED,
            "sshpop",
        ),
        (
            "rekey without key",
            "/ssh/rekey",
            json!({"ott": "x", "publicKey": ""}),
            StatusCode::BAD_REQUEST,
            "publicKey",
        ),
        (
            "revoke bad serial",
            "/ssh/revoke",
            json!({"serial": "12ab", "ott": "x"}),
            StatusCode::BAD_REQUEST,
            "not a decimal number",
        ),
        (
            "revoke unknown serial",
            "/ssh/revoke",
            json!({"serial": "12", "ott": h.token(&h.claims("ssh/revoke", "12", None))}),
            StatusCode::NOT_FOUND,
            "no certificate",
        ),
        (
            "revoke other serial",
            "/ssh/revoke",
            json!({"serial": "12", "ott": h.token(&h.claims("ssh/revoke", "13", None))}),
            StatusCode::FORBIDDEN,
            "not 12",
        ),
        (
            "revoke bad reason",
            "/ssh/revoke",
            json!({"serial": "12", "ott": "x", "reasonCode": 7}),
            StatusCode::BAD_REQUEST,
            "reason code 7",
        ),
        (
            "config unknown type",
            "/ssh/config",
            json!({"type": "robot"}),
            StatusCode::BAD_REQUEST,
            "expected \"user\" or \"host\"",
        ),
        (
            "config unknown value",
            "/ssh/config",
            json!({"type": "host", "data": {"HostKye": "/k"}}),
            StatusCode::BAD_REQUEST,
            "HostKye",
        ),
        (
            "check-host empty",
            "/ssh/check-host",
            json!({"principal": " "}),
            StatusCode::BAD_REQUEST,
            "principal",
        ),
        (
            "check-host of a user",
            "/ssh/check-host",
            json!({"type": "user", "principal": "alice"}),
            StatusCode::BAD_REQUEST,
            "only \"host\"",
        ),
    ];
    for (name, uri, body, status, message) in others {
        let (got, answer) = h.call("POST", uri, body).await;
        assert_eq!(got, status, "{name}: {answer}");
        let text = answer["message"].as_str().unwrap_or_default();
        assert!(
            text.contains(message),
            "{name}: {text:?} should contain {message:?}"
        );
    }
    assert_eq!(h.stored(), 0);
}

#[tokio::test]
async fn a_ca_without_ssh_keys_says_so() {
    let h = harness(None).await;
    for (method, uri) in [
        ("GET", "/ssh/roots"),
        ("GET", "/ssh/krl"),
        ("POST", "/ssh/config"),
    ] {
        let body = if method == "POST" {
            json!({})
        } else {
            Value::Null
        };
        let (status, answer) = h.call(method, uri, body).await;
        assert_eq!(status, StatusCode::NOT_IMPLEMENTED, "{uri}: {answer}");
        assert!(
            answer["message"].as_str().unwrap().contains("--ssh"),
            "{answer}"
        );
    }
}

/// [`support::assert_refused`] for an answer of the router.
#[track_caller]
fn assert_refused(row: &str, got: (StatusCode, Value), status: StatusCode, message: &str) {
    support::assert_refused(row, (got.0.as_u16(), &got.1), status.as_u16(), message);
}

/// Each bad JWK token for `/ssh/sign` is refused for its own reason; each row is a token that
/// would buy a certificate but for the one thing wrong with it, so it fails if the check it
/// names is taken away.
#[tokio::test]
async fn bad_jwk_tokens_get_no_ssh_certificate() {
    let h = harness(Some(KeyAlgorithm::EcP256)).await;
    let (_, public) = new_key();
    let user = || Some(json!({"certType": "user", "keyID": "alice", "principals": ["alice"]}));
    let with = |field: &str, value: Value| {
        let mut claims = h.claims("ssh/sign", "alice", user());
        claims[field] = value;
        claims
    };
    let replayed = h.token(&h.claims("ssh/sign", "alice", user()));
    h.sign(&public, &replayed, json!({})).await;
    let before = h.stored();
    let mut expired = with("exp", json!(now() - 120));
    expired["nbf"] = json!(now() - 400);
    expired["iat"] = json!(now() - 400);
    // A key ca.json does not have, naming itself by its own thumbprint as step does.
    let stranger = PrivateKey::generate(KeyAlgorithm::EcP256).unwrap();
    let stranger_kid = Jwk::public_from_key(&stranger).unwrap().kid.unwrap();
    let by = |key: &PrivateKey, kid: &str, claims: &Value| {
        jws::sign_compact(key, kid, claims.to_string().as_bytes()).unwrap()
    };
    let base = h.claims("ssh/sign", "alice", user());
    let ssh = |cert_type: &str, principal: &str| {
        h.token(&h.claims(
            "ssh/sign",
            principal,
            Some(json!({"certType": cert_type, "keyID": principal, "principals": [principal]})),
        ))
    };
    let rows: Vec<(&str, String, StatusCode, &str)> = vec![
        (
            "replay",
            replayed,
            StatusCode::UNAUTHORIZED,
            "token was already used",
        ),
        (
            "expired",
            h.token(&expired),
            StatusCode::UNAUTHORIZED,
            "token expired at",
        ),
        (
            "an unknown key",
            by(&stranger, &stranger_kid, &base),
            StatusCode::UNAUTHORIZED,
            "which is no provisioner's key",
        ),
        (
            "another key under the provisioner's key id",
            by(&stranger, &h.kid, &base),
            StatusCode::UNAUTHORIZED,
            "token signature is invalid",
        ),
        (
            "another CA's root pinned",
            h.token(&with("sha", json!("00".repeat(32)))),
            StatusCode::UNAUTHORIZED,
            "token root fingerprint 0000",
        ),
        (
            "the X.509 endpoint's audience",
            h.token(&with("aud", json!("https://ca.test/1.0/sign"))),
            StatusCode::UNAUTHORIZED,
            "token audience [\"https://ca.test/1.0/sign\"] is not this CA",
        ),
        (
            "another CA's name",
            h.token(&with("aud", json!("https://elsewhere.test/1.0/ssh/sign"))),
            StatusCode::UNAUTHORIZED,
            "is not this CA",
        ),
        (
            "another issuer",
            h.token(&with("iss", json!("someone"))),
            StatusCode::UNAUTHORIZED,
            "token issuer \"someone\" does not match provisioner \"admin\"",
        ),
        (
            "a user the policy denies",
            ssh("user", "mallory"),
            StatusCode::FORBIDDEN,
            "principal \"mallory\" is denied by provisioner \"admin\"'s deny rule \"mallory\"",
        ),
        (
            "a host the policy denies",
            ssh("host", "db.evil.test"),
            StatusCode::FORBIDDEN,
            "principal \"db.evil.test\" is denied by provisioner \"admin\"'s deny rule \"*.evil.test\"",
        ),
    ];
    for (row, ott, status, message) in rows {
        let body = json!({"publicKey": STANDARD.encode(public.blob()), "ott": ott});
        let got = h.call("POST", "/1.0/ssh/sign", body).await;
        assert_refused(row, got, status, message);
    }
    assert_eq!(h.stored(), before, "a refused token bought a certificate");
}

/// SSH-POP, the credential of `/ssh/renew`, `/ssh/rekey` and `/ssh/revoke`: a certificate of
/// another SSH CA, an expired (or not yet valid) certificate, an expired token, a token signed
/// by another key, a token for another endpoint, and a token used twice are each refused on
/// every endpoint that takes them, for their own reason. (Renewals under the name policy are in
/// policy.rs: `renewals_meet_the_policy_in_force_when_they_are_asked`.)
#[tokio::test]
async fn bad_sshpop_credentials_are_refused_on_every_endpoint_with_their_reason() {
    let h = harness(Some(KeyAlgorithm::EcP256)).await;
    let (key, public) = new_key();
    let (_, new_public) = new_key();
    let cert = h
        .sign(&public, &h.ssh_token("host", "web1", &["web1"]), json!({}))
        .await;
    let host_ca = h.host_ca.clone().unwrap();
    let unix = |seconds: i64| u64::try_from(seconds).unwrap();
    let resigned = |template: SshCertTemplate, ca: &dyn Signer| {
        mayfly_pki::ssh::sign_certificate(&template, &public, ca).unwrap()
    };
    // The same certificate, serial and all, from another SSH CA: only the CA key tells it
    // apart. Revoking through it would revoke the real one, so the revoke row fails if the CA
    // key is not checked (renewal also matches the stored certificate byte for byte).
    let elsewhere = PrivateKey::generate(KeyAlgorithm::EcP256).unwrap();
    let foreign = resigned(cert.template.clone(), &elsewhere);
    // Signed by this CA's host key, but not valid now: it is not in the store either, so
    // without the validity check the refusal would say "not issued by this CA" instead.
    let expired = resigned(
        SshCertTemplate {
            serial: mayfly_pki::ssh::random_serial().unwrap(),
            valid_after: unix(now() - 7200),
            valid_before: unix(now() - 3600),
            ..cert.template.clone()
        },
        host_ca.as_ref(),
    );
    let early = resigned(
        SshCertTemplate {
            serial: mayfly_pki::ssh::random_serial().unwrap(),
            valid_after: unix(now() + 3600),
            valid_before: unix(now() + 7200),
            ..cert.template.clone()
        },
        host_ca.as_ref(),
    );
    let expired_token = |endpoint: &str| {
        let mut claims = sshpop_claims(&cert, endpoint);
        claims["nbf"] = json!(now() - 400);
        claims["iat"] = json!(now() - 400);
        claims["exp"] = json!(now() - 120);
        sshpop_with(&key, &cert, &claims)
    };
    let (stranger, _) = new_key();
    let body = |endpoint: &str, certificate: &SshCertificate, ott: String| match endpoint {
        "ssh/renew" => json!({"ott": ott}),
        "ssh/rekey" => json!({"ott": ott, "publicKey": STANDARD.encode(new_public.blob())}),
        _ => json!({"ott": ott, "serial": certificate.template.serial.to_string()}),
    };
    // Renewal and rekey take a token once: the second time is refused as a replay, not for
    // anything about the certificate (which is still valid and not revoked).
    let mut replays = Vec::new();
    for endpoint in ["ssh/renew", "ssh/rekey"] {
        let ott = sshpop(&key, &cert, endpoint);
        let (status, answer) = h
            .call(
                "POST",
                &format!("/{endpoint}"),
                body(endpoint, &cert, ott.clone()),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{endpoint}: {answer}");
        replays.push((endpoint, ott));
    }
    let before = h.stored();

    let mut rows: Vec<(String, &str, Value, StatusCode, &str)> = Vec::new();
    for (endpoint, ott) in replays {
        rows.push((
            format!("{endpoint}: the same token again"),
            endpoint,
            body(endpoint, &cert, ott),
            StatusCode::UNAUTHORIZED,
            "token was already used",
        ));
    }
    for endpoint in ["ssh/renew", "ssh/rekey", "ssh/revoke"] {
        let row = |what: &str| format!("{endpoint}: {what}");
        rows.extend([
            (
                row("a certificate of another SSH CA"),
                endpoint,
                body(endpoint, &foreign, sshpop(&key, &foreign, endpoint)),
                StatusCode::UNAUTHORIZED,
                "was not issued by this CA",
            ),
            (
                row("an expired certificate"),
                endpoint,
                body(endpoint, &expired, sshpop(&key, &expired, endpoint)),
                StatusCode::UNAUTHORIZED,
                "is not valid now: it was valid until",
            ),
            (
                row("a certificate not yet valid"),
                endpoint,
                body(endpoint, &early, sshpop(&key, &early, endpoint)),
                StatusCode::UNAUTHORIZED,
                "is not valid now: it is valid from",
            ),
            (
                row("an expired token"),
                endpoint,
                body(endpoint, &cert, expired_token(endpoint)),
                StatusCode::UNAUTHORIZED,
                "token expired at",
            ),
            (
                row("signed by another key than the certificate's"),
                endpoint,
                body(endpoint, &cert, sshpop(&stranger, &cert, endpoint)),
                StatusCode::UNAUTHORIZED,
                "token signature is invalid",
            ),
            (
                row("a token for /ssh/sign"),
                endpoint,
                body(endpoint, &cert, sshpop(&key, &cert, "ssh/sign")),
                StatusCode::UNAUTHORIZED,
                "is not this CA",
            ),
        ]);
    }
    for (row, endpoint, request, status, message) in rows {
        let got = h.call("POST", &format!("/{endpoint}"), request).await;
        assert_refused(&row, got, status, message);
    }
    assert_eq!(h.stored(), before, "a refused token bought a certificate");
    let (_, krl) = h.call("GET", "/ssh/krl", Value::Null).await;
    let krl = STANDARD.decode(krl.as_str().unwrap()).unwrap();
    assert!(
        !krl.windows(8)
            .any(|w| w == cert.template.serial.to_be_bytes()),
        "a refused token revoked the certificate"
    );
}
