//! ARG and ENV scoping, as docker (BuildKit) applies it, and which instructions expand words.
//!
//! - ARGs before the first FROM ([`MetaArgs`]) are visible only to FROM lines. A stage sees
//!   one only after re-declaring it (`ARG NAME` without a default takes the global value).
//! - `--build-arg NAME=value` overrides the default of a declared ARG (global or in a stage).
//! - ENV overrides ARG: a name set by ENV (in the stage or inherited from the base image)
//!   expands to the ENV value even when an ARG of the same name is declared later.
//! - The automatic platform args (`TARGETPLATFORM`, `TARGETOS`, `TARGETARCH`,
//!   `TARGETVARIANT`, `BUILDPLATFORM`, `BUILDOS`, `BUILDARCH`, `BUILDVARIANT`) are set in the
//!   global scope; a stage sees them after `ARG NAME`.
//! - The predefined proxy args (`HTTP_PROXY`, `https_proxy`, ...) need no declaration: when
//!   given with `--build-arg` RUN sees them, but they are kept out of the image config and
//!   history.
//! - ARG values never go into the image's `Env`; RUN sees the declared ones as environment.
//!
//! Which instructions expand variables themselves ([`expands_words`]) and which leave it to
//! the shell (RUN, CMD, ENTRYPOINT, HEALTHCHECK run `$VAR` through `/bin/sh` at run time).
//!
//! ```
//! use std::collections::BTreeMap;
//! use rbuild::dockerfile::eval::{BuildArgs, StageVars};
//! use rbuild::dockerfile::instructions::ArgDef;
//! use rbuild::dockerfile::shell::ShellLex;
//!
//! let mut given = BTreeMap::new();
//! given.insert("VERSION".to_string(), "2".to_string());
//! let args = BuildArgs::new(given, Vec::new());
//! let mut vars = StageVars::new(&["PATH=/bin".to_string()]);
//! let lex = ShellLex::default();
//! vars.declare_arg(&ArgDef { name: "VERSION".into(), default: Some("1".into()) }, &args, &BTreeMap::new(), &lex).unwrap();
//! assert_eq!(lex.process_word("v$VERSION", &vars.expansion_env()).unwrap(), "v2");
//! assert_eq!(vars.config_env(), ["PATH=/bin"]);
//! ```

use std::collections::{BTreeMap, BTreeSet};

use super::instructions::ArgDef;
use super::shell::{ExpandError, ShellLex};

/// The proxy build args docker predefines (usable without an ARG line, never stored).
pub const PROXY_ARGS: [&str; 10] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// Whether `name` is one of [`PROXY_ARGS`].
pub fn is_proxy_arg(name: &str) -> bool {
    PROXY_ARGS.contains(&name)
}

/// Whether the instruction `keyword` (lowercase) has its words expanded by the builder.
/// RUN, CMD, ENTRYPOINT and HEALTHCHECK leave `$VAR` to the shell; ONBUILD's trigger is
/// expanded when it runs (in the child build), not when it is recorded.
pub fn expands_words(keyword: &str) -> bool {
    matches!(
        keyword,
        "from"
            | "copy"
            | "add"
            | "env"
            | "arg"
            | "label"
            | "expose"
            | "stopsignal"
            | "user"
            | "volume"
            | "workdir"
    )
}

/// A platform as `os/arch[/variant]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    /// The platform rbuild runs on (`linux/amd64` on x86-64).
    pub fn host() -> Platform {
        Platform {
            os: "linux".into(),
            architecture: crate::image::oci::host_architecture().into(),
            variant: None,
        }
    }

    /// Parses `os/arch[/variant]`.
    pub fn parse(text: &str) -> Option<Platform> {
        let mut parts = text.split('/');
        let os = parts.next().filter(|s| !s.is_empty())?;
        let architecture = parts.next().filter(|s| !s.is_empty())?;
        let variant = parts.next().map(str::to_string);
        if parts.next().is_some() {
            return None;
        }
        Some(Platform {
            os: os.to_string(),
            architecture: architecture.to_string(),
            variant,
        })
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// The automatic platform args for a build on `build` for `target`.
pub fn platform_args(build: &Platform, target: &Platform) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (prefix, p) in [("TARGET", target), ("BUILD", build)] {
        out.push((format!("{prefix}PLATFORM"), p.to_string()));
        out.push((format!("{prefix}OS"), p.os.clone()));
        out.push((format!("{prefix}ARCH"), p.architecture.clone()));
        out.push((
            format!("{prefix}VARIANT"),
            p.variant.clone().unwrap_or_default(),
        ));
    }
    out
}

/// Errors of ARG/ENV evaluation.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error(transparent)]
    Expand(#[from] ExpandError),
}

/// The `--build-arg` values and the automatic args of one build, with a record of which
/// were used (for docker's "build-args were not consumed" warning).
#[derive(Debug, Default)]
pub struct BuildArgs {
    given: BTreeMap<String, String>,
    automatic: Vec<(String, String)>,
    used: std::sync::Mutex<BTreeSet<String>>,
}

impl BuildArgs {
    /// `given` are the `--build-arg` values (already resolved from the environment for
    /// `--build-arg NAME`); `automatic` the platform args.
    pub fn new(given: BTreeMap<String, String>, automatic: Vec<(String, String)>) -> BuildArgs {
        BuildArgs {
            given,
            automatic,
            used: Default::default(),
        }
    }

    /// The `--build-arg` value of `name`, marking it used.
    fn given(&self, name: &str) -> Option<&str> {
        let v = self.given.get(name).map(String::as_str);
        if v.is_some() {
            if let Ok(mut used) = self.used.lock() {
                used.insert(name.to_string());
            }
        }
        v
    }

    fn automatic(&self, name: &str) -> Option<&str> {
        self.automatic
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The proxy args given with `--build-arg` (visible to RUN without an ARG line).
    pub fn proxies(&self) -> Vec<(String, String)> {
        self.given
            .iter()
            .filter(|(k, _)| is_proxy_arg(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// `--build-arg` names that no ARG declared (proxy args excepted), sorted.
    pub fn unused(&self) -> Vec<String> {
        let used = self.used.lock().map(|u| u.clone()).unwrap_or_default();
        self.given
            .keys()
            .filter(|k| !used.contains(*k) && !is_proxy_arg(k))
            .cloned()
            .collect()
    }
}

/// The values of the ARGs before the first FROM, plus the automatic args: what FROM lines
/// and `ARG NAME` re-declarations in stages see.
#[derive(Debug, Clone, Default)]
pub struct MetaArgs {
    values: BTreeMap<String, String>,
}

impl MetaArgs {
    /// Evaluates the meta ARG definitions in order: each default is expanded against the
    /// ones before it (and the automatic args); `--build-arg` values win over defaults.
    pub fn evaluate<'a>(
        defs: impl IntoIterator<Item = &'a ArgDef>,
        args: &BuildArgs,
        lex: &ShellLex,
    ) -> Result<MetaArgs, EvalError> {
        let mut values: BTreeMap<String, String> = args.automatic.iter().cloned().collect();
        for def in defs {
            let value = match args.given(&def.name) {
                Some(v) => Some(v.to_string()),
                None => match &def.default {
                    Some(d) => Some(lex.process_word(d, &values)?),
                    None => None,
                },
            };
            match value {
                Some(v) => {
                    values.insert(def.name.clone(), v);
                }
                None => {
                    values.remove(&def.name);
                }
            }
        }
        Ok(MetaArgs { values })
    }

    /// The variables a FROM line expands with.
    pub fn values(&self) -> &BTreeMap<String, String> {
        &self.values
    }
}

/// The variables of one stage: the image config's `Env` and the declared ARGs.
#[derive(Debug, Clone, Default)]
pub struct StageVars {
    /// `Env` of the image being built, in order (inherited from the base, then ENV lines).
    env: Vec<(String, String)>,
    /// Declared ARGs in declaration order; `None` when declared without any value.
    args: Vec<(String, Option<String>)>,
}

impl StageVars {
    /// Starts a stage whose base image has `Env` entries `base_env` (`KEY=value`).
    pub fn new(base_env: &[String]) -> StageVars {
        let env = base_env
            .iter()
            .map(|e| match e.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (e.clone(), String::new()),
            })
            .collect();
        StageVars {
            env,
            args: Vec::new(),
        }
    }

    /// `ARG name[=default]` in a stage. The value is the `--build-arg` one if given, else the
    /// default (expanded with the stage's variables), else the global (meta) value or the
    /// automatic arg of that name.
    pub fn declare_arg(
        &mut self,
        def: &ArgDef,
        args: &BuildArgs,
        meta: &BTreeMap<String, String>,
        lex: &ShellLex,
    ) -> Result<(), EvalError> {
        let value = match args.given(&def.name) {
            Some(v) => Some(v.to_string()),
            None => match &def.default {
                Some(d) => Some(lex.process_word(d, &self.expansion_env())?),
                None => meta
                    .get(&def.name)
                    .cloned()
                    .or_else(|| args.automatic(&def.name).map(str::to_string)),
            },
        };
        self.args.retain(|(k, _)| k != &def.name);
        self.args.push((def.name.clone(), value));
        Ok(())
    }

    /// `ENV key=value` (value already expanded).
    pub fn set_env(&mut self, key: &str, value: &str) {
        match self.env.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value.to_string(),
            None => self.env.push((key.to_string(), value.to_string())),
        }
    }

    /// What the builder expands words with: declared ARGs with a value, overridden by ENV.
    pub fn expansion_env(&self) -> BTreeMap<String, String> {
        let mut out: BTreeMap<String, String> = self
            .args
            .iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| (k.clone(), v.clone())))
            .collect();
        for (k, v) in &self.env {
            out.insert(k.clone(), v.clone());
        }
        out
    }

    /// The image config's `Env` (ARGs never appear here).
    pub fn config_env(&self) -> Vec<String> {
        self.env.iter().map(|(k, v)| format!("{k}={v}")).collect()
    }

    /// Declared ARGs with a value that ENV does not shadow, in declaration order (what RUN
    /// sees on top of `Env`, and what its cache key and history record).
    pub fn visible_args(&self) -> Vec<(String, String)> {
        self.args
            .iter()
            .filter(|(k, _)| !self.env.iter().any(|(e, _)| e == k))
            .filter_map(|(k, v)| v.as_ref().map(|v| (k.clone(), v.clone())))
            .collect()
    }

    /// The environment of a RUN: `Env`, then the visible ARGs, then proxy args (unless
    /// declared or set by ENV already), as `KEY=value`.
    pub fn run_env(&self, proxies: &[(String, String)]) -> Vec<String> {
        let mut out = self.config_env();
        let visible = self.visible_args();
        for (k, v) in &visible {
            out.push(format!("{k}={v}"));
        }
        for (k, v) in proxies {
            let shadowed =
                visible.iter().any(|(a, _)| a == k) || self.env.iter().any(|(e, _)| e == k);
            if !shadowed {
                out.push(format!("{k}={v}"));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(name: &str, default: Option<&str>) -> ArgDef {
        ArgDef {
            name: name.into(),
            default: default.map(str::to_string),
        }
    }

    fn given(pairs: &[(&str, &str)]) -> BuildArgs {
        BuildArgs::new(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            platform_args(&Platform::host(), &Platform::host()),
        )
    }

    #[test]
    fn meta_args_visible_to_from_only_until_redeclared() {
        let lex = ShellLex::default();
        let args = given(&[]);
        let meta = MetaArgs::evaluate([&def("TAG", Some("1.0"))], &args, &lex).unwrap();
        assert_eq!(
            lex.process_word("busybox:$TAG", meta.values()).unwrap(),
            "busybox:1.0"
        );
        let mut stage = StageVars::new(&[]);
        assert_eq!(
            lex.process_word("[$TAG]", &stage.expansion_env()).unwrap(),
            "[]"
        );
        stage
            .declare_arg(&def("TAG", None), &args, meta.values(), &lex)
            .unwrap();
        assert_eq!(
            lex.process_word("[$TAG]", &stage.expansion_env()).unwrap(),
            "[1.0]"
        );
    }

    #[test]
    fn build_arg_overrides_defaults_and_meta() {
        let lex = ShellLex::default();
        let args = given(&[("TAG", "2.0"), ("X", "given")]);
        let meta = MetaArgs::evaluate([&def("TAG", Some("1.0"))], &args, &lex).unwrap();
        assert_eq!(meta.values()["TAG"], "2.0");
        let mut stage = StageVars::new(&[]);
        stage
            .declare_arg(&def("X", Some("default")), &args, meta.values(), &lex)
            .unwrap();
        assert_eq!(
            stage.visible_args(),
            [("X".to_string(), "given".to_string())]
        );
        assert!(args.unused().is_empty());
        let args2 = given(&[("NEVER", "1"), ("HTTP_PROXY", "http://p")]);
        MetaArgs::evaluate([&def("TAG", None)], &args2, &lex).unwrap();
        assert_eq!(args2.unused(), ["NEVER"]);
    }

    #[test]
    fn env_overrides_arg_and_args_stay_out_of_env() {
        let lex = ShellLex::default();
        let args = given(&[]);
        let mut stage = StageVars::new(&["PATH=/bin".into()]);
        stage.set_env("V", "from-env");
        stage
            .declare_arg(&def("V", Some("from-arg")), &args, &BTreeMap::new(), &lex)
            .unwrap();
        stage
            .declare_arg(&def("A", Some("a")), &args, &BTreeMap::new(), &lex)
            .unwrap();
        assert_eq!(
            lex.process_word("$V", &stage.expansion_env()).unwrap(),
            "from-env"
        );
        assert_eq!(stage.config_env(), ["PATH=/bin", "V=from-env"]);
        assert_eq!(stage.run_env(&[]), ["PATH=/bin", "V=from-env", "A=a"]);
    }

    #[test]
    fn arg_default_expands_earlier_vars() {
        let lex = ShellLex::default();
        let args = given(&[]);
        let mut stage = StageVars::new(&["BASE=/opt".into()]);
        stage
            .declare_arg(
                &def("DIR", Some("$BASE/app")),
                &args,
                &BTreeMap::new(),
                &lex,
            )
            .unwrap();
        assert_eq!(stage.visible_args()[0].1, "/opt/app");
    }

    #[test]
    fn platform_args_need_declaration_in_stage() {
        let lex = ShellLex::default();
        let args = given(&[]);
        let meta = MetaArgs::evaluate([], &args, &lex).unwrap();
        assert_eq!(meta.values()["TARGETOS"], "linux");
        let mut stage = StageVars::new(&[]);
        assert!(!stage.expansion_env().contains_key("TARGETARCH"));
        stage
            .declare_arg(&def("TARGETARCH", None), &args, &BTreeMap::new(), &lex)
            .unwrap();
        assert_eq!(
            stage.expansion_env()["TARGETARCH"],
            crate::image::oci::host_architecture()
        );
    }

    #[test]
    fn proxy_args_reach_run_only() {
        let lex = ShellLex::default();
        let args = given(&[("HTTP_PROXY", "http://proxy:3128")]);
        let stage = StageVars::new(&[]);
        assert!(stage.visible_args().is_empty());
        assert_eq!(
            stage.run_env(&args.proxies()),
            ["HTTP_PROXY=http://proxy:3128"]
        );
        assert!(stage.config_env().is_empty());
        let _ = lex;
    }

    #[test]
    fn arg_without_value_is_declared_but_unset() {
        let lex = ShellLex::default();
        let args = given(&[]);
        let mut stage = StageVars::new(&[]);
        stage
            .declare_arg(&def("NOPE", None), &args, &BTreeMap::new(), &lex)
            .unwrap();
        assert!(stage.run_env(&[]).is_empty());
        assert_eq!(
            lex.process_word("${NOPE:-unset}", &stage.expansion_env())
                .unwrap(),
            "unset"
        );
    }

    #[test]
    fn which_instructions_expand() {
        for k in [
            "from",
            "copy",
            "add",
            "env",
            "arg",
            "label",
            "expose",
            "stopsignal",
            "user",
            "volume",
            "workdir",
        ] {
            assert!(expands_words(k), "{k}");
        }
        for k in [
            "run",
            "cmd",
            "entrypoint",
            "healthcheck",
            "shell",
            "onbuild",
            "maintainer",
        ] {
            assert!(!expands_words(k), "{k}");
        }
    }
}
