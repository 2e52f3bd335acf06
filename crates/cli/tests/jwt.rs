//! End-to-end tests of `mayfly crypto jwt inspect|verify`: the real binary, on a real step
//! one-time token (interop-vectors, expired since 2019) and on fresh ES256 tokens signed by
//! `openssl`, so that verification is judged against a signer that is not mayfly's.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::{Value, json};

const STEP_KID: &str = "jO37dtDbku-Qnabs5VR0Yw6YFFv9weA18dp3htvdEjs";
const STEP_ISS: &str = "mariano@smallstep.com";
const STEP_AUD: &str = "https://ca.smallstep.com:9000/1.0/sign";

/// step's one-time token and the JWKS that verifies it, from the interop vectors beside the
/// checkout; `None` after `test` said it skipped (a failure under `MAYFLY_REQUIRE_PEERS`).
fn step_vectors(test: &str) -> Option<(String, PathBuf)> {
    let vectors = mayfly_testkit::interop_vectors(test)?;
    let token = std::fs::read_to_string(vectors.join("cli/token/jwk_ott.jwt"))
        .expect("read jwk_ott.jwt")
        .trim()
        .to_string();
    Some((token, vectors.join("cli/token/jwk_ott.jwks.json")))
}

struct Run {
    success: bool,
    stdout: String,
    stderr: String,
}

impl Run {
    #[track_caller]
    fn ok(self) -> String {
        assert!(self.success, "mayfly failed: {}", self.stderr);
        self.stdout
    }

    /// A failure is one line on stderr and nothing on stdout; returns that line.
    #[track_caller]
    fn failure(self) -> String {
        assert!(
            !self.success,
            "mayfly succeeded unexpectedly: {}",
            self.stdout
        );
        assert_eq!(self.stdout, "", "a failure must print nothing on stdout");
        assert_eq!(
            self.stderr.trim_end().lines().count(),
            1,
            "one line on stderr: {:?}",
            self.stderr
        );
        self.stderr.trim_end().to_string()
    }
}

fn mayfly(dir: &Path, args: &[&str], stdin: &str) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mayfly"))
        .args(args)
        .current_dir(dir)
        .env("MAYFLY_PATH", dir.join("mayfly-home"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run mayfly");
    // The process may exit before reading its input; that is not the test's concern.
    let _ = child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes());
    let output = child.wait_with_output().expect("wait for mayfly");
    Run {
        success: output.status.success(),
        stdout: String::from_utf8(output.stdout).expect("utf-8 stdout"),
        stderr: String::from_utf8(output.stderr).expect("utf-8 stderr"),
    }
}

fn temp() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

fn verify_args<'a>(jwks: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["crypto", "jwt", "verify", "--jwks", jwks];
    args.extend_from_slice(extra);
    args
}

#[test]
fn inspect_prints_a_step_token_in_steps_shape() {
    let Some((token, _)) = step_vectors("inspect_prints_a_step_token_in_steps_shape") else {
        return;
    };
    let dir = temp();
    let out = mayfly(
        dir.path(),
        &["crypto", "jwt", "inspect", "--insecure"],
        &format!("{token}\n"),
    )
    .ok();
    // Pretty JSON, two spaces, sorted keys, as step prints it.
    assert!(
        out.starts_with(&format!(
            "{{\n  \"header\": {{\n    \"alg\": \"ES256\",\n    \"kid\": \"{STEP_KID}\",\n    \"typ\": \"JWT\"\n  }},\n  \"payload\": {{\n    \"aud\": "
        )),
        "{out}"
    );
    let json: Value = serde_json::from_str(&out).expect("JSON output");
    assert_eq!(json["header"]["kid"], STEP_KID);
    assert_eq!(json["payload"]["iss"], STEP_ISS);
    assert_eq!(json["payload"]["aud"], STEP_AUD);
    assert_eq!(json["payload"]["sans"], json!(["foo.bar.zar"]));
    assert_eq!(
        json["signature"],
        token.rsplit('.').next().expect("signature part")
    );
    let keys: Vec<&String> = json.as_object().expect("object").keys().collect();
    assert_eq!(keys, ["header", "payload", "signature"]);
}

#[test]
fn inspect_requires_insecure() {
    let Some((token, _)) = step_vectors("inspect_requires_insecure") else {
        return;
    };
    let dir = temp();
    let err = mayfly(dir.path(), &["crypto", "jwt", "inspect"], &token).failure();
    assert!(
        err.contains("inspecting a token without verifying it requires --insecure"),
        "{err}"
    );
}

#[test]
fn the_expired_step_token_fails_verification_unless_subtle() {
    let Some((token, jwks)) =
        step_vectors("the_expired_step_token_fails_verification_unless_subtle")
    else {
        return;
    };
    let dir = temp();
    let jwks = jwks.to_str().expect("utf-8 path");
    let err = mayfly(
        dir.path(),
        &verify_args(jwks, &["--iss", STEP_ISS, "--aud", STEP_AUD]),
        &token,
    )
    .failure();
    assert!(
        err.contains("token expired at 2019-04-18T01:12:37Z"),
        "{err}"
    );

    // --subtle skips the clock but not the signature: the output is inspect's.
    let verified = mayfly(dir.path(), &verify_args(jwks, &["--subtle"]), &token).ok();
    let inspected = mayfly(
        dir.path(),
        &["crypto", "jwt", "inspect", "--insecure"],
        &token,
    )
    .ok();
    assert_eq!(verified, inspected);
    mayfly(
        dir.path(),
        &verify_args(
            jwks,
            &[
                "--subtle", "--iss", STEP_ISS, "--aud", STEP_AUD, "--alg", "ES256",
            ],
        ),
        &token,
    )
    .ok();

    // Claims given with --subtle are still checked.
    let err = mayfly(
        dir.path(),
        &verify_args(jwks, &["--subtle", "--iss", "someone-else"]),
        &token,
    )
    .failure();
    assert!(
        err.contains("issuer \"mariano@smallstep.com\" does not match --iss \"someone-else\""),
        "{err}"
    );
    let err = mayfly(
        dir.path(),
        &verify_args(jwks, &["--subtle", "--aud", "https://other/1.0/sign"]),
        &token,
    )
    .failure();
    assert!(err.contains("audience"), "{err}");
    let err = mayfly(
        dir.path(),
        &verify_args(jwks, &["--subtle", "--alg", "RS256"]),
        &token,
    )
    .failure();
    assert!(err.contains("signed with ES256"), "{err}");
}

#[test]
fn a_tampered_step_token_fails_on_its_signature() {
    let Some((token, jwks)) = step_vectors("a_tampered_step_token_fails_on_its_signature") else {
        return;
    };
    let dir = temp();
    let parts: Vec<&str> = token.split('.').collect();
    let mut payload: Value =
        serde_json::from_slice(&B64.decode(parts[1]).expect("payload")).expect("claims");
    payload["sub"] = json!("evil.example");
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        B64.encode(payload.to_string()),
        parts[2]
    );

    let err = mayfly(
        dir.path(),
        &verify_args(jwks.to_str().expect("utf-8"), &["--subtle"]),
        &forged,
    )
    .failure();
    assert!(err.contains("signature is invalid"), "{err}");

    // The single JWK from the set, given with --key, judges the same.
    let set: Value =
        serde_json::from_slice(&std::fs::read(&jwks).expect("read jwks")).expect("jwks JSON");
    std::fs::write(dir.path().join("key.json"), set["keys"][0].to_string()).expect("write key");
    let err = mayfly(
        dir.path(),
        &["crypto", "jwt", "verify", "--key", "key.json", "--subtle"],
        &forged,
    )
    .failure();
    assert!(err.contains("signature"), "{err}");
    mayfly(
        dir.path(),
        &["crypto", "jwt", "verify", "--key", "key.json", "--subtle"],
        &token,
    )
    .ok();
}

/// An ES256 key made by openssl: the private key file and its public JWK.
struct OpensslKey {
    dir: PathBuf,
    jwk: Value,
}

impl OpensslKey {
    fn generate(dir: &Path) -> Self {
        openssl(
            dir,
            &[
                "ecparam",
                "-name",
                "prime256v1",
                "-genkey",
                "-noout",
                "-out",
                "es256.key",
            ],
        );
        openssl(
            dir,
            &[
                "ec",
                "-in",
                "es256.key",
                "-pubout",
                "-outform",
                "DER",
                "-out",
                "es256.pub.der",
            ],
        );
        let spki = std::fs::read(dir.join("es256.pub.der")).expect("read public key");
        // A P-256 SubjectPublicKeyInfo ends with the 65-byte point 04 || X || Y.
        let point = &spki[spki.len() - 65..];
        assert_eq!(point[0], 0x04, "uncompressed point");
        let jwk = json!({
            "kty": "EC", "crv": "P-256", "kid": "openssl-key", "alg": "ES256",
            "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..]),
        });
        Self {
            dir: dir.to_path_buf(),
            jwk,
        }
    }

    /// A compact JWS over `claims`, signed by `openssl dgst`.
    fn sign(&self, claims: &Value) -> String {
        let header = json!({"alg": "ES256", "kid": "openssl-key", "typ": "JWT"});
        let signing_input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        std::fs::write(self.dir.join("input.txt"), &signing_input).expect("write input");
        openssl(
            &self.dir,
            &[
                "dgst",
                "-sha256",
                "-sign",
                "es256.key",
                "-out",
                "sig.der",
                "input.txt",
            ],
        );
        let der = std::fs::read(self.dir.join("sig.der")).expect("read signature");
        format!("{signing_input}.{}", B64.encode(ecdsa_der_to_fixed(&der)))
    }
}

/// DER `SEQUENCE { INTEGER r, INTEGER s }` → the 64-byte `r || s` that JWS uses (RFC 7518 3.4).
fn ecdsa_der_to_fixed(der: &[u8]) -> Vec<u8> {
    assert_eq!(der[0], 0x30, "SEQUENCE");
    // A P-256 signature is at most 72 bytes, so the length fits in one byte.
    let mut rest = &der[2..];
    let mut out = Vec::with_capacity(64);
    for _ in 0..2 {
        assert_eq!(rest[0], 0x02, "INTEGER");
        let len = usize::from(rest[1]);
        let value = &rest[2..2 + len];
        let value = &value[value.iter().position(|&b| b != 0).unwrap_or(value.len())..];
        out.extend(std::iter::repeat_n(0u8, 32 - value.len()));
        out.extend_from_slice(value);
        rest = &rest[2 + len..];
    }
    out
}

#[track_caller]
fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("openssl not found: install the `openssl` package");
    assert!(
        output.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
        .try_into()
        .expect("seconds fit in i64")
}

#[test]
fn fresh_openssl_tokens_are_verified_with_claims() {
    let dir = temp();
    let key = OpensslKey::generate(dir.path());
    std::fs::write(dir.path().join("key.json"), key.jwk.to_string()).expect("write key");
    std::fs::write(dir.path().join("keys.json"), json!({"keys": [{"kty": "EC", "kid": "other", "crv": "P-256", "x": "AA", "y": "AA"}, key.jwk]}).to_string())
        .expect("write jwks");
    let now = now();
    let claims = |overrides: Value| {
        let mut claims = json!({
            "iss": "admin", "aud": ["https://ca.internal/1.0/sign"], "sub": "svc.internal",
            "iat": now, "nbf": now, "exp": now + 300,
        });
        for (k, v) in overrides.as_object().expect("object") {
            claims[k] = v.clone();
        }
        claims
    };
    let check = ["--iss", "admin", "--aud", "https://ca.internal/1.0/sign"];

    let good = key.sign(&claims(json!({})));
    for source in [["--key", "key.json"], ["--jwks", "keys.json"]] {
        let mut args = vec!["crypto", "jwt", "verify", source[0], source[1]];
        args.extend_from_slice(&check);
        let out = mayfly(dir.path(), &args, &good).ok();
        let json: Value = serde_json::from_str(&out).expect("JSON output");
        assert_eq!(json["payload"]["sub"], "svc.internal", "{source:?}");
    }

    let key_args = |extra: &[&'static str]| {
        let mut args = vec!["crypto", "jwt", "verify", "--key", "key.json"];
        args.extend_from_slice(extra);
        args
    };
    let cases = [
        (claims(json!({"exp": now - 3600})), "token expired at"),
        (
            claims(json!({"nbf": now + 3600})),
            "token is not valid before",
        ),
        (
            claims(json!({"iss": "intruder"})),
            "issuer \"intruder\" does not match --iss \"admin\"",
        ),
        (
            claims(json!({"aud": "https://elsewhere/1.0/sign"})),
            "does not match --aud",
        ),
    ];
    for (claims, expected) in cases {
        let token = key.sign(&claims);
        let err = mayfly(dir.path(), &key_args(&check), &token).failure();
        assert!(err.contains(expected), "{claims}: {err}");
    }
    // Within the 60-second leeway: accepted.
    let token = key.sign(&claims(json!({"exp": now - 10})));
    mayfly(dir.path(), &key_args(&check), &token).ok();
    // A string audience works like an array of one.
    let token = key.sign(&claims(json!({"aud": "https://ca.internal/1.0/sign"})));
    mayfly(dir.path(), &key_args(&check), &token).ok();

    // Without --subtle, --iss and --aud are required.
    let out = mayfly(dir.path(), &key_args(&[]), &good);
    assert!(
        !out.success && out.stdout.is_empty() && out.stderr.contains("--iss"),
        "{}",
        out.stderr
    );

    // A JWK set without the token's kid.
    std::fs::write(dir.path().join("empty.json"), r#"{"keys": []}"#).expect("write");
    let mut args = vec!["crypto", "jwt", "verify", "--jwks", "empty.json"];
    args.extend_from_slice(&check);
    let err = mayfly(dir.path(), &args, &good).failure();
    assert!(
        err.contains("no key in empty.json has the token's kid \"openssl-key\""),
        "{err}"
    );
}

#[test]
fn bad_inputs_fail_with_one_line() {
    let dir = temp();
    std::fs::write(dir.path().join("garbage.json"), "not json").expect("write");
    // A well-formed token signed by openssl, and a key set that does not hold its key.
    let token = OpensslKey::generate(dir.path()).sign(&json!({"sub": "svc.internal"}));
    std::fs::write(
        dir.path().join("keys.json"),
        json!({"keys": [{"kty": "EC", "kid": "other", "crv": "P-256", "x": "AA", "y": "AA"}]})
            .to_string(),
    )
    .expect("write jwks");
    let jwks = "keys.json";
    let cases: [(Vec<&str>, &str, &str); 6] = [
        (
            vec!["crypto", "jwt", "inspect", "--insecure"],
            "garbage",
            "not a JWT",
        ),
        (
            vec!["crypto", "jwt", "inspect", "--insecure"],
            "",
            "no token on standard input",
        ),
        (
            vec!["crypto", "jwt", "inspect", "--insecure"],
            "eyJhbGciOiJFUzI1NiJ9.bm90IGpzb24.AA",
            "payload is not JSON",
        ),
        (
            vec![
                "crypto",
                "jwt",
                "verify",
                "--key",
                "missing.json",
                "--subtle",
            ],
            &token,
            "cannot read missing.json",
        ),
        (
            vec![
                "crypto",
                "jwt",
                "verify",
                "--key",
                "garbage.json",
                "--subtle",
            ],
            &token,
            "garbage.json is not a JWK",
        ),
        (
            vec!["crypto", "jwt", "verify", "--jwks", jwks, "--subtle"],
            "a.b.c",
            "not a JWT",
        ),
    ];
    for (args, stdin, expected) in cases {
        let err = mayfly(dir.path(), &args, stdin).failure();
        assert!(err.contains(expected), "{args:?} {stdin:?}: {err}");
    }
}
