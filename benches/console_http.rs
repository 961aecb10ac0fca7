//! The consoles' server render at scale (issue 23's benchmark), against the release binary.
//! 20,000 tenants (`GATEHOUSE_BENCH_TENANTS` for fewer) from the synthetic repository, one of them
//! with 200 users; an operator's platform session (as a sign-in at the identity provider leaves
//! it); load from `wrk` in a second process, 16 connections, 10 s each
//! (`GATEHOUSE_BENCH_SECONDS`): (a) the baseline, a minimal axum handler answering a fixed body the
//! size of the tenant list's first page; (l) `GET /console`, the first page of the tenant list
//! (50 tenants); (p) a name-prefix search; (f) a state and plan filter; (s) a sync-state filter
//! that matches none (the whole list searched); (u) the users of the tenant with 200 users
//! (`/admin/t00000/users`, its first page); (t) an operator's page of one tenant (flags, budget,
//! sync, history).

#[path = "common/serve.rs"]
mod serve;
#[path = "common/synthetic.rs"]
mod synthetic;
#[path = "common/wrk.rs"]
mod wrk;

use std::path::Path;
use std::time::{Duration, Instant};

use gatehouse::identity::token::{self, TokenKind};
use wrk::Load;

const KEYRING: &str = "bench:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn wrk(url: &str, script: &str, seconds: u64, dir: &Path, name: &str) -> Load {
    wrk::finish(wrk::start(url, 2, 16, seconds, script, dir, name))
}

fn cookie_script(cookie: &str) -> String {
    format!("wrk.method = \"GET\"\nwrk.headers[\"Cookie\"] = '{cookie}'\n")
}

/// A platform session of an operator, as `/console/login/callback` opens it; returns its cookie.
async fn operator_session(pool: &sqlx::PgPool) -> String {
    let issued = token::issue(TokenKind::Access);
    sqlx::query(
        "INSERT INTO staff_sessions (id, token_hash, issuer, subject, username, role, expires_at)
         VALUES ($1, $2, 'http://127.0.0.1:9', 'ops', 'ops@corp.example', 'operator', now() + interval '8 hours')",
    )
    .bind(uuid::Uuid::now_v7())
    .bind(token::hash(&issued.token))
    .execute(pool)
    .await
    .expect("a platform session");
    format!("gatehouse_staff={}", issued.token)
}

#[tokio::main]
async fn main() {
    let env = |name: &str, default: usize| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let tenants = env("GATEHOUSE_BENCH_TENANTS", 20_000);
    let seconds = env("GATEHOUSE_BENCH_SECONDS", 10) as u64;
    let server =
        std::env::var("GATEHOUSE_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let work_dir = tempfile::tempdir().expect("temp");
    let repo = work_dir.path().join("config");
    synthetic::generate(&repo, tenants);
    let admin = sqlx::PgPool::connect(&format!("{server}/postgres")).await.expect("server");
    sqlx::query("DROP DATABASE IF EXISTS gatehouse_bench_console WITH (FORCE)").execute(&admin).await.expect("drop");
    let database_url = format!("{server}/gatehouse_bench_console");
    let pool = gatehouse::store::connect(&database_url).await.expect("create + migrate");
    let started = Instant::now();
    let validated = gatehouse::config::load_repo(&repo).expect("load repo");
    gatehouse::reconcile::apply(&pool, &validated, Default::default(), None).await.expect("apply");
    sqlx::query("UPDATE users SET status = 'active', activated_at = now()").execute(&pool).await.expect("activate");
    // The tenant of the users page: 200 users in all (190 more, added through the API's way in).
    sqlx::query(
        "INSERT INTO users (id, tenant_id, email, role, status, activated_at, managed_by)
         SELECT gen_random_uuid(), t.id, 'member' || n || '@t00000.example', 'user', 'active', now(), 'api'
           FROM tenants t, generate_series(1, 190) n WHERE t.name = 't00000'",
    )
    .execute(&pool)
    .await
    .expect("200 users");
    let cookie = operator_session(&pool).await;
    sqlx::query("ANALYZE").execute(&pool).await.expect("analyze");
    println!("{tenants} tenants applied in {:.1} s", started.elapsed().as_secs_f64());

    // Platform staff sign in in a browser only with an identity provider and a client secret; no
    // sign-in happens here (the session above stands for one), so the provider need not answer.
    let replica_env = [
        ("DATABASE_URL", database_url.as_str()),
        ("GATEHOUSE_ENCRYPTION_KEY", KEYRING),
        ("GATEHOUSE_OIDC_ISSUER_URL", "http://127.0.0.1:9"),
        ("GATEHOUSE_OIDC_AUDIENCE", "gatehouse"),
        ("GATEHOUSE_OIDC_GROUP_BINDINGS", "platform-ops=operator"),
        ("GATEHOUSE_OIDC_CLIENT_SECRET", "bench-secret"),
    ];
    let args = ["--repo", &repo.display().to_string(), "--interval", "600s"];
    let (mut replica, base) = serve::start(&args, &replica_env);
    let ready = Instant::now();
    while ureq::get(&format!("{base}/readyz")).call().is_err() {
        assert!(ready.elapsed() < Duration::from_secs(900), "serve never became ready");
        std::thread::sleep(Duration::from_millis(100));
    }
    let page = |path: &str| {
        let answer = ureq::get(&format!("{base}{path}")).set("Cookie", &cookie).call().expect("a console page");
        assert_eq!(answer.status(), 200, "{path}");
        answer.into_string().expect("body")
    };
    let first = page("/console");
    assert!(first.contains(">t00000<") && first.contains("Provision a tenant"), "the operator's tenant list");
    let tenant = page("/console/tenants/t00000");
    assert!(tenant.contains("id=\"history\""), "the tenant's page: {tenant}");
    let users = page("/admin/t00000/users");
    assert!(users.contains("member10@t00000.example"), "the users page: {users}");
    let baseline_url = serve::fixed_body(first.len()).await;

    let dir = work_dir.path();
    let script = cookie_script(&cookie);
    let a_load = wrk(&baseline_url, "wrk.method = \"GET\"\n", seconds, dir, "baseline");
    let l_load = wrk(&format!("{base}/console"), &script, seconds, dir, "list");
    let p_load = wrk(&format!("{base}/console?q=t0123&state=&plan="), &script, seconds, dir, "prefix");
    let f_load = wrk(&format!("{base}/console?q=&state=active&plan=pro"), &script, seconds, dir, "filter");
    let s_load = wrk(&format!("{base}/console?sync=Drifted"), &script, seconds, dir, "sync");
    let u_load = wrk(&format!("{base}/admin/t00000/users"), &script, seconds, dir, "users");
    let t_load = wrk(&format!("{base}/console/tenants/t00000"), &script, seconds, dir, "tenant");
    for (name, load) in [("l", &l_load), ("p", &p_load), ("f", &f_load), ("s", &s_load), ("u", &u_load), ("t", &t_load)]
    {
        assert!(!load.errors, "({name}) got error answers: the measurement is void");
    }
    let _ = (replica.kill(), replica.wait());

    let ratio = |load: &Load| 100.0 * load.requests_per_second / a_load.requests_per_second;
    println!("\n| {tenants} tenants, wrk -t2 -c16 -d{seconds}s | req/s | % of (a) | p99 | target |");
    println!("|---|--:|--:|--:|---|");
    let row = |name: &str, load: &Load, target: &str| {
        println!(
            "| {name} | {:.0} | {:.0} % | {:.2} ms | {target} |",
            load.requests_per_second,
            ratio(load),
            load.p99_ms
        );
    };
    row(&format!("(a) baseline: minimal axum handler, fixed {} B body", first.len()), &a_load, "");
    row("(l) GET /console, the tenant list's first page (50)", &l_load, "p99 ≤ 20 ms");
    row("(p) GET /console?q=t0123, a prefix search", &p_load, "p99 ≤ 20 ms");
    row("(f) GET /console?state=active&plan=pro, a filter", &f_load, "p99 ≤ 20 ms");
    row("(s) GET /console?sync=Drifted, a sync-state filter matching none", &s_load, "p99 ≤ 20 ms");
    row("(u) GET /admin/t00000/users, a tenant of 200 users", &u_load, "p99 ≤ 20 ms");
    row("(t) GET /console/tenants/t00000, a tenant's page", &t_load, "p99 ≤ 20 ms");
}
