//! Several real `mayfly-ca` processes on one PostgreSQL or MariaDB database behave as one CA:
//! a token is accepted once across instances (raced 200 times, for `/sign` and for a `/renew`
//! bearer token), a revocation through one is seen by a renewal through another, and behind a
//! real HAProxy the CA keeps issuing and renewing (mutual TLS through the TCP passthrough) while
//! an instance is SIGKILLed and restarted, with every certificate a client received stored once.
//!
//! The databases come from `MAYFLY_TEST_POSTGRES_URL` / `MAYFLY_TEST_MYSQL_URL` (each test
//! creates and drops its own); without them the tests print that they skipped.
//!
//! Addresses: the instances listen on ports of their own and HAProxy on yet another, which is
//! the one in the CA URL clients use and so in their tokens' audience: as step-ca does, an
//! instance compares audiences without the port.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use mayfly_authority::token::NewToken;
use mayfly_client::Client;
use mayfly_pki::jose::{jwe, jwk::Jwk};
use mayfly_pki::{KeyAlgorithm, PrivateKey, San};
use mayfly_proto::{RevokeRequest, SignRequest, SignResponse};
use mayfly_store::Dialect;
use mayfly_store::testing::TestDatabase;
use support::{Server, mayfly_ok, require_tool};

const CA_PASSWORD: &str = "ha ca password";
const PROVISIONER_PASSWORD: &str = "ha provisioner password";
const PROVISIONER: &str = "ops";

/// A CA set up for several instances on one database; the instances are started on demand.
struct Cluster {
    _tmp: tempfile::TempDir,
    home: PathBuf,
    work: PathBuf,
    /// The port clients use: HAProxy's, in the URL of every token.
    public_port: u16,
    /// Instance i listens on `instance_ports[i - 1]`.
    instance_ports: Vec<u16>,
    /// `ca-<i>.json`: ca.json with instance i's listen address.
    configs: Vec<PathBuf>,
    root_der: Vec<u8>,
    fingerprint: String,
    provisioner_key: PrivateKey,
    kid: String,
    database: TestDatabase,
}

impl Cluster {
    fn new(dialect: Dialect, test: &str, instances: usize) -> Option<Cluster> {
        let database = TestDatabase::create_blocking(dialect, test)?;
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("mayfly");
        let work = tmp.path().to_path_buf();
        support::write_secret(work.join("pw.txt"), format!("{CA_PASSWORD}\n"));
        support::write_secret(work.join("prov.txt"), format!("{PROVISIONER_PASSWORD}\n"));
        let public_port = support::free_port();
        let instance_ports: Vec<u16> = (0..instances).map(|_| support::free_port()).collect();
        let args = [
            "ca".to_owned(),
            "init".to_owned(),
            "--name".to_owned(),
            "HA".to_owned(),
            "--address".to_owned(),
            format!("127.0.0.1:{public_port}"),
            "--dns".to_owned(),
            "127.0.0.1".to_owned(),
            "--provisioner".to_owned(),
            PROVISIONER.to_owned(),
            "--password-file".to_owned(),
            "pw.txt".to_owned(),
            "--provisioner-password-file".to_owned(),
            "prov.txt".to_owned(),
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        mayfly_ok(&home, &work, &args);

        let config_path = home.join("config/ca.json");
        let mut config: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&config_path).unwrap()).unwrap();
        config["authority"]["provisioners"][0]["admin"] = serde_json::json!(true);
        // Instances share this host, so they cannot share the plain-HTTP port `ca init` chose;
        // these tests are about issuance, and serve revocation over HTTPS.
        config.as_object_mut().unwrap().remove("insecureAddress");
        config["db"] = serde_json::json!({
            "type": if dialect == Dialect::Postgres { "postgresql" } else { "mysql" },
            "dataSource": database.url(),
        });
        std::fs::write(&config_path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
        let configs = (1..=instances)
            .map(|i| {
                let mut config = config.clone();
                config["address"] =
                    serde_json::json!(format!("127.0.0.1:{}", instance_ports[i - 1]));
                let path = home.join(format!("config/ca-{i}.json"));
                support::write_secret(&path, serde_json::to_vec_pretty(&config).unwrap());
                path
            })
            .collect();

        let root_pem = std::fs::read(home.join("certs/root_ca.crt")).unwrap();
        let root_der = mayfly_pki::cert::certificates_from_pem(&root_pem).unwrap()[0].clone();
        let fingerprint = mayfly_pki::cert::fingerprint_sha256(&root_der);
        let provisioner = &config["authority"]["provisioners"][0];
        let kid = provisioner["key"]["kid"].as_str().unwrap().to_owned();
        let private = jwe::decrypt_pbes2(
            provisioner["encryptedKey"].as_str().unwrap(),
            PROVISIONER_PASSWORD.as_bytes(),
        )
        .unwrap();
        let provisioner_key = Jwk::from_json(&private).unwrap().to_private_key().unwrap();
        Some(Cluster {
            _tmp: tmp,
            home,
            work,
            public_port,
            instance_ports,
            configs,
            root_der,
            fingerprint,
            provisioner_key,
            kid,
            database,
        })
    }

    /// Starts instance `i` (1-based) and waits until it serves.
    fn start(&self, i: usize) -> Server {
        let pw = self.work.join("pw.txt");
        Server::start(
            &[
                self.configs[i - 1].to_str().unwrap(),
                "--password-file",
                pw.to_str().unwrap(),
            ],
            &self.home,
            None,
            "serving on",
        )
    }

    /// The URL clients use: HAProxy's address.
    fn public_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.public_port)
    }

    /// Instance i's own address; tokens still name [`Cluster::public_url`].
    fn instance_url(&self, i: usize) -> String {
        format!("https://127.0.0.1:{}", self.instance_ports[i - 1])
    }

    fn client(&self, url: &str) -> Client {
        Client::new(url, std::slice::from_ref(&self.root_der)).unwrap()
    }

    /// A fresh one-time token for `subject`, minted as `mayfly ca token` does.
    fn token(&self, subject: &str) -> String {
        self.token_for("sign", subject)
    }

    fn token_for(&self, endpoint: &str, subject: &str) -> String {
        let now = time::OffsetDateTime::now_utc();
        let url = self.public_url();
        NewToken {
            issuer: PROVISIONER,
            ca_url: &url,
            endpoint,
            subject,
            sans: &[],
            root_fingerprint: &self.fingerprint,
            not_before: now,
            expires_at: now + time::Duration::minutes(5),
        }
        .sign(&self.provisioner_key, &self.kid)
        .unwrap()
    }

    /// The serials of the certificates for `subject` stored in the database, read with the
    /// database's own command-line client. (Each instance also stores its TLS certificate.)
    fn stored_serials(&self, subject: &str) -> Vec<String> {
        self.stored_serials_where(&format!("subject = '{subject}'"))
    }

    fn stored_serials_where(&self, condition: &str) -> Vec<String> {
        let query = format!("SELECT serial FROM certificates WHERE {condition}");
        let query = query.as_str();
        let url = self.database.url();
        let output = match self.database.dialect() {
            Dialect::Postgres => Command::new("psql")
                .args([url, "-tA", "-c", query])
                .output(),
            _ => {
                let rest = url.trim_start_matches("mysql://");
                let (user_host, name) = rest.split_once('/').unwrap();
                let (user, host_port) = user_host.split_once('@').unwrap();
                let (host, port) = host_port.split_once(':').unwrap_or((host_port, "3306"));
                Command::new("mysql")
                    .args([
                        "-u", user, "-h", host, "-P", port, "-N", "-B", name, "-e", query,
                    ])
                    .output()
            }
        }
        .expect("running the database's client");
        assert!(output.status.success(), "{output:?}");
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(str::to_owned)
            .filter(|line| !line.is_empty())
            .collect()
    }
}

fn sign_request(csr: &str, ott: String) -> SignRequest {
    SignRequest {
        csr: csr.to_owned(),
        ott,
        not_before: None,
        not_after: None,
        template_data: None,
    }
}

fn csr_for(key: &PrivateKey, name: &str) -> String {
    mayfly_pki::csr::create_pem(key, name, &[San::parse(name).unwrap()]).unwrap()
}

fn serial_of_pem(pem: &str) -> String {
    let der = mayfly_pki::cert::certificates_from_pem(pem.as_bytes()).unwrap();
    let (_, parsed) = x509_parser::parse_x509_certificate(&der[0]).unwrap();
    parsed.tbs_certificate.serial.to_str_radix(10)
}

/// The certificates of a `/sign` or `/renew` answer's chain, DER.
fn chain_of(issued: &SignResponse) -> Vec<Vec<u8>> {
    issued
        .cert_chain
        .iter()
        .flat_map(|pem| mayfly_pki::cert::certificates_from_pem(pem.as_bytes()).unwrap())
        .collect()
}

/// One raced round: exactly one instance issued (shown by its serial), and the other refused
/// the same token as a replay.
fn one_won_the_other_replayed(
    round: usize,
    on_a: &Result<SignResponse, mayfly_client::Error>,
    on_b: &Result<SignResponse, mayfly_client::Error>,
) {
    let refused = match (on_a, on_b) {
        (Ok(_), Err(refused)) | (Err(refused), Ok(_)) => refused,
        _ => panic!(
            "round {round}: expected exactly one success: {:?} / {:?}",
            on_a.as_ref().map(|issued| serial_of_pem(&issued.crt)),
            on_b.as_ref().map(|issued| serial_of_pem(&issued.crt)),
        ),
    };
    assert_eq!(refused.status(), Some(401), "round {round}: {refused}");
    assert!(
        refused.to_string().contains("already used"),
        "round {round}: {refused}"
    );
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The same token sent to two instances at the same moment, 200 times: exactly one succeeds
/// each time, and the other is refused as a replay.
fn token_raced_on_two_instances(dialect: Dialect, test: &str) {
    let Some(cluster) = Cluster::new(dialect, test, 2) else {
        return;
    };
    let _first = cluster.start(1);
    let _second = cluster.start(2);
    let key = PrivateKey::generate(KeyAlgorithm::EcP256).unwrap();
    let csr = csr_for(&key, "race.internal");
    let a = cluster.client(&cluster.instance_url(1));
    let b = cluster.client(&cluster.instance_url(2));
    runtime().block_on(async {
        for round in 0..200 {
            let request = sign_request(&csr, cluster.token("race.internal"));
            let (on_a, on_b) = tokio::join!(a.sign(&request), b.sign(&request));
            one_won_the_other_replayed(round, &on_a, &on_b);
        }
    });
    let serials = cluster.stored_serials("race.internal");
    assert_eq!(serials.len(), 200, "one certificate per round");
}

/// One `/renew` bearer token sent to two instances at the same moment, 200 times: exactly one
/// renews each time, and the other is refused as a replay. The rounds alternate the token's two
/// forms: with a `jti` (as `mayfly ca renew --mtls=false` writes it) and without (step's, single
/// use by its hash).
fn renewal_token_raced_on_two_instances(dialect: Dialect, test: &str) {
    let Some(cluster) = Cluster::new(dialect, test, 2) else {
        return;
    };
    let _first = cluster.start(1);
    let _second = cluster.start(2);
    let key = PrivateKey::generate(KeyAlgorithm::EcP256).unwrap();
    let csr = csr_for(&key, "renew-race.internal");
    let a = cluster.client(&cluster.instance_url(1));
    let b = cluster.client(&cluster.instance_url(2));
    runtime().block_on(async {
        let issued = a
            .sign(&sign_request(&csr, cluster.token("renew-race.internal")))
            .await
            .unwrap();
        let chain = chain_of(&issued);
        for round in 0..200 {
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            let mut claims = serde_json::json!({
                "aud": format!("{}/1.0/renew", cluster.public_url()),
                "iss": mayfly_authority::token::RENEWAL_TOKEN_ISSUER,
                "sub": "renew-race.internal",
                "nbf": now, "iat": now, "exp": now + 300,
            });
            if round % 2 == 0 {
                claims["jti"] = mayfly_pki::random::random_hex(16).unwrap().into();
            }
            let token = mayfly_pki::jose::jws::sign_compact_chain(
                &key,
                mayfly_authority::token::RENEWAL_CHAIN_HEADER,
                &chain,
                claims.to_string().as_bytes(),
            )
            .unwrap();
            let (on_a, on_b) = tokio::join!(a.renew_with_token(&token), b.renew_with_token(&token));
            one_won_the_other_replayed(round, &on_a, &on_b);
        }
    });
    let serials = cluster.stored_serials("renew-race.internal");
    assert_eq!(
        serials.len(),
        1 + 200,
        "the first certificate and one renewal per round"
    );
}

/// Revoked through instance 1, a renewal through instance 2 is refused at once; before, the
/// same renewal there worked.
fn revocation_seen_by_the_other_instance(dialect: Dialect, test: &str) {
    let Some(cluster) = Cluster::new(dialect, test, 2) else {
        return;
    };
    let _first = cluster.start(1);
    let _second = cluster.start(2);
    let key = PrivateKey::generate(KeyAlgorithm::EcP256).unwrap();
    let csr = csr_for(&key, "svc.internal");
    runtime().block_on(async {
        let issued = cluster
            .client(&cluster.instance_url(1))
            .sign(&sign_request(&csr, cluster.token("svc.internal")))
            .await
            .unwrap();
        let chain = chain_of(&issued);
        let with_identity = |i: usize| {
            Client::with_identity(
                &cluster.instance_url(i),
                std::slice::from_ref(&cluster.root_der),
                &chain,
                key.pkcs8_der(),
            )
            .unwrap()
        };
        let renewed = with_identity(2)
            .renew()
            .await
            .expect("renewal before revocation");
        assert_ne!(serial_of_pem(&renewed.crt), serial_of_pem(&issued.crt));

        let serial = serial_of_pem(&issued.crt);
        with_identity(1)
            .revoke(&RevokeRequest {
                serial: serial.clone(),
                ott: None,
                reason_code: 1,
                reason: "key compromised".into(),
                passive: true,
            })
            .await
            .expect("revoking over mutual TLS on instance 1");
        let refused = with_identity(2)
            .renew()
            .await
            .expect_err("instance 2 renewed a certificate revoked on instance 1");
        assert_eq!(refused.status(), Some(401), "{refused}");
    });
}

/// A running HAProxy with the shipped configuration, pointed at the cluster; killed on drop.
struct Haproxy {
    child: Child,
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// contrib/haproxy/haproxy.cfg with this cluster's addresses and root: only the bind line, the
/// server lines and the ca-file path change.
fn haproxy_config(cluster: &Cluster, instances: usize) -> String {
    let shipped = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../contrib/haproxy/haproxy.cfg"),
    )
    .unwrap();
    let root = cluster.home.join("certs/root_ca.crt");
    let mut out = String::new();
    for line in shipped.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("bind ") {
            out.push_str(&format!("    bind 127.0.0.1:{}\n", cluster.public_port));
        } else if trimmed.starts_with("server ") {
            if trimmed.starts_with("server ca1 ") {
                for i in 1..=instances {
                    out.push_str(&format!(
                        "    server ca{i} 127.0.0.1:{}\n",
                        cluster.instance_ports[i - 1]
                    ));
                }
            }
        } else {
            out.push_str(&line.replace("/etc/mayfly/certs/root_ca.crt", root.to_str().unwrap()));
            out.push('\n');
        }
    }
    out
}

fn start_haproxy(cluster: &Cluster, instances: usize) -> Haproxy {
    let path = cluster.work.join("haproxy.cfg");
    std::fs::write(&path, haproxy_config(cluster, instances)).unwrap();
    let check = Command::new("haproxy")
        .args(["-c", "-f", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(check.status.success(), "haproxy -c: {check:?}");
    let child = Command::new("haproxy")
        .args(["-db", "-f", path.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let haproxy = Haproxy { child };
    // Up once a request through it succeeds (the health checks must have passed).
    let client = cluster.client(&cluster.public_url());
    let rt = runtime();
    for _ in 0..100 {
        if rt.block_on(client.health()).is_ok() {
            return haproxy;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("HAProxy did not forward to the instances");
}

/// Three instances behind HAProxy: 2,000 certificate requests at concurrency 32 while instance
/// 2 is SIGKILLed and restarted; a request that fails is retried (with a new token, as a client
/// would), every request ends with a certificate, every certificate received is stored, and no
/// serial repeats. Then renewal over mutual TLS through HAProxy, before and after killing one
/// instance for good.
fn issuance_survives_a_killed_instance(dialect: Dialect, test: &str) {
    const REQUESTS: usize = 2000;
    const CONCURRENCY: usize = 32;
    // HAProxy is a peer a fresh clone's machine may lack: the test says it skipped (a failure
    // under MAYFLY_REQUIRE_PEERS, as in CI).
    if mayfly_testkit::program(test, "haproxy", "haproxy").is_none() {
        return;
    }
    let Some(cluster) = Cluster::new(dialect, test, 3) else {
        return;
    };
    let cluster = Arc::new(cluster);
    let mut instances = vec![cluster.start(1), cluster.start(2), cluster.start(3)];
    let _haproxy = start_haproxy(&cluster, 3);
    let key = PrivateKey::generate(KeyAlgorithm::EcP256).unwrap();
    let csr = Arc::new(csr_for(&key, "load.internal"));
    let client = cluster.client(&cluster.public_url());
    let rt = runtime();

    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let retries = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (client, cluster, csr) = (client.clone(), Arc::clone(&cluster), Arc::clone(&csr));
            let (next, done, retries) =
                (Arc::clone(&next), Arc::clone(&done), Arc::clone(&retries));
            rt.spawn(async move {
                let mut received = Vec::new();
                while next.fetch_add(1, Ordering::Relaxed) < REQUESTS {
                    let mut attempt = 0;
                    loop {
                        attempt += 1;
                        let request = sign_request(&csr, cluster.token("load.internal"));
                        match client.sign(&request).await {
                            Ok(response) => {
                                received.push(serial_of_pem(&response.crt));
                                break;
                            }
                            Err(error) => {
                                // A clean failure: a transport error, or a 5xx the instance
                                // answered while dying; never a refusal of a good request.
                                assert!(
                                    error.status().is_none_or(|status| status >= 500),
                                    "a request was refused: {error}"
                                );
                                assert!(attempt < 20, "still failing after retries: {error}");
                                retries.fetch_add(1, Ordering::Relaxed);
                                tokio::time::sleep(Duration::from_millis(100)).await;
                            }
                        }
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
                received
            })
        })
        .collect();

    // Kill instance 2 a quarter of the way in, restart it a little later.
    while done.load(Ordering::Relaxed) < REQUESTS / 4 {
        std::thread::sleep(Duration::from_millis(20));
    }
    instances.remove(1).stop();
    let killed_at = done.load(Ordering::Relaxed);
    // Minted while the instance is down: accepted by it once it is back, so clients holding a
    // token do not fail across a restart.
    let minted_before = sign_request(&csr, cluster.token("load.internal"));
    std::thread::sleep(Duration::from_secs(2));
    instances.insert(1, cluster.start(2));
    rt.block_on(
        cluster
            .client(&cluster.instance_url(2))
            .sign(&minted_before),
    )
    .expect("a token minted before the restart");
    let mut received: Vec<String> = Vec::new();
    for task in tasks {
        received.extend(rt.block_on(task).unwrap());
    }
    assert!(killed_at < REQUESTS, "the kill happened after the run");
    assert_eq!(received.len(), REQUESTS);
    let mut unique = received.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), REQUESTS, "a serial was handed out twice");
    let stored: std::collections::HashSet<String> = cluster
        .stored_serials("load.internal")
        .into_iter()
        .collect();
    let missing: Vec<&String> = received.iter().filter(|s| !stored.contains(*s)).collect();
    assert!(missing.is_empty(), "received but not stored: {missing:?}");
    eprintln!(
        "{test}: {REQUESTS} certificates, {} retries, {} stored",
        retries.load(Ordering::Relaxed),
        stored.len()
    );

    // Renewal over mutual TLS through HAProxy (TCP passthrough keeps the client certificate).
    let issued = rt
        .block_on(client.sign(&sign_request(&csr, cluster.token("load.internal"))))
        .unwrap();
    let chain = chain_of(&issued);
    // A client renewing with that certificate, on a connection of its own.
    let renewing_client = || {
        Client::with_identity(
            &cluster.public_url(),
            std::slice::from_ref(&cluster.root_der),
            &chain,
            key.pkcs8_der(),
        )
        .unwrap()
    };
    let renewing = renewing_client();
    rt.block_on(renewing.renew())
        .expect("renewal through HAProxy");
    drop(renewing);
    instances.remove(0).stop();
    // Until HAProxy's checks mark it down, a connection may still be sent to the dead one and
    // be redispatched; every renewal must succeed, on the survivors. Each round connects anew:
    // a kept-alive connection to the killed instance dies with it, and a request that fails on
    // it cannot be told from one the instance answered too late, so no client resends it.
    for round in 0..20 {
        rt.block_on(renewing_client().renew())
            .unwrap_or_else(|e| panic!("renewal {round} after a kill: {e}"));
        let issued = rt.block_on(client.sign(&sign_request(&csr, cluster.token("load.internal"))));
        issued.unwrap_or_else(|e| panic!("issuance {round} after a kill: {e}"));
    }

    // Revocation by token through HAProxy: its audience names HAProxy's port, not the
    // instance's; the token is spent once on whichever instance takes it, and the revoked
    // certificate renews nowhere after.
    let serial = serial_of_pem(&issued.crt);
    let revoke = RevokeRequest {
        serial: serial.clone(),
        ott: Some(cluster.token_for("revoke", &serial)),
        reason_code: 1,
        reason: "key compromised".into(),
        passive: true,
    };
    rt.block_on(client.revoke(&revoke))
        .expect("revocation by token through HAProxy");
    // Spent, or the certificate already revoked: refused either way, whichever is checked first.
    let replayed = rt.block_on(client.revoke(&revoke)).unwrap_err();
    assert!(
        replayed.status().is_some_and(|s| (400..500).contains(&s))
            && replayed.to_string().contains("already"),
        "{replayed}"
    );
    for _ in 0..4 {
        let refused = rt.block_on(renewing_client().renew()).unwrap_err();
        assert!(refused.to_string().contains("revoked"), "{refused}");
    }
}

#[test]
fn postgres_token_raced_on_two_instances() {
    token_raced_on_two_instances(Dialect::Postgres, "postgres_token_raced_on_two_instances");
}

#[test]
fn mysql_token_raced_on_two_instances() {
    token_raced_on_two_instances(Dialect::MySql, "mysql_token_raced_on_two_instances");
}

#[test]
fn postgres_renewal_token_raced_on_two_instances() {
    renewal_token_raced_on_two_instances(
        Dialect::Postgres,
        "postgres_renewal_token_raced_on_two_instances",
    );
}

#[test]
fn mysql_renewal_token_raced_on_two_instances() {
    renewal_token_raced_on_two_instances(
        Dialect::MySql,
        "mysql_renewal_token_raced_on_two_instances",
    );
}

#[test]
fn postgres_revocation_seen_by_the_other_instance() {
    revocation_seen_by_the_other_instance(
        Dialect::Postgres,
        "postgres_revocation_seen_by_the_other_instance",
    );
}

#[test]
fn mysql_revocation_seen_by_the_other_instance() {
    revocation_seen_by_the_other_instance(
        Dialect::MySql,
        "mysql_revocation_seen_by_the_other_instance",
    );
}

#[test]
fn postgres_issuance_through_haproxy_survives_a_killed_instance() {
    issuance_survives_a_killed_instance(
        Dialect::Postgres,
        "postgres_issuance_through_haproxy_survives_a_killed_instance",
    );
}

#[test]
fn mysql_issuance_through_haproxy_survives_a_killed_instance() {
    issuance_survives_a_killed_instance(
        Dialect::MySql,
        "mysql_issuance_through_haproxy_survives_a_killed_instance",
    );
}

/// `/health` answers 200 while the database answers and 503 once it is gone, so a load
/// balancer stops sending requests to the instance.
fn health_follows_the_database(dialect: Dialect, test: &str) {
    let Some(cluster) = Cluster::new(dialect, test, 1) else {
        return;
    };
    let _instance = cluster.start(1);
    let client = cluster.client(&cluster.instance_url(1));
    let rt = runtime();
    let healthy = rt
        .block_on(client.health())
        .expect("health with the database up");
    assert_eq!(healthy.status, "ok");
    cluster.database.destroy();
    let down = rt
        .block_on(client.health())
        .expect_err("health with the database gone");
    assert_eq!(down.status(), Some(503), "{down}");
    assert!(
        down.to_string().contains("database is unreachable"),
        "{down}"
    );
}

#[test]
fn postgres_health_follows_the_database() {
    health_follows_the_database(Dialect::Postgres, "postgres_health_follows_the_database");
}

#[test]
fn mysql_health_follows_the_database() {
    health_follows_the_database(Dialect::MySql, "mysql_health_follows_the_database");
}

/// Runs `mayfly-ca ARGS`; (success, stdout, stderr).
fn mayfly_ca(home: &Path, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(support::server_bin())
        .args(args)
        .env("MAYFLY_PATH", home)
        .env("MAYFLY_LOG", "error")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `db check` reports pending migrations and a newer schema with a non-zero exit, `db migrate`
/// applies them once, and the server refuses a schema newer than it knows.
fn db_migrate_and_check(dialect: Dialect, test: &str) {
    let Some(cluster) = Cluster::new(dialect, test, 1) else {
        return;
    };
    let config = cluster.configs[0].to_str().unwrap().to_owned();
    let known = mayfly_store::schema_version();
    let (ok, _, err) = mayfly_ca(&cluster.home, &["db", "check", &config]);
    assert!(!ok, "check on an empty database should fail");
    assert!(
        err.contains("schema version 0") && err.contains("run `mayfly-ca db migrate`"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    let (ok, out, err) = mayfly_ca(&cluster.home, &["db", "migrate", &config]);
    assert!(ok, "{err}");
    assert!(
        out.contains(&format!("migrated to schema version {known}")),
        "{out}"
    );
    let (ok, out, _) = mayfly_ca(&cluster.home, &["db", "migrate", &config]);
    assert!(ok && out.contains("nothing to do"), "{out}");
    let (ok, out, err) = mayfly_ca(&cluster.home, &["db", "check", &config]);
    assert!(ok, "{err}");
    assert!(out.contains("is up to date"), "{out}");
    // The password of the URL never reaches the output.
    assert!(!out.contains(CA_PASSWORD));

    let raw = match dialect {
        Dialect::Postgres => Command::new("psql")
            .args([
                cluster.database.url(),
                "-c",
                "INSERT INTO schema_migrations (version, applied_at) VALUES (999, 0)",
            ])
            .output(),
        _ => {
            let name = cluster
                .database
                .url()
                .rsplit('/')
                .next()
                .unwrap()
                .to_owned();
            Command::new("mysql")
                .args([
                    "-u",
                    "root",
                    "-h",
                    "127.0.0.1",
                    &name,
                    "-e",
                    "INSERT INTO schema_migrations (version, applied_at) VALUES (999, 0)",
                ])
                .output()
        }
    }
    .unwrap();
    assert!(raw.status.success(), "{raw:?}");
    let (ok, _, err) = mayfly_ca(&cluster.home, &["db", "check", &config]);
    assert!(!ok && err.contains("schema version 999, newer"), "{err}");
    let (ok, _, err) = mayfly_ca(&cluster.home, &["db", "migrate", &config]);
    assert!(!ok && err.contains("upgrade mayfly"), "{err}");
    let pw = cluster.work.join("pw.txt");
    let (ok, _, err) = mayfly_ca(
        &cluster.home,
        &[&config, "--password-file", pw.to_str().unwrap()],
    );
    assert!(!ok, "the server started on a newer schema");
    assert!(
        err.contains("schema version 999") && err.contains("upgrade mayfly"),
        "{err}"
    );
}

#[test]
fn postgres_db_migrate_and_check() {
    db_migrate_and_check(Dialect::Postgres, "postgres_db_migrate_and_check");
}

#[test]
fn mysql_db_migrate_and_check() {
    db_migrate_and_check(Dialect::MySql, "mysql_db_migrate_and_check");
}

/// A bad `db` block is one line naming the file and what is wrong, and nothing is created.
#[test]
fn bad_db_blocks_are_refused_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("mayfly");
    let work = tmp.path();
    support::write_secret(work.join("pw.txt"), "pw\n");
    mayfly_ok(
        &home,
        work,
        &[
            "ca",
            "init",
            "--name",
            "Bad",
            "--dns",
            "127.0.0.1",
            "--address",
            "127.0.0.1:0",
            "--provisioner",
            "ops",
            "--password-file",
            "pw.txt",
        ],
    );
    let config_path = home.join("config/ca.json");
    let original: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&config_path).unwrap()).unwrap();
    for (db, expected) in [
        (
            serde_json::json!({"type": "oracle", "dataSource": "x"}),
            "db.type \"oracle\" is not supported",
        ),
        (
            serde_json::json!({"type": "postgresql", "dataSource": "mysql://root:hunter2@h/db"}),
            "is not a postgresql URL",
        ),
        (
            serde_json::json!({"type": "mysql", "dataSource": "/var/lib/mayfly.db"}),
            "db.dataSource is neither a mysql:// URL nor a MySQL DSN",
        ),
        (
            serde_json::json!({"type": "postgresql", "dataSource": "postgres://nobody:hunter2@127.0.0.1:1/db"}),
            "cannot open database postgres://nobody:***@127.0.0.1:1/db",
        ),
    ] {
        let mut config = original.clone();
        config["db"] = db.clone();
        std::fs::write(&config_path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
        for args in [
            vec!["db", "check", config_path.to_str().unwrap()],
            vec!["db", "migrate", config_path.to_str().unwrap()],
        ] {
            let (ok, out, err) = mayfly_ca(&home, &args);
            assert!(!ok, "{db}: {args:?} succeeded");
            assert!(out.is_empty(), "{out}");
            assert!(err.contains(expected), "{db}: {err}");
            assert!(
                err.contains("ca.json: db"),
                "{db}: the file is not named: {err}"
            );
            assert!(!err.contains("hunter2"), "a password leaked: {err}");
            assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        }
    }
}

/// `db check` and `db migrate` on the default SQLite store of `mayfly ca init`.
#[test]
fn db_commands_on_sqlite() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("mayfly");
    let work = tmp.path();
    support::write_secret(work.join("pw.txt"), "pw\n");
    mayfly_ok(
        &home,
        work,
        &[
            "ca",
            "init",
            "--name",
            "Lite",
            "--dns",
            "127.0.0.1",
            "--address",
            "127.0.0.1:0",
            "--provisioner",
            "ops",
            "--password-file",
            "pw.txt",
        ],
    );
    let known = mayfly_store::schema_version();
    let (ok, out, err) = mayfly_ca(&home, &["db", "migrate"]);
    assert!(ok, "{err}");
    assert!(out.contains(&format!("schema version {known}")), "{out}");
    let (ok, out, err) = mayfly_ca(&home, &["db", "check"]);
    assert!(ok, "{err}");
    assert!(out.contains("is up to date"), "{out}");
}

/// SIGTERM: the listener closes at once, a request in flight is still answered, then the
/// process exits cleanly.
#[test]
fn sigterm_finishes_requests_in_flight() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("client");
    let (mut server, dev) = Server::dev(tmp.path(), &home);
    let port: u16 = dev
        .url
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let script = r#"
import socket, ssl, sys
host, port, cafile = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ctx = ssl.create_default_context(cafile=cafile)
ctx.check_hostname = False
s = ctx.wrap_socket(socket.create_connection((host, port)), server_hostname=host)
body = b'{"csr": "not a csr", "ott": "not a token"}'
head = b"POST /1.0/sign HTTP/1.1\r\nHost: ca\r\nContent-Type: application/json\r\n"
s.sendall(head + b"Content-Length: %d\r\n\r\n" % len(body) + body[:5])
print("sent", flush=True)
sys.stdin.readline()
s.sendall(body[5:])
data = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
print(data.split(b"\r\n")[0].decode(), flush=True)
"#;
    let root = dev.ca_dir.join("certs/root_ca.crt");
    let mut python = Command::new("python3")
        .args([
            "-c",
            script,
            "127.0.0.1",
            &port.to_string(),
            root.to_str().unwrap(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(python.stdout.take().unwrap()));
    assert_eq!(lines.next().unwrap().unwrap(), "sent");
    server.signal("TERM");
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        server.wait_exit(Duration::ZERO).is_none(),
        "the server exited with a request in flight"
    );
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the server still accepts connections after SIGTERM"
    );
    std::io::Write::write_all(python.stdin.as_mut().unwrap(), b"\n").unwrap();
    let status_line = lines.next().unwrap().unwrap();
    // The bad token is refused: an answer, not a reset connection.
    assert!(status_line.starts_with("HTTP/1.1 401"), "{status_line}");
    let status = server
        .wait_exit(Duration::from_secs(10))
        .expect("the server did not exit after its last request");
    assert!(status.success(), "{status:?}");
    python.wait().unwrap();
}

/// The admin API lists exactly what is stored, filtered by status, in table and JSON, and
/// exports it; an admin provisioner's token or a certificate issued through it is accepted,
/// another provisioner's token or certificate is refused.
#[test]
fn admin_list_and_export() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("mayfly");
    let work = tmp.path();
    support::write_secret(work.join("pw.txt"), "ca pw\n");
    support::write_secret(work.join("prov.txt"), "prov pw\n");
    let address = format!("127.0.0.1:{}", support::free_port());
    mayfly_ok(
        &home,
        work,
        &[
            "ca",
            "init",
            "--name",
            "Admin",
            "--dns",
            "127.0.0.1",
            "--address",
            &address,
            "--provisioner",
            "ops",
            "--password-file",
            "pw.txt",
            "--provisioner-password-file",
            "prov.txt",
        ],
    );
    mayfly_ok(
        &home,
        work,
        &[
            "ca",
            "provisioner",
            "add",
            "dev",
            "--type",
            "JWK",
            "--create",
            "--password-file",
            "prov.txt",
        ],
    );
    let config_path = home.join("config/ca.json");
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&config_path).unwrap()).unwrap();
    config["authority"]["provisioners"][0]["admin"] = serde_json::json!(true);
    std::fs::write(&config_path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
    let _server = Server::start(
        &[
            config_path.to_str().unwrap(),
            "--password-file",
            work.join("pw.txt").to_str().unwrap(),
        ],
        &home,
        None,
        "serving on",
    );
    for (name, provisioner) in [("s1", "ops"), ("s2", "ops"), ("s3", "ops"), ("dev", "dev")] {
        mayfly_ok(
            &home,
            work,
            &[
                "ca",
                "certificate",
                &format!("{name}.internal"),
                &format!("{name}.crt"),
                &format!("{name}.key"),
                "--provisioner",
                provisioner,
                "--provisioner-password-file",
                "prov.txt",
            ],
        );
    }
    mayfly_ok(
        &home,
        work,
        &["ca", "revoke", "--cert", "s1.crt", "--key", "s1.key"],
    );
    let serial_of = |crt: &str| {
        let pem = std::fs::read_to_string(work.join(crt)).unwrap();
        serial_of_pem(&pem)
    };
    let as_ops = [
        "--provisioner",
        "ops",
        "--provisioner-password-file",
        "prov.txt",
    ];
    let list = |extra: &[&str]| -> Vec<serde_json::Value> {
        let mut args = vec!["ca", "certificates", "list", "--format", "json"];
        args.extend_from_slice(extra);
        serde_json::from_str(&mayfly_ok(&home, work, &args)).unwrap()
    };
    let serials = |entries: &[serde_json::Value]| -> Vec<String> {
        let mut serials: Vec<String> = entries
            .iter()
            .map(|e| e["serial"].as_str().unwrap().to_owned())
            .collect();
        serials.sort();
        serials
    };

    // Exactly what the database holds (the CA's own TLS certificate included).
    let all = list(&as_ops);
    let (ok, stored) = support::run(
        "sqlite3",
        &[
            home.join("db/mayfly.db").to_str().unwrap(),
            "SELECT serial FROM certificates ORDER BY serial",
        ],
        work,
    );
    assert!(ok, "{stored}");
    let mut stored: Vec<String> = stored.lines().map(str::to_owned).collect();
    stored.sort();
    assert_eq!(serials(&all), stored);
    let s1 = all
        .iter()
        .find(|e| e["serial"] == serial_of("s1.crt"))
        .unwrap();
    assert_eq!(s1["status"], "revoked");
    assert_eq!(s1["provisioner"], "ops");
    let listed_der =
        mayfly_pki::cert::certificates_from_pem(s1["certificate"].as_str().unwrap().as_bytes())
            .unwrap();
    let file_der =
        mayfly_pki::cert::certificates_from_pem(&std::fs::read(work.join("s1.crt")).unwrap())
            .unwrap();
    assert_eq!(
        listed_der,
        file_der[..1],
        "the listed PEM is the issued leaf"
    );
    let mut revoked_args = as_ops.to_vec();
    revoked_args.extend(["--status", "revoked"]);
    assert_eq!(serials(&list(&revoked_args)), vec![serial_of("s1.crt")]);
    let mut active_args = as_ops.to_vec();
    active_args.extend(["--status", "active"]);
    let active = serials(&list(&active_args));
    assert_eq!(active.len(), stored.len() - 1);
    assert!(!active.contains(&serial_of("s1.crt")));
    let mut expired_args = as_ops.to_vec();
    expired_args.extend(["--status", "expired"]);
    assert!(list(&expired_args).is_empty());

    let mut table_args = vec!["ca", "certificates", "list"];
    table_args.extend_from_slice(&as_ops);
    let table = mayfly_ok(&home, work, &table_args);
    assert!(table.starts_with("SERIAL"), "{table}");
    assert_eq!(table.lines().count(), stored.len() + 1, "{table}");
    assert!(table.contains("s2.internal"), "{table}");

    // A certificate issued through the admin provisioner is an admin credential too.
    let by_certificate = list(&["--cert", "s2.crt", "--key", "s2.key"]);
    assert_eq!(serials(&by_certificate), stored);

    // Refused: another provisioner's token or certificate, a revoked admin certificate, junk.
    for (args, expected) in [
        (
            vec![
                "--provisioner",
                "dev",
                "--provisioner-password-file",
                "prov.txt",
            ],
            "may not use the admin API",
        ),
        (
            vec!["--cert", "dev.crt", "--key", "dev.key"],
            "may not use the admin API",
        ),
        (
            vec!["--cert", "s1.crt", "--key", "s1.key"],
            "may not use the admin API",
        ),
        (vec!["--token", "not-a-token"], "token"),
    ] {
        let mut full = vec!["ca", "certificates", "list"];
        full.extend_from_slice(&args);
        support::mayfly_err(&home, work, &full, expected);
    }

    // Export: every certificate with its PEM, to a file written once.
    let mut export = vec!["ca", "certificates", "export", "--out", "all.json"];
    export.extend_from_slice(&as_ops);
    mayfly_ok(&home, work, &export);
    let exported: serde_json::Value =
        serde_json::from_slice(&std::fs::read(work.join("all.json")).unwrap()).unwrap();
    let exported = exported["certificates"].as_array().unwrap().clone();
    assert_eq!(serials(&exported), stored);
    assert!(exported.iter().all(|e| {
        e["certificate"]
            .as_str()
            .unwrap()
            .contains("BEGIN CERTIFICATE")
    }));
    support::mayfly_err(&home, work, &export, "already exists");
}

/// Through two instances on one database, the admin API pages through exactly the stored
/// certificates (both instances' issuances), and refuses bad paging parameters.
fn admin_pages_across_instances(dialect: Dialect, test: &str) {
    let Some(cluster) = Cluster::new(dialect, test, 2) else {
        return;
    };
    let _first = cluster.start(1);
    let _second = cluster.start(2);
    let key = PrivateKey::generate(KeyAlgorithm::EcP256).unwrap();
    let csr = csr_for(&key, "page.internal");
    let rt = runtime();
    for i in 0..7 {
        let client = cluster.client(&cluster.instance_url(1 + i % 2));
        rt.block_on(client.sign(&sign_request(&csr, cluster.token("page.internal"))))
            .unwrap();
    }
    let admin = cluster.token_for("admin", "admin");
    let client = cluster.client(&cluster.instance_url(2));
    let mut listed = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = rt
            .block_on(client.certificates_page(None, after.as_deref(), 3, Some(&admin)))
            .unwrap();
        assert!(page.certificates.len() <= 3);
        pages += 1;
        listed.extend(page.certificates.into_iter().map(|c| c.serial));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let issued = cluster.stored_serials("page.internal");
    assert_eq!(issued.len(), 7);
    // All rows: the instances' own TLS and OCSP certificates are stored too.
    let mut stored = cluster.stored_serials_where("1 = 1");
    assert_eq!(listed.len(), stored.len(), "{listed:?}");
    assert!(issued.iter().all(|s| listed.contains(s)));
    assert!(
        pages >= 3,
        "{pages} pages of at most 3 for {} certificates",
        listed.len()
    );
    let mut sorted = listed.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, listed, "pages out of order or repeating");
    stored.retain(|s| !listed.contains(s));
    assert!(stored.is_empty(), "stored but not listed: {stored:?}");

    for (status, after, limit, expected) in [
        (
            Some("bogus"),
            None,
            10,
            "is not one of active, revoked, expired",
        ),
        (None, Some("12ab"), 10, "is not a decimal serial number"),
        (None, None, 0, "out of range"),
        (None, None, 1001, "out of range"),
    ] {
        let error = rt
            .block_on(client.certificates_page(status, after, limit, Some(&admin)))
            .expect_err("a bad listing request was accepted");
        assert_eq!(error.status(), Some(400), "{error}");
        assert!(error.to_string().contains(expected), "{error}");
    }
    let error = rt
        .block_on(client.certificates_page(None, None, 10, None))
        .expect_err("a listing without credentials was accepted");
    assert_eq!(error.status(), Some(401), "{error}");
    // A sign token is not an admin token: the audience differs.
    let error = rt
        .block_on(client.certificates_page(None, None, 10, Some(&cluster.token("x"))))
        .expect_err("a sign token listed certificates");
    assert_eq!(error.status(), Some(401), "{error}");
}

#[test]
fn postgres_admin_pages_across_instances() {
    admin_pages_across_instances(Dialect::Postgres, "postgres_admin_pages_across_instances");
}

#[test]
fn mysql_admin_pages_across_instances() {
    admin_pages_across_instances(Dialect::MySql, "mysql_admin_pages_across_instances");
}

/// A bad `db.retention` keeps the server from starting, with one line naming the file.
#[test]
fn bad_retention_settings_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("mayfly");
    let work = tmp.path();
    support::write_secret(work.join("pw.txt"), "pw\n");
    mayfly_ok(
        &home,
        work,
        &[
            "ca",
            "init",
            "--name",
            "Ret",
            "--dns",
            "127.0.0.1",
            "--address",
            "127.0.0.1:0",
            "--provisioner",
            "ops",
            "--password-file",
            "pw.txt",
        ],
    );
    let config_path = home.join("config/ca.json");
    let original: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&config_path).unwrap()).unwrap();
    let pw = work.join("pw.txt");
    for (retention, expected) in [
        (
            serde_json::json!({"interval": "0s"}),
            "db.retention.interval must be at least 1s",
        ),
        (
            serde_json::json!({"keepExpired": "forever"}),
            "\"forever\" is not a duration",
        ),
        (
            serde_json::json!({"keepExpire": "24h"}),
            "unknown field `keepExpire`",
        ),
    ] {
        let mut config = original.clone();
        config["db"]["retention"] = retention.clone();
        std::fs::write(&config_path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
        let (ok, _, err) = mayfly_ca(
            &home,
            &[
                config_path.to_str().unwrap(),
                "--password-file",
                pw.to_str().unwrap(),
            ],
        );
        assert!(!ok, "{retention}: the server started");
        assert!(err.contains(expected), "{retention}: {err}");
        assert!(err.contains("ca.json"), "{retention}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    }
}

fn crl_number_of(work: &Path, der: &[u8]) -> u64 {
    let file = work.join("number.crl");
    std::fs::write(&file, der).unwrap();
    let (ok, text) = support::run(
        "openssl",
        &[
            "crl",
            "-inform",
            "DER",
            "-in",
            file.to_str().unwrap(),
            "-noout",
            "-crlnumber",
        ],
        work,
    );
    assert!(ok, "{text}");
    u64::from_str_radix(text.trim().trim_start_matches("crlNumber=0x"), 16)
        .unwrap_or_else(|_| panic!("no CRL number in {text:?}"))
}

/// A relying party fetching CRLs from one instance, then another, never gets a lower CRL
/// number than it already saw, also right after revocations on either instance; and the
/// revocation is on the CRL every instance serves.
fn crl_numbers_never_go_backwards_across_instances(dialect: Dialect, test: &str) {
    require_tool("openssl", "openssl");
    let Some(cluster) = Cluster::new(dialect, test, 2) else {
        return;
    };
    let _first = cluster.start(1);
    let _second = cluster.start(2);
    let rt = runtime();
    let clients = [
        cluster.client(&cluster.instance_url(1)),
        cluster.client(&cluster.instance_url(2)),
    ];
    let key = PrivateKey::generate(KeyAlgorithm::EcP256).unwrap();
    let csr = csr_for(&key, "crl.internal");
    let mut seen = 0;
    let mut revoked = Vec::new();
    for round in 0..6 {
        // Revoke one certificate through instance 1 or 2, by turns.
        let issued = rt
            .block_on(clients[0].sign(&sign_request(&csr, cluster.token("crl.internal"))))
            .unwrap();
        let serial = serial_of_pem(&issued.crt);
        let chain = chain_of(&issued);
        let revoking = Client::with_identity(
            &cluster.instance_url(1 + round % 2),
            std::slice::from_ref(&cluster.root_der),
            &chain,
            key.pkcs8_der(),
        )
        .unwrap();
        rt.block_on(revoking.revoke(&RevokeRequest {
            serial: serial.clone(),
            ott: None,
            reason_code: 1,
            reason: String::new(),
            passive: true,
        }))
        .unwrap();
        revoked.push(serial);
        for fetch in 0..8 {
            let der = rt.block_on(clients[fetch % 2].crl(false)).unwrap();
            let number = crl_number_of(&cluster.work, &der);
            assert!(
                number >= seen,
                "round {round}, fetch {fetch} from instance {}: CRL {number} after CRL {seen}",
                1 + fetch % 2
            );
            seen = number;
            std::thread::sleep(Duration::from_millis(150));
        }
    }
    // Both instances now list every revocation.
    std::thread::sleep(Duration::from_secs(2));
    for (i, client) in clients.iter().enumerate() {
        let der = rt.block_on(client.crl(false)).unwrap();
        let file = cluster.work.join(format!("final-{i}.crl"));
        std::fs::write(&file, &der).unwrap();
        let (ok, text) = support::run(
            "openssl",
            &[
                "crl",
                "-inform",
                "DER",
                "-in",
                file.to_str().unwrap(),
                "-noout",
                "-text",
            ],
            &cluster.work,
        );
        assert!(ok, "{text}");
        for serial in &revoked {
            let hex = format!("{:X}", serial.parse::<u128>().unwrap());
            assert!(
                text.to_uppercase().contains(&hex),
                "instance {}'s CRL misses {serial} ({hex}): {text}",
                i + 1
            );
        }
    }
}

#[test]
fn postgres_crl_numbers_never_go_backwards_across_instances() {
    crl_numbers_never_go_backwards_across_instances(
        Dialect::Postgres,
        "postgres_crl_numbers_never_go_backwards_across_instances",
    );
}

#[test]
fn mysql_crl_numbers_never_go_backwards_across_instances() {
    crl_numbers_never_go_backwards_across_instances(
        Dialect::MySql,
        "mysql_crl_numbers_never_go_backwards_across_instances",
    );
}
