//! Splits a template into text and the tokens of its actions, Go's lexical rules: `{{- ` and
//! ` -}}` trim the whitespace next to them, `{{/* */}}` is a comment, `}}` inside a quoted
//! string does not end an action.

use super::TemplateError;

#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    Text(String),
    Open,
    Close,
    /// `.Name` (one segment; `.A.B` is two tokens with no space between them)
    Field(String),
    Dot,
    /// `$name`, or `$` alone
    Var(String),
    Ident(String),
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Nil,
    Pipe,
    LParen,
    RParen,
    Declare,
    Assign,
    Comma,
}

#[derive(Debug, Clone)]
pub struct Token {
    pub tok: Tok,
    /// byte offset in the template
    pub pos: usize,
    /// byte offset just after the token
    pub end: usize,
    /// whitespace came right before it (`.A .B` are two operands, `.A.B` one chain)
    pub space_before: bool,
}

/// 1-based line of byte offset `pos`.
pub fn line_of(src: &str, pos: usize) -> usize {
    src[..pos.min(src.len())].matches('\n').count() + 1
}

fn parse_err(src: &str, pos: usize, msg: impl Into<String>) -> TemplateError {
    TemplateError::Parse {
        line: line_of(src, pos),
        msg: msg.into(),
    }
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80
}

pub fn lex(src: &str) -> Result<Vec<Token>, TemplateError> {
    let b = src.as_bytes();
    let mut toks: Vec<Token> = Vec::new();
    let mut i = 0;
    let mut trim_next_text = false;
    while i < b.len() {
        let open = src[i..].find("{{").map_or(b.len(), |o| i + o);
        let mut text = &src[i..open];
        if trim_next_text {
            text = text.trim_start_matches(|c: char| c.is_ascii_whitespace());
        }
        // `{{- ` trims the text before it
        let trim_left =
            b.get(open + 2) == Some(&b'-') && b.get(open + 3).is_some_and(|&c| is_space(c));
        if trim_left {
            text = text.trim_end_matches(|c: char| c.is_ascii_whitespace());
        }
        if !text.is_empty() {
            toks.push(Token {
                tok: Tok::Text(text.to_string()),
                pos: i,
                end: open,
                space_before: false,
            });
        }
        if open >= b.len() {
            break;
        }
        let mut j = open + 2 + if trim_left { 2 } else { 0 };
        // A comment: `{{/*` right after the delimiter (or its trim marker), `*/}}` at its end.
        if src[j..].starts_with("/*") {
            let Some(close) = src[j + 2..].find("*/") else {
                return Err(parse_err(src, open, "unclosed comment"));
            };
            let mut k = j + 2 + close + 2;
            let mut trim_right = false;
            if src[k..].starts_with(" -}}") {
                trim_right = true;
                k += 1;
            }
            if !src[k..].starts_with("}}") && !src[k..].starts_with("-}}") {
                return Err(parse_err(
                    src,
                    open,
                    "comment ends before closing delimiter",
                ));
            }
            k += if src[k..].starts_with('-') { 3 } else { 2 };
            trim_next_text = trim_right;
            i = k;
            continue;
        }
        toks.push(Token {
            tok: Tok::Open,
            pos: open,
            end: j,
            space_before: false,
        });
        let (next, trim_right) = lex_action(src, open, &mut j, &mut toks)?;
        trim_next_text = trim_right;
        i = next;
    }
    Ok(toks)
}

/// Lexes one action from `*j` (just after `{{`); returns the offset after `}}` and whether it
/// was `-}}`.
fn lex_action(
    src: &str,
    open: usize,
    j: &mut usize,
    toks: &mut Vec<Token>,
) -> Result<(usize, bool), TemplateError> {
    let b = src.as_bytes();
    let mut space = false;
    loop {
        let start = *j;
        let Some(&c) = b.get(start) else {
            return Err(parse_err(src, open, "unclosed action"));
        };
        if is_space(c) {
            if src[start..]
                .trim_start_matches(|c: char| c.is_ascii_whitespace())
                .starts_with("-}}")
            {
                let k = start + src[start..].find("-}}").unwrap_or(0);
                toks.push(Token {
                    tok: Tok::Close,
                    pos: k,
                    end: k + 3,
                    space_before: true,
                });
                return Ok((k + 3, true));
            }
            *j += 1;
            space = true;
            continue;
        }
        if src[start..].starts_with("}}") {
            toks.push(Token {
                tok: Tok::Close,
                pos: start,
                end: start + 2,
                space_before: space,
            });
            return Ok((start + 2, false));
        }
        let tok = match c {
            b'|' => {
                *j += 1;
                Tok::Pipe
            }
            b'(' => {
                *j += 1;
                Tok::LParen
            }
            b')' => {
                *j += 1;
                Tok::RParen
            }
            b',' => {
                *j += 1;
                Tok::Comma
            }
            b'=' => {
                *j += 1;
                Tok::Assign
            }
            b':' if b.get(start + 1) == Some(&b'=') => {
                *j += 2;
                Tok::Declare
            }
            b'"' => Tok::Str(quoted(src, j)?),
            b'`' => {
                let Some(end) = src[start + 1..].find('`') else {
                    return Err(parse_err(src, start, "unterminated raw quoted string"));
                };
                *j = start + 1 + end + 1;
                Tok::Str(src[start + 1..start + 1 + end].to_string())
            }
            b'\'' => char_constant(src, j)?,
            b'.' if b
                .get(start + 1)
                .is_some_and(|&c| is_word(c) && !c.is_ascii_digit()) =>
            {
                *j = word_end(b, start + 1);
                Tok::Field(src[start + 1..*j].to_string())
            }
            b'.' if !b.get(start + 1).is_some_and(u8::is_ascii_digit) => {
                *j += 1;
                Tok::Dot
            }
            b'$' => {
                *j = word_end(b, start + 1);
                Tok::Var(src[start..*j].to_string())
            }
            b'0'..=b'9' | b'-' | b'+' | b'.' => number(src, j)?,
            c if is_word(c) => {
                *j = word_end(b, start);
                match &src[start..*j] {
                    "true" => Tok::Bool(true),
                    "false" => Tok::Bool(false),
                    "nil" => Tok::Nil,
                    w => Tok::Ident(w.to_string()),
                }
            }
            _ => {
                let ch = src[start..].chars().next().unwrap_or('?');
                return Err(parse_err(
                    src,
                    start,
                    format!("unexpected {ch:?} in command"),
                ));
            }
        };
        toks.push(Token {
            tok,
            pos: start,
            end: *j,
            space_before: space,
        });
        space = false;
    }
}

fn word_end(b: &[u8], mut k: usize) -> usize {
    while b.get(k).is_some_and(|&c| is_word(c)) {
        k += 1;
    }
    k
}

/// A `"..."` string with Go's escapes; `*j` is at the opening quote.
fn quoted(src: &str, j: &mut usize) -> Result<String, TemplateError> {
    let start = *j;
    let mut out = String::new();
    let mut chars = src[start + 1..].char_indices();
    while let Some((k, c)) = chars.next() {
        match c {
            '"' => {
                *j = start + 1 + k + 1;
                return Ok(out);
            }
            '\n' => break,
            '\\' => {
                let Some((_, e)) = chars.next() else { break };
                match escape(e, &mut chars) {
                    Some(d) => out.push(d),
                    None => {
                        return Err(parse_err(
                            src,
                            start,
                            format!("invalid syntax in quoted string: \\{e}"),
                        ))
                    }
                }
            }
            c => out.push(c),
        }
    }
    Err(parse_err(src, start, "unterminated quoted string"))
}

/// Go's escape after a backslash (`\n`, `\x41`, `\u00e9`, …); `chars` is just after `e`.
fn escape(e: char, chars: &mut std::str::CharIndices) -> Option<char> {
    let mut hex = |n: usize| {
        let digits: String = chars.by_ref().take(n).map(|(_, c)| c).collect();
        u32::from_str_radix(&digits, 16)
            .ok()
            .and_then(char::from_u32)
    };
    match e {
        'n' => Some('\n'),
        't' => Some('\t'),
        'r' => Some('\r'),
        'a' => Some('\x07'),
        'b' => Some('\x08'),
        'f' => Some('\x0c'),
        'v' => Some('\x0b'),
        '0' => Some('\0'),
        '\\' | '"' | '\'' => Some(e),
        'x' => hex(2),
        'u' => hex(4),
        'U' => hex(8),
        _ => None,
    }
}

/// `'a'`: a character constant is its code point, as in Go.
fn char_constant(src: &str, j: &mut usize) -> Result<Tok, TemplateError> {
    let start = *j;
    let rest = &src[start + 1..];
    let mut it = rest.char_indices();
    let c = match it.next() {
        Some((_, '\\')) => it.next().and_then(|(_, e)| escape(e, &mut it)),
        Some((_, c)) => Some(c),
        None => None,
    };
    let after = it.next().map_or(rest.len(), |(k, _)| k);
    let (Some(c), true) = (c, rest[after..].starts_with('\'')) else {
        return Err(parse_err(src, start, "unterminated character constant"));
    };
    *j = start + 1 + after + 1;
    Ok(Tok::Int(c as i64))
}

/// An integer (decimal, `0x`, `0o`, `0b`, with `_`) or a float.
fn number(src: &str, j: &mut usize) -> Result<Tok, TemplateError> {
    let b = src.as_bytes();
    let start = *j;
    let mut k = start;
    if matches!(b.get(k), Some(b'+' | b'-')) {
        k += 1;
    }
    while b.get(k).is_some_and(|&c| {
        c.is_ascii_alphanumeric()
            || c == b'_'
            || c == b'.'
            || ((c == b'+' || c == b'-') && matches!(b[k - 1], b'e' | b'E' | b'p' | b'P'))
    }) {
        k += 1;
    }
    *j = k;
    let text = &src[start..k];
    let clean = text.replace('_', "");
    let (neg, digits) = match clean.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, clean.strip_prefix('+').unwrap_or(&clean)),
    };
    let radix = [
        ("0x", 16),
        ("0X", 16),
        ("0o", 8),
        ("0O", 8),
        ("0b", 2),
        ("0B", 2),
    ]
    .iter()
    .find_map(|(p, r)| digits.strip_prefix(p).map(|d| (d, *r)));
    let int = match radix {
        Some((d, r)) => i64::from_str_radix(d, r).ok(),
        None => digits.parse::<i64>().ok(),
    };
    if let Some(i) = int {
        return Ok(Tok::Int(if neg { -i } else { i }));
    }
    match clean.parse::<f64>() {
        Ok(f) if radix.is_none() => Ok(Tok::Float(f)),
        _ => Err(parse_err(
            src,
            start,
            format!("bad number syntax: {text:?}"),
        )),
    }
}
