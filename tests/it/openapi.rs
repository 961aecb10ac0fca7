//! Issue 10.7: the OpenAPI 3.1 document is generated from the handlers, committed at
//! `openapi.json`, describes every route the routers declare, and schemathesis finds no server
//! error and no response that breaks it, against the real binary and PostgreSQL.

use serde_json::{Value, json};

use crate::helpers::{ENCRYPTION_KEY, InProcess, OPERATOR, PASSWORD, Repo, TestDb, activate, project_dir, request};
use crate::identity::{login, str_of};

/// The schemathesis release the test command installs (scripts/test pins the same one).
const SCHEMATHESIS: &str = "4.32.5";

#[test]
fn the_committed_openapi_document_matches_the_code() {
    let committed = std::fs::read_to_string(project_dir().join("openapi.json")).unwrap_or_default();
    assert!(
        committed == gatehouse::api::openapi::document(),
        "openapi.json is stale: run `cargo run -- openapi` and commit the result"
    );
}

/// Issue 22.1: every route is registered once, with its operation (`api::routes`, utoipa-axum's
/// `routes!`), so the router cannot serve a route the document does not describe, nor the reverse.
/// What is left to check is that operation ids are unique, as a client generator needs.
#[test]
fn every_operation_has_an_id_of_its_own() {
    let document: Value = serde_json::from_str(&gatehouse::api::openapi::document()).expect("JSON");
    let mut ids = std::collections::BTreeMap::<String, Vec<String>>::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            let id = operation["operationId"].as_str().unwrap_or_else(|| panic!("{method} {path}: no operationId"));
            ids.entry(id.to_owned()).or_default().push(format!("{method} {path}"));
        }
    }
    assert!(ids.len() > 90, "every operation was read: {}", ids.len());
    let shared: Vec<_> = ids.iter().filter(|(_, operations)| operations.len() > 1).collect();
    assert!(shared.is_empty(), "operation ids shared by several operations: {shared:?}");
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

/// The schemathesis CLI of the test command's virtual environment, of the release scripts/test
/// pins (its checks and flags change between releases).
fn schemathesis() -> std::path::PathBuf {
    let st = venv_tool("st");
    let version = std::process::Command::new(&st).arg("--version").output().expect("st --version");
    let version = String::from_utf8_lossy(&version.stdout);
    assert_eq!(version.trim(), format!("st, version {SCHEMATHESIS}"), "run scripts/test: it installs this release");
    st
}

/// `serve` on the example repository, ready, with the document it serves (without a credential).
async fn serving_the_document() -> (TestDb, Repo, InProcess, String) {
    let db = TestDb::new().await;
    let repo = Repo::example();
    let server = InProcess::start(repo.path(), &db.url, "60s", &[("GATEHOUSE_ENCRYPTION_KEY", ENCRYPTION_KEY)]);
    server.ready().await;
    let served = request("GET", format!("{}/openapi.json", server.base), vec![], vec![]).await;
    assert_eq!(served.status, 200, "{}", served.text);
    (db, repo, server, served.text)
}

/// Issue 10.7: one credential per actor kind, a fixed seed, a bounded number of examples: zero
/// 5xx and zero responses that break the document (a status, content type or body it does not
/// describe).
#[tokio::test]
async fn schemathesis_finds_no_server_error_and_no_response_that_breaks_the_document() {
    let st = schemathesis();
    let (db, _repo, server, served) = serving_the_document().await;
    // Answered without a credential, and the same as the committed file.
    assert_eq!(served, gatehouse::api::openapi::document());

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

    // The runs of the public, application and session credentials run side by side; the
    // operator's comes last: following the document's links it revokes and rotates the keys it
    // lists and ends users' sessions, which would leave the other runs without a credential.
    let stages = [
        vec![("public", None), ("application", Some(key)), ("session", Some(session))],
        vec![("operator", Some(OPERATOR.to_owned()))],
    ];
    let mut failed = Vec::new();
    for stage in stages {
        let mut running = Vec::new();
        for (tag, credential) in stage {
            // Schemathesis keeps a cache in its working directory: not in the repository, and one
            // per run.
            let scratch = tempfile::tempdir().expect("scratch dir");
            let mut command = std::process::Command::new(&st);
            command
                .args(["run", &format!("{}/openapi.json", server.base)])
                .args([
                    "--checks",
                    "not_a_server_error,response_schema_conformance,content_type_conformance,status_code_conformance",
                ])
                .args(["--seed", "10", "--max-examples", "25", "--request-timeout", "10"])
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
                .env("NO_COLOR", "1")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            if let Some(credential) = credential {
                command.args(["-H", &format!("Authorization: Bearer {credential}")]);
            }
            running.push((tag, scratch, command.spawn().expect("schemathesis runs")));
        }
        for (tag, _scratch, child) in running {
            let output =
                tokio::task::spawn_blocking(move || child.wait_with_output()).await.expect("wait").expect("output");
            let text = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
            // The summary (operations, phases, warnings) shows with `--nocapture`.
            let summary: Vec<&str> = text.lines().rev().take(60).collect();
            eprintln!("--- schemathesis, tag {tag}:\n{}", summary.into_iter().rev().collect::<Vec<_>>().join("\n"));
            if !output.status.success() {
                failed.push(format!("--- schemathesis, tag {tag}:\n{text}"));
            }
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

/// A program of the test command's virtual environment: a missing one fails the test (scripts/test
/// installs it), never skips it.
fn venv_tool(name: &str) -> std::path::PathBuf {
    let from_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).map(|dir| dir.join(name)).find(|tool| tool.is_file()))
        .unwrap_or_default();
    let venv = project_dir().join("target/venv/bin").join(name);
    from_path.or_else(|| venv.is_file().then_some(venv)).unwrap_or_else(|| {
        panic!("{name} is not installed: run scripts/test (it installs it into target/venv), or put it on PATH")
    })
}

/// Issue 22.2 acceptance: a standard validator (PyPI `openapi-spec-validator`) accepts the served
/// document, and a client generated from it (PyPI `openapi-python-client`) calls three operations
/// of the real server: one public, one read with the operator's token, one with a request body.
#[tokio::test]
async fn a_standard_validator_accepts_the_served_document_and_a_client_generated_from_it_calls_the_server() {
    let (validator, generator) = (venv_tool("openapi-spec-validator"), venv_tool("openapi-python-client"));
    let (db, _repo, server, served) = serving_the_document().await;
    let scratch = tempfile::tempdir().expect("scratch dir");
    let document = scratch.path().join("openapi.json");
    std::fs::write(&document, &served).expect("document written");

    let validated =
        std::process::Command::new(&validator).arg(&document).output().expect("openapi-spec-validator runs");
    let said = format!("{}{}", String::from_utf8_lossy(&validated.stdout), String::from_utf8_lossy(&validated.stderr));
    assert!(validated.status.success() && said.contains("OK"), "openapi-spec-validator: {said}");

    let generated = std::process::Command::new(&generator)
        .args(["generate", "--meta", "none", "--output-path", "gatehouse_client", "--path"])
        .arg(&document)
        .current_dir(scratch.path())
        .output()
        .expect("openapi-python-client runs");
    assert!(
        generated.status.success(),
        "openapi-python-client: {}{}",
        String::from_utf8_lossy(&generated.stdout),
        String::from_utf8_lossy(&generated.stderr)
    );
    let program = r#"
import sys
from gatehouse_client import AuthenticatedClient, Client
from gatehouse_client.api.public import healthz
from gatehouse_client.api.admin import create_tenant, list_tenants
from gatehouse_client.models import CreateTenant, NewOwner

base, token = sys.argv[1], sys.argv[2]
public = Client(base_url=base, raise_on_unexpected_status=True)
assert healthz.sync_detailed(client=public).status_code == 200

operator = AuthenticatedClient(base_url=base, token=token, raise_on_unexpected_status=True)
page = list_tenants.sync(client=operator, limit=2)
assert [t.name for t in page.tenants] == ["acme", "globex"], page
assert page.next_ is not None, page

body = CreateTenant(name="wayne", display_name="Wayne Enterprises", plan="free",
                    owner=NewOwner(email="bruce@wayne.example", name="Bruce Wayne"))
made = create_tenant.sync(client=operator, body=body)
assert (made.name, made.display_name, made.managed_by) == ("wayne", "Wayne Enterprises", "api"), made
print("three operations called")
"#;
    let called = std::process::Command::new("python3")
        .args(["-c", program, &server.base, OPERATOR])
        .current_dir(scratch.path())
        .output()
        .expect("python3 runs");
    let said = format!("{}{}", String::from_utf8_lossy(&called.stdout), String::from_utf8_lossy(&called.stderr));
    assert!(called.status.success() && said.contains("three operations called"), "the generated client: {said}");
    assert_eq!(db.count("SELECT count(*) FROM tenants WHERE name = 'wayne'").await, 1, "created through it");
}
