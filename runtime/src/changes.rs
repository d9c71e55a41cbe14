//! Reading an overlay upper directory as a change set (the layer writer turns it into a
//! layer): whiteouts and opaque directories.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

/// Whether `metadata` (from `symlink_metadata`) is an overlay whiteout: a character device
/// with device number 0:0, meaning "this path was deleted".
pub fn is_whiteout(metadata: &std::fs::Metadata) -> bool {
    metadata.file_type().is_char_device() && metadata.rdev() == 0
}

/// Whether the directory `dir` is marked opaque (its lower contents are hidden: the
/// directory was deleted and created again), via `trusted.overlay.opaque` (root) or
/// `user.overlay.opaque` (rootless, `userxattr`) set to `y`.
pub fn is_opaque(dir: &Path) -> std::io::Result<bool> {
    let path = CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    for name in [c"trusted.overlay.opaque", c"user.overlay.opaque"] {
        let mut value = [0u8; 4];
        // SAFETY: lgetxattr reads two NUL-terminated strings and writes at most
        // `value.len()` bytes into `value`.
        let n = unsafe {
            libc::lgetxattr(
                path.as_ptr(),
                name.as_ptr(),
                value.as_mut_ptr().cast(),
                value.len(),
            )
        };
        if n > 0 && value[0] == b'y' {
            return Ok(true);
        }
        if n < 0 {
            let err = std::io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::ENODATA) | Some(libc::ENOTSUP) | Some(libc::ERANGE) => {}
                _ => return Err(err),
            }
        }
    }
    Ok(false)
}
