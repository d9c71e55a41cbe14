//! `.dockerignore` files, with Docker's semantics (moby/patternmatcher and fsutil).
//!
//! - One pattern a line. A line starting with `#` is a comment; blank lines are skipped;
//!   leading and trailing whitespace is removed; a UTF-8 BOM on the first line is dropped.
//! - Patterns are cleaned like Go's `filepath.Clean` and are relative to the context root:
//!   `/a/./b/` is `a/b`.
//! - `*` and `?` do not cross `/`; `[...]` classes and `\` escapes work as in Go's
//!   `filepath.Match`; `**` matches any number of directories (also none).
//! - A pattern matches a path when it matches the path itself or one of its parent
//!   directories: excluding a directory excludes everything below it.
//! - `!pattern` is an exception that includes again what it matches. The last pattern that
//!   matches a path decides.
//! - An excluded directory is still walked when an exception could match below it; it is kept
//!   (as the parent of what the exception includes) only if something below it is included.

use std::path::{Path, PathBuf};

use super::glob::IgnoreGlob;
use super::ContextError;
use crate::image::path::clean;

/// One parsed line of an ignore file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct IgnorePattern {
    /// The cleaned pattern, without `!`.
    text: String,
    /// `!pattern`: an exception.
    exception: bool,
    glob: IgnoreGlob,
}

/// The patterns of a `.dockerignore` file, ready to match context paths.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IgnoreMatcher {
    patterns: Vec<IgnorePattern>,
}

/// Per-pattern results for a directory, reused for its children while walking:
/// `true` where the pattern matched the directory or one of its parents.
pub(crate) type ParentMatches = Vec<bool>;

impl IgnoreMatcher {
    /// A matcher that excludes nothing.
    pub fn empty() -> IgnoreMatcher {
        IgnoreMatcher::default()
    }

    /// Parses the text of an ignore file.
    pub fn parse(text: &str) -> Result<IgnoreMatcher, ContextError> {
        let mut patterns = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line_number = index + 1;
            let line = if index == 0 {
                line.strip_prefix('\u{feff}').unwrap_or(line)
            } else {
                line
            };
            if line.starts_with('#') {
                continue;
            }
            let mut pattern = line.trim();
            if pattern.is_empty() {
                continue;
            }
            let exception = pattern.starts_with('!');
            if exception {
                pattern = pattern[1..].trim();
                if pattern.is_empty() {
                    return Err(ContextError::IgnorePattern {
                        line: line_number,
                        pattern: line.trim().to_string(),
                        reason: "an exception needs a pattern after '!'".to_string(),
                    });
                }
            }
            let mut text = clean(pattern);
            if text.len() > 1 && text.starts_with('/') {
                text.remove(0);
            }
            let glob = IgnoreGlob::parse(&text).map_err(|reason| ContextError::IgnorePattern {
                line: line_number,
                pattern: line.trim().to_string(),
                reason,
            })?;
            patterns.push(IgnorePattern {
                text,
                exception,
                glob,
            });
        }
        Ok(IgnoreMatcher { patterns })
    }

    /// Reads the ignore file for a build: `<dockerfile>.dockerignore` when it exists (next to the
    /// Dockerfile, named after it), else `.dockerignore` at the context root, else nothing.
    /// Returns the matcher and the file it came from.
    ///
    /// The Dockerfile and the ignore file are read by the builder directly, so they are always
    /// available to it even when the patterns exclude them; excluding them only hides them
    /// from `COPY`/`ADD` (Docker behaves the same way).
    pub fn load(
        context: &Path,
        dockerfile: Option<&Path>,
    ) -> Result<(IgnoreMatcher, Option<PathBuf>), ContextError> {
        let mut candidates = Vec::new();
        if let Some(dockerfile) = dockerfile {
            let mut name = dockerfile.as_os_str().to_owned();
            name.push(".dockerignore");
            candidates.push(PathBuf::from(name));
        }
        candidates.push(context.join(".dockerignore"));
        for candidate in candidates {
            match std::fs::read(&candidate) {
                Ok(bytes) => {
                    let text = String::from_utf8_lossy(&bytes);
                    let matcher =
                        IgnoreMatcher::parse(&text).map_err(|source| ContextError::IgnoreFile {
                            path: candidate.clone(),
                            source: Box::new(source),
                        })?;
                    return Ok((matcher, Some(candidate)));
                }
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => {
                    return Err(ContextError::Io {
                        path: candidate,
                        source,
                    })
                }
            }
        }
        Ok((IgnoreMatcher::empty(), None))
    }

    /// Whether there are no patterns.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether `rel_path` (relative to the context root, `/`-separated) is excluded. The
    /// context root itself (`.`) is never excluded. Whether the path is a file or a directory
    /// makes no difference, as in Docker.
    pub fn is_excluded(&self, rel_path: &str) -> bool {
        let path = clean(rel_path.trim_start_matches('/'));
        if path == "." || self.patterns.is_empty() {
            return false;
        }
        // Build the per-pattern results down from the first directory.
        let mut parents: ParentMatches = vec![false; self.patterns.len()];
        let mut end = 0;
        loop {
            end = match path[end..].find('/') {
                Some(offset) => end + offset,
                None => path.len(),
            };
            let excluded = self.match_with_parents(&path[..end], &mut parents);
            if end == path.len() {
                return excluded;
            }
            end += 1;
        }
    }

    /// Matches `path` given the results for its parent directory, updating `parents` to the
    /// results for `path` (so the caller can pass them to the children). Returns whether
    /// `path` is excluded.
    pub(crate) fn match_with_parents(&self, path: &str, parents: &mut ParentMatches) -> bool {
        let mut excluded = false;
        for (pattern, parent_matched) in self.patterns.iter().zip(parents.iter_mut()) {
            if !*parent_matched {
                *parent_matched = pattern.glob.is_match(path);
            }
            if *parent_matched {
                excluded = !pattern.exception;
            }
        }
        excluded
    }

    /// Fresh per-pattern results for the context root.
    pub(crate) fn root_matches(&self) -> ParentMatches {
        vec![false; self.patterns.len()]
    }

    /// Whether an exception could include something below the excluded directory `dir`, so
    /// that it must still be walked. Like Docker: with no exceptions, never; when every
    /// exception is a plain path (maybe ending in `/*` or `/**`), only if one of them lies
    /// below `dir`; when some exception has wildcards, always.
    pub fn may_include_below(&self, dir: &str) -> bool {
        let mut exceptions = self.patterns.iter().filter(|p| p.exception).peekable();
        if exceptions.peek().is_none() {
            return false;
        }
        let dir_slash = format!("{}/", clean(dir));
        let mut plain_prefixes = Vec::new();
        for exception in exceptions {
            let text = exception.text.as_str();
            let text = text
                .strip_suffix("/**")
                .or_else(|| text.strip_suffix("/*"))
                .unwrap_or(text);
            if text.contains(['*', '?', '[', ']', '^', '\\']) {
                return true;
            }
            plain_prefixes.push(format!("{text}/"));
        }
        plain_prefixes
            .iter()
            .any(|prefix| prefix.starts_with(&dir_slash))
    }
}
