//! The SSH routes of the API.

use bytes::Bytes;
use hyper::Method;
use mayfly_proto::ssh::{
    SshCheckHostRequest, SshCheckHostResponse, SshConfigRequest, SshConfigResponse,
    SshHostsResponse, SshRekeyRequest, SshRenewRequest, SshRootsResponse, SshSignRequest,
    SshSignResponse,
};
use mayfly_proto::{RevokeRequest, StatusResponse};

use crate::{Client, Result};

impl Client {
    /// Gets an SSH certificate for `request.public_key`, authorised by its token.
    pub async fn ssh_sign(&self, request: &SshSignRequest) -> Result<SshSignResponse> {
        self.post_json("/1.0/ssh/sign", request).await
    }

    /// Renews the host certificate whose SSH-POP token `ott` is.
    pub async fn ssh_renew(&self, ott: &str) -> Result<SshSignResponse> {
        self.post_json(
            "/1.0/ssh/renew",
            &SshRenewRequest {
                ott: ott.to_string(),
            },
        )
        .await
    }

    /// Replaces a host certificate's key; `ott` is an SSH-POP token of the current certificate.
    pub async fn ssh_rekey(&self, ott: &str, public_key_b64: &str) -> Result<SshSignResponse> {
        self.post_json(
            "/1.0/ssh/rekey",
            &SshRekeyRequest {
                ott: ott.to_string(),
                public_key: public_key_b64.to_string(),
            },
        )
        .await
    }

    pub async fn ssh_revoke(&self, request: &RevokeRequest) -> Result<StatusResponse> {
        self.post_json("/1.0/ssh/revoke", request).await
    }

    /// The CA's SSH user and host public keys.
    pub async fn ssh_roots(&self) -> Result<SshRootsResponse> {
        self.get_json("/1.0/ssh/roots").await
    }

    /// The SSH CA keys this CA trusts, its own and federated ones.
    pub async fn ssh_federation(&self) -> Result<SshRootsResponse> {
        self.get_json("/1.0/ssh/federation").await
    }

    pub async fn ssh_config(&self, request: &SshConfigRequest) -> Result<SshConfigResponse> {
        self.post_json("/1.0/ssh/config", request).await
    }

    pub async fn ssh_check_host(&self, principal: &str) -> Result<SshCheckHostResponse> {
        self.post_json(
            "/1.0/ssh/check-host",
            &SshCheckHostRequest {
                kind: "host".into(),
                principal: principal.to_string(),
                token: None,
            },
        )
        .await
    }

    /// Hosts with a valid host certificate; needs a client certificate (see
    /// [`Client::with_identity`]).
    pub async fn ssh_hosts(&self) -> Result<SshHostsResponse> {
        self.get_json("/1.0/ssh/hosts").await
    }

    /// The OpenSSH KRL of revoked SSH certificates (binary).
    pub async fn ssh_krl(&self) -> Result<Vec<u8>> {
        self.fetch(Method::GET, "/1.0/ssh/krl", Bytes::new()).await
    }
}
