//! Tokens → parse tree, with Go's checks at parse time: unknown functions, undefined
//! variables, `{{end}}` without a block, `{{break}}` outside `{{range}}`.

use super::funcs;
use super::lex::{line_of, Tok, Token};
use super::TemplateError;

#[derive(Debug, Clone)]
pub enum Node {
    Text(String),
    /// `{{pipeline}}`: printed unless it declares or assigns variables
    Action(Pipeline),
    If(Block),
    Range(Block),
    With(Block),
    Break,
    Continue,
}

/// `if`, `range` and `with`: the pipeline, the body, and the `{{else}}` part.
#[derive(Debug, Clone)]
pub struct Block {
    pub pipe: Pipeline,
    pub list: Vec<Node>,
    pub else_list: Option<Vec<Node>>,
}

#[derive(Debug, Clone)]
pub struct Pipeline {
    /// `$x :=` / `$i, $v :=` (names with the `$`)
    pub decl: Vec<String>,
    /// `=` rather than `:=`
    pub assign: bool,
    pub cmds: Vec<Command>,
}

#[derive(Debug, Clone)]
pub struct Command {
    pub args: Vec<Operand>,
}

/// One argument: a term and the fields chained to it (`.A.B`, `$x.A`, `(pipe).A`).
#[derive(Debug, Clone)]
pub struct Operand {
    pub pos: usize,
    /// its source text, for error messages (`<.Config.Nope>`)
    pub text: String,
    pub term: Term,
    pub fields: Vec<String>,
}

#[derive(Debug, Clone)]
pub enum Term {
    Dot,
    Var(String),
    Func(String),
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Nil,
    Pipe(Box<Pipeline>),
}

#[derive(Debug, PartialEq)]
enum Stop {
    Eof,
    End,
    Else,
}

struct Parser<'a> {
    src: &'a str,
    toks: Vec<Token>,
    i: usize,
    /// variables in scope, `$` first
    vars: Vec<String>,
    range_depth: usize,
}

pub fn parse(src: &str, toks: Vec<Token>) -> Result<Vec<Node>, TemplateError> {
    let mut p = Parser {
        src,
        toks,
        i: 0,
        vars: vec!["$".into()],
        range_depth: 0,
    };
    let (list, end) = p.list()?;
    match end {
        Stop::Eof => Ok(list),
        Stop::End => Err(p.err_at(p.last_pos(), "unexpected {{end}}")),
        Stop::Else => Err(p.err_at(p.last_pos(), "unexpected {{else}}")),
    }
}

impl Parser<'_> {
    fn err_at(&self, pos: usize, msg: impl Into<String>) -> TemplateError {
        TemplateError::Parse {
            line: line_of(self.src, pos),
            msg: msg.into(),
        }
    }

    fn last_pos(&self) -> usize {
        self.toks
            .get(self.i.saturating_sub(1))
            .map_or(self.src.len(), |t| t.pos)
    }

    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.i).map(|t| &t.tok)
    }

    fn next(&mut self) -> Result<Token, TemplateError> {
        let t = self
            .toks
            .get(self.i)
            .cloned()
            .ok_or_else(|| self.err_at(self.src.len(), "unexpected EOF"))?;
        self.i += 1;
        Ok(t)
    }

    fn expect_close(&mut self, context: &str) -> Result<(), TemplateError> {
        let t = self.next()?;
        match t.tok {
            Tok::Close => Ok(()),
            other => Err(self.err_at(
                t.pos,
                format!("unexpected {} in {context}", describe(&other)),
            )),
        }
    }

    /// Nodes up to `{{end}}`, `{{else}}` (left for the caller, which reads what follows) or
    /// the end of the template.
    fn list(&mut self) -> Result<(Vec<Node>, Stop), TemplateError> {
        let mut nodes = Vec::new();
        while let Some(t) = self.toks.get(self.i).cloned() {
            self.i += 1;
            match t.tok {
                Tok::Text(s) => nodes.push(Node::Text(s)),
                Tok::Open => match self.peek() {
                    Some(Tok::Ident(k)) if k == "end" => {
                        self.i += 1;
                        self.expect_close("end")?;
                        return Ok((nodes, Stop::End));
                    }
                    Some(Tok::Ident(k)) if k == "else" => {
                        self.i += 1;
                        return Ok((nodes, Stop::Else));
                    }
                    Some(Tok::Ident(k)) if matches!(k.as_str(), "if" | "range" | "with") => {
                        let k = k.clone();
                        self.i += 1;
                        nodes.push(self.block(&k)?);
                    }
                    Some(Tok::Ident(k)) if k == "break" || k == "continue" => {
                        let k = k.clone();
                        if self.range_depth == 0 {
                            return Err(
                                self.err_at(t.pos, format!("{{{{{k}}}}} outside {{{{range}}}}"))
                            );
                        }
                        self.i += 1;
                        self.expect_close(&k)?;
                        nodes.push(if k == "break" {
                            Node::Break
                        } else {
                            Node::Continue
                        });
                    }
                    Some(Tok::Ident(k))
                        if matches!(k.as_str(), "define" | "template" | "block") =>
                    {
                        return Err(self.err_at(
                            t.pos,
                            format!("{{{{{k}}}}} is not supported (one template only)"),
                        ));
                    }
                    _ => {
                        let pipe = self.pipeline("command", true)?;
                        self.expect_close("command")?;
                        nodes.push(Node::Action(pipe));
                    }
                },
                other => return Err(self.err_at(t.pos, format!("unexpected {}", describe(&other)))),
            }
        }
        Ok((nodes, Stop::Eof))
    }

    /// `if`/`range`/`with` after its keyword, up to and including its `{{end}}`.
    fn block(&mut self, kind: &str) -> Result<Node, TemplateError> {
        let scope = self.vars.len();
        let pipe = self.pipeline(kind, true)?;
        if kind == "range" && pipe.assign {
            return Err(self.err_at(self.last_pos(), "range can only declare variables"));
        }
        if pipe.decl.len() > usize::from(kind == "range") + 1 {
            return Err(self.err_at(self.last_pos(), "too many declarations in command"));
        }
        self.expect_close(kind)?;
        if kind == "range" {
            self.range_depth += 1;
        }
        let (list, end) = self.list()?;
        if kind == "range" {
            self.range_depth -= 1;
        }
        let else_list = match end {
            Stop::Eof => return Err(self.err_at(self.src.len(), "unexpected EOF")),
            Stop::End => None,
            Stop::Else => {
                // `{{else if …}}` / `{{else with …}}`: a nested block that shares our {{end}}
                match self.peek() {
                    Some(Tok::Ident(k)) if (k == "if" || k == "with") && kind != "range" => {
                        let k = k.clone();
                        self.i += 1;
                        Some(vec![self.block(&k)?])
                    }
                    _ => {
                        self.expect_close("else")?;
                        let (else_list, end) = self.list()?;
                        if end != Stop::End {
                            return Err(self.err_at(
                                self.last_pos(),
                                format!(
                                    "expected end; found {}",
                                    if end == Stop::Else { "{{else}}" } else { "EOF" }
                                ),
                            ));
                        }
                        Some(else_list)
                    }
                }
            }
        };
        self.vars.truncate(scope);
        let b = Block {
            pipe,
            list,
            else_list,
        };
        Ok(match kind {
            "if" => Node::If(b),
            "range" => Node::Range(b),
            _ => Node::With(b),
        })
    }

    /// `[$a[, $b] :=|=] cmd | cmd …`, up to (not including) `}}` or `)`.
    fn pipeline(&mut self, context: &str, allow_decl: bool) -> Result<Pipeline, TemplateError> {
        let mut decl = Vec::new();
        let mut assign = false;
        if allow_decl {
            if let Some((names, is_assign, skip)) = self.declaration() {
                for n in &names {
                    if is_assign && !self.vars.contains(n) {
                        let pos = self.toks[self.i].pos;
                        return Err(self.err_at(pos, format!("undefined variable \"{n}\"")));
                    }
                }
                self.i += skip;
                if !is_assign {
                    self.vars.extend(names.iter().cloned());
                }
                decl = names;
                assign = is_assign;
            }
        }
        let mut cmds = Vec::new();
        loop {
            let start = self.toks.get(self.i).map_or(self.src.len(), |t| t.pos);
            let cmd = self.command()?;
            if cmd.args.is_empty() {
                return Err(self.err_at(start, format!("missing value for {context}")));
            }
            cmds.push(cmd);
            match self.peek() {
                Some(Tok::Pipe) => self.i += 1,
                _ => break,
            }
        }
        for c in &cmds[1..] {
            if let Term::Bool(_) | Term::Int(_) | Term::Float(_) | Term::Str(_) | Term::Nil =
                c.args[0].term
            {
                return Err(self.err_at(
                    c.args[0].pos,
                    format!(
                        "non executable command in pipeline stage {}",
                        c.args[0].text
                    ),
                ));
            }
        }
        Ok(Pipeline { decl, assign, cmds })
    }

    /// Looks ahead for `$x :=`, `$x =` or `$i, $v :=`: names, assign?, tokens to skip.
    fn declaration(&self) -> Option<(Vec<String>, bool, usize)> {
        let t = |k: usize| self.toks.get(self.i + k).map(|t| &t.tok);
        let Some(Tok::Var(a)) = t(0) else { return None };
        match (t(1), t(2), t(3)) {
            (Some(Tok::Declare), ..) => Some((vec![a.clone()], false, 2)),
            (Some(Tok::Assign), ..) => Some((vec![a.clone()], true, 2)),
            (Some(Tok::Comma), Some(Tok::Var(b)), Some(Tok::Declare)) => {
                Some((vec![a.clone(), b.clone()], false, 4))
            }
            (Some(Tok::Comma), Some(Tok::Var(b)), Some(Tok::Assign)) => {
                Some((vec![a.clone(), b.clone()], true, 4))
            }
            _ => None,
        }
    }

    fn command(&mut self) -> Result<Command, TemplateError> {
        let mut args = Vec::new();
        while let Some(t) = self.toks.get(self.i).cloned() {
            match t.tok {
                Tok::Close | Tok::RParen | Tok::Pipe => break,
                _ => args.push(self.operand()?),
            }
        }
        Ok(Command { args })
    }

    fn operand(&mut self) -> Result<Operand, TemplateError> {
        let t = self.next()?;
        let mut fields = Vec::new();
        let term = match t.tok {
            Tok::Dot => Term::Dot,
            Tok::Field(f) => {
                fields.push(f);
                Term::Dot
            }
            Tok::Var(v) => {
                if !self.vars.contains(&v) {
                    return Err(self.err_at(t.pos, format!("undefined variable \"{v}\"")));
                }
                Term::Var(v)
            }
            Tok::Ident(name) => {
                if !funcs::exists(&name) {
                    return Err(self.err_at(t.pos, format!("function \"{name}\" not defined")));
                }
                Term::Func(name)
            }
            Tok::Str(s) => Term::Str(s),
            Tok::Int(i) => Term::Int(i),
            Tok::Float(f) => Term::Float(f),
            Tok::Bool(b) => Term::Bool(b),
            Tok::Nil => Term::Nil,
            Tok::LParen => {
                let p = self.pipeline("parenthesized pipeline", true)?;
                let close = self.next()?;
                if close.tok != Tok::RParen {
                    return Err(self.err_at(close.pos, "unclosed left paren"));
                }
                Term::Pipe(Box::new(p))
            }
            other => {
                return Err(
                    self.err_at(t.pos, format!("unexpected {} in operand", describe(&other)))
                )
            }
        };
        // fields chained with no space between them
        while let Some(Token {
            tok: Tok::Field(f),
            space_before: false,
            ..
        }) = self.toks.get(self.i)
        {
            if matches!(
                term,
                Term::Func(_)
                    | Term::Nil
                    | Term::Str(_)
                    | Term::Int(_)
                    | Term::Float(_)
                    | Term::Bool(_)
            ) {
                return Err(self.err_at(t.pos, "unexpected . after term"));
            }
            fields.push(f.clone());
            self.i += 1;
        }
        let end = self.toks[self.i - 1].end;
        Ok(Operand {
            pos: t.pos,
            text: self.src[t.pos..end].to_string(),
            term,
            fields,
        })
    }
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Text(_) => "text".into(),
        Tok::Open => "\"{{\"".into(),
        Tok::Close => "\"}}\"".into(),
        Tok::Field(f) => format!("<.{f}>"),
        Tok::Dot => "<.>".into(),
        Tok::Var(v) => format!("<{v}>"),
        Tok::Ident(i) => format!("<{i}>"),
        Tok::Str(s) => format!("{s:?}"),
        Tok::Int(i) => i.to_string(),
        Tok::Float(f) => f.to_string(),
        Tok::Bool(b) => b.to_string(),
        Tok::Nil => "nil".into(),
        Tok::Pipe => "\"|\"".into(),
        Tok::LParen => "\"(\"".into(),
        Tok::RParen => "\")\"".into(),
        Tok::Declare => "\":=\"".into(),
        Tok::Assign => "\"=\"".into(),
        Tok::Comma => "\",\"".into(),
    }
}
