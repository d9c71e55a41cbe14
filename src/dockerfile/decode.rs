//! Turning the bytes of a Dockerfile into text, or an error that says where the bytes are bad.
//!
//! A Dockerfile must be UTF-8. A UTF-8 byte order mark is accepted (the grammar skips it, as
//! BuildKit does). A UTF-16 or UTF-32 byte order mark is rejected by name: parsed as UTF-8
//! such a file is garbage. Invalid UTF-8 is rejected at its line and column rather than
//! replaced by U+FFFD: BuildKit passes the bytes through to the shell, but rbuild's strings are
//! UTF-8, and a silent replacement would change what RUN runs or what COPY names. NUL bytes
//! are rejected by [`super::parse`] (so text that did not come from a file is checked too).

use super::error::{ErrorKind, ParseError};

/// Byte order marks of encodings other than UTF-8, longest first (UTF-32LE starts like
/// UTF-16LE).
const FOREIGN_BOMS: &[(&[u8], &str)] = &[
    (&[0x00, 0x00, 0xFE, 0xFF], "UTF-32 (big-endian)"),
    (&[0xFF, 0xFE, 0x00, 0x00], "UTF-32 (little-endian)"),
    (&[0xFE, 0xFF], "UTF-16 (big-endian)"),
    (&[0xFF, 0xFE], "UTF-16 (little-endian)"),
];

/// The text of a Dockerfile read as `bytes` (the buffer is reused, not copied). `file_name`
/// is used in errors.
pub fn decode(bytes: Vec<u8>, file_name: &str) -> Result<String, ParseError> {
    if let Some((bom, encoding)) = FOREIGN_BOMS.iter().find(|(bom, _)| bytes.starts_with(bom)) {
        let marks = bom
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(" ");
        return Err(ParseError {
            file: file_name.to_string(),
            line: 1,
            col: 1,
            kind: Box::new(ErrorKind::Encoding(format!(
                "the file is {encoding} encoded (it starts with the byte order mark {marks}); \
                 Dockerfiles must be UTF-8"
            ))),
            source_line: first_line_utf16(&bytes[bom.len()..], bom[0] == 0xFE, bom.len() == 4),
        });
    }
    String::from_utf8(bytes).map_err(|err| {
        let bytes = err.as_bytes();
        let at = err.utf8_error().valid_up_to();
        // Everything before `at` is valid UTF-8.
        let before = std::str::from_utf8(&bytes[..at]).unwrap_or_default();
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let line_end = bytes[at..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(bytes.len(), |i| at + i);
        let line_text = String::from_utf8_lossy(&bytes[line_start..line_end]);
        ParseError {
            file: file_name.to_string(),
            line: before.matches('\n').count() + 1,
            col: before[line_start..].chars().count() + 1,
            kind: Box::new(ErrorKind::InvalidUtf8(bytes[at])),
            source_line: line_text.trim_end_matches('\r').to_string(),
        }
    })
}

/// The first line of a UTF-16 (or, roughly, UTF-32) text, for the error snippet: the reader
/// sees what the file says rather than mojibake.
fn first_line_utf16(bytes: &[u8], big_endian: bool, utf32: bool) -> String {
    let text: String = if utf32 {
        bytes
            .chunks_exact(4)
            .map(|c| {
                let v = if big_endian {
                    u32::from_be_bytes([c[0], c[1], c[2], c[3]])
                } else {
                    u32::from_le_bytes([c[0], c[1], c[2], c[3]])
                };
                char::from_u32(v).unwrap_or(char::REPLACEMENT_CHARACTER)
            })
            .take_while(|&c| c != '\n')
            .take(200)
            .collect()
    } else {
        let units = bytes.chunks_exact(2).map(|c| {
            if big_endian {
                u16::from_be_bytes([c[0], c[1]])
            } else {
                u16::from_le_bytes([c[0], c[1]])
            }
        });
        char::decode_utf16(units)
            .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
            .take_while(|&c| c != '\n')
            .take(200)
            .collect()
    };
    text.trim_end_matches('\r')
        .replace(|c: char| c.is_control() && c != '\t', "\u{FFFD}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_with_and_without_bom_is_kept_as_is() {
        assert_eq!(decode(b"FROM a\n".to_vec(), "D").unwrap(), "FROM a\n");
        let with_bom = b"\xEF\xBB\xBFFROM a\n".to_vec();
        assert_eq!(decode(with_bom, "D").unwrap(), "\u{FEFF}FROM a\n");
    }

    #[test]
    fn utf16_and_utf32_boms_are_named() {
        let mut le = vec![0xFF, 0xFE];
        le.extend(
            "FROM a\r\nRUN x\r\n"
                .encode_utf16()
                .flat_map(u16::to_le_bytes),
        );
        let err = decode(le, "D").unwrap_err();
        assert_eq!((err.line, err.col), (1, 1));
        assert!(err.message().contains("UTF-16 (little-endian)"), "{err}");
        assert!(err.message().contains("FF FE"), "{err}");
        assert_eq!(err.source_line, "FROM a");

        let mut be = vec![0xFE, 0xFF];
        be.extend("FROM b\n".encode_utf16().flat_map(u16::to_be_bytes));
        let err = decode(be, "D").unwrap_err();
        assert!(err.message().contains("UTF-16 (big-endian)"), "{err}");
        assert_eq!(err.source_line, "FROM b");

        let mut le32 = vec![0xFF, 0xFE, 0, 0];
        le32.extend("FROM c\n".chars().flat_map(|c| (c as u32).to_le_bytes()));
        let err = decode(le32, "D").unwrap_err();
        assert!(err.message().contains("UTF-32 (little-endian)"), "{err}");
        assert_eq!(err.source_line, "FROM c");
    }

    #[test]
    fn invalid_utf8_names_line_and_column() {
        let err = decode(b"FROM a\nRUN \xC3\xA9ch\xFFo x\nRUN y\n".to_vec(), "D").unwrap_err();
        assert_eq!((err.line, err.col), (2, 8));
        assert_eq!(*err.kind, ErrorKind::InvalidUtf8(0xFF));
        assert_eq!(err.source_line, "RUN \u{e9}ch\u{FFFD}o x");
    }
}
