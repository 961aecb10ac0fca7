//! The committed JSON Schemas are generated from the Rust types and must stay in step with them; a
//! third-party validator (the `jsonschema` crate here, `check-jsonschema` in CI) accepts the example
//! repo with them and rejects the fixtures whose problems a schema can see.

use std::path::Path;

use crate::helpers::project_dir;

#[test]
fn committed_schemas_match_the_rust_types() {
    for (name, generated) in gatehouse::config::schema::all() {
        let path = project_dir().join("schemas").join(name);
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(committed == generated, "schemas/{name} is stale: run `cargo run -- schema` and commit the result");
    }
}

fn validator() -> jsonschema::Validator {
    let text = std::fs::read_to_string(project_dir().join("schemas/gatehouse.json")).expect("schema");
    let schema: serde_json::Value = serde_json::from_str(&text).expect("schema is JSON");
    jsonschema::options().should_validate_formats(true).build(&schema).expect("schema compiles")
}

/// Every YAML document below `dir`, as JSON.
fn documents(dir: &Path) -> Result<Vec<serde_json::Value>, String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| e.to_string())? {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.is_dir() {
            out.extend(documents(&path)?);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
            for document in serde_yaml::Deserializer::from_str(&text) {
                // Through YAML's own value, which refuses a key written twice as Gatehouse and
                // check-jsonschema do (a JSON value would keep the last silently).
                let value: serde_yaml::Value =
                    serde::Deserialize::deserialize(document).map_err(|e| format!("{}: {e}", path.display()))?;
                out.push(serde_json::to_value(value).map_err(|e| format!("{}: {e}", path.display()))?);
            }
        }
    }
    Ok(out)
}

#[test]
fn the_schema_accepts_every_document_of_the_example_repo() {
    let validator = validator();
    let documents = documents(&project_dir().join("example-config-repo")).expect("example repo parses");
    assert!(documents.len() >= 11);
    for document in documents {
        let errors: Vec<String> = validator.iter_errors(&document).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{errors:?} in {document}");
    }
}

#[test]
fn the_schema_rejects_the_fixtures_it_can_see_and_accepts_the_cross_document_ones() {
    let validator = validator();
    for entry in std::fs::read_dir(project_dir().join("tests/fixtures/invalid")).expect("fixtures") {
        let dir = entry.expect("entry").path();
        let verdict = std::fs::read_to_string(dir.join("schema.txt")).expect("schema.txt");
        let parsed = documents(&dir);
        match verdict.trim() {
            "unparseable" => assert!(parsed.is_err(), "{} should not parse", dir.display()),
            expectation => {
                let documents = parsed.expect("parses");
                let valid = documents.iter().all(|d| validator.is_valid(d));
                let expected = expectation == "accepts";
                assert_eq!(valid, expected, "schema verdict for {}", dir.display());
            }
        }
    }
}
