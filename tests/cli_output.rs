//! Golden tests of what the CLI prints: `build --progress=plain`, `images`, `history`,
//! `inspect`, `ps`, and error messages, each compared byte for byte with
//! `testdata/cli/<name>.txt` (the command, its exit status, stdout and stderr) after
//! [`golden::normalise`] masked what changes from run to run.
//!
//! After an intended change of output, run `RBUILD_BLESS=1 cargo test --release --test
//! cli_output` and review the diff of testdata/cli/.
//!
//! Two stores are shared by the tests of this binary (each made once, under target/):
//! - [`scratch`]: only images built FROM scratch with SOURCE_DATE_EPOCH, so their IDs, sizes
//!   and dates are the same on every host: those goldens keep the IDs unmasked and so also
//!   pin the image serialisation.
//! - [`busybox`]: the busybox base (whose IDs and sizes follow the host's busybox), an image
//!   built on it with RUN, and one exited container: IDs masked.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use common::golden::{self, Mask};
use common::{testdata, TestEnv};

/// SOURCE_DATE_EPOCH of every golden build: 2023-11-14T22:13:20Z.
const EPOCH: &str = "1700000000";

/// A new store for a fixture: in a `static`, so never removed; kept under `target/`.
fn fixture_env() -> TestEnv {
    TestEnv::new_in(Path::new(env!("CARGO_TARGET_TMPDIR")))
}

/// A store, and the output of the build that made its image.
struct Fixture {
    env: TestEnv,
    /// The first (uncached) build of the image, `--progress=plain`.
    build: Output,
    /// The build's context directory.
    context: std::path::PathBuf,
}

/// Writes `files` (path, content, mode) under `dir`.
fn write_context(dir: &Path, files: &[(&str, &str, u32)]) {
    use std::os::unix::fs::PermissionsExt;
    for (path, content, mode) in files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(*mode)).unwrap();
    }
}

/// The arguments of the golden builds: `build --progress=plain -t TAG .`.
fn build_line(tag: &str) -> String {
    format!("build --progress=plain -t {tag} .")
}

/// `rbuild` + [`build_line`] in `context`, with SOURCE_DATE_EPOCH.
fn build_cmd(env: &TestEnv, context: &Path, tag: &str) -> Command {
    let mut cmd = env.cmd();
    cmd.args(build_line(tag).split(' '))
        .current_dir(context)
        .env("SOURCE_DATE_EPOCH", EPOCH)
        .stdin(Stdio::null());
    cmd
}

/// The store with `golden:1`, built FROM scratch (see the module comment).
fn scratch() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let env = fixture_env();
        let context = env.path().join("ctx");
        write_context(
            &context,
            &[
                (
                    "Dockerfile",
                    "FROM scratch\nCOPY hello.txt /srv/hello.txt\nENV GREETING=hello\n\
                     LABEL org.example.golden=\"yes\"\nWORKDIR /srv\nCMD [\"/srv/hello.txt\"]\n",
                    0o644,
                ),
                ("hello.txt", "hello, golden\n", 0o644),
            ],
        );
        let build = build_cmd(&env, &context, "golden:1").output().unwrap();
        common::assert_success("rbuild build golden:1", &build);
        Fixture {
            env,
            build,
            context,
        }
    })
}

/// The store with `busybox`, `app:1` built on it with a RUN, and the exited container
/// `golden-c` of `app:1` (see the module comment).
fn busybox() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let env = fixture_env();
        env.import_base("busybox");
        let context = env.path().join("ctx");
        write_context(
            &context,
            &[
                (
                    "Dockerfile",
                    "FROM busybox\nRUN echo hello from run\n\
                     COPY hello.txt /\nCMD [\"cat\", \"/hello.txt\"]\n",
                    0o644,
                ),
                ("hello.txt", "hi\n", 0o644),
            ],
        );
        let build = build_cmd(&env, &context, "app:1").output().unwrap();
        common::assert_success("rbuild build app:1", &build);
        env.ok(&["run", "--name", "golden-c", "app:1"]);
        Fixture {
            env,
            build,
            context,
        }
    })
}

/// The golden text of a command: the command line, exit status, stdout and stderr (build
/// progress grouped by step: [`golden::group_steps`]), with the fixture's directory as
/// `<dir>` and then `mask` applied.
fn render(env: &TestEnv, command: &str, out: &Output, mask: Mask) -> String {
    let mut stderr = common::stderr(out);
    if command.starts_with("build ") {
        stderr = golden::group_steps(&stderr);
    }
    let text = format!(
        "$ rbuild {command}\nexit: {}\n--- stdout\n{}--- stderr\n{stderr}",
        out.status
            .code()
            .map_or_else(|| out.status.to_string(), |c| c.to_string()),
        common::stdout(out),
    );
    let base = common::busybox_rootfs_tar().to_str().unwrap();
    let text = text
        .replace(env.path().to_str().unwrap(), "<dir>")
        .replace(base, "<base>/busybox-rootfs.tar");
    golden::normalise(&text, mask)
}

/// Asserts that `out` of `rbuild COMMAND` renders as `testdata/cli/NAME.txt`.
fn assert_golden(name: &str, env: &TestEnv, command: &str, out: &Output, mask: Mask) {
    let path = testdata("cli").join(format!("{name}.txt"));
    if let Err(e) = golden::check(&path, &render(env, command, out, mask)) {
        panic!("{e}");
    }
}

/// Runs `rbuild ARGS` in `fixture`'s store and compares with the golden file `name`.
fn golden_run(name: &str, fixture: &Fixture, args: &[&str], mask: Mask) {
    let out = fixture.env.run(args);
    assert_golden(name, &fixture.env, &args.join(" "), &out, mask);
}

const EXACT: Mask = Mask {
    ids: false,
    columns: false,
};
const IDS: Mask = Mask {
    ids: true,
    columns: false,
};
/// For tables with a relative time of "now" (its width changes from run to run).
const COLUMNS: Mask = Mask {
    ids: true,
    columns: true,
};

#[test]
fn build_plain_progress_from_scratch() {
    let f = scratch();
    assert_golden(
        "build-scratch",
        &f.env,
        &build_line("golden:1"),
        &f.build,
        EXACT,
    );
}

#[test]
fn build_plain_progress_all_cached() {
    let f = scratch();
    let out = build_cmd(&f.env, &f.context, "golden:1").output().unwrap();
    assert_golden(
        "build-scratch-cached",
        &f.env,
        &build_line("golden:1"),
        &out,
        EXACT,
    );
}

#[test]
fn build_plain_progress_with_run_output() {
    let f = busybox();
    assert_golden("build-run", &f.env, &build_line("app:1"), &f.build, IDS);
}

#[test]
fn images_table() {
    golden_run("images", scratch(), &["images"], EXACT);
}

#[test]
fn images_quiet_and_no_trunc() {
    golden_run("images-quiet", scratch(), &["images", "-q"], EXACT);
    golden_run(
        "images-no-trunc",
        scratch(),
        &["images", "--no-trunc"],
        EXACT,
    );
}

#[test]
fn history_table() {
    golden_run("history", scratch(), &["history", "golden:1"], EXACT);
}

#[test]
fn history_of_an_image_on_an_imported_base() {
    let f = busybox();
    // The base's size follows the host's busybox.
    let base_size = f.env.ok(&["images", "--format", "{{.Size}}", "busybox"]);
    let args = ["history", "app:1"];
    let mut out = f.env.run(&args);
    out.stdout = common::stdout(&out)
        .replace(&format!("   {}   ", base_size.trim()), "   <size>   ")
        .into_bytes();
    assert_golden("history-run", &f.env, &args.join(" "), &out, COLUMNS);
}

#[test]
fn inspect_json() {
    golden_run("inspect", scratch(), &["inspect", "golden:1"], EXACT);
}

#[test]
fn inspect_format_field() {
    let args = ["inspect", "--format", "{{.Config.Env}} {{.Id}}", "golden:1"];
    golden_run("inspect-format", scratch(), &args, EXACT);
}

#[test]
fn ps_lists_running_and_all() {
    golden_run("ps", busybox(), &["ps"], COLUMNS);
    golden_run("ps-all", busybox(), &["ps", "-a"], COLUMNS);
}

#[test]
fn error_unknown_flag() {
    golden_run("error-bad-flag", scratch(), &["images", "--bogus"], EXACT);
}

#[test]
fn error_missing_image() {
    golden_run(
        "error-inspect-missing",
        scratch(),
        &["inspect", "nosuch:1"],
        EXACT,
    );
    golden_run(
        "error-history-missing",
        scratch(),
        &["history", "nosuch:1"],
        EXACT,
    );
    golden_run("error-rmi-missing", scratch(), &["rmi", "nosuch:1"], EXACT);
}

#[test]
fn error_dockerfile_syntax_names_file_line_and_column() {
    let f = scratch();
    let dir = f.env.path().join("syntax");
    write_context(
        &dir,
        &[("Dockerfile", "FROM scratch\nCOPY a /a\nFROOM x\n", 0o644)],
    );
    let out = build_cmd(&f.env, &dir, "bad:1").output().unwrap();
    assert_golden(
        "error-dockerfile-syntax",
        &f.env,
        &build_line("bad:1"),
        &out,
        EXACT,
    );
}

#[test]
fn error_bad_format_template() {
    // An unclosed action is a parse error, exit 1 before any output (it used to be printed
    // as text with exit 0).
    golden_run(
        "error-bad-format",
        scratch(),
        &["images", "--format", "{{.Repository"],
        EXACT,
    );
}

/// Grouping keeps each step's lines in their order, orders the steps by title, numbers them
/// again and puts other lines last.
#[test]
fn group_steps_orders_steps_by_title_and_keeps_their_lines() {
    let progress = "#1 b\n#2 a\n#10 c\n#1 DONE 1\nerror: e\n#2 DONE 2\n";
    assert_eq!(
        golden::group_steps(progress),
        "#1 a\n#1 DONE 2\n#2 b\n#2 DONE 1\n#3 c\nerror: e\n"
    );
}

/// The normaliser masks exactly what changes from run to run and leaves the rest.
#[test]
fn normaliser_masks_times_and_ids_only() {
    let text = "#4 [stage-0 2/3] RUN echo 0.5\n#4 0.054 hello 1.5\n#4 DONE 12.3s\n\
                x   Less than a second ago   2 seconds ago   About an hour ago   ago\n\
                abcdef012345 abcdefabcdef sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n\
                \"LastTagTime\": \"2026-12-04T13:23:18+00:00\",\n";
    assert_eq!(
        golden::normalise(text, EXACT),
        "#4 [stage-0 2/3] RUN echo 0.5\n#4 <t> hello 1.5\n#4 DONE <t>\n\
         x   <ago>                    <ago>           <ago>               ago\n\
         abcdef012345 abcdefabcdef sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n\
         \"LastTagTime\": \"<time>\",\n"
    );
    assert_eq!(
        golden::normalise(text, COLUMNS).lines().nth(3).unwrap(),
        "x   <ago>   <ago>   <ago>   ago"
    );
    assert_eq!(
        golden::normalise(text, COLUMNS).lines().nth(4).unwrap(),
        "<id> abcdefabcdef sha256:<id>"
    );
}
