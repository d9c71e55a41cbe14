//! Docker image references: parse, normalise, and show in familiar form.
//!
//! `busybox` is `docker.io/library/busybox:latest` in full form and `busybox:latest` in
//! familiar form; `localhost:5000/app:v1` stays as written. [`Reference::parse`] applies
//! docker's rules (lowercase path components, domain detection, default tag `latest`).
//!
//! ```
//! use rbuild::image::reference::Reference;
//! let r = Reference::parse("busybox").unwrap();
//! assert_eq!(r.to_string(), "docker.io/library/busybox:latest");
//! assert_eq!(r.familiar(), "busybox:latest");
//! ```

use std::fmt;

use super::digest::Digest;

/// The registry that references without a domain point at.
pub const DEFAULT_DOMAIN: &str = "docker.io";

/// Docker Hub's old registry name, read as [`DEFAULT_DOMAIN`].
pub const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
/// The tag used when a reference names none.
pub const DEFAULT_TAG: &str = "latest";

/// A parsed, normalised image reference: `domain/path[:tag][@digest]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    /// Registry host, with port if any (`docker.io`, `localhost:5000`).
    pub domain: String,
    /// Repository path inside the registry (`library/busybox`).
    pub path: String,
    /// Tag; `latest` when the input named neither tag nor digest.
    pub tag: Option<String>,
    /// Digest, when the input had `@sha256:…`.
    pub digest: Option<Digest>,
}

/// Why a string is not an image reference.
#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    #[error("invalid reference format: {0:?} is empty")]
    Empty(String),
    #[error("invalid reference format: repository name {0:?} must be lowercase")]
    Uppercase(String),
    #[error("invalid reference format: {0:?}")]
    Invalid(String),
    #[error("invalid reference format: tag {tag:?} in {input:?}")]
    Tag { input: String, tag: String },
    #[error(transparent)]
    Digest(#[from] super::digest::DigestError),
}

impl Reference {
    /// Parses and normalises `s` (adds `docker.io`, `library/` and `:latest` as docker does).
    pub fn parse(s: &str) -> Result<Reference, ReferenceError> {
        let mut r = Reference::parse_no_default_tag(s)?;
        if r.tag.is_none() && r.digest.is_none() {
            r.tag = Some(DEFAULT_TAG.to_string());
        }
        Ok(r)
    }

    /// Like [`Reference::parse`] but leaves `tag` empty when the input names none.
    pub fn parse_no_default_tag(s: &str) -> Result<Reference, ReferenceError> {
        if s.is_empty() {
            return Err(ReferenceError::Empty(s.to_string()));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((a, d)) => (a, Some(Digest::parse(d)?)),
            None => (s, None),
        };
        let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (
                &rest[..last_slash + i],
                Some(rest[last_slash + i + 1..].to_string()),
            ),
            None => (rest, None),
        };
        if let Some(t) = &tag {
            if !valid_tag(t) {
                return Err(ReferenceError::Tag {
                    input: s.to_string(),
                    tag: t.clone(),
                });
            }
        }
        if name.is_empty() {
            return Err(ReferenceError::Empty(s.to_string()));
        }
        let (domain, path) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), rest.to_string())
            }
            _ => (DEFAULT_DOMAIN.to_string(), name.to_string()),
        };
        // Docker Hub's legacy name is Docker Hub (docker's `normalize`): `index.docker.io/busybox`
        // is `docker.io/library/busybox`, `busybox` for short.
        let domain = if domain == LEGACY_DEFAULT_DOMAIN {
            DEFAULT_DOMAIN.to_string()
        } else {
            domain
        };
        if !valid_domain(&domain) {
            return Err(ReferenceError::Invalid(s.to_string()));
        }
        let path = if domain == DEFAULT_DOMAIN && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        if path.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(ReferenceError::Uppercase(s.to_string()));
        }
        if !path.split('/').all(valid_component) {
            return Err(ReferenceError::Invalid(s.to_string()));
        }
        Ok(Reference {
            domain,
            path,
            tag,
            digest,
        })
    }

    /// `domain/path` (`docker.io/library/busybox`).
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The repository as docker shows it (`busybox`, `user/app`, `localhost:5000/app`).
    pub fn familiar_name(&self) -> String {
        if self.domain == DEFAULT_DOMAIN {
            self.path
                .strip_prefix("library/")
                .filter(|p| !p.contains('/'))
                .unwrap_or(&self.path)
                .to_string()
        } else {
            self.name()
        }
    }

    /// Familiar form with tag and digest (`busybox:latest`).
    pub fn familiar(&self) -> String {
        let mut s = self.familiar_name();
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(&d.to_string());
        }
        s
    }

    /// What a registry's manifest endpoint is asked for: the digest when there is one, else
    /// the tag (`latest` when there is none).
    pub fn manifest_ref(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_string(),
        }
    }

    /// The same reference with a different tag and no digest.
    pub fn with_tag(&self, tag: &str) -> Reference {
        Reference {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        }
    }
}

impl fmt::Display for Reference {
    /// Full form: `docker.io/library/busybox:latest`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Reference, ReferenceError> {
        Reference::parse(s)
    }
}

fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

fn valid_domain(d: &str) -> bool {
    let host = match d.rsplit_once(':') {
        Some((h, port)) if !port.is_empty() && port.bytes().all(|c| c.is_ascii_digit()) => h,
        Some(_) => return false,
        None => d,
    };
    !host.is_empty()
        && host
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'[' | b']' | b':'))
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric() {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !(b[i].is_ascii_lowercase() || b[i].is_ascii_digit()) {
            i += 1;
        }
        let sep = &c_str(b, start, i);
        let ok = matches!(sep.as_str(), "." | "_" | "__") || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn c_str(b: &[u8], start: usize, end: usize) -> String {
    String::from_utf8_lossy(&b[start..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_like_docker() {
        let cases = [
            (
                "busybox",
                "docker.io/library/busybox:latest",
                "busybox:latest",
            ),
            (
                "busybox:1.36",
                "docker.io/library/busybox:1.36",
                "busybox:1.36",
            ),
            ("user/app", "docker.io/user/app:latest", "user/app:latest"),
            (
                "docker.io/library/alpine:3",
                "docker.io/library/alpine:3",
                "alpine:3",
            ),
            ("localhost/x", "localhost/x:latest", "localhost/x:latest"),
            (
                "localhost:5000/a/b:v1",
                "localhost:5000/a/b:v1",
                "localhost:5000/a/b:v1",
            ),
            (
                "quay.io/org/img:tag_1.0-rc",
                "quay.io/org/img:tag_1.0-rc",
                "quay.io/org/img:tag_1.0-rc",
            ),
            (
                "my-app__x.y",
                "docker.io/library/my-app__x.y:latest",
                "my-app__x.y:latest",
            ),
            // Regression: Docker Hub's legacy host name is Docker Hub.
            (
                "index.docker.io/busybox:2",
                "docker.io/library/busybox:2",
                "busybox:2",
            ),
            (
                "index.docker.io/user/app",
                "docker.io/user/app:latest",
                "user/app:latest",
            ),
        ];
        for (input, full, familiar) in cases {
            let r = Reference::parse(input).unwrap();
            assert_eq!(r.to_string(), full, "{input}");
            assert_eq!(r.familiar(), familiar, "{input}");
            assert_eq!(Reference::parse(full).unwrap(), r);
        }
    }

    #[test]
    fn digest_references_have_no_default_tag() {
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let r = Reference::parse(&format!("busybox@{d}")).unwrap();
        assert_eq!(r.tag, None);
        assert_eq!(r.familiar(), format!("busybox@{d}"));
    }

    #[test]
    fn rejects_bad_references() {
        for bad in [
            "",
            "Busybox",
            "a//b",
            "-a",
            "a:",
            "a:-x",
            "a@sha256:12",
            "a b",
            "a/",
            ":tag",
            "x/.y",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
