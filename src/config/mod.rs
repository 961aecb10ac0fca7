//! Stage 2 of the pipeline: YAML files → typed, validated `DesiredState`. Touches no database.
//!
//! `load` reads and parses documents, `validate` runs the semantic rules, `position` locates
//! problems, `schema` writes the JSON Schemas that editors and CI use.

pub mod diagnostic;
pub mod document;
pub mod load;
pub mod position;
pub mod schema;
pub mod validate;

use std::path::Path;

pub use diagnostic::{Diagnostic, DiagnosticFormat, Subject};
pub use load::ReadError;
pub use validate::Validated;

/// Reads, parses and validates the config repository at `root`.
pub fn load_repo(root: &Path) -> Result<Validated, ReadError> {
    let files = load::read_repo(root)?;
    Ok(validate::validate(load::parse(files)))
}
