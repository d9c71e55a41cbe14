//! `rbuild images` and `rbuild image prune` (the `rbuild image …` subcommand is
//! `image_cmd`).

use std::io::Write;

use anyhow::bail;
use clap::Args;
use serde_json::{json, Value};

use super::common::{confirm_removal, human_size, open_store, open_store_as_is, since, ListFormat};
use super::Globals;
use crate::context::glob::Glob;
use crate::image::reference::Reference;
use crate::store::{ImageSummary, RemoveEvent, Store};

#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// Only show image IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Show all images (intermediate images included; rbuild keeps none)
    #[arg(short, long)]
    pub all: bool,
    /// Show digests
    #[arg(long)]
    pub digests: bool,
    /// Don't truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// Filter output: dangling=true|false, before=IMG, since=IMG, reference=PATTERN, label=K[=V]
    #[arg(short, long = "filter", value_name = "FILTER")]
    pub filter: Vec<String>,
    /// Format output: "json", or a template like '{{.Repository}}:{{.Tag}}' ("table ..." adds a header)
    #[arg(long)]
    pub format: Option<String>,
    /// Show images of this repository (and tag) only; wildcards as in `-f reference=` ('repo-*', 'app:v1.*')
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub repository: Option<String>,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Remove all unused images, not just dangling ones
    #[arg(short, long)]
    pub all: bool,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
    /// Only images created before until=TIMESTAMP|DURATION (RFC 3339, Unix seconds or '24h'), or with label=K[=V]
    #[arg(long = "filter", value_name = "FILTER")]
    pub filter: Vec<String>,
}

/// One line of `images`: the image under a tag (or none), and the repository digest shown
/// for it.
struct Line<'a> {
    tag: Option<&'a Reference>,
    /// A repository with no tag of this image but a digest (pulled or pushed by digest).
    repository: Option<String>,
    digest: Option<String>,
}

/// The lines of image `img`, as docker lists them: a line per tag, with the repository
/// digest of that tag's repository (`repo@sha256:…`, recorded by push and pull) when digests
/// are shown (one line per digest); a line per repository known only by digest; one line
/// for an image with neither.
fn lines(img: &ImageSummary, show_digests: bool) -> Vec<Line<'_>> {
    let digests: Vec<(&str, &str)> = img
        .record
        .repo_digests
        .iter()
        .filter_map(|d| d.split_once('@'))
        .collect();
    let mut out = Vec::new();
    for t in &img.tags {
        let repo = t.familiar_name();
        let mine: Vec<&str> = digests
            .iter()
            .filter(|(r, _)| *r == repo)
            .map(|(_, d)| *d)
            .collect();
        if !show_digests || mine.is_empty() {
            out.push(Line {
                tag: Some(t),
                repository: None,
                digest: None,
            });
        }
        for d in mine.iter().filter(|_| show_digests) {
            out.push(Line {
                tag: Some(t),
                repository: None,
                digest: Some(d.to_string()),
            });
        }
    }
    let tagged: Vec<String> = img.tags.iter().map(Reference::familiar_name).collect();
    for (repo, d) in digests
        .iter()
        .filter(|(r, _)| !tagged.iter().any(|t| t == r))
    {
        out.push(Line {
            tag: None,
            repository: Some(repo.to_string()),
            digest: show_digests.then(|| d.to_string()),
        });
    }
    if out.is_empty() {
        out.push(Line {
            tag: None,
            repository: None,
            digest: None,
        });
    }
    out
}

/// One row of `images`, as the fields docker's templates name.
fn row(img: &ImageSummary, line: &Line<'_>, no_trunc: bool) -> serde_json::Map<String, Value> {
    let r = &img.record;
    let none = || "<none>".to_string();
    let (repo, tagname) = match line.tag {
        Some(t) => (t.familiar_name(), t.tag.clone().unwrap_or_else(none)),
        None => (line.repository.clone().unwrap_or_else(none), none()),
    };
    let id = if no_trunc {
        r.id.to_string()
    } else {
        r.id.short().to_string()
    };
    let created = r.created_time();
    let mut m = serde_json::Map::new();
    m.insert("Containers".into(), json!("N/A"));
    m.insert(
        "CreatedAt".into(),
        json!(created
            .map(|c| c.format("%Y-%m-%d %H:%M:%S %z UTC").to_string())
            .unwrap_or_default()),
    );
    m.insert("CreatedSince".into(), json!(since(created)));
    m.insert(
        "Digest".into(),
        json!(line.digest.clone().unwrap_or_else(none)),
    );
    m.insert("ID".into(), json!(id));
    m.insert("Repository".into(), json!(repo));
    m.insert("SharedSize".into(), json!("N/A"));
    m.insert("Size".into(), json!(human_size(r.size())));
    m.insert("Tag".into(), json!(tagname));
    m.insert("UniqueSize".into(), json!("N/A"));
    m.insert("VirtualSize".into(), json!(human_size(r.size())));
    m
}

pub fn run(globals: &Globals, args: ImagesArgs) -> anyhow::Result<i32> {
    let store = open_store(globals)?;
    let images = store.list_images()?;
    let filters = Filters::parse(&args.filter, &store)?;
    // As docker, the argument is a `reference` filter (a pattern); a name that is not one
    // written in full (`docker.io/library/busybox`) also matches, as before.
    let repository = match &args.repository {
        Some(r) => Some((r.as_str(), reference_pattern(r)?)),
        None => None,
    };
    // As docker: digests are shown with --digests, or when the format names them.
    let show_digests = args.digests
        || args
            .format
            .as_deref()
            .is_some_and(|f| f.contains(".Digest"));
    let mut rows = Vec::new();
    for img in &images {
        if !filters.keep_image(img, &store)? {
            continue;
        }
        for line in lines(img, show_digests) {
            let t = line.tag;
            if !filters.keep_tag(t) {
                continue;
            }
            if let Some((name, pattern)) = &repository {
                let Some(t) = t else { continue };
                if !matches_repository(name, t) && !matches_reference(pattern, t) {
                    continue;
                }
            }
            rows.push(row(img, &line, args.no_trunc));
        }
    }
    let mut out = std::io::stdout().lock();
    if args.quiet {
        let mut seen = Vec::new();
        for r in &rows {
            let id = r["ID"].as_str().unwrap_or_default().to_string();
            if !seen.contains(&id) {
                writeln!(out, "{id}")?;
                seen.push(id);
            }
        }
        return Ok(0);
    }
    let mut t = "{{.Repository}}\t{{.Tag}}\t".to_string();
    if args.digests {
        t.push_str("{{.Digest}}\t");
    }
    t.push_str("{{.ID}}\t{{.CreatedSince}}\t{{.Size}}");
    let format = ListFormat::parse(args.format.as_deref(), &t)?;
    format.print(&mut out, &rows, "ImageSummary", &HEADERS)?;
    Ok(0)
}

fn matches_repository(pattern: &str, t: &Reference) -> bool {
    match Reference::parse_no_default_tag(pattern) {
        Ok(p) => p.name() == t.name() && (p.tag.is_none() || p.tag == t.tag),
        Err(_) => false,
    }
}

struct Filters {
    dangling: Option<bool>,
    before: Option<(i64, Option<chrono::DateTime<chrono::Utc>>)>,
    since: Option<(i64, Option<chrono::DateTime<chrono::Utc>>)>,
    references: Vec<Glob>,
    labels: Vec<(String, Option<String>)>,
}

impl Filters {
    fn parse(raw: &[String], store: &Store) -> anyhow::Result<Filters> {
        let mut f = Filters {
            dangling: None,
            before: None,
            since: None,
            references: Vec::new(),
            labels: Vec::new(),
        };
        for r in raw {
            let Some((k, v)) = r.split_once('=') else {
                bail!("bad format of filter (expected name=value): {r}");
            };
            match k {
                "dangling" => {
                    f.dangling = Some(match v {
                        "true" | "1" => true,
                        "false" | "0" => false,
                        _ => bail!("invalid filter 'dangling={v}'"),
                    })
                }
                "before" | "since" => {
                    let rec = store.resolve_image(v)?;
                    let key = Some((rec.added, rec.created_time()));
                    if k == "before" {
                        f.before = key;
                    } else {
                        f.since = key;
                    }
                }
                "reference" => f.references.push(reference_pattern(v)?),
                "label" => f.labels.push(match v.split_once('=') {
                    Some((a, b)) => (a.to_string(), Some(b.to_string())),
                    None => (v.to_string(), None),
                }),
                other => bail!("invalid filter '{other}'"),
            }
        }
        Ok(f)
    }

    fn keep_image(&self, img: &ImageSummary, store: &Store) -> anyhow::Result<bool> {
        if let Some(d) = self.dangling {
            if d != img.tags.is_empty() {
                return Ok(false);
            }
        }
        let key = (img.record.created_time(), img.record.added);
        if let Some((added, created)) = &self.before {
            if key >= (*created, *added) {
                return Ok(false);
            }
        }
        if let Some((added, created)) = &self.since {
            if key <= (*created, *added) {
                return Ok(false);
            }
        }
        if !self.labels.is_empty() {
            let config = store.image_config(&img.record.id)?;
            let labels = config.config.and_then(|c| c.labels).unwrap_or_default();
            for (k, v) in &self.labels {
                match (labels.get(k), v) {
                    (None, _) => return Ok(false),
                    (Some(have), Some(want)) if have != want => return Ok(false),
                    _ => {}
                }
            }
        }
        Ok(true)
    }

    fn keep_tag(&self, tag: Option<&Reference>) -> bool {
        if self.references.is_empty() {
            return true;
        }
        let Some(t) = tag else { return false };
        self.references.iter().any(|p| matches_reference(p, t))
    }
}

/// A `reference` filter's pattern: Go's `path.Match` syntax, as docker's.
fn reference_pattern(pattern: &str) -> anyhow::Result<Glob> {
    Glob::parse(pattern).map_err(|e| anyhow::anyhow!("invalid reference pattern {pattern:?}: {e}"))
}

/// Docker's `reference` filter: the pattern matches the familiar name with its tag
/// (`busybox:latest`), or without (`busybox`); rbuild also tries the full name.
fn matches_reference(pattern: &Glob, t: &Reference) -> bool {
    [t.familiar(), t.familiar_name(), t.to_string()]
        .iter()
        .any(|s| pattern.is_match(s))
}

/// `rbuild image prune`.
pub fn prune(globals: &Globals, args: PruneArgs) -> anyhow::Result<i32> {
    if !args.force {
        let what = if args.all {
            "all images without at least one container associated to them"
        } else {
            "all dangling images"
        };
        if !confirm_removal(what) {
            return Ok(0);
        }
    }
    let store = open_store_as_is(globals)?;
    // docker's prune filters: `until` (created before) and `label`, as `images -f label=`
    let mut until = None;
    let mut labels = Vec::new();
    for f in &args.filter {
        match f.split_once('=') {
            Some(("until", v)) => until = Some(until_cutoff(v)?),
            Some(("label", _)) => labels.push(f.clone()),
            _ => bail!("invalid filter '{f}' (image prune takes until=… and label=…)"),
        }
    }
    let labels = Filters::parse(&labels, &store)?;
    let (events, freed) = store.prune_images_matching(args.all, &mut |img| {
        if let Some(cutoff) = until {
            if img.record.created_time().is_none_or(|c| c >= cutoff) {
                return Ok(false);
            }
        }
        labels
            .keep_image(img, &store)
            .map_err(|e| crate::store::StoreError::Invalid(e.to_string()))
    })?;
    let mut out = std::io::stdout().lock();
    if !events.is_empty() {
        writeln!(out, "Deleted Images:")?;
        for e in &events {
            match e {
                RemoveEvent::Untagged(r) => writeln!(out, "untagged: {}", r.familiar())?,
                RemoveEvent::Deleted(d) => writeln!(out, "deleted: {d}")?,
            }
        }
        writeln!(out)?;
    }
    writeln!(out, "Total reclaimed space: {}", human_size(freed))?;
    Ok(0)
}

/// The time of `image prune --filter until=V`: an RFC 3339 time, Unix seconds, or a Go
/// duration before now (`24h`, `90m`), as docker.
fn until_cutoff(v: &str) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    if let Some(d) = crate::dockerfile::instructions::parse_go_duration(v) {
        return Ok(chrono::Utc::now() - chrono::Duration::from_std(d)?);
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(v) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    if let Some(t) = v
        .parse::<i64>()
        .ok()
        .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
    {
        return Ok(t);
    }
    bail!("invalid filter 'until={v}': not a time (RFC 3339, Unix seconds) or a duration (24h)")
}

/// The column titles of `images` tables, docker's spellings.
const HEADERS: [(&str, &str); 11] = [
    ("Repository", "REPOSITORY"),
    ("Tag", "TAG"),
    ("Digest", "DIGEST"),
    ("ID", "IMAGE ID"),
    ("CreatedSince", "CREATED"),
    ("CreatedAt", "CREATED AT"),
    ("Size", "SIZE"),
    ("VirtualSize", "VIRTUAL SIZE"),
    ("SharedSize", "SHARED SIZE"),
    ("UniqueSize", "UNIQUE SIZE"),
    ("Containers", "CONTAINERS"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_reference_patterns_like_docker() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(4_260_000), "4.26MB");
        assert_eq!(human_size(12_300), "12.3kB");
        assert_eq!(human_size(1_000_000_000), "1GB");
        let busybox = Reference::parse("busybox").unwrap();
        let app = Reference::parse("localhost:5000/app:v1").unwrap();
        let m = |p: &str, r: &Reference| matches_reference(&reference_pattern(p).unwrap(), r);
        assert!(m("busy*", &busybox));
        assert!(m("busybox", &busybox));
        assert!(m("b?sy*:*", &busybox));
        assert!(!m("*box:v*", &busybox));
        assert!(!m("*", &app));
        assert!(m("*/*", &app));
        assert!(m("localhost:5000/a[op]p:v[0-9]", &app));
        assert!(reference_pattern("[").is_err());
    }
}
