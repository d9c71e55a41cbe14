//! The hidden `network-reaper` subcommand: removes rbuild's unused bridges once their
//! linger passed. The last user of a bridge starts it detached; see `crate::network::linger`.

pub fn run() -> anyhow::Result<i32> {
    crate::network::linger::reap()?;
    Ok(0)
}
