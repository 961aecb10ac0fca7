//! Authorization decisions: `cargo bench --bench authz`.
//!
//! In one run:
//! (i) `authorize` in this process: nanoseconds per decision over the whole table (every `Action` ×
//!     operator, bootstrap token, auditor, owner/admin/user sessions, a session of another tenant,
//!     sessions waiting for a second factor, a key with each scope, anonymous; tenant resources
//!     also suspended and closed to the application), allow and deny reported apart (a denial
//!     formats its message);
//! (a) the HTTP baseline: a minimal axum handler reading the same POST bodies and answering a fixed
//!     JSON body of the size of (e)'s answers;
//! (e) `POST /access/v1/evaluation` (AuthZEN) from a key with `authz:evaluate`, over 1,000 session
//!     tokens (half `users.list` on the session's tenant, half `users.sessions.end` on one of its
//!     users: owners and admins are allowed, users denied), against the release binary and
//!     PostgreSQL (target ≥ 70 % of (a), p99 ≤ 5 ms);
//! (s) `GET /v1/auth/session` over the same tokens: the session lookup alone, which (e) includes.
//!
//! HTTP load comes from `wrk` in a second process on loopback (`apt-get install wrk`), the same
//! settings for (a), (e) and (s): 2 threads, 64 connections, `GATEHOUSE_BENCH_SECONDS` (10) each.
//! `GATEHOUSE_BENCH_TENANTS` (2,000 tenants of 10 users) and `GATEHOUSE_BENCH_SESSIONS` (200,000 live
//! sessions) size the database.

#[path = "common/serve.rs"]
mod serve;
#[path = "common/synthetic.rs"]
mod synthetic;
#[path = "common/wrk.rs"]
mod wrk;

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use gatehouse::authz::{self, Action, Actor, Decision, KnownTenant, PlatformActor, PlatformVia, Resource, TenantFacts};
use gatehouse::delivery::{Principal, ScopeSet};
use gatehouse::identity::token::{self, TokenKind};
use gatehouse::model::SessionView;
use gatehouse::model::{Pending, PlatformRole, Role, Scope};
use wrk::Load;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const TOKEN: &str = "bench-operator-token";
const APP: &str = "bench-app";

// ---- (i) `authorize` in process ----

fn session(tenant: &str, role: Role, pending: Option<Pending>) -> Actor {
    let now = chrono::Utc::now();
    Actor::User(SessionView {
        access_hash: Vec::new(),
        id: uuid::Uuid::nil(),
        user_id: uuid::Uuid::nil(),
        tenant_id: uuid::Uuid::nil(),
        tenant: tenant.into(),
        email: format!("{role}@{tenant}.example"),
        name: None,
        role,
        pending,
        created_at: now,
        rotated_at: now,
        last_seen_at: now,
        expires_at: now,
        client_id: None,
    })
}

fn platform(role: PlatformRole) -> Actor {
    Actor::Platform(PlatformActor {
        role,
        name: "alice@corp.example".into(),
        via: PlatformVia::IdentityProvider {
            issuer: "https://idp.example".into(),
            subject: "alice".into(),
            display_name: None,
        },
    })
}

/// Every kind of caller the table and the invariants tell apart.
fn actors() -> Vec<Actor> {
    let mut actors = vec![
        platform(PlatformRole::Operator),
        Actor::Platform(PlatformActor::bootstrap()),
        platform(PlatformRole::Auditor),
        session("acme", Role::Owner, None),
        session("acme", Role::Admin, None),
        session("acme", Role::User, None),
        session("globex", Role::Admin, None),
        session("acme", Role::Admin, Some(Pending::MfaVerify)),
        session("acme", Role::Owner, Some(Pending::MfaEnrol)),
    ];
    for scope in Scope::ALL {
        actors.push(Actor::Application(Principal::detached(APP, "gh_bench", ScopeSet::of_scopes(&[*scope]))));
    }
    actors.push(Actor::Anonymous);
    actors
}

/// The resources each action is tried on: a tenant's (open and active, suspended, closed to the
/// application) where the action is about a tenant, else the one it is about.
fn resources<'a>(action: Action, open: &'a [Box<str>]) -> Vec<Resource<'a>> {
    let tenant = |active: bool, applications: &'a [Box<str>]| TenantFacts {
        name: "acme",
        known: Some(KnownTenant { active, applications }),
    };
    let of_tenant = |make: &dyn Fn(TenantFacts<'a>) -> Resource<'a>| {
        vec![make(tenant(true, open)), make(tenant(false, open)), make(tenant(true, &[]))]
    };
    match action {
        Action::ListUsers => of_tenant(&|t| Resource::of_tenant("users", t)),
        Action::EndUserSessions | Action::ResendInvitation => {
            of_tenant(&|t| Resource::tenant_user("dan@acme.example", t))
        }
        Action::ReadFlags => of_tenant(&|t| Resource::of_tenant("flags", t)),
        Action::EvaluateAccess => of_tenant(&|t| Resource::of_tenant("access decisions", t)),
        Action::ReadOwnSession
        | Action::ManageOwnSessions
        | Action::ChangeOwnPassword
        | Action::EnrolTotp
        | Action::VerifySecondFactor
        | Action::SignOut => vec![Resource::own("their own session")],
        Action::ManageKeys | Action::ManageApps => vec![Resource::application(APP)],
        Action::IntrospectTokens => vec![Resource::platform("tokens")],
        _ => vec![Resource::platform("the platform")],
    }
}

/// Decisions per case for at least `budget`; returns nanoseconds per decision.
fn time(cases: &[(&Actor, Action, Resource<'_>)], budget: Duration) -> f64 {
    let mut decisions = 0u64;
    let started = Instant::now();
    while started.elapsed() < budget {
        for _ in 0..100 {
            for (actor, action, resource) in cases {
                black_box(authz::authorize(black_box(actor), black_box(*action), black_box(resource)));
            }
        }
        decisions += 100 * cases.len() as u64;
    }
    started.elapsed().as_nanos() as f64 / decisions as f64
}

struct InProcess {
    allow: (usize, f64),
    deny: (usize, f64),
    all: (usize, f64),
}

fn in_process() -> InProcess {
    let open: Vec<Box<str>> = vec![APP.into()];
    let actors = actors();
    let mut allow = Vec::new();
    let mut deny = Vec::new();
    let mut all = Vec::new();
    for action in Action::ALL {
        for resource in resources(*action, &open) {
            for actor in &actors {
                let case = (actor, *action, resource);
                match authz::authorize(actor, *action, &resource) {
                    Decision::Allow => allow.push(case),
                    Decision::Deny(_) => deny.push(case),
                }
                all.push(case);
            }
        }
    }
    let budget = Duration::from_secs(1);
    // Warm-up, then each set on its own.
    time(&all, Duration::from_millis(200));
    InProcess {
        allow: (allow.len(), time(&allow, budget)),
        deny: (deny.len(), time(&deny, budget)),
        all: (all.len(), time(&all, budget)),
    }
}

// ---- (a), (e), (s) over HTTP ----

/// A wrk script sending `method` with `headers`, cycling through `bodies` or through bearer `tokens`.
fn cycling(method: &str, headers: &[(&str, &str)], items: &[String], as_body: bool) -> String {
    let list = items.iter().map(|i| format!("'{i}'")).collect::<Vec<_>>().join(",");
    let mut script = format!("local items = {{{list}}}\nlocal n = 0\nwrk.method = \"{method}\"\n");
    for (name, value) in headers {
        script += &format!("wrk.headers[\"{name}\"] = '{value}'\n");
    }
    script += "request = function()\n  n = n % #items + 1\n";
    if as_body {
        script += "  return wrk.format(nil, nil, nil, items[n])\nend\n";
    } else {
        script += "  return wrk.format(nil, nil, {[\"Authorization\"] = 'Bearer ' .. items[n]}, nil)\nend\n";
    }
    script
}

/// A user who has a load session: its token, tenant and email.
struct Holder {
    token: String,
    tenant: String,
    email: String,
}

/// Makes every user active and inserts `count` live sessions: one for each of the first 1,000
/// users (returned, with their tokens), the rest for the size of the table.
async fn insert_sessions(pool: &sqlx::PgPool, count: usize) -> Vec<Holder> {
    sqlx::query("UPDATE users SET status = 'active', activated_at = now()").execute(pool).await.expect("activate");
    let users: Vec<(uuid::Uuid, String, String)> = sqlx::query_as(
        "SELECT u.id, t.name, u.email FROM users u JOIN tenants t ON t.id = u.tenant_id ORDER BY t.name, u.email",
    )
    .fetch_all(pool)
    .await
    .expect("users");
    let mut holders = Vec::new();
    for chunk in 0..count.div_ceil(50_000) {
        let n = 50_000.min(count - chunk * 50_000);
        let issued: Vec<_> = (0..n).map(|_| token::issue(TokenKind::Access)).collect();
        let access: Vec<&[u8]> = issued.iter().map(|t| &t.hash[..]).collect();
        let refresh: Vec<Vec<u8>> = (0..n).map(|_| token::issue(TokenKind::Refresh).hash).collect();
        let ids: Vec<uuid::Uuid> = (0..n).map(|_| uuid::Uuid::now_v7()).collect();
        let owners: Vec<uuid::Uuid> = (0..n).map(|i| users[(chunk * 50_000 + i) % users.len()].0).collect();
        sqlx::query(
            "INSERT INTO sessions (id, user_id, tenant_id, access_hash, refresh_hash, expires_at)
             SELECT s.id, u.id, u.tenant_id, s.access, s.refresh, now() + interval '12 hours'
               FROM UNNEST($1::uuid[], $2::bytea[], $3::bytea[], $4::uuid[]) AS s(id, access, refresh, user_id)
               JOIN users u ON u.id = s.user_id",
        )
        .bind(&ids)
        .bind(&access)
        .bind(&refresh)
        .bind(&owners)
        .execute(pool)
        .await
        .expect("insert sessions");
        if holders.is_empty() {
            holders = issued
                .into_iter()
                .zip(&users)
                .take(1000)
                .map(|(t, (_, tenant, email))| Holder { token: t.token, tenant: tenant.clone(), email: email.clone() })
                .collect();
        }
    }
    // As autovacuum would after a bulk load: the planner needs the table's size.
    sqlx::query("ANALYZE").execute(pool).await.expect("analyze");
    holders
}

/// The AuthZEN request of load session `i`.
fn evaluation_body(i: usize, holder: &Holder, users_per_tenant: usize) -> String {
    let subject = format!(r#"{{"type":"session","id":"{}"}}"#, holder.token);
    if i.is_multiple_of(2) {
        format!(
            r#"{{"subject":{subject},"action":{{"name":"users.list"}},"resource":{{"type":"tenant","id":"{}"}}}}"#,
            holder.tenant
        )
    } else {
        // The next user of the same tenant (synthetic emails are `user<n>@<tenant>.example`).
        let (local, domain) = holder.email.split_once('@').expect("email");
        let n: usize = local.trim_start_matches("user").parse().expect("synthetic email");
        let email = format!("user{}@{domain}", (n + 1) % users_per_tenant);
        format!(
            r#"{{"subject":{subject},"action":{{"name":"users.sessions.end"}},"resource":{{"type":"user","id":"{email}","properties":{{"tenant":"{}"}}}}}}"#,
            holder.tenant
        )
    }
}

fn wrk(url: &str, script: &str, seconds: u64, dir: &Path, name: &str) -> Load {
    wrk::finish(wrk::start(url, 2, 64, seconds, script, dir, name))
}

#[tokio::main]
async fn main() {
    let env = |name: &str, default: usize| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let (tenants, sessions) = (env("GATEHOUSE_BENCH_TENANTS", 2_000), env("GATEHOUSE_BENCH_SESSIONS", 200_000));
    let seconds = env("GATEHOUSE_BENCH_SECONDS", 10) as u64;

    let decisions = tokio::task::spawn_blocking(in_process).await.expect("in-process bench");

    let server =
        std::env::var("GATEHOUSE_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let work_dir = tempfile::tempdir().expect("temp");
    let repo = work_dir.path().join("config");
    synthetic::generate(&repo, tenants);
    synthetic::open_to_application_with(&repo, tenants, &["flags:read", "authz:evaluate"]);
    let admin = sqlx::PgPool::connect(&format!("{server}/postgres")).await.expect("server");
    sqlx::query("DROP DATABASE IF EXISTS gatehouse_bench_authz WITH (FORCE)").execute(&admin).await.expect("drop");
    let database_url = format!("{server}/gatehouse_bench_authz");
    let pool = gatehouse::store::connect(&database_url).await.expect("create + migrate");
    let validated = gatehouse::config::load_repo(&repo).expect("load repo");
    gatehouse::reconcile::apply(&pool, &validated, Default::default(), None).await.expect("apply");
    let holders = insert_sessions(&pool, sessions).await;
    println!("{tenants} tenants, {} active users, {sessions} live sessions", tenants * synthetic::USERS_PER_TENANT);

    let (mut child, base) = serve::start(
        &["--repo", &repo.display().to_string(), "--interval", "600s"],
        &[
            ("DATABASE_URL", &database_url),
            ("GATEHOUSE_OPERATOR_TOKEN", TOKEN),
            ("GATEHOUSE_ENCRYPTION_KEY", "bench:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="),
        ],
    );
    let ready = Instant::now();
    while ureq::get(&format!("{base}/readyz")).call().is_err() {
        assert!(ready.elapsed() < Duration::from_secs(600), "serve never became ready");
        std::thread::sleep(Duration::from_millis(100));
    }
    let key: serde_json::Value = ureq::post(&format!("{base}/v1/apps/{APP}/keys"))
        .set("Authorization", &format!("Bearer {TOKEN}"))
        .send_json(serde_json::json!({ "scopes": ["authz:evaluate"] }))
        .expect("issue an authz:evaluate key")
        .into_json()
        .expect("json");
    let secret = key["secret"].as_str().expect("secret").to_owned();

    // Every body once, before the load: each answers 200 with a decision; count the allowed ones.
    let bodies: Vec<String> =
        holders.iter().enumerate().map(|(i, h)| evaluation_body(i, h, synthetic::USERS_PER_TENANT)).collect();
    let evaluation_url = format!("{base}/access/v1/evaluation");
    let (mut allowed, mut answer_bytes) = (0, 0);
    for body in &bodies {
        let answer = ureq::post(&evaluation_url)
            .set("Authorization", &format!("Bearer {secret}"))
            .set("Content-Type", "application/json")
            .send_string(body)
            .unwrap_or_else(|e| panic!("evaluation of {body}: {e}"))
            .into_string()
            .expect("answer");
        let decision: serde_json::Value = serde_json::from_str(&answer).expect("json answer");
        allowed += usize::from(decision["decision"] == serde_json::Value::Bool(true));
        answer_bytes += answer.len();
    }
    let answer_size = answer_bytes / bodies.len();

    // (a) the baseline: reads the body, answers a fixed JSON body of the same size, on its own port.
    let empty = r#"{"decision":true,"context":{"pad":""}}"#.len();
    let pad = "x".repeat(answer_size.saturating_sub(empty));
    let fixed = axum::body::Bytes::from(format!(r#"{{"decision":true,"context":{{"pad":"{pad}"}}}}"#));
    let baseline = axum::Router::new().route(
        "/baseline",
        axum::routing::post(move |_body: axum::body::Bytes| {
            std::future::ready(([(axum::http::header::CONTENT_TYPE, "application/json")], fixed.clone()))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let baseline_url = format!("http://{}/baseline", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, baseline).await });

    let bearer = format!("Bearer {secret}");
    let headers = [("Authorization", bearer.as_str()), ("Content-Type", "application/json")];
    let evaluation_script = cycling("POST", &headers, &bodies, true);
    let tokens: Vec<String> = holders.iter().map(|h| h.token.clone()).collect();
    let dir = work_dir.path();
    let a = wrk(&baseline_url, &evaluation_script, seconds, dir, "baseline");
    let e = wrk(&evaluation_url, &evaluation_script, seconds, dir, "evaluation");
    let s = wrk(&format!("{base}/v1/auth/session"), &cycling("GET", &[], &tokens, false), seconds, dir, "session");
    let _ = (child.kill(), child.wait());
    for (name, load) in [("a", &a), ("e", &e), ("s", &s)] {
        if load.errors {
            println!("({name}) had errors or timeouts (above): its figures are void");
        }
    }

    println!("\n| authorize, in process | decisions | ns per decision |");
    println!("|---|--:|--:|");
    let (actions, actors) = (Action::ALL.len(), actors().len());
    println!("| (i) allowed | {} | {:.1} |", decisions.allow.0, decisions.allow.1);
    println!("| (i) denied (message built) | {} | {:.1} |", decisions.deny.0, decisions.deny.1);
    println!(
        "| (i) whole table: {actions} actions × {actors} actors × their resources | {} | {:.1} |",
        decisions.all.0, decisions.all.1
    );

    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    println!(
        "\n| wrk -t2 -c64 -d{seconds}s, loopback, {cores} cores; {allowed} of {} bodies allowed, answers ~{answer_size} B | req/s | % of (a) | p99 | target |",
        bodies.len()
    );
    println!("|---|--:|--:|--:|---|");
    let row = |name: &str, load: &Load, target: &str| {
        println!(
            "| {name} | {:.0} | {:.0} % | {:.2} ms | {target} |",
            load.requests_per_second,
            100.0 * load.requests_per_second / a.requests_per_second,
            load.p99_ms
        );
    };
    row("(a) baseline: minimal axum handler, same bodies, fixed JSON answer", &a, "");
    row("(e) POST /access/v1/evaluation", &e, "≥ 70 % of (a), p99 ≤ 5 ms");
    row("(s) GET /v1/auth/session, same sessions (the lookup (e) includes)", &s, "");
}
