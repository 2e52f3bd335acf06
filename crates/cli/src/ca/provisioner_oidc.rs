//! The flags of `mayfly ca provisioner add NAME --type OIDC`, with step's names, and the
//! ca.json fields they become (step-ca's).

use anyhow::bail;

use super::provisioner::Json;

/// An OIDC provisioner's client and who it lets in.
#[derive(Debug, Clone, clap::Args)]
pub struct OidcFlags {
    /// OIDC: the client id ID tokens are issued to (clientID).
    #[arg(long, value_name = "ID")]
    client_id: Option<String>,
    /// OIDC: the client's secret (clientSecret). Clients are given it with the provisioner:
    /// register the client as a native app, whose secret is not one.
    #[arg(long, value_name = "SECRET")]
    client_secret: Option<String>,
    /// OIDC: the provider's discovery document, https (configurationEndpoint); the
    /// well-known path is added when missing.
    #[arg(long, value_name = "URL")]
    configuration_endpoint: Option<String>,
    /// OIDC: only e-mail addresses in this domain (administrators aside); repeatable.
    #[arg(long, value_name = "DOMAIN")]
    domain: Vec<String>,
    /// OIDC: only tokens naming this group; repeatable.
    #[arg(long, value_name = "GROUP")]
    group: Vec<String>,
    /// OIDC: where `mayfly` listens for the provider's redirect, host:port (e.g. ":10000"),
    /// when the provider allows only registered redirect URIs (listenAddress).
    #[arg(long, value_name = "ADDRESS")]
    listen_address: Option<String>,
}

impl OidcFlags {
    fn any(&self) -> bool {
        self.client_id.is_some()
            || self.client_secret.is_some()
            || self.configuration_endpoint.is_some()
            || !self.domain.is_empty()
            || !self.group.is_empty()
            || self.listen_address.is_some()
    }

    /// Refuses OIDC flags on another type of provisioner.
    pub fn refuse_unless_oidc(&self, oidc: bool) -> anyhow::Result<()> {
        if !oidc && self.any() {
            bail!(
                "--client-id, --client-secret, --configuration-endpoint, --domain, --group and \
                 --listen-address are for OIDC provisioners (--type OIDC)"
            );
        }
        Ok(())
    }

    /// The entry's OIDC fields; `admins` come from `--admin=EMAIL`.
    pub fn fields(&self, admins: &[String]) -> anyhow::Result<Vec<(String, Json)>> {
        let Some(client_id) = self.client_id.as_deref().filter(|c| !c.trim().is_empty()) else {
            bail!("--type OIDC requires --client-id");
        };
        let Some(endpoint) = self
            .configuration_endpoint
            .as_deref()
            .filter(|c| !c.trim().is_empty())
        else {
            bail!("--type OIDC requires --configuration-endpoint");
        };
        let list =
            |values: &[String]| Json::Array(values.iter().cloned().map(Json::String).collect());
        let mut fields = vec![
            ("clientID".to_string(), Json::String(client_id.to_string())),
            (
                "clientSecret".to_string(),
                Json::String(self.client_secret.clone().unwrap_or_default()),
            ),
            (
                "configurationEndpoint".to_string(),
                Json::String(endpoint.to_string()),
            ),
        ];
        if !admins.is_empty() {
            fields.push(("admins".into(), list(admins)));
        }
        if !self.domain.is_empty() {
            fields.push(("domains".into(), list(&self.domain)));
        }
        if !self.group.is_empty() {
            fields.push(("groups".into(), list(&self.group)));
        }
        if let Some(address) = &self.listen_address {
            fields.push(("listenAddress".into(), Json::String(address.clone())));
        }
        Ok(fields)
    }
}
