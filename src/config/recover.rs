//! Lenient parsing of a document that the strict parse refused: each structural problem (an
//! unknown field, a value of the wrong type, a missing field) is reported at its own field, the
//! offending node is taken out, and the rest is parsed again, so that one misspelt field does not
//! hide the document's other problems. The typed document that results carries the list of what
//! was taken out (`Removed`), so that the semantic checks do not misread a gap as a problem of its
//! own (a user taken out is not a missing owner) and report paths as they are in the file.

use serde::Deserialize;
use serde_yaml::Value;

use super::document::Document;

/// Repairs tried per document before giving up; each takes one node out.
const MAX_REPAIRS: usize = 200;

/// The nodes taken out of a document to parse the rest, as paths in the file (`spec.users[2]`,
/// `spec.sso`). Empty for a document that parsed as written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Removed {
    paths: Vec<String>,
}

impl Removed {
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// Whether `path` or anything below it was taken out.
    pub fn touches(&self, path: &str) -> bool {
        self.paths.iter().any(|p| {
            p.strip_prefix(path).is_some_and(|rest| rest.is_empty() || rest.starts_with('.') || rest.starts_with('['))
        })
    }

    /// Turns a path in the parsed document into the path in the file: list items after an item
    /// that was taken out have a higher index in the file.
    pub fn original_path(&self, path: &str) -> String {
        if self.paths.is_empty() {
            return path.to_owned();
        }
        self.original(&Segment::parse(path))
    }

    fn original(&self, segments: &[Segment]) -> String {
        let mut out = String::new();
        for segment in segments {
            match segment {
                Segment::Key(key) => out = join(&out, key),
                Segment::Index(index) => {
                    let mut taken: Vec<usize> = self
                        .paths
                        .iter()
                        .filter_map(|p| {
                            p.strip_prefix(out.as_str())?.strip_prefix('[')?.strip_suffix(']')?.parse().ok()
                        })
                        .collect();
                    taken.sort_unstable();
                    let mut index = *index;
                    for t in taken {
                        if t <= index {
                            index += 1;
                        }
                    }
                    out = format!("{out}[{index}]");
                }
            }
        }
        out
    }
}

/// One structural problem: where (a path in the file), whether the position is that of a key, and
/// what serde said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The field the problem is about, as a path in the file; for an unknown field, its mapping.
    pub path: String,
    /// For an unknown field, the path of the misspelt key itself (to point at it).
    pub key: Option<String>,
    pub message: String,
}

/// The result of parsing a document leniently.
#[derive(Debug, Default)]
pub struct Recovered {
    /// The document with the offending nodes taken out, if enough of it was left to type it.
    pub document: Option<(Document, Removed)>,
    pub problems: Vec<Problem>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Key(String),
    Index(usize),
}

impl Segment {
    /// Parses `spec.users[2].email`; keys holding `.` or `[` are read as several segments, which
    /// only makes such a path fail to resolve.
    fn parse(path: &str) -> Vec<Segment> {
        let mut segments = Vec::new();
        for part in path.split('.').filter(|p| !p.is_empty()) {
            let (key, mut rest) = part.split_once('[').map_or((part, ""), |(k, r)| (k, r));
            if !key.is_empty() {
                segments.push(Segment::Key(key.to_owned()));
            }
            while let Some((index, after)) = rest.split_once(']') {
                match index.parse() {
                    Ok(i) => segments.push(Segment::Index(i)),
                    Err(_) => segments.push(Segment::Key(format!("[{index}]"))),
                }
                rest = after.strip_prefix('[').unwrap_or(after);
            }
        }
        segments
    }
}

fn render(segments: &[Segment]) -> String {
    let mut out = String::new();
    for segment in segments {
        match segment {
            Segment::Key(key) => out = join(&out, key),
            Segment::Index(i) => out = format!("{out}[{i}]"),
        }
    }
    out
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") }
}

/// Parses `value` (a document whose strict parse failed) as far as it can, taking out one offending
/// node at a time. A wrong `apiVersion` or `kind` leaves nothing to check: the rest is not read.
pub fn recover(mut value: Value) -> Recovered {
    put_header_first(&mut value);
    let mut removed = Removed::default();
    // Mappings a key was taken out of: a "missing field" there is the same problem seen again (a
    // misspelt `rol` is why `role` is missing).
    let mut emptied: Vec<String> = Vec::new();
    let mut recovered = Recovered::default();
    for _ in 0..MAX_REPAIRS {
        // Parsing from text (not from the `Value`) keeps serde_yaml's reading of plain scalars: an
        // unquoted `12345` is a fine string there, as in the strict parse.
        let Ok(text) = serde_yaml::to_string(&value) else { break };
        let error = match serde_path_to_error::deserialize::<_, Document>(serde_yaml::Deserializer::from_str(&text)) {
            Ok(document) => {
                recovered.document = Some((document, removed));
                return recovered;
            }
            Err(error) => error,
        };
        let mut at: Vec<Segment> = Vec::new();
        for segment in error.path() {
            match segment {
                serde_path_to_error::Segment::Seq { index } => at.push(Segment::Index(*index)),
                serde_path_to_error::Segment::Map { key } => at.push(Segment::Key(key.clone())),
                // Enum variants and non-string keys: nothing this repair can take out precisely.
                _ => break,
            }
        }
        // serde_yaml names the mapping of an unknown field, serde_path_to_error the field itself.
        let parent = &at[..at.len().saturating_sub(1)];
        let message = clean_message(&error.into_inner().to_string(), &[render(&at), render(parent)]);
        let unknown = quoted_after(&message, "unknown field `");
        // The path of an unknown field ends with it; the problem is reported at its mapping.
        if unknown.as_ref().is_some_and(|field| at.last() == Some(&Segment::Key(field.clone()))) {
            at.pop();
        }
        let path = removed.original(&at);
        if let Some(field) = unknown {
            let key = join(&path, &field);
            emptied.push(path.clone());
            recovered.problems.push(Problem { path, key: Some(key), message });
            let mut target = at;
            target.push(Segment::Key(field));
            if !take_out(&mut value, &target, &mut removed) {
                break;
            }
            continue;
        }
        let missing = message.starts_with("missing field `");
        if !(missing && emptied.contains(&path)) {
            recovered.problems.push(Problem { path, key: None, message });
        }
        if at.is_empty() || at == [Segment::Key("apiVersion".into())] || at == [Segment::Key("kind".into())] {
            break;
        }
        if let [parent @ .., Segment::Key(_)] = at.as_slice() {
            emptied.push(removed.original(parent));
        }
        if !take_out(&mut value, &at, &mut removed) {
            break;
        }
    }
    recovered
}

/// `apiVersion`, `kind` and `metadata` before `spec`, so that the spec is typed as it is read and its
/// errors keep their path.
fn put_header_first(value: &mut Value) {
    let Value::Mapping(mapping) = value else { return };
    let mut ordered = serde_yaml::Mapping::new();
    for key in ["apiVersion", "kind", "metadata"] {
        if let Some(v) = mapping.shift_remove(key) {
            ordered.insert(Value::String(key.to_owned()), v);
        }
    }
    ordered.extend(std::mem::take(mapping));
    *mapping = ordered;
}

/// Takes the node at `path` out of `value`, recording it; `false` when there is no such node.
fn take_out(value: &mut Value, path: &[Segment], removed: &mut Removed) -> bool {
    let Some((last, parent_path)) = path.split_last() else { return false };
    let original = removed.original(path);
    let mut node = value;
    for segment in parent_path {
        node = match (segment, untagged(node)) {
            (Segment::Key(key), Value::Mapping(m)) => match m.get_mut(key.as_str()) {
                Some(child) => child,
                None => return false,
            },
            (Segment::Index(i), Value::Sequence(s)) => match s.get_mut(*i) {
                Some(child) => child,
                None => return false,
            },
            _ => return false,
        };
    }
    let taken = match (last, untagged(node)) {
        (Segment::Key(key), Value::Mapping(m)) => m.shift_remove(key.as_str()).is_some(),
        (Segment::Index(i), Value::Sequence(s)) if *i < s.len() => {
            s.remove(*i);
            true
        }
        _ => false,
    };
    if taken {
        removed.paths.push(original);
    }
    taken
}

fn untagged(value: &mut Value) -> &mut Value {
    match value {
        Value::Tagged(tagged) => untagged(&mut tagged.value),
        other => other,
    }
}

/// serde_yaml's message without the path it starts with and the position it ends with (both are
/// of the re-serialised text, not of the file).
fn clean_message(text: &str, paths: &[String]) -> String {
    let text = match text.rfind(" at line ") {
        Some(i) if text[i..].contains(" column ") => &text[..i],
        _ => text,
    };
    let prefixed = paths.iter().filter(|p| !p.is_empty()).find_map(|p| text.strip_prefix(format!("{p}: ").as_str()));
    prefixed.unwrap_or(text).to_owned()
}

fn quoted_after(message: &str, start: &str) -> Option<String> {
    let rest = message.strip_prefix(start)?;
    Some(rest[..rest.find('`')?].to_owned())
}

/// Document `index` of `text` as a YAML value, or the syntax error that stops it.
pub fn document_value(text: &str, index: usize) -> Result<Value, serde_yaml::Error> {
    match serde_yaml::Deserializer::from_str(text).nth(index) {
        Some(document) => Value::deserialize(document),
        None => Ok(Value::Null),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recover_text(text: &str) -> Recovered {
        recover(serde_yaml::from_str(text).expect("YAML"))
    }

    const TENANT: &str = "\
apiVersion: gatehouse.dev/v1
kind: Tenant
metadata: { name: acme }
spec:
  displayName: Acme
  plan: pro
  colour: blue
  users:
    - { email: a@acme.example, rol: owner }
    - { email: b@acme.example, role: boss }
    - { email: c@acme.example, role: owner }
    - { email: c@acme.example, role: user, status: gone }
";

    #[test]
    fn every_structural_problem_of_a_document_is_reported_and_the_rest_is_typed() {
        let recovered = recover_text(TENANT);
        let problems: Vec<(&str, Option<&str>)> =
            recovered.problems.iter().map(|p| (p.path.as_str(), p.key.as_deref())).collect();
        assert_eq!(
            problems,
            [
                ("spec", Some("spec.colour")),
                ("spec.users[0]", Some("spec.users[0].rol")),
                ("spec.users[1].role", None),
                ("spec.users[3].status", None),
            ],
            "{:#?}",
            recovered.problems
        );
        assert!(recovered.problems[0].message.starts_with("unknown field `colour`"));
        assert!(recovered.problems[2].message.starts_with("unknown variant `boss`"), "{:?}", recovered.problems[2]);
        let (document, removed) = recovered.document.expect("the rest is typed");
        let Document::Tenant { spec, .. } = document else { panic!("a tenant") };
        let emails: Vec<&str> = spec.users.iter().map(|u| u.email.as_str()).collect();
        assert_eq!(emails, ["c@acme.example", "c@acme.example"], "users 0 and 1 are taken out, 3 keeps its email");
        assert!(removed.touches("spec.users"));
        assert!(!removed.touches("spec.sso"));
        assert_eq!(removed.original_path("spec.users[0].email"), "spec.users[2].email");
        assert_eq!(removed.original_path("spec.users[1].email"), "spec.users[3].email");
    }

    #[test]
    fn a_misspelt_field_is_reported_once_not_again_as_missing() {
        let recovered = recover_text(TENANT);
        assert!(recovered.problems.iter().all(|p| !p.message.contains("missing field")), "{:#?}", recovered.problems);
    }

    #[test]
    fn a_wrong_kind_stops_the_document_there() {
        let recovered =
            recover_text("apiVersion: gatehouse.dev/v1\nkind: Tenat\nmetadata: { name: a }\nspec: { x: 1 }\n");
        assert_eq!(recovered.problems.len(), 1, "{:#?}", recovered.problems);
        assert!(recovered.document.is_none());
    }

    #[test]
    fn a_spec_written_before_its_kind_is_still_checked_field_by_field() {
        let recovered = recover_text(
            "spec: { displayName: A, plan: pro, users: [], flavour: x }\nkind: Tenant\napiVersion: gatehouse.dev/v1\nmetadata: { name: a }\n",
        );
        assert_eq!(recovered.problems[0].key.as_deref(), Some("spec.flavour"), "{:#?}", recovered.problems);
        assert!(recovered.document.is_some());
    }

    #[test]
    fn an_optional_section_with_a_problem_is_taken_out_whole() {
        let recovered = recover_text(
            "apiVersion: gatehouse.dev/v1\nkind: Tenant\nmetadata: { name: a }\nspec:\n  displayName: A\n  plan: pro\n  sso: { issuer: https://x.example, clientID: y, clientSecretRef: { env: X } }\n",
        );
        assert_eq!(recovered.problems.len(), 1, "{:#?}", recovered.problems);
        let (_, removed) = recovered.document.expect("typed without sso");
        assert!(removed.touches("spec.sso"));
    }
}
