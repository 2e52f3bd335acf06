//! An ACME order as a credential: the ACME provisioner vouches for the identifiers the account
//! proved control of. The ACME service (crates/acme) ran the protocol (account keys, nonces,
//! challenges); what reaches the pipeline is a finalized order, made single use by the order's
//! own state transitions.

use mayfly_pki::San;

use super::{Authorization, Grant, Vouched};
use crate::error::{Error, Result};
use crate::provisioner::{AcmeProvisioner, Provisioner};

/// The provisioner `name`'s vouching, as leaves carry it.
pub fn vouched(provisioner: &AcmeProvisioner) -> Vouched {
    Vouched {
        name: provisioner.name.clone(),
        type_code: mayfly_pki::cert::STEP_PROVISIONER_TYPE_ACME,
        credential_id: String::new(),
        claims: provisioner.claims,
        admin: false,
    }
}

/// Verifies a finalized order of `account` for `identifiers` into an authorization of the
/// ACME provisioner `name`, which must be configured.
pub fn verify_order(
    provisioners: &[Provisioner],
    name: &str,
    identifiers: Vec<San>,
    account: &str,
) -> Result<Authorization> {
    let acme = provisioners
        .iter()
        .find_map(|p| match p {
            Provisioner::Acme(acme) if acme.name == name => Some(acme),
            _ => None,
        })
        .ok_or_else(|| Error::ProvisionerNotFound(name.to_string()))?;
    Ok(Authorization {
        provisioner: vouched(acme),
        subject: identifiers
            .first()
            .map(ToString::to_string)
            .unwrap_or_default(),
        grant: Grant::Fixed(identifiers),
        ssh: None,
        // The order's nonces and state transitions made it single use already.
        burn: None,
        credential: format!("acme:account:{account}"),
        detail: String::new(),
        within: None,
        confirms: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_configured_acme_provisioner_vouches_for_an_order() {
        let config: mayfly_config::config::ProvisionerConfig =
            serde_json::from_value(serde_json::json!({"type": "ACME", "name": "acme"})).unwrap();
        let provisioners = vec![
            Provisioner::from_config(&config, mayfly_config::claims::Claims::DEFAULT).unwrap(),
        ];
        let names = vec![San::Dns("a.example".into()), San::Dns("b.example".into())];
        let authorization = verify_order(&provisioners, "acme", names.clone(), "7").unwrap();
        assert_eq!(authorization.grant, Grant::Fixed(names));
        assert_eq!(authorization.subject, "a.example");
        assert_eq!(authorization.credential, "acme:account:7");
        assert!(authorization.burn.is_none());
        let refused = verify_order(&provisioners, "other", vec![], "7").unwrap_err();
        assert!(
            matches!(refused, Error::ProvisionerNotFound(ref n) if n == "other"),
            "{refused}"
        );
    }
}
