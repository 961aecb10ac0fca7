//! Git write-back latency (issue 24): `cargo bench --bench write_back`.
//!
//! On the synthetic repository (20,000 tenants, 200,000 users; `GATEHOUSE_BENCH_TENANTS` for fewer),
//! every tenant saying `sync: { interactiveEdits: writeBack }`, served from a bare git remote by the
//! release binary: 20 times, change one user's role through the API (`PATCH …/users/{email}`) and
//! time the answer, which comes once the commit is pushed and applied (`Gatehouse-Commit`). Beside
//! it, the baseline measured in the same run: `git push` of a one-line commit to the same remote.

#[path = "common/serve.rs"]
mod serve;
#[path = "common/synthetic.rs"]
mod synthetic;

use std::path::Path;
use std::time::{Duration, Instant};

const ROUNDS: usize = 20;
const TOKEN: &str = "bench-operator-token";

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let rank = ((samples.len() as f64 * p).ceil() as usize).clamp(1, samples.len());
    samples[rank - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn get(url: &str) -> serde_json::Value {
    ureq::get(url)
        .set("Authorization", &format!("Bearer {TOKEN}"))
        .call()
        .map_or(serde_json::Value::Null, |r| r.into_json().unwrap_or_default())
}

/// Changes user1's role in tenant `tenant` through the API; the time to the applied answer.
fn change_role(base: &str, tenant: usize, role: &str) -> Duration {
    let url = format!("{base}/v1/tenants/t{tenant:05}/users/user1@t{tenant:05}.example");
    let started = Instant::now();
    let response = ureq::request("PATCH", &url)
        .set("Authorization", &format!("Bearer {TOKEN}"))
        .send_json(serde_json::json!({ "role": role }))
        .unwrap_or_else(|e| match e {
            ureq::Error::Status(code, answer) => {
                panic!("PATCH {url}: {code} {}", answer.into_string().unwrap_or_default())
            }
            other => panic!("PATCH {url}: {other}"),
        });
    let elapsed = started.elapsed();
    assert_eq!(response.status(), 200, "the change was not applied within the wait");
    assert!(response.header("gatehouse-commit").is_some(), "no Gatehouse-Commit in the answer");
    elapsed
}

/// The baseline: `git push` of a one-line commit (on a branch of its own) to `remote`.
fn git_push(work: &git2::Repository, dir: &Path, remote: &Path, round: usize) -> Duration {
    std::fs::write(dir.join("baseline.txt"), format!("round {round}\n")).expect("write");
    let commit = synthetic::commit(work, "one line");
    let started = Instant::now();
    let mut origin = work.remote_anonymous(&remote.display().to_string()).expect("remote");
    origin.push(&[format!("+{commit}:refs/heads/baseline")], None).expect("push");
    started.elapsed()
}

fn main() {
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
    for t in 0..tenants {
        let path = repo_dir.join(format!("tenants/t{t:05}.yaml"));
        let yaml = std::fs::read_to_string(&path).expect("read tenant");
        let written = yaml.replacen("\n  users:\n", "\n  sync: { interactiveEdits: writeBack }\n  users:\n", 1);
        std::fs::write(&path, written).expect("write tenant");
    }
    let work = git2::Repository::open(&repo_dir).expect("work repo");
    synthetic::commit(&work, "write back every tenant");
    git2::Repository::init_bare(&bare_dir).expect("bare remote");
    let head = work.head().expect("head").name().expect("branch").to_owned();
    let mut origin = work.remote_anonymous(&bare_dir.display().to_string()).expect("remote");
    origin.push(&[format!("+{head}:{head}")], None).expect("push");
    // The baseline's commits live in a clone of their own, so the config's branch is left alone.
    let baseline = git2::Repository::init(&baseline_dir).expect("baseline repo");

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let admin = sqlx::PgPool::connect(&format!("{server}/postgres")).await.expect("server");
        sqlx::query("DROP DATABASE IF EXISTS gatehouse_bench_write_back WITH (FORCE)")
            .execute(&admin)
            .await
            .expect("drop");
    });
    let database_url = format!("{server}/gatehouse_bench_write_back");
    let (mut serve, base) = serve::start(
        &[
            "--repo",
            &bare_dir.display().to_string(),
            "--interval",
            "600s",
            "--cache-dir",
            &cache_dir.display().to_string(),
        ],
        &[("DATABASE_URL", &database_url), ("GATEHOUSE_OPERATOR_TOKEN", TOKEN), ("GATEHOUSE_WRITE_BACK_WAIT", "60s")],
    );
    let first = work.head().expect("head").peel_to_commit().expect("commit").id().to_string();
    let started = Instant::now();
    while get(&format!("{base}/v1/sync/status"))["syncedCommit"] != first.as_str() {
        assert!(started.elapsed() < Duration::from_secs(900), "initial sync did not finish");
        std::thread::sleep(Duration::from_millis(100));
    }
    println!("initial sync of {tenants} tenants: {:.1} s", started.elapsed().as_secs_f64());
    // The first write-back clones the remote and validates the whole repository once.
    let warm = change_role(&base, tenants - 1, "user");
    println!("first write-back (clone and first validation): {}", ms(warm));

    let (mut changes, mut pushes) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let tenant = (round * 7919 + 13) % (tenants - 1);
        // user1 is `admin` in the synthetic repository.
        changes.push(change_role(&base, tenant, "user"));
        pushes.push(git_push(&baseline, &baseline_dir, &bare_dir, round));
    }
    let _ = serve.kill();
    let _ = serve.wait();

    let (p50, p95, max) =
        (percentile(&mut changes, 0.5), percentile(&mut changes, 0.95), percentile(&mut changes, 1.0));
    let (b50, b95) = (percentile(&mut pushes, 0.5), percentile(&mut pushes, 0.95));
    println!("\n| {ROUNDS} role changes through the API, {tenants} tenants | p50 | p95 | max | target |");
    println!("|---|--:|--:|--:|---|");
    println!(
        "| change → committed, pushed and applied (direct) | {} | {} | {} | p95 ≤ 1 s |",
        ms(p50),
        ms(p95),
        ms(max)
    );
    println!("| baseline: `git push` of a one-line commit to the same remote | {} | {} | | |", ms(b50), ms(b95));
}
