//! One registry host: scheme and TLS choice, auth handshake, error mapping, retries.
//!
//! [`Client::new`] pings `/v2/`: HTTPS first; for hosts allowed to be insecure (see
//! [`super::config`]) TLS is not verified and plain HTTP is tried when HTTPS fails. The ping
//! also tells the auth scheme. [`Client::send`] adds auth (Basic, or a Bearer token cached per
//! scope set) and redoes a request once after a 401 with a fresh token. [`Client::retry`]
//! retries connection errors, 429 and 5xx with exponential backoff (honouring
//! `Retry-After`), never other 4xx answers, and never DNS failures, within a time budget.
//! Every request and body read is bounded by [`super::timeouts`].

use std::collections::HashMap;
use std::io::Read;
use std::sync::Mutex;
use std::time::Duration;

use reqwest::blocking::{Client as HttpClient, RequestBuilder, Response};
use reqwest::StatusCode;

use super::auth::{self, Challenge, Scope};
use super::config;
use super::credentials::{self, Credentials};
use super::timeouts::{self, Timeouts};
use super::{RegistryError, RegistryOptions, RetryNotice};

/// Attempts per retried operation (quick failures; slow ones hit the time budget first).
const ATTEMPTS: u32 = 7;
/// Largest JSON answer read into memory.
pub const MAX_SMALL: u64 = 32 << 20;

/// A connection to one registry.
pub struct Client {
    http: HttpClient,
    /// `https://host` or `http://host`.
    base: String,
    /// The host as named by the user (`docker.io`, `localhost:5000`).
    host: String,
    credentials: Option<Credentials>,
    challenge: Mutex<Challenge>,
    tokens: Mutex<HashMap<Vec<Scope>, String>>,
    timeouts: Timeouts,
    on_retry: Option<RetryNotice>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("base", &self.base).finish()
    }
}

impl Client {
    /// Connects to the registry serving `domain` (a reference's domain) and learns its auth
    /// scheme. Credentials: `options.credentials`, else docker's `config.json`.
    pub fn new(domain: &str, options: &RegistryOptions) -> Result<Client, RegistryError> {
        let endpoint = config::endpoint_host(domain);
        let insecure = match options.tls_verify {
            Some(false) => true,
            Some(true) => false,
            None => config::is_insecure(endpoint, &config::insecure_registries()?),
        };
        let credentials = match &options.credentials {
            Some(c) => Some(c.clone()),
            None => credentials::lookup(domain)?,
        };
        let timeouts = Timeouts::from_env()?;
        let http = http_client(endpoint, insecure, &timeouts)?;
        let mut client = Client {
            http,
            base: format!("https://{endpoint}"),
            host: domain.to_string(),
            credentials,
            challenge: Mutex::new(Challenge::None),
            tokens: Mutex::new(HashMap::new()),
            timeouts,
            on_retry: options.on_retry.clone(),
        };
        let challenge = match client.ping() {
            Ok(c) => c,
            Err(RegistryError::Transport { .. }) if insecure => {
                client.base = format!("http://{endpoint}");
                client.retry("ping", || client.ping())?
            }
            Err(e) if e.is_retryable() => client.retry("ping", || client.ping())?,
            Err(e) => return Err(e),
        };
        *lock(&client.challenge) = challenge;
        Ok(client)
    }

    /// The registry as the user named it.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The limits this client works with (for requests that set their own, as uploads do).
    pub fn timeouts(&self) -> &Timeouts {
        &self.timeouts
    }

    /// An absolute URL for `path` (`/v2/…`) or a `Location` header value.
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_string()
        } else if path.starts_with('/') {
            format!("{}{path}", self.base)
        } else {
            format!("{}/{path}", self.base)
        }
    }

    fn ping(&self) -> Result<Challenge, RegistryError> {
        let resp = self
            .http
            .get(self.url("/v2/"))
            .send()
            .map_err(|e| self.transport(e, "ping /v2/"))?;
        match resp.status() {
            s if s.is_success() => Ok(Challenge::None),
            StatusCode::UNAUTHORIZED => {
                let header = resp
                    .headers()
                    .get("www-authenticate")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                auth::parse_challenge(&header).ok_or_else(|| {
                    RegistryError::Unsupported(format!(
                        "{}: unsupported auth challenge {header:?}",
                        self.host
                    ))
                })
            }
            _ => Err(self.status_error(resp, "ping /v2/")),
        }
    }

    /// Checks the client's credentials (for `login`).
    pub fn verify_login(&self) -> Result<(), RegistryError> {
        let challenge = lock(&self.challenge).clone();
        match challenge {
            Challenge::None => Ok(()),
            Challenge::Basic => {
                let resp = self.retry("log in", || {
                    let resp = self.authorize(self.http.get(self.url("/v2/")), &[])?;
                    resp.send().map_err(|e| self.transport(e, "log in"))
                })?;
                match resp.status() {
                    s if s.is_success() => Ok(()),
                    StatusCode::UNAUTHORIZED => Err(self.unauthorized(resp)),
                    _ => Err(self.status_error(resp, "log in")),
                }
            }
            Challenge::Bearer { .. } => self.token(&[]).map(|_| ()),
        }
    }

    /// Sends the request `build` makes (called again for a retry after a 401), with auth for
    /// `scopes`. Returns the response whatever its status, except 401 (an error). `what`
    /// names the request in error messages.
    pub fn send(
        &self,
        scopes: &[Scope],
        what: &str,
        build: impl Fn(&HttpClient) -> RequestBuilder,
    ) -> Result<Response, RegistryError> {
        let mut refreshed = false;
        loop {
            let req = self.authorize(build(&self.http), scopes)?;
            let resp = req.send().map_err(|e| self.transport(e, what))?;
            if resp.status() != StatusCode::UNAUTHORIZED {
                return Ok(resp);
            }
            if refreshed {
                return Err(self.unauthorized(resp));
            }
            refreshed = true;
            // The challenge may name another realm or scheme; forget cached tokens.
            if let Some(c) = resp
                .headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok())
                .and_then(auth::parse_challenge)
            {
                *lock(&self.challenge) = c;
            }
            lock(&self.tokens).remove(scopes);
            if *lock(&self.challenge) == Challenge::None {
                return Err(self.unauthorized(resp));
            }
        }
    }

    /// Like [`Client::send`] but turns any non-2xx answer into an error.
    pub fn send_ok(
        &self,
        scopes: &[Scope],
        what: &str,
        build: impl Fn(&HttpClient) -> RequestBuilder,
    ) -> Result<Response, RegistryError> {
        let resp = self.send(scopes, what, build)?;
        if resp.status().is_success() {
            Ok(resp)
        } else {
            Err(self.status_error(resp, what))
        }
    }

    fn authorize(
        &self,
        req: RequestBuilder,
        scopes: &[Scope],
    ) -> Result<RequestBuilder, RegistryError> {
        let challenge = lock(&self.challenge).clone();
        Ok(match challenge {
            Challenge::None => req,
            Challenge::Basic => match &self.credentials {
                Some(c) => req.basic_auth(&c.username, Some(&c.password)),
                None => req,
            },
            Challenge::Bearer { .. } => req.bearer_auth(self.token(scopes)?),
        })
    }

    /// A Bearer token for `scopes` (cached).
    fn token(&self, scopes: &[Scope]) -> Result<String, RegistryError> {
        if let Some(t) = lock(&self.tokens).get(scopes) {
            return Ok(t.clone());
        }
        let Challenge::Bearer { realm, service } = lock(&self.challenge).clone() else {
            return Ok(String::new());
        };
        let mut query: Vec<(&str, &str)> = Vec::new();
        if let Some(s) = &service {
            query.push(("service", s));
        }
        for s in scopes {
            query.push(("scope", &s.0));
        }
        let resp = self.retry("get a token", || {
            let mut req = self.http.get(&realm).query(&query);
            if let Some(c) = &self.credentials {
                req = req.basic_auth(&c.username, Some(&c.password));
            }
            let resp = req.send().map_err(|e| self.transport(e, "get a token"))?;
            if resp.status().is_server_error() || resp.status() == StatusCode::TOO_MANY_REQUESTS {
                return Err(self.status_error(resp, "get a token"));
            }
            Ok(resp)
        })?;
        match resp.status() {
            s if s.is_success() => {}
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => return Err(self.unauthorized(resp)),
            _ => return Err(self.status_error(resp, &format!("get a token from {realm}"))),
        }
        let body = read_small(resp, &self.host, "token")?;
        let token = auth::token_from_json(&body).ok_or_else(|| {
            RegistryError::Invalid(format!(
                "{}: the token server {realm} sent no token",
                self.host
            ))
        })?;
        lock(&self.tokens).insert(scopes.to_vec(), token.clone());
        Ok(token)
    }

    /// Runs `op` until it succeeds, fails for good, or `ATTEMPTS` are used up, or the next
    /// attempt would start later than [`Timeouts::retry_budget`] after the first (so a
    /// registry that times out costs about three attempts, not seven); waits between
    /// attempts (exponential backoff from 200 ms, at most 5 s, or the registry's `Retry-After`).
    pub fn retry<T>(
        &self,
        what: &str,
        mut op: impl FnMut() -> Result<T, RegistryError>,
    ) -> Result<T, RegistryError> {
        let start = std::time::Instant::now();
        let budget = self.timeouts.retry_budget();
        let mut delay = Duration::from_millis(200);
        let mut attempt = 1;
        loop {
            match op() {
                Ok(v) => return Ok(v),
                Err(e)
                    if e.is_retryable()
                        && attempt < ATTEMPTS
                        && start.elapsed() + e.retry_after().unwrap_or(delay) <= budget =>
                {
                    let wait = e.retry_after().unwrap_or(delay);
                    if let Some(notice) = &self.on_retry {
                        (notice.0)(&format!("{what}: {e}; retrying in {wait:?}"));
                    }
                    std::thread::sleep(wait);
                    delay = (delay * 2).min(Duration::from_secs(5));
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Maps a transport error of the request `what`; DNS failures are not worth retrying.
    pub fn transport(&self, e: reqwest::Error, what: &str) -> RegistryError {
        if e.is_timeout() {
            let message = if e.is_connect() {
                format!(
                    "{what}: could not connect within {}s",
                    self.timeouts.connect().as_secs_f64()
                )
            } else {
                // (Uploads get longer than the setting, so no "within {setting}" here.)
                format!(
                    "{what}: timed out waiting for the registry (limit set by {}, now {})",
                    timeouts::ENV,
                    self.timeouts.describe()
                )
            };
            return RegistryError::Transport {
                host: self.host_and_endpoint(),
                message,
                retryable: true,
            };
        }
        let mut message = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        let lower = message.to_ascii_lowercase();
        let dns = lower.contains("dns error")
            || lower.contains("failed to lookup address")
            || lower.contains("name or service not known");
        let tls = lower.contains("certificate") || lower.contains("invalidcontenttype");
        RegistryError::Transport {
            host: self.host_and_endpoint(),
            message: if dns {
                format!("cannot resolve the registry's host name: {message}")
            } else {
                message
            },
            retryable: !dns && !tls,
        }
    }

    /// `docker.io (registry-1.docker.io)`, or the host alone when it is the endpoint.
    fn host_and_endpoint(&self) -> String {
        let endpoint = config::endpoint_host(&self.host);
        if endpoint == self.host {
            self.host.clone()
        } else {
            format!("{} ({endpoint})", self.host)
        }
    }

    /// An error for a non-success answer, keeping the registry's error code and message.
    pub fn status_error(&self, resp: Response, what: &str) -> RegistryError {
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        let body = read_small(resp, &self.host, what).unwrap_or_default();
        let (code, message) = registry_error_body(&body);
        RegistryError::Status {
            host: self.host.clone(),
            what: what.to_string(),
            status,
            code,
            message,
            retry_after,
        }
    }

    fn unauthorized(&self, resp: Response) -> RegistryError {
        let body = read_small(resp, &self.host, "auth").unwrap_or_default();
        let detail = match registry_error_body(&body) {
            (Some(c), Some(m)) => format!("{c}: {m}"),
            (_, Some(m)) => m,
            (Some(c), None) => c,
            (None, None) => "authentication required".to_string(),
        };
        let message = match &self.credentials {
            Some(c) => format!(
                "incorrect username or password for user {:?} ({detail})",
                c.username
            ),
            None => format!(
                "{detail} (no credentials; use `rbuild login {}`)",
                self.host
            ),
        };
        RegistryError::Unauthorized {
            host: self.host.clone(),
            message,
        }
    }
}

/// `{"errors":[{"code":"…","message":"…"}]}` → first code and message (or the plain text).
fn registry_error_body(body: &[u8]) -> (Option<String>, Option<String>) {
    #[derive(serde::Deserialize)]
    struct Item {
        code: Option<String>,
        message: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<Item>,
    }
    if let Ok(e) = serde_json::from_slice::<Errors>(body) {
        if let Some(first) = e.errors.into_iter().next() {
            return (first.code, first.message.filter(|m| !m.is_empty()));
        }
    }
    let text = String::from_utf8_lossy(body).trim().to_string();
    if text.is_empty() || text.len() > 500 {
        (None, None)
    } else {
        (None, Some(text))
    }
}

/// Reads a small answer body (JSON), refusing more than [`MAX_SMALL`] bytes.
pub fn read_small(resp: Response, host: &str, what: &str) -> Result<Vec<u8>, RegistryError> {
    let mut buf = Vec::new();
    resp.take(MAX_SMALL + 1)
        .read_to_end(&mut buf)
        .map_err(|e| body_error(host, what, e))?;
    if buf.len() as u64 > MAX_SMALL {
        return Err(RegistryError::Invalid(format!(
            "{host}: {what} is larger than {MAX_SMALL} bytes"
        )));
    }
    Ok(buf)
}

/// The error for a failed read of the body of `what` from `host`; a stall past the idle
/// limit says so.
pub fn body_error(host: &str, what: &str, e: std::io::Error) -> RegistryError {
    let message = if timeouts::is_timeout(&e) {
        let limit = Timeouts::from_env().unwrap_or_default();
        format!(
            "reading {what}: timed out: no data for {} in the middle of the transfer (limit set by {})",
            limit.describe(),
            timeouts::ENV
        )
    } else {
        format!("reading {what}: {e}")
    };
    RegistryError::Transport {
        host: host.to_string(),
        message,
        retryable: true,
    }
}

/// A blocking client whose `timeout` bounds the wait for an answer's headers and each read of
/// its body (reqwest's blocking reads apply it per read), with `TCP_USER_TIMEOUT` for a
/// server that stops reading what is sent.
fn http_client(
    endpoint: &str,
    insecure: bool,
    timeouts: &Timeouts,
) -> Result<HttpClient, RegistryError> {
    let mut b = timeouts
        .client_builder()
        .pool_idle_timeout(Duration::from_secs(30))
        .user_agent(concat!("rbuild/", env!("CARGO_PKG_VERSION")));
    if insecure {
        b = b.danger_accept_invalid_certs(true);
    }
    for dir in config::cert_dirs(endpoint) {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "crt" || e == "pem") {
                let pem = std::fs::read(&path)
                    .map_err(|e| RegistryError::Config(format!("{}: {e}", path.display())))?;
                let certs = reqwest::Certificate::from_pem_bundle(&pem)
                    .map_err(|e| RegistryError::Config(format!("{}: {e}", path.display())))?;
                for c in certs {
                    b = b.add_root_certificate(c);
                }
            }
        }
    }
    b.build()
        .map_err(|e| RegistryError::Config(format!("HTTP client: {e}")))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies() {
        assert_eq!(
            registry_error_body(
                br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{}}]}"#
            ),
            (
                Some("MANIFEST_UNKNOWN".into()),
                Some("manifest unknown".into())
            )
        );
        assert_eq!(registry_error_body(b"oops\n"), (None, Some("oops".into())));
        assert_eq!(registry_error_body(b""), (None, None));
    }
}
