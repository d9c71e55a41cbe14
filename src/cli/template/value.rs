//! The values templates see, and how Go prints them.
//!
//! Docker renders its templates over Go structs and maps; rbuild has JSON. Go treats the two
//! differently (a missing struct field is an error, a missing map key prints `<no value>`), so
//! JSON objects are sorted into [`Val::Struct`] and [`Val::Map`] when they are converted:
//! an object is a **map** when it is the value of one of docker's map-typed fields
//! ([`MAP_FIELDS`]: `Labels`, `Volumes`, `ExposedPorts`, …), and a **struct** otherwise (the
//! command's rows, `inspect`'s object, `Config`, `RootFS`, `History` entries). Fields docker's
//! types always have but rbuild's JSON leaves out (an image without labels has no
//! `Config.Labels`) come from [`known_fields`] as Go's zero values, so `{{.Config.Labels}}`
//! prints `map[]` as in docker instead of failing.

use std::collections::BTreeMap;

use serde_json::Value;

/// Docker's fields whose Go type is a map (`map[string]string`, `map[string]struct{}`, …).
pub const MAP_FIELDS: &[&str] = &[
    "Labels",
    "Volumes",
    "ExposedPorts",
    "Annotations",
    "Data",
    "Options",
];

/// A template value.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    /// The "no value" of a missing map key (Go's invalid `reflect.Value`): prints `<no value>`.
    NoValue,
    /// JSON null (a nil pointer or interface): prints `<nil>`.
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    /// `nil` means a nil slice (prints `[]`, `json` gives `null`).
    List {
        items: Vec<Val>,
        nil: bool,
    },
    /// `nil` means a nil map (prints `map[]`, `json` gives `null`).
    Map {
        entries: BTreeMap<String, Val>,
        nil: bool,
    },
    /// A Go struct: its type name (for error messages) and fields; `filled` names the fields
    /// the JSON did not have (zero values from [`known_fields`]), which `json` leaves out so
    /// that `{{json .Config}}` prints the image's config as it is.
    Struct {
        name: String,
        fields: BTreeMap<String, Val>,
        filled: Vec<String>,
    },
}

/// The zero value of a field docker's type always has: what Go prints when it is unset.
#[derive(Clone, Copy)]
enum Zero {
    Str,
    Bool,
    List,
    Map,
    Nil,
}

/// The fields of docker's `container.Config` (inspect's `Config`), with their zero values.
fn known_fields(struct_name: &str) -> &'static [(&'static str, Zero)] {
    match struct_name {
        "Config" | "ContainerConfig" => &[
            ("Hostname", Zero::Str),
            ("Domainname", Zero::Str),
            ("User", Zero::Str),
            ("AttachStdin", Zero::Bool),
            ("AttachStdout", Zero::Bool),
            ("AttachStderr", Zero::Bool),
            ("ExposedPorts", Zero::Map),
            ("Tty", Zero::Bool),
            ("OpenStdin", Zero::Bool),
            ("StdinOnce", Zero::Bool),
            ("Env", Zero::List),
            ("Cmd", Zero::List),
            ("Healthcheck", Zero::Nil),
            ("ArgsEscaped", Zero::Bool),
            ("Image", Zero::Str),
            ("Volumes", Zero::Map),
            ("WorkingDir", Zero::Str),
            ("Entrypoint", Zero::List),
            ("OnBuild", Zero::List),
            ("Labels", Zero::Map),
            ("StopSignal", Zero::Str),
            ("Shell", Zero::List),
        ],
        _ => &[],
    }
}

impl Zero {
    fn val(self) -> Val {
        match self {
            Zero::Str => Val::Str(String::new()),
            Zero::Bool => Val::Bool(false),
            Zero::List => Val::List {
                items: Vec::new(),
                nil: true,
            },
            Zero::Map => Val::Map {
                entries: BTreeMap::new(),
                nil: true,
            },
            Zero::Nil => Val::Nil,
        }
    }
}

impl Val {
    /// Converts a command's JSON object; `type_name` names the top-level struct in errors.
    pub fn from_json(v: &Value, type_name: &str) -> Val {
        convert(v, Some(type_name), false)
    }

    /// A struct of string fields (the header context of a `table` template).
    pub fn strings(type_name: &str, fields: impl IntoIterator<Item = (String, String)>) -> Val {
        Val::Struct {
            name: type_name.to_string(),
            fields: fields.into_iter().map(|(k, v)| (k, Val::Str(v))).collect(),
            filled: Vec::new(),
        }
    }

    /// Go's notion of truth for `if`, `with`, `and`, `or`, `not`: false for the zero value.
    pub fn truthy(&self) -> bool {
        match self {
            Val::NoValue | Val::Nil => false,
            Val::Bool(b) => *b,
            Val::Int(i) => *i != 0,
            Val::Float(f) => *f != 0.0,
            Val::Str(s) => !s.is_empty(),
            Val::List { items, .. } => !items.is_empty(),
            Val::Map { entries, .. } => !entries.is_empty(),
            Val::Struct { .. } => true,
        }
    }

    /// Go's type name, for error messages.
    pub fn type_name(&self) -> String {
        match self {
            Val::NoValue => "<no value>".into(),
            Val::Nil => "<nil>".into(),
            Val::Bool(_) => "bool".into(),
            Val::Int(_) => "int".into(),
            Val::Float(_) => "float64".into(),
            Val::Str(_) => "string".into(),
            Val::List { .. } => "[]interface {}".into(),
            Val::Map { .. } => "map[string]interface {}".into(),
            Val::Struct { name, .. } => name.clone(),
        }
    }

    /// How Go's `fmt` prints the value with `%v` (and templates print it): `[a b]`,
    /// `map[k:v]` with sorted keys, `<nil>`, integral numbers without `.0`.
    pub fn go_string(&self) -> String {
        match self {
            Val::NoValue => "<no value>".into(),
            Val::Nil => "<nil>".into(),
            Val::Bool(b) => b.to_string(),
            Val::Int(i) => i.to_string(),
            Val::Float(f) => go_float(*f),
            Val::Str(s) => s.clone(),
            Val::List { items, .. } => {
                let parts: Vec<String> = items.iter().map(Val::go_string).collect();
                format!("[{}]", parts.join(" "))
            }
            Val::Map { entries, .. } => {
                let parts: Vec<String> = entries
                    .iter()
                    .map(|(k, v)| format!("{k}:{}", v.go_string()))
                    .collect();
                format!("map[{}]", parts.join(" "))
            }
            // Go prints a struct's field values in declaration order; rbuild's JSON has
            // none, so they come in key order.
            Val::Struct { fields, .. } => {
                let parts: Vec<String> = fields.values().map(Val::go_string).collect();
                format!("{{{}}}", parts.join(" "))
            }
        }
    }

    /// Back to JSON (for the `json` function): nil slices and maps are `null`, as Go marshals.
    pub fn to_json(&self) -> Value {
        match self {
            Val::NoValue | Val::Nil => Value::Null,
            Val::Bool(b) => Value::Bool(*b),
            Val::Int(i) => Value::from(*i),
            Val::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Val::Str(s) => Value::String(s.clone()),
            Val::List { nil: true, .. } | Val::Map { nil: true, .. } => Value::Null,
            Val::List { items, .. } => Value::Array(items.iter().map(Val::to_json).collect()),
            Val::Map { entries, .. } => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_json()))
                    .collect(),
            ),
            Val::Struct { fields, filled, .. } => Value::Object(
                fields
                    .iter()
                    .filter(|(k, _)| !filled.contains(k))
                    .map(|(k, v)| (k.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }
}

/// `struct_name` is set when `v` is a struct-typed field (or the root); `in_map` when it is a
/// map-typed field.
fn convert(v: &Value, struct_name: Option<&str>, in_map: bool) -> Val {
    match v {
        Value::Null if in_map => Zero::Map.val(),
        Value::Null => Val::Nil,
        Value::Bool(b) => Val::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Val::Int(i),
            // u64 beyond i64 and real floats
            None => Val::Float(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => Val::Str(s.clone()),
        Value::Array(a) => Val::List {
            items: a
                .iter()
                .map(|x| convert(x, Some("struct"), false))
                .collect(),
            nil: false,
        },
        Value::Object(o) if in_map => Val::Map {
            entries: o
                .iter()
                .map(|(k, x)| (k.clone(), convert(x, Some("struct {}"), false)))
                .collect(),
            nil: false,
        },
        Value::Object(o) => {
            let name = struct_name.unwrap_or("struct");
            let mut fields: BTreeMap<String, Val> = o
                .iter()
                .map(|(k, x)| (k.clone(), convert_field(k, x)))
                .collect();
            let mut filled = Vec::new();
            for (k, zero) in known_fields(name) {
                match fields.get(*k) {
                    None => filled.push((*k).to_string()),
                    Some(Val::Nil) => {}
                    Some(_) => continue,
                }
                fields.insert((*k).to_string(), zero.val());
            }
            Val::Struct {
                name: name.to_string(),
                fields,
                filled,
            }
        }
    }
}

fn convert_field(key: &str, v: &Value) -> Val {
    if MAP_FIELDS.contains(&key) {
        convert(v, None, true)
    } else {
        convert(v, Some(key), false)
    }
}

/// Go's `%v` for a float64: shortest representation, exponent form only below 1e-4 or from
/// 1e21 on (so sizes never print as `4.26e+06`).
pub fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let a = f.abs();
    if a != 0.0 && !(1e-4..1e21).contains(&a) {
        return go_exponent(&format!("{f:e}"));
    }
    format!("{f}")
}

/// Rust's exponent form (`1.5e-5`, `1e21`) in Go's spelling (`1.5e-05`, `1e+21`).
pub fn go_exponent(rust: &str) -> String {
    let (mant, exp) = rust.split_once('e').unwrap_or((rust, "0"));
    let (sign, digits) = match exp.strip_prefix('-') {
        Some(d) => ('-', d),
        None => ('+', exp),
    };
    format!("{mant}e{sign}{digits:0>2}")
}
