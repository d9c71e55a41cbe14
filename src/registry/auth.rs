//! Registry auth: `WWW-Authenticate` challenges, Basic auth and the Bearer token flow
//! (`realm?service=…&scope=repository:NAME:pull,push`).

use std::collections::BTreeMap;

/// An access scope a Bearer token is asked for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope(pub String);

impl Scope {
    /// `repository:NAME:pull`.
    pub fn pull(repo: &str) -> Scope {
        Scope(format!("repository:{repo}:pull"))
    }

    /// `repository:NAME:pull,push`.
    pub fn push(repo: &str) -> Scope {
        Scope(format!("repository:{repo}:pull,push"))
    }

    /// `registry:catalog:*`.
    pub fn catalog() -> Scope {
        Scope("registry:catalog:*".to_string())
    }
}

/// How the registry wants clients to authenticate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// No auth needed (`/v2/` answered 200).
    None,
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

/// Parses a `WWW-Authenticate` header value.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let params = parse_params(rest);
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic),
        "bearer" => Some(Challenge::Bearer {
            realm: params.get("realm")?.clone(),
            service: params.get("service").cloned(),
        }),
        _ => None,
    }
}

/// `key="value", key2=value2` (values may be quoted; quoted values may contain commas).
fn parse_params(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            value.push(n);
                        }
                    }
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek() {
                if *c == ',' {
                    break;
                }
                value.push(*c);
                chars.next();
            }
        }
        out.insert(key.trim().to_ascii_lowercase(), value.trim().to_string());
    }
    out
}

/// The token in a token server's JSON answer (`token` or `access_token`).
pub fn token_from_json(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Answer {
        token: Option<String>,
        access_token: Option<String>,
    }
    let a: Answer = serde_json::from_slice(body).ok()?;
    a.token
        .filter(|t| !t.is_empty())
        .or(a.access_token.filter(|t| !t.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenge() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull,push""#,
        );
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into())
            })
        );
    }

    #[test]
    fn basic_challenge() {
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Negotiate"), None);
        assert_eq!(parse_challenge("Bearer service=x"), None);
    }

    #[test]
    fn token_answers() {
        assert_eq!(token_from_json(br#"{"token":"a"}"#), Some("a".into()));
        assert_eq!(
            token_from_json(br#"{"token":"","access_token":"b"}"#),
            Some("b".into())
        );
        assert_eq!(token_from_json(b"{}"), None);
    }
}
