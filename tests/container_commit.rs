//! `rbuild commit`, `export`, `cp`, `diff` and the in-use rules of `rmi`/`image prune`,
//! through the real binary on the real kernel (needs root, as CI).
//!
//! Each test imports the busybox rootfs (tests/common) into its own store root as `bb`.

mod common;

use common::{wait_for, TestEnv};

/// A store with `bb` and a stopped container `c1` that wrote `/hello`, deleted `/bin/ls`,
/// and replaced `/tmp` with a new directory holding `y` (an opaque directory).
fn env_with_changed_container() -> TestEnv {
    let env = TestEnv::with_base("bb");
    env.import_base_with("bbenv", &["ENV FROM_IMAGE=img", "CMD [\"sh\"]"]);
    env.ok(&[
        "run",
        "--name",
        "c1",
        "-e",
        "FOO=bar",
        "-w",
        "/etc",
        "bbenv",
        "sh",
        "-c",
        "echo hi > /hello; rm /bin/ls; mkdir -p /etc/x; touch /tmp/old; rm -rf /tmp; mkdir /tmp; touch /tmp/y",
    ]);
    env
}

#[test]
fn commit_keeps_changes_deletions_and_container_settings() {
    let env = env_with_changed_container();
    let id = env
        .ok(&[
            "commit",
            "-a",
            "Ann <ann@example.com>",
            "-m",
            "first commit",
            "-c",
            "CMD [\"cat\", \"/hello\"]",
            "-c",
            "ENV A=$FOO",
            "c1",
            "img1:v1",
        ])
        .trim()
        .to_string();
    assert!(
        id.starts_with("sha256:") && id.len() == 71,
        "prints the image ID: {id}"
    );
    // `-c CMD` applied: the committed image runs it and sees the new file.
    assert_eq!(env.ok(&["run", "--rm", "img1:v1"]), "hi\n");
    // The deletion, the opaque dir, the container's -e and -w, and `-c ENV` (expanded with
    // the container's variables) are in the image.
    let out = env.ok(&[
        "run",
        "--rm",
        "img1:v1",
        "sh",
        "-c",
        "test -e /bin/ls && echo ls-present; ls /tmp; pwd; echo $FOO $A $FROM_IMAGE; ls -d /etc/x",
    ]);
    assert_eq!(out, "y\n/etc\nbar bar img\n/etc/x\n");
    let inspect = env.inspect("img1:v1");
    assert_eq!(inspect["Author"], "Ann <ann@example.com>");
    assert_eq!(inspect["RootFS"]["Layers"].as_array().unwrap().len(), 2);
    let history = env.ok(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.CreatedBy}}|{{.Comment}}",
        "img1:v1",
    ]);
    let top = history.lines().next().unwrap();
    assert!(
        top.starts_with("sh -c echo hi > /hello;") && top.ends_with("|first commit"),
        "{history}"
    );
}

#[test]
fn commit_of_an_unchanged_container_adds_no_layer() {
    let env = TestEnv::with_base("bb");
    env.ok(&["run", "--name", "same", "bb", "true"]);
    env.ok(&["commit", "same", "same-img"]);
    assert_eq!(
        env.inspect("same-img")["RootFS"]["Layers"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // CMD comes from the container's command line, as docker's commit.
    let cmd = &env.inspect("same-img")["Config"]["Cmd"];
    assert_eq!(cmd, &serde_json::json!(["true"]));
}

#[test]
fn commit_refuses_a_bad_change_and_an_unknown_container() {
    let env = env_with_changed_container();
    let err = env.fails(&["commit", "-c", "EXPOSE 99999", "c1", "x"]);
    assert!(err.contains("99999"), "{err}");
    let err = env.fails(&["commit", "nosuch", "x"]);
    assert!(err.contains("No such container"), "{err}");
    assert!(!env.ok(&["images"]).contains("\nx "));
}

#[test]
fn export_then_import_runs_with_the_container_changes() {
    let env = env_with_changed_container();
    let tar = env.path().join("c1.tar");
    env.ok(&["export", "-o", tar.to_str().unwrap(), "c1"]);
    env.ok(&["import", tar.to_str().unwrap(), "exported"]);
    let out = env.ok(&[
        "run",
        "--rm",
        "exported",
        "sh",
        "-c",
        "cat /hello; test -e /bin/ls || echo no-ls; ls /tmp",
    ]);
    assert_eq!(out, "hi\nno-ls\ny\n");
    // To stdout (a pipe here), the same bytes: the entries are sorted, the writer is the
    // layer writer.
    let piped = env.run(&["export", "c1"]);
    assert!(piped.status.success(), "{}", common::stderr(&piped));
    assert_eq!(piped.stdout, std::fs::read(&tar).unwrap());
    let names = tar_names(&piped.stdout);
    assert!(names.contains(&"hello".to_string()) && !names.contains(&"bin/ls".to_string()));
    assert!(
        !names.contains(&"tmp/old".to_string()),
        "the opaque dir hides the old /tmp"
    );
}

/// The entry names of a tar.
fn tar_names(bytes: &[u8]) -> Vec<String> {
    let mut archive = tar::Archive::new(bytes);
    archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn diff_lists_added_changed_and_deleted_paths_in_order() {
    let env = env_with_changed_container();
    let out = env.ok(&["diff", "c1"]);
    assert_eq!(
        out,
        "C /bin\nD /bin/ls\nC /etc\nA /etc/x\nA /hello\nC /tmp\nA /tmp/y\n"
    );
    // A container that changed nothing shows nothing (not the /etc its mount points passed
    // through).
    env.ok(&["run", "--name", "quiet", "bb", "cat", "/etc/passwd"]);
    assert_eq!(env.ok(&["diff", "quiet"]), "");
}

fn owner(path: &std::path::Path) -> (u32, u32) {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(path).unwrap();
    (m.uid(), m.gid())
}

#[test]
fn cp_both_ways_with_docker_path_rules_and_ownership() {
    let env = env_with_changed_container();
    let host = env.path().join("host");
    std::fs::create_dir_all(host.join("dir/sub")).unwrap();
    std::fs::write(host.join("dir/sub/f"), "deep\n").unwrap();
    std::fs::write(host.join("file"), "from host\n").unwrap();
    std::os::unix::fs::chown(host.join("file"), Some(1234), Some(4321)).unwrap();
    let h = |rel: &str| host.join(rel).to_str().unwrap().to_string();

    // Into the (stopped) container: into an existing dir, to a new name, a dir, a dir's
    // contents; without -a owned by root, with -a the host's owners.
    env.ok(&["cp", &h("file"), "c1:/tmp"]);
    env.ok(&["cp", &h("file"), "c1:/renamed"]);
    env.ok(&["cp", "-a", &h("file"), "c1:/kept"]);
    env.ok(&["cp", &h("dir"), "c1:/etc"]);
    env.ok(&["cp", &h("dir/."), "c1:/contents"]);
    let err = env.fails(&["cp", &h("file"), "c1:/missing/"]);
    assert!(err.contains("no such directory"), "{err}");
    let err = env.fails(&["cp", &h("dir"), "c1:/hello"]);
    assert!(err.contains("cannot overwrite non-directory"), "{err}");
    env.ok(&["commit", "c1", "copied"]);
    let out = env.ok(&[
        "run",
        "--rm",
        "copied",
        "sh",
        "-c",
        "cat /tmp/file /renamed /etc/dir/sub/f /contents/sub/f; stat -c '%u:%g' /renamed /kept",
    ]);
    assert_eq!(out, "from host\nfrom host\ndeep\ndeep\n0:0\n1234:4321\n");

    // Out of it: a file into a dir, a dir to a new name, a dir's contents, a tar stream;
    // without -a owned by the caller, with -a the container's owners.
    let out_dir = env.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let o = |rel: &str| out_dir.join(rel).to_str().unwrap().to_string();
    env.ok(&["cp", "c1:/kept", &o("")]);
    assert_eq!(owner(&out_dir.join("kept")), (0, 0));
    env.ok(&["cp", "-a", "c1:/kept", &o("kept-a")]);
    assert_eq!(owner(&out_dir.join("kept-a")), (1234, 4321));
    env.ok(&["cp", "c1:/etc/dir", &o("d2")]);
    assert_eq!(
        std::fs::read_to_string(out_dir.join("d2/sub/f")).unwrap(),
        "deep\n"
    );
    env.ok(&["cp", "c1:/tmp/.", &o("tmpcontents")]);
    assert!(out_dir.join("tmpcontents/y").exists() && out_dir.join("tmpcontents/file").exists());
    let tar = env.run(&["cp", "c1:/etc/dir", "-"]);
    assert!(tar.status.success(), "{}", common::stderr(&tar));
    assert_eq!(tar_names(&tar.stdout), ["dir/", "dir/sub/", "dir/sub/f"]);
    let err = env.fails(&["cp", "c1:/nope", &o("")]);
    assert!(
        err.contains("Could not find the file /nope in container c1"),
        "{err}"
    );

    // A tar on stdin into a directory of the container.
    let input = env.run_with_stdin(&["cp", "-", "c1:/etc"], &tar.stdout);
    assert!(input.status.success(), "{}", common::stderr(&input));
}

/// A container's symlinks are resolved inside its root, both ways: an absolute link naming
/// a host directory and a relative one climbing out lead to the container's own paths.
#[test]
fn cp_never_follows_a_container_symlink_out_of_its_root() {
    let env = TestEnv::with_base("bb");
    let host = env.path().join("hostdir");
    std::fs::create_dir(&host).unwrap();
    std::fs::write(host.join("secret"), "host secret\n").unwrap();
    let script = format!(
        "mkdir -p {h}; echo inside > {h}/secret; ln -s {h} /abs; ln -s ../../../../../../../{h} /rel",
        h = host.display()
    );
    env.ok(&["run", "--name", "links", "bb", "sh", "-c", &script]);
    let out = env.path().join("out");
    std::fs::create_dir(&out).unwrap();
    // Reading through the links gets the container's file, not the host's.
    for link in ["/abs/secret", "/rel/secret"] {
        let dest = out.join("got");
        env.ok(&["cp", &format!("links:{link}"), dest.to_str().unwrap()]);
        assert_eq!(
            std::fs::read_to_string(&dest).unwrap(),
            "inside\n",
            "{link}"
        );
        std::fs::remove_file(&dest).unwrap();
    }
    // Writing through them lands in the container.
    let payload = env.path().join("payload");
    std::fs::write(&payload, "written\n").unwrap();
    env.ok(&["cp", payload.to_str().unwrap(), "links:/abs/"]);
    env.ok(&["cp", payload.to_str().unwrap(), "links:/rel/p2"]);
    assert!(!host.join("payload").exists() && !host.join("p2").exists());
    assert_eq!(
        std::fs::read_to_string(host.join("secret")).unwrap(),
        "host secret\n"
    );
    // The link itself is copied as a link (not followed) unless -L.
    env.ok(&["cp", "links:/abs", out.join("link").to_str().unwrap()]);
    assert_eq!(std::fs::read_link(out.join("link")).unwrap(), host);
    env.ok(&[
        "cp",
        "-L",
        "links:/abs",
        out.join("followed").to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read_to_string(out.join("followed/secret")).unwrap(),
        "inside\n"
    );
    env.ok(&["commit", "links", "linked"]);
    let seen = env.ok(&[
        "run",
        "--rm",
        "linked",
        "cat",
        &format!("{}/payload", host.display()),
        &format!("{}/p2", host.display()),
    ]);
    assert_eq!(seen, "written\nwritten\n");
}

/// A running container is read and written through its own mounted root: it sees a file
/// copied in while it runs, and a file it wrote can be copied out.
#[test]
fn cp_into_and_out_of_a_running_container() {
    let env = TestEnv::with_base("bb");
    let shared = env.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    let volume = format!("{}:/out", shared.display());
    let child = env
        .cmd()
        .args([
            "run",
            "--name",
            "live",
            "-v",
            &volume,
            "bb",
            "sh",
            "-c",
            "echo made-inside > /inside; touch /out/ready; \
             while [ ! -e /in/go ]; do sleep 0.05; done; cat /in/go > /out/seen",
        ])
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for(&shared.join("ready"));
    env.wait_running("live");
    let out = env.path().join("inside");
    env.ok(&["cp", "live:/inside", out.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "made-inside\n");
    let go = env.path().join("go");
    std::fs::write(&go, "go!\n").unwrap();
    std::fs::create_dir(env.path().join("in")).unwrap();
    env.ok(&["cp", env.path().join("in").to_str().unwrap(), "live:/"]);
    env.ok(&["cp", go.to_str().unwrap(), "live:/in/go"]);
    let status = child.wait_with_output().unwrap();
    assert!(status.status.success());
    assert_eq!(
        std::fs::read_to_string(shared.join("seen")).unwrap(),
        "go!\n"
    );
}

/// `rmi` of an image a container uses is refused without `-f` (docker's messages naming the
/// container), by ID even with `-f` while the container runs; `image prune` (also `-a`)
/// keeps images containers use, a committed dangling one included.
#[test]
fn images_in_use_by_containers_survive_rmi_and_prune() {
    let env = TestEnv::with_base("bb");
    // A dangling image (committed without a name) used by a stopped container.
    env.ok(&["run", "--name", "maker", "bb", "touch", "/made"]);
    let dangling = env.ok(&["commit", "maker"]).trim().to_string();
    env.ok(&["run", "--name", "user", &dangling, "true"]);
    let user_id = short_id(&env, "user");
    let short = &dangling["sha256:".len().."sha256:".len() + 12];
    let err = env.fails(&["rmi", short]);
    assert!(
        err.contains(&format!(
            "unable to delete {short} (must be forced) - image is being used by stopped container {user_id}"
        )),
        "{err}"
    );
    env.ok(&["image", "prune", "-f"]);
    env.ok(&["image", "prune", "-a", "-f"]);
    let images = env.ok(&["images", "-q", "-a"]);
    assert!(
        images.contains(short),
        "prune kept the used dangling image: {images}"
    );
    assert!(
        env.ok(&["images"]).contains("bb "),
        "prune -a kept bb, used by maker"
    );

    // A running container's image: by tag refused without -f; by ID refused even with -f.
    let shared = env.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    env.ok(&["tag", "bb", "busy"]);
    env.ok(&["rmi", "bb"]); // one of two tags: only untagged
    let volume = format!("{}:/out", shared.display());
    let mut child = env
        .cmd()
        .args([
            "run",
            "--name",
            "running",
            "-v",
            &volume,
            "busy",
            "sh",
            "-c",
            "touch /out/ready; while [ ! -e /out/stop ]; do sleep 0.05; done",
        ])
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for(&shared.join("ready"));
    let running_id = short_id(&env, "running");
    let err = env.fails(&["rmi", "busy"]);
    assert!(
        err.contains(&format!(
            "unable to remove repository reference \"busy\" (must force) - container {running_id} is using its referenced image"
        )),
        "{err}"
    );
    let busy_id = env.ok(&["images", "-q", "busy"]).trim().to_string();
    let err = env.fails(&["rmi", "-f", &busy_id]);
    assert!(
        err.contains(&format!(
            "unable to delete {busy_id} (cannot be forced) - image is being used by running container"
        )),
        "{err}"
    );
    std::fs::write(shared.join("stop"), "").unwrap();
    assert!(child.wait().unwrap().success());
    // Forced by its tag while a stopped container uses it: only untagged, as docker.
    env.ok(&["rmi", "-f", "busy"]);
    assert!(env.ok(&["images", "-q", "-a"]).contains(&busy_id));
}

/// The short ID of the container named `name`, from `ps -a`.
fn short_id(env: &TestEnv, name: &str) -> String {
    let ps = env.ok(&["ps", "-a"]);
    let row = ps
        .lines()
        .find(|l| l.split_whitespace().last() == Some(name))
        .unwrap_or_else(|| panic!("no container {name}: {ps}"));
    row.split_whitespace().next().unwrap().to_string()
}

/// `rbuild export c1 | head -c 1` ended with `error: writing layer tar: Broken pipe`: a
/// reader that stops early is not an error (as for `save`).
#[test]
fn bug_export_into_a_closed_pipe_printed_an_error() {
    use std::io::Read;
    let env = env_with_changed_container();
    let mut child = env
        .cmd()
        .args(["export", "c1"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 1];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert_eq!(common::stderr(&out), "");
}
