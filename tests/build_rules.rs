//! `rbuild build` rules: ARG/ENV scoping, image config, COPY/ADD, RUN, errors, output flags.

mod build_support;

use build_support::{assert_failure, ok_cmd, path_str, BuildEnv};
use serde_json::json;

#[test]
fn arg_and_env_scoping() {
    let b = BuildEnv::new();
    let ctx = b.context(
        "args",
        &[(
            "Dockerfile",
            r#"ARG BASE=busybox
ARG GLOBAL=global-default
FROM ${BASE}:latest
RUN echo "global-before=[$GLOBAL]" > /scope.txt
ARG GLOBAL
ARG FROMCLI
ARG DEF=default
ENV SHADOW=env-value
ARG SHADOW=arg-value
ARG TARGETARCH
RUN echo "global=[$GLOBAL] cli=[$FROMCLI] def=[$DEF] shadow=[$SHADOW] arch=[$TARGETARCH] proxy=[$HTTP_PROXY]" >> /scope.txt
ENV FROM_ARG=$DEF
WORKDIR /w/$DEF
"#,
        )],
    );
    let progress = b.build(&[
        "-t",
        "args",
        "--build-arg",
        "FROMCLI=cli-value",
        "--build-arg",
        "UNUSED=1",
        "--build-arg",
        "HTTP_PROXY=http://proxy.invalid:3128",
        path_str(&ctx),
    ]);
    assert!(
        progress.contains("[Warning] One or more build-args [UNUSED] were not consumed"),
        "{progress}"
    );
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    assert_eq!(
        b.image_file("args", "/scope.txt").unwrap(),
        format!("global-before=[]\nglobal=[global-default] cli=[cli-value] def=[default] shadow=[env-value] arch=[{arch}] proxy=[http://proxy.invalid:3128]\n")
    );
    let v = b.inspect("args");
    let env = v["Config"]["Env"].to_string();
    assert!(
        env.contains("FROM_ARG=default") && env.contains("SHADOW=env-value"),
        "{env}"
    );
    for leaked in ["GLOBAL", "FROMCLI", "DEF=", "HTTP_PROXY", "TARGETARCH"] {
        assert!(!env.contains(leaked), "{leaked} leaked into Env: {env}");
    }
    assert_eq!(v["Config"]["WorkingDir"], "/w/default");
    let history = v["History"].to_string();
    assert!(
        !history.contains("proxy.invalid"),
        "proxy args stay out of history"
    );
    assert!(
        history.contains("RUN |4 GLOBAL=global-default FROMCLI=cli-value DEF=default TARGETARCH="),
        "{history}"
    );
}

#[test]
fn image_config_like_docker() {
    let b = BuildEnv::new();
    let ctx = b.context(
        "config",
        &[(
            "Dockerfile",
            r#"FROM busybox
ARG PORT=8080
LABEL org.example.name="an app" version=1
EXPOSE $PORT 53/udp
VOLUME /data /cache
USER app:staff
STOPSIGNAL SIGINT
HEALTHCHECK --interval=5s --retries=3 CMD wget -q localhost || exit 1
ONBUILD RUN echo triggered
CMD echo shell form
SHELL ["/bin/sh", "-ec"]
ENTRYPOINT exec top
"#,
        )],
    );
    b.build(&["-t", "cfg", "--label", "from.cli=yes", path_str(&ctx)]);
    let v = b.inspect("cfg");
    let c = &v["Config"];
    assert_eq!(
        c["Labels"],
        json!({"org.example.name": "an app", "version": "1", "from.cli": "yes"})
    );
    assert_eq!(c["ExposedPorts"], json!({"8080/tcp": {}, "53/udp": {}}));
    assert_eq!(c["Volumes"], json!({"/data": {}, "/cache": {}}));
    assert_eq!(c["User"], "app:staff");
    assert_eq!(c["StopSignal"], "SIGINT");
    assert_eq!(
        c["Healthcheck"],
        json!({"Test": ["CMD-SHELL", "wget -q localhost || exit 1"], "Interval": 5_000_000_000u64, "Retries": 3})
    );
    assert_eq!(c["OnBuild"], json!(["RUN echo triggered"]));
    assert_eq!(c["Shell"], json!(["/bin/sh", "-ec"]));
    // Shell form is wrapped in the SHELL in force; a CMD set before ENTRYPOINT in the same
    // stage stays.
    assert_eq!(c["Cmd"], json!(["/bin/sh", "-c", "echo shell form"]));
    assert_eq!(c["Entrypoint"], json!(["/bin/sh", "-ec", "exec top"]));
    let history = v["History"].as_array().unwrap();
    let built: Vec<_> = history
        .iter()
        .filter(|h| h["comment"] == "buildkit.dockerfile.v0")
        .collect();
    assert_eq!(built.len(), 11);
    assert!(built.iter().all(|h| h["empty_layer"] == true));
    assert_eq!(built[0]["created_by"], "ARG PORT=8080");
    // ENTRYPOINT in a child resets the inherited CMD, as docker does.
    let child = b.context(
        "child",
        &[("Dockerfile", "FROM cfg\nENTRYPOINT [\"top\"]\n")],
    );
    b.build(&["-t", "cfg-child", path_str(&child)]);
    let c = b.inspect("cfg-child")["Config"].clone();
    assert!(c["Cmd"].is_null(), "{c}");
    assert_eq!(c["Entrypoint"], json!(["top"]));
}

const COPY_DOCKERFILE: &str = r#"FROM busybox
COPY *.txt /multi/
COPY a.txt /renamed
COPY a.txt /deep/new/parents/
COPY dir /flat
COPY --exclude=*.log dir /excluded/
COPY --chown=app --chmod=640 a.txt b.txt /owned/
COPY --chown=1234:staff c.md /numeric
COPY --parents dir/sub/two /p/
ADD archive.tar.gz /unpacked/
ADD plain.tar /plain/
COPY <<EOF /etc/heredoc.conf
name=$UNSET_VAR
EOF
COPY --link dir/one /linked
RUN mkdir -p /existing
COPY a.txt /existing
"#;

#[test]
fn copy_and_add_rules() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let b = BuildEnv::new();
    let ctx = b.context(
        "copy",
        &[
            ("a.txt", "a\n"),
            ("b.txt", "b\n"),
            ("c.md", "c\n"),
            ("dir/one", "1\n"),
            ("dir/sub/two", "2\n"),
            ("dir/skip.log", "log\n"),
            ("secret.key", "nope\n"),
            (".dockerignore", "*.key\n"),
            ("Dockerfile", COPY_DOCKERFILE),
        ],
    );
    // A symlink inside a copied directory stays a symlink.
    std::os::unix::fs::symlink("one", ctx.join("dir/link")).unwrap();
    let old = filetime::FileTime::from_unix_time(1_000_000_000, 0);
    filetime::set_file_mtime(ctx.join("a.txt"), old).unwrap();
    std::fs::set_permissions(ctx.join("b.txt"), std::fs::Permissions::from_mode(0o604)).unwrap();
    // Archives for ADD.
    let src = b.context("archive-src", &[("inside/file.txt", "from the archive\n")]);
    for (flags, name) in [("-czf", "archive.tar.gz"), ("-cf", "plain.tar")] {
        let st = std::process::Command::new("tar")
            .args([
                flags,
                path_str(&ctx.join(name)),
                "-C",
                path_str(&src),
                "inside",
            ])
            .status()
            .unwrap();
        assert!(st.success());
    }

    b.build(&["-t", "copy", path_str(&ctx)]);
    let f = |p: &str| b.image_file("copy", p);
    assert_eq!(f("/multi/a.txt").unwrap(), "a\n");
    assert_eq!(f("/multi/b.txt").unwrap(), "b\n");
    assert_eq!(f("/renamed").unwrap(), "a\n");
    assert_eq!(f("/deep/new/parents/a.txt").unwrap(), "a\n");
    assert_eq!(f("/flat/one").unwrap(), "1\n");
    assert_eq!(f("/flat/sub/two").unwrap(), "2\n");
    assert!(f("/flat/skip.log").is_some());
    assert!(f("/excluded/one").is_some());
    assert!(f("/excluded/skip.log").is_none(), "--exclude");
    assert_eq!(
        f("/p/dir/sub/two").unwrap(),
        "2\n",
        "--parents keeps the path"
    );
    assert_eq!(
        f("/unpacked/inside/file.txt").unwrap(),
        "from the archive\n"
    );
    assert_eq!(f("/plain/inside/file.txt").unwrap(), "from the archive\n");
    assert_eq!(f("/etc/heredoc.conf").unwrap(), "name=\n");
    assert_eq!(f("/linked").unwrap(), "1\n");
    assert_eq!(
        f("/existing/a.txt").unwrap(),
        "a\n",
        "an existing dir is a directory destination"
    );
    assert!(b.image_path("copy", "/secret.key").is_none());
    assert!(b.image_path("copy", "/multi/secret.key").is_none());

    let md = |p: &str| std::fs::symlink_metadata(b.image_path("copy", p).unwrap()).unwrap();
    assert!(md("/flat/link").file_type().is_symlink());
    assert_eq!(
        std::fs::read_link(b.image_path("copy", "/flat/link").unwrap()).unwrap(),
        std::path::Path::new("one")
    );
    assert_eq!(md("/renamed").mtime(), 1_000_000_000, "mtime kept");
    assert_eq!(md("/multi/b.txt").mode() & 0o7777, 0o604, "mode kept");
    assert_eq!((md("/multi/a.txt").uid(), md("/multi/a.txt").gid()), (0, 0));
    let owned = md("/owned/a.txt");
    assert_eq!(
        (owned.uid(), owned.gid(), owned.mode() & 0o7777),
        (1000, 1000, 0o640)
    );
    let numeric = md("/numeric");
    assert_eq!((numeric.uid(), numeric.gid()), (1234, 50));
    assert_eq!(md("/deep/new").mode() & 0o7777, 0o755);
}

/// Regression (issue 11): `USER u` then `WORKDIR /home/u/w` made the directory as root, so
/// `RUN touch x` failed with `Permission denied`; BuildKit creates it owned by the user.
#[test]
fn workdir_after_user_belongs_to_the_user() {
    let b = BuildEnv::new();
    let ctx = b.context(
        "wduser",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN echo u:x:1000:1000::/home/u:/bin/sh >> /etc/passwd && echo u:x:1000: >> /etc/group && mkdir -p /home/u && chown 1000:1000 /home/u\nUSER u\nWORKDIR /home/u/w/deep\n\
             RUN touch x && stat -c '%u:%g %n' /home/u/w /home/u/w/deep /home/u > /home/u/w/deep/owners\n\
             USER root\nWORKDIR /rootdir\nRUN stat -c '%u:%g' /rootdir > /rootdir/owner\n",
        )],
    );
    b.build(&["-t", "wduser", path_str(&ctx)]);
    assert!(b.image_path("wduser", "/home/u/w/deep/x").is_some());
    let owners = b.image_file("wduser", "/home/u/w/deep/owners").unwrap();
    for line in owners.lines() {
        assert!(
            line.starts_with("1000:"),
            "every dir on the path is the user's: {owners}"
        );
    }
    assert_eq!(b.image_file("wduser", "/rootdir/owner").unwrap(), "0:0\n");
}

/// Regression (issue 11): `COPY --from=x /a/[ab].txt` matched `[ab]` literally; it follows the
/// same pattern rules as a COPY from the context (Go's filepath.Match: classes, ranges, `^`).
#[test]
fn copy_from_a_stage_matches_character_classes() {
    let b = BuildEnv::new();
    let ctx = b.context(
        "classes",
        &[(
            "Dockerfile",
            "FROM busybox AS x\nRUN mkdir /a && for f in a b c; do echo $f > /a/$f.txt; done\n\
             FROM busybox\nCOPY --from=x /a/[ab].txt /out/\nCOPY --from=x /a/[^a-b].txt /not/\n",
        )],
    );
    b.build(&["-t", "classes", path_str(&ctx)]);
    assert_eq!(
        b.image_file("classes", "/out/a.txt").as_deref(),
        Some("a\n")
    );
    assert_eq!(
        b.image_file("classes", "/out/b.txt").as_deref(),
        Some("b\n")
    );
    assert!(b.image_path("classes", "/out/c.txt").is_none());
    assert_eq!(
        b.image_file("classes", "/not/c.txt").as_deref(),
        Some("c\n")
    );
    assert!(b.image_path("classes", "/not/a.txt").is_none());
}

#[test]
fn copy_from_stage_index_and_image() {
    let b = BuildEnv::new();
    let first = "FROM busybox AS first\nRUN mkdir -p /out/d && echo made > /out/d/f && ln -s f /out/d/l && rm /etc/issue\n";
    let ctx = b.context(
        "from",
        &[(
            "Dockerfile",
            &format!("{first}FROM scratch\nCOPY --from=first /etc/issu* /none/\n"),
        )],
    );
    let err = b.build_fails(&[path_str(&ctx)]);
    assert!(
        err.contains("/etc/issu*"),
        "a file deleted in the stage is gone: {err}"
    );
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("{first}FROM scratch\nCOPY --from=0 /out/ /copied/\nCOPY --from=busybox:latest /etc/passwd /etc/\n"),
    )
    .unwrap();
    b.build(&["-t", "from", path_str(&ctx)]);
    assert_eq!(b.image_file("from", "/copied/d/f").unwrap(), "made\n");
    assert!(
        std::fs::symlink_metadata(b.image_path("from", "/copied/d/l").unwrap())
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(b
        .image_file("from", "/etc/passwd")
        .unwrap()
        .contains("app:x:1000"));
}

const RUN_DOCKERFILE: &str = r#"FROM busybox
ENV GREETING=hi
RUN ["/bin/sh", "-c", "echo exec-form $GREETING > /exec.txt"]
RUN <<EOF
echo "line one" > /heredoc.txt
echo "line two" >> /heredoc.txt
EOF
RUN cat > /cat.txt <<EOT
from a heredoc
EOT
USER app
WORKDIR /home/app
RUN id -u > uid.txt && pwd > pwd.txt && echo "$HOME" > home.txt
USER root
RUN ip -o link | awk -F': ' '{print $2}' > /links.txt
RUN true
"#;

#[test]
fn run_forms_user_env_and_network() {
    let b = BuildEnv::new();
    let ctx = b.context("run", &[("Dockerfile", RUN_DOCKERFILE)]);
    b.build(&["-t", "run", path_str(&ctx)]);
    let f = |p: &str| b.image_file("run", p).unwrap();
    assert_eq!(f("/exec.txt"), "exec-form hi\n");
    assert_eq!(f("/heredoc.txt"), "line one\nline two\n");
    assert_eq!(f("/cat.txt"), "from a heredoc\n");
    assert_eq!(f("/home/app/uid.txt"), "1000\n");
    assert_eq!(f("/home/app/pwd.txt"), "/home/app\n");
    assert_eq!(f("/home/app/home.txt"), "/home/app\n");
    // The default network (as root, as these tests run): loopback and the bridge's veth.
    let links = f("/links.txt");
    let links: Vec<&str> = links.lines().collect();
    assert_eq!(links[0], "lo", "{links:?}");
    assert!(links[1].starts_with("eth0@"), "{links:?}");
    assert_eq!(links.len(), 2, "{links:?}");
    // `RUN true` changes nothing: as docker, it still adds a layer, the empty tar.
    let v = b.inspect("run");
    let history = v["History"].as_array().unwrap();
    let last_run = history
        .iter()
        .rev()
        .find(|h| h["created_by"].as_str().unwrap_or("").starts_with("RUN"))
        .unwrap();
    assert_eq!(last_run["created_by"], "RUN /bin/sh -c true # buildkit");
    assert!(last_run["empty_layer"].is_null());
    let layers = v["RootFS"]["Layers"].as_array().unwrap();
    assert_eq!(
        layers.last().unwrap(),
        "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"
    );
    let non_empty = history.iter().filter(|h| h["empty_layer"] != true).count();
    assert_eq!(layers.len(), non_empty);
    // --network host runs in the host's network namespace (compared by namespace, not by
    // counting links: parallel tests add and remove veths on the host meanwhile).
    let ctx2 = b.context(
        "net",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN readlink /proc/self/ns/net > /n.txt\n",
        )],
    );
    b.build(&["-t", "net", "--network", "host", path_str(&ctx2)]);
    let host_netns = std::fs::read_link("/proc/self/ns/net").unwrap();
    assert_eq!(
        b.image_file("net", "/n.txt").unwrap().trim(),
        host_netns.to_string_lossy()
    );
}

#[test]
fn errors_name_the_line_and_tag_nothing() {
    let b = BuildEnv::new();
    let ctx = b.context(
        "fail",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN echo ok\nRUN echo before-failure; echo to-stderr >&2; exit 7\nRUN echo never\n",
        )],
    );
    let err = b.build_fails(&["-t", "failed:v1", path_str(&ctx)]);
    assert!(
        err.contains("Dockerfile:3: RUN echo before-failure; echo to-stderr >&2; exit 7"),
        "{err}"
    );
    assert!(err.contains("exit code: 7"), "{err}");
    assert!(err.contains("to-stderr"), "output tail: {err}");
    assert!(!err.contains("never"), "{err}");
    let images = b.env.ok(&["images"]);
    assert!(!images.contains("failed"), "{images}");

    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nCOPY nope/missing.txt /\n",
    )
    .unwrap();
    let err = b.build_fails(&[path_str(&ctx)]);
    assert!(
        err.contains("Dockerfile:2")
            && err.contains("\"nope/missing.txt\": not found in the build context"),
        "{err}"
    );

    std::fs::write(ctx.join("Dockerfile"), "FROM busybox\nCOPY ../outside /\n").unwrap();
    let err = b.build_fails(&[path_str(&ctx)]);
    assert!(err.contains("outside the build context"), "{err}");

    let err = b.build_fails(&["--platform", "linux/s390x", path_str(&ctx)]);
    assert!(
        err.contains("building for linux/s390x on linux/") && err.contains("is not supported yet"),
        "{err}"
    );

    std::fs::write(ctx.join("Dockerfile"), "FROM busybox\nRUNN echo hi\n").unwrap();
    let err = b.build_fails(&[path_str(&ctx)]);
    assert!(
        err.contains("Dockerfile:2:1: unknown instruction: RUNN (did you mean RUN?)"),
        "{err}"
    );
    assert_eq!(err.matches("unknown instruction").count(), 1, "{err}");

    std::fs::write(ctx.join("Dockerfile"), "FROM not-in-store:1.0\n").unwrap();
    // Not in the store: rbuild pulls it from docker.io, here in a network namespace of its
    // own (loopback only, down), so nothing is looked up outside this machine.
    let out = b
        .env
        .cmd_under("unshare", ["--net"])
        .args(["build", path_str(&ctx)])
        .output()
        .unwrap();
    let err = assert_failure("build FROM not-in-store:1.0", &out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("not-in-store:1.0: image not found in the local store"),
        "{err}"
    );

    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox AS one\nFROM busybox AS two\n",
    )
    .unwrap();
    let err = b.build_fails(&["--target", "three", path_str(&ctx)]);
    assert!(
        err.contains("target stage \"three\" could not be found; stages: one, two"),
        "{err}"
    );
}

#[test]
fn quiet_iidfile_and_tags() {
    let b = BuildEnv::new();
    let ctx = b.context("q", &[("Dockerfile", "FROM busybox\nRUN echo quiet-run\n")]);
    let iid = b.env.path().join("iid");
    let out = b.build_out(&[
        "-q",
        "-t",
        "q:1",
        "-t",
        "q:2",
        "--iidfile",
        path_str(&iid),
        path_str(&ctx),
    ]);
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = stdout.trim();
    assert_eq!(std::fs::read_to_string(&iid).unwrap(), id);
    assert_eq!(b.inspect("q:1")["Id"], id);
    assert_eq!(b.inspect("q:2")["Id"], id);
    // Plain progress: steps, their output, and the export lines last.
    let progress = b.build(&["--no-cache", "-t", "q:3", path_str(&ctx)]);
    assert!(
        progress.contains("[stage-0 2/2] RUN echo quiet-run"),
        "{progress}"
    );
    assert!(
        progress
            .lines()
            .any(|l| l.starts_with('#') && l.ends_with(" quiet-run")),
        "{progress}"
    );
    // The live display: finished steps as `=> ...` lines, redrawn with ANSI sequences.
    let out = b
        .env
        .cmd()
        .args(["build", "--progress=tty", "--no-cache", path_str(&ctx)])
        .output()
        .unwrap();
    assert!(out.status.success());
    let tty = build_support::stderr(&out);
    assert!(tty.contains("=> [stage-0 2/2] RUN echo quiet-run"), "{tty}");
    assert!(tty.contains("=> => writing image sha256:"), "{tty}");
    assert!(tty.contains("\x1b[J"), "{tty}");
    let tail: Vec<&str> = progress.lines().rev().take(3).collect();
    assert!(tail[0].contains(" DONE "), "{progress}");
    assert!(
        tail[1].contains("naming to docker.io/library/q:3"),
        "{progress}"
    );
    assert!(tail[2].contains("writing image sha256:"), "{progress}");
}

const MOUNTS_DOCKERFILE: &str = r#"FROM busybox AS other
RUN echo from-other > /o.txt
FROM busybox
RUN --mount=type=cache,id=counter,target=/cache echo ran >> /cache/count
RUN --mount=type=bind,target=/ctx ls -a /ctx > /ctx-list && cat /ctx/c.txt > /ctx-c
RUN --mount=type=bind,target=/ctx,rw touch /ctx/written
RUN --mount=type=bind,from=other,source=/o.txt,target=/mnt/o.txt cat /mnt/o.txt > /from-other
RUN --mount=type=secret,id=tok wc -c < /run/secrets/tok > /secret-len
RUN --mount=type=secret,id=tok,env=TOK echo "$TOK" | wc -c > /env-len
RUN --mount=type=tmpfs,target=/scratch touch /scratch/gone
"#;

#[test]
fn run_mounts_cache_bind_secret_tmpfs() {
    let b = BuildEnv::new();
    let ctx = b.context(
        "mounts",
        &[
            ("c.txt", "ctx file\n"),
            ("ignored.txt", "x\n"),
            (".dockerignore", "ignored.txt\n"),
            ("Dockerfile", MOUNTS_DOCKERFILE),
        ],
    );
    let secret = b.env.path().join("secret");
    std::fs::write(&secret, "s3cr3t").unwrap();
    let secret_arg = format!("id=tok,src={}", secret.display());
    b.build(&["-t", "m", "--secret", &secret_arg, path_str(&ctx)]);
    let f = |p: &str| b.image_file("m", p);
    let list = f("/ctx-list").unwrap();
    assert!(
        list.contains("c.txt") && !list.contains("ignored.txt"),
        "{list}"
    );
    assert_eq!(f("/ctx-c").unwrap(), "ctx file\n");
    assert!(
        !ctx.join("written").exists(),
        "rw bind writes are thrown away"
    );
    assert_eq!(f("/from-other").unwrap(), "from-other\n");
    assert_eq!(f("/secret-len").unwrap().trim(), "6");
    assert_eq!(f("/env-len").unwrap().trim(), "7");
    for gone in [
        "/run/secrets",
        "/run",
        "/scratch/gone",
        "/cache",
        "/ctx/c.txt",
    ] {
        assert!(b.image_path("m", gone).is_none(), "{gone} is in the image");
    }
    let history = b.inspect("m")["History"].to_string();
    assert!(!history.contains("s3cr3t"));
    // The cache mount persists in the store: a counter on the host shows each real run.
    let count = |b: &BuildEnv| {
        let dir = b.env.root().join("cache-mounts");
        let entry = std::fs::read_dir(&dir).unwrap().next().unwrap().unwrap();
        std::fs::read_to_string(entry.path().join("count")).unwrap()
    };
    assert_eq!(count(&b), "ran\n");
    b.build(&["--secret", &secret_arg, path_str(&ctx)]);
    assert_eq!(count(&b), "ran\n", "a cache hit runs nothing");
    b.build(&["--no-cache", "--secret", &secret_arg, path_str(&ctx)]);
    assert_eq!(count(&b), "ran\nran\n");
    // A required secret that is missing is an error.
    let err = b.build_fails(&["--no-cache", path_str(&ctx)]);
    assert!(
        err.contains("secret tok is required") || err.contains("wc -c"),
        "{err}"
    );
}

#[test]
fn context_from_tar_and_stdin_and_exporters() {
    let b = BuildEnv::new();
    let ctx = b.context(
        "tarctx",
        &[
            ("page.html", "<p>hi</p>\n"),
            ("Dockerfile", "FROM busybox\nCOPY page.html /www/\n"),
        ],
    );
    let dir_id = b.build_id(&[path_str(&ctx)]);
    let tgz = b.env.path().join("ctx.tar.gz");
    let st = std::process::Command::new("tar")
        .args(["-czf", path_str(&tgz), "-C", path_str(&ctx), "."])
        .status()
        .unwrap();
    assert!(st.success());
    // Same content, same cache keys: the same image from a tar file or from stdin.
    assert_eq!(b.build_id(&[path_str(&tgz)]), dir_id);
    let out = ok_cmd(
        b.env
            .cmd()
            .args(["build", "-q", "-"])
            .stdin(std::fs::File::open(&tgz).unwrap()),
    );
    assert_eq!(out.trim(), dir_id);
    // -f - reads the Dockerfile from stdin, the context stays the directory.
    let out = b.env.run_with_stdin(
        &["build", "-q", "-t", "dash-f", "-f", "-", path_str(&ctx)],
        b"FROM busybox\nCOPY page.html /from-dash-f.html\n",
    );
    assert!(out.status.success(), "{}", build_support::stderr(&out));
    assert_eq!(
        b.image_file("dash-f", "/from-dash-f.html").unwrap(),
        "<p>hi</p>\n"
    );
    // A Dockerfile on stdin, no context.
    let out = b.env.run_with_stdin(
        &["build", "-q", "-t", "stdin-df", "-"],
        b"FROM busybox\nRUN echo x > /x\n",
    );
    assert!(out.status.success(), "{}", build_support::stderr(&out));
    assert_eq!(b.image_file("stdin-df", "/x").unwrap(), "x\n");

    // Exporters: a local rootfs, a docker archive another store loads with the same ID, and
    // an OCI layout skopeo-style tools read.
    let local = b.env.path().join("rootfs");
    let archive = b.env.path().join("img.tar");
    let oci = b.env.path().join("oci");
    b.build(&[
        "-t",
        "exported:v1",
        "-o",
        path_str(&local),
        "-o",
        &format!("type=docker-archive,dest={}", archive.display()),
        "-o",
        &format!("type=oci-dir,dest={}", oci.display()),
        path_str(&ctx),
    ]);
    assert_eq!(
        std::fs::read_to_string(local.join("www/page.html")).unwrap(),
        "<p>hi</p>\n"
    );
    assert!(local.join("bin/busybox").is_file());
    let other = BuildEnv::new();
    other.env.ok(&["load", "-i", path_str(&archive)]);
    assert_eq!(other.inspect("exported:v1")["Id"], dir_id);
    assert!(oci.join("index.json").is_file() && oci.join("oci-layout").is_file());
}

#[test]
fn independent_stages_run_in_parallel() {
    let b = BuildEnv::new();
    // Each stage announces itself in a shared cache mount and waits (up to 20s) for the
    // other: this only succeeds when both RUNs are alive at the same time.
    let wait = |me: &str, other: &str| {
        format!(
            "RUN --mount=type=cache,id=sync,target=/sync touch /sync/{me} && \
             for i in $(seq 200); do [ -e /sync/{other} ] && echo {me} > /{me} && exit 0; sleep 0.1; done; exit 1"
        )
    };
    let dockerfile = format!(
        "FROM busybox AS a\n{}\nFROM busybox AS b\n{}\nFROM busybox\nCOPY --from=a /a /a\nCOPY --from=b /b /b\n",
        wait("a", "b"),
        wait("b", "a")
    );
    let ctx = b.context("parallel", &[("Dockerfile", &dockerfile)]);
    b.build(&["-t", "par", path_str(&ctx)]);
    assert_eq!(b.image_file("par", "/a").unwrap(), "a\n");
    assert_eq!(b.image_file("par", "/b").unwrap(), "b\n");
}

#[test]
fn run_steps_get_seccomp_own_keyring_and_pids_limit() {
    // The bugs: RUN steps ran without a seccomp filter, could read the host's keys and start
    // any number of processes.
    let b = BuildEnv::new();
    let ctx = b.context("hostsafety", &[]);
    let keyctl = build_support::keyctl_bundle(&ctx.join("k"), "/k").join(" ");
    let key = build_support::add_host_key("build");
    let (description, id) = (key.description.as_str(), key.id.as_str());
    let dockerfile = format!(
        "FROM busybox\n\
         RUN grep '^Seccomp:' /proc/self/status > /seccomp\n\
         RUN --mount=type=bind,source=k,target=/k {keyctl} request user {description} > /key 2>&1; \
             cat /proc/keys >> /key\n\
         RUN sh -c 'n=0; while [ $n -lt 2100 ]; do sleep 60 & n=$((n+1)); echo $n > /n; done'; true\n"
    );
    std::fs::write(ctx.join("Dockerfile"), dockerfile).unwrap();
    let out = b.build_out(&["-t", "safe", path_str(&ctx)]);
    assert!(out.status.success(), "{}", build_support::stderr(&out));
    let f = |p: &str| b.image_file("safe", p).unwrap();
    assert_eq!(f("/seccomp"), "Seccomp:\t2\n");
    let key = f("/key");
    assert!(key.contains("Operation not permitted"), "{key}");
    assert!(!key.contains(id), "{key}");
    let started: u32 = f("/n").trim().parse().unwrap();
    assert!(
        (2000..2048).contains(&started),
        "{started} processes started"
    );
}
