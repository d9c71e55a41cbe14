//! Writer/applier round trips and the applier's path-safety rules, on the real filesystem.

use std::fs;
use std::io::Read;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::Path;

use super::*;
use crate::image::compress::Compression;
use crate::image::digest::Digest;
use crate::image::limits;

fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

fn layer_bytes(
    source: &LayerSource<'_>,
    compression: Compression,
    mtime: Option<u64>,
) -> (Vec<u8>, LayerInfo) {
    let opts = LayerOptions {
        compression,
        level: None,
        mtime,
    };
    write_layer(source, &opts, Vec::new()).unwrap()
}

fn tar_names(tar: &[u8]) -> Vec<String> {
    let mut a = tar::Archive::new(tar);
    a.entries()
        .unwrap()
        .map(|e| String::from_utf8_lossy(&e.unwrap().path_bytes()).into_owned())
        .collect()
}

fn sample_tree(dir: &Path) {
    fs::create_dir_all(dir.join("etc/sub")).unwrap();
    fs::write(dir.join("etc/passwd"), "root:x:0:0\n").unwrap();
    fs::write(dir.join("etc/sub/b"), "b").unwrap();
    fs::write(dir.join("zz-setuid"), "x").unwrap();
    fs::set_permissions(dir.join("zz-setuid"), fs::Permissions::from_mode(0o4755)).unwrap();
    fs::hard_link(dir.join("etc/passwd"), dir.join("etc/passwd-link")).unwrap();
    symlink("passwd", dir.join("etc/link")).unwrap();
    nix::unistd::mkfifo(
        &dir.join("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o640),
    )
    .unwrap();
    xattr::set(dir.join("etc/passwd"), "user.rbuild", b"v").ok();
    if is_root() {
        std::os::unix::fs::lchown(dir.join("etc/sub"), Some(1000), Some(1001)).unwrap();
        // cap_net_bind_service=+ep, VFS_CAP_REVISION_2
        let cap: [u8; 20] = [0, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        xattr::set(dir.join("zz-setuid"), "security.capability", &cap).unwrap();
        nix::sys::stat::mknod(
            &dir.join("null"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o666),
            nix::sys::stat::makedev(1, 3),
        )
        .unwrap();
    }
}

#[test]
fn write_is_sorted_deterministic_and_digests_are_right() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    sample_tree(&src);
    let (a, info) = layer_bytes(&LayerSource::Dir(&src), Compression::Gzip, Some(0));
    let (b, info2) = layer_bytes(&LayerSource::Dir(&src), Compression::Gzip, Some(0));
    assert_eq!(a, b, "same tree and mtime must give identical bytes");
    assert_eq!(info, info2);
    assert_eq!(info.digest, Digest::of(&a));
    assert_eq!(info.size, a.len() as u64);
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(&a[..])
        .read_to_end(&mut plain)
        .unwrap();
    assert_eq!(info.diff_id, Digest::of(&plain));
    assert_ne!(info.digest, info.diff_id);
    assert_eq!(info.uncompressed_size, plain.len() as u64);
    let names = tar_names(&plain);
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    assert!(names.contains(&"etc/".to_string()), "{names:?}");
    // hard link written as a tar hard link to the first path
    let mut ar = tar::Archive::new(&plain[..]);
    let link = ar
        .entries()
        .unwrap()
        .map(|e| e.unwrap())
        .find(|e| e.path().unwrap() == Path::new("etc/passwd-link"))
        .unwrap();
    assert_eq!(link.header().entry_type(), tar::EntryType::Link);
    assert_eq!(link.link_name().unwrap().unwrap(), Path::new("etc/passwd"));

    let (z, zinfo) = layer_bytes(&LayerSource::Dir(&src), Compression::Zstd, Some(0));
    assert_eq!(
        zinfo.diff_id, info.diff_id,
        "DiffID does not depend on compression"
    );
    assert_eq!(zinfo.digest, Digest::of(&z));
    assert_eq!(zinfo.media_type, crate::image::oci::MEDIA_LAYER_ZSTD);
}

/// Directories of many small files are read ahead on several threads: the tar must be the
/// same as one read file by file (order, contents, xattrs, hard links), with a large file and
/// a subdirectory breaking the runs.
#[test]
fn many_small_files_are_written_in_order_with_content_and_xattrs() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    fs::create_dir_all(src.join("d/sub")).unwrap();
    for i in 0..300 {
        let p = src.join(format!("d/f{i:03}"));
        fs::write(&p, format!("content {i}\n")).unwrap();
        if i % 7 == 0 {
            xattr::set(&p, "user.rbuild", format!("x{i}").as_bytes()).unwrap();
        }
    }
    fs::write(src.join("d/f150-big"), vec![b'z'; (1 << 20) + 1]).unwrap();
    fs::write(src.join("d/sub/inner"), "inner").unwrap();
    fs::hard_link(src.join("d/f010"), src.join("d/f299-link")).unwrap();
    let (bytes, _) = layer_bytes(&LayerSource::Dir(&src), Compression::None, Some(0));
    let mut ar = tar::Archive::new(&bytes[..]);
    let mut seen = Vec::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        let xattrs: Vec<(String, Vec<u8>)> = e
            .pax_extensions()
            .unwrap()
            .into_iter()
            .flatten()
            .map(|ext| ext.unwrap())
            .filter(|ext| ext.key().unwrap().starts_with("SCHILY.xattr."))
            .map(|ext| (ext.key().unwrap().to_string(), ext.value_bytes().to_vec()))
            .collect();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        if let Some(i) = name
            .strip_prefix("d/f")
            .and_then(|n| n.parse::<usize>().ok())
        {
            assert_eq!(data, format!("content {i}\n").as_bytes(), "{name}");
            let expected: Vec<(String, Vec<u8>)> = if i % 7 == 0 {
                vec![(
                    "SCHILY.xattr.user.rbuild".into(),
                    format!("x{i}").into_bytes(),
                )]
            } else {
                Vec::new()
            };
            assert_eq!(xattrs, expected, "{name}");
        }
        if name == "d/f150-big" {
            assert_eq!(data.len(), (1 << 20) + 1);
        }
        if name == "d/f299-link" {
            assert_eq!(e.header().entry_type(), tar::EntryType::Link);
        }
        seen.push(name);
    }
    let mut expected = vec!["d/".to_string()];
    let mut files: Vec<String> = (0..300).map(|i| format!("d/f{i:03}")).collect();
    files.push("d/f150-big".into());
    files.push("d/f299-link".into());
    files.sort();
    expected.extend(files);
    expected.push("d/sub/".into());
    expected.push("d/sub/inner".into());
    assert_eq!(seen, expected);
}

#[test]
fn apply_restores_metadata() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    let dst = t.path().join("dst");
    sample_tree(&src);
    fs::create_dir(&dst).unwrap();
    let (bytes, _) = layer_bytes(&LayerSource::Dir(&src), Compression::Gzip, None);
    apply_layer(&bytes[..], &dst, &ApplyOptions::default()).unwrap();
    assert_eq!(
        fs::read_to_string(dst.join("etc/passwd")).unwrap(),
        "root:x:0:0\n"
    );
    let a = fs::metadata(dst.join("etc/passwd")).unwrap();
    let b = fs::metadata(dst.join("etc/passwd-link")).unwrap();
    assert_eq!(a.ino(), b.ino(), "hard link restored as a hard link");
    assert_eq!(
        fs::read_link(dst.join("etc/link")).unwrap(),
        Path::new("passwd")
    );
    assert_eq!(
        fs::metadata(dst.join("zz-setuid")).unwrap().mode() & 0o7777,
        0o4755
    );
    assert!(fs::symlink_metadata(dst.join("fifo"))
        .unwrap()
        .file_type()
        .is_fifo_like());
    assert_eq!(
        fs::metadata(dst.join("etc/passwd")).unwrap().mtime(),
        fs::metadata(src.join("etc/passwd")).unwrap().mtime()
    );
    if xattr::get(src.join("etc/passwd"), "user.rbuild")
        .unwrap()
        .is_some()
    {
        assert_eq!(
            xattr::get(dst.join("etc/passwd"), "user.rbuild")
                .unwrap()
                .unwrap(),
            b"v"
        );
    }
    if is_root() {
        let m = fs::metadata(dst.join("etc/sub")).unwrap();
        assert_eq!((m.uid(), m.gid()), (1000, 1001));
        assert_eq!(
            xattr::get(dst.join("zz-setuid"), "security.capability")
                .unwrap()
                .unwrap()
                .len(),
            20
        );
        let n = fs::symlink_metadata(dst.join("null")).unwrap();
        assert_eq!(n.rdev(), nix::sys::stat::makedev(1, 3));
    }
}

trait FifoLike {
    fn is_fifo_like(&self) -> bool;
}
impl FifoLike for fs::FileType {
    fn is_fifo_like(&self) -> bool {
        std::os::unix::fs::FileTypeExt::is_fifo(self)
    }
}

#[test]
fn overlay_upper_dir_becomes_whiteouts() {
    if !is_root() {
        eprintln!("skipped: needs root for mknod and trusted.* xattrs");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let upper = t.path().join("upper");
    fs::create_dir_all(upper.join("opq")).unwrap();
    fs::write(upper.join("opq/new"), "n").unwrap();
    xattr::set(upper.join("opq"), "trusted.overlay.opaque", b"y").unwrap();
    nix::sys::stat::mknod(
        &upper.join("gone"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::empty(),
        0,
    )
    .unwrap();
    let (tar, _) = layer_bytes(
        &LayerSource::OverlayUpper(&upper),
        Compression::None,
        Some(0),
    );
    assert_eq!(
        tar_names(&tar),
        vec![".wh.gone", "opq/", "opq/.wh..wh..opq", "opq/new"]
    );
    let mut ar = tar::Archive::new(&tar[..]);
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        if let Some(exts) = e.pax_extensions().unwrap() {
            for x in exts {
                assert!(
                    !x.unwrap().key().unwrap().contains("overlay"),
                    "overlay xattrs leaked"
                );
            }
        }
    }

    // Apply mode: the whiteouts delete from the lower content.
    let lower = t.path().join("lower");
    fs::create_dir_all(lower.join("opq")).unwrap();
    fs::write(lower.join("gone"), "g").unwrap();
    fs::write(lower.join("opq/old"), "o").unwrap();
    apply_tar(&tar[..], &lower, &ApplyOptions::default()).unwrap();
    assert!(!lower.join("gone").exists());
    assert!(!lower.join("opq/old").exists());
    assert!(lower.join("opq/new").exists());

    // Overlay mode: back to overlayfs whiteouts.
    let snap = t.path().join("snap");
    fs::create_dir(&snap).unwrap();
    let opts = ApplyOptions {
        whiteouts: WhiteoutMode::Overlay,
        no_chown: false,
        owner: None,
    };
    apply_tar(&tar[..], &snap, &opts).unwrap();
    let m = fs::symlink_metadata(snap.join("gone")).unwrap();
    assert!(std::os::unix::fs::FileTypeExt::is_char_device(
        &m.file_type()
    ));
    assert_eq!(m.rdev(), 0);
    assert_eq!(
        xattr::get(snap.join("opq"), "trusted.overlay.opaque")
            .unwrap()
            .unwrap(),
        b"y"
    );
}

#[test]
fn change_set_writes_adds_deletes_and_opaque_dirs() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    fs::create_dir_all(root.join("a/b")).unwrap();
    fs::write(root.join("a/b/f"), "f").unwrap();
    fs::create_dir_all(root.join("o")).unwrap();
    let changes = [
        Change::Delete("a/x".into()),
        Change::Add("a/b/f".into()),
        Change::Opaque("o".into()),
    ];
    let (tar, _) = layer_bytes(
        &LayerSource::Changes {
            root,
            changes: &changes,
        },
        Compression::None,
        Some(0),
    );
    assert_eq!(
        tar_names(&tar),
        vec!["a/", "a/b/", "a/b/f", "a/.wh.x", "o/", "o/.wh..wh..opq"]
    );
}

/// A tar entry with exactly these name bytes (the tar crate's safe setters refuse `..`).
pub(crate) fn raw_entry(
    b: &mut tar::Builder<Vec<u8>>,
    name: &str,
    kind: tar::EntryType,
    link: &str,
    data: &[u8],
) {
    let mut h = tar::Header::new_old();
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
    h.set_entry_type(kind);
    h.set_mode(0o644);
    h.set_size(data.len() as u64);
    h.set_cksum();
    b.append(&h, data).unwrap();
}

fn crafted(entries: &[(&str, tar::EntryType, &str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind, link, data) in entries {
        raw_entry(&mut b, name, *kind, link, data);
    }
    b.into_inner().unwrap()
}

#[test]
fn applier_never_writes_outside_the_target() {
    use tar::EntryType::{Directory, Link, Regular, Symlink};
    let t = tempfile::tempdir().unwrap();
    let outside = t.path().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("secret"), "keep").unwrap();
    let out = outside.display().to_string();
    let secret = format!("{out}/secret");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "dotdot",
            crafted(&[("../outside/evil", Regular, "", b"x")]),
            "`..`",
        ),
        (
            "nested dotdot",
            crafted(&[("a/../../outside/evil", Regular, "", b"x")]),
            "`..`",
        ),
        (
            "absolute",
            crafted(&[(&format!("{out}/evil"), Regular, "", b"x")]),
            "absolute path",
        ),
        (
            "write through symlink",
            crafted(&[
                ("link", Symlink, &out, b""),
                ("link/evil", Regular, "", b"x"),
            ]),
            "through the symlink",
        ),
        (
            "write through relative symlink",
            crafted(&[
                ("d", Directory, "", b""),
                ("d/up", Symlink, "../../outside", b""),
                ("d/up/evil", Regular, "", b"x"),
            ]),
            "through the symlink",
        ),
        (
            "hard link to absolute",
            crafted(&[("h", Link, &secret, b"")]),
            "points outside",
        ),
        (
            "hard link with dotdot",
            crafted(&[("h", Link, "../outside/secret", b"")]),
            "points outside",
        ),
        (
            "hard link through symlink",
            crafted(&[("s", Symlink, &out, b""), ("h", Link, "s/secret", b"")]),
            "through a symlink",
        ),
        (
            "duplicate",
            crafted(&[("f", Regular, "", b"1"), ("f", Regular, "", b"2")]),
            "more than once",
        ),
        (
            // The applier remembers `a/b` as a checked directory: replacing `a` by a symlink
            // must make it check again.
            "dir replaced by a symlink after use",
            crafted(&[
                ("a/b/f", Regular, "", b"x"),
                ("a", Symlink, &out, b""),
                ("a/b/evil", Regular, "", b"x"),
            ]),
            "through the symlink",
        ),
    ];
    for (what, tar, want) in cases {
        let target = t.path().join(format!("target-{}", what.replace(' ', "-")));
        fs::create_dir(&target).unwrap();
        let err = apply_tar(&tar[..], &target, &ApplyOptions::default())
            .expect_err(what)
            .to_string();
        assert!(
            err.contains(want),
            "{what}: error {err:?} should mention {want:?}"
        );
        let mut names: Vec<_> = fs::read_dir(&outside)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(
            names,
            vec![std::ffi::OsString::from("secret")],
            "{what}: wrote outside"
        );
        assert_eq!(
            fs::read_to_string(outside.join("secret")).unwrap(),
            "keep",
            "{what}"
        );
    }
}

#[test]
fn symlink_at_final_component_is_replaced_not_followed() {
    use tar::EntryType::{Regular, Symlink};
    let t = tempfile::tempdir().unwrap();
    let outside = t.path().join("outside");
    fs::write(&outside, "keep").unwrap();
    let target = t.path().join("target");
    fs::create_dir(&target).unwrap();
    let tar = crafted(&[("f", Symlink, &outside.display().to_string(), b"")]);
    apply_tar(&tar[..], &target, &ApplyOptions::default()).unwrap();
    let tar = crafted(&[("f", Regular, "", b"new")]);
    apply_tar(&tar[..], &target, &ApplyOptions::default()).unwrap();
    assert_eq!(fs::read_to_string(&outside).unwrap(), "keep");
    assert_eq!(fs::read_to_string(target.join("f")).unwrap(), "new");
}

#[test]
fn not_a_tar_and_truncated_gzip_are_errors() {
    let t = tempfile::tempdir().unwrap();
    let err = apply_layer(
        &b"this is not a tar archive, just some text that is long enough"[..],
        t.path(),
        &ApplyOptions::default(),
    );
    assert!(err.is_err());
    let src = t.path().join("src");
    sample_tree(&src);
    let (gz, _) = layer_bytes(&LayerSource::Dir(&src), Compression::Gzip, Some(0));
    let target = t.path().join("target");
    fs::create_dir(&target).unwrap();
    let err = apply_layer(&gz[..gz.len() / 2], &target, &ApplyOptions::default()).unwrap_err();
    assert!(err.to_string().contains("corrupt, truncated"), "{err}");
}

/// A tar with GNU long names and link names (the tar crate writes the extension entries).
fn long_names(entries: &[(String, tar::EntryType, String)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind, link) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(*kind);
        h.set_mode(0o755);
        h.set_size(0);
        if kind.is_symlink() || kind.is_hard_link() {
            b.append_link(&mut h, name, link).unwrap();
        } else {
            b.append_data(&mut h, name, std::io::empty()).unwrap();
        }
    }
    b.into_inner().unwrap()
}

#[test]
fn paths_linux_cannot_hold_are_refused_before_anything_is_written() {
    use tar::EntryType::{Directory, Regular, Symlink};
    let t = tempfile::tempdir().unwrap();
    let deep = format!("{}f", "a/".repeat(5000));
    let cases = [
        (
            "5000-level path",
            vec![(deep, Regular, String::new())],
            "PATH_MAX",
        ),
        (
            "long component",
            vec![(format!("d/{}", "n".repeat(256)), Regular, String::new())],
            "NAME_MAX",
        ),
        (
            "long hard link target",
            vec![("h".to_string(), tar::EntryType::Link, "t/".repeat(2100))],
            "hard link target: its path is 4199 bytes",
        ),
        (
            "long symlink target",
            vec![("l".to_string(), Symlink, "t/".repeat(2100))],
            "link target is 4200 bytes",
        ),
    ];
    for (what, entries, want) in cases {
        let tar = long_names(&entries);
        let err = check_tar(&tar[..]).expect_err(what).to_string();
        assert!(err.contains(want), "check {what}: {err}");
        assert!(
            err.len() < 400,
            "{what}: the error abbreviates the path: {err}"
        );
        let target = t.path().join(what.replace(' ', "-"));
        fs::create_dir(&target).unwrap();
        let started = std::time::Instant::now();
        let err = apply_tar(&tar[..], &target, &ApplyOptions::default())
            .expect_err(what)
            .to_string();
        assert!(err.contains(want), "apply {what}: {err}");
        assert!(
            started.elapsed().as_secs() < 5,
            "{what}: apply took {:?}",
            started.elapsed()
        );
        assert_eq!(fs::read_dir(&target).unwrap().count(), 0, "{what}: wrote");
    }
    // A path an image may hold, under a target whose own path leaves no room for it.
    let long_target = t.path().join("x".repeat(250)).join("y".repeat(250));
    fs::create_dir_all(&long_target).unwrap();
    let tar = long_names(&[(format!("{}f", "a/".repeat(1800)), Regular, String::new())]);
    check_tar(&tar[..]).unwrap();
    let err = apply_tar(&tar[..], &long_target, &ApplyOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("its path would be") && err.contains("PATH_MAX"),
        "{err}"
    );
    assert_eq!(fs::read_dir(&long_target).unwrap().count(), 0);
    // The longest names Linux allows still apply.
    let name = "n".repeat(255);
    let deepest = format!("{}b", "a/".repeat((limits::IMAGE_PATH_MAX - 4) / 2));
    let tar = long_names(&[
        (format!("d/{name}"), Regular, String::new()),
        (deepest.clone(), Directory, String::new()),
    ]);
    check_tar(&tar[..]).unwrap();
    let target = t.path().join("ok");
    fs::create_dir(&target).unwrap();
    apply_tar(&tar[..], &target, &ApplyOptions::default()).unwrap();
    assert!(target.join("d").join(&name).is_file());
}

/// Every directory of a 1,900-level tree as its own entry: each entry's parents are known
/// from the one before, so applying costs the depth squared, not cubed (it took minutes).
#[test]
fn deeply_nested_layer_applies_quickly() {
    let t = tempfile::tempdir().unwrap();
    let mut entries = Vec::new();
    let mut path = String::from("a");
    for _ in 0..1900 {
        entries.push((path.clone(), tar::EntryType::Directory, String::new()));
        path.push_str("/a");
    }
    let tar = long_names(&entries);
    let started = std::time::Instant::now();
    check_tar(&tar[..]).unwrap();
    apply_tar(&tar[..], t.path(), &ApplyOptions::default()).unwrap();
    let took = started.elapsed();
    assert!(took.as_secs() < 20, "took {took:?}");
    eprintln!("1900-level tree checked and applied in {took:?}");
}

/// A sparse file is written into the tar with every byte (holes as zeros, read without
/// reading them), and unpacked with its holes again.
#[test]
fn sparse_file_round_trips_with_its_bytes_and_holes() {
    use std::os::unix::fs::FileExt;
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    fs::create_dir(&src).unwrap();
    let size: u64 = 8 << 20;
    let f = fs::File::create(src.join("sparse")).unwrap();
    f.set_len(size).unwrap();
    f.write_all_at(b"data", size / 2).unwrap();
    drop(f);
    let (tar, _) = layer_bytes(&LayerSource::Dir(&src), Compression::None, Some(0));
    let mut a = tar::Archive::new(&tar[..]);
    let mut entry = a.entries().unwrap().next().unwrap().unwrap();
    assert_eq!(entry.header().entry_type(), tar::EntryType::Regular);
    let mut content = Vec::new();
    entry.read_to_end(&mut content).unwrap();
    let mut want = vec![0u8; size as usize];
    want[size as usize / 2..size as usize / 2 + 4].copy_from_slice(b"data");
    assert!(content == want, "the tar entry holds every byte");
    let dst = t.path().join("dst");
    fs::create_dir(&dst).unwrap();
    apply_tar(&tar[..], &dst, &ApplyOptions::default()).unwrap();
    let md = fs::metadata(dst.join("sparse")).unwrap();
    assert_eq!(md.len(), size);
    assert!(
        md.blocks() * 512 <= 128 << 10,
        "{} bytes",
        md.blocks() * 512
    );
    assert!(fs::read(dst.join("sparse")).unwrap() == want);
}
