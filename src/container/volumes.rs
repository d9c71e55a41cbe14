//! What a container mounts besides its rootfs: `-v`, `--mount`, `--volumes-from` and the
//! image's VOLUMEs, parsed here ([`parse_volume`], [`parse_mount`]) and resolved into runtime
//! mounts when the container is created ([`resolve`]): volumes are made on first use (named
//! ones kept by name, anonymous ones made for this container alone) and an empty one is
//! seeded from the image's content at its path ([`super::seed`]), as docker does.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Component, Path, PathBuf};

use rbuild_runtime::{MountKind, MountSpec};

use super::create::{random_bytes, valid_name};
use super::{io_err, ContainerError, RunOptions};
use crate::store::{Store, StoreError, VolumeRecord, ANONYMOUS_LABEL};

/// One `-v` or `--mount`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountRequest {
    /// A host bind or a tmpfs: mounted as given.
    Mount(MountSpec),
    /// A volume, made on first use.
    Volume(VolumeRequest),
}

/// A volume a container asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeRequest {
    /// `None`: an anonymous volume, made for this container alone.
    pub name: Option<String>,
    pub destination: PathBuf,
    pub readonly: bool,
    /// `nocopy`/`volume-nocopy`: do not seed an empty volume from the image.
    pub nocopy: bool,
    /// `--mount volume-label=`: labels of a volume made now.
    pub labels: BTreeMap<String, String>,
    /// `--mount volume-opt=`: driver options (none is supported: refused when the volume is
    /// made).
    pub options: BTreeMap<String, String>,
}

impl RunOptions {
    /// Adds a parsed `-v` or `--mount`.
    pub fn add_mount(&mut self, request: MountRequest) {
        match request {
            MountRequest::Mount(m) => self.mounts.push(m),
            MountRequest::Volume(v) => self.volumes.push(v),
        }
    }
}

fn bad(spec: &str, reason: impl Into<String>) -> ContainerError {
    ContainerError::BadVolume {
        spec: spec.to_string(),
        reason: reason.into(),
    }
}

/// Whether `path` is absolute and not `/` (docker refuses `/` as a mount destination).
fn valid_destination(path: &str) -> bool {
    path.starts_with('/')
        && !Path::new(path)
            .components()
            .all(|c| c == Component::RootDir)
}

/// Parses `-v [SOURCE:]CONTAINER[:OPTIONS]` as docker does on Linux: an absolute `SOURCE` is a
/// host path (created as a directory when missing), another `SOURCE` names a volume
/// (`[a-zA-Z0-9][a-zA-Z0-9_.-]`), none makes an anonymous volume; `CONTAINER` must be absolute
/// and not `/`; `OPTIONS` is a comma-separated list of `ro`, `rw`, `nocopy` (and SELinux and
/// propagation options, accepted and ignored).
pub fn parse_volume(spec: &str) -> Result<MountRequest, ContainerError> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (source, target, options) = match parts.as_slice() {
        [t] => (None, *t, ""),
        [t, o] if !o.starts_with('/') && o.split(',').all(is_volume_option) => (None, *t, *o),
        [s, t] => (Some(*s), *t, ""),
        [s, t, o] => (Some(*s), *t, *o),
        _ => return Err(bad(spec, "expected [SOURCE:]CONTAINER-DIR[:OPTIONS]")),
    };
    if !valid_destination(target) {
        return Err(bad(
            spec,
            "the container path must be absolute and not \"/\"",
        ));
    }
    let mut readonly = false;
    let mut nocopy = false;
    for option in options.split(',').filter(|o| !o.is_empty()) {
        match option {
            "ro" => readonly = true,
            "rw" => readonly = false,
            "nocopy" => nocopy = true,
            o if is_volume_option(o) => {}
            other => return Err(bad(spec, format!("unknown option {other:?}"))),
        }
    }
    let destination = PathBuf::from(target);
    let name = match source {
        Some(host) if host.starts_with('/') => {
            let source = PathBuf::from(host);
            if !source.exists() {
                fs::create_dir_all(&source).map_err(io_err(&source))?;
            }
            return Ok(MountRequest::Mount(MountSpec {
                destination,
                kind: MountKind::Bind { source },
                readonly,
            }));
        }
        Some(name) => {
            check_volume_name(name).map_err(|e| bad(spec, e.to_string()))?;
            Some(name.to_string())
        }
        None => None,
    };
    Ok(MountRequest::Volume(VolumeRequest {
        name,
        destination,
        readonly,
        nocopy,
        labels: BTreeMap::new(),
        options: BTreeMap::new(),
    }))
}

fn is_volume_option(o: &str) -> bool {
    matches!(
        o,
        "ro" | "rw"
            | "nocopy"
            | "z"
            | "Z"
            | "rprivate"
            | "private"
            | "rshared"
            | "shared"
            | "rslave"
            | "slave"
    )
}

/// Docker's rule for volume names (the same as for container names).
pub fn check_volume_name(name: &str) -> Result<(), ContainerError> {
    if valid_name(name) && name.len() >= 2 {
        return Ok(());
    }
    Err(ContainerError::BadVolumeName(name.to_string()))
}

/// Parses `--mount type=volume|bind|tmpfs,source=…,target=…,…` with docker's keys and
/// messages. `type` defaults to `volume`; a bind's source must exist (docker does not create
/// it, unlike `-v`).
pub fn parse_mount(spec: &str) -> Result<MountRequest, ContainerError> {
    let flag = |reason: String| ContainerError::BadMount {
        spec: spec.to_string(),
        reason,
    };
    let config = |kind: &str, reason: String| {
        flag(format!(
            "invalid mount config for type \"{kind}\": {reason}"
        ))
    };
    let mut kind = "volume".to_string();
    let mut source: Option<String> = None;
    let mut target: Option<String> = None;
    let mut readonly = false;
    let mut nocopy = false;
    let mut labels = BTreeMap::new();
    let mut options = BTreeMap::new();
    let mut tmpfs_size = None;
    let mut tmpfs_mode = None;
    // Which option families were used, to refuse mixing them with another type.
    let (mut volume_opts, mut bind_opts, mut tmpfs_opts) = (false, false, false);
    for field in spec.split(',') {
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (k.to_ascii_lowercase(), Some(v)),
            None => (field.to_ascii_lowercase(), None),
        };
        let boolean = |value: Option<&str>| match value {
            None => Ok(true),
            Some("1" | "true" | "True" | "TRUE") => Ok(true),
            Some("0" | "false" | "False" | "FALSE") => Ok(false),
            Some(v) => Err(flag(format!("invalid value for {key}: {v}"))),
        };
        match (key.as_str(), value) {
            ("readonly" | "ro", v) => readonly = boolean(v)?,
            ("volume-nocopy", v) => {
                volume_opts = true;
                nocopy = boolean(v)?;
            }
            ("bind-nonrecursive" | "bind-recursive", _) => {
                bind_opts = true;
            }
            (_, None) => {
                return Err(flag(format!(
                    "invalid field '{field}' must be a key=value pair"
                )))
            }
            ("type", Some(v)) => kind = v.to_string(),
            ("source" | "src", Some(v)) => source = Some(v.to_string()),
            ("target" | "dst" | "destination", Some(v)) => target = Some(v.to_string()),
            ("bind-propagation", Some(_)) => bind_opts = true,
            ("consistency", Some(_)) => {}
            ("volume-label", Some(v)) => {
                volume_opts = true;
                let (k, val) = v.split_once('=').unwrap_or((v, ""));
                labels.insert(k.to_string(), val.to_string());
            }
            ("volume-driver", Some(v)) => {
                volume_opts = true;
                if v != "local" {
                    return Err(flag(format!(
                        "volume driver {v:?} is not supported (only \"local\")"
                    )));
                }
            }
            ("volume-opt", Some(v)) => {
                volume_opts = true;
                let (k, val) = v
                    .split_once('=')
                    .ok_or_else(|| flag(format!("invalid value for volume-opt: {v}")))?;
                options.insert(k.to_string(), val.to_string());
            }
            ("tmpfs-size", Some(v)) => {
                tmpfs_opts = true;
                let size = crate::build::parse_size(v)
                    .map_err(|_| flag(format!("invalid value for {key}: {v}")))?;
                tmpfs_size = Some(size);
            }
            ("tmpfs-mode", Some(v)) => {
                tmpfs_opts = true;
                let mode = u32::from_str_radix(v, 8)
                    .map_err(|_| flag(format!("invalid value for {key}: {v}")))?;
                tmpfs_mode = Some(mode);
            }
            _ => return Err(flag(format!("unexpected key '{key}' in '{field}'"))),
        }
    }
    if !matches!(kind.as_str(), "volume" | "bind" | "tmpfs") {
        return Err(flag(format!(
            "mount type {kind:?} is not supported (volume, bind or tmpfs)"
        )));
    }
    let target = target.ok_or_else(|| flag("target is required".to_string()))?;
    for (used, family) in [
        (volume_opts, "volume"),
        (bind_opts, "bind"),
        (tmpfs_opts, "tmpfs"),
    ] {
        if used && kind != family {
            return Err(flag(format!(
                "cannot mix '{family}-*' options with mount type '{kind}'"
            )));
        }
    }
    if !target.starts_with('/') {
        return Err(config(
            &kind,
            format!("invalid mount path: '{target}' mount path must be absolute"),
        ));
    }
    if !valid_destination(&target) {
        return Err(config(
            &kind,
            "invalid specification: destination can't be '/'".into(),
        ));
    }
    let destination = PathBuf::from(&target);
    let source = source.filter(|s| !s.is_empty());
    match kind.as_str() {
        "bind" => {
            let source =
                source.ok_or_else(|| config(&kind, "field Source must not be empty".into()))?;
            if !Path::new(&source).is_absolute() {
                return Err(config(
                    &kind,
                    format!("invalid mount path: '{source}' mount path must be absolute"),
                ));
            }
            if !Path::new(&source).exists() {
                return Err(config(
                    &kind,
                    format!("bind source path does not exist: {source}"),
                ));
            }
            Ok(MountRequest::Mount(MountSpec {
                destination,
                kind: MountKind::Bind {
                    source: PathBuf::from(source),
                },
                readonly,
            }))
        }
        "tmpfs" => {
            if source.is_some() {
                return Err(config(&kind, "field Source must not be specified".into()));
            }
            Ok(MountRequest::Mount(MountSpec {
                destination,
                kind: MountKind::Tmpfs {
                    size: tmpfs_size,
                    mode: tmpfs_mode,
                    options: Vec::new(),
                },
                readonly,
            }))
        }
        _ => {
            if let Some(name) = &source {
                check_volume_name(name)?;
            }
            Ok(MountRequest::Volume(VolumeRequest {
                name: source,
                destination,
                readonly,
                nocopy,
                labels,
                options,
            }))
        }
    }
}

/// Parses `--volumes-from CONTAINER[:ro|rw]`: the container and the mode forced on its
/// mounts (`None`: each keeps its own).
pub fn parse_volumes_from(spec: &str) -> Result<(String, Option<bool>), ContainerError> {
    match spec.split_once(':') {
        None => Ok((spec.to_string(), None)),
        Some((c, "ro")) => Ok((c.to_string(), Some(true))),
        Some((c, "rw")) => Ok((c.to_string(), Some(false))),
        Some((_, mode)) => Err(ContainerError::BadVolumesFrom {
            spec: spec.to_string(),
            reason: format!("invalid mode: {mode}"),
        }),
    }
}

/// A volume made by [`create_volume`]: its record and whether it is new.
pub type Created = (VolumeRecord, bool);

/// `volume create` and first use: checks the name (a generated 64-hex name when `None`),
/// refuses driver options (rbuild's local driver applies none), then creates the volume
/// unless it exists.
pub fn create_volume(
    store: &Store,
    name: Option<&str>,
    labels: &BTreeMap<String, String>,
    options: &BTreeMap<String, String>,
) -> Result<Created, ContainerError> {
    let name = match name {
        Some(n) => {
            check_volume_name(n)?;
            n.to_string()
        }
        None => hex::encode(random_bytes::<32>()?),
    };
    if let Some(key) = options.keys().next() {
        return Err(ContainerError::VolumeOption(key.clone()));
    }
    Ok(store.create_volume(&name, labels, options)?)
}

/// Removes the anonymous volumes `names` of a removed container; ones that another
/// container uses (through `--volumes-from`) or that are gone are kept quietly, as docker
/// does. Returns the errors worth a warning.
pub fn remove_anonymous_volumes(store: &Store, names: &[String]) -> Vec<String> {
    names
        .iter()
        .filter_map(|name| match store.remove_volume(name) {
            Ok(_) | Err(StoreError::VolumeInUse { .. } | StoreError::NoSuchVolume(_)) => None,
            Err(e) => Some(format!("failed to remove volume {name}: {e}")),
        })
        .collect()
}

/// A container's mounts once its volumes exist.
#[derive(Debug, Default)]
pub(super) struct Resolved {
    /// In mount order: parents before what is mounted inside them.
    pub mounts: Vec<MountSpec>,
    /// Every volume mounted (the container's lease names them).
    pub volumes: Vec<String>,
    /// The volumes made for this container alone.
    pub anonymous: Vec<String>,
}

/// Resolves the container's mounts: the binds and tmpfs mounts of `options`, the volumes it
/// asks for (made now when missing, seeded when empty), the mounts of the `--volumes-from`
/// containers, then an anonymous volume for each of the image's VOLUMEs nothing else
/// covers. On error, the anonymous volumes made so far are removed again.
pub(super) fn resolve(
    store: &Store,
    options: &RunOptions,
    image_volumes: &[String],
    lowers: &[PathBuf],
) -> Result<Resolved, ContainerError> {
    let mut out = Resolved::default();
    match resolve_into(store, options, image_volumes, lowers, &mut out) {
        Ok(()) => {
            out.mounts
                .sort_by_key(|m| m.destination.components().count());
            Ok(out)
        }
        Err(e) => {
            remove_anonymous_volumes(store, &out.anonymous);
            Err(e)
        }
    }
}

fn resolve_into(
    store: &Store,
    options: &RunOptions,
    image_volumes: &[String],
    lowers: &[PathBuf],
    out: &mut Resolved,
) -> Result<(), ContainerError> {
    let taken = |out: &Resolved, destination: &Path| {
        out.mounts.iter().any(|m| m.destination == destination)
    };
    // Duplicates first: nothing is made for a container that cannot be created.
    let mut destinations: Vec<&Path> = options
        .mounts
        .iter()
        .map(|m| m.destination.as_path())
        .chain(options.volumes.iter().map(|v| v.destination.as_path()))
        .collect();
    destinations.sort();
    if let Some(pair) = destinations.windows(2).find(|w| w[0] == w[1]) {
        return Err(ContainerError::DuplicateMount(pair[0].to_path_buf()));
    }
    out.mounts.extend(options.mounts.iter().cloned());
    for request in &options.volumes {
        let mut labels = request.labels.clone();
        if request.name.is_none() {
            labels.insert(ANONYMOUS_LABEL.to_string(), String::new());
        }
        let (volume, _) = create_volume(store, request.name.as_deref(), &labels, &request.options)?;
        if volume.is_anonymous() && request.name.is_none() {
            out.anonymous.push(volume.name.clone());
        }
        mount_volume(store, &volume.name, request, lowers, out)?;
    }
    for spec in &options.volumes_from {
        let (container, mode) = parse_volumes_from(spec)?;
        let record = store.resolve_container(&container)?;
        let from = super::spec_file::load(store, &record.id)?;
        for m in from.mounts {
            // Mounts given by this container win over the other's; tmpfs mounts are not
            // shared (docker neither).
            if taken(out, &m.destination) || matches!(m.kind, MountKind::Tmpfs { .. }) {
                continue;
            }
            if let MountKind::Bind { source } = &m.kind {
                if let Some(name) = store.volume_of_path(source) {
                    out.volumes.push(name);
                }
            }
            out.mounts.push(MountSpec {
                readonly: mode.unwrap_or(m.readonly),
                ..m
            });
        }
    }
    for path in image_volumes {
        let destination = PathBuf::from(path);
        if !valid_destination(path) || taken(out, &destination) {
            continue;
        }
        let request = VolumeRequest {
            name: None,
            destination,
            readonly: false,
            nocopy: false,
            labels: BTreeMap::new(),
            options: BTreeMap::new(),
        };
        let labels = BTreeMap::from([(ANONYMOUS_LABEL.to_string(), String::new())]);
        let (volume, _) = create_volume(store, None, &labels, &BTreeMap::new())?;
        out.anonymous.push(volume.name.clone());
        mount_volume(store, &volume.name, &request, lowers, out)?;
    }
    Ok(())
}

/// Seeds volume `name` (unless `nocopy`) and adds its mount.
fn mount_volume(
    store: &Store,
    name: &str,
    request: &VolumeRequest,
    lowers: &[PathBuf],
    out: &mut Resolved,
) -> Result<(), ContainerError> {
    let data = store.volume_data(name);
    if !request.nocopy {
        super::seed::seed_from_image(lowers, &request.destination, &data)?;
    }
    out.volumes.push(name.to_string());
    out.mounts.push(MountSpec {
        destination: request.destination.clone(),
        kind: MountKind::Bind { source: data },
        readonly: request.readonly,
    });
    Ok(())
}

/// Makes sure the volumes of `names` still exist (made again, empty, when a `volume rm`
/// removed one since [`resolve`]): before the container's lease is retried.
pub(super) fn ensure(store: &Store, names: &[String]) -> Result<(), ContainerError> {
    for name in names {
        if store.find_volume(name)?.is_none() {
            store.create_volume(name, &BTreeMap::new(), &BTreeMap::new())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn volume(spec: &str) -> VolumeRequest {
        match parse_volume(spec).unwrap() {
            MountRequest::Volume(v) => v,
            other => panic!("{spec}: {other:?}"),
        }
    }

    #[test]
    fn volumes() {
        let dir = tempfile::tempdir().unwrap();
        let host = dir.path().join("new/dir");
        let spec = format!("{}:/data:ro", host.display());
        let MountRequest::Mount(mount) = parse_volume(&spec).unwrap() else {
            panic!("a host path is a bind");
        };
        assert!(host.is_dir(), "a missing host dir is created");
        assert_eq!(mount.destination, PathBuf::from("/data"));
        assert!(mount.readonly);
        assert_eq!(
            mount.kind,
            MountKind::Bind {
                source: host.clone()
            }
        );
        let MountRequest::Mount(rw) =
            parse_volume(&format!("{}:/data:rw,z", host.display())).unwrap()
        else {
            panic!("bind");
        };
        assert!(!rw.readonly);
        let named = volume("cache:/var/cache:ro,nocopy");
        assert_eq!(named.name.as_deref(), Some("cache"));
        assert!(named.readonly && named.nocopy);
        let anonymous = volume("/data");
        assert_eq!(anonymous.name, None);
        assert_eq!(anonymous.destination, PathBuf::from("/data"));
        assert!(volume("/data:ro").readonly);
        for bad in [
            "./rel:/data",
            "x:/data",
            "/host:relative",
            "/host:/",
            "/",
            "/host:/data:bogus",
            "/a:/b:ro:extra",
        ] {
            let err = parse_volume(bad).unwrap_err().to_string();
            assert!(err.contains(bad), "{bad}: {err}");
        }
    }

    #[test]
    fn mounts() {
        let v = match parse_mount("type=volume,source=db,target=/var/db,readonly").unwrap() {
            MountRequest::Volume(v) => v,
            other => panic!("{other:?}"),
        };
        assert_eq!(v.name.as_deref(), Some("db"));
        assert!(v.readonly);
        // type defaults to volume; no source is an anonymous volume
        assert!(matches!(
            parse_mount("dst=/x,volume-nocopy").unwrap(),
            MountRequest::Volume(VolumeRequest {
                name: None,
                nocopy: true,
                ..
            })
        ));
        let tmpfs = parse_mount("type=tmpfs,target=/t,tmpfs-size=64m,tmpfs-mode=1770").unwrap();
        assert_eq!(
            tmpfs,
            MountRequest::Mount(MountSpec {
                destination: "/t".into(),
                kind: MountKind::Tmpfs {
                    size: Some(64 << 20),
                    mode: Some(0o1770),
                    options: Vec::new(),
                },
                readonly: false
            })
        );
        let cases = [
            ("type=volume,source=db", "target is required"),
            (
                "type=bind,target=/x",
                "invalid mount config for type \"bind\": field Source must not be empty",
            ),
            (
                "type=bind,source=/no/such/dir,target=/x",
                "bind source path does not exist: /no/such/dir",
            ),
            (
                "type=tmpfs,source=x,target=/x",
                "field Source must not be specified",
            ),
            (
                "type=volume,target=rel",
                "invalid mount path: 'rel' mount path must be absolute",
            ),
            (
                "type=bind,source=/,target=/x,tmpfs-size=1m",
                "cannot mix 'tmpfs-*' options with mount type 'bind'",
            ),
            ("target=/x,bogus=1", "unexpected key 'bogus' in 'bogus=1'"),
            (
                "target=/x,source",
                "invalid field 'source' must be a key=value pair",
            ),
            (
                "target=/x,readonly=maybe",
                "invalid value for readonly: maybe",
            ),
        ];
        for (spec, want) in cases {
            let err = parse_mount(spec).unwrap_err().to_string();
            assert!(err.contains(want), "{spec}: {err}");
        }
    }

    #[test]
    fn volumes_from() {
        assert_eq!(parse_volumes_from("db").unwrap(), ("db".into(), None));
        assert_eq!(
            parse_volumes_from("db:ro").unwrap(),
            ("db".into(), Some(true))
        );
        assert_eq!(
            parse_volumes_from("db:rw").unwrap(),
            ("db".into(), Some(false))
        );
        assert!(parse_volumes_from("db:rx").is_err());
    }
}
