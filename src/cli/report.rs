//! How rbuild reports errors: one style for all of them, clap's usage errors included:
//! `rbuild: error: MESSAGE`, then a `hint: ` line where the error has an obvious next step.
//!
//! Exit statuses: 1 for a failed command, clap's 2 for a malformed command line, except for
//! `run`, where docker's 125 keeps "rbuild could not start it" apart from the container's own
//! statuses (scripts test for 125).

use std::io::ErrorKind as IoErrorKind;

use clap::error::ErrorKind;

use super::run::EXIT_RUN_FAILED;
use super::Globals;
use crate::archive::ArchiveError;
use crate::store::StoreError;

/// Prints clap's error (or the help or version it carries) and returns the exit status.
/// `command` is the command the arguments named, if any.
pub fn usage_error(err: &clap::Error, command: Option<&str>) -> i32 {
    if matches!(
        err.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = err.print();
        return err.exit_code();
    }
    // Plain text (no colours): clap's message starts with its own `error: `.
    let text = err.render().to_string();
    eprint!(
        "rbuild: error: {}",
        text.strip_prefix("error: ").unwrap_or(&text)
    );
    match command {
        Some("run") => EXIT_RUN_FAILED,
        _ => err.exit_code(),
    }
}

/// Prints a command's error: its chain on one line, and a hint when one applies.
pub fn error(globals: &Globals, err: &anyhow::Error) {
    eprintln!("rbuild: error: {err:#}");
    if let Some(hint) = hint(globals, err) {
        eprintln!("hint: {hint}");
    }
}

/// Prints the error of one item of several (the others go on), in the same style.
pub fn item_error(err: &dyn std::fmt::Display) {
    eprintln!("rbuild: error: {err}");
}

/// What to do next, for the errors where that is clear.
fn hint(globals: &Globals, err: &anyhow::Error) -> Option<String> {
    err.chain().find_map(|cause| match cause.downcast_ref::<StoreError>()? {
        StoreError::NoSuchImage(_) => {
            Some("`rbuild images` lists the images of this store (see --root)".to_string())
        }
        StoreError::Io { path, error }
            if error.kind() == IoErrorKind::PermissionDenied && path.starts_with(&globals.root) =>
        {
            Some(format!(
                "the store {} is not writable for this user; choose another with --root DIR or RBUILD_ROOT",
                globals.root.display()
            ))
        }
        _ => None,
    })
}

/// Whether `err` comes from writing to a pipe whose reader has exited (`rbuild save x | true`).
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        let io = cause.downcast_ref::<std::io::Error>().or_else(|| {
            match cause.downcast_ref::<ArchiveError>() {
                Some(ArchiveError::Write(e) | ArchiveError::Io { error: e, .. }) => Some(e),
                Some(_) => None,
                // `export`/`cp ... -` writing a tar into a closed pipe.
                None => match cause.downcast_ref::<crate::container::ContainerError>()? {
                    crate::container::ContainerError::Layer(
                        crate::image::layer::LayerError::Write(e),
                    ) => Some(e),
                    _ => None,
                },
            }
        });
        io.is_some_and(|e| e.kind() == IoErrorKind::BrokenPipe)
    })
}
