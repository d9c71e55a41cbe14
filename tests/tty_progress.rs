//! The live displays on a real terminal (issue 14, "Must show"): tmux sessions of 60 and 200
//! columns run pull and push (a test registry), save, load and a build; the final screen
//! (`tmux capture-pane -J`, wrapped lines joined) has no line wider than the terminal and
//! shows every layer done and every build step finished. Also: a dumb terminal gets plain
//! output, and `NO_COLOR` removes the dimming.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::registry::Registry;
use common::tmux::Tmux;
use common::{assert_success, rbuild_bin, stderr, TestEnv};

/// What a session's script prints last (see [`Tmux::screen`]).
const SENTINEL: &str = "tty-test-end";

/// Sessions that end by creating a marker file.
impl Tmux {
    /// Runs `script` (sh) in a new `width`×40 session and returns its final screen: the
    /// script ends by creating a marker file (the test waits for it), then prints
    /// [`SENTINEL`] (the test waits until tmux shows it, then removes it from the screen) and
    /// sleeps so the pane stays.
    fn screen(&self, name: &str, width: u16, script: &str) -> String {
        let marker = self.dir.path().join(format!("{name}.done"));
        let file = self.dir.path().join(format!("{name}.sh"));
        std::fs::write(
            &file,
            format!(
                // Written aside and renamed: `wait_for_file` must never see the marker empty.
                // Then the sentinel, on the cursor's line (no newline: nothing scrolls).
                "unset RBUILD_ROOT NO_COLOR\n{script}\necho \"exit $?\" > {tmp}\nmv {tmp} {marker}\n\
                 printf %s {SENTINEL}\nsleep 600\n",
                tmp = marker.with_extension("tmp").display(),
                marker = marker.display()
            ),
        )
        .expect("script");
        let out = self
            .tmux()
            .args([
                "new-session",
                "-d",
                "-s",
                name,
                "-x",
                &width.to_string(),
                "-y",
                "40",
            ])
            .arg(format!("sh {}", file.display()))
            .output()
            .expect("tmux");
        assert_success("tmux new-session", &out);
        wait_for_file(&marker);
        let status = std::fs::read_to_string(&marker).expect("marker");
        // The terminal shows the sentinel once it took all the command wrote before it.
        let start = Instant::now();
        while !self.capture(name, true).contains(SENTINEL) {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "{name}: no sentinel"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let screen = self.capture(name, true).replace(SENTINEL, "");
        assert_eq!(status.trim(), "exit 0", "{name}: {screen}");
        match name.starts_with("build") || name == "dumb" {
            true => screen,
            false => self.capture(name, false).replace(SENTINEL, ""),
        }
    }
}

/// Waits (up to 2 minutes: the command's own run time) for `path` to exist.
fn wait_for_file(path: &Path) {
    let start = Instant::now();
    while !path.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The transfer bars' final screen (rows as drawn, not joined: indicatif pads every row to
/// the full width and lets the terminal wrap to the next, so tmux marks its rows wrapped):
/// each row is one whole layer line, starting with its ID; a line wider than the terminal
/// would leave a row holding its continuation. (Each bar style's width is checked at 60
/// and 200 columns by the unit test `cli::transfer_progress::tests`.)
fn assert_rows_are_layers(what: &str, screen: &str) {
    for row in screen.lines().filter(|r| !r.trim().is_empty()) {
        let id = row.get(..12).unwrap_or("");
        assert!(
            id.len() == 12
                && id.chars().all(|c| c.is_ascii_hexdigit())
                && row.get(12..).is_some_and(|r| r.starts_with([':', ' '])),
            "{what}: a row that is no layer line: {row:?}\n{screen}"
        );
    }
}

/// Every line of `screen` fits in `width` columns.
fn assert_fits(what: &str, screen: &str, width: usize) {
    for line in screen.lines() {
        assert!(
            rbuild::terminal::width(line) <= width,
            "{what} at {width} columns: a line of {} columns: {line:?}\n{screen}",
            rbuild::terminal::width(line)
        );
    }
}

/// Short IDs of the layer blobs of `name` (what pull/push/load/save name in OCI form) and of
/// its DiffIDs (what docker-archive save/load name).
fn layer_ids(env: &TestEnv, name: &str) -> Vec<String> {
    let v = env.inspect(name);
    v["RootFS"]["Layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|d| d.as_str().unwrap()["sha256:".len()..][..12].to_string())
        .collect()
}

/// A Dockerfile whose steps print long lines (wider than 60 columns, with two-column
/// characters and an escape sequence) and several output lines.
const DOCKERFILE: &str = "FROM busybox
COPY a /a
RUN echo 'a long line of output: 日本語のテキスト 日本語のテキスト 日本語のテキスト ｗｉｄｅ ｗｉｄｅ end'; printf '\\033[2J'; for i in 1 2 3 4 5 6 7; do echo line-$i; done
RUN echo second step with a long name to cut at sixty columns xxxxxxxxxxxxxxxxxxxxxxxxxx > /b
";

#[test]
fn pull_push_save_load_and_build_fit_60_and_200_columns_and_end_done() {
    let reg = Registry::plain();
    let host = reg.host();
    let env = TestEnv::with_base("busybox:latest");
    let ctx = env.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), DOCKERFILE).unwrap();
    std::fs::write(ctx.join("a"), vec![5u8; 400_000]).unwrap();
    let tmux = Tmux::new();
    let bin = rbuild_bin();
    for width in [60u16, 200] {
        let app = format!("{host}/tty{width}/app:v1");
        let root = env.root();
        let r = root.display();
        let out = env.path().join(format!("stdout-{width}.txt"));
        let o = out.display();
        let c = ctx.display();
        // The build: each step ends finished (`=> … 0.1s`), none cut past the width.
        let screen = tmux.screen(
            &format!("build{width}"),
            width,
            &format!("{bin} --root {r} build --no-cache -t {app} {c} > {o}"),
        );
        assert_fits("build", &screen, width.into());
        for step in ["[internal] load build context", "[stage-0 2/4] COPY a /a"] {
            assert!(
                screen
                    .lines()
                    .any(|l| l.starts_with(&format!("=> {step}")) && l.ends_with('s')),
                "{step} at {width}: {screen}"
            );
        }
        for n in [3, 4] {
            let prefix = format!("=> [stage-0 {n}/4] RUN ");
            let line = screen.lines().find(|l| l.starts_with(&prefix));
            assert!(
                line.is_some_and(|l| l.trim_end().ends_with('s')
                    && l.trim_end()
                        .rsplit("  ")
                        .next()
                        .is_some_and(|t| t.trim_end_matches('s').parse::<f64>().is_ok())),
                "step {n} at {width}: {screen}"
            );
        }
        assert!(screen.contains("=> => writing image sha256:"), "{screen}");
        let layers = layer_ids(&env, &app);
        assert_eq!(layers.len(), 4, "busybox, COPY and two RUNs");

        // push, then pull into a fresh store: every layer done.
        let screen = tmux.screen(
            &format!("push{width}"),
            width,
            &format!("{bin} --root {r} push {app} > {o}"),
        );
        assert_fits("push", &screen, width.into());
        assert_rows_are_layers("push", &screen);
        let env2 = TestEnv::new();
        let r2 = env2.root();
        let r2 = r2.display();
        let screen2 = tmux.screen(
            &format!("pull{width}"),
            width,
            &format!("{bin} --root {r2} pull {app} > {o}"),
        );
        assert_fits("pull", &screen2, width.into());
        assert_rows_are_layers("pull", &screen2);
        let blobs = blob_ids(&env2, &app);
        for b in &blobs {
            assert!(
                screen.contains(&format!("{b}: Pushed"))
                    || screen.contains(&format!("{b}: Layer already exists"))
                    || screen.contains(&format!("{b}: Mounted from")),
                "push {b} at {width}: {screen}"
            );
            assert!(
                screen2.contains(&format!("{b}: Pull complete")),
                "pull {b} at {width}: {screen2}"
            );
        }

        // save and load (docker-archive: layers named by DiffID).
        let tar = env.path().join(format!("app-{width}.tar"));
        let t = tar.display();
        let screen = tmux.screen(
            &format!("save{width}"),
            width,
            &format!("{bin} --root {r} save -o {t} {app}"),
        );
        assert_fits("save", &screen, width.into());
        assert_rows_are_layers("save", &screen);
        let env3 = TestEnv::new();
        let r3 = env3.root();
        let r3 = r3.display();
        let screen3 = tmux.screen(
            &format!("load{width}"),
            width,
            &format!("{bin} --root {r3} load -i {t} > {o}"),
        );
        assert_fits("load", &screen3, width.into());
        assert_rows_are_layers("load", &screen3);
        for l in &layers {
            assert!(
                screen.contains(&format!("{l}: Saved")),
                "save {l} at {width}: {screen}"
            );
            assert!(
                screen3.contains(&format!("{l}: Loading layer done")),
                "load {l} at {width}: {screen3}"
            );
        }
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            format!("Loaded image: {app}\n")
        );
    }
}

/// Short digests of the layer blobs of `name`, from its stored manifest.
fn blob_ids(env: &TestEnv, name: &str) -> Vec<String> {
    let v = env.inspect(name);
    let digest = v["RepoDigests"][0]
        .as_str()
        .and_then(|r| r.split('@').nth(1))
        .expect("a repo digest")
        .trim_start_matches("sha256:")
        .to_string();
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(env.root().join("blobs/sha256").join(digest)).expect("manifest"),
    )
    .expect("manifest json");
    manifest["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| l["digest"].as_str().unwrap()["sha256:".len()..][..12].to_string())
        .collect()
}

/// `TERM=dumb` on a terminal: `auto` prints plain lines (no cursor movement); `NO_COLOR`
/// keeps the live display but without the dimmed output tails.
#[test]
fn dumb_terminal_gets_plain_progress_and_no_color_drops_dimming() {
    let env = TestEnv::with_base("busybox:latest");
    let ctx = env.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), "FROM busybox\nRUN echo out-line\n").unwrap();
    let tmux = Tmux::new();
    let bin = rbuild_bin();
    let r = env.root();
    let screen = tmux.screen(
        "dumb",
        100,
        &format!(
            "TERM=dumb {bin} --root {} build --no-cache {}",
            r.display(),
            ctx.display()
        ),
    );
    assert!(
        screen
            .lines()
            .any(|l| l.starts_with('#') && l.contains(" DONE ")),
        "{screen}"
    );
    assert!(!screen.contains("=> "), "{screen}");

    // Piped, --progress=tty: the same output with and without NO_COLOR, less the dimming.
    let run = |no_color: bool| {
        let mut cmd = env.cmd();
        cmd.args(["build", "--progress=tty", "--no-cache"])
            .arg(&ctx)
            .env("TERM", "xterm")
            .stdin(Stdio::null());
        if no_color {
            cmd.env("NO_COLOR", "1");
        } else {
            cmd.env_remove("NO_COLOR");
        }
        let out = cmd.output().expect("rbuild");
        assert_success("build --progress=tty", &out);
        stderr(&out)
    };
    let coloured = run(false);
    assert!(coloured.contains("\x1b[2m   out-line"), "{coloured:?}");
    let plain = run(true);
    assert!(plain.contains("   out-line"), "{plain:?}");
    assert!(!plain.contains("\x1b[2m"), "{plain:?}");
    assert!(plain.contains("\x1b[J"), "{plain:?}");
}
