//! Go's `fmt.Sprintf` for template values: verbs `%v %s %d %q %t %f %e %g %x %X %o %b %c %T %%`,
//! flags `- + 0 space`, width and precision (also `*`), and Go's complaints in the output
//! (`%!d(string=x)`, `%!s(MISSING)`, `%!(EXTRA int=1)`) rather than an error.

use super::value::{go_exponent, go_float, Val};

pub fn sprintf(format: &str, args: &[Val]) -> String {
    let mut out = String::new();
    let mut next = 0;
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = Spec::default();
        while let Some(&f) = chars.peek() {
            match f {
                '-' => spec.minus = true,
                '+' => spec.plus = true,
                '0' => spec.zero = true,
                ' ' => spec.space = true,
                '#' => {}
                _ => break,
            }
            chars.next();
        }
        spec.width = number(&mut chars, args, &mut next);
        if chars.peek() == Some(&'.') {
            chars.next();
            spec.prec = Some(number(&mut chars, args, &mut next).unwrap_or(0));
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(next) else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        next += 1;
        out.push_str(&spec.apply(verb, arg));
    }
    if next < args.len() {
        let extra: Vec<String> = args[next..]
            .iter()
            .map(|a| format!("{}={}", a.type_name(), a.go_string()))
            .collect();
        out.push_str(&format!("%!(EXTRA {})", extra.join(", ")));
    }
    out
}

/// A width or precision: digits, or `*` taking an int argument.
fn number(
    chars: &mut std::iter::Peekable<std::str::Chars>,
    args: &[Val],
    next: &mut usize,
) -> Option<usize> {
    if chars.peek() == Some(&'*') {
        chars.next();
        let v = match args.get(*next) {
            Some(Val::Int(i)) => Some((*i).max(0) as usize),
            _ => None,
        };
        *next += 1;
        return v;
    }
    let mut n: Option<usize> = None;
    while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
        n = Some(n.unwrap_or(0) * 10 + d as usize);
        chars.next();
    }
    n
}

#[derive(Default)]
struct Spec {
    minus: bool,
    plus: bool,
    zero: bool,
    space: bool,
    width: Option<usize>,
    prec: Option<usize>,
}

impl Spec {
    fn apply(&self, verb: char, arg: &Val) -> String {
        let body = match self.body(verb, arg) {
            Some(b) => b,
            None => return format!("%!{verb}({}={})", arg.type_name(), arg.go_string()),
        };
        self.pad(body, matches!(arg, Val::Int(_) | Val::Float(_)))
    }

    fn body(&self, verb: char, arg: &Val) -> Option<String> {
        let sign = |s: String, negative: bool| {
            if negative {
                s
            } else if self.plus {
                format!("+{s}")
            } else if self.space {
                format!(" {s}")
            } else {
                s
            }
        };
        Some(match (verb, arg) {
            ('T', a) => a.type_name(),
            ('v', Val::Float(f)) if self.prec.is_none() => sign(go_float(*f), *f < 0.0),
            ('v' | 'd', Val::Int(i)) => sign(i.to_string(), *i < 0),
            ('v' | 's', Val::Str(s)) => match self.prec {
                Some(p) => s.chars().take(p).collect(),
                None => s.clone(),
            },
            ('v' | 's', a) if !matches!(a, Val::Int(_) | Val::Float(_) | Val::Bool(_)) => {
                a.go_string()
            }
            ('v' | 't', Val::Bool(b)) => b.to_string(),
            ('q', Val::Str(s)) => quote(s),
            ('q' | 'c', Val::Int(i)) => {
                let c = char::from_u32(u32::try_from(*i).ok()?).unwrap_or('\u{fffd}');
                if verb == 'c' {
                    c.to_string()
                } else {
                    format!("'{c}'")
                }
            }
            ('x' | 'X', Val::Int(i)) => {
                let hex = format!("{:x}", i.unsigned_abs());
                let hex = if verb == 'X' { hex.to_uppercase() } else { hex };
                if *i < 0 {
                    format!("-{hex}")
                } else {
                    sign(hex, false)
                }
            }
            ('o', Val::Int(i)) => format!("{i:o}"),
            ('b', Val::Int(i)) => format!("{i:b}"),
            ('x', Val::Str(s)) => s.bytes().map(|b| format!("{b:02x}")).collect(),
            ('X', Val::Str(s)) => s.bytes().map(|b| format!("{b:02X}")).collect(),
            ('f' | 'F' | 'e' | 'g' | 'v', Val::Float(f)) => {
                let p = self.prec;
                let s = match verb {
                    'e' => go_exponent(&format!("{:.*e}", p.unwrap_or(6), f)),
                    'g' | 'v' => match p {
                        Some(p) => format!("{:.*}", p.saturating_sub(1), f),
                        None => go_float(*f),
                    },
                    _ => format!("{:.*}", p.unwrap_or(6), f),
                };
                sign(s, *f < 0.0)
            }
            _ => return None,
        })
    }

    fn pad(&self, body: String, numeric: bool) -> String {
        let Some(w) = self.width else { return body };
        let len = body.chars().count();
        if len >= w {
            return body;
        }
        let fill = w - len;
        if self.minus {
            format!("{body}{}", " ".repeat(fill))
        } else if self.zero && numeric {
            let (sign, digits) = match body.chars().next() {
                Some(c @ ('-' | '+' | ' ')) => (c.to_string(), &body[1..]),
                _ => (String::new(), &body[..]),
            };
            format!("{sign}{}{digits}", "0".repeat(fill))
        } else {
            format!("{}{body}", " ".repeat(fill))
        }
    }
}

/// Go's `strconv.Quote`: double quotes, backslash escapes for quotes, backslashes and control
/// characters.
pub fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\x7f' => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
