//! The CAs the end-to-end tests run against, each in a directory of its own that goes away
//! with it: one made by `mayfly ca init` with passwords ([`InitCa`]), started by the test as
//! often as it needs, and dev mode with a client ([`DevCa`]).

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{DevInfo, Server, ca_certificate, free_port, mayfly_ok, write_secret};

/// The password of the CA's keys, in `pw.txt` in the work directory; the provisioner's too,
/// unless [`Init::provisioner_password`] gives it one of its own.
pub const CA_PASSWORD: &str = "ca password\n";

/// How [`InitCa::new`] runs `mayfly ca init`.
pub struct Init<'a> {
    pub name: &'a str,
    /// The first provisioner (JWK).
    pub provisioner: &'a str,
    /// DNS names besides 127.0.0.1, which the clients use.
    pub dns: &'a [&'a str],
    /// A password for the provisioner's key of its own, in `prov-pw.txt`.
    pub provisioner_password: Option<&'a str>,
    /// The plain-HTTP listener (CRLs, OCSP, CA certificates) on a free port of 127.0.0.1,
    /// given to `ca init` with `--insecure-address` so the URLs in the intermediate and the
    /// leaves are right: the default, the port after `--address`'s, may be taken.
    pub plain_http: bool,
}

impl Default for Init<'_> {
    fn default() -> Self {
        Init {
            name: "Test",
            provisioner: "ops",
            dns: &[],
            provisioner_password: None,
            plain_http: false,
        }
    }
}

/// A CA made by `mayfly ca init` in a fresh directory: its home (`MAYFLY_PATH`) is `mayfly`
/// there, the work directory (passwords, certificates, the clients' cwd) the directory itself.
/// The CA listens on 127.0.0.1 on a free port once [`InitCa::start`]ed; `home`'s defaults.json
/// points the client at it.
pub struct InitCa {
    pub home: PathBuf,
    pub config: PathBuf,
    /// What `ca init` printed.
    pub output: String,
    /// The arguments `ca init` ran with (password files relative to the work directory).
    pub init_args: Vec<String>,
    /// The port of the plain-HTTP listener on 127.0.0.1, with [`Init::plain_http`].
    pub http_port: Option<u16>,
    dir: tempfile::TempDir,
}

impl InitCa {
    pub fn new(init: Init<'_>) -> InitCa {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path();
        let home = work.join("mayfly");
        write_secret(work.join("pw.txt"), CA_PASSWORD);
        let address = format!("127.0.0.1:{}", free_port());
        let mut args = vec!["ca", "init", "--name", init.name, "--dns", "127.0.0.1"];
        for name in init.dns {
            args.extend(["--dns", name]);
        }
        args.extend([
            "--address",
            &address,
            "--provisioner",
            init.provisioner,
            "--password-file",
            "pw.txt",
        ]);
        if let Some(password) = init.provisioner_password {
            write_secret(work.join("prov-pw.txt"), password);
            args.extend(["--provisioner-password-file", "prov-pw.txt"]);
        }
        let http_port = init.plain_http.then(free_port);
        let insecure_address = http_port.map(|port| format!("127.0.0.1:{port}"));
        if let Some(insecure_address) = &insecure_address {
            args.extend(["--insecure-address", insecure_address]);
        }
        let output = mayfly_ok(&home, work, &args);
        InitCa {
            config: home.join("config/ca.json"),
            home,
            output,
            init_args: args.into_iter().map(str::to_owned).collect(),
            http_port,
            dir,
        }
    }

    /// The work directory, which holds `pw.txt`.
    pub fn work(&self) -> &Path {
        self.dir.path()
    }

    /// Starts `mayfly-ca` with ca.json and the password in `pw.txt`.
    pub fn start(&self) -> Server {
        self.start_with_password("pw.txt")
    }

    /// Starts `mayfly-ca` with ca.json and the password in `file` (in the work directory).
    pub fn start_with_password(&self, file: &str) -> Server {
        Server::start(
            &[
                self.config.to_str().unwrap(),
                "--password-file",
                self.work().join(file).to_str().unwrap(),
            ],
            &self.home,
            None,
            "serving on",
        )
    }

    /// `mayfly ca certificate SUBJECT CRT KEY FLAGS...` from the first provisioner, whose
    /// password is in `pw.txt`.
    pub fn certificate(&self, names: [&str; 3], flags: &[&str]) -> String {
        ca_certificate(&self.home, self.work(), "pw.txt", names, flags)
    }

    /// Changes ca.json.
    pub fn edit_config(&self, edit: impl FnOnce(&mut Value)) {
        let mut config: Value =
            serde_json::from_slice(&std::fs::read(&self.config).unwrap()).unwrap();
        edit(&mut config);
        std::fs::write(&self.config, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
    }
}

/// `mayfly-ca dev` in a fresh directory (the work directory), and a client home beside it,
/// `client`, bootstrapped or not.
pub struct DevCa {
    pub server: Server,
    pub dev: DevInfo,
    pub client: PathBuf,
    dir: tempfile::TempDir,
}

impl DevCa {
    /// Dev mode; the client is not bootstrapped yet.
    pub fn start() -> DevCa {
        let dir = tempfile::tempdir().unwrap();
        let client = dir.path().join("client");
        let (server, dev) = Server::dev(dir.path(), &client);
        DevCa {
            server,
            dev,
            client,
            dir,
        }
    }

    /// Dev mode with the client bootstrapped against it.
    pub fn bootstrapped() -> DevCa {
        let ca = DevCa::start();
        ca.dev.bootstrap(&ca.client, ca.work());
        ca
    }

    pub fn work(&self) -> &Path {
        self.dir.path()
    }

    /// `mayfly ca certificate SUBJECT CRT KEY FLAGS...` from the dev provisioner, by the client.
    pub fn certificate(&self, names: [&str; 3], flags: &[&str]) -> String {
        ca_certificate(
            &self.client,
            self.work(),
            self.password_file(),
            names,
            flags,
        )
    }

    /// The dev provisioner's password file.
    pub fn password_file(&self) -> &str {
        self.dev.password_file.to_str().unwrap()
    }
}
