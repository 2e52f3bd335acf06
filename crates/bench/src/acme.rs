//! `mayfly-bench acme`: full ACME flows (new order, http-01, finalize, download) from C
//! concurrent clients, each with its own account, answering http-01 on a loopback port the CA's
//! ACME provisioner is told to validate on (`insecureHttp01Port`, `insecureValidationAddress`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use mayfly_client::{Client, Method};
use mayfly_pki::jose::jwk::Jwk;
use mayfly_pki::{KeyAlgorithm, PrivateKey, San};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How often order and authorization states are polled.
const POLL: Duration = Duration::from_millis(10);
/// How long one flow may wait for a state change.
const FLOW_TIMEOUT: Duration = Duration::from_secs(60);

/// Key authorizations the http-01 responder serves, by token.
pub type Answers = Arc<Mutex<HashMap<String, String>>>;

/// Serves http-01 answers on `port` (loopback) until the process ends.
pub async fn serve_http01(port: u16, answers: Answers) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .with_context(|| format!("--http-port {port}: cannot listen"))?;
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let answers = Arc::clone(&answers);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 2048];
                let mut n = 0;
                while n < buf.len() && !buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf[n..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(m) => n += m,
                    }
                }
                let head = String::from_utf8_lossy(&buf[..n]);
                let token = head
                    .split_whitespace()
                    .nth(1)
                    .and_then(|p| p.strip_prefix("/.well-known/acme-challenge/"))
                    .unwrap_or("")
                    .to_string();
                let answer = answers.lock().ok().and_then(|a| a.get(&token).cloned());
                let response = match answer {
                    Some(body) => format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    ),
                    None => {
                        "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                            .to_string()
                    }
                };
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    Ok(())
}

/// One ACME account and the client it talks through.
pub struct Account {
    client: Client,
    key: PrivateKey,
    kid: String,
    thumbprint: String,
    directory: Value,
    /// The `Replay-Nonce` of the last answer, for the next request, as an ACME client keeps
    /// it (RFC 8555 7.2): `newNonce` only when there is none.
    nonce: std::sync::Mutex<Option<String>>,
}

struct Answer {
    status: u16,
    location: Option<String>,
    body: Value,
    text: Vec<u8>,
}

impl Account {
    /// Fetches the directory and creates an account.
    pub async fn create(client: Client, directory_url: &str) -> anyhow::Result<Account> {
        let r = client
            .exchange(Method::GET, directory_url, "", Vec::new())
            .await?;
        if r.status != 200 {
            bail!("{directory_url} answered {}", r.status);
        }
        let directory: Value = serde_json::from_slice(&r.body).context("the directory")?;
        let key = PrivateKey::generate(KeyAlgorithm::EcP256)?;
        let jwk = Jwk::public_from_key(&key)?;
        let thumbprint = jwk.thumbprint()?;
        let mut account = Account {
            client,
            key,
            kid: String::new(),
            thumbprint,
            directory,
            nonce: std::sync::Mutex::new(None),
        };
        let url = account.url("newAccount")?;
        let mut public = serde_json::to_value(&jwk)?;
        if let Some(map) = public.as_object_mut() {
            for field in ["kid", "use", "alg"] {
                map.remove(field);
            }
        }
        let answer = account
            .post(
                &url,
                Some(&json!({"termsOfServiceAgreed": true})),
                Some(public),
            )
            .await?;
        account.kid = answer
            .location
            .context("newAccount answered without a Location")?;
        Ok(account)
    }

    fn url(&self, field: &str) -> anyhow::Result<String> {
        self.directory[field]
            .as_str()
            .map(str::to_string)
            .with_context(|| format!("the directory has no {field}"))
    }

    /// The nonce kept from the last answer, or a new one.
    async fn nonce(&self) -> anyhow::Result<String> {
        let kept = self.nonce.lock().ok().and_then(|mut kept| kept.take());
        if let Some(nonce) = kept {
            return Ok(nonce);
        }
        let r = self
            .client
            .exchange(Method::HEAD, &self.url("newNonce")?, "", Vec::new())
            .await?;
        r.header("replay-nonce")
            .map(str::to_string)
            .context("newNonce gave no Replay-Nonce")
    }

    async fn post(
        &self,
        url: &str,
        payload: Option<&Value>,
        jwk: Option<Value>,
    ) -> anyhow::Result<Answer> {
        let mut header =
            json!({"alg": self.key.jws_algorithm(), "nonce": self.nonce().await?, "url": url});
        match jwk {
            Some(jwk) => header["jwk"] = jwk,
            None => header["kid"] = json!(self.kid),
        }
        let protected = B64.encode(header.to_string());
        let payload = payload.map_or(String::new(), |p| B64.encode(p.to_string()));
        let signature = self
            .key
            .sign_jws(format!("{protected}.{payload}").as_bytes())?;
        let body =
            json!({"protected": protected, "payload": payload, "signature": B64.encode(signature)});
        let r = self
            .client
            .exchange(
                Method::POST,
                url,
                "application/jose+json",
                body.to_string().into_bytes(),
            )
            .await?;
        if let (Some(nonce), Ok(mut kept)) = (r.header("replay-nonce"), self.nonce.lock()) {
            *kept = Some(nonce.to_string());
        }
        let answer = Answer {
            status: r.status,
            location: r.header("location").map(str::to_string),
            body: serde_json::from_slice(&r.body).unwrap_or(Value::Null),
            text: r.body,
        };
        if answer.status >= 400 {
            bail!(
                "{url} answered {}: {}",
                answer.status,
                String::from_utf8_lossy(&answer.text)
            );
        }
        Ok(answer)
    }

    /// One full flow for `name`; returns the PEM chain.
    pub async fn flow(
        &self,
        name: &str,
        csr_der: &[u8],
        answers: &Answers,
    ) -> anyhow::Result<String> {
        let deadline = Instant::now() + FLOW_TIMEOUT;
        // RFC 8738: an IP address is an identifier of its own type.
        let kind = if name.parse::<std::net::IpAddr>().is_ok() {
            "ip"
        } else {
            "dns"
        };
        let order = self
            .post(
                &self.url("newOrder")?,
                Some(&json!({"identifiers": [{"type": kind, "value": name}]})),
                None,
            )
            .await?;
        let order_url = order
            .location
            .context("newOrder answered without a Location")?;
        for authz_url in order.body["authorizations"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let authz_url = authz_url.as_str().context("authorization URL")?;
            let authz = self.post(authz_url, None, None).await?;
            if authz.body["status"] == "valid" {
                continue;
            }
            let challenge = authz.body["challenges"]
                .as_array()
                .and_then(|c| c.iter().find(|c| c["type"] == "http-01"))
                .context("no http-01 challenge")?;
            let token = challenge["token"].as_str().context("challenge token")?;
            answers
                .lock()
                .map_err(|_| anyhow::anyhow!("responder lock poisoned"))?
                .insert(token.to_string(), format!("{token}.{}", self.thumbprint));
            let url = challenge["url"].as_str().context("challenge URL")?;
            self.post(url, Some(&json!({})), None).await?;
        }
        loop {
            let state = self.post(&order_url, None, None).await?;
            match state.body["status"].as_str() {
                Some("ready") => break,
                Some("pending") if Instant::now() < deadline => tokio::time::sleep(POLL).await,
                other => bail!("order {order_url} is {other:?}"),
            }
        }
        let finalize = order.body["finalize"].as_str().context("finalize URL")?;
        let done = self
            .post(finalize, Some(&json!({"csr": B64.encode(csr_der)})), None)
            .await?;
        let certificate = done.body["certificate"]
            .as_str()
            .context("the finalized order has no certificate")?;
        let chain = self.post(certificate, None, None).await?;
        Ok(String::from_utf8_lossy(&chain.text).into_owned())
    }
}

/// A key and CSR for `name`, made before the clock starts.
pub fn prepare_csr(name: &str) -> anyhow::Result<Vec<u8>> {
    let key = PrivateKey::generate(KeyAlgorithm::EcP256)?;
    let san = San::parse(name)?;
    let pem_text = mayfly_pki::csr::create_pem(&key, name, &[san])?;
    let body: String = pem_text
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .context("decoding the CSR")
}
