//! Renewal information (RFC 9773 4): when to renew, by certID.

use mayfly_authority::Authority;
use serde_json::json;

use super::{Acme, Reply, acme_provisioner};
use crate::error::Result;
use crate::model::rfc3339;
use crate::renewal;

impl Acme {
    /// `GET renewal-info/{certID}` (RFC 9773 4).
    pub async fn renewal_info(
        &self,
        authority: &Authority,
        provisioner: &str,
        cert_id: &str,
    ) -> Result<Reply> {
        acme_provisioner(authority, provisioner)?;
        let info = renewal::renewal_info(authority, cert_id).await?;
        let mut reply = Reply::json(json!({
            "suggestedWindow": {
                "start": rfc3339(info.start),
                "end": rfc3339(info.end),
            }
        }));
        reply.retry_after = Some(info.retry_after);
        Ok(reply)
    }
}
