//! Sparse files stay sparse: a COPY'd sparse file takes no more disk in the staging dir, the
//! file pool or the snapshot than its data; a layer's large zero-filled file is unpacked
//! with holes; and what `run` reads is the file's full size and content either way.

mod build_support;

use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

use build_support::{path_str, BuildEnv};

/// The sparse file's size (2 GiB takes ~20 s per COPY on 2 busy cores: hashing and gzip of
/// the zeros), with one byte of data in the middle.
const SIZE: u64 = 256 << 20;
const MIDDLE: u64 = SIZE / 2;

/// Bytes allocated on disk for `path`.
fn allocated(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().blocks() * 512
}

#[test]
fn copied_sparse_file_stays_sparse_in_pool_and_snapshot() {
    let b = BuildEnv::new();
    let ctx = b.context(
        "ctx",
        &[(
            "Dockerfile",
            "FROM busybox AS src\nCOPY big /big\n\
             FROM busybox\nCOPY big /big\nCOPY --from=src /big /again\n",
        )],
    );
    let big = File::create(ctx.join("big")).unwrap();
    big.set_len(SIZE).unwrap();
    big.write_all_at(b"x", MIDDLE).unwrap();
    drop(big);
    let started = std::time::Instant::now();
    b.build(&["-t", "sparse:1", path_str(&ctx)]);
    eprintln!("build of a sparse file took {:?}", started.elapsed());

    for path in ["/big", "/again"] {
        let snap = b.image_path("sparse:1", path).expect(path);
        let md = std::fs::metadata(&snap).unwrap();
        assert_eq!(md.len(), SIZE, "{path}");
        assert!(
            allocated(&snap) <= 1 << 20,
            "{path}: the snapshot's copy takes {} bytes of disk",
            allocated(&snap)
        );
        let mut byte = [0u8; 2];
        File::open(&snap)
            .unwrap()
            .read_exact_at(&mut byte, MIDDLE - 1)
            .unwrap();
        assert_eq!(&byte, b"\0x", "{path}");
    }
    let pool = b.env.root().join("pool");
    let mut pooled = 0;
    for e in std::fs::read_dir(&pool).unwrap() {
        let p = e.unwrap().path();
        if std::fs::metadata(&p).unwrap().len() == SIZE {
            pooled += 1;
            assert!(allocated(&p) <= 1 << 20, "pooled copy: {}", allocated(&p));
        }
    }
    assert_eq!(
        pooled, 1,
        "the file COPY'd from the context is pooled (both stages link it)"
    );
    let out = b.run_in(
        "sparse:1",
        "wc -c < /big; dd if=/big bs=1 skip=$(($1 - 1)) count=2 2>/dev/null | od -An -c",
        &[MIDDLE.to_string()],
    );
    let words: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(words, [SIZE.to_string().as_str(), "\\0", "x"], "{out}");
}

#[test]
fn loaded_layer_with_zero_filled_file_unpacks_sparse() {
    let a = BuildEnv::new();
    let ctx = a.context(
        "ctx",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN dd if=/dev/zero of=/zeros bs=1M count=256 2>/dev/null && printf end >> /zeros\n",
        )],
    );
    a.build(&["-t", "zeros:1", path_str(&ctx)]);
    let archive = a.env.path().join("zeros.tar");
    a.env.ok(&["save", "-o", path_str(&archive), "zeros:1"]);
    eprintln!(
        "archive: {} bytes",
        std::fs::metadata(&archive).unwrap().len()
    );

    let b = BuildEnv::same_base_as(&a);
    b.env.ok(&["load", "-i", path_str(&archive)]);
    // `save` writes layers uncompressed (as docker): the zeros are in the archive, and the
    // stored layer blob keeps them as holes.
    let blobs: u64 = std::fs::read_dir(b.env.root().join("blobs/sha256"))
        .unwrap()
        .map(|e| allocated(&e.unwrap().path()))
        .sum();
    assert!(blobs < 32 << 20, "the blobs take {blobs} bytes of disk");
    // `run` unpacks the layer into its snapshot.
    let out = b.run_in("zeros:1", "wc -c < /zeros; tail -c 3 /zeros", &[]);
    assert_eq!(out, format!("{}\nend", (256 << 20) + 3));
    let snap = b.image_path("zeros:1", "/zeros").unwrap();
    assert_eq!(std::fs::metadata(&snap).unwrap().len(), (256 << 20) + 3);
    assert!(
        allocated(&snap) <= 1 << 20,
        "the unpacked zeros take {} bytes of disk",
        allocated(&snap)
    );
}
