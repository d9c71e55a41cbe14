//! docker's `--tmpfs /path[:options]`: a fresh tmpfs, `noexec,nosuid,nodev` unless the
//! options say otherwise (docker's defaults for this flag; `--mount type=tmpfs` has none).

use std::path::PathBuf;

use rbuild_runtime::{MountKind, MountSpec};

use super::ContainerError;

/// Parses one `--tmpfs` value: `size=` (docker's units: `64m`, or a percentage of memory),
/// `mode=` (octal), `ro`/`rw`, and any other mount(8) option (`exec`, `uid=1000` ...), later
/// options winning.
pub fn parse_tmpfs(value: &str) -> Result<MountSpec, ContainerError> {
    let bad = |reason: String| ContainerError::BadOption {
        flag: "--tmpfs",
        value: value.to_string(),
        reason,
    };
    let (destination, options) = value.split_once(':').unwrap_or((value, ""));
    if !destination.starts_with('/') || destination.trim_end_matches('/').is_empty() {
        return Err(bad(format!(
            "invalid mount path {destination:?}: it must be absolute and not /"
        )));
    }
    let mut size = None;
    let mut mode = None;
    let mut readonly = false;
    let mut extra: Vec<String> = ["noexec", "nosuid", "nodev"].map(String::from).to_vec();
    for option in options.split(',').filter(|o| !o.is_empty()) {
        match option.split_once('=') {
            Some(("size", v)) if v.ends_with('%') => extra.push(option.to_string()),
            Some(("size", v)) => {
                size = Some(
                    super::limits::parse_bytes(v)
                        .ok_or_else(|| bad(format!("invalid size {v:?}")))?,
                );
            }
            Some(("mode", v)) => {
                mode = Some(
                    u32::from_str_radix(v, 8)
                        .ok()
                        .filter(|m| *m <= 0o7777)
                        .ok_or_else(|| bad(format!("invalid mode {v:?}")))?,
                );
            }
            None if option == "ro" => readonly = true,
            None if option == "rw" => readonly = false,
            _ => extra.push(option.to_string()),
        }
    }
    Ok(MountSpec {
        destination: PathBuf::from(destination),
        kind: MountKind::Tmpfs {
            size,
            mode,
            options: extra,
        },
        readonly,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options() {
        let m = parse_tmpfs("/run:rw,size=64m,mode=1770,exec,uid=1000").unwrap();
        assert_eq!(m.destination, PathBuf::from("/run"));
        assert!(!m.readonly);
        assert_eq!(
            m.kind,
            MountKind::Tmpfs {
                size: Some(64 << 20),
                mode: Some(0o1770),
                options: ["noexec", "nosuid", "nodev", "exec", "uid=1000"]
                    .map(String::from)
                    .to_vec(),
            }
        );
        assert!(parse_tmpfs("/x:ro").unwrap().readonly);
        for bad in ["relative", "/", "/x:size=lots", "/x:mode=999"] {
            assert!(parse_tmpfs(bad).is_err(), "{bad}");
        }
    }
}
