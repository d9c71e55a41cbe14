//! `rbuild version`: what was built, from which commit, when (as `docker version`'s client
//! part). The commit and date come from build.rs at compile time.

use clap::Args;

use super::Globals;
use crate::image::oci::host_architecture;

/// The package version (Cargo.toml).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git commit rbuild was built from ("unknown" outside a checkout).
pub const GIT_COMMIT: &str = env!("RBUILD_GIT_COMMIT");
/// When it was built (UTC, RFC 3339; `SOURCE_DATE_EPOCH` when set at build time).
pub const BUILD_DATE: &str = env!("RBUILD_BUILD_DATE");

#[derive(Debug, Args)]
pub struct VersionArgs {}

pub fn run(_globals: &Globals, _args: VersionArgs) -> anyhow::Result<i32> {
    println!("Version:    {VERSION}");
    println!("Git commit: {GIT_COMMIT}");
    println!("Built:      {BUILD_DATE}");
    println!(
        "OS/Arch:    {}/{}",
        std::env::consts::OS,
        host_architecture()
    );
    Ok(0)
}
