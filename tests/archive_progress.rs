//! What save, load, import and ADD downloads show (issue 14, "Progress"), as pull and push:
//! with stderr a pipe, one line per finished layer on stderr and nothing animated, stdout
//! untouched (the archive, `Loaded image:`, the imported ID); `-q` and `--progress=quiet`
//! print nothing; on a terminal (a pty made by `script`) each layer ends as a finished bar.

mod build_support;

use build_support::http::{route, serve, Routes};
use build_support::{assert_success, path_str, run_on_terminal, stderr, stdout, BuildEnv, TestEnv};

/// A store holding `app:v1`, two layers (the busybox base plus one COPY of 300 KB); returns
/// it with the short IDs of its layers' DiffIDs (as docker-archive names them).
fn store_with_app() -> (BuildEnv, Vec<String>) {
    let b = BuildEnv::new();
    let ctx = b.context("ctx", &[("Dockerfile", "FROM busybox\nCOPY a /a\n")]);
    std::fs::write(ctx.join("a"), vec![7u8; 300_000]).unwrap();
    b.build_id(&["-t", "app:v1", path_str(&ctx)]);
    let layers = diff_ids(&b.env, "app:v1");
    (b, layers)
}

fn diff_ids(env: &TestEnv, name: &str) -> Vec<String> {
    let v = env.inspect(name);
    let layers: Vec<String> = v["RootFS"]["Layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|d| d.as_str().unwrap()["sha256:".len()..][..12].to_string())
        .collect();
    assert_eq!(layers.len(), 2, "{v}");
    layers
}

fn count(text: &str, line: &str) -> usize {
    text.lines().filter(|l| l.trim() == line).count()
}

#[test]
fn save_load_and_import_print_a_line_per_layer_on_stderr_without_a_terminal() {
    let (b, layers) = store_with_app();
    let env = &b.env;

    // save -o FILE: a line per layer written.
    let file = env.path().join("app.tar");
    let out = env.run(&["save", "-o", path_str(&file), "app:v1"]);
    assert_success("save -o", &out);
    let err = stderr(&out);
    assert_eq!(stdout(&out), "");
    assert!(!err.contains('\r'), "{err:?}");
    for l in &layers {
        assert_eq!(count(&err, &format!("{l}: Saved")), 1, "{err}");
    }

    // save to stdout: the lines on stderr, the archive alone on stdout (it loads).
    let out = env.run(&["save", "--format", "oci-archive", "app:v1"]);
    assert_success("save", &out);
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 2, "{err}");
    assert!(err.lines().all(|l| l.ends_with(": Saved")), "{err}");
    let oci = env.path().join("app-oci.tar");
    std::fs::write(&oci, &out.stdout).unwrap();

    // load: docker's `Loading layer` per layer on stderr; stdout as before.
    for archive in [&file, &oci] {
        let env2 = TestEnv::new();
        let out = env2.run(&["load", "-i", path_str(archive)]);
        assert_eq!(
            assert_success("load", &out),
            "Loaded image: app:v1\n",
            "{}",
            stderr(&out)
        );
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 2, "{err}");
        if archive == &file {
            for l in &layers {
                assert_eq!(count(&err, &format!("{l}: Loading layer done")), 1, "{err}");
            }
        }
    }

    // import: a line for the tarball; stdout is the ID alone.
    let tar = env.path().join("rootfs.tar");
    let made = std::process::Command::new("tar")
        .args([
            "cf",
            path_str(&tar),
            "-C",
            path_str(&env.path().join("ctx")),
            ".",
        ])
        .status()
        .expect("tar");
    assert!(made.success());
    let out = env.run(&["import", path_str(&tar), "imp:1"]);
    let id = assert_success("import", &out);
    assert!(id.starts_with("sha256:") && id.lines().count() == 1, "{id}");
    assert_eq!(stderr(&out), "rootfs.tar: Imported\n");

    // -q and --progress=quiet: nothing.
    let quiet_runs: [&[&str]; 6] = [
        &["save", "-q", "-o", path_str(&file), "app:v1"],
        &["save", "--progress=quiet", "-o", path_str(&file), "app:v1"],
        &["load", "-q", "-i", path_str(&file)],
        &["load", "--progress=quiet", "-i", path_str(&file)],
        &["import", "-q", path_str(&tar), "imp:2"],
        &["import", "--progress=quiet", path_str(&tar), "imp:3"],
    ];
    for args in quiet_runs {
        let out = env.run(args);
        assert_success(&format!("{args:?}"), &out);
        assert_eq!(stderr(&out), "", "{args:?}");
    }
}

/// On a terminal the layers are bars on stderr, each ending done; stdout (a file) holds
/// only what it holds without a terminal.
#[test]
fn save_and_load_on_a_terminal_end_with_every_layer_done() {
    let (b, layers) = store_with_app();
    let env = &b.env;
    let file = env.path().join("app.tar");
    let env2 = TestEnv::new();
    let stdout_file = env.path().join("stdout.txt");
    let bin = build_support::rbuild_bin();
    let command = format!(
        "{bin} --root {root} save -o {file} app:v1 && {bin} --root {root2} load -i {file} > {out}",
        root = env.root().display(),
        root2 = env2.root().display(),
        file = file.display(),
        out = stdout_file.display(),
    );
    let screen = run_on_terminal("script rbuild save/load", &command);
    assert!(screen.contains(": Saving"), "{screen:?}");
    assert!(screen.contains(": Loading layer ["), "{screen:?}");
    for l in &layers {
        assert!(screen.contains(&format!("{l}: Saved")), "{screen:?}");
        assert!(
            screen.contains(&format!("{l}: Loading layer done")),
            "{screen:?}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(&stdout_file).unwrap(),
        "Loaded image: app:v1\n"
    );
}

/// ADD of a URL: plain progress says how many bytes came, once, when the download ends.
#[test]
fn add_url_download_reports_its_bytes() {
    let b = BuildEnv::new();
    let routes = Routes::default();
    let base = serve(routes.clone());
    route(&routes, "/f/big.bin", &vec![3u8; 600 << 10], None);
    let url = format!("{base}/f/big.bin");
    let ctx = b.context(
        "add",
        &[("Dockerfile", &format!("FROM busybox\nADD {url} /big.bin\n"))],
    );
    let progress = b.build(&["--no-cache", path_str(&ctx)]);
    let done: Vec<&str> = progress
        .lines()
        .filter(|l| l.contains(&url) && l.ends_with(" done"))
        .collect();
    assert_eq!(done.len(), 1, "{progress}");
    assert!(
        done[0].ends_with(&format!("{url} 600.00 KiB / 600.00 KiB done")),
        "{progress}"
    );
    let quiet = b.build_out(&["-q", "--no-cache", path_str(&ctx)]);
    assert_success("build -q", &quiet);
    assert_eq!(stderr(&quiet), "");
}
