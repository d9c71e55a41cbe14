//! `rbuild search HOST/TERM`: repositories of a private registry, from `/v2/_catalog`.

use anyhow::bail;
use clap::Args;

use super::push::RegistryFlags;
use super::Globals;
use crate::registry;

#[derive(Debug, Args)]
pub struct SearchArgs {
    /// Registry and search term (`registry.lan:5000/app`; `HOST/` lists every repository)
    #[arg(value_name = "HOST/TERM")]
    pub term: String,
    /// Print at most this many results
    #[arg(long, default_value_t = 25)]
    pub limit: usize,
    /// Print only the names
    #[arg(long)]
    pub quiet: bool,
    #[command(flatten)]
    pub registry: RegistryFlags,
}

pub fn run(globals: &Globals, args: SearchArgs) -> anyhow::Result<i32> {
    let (host, term) = match args.term.split_once('/') {
        Some((h, t)) if h.contains('.') || h.contains(':') || h == "localhost" => (h, t),
        _ => bail!(
            "search needs HOST/TERM (a private registry's /v2/_catalog); searching Docker Hub is not supported"
        ),
    };
    let repos = registry::catalog(host, term, &args.registry.options(globals))?;
    if !args.quiet {
        println!("NAME");
    }
    for r in repos.iter().take(args.limit) {
        println!("{host}/{r}");
    }
    Ok(0)
}
