//! `mayfly ca provisioner add|remove|update`: edit the provisioners in ca.json.
//!
//! A deployment replaces the default provisioner before it serves, so these commands edit the
//! one file a running CA depends on. Three rules make that safe:
//!
//! - Nothing but `authority.provisioners` changes. [`CaConfig`] drops keys it does not know
//!   (step's options, `_comment`s, future fields) when serialised, and `serde_json::Value` sorts
//!   keys, so the file is read into an order-preserving [`Json`] tree instead: every other key
//!   keeps its value and its place.
//! - The result is validated as `mayfly-ca` loads it ([`CaConfig::parse`], the global claims with
//!   [`Claims::resolve`], [`Provisioner::from_config`] for every entry, unique names) before
//!   anything is written. Any error refuses the edit with one line and leaves the file untouched.
//! - The previous content is kept in `ca.json.bak` (0600), and the new file replaces the old one
//!   atomically ([`write_atomic`]) with the old file's mode, so the CA never reads half a file.

use std::collections::HashSet;
use std::fmt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use mayfly_authority::provisioner::Provisioner;
use mayfly_config::claims::Claims;
use mayfly_config::config::CaConfig;
use mayfly_config::duration::GoDuration;
use mayfly_config::files::{SECRET_MODE, write_atomic};
use mayfly_pki::jose::jwe::{self, STEP_PBKDF2_ITERATIONS};
use mayfly_pki::jose::jwk::Jwk;
use mayfly_pki::{KeyAlgorithm, PrivateKey, keyfile};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

use crate::context::{Defaults, mayfly_path};
use crate::password;

/// The reminder printed after every change.
const RESTART_REMINDER: &str =
    "Reload mayfly-ca to apply it (SIGHUP, or systemctl reload mayfly-ca).";

#[derive(Debug, clap::Args)]
pub struct AddArgs {
    /// Name of the new provisioner, e.g. an e-mail address; tokens carry it as their issuer.
    name: String,
    /// Provisioner type: JWK (one-time tokens signed with its key), ACME (RFC 8555 clients
    /// such as certbot and lego, at /acme/NAME/directory), X5C (tokens signed by a certificate
    /// chaining to --x5c-roots), K8SSA (Kubernetes service-account tokens, checked with
    /// --public-key), SSHPOP (SSH certificates renewing, rekeying and revoking themselves) or
    /// OIDC (ID tokens of an OpenID provider: users log in there).
    #[arg(
        long = "type",
        value_name = "TYPE",
        value_enum,
        ignore_case = true,
        default_value = "JWK"
    )]
    kind: Kind,
    /// Generate a new P-256 key pair; the private key is stored in ca.json encrypted with the
    /// password.
    #[arg(long, conflicts_with_all = ["public_key", "private_key"])]
    create: bool,
    /// File with the password that encrypts the private key (with --create or --private-key)
    /// [default: asked twice at the terminal].
    #[arg(long, value_name = "FILE", conflicts_with = "public_key")]
    password_file: Option<PathBuf>,
    /// JWK: a public JWK (JSON file) to use as the provisioner key; no private key is stored,
    /// so tokens must be made where the private key is. K8SSA: a PEM file of the public keys
    /// (or certificates) that sign the cluster's service-account tokens (--pem-keys is step's
    /// older name).
    #[arg(
        long,
        visible_alias = "pem-keys",
        value_name = "FILE",
        conflicts_with = "private_key"
    )]
    public_key: Option<PathBuf>,
    /// X5C: the PEM root certificate(s) that token certificates must chain to (written into
    /// ca.json as "roots"). Each must be a CA allowed to sign certificates.
    #[arg(long, visible_alias = "x5c-root", value_name = "FILE")]
    x5c_roots: Option<PathBuf>,
    /// An existing private key to use (a private JWK as JSON, or an unencrypted PEM key; EC
    /// P-256/P-384 or Ed25519); it is stored encrypted with the password.
    #[arg(long, value_name = "FILE")]
    private_key: Option<PathBuf>,
    /// Let this provisioner use the CA's admin API (`mayfly ca certificates`, `mayfly ca
    /// audit`): its tokens, and certificates issued through it, authenticate there. Written as
    /// "admin": true in ca.json. With --type OIDC, --admin=EMAIL (or a group) names an
    /// administrator, whose ID tokens get the names they ask for; repeatable.
    #[arg(
        long,
        value_name = "EMAIL",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = ""
    )]
    admin: Vec<String>,
    #[command(flatten)]
    oidc: super::provisioner_oidc::OidcFlags,
    #[command(flatten)]
    claims: ClaimsFlags,
    #[command(flatten)]
    config: CaConfigFlag,
}

#[derive(Debug, clap::Args)]
pub struct RemoveArgs {
    /// Name of the provisioner to remove.
    name: String,
    #[command(flatten)]
    config: CaConfigFlag,
}

#[derive(Debug, clap::Args)]
pub struct UpdateArgs {
    /// Name of the provisioner to change.
    name: String,
    /// Let this provisioner use the CA's admin API ("admin": true in ca.json); --admin=false
    /// takes that away.
    #[arg(
        long,
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true"
    )]
    admin: Option<bool>,
    #[command(flatten)]
    claims: ClaimsFlags,
    #[command(flatten)]
    config: CaConfigFlag,
}

/// The provisioner types `add` creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Kind {
    #[value(name = "JWK")]
    Jwk,
    #[value(name = "ACME")]
    Acme,
    #[value(name = "X5C")]
    X5c,
    #[value(name = "K8SSA")]
    K8sSa,
    #[value(name = "SSHPOP")]
    SshPop,
    #[value(name = "OIDC")]
    Oidc,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Jwk => "JWK",
            Kind::Acme => "ACME",
            Kind::X5c => "X5C",
            Kind::K8sSa => "K8SSA",
            Kind::SshPop => "SSHPOP",
            Kind::Oidc => "OIDC",
        }
    }
}

/// Which ca.json to edit.
#[derive(Debug, Clone, clap::Args)]
pub struct CaConfigFlag {
    /// The ca.json to edit [default: "ca-config" in $MAYFLY_PATH/config/defaults.json, else
    /// $MAYFLY_PATH/config/ca.json].
    #[arg(long, value_name = "FILE")]
    ca_config: Option<PathBuf>,
}

/// Claims, with step's flag names. Unset flags leave the claim as it is (or inherited).
#[derive(Debug, Clone, clap::Args)]
pub struct ClaimsFlags {
    /// Shortest certificate lifetime the provisioner allows (minTLSCertDuration), a duration
    /// such as "5m".
    #[arg(long, value_name = "DURATION", value_parser = duration_text)]
    x509_min_dur: Option<String>,
    /// Longest certificate lifetime the provisioner allows (maxTLSCertDuration), a duration
    /// such as "24h".
    #[arg(long, value_name = "DURATION", value_parser = duration_text)]
    x509_max_dur: Option<String>,
    /// Lifetime of certificates that ask for none (defaultTLSCertDuration), a duration such as
    /// "24h".
    #[arg(long, value_name = "DURATION", value_parser = duration_text)]
    x509_default_dur: Option<String>,
    /// Refuse to renew this provisioner's certificates (disableRenewal);
    /// --disable-renewal=false allows renewal again.
    #[arg(
        long,
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        overrides_with = "no_disable_renewal"
    )]
    disable_renewal: Option<bool>,
    /// Allow renewal of this provisioner's certificates (disableRenewal: false).
    #[arg(long, overrides_with = "disable_renewal")]
    no_disable_renewal: bool,
    /// Allow renewing certificates that have already expired (allowRenewalAfterExpiry);
    /// --allow-renewal-after-expiry=false refuses it again.
    #[arg(
        long,
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        overrides_with = "no_allow_renewal_after_expiry"
    )]
    allow_renewal_after_expiry: Option<bool>,
    /// Refuse renewing expired certificates (allowRenewalAfterExpiry: false).
    #[arg(long, overrides_with = "allow_renewal_after_expiry")]
    no_allow_renewal_after_expiry: bool,
    /// Let this provisioner sign SSH certificates (enableSSHCA); --ssh=false stops it.
    #[arg(
        long,
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true"
    )]
    ssh: Option<bool>,
}

/// Checks a duration flag the way ca.json will be read, keeping the text as written.
fn duration_text(text: &str) -> Result<String, String> {
    let text = text.trim();
    text.parse::<GoDuration>().map_err(|e| e.to_string())?;
    Ok(text.to_string())
}

impl ClaimsFlags {
    /// The claims to set, by their ca.json names, in step's order.
    fn changes(&self) -> Vec<(&'static str, Json)> {
        let flag = |on: Option<bool>, off: bool| if off { Some(false) } else { on };
        let mut changes = Vec::new();
        let durations = [
            ("minTLSCertDuration", &self.x509_min_dur),
            ("maxTLSCertDuration", &self.x509_max_dur),
            ("defaultTLSCertDuration", &self.x509_default_dur),
        ];
        for (key, value) in durations {
            if let Some(value) = value {
                changes.push((key, Json::String(value.clone())));
            }
        }
        let booleans = [
            (
                "disableRenewal",
                flag(self.disable_renewal, self.no_disable_renewal),
            ),
            (
                "allowRenewalAfterExpiry",
                flag(
                    self.allow_renewal_after_expiry,
                    self.no_allow_renewal_after_expiry,
                ),
            ),
            ("enableSSHCA", self.ssh),
        ];
        for (key, value) in booleans {
            if let Some(value) = value {
                changes.push((key, Json::Bool(value)));
            }
        }
        changes
    }
}

/// Formats claim changes as `name=value, ...`.
fn describe(changes: &[(&str, Json)]) -> String {
    changes
        .iter()
        .map(|(key, value)| match value {
            Json::String(text) => format!("{key}={text}"),
            other => format!("{key}={}", serde_json::to_string(other).unwrap_or_default()),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub async fn add(args: AddArgs) -> anyhow::Result<()> {
    let file = CaFile::load(args.config.ca_config.as_deref())?;
    let mut tree = file.tree.clone();
    check_kind_flags(&args)?;
    args.oidc.refuse_unless_oidc(args.kind == Kind::Oidc)?;
    // A bare --admin is the admin API's; --admin=EMAIL names an OIDC administrator.
    let admin_api = args.admin.iter().any(String::is_empty);
    let oidc_admins: Vec<String> = args
        .admin
        .iter()
        .filter(|a| !a.is_empty())
        .cloned()
        .collect();
    if args.kind != Kind::Oidc && !oidc_admins.is_empty() {
        bail!("--admin=EMAIL names OIDC administrators: only with --type OIDC");
    }
    if let Some(existing) = provisioners(&tree)?
        .iter()
        .find(|p| p.get("name").and_then(Json::as_str) == Some(args.name.as_str()))
    {
        bail!(
            "{} already has a provisioner named {:?} ({}): remove it first or choose another name",
            file.shown.display(),
            args.name,
            existing.get("type").and_then(Json::as_str).unwrap_or("?")
        );
    }

    let mut entry = vec![
        ("type".to_string(), Json::String(args.kind.as_str().into())),
        ("name".to_string(), Json::String(args.name.clone())),
    ];
    let mut kid = None;
    let mut encrypted = false;
    if args.kind == Kind::Jwk {
        let (public, encrypted_key) = jwk_key(&args)?;
        kid = public.kid.clone();
        encrypted = encrypted_key.is_some();
        entry.push(("key".into(), Json::from_serialize(&public)?));
        if let Some(encrypted_key) = encrypted_key {
            entry.push(("encryptedKey".into(), Json::String(encrypted_key)));
        }
    }
    let mut detail = None;
    match (args.kind, &args.x5c_roots, &args.public_key) {
        (Kind::X5c, Some(path), _) => {
            let (pem, count) = x5c_roots(path)?;
            entry.push(("roots".into(), Json::String(base64_of(pem.as_bytes()))));
            detail = Some(format!("✔ Roots: {count} from {}", path.display()));
        }
        (Kind::X5c, None, _) => bail!("an X5C provisioner needs --x5c-roots FILE"),
        (Kind::K8sSa, _, Some(path)) => {
            let (pem, count) = k8s_public_keys(path)?;
            entry.push(("publicKeys".into(), Json::String(base64_of(pem.as_bytes()))));
            detail = Some(format!("✔ Public keys: {count} from {}", path.display()));
        }
        (Kind::K8sSa, _, None) => bail!(
            "a K8SSA provisioner needs --public-key FILE: the PEM public keys of the cluster's service-account tokens"
        ),
        _ => {}
    }
    if args.kind == Kind::Oidc {
        entry.extend(args.oidc.fields(&oidc_admins)?);
    }
    if admin_api {
        entry.push(("admin".into(), Json::Bool(true)));
    }
    let changes = args.claims.changes();
    if !changes.is_empty() {
        let claims = changes
            .iter()
            .map(|(key, value)| (key.to_string(), value.clone()))
            .collect();
        entry.push(("claims".into(), Json::Object(claims)));
    }
    provisioners_mut(&mut tree, true)?.push(Json::Object(entry));
    let backup = file.commit(&tree)?;

    match &kid {
        Some(kid) => outln!(
            "✔ Added provisioner {} ({}) [kid: {kid}]",
            args.name,
            args.kind.as_str()
        )?,
        None => outln!("✔ Added provisioner {} ({})", args.name, args.kind.as_str())?,
    }
    if let Some(detail) = &detail {
        outln!("{detail}")?;
    }
    if admin_api {
        outln!("✔ Admin: it may use the admin API")?;
    }
    if !oidc_admins.is_empty() {
        outln!("✔ Administrators: {}", oidc_admins.join(", "))?;
    }
    if !changes.is_empty() {
        outln!("✔ Claims: {}", describe(&changes))?;
    }
    if args.kind == Kind::Jwk && !encrypted {
        outln!("  No encrypted private key is stored: make its tokens where the private key is.")?;
    }
    file.report(&backup)
}

/// Refuses flags that do not belong to the type being added.
fn check_kind_flags(args: &AddArgs) -> anyhow::Result<()> {
    let kind = args.kind;
    let set = [
        ("--create", args.create, &[Kind::Jwk][..]),
        ("--private-key", args.private_key.is_some(), &[Kind::Jwk]),
        (
            "--password-file",
            args.password_file.is_some(),
            &[Kind::Jwk],
        ),
        (
            "--admin",
            args.admin.iter().any(String::is_empty),
            &[Kind::Jwk],
        ),
        (
            "--public-key",
            args.public_key.is_some(),
            &[Kind::Jwk, Kind::K8sSa],
        ),
        ("--x5c-roots", args.x5c_roots.is_some(), &[Kind::X5c]),
    ];
    for (flag, given, kinds) in set {
        if given && !kinds.contains(&kind) {
            let names: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
            bail!(
                "{flag} is for {} provisioners, not {}",
                names.join(" and "),
                kind.as_str()
            );
        }
    }
    Ok(())
}

/// Go's JSON form of bytes, which is how step writes PEM into ca.json.
fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The roots of a new X5C provisioner, as step writes them: each certificate of `path` as PEM,
/// one after the other. Each must be a CA that may sign certificates (as step checks), or no
/// token certificate could ever chain to it.
fn x5c_roots(path: &Path) -> anyhow::Result<(String, usize)> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let roots = mayfly_pki::cert::certificates_from_pem(&bytes)
        .with_context(|| format!("{}: no root certificate", path.display()))?;
    let mut pem = Vec::new();
    for root in &roots {
        let info = mayfly_pki::cert::CertificateInfo::from_der(root)
            .with_context(|| format!("{}: not a certificate", path.display()))?;
        if !mayfly_pki::cert::is_certificate_signer(root)
            .with_context(|| format!("{}: not a certificate", path.display()))?
        {
            bail!(
                "{}: certificate {:?} cannot be an X5C root: it is not a CA with the certificate-sign key usage",
                path.display(),
                info.common_name
            );
        }
        pem.push(mayfly_pki::cert::certificate_pem(root));
    }
    Ok((pem.join("\n"), roots.len()))
}

/// The public keys of a new K8sSA provisioner, as step writes them: each key of `path` (PKIX
/// or PKCS #1 public keys, or certificates' keys) as a PKIX PEM block.
fn k8s_public_keys(path: &Path) -> anyhow::Result<(String, usize)> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let keys = mayfly_pki::pubkey::public_keys_from_pem(&bytes)
        .with_context(|| format!("{}: no usable public key", path.display()))?;
    let pem: Vec<String> = keys
        .iter()
        .map(|key| mayfly_pki::pubkey::public_key_pem(key))
        .collect();
    Ok((pem.join("\n"), keys.len()))
}

/// The public JWK of a new JWK provisioner and, unless only a public key was given, its
/// encrypted private JWK.
fn jwk_key(args: &AddArgs) -> anyhow::Result<(Jwk, Option<String>)> {
    if let Some(path) = &args.public_key {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let mut public = Jwk::from_json(&bytes)
            .with_context(|| format!("{} is not a JWK (JSON)", path.display()))?;
        if public.d.is_some() {
            bail!(
                "{} holds a private key: pass it with --private-key (it is then stored encrypted), or give only its public part",
                path.display()
            );
        }
        let thumbprint = public
            .thumbprint()
            .with_context(|| format!("{}: not a usable public key", path.display()))?;
        match &public.kid {
            Some(kid) if kid != &thumbprint => bail!(
                "{}: key id {kid:?} is not the key's thumbprint {thumbprint:?}",
                path.display()
            ),
            Some(_) => {}
            None => public.kid = Some(thumbprint),
        }
        return Ok((public, None));
    }
    let key = match &args.private_key {
        Some(path) => read_private_key(path)?,
        None if args.create => PrivateKey::generate(KeyAlgorithm::EcP256)?,
        None => bail!(
            "a JWK provisioner needs a key: pass --create to generate one, or --public-key FILE or --private-key FILE"
        ),
    };
    let password = password::obtain_new(
        args.password_file.as_deref(),
        "Choose a password to encrypt the provisioner key",
        "--password-file FILE",
    )?;
    let public = Jwk::public_from_key(&key)?;
    let private_json = Jwk::private_from_key(&key)?;
    let encrypted = jwe::encrypt_pbes2(
        private_json.as_bytes(),
        &password,
        Some("jwk+json"),
        STEP_PBKDF2_ITERATIONS,
    )?;
    Ok((public, Some(encrypted)))
}

/// A private JWK (JSON) or an unencrypted PEM private key.
fn read_private_key(path: &Path) -> anyhow::Result<PrivateKey> {
    let bytes = zeroize::Zeroizing::new(
        std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?,
    );
    let key = if bytes.trim_ascii_start().starts_with(b"{") {
        Jwk::from_json(&bytes).and_then(|jwk| jwk.to_private_key())
    } else {
        keyfile::decode_private_key_pem(&bytes, None)
    };
    key.with_context(|| format!("{}: not a usable private key", path.display()))
}

pub async fn remove(args: RemoveArgs) -> anyhow::Result<()> {
    let file = CaFile::load(args.config.ca_config.as_deref())?;
    let mut tree = file.tree.clone();
    let list = provisioners_mut(&mut tree, false)?;
    let before = list.len();
    let mut removed_kinds = Vec::new();
    list.retain(|p| {
        let matches = p.get("name").and_then(Json::as_str) == Some(args.name.as_str());
        if matches {
            removed_kinds.push(
                p.get("type")
                    .and_then(Json::as_str)
                    .unwrap_or("?")
                    .to_string(),
            );
        }
        !matches
    });
    if list.len() == before {
        bail!(
            "{} has no provisioner named {:?}; {}",
            file.shown.display(),
            args.name,
            name_list(&file.tree)
        );
    }
    let left = list.len();
    let backup = file.commit(&tree)?;
    outln!(
        "✔ Removed provisioner {} ({})",
        args.name,
        removed_kinds.join(", ")
    )?;
    if left == 0 {
        note!(
            "mayfly: warning: {} has no provisioners left: the CA will authorise no certificates until one is added",
            file.shown.display()
        );
    }
    file.report(&backup)
}

pub async fn update(args: UpdateArgs) -> anyhow::Result<()> {
    let changes = args.claims.changes();
    if changes.is_empty() && args.admin.is_none() {
        bail!(
            "nothing to update: pass --admin or a claims flag such as --x509-default-dur, --x509-max-dur or --disable-renewal"
        );
    }
    let file = CaFile::load(args.config.ca_config.as_deref())?;
    let mut tree = file.tree.clone();
    let list = provisioners_mut(&mut tree, false)?;
    let mut matching = list
        .iter_mut()
        .filter(|p| p.get("name").and_then(Json::as_str) == Some(args.name.as_str()));
    let entry = match (matching.next(), matching.next()) {
        (Some(entry), None) => entry,
        (Some(_), Some(_)) => bail!(
            "{} has several provisioners named {:?}: names must be unique; fix the file by hand",
            file.shown.display(),
            args.name
        ),
        (None, _) => bail!(
            "{} has no provisioner named {:?}; {}",
            file.shown.display(),
            args.name,
            name_list(&file.tree)
        ),
    };
    if let Some(admin) = args.admin {
        entry.set("admin", Json::Bool(admin))?;
    }
    if !changes.is_empty() {
        let Json::Object(fields) = entry else {
            bail!("a provisioner entry is not a JSON object");
        };
        let claims = match fields.iter().position(|(key, _)| key == "claims") {
            Some(index) => &mut fields[index].1,
            None => {
                fields.push(("claims".into(), Json::Object(Vec::new())));
                let last = fields.len() - 1;
                &mut fields[last].1
            }
        };
        if matches!(claims, Json::Null) {
            *claims = Json::Object(Vec::new());
        }
        for (key, value) in &changes {
            claims.set(key, value.clone())?;
        }
    }
    let backup = file.commit(&tree)?;
    let mut described = Vec::new();
    if let Some(admin) = args.admin {
        described.push(format!("admin={admin}"));
    }
    if !changes.is_empty() {
        described.push(describe(&changes));
    }
    outln!(
        "✔ Updated provisioner {}: {}",
        args.name,
        described.join(", ")
    )?;
    file.report(&backup)
}

/// `the provisioners are: "a" (JWK), "b" (ACME)`, for errors.
fn name_list(tree: &Json) -> String {
    let names: Vec<String> = provisioners(tree)
        .map(|list| {
            list.iter()
                .map(|p| {
                    format!(
                        "{:?} ({})",
                        p.get("name").and_then(Json::as_str).unwrap_or("?"),
                        p.get("type").and_then(Json::as_str).unwrap_or("?")
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    if names.is_empty() {
        "it has no provisioners".into()
    } else {
        format!("the provisioners are: {}", names.join(", "))
    }
}

/// `authority.provisioners`.
fn provisioners(tree: &Json) -> anyhow::Result<&[Json]> {
    let authority = tree
        .get("authority")
        .ok_or_else(|| anyhow!("ca.json has no \"authority\" object"))?;
    match authority.get("provisioners") {
        Some(Json::Array(list)) => Ok(list),
        None | Some(Json::Null) => Ok(&[]),
        Some(_) => bail!("\"authority.provisioners\" in ca.json is not a list"),
    }
}

/// `authority.provisioners`, mutable; `create` adds an empty list where there is none.
fn provisioners_mut(tree: &mut Json, create: bool) -> anyhow::Result<&mut Vec<Json>> {
    let authority = match tree.get_mut("authority") {
        Some(authority @ Json::Object(_)) => authority,
        _ => bail!("ca.json has no \"authority\" object"),
    };
    if create && matches!(authority.get("provisioners"), None | Some(Json::Null)) {
        authority.set("provisioners", Json::Array(Vec::new()))?;
    }
    match authority.get_mut("provisioners") {
        Some(Json::Array(list)) => Ok(list),
        None | Some(Json::Null) => bail!("ca.json has no provisioners"),
        Some(_) => bail!("\"authority.provisioners\" in ca.json is not a list"),
    }
}

/// A ca.json read for editing.
struct CaFile {
    /// The path as the user knows it, for messages.
    shown: PathBuf,
    /// The file itself (symbolic links resolved, so the link stays a link).
    real: PathBuf,
    original: Vec<u8>,
    tree: Json,
    mode: u32,
    uid: u32,
    gid: u32,
}

impl CaFile {
    /// Finds and reads ca.json: `--ca-config`, else "ca-config" in defaults.json, else
    /// `$MAYFLY_PATH/config/ca.json`.
    fn load(flag: Option<&Path>) -> anyhow::Result<Self> {
        let shown = match flag {
            Some(path) => path.to_path_buf(),
            None => match Defaults::load()?.ca_config {
                Some(path) => PathBuf::from(path),
                None => mayfly_path()?.join("config/ca.json"),
            },
        };
        let real = std::fs::canonicalize(&shown)
            .with_context(|| format!("cannot open the CA configuration {}", shown.display()))?;
        let original =
            std::fs::read(&real).with_context(|| format!("cannot read {}", shown.display()))?;
        let metadata =
            std::fs::metadata(&real).with_context(|| format!("cannot read {}", shown.display()))?;
        let text = std::str::from_utf8(&original)
            .map_err(|_| anyhow!("{} is not UTF-8 text", shown.display()))?;
        let tree: Json = serde_json::from_str(text).map_err(|e| {
            anyhow!(
                "{} is not valid JSON (line {}, column {}): {e}; nothing was changed",
                shown.display(),
                e.line(),
                e.column()
            )
        })?;
        if !matches!(tree, Json::Object(_)) {
            bail!("{} is not a JSON object", shown.display());
        }
        Ok(Self {
            shown,
            real,
            original,
            tree,
            mode: metadata.permissions().mode() & 0o777,
            uid: metadata.uid(),
            gid: metadata.gid(),
        })
    }

    /// Validates `tree`, then backs up the old file and writes the new one. Returns the backup
    /// path.
    fn commit(&self, tree: &Json) -> anyhow::Result<PathBuf> {
        let mut text = serde_json::to_string_pretty(tree).context("serialising ca.json")?;
        if self.original.ends_with(b"\n") {
            text.push('\n');
        }
        validate(&text).with_context(|| {
            format!(
                "refusing to change {}: the result would not be a valid configuration",
                self.shown.display()
            )
        })?;
        // Someone may have edited the file meanwhile; do not overwrite their change.
        let current = std::fs::read(&self.real)
            .with_context(|| format!("cannot read {}", self.shown.display()))?;
        if current != self.original {
            bail!(
                "{} changed while it was being edited; nothing was written, run the command again",
                self.shown.display()
            );
        }
        let backup = backup_path(&self.real);
        write_atomic(&backup, &self.original, SECRET_MODE)
            .with_context(|| "cannot keep a backup; nothing was changed".to_string())?;
        write_atomic(&self.real, text.as_bytes(), self.mode)?;
        // Written by root for a CA running as its own user: give the file back to its owner.
        if let Ok(written) = std::fs::metadata(&self.real)
            && (written.uid() != self.uid || written.gid() != self.gid)
            && let Err(e) = std::os::unix::fs::chown(&self.real, Some(self.uid), Some(self.gid))
        {
            note!(
                "mayfly: warning: cannot give {} back to its owner (uid {}, gid {}): {e}",
                self.shown.display(),
                self.uid,
                self.gid
            );
        }
        Ok(backup)
    }

    /// Where the change went, and what to do next.
    fn report(&self, backup: &Path) -> anyhow::Result<()> {
        outln!(
            "✔ Certificate Authority configuration: {} (previous version in {})",
            self.shown.display(),
            backup.display()
        )?;
        outln!("{RESTART_REMINDER}")
    }
}

/// `ca.json` → `ca.json.bak`, beside it.
fn backup_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "ca.json".into());
    path.with_file_name(format!("{name}.bak"))
}

/// Checks `text` the way `mayfly-ca` loads it, except for the key files.
fn validate(text: &str) -> anyhow::Result<()> {
    let (config, _unknown) = CaConfig::parse(text)?;
    let global = Claims::resolve(Claims::DEFAULT, config.authority.claims.as_ref())
        .map_err(|e| anyhow!("authority.claims: {e}"))?;
    let mut names = HashSet::new();
    let mut all = Vec::new();
    for entry in &config.authority.provisioners {
        all.push(Provisioner::from_config(entry, global)?);
        if !names.insert(entry.name.as_str()) {
            bail!(
                "two provisioners are named {:?}: names must be unique",
                entry.name
            );
        }
    }
    mayfly_authority::provisioner::check_together(&all)?;
    Ok(())
}

/// A JSON value whose objects keep their keys in file order (serde_json's `Value` sorts them
/// unless its `preserve_order` feature is on).
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Json {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    /// Converts a serialisable value, keeping its field order.
    fn from_serialize<T: Serialize>(value: &T) -> anyhow::Result<Json> {
        let text = serde_json::to_string(value).context("serialising JSON")?;
        serde_json::from_str(&text).context("serialising JSON")
    }

    fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(fields) => fields.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    fn get_mut(&mut self, key: &str) -> Option<&mut Json> {
        match self {
            Json::Object(fields) => fields.iter_mut().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Replaces the value of `key`, or appends it.
    fn set(&mut self, key: &str, value: Json) -> anyhow::Result<()> {
        let Json::Object(fields) = self else {
            bail!("cannot set {key:?}: not a JSON object");
        };
        match fields.iter_mut().find(|(k, _)| k == key) {
            Some((_, old)) => *old = value,
            None => fields.push((key.to_string(), value)),
        }
        Ok(())
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(text) => Some(text),
            _ => None,
        }
    }
}

impl Serialize for Json {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Json::Null => serializer.serialize_unit(),
            Json::Bool(b) => serializer.serialize_bool(*b),
            Json::Number(n) => n.serialize(serializer),
            Json::String(s) => serializer.serialize_str(s),
            Json::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Json::Object(fields) => {
                let mut map = serializer.serialize_map(Some(fields.len()))?;
                for (key, value) in fields {
                    map.serialize_entry(key, value)?;
                }
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Json, E> {
        Ok(Json::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Json, E> {
        Ok(Json::Number(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Json, E> {
        Ok(Json::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Json, E> {
        serde_json::Number::from_f64(v)
            .map(Json::Number)
            .ok_or_else(|| E::custom("a number that JSON cannot hold"))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Json, E> {
        Ok(Json::String(v.to_string()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Json, E> {
        Ok(Json::String(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut fields = Vec::new();
        while let Some((key, value)) = map.next_entry::<String, Json>()? {
            fields.push((key, value));
        }
        Ok(Json::Object(fields))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tree_keeps_key_order_and_values() {
        let text = r#"{"z":1,"a":{"y":[true,null,1.5,-3],"b":"x"},"_c":"é"}"#;
        let tree: Json = serde_json::from_str(text).unwrap();
        assert_eq!(serde_json::to_string(&tree).unwrap(), text);
    }

    #[test]
    fn set_replaces_in_place_or_appends() {
        let mut tree: Json = serde_json::from_str(r#"{"a":1,"b":2}"#).unwrap();
        tree.set("a", Json::Bool(true)).unwrap();
        tree.set("c", Json::Null).unwrap();
        assert_eq!(
            serde_json::to_string(&tree).unwrap(),
            r#"{"a":true,"b":2,"c":null}"#
        );
    }

    #[test]
    fn backups_sit_beside_the_file() {
        assert_eq!(
            backup_path(Path::new("/etc/mayfly/ca.json")),
            Path::new("/etc/mayfly/ca.json.bak")
        );
    }
}
