//! Sparse files: read holes as zeros without reading them, and write runs of zero blocks as
//! holes. A 10 GB sparse file in a build context would otherwise become 10 GB of disk in the
//! COPY staging dir (and the file pool), and again in every snapshot a layer holding it is
//! unpacked into.
//!
//! A layer tar has no holes: its entry holds every byte, zeros included, as docker's (Go's)
//! tar writer writes it, and the zeros cost little once compressed. Holes are found again when
//! the layer is unpacked ([`SparseWriter`] turns every all-zero aligned block into a hole).

use std::fs::{File, Metadata};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, MetadataExt};

use nix::errno::Errno;
use nix::unistd::{lseek, Whence};

/// Granularity of the holes [`SparseWriter`] makes: an aligned block of this many zero bytes
/// becomes a hole. Large enough that the zero pages inside ordinary binaries stay data (a
/// hole per 4 KiB page would fragment them for nothing).
pub const HOLE_BLOCK: usize = 64 << 10;

/// Whether a file may have holes: fewer bytes allocated than its size. Checking the blocks
/// first keeps the `lseek` calls away from the ordinary (dense) files.
pub fn may_have_holes(meta: &Metadata) -> bool {
    meta.blocks().saturating_mul(512) < meta.len()
}

/// Reads the first `len` bytes of a file, returning its holes as zeros without a read call
/// (`SEEK_DATA`/`SEEK_HOLE`). On a filesystem without them, every byte is read.
pub struct HoleReader {
    file: File,
    pos: u64,
    len: u64,
    /// Whether holes are looked for at all.
    sparse: bool,
    /// End of the region `pos` is in, and whether that region is data.
    region_end: u64,
    in_data: bool,
}

impl HoleReader {
    /// Reads `len` bytes of `file` from its start; holes are looked for when `sparse`
    /// (see [`may_have_holes`]).
    pub fn new(file: File, len: u64, sparse: bool) -> HoleReader {
        HoleReader {
            file,
            pos: 0,
            len,
            sparse,
            region_end: if sparse { 0 } else { len },
            in_data: !sparse,
        }
    }

    /// Finds the region (data or hole) `self.pos` is in.
    fn find_region(&mut self) -> io::Result<()> {
        let fd = self.file.as_raw_fd();
        let at = i64::try_from(self.pos).map_err(io::Error::other)?;
        let (in_data, end) = match lseek(fd, at, Whence::SeekData) {
            Ok(data) if data == at => {
                let hole = lseek(fd, at, Whence::SeekHole).map_err(io::Error::from)?;
                (true, u64::try_from(hole).unwrap_or(self.len))
            }
            Ok(data) => (false, u64::try_from(data).unwrap_or(self.len)),
            // No data after `pos`: a hole up to the end.
            Err(Errno::ENXIO) => (false, self.len),
            // No SEEK_DATA here: read everything.
            Err(_) => {
                self.sparse = false;
                (true, self.len)
            }
        };
        self.in_data = in_data;
        self.region_end = end.clamp(self.pos + 1, self.len);
        Ok(())
    }
}

impl Read for HoleReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.len || buf.is_empty() {
            return Ok(0);
        }
        if self.pos >= self.region_end {
            self.find_region()?;
        }
        let want = usize::try_from(self.region_end - self.pos)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let n = if self.in_data {
            self.file.read_at(&mut buf[..want], self.pos)?
        } else {
            buf[..want].fill(0);
            want
        };
        self.pos += n as u64;
        Ok(n)
    }
}

/// Writes a new file from offset 0, leaving every aligned all-zero [`HOLE_BLOCK`] as a hole.
/// Call [`SparseWriter::finish`] at the end: it writes what is buffered and sets the length
/// (a file ending in a hole is only as long as its last written byte until then).
pub struct SparseWriter<'a> {
    file: &'a File,
    /// Bytes accepted so far.
    pos: u64,
    /// The bytes of the current, not yet complete block (from `pos - pending.len()`).
    pending: Vec<u8>,
    /// End of the last byte actually written.
    written_end: u64,
}

impl<'a> SparseWriter<'a> {
    pub fn new(file: &'a File) -> SparseWriter<'a> {
        SparseWriter {
            file,
            pos: 0,
            pending: Vec::new(),
            written_end: 0,
        }
    }

    /// Writes the last partial block and sets the file's length; returns the bytes accepted.
    pub fn finish(mut self) -> io::Result<u64> {
        let pending = std::mem::take(&mut self.pending);
        self.write_blocks(&pending, self.pos - pending.len() as u64)?;
        if self.written_end < self.pos {
            self.file.set_len(self.pos)?;
        }
        Ok(self.pos)
    }

    /// Writes the non-zero blocks of `data` (starting at the aligned offset `at`), each run
    /// of them with one call.
    fn write_blocks(&mut self, data: &[u8], at: u64) -> io::Result<()> {
        let mut run: Option<usize> = None;
        for (i, block) in data.chunks(HOLE_BLOCK).enumerate() {
            let start = i * HOLE_BLOCK;
            match (is_zero(block), run) {
                (true, Some(from)) => {
                    self.write_run(&data[from..start], at + from as u64)?;
                    run = None;
                }
                (false, None) => run = Some(start),
                _ => {}
            }
        }
        if let Some(from) = run {
            self.write_run(&data[from..], at + from as u64)?;
        }
        Ok(())
    }

    fn write_run(&mut self, data: &[u8], at: u64) -> io::Result<()> {
        self.file.write_all_at(data, at)?;
        self.written_end = self.written_end.max(at + data.len() as u64);
        Ok(())
    }
}

impl Write for SparseWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let block = HOLE_BLOCK as u64;
        let mut data = buf;
        // Complete the pending block first.
        if !self.pos.is_multiple_of(block) {
            let room = (block - self.pos % block) as usize;
            let take = room.min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            self.pos += take as u64;
            data = &data[take..];
            if self.pos.is_multiple_of(block) {
                let pending = std::mem::take(&mut self.pending);
                self.write_blocks(&pending, self.pos - block)?;
                self.pending = pending;
                self.pending.clear();
            }
        }
        // Whole blocks straight from `buf`, the rest kept for the next call.
        let whole = data.len() / HOLE_BLOCK * HOLE_BLOCK;
        self.write_blocks(&data[..whole], self.pos)?;
        self.pos += whole as u64;
        self.pending.extend_from_slice(&data[whole..]);
        self.pos += (data.len() - whole) as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Whether every byte is zero (its first bytes checked first: data blocks rarely start with
/// 16 zeros; the rest in 64-byte steps that compile to vector ORs).
fn is_zero(block: &[u8]) -> bool {
    let (head, rest) = block.split_at(block.len().min(16));
    if head.iter().any(|b| *b != 0) {
        return false;
    }
    let mut chunks = rest.chunks_exact(64);
    chunks
        .by_ref()
        .all(|c| c.iter().fold(0u8, |a, b| a | b) == 0)
        && chunks.remainder().iter().all(|b| *b == 0)
}

/// Copies `src` (of `meta`) into the new, empty file `dst`, keeping holes: the reads skip the
/// source's holes and the writes leave zero blocks unwritten. Returns the bytes copied.
pub fn copy_sparse(src: File, meta: &Metadata, dst: &File) -> io::Result<u64> {
    let mut reader = HoleReader::new(src, meta.len(), may_have_holes(meta));
    let mut writer = SparseWriter::new(dst);
    io::copy(&mut reader, &mut writer)?;
    writer.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Seek;

    fn allocated(f: &File) -> u64 {
        f.metadata().unwrap().blocks() * 512
    }

    #[test]
    fn holes_are_read_as_zeros_and_written_as_holes() {
        let t = tempfile::tempdir().unwrap();
        let src_path = t.path().join("src");
        let src = File::create(&src_path).unwrap();
        let size = 64u64 << 20;
        src.set_len(size).unwrap();
        src.write_all_at(b"middle", 32 << 20).unwrap();
        src.write_all_at(b"end", size - 3).unwrap();
        let meta = src.metadata().unwrap();
        assert!(may_have_holes(&meta));
        let dst = File::create(t.path().join("dst")).unwrap();
        let src = File::open(&src_path).unwrap();
        assert_eq!(copy_sparse(src, &meta, &dst).unwrap(), size);
        assert_eq!(dst.metadata().unwrap().len(), size);
        assert!(
            allocated(&dst) <= 4 * HOLE_BLOCK as u64,
            "{}",
            allocated(&dst)
        );
        let mut back = Vec::new();
        File::open(t.path().join("dst"))
            .unwrap()
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(&back[32 << 20..(32 << 20) + 6], b"middle");
        assert_eq!(&back[back.len() - 3..], b"end");
        assert_eq!(back.iter().filter(|b| **b != 0).count(), 9);
    }

    #[test]
    fn unaligned_writes_keep_every_byte() {
        let t = tempfile::tempdir().unwrap();
        let mut data = vec![0u8; 3 * HOLE_BLOCK + 777];
        data[5] = 1;
        data[2 * HOLE_BLOCK + 9] = 2;
        *data.last_mut().unwrap() = 3;
        for step in [1usize, 4093, 8192, HOLE_BLOCK, 200_000] {
            let path = t.path().join(format!("f{step}"));
            let mut f = File::options()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)
                .unwrap();
            let mut w = SparseWriter::new(&f);
            for chunk in data.chunks(step) {
                w.write_all(chunk).unwrap();
            }
            assert_eq!(w.finish().unwrap(), data.len() as u64);
            f.rewind().unwrap();
            let mut back = Vec::new();
            f.read_to_end(&mut back).unwrap();
            assert!(back == data, "step {step}");
        }
        // Trailing zeros: the length is still right.
        let f = File::create(t.path().join("zeros")).unwrap();
        let mut w = SparseWriter::new(&f);
        w.write_all(&vec![0u8; 5 * HOLE_BLOCK + 1]).unwrap();
        w.finish().unwrap();
        assert_eq!(f.metadata().unwrap().len(), 5 * HOLE_BLOCK as u64 + 1);
        assert_eq!(allocated(&f), 0);
    }
}
