//! Reads a config repository: every `*.yaml`/`*.yml` file below the root (hidden files and folders
//! such as `.git` and `.github` are skipped), every YAML document in each, parsed into `Document`s.
//! Structural problems are collected, never fatal: one bad file does not hide the others.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;
use serde::Deserialize;
use sha2::Digest as _;

use super::diagnostic::{Diagnostic, Subject};
use super::document::Document;
use super::position::PositionIndex;
use super::recover::{self, Removed};

/// A file of the repository, read into memory.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// Relative to the repository root, with `/` separators.
    pub path: String,
    pub text: String,
}

/// A document that parsed, with where it came from.
#[derive(Debug, Clone)]
pub struct ParsedDocument {
    /// Index into `Loaded::files`.
    pub file: usize,
    /// 0-based index of the document within its file.
    pub index: usize,
    /// Shared with the parse cache, so an unchanged file costs no copy.
    pub document: Arc<Document>,
    /// What was taken out of a document with structural problems so that the rest could be checked
    /// (its problems are in `Loaded::problems`); empty for a document that parsed as written.
    pub removed: Arc<Removed>,
}

#[derive(Debug, Default)]
pub struct Loaded {
    pub files: Vec<SourceFile>,
    pub documents: Vec<ParsedDocument>,
    pub problems: Vec<(Subject, Diagnostic)>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{0} is not a directory")]
    NotADirectory(PathBuf),
}

/// The paths of every config file below `root`, sorted so that output is stable.
pub fn find_files(root: &Path) -> Result<Vec<PathBuf>, ReadError> {
    if !root.is_dir() {
        return Err(ReadError::NotADirectory(root.to_owned()));
    }
    let mut paths = Vec::new();
    collect_yaml_paths(root, &mut paths)?;
    paths.sort();
    Ok(paths)
}

/// Parsed files by path and content hash, kept between passes by a long-running reconciler so that a
/// pass parses only the files that changed.
#[derive(Debug, Default)]
pub struct ParseCache {
    files: HashMap<String, ([u8; 32], FileParse)>,
}

impl ParseCache {
    /// Identifies the content last read: equal fingerprints mean identical files. Unlike a commit id it
    /// also tells edits apart in a plain directory or a dirty work tree.
    pub fn fingerprint(&self) -> [u8; 32] {
        let mut files: Vec<_> = self.files.iter().map(|(path, (digest, _))| (path, digest)).collect();
        files.sort();
        let mut hasher = sha2::Sha256::new();
        for (path, digest) in files {
            hasher.update(path.as_bytes());
            hasher.update([0]);
            hasher.update(digest);
        }
        hasher.finalize().into()
    }
}

/// Reads and parses every file, in parallel; the result keeps file order. Files whose content is in
/// `cache` are not parsed again; `cache` is updated to exactly the files read.
pub fn read_and_parse(root: &Path, paths: Vec<PathBuf>, cache: &mut ParseCache) -> Result<Loaded, ReadError> {
    let known = &cache.files;
    let per_file: Vec<(SourceFile, [u8; 32], FileParse)> = paths
        .into_par_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).map_err(|source| ReadError::Io { path: path.clone(), source })?;
            let file = SourceFile { path: relative(root, &path), text };
            let digest: [u8; 32] = sha2::Sha256::digest(file.text.as_bytes()).into();
            let parsed = match known.get(&file.path) {
                Some((cached, parsed)) if *cached == digest => parsed.clone(),
                _ => parse_file(&file),
            };
            Ok((file, digest, parsed))
        })
        .collect::<Result<_, ReadError>>()?;
    cache.files =
        per_file.iter().map(|(file, digest, parsed)| (file.path.clone(), (*digest, parsed.clone()))).collect();
    Ok(assemble(per_file.into_iter().map(|(file, _, parsed)| (file, parsed)).collect()))
}

/// Parses files already in memory.
pub fn parse_files(files: Vec<SourceFile>) -> Loaded {
    assemble(
        files
            .into_iter()
            .map(|file| {
                let parsed = parse_file(&file);
                (file, parsed)
            })
            .collect(),
    )
}

fn collect_yaml_paths(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), ReadError> {
    let io = |source| ReadError::Io { path: dir.to_owned(), source };
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        let file_type = entry.file_type().map_err(io)?;
        if file_type.is_dir() {
            collect_yaml_paths(&path, out)?;
        } else if path.extension().is_some_and(|ext| ext == "yaml" || ext == "yml") {
            out.push(path);
        }
    }
    Ok(())
}

fn relative(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/")
}

fn assemble(per_file: Vec<(SourceFile, FileParse)>) -> Loaded {
    let mut loaded = Loaded::default();
    for (index, (file, (documents, problems))) in per_file.into_iter().enumerate() {
        loaded.files.push(file);
        loaded.documents.extend(documents.into_iter().map(|(i, document, removed)| ParsedDocument {
            file: index,
            index: i,
            document,
            removed,
        }));
        loaded.problems.extend(problems);
    }
    loaded
}

/// A file's documents (with their index in the file and what was taken out of them) and its problems.
type FileParse = (Vec<(usize, Arc<Document>, Arc<Removed>)>, Vec<(Subject, Diagnostic)>);

fn parse_file(file: &SourceFile) -> FileParse {
    let mut documents = Vec::new();
    let mut problems = Vec::new();
    let mut positions = None;
    for (index, deserializer) in serde_yaml::Deserializer::from_str(&file.text).enumerate() {
        match Option::<Document>::deserialize(deserializer) {
            Ok(Some(document)) => documents.push((index, Arc::new(document), Arc::default())),
            Ok(None) => {} // an empty document, such as a trailing `---`
            Err(_) => {
                let value = match recover::document_value(&file.text, index) {
                    Ok(value) => value,
                    Err(syntax) => {
                        // The YAML parser's own error (the typed parse can stumble on the broken
                        // construct first); nothing after it in the file can be read.
                        problems.push((Subject::File(file.path.clone()), syntax_diagnostic(file, index, &syntax)));
                        break;
                    }
                };
                if value.is_null() {
                    continue;
                }
                // Valid YAML that is not a valid document: check it field by field.
                let subject = attribute(&value, &file.path);
                let recovered = recover::recover(value);
                let positions = positions.get_or_insert_with(|| PositionIndex::build(&file.text));
                for problem in recovered.problems {
                    let position = match &problem.key {
                        Some(key) => positions.locate_key(index, key),
                        None => positions.locate(index, &problem.path),
                    };
                    let (line, column) = position.map_or((1, 1), |p| (p.line, p.column));
                    let diagnostic = Diagnostic {
                        file: file.path.clone(),
                        line,
                        column,
                        path: problem.path,
                        message: hint(problem.message),
                    };
                    problems.push((subject.clone(), diagnostic));
                }
                if let Some((document, removed)) = recovered.document {
                    documents.push((index, Arc::new(document), Arc::new(removed)));
                }
            }
        }
    }
    (documents, problems)
}

/// Which resource a document that failed to parse was meant to declare, read leniently so that
/// `apply` holds back just that resource.
fn attribute(document: &serde_yaml::Value, path: &str) -> Subject {
    let field = |value: &serde_yaml::Value, key: &str| value.get(key).and_then(|v| v.as_str()).map(str::to_owned);
    let kind = field(document, "kind");
    let name = document.get("metadata").and_then(|m| field(m, "name"));
    match (kind.as_deref(), name) {
        (Some("Tenant"), Some(name)) => Subject::Tenant(name),
        (Some("Plan"), Some(name)) => Subject::Plan(name),
        (Some("Application"), Some(name)) => Subject::Application(name),
        _ => Subject::File(path.to_owned()),
    }
}

/// A YAML syntax error, located where the broken construct starts, with the field being read and
/// the document it is in (the rest of the file cannot be read, so everything it declares is held
/// back).
fn syntax_diagnostic(file: &SourceFile, index: usize, error: &serde_yaml::Error) -> Diagnostic {
    let mut diagnostic = diagnostic(&file.path, error);
    let at = super::position::Position { line: diagnostic.line, column: diagnostic.column };
    let context = PositionIndex::syntax_context(&file.text, at).filter(|c| c.document == index);
    let document = match context.as_ref().map(|c| (c.kind.as_deref(), c.name.as_deref())) {
        Some((Some(kind), Some(name))) => format!("document {}, {kind} `{name}`", index + 1),
        _ => format!("document {}", index + 1),
    };
    if let Some(context) = context.filter(|c| diagnostic.path.is_empty() && !c.path.is_empty()) {
        diagnostic.path = context.path;
    }
    diagnostic.message = format!("{} (in {document})", diagnostic.message);
    diagnostic
}

/// Turns a serde_yaml error into a located diagnostic, splitting its text into path and message.
/// A syntax error with context ("…, while scanning a quoted scalar at line 7 column 16") is located
/// where that construct starts, which is where the fix is.
fn diagnostic(file: &str, error: &serde_yaml::Error) -> Diagnostic {
    let (mut line, mut column) = error.location().map_or((1, 1), |l| (l.line(), l.column()));
    let text = error.to_string();
    let (problem, context) = match text.split_once(", while ") {
        Some((problem, context)) => (problem, Some(context)),
        None => (text.as_str(), None),
    };
    let (problem, problem_at) = split_position(problem);
    let text = match context.map(split_position) {
        Some((context, Some(start))) => {
            (line, column) = start;
            let end = problem_at.map(|(l, c)| format!(" at line {l} column {c}")).unwrap_or_default();
            format!("while {context} that starts here: {problem}{end}")
        }
        Some((context, None)) => format!("{problem}, while {context}"),
        None => problem.to_owned(),
    };
    let (path, message) = match text.split_once(": ") {
        Some((path, message)) if looks_like_path(path) => (path.to_owned(), message.to_owned()),
        _ => (String::new(), text),
    };
    Diagnostic { file: file.to_owned(), line, column, path, message: hint(message) }
}

/// Splits "message at line 7 column 16" into the message and its position.
fn split_position(text: &str) -> (&str, Option<(usize, usize)>) {
    let Some(i) = text.rfind(" at line ") else {
        return (text, None);
    };
    let position = text[i + " at line ".len()..].split_once(" column ");
    match position.and_then(|(l, c)| Some((l.trim().parse().ok()?, c.trim().parse().ok()?))) {
        Some(at) => (&text[..i], Some(at)),
        None => (text, None),
    }
}

fn looks_like_path(s: &str) -> bool {
    !s.is_empty() && !s.contains(' ') && s.chars().all(|c| c.is_alphanumeric() || "._[]-".contains(c))
}

/// Adds the fix to messages whose fix is not obvious from serde's wording.
fn hint(message: String) -> String {
    if message.starts_with("unknown variant") && message.contains("gatehouse.dev/v1") {
        format!("{message}; every document starts with `apiVersion: gatehouse.dev/v1`")
    } else if message.starts_with("unknown variant") && message.contains("`Tenant`") {
        format!("{message}; `kind` names the resource type")
    } else if message.starts_with("unknown field") {
        format!("{message}; remove it or fix its spelling")
    } else {
        message
    }
}
