//! X5C credentials: a certificate and its key (`--x5c-cert`, `--x5c-key`, as step's) sign the
//! token for an X5C provisioner, whose roots the certificate chains to, instead of a
//! provisioner key.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use mayfly_pki::PrivateKey;
use mayfly_proto::ProvisionerBody;
use time::OffsetDateTime;

use super::token::TokenRequest;
use crate::context::CaTarget;

#[derive(Debug, Clone, Default, clap::Args)]
pub struct X5cFlags {
    /// Sign the token with this certificate's key, for an X5C provisioner: a PEM certificate,
    /// followed by the intermediates that link it to the provisioner's roots.
    #[arg(long, value_name = "FILE", requires = "x5c_key")]
    pub x5c_cert: Option<PathBuf>,
    /// The private key of --x5c-cert (PEM; when encrypted, its password is read from the
    /// provisioner password file, or asked for).
    #[arg(long, value_name = "FILE", requires = "x5c_cert")]
    pub x5c_key: Option<PathBuf>,
}

/// A certificate chain and the key of its first certificate, read and matched.
pub struct X5cCredential {
    chain: Vec<Vec<u8>>,
    key: PrivateKey,
}

impl X5cFlags {
    /// The credential the flags name, if they name one; `password_file` decrypts the key.
    pub fn load(&self, password_file: Option<&Path>) -> anyhow::Result<Option<X5cCredential>> {
        let (Some(cert), Some(key_file)) = (&self.x5c_cert, &self.x5c_key) else {
            return Ok(None);
        };
        let pem = std::fs::read(cert).with_context(|| format!("cannot read {}", cert.display()))?;
        let chain = mayfly_pki::cert::certificates_from_pem(&pem)
            .with_context(|| format!("--x5c-cert {}", cert.display()))?;
        let key = crate::password::read_private_key(
            key_file,
            password_file,
            "--provisioner-password-file FILE",
        )?;
        let leaf_key = mayfly_pki::cert::subject_public_key_info(&chain[0])
            .with_context(|| format!("--x5c-cert {}", cert.display()))?;
        if leaf_key != key.public_key_spki_der()? {
            bail!(
                "--x5c-key {} is not the key of the certificate in --x5c-cert {}",
                key_file.display(),
                cert.display()
            );
        }
        Ok(Some(X5cCredential { chain, key }))
    }
}

/// Chooses the X5C provisioner and signs the token with `credential`.
pub async fn mint(
    target: &CaTarget,
    request: &TokenRequest<'_>,
    credential: &X5cCredential,
) -> anyhow::Result<String> {
    // Checked before anything is fetched; the CA checks again against its own clock.
    let (nbf, exp) = super::token::validity(request, OffsetDateTime::now_utc())?;
    let provisioners = target.client()?.provisioners().await?;
    let chosen = choose(&provisioners, request.provisioner)?;
    note!("✔ Provisioner: {} (X5C)", chosen.name);
    let token = mayfly_authority::token::NewToken {
        issuer: &chosen.name,
        ca_url: &target.url,
        endpoint: request.endpoint,
        subject: request.subject,
        sans: request.sans,
        root_fingerprint: &target.root_fingerprint(),
        not_before: nbf,
        expires_at: exp,
    };
    Ok(token.sign_x5c(&credential.key, &credential.chain, request.ssh.as_ref())?)
}

/// The X5C provisioner `name` names, or the only one, or the one picked at a terminal.
fn choose<'a>(
    provisioners: &'a [ProvisionerBody],
    name: Option<&str>,
) -> anyhow::Result<&'a ProvisionerBody> {
    let x5c: Vec<&ProvisionerBody> = provisioners
        .iter()
        .filter(|p| p.kind.eq_ignore_ascii_case("X5C"))
        .collect();
    if let Some(name) = name {
        return x5c
            .iter()
            .find(|p| p.name == name)
            .copied()
            .with_context(|| {
                format!(
                    "the CA has no X5C provisioner named {name:?} (its X5C provisioners: {})",
                    names(&x5c)
                )
            });
    }
    match x5c.as_slice() {
        [] => bail!("the CA has no X5C provisioner: --x5c-cert and --x5c-key sign tokens for one"),
        [only] => Ok(only),
        several if crate::prompt::interactive() => {
            let items: Vec<String> = several
                .iter()
                .map(|p| format!("{} (X5C)", p.name))
                .collect();
            let index = crate::prompt::choose(
                "Which provisioner do you want to use?",
                &items,
                "--provisioner",
            )?;
            Ok(several[index])
        }
        several => bail!(
            "the CA has several X5C provisioners ({}): choose one with --provisioner NAME",
            names(several)
        ),
    }
}

fn names(provisioners: &[&ProvisionerBody]) -> String {
    if provisioners.is_empty() {
        return "none".into();
    }
    provisioners
        .iter()
        .map(|p| p.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(name: &str, kind: &str) -> ProvisionerBody {
        ProvisionerBody {
            kind: kind.into(),
            name: name.into(),
            key: None,
            encrypted_key: None,
            claims: None,
            oidc: None,
        }
    }

    #[test]
    fn only_x5c_provisioners_are_chosen() {
        let all = [body("jwk", "JWK"), body("devices", "X5C")];
        assert_eq!(choose(&all, None).unwrap().name, "devices");
        assert_eq!(choose(&all, Some("devices")).unwrap().name, "devices");
        let error = choose(&all, Some("jwk")).unwrap_err().to_string();
        assert!(
            error.contains("no X5C provisioner named \"jwk\" (its X5C provisioners: devices)"),
            "{error}"
        );
        let error = choose(&all[..1], None).unwrap_err().to_string();
        assert!(error.contains("has no X5C provisioner"), "{error}");
    }
}
