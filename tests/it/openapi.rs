//! Issue 10.7: the OpenAPI 3.1 document is generated from the handlers, committed at
//! `openapi.json`, describes every route the routers declare, and schemathesis finds no server
//! error and no response that breaks it, against the real binary and PostgreSQL.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{
    ENCRYPTION_KEY, OPERATOR, PASSWORD, Repo, ServeProcess, TestDb, activate, project_dir, request, within,
};
use crate::identity::{login, str_of};

/// The schemathesis release the test command installs (scripts/test pins the same one).
const SCHEMATHESIS: &str = "4.32.5";

/// `METHOD /path/{}/…`: a route with its parameter names left out.
pub(crate) fn shape(method: &str, path: &str) -> String {
    let segments: Vec<&str> = path.split('/').map(|s| if s.starts_with('{') { "{}" } else { s }).collect();
    format!("{method} {}", segments.join("/"))
}

/// Every operation of the generated document, shaped.
pub(crate) fn documented_routes() -> BTreeSet<String> {
    let document: Value = serde_json::from_str(&gatehouse::api::openapi::document()).expect("the document is JSON");
    let mut routes = BTreeSet::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_some() {
                routes.insert(shape(&method.to_uppercase(), path));
            }
        }
    }
    routes
}

/// Every `METHOD /path` the `router()` functions in `src/api/*.rs` declare, read from the source:
/// axum cannot list a router's routes.
fn declared_routes() -> BTreeSet<String> {
    use gatehouse::identity::LinkPurpose;
    let mut declared = BTreeSet::new();
    let dir = project_dir().join("src/api");
    for entry in std::fs::read_dir(dir).expect("src/api") {
        let source = std::fs::read_to_string(entry.expect("entry").path()).expect("source");
        // Unit tests build routers of their own.
        let source = source.split("#[cfg(test)]").next().unwrap_or("");
        for call in source.split(".route(").skip(1) {
            let (path, rest) = if let Some(literal) = call.strip_prefix('"') {
                let (path, rest) = literal.split_once('"').expect("a closing quote");
                (path.to_owned(), rest)
            } else if let Some(rest) = call.strip_prefix("LinkPurpose::Invitation.path()") {
                (LinkPurpose::Invitation.path().to_owned(), rest)
            } else if let Some(rest) = call.strip_prefix("LinkPurpose::PasswordReset.path()") {
                (LinkPurpose::PasswordReset.path().to_owned(), rest)
            } else {
                panic!("a route whose path this test cannot read: {}", call.lines().next().unwrap_or(""));
            };
            let handlers = rest.lines().next().unwrap_or("");
            for method in ["get", "post", "put", "patch", "delete"] {
                let called = handlers
                    .match_indices(&format!("{method}("))
                    .any(|(at, _)| !handlers[..at].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_'));
                if called {
                    declared.insert(shape(&method.to_uppercase(), &path));
                }
            }
        }
    }
    declared
}

#[test]
fn the_committed_openapi_document_matches_the_code() {
    let committed = std::fs::read_to_string(project_dir().join("openapi.json")).unwrap_or_default();
    assert!(
        committed == gatehouse::api::openapi::document(),
        "openapi.json is stale: run `cargo run -- openapi` and commit the result"
    );
}

/// A new route cannot escape the document: every route the routers declare has an operation, and
/// the document describes no route that does not exist.
#[test]
fn the_openapi_document_describes_every_route_the_routers_declare() {
    let declared = declared_routes();
    assert!(declared.len() > 40, "the routers were read: {declared:?}");
    let documented = documented_routes();
    let missing: Vec<&String> = declared.difference(&documented).collect();
    assert!(missing.is_empty(), "routes missing from the OpenAPI document (add #[utoipa::path]): {missing:?}");
    let phantom: Vec<&String> = documented.difference(&declared).collect();
    assert!(phantom.is_empty(), "the OpenAPI document describes routes no router declares: {phantom:?}");
}

#[test]
fn the_openapi_document_is_version_3_1_with_one_error_schema_and_every_credential() {
    let document: Value = serde_json::from_str(&gatehouse::api::openapi::document()).expect("JSON");
    assert_eq!(document["openapi"], "3.1.0");
    let schemes = document["components"]["securitySchemes"].as_object().expect("security schemes");
    for scheme in ["operator", "apiKey", "apiKeyHeader", "session"] {
        assert!(schemes.contains_key(scheme), "no security scheme `{scheme}`: {schemes:?}");
    }
    assert_eq!(document["components"]["schemas"]["Error"]["required"], json!(["error"]));
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            let failure = &operation["responses"]["4XX"]["$ref"];
            assert_eq!(failure, "#/components/responses/Failure", "{method} {path}: 4XX is not the shared envelope");
        }
    }
}

/// The schemathesis CLI of the test command's virtual environment (scripts/test puts it first on
/// PATH); a missing one fails the test rather than skipping it silently.
fn schemathesis() -> std::path::PathBuf {
    let from_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).map(|dir| dir.join("st")).find(|st| st.is_file()))
        .unwrap_or_default();
    let venv = project_dir().join("target/venv/bin/st");
    from_path.or_else(|| venv.is_file().then_some(venv)).unwrap_or_else(|| {
        panic!(
            "schemathesis is not installed: run scripts/test (it installs schemathesis=={SCHEMATHESIS} into \
             target/venv), or `pip install schemathesis=={SCHEMATHESIS}` and put its `st` on PATH"
        )
    })
}

/// Issue 10.7: one credential per actor kind, a fixed seed, a bounded number of examples: zero
/// 5xx and zero responses that break the document (a status, content type or body it does not
/// describe).
#[tokio::test]
async fn schemathesis_finds_no_server_error_and_no_response_that_breaks_the_document() {
    let st = schemathesis();
    let db = TestDb::new().await;
    let repo = Repo::example();
    let server = ServeProcess::start_with(repo.path(), &db.url, "60s", &[("GATEHOUSE_ENCRYPTION_KEY", ENCRYPTION_KEY)]);
    within(Duration::from_secs(30), "replica ready", || async {
        request("GET", format!("{}/readyz", server.base), vec![], vec![]).await.status == 200
    })
    .await;

    // Served without a credential, and the same as the committed file.
    let served = request("GET", format!("{}/openapi.json", server.base), vec![], vec![]).await;
    assert_eq!(served.status, 200, "{}", served.text);
    assert_eq!(served.text, gatehouse::api::openapi::document());

    let key = request(
        "POST",
        format!("{}/v1/apps/analytics-app/keys", server.base),
        vec![("authorization", format!("Bearer {OPERATOR}")), ("content-type", "application/json".into())],
        serde_json::to_vec(&json!({ "scopes": ["flags:read", "auth:introspect"] })).expect("json"),
    )
    .await;
    assert_eq!(key.status, 201, "{}", key.text);
    let key = str_of(&key.body, "secret").to_owned();
    activate(&db, &["carol@acme.example"]).await;
    let signed_in = login(&server, "carol@acme.example", PASSWORD).await;
    assert_eq!(signed_in.status, 200, "{}", signed_in.text);
    let session = str_of(&signed_in.body, "access_token").to_owned();

    // The operator's run comes last: following the document's links it revokes and rotates the
    // keys it lists and ends users' sessions, which would leave the other runs without a credential.
    let runs = [
        ("public", None),
        ("application", Some(key)),
        ("session", Some(session)),
        ("operator", Some(OPERATOR.to_owned())),
    ];
    // Schemathesis keeps a cache in its working directory: not in the repository.
    let scratch = tempfile::tempdir().expect("scratch dir");
    let mut failed = Vec::new();
    for (tag, credential) in runs {
        let mut command = std::process::Command::new(&st);
        command
            .args(["run", &format!("{}/openapi.json", server.base)])
            .args([
                "--checks",
                "not_a_server_error,response_schema_conformance,content_type_conformance,status_code_conformance",
            ])
            .args(["--seed", "10", "--max-examples", "40", "--request-timeout", "10"])
            // One worker: with two, Hypothesis's lambda descriptions race (a schemathesis run
            // error, "AST constructor recursion depth mismatch", once in ten runs here).
            .args(["--workers", "1"])
            .args(["--include-tag", tag])
            // An event stream never ends: its first event is checked by the flags tests.
            .args(["--exclude-operation-id", "flag_events"])
            // Ending the session would leave the rest of the run with a dead credential.
            .args(["--exclude-operation-id", "logout"])
            // An admin may end their own sessions through the users' route: the operator's run covers it.
            .args(["--exclude-operation-id", "end_sessions"])
            .current_dir(scratch.path())
            .env("NO_COLOR", "1");
        if let Some(credential) = credential {
            command.args(["-H", &format!("Authorization: Bearer {credential}")]);
        }
        let output = command.output().expect("schemathesis runs");
        let text = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
        // The summary (operations, phases, warnings) shows with `--nocapture`.
        let summary: Vec<&str> = text.lines().rev().take(60).collect();
        eprintln!("--- schemathesis, tag {tag}:\n{}", summary.into_iter().rev().collect::<Vec<_>>().join("\n"));
        if !output.status.success() {
            failed.push(format!("--- schemathesis, tag {tag}:\n{text}"));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}
