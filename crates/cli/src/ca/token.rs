//! `mayfly ca token`: one-time tokens signed with a JWK provisioner's key, or, with
//! `--x5c-cert` and `--x5c-key`, with a certificate's key for an X5C provisioner; ID tokens from
//! an OIDC provisioner's provider, after a login there ([`crate::oauth`]).
//!
//! A JWK provisioner's private key comes from the CA itself (`/provisioners`, as a PBES2 JWE)
//! and is decrypted here with the provisioner password; the CA never sees the password.

use std::path::PathBuf;

use anyhow::{Context, bail};
use mayfly_pki::PrivateKey;
use mayfly_pki::jose::{jwe, jwk::Jwk};
use time::OffsetDateTime;

use crate::context::{CaFlags, CaTarget};
use crate::password;

/// step's default token lifetime.
const DEFAULT_TOKEN_LIFETIME: time::Duration = time::Duration::minutes(5);

#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    /// The certificate's subject: its common name, and its only SAN unless --san is given.
    /// With --revoke, the serial number (decimal) of the certificate to revoke.
    subject: String,
    /// Make a token that revokes the certificate whose serial number is SUBJECT.
    #[arg(long, conflicts_with = "san")]
    revoke: bool,
    /// Make a token for an SSH certificate: SUBJECT is its key id (with --revoke: an SSH
    /// certificate's serial).
    #[arg(long, conflicts_with = "san")]
    ssh: bool,
    /// With --ssh: a host certificate instead of a user certificate.
    #[arg(long, requires = "ssh")]
    host: bool,
    /// With --ssh: a principal the certificate may name; repeatable [default: SUBJECT].
    #[arg(long, value_name = "NAME", requires = "ssh")]
    principal: Vec<String>,
    /// A subject alternative name the token authorises (DNS name, IP, e-mail or URI); repeatable.
    #[arg(long, value_name = "SAN")]
    san: Vec<String>,
    /// When the token becomes valid: RFC 3339 time or duration from now [default: now].
    #[arg(long, value_name = "TIME|DURATION")]
    not_before: Option<String>,
    /// When the token expires: RFC 3339 time or duration from now [default: 5m; at most 1h].
    #[arg(long, value_name = "TIME|DURATION")]
    not_after: Option<String>,
    #[command(flatten)]
    provisioner: ProvisionerFlags,
    #[command(flatten)]
    x5c: super::x5c::X5cFlags,
    /// File holding the provisioner password (--password-file is step's other name for it);
    /// with --x5c-key, the password of that key when it is encrypted.
    #[arg(
        long,
        visible_alias = "password-file",
        value_name = "FILE",
        env = "MAYFLY_PROVISIONER_PASSWORD_FILE"
    )]
    provisioner_password_file: Option<PathBuf>,
    /// Write the token to FILE instead of standard output.
    #[arg(long, value_name = "FILE")]
    output_file: Option<PathBuf>,
    #[command(flatten)]
    ca: CaFlags,
}

/// Choosing a provisioner.
#[derive(Debug, Clone, clap::Args)]
pub struct ProvisionerFlags {
    /// Name of the provisioner to use: JWK (its key signs the token), X5C, or OIDC (log in at
    /// its provider) [default: the only one that can make the token].
    #[arg(long, value_name = "NAME", env = "MAYFLY_PROVISIONER")]
    pub provisioner: Option<String>,
}

/// Everything needed to mint a token.
pub struct TokenRequest<'a> {
    pub subject: &'a str,
    /// `sign`, or `revoke` for a revocation token.
    pub endpoint: &'a str,
    pub sans: &'a [String],
    pub not_before: Option<&'a str>,
    pub not_after: Option<&'a str>,
    pub provisioner: Option<&'a str>,
    pub password_file: Option<&'a std::path::Path>,
    /// step's `step.ssh` claims, for an SSH token.
    pub ssh: Option<serde_json::Value>,
}

pub async fn run(args: TokenArgs) -> anyhow::Result<()> {
    let target = args.ca.target()?;
    let endpoint = match (args.ssh, args.revoke) {
        (false, false) => "sign",
        (false, true) => "revoke",
        (true, false) => "ssh/sign",
        (true, true) => "ssh/revoke",
    };
    let ssh = (args.ssh && !args.revoke).then(|| {
        ssh_claims(
            &args.subject,
            args.host,
            if args.principal.is_empty() {
                std::slice::from_ref(&args.subject)
            } else {
                &args.principal
            },
        )
    });
    let request = TokenRequest {
        ssh,
        subject: &args.subject,
        endpoint,
        sans: &args.san,
        not_before: args.not_before.as_deref(),
        not_after: args.not_after.as_deref(),
        provisioner: args.provisioner.provisioner.as_deref(),
        password_file: args.provisioner_password_file.as_deref(),
    };
    let token = match args.x5c.load(request.password_file)? {
        Some(credential) => super::x5c::mint(&target, &request, &credential).await?,
        None => mint(&target, &request).await?,
    };
    match &args.output_file {
        Some(path) => {
            crate::output::write_all(
                &[crate::output::Output {
                    path,
                    contents: token.as_bytes(),
                    secret: true,
                }],
                true,
            )?;
            note!("The token has been saved in {}.", path.display());
        }
        None => outln!("{token}")?,
    }
    Ok(())
}

/// step's `step.ssh` claims: the certificate type, key id and the principals it may name.
pub fn ssh_claims(key_id: &str, host: bool, principals: &[String]) -> serde_json::Value {
    serde_json::json!({
        "certType": if host { "host" } else { "user" },
        "keyID": key_id,
        "principals": principals,
        "validAfter": "",
        "validBefore": "",
    })
}

/// Fetches the provisioner and makes a token with it: a JWK provisioner's key (decrypted here)
/// signs one; an OIDC provisioner's provider issues an ID token after the user logs in there.
pub async fn mint(target: &CaTarget, request: &TokenRequest<'_>) -> anyhow::Result<String> {
    // Checked before anything is asked or fetched; signing checks again against its own clock.
    validity(request, OffsetDateTime::now_utc())?;
    let client = target.client()?;
    let provisioners = client.provisioners().await?;
    let chosen = super::choose::provisioner(&provisioners, request.provisioner)?;
    note!("✔ Provisioner: {}", super::choose::describe(chosen));
    if let Some(oidc) = &chosen.oidc {
        // The provider decides the token's names and lifetime: the request's are not asked.
        return crate::oauth::id_token(&crate::oauth::Login {
            provider: &oidc.configuration_endpoint,
            client_id: &oidc.client_id,
            client_secret: &oidc.client_secret,
            scopes: crate::oauth::DEFAULT_SCOPES
                .iter()
                .map(ToString::to_string)
                .collect(),
            listen: oidc.listen_address.as_deref(),
        })
        .await;
    }
    let encrypted = match &chosen.encrypted_key {
        Some(key) => key.clone(),
        None => bail!(
            "provisioner {:?} publishes no encrypted key: create the token where its key is",
            chosen.name
        ),
    };
    let password = password::obtain(
        request.password_file,
        "Please enter the password to decrypt the provisioner key",
        "--provisioner-password-file FILE",
    )?;
    // 600,000 PBKDF2 iterations take a noticeable moment; keep it off the async thread.
    let key = tokio::task::spawn_blocking(move || -> anyhow::Result<PrivateKey> {
        let plaintext = zeroize::Zeroizing::new(
            jwe::decrypt_pbes2(&encrypted, &password)
                .context("cannot decrypt the provisioner key")?,
        );
        Ok(Jwk::from_json(&plaintext)?.to_private_key()?)
    })
    .await??;
    let public = Jwk::public_from_key(&key)?;
    let kid = public.kid.clone().unwrap_or_default();
    sign_token(
        &key,
        &kid,
        &chosen.name,
        &target.url,
        &target.root_fingerprint(),
        request,
    )
}

/// Builds and signs the claims step's tokens carry.
pub fn sign_token(
    key: &PrivateKey,
    kid: &str,
    issuer: &str,
    ca_url: &str,
    root_fingerprint: &str,
    request: &TokenRequest<'_>,
) -> anyhow::Result<String> {
    let (nbf, exp) = validity(request, OffsetDateTime::now_utc())?;
    let token = mayfly_authority::token::NewToken {
        issuer,
        ca_url,
        endpoint: request.endpoint,
        subject: request.subject,
        sans: request.sans,
        root_fingerprint,
        not_before: nbf,
        expires_at: exp,
    };
    Ok(token.sign_with_ssh(key, kid, request.ssh.as_ref())?)
}

/// When the token is valid: --not-before and --not-after resolved against `now`, within what
/// the CA accepts (at most an hour), so a token the CA would refuse is not made.
pub(super) fn validity(
    request: &TokenRequest<'_>,
    now: OffsetDateTime,
) -> anyhow::Result<(OffsetDateTime, OffsetDateTime)> {
    let nbf = match request.not_before {
        Some(text) => resolve_time("--not-before", text, now)?,
        None => now,
    };
    let exp = match request.not_after {
        Some(text) => resolve_time("--not-after", text, now)?,
        None => nbf + DEFAULT_TOKEN_LIFETIME,
    };
    if exp <= nbf {
        bail!("--not-after must be later than --not-before");
    }
    let max = mayfly_authority::token::MAX_LIFETIME;
    if exp - nbf > max {
        bail!(
            "--not-after {}: a token may be valid for at most {} minutes (from --not-before, \
             or now); the CA refuses longer ones",
            request.not_after.unwrap_or_default(),
            max.whole_minutes()
        );
    }
    Ok((nbf, exp))
}

/// An RFC 3339 time or a duration from `now`.
pub fn resolve_time(flag: &str, text: &str, now: OffsetDateTime) -> anyhow::Result<OffsetDateTime> {
    match mayfly_authority::policy::TimeSpec::parse("time", text) {
        Ok(mayfly_authority::policy::TimeSpec::At(at)) => Ok(at),
        Ok(mayfly_authority::policy::TimeSpec::FromNow(d)) => Ok(now + d),
        Err(_) => bail!("{flag} {text:?} is not an RFC 3339 time or a duration like \"5m\""),
    }
}
