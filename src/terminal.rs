//! What the live displays (the build's steps, the transfer bars) ask about stderr's terminal:
//! whether to draw live at all, its size (the `TIOCGWINSZ` ioctl, through `console`; never
//! `$COLUMNS`, which shells do not export and which goes stale on a resize), whether colour
//! is wanted, and how to cut a line to a width counted in terminal columns (a CJK character
//! or an emoji takes two; a line longer than the terminal wraps, and a redraw that moves the
//! cursor up by the lines it drew would then overwrite the wrong ones).

use std::io::IsTerminal;

use unicode_width::UnicodeWidthChar;

/// Whether `auto` progress draws a live display: stderr is a terminal that can move the
/// cursor (`TERM` set and not `dumb`; as indicatif decides, so bars and steps agree).
pub fn stderr_is_live() -> bool {
    std::io::stderr().is_terminal() && !console::is_dumb()
}

/// Rows and columns of the terminal on stderr, when stderr is one.
pub fn stderr_size() -> Option<(usize, usize)> {
    console::Term::stderr()
        .size_checked()
        .map(|(rows, cols)| (usize::from(rows), usize::from(cols)))
}

/// Whether escape sequences for colour and dimming may be written (<https://no-color.org>:
/// `NO_COLOR` set to anything but the empty string turns them off; a dumb terminal has none).
pub fn colour_wanted() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && !console::is_dumb()
}

/// `text` as one line of at most `width` columns: control characters (escape sequences a
/// step printed, tabs, newlines) become spaces, and a longer line is cut with `…`.
pub fn fit(text: &str, width: usize) -> String {
    let mut out = String::with_capacity(text.len().min(width * 4));
    let mut used = 0;
    for c in text.chars().map(|c| if c.is_control() { ' ' } else { c }) {
        let w = c.width().unwrap_or(0);
        if used + w > width {
            // Room for the `…`: drop characters from the end until it fits.
            while used + 1 > width {
                match out.pop() {
                    Some(last) => used -= last.width().unwrap_or(0),
                    None => return out,
                }
            }
            out.push('…');
            return out;
        }
        used += w;
        out.push(c);
    }
    out
}

/// The width of `text` in terminal columns.
pub fn width(text: &str) -> usize {
    text.chars().map(|c| c.width().unwrap_or(0)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_counts_columns_not_characters() {
        assert_eq!(fit("hello", 10), "hello");
        assert_eq!(fit("hello world", 5), "hell…");
        // Four 2-column characters are 8 columns: cut to 5 columns.
        let cut = fit("日本語テキスト", 5);
        assert_eq!(cut, "日本…");
        assert!(width(&cut) <= 5);
        assert_eq!(fit("a\x1b[2Jb\tc\n", 10), "a [2Jb c ");
        assert_eq!(fit("abc", 0), "");
        for w in 0..20 {
            assert!(width(&fit("ｗｉｄｅ and narrow 😀 text", w)) <= w, "{w}");
        }
    }
}
