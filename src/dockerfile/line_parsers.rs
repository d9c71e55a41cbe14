//! Splitting one logical line into keyword, flags and arguments, the way BuildKit's
//! `parser/line_parsers.go` does for each instruction:
//!
//! | instructions | arguments |
//! |---|---|
//! | RUN, CMD, ENTRYPOINT, SHELL | JSON array (exec form), else the whole rest as one string |
//! | COPY, ADD, VOLUME | JSON array, else split on white space |
//! | FROM, EXPOSE | split on white space |
//! | ENV, LABEL | `key value sep` triples: `name value ""` (old form) or `name value "="` per word |
//! | ARG | words (quote-aware), `name=value` kept whole |
//! | MAINTAINER, USER, WORKDIR, STOPSIGNAL | the rest as one string |
//! | HEALTHCHECK | the type word, then the rest as for CMD |
//! | ONBUILD | a nested instruction |
//!
//! Nothing is expanded or unquoted here (except flags, which BuildKit unquotes). Invalid JSON
//! falls back to the non-JSON form; valid JSON that is not an array of strings is an error.
//! Positions in the results are byte offsets into the line given.

use super::error::ErrorKind;

/// A line split into its parts. Offsets are relative to the text passed to [`node_from_line`].
#[derive(Debug, Clone)]
pub(crate) struct RawNode {
    /// Lowercase keyword.
    pub keyword: String,
    /// Offset of the keyword.
    pub start: usize,
    /// Offset just past the line's last non-blank character.
    pub end: usize,
    /// Flags as (text, start, end).
    pub flags: Vec<(String, usize, usize)>,
    pub args: Vec<String>,
    /// Offset where the arguments start.
    pub args_start: usize,
    pub json: bool,
    pub child: Option<Box<RawNode>>,
}

/// The instructions BuildKit knows, lowercase.
pub const KEYWORDS: &[&str] = &[
    "add",
    "arg",
    "cmd",
    "copy",
    "entrypoint",
    "env",
    "expose",
    "from",
    "healthcheck",
    "label",
    "maintainer",
    "onbuild",
    "run",
    "shell",
    "stopsignal",
    "user",
    "volume",
    "workdir",
];

/// True for a keyword in [`KEYWORDS`].
pub fn is_known_keyword(keyword: &str) -> bool {
    KEYWORDS.contains(&keyword)
}

/// BuildKit's `reWhitespace`: `[\t\v\f\r ]`.
fn is_split_space(c: char) -> bool {
    matches!(c, '\t' | '\x0B' | '\x0C' | '\r' | ' ')
}

/// Splits `text[start..]` into a node. Errors carry the offset they refer to.
pub(crate) fn node_from_line(
    text: &str,
    start: usize,
    escape: char,
) -> Result<RawNode, (usize, ErrorKind)> {
    let line = &text[start..];
    let lead = line.len() - line.trim_start().len();
    let trimmed = line.trim();
    let cmd_len = trimmed.find(is_split_space).unwrap_or(trimmed.len());
    let keyword_start = start + lead;
    let end = keyword_start + trimmed.len();
    let cmd = &trimmed[..cmd_len];
    let after_cmd = &trimmed[cmd_len..];
    let rest_lead = after_cmd.len() - after_cmd.trim_start_matches(is_split_space).len();
    let rest_start = keyword_start + cmd_len + rest_lead;
    let rest = &text[rest_start..end];

    let (args_offset, flags) = if rest.is_empty() {
        (0, Vec::new())
    } else {
        extract_builder_flags(rest)
    };
    let flags = flags
        .into_iter()
        .map(|(t, s, e)| (t, rest_start + s, rest_start + e))
        .collect();
    let args_raw = &rest[args_offset..];
    let args_str = args_raw.trim();
    let args_start = rest_start + args_offset + (args_raw.len() - args_raw.trim_start().len());

    let keyword = cmd.to_ascii_lowercase();
    let mut node = RawNode {
        keyword,
        start: keyword_start,
        end,
        flags,
        args: Vec::new(),
        args_start,
        json: false,
        child: None,
    };
    let at_args = |kind| (args_start, kind);
    match node.keyword.as_str() {
        "add" | "copy" | "volume" => {
            (node.args, node.json) = maybe_json_to_list(args_str).map_err(at_args)?;
        }
        "arg" => node.args = parse_words(args_str, escape),
        "cmd" | "entrypoint" | "run" | "shell" => {
            (node.args, node.json) = maybe_json(args_str).map_err(at_args)?;
        }
        "env" => node.args = name_val(args_str, "ENV", escape).map_err(at_args)?,
        "label" => node.args = name_val(args_str, "LABEL", escape).map_err(at_args)?,
        "expose" | "from" => node.args = whitespace_delimited(args_str),
        "healthcheck" => (node.args, node.json) = health_config(args_str).map_err(at_args)?,
        "maintainer" | "stopsignal" | "user" | "workdir" => {
            if !args_str.is_empty() {
                node.args = vec![args_str.to_string()];
            }
        }
        "onbuild" => {
            if !args_str.is_empty() {
                node.child = Some(Box::new(node_from_line(text, args_start, escape)?));
            }
        }
        // Unknown instructions are kept (BuildKit ignores them at this stage); the typed
        // step reports them. The raw rest is kept as the only argument.
        _ => node.args = vec![args_str.to_string()],
    }
    Ok(node)
}

/// BuildKit's `extractBuilderFlags`: leading `--flag[=value]` words, quotes and `\` escapes
/// removed. Returns the offset where the arguments start and the flags with their ranges.
pub(crate) fn extract_builder_flags(line: &str) -> (usize, Vec<(String, usize, usize)>) {
    // Fast path: most instructions have no flags.
    let trimmed = line.trim_start();
    if !trimmed.starts_with("--") {
        return (line.len() - trimmed.len(), Vec::new());
    }
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    let n = chars.len();
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut word_start = 0;
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut i = 0;
    while i <= n {
        let at_end = i == n;
        let (bpos, mut ch) = if at_end { (line.len(), '\0') } else { chars[i] };
        if phase == Phase::Spaces {
            if at_end {
                break;
            }
            if ch.is_whitespace() {
                i += 1;
                continue;
            }
            if ch != '-' || i + 1 == n || chars[i + 1].1 != '-' {
                return (bpos, words);
            }
            phase = Phase::Word;
            word_start = bpos;
        }
        if at_end {
            if word != "--" && (blank_ok || !word.is_empty()) {
                words.push((std::mem::take(&mut word), word_start, line.len()));
            }
            break;
        }
        if phase == Phase::Word {
            if ch.is_whitespace() {
                phase = Phase::Spaces;
                if word == "--" {
                    return (bpos, words);
                }
                if blank_ok || !word.is_empty() {
                    words.push((std::mem::take(&mut word), word_start, bpos));
                }
                word.clear();
                blank_ok = false;
                i += 1;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
                i += 1;
                continue;
            }
            if ch == '\\' {
                if i + 1 == n {
                    i += 1;
                    continue;
                }
                i += 1;
                ch = chars[i].1;
            }
            word.push(ch);
            i += 1;
            continue;
        }
        // Phase::Quote
        if ch == quote {
            phase = Phase::Word;
            i += 1;
            continue;
        }
        if ch == '\\' {
            if i + 1 == n {
                phase = Phase::Word;
                i += 1;
                continue;
            }
            i += 1;
            ch = chars[i].1;
        }
        word.push(ch);
        i += 1;
    }
    (line.len(), words)
}

/// BuildKit's `parseWords`: split on white space outside quotes; quotes and escapes are kept.
pub(crate) fn parse_words(rest: &str, escape: char) -> Vec<String> {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut chars = rest.chars().peekable();
    loop {
        let Some(mut ch) = chars.next() else {
            if phase != Phase::Spaces && (blank_ok || !word.is_empty()) {
                words.push(word);
            }
            break;
        };
        if phase == Phase::Spaces {
            if ch.is_whitespace() {
                continue;
            }
            phase = Phase::Word;
        }
        if phase == Phase::Word {
            if ch.is_whitespace() {
                phase = Phase::Spaces;
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                blank_ok = false;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
            }
            if ch == escape {
                let Some(next) = chars.next() else {
                    continue; // an escape at the end of the line is dropped
                };
                word.push(ch);
                ch = next;
            }
            word.push(ch);
            continue;
        }
        // Phase::Quote
        if ch == quote {
            phase = Phase::Word;
        }
        if ch == escape && quote != '\'' {
            let Some(next) = chars.next() else {
                phase = Phase::Word;
                continue;
            };
            word.push(ch);
            ch = next;
        }
        word.push(ch);
    }
    words
}

/// Exec form: `Ok(Some(args))` for a JSON array of strings, `Ok(None)` when `rest` is not JSON
/// at all, an error for valid JSON of another shape.
pub(crate) fn parse_json(rest: &str) -> Result<Option<Vec<String>>, ErrorKind> {
    let rest = rest.trim_start();
    if !rest.starts_with('[') {
        return Ok(None);
    }
    let Ok(value) = serde_json::from_str::<Vec<serde_json::Value>>(rest) else {
        return Ok(None);
    };
    value
        .into_iter()
        .map(|v| match v {
            serde_json::Value::String(s) => Ok(s),
            _ => Err(ErrorKind::NotStringArray),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn maybe_json(rest: &str) -> Result<(Vec<String>, bool), ErrorKind> {
    if rest.is_empty() {
        return Ok((Vec::new(), false));
    }
    Ok(match parse_json(rest)? {
        Some(args) => (args, true),
        None => (vec![rest.to_string()], false),
    })
}

fn maybe_json_to_list(rest: &str) -> Result<(Vec<String>, bool), ErrorKind> {
    Ok(match parse_json(rest)? {
        Some(args) => (args, true),
        None => (whitespace_delimited(rest), false),
    })
}

fn whitespace_delimited(rest: &str) -> Vec<String> {
    if rest.is_empty() {
        return Vec::new();
    }
    rest.split(is_split_space)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// ENV and LABEL: `name value` (one pair, separator "") or `name=value ...` (separator "=").
fn name_val(rest: &str, instruction: &str, escape: char) -> Result<Vec<String>, ErrorKind> {
    let words = parse_words(rest, escape);
    if words.is_empty() {
        return Ok(Vec::new());
    }
    if !words[0].contains('=') {
        let Some(split) = rest.find(is_split_space) else {
            return Err(ErrorKind::Invalid(format!(
                "{instruction} must have two arguments"
            )));
        };
        let value = rest[split..].trim_start_matches(is_split_space);
        return Ok(vec![
            rest[..split].to_string(),
            value.to_string(),
            String::new(),
        ]);
    }
    let mut args = Vec::with_capacity(words.len() * 3);
    for word in words {
        let Some((key, value)) = word.split_once('=') else {
            return Err(ErrorKind::MissingEquals { word });
        };
        args.push(key.to_string());
        args.push(value.to_string());
        args.push("=".to_string());
    }
    Ok(args)
}

/// HEALTHCHECK: the first word (type), then the rest parsed like CMD.
fn health_config(rest: &str) -> Result<(Vec<String>, bool), ErrorKind> {
    let sep = rest.find(char::is_whitespace).unwrap_or(rest.len());
    if sep == 0 {
        return Ok((Vec::new(), false));
    }
    let (mut args, json) = maybe_json(rest[sep..].trim_start())?;
    args.insert(0, rest[..sep].to_string());
    Ok((args, json))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_stop_at_first_non_flag_and_at_double_dash() {
        let (off, flags) = extract_builder_flags("--from=a --chown=\"x y\" src dst");
        assert_eq!(&"--from=a --chown=\"x y\" src dst"[off..], "src dst");
        let texts: Vec<_> = flags.iter().map(|f| f.0.as_str()).collect();
        assert_eq!(texts, ["--from=a", "--chown=x y"]);
        let (off, flags) = extract_builder_flags("--a -- --b c");
        assert_eq!(&"--a -- --b c"[off..], " --b c");
        assert_eq!(flags.len(), 1);
    }

    #[test]
    fn words_keep_quotes_and_escapes() {
        assert_eq!(
            parse_words(r#"abc="123 456" def x\ y"#, '\\'),
            [r#"abc="123 456""#, "def", r"x\ y"]
        );
    }

    #[test]
    fn json_shapes() {
        assert_eq!(
            parse_json(r#"["a","b"]"#).unwrap(),
            Some(vec!["a".into(), "b".into()])
        );
        assert_eq!(parse_json("['a']").unwrap(), None);
        assert_eq!(parse_json("[1]"), Err(ErrorKind::NotStringArray));
        // The shapes BuildKit's json_test.go checks.
        for bad in [
            r#"["a",42,"b"]"#,
            r#"["a",123.456,"b"]"#,
            r#"["a",{},"b"]"#,
            r#"["a",{"c": "d"},"b"]"#,
            r#"["a",["c"],"b"]"#,
            r#"["a",true,"b"]"#,
            r#"["a",false,"b"]"#,
            r#"["a",null,"b"]"#,
        ] {
            assert_eq!(parse_json(bad), Err(ErrorKind::NotStringArray), "{bad}");
        }
        for (good, expected) in [
            ("[]", vec![]),
            (r#"[""]"#, vec![""]),
            ("[\t\"a\",\t\"b\"\t]\t", vec!["a", "b"]),
            (
                r#"["\" \\ \/ \b \f \n \r \t \u0000"]"#,
                vec!["\" \\ / \u{8} \u{c} \n \r \t \u{0}"],
            ),
        ] {
            assert_eq!(
                parse_json(good).unwrap(),
                Some(expected.iter().map(|s| s.to_string()).collect())
            );
        }
    }
}
