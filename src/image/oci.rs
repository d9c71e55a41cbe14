//! OCI image-spec JSON: descriptors, manifests, indexes and image configs.
//!
//! Only the fields rbuild reads are typed; everything else in a config survives a round trip
//! through the `extra` maps, so loading and saving never changes an image's bytes or ID.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::digest::Digest;
use super::reference::Reference;

/// OCI image manifest.
pub const MEDIA_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const MEDIA_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config.
pub const MEDIA_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Uncompressed OCI layer.
pub const MEDIA_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// Gzip OCI layer.
pub const MEDIA_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// Zstd OCI layer.
pub const MEDIA_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// Docker schema 2 manifest.
pub const MEDIA_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const MEDIA_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Annotation naming a tagged manifest in an OCI layout's `index.json`.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Annotation containerd/docker put on `index.json` entries with the full image name.
pub const ANNOTATION_CONTAINERD_NAME: &str = "io.containerd.image.name";

/// A content descriptor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

/// A platform in an index entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// An image manifest (OCI or docker schema 2; they share this shape).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

impl Manifest {
    /// The OCI image manifest of an image config (`config`, `config_size` bytes) and `layers`
    /// (bottom to top): the one shape rbuild writes (in the store, and in docker-archives'
    /// OCI view).
    pub fn oci(
        config: &Digest,
        config_size: u64,
        layers: Vec<Descriptor>,
        annotations: Option<BTreeMap<String, String>>,
    ) -> Manifest {
        Manifest {
            schema_version: 2,
            media_type: Some(MEDIA_MANIFEST.to_string()),
            config: Descriptor {
                media_type: MEDIA_CONFIG.to_string(),
                digest: config.clone(),
                size: config_size,
                annotations: None,
                platform: None,
            },
            layers,
            annotations,
        }
    }
}

/// An image index (also the `index.json` of an OCI layout).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Index {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

impl Index {
    /// An OCI index (`application/vnd.oci.image.index.v1+json`) listing each manifest once per
    /// tag, annotated with the tag's short and full names, or once without annotations when
    /// it has no tags: the `index.json` of the store and of `save --format oci`.
    pub fn of_tagged<'a>(
        images: impl IntoIterator<Item = (&'a Descriptor, &'a [Reference])>,
    ) -> Index {
        let mut manifests = Vec::new();
        for (manifest, tags) in images {
            let base = Descriptor {
                annotations: None,
                platform: None,
                ..manifest.clone()
            };
            if tags.is_empty() {
                manifests.push(base.clone());
            }
            for t in tags {
                let mut a = BTreeMap::new();
                a.insert(ANNOTATION_REF_NAME.to_string(), t.familiar());
                a.insert(ANNOTATION_CONTAINERD_NAME.to_string(), t.to_string());
                manifests.push(Descriptor {
                    annotations: Some(a),
                    ..base.clone()
                });
            }
        }
        Index {
            schema_version: 2,
            media_type: Some(MEDIA_INDEX.to_string()),
            manifests,
            annotations: None,
        }
    }
}

/// An image config (`application/vnd.oci.image.config.v1+json`, same as docker's).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ImageConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<ContainerConfig>,
    pub rootfs: RootFs,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<History>,
    /// Fields rbuild does not interpret, kept as they were.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// The runtime defaults of an image (`config` in the image config).
///
/// rbuild's own type rather than oci-spec's: oci-spec drops Docker's `Healthcheck`, `OnBuild`,
/// `Shell` and `ArgsEscaped`, and keeps its maps in hash maps whose order would change the
/// bytes (and so the ID) of every image written. Here the fields are written in a fixed order:
/// the ones below in declaration order, then the typed Docker fields and `extra` merged in
/// key order (how they were written while they lived in `extra`, so image IDs and cache keys
/// stay as they were).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(from = "wire::ContainerConfigWire")]
pub struct ContainerConfig {
    pub user: Option<String>,
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    pub env: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub volumes: Option<BTreeMap<String, serde_json::Value>>,
    pub working_dir: Option<String>,
    pub labels: Option<BTreeMap<String, String>>,
    pub stop_signal: Option<String>,
    /// `Healthcheck` (HEALTHCHECK).
    pub healthcheck: Option<Healthcheck>,
    /// `OnBuild`: ONBUILD triggers, as written after `ONBUILD `.
    pub on_build: Option<Vec<String>>,
    /// `Shell` (SHELL): what shell-form commands run with.
    pub shell: Option<Vec<String>>,
    /// `ArgsEscaped` (Windows images).
    pub args_escaped: Option<bool>,
    /// Fields rbuild does not interpret, kept as they were (also a Docker field above whose
    /// value does not fit its type, such as `"OnBuild": null`, so it is written back as read).
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// `Healthcheck` of a container config. Durations are nanoseconds. The fields are in key
/// order (the order the JSON map they replace was written in); a check with other fields
/// stays untyped in [`ContainerConfig::extra`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Healthcheck {
    #[serde(rename = "Interval", default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<i64>,
    #[serde(rename = "Retries", default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<i64>,
    #[serde(
        rename = "StartInterval",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub start_interval: Option<i64>,
    #[serde(
        rename = "StartPeriod",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub start_period: Option<i64>,
    /// `["NONE"]`, `["CMD", args…]` or `["CMD-SHELL", command]`.
    #[serde(rename = "Test", default, skip_serializing_if = "Option::is_none")]
    pub test: Option<Vec<String>>,
    #[serde(rename = "Timeout", default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i64>,
}

impl Serialize for ContainerConfig {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(None)?;
        macro_rules! field {
            ($name:literal, $value:expr) => {
                if let Some(v) = &$value {
                    map.serialize_entry($name, v)?;
                }
            };
        }
        field!("User", self.user);
        field!("ExposedPorts", self.exposed_ports);
        field!("Env", self.env);
        field!("Entrypoint", self.entrypoint);
        field!("Cmd", self.cmd);
        field!("Volumes", self.volumes);
        field!("WorkingDir", self.working_dir);
        field!("Labels", self.labels);
        field!("StopSignal", self.stop_signal);
        // The typed Docker fields and `extra`, merged in key order.
        let mut rest: Vec<(&str, wire::Field<'_>)> = self
            .extra
            .iter()
            .map(|(k, v)| (k.as_str(), wire::Field::Raw(v)))
            .collect();
        if let Some(h) = &self.healthcheck {
            rest.push(("Healthcheck", wire::Field::Healthcheck(h)));
        }
        if let Some(v) = &self.on_build {
            rest.push(("OnBuild", wire::Field::Strings(v)));
        }
        if let Some(v) = &self.shell {
            rest.push(("Shell", wire::Field::Strings(v)));
        }
        if let Some(v) = self.args_escaped {
            rest.push(("ArgsEscaped", wire::Field::Bool(v)));
        }
        rest.sort_by(|a, b| a.0.cmp(b.0));
        for (k, v) in rest {
            map.serialize_entry(k, &v)?;
        }
        map.end()
    }
}

/// The JSON shape of [`ContainerConfig`] as read, before the Docker fields are typed.
mod wire {
    use std::collections::BTreeMap;

    use serde::{de::DeserializeOwned, Deserialize, Serialize};

    use super::{ContainerConfig, Healthcheck};

    #[derive(Deserialize)]
    pub(super) struct ContainerConfigWire {
        #[serde(rename = "User", default)]
        user: Option<String>,
        #[serde(rename = "ExposedPorts", default)]
        exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
        #[serde(rename = "Env", default)]
        env: Option<Vec<String>>,
        #[serde(rename = "Entrypoint", default)]
        entrypoint: Option<Vec<String>>,
        #[serde(rename = "Cmd", default)]
        cmd: Option<Vec<String>>,
        #[serde(rename = "Volumes", default)]
        volumes: Option<BTreeMap<String, serde_json::Value>>,
        #[serde(rename = "WorkingDir", default)]
        working_dir: Option<String>,
        #[serde(rename = "Labels", default)]
        labels: Option<BTreeMap<String, String>>,
        #[serde(rename = "StopSignal", default)]
        stop_signal: Option<String>,
        #[serde(flatten)]
        extra: BTreeMap<String, serde_json::Value>,
    }

    /// A value of the merged tail of a serialized config.
    #[derive(Serialize)]
    #[serde(untagged)]
    pub(super) enum Field<'a> {
        Raw(&'a serde_json::Value),
        Healthcheck(&'a Healthcheck),
        Strings(&'a Vec<String>),
        Bool(bool),
    }

    /// Takes `key` out of `extra` as a `T` when it reads as one and writes back the same
    /// JSON; otherwise it stays in `extra` untouched.
    fn typed<T: DeserializeOwned + Serialize>(
        extra: &mut BTreeMap<String, serde_json::Value>,
        key: &str,
    ) -> Option<T> {
        let value = extra.get(key)?;
        let typed: T = serde_json::from_value(value.clone()).ok()?;
        if serde_json::to_value(&typed).ok()? != *value {
            return None;
        }
        extra.remove(key);
        Some(typed)
    }

    impl From<ContainerConfigWire> for ContainerConfig {
        fn from(w: ContainerConfigWire) -> ContainerConfig {
            let mut extra = w.extra;
            ContainerConfig {
                user: w.user,
                exposed_ports: w.exposed_ports,
                env: w.env,
                entrypoint: w.entrypoint,
                cmd: w.cmd,
                volumes: w.volumes,
                working_dir: w.working_dir,
                labels: w.labels,
                stop_signal: w.stop_signal,
                healthcheck: typed(&mut extra, "Healthcheck"),
                on_build: typed(&mut extra, "OnBuild"),
                shell: typed(&mut extra, "Shell"),
                args_escaped: typed(&mut extra, "ArgsEscaped"),
                extra,
            }
        }
    }
}

/// `rootfs` of an image config: the DiffIDs, bottom to top.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    pub diff_ids: Vec<Digest>,
}

/// One history entry of an image config.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct History {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
}

/// The architecture name OCI uses for the machine rbuild runs on.
pub fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// `t` as Go's `time.RFC3339Nano` writes it (UTC): nanoseconds without trailing zeros, no
/// fraction at all when they are zero. Docker, podman and containers/image write image times
/// this way and may re-encode a config when they convert it (podman's oci-archive does): a
/// time written with other digits would then change the config's bytes and the image ID.
pub fn timestamp(t: chrono::DateTime<chrono::Utc>) -> String {
    let base = t.format("%Y-%m-%dT%H:%M:%S").to_string();
    let nanos = t.timestamp_subsec_nanos();
    if nanos == 0 {
        return format!("{base}Z");
    }
    let fraction = format!("{nanos:09}");
    format!("{base}.{}Z", fraction.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::{timestamp, ContainerConfig, Healthcheck};

    #[test]
    fn typed_docker_fields_are_written_back_byte_for_byte() {
        // As rbuild wrote configs while these fields lived in `extra`: the interpreted fields
        // first, then the rest in key order (typed ones among unknown ones).
        let text = concat!(
            r#"{"User":"u","Env":["A=1"],"ArgsEscaped":true,"AttachStdin":false,"#,
            r#""Healthcheck":{"Interval":5000000000,"Retries":3,"Test":["CMD-SHELL","true"]},"#,
            r#""Hostname":"h","OnBuild":["RUN x"],"OpenStdin":false,"Shell":["/bin/bash","-c"]}"#
        );
        let c: ContainerConfig = serde_json::from_str(text).unwrap();
        assert_eq!(c.on_build.as_deref(), Some(&["RUN x".to_string()][..]));
        assert_eq!(c.shell.as_ref().unwrap()[0], "/bin/bash");
        assert_eq!(c.args_escaped, Some(true));
        assert_eq!(c.healthcheck.as_ref().unwrap().retries, Some(3));
        assert_eq!(
            c.extra.keys().collect::<Vec<_>>(),
            ["AttachStdin", "Hostname", "OpenStdin"]
        );
        assert_eq!(serde_json::to_string(&c).unwrap(), text);
    }

    #[test]
    fn docker_fields_that_do_not_fit_their_type_stay_as_read() {
        let text = concat!(
            r#"{"Healthcheck":{"Test":["NONE"],"Unknown":1},"OnBuild":null,"#,
            r#""Shell":"not a list"}"#
        );
        let c: ContainerConfig = serde_json::from_str(text).unwrap();
        assert_eq!(
            (c.healthcheck.clone(), c.on_build.clone(), c.shell.clone()),
            (None, None, None)
        );
        assert_eq!(serde_json::to_string(&c).unwrap(), text);
        let typed = ContainerConfig {
            healthcheck: Some(Healthcheck {
                test: Some(vec!["NONE".into()]),
                ..Healthcheck::default()
            }),
            ..ContainerConfig::default()
        };
        assert_eq!(
            serde_json::to_string(&typed).unwrap(),
            r#"{"Healthcheck":{"Test":["NONE"]}}"#
        );
    }

    #[test]
    fn timestamps_are_written_as_go_writes_them() {
        let at = |secs: i64, nanos: u32| {
            timestamp(chrono::DateTime::from_timestamp(secs, nanos).unwrap())
        };
        assert_eq!(at(1_700_000_000, 0), "2023-11-14T22:13:20Z");
        assert_eq!(
            at(1_700_000_000, 136_312_240),
            "2023-11-14T22:13:20.13631224Z"
        );
        assert_eq!(at(1_700_000_000, 5), "2023-11-14T22:13:20.000000005Z");
        assert_eq!(at(1_700_000_000, 500_000_000), "2023-11-14T22:13:20.5Z");
    }
}
