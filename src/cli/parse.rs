//! `rbuild parse`: print a Dockerfile's instructions (BuildKit dump format, or JSON).

use std::path::PathBuf;

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
    let (name, source) = super::common::read_dockerfile(&args.file)?;
    let df = match dockerfile::decode(source, &name).and_then(|s| dockerfile::parse_owned(s, &name))
    {
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
