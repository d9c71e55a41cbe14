//! Reading Dockerfiles: grammar, spanned AST, directives, typed instructions, variable expansion.

pub mod shell;
