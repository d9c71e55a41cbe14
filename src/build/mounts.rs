//! `RUN --mount`: cache, bind, secret and tmpfs mounts, turned into runtime mounts.
//!
//! - `type=cache`: a persistent directory `<store>/cache-mounts/<sha256(id)>` (id defaults to
//!   the target), created with `mode`/`uid`/`gid`; shared by all builds using the same id.
//! - `type=bind`: a path of the context (default) or of `from=stage|image`, read-only unless
//!   `rw` (then writes go to a throwaway copy). Context binds show the context as filtered by
//!   `.dockerignore`: the path is staged like a COPY.
//! - `type=secret`: the file given with `--secret id=ID,src=PATH` (or `env=VAR`), bind-mounted
//!   read-only at `target` (default `/run/secrets/ID`) and/or exposed as `env=NAME`. Secrets are
//!   never in a layer (the mount point is removed after the run), the history or the cache key.
//! - `type=tmpfs`: a fresh tmpfs (`size` in bytes, optional `k`/`m`/`g` suffix).
//! - `type=ssh`: the ssh-agent socket given with `--ssh ID=SOCKET` (id `default` unless set)
//!   bind-mounted at `target` (default `/run/buildkit/ssh_agent.N`, N counting the RUN's ssh
//!   mounts), `SSH_AUTH_SOCK` naming the first one. Like secrets, never in a layer (the mount
//!   point is removed after the run) nor in the cache key (only id and target are).
//!
//! What each mount contributes to the RUN's cache key is returned alongside it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rbuild_runtime::{MountKind, MountSpec};
use serde_json::{json, Value};

use super::copy::{self, CopySpec};
use super::layered::Layered;
use super::{io_err, BuildError};
use crate::context::ContextSnapshot;
use crate::dockerfile::instructions::{Mount, MountType};
use crate::image::path::components;
use crate::store::Store;

/// A mount with every value expanded, plus where bind sources come from.
pub(crate) struct MountInput<'a> {
    pub mount: Mount,
    /// For `from=`: the source's snapshot dirs and cache key.
    pub from: Option<(Vec<PathBuf>, String)>,
    /// The context, for binds without `from=`.
    pub context: Option<&'a ContextSnapshot>,
}

/// Mounts ready for the runtime.
#[derive(Default)]
pub(crate) struct Prepared {
    pub mounts: Vec<MountSpec>,
    /// Cache key parts, one per mount.
    pub key: Vec<Value>,
    /// `NAME=value` of secrets exposed as environment variables.
    pub env: Vec<String>,
    /// Staging dirs that must live until the run ends.
    pub keep: Vec<tempfile::TempDir>,
}

fn parse_octal(v: Option<&str>, default: u32) -> Result<u32, BuildError> {
    match v {
        None => Ok(default),
        Some(s) => u32::from_str_radix(s, 8)
            .map_err(|_| BuildError::Invalid(format!("invalid mount mode {s:?}"))),
    }
}

fn parse_id(v: Option<&str>) -> Result<u32, BuildError> {
    match v {
        None => Ok(0),
        Some(s) => s
            .parse()
            .map_err(|_| BuildError::Invalid(format!("invalid mount uid/gid {s:?}"))),
    }
}

/// A tmpfs size: bytes, or a number with `k`, `m` or `g` (binary units, as docker's
/// `RAMInBytes`); `RUN --mount=type=tmpfs,size=` and `run --mount type=tmpfs,tmpfs-size=`.
pub(crate) fn parse_size(s: &str) -> Result<u64, BuildError> {
    let lower = s.to_ascii_lowercase();
    let (num, mult) = match lower.chars().last() {
        Some('k') => (&lower[..lower.len() - 1], 1u64 << 10),
        Some('m') => (&lower[..lower.len() - 1], 1 << 20),
        Some('g') => (&lower[..lower.len() - 1], 1 << 30),
        _ => (lower.as_str(), 1),
    };
    num.parse::<u64>()
        .map(|n| n * mult)
        .map_err(|_| BuildError::Invalid(format!("invalid tmpfs size {s:?}")))
}

/// Turns the RUN's mounts into runtime mounts. `workdir` makes relative targets absolute;
/// `secrets` maps secret ids to files.
pub(crate) fn prepare(
    store: &Store,
    inputs: &[MountInput<'_>],
    workdir: &str,
    secrets: &BTreeMap<String, PathBuf>,
    ssh: &BTreeMap<String, PathBuf>,
) -> Result<Prepared, BuildError> {
    let mut out = Prepared::default();
    let mut ssh_mounts = 0;
    for input in inputs {
        let m = &input.mount;
        let target = |default: Option<String>| -> Result<PathBuf, BuildError> {
            let t = m.target.clone().or(default).ok_or_else(|| {
                BuildError::Invalid(format!("--mount type={:?} needs a target", m.kind))
            })?;
            Ok(if t.starts_with('/') {
                PathBuf::from(t)
            } else {
                PathBuf::from(format!("{}/{t}", workdir.trim_end_matches('/')))
            })
        };
        match m.kind {
            MountType::Cache => cache_mount(store, m, target(None)?, &mut out)?,
            MountType::Bind => bind_mount(store, input, target(None)?, &mut out)?,
            MountType::Secret => {
                let id =
                    m.id.clone()
                        .or_else(|| {
                            m.target
                                .as_deref()
                                .and_then(|t| Path::new(t).file_name())
                                .map(|n| n.to_string_lossy().into_owned())
                        })
                        .ok_or_else(|| BuildError::Invalid("secret mount needs an id".into()))?;
                let Some(file) = secrets.get(&id) else {
                    if m.required {
                        return Err(BuildError::Invalid(format!(
                            "secret {id} is required but was not given (use --secret id={id},src=PATH)"
                        )));
                    }
                    continue;
                };
                if let Some(var) = &m.env {
                    let value = std::fs::read_to_string(file).map_err(io_err(file))?;
                    out.env.push(format!("{var}={value}"));
                }
                if m.env.is_none() || m.target.is_some() {
                    let dest = target(Some(format!("/run/secrets/{id}")))?;
                    out.mounts.push(MountSpec {
                        destination: dest,
                        kind: MountKind::Bind {
                            source: file.clone(),
                        },
                        readonly: true,
                    });
                }
                out.key
                    .push(json!({"type": "secret", "id": id, "target": m.target, "env": m.env}));
            }
            MountType::Tmpfs => {
                let dest = target(None)?;
                let size = m.size.as_deref().map(parse_size).transpose()?;
                out.key
                    .push(json!({"type": "tmpfs", "target": dest, "size": size}));
                out.mounts.push(MountSpec {
                    destination: dest,
                    kind: MountKind::Tmpfs {
                        size,
                        mode: None,
                        options: Vec::new(),
                    },
                    readonly: false,
                });
            }
            MountType::Ssh => {
                let id = m.id.clone().unwrap_or_else(|| "default".into());
                let n = ssh_mounts;
                ssh_mounts += 1;
                let Some(socket) = ssh.get(&id) else {
                    if m.required {
                        return Err(BuildError::Invalid(format!(
                            "ssh agent {id} is required but was not given (use --ssh {id}=SOCKET)"
                        )));
                    }
                    continue;
                };
                let dest = target(Some(format!("/run/buildkit/ssh_agent.{n}")))?;
                if n == 0 {
                    out.env
                        .push(format!("SSH_AUTH_SOCK={}", dest.to_string_lossy()));
                }
                out.key
                    .push(json!({"type": "ssh", "id": id, "target": dest}));
                out.mounts.push(MountSpec {
                    destination: dest,
                    kind: MountKind::Bind {
                        source: socket.clone(),
                    },
                    readonly: false,
                });
            }
        }
    }
    Ok(out)
}

/// A cache mount: a directory of the store kept between builds, named by its id.
fn cache_mount(
    store: &Store,
    m: &Mount,
    dest: PathBuf,
    out: &mut Prepared,
) -> Result<(), BuildError> {
    let id =
        m.id.clone()
            .unwrap_or_else(|| dest.to_string_lossy().into_owned());
    let dir = store
        .root()
        .join("cache-mounts")
        .join(crate::image::Digest::of(id.as_bytes()).hex());
    if !dir.is_dir() {
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        use std::os::unix::fs::PermissionsExt;
        let mode = parse_octal(m.mode.as_deref(), 0o755)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode))
            .map_err(io_err(&dir))?;
        let (uid, gid) = (parse_id(m.uid.as_deref())?, parse_id(m.gid.as_deref())?);
        std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).map_err(io_err(&dir))?;
    }
    out.key
        .push(json!({"type": "cache", "target": dest, "id": id, "readonly": m.readonly}));
    out.mounts.push(MountSpec {
        destination: dest,
        kind: MountKind::Bind { source: dir },
        readonly: m.readonly,
    });
    Ok(())
}

/// A bind mount: its source staged like a COPY (ignore rules and `from=` layers apply).
fn bind_mount(
    store: &Store,
    input: &MountInput<'_>,
    dest: PathBuf,
    out: &mut Prepared,
) -> Result<(), BuildError> {
    let m = &input.mount;
    let source = m.source.clone().unwrap_or_else(|| ".".into());
    let tmp = store.temp_dir()?;
    let root = tmp.path().join("bind");
    std::fs::create_dir(&root).map_err(io_err(&root))?;
    let spec = CopySpec {
        add: false,
        sources: vec![source.clone()],
        inline: Vec::new(),
        dest: "/".into(),
        chown: None,
        chmod: None,
        exclude: Vec::new(),
        parents: false,
        downloads: Vec::new(),
    };
    let (from, key) = match (&input.from, input.context) {
        (Some((lowers, key)), _) => (copy::From::Layers(lowers.clone()), key.clone()),
        (None, Some(snap)) => {
            let sel = copy::select(&spec, &copy::From::Context(snap))?;
            let digest = snap.digest_of(sel.iter().map(|s| s.path.as_str()))?;
            (copy::From::Context(snap), digest.to_string())
        }
        (None, None) => return Err(BuildError::Invalid("bind mount without a source".into())),
    };
    let selected = copy::select(&spec, &from)?;
    let empty: Vec<PathBuf> = Vec::new();
    // No pool: a bind mount may be writable, and pooled files must never change.
    copy::stage(
        &spec,
        &from,
        &selected,
        Layered { lowers: &empty },
        &root,
        None,
    )?;
    let src = match selected.first() {
        Some(s) if !s.is_dir => {
            let name = components(&s.name).pop().unwrap_or_default();
            root.join(name)
        }
        _ => root.clone(),
    };
    out.key.push(json!({"type": "bind", "target": dest, "source": source, "content": key, "rw": !m.readonly}));
    out.mounts.push(MountSpec {
        destination: dest,
        kind: MountKind::Bind { source: src },
        readonly: m.readonly,
    });
    out.keep.push(tmp);
    Ok(())
}
