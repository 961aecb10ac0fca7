//! The audit log over HTTP (issue 13.1, 13.3; FR-LOG-001, FR-LOG-002, API-LOG, UC-AUDIT-EXPORT)
//! against the real binary: applications report events into the one log, an auditor signed in at
//! the identity provider exports them as CSV that Python's csv module reads, and every read is
//! itself audited.

use std::time::Duration;

use serde_json::{Value, json};

use crate::access::issue;
use crate::helpers::{HttpResponse, OPERATOR, Repo, Served, TestDb, activate, call, request, within};
use crate::identity::{login, started, str_of};
use crate::operators::{Idp, cli, json_out, person};

fn event(id: &str, tenant: &str, actor: &str, outcome: &str) -> Value {
    json!({ "id": id, "tenant": tenant, "timestamp": chrono::Utc::now().to_rfc3339(), "actor": actor,
            "type": "document.delete", "resource": format!("doc/{id}"), "outcome": outcome, "ip": "203.0.113.7",
            "metadata": { "title": "=HYPERLINK(\"http://evil\")" } })
}

async fn report(server: &Served, key: &str, body: &Value) -> HttpResponse {
    call(server, "POST", "/v1/audit/events", Some(key), Some(body.clone())).await
}

fn code(response: &HttpResponse) -> &str {
    response.body["error"]["code"].as_str().unwrap_or("")
}

/// Runs tests/support/csv_rows.py: the export as Python's csv module reads it.
pub(crate) fn csv_rows(url: &str, bearer: &str) -> Value {
    let script = crate::helpers::project_dir().join("tests/support/csv_rows.py");
    let output = std::process::Command::new("python3").arg(&script).args([url, bearer]).output().expect("python3 runs");
    assert!(output.status.success(), "csv_rows.py: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("JSON")
}

/// FR-LOG-001, API-LOG, UC-AUDIT-EXPORT: an application reports one event and a batch with a bad
/// event among good ones (the good ones are stored, the bad one named by index; a retry is a
/// duplicate); an auditor exports the tenant's failures as CSV with the right columns and formulas
/// neutralised; the export and the reads are audited under the auditor's name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applications_report_audit_events_and_an_auditor_exports_them_as_csv() {
    let (db, repo) = (TestDb::new().await, Repo::example());
    let idp = Idp::start();
    let env = [
        ("GATEHOUSE_OIDC_ISSUER_URL", idp.issuer.as_str()),
        ("GATEHOUSE_OIDC_AUDIENCE", "gatehouse"),
        ("GATEHOUSE_OIDC_USERNAME_CLAIM", "email"),
        ("GATEHOUSE_OIDC_GROUP_BINDINGS", "platform-audit=auditor"),
    ];
    let server = started(&repo, &db, &env).await;
    let (_, key) = issue(&server, "billing-app", &[]);

    let single = report(&server, &key, &event("e-1", "acme", "user-42", "success")).await;
    assert_eq!(single.status, 200, "{}", single.text);
    assert_eq!(single.body, json!({ "accepted": 1, "duplicates": 0, "rejected": [] }));
    let mut bad = event("e-bad", "acme", "user-42", "failure");
    bad["ip"] = json!("not an address");
    let batch = json!([
        event("e-2", "acme", "user-42", "failure"),
        bad,
        event("e-3", "acme", "user-7", "failure"),
        event("e-1", "acme", "user-42", "success"),
        event("e-4", "hooli", "user-9", "failure"),
    ]);
    let answered = report(&server, &key, &batch).await;
    assert_eq!(answered.status, 200, "{}", answered.text);
    assert_eq!((answered.body["accepted"].as_i64(), answered.body["duplicates"].as_i64()), (Some(2), Some(1)));
    let rejected: Vec<(u64, &str)> = answered.body["rejected"]
        .as_array()
        .expect("rejected")
        .iter()
        .map(|r| (r["index"].as_u64().expect("index"), r["code"].as_str().expect("code")))
        .collect();
    assert_eq!(rejected, [(1, "invalid_event"), (4, "forbidden")], "{}", answered.text);
    assert!(answered.text.contains("not an IPv4 or IPv6 address"), "{}", answered.text);
    assert!(answered.text.contains("tenant `hooli` is not open to application `billing-app`"), "{}", answered.text);
    let stored = "SELECT count(*) FROM audit_log WHERE application = 'billing-app' AND actor_type = 'external'";
    assert_eq!(db.count(stored).await, 3, "e-1, e-2, e-3 once each");

    // An auditor exports acme's failures.
    let auditor = idp.token("eve", person("eve@ops.example", json!(["platform-audit"]))).await;
    let url = format!("{}/v1/audit/export?tenant=acme&outcome=failure&resourcePrefix=doc/", server.base);
    let csv = csv_rows(&url, &auditor);
    assert!(csv["contentType"].as_str().expect("type").starts_with("text/csv"), "{csv}");
    let columns = [
        "time",
        "id",
        "tenant",
        "actor",
        "actor_type",
        "action",
        "resource",
        "outcome",
        "ip",
        "application",
        "event_id",
        "metadata",
        "chain",
        "seq",
        "hash",
    ];
    assert_eq!(csv["columns"], json!(columns));
    let rows = csv["rows"].as_array().expect("rows");
    let ids: Vec<&str> = rows.iter().map(|r| r["event_id"].as_str().expect("event_id")).collect();
    assert_eq!(ids, ["e-2", "e-3"], "acme's failures in time order");
    for row in rows {
        assert_eq!((row["tenant"].as_str(), row["outcome"].as_str()), (Some("acme"), Some("failure")));
        assert_eq!((row["ip"].as_str(), row["application"].as_str()), (Some("203.0.113.7"), Some("billing-app")));
        assert_eq!(row["actor_type"], "external");
        assert!(row["seq"].as_str().is_some_and(|s| s.parse::<i64>().is_ok()), "{row}");
        assert_eq!(row["hash"].as_str().map(str::len), Some(64), "{row}");
        let metadata: Value = serde_json::from_str(row["metadata"].as_str().expect("metadata")).expect("JSON");
        assert_eq!(metadata["title"], "=HYPERLINK(\"http://evil\")", "JSON starts with {{, stored as sent");
    }
    // Where a cell itself starts with a formula character, it is neutralised.
    let formula = json!({ "id": "e-5", "tenant": "acme", "timestamp": chrono::Utc::now().to_rfc3339(),
        "actor": "=cmd|' /C calc'!A0", "type": "login", "resource": "session/1", "outcome": "failure", "ip": "::1" });
    assert_eq!(report(&server, &key, &formula).await.status, 200);
    let url = format!("{}/v1/audit/export?tenant=acme&action=login", server.base);
    let csv = csv_rows(&url, &auditor);
    assert_eq!(csv["rows"][0]["actor"], "'=cmd|' /C calc'!A0", "{csv}");

    within(Duration::from_secs(5), "the exports are audited", || async {
        db.count("SELECT count(*) FROM audit_log WHERE action = 'audit.export' AND actor = 'eve@ops.example' AND actor_type = 'auditor' AND tenant = 'acme' AND metadata->>'outcome' = 'failure'").await == 1
    })
    .await;

    // JSON pages in time order, and the read audited too.
    let first = call(&server, "GET", "/v1/audit/events?tenant=acme&limit=2", Some(&auditor), None).await;
    assert_eq!(first.status, 200, "{}", first.text);
    let next = str_of(&first.body, "next").to_owned();
    let rest =
        call(&server, "GET", &format!("/v1/audit/events?tenant=acme&limit=1000&after={next}"), Some(&auditor), None)
            .await;
    // As instants: RFC 3339 text does not sort as time (`…20.500Z` is written without trailing zeros).
    let times: Vec<chrono::DateTime<chrono::Utc>> = [&first, &rest]
        .iter()
        .flat_map(|r| {
            r.body["events"].as_array().expect("events").iter().map(|e| {
                e["time"].as_str().expect("t").parse::<chrono::DateTime<chrono::Utc>>().expect("an RFC 3339 time")
            })
        })
        .collect();
    let mut sorted = times.clone();
    sorted.sort();
    assert_eq!(times, sorted, "time order across pages");
    assert!(
        db.count("SELECT count(*) FROM audit_log WHERE action = 'audit.read' AND actor = 'eve@ops.example'").await >= 2
    );
}

/// A tenant's owners read their own tenant's log and no other; admins and keys read none; a key
/// without `audit:write` reports nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owners_read_only_their_own_tenants_log() {
    let (db, repo) = (TestDb::new().await, Repo::example());
    let server = started(&repo, &db, &[("GATEHOUSE_OWNERS_NEED_MFA", "false")]).await;
    activate(&db, &["alice@acme.example", "carol@acme.example", "jack@globex.example"]).await;
    let (_, key) = issue(&server, "billing-app", &[]);
    assert_eq!(report(&server, &key, &event("o-1", "acme", "u", "success")).await.status, 200);
    // A user of globex knocks on acme's door: the refusal is acme's row, but acme's owner is not
    // told who at globex it was (issue 25.13); the operator is.
    let jack = login(&server, "jack@globex.example", crate::helpers::PASSWORD).await;
    let jack = str_of(&jack.body, "access_token").to_owned();
    assert_eq!(call(&server, "GET", "/v1/tenants/acme/users", Some(&jack), None).await.status, 403);
    within(Duration::from_secs(5), "the refusal is audited", || async {
        db.count("SELECT count(*) FROM audit_log WHERE action = 'api.denied' AND tenant = 'acme'").await >= 1
    })
    .await;
    assert_eq!(report(&server, &key, &event("o-2", "globex", "u", "success")).await.status, 200);

    let owner = login(&server, "alice@acme.example", crate::helpers::PASSWORD).await;
    let owner = str_of(&owner.body, "access_token").to_owned();
    let own = call(&server, "GET", "/v1/audit/events?limit=1000", Some(&owner), None).await;
    assert_eq!(own.status, 200, "{}", own.text);
    let events = own.body["events"].as_array().expect("events");
    assert!(events.iter().any(|e| e["eventId"] == "o-1"), "{}", own.text);
    assert!(events.iter().all(|e| e["tenant"] == "acme"), "only acme's rows: {}", own.text);
    let knock = events.iter().find(|e| e["action"] == "api.denied").expect("the refusal");
    assert_eq!(knock["actor"], "a user of another tenant", "{knock}");
    assert!(!own.text.contains("jack") && !own.text.contains("globex"), "{}", own.text);
    let csv = call(&server, "GET", "/v1/audit/export", Some(&owner), None).await;
    assert!(csv.text.contains("a user of another tenant") && !csv.text.contains("jack"), "{}", csv.text);
    // Asking for that principal by name tells nothing either.
    let named = call(&server, "GET", "/v1/audit/events?actor=jack@globex.example", Some(&owner), None).await;
    assert_eq!((named.status, named.body["events"].clone()), (200, json!([])), "{}", named.text);
    let seen = call(&server, "GET", "/v1/audit/events?tenant=acme&action=api.denied", Some(OPERATOR), None).await;
    assert_eq!(seen.body["events"][0]["actor"], "jack@globex.example", "{}", seen.text);
    let other = call(&server, "GET", "/v1/audit/events?tenant=globex", Some(&owner), None).await;
    assert_eq!((other.status, code(&other)), (403, "forbidden"), "{}", other.text);

    let admin = login(&server, "carol@acme.example", crate::helpers::PASSWORD).await;
    let admin = str_of(&admin.body, "access_token").to_owned();
    let refused = call(&server, "GET", "/v1/audit/export", Some(&admin), None).await;
    assert_eq!((refused.status, code(&refused)), (403, "forbidden"), "{}", refused.text);
    let everything = call(&server, "GET", "/v1/audit/events", Some(OPERATOR), None).await;
    assert!(everything.body["events"].as_array().expect("events").iter().any(|e| e["eventId"] == "o-2"));

    let (_, flags_only) = issue(&server, "billing-app", &["--scope", "flags:read"]);
    let no_scope = report(&server, &flags_only, &event("o-3", "acme", "u", "success")).await;
    assert_eq!((no_scope.status, code(&no_scope)), (403, "insufficient_scope"), "{}", no_scope.text);
    // The CLI: CSV on standard output, and every page as JSON.
    let csv = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["audit", "export", "--tenant", "globex", "--resource-prefix", "doc/"])
        .env("GATEHOUSE_SERVER", &server.base)
        .env("GATEHOUSE_TOKEN", OPERATOR)
        .output()
        .expect("gatehouse runs");
    assert!(csv.status.success(), "{}", String::from_utf8_lossy(&csv.stderr));
    let text = String::from_utf8(csv.stdout).expect("utf-8");
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("time,id,tenant,actor,actor_type,action,resource,outcome,ip"), "{text}");
    assert_eq!(lines.len(), 2, "the header and o-2: {text}");
    assert!(
        lines[1].contains(",globex,u,external,document.delete,doc/o-2,success,203.0.113.7,billing-app,o-2,"),
        "{text}"
    );
    let json = json_out(&cli(&server, OPERATOR, &["audit", "export", "--actor", "u"]), "audit export --format json");
    let ids: Vec<&str> =
        json["events"].as_array().expect("events").iter().filter_map(|e| e["eventId"].as_str()).collect();
    assert_eq!(ids.len(), 2, "{json}");

    let bad_cursor = call(&server, "GET", "/v1/audit/events?after=yesterday", Some(OPERATOR), None).await;
    assert_eq!(bad_cursor.status, 400, "{}", bad_cursor.text);
    let raw = request(
        "POST",
        format!("{}/v1/audit/events", server.base),
        vec![("authorization", format!("Bearer {key}"))],
        b"[".to_vec(),
    )
    .await;
    assert_eq!(raw.status, 400, "{}", raw.text);
}

/// Runs `gatehouse audit verify --format json` against `db`; returns its exit code and report.
fn verify(db: &TestDb, public_key: &str, dir: &std::path::Path) -> (i32, Value) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["audit", "verify", "--format", "json", "--public-key", public_key, "--checkpoint-dir"])
        .arg(dir)
        .env("DATABASE_URL", &db.url)
        .output()
        .expect("gatehouse runs");
    let report = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("verify printed no JSON ({e}): {}", String::from_utf8_lossy(&output.stderr)));
    (output.status.code().unwrap_or(-1), report)
}

/// Changes the log as a superuser would, with the triggers off.
async fn tamper(db: &TestDb, sql: &str) {
    let mut tx = db.pool.begin().await.expect("transaction");
    sqlx::query("SET LOCAL session_replication_role = replica").execute(&mut *tx).await.expect("replica role");
    sqlx::raw_sql(sql).execute(&mut *tx).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    tx.commit().await.expect("committed");
}

fn findings(report: &Value) -> Vec<String> {
    report["findings"].as_array().expect("findings").iter().map(|f| f.as_str().expect("text").to_owned()).collect()
}

/// A signing key: (the seed serve takes, the public key verify takes).
fn keygen() -> (String, String) {
    let keygen =
        std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse")).args(["audit", "keygen"]).output().expect("keygen");
    let text = String::from_utf8(keygen.stdout).expect("utf-8");
    let seed = text.lines().find_map(|l| l.strip_prefix("GATEHOUSE_AUDIT_SIGNING_KEY=")).expect("a key").to_owned();
    let public = text
        .lines()
        .find_map(|l| l.split(": ").nth(1).filter(|_| l.starts_with("public key")))
        .expect("public")
        .to_owned();
    (seed, public)
}

/// A log written by serve with a signing key: 40 reported events (`c-0`…`c-39`, acme and globex)
/// and a refusal, all signed by a checkpoint copied to the returned directory; serve has stopped.
/// Returns the database, the public key and the directory.
async fn signed_log() -> (TestDb, String, tempfile::TempDir) {
    let (seed, public) = keygen();
    let dir = tempfile::tempdir().expect("dir");
    let dir_text = dir.path().to_string_lossy().into_owned();
    let (db, repo) = (TestDb::new().await, Repo::example());
    let env = [
        ("GATEHOUSE_AUDIT_SIGNING_KEY", seed.as_str()),
        ("GATEHOUSE_AUDIT_CHECKPOINT_INTERVAL", "1s"),
        ("GATEHOUSE_AUDIT_CHECKPOINT_DIR", dir_text.as_str()),
    ];
    let server = started(&repo, &db, &env).await;
    let (_, key) = issue(&server, "billing-app", &[]);
    // Both tenants open to the key on this replica (its cache may trail the first pass briefly).
    within(Duration::from_secs(10), "globex open to billing-app", || async {
        report(&server, &key, &event("probe", "globex", "user-1", "success")).await.body["accepted"] == 1
    })
    .await;
    let batch: Vec<Value> = (0..40)
        .map(|i| event(&format!("c-{i}"), if i % 2 == 0 { "acme" } else { "globex" }, "user-1", "success"))
        .collect();
    assert_eq!(report(&server, &key, &Value::Array(batch)).await.body["accepted"], 40);
    let refused = call(&server, "GET", "/v1/apps", Some("not-a-token"), None).await;
    assert_eq!(refused.status, 401);
    // A checkpoint that signed every row written so far (the refusal's row is written off the
    // request path).
    within(Duration::from_secs(5), "the refusal is audited", || async {
        db.count("SELECT count(*) FROM audit_log WHERE action = 'api.denied'").await >= 1
    })
    .await;
    let written = db.count("SELECT count(*) FROM audit_log").await;
    let since: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT now()").fetch_one(&db.pool).await.expect("now");
    within(Duration::from_secs(10), "a checkpoint after the last row", || async {
        let newest: Option<chrono::DateTime<chrono::Utc>> =
            sqlx::query_scalar("SELECT max(created_at) FROM audit_checkpoints").fetch_one(&db.pool).await.expect("max");
        newest.is_some_and(|n| n > since)
    })
    .await;
    assert_eq!(db.count("SELECT count(*) FROM audit_log").await, written, "no row after the checkpoint");
    drop(server);

    (db, public, dir)
}

/// Issue 13.2: the log's hash chains and signed checkpoints. `audit verify` passes on a clean log
/// and names the row after each kind of tampering done by hand in SQL with the triggers disabled:
/// an edited row, a deleted one, one inserted, two reordered, and a deleted checkpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_passes_on_a_clean_log_and_names_every_edited_deleted_inserted_or_reordered_row() {
    let (db, public, dir) = signed_log().await;
    let (code, clean) = verify(&db, &public, dir.path());
    assert_eq!(code, 0, "{clean:#}");
    assert_eq!(clean["verified"], true);
    assert!(clean["rows"].as_u64().expect("rows") >= 41, "{clean:#}");
    assert!(clean["checkpoints"].as_u64().expect("checkpoints") >= 1);

    let id_of = |event: &str| format!("(SELECT id FROM audit_log WHERE event_id = '{event}')");
    let row_id = |event: &str| {
        let sql = format!("SELECT id FROM audit_log WHERE event_id = '{event}'");
        let pool = db.pool.clone();
        async move { sqlx::query_scalar::<_, uuid::Uuid>(&sql).fetch_one(&pool).await.expect("row").to_string() }
    };

    // Edited.
    let edited = row_id("c-4").await;
    tamper(&db, &format!("UPDATE audit_log SET actor = 'mallory' WHERE id = {}", id_of("c-4"))).await;
    let (code, report_1) = verify(&db, &public, dir.path());
    assert_eq!(code, 1);
    let found = findings(&report_1);
    assert!(found.iter().any(|f| f.contains(&edited) && f.contains("was edited")), "{found:#?}");

    // Deleted (the row's place is named: its chain and sequence number).
    let (chain, seq): (i16, i64) = sqlx::query_as("SELECT chain, seq FROM audit_log WHERE event_id = 'c-8'")
        .fetch_one(&db.pool)
        .await
        .expect("row");
    tamper(&db, &format!("DELETE FROM audit_log WHERE id = {}", id_of("c-8"))).await;
    let found = findings(&verify(&db, &public, dir.path()).1);
    assert!(found.iter().any(|f| f == &format!("chain {chain} seq {seq}: a row was deleted")), "{found:#?}");

    // Inserted.
    tamper(
        &db,
        "INSERT INTO audit_log (id, actor, actor_type, action, resource, tenant, outcome)
         VALUES ('00000000-0000-7000-8000-00000000f00d', 'mallory', 'user', 'user.update', 'x', 'acme', 'success')",
    )
    .await;
    let found = findings(&verify(&db, &public, dir.path()).1);
    assert!(
        found.iter().any(|f| f.contains("00000000-0000-7000-8000-00000000f00d") && f.contains("(inserted)")),
        "{found:#?}"
    );

    // Reordered: two neighbours of one chain swap places.
    let (chain, first): (i16, i64) = sqlx::query_as("SELECT chain, seq FROM audit_log WHERE event_id = 'c-13'")
        .fetch_one(&db.pool)
        .await
        .expect("row");
    let second: i64 = sqlx::query_scalar("SELECT min(seq) FROM audit_log WHERE chain = $1 AND seq > $2")
        .bind(chain)
        .bind(first)
        .fetch_one(&db.pool)
        .await
        .expect("a neighbour");
    let moved = row_id("c-13").await;
    tamper(
        &db,
        &format!(
            "UPDATE audit_log SET seq = -1 WHERE chain = {chain} AND seq = {first};
             UPDATE audit_log SET seq = {first} WHERE chain = {chain} AND seq = {second};
             UPDATE audit_log SET seq = {second} WHERE chain = {chain} AND seq = -1;"
        ),
    )
    .await;
    let found = findings(&verify(&db, &public, dir.path()).1);
    let expected = format!("chain {chain} seq {second}: row {moved} (");
    assert!(
        found
            .iter()
            .any(|f| f.starts_with(&expected) && f.ends_with("is out of order (it does not follow the row before it)")),
        "{found:#?}"
    );

    // A checkpoint deleted from the database: its file still has it, and the next no longer follows.
    tamper(
        &db,
        "DELETE FROM audit_checkpoints WHERE id = (SELECT id FROM audit_checkpoints ORDER BY created_at LIMIT 1)",
    )
    .await;
    let found = findings(&verify(&db, &public, dir.path()).1);
    assert!(found.iter().any(|f| f.contains("is not in the database")), "{found:#?}");
    assert!(found.iter().any(|f| f.contains("does not follow the checkpoint before it")), "{found:#?}");

    // A key that did not sign the checkpoints fails every one of them.
    let (_, other) = keygen();
    let found = findings(&verify(&db, &other, dir.path()).1);
    assert!(found.iter().any(|f| f.contains("signature is not valid for any trusted key")), "{found:#?}");
}

/// Issue 13.2: a month of the log older than the retention is dropped whole by serve's job; its
/// checkpoint stays, and `verify` still passes, saying where retention ended; a deletion after it is
/// still found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_month_past_the_retention_is_dropped_and_verify_still_passes() {
    use chrono::{TimeDelta, Utc};
    use gatehouse::audit::checkpoint::{self, Signer};

    let (db, repo) = (TestDb::new().await, Repo::example());
    let now = Utc::now();
    let long_ago = now - TimeDelta::days(500);
    gatehouse::store::audit_retention::ensure_partitions(&db.pool, long_ago, now).await.expect("partitions");
    let row = |tenant: Option<&str>, action: &str| gatehouse::store::AuditEntry {
        actor: "ada@ops.example".into(),
        actor_type: "operator",
        action: action.into(),
        resource: "tenant/acme".into(),
        tenant: tenant.map(str::to_owned),
        success: true,
        metadata: json!({ "n": 1 }),
    };
    let mut conn = db.pool.acquire().await.expect("connection");
    let old = [row(Some("acme"), "old.one"), row(None, "old.two"), row(Some("acme"), "old.three")];
    gatehouse::store::insert_audit_at(&mut conn, &old, long_ago).await.expect("old rows");
    let recent = [row(Some("acme"), "new.one"), row(None, "new.two")];
    gatehouse::store::insert_audit_at(&mut conn, &recent, now).await.expect("new rows");
    drop(conn);
    let signer = Signer::generate().expect("key");
    let (seed, public) = (signer.seed_base64(), checkpoint::public_key_base64(&signer.public_key()));
    let dir = tempfile::tempdir().expect("dir");
    let settings = checkpoint::Settings { signer, every: Duration::from_secs(3600), dir: Some(dir.path().to_owned()) };
    checkpoint::write(&db.pool, &settings, TimeDelta::zero()).await.expect("checkpoint").expect("written");
    let month = format!("audit_log_{}", long_ago.format("%Y%m"));
    let exists = format!("SELECT count(*) FROM pg_class WHERE relname = '{month}'");
    assert_eq!(db.count(&exists).await, 1);

    let dir_text = dir.path().to_string_lossy().into_owned();
    let env = [
        ("GATEHOUSE_AUDIT_RETENTION", "400d"),
        ("GATEHOUSE_AUDIT_SIGNING_KEY", seed.as_str()),
        ("GATEHOUSE_AUDIT_CHECKPOINT_DIR", dir_text.as_str()),
    ];
    let mut server = started(&repo, &db, &env).await;
    let files = || std::fs::read_dir(dir.path()).map_or(0, |d| d.flatten().count());
    // Every checkpoint copied, not only the first: a stop between a drop's commit and its copy
    // would leave a checkpoint without its file, which verify rightly reports.
    within(Duration::from_secs(10), "the old month is dropped, and every checkpoint copied", || async {
        db.count(&exists).await == 0
            && files() >= 2
            && files() as i64 == db.count("SELECT count(*) FROM audit_checkpoints").await
    })
    .await;
    assert_eq!(tokio::task::spawn_blocking(move || server.terminate()).await.expect("stopped"), Some(0));
    assert_eq!(db.count("SELECT count(*) FROM audit_log WHERE action LIKE 'old.%'").await, 0);
    // Every month past the retention went (the empty ones too), each drop audited.
    let months = db.count("SELECT count(*) FROM audit_retention").await;
    assert!(months >= 1);
    assert_eq!(
        db.count("SELECT count(*) FROM audit_log WHERE action = 'audit.retention'").await,
        months,
        "every drop audited"
    );

    // Each drop is signed by a checkpoint of its own transaction (issue 25.1), copied to the directory.
    assert!(db.count("SELECT count(*) FROM audit_checkpoints").await > months, "a checkpoint per drop");
    let (code, report) = verify(&db, &public, dir.path());
    assert_eq!(code, 0, "{report:#}");
    let notes = report["notes"].to_string();
    assert!(notes.contains(&format!("retention dropped {months} months (3 rows)")), "{notes}");

    tamper(&db, "DELETE FROM audit_log WHERE action = 'new.one'").await;
    let (code, report) = verify(&db, &public, dir.path());
    assert_eq!(code, 1, "{report:#}");
    assert!(findings(&report).iter().any(|f| f.contains("deleted")), "{report:#}");
}

/// Issue 25.1, the probe's first reproduction: with the triggers off, a retention record whose
/// anchors are the current heads (`until = now()`) is slipped in, then every actor is edited and a
/// row deleted. `verify` no longer says "verified over 0 rows": the record is not the one the last
/// checkpoint signed, its month is still there, it came before its retention had passed, and the
/// rows it says were dropped are still in the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_retention_record_over_a_rewritten_log_is_found() {
    let (db, public, dir) = signed_log().await;
    tamper(
        &db,
        "INSERT INTO audit_retention (partition, until, rows, legacy_rows, kept_for_days, anchors)
         SELECT 'audit_log_' || to_char(now() AT TIME ZONE 'UTC', 'YYYYMM'), now(), 0, 0, 400,
                jsonb_agg(jsonb_build_object('chain', chain, 'seq', seq, 'hash', encode(hash, 'hex')))
           FROM audit_chain_heads;
         UPDATE audit_log SET actor = 'mallory';
         DELETE FROM audit_log WHERE action LIKE 'budget.%' OR event_id = 'c-3';",
    )
    .await;
    let (code, report) = verify(&db, &public, dir.path());
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(report["verified"], false);
    let found = findings(&report);
    for expected in [
        "retention records are not those checkpoint",
        "the month it says was dropped is still in the log",
        "before its 400 days of retention had passed",
        "where retention says the chain ended, are still in the log",
    ] {
        assert!(found.iter().any(|f| f.contains(expected)), "{expected}: {found:#?}");
    }
    // The checkpoints deleted too: a signed log with none is a finding, and so are retention
    // records no checkpoint signs (review of issue 25).
    tamper(&db, "DELETE FROM audit_checkpoints").await;
    let (code, report) = verify(&db, &public, dir.path());
    assert_eq!(code, 1, "{report:#}");
    let found = findings(&report);
    assert!(found.iter().any(|f| f.starts_with("there is no checkpoint")), "{found:#?}");
    assert!(found.iter().any(|f| f.contains("but no checkpoint signs them")), "{found:#?}");
}

/// Issue 25.1, the probe's second reproduction: the first rows of one chain, which a checkpoint
/// signed, are deleted and one retention record, consistent in every other way (an old month that
/// no longer exists, its retention long passed), anchors the chain at the last deleted row. Only
/// the signature can tell, and it does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_chains_first_rows_behind_a_plausible_retention_record_is_found() {
    let (db, public, dir) = signed_log().await;
    let (chain, seq): (i16, i64) = sqlx::query_as("SELECT chain, seq FROM audit_log WHERE event_id = 'c-20'")
        .fetch_one(&db.pool)
        .await
        .expect("row");
    let deleted = db.count(&format!("SELECT count(*) FROM audit_log WHERE chain = {chain} AND seq <= {seq}")).await;
    assert!(deleted >= 10, "{deleted} rows");
    tamper(
        &db,
        &format!(
            "INSERT INTO audit_retention (partition, until, dropped_at, rows, legacy_rows, kept_for_days, anchors)
             SELECT 'audit_log_202001', '2020-02-01T00:00:00Z', now(), {deleted}, 0, 400,
                    jsonb_build_array(jsonb_build_object('chain', chain, 'seq', seq, 'hash', encode(hash, 'hex')))
               FROM audit_log WHERE chain = {chain} AND seq = {seq};
             DELETE FROM audit_log WHERE chain = {chain} AND seq <= {seq};"
        ),
    )
    .await;
    let (code, report) = verify(&db, &public, dir.path());
    assert_eq!(code, 1, "{report:#}");
    let found = findings(&report);
    assert!(found.iter().any(|f| f.contains("retention records are not those checkpoint")), "{found:#?}");
}

/// Issue 25.2: a row's recorded time alone edited (it picks the month retention drops the row in)
/// is found, and so is a checkpoint whose copy was deleted from the checkpoint directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_recorded_time_and_a_deleted_checkpoint_file_are_found() {
    let (db, public, dir) = signed_log().await;
    let (code, clean) = verify(&db, &public, dir.path());
    assert_eq!(code, 0, "{clean:#}");

    let id: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM audit_log WHERE event_id = 'c-5'").fetch_one(&db.pool).await.expect("row");
    tamper(
        &db,
        &format!("UPDATE audit_log SET recorded_at = recorded_at - interval '1 microsecond' WHERE id = '{id}'"),
    )
    .await;
    let found = findings(&verify(&db, &public, dir.path()).1);
    assert!(found.iter().any(|f| f.contains(&id.to_string()) && f.contains("was edited")), "{found:#?}");

    let file = std::fs::read_dir(dir.path())
        .expect("dir")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .expect("a checkpoint file");
    std::fs::remove_file(&file).expect("removed");
    let found = findings(&verify(&db, &public, dir.path()).1);
    let name = file.file_name().expect("name").to_string_lossy().into_owned();
    assert!(found.iter().any(|f| f.contains(&name) && f.contains("the copy was deleted")), "{found:#?}");
}

/// Issue 13.2: writers that race on one chain never fork it, in a transaction of their own or not
/// (the audit rows of reads and refusals are written outside any transaction).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_writers_keep_one_chain_and_verify_stays_clean() {
    let db = TestDb::new().await;
    let mut writers = Vec::new();
    for w in 0..16 {
        let pool = db.pool.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..20 {
                let row = gatehouse::store::AuditEntry {
                    actor: format!("writer-{w}"),
                    actor_type: "operator",
                    action: "audit.read".into(),
                    resource: format!("audit-log/{i}"),
                    tenant: Some("acme".into()),
                    success: true,
                    metadata: json!({ "i": i, "zero": -0.0 }),
                };
                let mut conn = pool.acquire().await.expect("connection");
                gatehouse::store::insert_audit(&mut conn, &[row]).await.expect("written");
            }
        }));
    }
    for writer in writers {
        writer.await.expect("writer");
    }
    let report =
        gatehouse::audit::verify::verify(&db.pool, &[], None, chrono::TimeDelta::days(400)).await.expect("verified");
    assert!(report.is_clean(), "{:#?}", report.findings);
    assert_eq!(report.rows, 320);
}
