//! X5C and K8sSA provisioners, through the real router and a real SQLite store: each issues
//! X.509 and SSH certificates, its certificates renew, and each bad credential (a chain to
//! another root, an expired token or certificate, a wrong audience, a replay, an unknown key,
//! a wrong issuer or subject) is refused with its 4xx and a message that says why, storing
//! nothing. The command-line side (`ca provisioner add`, `--x5c-cert`, and the real step CLI
//! against mayfly-ca) is in `x5c_and_k8ssa_from_the_command_line`.

mod support;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http_body_util::BodyExt;
use mayfly_authority::clock::SystemClock;
use mayfly_authority::{Authority, AuthorityParts, LoadedMaterial};
use mayfly_config::config::ProvisionerConfig;
use mayfly_config::init::{self, InitOptions, Layout};
use mayfly_pki::cert::{
    CertificateInfo, LeafSigner, LeafTemplate, certificate_pem, certificates_from_pem,
    create_intermediate, create_root,
};
use mayfly_pki::jose::jws;
use mayfly_pki::ssh::{CertType, SshCertificate, SshPublicKey};
use mayfly_pki::{KeyAlgorithm, PrivateKey, San, SerialNumber};
use mayfly_server::api::{AppState, router};
use mayfly_server::tls::TlsSettings;
use serde_json::{Value, json};
use time::OffsetDateTime;
use tower::ServiceExt;

/// A small CA of the test's own, outside the mayfly CA: root, intermediate, and leaves whose
/// keys sign X5C tokens.
struct X5cCa {
    root: Vec<u8>,
    intermediate: Vec<u8>,
    intermediate_key: PrivateKey,
    signer: LeafSigner,
}

impl X5cCa {
    fn new(name: &str) -> X5cCa {
        let later = OffsetDateTime::now_utc() + time::Duration::days(365);
        let root_key = PrivateKey::generate(KeyAlgorithm::EcP256).unwrap();
        let root = create_root(&format!("{name} Root"), &root_key, later).unwrap();
        let intermediate_key = PrivateKey::generate(KeyAlgorithm::EcP256).unwrap();
        let intermediate = create_intermediate(
            &format!("{name} Intermediate"),
            &intermediate_key,
            &root,
            &root_key,
            later,
            None,
        )
        .unwrap();
        let copy = PrivateKey::from_pkcs8_der(intermediate_key.pkcs8_der()).unwrap();
        let signer = LeafSigner::new(&intermediate, Arc::new(copy)).unwrap();
        X5cCa {
            root,
            intermediate,
            intermediate_key,
            signer,
        }
    }

    /// A leaf for `name`, valid from `not_before` to `not_after`, and its key; the chain is
    /// the leaf and the intermediate.
    fn leaf_between(
        &self,
        name: &str,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> (Vec<Vec<u8>>, PrivateKey) {
        let key = PrivateKey::generate(KeyAlgorithm::EcP256).unwrap();
        let template = LeafTemplate {
            common_name: name.into(),
            sans: vec![San::parse(name).unwrap()],
            not_before,
            not_after,
            serial: SerialNumber::random().unwrap(),
            rsa_key: false,
            provisioner: None,
        };
        let leaf = self
            .signer
            .sign(&template, &key.public_key_spki_der().unwrap())
            .unwrap();
        (vec![leaf, self.intermediate.clone()], key)
    }

    fn leaf(&self, name: &str) -> (Vec<Vec<u8>>, PrivateKey) {
        let now = OffsetDateTime::now_utc();
        self.leaf_between(
            name,
            now - time::Duration::minutes(1),
            now + time::Duration::days(30),
        )
    }
}

fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

fn base64_pem(pem: &str) -> String {
    STANDARD.encode(pem)
}

/// Both provisioners' name policy: no SSH login as root, no host certificate under evil.test.
/// Deny rules only, so every other name in these tests passes.
fn ssh_policy() -> Value {
    json!({"ssh": {
        "user": {"deny": {"principal": ["root"]}},
        "host": {"deny": {"dns": ["*.evil.test"]}}
    }})
}

/// The mayfly CA (with SSH), its X5C provisioner `devices` (roots: `x5c`'s root) and its
/// K8sSA provisioner `kube` (public keys: an RSA and a P-256 key), both allowed SSH under
/// [`ssh_policy`], in front of the real router.
struct Harness {
    _dir: tempfile::TempDir,
    db_path: std::path::PathBuf,
    app: axum::Router,
    root_fingerprint: String,
    x5c: X5cCa,
    rsa: PrivateKey,
    ec: PrivateKey,
}

async fn harness() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::new(dir.path());
    let options = InitOptions {
        name: "Test".into(),
        dns_names: vec!["ca.test".into()],
        address: ":443".into(),
        provisioner: "admin".into(),
        key_password: None,
        provisioner_password: b"provisioner password".to_vec(),
        existing_root: None,
        pki_only: false,
        kdf_iterations: 1000,
        ssh: Some(KeyAlgorithm::EcP256),
        insecure_address: None,
    };
    let plan = init::plan(&options, &layout).unwrap();
    init::write(&plan, &layout, false).unwrap();
    let mut loaded = mayfly_config::config::CaConfig::load(&layout.ca_config()).unwrap();
    let x5c = X5cCa::new("Devices");
    let rsa = PrivateKey::generate(KeyAlgorithm::Rsa(2048)).unwrap();
    let ec = PrivateKey::generate(KeyAlgorithm::EcP256).unwrap();
    let public_keys = format!(
        "{}\n{}",
        mayfly_pki::pubkey::public_key_pem(&rsa.public_key_spki_der().unwrap()),
        mayfly_pki::pubkey::public_key_pem(&ec.public_key_spki_der().unwrap())
    );
    for entry in [
        json!({"type": "X5C", "name": "devices", "roots": base64_pem(&certificate_pem(&x5c.root)),
               "claims": {"enableSSHCA": true}, "policy": ssh_policy()}),
        json!({"type": "K8sSA", "name": "kube", "publicKeys": base64_pem(&public_keys),
               "claims": {"enableSSHCA": true}, "policy": ssh_policy()}),
    ] {
        let entry: ProvisionerConfig = serde_json::from_value(entry).unwrap();
        loaded.config.authority.provisioners.push(entry);
    }
    let material = LoadedMaterial::load(&loaded.config, dir.path(), None).unwrap();
    let db_path = layout.database();
    let store = Arc::new(mayfly_store::SqliteStore::open(&db_path).await.unwrap());
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
        root_fingerprint: plan.root_fingerprint,
        x5c,
        rsa,
        ec,
    }
}

impl Harness {
    /// Claims as `step ca token --x5c-cert` writes them for `endpoint`.
    fn x5c_claims(&self, endpoint: &str, subject: &str) -> Value {
        json!({
            "aud": format!("https://ca.test/1.0/{endpoint}#x5c/devices"), "iss": "devices",
            "sub": subject, "sans": [subject], "nbf": now(), "iat": now(), "exp": now() + 300,
            "jti": mayfly_pki::random::random_hex(32).unwrap(), "sha": self.root_fingerprint,
        })
    }

    /// Claims of a Kubernetes service-account token (a secret-based one has no `exp`).
    fn k8s_claims(&self) -> Value {
        json!({
            "iss": "kubernetes/serviceaccount",
            "sub": "system:serviceaccount:prod:web",
            "kubernetes.io/serviceaccount/namespace": "prod",
            "kubernetes.io/serviceaccount/service-account.name": "web",
            "kubernetes.io/serviceaccount/secret.name": "web-token-x1",
            "kubernetes.io/serviceaccount/service-account.uid": "5b1c4c8e-0e0a-4f0a-9e2a-1f6c0c7d3e11",
            "iat": now() - 86_400, "exp": now() + 3600,
        })
    }

    async fn call(&self, uri: &str, body: Value, bearer: Option<&str>) -> (StatusCode, Value) {
        let mut request = Request::builder()
            .method("POST")
            .uri(uri)
            .header("content-type", "application/json")
            .extension(mayfly_server::serve::PeerCertificates {
                chain: None,
                remote: "127.0.0.1:50000".parse().unwrap(),
            });
        if let Some(token) = bearer {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let body = if body.is_null() {
            Body::empty()
        } else {
            Body::from(body.to_string())
        };
        let response = self
            .app
            .clone()
            .oneshot(request.body(body).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, value)
    }

    /// `POST /1.0/sign` for a new key named `name` (and `extra` SANs).
    async fn sign(
        &self,
        name: &str,
        sans: &[&str],
        ott: &str,
        extra: Value,
    ) -> (StatusCode, Value) {
        let key = PrivateKey::generate(KeyAlgorithm::EcP256).unwrap();
        let sans: Vec<San> = sans.iter().map(|s| San::parse(s).unwrap()).collect();
        let csr = mayfly_pki::csr::create_pem(&key, name, &sans).unwrap();
        let mut body = json!({"csr": csr, "ott": ott});
        if let Value::Object(extra) = extra {
            body.as_object_mut().unwrap().extend(extra);
        }
        self.call("/1.0/sign", body, None).await
    }

    async fn signed(&self, name: &str, sans: &[&str], ott: &str) -> CertificateInfo {
        let (status, body) = self.sign(name, sans, ott, json!({})).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        leaf_of(&body)
    }

    async fn ssh_sign(&self, ott: &str, extra: Value) -> (StatusCode, Value) {
        let key = PrivateKey::generate(KeyAlgorithm::EcP256).unwrap();
        let public = SshPublicKey::from_private_key(&key).unwrap();
        let mut body = json!({"publicKey": STANDARD.encode(public.blob()), "ott": ott});
        if let Value::Object(extra) = extra {
            body.as_object_mut().unwrap().extend(extra);
        }
        self.call("/1.0/ssh/sign", body, None).await
    }

    fn count(&self, table: &str) -> usize {
        let out = std::process::Command::new("sqlite3")
            .arg(&self.db_path)
            .arg(format!("SELECT COUNT(*) FROM {table}"))
            .output()
            .expect("sqlite3 is required: install the Debian package sqlite3");
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    }

    fn stored(&self) -> usize {
        self.count("certificates") + self.count("ssh_certificates")
    }
}

fn x5c_token(key: &PrivateKey, chain: &[Vec<u8>], claims: &Value) -> String {
    jws::sign_compact_x5c(key, chain, claims.to_string().as_bytes()).unwrap()
}

fn k8s_token(key: &PrivateKey, claims: &Value) -> String {
    jws::sign_compact(key, "sa-key-1", claims.to_string().as_bytes()).unwrap()
}

fn leaf_of(body: &Value) -> CertificateInfo {
    let pem = body["crt"].as_str().unwrap();
    CertificateInfo::from_der(&certificates_from_pem(pem.as_bytes()).unwrap()[0]).unwrap()
}

#[tokio::test]
async fn an_x5c_token_gets_x509_and_ssh_certificates_no_longer_than_its_certificate() {
    let h = harness().await;
    let (chain, key) = h.x5c.leaf("device-7.devices.test");
    let token = x5c_token(&key, &chain, &h.x5c_claims("sign", "app.example"));
    let issued = h.signed("app.example", &["app.example"], &token).await;
    assert_eq!(issued.common_name, "app.example");
    assert_eq!(issued.sans, vec![San::parse("app.example").unwrap()]);
    let extension = issued.provisioner.unwrap();
    assert_eq!(
        (
            extension.type_code,
            extension.name.as_str(),
            extension.credential_id.as_str()
        ),
        (7, "devices", "")
    );

    // A leaf that ends in an hour buys a certificate that ends with it (the default is 24h),
    // and no more when asked.
    let now = OffsetDateTime::now_utc();
    let ends = now + time::Duration::hours(1);
    let (short, short_key) = h.x5c.leaf_between(
        "device-8.devices.test",
        now - time::Duration::minutes(1),
        ends,
    );
    let token = x5c_token(&short_key, &short, &h.x5c_claims("sign", "short.example"));
    let issued = h.signed("short.example", &[], &token).await;
    assert_eq!(
        issued.not_after.unix_timestamp(),
        CertificateInfo::from_der(&short[0])
            .unwrap()
            .not_after
            .unix_timestamp()
    );
    let token = x5c_token(&short_key, &short, &h.x5c_claims("sign", "short.example"));
    let before = h.stored();
    let (status, body) = h
        .sign("short.example", &[], &token, json!({"notAfter": "2h"}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("outside the validity of the credential"),
        "{body}"
    );
    assert_eq!(h.stored(), before);

    // SSH: the token's step.ssh claims, and the same bound.
    let mut claims = h.x5c_claims("ssh/sign", "alice");
    claims["step"] =
        json!({"ssh": {"certType": "user", "keyID": "alice", "principals": ["alice", "ops"]}});
    let (status, body) = h
        .ssh_sign(&x5c_token(&short_key, &short, &claims), json!({}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let certificate = SshCertificate::from_base64(body["crt"].as_str().unwrap()).unwrap();
    assert_eq!(certificate.template.cert_type, CertType::User);
    assert_eq!(certificate.template.principals, vec!["alice", "ops"]);
    assert_eq!(
        certificate.template.valid_before,
        u64::try_from(ends.unix_timestamp()).unwrap()
    );
    let mut claims = h.x5c_claims("ssh/sign", "alice");
    claims["step"] =
        json!({"ssh": {"certType": "user", "keyID": "alice", "principals": ["alice"]}});
    let (status, body) = h
        .ssh_sign(
            &x5c_token(&short_key, &short, &claims),
            json!({"validBefore": "3h"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    // A token without SSH claims is not an SSH token.
    let claims = h.x5c_claims("ssh/sign", "alice");
    let (status, body) = h
        .ssh_sign(&x5c_token(&key, &chain, &claims), json!({}))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("no SSH claims"),
        "{body}"
    );
}

#[tokio::test]
async fn bad_x5c_credentials_are_refused_with_their_reason_and_store_nothing() {
    let h = harness().await;
    let (chain, key) = h.x5c.leaf("device-1.devices.test");
    let other = X5cCa::new("Elsewhere");
    let (foreign, foreign_key) = other.leaf("device-1.devices.test");
    let now_t = OffsetDateTime::now_utc();
    let (expired, expired_key) = h.x5c.leaf_between(
        "old.devices.test",
        now_t - time::Duration::days(2),
        now_t - time::Duration::days(1),
    );
    // A certificate of the mayfly CA itself: its root is not the provisioner's.
    let own_key = PrivateKey::generate(KeyAlgorithm::EcP256).unwrap();
    let (status, body) = {
        let csr = mayfly_pki::csr::create_pem(&own_key, "own.example", &[]).unwrap();
        let jwk_token = admin_token(&h, "own.example");
        h.call("/1.0/sign", json!({"csr": csr, "ott": jwk_token}), None)
            .await
    };
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let own_chain: Vec<Vec<u8>> = body["certChain"]
        .as_array()
        .unwrap()
        .iter()
        .map(|pem| certificates_from_pem(pem.as_str().unwrap().as_bytes()).unwrap()[0].clone())
        .collect();
    let intermediate_only = vec![h.x5c.intermediate.clone()];
    let claims = h.x5c_claims("sign", "app.example");
    let with = |field: &str, value: Value| {
        let mut claims = h.x5c_claims("sign", "app.example");
        claims[field] = value;
        claims
    };
    let replayed = x5c_token(&key, &chain, &claims);
    let before = h.stored();
    assert_eq!(
        h.sign("app.example", &[], &replayed, json!({})).await.0,
        StatusCode::CREATED
    );
    let before = before + 1;

    let cases: Vec<(&str, String, StatusCode, &str)> = vec![
        (
            "replay",
            replayed.clone(),
            StatusCode::UNAUTHORIZED,
            "already used",
        ),
        (
            "a chain to another root",
            x5c_token(&foreign_key, &foreign, &claims),
            StatusCode::UNAUTHORIZED,
            "not trusted by provisioner \"devices\"",
        ),
        (
            "a certificate of the CA itself",
            x5c_token(&own_key, &own_chain, &claims),
            StatusCode::UNAUTHORIZED,
            "not trusted by provisioner \"devices\"",
        ),
        (
            "an expired certificate",
            x5c_token(&expired_key, &expired, &claims),
            StatusCode::UNAUTHORIZED,
            "not valid now",
        ),
        (
            "a certificate that may not sign",
            x5c_token(&h.x5c.intermediate_key, &intermediate_only, &claims),
            StatusCode::UNAUTHORIZED,
            "lacks digitalSignature",
        ),
        (
            "signed by another key",
            x5c_token(&foreign_key, &chain, &claims),
            StatusCode::UNAUTHORIZED,
            "signature is invalid",
        ),
        (
            "no chain",
            x5c_token(&key, &[], &claims),
            StatusCode::UNAUTHORIZED,
            "no \"x5c\"",
        ),
        (
            "an expired token",
            x5c_token(&key, &chain, &with("exp", json!(now() - 120))),
            StatusCode::UNAUTHORIZED,
            "token expired",
        ),
        (
            "another CA's name",
            x5c_token(
                &key,
                &chain,
                &with("aud", json!("https://elsewhere.test/1.0/sign#x5c/devices")),
            ),
            StatusCode::UNAUTHORIZED,
            "audience",
        ),
        (
            "another endpoint",
            x5c_token(
                &key,
                &chain,
                &with("aud", json!("https://ca.test/1.0/revoke#x5c/devices")),
            ),
            StatusCode::UNAUTHORIZED,
            "audience",
        ),
        (
            "an unknown provisioner",
            x5c_token(
                &key,
                &chain,
                &with("aud", json!("https://ca.test/1.0/sign#x5c/nobody")),
            ),
            StatusCode::UNAUTHORIZED,
            "provisioner \"x5c/nobody\", which this CA does not have",
        ),
        (
            "another issuer",
            x5c_token(&key, &chain, &with("iss", json!("admin"))),
            StatusCode::UNAUTHORIZED,
            "issuer",
        ),
        (
            "another CA's root pinned",
            x5c_token(&key, &chain, &with("sha", json!("00".repeat(32)))),
            StatusCode::UNAUTHORIZED,
            "root fingerprint",
        ),
        (
            "no subject",
            x5c_token(&key, &chain, &with("sub", json!(""))),
            StatusCode::UNAUTHORIZED,
            "\"sub\"",
        ),
        (
            "a name the token does not grant",
            x5c_token(&key, &chain, &with("sans", json!(["other.example"]))),
            StatusCode::FORBIDDEN,
            "not authorized by the token",
        ),
    ];
    for (name, token, status, message) in cases {
        let (got, body) = h
            .sign("app.example", &["app.example"], &token, json!({}))
            .await;
        assert_eq!(got, status, "{name}: {body}");
        let text = body["message"].as_str().unwrap_or_default();
        assert!(text.contains(message), "{name}: {text:?} lacks {message:?}");
    }
    assert_eq!(h.stored(), before, "a refused request stored a certificate");
}

/// The same bad credentials as [`bad_x5c_credentials_are_refused_with_their_reason_and_store_nothing`],
/// for an SSH certificate: each row is a token that would buy one but for the one thing wrong
/// with it, so a row fails if the check it names is taken away.
#[tokio::test]
async fn bad_x5c_credentials_get_no_ssh_certificate() {
    let h = harness().await;
    let (chain, key) = h.x5c.leaf("device-1.devices.test");
    let other = X5cCa::new("Elsewhere");
    let (foreign, foreign_key) = other.leaf("device-1.devices.test");
    let now_t = OffsetDateTime::now_utc();
    let (expired, expired_key) = h.x5c.leaf_between(
        "old.devices.test",
        now_t - time::Duration::days(2),
        now_t - time::Duration::days(1),
    );
    let ssh_claims = |cert_type: &str, principal: &str| {
        let mut claims = h.x5c_claims("ssh/sign", principal);
        claims["step"] = json!({"ssh": {"certType": cert_type, "keyID": principal,
                                        "principals": [principal]}});
        claims
    };
    let claims = ssh_claims("user", "alice");
    let with = |field: &str, value: Value| {
        let mut claims = ssh_claims("user", "alice");
        claims[field] = value;
        claims
    };
    let replayed = x5c_token(&key, &chain, &claims);
    let (status, body) = h.ssh_sign(&replayed, json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let before = h.stored();
    let mut expired_token = with("exp", json!(now() - 120));
    expired_token["nbf"] = json!(now() - 400);
    expired_token["iat"] = json!(now() - 400);

    let rows: Vec<(&str, String, StatusCode, &str)> = vec![
        (
            "replay",
            replayed,
            StatusCode::UNAUTHORIZED,
            "token was already used",
        ),
        (
            "a chain to another root",
            x5c_token(&foreign_key, &foreign, &claims),
            StatusCode::UNAUTHORIZED,
            "token certificate is not trusted by provisioner \"devices\"",
        ),
        (
            "an expired certificate",
            x5c_token(&expired_key, &expired, &claims),
            StatusCode::UNAUTHORIZED,
            "not valid now",
        ),
        (
            "an expired token",
            x5c_token(&key, &chain, &expired_token),
            StatusCode::UNAUTHORIZED,
            "token expired at",
        ),
        (
            "signed by another key than the certificate's",
            x5c_token(&foreign_key, &chain, &claims),
            StatusCode::UNAUTHORIZED,
            "token signature is invalid",
        ),
        (
            "the X.509 endpoint's audience",
            x5c_token(
                &key,
                &chain,
                &with("aud", json!("https://ca.test/1.0/sign#x5c/devices")),
            ),
            StatusCode::UNAUTHORIZED,
            "token audience [\"https://ca.test/1.0/sign#x5c/devices\"] is not this CA",
        ),
        (
            "another CA's name",
            x5c_token(
                &key,
                &chain,
                &with(
                    "aud",
                    json!("https://elsewhere.test/1.0/ssh/sign#x5c/devices"),
                ),
            ),
            StatusCode::UNAUTHORIZED,
            "is not this CA",
        ),
        (
            "an unknown provisioner",
            x5c_token(
                &key,
                &chain,
                &with("aud", json!("https://ca.test/1.0/ssh/sign#x5c/nobody")),
            ),
            StatusCode::UNAUTHORIZED,
            "provisioner \"x5c/nobody\", which this CA does not have",
        ),
        (
            "another issuer",
            x5c_token(&key, &chain, &with("iss", json!("admin"))),
            StatusCode::UNAUTHORIZED,
            "token issuer \"admin\" does not match provisioner \"devices\"",
        ),
        (
            "another CA's root pinned",
            x5c_token(&key, &chain, &with("sha", json!("00".repeat(32)))),
            StatusCode::UNAUTHORIZED,
            "token root fingerprint 0000",
        ),
        (
            "a user the policy denies",
            x5c_token(&key, &chain, &ssh_claims("user", "root")),
            StatusCode::FORBIDDEN,
            "principal \"root\" is denied by provisioner \"devices\"'s deny rule \"root\"",
        ),
        (
            "a host the policy denies",
            x5c_token(&key, &chain, &ssh_claims("host", "db.evil.test")),
            StatusCode::FORBIDDEN,
            "principal \"db.evil.test\" is denied by provisioner \"devices\"'s deny rule \"*.evil.test\"",
        ),
    ];
    for (row, token, status, message) in rows {
        let (got, body) = h.ssh_sign(&token, json!({})).await;
        support::assert_refused(row, (got.as_u16(), &body), status.as_u16(), message);
    }
    assert_eq!(h.stored(), before, "a refused request stored a certificate");
}

/// A token of the CA's own JWK provisioner, decrypted as `mayfly ca token` does.
fn admin_token(h: &Harness, subject: &str) -> String {
    let config = mayfly_config::config::CaConfig::load(&h._dir.path().join("config/ca.json"))
        .unwrap()
        .config;
    let admin = &config.authority.provisioners[0];
    let private = mayfly_pki::jose::jwe::decrypt_pbes2(
        admin.encrypted_key.as_deref().unwrap(),
        b"provisioner password",
    )
    .unwrap();
    let key = mayfly_pki::jose::jwk::Jwk::from_json(&private)
        .unwrap()
        .to_private_key()
        .unwrap();
    let kid = mayfly_pki::jose::jwk::Jwk::public_from_key(&key)
        .unwrap()
        .kid
        .unwrap();
    let claims = json!({
        "aud": "https://ca.test/1.0/sign", "iss": "admin", "sub": subject, "sans": [subject],
        "nbf": now(), "iat": now(), "exp": now() + 300,
        "jti": mayfly_pki::random::random_hex(32).unwrap(), "sha": h.root_fingerprint,
    });
    jws::sign_compact(&key, &kid, claims.to_string().as_bytes()).unwrap()
}

#[tokio::test]
async fn service_account_tokens_rs256_and_es256_get_the_names_they_ask_for() {
    let h = harness().await;
    for key in [&h.rsa, &h.ec] {
        let token = k8s_token(key, &h.k8s_claims());
        let issued = h
            .signed("web.prod.svc", &["web.prod.svc", "10.0.0.7"], &token)
            .await;
        assert_eq!(issued.common_name, "web.prod.svc");
        assert_eq!(
            issued.sans,
            vec![
                San::parse("web.prod.svc").unwrap(),
                San::parse("10.0.0.7").unwrap()
            ]
        );
        let extension = issued.provisioner.unwrap();
        assert_eq!((extension.type_code, extension.name.as_str()), (8, "kube"));
    }
    // A secret-based token has neither `exp` nor an audience: it works once.
    let mut claims = h.k8s_claims();
    let map = claims.as_object_mut().unwrap();
    map.remove("exp");
    map.remove("iat");
    let token = k8s_token(&h.rsa, &claims);
    h.signed("legacy.prod.svc", &[], &token).await;
    let (status, body) = h.sign("legacy.prod.svc", &[], &token, json!({})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(body["message"].as_str().unwrap().contains("already used"));
    // An audience, when named, must be this CA's.
    let mut claims = h.k8s_claims();
    claims["aud"] = json!(["https://ca.test:9000/1.0/sign"]);
    h.signed("aud.prod.svc", &[], &k8s_token(&h.ec, &claims))
        .await;

    // SSH: the request names type, key id and principals; the token vouches for them.
    let token = k8s_token(&h.ec, &h.k8s_claims());
    let (status, body) = h
        .ssh_sign(
            &token,
            json!({"certType": "host", "keyID": "web-1", "principals": ["web-1.prod.svc"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let certificate = SshCertificate::from_base64(body["crt"].as_str().unwrap()).unwrap();
    assert_eq!(certificate.template.cert_type, CertType::Host);
    assert_eq!(certificate.template.key_id, "web-1");
    assert_eq!(certificate.template.principals, vec!["web-1.prod.svc"]);
    let before = h.stored();
    let token = k8s_token(&h.ec, &h.k8s_claims());
    let (status, body) = h
        .ssh_sign(&token, json!({"certType": "host", "keyID": "web-1"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("must name certType, keyID and principals"),
        "{body}"
    );
    assert_eq!(h.stored(), before);
}

#[tokio::test]
async fn bad_service_account_tokens_are_refused_with_their_reason_and_store_nothing() {
    let h = harness().await;
    let unknown = PrivateKey::generate(KeyAlgorithm::EcP256).unwrap();
    let with = |field: &str, value: Value| {
        let mut claims = h.k8s_claims();
        claims[field] = value;
        claims
    };
    let replayed = k8s_token(&h.rsa, &h.k8s_claims());
    h.signed("web.prod.svc", &[], &replayed).await;
    let before = h.stored();
    let cases: Vec<(&str, String, &str)> = vec![
        ("replay", replayed, "already used"),
        (
            "an unknown key",
            k8s_token(&unknown, &h.k8s_claims()),
            "none of the public keys of provisioner \"kube\"",
        ),
        (
            "expired",
            k8s_token(&h.ec, &with("exp", json!(now() - 120))),
            "token expired",
        ),
        (
            "issued in the future",
            k8s_token(&h.ec, &with("iat", json!(now() + 600))),
            "not valid before",
        ),
        (
            "for another service",
            k8s_token(&h.ec, &with("aud", json!(["vault"]))),
            "audience",
        ),
        (
            "not a service account",
            k8s_token(&h.ec, &with("sub", json!("admin"))),
            "is not a service account",
        ),
        (
            "a subject the other claims contradict",
            k8s_token(&h.ec, &with("sub", json!("system:serviceaccount:dev:web"))),
            "\"prod\", but \"sub\" says \"dev\"",
        ),
        (
            // Routed by its issuer: a token of another issuer is no service-account token,
            // and no JWK provisioner has its key.
            "another issuer",
            k8s_token(&h.ec, &with("iss", json!("https://kubernetes.default.svc"))),
            "no provisioner's key",
        ),
    ];
    for (name, token, message) in cases {
        let (status, body) = h.sign("web.prod.svc", &[], &token, json!({})).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{name}: {body}");
        let text = body["message"].as_str().unwrap_or_default();
        assert!(text.contains(message), "{name}: {text:?} lacks {message:?}");
    }
    assert_eq!(h.stored(), before, "a refused request stored a certificate");
}

/// Bad service-account tokens for an SSH certificate: each row is a token that would buy a
/// host certificate but for the one thing wrong with it (a service account has no root to
/// pin: its keys are the provisioner's `publicKeys`).
#[tokio::test]
async fn bad_service_account_tokens_get_no_ssh_certificate() {
    let h = harness().await;
    let unknown = PrivateKey::generate(KeyAlgorithm::EcP256).unwrap();
    let with = |field: &str, value: Value| {
        let mut claims = h.k8s_claims();
        claims[field] = value;
        claims
    };
    let host =
        |principal: &str| json!({"certType": "host", "keyID": "web-1", "principals": [principal]});
    let replayed = k8s_token(&h.ec, &h.k8s_claims());
    let (status, body) = h.ssh_sign(&replayed, host("web-1.prod.svc")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let before = h.stored();
    let request = host("web-1.prod.svc");
    let rows: Vec<(&str, String, Value, StatusCode, &str)> = vec![
        (
            "replay",
            replayed,
            request.clone(),
            StatusCode::UNAUTHORIZED,
            "token was already used",
        ),
        (
            "an unknown key",
            k8s_token(&unknown, &h.k8s_claims()),
            request.clone(),
            StatusCode::UNAUTHORIZED,
            "token is signed by none of the public keys of provisioner \"kube\"",
        ),
        (
            "expired",
            k8s_token(&h.ec, &with("exp", json!(now() - 120))),
            request.clone(),
            StatusCode::UNAUTHORIZED,
            "token expired at",
        ),
        (
            "issued in the future",
            k8s_token(&h.ec, &with("iat", json!(now() + 600))),
            request.clone(),
            StatusCode::UNAUTHORIZED,
            "not valid before",
        ),
        (
            "for another service",
            k8s_token(&h.ec, &with("aud", json!(["vault"]))),
            request.clone(),
            StatusCode::UNAUTHORIZED,
            "token audience [\"vault\"] is not this CA",
        ),
        (
            "for the X.509 endpoint",
            k8s_token(&h.ec, &with("aud", json!(["https://ca.test/1.0/sign"]))),
            request.clone(),
            StatusCode::UNAUTHORIZED,
            "token audience [\"https://ca.test/1.0/sign\"] is not this CA",
        ),
        (
            "not a service account",
            k8s_token(&h.ec, &with("sub", json!("admin"))),
            request.clone(),
            StatusCode::UNAUTHORIZED,
            "is not a service account",
        ),
        (
            "a host the policy denies",
            k8s_token(&h.ec, &h.k8s_claims()),
            host("db.evil.test"),
            StatusCode::FORBIDDEN,
            "principal \"db.evil.test\" is denied by provisioner \"kube\"'s deny rule \"*.evil.test\"",
        ),
        (
            "a user the policy denies",
            k8s_token(&h.ec, &h.k8s_claims()),
            json!({"certType": "user", "keyID": "root", "principals": ["root"]}),
            StatusCode::FORBIDDEN,
            "principal \"root\" is denied by provisioner \"kube\"'s deny rule \"root\"",
        ),
    ];
    for (row, token, request, status, message) in rows {
        let (got, body) = h.ssh_sign(&token, request).await;
        support::assert_refused(row, (got.as_u16(), &body), status.as_u16(), message);
    }
    assert_eq!(h.stored(), before, "a refused request stored a certificate");
}

#[tokio::test]
async fn certificates_of_both_kinds_renew_and_x5c_tokens_revoke() {
    let h = harness().await;
    let (chain, key) = h.x5c.leaf("device-2.devices.test");
    for (name, token, provisioner) in [
        (
            "renew-x5c.example",
            x5c_token(&key, &chain, &h.x5c_claims("sign", "renew-x5c.example")),
            "devices",
        ),
        (
            "renew-k8s.example",
            k8s_token(&h.ec, &h.k8s_claims()),
            "kube",
        ),
    ] {
        let leaf_key = PrivateKey::generate(KeyAlgorithm::EcP256).unwrap();
        let csr = mayfly_pki::csr::create_pem(&leaf_key, name, &[]).unwrap();
        let (status, body) = h
            .call("/1.0/sign", json!({"csr": csr, "ott": token}), None)
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let leaf = certificates_from_pem(body["crt"].as_str().unwrap().as_bytes()).unwrap();
        // step's renewal token: the certificate in `x5cInsecure`, signed by its key.
        let claims = json!({
            "aud": "https://ca.test/1.0/renew", "iss": "step-ca-client/1.0", "sub": name,
            "nbf": now(), "iat": now(), "exp": now() + 300,
        });
        let renewal = jws::sign_compact_chain(
            &leaf_key,
            "x5cInsecure",
            &leaf,
            claims.to_string().as_bytes(),
        )
        .unwrap();
        let (status, body) = h.call("/1.0/renew", Value::Null, Some(&renewal)).await;
        assert_eq!(status, StatusCode::CREATED, "{provisioner}: {body}");
        let renewed = leaf_of(&body);
        assert_eq!(renewed.common_name, name);
        assert_eq!(renewed.provisioner.unwrap().name, provisioner);
    }

    // Revocation by an X5C token names the serial as its subject.
    let (chain_b, key_b) = h.x5c.leaf("device-3.devices.test");
    let token = x5c_token(&key_b, &chain_b, &h.x5c_claims("sign", "gone.example"));
    let issued = h.signed("gone.example", &[], &token).await;
    let serial = issued.serial.to_decimal();
    let revoke = x5c_token(&key_b, &chain_b, &h.x5c_claims("revoke", &serial));
    let (status, body) = h
        .call(
            "/1.0/revoke",
            json!({"serial": serial, "ott": revoke, "reasonCode": 1, "passive": true}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(h.count("certificates WHERE status = 'revoked'"), 1);
}

/// The type code and name of the provisioner that vouched for the certificate in `path`.
fn provisioner_of(path: &std::path::Path) -> (u8, String) {
    let pem = std::fs::read(path).unwrap();
    let info = CertificateInfo::from_der(&certificates_from_pem(&pem).unwrap()[0]).unwrap();
    let extension = info.provisioner.unwrap();
    (extension.type_code, extension.name)
}

/// `ca provisioner add --type X5C|K8SSA|SSHPOP` with step's flags writes what step writes, a
/// mayfly-ca started on that file issues through them to `mayfly ca certificate --x5c-cert`,
/// `ca token --x5c-cert` and a service-account token, and the real step CLI gets X.509 and SSH
/// certificates with X5C and K8sSA tokens from it.
#[test]
fn x5c_and_k8ssa_from_the_command_line() {
    use support::{Server, mayfly, mayfly_err, mayfly_ok};
    let test = "x5c_and_k8ssa_from_the_command_line";
    support::require_tool("ssh-keygen", "openssh-client");
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let work = tmp.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    support::write_secret(work.join("pw"), "ca password\n");
    let run = |args: &[&str]| mayfly_ok(&home, &work, args);
    run(&[
        "ca",
        "init",
        "--name",
        "T",
        "--dns",
        "127.0.0.1",
        "--address",
        "127.0.0.1:0",
        "--provisioner",
        "admin",
        "--password-file",
        "pw",
        "--ssh",
    ]);
    // The devices' own small CA, made with mayfly's profiles.
    let plain = ["--no-password", "--insecure"];
    let create = |args: &[&str]| {
        let mut all = vec!["certificate", "create"];
        all.extend_from_slice(args);
        all.extend_from_slice(&plain);
        run(&all);
    };
    create(&[
        "Devices Root",
        "x5c_root.crt",
        "x5c_root.key",
        "--profile",
        "root-ca",
    ]);
    create(&[
        "Devices Intermediate",
        "x5c_int.crt",
        "x5c_int.key",
        "--profile",
        "intermediate-ca",
        "--ca",
        "x5c_root.crt",
        "--ca-key",
        "x5c_root.key",
    ]);
    create(&[
        "device-1.devices.test",
        "device.crt",
        "device.key",
        "--profile",
        "leaf",
        "--ca",
        "x5c_int.crt",
        "--ca-key",
        "x5c_int.key",
    ]);
    create(&[
        "stranger",
        "stranger.crt",
        "stranger.key",
        "--profile",
        "self-signed",
    ]);
    let chain = [
        std::fs::read(work.join("device.crt")).unwrap(),
        std::fs::read(work.join("x5c_int.crt")).unwrap(),
    ]
    .concat();
    std::fs::write(work.join("device-chain.crt"), &chain).unwrap();
    // The cluster's service-account key.
    let sa = PrivateKey::generate(KeyAlgorithm::Rsa(2048)).unwrap();
    let sa_spki = sa.public_key_spki_der().unwrap();
    std::fs::write(
        work.join("sa.pub"),
        mayfly_pki::pubkey::public_key_pem(&sa_spki),
    )
    .unwrap();

    // Flags that do not fit the type, and material that cannot work, are refused.
    fn add<'a>(args: &[&'a str]) -> Vec<&'a str> {
        with(&["ca", "provisioner", "add"], &[args])
    }
    for (args, expected) in [
        (add(&["devices", "--type", "X5C"]), "needs --x5c-roots"),
        (
            add(&["devices", "--type", "X5C", "--x5c-roots", "device.crt"]),
            "cannot be an X5C root",
        ),
        (
            add(&[
                "devices",
                "--type",
                "X5C",
                "--x5c-roots",
                "x5c_root.crt",
                "--admin",
            ]),
            "--admin is for JWK provisioners, not X5C",
        ),
        (
            add(&["pop", "--type", "SSHPOP", "--x5c-roots", "x5c_root.crt"]),
            "--x5c-roots is for X5C provisioners, not SSHPOP",
        ),
        (add(&["kube", "--type", "K8SSA"]), "needs --public-key"),
        (
            add(&["kube", "--type", "K8SSA", "--public-key", "device.key"]),
            "\"PRIVATE KEY\"",
        ),
        (
            add(&["kube", "--type", "X5C", "--public-key", "sa.pub"]),
            "--public-key is for JWK and K8SSA provisioners, not X5C",
        ),
    ] {
        mayfly_err(&home, &work, &args, expected);
    }
    run(&add(&[
        "devices",
        "--type",
        "X5C",
        "--x5c-roots",
        "x5c_root.crt",
        "--ssh",
    ]));
    // step 0.19's names: --type k8sSA, --pem-keys.
    run(&add(&[
        "kube",
        "--type",
        "k8sSA",
        "--pem-keys",
        "sa.pub",
        "--ssh",
    ]));
    run(&add(&["pop", "--type", "SSHPOP"]));
    mayfly_err(
        &home,
        &work,
        &add(&["kube2", "--type", "K8SSA", "--public-key", "sa.pub"]),
        "at most one",
    );
    let config: Value =
        serde_json::from_slice(&std::fs::read(home.join("config/ca.json")).unwrap()).unwrap();
    let entry = |name: &str| {
        config["authority"]["provisioners"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .cloned()
            .unwrap()
    };
    let decoded = |value: &Value| STANDARD.decode(value.as_str().unwrap()).unwrap();
    let devices = entry("devices");
    assert_eq!(devices["type"], "X5C");
    assert_eq!(
        decoded(&devices["roots"]),
        std::fs::read(work.join("x5c_root.crt")).unwrap()
    );
    assert_eq!(devices["claims"], json!({"enableSSHCA": true}));
    let kube = entry("kube");
    assert_eq!(kube["type"], "K8SSA");
    assert_eq!(
        String::from_utf8(decoded(&kube["publicKeys"])).unwrap(),
        mayfly_pki::pubkey::public_key_pem(&sa_spki)
    );
    assert_eq!(entry("pop"), json!({"type": "SSHPOP", "name": "pop"}));
    let claims_of = |name: &str| {
        let config: Value =
            serde_json::from_slice(&std::fs::read(home.join("config/ca.json")).unwrap()).unwrap();
        config["authority"]["provisioners"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap()["claims"]
            .clone()
    };
    run(&["ca", "provisioner", "update", "pop", "--ssh"]);
    assert_eq!(claims_of("pop"), json!({"enableSSHCA": true}));
    run(&["ca", "provisioner", "update", "pop", "--ssh=false"]);
    assert_eq!(claims_of("pop"), json!({"enableSSHCA": false}));

    let config_path = home.join("config/ca.json");
    let server = Server::start(
        &[config_path.to_str().unwrap(), "--password-file", "pw"],
        &home,
        Some(&work),
        "serving on",
    );
    let url = server
        .lines
        .iter()
        .find_map(|l| l.split("serving on ").nth(1))
        .unwrap()
        .trim()
        .to_string();
    let root = home.join("certs/root_ca.crt");
    let root = root.to_str().unwrap();
    let ca = ["--ca-url", url.as_str(), "--root", root];
    let x5c = ["--x5c-cert", "device-chain.crt", "--x5c-key", "device.key"];
    fn with<'a>(args: &[&'a str], extra: &[&[&'a str]]) -> Vec<&'a str> {
        let mut all = args.to_vec();
        for more in extra {
            all.extend_from_slice(more);
        }
        all
    }

    run(&with(
        &["ca", "certificate", "app.example", "app.crt", "app.key"],
        &[&x5c, &ca],
    ));
    assert_eq!(provisioner_of(&work.join("app.crt")), (7, "devices".into()));
    let token = run(&with(&["ca", "token", "csr.example"], &[&x5c, &ca]));
    run(&with(
        &[
            "certificate",
            "create",
            "--csr",
            "csr.example",
            "csr.csr",
            "csr.key",
        ],
        &[&plain],
    ));
    let sign = with(
        &["ca", "sign", "csr.csr", "csr.crt", "--token", token.trim()],
        &[&ca],
    );
    run(&sign);
    assert_eq!(provisioner_of(&work.join("csr.crt")), (7, "devices".into()));
    mayfly_err(
        &home,
        &work,
        &with(&sign, &[&["--force"]]),
        "token was already used",
    );
    // The credential is checked before anything is sent; the CA checks the chain.
    mayfly_err(
        &home,
        &work,
        &with(
            &[
                "ca",
                "token",
                "x.example",
                "--x5c-cert",
                "device-chain.crt",
                "--x5c-key",
                "stranger.key",
            ],
            &[&ca],
        ),
        "is not the key of the certificate",
    );
    mayfly_err(
        &home,
        &work,
        &with(
            &[
                "ca",
                "certificate",
                "x.example",
                "x.crt",
                "x.key",
                "--x5c-cert",
                "stranger.crt",
                "--x5c-key",
                "stranger.key",
            ],
            &[&ca],
        ),
        "not trusted by provisioner \"devices\"",
    );
    mayfly_err(
        &home,
        &work,
        &with(
            &["ca", "token", "x.example", "--provisioner", "admin"],
            &[&x5c, &ca],
        ),
        "no X5C provisioner named \"admin\" (its X5C provisioners: devices)",
    );
    let out = mayfly(
        &home,
        &work,
        &["ca", "token", "x.example", "--x5c-cert", "device-chain.crt"],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--x5c-key"));

    // Service-account tokens, as a pod reads them from its secret. Each buys one certificate,
    // so each call makes another (RS256 signatures are deterministic: the same claims would
    // make the same token).
    let issued_at = std::cell::Cell::new(now());
    let k8s = || {
        issued_at.set(issued_at.get() - 1);
        let claims = json!({
            "iss": "kubernetes/serviceaccount", "sub": "system:serviceaccount:prod:web",
            "kubernetes.io/serviceaccount/namespace": "prod",
            "kubernetes.io/serviceaccount/service-account.name": "web",
            "iat": issued_at.get(),
        });
        k8s_token(&sa, &claims)
    };
    run(&with(
        &[
            "ca",
            "certificate",
            "web.prod.svc",
            "web.crt",
            "web.key",
            "--token",
            &k8s(),
        ],
        &[&ca],
    ));
    assert_eq!(provisioner_of(&work.join("web.crt")), (8, "kube".into()));

    // SSH: an X5C token for a user certificate, a service-account token for a host one.
    let token = run(&with(
        &["ca", "token", "alice", "--ssh", "--principal", "alice"],
        &[&x5c, &ca],
    ));
    let ssh = |args: &[&str]| {
        run(&with(
            &["ssh", "certificate", "--no-password", "--insecure"],
            &[args, &ca],
        ))
    };
    ssh(&["--token", token.trim(), "alice", "id_mayfly_alice"]);
    let (ok, text) = support::run(
        "ssh-keygen",
        &["-L", "-f", "id_mayfly_alice-cert.pub"],
        &work,
    );
    assert!(
        ok && text.contains("user certificate") && text.contains("Key ID: \"alice\""),
        "{text}"
    );
    ssh(&[
        "--host",
        "--token",
        &k8s(),
        "web-2.prod.svc",
        "id_mayfly_host",
    ]);
    let (ok, text) = support::run(
        "ssh-keygen",
        &["-L", "-f", "id_mayfly_host-cert.pub"],
        &work,
    );
    assert!(
        ok && text.contains("host certificate") && text.contains("web-2.prod.svc"),
        "{text}"
    );

    // The real step CLI, with both kinds.
    let Some(step) = support::step::Step::new(test, &work) else {
        return;
    };
    let fingerprint = mayfly_pki::cert::fingerprint_sha256(
        &certificates_from_pem(&std::fs::read(root).unwrap()).unwrap()[0],
    );
    step.bootstrap(&url, &fingerprint);
    // step's own `ca provisioner add` writes the same entries, and mayfly reads them.
    let mut copy = config.clone();
    copy["authority"]["provisioners"] = json!([entry("admin")]);
    std::fs::write(work.join("step-ca.json"), copy.to_string()).unwrap();
    for args in [
        ["devices", "--type", "X5C", "--x5c-root", "x5c_root.crt"],
        ["kube", "--type", "K8sSA", "--pem-keys", "sa.pub"],
    ] {
        step.ok(&with(
            &["ca", "provisioner", "add"],
            &[&args, &["--ca-config", "step-ca.json"]],
        ));
    }
    let stepped: Value =
        serde_json::from_slice(&std::fs::read(work.join("step-ca.json")).unwrap()).unwrap();
    let list = stepped["authority"]["provisioners"].as_array().unwrap();
    assert_eq!(list[1]["roots"], devices["roots"]);
    assert_eq!(list[2]["publicKeys"], kube["publicKeys"]);
    run(&add(&[
        "acme",
        "--type",
        "ACME",
        "--ca-config",
        "step-ca.json",
    ]));
    step.ok(&with(
        &["ca", "certificate"],
        &[&x5c, &["step.example", "step.crt", "step.key"]],
    ));
    assert_eq!(
        provisioner_of(&work.join("step.crt")),
        (7, "devices".into())
    );
    let token = step.stdout(&with(&["ca", "token"], &[&x5c, &["token.example"]]));
    run(&with(
        &[
            "ca",
            "certificate",
            "token.example",
            "token.crt",
            "token.key",
            "--token",
            token.trim(),
        ],
        &[&ca],
    ));
    assert_eq!(
        provisioner_of(&work.join("token.crt")),
        (7, "devices".into())
    );
    step.ok(&with(
        &["ssh", "certificate"],
        &[
            &x5c,
            &[
                "--no-password",
                "--insecure",
                "--no-agent",
                "alice",
                "id_alice",
            ],
        ],
    ));
    let (ok, text) = support::run("ssh-keygen", &["-L", "-f", "id_alice-cert.pub"], &work);
    assert!(ok && text.contains("Key ID: \"alice\""), "{text}");
    std::fs::write(work.join("k8s.token"), k8s()).unwrap();
    step.ok(&[
        "ca",
        "certificate",
        "--provisioner",
        "kube",
        "--k8ssa-token-path",
        "k8s.token",
        "api.prod.svc",
        "k8s.crt",
        "k8s.key",
    ]);
    assert_eq!(provisioner_of(&work.join("k8s.crt")), (8, "kube".into()));
    // The same token again: step-ca would take it; mayfly-ca keeps it single use.
    step.err(
        &[
            "ca",
            "certificate",
            "--provisioner",
            "kube",
            "--k8ssa-token-path",
            "k8s.token",
            "api.prod.svc",
            "k8s2.crt",
            "k8s2.key",
        ],
        "already used",
    );
    std::fs::write(work.join("k8s.token"), k8s()).unwrap();
    step.ok(&[
        "ssh",
        "certificate",
        "--host",
        "--provisioner",
        "kube",
        "--k8ssa-token-path",
        "k8s.token",
        "--no-password",
        "--insecure",
        "--no-agent",
        "web-1.prod.svc",
        "id_host",
    ]);
    let (ok, text) = support::run("ssh-keygen", &["-L", "-f", "id_host-cert.pub"], &work);
    assert!(ok && text.contains("host certificate"), "{text}");
    drop(server);
}
