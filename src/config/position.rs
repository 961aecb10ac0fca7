//! Where each field of a YAML file is: `(document, field path) → (line, column)`, and for
//! `rewrite` what each value node is (scalar with its style, mapping with its keys, list). Built only
//! for files that have semantic problems or are being rewritten, so valid repositories are parsed once.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

#[derive(Debug, Default)]
pub struct PositionIndex {
    /// One map per YAML document, in file order.
    documents: Vec<Fields>,
}

/// One document's nodes by path: where each value is, and where each mapping key is.
#[derive(Debug, Default)]
struct Fields {
    values: HashMap<String, Position>,
    keys: HashMap<String, Position>,
    /// The plain `kind` and `metadata.name` of the document, to name it in a syntax error.
    kind: Option<String>,
    name: Option<String>,
    /// Every value node by path, with what `rewrite` needs to change it in place.
    nodes: HashMap<String, Node>,
}

/// A value node as written: where it starts and, for a container, what it holds and where it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub start: Position,
    pub kind: NodeKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeKind {
    Scalar {
        value: String,
        style: ScalarStyle,
    },
    /// `end` is where the parser ended the mapping: the `}` of a flow mapping; for a block mapping
    /// the start of whatever follows it.
    Mapping {
        keys: Vec<String>,
        end: Position,
    },
    Sequence {
        items: usize,
        end: Position,
    },
    Alias,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScalarStyle {
    Plain,
    SingleQuoted,
    DoubleQuoted,
    /// `|` or `>`: spans lines of its own.
    Block,
}

impl From<TScalarStyle> for ScalarStyle {
    fn from(style: TScalarStyle) -> Self {
        match style {
            TScalarStyle::SingleQuoted => Self::SingleQuoted,
            TScalarStyle::DoubleQuoted => Self::DoubleQuoted,
            TScalarStyle::Literal | TScalarStyle::Folded => Self::Block,
            _ => Self::Plain,
        }
    }
}

/// Where a YAML syntax error stopped the parser: which document, the field being read, and the
/// resource the document declares as far as it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxContext {
    /// 0-based index of the document in its file.
    pub document: usize,
    /// The field whose value (or key) could not be read; empty at the top of the document.
    pub path: String,
    pub kind: Option<String>,
    pub name: Option<String>,
}

impl PositionIndex {
    /// Indexes `text`; a file that stops parsing part-way keeps what was read before the error.
    pub fn build(text: &str) -> Self {
        let mut builder = Builder::default();
        // Syntax errors were already reported by the loader; keep the documents read so far.
        let _ = Parser::new_from_str(text).load(&mut builder, true);
        PositionIndex { documents: builder.documents }
    }

    /// Where parsing `text` stops with a syntax error, or `None` when it parses. `at` is where the
    /// broken construct starts: a value whose key the parser had not yet passed on is named by the
    /// `key:` written before it on its line.
    pub fn syntax_context(text: &str, at: Position) -> Option<SyntaxContext> {
        let mut builder = Builder::default();
        Parser::new_from_str(text).load(&mut builder, true).err()?;
        let path = match builder.stack.last() {
            None => String::new(),
            Some(Frame::Mapping { path, key: None }) => path.clone(),
            Some(Frame::Mapping { path, key: Some(key) }) => join(path, key),
            Some(Frame::Sequence { path, next }) => format!("{path}[{next}]"),
        };
        let path = match key_before(text, at) {
            Some(key) if path.rsplit('.').next() != Some(key) => join(&path, key),
            _ => path,
        };
        // An open mapping or list that starts right where the broken construct does is the one to name.
        let started_there = builder.stack.iter().zip(&builder.starts).rev().find(|(_, start)| **start == at);
        let path = match started_there {
            Some((Frame::Mapping { path, .. } | Frame::Sequence { path, .. }, _)) => path.clone(),
            None => path,
        };
        let document = builder.documents.len().saturating_sub(1);
        let fields = builder.documents.pop().unwrap_or_default();
        Some(SyntaxContext { document, path, kind: fields.kind, name: fields.name })
    }

    /// The position of the key of `path` (the last segment of which is a mapping key), or of the
    /// nearest ancestor when there is no such key: where a misspelt field name is.
    pub fn locate_key(&self, document: usize, path: &str) -> Option<Position> {
        let found = self.documents.get(document).and_then(|fields| fields.keys.get(path));
        found.copied().or_else(|| self.locate(document, path))
    }

    /// The node at `path` in document `document`, if it is written there.
    pub fn node(&self, document: usize, path: &str) -> Option<&Node> {
        self.documents.get(document)?.nodes.get(path)
    }

    /// The position of the key of `path` itself (no ancestor stands in for it).
    pub fn key(&self, document: usize, path: &str) -> Option<Position> {
        self.documents.get(document)?.keys.get(path).copied()
    }

    /// The index of the document that declares `kind` `name`.
    pub fn document_of(&self, kind: &str, name: &str) -> Option<usize> {
        self.documents.iter().position(|d| d.kind.as_deref() == Some(kind) && d.name.as_deref() == Some(name))
    }

    /// The position of `path` in document `document`, or of its nearest ancestor that exists.
    pub fn locate(&self, document: usize, path: &str) -> Option<Position> {
        let fields = &self.documents.get(document)?.values;
        let mut path = path;
        loop {
            if let Some(found) = fields.get(path) {
                return Some(*found);
            }
            if path.is_empty() {
                return None;
            }
            path = parent(path);
        }
    }
}

/// The mapping key written just before `at` on its line (`{ email: "…` → `email`).
fn key_before(text: &str, at: Position) -> Option<&str> {
    let line = text.lines().nth(at.line.checked_sub(1)?)?;
    let before = line.get(..line.char_indices().nth(at.column.checked_sub(1)?).map_or(line.len(), |(i, _)| i))?;
    let before = before.trim_end().strip_suffix(':')?.trim_end();
    let start = before.rfind(|c: char| c.is_whitespace() || c == '{' || c == ',').map_or(0, |i| i + 1);
    let key = &before[start..];
    (!key.is_empty()).then_some(key)
}

fn parent(path: &str) -> &str {
    match path.rfind(['.', '[']) {
        Some(i) => &path[..i],
        None => "",
    }
}

enum Frame {
    Mapping { path: String, key: Option<String> },
    Sequence { path: String, next: usize },
}

#[derive(Default)]
struct Builder {
    documents: Vec<Fields>,
    stack: Vec<Frame>,
    /// Where each open container of `stack` starts.
    starts: Vec<Position>,
    /// The keys of each open mapping of `stack` (empty for sequences), in file order.
    keys: Vec<Vec<String>>,
}

impl Builder {
    /// The path of the node that starts now, or `None` when it is a mapping key.
    fn next_path(&mut self) -> Option<String> {
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Mapping { key: None, .. }) => None,
            Some(Frame::Mapping { path, key: Some(key) }) => Some(join(path, key)),
            Some(Frame::Sequence { path, next }) => Some(format!("{path}[{next}]")),
        }
    }

    /// After a whole node (scalar or container) the parent moves on to its next entry.
    fn node_done(&mut self) {
        match self.stack.last_mut() {
            Some(Frame::Mapping { key, .. }) => *key = None,
            Some(Frame::Sequence { next, .. }) => *next += 1,
            None => {}
        }
    }

    /// Scalars replace their key's position (the value is what to fix); containers keep it (a block
    /// mapping starts on the line after its key).
    fn record(&mut self, path: String, mark: Marker, replace: bool) {
        let position = Position { line: mark.line(), column: mark.col() + 1 };
        if let Some(fields) = self.documents.last_mut() {
            if replace {
                fields.values.insert(path, position);
            } else {
                fields.values.entry(path).or_insert(position);
            }
        }
    }

    fn record_node(&mut self, path: String, start: Position, kind: NodeKind) {
        if let Some(fields) = self.documents.last_mut() {
            fields.nodes.insert(path, Node { start, kind });
        }
    }

    fn record_key(&mut self, path: &str, mark: Marker) {
        let position = Position { line: mark.line(), column: mark.col() + 1 };
        if let Some(fields) = self.documents.last_mut() {
            fields.keys.entry(path.to_owned()).or_insert(position);
        }
    }

    /// Remembers the scalars that name the document's resource.
    fn remember(&mut self, path: &str, value: &str) {
        if let Some(fields) = self.documents.last_mut() {
            match path {
                "kind" => fields.kind = Some(value.to_owned()),
                "metadata.name" => fields.name = Some(value.to_owned()),
                _ => {}
            }
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        match event {
            Event::DocumentStart => {
                self.documents.push(Fields::default());
                self.stack.clear();
                self.starts.clear();
                self.keys.clear();
            }
            Event::Scalar(value, style, ..) => match self.next_path() {
                None => {
                    if let Some(Frame::Mapping { path, key }) = self.stack.last_mut() {
                        // A key's own position stands for its value until the value is seen.
                        let full = join(path, &value);
                        if let Some(keys) = self.keys.last_mut() {
                            keys.push(value.clone());
                        }
                        *key = Some(value);
                        self.record_key(&full, mark);
                        self.record(full, mark, false);
                    }
                }
                Some(path) => {
                    self.remember(&path, &value);
                    let start = Position { line: mark.line(), column: mark.col() + 1 };
                    self.record_node(path.clone(), start, NodeKind::Scalar { value, style: style.into() });
                    self.record(path, mark, true);
                    self.node_done();
                }
            },
            Event::Alias(_) => {
                if let Some(path) = self.next_path() {
                    self.record_node(
                        path.clone(),
                        Position { line: mark.line(), column: mark.col() + 1 },
                        NodeKind::Alias,
                    );
                    self.record(path, mark, true);
                }
                self.node_done();
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                let path = self.next_path().unwrap_or_default();
                self.record(path.clone(), mark, false);
                self.starts.push(Position { line: mark.line(), column: mark.col() + 1 });
                self.keys.push(Vec::new());
                self.stack.push(match event {
                    Event::MappingStart(..) => Frame::Mapping { path, key: None },
                    _ => Frame::Sequence { path, next: 0 },
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                let end = Position { line: mark.line(), column: mark.col() + 1 };
                let keys = self.keys.pop().unwrap_or_default();
                if let (Some(frame), Some(start)) = (self.stack.pop(), self.starts.pop()) {
                    match frame {
                        Frame::Mapping { path, .. } => self.record_node(path, start, NodeKind::Mapping { keys, end }),
                        Frame::Sequence { path, next } => {
                            self.record_node(path, start, NodeKind::Sequence { items: next, end })
                        }
                    }
                }
                self.node_done();
            }
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
apiVersion: gatehouse.dev/v1
kind: Tenant
metadata:
  name: acme
spec:
  users:
    - email: a@acme.example
      role: owner
    - { email: b@acme.example, role: admin }
---
kind: Plan
metadata: { name: pro }
";

    fn at(line: usize, column: usize) -> Option<Position> {
        Some(Position { line, column })
    }

    #[test]
    fn fields_are_found_by_path_in_each_document() {
        let index = PositionIndex::build(TEXT);
        assert_eq!(index.locate(0, "metadata.name"), at(4, 9));
        assert_eq!(index.locate(0, "spec.users[0].role"), at(8, 13));
        assert_eq!(index.locate(0, "spec.users[1].email"), at(9, 16));
        assert_eq!(index.locate(1, "metadata.name"), at(12, 19));
    }

    #[test]
    fn a_key_is_located_where_its_name_is_written() {
        let index = PositionIndex::build(TEXT);
        assert_eq!(index.locate_key(0, "spec.users[1].role"), at(9, 32));
        assert_eq!(index.locate(0, "spec.users[1].role"), at(9, 38));
        assert_eq!(index.locate_key(0, "spec.users[1].status"), at(9, 7), "a key that is not there: its parent");
    }

    #[test]
    fn a_syntax_error_names_its_document_and_the_field_being_read() {
        let text = "kind: Plan\nmetadata: { name: pro }\n---\nkind: Tenant\nmetadata: { name: acme }\nspec:\n  users:\n    - { email: \"a@b.example, role: owner }\n";
        let context = PositionIndex::syntax_context(text, Position { line: 8, column: 16 }).expect("a syntax error");
        assert_eq!(context.document, 1);
        assert_eq!(context.path, "spec.users[0].email");
        assert_eq!((context.kind.as_deref(), context.name.as_deref()), (Some("Tenant"), Some("acme")));
        assert_eq!(PositionIndex::syntax_context(TEXT, Position { line: 1, column: 1 }), None);
    }

    #[test]
    fn a_missing_field_is_located_at_its_nearest_ancestor() {
        let index = PositionIndex::build(TEXT);
        assert_eq!(index.locate(0, "spec.users[1].status"), index.locate(0, "spec.users[1]"));
        assert_eq!(index.locate(0, "spec.users[1]"), at(9, 7));
    }
}
