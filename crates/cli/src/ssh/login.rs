//! `mayfly ssh login`, `ssh logout` and `ssh list`: a user's SSH certificate straight into
//! their ssh-agent, as step's commands of the same names do it.
//!
//! `login` makes a key pair, has the CA certify it for a user (the token from a JWK
//! provisioner's key or from a login at an OIDC provisioner's provider) and hands both to the
//! agent for as long as the certificate is valid: the key never touches the disk.

use anyhow::{Context, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use mayfly_pki::ssh::agent::AgentIdentity;
use mayfly_pki::ssh::{SshCertificate, SshPublicKey};
use mayfly_pki::{KeyAlgorithm, PrivateKey};
use mayfly_proto::ssh::SshSignRequest;

use super::agent::Agent;
use crate::ca::token::{self, ProvisionerFlags, TokenRequest};
use crate::context::{CaFlags, CaTarget};

#[derive(Debug, clap::Args)]
pub struct LoginArgs {
    /// Who logs in: the certificate's key id, and its only principal unless --principal is
    /// given. With an OIDC provisioner it may be left out: the provider's e-mail address is
    /// the key id, and the CA derives the principals from it.
    identity: Option<String>,
    /// A principal (user name) the certificate names; repeatable [default: IDENTITY].
    #[arg(long, value_name = "NAME")]
    principal: Vec<String>,
    /// A token from `mayfly ca token --ssh`, or an ID token from the provisioner's OpenID
    /// provider [default: create one with the provisioner].
    #[arg(long, value_name = "TOKEN", env = "MAYFLY_TOKEN")]
    token: Option<String>,
    #[command(flatten)]
    provisioner: ProvisionerFlags,
    /// File holding the JWK provisioner's password (when no --token is given).
    #[arg(
        long,
        visible_alias = "password-file",
        value_name = "FILE",
        env = "MAYFLY_PROVISIONER_PASSWORD_FILE"
    )]
    provisioner_password_file: Option<std::path::PathBuf>,
    /// When the certificate becomes valid: RFC 3339 time or duration from now [default: now].
    #[arg(long, value_name = "TIME|DURATION")]
    not_before: Option<String>,
    /// When it expires: RFC 3339 time or duration from now [default: the provisioner's, 16h].
    #[arg(long, value_name = "TIME|DURATION")]
    not_after: Option<String>,
    /// Key type: EC (ECDSA) or OKP (Ed25519).
    #[arg(long, value_name = "KTY", default_value = "EC")]
    kty: String,
    /// Curve: P-256 or P-384 for EC, Ed25519 for OKP.
    #[arg(long, value_name = "CURVE")]
    curve: Option<String>,
    /// The key's comment in the agent [default: IDENTITY, else the key id].
    #[arg(long, value_name = "TEXT")]
    comment: Option<String>,
    /// Get a new certificate even when the agent holds a valid one for IDENTITY.
    #[arg(long, short)]
    force: bool,
    #[command(flatten)]
    ca: CaFlags,
}

#[derive(Debug, clap::Args)]
pub struct LogoutArgs {
    /// Remove only the keys whose comment is IDENTITY.
    identity: Option<String>,
    /// Remove every key (with IDENTITY: every key with that comment), not only certificates
    /// this CA signed.
    #[arg(long)]
    all: bool,
    #[command(flatten)]
    ca: CaFlags,
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// List only the keys whose comment is SUBJECT.
    subject: Option<String>,
    /// Print the public keys (and certificates) instead of their fingerprints.
    #[arg(long)]
    raw: bool,
}

/// The CA's user CA keys (blobs), which sign user certificates.
async fn user_ca_keys(target: &CaTarget) -> anyhow::Result<Vec<Vec<u8>>> {
    let roots = target.client()?.ssh_roots().await?;
    roots
        .user_key
        .iter()
        .map(|key| {
            STANDARD
                .decode(key.as_bytes())
                .context("the CA sent an SSH key that is not base64")
        })
        .collect()
}

/// The certificate an identity is, when it is one.
fn certificate_of(identity: &AgentIdentity) -> Option<SshCertificate> {
    SshCertificate::from_blob(&identity.blob).ok()
}

fn now() -> u64 {
    u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp()).unwrap_or(0)
}

/// A claim of an unverified token, read only to label the certificate (the CA verifies it).
fn token_claim(token: &str, name: &str) -> Option<String> {
    let jws = mayfly_pki::jose::jws::Jws::parse(token).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(jws.unverified_payload()).ok()?;
    claims
        .get(name)
        .and_then(|v| v.as_str())
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

pub async fn run_login(args: LoginArgs) -> anyhow::Result<()> {
    let algorithm = KeyAlgorithm::from_flags(&args.kty, args.curve.as_deref(), None)?;
    if matches!(algorithm, KeyAlgorithm::Rsa(_)) {
        bail!("--kty {}: SSH keys here are EC or OKP", args.kty);
    }
    let mut agent = Agent::connect("ssh login")?;
    let target = args.ca.target()?;
    let principals = match (&args.identity, args.principal.is_empty()) {
        (Some(identity), true) => vec![identity.clone()],
        _ => args.principal.clone(),
    };
    let comment = args.comment.clone().or_else(|| args.identity.clone());
    if !args.force
        && let Some(comment) = &comment
        && let Some(present) = valid_certificate(&mut agent, &target, comment).await?
    {
        note!(
            "The key {} {} is already present in the SSH agent.",
            present.public_key.algorithm().certificate_type(),
            present.public_key.fingerprint()
        );
        return Ok(());
    }
    let subject = args.identity.clone().unwrap_or_default();
    let ott = match &args.token {
        Some(token) => token.trim().to_string(),
        None => {
            token::mint(
                &target,
                &TokenRequest {
                    subject: &subject,
                    endpoint: "ssh/sign",
                    sans: &principals,
                    not_before: None,
                    not_after: None,
                    provisioner: args.provisioner.provisioner.as_deref(),
                    password_file: args.provisioner_password_file.as_deref(),
                    ssh: Some(token::ssh_claims(&subject, false, &principals)),
                },
            )
            .await?
        }
    };
    // An ID token's e-mail address is the key id, as step sends it; otherwise IDENTITY, or
    // the token's subject.
    let key_id = token_claim(&ott, "email")
        .or_else(|| args.identity.clone())
        .or_else(|| token_claim(&ott, "sub"))
        .context("IDENTITY is required: the token names no one")?;
    let key = tokio::task::spawn_blocking(move || PrivateKey::generate(algorithm)).await??;
    let public = SshPublicKey::from_private_key(&key)?;
    let response = target
        .client()?
        .ssh_sign(&SshSignRequest {
            public_key: STANDARD.encode(public.blob()),
            ott,
            cert_type: Some("user".into()),
            key_id: Some(key_id.clone()),
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
    let comment = comment.unwrap_or_else(|| key_id.clone());
    let lifetime = agent.add(&key, &certificate, &comment)?;
    note!("✔ CA: {}", target.url);
    note!(
        "✔ Certificate: {} for {}",
        certificate.template.key_id,
        certificate.template.principals.join(", ")
    );
    note!("✔ SSH Agent: yes (for {lifetime} s)");
    Ok(())
}

/// A certificate in the agent under `comment`, signed by this CA's user key and still valid.
async fn valid_certificate(
    agent: &mut Agent,
    target: &CaTarget,
    comment: &str,
) -> anyhow::Result<Option<SshCertificate>> {
    let identities = agent.list()?;
    if !identities.iter().any(|i| i.comment == comment) {
        return Ok(None);
    }
    // Without the CA's keys nothing can be shown to be its: a new login is the safe answer.
    let Ok(ca_keys) = user_ca_keys(target).await else {
        return Ok(None);
    };
    let now = now();
    Ok(identities
        .iter()
        .filter(|i| i.comment == comment)
        .filter_map(certificate_of)
        .find(|cert| {
            ca_keys.iter().any(|k| k == cert.signature_key.blob())
                && cert.template.valid_after <= now
                && now < cert.template.valid_before
        }))
}

pub async fn run_logout(args: LogoutArgs) -> anyhow::Result<()> {
    let mut agent = Agent::connect("ssh logout")?;
    if args.all && args.identity.is_none() {
        agent.remove_all()?;
        return outln!("All identities removed.");
    }
    // Without --all only this CA's certificates go; when its keys cannot be had, only
    // certificates (never a plain key the user added themselves).
    let ca_keys = if args.all {
        None
    } else {
        let target = args.ca.target()?;
        Some(user_ca_keys(&target).await.unwrap_or_default())
    };
    let mut removed = 0;
    for identity in agent.list()? {
        if args
            .identity
            .as_ref()
            .is_some_and(|c| *c != identity.comment)
        {
            continue;
        }
        let chosen = match &ca_keys {
            None => true,
            Some(keys) => certificate_of(&identity).is_some_and(|cert| {
                keys.is_empty() || keys.iter().any(|k| k == cert.signature_key.blob())
            }),
        };
        if chosen {
            agent.remove(&identity)?;
            removed += 1;
        }
    }
    let what = match (removed, args.all) {
        (0, _) => "Identity not found",
        (_, true) => "All identities removed",
        _ => "Identity removed",
    };
    match &args.identity {
        Some(identity) => outln!("{what}: {identity}"),
        None => outln!("{what}."),
    }
}

pub async fn run_list(args: ListArgs) -> anyhow::Result<()> {
    let identities = Agent::connect("ssh list")?.list()?;
    if identities.is_empty() {
        return outln!("The agent has no identities.");
    }
    let mut text = String::new();
    for identity in identities
        .iter()
        .filter(|i| args.subject.as_ref().is_none_or(|s| *s == i.comment))
    {
        text.push_str(&describe(identity, args.raw));
        text.push('\n');
    }
    crate::output::write_stdout(&text)
}

/// An identity as `ssh-add -l` (fingerprint) or `ssh-add -L` (`--raw`) prints it.
fn describe(identity: &AgentIdentity, raw: bool) -> String {
    let comment = if identity.comment.is_empty() {
        "no comment"
    } else {
        &identity.comment
    };
    let (public, certificate) = match certificate_of(identity) {
        Some(cert) => (cert.public_key.clone(), Some(cert)),
        None => match SshPublicKey::from_blob(&identity.blob) {
            Ok(key) => (key, None),
            Err(_) => return format!("(a key mayfly cannot read) {comment}"),
        },
    };
    let algorithm = public.algorithm();
    if raw {
        let kind = match &certificate {
            Some(_) => algorithm.certificate_type(),
            None => algorithm.key_type(),
        };
        return format!(
            "{kind} {} {}",
            STANDARD.encode(&identity.blob),
            identity.comment
        )
        .trim_end()
        .to_string();
    }
    format!(
        "{} {} {comment} ({}{})",
        algorithm.bits(),
        public.fingerprint(),
        algorithm.short_name(),
        if certificate.is_some() { "-CERT" } else { "" }
    )
}
