//! The first pass while everything else competes for the database (issue 25.6):
//! `cargo bench --bench busy_start`.
//!
//! The synthetic repository (20,000 tenants, 200,000 users, all of them invited on the first pass;
//! `GATEHOUSE_BENCH_TENANTS` for fewer), served from a bare git remote by the release binary with its
//! default pool, twice in one run: alone (the baseline), then with 64 clients sending requests that
//! each read the database, for the whole run. Each time: how long until the platform reports
//! Synced, how many tenants were left in `Error`, how many invitations were still to issue when
//! SIGTERM was sent right after, and how long the process took to exit.

#[path = "common/serve.rs"]
mod serve;
#[path = "common/synthetic.rs"]
mod synthetic;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const TOKEN: &str = "bench-operator-token";
const CLIENTS: usize = 64;

struct Outcome {
    synced: Duration,
    errors: u64,
    to_invite: i64,
    exit: Duration,
    requests: u64,
}

fn get(url: &str) -> serde_json::Value {
    ureq::get(url)
        .set("Authorization", &format!("Bearer {TOKEN}"))
        .timeout(Duration::from_secs(30))
        .call()
        .map_or(serde_json::Value::Null, |r| r.into_json().unwrap_or_default())
}

async fn run(server: &str, bare: &Path, work: &Path, load: bool) -> Outcome {
    let admin = sqlx::PgPool::connect(&format!("{server}/postgres")).await.expect("server");
    sqlx::query("DROP DATABASE IF EXISTS gatehouse_bench_busy WITH (FORCE)").execute(&admin).await.expect("drop");
    let database_url = format!("{server}/gatehouse_bench_busy");
    let cache = work.join(if load { "cache-load" } else { "cache-alone" });
    let (mut child, base) = serve::start(
        &["--repo", &bare.display().to_string(), "--interval", "600s", "--cache-dir", &cache.display().to_string()],
        &[("DATABASE_URL", &database_url), ("GATEHOUSE_OPERATOR_TOKEN", TOKEN)],
    );
    let started = Instant::now();
    let (stop, requests) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
    let clients: Vec<_> = (0..if load { CLIENTS } else { 0 })
        .map(|i| {
            let (stop, requests, base) = (stop.clone(), requests.clone(), base.clone());
            std::thread::spawn(move || {
                let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(30)).build();
                while !stop.load(Ordering::Relaxed) {
                    let url = format!("{base}/v1/tenants?limit=50&prefix=t{:02}", i % 100);
                    let _ = agent.get(&url).set("Authorization", &format!("Bearer {TOKEN}")).call();
                    requests.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let status = loop {
        let status = get(&format!("{base}/v1/sync/status"));
        if status["state"] == "Synced" || status["counts"]["Error"].as_u64().unwrap_or(0) > 0 {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(1200), "the first pass did not finish: {status}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let synced = started.elapsed();
    let pool = sqlx::PgPool::connect(&database_url).await.expect("database");
    let to_invite: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM users WHERE status = 'invited') - (SELECT count(*) FROM email_outbox)",
    )
    .fetch_one(&pool)
    .await
    .expect("count");
    pool.close().await;
    let signalled = Instant::now();
    std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    let _ = child.wait();
    let exit = signalled.elapsed();
    stop.store(true, Ordering::Relaxed);
    clients.into_iter().for_each(|c| {
        let _ = c.join();
    });
    Outcome {
        synced,
        errors: status["counts"]["Error"].as_u64().unwrap_or(0),
        to_invite,
        exit,
        requests: requests.load(Ordering::Relaxed),
    }
}

#[tokio::main]
async fn main() {
    let tenants: usize = std::env::var("GATEHOUSE_BENCH_TENANTS").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let server =
        std::env::var("GATEHOUSE_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let work = tempfile::tempdir().expect("temp");
    let (repo_dir, bare_dir) = (work.path().join("config"), work.path().join("remote.git"));
    synthetic::generate(&repo_dir, tenants);
    let repo = git2::Repository::open(&repo_dir).expect("work repo");
    git2::Repository::init_bare(&bare_dir).expect("bare remote");
    let head = repo.head().expect("head").name().expect("branch").to_owned();
    let mut origin = repo.remote_anonymous(&bare_dir.display().to_string()).expect("remote");
    origin.push(&[format!("+{head}:{head}")], None).expect("push");

    let alone = run(&server, &bare_dir, work.path(), false).await;
    let busy = run(&server, &bare_dir, work.path(), true).await;
    println!(
        "\n| first pass from a bare remote, {tenants} tenants | to Synced | tenants in Error | invitations still to issue at SIGTERM | SIGTERM → exit | requests served |"
    );
    println!("|---|--:|--:|--:|--:|--:|");
    let busy_label = format!("with {CLIENTS} clients reading");
    for (label, o) in [("baseline: alone", &alone), (busy_label.as_str(), &busy)] {
        println!(
            "| {label} | {:.1} s | {} | {} | {:.2} s | {} |",
            o.synced.as_secs_f64(),
            o.errors,
            o.to_invite,
            o.exit.as_secs_f64(),
            o.requests
        );
    }
}
