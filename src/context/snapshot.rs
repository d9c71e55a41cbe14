//! A scanned build context: every kept entry with its metadata and content digest.

use std::cmp::Ordering;
use std::ffi::OsString;
use std::fs::Metadata;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use sha2::{Digest as _, Sha256};

use super::cache::{CacheReader, FileStat, Learned, MetadataCache};
use super::glob::{has_wildcards, Glob};
use super::ignore::{IgnoreMatcher, ParentMatches};
use super::{ContextError, Digest};
use crate::image::path::{clean, names};

/// What kind of filesystem object an entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A directory.
    Dir,
    /// A regular file and the sha256 of its content.
    File {
        /// sha256 of the content.
        digest: Digest,
    },
    /// A symbolic link, never followed while scanning.
    Symlink {
        /// The link target as stored in the link.
        target: String,
    },
}

/// One file, directory or symlink of the context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path relative to the context root, `/`-separated; the root itself is `.`.
    pub path: String,
    /// Type, with the content digest or link target.
    pub kind: EntryKind,
    /// Permission bits, with setuid/setgid/sticky (`st_mode & 0o7777`).
    pub mode: u32,
    /// Owner user id.
    pub uid: u32,
    /// Owner group id.
    pub gid: u32,
    /// Size in bytes (content size for files, target length for symlinks).
    pub size: u64,
    /// Modification time, seconds since the epoch.
    pub mtime_sec: i64,
    /// Nanoseconds part of the modification time.
    pub mtime_nsec: u32,
}

/// A path of the context that the scan could not use: a file it could not read, a directory
/// it could not list, a name or link target that is not UTF-8. It is not an entry. A COPY
/// that selects it (or a directory above it) fails naming it; a COPY that does not never
/// notices it, and neither does a build that the ignore file keeps it out of (excluded paths
/// are never looked at).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Path relative to the context root, `/`-separated (bytes that are not UTF-8 shown as
    /// U+FFFD).
    pub path: String,
    /// What is wrong with it.
    pub reason: String,
}

impl Problem {
    /// The error of a COPY that selects it.
    pub fn error(&self) -> ContextError {
        ContextError::Unusable {
            path: self.path.clone(),
            reason: self.reason.clone(),
        }
    }
}

/// A COPY/ADD source resolved against the snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceMatch<'a> {
    /// The matched path in the context, before following a final symlink; its last component
    /// names the copy at the destination.
    pub path: String,
    /// The entry it resolves to (a symlink's target, followed within the context).
    pub entry: &'a Entry,
}

/// A build context directory as the build sees it: filtered by the ignore patterns, sorted,
/// with a content digest for every regular file.
///
/// Entries are sorted by path components (byte order within a component), so a directory comes
/// right before everything below it. Sockets, FIFOs and device files are left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextSnapshot {
    root: PathBuf,
    entries: Vec<Entry>,
    /// In path order.
    problems: Vec<Problem>,
}

/// Compares two context paths component by component (`.` is the root and comes first).
fn compare_paths(a: &str, b: &str) -> Ordering {
    names(a).cmp(names(b))
}

/// The longest symlink chain followed while resolving a path.
const MAX_SYMLINK_HOPS: usize = 40;

impl ContextSnapshot {
    /// Walks the context at `root`, leaving out what `ignore` excludes, and digests every regular
    /// file (through `cache`, so unchanged files are not read again). Symlinks are recorded as
    /// symlinks and never followed. Directories are listed on several threads; the entries
    /// and the first error are those of a walk in path order.
    pub fn scan(
        root: &Path,
        ignore: &IgnoreMatcher,
        cache: &mut MetadataCache,
    ) -> Result<ContextSnapshot, ContextError> {
        let root = std::fs::canonicalize(root).map_err(|source| ContextError::Io {
            path: root.to_path_buf(),
            source,
        })?;
        let metadata = std::fs::metadata(&root).map_err(|source| ContextError::Io {
            path: root.clone(),
            source,
        })?;
        if !metadata.is_dir() {
            return Err(ContextError::NotADirectory { path: root });
        }
        let reader = cache.reader(&root)?;
        let listings = walk_parallel(&root, ignore, &reader);
        let count = listings
            .iter()
            .flatten()
            .map(|l| l.items.len())
            .sum::<usize>()
            + 1;
        let mut entries = Vec::with_capacity(count);
        entries.push(entry_from(".".to_string(), EntryKind::Dir, &metadata));
        let mut walked = Walked {
            listings,
            entries,
            pending_parents: Vec::new(),
            to_hash: Vec::new(),
            hit: Vec::new(),
            hits: 0,
            problems: Vec::new(),
        };
        walked.assemble(0)?;
        let Walked {
            mut entries,
            to_hash,
            hit,
            hits,
            mut problems,
            ..
        } = walked;
        cache.record_hits(hits);
        let hashed = hash_files(&to_hash);
        let mut learned = Vec::new();
        let mut unreadable = Vec::new();
        for (job, hashed) in to_hash.iter().zip(hashed) {
            let (digest, bytes) = match hashed {
                Ok(hashed) => hashed,
                Err(reason) => {
                    unreadable.push(job.index);
                    problems.push(Problem {
                        path: entries[job.index].path.clone(),
                        reason,
                    });
                    continue;
                }
            };
            cache.record_miss(bytes);
            let entry = &mut entries[job.index];
            entry.kind = EntryKind::File { digest };
            if bytes != job.stat.size() {
                // The file changed while it was read: keep what was read, remember nothing.
                entry.size = bytes;
            } else if reader.may_remember(&job.stat) {
                learned.push(Learned {
                    path: entry.path.clone(),
                    stat: job.stat,
                    digest,
                });
            }
        }
        cache.finish(reader, &hit, &learned, |path| ignore.is_excluded(path))?;
        if !unreadable.is_empty() {
            // `unreadable` is in index order.
            let mut index = 0;
            let mut next = unreadable.iter().peekable();
            entries.retain(|_| {
                let drop = next.next_if_eq(&&index).is_some();
                index += 1;
                !drop
            });
            problems.sort_by(|a, b| compare_paths(&a.path, &b.path));
        }
        Ok(ContextSnapshot {
            root,
            entries,
            problems,
        })
    }

    /// The paths the scan could not use, in path order (see [`Problem`]).
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }

    /// A problem at `path` (cleaned) or below it.
    fn problem_within(&self, path: &str) -> Option<&Problem> {
        self.problems.iter().find(|p| {
            path == "."
                || p.path == path
                || p.path
                    .strip_prefix(path)
                    .is_some_and(|r| r.starts_with('/'))
        })
    }

    /// A problem at, below or above `path` (cleaned): why a path may be missing.
    fn problem_near(&self, path: &str) -> Option<&Problem> {
        self.problem_within(path).or_else(|| {
            self.problems.iter().find(|p| {
                path.strip_prefix(p.path.as_str())
                    .is_some_and(|r| r.starts_with('/'))
            })
        })
    }

    /// The context directory (canonical).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// All entries, the root (`.`) first.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Where an entry is on disk.
    pub fn disk_path(&self, entry: &Entry) -> PathBuf {
        if entry.path == "." {
            self.root.clone()
        } else {
            self.root.join(&entry.path)
        }
    }

    fn position(&self, path: &str) -> Option<usize> {
        self.entries
            .binary_search_by(|entry| compare_paths(&entry.path, path))
            .ok()
    }

    /// The entry at `path` (relative, cleaned like Go's `filepath.Clean`), without following
    /// symlinks.
    pub fn get(&self, path: &str) -> Option<&Entry> {
        let path = clean(path.trim_start_matches('/'));
        self.position(&path).map(|index| &self.entries[index])
    }

    /// The entry at `path` and everything below it (contiguous, in order).
    pub fn subtree(&self, path: &str) -> Option<&[Entry]> {
        let path = clean(path.trim_start_matches('/'));
        let start = self.position(&path)?;
        if path == "." {
            return Some(&self.entries);
        }
        let prefix = format!("{path}/");
        let len = self.entries[start + 1..]
            .iter()
            .take_while(|entry| entry.path.starts_with(&prefix))
            .count();
        Some(&self.entries[start..start + 1 + len])
    }

    /// A digest of the selected entries and everything below them, for cache keys: paths,
    /// types, contents, link targets, modes and owners, in the order given. Timestamps are not
    /// part of it.
    pub fn digest_of<'s>(
        &self,
        selection: impl IntoIterator<Item = &'s str>,
    ) -> Result<Digest, ContextError> {
        fn field(hasher: &mut Sha256, bytes: &[u8]) {
            hasher.update((bytes.len() as u64).to_le_bytes());
            hasher.update(bytes);
        }
        let mut hasher = Sha256::new();
        field(&mut hasher, b"rbuild context selection v1");
        for selected in selection {
            if let Some(problem) = self.problem_within(&clean(selected.trim_start_matches('/'))) {
                return Err(problem.error());
            }
            let entries = self
                .subtree(selected)
                .ok_or_else(|| ContextError::NotFound {
                    path: selected.to_string(),
                })?;
            field(&mut hasher, b"selection");
            field(
                &mut hasher,
                clean(selected.trim_start_matches('/')).as_bytes(),
            );
            for entry in entries {
                field(&mut hasher, entry.path.as_bytes());
                hasher.update(entry.mode.to_le_bytes());
                hasher.update(entry.uid.to_le_bytes());
                hasher.update(entry.gid.to_le_bytes());
                match &entry.kind {
                    EntryKind::Dir => field(&mut hasher, b"dir"),
                    EntryKind::File { digest } => {
                        field(&mut hasher, b"file");
                        hasher.update(entry.size.to_le_bytes());
                        hasher.update(digest.0);
                    }
                    EntryKind::Symlink { target } => {
                        field(&mut hasher, b"symlink");
                        field(&mut hasher, target.as_bytes());
                    }
                }
            }
        }
        Ok(Digest(hasher.finalize().into()))
    }

    /// Resolves a COPY/ADD source against the context.
    ///
    /// A leading `/` is ignored (sources are relative to the context) and the path is cleaned;
    /// a path that leaves the context (`../x`) is an error. A plain path must exist; symlinks
    /// along it, and a symlink at its end, are followed inside the context (an absolute target
    /// starts at the context root, `..` stops at the root). A pattern with `*`, `?` or `[...]`
    /// (Go's `filepath.Match` syntax) is matched against the context's paths and must match at
    /// least one; matches come in path order.
    pub fn resolve_source(&self, source: &str) -> Result<Vec<SourceMatch<'_>>, ContextError> {
        let path = clean(source.trim_start_matches('/'));
        if path == ".." || path.starts_with("../") {
            return Err(ContextError::OutsideContext {
                path: source.to_string(),
            });
        }
        if !has_wildcards(&path) {
            let entry = self.resolve_path(&path, source).map_err(|err| {
                match (&err, self.problem_near(&path)) {
                    (ContextError::NotFound { .. }, Some(problem)) => problem.error(),
                    _ => err,
                }
            })?;
            return Ok(vec![SourceMatch { path, entry }]);
        }
        let glob = Glob::parse(&path).map_err(|reason| ContextError::SourcePattern {
            pattern: source.to_string(),
            reason,
        })?;
        if let Some(problem) = self.problems.iter().find(|p| glob.is_match(&p.path)) {
            return Err(problem.error());
        }
        let mut matches = Vec::new();
        for entry in &self.entries[1..] {
            if glob.is_match(&entry.path) {
                matches.push(SourceMatch {
                    path: entry.path.clone(),
                    entry: self.resolve_path(&entry.path, &entry.path)?,
                });
            }
        }
        if matches.is_empty() {
            return Err(ContextError::NotFound {
                path: source.to_string(),
            });
        }
        Ok(matches)
    }

    /// Follows symlinks along `path` (cleaned, relative) inside the context.
    fn resolve_path(&self, path: &str, source: &str) -> Result<&Entry, ContextError> {
        let not_found = || ContextError::NotFound {
            path: source.to_string(),
        };
        let mut todo: Vec<String> = path
            .split('/')
            .rev()
            .map(str::to_string)
            .collect::<Vec<_>>();
        let mut resolved: Vec<String> = Vec::new();
        let mut hops = 0;
        while let Some(component) = todo.pop() {
            match component.as_str() {
                "" | "." => continue,
                ".." => {
                    resolved.pop();
                    continue;
                }
                _ => {}
            }
            resolved.push(component);
            let current = resolved.join("/");
            let entry = self.get(&current).ok_or_else(not_found)?;
            match &entry.kind {
                EntryKind::Symlink { target } => {
                    hops += 1;
                    if hops > MAX_SYMLINK_HOPS {
                        return Err(ContextError::SymlinkLoop {
                            path: source.to_string(),
                        });
                    }
                    resolved.pop();
                    if target.starts_with('/') {
                        resolved.clear();
                    }
                    todo.extend(target.split('/').rev().map(str::to_string));
                }
                EntryKind::File { .. } if !todo.iter().all(|c| c.is_empty() || c == ".") => {
                    return Err(not_found());
                }
                _ => {}
            }
        }
        let final_path = if resolved.is_empty() {
            ".".to_string()
        } else {
            resolved.join("/")
        };
        self.get(&final_path).ok_or_else(not_found)
    }
}

/// A regular file waiting to be hashed.
struct HashJob {
    index: usize,
    path: PathBuf,
    stat: FileStat,
}

/// A directory to list.
struct DirJob {
    dir: PathBuf,
    /// Its path relative to the context root (`.` for the root).
    rel: String,
    /// The ignore patterns' results for it.
    parents: ParentMatches,
}

/// What the cache said about a regular file.
enum FileState {
    /// Its digest came from cache record number `.0` (already in the entry).
    Hit(usize),
    /// It must be hashed (on disk at `.0`).
    Miss(Box<(PathBuf, FileStat)>),
}

/// One child of a listed directory, in name order.
enum Item {
    /// A kept file or symlink (for a file, what the cache said).
    Entry(Entry, Option<FileState>),
    /// A subdirectory, listed by job `Listing::first_child + child`. An `excluded` one is
    /// walked because an exception may include something below it: it is kept only if
    /// something below it is.
    Dir {
        entry: Entry,
        excluded: bool,
        child: usize,
    },
    /// A path that cannot be used (see [`Problem`]).
    Problem(Problem),
    /// Listing the context root failed.
    Error(ContextError),
}

/// A listed directory.
struct Listing {
    items: Vec<Item>,
    /// The job number of its first subdirectory; the others follow in order.
    first_child: usize,
}

/// Lists one directory: its children's metadata, ignore results and cache lookups. Returns
/// the items and the subdirectories to list (in the order of their `Item::Dir::child`).
fn list_dir(
    job: &DirJob,
    ignore: &IgnoreMatcher,
    reader: &CacheReader,
) -> (Vec<Item>, Vec<DirJob>) {
    let mut items = Vec::new();
    let mut children = Vec::new();
    if let Err(err) = list_dir_into(job, ignore, reader, &mut items, &mut children) {
        // The context root must be listed; a directory below it that cannot be is a problem
        // only for a COPY that selects it.
        match err {
            ContextError::Io { source, .. } if job.rel != "." => {
                items.push(Item::Problem(Problem {
                    path: job.rel.clone(),
                    reason: format!("cannot list the directory: {source}"),
                }))
            }
            err => items.push(Item::Error(err)),
        }
    }
    (items, children)
}

fn list_dir_into(
    job: &DirJob,
    ignore: &IgnoreMatcher,
    reader: &CacheReader,
    items: &mut Vec<Item>,
    children: &mut Vec<DirJob>,
) -> Result<(), ContextError> {
    let DirJob { dir, rel, parents } = job;
    let io_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ContextError::Io { path, source }
    };
    // The entries' metadata comes from `fstatat` on the open directory: no path walk.
    let mut names: Vec<(OsString, std::fs::DirEntry)> = std::fs::read_dir(dir)
        .map_err(io_error(dir))?
        .map(|entry| entry.map(|entry| (entry.file_name(), entry)))
        .collect::<Result<_, _>>()
        .map_err(io_error(dir))?;
    names.sort_by(|a, b| a.0.cmp(&b.0));
    items.reserve(names.len());
    let mut cursor = reader.cursor(rel);
    for (name, dir_entry) in names {
        let disk_path = || dir.join(&name);
        // A name that is not UTF-8 is matched against the ignore patterns with U+FFFD for
        // its bad bytes (Go matches the bytes; `*` and `?` agree either way).
        let shown_name = name.to_string_lossy();
        let path = if rel == "." {
            shown_name.to_string()
        } else {
            format!("{rel}/{shown_name}")
        };
        let problem = |reason: String| {
            Item::Problem(Problem {
                path: path.clone(),
                reason,
            })
        };
        // The type comes from the directory listing: nothing that the ignore file excludes
        // is stat'ed, read or hashed.
        let file_type = match dir_entry.file_type() {
            Ok(t) => t,
            Err(err) => {
                if ignore.is_empty() || !ignore.match_with_parents(&path, &mut parents.clone()) {
                    items.push(problem(format!("cannot stat it: {err}")));
                }
                continue;
            }
        };
        let is_dir = file_type.is_dir();
        if !(is_dir || file_type.is_file() || file_type.is_symlink()) {
            debug_assert!(
                file_type.is_socket()
                    || file_type.is_fifo()
                    || file_type.is_block_device()
                    || file_type.is_char_device()
            );
            continue;
        }
        let mut matches = parents.clone();
        let excluded = !ignore.is_empty() && ignore.match_with_parents(&path, &mut matches);
        if excluded && !(is_dir && ignore.may_include_below(&path)) {
            continue;
        }
        if name.to_str().is_none() {
            items.push(problem(format!(
                "its name {name:?} is not UTF-8 (rbuild copies UTF-8 names only)"
            )));
            continue;
        }
        let metadata = match dir_entry.metadata() {
            Ok(m) => m,
            Err(err) => {
                items.push(problem(format!("cannot stat it: {err}")));
                continue;
            }
        };
        let kind = if is_dir {
            EntryKind::Dir
        } else if file_type.is_file() {
            EntryKind::File {
                digest: Digest([0; 32]),
            }
        } else {
            let target = match std::fs::read_link(disk_path()) {
                Ok(t) => t,
                Err(err) => {
                    items.push(problem(format!("cannot read the symlink: {err}")));
                    continue;
                }
            };
            match target.into_os_string().into_string() {
                Ok(target) => EntryKind::Symlink { target },
                Err(target) => {
                    items.push(problem(format!(
                        "its link target {target:?} is not UTF-8 (rbuild copies UTF-8 targets only)"
                    )));
                    continue;
                }
            }
        };
        let mut entry = entry_from(path, kind, &metadata);
        if is_dir {
            children.push(DirJob {
                dir: disk_path(),
                rel: entry.path.clone(),
                parents: matches,
            });
            items.push(Item::Dir {
                entry,
                excluded,
                child: children.len() - 1,
            });
            continue;
        }
        let state = if let EntryKind::File { digest } = &mut entry.kind {
            let stat = FileStat::of(&metadata);
            Some(match reader.lookup(&mut cursor, &entry.path, &stat) {
                Some((record, cached)) => {
                    *digest = cached;
                    FileState::Hit(record)
                }
                None => FileState::Miss(Box::new((disk_path(), stat))),
            })
        } else {
            None
        };
        items.push(Item::Entry(entry, state));
    }
    Ok(())
}

/// The most threads listing directories (statx calls scale to a few cores).
const WALK_THREADS: usize = 8;

/// What every directory listing task of a walk shares.
struct Walk<'a> {
    ignore: &'a IgnoreMatcher,
    reader: &'a CacheReader,
    /// Per job number, its listing once done (job 0 is the root).
    listings: Mutex<Vec<Option<Listing>>>,
}

impl Walk<'_> {
    /// Stores the listing of job `number` and gives its `children` the next job numbers;
    /// returns the first of them.
    fn record(&self, number: usize, items: Vec<Item>, children: &[DirJob]) -> usize {
        let mut listings = self.listings.lock().unwrap_or_else(PoisonError::into_inner);
        let first_child = listings.len();
        listings.extend(children.iter().map(|_| None));
        listings[number] = Some(Listing { items, first_child });
        first_child
    }
}

/// Lists the context's directories on rayon's pool (at most [`WALK_THREADS`] at once): each
/// directory is a task that spawns its subdirectories' tasks, and idle threads steal them.
/// Returns the listings by job number; job 0 is the root.
fn walk_parallel(
    root: &Path,
    ignore: &IgnoreMatcher,
    reader: &CacheReader,
) -> Vec<Option<Listing>> {
    let root_job = DirJob {
        dir: root.to_path_buf(),
        rel: ".".to_string(),
        parents: ignore.root_matches(),
    };
    // The root is listed first, on this thread: a small context needs no other thread.
    let (items, children) = list_dir(&root_job, ignore, reader);
    let walk = Walk {
        ignore,
        reader,
        listings: Mutex::new(vec![None]),
    };
    let first_child = walk.record(0, items, &children);
    if !children.is_empty() {
        // More threads than WALK_THREADS: a pool of that many (none to be had: the global
        // pool still works).
        let pool = (rayon::current_num_threads() > WALK_THREADS)
            .then(|| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(WALK_THREADS)
                    .build()
                    .ok()
            })
            .flatten();
        let walk = &walk;
        match &pool {
            Some(pool) => pool.scope(|scope| spawn_children(scope, walk, first_child, children)),
            None => rayon::scope(|scope| spawn_children(scope, walk, first_child, children)),
        }
    }
    walk.listings
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner)
}

/// Spawns the listing of `children` (job numbers from `first`). The last spawned is taken
/// first by this thread, so they go in reverse: the first child, then its children (depth
/// first, as a walk on one thread).
fn spawn_children<'s, 'w: 's>(
    scope: &rayon::Scope<'s>,
    walk: &'s Walk<'w>,
    first: usize,
    children: Vec<DirJob>,
) {
    for (k, job) in children.into_iter().enumerate().rev() {
        scope.spawn(move |scope| {
            let (items, children) = list_dir(&job, walk.ignore, walk.reader);
            let first_child = walk.record(first + k, items, &children);
            spawn_children(scope, walk, first_child, children);
        });
    }
}

/// Puts the listings together in walk order, as a walk on one thread would have.
struct Walked {
    listings: Vec<Option<Listing>>,
    entries: Vec<Entry>,
    /// Excluded directories walked because an exception may include something below; they
    /// are added only when something below them is.
    pending_parents: Vec<Entry>,
    to_hash: Vec<HashJob>,
    problems: Vec<Problem>,
    /// Per cache record number, whether it was a hit.
    hit: Vec<bool>,
    hits: u64,
}

impl Walked {
    fn assemble(&mut self, number: usize) -> Result<(), ContextError> {
        let Listing { items, first_child } = self
            .listings
            .get_mut(number)
            .and_then(Option::take)
            .ok_or(ContextError::WalkThread)?;
        for item in items {
            match item {
                Item::Entry(entry, state) => {
                    self.entries.append(&mut self.pending_parents);
                    self.entries.push(entry);
                    match state {
                        Some(FileState::Hit(record)) => {
                            self.hits += 1;
                            if self.hit.len() <= record {
                                self.hit.resize(record + 1, false);
                            }
                            self.hit[record] = true;
                        }
                        Some(FileState::Miss(miss)) => {
                            let (path, stat) = *miss;
                            self.to_hash.push(HashJob {
                                index: self.entries.len() - 1,
                                path,
                                stat,
                            });
                        }
                        None => {}
                    }
                }
                Item::Dir {
                    entry,
                    excluded: false,
                    child,
                } => {
                    self.entries.append(&mut self.pending_parents);
                    self.entries.push(entry);
                    self.assemble(first_child + child)?;
                }
                Item::Dir {
                    entry,
                    excluded: true,
                    child,
                } => {
                    let path = entry.path.clone();
                    self.pending_parents.push(entry);
                    self.assemble(first_child + child)?;
                    if self.pending_parents.last().is_some_and(|p| p.path == path) {
                        self.pending_parents.pop();
                    }
                }
                Item::Problem(problem) => self.problems.push(problem),
                Item::Error(err) => return Err(err),
            }
        }
        Ok(())
    }
}

fn entry_from(path: String, kind: EntryKind, metadata: &Metadata) -> Entry {
    Entry {
        path,
        kind,
        mode: metadata.mode() & 0o7777,
        uid: metadata.uid(),
        gid: metadata.gid(),
        size: metadata.size(),
        mtime_sec: metadata.mtime(),
        mtime_nsec: metadata.mtime_nsec() as u32,
    }
}

/// Hashes the files on rayon's pool (in pieces of at least 64 files). Returns each digest
/// and how many bytes were read, or why the file could not be read (a problem only for a COPY
/// that selects it).
fn hash_files(jobs: &[HashJob]) -> Vec<Result<(Digest, u64), String>> {
    use rayon::prelude::*;
    jobs.par_iter()
        .with_min_len(64)
        .map_init(
            || vec![0u8; 64 * 1024],
            |buffer, job| hash_file(&job.path, buffer),
        )
        .collect()
}

fn hash_file(path: &Path, buffer: &mut [u8]) -> Result<(Digest, u64), String> {
    let mut file = std::fs::File::open(path).map_err(|err| format!("cannot open it: {err}"))?;
    super::copy_hashed(&mut file, &mut std::io::sink(), buffer).map_err(|failed| match failed {
        super::CopyFailed::Read(err) | super::CopyFailed::Write(err) => {
            format!("cannot read it: {err}")
        }
    })
}
