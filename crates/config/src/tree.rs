//! The configuration file as a plain tree in which every key and value keeps
//! its place in the file. This is the only module that knows toml_edit; the
//! rest of the crate walks this tree.

use std::ops::Range;

pub type Span = Option<Range<usize>>;

#[derive(Clone, Debug)]
pub enum Val {
    Str(String),
    Int(i64),
    Float,
    Bool(bool),
    Datetime,
    Array(Vec<(Span, Val)>),
    Table(Table),
}

impl Val {
    /// How an error message names this kind of value.
    pub fn kind(&self) -> &'static str {
        match self {
            Val::Str(_) => "a string",
            Val::Int(_) => "an integer",
            Val::Float => "a float",
            Val::Bool(_) => "a boolean",
            Val::Datetime => "a date",
            Val::Array(_) => "an array",
            Val::Table(_) => "a table",
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Table {
    pub span: Span,
    pub entries: Vec<Entry>,
}

#[derive(Clone, Debug)]
pub struct Entry {
    pub key: String,
    pub key_span: Span,
    pub span: Span,
    pub value: Val,
}

/// A TOML syntax error, with the byte offset where it was found.
pub struct SyntaxError {
    pub span: Span,
    pub message: String,
}

pub fn parse(text: &str) -> Result<Table, SyntaxError> {
    let doc = toml_edit::Document::parse(text)
        .map_err(|e| SyntaxError { span: e.span(), message: e.message().trim().to_string() })?;
    Ok(table(doc.as_table()))
}

fn table(t: &toml_edit::Table) -> Table {
    let entries = t
        .iter()
        .filter_map(|(k, item)| {
            let (key, _) = t.get_key_value(k)?;
            let value = item_val(item)?;
            Some(Entry { key: k.to_string(), key_span: key.span(), span: item.span().or_else(|| key.span()), value })
        })
        .collect();
    Table { span: t.span(), entries }
}

fn item_val(item: &toml_edit::Item) -> Option<Val> {
    match item {
        toml_edit::Item::None => None,
        toml_edit::Item::Value(v) => Some(value(v)),
        toml_edit::Item::Table(t) => Some(Val::Table(table(t))),
        toml_edit::Item::ArrayOfTables(a) => {
            Some(Val::Array(a.iter().map(|t| (t.span(), Val::Table(table(t)))).collect()))
        }
    }
}

fn value(v: &toml_edit::Value) -> Val {
    use toml_edit::Value as V;
    match v {
        V::String(s) => Val::Str(s.value().clone()),
        V::Integer(i) => Val::Int(*i.value()),
        V::Float(_) => Val::Float,
        V::Boolean(b) => Val::Bool(*b.value()),
        V::Datetime(_) => Val::Datetime,
        V::Array(a) => Val::Array(a.iter().map(|x| (x.span(), value(x))).collect()),
        V::InlineTable(t) => Val::Table(Table {
            span: t.span(),
            entries: t
                .iter()
                .filter_map(|(k, x)| {
                    let (key, _) = t.get_key_value(k)?;
                    Some(Entry { key: k.to_string(), key_span: key.span(), span: x.span(), value: value(x) })
                })
                .collect(),
        }),
    }
}
