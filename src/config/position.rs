//! Where each field of a YAML file is: `(document, field path) → (line, column)`. Built only for
//! files that have semantic problems, so valid repositories are parsed once.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

#[derive(Debug, Default)]
pub struct PositionIndex {
    /// One map per YAML document, in file order.
    documents: Vec<HashMap<String, Position>>,
}

impl PositionIndex {
    /// Indexes `text`; a file that stops parsing part-way keeps what was read before the error.
    pub fn build(text: &str) -> Self {
        let mut builder = Builder::default();
        // Syntax errors were already reported by the loader; keep the documents read so far.
        let _ = Parser::new_from_str(text).load(&mut builder, true);
        PositionIndex { documents: builder.documents }
    }

    /// The position of `path` in document `document`, or of its nearest ancestor that exists.
    pub fn locate(&self, document: usize, path: &str) -> Option<Position> {
        let fields = self.documents.get(document)?;
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
    documents: Vec<HashMap<String, Position>>,
    stack: Vec<Frame>,
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
                fields.insert(path, position);
            } else {
                fields.entry(path).or_insert(position);
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
                self.documents.push(HashMap::new());
                self.stack.clear();
            }
            Event::Scalar(value, ..) => match self.next_path() {
                None => {
                    if let Some(Frame::Mapping { path, key }) = self.stack.last_mut() {
                        // A key's own position stands for its value until the value is seen.
                        let full = join(path, &value);
                        *key = Some(value);
                        self.record(full, mark, false);
                    }
                }
                Some(path) => {
                    self.record(path, mark, true);
                    self.node_done();
                }
            },
            Event::Alias(_) => {
                if let Some(path) = self.next_path() {
                    self.record(path, mark, true);
                }
                self.node_done();
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                let path = self.next_path().unwrap_or_default();
                self.record(path.clone(), mark, false);
                self.stack.push(match event {
                    Event::MappingStart(..) => Frame::Mapping { path, key: None },
                    _ => Frame::Sequence { path, next: 0 },
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
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
    fn a_missing_field_is_located_at_its_nearest_ancestor() {
        let index = PositionIndex::build(TEXT);
        assert_eq!(index.locate(0, "spec.users[1].status"), index.locate(0, "spec.users[1]"));
        assert_eq!(index.locate(0, "spec.users[1]"), at(9, 7));
    }
}
