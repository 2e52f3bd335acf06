//! `mayfly-ca dev`: a throwaway CA with no set-up. Keys in clear (0600) in a fresh directory,
//! the embedded SQLite store, 127.0.0.1, and the commands to get a first certificate printed.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use mayfly_config::files::{self, SECRET_MODE};
use mayfly_config::init::{self, InitOptions, Layout};
use mayfly_pki::random::random_hex;
use tokio::net::TcpListener;

/// The provisioner dev mode creates.
pub const DEV_PROVISIONER: &str = "dev";

/// What dev mode set up, for printing.
pub struct DevCa {
    pub dir: PathBuf,
    pub config_path: PathBuf,
    pub url: String,
    pub fingerprint: String,
    pub provisioner_password_file: PathBuf,
    pub listener: TcpListener,
}

/// Creates the dev CA in `dir` (or a new directory under the OS temp dir) for `address`.
pub async fn create(dir: Option<&Path>, address: &str) -> anyhow::Result<DevCa> {
    let dir = match dir {
        Some(dir) => dir.to_path_buf(),
        None => std::env::temp_dir().join(format!("mayfly-dev-{}", random_hex(6)?)),
    };
    let layout = Layout::new(&dir);
    if layout.ca_config().exists() {
        bail!(
            "{} already holds a CA: remove the directory or choose another --dir",
            dir.display()
        );
    }
    let listener = crate::serve::listen(address)
        .await
        .with_context(|| format!("--address: cannot listen on {address:?}"))?;
    let local: SocketAddr = listener.local_addr().context("reading the bound address")?;
    let host = local.ip().to_string();
    let mut dns_names = vec![host];
    if local.ip().is_loopback() {
        dns_names.push("localhost".into());
    }
    let password = random_hex(16)?;
    let options = InitOptions {
        name: "Mayfly Dev".into(),
        dns_names,
        address: local.to_string(),
        provisioner: DEV_PROVISIONER.into(),
        key_password: None,
        provisioner_password: password.clone().into_bytes(),
        existing_root: None,
        pki_only: false,
        kdf_iterations: mayfly_pki::jose::jwe::STEP_PBKDF2_ITERATIONS,
        ssh: Some(mayfly_pki::KeyAlgorithm::EcP256),
        insecure_address: None,
    };
    let plan = tokio::task::spawn_blocking(move || {
        let plan = init::plan(&options, &layout)?;
        init::write(&plan, &layout, false)?;
        Ok::<_, mayfly_authority::Error>(plan)
    })
    .await
    .context("creating the dev CA")??;
    let provisioner_password_file = dir.join("secrets/provisioner_password");
    files::write_atomic(
        &provisioner_password_file,
        format!("{password}\n").as_bytes(),
        SECRET_MODE,
    )?;
    Ok(DevCa {
        dir,
        config_path: plan.ca_config_path,
        url: plan.ca_url,
        fingerprint: plan.root_fingerprint,
        provisioner_password_file,
        listener,
    })
}

impl DevCa {
    /// The banner: where the CA is, and the exact commands to get a certificate.
    pub fn banner(&self) -> String {
        let pw = self.provisioner_password_file.display();
        let mayfly = client_command();
        format!(
            "mayfly-ca dev: a throwaway CA is running (its files are in {dir})\n\
             \n  URL:              {url}\
             \n  Root fingerprint: {fp}\
             \n  Provisioner:      {prov} (password file: {pw})\n\
             \nIn another terminal, get a certificate:\n\
             \n  export MAYFLY_PATH=\"$(mktemp -d)\"\
             \n  {mayfly} ca bootstrap --ca-url {url} --fingerprint {fp}\
             \n  {mayfly} ca certificate svc.internal svc.crt svc.key --provisioner-password-file {pw}\
             \n  openssl verify -CAfile \"$MAYFLY_PATH/certs/root_ca.crt\" -untrusted svc.crt svc.crt\n\
             \nOr an SSH user certificate (see docs/ssh.md for sshd):\n\
             \n  {mayfly} ssh certificate alice id_ecdsa --no-password --insecure --provisioner-password-file {pw}\n\
             \nPress Ctrl-C to stop.\n",
            dir = self.dir.display(),
            url = self.url,
            fp = self.fingerprint,
            prov = DEV_PROVISIONER,
        )
    }
}

/// How to run the client: its full path when it was built beside this server (a fresh checkout
/// after `cargo build`), so the printed commands work before anything is installed.
fn client_command() -> String {
    std::env::current_exe()
        .ok()
        .map(|exe| exe.with_file_name("mayfly"))
        .filter(|path| path.is_file())
        .map(|path| path.display().to_string())
        .unwrap_or_else(|| "mayfly".to_string())
}
