//! Where a build's context comes from, read from the `CONTEXT` argument as docker reads it:
//! a directory (used in place), a tar archive file (plain or compressed), `-` (a tar or a
//! Dockerfile on stdin), or a git repository ([`GitContext`]). All but a directory become a
//! temp dir of the store that lives as long as the [`ResolvedContext`].

use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use super::git::GitContext;
use crate::image::compress;
use crate::image::layer::{apply_tar, ApplyOptions, LayerError};
use crate::store::{Store, StoreError};

/// Why a context could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The argument names nothing on disk and is no git repository.
    #[error("unable to prepare context: path {0:?} not found")]
    NotFound(String),
    /// A URL rbuild cannot fetch a context from.
    #[error("build context {0:?}: URLs and git repositories are not supported yet")]
    Unsupported(String),
    /// A git repository could not be fetched or checked out.
    #[error("git context {url}: {message}")]
    Git { url: String, message: String },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Layer(#[from] LayerError),
}

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> SourceError {
    let path = path.into();
    move |source| SourceError::Io { path, source }
}

/// The kinds of context, as told apart by [`Source::parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A directory, used in place.
    Dir(PathBuf),
    /// A tar archive file (plain or compressed).
    Tar(PathBuf),
    /// `-`: a tar archive, or else a Dockerfile, on stdin.
    Stdin,
    /// A git repository.
    Git(GitContext),
}

/// A context ready to build from.
#[derive(Debug)]
pub struct ResolvedContext {
    /// The context directory.
    pub dir: PathBuf,
    /// Stdin held a Dockerfile, not a tar (its bytes: the build decodes them and names the
    /// line of a bad byte); the context is then empty.
    pub dockerfile: Option<Vec<u8>>,
    /// The temp dir holding an unpacked or fetched context (`None` for a directory).
    unpacked: Option<tempfile::TempDir>,
}

impl ResolvedContext {
    /// Where a `-f` path points: inside an unpacked context, a relative path names a file of
    /// the context (it does not exist anywhere else); otherwise it is taken as given.
    pub fn dockerfile_path(&self, path: &Path) -> PathBuf {
        match &self.unpacked {
            Some(_) if path.is_relative() => self.dir.join(path),
            _ => path.to_path_buf(),
        }
    }
}

impl Source {
    /// Tells what `arg` names: `-`, a git repository, a file (a tar) or a directory.
    pub fn parse(arg: &str) -> Result<Source, SourceError> {
        if arg == "-" {
            return Ok(Source::Stdin);
        }
        if let Some(git) = GitContext::parse(arg) {
            return Ok(Source::Git(git));
        }
        if arg.contains("://") || arg.starts_with("git@") {
            return Err(SourceError::Unsupported(arg.to_string()));
        }
        let path = PathBuf::from(arg);
        if path.is_file() {
            Ok(Source::Tar(path))
        } else if path.is_dir() {
            Ok(Source::Dir(path))
        } else {
            Err(SourceError::NotFound(arg.to_string()))
        }
    }

    /// Prepares the context `arg` names ([`Source::parse`]): a directory as it is; a tar
    /// (from its file or from `stdin`) unpacked and a git repository checked out, into a
    /// temp dir of `store`. `stdin` is read only for `-`.
    pub fn resolve(
        arg: &str,
        store: &Store,
        stdin: &mut dyn Read,
    ) -> Result<ResolvedContext, SourceError> {
        let unpacked = match Source::parse(arg)? {
            Source::Dir(dir) => {
                return Ok(ResolvedContext {
                    dir,
                    dockerfile: None,
                    unpacked: None,
                })
            }
            Source::Tar(path) => {
                let file = std::fs::File::open(&path).map_err(io_err(&path))?;
                unpack(store, file)?
            }
            Source::Stdin => unpack(store, stdin)?,
            Source::Git(git) => (git.fetch(store)?, None),
        };
        let (tmp, dockerfile) = unpacked;
        Ok(ResolvedContext {
            dir: tmp.path().join(CONTEXT_DIR),
            dockerfile,
            unpacked: Some(tmp),
        })
    }
}

/// The name of the context inside an unpacked context's temp dir.
pub(crate) const CONTEXT_DIR: &str = "context";

/// Reads `reader` (a tar, possibly compressed, or a Dockerfile) into a temp dir's
/// [`CONTEXT_DIR`]; a Dockerfile is returned, with an empty context.
fn unpack(
    store: &Store,
    mut reader: impl Read,
) -> Result<(tempfile::TempDir, Option<Vec<u8>>), SourceError> {
    let tmp = store.temp_dir()?;
    let spool = tmp.path().join("input");
    let mut f = std::fs::File::create(&spool).map_err(io_err(&spool))?;
    std::io::copy(&mut reader, &mut f).map_err(io_err(&spool))?;
    drop(f);
    let dir = tmp.path().join(CONTEXT_DIR);
    std::fs::create_dir(&dir).map_err(io_err(&dir))?;
    let open = || -> Result<Box<dyn Read>, SourceError> {
        let f = std::fs::File::open(&spool).map_err(io_err(&spool))?;
        let (_, r) = compress::decompress_auto(BufReader::new(f)).map_err(io_err(&spool))?;
        Ok(Box::new(r))
    };
    let mut head = [0u8; 512];
    let mut n = 0;
    let mut r = open()?;
    while n < head.len() {
        match r.read(&mut head[n..]).map_err(io_err(&spool))? {
            0 => break,
            k => n += k,
        }
    }
    let is_tar = n == 512 && &head[257..262] == b"ustar";
    let dockerfile = if is_tar {
        apply_tar(open()?, &dir, &ApplyOptions::default())?;
        None
    } else {
        Some(std::fs::read(&spool).map_err(io_err(&spool))?)
    };
    let _ = std::fs::remove_file(&spool);
    Ok((tmp, dockerfile))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_tells_the_kinds_apart() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("context.tar");
        std::fs::write(&file, b"").unwrap();
        let dir_arg = dir.path().to_str().unwrap();
        let file_arg = file.to_str().unwrap();
        assert_eq!(Source::parse("-").unwrap(), Source::Stdin);
        assert_eq!(
            Source::parse(dir_arg).unwrap(),
            Source::Dir(dir.path().into())
        );
        assert_eq!(Source::parse(file_arg).unwrap(), Source::Tar(file.clone()));
        assert!(matches!(
            Source::parse("https://example.com/repo.git#main"),
            Ok(Source::Git(_))
        ));
        assert!(matches!(
            Source::parse("https://example.com/context.tar.gz"),
            Err(SourceError::Unsupported(_))
        ));
        let missing = dir.path().join("missing");
        assert!(matches!(
            Source::parse(missing.to_str().unwrap()),
            Err(SourceError::NotFound(_))
        ));
    }
}
