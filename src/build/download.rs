//! `ADD http(s)://…`: a remote file downloaded into the store's temp dir while hashed.
//!
//! Rules (docker's): the file is named by the URL's last path segment (`__unnamed__` when
//! there is none), is never extracted, gets mode 0600 and the `Last-Modified` time when the
//! server sends one; `--checksum=sha256:<hex>` must match the content.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::archive::progress::{Counted, Event, Progress};
use crate::image::digest::{Digest, Hasher};

/// Errors of a download.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error("creating the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    #[error("{0}")]
    Config(String),
    #[error("downloading {url}: {source}")]
    Request {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("downloading {url}: the server answered {status}")]
    Status { url: String, status: String },
    #[error("downloading {url}: {source}")]
    Read {
        url: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid --checksum {0:?}: expected sha256:<64 hex digits>")]
    BadChecksum(String),
    #[error("{url}: checksum mismatch: expected {expected}, got {actual}")]
    Mismatch {
        url: String,
        expected: Digest,
        actual: Digest,
    },
}

/// A downloaded file, kept in a temp dir until staged.
#[derive(Debug)]
pub(crate) struct Downloaded {
    /// The name docker gives it: the URL's last path segment.
    pub name: String,
    /// Where the content is on disk (inside the temp dir `dir`).
    pub path: PathBuf,
    pub digest: Digest,
    /// Seconds since the epoch from `Last-Modified`, if the server sent a valid one.
    pub last_modified: Option<i64>,
    /// The response's `ETag` and `Last-Modified` headers, as sent.
    pub validators: (Option<String>, Option<String>),
    /// The server said the file did not change since `previous` (the content is that one).
    pub not_modified: bool,
    /// Keeps `path` alive.
    pub _dir: tempfile::TempDir,
}

/// What an earlier download of the same URL left: its validators, and its content on disk.
#[derive(Debug)]
pub(crate) struct Previous<'a> {
    pub record: &'a crate::store::DownloadRecord,
    pub content: PathBuf,
}

/// Whether an ADD source is a URL this module downloads.
pub(crate) fn is_http(src: &str) -> bool {
    src.starts_with("http://") || src.starts_with("https://")
}

/// Parses `--checksum`: only `sha256:<hex>` is supported.
pub(crate) fn parse_checksum(s: &str) -> Result<Digest, DownloadError> {
    s.strip_prefix("sha256:")
        .and_then(|hex| Digest::from_hex(&hex.to_ascii_lowercase()).ok())
        .ok_or_else(|| DownloadError::BadChecksum(s.to_string()))
}

/// The file name docker gives a download of `url`: the last segment of the URL's path
/// (percent-decoded), or `__unnamed__` when the path has none.
pub(crate) fn file_name(url: &str) -> String {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let rest = rest.split(['?', '#']).next().unwrap_or("");
    let path = rest.find('/').map(|i| &rest[i..]).unwrap_or("");
    let decoded = percent_decode(path);
    match decoded.trim_end_matches('/').rsplit('/').next() {
        Some(base) if !base.is_empty() && base != "." && base != ".." => base.to_string(),
        _ => "__unnamed__".to_string(),
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Downloads `url` into `dir` (a fresh temp dir, kept in the result), hashing it; checks
/// it against `expected` when given. With `previous`, the request is conditional
/// (`If-None-Match`, `If-Modified-Since`) and a `304 Not Modified` answer copies the previous
/// content instead. Fails on a connection error, another non-2xx status or a checksum
/// mismatch. The body's bytes are reported to `progress` as they arrive (named by `url`),
/// and its end once it is all on disk.
pub(crate) fn download(
    url: &str,
    dir: tempfile::TempDir,
    expected: Option<&Digest>,
    previous: Option<Previous<'_>>,
    progress: Progress<'_>,
) -> Result<Downloaded, DownloadError> {
    let timeouts = crate::registry::timeouts::Timeouts::from_env()
        .map_err(|e| DownloadError::Config(e.to_string()))?;
    let client = timeouts
        .client_builder()
        .build()
        .map_err(DownloadError::Client)?;
    let mut request = client.get(url);
    if let Some(p) = &previous {
        if let Some(etag) = &p.record.etag {
            request = request.header(reqwest::header::IF_NONE_MATCH, etag);
        }
        if let Some(modified) = &p.record.last_modified {
            request = request.header(reqwest::header::IF_MODIFIED_SINCE, modified);
        }
    }
    let response = request.send().map_err(|source| DownloadError::Request {
        url: url.to_string(),
        source,
    })?;
    let status = response.status();
    let header = |name| {
        response
            .headers()
            .get(name)
            .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
            .map(str::to_string)
    };
    let validators = (
        header(reqwest::header::ETAG),
        header(reqwest::header::LAST_MODIFIED),
    );
    let path = dir.path().join("download");
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| DownloadError::Io { path, source }
    };
    if let (reqwest::StatusCode::NOT_MODIFIED, Some(p)) = (status, &previous) {
        // A copy, not a link: the staged file gets its own mode and mtime.
        fs::copy(&p.content, &path).map_err(io(&p.content))?;
        let digest = p.record.digest.clone();
        check(url, expected, &digest)?;
        return Ok(Downloaded {
            name: file_name(url),
            path,
            last_modified: parse_http_date(p.record.last_modified.as_deref()),
            digest,
            validators: (p.record.etag.clone(), p.record.last_modified.clone()),
            not_modified: true,
            _dir: dir,
        });
    }
    if !status.is_success() {
        return Err(DownloadError::Status {
            url: url.to_string(),
            status: status.to_string(),
        });
    }
    let last_modified = parse_http_date(validators.1.as_deref());
    let mut file = fs::File::create(&path).map_err(io(&path))?;
    let total = response.content_length();
    let mut response = Counted::new(response, url, total, progress);
    let mut hasher = Hasher::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match response.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(DownloadError::Read {
                    url: url.to_string(),
                    source,
                })
            }
        };
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n]).map_err(io(&path))?;
    }
    file.flush().map_err(io(&path))?;
    drop(file);
    progress(Event::Done { id: url });
    let digest = hasher.finish();
    check(url, expected, &digest)?;
    Ok(Downloaded {
        name: file_name(url),
        path,
        digest,
        last_modified,
        validators,
        not_modified: false,
        _dir: dir,
    })
}

/// Seconds since the epoch of an HTTP date (`Last-Modified`), if it is one.
fn parse_http_date(value: Option<&str>) -> Option<i64> {
    value
        .and_then(|v| chrono::DateTime::parse_from_rfc2822(v.trim()).ok())
        .map(|t| t.timestamp())
}

/// `--checksum`: the content must have the expected digest.
fn check(url: &str, expected: Option<&Digest>, actual: &Digest) -> Result<(), DownloadError> {
    match expected {
        Some(expected) if expected != actual => Err(DownloadError::Mismatch {
            url: url.to_string(),
            expected: expected.clone(),
            actual: actual.clone(),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_last_path_segment() {
        assert_eq!(
            file_name("https://example.com/a/b/tool.tar.gz"),
            "tool.tar.gz"
        );
        assert_eq!(file_name("http://example.com/x/file?v=1#frag"), "file");
        assert_eq!(file_name("http://example.com/dir/"), "dir");
        assert_eq!(file_name("http://example.com/my%20file"), "my file");
        assert_eq!(file_name("http://example.com"), "__unnamed__");
        assert_eq!(file_name("http://example.com/"), "__unnamed__");
    }

    #[test]
    fn checksums_are_sha256_hex() {
        let hex = "a".repeat(64);
        assert_eq!(parse_checksum(&format!("sha256:{hex}")).unwrap().hex(), hex);
        assert!(parse_checksum("sha256:abc").is_err());
        assert!(parse_checksum(&format!("md5:{hex}")).is_err());
    }
}
