//! Reading the command line before clap does: `rbuild [BUILD OPTIONS] CONTEXT` means
//! `rbuild build [BUILD OPTIONS] CONTEXT` (the form CI pipelines and the project's own
//! one-line description use), and which command a failed parse was for (its exit status).
//!
//! Only the global options may come before the command; anything else in first place that is
//! not a command name, `help`, `--help` or `--version` starts a build. A bare word is a
//! context only when it looks like one (an existing path, or a path or URL with a `/`), so a
//! mistyped command still gets clap's "unrecognized subcommand" with its suggestion; a
//! context directory named like a command is reached as `./images`.

use std::ffi::OsString;
use std::path::Path;

/// The position of the first argument after the global options (`args[0]` is the program).
pub fn command_index(cmd: &clap::Command, args: &[OsString]) -> usize {
    let mut i = 1;
    while let Some(arg) = args.get(i).and_then(|a| a.to_str()) {
        let Some(global) = global_option(cmd, arg) else {
            break;
        };
        // `--root DIR` takes the next argument, `--root=DIR` and `-D` do not.
        let takes_value = global.get_action().takes_values();
        i += if takes_value && !arg.contains('=') && !is_attached_short(arg) {
            2
        } else {
            1
        };
    }
    i
}

/// The command the arguments name (`None` when the first argument after the global options is
/// missing or an option).
pub fn command_name<'a>(cmd: &clap::Command, args: &'a [OsString]) -> Option<&'a str> {
    let word = args.get(command_index(cmd, args))?.to_str()?;
    (!word.starts_with('-')).then_some(word)
}

/// `args` with `build` inserted where the command goes when the command line is a build
/// without the word `build`.
pub fn with_default_build(cmd: &clap::Command, mut args: Vec<OsString>) -> Vec<OsString> {
    let i = command_index(cmd, &args);
    let Some(first) = args.get(i) else {
        return args; // no command: clap prints the help
    };
    let is_build = match first.to_str() {
        Some("-h" | "--help" | "-V" | "--version" | "help") => false,
        Some(word) if is_command(cmd, word) => false,
        // A build option or `-` (a context on stdin).
        Some(word) if word.starts_with('-') => true,
        Some(word) => word.contains('/') || Path::new(word).exists(),
        None => Path::new(first).exists(),
    };
    if is_build {
        args.insert(i, "build".into());
    }
    args
}

fn is_command(cmd: &clap::Command, word: &str) -> bool {
    cmd.get_subcommands()
        .any(|s| s.get_name() == word || s.get_all_aliases().any(|a| a == word))
}

/// The global option `arg` names (`--root`, `--root=DIR`, `-D`), if any.
fn global_option<'c>(cmd: &'c clap::Command, arg: &str) -> Option<&'c clap::Arg> {
    let mut globals = cmd.get_arguments().filter(|a| a.is_global_set());
    if let Some(long) = arg.strip_prefix("--") {
        let name = long.split('=').next().unwrap_or(long);
        return globals.find(|a| !name.is_empty() && a.get_long() == Some(name));
    }
    let short = arg.strip_prefix('-')?.chars().next()?;
    globals.find(|a| a.get_short() == Some(short))
}

/// `-rDIR`: a short option with its value attached.
fn is_attached_short(arg: &str) -> bool {
    !arg.starts_with("--") && arg.len() > 2
}
