//! Sign-in and session throughput: `cargo bench --bench identity_http`.
//!
//! A synthetic platform (`GATEHOUSE_BENCH_TENANTS`, default 2,000 tenants of 10 users, all with a
//! password) and 200,000 live sessions (`GATEHOUSE_BENCH_SESSIONS`), served by the release binary.
//! Load comes from `wrk` in other processes on loopback (`apt-get install wrk`). In one run:
//! (r) raw argon2id verifications per second with the same parameters, one thread per core, in
//!     this process: the ceiling of sign-in;
//! (l) `POST /v1/auth/login` with wrk -c16 over 1,000 users (target ≥ 90 % of (r));
//! (a) a minimal axum handler (the HTTP baseline) and (s) `GET /v1/auth/session` over 1,000
//!     session tokens, both wrk -c64 (target p99 ≤ 5 ms);
//! (m) (s) again while (l) runs at the same time, saturating the hashing pool (target p99 ≤ 20 ms).

#[path = "common/argon.rs"]
mod argon;
#[path = "common/serve.rs"]
mod serve;
#[path = "common/synthetic.rs"]
mod synthetic;
#[path = "common/wrk.rs"]
mod wrk;

use std::path::Path;
use std::time::{Duration, Instant};

use gatehouse::identity::password;
use gatehouse::identity::token::{self, TokenKind};
use wrk::finish;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SECONDS: u64 = 10;
const PASSWORD: &str = "bench password of some length";

fn wrk(url: &str, connections: u32, script: &str, dir: &Path, name: &str) -> std::process::Child {
    wrk::start(url, 1, connections, SECONDS, script, dir, name)
}

/// A wrk script that cycles through `bodies` or `tokens`.
fn cycling(method: &str, items: &[String], as_body: bool) -> String {
    let list = items.iter().map(|i| format!("'{i}'")).collect::<Vec<_>>().join(",");
    let mut script = format!("local items = {{{list}}}\nlocal n = 0\nwrk.method = \"{method}\"\n");
    if as_body {
        script += "wrk.headers[\"Content-Type\"] = 'application/json'\n";
        script += "request = function()\n  n = n % #items + 1\n  return wrk.format(nil, nil, nil, items[n])\nend\n";
    } else {
        script += "request = function()\n  n = n % #items + 1\n  return wrk.format(nil, nil, {[\"Authorization\"] = 'Bearer ' .. items[n]}, nil)\nend\n";
    }
    script
}

#[tokio::main]
async fn main() {
    let env = |name: &str, default: usize| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let (tenants, sessions) = (env("GATEHOUSE_BENCH_TENANTS", 2_000), env("GATEHOUSE_BENCH_SESSIONS", 200_000));
    let server =
        std::env::var("GATEHOUSE_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let work_dir = tempfile::tempdir().expect("temp");
    let repo = work_dir.path().join("config");
    synthetic::generate(&repo, tenants);

    let admin = sqlx::PgPool::connect(&format!("{server}/postgres")).await.expect("server");
    sqlx::query("DROP DATABASE IF EXISTS gatehouse_bench_identity WITH (FORCE)").execute(&admin).await.expect("drop");
    let database_url = format!("{server}/gatehouse_bench_identity");
    let pool = gatehouse::store::connect(&database_url).await.expect("create + migrate");
    let validated = gatehouse::config::load_repo(&repo).expect("load repo");
    gatehouse::reconcile::apply(&pool, &validated, Default::default(), None).await.expect("apply");

    // Every user gets the same password (one hash: the bench measures verification, not set-up).
    let phc = password::hash_blocking(PASSWORD);
    sqlx::query("INSERT INTO credentials (user_id, password_hash) SELECT id, $1 FROM users")
        .bind(&phc)
        .execute(&pool)
        .await
        .expect("credentials");
    sqlx::query("UPDATE users SET status = 'active', activated_at = now()").execute(&pool).await.expect("activate");
    // Live sessions: 1,000 with tokens the load uses, the rest for the size of the table.
    let mut tokens = Vec::new();
    for chunk in 0..sessions.div_ceil(50_000) {
        let n = 50_000.min(sessions - chunk * 50_000);
        let issued: Vec<_> = (0..n).map(|_| token::issue(TokenKind::Access)).collect();
        let access: Vec<&[u8]> = issued.iter().map(|t| &t.hash[..]).collect();
        let refresh: Vec<Vec<u8>> = (0..n).map(|_| token::issue(TokenKind::Refresh).hash).collect();
        let ids: Vec<uuid::Uuid> = (0..n).map(|_| uuid::Uuid::now_v7()).collect();
        sqlx::query(
            "INSERT INTO sessions (id, user_id, tenant_id, access_hash, refresh_hash, expires_at)
             SELECT s.id, u.id, u.tenant_id, s.access, s.refresh, now() + interval '12 hours'
               FROM UNNEST($1::uuid[], $2::bytea[], $3::bytea[]) WITH ORDINALITY AS s(id, access, refresh, n)
               JOIN (SELECT id, tenant_id, row_number() OVER (ORDER BY id) AS n FROM users WHERE role <> 'owner') u
                 ON u.n = (s.n - 1) % (SELECT count(*) FROM users WHERE role <> 'owner') + 1",
        )
        .bind(&ids)
        .bind(&access)
        .bind(&refresh)
        .execute(&pool)
        .await
        .expect("insert sessions");
        if tokens.is_empty() {
            tokens = issued.into_iter().take(1000).map(|t| t.token).collect();
        }
    }
    // As autovacuum would after a bulk load: the planner needs the table's size.
    sqlx::query("ANALYZE").execute(&pool).await.expect("analyze");
    let logins: Vec<String> = (0..1000)
        .map(|i| format!(r#"{{"email":"user{}@t{:05}.example","password":"{PASSWORD}"}}"#, 2 + i % 8, i % tenants))
        .collect();
    println!("{tenants} tenants, {} users with a password, {sessions} live sessions", tenants * 10);

    let (mut child, base) = serve::start(
        &["--repo", &repo.display().to_string(), "--interval", "600s"],
        &[
            ("DATABASE_URL", &database_url),
            ("GATEHOUSE_AUTH_IP_LIMIT", "1000000000"),
            ("GATEHOUSE_ENCRYPTION_KEY", "bench:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="),
        ],
    );
    let ready = Instant::now();
    while ureq::get(&format!("{base}/readyz")).call().is_err() {
        assert!(ready.elapsed() < Duration::from_secs(600), "serve never became ready");
        std::thread::sleep(Duration::from_millis(100));
    }
    let probe =
        ureq::get(&format!("{base}/v1/auth/session")).set("Authorization", &format!("Bearer {}", tokens[0])).call();
    assert!(probe.is_ok(), "a bench session token is refused");

    let baseline_url = serve::fixed_body(300).await;

    let dir = work_dir.path();
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    let session_url = format!("{base}/v1/auth/session");
    let login_url = format!("{base}/v1/auth/login");
    let session_script = cycling("GET", &tokens, false);
    let login_script = cycling("POST", &logins, true);

    let raw = tokio::task::spawn_blocking(move || argon::verifications_per_second(PASSWORD, cores, SECONDS))
        .await
        .expect("raw argon2");
    let login = finish(wrk(&login_url, 16, &login_script, dir, "login"));
    let a = finish(wrk(&baseline_url, 64, "wrk.method = \"GET\"\n", dir, "baseline"));
    let s = finish(wrk(&session_url, 64, &session_script, dir, "session"));
    let busy_logins = wrk(&login_url, 16, &login_script, dir, "login-mixed");
    std::thread::sleep(Duration::from_millis(500));
    let m = finish(wrk(&session_url, 64, &session_script, dir, "session-mixed"));
    let login_mixed = finish(busy_logins);
    let _ = (child.kill(), child.wait());
    for (name, load) in [("l", &login), ("s", &s), ("m", &m), ("l while m", &login_mixed)] {
        if load.errors {
            println!("({name}) had errors or timeouts (above): its figures are void");
        }
    }

    println!("\n| wrk -t1 -d{SECONDS}s, loopback, {cores} cores | req/s | vs baseline | p99 | target |");
    println!("|---|--:|--:|--:|---|");
    println!("| (r) raw argon2id verifications, {cores} threads, no HTTP | {raw:.1} | 100 % | | |");
    println!(
        "| (l) POST /v1/auth/login, -c16 | {:.1} | {:.0} % of (r) | {:.0} ms | ≥ 90 % of (r) |",
        login.requests_per_second,
        100.0 * login.requests_per_second / raw,
        login.p99_ms
    );
    println!(
        "| (a) baseline: minimal axum handler, -c64 | {:.0} | 100 % | {:.2} ms | |",
        a.requests_per_second, a.p99_ms
    );
    println!(
        "| (s) GET /v1/auth/session, -c64 | {:.0} | {:.0} % of (a) | {:.2} ms | p99 ≤ 5 ms |",
        s.requests_per_second,
        100.0 * s.requests_per_second / a.requests_per_second,
        s.p99_ms
    );
    println!(
        "| (m) (s) while (l) saturates hashing | {:.0} | {:.0} % of (a) | {:.2} ms | p99 ≤ 20 ms |",
        m.requests_per_second,
        100.0 * m.requests_per_second / a.requests_per_second,
        m.p99_ms
    );
    println!(
        "| (l) during (m) | {:.1} | {:.0} % of (r) | {:.0} ms | |",
        login_mixed.requests_per_second,
        100.0 * login_mixed.requests_per_second / raw,
        login_mixed.p99_ms
    );
}
