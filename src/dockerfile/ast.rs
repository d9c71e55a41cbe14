//! The raw Dockerfile AST: one [`Node`] per instruction, with source spans and original text.
//!
//! This mirrors BuildKit's `parser.Node`: arguments are split the way each instruction's line
//! parser splits them, but nothing is expanded or unquoted (ENV/LABEL values keep their quotes).
//! [`super::instructions`] turns nodes into typed instructions.

use serde::Serialize;

/// A region of the source: a byte range plus 1-based line and column (in characters) of its
/// first character and of the position just after its last character.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Span {
    /// Byte offset of the first byte.
    pub start: usize,
    /// Byte offset just past the last byte.
    pub end: usize,
    /// Line of the first character (1-based).
    pub start_line: usize,
    /// Column of the first character (1-based, in characters).
    pub start_col: usize,
    /// Line of the last character (1-based).
    pub end_line: usize,
    /// Column just after the last character (1-based, in characters).
    pub end_col: usize,
}

/// Maps byte offsets of a source text to lines and columns.
#[derive(Debug, Clone)]
pub(crate) struct LineIndex {
    /// Byte offset where each line starts.
    starts: Vec<usize>,
}

impl LineIndex {
    pub(crate) fn new(source: &str) -> LineIndex {
        let mut starts = vec![0];
        starts.extend(source.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { starts }
    }

    /// The number of lines (a final line without a newline counts; so does an empty one
    /// after a final newline).
    pub(crate) fn line_count(&self) -> usize {
        self.starts.len()
    }

    /// 1-based line and column (in characters) of byte offset `pos`.
    pub(crate) fn line_col(&self, source: &str, pos: usize) -> (usize, usize) {
        let pos = floor_char_boundary(source, pos.min(source.len()));
        let line = self.starts.partition_point(|&s| s <= pos);
        (line, self.col_in_line(source, line, pos))
    }

    /// 1-based column of `pos`, which lies on 1-based line `line`.
    fn col_in_line(&self, source: &str, line: usize, pos: usize) -> usize {
        let prefix = &source[self.starts[line - 1]..pos];
        let chars = if prefix.is_ascii() {
            prefix.len()
        } else {
            prefix.chars().count()
        };
        chars + 1
    }

    /// The span of the byte range `start..end`. `end_line`/`end_col` describe the last
    /// character of the range (a range ending with a newline ends on the line of that newline).
    pub(crate) fn span(&self, source: &str, start: usize, end: usize) -> Span {
        let (start_line, start_col) = self.line_col(source, start);
        let (end_line, end_col) = if end > start {
            let last = floor_char_boundary(source, (end - 1).min(source.len()));
            // Most spans end on the line they start on: no second search.
            let same_line = self.starts.get(start_line).is_none_or(|&next| last < next);
            let line = if same_line {
                start_line
            } else {
                self.starts.partition_point(|&s| s <= last)
            };
            (line, self.col_in_line(source, line, last) + 1)
        } else {
            (start_line, start_col)
        };
        Span {
            start,
            end,
            start_line,
            start_col,
            end_line,
            end_col,
        }
    }

    /// The text of 1-based line `line`, without its line ending.
    pub(crate) fn line_text<'a>(&self, source: &'a str, line: usize) -> &'a str {
        let Some(&start) = self.starts.get(line.wrapping_sub(1)) else {
            return "";
        };
        let end = self.starts.get(line).map_or(source.len(), |&e| e - 1);
        let text = &source[start..end.max(start)];
        text.strip_suffix('\r').unwrap_or(text)
    }
}

fn floor_char_boundary(s: &str, mut pos: usize) -> usize {
    while pos > 0 && !s.is_char_boundary(pos) {
        pos -= 1;
    }
    pos
}

/// A parsed Dockerfile: its directives and instructions, in source order.
#[derive(Debug, Clone, Serialize)]
pub struct Dockerfile {
    /// The file name given to [`super::parse`], used in error messages.
    pub file_name: String,
    /// The whole source text (errors found later quote its lines).
    #[serde(skip)]
    pub source: String,
    /// Parser directives from the top of the file.
    pub directives: Directives,
    /// The instructions, in source order.
    pub nodes: Vec<Node>,
    /// Things that parse but are probably mistakes (for example empty continuation lines).
    pub warnings: Vec<Warning>,
    #[serde(skip)]
    pub(crate) lines: LineIndex,
}

/// Parser directives (`# escape=`, `# syntax=`, `# check=`).
#[derive(Debug, Clone, Serialize)]
pub struct Directives {
    /// The escape character: `\` (default) or a backtick.
    pub escape: char,
    /// The `# escape=` directive, if present.
    pub escape_directive: Option<Directive>,
    /// The `# syntax=` directive, if present (its value is the frontend image reference).
    pub syntax: Option<Directive>,
    /// The `# check=` directive, if present (raw value such as `skip=all;error=true`).
    pub check: Option<Directive>,
}

impl Default for Directives {
    fn default() -> Self {
        Directives {
            escape: '\\',
            escape_directive: None,
            syntax: None,
            check: None,
        }
    }
}

/// One parser directive line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Directive {
    /// Lowercase name: `escape`, `syntax` or `check`.
    pub name: String,
    /// The value, with surrounding blanks trimmed.
    pub value: String,
    /// The directive's line.
    pub span: Span,
}

/// A warning found while parsing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    /// What is wrong.
    pub message: String,
    /// Where.
    pub span: Span,
}

/// One instruction of the raw AST.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Node {
    /// The instruction keyword in lowercase (`run`, `copy`, ...). Unknown keywords are kept as
    /// written, lowercased; [`super::instructions`] rejects them.
    pub keyword: String,
    /// `--name[=value]` flags before the arguments, quotes removed (a bare `--` is dropped).
    pub flags: Vec<Flag>,
    /// The arguments, split as the instruction's line parser splits them (see module docs of
    /// [`super::line_parsers`]). Shell form is one argument holding the whole command.
    pub args: Vec<String>,
    /// True when the arguments were given as a JSON array (exec form).
    pub json: bool,
    /// Heredocs started on this instruction's line, in order.
    pub heredocs: Vec<Heredoc>,
    /// For ONBUILD: the trigger instruction.
    pub children: Vec<Node>,
    /// The logical line as written, continuations joined (escape and newline removed), without
    /// heredoc bodies.
    /// Shared with the typed [`super::instructions::Command`] made from the node (one copy of
    /// a huge line, not two).
    pub original: std::sync::Arc<str>,
    /// The whole instruction: from the keyword to the end of its last line (heredoc bodies and
    /// their terminators included, the final newline excluded).
    pub span: Span,
    /// Where the arguments start in the source (after the keyword and flags), or the end of the
    /// line when there are none.
    pub args_span: Span,
    /// Comment lines directly above the instruction (without `#`).
    pub comments: Vec<String>,
}

/// A `--name[=value]` flag of an instruction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Flag {
    /// The flag as BuildKit keeps it: `--name=value` or `--name`, quotes and escapes removed.
    pub text: String,
    /// Where it is written.
    pub span: Span,
}

/// A here-document (`<<EOF` ... `EOF`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Heredoc {
    /// The delimiter word, quotes removed.
    pub name: String,
    /// False when any part of the delimiter was quoted (`<<"EOF"`, `<<'EOF'`): the body must
    /// then not be variable-expanded.
    pub expand: bool,
    /// `<<-`: leading tabs were stripped from the body lines (already done in `content`).
    pub chomp: bool,
    /// The file descriptor before `<<` (`3<<EOF`), 0 when absent.
    pub fd: u32,
    /// The body, each line with its newline, without the terminator line.
    pub content: String,
    /// The body and terminator lines.
    pub span: Span,
}

impl Dockerfile {
    /// The text of 1-based line `line` (without its newline).
    pub fn line_text(&self, line: usize) -> &str {
        self.lines.line_text(&self.source, line)
    }

    /// The span of the byte range `start..end` of [`Dockerfile::source`].
    pub fn span(&self, start: usize, end: usize) -> Span {
        self.lines.span(&self.source, start, end)
    }
}
