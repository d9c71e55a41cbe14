//! Compression: detect by magic bytes, decompress as a stream, compress layers.

use std::io::{self, BufRead, BufReader, Read, Write};

/// A stream compression format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
    Bzip2,
    Xz,
}

impl Compression {
    /// Detects the format from the first bytes of a stream.
    pub fn detect(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else if head.starts_with(b"BZh") {
            Compression::Bzip2
        } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
            Compression::Xz
        } else {
            Compression::None
        }
    }

    /// A short name (`gzip`, `zstd`, …).
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
            Compression::Bzip2 => "bzip2",
            Compression::Xz => "xz",
        }
    }
}

/// Peeks at `reader` and returns the detected format and a reader of the decompressed bytes.
pub fn decompress_auto<'a, R: Read + 'a>(
    reader: R,
) -> io::Result<(Compression, Box<dyn Read + 'a>)> {
    let mut buf = BufReader::with_capacity(256 * 1024, reader);
    let head = buf.fill_buf()?;
    let kind = Compression::detect(head);
    Ok((kind, decompress(kind, buf)?))
}

/// A reader of the decompressed bytes of `reader`, compressed with `kind`.
pub fn decompress<'a, R: BufRead + 'a>(
    kind: Compression,
    reader: R,
) -> io::Result<Box<dyn Read + 'a>> {
    Ok(match kind {
        Compression::None => Box::new(reader),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(reader)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(reader)?),
        Compression::Bzip2 => Box::new(bzip2::bufread::MultiBzDecoder::new(reader)),
        Compression::Xz => Box::new(liblzma::bufread::XzDecoder::new_multi_decoder(reader)),
    })
}

/// A writer that compresses into `out` with `kind` (gzip, zstd or none); `finish` flushes the
/// trailer and returns `out`.
pub enum Compressor<W: Write> {
    None(W),
    Gzip(ParallelGzip<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> Compressor<W> {
    /// Starts compressing into `out` at the default level. Only `None`, `Gzip` and `Zstd` are
    /// supported for output.
    pub fn new(kind: Compression, out: W) -> io::Result<Compressor<W>> {
        Compressor::with_level(kind, None, out)
    }

    /// Like [`Compressor::new`] at `level` (gzip 0–9, default [`GZIP_LEVEL`]; zstd 1–22,
    /// default 3), as `-o …,compression-level=N` asks. zstd runs on several threads (its
    /// `zstdmt` mode: the output is the same for any number of worker threads ≥ 1, so layer
    /// digests do not depend on the machine).
    pub fn with_level(kind: Compression, level: Option<i32>, out: W) -> io::Result<Compressor<W>> {
        Ok(match kind {
            Compression::None => Compressor::None(out),
            Compression::Gzip => Compressor::Gzip(ParallelGzip::with_level(
                out,
                level.map_or(GZIP_LEVEL, |l| l.clamp(0, 9) as u32),
            )),
            Compression::Zstd => {
                let mut e = zstd::stream::write::Encoder::new(out, level.unwrap_or(ZSTD_LEVEL))?;
                e.multithread(gzip_threads() as u32)?;
                Compressor::Zstd(e)
            }
            other => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!("cannot write {} layers", other.name()),
                ))
            }
        })
    }

    /// Writes the trailer and returns the inner writer.
    pub fn finish(self) -> io::Result<W> {
        Ok(self.finish_with_members()?.0)
    }

    /// Like [`Compressor::finish`], also returning the compressed sizes of the gzip members
    /// (empty for other formats).
    pub fn finish_with_members(self) -> io::Result<(W, Vec<u64>)> {
        match self {
            Compressor::None(w) => Ok((w, Vec::new())),
            Compressor::Gzip(e) => e.finish(),
            Compressor::Zstd(e) => Ok((e.finish()?, Vec::new())),
        }
    }
}

impl<W: Write> Write for Compressor<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Compressor::None(w) => w.write(buf),
            Compressor::Gzip(e) => e.write(buf),
            Compressor::Zstd(e) => e.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Compressor::None(w) => w.flush(),
            Compressor::Gzip(e) => e.flush(),
            Compressor::Zstd(e) => e.flush(),
        }
    }
}

/// Deflate level of gzip layers: zlib-rs's level 1 barely compresses text; 2 is still fast
/// and close to the default level's ratio.
pub const GZIP_LEVEL: u32 = 2;

/// zstd level of zstd layers (zstd's own default; BuildKit's too).
pub const ZSTD_LEVEL: i32 = 3;

/// Uncompressed bytes per gzip member of [`ParallelGzip`]. Fixed, so the output does not
/// depend on the number of CPUs.
pub const GZIP_CHUNK: usize = 4 << 20;

/// The most chunks compressed or decompressed at once: one per core, at most 8 (each holds
/// a chunk in and out in memory).
///
/// These pipelines stream, so they run on threads of their own, not on rayon's pool: a
/// caller that is itself a rayon task (several layers at once) would otherwise block pool
/// threads waiting for chunks queued behind it on the same pool.
fn gzip_threads() -> usize {
    rayon::current_num_threads().clamp(1, 8)
}

/// A gzip writer that compresses 4 MiB chunks on several threads and writes them, in order, as
/// consecutive gzip members (a valid gzip stream, like `pigz --independent`; every gzip reader
/// handles multi-member streams). Input below one chunk gives a plain single-member stream.
/// A chunk that does not shrink is stored (deflate level 0) rather than expanded.
/// Memory use is bounded: at most one chunk per thread is in flight.
pub struct ParallelGzip<W: Write> {
    out: W,
    buf: Vec<u8>,
    pending: std::collections::VecDeque<std::thread::JoinHandle<io::Result<Vec<u8>>>>,
    threads: usize,
    members: Vec<u64>,
    level: u32,
}

impl<W: Write> ParallelGzip<W> {
    /// Compresses into `out` at [`GZIP_LEVEL`].
    pub fn new(out: W) -> ParallelGzip<W> {
        ParallelGzip::with_level(out, GZIP_LEVEL)
    }

    /// Compresses into `out` at deflate `level` (0–9).
    pub fn with_level(out: W, level: u32) -> ParallelGzip<W> {
        let threads = gzip_threads();
        ParallelGzip {
            out,
            buf: Vec::with_capacity(GZIP_CHUNK),
            pending: Default::default(),
            threads,
            members: Vec::new(),
            level,
        }
    }

    fn spawn_chunk(&mut self) -> io::Result<()> {
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(GZIP_CHUNK));
        let level = self.level;
        self.pending.push_back(std::thread::spawn(move || {
            let gzip = |level| {
                let mut e =
                    flate2::write::GzEncoder::new(Vec::with_capacity(chunk.len() / 2), level);
                e.write_all(&chunk)?;
                e.finish()
            };
            let out = gzip(flate2::Compression::new(level))?;
            if out.len() < chunk.len() {
                return Ok(out);
            }
            // Incompressible: store the chunk (deflate stored blocks), which inflates at
            // memory speed instead of growing the layer.
            gzip(flate2::Compression::none())
        }));
        while self.pending.len() > self.threads {
            self.write_oldest()?;
        }
        Ok(())
    }

    fn write_oldest(&mut self) -> io::Result<()> {
        if let Some(h) = self.pending.pop_front() {
            let bytes = h
                .join()
                .map_err(|_| io::Error::other("gzip worker thread panicked"))??;
            self.out.write_all(&bytes)?;
            self.members.push(bytes.len() as u64);
        }
        Ok(())
    }

    /// Compresses what is left, writes everything out and returns the inner writer and the
    /// compressed size of each gzip member (see [`ParallelGunzip`]).
    pub fn finish(mut self) -> io::Result<(W, Vec<u64>)> {
        if !self.buf.is_empty() || (self.pending.is_empty() && self.members.is_empty()) {
            self.spawn_chunk()?;
        }
        while !self.pending.is_empty() {
            self.write_oldest()?;
        }
        self.out.flush()?;
        Ok((self.out, self.members))
    }
}

impl<W: Write> Write for ParallelGzip<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(GZIP_CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == GZIP_CHUNK {
            self.spawn_chunk()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(()) // members are only complete at chunk boundaries; `finish` writes the rest
    }
}

/// Decompresses a multi-member gzip file whose member sizes are known (as [`ParallelGzip`]
/// records them) on several threads, yielding the bytes in order. At most one member per
/// thread is in memory.
pub struct ParallelGunzip {
    path: std::path::PathBuf,
    /// (offset, size) of the members not yet started.
    todo: std::collections::VecDeque<(u64, u64)>,
    pending: std::collections::VecDeque<std::thread::JoinHandle<io::Result<Vec<u8>>>>,
    threads: usize,
    current: io::Cursor<Vec<u8>>,
}

impl ParallelGunzip {
    /// Reads the gzip file at `path` made of members of the given compressed sizes.
    pub fn new(path: &std::path::Path, members: &[u64]) -> ParallelGunzip {
        let mut offset = 0;
        let todo = members
            .iter()
            .map(|&m| {
                let r = (offset, m);
                offset += m;
                r
            })
            .collect();
        let threads = gzip_threads();
        ParallelGunzip {
            path: path.to_path_buf(),
            todo,
            pending: Default::default(),
            threads,
            current: io::Cursor::new(Vec::new()),
        }
    }

    fn fill(&mut self) {
        while self.pending.len() < self.threads + 1 {
            let Some((offset, size)) = self.todo.pop_front() else {
                break;
            };
            let path = self.path.clone();
            self.pending.push_back(std::thread::spawn(move || {
                use std::io::{Seek, SeekFrom};
                if size > 16 * GZIP_CHUNK as u64 {
                    return Err(io::Error::other(format!(
                        "gzip member of {size} bytes in {} is larger than rbuild writes",
                        path.display()
                    )));
                }
                let mut f = std::fs::File::open(&path)?;
                f.seek(SeekFrom::Start(offset))?;
                let mut compressed = Vec::with_capacity(size as usize);
                f.take(size).read_to_end(&mut compressed)?;
                let mut out = Vec::with_capacity(GZIP_CHUNK);
                flate2::read::GzDecoder::new(&compressed[..])
                    .take(GZIP_CHUNK as u64 + 1)
                    .read_to_end(&mut out)?;
                if out.len() > GZIP_CHUNK {
                    return Err(io::Error::other("gzip member larger than a chunk"));
                }
                Ok(out)
            }));
        }
    }
}

impl Read for ParallelGunzip {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let n = self.current.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            self.fill();
            let Some(h) = self.pending.pop_front() else {
                return Ok(0);
            };
            let bytes = h
                .join()
                .map_err(|_| io::Error::other("gunzip worker thread panicked"))??;
            self.current = io::Cursor::new(bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallel_gzip_round_trips_and_is_deterministic() {
        let data: Vec<u8> = (0..(GZIP_CHUNK * 2 + 12345))
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        let write = || {
            let mut w = Compressor::new(Compression::Gzip, Vec::new()).unwrap();
            for piece in data.chunks(100_000) {
                w.write_all(piece).unwrap();
            }
            w.finish().unwrap()
        };
        let a = write();
        assert_eq!(a, write());
        let (kind, mut r) = decompress_auto(&a[..]).unwrap();
        assert_eq!(kind, Compression::Gzip);
        let mut back = Vec::new();
        r.read_to_end(&mut back).unwrap();
        assert_eq!(back, data);
        // and back in parallel, member by member
        let (_, members) = {
            let mut w = ParallelGzip::new(Vec::new());
            w.write_all(&data).unwrap();
            w.finish().unwrap()
        };
        assert_eq!(members.len(), 3);
        assert_eq!(members.iter().sum::<u64>(), a.len() as u64);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("gz"), &a).unwrap();
        let mut back = Vec::new();
        ParallelGunzip::new(&dir.path().join("gz"), &members)
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, data);
        // empty input is still a valid gzip stream
        let empty = Compressor::new(Compression::Gzip, Vec::new())
            .unwrap()
            .finish()
            .unwrap();
        let mut back = Vec::new();
        decompress_auto(&empty[..])
            .unwrap()
            .1
            .read_to_end(&mut back)
            .unwrap();
        assert!(back.is_empty());
    }

    /// Multithreaded zstd (as layers are written) gives the same bytes for any number of
    /// worker threads, so a layer's digest does not depend on the machine's cores.
    #[test]
    fn zstd_layers_do_not_depend_on_the_thread_count() {
        let data: Vec<u8> = (0..(9 << 20)).map(|i: usize| (i * 7 % 251) as u8).collect();
        let with = |threads: u32| {
            let mut e = zstd::stream::write::Encoder::new(Vec::new(), ZSTD_LEVEL).unwrap();
            e.multithread(threads).unwrap();
            e.write_all(&data).unwrap();
            e.finish().unwrap()
        };
        assert_eq!(with(1), with(4));
        let mut w = Compressor::with_level(Compression::Zstd, Some(19), Vec::new()).unwrap();
        w.write_all(&data).unwrap();
        let z = w.finish().unwrap();
        assert_ne!(z, with(1), "the level is used");
        let mut back = Vec::new();
        decompress_auto(&z[..])
            .unwrap()
            .1
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, data);
    }
}
