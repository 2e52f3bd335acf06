//! End-to-end tests of `mayfly ca provisioner add|remove|update`: the real binary edits a
//! ca.json made by `mayfly ca init`, and the result is judged by parsing it, decrypting the new
//! key, and finally by a real `mayfly-ca` that accepts the new provisioner's tokens and refuses
//! a removed one's.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use mayfly_config::config::CaConfig;
use mayfly_pki::jose::{jwe, jwk::Jwk};
use serde_json::{Value, json};

struct Run {
    success: bool,
    stdout: String,
    stderr: String,
}

impl Run {
    #[track_caller]
    fn ok(self) -> String {
        assert!(self.success, "mayfly failed: {}", self.stderr);
        self.stdout
    }

    /// A failure is one line on stderr and nothing on stdout; returns that line.
    #[track_caller]
    fn failure(self) -> String {
        assert!(
            !self.success,
            "mayfly succeeded unexpectedly: {}",
            self.stdout
        );
        assert!(self.stdout.is_empty(), "stdout on failure: {}", self.stdout);
        assert_eq!(
            self.stderr.trim_end().lines().count(),
            1,
            "one line on stderr: {:?}",
            self.stderr
        );
        assert!(
            self.stderr.starts_with("mayfly: error: "),
            "{}",
            self.stderr
        );
        self.stderr.trim_end().to_string()
    }
}

/// A temp dir with `MAYFLY_PATH` at `home` and a CA made by `mayfly ca init`.
struct Ca {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    home: PathBuf,
}

impl Ca {
    fn new() -> Ca {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let home = dir.join("home");
        // Readable by their owner only, as mayfly-ca requires of its password file.
        for (name, password) in [
            ("pw", "root-and-admin-password\n"),
            ("pw2", "deploy-password\n"),
        ] {
            std::fs::write(dir.join(name), password).unwrap();
            std::fs::set_permissions(
                dir.join(name),
                std::os::unix::fs::PermissionsExt::from_mode(0o600),
            )
            .unwrap();
        }
        let ca = Ca {
            _tmp: tmp,
            dir,
            home,
        };
        ca.mayfly(&[
            "ca",
            "init",
            "--name",
            "T",
            "--dns",
            "127.0.0.1",
            "--address",
            "127.0.0.1:9999",
            "--provisioner",
            "admin",
            "--password-file",
            "pw",
        ])
        .ok();
        ca
    }

    fn mayfly(&self, args: &[&str]) -> Run {
        let out = Command::new(env!("CARGO_BIN_EXE_mayfly"))
            .args(args)
            .current_dir(&self.dir)
            .env("MAYFLY_PATH", &self.home)
            .env_remove("MAYFLY_CA_URL")
            .env_remove("MAYFLY_ROOT")
            .env_remove("MAYFLY_PROVISIONER")
            .env_remove("MAYFLY_PROVISIONER_PASSWORD_FILE")
            .stdin(Stdio::null())
            .output()
            .expect("running mayfly");
        Run {
            success: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn config(&self) -> PathBuf {
        self.home.join("config/ca.json")
    }

    fn backup(&self) -> PathBuf {
        self.home.join("config/ca.json.bak")
    }

    fn read(&self) -> String {
        std::fs::read_to_string(self.config()).unwrap()
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.read()).unwrap()
    }

    /// The provisioner entry named `name`.
    fn entry(&self, name: &str) -> Option<Value> {
        self.json()["authority"]["provisioners"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .cloned()
    }

    fn names(&self) -> Vec<String> {
        self.json()["authority"]["provisioners"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect()
    }

    /// Runs a command that must be refused, and checks that ca.json and its backup are as they
    /// were. Returns the error line.
    #[track_caller]
    fn refused(&self, args: &[&str]) -> String {
        let before = self.read();
        let backup = std::fs::read(self.backup()).ok();
        let line = self.mayfly(args).failure();
        assert_eq!(self.read(), before, "ca.json changed by a refused edit");
        assert_eq!(
            std::fs::read(self.backup()).ok(),
            backup,
            "the backup changed"
        );
        line
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// ca.json without `authority.provisioners`, to compare everything else.
fn without_provisioners(mut config: Value) -> Value {
    config["authority"]
        .as_object_mut()
        .unwrap()
        .remove("provisioners");
    config
}

#[test]
fn add_keeps_every_other_key_backs_up_and_makes_a_working_key() {
    let ca = Ca::new();
    // Keys mayfly does not know must survive, and so must the order of the keys.
    let text = ca.read();
    let text = text.replacen(
        '{',
        "{\n  \"_comment\": \"x\",\n  \"customThing\": {\"a\": 1},",
        1,
    );
    let text = text.replacen(
        "\"provisioners\": [",
        "\"authorityExtra\": [1, 2.5, null],\n    \"provisioners\": [",
        1,
    );
    let text = text.replacen(
        "\"name\": \"admin\",",
        "\"name\": \"admin\", \"zOption\": true,",
        1,
    );
    std::fs::write(ca.config(), &text).unwrap();
    assert!(CaConfig::parse(&text).is_ok());
    assert_eq!(mode(&ca.config()), 0o600);
    let before: Value = serde_json::from_str(&text).unwrap();

    let out = ca
        .mayfly(&[
            "ca",
            "provisioner",
            "add",
            "deploy@acme.test",
            "--type",
            "JWK",
            "--create",
            "--password-file",
            "pw2",
        ])
        .ok();
    assert!(
        out.contains("✔ Added provisioner deploy@acme.test (JWK) [kid: "),
        "{out}"
    );
    assert!(out.contains("Reload mayfly-ca to apply it"), "{out}");

    let after_text = ca.read();
    let (config, _) = CaConfig::parse(&after_text).expect("the new ca.json parses");
    assert_eq!(config.authority.provisioners.len(), 2);
    let after = ca.json();
    assert_eq!(after["_comment"], "x");
    assert_eq!(after["customThing"], json!({"a": 1}));
    assert_eq!(after["authority"]["authorityExtra"], json!([1, 2.5, null]));
    assert_eq!(
        without_provisioners(after.clone()),
        without_provisioners(before.clone())
    );
    assert_eq!(
        after["authority"]["provisioners"][0],
        before["authority"]["provisioners"][0]
    );
    // The file keeps its key order (serde_json's Value would sort "address" first).
    let position = |key: &str| after_text.find(&format!("\"{key}\"")).unwrap();
    assert!(position("_comment") < position("customThing"));
    assert!(position("customThing") < position("root"));
    assert!(position("root") < position("address"));
    assert!(position("authorityExtra") < position("provisioners"));

    // The backup is the previous file, private; the file keeps its mode.
    assert_eq!(std::fs::read_to_string(ca.backup()).unwrap(), text);
    assert_eq!(mode(&ca.backup()), 0o600);
    assert_eq!(mode(&ca.config()), 0o600);

    // The encrypted key opens with the new password, is the private half of `key`, and the kid
    // is the key's thumbprint.
    let entry = ca.entry("deploy@acme.test").unwrap();
    assert_eq!(entry["type"], "JWK");
    let public: Jwk = serde_json::from_value(entry["key"].clone()).unwrap();
    let encrypted = entry["encryptedKey"].as_str().unwrap();
    assert!(jwe::decrypt_pbes2(encrypted, b"root-and-admin-password").is_err());
    let private =
        Jwk::from_json(&jwe::decrypt_pbes2(encrypted, b"deploy-password").unwrap()).unwrap();
    assert!(private.d.is_some());
    assert_eq!(private.to_public(), public);
    assert_eq!(
        public.kid.as_deref(),
        Some(public.thumbprint().unwrap().as_str())
    );
    assert_eq!(public.crv.as_deref(), Some("P-256"));
    assert!(out.contains(&format!("[kid: {}]", public.kid.as_deref().unwrap())));
}

#[test]
fn refused_edits_name_the_problem_and_change_nothing() {
    let ca = Ca::new();
    ca.mayfly(&[
        "ca",
        "provisioner",
        "add",
        "deploy",
        "--create",
        "--password-file",
        "pw2",
    ])
    .ok();

    let line = ca.refused(&[
        "ca",
        "provisioner",
        "add",
        "deploy",
        "--create",
        "--password-file",
        "pw2",
    ]);
    assert!(
        line.contains("already has a provisioner named \"deploy\""),
        "{line}"
    );
    let line = ca.refused(&["ca", "provisioner", "add", "admin", "--type", "ACME"]);
    assert!(line.contains("\"admin\""), "{line}");

    // min above the default max of 24h.
    let line = ca.refused(&[
        "ca",
        "provisioner",
        "update",
        "deploy",
        "--x509-min-dur",
        "48h",
    ]);
    assert!(line.contains("refusing to change"), "{line}");
    assert!(line.contains("provisioner \"deploy\""), "{line}");
    assert!(
        line.contains("minTLSCertDuration") && line.contains("maxTLSCertDuration"),
        "{line}"
    );
    let line = ca.refused(&[
        "ca",
        "provisioner",
        "add",
        "short",
        "--type",
        "ACME",
        "--x509-max-dur",
        "1m",
    ]);
    assert!(line.contains("maxTLSCertDuration (1m0s)"), "{line}");

    // A JWK provisioner needs a key; a new password needs a file when there is no terminal.
    let line = ca.refused(&["ca", "provisioner", "add", "nokey"]);
    assert!(line.contains("--create"), "{line}");
    let line = ca.refused(&["ca", "provisioner", "add", "nopw", "--create"]);
    assert!(line.contains("--password-file"), "{line}");
    let line = ca.refused(&[
        "ca",
        "provisioner",
        "add",
        "acme",
        "--type",
        "ACME",
        "--create",
    ]);
    assert!(line.contains("JWK provisioners"), "{line}");

    // Unknown names are refused naming the provisioners there are.
    let line = ca.refused(&["ca", "provisioner", "remove", "nobody"]);
    assert!(
        line.contains("no provisioner named \"nobody\"")
            && line.contains("\"admin\" (JWK), \"deploy\" (JWK)"),
        "{line}"
    );
    let line = ca.refused(&[
        "ca",
        "provisioner",
        "update",
        "nobody",
        "--x509-default-dur",
        "1h",
    ]);
    assert!(line.contains("\"admin\" (JWK)"), "{line}");
    let line = ca.refused(&["ca", "provisioner", "update", "deploy"]);
    assert!(line.contains("nothing to update"), "{line}");

    // An already broken ca.json is not made worse: the edit is refused.
    let global = ca.read().replacen(
        "\"provisioners\": [",
        "\"claims\": {\"maxTLSCertDuration\": \"1m\"},\n    \"provisioners\": [",
        1,
    );
    std::fs::write(ca.config(), &global).unwrap();
    let line = ca.refused(&["ca", "provisioner", "add", "acme", "--type", "ACME"]);
    assert!(line.contains("authority.claims"), "{line}");
    std::fs::write(ca.config(), "{ not json").unwrap();
    let line = ca.refused(&["ca", "provisioner", "remove", "deploy"]);
    assert!(line.contains("is not valid JSON"), "{line}");
}

#[test]
fn update_and_remove_change_only_their_provisioner() {
    let ca = Ca::new();
    ca.mayfly(&[
        "ca",
        "provisioner",
        "add",
        "deploy",
        "--create",
        "--password-file",
        "pw2",
        "--x509-max-dur",
        "72h",
    ])
    .ok();
    assert_eq!(
        ca.entry("deploy").unwrap()["claims"],
        json!({"maxTLSCertDuration": "72h"})
    );
    let admin = ca.entry("admin").unwrap();

    // A group-readable file stays group-readable.
    std::fs::set_permissions(ca.config(), std::fs::Permissions::from_mode(0o640)).unwrap();
    let before = ca.read();
    let out = ca
        .mayfly(&[
            "ca",
            "provisioner",
            "update",
            "deploy",
            "--x509-default-dur",
            "1h",
            "--disable-renewal",
            "--allow-renewal-after-expiry=true",
        ])
        .ok();
    assert!(out.contains("✔ Updated provisioner deploy"), "{out}");
    assert!(out.contains("Reload mayfly-ca to apply it"), "{out}");
    assert_eq!(
        ca.entry("deploy").unwrap()["claims"],
        json!({
            "maxTLSCertDuration": "72h",
            "defaultTLSCertDuration": "1h",
            "disableRenewal": true,
            "allowRenewalAfterExpiry": true
        })
    );
    assert_eq!(mode(&ca.config()), 0o640);
    assert_eq!(std::fs::read_to_string(ca.backup()).unwrap(), before);
    assert_eq!(mode(&ca.backup()), 0o600);
    ca.mayfly(&[
        "ca",
        "provisioner",
        "update",
        "deploy",
        "--no-disable-renewal",
        "--allow-renewal-after-expiry=false",
    ])
    .ok();
    let claims = &ca.entry("deploy").unwrap()["claims"];
    assert_eq!(claims["disableRenewal"], false);
    assert_eq!(claims["allowRenewalAfterExpiry"], false);
    let (config, _) = CaConfig::parse(&ca.read()).unwrap();
    let parsed = config.authority.provisioners[1].claims.clone().unwrap();
    assert_eq!(
        parsed.default_tls_cert_duration.unwrap().0,
        time::Duration::hours(1)
    );
    assert_eq!(ca.entry("admin").unwrap(), admin);

    // ACME provisioners are added as step writes them.
    let out = ca
        .mayfly(&["ca", "provisioner", "add", "acme", "--type", "acme"])
        .ok();
    assert!(out.contains("✔ Added provisioner acme (ACME)"), "{out}");
    assert_eq!(
        ca.entry("acme").unwrap(),
        json!({"type": "ACME", "name": "acme"})
    );

    let out = ca.mayfly(&["ca", "provisioner", "remove", "deploy"]).ok();
    assert!(out.contains("✔ Removed provisioner deploy (JWK)"), "{out}");
    assert_eq!(ca.names(), ["admin", "acme"]);
    assert_eq!(ca.entry("admin").unwrap(), admin);
    ca.mayfly(&["ca", "provisioner", "remove", "acme"]).ok();

    // Removing the last one is allowed, with a warning.
    let run = ca.mayfly(&["ca", "provisioner", "remove", "admin"]);
    assert!(run.success, "{}", run.stderr);
    assert!(
        run.stderr.contains("no provisioners left"),
        "{}",
        run.stderr
    );
    assert!(ca.names().is_empty());
    assert!(CaConfig::parse(&ca.read()).is_ok());
}

#[test]
fn the_admin_flag_is_set_and_cleared_from_the_command_line() {
    let ca = Ca::new();
    let out = ca
        .mayfly(&[
            "ca",
            "provisioner",
            "add",
            "auditor",
            "--create",
            "--password-file",
            "pw2",
            "--admin",
        ])
        .ok();
    assert!(out.contains("✔ Admin: it may use the admin API"), "{out}");
    assert_eq!(ca.entry("auditor").unwrap()["admin"], true);
    let (config, _) = CaConfig::parse(&ca.read()).unwrap();
    assert!(config.authority.provisioners[1].admin);

    // Only the flag changes: no claims appear.
    let admin = ca.entry("admin").unwrap();
    assert_eq!(admin.get("admin"), None);
    let out = ca
        .mayfly(&["ca", "provisioner", "update", "admin", "--admin"])
        .ok();
    assert!(
        out.contains("✔ Updated provisioner admin: admin=true"),
        "{out}"
    );
    let mut expected = admin.clone();
    expected["admin"] = json!(true);
    assert_eq!(ca.entry("admin").unwrap(), expected);
    ca.mayfly(&["ca", "provisioner", "update", "auditor", "--admin=false"])
        .ok();
    assert_eq!(ca.entry("auditor").unwrap()["admin"], false);
    let (config, _) = CaConfig::parse(&ca.read()).unwrap();
    assert!(config.authority.provisioners[0].admin);
    assert!(!config.authority.provisioners[1].admin);

    let before = ca.read();
    let run = ca.mayfly(&["ca", "provisioner", "update", "auditor", "--admin=maybe"]);
    assert!(
        !run.success && run.stderr.contains("--admin"),
        "{}",
        run.stderr
    );
    assert_eq!(ca.read(), before);
}

#[test]
fn keys_from_files_and_the_configuration_location() {
    let ca = Ca::new();
    // ca.json elsewhere, found through "ca-config" in defaults.json, behind a symbolic link.
    let elsewhere = ca.dir.join("etc");
    std::fs::create_dir(&elsewhere).unwrap();
    std::fs::rename(ca.config(), elsewhere.join("real.json")).unwrap();
    std::os::unix::fs::symlink(elsewhere.join("real.json"), elsewhere.join("ca.json")).unwrap();
    let defaults_path = ca.home.join("config/defaults.json");
    let mut defaults: Value =
        serde_json::from_str(&std::fs::read_to_string(&defaults_path).unwrap()).unwrap();
    defaults["ca-config"] = json!(elsewhere.join("ca.json"));
    std::fs::write(&defaults_path, defaults.to_string()).unwrap();

    // A public JWK: the entry has the key and no encrypted key.
    let key = mayfly_pki::PrivateKey::generate(mayfly_pki::KeyAlgorithm::EcP256).unwrap();
    let mut public = Jwk::public_from_key(&key).unwrap();
    let kid = public.kid.take().unwrap();
    std::fs::write(
        ca.dir.join("pub.json"),
        serde_json::to_string(&public).unwrap(),
    )
    .unwrap();
    let out = ca
        .mayfly(&[
            "ca",
            "provisioner",
            "add",
            "remote",
            "--public-key",
            "pub.json",
        ])
        .ok();
    assert!(out.contains(&format!("[kid: {kid}]")), "{out}");
    assert!(out.contains("No encrypted private key"), "{out}");
    let real = elsewhere.join("real.json");
    let entry: Value = serde_json::from_str::<Value>(&std::fs::read_to_string(&real).unwrap())
        .unwrap()["authority"]["provisioners"][1]
        .clone();
    assert_eq!(entry["name"], "remote");
    assert_eq!(entry["key"]["kid"], kid.as_str());
    assert!(entry.get("encryptedKey").is_none());
    assert!(
        std::fs::symlink_metadata(elsewhere.join("ca.json"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(elsewhere.join("real.json.bak").exists());
    assert!(!ca.config().exists());

    // A private key given as public is refused.
    let private = Jwk::private_from_key(&key).unwrap();
    std::fs::write(ca.dir.join("priv.json"), private.as_bytes()).unwrap();
    let line = ca
        .mayfly(&["ca", "provisioner", "add", "x", "--public-key", "priv.json"])
        .failure();
    assert!(line.contains("--private-key"), "{line}");

    // A private JWK, stored encrypted, with --ca-config naming the file directly.
    let real_text = real.to_str().unwrap();
    ca.mayfly(&[
        "ca",
        "provisioner",
        "add",
        "imported",
        "--private-key",
        "priv.json",
        "--password-file",
        "pw2",
        "--ca-config",
        real_text,
    ])
    .ok();
    let config: Value = serde_json::from_str(&std::fs::read_to_string(&real).unwrap()).unwrap();
    let entry = &config["authority"]["provisioners"][2];
    assert_eq!(entry["name"], "imported");
    assert_eq!(entry["key"]["kid"], kid.as_str());
    let decrypted =
        jwe::decrypt_pbes2(entry["encryptedKey"].as_str().unwrap(), b"deploy-password").unwrap();
    assert_eq!(
        Jwk::from_json(&decrypted).unwrap().d,
        Jwk::from_json(private.as_bytes()).unwrap().d
    );

    // A missing --ca-config is an error naming it.
    let line = ca
        .mayfly(&[
            "ca",
            "provisioner",
            "remove",
            "imported",
            "--ca-config",
            "missing.json",
        ])
        .failure();
    assert!(line.contains("missing.json"), "{line}");
}

/// A running `mayfly-ca`, killed on drop.
struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(ca: &Ca) -> Server {
        let bin = Path::new(env!("CARGO_BIN_EXE_mayfly")).with_file_name("mayfly-ca");
        assert!(
            bin.exists(),
            "{} is missing: run `cargo build --workspace` before the tests",
            bin.display()
        );
        let mut child = Command::new(bin)
            .arg(ca.config())
            .arg("--password-file")
            .arg(ca.dir.join("pw"))
            .env("MAYFLY_PATH", &ca.home)
            .env("MAYFLY_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting mayfly-ca");
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let err_tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = err_tx.send(format!("stderr: {line}"));
            }
        });
        let mut seen = Vec::new();
        let mut server = Server {
            child,
            url: String::new(),
        };
        while server.url.is_empty() {
            match rx.recv_timeout(Duration::from_secs(30)) {
                Ok(line) => match line.split("serving on ").nth(1) {
                    Some(url) if !line.starts_with("stderr: ") => {
                        server.url = url.trim().to_string()
                    }
                    _ => seen.push(line),
                },
                Err(_) => panic!("mayfly-ca did not start: {seen:?}"),
            }
        }
        server
    }
}

#[test]
fn the_server_accepts_an_added_provisioner_and_refuses_a_removed_one() {
    let ca = Ca::new();
    // Port 0: the server picks a free port and prints it.
    let text = ca.read().replace("127.0.0.1:9999", "127.0.0.1:0");
    std::fs::write(ca.config(), text).unwrap();
    ca.mayfly(&[
        "ca",
        "provisioner",
        "add",
        "svc-deployer",
        "--create",
        "--password-file",
        "pw2",
    ])
    .ok();
    ca.mayfly(&["ca", "provisioner", "add", "acme", "--type", "ACME"])
        .ok();
    ca.mayfly(&[
        "certificate",
        "create",
        "--csr",
        "svc.internal",
        "svc.csr",
        "svc.key",
        "--no-password",
        "--insecure",
    ])
    .ok();
    let root = ca.home.join("certs/root_ca.crt");
    let root = root.to_str().unwrap();

    let server = Server::start(&ca);
    let token = |url: &str| {
        ca.mayfly(&[
            "ca",
            "token",
            "svc.internal",
            "--provisioner",
            "svc-deployer",
            "--password-file",
            "pw2",
            "--ca-url",
            url,
            "--root",
            root,
        ])
    };
    let first = token(&server.url).ok().trim().to_string();
    let kept = token(&server.url).ok().trim().to_string();
    ca.mayfly(&[
        "ca",
        "sign",
        "svc.csr",
        "svc.crt",
        "--token",
        &first,
        "--ca-url",
        &server.url,
        "--root",
        root,
    ])
    .ok();
    assert!(ca.dir.join("svc.crt").exists());
    drop(server);

    ca.mayfly(&["ca", "provisioner", "remove", "svc-deployer"])
        .ok();
    let server = Server::start(&ca);
    let run = ca.mayfly(&[
        "ca",
        "sign",
        "svc.csr",
        "late.crt",
        "--token",
        &kept,
        "--ca-url",
        &server.url,
        "--root",
        root,
    ]);
    assert!(!run.success, "a removed provisioner's token was accepted");
    assert!(
        run.stderr.contains("no provisioner's key"),
        "{}",
        run.stderr
    );
    assert!(!ca.dir.join("late.crt").exists());
    let line = token(&server.url).failure();
    assert!(
        line.contains("no JWK provisioner named \"svc-deployer\""),
        "{line}"
    );
}

#[test]
fn oidc_provisioners_are_added_with_steps_flags() {
    let ca = Ca::new();
    let out = ca
        .mayfly(&[
            "ca",
            "provisioner",
            "add",
            "Google",
            "--type",
            "OIDC",
            "--ssh",
            "--client-id",
            "1087160488420.apps.example.com",
            "--client-secret",
            "udTrOT3gzrO7W9fDPgZQLfYJ",
            "--configuration-endpoint",
            "https://accounts.example.com/.well-known/openid-configuration",
            "--admin=root@example.com",
            "--admin=ops",
            "--domain",
            "example.com",
            "--group",
            "staff",
            "--listen-address",
            ":10000",
        ])
        .ok();
    assert!(out.contains("✔ Added provisioner Google (OIDC)"), "{out}");
    assert!(
        out.contains("✔ Administrators: root@example.com, ops"),
        "{out}"
    );
    let entry = ca.entry("Google").unwrap();
    assert_eq!(
        entry,
        json!({
            "type": "OIDC",
            "name": "Google",
            "clientID": "1087160488420.apps.example.com",
            "clientSecret": "udTrOT3gzrO7W9fDPgZQLfYJ",
            "configurationEndpoint": "https://accounts.example.com/.well-known/openid-configuration",
            "admins": ["root@example.com", "ops"],
            "domains": ["example.com"],
            "groups": ["staff"],
            "listenAddress": ":10000",
            "claims": {"enableSSHCA": true},
        })
    );

    // Each bad combination is refused with its reason, and the file is left as it was.
    for (args, expected) in [
        (
            vec![
                "--type",
                "OIDC",
                "--configuration-endpoint",
                "https://idp.example",
            ],
            "requires --client-id",
        ),
        (
            vec!["--type", "OIDC", "--client-id", "c"],
            "requires --configuration-endpoint",
        ),
        (
            vec![
                "--type",
                "OIDC",
                "--client-id",
                "c",
                "--configuration-endpoint",
                "http://idp.example",
            ],
            "not an https URL",
        ),
        (
            vec![
                "--type",
                "OIDC",
                "--client-id",
                "c",
                "--configuration-endpoint",
                "https://idp.example",
                "--admin",
            ],
            "--admin is for JWK provisioners, not OIDC",
        ),
        (
            vec!["--create", "--password-file", "pw2", "--client-id", "c"],
            "are for OIDC provisioners",
        ),
        (
            vec![
                "--create",
                "--password-file",
                "pw2",
                "--admin=a@example.com",
            ],
            "only with --type OIDC",
        ),
    ] {
        let before = ca.read();
        let mut command = vec!["ca", "provisioner", "add", "other"];
        command.extend(args.iter());
        let run = ca.mayfly(&command);
        assert!(!run.success, "{command:?} succeeded");
        assert!(run.stderr.contains(expected), "{command:?}: {}", run.stderr);
        assert_eq!(ca.read(), before, "{command:?} changed the file");
    }
}
