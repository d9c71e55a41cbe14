//! `build --annotation [TYPE[,TYPE…][PLATFORM]:]KEY=VALUE` and `-o …,annotation[-TYPE].KEY=VALUE`
//! (BuildKit's and buildx's syntax): OCI annotations on what the build writes.
//!
//! rbuild builds one platform, so it writes one image manifest and no image index of its
//! own. The types go where rbuild writes that object:
//! - `manifest` (the default): the image manifest, in the store, so `push`, `save` and the
//!   `-o` archives carry it; it changes the manifest digest, not the image ID.
//! - `manifest-descriptor`: the manifest's entries in the `index.json` of `-o type=oci`
//!   outputs (archive or directory) and `-o type=docker` archives.
//! - `index`: that `index.json` itself (an OCI layout's `index.json` is an image index).
//! - `index-descriptor`: refused: nothing rbuild writes points to an image index.
//!
//! A platform (`manifest[linux/amd64]:`) must be the host's, the only one rbuild builds.

use std::collections::BTreeMap;

use crate::archive::save::LayoutAnnotations;
use crate::dockerfile::eval::Platform;

use super::BuildError;

/// The annotations of one build, by where they go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Annotations {
    /// On the image manifest.
    pub manifest: BTreeMap<String, String>,
    /// On an OCI layout's `index.json` and its entries for the manifest.
    pub layout: LayoutAnnotations,
}

impl Annotations {
    /// Adds one `--annotation` value.
    pub fn add(&mut self, spec: &str) -> Result<(), BuildError> {
        let bad = |why: String| BuildError::Invalid(format!("--annotation {spec:?}: {why}"));
        let (head, value) = spec
            .split_once('=')
            .ok_or_else(|| bad("expected [TYPE:]KEY=VALUE".into()))?;
        let (types, key) = split_types(head);
        if key.is_empty() {
            return Err(bad("the key is empty".into()));
        }
        let (types, platform) = match types.split_once('[') {
            Some((t, p)) => {
                let p = p
                    .strip_suffix(']')
                    .ok_or_else(|| bad(format!("unclosed platform in {types:?}")))?;
                (t, Some(p))
            }
            None => (types, None),
        };
        if let Some(p) = platform {
            let host = Platform::host();
            let wanted =
                Platform::parse(p).ok_or_else(|| bad(format!("invalid platform {p:?}")))?;
            if wanted.os != host.os || wanted.architecture != host.architecture {
                return Err(bad(format!(
                    "platform {p} is not built: rbuild builds for {host} only"
                )));
            }
        }
        let types: Vec<&str> = if types.is_empty() {
            vec!["manifest"]
        } else {
            types.split(',').collect()
        };
        for t in types {
            let into = match t {
                "manifest" => &mut self.manifest,
                "manifest-descriptor" => &mut self.layout.manifest_descriptor,
                "index" => &mut self.layout.index,
                "index-descriptor" => {
                    return Err(bad(
                        "index-descriptor annotations have nowhere to go: rbuild builds one \
                         platform and writes no image index that a descriptor points to (use \
                         index: for the OCI layout's index.json)"
                            .into(),
                    ))
                }
                other => {
                    return Err(bad(format!(
                        "unknown annotation type {other:?} (manifest, manifest-descriptor, \
                         index or index-descriptor)"
                    )))
                }
            };
            into.insert(key.to_string(), value.to_string());
        }
        Ok(())
    }

    /// Adds one `-o` option `annotation[-TYPE][[PLATFORM]].KEY=VALUE` (BuildKit's exporter
    /// syntax) as the `--annotation` it stands for; `false` when `key` is no annotation option.
    pub fn add_output_option(&mut self, key: &str, value: &str) -> Result<bool, BuildError> {
        let Some(rest) = key.strip_prefix("annotation") else {
            return Ok(false);
        };
        let Some((head, name)) = rest.split_once('.') else {
            return Ok(false);
        };
        let head = head.strip_prefix('-').unwrap_or(head);
        let types = if head.starts_with('[') {
            format!("manifest{head}")
        } else {
            head.to_string()
        };
        let spec = if types.is_empty() {
            format!("{name}={value}")
        } else {
            format!("{types}:{name}={value}")
        };
        self.add(&spec)?;
        Ok(true)
    }

    /// Merges `other` in (its values win).
    pub fn merge(&mut self, other: &Annotations) {
        self.manifest.extend(other.manifest.clone());
        self.layout
            .manifest_descriptor
            .extend(other.layout.manifest_descriptor.clone());
        self.layout.index.extend(other.layout.index.clone());
    }
}

/// Splits `TYPES:KEY` where TYPES is lowercase letters, `-` and `,` (and a `[PLATFORM]`), as
/// buildx reads it; any other text before a colon is part of the key.
fn split_types(head: &str) -> (&str, &str) {
    if let Some((types, key)) = head.split_once(':') {
        let name = types.split('[').next().unwrap_or_default();
        let plain = name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'-' || b == b',');
        if !name.is_empty() && plain {
            return (types, key);
        }
    }
    ("", head)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(specs: &[&str]) -> Result<Annotations, BuildError> {
        let mut a = Annotations::default();
        for s in specs {
            a.add(s)?;
        }
        Ok(a)
    }

    #[test]
    fn types_as_buildx_reads_them() {
        let a = parsed(&[
            "org.opencontainers.image.title=t",
            "manifest:a=1",
            "index,manifest-descriptor:b=2",
            "com.example:c=3",
        ])
        .unwrap();
        let map = |kv: &[(&str, &str)]| -> BTreeMap<String, String> {
            kv.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(
            a.manifest,
            map(&[
                ("a", "1"),
                ("com.example:c", "3"),
                ("org.opencontainers.image.title", "t")
            ])
        );
        assert_eq!(a.layout.index, map(&[("b", "2")]));
        assert_eq!(a.layout.manifest_descriptor, map(&[("b", "2")]));
        let host = Platform::host();
        let here = format!("manifest[{}/{}]:p=1", host.os, host.architecture);
        assert_eq!(parsed(&[&here]).unwrap().manifest, map(&[("p", "1")]));
        for bad in [
            "novalue",
            "=v",
            "manifest:=v",
            "layer:k=v",
            "index-descriptor:k=v",
            "manifest[windows/s390x]:k=v",
            "manifest[linux:k=v",
        ] {
            assert!(parsed(&[bad]).is_err(), "{bad}");
        }
        let err = parsed(&["layer:k=v"]).unwrap_err().to_string();
        assert!(err.contains("unknown annotation type \"layer\""), "{err}");
    }

    #[test]
    fn output_options() {
        let mut a = Annotations::default();
        assert!(a.add_output_option("annotation.k", "1").unwrap());
        assert!(a.add_output_option("annotation-index.i", "2").unwrap());
        assert!(a
            .add_output_option("annotation-manifest-descriptor.d", "3")
            .unwrap());
        assert!(!a.add_output_option("name", "x").unwrap());
        assert!(a.add_output_option("annotation-layer.k", "1").is_err());
        assert_eq!(a.manifest["k"], "1");
        assert_eq!(a.layout.index["i"], "2");
        assert_eq!(a.layout.manifest_descriptor["d"], "3");
    }
}
