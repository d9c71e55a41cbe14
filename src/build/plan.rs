//! Planning: which stages a build needs, in which order, and what each one starts from.
//!
//! FROM lines are expanded with the meta ARGs; a base naming an earlier stage (`FROM build`,
//! case-insensitive) or `scratch` is resolved here, anything else is an image. Stages used by
//! `COPY --from` and `RUN --mount=from=` are dependencies too. Only the target stage and what
//! it (transitively) depends on are built, so an unused stage that would fail is skipped.

use std::collections::BTreeSet;

use crate::dockerfile::eval::MetaArgs;
use crate::dockerfile::instructions::{Instruction, Stages};
use crate::dockerfile::shell::ShellLex;

use super::BuildError;

/// What a stage (or a `COPY --from`) starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The empty image.
    Scratch,
    /// An earlier stage, by index.
    Stage(usize),
    /// An image reference, expanded.
    Image(String),
}

/// One stage of the plan.
#[derive(Debug, Clone)]
pub struct PlannedStage {
    /// Index in the Dockerfile.
    pub index: usize,
    /// What progress lines call it: its name, or `stage-N`.
    pub display: String,
    /// Its base.
    pub base: Source,
    /// The stages it needs (its base, `COPY --from`, `RUN --mount=from=`).
    pub deps: BTreeSet<usize>,
}

/// The stages to build, dependencies first; the last one is the target.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Base of every stage of the Dockerfile (index = stage index).
    pub bases: Vec<Source>,
    /// The stages to build, in an order where every dependency comes first.
    pub order: Vec<PlannedStage>,
    /// Stage names, lowercase (index = stage index).
    pub names: Vec<Option<String>>,
}

impl Plan {
    /// The index of the target stage.
    pub fn target(&self) -> usize {
        self.order.last().map(|s| s.index).unwrap_or(0)
    }
}

/// Resolves a stage reference (`COPY --from=X`, a FROM base) seen from stage `current`:
/// a number is a stage index, a name an earlier stage, anything else an image.
pub fn resolve_ref(names: &[Option<String>], current: usize, text: &str) -> Source {
    if text.eq_ignore_ascii_case("scratch") {
        return Source::Scratch;
    }
    if let Ok(i) = text.parse::<usize>() {
        if i < current {
            return Source::Stage(i);
        }
    }
    let lower = text.to_ascii_lowercase();
    for (i, name) in names.iter().enumerate().take(current) {
        if name.as_deref() == Some(lower.as_str()) {
            return Source::Stage(i);
        }
    }
    Source::Image(text.to_string())
}

/// Plans a build of `target` (the last stage when `None`).
pub fn plan(
    stages: &Stages,
    meta: &MetaArgs,
    lex: &ShellLex,
    target: Option<&str>,
    file: &str,
    overridden: &[&str],
) -> Result<Plan, BuildError> {
    let names: Vec<Option<String>> = stages.stages.iter().map(|s| s.name.clone()).collect();
    // A named context (`--build-context NAME=…`) overrides the stage called NAME, as in
    // BuildKit: `FROM NAME` and `--from=NAME` then name an image, which the context supplies.
    let stage_names: Vec<Option<String>> = names
        .iter()
        .map(|n| {
            n.clone()
                .filter(|n| !overridden.iter().any(|o| o.eq_ignore_ascii_case(n)))
        })
        .collect();
    let mut bases = Vec::new();
    let mut deps: Vec<BTreeSet<usize>> = Vec::new();
    for (i, stage) in stages.stages.iter().enumerate() {
        let base_text = lex
            .process_word(&stage.base, meta.values())
            .map_err(|e| BuildError::at(file, stage.span.start_line, &stage.original, e.into()))?;
        if base_text.is_empty() {
            return Err(BuildError::at(
                file,
                stage.span.start_line,
                &stage.original,
                BuildError::Invalid("base name should not be blank".into()),
            ));
        }
        let base = resolve_ref(&stage_names, i, &base_text);
        let mut d = BTreeSet::new();
        if let Source::Stage(s) = base {
            d.insert(s);
        }
        for cmd in &stage.instructions {
            let from: Vec<&str> = match &cmd.instruction {
                Instruction::Copy(c) | Instruction::Add(c) => {
                    c.from.as_deref().into_iter().collect()
                }
                Instruction::Run(r) => r.mounts.iter().filter_map(|m| m.from.as_deref()).collect(),
                _ => Vec::new(),
            };
            for f in from {
                let f = lex
                    .process_word(f, meta.values())
                    .unwrap_or_else(|_| f.to_string());
                if let Source::Stage(s) = resolve_ref(&stage_names, i, &f) {
                    d.insert(s);
                }
            }
        }
        bases.push(base);
        deps.push(d);
    }
    let target_index = match target {
        None => stages.stages.len() - 1,
        Some(t) => {
            let lower = t.to_ascii_lowercase();
            names
                .iter()
                .position(|n| n.as_deref() == Some(lower.as_str()))
                .ok_or_else(|| BuildError::UnknownTarget {
                    target: t.to_string(),
                    stages: names.iter().flatten().cloned().collect(),
                })?
        }
    };
    // Depth-first from the target; dependencies always have smaller indexes, so sorting the
    // needed set gives a valid order.
    let mut needed = BTreeSet::new();
    let mut todo = vec![target_index];
    while let Some(i) = todo.pop() {
        if needed.insert(i) {
            todo.extend(deps[i].iter().copied());
        }
    }
    let order = needed
        .into_iter()
        .map(|i| PlannedStage {
            index: i,
            display: names[i].clone().unwrap_or_else(|| format!("stage-{i}")),
            base: bases[i].clone(),
            deps: deps[i].clone(),
        })
        .collect();
    Ok(Plan {
        bases,
        order,
        names: stage_names,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dockerfile::eval::BuildArgs;
    use crate::dockerfile::{instructions::parse_instructions, parse};

    fn plan_of(text: &str, target: Option<&str>) -> Result<Plan, BuildError> {
        let df = parse(text, "Dockerfile").unwrap();
        let stages = parse_instructions(&df).unwrap();
        let lex = ShellLex::default();
        let args = BuildArgs::default();
        let defs: Vec<_> = Vec::new();
        let meta = MetaArgs::evaluate(defs, &args, &lex).unwrap();
        plan(&stages, &meta, &lex, target, "Dockerfile", &[])
    }

    const MULTI: &str = "FROM busybox AS build\nRUN make\nFROM busybox AS broken\nRUN false\nFROM scratch\nCOPY --from=build /out /\n";

    #[test]
    fn unused_stages_are_skipped() {
        let p = plan_of(MULTI, None).unwrap();
        let order: Vec<usize> = p.order.iter().map(|s| s.index).collect();
        assert_eq!(order, [0, 2]);
        assert_eq!(p.bases[2], Source::Scratch);
        assert_eq!(p.order[1].display, "stage-2");
    }

    #[test]
    fn target_selects_stage() {
        let p = plan_of(MULTI, Some("BROKEN")).unwrap();
        assert_eq!(p.order.iter().map(|s| s.index).collect::<Vec<_>>(), [1]);
        match plan_of(MULTI, Some("nope")) {
            Err(BuildError::UnknownTarget { stages, .. }) => {
                assert_eq!(stages, ["build", "broken"])
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn from_earlier_stage_and_index() {
        let p = plan_of(
            "FROM busybox AS a\nFROM a\nFROM busybox\nCOPY --from=1 / /\n",
            None,
        )
        .unwrap();
        assert_eq!(p.bases[1], Source::Stage(0));
        assert_eq!(
            p.order.iter().map(|s| s.index).collect::<Vec<_>>(),
            [0, 1, 2]
        );
        assert_eq!(resolve_ref(&p.names, 0, "a"), Source::Image("a".into()));
    }
}
