//! `mayfly certificate inspect` and `mayfly certificate fingerprint`: show what a certificate
//! (or CSR) says, read from a file, standard input or a TLS server, in step's formats.
//!
//! Only presentation lives here. Parsing is x509-parser's, step's provisioner extension is
//! decoded by `mayfly_pki::cert`, and the TLS handshake that fetches a server's chain is
//! `mayfly_client::peer`'s. Nothing here decides whether a certificate is good: `inspect` shows,
//! it does not judge (a server's chain is verified only so that `--insecure` means something).
//! Every output is built in full before anything is printed, so a failure prints nothing on
//! standard output.

use crate::output::write_stdout;
use std::fmt::Write as _;
use std::io::Read as _;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use mayfly_pki::cert::{ProvisionerExtension, STEP_PROVISIONER_OID, fingerprint_sha256};
use mayfly_pki::serial::SerialNumber;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use x509_parser::certificate::X509Certificate;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::cri_attributes::ParsedCriAttribute;
use x509_parser::extensions::{GeneralName, KeyUsage, ParsedExtension, X509Extension};
use x509_parser::oid_registry::Oid;
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;
use x509_parser::x509::{AlgorithmIdentifier, SubjectPublicKeyInfo, X509Name};

/// Certificates and CSRs are a few KiB; a bundle of a hundred is well under this.
const MAX_INPUT_BYTES: u64 = 4 * 1024 * 1024;

#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// Certificate or CSR to inspect: a PEM or DER file, `-` for standard input, or an
    /// `https://host[:port]` URL whose server certificate is fetched over TLS.
    ///
    /// Examples: `mayfly certificate inspect svc.crt --short`,
    /// `mayfly certificate inspect https://ca.internal:9000 --roots root_ca.crt`.
    #[arg(value_name = "FILE|URL")]
    input: String,
    /// Print a short summary: kind, key, serial, subject, issuer, provisioner and validity.
    #[arg(long)]
    short: bool,
    /// Output format: `text` (a full dump, like step's and openssl's) or `json`.
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = Format::Text)]
    format: Format,
    /// Root certificates (PEM) to verify a URL's server against
    /// [default: $MAYFLY_PATH/certs/root_ca.crt].
    ///
    /// Only for `https://` URLs. Example: --roots root_ca.crt
    #[arg(long, value_name = "FILE", conflicts_with = "insecure")]
    roots: Option<PathBuf>,
    /// Do not verify a URL's server certificate: show whatever the server sends.
    ///
    /// Only for `https://` URLs; the TLS handshake signature is still checked.
    #[arg(long)]
    insecure: bool,
    /// Show every certificate of the file or of the server's chain, not just the first.
    ///
    /// With `--format json` the output is then an array, even for a single certificate.
    #[arg(long)]
    bundle: bool,
}

#[derive(Debug, clap::Args)]
pub struct FingerprintArgs {
    /// Certificate (PEM or DER) whose SHA-256 fingerprint to print; `-` reads standard input.
    ///
    /// For a PEM bundle, the first certificate's. Example: `mayfly certificate fingerprint
    /// root_ca.crt`.
    #[arg(value_name = "FILE")]
    file: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Text,
    Json,
}

pub async fn run(args: InspectArgs) -> anyhow::Result<()> {
    if args.short && args.format == Format::Json {
        bail!("--short is a text format: drop it or --format json");
    }
    let is_url = args.input.contains("://");
    if is_url && !args.input.to_ascii_lowercase().starts_with("https://") {
        bail!(
            "{:?} is not a URL of the form https://host[:port]",
            args.input
        );
    }
    if !is_url && (args.roots.is_some() || args.insecure) {
        bail!(
            "--roots and --insecure apply only to https:// URLs, and {:?} is a file",
            args.input
        );
    }
    let loaded = if is_url {
        Loaded::Certificates(fetch_chain(&args).await?)
    } else {
        load(&args.input)?
    };
    let output = match loaded {
        Loaded::Certificates(ders) => {
            let count = if args.bundle { ders.len() } else { 1 };
            let mut certificates = Vec::with_capacity(count);
            for (index, der) in ders.iter().take(count).enumerate() {
                certificates.push(parse_certificate(&args.input, index, der)?);
            }
            render_certificates(&certificates, args.format, args.short, args.bundle)
        }
        Loaded::Request(der) => {
            let request = parse_request(&args.input, &der)?;
            render_request(&request, args.format, args.short)
        }
    };
    write_stdout(&output)
}

pub fn run_fingerprint(args: FingerprintArgs) -> anyhow::Result<()> {
    match load(&args.file)? {
        Loaded::Certificates(ders) => {
            let first = ders.first().ok_or_else(|| no_certificate(&args.file))?;
            write_stdout(&format!("{}\n", fingerprint_sha256(first)))
        }
        Loaded::Request(_) => bail!(
            "{}: this is a certificate request (CSR), not a certificate",
            args.file
        ),
    }
}

/// What an input holds: certificates (DER each, in order), or else one certificate request.
enum Loaded {
    Certificates(Vec<Vec<u8>>),
    Request(Vec<u8>),
}

fn no_certificate(name: &str) -> anyhow::Error {
    anyhow!("{name}: no certificate found (expected PEM CERTIFICATE or DER)")
}

fn load(name: &str) -> anyhow::Result<Loaded> {
    let mut bytes = Vec::new();
    if name == "-" {
        std::io::stdin()
            .take(MAX_INPUT_BYTES)
            .read_to_end(&mut bytes)
            .context("cannot read standard input")?;
    } else {
        let file = std::fs::File::open(name).with_context(|| format!("cannot read {name}"))?;
        file.take(MAX_INPUT_BYTES)
            .read_to_end(&mut bytes)
            .with_context(|| format!("cannot read {name}"))?;
    }
    decode(name, &bytes)
}

/// PEM when the input has a PEM header, DER otherwise. Certificates win over a CSR in a PEM
/// file holding both, as step does.
fn decode(name: &str, bytes: &[u8]) -> anyhow::Result<Loaded> {
    if contains(bytes, b"-----BEGIN ") {
        let mut certificates = Vec::new();
        let mut request = None;
        for block in x509_parser::pem::Pem::iter_from_buffer(bytes) {
            let block = block.map_err(|e| anyhow!("{name}: malformed PEM: {e}"))?;
            match block.label.as_str() {
                "CERTIFICATE" => certificates.push(block.contents),
                "CERTIFICATE REQUEST" | "NEW CERTIFICATE REQUEST" if request.is_none() => {
                    request = Some(block.contents)
                }
                _ => {}
            }
        }
        return match (certificates.is_empty(), request) {
            (false, _) => {
                // Check them all now: a bad block must fail before anything is printed.
                for (index, der) in certificates.iter().enumerate() {
                    parse_certificate(name, index, der)?;
                }
                Ok(Loaded::Certificates(certificates))
            }
            (true, Some(request)) => Ok(Loaded::Request(request)),
            (true, None) => Err(no_certificate(name)),
        };
    }
    if let Ok((rest, _)) = x509_parser::parse_x509_certificate(bytes) {
        let len = bytes.len() - rest.len();
        return Ok(Loaded::Certificates(vec![bytes[..len].to_vec()]));
    }
    if let Ok((rest, _)) = X509CertificationRequest::from_der(bytes) {
        let len = bytes.len() - rest.len();
        return Ok(Loaded::Request(bytes[..len].to_vec()));
    }
    Err(no_certificate(name))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A parsed certificate with the exact DER it came from (fingerprints hash that).
struct Certificate<'a> {
    der: &'a [u8],
    x509: X509Certificate<'a>,
}

fn parse_certificate<'a>(
    name: &str,
    index: usize,
    der: &'a [u8],
) -> anyhow::Result<Certificate<'a>> {
    let (rest, x509) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| anyhow!("{name}: certificate {} is malformed: {e}", index + 1))?;
    let der = &der[..der.len() - rest.len()];
    Ok(Certificate { der, x509 })
}

fn parse_request<'a>(name: &str, der: &'a [u8]) -> anyhow::Result<X509CertificationRequest<'a>> {
    X509CertificationRequest::from_der(der)
        .map(|(_, csr)| csr)
        .map_err(|e| anyhow!("{name}: certificate request is malformed: {e}"))
}

/// The server's chain, verified against `--roots` or the context's root unless `--insecure`.
async fn fetch_chain(args: &InspectArgs) -> anyhow::Result<Vec<Vec<u8>>> {
    let url = args.input.as_str();
    let roots = if args.insecure {
        None
    } else if let Some(path) = &args.roots {
        Some(read_roots(path)?)
    } else {
        let default = crate::context::mayfly_path()?
            .join("certs")
            .join("root_ca.crt");
        if !default.exists() {
            bail!(
                "cannot verify {url}: no roots to trust ({} does not exist); pass --roots FILE, or --insecure to skip verification",
                default.display()
            );
        }
        Some(read_roots(&default)?)
    };
    use mayfly_client::Error;
    // The client's messages speak of "the CA"; here the server is whatever the user named.
    mayfly_client::peer::peer_certificate_chain(url, roots.as_deref())
        .await
        .map_err(|e| match e {
            Error::Unreachable { url, detail } => anyhow!("cannot connect to {url}: {detail}"),
            Error::BadUrl(_) => anyhow!("{url:?} is not a URL of the form https://host[:port]"),
            Error::Tls(detail) => anyhow!("TLS with {url} failed: {detail}"),
            Error::Timeout(after) => anyhow!("{url}: no TLS handshake within {after:?}"),
            other => anyhow::Error::new(other),
        })
}

fn read_roots(path: &Path) -> anyhow::Result<Vec<Vec<u8>>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    mayfly_pki::cert::certificates_from_pem(&bytes)
        .with_context(|| format!("{}: expected PEM root certificates", path.display()))
}

// ---------------------------------------------------------------------------------------------
// Facts shared by every format.

/// Which SANs a certificate or request names, by kind.
#[derive(Default)]
struct Sans {
    dns: Vec<String>,
    ip: Vec<String>,
    email: Vec<String>,
    uri: Vec<String>,
    other: Vec<String>,
}

impl Sans {
    fn add(&mut self, name: &GeneralName<'_>) {
        match name {
            GeneralName::DNSName(dns) => self.dns.push((*dns).to_string()),
            GeneralName::IPAddress(bytes) => self.ip.push(ip_text(bytes)),
            GeneralName::RFC822Name(email) => self.email.push((*email).to_string()),
            GeneralName::URI(uri) => self.uri.push((*uri).to_string()),
            other => self.other.push(general_name_text(other)),
        }
    }

    fn first(&self) -> Option<&str> {
        [&self.dns, &self.ip, &self.email, &self.uri]
            .into_iter()
            .find_map(|names| names.first())
            .map(String::as_str)
    }

    fn all(&self) -> Vec<&str> {
        [&self.dns, &self.ip, &self.email, &self.uri]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect()
    }

    /// openssl's prefixes, one line per kind.
    fn text_lines(&self) -> Vec<String> {
        let group = |prefix: &str, names: &[String]| {
            names
                .iter()
                .map(|n| format!("{prefix}{n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        [
            group("DNS:", &self.dns),
            group("IP Address:", &self.ip),
            group("email:", &self.email),
            group("URI:", &self.uri),
            self.other.join(", "),
        ]
        .into_iter()
        .filter(|line| !line.is_empty())
        .collect()
    }

    fn json(&self) -> Value {
        json!({
            "dns_names": self.dns,
            "ip_addresses": self.ip,
            "email_addresses": self.email,
            "uris": self.uri,
        })
    }
}

fn sans_of<'a>(extensions: impl Iterator<Item = &'a ParsedExtension<'a>>) -> Sans {
    let mut sans = Sans::default();
    for extension in extensions {
        if let ParsedExtension::SubjectAlternativeName(names) = extension {
            for name in &names.general_names {
                sans.add(name);
            }
        }
    }
    sans
}

/// The public key, as step names it.
struct KeyInfo {
    /// "ECDSA", "RSA", "Ed25519", or the algorithm's OID.
    algorithm: String,
    /// In bits; 0 when unknown.
    size: usize,
    /// "ECDSA P-256", "RSA 2048", "Ed25519".
    description: String,
    curve: Option<&'static str>,
}

const OID_ED25519: &str = "1.3.101.112";
const OID_ED448: &str = "1.3.101.113";

fn key_info(spki: &SubjectPublicKeyInfo<'_>) -> KeyInfo {
    let algorithm_oid = spki.algorithm.algorithm.to_id_string();
    match spki.parsed() {
        Ok(PublicKey::EC(point)) => {
            let curve_oid = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|oid| oid.to_id_string());
            let (curve, size) = match curve_oid.as_deref() {
                Some("1.2.840.10045.3.1.7") => (Some("P-256"), 256),
                Some("1.3.132.0.34") => (Some("P-384"), 384),
                Some("1.3.132.0.35") => (Some("P-521"), 521),
                _ => (None, point.key_size()),
            };
            let description = match (curve, curve_oid) {
                (Some(curve), _) => format!("ECDSA {curve}"),
                (None, Some(oid)) => format!("ECDSA {oid}"),
                (None, None) => "ECDSA".into(),
            };
            KeyInfo {
                algorithm: "ECDSA".into(),
                size,
                description,
                curve,
            }
        }
        Ok(PublicKey::RSA(rsa)) => {
            let size = bit_length(rsa.modulus);
            KeyInfo {
                algorithm: "RSA".into(),
                size,
                description: format!("RSA {size}"),
                curve: None,
            }
        }
        _ if algorithm_oid == OID_ED25519 => KeyInfo {
            algorithm: "Ed25519".into(),
            size: 256,
            description: "Ed25519".into(),
            curve: None,
        },
        _ if algorithm_oid == OID_ED448 => KeyInfo {
            algorithm: "Ed448".into(),
            size: 456,
            description: "Ed448".into(),
            curve: None,
        },
        Ok(other) => KeyInfo {
            size: other.key_size(),
            description: algorithm_oid.clone(),
            algorithm: algorithm_oid,
            curve: None,
        },
        Err(_) => KeyInfo {
            description: algorithm_oid.clone(),
            algorithm: algorithm_oid,
            size: 0,
            curve: None,
        },
    }
}

/// Bits of a big-endian unsigned integer, ignoring leading zero bytes (x509-parser's own
/// `key_size` gets RSA moduli without a leading zero byte wrong).
fn bit_length(bytes: &[u8]) -> usize {
    match bytes.iter().position(|&b| b != 0) {
        Some(start) => (bytes.len() - start) * 8 - bytes[start].leading_zeros() as usize,
        None => 0,
    }
}

/// The signature algorithm under Go's names, which step prints.
fn signature_algorithm_name(algorithm: &AlgorithmIdentifier<'_>) -> String {
    let oid = algorithm.algorithm.to_id_string();
    let name = match oid.as_str() {
        "1.2.840.113549.1.1.4" => "MD5-RSA",
        "1.2.840.113549.1.1.5" => "SHA1-RSA",
        "1.2.840.113549.1.1.11" => "SHA256-RSA",
        "1.2.840.113549.1.1.12" => "SHA384-RSA",
        "1.2.840.113549.1.1.13" => "SHA512-RSA",
        "1.2.840.113549.1.1.10" => "RSASSA-PSS",
        "1.2.840.10045.4.1" => "ECDSA-SHA1",
        "1.2.840.10045.4.3.2" => "ECDSA-SHA256",
        "1.2.840.10045.4.3.3" => "ECDSA-SHA384",
        "1.2.840.10045.4.3.4" => "ECDSA-SHA512",
        OID_ED25519 => "Ed25519",
        OID_ED448 => "Ed448",
        _ => return oid,
    };
    name.to_string()
}

fn common_name(name: &X509Name<'_>) -> Option<String> {
    name.iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_string)
}

/// `1234...5678` for long identifiers, as step's short output shows serials and key ids.
fn abbreviate(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= 10 {
        return text.to_string();
    }
    let head: String = chars[..4].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}...{tail}")
}

/// step's provisioner type codes (smallstep/certificates `provisioner.Type`).
fn provisioner_type_name(code: u8) -> String {
    let name = match code {
        1 => "JWK",
        2 => "OIDC",
        3 => "GCP",
        4 => "AWS",
        5 => "Azure",
        6 => "ACME",
        7 => "X5C",
        8 => "K8sSA",
        9 => "SSHPOP",
        10 => "SCEP",
        11 => "Nebula",
        _ => return format!("unknown ({code})"),
    };
    name.to_string()
}

fn rfc3339(time: OffsetDateTime) -> String {
    time.format(&Rfc3339).unwrap_or_else(|_| time.to_string())
}

/// openssl's and step's validity form: `Sep 22 00:59:37 2020 UTC`.
fn openssl_time(time: OffsetDateTime) -> String {
    let format = time::macros::format_description!(
        "[month repr:short] [day padding:space] [hour]:[minute]:[second] [year] UTC"
    );
    time.format(&format).unwrap_or_else(|_| time.to_string())
}

fn ip_text(bytes: &[u8]) -> String {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes)
            .map(|b| Ipv4Addr::from(b).to_string())
            .unwrap_or_default(),
        16 => <[u8; 16]>::try_from(bytes)
            .map(|b| Ipv6Addr::from(b).to_string())
            .unwrap_or_default(),
        // Name constraints carry address and mask together.
        8 | 32 => {
            let (address, mask) = bytes.split_at(bytes.len() / 2);
            format!("{}/{}", ip_text(address), ip_text(mask))
        }
        _ => format!("<{} bytes: {}>", bytes.len(), hex_colons(bytes, false)),
    }
}

fn general_name_text(name: &GeneralName<'_>) -> String {
    match name {
        GeneralName::DNSName(dns) => format!("DNS:{dns}"),
        GeneralName::IPAddress(bytes) => format!("IP Address:{}", ip_text(bytes)),
        GeneralName::RFC822Name(email) => format!("email:{email}"),
        GeneralName::URI(uri) => format!("URI:{uri}"),
        GeneralName::DirectoryName(dn) => format!("DirName:{dn}"),
        GeneralName::RegisteredID(oid) => format!("Registered ID:{oid}"),
        GeneralName::OtherName(oid, _) => format!("othername:{oid}:<unsupported>"),
        GeneralName::X400Address(_) => "X400Name:<unsupported>".into(),
        GeneralName::EDIPartyName(_) => "EdiPartyName:<unsupported>".into(),
        GeneralName::Invalid(_, _) => "<invalid>".into(),
    }
}

fn hex_colons(bytes: &[u8], upper: bool) -> String {
    bytes
        .iter()
        .map(|b| {
            if upper {
                format!("{b:02X}")
            } else {
                format!("{b:02x}")
            }
        })
        .collect::<Vec<_>>()
        .join(":")
}

/// Key usage bits, as (RFC 5280 identifier, openssl's text).
fn key_usage_names(usage: &KeyUsage) -> Vec<(&'static str, &'static str)> {
    [
        (
            usage.digital_signature(),
            "digitalSignature",
            "Digital Signature",
        ),
        (
            usage.non_repudiation(),
            "contentCommitment",
            "Non Repudiation",
        ),
        (
            usage.key_encipherment(),
            "keyEncipherment",
            "Key Encipherment",
        ),
        (
            usage.data_encipherment(),
            "dataEncipherment",
            "Data Encipherment",
        ),
        (usage.key_agreement(), "keyAgreement", "Key Agreement"),
        (usage.key_cert_sign(), "keyCertSign", "Certificate Sign"),
        (usage.crl_sign(), "cRLSign", "CRL Sign"),
        (usage.encipher_only(), "encipherOnly", "Encipher Only"),
        (usage.decipher_only(), "decipherOnly", "Decipher Only"),
    ]
    .into_iter()
    .filter(|(set, _, _)| *set)
    .map(|(_, id, text)| (id, text))
    .collect()
}

/// Extended key usages, as (RFC 5280 identifier, step's text); unknown ones by OID.
fn extended_key_usage_names(
    eku: &x509_parser::extensions::ExtendedKeyUsage<'_>,
) -> Vec<(String, String)> {
    let known = [
        (eku.any, "anyExtendedKeyUsage", "Any Extended Key Usage"),
        (eku.server_auth, "serverAuth", "Server Authentication"),
        (eku.client_auth, "clientAuth", "Client Authentication"),
        (eku.code_signing, "codeSigning", "Code Signing"),
        (eku.email_protection, "emailProtection", "E-mail Protection"),
        (eku.time_stamping, "timeStamping", "Time Stamping"),
        (eku.ocsp_signing, "OCSPSigning", "OCSP Signing"),
    ];
    known
        .into_iter()
        .filter(|(set, _, _)| *set)
        .map(|(_, id, text)| (id.to_string(), text.to_string()))
        .chain(
            eku.other
                .iter()
                .map(|oid| (oid.to_id_string(), oid.to_id_string())),
        )
        .collect()
}

/// What the certificate's extensions say, for the short and JSON formats.
#[derive(Default)]
struct ExtensionFacts {
    is_ca: bool,
    path_len: Option<u32>,
    key_usage: Vec<&'static str>,
    extended_key_usage: Vec<String>,
    subject_key_id: Option<String>,
    authority_key_id: Option<String>,
}

fn extension_facts<'a>(
    extensions: impl Iterator<Item = &'a ParsedExtension<'a>>,
) -> ExtensionFacts {
    let mut facts = ExtensionFacts::default();
    for extension in extensions {
        match extension {
            ParsedExtension::BasicConstraints(bc) => {
                facts.is_ca = bc.ca;
                facts.path_len = bc.path_len_constraint;
            }
            ParsedExtension::KeyUsage(usage) => {
                facts.key_usage = key_usage_names(usage)
                    .into_iter()
                    .map(|(id, _)| id)
                    .collect();
            }
            ParsedExtension::ExtendedKeyUsage(eku) => {
                facts.extended_key_usage = extended_key_usage_names(eku)
                    .into_iter()
                    .map(|(id, _)| id)
                    .collect();
            }
            ParsedExtension::SubjectKeyIdentifier(id) => {
                facts.subject_key_id = Some(hex::encode(id.0))
            }
            ParsedExtension::AuthorityKeyIdentifier(aki) => {
                facts.authority_key_id = aki.key_identifier.as_ref().map(|id| hex::encode(id.0));
            }
            _ => {}
        }
    }
    facts
}

/// Root, intermediate or leaf, as step's short output names it.
fn certificate_kind(certificate: &X509Certificate<'_>, is_ca: bool) -> &'static str {
    let self_issued = certificate.subject().as_raw() == certificate.issuer().as_raw();
    match (is_ca, self_issued) {
        (true, true) => "Root CA Certificate",
        (true, false) => "Intermediate CA Certificate",
        (false, _) => "TLS Certificate",
    }
}

// ---------------------------------------------------------------------------------------------
// Certificates.

fn render_certificates(
    certificates: &[Certificate<'_>],
    format: Format,
    short: bool,
    bundle: bool,
) -> String {
    match format {
        Format::Json => {
            let values: Vec<Value> = certificates.iter().map(certificate_json).collect();
            let value = match (bundle, values.len()) {
                (false, 1) => values.into_iter().next().unwrap_or(Value::Null),
                _ => Value::Array(values),
            };
            // Serialising a Value cannot fail: its keys are strings.
            format!(
                "{}\n",
                serde_json::to_string_pretty(&value).unwrap_or_default()
            )
        }
        Format::Text => certificates
            .iter()
            .map(|c| {
                if short {
                    certificate_short(c)
                } else {
                    certificate_text(c)
                }
            })
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

fn version_number(certificate: &X509Certificate<'_>) -> u32 {
    certificate.version().0 + 1
}

fn serial(certificate: &X509Certificate<'_>) -> SerialNumber {
    SerialNumber::from_be_bytes(certificate.raw_serial())
}

fn certificate_short(certificate: &Certificate<'_>) -> String {
    let x509 = &certificate.x509;
    let facts = extension_facts(
        x509.extensions()
            .iter()
            .map(X509Extension::parsed_extension),
    );
    let sans = sans_of(
        x509.extensions()
            .iter()
            .map(X509Extension::parsed_extension),
    );
    let key = key_info(x509.public_key());
    let subject = common_name(x509.subject())
        .or_else(|| sans.first().map(str::to_string))
        .unwrap_or_default();
    let issuer = common_name(x509.issuer()).unwrap_or_else(|| x509.issuer().to_string());
    let mut out = String::new();
    let _ = writeln!(
        out,
        "X.509v{} {} ({}) [Serial: {}]",
        version_number(x509),
        certificate_kind(x509, facts.is_ca),
        key.description,
        abbreviate(&serial(x509).to_decimal())
    );
    let _ = writeln!(out, "  Subject:     {subject}");
    let _ = writeln!(out, "  Issuer:      {issuer}");
    if let Some(provisioner) = ProvisionerExtension::from_certificate(x509) {
        let _ = writeln!(
            out,
            "  Provisioner: {} [ID: {}]",
            provisioner.name,
            abbreviate(&provisioner.credential_id)
        );
    }
    let validity = x509.validity();
    let _ = writeln!(
        out,
        "  Valid from:  {}",
        rfc3339(validity.not_before.to_datetime())
    );
    let _ = writeln!(
        out,
        "          to:  {}",
        rfc3339(validity.not_after.to_datetime())
    );
    out
}

fn certificate_json(certificate: &Certificate<'_>) -> Value {
    let x509 = &certificate.x509;
    let facts = extension_facts(
        x509.extensions()
            .iter()
            .map(X509Extension::parsed_extension),
    );
    let sans = sans_of(
        x509.extensions()
            .iter()
            .map(X509Extension::parsed_extension),
    );
    let key = key_info(x509.public_key());
    let validity = x509.validity();
    let provisioner = ProvisionerExtension::from_certificate(x509).map(|p| {
        json!({ "type": provisioner_type_name(p.type_code), "name": p.name, "id": p.credential_id })
    });
    json!({
        "version": version_number(x509),
        "serial_number": serial(x509).to_decimal(),
        "signature_algorithm": signature_algorithm_name(&x509.signature_algorithm),
        "issuer": x509.issuer().to_string(),
        "subject": x509.subject().to_string(),
        "validity": {
            "start": rfc3339(validity.not_before.to_datetime()),
            "end": rfc3339(validity.not_after.to_datetime()),
        },
        "subject_key_info": { "key_algorithm": key.algorithm, "key_size": key.size },
        "sans": sans.json(),
        "is_ca": facts.is_ca,
        "path_len": facts.path_len,
        "key_usage": facts.key_usage,
        "extended_key_usage": facts.extended_key_usage,
        "subject_key_id": facts.subject_key_id,
        "authority_key_id": facts.authority_key_id,
        "provisioner": provisioner,
        "fingerprint_sha256": fingerprint_sha256(certificate.der),
    })
}

/// A full dump in the layout of step's (and openssl's) `-text`.
fn certificate_text(certificate: &Certificate<'_>) -> String {
    let x509 = &certificate.x509;
    let version = version_number(x509);
    let serial = serial(x509);
    let signature_algorithm = signature_algorithm_name(&x509.signature_algorithm);
    let validity = x509.validity();
    let mut out = String::new();
    let _ = writeln!(out, "Certificate:");
    let _ = writeln!(out, "    Data:");
    let _ = writeln!(out, "        Version: {version} (0x{:x})", version - 1);
    let _ = writeln!(
        out,
        "        Serial Number: {} (0x{})",
        serial.to_decimal(),
        hex::encode(serial.as_be_bytes())
    );
    let _ = writeln!(out, "    Signature Algorithm: {signature_algorithm}");
    let _ = writeln!(out, "        Issuer: {}", x509.issuer());
    let _ = writeln!(out, "        Validity");
    let _ = writeln!(
        out,
        "            Not Before: {}",
        openssl_time(validity.not_before.to_datetime())
    );
    let _ = writeln!(
        out,
        "            Not After : {}",
        openssl_time(validity.not_after.to_datetime())
    );
    let _ = writeln!(out, "        Subject: {}", x509.subject());
    public_key_text(&mut out, x509.public_key());
    if !x509.extensions().is_empty() {
        let _ = writeln!(out, "        X509v3 extensions:");
        let provisioner = ProvisionerExtension::from_certificate(x509);
        for extension in x509.extensions() {
            extension_text(&mut out, extension, provisioner.as_ref());
        }
    }
    let _ = writeln!(out, "    Signature Algorithm: {signature_algorithm}");
    hex_block(&mut out, &x509.signature_value.data, 18, 9);
    let _ = writeln!(
        out,
        "    SHA-256 Fingerprint: {}",
        fingerprint_sha256(certificate.der)
    );
    out
}

fn public_key_text(out: &mut String, spki: &SubjectPublicKeyInfo<'_>) {
    let key = key_info(spki);
    let _ = writeln!(out, "        Subject Public Key Info:");
    let _ = writeln!(out, "            Public Key Algorithm: {}", key.algorithm);
    if key.size > 0 {
        let _ = writeln!(out, "                Public-Key: ({} bit)", key.size);
    }
    match spki.parsed() {
        Ok(PublicKey::EC(point)) => {
            let data = point.data();
            match data.split_first() {
                // Uncompressed: 04 || X || Y, the halves of equal length.
                Some((0x04, coordinates)) if coordinates.len() % 2 == 0 => {
                    let (x, y) = coordinates.split_at(coordinates.len() / 2);
                    let _ = writeln!(out, "                X:");
                    hex_block(out, x, 15, 20);
                    let _ = writeln!(out, "                Y:");
                    hex_block(out, y, 15, 20);
                }
                _ => {
                    let _ = writeln!(out, "                pub:");
                    hex_block(out, data, 15, 20);
                }
            }
            if let Some(curve) = key.curve {
                let _ = writeln!(out, "                Curve: {curve}");
            }
        }
        Ok(PublicKey::RSA(rsa)) => {
            let _ = writeln!(out, "                Modulus:");
            hex_block(out, rsa.modulus, 15, 20);
            let exponent = rsa
                .exponent
                .iter()
                .skip_while(|&&b| b == 0)
                .collect::<Vec<_>>();
            if exponent.len() <= 8 {
                let value = exponent
                    .iter()
                    .fold(0u64, |acc, &&b| (acc << 8) | u64::from(b));
                let _ = writeln!(out, "                Exponent: {value} (0x{value:x})");
            } else {
                let _ = writeln!(
                    out,
                    "                Exponent: 0x{}",
                    hex::encode(rsa.exponent)
                );
            }
        }
        _ => {
            let _ = writeln!(out, "                pub:");
            hex_block(out, &spki.subject_public_key.data, 15, 20);
        }
    }
}

/// Colon-separated hex, `per_line` bytes a line, each line indented by `indent` spaces.
fn hex_block(out: &mut String, bytes: &[u8], per_line: usize, indent: usize) {
    let lines: Vec<String> = bytes
        .chunks(per_line)
        .map(|chunk| hex_colons(chunk, false))
        .collect();
    let count = lines.len();
    for (index, line) in lines.into_iter().enumerate() {
        let separator = if index + 1 < count { ":" } else { "" };
        let _ = writeln!(out, "{:indent$}{line}{separator}", "");
    }
}

fn extension_text(
    out: &mut String,
    extension: &X509Extension<'_>,
    provisioner: Option<&ProvisionerExtension>,
) {
    let critical = if extension.critical { " critical" } else { "" };
    let (title, lines) = extension_lines(extension, provisioner);
    let _ = writeln!(out, "            {title}:{critical}");
    for line in lines {
        let _ = writeln!(out, "                {line}");
    }
}

fn extension_lines(
    extension: &X509Extension<'_>,
    provisioner: Option<&ProvisionerExtension>,
) -> (String, Vec<String>) {
    let is_provisioner = Oid::from(STEP_PROVISIONER_OID).is_ok_and(|oid| oid == extension.oid);
    if is_provisioner {
        let lines = match provisioner {
            Some(p) => vec![
                format!("Type: {}", provisioner_type_name(p.type_code)),
                format!("Name: {}", p.name),
                format!("CredentialID: {}", p.credential_id),
            ],
            None => vec!["<malformed>".to_string()],
        };
        return ("X509v3 Step Provisioner".into(), lines);
    }
    let titled = |title: &str, lines: Vec<String>| (title.to_string(), lines);
    match extension.parsed_extension() {
        ParsedExtension::BasicConstraints(bc) => {
            let mut line = format!("CA:{}", if bc.ca { "TRUE" } else { "FALSE" });
            if let Some(path_len) = bc.path_len_constraint {
                let _ = write!(line, ", pathlen:{path_len}");
            }
            titled("X509v3 Basic Constraints", vec![line])
        }
        ParsedExtension::KeyUsage(usage) => {
            let names: Vec<&str> = key_usage_names(usage)
                .into_iter()
                .map(|(_, text)| text)
                .collect();
            titled("X509v3 Key Usage", vec![names.join(", ")])
        }
        ParsedExtension::ExtendedKeyUsage(eku) => {
            let names: Vec<String> = extended_key_usage_names(eku)
                .into_iter()
                .map(|(_, text)| text)
                .collect();
            titled("X509v3 Extended Key Usage", vec![names.join(", ")])
        }
        ParsedExtension::SubjectKeyIdentifier(id) => titled(
            "X509v3 Subject Key Identifier",
            vec![hex_colons(id.0, true)],
        ),
        ParsedExtension::AuthorityKeyIdentifier(aki) => {
            let mut lines = Vec::new();
            if let Some(id) = &aki.key_identifier {
                lines.push(format!("keyid:{}", hex_colons(id.0, true)));
            }
            for name in aki.authority_cert_issuer.iter().flatten() {
                lines.push(general_name_text(name));
            }
            if let Some(serial) = aki.authority_cert_serial {
                lines.push(format!("serial:{}", hex_colons(serial, true)));
            }
            titled("X509v3 Authority Key Identifier", lines)
        }
        ParsedExtension::SubjectAlternativeName(names) => {
            let mut sans = Sans::default();
            for name in &names.general_names {
                sans.add(name);
            }
            titled("X509v3 Subject Alternative Name", sans.text_lines())
        }
        ParsedExtension::AuthorityInfoAccess(aia) => {
            let lines = aia
                .accessdescs
                .iter()
                .map(|d| {
                    let method = match d.access_method.to_id_string().as_str() {
                        "1.3.6.1.5.5.7.48.1" => "OCSP".to_string(),
                        "1.3.6.1.5.5.7.48.2" => "CA Issuers".to_string(),
                        other => other.to_string(),
                    };
                    format!("{method} - {}", general_name_text(&d.access_location))
                })
                .collect();
            titled("Authority Information Access", lines)
        }
        ParsedExtension::CRLDistributionPoints(points) => {
            let mut lines = Vec::new();
            for point in points.iter() {
                match &point.distribution_point {
                    Some(x509_parser::extensions::DistributionPointName::FullName(names)) => {
                        lines.push("Full Name:".to_string());
                        lines.extend(names.iter().map(|n| format!("  {}", general_name_text(n))));
                    }
                    Some(
                        x509_parser::extensions::DistributionPointName::NameRelativeToCRLIssuer(_),
                    ) => {
                        lines.push("Relative Name: <unsupported>".to_string());
                    }
                    None => {}
                }
            }
            titled("X509v3 CRL Distribution Points", lines)
        }
        ParsedExtension::CertificatePolicies(policies) => {
            let lines = policies
                .iter()
                .map(|p| format!("Policy: {}", p.policy_id.to_id_string()))
                .collect();
            titled("X509v3 Certificate Policies", lines)
        }
        ParsedExtension::NameConstraints(constraints) => {
            let mut lines = Vec::new();
            for (label, subtrees) in [
                ("Permitted:", &constraints.permitted_subtrees),
                ("Excluded:", &constraints.excluded_subtrees),
            ] {
                if let Some(subtrees) = subtrees {
                    lines.push(label.to_string());
                    lines.extend(
                        subtrees
                            .iter()
                            .map(|s| format!("  {}", general_name_text(&s.base))),
                    );
                }
            }
            titled("X509v3 Name Constraints", lines)
        }
        ParsedExtension::ParseError { error } => (
            extension_name(&extension.oid),
            vec![format!("<malformed: {error}>")],
        ),
        _ => {
            let mut block = String::new();
            let shown = &extension.value[..extension.value.len().min(64)];
            hex_block(&mut block, shown, 16, 0);
            let mut lines: Vec<String> = block.lines().map(str::to_string).collect();
            if extension.value.len() > shown.len() {
                lines.push(format!("... ({} bytes in all)", extension.value.len()));
            }
            (extension_name(&extension.oid), lines)
        }
    }
}

/// The registry's short name of an extension when it has one, its OID otherwise.
fn extension_name(oid: &Oid<'_>) -> String {
    let registry = x509_parser::objects::oid_registry();
    match x509_parser::objects::oid2sn(oid, registry) {
        Ok(name) => format!("{name} ({})", oid.to_id_string()),
        Err(_) => oid.to_id_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// Certificate requests.

fn requested_extensions<'a>(
    request: &'a X509CertificationRequest<'a>,
) -> Vec<&'a X509Extension<'a>> {
    request
        .certification_request_info
        .iter_attributes()
        .filter_map(|attribute| match attribute.parsed_attribute() {
            ParsedCriAttribute::ExtensionRequest(requested) => Some(requested.extensions.iter()),
            _ => None,
        })
        .flatten()
        .collect()
}

fn render_request(request: &X509CertificationRequest<'_>, format: Format, short: bool) -> String {
    let info = &request.certification_request_info;
    let extensions = requested_extensions(request);
    let sans = sans_of(extensions.iter().map(|e| e.parsed_extension()));
    let key = key_info(&info.subject_pki);
    let signature_valid = request.verify_signature().is_ok();
    let signature_algorithm = signature_algorithm_name(&request.signature_algorithm);
    match (format, short) {
        (Format::Json, _) => {
            let facts = extension_facts(extensions.iter().map(|e| e.parsed_extension()));
            let value = json!({
                "version": info.version.0 + 1,
                "signature_algorithm": signature_algorithm,
                "subject": info.subject.to_string(),
                "subject_key_info": { "key_algorithm": key.algorithm, "key_size": key.size },
                "sans": sans.json(),
                "key_usage": facts.key_usage,
                "extended_key_usage": facts.extended_key_usage,
                "signature_valid": signature_valid,
            });
            format!(
                "{}\n",
                serde_json::to_string_pretty(&value).unwrap_or_default()
            )
        }
        (Format::Text, true) => {
            let subject = common_name(&info.subject)
                .or_else(|| sans.first().map(str::to_string))
                .unwrap_or_default();
            let mut out = String::new();
            let _ = writeln!(
                out,
                "X.509v3 Certificate Signing Request ({})",
                key.description
            );
            let _ = writeln!(out, "  Subject:     {subject}");
            let all = sans.all();
            if !all.is_empty() {
                let _ = writeln!(out, "  SANs:        {}", all.join(", "));
            }
            let _ = writeln!(
                out,
                "  Signature:   {}",
                if signature_valid { "valid" } else { "INVALID" }
            );
            out
        }
        (Format::Text, false) => {
            let mut out = String::new();
            let _ = writeln!(out, "Certificate Request:");
            let _ = writeln!(out, "    Data:");
            let _ = writeln!(
                out,
                "        Version: {} (0x{:x})",
                info.version.0 + 1,
                info.version.0
            );
            let _ = writeln!(out, "        Subject: {}", info.subject);
            public_key_text(&mut out, &info.subject_pki);
            if !extensions.is_empty() {
                let _ = writeln!(out, "        Requested Extensions:");
                for extension in &extensions {
                    extension_text(&mut out, extension, None);
                }
            }
            let _ = writeln!(out, "    Signature Algorithm: {signature_algorithm}");
            hex_block(&mut out, &request.signature_value.data, 18, 9);
            let _ = writeln!(
                out,
                "    Signature: {}",
                if signature_valid { "valid" } else { "INVALID" }
            );
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_identifiers_are_abbreviated_like_step() {
        assert_eq!(abbreviate("1234567890"), "1234567890");
        assert_eq!(abbreviate("77200000000000001576"), "7720...1576");
        assert_eq!(
            abbreviate("JxCvTLC67zKCOi-yyMoHpO5vAj_MnXs80PR0nh7IjUg"),
            "JxCv...IjUg"
        );
    }

    #[test]
    fn bit_length_ignores_leading_zeros() {
        assert_eq!(bit_length(&[0x00, 0x80, 0x00]), 16);
        assert_eq!(bit_length(&[0x01, 0x00]), 9);
        assert_eq!(bit_length(&[0x00]), 0);
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        let cases: [&[u8]; 4] = [
            b"",
            b"hello",
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            &[0x30, 0x03, 0x02, 0x01, 0x01],
        ];
        for input in cases {
            let err = decode("f.crt", input)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains("no certificate found"), "{input:?}: {err}");
        }
        let err = decode(
            "f.crt",
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(err.contains("certificate 1 is malformed"), "{err}");
    }
}
