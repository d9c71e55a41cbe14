//! BuildKit's AST dump format (`parser.Node.Dump()`), used by `rbuild parse` and the
//! conformance tests: one `(keyword ["--flag"...] "arg"...)` line per instruction, strings
//! quoted like Go's `strconv.Quote`.

use super::ast::{Dockerfile, Node};
use super::line_parsers::is_known_keyword;

/// The dump of a whole file: one line per instruction, each ending with `\n`.
pub fn dump(df: &Dockerfile) -> String {
    let mut out = String::new();
    for node in &df.nodes {
        out.push('(');
        out.push_str(&dump_node(node));
        out.push_str(")\n");
    }
    out
}

/// The dump of one instruction, without the surrounding parentheses.
pub fn dump_node(node: &Node) -> String {
    let mut out = node.keyword.clone();
    if !node.flags.is_empty() {
        out.push_str(" [");
        for (i, flag) in node.flags.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            out.push_str(&go_quote(&flag.text));
        }
        out.push(']');
    }
    if !is_known_keyword(&node.keyword) {
        // BuildKit keeps an empty argument node for instructions it does not know.
        out.push_str(" \"\"");
        return out;
    }
    for arg in &node.args {
        out.push(' ');
        out.push_str(&go_quote(arg));
    }
    for child in &node.children {
        out.push_str(" (");
        out.push_str(&dump_node(child));
        out.push(')');
    }
    out
}

/// Quotes `s` like Go's `strconv.Quote`: `\"`, `\\`, the C escapes, `\xNN` for other ASCII
/// control characters, `\uNNNN`/`\UNNNNNNNN` for non-printable runes; printable Unicode is kept.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0C' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0B' => out.push_str("\\v"),
            c if is_go_printable(c) => out.push(c),
            c if (c as u32) < 0x80 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// An approximation of Go's `unicode.IsPrint`: not a control character, not white space other
/// than U+0020, and not one of the common format, private-use or non-character code points.
fn is_go_printable(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    let u = c as u32;
    !matches!(u,
        0xAD | 0x600..=0x605 | 0x61C | 0x6DD | 0x70F | 0x180E | 0x200B..=0x200F
        | 0x202A..=0x202E | 0x2060..=0x206F | 0xD800..=0xF8FF | 0xFEFF | 0xFFF9..=0xFFFB
        | 0xFFFE | 0xFFFF | 0xE0000..=0xE007F | 0xF0000..)
}

#[cfg(test)]
mod tests {
    use super::go_quote;

    #[test]
    fn quotes_like_go() {
        assert_eq!(go_quote("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(go_quote("\u{0}\u{1b}\u{7f}"), r#""\x00\x1b\x7f""#);
        assert_eq!(go_quote("♥ \u{a0}\u{feff}"), "\"♥ \\u00a0\\ufeff\"");
        assert_eq!(go_quote("\u{8}\u{c}\n\r\t"), r#""\b\f\n\r\t""#);
    }
}
