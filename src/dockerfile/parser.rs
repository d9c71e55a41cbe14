//! The parser driver: runs the pest grammar (`grammar/dockerfile.pest`) and builds the raw AST.
//!
//! Steps: (1) the `directives` rule reads parser directives; (2) `chunk_backslash` or
//! `chunk_backtick` (chosen by the escape directive) reads blank lines, comments and
//! instructions with their continuations; each instruction's physical-line segments are joined
//! into a logical line, which [`super::line_parsers`] splits into keyword, flags and arguments;
//! (3) when an instruction line names heredocs, their bodies are read here, line by line, and
//! the grammar resumes after the last terminator.

use std::borrow::Cow;

use pest::iterators::Pair;
use pest::Parser as _;

use super::ast::{Directive, Directives, Dockerfile, Flag, Heredoc, LineIndex, Node, Warning};
use super::error::{ErrorKind, ParseError};
use super::heredoc;
use super::line_parsers::{node_from_line, RawNode};

#[derive(pest_derive::Parser)]
#[grammar = "../grammar/dockerfile.pest"]
struct Grammar;

/// A logical line: physical-line segments joined, with a map back to source offsets. A line
/// of one segment (most) borrows its text from the source.
struct LogicalLine<'s> {
    text: Cow<'s, str>,
    /// (offset in `text`, offset in the source) where each segment starts.
    map: Vec<(usize, usize)>,
    /// Source offset just past the last segment.
    source_end: usize,
}

impl LogicalLine<'_> {
    /// Source offset of `text` offset `pos`.
    fn source_pos(&self, pos: usize) -> usize {
        let i = self.map.partition_point(|&(l, _)| l <= pos);
        if i == 0 {
            return self.map.first().map_or(self.source_end, |m| m.1);
        }
        let (l, s) = self.map[i - 1];
        if i == self.map.len() && pos >= self.text.len() {
            return self.source_end.max(s);
        }
        s + (pos - l)
    }
}

struct Builder<'a> {
    source: &'a str,
    file: &'a str,
    lines: LineIndex,
    escape: char,
    warnings: Vec<Warning>,
}

impl Builder<'_> {
    fn error(&self, pos: usize, kind: ErrorKind) -> ParseError {
        ParseError::at(self.file, self.source, &self.lines, pos, kind)
    }

    fn span(&self, start: usize, end: usize) -> super::ast::Span {
        self.lines.span(self.source, start, end)
    }
}

/// Parses `source` into the raw AST. `file_name` is used in error messages.
pub fn parse(source: &str, file_name: &str) -> Result<Dockerfile, ParseError> {
    parse_owned(source.to_string(), file_name)
}

/// [`parse`] for text the caller owns: it moves into the returned [`Dockerfile`] rather than
/// being copied (a Dockerfile can be large: a 50 MB LABEL is one line).
pub fn parse_owned(owned: String, file_name: &str) -> Result<Dockerfile, ParseError> {
    let source = owned.as_str();
    let mut b = Builder {
        source,
        file: file_name,
        lines: LineIndex::new(source),
        escape: '\\',
        warnings: Vec::new(),
    };
    if let Some(pos) = source.find('\0') {
        let mut err = b.error(pos, ErrorKind::NulByte);
        // Shown as a visible symbol: a terminal prints nothing for NUL, which would put the
        // caret one column off.
        err.source_line = err.source_line.replace('\0', "\u{2400}");
        return Err(err);
    }
    let (directives, mut pos) = parse_directives(&mut b)?;
    b.escape = directives.escape;
    let entry = if b.escape == '`' {
        Rule::chunk_backtick
    } else {
        Rule::chunk_backslash
    };

    // About one instruction per 80 bytes in real files; saves regrowing a large vector. No
    // more than one per line (a huge one-line LABEL is one node, not 650,000 reserved ones).
    let mut nodes = Vec::with_capacity((source.len() / 80 + 1).min(b.lines.line_count()));
    let mut comments: Vec<String> = Vec::new();
    'chunks: while pos < source.len() {
        let base = pos;
        let mut pairs = Grammar::parse(entry, &source[base..]).map_err(|e| {
            let at = match e.location {
                pest::error::InputLocation::Pos(p) => p,
                pest::error::InputLocation::Span((p, _)) => p,
            };
            b.error(base + at, ErrorKind::Invalid(format!("syntax error: {e}")))
        })?;
        let Some(chunk) = pairs.next() else { break };
        let chunk_end = base + chunk.as_span().end();
        for pair in chunk.into_inner() {
            match pair.as_rule() {
                Rule::comment_line => {
                    let text = pair.as_str().trim();
                    let text = text.strip_prefix('#').unwrap_or(text).trim();
                    if text.is_empty() {
                        comments.clear();
                    } else {
                        comments.push(text.to_string());
                    }
                }
                Rule::instruction | Rule::instruction_any => {
                    let Some((mut node, line)) = instruction(&mut b, pair, base)? else {
                        continue;
                    };
                    node.comments = std::mem::take(&mut comments);
                    if needs_heredocs(&node) && line.text.contains("<<") {
                        let body_start = line_after(source, line.source_end);
                        let markers = heredoc::markers(&line.text)
                            .map_err(|(at, kind)| b.error(line.source_pos(at), kind))?;
                        if !markers.is_empty() {
                            let end = read_heredocs(&b, &line, markers, body_start, &mut node)?;
                            nodes.push(node);
                            pos = end;
                            continue 'chunks;
                        }
                    }
                    nodes.push(node);
                }
                _ => {}
            }
        }
        if chunk_end == base {
            return Err(b.error(base, ErrorKind::Invalid("syntax error".into())));
        }
        pos = chunk_end;
    }

    if nodes.is_empty() {
        return Err(b.error(0, ErrorKind::EmptyFile));
    }
    let Builder {
        warnings, lines, ..
    } = b;
    Ok(Dockerfile {
        file_name: file_name.to_string(),
        source: owned,
        directives,
        nodes,
        warnings,
        lines,
    })
}

/// Reads the directive block; returns the directives and the offset where the body starts.
fn parse_directives(b: &mut Builder<'_>) -> Result<(Directives, usize), ParseError> {
    let mut directives = Directives::default();
    let mut pairs = Grammar::parse(Rule::directives, b.source)
        .map_err(|_| b.error(0, ErrorKind::Invalid("syntax error".into())))?;
    let Some(block) = pairs.next() else {
        return Ok((directives, 0));
    };
    let end = block.as_span().end();
    for line in block.into_inner() {
        if line.as_rule() != Rule::directive_line {
            continue;
        }
        let line_span = line.as_span();
        let mut name = String::new();
        let mut value = String::new();
        for part in line.into_inner() {
            match part.as_rule() {
                Rule::directive_name => name = part.as_str().to_ascii_lowercase(),
                Rule::directive_value => {
                    value = part
                        .as_str()
                        .trim_end_matches([' ', '\t', '\r'])
                        .to_string()
                }
                _ => {}
            }
        }
        let text = line_span.as_str().trim_end_matches(['\n', '\r']);
        let start = line_span.start() + (text.len() - text.trim_start().len());
        let directive = Directive {
            name: name.clone(),
            value: value.clone(),
            span: b.span(start, line_span.start() + text.len()),
        };
        let slot = match name.as_str() {
            "escape" => &mut directives.escape_directive,
            "syntax" => &mut directives.syntax,
            _ => &mut directives.check,
        };
        if slot.is_some() {
            return Err(b.error(start, ErrorKind::DuplicateDirective(name)));
        }
        if name == "escape" {
            directives.escape = match value.as_str() {
                "\\" => '\\',
                "`" => '`',
                _ => return Err(b.error(start, ErrorKind::InvalidEscape(value))),
            };
        }
        *slot = Some(directive);
    }
    Ok((directives, end))
}

/// Builds the node of one `instruction` pair. `None` for a logical line with no text.
fn instruction<'s>(
    b: &mut Builder<'s>,
    pair: Pair<'_, Rule>,
    base: usize,
) -> Result<Option<(Node, LogicalLine<'s>)>, ParseError> {
    let source = b.source;
    let pair_span = pair.as_span();
    let mut line = LogicalLine {
        text: Cow::Borrowed(""),
        map: Vec::new(),
        source_end: base + pair_span.start(),
    };
    let mut empty_continuation = false;
    for part in pair.into_inner() {
        match part.as_rule() {
            Rule::head | Rule::segment => {
                let span = part.as_span();
                let start = base + span.start();
                let mut end = base + span.end();
                // A `\r` before the newline belongs to the line ending.
                if source[..end].ends_with('\r') && source[end..].starts_with('\n') {
                    end -= 1;
                }
                let text = &source[start..end];
                line.map.push((line.text.len(), start));
                if line.map.len() == 1 {
                    line.text = Cow::Borrowed(text);
                } else {
                    line.text.to_mut().push_str(text);
                }
                line.source_end = end;
            }
            Rule::skipped_line if !part.as_str().trim_start().starts_with('#') => {
                empty_continuation = true;
            }
            _ => {}
        }
    }
    if line.text.trim().is_empty() {
        return Ok(None);
    }
    // The instruction ends at its last physical line (without the newline).
    let text = pair_span.as_str();
    let end = base + pair_span.start() + strip_eol(text).len();
    let raw = node_from_line(&line.text, 0, b.escape)
        .map_err(|(at, kind)| b.error(line.source_pos(at), kind))?;
    let node = to_node(b, &line, raw, Some(end));
    if empty_continuation {
        b.warnings.push(Warning {
            message: format!(
                "empty continuation line found in: {}",
                shorten(&line.text, 80)
            ),
            span: node.span,
        });
    }
    Ok(Some((node, line)))
}

/// Converts a split line to a node; `span_end` overrides where the node's span ends (the end of
/// its last physical line rather than of its text).
fn to_node(b: &Builder<'_>, line: &LogicalLine, raw: RawNode, span_end: Option<usize>) -> Node {
    let start = line.source_pos(raw.start);
    let end = line.source_pos(raw.end);
    let span_end = span_end.unwrap_or(end);
    let args_start = line.source_pos(raw.args_start);
    Node {
        flags: raw
            .flags
            .into_iter()
            .map(|(text, s, e)| Flag {
                text,
                span: b.span(line.source_pos(s), line.source_pos(e)),
            })
            .collect(),
        args: raw.args,
        json: raw.json,
        heredocs: Vec::new(),
        children: raw
            .child
            .into_iter()
            .map(|c| to_node(b, line, *c, None))
            .collect(),
        keyword: raw.keyword,
        original: line.text[raw.start..raw.end].into(),
        span: b.span(start, span_end.max(start)),
        args_span: b.span(args_start, end.max(args_start)),
        comments: Vec::new(),
    }
}

/// RUN, COPY and ADD (also as an ONBUILD trigger) in shell form can have heredocs.
fn needs_heredocs(node: &Node) -> bool {
    let node = match node.children.first() {
        Some(child) if node.keyword == "onbuild" => child,
        _ => node,
    };
    matches!(node.keyword.as_str(), "run" | "copy" | "add") && !node.json
}

/// The offset of the start of the line after the one containing `pos`.
fn line_after(source: &str, pos: usize) -> usize {
    match source[pos..].find('\n') {
        Some(i) => pos + i + 1,
        None => source.len(),
    }
}

/// Reads the heredoc bodies starting at `pos`; returns the offset after the last terminator.
fn read_heredocs(
    b: &Builder<'_>,
    line: &LogicalLine,
    markers: Vec<heredoc::Marker>,
    mut pos: usize,
    node: &mut Node,
) -> Result<usize, ParseError> {
    let source = b.source;
    for marker in markers {
        let body_start = pos;
        let mut content = String::new();
        let mut terminated = false;
        while pos < source.len() {
            let next = line_after(source, pos);
            let physical = &source[pos..next];
            pos = next;
            let mut candidate = physical.trim_end_matches(['\n', '\r']);
            if marker.chomp {
                candidate = candidate.trim_start_matches('\t');
            }
            if candidate == marker.name {
                terminated = true;
                break;
            }
            if marker.chomp {
                content.push_str(physical.trim_start_matches('\t'));
            } else {
                content.push_str(physical);
            }
        }
        if !terminated {
            return Err(b.error(
                line.source_pos(marker.start),
                ErrorKind::UnterminatedHeredoc(marker.name),
            ));
        }
        let body_end = strip_eol(&source[..pos]).len();
        node.heredocs.push(Heredoc {
            name: marker.name,
            expand: marker.expand,
            chomp: marker.chomp,
            fd: marker.fd,
            content,
            span: b.span(body_start, body_end.max(body_start)),
        });
    }
    let end = strip_eol(&source[..pos]).len();
    node.span = b.span(node.span.start, end.max(node.span.start));
    Ok(pos)
}

/// `s` without one trailing `\n` or `\r\n`.
fn strip_eol(s: &str) -> &str {
    let s = s.strip_suffix('\n').unwrap_or(s);
    s.strip_suffix('\r').unwrap_or(s)
}

/// `text` cut to at most `max` characters, with `...` when cut.
fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}...", &text[..at]),
        None => text.to_string(),
    }
}
