//! What pull and push show (issue 14, "Progress"): against the test registry, with stderr a
//! pipe, one docker-style line per layer and nothing animated; `-q` and `--progress=quiet`
//! print no layer lines; on a terminal (a pty made by `script`) each layer ends as a finished
//! bar on stderr instead of a line on stdout.

mod common;

use common::registry::Registry;
use common::{assert_success, stderr, stdout, TestEnv};

/// A test registry and a store holding `HOST/NAME-app:v1`, two layers (the busybox base plus
/// one COPY); returns them with the image's name.
fn registry_with_app(name: &str) -> (Registry, TestEnv, String) {
    let reg = Registry::plain();
    let host = reg.host();
    let env = TestEnv::new();
    let base = format!("{host}/{name}-base:v1");
    let app = format!("{host}/{name}-app:v1");
    env.import_base(&base);
    let ctx = env.path().join("ctx");
    std::fs::create_dir_all(&ctx).expect("ctx");
    std::fs::write(ctx.join("Dockerfile"), format!("FROM {base}\nCOPY a /a\n"))
        .expect("Dockerfile");
    std::fs::write(ctx.join("a"), vec![7u8; 200_000]).expect("a");
    env.ok(&["build", "-q", "-t", &app, ctx.to_str().expect("utf-8")]);
    (reg, env, app)
}

/// Short IDs (12 hex digits, as printed) of the layers of `name`.
fn short_layers(env: &TestEnv, name: &str) -> Vec<String> {
    let out = env.ok(&["inspect", "--format", "{{json .RootFS.Layers}}", name]);
    let diff_ids: Vec<String> = serde_json::from_str(out.trim()).expect("layers");
    assert_eq!(diff_ids.len(), 2, "{out}");
    // The lines name blob digests, not DiffIDs: read them from the manifest.
    let v = env.inspect(name);
    let digest = v["RepoDigests"][0]
        .as_str()
        .and_then(|r| r.split('@').nth(1))
        .map(str::to_string);
    let manifest_path = digest.map(|d| {
        env.root()
            .join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    });
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(manifest_path.expect("a manifest digest")).expect("manifest"),
    )
    .expect("manifest json");
    manifest["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| {
            let d = l["digest"].as_str().expect("digest");
            d.trim_start_matches("sha256:")[..12].to_string()
        })
        .collect()
}

fn count(text: &str, line: &str) -> usize {
    text.lines().filter(|l| l.trim() == line).count()
}

#[test]
fn pull_and_push_print_a_line_per_layer_and_no_carriage_return_without_a_terminal() {
    let (_reg, env, app) = registry_with_app("p");

    let out = env.run(&["push", &app]);
    let pushed = assert_success("push", &out);
    let err = stderr(&out);
    assert!(
        !pushed.contains('\r') && !err.contains('\r'),
        "{pushed}{err}"
    );
    let layers = short_layers(&env, &app);
    for l in &layers {
        assert_eq!(count(&pushed, &format!("{l}: Pushed")), 1, "{pushed}");
    }

    let env2 = TestEnv::new();
    for flag in [None, Some("--progress=plain")] {
        let env2 = TestEnv::new_in(env2.path());
        let mut args = vec!["pull", app.as_str()];
        args.extend(flag);
        let out = env2.run(&args);
        let pulled = assert_success("pull", &out);
        let err = stderr(&out);
        assert!(
            !pulled.contains('\r') && !err.contains('\r'),
            "{pulled}{err}"
        );
        for l in &layers {
            assert_eq!(
                count(&pulled, &format!("{l}: Pull complete")),
                1,
                "{pulled}"
            );
        }
    }
}

#[test]
fn quiet_pull_and_push_print_no_layer_lines() {
    let (_reg, env, app) = registry_with_app("q");

    let out = env.run(&["push", "-q", &app]);
    let pushed = assert_success("push -q", &out);
    assert_eq!(stderr(&out), "");
    assert_eq!(pushed.lines().count(), 1, "{pushed}");
    assert!(pushed.starts_with("v1: digest: sha256:"), "{pushed}");

    let env2 = TestEnv::new();
    let out = env2.run(&["pull", "-q", &app]);
    assert_eq!(stdout(&out), format!("{app}\n"));
    assert_eq!(stderr(&out), "");

    let env3 = TestEnv::new();
    let out = env3.run(&["pull", "--progress=quiet", &app]);
    let pulled = assert_success("pull --progress=quiet", &out);
    assert!(!pulled.contains("Pull complete"), "{pulled}");
    assert!(
        pulled.contains("Status: Downloaded newer image"),
        "{pulled}"
    );
    assert_eq!(stderr(&out), "");
}

/// On a terminal the layers are bars on stderr: stdout (a file here) carries no layer line,
/// and the terminal's last state shows every layer done.
#[test]
fn pull_on_a_terminal_ends_with_every_layer_done() {
    let (_reg, env, app) = registry_with_app("t");
    env.ok(&["push", &app]);
    let layers = short_layers(&env, &app);

    let env2 = TestEnv::new();
    let stdout_file = env2.path().join("stdout.txt");
    let command = format!(
        "{} --root {} pull {app} > {}",
        common::rbuild_bin(),
        env2.root().display(),
        stdout_file.display()
    );
    let screen = common::run_on_terminal("script rbuild pull", &command);
    // The bar was drawn (the first update draws at once) with its verb.
    assert!(screen.contains(": Downloading ["), "{screen:?}");
    let plain_out = std::fs::read_to_string(&stdout_file).expect("stdout file");
    assert!(
        plain_out.contains("Status: Downloaded newer image"),
        "{plain_out}"
    );
    for l in &layers {
        assert!(!plain_out.contains(l.as_str()), "{plain_out}");
        assert!(
            screen.contains(&format!("{l}: Pull complete")),
            "{screen:?}"
        );
    }
}
