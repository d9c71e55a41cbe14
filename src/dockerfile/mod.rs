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
//! use rbuild::dockerfile::{self, instructions::{self, Instruction}};
//!
//! let df = dockerfile::parse("ARG V=1\nFROM alpine AS base\nRUN echo hi\n", "Dockerfile").unwrap();
//! assert_eq!(df.nodes[2].keyword, "run");
//! assert_eq!(df.nodes[2].span.start_line, 3);
//! assert_eq!(&*df.nodes[2].original, "RUN echo hi");
//!
//! let typed = instructions::parse_instructions(&df).unwrap();
//! assert_eq!(typed.meta_args.len(), 1);
//! let stage = &typed.stages[0];
//! assert_eq!((stage.name.as_deref(), stage.base.as_str()), (Some("base"), "alpine"));
//! assert!(matches!(stage.instructions[0].instruction, Instruction::Run(_)));
//! ```
//!
//! Public API at a glance:
//! - `decode(bytes: Vec<u8>, file_name: &str) -> Result<String, ParseError>`: a file's bytes as
//!   text (UTF-8 only; a UTF-16/32 byte order mark or invalid UTF-8 is an error at its line).
//! - `parse(source: &str, file_name: &str) -> Result<Dockerfile, ParseError>` (or
//!   `parse_owned(String, ..)`, which keeps the text without copying it): raw AST;
//!   `Dockerfile { directives, nodes, warnings, .. }`, each [`Node`] with `keyword` (lowercase),
//!   `flags`, `args`, `json`, `heredocs`, `children` (ONBUILD), `original`, `span`, `args_span`.
//! - `instructions::parse_instructions(&Dockerfile) -> Result<instructions::Stages, ParseError>`:
//!   `Stages { meta_args, stages }`, each [`instructions::Stage`] with `name`, `base`,
//!   `platform`, `span` and `instructions: Vec<Command>` (`Command { instruction, span,
//!   original }`, `instruction` an [`instructions::Instruction`]).
//! - `dump::dump(&Dockerfile) -> String`: BuildKit's AST dump (`rbuild parse`);
//!   `instructions::to_json` for `rbuild parse --json`.
//! - [`ParseError`] (`file`, `line`, `col`, `kind: Box<ErrorKind>`, `source_line`);
//!   [`ParseError::in_file`] builds one for a span of a parsed file (for later stages, e.g.
//!   expansion errors).
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
mod decode;
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
pub use decode::decode;
pub use error::{ErrorKind, ParseError};
pub use parser::{parse, parse_owned};
