//! Revocation every relying party can check (issue 18). A CA made by a plain `mayfly ca init`
//! revokes one leaf for each reason a leaf may be revoked for and keeps one good, and verifiers
//! written by others judge what it publishes on its plain-HTTP listener, fetched from the URLs
//! the certificates carry:
//!
//! - pkilint lints the certificates, the CRLs and the OCSP responses against RFC 5280 and 6960
//!   (its PKIX profile, not the CA/Browser Forum's);
//! - openssl (`verify -crl_check -crl_download`, `ocsp`);
//! - Go's crypto/x509 (the program in tests/verifiers/go);
//! - webpki, the verifier of rustls.
//!
//! Once with every leaf pointing at the complete CRL, once with `crl.shards` spreading them over
//! shard CRLs, each scoped by an Issuing Distribution Point. Last, the root's CRL revokes the
//! intermediate, and the verifiers that check the whole chain see it.

mod support;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, UnixTime};
use support::ca::{Init, InitCa};
use support::require_tool;
use webpki::{
    BorrowedCertRevocationList, CertRevocationList, EndEntityCert, OwnedCertRevocationList,
    RevocationCheckDepth, RevocationOptionsBuilder, RevocationReason, UnknownStatusPolicy,
};
use x509_parser::extensions::{DistributionPointName, GeneralName, ParsedExtension};

/// The reasons a leaf may be revoked for (RFC 5280 5.3.1): code and name.
const REASONS: [(u8, &str); 6] = [
    (0, "unspecified"),
    (1, "keyCompromise"),
    (3, "affiliationChanged"),
    (4, "superseded"),
    (5, "cessationOfOperation"),
    (9, "privilegeWithdrawn"),
];

#[test]
fn every_verifier_judges_leaves_on_the_complete_crl() {
    if peers("every_verifier_judges_leaves_on_the_complete_crl").is_some() {
        every_verifier_judges(1);
    }
}

#[test]
fn every_verifier_judges_leaves_on_shard_crls() {
    if peers("every_verifier_judges_leaves_on_shard_crls").is_some() {
        every_verifier_judges(4);
    }
}

/// One leaf: `good`, or revoked for `reason`.
struct Leaf {
    /// The file stem: `{name}.crt` (leaf and intermediate, as `mayfly ca certificate` saves
    /// it), `{name}-leaf.pem` (the leaf alone).
    name: String,
    der: Vec<u8>,
    /// Decimal, as `mayfly ca revoke` takes it.
    serial: String,
    /// The serial number's content octets, as webpki looks them up.
    raw_serial: Vec<u8>,
    /// The URL of its CRL Distribution Point.
    crl_url: String,
    reason: Option<(u8, &'static str)>,
}

impl Leaf {
    fn pem(&self) -> String {
        format!("{}-leaf.pem", self.name)
    }

    /// What Go's program prints about it.
    fn verdict(&self) -> String {
        match self.reason {
            None => "good".into(),
            Some((_, name)) => format!("revoked {name}"),
        }
    }
}

/// The CA under test, started, with the URLs it publishes at.
struct Pki {
    ca: InitCa,
    _server: support::Server,
    base: String,
    root: String,
    intermediate: String,
}

impl Pki {
    fn work(&self) -> &Path {
        self.ca.work()
    }

    fn mayfly(&self, args: &[&str]) -> String {
        support::mayfly_ok(&self.ca.home, self.ca.work(), args)
    }

    fn issue(&self, name: &str, reason: Option<(u8, &'static str)>) -> Leaf {
        self.ca.certificate(
            [
                &format!("{name}.verifiers.test"),
                &format!("{name}.crt"),
                &format!("{name}.key"),
            ],
            &[],
        );
        let chain = std::fs::read(self.work().join(format!("{name}.crt"))).unwrap();
        let der = pem::parse_many(chain).unwrap().remove(0).into_contents();
        let leaf_pem = pem::encode(&pem::Pem::new("CERTIFICATE", der.clone()));
        std::fs::write(self.work().join(format!("{name}-leaf.pem")), leaf_pem).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        let serial = cert.serial.to_string();
        let raw_serial = cert.raw_serial().to_vec();
        let crl_url = crl_distribution_point(&der).expect("a leaf names its CRL");
        Leaf {
            name: name.to_owned(),
            der,
            serial,
            raw_serial,
            crl_url,
            reason,
        }
    }

    fn openssl(&self, args: &[&str]) -> (bool, String) {
        support::run("openssl", args, self.work())
    }

    /// `openssl verify -crl_download` of `leaf`, with `flags` (-crl_check, -crl_check_all).
    fn openssl_verify(&self, leaf: &Leaf, flags: &[&str]) -> (bool, String) {
        let mut args = vec!["verify"];
        args.extend_from_slice(flags);
        let pem = leaf.pem();
        args.extend([
            "-crl_download",
            "-CAfile",
            &self.root,
            "-untrusted",
            &self.intermediate,
            &pem,
        ]);
        self.openssl(&args)
    }

    /// Writes the CRL at `url` as PEM into `file` in the work directory, for openssl -CRLfile.
    fn crl_pem(&self, url: &str, file: &str) {
        std::fs::write(self.work().join(format!("{file}.der")), http_get(url)).unwrap();
        let der_file = format!("{file}.der");
        let (ok, text) = self.openssl(&["crl", "-inform", "DER", "-in", &der_file, "-out", file]);
        assert!(ok, "{text}");
    }

    fn go(&self, leaf: &str) -> (bool, String) {
        let out = Command::new(go_verifier())
            .args([&self.root, &self.intermediate, leaf])
            .current_dir(self.work())
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    fn der(&self, path: &str) -> Vec<u8> {
        pem::parse(std::fs::read(path).unwrap())
            .unwrap()
            .into_contents()
    }
}

fn every_verifier_judges(shards: u16) {
    let ca = InitCa::new(Init {
        name: "Verifiers",
        plain_http: true,
        ..Init::default()
    });
    let http_port = ca.http_port.unwrap();
    if shards > 1 {
        ca.edit_config(|config| config["crl"]["shards"] = shards.into());
    }
    let server = ca.start();
    let pki = Pki {
        root: ca.home.join("certs/root_ca.crt").display().to_string(),
        intermediate: ca
            .home
            .join("certs/intermediate_ca.crt")
            .display()
            .to_string(),
        base: format!("http://127.0.0.1:{http_port}"),
        _server: server,
        ca,
    };
    let base = &pki.base;
    let root_der = pki.der(&pki.root);
    let intermediate_der = pki.der(&pki.intermediate);
    let root_crl_url = crl_distribution_point(&intermediate_der).expect("ca init's intermediate");
    assert_eq!(root_crl_url, format!("{base}/1.0/root.crl"));

    let mut leaves = vec![pki.issue("good", None)];
    for (code, name) in REASONS {
        leaves.push(pki.issue(&format!("reason-{code}"), Some((code, name))));
    }
    for leaf in &leaves {
        if shards > 1 {
            let shard: u16 = leaf
                .crl_url
                .strip_prefix(&format!("{base}/1.0/crls/"))
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("{}: {} is no shard's URL", leaf.name, leaf.crl_url));
            assert!(shard < shards, "{}", leaf.crl_url);
        } else {
            assert_eq!(leaf.crl_url, format!("{base}/1.0/crl"), "{}", leaf.name);
        }
    }
    for leaf in &leaves {
        if let Some((code, _)) = leaf.reason {
            pki.mayfly(&[
                "ca",
                "revoke",
                &leaf.serial,
                "--reasonCode",
                &code.to_string(),
                "--provisioner-password-file",
                "pw.txt",
            ]);
        }
    }
    // The complete CRL and each leaf's own CRL list exactly the revoked leaves, with their
    // reasons (none written for unspecified, as RFC 5280 5.3.1 recommends).
    let full_url = format!("{base}/1.0/crl");
    wait_for("every revocation on the CRLs", || {
        leaves.iter().all(|leaf| {
            let expected = leaf.reason.map(|(code, _)| (code != 0).then_some(code));
            crl_entry(&http_get(&full_url), &leaf.serial) == expected
                && crl_entry(&http_get(&leaf.crl_url), &leaf.serial) == expected
        })
    });

    lint_everything(&pki, &leaves, shards);
    let mut verdicts = Vec::new();
    for leaf in &leaves {
        let openssl = openssl_judges(&pki, leaf);
        let go = go_judges(&pki, leaf);
        let webpki = webpki_judges(&pki, leaf, &root_der, &intermediate_der, shards);
        verdicts.push(format!(
            "{:<10} CDP {:<40} openssl: {openssl}; go: {go}; webpki: {webpki}",
            leaf.name, leaf.crl_url
        ));
    }
    chain_checks_reach_the_root_crl(&pki, &leaves[0], &root_der, &intermediate_der);
    println!("shards {shards}:\n{}", verdicts.join("\n"));
}

/// pkilint finds nothing in any certificate, CRL or OCSP response the CA made.
fn lint_everything(pki: &Pki, leaves: &[Leaf], shards: u16) {
    let work = pki.work();
    let base = &pki.base;
    for cert in [&pki.root, &pki.intermediate] {
        assert_lint_clean(cert, pkilint("lint_pkix_cert", &[], Path::new(cert)));
    }
    for leaf in leaves {
        let pem = work.join(leaf.pem());
        assert_lint_clean(&leaf.name, pkilint("lint_pkix_cert", &[], &pem));
    }
    let mut crls = vec![format!("{base}/1.0/crl"), format!("{base}/1.0/crl-delta")];
    if shards > 1 {
        crls.extend((0..shards).map(|n| format!("{base}/1.0/crls/{n}")));
    }
    for url in &crls {
        assert_lint_clean(url, lint_crl(work, url, "CRL"));
    }
    // The root's CRL lists CA certificates only: an authority revocation list.
    let root_crl = format!("{base}/1.0/root.crl");
    assert_lint_clean(&root_crl, lint_crl(work, &root_crl, "ARL"));
    // OCSP responses, good and revoked for every reason, and the delegated responder's
    // certificate they carry.
    for leaf in leaves {
        let response = format!("{}.ocsp", leaf.name);
        let (ok, text) = pki.openssl(&[
            "ocsp",
            "-issuer",
            &pki.intermediate,
            "-cert",
            &leaf.pem(),
            "-url",
            &format!("{base}/ocsp"),
            "-CAfile",
            &pki.root,
            "-respout",
            &response,
        ]);
        assert!(ok, "{text}");
        assert_lint_clean(
            &response,
            pkilint("lint_ocsp_response", &[], &work.join(&response)),
        );
    }
    let (ok, text) = pki.openssl(&[
        "ocsp",
        "-respin",
        &format!("{}.ocsp", leaves[0].name),
        "-resp_text",
        "-noverify",
    ]);
    assert!(ok, "{text}");
    let begin = text
        .find("-----BEGIN CERTIFICATE-----")
        .expect("a responder certificate");
    let end = text[begin..].find("-----END CERTIFICATE-----").unwrap() + begin;
    let responder = work.join("responder.pem");
    std::fs::write(
        &responder,
        format!("{}-----END CERTIFICATE-----\n", &text[begin..end]),
    )
    .unwrap();
    let (ok, usage) = pki.openssl(&[
        "x509",
        "-in",
        "responder.pem",
        "-noout",
        "-ext",
        "extendedKeyUsage",
    ]);
    assert!(ok && usage.contains("OCSP Signing"), "{usage}");
    assert_lint_clean(
        "the OCSP responder",
        pkilint("lint_pkix_cert", &[], &responder),
    );
}

/// openssl fetches each leaf's CRL from its distribution point, and asks the OCSP responder.
fn openssl_judges(pki: &Pki, leaf: &Leaf) -> String {
    let pem = leaf.pem();
    let (verified, out) = pki.openssl_verify(leaf, &["-crl_check"]);
    match leaf.reason {
        None => assert!(verified && out.contains(&format!("{pem}: OK")), "{out}"),
        Some(_) => assert!(
            !verified && out.contains("error 23 at 0 depth lookup: certificate revoked"),
            "{}: {out}",
            leaf.name
        ),
    }
    let (ok, ocsp) = pki.openssl(&[
        "ocsp",
        "-issuer",
        &pki.intermediate,
        "-cert",
        &pem,
        "-url",
        &format!("{}/ocsp", pki.base),
        "-CAfile",
        &pki.root,
        "-resp_text",
    ]);
    assert!(ok && ocsp.contains("Response verify OK"), "{ocsp}");
    // openssl names reasons up to removeFromCRL only (privilegeWithdrawn is "(UNKNOWN)"), so
    // the code is what is compared.
    let reason_line = ocsp.lines().find(|l| l.contains("Revocation Reason:"));
    match leaf.reason {
        None => {
            assert!(ocsp.contains(&format!("{pem}: good")), "{ocsp}");
            assert!(reason_line.is_none(), "{ocsp}");
        }
        Some((code, _)) => {
            assert!(ocsp.contains(&format!("{pem}: revoked")), "{ocsp}");
            match reason_line {
                Some(line) => assert!(line.ends_with(&format!("(0x{code:x})")), "{ocsp}"),
                None => assert_eq!(code, 0, "no reason in the OCSP response: {ocsp}"),
            }
        }
    }
    let ocsp_status = if leaf.reason.is_some() {
        "revoked"
    } else {
        "good"
    };
    let crl_status = if verified {
        "OK"
    } else {
        "certificate revoked"
    };
    format!("verify {crl_status}, ocsp {ocsp_status}")
}

/// Go's crypto/x509, through the program in tests/verifiers/go.
fn go_judges(pki: &Pki, leaf: &Leaf) -> String {
    let (ok, out) = pki.go(&leaf.pem());
    assert!(ok, "{}: {out}", leaf.name);
    assert_eq!(out.trim(), leaf.verdict(), "{}", leaf.name);
    out.trim().to_owned()
}

/// webpki with the leaf's CRL fetched from its distribution point and the root's CRL for the
/// intermediate; with the complete CRL; and, with shards, with another shard's CRL, which its
/// Issuing Distribution Point keeps webpki from taking as authoritative for this leaf.
fn webpki_judges(
    pki: &Pki,
    leaf: &Leaf,
    root_der: &[u8],
    intermediate_der: &[u8],
    shards: u16,
) -> String {
    let root_crl = http_get(&format!("{}/1.0/root.crl", pki.base));
    let own = http_get(&leaf.crl_url);
    let full = http_get(&format!("{}/1.0/crl", pki.base));
    let expected = |result: &Result<(), webpki::Error>| match leaf.reason {
        None => assert!(result.is_ok(), "{}: {result:?}", leaf.name),
        Some(_) => assert!(
            matches!(result, Err(webpki::Error::CertRevoked)),
            "{}: {result:?}",
            leaf.name
        ),
    };
    let deny = UnknownStatusPolicy::Deny;
    let result = webpki_verify(root_der, intermediate_der, leaf, &own, &root_crl, deny);
    expected(&result);
    expected(&webpki_verify(
        root_der,
        intermediate_der,
        leaf,
        &full,
        &root_crl,
        deny,
    ));
    // The reason, as webpki reads the entry.
    let crl = CertRevocationList::from(BorrowedCertRevocationList::from_der(&own).unwrap());
    let entry = crl.find_serial(&leaf.raw_serial).unwrap();
    let reason = entry.map(|e| e.reason_code.unwrap_or(RevocationReason::Unspecified));
    let expected_reason = leaf
        .reason
        .map(|(code, _)| RevocationReason::try_from(code).unwrap());
    assert_eq!(reason, expected_reason, "{}", leaf.name);
    let mut verdict = match reason {
        None => "good".to_owned(),
        Some(reason) => format!("revoked {reason:?}"),
    };
    if shards > 1 {
        let shard: u16 = leaf.crl_url.rsplit('/').next().unwrap().parse().unwrap();
        let other = http_get(&format!("{}/1.0/crls/{}", pki.base, (shard + 1) % shards));
        let result = webpki_verify(root_der, intermediate_der, leaf, &other, &root_crl, deny);
        assert!(
            matches!(result, Err(webpki::Error::UnknownRevocationStatus)),
            "{}: another shard's CRL: {result:?}",
            leaf.name
        );
        verdict.push_str(", another shard's CRL: unknown status");
    }
    verdict
}

fn webpki_verify(
    root_der: &[u8],
    intermediate_der: &[u8],
    leaf: &Leaf,
    leaf_crl: &[u8],
    root_crl: &[u8],
    policy: UnknownStatusPolicy,
) -> Result<(), webpki::Error> {
    let root = CertificateDer::from(root_der);
    let anchors = [webpki::anchor_from_trusted_cert(&root).unwrap()];
    let intermediates = [CertificateDer::from(intermediate_der)];
    let leaf_der = CertificateDer::from(leaf.der.as_slice());
    let end_entity = EndEntityCert::try_from(&leaf_der).unwrap();
    let leaf_crl = CertRevocationList::from(BorrowedCertRevocationList::from_der(leaf_crl)?);
    let root_crl = CertRevocationList::from(OwnedCertRevocationList::from_der(root_crl)?);
    let crls = [&leaf_crl, &root_crl];
    let revocation = RevocationOptionsBuilder::new(&crls)
        .unwrap()
        .with_depth(RevocationCheckDepth::Chain)
        .with_status_policy(policy)
        .build();
    end_entity
        .verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &anchors,
            &intermediates,
            UnixTime::now(),
            webpki::KeyUsage::server_auth(),
            Some(revocation),
            None,
        )
        .map(|_| ())
}

/// The intermediate is judged against the root's CRL, fetched from the intermediate's
/// distribution point: good, then revoked once `mayfly ca root-crl` lists it.
fn chain_checks_reach_the_root_crl(
    pki: &Pki,
    good: &Leaf,
    root_der: &[u8],
    intermediate_der: &[u8],
) {
    let root_crl_url = format!("{}/1.0/root.crl", pki.base);
    // -crl_check_all also wants a CRL for the root itself, which names no distribution point:
    // the root's CRL, which covers it, is given as a file. Without it openssl stops at the
    // root (depth 2) after checking the leaf and the intermediate with the CRLs it downloaded.
    let (ok, out) = pki.openssl_verify(good, &["-crl_check_all"]);
    assert!(
        ok || out.contains("error 3 at 2 depth lookup: unable to get certificate CRL"),
        "{out}"
    );
    pki.crl_pem(&root_crl_url, "root-crl.pem");
    let (ok, out) = pki.openssl_verify(good, &["-crl_check_all", "-CRLfile", "root-crl.pem"]);
    assert!(ok && out.contains(": OK"), "{out}");

    pki.mayfly(&[
        "ca",
        "root-crl",
        "--revoke",
        &pki.intermediate,
        "--reasonCode",
        "cACompromise",
        "--password-file",
        "pw.txt",
    ]);
    let root_crl = http_get(&root_crl_url);
    let (_, intermediate) = x509_parser::parse_x509_certificate(intermediate_der).unwrap();
    assert_eq!(
        crl_entry(&root_crl, &intermediate.serial.to_string()),
        Some(Some(2)),
        "the served root CRL lists the intermediate"
    );
    assert_lint_clean(&root_crl_url, lint_crl(pki.work(), &root_crl_url, "ARL"));
    // openssl learns it only from the root CRL it downloads from the intermediate's CDP.
    let (ok, out) = pki.openssl_verify(good, &["-crl_check_all"]);
    assert!(
        !ok && out.contains("error 23 at 1 depth lookup: certificate revoked"),
        "{out}"
    );
    let (ok, out) = pki.go(&good.pem());
    assert!(
        !ok && out.contains("intermediate is revoked cACompromise"),
        "{out}"
    );
    let own = http_get(&good.crl_url);
    let result = webpki_verify(
        root_der,
        intermediate_der,
        good,
        &own,
        &root_crl,
        UnknownStatusPolicy::Deny,
    );
    assert!(
        matches!(result, Err(webpki::Error::CertRevoked)),
        "{result:?}"
    );
}

/// The first URI of a DER certificate's CRL Distribution Points.
fn crl_distribution_point(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    cert.extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::CRLDistributionPoints(points) => {
                points.iter().find_map(|p| match &p.distribution_point {
                    Some(DistributionPointName::FullName(names)) => {
                        names.iter().find_map(|n| match n {
                            GeneralName::URI(uri) => Some(uri.to_string()),
                            _ => None,
                        })
                    }
                    _ => None,
                })
            }
            _ => None,
        })
}

/// Whether the DER CRL lists the decimal `serial`: `None` if not, else its reason code, `None`
/// when the entry has none.
fn crl_entry(der: &[u8], serial: &str) -> Option<Option<u8>> {
    let (_, crl) = x509_parser::parse_x509_crl(der).unwrap();
    crl.iter_revoked_certificates()
        .find(|r| r.user_certificate.to_string() == serial)
        .map(|r| r.reason_code().map(|(_, code)| code.0))
}

/// GET over plain HTTP; the body of a 200 response.
fn http_get(url: &str) -> Vec<u8> {
    let rest = url.strip_prefix("http://").unwrap();
    let (authority, path) = rest.split_at(rest.find('/').unwrap());
    let mut stream = std::net::TcpStream::connect(authority).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // HTTP/1.0: the body is what follows the head, up to the end of the connection.
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {authority}\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP response head");
    let head = String::from_utf8_lossy(&raw[..split]);
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "GET {url}: {head}"
    );
    raw[split + 4..].to_vec()
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The Go verifier, built once per test run from tests/verifiers/go with the local toolchain
/// and nothing from the network.
fn go_verifier() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("verifiers-go");
        let binary = dir.join("crlcheck");
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/verifiers/go");
        let out = Command::new("go")
            .args(["build", "-o"])
            .arg(&binary)
            .arg(".")
            .current_dir(source)
            .env("GOCACHE", dir.join("cache"))
            .env("GOPATH", dir.join("gopath"))
            .env("GOTOOLCHAIN", "local")
            .env("GOPROXY", "off")
            .env("GOFLAGS", "")
            // The pure-Go resolver: no C compiler needed.
            .env("CGO_ENABLED", "0")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "go build: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        binary
    })
}

/// The verifiers besides webpki: openssl, which every end-to-end test needs; Go and pkilint,
/// which a fresh clone may lack: the test then says it skipped (and fails under
/// MAYFLY_REQUIRE_PEERS, as on CI, where .ci/run installs them).
fn peers(test: &str) -> Option<()> {
    require_tool("openssl", "openssl");
    mayfly_testkit::program(test, "go", "golang-go")?;
    for linter in ["lint_pkix_cert", "lint_crl", "lint_ocsp_response"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {linter}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            return mayfly_testkit::missing(
                test,
                &format!("{linter} (pkilint: python3 -m pip install pkilint; .ci/run installs it)"),
            );
        }
    }
    Some(())
}

/// `lint_crl` of the CRL at `url`, of `kind` (CRL, or ARL for one of CA certificates), in the
/// PKIX profile (RFC 5280; BR is the CA/Browser Forum's, for public TLS).
fn lint_crl(work: &Path, url: &str, kind: &str) -> Vec<(String, String)> {
    let file = work.join("lint.crl");
    std::fs::write(&file, http_get(url)).unwrap();
    pkilint("lint_crl", &["-t", kind, "-p", "PKIX"], &file)
}

/// pkilint's findings about `file`, down to INFO: (severity, code).
fn pkilint(tool: &str, options: &[&str], file: &Path) -> Vec<(String, String)> {
    let out = Command::new(tool)
        .arg("lint")
        .args(options)
        .args(["-s", "INFO", "-f", "JSON"])
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("{tool}: {e}"));
    let text = String::from_utf8_lossy(&out.stdout);
    let report: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "{tool} {}: {e}: {text}{}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let findings: Vec<(String, String)> = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["finding_descriptions"].as_array().unwrap().iter())
        .map(|f| {
            (
                f["severity"].as_str().unwrap().to_owned(),
                f["code"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    // pkilint exits non-zero when it reports anything at or above the threshold.
    assert_eq!(out.status.success(), findings.is_empty(), "{tool}: {text}");
    findings
}

/// No finding above INFO. INFO findings say what pkilint recognised (the method of a key
/// identifier, for one), not a departure from the RFCs; NOTICE already flags one from what
/// they recommend, so it fails here like WARNING, ERROR and FATAL.
#[track_caller]
fn assert_lint_clean(what: &str, findings: Vec<(String, String)>) {
    let findings: Vec<_> = findings.into_iter().filter(|(s, _)| s != "INFO").collect();
    assert!(findings.is_empty(), "pkilint on {what}: {findings:?}");
}
