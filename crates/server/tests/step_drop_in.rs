//! A CA that step set up runs on mayfly-ca: the ca.json `step ca init` writes starts mayfly-ca
//! unchanged and serves the real step CLI, and `mayfly-ca import-step` carries what the real
//! step-ca recorded (its revocations above all) across.
//!
//! Peers: the real step CLI and step-ca (`../shared/tools`), and MariaDB for step-ca's database
//! (`MAYFLY_TEST_MYSQL_URL`); each test skips when its peer is absent, or fails under
//! MAYFLY_REQUIRE_PEERS.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use mayfly_store::Dialect;
use mayfly_store::testing::TestDatabase;
use support::step::{Step, StepCa};
use support::{Server, ServerOptions, free_port, mode, write_secret};

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Bootstraps a client STEPPATH to the CA at `url` whose root is `root`.
fn bootstrap(step_program: &Path, work: &Path, url: &str, root: &Path) -> Step {
    let client = Step::at(step_program, work.join("client"), work);
    let fingerprint = client.stdout(&["certificate", "fingerprint", root.to_str().unwrap()]);
    client.bootstrap(url, fingerprint.trim());
    client
}

#[test]
fn a_ca_json_written_by_step_ca_init_runs_unchanged() {
    let test = "a_ca_json_written_by_step_ca_init_runs_unchanged";
    let Some(step_program) = mayfly_testkit::step_cli(test) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    let password_file = work.join("password");
    write_secret(&password_file, "drop-in password\n");
    let step = Step::at(&step_program, work.join("step"), work);
    let port = free_port();
    let config = step.init_ca(&format!("127.0.0.1:{port}"), &password_file, false);
    // What step wrote, kept as it is: ca.json readable by everyone, keys encrypted, the badger
    // database as the store.
    assert_eq!(
        mode(&config),
        0o644,
        "step ca init wrote ca.json with another mode"
    );
    let written = std::fs::read(&config).unwrap();
    let text = String::from_utf8_lossy(&written);
    assert!(text.contains(r#""federatedRoots": null"#), "{text}");
    assert!(text.contains(r#""type": "badgerv2""#), "{text}");
    let badger_dir = step.steppath.join("db");
    let badger_before = listing(&badger_dir);

    // Started from elsewhere, with a MAYFLY_PATH of its own: neither decides where records go.
    let elsewhere = work.join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let log = work.join("mayfly-ca.log");
    let home = work.join("mayfly-home");
    let server = Server::start_with(
        &[
            "--password-file",
            password_file.to_str().unwrap(),
            config.to_str().unwrap(),
        ],
        &home,
        &ServerOptions {
            cwd: Some(&elsewhere),
            log_file: Some(&log),
            ..ServerOptions::default()
        },
        "serving on",
    );
    let logged = std::fs::read_to_string(&log).unwrap();
    let sqlite = step.steppath.join("db-mayfly.db");
    let announced: Vec<&str> = logged
        .lines()
        .filter(|l| l.contains("badger database"))
        .collect();
    assert_eq!(announced.len(), 1, "{logged}");
    assert!(
        announced[0].contains(&format!("SQLite at {}", sqlite.display())),
        "{logged}"
    );
    assert!(announced[0].contains("mayfly-ca import-step"), "{logged}");
    let warned: Vec<&str> = logged
        .lines()
        .filter(|l| l.contains("readable by every user"))
        .collect();
    assert_eq!(warned.len(), 1, "{logged}");
    assert!(
        warned[0].contains(&format!("{} (mode 0644)", config.display())),
        "{logged}"
    );
    assert!(!logged.contains("unknown key"), "{logged}");

    // The real step CLI gets a certificate from it, and renews it (so it was recorded).
    let url = format!("https://127.0.0.1:{port}");
    let root = step.steppath.join("certs/root_ca.crt");
    let client = bootstrap(&step_program, work, &url, &root);
    client.ok(&[
        "ca",
        "certificate",
        "--provisioner",
        "admin",
        "--provisioner-password-file",
        password_file.to_str().unwrap(),
        "leaf.example",
        "leaf.crt",
        "leaf.key",
    ]);
    client.ok(&[
        "certificate",
        "verify",
        "leaf.crt",
        "--roots",
        root.to_str().unwrap(),
    ]);
    client.ok(&["ca", "renew", "--force", "leaf.crt", "leaf.key"]);
    drop(server);

    assert_eq!(
        std::fs::read(&config).unwrap(),
        written,
        "ca.json was changed"
    );
    assert_eq!(
        listing(&badger_dir),
        badger_before,
        "badger's directory was touched"
    );
    assert!(sqlite.is_file(), "{} is missing", sqlite.display());
    assert!(!home.join("db").exists(), "records went to MAYFLY_PATH");
}

/// Runs `mayfly-ca ARGS`; returns (success, stdout, stderr).
fn mayfly_ca(home: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(support::server_bin())
        .args(args)
        .env("MAYFLY_PATH", home)
        .env("MAYFLY_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("running mayfly-ca");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Asserts a failure whose error is one line, the last on stderr (warnings logged before it
/// may precede it), starting `mayfly-ca: ` with `expected` in it; returns that line.
fn refused(home: &Path, args: &[&str], expected: &str) -> String {
    let (ok, out, err) = mayfly_ca(home, args);
    assert!(!ok, "{args:?} succeeded: {out}");
    let errors: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("mayfly-ca: "))
        .collect();
    assert_eq!(errors.len(), 1, "{args:?}: {err}");
    assert_eq!(err.trim_end().lines().last(), Some(errors[0]), "{err}");
    assert!(
        errors[0].contains(expected),
        "{args:?}: {err:?} lacks {expected:?}"
    );
    assert!(!err.contains("hunter2"), "a password leaked: {err}");
    errors[0].to_owned()
}

/// World-readable files stop the server only when a secret is in them in clear.
#[test]
fn a_world_readable_secret_in_clear_stops_the_server() {
    let test = "a_world_readable_secret_in_clear_stops_the_server";
    let Some(step_program) = mayfly_testkit::step_cli(test) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    let password_file = work.join("password");
    write_secret(&password_file, "drop-in password\n");
    let step = Step::at(&step_program, work.join("step"), work);
    let config = step.init_ca("127.0.0.1:0", &password_file, false);
    let original: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    let home = work.join("home");
    let start = [
        "--password-file",
        password_file.to_str().unwrap(),
        config.to_str().unwrap(),
    ];
    let write = |value: &serde_json::Value, mode: u32| {
        std::fs::write(&config, serde_json::to_vec_pretty(value).unwrap()).unwrap();
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(mode)).unwrap();
    };

    // The key's password in ca.json.
    let mut with_password = original.clone();
    with_password["password"] = "drop-in password".into();
    write(&with_password, 0o644);
    let err = refused(&home, &start, "with password in clear");
    assert!(
        err.contains("mode 0644") && !err.contains("drop-in password"),
        "{err}"
    );

    // A database password in the data source, in step's MySQL spelling: refused before any
    // connection is tried.
    let mut with_db_password = original.clone();
    with_db_password["db"] = serde_json::json!({
        "type": "mysql", "dataSource": "ca:hunter2@tcp(127.0.0.1:1)/", "database": "stepca"
    });
    write(&with_db_password, 0o604);
    let err = refused(&home, &start, "with db.dataSource in clear");
    assert!(!err.contains("hunter2"), "{err}");

    // The intermediate key decrypted and left readable by everyone.
    write(&original, 0o600);
    let key = step.steppath.join("secrets/intermediate_ca_key");
    step.ok(&[
        "crypto",
        "change-pass",
        key.to_str().unwrap(),
        "--password-file",
        password_file.to_str().unwrap(),
        "--no-password",
        "--insecure",
        "--force",
    ]);
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    refused(&home, &start, "the intermediate CA key, not encrypted");

    // The password file itself.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::set_permissions(&password_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    refused(&home, &start, "(--password-file) can be read by every user");
}

/// `import-step` refuses what it cannot read with one line naming the option, before it opens
/// anything; a password is never taken from the command line.
#[test]
fn import_step_refuses_bad_sources_in_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let config = tmp.path().join("ca.json");
    let config = config.to_str().unwrap();
    let no_db = tmp.path().join("step-ca.json");
    std::fs::write(
        &no_db,
        r#"{"root":"r","crt":"c","key":"k","address":":1","dnsNames":null,"authority":{}}"#,
    )
    .unwrap();
    for (args, expected) in [
        (
            vec![
                "--db-type",
                "mysql",
                "--data-source",
                "root@tcp(127.0.0.1:3306)",
            ],
            "--data-source: db.dataSource: not a MySQL data source (no '/' before the database name)",
        ),
        (
            vec![
                "--db-type",
                "mysql",
                "--data-source",
                "root@tcp(127.0.0.1:3306)/",
            ],
            "--data-source: db.database: no MySQL database is named",
        ),
        (
            vec![
                "--db-type",
                "mysql",
                "--data-source",
                "root:hunter2@tcp(127.0.0.1:3306)/",
            ],
            "--data-source holds a password, which every user can read in the process list",
        ),
        (
            vec!["--db-type", "postgresql", "--data-source", "host=h port=x"],
            "--data-source: db.dataSource: PostgreSQL port \"x\" is not a port number",
        ),
        (
            vec![
                "--db-type",
                "badgerv2",
                "--data-source",
                "/var/lib/step-ca/db",
            ],
            "badger-migration tool",
        ),
        (
            vec!["--db-type", "oracle", "--data-source", "x"],
            "--db-type \"oracle\": expected \"mysql\" or \"postgresql\"",
        ),
        (
            vec!["--db-type", "mysql"],
            "--db-type needs --data-source or --data-source-file",
        ),
        (vec![], "name step-ca's database: --from"),
        (
            vec!["--from", no_db.to_str().unwrap()],
            "step-ca's ca.json has no db",
        ),
    ] {
        let mut full = vec!["import-step"];
        full.extend(args);
        full.push(config);
        refused(&home, &full, expected);
    }
    // From a private file, a password is accepted; the malformed rest is still named. A file
    // every user can read is refused.
    let secret = tmp.path().join("data-source");
    write_secret(&secret, "root:hunter2@tcp(127.0.0.1:3306/\n");
    let from_file = [
        "import-step",
        "--db-type",
        "mysql",
        "--data-source-file",
        secret.to_str().unwrap(),
        config,
    ];
    refused(
        &home,
        &from_file,
        "--data-source: db.dataSource: not a MySQL data source (the address must end with ')'",
    );
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    refused(
        &home,
        &from_file,
        "(--data-source-file) can be read by every user",
    );
    assert!(
        !Path::new(config).exists() && !home.exists(),
        "something was created"
    );
}

/// `url` (`mysql://user[:password]@host:port/db`) in step's MySQL spelling, without the
/// database: `user[:password]@tcp(host:port)/`, and the database's name.
fn go_dsn(url: &str) -> (String, String) {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (user_info, host) = authority.rsplit_once('@').unwrap_or(("", authority));
    let host = if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:3306")
    };
    let name = path.split('?').next().unwrap_or_default().to_owned();
    (format!("{user_info}@tcp({host})/"), name)
}

/// The issue's acceptance: the real step-ca issues and revokes through the real step CLI into
/// MariaDB; after `import-step`, mayfly-ca on the same ca.json (its `db` pointed at a database
/// of its own) refuses to renew the revoked certificate, renews the other, and refuses a token
/// step-ca already accepted.
#[test]
fn import_step_carries_revocations_across() {
    let test = "import_step_carries_revocations_across";
    let (Some(step_program), Some(step_ca_program)) = (
        mayfly_testkit::step_cli(test),
        mayfly_testkit::step_ca(test),
    ) else {
        return;
    };
    let Some(step_db) = TestDatabase::create_blocking(Dialect::MySql, test) else {
        return;
    };
    let Some(mayfly_db) = TestDatabase::create_blocking(Dialect::MySql, test) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    let password_file = work.join("password");
    write_secret(&password_file, "drop-in password\n");
    let password = password_file.to_str().unwrap();
    let step = Step::at(&step_program, work.join("step"), work);
    let port = free_port();
    let config = step.init_ca(&format!("127.0.0.1:{port}"), &password_file, false);
    let (step_dsn, step_name) = go_dsn(step_db.url());
    let mut value: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    value["db"] =
        serde_json::json!({"type": "mysql", "dataSource": step_dsn, "database": step_name});
    std::fs::write(&config, serde_json::to_vec_pretty(&value).unwrap()).unwrap();

    // step-ca's life: two certificates, one revoked by token with a reason, one token kept.
    let url = format!("https://127.0.0.1:{port}");
    let root = step.steppath.join("certs/root_ca.crt");
    let replayed_token;
    {
        let _step_ca = StepCa::run(&step_ca_program, &config, &password_file, &step.steppath);
        let client = bootstrap(&step_program, work, &url, &root);
        for name in ["revoked", "kept"] {
            client.ok(&[
                "ca",
                "certificate",
                "--provisioner",
                "admin",
                "--provisioner-password-file",
                password,
                &format!("{name}.example"),
                &format!("{name}.crt"),
                &format!("{name}.key"),
            ]);
        }
        let inspected =
            client.stdout(&["certificate", "inspect", "--format", "json", "revoked.crt"]);
        let inspected: serde_json::Value = serde_json::from_str(&inspected).unwrap();
        let serial = inspected["serial_number"].as_str().unwrap().to_owned();
        let token = client.stdout(&[
            "ca",
            "token",
            "--revoke",
            "--provisioner",
            "admin",
            "--provisioner-password-file",
            password,
            &serial,
        ]);
        client.ok(&[
            "ca",
            "revoke",
            "--token",
            token.trim(),
            "--reason",
            "laptop lost",
            "--reasonCode",
            "1",
            &serial,
        ]);
        let token = client.stdout(&[
            "ca",
            "token",
            "--provisioner",
            "admin",
            "--provisioner-password-file",
            password,
            "once.example",
        ]);
        replayed_token = token.trim().to_owned();
        client.ok(&[
            "ca",
            "certificate",
            "--token",
            &replayed_token,
            "once.example",
            "once.crt",
            "once.key",
        ]);
        // step-ca itself refuses to renew what it revoked.
        assert!(
            !client
                .run(&["ca", "renew", "--force", "revoked.crt", "revoked.key"])
                .status
                .success()
        );
    }

    // The move: the same ca.json, its db now a database of mayfly's own (step's spelling).
    let (mayfly_dsn, mayfly_name) = go_dsn(mayfly_db.url());
    value["db"] =
        serde_json::json!({"type": "mysql", "dataSource": mayfly_dsn, "database": mayfly_name});
    let mayfly_config = step.steppath.join("config/ca-mayfly.json");
    std::fs::write(&mayfly_config, serde_json::to_vec_pretty(&value).unwrap()).unwrap();
    let home = work.join("home");
    // step-ca's own database is refused as mayfly's: its tables are step-ca's.
    refused(
        &home,
        &["--password-file", password, config.to_str().unwrap()],
        "holds step-ca's tables",
    );
    // From step-ca's ca.json, which names its database.
    let (ok, out, err) = mayfly_ca(
        &home,
        &[
            "import-step",
            "--from",
            config.to_str().unwrap(),
            mayfly_config.to_str().unwrap(),
        ],
    );
    assert!(ok, "{out}{err}");
    for line in [
        "certificates: 3 copied, 0 already there",
        "revocations: 1 copied, 0 already there",
        // Three certificates and one revocation, each on a token.
        "used tokens: 4 copied, 0 already there",
    ] {
        assert!(out.contains(line), "{line:?} missing from {out}");
    }
    // Again, from step-ca's db fields: nothing is duplicated.
    let import = [
        "import-step",
        "--db-type",
        "mysql",
        "--data-source",
        &step_dsn,
        "--database",
        &step_name,
        mayfly_config.to_str().unwrap(),
    ];
    let (ok, out, err) = mayfly_ca(&home, &import);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("certificates: 0 copied, 3 already there"),
        "{out}"
    );

    let log = work.join("mayfly-ca.log");
    let _server = Server::start_with(
        &["--password-file", password, mayfly_config.to_str().unwrap()],
        &home,
        &ServerOptions {
            log_file: Some(&log),
            env: vec![("MAYFLY_LOG", "info".into())],
            ..ServerOptions::default()
        },
        "serving on",
    );
    let client = Step::at(&step_program, work.join("client"), work);
    let renewed = client.run(&["ca", "renew", "--force", "revoked.crt", "revoked.key"]);
    assert!(
        !renewed.status.success(),
        "the revoked certificate was renewed"
    );
    client.ok(&["ca", "renew", "--force", "kept.crt", "kept.key"]);
    let replay = client.run(&[
        "ca",
        "certificate",
        "--token",
        &replayed_token,
        "once.example",
        "twice.crt",
        "twice.key",
    ]);
    assert!(
        !replay.status.success(),
        "a token step-ca accepted was accepted again"
    );
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("was revoked and cannot be renewed"),
        "{logged}"
    );
    assert!(logged.contains("token was already used"), "{logged}");
}
