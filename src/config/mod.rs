//! Stage 2 of the pipeline: YAML files → typed, validated `DesiredState`. Touches no database.
//!
//! `load` reads and parses documents (`recover` reads a broken one field by field), `validate` runs
//! the semantic rules, `position` locates problems (and values, for `rewrite`, which writes adopted
//! drift back into the files in place), `schema` writes the JSON Schemas that editors and CI use.

pub mod declared;
pub mod diagnostic;
pub mod document;
pub mod load;
pub mod position;
pub mod recover;
pub mod rewrite;
pub mod schema;
mod unique;
pub mod validate;

use std::path::Path;

pub use diagnostic::{Diagnostic, DiagnosticFormat, Subject};
pub use load::{ParseCache, ReadError};
pub use validate::Validated;

/// Reads, parses and validates the config repository at `root`.
pub fn load_repo(root: &Path) -> Result<Validated, ReadError> {
    load_repo_cached(root, &mut ParseCache::default())
}

/// Parses and validates files held in memory, as `load_repo` does for a directory: the entry point of
/// the fuzz target (`fuzz/`), with no file system.
pub fn validate_files(files: Vec<load::SourceFile>) -> Validated {
    validate::validate(load::parse_files(files))
}

/// `load_repo` that parses only the files whose content is not in `cache` (and updates it).
pub fn load_repo_cached(root: &Path, cache: &mut ParseCache) -> Result<Validated, ReadError> {
    let started = std::time::Instant::now();
    let loaded = load::read_and_parse(root, load::find_files(root)?, cache)?;
    let parsed = started.elapsed();
    let validated = validate::validate(loaded);
    tracing::debug!(?parsed, total = ?started.elapsed(), files = validated.files_read, "config loaded");
    Ok(validated)
}
