//! OIDC provisioners against a real, certified OpenID provider: node-oidc-provider, started by
//! the test over HTTPS with a certificate from the CA under test (trusted by `mayfly-ca` and
//! `mayfly` through `SSL_CERT_FILE`, as step-ca trusts its provider), and a scripted login in
//! place of a person at a browser (`tests/oidc/idp.mjs`; curl is the browser).
//!
//! Needs Node.js and npm (Debian's nodejs and npm; `.ci/run` installs them and the provider's
//! pinned package); without them the tests say they skipped, unless MAYFLY_REQUIRE_PEERS is set.

mod support;

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use support::{Server, ServerOptions, client_bin, free_port, free_port_outside_ephemeral};

const SSHD: &str = "/usr/sbin/sshd";

/// The provider's package directory (package.json, its lock file and idp.mjs).
fn idp_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oidc")
}

/// Node.js with the provider's packages installed, or `None` after saying the test skipped.
/// `.ci/run` installs the packages; elsewhere the first test installs them (`npm ci`, from
/// the lock file), one test at a time.
fn provider_ready(test: &str) -> Option<()> {
    static INSTALL: Mutex<()> = Mutex::new(());
    mayfly_testkit::program(test, "node", "nodejs")?;
    let _one = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    if idp_dir().join("node_modules/oidc-provider").is_dir() {
        return Some(());
    }
    mayfly_testkit::program(test, "npm", "npm")?;
    let out = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(idp_dir())
        .output()
        .expect("running npm");
    if !out.status.success() {
        return mayfly_testkit::missing(
            test,
            &format!(
                "the oidc-provider package (npm ci in {} failed: {})",
                idp_dir().display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        );
    }
    Some(())
}

/// Kills a child process on drop, by its own handle.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A CA with a JWK provisioner `admin` and an OIDC provisioner `idp` (SSH allowed, bob's SSH
/// logins denied by its name policy), and the provider.
struct World {
    home: PathBuf,
    work: PathBuf,
    password_file: PathBuf,
    ca_port: u16,
    idp_port: u16,
    ca: Option<Server>,
    idp: Option<Reaped>,
}

impl World {
    fn new(tmp: &Path) -> World {
        let mut world = World {
            home: tmp.join("home"),
            work: tmp.join("work"),
            password_file: tmp.join("password"),
            ca_port: free_port(),
            idp_port: free_port_outside_ephemeral(),
            ca: None,
            idp: None,
        };
        std::fs::create_dir_all(&world.work).unwrap();
        support::write_secret(&world.password_file, "correct horse battery staple\n");
        let address = format!("127.0.0.1:{}", world.ca_port);
        world.ok(&[
            "ca",
            "init",
            "--ssh",
            "--name",
            "OIDC Test",
            "--dns",
            "127.0.0.1",
            "--address",
            &address,
            "--provisioner",
            "admin",
            "--password-file",
            world.pw(),
        ]);
        // The provider's TLS certificate comes from this CA, whose root is then all that
        // `mayfly-ca` and `mayfly` trust it by.
        world.start_ca(false);
        world.ok(&[
            "ca",
            "certificate",
            "127.0.0.1",
            "idp.crt",
            "idp.key",
            "--provisioner",
            "admin",
            "--provisioner-password-file",
            world.pw(),
        ]);
        let endpoint = format!("https://127.0.0.1:{}", world.idp_port);
        let out = world.ok(&[
            "ca",
            "provisioner",
            "add",
            "idp",
            "--type",
            "OIDC",
            "--client-id",
            "mayfly",
            "--client-secret",
            "mayfly-secret",
            "--configuration-endpoint",
            &endpoint,
            "--admin=admin@example.com",
            "--domain",
            "example.com",
            "--ssh",
        ]);
        assert!(out.contains("✔ Added provisioner idp (OIDC)"), "{out}");
        // The provisioner's name policy: bob may not log in over SSH (his principals, from
        // his address, are "bob" and "bob@example.com"). A deny rule only: all else passes.
        let config = world.home.join("config/ca.json");
        let mut ca_json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
        let idp = ca_json["authority"]["provisioners"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|p| p["name"] == "idp")
            .unwrap();
        idp["policy"] = serde_json::json!({"ssh": {"user": {"deny": {"principal": ["bob"]}}}});
        std::fs::write(&config, ca_json.to_string()).unwrap();
        world.set_login("alice", 0);
        world.start_idp("k1");
        world
    }

    fn pw(&self) -> &str {
        self.password_file.to_str().unwrap()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.work.join(name)
    }

    fn root(&self) -> PathBuf {
        self.home.join("certs/root_ca.crt")
    }

    /// (Re)starts `mayfly-ca`, trusting the provider through SSL_CERT_FILE or not at all.
    fn start_ca(&mut self, trusts_idp: bool) {
        if let Some(ca) = self.ca.take() {
            ca.stop();
        }
        let config = self.home.join("config/ca.json");
        let mut options = ServerOptions::default();
        if trusts_idp {
            options
                .env
                .push(("SSL_CERT_FILE", self.root().display().to_string()));
        } else {
            // The system's store, which knows nothing of this CA's root.
            options.env.push(("SSL_CERT_DIR", "/nonexistent".into()));
            options
                .env
                .push(("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt".into()));
        }
        self.ca = Some(Server::start_with(
            &[config.to_str().unwrap(), "--password-file", self.pw()],
            &self.home,
            &options,
            "serving on",
        ));
    }

    /// (Re)starts the provider, signing with a new key named `kid`.
    fn start_idp(&mut self, kid: &str) {
        self.idp = None;
        let chain = std::fs::read_to_string(self.path("idp.crt")).unwrap();
        assert!(chain.matches("BEGIN CERTIFICATE").count() == 2, "{chain}");
        let config = serde_json::json!({
            "port": self.idp_port,
            "cert": self.path("idp.crt"),
            "key": self.path("idp.key"),
            "kid": kid,
            "control": self.path("idp-control.json"),
            "clients": [
                {"client_id": "mayfly", "client_secret": "mayfly-secret"},
                {"client_id": "other", "client_secret": "other-secret"},
            ],
            "accounts": {
                "alice": {"email": "alice@example.com", "email_verified": true},
                "root": {"email": "admin@example.com", "email_verified": true},
                "mallory": {"email": "mallory@example.com", "email_verified": false},
                "eve": {"email": "eve@elsewhere.org", "email_verified": true},
                "bob": {"email": "bob@example.com", "email_verified": true},
            },
        });
        std::fs::write(self.path("idp.json"), config.to_string()).unwrap();
        let log = std::fs::File::create(self.path("idp.log")).unwrap();
        let mut child = Command::new("node")
            .arg(idp_dir().join("idp.mjs"))
            .arg(self.path("idp.json"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("starting node");
        let stdout = child.stdout.take().unwrap();
        let reaped = Reaped(child);
        let mut stdout = BufReader::new(stdout);
        let mut first = String::new();
        stdout.read_line(&mut first).unwrap();
        // The provider prints notices as it goes: its standard output must stay open.
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        assert!(
            first.contains("listening"),
            "the provider did not start: {first}{}",
            std::fs::read_to_string(self.path("idp.log")).unwrap_or_default()
        );
        wait_for_port(self.idp_port, "the provider");
        self.idp = Some(reaped);
    }

    /// Who the provider's next login is, and how far its clock is off.
    fn set_login(&self, account: &str, clock_offset_seconds: i64) {
        std::fs::write(
            self.path("idp-control.json"),
            serde_json::json!({"account": account, "clockOffsetSeconds": clock_offset_seconds})
                .to_string(),
        )
        .unwrap();
    }

    /// The browser: curl, trusting the CA's root, following the provider's redirects (and
    /// keeping its cookies) until the redirect to `mayfly`'s loopback listener.
    fn browser(&self) -> PathBuf {
        let path = self.path("browser.sh");
        if !path.exists() {
            let script = format!(
                "#!/bin/sh\njar=$(mktemp)\n\
                 curl -sS --cacert {root} -c \"$jar\" -b \"$jar\" -L --max-redirs 20 -o /dev/null \"$1\" 2>>{log}\n\
                 status=$?\nrm -f \"$jar\"\nexit $status\n",
                root = self.root().display(),
                log = self.path("browser.log").display()
            );
            std::fs::write(&path, script).unwrap();
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .unwrap();
        }
        path
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(client_bin());
        command
            .args(args)
            .env("MAYFLY_PATH", &self.home)
            .env("SSL_CERT_FILE", self.root())
            .env("BROWSER", self.browser())
            .env_remove("MAYFLY_CA_URL")
            .env_remove("MAYFLY_ROOT")
            .env_remove("MAYFLY_OPEN_BROWSER")
            .env_remove("SSH_AUTH_SOCK")
            .current_dir(&self.work)
            .stdin(Stdio::null());
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("running mayfly")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "mayfly {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `mayfly ARGS`, which must fail with one error line containing `expected`.
    fn refused(&self, args: &[&str], expected: &str) -> String {
        let out = self.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "mayfly {args:?} should fail");
        let error = stderr
            .lines()
            .find(|l| l.starts_with("mayfly: error: "))
            .unwrap_or_else(|| panic!("no error line: {stderr}"));
        assert!(
            error.contains(expected),
            "{args:?}: {stderr}\nbrowser: {}\nprovider: {}",
            std::fs::read_to_string(self.path("browser.log")).unwrap_or_default(),
            std::fs::read_to_string(self.path("idp.log")).unwrap_or_default()
        );
        error.to_string()
    }

    /// POSTs `body` to the CA's `path` as any HTTP client would (curl, trusting the CA's
    /// root): the status and the JSON answer (`null` if it is not JSON).
    fn post(&self, path: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
        use std::io::Write as _;
        let mut child = Command::new("curl")
            .args(["-sS", "--max-time", "30", "--cacert"])
            .arg(self.root())
            .args([
                "-H",
                "content-type: application/json",
                "--data-binary",
                "@-",
            ])
            .args(["-w", "\n%{http_code}"])
            .arg(format!("https://127.0.0.1:{}{path}", self.ca_port))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running curl");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(body.to_string().as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let (answer, status) = text.rsplit_once('\n').unwrap_or(("", &text));
        let status = status.trim().parse().unwrap_or_else(|_| {
            panic!(
                "curl {path}: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (status, serde_json::from_str(answer).unwrap_or_default())
    }

    /// An ID token for the current login, from `mayfly ca token`.
    fn id_token(&self) -> String {
        self.ok(&["ca", "token", "ignored", "--provisioner", "idp"])
            .trim()
            .to_string()
    }

    fn inspect(&self, crt: &str) -> serde_json::Value {
        let json = self.ok(&["certificate", "inspect", crt, "--format", "json"]);
        serde_json::from_str(&json).unwrap()
    }
}

fn claims_of(token: &str) -> serde_json::Value {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[test]
fn oidc_logins_get_certificates_and_every_bad_id_token_is_refused() {
    let test = "oidc_logins_get_certificates_and_every_bad_id_token_is_refused";
    if provider_ready(test).is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut world = World::new(tmp.path());

    // The CA does not trust the provider's certificate: it cannot fetch its keys, and says so.
    // 503, not a 4xx: nothing is wrong with the client's credential (it may be a good token);
    // the CA cannot reach a service its decision needs, which is the CA's problem and may pass,
    // as when its database is down (also 503). A 401 would tell the client to throw away a
    // token that is fine; 502 is for a gateway that got a bad answer, and here there is none.
    // step-ca has no such answer: it fetches the provider's discovery document and keys when
    // it starts and refuses to start without them; mayfly-ca starts, serves its other
    // provisioners, and fetches them when a token first needs them.
    world.start_ca(false);
    world.refused(
        &[
            "ca",
            "certificate",
            "alice",
            "a.crt",
            "a.key",
            "--provisioner",
            "idp",
        ],
        "503: the OpenID provider of provisioner \"idp\" cannot be reached now",
    );
    world.start_ca(true);

    // Discovery, the code flow through the browser, and a user's certificate: exactly their
    // identity, whatever the request named.
    let out = world.run(&[
        "ca",
        "certificate",
        "www.other.example",
        "alice.crt",
        "alice.key",
        "--san",
        "www.other.example",
        "--provisioner",
        "idp",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("Your default web browser has been opened to visit:"),
        "{stderr}"
    );
    assert!(
        stderr.contains("✔ Provisioner: idp (OIDC) [client: mayfly]"),
        "{stderr}"
    );
    let alice = world.inspect("alice.crt");
    assert_eq!(alice["subject"], "CN=alice", "{alice}");
    let sans = alice["sans"].to_string();
    assert!(sans.contains("alice@example.com"), "{sans}");
    let uri = format!("https://127.0.0.1:{}#alice", world.idp_port);
    assert!(sans.contains(&uri), "{sans}");
    assert!(!sans.contains("other.example"), "{sans}");
    assert_eq!(alice["provisioner"]["type"], "OIDC");
    assert_eq!(alice["provisioner"]["name"], "idp");
    assert_eq!(alice["provisioner"]["id"], "mayfly");
    // openssl agrees that the chain is the CA's.
    let (ok, text) = support::run(
        "openssl",
        &[
            "verify",
            "-CAfile",
            world.root().to_str().unwrap(),
            "-untrusted",
            "alice.crt",
            "alice.crt",
        ],
        &world.work,
    );
    assert!(ok, "{text}");
    // Its holder renews it with its key, as any certificate: same identity, same provisioner.
    world.ok(&[
        "ca",
        "renew",
        "alice.crt",
        "alice.key",
        "--out",
        "alice-renewed.crt",
    ]);
    let renewed = world.inspect("alice-renewed.crt");
    assert_eq!(renewed["sans"], alice["sans"]);
    assert_eq!(renewed["provisioner"], alice["provisioner"]);
    assert_ne!(renewed["serial_number"], alice["serial_number"]);

    // Replay: the nonce was burnt with the first certificate.
    let token = world.id_token();
    assert_eq!(claims_of(&token)["aud"], "mayfly");
    world.ok(&[
        "ca",
        "certificate",
        "alice",
        "r1.crt",
        "r1.key",
        "--token",
        &token,
    ]);
    world.refused(
        &[
            "ca",
            "certificate",
            "alice",
            "r2.crt",
            "r2.key",
            "--token",
            &token,
        ],
        "401: token was already used",
    );

    // No browser: the URL is printed, and any browser that reaches this machine completes it.
    // An administrator gets the names the request asks for.
    world.set_login("root", 0);
    let mut child = world
        .command(&[
            "ca",
            "certificate",
            "admin-box.example.com",
            "admin.crt",
            "admin.key",
            "--provisioner",
            "idp",
        ])
        .env("BROWSER", "/nonexistent/browser")
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut said = String::new();
    let url = loop {
        let mut line = String::new();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "no URL: {said}");
        said.push_str(&line);
        if line.starts_with("https://") {
            break line.trim().to_string();
        }
    };
    assert!(
        said.contains("Cannot open a web browser on this system."),
        "{said}"
    );
    assert!(url.contains("code_challenge_method=S256"), "{url}");
    let browsed = Command::new(world.browser()).arg(&url).status().unwrap();
    assert!(browsed.success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    assert!(child.wait().unwrap().success(), "{said}{rest}");
    let admin = world.inspect("admin.crt");
    assert_eq!(admin["subject"], "CN=admin-box.example.com", "{admin}");
    assert!(
        admin["sans"].to_string().contains("admin-box.example.com"),
        "{admin}"
    );
    assert!(
        !admin["sans"].to_string().contains("admin@example.com"),
        "{admin}"
    );

    // An address the provider has not verified, and one outside the provisioner's domains.
    world.set_login("mallory", 0);
    world.refused(
        &[
            "ca",
            "certificate",
            "m",
            "m.crt",
            "m.key",
            "--provisioner",
            "idp",
        ],
        "401: the token's e-mail address \"mallory@example.com\" is not verified",
    );
    world.set_login("eve", 0);
    world.refused(
        &[
            "ca",
            "certificate",
            "e",
            "e.crt",
            "e.key",
            "--provisioner",
            "idp",
        ],
        "is not in the provisioner's domains",
    );

    // Expired: the provider's clock is two hours behind, so its token expired an hour ago.
    world.set_login("alice", -7200);
    let expired = world.id_token();
    world.set_login("alice", 0);
    world.refused(
        &[
            "ca",
            "certificate",
            "alice",
            "x.crt",
            "x.key",
            "--token",
            &expired,
        ],
        "401: token expired at",
    );

    // A token for another client of the same provider: the wrong audience.
    let other = world.ok(&[
        "oauth",
        "--provider",
        &format!("https://127.0.0.1:{}", world.idp_port),
        "--client-id",
        "other",
        "--client-secret",
        "other-secret",
        "--oidc",
        "--bare",
    ]);
    assert_eq!(claims_of(other.trim())["aud"], "other");
    world.refused(
        &[
            "ca",
            "certificate",
            "alice",
            "o.crt",
            "o.key",
            "--token",
            other.trim(),
        ],
        "401: token audience [\"other\"] is not this CA: expected one of [\"mayfly\"]",
    );

    // The provider rotates its key: the CA fetches the new one when a token names it, and a
    // token signed with the retired key is refused.
    let retired = world.id_token();
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(
            &base64::Engine::decode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                retired.split('.').next().unwrap()
            )
            .unwrap()
        )
        .unwrap()["kid"],
        "k1"
    );
    world.start_idp("k2");
    world.ok(&[
        "ca",
        "certificate",
        "alice",
        "rotated.crt",
        "rotated.key",
        "--provisioner",
        "idp",
    ]);
    world.refused(
        &[
            "ca",
            "certificate",
            "alice",
            "k.crt",
            "k.key",
            "--token",
            &retired,
        ],
        "401: token is signed with key \"k1\", which is no provisioner's key",
    );

    // An ID token is no revocation token.
    let token = world.id_token();
    let serial = world.inspect("alice.crt")["serial_number"]
        .as_str()
        .unwrap()
        .to_string();
    world.refused(
        &["ca", "revoke", &serial, "--token", &token],
        "403: an OIDC token authorizes /sign and /ssh/sign only",
    );
}

/// Bad ID tokens for an SSH certificate (`/1.0/ssh/sign`, as `mayfly ssh login` and `step ssh
/// login` send them): each row is an ID token from the provider that would buy alice a user
/// certificate but for the one thing wrong with it, so a row fails if the check it names is
/// taken away. (An OIDC token has no root to pin: the provider's TLS is what the CA trusts it
/// by, and a provider the CA cannot reach is the 503 of the X.509 test above.)
#[test]
fn bad_id_tokens_get_no_ssh_certificate() {
    let test = "bad_id_tokens_get_no_ssh_certificate";
    if provider_ready(test).is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut world = World::new(tmp.path());
    world.start_ca(true);
    let key = mayfly_pki::PrivateKey::generate(mayfly_pki::KeyAlgorithm::EcP256).unwrap();
    let public = mayfly_pki::ssh::SshPublicKey::from_private_key(&key).unwrap();

    // A token signed with the provider's first key, which it then retires: the CA fetches the
    // new key set when a token names the new key, and the old key goes with it.
    let retired = world.id_token();
    world.start_idp("k2");
    let sign = |token: &str| {
        use base64::Engine as _;
        let blob = base64::engine::general_purpose::STANDARD.encode(public.blob());
        world.post(
            "/1.0/ssh/sign",
            &serde_json::json!({"publicKey": blob, "ott": token}),
        )
    };
    // A good token buys its certificate, once.
    let replayed = world.id_token();
    let (status, body) = sign(&replayed);
    assert_eq!(status, 201, "{body}");
    let certificate =
        mayfly_pki::ssh::SshCertificate::from_base64(body["crt"].as_str().unwrap()).unwrap();
    assert_eq!(
        certificate.template.principals,
        ["alice", "alice@example.com"]
    );
    world.set_login("alice", -7200);
    let expired = world.id_token();
    world.set_login("alice", 0);
    let other_client = world
        .ok(&[
            "oauth",
            "--provider",
            &format!("https://127.0.0.1:{}", world.idp_port),
            "--client-id",
            "other",
            "--client-secret",
            "other-secret",
            "--oidc",
            "--bare",
        ])
        .trim()
        .to_string();
    let login = |account: &str| {
        world.set_login(account, 0);
        world.id_token()
    };
    let (unverified, elsewhere, denied) = (login("mallory"), login("eve"), login("bob"));

    let rows = [
        ("replay", replayed, 401, "token was already used"),
        ("expired", expired, 401, "token expired at"),
        (
            "another client's token",
            other_client,
            401,
            "token audience [\"other\"] is not this CA: expected one of [\"mayfly\"]",
        ),
        (
            "a key the provider retired",
            retired,
            401,
            "token is signed with key \"k1\", which is no provisioner's key",
        ),
        (
            "an unverified address",
            unverified,
            401,
            "the token's e-mail address \"mallory@example.com\" is not verified",
        ),
        (
            "an address outside the provisioner's domains",
            elsewhere,
            401,
            "the token's e-mail address \"eve@elsewhere.org\" is not in the provisioner's domains",
        ),
        (
            "a user the name policy denies",
            denied,
            403,
            "principal \"bob\" is denied by provisioner \"idp\"'s deny rule \"bob\"",
        ),
    ];
    for (row, token, status, message) in rows {
        let (got, body) = sign(&token);
        support::assert_refused(row, (got, &body), status, message);
    }
}

/// sshd, which must run as root (privilege separation); the CI runs the tests as root. Without
/// either the test skips, or fails under MAYFLY_REQUIRE_PEERS: the acceptance test of `ssh
/// login` must not hide behind a skip where peers are required.
fn sshd_usable(test: &str) -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    if !Path::new(SSHD).exists() {
        return mayfly_testkit::missing::<()>(
            test,
            &format!("{SSHD} (Debian package openssh-server; .ci/run installs it)"),
        )
        .is_some();
    }
    if !root {
        return mayfly_testkit::missing::<()>(test, "root, which sshd needs to run").is_some();
    }
    true
}

#[test]
fn ssh_login_puts_a_certificate_in_a_real_agent_that_a_real_sshd_accepts() {
    let test = "ssh_login_puts_a_certificate_in_a_real_agent_that_a_real_sshd_accepts";
    if provider_ready(test).is_none() || !sshd_usable(test) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut world = World::new(tmp.path());
    world.start_ca(true);

    // sshd, trusting the user CA, with a host certificate; root may be entered by alice.
    world.ok(&[
        "ssh",
        "certificate",
        "localhost",
        "host_key",
        "--host",
        "--principal",
        "127.0.0.1",
        "--no-password",
        "--insecure",
        "--provisioner",
        "admin",
        "--provisioner-password-file",
        world.pw(),
    ]);
    let user_ca = world.ok(&["ssh", "config", "--roots"]);
    std::fs::write(world.path("user_ca.pub"), &user_ca).unwrap();
    let sshd_lines = world.ok(&[
        "ssh",
        "config",
        "--host",
        "--set",
        &format!("HostKey={}", world.path("host_key").display()),
        "--set",
        &format!("TrustedUserCAKeys={}", world.path("user_ca.pub").display()),
    ]);
    let principals = world.path("principals");
    std::fs::create_dir_all(&principals).unwrap();
    std::fs::write(principals.join("root"), "alice\n").unwrap();
    let sshd_port = free_port();
    let sshd_config = format!(
        "{sshd_lines}\
         Port {sshd_port}\nListenAddress 127.0.0.1\nPidFile {pid}\n\
         AuthorizedKeysFile none\nAuthorizedPrincipalsFile {principals}/%u\n\
         PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
         StrictModes no\nPermitRootLogin prohibit-password\n",
        pid = world.path("sshd.pid").display(),
        principals = principals.display(),
    );
    std::fs::write(world.path("sshd_config"), &sshd_config).unwrap();
    std::fs::create_dir_all("/run/sshd").unwrap();
    let _sshd = Reaped(
        Command::new(SSHD)
            .arg("-D")
            .arg("-f")
            .arg(world.path("sshd_config"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting sshd"),
    );
    wait_for_port(sshd_port, "sshd");
    let known_hosts = world.ok(&["ssh", "config"]);
    std::fs::write(world.path("known_hosts"), &known_hosts).unwrap();

    let socket = world.path("agent.sock");
    let _agent = Reaped(
        Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting ssh-agent"),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !socket.exists() {
        assert!(Instant::now() < deadline, "ssh-agent did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let in_agent = |args: &[&str]| -> Output {
        world
            .command(args)
            .env("SSH_AUTH_SOCK", &socket)
            .output()
            .unwrap()
    };
    let ssh = |user: &str| -> (bool, String) {
        let out = Command::new("ssh")
            .args(["-F", "/dev/null", "-p", &sshd_port.to_string()])
            .args(["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"])
            .args(["-o", "GlobalKnownHostsFile=/dev/null"])
            .arg("-o")
            .arg(format!(
                "UserKnownHostsFile={}",
                world.path("known_hosts").display()
            ))
            .arg("-o")
            .arg(format!("IdentityAgent={}", socket.display()))
            .args(["-o", "ConnectTimeout=10"])
            .env("HOME", &world.work)
            .arg(format!("{user}@127.0.0.1"))
            .arg("echo mayfly-login-ok")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (
            out.status.success() && text.contains("mayfly-login-ok"),
            text,
        )
    };

    // Before: the agent is empty, and sshd lets no one in.
    let out = in_agent(&["ssh", "list"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "The agent has no identities.\n"
    );
    assert!(!ssh("root").0);

    // alice logs in at the provider: a user certificate for the principals her address gives,
    // whatever she asked for, in the agent; sshd accepts it.
    let out = in_agent(&[
        "ssh",
        "login",
        "--provisioner",
        "idp",
        "--principal",
        "root",
    ]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("✔ SSH Agent: yes"), "{said}");
    assert!(
        said.contains("✔ Certificate: alice@example.com for alice, alice@example.com"),
        "{said}"
    );
    let listed = String::from_utf8_lossy(&in_agent(&["ssh", "list"]).stdout).into_owned();
    assert!(
        listed.starts_with("256 SHA256:") && listed.contains(" alice@example.com (ECDSA-CERT)"),
        "{listed}"
    );
    // The real ssh-add sees the same, and ssh-keygen reads the certificate.
    let raw = String::from_utf8_lossy(&in_agent(&["ssh", "list", "--raw"]).stdout).into_owned();
    assert!(
        raw.starts_with("ecdsa-sha2-nistp256-cert-v01@openssh.com "),
        "{raw}"
    );
    std::fs::write(world.path("in-agent-cert.pub"), &raw).unwrap();
    let keygen = Command::new("ssh-keygen")
        .arg("-L")
        .arg("-f")
        .arg(world.path("in-agent-cert.pub"))
        .output()
        .unwrap();
    let keygen = String::from_utf8_lossy(&keygen.stdout);
    assert!(keygen.contains("user certificate"), "{keygen}");
    assert!(keygen.contains("Key ID: \"alice@example.com\""), "{keygen}");
    assert!(
        keygen.contains("                alice\n                alice@example.com\n"),
        "{keygen}"
    );
    let (ok, text) = ssh("root");
    assert!(
        ok,
        "sshd should accept alice's certificate from the agent: {text}"
    );

    // Logged in already: nothing is asked while the certificate is valid.
    let out = in_agent(&["ssh", "login", "alice@example.com", "--provisioner", "idp"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is already present in the SSH agent"),
        "{out:?}"
    );

    // A user gets no host certificate; an administrator does.
    world.refused(
        &[
            "ssh",
            "certificate",
            "web.internal",
            "web_key",
            "--host",
            "--no-password",
            "--insecure",
            "--provisioner",
            "idp",
        ],
        "403",
    );
    world.set_login("root", 0);
    world.ok(&[
        "ssh",
        "certificate",
        "web.internal",
        "web_key",
        "--host",
        "--principal",
        "web.internal",
        "--no-password",
        "--insecure",
        "--provisioner",
        "idp",
    ]);
    let web = world.ok(&["ssh", "inspect", "web_key-cert.pub"]);
    assert!(web.contains("host certificate"), "{web}");

    // Logout removes this CA's certificate, and sshd refuses again.
    let out = in_agent(&["ssh", "logout"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Identity removed.\n",
        "{out:?}"
    );
    let out = in_agent(&["ssh", "list"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "The agent has no identities.\n"
    );
    assert!(!ssh("root").0);

    // ssh login with a JWK provisioner: the certificate is for IDENTITY.
    let out = in_agent(&[
        "ssh",
        "login",
        "alice",
        "--provisioner",
        "admin",
        "--provisioner-password-file",
        world.pw(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let listed = String::from_utf8_lossy(&in_agent(&["ssh", "list", "alice"]).stdout).into_owned();
    assert!(listed.contains(" alice (ECDSA-CERT)"), "{listed}");
    let (ok, text) = ssh("root");
    assert!(ok, "a JWK login's certificate from the agent: {text}");
    let out = in_agent(&["ssh", "logout", "alice"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Identity removed: alice\n",
        "{out:?}"
    );
}
