//! Go templates as Docker's `--format` and `inspect -f` take them, over JSON values.
//!
//! Our own small evaluator rather than a crate: the Go-template crate on
//! crates.io (`gtmpl`) has had no release since 2021, and Docker users write
//! a small part of the language: field paths, `if`/`else`/`range`/`with`,
//! variables, pipelines, Go's builtins (`index`, `len`, `eq`, `printf`, …) and
//! Docker's own functions (`json`, `join`, `split`, `lower`, `upper`, `title`,
//! `truncate`, `pad`). Values print as Go's `%v` does (`[sh -c echo]`,
//! `map[k:v]`, `<nil>`), and a missing field prints `<no value>`, as Go does
//! for a map.

use serde_json::Value;
use std::fmt::Write as _;

/// A template that cannot be parsed or run; worded like Go's.
#[derive(Debug, thiserror::Error)]
#[error("template: {0}")]
pub struct TemplateError(String);

fn err<T>(msg: impl Into<String>) -> Result<T, TemplateError> {
    Err(TemplateError(msg.into()))
}

/// A parsed template.
#[derive(Debug)]
pub struct Template {
    nodes: Vec<Node>,
    structs: StructOrders,
    zeros: Zeros,
}

/// Field orders of the Go structs behind the data: `json` writes an object
/// whose keys all belong to one of these lists in that list's order (Go
/// marshals struct fields in declaration order), any other object with its
/// keys sorted (Go's order for a map).
pub type StructOrders = &'static [&'static [&'static str]];

/// The Go type of a field that may be missing or null in the JSON (Docker's
/// `omitempty` fields, nil slices and maps): printed as Go prints its zero
/// value (`[]`, `map[]`, `""`, `false`, `0`, `<nil>`) rather than `<no value>`,
/// while `json` still sees the null.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Zero {
    /// A slice.
    List,
    /// A map.
    Map,
    /// A string.
    Str,
    /// A bool.
    Bool,
    /// A number.
    Int,
    /// A pointer.
    Ptr,
}

/// Field names and their Go types, for [`Zero`].
pub type Zeros = &'static [(&'static str, Zero)];

#[derive(Debug)]
enum Node {
    Text(String),
    Action(Pipeline),
    If(Pipeline, Vec<Node>, Vec<Node>),
    With(Pipeline, Vec<Node>, Vec<Node>),
    Range(Pipeline, Vec<Node>, Vec<Node>),
}

#[derive(Debug)]
struct Pipeline {
    /// Variables declared (`$x :=`) or assigned (`$x =`).
    decl: Vec<String>,
    assign: bool,
    cmds: Vec<Vec<Operand>>,
}

#[derive(Debug)]
enum Operand {
    /// `.` followed by field names (none for `.` itself).
    Dot(Vec<String>),
    /// `$name` followed by field names.
    Var(String, Vec<String>),
    /// A parenthesized pipeline followed by field names.
    Sub(Box<Pipeline>, Vec<String>),
    Func(String),
    Lit(Value),
}

// ------------------------------------------------------------------ lexing

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// `.A.B`: fields of dot.
    Field(Vec<String>),
    /// `.A.B` right after `)`: fields of the parenthesized value.
    Chain(Vec<String>),
    Dot,
    /// `$x.A.B` (the root `$` has an empty name).
    Var(String, Vec<String>),
    Ident(String),
    Lit(Value),
    Open,
    Close,
    Pipe,
    Declare,
    Assign,
    Comma,
}

fn lex(src: &str) -> Result<Vec<Tok>, TemplateError> {
    let c: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let ident_char = |ch: char| ch.is_alphanumeric() || ch == '_';
    while i < c.len() {
        let ch = c[i];
        match ch {
            ' ' | '\t' | '\n' | '\r' => i += 1,
            '(' => {
                out.push(Tok::Open);
                i += 1
            }
            ')' => {
                out.push(Tok::Close);
                i += 1
            }
            '|' => {
                out.push(Tok::Pipe);
                i += 1
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1
            }
            ':' if c.get(i + 1) == Some(&'=') => {
                out.push(Tok::Declare);
                i += 2
            }
            '=' => {
                out.push(Tok::Assign);
                i += 1
            }
            '.' if c
                .get(i + 1)
                .is_some_and(|&n| ident_char(n) && !n.is_ascii_digit()) =>
            {
                // `(…).A` right after the paren reads a field of the parenthesized value.
                let glued = i > 0 && c[i - 1] == ')';
                let fields = field_chain(&c, &mut i);
                if glued {
                    out.push(Tok::Chain(fields));
                } else {
                    out.push(Tok::Field(fields));
                }
            }
            '.' => {
                out.push(Tok::Dot);
                i += 1
            }
            '$' => {
                let start = i + 1;
                i += 1;
                while i < c.len() && ident_char(c[i]) {
                    i += 1;
                }
                let name = c[start..i].iter().collect();
                out.push(Tok::Var(name, field_chain(&c, &mut i)));
            }
            '"' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match c.get(i) {
                        None => return err("unterminated quoted string"),
                        Some('"') => break,
                        Some('\\') => {
                            i += 1;
                            match c.get(i) {
                                Some('n') => s.push('\n'),
                                Some('t') => s.push('\t'),
                                Some('r') => s.push('\r'),
                                Some('\\') => s.push('\\'),
                                Some('"') => s.push('"'),
                                Some(&o) => return err(format!("unknown escape sequence: \\{o}")),
                                None => return err("unterminated quoted string"),
                            }
                        }
                        Some(&o) => s.push(o),
                    }
                    i += 1;
                }
                i += 1;
                out.push(Tok::Lit(Value::String(s)));
            }
            '`' => {
                let start = i + 1;
                let Some(end) = c[start..].iter().position(|&x| x == '`') else {
                    return err("unterminated raw quoted string");
                };
                out.push(Tok::Lit(Value::String(
                    c[start..start + end].iter().collect(),
                )));
                i = start + end + 1;
            }
            d if d.is_ascii_digit()
                || ((d == '-' || d == '+') && c.get(i + 1).is_some_and(char::is_ascii_digit)) =>
            {
                let start = i;
                i += 1;
                while i < c.len() && (c[i].is_ascii_alphanumeric() || c[i] == '.') {
                    i += 1;
                }
                let text: String = c[start..i].iter().collect();
                let v = if let Ok(n) = text.parse::<i64>() {
                    Value::from(n)
                } else if let Ok(f) = text.parse::<f64>() {
                    Value::from(f)
                } else {
                    return err(format!("bad number syntax: {text:?}"));
                };
                out.push(Tok::Lit(v));
            }
            a if ident_char(a) => {
                let start = i;
                while i < c.len() && ident_char(c[i]) {
                    i += 1;
                }
                let word: String = c[start..i].iter().collect();
                out.push(match word.as_str() {
                    "true" => Tok::Lit(Value::Bool(true)),
                    "false" => Tok::Lit(Value::Bool(false)),
                    "nil" => Tok::Lit(Value::Null),
                    _ => Tok::Ident(word),
                });
            }
            other => return err(format!("unexpected {other:?} in command")),
        }
    }
    Ok(out)
}

/// `.A.B…` from `c[*i]` on, with no space between the parts.
fn field_chain(c: &[char], i: &mut usize) -> Vec<String> {
    let mut fields = Vec::new();
    while c.get(*i) == Some(&'.')
        && c.get(*i + 1)
            .is_some_and(|&n| (n.is_alphanumeric() || n == '_') && !n.is_ascii_digit())
    {
        let start = *i + 1;
        *i += 1;
        while *i < c.len() && (c[*i].is_alphanumeric() || c[*i] == '_') {
            *i += 1;
        }
        fields.push(c[start..*i].iter().collect());
    }
    fields
}

// ------------------------------------------------------------------ parsing

/// Splits the source into text and the insides of `{{…}}`, honouring `{{-` and `-}}`.
fn split_actions(src: &str) -> Result<Vec<(bool, String)>, TemplateError> {
    let mut parts: Vec<(bool, String)> = Vec::new();
    let mut rest = src;
    let mut trim_next = false;
    while let Some(open) = rest.find("{{") {
        let mut text = &rest[..open];
        if trim_next {
            text = text.trim_start();
        }
        let mut inner_start = open + 2;
        let trim_before = rest[inner_start..].starts_with("- ")
            || rest[inner_start..].starts_with("-\t")
            || rest[inner_start..].starts_with("-\n");
        if trim_before {
            text = text.trim_end();
            inner_start += 1;
        }
        parts.push((false, text.to_owned()));
        let Some(close) = rest[inner_start..].find("}}") else {
            return err("unclosed action");
        };
        let mut inner = &rest[inner_start..inner_start + close];
        trim_next = inner.ends_with(" -") || inner.ends_with("\t-") || inner.ends_with("\n-");
        if trim_next {
            inner = &inner[..inner.len() - 1];
        }
        let t = inner.trim();
        if !(t.starts_with("/*") && t.ends_with("*/")) {
            parts.push((true, inner.to_owned()));
        }
        rest = &rest[inner_start + close + 2..];
    }
    let text = if trim_next { rest.trim_start() } else { rest };
    parts.push((false, text.to_owned()));
    Ok(parts)
}

/// What ended a list of nodes.
enum Stop {
    Eof,
    End,
    Else(Option<Vec<Tok>>),
}

struct Parser {
    parts: std::vec::IntoIter<(bool, String)>,
}

impl Parser {
    fn list(&mut self) -> Result<(Vec<Node>, Stop), TemplateError> {
        let mut nodes = Vec::new();
        while let Some((is_action, s)) = self.parts.next() {
            if !is_action {
                if !s.is_empty() {
                    nodes.push(Node::Text(s));
                }
                continue;
            }
            let toks = lex(&s)?;
            match toks.first() {
                Some(Tok::Ident(k)) if k == "end" => return Ok((nodes, Stop::End)),
                Some(Tok::Ident(k)) if k == "else" => {
                    let rest = toks[1..].to_vec();
                    return Ok((nodes, Stop::Else((!rest.is_empty()).then_some(rest))));
                }
                Some(Tok::Ident(k)) if matches!(k.as_str(), "if" | "with" | "range") => {
                    let kind = k.clone();
                    nodes.push(self.control(&kind, &toks[1..])?);
                }
                Some(Tok::Ident(k))
                    if matches!(
                        k.as_str(),
                        "define" | "template" | "block" | "break" | "continue"
                    ) =>
                {
                    return err(format!("{{{{{k}}}}} is not supported in hoist's --format"));
                }
                None => return err("missing value for command"),
                _ => nodes.push(Node::Action(pipeline(&toks)?)),
            }
        }
        Ok((nodes, Stop::Eof))
    }

    fn control(&mut self, kind: &str, toks: &[Tok]) -> Result<Node, TemplateError> {
        let pipe = pipeline(toks)?;
        let (body, end) = self.list()?;
        let otherwise = match end {
            Stop::Eof => return err(format!("unexpected EOF in {kind}")),
            Stop::End => Vec::new(),
            Stop::Else(None) => match self.list()? {
                (nodes, Stop::End) => nodes,
                _ => return err(format!("expected end after else in {kind}")),
            },
            // `{{else if …}}` (or `else with`) is an `if` nested in the else branch, sharing the `end`.
            Stop::Else(Some(t)) => match t.first() {
                Some(Tok::Ident(k)) if k == kind && kind != "range" => {
                    vec![self.control(kind, &t[1..])?]
                }
                _ => return err(format!("unexpected tokens after else in {kind}")),
            },
        };
        Ok(match kind {
            "if" => Node::If(pipe, body, otherwise),
            "with" => Node::With(pipe, body, otherwise),
            _ => Node::Range(pipe, body, otherwise),
        })
    }
}

fn pipeline(toks: &[Tok]) -> Result<Pipeline, TemplateError> {
    let mut decl = Vec::new();
    let mut assign = false;
    let mut rest = toks;
    // `$x :=`, `$i, $e :=`, `$x =`
    let decl_end = rest
        .iter()
        .position(|t| matches!(t, Tok::Declare | Tok::Assign))
        .filter(|&p| {
            rest[..p]
                .iter()
                .all(|t| matches!(t, Tok::Var(_, f) if f.is_empty()) || *t == Tok::Comma)
        });
    if let Some(p) = decl_end {
        for t in &rest[..p] {
            if let Tok::Var(v, _) = t {
                decl.push(v.clone());
            }
        }
        assign = rest[p] == Tok::Assign;
        rest = &rest[p + 1..];
    }
    let mut cmds = Vec::new();
    let mut i = 0;
    let mut cmd = Vec::new();
    while i < rest.len() {
        match &rest[i] {
            Tok::Pipe => {
                if cmd.is_empty() {
                    return err("missing command before |");
                }
                cmds.push(std::mem::take(&mut cmd));
                i += 1;
                continue;
            }
            Tok::Open => {
                let mut depth = 0;
                let mut j = i;
                loop {
                    match rest.get(j) {
                        Some(Tok::Open) => depth += 1,
                        Some(Tok::Close) => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        Some(_) => {}
                        None => return err("unclosed left paren"),
                    }
                    j += 1;
                }
                let inner = pipeline(&rest[i + 1..j])?;
                i = j + 1;
                let fields = match rest.get(i) {
                    Some(Tok::Chain(f)) => {
                        i += 1;
                        f.clone()
                    }
                    _ => Vec::new(),
                };
                cmd.push(Operand::Sub(Box::new(inner), fields));
                continue;
            }
            Tok::Close => return err("unexpected right paren"),
            Tok::Dot => cmd.push(Operand::Dot(Vec::new())),
            Tok::Field(f) => cmd.push(Operand::Dot(f.clone())),
            Tok::Chain(_) => return err("unexpected field chain"),
            Tok::Var(v, f) => cmd.push(Operand::Var(v.clone(), f.clone())),
            Tok::Ident(f) => {
                if !is_function(f) {
                    return err(format!("function {f:?} not defined"));
                }
                cmd.push(Operand::Func(f.clone()))
            }
            Tok::Lit(v) => cmd.push(Operand::Lit(v.clone())),
            Tok::Declare | Tok::Assign | Tok::Comma => return err("unexpected := or , in command"),
        }
        i += 1;
    }
    if cmd.is_empty() {
        return err("missing value for command");
    }
    cmds.push(cmd);
    Ok(Pipeline { decl, assign, cmds })
}

impl Template {
    /// Parses Go template source.
    pub fn parse(src: &str) -> Result<Template, TemplateError> {
        let mut p = Parser {
            parts: split_actions(src)?.into_iter(),
        };
        match p.list()? {
            (nodes, Stop::Eof) => Ok(Template {
                nodes,
                structs: &[],
                zeros: &[],
            }),
            (_, Stop::End) => err("unexpected {{end}}"),
            (_, Stop::Else(_)) => err("unexpected {{else}}"),
        }
    }

    /// Declares the struct field orders of the data, for `json`.
    pub fn with_structs(mut self, structs: StructOrders) -> Template {
        self.structs = structs;
        self
    }

    /// Declares the Go types of fields the data may lack, for printing their zero values.
    pub fn with_zeros(mut self, zeros: Zeros) -> Template {
        self.zeros = zeros;
        self
    }

    /// Runs the template on `data`.
    pub fn execute(&self, data: &Value) -> Result<String, TemplateError> {
        self.run(data, false)
    }

    /// Runs the template for a table's header row: Docker's functions that
    /// change text (`json`, `upper`, `truncate`, …) give their input unchanged
    /// so that the header names stay intact.
    pub fn execute_header(&self, headers: &Value) -> Result<String, TemplateError> {
        self.run(headers, true)
    }

    fn run(&self, data: &Value, header: bool) -> Result<String, TemplateError> {
        let mut st = State {
            vars: vec![(String::new(), data.clone())],
            out: String::new(),
            header,
            structs: self.structs,
            zeros: self.zeros,
            hint: None,
        };
        st.walk(&self.nodes, data)?;
        Ok(st.out)
    }
}

// ------------------------------------------------------------------ running

struct State {
    vars: Vec<(String, Value)>,
    out: String,
    header: bool,
    structs: StructOrders,
    zeros: Zeros,
    /// The Go type of the field the last pipeline ended on, when known.
    hint: Option<Zero>,
}

/// Go's truth: false, 0, nil and empty things are false.
fn truth(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

impl State {
    fn walk(&mut self, nodes: &[Node], dot: &Value) -> Result<(), TemplateError> {
        for n in nodes {
            match n {
                Node::Text(t) => self.out.push_str(t),
                Node::Action(p) => {
                    let v = self.pipe(p, dot)?;
                    if p.decl.is_empty() {
                        let text = match (&v, self.hint) {
                            (Value::Null, Some(z)) => zero_text(z).to_owned(),
                            _ => print_top(&v, !self.structs.is_empty()),
                        };
                        self.out.push_str(&text);
                    }
                }
                Node::If(p, yes, no) => {
                    let mark = self.vars.len();
                    let v = self.pipe(p, dot)?;
                    let branch = if truth(&v) { yes } else { no };
                    self.walk(branch, dot)?;
                    self.vars.truncate(mark);
                }
                Node::With(p, yes, no) => {
                    let mark = self.vars.len();
                    let v = self.pipe(p, dot)?;
                    if truth(&v) {
                        self.walk(yes, &v)?;
                    } else {
                        self.walk(no, dot)?;
                    }
                    self.vars.truncate(mark);
                }
                Node::Range(p, body, otherwise) => {
                    let mark = self.vars.len();
                    // The declared variables take key and element, not the whole value.
                    let decl = &p.decl;
                    let v = self.run_cmds(&p.cmds, dot)?;
                    let items: Vec<(Value, Value)> = match &v {
                        Value::Array(a) => a
                            .iter()
                            .enumerate()
                            .map(|(i, x)| (Value::from(i), x.clone()))
                            .collect(),
                        Value::Object(o) => o
                            .iter()
                            .map(|(k, x)| (Value::String(k.clone()), x.clone()))
                            .collect(),
                        Value::Null => Vec::new(),
                        Value::Number(n) if n.as_u64().is_some() => (0..n.as_u64().unwrap_or(0))
                            .map(|i| (Value::from(i), Value::from(i)))
                            .collect(),
                        other => {
                            return err(format!("range can't iterate over {}", print_value(other)))
                        }
                    };
                    if items.is_empty() {
                        self.walk(otherwise, dot)?;
                    }
                    for (k, x) in items {
                        let inner = self.vars.len();
                        match decl.as_slice() {
                            [] => {}
                            [e] => self.vars.push((e.clone(), x.clone())),
                            [i, e, ..] => {
                                self.vars.push((i.clone(), k));
                                self.vars.push((e.clone(), x.clone()));
                            }
                        }
                        self.walk(body, &x)?;
                        self.vars.truncate(inner);
                    }
                    self.vars.truncate(mark);
                }
            }
        }
        Ok(())
    }

    fn pipe(&mut self, p: &Pipeline, dot: &Value) -> Result<Value, TemplateError> {
        self.hint = None;
        let v = self.run_cmds(&p.cmds, dot)?;
        for name in &p.decl {
            if p.assign {
                match self.vars.iter_mut().rev().find(|(n, _)| n == name) {
                    Some(slot) => slot.1 = v.clone(),
                    None => return err(format!("undefined variable: ${name}")),
                }
            } else {
                self.vars.push((name.clone(), v.clone()));
            }
        }
        Ok(v)
    }

    fn run_cmds(&mut self, cmds: &[Vec<Operand>], dot: &Value) -> Result<Value, TemplateError> {
        let mut piped: Option<Value> = None;
        for cmd in cmds {
            piped = Some(self.command(cmd, dot, piped)?);
        }
        Ok(piped.unwrap_or(Value::Null))
    }

    fn command(
        &mut self,
        cmd: &[Operand],
        dot: &Value,
        piped: Option<Value>,
    ) -> Result<Value, TemplateError> {
        let Some(first) = cmd.first() else {
            return err("empty command");
        };
        if let Operand::Func(name) = first {
            let mut args = Vec::with_capacity(cmd.len());
            for a in &cmd[1..] {
                args.push(self.operand(a, dot)?);
            }
            if let Some(p) = piped {
                args.push(p);
            }
            let v = call(name, args, self.header, self.structs);
            self.hint = None;
            return v;
        }
        if cmd.len() > 1 || piped.is_some() {
            return err(format!(
                "can't give argument to non-function {}",
                describe(first)
            ));
        }
        let v = self.operand(first, dot)?;
        self.hint = match first {
            Operand::Dot(f) | Operand::Var(_, f) | Operand::Sub(_, f) => {
                f.last().and_then(|last| {
                    self.zeros
                        .iter()
                        .find(|(name, _)| name == last)
                        .map(|(_, z)| *z)
                })
            }
            _ => None,
        };
        Ok(v)
    }

    fn operand(&mut self, o: &Operand, dot: &Value) -> Result<Value, TemplateError> {
        match o {
            Operand::Dot(fields) => Ok(walk_fields(dot, fields)),
            Operand::Var(name, fields) => {
                let Some((_, v)) = self.vars.iter().rev().find(|(n, _)| n == name) else {
                    return err(format!("undefined variable: ${name}"));
                };
                let v = v.clone();
                Ok(walk_fields(&v, fields))
            }
            Operand::Sub(p, fields) => {
                let v = self.run_cmds(&p.cmds, dot)?;
                Ok(walk_fields(&v, fields))
            }
            Operand::Func(name) => call(name, Vec::new(), self.header, self.structs),
            Operand::Lit(v) => Ok(v.clone()),
        }
    }
}

fn describe(o: &Operand) -> String {
    match o {
        Operand::Dot(f) => format!(".{}", f.join(".")),
        Operand::Var(v, f) if f.is_empty() => format!("${v}"),
        Operand::Var(v, f) => format!("${v}.{}", f.join(".")),
        Operand::Sub(..) => "(…)".into(),
        Operand::Func(f) => f.clone(),
        Operand::Lit(v) => print_value(v),
    }
}

/// `.A.B` on a value: a missing key (or a field of something that is not a map) is nil.
fn walk_fields(v: &Value, fields: &[String]) -> Value {
    let mut cur = v;
    for f in fields {
        match cur.get(f) {
            Some(x) => cur = x,
            None => return Value::Null,
        }
    }
    cur.clone()
}

// ------------------------------------------------------------------ printing

/// How Go prints the zero value of a type.
fn zero_text(z: Zero) -> &'static str {
    match z {
        Zero::List => "[]",
        Zero::Map => "map[]",
        Zero::Str => "",
        Zero::Bool => "false",
        Zero::Int => "0",
        Zero::Ptr => "<nil>",
    }
}

/// What `{{…}}` writes for a value: Go prints `<no value>` for a nil at the top.
/// `typed`: the data stands for Go structs (Docker's inspect), where an empty
/// object inside a map is a `struct{}` (`ExposedPorts`, `Volumes`) and prints `{}`.
fn print_top(v: &Value, typed: bool) -> String {
    match v {
        Value::Null => "<no value>".into(),
        other => {
            let mut s = String::new();
            print_into(&mut s, other, typed, 0);
            s
        }
    }
}

/// Go's `%v`: `[a b]`, `map[k:v]` (keys sorted), `<nil>`.
pub fn print_value(v: &Value) -> String {
    let mut s = String::new();
    print_into(&mut s, v, false, 0);
    s
}

fn print_into(s: &mut String, v: &Value, typed: bool, depth: usize) {
    match v {
        Value::Null => s.push_str("<nil>"),
        Value::Bool(b) => {
            let _ = write!(s, "{b}");
        }
        Value::Number(n) => s.push_str(&number(n)),
        Value::String(t) => s.push_str(t),
        Value::Array(a) => {
            s.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    s.push(' ');
                }
                print_into(s, x, typed, depth + 1);
            }
            s.push(']');
        }
        Value::Object(o) if typed && depth > 0 && o.is_empty() => s.push_str("{}"),
        Value::Object(o) => {
            s.push_str("map[");
            // serde_json's map keeps keys sorted, as Go's printing of a map does.
            for (i, (k, x)) in o.iter().enumerate() {
                if i > 0 {
                    s.push(' ');
                }
                s.push_str(k);
                s.push(':');
                print_into(s, x, typed, depth + 1);
            }
            s.push(']');
        }
    }
}

/// A number as Go prints it: integers plainly, floats in the shortest form
/// (`%v` switches to an exponent from 1e21).
fn number(n: &serde_json::Number) -> String {
    if let Some(i) = n.as_i64() {
        return i.to_string();
    }
    if let Some(u) = n.as_u64() {
        return u.to_string();
    }
    let f = n.as_f64().unwrap_or(0.0);
    if f.abs() >= 1e21 || (f != 0.0 && f.abs() < 1e-4) {
        let e = format!("{f:e}");
        // Go writes `1e+21`, Rust `1e21`.
        match e.split_once('e') {
            Some((m, x)) if !x.starts_with('-') => format!("{m}e+{x:0>2}"),
            Some((m, x)) => format!("{m}e-{:0>2}", &x[1..]),
            None => e,
        }
    } else {
        f.to_string()
    }
}

// ------------------------------------------------------------------ functions

const FUNCTIONS: &[&str] = &[
    "json", "join", "split", "lower", "upper", "title", "truncate", "pad", "println", "print",
    "printf", "index", "len", "eq", "ne", "lt", "le", "gt", "ge", "and", "or", "not", "slice",
];

fn is_function(name: &str) -> bool {
    FUNCTIONS.contains(&name)
}

fn want_args(name: &str, args: &[Value], n: usize) -> Result<(), TemplateError> {
    if args.len() != n {
        return err(format!(
            "wrong number of args for {name}: want {n} got {}",
            args.len()
        ));
    }
    Ok(())
}

fn as_str<'a>(name: &str, v: &'a Value) -> Result<std::borrow::Cow<'a, str>, TemplateError> {
    match v {
        Value::String(s) => Ok(std::borrow::Cow::Borrowed(s)),
        // Docker's functions take strings; a number or bool reads as its text.
        Value::Number(_) | Value::Bool(_) => Ok(std::borrow::Cow::Owned(print_value(v))),
        other => err(format!(
            "error calling {name}: wrong type for value; expected string; got {}",
            go_type(other)
        )),
    }
}

fn as_int(name: &str, v: &Value) -> Result<i64, TemplateError> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| TemplateError(format!("error calling {name}: {n} is not an integer"))),
        other => err(format!(
            "error calling {name}: wrong type for value; expected int; got {}",
            go_type(other)
        )),
    }
}

fn go_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float64",
        Value::Number(_) => "int",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

/// Go's `fmt.Sprint`: a space between operands when neither is a string.
fn sprint(args: &[Value]) -> String {
    let mut s = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 && !args[i - 1].is_string() && !a.is_string() {
            s.push(' ');
        }
        print_into(&mut s, a, false, 0);
    }
    s
}

/// Go's `strings.Title`: upper-cases the first letter of each word.
fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev_sep = true;
    for c in s.chars() {
        if prev_sep {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        prev_sep = !(c.is_alphanumeric() || c == '_' || c == '\'');
    }
    out
}

/// Go's comparison for `eq`, `lt`, …: numbers by value, else same-type values.
fn compare(name: &str, a: &Value, b: &Value) -> Result<std::cmp::Ordering, TemplateError> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .zip(y.as_f64())
            .and_then(|(x, y)| x.partial_cmp(&y))
            .ok_or_else(|| TemplateError(format!("error calling {name}: incomparable numbers"))),
        (Value::String(x), Value::String(y)) => Ok(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) if matches!(name, "eq" | "ne") => Ok(x.cmp(y)),
        (Value::Null, Value::Null) if matches!(name, "eq" | "ne") => Ok(std::cmp::Ordering::Equal),
        _ => err(format!(
            "error calling {name}: incompatible types for comparison"
        )),
    }
}

/// Go's `printf`, for the verbs Docker users write: `%s %v %d %q %f %x %%`, with width and `-`.
fn printf(format: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut args = args.iter();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut left = false;
        let mut zero = false;
        while let Some(&f) = chars.peek() {
            match f {
                '-' => left = true,
                '0' => zero = true,
                '+' | ' ' | '#' => {}
                _ => break,
            }
            chars.next();
        }
        let mut width = String::new();
        while let Some(&d) = chars.peek().filter(|d| d.is_ascii_digit()) {
            width.push(d);
            chars.next();
        }
        let mut precision: Option<usize> = None;
        if chars.peek() == Some(&'.') {
            chars.next();
            let mut p = String::new();
            while let Some(&d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                p.push(d);
                chars.next();
            }
            precision = Some(p.parse().unwrap_or(0));
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.next() else {
            let _ = write!(out, "%!{verb}(MISSING)");
            continue;
        };
        let text = match verb {
            'q' => serde_json::to_string(&print_value(arg)).unwrap_or_default(),
            'd' => match arg.as_i64() {
                Some(i) => i.to_string(),
                None => format!("%!d({})", print_value(arg)),
            },
            'f' | 'F' => match arg.as_f64() {
                Some(f) => format!("{f:.prec$}", prec = precision.unwrap_or(6)),
                None => format!("%!f({})", print_value(arg)),
            },
            'x' => match (arg.as_i64(), arg.as_str()) {
                (Some(i), _) => format!("{i:x}"),
                (None, Some(s)) => s.bytes().map(|b| format!("{b:02x}")).collect(),
                _ => format!("%!x({})", print_value(arg)),
            },
            't' | 's' | 'v' => {
                let t = print_value(arg);
                match precision {
                    Some(p) if verb == 's' => t.chars().take(p).collect(),
                    _ => t,
                }
            }
            other => format!("%!{other}({})", print_value(arg)),
        };
        let w: usize = width.parse().unwrap_or(0);
        let pad = w.saturating_sub(text.chars().count());
        if left {
            out.push_str(&text);
            out.extend(std::iter::repeat_n(' ', pad));
        } else {
            out.extend(std::iter::repeat_n(if zero { '0' } else { ' ' }, pad));
            out.push_str(&text);
        }
    }
    for extra in args {
        let _ = write!(out, "%!(EXTRA {})", print_value(extra));
    }
    out
}

/// JSON as Docker's `json` function writes it: no HTML escaping, struct fields in declaration order.
fn write_json(v: &Value, structs: StructOrders, out: &mut String) {
    match v {
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(x, structs, out);
            }
            out.push(']');
        }
        Value::Object(o) => {
            let order = structs
                .iter()
                .find(|fields| !o.is_empty() && o.keys().all(|k| fields.contains(&k.as_str())));
            let keys: Vec<&str> = match order {
                Some(fields) => fields
                    .iter()
                    .copied()
                    .filter(|f| o.contains_key(*f))
                    .collect(),
                None => o.keys().map(String::as_str).collect(),
            };
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String((*k).to_owned()).to_string());
                out.push(':');
                write_json(&o[*k], structs, out);
            }
            out.push('}');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

fn call(
    name: &str,
    args: Vec<Value>,
    header: bool,
    structs: StructOrders,
) -> Result<Value, TemplateError> {
    // In a header row, Docker's text functions give back the header unchanged.
    if header
        && matches!(
            name,
            "json" | "split" | "join" | "title" | "lower" | "upper" | "truncate"
        )
    {
        return Ok(args.into_iter().next().unwrap_or(Value::Null));
    }
    let s = |v: String| Ok(Value::String(v));
    match name {
        "json" => {
            want_args(name, &args, 1)?;
            let mut out = String::new();
            write_json(&args[0], structs, &mut out);
            s(out)
        }
        "join" => {
            want_args(name, &args, 2)?;
            let sep = as_str(name, &args[1])?;
            match &args[0] {
                Value::Array(a) => {
                    let parts: Vec<String> = a.iter().map(print_value).collect();
                    s(parts.join(&sep))
                }
                Value::Null => s(String::new()),
                other => err(format!(
                    "error calling join: wrong type for value; expected []string; got {}",
                    go_type(other)
                )),
            }
        }
        "split" => {
            want_args(name, &args, 2)?;
            let text = as_str(name, &args[0])?;
            let sep = as_str(name, &args[1])?;
            let parts: Vec<Value> = if sep.is_empty() {
                text.chars().map(|c| Value::String(c.to_string())).collect()
            } else {
                text.split(sep.as_ref())
                    .map(|p| Value::String(p.to_owned()))
                    .collect()
            };
            Ok(Value::Array(parts))
        }
        "lower" => {
            want_args(name, &args, 1)?;
            s(as_str(name, &args[0])?.to_lowercase())
        }
        "upper" => {
            want_args(name, &args, 1)?;
            s(as_str(name, &args[0])?.to_uppercase())
        }
        "title" => {
            want_args(name, &args, 1)?;
            s(title(&as_str(name, &args[0])?))
        }
        "truncate" => {
            want_args(name, &args, 2)?;
            let text = as_str(name, &args[0])?;
            let n = as_int(name, &args[1])?.max(0) as usize;
            // Docker cuts bytes; stay on a character boundary.
            if text.len() < n {
                return s(text.into_owned());
            }
            let mut end = n;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            s(text[..end].to_owned())
        }
        "pad" => {
            want_args(name, &args, 3)?;
            let text = as_str(name, &args[0])?;
            if text.is_empty() {
                return s(String::new());
            }
            let before = as_int(name, &args[1])?.max(0) as usize;
            let after = as_int(name, &args[2])?.max(0) as usize;
            s(format!("{}{text}{}", " ".repeat(before), " ".repeat(after)))
        }
        "println" => {
            let parts: Vec<String> = args.iter().map(print_value).collect();
            s(format!("{}\n", parts.join(" ")))
        }
        "print" => s(sprint(&args)),
        "printf" => {
            let Some((f, rest)) = args.split_first() else {
                return err("wrong number of args for printf: want at least 1 got 0");
            };
            s(printf(&as_str(name, f)?, rest))
        }
        "index" => {
            let Some((first, keys)) = args.split_first() else {
                return err("wrong number of args for index: want at least 1 got 0");
            };
            let mut cur = first.clone();
            for k in keys {
                cur = match (&cur, k) {
                    (Value::Array(a), Value::Number(_)) => {
                        let i = as_int(name, k)?;
                        let Some(x) = usize::try_from(i).ok().and_then(|i| a.get(i)) else {
                            return err(format!("error calling index: index out of range: {i}"));
                        };
                        x.clone()
                    }
                    // A missing key gives the map's zero value: nil, or for typed data
                    // (Docker's inspect, whose maps hold strings: Labels) "".
                    (Value::Object(o), Value::String(key)) => {
                        o.get(key).cloned().unwrap_or(if structs.is_empty() {
                            Value::Null
                        } else {
                            Value::String(String::new())
                        })
                    }
                    // Typed data: a nil map of strings (Labels) gives "".
                    (Value::Null, Value::String(_)) if !structs.is_empty() => {
                        Value::String(String::new())
                    }
                    (Value::Null, _) => return err("error calling index: index of untyped nil"),
                    (c, _) => {
                        return err(format!(
                            "error calling index: cannot index {} with {}",
                            go_type(c),
                            go_type(k)
                        ))
                    }
                };
            }
            Ok(cur)
        }
        "slice" => {
            let Some((first, bounds)) = args.split_first() else {
                return err("wrong number of args for slice: want at least 1 got 0");
            };
            let b: Vec<usize> = bounds
                .iter()
                .map(|v| as_int(name, v).map(|i| i.max(0) as usize))
                .collect::<Result<_, _>>()?;
            match first {
                Value::String(t) => {
                    let lo = b.first().copied().unwrap_or(0);
                    let hi = b.get(1).copied().unwrap_or(t.len());
                    match t.get(lo..hi) {
                        Some(x) => s(x.to_owned()),
                        None => err(format!("error calling slice: index out of range: {hi}")),
                    }
                }
                Value::Array(a) => {
                    let lo = b.first().copied().unwrap_or(0);
                    let hi = b.get(1).copied().unwrap_or(a.len());
                    match a.get(lo..hi) {
                        Some(x) => Ok(Value::Array(x.to_vec())),
                        None => err(format!("error calling slice: index out of range: {hi}")),
                    }
                }
                other => err(format!(
                    "error calling slice: can't slice item of type {}",
                    go_type(other)
                )),
            }
        }
        "len" => {
            want_args(name, &args, 1)?;
            match &args[0] {
                Value::String(t) => Ok(Value::from(t.len())),
                Value::Array(a) => Ok(Value::from(a.len())),
                Value::Object(o) => Ok(Value::from(o.len())),
                other => err(format!("error calling len: len of type {}", go_type(other))),
            }
        }
        "not" => {
            want_args(name, &args, 1)?;
            Ok(Value::Bool(!truth(&args[0])))
        }
        "and" => Ok(args
            .iter()
            .find(|a| !truth(a))
            .or(args.last())
            .cloned()
            .unwrap_or(Value::Null)),
        "or" => Ok(args
            .iter()
            .find(|a| truth(a))
            .or(args.last())
            .cloned()
            .unwrap_or(Value::Null)),
        "eq" => {
            let Some((a, rest)) = args.split_first() else {
                return err("missing argument for comparison");
            };
            for b in rest {
                if compare(name, a, b)? == std::cmp::Ordering::Equal {
                    return Ok(Value::Bool(true));
                }
            }
            Ok(Value::Bool(false))
        }
        "ne" | "lt" | "le" | "gt" | "ge" => {
            want_args(name, &args, 2)?;
            let o = compare(name, &args[0], &args[1])?;
            use std::cmp::Ordering::*;
            Ok(Value::Bool(match name {
                "ne" => o != Equal,
                "lt" => o == Less,
                "le" => o != Greater,
                "gt" => o == Greater,
                _ => o != Less,
            }))
        }
        _ => err(format!("function {name:?} not defined")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(src: &str, data: Value) -> String {
        Template::parse(src)
            .and_then(|t| t.execute(&data))
            .unwrap_or_else(|e| panic!("{src}: {e}"))
    }

    fn fails(src: &str, data: Value) -> String {
        match Template::parse(src).and_then(|t| t.execute(&data)) {
            Ok(s) => panic!("{src} gave {s:?}, expected an error"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn fields_and_paths() {
        let d = json!({"Repository": "busybox", "Tag": "latest", "Config": {"Cmd": ["sh", "-c", "echo"]}});
        assert_eq!(run("{{.Repository}}:{{.Tag}}", d.clone()), "busybox:latest");
        assert_eq!(run("{{.Config.Cmd}}", d.clone()), "[sh -c echo]");
        assert_eq!(run("{{ .Config.Cmd }}", d.clone()), "[sh -c echo]");
        assert_eq!(run("plain text", d.clone()), "plain text");
    }

    #[test]
    fn missing_and_null_print_as_go_does() {
        let d = json!({"A": null, "B": [null, 1], "C": {"k": null}});
        assert_eq!(run("{{.Missing}}", d.clone()), "<no value>");
        assert_eq!(run("{{.A}}", d.clone()), "<no value>");
        assert_eq!(run("{{.B}}", d.clone()), "[<nil> 1]");
        assert_eq!(run("{{.C}}", d.clone()), "map[k:<nil>]");
        assert_eq!(run("{{.Missing.Deeper}}", d), "<no value>");
    }

    #[test]
    fn values_print_as_go_percent_v() {
        let d =
            json!({"M": {"b": 2, "a": "x"}, "N": 12345678, "F": 1.5, "T": true, "E": [], "O": {}});
        assert_eq!(run("{{.M}}", d.clone()), "map[a:x b:2]");
        assert_eq!(run("{{.N}} {{.F}} {{.T}}", d.clone()), "12345678 1.5 true");
        assert_eq!(run("{{.E}} {{.O}}", d), "[] map[]");
    }

    #[test]
    fn typed_data_prints_empty_structs_in_maps_as_go() {
        let t = Template::parse("{{.Ports}} {{.Labels}}")
            .expect("parse")
            .with_structs(&[&["Ports", "Labels"]]);
        let d = json!({"Ports": {"80/tcp": {}}, "Labels": {}});
        assert_eq!(t.execute(&d).expect("run"), "map[80/tcp:{}] map[]");
    }

    #[test]
    fn missing_typed_fields_print_their_zero_values() {
        let d = json!({"E": null, "U": null});
        let t = Template::parse("{{.E}}|{{.L}}|{{.S}}|{{.P}}|{{.U}}|{{json .E}}")
            .expect("parse")
            .with_zeros(&[
                ("E", Zero::List),
                ("L", Zero::Map),
                ("S", Zero::Str),
                ("P", Zero::Ptr),
            ]);
        assert_eq!(
            t.execute(&d).expect("run"),
            "[]|map[]||<nil>|<no value>|null"
        );
    }

    #[test]
    fn if_else_and_else_if() {
        let t = "{{if .A}}a{{else if .B}}b{{else}}c{{end}}";
        assert_eq!(run(t, json!({"A": 1})), "a");
        assert_eq!(run(t, json!({"B": "x"})), "b");
        assert_eq!(run(t, json!({"A": 0, "B": ""})), "c");
        assert_eq!(run("{{if not .A}}none{{end}}", json!({"A": []})), "none");
    }

    #[test]
    fn range_over_lists_and_maps_with_variables() {
        let d = json!({"L": ["a", "b"], "M": {"y": 2, "x": 1}, "E": []});
        assert_eq!(run("{{range .L}}<{{.}}>{{end}}", d.clone()), "<a><b>");
        assert_eq!(
            run("{{range $i, $e := .L}}{{$i}}={{$e}} {{end}}", d.clone()),
            "0=a 1=b "
        );
        assert_eq!(
            run("{{range $k, $v := .M}}{{$k}}:{{$v}},{{end}}", d.clone()),
            "x:1,y:2,"
        );
        assert_eq!(run("{{range .E}}x{{else}}empty{{end}}", d.clone()), "empty");
        assert_eq!(run("{{range .L}}{{$.M.x}}{{end}}", d), "11");
    }

    #[test]
    fn with_and_variables() {
        let d = json!({"C": {"User": "root"}, "N": ""});
        assert_eq!(run("{{with .C}}{{.User}}{{end}}", d.clone()), "root");
        assert_eq!(run("{{with .N}}x{{else}}none{{end}}", d.clone()), "none");
        assert_eq!(run("{{$u := .C.User}}{{$u}}!", d.clone()), "root!");
        assert_eq!(run("{{$u := 1}}{{$u = 2}}{{$u}}", d), "2");
    }

    #[test]
    fn pipelines_pass_the_value_as_last_argument() {
        let d = json!({"S": "Hello World", "L": ["a", "b"]});
        assert_eq!(run("{{.S | lower}}", d.clone()), "hello world");
        assert_eq!(run("{{.S | lower | upper}}", d.clone()), "HELLO WORLD");
        assert_eq!(run("{{.L | len}}", d.clone()), "2");
        assert_eq!(run("{{(index .L 1) | upper}}", d), "B");
    }

    #[test]
    fn trim_markers_and_comments() {
        let d = json!({"A": "x"});
        assert_eq!(run("a  {{- .A -}}  b", d.clone()), "axb");
        assert_eq!(run("a{{/* note */}}b", d), "ab");
    }

    #[test]
    fn json_function() {
        let d = json!({"Config": {"Env": ["A=1"], "Labels": null}, "S": "<&>"});
        assert_eq!(
            run("{{json .Config}}", d.clone()),
            r#"{"Env":["A=1"],"Labels":null}"#
        );
        // Docker turns HTML escaping off.
        assert_eq!(run("{{json .S}}", d.clone()), r#""<&>""#);
        assert_eq!(run("{{json .Missing}}", d), "null");
    }

    #[test]
    fn json_writes_struct_fields_in_declaration_order() {
        let t = Template::parse("{{json .}}")
            .expect("parse")
            .with_structs(&[&["Type", "Layers", "BaseLayer"]]);
        let d = json!({"Layers": ["a"], "Type": "layers", "M": {"b": 1, "a": 2}});
        // The outer object is no struct of the list: a map, keys sorted.
        assert_eq!(
            t.execute(&d).expect("run"),
            r#"{"Layers":["a"],"M":{"a":2,"b":1},"Type":"layers"}"#
        );
        let d = json!({"Layers": ["a"], "Type": "layers"});
        assert_eq!(
            t.execute(&d).expect("run"),
            r#"{"Type":"layers","Layers":["a"]}"#
        );
    }

    #[test]
    fn join_function() {
        let d = json!({"Cmd": ["sh", "-c", "echo"]});
        assert_eq!(run(r#"{{join .Cmd " "}}"#, d.clone()), "sh -c echo");
        assert_eq!(run(r#"{{join .Cmd ","}}"#, d), "sh,-c,echo");
    }

    #[test]
    fn split_function() {
        let d = json!({"R": "busybox:latest"});
        assert_eq!(run(r#"{{split .R ":"}}"#, d.clone()), "[busybox latest]");
        assert_eq!(run(r#"{{index (split .R ":") 0}}"#, d), "busybox");
    }

    #[test]
    fn lower_upper_title_functions() {
        let d = json!({"S": "hello big-world"});
        assert_eq!(run("{{upper .S}}", d.clone()), "HELLO BIG-WORLD");
        assert_eq!(run("{{lower \"ABC\"}}", d.clone()), "abc");
        assert_eq!(run("{{title .S}}", d), "Hello Big-World");
    }

    #[test]
    fn truncate_function() {
        let d = json!({"ID": "sha256:0123456789"});
        assert_eq!(run("{{truncate .ID 10}}", d.clone()), "sha256:012");
        assert_eq!(run("{{truncate .ID 100}}", d), "sha256:0123456789");
    }

    #[test]
    fn pad_function() {
        let d = json!({"S": "x", "E": ""});
        assert_eq!(run("[{{pad .S 2 1}}]", d.clone()), "[  x ]");
        assert_eq!(run("[{{pad .E 2 1}}]", d), "[]");
    }

    #[test]
    fn println_print_and_printf() {
        let d = json!({"A": "x", "N": 3});
        assert_eq!(run("{{println .A .N}}", d.clone()), "x 3\n");
        assert_eq!(run("{{print 1 2 .A}}", d.clone()), "1 2x");
        assert_eq!(
            run(r#"{{printf "%s-%d|%5s|%-3v|%q" .A .N .A .N .A}}"#, d),
            "x-3|    x|3  |\"x\""
        );
    }

    #[test]
    fn index_function() {
        let d = json!({"L": ["a", "b"], "M": {"k.dotted": "v"}});
        assert_eq!(run("{{index .L 0}}", d.clone()), "a");
        assert_eq!(run(r#"{{index .M "k.dotted"}}"#, d.clone()), "v");
        assert_eq!(run(r#"{{index .M "none"}}"#, d.clone()), "<no value>");
        assert!(fails("{{index .L 5}}", d).contains("index out of range"));
    }

    #[test]
    fn len_function() {
        let d = json!({"L": [1, 2, 3], "S": "abcd", "M": {"a": 1}});
        assert_eq!(run("{{len .L}} {{len .S}} {{len .M}}", d.clone()), "3 4 1");
        assert!(fails("{{len .Missing}}", d).contains("len of type"));
    }

    #[test]
    fn comparisons_and_logic() {
        let d = json!({"N": 3, "S": "a"});
        assert_eq!(run(r#"{{if eq .S "b" "a"}}yes{{end}}"#, d.clone()), "yes");
        assert_eq!(run("{{if gt .N 2}}big{{end}}", d.clone()), "big");
        assert_eq!(run("{{if and .N .S}}both{{end}}", d.clone()), "both");
        assert_eq!(run("{{or .Missing .S}}", d), "a");
    }

    #[test]
    fn header_rows_keep_header_names() {
        let t =
            Template::parse("{{.ID | lower}}\t{{json .Size}}\t{{truncate .Tag 2}}").expect("parse");
        let h = json!({"ID": "IMAGE ID", "Size": "SIZE", "Tag": "TAG"});
        assert_eq!(t.execute_header(&h).expect("run"), "IMAGE ID\tSIZE\tTAG");
    }

    #[test]
    fn errors_name_the_problem() {
        assert!(fails("{{nosuch .A}}", json!({})).contains("function \"nosuch\" not defined"));
        assert!(fails("{{if .A}}x", json!({})).contains("unexpected EOF"));
        assert!(fails("{{.A", json!({})).contains("unclosed action"));
        assert!(fails("{{.A .B}}", json!({})).contains("non-function"));
    }
}
