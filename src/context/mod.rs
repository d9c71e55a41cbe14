//! Build contexts: the files a build may `COPY`/`ADD`.
//!
//! - [`Source::resolve`] turns the `CONTEXT` argument (a directory, a tar file, `-` for
//!   stdin, a git repository, see [`source`] and [`git`]) into a directory to build from.
//! - [`IgnoreMatcher`] reads `.dockerignore` (or `<Dockerfile>.dockerignore`) with Docker's
//!   semantics.
//! - [`ContextSnapshot::scan`] walks a context directory into a sorted list of [`Entry`]s with
//!   modes, owners and sha256 content digests, never following symlinks.
//! - [`MetadataCache`] remembers digests by `stat` data in one index file per context (like
//!   git's index), so a re-scan of an unchanged context reads no file content.
//! - [`ContextSnapshot::resolve_source`] resolves COPY sources (with wildcards) without leaving
//!   the context, and [`ContextSnapshot::digest_of`] gives the content digest of a selection for
//!   cache keys.
//!
//! The Dockerfile and the ignore file are read by the builder directly, not through the
//! snapshot: they are always available to the build, and ignore patterns that match them only
//! keep them out of `COPY`/`ADD`, as in Docker.
//!
//! ```no_run
//! use std::path::Path;
//! use rbuild::context::{ContextSnapshot, IgnoreMatcher, MetadataCache};
//!
//! let context = Path::new("./app");
//! let (ignore, _file) = IgnoreMatcher::load(context, Some(&context.join("Dockerfile")))?;
//! let mut cache = MetadataCache::open(Path::new("/var/lib/rbuild/context-cache"))?;
//! let snapshot = ContextSnapshot::scan(context, &ignore, &mut cache)?;
//! let sources = snapshot.resolve_source("src/*.rs")?;
//! let key = snapshot.digest_of(sources.iter().map(|m| m.entry.path.as_str()))?;
//! println!("{} files, sources digest {key}", snapshot.entries().len());
//! # Ok::<(), rbuild::context::ContextError>(())
//! ```

mod cache;
pub mod git;
pub(crate) mod glob;
mod ignore;
mod snapshot;
pub mod source;

use std::path::PathBuf;

pub use cache::{CacheStats, MetadataCache, RACY_WINDOW};
pub use ignore::IgnoreMatcher;
pub use snapshot::{ContextSnapshot, Entry, EntryKind, Problem, SourceMatch};
pub use source::{ResolvedContext, Source, SourceError};

/// A sha256 digest, shown as `sha256:<hex>`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// The lowercase hex form, without the `sha256:` prefix.
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl std::fmt::Display for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

impl std::fmt::Debug for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

/// Where [`copy_hashed`] failed: reading its input or writing its output.
#[derive(Debug)]
pub(crate) enum CopyFailed {
    Read(std::io::Error),
    Write(std::io::Error),
}

/// Copies `input` to `output` through `buffer`; returns the sha256 of the bytes and their
/// count. (Hashing alone: `std::io::sink()` as the output.)
pub(crate) fn copy_hashed(
    input: &mut impl std::io::Read,
    output: &mut impl std::io::Write,
    buffer: &mut [u8],
) -> Result<(Digest, u64), CopyFailed> {
    use sha2::Digest as _;
    let mut hasher = sha2::Sha256::new();
    let mut total = 0u64;
    loop {
        let read = match input.read(buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(CopyFailed::Read(err)),
        };
        hasher.update(&buffer[..read]);
        output
            .write_all(&buffer[..read])
            .map_err(CopyFailed::Write)?;
        total += read as u64;
    }
    Ok((Digest(hasher.finalize().into()), total))
}

/// Errors of the build context module.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    /// A filesystem operation failed (the cause is the error's source, not in its message).
    #[error("{}", path.display())]
    Io {
        /// The path it failed on.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The context path is not a directory.
    #[error("{}: the build context is not a directory", path.display())]
    NotADirectory {
        /// The context path.
        path: PathBuf,
    },
    /// A selected path that the scan could not use (see [`Problem`]).
    #[error("{path:?}: cannot be used from the build context: {reason}")]
    Unusable {
        /// The path, relative to the context.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A bad line in an ignore file.
    #[error("line {line}: invalid pattern {pattern:?}: {reason}")]
    IgnorePattern {
        /// 1-based line number.
        line: usize,
        /// The line, trimmed.
        pattern: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An error inside an ignore file (the error is the source, not in the message).
    #[error("{}", path.display())]
    IgnoreFile {
        /// The ignore file.
        path: PathBuf,
        /// The error in it.
        source: Box<ContextError>,
    },
    /// A source path that leaves the context.
    #[error("{path:?}: path is outside the build context")]
    OutsideContext {
        /// The path as given, relative to the context.
        path: String,
    },
    /// A source that does not exist in the context (or is excluded by the ignore file).
    #[error("{path:?}: not found in the build context")]
    NotFound {
        /// The path or pattern as given, relative to the context.
        path: String,
    },
    /// A malformed source pattern.
    #[error("{pattern:?}: invalid pattern: {reason}")]
    SourcePattern {
        /// The pattern as given.
        pattern: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Too many symlinks while resolving a source.
    #[error("{path:?}: too many levels of symbolic links")]
    SymlinkLoop {
        /// The path as given.
        path: String,
    },
    /// A directory of the walk was never listed (a bug: its listing task did not finish).
    #[error("a directory walking thread failed")]
    WalkThread,
}
