//! Logging in at an OpenID provider: the OAuth 2.0 authorization-code flow with PKCE
//! (RFC 7636) and a loopback redirect (RFC 8252), as `step oauth` runs it. This is how a user
//! gets the ID token an OIDC provisioner accepts.
//!
//! The provider's login page opens in the user's browser (`$BROWSER`, else the system's
//! opener); when none can be opened the URL is printed, to be visited from any browser that can
//! reach this machine's loopback address. The provider then redirects to a one-shot listener
//! here, which exchanges the code (with the PKCE verifier) for the tokens.

use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How long the user has to log in, as step.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(120);
/// A browser's request is a few hundred bytes.
const MAX_REQUEST: usize = 16 * 1024;

/// step's default scopes.
pub const DEFAULT_SCOPES: &[&str] = &["openid", "email"];

/// A provider and the client to log in as.
pub struct Login<'a> {
    /// The provider's discovery URL, or its issuer (the well-known path is added).
    pub provider: &'a str,
    pub client_id: &'a str,
    pub client_secret: &'a str,
    pub scopes: Vec<String>,
    /// Where to listen for the redirect (`host:port`, the host defaulting to 127.0.0.1)
    /// [default: 127.0.0.1 on a free port].
    pub listen: Option<&'a str>,
}

/// The provider's answer at its token endpoint (RFC 6749 5.1, OpenID Connect Core 3.1.3.3).
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct Tokens {
    #[serde(default)]
    pub access_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(default)]
    pub expires_in: Option<i64>,
    #[serde(default)]
    pub token_type: String,
}

#[derive(Deserialize)]
struct Discovery {
    #[serde(default)]
    authorization_endpoint: String,
    #[serde(default)]
    token_endpoint: String,
}

#[derive(Deserialize)]
struct TokenError {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
}

#[derive(Debug, clap::Args)]
pub struct OauthArgs {
    /// The OpenID provider: its issuer URL or its discovery document's (https).
    #[arg(long, visible_alias = "idp", value_name = "URL")]
    provider: String,
    /// The OAuth client to log in as.
    #[arg(long, value_name = "ID")]
    client_id: String,
    /// The client's secret, if it has one.
    #[arg(long, value_name = "SECRET", default_value = "")]
    client_secret: String,
    /// A scope to ask for; repeatable [default: openid email].
    #[arg(long, value_name = "SCOPE")]
    scope: Vec<String>,
    /// Where to listen for the provider's redirect, host:port (e.g. ":10000") [default:
    /// 127.0.0.1 on a free port].
    #[arg(long, value_name = "ADDRESS")]
    listen: Option<String>,
    /// Print the ID token instead of the access token (with --bare), as OIDC provisioners
    /// take it.
    #[arg(long)]
    oidc: bool,
    /// Print only the token, not the provider's whole answer as JSON.
    #[arg(long)]
    bare: bool,
}

/// `mayfly oauth`: logs in and prints the tokens.
pub async fn run(args: OauthArgs) -> anyhow::Result<()> {
    let scopes = if args.scope.is_empty() {
        DEFAULT_SCOPES.iter().map(ToString::to_string).collect()
    } else {
        args.scope.clone()
    };
    let tokens = login(&Login {
        provider: &args.provider,
        client_id: &args.client_id,
        client_secret: &args.client_secret,
        scopes,
        listen: args.listen.as_deref(),
    })
    .await?;
    if !args.bare {
        return outln!("{}", serde_json::to_string_pretty(&tokens)?);
    }
    if args.oidc {
        let id_token = tokens
            .id_token
            .context("the provider returned no ID token: ask for the \"openid\" scope")?;
        outln!("{id_token}")
    } else {
        outln!("{}", tokens.access_token)
    }
}

/// Logs in and returns the provider's tokens.
pub async fn login(login: &Login<'_>) -> anyhow::Result<Tokens> {
    let discovery_url = mayfly_authority::credential::oidc::keys::discovery_url(login.provider)
        .map_err(|e| anyhow::anyhow!("OpenID provider: {e}"))?;
    let answer = mayfly_client::web::get(&discovery_url).await?;
    if answer.status != 200 {
        bail!("{discovery_url}: HTTP {}", answer.status);
    }
    let discovery: Discovery = serde_json::from_slice(&answer.body)
        .with_context(|| format!("{discovery_url}: not a discovery document"))?;
    if discovery.authorization_endpoint.is_empty() || discovery.token_endpoint.is_empty() {
        bail!("{discovery_url}: the provider names no authorization or token endpoint");
    }
    let secrets = Secrets::new()?;
    let listener = listen(login.listen).await?;
    let local = listener.local_addr()?;
    let redirect_uri = match login
        .listen
        .and_then(|l| l.rsplit_once(':'))
        .map(|(h, _)| h)
    {
        Some(host) if !host.is_empty() && host != "127.0.0.1" => {
            format!("http://{host}:{}", local.port())
        }
        _ => format!("http://{local}"),
    };
    let scope = login.scopes.join(" ");
    let mut url = url::Url::parse(&discovery.authorization_endpoint)
        .with_context(|| format!("{discovery_url}: authorization_endpoint"))?;
    url.query_pairs_mut()
        .append_pair("client_id", login.client_id)
        .append_pair("redirect_uri", &redirect_uri)
        .append_pair("response_type", "code")
        .append_pair("code_challenge_method", "S256")
        .append_pair("code_challenge", &secrets.challenge())
        .append_pair("scope", &scope)
        .append_pair("state", &secrets.state)
        .append_pair("nonce", &secrets.nonce);
    let url = url.to_string();
    if open_browser(&url) {
        note!("Your default web browser has been opened to visit:\n\n{url}\n");
    } else {
        note!(
            "Cannot open a web browser on this system.\n\nOpen a local web browser and visit:\n\n{url}\n"
        );
    }
    let exchange = Exchange {
        token_endpoint: &discovery.token_endpoint,
        redirect_uri: &redirect_uri,
        login,
        secrets: &secrets,
    };
    let tokens = tokio::time::timeout(LOGIN_TIMEOUT, serve(&listener, &exchange))
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "no login within {} s: the provider never redirected back here",
                LOGIN_TIMEOUT.as_secs()
            )
        })??;
    if let Some(id_token) = &tokens.id_token {
        check_nonce(id_token, &secrets.nonce)?;
    }
    Ok(tokens)
}

/// Logs in and returns the ID token.
pub async fn id_token(login: &Login<'_>) -> anyhow::Result<String> {
    self::login(login).await?.id_token.context(
        "the provider returned no ID token: is \"openid\" among the scopes it grants this client?",
    )
}

/// The values that tie the login together: `state` (this login's answer), the PKCE verifier,
/// and the `nonce` the ID token must carry.
struct Secrets {
    state: String,
    verifier: String,
    nonce: String,
}

impl Secrets {
    fn new() -> anyhow::Result<Self> {
        use mayfly_pki::random::random_hex;
        Ok(Self {
            state: random_hex(16)?,
            // 64 characters of the unreserved set, within RFC 7636's 43 to 128.
            verifier: random_hex(32)?,
            nonce: random_hex(32)?,
        })
    }

    fn challenge(&self) -> String {
        use base64::Engine as _;
        let digest = sha256(self.verifier.as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
    }
}

/// SHA-256, through the fingerprint helper (which hashes any bytes).
fn sha256(data: &[u8]) -> Vec<u8> {
    hex::decode(mayfly_pki::cert::fingerprint_sha256(data)).unwrap_or_default()
}

/// The ID token names the nonce this login chose: a token from another login (injected into
/// the redirect) is refused here, before any CA sees it.
fn check_nonce(id_token: &str, nonce: &str) -> anyhow::Result<()> {
    let jws = mayfly_pki::jose::jws::Jws::parse(id_token).context("the provider's ID token")?;
    let claims: serde_json::Value = serde_json::from_slice(jws.unverified_payload())
        .context("the provider's ID token claims")?;
    if claims.get("nonce").and_then(|n| n.as_str()) != Some(nonce) {
        bail!("the provider's ID token does not carry this login's nonce");
    }
    Ok(())
}

async fn listen(address: Option<&str>) -> anyhow::Result<TcpListener> {
    let address = match address {
        Some(address) if address.starts_with(':') => format!("127.0.0.1{address}"),
        Some(address) => address.to_string(),
        None => "127.0.0.1:0".to_string(),
    };
    TcpListener::bind(&address)
        .await
        .with_context(|| format!("cannot listen for the provider's redirect on {address}"))
}

/// Opens `url` in `$BROWSER` or the system's opener; false when none could be started.
/// `MAYFLY_OPEN_BROWSER=0` never opens one.
fn open_browser(url: &str) -> bool {
    if std::env::var("MAYFLY_OPEN_BROWSER").is_ok_and(|v| v == "0") {
        return false;
    }
    let program = match std::env::var("BROWSER") {
        Ok(browser) if !browser.trim().is_empty() => browser,
        _ if cfg!(target_os = "macos") => "open".into(),
        _ => "xdg-open".into(),
    };
    match std::process::Command::new(&program)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
    {
        Ok(mut child) => {
            // Reaped in the background: the browser may live on after the login.
            std::thread::spawn(move || child.wait());
            true
        }
        Err(_) => false,
    }
}

struct Exchange<'a> {
    token_endpoint: &'a str,
    redirect_uri: &'a str,
    login: &'a Login<'a>,
    secrets: &'a Secrets,
}

/// Answers requests on the loopback listener until the provider's redirect brings the code.
async fn serve(listener: &TcpListener, exchange: &Exchange<'_>) -> anyhow::Result<Tokens> {
    loop {
        let (mut stream, _) = listener
            .accept()
            .await
            .context("waiting for the redirect")?;
        let Ok(Some(target)) = read_request_target(&mut stream).await else {
            continue;
        };
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        if path != "/" {
            respond(&mut stream, 404, "Not found.").await;
            continue;
        }
        let params: std::collections::HashMap<String, String> =
            url::form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect();
        if let Some(error) = params.get("error") {
            let description = params
                .get("error_description")
                .map(|d| format!(": {d}"))
                .unwrap_or_default();
            respond(
                &mut stream,
                400,
                &format!("Failed to authenticate: {error}"),
            )
            .await;
            bail!("the provider refused the login: {error}{description}");
        }
        let (Some(code), Some(state)) = (params.get("code"), params.get("state")) else {
            // Something else knocked (a browser plugin, a prefetch): wait for the redirect.
            respond(&mut stream, 400, "400 bad request").await;
            continue;
        };
        if state != &exchange.secrets.state {
            respond(&mut stream, 400, "Failed to authenticate: invalid state").await;
            bail!("the redirect carries another login's state: refused");
        }
        match redeem(exchange, code).await {
            Ok(tokens) => {
                respond(
                    &mut stream,
                    200,
                    "You are logged in. You may close this window and return to mayfly.",
                )
                .await;
                return Ok(tokens);
            }
            Err(e) => {
                respond(
                    &mut stream,
                    400,
                    "Failed exchanging the authorization code.",
                )
                .await;
                return Err(e);
            }
        }
    }
}

/// The request target of an HTTP request (`/?code=...`), or none for anything unreadable.
async fn read_request_target(stream: &mut TcpStream) -> anyhow::Result<Option<String>> {
    let mut buffer = Vec::new();
    let read = async {
        let mut chunk = [0u8; 2048];
        while !buffer.windows(4).any(|w| w == b"\r\n\r\n") && buffer.len() < MAX_REQUEST {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            buffer.extend_from_slice(&chunk[..n]);
        }
        Ok::<_, std::io::Error>(())
    };
    tokio::time::timeout(Duration::from_secs(10), read).await??;
    let head = String::from_utf8_lossy(&buffer);
    let mut words = head.lines().next().unwrap_or_default().split(' ');
    Ok(match (words.next(), words.next()) {
        (Some("GET"), Some(target)) => Some(target.to_string()),
        _ => None,
    })
}

async fn respond(stream: &mut TcpStream, status: u16, message: &str) {
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        _ => "Bad Request",
    };
    let body = format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>mayfly</title></head>\
         <body><p>{message}</p></body></html>\n"
    );
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/html; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    // The browser's page is a courtesy: the login's outcome does not depend on it.
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// Exchanges the code (and the PKCE verifier) at the token endpoint.
async fn redeem(exchange: &Exchange<'_>, code: &str) -> anyhow::Result<Tokens> {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("client_id", exchange.login.client_id),
        ("redirect_uri", exchange.redirect_uri),
        ("code_verifier", exchange.secrets.verifier.as_str()),
    ];
    if !exchange.login.client_secret.is_empty() {
        form.push(("client_secret", exchange.login.client_secret));
    }
    let answer = mayfly_client::web::post_form(exchange.token_endpoint, &form).await?;
    if answer.status != 200 {
        let refusal = serde_json::from_slice::<TokenError>(&answer.body)
            .map(|e| format!("{}: {}", e.error, e.error_description))
            .unwrap_or_else(|_| {
                String::from_utf8_lossy(&answer.body)
                    .chars()
                    .take(200)
                    .collect()
            });
        bail!(
            "the provider's token endpoint answered {}: {refusal}",
            answer.status
        );
    }
    serde_json::from_slice(&answer.body).context("the provider's token endpoint answered no tokens")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pkce_challenge_is_the_verifiers_sha256() {
        // RFC 7636 appendix B.
        let secrets = Secrets {
            state: String::new(),
            verifier: "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk".into(),
            nonce: String::new(),
        };
        assert_eq!(
            secrets.challenge(),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn an_id_token_for_another_login_is_refused() {
        let key = mayfly_pki::PrivateKey::generate(mayfly_pki::KeyAlgorithm::EcP256).unwrap();
        let token = mayfly_pki::jose::jws::sign_compact(&key, "k", br#"{"nonce":"abc"}"#).unwrap();
        assert!(check_nonce(&token, "abc").is_ok());
        assert!(check_nonce(&token, "abd").is_err());
    }
}
