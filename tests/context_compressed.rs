//! Build contexts given as xz- and bzip2-compressed tars (issue 14, "Maintained crates"): the
//! xz decoder is `liblzma` and the bzip2 decoder the pure Rust `bzip2` 0.6; both must unpack a
//! context made by the system's `tar` + `xz`/`bzip2` into exactly the image the directory gives.

mod build_support;

use build_support::{ok_cmd, path_str, BuildEnv};

#[test]
fn xz_and_bzip2_compressed_tar_contexts_build_as_the_directory() {
    let b = BuildEnv::new();
    let ctx = b.context(
        "ctx",
        &[
            ("page.html", "<p>compressed</p>\n"),
            ("sub/data.txt", &"line of data\n".repeat(5000)),
            ("Dockerfile", "FROM busybox\nCOPY . /www/\n"),
        ],
    );
    let dir_id = b.build_id(&[path_str(&ctx)]);
    for (tool, ext) in [("xz", "txz"), ("bzip2", "tbz2")] {
        let plain = b.env.path().join("ctx.tar");
        let st = std::process::Command::new("tar")
            .args(["-cf", path_str(&plain), "-C", path_str(&ctx), "."])
            .status()
            .unwrap();
        assert!(st.success());
        let out = std::process::Command::new(tool)
            .args(["-c", path_str(&plain)])
            .output()
            .unwrap();
        assert!(out.status.success(), "{tool} failed");
        let file = b.env.path().join(format!("ctx.{ext}"));
        std::fs::write(&file, &out.stdout).unwrap();
        // From a file and from stdin: the same content gives the same image.
        assert_eq!(b.build_id(&[path_str(&file)]), dir_id, "{tool} file");
        let id = ok_cmd(
            b.env
                .cmd()
                .args(["build", "-q", "-t", &format!("from-{tool}"), "-"])
                .stdin(std::fs::File::open(&file).unwrap()),
        );
        assert_eq!(id.trim(), dir_id, "{tool} stdin");
        assert_eq!(
            b.image_file(&format!("from-{tool}"), "/www/sub/data.txt")
                .unwrap(),
            "line of data\n".repeat(5000),
            "{tool}"
        );
    }
}
