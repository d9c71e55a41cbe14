//! Runs a parse tree over a [`Val`], with Go's rules: `.` changes in `range` and `with`, `$`
//! is the data, variables live until the end of their block, and `and`/`or` stop at the
//! first argument that decides.

use super::funcs;
use super::lex::line_of;
use super::parse::{Block, Command, Node, Operand, Pipeline, Term};
use super::value::Val;
use super::TemplateError;

enum Flow {
    Normal,
    Break,
    Continue,
}

/// An error before it knows where it happened (the operand that failed adds that).
pub(super) struct Failure(pub String);

pub struct Exec<'a> {
    src: &'a str,
    vars: Vec<(String, Val)>,
    out: String,
}

pub fn execute(src: &str, nodes: &[Node], data: &Val) -> Result<String, TemplateError> {
    let mut e = Exec {
        src,
        vars: vec![("$".into(), data.clone())],
        out: String::new(),
    };
    e.walk(data, nodes)?;
    Ok(e.out)
}

impl Exec<'_> {
    fn err(&self, op: &Operand, msg: String) -> TemplateError {
        let line = line_of(self.src, op.pos);
        let line_start = self.src[..op.pos].rfind('\n').map_or(0, |n| n + 1);
        TemplateError::Exec {
            line,
            col: op.pos - line_start,
            node: op.text.clone(),
            msg,
        }
    }

    fn walk(&mut self, dot: &Val, nodes: &[Node]) -> Result<Flow, TemplateError> {
        for n in nodes {
            match n {
                Node::Text(s) => self.out.push_str(s),
                Node::Action(p) => {
                    let v = self.pipeline(dot, p)?;
                    if p.decl.is_empty() {
                        self.out.push_str(&v.go_string());
                    }
                }
                Node::If(b) => {
                    let scope = self.vars.len();
                    let v = self.pipeline(dot, &b.pipe)?;
                    let flow = if v.truthy() {
                        self.walk(dot, &b.list)?
                    } else {
                        self.walk_else(dot, b)?
                    };
                    self.vars.truncate(scope);
                    if !matches!(flow, Flow::Normal) {
                        return Ok(flow);
                    }
                }
                Node::With(b) => {
                    let scope = self.vars.len();
                    let v = self.pipeline(dot, &b.pipe)?;
                    let flow = if v.truthy() {
                        self.walk(&v, &b.list)?
                    } else {
                        self.walk_else(dot, b)?
                    };
                    self.vars.truncate(scope);
                    if !matches!(flow, Flow::Normal) {
                        return Ok(flow);
                    }
                }
                Node::Range(b) => self.range(dot, b)?,
                Node::Break => return Ok(Flow::Break),
                Node::Continue => return Ok(Flow::Continue),
            }
        }
        Ok(Flow::Normal)
    }

    fn walk_else(&mut self, dot: &Val, b: &Block) -> Result<Flow, TemplateError> {
        match &b.else_list {
            Some(list) => self.walk(dot, list),
            None => Ok(Flow::Normal),
        }
    }

    fn range(&mut self, dot: &Val, b: &Block) -> Result<(), TemplateError> {
        let scope = self.vars.len();
        let v = self.eval_cmds(dot, &b.pipe.cmds)?;
        let items: Vec<(Val, Val)> = match v {
            Val::List { items, .. } => items
                .into_iter()
                .enumerate()
                .map(|(i, x)| (Val::Int(i as i64), x))
                .collect(),
            Val::Map { entries, .. } => {
                entries.into_iter().map(|(k, x)| (Val::Str(k), x)).collect()
            }
            Val::Int(n) => (0..n.max(0)).map(|i| (Val::Int(i), Val::Int(i))).collect(),
            // a nil value ranges over nothing, as in Go
            Val::Nil | Val::NoValue => Vec::new(),
            other => {
                let op = first_operand(&b.pipe);
                return Err(self.err(
                    op,
                    format!("range can't iterate over {}", other.go_string()),
                ));
            }
        };
        if items.is_empty() {
            self.walk_else(dot, b)?;
            self.vars.truncate(scope);
            return Ok(());
        }
        for (key, elem) in items {
            self.vars.truncate(scope);
            match b.pipe.decl.as_slice() {
                [v] => self.vars.push((v.clone(), elem.clone())),
                [k, v] => {
                    self.vars.push((k.clone(), key));
                    self.vars.push((v.clone(), elem.clone()));
                }
                _ => {}
            }
            if let Flow::Break = self.walk(&elem, &b.list)? {
                break;
            }
        }
        self.vars.truncate(scope);
        Ok(())
    }

    /// Evaluates a pipeline and binds (or assigns) its variables.
    fn pipeline(&mut self, dot: &Val, p: &Pipeline) -> Result<Val, TemplateError> {
        let v = self.eval_cmds(dot, &p.cmds)?;
        for name in &p.decl {
            if p.assign {
                if let Some(slot) = self.vars.iter_mut().rev().find(|(n, _)| n == name) {
                    slot.1 = v.clone();
                }
            } else {
                self.vars.push((name.clone(), v.clone()));
            }
        }
        Ok(v)
    }

    fn eval_cmds(&mut self, dot: &Val, cmds: &[Command]) -> Result<Val, TemplateError> {
        let mut last = None;
        for c in cmds {
            last = Some(self.command(dot, c, last)?);
        }
        Ok(last.unwrap_or(Val::NoValue))
    }

    /// One command: a function call (with the previous stage's value as its last argument),
    /// or a value.
    fn command(&mut self, dot: &Val, c: &Command, last: Option<Val>) -> Result<Val, TemplateError> {
        let head = &c.args[0];
        if let Term::Func(name) = &head.term {
            return self.call(dot, head, name, &c.args[1..], last);
        }
        if c.args.len() > 1 || last.is_some() {
            return Err(self.err(
                head,
                format!("can't give argument to non-function {}", head.text),
            ));
        }
        self.operand(dot, head)
    }

    fn call(
        &mut self,
        dot: &Val,
        head: &Operand,
        name: &str,
        args: &[Operand],
        last: Option<Val>,
    ) -> Result<Val, TemplateError> {
        // `and` and `or` evaluate their arguments only as far as needed
        if name == "and" || name == "or" {
            let n = args.len() + usize::from(last.is_some());
            if n == 0 {
                return Err(self.err(
                    head,
                    format!("wrong number of args for {name}: want at least 1 got 0"),
                ));
            }
            let mut v = Val::NoValue;
            for a in args {
                v = self.operand(dot, a)?;
                if v.truthy() != (name == "and") {
                    return Ok(v);
                }
            }
            return Ok(last.unwrap_or(v));
        }
        let mut vals = Vec::with_capacity(args.len() + 1);
        for a in args {
            vals.push(self.operand(dot, a)?);
        }
        vals.extend(last);
        funcs::call(name, &vals).map_err(|Failure(msg)| self.err(head, msg))
    }

    fn operand(&mut self, dot: &Val, op: &Operand) -> Result<Val, TemplateError> {
        let mut v = match &op.term {
            Term::Dot => dot.clone(),
            Term::Var(name) => self
                .vars
                .iter()
                .rev()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
                .unwrap_or(Val::NoValue),
            // a function named as an argument is called with no arguments
            Term::Func(name) => self.call(dot, op, name, &[], None)?,
            Term::Str(s) => Val::Str(s.clone()),
            Term::Int(i) => Val::Int(*i),
            Term::Float(f) => Val::Float(*f),
            Term::Bool(b) => Val::Bool(*b),
            Term::Nil => Val::Nil,
            Term::Pipe(p) => self.pipeline(dot, p)?,
        };
        for f in &op.fields {
            v = field(v, f).map_err(|Failure(msg)| self.err(op, msg))?;
        }
        Ok(v)
    }
}

fn first_operand(p: &Pipeline) -> &Operand {
    &p.cmds[0].args[0]
}

/// `.name` on `v`: a struct's missing field is an error, a map's missing key is `<no value>`.
fn field(v: Val, name: &str) -> Result<Val, Failure> {
    match v {
        Val::Struct {
            name: ty,
            mut fields,
            ..
        } => fields
            .remove(name)
            .ok_or_else(|| Failure(format!("can't evaluate field {name} in type {ty}"))),
        Val::Map { mut entries, .. } => Ok(entries.remove(name).unwrap_or(Val::NoValue)),
        // a field of a missing map key is missing too, as in Go
        Val::NoValue => Ok(Val::NoValue),
        Val::Nil => Err(Failure(format!(
            "nil pointer evaluating interface {{}}.{name}"
        ))),
        other => Err(Failure(format!(
            "can't evaluate field {name} in type {}",
            other.type_name()
        ))),
    }
}
