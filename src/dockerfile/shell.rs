//! Docker's word processing: quotes, escapes and `$var` / `${var...}` expansion.
//!
//! This is the equivalent of BuildKit's `shell.Lex`: the builder runs it over the arguments of
//! instructions such as `ENV`, `ARG`, `COPY`, `WORKDIR` and `FROM`. It is *not* a shell: there is
//! no command substitution, no globbing of file names and no arithmetic.
//!
//! ```
//! use rbuild::dockerfile::shell::ShellLex;
//!
//! let lex = ShellLex::new('\\');
//! let env = [("NAME", "world"), ("EMPTY", "")];
//! assert_eq!(lex.process_word("hello-${NAME}", &env).unwrap(), "hello-world");
//! assert_eq!(lex.process_word("${EMPTY:-default}", &env).unwrap(), "default");
//! assert_eq!(lex.process_words("a 'b c' $NAME", &env).unwrap(), ["a", "b c", "world"]);
//! ```
//!
//! # Supported forms
//!
//! | form | result |
//! |---|---|
//! | `$v`, `${v}` | the value, or empty when unset |
//! | `${v:-w}` / `${v-w}` | `w` when `v` is unset or empty / unset |
//! | `${v:+w}` / `${v+w}` | `w` when `v` is set and non-empty / set |
//! | `${v:?m}` / `${v?m}` | an error `v: m` when `v` is unset or empty / unset |
//! | `${v#p}` / `${v##p}` | remove the shortest / longest prefix matching `p` |
//! | `${v%p}` / `${v%%p}` | remove the shortest / longest suffix matching `p` |
//! | `${v/p/r}` / `${v//p/r}` | replace the first / every longest match of `p` by `r` |
//!
//! Patterns `p` are shell patterns with `*` (any string) and `?` (any one character); `\`
//! escapes `*`, `?`, `\`, `}` and `/`. Like Docker, `[` is an ordinary character, not the start
//! of a bracket expression. The words `w`, `m`, `p` and `r` are themselves expanded, so
//! `${a:-${b}}` works.
//!
//! Single quotes keep everything literally. Inside double quotes the escape character only
//! escapes `"`, `$` and itself. Unquoted, it escapes any character; at the end of the word it
//! is dropped. Positional (`$1`, `${10}`) and special (`$@ $* $# $? $- $$ $! $0`) parameters are
//! never set. `${v:=w}` and `${v=w}` are rejected, as in Docker.
//!
//! Lookups are case-sensitive (Linux semantics).

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{BuildHasher, Hash};

/// Where variable values come from.
///
/// Implemented for slices, arrays and vectors of `(name, value)` pairs (a later pair wins over
/// an earlier one with the same name, like a list of `ENV` lines), for `BTreeMap` and `HashMap`,
/// and for references to any of those.
pub trait Env {
    /// The value of `name`, or `None` when it is not set (an empty value is set).
    fn get(&self, name: &str) -> Option<&str>;
}

impl<K: AsRef<str>, V: AsRef<str>> Env for [(K, V)] {
    fn get(&self, name: &str) -> Option<&str> {
        self.iter()
            .rev()
            .find(|(key, _)| key.as_ref() == name)
            .map(|(_, value)| value.as_ref())
    }
}

impl<K: AsRef<str>, V: AsRef<str>, const N: usize> Env for [(K, V); N] {
    fn get(&self, name: &str) -> Option<&str> {
        Env::get(self.as_slice(), name)
    }
}

impl<K: AsRef<str>, V: AsRef<str>> Env for Vec<(K, V)> {
    fn get(&self, name: &str) -> Option<&str> {
        Env::get(self.as_slice(), name)
    }
}

impl<K: Borrow<str> + Ord, V: AsRef<str>> Env for BTreeMap<K, V> {
    fn get(&self, name: &str) -> Option<&str> {
        BTreeMap::get(self, name).map(AsRef::as_ref)
    }
}

impl<K: Borrow<str> + Hash + Eq, V: AsRef<str>, S: BuildHasher> Env for HashMap<K, V, S> {
    fn get(&self, name: &str) -> Option<&str> {
        HashMap::get(self, name).map(AsRef::as_ref)
    }
}

impl<T: Env + ?Sized> Env for &T {
    fn get(&self, name: &str) -> Option<&str> {
        (**self).get(name)
    }
}

/// The variables a word referred to, split by whether the environment had them.
///
/// Positional and special parameters (`$1`, `$@`, ...) are never recorded: they are not
/// variables a Dockerfile can define.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Matches {
    /// Referenced names that were set (possibly to the empty string).
    pub matched: BTreeSet<String>,
    /// Referenced names that were not set.
    pub unmatched: BTreeSet<String>,
}

/// A word that could not be processed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("failed to process {word:?}: {kind}")]
pub struct ExpandError {
    /// The whole word as given to the lexer.
    pub word: String,
    /// What went wrong.
    pub kind: ExpandErrorKind,
}

/// What went wrong while processing a word.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpandErrorKind {
    /// A `'` without its closing `'`.
    #[error("unexpected end of statement while looking for matching single-quote")]
    UnterminatedSingleQuote,
    /// A `"` without its closing `"`.
    #[error("unexpected end of statement while looking for matching double-quote")]
    UnterminatedDoubleQuote,
    /// `${` without its closing `}`.
    #[error("syntax error: missing '}}'")]
    MissingBrace,
    /// `${v/p` without the `/` that ends the pattern.
    #[error("syntax error: missing '/' in ${{}}")]
    MissingSlash,
    /// `${}`, `${{...`, `${:...`.
    #[error("syntax error: bad substitution")]
    BadSubstitution,
    /// `${v:=w}`, `${v=w}`, `${v:#p}`, `${v.}` and the like.
    #[error("unsupported modifier ({modifier}) in substitution of variable {name:?}")]
    UnsupportedModifier {
        /// The variable name (empty when there was none).
        name: String,
        /// The modifier as written, such as `:=`.
        modifier: String,
    },
    /// `${v?m}` with `v` unset, or `${v:?m}` with `v` unset or empty.
    #[error("{name}: {message}")]
    Required {
        /// The variable name.
        name: String,
        /// The message from the word, or Docker's default wording.
        message: String,
    },
    /// A pattern in `${v#p}`, `${v%p}` or `${v/p/r}` with a bad escape.
    #[error("invalid pattern ({pattern}) in substitution of variable {name:?}: {reason}")]
    InvalidPattern {
        /// The variable name.
        name: String,
        /// The pattern after expansion.
        pattern: String,
        /// Why it is invalid.
        reason: String,
    },
}

/// Docker's word lexer, configured with the Dockerfile's escape character.
///
/// The default processing is what instructions such as `ENV`, `COPY` or `WORKDIR` get. The
/// option methods give the variants BuildKit uses elsewhere (heredoc detection, heredoc bodies,
/// step names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShellLex {
    escape: char,
    options: Options,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Options {
    raw_quotes: bool,
    raw_escapes: bool,
    skip_process_quotes: bool,
    skip_unset_env: bool,
}

impl Default for ShellLex {
    fn default() -> Self {
        ShellLex::new('\\')
    }
}

impl ShellLex {
    /// A lexer using `escape` (`\` by default, or `` ` `` after `# escape=``).
    pub fn new(escape: char) -> ShellLex {
        ShellLex {
            escape,
            options: Options::default(),
        }
    }

    /// Keep quote characters in the result (they still group and protect as usual).
    pub fn raw_quotes(mut self, on: bool) -> ShellLex {
        self.options.raw_quotes = on;
        self
    }

    /// Keep escape characters in the result (they still escape as usual).
    pub fn raw_escapes(mut self, on: bool) -> ShellLex {
        self.options.raw_escapes = on;
        self
    }

    /// Treat quotes as ordinary characters (used for heredoc bodies).
    pub fn skip_process_quotes(mut self, on: bool) -> ShellLex {
        self.options.skip_process_quotes = on;
        self
    }

    /// Leave references to unset variables as written (`$v`, `${v}`, `${v:-w}` with `w`
    /// processed) instead of expanding them; `${v?}` then does not fail.
    pub fn skip_unset_env(mut self, on: bool) -> ShellLex {
        self.options.skip_unset_env = on;
        self
    }

    /// The escape character.
    pub fn escape(&self) -> char {
        self.escape
    }

    /// Expands one word: quotes removed, escapes applied, variables substituted. Whitespace
    /// is kept; there is no field splitting.
    pub fn process_word<E: Env + ?Sized>(
        &self,
        word: &str,
        env: &E,
    ) -> Result<String, ExpandError> {
        self.process_word_with_matches(word, env)
            .map(|(result, _)| result)
    }

    /// Like [`ShellLex::process_word`], and also reports which variables were referenced and
    /// which of them were unset.
    pub fn process_word_with_matches<E: Env + ?Sized>(
        &self,
        word: &str,
        env: &E,
    ) -> Result<(String, Matches), ExpandError> {
        let mut lexer = Lexer::new(*self, word, env, false);
        let (result, _) = lexer.run(word)?;
        Ok((result, lexer.matches))
    }

    /// Expands a word and splits the result into fields on unquoted whitespace (whitespace
    /// that comes from an unquoted variable splits too). Empty fields are dropped.
    pub fn process_words<E: Env + ?Sized>(
        &self,
        word: &str,
        env: &E,
    ) -> Result<Vec<String>, ExpandError> {
        let mut lexer = Lexer::new(*self, word, env, true);
        let (_, words) = lexer.run(word)?;
        Ok(words)
    }
}

/// Builds the fields of [`ShellLex::process_words`] (nothing when not `enabled`).
#[derive(Default)]
struct Fields {
    enabled: bool,
    current: String,
    done: Vec<String>,
}

impl Fields {
    /// A character that splits fields when it is whitespace.
    fn add_char(&mut self, ch: char) {
        if !self.enabled {
            return;
        }
        if ch.is_whitespace() {
            if !self.current.is_empty() {
                self.done.push(std::mem::take(&mut self.current));
            }
        } else {
            self.current.push(ch);
        }
    }

    fn add_str(&mut self, text: &str) {
        if self.enabled {
            text.chars().for_each(|ch| self.add_char(ch));
        }
    }

    /// Quoted or escaped text: never splits.
    fn add_raw(&mut self, text: &str) {
        if self.enabled {
            self.current.push_str(text);
        }
    }

    fn finish(mut self) -> Vec<String> {
        if !self.current.is_empty() {
            self.done.push(self.current);
        }
        self.done
    }
}

/// One run of the lexer over one word.
struct Lexer<'w, 'e, E: ?Sized> {
    /// The word, read in place (a huge LABEL value is not turned into 4-byte `char`s).
    text: &'w str,
    /// Byte offset of the next character.
    pos: usize,
    /// Whether [`ShellLex::process_words`] wants the fields (else they are not built: they
    /// would be a second copy of the result).
    want_fields: bool,
    escape: char,
    options: Options,
    /// Keep escape characters in the output (inside patterns, where they still mean something).
    raw_escapes: bool,
    env: &'e E,
    matches: Matches,
}

impl<'w, 'e, E: Env + ?Sized> Lexer<'w, 'e, E> {
    fn new(lex: ShellLex, word: &'w str, env: &'e E, want_fields: bool) -> Self {
        Lexer {
            text: word,
            pos: 0,
            want_fields,
            escape: lex.escape,
            options: lex.options,
            raw_escapes: false,
            env,
            matches: Matches::default(),
        }
    }

    fn run(&mut self, word: &str) -> Result<(String, Vec<String>), ExpandError> {
        let raw_escapes = self.options.raw_escapes;
        self.process_until(None, raw_escapes)
            .map_err(|kind| ExpandError {
                word: word.to_string(),
                kind,
            })
    }

    fn peek(&self) -> Option<char> {
        self.text[self.pos..].chars().next()
    }

    /// Moves past the next character.
    fn advance(&mut self) {
        if let Some(ch) = self.peek() {
            self.pos += ch.len_utf8();
        }
    }

    fn next(&mut self) -> Option<char> {
        let ch = self.peek();
        self.advance();
        ch
    }

    /// Processes text up to (and consuming) `stop`, or to the end of the word when `stop` is
    /// `None`. Returns the text and its fields.
    fn process_until(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Result<(String, Vec<String>), ExpandErrorKind> {
        let saved = std::mem::replace(&mut self.raw_escapes, raw_escapes);
        let result = self.process_until_inner(stop);
        self.raw_escapes = saved;
        result
    }

    fn process_until_inner(
        &mut self,
        stop: Option<char>,
    ) -> Result<(String, Vec<String>), ExpandErrorKind> {
        let mut result = String::new();
        let mut fields = Fields {
            enabled: self.want_fields,
            ..Fields::default()
        };
        while let Some(ch) = self.peek() {
            if Some(ch) == stop {
                self.advance();
                return Ok((result, fields.finish()));
            }
            match ch {
                '$' => {
                    let value = self.process_dollar()?;
                    fields.add_str(&value);
                    result.push_str(&value);
                }
                '<' => {
                    let text = self.process_possible_heredoc();
                    fields.add_raw(&text);
                    result.push_str(&text);
                }
                '\'' if !self.options.skip_process_quotes => {
                    let text = self.process_single_quote()?;
                    fields.add_raw(&text);
                    result.push_str(&text);
                }
                '"' if !self.options.skip_process_quotes => {
                    let text = self.process_double_quote()?;
                    fields.add_raw(&text);
                    result.push_str(&text);
                }
                _ => {
                    self.advance();
                    if ch == self.escape {
                        if self.raw_escapes {
                            fields.add_raw(ch.encode_utf8(&mut [0; 4]));
                            result.push(ch);
                        }
                        // An escape at the very end is dropped.
                        let Some(escaped) = self.next() else { break };
                        fields.add_raw(escaped.encode_utf8(&mut [0; 4]));
                        result.push(escaped);
                    } else {
                        fields.add_char(ch);
                        result.push(ch);
                    }
                }
            }
        }
        match stop {
            Some('}') => Err(ExpandErrorKind::MissingBrace),
            Some(_) => Err(ExpandErrorKind::MissingSlash),
            None => Ok((result, fields.finish())),
        }
    }

    /// Like [`Lexer::process_until`], but an error at the end of the word (whatever caused it)
    /// is reported as the missing delimiter, as Docker does.
    fn process_word_part(
        &mut self,
        stop: char,
        raw_escapes: bool,
    ) -> Result<String, ExpandErrorKind> {
        match self.process_until(Some(stop), raw_escapes) {
            Ok((text, _)) => Ok(text),
            Err(_) if self.peek().is_none() && stop == '}' => Err(ExpandErrorKind::MissingBrace),
            Err(_) if self.peek().is_none() => Err(ExpandErrorKind::MissingSlash),
            Err(err) => Err(err),
        }
    }

    fn process_single_quote(&mut self) -> Result<String, ExpandErrorKind> {
        self.advance(); // the opening quote
        let mut result = String::new();
        if self.options.raw_quotes {
            result.push('\'');
        }
        loop {
            match self.next() {
                None => return Err(ExpandErrorKind::UnterminatedSingleQuote),
                Some('\'') => {
                    if self.options.raw_quotes {
                        result.push('\'');
                    }
                    return Ok(result);
                }
                Some(ch) => result.push(ch),
            }
        }
    }

    fn process_double_quote(&mut self) -> Result<String, ExpandErrorKind> {
        self.advance(); // the opening quote
        let mut result = String::new();
        if self.options.raw_quotes {
            result.push('"');
        }
        loop {
            match self.peek() {
                None => return Err(ExpandErrorKind::UnterminatedDoubleQuote),
                Some('"') => {
                    self.advance();
                    if self.options.raw_quotes {
                        result.push('"');
                    }
                    return Ok(result);
                }
                Some('$') => result.push_str(&self.process_dollar()?),
                Some(ch) => {
                    self.advance();
                    if ch == self.escape {
                        if self.raw_escapes {
                            result.push(ch);
                        }
                        match self.peek() {
                            // A trailing escape is ignored; the loop then reports the open quote.
                            None => continue,
                            Some(next) if next == '"' || next == '$' || next == self.escape => {
                                self.advance();
                                result.push(next);
                                continue;
                            }
                            // Any other escape stays as it is.
                            Some(_) => {}
                        }
                    }
                    result.push(ch);
                }
            }
        }
    }

    /// `<<` followed by blanks stays one piece, so `<< EOF` is one field (heredoc markers).
    fn process_possible_heredoc(&mut self) -> String {
        self.advance();
        if self.peek() != Some('<') {
            return "<".to_string();
        }
        self.advance();
        let mut text = "<<".to_string();
        while let Some(ch @ (' ' | '\t' | '\r')) = self.peek() {
            text.push(ch);
            self.advance();
        }
        text
    }

    /// Reads a variable name: a run of digits (positional), one special character, or letters,
    /// digits and `_`.
    fn process_name(&mut self) -> String {
        let mut name = String::new();
        match self.peek() {
            Some(ch) if ch.is_ascii_digit() => {
                while let Some(digit) = self.peek().filter(char::is_ascii_digit) {
                    name.push(digit);
                    self.advance();
                }
            }
            Some(ch) if is_special_param(ch) => {
                name.push(ch);
                self.advance();
            }
            _ => {
                while let Some(ch) = self.peek().filter(|ch| ch.is_alphanumeric() || *ch == '_') {
                    name.push(ch);
                    self.advance();
                }
            }
        }
        name
    }

    /// Looks a name up, recording it in the matches.
    fn lookup(&mut self, name: &str) -> Option<String> {
        if name
            .chars()
            .all(|ch| ch.is_ascii_digit() || is_special_param(ch))
        {
            return None; // positional and special parameters are never set
        }
        match self.env.get(name) {
            Some(value) => {
                self.matches.matched.insert(name.to_string());
                Some(value.to_string())
            }
            None => {
                self.matches.unmatched.insert(name.to_string());
                None
            }
        }
    }

    fn process_dollar(&mut self) -> Result<String, ExpandErrorKind> {
        self.advance(); // '$'
        if self.peek() != Some('{') {
            let name = self.process_name();
            if name.is_empty() {
                return Ok("$".to_string());
            }
            return Ok(match self.lookup(&name) {
                Some(value) => value,
                None if self.options.skip_unset_env => format!("${name}"),
                None => String::new(),
            });
        }
        self.advance(); // '{'
        match self.peek() {
            None => return Err(ExpandErrorKind::MissingBrace),
            Some('{' | '}' | ':') => return Err(ExpandErrorKind::BadSubstitution),
            Some(_) => {}
        }
        let name = self.process_name();
        let Some(ch) = self.next() else {
            return Err(ExpandErrorKind::MissingBrace);
        };
        let unsupported = |modifier: String| ExpandErrorKind::UnsupportedModifier {
            name: name.clone(),
            modifier,
        };
        match ch {
            '}' => Ok(match self.lookup(&name) {
                Some(value) => value,
                None if self.options.skip_unset_env => format!("${{{name}}}"),
                None => String::new(),
            }),
            ':' | '+' | '-' | '?' | '#' | '%' => {
                let (null_is_unset, op) = if ch == ':' {
                    match self.next() {
                        Some(op) => (true, op),
                        None => return Err(ExpandErrorKind::MissingBrace),
                    }
                } else {
                    (false, ch)
                };
                let modifier = if null_is_unset {
                    format!(":{op}")
                } else {
                    op.to_string()
                };
                let is_pattern = op == '#' || op == '%';
                if null_is_unset && is_pattern {
                    return Err(unsupported(modifier));
                }
                let mut word = self.process_word_part('}', is_pattern)?;
                let value = self.lookup(&name);
                if value.is_none() && self.options.skip_unset_env {
                    return Ok(format!("${{{name}{modifier}{word}}}"));
                }
                let unset = match &value {
                    None => true,
                    Some(value) => null_is_unset && value.is_empty(),
                };
                match op {
                    '-' => Ok(if unset {
                        word
                    } else {
                        value.unwrap_or_default()
                    }),
                    '+' => Ok(if unset { String::new() } else { word }),
                    '?' => {
                        if !unset {
                            return Ok(value.unwrap_or_default());
                        }
                        let message = if !word.is_empty() {
                            word
                        } else if value.is_none() {
                            "is not allowed to be unset".to_string()
                        } else {
                            "is not allowed to be empty".to_string()
                        };
                        Err(ExpandErrorKind::Required { name, message })
                    }
                    '#' | '%' => {
                        let longest = word.starts_with(op);
                        if longest {
                            word.remove(0);
                        }
                        let pattern = Pattern::parse(&word).map_err(|reason| {
                            ExpandErrorKind::InvalidPattern {
                                name: name.clone(),
                                pattern: word.clone(),
                                reason,
                            }
                        })?;
                        let value: Vec<char> = value.unwrap_or_default().chars().collect();
                        Ok(if op == '#' {
                            pattern.trim_prefix(&value, longest)
                        } else {
                            pattern.trim_suffix(&value, longest)
                        })
                    }
                    _ => Err(unsupported(modifier)),
                }
            }
            '/' => {
                let all = self.peek() == Some('/');
                if all {
                    self.advance();
                }
                let pattern_text = self.process_word_part('/', true)?;
                let replacement = self.process_word_part('}', true)?;
                let value = self.lookup(&name);
                if value.is_none() && self.options.skip_unset_env {
                    let slashes = if all { "//" } else { "/" };
                    return Ok(format!("${{{name}{slashes}{pattern_text}/{replacement}}}"));
                }
                let value: Vec<char> = value.unwrap_or_default().chars().collect();
                let pattern = Pattern::parse(&pattern_text).map_err(|reason| {
                    ExpandErrorKind::InvalidPattern {
                        name: name.clone(),
                        pattern: pattern_text.clone(),
                        reason,
                    }
                })?;
                Ok(pattern.replace(&value, &replacement, all))
            }
            other => Err(unsupported(other.to_string())),
        }
    }
}

/// `$@ $* $# $? $- $$ $! $0`.
fn is_special_param(ch: char) -> bool {
    matches!(ch, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0')
}

/// One element of a substitution pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PatternToken {
    Literal(char),
    /// `?`
    AnyChar,
    /// `*`
    AnyString,
}

/// A shell pattern as used by `${v#p}`, `${v%p}` and `${v/p/r}`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    tokens: Vec<PatternToken>,
}

impl Pattern {
    /// Parses a pattern. `\` escapes `*`, `?` and `\`; before `}` and `/` it is dropped (those
    /// had to be escaped to get into the pattern at all); any other escape is an error.
    fn parse(text: &str) -> Result<Pattern, String> {
        let mut tokens = Vec::new();
        let mut chars = text.chars().peekable();
        while let Some(ch) = chars.next() {
            tokens.push(match ch {
                '*' => PatternToken::AnyString,
                '?' => PatternToken::AnyChar,
                '\\' => match chars.peek() {
                    Some('}' | '/') => continue,
                    Some(&escaped @ ('*' | '?' | '\\')) => {
                        chars.next();
                        PatternToken::Literal(escaped)
                    }
                    Some(other) => return Err(format!("invalid escape '\\{other}'")),
                    None => return Err("trailing escape '\\'".to_string()),
                },
                other => PatternToken::Literal(other),
            });
        }
        Ok(Pattern { tokens })
    }

    fn reversed(&self) -> Pattern {
        Pattern {
            tokens: self.tokens.iter().rev().copied().collect(),
        }
    }

    /// The shortest and the longest length `n` such that `text[..n]` matches the whole pattern.
    fn prefix_match_lengths(&self, text: &[char]) -> Option<(usize, usize)> {
        // Simulate the pattern as an automaton: state `k` means "the first `k` tokens matched".
        let count = self.tokens.len();
        let mut states = vec![false; count + 1];
        let mut next = vec![false; count + 1];
        states[0] = true;
        self.close(&mut states);
        let mut shortest = None;
        let mut longest = None;
        for consumed in 0..=text.len() {
            if states[count] {
                shortest.get_or_insert(consumed);
                longest = Some(consumed);
            }
            let Some(&ch) = text.get(consumed) else { break };
            next.iter_mut().for_each(|state| *state = false);
            let mut any = false;
            for (k, token) in self.tokens.iter().enumerate() {
                if !states[k] {
                    continue;
                }
                match *token {
                    PatternToken::AnyString => next[k] = true,
                    PatternToken::AnyChar => next[k + 1] = true,
                    PatternToken::Literal(literal) if literal == ch => next[k + 1] = true,
                    PatternToken::Literal(_) => continue,
                }
                any = true;
            }
            if !any {
                break;
            }
            self.close(&mut next);
            std::mem::swap(&mut states, &mut next);
        }
        Some((shortest?, longest?))
    }

    /// Adds the states reachable by letting a `*` match nothing.
    fn close(&self, states: &mut [bool]) {
        for (k, token) in self.tokens.iter().enumerate() {
            if states[k] && *token == PatternToken::AnyString {
                states[k + 1] = true;
            }
        }
    }

    fn trim_prefix(&self, value: &[char], longest: bool) -> String {
        match self.prefix_match_lengths(value) {
            Some((short, long)) => value[if longest { long } else { short }..].iter().collect(),
            None => value.iter().collect(),
        }
    }

    fn trim_suffix(&self, value: &[char], longest: bool) -> String {
        let reversed: Vec<char> = value.iter().rev().copied().collect();
        match self.reversed().prefix_match_lengths(&reversed) {
            Some((short, long)) => {
                let cut = if longest { long } else { short };
                value[..value.len() - cut].iter().collect()
            }
            None => value.iter().collect(),
        }
    }

    /// Replaces the leftmost-longest match (or every non-overlapping one) by `replacement`.
    /// An empty match next to the previous match is skipped, as in Go's regexp.
    fn replace(&self, value: &[char], replacement: &str, all: bool) -> String {
        let mut out = String::new();
        let mut pos = 0;
        let mut previous_match_end = None;
        let mut replaced = false;
        while pos <= value.len() {
            let found = if replaced && !all {
                None
            } else {
                self.prefix_match_lengths(&value[pos..])
                    .map(|(_, long)| long)
                    .filter(|&long| long > 0 || previous_match_end != Some(pos))
            };
            match found {
                Some(length) => {
                    out.push_str(replacement);
                    replaced = true;
                    previous_match_end = Some(pos + length);
                    if length > 0 {
                        pos += length;
                        continue;
                    }
                }
                None if replaced && !all => {
                    out.extend(&value[pos..]);
                    break;
                }
                None => {}
            }
            if let Some(&ch) = value.get(pos) {
                out.push(ch);
            }
            pos += 1;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(text: &str) -> Pattern {
        Pattern::parse(text).unwrap()
    }

    fn chars(text: &str) -> Vec<char> {
        text.chars().collect()
    }

    #[test]
    fn pattern_escapes() {
        assert_eq!(
            pattern(r"\*\?\\\}\/a").tokens,
            [
                PatternToken::Literal('*'),
                PatternToken::Literal('?'),
                PatternToken::Literal('\\'),
                PatternToken::Literal('}'),
                PatternToken::Literal('/'),
                PatternToken::Literal('a'),
            ]
        );
        for bad in [r"\", r"\x", r"\\\"] {
            assert!(Pattern::parse(bad).is_err(), "{bad:?} must be rejected");
        }
    }

    #[test]
    fn prefix_lengths() {
        assert_eq!(
            pattern("*x").prefix_match_lengths(&chars("axbx")),
            Some((2, 4))
        );
        assert_eq!(
            pattern("").prefix_match_lengths(&chars("abc")),
            Some((0, 0))
        );
        assert_eq!(
            pattern("*").prefix_match_lengths(&chars("abc")),
            Some((0, 3))
        );
        assert_eq!(
            pattern("?b").prefix_match_lengths(&chars("abc")),
            Some((2, 2))
        );
        assert_eq!(pattern("b").prefix_match_lengths(&chars("abc")), None);
    }

    #[test]
    fn replace_semantics() {
        let value = chars("aXbXc");
        assert_eq!(pattern("X").replace(&value, "-", false), "a-bXc");
        assert_eq!(pattern("X").replace(&value, "-", true), "a-b-c");
        assert_eq!(pattern("X*").replace(&value, "-", false), "a-");
        assert_eq!(pattern("*").replace(&value, "-", true), "-");
        assert_eq!(pattern("").replace(&chars("ab"), "-", false), "-ab");
        assert_eq!(pattern("").replace(&chars("ab"), "-", true), "-a-b-");
        assert_eq!(pattern("z").replace(&value, "-", true), "aXbXc");
    }
}
