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
    let port = mayfly_testkit::free_port_pair();
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
    // Every order for one IP address (RFC 8738), as against step-ca.
    let by_address = Command::new(BENCH)
        .args(["acme", "--ca-url", &url, "--root"])
        .arg(&root)
        .args(["--http-port", &http_port.to_string(), "-n", "3", "-c", "1"])
        .args(["--identifier", "127.0.0.1", "--json"])
        .output()
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    let by_address = json_report(&by_address);
    assert_eq!(by_address["successes"], 3, "{by_address}");
    let report = json_report(&output);
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

/// Runs `mayfly-bench ARGS`; returns the output.
fn bench(args: &[&str]) -> std::process::Output {
    Command::new(BENCH).args(args).output().unwrap()
}

/// The JSON report of a `--json` run that must have succeeded.
fn json_report(output: &std::process::Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "mayfly-bench failed: {stderr}\n{stdout}"
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("not one JSON object ({e}): {stdout}"))
}

/// The `compare` flags of one side (`a` or `b`) for `server`.
fn side_flags(key: &str, name: &str, server: &Server) -> Vec<String> {
    vec![
        format!("--{key}-name"),
        name.to_owned(),
        format!("--{key}-url"),
        server.url.clone(),
        format!("--{key}-root"),
        server.root().display().to_string(),
        format!("--{key}-password-file"),
        server.password_file.display().to_string(),
        format!("--{key}-pid"),
        server.child.id().to_string(),
    ]
}

#[test]
fn compare_pairs_two_real_servers() {
    let (first, second) = (Server::start(), Server::start());
    let mut args: Vec<String> = vec!["compare".into()];
    args.extend(side_flags("a", "first", &first));
    args.extend(side_flags("b", "second", &second));
    args.extend(
        // Enough requests a run for several clock ticks of server CPU (10 ms each) on a fast
        // machine: a run under one tick shows none, and its pair has no CPU ratio.
        ["--pairs", "3", "-n", "120", "-c", "3", "--warmup", "4"]
            .iter()
            .map(|s| s.to_string()),
    );
    let mut json_args = args.clone();
    json_args.push("--json".into());
    let json_args: Vec<&str> = json_args.iter().map(String::as_str).collect();
    let output = bench(&json_args);
    let report = json_report(&output);

    // Six runs, the order swapped each pair: a b, b a, a b.
    let runs = report["runs"].as_array().unwrap();
    let order: Vec<(u64, &str)> = runs
        .iter()
        .map(|r| (r["pair"].as_u64().unwrap(), r["side"].as_str().unwrap()))
        .collect();
    assert_eq!(
        order,
        [(1, "a"), (1, "b"), (2, "b"), (2, "a"), (3, "a"), (3, "b")],
        "{report}"
    );
    for run in runs {
        assert_eq!(run["successes"], 120, "{run}");
        assert_eq!(run["failures"], 0, "{run}");
        let expected = if run["side"] == "a" {
            "first"
        } else {
            "second"
        };
        assert_eq!(run["name"], expected, "{run}");
        assert!(run["server_cpu_us_per_cert"].is_number(), "{run}");
    }
    // Each side's medians are the medians of its runs.
    for (key, name, server) in [("a", "first", &first), ("b", "second", &second)] {
        let side = &report[key];
        assert_eq!(side["name"], name, "{report}");
        assert_eq!(side["url"], server.url.as_str(), "{report}");
        let mut rates: Vec<f64> = runs
            .iter()
            .filter(|r| r["side"] == key)
            .map(|r| r["certs_per_second"].as_f64().unwrap())
            .collect();
        rates.sort_by(f64::total_cmp);
        let median = side["median_certs_per_second"].as_f64().unwrap();
        assert!((median - rates[1]).abs() <= 0.1, "{median} vs {rates:?}");
        assert!(
            side["median_server_cpu_us_per_cert"]
                .as_f64()
                .is_some_and(|us| us > 0.0),
            "{report}"
        );
    }
    let ratio = &report["ratio_b_over_a"];
    let a = report["a"]["median_certs_per_second"].as_f64().unwrap();
    let b = report["b"]["median_certs_per_second"].as_f64().unwrap();
    let throughput = ratio["certs_per_second"].as_f64().unwrap();
    assert!((throughput - b / a).abs() < 0.001, "{report}");
    assert!(ratio["server_cpu_us_per_cert"].as_f64().unwrap() > 0.0);
    let paired = &ratio["paired_server_cpu_us_per_cert"];
    let (min, median, max) = (
        paired["min"].as_f64().unwrap(),
        paired["median"].as_f64().unwrap(),
        paired["max"].as_f64().unwrap(),
    );
    assert!(0.0 < min && min <= median && median <= max, "{paired}");

    // The text report: a line a run, then the table with the names and the ratio column.
    let mut text_args = args.clone();
    text_args.splice(
        text_args.iter().position(|a| a == "--pairs").unwrap() + 1..,
        ["1", "-n", "6", "-c", "2", "--warmup", "0"].map(String::from),
    );
    let text_args: Vec<&str> = text_args.iter().map(String::as_str).collect();
    let output = bench(&text_args);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("pair   1  first"), "{stdout}");
    assert!(lines[1].starts_with("pair   1  second"), "{stdout}");
    assert!(stdout.contains("second/first"), "{stdout}");
    assert!(
        lines.iter().any(|l| l.starts_with("certificates/s")),
        "{stdout}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("server CPU µs/certificate")),
        "{stdout}"
    );
}

#[test]
fn compare_without_a_second_ca_is_a_one_line_error() {
    let dir = std::env::temp_dir().join(format!("mayfly-bench-cmp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let root = dir.join("root.der");
    std::fs::write(&root, [0x30, 0x03, 0x02, 0x01, 0x01]).unwrap();
    let root = root.display().to_string();
    for (args, missing) in [
        (
            vec!["--a-url", "https://127.0.0.1:1", "--a-root", &root],
            "--b-url",
        ),
        (
            vec!["--b-url", "https://127.0.0.1:1", "--b-root", &root],
            "--a-url",
        ),
        (
            vec![
                "--a-url",
                "https://127.0.0.1:1",
                "--a-root",
                &root,
                "--b-url",
                "https://127.0.0.1:2",
            ],
            "--b-root",
        ),
    ] {
        let output = bench(&[&["compare"], args.as_slice()].concat());
        assert!(!output.status.success(), "{args:?}");
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(stderr.starts_with("mayfly-bench: "), "{stderr}");
        assert!(stderr.contains(missing), "{missing}: {stderr}");
        assert!(output.stdout.is_empty(), "{args:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn compare_help_names_every_flag() {
    let output = bench(&["compare", "--help"]);
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for key in ["a", "b"] {
        for flag in [
            "url",
            "root",
            "provisioner",
            "provisioner-key",
            "password-file",
            "pid",
            "name",
        ] {
            let flag = format!("--{key}-{flag}");
            assert!(help.contains(&flag), "{flag} missing from:\n{help}");
        }
    }
    for flag in [
        "--pairs",
        "--requests",
        "--concurrency",
        "--warmup",
        "--json",
        "Example",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
}

/// A step-ca 0.19 (the real one, `../shared/tools`), from `step ca init`, killed on drop.
struct StepCa {
    child: Child,
    url: String,
    root: PathBuf,
    password_file: PathBuf,
}

impl Drop for StepCa {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl StepCa {
    /// `step ca init` in `dir` and step-ca on a free port; `None` when shared/ is absent.
    fn start(test: &str, dir: &Path) -> Option<StepCa> {
        let step = mayfly_testkit::step_cli(test)?;
        let step_ca = mayfly_testkit::step_ca(test)?;
        let steppath = dir.join("steppath");
        let password_file = dir.join("step-password");
        std::fs::write(&password_file, "step bench password\n").unwrap();
        std::fs::set_permissions(
            &password_file,
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
        let port = mayfly_testkit::free_port_pair();
        let address = format!("127.0.0.1:{port}");
        let init = Command::new(step)
            .args(["ca", "init", "--name", "Step Bench", "--dns", "127.0.0.1"])
            .args(["--address", &address, "--provisioner", "admin"])
            .arg("--password-file")
            .arg(&password_file)
            .arg("--provisioner-password-file")
            .arg(&password_file)
            .env("STEPPATH", &steppath)
            .env("HOME", dir)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            init.status.success(),
            "step ca init: {}",
            String::from_utf8_lossy(&init.stderr)
        );
        let log_path = dir.join("step-ca.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let child = Command::new(step_ca)
            .arg(steppath.join("config/ca.json"))
            .arg("--password-file")
            .arg(&password_file)
            .env("STEPPATH", &steppath)
            .env("HOME", dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let ca = StepCa {
            child,
            url: format!("https://{address}"),
            root: steppath.join("certs/root_ca.crt"),
            password_file,
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !std::fs::read_to_string(&log_path)
            .unwrap_or_default()
            .contains("Serving HTTPS")
        {
            assert!(
                std::time::Instant::now() < deadline,
                "step-ca did not start: {}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(ca)
    }
}

/// The comparison the performance issue asks for: the same tokens, made for step-ca's JWK
/// provisioner from `step ca init`, against the real step-ca.
#[test]
fn compare_with_the_real_step_ca() {
    let test = "compare_with_the_real_step_ca";
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let dir =
        std::env::temp_dir().join(format!("mayfly-bench-step-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let Some(step_ca) = StepCa::start(test, &dir) else {
        let _ = std::fs::remove_dir_all(&dir);
        return;
    };
    let mayfly = Server::start();
    let mut args: Vec<String> = vec!["compare".into()];
    args.extend(side_flags("a", "mayfly", &mayfly));
    args.extend(
        [
            "--b-name",
            "step-ca",
            "--b-url",
            &step_ca.url,
            "--b-root",
            &step_ca.root.display().to_string(),
            "--b-password-file",
            &step_ca.password_file.display().to_string(),
            "--b-pid",
            &step_ca.child.id().to_string(),
            "--pairs",
            "2",
            "-n",
            "10",
            "-c",
            "2",
            "--warmup",
            "2",
            "--json",
        ]
        .map(String::from),
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = bench(&args);
    drop(step_ca);
    let _ = std::fs::remove_dir_all(&dir);
    let report = json_report(&output);
    let runs = report["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 4, "{report}");
    for run in runs {
        assert_eq!(run["successes"], 10, "{run}");
    }
    assert_eq!(report["b"]["name"], "step-ca");
    assert!(
        report["b"]["median_server_cpu_us_per_cert"]
            .as_f64()
            .is_some_and(|us| us > 0.0),
        "{report}"
    );
    assert!(report["ratio_b_over_a"]["server_cpu_us_per_cert"].is_number());
}

/// Runs `mayfly-bench fill` on `db` and checks, through the store's own calls, that the
/// certificates are there, the right number revoked, each on its shard's CRL.
fn fill_and_check(db: &str, location: mayfly_store::Location) {
    let output = bench(&[
        "fill",
        "--db",
        db,
        "--count",
        "2345",
        "--revoked",
        "61",
        "--shards",
        "4",
        "--json",
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "fill failed: {stderr}\n{stdout}");
    let report: serde_json::Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("not one JSON object ({e}): {stdout}"));
    assert_eq!(report["certificates"], 2345, "{report}");
    assert_eq!(report["revoked"], 61, "{report}");
    assert!(
        report["certs_per_second"].as_f64().unwrap() > 0.0,
        "{report}"
    );
    let before = report["size_before_bytes"].as_u64().unwrap();
    let after = report["size_after_bytes"].as_u64().unwrap();
    assert!(after > before, "{report}");
    // At least the certificates' DER (a P-256 leaf is over 400 bytes) per certificate.
    assert!(
        report["bytes_per_certificate"].as_f64().unwrap() > 400.0,
        "{report}"
    );

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        use mayfly_authority::store::{CertificateStatus, CrlShard, ListStatus, RevokedQuery};
        let store = mayfly_store::AnyStore::open(&location).await.unwrap();
        let full = store.full();
        assert_eq!(full.counts().await.unwrap().certificates, 2345);
        let revoked = full
            .revoked_certificates(RevokedQuery::default())
            .await
            .unwrap();
        assert_eq!(revoked.len(), 61);
        let reasons: std::collections::BTreeSet<u8> =
            revoked.iter().map(|e| e.reason_code).collect();
        assert!(reasons.len() >= 4, "a spread of reasons: {reasons:?}");
        let mut on_shards = 0;
        for shard in (0..4).filter_map(CrlShard::new) {
            on_shards += full
                .revoked_certificates(RevokedQuery {
                    shard: Some(shard),
                    ..RevokedQuery::default()
                })
                .await
                .unwrap()
                .len();
        }
        assert_eq!(on_shards, 61);
        // Every certificate is unexpired, and parses with its own serial.
        let page = full
            .list_certificates(&mayfly_authority::store::CertificatePage {
                after: None,
                limit: 50,
                status: Some(ListStatus::Active),
                now: time::OffsetDateTime::now_utc(),
            })
            .await
            .unwrap();
        assert_eq!(page.len(), 50);
        for stored in &page {
            assert_eq!(stored.status, CertificateStatus::Valid);
            let info =
                mayfly_pki::cert::CertificateInfo::from_der(&stored.certificate.der).unwrap();
            assert_eq!(info.serial.to_decimal(), stored.certificate.serial);
            assert_eq!(info.common_name, stored.certificate.subject);
        }
        store.close().await;
    });
}

#[test]
fn fill_sqlite() {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let dir =
        std::env::temp_dir().join(format!("mayfly-bench-fill-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("fill.db");
    fill_and_check(
        db.to_str().unwrap(),
        mayfly_store::Location::Sqlite(db.clone()),
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn fill_postgres() {
    let Some(database) = mayfly_store::testing::TestDatabase::create_blocking(
        mayfly_store::Dialect::Postgres,
        "fill_postgres",
    ) else {
        return;
    };
    fill_and_check(
        database.url(),
        mayfly_store::Location::Server {
            dialect: mayfly_store::Dialect::Postgres,
            url: database.url().to_owned(),
        },
    );
}

#[test]
fn fill_refuses_more_revoked_than_certificates() {
    let output = bench(&[
        "fill",
        "--db",
        "/nonexistent/never-created.db",
        "--count",
        "10",
        "--revoked",
        "11",
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("--revoked 11 is more than --count 10"),
        "{stderr}"
    );
    assert!(!Path::new("/nonexistent/never-created.db").exists());
}

/// `mayfly-bench crl` on a seeded store: the complete CRL read whole, the next one after a
/// revocation (from memory, the store's news only) listing one more, every shard, the files.
#[test]
fn crl_measures_a_seeded_store() {
    let dir = std::env::temp_dir().join(format!("mayfly-bench-crl-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let output = bench(&[
        "crl",
        "--entries",
        "3000",
        "--shards",
        "4",
        "--publish",
        "--json",
        "--dir",
        dir.to_str().unwrap(),
    ]);
    let report = json_report(&output);
    assert_eq!(report["entries"], 3000, "{report}");
    for step in [
        "full",
        "full_next",
        "save_set",
        "full_after_restart",
        "query",
        "all_shards_and_full",
        "publish",
    ] {
        assert!(
            report[step]["seconds"].as_f64().is_some_and(|s| s > 0.0),
            "{step}: {report}"
        );
    }
    assert!(
        report["revocation_to_shard_seconds"].as_f64().is_some(),
        "{report}"
    );
    // A fresh store: the first CRL read every revoked row; the one after a restart, the set
    // the first publisher saved.
    assert_eq!(report["full_source"], "rows", "{report}");
    assert_eq!(report["set_saved"], true, "{report}");
    // Four shards and the complete CRL.
    assert_eq!(report["published_files"], 5, "{report}");
    let _ = std::fs::remove_dir_all(&dir);
}
