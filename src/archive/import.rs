//! `import`: a rootfs tarball (plain, gzip, bzip2, xz or zstd) → a one-layer image.

use std::io::{self, BufWriter, Read, Write};

use super::ArchiveError;
use crate::dockerfile::{
    self,
    instructions::{parse_instructions, Instruction},
    shell::ShellLex,
};
use crate::image::compress::{self, Compression, Compressor};
use crate::image::digest::HashWriter;
use crate::image::layer::{check_tar, LayerError, LayerInfo};
use crate::image::oci::{self, ContainerConfig, History, ImageConfig, RootFs};
use crate::image::reference::Reference;
use crate::store::{ImageId, Store};

/// Options of `import`.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Dockerfile instructions to apply to the config (`CMD ["sh"]`, `ENV A=b`, …).
    pub changes: Vec<String>,
    /// Commit message (history comment); default `Imported from <source>`.
    pub message: Option<String>,
    /// Where the tarball came from, for the default message (`-` for stdin).
    pub source: String,
}

/// Imports the rootfs tarball read from `reader` as a new image tagged `tags`.
///
/// The tar is stored as is (decompressed, then gzip-compressed); every entry path is checked
/// (no absolute paths, no `..`) before the image is committed.
pub fn import_rootfs(
    store: &Store,
    reader: impl Read,
    options: &ImportOptions,
    tags: &[Reference],
) -> Result<ImageId, ArchiveError> {
    let mut config_changes = ContainerConfig::default();
    for change in &options.changes {
        apply_change(&mut config_changes, change)?;
    }
    let (_, plain) = compress::decompress_auto(reader).map_err(ArchiveError::Read)?;
    let tmp = store.temp_dir()?;
    let path = tmp.path().join("layer");
    let file = std::fs::File::create(&path).map_err(super::io_err(&path))?;
    let compressed = HashWriter::new(BufWriter::with_capacity(1 << 20, file));
    let gz = Compressor::new(Compression::Gzip, compressed).map_err(ArchiveError::Write)?;
    let mut tee = Tee {
        inner: plain,
        out: HashWriter::new(gz),
        error: None,
    };
    let entries = check_tar(&mut tee)
        .map_err(|e| match e {
            LayerError::Read(e) => ArchiveError::Read(e),
            other => ArchiveError::Invalid(format!("{}: {other}", options.source)),
        })?
        .entries;
    io::copy(&mut tee, &mut io::sink()).map_err(ArchiveError::Read)?;
    if let Some(e) = tee.error {
        return Err(ArchiveError::Write(e));
    }
    let (gz, diff_id, uncompressed_size) = tee.out.finish();
    if entries == 0 && uncompressed_size < 1024 {
        return Err(ArchiveError::NotATar(format!(
            "{}: no tar entries in {uncompressed_size} bytes",
            options.source
        )));
    }
    let (compressed, gzip_members) = gz.finish_with_members().map_err(ArchiveError::Write)?;
    let (buf, digest, size) = compressed.finish();
    buf.into_inner()
        .map_err(|e| ArchiveError::Write(e.into_error()))?
        .sync_all()
        .map_err(super::io_err(&path))?;
    store.put_blob_file(&path, &digest)?;
    let layer = LayerInfo {
        digest,
        diff_id: diff_id.clone(),
        size,
        uncompressed_size,
        media_type: oci::MEDIA_LAYER_GZIP.to_string(),
        gzip_members,
    };
    let now = crate::image::oci::timestamp(chrono::Utc::now());
    let message = options
        .message
        .clone()
        .unwrap_or_else(|| format!("Imported from {}", options.source));
    let config = ImageConfig {
        created: Some(now.clone()),
        architecture: oci::host_architecture().to_string(),
        os: "linux".to_string(),
        config: Some(config_changes),
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids: vec![diff_id],
        },
        history: vec![History {
            created: Some(now),
            comment: Some(message),
            ..History::default()
        }],
        ..ImageConfig::default()
    };
    Ok(store.commit_image(&config, &[layer], tags)?)
}

/// Reads from `inner` and copies everything read into `out`.
struct Tee<R, W> {
    inner: R,
    out: W,
    error: Option<io::Error>,
}

impl<R: Read, W: Write> Read for Tee<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Err(e) = self.out.write_all(&buf[..n]) {
            let msg = e.to_string();
            self.error = Some(e);
            return Err(io::Error::other(msg));
        }
        Ok(n)
    }
}

/// Applies one `--change` Dockerfile instruction to a config.
pub fn apply_change(config: &mut ContainerConfig, change: &str) -> Result<(), ArchiveError> {
    let change = change.trim();
    let (instr, rest) = change
        .split_once(char::is_whitespace)
        .unwrap_or((change, ""));
    let rest = rest.trim();
    let bad = |why: &str| ArchiveError::Invalid(format!("invalid change {change:?}: {why}"));
    match instr.to_ascii_uppercase().as_str() {
        "CMD" => config.cmd = Some(command_form(rest)),
        "ENTRYPOINT" => config.entrypoint = Some(command_form(rest)),
        "ENV" => {
            for (k, v) in key_values(change, config).map_err(|why| bad(&why))? {
                let env = config.env.get_or_insert_with(Vec::new);
                env.retain(|e| e.split_once('=').map(|(ek, _)| ek) != Some(k.as_str()));
                env.push(format!("{k}={v}"));
            }
        }
        "LABEL" => {
            for (k, v) in key_values(change, config).map_err(|why| bad(&why))? {
                config
                    .labels
                    .get_or_insert_with(Default::default)
                    .insert(k, v);
            }
        }
        "WORKDIR" => {
            // Relative to the current one, as in a Dockerfile (a relative WorkingDir cannot run).
            if rest.is_empty() {
                return Err(bad("WORKDIR needs a path"));
            }
            let current = config.working_dir.as_deref().unwrap_or("");
            let joined = if rest.starts_with('/') {
                rest.to_string()
            } else {
                format!("/{current}/{rest}")
            };
            config.working_dir = Some(crate::context::glob::clean(&joined));
        }
        "USER" => config.user = Some(rest.to_string()),
        "STOPSIGNAL" => config.stop_signal = Some(rest.to_string()),
        "EXPOSE" => {
            let ports = config.exposed_ports.get_or_insert_with(Default::default);
            for p in rest.split_whitespace() {
                let p = if p.contains('/') {
                    p.to_string()
                } else {
                    format!("{p}/tcp")
                };
                ports.insert(p, serde_json::json!({}));
            }
        }
        "VOLUME" => {
            let vols = config.volumes.get_or_insert_with(Default::default);
            let list: Vec<String> = serde_json::from_str(rest)
                .unwrap_or_else(|_| rest.split_whitespace().map(str::to_string).collect());
            for v in list {
                vols.insert(v, serde_json::json!({}));
            }
        }
        other => return Err(bad(&format!("{other} is not supported by import"))),
    }
    Ok(())
}

/// JSON exec form, or shell form wrapped in `/bin/sh -c`.
fn command_form(rest: &str) -> Vec<String> {
    match serde_json::from_str::<Vec<String>>(rest) {
        Ok(v) => v,
        Err(_) => vec!["/bin/sh".into(), "-c".into(), rest.to_string()],
    }
}

/// The pairs of an `ENV` or `LABEL` change (`K=V K2="v 2"` or the legacy `K V`), read by the
/// Dockerfile parser and expanded like a Dockerfile's: quotes removed, `$VAR` from the
/// config's environment (updated pair by pair, as `ENV A=1 B=$A` sees `A`).
fn key_values(change: &str, config: &ContainerConfig) -> Result<Vec<(String, String)>, String> {
    let df = dockerfile::parse(&format!("FROM scratch\n{change}\n"), "--change")
        .map_err(|e| e.kind.to_string())?;
    let stages = parse_instructions(&df).map_err(|e| e.kind.to_string())?;
    let (pairs, is_env) = match stages.stages.first().map(|s| &s.instructions[..]) {
        Some([c]) => match &c.instruction {
            Instruction::Env { vars } => (vars, true),
            Instruction::Label { labels } => (labels, false),
            _ => return Err("not an ENV or LABEL instruction".into()),
        },
        _ => return Err("want one instruction".into()),
    };
    let mut env: Vec<(String, String)> = config
        .env
        .iter()
        .flatten()
        .filter_map(|e| e.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let lex = ShellLex::new('\\');
    let mut out = Vec::new();
    for kv in pairs {
        let key = lex.process_word(&kv.key, &env).map_err(|e| e.to_string())?;
        let value = lex
            .process_word(&kv.value, &env)
            .map_err(|e| e.to_string())?;
        if is_env {
            env.push((key.clone(), value.clone()));
        }
        out.push((key, value));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_update_the_config() {
        let mut c = ContainerConfig::default();
        apply_change(&mut c, r#"CMD ["/bin/sh", "-c", "echo hi"]"#).unwrap();
        apply_change(&mut c, "ENTRYPOINT echo x").unwrap();
        apply_change(&mut c, r#"ENV A=1 B="two words""#).unwrap();
        apply_change(&mut c, "ENV A 3").unwrap();
        apply_change(&mut c, "EXPOSE 80 53/udp").unwrap();
        apply_change(&mut c, "LABEL org.x=y").unwrap();
        apply_change(&mut c, r#"LABEL "quoted.key"="v w" plain=$A"#).unwrap();
        apply_change(&mut c, "ENV C=x D=${C}y").unwrap();
        assert_eq!(c.cmd.unwrap(), vec!["/bin/sh", "-c", "echo hi"]);
        assert_eq!(c.entrypoint.unwrap(), vec!["/bin/sh", "-c", "echo x"]);
        assert_eq!(c.env.unwrap(), vec!["B=two words", "A=3", "C=x", "D=xy"]);
        assert!(c.exposed_ports.unwrap().contains_key("53/udp"));
        let labels = c.labels.unwrap();
        assert_eq!(labels["org.x"], "y");
        assert_eq!(labels["quoted.key"], "v w");
        assert_eq!(labels["plain"], "3");
        let mut c = ContainerConfig::default();
        for bad in ["ENV", "ENV =x", "LABEL", "ENV A=1\nRUN x"] {
            assert!(apply_change(&mut c, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn workdir_change_is_made_absolute() {
        let mut c = ContainerConfig::default();
        apply_change(&mut c, "WORKDIR rel").unwrap();
        assert_eq!(c.working_dir.as_deref(), Some("/rel"));
        apply_change(&mut c, "WORKDIR sub/../x/").unwrap();
        assert_eq!(c.working_dir.as_deref(), Some("/rel/x"));
        apply_change(&mut c, "WORKDIR /srv//app").unwrap();
        assert_eq!(c.working_dir.as_deref(), Some("/srv/app"));
        assert!(apply_change(&mut c, "WORKDIR").is_err());
        assert!(apply_change(&mut ContainerConfig::default(), "RUN x").is_err());
    }
}
