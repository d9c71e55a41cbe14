//! Helper for `bench/context.sh`: generates a large build context and times scans of it.
//!
//! ```text
//! context_scan generate <dir> <files>
//! context_scan first <dir> <cache-dir> <runs>    # scans with an empty cache
//! context_scan rescan <dir> <cache-dir> <runs>   # scans with a filled cache
//! ```
//! Prints one line per run (seconds) and the median.

use std::path::Path;
use std::time::Instant;

use rbuild::context::{ContextSnapshot, IgnoreMatcher, MetadataCache};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo bench` appends --bench; ignore it.
    let args: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| *a != "--bench")
        .collect();
    match args.as_slice() {
        ["generate", dir, files] => generate(Path::new(dir), files.parse().expect("file count")),
        [mode @ ("first" | "rescan"), dir, cache, runs] => time_scans(
            mode,
            Path::new(dir),
            Path::new(cache),
            runs.parse().expect("runs"),
        ),
        _ => {
            eprintln!("usage: context_scan generate DIR FILES | first|rescan DIR CACHE RUNS");
            std::process::exit(2);
        }
    }
}

/// `files` files of 100 to 4,195 bytes, 100 per directory, in two directory levels.
fn generate(dir: &Path, files: usize) {
    for i in 0..files {
        let sub = dir.join(format!("d{:03}/e{:02}", i / 1000, (i / 100) % 10));
        if i % 100 == 0 {
            std::fs::create_dir_all(&sub).expect("mkdir");
        }
        let size = 100 + (i * 7919) % 4096;
        let content: Vec<u8> = (0..size).map(|j| ((i + j * 31) % 251) as u8).collect();
        std::fs::write(sub.join(format!("f{i:06}.dat")), content).expect("write");
    }
}

fn time_scans(mode: &str, dir: &Path, cache_path: &Path, runs: usize) {
    let ignore = IgnoreMatcher::empty();
    let mut times = Vec::new();
    for run in 0..runs {
        if mode == "first" {
            let _ = std::fs::remove_dir_all(cache_path);
        }
        let start = Instant::now();
        let mut cache = MetadataCache::open(cache_path).expect("open cache");
        let snapshot = ContextSnapshot::scan(dir, &ignore, &mut cache).expect("scan");
        let stats = cache.stats();
        drop(cache);
        let seconds = start.elapsed().as_secs_f64();
        println!(
            "{mode} run {}: {seconds:.3} s ({} entries, {} cache hits, {} files hashed)",
            run + 1,
            snapshot.entries().len(),
            stats.hits,
            stats.misses
        );
        times.push(seconds);
    }
    times.sort_by(f64::total_cmp);
    println!("{mode} median: {:.3} s", times[times.len() / 2]);
}
