//! End to end: a real `mayfly-ca dev` server, loaded by `mayfly-bench sign`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const BENCH: &str = env!("CARGO_BIN_EXE_mayfly-bench");

/// The server binary, built by the mayfly-server package into the same directory.
fn server_binary() -> PathBuf {
    let path =
        Path::new(BENCH).with_file_name(format!("mayfly-ca{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is missing: build the server first with `cargo build -p mayfly-server` \
         (or `cargo build --workspace`)",
        path.display()
    );
    path
}

/// A running `mayfly-ca dev`, killed and cleaned up on drop (also when the test panics).
struct Server {
    child: Child,
    dir: PathBuf,
    url: String,
    password_file: PathBuf,
}

impl Server {
    fn start() -> Server {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir =
            std::env::temp_dir().join(format!("mayfly-bench-it-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let child = Command::new(server_binary())
            .arg("dev")
            .arg("--dir")
            .arg(dir.join("ca"))
            .args(["--address", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut server = Server {
            child,
            dir,
            url: String::new(),
            password_file: PathBuf::new(),
        };

        // Read the banner in a thread that then keeps draining stdout, so the server never
        // blocks on a full pipe.
        let stdout = server.child.stdout.take().unwrap();
        let (lines_tx, lines_rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = lines_tx.send(line);
            }
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let mut banner = Vec::new();
        while server.url.is_empty() || server.password_file.as_os_str().is_empty() {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = match lines_rx.recv_timeout(left) {
                Ok(line) => line,
                Err(e) => panic!("no complete banner from mayfly-ca dev ({e}); got: {banner:?}"),
            };
            if let Some(url) = line.trim().strip_prefix("URL:") {
                server.url = url.trim().to_string();
            }
            if let Some((_, rest)) = line.split_once("(password file: ")
                && let Some((path, _)) = rest.rsplit_once(')')
            {
                server.password_file = PathBuf::from(path);
            }
            banner.push(line);
        }
        server
    }

    fn root(&self) -> PathBuf {
        self.dir.join("ca").join("certs").join("root_ca.crt")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn signs_against_a_real_server() {
    let server = Server::start();
    assert!(
        server.url.starts_with("https://127.0.0.1:"),
        "URL {:?}",
        server.url
    );
    assert!(server.root().exists());
    let output = Command::new(BENCH)
        .args(["sign", "--ca-url", &server.url, "--root"])
        .arg(server.root())
        .arg("--password-file")
        .arg(&server.password_file)
        .args([
            "-n",
            "20",
            "-c",
            "4",
            "--pid",
            &server.child.id().to_string(),
            "--json",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "mayfly-bench failed: {stderr}\n{stdout}"
    );
    let report: serde_json::Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("not one JSON object ({e}): {stdout}"));
    assert_eq!(report["n"], 20, "{report}");
    assert_eq!(report["concurrency"], 4, "{report}");
    assert_eq!(report["successes"], 20, "{report}");
    assert_eq!(report["failures"], 0, "{report}");
    let cpu = report["server_cpu_us_per_cert"].as_f64();
    assert!(
        cpu.is_some_and(|us| us > 0.0),
        "server CPU per cert: {report}"
    );
    assert!(
        report["certs_per_second"].as_f64().is_some_and(|x| x > 0.0),
        "{report}"
    );
    let p50 = report["latency_p50_ms"].as_f64().unwrap_or(-1.0);
    let p99 = report["latency_p99_ms"].as_f64().unwrap_or(-1.0);
    let max = report["latency_max_ms"].as_f64().unwrap_or(-1.0);
    assert!(0.0 < p50 && p50 <= p99 && p99 <= max, "{report}");
    assert!(report["client_cpu_us_per_request"].is_number(), "{report}");
}

#[test]
fn unreachable_ca_is_a_one_line_error() {
    let dir = std::env::temp_dir().join(format!("mayfly-bench-it-err-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let root = dir.join("root.der");
    std::fs::write(&root, [0x30, 0x03, 0x02, 0x01, 0x01]).unwrap();
    let output = Command::new(BENCH)
        .args(["sign", "--ca-url", "http://127.0.0.1:1", "--root"])
        .arg(&root)
        .args(["-n", "1"])
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("mayfly-bench: "), "{stderr}");
}

#[test]
fn help_has_an_example() {
    let output = Command::new(BENCH)
        .args(["sign", "--help"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for flag in [
        "--ca-url",
        "--root",
        "--provisioner",
        "--provisioner-key",
        "--password-file",
        "--pid",
        "--json",
        "Example:",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
}

/// `mayfly ca init` plus an ACME provisioner validating http-01 on `http_port`, then
/// `mayfly-ca` on a free port; returns the server, its URL and the root.
fn start_acme_server(dir: &Path, http_port: u16) -> (Child, String, PathBuf) {
    let mayfly = Path::new(BENCH).with_file_name(format!("mayfly{}", std::env::consts::EXE_SUFFIX));
    assert!(
        mayfly.exists(),
        "{} missing: cargo build --workspace",
        mayfly.display()
    );
    let home = dir.join("mayfly");
    std::fs::write(dir.join("pw.txt"), "pw\n").unwrap();
    // mayfly-ca refuses a password file other users can read.
    std::fs::set_permissions(
        dir.join("pw.txt"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let run = |args: &[&str]| {
        let out = Command::new(&mayfly)
            .args(args)
            .env("MAYFLY_PATH", &home)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let address = format!("127.0.0.1:{port}");
    run(&[
        "ca",
        "init",
        "--name",
        "Bench",
        "--dns",
        "127.0.0.1",
        "--address",
        &address,
        "--provisioner",
        "admin",
        "--password-file",
        "pw.txt",
    ]);
    run(&["ca", "provisioner", "add", "acme", "--type", "ACME"]);
    let config_path = home.join("config/ca.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&config_path).unwrap()).unwrap();
    for provisioner in config["authority"]["provisioners"].as_array_mut().unwrap() {
        if provisioner["name"] == "acme" {
            provisioner["insecureHttp01Port"] = http_port.into();
            provisioner["insecureValidationAddress"] = "127.0.0.1".into();
        }
    }
    std::fs::write(&config_path, config.to_string()).unwrap();
    let mut child = Command::new(server_binary())
        .arg(&config_path)
        .arg("--password-file")
        .arg(dir.join("pw.txt"))
        .env("MAYFLY_PATH", &home)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("mayfly-ca did not start");
        if line.contains("serving on") {
            break;
        }
    }
    (
        child,
        format!("https://127.0.0.1:{port}"),
        home.join("certs/root_ca.crt"),
    )
}

#[test]
fn acme_flows_against_a_real_server() {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let dir =
        std::env::temp_dir().join(format!("mayfly-bench-acme-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let http_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (mut child, url, root) = start_acme_server(&dir, http_port);
    let output = Command::new(BENCH)
        .args(["acme", "--ca-url", &url, "--root"])
        .arg(&root)
        .args([
            "--http-port",
            &http_port.to_string(),
            "-n",
            "12",
            "-c",
            "4",
            "--pid",
            &child.id().to_string(),
            "--json",
        ])
        .output()
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "mayfly-bench acme failed: {stderr}\n{stdout}"
    );
    let report: serde_json::Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("not one JSON object ({e}): {stdout}"));
    assert_eq!(report["successes"], 12, "{report}");
    assert_eq!(report["failures"], 0, "{report}");
    assert!(
        report["server_cpu_us_per_cert"]
            .as_f64()
            .is_some_and(|us| us > 0.0),
        "{report}"
    );
}

#[test]
fn acme_help_has_an_example() {
    let output = Command::new(BENCH)
        .args(["acme", "--help"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for flag in [
        "--ca-url",
        "--root",
        "--provisioner",
        "--http-port",
        "--pid",
        "--json",
        "Example:",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
}
