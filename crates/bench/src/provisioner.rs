//! The provisioner key the tokens are signed with: from a file, or from the CA's
//! `/provisioners`, decrypted with the provisioner password.

use std::path::Path;

use anyhow::{Context, bail};
use mayfly_pki::PrivateKey;
use mayfly_pki::jose::{jwe, jwk::Jwk};
use mayfly_proto::ProvisionerBody;

/// A provisioner ready to sign tokens.
pub struct Provisioner {
    pub name: String,
    pub key: PrivateKey,
    pub kid: String,
}

/// The contents of a `--provisioner-key` file.
#[derive(Debug, PartialEq, Eq)]
pub enum KeyFile<'a> {
    /// A private JWK, in clear.
    Jwk(&'a str),
    /// A PBES2 JWE, compact or flattened JSON.
    Jwe(&'a str),
}

/// Tells a private JWK from a JWE.
pub fn classify(text: &str) -> anyhow::Result<KeyFile<'_>> {
    let text = text.trim();
    if text.starts_with('{') {
        let value: serde_json::Value =
            serde_json::from_str(text).context("the key file is not valid JSON")?;
        if value.get("kty").is_some() {
            Ok(KeyFile::Jwk(text))
        } else if value.get("ciphertext").is_some() {
            Ok(KeyFile::Jwe(text))
        } else {
            bail!("the key file is JSON but neither a JWK (\"kty\") nor a JWE (\"ciphertext\")")
        }
    } else if text.split('.').count() == 5 {
        Ok(KeyFile::Jwe(text))
    } else {
        bail!("the key file is neither a JWK (JSON) nor a JWE (compact or JSON)")
    }
}

/// Reads the password in `path` (step's semantics: trailing white space trimmed).
pub fn read_password(path: Option<&Path>, what: &str) -> anyhow::Result<Vec<u8>> {
    let Some(path) = path else {
        bail!("--password-file is required to decrypt {what}");
    };
    let raw = std::fs::read(path)
        .with_context(|| format!("cannot read the password file {}", path.display()))?;
    Ok(mayfly_pki::keyfile::read_password_file_bytes(&raw))
}

/// Decrypts a PBES2 JWE holding a private JWK and returns the key.
pub fn decrypt_key(jwe_text: &str, password: &[u8]) -> anyhow::Result<PrivateKey> {
    let plaintext =
        jwe::decrypt_pbes2(jwe_text, password).context("cannot decrypt the provisioner key")?;
    private_key(&plaintext)
}

/// The private key of a private JWK.
pub fn private_key(json: &[u8]) -> anyhow::Result<PrivateKey> {
    let key = Jwk::from_json(json)
        .and_then(|jwk| jwk.to_private_key())
        .context("the provisioner key is not a usable private JWK")?;
    Ok(key)
}

/// The `kid` of `key` (its RFC 7638 thumbprint, as step sets it).
pub fn kid_of(key: &PrivateKey) -> anyhow::Result<String> {
    Jwk::public_from_key(key)?
        .kid
        .context("the provisioner key has no key id")
}

/// Loads the key in a `--provisioner-key` file.
pub fn load_key_file(path: &Path, password_file: Option<&Path>) -> anyhow::Result<PrivateKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the provisioner key {}", path.display()))?;
    match classify(&text).with_context(|| path.display().to_string())? {
        KeyFile::Jwk(json) => private_key(json.as_bytes()),
        KeyFile::Jwe(jwe_text) => {
            let password = read_password(password_file, "the provisioner key")?;
            decrypt_key(jwe_text, &password)
        }
    }
}

fn is_jwk(p: &ProvisionerBody) -> bool {
    p.kind.eq_ignore_ascii_case("JWK")
}

/// The JWK provisioner whose public key has `kid`.
pub fn find_by_kid<'a>(
    provisioners: &'a [ProvisionerBody],
    kid: &str,
) -> anyhow::Result<&'a ProvisionerBody> {
    provisioners
        .iter()
        .filter(|p| is_jwk(p))
        .find(|p| {
            p.key
                .as_ref()
                .and_then(|k| k.get("kid"))
                .and_then(|k| k.as_str())
                == Some(kid)
        })
        .with_context(|| {
            format!("no JWK provisioner of the CA has the key {kid}: name it with --provisioner")
        })
}

#[cfg(test)]
mod tests {
    use mayfly_pki::KeyAlgorithm;

    use super::*;

    fn body(kind: &str, name: &str, kid: &str) -> ProvisionerBody {
        ProvisionerBody {
            kind: kind.into(),
            name: name.into(),
            key: Some(serde_json::json!({ "kid": kid })),
            encrypted_key: None,
            claims: None,
            oidc: None,
        }
    }

    #[test]
    fn classify_forms() {
        assert_eq!(
            classify(" {\"kty\":\"EC\"}\n").unwrap(),
            KeyFile::Jwk("{\"kty\":\"EC\"}")
        );
        assert!(matches!(
            classify("{\"protected\":\"x\",\"ciphertext\":\"y\"}").unwrap(),
            KeyFile::Jwe(_)
        ));
        assert_eq!(classify("a.b.c.d.e\n").unwrap(), KeyFile::Jwe("a.b.c.d.e"));
        assert!(classify("{\"a\":1}").is_err());
        assert!(classify("{").is_err());
        assert!(classify("a.b.c").is_err());
    }

    #[test]
    fn finding_by_kid() {
        let two = vec![body("JWK", "a", "1"), body("JWK", "b", "2")];
        assert_eq!(find_by_kid(&two, "2").unwrap().name, "b");
        assert!(find_by_kid(&two, "3").is_err());
    }

    #[test]
    fn jwe_round_trip() {
        let key = PrivateKey::generate(KeyAlgorithm::EcP256).unwrap();
        let jwk = Jwk::private_from_key(&key).unwrap();
        let dir = std::env::temp_dir().join(format!("mayfly-bench-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let jwk_path = dir.join("key.json");
        std::fs::write(&jwk_path, jwk.as_bytes()).unwrap();
        let loaded = load_key_file(&jwk_path, None).unwrap();
        assert_eq!(kid_of(&loaded).unwrap(), kid_of(&key).unwrap());

        let jwe_text = jwe::encrypt_pbes2(jwk.as_bytes(), b"pass", Some("jwk+json"), 1000).unwrap();
        let jwe_path = dir.join("key.jwe");
        std::fs::write(&jwe_path, jwe_text).unwrap();
        let pw_path = dir.join("password");
        std::fs::write(&pw_path, "pass \n").unwrap();
        assert!(load_key_file(&jwe_path, None).is_err());
        let loaded = load_key_file(&jwe_path, Some(&pw_path)).unwrap();
        assert_eq!(kid_of(&loaded).unwrap(), kid_of(&key).unwrap());
        std::fs::remove_dir_all(&dir).ok();
    }
}
