//! Applications, API keys and flag delivery, end to end: the real binary as two replicas on one
//! database, keys issued with the real CLI, flags read over real HTTP and through the real
//! OpenFeature SDK with its OFREP provider.

use std::io::BufRead;
use std::time::Duration;

use serde_json::Value;

use crate::helpers::{HttpResponse, InProcess, Repo, Served, TestDb, gatehouse, request, stderr, stdout, within};

const OPERATOR: &str = "cli-test-token";

async fn started(repo: &Repo, db: &TestDb, env: &[(&str, &str)]) -> InProcess {
    let server = InProcess::start(repo.path(), &db.url, "60s", env);
    server.ready().await;
    server
}

/// Runs `gatehouse <args> --format json` against `server` and returns its JSON output.
fn cli(server: &Served, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["--format", "json"]);
    let output = gatehouse(&all, &[("GATEHOUSE_SERVER", server.base.as_str()), ("GATEHOUSE_OPERATOR_TOKEN", OPERATOR)]);
    assert!(output.status.success(), "{args:?}: {}", stderr(&output));
    serde_json::from_str(&stdout(&output)).expect("JSON output")
}

/// Issues a key with the CLI; returns (key id, secret).
pub fn issue(server: &Served, app: &str, extra: &[&str]) -> (String, String) {
    let mut args = vec!["keys", "create", "--app", app];
    args.extend(extra);
    let key = cli(server, &args);
    (key["id"].as_str().expect("id").to_owned(), key["secret"].as_str().expect("secret").to_owned())
}

async fn flags(server: &Served, tenant: &str, key: &str, etag: Option<&str>) -> HttpResponse {
    let mut headers = vec![("authorization", format!("Bearer {key}"))];
    if let Some(etag) = etag {
        headers.push(("if-none-match", etag.to_owned()));
    }
    request("GET", format!("{}/v1/tenants/{tenant}/flags", server.base), headers, vec![]).await
}

async fn ofrep(server: &Served, path: &str, key: &str, body: &str) -> HttpResponse {
    let url = format!("{}/ofrep/v1/evaluate/flags{path}", server.base);
    request("POST", url, vec![("x-api-key", key.to_owned()), ("content-type", "application/json".into())], body.into())
        .await
}

/// Waits (the rows are written off the request path) until at least `expected` refused application
/// requests with this reason are audited (counting aggregated rows by their count); returns how many.
async fn denied(db: &TestDb, reason: &str, expected: i64) -> i64 {
    let query = format!(
        "SELECT coalesce(sum(coalesce((metadata->>'count')::bigint, 1)), 0)::bigint FROM audit_log WHERE action = 'api.denied' AND outcome = 'failure' AND metadata->>'reason' = '{reason}'"
    );
    within(Duration::from_secs(2), &format!("{expected} refusals audited: {reason}"), || async {
        db.count(&query).await >= expected
    })
    .await;
    db.count(&query).await
}

fn error_code(response: &HttpResponse) -> &str {
    response.body["error"]["code"].as_str().unwrap_or("")
}

/// SC-001, SC-003, FR-SYS-002: an application declared in Git and applied; a key issued with the
/// CLI reads a tenant's flags on both replicas; once revoked, the next request is refused on the
/// replica that revoked it and, within a second, on the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sc001_a_key_from_the_cli_reads_flags_and_its_revocation_reaches_every_replica_within_a_second() {
    let (db, repo) = (TestDb::new().await, Repo::example());
    let a = started(&repo, &db, &[]).await;
    let b = started(&repo, &db, &[]).await;
    let (key_id, secret) = issue(&a, "billing-app", &["--name", "sc001"]);
    assert!(secret.starts_with(&format!("gatehouse_{key_id}_")), "{secret}");

    for replica in [&a, &b] {
        let response = within(Duration::from_secs(2), "the new key is known everywhere", || async {
            flags(replica, "acme", &secret, None).await.status == 200
        });
        response.await;
        let body = flags(replica, "acme", &secret, None).await.body;
        assert_eq!(
            body["flags"]["max_projects"],
            serde_json::json!({"value": 1000, "type": "integer", "source": "tenant"})
        );
        assert_eq!(body["flags"]["ai_module_enabled"]["value"], true);
    }

    cli(&a, &["keys", "revoke", "--app", "billing-app", &key_id]);
    let on_a = flags(&a, "acme", &secret, None).await;
    assert_eq!((on_a.status, error_code(&on_a)), (401, "unauthorized"), "the next request on the revoking replica");
    let took = within(Duration::from_secs(1), "revocation on the other replica", || async {
        flags(&b, "acme", &secret, None).await.status == 401
    })
    .await;
    eprintln!("revocation reached the second replica in {took:?}");
    denied(&db, "revoked API key", 2).await;

    let listed = cli(&a, &["keys", "list", "--app", "billing-app"]);
    let key = listed["keys"].as_array().and_then(|k| k.iter().find(|k| k["id"] == key_id.as_str())).expect("listed");
    assert!(key["revokedAt"].is_string());
    assert!(key.get("secret").is_none(), "a list never shows a secret");
    let stored = db.count(&format!("SELECT count(*) FROM audit_log WHERE metadata::text LIKE '%{secret}%'")).await;
    assert_eq!(stored, 0, "the secret is in no audit row");
}

/// FR-FLAG-002: a flag changed in Git and applied is served by every replica within a second with
/// a new ETag; an unchanged tenant still answers 304 to its old ETag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flag_changed_in_git_reaches_every_replica_with_a_new_etag_and_an_unchanged_one_answers_304() {
    let (db, repo) = (TestDb::new().await, Repo::example());
    let a = started(&repo, &db, &[]).await;
    let b = started(&repo, &db, &[]).await;
    let (_, secret) = issue(&a, "billing-app", &[]);
    within(Duration::from_secs(2), "key known on b", || async { flags(&b, "acme", &secret, None).await.status == 200 })
        .await;

    let first = flags(&a, "acme", &secret, None).await;
    let etag = first.header("etag").expect("ETag").to_owned();
    assert_eq!(first.header("cache-control"), Some("private, no-cache"));
    let globex = flags(&a, "globex", &secret, None).await.header("etag").expect("ETag").to_owned();
    for replica in [&a, &b] {
        let again = flags(replica, "acme", &secret, Some(&etag)).await;
        assert_eq!(again.status, 304, "same flags on every replica, same ETag");
        assert_eq!(again.header("etag"), Some(etag.as_str()));
    }

    repo.edit("tenants/acme.yaml", "max_projects: 1000", "max_projects: 2000");
    within(Duration::from_secs(20), "the change is applied", || async {
        db.count("SELECT count(*) FROM tenant_flags WHERE key = 'max_projects' AND value = '2000'::jsonb").await == 1
    })
    .await;
    let took = within(Duration::from_secs(1), "every replica serves the new value", || async {
        let mut all = true;
        for replica in [&a, &b] {
            let response = flags(replica, "acme", &secret, Some(&etag)).await;
            all &= response.status == 200 && response.body["flags"]["max_projects"]["value"] == 2000;
        }
        all
    })
    .await;
    eprintln!("flag change served by both replicas {took:?} after it was applied");
    let changed = flags(&b, "acme", &secret, None).await;
    assert_ne!(changed.header("etag"), Some(etag.as_str()));
    assert_eq!(flags(&b, "globex", &secret, Some(&globex)).await.status, 304, "an unchanged tenant keeps its ETag");
}

/// FR-FLAG-002 through OpenFeature: the Python SDK's OFREP provider resolves every flag type and
/// reports FLAG_NOT_FOUND and a context without a tenant the way OpenFeature defines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_openfeature_ofrep_provider_resolves_boolean_string_number_and_object_flags() {
    let (db, repo) = (TestDb::new().await, Repo::example());
    let server = started(&repo, &db, &[]).await;
    let (_, secret) = issue(&server, "analytics-app", &[]);
    let script = crate::helpers::project_dir().join("tests/support/ofrep_client.py");
    let output = std::process::Command::new("python3")
        .arg(&script)
        .args([server.base.as_str(), secret.as_str(), "acme"])
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "the OFREP client failed (pip install openfeature-sdk openfeature-provider-ofrep): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(result["boolean"]["value"], true);
    assert_eq!(result["boolean"]["reason"], "STATIC");
    assert_eq!(result["boolean"]["variant"], "plan");
    assert_eq!(result["string"]["value"], "premium");
    assert_eq!(result["integer"]["value"], 1000);
    assert_eq!(result["integer"]["reason"], "TARGETING_MATCH");
    assert_eq!(result["float"]["value"], 1000.0);
    assert_eq!(result["object"]["value"]["theme"], "dark");
    assert_eq!(result["missing"]["error"], "FLAG_NOT_FOUND");
    assert_eq!(result["missing"]["value"], false, "the caller's default");
    assert_eq!(result["no_tenant"]["error"], "INVALID_CONTEXT");
}

/// OFREP bulk evaluation: ETag and 304, the event-stream hint, and the 400s the protocol defines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ofrep_bulk_evaluation_has_an_etag_an_event_stream_hint_and_protocol_errors() {
    let (db, repo) = (TestDb::new().await, Repo::example());
    let server = started(&repo, &db, &[]).await;
    let (_, secret) = issue(&server, "billing-app", &[]);
    let context = r#"{"context":{"targetingKey":"u1","tenant":"globex"}}"#;
    let bulk = ofrep(&server, "", &secret, context).await;
    assert_eq!(bulk.status, 200);
    let flags = bulk.body["flags"].as_array().expect("flags");
    assert!(flags.iter().all(|f| f["key"].is_string() && f["reason"].is_string() && f.get("value").is_some()));
    let stream = &bulk.body["eventStreams"][0];
    assert_eq!(stream["type"], "sse");
    assert_eq!(stream["url"], format!("{}/v1/tenants/globex/flags/events", server.base));
    let etag = bulk.header("etag").expect("ETag").to_owned();
    let url = format!("{}/ofrep/v1/evaluate/flags", server.base);
    let headers = vec![("x-api-key", secret.clone()), ("if-none-match", etag.clone())];
    assert_eq!(request("POST", url, headers, context.into()).await.status, 304);

    let no_tenant = ofrep(&server, "", &secret, r#"{"context":{"targetingKey":"u1"}}"#).await;
    assert_eq!((no_tenant.status, no_tenant.body["errorCode"].as_str()), (400, Some("INVALID_CONTEXT")));
    let garbled = ofrep(&server, "/max_projects", &secret, "{\"context\":").await;
    assert_eq!((garbled.status, garbled.body["errorCode"].as_str()), (400, Some("PARSE_ERROR")));
    assert_eq!(garbled.body["key"], "max_projects");
    let missing = ofrep(&server, "/nope", &secret, context).await;
    assert_eq!((missing.status, missing.body["errorCode"].as_str()), (404, Some("FLAG_NOT_FOUND")));
    let unauthenticated = ofrep(&server, "", "gatehouse_nope", context).await;
    assert_eq!(unauthenticated.status, 401);
}

/// SC-002, FR-SYS-003: a wrong scope, an expired key, a disabled application and a suspended
/// tenant each get their documented status and error code, and an audit row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_scope_expired_key_disabled_application_and_suspended_tenant_are_refused_and_audited() {
    let (db, repo) = (TestDb::new().await, Repo::example());
    let server = started(&repo, &db, &[]).await;

    let (_, usage_only) = issue(&server, "billing-app", &["--scope", "usage:write"]);
    let response = flags(&server, "acme", &usage_only, None).await;
    assert_eq!((response.status, error_code(&response)), (403, "insufficient_scope"));
    assert!(response.body["error"]["message"].as_str().unwrap_or("").contains("flags:read"));
    assert_eq!(denied(&db, "insufficient scope", 1).await, 1);

    let (expiring_id, expiring) = issue(&server, "billing-app", &[]);
    db.execute(&format!("UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE key_id = '{expiring_id}'"))
        .await;
    within(Duration::from_secs(2), "expiry seen", || async {
        flags(&server, "acme", &expiring, None).await.status == 401
    })
    .await;
    denied(&db, "expired API key", 1).await;

    let (_, good) = issue(&server, "billing-app", &[]);
    assert_eq!(flags(&server, "acme", &good, None).await.status, 200);
    repo.edit("tenants/acme.yaml", "plan: enterprise", "plan: enterprise\n  status: suspended");
    within(Duration::from_secs(20), "suspension applied and seen", || async {
        error_code(&flags(&server, "acme", &good, None).await) == "tenant_suspended"
    })
    .await;
    let suspended = flags(&server, "acme", &good, None).await;
    assert_eq!(suspended.status, 403);
    denied(&db, "tenant suspended", 1).await;
    let tenant = db.text("SELECT tenant FROM audit_log WHERE metadata->>'reason' = 'tenant suspended' LIMIT 1").await;
    assert_eq!(tenant, "acme");

    repo.edit("applications/billing-app.yaml", "status: active", "status: disabled");
    within(Duration::from_secs(20), "the disabled application is refused", || async {
        error_code(&flags(&server, "globex", &good, None).await) == "application_disabled"
    })
    .await;
    assert_eq!(flags(&server, "globex", &good, None).await.status, 403);
    denied(&db, "application disabled", 1).await;
}

/// No enumeration: a tenant that does not exist and one not open to the key's application get the
/// same answer; a missing or malformed key is a 401 with the standard body; all are audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_tenants_and_unopened_tenants_look_alike_and_bad_keys_get_401() {
    let (db, repo) = (TestDb::new().await, Repo::example());
    let server = started(&repo, &db, &[]).await;
    let (_, secret) = issue(&server, "billing-app", &[]);
    let closed = flags(&server, "hooli", &secret, None).await;
    let unknown = flags(&server, "no-such-tenant", &secret, None).await;
    assert_eq!((closed.status, error_code(&closed)), (403, "forbidden"));
    assert_eq!((unknown.status, error_code(&unknown)), (403, "forbidden"));
    assert_eq!(denied(&db, "tenant not open to the application", 2).await, 2);

    let missing = request("GET", format!("{}/v1/tenants/acme/flags", server.base), vec![], vec![]).await;
    assert_eq!((missing.status, error_code(&missing)), (401, "unauthorized"));
    let mut typo = secret.clone().into_bytes();
    let last = typo.len() - 1;
    typo[last] = if typo[last] == b'a' { b'b' } else { b'a' };
    let typo = String::from_utf8(typo).expect("ascii");
    assert_eq!(flags(&server, "acme", &typo, None).await.status, 401);
    assert_eq!(denied(&db, "no credential presented", 1).await, 1);
    assert_eq!(denied(&db, "unknown API key", 1).await, 1);
}

/// FR-SYS-002: rotation issues a new key and keeps the old one for the grace period; with no grace
/// the old key is refused at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_keeps_the_old_key_for_its_grace_period_only() {
    let (db, repo) = (TestDb::new().await, Repo::example());
    let server = started(&repo, &db, &[]).await;
    let (old_id, old) = issue(&server, "billing-app", &["--scope", "flags:read", "--name", "web"]);
    let rotated = cli(&server, &["keys", "rotate", "--app", "billing-app", &old_id, "--grace-period", "1h"]);
    let new = rotated["key"]["secret"].as_str().expect("new secret").to_owned();
    assert_eq!(rotated["key"]["scopes"], serde_json::json!(["flags:read"]), "the new key keeps the scopes");
    assert_eq!(rotated["key"]["name"], "web");
    assert_eq!(rotated["key"]["rotatedFrom"], old_id.as_str());
    assert_eq!(flags(&server, "acme", &old, None).await.status, 200, "the old key works during the grace period");
    assert_eq!(flags(&server, "acme", &new, None).await.status, 200);

    let new_id = rotated["key"]["id"].as_str().expect("id").to_owned();
    let again = cli(&server, &["keys", "rotate", "--app", "billing-app", &new_id, "--grace-period", "0s"]);
    let newest = again["key"]["secret"].as_str().expect("secret").to_owned();
    assert_eq!(flags(&server, "acme", &new, None).await.status, 401, "no grace: refused at once");
    assert_eq!(flags(&server, "acme", &newest, None).await.status, 200);
    assert_eq!(db.count("SELECT count(*) FROM audit_log WHERE action = 'api_key.rotate'").await, 2);
}

/// FR-SYS-001/003: applications registered through the API get an id, can be updated and disabled
/// (their keys refused at once); one declared in Git is changed in Git only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_registered_applications_are_updated_and_disabled_and_git_ones_are_left_to_git() {
    let (db, repo) = (TestDb::new().await, Repo::example());
    let server = started(&repo, &db, &[]).await;
    let created = cli(
        &server,
        &[
            "apps",
            "create",
            "reports",
            "--display-name",
            "Reports",
            "--owner",
            "Ops@Corp.example",
            "--scope",
            "flags:read",
        ],
    );
    assert!(created["id"].as_str().is_some_and(|id| id.len() == 36), "{created}");
    assert_eq!(created["managedBy"], "api");
    assert_eq!(created["owner"], "ops@corp.example");
    let updated = cli(&server, &["apps", "update", "reports", "--scope", "flags:read,usage:write"]);
    assert_eq!(updated["scopes"], serde_json::json!(["flags:read", "usage:write"]));
    assert_eq!(updated["id"], created["id"], "the id is stable");

    // No tenant in Git lists `reports`, so its keys read no tenant: `forbidden`. Disabling the
    // application is checked first, and refuses its keys at once.
    let (_, secret) = issue(&server, "reports", &[]);
    assert_eq!(error_code(&flags(&server, "acme", &secret, None).await), "forbidden");
    cli(&server, &["apps", "disable", "reports"]);
    let refused = flags(&server, "acme", &secret, None).await;
    assert_eq!((refused.status, error_code(&refused)), (403, "application_disabled"), "refused at once");
    cli(&server, &["apps", "enable", "reports"]);
    assert_eq!(error_code(&flags(&server, "acme", &secret, None).await), "forbidden");

    let output = gatehouse(
        &["apps", "disable", "billing-app"],
        &[("GATEHOUSE_SERVER", server.base.as_str()), ("GATEHOUSE_OPERATOR_TOKEN", OPERATOR)],
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("409") && stderr(&output).contains("applications/billing-app.yaml"),
        "{}",
        stderr(&output)
    );
    let duplicate = gatehouse(
        &["apps", "create", "reports", "--display-name", "x", "--owner", "a@b.example"],
        &[("GATEHOUSE_SERVER", server.base.as_str()), ("GATEHOUSE_OPERATOR_TOKEN", OPERATOR)],
    );
    assert!(stderr(&duplicate).contains("409"), "{}", stderr(&duplicate));
    let bad_scope = gatehouse(
        &["keys", "create", "--app", "reports", "--scope", "audit:write"],
        &[("GATEHOUSE_SERVER", server.base.as_str()), ("GATEHOUSE_OPERATOR_TOKEN", OPERATOR)],
    );
    assert!(stderr(&bad_scope).contains("may not use the audit:write scope"), "{}", stderr(&bad_scope));
    assert_eq!(
        db.count("SELECT count(*) FROM audit_log WHERE action LIKE 'application.%' AND actor_type = 'operator'").await,
        4
    );
    assert_eq!(db.count("SELECT count(*) FROM audit_log WHERE action = 'api_key.create'").await, 1);
}

/// OFREP 429: over a key's rate limit, requests get 429 with `Retry-After`, and the OpenFeature
/// provider honours it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_rate_limit_a_key_gets_429_with_retry_after() {
    let (db, repo) = (TestDb::new().await, Repo::example());
    let server = started(&repo, &db, &[("GATEHOUSE_KEY_RATE_LIMIT", "1")]).await;
    let (_, secret) = issue(&server, "billing-app", &[]);
    let context = r#"{"context":{"tenant":"acme"}}"#;
    // One request a second: of ten sent at once, only the first fits (a slow machine may let one
    // more through), the rest are over the limit.
    let burst = futures_util::future::join_all((0..10).map(|_| ofrep(&server, "", &secret, context))).await;
    let allowed = burst.iter().filter(|r| r.status == 200).count();
    let limited: Vec<&HttpResponse> = burst.iter().filter(|r| r.status == 429).collect();
    assert!((1..=2).contains(&allowed) && allowed + limited.len() == 10, "{allowed} allowed");
    assert_eq!(error_code(limited[0]), "too_many_requests");
    assert_eq!(limited[0].header("retry-after"), Some("1"));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(ofrep(&server, "", &secret, context).await.status, 200, "allowed again after Retry-After");
}

/// The event stream announces a change of the tenant's flags with the new ETag (OFREP
/// `refetchEvaluation`), and ends as soon as the key is revoked: no flag change is needed to notice
/// (issue 11.8; it used to stay open on keep-alives until an unrelated change).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_announces_flag_changes_and_ends_as_soon_as_the_key_is_revoked() {
    let (db, repo) = (TestDb::new().await, Repo::example());
    let server = started(&repo, &db, &[]).await;
    let (key_id, secret) = issue(&server, "billing-app", &[]);
    let (sender, events) = std::sync::mpsc::channel::<Option<Value>>();
    let url = format!("{}/v1/tenants/acme/flags/events", server.base);
    let reader_secret = secret.clone();
    std::thread::spawn(move || {
        let response = ureq::get(&url)
            .set("authorization", &format!("Bearer {reader_secret}"))
            .timeout(Duration::from_secs(60))
            .call()
            .expect("stream opens");
        assert_eq!(response.content_type(), "text/event-stream");
        for line in std::io::BufReader::new(response.into_reader()).lines() {
            let Ok(line) = line else { break };
            if let Some(data) = line.strip_prefix("data: ") {
                let _ = sender.send(serde_json::from_str(data).ok());
            }
        }
        let _ = sender.send(None);
    });
    let first = events.recv_timeout(Duration::from_secs(5)).expect("first event").expect("JSON event");
    assert_eq!(first["type"], "refetchEvaluation");
    let before = flags(&server, "acme", &secret, None).await;
    assert_eq!(first["version"].as_str().map(|v| format!("\"{v}\"")).as_deref(), before.header("etag"));

    repo.edit("tenants/acme.yaml", "max_projects: 1000", "max_projects: 1234");
    let changed = tokio::task::spawn_blocking(move || {
        let event = events.recv_timeout(Duration::from_secs(20)).expect("change event");
        (event, events)
    });
    let (event, events) = changed.await.expect("reader");
    let event = event.expect("JSON event");
    assert_eq!(event["type"], "refetchEvaluation");
    assert_ne!(event["version"], first["version"]);
    assert_eq!(flags(&server, "acme", &secret, None).await.body["flags"]["max_projects"]["value"], 1234);

    cli(&server, &["keys", "revoke", "--app", "billing-app", &key_id]);
    // Keep-alives come every 15 s; a bound well below that proves the revocation itself ended it.
    let end = tokio::task::spawn_blocking(move || events.recv_timeout(Duration::from_secs(5)));
    assert_eq!(end.await.expect("reader").expect("the stream ends within 5 s"), None, "no event for a revoked key");
}

/// `last_used_at` is written in batches by each replica, not per request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_use_is_recorded_without_a_write_per_request() {
    let (db, repo) = (TestDb::new().await, Repo::example());
    let server = started(&repo, &db, &[("GATEHOUSE_KEY_USE_FLUSH_INTERVAL", "200ms")]).await;
    let (key_id, secret) = issue(&server, "billing-app", &[]);
    let unused =
        db.count(&format!("SELECT count(*) FROM api_keys WHERE key_id = '{key_id}' AND last_used_at IS NULL")).await;
    assert_eq!(unused, 1);
    for _ in 0..20 {
        assert_eq!(flags(&server, "acme", &secret, None).await.status, 200);
    }
    within(Duration::from_secs(5), "last use recorded", || async {
        db.count(&format!(
            "SELECT count(*) FROM api_keys WHERE key_id = '{key_id}' AND last_used_at > now() - interval '1 minute'"
        ))
        .await
            == 1
    })
    .await;
    let listed = cli(&server, &["keys", "list", "--app", "billing-app"]);
    assert!(listed["keys"][0]["lastUsedAt"].is_string(), "{listed}");
}

/// Opens the event stream of `tenant` with `secret` on a thread; events arrive on the receiver as
/// JSON, and `None` when the stream ends.
fn open_stream(server: &Served, tenant: &str, secret: &str) -> std::sync::mpsc::Receiver<Option<Value>> {
    let (sender, events) = std::sync::mpsc::channel::<Option<Value>>();
    let url = format!("{}/v1/tenants/{tenant}/flags/events", server.base);
    let secret = secret.to_owned();
    std::thread::spawn(move || {
        let response = ureq::get(&url)
            .set("authorization", &format!("Bearer {secret}"))
            .timeout(Duration::from_secs(60))
            .call()
            .expect("stream opens");
        for line in std::io::BufReader::new(response.into_reader()).lines() {
            let Ok(line) = line else { break };
            if let Some(data) = line.strip_prefix("data: ") {
                let _ = sender.send(serde_json::from_str(data).ok());
            }
        }
        let _ = sender.send(None);
    });
    events
}

/// Review of issue 11.8: a rotation shortens the old key's life to its grace period, and the old
/// key's open stream ends when that period is over, not at the next unrelated flag change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_keys_event_stream_ends_when_its_rotation_grace_period_is_over() {
    let (db, repo) = (TestDb::new().await, Repo::example());
    let server = started(&repo, &db, &[]).await;
    let (key_id, secret) = issue(&server, "billing-app", &[]);
    let events = open_stream(&server, "acme", &secret);
    let first = events.recv_timeout(Duration::from_secs(5)).expect("first event").expect("JSON event");
    assert_eq!(first["type"], "refetchEvaluation");
    cli(&server, &["keys", "rotate", "--app", "billing-app", &key_id, "--grace-period", "2s"]);
    let end = tokio::task::spawn_blocking(move || events.recv_timeout(Duration::from_secs(8)));
    assert_eq!(
        end.await.expect("reader").expect("the stream ends within 8 s"),
        None,
        "no event after the grace period"
    );
}
