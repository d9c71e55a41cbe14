//! Path patterns: Go's `filepath.Match` syntax, plus the `**` of `.dockerignore` files.
//!
//! - `*` matches any run of characters except `/`, `?` one character except `/`;
//! - `[abc]`, `[a-z]`, `[^a-z]` match one character of (or not of) a set;
//! - `\` escapes the next character;
//! - only in `.dockerignore` patterns: `**` matches any number of directories (also none),
//!   and a trailing `**` matches everything below.

/// One element of a compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(char),
    /// `*`: any run of characters except `/`.
    AnyInSegment,
    /// `?`: one character except `/`.
    OneInSegment,
    /// `[...]`: one character in (or, negated, not in) the ranges.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
    /// A trailing `**`: anything, `/` included.
    AnyPath,
    /// `**` (or `**/`) before more pattern: any number of leading directories, each with its `/`.
    AnyDirs,
}

/// A compiled path pattern, matched against a whole slash-separated path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Glob {
    tokens: Vec<Token>,
}

/// Whether `text` has characters that make it a pattern rather than a plain path.
pub(crate) fn has_wildcards(text: &str) -> bool {
    text.contains(['*', '?', '[', '\\'])
}

impl Glob {
    /// Parses Go `filepath.Match` syntax (`**` is just two `*`).
    pub(crate) fn parse(text: &str) -> Result<Glob, String> {
        Ok(Glob {
            tokens: parse_tokens(text, false)?.0,
        })
    }

    /// Whether the whole of `path` matches.
    pub(crate) fn is_match(&self, path: &str) -> bool {
        let chars: Vec<char> = path.chars().collect();
        let mut memo = vec![None; (self.tokens.len() + 1) * (chars.len() + 1)];
        self.match_from(0, 0, &chars, &mut memo)
    }

    fn match_from(
        &self,
        token: usize,
        pos: usize,
        chars: &[char],
        memo: &mut [Option<bool>],
    ) -> bool {
        let slot = token * (chars.len() + 1) + pos;
        if let Some(known) = memo[slot] {
            return known;
        }
        let result = match self.tokens.get(token) {
            None => pos == chars.len(),
            Some(Token::AnyPath) => self.match_from(token + 1, chars.len(), chars, memo),
            Some(Token::AnyInSegment) => {
                // Try every length up to the next '/'.
                let mut end = pos;
                loop {
                    if self.match_from(token + 1, end, chars, memo) {
                        break true;
                    }
                    match chars.get(end) {
                        Some(&ch) if ch != '/' => end += 1,
                        _ => break false,
                    }
                }
            }
            Some(Token::AnyDirs) => {
                // Nothing, or anything that ends with a '/'.
                self.match_from(token + 1, pos, chars, memo)
                    || (pos..chars.len()).any(|slash| {
                        chars[slash] == '/' && self.match_from(token + 1, slash + 1, chars, memo)
                    })
            }
            Some(single) => match chars.get(pos) {
                Some(&ch) if single_matches(single, ch) => {
                    self.match_from(token + 1, pos + 1, chars, memo)
                }
                _ => false,
            },
        };
        memo[slot] = Some(result);
        result
    }
}

fn single_matches(token: &Token, ch: char) -> bool {
    match token {
        Token::Literal(literal) => *literal == ch,
        Token::OneInSegment => ch != '/',
        Token::Class { negated, ranges } => {
            ranges.iter().any(|&(low, high)| low <= ch && ch <= high) != *negated
        }
        Token::AnyInSegment | Token::AnyPath | Token::AnyDirs => false,
    }
}

/// How a `.dockerignore` pattern is matched. Docker picks the same shortcuts, and they are
/// part of its behaviour (`**file` matches `dir/myfile`, as a plain suffix test).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum IgnoreGlob {
    /// No wildcard: the path must be equal.
    Exact(String),
    /// `prefix**`: the path must start with `prefix`.
    Prefix(String),
    /// `**suffix` with no other wildcard: the path must end with `suffix` (or, when `suffix`
    /// starts with `/`, be the rest of it).
    Suffix(String),
    /// Anything else.
    Pattern(Glob),
}

impl IgnoreGlob {
    /// Parses a cleaned `.dockerignore` pattern (without its `!`).
    pub(crate) fn parse(text: &str) -> Result<IgnoreGlob, String> {
        let (tokens, kind) = parse_tokens(text, true)?;
        Ok(match kind {
            Kind::Exact => IgnoreGlob::Exact(text.to_string()),
            Kind::Prefix => IgnoreGlob::Prefix(text[..text.len() - 2].to_string()),
            Kind::Suffix => IgnoreGlob::Suffix(text[2..].to_string()),
            Kind::Pattern => IgnoreGlob::Pattern(Glob { tokens }),
        })
    }

    /// Whether `path` (cleaned, relative, slash-separated) matches.
    pub(crate) fn is_match(&self, path: &str) -> bool {
        match self {
            IgnoreGlob::Exact(exact) => path == exact,
            IgnoreGlob::Prefix(prefix) => path.starts_with(prefix.as_str()),
            IgnoreGlob::Suffix(suffix) => {
                path.ends_with(suffix.as_str())
                    || suffix.strip_prefix('/').is_some_and(|rest| path == rest)
            }
            IgnoreGlob::Pattern(glob) => glob.is_match(path),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Exact,
    Prefix,
    Suffix,
    Pattern,
}

fn parse_tokens(text: &str, double_star: bool) -> Result<(Vec<Token>, Kind), String> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut kind = Kind::Exact;
    let mut i = 0;
    while i < chars.len() {
        let first = i == 0;
        let ch = chars[i];
        i += 1;
        match ch {
            '*' if double_star && chars.get(i) == Some(&'*') => {
                i += 1;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                if i == chars.len() {
                    tokens.push(Token::AnyPath);
                    kind = if kind == Kind::Exact {
                        Kind::Prefix
                    } else {
                        Kind::Pattern
                    };
                } else {
                    tokens.push(Token::AnyDirs);
                    kind = Kind::Pattern;
                }
                if first {
                    kind = Kind::Suffix;
                }
            }
            '*' => {
                tokens.push(Token::AnyInSegment);
                kind = Kind::Pattern;
            }
            '?' => {
                tokens.push(Token::OneInSegment);
                kind = Kind::Pattern;
            }
            '\\' => {
                let escaped = *chars
                    .get(i)
                    .ok_or_else(|| "trailing '\\' escapes nothing".to_string())?;
                i += 1;
                tokens.push(Token::Literal(escaped));
                kind = Kind::Pattern;
            }
            '[' => {
                tokens.push(parse_class(&chars, &mut i)?);
                kind = Kind::Pattern;
            }
            ']' => {
                tokens.push(Token::Literal(']'));
                kind = Kind::Pattern;
            }
            other => tokens.push(Token::Literal(other)),
        }
    }
    Ok((tokens, kind))
}

/// Parses a `[...]` class; `i` is just past the `[`. The rules are Go's: the class is not
/// empty, `-` and `]` must be escaped where they would be a range end, `^` negates.
fn parse_class(chars: &[char], i: &mut usize) -> Result<Token, String> {
    let negated = chars.get(*i) == Some(&'^');
    if negated {
        *i += 1;
    }
    let mut ranges = Vec::new();
    loop {
        if chars.get(*i) == Some(&']') && !ranges.is_empty() {
            *i += 1;
            return Ok(Token::Class { negated, ranges });
        }
        let low = class_char(chars, i)?;
        let mut high = low;
        if chars.get(*i) == Some(&'-') {
            *i += 1;
            high = class_char(chars, i)?;
        }
        if high < low {
            return Err(format!("invalid range '{low}-{high}' in character class"));
        }
        ranges.push((low, high));
    }
}

fn class_char(chars: &[char], i: &mut usize) -> Result<char, String> {
    let ch = match chars.get(*i) {
        None => return Err("unterminated character class".to_string()),
        Some(&ch @ ('-' | ']')) => {
            return Err(format!("'{ch}' must be escaped in a character class"))
        }
        Some('\\') => {
            *i += 1;
            *chars
                .get(*i)
                .ok_or_else(|| "unterminated character class".to_string())?
        }
        Some(&ch) => ch,
    };
    *i += 1;
    Ok(ch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignore_glob_kinds() {
        assert!(matches!(
            IgnoreGlob::parse("abc.def"),
            Ok(IgnoreGlob::Exact(_))
        ));
        assert!(matches!(IgnoreGlob::parse("dir/**"), Ok(IgnoreGlob::Prefix(p)) if p == "dir/"));
        assert!(matches!(IgnoreGlob::parse("**/dir"), Ok(IgnoreGlob::Suffix(s)) if s == "/dir"));
        assert!(matches!(IgnoreGlob::parse("**"), Ok(IgnoreGlob::Suffix(s)) if s.is_empty()));
        assert!(matches!(
            IgnoreGlob::parse("**/dir2/*"),
            Ok(IgnoreGlob::Pattern(_))
        ));
        assert!(matches!(
            IgnoreGlob::parse("**/**"),
            Ok(IgnoreGlob::Pattern(_))
        ));
    }
}
