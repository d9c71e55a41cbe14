//! The functions a template can call: Go's builtins and the ones docker adds
//! (`json`, `split`, `join`, `title`, `lower`, `upper`, `pad`, `truncate`).

use std::cmp::Ordering;

use super::exec::Failure;
use super::printf;
use super::value::Val;

/// Every function name; the parser rejects others (`function "x" not defined`).
const NAMES: &[&str] = &[
    // Go's builtins (`and` and `or` are evaluated lazily by the executor)
    "and", "or", "not", "len", "index", "slice", "print", "printf", "println", "eq", "ne", "lt",
    "le", "gt", "ge", // docker's
    "json", "split", "join", "title", "lower", "upper", "pad", "truncate",
];

pub fn exists(name: &str) -> bool {
    NAMES.contains(&name)
}

fn fail<T>(msg: impl Into<String>) -> Result<T, Failure> {
    Err(Failure(msg.into()))
}

/// Checks the argument count as Go does (`wrong number of args for len: want 1 got 2`).
fn want(name: &str, n: usize, args: &[Val]) -> Result<(), Failure> {
    if args.len() == n {
        Ok(())
    } else {
        fail(format!(
            "wrong number of args for {name}: want {n} got {}",
            args.len()
        ))
    }
}

fn string_arg(name: &str, v: &Val) -> Result<String, Failure> {
    match v {
        Val::Str(s) => Ok(s.clone()),
        other => fail(format!(
            "error calling {name}: wrong type for value; expected string; got {}",
            other.type_name()
        )),
    }
}

fn int_arg(name: &str, v: &Val) -> Result<i64, Failure> {
    match v {
        Val::Int(i) => Ok(*i),
        Val::Float(f) if f.fract() == 0.0 => Ok(*f as i64),
        other => fail(format!(
            "error calling {name}: wrong type for value; expected int; got {}",
            other.type_name()
        )),
    }
}

pub fn call(name: &str, args: &[Val]) -> Result<Val, Failure> {
    match name {
        "not" => {
            want(name, 1, args)?;
            Ok(Val::Bool(!args[0].truthy()))
        }
        "len" => {
            want(name, 1, args)?;
            Ok(Val::Int(match &args[0] {
                Val::Str(s) => s.len() as i64,
                Val::List { items, .. } => items.len() as i64,
                Val::Map { entries, .. } => entries.len() as i64,
                other => {
                    return fail(format!(
                        "error calling len: len of type {}",
                        other.type_name()
                    ))
                }
            }))
        }
        "index" => {
            if args.is_empty() {
                return fail("wrong number of args for index: want at least 1 got 0");
            }
            let mut v = args[0].clone();
            for key in &args[1..] {
                v = index(v, key)
                    .map_err(|Failure(m)| Failure(format!("error calling index: {m}")))?;
            }
            Ok(v)
        }
        "slice" => slice(args).map_err(|Failure(m)| Failure(format!("error calling slice: {m}"))),
        "print" => Ok(Val::Str(sprint(args))),
        "println" => {
            let parts: Vec<String> = args.iter().map(Val::go_string).collect();
            Ok(Val::Str(format!("{}\n", parts.join(" "))))
        }
        "printf" => {
            let Some(Val::Str(f)) = args.first() else {
                return fail("error calling printf: the format must be a string");
            };
            Ok(Val::Str(printf::sprintf(f, &args[1..])))
        }
        "eq" => {
            if args.len() < 2 {
                return fail("error calling eq: missing argument for comparison");
            }
            for b in &args[1..] {
                if compare(&args[0], b, true)? == Ordering::Equal {
                    return Ok(Val::Bool(true));
                }
            }
            Ok(Val::Bool(false))
        }
        "ne" | "lt" | "le" | "gt" | "ge" => {
            want(name, 2, args)?;
            let o = compare(&args[0], &args[1], name == "ne")
                .map_err(|Failure(m)| Failure(format!("error calling {name}: {m}")))?;
            Ok(Val::Bool(match name {
                "ne" => o != Ordering::Equal,
                "lt" => o == Ordering::Less,
                "le" => o != Ordering::Greater,
                "gt" => o == Ordering::Greater,
                _ => o != Ordering::Less,
            }))
        }
        "json" => {
            want(name, 1, args)?;
            Ok(Val::Str(args[0].to_json().to_string()))
        }
        "split" => {
            want(name, 2, args)?;
            let s = string_arg(name, &args[0])?;
            let sep = string_arg(name, &args[1])?;
            let items: Vec<Val> = if sep.is_empty() {
                s.chars().map(|c| Val::Str(c.to_string())).collect()
            } else {
                s.split(sep.as_str())
                    .map(|p| Val::Str(p.to_string()))
                    .collect()
            };
            Ok(Val::List { items, nil: false })
        }
        "join" => {
            want(name, 2, args)?;
            let Val::List { items, .. } = &args[0] else {
                return fail(format!(
                    "error calling join: wrong type for value; expected []string; got {}",
                    args[0].type_name()
                ));
            };
            let sep = string_arg(name, &args[1])?;
            let parts: Vec<String> = items.iter().map(Val::go_string).collect();
            Ok(Val::Str(parts.join(&sep)))
        }
        "title" => {
            want(name, 1, args)?;
            Ok(Val::Str(title(&string_arg(name, &args[0])?)))
        }
        "lower" => {
            want(name, 1, args)?;
            Ok(Val::Str(string_arg(name, &args[0])?.to_lowercase()))
        }
        "upper" => {
            want(name, 1, args)?;
            Ok(Val::Str(string_arg(name, &args[0])?.to_uppercase()))
        }
        "pad" => {
            want(name, 3, args)?;
            let s = string_arg(name, &args[0])?;
            let before = int_arg(name, &args[1])?.max(0) as usize;
            let after = int_arg(name, &args[2])?.max(0) as usize;
            Ok(Val::Str(format!(
                "{}{s}{}",
                " ".repeat(before),
                " ".repeat(after)
            )))
        }
        "truncate" => {
            want(name, 2, args)?;
            let s = string_arg(name, &args[0])?;
            let n = int_arg(name, &args[1])?.max(0) as usize;
            Ok(Val::Str(s.chars().take(n).collect()))
        }
        other => fail(format!("function \"{other}\" not defined")),
    }
}

/// Go's `fmt.Sprint`: a space between two operands when neither is a string.
fn sprint(args: &[Val]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 && !matches!(a, Val::Str(_)) && !matches!(args[i - 1], Val::Str(_)) {
            out.push(' ');
        }
        out.push_str(&a.go_string());
    }
    out
}

/// `strings.Title`: upper-cases the first letter of each word.
fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev_letter = false;
    for c in s.chars() {
        if !prev_letter {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        prev_letter = c.is_alphanumeric() || c == '_' || c == '\'';
    }
    out
}

fn index(v: Val, key: &Val) -> Result<Val, Failure> {
    match v {
        Val::List { mut items, .. } => {
            let i = index_int(key)?;
            if i < 0 || i as usize >= items.len() {
                return fail(format!("index out of range: {i}"));
            }
            Ok(items.swap_remove(i as usize))
        }
        Val::Str(s) => {
            let i = index_int(key)?;
            match usize::try_from(i).ok().and_then(|i| s.as_bytes().get(i)) {
                Some(b) => Ok(Val::Int(i64::from(*b))),
                None => fail(format!("index out of range: {i}")),
            }
        }
        // a missing key gives the element's zero value (docker's maps hold strings)
        Val::Map { mut entries, .. } => match key {
            Val::Str(k) => Ok(entries.remove(k).unwrap_or(Val::Str(String::new()))),
            other => fail(format!(
                "value has type {}; should be string",
                other.type_name()
            )),
        },
        Val::Nil | Val::NoValue => fail("index of untyped nil"),
        other => fail(format!("can't index item of type {}", other.type_name())),
    }
}

fn index_int(key: &Val) -> Result<i64, Failure> {
    match key {
        Val::Int(i) => Ok(*i),
        other => fail(format!(
            "cannot index slice/array with type {}",
            other.type_name()
        )),
    }
}

/// `slice x 1 2`: `x[1:2]` of a string or a list.
fn slice(args: &[Val]) -> Result<Val, Failure> {
    let Some(v) = args.first() else {
        return fail("wrong number of args for slice: want at least 1 got 0");
    };
    if args.len() > 3 {
        return fail(format!("too many slice indexes: {}", args.len() - 1));
    }
    let len = match v {
        Val::Str(s) => s.len(),
        Val::List { items, .. } => items.len(),
        other => return fail(format!("can't slice item of type {}", other.type_name())),
    };
    let mut bounds = [0, len];
    for (k, a) in args[1..].iter().enumerate() {
        let i = index_int(a)?;
        if i < 0 || i as usize > len {
            return fail(format!("index out of range: {i}"));
        }
        bounds[k] = i as usize;
    }
    let [lo, hi] = bounds;
    if lo > hi {
        return fail(format!("invalid slice index: {lo} > {hi}"));
    }
    Ok(match v {
        Val::Str(s) => match s.get(lo..hi) {
            Some(sub) => Val::Str(sub.to_string()),
            None => return fail("slice splits a character"),
        },
        Val::List { items, .. } => Val::List {
            items: items[lo..hi].to_vec(),
            nil: false,
        },
        _ => unreachable!("checked above"),
    })
}

/// Go's comparisons of basic values: numbers with numbers, strings with strings, bools with
/// bools (equality only); anything else is an error.
fn compare(a: &Val, b: &Val, equality: bool) -> Result<Ordering, Failure> {
    let num = |v: &Val| match v {
        Val::Int(i) => Some(*i as f64),
        Val::Float(f) => Some(*f),
        _ => None,
    };
    match (a, b) {
        (Val::Int(x), Val::Int(y)) => Ok(x.cmp(y)),
        (Val::Str(x), Val::Str(y)) => Ok(x.cmp(y)),
        (Val::Bool(x), Val::Bool(y)) if equality => Ok(x.cmp(y)),
        (Val::Nil, Val::Nil) if equality => Ok(Ordering::Equal),
        _ => match (num(a), num(b)) {
            (Some(x), Some(y)) => x
                .partial_cmp(&y)
                .ok_or_else(|| Failure("incomparable NaN".into())),
            _ if is_basic(a) && is_basic(b) => fail("incompatible types for comparison"),
            _ => fail("invalid type for comparison"),
        },
    }
}

fn is_basic(v: &Val) -> bool {
    matches!(v, Val::Bool(_) | Val::Int(_) | Val::Float(_) | Val::Str(_))
}
