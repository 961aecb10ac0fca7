//! The Helm chart: its values file satisfies its values schema, the schema refuses wrong values, and
//! the templates only use values that exist.

use crate::helpers::project_dir;

fn chart(file: &str) -> String {
    std::fs::read_to_string(project_dir().join("charts/gatehouse").join(file)).expect(file)
}

fn values() -> serde_json::Value {
    serde_yaml::from_str(&chart("values.yaml")).expect("values.yaml is YAML")
}

fn validator() -> jsonschema::Validator {
    let schema: serde_json::Value = serde_json::from_str(&chart("values.schema.json")).expect("schema is JSON");
    jsonschema::validator_for(&schema).expect("schema compiles")
}

#[test]
fn the_default_values_satisfy_the_values_schema() {
    let errors: Vec<String> =
        validator().iter_errors(&values()).map(|e| format!("{e} at {}", e.instance_path)).collect();
    assert!(errors.is_empty(), "{errors:?}");
}

#[test]
fn the_values_schema_refuses_wrong_values() {
    let validator = validator();
    let cases: [(&str, serde_json::Value); 6] = [
        ("/replicaCount", serde_json::json!("two")),
        ("/config/path", serde_json::json!("/etc/gatehouse")),
        ("/config/path", serde_json::json!("../elsewhere")),
        ("/config/interval", serde_json::json!("every minute")),
        ("/config/logFormat", serde_json::json!("xml")),
        ("/secrets/databaseUrll", serde_json::json!("typo")),
    ];
    for (pointer, value) in cases {
        let mut values = values();
        let (parent, key) = pointer.rsplit_once('/').expect("pointer");
        values.pointer_mut(parent).expect(parent)[key] = value;
        assert!(!validator.is_valid(&values), "{pointer} should be refused");
    }
}

#[test]
fn templates_only_use_values_that_exist() {
    let values = values();
    let dir = project_dir().join("charts/gatehouse/templates");
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).expect("templates") {
        let text = std::fs::read_to_string(entry.expect("entry").path()).expect("template");
        for (at, _) in text.match_indices(".Values.") {
            let path: String =
                text[at + ".Values.".len()..].chars().take_while(|c| c.is_alphanumeric() || *c == '.').collect();
            let pointer = format!("/{}", path.trim_end_matches('.').replace('.', "/"));
            assert!(values.pointer(&pointer).is_some(), "templates use .Values.{path}, which values.yaml lacks");
            checked += 1;
        }
    }
    assert!(checked > 10, "only {checked} value references found");
}
