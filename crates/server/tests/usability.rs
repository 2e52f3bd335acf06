//! What a new user meets first: prompts at a terminal (driven through tmux and read off the
//! screen), the messages without one, a closed pipe, errors that name their cause once, and the
//! version, completion and man page commands.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::terminal::Terminal;
use support::{DevInfo, Server, mayfly, mayfly_err, mayfly_ok};

/// A dev CA and a client bootstrapped to it, in a fresh directory.
struct Setup {
    server: Server,
    dev: DevInfo,
    tmp: tempfile::TempDir,
    home: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("home");
        let (server, dev) = Server::dev(tmp.path(), &home);
        mayfly_ok(
            &home,
            tmp.path(),
            &[
                "ca",
                "bootstrap",
                "--ca-url",
                &dev.url,
                "--fingerprint",
                &dev.fingerprint,
            ],
        );
        Setup {
            server,
            dev,
            tmp,
            home,
        }
    }

    fn work(&self) -> &Path {
        self.tmp.path()
    }

    fn password_file(&self) -> &str {
        self.dev.password_file.to_str().unwrap()
    }

    fn ca_config(&self) -> PathBuf {
        self.dev.ca_dir.join("config/ca.json")
    }

    /// A certificate and key from the dev CA, as NAME.crt and NAME.key.
    fn certificate(&self, name: &str) {
        mayfly_ok(
            &self.home,
            self.work(),
            &[
                "ca",
                "certificate",
                &format!("{name}.internal"),
                &format!("{name}.crt"),
                &format!("{name}.key"),
                "--provisioner-password-file",
                self.password_file(),
            ],
        );
    }

    /// `mayfly ARGS` at a terminal, in the work directory, with the client's MAYFLY_PATH.
    fn terminal(&self, test: &str, args: &[&str]) -> Option<Terminal> {
        Terminal::start(
            test,
            self.work(),
            &[("MAYFLY_PATH", self.home.to_str().unwrap())],
            &support::client_bin(),
            args,
        )
    }
}

/// `mayfly ca init` with flags, into `home`, the CA listening on `address`.
fn init_pki(home: &Path, work: &Path, password_file: &Path, address: &str) {
    mayfly_ok(
        home,
        work,
        &[
            "ca",
            "init",
            "--name",
            "Acme",
            "--dns",
            "localhost",
            "--address",
            address,
            "--provisioner",
            "ops@acme.test",
            "--password-file",
            password_file.to_str().unwrap(),
        ],
    );
}

#[test]
fn mayfly_ca_asks_for_the_intermediate_key_password_at_a_terminal_and_names_the_flag_without_one() {
    let test = "mayfly_ca_asks_for_the_intermediate_key_password_at_a_terminal_and_names_the_flag_without_one";
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    support::write_secret(tmp.path().join("pw.txt"), "a long CA password\n");
    let port = support::free_port();
    init_pki(
        &home,
        tmp.path(),
        &tmp.path().join("pw.txt"),
        &format!("127.0.0.1:{port}"),
    );
    let config = home.join("config/ca.json");

    // No terminal: one line that names the key and the flag.
    let out = Command::new(support::server_bin())
        .arg(&config)
        .env("MAYFLY_PATH", &home)
        .env_remove("MAYFLY_PASSWORD_FILE")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("mayfly-ca: error: "))
        .collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains("intermediate_ca_key"), "{stderr}");
    assert!(errors[0].contains("pass --password-file FILE"), "{stderr}");
    support::assert_said_once(errors[0]);

    // At a terminal: step-ca's prompt, then the CA serves.
    let Some(terminal) = Terminal::start(
        test,
        tmp.path(),
        &[
            ("MAYFLY_PATH", home.to_str().unwrap()),
            ("MAYFLY_LOG", "warn"),
        ],
        &support::server_bin(),
        &[config.to_str().unwrap()],
    ) else {
        return;
    };
    terminal.wait_for("Please enter the password to decrypt intermediate_ca_key:");
    terminal.type_line("a long CA password");
    let screen = terminal.wait_for("mayfly-ca: serving on https://");
    assert!(!screen.contains("a long CA password"), "echoed:\n{screen}");
    mayfly_ok(
        &home,
        tmp.path(),
        &[
            "ca",
            "health",
            "--ca-url",
            &format!("https://localhost:{port}"),
        ],
    );
}

#[test]
fn ca_init_asks_again_and_can_generate_a_password_shown_once() {
    let test = "ca_init_asks_again_and_can_generate_a_password_shown_once";
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let Some(terminal) = Terminal::start(
        test,
        tmp.path(),
        &[("MAYFLY_PATH", home.to_str().unwrap())],
        &support::client_bin(),
        &["ca", "init"],
    ) else {
        return;
    };
    terminal.wait_for("What would you like to name your new PKI?:");
    terminal.type_line("");
    terminal.wait_for("An answer is required.");
    terminal.type_line("Acme");
    terminal.wait_for("What DNS names or IP addresses will clients use to reach your CA?");
    terminal.type_line("localhost, 127.0.0.1");
    terminal.wait_for("What IP and port will your new CA bind to?");
    terminal.type_line("127.0.0.1:9000");
    terminal.wait_for("What would you like to name the CA's first provisioner?:");
    terminal.type_line("ops@acme.test");
    let prompt = "Choose a password for your CA keys and first provisioner [leave empty and we'll generate one]:";
    terminal.wait_for(prompt);
    terminal.type_line("first attempt");
    terminal.wait_for("Confirm the password:");
    terminal.type_line("another attempt");
    terminal.wait_for("The passwords do not match. Try again.");
    terminal.wait_for_count(prompt, 2);
    terminal.type_line("");
    let (status, screen) = terminal.wait_exit();
    assert_eq!(status, 0, "{screen}");
    assert!(screen.contains("Your PKI is ready to go."), "{screen}");
    assert!(
        !screen.contains("attempt"),
        "a typed password was echoed:\n{screen}"
    );
    let generated: Vec<&str> = screen
        .lines()
        .filter_map(|l| l.trim().strip_prefix("✔ Password: "))
        .collect();
    assert_eq!(generated.len(), 1, "shown once:\n{screen}");
    let password = generated[0].trim();
    assert!(password.len() >= 32, "{password:?}");
    // The generated password is the one that encrypts the CA keys.
    let key = std::fs::read(home.join("secrets/intermediate_ca_key")).unwrap();
    mayfly_pki::keyfile::decode_private_key_pem(&key, Some(password.as_bytes()))
        .expect("the generated password decrypts the intermediate key");

    // Without a terminal, a missing value names its flag.
    let other = tmp.path().join("other");
    mayfly_err(&other, tmp.path(), &["ca", "init"], "missing --name");
    mayfly_err(
        &other,
        tmp.path(),
        &[
            "ca",
            "init",
            "--name",
            "Acme",
            "--dns",
            "localhost",
            "--address",
            ":9000",
            "--provisioner",
            "ops",
        ],
        "no terminal to ask for a password for your CA keys and first provisioner: pass \
         --password-file FILE",
    );
}

/// Adds a provisioner to the dev CA's ca.json and reloads it.
fn add_provisioner(setup: &Setup, args: &[&str]) {
    let config = setup.ca_config();
    let mut all = vec!["ca", "provisioner", "add"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--ca-config", config.to_str().unwrap()]);
    mayfly_ok(&setup.home, setup.work(), &all);
}

/// Reloads the dev CA and waits until it lists `name`.
fn reload_until_listed(setup: &Setup, name: &str) {
    setup.server.signal("HUP");
    let start = Instant::now();
    loop {
        let list = mayfly_ok(&setup.home, setup.work(), &["ca", "provisioner", "list"]);
        if list.contains(&format!("\"{name}\"")) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{name} never listed: {list}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_provisioner_picker_lists_only_provisioners_that_can_make_tokens() {
    let test = "the_provisioner_picker_lists_only_provisioners_that_can_make_tokens";
    let setup = Setup::new();
    let work = setup.work();
    support::write_secret(work.join("second-pw.txt"), "second password");
    add_provisioner(
        &setup,
        &[
            "second@acme.test",
            "--create",
            "--password-file",
            work.join("second-pw.txt").to_str().unwrap(),
        ],
    );
    add_provisioner(&setup, &["acme", "--type", "ACME"]);
    // A JWK provisioner whose private key the CA does not hold cannot make tokens here.
    let jwk = mayfly_pki::jose::jwk::Jwk::public_from_key(
        &mayfly_pki::PrivateKey::generate(mayfly_pki::KeyAlgorithm::EcP256).unwrap(),
    )
    .unwrap();
    std::fs::write(work.join("public.json"), serde_json::to_vec(&jwk).unwrap()).unwrap();
    add_provisioner(
        &setup,
        &[
            "public-only",
            "--public-key",
            work.join("public.json").to_str().unwrap(),
        ],
    );
    reload_until_listed(&setup, "public-only");

    // No terminal: the usable ones are named, with the flag that chooses.
    let line = mayfly_err(
        &setup.home,
        work,
        &[
            "ca",
            "token",
            "svc.internal",
            "--provisioner-password-file",
            "second-pw.txt",
        ],
        "--provisioner NAME",
    );
    assert!(line.contains("dev, second@acme.test"), "{line}");
    assert!(
        !line.contains("public-only") && !line.contains("acme)"),
        "{line}"
    );

    let Some(terminal) = setup.terminal(test, &["ca", "token", "svc.internal"]) else {
        return;
    };
    let screen = terminal.wait_for("Choose one [1-2]:");
    assert!(
        screen.contains("Which provisioner do you want to use?"),
        "{screen}"
    );
    assert!(screen.contains("1) dev (JWK) [kid: "), "{screen}");
    assert!(
        screen.contains("2) second@acme.test (JWK) [kid: "),
        "{screen}"
    );
    assert!(
        !screen.contains("public-only") && !screen.contains("ACME"),
        "{screen}"
    );
    terminal.type_line("3");
    terminal.wait_for("\"3\" is not a number from 1 to 2.");
    terminal.type_line("2");
    terminal.wait_for("Please enter the password to decrypt the provisioner key:");
    terminal.type_line("second password");
    let (status, screen) = terminal.wait_exit();
    assert_eq!(status, 0, "{screen}");
    assert!(
        screen.contains("✔ Provisioner: second@acme.test (JWK)"),
        "{screen}"
    );
    let token = screen
        .lines()
        .find(|l| l.starts_with("eyJ"))
        .unwrap_or_else(|| panic!("no token on the screen:\n{screen}"));
    let payload = token.split('.').nth(1).unwrap();
    use base64::Engine as _;
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["iss"], "second@acme.test");
}

#[test]
fn ca_certificate_asks_before_overwriting_and_refuses_without_a_terminal() {
    let test = "ca_certificate_asks_before_overwriting_and_refuses_without_a_terminal";
    let setup = Setup::new();
    let work = setup.work();
    setup.certificate("svc");
    let before = std::fs::read(work.join("svc.crt")).unwrap();
    let args = [
        "ca",
        "certificate",
        "svc.internal",
        "svc.crt",
        "svc.key",
        "--provisioner-password-file",
        setup.password_file(),
    ];
    mayfly_err(
        &setup.home,
        work,
        &args,
        "svc.crt already exists: use --force",
    );

    let Some(terminal) = setup.terminal(test, &args) else {
        return;
    };
    terminal.wait_for("Would you like to overwrite svc.crt [y/n]:");
    terminal.type_line("maybe");
    terminal.wait_for("Please answer y or n.");
    terminal.type_line("y");
    terminal.wait_for("Would you like to overwrite svc.key [y/n]:");
    terminal.type_line("n");
    let (status, screen) = terminal.wait_exit();
    assert_ne!(status, 0, "{screen}");
    assert!(
        screen.contains("mayfly: error: svc.key already exists and was not overwritten"),
        "{screen}"
    );
    assert_eq!(
        std::fs::read(work.join("svc.crt")).unwrap(),
        before,
        "nothing is written when one answer is no"
    );
    drop(terminal);

    let terminal = setup.terminal(test, &args).unwrap();
    terminal.wait_for("Would you like to overwrite svc.crt [y/n]:");
    terminal.type_line("yes");
    terminal.wait_for("Would you like to overwrite svc.key [y/n]:");
    terminal.type_line("y");
    let (status, screen) = terminal.wait_exit();
    assert_eq!(status, 0, "{screen}");
    assert_ne!(std::fs::read(work.join("svc.crt")).unwrap(), before);
}

#[test]
fn every_command_that_decrypts_a_provisioner_key_names_provisioner_password_file() {
    let setup = Setup::new();
    let (home, work) = (&setup.home, setup.work());
    let flag = "pass --provisioner-password-file FILE";
    mayfly_err(home, work, &["ca", "token", "svc.internal"], flag);
    mayfly_err(
        home,
        work,
        &["ca", "certificate", "a.internal", "a.crt", "a.key"],
        flag,
    );
    let csr = [
        "certificate",
        "create",
        "--csr",
        "b.internal",
        "b.csr",
        "b.key",
    ];
    mayfly_ok(
        home,
        work,
        &[&csr[..], &["--no-password", "--insecure"]].concat(),
    );
    mayfly_err(home, work, &["ca", "sign", "b.csr", "b.crt"], flag);
    mayfly_err(home, work, &["ca", "revoke", "1234"], flag);
    mayfly_err(home, work, &["ca", "certificates", "list"], flag);
    mayfly_err(home, work, &["ca", "audit"], flag);
    mayfly_err(
        home,
        work,
        &[
            "ssh",
            "certificate",
            "alice",
            "id_ecdsa",
            "--no-password",
            "--insecure",
        ],
        flag,
    );
    mayfly_err(home, work, &["ssh", "revoke", "1234"], flag);
    mayfly_err(home, work, &["ca", "certificates", "export"], flag);
    // `ssh login` with a JWK provisioner asks for the password once an agent is there to take
    // the key (without one it stops before, naming SSH_AUTH_SOCK).
    let test = "every_command_that_decrypts_a_provisioner_key_names_provisioner_password_file";
    if mayfly_testkit::program(test, "ssh-agent", "openssh-client").is_some() {
        let socket = work.join("agent.sock");
        let mut agent = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = Command::new(support::client_bin())
            .args(["ssh", "login", "alice"])
            .env("MAYFLY_PATH", home)
            .env("SSH_AUTH_SOCK", &socket)
            .current_dir(work)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let _ = agent.kill();
        let _ = agent.wait();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains(flag),
            "ssh login: {stderr}"
        );
    }

    // `ca token` takes step's --password-file too, as the same flag.
    for name in ["--provisioner-password-file", "--password-file"] {
        let token = mayfly_ok(
            home,
            work,
            &["ca", "token", "svc.internal", name, setup.password_file()],
        );
        assert!(token.starts_with("eyJ"), "{name}: {token}");
    }
}

#[test]
fn a_closed_pipe_ends_any_command_quietly() {
    let setup = Setup::new();
    setup.certificate("svc");
    let client = support::client_bin();
    let server = support::server_bin();
    let password = setup.password_file().to_string();
    let cases: Vec<(&Path, Vec<&str>)> = vec![
        (&client, vec!["ca", "roots"]),
        (&client, vec!["ca", "root"]),
        (&client, vec!["ca", "provisioner", "list"]),
        (&client, vec!["ca", "health"]),
        (
            &client,
            vec![
                "ca",
                "token",
                "svc.internal",
                "--provisioner-password-file",
                &password,
            ],
        ),
        (&client, vec!["ca", "crl"]),
        (&client, vec!["certificate", "inspect", "svc.crt"]),
        (&client, vec!["certificate", "fingerprint", "svc.crt"]),
        (&client, vec!["path"]),
        (&client, vec!["version"]),
        (&client, vec!["completion", "bash"]),
        (&client, vec!["--help"]),
        (&client, vec!["--version"]),
        (&server, vec!["--help"]),
        (&server, vec!["--version"]),
    ];
    for (program, args) in cases {
        let out = Command::new(program)
            .args(&args)
            .env("MAYFLY_PATH", &setup.home)
            .current_dir(setup.work())
            .stdin(Stdio::null())
            .stdout(support::closed_pipe())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {:?} {stderr}", out.status);
        assert!(
            !stderr.contains("panicked") && !stderr.contains("error"),
            "{args:?}: {stderr}"
        );
    }

    // The server keeps serving when nobody reads what it prints.
    let tmp = tempfile::tempdir().unwrap();
    let port = support::free_port();
    let mut dev = Command::new(&server)
        .args(["dev", "--dir"])
        .arg(tmp.path().join("ca"))
        .args(["--address", &format!("127.0.0.1:{port}")])
        .env("MAYFLY_PATH", tmp.path().join("home"))
        .env("MAYFLY_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(support::closed_pipe())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let root = tmp.path().join("ca/certs/root_ca.crt");
    let start = Instant::now();
    let healthy = loop {
        let out = mayfly(
            &tmp.path().join("home"),
            tmp.path(),
            &[
                "ca",
                "health",
                "--ca-url",
                &format!("https://127.0.0.1:{port}"),
                "--root",
                root.to_str().unwrap(),
            ],
        );
        if out.status.success() || start.elapsed() > Duration::from_secs(30) {
            break out.status.success();
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let running = dev.try_wait().unwrap().is_none();
    let _ = dev.kill();
    let out = dev.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(healthy && running, "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn errors_name_the_wrong_file_not_the_transport() {
    let setup = Setup::new();
    let (home, work) = (&setup.home, setup.work());
    setup.certificate("svc");
    setup.certificate("other");

    // A key that is not the certificate's.
    let line = mayfly_err(
        home,
        work,
        &["ca", "renew", "svc.crt", "other.key", "--force"],
        "",
    );
    assert!(
        line.contains("svc.crt and other.key do not match"),
        "{line}"
    );
    let line = mayfly_err(
        home,
        work,
        &["ca", "rekey", "svc.crt", "other.key", "--force"],
        "",
    );
    assert!(
        line.contains("svc.crt and other.key do not match"),
        "{line}"
    );
    let line = mayfly_err(
        home,
        work,
        &["ca", "revoke", "--cert", "svc.crt", "--key", "other.key"],
        "",
    );
    assert!(
        line.contains("svc.crt and other.key do not match"),
        "{line}"
    );

    // A certificate from another CA (a second dev CA).
    let other = Setup::new();
    other.certificate("foreign");
    for file in ["foreign.crt", "foreign.key"] {
        std::fs::copy(other.work().join(file), work.join(file)).unwrap();
    }
    for args in [
        &["ca", "renew", "foreign.crt", "foreign.key", "--force"][..],
        &["ca", "rekey", "foreign.crt", "foreign.key", "--force"],
        &[
            "ca",
            "revoke",
            "--cert",
            "foreign.crt",
            "--key",
            "foreign.key",
        ],
    ] {
        let line = mayfly_err(home, work, args, "foreign.crt was not issued by this CA");
        assert!(!line.contains("TLS") && !line.contains("reach"), "{line}");
    }

    // A fingerprint that is not one is a local mistake, not the CA's answer.
    let line = mayfly_err(
        &work.join("fresh"),
        work,
        &[
            "ca",
            "bootstrap",
            "--ca-url",
            &setup.dev.url,
            "--fingerprint",
            "9dc3",
        ],
        "\"9dc3\" is not a SHA-256 fingerprint",
    );
    assert!(!line.contains("unexpected response"), "{line}");

    // A token the CA would refuse as too long-lived is refused before the password is asked.
    let line = mayfly_err(
        home,
        work,
        &["ca", "token", "svc.internal", "--not-after", "2h"],
        "--not-after 2h",
    );
    assert!(line.contains("at most 60 minutes"), "{line}");
    mayfly_ok(
        home,
        work,
        &[
            "ca",
            "token",
            "svc.internal",
            "--not-after",
            "1h",
            "--provisioner-password-file",
            setup.password_file(),
        ],
    );
}

#[test]
fn a_cause_is_printed_once() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    support::write_secret(tmp.path().join("pw.txt"), "a long CA password");
    init_pki(&home, tmp.path(), &tmp.path().join("pw.txt"), "127.0.0.1:0");
    std::fs::write(home.join("db/mayfly.db"), "not a database").unwrap();
    let config = home.join("config/ca.json");
    for (program, args) in [
        (
            support::server_bin(),
            vec!["db", "check", config.to_str().unwrap()],
        ),
        (
            support::client_bin(),
            vec![
                "ca",
                "audit",
                "--offline",
                "--ca-config",
                config.to_str().unwrap(),
            ],
        ),
    ] {
        let out = Command::new(program)
            .args(&args)
            .env("MAYFLY_PATH", &home)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert_eq!(
            stderr.matches("file is not a database").count(),
            1,
            "{stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        support::assert_said_once(stderr.trim());
    }
}

#[test]
fn version_completion_and_man_pages() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let version = mayfly_ok(&home, tmp.path(), &["version"]);
    let commit = version
        .split("(commit ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap_or_else(|| panic!("{version}"));
    assert!(
        version.starts_with(&format!("mayfly {} (commit ", env!("CARGO_PKG_VERSION"))),
        "{version}"
    );
    let server = Command::new(support::server_bin())
        .arg("--version")
        .output()
        .unwrap();
    let server = String::from_utf8_lossy(&server.stdout).trim().to_string();
    let server_commit = server
        .strip_prefix(&format!("mayfly-ca {} (commit ", env!("CARGO_PKG_VERSION")))
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{server}"));
    // Built from this checkout: each names a commit of it (built from a tarball without git,
    // "unknown"). The two may differ when only one was rebuilt since the last commit.
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .is_ok_and(|out| out.status.success())
    };
    let in_git = git(&["rev-parse", "--git-dir"]);
    for commit in [commit, server_commit] {
        if !in_git {
            assert_eq!(commit, "unknown");
            continue;
        }
        assert!(
            commit.len() == 12 && commit.bytes().all(|b| b.is_ascii_hexdigit()),
            "{commit:?}"
        );
        assert!(
            git(&["cat-file", "-e", &format!("{commit}^{{commit}}")]),
            "{commit} is not a commit of this checkout"
        );
    }

    for shell in ["bash", "zsh", "fish", "powershell"] {
        let script = mayfly_ok(&home, tmp.path(), &["completion", shell]);
        assert!(script.contains("mayfly"), "{shell}");
        assert!(script.contains("provisioner-password-file"), "{shell}");
    }
    let bash = mayfly_ok(&home, tmp.path(), &["completion", "bash"]);
    std::fs::write(tmp.path().join("mayfly.bash"), &bash).unwrap();
    let (ok, text) = support::run("bash", &["-n", "mayfly.bash"], tmp.path());
    assert!(ok, "{text}");
    mayfly_err(
        &home,
        tmp.path(),
        &["completion", "tcsh"],
        "invalid value 'tcsh'",
    );

    // A page per command, in section 1 for the client and 8 for the server.
    mayfly_ok(&home, tmp.path(), &["man", "man1"]);
    let out = Command::new(support::server_bin())
        .args(["man", "man8"])
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (program, dir, section, name) in [
        (support::client_bin(), "man1", "1", "mayfly"),
        (support::server_bin(), "man8", "8", "mayfly-ca"),
    ] {
        let paths = support::command_paths(&program);
        assert!(paths.len() > 3, "{paths:?}");
        for path in paths {
            let mut page = name.to_string();
            for part in &path {
                page.push('-');
                page.push_str(part);
            }
            let file = tmp.path().join(dir).join(format!("{page}.{section}"));
            let text = std::fs::read_to_string(&file)
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            assert!(text.starts_with(".ie \\n(.g .ds Aq"), "{}", file.display());
            assert!(
                text.contains(&format!(".TH {page} {section}")),
                "{}",
                file.display()
            );
        }
    }
    // Rendered by man(1) where it is installed (it is not a peer the tests require).
    if Command::new("man")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        let out = Command::new("man")
            .args(["-l", "man1/mayfly-ca-token.1"])
            .env("MANWIDTH", "100")
            .current_dir(tmp.path())
            .output()
            .unwrap();
        let page = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{page}");
        assert!(page.contains("--provisioner-password-file"), "{page}");
    }
}

/// `.ci/release` packs what a user installs: both binaries, a man page for every command of
/// each, the four completion files, the README and docs. Run here on stripped copies of the
/// binaries this test run built (`MAYFLY_RELEASE_BIN_DIR`; the release profile strips too), so
/// that no release build is needed and the archive stays small enough to pack in seconds.
#[test]
fn the_release_archive_holds_binaries_man_pages_and_completions() {
    let test = "the_release_archive_holds_binaries_man_pages_and_completions";
    if mayfly_testkit::program(test, "strip", "binutils").is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (bin, dist) = (tmp.path().join("bin"), tmp.path().join("dist"));
    std::fs::create_dir_all(&bin).unwrap();
    for (name, built) in [
        ("mayfly", support::client_bin()),
        ("mayfly-ca", support::server_bin()),
    ] {
        let out = bin.join(name);
        let (ok, text) = support::run(
            "strip",
            &["-o", out.to_str().unwrap(), built.to_str().unwrap()],
            tmp.path(),
        );
        assert!(ok, "strip {name}: {text}");
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new("bash")
        .arg(repo.join(".ci/release"))
        .env("MAYFLY_RELEASE_BIN_DIR", &bin)
        .env("MAYFLY_RELEASE_DIST", &dist)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let archive = PathBuf::from(stdout.lines().last().unwrap_or_default().trim());
    let name = format!("mayfly-{}-", env!("CARGO_PKG_VERSION"));
    assert!(
        archive.starts_with(&dist)
            && archive
                .file_name()
                .and_then(|f| f.to_str())
                .is_some_and(|f| f.starts_with(&name) && f.ends_with(".tar.gz")),
        "{stdout}"
    );
    let (ok, listing) = support::run("tar", &["-tzf", archive.to_str().unwrap()], tmp.path());
    assert!(ok, "{listing}");
    let top = archive
        .file_name()
        .and_then(|f| f.to_str())
        .and_then(|f| f.strip_suffix(".tar.gz"))
        .unwrap()
        .to_string();
    let entries: std::collections::BTreeSet<String> = listing
        .lines()
        .filter_map(|l| l.strip_prefix(&format!("{top}/")))
        .map(str::to_string)
        .collect();
    let mut expected = vec![
        "bin/mayfly".to_string(),
        "bin/mayfly-ca".to_string(),
        "completions/mayfly.bash".to_string(),
        "completions/_mayfly".to_string(),
        "completions/mayfly.fish".to_string(),
        "completions/_mayfly.ps1".to_string(),
        "README.md".to_string(),
        "docs/cli.md".to_string(),
    ];
    for (program, section, name) in [
        (support::client_bin(), "1", "mayfly"),
        (support::server_bin(), "8", "mayfly-ca"),
    ] {
        let paths = support::command_paths(&program);
        assert!(paths.len() > 3, "{paths:?}");
        for path in paths {
            let page = std::iter::once(name.to_string())
                .chain(path)
                .collect::<Vec<_>>()
                .join("-");
            expected.push(format!("man/man{section}/{page}.{section}"));
        }
    }
    let absent: Vec<&String> = expected.iter().filter(|e| !entries.contains(*e)).collect();
    assert!(
        absent.is_empty(),
        "not in {}: {absent:?}",
        archive.display()
    );

    // What was packed is what was given, and it runs.
    let (ok, text) = support::run(
        "tar",
        &[
            "-xzf",
            archive.to_str().unwrap(),
            "-C",
            tmp.path().to_str().unwrap(),
        ],
        tmp.path(),
    );
    assert!(ok, "{text}");
    let unpacked = tmp.path().join(&top);
    for name in ["mayfly", "mayfly-ca"] {
        assert!(
            std::fs::read(unpacked.join("bin").join(name)).unwrap()
                == std::fs::read(bin.join(name)).unwrap(),
            "bin/{name} is not the binary given"
        );
    }
    let (ok, version) = support::run(
        unpacked.join("bin/mayfly").to_str().unwrap(),
        &["version"],
        tmp.path(),
    );
    assert!(ok && version.starts_with("mayfly "), "{version}");
    for file in ["mayfly.bash", "_mayfly", "mayfly.fish", "_mayfly.ps1"] {
        let script = std::fs::read_to_string(unpacked.join("completions").join(file)).unwrap();
        assert!(script.contains("provisioner-password-file"), "{file}");
    }
}

/// Release binaries carry no debug info: the release profile strips it (or splits it out).
#[test]
fn release_binaries_carry_no_debug_info() {
    let manifest =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.toml")).unwrap();
    let release = manifest
        .split("\n[profile.release]\n")
        .nth(1)
        .and_then(|rest| rest.split("\n[").next())
        .expect("a [profile.release] section in Cargo.toml");
    let settings: Vec<String> = release
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").replace(' ', ""))
        .filter(|l| !l.is_empty())
        .collect();
    let stripped = settings
        .iter()
        .any(|l| ["strip=\"debuginfo\"", "strip=\"symbols\"", "strip=true"].contains(&l.as_str()));
    let split = settings.iter().any(|l| l.starts_with("split-debuginfo="));
    assert!(stripped || split, "[profile.release]: {settings:?}");
    // Where a release build is at hand, it holds no DWARF (no .debug_info section name).
    let release_bin = support::server_bin()
        .parent()
        .and_then(Path::parent)
        .map(|target| target.join("release/mayfly-ca"));
    if let Some(bin) = release_bin.filter(|b| b.exists()) {
        let bytes = std::fs::read(&bin).unwrap();
        assert!(
            !bytes.windows(12).any(|w| w == b".debug_info\0"),
            "{} carries debug info: rebuild it with `cargo build --release`",
            bin.display()
        );
    }
}
