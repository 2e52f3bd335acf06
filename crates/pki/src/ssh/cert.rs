//! OpenSSH certificates (PROTOCOL.certkeys): building and signing them, and reading them back.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::key::{self, SshPublicKey};
use super::wire::{Reader, Writer};
use crate::error::{Error, Result};
use crate::signer::Signer;

/// `valid before` of a certificate that never expires.
pub const FOREVER: u64 = u64::MAX;

/// Whether a certificate identifies a user or a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CertType {
    User,
    Host,
}

impl CertType {
    fn code(self) -> u32 {
        match self {
            CertType::User => 1,
            CertType::Host => 2,
        }
    }

    fn from_code(code: u32) -> Result<Self> {
        match code {
            1 => Ok(CertType::User),
            2 => Ok(CertType::Host),
            other => Err(Error::SshMalformed(format!(
                "certificate type {other}: expected 1 (user) or 2 (host)"
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CertType::User => "user",
            CertType::Host => "host",
        }
    }

    /// `user` or `host`, any case, as step's token claims and flags write it.
    pub fn parse(text: &str) -> Result<Self> {
        match text.to_ascii_lowercase().as_str() {
            "user" => Ok(CertType::User),
            "host" => Ok(CertType::Host),
            other => Err(Error::SshMalformed(format!(
                "certificate type {other:?}: expected \"user\" or \"host\""
            ))),
        }
    }
}

/// What a certificate says, before it is signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshCertTemplate {
    pub cert_type: CertType,
    /// Non-zero; KRLs cannot name serial 0.
    pub serial: u64,
    pub key_id: String,
    pub principals: Vec<String>,
    /// Unix seconds.
    pub valid_after: u64,
    /// Unix seconds.
    pub valid_before: u64,
    /// Name to value (`force-command`, `source-address`).
    pub critical_options: BTreeMap<String, String>,
    /// Name to value; the standard `permit-*` extensions have empty values.
    pub extensions: BTreeMap<String, String>,
}

/// A parsed certificate. Its CA signature is checked on parsing, so a value of this type always
/// carries a signature that verifies against `signature_key`; whether that key is trusted is
/// the caller's question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshCertificate {
    pub template: SshCertTemplate,
    pub public_key: SshPublicKey,
    pub signature_key: SshPublicKey,
    blob: Vec<u8>,
}

/// A random serial number for a certificate: 64 bits from the CSPRNG, never zero.
pub fn random_serial() -> Result<u64> {
    loop {
        let bytes = crate::random::random_bytes(8)?;
        let mut array = [0u8; 8];
        array.copy_from_slice(&bytes);
        let serial = u64::from_be_bytes(array);
        if serial != 0 {
            return Ok(serial);
        }
    }
}

/// Signs a certificate for `subject` with the CA key `ca`.
pub fn sign_certificate(
    template: &SshCertTemplate,
    subject: &SshPublicKey,
    ca: &dyn Signer,
) -> Result<SshCertificate> {
    if template.serial == 0 {
        return Err(Error::SshMalformed(
            "certificate serial 0 cannot be revoked by serial: use a random serial".into(),
        ));
    }
    let ca_public = SshPublicKey::from_signer(ca)?;
    let nonce = crate::random::random_bytes(32)?;
    let mut w = Writer::new();
    w.string(subject.algorithm().certificate_type().as_bytes())
        .string(&nonce)
        .raw(subject.fields())
        .u64(template.serial)
        .u32(template.cert_type.code())
        .string(template.key_id.as_bytes());
    let mut principals = Writer::new();
    for principal in &template.principals {
        principals.string(principal.as_bytes());
    }
    w.string(&principals.into_bytes())
        .u64(template.valid_after)
        .u64(template.valid_before)
        .string(&encode_options(&template.critical_options))
        .string(&encode_options(&template.extensions))
        .string(&[])
        .string(ca_public.blob());
    let mut blob = w.clone().into_bytes();
    let signature = key::sign(ca, &blob)?;
    let mut tail = Writer::new();
    tail.string(&signature);
    blob.extend_from_slice(&tail.into_bytes());
    SshCertificate::from_blob(&blob)
}

/// Options and extensions: sorted by name (a BTreeMap is), each value wrapped in a string, and
/// an empty value written as an empty field, as OpenSSH does for flags.
fn encode_options(options: &BTreeMap<String, String>) -> Vec<u8> {
    let mut w = Writer::new();
    for (name, value) in options {
        w.string(name.as_bytes());
        if value.is_empty() {
            w.string(&[]);
        } else {
            let mut inner = Writer::new();
            inner.string(value.as_bytes());
            w.string(&inner.into_bytes());
        }
    }
    w.into_bytes()
}

fn decode_options(data: &[u8], what: &'static str) -> Result<BTreeMap<String, String>> {
    let mut reader = Reader::new(data, what);
    let mut options = BTreeMap::new();
    let mut previous: Option<String> = None;
    while !reader.is_empty() {
        let name = reader.text("name")?;
        let value = reader.string("value")?;
        if previous.as_ref().is_some_and(|p| p >= &name) {
            return Err(Error::SshMalformed(format!(
                "{what}: {name:?} is out of order or repeated"
            )));
        }
        let text = if value.is_empty() {
            String::new()
        } else {
            Reader::new(value, what).text("value")?
        };
        options.insert(name.clone(), text);
        previous = Some(name);
    }
    Ok(options)
}

impl SshCertificate {
    /// Parses a certificate line (`ecdsa-sha2-nistp256-cert-v01@openssh.com AAAA... comment`),
    /// as in a `-cert.pub` file.
    pub fn parse_line(text: &str) -> Result<Self> {
        let mut words = text.split_whitespace();
        let cert_type = words
            .next()
            .ok_or_else(|| Error::SshMalformed("the certificate is empty".into()))?;
        let data = words.next().ok_or_else(|| {
            Error::SshMalformed(format!("{cert_type:?} has no base64 data after its type"))
        })?;
        let blob = STANDARD
            .decode(data.as_bytes())
            .map_err(|e| Error::SshMalformed(format!("the certificate is not base64: {e}")))?;
        let cert = Self::from_blob(&blob)?;
        if cert.public_key.algorithm().certificate_type() != cert_type {
            return Err(Error::SshMalformed(format!(
                "the line says {cert_type:?} but the data is {:?}",
                cert.public_key.algorithm().certificate_type()
            )));
        }
        Ok(cert)
    }

    /// Parses a certificate wire blob and checks its CA signature.
    pub fn from_blob(blob: &[u8]) -> Result<Self> {
        let mut reader = Reader::new(blob, "SSH certificate");
        let type_name = reader.text("type")?;
        let key_type = type_name
            .strip_suffix("-cert-v01@openssh.com")
            .ok_or_else(|| {
                Error::SshMalformed(format!(
                    "{type_name:?} is not an OpenSSH certificate type (…-cert-v01@openssh.com)"
                ))
            })?
            .to_string();
        reader.string("nonce")?;
        let public_key = SshPublicKey::read_fields(&key_type, &mut reader)?;
        let serial = reader.u64("serial")?;
        let cert_type = CertType::from_code(reader.u32("type")?)?;
        let key_id = reader.text("key id")?;
        let mut principal_reader = Reader::new(reader.string("principals")?, "principals");
        let mut principals = Vec::new();
        while !principal_reader.is_empty() {
            principals.push(principal_reader.text("principal")?);
        }
        let valid_after = reader.u64("valid after")?;
        let valid_before = reader.u64("valid before")?;
        let critical_options =
            decode_options(reader.string("critical options")?, "critical options")?;
        let extensions = decode_options(reader.string("extensions")?, "extensions")?;
        reader.string("reserved")?;
        let signature_key = SshPublicKey::from_blob(reader.string("signature key")?)?;
        let signed_len = blob.len() - reader.remaining();
        let signature = reader.string("signature")?;
        reader.finish()?;
        signature_key.verify(&blob[..signed_len], signature)?;
        Ok(Self {
            template: SshCertTemplate {
                cert_type,
                serial,
                key_id,
                principals,
                valid_after,
                valid_before,
                critical_options,
                extensions,
            },
            public_key,
            signature_key,
            blob: blob.to_vec(),
        })
    }

    pub fn blob(&self) -> &[u8] {
        &self.blob
    }

    /// The wire blob in standard base64: step-ca's JSON form.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(&self.blob)
    }

    /// `type base64`, the line of a `-cert.pub` file.
    pub fn to_line(&self) -> String {
        format!(
            "{} {}",
            self.public_key.algorithm().certificate_type(),
            self.to_base64()
        )
    }

    /// Parses step-ca's JSON form (standard base64 of the wire blob).
    pub fn from_base64(text: &str) -> Result<Self> {
        let blob = STANDARD
            .decode(text.trim().as_bytes())
            .map_err(|e| Error::SshMalformed(format!("the certificate is not base64: {e}")))?;
        Self::from_blob(&blob)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PrivateKey;
    use crate::key::KeyAlgorithm;

    fn template() -> SshCertTemplate {
        SshCertTemplate {
            cert_type: CertType::User,
            serial: 42,
            key_id: "alice@example".into(),
            principals: vec!["alice".into(), "admin".into()],
            valid_after: 1_700_000_000,
            valid_before: 1_700_003_600,
            critical_options: BTreeMap::from([("force-command".into(), "/bin/true".into())]),
            extensions: BTreeMap::from([
                ("permit-pty".into(), String::new()),
                ("permit-agent-forwarding".into(), String::new()),
            ]),
        }
    }

    #[test]
    fn signed_certificates_parse_back_identically() {
        for ca_algorithm in [KeyAlgorithm::EcP256, KeyAlgorithm::Ed25519] {
            let ca = PrivateKey::generate(ca_algorithm).unwrap();
            let subject = PrivateKey::generate(KeyAlgorithm::EcP256).unwrap();
            let subject = SshPublicKey::from_private_key(&subject).unwrap();
            let cert = sign_certificate(&template(), &subject, &ca).unwrap();
            let back = SshCertificate::parse_line(&cert.to_line()).unwrap();
            assert_eq!(back.template, template());
            assert_eq!(back.public_key, subject);
            assert_eq!(
                back.signature_key,
                SshPublicKey::from_private_key(&ca).unwrap()
            );
        }
    }

    #[test]
    fn a_tampered_certificate_is_refused() {
        let ca = PrivateKey::generate(KeyAlgorithm::Ed25519).unwrap();
        let subject =
            SshPublicKey::from_private_key(&PrivateKey::generate(KeyAlgorithm::Ed25519).unwrap())
                .unwrap();
        let cert = sign_certificate(&template(), &subject, &ca).unwrap();
        let mut blob = cert.blob().to_vec();
        // Inside the key id.
        let at = blob.windows(5).position(|w| w == b"alice").unwrap();
        blob[at] = b'm';
        assert!(matches!(
            SshCertificate::from_blob(&blob),
            Err(Error::SshSignatureInvalid)
        ));
    }
}
