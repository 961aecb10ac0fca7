//! Flag delivery throughput and revocation latency: `cargo bench --bench flags_http`.
//!
//! 20,000 tenants (synthetic repository, `GATEHOUSE_BENCH_TENANTS` for fewer) and 500,000 API keys
//! (`GATEHOUSE_BENCH_KEYS`), served by the release binary. Load comes from `wrk` in a second process
//! on loopback (64 connections, 2 threads, 10 s each; `apt-get install wrk`). In one run:
//! (a) the baseline, a minimal axum handler returning a fixed body of the same size as (b);
//! (b) `GET /v1/tenants/{t}/flags` with a valid key; (c) the same with a matching `If-None-Match`
//! (304); (d) OFREP bulk evaluation. Then the time from revoking a key on one replica to the first
//! 401 on a second replica, 20 times.

#[path = "common/serve.rs"]
mod serve;
#[path = "common/synthetic.rs"]
mod synthetic;
#[path = "common/wrk.rs"]
mod wrk;

use std::path::Path;
use std::time::{Duration, Instant};

use gatehouse::delivery::key;
use wrk::Load;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const TOKEN: &str = "bench-operator-token";
const SECONDS: u64 = 10;

/// Runs wrk (2 threads, 64 connections) against `url`; `script` sets method, body and headers.
fn wrk(url: &str, script: &str, dir: &Path) -> Load {
    wrk::finish(wrk::start(url, 2, 64, SECONDS, script, dir, "request"))
}

fn lua(method: &str, headers: &[(&str, &str)], body: Option<&str>) -> String {
    let mut script = format!("wrk.method = \"{method}\"\n");
    for (name, value) in headers {
        script += &format!("wrk.headers[\"{name}\"] = '{value}'\n");
    }
    if let Some(body) = body {
        script += &format!("wrk.body = '{body}'\n");
    }
    script
}

fn serve(repo: &Path, database_url: &str) -> (std::process::Child, String) {
    let (child, base) = serve::start(
        &["--repo", &repo.display().to_string(), "--interval", "600s"],
        &[("DATABASE_URL", database_url), ("GATEHOUSE_OPERATOR_TOKEN", TOKEN)],
    );
    let started = Instant::now();
    while ureq::get(&format!("{base}/readyz")).call().is_err() {
        assert!(started.elapsed() < Duration::from_secs(600), "serve never became ready");
        std::thread::sleep(Duration::from_millis(100));
    }
    (child, base)
}

fn status_of(request: ureq::Request) -> u16 {
    match request.call() {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(code, _)) => code,
        Err(e) => panic!("{e}"),
    }
}

/// Issues a key for `bench-app` through the API; returns (key id, secret).
fn issue(base: &str) -> (String, String) {
    let key: serde_json::Value = ureq::post(&format!("{base}/v1/apps/bench-app/keys"))
        .set("Authorization", &format!("Bearer {TOKEN}"))
        .send_json(serde_json::json!({}))
        .expect("issue key")
        .into_json()
        .expect("json");
    (key["id"].as_str().expect("id").to_owned(), key["secret"].as_str().expect("secret").to_owned())
}

/// Inserts `count` keys of `bench-app` directly, as a large installation would have them.
async fn insert_keys(pool: &sqlx::PgPool, count: usize) {
    let app: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM applications WHERE name = 'bench-app'").fetch_one(pool).await.expect("app");
    for chunk in 0..count.div_ceil(50_000) {
        let n = 50_000.min(count - chunk * 50_000);
        let keys: Vec<key::IssuedKey> = (0..n).map(|_| key::issue()).collect();
        let ids: Vec<uuid::Uuid> = (0..n).map(|_| uuid::Uuid::now_v7()).collect();
        let key_ids: Vec<&str> = keys.iter().map(|k| k.key_id.as_str()).collect();
        let hashes: Vec<&[u8]> = keys.iter().map(|k| &k.secret_hash[..]).collect();
        sqlx::query(
            "INSERT INTO api_keys (id, key_id, application_id, secret_hash, scopes, created_by)
             SELECT id, key_id, $3, hash, '{flags:read}', 'bench' FROM UNNEST($1::uuid[], $2::text[], $4::bytea[]) AS k(id, key_id, hash)",
        )
        .bind(&ids)
        .bind(&key_ids)
        .bind(app)
        .bind(&hashes)
        .execute(pool)
        .await
        .expect("insert keys");
    }
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let rank = ((samples.len() as f64 * p).ceil() as usize).clamp(1, samples.len());
    samples[rank - 1]
}

#[tokio::main]
async fn main() {
    let env = |name: &str, default: usize| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let (tenants, keys) = (env("GATEHOUSE_BENCH_TENANTS", 20_000), env("GATEHOUSE_BENCH_KEYS", 500_000));
    let server =
        std::env::var("GATEHOUSE_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let work_dir = tempfile::tempdir().expect("temp");
    let repo = work_dir.path().join("config");
    synthetic::generate(&repo, tenants);
    synthetic::open_to_application(&repo, tenants);

    let admin = sqlx::PgPool::connect(&format!("{server}/postgres")).await.expect("server");
    sqlx::query("DROP DATABASE IF EXISTS gatehouse_bench_flags WITH (FORCE)").execute(&admin).await.expect("drop");
    let database_url = format!("{server}/gatehouse_bench_flags");
    let pool = gatehouse::store::connect(&database_url).await.expect("create + migrate");
    let validated = gatehouse::config::load_repo(&repo).expect("load repo");
    gatehouse::reconcile::apply(&pool, &validated, Default::default(), None).await.expect("apply");
    // Users who signed up long ago: otherwise the servers spend the whole run issuing 200,000
    // invitations (links and sealed mail) beside the load, and the figures measure that too.
    sqlx::query("UPDATE users SET status = 'active', activated_at = now()").execute(&pool).await.expect("activate");
    let started = Instant::now();
    insert_keys(&pool, keys.saturating_sub(1)).await;
    println!(
        "{tenants} tenants applied; {} keys inserted in {:.1} s",
        keys.saturating_sub(1),
        started.elapsed().as_secs_f64()
    );

    let (mut replica_a, a) = serve(&repo, &database_url);
    let (key_id, secret) = issue(&a);
    let tenant = "t00042";
    let flags_url = format!("{a}/v1/tenants/{tenant}/flags");
    let sample = ureq::get(&flags_url).set("Authorization", &format!("Bearer {secret}")).call().expect("flags");
    let etag = sample.header("etag").expect("etag").to_owned();
    let body_size = sample.into_string().expect("body").len();

    // (a) the baseline: a minimal axum handler with a fixed body of the same size, on its own port.
    let baseline_url = serve::fixed_body(body_size).await;

    let bearer = format!("Bearer {secret}");
    let dir = work_dir.path();
    let a_load = wrk(&baseline_url, &lua("GET", &[], None), dir);
    let b_load = wrk(&flags_url, &lua("GET", &[("Authorization", &bearer)], None), dir);
    let c_load = wrk(&flags_url, &lua("GET", &[("Authorization", &bearer), ("If-None-Match", &etag)], None), dir);
    let ofrep_body = format!(r#"{{"context":{{"targetingKey":"user-1","tenant":"{tenant}"}}}}"#);
    let d_load = wrk(
        &format!("{a}/ofrep/v1/evaluate/flags"),
        &lua("POST", &[("Authorization", &bearer), ("Content-Type", "application/json")], Some(&ofrep_body)),
        dir,
    );
    for (name, load) in [("b", &b_load), ("c", &c_load), ("d", &d_load)] {
        assert!(!load.errors, "({name}) got error answers: the measurement is void");
    }

    // Revocation: revoke on replica A, poll replica B until its first 401.
    let (mut replica_b, b) = serve(&repo, &database_url);
    let mut revocations = Vec::new();
    for _ in 0..20 {
        let (id, secret) = issue(&a);
        let on_b =
            |secret: &str| status_of(ureq::get(&format!("{b}/v1/tenants/{tenant}/flags")).set("X-API-Key", secret));
        while on_b(&secret) != 200 {
            std::thread::sleep(Duration::from_millis(1));
        }
        let revoked = Instant::now();
        let status = status_of(
            ureq::delete(&format!("{a}/v1/apps/bench-app/keys/{id}")).set("Authorization", &format!("Bearer {TOKEN}")),
        );
        assert_eq!(status, 200);
        while on_b(&secret) != 401 {
            assert!(revoked.elapsed() < Duration::from_secs(30), "revocation never reached replica B");
        }
        revocations.push(revoked.elapsed());
    }
    let _ = (replica_a.kill(), replica_b.kill(), replica_a.wait(), replica_b.wait(), key_id);

    let ratio = |load: &Load| 100.0 * load.requests_per_second / a_load.requests_per_second;
    println!(
        "\n| {tenants} tenants, {keys} keys, wrk -t2 -c64 -d{SECONDS}s, body {body_size} B | req/s | % of (a) | p99 | target |"
    );
    println!("|---|--:|--:|--:|---|");
    let row = |name: &str, load: &Load, target: &str| {
        println!(
            "| {name} | {:.0} | {:.0} % | {:.2} ms | {target} |",
            load.requests_per_second,
            ratio(load),
            load.p99_ms
        );
    };
    row("(a) baseline: minimal axum handler, fixed body", &a_load, "");
    row("(b) GET /v1/tenants/{t}/flags, valid key", &b_load, "≥ 70 % of (a), p99 ≤ 5 ms");
    row("(c) same with matching If-None-Match (304)", &c_load, "≥ 80 % of (a)");
    row("(d) OFREP bulk evaluation", &d_load, "");
    let (p50, max) = (percentile(&mut revocations, 0.5), percentile(&mut revocations, 1.0));
    println!(
        "\nrevoke on replica A → first 401 on replica B ({} rounds): p50 {:.1} ms, max {:.1} ms (target ≤ 1 s)",
        revocations.len(),
        p50.as_secs_f64() * 1000.0,
        max.as_secs_f64() * 1000.0
    );
}
