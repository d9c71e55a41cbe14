//! `USER name|uid[:group|gid]` resolution against an image's `/etc/passwd` and `/etc/group`.
//!
//! The rules are docker's (moby/sys `user.GetExecUser`): a name must exist in `/etc/passwd`;
//! a number not found there is used as is with gid 0 and home `/`; a group, when given,
//! replaces the primary group and then no supplementary groups are added; without a group,
//! the supplementary groups are every `/etc/group` entry whose member list names the user.

use std::path::{Path, PathBuf};

use crate::changes::{is_opaque, is_whiteout};
use crate::paths::resolve_in_root;
use crate::spec::UserSpec;

/// Errors of user resolution.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("unable to find user {user}: no matching entries in passwd file")]
    UserNotFound { user: String },
    #[error("unable to find group {group}: no matching entries in group file")]
    GroupNotFound { group: String },
    #[error("invalid user specification {spec:?}: {reason}")]
    Invalid { spec: String, reason: &'static str },
    #[error("failed to read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Resolves `user` (`name`, `uid`, `name:group`, `uid:gid`, ...) against the
/// `/etc/passwd` and `/etc/group` of the root filesystem at `rootfs` (symlinks resolve
/// inside `rootfs`; missing files count as empty). An empty `user` means root.
pub fn resolve_user(rootfs: &Path, user: &str) -> Result<UserSpec, UserError> {
    resolve_user_in_layers(&[rootfs.to_path_buf()], user)
}

/// Like [`resolve_user`], for an overlay's lower directories (base first, topmost last):
/// each file is read from the topmost layer that has it.
pub fn resolve_user_in_layers(layers: &[PathBuf], user: &str) -> Result<UserSpec, UserError> {
    let passwd = read_from_layers(layers, "/etc/passwd")?;
    let group = read_from_layers(layers, "/etc/group")?;
    resolve_user_from(&passwd, &group, user)
}

/// Reads `file` as the merged view of `layers` shows it: from the topmost layer that has
/// it, unless a higher layer deleted it (a whiteout) or hid its directory (opaque).
fn read_from_layers(layers: &[PathBuf], file: &str) -> Result<String, UserError> {
    for layer in layers.iter().rev() {
        let path = resolve_in_root(layer, Path::new(file));
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if is_whiteout(&meta) => break,
            Ok(_) => {
                return std::fs::read(&path)
                    .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
                    .map_err(|source| UserError::Read { path, source })
            }
            Err(_) => {}
        }
        // An opaque or deleted directory on the way hides the layers below.
        let hidden = path
            .ancestors()
            .skip(1)
            .take_while(|dir| dir.starts_with(layer) && *dir != layer.as_path())
            .any(|dir| {
                std::fs::symlink_metadata(dir).is_ok_and(|m| is_whiteout(&m))
                    || is_opaque(dir).unwrap_or(false)
            });
        if hidden {
            break;
        }
    }
    Ok(String::new())
}

struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
}

struct GroupEntry<'a> {
    name: &'a str,
    gid: u32,
    members: Vec<&'a str>,
}

fn parse_passwd(text: &str) -> impl Iterator<Item = PasswdEntry<'_>> {
    text.lines().filter_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        if line.starts_with('#') || fields.len() < 6 {
            return None;
        }
        Some(PasswdEntry {
            name: fields[0],
            uid: fields[2].parse().ok()?,
            gid: fields[3].parse().ok()?,
            home: fields[5],
        })
    })
}

fn parse_group(text: &str) -> impl Iterator<Item = GroupEntry<'_>> {
    text.lines().filter_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        if line.starts_with('#') || fields.len() < 3 {
            return None;
        }
        let members = fields
            .get(3)
            .map(|m| {
                m.split(',')
                    .map(str::trim)
                    .filter(|m| !m.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        Some(GroupEntry {
            name: fields[0],
            gid: fields[2].parse().ok()?,
            members,
        })
    })
}

/// The pure core of [`resolve_user`]: `passwd` and `group` are the files' contents.
pub fn resolve_user_from(passwd: &str, group: &str, user: &str) -> Result<UserSpec, UserError> {
    let invalid = |reason| UserError::Invalid {
        spec: user.to_string(),
        reason,
    };
    let (user_part, group_part) = match user.split_once(':') {
        Some((u, g)) => {
            if g.is_empty() {
                return Err(invalid("empty group after ':'"));
            }
            (u, Some(g))
        }
        None => (user, None),
    };
    if user_part.is_empty() && group_part.is_some() {
        return Err(invalid("empty user before ':'"));
    }
    let user_part = if user_part.is_empty() { "0" } else { user_part };

    let by_name = parse_passwd(passwd).find(|e| e.name == user_part);
    let numeric = user_part.parse::<u32>().ok();
    let entry =
        by_name.or_else(|| numeric.and_then(|uid| parse_passwd(passwd).find(|e| e.uid == uid)));
    let (uid, mut gid, home, matched_name) = match (entry, numeric) {
        (Some(e), _) => (e.uid, e.gid, PathBuf::from(e.home), Some(e.name)),
        (None, Some(uid)) => (uid, 0, PathBuf::from("/"), None),
        (None, None) => {
            return Err(UserError::UserNotFound {
                user: user_part.to_string(),
            })
        }
    };

    let mut additional_gids = Vec::new();
    match group_part {
        Some(g) => {
            gid = match parse_group(group).find(|e| e.name == g) {
                Some(e) => e.gid,
                None => g.parse::<u32>().map_err(|_| UserError::GroupNotFound {
                    group: g.to_string(),
                })?,
            };
        }
        None => {
            if let Some(name) = matched_name {
                for e in parse_group(group) {
                    if e.members.contains(&name) && !additional_gids.contains(&e.gid) {
                        additional_gids.push(e.gid);
                    }
                }
            }
        }
    }
    Ok(UserSpec {
        uid,
        gid,
        additional_gids,
        home: Some(home),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
        # comment\n\
        app:x:1000:1000:app:/home/app:/bin/sh\n\
        www-data:x:33:33:www:/var/www:/bin/false\n\
        broken line\n";
    const GROUP: &str =
        "root:x:0:\nwheel:x:10:root,app\nstaff:x:50:app\napp:x:1000:\nwww-data:x:33:\n";

    fn resolve(user: &str) -> Result<UserSpec, UserError> {
        resolve_user_from(PASSWD, GROUP, user)
    }

    #[test]
    fn by_name_with_supplementary_groups() {
        let u = resolve("app").unwrap();
        assert_eq!((u.uid, u.gid), (1000, 1000));
        assert_eq!(u.additional_gids, vec![10, 50]);
        assert_eq!(u.home, Some(PathBuf::from("/home/app")));
    }

    #[test]
    fn root_and_empty() {
        for spec in ["", "root", "0"] {
            let u = resolve(spec).unwrap();
            assert_eq!((u.uid, u.gid), (0, 0), "{spec}");
            assert_eq!(u.home, Some(PathBuf::from("/root")), "{spec}");
        }
        assert_eq!(resolve("root").unwrap().additional_gids, vec![10]);
    }

    #[test]
    fn numeric_known_and_unknown() {
        let u = resolve("33").unwrap();
        assert_eq!((u.uid, u.gid), (33, 33));
        let u = resolve("4242").unwrap();
        assert_eq!((u.uid, u.gid), (4242, 0));
        assert!(u.additional_gids.is_empty());
        assert_eq!(u.home, Some(PathBuf::from("/")));
    }

    #[test]
    fn explicit_group_drops_supplementary_groups() {
        let u = resolve("app:staff").unwrap();
        assert_eq!((u.uid, u.gid), (1000, 50));
        assert!(u.additional_gids.is_empty());
        let u = resolve("1000:4000").unwrap();
        assert_eq!((u.uid, u.gid), (1000, 4000));
        let u = resolve("4242:www-data").unwrap();
        assert_eq!((u.uid, u.gid), (4242, 33));
    }

    #[test]
    fn errors_name_the_culprit() {
        let e = resolve("nosuch").unwrap_err();
        assert_eq!(
            e.to_string(),
            "unable to find user nosuch: no matching entries in passwd file"
        );
        let e = resolve("app:nogroup").unwrap_err();
        assert!(e.to_string().contains("nogroup"), "{e}");
        assert!(matches!(resolve("app:"), Err(UserError::Invalid { .. })));
        assert!(matches!(resolve(":app"), Err(UserError::Invalid { .. })));
    }

    #[test]
    fn reads_files_through_rootfs_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("data")).unwrap();
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("data/passwd"), PASSWD).unwrap();
        // An absolute symlink must resolve inside the rootfs, not on the host.
        std::os::unix::fs::symlink("/data/passwd", root.join("etc/passwd")).unwrap();
        std::fs::write(root.join("etc/group"), GROUP).unwrap();
        let u = resolve_user(root, "www-data").unwrap();
        assert_eq!((u.uid, u.gid), (33, 33));
        assert!(resolve_user(&root.join("missing"), "app").is_err());
        assert_eq!(resolve_user(&root.join("missing"), "7:8").unwrap().gid, 8);
    }

    #[test]
    fn layers_respect_whiteouts_and_opaque_dirs() {
        // Needs root (mknod of a whiteout, trusted.* xattr), as all of the runtime's tests.
        let dir = tempfile::tempdir().unwrap();
        let (base, mid, top) = (
            dir.path().join("b"),
            dir.path().join("m"),
            dir.path().join("t"),
        );
        for l in [&base, &mid, &top] {
            std::fs::create_dir_all(l.join("etc")).unwrap();
        }
        std::fs::write(base.join("etc/passwd"), "u:x:1:1::/:/bin/sh\n").unwrap();
        // mid deletes /etc/passwd: the user is gone.
        nix::sys::stat::mknod(
            &mid.join("etc/passwd"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::empty(),
            0,
        )
        .unwrap();
        let layers = vec![base.clone(), mid.clone()];
        assert!(resolve_user_in_layers(&layers, "u").is_err());
        // top makes /etc opaque with a fresh passwd of its own: that one counts.
        std::fs::write(top.join("etc/passwd"), "u:x:3:3::/:/bin/sh\n").unwrap();
        let layers = vec![base.clone(), mid, top.clone()];
        assert_eq!(resolve_user_in_layers(&layers, "u").unwrap().uid, 3);
        // An opaque /etc without passwd hides the base layer's.
        std::fs::remove_file(top.join("etc/passwd")).unwrap();
        let opaque = c"trusted.overlay.opaque";
        let path =
            std::ffi::CString::new(top.join("etc").into_os_string().into_encoded_bytes()).unwrap();
        // SAFETY: setxattr reads the NUL-terminated path and name and one value byte.
        let rc =
            unsafe { libc::setxattr(path.as_ptr(), opaque.as_ptr(), b"y".as_ptr().cast(), 1, 0) };
        assert_eq!(rc, 0);
        assert!(resolve_user_in_layers(&[base, top], "u").is_err());
    }

    #[test]
    fn layers_topmost_wins() {
        let dir = tempfile::tempdir().unwrap();
        let (low, high) = (dir.path().join("low"), dir.path().join("high"));
        std::fs::create_dir_all(low.join("etc")).unwrap();
        std::fs::create_dir_all(high.join("etc")).unwrap();
        std::fs::write(low.join("etc/passwd"), "u:x:1:1::/:/bin/sh\n").unwrap();
        std::fs::write(high.join("etc/passwd"), "u:x:2:2::/:/bin/sh\n").unwrap();
        let u = resolve_user_in_layers(&[low, high], "u").unwrap();
        assert_eq!(u.uid, 2);
    }
}
