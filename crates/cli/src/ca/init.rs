//! `mayfly ca init`: a new PKI under $MAYFLY_PATH.

use std::path::PathBuf;

use anyhow::Context;
use mayfly_config::init::{self, InitOptions, Layout};
use mayfly_pki::jose::jwe::STEP_PBKDF2_ITERATIONS;

use crate::context::mayfly_path;
use crate::password;

#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// Name of the PKI: certificates are "<NAME> Root CA" and "<NAME> Intermediate CA".
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// DNS name or IP address of the CA; repeatable. The first one goes into the CA URL.
    #[arg(long = "dns", value_name = "DNS|IP")]
    dns: Vec<String>,
    /// Address the CA listens on, like ":9000" or "127.0.0.1:9000".
    #[arg(long, value_name = "ADDRESS")]
    address: Option<String>,
    /// Name of the first JWK provisioner, e.g. an e-mail address.
    #[arg(long, value_name = "NAME")]
    provisioner: Option<String>,
    /// File with the password that encrypts the CA keys (and, by default, the provisioner key).
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
    /// File with the password that encrypts the provisioner key [default: --password-file].
    #[arg(long, value_name = "FILE")]
    provisioner_password_file: Option<PathBuf>,
    /// An existing root certificate to use instead of creating one (needs --key).
    #[arg(long, value_name = "FILE", requires = "key")]
    root: Option<PathBuf>,
    /// The existing root's private key (PEM; encrypted keys as step or OpenSSL write them).
    #[arg(long, value_name = "FILE", requires = "root")]
    key: Option<PathBuf>,
    /// File with the password of --key [default: --password-file].
    #[arg(long, value_name = "FILE", requires = "key")]
    key_password_file: Option<PathBuf>,
    /// Serve Prometheus metrics on this address, like "127.0.0.1:9090" (plain HTTP, at
    /// /metrics): written to ca.json as "metricsAddress" [default: no metrics].
    #[arg(long, value_name = "ADDRESS", conflicts_with = "pki")]
    metrics_address: Option<String>,
    /// Address of the plain-HTTP listener that serves only CRLs, OCSP and the CA certificates,
    /// like ":80": written to ca.json as "insecureAddress", and the URLs certificates carry
    /// point there [default: on --address's host, port 80 when --address is on 443, else the
    /// next port; "" for none, leaving HTTPS URLs].
    #[arg(long, value_name = "ADDRESS")]
    insecure_address: Option<String>,
    /// Create only keys and certificates: no ca.json and no defaults.json.
    #[arg(long)]
    pki: bool,
    /// Also create an SSH user CA key and an SSH host CA key (encrypted like the CA keys) and
    /// let the provisioner sign SSH certificates.
    #[arg(long)]
    ssh: bool,
    /// Key type of the SSH CA keys: EC (P-256) or OKP (Ed25519).
    #[arg(long, value_name = "KTY", default_value = "EC", requires = "ssh")]
    ssh_kty: String,
    /// Overwrite an existing PKI.
    #[arg(long, short)]
    force: bool,
}

pub async fn run(args: InitArgs) -> anyhow::Result<()> {
    let name = match args.name {
        Some(name) => name,
        None => crate::prompt::line("What would you like to name your new PKI?", "--name")?,
    };
    let (dns_names, address, provisioner) = if args.pki {
        (
            args.dns,
            args.address.unwrap_or_default(),
            args.provisioner.unwrap_or_else(|| "admin".into()),
        )
    } else {
        let dns = if args.dns.is_empty() {
            let names: Vec<String> = crate::prompt::line(
                "What DNS names or IP addresses will clients use to reach your CA? (comma-separated)",
                "--dns",
            )?
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
            if names.is_empty() {
                anyhow::bail!("missing --dns: no DNS name or IP address given");
            }
            names
        } else {
            args.dns
        };
        let address = match args.address {
            Some(address) => address,
            None => crate::prompt::line(
                "What IP and port will your new CA bind to? (e.g. :9000)",
                "--address",
            )?,
        };
        let provisioner = match args.provisioner {
            Some(p) => p,
            None => crate::prompt::line(
                "What would you like to name the CA's first provisioner?",
                "--provisioner",
            )?,
        };
        (dns, address, provisioner)
    };
    let key_password = password::obtain_new_or_generate(
        args.password_file.as_deref(),
        "Choose a password for your CA keys and first provisioner",
        "--password-file FILE",
    )?;
    let provisioner_password = match &args.provisioner_password_file {
        Some(file) => password::obtain_new(Some(file), "", "--provisioner-password-file FILE")?,
        None => key_password.clone(),
    };
    let existing_root = match (&args.root, &args.key) {
        (Some(root), Some(key)) => {
            let pw = match &args.key_password_file {
                Some(file) => password::from_file(file)?,
                None => key_password.clone(),
            };
            Some(init::load_existing_root(root, key, Some(&pw))?)
        }
        _ => None,
    };
    let provisioner_name = provisioner.clone();
    let ssh = if args.ssh {
        Some(
            mayfly_pki::KeyAlgorithm::from_flags(&args.ssh_kty, None, None).and_then(
                |algorithm| match algorithm {
                    mayfly_pki::KeyAlgorithm::EcP256 | mayfly_pki::KeyAlgorithm::Ed25519 => {
                        Ok(algorithm)
                    }
                    _ => Err(mayfly_pki::Error::KeyUnsupported(
                        "--ssh-kty: expected EC (P-256) or OKP (Ed25519)".into(),
                    )),
                },
            )?,
        )
    } else {
        None
    };
    let options = InitOptions {
        name,
        dns_names,
        address: address.clone(),
        provisioner,
        key_password: Some(key_password.to_vec()),
        provisioner_password: provisioner_password.to_vec(),
        existing_root,
        pki_only: args.pki,
        kdf_iterations: STEP_PBKDF2_ITERATIONS,
        ssh,
        insecure_address: match args.insecure_address {
            Some(address) => Some(address).filter(|a| !a.is_empty()),
            None => default_insecure_address(&address),
        },
    };
    let options_insecure = options.insecure_address.clone();
    let layout = Layout::new(mayfly_path()?);
    let force = args.force;
    let metrics_address = args.metrics_address.clone();
    note!("Generating root certificate... ");
    let (plan, layout) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let mut plan = init::plan(&options, &layout)?;
        if let Some(address) = metrics_address {
            set_metrics_address(&mut plan, &layout, address)?;
        }
        init::write(&plan, &layout, force)?;
        Ok((plan, layout))
    })
    .await
    .context("creating the PKI")??;
    outln!("✔ Root certificate: {}", layout.root_cert().display())?;
    if plan.files.iter().any(|f| f.path == layout.root_key()) {
        outln!("✔ Root private key: {}", layout.root_key().display())?;
    }
    outln!("✔ Root fingerprint: {}", plan.root_fingerprint)?;
    outln!(
        "✔ Intermediate certificate: {}",
        layout.intermediate_cert().display()
    )?;
    outln!(
        "✔ Intermediate private key: {}",
        layout.intermediate_key().display()
    )?;
    if !args.pki {
        outln!("✔ Database folder: {}", layout.base.join("db").display())?;
        outln!("✔ Default configuration: {}", layout.defaults().display())?;
        outln!(
            "✔ Certificate Authority configuration: {}",
            layout.ca_config().display()
        )?;
        outln!(
            "✔ Provisioner: {provisioner_name} (JWK) [kid: {}]",
            plan.provisioner_kid
        )?;
        if let (Some(user), Some(host)) = (&plan.ssh_user_ca, &plan.ssh_host_ca) {
            outln!(
                "✔ SSH user CA key: {} (public: {})",
                layout.ssh_user_key().display(),
                layout.ssh_user_public().display()
            )?;
            outln!(
                "✔ SSH host CA key: {} (public: {})",
                layout.ssh_host_key().display(),
                layout.ssh_host_public().display()
            )?;
            outln!()?;
            outln!("Hosts trust users with this line in their TrustedUserCAKeys file:")?;
            outln!("  {user}")?;
            outln!("Clients trust hosts with this line in known_hosts:")?;
            outln!("  @cert-authority * {host}")?;
        }
        if let Some(insecure) = &options_insecure {
            outln!(
                "✔ CRLs, OCSP and CA certificates over plain HTTP on {insecure} (insecureAddress)"
            )?;
        }
        outln!()?;
        outln!("Your PKI is ready to go. Start the CA with:")?;
        outln!("  mayfly-ca {}", layout.ca_config().display())?;
        outln!("It asks for the password; --password-file FILE reads it from a file instead.")?;
    }
    Ok(())
}

/// Adds `metricsAddress` to the planned ca.json, through the same type that wrote it.
fn set_metrics_address(
    plan: &mut init::Plan,
    layout: &Layout,
    address: String,
) -> anyhow::Result<()> {
    let file = plan
        .files
        .iter_mut()
        .find(|f| f.path == layout.ca_config())
        .context("the plan has no ca.json")?;
    let text = String::from_utf8(file.contents.clone()).context("the planned ca.json")?;
    let (mut config, _) = mayfly_config::config::CaConfig::parse(&text)?;
    config.metrics_address = Some(address);
    file.contents = config.to_json_pretty()?.into_bytes();
    Ok(())
}

/// The plain-HTTP listener `ca init` sets up unless told otherwise: on the host of `address`,
/// port 80 beside 443, port 0 beside 0 (tests), else the next port up. `None` when `address`
/// has no port or is on the last one.
fn default_insecure_address(address: &str) -> Option<String> {
    let (host, port) = address.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let plain = match port {
        443 => 80,
        0 => 0,
        other => other.checked_add(1)?,
    };
    Some(format!("{host}:{plain}"))
}

#[cfg(test)]
mod tests {
    use super::default_insecure_address;

    #[test]
    fn the_plain_listener_sits_beside_the_https_one() {
        assert_eq!(default_insecure_address(":443").as_deref(), Some(":80"));
        assert_eq!(
            default_insecure_address("127.0.0.1:9000").as_deref(),
            Some("127.0.0.1:9001")
        );
        assert_eq!(
            default_insecure_address("[::1]:0").as_deref(),
            Some("[::1]:0")
        );
        assert_eq!(default_insecure_address(":65535"), None);
        assert_eq!(default_insecure_address("localhost"), None);
    }
}
