//! Golden files with a bless switch, and the normaliser that makes CLI output comparable
//! from run to run (durations, relative times, random IDs).
//!
//! A golden file holds the exact expected text. Run the tests with `RBUILD_BLESS=1` to
//! (re)write every golden file from what the binary prints now, then review the diff.

use std::path::Path;

/// Whether the tests write golden files instead of comparing (`RBUILD_BLESS` set).
pub fn blessing() -> bool {
    std::env::var_os("RBUILD_BLESS").is_some()
}

/// Compares `actual` with the golden file at `path`, or writes it there when blessing. The
/// error shows both texts and how to bless.
pub fn check(path: &Path, actual: &str) -> Result<(), String> {
    if blessing() {
        std::fs::write(path, actual).expect("write golden file");
        return Ok(());
    }
    let expected = std::fs::read_to_string(path).unwrap_or_default();
    if expected == actual {
        return Ok(());
    }
    Err(format!(
        "{} differs (after an intended change: RBUILD_BLESS=1, then review the diff):\n\
         --- expected\n{expected}\n--- got\n{actual}",
        path.display()
    ))
}

/// What [`normalise`] masks beyond durations and relative times, which it always masks.
#[derive(Clone, Copy, Default)]
pub struct Mask {
    /// `sha256:<64 hex>` digests and 12-hex short IDs (outputs about images whose IDs depend
    /// on the host, such as the busybox base, or about containers).
    pub ids: bool,
    /// Runs of two or more spaces become one column gap of three: for tables whose column
    /// widths follow a masked cell (a relative time that is "2 seconds" in one run and
    /// "Less than a second" in the next).
    pub columns: bool,
}

/// `--progress=plain` output with each step's lines together, the steps ordered by their
/// first line (the title: `[internal] load build context`, `[stage-0 2/3] COPY ...`,
/// `exporting to image`) and numbered again from #1, other lines (an error) after them. Steps
/// run in parallel and are numbered and printed as they start and go (as BuildKit's), so
/// their numbers and interleaving change from run to run; what each step prints does not.
pub fn group_steps(progress: &str) -> String {
    let mut steps: std::collections::BTreeMap<u32, Vec<&str>> = Default::default();
    let mut rest = String::new();
    for line in progress.split_inclusive('\n') {
        let step = line
            .strip_prefix('#')
            .and_then(|l| l.split_once(' '))
            .and_then(|(n, text)| Some((n.parse().ok()?, text)));
        match step {
            Some((n, text)) => steps.entry(n).or_default().push(text),
            None => rest.push_str(line),
        }
    }
    let mut steps: Vec<Vec<&str>> = steps.into_values().collect();
    steps.sort_by(|a, b| a[0].cmp(b[0]));
    let mut out = String::new();
    for (i, lines) in steps.iter().enumerate() {
        for text in lines {
            out.push_str(&format!("#{} {text}", i + 1));
        }
    }
    out + &rest
}

/// A table as two runs a moment apart print it alike: relative times ("2 seconds ago")
/// masked, column gaps evened (the CREATED column of `images` and `history` changes at
/// every second boundary).
pub fn table(text: &str) -> String {
    normalise(
        text,
        Mask {
            ids: false,
            columns: true,
        },
    )
}

/// Replaces what changes from run to run: step durations of `--progress=plain` (`DONE 0.1s`,
/// `#4 0.054 output`) become `<t>`, relative times (`3 years ago`, `Less than a second ago`)
/// become `<ago>` padded to the same width, `"LastTagTime": "..."` becomes `<time>`, and what
/// `mask` asks for.
pub fn normalise(text: &str, mask: Mask) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let mut line = progress_times(line);
        line = relative_times(&line);
        if let Some(i) = line.find("\"LastTagTime\": \"") {
            let start = i + "\"LastTagTime\": \"".len();
            if let Some(len) = line[start..].find('"') {
                line.replace_range(start..start + len, "<time>");
            }
        }
        if mask.ids {
            line = short_ids(&digests(&line));
        }
        if mask.columns {
            line = columns(&line);
        }
        out.push_str(&line);
    }
    out
}

fn is_decimal(word: &str) -> bool {
    match word.split_once('.') {
        Some((a, b)) => {
            !a.is_empty()
                && !b.is_empty()
                && a.bytes().all(|c| c.is_ascii_digit())
                && b.bytes().all(|c| c.is_ascii_digit())
        }
        None => false,
    }
}

/// `#N DONE 1.2s` → `#N DONE <t>`; `#N 0.054 text` → `#N <t> text`.
fn progress_times(line: &str) -> String {
    let Some(rest) = line.strip_prefix('#') else {
        return line.to_string();
    };
    let Some((n, rest)) = rest.split_once(' ') else {
        return line.to_string();
    };
    if !n.bytes().all(|c| c.is_ascii_digit()) {
        return line.to_string();
    }
    if let Some(t) = rest.strip_prefix("DONE ") {
        let (secs, end) = t.split_at(t.trim_end().len());
        if let Some(num) = secs.strip_suffix('s') {
            if is_decimal(num) {
                return format!("#{n} DONE <t>{end}");
            }
        }
    }
    let (first, tail) = rest.split_once(' ').unwrap_or((rest, ""));
    let first_trimmed = first.trim_end();
    if is_decimal(first_trimmed) {
        let end = &first[first_trimmed.len()..];
        return if tail.is_empty() && !end.is_empty() {
            format!("#{n} <t>{end}")
        } else if tail.is_empty() {
            format!("#{n} <t>")
        } else {
            format!("#{n} <t> {tail}")
        };
    }
    line.to_string()
}

const UNITS: &[&str] = &[
    "second", "seconds", "minute", "minutes", "hour", "hours", "day", "days", "week", "weeks",
    "month", "months", "year", "years",
];

/// Docker's human durations followed by ` ago` → `<ago>`, padded to the same width.
fn relative_times(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(i) = rest.find(" ago") {
        let before = &rest[..i];
        let start = ["Less than a second", "About a minute", "About an hour"]
            .iter()
            .find(|p| before.ends_with(*p))
            .map(|p| i - p.len())
            .or_else(|| {
                let (head, unit) = before.rsplit_once(' ')?;
                let (_, number) = head.rsplit_once(' ').unwrap_or(("", head));
                (UNITS.contains(&unit)
                    && (number.bytes().all(|c| c.is_ascii_digit()) || number == "a")
                    && !number.is_empty())
                .then(|| i - unit.len() - 1 - number.len())
            });
        let end = i + " ago".len();
        match start {
            Some(start) => {
                out.push_str(&rest[..start]);
                out.push_str(&format!("{:<width$}", "<ago>", width = end - start));
            }
            None => out.push_str(&rest[..end]),
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// `sha256:<64 hex>` → `sha256:<id>`.
fn digests(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(i) = rest.find("sha256:") {
        let after = &rest[i + 7..];
        let hex = after
            .bytes()
            .take_while(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
            .count();
        out.push_str(&rest[..i + 7]);
        if hex == 64 {
            out.push_str("<id>");
            rest = &after[64..];
        } else {
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Words of exactly 12 lowercase hex digits (short image and container IDs) → `<id>`.
fn short_ids(line: &str) -> String {
    let mut out = String::new();
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        let is_id = word.len() == 12
            && word
                .bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
            && word.bytes().any(|c| c.is_ascii_digit());
        out.push_str(if is_id { "<id>" } else { word });
        word.clear();
    };
    for c in line.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

/// Runs of two or more spaces → three spaces; trailing spaces dropped.
fn columns(line: &str) -> String {
    let (body, newline) = match line.strip_suffix('\n') {
        Some(b) => (b, "\n"),
        None => (line, ""),
    };
    let mut out = String::new();
    let mut spaces = 0;
    for c in body.chars() {
        if c == ' ' {
            spaces += 1;
            continue;
        }
        match spaces {
            0 => {}
            1 => out.push(' '),
            _ => out.push_str("   "),
        }
        spaces = 0;
        out.push(c);
    }
    out.push_str(newline);
    out
}
