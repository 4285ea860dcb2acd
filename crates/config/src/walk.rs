//! Walking a table of the tree: take the keys a schema knows, convert them
//! with a clear message when they do not fit, and report every key left
//! over. Problems are collected, never thrown, so one run names them all.

use std::fmt;
use std::time::Duration;

use crate::tree::{Entry, Span, Table, Val};
use crate::values;

/// One thing wrong with the file, at a place in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub line: usize,
    pub column: usize,
    /// The dotted path of the key, e.g. `sets.web.resources[0].address`.
    pub key: String,
    pub message: String,
}

pub struct Ctx<'a> {
    src: &'a str,
    pub problems: Vec<Problem>,
}

impl<'a> Ctx<'a> {
    pub fn new(src: &'a str) -> Self {
        Ctx { src, problems: Vec::new() }
    }

    pub fn at(&mut self, span: &Span, key: &str, message: impl Into<String>) {
        let offset = span.as_ref().map_or(0, |s| s.start).min(self.src.len());
        let before = &self.src[..offset];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        self.problems.push(Problem { line, column, key: key.to_string(), message: message.into() });
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}: {}", self.line, self.column, self.key, self.message)
    }
}

/// The keys of one table, taken one by one.
pub struct Fields<'t> {
    pub path: String,
    table: &'t Table,
    used: Vec<bool>,
}

impl<'t> Fields<'t> {
    pub fn new(path: impl Into<String>, table: &'t Table) -> Self {
        Fields { path: path.into(), table, used: vec![false; table.entries.len()] }
    }

    pub fn span(&self) -> &'t Span {
        &self.table.span
    }

    pub fn key(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    pub fn get(&mut self, key: &str) -> Option<&'t Entry> {
        let i = self.table.entries.iter().position(|e| e.key == key)?;
        self.used[i] = true;
        Some(&self.table.entries[i])
    }

    /// Report every key nobody took. `owner` may name the other places a
    /// key belongs to, for a clearer message than "unknown key".
    pub fn finish(self, ctx: &mut Ctx, owner: impl Fn(&str) -> Option<String>) {
        for (entry, used) in self.table.entries.iter().zip(&self.used) {
            if !used {
                let path = self.key(&entry.key);
                ctx.at(&entry.key_span, &path, owner(&entry.key).unwrap_or_else(|| "unknown key".into()));
            }
        }
    }

    pub fn missing(&self, ctx: &mut Ctx, key: &str) {
        let path = if self.path.is_empty() { key.to_string() } else { self.path.clone() };
        ctx.at(self.span(), &path, format!("missing key \"{key}\""));
    }

    fn typed<T>(&mut self, ctx: &mut Ctx, key: &str, want: &str, f: impl Fn(&Val) -> Option<T>) -> Option<(T, Span)> {
        let e = self.get(key)?;
        match f(&e.value) {
            Some(v) => Some((v, e.span.clone())),
            None => {
                ctx.at(&e.span, &self.key(key), format!("expected {want}, found {}", e.value.kind()));
                None
            }
        }
    }

    pub fn string(&mut self, ctx: &mut Ctx, key: &str) -> Option<(String, Span)> {
        self.typed(ctx, key, "a string", |v| if let Val::Str(s) = v { Some(s.clone()) } else { None })
    }

    pub fn required_string(&mut self, ctx: &mut Ctx, key: &str) -> Option<(String, Span)> {
        if self.table.entries.iter().all(|e| e.key != key) {
            self.missing(ctx, key);
            return None;
        }
        self.string(ctx, key)
    }

    pub fn bool(&mut self, ctx: &mut Ctx, key: &str) -> Option<bool> {
        self.typed(ctx, key, "true or false", |v| if let Val::Bool(b) = v { Some(*b) } else { None }).map(|x| x.0)
    }

    /// An integer within `lo..=hi`.
    pub fn int(&mut self, ctx: &mut Ctx, key: &str, lo: i64, hi: i64) -> Option<(i64, Span)> {
        let (n, span) = self.typed(ctx, key, "an integer", |v| if let Val::Int(n) = v { Some(*n) } else { None })?;
        if (lo..=hi).contains(&n) {
            Some((n, span))
        } else {
            ctx.at(&span, &self.key(key), format!("{n} is out of range ({lo} to {hi})"));
            None
        }
    }

    pub fn duration(&mut self, ctx: &mut Ctx, key: &str) -> Option<(Duration, Span)> {
        let (s, span) = self.string(ctx, key)?;
        match values::duration(&s) {
            Ok(d) => Some((d, span)),
            Err(why) => {
                ctx.at(&span, &self.key(key), why);
                None
            }
        }
    }

    /// An array of strings, each with its place.
    pub fn strings(&mut self, ctx: &mut Ctx, key: &str) -> Option<Vec<(String, Span)>> {
        let e = self.get(key)?;
        let Val::Array(items) = &e.value else {
            ctx.at(&e.span, &self.key(key), format!("expected an array of strings, found {}", e.value.kind()));
            return None;
        };
        spanned_strings(ctx, &self.key(key), items)
    }

    pub fn table(&mut self, ctx: &mut Ctx, key: &str) -> Option<&'t Table> {
        let e = self.get(key)?;
        match &e.value {
            Val::Table(t) => Some(t),
            other => {
                ctx.at(&e.span, &self.key(key), format!("expected a table, found {}", other.kind()));
                None
            }
        }
    }

    /// A table of string values (agent parameters, environments).
    pub fn string_map(&mut self, ctx: &mut Ctx, key: &str) -> Option<Vec<(String, String)>> {
        let t = self.table(ctx, key)?;
        let path = self.key(key);
        let mut out = Vec::new();
        for e in &t.entries {
            match &e.value {
                Val::Str(s) => out.push((e.key.clone(), s.clone())),
                Val::Int(n) => out.push((e.key.clone(), n.to_string())),
                Val::Bool(b) => out.push((e.key.clone(), b.to_string())),
                other => {
                    ctx.at(&e.span, &format!("{path}.{}", e.key), format!("expected a string, found {}", other.kind()))
                }
            }
        }
        Some(out)
    }

    /// An array of tables, each with its index.
    pub fn tables(&mut self, ctx: &mut Ctx, key: &str) -> Vec<(usize, &'t Table)> {
        let Some(e) = self.get(key) else { return Vec::new() };
        let Val::Array(items) = &e.value else {
            ctx.at(&e.span, &self.key(key), format!("expected an array of tables, found {}", e.value.kind()));
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, (span, v)) in items.iter().enumerate() {
            match v {
                Val::Table(t) => out.push((i, t)),
                other => ctx.at(
                    span,
                    &format!("{}[{i}]", self.key(key)),
                    format!("expected a table, found {}", other.kind()),
                ),
            }
        }
        out
    }
}

fn spanned_strings(ctx: &mut Ctx, path: &str, items: &[(Span, Val)]) -> Option<Vec<(String, Span)>> {
    let mut out = Vec::with_capacity(items.len());
    for (i, (span, v)) in items.iter().enumerate() {
        match v {
            Val::Str(s) => out.push((s.clone(), span.clone())),
            other => ctx.at(span, &format!("{path}[{i}]"), format!("expected a string, found {}", other.kind())),
        }
    }
    (out.len() == items.len()).then_some(out)
}

/// The strings of an array value, each checked.
pub fn strings_of(ctx: &mut Ctx, path: &str, items: &[(Span, Val)]) -> Option<Vec<String>> {
    spanned_strings(ctx, path, items).map(|v| v.into_iter().map(|x| x.0).collect())
}
