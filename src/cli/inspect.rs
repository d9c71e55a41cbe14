//! `rbuild inspect NAME...`: docker-like JSON about images and containers
//! ([`crate::container::inspect`]).

use std::io::Write;

use clap::Args;
use serde_json::{json, Value};

use super::common::{open_store, parse_template, unescape};
use super::template::Val;
use super::Globals;
use crate::store::Store;

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Format the output using a template ('{{.Id}}', '{{json .Config}}')
    #[arg(short, long)]
    pub format: Option<String>,
    /// Only objects of this type (default: an image, else a container of that name)
    #[arg(long = "type", value_enum, value_name = "TYPE")]
    pub kind: Option<ObjectType>,
    /// Images or containers to inspect
    #[arg(required = true, value_name = "NAME")]
    pub images: Vec<String>,
}

/// `inspect --type`: docker's object types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ObjectType {
    Image,
    Container,
}

/// The docker `inspect` object of image `name`.
pub(super) fn inspect_value(store: &Store, name: &str) -> anyhow::Result<Value> {
    let rec = store.resolve_image(name)?;
    let config = store.image_config(&rec.id)?;
    let tags = store.image_tags(&rec.id)?;
    let repo_tags: Vec<String> = tags.iter().map(|t| t.familiar()).collect();
    let comment = config
        .history
        .last()
        .and_then(|h| h.comment.clone())
        .unwrap_or_default();
    let container_config = serde_json::to_value(config.config.clone().unwrap_or_default())?;
    let mut v = json!({
        "Id": rec.id.to_string(),
        "RepoTags": repo_tags,
        "RepoDigests": rec.repo_digests,
        "Parent": "",
        "Comment": comment,
        "Created": config.created.clone().unwrap_or_default(),
        "DockerVersion": "",
        "Author": config.author.clone().unwrap_or_default(),
        "Config": container_config,
        "Architecture": config.architecture,
        "Os": config.os,
        "Size": rec.size(),
        "VirtualSize": rec.size(),
        "RootFS": {
            "Type": config.rootfs.kind,
            "Layers": config.rootfs.diff_ids.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
        },
        "History": serde_json::to_value(&config.history)?,
        "Manifest": {
            "MediaType": rec.manifest.media_type,
            "Digest": rec.manifest.digest.to_string(),
            "Size": rec.manifest.size,
        },
        "Metadata": { "LastTagTime": chrono::DateTime::from_timestamp(rec.added, 0).map(|t| t.to_rfc3339()) },
    });
    if let (Some(variant), Some(obj)) = (config.extra.get("variant"), v.as_object_mut()) {
        obj.insert("Variant".into(), variant.clone());
    }
    Ok(v)
}

/// The docker `inspect` object of container `name`, with its template type name.
fn container_value(store: &Store, name: &str) -> anyhow::Result<(Value, &'static str)> {
    let value = crate::container::inspect::inspect(store, name)?;
    Ok((value, "ContainerInspect"))
}

/// The `-f/--format` of an `inspect`: `json` (or none) means the default output, as in
/// docker; any other format is a template, checked before anything is looked up or printed.
pub(super) fn inspect_template(
    format: Option<&str>,
) -> anyhow::Result<Option<super::template::Template>> {
    Ok(match format {
        None | Some("json") => None,
        Some(t) => Some(parse_template(&unescape(t))?),
    })
}

pub fn run(globals: &Globals, args: InspectArgs) -> anyhow::Result<i32> {
    let template = inspect_template(args.format.as_deref())?;
    let store = open_store(globals)?;
    let mut values = Vec::new();
    let mut status = 0;
    for name in &args.images {
        let image = || inspect_value(&store, name).map(|v| (v, "ImageInspect"));
        // Without --type an image tagged `name` wins over a container of that name (rbuild's
        // images came first; docker looks for a container first); a container wins over an
        // image whose ID merely starts with `name` (a container named `d` is not the image
        // `d…`). Neither: the image lookup's error.
        let found = match args.kind {
            Some(ObjectType::Image) => image(),
            Some(ObjectType::Container) => container_value(&store, name),
            None => match store.resolve_name(name) {
                Ok((_, Some(_tag))) => image(),
                _ => container_value(&store, name).or_else(|_| image()),
            },
        };
        match found {
            Ok(v) => values.push(v),
            Err(e) => {
                super::report::item_error(&e);
                status = 1;
            }
        }
    }
    print_values(template.as_ref(), &values)?;
    Ok(status)
}

/// Prints `inspect` results, each with the struct name templates see it as
/// (`ImageInspect`, `ContainerInspect`, `Volume`): through `template`, one line each, or as
/// docker's indented JSON array. Every value is rendered first: a template error prints
/// nothing.
pub(super) fn print_values(
    template: Option<&super::template::Template>,
    values: &[(Value, &str)],
) -> anyhow::Result<()> {
    match template {
        Some(t) => {
            let lines = values
                .iter()
                .map(|(v, kind)| t.execute(&Val::from_json(v, kind)))
                .collect::<Result<Vec<_>, _>>()?;
            let mut out = std::io::stdout().lock();
            for line in lines {
                writeln!(out, "{line}")?;
            }
        }
        None => {
            let mut buf = Vec::new();
            let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
            let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
            let values: Vec<&Value> = values.iter().map(|(v, _)| v).collect();
            serde::Serialize::serialize(&values, &mut ser)?;
            buf.push(b'\n');
            std::io::stdout().lock().write_all(&buf)?;
        }
    }
    Ok(())
}
