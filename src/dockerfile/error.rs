//! Parse errors that name the file, line and column, and show the line.

use std::fmt;

use super::ast::{Dockerfile, LineIndex, Span};

/// What went wrong while reading a Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    /// No instruction at all (empty file, or only comments and blank lines).
    #[error("file with no instructions")]
    EmptyFile,
    /// A parser directive given twice.
    #[error("only one {0} parser directive can be used")]
    DuplicateDirective(String),
    /// `# escape=` with something other than `\` or a backtick.
    #[error("invalid escape token '{0}' does not match ` or \\")]
    InvalidEscape(String),
    /// Exec form that is valid JSON but not an array of strings.
    #[error("when using JSON array syntax, arrays must be comprised of strings only")]
    NotStringArray,
    /// An instruction keyword that does not exist.
    #[error("unknown instruction: {name}{}", suggestion.as_ref().map(|s| format!(" (did you mean {s}?)")).unwrap_or_default())]
    UnknownInstruction {
        /// The keyword as written.
        name: String,
        /// The closest known keyword, if one is close.
        suggestion: Option<String>,
    },
    /// Wrong number of arguments.
    #[error("{instruction} requires {expected}")]
    ArgumentCount {
        /// The instruction (uppercase).
        instruction: String,
        /// For example "at least one argument".
        expected: String,
    },
    /// `ENV name=value` form with a word that has no `=`.
    #[error("syntax error - can't find = in {word:?}. must be of the form: name=value")]
    MissingEquals {
        /// The offending word.
        word: String,
    },
    /// A flag the instruction does not know.
    #[error("unknown flag: --{flag} (valid flags for {instruction}: {valid})")]
    UnknownFlag {
        /// The flag name without dashes.
        flag: String,
        /// The instruction (uppercase).
        instruction: String,
        /// The valid flags, comma separated, or "none".
        valid: String,
    },
    /// A flag given twice.
    #[error("duplicate flag specified: --{0}")]
    DuplicateFlag(String),
    /// A flag with a bad or missing value.
    #[error("invalid value for flag --{flag}: {message}")]
    FlagValue {
        /// The flag name without dashes.
        flag: String,
        /// What is wrong with the value.
        message: String,
    },
    /// A heredoc whose terminator line never comes.
    #[error("unterminated heredoc {0}")]
    UnterminatedHeredoc(String),
    /// No FROM instruction.
    #[error("no build stage: a Dockerfile needs a FROM instruction")]
    NoFrom,
    /// Only ARG may come before the first FROM.
    #[error("{0} is not allowed before the first FROM (only ARG is)")]
    BeforeFrom(String),
    /// ONBUILD with a trigger that is not allowed.
    #[error("{0}")]
    Onbuild(String),
    /// Any other invalid instruction content.
    #[error("{0}")]
    Invalid(String),
    /// The file is in an encoding other than UTF-8 (a UTF-16 or UTF-32 byte order mark).
    #[error("{0}")]
    Encoding(String),
    /// A byte that is not valid UTF-8 (the first byte of the bad sequence).
    #[error("invalid UTF-8 (byte 0x{0:02x}): Dockerfiles must be UTF-8 text")]
    InvalidUtf8(u8),
    /// A NUL byte, which no Dockerfile text contains (and which a shell could not receive).
    #[error("NUL byte in the Dockerfile (is it UTF-16 without a byte order mark, or binary?)")]
    NulByte,
}

/// A Dockerfile error with its location. `Display` renders
/// `FILE:LINE:COL: message`, then the source line and a caret under the column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ParseError {
    /// The file name given to the parser.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub col: usize,
    /// What went wrong.
    #[source]
    pub kind: Box<ErrorKind>,
    /// The text of the line (without newline).
    pub source_line: String,
}

impl ParseError {
    pub(crate) fn at(
        file: &str,
        source: &str,
        lines: &LineIndex,
        pos: usize,
        kind: ErrorKind,
    ) -> Self {
        let (line, col) = lines.line_col(source, pos);
        ParseError {
            file: file.to_string(),
            line,
            col,
            kind: Box::new(kind),
            source_line: lines.line_text(source, line).to_string(),
        }
    }

    /// An error at the start of `span` of a parsed Dockerfile.
    pub fn in_file(df: &Dockerfile, span: Span, kind: ErrorKind) -> Self {
        ParseError {
            file: df.file_name.clone(),
            line: span.start_line,
            col: span.start_col,
            kind: Box::new(kind),
            source_line: df.line_text(span.start_line).to_string(),
        }
    }

    /// The message without location and snippet.
    pub fn message(&self) -> String {
        self.kind.to_string()
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}:{}:{}: {}", self.file, self.line, self.col, self.kind)?;
        let number = self.line.to_string();
        writeln!(f, "  {number} | {}", self.source_line)?;
        // The caret goes under column `col`; tabs in the line are repeated so it lines up.
        let mut pad: String = " ".repeat(number.len() + 5);
        pad.extend(
            self.source_line
                .chars()
                .take(self.col.saturating_sub(1))
                .map(|c| if c == '\t' { '\t' } else { ' ' }),
        );
        write!(f, "{pad}^")
    }
}
