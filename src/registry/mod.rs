//! Registry v2 client (OCI distribution spec): pull, push, login, catalog.
//!
//! - [`pull`]: fetches a manifest (resolving manifest lists / OCI indexes to one platform),
//!   streams every blob into the store while checking its digest (and each layer's DiffID),
//!   then adds the image with the registry's exact manifest bytes (so `RepoDigests` shows the
//!   manifest digest).
//! - [`push`]: uploads what the registry lacks (HEAD first, cross-repository mount when another
//!   repository of the same registry known locally has the blob, monolithic or chunked
//!   uploads, a few layers at a time), then PUTs the manifest.
//! - [`login`], [`logout`], [`catalog`].
//! - [`cache`]: build cache export/import (`--cache-to` / `--cache-from`).
//!
//! Auth: anonymous, Basic and Bearer tokens (see [`auth`]); credentials come from docker's
//! `config.json` ([`credentials`]). Transport rules (TLS, insecure hosts, retries) are in
//! [`client`] and [`config`].
//!
//! ```no_run
//! use rbuild::registry::{self, PullOptions};
//! use rbuild::store::Store;
//! use rbuild::image::Reference;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = Store::open("/var/lib/rbuild".as_ref())?;
//! let id = registry::pull(&store, &Reference::parse("localhost:5000/app:v1")?, &PullOptions::default())?;
//! # Ok(()) }
//! ```

pub mod auth;
pub mod cache;
pub mod client;
pub mod config;
pub mod credentials;
pub mod pull;
mod push;
pub mod timeouts;

use std::time::Duration;

use crate::image::digest::Digest;
use crate::image::reference::ReferenceError;
use crate::store::StoreError;

pub use client::Client;
pub use credentials::Credentials;
pub use pull::{pull, PullOptions};
pub use push::{push, PushOptions, PushResult};

/// What can go wrong talking to a registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// No connection could be made (or it broke); `retryable` says whether trying again helps.
    #[error("{host}: {message}")]
    Transport {
        host: String,
        message: String,
        retryable: bool,
    },
    /// The registry answered with an error status.
    #[error("{host}: {what}: {status}{}", registry_detail(.code, .message))]
    Status {
        host: String,
        what: String,
        status: u16,
        /// The first error code of the registry's JSON error body (`MANIFEST_UNKNOWN`, …).
        code: Option<String>,
        message: Option<String>,
        /// `Retry-After` in seconds, when given.
        retry_after: Option<u64>,
    },
    #[error("{host}: unauthorized: {message}")]
    Unauthorized { host: String, message: String },
    #[error("{what}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error("{what}: {error}")]
    Io { what: String, error: std::io::Error },
}

fn registry_detail(code: &Option<String>, message: &Option<String>) -> String {
    match (code, message) {
        (Some(c), Some(m)) => format!(" ({c}: {m})"),
        (Some(c), None) => format!(" ({c})"),
        (None, Some(m)) => format!(" ({m})"),
        (None, None) => String::new(),
    }
}

impl RegistryError {
    /// Whether trying the same request again may help (connection errors, 429, 5xx).
    pub fn is_retryable(&self) -> bool {
        match self {
            RegistryError::Transport { retryable, .. } => *retryable,
            RegistryError::Status { status, .. } => *status == 429 || *status >= 500,
            RegistryError::Io { .. } => true,
            _ => false,
        }
    }

    /// How long to wait before retrying, when the registry said (`Retry-After`).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            RegistryError::Status {
                retry_after: Some(s),
                ..
            } => Some(Duration::from_secs((*s).min(60))),
            _ => None,
        }
    }

    /// The HTTP status, when the registry answered with an error.
    pub fn status(&self) -> Option<u16> {
        match self {
            RegistryError::Status { status, .. } => Some(*status),
            RegistryError::Unauthorized { .. } => Some(401),
            _ => None,
        }
    }
}

/// Options shared by every registry operation.
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// `--tls-verify`: `Some(false)` allows plain HTTP and unverified TLS for this host,
    /// `Some(true)` requires verified HTTPS even for `localhost`; `None` follows the rules in
    /// [`config`].
    pub tls_verify: Option<bool>,
    /// Credentials to use instead of those in docker's `config.json`.
    pub credentials: Option<Credentials>,
    /// Transfers at once (default 3, as docker).
    pub jobs: usize,
    /// Told about every request that failed and is about to be tried again.
    pub on_retry: Option<RetryLog>,
}

/// A request that failed and will be tried again after `wait`.
#[derive(Debug)]
pub struct Retrying<'a> {
    /// What was being done (`download layer`, `ping`).
    pub what: &'a str,
    /// Why it failed.
    pub error: &'a RegistryError,
    /// How long until the next attempt.
    pub wait: Duration,
}

/// Where the registry code reports retries: the library does not print, the CLI decides how
/// (it shows them as warnings). Called from transfer threads.
#[derive(Clone)]
pub struct RetryLog(pub std::sync::Arc<dyn Fn(&Retrying<'_>) + Send + Sync>);

impl std::fmt::Debug for RetryLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RetryLog")
    }
}

impl RegistryOptions {
    pub(crate) fn jobs(&self) -> usize {
        if self.jobs == 0 {
            3
        } else {
            self.jobs
        }
    }
}

/// What happened to one blob during a push or pull (for docker-like progress lines).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The registry already had the blob.
    LayerExists(Digest),
    /// The blob was mounted from another repository of the registry.
    Mounted { digest: Digest, from: String },
    /// The blob was uploaded.
    Pushed(Digest),
    /// The store already had the layer.
    AlreadyExists(Digest),
    /// The layer was downloaded and verified.
    PullComplete(Digest),
    /// Bytes of a blob moved so far (downloaded or uploaded) out of `total`; sent often while
    /// a blob is in transit, so the CLI can draw a bar. `done` starts again from 0 when a
    /// transfer is retried.
    Bytes {
        digest: Digest,
        done: u64,
        total: u64,
    },
}

/// A sink for [`Event`]s (called from worker threads).
pub type Progress<'a> = &'a (dyn Fn(Event) + Sync);

/// Lists the repositories of the registry at `host` (`/v2/_catalog`, following pages) whose
/// name contains `term` (all of them when `term` is empty).
pub fn catalog(
    host: &str,
    term: &str,
    options: &RegistryOptions,
) -> Result<Vec<String>, RegistryError> {
    let client = Client::new(host, options)?;
    let mut out = Vec::new();
    let mut next = Some("/v2/_catalog?n=1000".to_string());
    let scope = auth::Scope::catalog();
    let mut pages = 0;
    while let Some(path) = next.take() {
        pages += 1;
        if pages > 10_000 {
            return Err(RegistryError::Invalid(format!(
                "{host}: /v2/_catalog keeps sending more pages"
            )));
        }
        let (body, link) = client.retry("list repositories", || {
            let url = client.url(&path);
            let resp = client.send_ok(std::slice::from_ref(&scope), "list repositories", |h| {
                h.get(&url)
            })?;
            let link = resp
                .headers()
                .get("link")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let body = client::read_small(resp, host, "catalog")?;
            Ok((body, link))
        })?;
        #[derive(serde::Deserialize)]
        struct Catalog {
            #[serde(default)]
            repositories: Vec<String>,
        }
        let c: Catalog = serde_json::from_slice(&body).map_err(|e| {
            RegistryError::Invalid(format!(
                "{host}: /v2/_catalog answer is not valid JSON: {e}"
            ))
        })?;
        out.extend(c.repositories.into_iter().filter(|r| r.contains(term)));
        next = link.and_then(|l| next_link(&l));
    }
    Ok(out)
}

/// The target of a `Link: </v2/_catalog?last=x&n=100>; rel="next"` header.
fn next_link(link: &str) -> Option<String> {
    let start = link.find('<')? + 1;
    let end = link[start..].find('>')? + start;
    if !link[end..].contains("rel=\"next\"") {
        return None;
    }
    let target = &link[start..end];
    target.find("/v2/").map(|i| target[i..].to_string())
}

/// Checks `credentials` against the registry at `host` and, when they work, stores them in
/// docker's `config.json` (or its credential store). Returns the file or helper used.
pub fn login(
    host: &str,
    credentials: &Credentials,
    options: &RegistryOptions,
) -> Result<String, RegistryError> {
    let options = RegistryOptions {
        credentials: Some(credentials.clone()),
        ..options.clone()
    };
    let client = Client::new(host, &options)?;
    client.verify_login()?;
    credentials::store(host, credentials)
}

/// Removes the stored credentials of `host`. Returns whether there were any.
pub fn logout(host: &str) -> Result<bool, RegistryError> {
    credentials::erase(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_link_parses_rel_next() {
        assert_eq!(
            next_link("</v2/_catalog?last=b&n=2>; rel=\"next\""),
            Some("/v2/_catalog?last=b&n=2".to_string())
        );
        assert_eq!(
            next_link("<http://h:5000/v2/_catalog?last=b>; rel=\"next\""),
            Some("/v2/_catalog?last=b".to_string())
        );
        assert_eq!(next_link("</v2/x>; rel=\"prev\""), None);
    }

    #[test]
    fn retryable_statuses() {
        let s = |status| RegistryError::Status {
            host: "h".into(),
            what: "w".into(),
            status,
            code: None,
            message: None,
            retry_after: None,
        };
        assert!(s(500).is_retryable());
        assert!(s(503).is_retryable());
        assert!(s(429).is_retryable());
        assert!(!s(404).is_retryable());
        assert!(!s(400).is_retryable());
    }
}
