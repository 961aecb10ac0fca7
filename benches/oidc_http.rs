//! Sign-in through the login page and the OpenID provider: `cargo bench --bench oidc_http`.
//!
//! A synthetic platform (`GATEHOUSE_BENCH_TENANTS`, default 200 tenants of 10 users, all with a
//! password), every tenant open to the OIDC client `bench-app`, served by the release binary; load
//! from `wrk` in another process on loopback (`apt-get install wrk`). In one run:
//! (r) raw argon2id verifications per second with the same parameters, one thread per core, in
//!     this process: the ceiling of any password sign-in;
//! (l) `POST /v1/auth/login` (the JSON API) and (p) `POST /login` (the page's password step), each
//!     wrk -c16 over 1,000 users (target ≥ 95 % of (r)), with where the CPU went: the serve process
//!     and PostgreSQL, per sign-in, from /proc, beside the argon2id cost of one verification;
//! (a) a minimal axum handler (the HTTP baseline) and (t) `POST /oauth2/token` code exchanges
//!     (client_secret_basic, RS256 ID token, a new session each), both wrk -c16;
//! (s) ID tokens signed per second, RS256 and EdDSA, one thread and one per core, in this process.

#[path = "common/argon.rs"]
mod argon;
#[path = "common/serve.rs"]
mod serve;
#[path = "common/synthetic.rs"]
mod synthetic;
#[path = "common/wrk.rs"]
mod wrk;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gatehouse::identity::password;
use gatehouse::identity::token;
use gatehouse::model::Alg;
use gatehouse::oidc::keys::SigningKey;
use wrk::finish;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SECONDS: u64 = 10;
const PASSWORD: &str = "bench password of some length";
const CLIENT_SECRET: &str = "gatehouse_cs_bench-secret-of-the-benchmark-client";
const REDIRECT_URI: &str = "http://127.0.0.1:9/callback";
/// Authorization codes made ahead: more than (t) can exchange in `SECONDS`.
const CODES: usize = 200_000;

fn wrk(url: &str, script: &str, dir: &Path, name: &str) -> std::process::Child {
    wrk::start(url, 1, 16, SECONDS, script, dir, name)
}

/// A wrk script posting `bodies` in turn with `content_type` and `headers`.
fn posting(bodies: &[String], content_type: &str, headers: &[(&str, String)]) -> String {
    let list = bodies.iter().map(|b| format!("'{b}'")).collect::<Vec<_>>().join(",");
    let mut script = format!("local items = {{{list}}}\nlocal n = 0\nwrk.method = \"POST\"\n");
    script += &format!("wrk.headers[\"Content-Type\"] = '{content_type}'\n");
    for (name, value) in headers {
        script += &format!("wrk.headers[\"{name}\"] = '{value}'\n");
    }
    script += "request = function()\n  n = n % #items + 1\n  return wrk.format(nil, nil, nil, items[n])\nend\n";
    script
}

/// ID tokens signed per second with `alg`, on `threads` threads, for 3 s.
fn signing(alg: Alg, threads: usize) -> f64 {
    let key = SigningKey::ephemeral(alg);
    let claims = serde_json::json!({
        "iss": "https://gatehouse.example", "sub": "0190a6e4-2c3f-7b7e-9a1d-3f2b8c1d4e5f", "aud": "bench-app",
        "exp": 1_900_000_000, "iat": 1_800_000_000, "auth_time": 1_800_000_000, "nonce": "n-0S6_WzA2Mj",
        "email": "user2@t00001.example", "email_verified": true, "tenant": "t00001", "role": "user",
        "amr": ["pwd"], "acr": "aal1", "sid": "0190a6e4-2c3f-7b7e-9a1d-3f2b8c1d4e60",
    });
    let done = AtomicU64::new(0);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                while started.elapsed() < Duration::from_secs(3) {
                    std::hint::black_box(key.sign(&claims));
                    done.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// CPU seconds used so far by process `pid` and by every PostgreSQL process.
fn cpu(pid: u32) -> (f64, f64) {
    // Linux reports these in clock ticks of 1/100 s (USER_HZ).
    let ticks = 100.0;
    let of = |stat: &str| -> f64 {
        // Fields after the `(comm)`: state is 3rd; utime and stime are the 14th and 15th overall.
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        (field(11) + field(12)) / ticks
    };
    let serve = std::fs::read_to_string(format!("/proc/{pid}/stat")).map(|s| of(&s)).unwrap_or(0.0);
    let mut postgres = 0.0;
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        if stat.contains("(postgres)") {
            postgres += of(&stat);
        }
    }
    (serve, postgres)
}

/// The CSRF token the login page sets in its cookie.
fn minted_csrf(base: &str) -> String {
    let page = ureq::get(&format!("{base}/login")).call().expect("the login page");
    page.all("set-cookie")
        .into_iter()
        .find_map(|c| c.strip_prefix("gatehouse_csrf=").and_then(|v| v.split(';').next()))
        .expect("a CSRF cookie")
        .to_owned()
}

#[tokio::main]
async fn main() {
    let env = |name: &str, default: usize| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let tenants = env("GATEHOUSE_BENCH_TENANTS", 200);
    let server =
        std::env::var("GATEHOUSE_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let work_dir = tempfile::tempdir().expect("temp");
    let repo = work_dir.path().join("config");
    synthetic::generate(&repo, tenants);
    synthetic::open_to_application(&repo, tenants);
    let app = std::fs::read_to_string(repo.join("application-bench.yaml")).expect("application");
    let client = format!("{app}  oidc:\n    clientType: confidential\n    redirectUris: [{REDIRECT_URI}]\n");
    std::fs::write(repo.join("application-bench.yaml"), client).expect("write application");

    let admin = sqlx::PgPool::connect(&format!("{server}/postgres")).await.expect("server");
    sqlx::query("DROP DATABASE IF EXISTS gatehouse_bench_oidc WITH (FORCE)").execute(&admin).await.expect("drop");
    let database_url = format!("{server}/gatehouse_bench_oidc");
    let pool = gatehouse::store::connect(&database_url).await.expect("create + migrate");
    let validated = gatehouse::config::load_repo(&repo).expect("load repo");
    gatehouse::reconcile::apply(&pool, &validated, Default::default(), None).await.expect("apply");
    let phc = password::hash_blocking(PASSWORD);
    sqlx::query("INSERT INTO credentials (user_id, password_hash) SELECT id, $1 FROM users")
        .bind(&phc)
        .execute(&pool)
        .await
        .expect("credentials");
    sqlx::query("UPDATE users SET status = 'active', activated_at = now()").execute(&pool).await.expect("activate");
    sqlx::query(
        "INSERT INTO oidc_client_secrets (application_id, secret_hash) SELECT id, $1 FROM applications WHERE name = 'bench-app'",
    )
    .bind(token::hash(CLIENT_SECRET))
    .execute(&pool)
    .await
    .expect("client secret");
    // Browser sessions of 1,000 users, and the codes their authorizations gave (as the
    // authorization endpoint stores them), ready for the token endpoint.
    sqlx::query(
        "INSERT INTO sessions (id, user_id, tenant_id, access_hash, refresh_hash, expires_at)
         SELECT gen_random_uuid(), id, tenant_id, sha256(('a' || id)::bytea), sha256(('r' || id)::bytea), now() + interval '12 hours'
           FROM users WHERE role <> 'owner' ORDER BY id LIMIT 1000",
    )
    .execute(&pool)
    .await
    .expect("browser sessions");
    for chunk in 0..CODES.div_ceil(50_000) {
        let hashes: Vec<Vec<u8>> =
            (chunk * 50_000..((chunk + 1) * 50_000).min(CODES)).map(|n| token::hash(&code(n))).collect();
        sqlx::query(
            "INSERT INTO oidc_codes (code_hash, application_id, session_id, redirect_uri, scope, nonce, expires_at)
             SELECT c.hash, (SELECT id FROM applications WHERE name = 'bench-app'), s.id, $2, 'openid', 'bench-nonce',
                    now() + interval '1 hour'
               FROM UNNEST($1::bytea[]) WITH ORDINALITY AS c(hash, n)
               JOIN (SELECT id, row_number() OVER (ORDER BY id) AS n FROM sessions) s ON s.n = c.n % 1000 + 1",
        )
        .bind(&hashes)
        .bind(REDIRECT_URI)
        .execute(&pool)
        .await
        .expect("codes");
    }
    sqlx::query("ANALYZE").execute(&pool).await.expect("analyze");
    println!("{tenants} tenants, {} users with a password, {CODES} authorization codes", tenants * 10);

    let (mut child, base) = serve::start(
        &["--repo", &repo.display().to_string(), "--interval", "600s"],
        &[
            ("DATABASE_URL", &database_url),
            ("GATEHOUSE_AUTH_IP_LIMIT", "1000000000"),
            ("GATEHOUSE_ENCRYPTION_KEY", "bench:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="),
        ],
    );
    let ready = Instant::now();
    loop {
        let keys = ureq::get(&format!("{base}/oauth2/jwks")).call().ok().and_then(|r| r.into_string().ok());
        if keys.is_some_and(|k| k.contains("\"kid\"")) {
            break;
        }
        assert!(ready.elapsed() < Duration::from_secs(600), "serve never published its keys");
        std::thread::sleep(Duration::from_millis(100));
    }
    let basic = data_encoding::BASE64.encode(format!("bench-app:{CLIENT_SECRET}").as_bytes());
    let exchange = |n: usize| format!("grant_type=authorization_code&code={}&redirect_uri={REDIRECT_URI}", code(n));
    let probe = ureq::post(&format!("{base}/oauth2/token"))
        .set("Authorization", &format!("Basic {basic}"))
        .set("Content-Type", "application/x-www-form-urlencoded")
        .send_string(&exchange(CODES - 1));
    assert!(probe.is_ok(), "a bench code is refused: {probe:?}");

    let baseline_url = serve::fixed_body(300).await;
    let dir = work_dir.path();
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    // Users of every tenant whose role needs no second factor (u = 2, 4, 5, 7, 8: admins and users).
    let users: Vec<String> =
        (0..1000).map(|i| format!("user{}@t{:05}.example", [2, 4, 5, 7, 8][i % 5], i % tenants)).collect();
    let json_bodies: Vec<String> =
        users.iter().map(|u| format!(r#"{{"email":"{u}","password":"{PASSWORD}"}}"#)).collect();
    let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    // A CSRF token only Gatehouse can mint (issue 25.15): the one the login page sets.
    let csrf = minted_csrf(&base);
    let page_bodies: Vec<String> = users
        .iter()
        .map(|u| format!("csrf={csrf}&step=password&email={}&password={}", encode(u), encode(PASSWORD)))
        .collect();
    let json_script = posting(&json_bodies, "application/json", &[]);
    let page_script =
        posting(&page_bodies, "application/x-www-form-urlencoded", &[("Cookie", format!("gatehouse_csrf={csrf}"))]);
    // Each request takes the next code, once.
    let token_script = format!(
        "local n = 0\nwrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = 'application/x-www-form-urlencoded'\n\
         wrk.headers[\"Authorization\"] = 'Basic {basic}'\n\
         request = function()\n  n = n + 1\n  return wrk.format(nil, nil, nil, \
         'grant_type=authorization_code&code=gatehouse_ac_bench' .. n .. '&redirect_uri={REDIRECT_URI}')\nend\n"
    );

    let raw = tokio::task::spawn_blocking(move || argon::verifications_per_second(PASSWORD, cores, SECONDS))
        .await
        .expect("raw argon2");
    let measured = |name: &'static str, url: String, script: String| {
        let before = cpu(child.id());
        let load = finish(wrk(&url, &script, dir, name));
        let after = cpu(child.id());
        (load, after.0 - before.0, after.1 - before.1)
    };
    let (api, api_serve, api_pg) = measured("api", format!("{base}/v1/auth/login"), json_script);
    let (page, page_serve, page_pg) = measured("page", format!("{base}/login"), page_script);
    let (tokens, token_serve, token_pg) = measured("token", format!("{base}/oauth2/token"), token_script);
    let baseline = finish(wrk(&baseline_url, "wrk.method = \"GET\"\n", dir, "baseline"));
    let _ = (child.kill(), child.wait());
    for (name, load) in [("l", &api), ("p", &page), ("t", &tokens), ("a", &baseline)] {
        if load.errors {
            println!("({name}) had errors or timeouts (above): its figures are void");
        }
    }
    let signs: Vec<(Alg, f64, f64)> =
        [Alg::RS256, Alg::EdDSA].into_iter().map(|alg| (alg, signing(alg, 1), signing(alg, cores))).collect();

    println!("\n| wrk -t1 -c16 -d{SECONDS}s, loopback, {cores} cores | per s | vs | p99 | target |");
    println!("|---|--:|--:|--:|---|");
    println!("| (r) raw argon2id verifications, {cores} threads, no HTTP | {raw:.1} | 100 % | | |");
    for (label, load) in [("(l) POST /v1/auth/login", &api), ("(p) POST /login, password step", &page)] {
        println!(
            "| {label} | {:.1} | {:.0} % of (r) | {:.0} ms | ≥ 95 % of (r) |",
            load.requests_per_second,
            100.0 * load.requests_per_second / raw,
            load.p99_ms
        );
    }
    println!(
        "| (a) baseline: minimal axum handler | {:.0} | 100 % | {:.2} ms | |",
        baseline.requests_per_second, baseline.p99_ms
    );
    println!(
        "| (t) POST /oauth2/token, code exchanges | {:.0} | {:.1} % of (a) | {:.2} ms | |",
        tokens.requests_per_second,
        100.0 * tokens.requests_per_second / baseline.requests_per_second,
        tokens.p99_ms
    );
    for (alg, one, all) in &signs {
        println!("| (s) {} ID tokens signed, 1 thread / {cores} threads | {one:.0} / {all:.0} | | | |", alg.as_str());
    }
    // Where a sign-in's CPU goes: one argon2id verification costs `cores / raw` CPU seconds.
    let argon_ms = 1000.0 * cores as f64 / raw;
    println!("\n| CPU per request, ms | serve process | of which argon2id | PostgreSQL | total |");
    println!("|---|--:|--:|--:|--:|");
    let count = |load: &wrk::Load| (load.requests_per_second * SECONDS as f64).max(1.0);
    for (label, load, serve_s, pg_s, argon) in [
        ("(l) JSON sign-in", &api, api_serve, api_pg, argon_ms),
        ("(p) page sign-in", &page, page_serve, page_pg, argon_ms),
        ("(t) code exchange", &tokens, token_serve, token_pg, 0.0),
    ] {
        let n = count(load);
        let (serve_ms, pg_ms) = (1000.0 * serve_s / n, 1000.0 * pg_s / n);
        println!("| {label} | {serve_ms:.2} | {argon:.2} | {pg_ms:.2} | {:.2} |", serve_ms + pg_ms);
    }
}

fn code(n: usize) -> String {
    format!("gatehouse_ac_bench{n}")
}
