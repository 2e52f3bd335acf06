//! Interop tests against smallstep's own files (`../shared/interop-vectors` beside the checkout,
//! see its README; skipped when absent): every encrypted key and JWE that step-ca and the step CLI ship in their test data
//! must open with its password and match its certificate, CSR or public key; and what mayfly
//! writes must be readable by OpenSSL and by mayfly.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use mayfly_pki::jose::jwe::{STEP_PBKDF2_ITERATIONS, decrypt_pbes2, encrypt_pbes2};
use mayfly_pki::keyfile::{
    decode_private_key_pem, encode_private_key_pem, encode_private_key_pem_with_iterations,
    is_encrypted_pem, read_password_file_bytes,
};
use mayfly_pki::{Error, KeyAlgorithm, PrivateKey};
use serde_json::Value;
use x509_parser::prelude::FromDer as _;

const OPENSSL: &str = "/usr/bin/openssl";

/// smallstep's test files, beside the checkout (`../shared/interop-vectors`).
fn vectors() -> PathBuf {
    mayfly_testkit::shared_dir().join("interop-vectors")
}

/// Whether the vectors are there; if not, `test` says it skipped (a failure under
/// `MAYFLY_REQUIRE_PEERS`).
fn have_vectors(test: &str) -> bool {
    mayfly_testkit::interop_vectors(test).is_some()
}

fn read(rel: &str) -> Vec<u8> {
    let path = vectors().join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn read_json(rel: &str) -> Value {
    serde_json::from_slice(&read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Where a key's public half is published.
#[derive(Clone, Copy, Debug)]
enum Public {
    Cert(&'static str),
    Csr(&'static str),
    /// A PEM `PUBLIC KEY` (SubjectPublicKeyInfo).
    Spki(&'static str),
    /// An OpenSSH `ecdsa-sha2-nistp256` public key line.
    SshEcdsa(&'static str),
}

impl Public {
    /// Returns the published key: SPKI DER, or the raw EC point for OpenSSH keys.
    fn load(self) -> Vec<u8> {
        match self {
            Public::Cert(rel) => {
                let der = pem::parse(read(rel)).unwrap().into_contents();
                let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
                cert.tbs_certificate.subject_pki.raw.to_vec()
            }
            Public::Csr(rel) => {
                let der = pem::parse(read(rel)).unwrap().into_contents();
                let (_, csr) =
                    x509_parser::certification_request::X509CertificationRequest::from_der(&der)
                        .unwrap();
                csr.certification_request_info.subject_pki.raw.to_vec()
            }
            Public::Spki(rel) => {
                let block = pem::parse(read(rel)).unwrap();
                assert_eq!(block.tag(), "PUBLIC KEY", "{rel}");
                block.into_contents()
            }
            Public::SshEcdsa(rel) => {
                let text = String::from_utf8(read(rel)).unwrap();
                let blob = text.split_whitespace().nth(1).unwrap();
                let blob = STANDARD.decode(blob).unwrap();
                // string "ecdsa-sha2-nistp256", string "nistp256", string Q (65 bytes).
                blob[blob.len() - 65..].to_vec()
            }
        }
    }

    fn matches(self, key: &PrivateKey) -> bool {
        match self {
            Public::SshEcdsa(_) => key.public_key_raw() == self.load(),
            _ => key.public_key_spki_der().unwrap() == self.load(),
        }
    }
}

struct KeyVector {
    path: &'static str,
    password: Option<&'static [u8]>,
    algorithm: KeyAlgorithm,
    public: Public,
}

const fn kv(
    path: &'static str,
    password: Option<&'static [u8]>,
    algorithm: KeyAlgorithm,
    public: Public,
) -> KeyVector {
    KeyVector {
        path,
        password,
        algorithm,
        public,
    }
}

const P256: KeyAlgorithm = KeyAlgorithm::EcP256;

/// README sections 2.1, 2.2, 2.3, 2.4 and 2.7.
const KEYS: &[KeyVector] = &[
    // 2.1: ECDSA test CA, legacy PEM AES-256-CBC, and older AES-128 keys.
    kv(
        "certificates/ca/testdata/secrets/root_ca_key",
        Some(b"password"),
        P256,
        Public::Cert("certificates/ca/testdata/secrets/root_ca.crt"),
    ),
    kv(
        "certificates/ca/testdata/secrets/intermediate_ca_key",
        Some(b"password"),
        P256,
        Public::Cert("certificates/ca/testdata/secrets/intermediate_ca.crt"),
    ),
    kv(
        "certificates/ca/testdata/secrets/rsa_root_ca_key",
        Some(b"1234"),
        KeyAlgorithm::Rsa(4096),
        Public::Cert("certificates/ca/testdata/secrets/rsa_root_ca.crt"),
    ),
    kv(
        "certificates/ca/testdata/secrets/rsa_intermediate_ca_key",
        Some(b"1234"),
        KeyAlgorithm::Rsa(4096),
        Public::Cert("certificates/ca/testdata/secrets/rsa_intermediate_ca.crt"),
    ),
    kv(
        "certificates/ca/testdata/secrets/step_cli_key",
        Some(b"pass"),
        P256,
        Public::Spki("certificates/ca/testdata/secrets/step_cli_key.public"),
    ),
    kv(
        "certificates/ca/testdata/secrets/ott_key",
        Some(b"password"),
        P256,
        Public::Spki("certificates/ca/testdata/secrets/ott_key.public"),
    ),
    kv(
        "certificates/ca/testdata/rotated/root_ca_key",
        Some(b"asdf"),
        P256,
        Public::Cert("certificates/ca/testdata/rotated/root_ca.crt"),
    ),
    kv(
        "certificates/ca/testdata/rotated/intermediate_ca_key",
        Some(b"asdf"),
        P256,
        Public::Cert("certificates/ca/testdata/rotated/intermediate_ca.crt"),
    ),
    // 2.2: authority tests (AES-128 legacy PEM; unencrypted SEC1 keys).
    kv(
        "certificates/authority/testdata/secrets/intermediate_ca_key",
        Some(b"pass"),
        P256,
        Public::Cert("certificates/authority/testdata/certs/intermediate_ca.crt"),
    ),
    kv(
        "certificates/authority/testdata/secrets/foo.key",
        None,
        P256,
        Public::Cert("certificates/authority/testdata/certs/foo.crt"),
    ),
    kv(
        "certificates/authority/testdata/secrets/ssh_host_ca_key",
        None,
        P256,
        Public::SshEcdsa("certificates/authority/testdata/certs/ssh_host_ca_key.pub"),
    ),
    kv(
        "certificates/authority/testdata/secrets/ssh_user_ca_key",
        None,
        P256,
        Public::SshEcdsa("certificates/authority/testdata/certs/ssh_user_ca_key.pub"),
    ),
    // 2.3: step's old Ed25519 PKCS#8 (malformed PRF parameters, 100000 iterations), and
    // legacy EC and RSA-2048 keys.
    kv(
        "certificates/authority/provisioner/testdata/secrets/ed25519.key",
        Some(b"pass"),
        KeyAlgorithm::Ed25519,
        Public::Csr("certificates/authority/provisioner/testdata/certs/ed25519.csr"),
    ),
    kv(
        "certificates/authority/provisioner/testdata/secrets/ecdsa.key",
        Some(b"pass"),
        P256,
        Public::Csr("certificates/authority/provisioner/testdata/certs/ecdsa.csr"),
    ),
    kv(
        "certificates/authority/provisioner/testdata/secrets/rsa.key",
        Some(b"pass"),
        KeyAlgorithm::Rsa(2048),
        Public::Csr("certificates/authority/provisioner/testdata/certs/rsa.csr"),
    ),
    // 2.4: identity test CA.
    kv(
        "certificates/ca/identity/testdata/secrets/root_ca_key",
        Some(b"password"),
        P256,
        Public::Cert("certificates/ca/identity/testdata/certs/root_ca.crt"),
    ),
    kv(
        "certificates/ca/identity/testdata/secrets/intermediate_ca_key",
        Some(b"password"),
        P256,
        Public::Cert("certificates/ca/identity/testdata/certs/intermediate_ca.crt"),
    ),
    // 2.7: keys made by OpenSSL (legacy AES-256; PKCS#8 AES-128 with 2048 iterations and an
    // 8-byte salt; PKCS#8 AES-192 Ed25519).
    kv(
        "crypto/pemutil/testdata/openssl.p256.enc.pem",
        Some(b"mypassword"),
        P256,
        Public::Spki("crypto/pemutil/testdata/openssl.p256.pub.pem"),
    ),
    kv(
        "crypto/pemutil/testdata/pkcs8/openssl.p256.enc.pem",
        Some(b"mypassword"),
        P256,
        Public::Spki("crypto/pemutil/testdata/pkcs8/openssl.p256.pub.pem"),
    ),
    kv(
        "crypto/pemutil/testdata/pkcs8/openssl.ed25519.enc.pem",
        Some(b"mypassword"),
        KeyAlgorithm::Ed25519,
        Public::Spki("crypto/pemutil/testdata/pkcs8/openssl.ed25519.pub.pem"),
    ),
];

fn decode_vector(rel: &str, password: &[u8]) -> PrivateKey {
    decode_private_key_pem(&read(rel), Some(password)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

#[test]
fn every_key_vector_opens_and_matches_its_public_key() {
    if !have_vectors("every_key_vector_opens_and_matches_its_public_key") {
        return;
    }
    for v in KEYS {
        let text = read(v.path);
        let key =
            decode_private_key_pem(&text, v.password).unwrap_or_else(|e| panic!("{}: {e}", v.path));
        assert_eq!(key.algorithm(), v.algorithm, "{}", v.path);
        assert!(
            v.public.matches(&key),
            "{}: public key differs from {:?}",
            v.path,
            v.public
        );
        assert_eq!(is_encrypted_pem(&text), v.password.is_some(), "{}", v.path);
    }
}

#[test]
fn every_encrypted_key_vector_rejects_a_wrong_or_missing_password() {
    if !have_vectors("every_encrypted_key_vector_rejects_a_wrong_or_missing_password") {
        return;
    }
    for v in KEYS.iter().filter(|v| v.password.is_some()) {
        let text = read(v.path);
        for wrong in [&b"wrongpass"[..], b"bad", b""] {
            match decode_private_key_pem(&text, Some(wrong)) {
                Err(Error::PasswordIncorrect) => {}
                other => panic!(
                    "{} with {wrong:?}: expected PasswordIncorrect, got {other:?}",
                    v.path
                ),
            }
        }
        match decode_private_key_pem(&text, None) {
            Err(Error::PasswordRequired) => {}
            other => panic!(
                "{} without password: expected PasswordRequired, got {other:?}",
                v.path
            ),
        }
    }
}

#[test]
fn openssh_private_keys_are_reported_by_label() {
    if !have_vectors("openssh_private_keys_are_reported_by_label") {
        return;
    }
    for rel in [
        "crypto/pemutil/testdata/openssh.p256.enc.pem",
        "crypto/pemutil/testdata/openssh.ed25519.enc.pem",
        "crypto/jose/testdata/host-key",
    ] {
        match decode_private_key_pem(&read(rel), Some(b"mypassword")) {
            Err(Error::PemUnexpectedLabel { found, .. }) => {
                assert_eq!(found, "OPENSSH PRIVATE KEY", "{rel}")
            }
            other => panic!("{rel}: expected PemUnexpectedLabel, got {other:?}"),
        }
    }
}

#[test]
fn password_files_follow_step() {
    if !have_vectors("password_files_follow_step") {
        return;
    }
    let pw = read_password_file_bytes(&read("crypto/pemutil/testdata/password.txt"));
    assert_eq!(pw, b"mypassword");
    let pw2 = read_password_file_bytes(&read("crypto/pemutil/testdata/password2.txt"));
    assert_eq!(pw2, b"  pass");
    // The password from the file opens the key it belongs to.
    let key = decode_vector("crypto/pemutil/testdata/openssl.p256.enc.pem", &pw);
    assert!(Public::Spki("crypto/pemutil/testdata/openssl.p256.pub.pem").matches(&key));
}

// ---------------------------------------------------------------------------------------
// JWE
// ---------------------------------------------------------------------------------------

/// Decrypts a JWE and parses the JWK inside, checking that it has its `kid` and private part
/// (a symmetric `oct` key has `k` and, in go-jose's test data, no `kid`).
fn open_jwk(what: &str, jwe: &str, password: &[u8]) -> Value {
    let plain = decrypt_pbes2(jwe, password).unwrap_or_else(|e| panic!("{what}: {e}"));
    let jwk: Value = serde_json::from_slice(&plain).unwrap_or_else(|e| panic!("{what}: {e}"));
    if jwk["kty"] == "oct" {
        assert!(jwk["k"].is_string(), "{what}: no k");
    } else {
        assert!(jwk["kid"].is_string(), "{what}: no kid");
        assert!(jwk["d"].is_string(), "{what}: no d");
    }
    jwk
}

/// The JWK provisioners of a ca.json and their encrypted keys.
fn jwk_provisioners(config: &Value) -> Vec<(String, Value, String)> {
    config["authority"]["provisioners"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| {
            p["type"]
                .as_str()
                .is_some_and(|t| t.eq_ignore_ascii_case("jwk"))
        })
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["key"].clone(),
                p["encryptedKey"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn every_ca_json_encrypted_key_decrypts_to_its_provisioner_key() {
    if !have_vectors("every_ca_json_encrypted_key_decrypts_to_its_provisioner_key") {
        return;
    }
    /// Gives the password of a provisioner, by name.
    type PasswordOf = fn(&str) -> &'static [u8];
    // (config, provisioner password by name, count of JWK provisioners).
    let configs: &[(&str, PasswordOf, usize)] = &[
        (
            "certificates/ca/testdata/ca.json",
            |name| {
                if name == "mariano" {
                    b"password"
                } else {
                    b"pass"
                }
            },
            5,
        ),
        ("certificates/ca/testdata/rsaca.json", |_| b"pass", 1),
        (
            "certificates/ca/testdata/federated-ca.json",
            |_| b"password",
            1,
        ),
        (
            "certificates/ca/identity/testdata/config/ca.json",
            |_| b"password",
            1,
        ),
        (
            "certificates/examples/pki/config/ca.json",
            |_| b"password",
            4,
        ),
        (
            "certificates/pki/testdata/helm/with-ssh-and-acme.ca.json",
            |_| &[1, 3, 3, 7],
            1,
        ),
    ];
    for (rel, password_of, count) in configs {
        let provisioners = jwk_provisioners(&read_json(rel));
        assert_eq!(provisioners.len(), *count, "{rel}");
        for (name, public, jwe) in provisioners {
            let what = format!("{rel} provisioner {name}");
            assert_eq!(jwe.split('.').count(), 5, "{what}: compact form expected");
            let jwk = open_jwk(&what, &jwe, password_of(&name));
            for field in ["kid", "kty", "crv", "x", "y"] {
                assert_eq!(jwk[field], public[field], "{what}: {field}");
            }
            assert!(matches!(
                decrypt_pbes2(&jwe, b"not the password"),
                Err(Error::PasswordIncorrect)
            ));
        }
    }
}

#[test]
fn flattened_priv_jwk_files_decrypt_and_equal_the_ca_json_compact_form() {
    if !have_vectors("flattened_priv_jwk_files_decrypt_and_equal_the_ca_json_compact_form") {
        return;
    }
    let ca = jwk_provisioners(&read_json("certificates/ca/testdata/ca.json"));
    let cases = [
        (
            "certificates/ca/testdata/secrets/step_cli_key_priv.jwk",
            "certificates/ca/testdata/secrets/step_cli_key_pub.jwk",
            &b"pass"[..],
            "step-cli",
        ),
        (
            "certificates/ca/testdata/secrets/ott_mariano_priv.jwk",
            "certificates/ca/testdata/secrets/ott_mariano_pub.jwk",
            b"password",
            "mariano",
        ),
        (
            "certificates/authority/testdata/secrets/max_priv.jwk",
            "certificates/authority/testdata/secrets/max_pub.jwk",
            b"pass",
            "max",
        ),
    ];
    for (priv_rel, pub_rel, password, provisioner) in cases {
        let text = String::from_utf8(read(priv_rel)).unwrap();
        let jwk = open_jwk(priv_rel, &text, password);
        let public = read_json(pub_rel);
        for field in ["kid", "kty", "crv", "x", "y"] {
            assert_eq!(jwk[field], public[field], "{priv_rel}: {field}");
        }
        let flat: Value = serde_json::from_str(&text).unwrap();
        let compact = ["protected", "encrypted_key", "iv", "ciphertext", "tag"]
            .map(|f| flat[f].as_str().unwrap().to_string())
            .join(".");
        let (_, _, in_ca) = ca.iter().find(|(name, _, _)| name == provisioner).unwrap();
        assert_eq!(
            &compact, in_ca,
            "{priv_rel}: compact form differs from ca.json"
        );
        assert!(matches!(
            decrypt_pbes2(&text, b"wrong"),
            Err(Error::PasswordIncorrect)
        ));
    }
}

#[test]
fn go_jose_testdata_decrypts_to_the_plaintext_files() {
    if !have_vectors("go_jose_testdata_decrypts_to_the_plaintext_files") {
        return;
    }
    let dir = "crypto/jose/testdata";
    for (enc, plain) in [
        ("p256.enc.priv.json", "p256.priv.json"),
        ("okp.enc.priv.json", "okp.priv.json"),
        ("oct.enc.json", "oct.json"),
    ] {
        let jwe = String::from_utf8(read(&format!("{dir}/{enc}"))).unwrap();
        let jwk = open_jwk(enc, &jwe, b"password");
        assert_eq!(jwk, read_json(&format!("{dir}/{plain}")), "{enc}");
    }
    let jwe = String::from_utf8(read(&format!("{dir}/rsa.enc.priv.json"))).unwrap();
    let jwk = open_jwk("rsa.enc.priv.json", &jwe, b"password");
    let public = read_json(&format!("{dir}/rsa.pub.json"));
    for field in ["kid", "kty", "n", "e"] {
        assert_eq!(jwk[field], public[field], "rsa: {field}");
    }
}

/// The private scalar inside an EC key's PKCS#8: PrivateKeyInfo.privateKey is an
/// ECPrivateKey whose second field is the scalar.
fn ec_private_scalar(pkcs8: &[u8]) -> Vec<u8> {
    /// Splits one DER element off the front: (tag, content, rest). Short and one-byte long
    /// lengths suffice for P-256 keys.
    fn tlv(b: &[u8]) -> (u8, &[u8], &[u8]) {
        let (len, start) = match b[1] {
            l if l < 0x80 => (usize::from(l), 2),
            0x81 => (usize::from(b[2]), 3),
            other => panic!("unexpected length byte {other:#x}"),
        };
        (b[0], &b[start..start + len], &b[start + len..])
    }
    let (_, info, _) = tlv(pkcs8);
    let (_, _version, rest) = tlv(info);
    let (_, _algorithm, rest) = tlv(rest);
    let (tag, ec_private_key, _) = tlv(rest);
    assert_eq!(tag, 0x04);
    let (_, ec, _) = tlv(ec_private_key);
    let (_, _version, rest) = tlv(ec);
    let (tag, scalar, _) = tlv(rest);
    assert_eq!(tag, 0x04);
    scalar.to_vec()
}

#[test]
fn jwk_private_scalars_equal_the_pem_keys() {
    if !have_vectors("jwk_private_scalars_equal_the_pem_keys") {
        return;
    }
    for (key_rel, key_pw, jwk_rel, jwk_pw) in [
        (
            "certificates/ca/testdata/secrets/step_cli_key",
            &b"pass"[..],
            "certificates/ca/testdata/secrets/step_cli_key_priv.jwk",
            &b"pass"[..],
        ),
        (
            "certificates/ca/testdata/secrets/ott_key",
            b"password",
            "certificates/ca/testdata/secrets/ott_mariano_priv.jwk",
            b"password",
        ),
    ] {
        let key = decode_vector(key_rel, key_pw);
        let jwk = open_jwk(jwk_rel, &String::from_utf8(read(jwk_rel)).unwrap(), jwk_pw);
        let d = URL_SAFE_NO_PAD.decode(jwk["d"].as_str().unwrap()).unwrap();
        assert_eq!(d.len(), 32);
        assert_eq!(
            ec_private_scalar(key.pkcs8_der()),
            d,
            "{key_rel} vs {jwk_rel}"
        );
        // And the public halves agree too.
        let x = URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap();
        let y = URL_SAFE_NO_PAD.decode(jwk["y"].as_str().unwrap()).unwrap();
        assert_eq!(key.public_key_raw(), [&[4u8][..], &x, &y].concat());
    }
}

#[test]
fn jwe_round_trip_with_step_iterations() {
    let jwk = br#"{"kty":"EC","crv":"P-256","kid":"k","x":"x","y":"y","d":"d"}"#;
    let jwe = encrypt_pbes2(jwk, b"pass", Some("jwk+json"), STEP_PBKDF2_ITERATIONS).unwrap();
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(jwe.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["alg"], "PBES2-HS256+A128KW");
    assert_eq!(header["enc"], "A256GCM");
    assert_eq!(header["cty"], "jwk+json");
    assert_eq!(header["p2c"], 600_000);
    assert_eq!(decrypt_pbes2(&jwe, b"pass").unwrap(), jwk);
    assert!(matches!(
        decrypt_pbes2(&jwe, b"pas"),
        Err(Error::PasswordIncorrect)
    ));
}

// ---------------------------------------------------------------------------------------
// Writing keys, checked by OpenSSL
// ---------------------------------------------------------------------------------------

/// A file under the system temp directory, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(contents: &str) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "mayfly-pki-interop-{}-{}.pem",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::temp_dir().join(name);
        std::fs::write(&path, contents).unwrap();
        TempFile(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Runs `openssl pkey -in FILE -passin pass:PW ARGS...` on `pem_text`.
fn openssl_pkey(pem_text: &str, password: &str, args: &[&str]) -> std::process::Output {
    assert!(
        Path::new(OPENSSL).exists(),
        "{OPENSSL} is required by this test"
    );
    let file = TempFile::new(pem_text);
    Command::new(OPENSSL)
        .arg("pkey")
        .arg("-in")
        .arg(file.path())
        // Always pass -passin so that OpenSSL never prompts; it ignores it for plain keys.
        .arg("-passin")
        .arg(format!("pass:{password}"))
        .args(args)
        .output()
        .unwrap()
}

/// Has OpenSSL read the PEM (`-noout`, the check step users would run) and then print its
/// public key as DER; returns that SPKI.
fn openssl_public_key(pem_text: &str, password: Option<&str>) -> Vec<u8> {
    let password = password.unwrap_or("");
    let check = openssl_pkey(pem_text, password, &["-noout"]);
    assert!(
        check.status.success(),
        "openssl pkey rejected the key: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    let out = openssl_pkey(pem_text, password, &["-pubout", "-outform", "DER"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn assert_openssl_rejects(pem_text: &str, password: &str) {
    let out = openssl_pkey(pem_text, password, &["-noout"]);
    assert!(!out.status.success(), "openssl accepted a wrong password");
}

#[test]
fn written_keys_are_read_back_by_mayfly_and_openssl() {
    if !have_vectors("written_keys_are_read_back_by_mayfly_and_openssl") {
        return;
    }
    let keys = [
        PrivateKey::generate(KeyAlgorithm::EcP256).unwrap(),
        PrivateKey::generate(KeyAlgorithm::EcP384).unwrap(),
        PrivateKey::generate(KeyAlgorithm::Ed25519).unwrap(),
        PrivateKey::generate(KeyAlgorithm::Rsa(2048)).unwrap(),
        // step's Ed25519 key with the malformed PRF parameters, rewritten well-formed.
        decode_vector(
            "certificates/authority/provisioner/testdata/secrets/ed25519.key",
            b"pass",
        ),
        decode_vector(
            "certificates/ca/testdata/secrets/rsa_intermediate_ca_key",
            b"1234",
        ),
    ];
    for key in &keys {
        let spki = key.public_key_spki_der().unwrap();

        let plain = encode_private_key_pem(key, None).unwrap();
        assert!(plain.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        assert_eq!(openssl_public_key(&plain, None), spki);

        let encrypted =
            encode_private_key_pem_with_iterations(key, Some(b"s3cret pw"), 2048).unwrap();
        assert!(encrypted.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----\n"));
        let back = decode_private_key_pem(encrypted.as_bytes(), Some(b"s3cret pw")).unwrap();
        assert_eq!(back.public_key_spki_der().unwrap(), spki);
        assert_eq!(back.algorithm(), key.algorithm());
        assert!(matches!(
            decode_private_key_pem(encrypted.as_bytes(), Some(b"s3cret")),
            Err(Error::PasswordIncorrect)
        ));
        assert_eq!(openssl_public_key(&encrypted, Some("s3cret pw")), spki);
        assert_openssl_rejects(&encrypted, "wrong");
    }
}

#[test]
fn default_encoding_uses_600000_iterations_and_openssl_reads_it() {
    let key = PrivateKey::generate(KeyAlgorithm::EcP256).unwrap();
    let pem_text = encode_private_key_pem(&key, Some(b"password")).unwrap();
    let back = decode_private_key_pem(pem_text.as_bytes(), Some(b"password")).unwrap();
    assert_eq!(
        back.public_key_spki_der().unwrap(),
        key.public_key_spki_der().unwrap()
    );
    assert_eq!(
        openssl_public_key(&pem_text, Some("password")),
        key.public_key_spki_der().unwrap()
    );

    // OpenSSL's own description of the parameters.
    let file = TempFile::new(&pem_text);
    let out = Command::new(OPENSSL)
        .args(["asn1parse", "-in"])
        .arg(file.path())
        .output()
        .unwrap();
    let dump = String::from_utf8_lossy(&out.stdout);
    assert!(dump.contains("PBES2"), "{dump}");
    assert!(dump.contains("hmacWithSHA256"), "{dump}");
    assert!(dump.contains("aes-256-cbc"), "{dump}");
    assert!(
        dump.contains(":0927C0"),
        "600000 = 0x0927C0 expected in:\n{dump}"
    );
}
