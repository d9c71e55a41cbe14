//! Helpers for the `build_*` integration tests: a store with the busybox base imported, build
//! contexts, and reading built images (config via `inspect`, files via the store's snapshots).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use sha2::{Digest as _, Sha256};

#[path = "../common/mod.rs"]
mod common;

#[allow(unused_imports)]
pub use common::{
    add_host_key, assert_failure, assert_success, host_tool_bundle, http, keyctl_bundle, ok_cmd,
    rbuild_bin, run_on_terminal, sha256_hex, stderr, stdout, testdata, write_file, TestEnv,
};

/// A test store with `busybox:latest` imported.
pub struct BuildEnv {
    pub env: TestEnv,
}

impl BuildEnv {
    pub fn new() -> BuildEnv {
        BuildEnv {
            env: TestEnv::with_base("busybox:latest"),
        }
    }

    /// A store with the same `busybox:latest` as `other` (saved there, loaded here), so
    /// images built on it can be compared byte for byte.
    pub fn same_base_as(other: &BuildEnv) -> BuildEnv {
        let env = TestEnv::new();
        let tar = env.path().join("base.tar");
        other
            .env
            .ok(&["save", "-o", tar.to_str().unwrap(), "busybox:latest"]);
        env.ok(&["load", "-i", tar.to_str().unwrap()]);
        BuildEnv { env }
    }

    /// A context dir with `files` (path, content); a path ending in `/` is a directory.
    pub fn context(&self, name: &str, files: &[(&str, &str)]) -> PathBuf {
        let dir = self.env.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        for (path, content) in files {
            if path.ends_with('/') {
                std::fs::create_dir_all(dir.join(path)).unwrap();
            } else {
                write_file(&dir, path, content);
            }
        }
        dir
    }

    /// Runs `rbuild build ARGS` and returns the output.
    pub fn build_out(&self, args: &[&str]) -> Output {
        self.env
            .cmd()
            .arg("build")
            .arg("--progress=plain")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("spawn rbuild")
    }

    /// Runs a build that must succeed; returns its stderr (the progress output).
    pub fn build(&self, args: &[&str]) -> String {
        let out = self.build_out(args);
        assert_success(&format!("rbuild build {args:?}"), &out);
        stderr(&out)
    }

    /// Runs a build that must fail; returns its stderr.
    pub fn build_fails(&self, args: &[&str]) -> String {
        let out = self.build_out(args);
        let stderr = assert_failure(&format!("rbuild build {args:?}"), &out);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        stderr
    }

    /// Builds quietly and returns the image ID.
    pub fn build_id(&self, args: &[&str]) -> String {
        let mut all = vec!["-q"];
        all.extend_from_slice(args);
        let out = self.build_out(&all);
        let id = assert_success(&format!("rbuild build {all:?}"), &out)
            .trim()
            .to_string();
        assert!(id.starts_with("sha256:") && id.len() == 71, "{id:?}");
        id
    }

    /// `rbuild inspect IMAGE` as JSON (the first element).
    pub fn inspect(&self, image: &str) -> serde_json::Value {
        self.env.inspect(image)
    }

    /// The image's snapshot dirs, bottom to top.
    pub fn snapshots(&self, image: &str) -> Vec<PathBuf> {
        let v = self.inspect(image);
        let diff_ids: Vec<String> = v["RootFS"]["Layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_str().unwrap().to_string())
            .collect();
        let mut chain = String::new();
        let mut out = Vec::new();
        for d in diff_ids {
            chain = if chain.is_empty() {
                d
            } else {
                format!(
                    "sha256:{}",
                    hex::encode(Sha256::digest(format!("{chain} {d}")))
                )
            };
            out.push(
                self.env
                    .root()
                    .join("snapshots")
                    .join(chain.trim_start_matches("sha256:")),
            );
        }
        out
    }

    /// The entry at `path` in the image's merged filesystem (no symlinks followed, whiteouts
    /// respected), as the disk path in a snapshot.
    pub fn image_path(&self, image: &str, path: &str) -> Option<PathBuf> {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let rel = path.trim_start_matches('/');
        for snap in self.snapshots(image).iter().rev() {
            let p = snap.join(rel);
            if let Ok(md) = std::fs::symlink_metadata(&p) {
                if md.file_type().is_char_device() && md.rdev() == 0 {
                    return None;
                }
                return Some(p);
            }
        }
        None
    }

    /// The content of the file at `path` in the image.
    pub fn image_file(&self, image: &str, path: &str) -> Option<String> {
        self.image_path(image, path)
            .and_then(|p| std::fs::read_to_string(p).ok())
    }

    /// Runs the image (its ENTRYPOINT + CMD, env, user and workdir) with `rbuild run --rm`
    /// and returns what it printed (stdout, then stderr).
    pub fn run_image(&self, image: &str) -> String {
        self.run_args(&[image])
    }

    /// Runs `/bin/sh -c SCRIPT sh ARGS...` in a container of `image` (`rbuild run --rm`) and
    /// returns its output (stdout, then stderr).
    pub fn run_in(&self, image: &str, script: &str, args: &[String]) -> String {
        let mut all: Vec<&str> = vec!["--entrypoint", "", image, "/bin/sh", "-c", script, "sh"];
        all.extend(args.iter().map(String::as_str));
        self.run_args(&all)
    }

    fn run_args(&self, args: &[&str]) -> String {
        let out = self
            .env
            .cmd()
            .args(["run", "--rm"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("spawn rbuild run");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "rbuild run {args:?} failed: {text}");
        text
    }
}

/// Lines of `progress` that say a step was a cache hit.
pub fn cached_steps(progress: &str) -> Vec<String> {
    // "#N [stage i/n] INSTRUCTION" lines whose "#N CACHED" follows.
    let mut names = std::collections::HashMap::new();
    let mut out = Vec::new();
    for line in progress.lines() {
        let Some(rest) = line.strip_prefix('#') else {
            continue;
        };
        let Some((n, text)) = rest.split_once(' ') else {
            continue;
        };
        if text.starts_with('[') {
            names.insert(n.to_string(), text.to_string());
        } else if text == "CACHED" {
            out.push(names.get(n).cloned().unwrap_or_default());
        }
    }
    out
}

/// `rbuild` in `dir`'s parent, for building testdata examples by path.
pub fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}
