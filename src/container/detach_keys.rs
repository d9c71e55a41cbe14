//! Docker's detach keys (`--detach-keys`, default `ctrl-p,ctrl-q`): the key sequence that,
//! typed into an attached terminal, leaves the container running and ends the attach.
//!
//! The syntax is docker's: comma-separated keys, each a single character or `ctrl-<value>`
//! with `<value>` one of `a`-`z`, `@`, `[`, `\`, `]`, `^`, `_` (case-insensitive). As
//! docker's escape proxy, the bytes of a partly typed sequence are held back and passed on
//! when the next byte does not continue it.

/// Docker's default sequence.
pub const DEFAULT: &str = "ctrl-p,ctrl-q";

/// A `--detach-keys` value docker would refuse too.
#[derive(Debug, thiserror::Error)]
#[error(
    "invalid detach keys {keys:?}: unknown key {key:?} (use comma-separated keys: a single \
     character, or ctrl-<value> with a-z, @, [, \\, ], ^ or _)"
)]
pub struct BadDetachKeys {
    pub keys: String,
    pub key: String,
}

/// The `ctrl-` names in the order of their codes (0 is `ctrl-@`, 1 `ctrl-a` ...), docker's table.
const CONTROL: &str = "@abcdefghijklmnopqrstuvwxyz[\\]^_";

/// The bytes of the sequence `keys` (docker's syntax; empty means [`DEFAULT`]).
pub fn parse(keys: &str) -> Result<Vec<u8>, BadDetachKeys> {
    let keys = if keys.is_empty() { DEFAULT } else { keys };
    keys.split(',')
        .map(|key| {
            let lower = key.to_ascii_lowercase();
            match (key.len(), lower.strip_prefix("ctrl-")) {
                (1, _) => Ok(key.as_bytes()[0]),
                (_, Some(value)) if value.len() == 1 => CONTROL
                    .find(value)
                    .map(|code| code as u8)
                    .ok_or_else(|| bad(keys, key)),
                _ => Err(bad(keys, key)),
            }
        })
        .collect()
}

fn bad(keys: &str, key: &str) -> BadDetachKeys {
    BadDetachKeys {
        keys: keys.to_string(),
        key: key.to_string(),
    }
}

/// Watches an input stream for the sequence (see the module docs).
#[derive(Debug, Clone)]
pub struct DetachMatcher {
    keys: Vec<u8>,
    matched: usize,
}

impl DetachMatcher {
    pub fn new(keys: Vec<u8>) -> DetachMatcher {
        DetachMatcher { keys, matched: 0 }
    }

    /// Appends to `out` what of `input` goes on to the container; `true` once the whole
    /// sequence was typed (what follows it is dropped, as docker does).
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> bool {
        for &byte in input {
            if self.keys.get(self.matched) == Some(&byte) {
                self.matched += 1;
                if self.matched == self.keys.len() {
                    self.matched = 0;
                    return true;
                }
                continue;
            }
            // Not the sequence after all: the held-back keys go through, then this byte
            // (which may start the sequence anew).
            out.extend_from_slice(&self.keys[..self.matched]);
            self.matched = 0;
            if self.keys.first() == Some(&byte) {
                self.matched = 1; // a one-key sequence matched at the top already
            } else {
                out.push(byte);
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_syntax() {
        assert_eq!(parse("").unwrap(), vec![0x10, 0x11]);
        assert_eq!(parse("ctrl-p,ctrl-q").unwrap(), vec![0x10, 0x11]);
        assert_eq!(parse("ctrl-a,x,CTRL-Z").unwrap(), vec![1, b'x', 26]);
        assert_eq!(parse("ctrl-@,ctrl-[,ctrl-_").unwrap(), vec![0, 27, 31]);
        for bad in ["ctrl-", "ctrl-1", "ctrl-pq", "ab", "ctrl-p,", "shift-a"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn held_back_keys_pass_on_a_mismatch() {
        let mut m = DetachMatcher::new(vec![0x10, 0x11]);
        let mut out = Vec::new();
        assert!(!m.feed(b"ab\x10", &mut out));
        assert_eq!(out, b"ab");
        assert!(!m.feed(b"c\x10\x10", &mut out));
        assert_eq!(out, b"ab\x10c\x10");
        assert!(m.feed(b"\x11rest", &mut out));
        assert_eq!(out, b"ab\x10c\x10");
        let mut one = DetachMatcher::new(vec![b'x']);
        let mut out = Vec::new();
        assert!(one.feed(b"abx", &mut out));
        assert_eq!(out, b"ab");
    }
}
