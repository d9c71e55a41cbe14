//! Helpers the commands share, so that no command module imports another: opening the
//! store, docker's human sizes and durations, aligned tables, `--format` handling, reading a Dockerfile from `-f` (the
//! template engine itself is [`super::template`]), the prune prompt and the registry flags.

use std::io::{Read, Write};
use std::path::Path;

use anyhow::Context;
use clap::Args;
use serde_json::Value;

use super::template::{Template, Val};
use super::Globals;
use crate::registry::RegistryOptions;
use crate::store::Store;

/// Opens the store named by the global flags, first removing what killed rbuild processes
/// left there (see [`Store::clean_leftovers`]).
pub(super) fn open_store(globals: &Globals) -> anyhow::Result<Store> {
    let store = open_store_as_is(globals)?;
    store
        .clean_leftovers()
        .with_context(|| format!("cleaning store {}", globals.root.display()))?;
    // Bridges and rules a killed rbuild left; a failure shows again where a network is used.
    let _ = crate::network::clean_leftovers();
    Ok(store)
}

/// Opens the store without cleaning (for the prunes, which clean and count what they free).
pub(super) fn open_store_as_is(globals: &Globals) -> anyhow::Result<Store> {
    Store::open(&globals.root).with_context(|| format!("opening store {}", globals.root.display()))
}

/// Docker's `units.HumanSizeWithPrecision(n, 3)`: decimal units, 3 significant digits.
pub(super) fn human_size(n: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i < units.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    format!("{}{}", sig3(v), units[i])
}

/// `%.3g` for values below 1000.
fn sig3(v: f64) -> String {
    let decimals = if v >= 100.0 {
        0
    } else if v >= 10.0 {
        1
    } else {
        2
    };
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Docker's "N units ago" (`units.HumanDuration` + " ago").
pub(super) fn since(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    match t {
        Some(t) => format!(
            "{} ago",
            human_duration((chrono::Utc::now() - t).num_seconds())
        ),
        None => "N/A".into(),
    }
}

/// Docker's `units.HumanDuration`: "Less than a second", "About a minute", "3 hours",
/// "2 weeks", … (used by `images`, `history` and `ps`).
pub(super) fn human_duration(seconds: i64) -> String {
    let secs = seconds.max(0);
    let (mins, hours) = (secs / 60, (secs as f64 / 3600.0).round() as i64);
    if secs < 1 {
        "Less than a second".to_string()
    } else if secs == 1 {
        "1 second".into()
    } else if secs < 60 {
        format!("{secs} seconds")
    } else if mins == 1 {
        "About a minute".into()
    } else if mins < 60 {
        format!("{mins} minutes")
    } else if hours == 1 {
        "About an hour".into()
    } else if hours < 48 {
        format!("{hours} hours")
    } else if hours < 24 * 7 * 2 {
        format!("{} days", hours / 24)
    } else if hours < 24 * 30 * 2 {
        format!("{} weeks", hours / 24 / 7)
    } else if hours < 24 * 365 * 2 {
        format!("{} months", hours / 24 / 30)
    } else {
        format!("{} years", hours / 24 / 365)
    }
}

/// `\t` and `\n` typed in a template mean tab and newline, as in docker.
pub(super) fn unescape(t: &str) -> String {
    t.replace("\\t", "\t").replace("\\n", "\n")
}

/// What `--format` asked a listing command (`images`) for.
pub(super) enum ListFormat {
    /// `json`: one JSON object per line
    Json,
    /// `table`, `table TEMPLATE` or no `--format`: a header row, then aligned columns
    Table(Template),
    /// a bare template: one rendered line per row
    Lines(Template),
}

impl ListFormat {
    /// Parses `--format` as docker does: `table` alone (or nothing, or an empty string) is the
    /// command's `default_table`; `\t` and `\n` typed in it mean tab and newline; the
    /// template is checked here, before anything is printed.
    pub(super) fn parse(raw: Option<&str>, default_table: &str) -> anyhow::Result<ListFormat> {
        let raw = raw.unwrap_or("").trim_matches(' ');
        if raw == "json" {
            return Ok(ListFormat::Json);
        }
        let (table, body) = match raw.strip_prefix("table") {
            Some(rest) => (true, rest.trim_matches(' ')),
            None if raw.is_empty() => (true, ""),
            None => (false, raw),
        };
        let body = if table && body.is_empty() {
            default_table.to_string()
        } else {
            unescape(body)
        };
        let template = parse_template(&body)?;
        Ok(if table {
            ListFormat::Table(template)
        } else {
            ListFormat::Lines(template)
        })
    }

    /// Prints `rows` (JSON objects shown to templates as the struct `type_name`); `headers`
    /// names the column title of each field (docker's upper-case spellings). Every row is
    /// rendered before the first line is written, so a template error prints nothing.
    pub(super) fn print(
        &self,
        out: &mut impl Write,
        rows: &[serde_json::Map<String, Value>],
        type_name: &str,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<()> {
        let render = |t: &Template| -> anyhow::Result<Vec<String>> {
            rows.iter()
                .map(|r| Ok(t.execute(&Val::from_json(&Value::Object(r.clone()), type_name))?))
                .collect()
        };
        match self {
            ListFormat::Json => {
                for r in rows {
                    writeln!(out, "{}", Value::Object(r.clone()))?;
                }
            }
            ListFormat::Lines(t) => {
                for line in render(t)? {
                    writeln!(out, "{line}")?;
                }
            }
            ListFormat::Table(t) => {
                let titles = Val::strings(
                    type_name,
                    headers.iter().map(|(f, h)| (f.to_string(), h.to_string())),
                );
                let header = t.execute(&titles)?;
                let lines = render(t)?;
                print_table(out, std::iter::once(header).chain(lines))?;
            }
        }
        Ok(())
    }
}

/// Parses a `--format` template; errors read `template parsing error: …` as in docker.
pub(super) fn parse_template(src: &str) -> anyhow::Result<Template> {
    Template::parse(src).map_err(|e| anyhow::anyhow!("template parsing error: {e}"))
}

/// Prints tab-separated lines as aligned columns (3 spaces between, at least 10 wide), like
/// docker's tabwriter.
pub(super) fn print_table(
    out: &mut impl Write,
    lines: impl Iterator<Item = String>,
) -> std::io::Result<()> {
    let rows: Vec<Vec<String>> = lines
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect();
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0; cols];
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    for r in &rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i + 1 < r.len() {
                // docker: tabwriter.NewWriter(out, 10, 1, 3, ' ', 0): 3 spaces of padding,
                // cells at least 10 wide
                line.push_str(&format!("{c:<w$}", w = (widths[i] + 3).max(10)));
            } else {
                line.push_str(c);
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

/// Docker's prune prompt: warns that `what` will be removed and asks on stderr; true for yes.
pub(super) fn confirm_removal(what: &str) -> bool {
    eprint!("WARNING! This will remove {what}.\nAre you sure you want to continue? [y/N] ");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer).ok();
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

/// Flags every registry command takes.
#[derive(Debug, Clone, Args)]
pub struct RegistryFlags {
    /// Require HTTPS with a verified certificate (true), or allow plain HTTP and unverified
    /// TLS for this registry (false). Default: verify, except for localhost, 127.0.0.0/8 and
    /// the `insecure-registries` of rbuild's config file
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub tls_verify: Option<bool>,
}

impl RegistryFlags {
    pub fn options(&self, globals: &Globals) -> RegistryOptions {
        RegistryOptions {
            tls_verify: self.tls_verify,
            ..globals.registry_options()
        }
    }
}

/// `https://host/v1/` and `host/` as docker accepts them → `host`.
pub(super) fn server_host(server: Option<&str>) -> String {
    let s = server.unwrap_or("docker.io");
    let s = s
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let s = s.split('/').next().unwrap_or(s);
    match s {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".into(),
        other => other.to_string(),
    }
}

/// Reads the Dockerfile named by `-f` (`-` for stdin) and returns the name to show in
/// messages with its bytes (for [`crate::dockerfile::decode`], which says where they are not UTF-8).
pub(super) fn read_dockerfile(file: &Path) -> anyhow::Result<(String, Vec<u8>)> {
    let (name, bytes) = if file.as_os_str() == "-" {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .context("reading the Dockerfile from stdin")?;
        ("Dockerfile".to_string(), bytes)
    } else {
        let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        (file.display().to_string(), bytes)
    };
    Ok((name, bytes))
}

/// Stdout for an archive (`save`, `export`, `cp ... -`), refused when it is a terminal, as
/// docker refuses to print a tar there.
pub(super) fn archive_stdout() -> anyhow::Result<std::io::Stdout> {
    let stdout = std::io::stdout();
    if std::io::IsTerminal::is_terminal(&stdout) {
        anyhow::bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
    }
    Ok(stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One rule for `images`, `history` and `ps` (ps had its own copy that said "About an
    /// hour" up to 2 hours and never said weeks).
    #[test]
    fn durations_as_docker() {
        let cases = [
            (0, "Less than a second"),
            (1, "1 second"),
            (59, "59 seconds"),
            (60, "About a minute"),
            (119, "About a minute"),
            (3599, "59 minutes"),
            (3600, "About an hour"),
            (5399, "About an hour"),
            (5400, "2 hours"),
            (47 * 3600, "47 hours"),
            (48 * 3600, "2 days"),
            (15 * 86_400, "2 weeks"),
            (70 * 86_400, "2 months"),
            (800 * 86_400, "2 years"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(secs), want, "{secs} s");
        }
        assert_eq!(since(None), "N/A");
    }
}
