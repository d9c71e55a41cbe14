//! `rbuild history IMAGE`: one row per history entry, newest first.

use std::io::Write;

use clap::Args;
use serde_json::{json, Map};

use super::common::{human_size, open_store, since, ListFormat};
use super::Globals;

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Don't truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// Only show image IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Print sizes and dates in human readable format (-H, the default; --human=false prints
    /// bytes and RFC 3339 times)
    #[arg(
        short = 'H',
        long,
        value_name = "BOOL",
        default_value_t = true,
        num_args = 0..=1,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    pub human: bool,
    /// Format output: "json", or a template like '{{.CreatedBy}}' ("table ..." adds a header)
    #[arg(long)]
    pub format: Option<String>,
    /// Image to show
    #[arg(value_name = "IMAGE")]
    pub image: String,
}

pub fn run(globals: &Globals, args: HistoryArgs) -> anyhow::Result<i32> {
    let store = open_store(globals)?;
    let rec = store.resolve_image(&args.image)?;
    let config = store.image_config(&rec.id)?;
    let id = if args.no_trunc {
        rec.id.to_string()
    } else {
        rec.id.short().to_string()
    };
    // Pair each non-empty history entry with its layer, bottom to top.
    let mut layers = rec.layers.iter();
    let mut rows = Vec::new();
    for h in &config.history {
        let size = if h.empty_layer {
            0
        } else {
            layers.next().map(|l| l.shown_size()).unwrap_or(0)
        };
        rows.push((h, size));
    }
    rows.reverse();
    let mut out = std::io::stdout().lock();
    if args.quiet {
        writeln!(out, "{id}")?;
        for _ in 1..rows.len() {
            writeln!(out, "<missing>")?;
        }
        return Ok(0);
    }
    let format = ListFormat::parse(
        args.format.as_deref(),
        "{{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}",
    )?;
    let mut lines = Vec::new();
    for (i, (h, size)) in rows.iter().enumerate() {
        let created = h
            .created
            .as_deref()
            .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
            .map(|t| t.with_timezone(&chrono::Utc));
        let by = h.created_by.clone().unwrap_or_default().replace('\t', " ");
        let by = if !args.no_trunc && by.chars().count() > 45 {
            format!("{}…", by.chars().take(44).collect::<String>())
        } else {
            by
        };
        let mut m = Map::new();
        m.insert(
            "ID".into(),
            json!(if i == 0 { id.as_str() } else { "<missing>" }),
        );
        let created_at = created
            .map(|c| c.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default();
        // docker's --human=false: the time instead of "2 days ago", bytes instead of "1.2kB"
        let created_since = if args.human {
            since(created)
        } else {
            created_at.clone()
        };
        m.insert("CreatedSince".into(), json!(created_since));
        m.insert("CreatedAt".into(), json!(created_at));
        m.insert("CreatedBy".into(), json!(by));
        let size = if args.human {
            human_size(*size)
        } else {
            size.to_string()
        };
        m.insert("Size".into(), json!(size));
        m.insert(
            "Comment".into(),
            json!(h.comment.clone().unwrap_or_default()),
        );
        lines.push(m);
    }
    format.print(&mut out, &lines, "HistoryEntry", &HEADERS)?;
    Ok(0)
}

/// The column titles of `history` tables, docker's spellings.
const HEADERS: [(&str, &str); 6] = [
    ("ID", "IMAGE"),
    ("CreatedSince", "CREATED"),
    ("CreatedAt", "CREATED AT"),
    ("CreatedBy", "CREATED BY"),
    ("Size", "SIZE"),
    ("Comment", "COMMENT"),
];
