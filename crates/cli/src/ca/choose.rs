//! Which provisioner makes a token: the one `--provisioner` names, the only one that can, or,
//! at a terminal, the one picked from a list of those that can (step's picker). JWK
//! provisioners mint tokens with their published key; OIDC provisioners get them from their
//! provider, through a login.

use mayfly_proto::ProvisionerBody;

/// A provisioner this client can make tokens with: JWK, with its encrypted private key
/// published; OIDC, with its client published.
fn usable(provisioner: &ProvisionerBody) -> bool {
    (provisioner.kind.eq_ignore_ascii_case("JWK") && provisioner.encrypted_key.is_some())
        || provisioner.oidc.is_some()
}

/// `name (JWK) [kid: ...]` or `name (OIDC) [client: ...]`, as the picker lists it and step
/// prints it.
pub fn describe(provisioner: &ProvisionerBody) -> String {
    if let Some(oidc) = &provisioner.oidc {
        return format!(
            "{} ({}) [client: {}]",
            provisioner.name, provisioner.kind, oidc.client_id
        );
    }
    let kid = provisioner
        .key
        .as_ref()
        .and_then(|k| k.get("kid"))
        .and_then(|k| k.as_str())
        .unwrap_or("?");
    format!("{} ({}) [kid: {kid}]", provisioner.name, provisioner.kind)
}

/// The provisioner to mint with.
pub fn provisioner<'a>(
    provisioners: &'a [ProvisionerBody],
    name: Option<&str>,
) -> anyhow::Result<&'a ProvisionerBody> {
    if let Some(name) = name {
        if let Some(oidc) = provisioners
            .iter()
            .find(|p| p.name == name && p.oidc.is_some())
        {
            return Ok(oidc);
        }
        return Ok(mayfly_client::choose_jwk_provisioner(
            provisioners,
            Some(name),
        )?);
    }
    let candidates: Vec<&ProvisionerBody> = provisioners.iter().filter(|p| usable(p)).collect();
    match candidates.as_slice() {
        // None can mint: the general rule says why (no JWK provisioner, or no published key).
        [] => Ok(mayfly_client::choose_jwk_provisioner(provisioners, None)?),
        [only] => Ok(only),
        several if crate::prompt::interactive() => {
            let items: Vec<String> = several.iter().map(|p| describe(p)).collect();
            let index = crate::prompt::choose(
                "Which provisioner do you want to use?",
                &items,
                "--provisioner",
            )?;
            Ok(several[index])
        }
        several => {
            let names: Vec<&str> = several.iter().map(|p| p.name.as_str()).collect();
            anyhow::bail!(
                "the CA has several provisioners that can make tokens ({}): choose one with \
                 --provisioner NAME",
                names.join(", ")
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(name: &str, kind: &str, encrypted: bool) -> ProvisionerBody {
        ProvisionerBody {
            kind: kind.into(),
            name: name.into(),
            key: Some(serde_json::json!({"kid": format!("kid-{name}")})),
            encrypted_key: encrypted.then(|| "jwe".to_string()),
            claims: None,
            oidc: None,
        }
    }

    #[test]
    fn the_only_usable_provisioner_is_taken_whatever_else_there_is() {
        let all = [
            body("acme", "ACME", false),
            body("public-only", "JWK", false),
            body("ops", "JWK", true),
        ];
        assert_eq!(provisioner(&all, None).unwrap().name, "ops");
    }

    #[test]
    fn a_named_provisioner_is_taken_and_an_unknown_name_refused() {
        let all = [body("a", "JWK", true), body("b", "JWK", true)];
        assert_eq!(provisioner(&all, Some("b")).unwrap().name, "b");
        let error = provisioner(&all, Some("c")).unwrap_err().to_string();
        assert!(error.contains("no JWK provisioner named \"c\""), "{error}");
    }

    #[test]
    fn oidc_provisioners_are_usable_by_name_or_alone() {
        let mut idp = body("idp", "OIDC", false);
        idp.oidc = Some(mayfly_proto::OidcClientBody {
            client_id: "mayfly".into(),
            client_secret: String::new(),
            configuration_endpoint: "https://idp.example".into(),
            listen_address: None,
        });
        let all = [body("acme", "ACME", false), idp.clone()];
        assert_eq!(provisioner(&all, None).unwrap().name, "idp");
        let both = [body("ops", "JWK", true), idp];
        assert_eq!(provisioner(&both, Some("idp")).unwrap().name, "idp");
        assert_eq!(describe(&both[1]), "idp (OIDC) [client: mayfly]");
    }

    #[test]
    fn describe_names_type_and_key_id() {
        assert_eq!(
            describe(&body("ops", "JWK", true)),
            "ops (JWK) [kid: kid-ops]"
        );
    }
}
