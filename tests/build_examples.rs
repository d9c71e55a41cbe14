//! The testdata/build examples (and testdata/demo), built and run end to end.

mod build_support;

use build_support::{path_str, testdata, BuildEnv};

#[test]
fn static_site_is_served_by_httpd() {
    let b = BuildEnv::new();
    let ctx = testdata("build/static-site");
    b.build(&["-t", "site:v1", path_str(&ctx)]);
    let cfg = b.inspect("site:v1")["Config"].clone();
    assert_eq!(
        cfg["Cmd"],
        serde_json::json!(["httpd", "-f", "-v", "-p", "8080", "-h", "/srv/www"])
    );
    assert!(cfg["ExposedPorts"]["8080/tcp"].is_object());
    assert_eq!(
        b.image_file("site:v1", "/srv/www/index.html").unwrap(),
        std::fs::read_to_string(ctx.join("index.html")).unwrap()
    );
    // Serve it (the CMD without -f, so it goes to the background) and fetch the page.
    let page = b.run_in(
        "site:v1",
        "httpd -p 8080 -h /srv/www && for i in $(seq 100); do \
         wget -q -O - http://127.0.0.1:8080/ && exit 0; sleep 0.1; done; exit 1",
        &[],
    );
    assert!(
        page.contains("Hello from a static site built by rbuild."),
        "{page}"
    );
}

#[test]
fn demo_builds_and_serves() {
    let b = BuildEnv::new();
    b.build(&["-t", "demo", path_str(&testdata("demo"))]);
    let cfg = b.inspect("demo")["Config"].clone();
    assert_eq!(cfg["WorkingDir"], "/srv/www");
    assert!(cfg["Env"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e == "APP_HOME=/srv/www"));
    assert!(
        !cfg["Env"].to_string().contains("GREETING"),
        "ARGs stay out of Env"
    );
    assert!(b.image_file("demo", "/srv/www/index.html").is_some());
    assert_eq!(
        b.image_file("demo", "/srv/www/greeting.txt").unwrap(),
        "hello from rbuild\n"
    );
    let page = b.run_in(
        "demo",
        "httpd -p 80 -h /srv/www && sleep 0.2 && wget -q -O - http://127.0.0.1/greeting.txt",
        &[],
    );
    assert_eq!(page, "hello from rbuild\n");
}

#[test]
fn entrypoint_and_cmd_myip() {
    let b = BuildEnv::new();
    b.build(&["-t", "myip", path_str(&testdata("build/myip"))]);
    let cfg = b.inspect("myip")["Config"].clone();
    assert_eq!(
        cfg["Entrypoint"],
        serde_json::json!(["/usr/local/bin/myip"])
    );
    assert_eq!(cfg["Cmd"], serde_json::json!(["lo"]));
    assert_eq!(b.run_image("myip"), "127.0.0.1\n");
    let mode = std::fs::metadata(b.image_path("myip", "/usr/local/bin/myip").unwrap()).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o755
    );
}

#[test]
fn workdir_pitfall_and_fix() {
    let b = BuildEnv::new();
    let ctx = testdata("build/workdir-pitfall");
    b.build(&["-t", "pitfall", path_str(&ctx)]);
    assert_eq!(b.image_file("pitfall", "/world.txt").unwrap(), "hello\n");
    assert!(b.image_file("pitfall", "/app/world.txt").is_none());
    let fixed = ctx.join("Dockerfile.fixed");
    b.build(&["-t", "fixed", "-f", path_str(&fixed), path_str(&ctx)]);
    assert_eq!(b.image_file("fixed", "/app/world.txt").unwrap(), "hello\n");
    assert!(b.image_file("fixed", "/world.txt").is_none());
    assert_eq!(b.inspect("fixed")["Config"]["WorkingDir"], "/app");
}

#[test]
fn multistage_skips_unused_failing_stage() {
    let b = BuildEnv::new();
    let ctx = testdata("build/multistage");
    let progress = b.build(&["-t", "multi", path_str(&ctx)]);
    assert!(!progress.contains("[broken"), "{progress}");
    assert!(!progress.contains("this stage is not needed"), "{progress}");
    assert_eq!(
        b.image_file("multi", "/greeting.txt").unwrap(),
        "built in stage build\n"
    );
    // Only the two COPY layers: nothing of the build stage's base.
    assert_eq!(
        b.inspect("multi")["RootFS"]["Layers"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert!(b.image_path("multi", "/bin/cat").is_some());
    assert!(b.image_path("multi", "/bin/sh").is_none());
    // Targeting the broken stage builds it, and fails.
    let err = b.build_fails(&["--target", "broken", path_str(&ctx)]);
    assert!(err.contains("exit code: 1"), "{err}");
}

#[test]
fn onbuild_triggers_run_in_the_child() {
    let b = BuildEnv::new();
    b.build(&[
        "-t",
        "onbuild-base",
        path_str(&testdata("build/onbuild/base")),
    ]);
    let base_cfg = b.inspect("onbuild-base")["Config"].clone();
    assert_eq!(
        base_cfg["OnBuild"],
        serde_json::json!(["COPY . /app/", "RUN ls /app > /app/manifest.txt"])
    );
    assert!(b.image_path("onbuild-base", "/app/manifest.txt").is_none());
    b.build(&[
        "-t",
        "onbuild-child",
        path_str(&testdata("build/onbuild/child")),
    ]);
    let manifest = b.image_file("onbuild-child", "/app/manifest.txt").unwrap();
    assert!(manifest.contains("hello.txt"), "{manifest}");
    assert!(
        !manifest.contains("ignored.txt"),
        ".dockerignore applies: {manifest}"
    );
    assert!(b.inspect("onbuild-child")["Config"]["OnBuild"].is_null());
    assert_eq!(b.run_image("onbuild-child"), manifest);
}
