//! Usage ingest and export (issue 13.4, 13.5; FR-BILL-001..003) against the real binary, with the
//! CloudEvents Python SDK as the client and Python's csv module reading the export.

use serde_json::{Value, json};

use crate::access::issue;
use crate::helpers::{HttpResponse, OPERATOR, Repo, Served, TestDb, call, request};
use crate::identity::started;
use crate::operators::{cli, json_out};

async fn post(server: &Served, key: &str, content_type: &str, body: &Value) -> HttpResponse {
    let headers = vec![("authorization", format!("Bearer {key}")), ("content-type", content_type.to_owned())];
    request("POST", format!("{}/v1/usage/events", server.base), headers, serde_json::to_vec(body).expect("json")).await
}

fn event(id: &str, tenant: &str, quantity: i64) -> Value {
    json!({ "specversion": "1.0", "id": id, "source": "//billing-app/jobs", "type": "job.run", "subject": tenant,
            "time": chrono::Utc::now().to_rfc3339(), "data": { "quantity": quantity } })
}

fn code(response: &HttpResponse) -> &str {
    response.body["error"]["code"].as_str().unwrap_or("")
}

/// FR-BILL-001/002/003, API-BILL: the CloudEvents SDK's structured event and batch are stored once
/// each (a resend is a duplicate), bad events of a batch are refused one by one with the reason
/// while the good ones are stored, and the CSV export opens in Python's csv module with the right
/// columns and formulas neutralised.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cloudevents_client_reports_usage_once_and_a_billing_system_reads_it_back_as_csv() {
    let (db, repo) = (TestDb::new().await, Repo::example());
    let server = started(&repo, &db, &[]).await;
    let (_, writer) = issue(&server, "billing-app", &[]);
    let (_, reader) = issue(&server, "analytics-app", &[]);
    let script = crate::helpers::project_dir().join("tests/support/usage_client.py");
    let output = std::process::Command::new("python3")
        .arg(&script)
        .args([server.base.as_str(), writer.as_str(), reader.as_str(), "acme"])
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "the usage client failed (pip install cloudevents==1.12.0; scripts/test does): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let answers: Value = serde_json::from_slice(&output.stdout).expect("JSON");

    assert_eq!(answers["single"]["status"], 200, "{}", answers["single"]);
    assert_eq!(answers["single"]["body"], json!({ "accepted": 1, "duplicates": 0, "rejected": [] }));
    assert_eq!(answers["again"]["body"], json!({ "accepted": 0, "duplicates": 1, "rejected": [] }), "a resend");
    let batch = &answers["batch"];
    assert_eq!(batch["status"], 200, "{batch}");
    assert_eq!(batch["body"]["accepted"], 3);
    let rejected = batch["body"]["rejected"].as_array().expect("rejected");
    let summary: Vec<(u64, &str, &str)> = rejected
        .iter()
        .map(|r| {
            (r["index"].as_u64().expect("index"), r["id"].as_str().expect("id"), r["code"].as_str().expect("code"))
        })
        .collect();
    assert_eq!(
        summary,
        [(3, "batch-bad", "invalid_quantity"), (4, "batch-old", "too_old"), (5, "batch-ahead", "in_future")]
    );
    assert!(rejected[1]["message"].as_str().expect("message").contains("40 days ago"), "{}", rejected[1]);
    assert!(rejected[2]["message"].as_str().expect("message").contains("minutes ahead"), "{}", rejected[2]);

    let csv = &answers["csv"];
    assert!(csv["contentType"].as_str().expect("type").starts_with("text/csv"), "{csv}");
    let columns =
        ["seq", "tenant", "application", "source", "id", "type", "time", "quantity", "received_at", "data", "cursor"];
    assert_eq!(csv["columns"], json!(columns));
    let rows = csv["rows"].as_array().expect("rows");
    let ids: Vec<&str> = rows.iter().map(|r| r["id"].as_str().expect("id")).collect();
    assert_eq!(ids.len(), 4, "four events stored once each: {ids:?}");
    for id in ["single-1", "batch-1", "batch-2", "batch-3"] {
        assert!(ids.contains(&id), "{id} in {ids:?}");
    }
    assert!(rows.iter().all(|r| r["tenant"] == "acme" && r["application"] == "billing-app"));
    let formula = rows.iter().find(|r| r["id"] == "batch-3").expect("batch-3");
    assert_eq!(formula["type"], "'=1+1", "a cell starting with = is neutralised");
    let quantities: i64 = rows.iter().map(|r| r["quantity"].as_str().expect("q").parse::<i64>().expect("int")).sum();
    assert_eq!(quantities, 11);
    let data: Value = serde_json::from_str(formula["data"].as_str().expect("data")).expect("data is JSON");
    assert_eq!(data["quantity"], 3);

    // Totals count each event once, per type.
    let totals = call(&server, "GET", "/v1/usage/totals?tenant=acme", Some(&reader), None).await;
    assert_eq!(totals.status, 200, "{}", totals.text);
    let by_type: Vec<(String, i64, i64)> = totals.body["totals"]
        .as_array()
        .expect("totals")
        .iter()
        .map(|t| {
            (
                t["type"].as_str().expect("type").to_owned(),
                t["quantity"].as_i64().expect("q"),
                t["events"].as_i64().expect("n"),
            )
        })
        .collect();
    let mut by_type = by_type;
    by_type.sort();
    assert_eq!(by_type, [("=1+1".into(), 3, 1), ("api.call".into(), 6, 2), ("storage.gb".into(), 2, 1)]);
    let monthly =
        call(&server, "GET", "/v1/usage/totals?tenant=acme&granularity=month&type=api.call", Some(OPERATOR), None)
            .await;
    assert_eq!(monthly.body["totals"][0]["quantity"], 6, "{}", monthly.text);
}

/// Who may report and read usage: a key reports only for tenants that list its application and
/// reads one such tenant at a time; operators read every tenant; every refusal is audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_is_reported_and_read_only_for_tenants_open_to_the_application() {
    let (db, repo) = (TestDb::new().await, Repo::example());
    let server = started(&repo, &db, &[]).await;
    let (_, writer) = issue(&server, "billing-app", &[]);
    let (_, reader) = issue(&server, "analytics-app", &[]);

    // hooli does not list billing-app.
    let closed = post(&server, &writer, "application/cloudevents+json", &event("h1", "hooli", 1)).await;
    assert_eq!(closed.status, 422, "{}", closed.text);
    assert_eq!(code(&closed), "forbidden");
    assert!(closed.text.contains("not open to application `billing-app`"), "{}", closed.text);
    let audited = "SELECT count(*) FROM audit_log WHERE action = 'api.denied' AND tenant = 'hooli' AND metadata->>'action' = 'usage.ingest'";
    crate::helpers::within(std::time::Duration::from_secs(5), "the refusal is audited", || async {
        db.count(audited).await >= 1
    })
    .await;

    // A key without usage:write, and a key that names no tenant.
    let no_scope = post(&server, &reader, "application/json", &event("a1", "acme", 1)).await;
    assert_eq!((no_scope.status, code(&no_scope)), (403, "insufficient_scope"), "{}", no_scope.text);
    let everyone = call(&server, "GET", "/v1/usage/events", Some(&reader), None).await;
    assert_eq!(everyone.status, 403, "{}", everyone.text);
    assert!(everyone.text.contains("one tenant at a time"), "{}", everyone.text);
    let other = call(&server, "GET", "/v1/usage/events?tenant=globex", Some(&reader), None).await;
    assert_eq!(other.status, 403, "globex does not list analytics-app: {}", other.text);

    // Operators read every tenant, a page at a time in ingest order.
    let batch = json!([event("g1", "globex", 2), event("a1", "acme", 3), event("a2", "acme", 4)]);
    let stored = post(&server, &writer, "application/json", &batch).await;
    assert_eq!(stored.body["accepted"], 3, "{}", stored.text);
    crate::helpers::within(std::time::Duration::from_secs(10), "the three events exported", || async {
        let all = call(&server, "GET", "/v1/usage/events", Some(OPERATOR), None).await;
        all.body["events"].as_array().is_some_and(|e| e.len() == 3)
    })
    .await;
    let first = call(&server, "GET", "/v1/usage/events?limit=2", Some(OPERATOR), None).await;
    assert_eq!(first.status, 200, "{}", first.text);
    let seqs = |r: &HttpResponse| -> Vec<i64> {
        r.body["events"].as_array().expect("events").iter().map(|e| e["seq"].as_i64().expect("seq")).collect()
    };
    let next = first.body["next"].as_str().expect("a next page").to_owned();
    let rest = call(&server, "GET", &format!("/v1/usage/events?after={next}"), Some(OPERATOR), None).await;
    let all: Vec<i64> = seqs(&first).into_iter().chain(seqs(&rest)).collect();
    assert_eq!(all.len(), 3);
    assert!(all.windows(2).all(|w| w[0] < w[1]), "ingest order: {all:?}");
    assert!(rest.body.get("next").is_none_or(Value::is_null), "{}", rest.text);
    let acme = call(&server, "GET", "/v1/usage/events?tenant=acme", Some(&reader), None).await;
    assert_eq!(acme.body["events"].as_array().expect("events").len(), 2, "{}", acme.text);

    // The CLI: every event as JSON, and a tenant's as CSV on standard output.
    let exported = json_out(&cli(&server, OPERATOR, &["usage", "export"]), "usage export --format json");
    assert_eq!(exported["events"].as_array().expect("events").len(), 3, "{exported}");
    let csv = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["usage", "export", "--tenant", "acme", "--after", "0.0"])
        .env("GATEHOUSE_SERVER", &server.base)
        .env("GATEHOUSE_TOKEN", OPERATOR)
        .output()
        .expect("gatehouse runs");
    assert!(csv.status.success(), "{}", String::from_utf8_lossy(&csv.stderr));
    let lines: Vec<String> = String::from_utf8(csv.stdout).expect("utf-8").lines().map(str::to_owned).collect();
    assert!(lines[0].starts_with("seq,tenant,application,source,id,type,time,quantity"), "{lines:?}");
    assert!(lines.len() >= 2 && lines[1..].iter().all(|l| l.contains(",acme,billing-app,")), "{lines:?}");
    let totals = json_out(&cli(&server, OPERATOR, &["usage", "totals", "--monthly"]), "usage totals");
    let sum: i64 =
        totals["totals"].as_array().expect("totals").iter().map(|t| t["quantity"].as_i64().expect("q")).sum();
    assert_eq!(sum, 9, "{totals}");
}

/// FR-BILL-002: eight clients retrying the same batch at once, and a batch repeating an event, add
/// each event to the totals once; bad bodies get clear errors and nothing is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_retries_of_a_batch_count_each_event_once() {
    let (db, repo) = (TestDb::new().await, Repo::example());
    let server = std::sync::Arc::new(started(&repo, &db, &[]).await);
    let (_, writer) = issue(&server, "billing-app", &[]);
    let mut batch: Vec<Value> = (0..200).map(|i| event(&format!("r{i}"), "acme", 1 + i % 3)).collect();
    batch.push(event("r0", "acme", 1));
    let expected: i64 = (0..200).map(|i| 1 + i % 3).sum();
    let batch = Value::Array(batch);
    let mut retries = Vec::new();
    for _ in 0..8 {
        let (server, writer, batch) = (server.clone(), writer.clone(), batch.clone());
        retries.push(tokio::spawn(async move {
            post(&server, &writer, "application/cloudevents-batch+json", &batch).await
        }));
    }
    let mut accepted = 0;
    for retry in retries {
        let answer = retry.await.expect("joined");
        assert_eq!(answer.status, 200, "{}", answer.text);
        assert_eq!(
            answer.body["accepted"].as_i64().expect("accepted")
                + answer.body["duplicates"].as_i64().expect("duplicates"),
            201
        );
        accepted += answer.body["accepted"].as_i64().expect("accepted");
    }
    assert_eq!(accepted, 200, "each event accepted by exactly one request");
    assert_eq!(db.count("SELECT count(*) FROM usage_events").await, 200);
    assert_eq!(db.count("SELECT sum(quantity)::bigint FROM usage_daily").await, expected);
    assert_eq!(db.count("SELECT sum(events)::bigint FROM usage_daily").await, 200);

    let text = request(
        "POST",
        format!("{}/v1/usage/events", server.base),
        vec![("authorization", format!("Bearer {writer}")), ("content-type", "text/plain".into())],
        b"hello".to_vec(),
    )
    .await;
    assert_eq!((text.status, code(&text)), (415, "unsupported_media_type"), "{}", text.text);
    let huge = Value::Array((0..1001).map(|i| event(&format!("h{i}"), "acme", 1)).collect());
    let too_many = post(&server, &writer, "application/json", &huge).await;
    assert_eq!((too_many.status, code(&too_many)), (422, "batch_too_large"), "{}", too_many.text);
    let single_in_batch = post(&server, &writer, "application/cloudevents-batch+json", &event("x", "acme", 1)).await;
    assert_eq!(single_in_batch.status, 400, "{}", single_in_batch.text);
    let all_bad = post(&server, &writer, "application/json", &json!([{ "id": "only" }, 7])).await;
    assert_eq!((all_bad.status, code(&all_bad)), (422, "invalid_events"), "{}", all_bad.text);
    assert!(all_bad.text.contains("event 1: an event is a JSON object"), "{}", all_bad.text);
    assert_eq!(db.count("SELECT count(*) FROM usage_events").await, 200, "nothing more stored");

    // An export longer than one page (2,000 rows) streams every row once, in ingest order.
    for chunk in 0..3 {
        let batch = Value::Array((0..1000).map(|i| event(&format!("p{chunk}-{i}"), "acme", 1)).collect());
        assert_eq!(post(&server, &writer, "application/json", &batch).await.body["accepted"], 1000);
    }
    // Events of transactions that might still be running anywhere in the database wait: a moment
    // later every row is there.
    let export = || async {
        let headers = vec![("authorization", format!("Bearer {OPERATOR}")), ("accept", "text/csv".to_owned())];
        request("GET", format!("{}/v1/usage/events?tenant=acme", server.base), headers, vec![]).await
    };
    crate::helpers::within(std::time::Duration::from_secs(10), "every row exported", || async {
        export().await.text.lines().count() == 3201
    })
    .await;
    let csv = export().await;
    let rows: Vec<(i64, (i64, i64))> = csv
        .text
        .lines()
        .skip(1)
        .map(|l| {
            let seq = l.split(',').next().expect("seq").parse().expect("a seq");
            let cursor = l.rsplit(',').next().expect("cursor").split_once('.').expect("xid.seq");
            (seq, (cursor.0.parse().expect("xid"), cursor.1.parse().expect("seq")))
        })
        .collect();
    assert_eq!(rows.len(), 3200, "every row");
    let unique: std::collections::BTreeSet<i64> = rows.iter().map(|(seq, _)| *seq).collect();
    assert_eq!(unique.len(), 3200, "no row twice");
    assert!(rows.windows(2).all(|w| w[0].1 < w[1].1), "in cursor order");
}
