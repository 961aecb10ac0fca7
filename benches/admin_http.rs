//! Interactive administration (issue 12.8), against the release binary and a real identity provider
//! (npm `oidc-provider`, `tests/idp`; `npm ci --prefix tests/idp` or `scripts/test` installs it).
//! 20,000 tenants (`GATEHOUSE_BENCH_TENANTS` for fewer) from the synthetic repository; load from
//! `wrk` in a second process (`apt-get install wrk`), 10 s each (`GATEHOUSE_BENCH_SECONDS`):
//! (a) the baseline, a minimal axum handler with a fixed body the size of a tenant page, 16
//! connections; (i) `POST /v1/tenants/{t}/users` by 16 admins of 16 tenants at once, each request a
//! new email; (l) the first page of `GET /v1/tenants` (100 tenants) and (p) a name-prefix search, by
//! an operator signed in at the identity provider, 16 connections. Then, 20 times, the time from
//! suspending a tenant on replica A to the first refusal of its key on replica B.

#[path = "common/serve.rs"]
mod serve;
#[path = "common/synthetic.rs"]
mod synthetic;
#[path = "common/wrk.rs"]
mod wrk;

use std::io::BufRead;
use std::path::Path;
use std::time::{Duration, Instant};

use gatehouse::identity::token::{self, TokenKind};
use serde_json::json;
use wrk::Load;

const TOKEN: &str = "bench-operator-token";
const KEYRING: &str = "bench:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const ADMINS: usize = 16;

fn wrk(url: &str, connections: u32, script: &str, seconds: u64, dir: &Path, name: &str) -> Load {
    wrk::finish(wrk::start(url, 2, connections, seconds, script, dir, name))
}

/// Each request one admin's invitation of a new user into the admin's tenant, round robin.
fn invite_script(admins: &[(String, String)]) -> String {
    let tokens = admins.iter().map(|(t, _)| format!("'{t}'")).collect::<Vec<_>>().join(",");
    let tenants = admins.iter().map(|(_, t)| format!("'{t}'")).collect::<Vec<_>>().join(",");
    format!(
        "local tokens = {{{tokens}}}\nlocal tenants = {{{tenants}}}\nlocal threads = 0\nlocal n = 0\nid = 0\n\
         setup = function(thread)\n  threads = threads + 1\n  thread:set('id', threads)\nend\n\
         request = function()\n  n = n + 1\n  local i = n % #tokens + 1\n\
           local body = '{{\"email\":\"invitee' .. id .. '-' .. n .. '@' .. tenants[i] .. '.example\",\"role\":\"user\"}}'\n\
           return wrk.format('POST', '/v1/tenants/' .. tenants[i] .. '/users', {{['Authorization'] = 'Bearer ' .. tokens[i], ['Content-Type'] = 'application/json'}}, body)\nend\n"
    )
}

fn bearer_script(token: &str) -> String {
    format!("wrk.method = \"GET\"\nwrk.headers[\"Authorization\"] = 'Bearer {token}'\n")
}

/// The admins' tenants take changes of their users through the API (a tenant declared in Git
/// refuses them otherwise, `409 managed_by_git`, which voided this benchmark since issue 12).
fn allow_interactive_edits(repo: &std::path::Path) {
    for t in 0..ADMINS {
        let path = repo.join(format!("tenants/t{t:05}.yaml"));
        let yaml = std::fs::read_to_string(&path).expect("read tenant");
        std::fs::write(&path, yaml.replacen("\nspec:\n", "\nspec:\n  sync: { interactiveEdits: true }\n", 1))
            .expect("write tenant");
    }
}

/// Sessions for the admins (`user1` of the first `ADMINS` tenants): their tokens and tenants.
async fn admin_sessions(pool: &sqlx::PgPool) -> Vec<(String, String)> {
    let mut admins = Vec::new();
    for t in 0..ADMINS {
        let tenant = format!("t{t:05}");
        let issued = token::issue(TokenKind::Access);
        sqlx::query(
            "INSERT INTO sessions (id, user_id, tenant_id, access_hash, refresh_hash, expires_at)
             SELECT $1, u.id, u.tenant_id, $2, $3, now() + interval '12 hours' FROM users u WHERE u.email = $4",
        )
        .bind(uuid::Uuid::now_v7())
        .bind(&issued.hash)
        .bind(token::issue(TokenKind::Refresh).hash)
        .bind(format!("user1@{tenant}.example"))
        .execute(pool)
        .await
        .expect("admin session");
        admins.push((issued.token, tenant));
    }
    admins
}

/// The identity provider of `tests/idp`, and an operator's ID token from it.
fn identity_provider() -> (std::process::Child, String, String) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/idp");
    assert!(
        dir.join("node_modules/oidc-provider").exists(),
        "tests/idp/node_modules is missing: run `npm ci --prefix tests/idp` (scripts/test does)"
    );
    // It runs while its stdin is open (the child keeps it), and its stdout is drained.
    let mut child = std::process::Command::new("node")
        .arg(dir.join("idp.mjs"))
        .current_dir(&dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("node runs tests/idp/idp.mjs");
    let mut lines = std::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let issuer = lines.next().expect("issuer line").expect("line");
    std::thread::spawn(move || lines.map_while(Result::ok).for_each(drop));
    let claims = json!({ "email": "ops@corp.example", "email_verified": true, "groups": ["platform-ops"] });
    let token: serde_json::Value = ureq::post(&format!("{issuer}/_harness/token"))
        .send_json(json!({ "account": "ops", "claims": claims, "ttl": 3600 }))
        .expect("an operator's token")
        .into_json()
        .expect("json");
    (child, issuer, token["id_token"].as_str().expect("id_token").to_owned())
}

fn post(base: &str, path: &str, bearer: &str, body: serde_json::Value) -> u16 {
    match ureq::post(&format!("{base}{path}")).set("Authorization", &format!("Bearer {bearer}")).send_json(body) {
        Ok(response) => response.status(),
        Err(ureq::Error::Status(code, _)) => code,
        Err(error) => panic!("{path}: {error}"),
    }
}

fn flags_status(base: &str, tenant: &str, key: &str) -> u16 {
    match ureq::get(&format!("{base}/v1/tenants/{tenant}/flags")).set("X-API-Key", key).call() {
        Ok(response) => response.status(),
        Err(ureq::Error::Status(code, _)) => code,
        Err(error) => panic!("flags: {error}"),
    }
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
    synthetic::open_to_application(&repo, tenants);
    allow_interactive_edits(&repo);
    let admin = sqlx::PgPool::connect(&format!("{server}/postgres")).await.expect("server");
    sqlx::query("DROP DATABASE IF EXISTS gatehouse_bench_admin WITH (FORCE)").execute(&admin).await.expect("drop");
    let database_url = format!("{server}/gatehouse_bench_admin");
    let pool = gatehouse::store::connect(&database_url).await.expect("create + migrate");
    let started = Instant::now();
    let validated = gatehouse::config::load_repo(&repo).expect("load repo");
    gatehouse::reconcile::apply(&pool, &validated, Default::default(), None).await.expect("apply");
    // Users who signed up long ago: the mail worker has no 200,000 invitations to send beside the load.
    sqlx::query("UPDATE users SET status = 'active', activated_at = now()").execute(&pool).await.expect("activate");
    let admins = admin_sessions(&pool).await;
    sqlx::query("ANALYZE").execute(&pool).await.expect("analyze");
    println!("{tenants} tenants applied in {:.1} s", started.elapsed().as_secs_f64());

    let (mut idp, issuer, operator) = identity_provider();
    let replica_env = [
        ("DATABASE_URL", database_url.as_str()),
        ("GATEHOUSE_OPERATOR_TOKEN", TOKEN),
        ("GATEHOUSE_ENCRYPTION_KEY", KEYRING),
        ("GATEHOUSE_OIDC_ISSUER_URL", issuer.as_str()),
        ("GATEHOUSE_OIDC_AUDIENCE", "gatehouse"),
        ("GATEHOUSE_OIDC_USERNAME_CLAIM", "email"),
        ("GATEHOUSE_OIDC_GROUP_BINDINGS", "platform-ops=operator"),
    ];
    let args = ["--repo", &repo.display().to_string(), "--interval", "600s"];
    let (mut replica_a, a) = serve::start(&args, &replica_env);
    let ready = Instant::now();
    while ureq::get(&format!("{a}/readyz")).call().is_err() {
        assert!(ready.elapsed() < Duration::from_secs(900), "serve never became ready");
        std::thread::sleep(Duration::from_millis(100));
    }

    let first_page = format!("{a}/v1/tenants?limit=100");
    let page = ureq::get(&first_page).set("Authorization", &format!("Bearer {operator}")).call().expect("a page");
    let page_bytes = page.into_string().expect("body").len();
    let baseline_url = serve::fixed_body(page_bytes).await;

    let dir = work_dir.path();
    let a_load = wrk(&baseline_url, 16, "wrk.method = \"GET\"\n", seconds, dir, "baseline");
    let i_load = wrk(&format!("{a}/v1/tenants"), ADMINS as u32, &invite_script(&admins), seconds, dir, "invite");
    let l_load = wrk(&first_page, 16, &bearer_script(&operator), seconds, dir, "list");
    let p_load =
        wrk(&format!("{a}/v1/tenants?prefix=t0123&limit=100"), 16, &bearer_script(&operator), seconds, dir, "prefix");
    for (name, load) in [("i", &i_load), ("l", &l_load), ("p", &p_load)] {
        assert!(!load.errors, "({name}) got error answers: the measurement is void");
    }
    let invited: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE email LIKE 'invitee%'")
        .fetch_one(&pool)
        .await
        .expect("count");

    // Suspension on A → first refusal of the tenant's key on B.
    let (mut replica_b, b) = serve::start(&args, &replica_env);
    let body = json!({ "name": "suspendable", "displayName": "S", "plan": "free", "applications": ["bench-app"], "owner": { "email": "o@suspendable.example" } });
    assert_eq!(post(&a, "/v1/tenants", &operator, body), 201);
    let key: serde_json::Value = ureq::post(&format!("{a}/v1/apps/bench-app/keys"))
        .set("Authorization", &format!("Bearer {operator}"))
        .send_json(json!({ "scopes": ["flags:read"] }))
        .expect("key")
        .into_json()
        .expect("json");
    let key = key["secret"].as_str().expect("secret").to_owned();
    let mut visible = Vec::new();
    for _ in 0..20 {
        let waited = Instant::now();
        while flags_status(&b, "suspendable", &key) != 200 {
            assert!(waited.elapsed() < Duration::from_secs(30), "replica B never served the tenant");
            std::thread::sleep(Duration::from_millis(1));
        }
        let suspended = Instant::now();
        assert_eq!(post(&a, "/v1/tenants/suspendable/suspend", &operator, json!({ "reason": "bench" })), 200);
        while flags_status(&b, "suspendable", &key) != 403 {
            assert!(suspended.elapsed() < Duration::from_secs(30), "the suspension never reached replica B");
        }
        visible.push(suspended.elapsed());
        assert_eq!(post(&a, "/v1/tenants/suspendable/restore", &operator, json!(null)), 200);
    }
    let _ = (replica_a.kill(), replica_b.kill(), idp.kill(), replica_a.wait(), replica_b.wait(), idp.wait());

    let ratio = |load: &Load| 100.0 * load.requests_per_second / a_load.requests_per_second;
    println!("\n| {tenants} tenants, wrk -t2 -d{seconds}s | conns | req/s | % of (a) | p99 | target |");
    println!("|---|--:|--:|--:|--:|---|");
    let row = |name: &str, conns: usize, load: &Load, target: &str| {
        println!(
            "| {name} | {conns} | {:.0} | {:.0} % | {:.2} ms | {target} |",
            load.requests_per_second,
            ratio(load),
            load.p99_ms
        );
    };
    row(&format!("(a) baseline: minimal axum handler, fixed {page_bytes} B body"), 16, &a_load, "");
    row(
        &format!("(i) POST /v1/tenants/{{t}}/users by {ADMINS} admins ({invited} invited)"),
        ADMINS,
        &i_load,
        "p99 ≤ 20 ms",
    );
    row("(l) GET /v1/tenants?limit=100, first page", 16, &l_load, "p99 ≤ 10 ms");
    row("(p) GET /v1/tenants?prefix=t0123&limit=100", 16, &p_load, "p99 ≤ 10 ms");
    visible.sort();
    println!(
        "\nsuspend on replica A → first 403 of its key on replica B (20 rounds): p50 {:.1} ms, max {:.1} ms (target ≤ 1 s)",
        visible[visible.len() / 2].as_secs_f64() * 1000.0,
        visible[visible.len() - 1].as_secs_f64() * 1000.0
    );
}
