//! `mayfly ca token`: what its flags put in a token, and its signature checked by Python's
//! `cryptography`.

mod support;

use support::ca::DevCa;
use support::{create_csr, mayfly_err, mayfly_ok, mode, openssl, require_tool, run};

#[test]
fn token_flags_shape_the_token() {
    let ca = DevCa::bootstrapped();
    let (client, work, dev) = (ca.client.clone(), ca.work(), &ca.dev);
    let pw = ca.password_file();
    mayfly_ok(
        &client,
        work,
        &[
            "ca",
            "token",
            "svc.internal",
            "--san",
            "svc.internal",
            "--san",
            "10.9.8.7",
            "--not-after",
            "10m",
            "--password-file",
            pw,
            "--output-file",
            "token.txt",
            "--provisioner",
            "dev",
        ],
    );
    assert_eq!(mode(&work.join("token.txt")), 0o600);
    let token = std::fs::read_to_string(work.join("token.txt")).unwrap();
    let inspect = std::process::Command::new(support::client_bin())
        .args(["crypto", "jwt", "inspect", "--insecure"])
        .stdin(std::fs::File::open(work.join("token.txt")).unwrap())
        .output()
        .unwrap();
    let shown: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    let payload = &shown["payload"];
    assert_eq!(
        payload["sans"],
        serde_json::json!(["svc.internal", "10.9.8.7"])
    );
    assert_eq!(
        payload["exp"].as_i64().unwrap() - payload["nbf"].as_i64().unwrap(),
        600
    );
    assert_eq!(payload["iss"], "dev");
    assert_eq!(payload["sha"].as_str(), Some(dev.fingerprint.as_str()));
    assert_eq!(
        payload["aud"].as_str().unwrap(),
        format!("{}/1.0/sign", dev.url)
    );
    create_csr(
        &client,
        work,
        ["svc.internal", "svc.csr", "svc.key"],
        &["--san", "svc.internal", "--san", "10.9.8.7"],
    );
    mayfly_ok(
        &client,
        work,
        &["ca", "sign", "svc.csr", "svc.crt", "--token", token.trim()],
    );
    let text = openssl(
        &["x509", "-in", "svc.crt", "-noout", "-ext", "subjectAltName"],
        work,
    );
    assert!(
        text.contains("DNS:svc.internal") && text.contains("IP Address:10.9.8.7"),
        "{text}"
    );

    // A token valid for two hours, which the CA would refuse ("token valid too long" in
    // api.rs), is not made.
    mayfly_err(
        &client,
        work,
        &[
            "ca",
            "token",
            "svc.internal",
            "--not-after",
            "2h",
            "--password-file",
            pw,
        ],
        "a token may be valid for at most 60 minutes",
    );
    mayfly_err(
        &client,
        work,
        &[
            "ca",
            "token",
            "svc.internal",
            "--provisioner",
            "nobody",
            "--password-file",
            pw,
        ],
        "no JWK provisioner named \"nobody\"",
    );
    mayfly_err(
        &client,
        work,
        &[
            "ca",
            "token",
            "svc.internal",
            "--not-after",
            "soon",
            "--password-file",
            pw,
        ],
        "--not-after \"soon\"",
    );
}

#[test]
fn token_signature_verifies_with_python_cryptography() {
    require_tool("python3", "python3");
    let ca = DevCa::bootstrapped();
    let (client, work) = (ca.client.clone(), ca.work());
    let pw = ca.password_file();
    let token = mayfly_ok(
        &client,
        work,
        &["ca", "token", "svc.internal", "--password-file", pw],
    );
    let provisioners = mayfly_ok(&client, work, &["ca", "provisioner", "list"]);
    std::fs::write(work.join("token"), token.trim()).unwrap();
    std::fs::write(work.join("provisioners.json"), provisioners).unwrap();
    let script = r#"
import base64, json, sys
try:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
except ImportError:
    sys.exit("python3 module cryptography is required (pip install cryptography)")
def b64(s): return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
token = open("token").read().strip()
key = json.load(open("provisioners.json"))[0]["key"]
h, p, s = token.split(".")
header = json.loads(b64(h))
assert header["alg"] == "ES256" and header["kid"] == key["kid"], header
pub = ec.EllipticCurvePublicNumbers(int.from_bytes(b64(key["x"]), "big"), int.from_bytes(b64(key["y"]), "big"), ec.SECP256R1()).public_key()
sig = b64(s)
der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
pub.verify(der, (h + "." + p).encode(), ec.ECDSA(hashes.SHA256()))
claims = json.loads(b64(p))
for claim in ["iss", "sub", "aud", "nbf", "iat", "exp", "jti", "sans", "sha"]:
    assert claim in claims, claim
assert claims["exp"] - claims["nbf"] == 300, claims
try:
    pub.verify(der, (h + "." + p + "x").encode(), ec.ECDSA(hashes.SHA256()))
    sys.exit("a tampered token verified")
except Exception:
    pass
print("verified")
"#;
    let (ok, text) = run("python3", &["-c", script], work);
    assert!(ok && text.contains("verified"), "{text}");
}
