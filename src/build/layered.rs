//! Reading the merged view of snapshot dirs (overlayfs lower dirs) without mounting them:
//! what `COPY --from`, destination checks and `--chown` look at.
//!
//! Each snapshot holds one layer in overlay form: a 0/0 character device is a whiteout, a
//! directory with `trusted.overlay.opaque=y` hides everything below it in lower layers.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fs;
use std::path::PathBuf;

use rbuild_runtime::changes::{is_opaque, is_whiteout};

/// The merged view of `lowers` (bottom to top).
#[derive(Debug, Clone, Copy)]
pub struct Layered<'a> {
    pub lowers: &'a [PathBuf],
}

/// (Re-exported for the callers that name it here; the rules live in `image::path`.)
use crate::image::path::components;

impl Layered<'_> {
    /// Where the merged entry at `rel` (components, no symlinks followed) is on disk.
    pub fn lookup(&self, rel: &[String]) -> Option<PathBuf> {
        if rel.is_empty() {
            return self.lowers.last().cloned();
        }
        'layers: for layer in self.lowers.iter().rev() {
            let full: PathBuf = rel.iter().fold(layer.clone(), |p, c| p.join(c));
            if let Ok(md) = fs::symlink_metadata(&full) {
                if is_whiteout(&md) {
                    return None;
                }
                return Some(full);
            }
            // Is the path hidden below this layer by a whiteout, an opaque dir or a file?
            let mut p = layer.clone();
            for c in &rel[..rel.len() - 1] {
                p = p.join(c);
                match fs::symlink_metadata(&p) {
                    Ok(md) if is_whiteout(&md) => return None,
                    Ok(md) if !md.is_dir() => return None,
                    Ok(_) if is_opaque(&p).unwrap_or(false) => return None,
                    Ok(_) => {}
                    Err(_) => continue 'layers,
                }
            }
        }
        None
    }

    /// The merged children of the directory at `rel`: name → disk path.
    pub fn list(&self, rel: &[String]) -> BTreeMap<OsString, PathBuf> {
        let mut out = BTreeMap::new();
        let mut hidden = BTreeSet::new();
        for layer in self.lowers.iter().rev() {
            let dir: PathBuf = rel.iter().fold(layer.clone(), |p, c| p.join(c));
            let Ok(md) = fs::symlink_metadata(&dir) else {
                continue;
            };
            if !md.is_dir() {
                break;
            }
            if let Ok(rd) = fs::read_dir(&dir) {
                for e in rd.flatten() {
                    let name = e.file_name();
                    if out.contains_key(&name) || hidden.contains(&name) {
                        continue;
                    }
                    match e.metadata() {
                        Ok(m) if is_whiteout(&m) => {
                            hidden.insert(name);
                        }
                        Ok(_) => {
                            out.insert(name, e.path());
                        }
                        Err(_) => {}
                    }
                }
            }
            if is_opaque(&dir).unwrap_or(false) {
                break;
            }
        }
        out
    }

    /// Resolves `path` (relative to the root) following symlinks inside the root (the last
    /// component too when `follow_last`). Returns the resolved components and the disk path.
    pub fn resolve(&self, path: &str, follow_last: bool) -> Option<(Vec<String>, PathBuf)> {
        let mut todo: Vec<String> = components(path).into_iter().rev().collect();
        let mut done: Vec<String> = Vec::new();
        let mut hops = 0;
        while let Some(c) = todo.pop() {
            done.push(c);
            let disk = self.lookup(&done)?;
            let md = fs::symlink_metadata(&disk).ok()?;
            if md.file_type().is_symlink() && (follow_last || !todo.is_empty()) {
                hops += 1;
                if hops > 40 {
                    return None;
                }
                let target = fs::read_link(&disk).ok()?;
                let target = target.to_string_lossy().into_owned();
                done.pop();
                if target.starts_with('/') {
                    done.clear();
                }
                for t in target.split('/').rev() {
                    match t {
                        "" | "." => {}
                        ".." => todo.push("..".into()),
                        _ => todo.push(t.to_string()),
                    }
                }
                // resolve ".." entries eagerly
                while todo.last().map(String::as_str) == Some("..") {
                    todo.pop();
                    done.pop();
                }
            }
        }
        let disk = self.lookup(&done)?;
        Some((done, disk))
    }

    /// Like [`Layered::resolve`] with the last component followed, but a path that does not
    /// exist (yet) is fine: symlinks along the existing part are followed, the missing rest is
    /// appended as written. This is where a COPY or WORKDIR creates `path`, so that a symlinked
    /// parent (`/var/run -> /run`, `/lib -> usr/lib`) is kept and written through.
    pub fn resolve_lenient(&self, path: &str) -> Vec<String> {
        let comps = components(path);
        for split in (0..=comps.len()).rev() {
            let prefix = comps[..split].join("/");
            if split == 0 {
                return comps;
            }
            if let Some((mut done, _)) = self.resolve(&prefix, true) {
                done.extend(comps[split..].iter().cloned());
                return done;
            }
        }
        comps
    }

    /// Reads a file of the merged view (`/etc/passwd`), empty when missing.
    pub fn read_to_string(&self, path: &str) -> String {
        self.resolve(path, true)
            .and_then(|(_, disk)| fs::read(disk).ok())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }
}

/// The chroot isolation's copy and tree diff read the snapshots through this view.
impl crate::image::layer::treediff::LowerView for Layered<'_> {
    fn lookup(&self, rel: &[String]) -> Option<PathBuf> {
        Layered::lookup(self, rel)
    }

    fn list(&self, rel: &[String]) -> std::collections::BTreeMap<OsString, PathBuf> {
        Layered::list(self, rel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_view_with_whiteouts() {
        let dir = tempfile::tempdir().unwrap();
        let low = dir.path().join("low");
        let up = dir.path().join("up");
        fs::create_dir_all(low.join("etc")).unwrap();
        fs::write(low.join("etc/a"), "a").unwrap();
        fs::write(low.join("etc/b"), "b").unwrap();
        fs::create_dir_all(up.join("etc")).unwrap();
        fs::write(up.join("etc/c"), "c").unwrap();
        std::os::unix::fs::symlink("/etc/c", up.join("link")).unwrap();
        let lowers = vec![low, up];
        let l = Layered { lowers: &lowers };
        let names: Vec<_> = l.list(&components("etc")).into_keys().collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(l.read_to_string("/link"), "c");
        assert_eq!(l.read_to_string("etc/a"), "a");
        assert!(l.lookup(&components("etc/zz")).is_none());
        std::os::unix::fs::symlink("etc", lowers[1].join("lnk")).unwrap();
        assert_eq!(l.resolve_lenient("/lnk/new/file"), ["etc", "new", "file"]);
        assert_eq!(l.resolve_lenient("/nope/x"), ["nope", "x"]);
    }
}
