//! Path resolution inside a root directory (symlinks never lead out of it).

use std::path::{Component, Path, PathBuf};

/// Maximum number of symlinks followed while resolving one path (as the kernel's `ELOOP`).
const MAX_SYMLINKS: usize = 40;

/// Resolves `path` as if `root` were `/`: absolute symlinks restart at `root`, `..` stops at
/// `root`. Components that do not exist are appended as they are. The result is always
/// inside `root`.
pub fn resolve_in_root(root: &Path, path: &Path) -> PathBuf {
    let mut resolved = PathBuf::new(); // relative to root
    let mut pending: Vec<std::ffi::OsString> = components(path);
    pending.reverse();
    let mut links = 0;
    while let Some(part) = pending.pop() {
        if part == ".." {
            resolved.pop();
            continue;
        }
        let candidate = resolved.join(&part);
        let full = root.join(&candidate);
        match std::fs::symlink_metadata(&full) {
            Ok(meta) if meta.file_type().is_symlink() && links < MAX_SYMLINKS => {
                links += 1;
                let target = match std::fs::read_link(&full) {
                    Ok(t) => t,
                    Err(_) => {
                        resolved = candidate;
                        continue;
                    }
                };
                if target.is_absolute() {
                    resolved = PathBuf::new();
                }
                let mut parts = components(&target);
                parts.reverse();
                pending.extend(parts);
            }
            _ => resolved = candidate,
        }
    }
    root.join(resolved)
}

fn components(path: &Path) -> Vec<std::ffi::OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(p) => Some(p.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect()
}

/// Makes sure `dest` (inside `root`) exists as a directory (`dir`) or a file, creating it and
/// any missing parents. Every path created is pushed (relative to `root`, parents first) onto
/// `created`, so it can be removed from the change set afterwards. Returns the host path.
pub fn ensure_mountpoint(
    root: &Path,
    dest: &Path,
    dir: bool,
    created: &mut Vec<PathBuf>,
) -> std::io::Result<PathBuf> {
    let full = resolve_in_root(root, dest);
    let rel = full
        .strip_prefix(root)
        .unwrap_or(Path::new(""))
        .to_path_buf();
    let mut current = root.to_path_buf();
    let parts: Vec<_> = rel.components().collect();
    for (i, part) in parts.iter().enumerate() {
        current.push(part);
        let last = i + 1 == parts.len();
        if std::fs::symlink_metadata(&current).is_ok() {
            continue;
        }
        if last && !dir {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&current)?;
        } else {
            std::fs::create_dir(&current)?;
        }
        created.push(current.strip_prefix(root).unwrap_or(&current).to_path_buf());
    }
    Ok(full)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn symlinks_stay_inside_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("real/sub")).unwrap();
        symlink("/real", root.join("abs")).unwrap();
        symlink("../../../../..", root.join("up")).unwrap();
        symlink("loop", root.join("loop")).unwrap();
        assert_eq!(
            resolve_in_root(root, Path::new("/abs/sub")),
            root.join("real/sub")
        );
        assert_eq!(
            resolve_in_root(root, Path::new("/up/etc/passwd")),
            root.join("etc/passwd")
        );
        assert_eq!(resolve_in_root(root, Path::new("/../../x")), root.join("x"));
        assert_eq!(resolve_in_root(root, Path::new("/loop")), root.join("loop"));
    }

    #[test]
    fn mountpoints_record_what_they_create() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("etc")).unwrap();
        let mut created = Vec::new();
        let p = ensure_mountpoint(root, Path::new("/etc/new/file"), false, &mut created).unwrap();
        assert!(p.is_file());
        assert_eq!(
            created,
            vec![PathBuf::from("etc/new"), PathBuf::from("etc/new/file")]
        );
        created.clear();
        ensure_mountpoint(root, Path::new("/etc"), true, &mut created).unwrap();
        assert!(created.is_empty());
    }
}
