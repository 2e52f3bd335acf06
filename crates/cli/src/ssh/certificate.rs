//! `mayfly ssh certificate`, `ssh renew` and `ssh rekey`.
//!
//! ECDSA keys are written as PKCS#8 PEM (encrypted unless --no-password --insecure), which
//! OpenSSH reads; Ed25519 keys, which it reads only in its own format, as unencrypted OpenSSH
//! files. The public key and the certificate are OpenSSH lines.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use mayfly_pki::ssh::{SshCertificate, SshPublicKey};
use mayfly_pki::{KeyAlgorithm, PrivateKey, keyfile};
use mayfly_proto::ssh::SshSignRequest;
use time::OffsetDateTime;

use crate::ca::token::{self, ProvisionerFlags, TokenRequest};
use crate::context::CaFlags;
use crate::output::{Output, write_all};
use crate::password;

#[derive(Debug, clap::Args)]
pub struct CertificateArgs {
    /// The certificate's key id (e.g. alice@example.com, or a host name with --host); also
    /// its only principal unless --principal is given.
    key_id: String,
    /// The private key to create (the public key goes to KEY_FILE.pub, the certificate to
    /// KEY_FILE-cert.pub); with --sign, the public key file to certify.
    key_file: PathBuf,
    /// Get a host certificate instead of a user certificate.
    #[arg(long)]
    host: bool,
    /// A principal (user or host name) the certificate names; repeatable [default: KEY_ID].
    #[arg(long, value_name = "NAME")]
    principal: Vec<String>,
    /// Certify the existing public key in KEY_FILE (e.g. id_ed25519.pub) instead of creating
    /// a key pair.
    #[arg(long)]
    sign: bool,
    /// When the certificate becomes valid: RFC 3339 time or duration from now [default: now].
    #[arg(long, value_name = "TIME|DURATION")]
    not_before: Option<String>,
    /// When it expires: RFC 3339 time or duration from now [default: the provisioner's, 16h
    /// for users and 30 days for hosts].
    #[arg(long, value_name = "TIME|DURATION")]
    not_after: Option<String>,
    /// File with the password that encrypts the new private key.
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
    /// Do not encrypt the new private key (requires --insecure).
    #[arg(long, requires = "insecure")]
    no_password: bool,
    /// Allow insecure choices such as --no-password.
    #[arg(long)]
    insecure: bool,
    /// Add the key and certificate to the running ssh-agent ($SSH_AUTH_SOCK) for as long as
    /// the certificate is valid.
    #[arg(long)]
    add_to_agent: bool,
    /// Key type of the new key: EC (ECDSA) or OKP (Ed25519, only with --no-password: OpenSSH
    /// reads Ed25519 keys only from its own format, which mayfly writes unencrypted).
    #[arg(long, value_name = "KTY", default_value = "EC")]
    kty: String,
    /// Curve of the new key: P-256 or P-384 for EC, Ed25519 for OKP.
    #[arg(long, value_name = "CURVE")]
    curve: Option<String>,
    /// A one-time token from `mayfly ca token --ssh` [default: create one with the provisioner
    /// key].
    #[arg(long, value_name = "TOKEN", env = "MAYFLY_TOKEN")]
    token: Option<String>,
    #[command(flatten)]
    provisioner: ProvisionerFlags,
    /// File holding the provisioner password (when no --token is given).
    #[arg(long, value_name = "FILE", env = "MAYFLY_PROVISIONER_PASSWORD_FILE")]
    provisioner_password_file: Option<PathBuf>,
    /// Overwrite existing files.
    #[arg(long, short)]
    force: bool,
    #[command(flatten)]
    ca: CaFlags,
}

/// `KEY-cert.pub` for `KEY` or `KEY.pub`, as OpenSSH looks for it.
fn certificate_path(key_or_pub: &Path) -> PathBuf {
    let text = key_or_pub.display().to_string();
    let base = text.strip_suffix(".pub").unwrap_or(&text);
    PathBuf::from(format!("{base}-cert.pub"))
}

fn public_path(key: &Path) -> PathBuf {
    PathBuf::from(format!("{}.pub", key.display()))
}

fn key_algorithm(
    kty: &str,
    curve: Option<&str>,
    no_password: bool,
) -> anyhow::Result<KeyAlgorithm> {
    let algorithm = KeyAlgorithm::from_flags(kty, curve, None)?;
    match algorithm {
        KeyAlgorithm::EcP256 | KeyAlgorithm::EcP384 => Ok(algorithm),
        KeyAlgorithm::Ed25519 if no_password => Ok(algorithm),
        KeyAlgorithm::Ed25519 => bail!(
            "--kty OKP: an Ed25519 key can only be written unencrypted (--no-password --insecure), \
             as OpenSSH reads it only in its own format: use --kty EC, or ssh-keygen and --sign"
        ),
        KeyAlgorithm::Rsa(_) => bail!("--kty {kty}: SSH keys here are EC or OKP"),
    }
}

/// Reads a private key: OpenSSH's own format (unencrypted, as ssh-keygen writes host keys) or
/// PEM (asking for its password when it is encrypted).
fn read_key(path: &Path, password_file: Option<&Path>) -> anyhow::Result<PrivateKey> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    if mayfly_pki::ssh::keyfile::is_openssh_private_key(&bytes) {
        return mayfly_pki::ssh::keyfile::decode_openssh_private_key(&bytes)
            .with_context(|| path.display().to_string());
    }
    password::read_private_key(path, password_file, "--password-file FILE")
}

/// The new key's PEM: encrypted with a password from --password-file or the terminal, unless
/// --no-password --insecure.
fn encode_new_key(
    key: &PrivateKey,
    no_password: bool,
    password_file: Option<&Path>,
) -> anyhow::Result<String> {
    if key.algorithm() == KeyAlgorithm::Ed25519 {
        if !no_password {
            bail!("an Ed25519 key can only be written unencrypted: use --no-password --insecure");
        }
        return Ok(mayfly_pki::ssh::keyfile::encode_openssh_private_key(
            key, "",
        )?);
    }
    if no_password {
        return Ok(keyfile::encode_private_key_pem(key, None)?);
    }
    let password = password::obtain_new(
        password_file,
        "Please enter the password to encrypt the private key",
        "--password-file FILE",
    )?;
    Ok(keyfile::encode_private_key_pem(key, Some(&password))?)
}

pub async fn run_certificate(args: CertificateArgs) -> anyhow::Result<()> {
    if args.sign && args.add_to_agent {
        bail!("--add-to-agent needs the private key: it cannot be used with --sign");
    }
    if args.add_to_agent && std::env::var_os("SSH_AUTH_SOCK").is_none() {
        bail!("--add-to-agent: SSH_AUTH_SOCK is not set: no ssh-agent is running");
    }
    let cert_path = certificate_path(&args.key_file);
    let pub_path = public_path(&args.key_file);
    let outputs: Vec<&Path> = if args.sign {
        vec![&cert_path]
    } else {
        vec![&args.key_file, &pub_path, &cert_path]
    };
    if !args.force
        && let Some(existing) = outputs.iter().find(|p| p.exists())
    {
        bail!(
            "{} already exists: use --force to overwrite it",
            existing.display()
        );
    }
    let target = args.ca.target()?;
    let (key, public) = if args.sign {
        let line = std::fs::read_to_string(&args.key_file)
            .with_context(|| format!("cannot read {}", args.key_file.display()))?;
        let public =
            SshPublicKey::parse_line(&line).with_context(|| args.key_file.display().to_string())?;
        (None, public)
    } else {
        let algorithm = key_algorithm(&args.kty, args.curve.as_deref(), args.no_password)?;
        let key = tokio::task::spawn_blocking(move || PrivateKey::generate(algorithm)).await??;
        let public = SshPublicKey::from_private_key(&key)?;
        (Some(key), public)
    };
    let principals = if args.principal.is_empty() {
        vec![args.key_id.clone()]
    } else {
        args.principal.clone()
    };
    let ott = match &args.token {
        Some(token) => token.trim().to_string(),
        None => {
            token::mint(
                &target,
                &TokenRequest {
                    subject: &args.key_id,
                    endpoint: "ssh/sign",
                    sans: &principals,
                    not_before: None,
                    not_after: None,
                    provisioner: args.provisioner.provisioner.as_deref(),
                    password_file: args.provisioner_password_file.as_deref(),
                    ssh: Some(token::ssh_claims(&args.key_id, args.host, &principals)),
                },
            )
            .await?
        }
    };
    let key_pem = match &key {
        Some(key) => Some(encode_new_key(
            key,
            args.no_password,
            args.password_file.as_deref(),
        )?),
        None => None,
    };
    let response = target
        .client()?
        .ssh_sign(&SshSignRequest {
            public_key: STANDARD.encode(public.blob()),
            ott,
            cert_type: Some(if args.host { "host" } else { "user" }.into()),
            key_id: Some(args.key_id.clone()),
            principals,
            valid_after: args.not_before.clone(),
            valid_before: args.not_after.clone(),
            critical_options: Default::default(),
        })
        .await?;
    let certificate = SshCertificate::from_base64(&response.crt)
        .context("the CA returned a certificate that does not parse")?;
    if certificate.public_key != public {
        bail!("the CA returned a certificate for another key");
    }
    let cert_line = format!("{} {}\n", certificate.to_line(), args.key_id);
    let pub_line = format!("{} {}\n", public.to_line(), args.key_id);
    let mut files = vec![Output {
        path: &cert_path,
        contents: cert_line.as_bytes(),
        secret: false,
    }];
    if let Some(pem) = &key_pem {
        files.push(Output {
            path: &args.key_file,
            contents: pem.as_bytes(),
            secret: true,
        });
        files.push(Output {
            path: &pub_path,
            contents: pub_line.as_bytes(),
            secret: false,
        });
    }
    write_all(&files, args.force)?;
    note!("✔ CA: {}", target.url);
    if key.is_some() {
        note!("✔ Private Key: {}", args.key_file.display());
        note!("✔ Public Key: {}", pub_path.display());
    }
    note!("✔ Certificate: {}", cert_path.display());
    if let (true, Some(key)) = (args.add_to_agent, &key) {
        let lifetime = super::agent::add(key, &certificate, &args.key_id)?;
        note!("✔ SSH Agent: yes (for {lifetime} s)");
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct RenewArgs {
    /// The host certificate to renew (KEY-cert.pub).
    cert_file: PathBuf,
    /// Its private key: PEM, as `mayfly ssh certificate` writes it, or an unencrypted OpenSSH
    /// key as ssh-keygen writes host keys.
    key_file: PathBuf,
    /// Where to write the new certificate [default: replace CERT_FILE].
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// File with the password of KEY_FILE, if it is encrypted.
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
    /// Overwrite the output without asking.
    #[arg(long, short)]
    force: bool,
    #[command(flatten)]
    ca: CaFlags,
}

#[derive(Debug, clap::Args)]
pub struct RekeyArgs {
    /// The current host certificate (KEY-cert.pub).
    cert_file: PathBuf,
    /// Its current private key (PEM, or an unencrypted OpenSSH key).
    key_file: PathBuf,
    /// Where to write the new private key (with OUT.pub and OUT-cert.pub beside it).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// File with the password of KEY_FILE, if it is encrypted.
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
    /// File with the password that encrypts the new private key.
    #[arg(long, value_name = "FILE")]
    new_password_file: Option<PathBuf>,
    /// Do not encrypt the new private key (requires --insecure).
    #[arg(long, requires = "insecure")]
    no_password: bool,
    /// Allow insecure choices such as --no-password.
    #[arg(long)]
    insecure: bool,
    /// Overwrite existing files.
    #[arg(long, short)]
    force: bool,
    #[command(flatten)]
    ca: CaFlags,
}

/// Reads a certificate and its key, checks they belong together, and signs the SSH-POP token
/// for `endpoint` that proves the holder has the key: step's token, which step-ca accepts too.
/// The audience names the CA's SSHPOP provisioner in its fragment (`…#sshpop/NAME`), `iss` is
/// that NAME and `sub` the certificate's serial; a CA that lists no SSHPOP provisioner gets the
/// plain audience.
pub(crate) async fn sshpop_token(
    cert_file: &Path,
    key_file: &Path,
    password_file: Option<&Path>,
    target: &crate::context::CaTarget,
    endpoint: &str,
) -> anyhow::Result<(SshCertificate, String)> {
    let line = std::fs::read_to_string(cert_file)
        .with_context(|| format!("cannot read {}", cert_file.display()))?;
    let certificate =
        SshCertificate::parse_line(&line).with_context(|| cert_file.display().to_string())?;
    let key = read_key(key_file, password_file)?;
    if SshPublicKey::from_private_key(&key)? != certificate.public_key {
        bail!(
            "{} is not the key of the certificate in {}",
            key_file.display(),
            cert_file.display()
        );
    }
    let provisioner = target
        .client()?
        .provisioners()
        .await?
        .into_iter()
        .find(|p| p.kind.eq_ignore_ascii_case("SSHPOP"))
        .map(|p| p.name);
    let mut audience = format!("{}/1.0/{endpoint}", target.url.trim_end_matches('/'));
    if let Some(name) = &provisioner {
        audience.push_str(&format!("#sshpop/{name}"));
    }
    let now = OffsetDateTime::now_utc();
    let claims = serde_json::json!({
        "aud": audience,
        "iss": provisioner.as_deref().unwrap_or(mayfly_config::init::SSHPOP_PROVISIONER),
        "sub": certificate.template.serial.to_string(),
        "jti": mayfly_pki::random::random_hex(32)?,
        "iat": now.unix_timestamp(),
        "nbf": now.unix_timestamp(),
        "exp": (now + time::Duration::minutes(5)).unix_timestamp(),
    });
    let token = mayfly_pki::jose::jws::sign_compact_sshpop(
        &key,
        &certificate.to_base64(),
        claims.to_string().as_bytes(),
    )?;
    Ok((certificate, token))
}

pub async fn run_renew(args: RenewArgs) -> anyhow::Result<()> {
    let out = args.out.clone().unwrap_or_else(|| args.cert_file.clone());
    if !args.force {
        crate::output::confirm_overwrite(&out)?;
    }
    let target = args.ca.target()?;
    let (old, ott) = sshpop_token(
        &args.cert_file,
        &args.key_file,
        args.password_file.as_deref(),
        &target,
        "ssh/renew",
    )
    .await?;
    let response = target.client()?.ssh_renew(&ott).await?;
    let certificate = SshCertificate::from_base64(&response.crt)
        .context("the CA returned a certificate that does not parse")?;
    if certificate.public_key != old.public_key {
        bail!("the CA returned a certificate for another key");
    }
    let line = format!(
        "{} {}\n",
        certificate.to_line(),
        certificate.template.key_id
    );
    write_all(
        &[Output {
            path: &out,
            contents: line.as_bytes(),
            secret: false,
        }],
        true,
    )?;
    note!("Your certificate has been saved in {}.", out.display());
    Ok(())
}

pub async fn run_rekey(args: RekeyArgs) -> anyhow::Result<()> {
    let pub_path = public_path(&args.out);
    let cert_path = certificate_path(&args.out);
    if !args.force
        && let Some(existing) = [&args.out, &pub_path, &cert_path]
            .iter()
            .find(|p| p.exists())
    {
        bail!(
            "{} already exists: use --force to overwrite it",
            existing.display()
        );
    }
    let target = args.ca.target()?;
    let (old, ott) = sshpop_token(
        &args.cert_file,
        &args.key_file,
        args.password_file.as_deref(),
        &target,
        "ssh/rekey",
    )
    .await?;
    let algorithm = match old.public_key.algorithm() {
        mayfly_pki::ssh::SshKeyAlgorithm::EcdsaP384 => KeyAlgorithm::EcP384,
        mayfly_pki::ssh::SshKeyAlgorithm::Ed25519 if args.no_password => KeyAlgorithm::Ed25519,
        _ => KeyAlgorithm::EcP256,
    };
    let key = tokio::task::spawn_blocking(move || PrivateKey::generate(algorithm)).await??;
    let public = SshPublicKey::from_private_key(&key)?;
    let pem = encode_new_key(&key, args.no_password, args.new_password_file.as_deref())?;
    let response = target
        .client()?
        .ssh_rekey(&ott, &STANDARD.encode(public.blob()))
        .await?;
    let certificate = SshCertificate::from_base64(&response.crt)
        .context("the CA returned a certificate that does not parse")?;
    if certificate.public_key != public {
        bail!("the CA returned a certificate for another key");
    }
    let key_id = &certificate.template.key_id;
    let cert_line = format!("{} {key_id}\n", certificate.to_line());
    let pub_line = format!("{} {key_id}\n", public.to_line());
    write_all(
        &[
            Output {
                path: &args.out,
                contents: pem.as_bytes(),
                secret: true,
            },
            Output {
                path: &pub_path,
                contents: pub_line.as_bytes(),
                secret: false,
            },
            Output {
                path: &cert_path,
                contents: cert_line.as_bytes(),
                secret: false,
            },
        ],
        args.force,
    )?;
    note!("✔ Private Key: {}", args.out.display());
    note!("✔ Public Key: {}", pub_path.display());
    note!("✔ Certificate: {}", cert_path.display());
    Ok(())
}
