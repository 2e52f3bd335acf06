//! The name policy end to end: one ca.json with `authority.policy` and a `policy` on every
//! provisioner, the real `mayfly-ca`, and every kind of credential asking for the same three
//! names: one both levels allow, one the authority denies (though the provisioner allows it:
//! deny wins), one the provisioner's allow list lacks. Each is refused by the same rule, and the
//! refusal names it.
//!
//! A new kind of credential is one more [`Row`] in [`every_credential_meets_the_same_policy`]:
//! its provisioner in ca.json gets [`provisioner_policy`] like the others (see [`start`]).

mod support;

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::process::Command;

use mayfly_pki::jose::jws;
use mayfly_pki::{KeyAlgorithm, PrivateKey};
use serde_json::{Value, json};
use support::{Server, mayfly, mayfly_ok};

/// The authority's policy: no certificate for `*.evil.test`, no SSH login as root.
fn authority_policy() -> Value {
    json!({
        "x509": {"deny": {"dns": ["*.evil.test"]}},
        "ssh": {
            "user": {"deny": {"principal": ["root"]}},
            "host": {"deny": {"dns": ["*.evil.test"]}}
        }
    })
}

/// Every provisioner's policy: names under example.test, and (for the authority's deny rule to
/// beat) under evil.test; users alice and root.
fn provisioner_policy() -> Value {
    json!({
        "x509": {"allow": {"dns": ["*.example.test", "*.evil.test"]}},
        "ssh": {
            "user": {"allow": {"principal": ["alice", "root"]}},
            "host": {"allow": {"dns": ["*.example.test", "*.evil.test"]}}
        }
    })
}

/// A CA made by `mayfly ca init --ssh` (JWK provisioner `admin`, SSHPOP) with an ACME
/// provisioner `acme` validating http-01 on a loopback port, an X5C provisioner `devices`
/// trusting a small CA of the test's, a K8sSA provisioner `kube` trusting a service-account
/// key (both allowed SSH); every provisioner under [`provisioner_policy`], the authority under
/// [`authority_policy`].
struct Ca {
    server: Option<Server>,
    /// MAYFLY_PATH of the CA and of the client.
    home: PathBuf,
    work: PathBuf,
    config: PathBuf,
    /// Where lego answers http-01 challenges.
    http_port: u16,
    /// The cluster's service-account key, which signs K8sSA tokens.
    service_account: PrivateKey,
    /// The `iat` of the last service-account token: each one buys one certificate, and
    /// signatures are deterministic, so each is made with another.
    issued_at: Cell<i64>,
}

impl Ca {
    fn pw(&self) -> String {
        self.work.join("pw.txt").display().to_string()
    }

    fn serve(&mut self) {
        self.server = None;
        self.server = Some(Server::start(
            &[self.config.to_str().unwrap(), "--password-file", &self.pw()],
            &self.home,
            Some(&self.work),
            "serving on",
        ));
    }

    /// Changes ca.json and restarts the CA on it.
    fn reconfigure(&mut self, change: impl FnOnce(&mut Value)) {
        let mut config: Value =
            serde_json::from_str(&std::fs::read_to_string(&self.config).unwrap()).unwrap();
        change(&mut config);
        std::fs::write(&self.config, serde_json::to_string_pretty(&config).unwrap()).unwrap();
        self.serve();
    }

    /// `mayfly ARGS`: Ok(stdout) or Err(stderr).
    fn mayfly(&self, args: &[&str]) -> Result<String, String> {
        let out = mayfly(&self.home, &self.work, args);
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }
}

fn start(work: &Path) -> Ca {
    let home = work.join("mayfly");
    support::write_secret(work.join("pw.txt"), "policy test password\n");
    let address = format!("127.0.0.1:{}", support::free_port());
    mayfly_ok(
        &home,
        work,
        &[
            "ca",
            "init",
            "--ssh",
            "--name",
            "Policy Test",
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
    // `ca init --ssh` writes an SSHPOP provisioner beside the JWK one, as `step ca init --ssh`.
    let written: Value =
        serde_json::from_slice(&std::fs::read(home.join("config/ca.json")).unwrap()).unwrap();
    let kinds: Vec<(&str, &str)> = written["authority"]["provisioners"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["type"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    assert_eq!(kinds, [("JWK", "admin"), ("SSHPOP", "sshpop")]);
    let run = |args: &[&str]| mayfly_ok(&home, work, args);
    run(&["ca", "provisioner", "add", "acme", "--type", "ACME"]);
    // The devices' own CA, whose leaves sign X5C tokens.
    let plain = ["--no-password", "--insecure"];
    for args in [
        &[
            "Devices Root",
            "x5c_root.crt",
            "x5c_root.key",
            "--profile",
            "root-ca",
        ][..],
        &[
            "Devices Intermediate",
            "x5c_int.crt",
            "x5c_int.key",
            "--profile",
            "intermediate-ca",
            "--ca",
            "x5c_root.crt",
            "--ca-key",
            "x5c_root.key",
        ],
        &[
            "device-1.devices.test",
            "device.crt",
            "device.key",
            "--profile",
            "leaf",
            "--ca",
            "x5c_int.crt",
            "--ca-key",
            "x5c_int.key",
        ],
    ] {
        run(&[&["certificate", "create"][..], args, &plain].concat());
    }
    let chain = [
        std::fs::read(work.join("device.crt")).unwrap(),
        std::fs::read(work.join("x5c_int.crt")).unwrap(),
    ]
    .concat();
    std::fs::write(work.join("device-chain.crt"), chain).unwrap();
    run(&[
        "ca",
        "provisioner",
        "add",
        "devices",
        "--type",
        "X5C",
        "--x5c-roots",
        "x5c_root.crt",
        "--ssh",
    ]);
    let service_account = PrivateKey::generate(KeyAlgorithm::EcP256).unwrap();
    std::fs::write(
        work.join("sa.pub"),
        mayfly_pki::pubkey::public_key_pem(&service_account.public_key_spki_der().unwrap()),
    )
    .unwrap();
    run(&[
        "ca",
        "provisioner",
        "add",
        "kube",
        "--type",
        "K8SSA",
        "--public-key",
        "sa.pub",
        "--ssh",
    ]);
    let http_port = support::free_port();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut ca = Ca {
        server: None,
        config: home.join("config/ca.json"),
        home,
        work: work.to_path_buf(),
        http_port,
        service_account,
        issued_at: Cell::new(now),
    };
    ca.reconfigure(|config| {
        config["authority"]["policy"] = authority_policy();
        for provisioner in config["authority"]["provisioners"].as_array_mut().unwrap() {
            provisioner["policy"] = provisioner_policy();
            if provisioner["type"] == "ACME" {
                provisioner["insecureHttp01Port"] = http_port.into();
                provisioner["insecureValidationAddress"] = "127.0.0.1".into();
            }
        }
    });
    ca
}

/// What asking for a certificate came to.
#[derive(Debug)]
enum Outcome {
    Issued,
    /// The client's whole report of the refusal.
    Refused(String),
    /// The client is not installed here (and peers are not required).
    Skipped,
}

impl From<Result<String, String>> for Outcome {
    fn from(result: Result<String, String>) -> Self {
        match result {
            Ok(_) => Outcome::Issued,
            Err(text) => Outcome::Refused(text),
        }
    }
}

/// One kind of credential asking for certificates.
struct Row {
    credential: &'static str,
    /// Asks for a certificate naming `name`, in its own directory `dir`.
    ask: fn(&Ca, &Path, &str) -> Outcome,
    /// A name both levels allow.
    allowed: &'static str,
    /// A name the authority denies, and the refusal.
    denied: (&'static str, String),
    /// A name the provisioner's allow list lacks, and the refusal.
    unlisted: (&'static str, String),
    /// How the client reports the kind of refusal: the HTTP status, the ACME problem.
    refused_as: &'static str,
}

impl Row {
    /// A host name through `provisioner`: `x.evil.test` denied by the authority's `*.evil.test`,
    /// `web.other.test` missing from the provisioner's DNS allow list. `kind` is how the refusal
    /// names it: `dns name` in an X.509 certificate, `principal` in an SSH host certificate.
    fn host(
        credential: &'static str,
        ask: fn(&Ca, &Path, &str) -> Outcome,
        kind: &str,
        provisioner: &str,
    ) -> Row {
        Row {
            credential,
            ask,
            allowed: "web.example.test",
            denied: (
                "x.evil.test",
                format!(
                    r#"{kind} "x.evil.test" is denied by the authority policy's deny rule "*.evil.test""#
                ),
            ),
            unlisted: (
                "web.other.test",
                format!(
                    r#"{kind} "web.other.test" is not allowed by provisioner "{provisioner}"'s allow list: no dns rule matches it"#
                ),
            ),
            refused_as: "the CA answered 403: ",
        }
    }

    /// An SSH user principal through `provisioner`: `root` denied by the authority, `bob`
    /// missing from the provisioner's principal allow list.
    fn user(
        credential: &'static str,
        ask: fn(&Ca, &Path, &str) -> Outcome,
        provisioner: &str,
    ) -> Row {
        Row {
            credential,
            ask,
            allowed: "alice",
            denied: (
                "root",
                r#"principal "root" is denied by the authority policy's deny rule "root""#.into(),
            ),
            unlisted: (
                "bob",
                format!(
                    r#"principal "bob" is not allowed by provisioner "{provisioner}"'s allow list: no principal rule matches it"#
                ),
            ),
            refused_as: "the CA answered 403: ",
        }
    }

    /// The refusal reported otherwise than as the CA's 403.
    fn refused_as(self, refused_as: &'static str) -> Row {
        Row { refused_as, ..self }
    }
}

/// `mayfly ca certificate` with the JWK provisioner's key: a token for `/sign`.
fn jwk_sign(ca: &Ca, dir: &Path, name: &str) -> Outcome {
    let crt = dir.join("x.crt").display().to_string();
    let key = dir.join("x.key").display().to_string();
    ca.mayfly(&[
        "ca",
        "certificate",
        name,
        &crt,
        &key,
        "--provisioner",
        "admin",
        "--provisioner-password-file",
        &ca.pw(),
    ])
    .into()
}

/// `mayfly ca certificate --x5c-cert`: an X5C token signed by a device certificate's key.
fn x5c_sign(ca: &Ca, dir: &Path, name: &str) -> Outcome {
    let crt = dir.join("x.crt").display().to_string();
    let key = dir.join("x.key").display().to_string();
    ca.mayfly(&[
        "ca",
        "certificate",
        name,
        &crt,
        &key,
        "--x5c-cert",
        "device-chain.crt",
        "--x5c-key",
        "device.key",
    ])
    .into()
}

/// A Kubernetes service-account token, which grants the names the request asks for; each one
/// another (they buy one certificate each).
fn k8ssa_token(ca: &Ca) -> String {
    ca.issued_at.set(ca.issued_at.get() - 1);
    let claims = json!({
        "iss": "kubernetes/serviceaccount",
        "sub": "system:serviceaccount:prod:web",
        "kubernetes.io/serviceaccount/namespace": "prod",
        "kubernetes.io/serviceaccount/service-account.name": "web",
        "iat": ca.issued_at.get(),
    });
    jws::sign_compact(&ca.service_account, "sa-key", claims.to_string().as_bytes()).unwrap()
}

/// `mayfly ca certificate --token` with a service-account token.
fn k8ssa_sign(ca: &Ca, dir: &Path, name: &str) -> Outcome {
    let token = k8ssa_token(ca);
    let crt = dir.join("x.crt").display().to_string();
    let key = dir.join("x.key").display().to_string();
    ca.mayfly(&["ca", "certificate", name, &crt, &key, "--token", &token])
        .into()
}

/// lego (Debian's) against the ACME provisioner, http-01 answered on loopback.
fn acme_order(ca: &Ca, dir: &Path, name: &str) -> Outcome {
    let Some(lego) = mayfly_testkit::program("name policy (ACME row)", "lego", "lego") else {
        return Outcome::Skipped;
    };
    let directory = format!(
        "https://{}/acme/acme/directory",
        ca_address(ca).expect("the CA's address")
    );
    let out = Command::new(lego)
        .env("LEGO_CA_CERTIFICATES", ca.home.join("certs/root_ca.crt"))
        .args(["--server", &directory, "--email", "ops@example.test"])
        .args(["--accept-tos", "--path", dir.to_str().unwrap()])
        .args(["--domains", name, "--http", "--http.port"])
        .arg(format!("127.0.0.1:{}", ca.http_port))
        .arg("run")
        .current_dir(dir)
        .output()
        .expect("running lego");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        assert!(
            dir.join(format!("certificates/{name}.crt")).exists(),
            "{text}"
        );
        Outcome::Issued
    } else {
        Outcome::Refused(text)
    }
}

fn ca_address(ca: &Ca) -> Option<String> {
    let config: Value = serde_json::from_str(&std::fs::read_to_string(&ca.config).ok()?).ok()?;
    config["address"].as_str().map(str::to_string)
}

/// `mayfly ssh certificate --host` with the JWK provisioner's key: a token for `/ssh/sign`.
fn ssh_host(ca: &Ca, dir: &Path, name: &str) -> Outcome {
    let key = dir.join("host_key").display().to_string();
    ca.mayfly(&[
        "ssh",
        "certificate",
        "--host",
        name,
        &key,
        "--no-password",
        "--insecure",
        "--provisioner-password-file",
        &ca.pw(),
    ])
    .into()
}

/// `mayfly ssh certificate` (a user certificate) with the JWK provisioner's key.
fn ssh_user(ca: &Ca, dir: &Path, name: &str) -> Outcome {
    let key = dir.join("id_ecdsa").display().to_string();
    ca.mayfly(&[
        "ssh",
        "certificate",
        name,
        &key,
        "--no-password",
        "--insecure",
        "--provisioner-password-file",
        &ca.pw(),
    ])
    .into()
}

/// `mayfly ssh certificate --token` (a user certificate) with a token from `mayfly ca token
/// --ssh --x5c-cert`, signed by a device certificate's key.
fn x5c_ssh_user(ca: &Ca, dir: &Path, name: &str) -> Outcome {
    let token = match ca.mayfly(&[
        "ca",
        "token",
        name,
        "--ssh",
        "--x5c-cert",
        "device-chain.crt",
        "--x5c-key",
        "device.key",
    ]) {
        Ok(token) => token,
        Err(text) => return Outcome::Refused(text),
    };
    let key = dir.join("id_ecdsa").display().to_string();
    ca.mayfly(&[
        "ssh",
        "certificate",
        name,
        &key,
        "--token",
        token.trim(),
        "--no-password",
        "--insecure",
    ])
    .into()
}

/// `mayfly ssh certificate --host --token` with a service-account token.
fn k8ssa_ssh_host(ca: &Ca, dir: &Path, name: &str) -> Outcome {
    let key = dir.join("host_key").display().to_string();
    ca.mayfly(&[
        "ssh",
        "certificate",
        "--host",
        name,
        &key,
        "--token",
        &k8ssa_token(ca),
        "--no-password",
        "--insecure",
    ])
    .into()
}

#[test]
fn every_credential_meets_the_same_policy() {
    let rows = [
        Row::host("JWK token, /sign", jwk_sign, "dns name", "admin"),
        Row::host("X5C token, /sign", x5c_sign, "dns name", "devices"),
        Row::host("K8sSA token, /sign", k8ssa_sign, "dns name", "kube"),
        Row::host(
            "ACME order (lego), new-order",
            acme_order,
            "dns name",
            "acme",
        )
        // At new-order: no authorization or challenge is made for the name.
        .refused_as("/new-order :: urn:ietf:params:acme:error:rejectedIdentifier"),
        Row::host(
            "JWK token, /ssh/sign, host certificate",
            ssh_host,
            "principal",
            "admin",
        ),
        Row::user("JWK token, /ssh/sign, user certificate", ssh_user, "admin"),
        Row::user(
            "X5C token, /ssh/sign, user certificate",
            x5c_ssh_user,
            "devices",
        ),
        Row::host(
            "K8sSA token, /ssh/sign, host certificate",
            k8ssa_ssh_host,
            "principal",
            "kube",
        ),
    ];
    let tmp = tempfile::tempdir().unwrap();
    let ca = start(tmp.path());
    for (index, row) in rows.iter().enumerate() {
        let ask = |what: &str, name: &str| {
            let dir = tmp.path().join(format!("row{index}-{what}"));
            std::fs::create_dir_all(&dir).unwrap();
            (row.ask)(&ca, &dir, name)
        };
        match ask("allowed", row.allowed) {
            Outcome::Issued => {}
            Outcome::Skipped => {
                eprintln!("{}: skipped, its client is missing", row.credential);
                continue;
            }
            Outcome::Refused(text) => panic!("{}: {} refused: {text}", row.credential, row.allowed),
        }
        for (what, (name, message)) in [("denied", &row.denied), ("unlisted", &row.unlisted)] {
            match ask(what, name) {
                Outcome::Refused(text) => {
                    assert!(
                        text.contains(message),
                        "{}: {name}: {text:?} should say {message:?}",
                        row.credential
                    );
                    assert!(
                        text.contains(row.refused_as),
                        "{}: {name}: {text:?} should say {:?}",
                        row.credential,
                        row.refused_as
                    );
                }
                other => panic!("{}: {name}: {other:?}", row.credential),
            }
        }
    }
}

#[test]
fn renewals_meet_the_policy_in_force_when_they_are_asked() {
    let tmp = tempfile::tempdir().unwrap();
    let mut ca = start(tmp.path());
    let dir = tmp.path();
    assert!(matches!(
        jwk_sign(&ca, dir, "db.example.test"),
        Outcome::Issued
    ));
    assert!(matches!(
        ssh_host(&ca, dir, "db.example.test"),
        Outcome::Issued
    ));
    let renew_x509 = |ca: &Ca, out: &str| {
        ca.mayfly(&[
            "ca",
            "renew",
            dir.join("x.crt").to_str().unwrap(),
            dir.join("x.key").to_str().unwrap(),
            "--out",
            dir.join(out).to_str().unwrap(),
        ])
    };
    let renew_ssh = |ca: &Ca, out: &str| {
        ca.mayfly(&[
            "ssh",
            "renew",
            dir.join("host_key-cert.pub").to_str().unwrap(),
            dir.join("host_key").to_str().unwrap(),
            "--out",
            dir.join(out).to_str().unwrap(),
        ])
    };
    // Renewed while the policy allows the name.
    renew_x509(&ca, "renewed.crt").unwrap();
    renew_ssh(&ca, "renewed-cert.pub").unwrap();

    // The authority now denies the host: neither certificate is renewed.
    ca.reconfigure(|config| {
        config["authority"]["policy"]["x509"]["deny"]["dns"] = json!(["db.example.test"]);
        config["authority"]["policy"]["ssh"]["host"]["deny"]["dns"] = json!(["db.example.test"]);
    });
    let error = renew_x509(&ca, "refused.crt").unwrap_err();
    assert!(
        error.contains(
            r#"the CA answered 403: dns name "db.example.test" is denied by the authority policy's deny rule "db.example.test""#
        ),
        "{error}"
    );
    let error = renew_ssh(&ca, "refused-cert.pub").unwrap_err();
    assert!(
        error.contains(
            r#"the CA answered 403: principal "db.example.test" is denied by the authority policy's deny rule "db.example.test""#
        ),
        "{error}"
    );
}

#[test]
fn a_ca_json_with_a_bad_rule_does_not_start_and_names_the_rule() {
    let tmp = tempfile::tempdir().unwrap();
    let mut ca = start(tmp.path());
    ca.server = None;
    let cases = [
        (
            json!({"x509": {"deny": {"dns": [".evil.test"]}}}),
            r#"authority.policy.x509.deny.dns[0] ".evil.test": write a rule for the names under evil.test as *.evil.test"#,
        ),
        (
            json!({"x509": {"alow": {"dns": ["*.example.test"]}}}),
            "unknown field `alow`",
        ),
        (
            json!({"ssh": {"user": {"allow": {"ip": ["10.0.0.0/8"]}}}}),
            "authority.policy.ssh.user.allow.ip: user certificates name users: use email or principal",
        ),
    ];
    for (policy, message) in cases {
        let mut config: Value =
            serde_json::from_str(&std::fs::read_to_string(&ca.config).unwrap()).unwrap();
        config["authority"]["policy"] = policy;
        std::fs::write(&ca.config, config.to_string()).unwrap();
        let out = Command::new(support::server_bin())
            .args([ca.config.to_str().unwrap(), "--password-file", &ca.pw()])
            .env("MAYFLY_PATH", &ca.home)
            .current_dir(&ca.work)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{stderr}");
        assert!(
            stderr.contains(message),
            "{stderr:?} should say {message:?}"
        );
        assert!(stderr.contains("ca.json"), "{stderr}");
    }
}
