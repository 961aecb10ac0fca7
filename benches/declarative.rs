//! Benchmark of the declarative core: `cargo bench --bench declarative`.
//!
//! Generates a synthetic config repository (20,000 tenants, 200,000 users, 100,000 tenant flag
//! overrides; smaller with `GATEHOUSE_BENCH_TENANTS`), then times the release binary doing what
//! users do: `validate`, a cold `apply` into an empty database, a repeated `apply` of the same tree,
//! and an `apply` after one tenant's file changed. In the same run it measures the baseline: a
//! PostgreSQL `COPY` of the same tenant, user and flag rows into the same schema. Peak memory is the
//! largest resident set of any of the commands (GNU time). `validate`, the repeated apply and the
//! one-tenant change run three times each (three different tenants for the last); the median is shown. `GATEHOUSE_BENCH_DIR=/some/dir` keeps the
//! generated repository there, for profiling.

use std::fmt::Write as _;
use std::process::Command;
use std::time::{Duration, Instant};

#[path = "common/synthetic.rs"]
mod synthetic;

use synthetic::{FLAGS_PER_TENANT, PLAN_FLAGS, ROLES, USERS_PER_TENANT, commit, generate, override_value, tenant_yaml};

struct Run {
    elapsed: Duration,
    max_rss_kib: u64,
}

/// Runs the release binary under GNU time and returns wall time and peak resident memory.
fn run(args: &[&str], database_url: &str, expect_code: i32) -> Run {
    let report = tempfile::NamedTempFile::new().expect("temp file");
    let started = Instant::now();
    let output = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(report.path())
        .arg(env!("CARGO_BIN_EXE_gatehouse"))
        .args(args)
        .env("DATABASE_URL", database_url)
        .env("RUST_LOG", "warn")
        .output()
        .expect("gatehouse runs");
    let elapsed = started.elapsed();
    assert_eq!(
        output.status.code(),
        Some(expect_code),
        "gatehouse {args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let max_rss_kib = std::fs::read_to_string(report.path()).unwrap_or_default().trim().parse().unwrap_or(0);
    Run { elapsed, max_rss_kib }
}

async fn fresh_database(server: &str, name: &str) -> (String, sqlx::PgPool) {
    let admin = sqlx::PgPool::connect(&format!("{server}/postgres")).await.expect("server");
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&admin).await.expect("drop");
    let url = format!("{server}/{name}");
    let pool = gatehouse::store::connect(&url).await.expect("create + migrate");
    (url, pool)
}

/// COPY of the same tenant, user and flag rows (plans first, for the foreign key) into the same schema.
async fn copy_baseline(pool: &sqlx::PgPool, tenants: usize) -> Duration {
    let mut conn = pool.acquire().await.expect("conn");
    let plan_ids: Vec<uuid::Uuid> = (0..3).map(|_| uuid::Uuid::now_v7()).collect();
    for (i, plan) in ["free", "pro", "enterprise"].iter().enumerate() {
        sqlx::query("INSERT INTO plans (id, name) VALUES ($1, $2)")
            .bind(plan_ids[i])
            .bind(plan)
            .execute(&mut *conn)
            .await
            .expect("plan");
    }
    let (mut t_rows, mut u_rows, mut f_rows) = (String::new(), String::new(), String::new());
    for t in 0..tenants {
        let id = uuid::Uuid::now_v7();
        let _ = writeln!(t_rows, "{id}\tt{t:05}\tTenant {t}\t{}\tactive\tgit", plan_ids[t % 3]);
        for u in 0..USERS_PER_TENANT {
            let role = if u == 0 {
                "owner"
            } else if u == 1 {
                "admin"
            } else {
                ROLES[u % 3]
            };
            let _ = writeln!(u_rows, "{}\t{id}\tuser{u}@t{t:05}.example\t{role}\tinvited\tgit", uuid::Uuid::now_v7());
        }
        for (f, (key, _)) in PLAN_FLAGS.iter().enumerate().take(FLAGS_PER_TENANT) {
            let _ = writeln!(f_rows, "{}\t{id}\t{key}\t{}\tgit", uuid::Uuid::now_v7(), override_value(t, f));
        }
    }
    let started = Instant::now();
    let mut tx = pool.begin().await.expect("begin");
    // The same footing as apply: the drift triggers see the reconciler's mark and do nothing.
    sqlx::query("SET LOCAL gatehouse.reconciler = 'on'").execute(&mut *tx).await.expect("mark");
    for (statement, rows) in [
        ("COPY tenants (id, name, display_name, plan_id, status, managed_by) FROM STDIN", &t_rows),
        ("COPY users (id, tenant_id, email, role, status, managed_by) FROM STDIN", &u_rows),
        ("COPY tenant_flags (id, tenant_id, key, value, managed_by) FROM STDIN", &f_rows),
    ] {
        let mut copy = tx.copy_in_raw(statement).await.expect("copy");
        copy.send(rows.as_bytes()).await.expect("send");
        copy.finish().await.expect("finish");
    }
    tx.commit().await.expect("commit");
    started.elapsed()
}

/// The run with the median time (its own peak memory kept with it).
fn median(mut runs: Vec<Run>) -> Run {
    runs.sort_by_key(|r| r.elapsed);
    runs.swap_remove(runs.len() / 2)
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

#[tokio::main]
async fn main() {
    let tenants: usize = std::env::var("GATEHOUSE_BENCH_TENANTS").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let server =
        std::env::var("GATEHOUSE_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let work = tempfile::tempdir().expect("temp dir");
    // GATEHOUSE_BENCH_DIR keeps the generated repository there, for profiling.
    let repo_dir = std::env::var_os("GATEHOUSE_BENCH_DIR").map_or_else(|| work.path().join("config"), Into::into);
    let _ = std::fs::remove_dir_all(&repo_dir);
    let started = Instant::now();
    generate(&repo_dir, tenants);
    let repo = repo_dir.display().to_string();
    println!(
        "synthetic repo: {tenants} tenants, {} users, {} flag overrides, generated in {}",
        tenants * USERS_PER_TENANT,
        tenants * FLAGS_PER_TENANT,
        secs(started.elapsed())
    );

    let (_, baseline_pool) = fresh_database(&server, "gatehouse_bench_copy").await;
    let baseline = copy_baseline(&baseline_pool, tenants).await;
    baseline_pool.close().await;

    let (url, pool) = fresh_database(&server, "gatehouse_bench").await;
    let validate = median((0..3).map(|_| run(&["validate", &repo], &url, 0)).collect());
    let cold = run(&["apply", &repo], &url, 0);
    // Let autovacuum finish with the bulk load, as it would long before the next merge.
    sqlx::query("VACUUM ANALYZE").execute(&pool).await.expect("vacuum");
    let repeated = median((0..3).map(|_| run(&["apply", &repo], &url, 0)).collect());
    let git = git2::Repository::open(&repo_dir).expect("repo");
    let mut one_change = Vec::new();
    for tenant in [42, tenants / 2, tenants - 1] {
        std::fs::write(repo_dir.join(format!("tenants/t{tenant:05}.yaml")), tenant_yaml(tenant, "user")).expect("edit");
        let _ = commit(&git, "one user's role");
        one_change.push(run(&["apply", &repo], &url, 0));
        let role: String =
            sqlx::query_scalar(&format!("SELECT role FROM users WHERE email = 'user1@t{tenant:05}.example'"))
                .fetch_one(&pool)
                .await
                .expect("changed user");
        assert_eq!(role, "user", "the one-tenant change was applied");
    }
    let one_change = median(one_change);
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users").fetch_one(&pool).await.expect("count");
    assert_eq!(users as usize, tenants * USERS_PER_TENANT, "cold apply created every user");
    pool.close().await;

    let ratio = |d: Duration| format!("{:.2}x", d.as_secs_f64() / baseline.as_secs_f64());
    let peak = [&validate, &cold, &repeated, &one_change].iter().map(|r| r.max_rss_kib).max().unwrap_or(0);
    println!("\n| step | time | vs COPY baseline | target |");
    println!("|---|--:|--:|---|");
    println!("| COPY baseline (same rows, same schema) | {} | 1.00x | |", secs(baseline));
    println!("| validate | {} | {} | ≤ 3 s |", secs(validate.elapsed), ratio(validate.elapsed));
    println!("| cold apply (empty database) | {} | {} | ≤ 3x baseline |", secs(cold.elapsed), ratio(cold.elapsed));
    println!("| repeated apply (same tree) | {} | {} | ≤ 1 s |", secs(repeated.elapsed), ratio(repeated.elapsed));
    println!(
        "| apply after one tenant changed | {} | {} | ≤ 1 s |",
        secs(one_change.elapsed),
        ratio(one_change.elapsed)
    );
    println!("| peak memory (largest command) | {} MiB | | ≤ 512 MiB |", peak / 1024);
    println!(
        "\nper command peak RSS: validate {} MiB, cold apply {} MiB, repeated {} MiB, one change {} MiB",
        validate.max_rss_kib / 1024,
        cold.max_rss_kib / 1024,
        repeated.max_rss_kib / 1024,
        one_change.max_rss_kib / 1024
    );
}
