//! tls-alpn-01 (RFC 8737): a TLS handshake to the identifier offering only the `acme-tls/1`
//! protocol; the self-signed certificate presented must name the identifier and carry the
//! critical acmeIdentifier extension holding SHA-256 of the key authorization.
//!
//! The certificate is self-signed by design, so it is not verified against any root; the
//! handshake signature is still checked against its key, and the extension is what proves
//! control.

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// RFC 8737 6.2: the ALPN protocol of the validation handshake.
pub const ALPN: &[u8] = b"acme-tls/1";
/// RFC 8737 6.1: id-pe-acmeIdentifier.
const ACME_IDENTIFIER_OID: &str = "1.3.6.1.5.5.7.1.31";

#[derive(Debug)]
struct ChallengeCertificate;

impl ServerCertVerifier for ChallengeCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // Judged after the handshake by `check_certificate`; no root signs challenge certificates.
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![
            SignatureScheme::ECDSA_NISTP256_SHA256,
            SignatureScheme::ECDSA_NISTP384_SHA384,
            SignatureScheme::ED25519,
            SignatureScheme::RSA_PSS_SHA256,
            SignatureScheme::RSA_PSS_SHA384,
            SignatureScheme::RSA_PSS_SHA512,
            SignatureScheme::RSA_PKCS1_SHA256,
            SignatureScheme::RSA_PKCS1_SHA384,
            SignatureScheme::RSA_PKCS1_SHA512,
        ]
    }
}

/// Checks the handshake signature against the certificate's key. webpki cannot be used: it
/// refuses the certificate for its critical acmeIdentifier extension, which it does not know.
fn verify_signature(
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
) -> Result<HandshakeSignatureValid, rustls::Error> {
    use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
    use x509_parser::prelude::*;
    let bad = || rustls::Error::InvalidCertificate(rustls::CertificateError::BadSignature);
    let (_, parsed) = X509Certificate::from_der(cert.as_ref()).map_err(|_| bad())?;
    let key = &parsed.tbs_certificate.subject_pki.subject_public_key.data;
    let algorithm: &'static dyn VerificationAlgorithm = match dss.scheme {
        SignatureScheme::ECDSA_NISTP256_SHA256 => &signature::ECDSA_P256_SHA256_ASN1,
        SignatureScheme::ECDSA_NISTP384_SHA384 => &signature::ECDSA_P384_SHA384_ASN1,
        SignatureScheme::ED25519 => &signature::ED25519,
        SignatureScheme::RSA_PSS_SHA256 => &signature::RSA_PSS_2048_8192_SHA256,
        SignatureScheme::RSA_PSS_SHA384 => &signature::RSA_PSS_2048_8192_SHA384,
        SignatureScheme::RSA_PSS_SHA512 => &signature::RSA_PSS_2048_8192_SHA512,
        SignatureScheme::RSA_PKCS1_SHA256 => &signature::RSA_PKCS1_2048_8192_SHA256,
        SignatureScheme::RSA_PKCS1_SHA384 => &signature::RSA_PKCS1_2048_8192_SHA384,
        SignatureScheme::RSA_PKCS1_SHA512 => &signature::RSA_PKCS1_2048_8192_SHA512,
        _ => {
            return Err(rustls::Error::PeerIncompatible(
                rustls::PeerIncompatible::NoSignatureSchemesInCommon,
            ));
        }
    };
    UnparsedPublicKey::new(algorithm, key.as_ref())
        .verify(message, dss.signature())
        .map_err(|_| bad())?;
    Ok(HandshakeSignatureValid::assertion())
}

/// Why a tls-alpn-01 validation failed.
#[derive(Debug)]
pub enum Failure {
    /// Could not connect or complete the handshake.
    Connection(String),
    /// The handshake completed, but the certificate does not prove control.
    Certificate(String),
}

/// Performs the validation handshake with `address` for `name`.
pub async fn validate(
    address: SocketAddr,
    name: &str,
    key_authorization: &str,
) -> Result<(), Failure> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Failure::Connection(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ChallengeCertificate))
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN.to_vec()];
    let server_name = ServerName::try_from(name.to_string())
        .map_err(|e| Failure::Connection(format!("{name:?} as TLS server name: {e}")))?;
    let tcp = tokio::net::TcpStream::connect(address)
        .await
        .map_err(|e| Failure::Connection(format!("cannot connect to {address}: {e}")))?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(server_name, tcp)
        .await
        .map_err(|e| Failure::Connection(format!("TLS handshake with {address}: {e}")))?;
    let (_, connection) = tls.get_ref();
    if connection.alpn_protocol() != Some(ALPN) {
        return Err(Failure::Connection(format!(
            "{address} did not negotiate the acme-tls/1 protocol"
        )));
    }
    let certificate = connection
        .peer_certificates()
        .and_then(|c| c.first())
        .ok_or_else(|| Failure::Certificate("no certificate presented".into()))?;
    check_certificate(certificate.as_ref(), name, key_authorization)
}

/// RFC 8737 3: exactly one SAN, the name; a critical acmeIdentifier extension whose value is
/// the DER OCTET STRING of SHA-256(key authorization).
pub fn check_certificate(der: &[u8], name: &str, key_authorization: &str) -> Result<(), Failure> {
    use x509_parser::prelude::*;
    let (_, cert) = X509Certificate::from_der(der)
        .map_err(|e| Failure::Certificate(format!("unparsable certificate: {e}")))?;
    let sans: Vec<String> = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|ext| {
            ext.value
                .general_names
                .iter()
                .map(|n| match n {
                    GeneralName::DNSName(d) => d.to_ascii_lowercase(),
                    other => format!("{other:?}"),
                })
                .collect()
        })
        .unwrap_or_default();
    if sans != [name.to_ascii_lowercase()] {
        return Err(Failure::Certificate(format!(
            "the certificate names {sans:?}, expected exactly [{name:?}]"
        )));
    }
    let digest =
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key_authorization.as_bytes());
    let mut expected = vec![0x04, 0x20];
    expected.extend_from_slice(digest.as_ref());
    let extension = cert
        .extensions()
        .iter()
        .find(|e| e.oid.to_id_string() == ACME_IDENTIFIER_OID)
        .ok_or_else(|| Failure::Certificate("no acmeIdentifier extension".into()))?;
    if !extension.critical {
        return Err(Failure::Certificate(
            "the acmeIdentifier extension is not critical".into(),
        ));
    }
    if extension.value != expected.as_slice() {
        return Err(Failure::Certificate(
            "the acmeIdentifier extension is not the expected key authorization digest".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn challenge_certificate(names: &[&str], digest_of: &str, critical: bool) -> Vec<u8> {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, digest_of.as_bytes());
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        let mut extension = rcgen::CustomExtension::new_acme_identifier(digest.as_ref());
        extension.set_criticality(critical);
        params.custom_extensions = vec![extension];
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn only_a_certificate_for_the_name_with_the_digest_proves_control() {
        let good = challenge_certificate(&["a.example.test"], "token.thumb", true);
        assert!(check_certificate(&good, "a.example.test", "token.thumb").is_ok());
        let cases = [
            (
                good.clone(),
                "b.example.test",
                "token.thumb",
                "expected exactly",
            ),
            (good, "a.example.test", "other", "not the expected"),
            (
                challenge_certificate(&["a.example.test", "b.example.test"], "token.thumb", true),
                "a.example.test",
                "token.thumb",
                "expected exactly",
            ),
            (
                challenge_certificate(&["a.example.test"], "token.thumb", false),
                "a.example.test",
                "token.thumb",
                "not critical",
            ),
            (vec![1, 2, 3], "a.example.test", "token.thumb", "unparsable"),
        ];
        for (der, name, key_authorization, expected) in cases {
            match check_certificate(&der, name, key_authorization) {
                Err(Failure::Certificate(detail)) => {
                    assert!(detail.contains(expected), "{expected}: {detail}")
                }
                other => panic!("{expected}: {other:?}"),
            }
        }
    }
}
