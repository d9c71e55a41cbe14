//! `rbuild lint`: static checks for common Dockerfile mistakes (Docker's `build --check`).
//!
//! Text output: one `FILE:LINE:COL: warning: Rule: message` line per warning (`error:` under
//! `# check=error=true`), the rule's explanation under its first warning, then a summary line.
//! Exit status 0 without warnings, 1 with warnings or when the Dockerfile does not parse.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::Globals;
use crate::dockerfile::{self, lint::LintReport};

#[derive(Debug, Args)]
pub struct LintArgs {
    /// Dockerfile to check ("-" for stdin)
    #[arg(short = 'f', long = "file", default_value = "Dockerfile")]
    pub file: PathBuf,

    /// Output format
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

pub fn run(_globals: &Globals, args: LintArgs) -> anyhow::Result<i32> {
    let (name, source) = super::common::read_dockerfile(&args.file)?;
    let report = dockerfile::decode(source, &name)
        .and_then(|source| dockerfile::parse_owned(source, &name))
        .and_then(|df| {
            let stages = dockerfile::instructions::parse_instructions(&df)?;
            dockerfile::lint::lint(&df, &stages)
        });
    let report = match report {
        Ok(report) => report,
        Err(err) => {
            eprintln!("{err}");
            return Ok(1);
        }
    };
    match args.format {
        Format::Text => print!("{}", report.to_text(&name)),
        Format::Json => print_json(&name, &report)?,
    }
    Ok(i32::from(!report.warnings.is_empty()))
}

fn print_json(file: &str, report: &LintReport) -> anyhow::Result<()> {
    let warnings: Vec<_> = report
        .warnings
        .iter()
        .map(|w| {
            serde_json::json!({
                "rule": w.rule,
                "message": w.message,
                "description": w.description,
                "file": file,
                "line": w.span.start_line,
                "column": w.span.start_col,
                "end_line": w.span.end_line,
                "end_column": w.span.end_col,
            })
        })
        .collect();
    let out = serde_json::to_string_pretty(&serde_json::json!({
        "file": file,
        "error_on_warning": report.error_on_warning,
        "warnings": warnings,
    }))?;
    println!("{out}");
    Ok(())
}
