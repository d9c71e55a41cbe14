//! Reading Dockerfiles: grammar, spanned AST, directives, typed instructions, variable expansion.
//!
//! Two steps, as in BuildKit:
//!
//! 1. [`parse`] reads the text into a raw AST ([`Dockerfile`] with [`Node`]s): parser
//!    directives, line continuations, comments, heredocs, flags, and arguments split per
//!    instruction but not expanded. Every node keeps its [`Span`] and original text.
//! 2. [`instructions::parse_instructions`] turns the AST into typed [`instructions::Stage`]s
//!    (split at FROM; the ARGs before the first FROM are kept as meta args), validating
//!    flags and argument counts. Word values stay raw: the build engine expands them later
//!    with the shell lexer (`shell` module).
//!
//! ```
//! let df = rbuild::dockerfile::parse("FROM alpine AS base\nRUN echo hi\n", "Dockerfile").unwrap();
//! assert_eq!(df.nodes[1].keyword, "run");
//! assert_eq!(df.nodes[1].span.start_line, 2);
//! let stages = rbuild::dockerfile::instructions::parse_instructions(&df).unwrap();
//! assert_eq!(stages.stages[0].name.as_deref(), Some("base"));
//! ```
//!
//! Every error is a [`ParseError`] naming file, line and column; its `Display` shows the line
//! with a caret under the column:
//!
//! ```text
//! Dockerfile:2:1: unknown instruction: RUNN (did you mean RUN?)
//!   2 | RUNN echo hi
//!       ^
//! ```

pub mod ast;
pub mod dump;
pub mod error;
pub mod eval;
mod heredoc;
pub mod instructions;
pub mod line_parsers;
pub mod lint;
mod parser;
pub mod shell;

pub use ast::{Directive, Directives, Dockerfile, Flag, Heredoc, Node, Span, Warning};
pub use error::{ErrorKind, ParseError};
pub use parser::parse;
