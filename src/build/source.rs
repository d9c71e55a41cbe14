//! Build contexts that are not a directory: a tar archive (file or stdin, plain or
//! compressed) is unpacked safely into a temp dir of the store; stdin that is not a tar is
//! taken as the Dockerfile, with an empty context (as `docker build - < Dockerfile`).

use std::io::{BufReader, Read};

use crate::image::compress;
use crate::image::layer::{apply_tar, ApplyOptions};
use crate::store::Store;

use super::{io_err, BuildError};

/// An unpacked context: its dir lives as long as this value.
pub struct UnpackedContext {
    pub dir: tempfile::TempDir,
    /// Stdin held a Dockerfile, not a tar (its bytes: the build decodes them and names the
    /// line of a bad byte).
    pub dockerfile: Option<Vec<u8>>,
}

/// Reads `reader` (a tar, possibly compressed, or a Dockerfile) into a context dir.
pub fn unpack_context(store: &Store, reader: impl Read) -> Result<UnpackedContext, BuildError> {
    let tmp = store.temp_dir()?;
    let spool = tmp.path().join("input");
    let mut f = std::fs::File::create(&spool).map_err(io_err(&spool))?;
    let mut reader = reader;
    std::io::copy(&mut reader, &mut f).map_err(io_err(&spool))?;
    drop(f);
    let dir = tmp.path().join("context");
    std::fs::create_dir(&dir).map_err(io_err(&dir))?;
    let open = || -> Result<Box<dyn Read>, BuildError> {
        let f = std::fs::File::open(&spool).map_err(io_err(&spool))?;
        let (_, r) = compress::decompress_auto(BufReader::new(f)).map_err(io_err(&spool))?;
        Ok(Box::new(r))
    };
    let mut head = [0u8; 512];
    let mut n = 0;
    let mut r = open()?;
    while n < head.len() {
        match r.read(&mut head[n..]).map_err(io_err(&spool))? {
            0 => break,
            k => n += k,
        }
    }
    let is_tar = n == 512 && &head[257..262] == b"ustar";
    let dockerfile = if is_tar {
        apply_tar(open()?, &dir, &ApplyOptions::default())?;
        None
    } else {
        Some(std::fs::read(&spool).map_err(io_err(&spool))?)
    };
    let _ = std::fs::remove_file(&spool);
    Ok(UnpackedContext {
        dir: tmp,
        dockerfile,
    })
}
