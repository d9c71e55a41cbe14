//! Finding heredoc markers (`<<EOF`, `<<-EOF`, `3<<"EOF"`) in an instruction line.
//!
//! As in BuildKit, the line is split into shell words (quotes and escapes kept, `\` is always
//! the escape here), and each word that is entirely `[digits]<<[-]delimiter` starts a heredoc.
//! The delimiter is unquoted; if any part of it was quoted, the body is not to be expanded.
//! This is word splitting for the parser only; variable expansion lives in `shell.rs`.

use super::error::ErrorKind;

/// A heredoc marker found in a line (the body is read by the parser).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Marker {
    pub name: String,
    pub expand: bool,
    pub chomp: bool,
    pub fd: u32,
    /// Offset of the marker word in the line.
    pub start: usize,
}

/// The heredoc markers of `line`, in order. Errors carry the offset of the bad word.
pub(crate) fn markers(line: &str) -> Result<Vec<Marker>, (usize, ErrorKind)> {
    let mut found = Vec::new();
    for (word, start) in raw_words(line) {
        let digits = word.len() - word.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let Some(after) = word[digits..].strip_prefix("<<") else {
            continue;
        };
        let (chomp, rest) = match after.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, after),
        };
        let rest = rest.trim_start();
        if rest.is_empty() || rest.contains('<') {
            continue;
        }
        let unquoted = unquote(rest).map_err(|message| {
            (
                start,
                ErrorKind::Invalid(format!("invalid heredoc delimiter {rest:?}: {message}")),
            )
        })?;
        let Some(name) = unquoted else {
            continue; // more than one word: not a heredoc
        };
        let quotes = |s: &str| s.chars().filter(|&c| c == '\'' || c == '"').count();
        found.push(Marker {
            expand: quotes(&name) == quotes(rest),
            name,
            chomp,
            fd: word[..digits].parse().unwrap_or(0),
            start,
        });
    }
    Ok(found)
}

/// Shell words of `line` with their start offsets; quotes and escapes are kept. An unclosed
/// quote runs to the end of the line. As in BuildKit's lexer, blanks right after an unquoted
/// `<<` belong to the word, so `<<  EOF` is one word.
fn raw_words(line: &str) -> Vec<(&str, usize)> {
    let mut words = Vec::new();
    let mut start = None;
    let mut quote = None;
    let mut chars = line.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match quote {
            Some(q) => {
                if c == q {
                    quote = None;
                } else if c == '\\' && q == '"' {
                    chars.next();
                }
            }
            None if c.is_whitespace() => {
                if let Some(s) = start.take() {
                    words.push((&line[s..i], s));
                }
            }
            None => {
                start.get_or_insert(i);
                match c {
                    '\'' | '"' => quote = Some(c),
                    '\\' => {
                        chars.next();
                    }
                    '<' if chars.peek().is_some_and(|&(_, n)| n == '<') => {
                        chars.next();
                        while chars.next_if(|&(_, n)| n == ' ' || n == '\t').is_some() {}
                    }
                    _ => {}
                }
            }
        }
    }
    if let Some(s) = start {
        words.push((&line[s..], s));
    }
    words
}

/// Removes shell quoting from `word`: `'...'` is literal, inside `"..."` a backslash escapes
/// `"`, `\` and `$`, outside quotes it escapes any character. `Ok(None)` when the text is not
/// exactly one word.
fn unquote(word: &str) -> Result<Option<String>, String> {
    let mut out = String::new();
    let mut chars = word.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => loop {
                match chars.next() {
                    Some('\'') => break,
                    Some(c) => out.push(c),
                    None => return Err("unterminated single quote".into()),
                }
            },
            '"' => loop {
                match chars.next() {
                    Some('"') => break,
                    Some('\\') if matches!(chars.peek(), Some('"' | '\\' | '$')) => {
                        out.extend(chars.next());
                    }
                    Some(c) => out.push(c),
                    None => return Err("unterminated double quote".into()),
                }
            },
            '\\' => match chars.next() {
                Some(c) => out.push(c),
                None => out.push('\\'),
            },
            c if c.is_whitespace() => return Ok(None),
            c => out.push(c),
        }
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(line: &str) -> Vec<(String, bool, bool, u32)> {
        markers(line)
            .unwrap()
            .into_iter()
            .map(|m| (m.name, m.expand, m.chomp, m.fd))
            .collect()
    }

    #[test]
    fn finds_markers() {
        assert_eq!(names("RUN <<EOF"), [("EOF".into(), true, false, 0)]);
        assert_eq!(
            names("COPY <<-'A' 3<<\"B\" /dst"),
            [("A".into(), false, true, 0), ("B".into(), false, false, 3)]
        );
        assert!(names("RUN cat<<EOF").is_empty());
        assert!(names("RUN echo '<<EOF'").is_empty());
        assert!(names("RUN a <<").is_empty());
        // Cases from BuildKit's parser_heredoc_test.go.
        assert_eq!(
            names("RUN <<  EOF  > foo"),
            [("EOF".into(), true, false, 0)]
        );
        assert_eq!(names("RUN << -EOF"), [("-EOF".into(), true, false, 0)]);
        assert!(names("RUN <<- EOF").is_empty());
        assert_eq!(names("RUN <<eo'f'"), [("eof".into(), false, false, 0)]);
        assert_eq!(names("RUN <<eo\\'f"), [("eo'f".into(), true, false, 0)]);
        assert_eq!(names("RUN <<'e'o\\'f"), [("eo'f".into(), false, false, 0)]);
        assert_eq!(
            names("RUN <<'one two'"),
            [("one two".into(), false, false, 0)]
        );
        assert_eq!(names("RUN <<$EOF"), [("$EOF".into(), true, false, 0)]);
        assert!(names("RUN \"<<NOHEREDOC\"").is_empty());
        assert!(names("RUN <<<EOF").is_empty());
        for bad in ["RUN <<'EOF", "RUN <<\"EOF", "RUN <<EOF'", "RUN <<EOF\""] {
            assert!(markers(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn unterminated_quote_in_delimiter_is_an_error() {
        assert!(markers("RUN <<\"EOF").is_err());
    }
}
