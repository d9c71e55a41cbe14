//! Bounds on what an image may contain, checked where images and layers enter the store
//! (`load`, `import`, pull, the layer applier), so a crafted image fails there with a clear
//! error instead of much later (a `run` that spends minutes before `File name too long`, an
//! image index bloated by hundreds of thousands of tags).

/// Longest path Linux accepts, counting its terminating NUL (`PATH_MAX`).
pub const PATH_MAX: usize = 4096;

/// Longest file name component Linux filesystems accept (`NAME_MAX`).
pub const NAME_MAX: usize = 255;

/// Room kept for the store directory a layer is unpacked in (`<root>/snapshots/.unpack-…/`):
/// layers are applied with full host paths, so an image path must fit in `PATH_MAX` together
/// with that directory. A store root of up to ~200 bytes leaves every image path that passed
/// `load` appliable.
pub const STORE_PATH_RESERVE: usize = 256;

/// Longest path (`/` + the entry's path, with the NUL) an image may hold.
pub const IMAGE_PATH_MAX: usize = PATH_MAX - STORE_PATH_RESERVE;

/// Most layers an image may have: overlayfs stacks at most 500 lower directories
/// (`OVL_MAX_STACK`), so a `run` of a deeper image could never mount it. (Docker's own limit
/// is lower, 125–127.)
pub const MAX_LAYERS: usize = 500;

/// Most tags one image may get from one archive. Docker has no cap; every tag is a record in
/// the image index, and an archive naming 300,000 of them made an 82 MB index.
pub const MAX_TAGS_PER_IMAGE: usize = 1000;

/// Most tags one archive may create in all.
pub const MAX_TAGS_PER_ARCHIVE: usize = 10_000;

/// Most images one archive may hold (entries of `manifest.json` or `index.json`).
pub const MAX_IMAGES_PER_ARCHIVE: usize = 10_000;

/// Why `path` (an entry path relative to the image root, `/`-separated) cannot be unpacked:
/// a component longer than [`NAME_MAX`] (a whiteout `.wh.<name>` may be 4 bytes longer: it
/// names a file of up to `NAME_MAX`), or the absolute path `/<path>` not shorter than
/// [`IMAGE_PATH_MAX`]. `None` when it can.
pub fn path_problem(path: &[u8]) -> Option<String> {
    // "/" + path + NUL
    if path.len() + 2 > IMAGE_PATH_MAX {
        return Some(format!(
            "its path is {} bytes; at most {} fit in Linux's PATH_MAX ({PATH_MAX}) below the store's directory",
            path.len(),
            IMAGE_PATH_MAX - 2
        ));
    }
    for c in path.split(|b| *b == b'/') {
        let limit = if c.starts_with(b".wh.") {
            NAME_MAX + 4
        } else {
            NAME_MAX
        };
        if c.len() > limit {
            return Some(format!(
                "its path component {:?} is {} bytes; Linux allows at most {NAME_MAX} (NAME_MAX)",
                abbreviate(&String::from_utf8_lossy(c)),
                c.len()
            ));
        }
    }
    None
}

/// Why a symlink target cannot be created (`symlink(2)` takes at most `PATH_MAX` bytes with
/// the NUL). `None` when it can.
pub fn link_target_problem(target: &[u8]) -> Option<String> {
    (target.len() + 1 > PATH_MAX).then(|| {
        format!(
            "its link target is {} bytes; Linux allows at most {} (PATH_MAX {PATH_MAX})",
            target.len(),
            PATH_MAX - 1
        )
    })
}

/// Why the host path `path` (a layer entry's destination) cannot be used (`PATH_MAX`).
pub fn host_path_problem(path: &std::path::Path) -> Option<String> {
    let len = path.as_os_str().len();
    (len + 1 > PATH_MAX).then(|| {
        format!(
            "unpacked at {}, its path would be {len} bytes; Linux allows at most {} (PATH_MAX {PATH_MAX})",
            abbreviate(&path.to_string_lossy()),
            PATH_MAX - 1
        )
    })
}

/// A long name shortened for an error message: its start, `…`, its end.
pub fn abbreviate(s: &str) -> String {
    const HEAD: usize = 60;
    const TAIL: usize = 40;
    let chars: Vec<char> = s.chars().collect();
    if chars.len() <= HEAD + TAIL + 1 {
        return s.to_string();
    }
    let head: String = chars[..HEAD].iter().collect();
    let tail: String = chars[chars.len() - TAIL..].iter().collect();
    format!("{head}…{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_linux_can_hold_pass_longer_ones_fail() {
        let name = "n".repeat(NAME_MAX);
        assert_eq!(path_problem(name.as_bytes()), None);
        assert!(path_problem(format!("{name}x").as_bytes())
            .unwrap()
            .contains("NAME_MAX"));
        // A whiteout of a longest name is fine.
        assert_eq!(path_problem(format!("d/.wh.{name}").as_bytes()), None);
        let deep = "a/".repeat((IMAGE_PATH_MAX - 2) / 2);
        let deep = deep.trim_end_matches('/');
        assert_eq!(path_problem(deep.as_bytes()), None);
        assert!(path_problem(format!("{deep}/b").as_bytes())
            .unwrap()
            .contains("PATH_MAX"));
        assert_eq!(link_target_problem(&[b'x'; PATH_MAX - 1]), None);
        assert!(link_target_problem(&[b'x'; PATH_MAX]).is_some());
    }

    #[test]
    fn long_names_are_abbreviated() {
        let long = "a/".repeat(5000);
        let short = abbreviate(&long);
        assert!(short.len() < 120 && short.contains('…'));
        assert_eq!(abbreviate("etc/passwd"), "etc/passwd");
    }
}
