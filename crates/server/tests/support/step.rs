//! The real step CLI and step-ca (`../shared/tools`), as test peers: a `step` with its own
//! STEPPATH and HOME, `step ca init`, and a step-ca killed on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The step CLI, run in one directory with a STEPPATH of its own and HOME there too, so that
/// nothing of the machine's leaks in.
pub struct Step {
    program: PathBuf,
    pub steppath: PathBuf,
    cwd: PathBuf,
}

impl Step {
    /// The real step CLI working in `dir` with STEPPATH `dir/steppath`; `None` (after saying
    /// the test skipped) when shared/ is absent.
    pub fn new(test: &str, dir: &Path) -> Option<Step> {
        let program = mayfly_testkit::step_cli(test)?;
        Some(Step::at(&program, dir.join("steppath"), dir))
    }

    /// `program` working in `cwd` (also its HOME) with STEPPATH `steppath`.
    pub fn at(program: &Path, steppath: PathBuf, cwd: &Path) -> Step {
        Step {
            program: program.to_path_buf(),
            steppath,
            cwd: cwd.to_path_buf(),
        }
    }

    /// The command, ready to run.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.program);
        command
            .args(args)
            .env("STEPPATH", &self.steppath)
            .env("HOME", &self.cwd)
            .env_remove("SSH_AUTH_SOCK")
            .env_remove("STEPDEBUG")
            .current_dir(&self.cwd)
            .stdin(Stdio::null());
        command
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args)
            .output()
            .unwrap_or_else(|e| panic!("running step {args:?}: {e}"))
    }

    /// Runs `step ARGS`, asserts success, returns stdout and stderr together (step prints its
    /// results on both).
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let text = text(&out);
        assert!(out.status.success(), "step {args:?} failed: {text}");
        text
    }

    /// Runs `step ARGS`, asserts success, returns stdout alone (a token, JSON).
    pub fn stdout(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "step {args:?} failed: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `step ARGS`, asserts failure with `expected` in its output.
    pub fn err(&self, args: &[&str], expected: &str) -> String {
        let out = self.run(args);
        let text = text(&out);
        assert!(!out.status.success(), "step {args:?} should fail: {text}");
        assert!(
            text.contains(expected),
            "step {args:?}: {text:?} should contain {expected:?}"
        );
        text
    }

    /// `step ca bootstrap` against `url`.
    pub fn bootstrap(&self, url: &str, fingerprint: &str) {
        self.ok(&[
            "ca",
            "bootstrap",
            "--ca-url",
            url,
            "--fingerprint",
            fingerprint,
        ]);
    }

    /// `step ca init` with every answer on the command line (provisioner `admin`), both
    /// passwords from `password_file`; returns the ca.json it wrote.
    pub fn init_ca(&self, address: &str, password_file: &Path, ssh: bool) -> PathBuf {
        let password_file = password_file.to_str().unwrap();
        let mut args = vec![
            "ca",
            "init",
            "--name",
            "Step Test",
            "--dns",
            "127.0.0.1",
            "--address",
            address,
            "--provisioner",
            "admin",
            "--password-file",
            password_file,
            "--provisioner-password-file",
            password_file,
        ];
        if ssh {
            args.push("--ssh");
        }
        self.ok(&args);
        self.steppath.join("config/ca.json")
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A running step-ca 0.19, killed on drop.
pub struct StepCa {
    child: Child,
    pub url: String,
    pub fingerprint: String,
    /// The file with the CA key's and provisioner `admin`'s password.
    pub password_file: PathBuf,
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
        let program = mayfly_testkit::step_ca(test)?;
        let step = Step::new(test, dir)?;
        let address = format!("127.0.0.1:{}", super::free_port());
        let password_file = dir.join("step-password");
        super::write_secret(&password_file, "step test password\n");
        let config = step.init_ca(&address, &password_file, true);
        Some(StepCa::run(
            &program,
            &config,
            &password_file,
            &step.steppath,
        ))
    }

    /// Runs `program` (step-ca) on `config`, as made by [`Step::init_ca`] and perhaps edited,
    /// and waits until it serves.
    pub fn run(program: &Path, config: &Path, password_file: &Path, steppath: &Path) -> StepCa {
        let value: serde_json::Value =
            serde_json::from_slice(&std::fs::read(config).unwrap()).unwrap();
        let address = value["address"].as_str().unwrap().to_owned();
        let log_path = config.with_file_name("step-ca.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let child = Command::new(program)
            .arg(config)
            .arg("--password-file")
            .arg(password_file)
            .env("STEPPATH", steppath)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting step-ca");
        let root = steppath.join("certs/root_ca.crt");
        let fingerprint = mayfly_pki::cert::fingerprint_sha256(
            &mayfly_pki::cert::certificates_from_pem(&std::fs::read(root).unwrap()).unwrap()[0],
        );
        let ca = StepCa {
            child,
            url: format!("https://{address}"),
            fingerprint,
            password_file: password_file.to_path_buf(),
            steppath: steppath.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !std::fs::read_to_string(&log_path)
            .unwrap_or_default()
            .contains("Serving HTTPS")
        {
            assert!(
                Instant::now() < deadline,
                "step-ca did not serve on {address}: {}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        ca
    }
}
