//! The real step CLI and step-ca (`../shared/tools`), as test peers: a `step` with its own
//! STEPPATH and HOME, and a step-ca made by `step ca init` and killed on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The step CLI, run with a STEPPATH and HOME of its own so nothing of the machine's leaks in.
pub struct Step {
    bin: PathBuf,
    pub steppath: PathBuf,
    home: PathBuf,
}

impl Step {
    /// The real step CLI in `dir`; `None` (after saying the test skipped) when shared/ is absent.
    pub fn new(test: &str, dir: &Path) -> Option<Step> {
        let bin = mayfly_testkit::step_cli(test)?;
        let steppath = dir.join("steppath");
        let home = dir.join("home");
        std::fs::create_dir_all(&home).unwrap();
        Some(Step {
            bin,
            steppath,
            home,
        })
    }

    /// The command, ready to run in `cwd`.
    pub fn command(&self, cwd: &Path, args: &[&str]) -> Command {
        let mut command = Command::new(&self.bin);
        command
            .args(args)
            .env("STEPPATH", &self.steppath)
            .env("HOME", &self.home)
            .env_remove("SSH_AUTH_SOCK")
            .env_remove("STEPDEBUG")
            .current_dir(cwd)
            .stdin(Stdio::null());
        command
    }

    pub fn run(&self, cwd: &Path, args: &[&str]) -> Output {
        self.command(cwd, args)
            .output()
            .unwrap_or_else(|e| panic!("running step {args:?}: {e}"))
    }

    /// Runs `step ARGS`, asserts success, returns stdout and stderr together (step prints its
    /// results on both).
    pub fn ok(&self, cwd: &Path, args: &[&str]) -> String {
        let out = self.run(cwd, args);
        let text = text(&out);
        assert!(out.status.success(), "step {args:?} failed: {text}");
        text
    }

    /// Runs `step ARGS`, asserts failure with `expected` in its output.
    pub fn err(&self, cwd: &Path, args: &[&str], expected: &str) -> String {
        let out = self.run(cwd, args);
        let text = text(&out);
        assert!(!out.status.success(), "step {args:?} should fail: {text}");
        assert!(
            text.contains(expected),
            "step {args:?}: {text:?} should contain {expected:?}"
        );
        text
    }

    /// `step ca bootstrap` against `url`.
    pub fn bootstrap(&self, cwd: &Path, url: &str, fingerprint: &str) {
        self.ok(
            cwd,
            &[
                "ca",
                "bootstrap",
                "--ca-url",
                url,
                "--fingerprint",
                fingerprint,
            ],
        );
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A running step-ca 0.19 made by `step ca init --ssh`, killed on drop.
pub struct StepCa {
    child: Child,
    pub url: String,
    pub fingerprint: String,
    /// The provisioner password file (provisioner `admin`).
    pub provisioner_password: PathBuf,
    pub steppath: PathBuf,
}

impl Drop for StepCa {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl StepCa {
    /// `step ca init --ssh` in `dir` and step-ca on a free port; `None` when shared/ is absent.
    pub fn start(test: &str, dir: &Path) -> Option<StepCa> {
        let step_ca = mayfly_testkit::step_ca(test)?;
        let step = Step::new(test, dir)?;
        let port = super::free_port();
        let address = format!("127.0.0.1:{port}");
        super::write_secret(dir.join("ca-password"), "step ca password\n");
        super::write_secret(
            dir.join("provisioner-password"),
            "step provisioner password\n",
        );
        step.ok(
            dir,
            &[
                "ca",
                "init",
                "--name",
                "Step Test",
                "--dns",
                "127.0.0.1",
                "--address",
                &address,
                "--provisioner",
                "admin",
                "--password-file",
                "ca-password",
                "--provisioner-password-file",
                "provisioner-password",
                "--ssh",
            ],
        );
        let config = step.steppath.join("config/ca.json");
        let log = std::fs::File::create(dir.join("step-ca.log")).unwrap();
        let child = Command::new(step_ca)
            .arg(&config)
            .arg("--password-file")
            .arg(dir.join("ca-password"))
            .env("STEPPATH", &step.steppath)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting step-ca");
        let root = step.steppath.join("certs/root_ca.crt");
        let fingerprint = mayfly_pki::cert::fingerprint_sha256(
            &mayfly_pki::cert::certificates_from_pem(&std::fs::read(root).unwrap()).unwrap()[0],
        );
        let ca = StepCa {
            child,
            url: format!("https://{address}"),
            fingerprint,
            provisioner_password: dir.join("provisioner-password"),
            steppath: step.steppath.clone(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&address).is_err() {
            assert!(
                Instant::now() < deadline,
                "step-ca did not listen on {address}: {}",
                std::fs::read_to_string(dir.join("step-ca.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(ca)
    }
}
