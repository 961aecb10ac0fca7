//! Merge-to-applied latency of `gatehouse serve`: `cargo bench --bench merge_latency`.
//!
//! On the synthetic repository (20,000 tenants, 200,000 users; `GATEHOUSE_BENCH_TENANTS` for fewer),
//! served from a bare git remote by the release binary: 20 times, commit a one-user change to the
//! remote, deliver a signed webhook, and time until `GET /v1/sync/tenants/{tenant}` reports the new
//! commit as synced. Beside each, the baseline measured in the same run: a bare `git fetch` of the same
//! commit into a separate clone.

#[path = "common/serve.rs"]
mod serve;
#[path = "common/synthetic.rs"]
mod synthetic;

use std::path::Path;
use std::time::{Duration, Instant};

use hmac::Mac;

const ROUNDS: usize = 20;
const SECRET: &str = "bench-webhook-secret";
const TOKEN: &str = "bench-operator-token";

fn push(work: &git2::Repository, remote: &Path) {
    let head = work.head().expect("head").name().expect("branch").to_owned();
    let mut origin = work.remote_anonymous(&remote.display().to_string()).expect("remote");
    origin.push(&[format!("+{head}:{head}")], None).expect("push");
}

/// The baseline: an incremental fetch of the remote's HEAD into an existing clone.
fn git_fetch(clone: &git2::Repository, remote: &Path) -> Duration {
    let started = Instant::now();
    let mut origin = clone.remote_anonymous(&remote.display().to_string()).expect("remote");
    origin.fetch(&["+HEAD:refs/remotes/origin/HEAD"], None, None).expect("fetch");
    started.elapsed()
}

fn get(url: &str) -> serde_json::Value {
    ureq::get(url)
        .set("Authorization", &format!("Bearer {TOKEN}"))
        .call()
        .map_or(serde_json::Value::Null, |r| r.into_json().unwrap_or_default())
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let rank = ((samples.len() as f64 * p).ceil() as usize).clamp(1, samples.len());
    samples[rank - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    let tenants: usize = std::env::var("GATEHOUSE_BENCH_TENANTS").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let server =
        std::env::var("GATEHOUSE_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let work_dir = tempfile::tempdir().expect("temp");
    let (repo_dir, bare_dir, cache_dir, baseline_dir) = (
        work_dir.path().join("config"),
        work_dir.path().join("remote.git"),
        work_dir.path().join("cache"),
        work_dir.path().join("baseline"),
    );
    synthetic::generate(&repo_dir, tenants);
    let work = git2::Repository::open(&repo_dir).expect("work repo");
    git2::Repository::init_bare(&bare_dir).expect("bare remote");
    push(&work, &bare_dir);
    let baseline = git2::Repository::init_bare(&baseline_dir).expect("baseline clone");
    git_fetch(&baseline, &bare_dir);

    let admin = sqlx::PgPool::connect(&format!("{server}/postgres")).await.expect("server");
    sqlx::query("DROP DATABASE IF EXISTS gatehouse_bench_latency WITH (FORCE)").execute(&admin).await.expect("drop");
    let database_url = format!("{server}/gatehouse_bench_latency");

    let (mut serve, base) = serve::start(
        &[
            "--repo",
            &bare_dir.display().to_string(),
            "--interval",
            "600s",
            "--cache-dir",
            &cache_dir.display().to_string(),
        ],
        &[("DATABASE_URL", &database_url), ("GATEHOUSE_WEBHOOK_SECRET", SECRET), ("GATEHOUSE_OPERATOR_TOKEN", TOKEN)],
    );

    let first = work.head().expect("head").peel_to_commit().expect("commit").id().to_string();
    let started = Instant::now();
    while get(&format!("{base}/v1/sync/status"))["syncedCommit"] != first.as_str() {
        assert!(started.elapsed() < Duration::from_secs(600), "initial sync did not finish");
        std::thread::sleep(Duration::from_millis(50));
    }
    println!("initial sync of {tenants} tenants: {:.1} s", started.elapsed().as_secs_f64());

    let (mut latencies, mut fetches) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let tenant = (round * 7919 + 13) % tenants;
        // Every round changes the tenant's file (a commit that changes nothing in the config
        // folder causes no pass, and would never be reported synced).
        let file = repo_dir.join(format!("tenants/t{tenant:05}.yaml"));
        let current = std::fs::read_to_string(&file).expect("read");
        let role = if current == synthetic::tenant_yaml(tenant, "admin") { "user" } else { "admin" };
        std::fs::write(&file, synthetic::tenant_yaml(tenant, role)).expect("edit");
        let commit = synthetic::commit(&work, "one user's role");
        push(&work, &bare_dir);
        fetches.push(git_fetch(&baseline, &bare_dir));

        let body = format!(r#"{{"ref":"refs/heads/main","after":"{commit}"}}"#);
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).expect("key");
        mac.update(body.as_bytes());
        let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        let delivered = Instant::now();
        ureq::post(&format!("{base}/v1/hooks/git"))
            .set("X-Hub-Signature-256", &signature)
            .send_string(&body)
            .expect("webhook");
        let status = format!("{base}/v1/sync/tenants/t{tenant:05}");
        while get(&status)["syncedCommit"] != commit.as_str() {
            assert!(delivered.elapsed() < Duration::from_secs(60), "round {round} never synced");
            std::thread::sleep(Duration::from_millis(5));
        }
        latencies.push(delivered.elapsed());
    }
    let _ = serve.kill();
    let _ = serve.wait();

    let (p50, p95, max) =
        (percentile(&mut latencies, 0.5), percentile(&mut latencies, 0.95), percentile(&mut latencies, 1.0));
    let (f50, f95) = (percentile(&mut fetches, 0.5), percentile(&mut fetches, 0.95));
    println!("\n| {ROUNDS} one-user commits, {tenants} tenants | p50 | p95 | max | target |");
    println!("|---|--:|--:|--:|---|");
    println!("| webhook → tenant reported synced | {} | {} | {} | p95 ≤ 2 s |", ms(p50), ms(p95), ms(max));
    println!("| baseline: bare `git fetch` of the same commit | {} | {} | | |", ms(f50), ms(f95));
}
