//! `mayfly crypto jwt inspect|verify`: look inside a JWT read from standard input, like step's
//! `step crypto jwt`.
//!
//! Decoding and signature checks belong to `mayfly_pki::jose`; this module reads the token and
//! the key files, applies the claim checks a person asks for on the command line (issuer,
//! audience, times) and prints the token as step does: `{"header", "payload", "signature"}`,
//! pretty JSON with sorted keys.

use crate::output::write_stdout;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use mayfly_pki::jose::jwk::Jwk;
use mayfly_pki::jose::jws::Jws;
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Clock skew allowed on `exp` and `nbf`, as step's `jwt verify` allows.
const LEEWAY_SECONDS: i64 = 60;
/// Tokens are a few KiB at most; refuse to read an unbounded stream into memory.
const MAX_TOKEN_INPUT: u64 = 1024 * 1024;

#[derive(Debug, clap::Subcommand)]
pub enum JwtCommand {
    /// Print a token's header, payload and signature without verifying anything.
    ///
    /// The token is read from standard input. Example:
    ///
    ///   echo "$TOKEN" | mayfly crypto jwt inspect --insecure
    Inspect(InspectArgs),
    /// Verify a token's signature and claims, then print it like `inspect`.
    ///
    /// The token is read from standard input. Example:
    ///
    ///   echo "$TOKEN" | mayfly crypto jwt verify --jwks keys.json --iss admin --aud https://ca.internal/1.0/sign
    Verify(VerifyArgs),
}

#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// Acknowledge that the token is printed without checking its signature or claims.
    ///
    /// Required: nothing `inspect` prints can be trusted, and the flag makes that explicit.
    #[arg(long)]
    pub insecure: bool,
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("verification_key").required(true).args(["key", "jwks"])))]
pub struct VerifyArgs {
    /// Public JWK (JSON file) to verify the signature with.
    ///
    /// Example: --key provisioner.pub.json
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// JWK set (JSON file `{"keys": [...]}`); the key whose `kid` equals the token's is used.
    ///
    /// Example: --jwks provisioners.jwks.json
    #[arg(long, value_name = "FILE")]
    pub jwks: Option<PathBuf>,
    /// Required issuer: the token's `iss` claim must equal it (optional with --subtle).
    ///
    /// For step's one-time tokens this is the provisioner name. Example: --iss admin
    #[arg(long, value_name = "NAME", required_unless_present = "subtle")]
    pub iss: Option<String>,
    /// Required audience: the token's `aud` claim (a string or an array) must contain it
    /// (optional with --subtle).
    ///
    /// Example: --aud https://ca.internal:9000/1.0/sign
    #[arg(long, value_name = "URL", required_unless_present = "subtle")]
    pub aud: Option<String>,
    /// Required signature algorithm: the token's header `alg` must equal it.
    ///
    /// Example: --alg ES256
    #[arg(long, value_name = "ALG")]
    pub alg: Option<String>,
    /// Skip the time checks (`exp`, `nbf`) and make --iss and --aud optional.
    ///
    /// An --iss or --aud that is given is still checked, and the signature always is.
    #[arg(long)]
    pub subtle: bool,
}

pub fn run(command: JwtCommand) -> anyhow::Result<()> {
    // Refuse before reading standard input, so a missing flag does not wait for a token first.
    if let JwtCommand::Inspect(InspectArgs { insecure: false }) = command {
        bail!("inspecting a token without verifying it requires --insecure");
    }
    let token = read_token()?;
    let jws = Jws::parse(&token).context("the token on standard input is not a JWT")?;
    if let JwtCommand::Verify(args) = &command {
        verify(&jws, args)?;
    }
    write_stdout(&format!("{}\n", render(&jws)?))
}

fn read_token() -> anyhow::Result<String> {
    let mut input = String::new();
    std::io::stdin()
        .take(MAX_TOKEN_INPUT)
        .read_to_string(&mut input)
        .context("cannot read the token from standard input")?;
    let token = input.trim();
    if token.is_empty() {
        bail!(
            "no token on standard input: pipe one in, e.g. `echo \"$TOKEN\" | mayfly crypto jwt ...`"
        );
    }
    Ok(token.to_string())
}

/// step's shape: header and payload as JSON objects with sorted keys, signature as base64url.
fn render(jws: &Jws) -> anyhow::Result<String> {
    let payload: Value = serde_json::from_slice(jws.unverified_payload())
        .context("the token's payload is not JSON")?;
    let mut out = Map::new();
    out.insert("header".into(), sorted(jws.header_json().clone()));
    out.insert("payload".into(), sorted(payload));
    out.insert("signature".into(), Value::String(jws.signature_b64()));
    Ok(serde_json::to_string_pretty(&Value::Object(out))?)
}

/// Rebuilds objects with their keys in order, whether or not serde_json preserves insertion
/// order in this build: step (Go maps) always prints keys sorted.
fn sorted(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

fn verify(jws: &Jws, args: &VerifyArgs) -> anyhow::Result<()> {
    let header_alg = &jws.header().alg;
    if let Some(alg) = &args.alg
        && alg != header_alg
    {
        bail!("the token is signed with {header_alg}, not --alg {alg}");
    }
    let (key, source) = match (&args.key, &args.jwks) {
        (Some(path), _) => (read_jwk(path)?, path),
        (None, Some(path)) => (select_from_jwks(path, jws.header().kid.as_deref())?, path),
        (None, None) => bail!("pass --key FILE or --jwks FILE to verify the token with"),
    };
    match jws.verify(&key.to_public()) {
        Ok(_) => {}
        Err(mayfly_pki::Error::JwsSignatureInvalid) => bail!(
            "signature is invalid: the token was not signed by the key in {}",
            source.display()
        ),
        Err(e) => {
            return Err(e)
                .with_context(|| format!("cannot verify the token with {}", source.display()));
        }
    }

    let claims: Map<String, Value> = serde_json::from_slice(jws.unverified_payload())
        .context("the token's payload is not a JSON object of claims")?;
    if !args.subtle {
        check_times(&claims, OffsetDateTime::now_utc())?;
    }
    if let Some(iss) = &args.iss {
        check_issuer(&claims, iss)?;
    }
    if let Some(aud) = &args.aud {
        check_audience(&claims, aud)?;
    }
    Ok(())
}

fn read_jwk(path: &Path) -> anyhow::Result<Jwk> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    Jwk::from_json(&bytes).with_context(|| format!("{} is not a JWK", path.display()))
}

/// The key of a JWK set whose `kid` equals the token's; a token without `kid` may only use a set
/// of exactly one key, since anything else would be guessing.
fn select_from_jwks(path: &Path, kid: Option<&str>) -> anyhow::Result<Jwk> {
    #[derive(serde::Deserialize)]
    struct JwkSet {
        keys: Vec<Jwk>,
    }
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let set: JwkSet = serde_json::from_slice(&bytes).with_context(|| {
        format!(
            "{} is not a JWK set (expected {{\"keys\": [...]}})",
            path.display()
        )
    })?;
    match kid {
        Some(kid) => set
            .keys
            .into_iter()
            .find(|k| k.kid.as_deref() == Some(kid))
            .with_context(|| format!("no key in {} has the token's kid {kid:?}", path.display())),
        None => {
            let count = set.keys.len();
            let mut keys = set.keys.into_iter();
            match (keys.next(), keys.next()) {
                (Some(only), None) => Ok(only),
                _ => bail!(
                    "the token has no kid, so {} must hold exactly one key, not {count}",
                    path.display()
                ),
            }
        }
    }
}

fn check_times(claims: &Map<String, Value>, now: OffsetDateTime) -> anyhow::Result<()> {
    let now_unix = now.unix_timestamp();
    if let Some(exp) = numeric_date(claims, "exp")?
        && now_unix > exp.saturating_add(LEEWAY_SECONDS)
    {
        bail!(
            "token expired at {} (now {}, leeway {LEEWAY_SECONDS}s)",
            rfc3339(exp),
            rfc3339(now_unix)
        );
    }
    if let Some(nbf) = numeric_date(claims, "nbf")?
        && now_unix.saturating_add(LEEWAY_SECONDS) < nbf
    {
        bail!(
            "token is not valid before {} (now {}, leeway {LEEWAY_SECONDS}s)",
            rfc3339(nbf),
            rfc3339(now_unix)
        );
    }
    Ok(())
}

/// A NumericDate claim (RFC 7519 2: seconds, possibly fractional), truncated to whole seconds.
fn numeric_date(claims: &Map<String, Value>, name: &str) -> anyhow::Result<Option<i64>> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)) {
            Some(seconds) => Ok(Some(seconds)),
            None => bail!("the {name} claim {n} is not a date in seconds"),
        },
        Some(other) => bail!("the {name} claim {other} is not a number of seconds"),
    }
}

fn rfc3339(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| format!("{unix} (unix time)"))
}

fn check_issuer(claims: &Map<String, Value>, expected: &str) -> anyhow::Result<()> {
    match claims.get("iss") {
        Some(Value::String(iss)) if iss == expected => Ok(()),
        Some(Value::String(iss)) => bail!("issuer {iss:?} does not match --iss {expected:?}"),
        Some(other) => bail!("issuer {other} does not match --iss {expected:?}"),
        None => bail!("the token has no iss claim; expected --iss {expected:?}"),
    }
}

fn check_audience(claims: &Map<String, Value>, expected: &str) -> anyhow::Result<()> {
    let matches = match claims.get("aud") {
        Some(Value::String(aud)) => aud == expected,
        Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(expected)),
        None => bail!("the token has no aud claim; expected --aud {expected:?}"),
        Some(_) => false,
    };
    if !matches {
        let aud = claims.get("aud").map(Value::to_string).unwrap_or_default();
        bail!("audience {aud} does not match --aud {expected:?}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(json: &str) -> Map<String, Value> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn times_are_checked_with_leeway() {
        let now = OffsetDateTime::from_unix_timestamp(1_000_000).unwrap();
        let ok = [
            r#"{}"#,
            r#"{"exp": 1000000}"#,
            r#"{"exp": 999950}"#,
            r#"{"nbf": 1000050}"#,
        ];
        for json in ok {
            check_times(&claims(json), now).unwrap_or_else(|e| panic!("{json}: {e}"));
        }
        let bad = [
            (
                r#"{"exp": 999939}"#,
                "token expired at 1970-01-12T13:45:39Z",
            ),
            (r#"{"nbf": 1000061}"#, "not valid before"),
            (r#"{"exp": "soon"}"#, "not a number"),
        ];
        for (json, expected) in bad {
            let err = check_times(&claims(json), now).unwrap_err().to_string();
            assert!(err.contains(expected), "{json}: {err}");
        }
    }

    #[test]
    fn issuer_and_audience_must_match() {
        check_issuer(&claims(r#"{"iss": "a"}"#), "a").unwrap();
        check_audience(&claims(r#"{"aud": "u"}"#), "u").unwrap();
        check_audience(&claims(r#"{"aud": ["v", "u"]}"#), "u").unwrap();
        let bad = [
            (
                check_issuer(&claims(r#"{"iss": "b"}"#), "a"),
                "issuer \"b\" does not match --iss \"a\"",
            ),
            (check_issuer(&claims(r#"{}"#), "a"), "no iss claim"),
            (
                check_audience(&claims(r#"{"aud": ["v"]}"#), "u"),
                "audience [\"v\"] does not match",
            ),
            (
                check_audience(&claims(r#"{"aud": 3}"#), "u"),
                "audience 3 does not match",
            ),
            (check_audience(&claims(r#"{}"#), "u"), "no aud claim"),
        ];
        for (result, expected) in bad {
            let err = result.unwrap_err().to_string();
            assert!(err.contains(expected), "{err}");
        }
    }

    #[test]
    fn output_keys_are_sorted_at_every_level() {
        let value: Value =
            serde_json::from_str(r#"{"b": 1, "a": {"d": 1, "c": [{"f": 1, "e": 2}]}}"#).unwrap();
        assert_eq!(
            serde_json::to_string(&sorted(value)).unwrap(),
            r#"{"a":{"c":[{"e":2,"f":1}],"d":1},"b":1}"#
        );
    }
}
