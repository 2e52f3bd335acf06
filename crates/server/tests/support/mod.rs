//! End-to-end test support: start the real `mayfly-ca`, run the real `mayfly`, in temp dirs.
#![allow(dead_code)]

pub mod ca;
pub mod observed;
pub mod step;
pub mod terminal;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The `mayfly-ca` binary under test.
pub fn server_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_mayfly-ca"))
}

/// The `mayfly` client, built beside the server (`cargo build --workspace` builds both).
pub fn client_bin() -> PathBuf {
    let path = server_bin().with_file_name("mayfly");
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace` before the tests",
        path.display()
    );
    path
}

/// Fails the test naming the Debian package when an external peer is missing.
pub fn require_tool(tool: &str, package: &str) {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .map(|o| o.status.success());
    assert!(
        found.unwrap_or(false),
        "{tool} is required: install the Debian package {package}"
    );
}

/// A running `mayfly-ca`, killed on drop.
pub struct Server {
    child: Child,
    pub lines: Vec<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts `mayfly-ca ARGS` and waits for a stdout line containing `ready_marker`.
    pub fn start(
        args: &[&str],
        mayfly_path: &Path,
        cwd: Option<&Path>,
        ready_marker: &str,
    ) -> Server {
        let options = ServerOptions {
            cwd,
            ..ServerOptions::default()
        };
        Server::start_with(args, mayfly_path, &options, ready_marker)
    }

    /// [`Server::start`] with an environment and a log file of the test's choosing.
    pub fn start_with(
        args: &[&str],
        mayfly_path: &Path,
        options: &ServerOptions<'_>,
        ready_marker: &str,
    ) -> Server {
        let mut command = Command::new(server_bin());
        command
            .args(args)
            .env("MAYFLY_PATH", mayfly_path)
            .env("MAYFLY_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped());
        for (name, value) in &options.env {
            command.env(name, value);
        }
        match options.log_file {
            Some(path) => {
                let file = std::fs::File::create(path).expect("creating the server's log file");
                command.stderr(file);
            }
            None => {
                command.stderr(Stdio::piped());
            }
        }
        if let Some(cwd) = options.cwd {
            command.current_dir(cwd);
        }
        let mut child = command.spawn().expect("starting mayfly-ca");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        if let Some(stderr) = child.stderr.take() {
            let err_tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    let _ = err_tx.send(Err(line));
                }
            });
        }
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(Ok(line));
            }
        });
        let mut lines = Vec::new();
        let mut errors = Vec::new();
        loop {
            match rx.recv_timeout(Duration::from_secs(30)) {
                Ok(Ok(line)) => {
                    let done = line.contains(ready_marker);
                    lines.push(line);
                    if done {
                        break;
                    }
                }
                Ok(Err(line)) => errors.push(line),
                Err(_) => {
                    let _ = child.kill();
                    let logged = options
                        .log_file
                        .and_then(|path| std::fs::read_to_string(path).ok())
                        .unwrap_or_default();
                    panic!(
                        "mayfly-ca did not print {ready_marker:?}; stdout: {lines:?}; stderr: {errors:?}{logged}"
                    );
                }
            }
        }
        Server { child, lines }
    }

    /// Starts dev mode in `dir` on a free port.
    pub fn dev(dir: &Path, mayfly_path: &Path) -> (Server, DevInfo) {
        let dir_text = dir.join("ca");
        let server = Server::start(
            &[
                "dev",
                "--dir",
                dir_text.to_str().unwrap(),
                "--address",
                "127.0.0.1:0",
            ],
            mayfly_path,
            None,
            "Press Ctrl-C to stop.",
        );
        let field = |label: &str| {
            server
                .lines
                .iter()
                .find_map(|l| l.trim().strip_prefix(label).map(|v| v.trim().to_string()))
                .unwrap_or_else(|| panic!("banner has no {label:?}: {:?}", server.lines))
        };
        let url = field("URL:");
        let fingerprint = field("Root fingerprint:");
        let password_file = dir_text.join("secrets/provisioner_password");
        let info = DevInfo {
            url,
            fingerprint,
            password_file,
            ca_dir: dir_text,
        };
        (server, info)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (a `kill` name: TERM, HUP) to the server.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Waits up to `timeout` for the server to exit; its exit status, or None if it still runs.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        // Looked at once at least, so a zero timeout asks whether it has exited already.
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server and waits for it.
    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How [`Server::start_with`] starts the server beyond its arguments.
#[derive(Debug, Default)]
pub struct ServerOptions<'a> {
    /// The working directory.
    pub cwd: Option<&'a Path>,
    /// Extra environment variables (MAYFLY_LOG is `warn` unless set here).
    pub env: Vec<(&'a str, String)>,
    /// Where stderr (the log) goes; discarded when `None`.
    pub log_file: Option<&'a Path>,
}

/// Writes a secret file (a password) readable by its owner only, as mayfly-ca requires.
pub fn write_secret(path: impl AsRef<Path>, contents: impl AsRef<[u8]>) {
    let path = path.as_ref();
    std::fs::write(path, contents).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// What dev mode printed.
pub struct DevInfo {
    pub url: String,
    pub fingerprint: String,
    pub password_file: PathBuf,
    pub ca_dir: PathBuf,
}

impl DevInfo {
    /// `mayfly ca bootstrap` of a fresh client directory against this dev CA.
    pub fn bootstrap(&self, client: &Path, work: &Path) {
        mayfly_ok(
            client,
            work,
            &[
                "ca",
                "bootstrap",
                "--ca-url",
                &self.url,
                "--fingerprint",
                &self.fingerprint,
            ],
        );
    }
}

/// Runs `mayfly ARGS` with `MAYFLY_PATH` in `cwd`.
pub fn mayfly(mayfly_path: &Path, cwd: &Path, args: &[&str]) -> Output {
    Command::new(client_bin())
        .args(args)
        .env("MAYFLY_PATH", mayfly_path)
        .env_remove("MAYFLY_CA_URL")
        .env_remove("MAYFLY_ROOT")
        .current_dir(cwd)
        .stdin(Stdio::null())
        .output()
        .expect("running mayfly")
}

/// Runs `mayfly ARGS` and asserts success; returns stdout.
pub fn mayfly_ok(mayfly_path: &Path, cwd: &Path, args: &[&str]) -> String {
    let out = mayfly(mayfly_path, cwd, args);
    assert!(
        out.status.success(),
        "mayfly {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `mayfly ARGS`, asserts failure with one line on stderr containing `expected`.
pub fn mayfly_err(mayfly_path: &Path, cwd: &Path, args: &[&str], expected: &str) -> String {
    let out = mayfly(mayfly_path, cwd, args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "mayfly {args:?} should fail; stderr: {stderr}"
    );
    // Our errors are one line; clap's usage errors start with "error:" and add usage lines.
    let line = stderr
        .lines()
        .find(|l| l.starts_with("mayfly: error: ") || l.starts_with("error: "))
        .unwrap_or_else(|| panic!("{args:?}: no error line in {stderr:?}"))
        .to_string();
    assert_said_once(&line);
    if line.starts_with("mayfly: error: ") {
        assert_eq!(
            stderr.lines().count(),
            stderr.lines().position(|l| l == line).unwrap_or(0) + 1,
            "{args:?}: {stderr}"
        );
    }
    assert!(
        stderr.contains(expected),
        "{args:?}: {stderr:?} should contain {expected:?}"
    );
    assert!(
        out.stdout.is_empty() || !args.contains(&"--help"),
        "{args:?}"
    );
    line
}

/// Fails when an error line says a part twice (`... file is not a database: file is not a
/// database`): each cause is printed once.
#[track_caller]
pub fn assert_said_once(line: &str) {
    let parts: Vec<&str> = line.split(": ").map(str::trim).collect();
    for (index, part) in parts.iter().enumerate() {
        assert!(
            part.len() < 8 || !parts[index + 1..].contains(part),
            "{part:?} is said twice in {line:?}"
        );
    }
}

/// `program ARGS --help`, as a new user sees it (no environment but PATH, so defaults from the
/// environment do not leak into the text).
pub fn help(program: &Path, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .arg("--help")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .expect("running --help");
    assert!(
        out.status.success(),
        "{} {args:?} --help",
        program.display()
    );
    String::from_utf8(out.stdout).expect("help is UTF-8")
}

/// Every command of `program`, as the argument paths that name it (`[]` for the program itself,
/// `["ca", "init"]`, ...), found through the "Commands:" sections of `--help`, recursively, so
/// a new command is found without being listed anywhere.
pub fn command_paths(program: &Path) -> Vec<Vec<String>> {
    fn walk(program: &Path, path: Vec<String>, all: &mut Vec<Vec<String>>) {
        let args: Vec<&str> = path.iter().map(String::as_str).collect();
        let text = help(program, &args);
        all.push(path.clone());
        let names: Vec<String> = text
            .lines()
            .skip_while(|l| *l != "Commands:")
            .skip(1)
            .take_while(|l| !l.trim().is_empty())
            // A command starts two spaces in; its description's continuation lines are deeper.
            .filter(|l| l.starts_with("  ") && !l[2..].starts_with(' '))
            .filter_map(|l| l.split_whitespace().next())
            .filter(|name| *name != "help")
            .map(str::to_string)
            .collect();
        for name in names {
            let mut sub = path.clone();
            sub.push(name);
            walk(program, sub, all);
        }
    }
    let mut all = Vec::new();
    walk(program, Vec::new(), &mut all);
    all
}

/// A pipe whose reading end is already closed, for a child's standard output: its first write
/// fails with EPIPE, as under `| head` once head has exited.
pub fn closed_pipe() -> Stdio {
    let mut reader = Command::new("true")
        .stdin(Stdio::piped())
        .spawn()
        .expect("running true");
    let writer = reader.stdin.take().expect("a pipe to true");
    reader.wait().expect("waiting for true");
    Stdio::from(writer)
}

/// The permission bits of a file.
pub fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Runs `openssl ARGS` in `cwd`, which must succeed; stdout and stderr.
pub fn openssl(args: &[&str], cwd: &Path) -> String {
    let (ok, text) = run("openssl", args, cwd);
    assert!(ok, "openssl {args:?}: {text}");
    text
}

/// The serial number of the certificate file `crt` (relative to `work`), decimal, as
/// `mayfly certificate inspect` tells it.
pub fn serial_of(client: &Path, work: &Path, crt: &str) -> String {
    let json = mayfly_ok(
        client,
        work,
        &["certificate", "inspect", crt, "--format", "json"],
    );
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    value["serial_number"].as_str().unwrap().to_string()
}

/// Asserts that openssl verifies the chain file `crt` (leaf first, relative to `work`) up to
/// `root`.
#[track_caller]
pub fn verify_chain(root: &Path, crt: &str, work: &Path) {
    let verified = openssl(
        &[
            "verify",
            "-CAfile",
            root.to_str().unwrap(),
            "-untrusted",
            crt,
            crt,
        ],
        work,
    );
    assert!(verified.contains(&format!("{crt}: OK")), "{verified}");
}

/// `mayfly ca certificate SUBJECT CRT KEY FLAGS...` with the provisioner's password in
/// `password_file`, which must succeed; its stdout.
pub fn ca_certificate(
    home: &Path,
    work: &Path,
    password_file: &str,
    [subject, crt, key]: [&str; 3],
    flags: &[&str],
) -> String {
    let mut args = vec!["ca", "certificate", subject, crt, key];
    args.extend_from_slice(flags);
    args.extend(["--provisioner-password-file", password_file]);
    mayfly_ok(home, work, &args)
}

/// `mayfly certificate create --csr SUBJECT CSR KEY FLAGS...` with the key in clear, which must
/// succeed.
pub fn create_csr(home: &Path, work: &Path, [subject, csr, key]: [&str; 3], flags: &[&str]) {
    let mut args = vec![
        "certificate",
        "create",
        "--csr",
        subject,
        csr,
        key,
        "--no-password",
        "--insecure",
    ];
    args.extend_from_slice(flags);
    mayfly_ok(home, work, &args);
}

/// Runs a command and returns (success, stdout + stderr).
pub fn run(program: &str, args: &[&str], cwd: &Path) -> (bool, String) {
    let out = Command::new(program)
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A port free on every address and below the kernel's ephemeral range, for a server that gives
/// its port up and takes it again: an ephemeral port may be taken meanwhile by any process's
/// outgoing connection. The port above it is free too (see [`free_port`]).
pub fn free_port_outside_ephemeral() -> u16 {
    mayfly_testkit::free_port_pair()
}

/// A free TCP port on 127.0.0.1, and the one above it free too: `ca init --address` puts the
/// plain-HTTP listener on the next port, and a CA that could not bind it would not start.
pub fn free_port() -> u16 {
    mayfly_testkit::free_port_pair()
}

/// Asserts that a request was refused as a row of a table of bad credentials says: with
/// `status`, and a JSON body whose `status` is the same and whose `message` contains `message`.
#[track_caller]
pub fn assert_refused(row: &str, got: (u16, &serde_json::Value), status: u16, message: &str) {
    let (got, body) = got;
    assert_eq!(got, status, "{row}: {body}");
    assert_eq!(
        body["status"].as_u64(),
        Some(u64::from(status)),
        "{row}: {body}"
    );
    let text = body["message"].as_str().unwrap_or_default();
    assert!(
        text.contains(message),
        "{row}: {text:?} should contain {message:?}"
    );
}
