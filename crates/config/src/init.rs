//! Creating a new PKI: root and intermediate, a JWK provisioner, `ca.json` and `defaults.json`.
//!
//! Shared by `mayfly ca init` and `mayfly-ca dev`. [`plan`] computes every file in memory;
//! [`write`] refuses to overwrite an existing PKI unless forced, then writes each file atomically
//! with its mode. A failure while planning therefore leaves nothing on disk.

use std::path::{Path, PathBuf};

use mayfly_pki::cert::{certificate_pem, create_intermediate, create_root, fingerprint_sha256};
use mayfly_pki::jose::{jwe, jwk::Jwk};
use mayfly_pki::{KeyAlgorithm, PrivateKey, keyfile};
use serde_json::json;
use time::OffsetDateTime;

use crate::config::{
    AuthorityConfig, CaConfig, CrlConfig, DbConfig, DeltaCrlConfig, OcspConfig, OneOrMany,
    ProvisionerConfig, TlsConfig,
};
use crate::error::{Error, Result};
use crate::files::{self, PUBLIC_MODE, SECRET_MODE};

/// The name `ca init --ssh` gives its SSHPOP provisioner, as step does.
pub const SSHPOP_PROVISIONER: &str = "sshpop";

/// Root and intermediate validity: 10 years.
pub const CA_VALIDITY: time::Duration = time::Duration::days(3650);

/// step-ca's default TLS cipher suites (seed 002), by their Go names.
pub const DEFAULT_CIPHER_SUITES: &[&str] = &[
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
];

/// An existing root to build on (`ca init --root --key`).
pub struct ExistingRoot {
    pub certificate_der: Vec<u8>,
    pub key: PrivateKey,
}

/// What to create.
pub struct InitOptions {
    /// The PKI's name: "<name> Root CA", "<name> Intermediate CA".
    pub name: String,
    pub dns_names: Vec<String>,
    pub address: String,
    pub provisioner: String,
    /// Encrypts the root and intermediate keys; `None` leaves them in clear (dev mode only).
    pub key_password: Option<Vec<u8>>,
    /// Encrypts the provisioner's private JWK.
    pub provisioner_password: Vec<u8>,
    pub existing_root: Option<ExistingRoot>,
    /// Only keys and certificates: no ca.json, no defaults.json.
    pub pki_only: bool,
    /// PBKDF2 iterations for keys and the JWE (step: 600,000).
    pub kdf_iterations: u32,
    /// Also create SSH user and host CA keys of this kind, and let the provisioner sign SSH
    /// certificates (`--ssh`).
    pub ssh: Option<KeyAlgorithm>,
    /// The plain-HTTP listener for CRLs, OCSP and the CA certificates (`insecureAddress`), whose
    /// URLs certificates then carry; `None` leaves only HTTPS URLs.
    pub insecure_address: Option<String>,
}

/// How long the root CRL `ca init` signs is valid: it is remade offline with the root key
/// (`mayfly ca root-crl`), so it lasts, yet a revoked intermediate shows within a year at most.
pub const ROOT_CRL_LIFETIME: time::Duration = time::Duration::days(365);

/// The port of a `host:port` listen address; `None` when there is none or it does not parse.
pub fn address_port(address: &str) -> Option<u16> {
    address
        .rsplit_once(':')
        .and_then(|(_, port)| port.parse().ok())
}

/// Where relying parties fetch the root's CRL, as the intermediate names it: on the plain-HTTP
/// listener when there is one, else the HTTPS one; `None` when the port is only known once
/// bound (`:0`), since a URL written into a ten-year certificate must be right.
pub fn root_crl_url(options: &InitOptions) -> Option<String> {
    let host = options.dns_names.first()?;
    let https = address_port(&options.address)?;
    let http = match options
        .insecure_address
        .as_deref()
        .filter(|a| !a.is_empty())
    {
        Some(address) => Some(address_port(address)?),
        None => None,
    };
    if http.unwrap_or(https) == 0 {
        return None;
    }
    Some(format!(
        "{}{}",
        crate::urls::derived_base(host, https, http),
        crate::urls::ROOT_CRL
    ))
}

/// The root's CRL, signed with its key: numbered by the time it is made (so a CRL made later
/// always has a higher number, with no state kept), valid [`ROOT_CRL_LIFETIME`], listing
/// `revoked` (intermediates, by serial magnitude, with their reason).
pub fn sign_root_crl(
    root_der: &[u8],
    root_key: &PrivateKey,
    revoked: &[mayfly_pki::crl::CrlEntry],
    now: OffsetDateTime,
    lifetime: time::Duration,
) -> Result<Vec<u8>> {
    let issuer = mayfly_pki::issuer::IssuerIdentity::from_certificate(root_der)?;
    let now = now.replace_nanosecond(0).unwrap_or(now);
    let params = mayfly_pki::crl::CrlParams {
        number: u64::try_from(now.unix_timestamp()).unwrap_or(1),
        // Backdated as leaves are: a relying party whose clock is behind must not find it
        // not yet valid.
        this_update: now - time::Duration::minutes(1),
        next_update: now + lifetime,
        distribution_points: &[],
        scope: mayfly_pki::crl::CrlScope::Full { freshest: None },
    };
    Ok(mayfly_pki::crl::build_crl(
        &issuer, root_key, &params, revoked,
    )?)
}

/// One file to write.
pub struct PlannedFile {
    pub path: PathBuf,
    pub contents: Vec<u8>,
    pub mode: u32,
}

/// Every file of a new PKI, and the facts to print about it.
pub struct Plan {
    pub files: Vec<PlannedFile>,
    pub root_fingerprint: String,
    pub provisioner_kid: String,
    pub ca_url: String,
    pub ca_config_path: PathBuf,
    pub root_path: PathBuf,
    /// The SSH user CA's public key line (for sshd's TrustedUserCAKeys), with `--ssh`.
    pub ssh_user_ca: Option<String>,
    /// The SSH host CA's public key line (for `@cert-authority` in known_hosts), with `--ssh`.
    pub ssh_host_ca: Option<String>,
}

/// `$MAYFLY_PATH`, or `~/.mayfly`: where the client and the server keep their files.
pub fn mayfly_path() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("MAYFLY_PATH").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    let home = std::env::var_os("HOME")
        .ok_or_else(|| Error::Io("neither MAYFLY_PATH nor HOME is set".into()))?;
    Ok(PathBuf::from(home).join(".mayfly"))
}

/// Paths under a MAYFLY_PATH, mirroring STEPPATH.
pub struct Layout {
    pub base: PathBuf,
}

impl Layout {
    pub fn new(base: impl Into<PathBuf>) -> Self {
        Self { base: base.into() }
    }
    pub fn ca_config(&self) -> PathBuf {
        self.base.join("config/ca.json")
    }
    pub fn defaults(&self) -> PathBuf {
        self.base.join("config/defaults.json")
    }
    pub fn root_cert(&self) -> PathBuf {
        self.base.join("certs/root_ca.crt")
    }
    pub fn intermediate_cert(&self) -> PathBuf {
        self.base.join("certs/intermediate_ca.crt")
    }
    pub fn root_crl(&self) -> PathBuf {
        self.base.join("certs/root_ca.crl")
    }
    pub fn root_key(&self) -> PathBuf {
        self.base.join("secrets/root_ca_key")
    }
    pub fn intermediate_key(&self) -> PathBuf {
        self.base.join("secrets/intermediate_ca_key")
    }
    pub fn ssh_user_key(&self) -> PathBuf {
        self.base.join("secrets/ssh_user_ca_key")
    }
    pub fn ssh_host_key(&self) -> PathBuf {
        self.base.join("secrets/ssh_host_ca_key")
    }
    pub fn ssh_user_public(&self) -> PathBuf {
        self.base.join("certs/ssh_user_ca_key.pub")
    }
    pub fn ssh_host_public(&self) -> PathBuf {
        self.base.join("certs/ssh_host_ca_key.pub")
    }
    pub fn database(&self) -> PathBuf {
        self.base.join("db/mayfly.db")
    }
}

/// The URL clients use, from the first DNS name and the address's port.
pub fn ca_url(dns_names: &[String], address: &str) -> String {
    let host = dns_names.first().map(String::as_str).unwrap_or("localhost");
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    match address.rsplit_once(':').map(|(_, port)| port) {
        Some("443") | None => format!("https://{host}"),
        Some(port) => format!("https://{host}:{port}"),
    }
}

/// Computes the files of a new PKI under `layout`.
pub fn plan(options: &InitOptions, layout: &Layout) -> Result<Plan> {
    if options.name.trim().is_empty() {
        return Err(Error::Config("the PKI name is empty".into()));
    }
    if !options.pki_only && options.dns_names.is_empty() {
        return Err(Error::Config(
            "at least one DNS name or IP address is required".into(),
        ));
    }
    let not_after = OffsetDateTime::now_utc() + CA_VALIDITY;
    let encode_key = |key: &PrivateKey| -> Result<Vec<u8>> {
        let pem = match &options.key_password {
            Some(pw) => keyfile::encode_private_key_pem_with_iterations(
                key,
                Some(pw),
                options.kdf_iterations,
            )?,
            None => keyfile::encode_private_key_pem(key, None)?,
        };
        Ok(pem.into_bytes())
    };

    let mut files = Vec::new();
    let (root_der, root_key) = match &options.existing_root {
        Some(existing) => (existing.certificate_der.clone(), None),
        None => {
            let key = PrivateKey::generate(KeyAlgorithm::EcP256)?;
            let der = create_root(&format!("{} Root CA", options.name), &key, not_after)?;
            (der, Some(key))
        }
    };
    let signing_root_key = match (&options.existing_root, &root_key) {
        (Some(existing), _) => &existing.key,
        (None, Some(key)) => key,
        (None, None) => return Err(Error::Config("no root key".into())),
    };
    let intermediate_key = PrivateKey::generate(KeyAlgorithm::EcP256)?;
    // An existing root may expire before ten years: the intermediate must not outlive it.
    let root_not_after = mayfly_pki::cert::not_after(&root_der)?;
    let intermediate_not_after = not_after.min(root_not_after);
    let intermediate_der = create_intermediate(
        &format!("{} Intermediate CA", options.name),
        &intermediate_key,
        &root_der,
        signing_root_key,
        intermediate_not_after,
        root_crl_url(options).as_deref(),
    )?;
    let root_crl = sign_root_crl(
        &root_der,
        signing_root_key,
        &[],
        OffsetDateTime::now_utc(),
        ROOT_CRL_LIFETIME,
    )?;

    files.push(PlannedFile {
        path: layout.root_cert(),
        contents: certificate_pem(&root_der).into_bytes(),
        mode: PUBLIC_MODE,
    });
    files.push(PlannedFile {
        path: layout.root_crl(),
        contents: root_crl,
        mode: PUBLIC_MODE,
    });
    files.push(PlannedFile {
        path: layout.intermediate_cert(),
        contents: certificate_pem(&intermediate_der).into_bytes(),
        mode: PUBLIC_MODE,
    });
    if let Some(key) = &root_key {
        files.push(PlannedFile {
            path: layout.root_key(),
            contents: encode_key(key)?,
            mode: SECRET_MODE,
        });
    }
    files.push(PlannedFile {
        path: layout.intermediate_key(),
        contents: encode_key(&intermediate_key)?,
        mode: SECRET_MODE,
    });

    let provisioner_key = PrivateKey::generate(KeyAlgorithm::EcP256)?;
    let public_jwk = Jwk::public_from_key(&provisioner_key)?;
    let kid = public_jwk.kid.clone().unwrap_or_default();
    let private_json = Jwk::private_from_key(&provisioner_key)?;
    let encrypted_key = jwe::encrypt_pbes2(
        private_json.as_bytes(),
        &options.provisioner_password,
        Some("jwk+json"),
        options.kdf_iterations,
    )?;

    let mut ssh_lines = None;
    if let Some(algorithm) = options.ssh {
        if matches!(algorithm, KeyAlgorithm::Rsa(_)) {
            return Err(Error::Config(
                "SSH CA keys must be EC P-256, P-384 or Ed25519".into(),
            ));
        }
        let mut lines = Vec::new();
        for (secret, public) in [
            (layout.ssh_user_key(), layout.ssh_user_public()),
            (layout.ssh_host_key(), layout.ssh_host_public()),
        ] {
            let key = PrivateKey::generate(algorithm)?;
            let line = mayfly_pki::ssh::SshPublicKey::from_private_key(&key)?.to_line();
            files.push(PlannedFile {
                path: secret,
                contents: encode_key(&key)?,
                mode: SECRET_MODE,
            });
            files.push(PlannedFile {
                path: public,
                contents: format!("{line}\n").into_bytes(),
                mode: PUBLIC_MODE,
            });
            lines.push(line);
        }
        ssh_lines = Some((lines[0].clone(), lines[1].clone()));
    }

    let root_fingerprint = fingerprint_sha256(&root_der);
    let url = ca_url(&options.dns_names, &options.address);
    if !options.pki_only {
        let path_text = |p: PathBuf| p.display().to_string();
        let config = CaConfig {
            ssh: options.ssh.map(|_| crate::config::SshConfig {
                host_key: path_text(layout.ssh_host_key()),
                user_key: path_text(layout.ssh_user_key()),
            }),
            root: OneOrMany::One(path_text(layout.root_cert())),
            federated_roots: Vec::new(),
            crt: path_text(layout.intermediate_cert()),
            key: path_text(layout.intermediate_key()),
            password: None,
            address: options.address.clone(),
            insecure_address: options.insecure_address.clone().filter(|a| !a.is_empty()),
            dns_names: options.dns_names.clone(),
            logger: Some(json!({"format": "text"})),
            db: Some(DbConfig {
                kind: "sqlite".into(),
                // Absolute: a relative db path is read against ca.json's directory, and a
                // relative MAYFLY_PATH is relative to where `ca init` ran.
                data_source: crate::config::DataSource::new(path_text(
                    std::path::absolute(layout.database()).unwrap_or(layout.database()),
                )),
                database: None,
                value_dir: None,
                badger_file_loading_mode: None,
                retention: None,
            }),
            tls: Some(TlsConfig {
                cipher_suites: DEFAULT_CIPHER_SUITES
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
                min_version: Some(1.2),
                max_version: Some(1.3),
                renegotiation: Some(false),
            }),
            // Active revocation is on from the start: leaves carry the CRL and OCSP URLs, and
            // a certificate cannot get them added later.
            crl: Some(CrlConfig {
                enabled: true,
                delta: Some(DeltaCrlConfig {
                    enabled: true,
                    ..Default::default()
                }),
                root_crl: Some(path_text(layout.root_crl())),
                ..Default::default()
            }),
            ocsp: Some(OcspConfig {
                enabled: true,
                ..Default::default()
            }),
            authority: AuthorityConfig {
                provisioners: [ProvisionerConfig {
                    kind: "JWK".into(),
                    name: options.provisioner.clone(),
                    key: Some(
                        serde_json::to_value(&public_jwk)
                            .map_err(|e| Error::Config(e.to_string()))?,
                    ),
                    encrypted_key: Some(encrypted_key),
                    claims: options.ssh.map(|_| crate::claims::ClaimsConfig {
                        enable_ssh_ca: Some(true),
                        ..Default::default()
                    }),
                    options: None,
                    admin: false,
                    policy: None,
                    other: Default::default(),
                }]
                .into_iter()
                // As `step ca init --ssh`: hosts renew and rekey their SSH certificates, and
                // anyone holding one revokes it, by proving possession of its key.
                .chain(options.ssh.map(|_| ProvisionerConfig {
                    kind: "SSHPOP".into(),
                    name: SSHPOP_PROVISIONER.into(),
                    key: None,
                    encrypted_key: None,
                    claims: Some(crate::claims::ClaimsConfig {
                        enable_ssh_ca: Some(true),
                        ..Default::default()
                    }),
                    options: None,
                    admin: false,
                    policy: None,
                    other: Default::default(),
                }))
                .collect(),
                claims: None,
                backdate: None,
                template: None,
                policy: None,
            },
            publication: None,
            metrics_address: None,
            limits: None,
            comments: Default::default(),
        };
        // The ca.json has no secrets (the JWE is encrypted), but it names where they are.
        files.push(PlannedFile {
            path: layout.ca_config(),
            contents: config.to_json_pretty()?.into_bytes(),
            mode: SECRET_MODE,
        });
        let defaults = json!({
            "ca-url": url,
            "ca-config": path_text(layout.ca_config()),
            "fingerprint": root_fingerprint,
            "root": path_text(layout.root_cert()),
        });
        files.push(PlannedFile {
            path: layout.defaults(),
            contents: serde_json::to_vec_pretty(&defaults)
                .map_err(|e| Error::Config(e.to_string()))?,
            mode: PUBLIC_MODE,
        });
    }
    Ok(Plan {
        files,
        root_fingerprint,
        provisioner_kid: kid,
        ca_url: url,
        ca_config_path: layout.ca_config(),
        root_path: layout.root_cert(),
        ssh_user_ca: ssh_lines.as_ref().map(|(user, _)| user.clone()),
        ssh_host_ca: ssh_lines.map(|(_, host)| host),
    })
}

/// Writes a plan. Without `force`, any existing file of the plan stops it before anything is
/// written.
pub fn write(plan: &Plan, layout: &Layout, force: bool) -> Result<()> {
    if !force && let Some(existing) = plan.files.iter().find(|f| f.path.exists()) {
        return Err(Error::Io(format!(
            "{} already exists: a PKI is already set up in {} (use --force to overwrite it)",
            existing.path.display(),
            layout.base.display()
        )));
    }
    for dir in ["config", "certs", "secrets", "db"] {
        files::create_dir_private(&layout.base.join(dir))?;
    }
    for file in &plan.files {
        files::write_atomic(&file.path, &file.contents, file.mode)?;
    }
    Ok(())
}

/// Reads an existing root certificate and its key for `ca init --root --key`.
pub fn load_existing_root(
    cert_path: &Path,
    key_path: &Path,
    password: Option<&[u8]>,
) -> Result<ExistingRoot> {
    let read = |p: &Path| {
        std::fs::read(p).map_err(|e| Error::Io(format!("cannot read {}: {e}", p.display())))
    };
    let certificate_der = mayfly_pki::cert::certificates_from_pem(&read(cert_path)?)
        .map_err(|e| Error::Config(format!("{}: {e}", cert_path.display())))?
        .into_iter()
        .next()
        .ok_or_else(|| Error::Config(format!("{}: no certificate", cert_path.display())))?;
    let key = keyfile::decode_private_key_pem(&read(key_path)?, password)
        .map_err(|e| Error::Config(format!("{}: {e}", key_path.display())))?;
    if mayfly_pki::cert::subject_public_key_info(&certificate_der)? != key.public_key_spki_der()? {
        return Err(Error::Config(format!(
            "{} is not the key of the certificate {}",
            key_path.display(),
            cert_path.display()
        )));
    }
    Ok(ExistingRoot {
        certificate_der,
        key,
    })
}
