//! `rbuild login [-u USER] [-p PASS | --password-stdin] [HOST]`.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{bail, Context};
use clap::Args;

use super::push::RegistryFlags;
use super::Globals;
use crate::registry::{self, Credentials};

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Registry host (default: docker.io)
    #[arg(value_name = "SERVER")]
    pub server: Option<String>,
    /// Username
    #[arg(short, long)]
    pub username: Option<String>,
    /// Password
    #[arg(short, long)]
    pub password: Option<String>,
    /// Take the password from stdin
    #[arg(long, conflicts_with = "password")]
    pub password_stdin: bool,
    #[command(flatten)]
    pub registry: RegistryFlags,
}

/// `https://host/v1/` and `host/` as docker accepts them → `host`.
pub(super) fn server_host(server: Option<&str>) -> String {
    let s = server.unwrap_or("docker.io");
    let s = s
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let s = s.split('/').next().unwrap_or(s);
    match s {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".into(),
        other => other.to_string(),
    }
}

pub fn run(globals: &Globals, args: LoginArgs) -> anyhow::Result<i32> {
    let host = server_host(args.server.as_deref());
    let stdin = std::io::stdin();
    let username = match args.username {
        Some(u) => u,
        None if stdin.is_terminal() && !args.password_stdin => {
            print!("Username: ");
            std::io::stdout().flush()?;
            let mut line = String::new();
            stdin.lock().read_line(&mut line)?;
            line.trim().to_string()
        }
        None => bail!("login needs a username (-u USER)"),
    };
    let password = match (args.password, args.password_stdin) {
        (Some(p), _) => {
            eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
            p
        }
        (None, true) => {
            let mut line = String::new();
            stdin
                .lock()
                .read_line(&mut line)
                .context("reading the password from stdin")?;
            line.trim_end_matches(['\n', '\r']).to_string()
        }
        (None, false) => bail!("login needs a password (-p PASSWORD or --password-stdin)"),
    };
    if username.is_empty() || password.is_empty() {
        bail!("username and password must not be empty");
    }
    let creds = Credentials { username, password };
    let place = registry::login(&host, &creds, &args.registry.options(globals))
        .with_context(|| format!("login to {host} failed"))?;
    eprintln!("Credentials saved in {place}");
    println!("Login Succeeded");
    Ok(0)
}
