//! JSON Schemas of the config format, generated from the serde types in `document.rs` so that the
//! Rust types stay the one source of truth. `gatehouse schema` writes them to `schemas/`; a test
//! fails when the committed files no longer match the code.

use schemars::JsonSchema;

use super::document::{ApiVersion, ApplicationSpec, Metadata, PlanSpec, TenantSpec};

macro_rules! document_schema {
    ($doc:ident, $kind:ident, $spec:ty, $title:literal) => {
        #[derive(JsonSchema)]
        #[allow(dead_code)] // only its schema is used: parsing goes through `Document`
        enum $kind {
            #[serde(rename = $title)]
            Only,
        }

        #[doc = concat!("A Gatehouse `", $title, "` document.")]
        #[derive(JsonSchema)]
        #[serde(deny_unknown_fields)]
        #[schemars(title = $title)]
        #[allow(dead_code)]
        struct $doc {
            #[serde(rename = "apiVersion")]
            api_version: ApiVersion,
            kind: $kind,
            metadata: Metadata,
            spec: $spec,
        }
    };
}

document_schema!(TenantDocument, TenantKind, TenantSpec, "Tenant");
document_schema!(PlanDocument, PlanKind, PlanSpec, "Plan");
document_schema!(ApplicationDocument, ApplicationKind, ApplicationSpec, "Application");

/// Any Gatehouse document: for files that mix kinds.
#[derive(JsonSchema)]
#[serde(untagged)]
#[schemars(title = "Gatehouse resource")]
#[allow(dead_code)]
enum AnyDocument {
    Tenant(TenantDocument),
    Plan(PlanDocument),
    Application(ApplicationDocument),
}

fn render<T: JsonSchema>() -> String {
    let schema = schemars::generate::SchemaSettings::draft2020_12().into_generator().into_root_schema_for::<T>();
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}

/// Every schema file: `(file name, contents)`.
pub fn all() -> Vec<(&'static str, String)> {
    vec![
        ("gatehouse.json", render::<AnyDocument>()),
        ("tenant.json", render::<TenantDocument>()),
        ("plan.json", render::<PlanDocument>()),
        ("application.json", render::<ApplicationDocument>()),
    ]
}
