//! The HTTP/1.1 client: one keep-alive connection per task, hyper's low-level handshake
//! over a tokio `TcpStream` with `TCP_NODELAY`, no pool and no locks on the request path.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// How requests authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthMode {
    /// The admin token on every request, with `user_id` in the bodies.
    Admin,
    /// An HS256 user token per user, minted with `--jwt-secret`.
    User,
}

/// Where to send requests and how to authenticate.
#[derive(Debug, Clone)]
pub struct Target {
    /// The server's address (loopback only).
    pub addr: SocketAddr,
    host: HeaderValue,
    admin: HeaderValue,
    jwt_secret: Option<Vec<u8>>,
    mode: AuthMode,
    /// The next `Idempotency-Key` number, when every POST and DELETE carries a fresh key.
    keys: Option<std::sync::Arc<std::sync::atomic::AtomicU64>>,
}

impl Target {
    /// A target at `addr`; `jwt_secret` is required for [`AuthMode::User`].
    pub fn new(
        addr: SocketAddr,
        admin_token: &str,
        jwt_secret: Option<&str>,
        mode: AuthMode,
    ) -> anyhow::Result<Target> {
        if !addr.ip().is_loopback() {
            bail!("{addr} is not a loopback address: boxoffice-load only sends to this machine");
        }
        if mode == AuthMode::User && jwt_secret.is_none() {
            bail!("--auth user needs --jwt-secret (or BOXOFFICE_JWT_SECRET)");
        }
        Ok(Target {
            addr,
            host: HeaderValue::from_str(&addr.to_string())?,
            admin: HeaderValue::from_str(&format!("Bearer {admin_token}"))
                .context("the admin token is not a valid header value")?,
            jwt_secret: jwt_secret.map(|s| s.as_bytes().to_vec()),
            mode,
            keys: None,
        })
    }

    /// With `on`, every POST and DELETE carries a fresh `Idempotency-Key` (`load-N`).
    pub fn with_keys(mut self, on: bool) -> Target {
        self.keys = on.then(Default::default);
        self
    }
}

/// Mints an HS256 user token: `{"sub", "exp", "iat"}` signed with the secret's bytes.
pub fn mint_token(secret: &[u8], user: &str, ttl: Duration) -> anyhow::Result<String> {
    #[derive(serde::Serialize)]
    struct Claims<'a> {
        sub: &'a str,
        exp: u64,
        iat: u64,
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let claims = Claims {
        sub: user,
        exp: now + ttl.as_secs(),
        iat: now,
    };
    let key = jsonwebtoken::EncodingKey::from_secret(secret);
    Ok(jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &key,
    )?)
}

/// An answer: status and the whole body.
#[derive(Debug)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Body.
    pub body: Bytes,
}

/// One connection's client: reconnects when the server closes the connection.
pub struct Client {
    target: std::sync::Arc<Target>,
    sender: Option<SendRequest<Full<Bytes>>>,
    tokens: HashMap<String, HeaderValue>,
    /// Connections opened (for the report).
    pub connects: u64,
}

impl Client {
    /// A client that connects on first use.
    pub fn new(target: std::sync::Arc<Target>) -> Client {
        Client {
            target,
            sender: None,
            tokens: HashMap::new(),
            connects: 0,
        }
    }

    async fn connect(&mut self) -> anyhow::Result<()> {
        let stream = TcpStream::connect(self.target.addr)
            .await
            .with_context(|| format!("connect to {}", self.target.addr))?;
        stream.set_nodelay(true)?;
        let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            // The connection ends when the sender is dropped or the server closes it.
            let _ = conn.await;
        });
        self.sender = Some(sender);
        self.connects += 1;
        Ok(())
    }

    fn auth(&mut self, user: &str) -> anyhow::Result<HeaderValue> {
        if self.target.mode == AuthMode::Admin || user.is_empty() {
            return Ok(self.target.admin.clone());
        }
        if let Some(token) = self.tokens.get(user) {
            return Ok(token.clone());
        }
        let secret = self
            .target
            .jwt_secret
            .as_deref()
            .expect("checked in Target::new");
        let token = mint_token(secret, user, Duration::from_secs(3600))?;
        let value = HeaderValue::from_str(&format!("Bearer {token}"))?;
        self.tokens.insert(user.to_string(), value.clone());
        Ok(value)
    }

    /// Drops the connection (after a timeout its state is unknown).
    pub fn reset(&mut self) {
        self.sender = None;
    }

    /// Sends one request and reads the whole answer. Any error leaves the connection to
    /// be opened anew by the next request.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
        user: &str,
    ) -> anyhow::Result<Reply> {
        let result = self.send_inner(method, path, body, user).await;
        if result.is_err() {
            self.sender = None;
        }
        result
    }

    async fn send_inner(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
        user: &str,
    ) -> anyhow::Result<Reply> {
        let auth = self.auth(user)?;
        // A kept-alive connection the server closed while idle is not a failed request.
        let idle_ready = match self.sender.as_mut() {
            Some(sender) => sender.ready().await.is_ok(),
            None => false,
        };
        if !idle_ready {
            self.connect().await?;
            let sender = self.sender.as_mut().expect("just connected");
            sender.ready().await?;
        }
        let method = match method {
            Method::Get => hyper::Method::GET,
            Method::Post => hyper::Method::POST,
            Method::Delete => hyper::Method::DELETE,
        };
        let keyed = method != hyper::Method::GET;
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, self.target.host.clone())
            .header(AUTHORIZATION, auth);
        if body.is_some() {
            request = request.header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        if let (Some(keys), true) = (&self.target.keys, keyed) {
            let n = keys.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            request = request.header("idempotency-key", format!("load-{n}"));
        }
        let request = request.body(Full::new(body.unwrap_or_default()))?;
        let sender = self
            .sender
            .as_mut()
            .ok_or_else(|| anyhow!("not connected"))?;
        let response = sender.send_request(request).await?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes();
        Ok(Reply { status, body })
    }
}

/// Sends one request on a fresh client (set-up, verification).
pub async fn once(
    target: &std::sync::Arc<Target>,
    method: Method,
    path: &str,
    body: Option<Bytes>,
) -> anyhow::Result<Reply> {
    Client::new(target.clone())
        .send(method, path, body, "")
        .await
}

/// HTTP methods the workloads use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// GET.
    Get,
    /// POST.
    Post,
    /// DELETE.
    Delete,
}

/// The `code` of an `{"error": {"code": ...}}` body, or `"-"`.
pub fn error_code(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Inner {
        code: String,
    }
    #[derive(serde::Deserialize)]
    struct Outer {
        error: Inner,
    }
    serde_json::from_slice::<Outer>(body)
        .map(|o| o.error.code)
        .unwrap_or_else(|_| "-".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_are_hs256_with_sub_exp_iat() {
        let token = mint_token(b"jwtsecret", "alice", Duration::from_secs(60)).unwrap();
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub", "iat"]);
        let key = jsonwebtoken::DecodingKey::from_secret(b"jwtsecret");
        let data = jsonwebtoken::decode::<serde_json::Value>(&token, &key, &validation).unwrap();
        assert_eq!(data.claims["sub"], "alice");
        assert!(data.claims["exp"].as_u64().unwrap() > data.claims["iat"].as_u64().unwrap());
    }

    #[test]
    fn only_loopback_targets() {
        let remote: SocketAddr = "10.1.2.3:80".parse().unwrap();
        assert!(Target::new(remote, "t", None, AuthMode::Admin).is_err());
        let local: SocketAddr = "127.0.0.1:80".parse().unwrap();
        assert!(Target::new(local, "t", None, AuthMode::Admin).is_ok());
        assert!(Target::new(local, "t", None, AuthMode::User).is_err());
    }

    #[test]
    fn error_codes_are_read_from_the_error_shape() {
        let body = br#"{"error":{"code":"sold_out","message":"no tickets left"}}"#;
        assert_eq!(error_code(body), "sold_out");
        assert_eq!(error_code(b"<html>"), "-");
    }
}
