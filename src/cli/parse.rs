//! `rbuild parse`: print a Dockerfile's instructions (BuildKit dump format, or JSON).

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::Globals;
use crate::dockerfile;

#[derive(Debug, Args)]
pub struct ParseArgs {
    /// Dockerfile to read ("-" for stdin)
    #[arg(short = 'f', long = "file", default_value = "Dockerfile")]
    pub file: PathBuf,

    /// Print the typed instructions as JSON with source spans
    #[arg(long)]
    pub json: bool,
}

pub fn run(_globals: &Globals, args: ParseArgs) -> anyhow::Result<i32> {
    let (name, bytes) = if args.file.as_os_str() == "-" {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .context("reading the Dockerfile from stdin")?;
        ("Dockerfile".to_string(), bytes)
    } else {
        let bytes = std::fs::read(&args.file)
            .with_context(|| format!("reading {}", args.file.display()))?;
        (args.file.display().to_string(), bytes)
    };
    // Invalid UTF-8 is replaced (U+FFFD) rather than rejected, as BuildKit reads bytes.
    let source = String::from_utf8_lossy(&bytes);
    let df = match dockerfile::parse(&source, &name) {
        Ok(df) => df,
        Err(err) => return Ok(report(&err)),
    };
    if args.json {
        let typed = match dockerfile::instructions::parse_instructions(&df) {
            Ok(typed) => typed,
            Err(err) => return Ok(report(&err)),
        };
        let out = dockerfile::instructions::to_json(&df, &typed)?;
        println!("{out}");
    } else {
        for warning in &df.warnings {
            eprintln!(
                "{}:{}:{}: warning: {}",
                df.file_name, warning.span.start_line, warning.span.start_col, warning.message
            );
        }
        print!("{}", dockerfile::dump::dump(&df));
    }
    Ok(0)
}

/// Prints a parse error (it carries its own location and snippet) and returns exit status 1.
fn report(err: &dockerfile::ParseError) -> i32 {
    eprintln!("{err}");
    1
}
