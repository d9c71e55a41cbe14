//! Measures how long one `true` container takes: `run(spec{args: ["true"]})`, 20 times.
//!
//! `cargo run --release -p rbuild-runtime --example bench_true [ROOTFS]` (as root). Without
//! ROOTFS a busybox rootfs is built with testdata/base/busybox-rootfs.sh. Each run uses a
//! fresh overlay upper dir over the rootfs, as a RUN step does; the median and spread of
//! the overlay (with and without `volatile`) and the plain-directory rootfs are printed,
//! then (volatile overlay) what the seccomp filter and the pids cgroup each cost.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rbuild_runtime::{ContainerSpec, Rootfs, Stdio};

fn main() {
    rbuild_runtime::init_hook();
    let tmp = tempfile::tempdir().expect("temp dir");
    let rootfs = match std::env::args().nth(1) {
        Some(p) => PathBuf::from(p),
        None => {
            let dir = tmp.path().join("rootfs");
            let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../testdata/base/busybox-rootfs.sh");
            let ok = std::process::Command::new("bash")
                .arg(script)
                .arg(&dir)
                .status()
                .expect("run busybox-rootfs.sh")
                .success();
            assert!(ok, "busybox-rootfs.sh failed");
            dir
        }
    };
    let runs = 20;
    let mut overlay = Vec::new();
    let mut volatile = Vec::new();
    for i in 0..runs * 2 {
        let mut spec = overlay_spec(tmp.path(), &rootfs, &format!("{i}"));
        spec.volatile_overlay = i % 2 == 1;
        let start = Instant::now();
        let status = rbuild_runtime::run(&spec, Stdio::null()).expect("run");
        let elapsed = start.elapsed();
        if spec.volatile_overlay {
            volatile.push(elapsed);
        } else {
            overlay.push(elapsed);
        }
        assert!(status.success(), "true exited {status:?}");
    }
    let mut dir = Vec::new();
    for _ in 0..runs {
        let spec = ContainerSpec::new(Rootfs::Dir(rootfs.clone()), vec!["true".into()]);
        let start = Instant::now();
        let status = rbuild_runtime::run(&spec, Stdio::null()).expect("run");
        dir.push(start.elapsed());
        assert!(status.success(), "true exited {status:?}");
    }
    // Host-safety defaults, interleaved so that load changes hit every variant alike.
    let variants = [
        "neither",
        "seccomp only",
        "pids cgroup only",
        "both (default)",
    ];
    let mut times = vec![Vec::new(); variants.len()];
    for i in 0..runs * variants.len() {
        let v = i % variants.len();
        let mut spec = overlay_spec(tmp.path(), &rootfs, &format!("safety-{i}"));
        spec.volatile_overlay = true;
        if v == 0 || v == 2 {
            spec.seccomp = None;
        }
        if v == 0 || v == 1 {
            spec.resources.pids_max = None;
        }
        let start = Instant::now();
        let status = rbuild_runtime::run(&spec, Stdio::null()).expect("run");
        times[v].push(start.elapsed());
        assert!(status.success(), "true exited {status:?}");
    }
    report("overlay rootfs", &mut overlay);
    report("overlay rootfs, volatile", &mut volatile);
    report("directory rootfs", &mut dir);
    for (name, t) in variants.iter().zip(times.iter_mut()) {
        report(&format!("volatile overlay, {name}"), t);
    }
}

fn report(name: &str, times: &mut [Duration]) {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{name}: run(true) median {:.1} ms (min {:.1}, max {:.1}, n={})",
        ms(times[times.len() / 2]),
        ms(times[0]),
        ms(times[times.len() - 1]),
        times.len()
    );
}

/// A `true` container on a fresh overlay upper dir (`upper<name>`, `work<name>` under `tmp`)
/// over `rootfs`, as a RUN step gets.
fn overlay_spec(tmp: &Path, rootfs: &Path, name: &str) -> ContainerSpec {
    let upper = tmp.join(format!("upper{name}"));
    let work = tmp.join(format!("work{name}"));
    std::fs::create_dir_all(&upper).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    ContainerSpec::new(
        Rootfs::Overlay {
            lowers: vec![rootfs.to_path_buf()],
            upper,
            work,
        },
        vec!["true".into()],
    )
}
