//! Usage and audit ingest and the audit export (issue 13.8), against the release binary. 100 tenants
//! (`GATEHOUSE_BENCH_TENANTS`) open to `bench-app`; load from `wrk` in a second process (`apt-get
//! install wrk`), 10 s each (`GATEHOUSE_BENCH_SECONDS`), 16 connections:
//! (u) `POST /v1/usage/events`, batches of 500 CloudEvents, every event new, tenants round robin;
//! (c) the baseline: PostgreSQL `COPY` of the same rows (500 a statement, 16 connections) into a table
//!     shaped and indexed as `usage_events`, from this process;
//! (a) `POST /v1/audit/events`, batches of 500, and (ca) `COPY` of the same rows into a table shaped
//!     and indexed as `audit_log`;
//! (x) `GET /v1/audit/export` of 1,000,000 rows (`GATEHOUSE_BENCH_EXPORT_ROWS`), timed to the last
//!     byte, with the server's resident memory sampled while it streams;
//! (b) `POST /v1/tenants/{t}/budget/check` at 64 connections, against (h) the baseline, a minimal
//!     axum handler of this process answering a body of the same size, 64 connections.

#[path = "common/serve.rs"]
mod serve;
#[path = "common/synthetic.rs"]
mod synthetic;
#[path = "common/wrk.rs"]
mod wrk;

use std::io::Read as _;
use std::path::Path;
use std::time::{Duration, Instant};

use wrk::Load;

const TOKEN: &str = "bench-operator-token";
const KEYRING: &str = "bench:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const BATCH: usize = 500;
const CONNECTIONS: usize = 16;

/// Each request a batch of `BATCH` new events (ids unique per wrk thread and request), for the
/// tenants round robin. `event` is a Lua expression of `id`, `tenant` and `now`.
fn batch_script(path: &str, key: &str, tenants: usize, event: &str, content_type: &str) -> String {
    let names = (0..tenants).map(|t| format!("'t{t:05}'")).collect::<Vec<_>>().join(",");
    format!(
        "local tenants = {{{names}}}\nlocal threads = 0\nlocal n = 0\nid = 0\n\
         setup = function(thread)\n  threads = threads + 1\n  thread:set('id', threads)\nend\n\
         request = function()\n  n = n + 1\n  local tenant = tenants[n % #tenants + 1]\n\
           local now = os.date('!%Y-%m-%dT%H:%M:%SZ')\n  local parts = {{}}\n\
           for i = 1, {BATCH} do\n    local id = id .. '-' .. n .. '-' .. i\n    parts[i] = {event}\n  end\n\
           return wrk.format('POST', '{path}', {{['Authorization'] = 'Bearer {key}', ['Content-Type'] = '{content_type}'}}, '[' .. table.concat(parts, ',') .. ']')\nend\n"
    )
}

const USAGE_EVENT: &str = r#"'{"specversion":"1.0","id":"' .. id .. '","source":"//bench","type":"api.call","subject":"' .. tenant .. '","time":"' .. now .. '","data":{"quantity":1}}'"#;
const AUDIT_EVENT: &str = r#"'{"id":"' .. id .. '","tenant":"' .. tenant .. '","timestamp":"' .. now .. '","actor":"user-1","type":"document.read","resource":"doc/' .. id .. '","outcome":"success","ip":"203.0.113.7"}'"#;

fn wrk(url: &str, script: &str, seconds: u64, dir: &Path, name: &str) -> Load {
    let load = wrk::finish(wrk::start(url, 2, CONNECTIONS as u32, seconds, script, dir, name));
    assert!(!load.errors, "({name}) got error answers: the measurement is void");
    load
}

/// `COPY` of `BATCH`-row statements from `CONNECTIONS` connections for `seconds`: rows per second.
async fn copy_rate(
    pool: &sqlx::PgPool,
    table: &str,
    columns: &str,
    row: fn(usize, usize, usize) -> String,
    seconds: u64,
) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for connection in 0..CONNECTIONS {
        let (pool, statement) = (pool.clone(), format!("COPY {table} ({columns}) FROM STDIN"));
        tasks.push(tokio::spawn(async move {
            let mut rows = 0usize;
            let mut n = 0;
            while Instant::now() < deadline {
                n += 1;
                let mut data = String::with_capacity(BATCH * 160);
                for i in 0..BATCH {
                    data.push_str(&row(connection, n, i));
                }
                let mut conn = pool.acquire().await.expect("connection");
                let mut copy = conn.copy_in_raw(&statement).await.expect("copy");
                copy.send(data.as_bytes()).await.expect("send");
                copy.finish().await.expect("finish");
                rows += BATCH;
            }
            rows
        }));
    }
    let started = Instant::now();
    let mut rows = 0;
    for task in tasks {
        rows += task.await.expect("copy task");
    }
    rows as f64 / started.elapsed().as_secs_f64().max(seconds as f64)
}

fn usage_row(connection: usize, n: usize, i: usize) -> String {
    format!(
        "{}\t{}\t//bench\tc{connection}-{n}-{i}\tapi.call\t{}\t1\t{{\"quantity\":1}}\n",
        uuid::Uuid::nil(),
        uuid::Uuid::nil(),
        chrono::Utc::now().to_rfc3339()
    )
}

fn audit_row(connection: usize, n: usize, i: usize) -> String {
    format!(
        "{}\t{}\tuser-1\texternal\tdocument.read\tdoc/c{connection}-{n}-{i}\tt00001\tsuccess\t{{\"ip\":\"203.0.113.7\"}}\tbench-app\tc{connection}-{n}-{i}\n",
        uuid::Uuid::now_v7(),
        chrono::Utc::now().to_rfc3339()
    )
}

/// The server's resident memory in KiB (`VmRSS`).
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let env = |name: &str, default: usize| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let tenants = env("GATEHOUSE_BENCH_TENANTS", 100);
    let seconds = env("GATEHOUSE_BENCH_SECONDS", 10) as u64;
    let export_rows = env("GATEHOUSE_BENCH_EXPORT_ROWS", 1_000_000);
    let server =
        std::env::var("GATEHOUSE_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let work_dir = tempfile::tempdir().expect("temp");
    let repo = work_dir.path().join("config");
    synthetic::generate(&repo, tenants);
    synthetic::open_to_application_with(&repo, tenants, &["usage:write", "audit:write", "usage:read"]);
    let admin = sqlx::PgPool::connect(&format!("{server}/postgres")).await.expect("server");
    sqlx::query("DROP DATABASE IF EXISTS gatehouse_bench_ingest WITH (FORCE)").execute(&admin).await.expect("drop");
    let database_url = format!("{server}/gatehouse_bench_ingest");
    let pool = gatehouse::store::connect(&database_url).await.expect("create + migrate");
    let validated = gatehouse::config::load_repo(&repo).expect("load repo");
    gatehouse::reconcile::apply(&pool, &validated, Default::default(), None).await.expect("apply");
    sqlx::query("UPDATE users SET status = 'active', activated_at = now()").execute(&pool).await.expect("activate");

    let replica_env = [
        ("DATABASE_URL", database_url.as_str()),
        ("GATEHOUSE_OPERATOR_TOKEN", TOKEN),
        ("GATEHOUSE_ENCRYPTION_KEY", KEYRING),
    ];
    let args = ["--repo", &repo.display().to_string(), "--interval", "600s"];
    let (mut replica, base) = serve::start(&args, &replica_env);
    let ready = Instant::now();
    while ureq::get(&format!("{base}/readyz")).call().is_err() {
        assert!(ready.elapsed() < Duration::from_secs(300), "serve never became ready");
        std::thread::sleep(Duration::from_millis(100));
    }
    let key: serde_json::Value = ureq::post(&format!("{base}/v1/apps/bench-app/keys"))
        .set("Authorization", &format!("Bearer {TOKEN}"))
        .send_json(serde_json::json!({}))
        .expect("key")
        .into_json()
        .expect("json");
    let key = key["secret"].as_str().expect("secret").to_owned();
    let dir = work_dir.path();

    let u = wrk(
        &format!("{base}/v1/usage/events"),
        &batch_script("/v1/usage/events", &key, tenants, USAGE_EVENT, "application/cloudevents-batch+json"),
        seconds,
        dir,
        "usage",
    );
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM usage_events").fetch_one(&pool).await.expect("count");
    sqlx::query("CREATE TABLE copy_usage (LIKE usage_events INCLUDING DEFAULTS INCLUDING INDEXES INCLUDING IDENTITY)")
        .execute(&pool)
        .await
        .expect("copy table");
    let columns = "tenant_id, application_id, source, event_id, type, occurred_at, quantity, data";
    let c = copy_rate(&pool, "copy_usage", columns, usage_row, seconds).await;

    let a = wrk(
        &format!("{base}/v1/audit/events"),
        &batch_script("/v1/audit/events", &key, tenants, AUDIT_EVENT, "application/json"),
        seconds,
        dir,
        "audit",
    );
    let audited: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE application = 'bench-app'")
        .fetch_one(&pool)
        .await
        .expect("count");
    sqlx::raw_sql("CREATE TABLE copy_audit (LIKE audit_log INCLUDING DEFAULTS INCLUDING INDEXES)")
        .execute(&pool)
        .await
        .expect("copy table");
    let columns =
        "id, occurred_at, actor, actor_type, action, resource, tenant, outcome, metadata, application, event_id";
    let ca = copy_rate(&pool, "copy_audit", columns, audit_row, seconds).await;

    // The export: at least `export_rows` rows in the log (ingested above, topped up as the chain
    // writes them), then one download to the last byte.
    let have: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log").fetch_one(&pool).await.expect("count");
    let missing = (export_rows as i64 - have).max(0);
    if missing > 0 {
        let fill = Instant::now();
        let mut conn = pool.acquire().await.expect("connection");
        let mut written = 0;
        while written < missing {
            let rows: Vec<gatehouse::store::AuditEntry> = (0..10_000.min(missing - written))
                .map(|i| gatehouse::store::AuditEntry {
                    actor: format!("user-{}", i % 97),
                    actor_type: "user",
                    action: "document.read".into(),
                    resource: format!("doc/{written}-{i}"),
                    tenant: Some(format!("t{:05}", i as usize % tenants)),
                    success: true,
                    metadata: serde_json::json!({ "ip": "203.0.113.7" }),
                })
                .collect();
            written += rows.len() as i64;
            gatehouse::store::insert_audit(&mut conn, &rows).await.expect("fill");
        }
        println!("filled the log with {missing} more rows in {:.1} s", fill.elapsed().as_secs_f64());
    }
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log").fetch_one(&pool).await.expect("count");
    // Budget checks: answered from memory, against a minimal handler.
    let check_url = format!("{base}/v1/tenants/t00001/budget/check");
    let answer = ureq::post(&check_url)
        .set("Authorization", &format!("Bearer {key}"))
        .send_json(serde_json::json!({ "quantity": 1, "type": "api.call" }))
        .expect("a check")
        .into_string()
        .expect("body");
    let baseline_url = serve::fixed_body(answer.len()).await;
    let h = wrk::finish(wrk::start(&baseline_url, 2, 64, seconds, "wrk.method = \"GET\"\n", dir, "baseline"));
    let check_script = format!(
        "wrk.method = \"POST\"\nwrk.body = '{{\"quantity\":1,\"type\":\"api.call\"}}'\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.headers[\"Authorization\"] = \"Bearer {key}\"\n"
    );
    let b = wrk::finish(wrk::start(&check_url, 2, 64, seconds, &check_script, dir, "check"));
    assert!(!b.errors && !h.errors, "the budget check got error answers: the measurement is void");

    let pid = replica.id();
    let before = rss_kib(pid);
    let sampling = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(before));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (peak, stop) = (sampling.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                peak.fetch_max(rss_kib(pid), std::sync::atomic::Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let started = Instant::now();
    let response = ureq::get(&format!("{base}/v1/audit/export"))
        .set("Authorization", &format!("Bearer {TOKEN}"))
        .call()
        .expect("export");
    let mut reader = response.into_reader();
    let (mut bytes, mut lines, mut buffer) = (0usize, 0usize, vec![0u8; 1 << 16]);
    loop {
        let n = reader.read(&mut buffer).expect("read");
        if n == 0 {
            break;
        }
        bytes += n;
        lines += buffer[..n].iter().filter(|b| **b == b'\n').count();
    }
    let took = started.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    sampler.join().expect("sampler");
    let peak = sampling.load(std::sync::atomic::Ordering::Relaxed);
    let _ = (replica.kill(), replica.wait());

    let per_second = |load: &Load| load.requests_per_second * BATCH as f64;
    println!(
        "\n| {tenants} tenants, batches of {BATCH}, {CONNECTIONS} connections, {seconds} s | events/s | % of COPY | p99 per batch | target |"
    );
    println!("|---|--:|--:|--:|---|");
    println!("| (c) COPY into a table like usage_events | {c:.0} | 100 % | | |");
    println!(
        "| (u) POST /v1/usage/events ({stored} stored) | {:.0} | {:.0} % | {:.1} ms | ≥ 50,000/s and ≥ 40 % of COPY |",
        per_second(&u),
        100.0 * per_second(&u) / c,
        u.p99_ms
    );
    println!("| (ca) COPY into a table like audit_log | {ca:.0} | 100 % | | |");
    println!(
        "| (a) POST /v1/audit/events ({audited} stored, hash-chained) | {:.0} | {:.0} % | {:.1} ms | ≥ 50,000/s and ≥ 40 % of COPY |",
        per_second(&a),
        100.0 * per_second(&a) / ca,
        a.p99_ms
    );
    println!("\n| budget checks, 64 connections, {seconds} s | req/s | % of (h) | p99 | target |");
    println!("|---|--:|--:|--:|---|");
    println!(
        "| (h) baseline: minimal axum handler, {} B body | {:.0} | 100 % | {:.2} ms | |",
        answer.len(),
        h.requests_per_second,
        h.p99_ms
    );
    println!(
        "| (b) POST /v1/tenants/{{t}}/budget/check | {:.0} | {:.0} % | {:.2} ms | ≥ 70 %, p99 ≤ 5 ms |",
        b.requests_per_second,
        100.0 * b.requests_per_second / h.requests_per_second,
        b.p99_ms
    );
    println!(
        "\n(x) GET /v1/audit/export: {} rows ({total} in the log, {:.0} MB of CSV) in {:.2} s (target ≤ 5 s); server RSS {} MiB before, peak {} MiB while streaming",
        lines.saturating_sub(1),
        bytes as f64 / 1e6,
        took.as_secs_f64(),
        before / 1024,
        peak / 1024
    );
}
