//! SSH-POP: the holder of an SSH certificate this CA issued proves possession of its key by
//! signing a token whose `sshpop` header carries the certificate, to renew, rekey or revoke
//! it (step's SSHPOP provisioner). Verified, like every credential, into an
//! [`Authorization`]: the SSHPOP provisioner vouches, the token is burnt in the namespace of the
//! certificate that signed it, and the audit log names it `sshpop:SERIAL`.

use mayfly_config::claims::Claims;
use mayfly_pki::jose::jws::Jws;
use mayfly_pki::ssh::{CertType, SshCertificate};
use time::OffsetDateTime;

use super::{Authorization, Endpoint, Grant, Vouched, jwt};
use crate::authority::Authority;
use crate::error::{Error, Result};
use crate::provisioner::{Provisioner, SshPopProvisioner};
use crate::ssh::SshCa;
use crate::store::{CertificateStatus, UsedToken};

/// A verified SSH-POP token: what it authorizes, and the certificate whose key signed it.
pub(crate) struct SshPop {
    pub authorization: Authorization,
    pub certificate: SshCertificate,
}

/// An SSH-POP renewal's authorization, the certificate it replaces, and the provisioner that
/// certificate was issued through (the new one is recorded under it too).
pub(crate) struct SshRenewal {
    pub pop: SshPop,
    pub provisioner: String,
}

/// The SSHPOP provisioner's vouching; a CA made before `ca init --ssh` wrote one accepts
/// SSH-POP tokens all the same, vouched for as `sshpop`.
fn vouched(provisioner: Option<&SshPopProvisioner>) -> Vouched {
    Vouched {
        name: provisioner.map_or_else(|| "sshpop".to_string(), |p| p.name.clone()),
        type_code: mayfly_pki::cert::STEP_PROVISIONER_TYPE_SSHPOP,
        credential_id: String::new(),
        claims: provisioner.map_or(Claims::DEFAULT, |p| p.claims),
        admin: false,
    }
}

/// What a verified SSH-POP token authorizes: acting on the certificate that signed it, once.
fn authorization(
    provisioner: Option<&SshPopProvisioner>,
    certificate: &SshCertificate,
    jti: String,
    expires_at: OffsetDateTime,
) -> Authorization {
    let serial = certificate.template.serial;
    Authorization {
        provisioner: vouched(provisioner),
        subject: serial.to_string(),
        // Names come from the certificate it renews, never from the token.
        grant: Grant::Fixed(Vec::new()),
        ssh: None,
        burn: Some(UsedToken {
            jti,
            // Namespaced by the certificate: a token can only act on the one that signed it.
            provisioner: format!("sshpop:{serial}"),
            expires_at,
        }),
        credential: format!("sshpop:{serial}"),
        detail: format!("replaces {serial}"),
        within: None,
        confirms: None,
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
        let provisioner = self.check_sshpop_audience(&claims, endpoint)?;
        let exp = jwt::check_time_window(&claims, now)?;
        jwt::check_token_id(&claims.jti)?;
        let seconds = u64::try_from(now.unix_timestamp()).unwrap_or(0);
        let template = &certificate.template;
        // Said as times, not the certificate's Unix seconds, and as what it is: SSH-POP has no
        // renewal after expiry to allow, and a certificate may also not have started yet.
        let at = |seconds: u64| {
            i64::try_from(seconds)
                .ok()
                .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
                .and_then(|t| {
                    t.format(&time::format_description::well_known::Rfc3339)
                        .ok()
                })
                .unwrap_or_else(|| format!("{seconds} (Unix time)"))
        };
        let why = if seconds < template.valid_after {
            Some(format!("it is valid from {}", at(template.valid_after)))
        } else if seconds >= template.valid_before {
            Some(format!("it was valid until {}", at(template.valid_before)))
        } else {
            None
        };
        if let Some(why) = why {
            return Err(Error::SshPopCertificateNotValid {
                serial: template.serial.to_string(),
                why: format!("{why} (now {})", at(seconds)),
            });
        }
        Ok(SshPop {
            authorization: authorization(provisioner, &certificate, claims.jti, exp + jwt::LEEWAY),
            certificate,
        })
    }

    /// The checks of every SSH renewal and rekey: a valid SSH-POP token for `endpoint`, a
    /// host certificate this CA stored byte for byte, not revoked, not expired.
    pub(crate) async fn sshpop_for_renewal(
        &self,
        ssh: &SshCa,
        ott: &str,
        endpoint: Endpoint,
    ) -> Result<SshRenewal> {
        let pop = self.verify_sshpop(ssh, ott, endpoint)?;
        let cert = &pop.certificate;
        let serial = cert.template.serial.to_string();
        if cert.template.cert_type != CertType::Host {
            return Err(Error::SshRenewHostOnly);
        }
        let stored = ssh
            .store()
            .ssh_certificate(cert.template.serial)
            .await
            .map_err(Error::Store)?
            .filter(|s| s.certificate.blob == cert.blob())
            .ok_or_else(|| Error::RenewNotIssuedHere {
                serial: serial.clone(),
            })?;
        if stored.status == CertificateStatus::Revoked {
            return Err(Error::RenewRevoked { serial });
        }
        Ok(SshRenewal {
            pop,
            provisioner: stored.certificate.provisioner,
        })
    }

    /// An SSH-POP token names its provisioner as step-ca wants it: the audience carries the
    /// fragment `#sshpop/NAME` of a configured SSHPOP provisioner, and `iss` is that NAME. A CA
    /// with no SSHPOP provisioner (made before they were written by `ca init --ssh`) accepts the
    /// plain endpoint audience: the certificate and its key are the credential either way.
    /// Returns the SSHPOP provisioner the token names, if the CA has any.
    fn check_sshpop_audience(
        &self,
        claims: &jwt::TokenClaims,
        endpoint: Endpoint,
    ) -> Result<Option<&SshPopProvisioner>> {
        let plain = self.audiences_for(endpoint);
        let provisioners: Vec<&SshPopProvisioner> = self
            .provisioners()
            .iter()
            .filter_map(|p| match p {
                Provisioner::SshPop(pop) => Some(pop.as_ref()),
                _ => None,
            })
            .collect();
        if provisioners.is_empty() {
            return jwt::check_audience(claims, plain).map(|()| None);
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
                return Ok(Some(provisioner));
            }
            expected.extend(audiences);
        }
        Err(Error::TokenAudienceMismatch {
            found: claims.aud.values(),
            expected,
        })
    }
}
