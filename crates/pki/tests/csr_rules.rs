//! The CA's rules for certificate requests, on requests made by openssl: SHA-1 (and MD5)
//! signatures are refused for every key type, RSA keys must use the exponent 65537, and a PEM
//! must hold exactly one request. Each refusal names its rule.

use std::path::Path;
use std::process::Command;

use mayfly_pki::Csr;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("running openssl");
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
}

fn request(dir: &Path, key: &str, digest: &str, out: &str) -> String {
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-key",
            key,
            "-subj",
            "/CN=a.test",
            digest,
            "-out",
            out,
        ],
    );
    std::fs::read_to_string(dir.join(out)).unwrap()
}

fn refusal(pem: &str) -> String {
    match Csr::from_pem(pem) {
        Ok(_) => panic!("accepted: {pem}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn weak_signatures_odd_exponents_and_extra_requests_are_refused_by_name() {
    let test = "weak_signatures_odd_exponents_and_extra_requests_are_refused_by_name";
    if mayfly_testkit::program(test, "openssl", "openssl").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    openssl(
        dir,
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            "rsa.key",
        ],
    );
    openssl(
        dir,
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-pkeyopt",
            "rsa_keygen_pubexp:3",
            "-out",
            "e3.key",
        ],
    );
    openssl(
        dir,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            "ec.key",
        ],
    );

    // The same keys with SHA-256 are fine: the refusals below are the rules, not the keys.
    let rsa = request(dir, "rsa.key", "-sha256", "rsa.csr");
    let ec = request(dir, "ec.key", "-sha256", "ec.csr");
    Csr::from_pem(&rsa).unwrap();
    Csr::from_pem(&ec).unwrap();

    for (key, name) in [
        ("rsa.key", "sha1WithRSAEncryption"),
        ("ec.key", "ecdsa-with-SHA1"),
    ] {
        let error = refusal(&request(dir, key, "-sha1", "sha1.csr"));
        assert!(
            error.contains(name) && error.contains("SHA-1"),
            "{key}: {error}"
        );
    }
    let error = refusal(&request(dir, "e3.key", "-sha256", "e3.csr"));
    assert!(
        error.contains("exponent 0x03") && error.contains("65537"),
        "{error}"
    );
    let error = refusal(&format!("{rsa}{ec}"));
    assert!(
        error.contains("2 blocks") && error.contains("one certificate request"),
        "{error}"
    );
    let key = std::fs::read_to_string(dir.join("ec.key")).unwrap();
    let error = refusal(&format!("{ec}{key}"));
    assert!(error.contains("PRIVATE KEY"), "{error}");
}
