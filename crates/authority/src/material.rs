//! The key material and provisioners a ca.json names, loaded from disk: what
//! [`crate::Authority::new`] is built from.

use std::path::Path;
use std::sync::Arc;

use mayfly_config::claims::Claims;
use mayfly_config::config::CaConfig;
use mayfly_pki::cert::certificates_from_pem;

use crate::authority::IntermediateCa;
use crate::error::{Error, Result};
use crate::policy::NamePolicies;
use crate::provisioner::Provisioner;

/// Loads the key material and provisioners a [`CaConfig`] names. Relative paths resolve against
/// `base_dir` (the working directory, as step does).
pub struct LoadedMaterial {
    pub roots: Vec<Vec<u8>>,
    pub federated_roots: Vec<Vec<u8>>,
    pub intermediate: IntermediateCa,
    pub provisioners: Vec<Provisioner>,
    /// `authority.policy` and the provisioners' `policy` blocks, each rule checked.
    pub name_policies: NamePolicies,
    pub backdate: time::Duration,
    /// The SSH CA keys, when ca.json has an `ssh` block.
    pub ssh: Option<crate::ssh::SshKeys>,
    /// The root's CRL file (`crl.rootCRL`), served as it is; read when asked for.
    pub root_crl: Option<std::path::PathBuf>,
}

impl LoadedMaterial {
    /// `password` decrypts the intermediate key; it falls back to the config's `password`.
    pub fn load(config: &CaConfig, base_dir: &Path, password: Option<&[u8]>) -> Result<Self> {
        let read = |field: &str, p: &str| -> Result<Vec<u8>> {
            let path = mayfly_config::config::resolve_path(base_dir, p);
            std::fs::read(&path)
                .map_err(|e| Error::Config(format!("{field}: cannot read {}: {e}", path.display())))
        };
        let certs = |field: &str, p: &str| -> Result<Vec<Vec<u8>>> {
            certificates_from_pem(&read(field, p)?)
                .map_err(|e| Error::Config(format!("{field}: {p}: {e}")))
        };
        let mut roots = Vec::new();
        for root in config.root.to_vec() {
            roots.extend(certs("root", &root)?);
        }
        let mut federated_roots = Vec::new();
        for root in &config.federated_roots {
            federated_roots.extend(certs("federatedRoots", root)?);
        }
        let intermediate_der = certs("crt", &config.crt)?
            .into_iter()
            .next()
            .ok_or_else(|| Error::Config("crt: no certificate".into()))?;
        let key_pem = read("key", &config.key)?;
        let password = password.or(config.password.as_ref().map(|p| p.expose().as_bytes()));
        let key = mayfly_pki::keyfile::decode_private_key_pem(&key_pem, password)
            .map_err(|e| Error::Config(format!("key: {}: {e}", config.key)))?;
        let intermediate_spki = mayfly_pki::cert::subject_public_key_info(&intermediate_der)
            .map_err(|e| Error::Config(format!("crt: {e}")))?;
        if intermediate_spki != key.public_key_spki_der()? {
            return Err(Error::Config(format!(
                "key: {} does not belong to the certificate in crt: {}",
                config.key, config.crt
            )));
        }
        let global = Claims::resolve(Claims::DEFAULT, config.authority.claims.as_ref())
            .map_err(|e| Error::Config(format!("authority.claims: {e}")))?;
        let provisioners = config
            .authority
            .provisioners
            .iter()
            .map(|p| Provisioner::from_config(p, global))
            .collect::<Result<Vec<_>>>()?;
        crate::provisioner::check_together(&provisioners)?;
        let name_policies = NamePolicies::from_config(&config.authority)?;
        let backdate = config
            .authority
            .backdate
            .map_or(time::Duration::minutes(1), |d| d.0);
        let ssh = match &config.ssh {
            None => None,
            Some(ssh) => {
                let load_key = |field: &str, p: &str| -> Result<Arc<dyn mayfly_pki::Signer>> {
                    let pem = read(field, p)?;
                    let key = mayfly_pki::keyfile::decode_private_key_pem(&pem, password)
                        .map_err(|e| Error::Config(format!("{field}: {p}: {e}")))?;
                    Ok(Arc::new(key))
                };
                let global_ssh = crate::ssh::claims::SshClaims::resolve(
                    crate::ssh::claims::SshClaims::DEFAULT,
                    config.authority.claims.as_ref(),
                )
                .map_err(|e| Error::Config(format!("authority.claims: {e}")))?;
                let mut claims = std::collections::HashMap::new();
                for p in &config.authority.provisioners {
                    let resolved =
                        crate::ssh::claims::SshClaims::resolve(global_ssh, p.claims.as_ref())
                            .map_err(|e| Error::Config(format!("provisioner {:?}: {e}", p.name)))?;
                    claims.insert(p.name.clone(), resolved);
                }
                Some(crate::ssh::SshKeys {
                    user_key: load_key("ssh.userKey", &ssh.user_key)?,
                    host_key: load_key("ssh.hostKey", &ssh.host_key)?,
                    claims,
                })
            }
        };
        Ok(Self {
            roots,
            federated_roots,
            intermediate: IntermediateCa {
                certificate_der: intermediate_der,
                key: Arc::new(key),
            },
            provisioners,
            name_policies,
            backdate,
            ssh,
            root_crl: config
                .crl
                .as_ref()
                .and_then(|crl| crl.root_crl.as_deref())
                .map(|p| mayfly_config::config::resolve_path(base_dir, p)),
        })
    }
}

impl LoadedMaterial {
    /// The authority this material and `config` describe, listening on `ports`, on `store` (and
    /// `ssh_store` when ca.json has SSH keys). What mayfly-ca runs, and what `mayfly ca publish`
    /// publishes with.
    pub fn into_authority(
        self,
        config: &CaConfig,
        ports: crate::publication::PublicPorts,
        store: Arc<dyn crate::store::CertStore>,
        ssh_store: Option<Arc<dyn crate::ssh::store::SshStore>>,
        clock: Arc<dyn crate::clock::Clock>,
    ) -> Result<crate::Authority> {
        let ssh = match (self.ssh, ssh_store) {
            (Some(keys), Some(store)) => Some(crate::ssh::SshCa::new(keys, store)?),
            (Some(_), None) => {
                return Err(Error::Config(
                    "ssh: SSH keys were added to a running CA: restart it to open their store"
                        .into(),
                ));
            }
            (None, _) => None,
        };
        let publication = crate::publication::Publication::from_config(config, ports)?;
        let authority = crate::Authority::new(crate::AuthorityParts {
            ssh,
            roots: self.roots,
            federated_roots: self.federated_roots,
            intermediate: self.intermediate,
            provisioners: self.provisioners,
            name_policies: self.name_policies,
            backdate: self.backdate,
            dns_names: config.dns_names.clone(),
            store,
            clock,
            publication,
        })?;
        Ok(match self.root_crl {
            Some(path) => authority.with_root_crl(path),
            None => authority,
        })
    }
}
