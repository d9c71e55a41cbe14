//! `build --build-context NAME=oci-layout://PATH[:TAG|@DIGEST]` (issue 14, BuildKit's named
//! contexts): an image from an OCI layout directory, used by `FROM NAME` and
//! `COPY --from=NAME`; a missing path, layout or tag is an error naming it.

mod build_support;

use std::path::Path;
use std::process::Command;

use build_support::{assert_success, path_str, BuildEnv};

/// Builds an image holding `/from-layout.txt` in `b`, exports it with `-o type=oci`, and
/// unpacks the archive into `dir` (an OCI layout).
fn exported_layout(b: &BuildEnv, dir: &Path) {
    let ctx = b.context(
        "src",
        &[
            ("Dockerfile", "FROM busybox\nCOPY from-layout.txt /\n"),
            ("from-layout.txt", "made elsewhere\n"),
        ],
    );
    let tar = b.env.path().join("src.tar");
    b.build(&[
        "-t",
        "src:1",
        "-o",
        &format!("type=oci,dest={}", tar.display()),
        path_str(&ctx),
    ]);
    std::fs::create_dir_all(dir).unwrap();
    let out = Command::new("tar")
        .arg("-xf")
        .arg(&tar)
        .arg("-C")
        .arg(dir)
        .output()
        .unwrap();
    assert_success("tar -xf", &out);
}

/// Files below `dir` with their contents, sorted.
fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                todo.push(e.path());
            } else {
                out.push((
                    e.path().display().to_string(),
                    std::fs::read(e.path()).unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

/// The image of a layout made by another store (`-o type=oci`, unpacked) is what
/// `COPY --from=NAME` and `FROM NAME` read, picked by default (the only image), by tag and
/// by digest; the layout is left as it was; a layout skopeo wrote (a bare tag as its ref
/// name) works too.
#[test]
fn oci_layout_context_from_an_exported_image() {
    let maker = BuildEnv::new();
    let layout = maker.env.path().join("layout");
    exported_layout(&maker, &layout);
    let before = tree(&layout);

    let b = BuildEnv::new();
    let ctx = b.context(
        "use",
        &[
            (
                "Dockerfile",
                "FROM busybox\nCOPY --from=lay /from-layout.txt /got.txt\n",
            ),
            (
                "Dockerfile.from",
                "FROM lay\nRUN cat /from-layout.txt > /ran.txt\n",
            ),
        ],
    );
    let spec = format!("lay=oci-layout://{}", layout.display());
    b.build(&["-t", "copied", "--build-context", &spec, path_str(&ctx)]);
    assert_eq!(
        b.image_file("copied", "/got.txt").unwrap(),
        "made elsewhere\n"
    );
    assert_eq!(tree(&layout), before, "the layout is read, not moved");

    let from = ctx.join("Dockerfile.from");
    b.build(&[
        "-t",
        "from-tag",
        "-f",
        path_str(&from),
        "--build-context",
        &format!("{spec}:1"),
        path_str(&ctx),
    ]);
    assert_eq!(
        b.image_file("from-tag", "/ran.txt").unwrap(),
        "made elsewhere\n"
    );

    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let digest = index["manifests"][0]["digest"].as_str().unwrap();
    b.build(&[
        "-t",
        "from-digest",
        "-f",
        path_str(&from),
        "--build-context",
        &format!("{spec}@{digest}"),
        path_str(&ctx),
    ]);
    assert_eq!(
        b.inspect("from-digest")["Id"],
        b.inspect("from-tag")["Id"],
        "the same image by tag and by digest"
    );
    assert!(
        b.env.ok(&["images", "src"]).lines().count() <= 1,
        "the layout's names are not the store's"
    );

    // A layout skopeo wrote: its ref name is the bare tag.
    let other = maker.env.path().join("skopeo-layout");
    let out = Command::new("skopeo")
        .arg("copy")
        .arg("-q")
        .arg(format!("oci:{}", layout.display()))
        .arg(format!("oci:{}:v2", other.display()))
        .output()
        .unwrap();
    assert_success("skopeo copy", &out);
    b.build(&[
        "-t",
        "from-skopeo",
        "--build-context",
        &format!("lay=oci-layout://{}:v2", other.display()),
        path_str(&ctx),
    ]);
    assert_eq!(
        b.image_file("from-skopeo", "/got.txt").unwrap(),
        "made elsewhere\n"
    );
}

/// A path that does not exist, a directory that is no layout, a tag or digest the layout does
/// not have: each fails before the build with an error naming it.
#[test]
fn oci_layout_context_errors_name_what_is_missing() {
    let b = BuildEnv::new();
    let layout = b.env.path().join("layout");
    exported_layout(&b, &layout);
    let ctx = b.context(
        "use",
        &[(
            "Dockerfile",
            "FROM busybox\nCOPY --from=lay /from-layout.txt /\n",
        )],
    );
    let fails = |value: String| {
        b.build_fails(&[
            "--build-context",
            &format!("lay=oci-layout://{value}"),
            path_str(&ctx),
        ])
    };
    let missing = b.env.path().join("nowhere");
    let err = fails(missing.display().to_string());
    assert!(
        err.contains(&format!("{}: no such directory", missing.display())),
        "{err}"
    );
    let err = fails(ctx.display().to_string());
    assert!(
        err.contains(&format!(
            "{}: not an OCI image layout (it has no index.json)",
            ctx.display()
        )),
        "{err}"
    );
    let err = fails(format!("{}:nope", layout.display()));
    assert!(
        err.contains(&format!("{}: no image tagged \"nope\"", layout.display()))
            && err.contains("src:1"),
        "names the tags it has: {err}"
    );
    let absent = format!("sha256:{}", "0".repeat(64));
    let err = fails(format!("{}@{absent}", layout.display()));
    assert!(err.contains(&format!("no manifest {absent}")), "{err}");
}
