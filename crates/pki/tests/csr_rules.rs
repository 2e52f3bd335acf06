//! The CA's rules for certificate requests, on requests made by openssl: SHA-1 (and MD5)
//! signatures are refused for every key type and padding (RSASSA-PSS over SHA-1, as its hash or
//! its mask generation's, included), a PSS salt is as long as its hash, RSA keys must use the
//! exponent 65537, and a PEM must hold exactly one request. Each refusal names its rule.

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

/// A request for `/CN=a.test` by `key`, signed as `signing` says (`-sha256`, or a digest and
/// `-sigopt`s).
fn request(dir: &Path, key: &str, signing: &[&str], out: &str) -> String {
    let mut args = vec!["req", "-new", "-key", key, "-subj", "/CN=a.test"];
    args.extend_from_slice(signing);
    args.extend_from_slice(&["-out", out]);
    openssl(dir, &args);
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
    let rsa = request(dir, "rsa.key", &["-sha256"], "rsa.csr");
    let ec = request(dir, "ec.key", &["-sha256"], "ec.csr");
    Csr::from_pem(&rsa).unwrap();
    Csr::from_pem(&ec).unwrap();
    // RSASSA-PSS over SHA-256 (its mask generation too) with a salt as long as the hash is fine:
    // the rules are the digest and the salt, not the padding.
    Csr::from_pem(&request(
        dir,
        "rsa.key",
        &[
            "-sha256",
            "-sigopt",
            "rsa_padding_mode:pss",
            "-sigopt",
            "rsa_pss_saltlen:digest",
        ],
        "pss.csr",
    ))
    .unwrap();
    // OpenSSL's default salt, the longest the key allows (222 bytes for RSA 2048 and SHA-256).
    let error = refusal(&request(
        dir,
        "rsa.key",
        &["-sha256", "-sigopt", "rsa_padding_mode:pss"],
        "pss-max-salt.csr",
    ));
    assert!(
        error.contains("salt of 222 bytes") && error.contains("as long as the hash (32 bytes"),
        "{error}"
    );

    let pss = |digest: &'static str, mask_digest: Option<&'static str>| {
        let mut signing = vec![digest, "-sigopt", "rsa_padding_mode:pss"];
        if let Some(mask_digest) = mask_digest {
            signing.extend(["-sigopt", mask_digest]);
        }
        signing
    };
    for (key, signing, name) in [
        ("rsa.key", vec!["-sha1"], "sha1WithRSAEncryption"),
        ("ec.key", vec!["-sha1"], "ecdsa-with-SHA1"),
        ("rsa.key", vec!["-md5"], "md5WithRSAEncryption"),
        (
            "rsa.key",
            pss("-sha1", None),
            "RSASSA-PSS with SHA-1 as its hash",
        ),
        (
            "rsa.key",
            pss("-sha256", Some("rsa_mgf1_md:sha1")),
            "RSASSA-PSS with SHA-1 as its mask generation hash",
        ),
    ] {
        let error = refusal(&request(dir, key, &signing, "weak.csr"));
        assert!(
            error.contains(name) && error.contains("SHA-1 or MD5"),
            "{key} {signing:?}: {error}"
        );
    }
    let error = refusal(&request(dir, "e3.key", &["-sha256"], "e3.csr"));
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
