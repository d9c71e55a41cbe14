//! `rbuild logout [HOST]`.

use clap::Args;

use super::common::server_host;
use super::Globals;
use crate::registry;

#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// Registry host (default: docker.io)
    #[arg(value_name = "SERVER")]
    pub server: Option<String>,
}

pub fn run(_globals: &Globals, args: LogoutArgs) -> anyhow::Result<i32> {
    let host = server_host(args.server.as_deref());
    if registry::logout(&host)? {
        println!("Removing login credentials for {host}");
    } else {
        println!("Not logged in to {host}");
    }
    Ok(0)
}
