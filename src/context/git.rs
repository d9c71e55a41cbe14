//! Git build contexts, in docker's syntax: `URL#REF:SUBDIR` (`https://host/repo.git#v1`,
//! `/path/repo.git#main:sub`, `file:///path/repo#main`). The repository is fetched with the
//! `git` command into a temp dir of the store (shallow when the server allows it), `REF` (a
//! branch, tag or commit; default: the remote's HEAD) is checked out, and `SUBDIR` (default:
//! the top) becomes the context. As in BuildKit, the `.git` dir is not part of the context.

use std::path::{Component, Path};
use std::process::Command;

use super::source::{io_err, SourceError, CONTEXT_DIR};
use crate::store::Store;

/// A parsed git context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitContext {
    /// What `git fetch` is given: a URL or a local path.
    pub url: String,
    /// The branch, tag or commit after `#` (`None`: the remote's HEAD).
    pub reference: Option<String>,
    /// The directory after `:` in the fragment (`None`: the repository's top).
    pub subdir: Option<String>,
}

impl GitContext {
    /// Parses `context` when it names a git repository: a `git://`, `ssh://`, `file://` or
    /// `git@` URL, an `http(s)://` URL whose path ends in `.git`, or a local path ending in
    /// `.git` (a bare repo or a worktree's `.git` dir) or followed by a `#` fragment. Other
    /// strings (plain directories, tar files, `-`) give `None`.
    pub fn parse(context: &str) -> Option<GitContext> {
        let (base, fragment) = match context.split_once('#') {
            Some((b, f)) => (b, Some(f)),
            None => (context, None),
        };
        if base.is_empty() {
            return None;
        }
        let scheme_git = ["git://", "ssh://", "file://", "git@"]
            .iter()
            .any(|p| base.starts_with(p));
        let http_git = (base.starts_with("https://") || base.starts_with("http://"))
            && base.trim_end_matches('/').ends_with(".git");
        let local_git = !base.contains("://")
            && Path::new(base).is_dir()
            && (base.trim_end_matches('/').ends_with(".git")
                || (fragment.is_some() && !Path::new(context).exists()));
        if !(scheme_git || http_git || local_git) {
            return None;
        }
        let (reference, subdir) = match fragment {
            None => (None, None),
            Some(f) => {
                let (r, s) = match f.split_once(':') {
                    Some((r, s)) => (r, Some(s)),
                    None => (f, None),
                };
                let nonempty = |s: &str| (!s.is_empty()).then(|| s.to_string());
                (nonempty(r), s.and_then(nonempty))
            }
        };
        Some(GitContext {
            url: base.to_string(),
            reference,
            subdir,
        })
    }

    /// Fetches the repository and checks out the reference into a temp dir of `store`; the
    /// context is the returned dir's [`CONTEXT_DIR`] subdir.
    pub(crate) fn fetch(&self, store: &Store) -> Result<tempfile::TempDir, SourceError> {
        if let Some(sub) = &self.subdir {
            let bad = Path::new(sub)
                .components()
                .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir));
            if bad {
                return Err(self.error(format!(
                    "subdirectory {sub:?} must be a relative path inside the repository"
                )));
            }
        }
        let tmp = store.temp_dir()?;
        let repo = tmp.path().join("repo");
        self.git(tmp.path(), &["init", "-q", "repo"])?;
        let reference = self.reference.as_deref().unwrap_or("HEAD");
        // Shallow first; a commit the server does not advertise needs the full history.
        let shallow = self.git(
            &repo,
            &[
                "fetch",
                "-q",
                "--depth=1",
                "--no-tags",
                "--",
                &self.url,
                reference,
            ],
        );
        let target = match shallow {
            Ok(()) => "FETCH_HEAD".to_string(),
            Err(_) if self.reference.is_some() => {
                self.git(
                    &repo,
                    &[
                        "fetch",
                        "-q",
                        "--",
                        &self.url,
                        "+refs/heads/*:refs/remotes/origin/*",
                        "+refs/tags/*:refs/tags/*",
                    ],
                )?;
                let r = reference.to_string();
                let candidates = [
                    format!("refs/remotes/origin/{r}"),
                    format!("refs/tags/{r}"),
                    r,
                ];
                candidates
                    .into_iter()
                    .find(|c| {
                        self.git(
                            &repo,
                            &["rev-parse", "-q", "--verify", &format!("{c}^{{commit}}")],
                        )
                        .is_ok()
                    })
                    .ok_or_else(|| self.error(format!("reference {reference:?} not found")))?
            }
            Err(e) => return Err(e),
        };
        self.git(&repo, &["checkout", "-q", "--detach", &target])?;
        let top = match &self.subdir {
            Some(sub) => repo.join(sub),
            None => {
                let dot_git = repo.join(".git");
                std::fs::remove_dir_all(&dot_git).map_err(io_err(&dot_git))?;
                repo.clone()
            }
        };
        let meta = std::fs::symlink_metadata(&top).ok();
        if !meta.is_some_and(|m| m.is_dir()) {
            let sub = self.subdir.as_deref().unwrap_or(".");
            return Err(self.error(format!(
                "subdirectory {sub:?} is not a directory at {reference}"
            )));
        }
        let context = tmp.path().join(CONTEXT_DIR);
        std::fs::rename(&top, &context).map_err(io_err(&context))?;
        Ok(tmp)
    }

    /// Runs `git ARGS` in `dir`, without prompts or the user's configuration.
    fn git(&self, dir: &Path, args: &[&str]) -> Result<(), SourceError> {
        let out = Command::new("git")
            .args([
                "-c",
                "advice.detachedHead=false",
                "-c",
                "protocol.file.allow=always",
            ])
            .args(args)
            .current_dir(dir)
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| self.error(format!("running git: {e}")))?;
        if out.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        Err(self.error(format!("git {} failed: {}", args[0], stderr.trim())))
    }

    fn error(&self, message: String) -> SourceError {
        SourceError::Git {
            url: self.url.clone(),
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_syntax() {
        let g = GitContext::parse("https://example.com/repo.git#v1:sub/dir").unwrap();
        assert_eq!(g.url, "https://example.com/repo.git");
        assert_eq!(g.reference.as_deref(), Some("v1"));
        assert_eq!(g.subdir.as_deref(), Some("sub/dir"));
        let g = GitContext::parse("git@host:me/repo.git").unwrap();
        assert_eq!((g.reference, g.subdir), (None, None));
        let g = GitContext::parse("file:///srv/repo#:docs").unwrap();
        assert_eq!((g.reference, g.subdir.as_deref()), (None, Some("docs")));
        assert_eq!(
            GitContext::parse("https://example.com/context.tar.gz"),
            None
        );
        assert_eq!(GitContext::parse("-"), None);
        assert_eq!(GitContext::parse("/no/such/dir"), None);
    }
}
