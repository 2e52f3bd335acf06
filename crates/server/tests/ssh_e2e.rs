//! SSH certificates against real OpenSSH: a CA made by `mayfly ca init --ssh`, a real sshd on
//! a loopback port configured only from `mayfly ssh config` output and a mayfly host
//! certificate, and the real `ssh`, `ssh-keygen`, `ssh-agent` and `ssh-add`.

mod support;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::{Server, client_bin, free_port};

const SSHD: &str = "/usr/sbin/sshd";

/// sshd must run as root (privilege separation); the CI runs the tests as root.
fn sshd_usable() -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    if !Path::new(SSHD).exists() || !root {
        eprintln!(
            "skipping: needs {SSHD} (Debian package openssh-server) and root; .ci/run provides both"
        );
        return false;
    }
    true
}

/// Kills a child process on drop (sshd, ssh-agent), by its own handle.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Env {
    home: PathBuf,
    work: PathBuf,
    password_file: PathBuf,
}

impl Env {
    fn mayfly_with(&self, args: &[&str], env: &[(&str, &Path)]) -> Output {
        let mut command = Command::new(client_bin());
        command
            .args(args)
            .env("MAYFLY_PATH", &self.home)
            .env_remove("MAYFLY_CA_URL")
            .env_remove("MAYFLY_ROOT")
            .env_remove("SSH_AUTH_SOCK")
            .current_dir(&self.work)
            .stdin(Stdio::null());
        for (name, value) in env {
            command.env(name, value);
        }
        command.output().expect("running mayfly")
    }

    fn mayfly(&self, args: &[&str]) -> String {
        let out = self.mayfly_with(args, &[]);
        assert!(
            out.status.success(),
            "mayfly {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn mayfly_fails(&self, args: &[&str], expected: &str) {
        let out = self.mayfly_with(args, &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "mayfly {args:?} should fail");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }

    fn path(&self, name: &str) -> PathBuf {
        self.work.join(name)
    }

    fn pw(&self) -> &str {
        self.password_file.to_str().unwrap()
    }

    /// A user certificate for `principal` with a fresh unencrypted key at `name`.
    fn user_certificate(&self, name: &str, principal: &str, extra: &[&str]) {
        let mut args = vec![
            "ssh",
            "certificate",
            principal,
            name,
            "--principal",
            principal,
            "--no-password",
            "--insecure",
            "--provisioner-password-file",
            self.pw(),
        ];
        args.extend_from_slice(extra);
        self.mayfly(&args);
    }

    fn serial(&self, cert: &str) -> String {
        let json = self.mayfly(&["ssh", "inspect", cert, "--format", "json"]);
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        value["serial"].as_str().unwrap().to_string()
    }
}

fn keygen_list(path: &Path) -> String {
    let out = Command::new("ssh-keygen")
        .env("TZ", "UTC")
        .arg("-L")
        .arg("-f")
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ssh-keygen -L {}: {out:?}",
        path.display()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `ssh root@127.0.0.1 echo` with only the given identity and the known_hosts file; returns
/// (logged in, output).
fn login(
    env: &Env,
    port: u16,
    user: &str,
    identity: Option<&Path>,
    agent: Option<&Path>,
) -> (bool, String) {
    login_trusting(env, "known_hosts", port, user, identity, agent)
}

fn login_trusting(
    env: &Env,
    known_hosts: &str,
    port: u16,
    user: &str,
    identity: Option<&Path>,
    agent: Option<&Path>,
) -> (bool, String) {
    let mut command = Command::new("ssh");
    command
        .args(["-F", "/dev/null", "-p", &port.to_string()])
        .args(["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"])
        .args(["-o", "GlobalKnownHostsFile=/dev/null"])
        .arg("-o")
        .arg(format!(
            "UserKnownHostsFile={}",
            env.path(known_hosts).display()
        ))
        .args(["-o", "ConnectTimeout=10"])
        .env("HOME", &env.work)
        .env_remove("SSH_AUTH_SOCK");
    match (identity, agent) {
        (Some(key), _) => {
            command
                .args(["-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-i"])
                .arg(key);
        }
        (None, Some(socket)) => {
            command
                .arg("-o")
                .arg(format!("IdentityAgent={}", socket.display()));
        }
        (None, None) => {}
    }
    let out = command
        .arg(format!("{user}@127.0.0.1"))
        .arg("echo mayfly-login-ok")
        .stdin(Stdio::null())
        .output()
        .expect("running ssh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (
        out.status.success() && text.contains("mayfly-login-ok"),
        text,
    )
}

fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "sshd did not listen on {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn sshd_accepts_mayfly_certificates_and_enforces_principals_expiry_and_the_krl() {
    if !sshd_usable() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let env = Env {
        home: tmp.path().join("home"),
        work: tmp.path().join("work"),
        password_file: tmp.path().join("password"),
    };
    std::fs::create_dir_all(&env.work).unwrap();
    support::write_secret(&env.password_file, "correct horse battery staple\n");

    // The CA: init --ssh prints the lines hosts and clients need.
    let ca_port = free_port();
    let address = format!("127.0.0.1:{ca_port}");
    let init = env.mayfly(&[
        "ca",
        "init",
        "--ssh",
        "--name",
        "SSH Test",
        "--dns",
        "127.0.0.1",
        "--address",
        &address,
        "--provisioner",
        "admin",
        "--password-file",
        env.pw(),
    ]);
    let user_ca_line = std::fs::read_to_string(env.home.join("certs/ssh_user_ca_key.pub")).unwrap();
    let host_ca_line = std::fs::read_to_string(env.home.join("certs/ssh_host_ca_key.pub")).unwrap();
    assert!(init.contains(user_ca_line.trim()), "{init}");
    assert!(
        init.contains(&format!("@cert-authority * {}", host_ca_line.trim())),
        "{init}"
    );
    for key in ["ssh_user_ca_key", "ssh_host_ca_key"] {
        let pem = std::fs::read_to_string(env.home.join("secrets").join(key)).unwrap();
        assert!(
            pem.contains("BEGIN ENCRYPTED PRIVATE KEY"),
            "{key} is encrypted at rest"
        );
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(env.home.join("secrets").join(key))
                .unwrap()
                .permissions(),
        );
        assert_eq!(mode & 0o777, 0o600, "{key}");
    }
    // Short user certificates, so that one can expire during the test.
    let ca_json = env.home.join("config/ca.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&ca_json).unwrap()).unwrap();
    config["authority"]["provisioners"][0]["claims"]["minUserSSHCertDuration"] = "2s".into();
    std::fs::write(&ca_json, config.to_string()).unwrap();
    let _ca = Server::start(
        &[ca_json.to_str().unwrap(), "--password-file", env.pw()],
        &env.home,
        None,
        "serving on",
    );

    // The host: its certificate, and sshd configured from `mayfly ssh config --host`.
    env.mayfly(&[
        "ssh",
        "certificate",
        "localhost",
        "host_key",
        "--host",
        "--principal",
        "127.0.0.1",
        "--principal",
        "localhost",
        "--no-password",
        "--insecure",
        "--provisioner-password-file",
        env.pw(),
    ]);
    let host_listing = keygen_list(&env.path("host_key-cert.pub"));
    assert!(host_listing.contains("host certificate"), "{host_listing}");
    assert!(
        host_listing.contains("                127.0.0.1\n"),
        "{host_listing}"
    );
    let user_ca = env.mayfly(&["ssh", "config", "--roots"]);
    assert_eq!(user_ca.trim(), user_ca_line.trim());
    std::fs::write(env.path("user_ca.pub"), &user_ca).unwrap();
    env.mayfly(&["ssh", "krl", "--out", env.path("krl").to_str().unwrap()]);
    let sshd_lines = env.mayfly(&[
        "ssh",
        "config",
        "--host",
        "--set",
        &format!("HostKey={}", env.path("host_key").display()),
        "--set",
        &format!("TrustedUserCAKeys={}", env.path("user_ca.pub").display()),
        "--set",
        &format!("RevokedKeys={}", env.path("krl").display()),
    ]);
    assert!(sshd_lines.contains("HostCertificate "), "{sshd_lines}");
    let principals_dir = env.path("principals");
    std::fs::create_dir_all(&principals_dir).unwrap();
    // root may be entered by certificates for the principal alice only.
    std::fs::write(principals_dir.join("root"), "alice\n").unwrap();
    let sshd_port = free_port();
    let sshd_config = format!(
        "{sshd_lines}\
         Port {sshd_port}\nListenAddress 127.0.0.1\nPidFile {pid}\n\
         AuthorizedKeysFile none\nAuthorizedPrincipalsFile {principals}/%u\n\
         PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
         StrictModes no\nPermitRootLogin prohibit-password\nLogLevel VERBOSE\n",
        pid = env.path("sshd.pid").display(),
        principals = principals_dir.display(),
    );
    std::fs::write(env.path("sshd_config"), &sshd_config).unwrap();
    std::fs::create_dir_all("/run/sshd").unwrap();
    let check = Command::new(SSHD)
        .arg("-t")
        .arg("-f")
        .arg(env.path("sshd_config"))
        .output()
        .unwrap();
    assert!(check.status.success(), "sshd -t: {check:?}\n{sshd_config}");
    let _sshd = Reaped(
        Command::new(SSHD)
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(env.path("sshd_config"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting sshd"),
    );
    wait_for_port(sshd_port);

    // The client trusts hosts only through the @cert-authority line.
    let host_ca = env.mayfly(&["ssh", "config", "--host", "--roots"]);
    assert_eq!(host_ca.trim(), host_ca_line.trim());
    let known_hosts = env.mayfly(&["ssh", "config"]);
    assert_eq!(known_hosts, format!("@cert-authority * {host_ca}"));
    std::fs::write(env.path("known_hosts"), &known_hosts).unwrap();

    // alice logs in; no password, no host key prompt.
    env.user_certificate("alice_key", "alice", &[]);
    let listing = keygen_list(&env.path("alice_key-cert.pub"));
    assert!(listing.contains("user certificate"), "{listing}");
    assert!(listing.contains("                alice\n"), "{listing}");
    assert!(listing.contains("permit-pty"), "{listing}");
    let ours = env.mayfly(&["ssh", "inspect", "alice_key-cert.pub"]);
    for line in ["Key ID: \"alice\"", "user certificate", "permit-user-rc"] {
        assert!(ours.contains(line), "{ours}");
    }
    let (ok, text) = login(&env, sshd_port, "root", Some(&env.path("alice_key")), None);
    assert!(ok, "alice's certificate should log in: {text}");

    // An Ed25519 key, written in OpenSSH's own format, logs in too.
    env.user_certificate("alice_ed25519", "alice", &["--kty", "OKP"]);
    let (ok, text) = login(
        &env,
        sshd_port,
        "root",
        Some(&env.path("alice_ed25519")),
        None,
    );
    assert!(ok, "alice's Ed25519 certificate should log in: {text}");

    // bob's certificate does not open root, whose principals are alice's.
    env.user_certificate("bob_key", "bob", &[]);
    let (ok, text) = login(&env, sshd_port, "root", Some(&env.path("bob_key")), None);
    assert!(
        !ok && text.contains("Permission denied"),
        "bob must be refused: {text}"
    );

    // Trusting another CA (here the user CA) instead, the client refuses the host.
    std::fs::write(
        env.path("known_hosts_other"),
        format!("@cert-authority * {user_ca}"),
    )
    .unwrap();
    let (ok, text) = login_trusting(
        &env,
        "known_hosts_other",
        sshd_port,
        "root",
        Some(&env.path("alice_key")),
        None,
    );
    assert!(
        !ok && text.contains("Host key verification failed"),
        "an untrusted host must be refused: {text}"
    );

    // An expired certificate is refused.
    env.user_certificate("short_key", "alice", &["--not-after", "3s"]);
    std::thread::sleep(Duration::from_secs(4));
    let (ok, text) = login(&env, sshd_port, "root", Some(&env.path("short_key")), None);
    assert!(
        !ok && text.contains("Permission denied"),
        "expired must be refused: {text}"
    );

    // --add-to-agent: the agent holds key and certificate, and ssh logs in through it.
    let socket = env.path("agent.sock");
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
    let out = env.mayfly_with(
        &[
            "ssh",
            "certificate",
            "alice",
            "agent_key",
            "--principal",
            "alice",
            "--no-password",
            "--insecure",
            "--add-to-agent",
            "--provisioner-password-file",
            env.pw(),
        ],
        &[("SSH_AUTH_SOCK", &socket)],
    );
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("SSH Agent: yes"),
        "{out:?}"
    );
    let listed = Command::new("ssh-add")
        .arg("-l")
        .env("SSH_AUTH_SOCK", &socket)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&listed.stdout).contains("ECDSA-CERT"),
        "{listed:?}"
    );
    let (ok, text) = login(&env, sshd_port, "root", None, Some(&socket));
    assert!(ok, "login through the agent: {text}");

    // Revoked and written to the KRL: sshd refuses the certificate it accepted before.
    let serial = env.serial("alice_key-cert.pub");
    env.mayfly(&[
        "ssh",
        "revoke",
        &serial,
        "--reason",
        "laptop lost",
        "--provisioner-password-file",
        env.pw(),
    ]);
    env.mayfly(&["ssh", "krl", "--out", env.path("krl").to_str().unwrap()]);
    let query = Command::new("ssh-keygen")
        .arg("-Q")
        .arg("-f")
        .arg(env.path("krl"))
        .arg(env.path("alice_key-cert.pub"))
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&query.stdout).contains("REVOKED"),
        "{query:?}"
    );
    let (ok, text) = login(&env, sshd_port, "root", Some(&env.path("alice_key")), None);
    assert!(
        !ok && text.contains("Permission denied"),
        "revoked must be refused: {text}"
    );
    env.mayfly_fails(
        &[
            "ssh",
            "revoke",
            &serial,
            "--provisioner-password-file",
            env.pw(),
        ],
        "already revoked",
    );

    // The host renews with its key; once its certificate is revoked, it cannot.
    let old_serial = env.serial("host_key-cert.pub");
    env.mayfly(&["ssh", "renew", "host_key-cert.pub", "host_key", "--force"]);
    let new_serial = env.serial("host_key-cert.pub");
    assert_ne!(old_serial, new_serial);
    let renewed = keygen_list(&env.path("host_key-cert.pub"));
    assert!(renewed.contains("                127.0.0.1\n"), "{renewed}");
    env.mayfly(&[
        "ssh",
        "revoke",
        &new_serial,
        "--provisioner-password-file",
        env.pw(),
    ]);
    env.mayfly_fails(
        &["ssh", "renew", "host_key-cert.pub", "host_key", "--force"],
        "revoked",
    );

    // Rekey: a new host key and certificate, authorised by the old ones.
    env.mayfly(&[
        "ssh",
        "certificate",
        "web1",
        "web1_key",
        "--host",
        "--no-password",
        "--insecure",
        "--provisioner-password-file",
        env.pw(),
    ]);
    env.mayfly(&[
        "ssh",
        "rekey",
        "web1_key-cert.pub",
        "web1_key",
        "--out",
        "web1_new",
        "--no-password",
        "--insecure",
    ]);
    let rekeyed = keygen_list(&env.path("web1_new-cert.pub"));
    assert!(rekeyed.contains("Key ID: \"web1\""), "{rekeyed}");
    let new_pub = std::fs::read_to_string(env.path("web1_new.pub")).unwrap();
    let derived = Command::new("ssh-keygen")
        .arg("-y")
        .arg("-f")
        .arg(env.path("web1_new"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&derived.stdout)
            .split_whitespace()
            .nth(1),
        new_pub.split_whitespace().nth(1),
        "OpenSSH reads the new private key and it matches its .pub"
    );
    assert_eq!(env.mayfly(&["ssh", "check-host", "web1"]).trim(), "true");
    assert_eq!(env.mayfly(&["ssh", "check-host", "web9"]).trim(), "false");
}
