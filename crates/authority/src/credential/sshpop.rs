//! SSH-POP: the holder of an SSH certificate this CA issued proves possession of its key by
//! signing a token whose `sshpop` header carries the certificate, to renew, rekey or revoke
//! it (step's SSHPOP provisioner).

use mayfly_pki::jose::jws::Jws;
use mayfly_pki::ssh::SshCertificate;
use time::OffsetDateTime;

use super::Endpoint;
use super::jwt;
use crate::authority::Authority;
use crate::error::{Error, Result};
use crate::provisioner::Provisioner;
use crate::ssh::SshCa;
use crate::store::UsedToken;

/// A verified SSH-POP token: the certificate whose key signed it, and the token to burn.
pub(crate) struct SshPop {
    pub certificate: SshCertificate,
    pub jti: String,
    pub expires_at: OffsetDateTime,
}

impl SshPop {
    /// The token, burnt in the namespace of the certificate that signed it.
    pub fn burn(&self) -> UsedToken {
        UsedToken {
            jti: self.jti.clone(),
            provisioner: format!("sshpop:{}", self.certificate.template.serial),
            expires_at: self.expires_at,
        }
    }
}

impl Authority {
    /// Verifies an SSH-POP token: signed by the key of the certificate in its `sshpop` header,
    /// that certificate signed by one of our SSH CA keys and valid now.
    pub(crate) fn verify_sshpop(
        &self,
        ssh: &SshCa,
        ott: &str,
        endpoint: Endpoint,
    ) -> Result<SshPop> {
        let now = self.clock().now();
        let jws = Jws::parse(ott).map_err(|e| Error::TokenMalformed(e.to_string()))?;
        let header = jws
            .header_json()
            .get("sshpop")
            .and_then(|v| v.as_str())
            .ok_or_else(|| Error::TokenMalformed("header has no \"sshpop\" certificate".into()))?;
        let certificate = SshCertificate::from_base64(header)
            .map_err(|e| Error::TokenMalformed(format!("header \"sshpop\": {e}")))?;
        let kind = certificate.template.cert_type;
        if &certificate.signature_key != ssh.public_key_of(kind) {
            return Err(Error::RenewNotIssuedHere {
                serial: certificate.template.serial.to_string(),
            });
        }
        certificate
            .public_key
            .verify_jws(&jws.header().alg, jws.signing_input(), jws.signature())
            .map_err(|e| match e {
                mayfly_pki::Error::JwsSignatureInvalid => Error::TokenSignatureInvalid,
                other => Error::TokenMalformed(other.to_string()),
            })?;
        // Verified now: the signature above covers the payload.
        let claims: jwt::TokenClaims = serde_json::from_slice(jws.unverified_payload())
            .map_err(|e| Error::TokenMalformed(format!("claims: {e}")))?;
        self.check_sshpop_audience(&claims, endpoint)?;
        let exp = jwt::check_time_window(&claims, now)?;
        jwt::check_token_id(&claims.jti)?;
        let seconds = u64::try_from(now.unix_timestamp()).unwrap_or(0);
        if seconds < certificate.template.valid_after
            || seconds >= certificate.template.valid_before
        {
            return Err(Error::RenewExpired {
                serial: certificate.template.serial.to_string(),
                not_after: certificate.template.valid_before.to_string(),
            });
        }
        Ok(SshPop {
            certificate,
            jti: claims.jti,
            expires_at: exp + jwt::LEEWAY,
        })
    }

    /// An SSH-POP token names its provisioner as step-ca wants it: the audience carries the
    /// fragment `#sshpop/NAME` of a configured SSHPOP provisioner, and `iss` is that NAME. A CA
    /// with no SSHPOP provisioner (made before they were written by `ca init --ssh`) accepts the
    /// plain endpoint audience: the certificate and its key are the credential either way.
    fn check_sshpop_audience(&self, claims: &jwt::TokenClaims, endpoint: Endpoint) -> Result<()> {
        let plain = self.audiences_for(endpoint);
        let provisioners: Vec<&crate::provisioner::SshPopProvisioner> = self
            .provisioners()
            .iter()
            .filter_map(|p| match p {
                Provisioner::SshPop(pop) => Some(pop.as_ref()),
                _ => None,
            })
            .collect();
        if provisioners.is_empty() {
            return jwt::check_audience(claims, plain);
        }
        let mut expected = Vec::new();
        for provisioner in &provisioners {
            let audiences: Vec<String> = plain
                .iter()
                .map(|a| format!("{a}#{}", provisioner.audience_fragment()))
                .collect();
            if jwt::check_audience(claims, &audiences).is_ok() {
                if claims.iss != provisioner.name {
                    return Err(Error::TokenIssuerMismatch {
                        iss: claims.iss.clone(),
                        provisioner: provisioner.name.clone(),
                    });
                }
                return Ok(());
            }
            expected.extend(audiences);
        }
        Err(Error::TokenAudienceMismatch {
            found: claims.aud.values(),
            expected,
        })
    }
}
