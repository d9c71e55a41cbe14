//! `-v` and (later) `--mount` and named volumes: what a container mounts besides its rootfs.

use std::fs;
use std::path::{Component, Path, PathBuf};

use rbuild_runtime::{MountKind, MountSpec};

use super::{io_err, ContainerError};

/// Parses `-v HOST:CONTAINER[:OPTIONS]`: `HOST` must be an absolute path (named volumes are
/// not supported) and is created as a directory when missing; `CONTAINER` must be absolute
/// and not `/`; `OPTIONS` is a comma-separated list of `ro`, `rw` (and SELinux/propagation
/// options, accepted and ignored).
pub fn parse_volume(spec: &str) -> Result<MountSpec, ContainerError> {
    let bad = |reason: &str| ContainerError::BadVolume {
        spec: spec.to_string(),
        reason: reason.to_string(),
    };
    let parts: Vec<&str> = spec.split(':').collect();
    let (host, target, options) = match parts.as_slice() {
        [h, t] => (*h, *t, ""),
        [h, t, o] => (*h, *t, *o),
        _ => return Err(bad("expected HOST-DIR:CONTAINER-DIR[:OPTIONS]")),
    };
    if !host.starts_with('/') {
        return Err(bad(
            "the host path must be absolute (named volumes are not supported)",
        ));
    }
    if !target.starts_with('/')
        || Path::new(target)
            .components()
            .all(|c| c == Component::RootDir)
    {
        return Err(bad("the container path must be absolute and not \"/\""));
    }
    let mut readonly = false;
    for option in options.split(',').filter(|o| !o.is_empty()) {
        match option {
            "ro" => readonly = true,
            "rw" => readonly = false,
            "z" | "Z" | "rprivate" | "private" | "rshared" | "shared" | "rslave" | "slave"
            | "nocopy" => {}
            other => return Err(bad(&format!("unknown option {other:?}"))),
        }
    }
    let source = PathBuf::from(host);
    if !source.exists() {
        fs::create_dir_all(&source).map_err(io_err(&source))?;
    }
    Ok(MountSpec {
        destination: PathBuf::from(target),
        kind: MountKind::Bind { source },
        readonly,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volumes() {
        let dir = tempfile::tempdir().unwrap();
        let host = dir.path().join("new/dir");
        let spec = format!("{}:/data:ro", host.display());
        let mount = parse_volume(&spec).unwrap();
        assert!(host.is_dir(), "a missing host dir is created");
        assert_eq!(mount.destination, PathBuf::from("/data"));
        assert!(mount.readonly);
        assert_eq!(
            mount.kind,
            MountKind::Bind {
                source: host.clone()
            }
        );
        let rw = parse_volume(&format!("{}:/data:rw,z", host.display())).unwrap();
        assert!(!rw.readonly);
        for bad in [
            "named:/data",
            "/host",
            "/host:relative",
            "/host:/",
            "/host:/data:bogus",
            "/a:/b:ro:extra",
        ] {
            let err = parse_volume(bad).unwrap_err().to_string();
            assert!(err.contains(bad), "{err}");
        }
    }
}
