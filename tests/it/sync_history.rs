//! Issue 15.4 and 15.7 through the real binary: the history of passes (with reverted drift and who
//! had made it), status counts that include every tenant, `gatehouse status` as a table of every
//! tenant, a failed pass logged as a warning, and offboarding one tenant with
//! `gatehouse sync allow-deletion`.

use std::time::Duration;

use serde_json::Value;

use crate::helpers::{Repo, ServeProcess, Served, TestDb, gatehouse, http, stderr, stdout, within};

const TOKEN: &str = "cli-test-token";

async fn get(serve: &Served, path: &str) -> Value {
    let (code, body) =
        http("GET", format!("{}{path}", serve.base), vec![("authorization", format!("Bearer {TOKEN}"))], vec![]).await;
    assert_eq!(code, 200, "GET {path}: {body}");
    body
}

/// The real `gatehouse` against `serve`, as an operator.
fn cli(serve: &Served, args: &[&str]) -> std::process::Output {
    let mut all = args.to_vec();
    all.extend(["--server", serve.base.as_str()]);
    gatehouse(&all, &[("GATEHOUSE_OPERATOR_TOKEN", TOKEN)])
}

async fn synced(serve: &Served) {
    within(Duration::from_secs(15), "first sync", || async {
        get(serve, "/v1/sync/status").await["state"] == "Synced"
    })
    .await;
}

/// Reconcile passes finished so far, from `/metrics`.
async fn passes(serve: &Served) -> u64 {
    let response = crate::helpers::request("GET", format!("{}/metrics", serve.base), vec![], Vec::new()).await;
    response
        .text
        .lines()
        .find_map(|line| line.strip_prefix("gatehouse_reconcile_duration_seconds_count "))
        .and_then(|count| count.trim().parse().ok())
        .unwrap_or(0)
}

async fn history(serve: &Served) -> Vec<Value> {
    get(serve, "/v1/sync/history").await["passes"].as_array().cloned().unwrap_or_default()
}

fn tenant<'a>(pass: &'a Value, name: &str) -> Option<&'a Value> {
    pass["tenants"].as_array()?.iter().find(|t| t["tenant"] == name)
}

fn sum(counts: &Value) -> u64 {
    counts.as_object().map_or(0, |c| c.values().filter_map(Value::as_u64).sum())
}

// Issue 15.4
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reverted_drift_shows_in_the_history_with_the_field_the_value_and_who_made_it() {
    let (db, repo) = (TestDb::new().await, Repo::example());
    let serve = ServeProcess::start(repo.path(), &db.url, "300ms");
    synced(&serve).await;

    // Someone changes carol's role outside Git, and their tool audits it.
    let mut tx = db.pool.begin().await.expect("tx");
    sqlx::query("UPDATE users SET role = 'user' WHERE email = 'carol@acme.example'")
        .execute(&mut *tx)
        .await
        .expect("drift");
    let entry = gatehouse::store::AuditEntry {
        actor: "dba@corp.example".into(),
        actor_type: "user",
        action: "user.update".into(),
        resource: "tenant/acme/user/carol@acme.example".into(),
        tenant: Some("acme".into()),
        success: true,
        metadata: serde_json::json!({ "role": "user" }),
    };
    gatehouse::store::insert_audit(&mut tx, &[entry]).await.expect("audit");
    tx.commit().await.expect("commit");

    within(Duration::from_secs(10), "the revert recorded", || async {
        history(&serve).await.first().is_some_and(|p| p["healed"] == 1)
    })
    .await;
    assert_eq!(db.text("SELECT role FROM users WHERE email = 'carol@acme.example'").await, "admin");
    let passes_now = history(&serve).await;
    let healing = &passes_now[0];
    assert_eq!(healing["trigger"], "interval");
    assert_eq!(healing["state"], "Synced");
    assert_eq!((healing["created"].as_u64(), healing["updated"].as_u64()), (Some(0), Some(0)));
    let acme = tenant(healing, "acme").expect("acme in the healing pass");
    assert_eq!(acme["outcome"], "applied");
    let drift = &acme["drift"][0];
    assert_eq!(drift["resource"], "tenant/acme/user/carol@acme.example");
    assert_eq!(drift["field"], "role");
    assert_eq!(drift["reverted"], "user", "the live value that was reverted");
    assert_eq!(drift["applied"], "admin");
    assert_eq!(drift["changedBy"], "dba@corp.example", "{drift}");
    assert!(drift["changedAt"].is_string(), "{drift}");

    // The first pass created everything; passes that change nothing are not recorded.
    let first = passes_now.last().expect("the first pass");
    assert_eq!(first["trigger"], "start");
    assert!(first["created"].as_u64().is_some_and(|n| n > 20), "{first}");
    assert!(first["durationMs"].is_number() && first["startedAt"].is_string(), "{first}");
    assert_eq!(passes_now.len(), 2, "{passes_now:#?}");
    let seen = passes(&serve).await;
    within(Duration::from_secs(10), "three more passes", || async { passes(&serve).await >= seen + 3 }).await;
    assert_eq!(history(&serve).await.len(), 2, "quiet passes leave no history");

    // Per tenant: only the passes that touched acme, with only acme's part.
    let acme_history = get(&serve, "/v1/sync/tenants/acme/history").await;
    let entries = acme_history["passes"].as_array().expect("passes");
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["tenants"][0]["drift"][0]["changedBy"], "dba@corp.example");
    assert_eq!(get(&serve, "/v1/sync/tenants/nobody/history").await["passes"], serde_json::json!([]));

    // And on the command line.
    let shown = cli(&serve, &["sync", "history", "--tenant", "acme"]);
    assert_eq!(shown.status.code(), Some(0), "{}", stderr(&shown));
    assert!(
        stdout(&shown).contains(
            "reverted tenant/acme/user/carol@acme.example role: \"user\" back to \"admin\" (changed by dba@corp.example"
        ),
        "{}",
        stdout(&shown)
    );
}

// Issue 15.4: history kept for a configurable number of passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_keeps_only_the_configured_number_of_passes() {
    let (db, repo) = (TestDb::new().await, Repo::example());
    let serve = ServeProcess::start_with(repo.path(), &db.url, "200ms", &[("GATEHOUSE_HISTORY_LIMIT", "2")]);
    synced(&serve).await;
    // Three reverted edits after the first pass: four passes to record, two kept.
    for _ in 0..3 {
        let healing = "SELECT count(*) FROM audit_log WHERE metadata->>'reason' = 'drift'";
        let before = db.count(healing).await;
        db.execute("UPDATE users SET role = 'admin' WHERE email = 'happy@stark.example'").await;
        within(Duration::from_secs(10), "the edit reverted", || async { db.count(healing).await > before }).await;
    }
    within(Duration::from_secs(10), "older passes forgotten", || async {
        db.count("SELECT count(*) FROM sync_passes").await == 2
    })
    .await;
    let kept = history(&serve).await;
    assert_eq!(kept.len(), 2);
    assert!(
        kept.iter().all(|p| p["trigger"] == "interval" && p["healed"] == 1),
        "the first pass was forgotten: {kept:#?}"
    );
}

// Issue 15.4 and 15.7
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_counts_add_up_when_a_tenants_deletion_is_refused_and_the_failure_is_a_warning() {
    let (db, repo) = (TestDb::new().await, Repo::example());
    let serve = ServeProcess::start(repo.path(), &db.url, "200ms");
    synced(&serve).await;
    // A tenant created through the API is in the database too.
    db.execute(
        "INSERT INTO tenants (id, name, display_name, plan_id, status)
         SELECT gen_random_uuid(), 'walk-in', 'Walk-in Ltd', id, 'active' FROM plans WHERE name = 'free'",
    )
    .await;
    repo.remove("tenants/globex.yaml");

    within(Duration::from_secs(10), "globex refused", || async {
        get(&serve, "/v1/sync/tenants/globex").await["state"] == "Error"
    })
    .await;
    let seen = passes(&serve).await;
    within(Duration::from_secs(10), "two more passes", || async { passes(&serve).await >= seen + 2 }).await;
    let status = get(&serve, "/v1/sync/status").await;
    let counts = &status["counts"];
    assert_eq!(db.count("SELECT count(*) FROM tenants").await, 7);
    assert_eq!(sum(counts), 7, "every tenant in the database is counted once: {counts}");
    assert_eq!((counts["Synced"].as_u64(), counts["Error"].as_u64()), (Some(5), Some(1)), "{counts}");
    assert_eq!(counts["Unmanaged"], 1, "{counts}");

    // The refusal is in the history once, not once per pass.
    let refusals: Vec<Value> = history(&serve).await.into_iter().filter(|p| p["refused"] == 1).collect();
    assert_eq!(refusals.len(), 1, "{refusals:#?}");
    let globex = tenant(&refusals[0], "globex").expect("globex");
    assert_eq!(globex["outcome"], "refused");
    assert!(globex["problem"].as_str().is_some_and(|p| p.contains("would delete 4 of 4 users")), "{globex}");
    assert!(globex["problem"].as_str().is_some_and(|p| p.contains("gatehouse sync allow-deletion globex")));

    // A failed pass is a warning naming each failed tenant and its first problem.
    let log = serve.log.lock().expect("log").join("\n");
    let warning = log.lines().find(|l| l.contains("WARN") && l.contains("reconciled with problems")).unwrap_or("");
    assert!(warning.contains("globex: would delete 4 of 4 users"), "{log}");
    assert!(!log.lines().any(|l| l.contains("succeeded=false") && l.contains("INFO")), "{log}");
}

// Issue 15.4
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gatehouse_status_lists_every_tenant_state_in_a_table() {
    let (db, repo) = (TestDb::new().await, Repo::example());
    let serve = ServeProcess::start(repo.path(), &db.url, "200ms");
    synced(&serve).await;
    repo.remove("tenants/globex.yaml");
    db.execute("UPDATE users SET role = 'admin' WHERE email = 'leon@umbrella.example'").await;
    within(Duration::from_secs(10), "globex refused, umbrella drifted", || async {
        let counts = get(&serve, "/v1/sync/status").await["counts"].clone();
        counts["Error"] == 1 && counts["Drifted"] == 1
    })
    .await;

    let output = cli(&serve, &["status"]);
    assert_eq!(output.status.code(), Some(1), "not synced");
    let text = stdout(&output);
    let table: Vec<Vec<&str>> =
        text.lines().skip_while(|l| !l.starts_with("TENANT")).map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(table[0], ["TENANT", "STATE", "VERSION", "LAST", "CHANGE", "PROBLEM"], "{text}");
    let rows: Vec<(&str, &str)> = table[1..].iter().map(|r| (r[0], r[1])).collect();
    assert_eq!(
        rows,
        [
            ("acme", "Synced"),
            ("globex", "Error"),
            ("hooli", "Synced"),
            ("initech", "Synced"),
            ("stark", "Synced"),
            ("umbrella", "Drifted")
        ],
        "{text}"
    );
    let globex = text.lines().find(|l| l.starts_with("globex")).expect("globex row");
    assert!(globex.contains("would delete 4 of 4 users"), "{globex}");
    let umbrella = text.lines().find(|l| l.starts_with("umbrella")).expect("umbrella row");
    assert!(umbrella.contains("1 drifted fields"), "{umbrella}");
    let acme = text.lines().find(|l| l.starts_with("acme")).expect("acme row");
    let version = db.text("SELECT applied_commit FROM tenants WHERE name = 'acme'").await;
    assert!(acme.contains(&version.chars().take(20).collect::<String>()), "{acme} shows {version}");

    let json = cli(&serve, &["status", "--format", "json"]);
    let body: Value = serde_json::from_slice(&json.stdout).expect("json");
    assert_eq!(body["tenants"].as_array().map(Vec::len), Some(6), "{body}");

    // The API pages through every tenant, or those in one state.
    let first = get(&serve, "/v1/sync/tenants?all=true&limit=4").await;
    assert_eq!(first["tenants"].as_array().map(Vec::len), Some(4));
    assert_eq!(first["next"], "initech");
    let rest = get(&serve, "/v1/sync/tenants?all=true&limit=4&after=initech").await;
    let names: Vec<&str> =
        rest["tenants"].as_array().expect("tenants").iter().filter_map(|t| t["tenant"].as_str()).collect();
    assert_eq!(names, ["stark", "umbrella"]);
    assert_eq!(rest["next"], Value::Null);
    let errors = get(&serve, "/v1/sync/tenants?state=Error").await;
    assert_eq!(errors["tenants"].as_array().map(Vec::len), Some(1));
    let (code, refused) = http(
        "GET",
        format!("{}/v1/sync/tenants?state=Broken", serve.base),
        vec![("authorization", format!("Bearer {TOKEN}"))],
        vec![],
    )
    .await;
    assert_eq!(code, 400, "{refused}");
}

// Issue 15.7
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_tenants_file_then_allowing_its_deletion_deletes_that_tenant_only() {
    let (db, repo) = (TestDb::new().await, Repo::example());
    let serve = ServeProcess::start(repo.path(), &db.url, "200ms");
    synced(&serve).await;
    repo.remove("tenants/globex.yaml");
    repo.remove("tenants/initech.yaml");
    within(Duration::from_secs(10), "both refused", || async {
        get(&serve, "/v1/sync/status").await["counts"]["Error"] == 2
    })
    .await;

    let allowed = cli(&serve, &["sync", "allow-deletion", "globex"]);
    assert_eq!(allowed.status.code(), Some(0), "{}", stderr(&allowed));
    assert!(
        stdout(&allowed).contains("the next pass deletes tenant globex once (allowed by bootstrap-token"),
        "{}",
        stdout(&allowed)
    );
    within(Duration::from_secs(10), "globex deleted", || async {
        db.count("SELECT count(*) FROM tenants WHERE name = 'globex'").await == 0
    })
    .await;
    assert_eq!(db.count("SELECT count(*) FROM users WHERE email LIKE '%@globex.example'").await, 0);
    assert_eq!(db.count("SELECT count(*) FROM tenants WHERE name = 'initech'").await, 1, "initech stays refused");
    assert_eq!(db.count("SELECT count(*) FROM guard_allowances").await, 0, "the allowance is used up");
    assert_eq!(
        db.count(
            "SELECT count(*) FROM audit_log WHERE action = 'tenant.allow_deletion' AND actor = 'bootstrap-token'
             AND actor_type = 'operator' AND tenant = 'globex'"
        )
        .await,
        1
    );
    within(Duration::from_secs(10), "the status follows", || async {
        let status = get(&serve, "/v1/sync/status").await;
        status["counts"]["Error"] == 1 && sum(&status["counts"]) == 5
    })
    .await;
    let initech = get(&serve, "/v1/sync/tenants/initech").await;
    assert_eq!(initech["state"], "Error");
    let deleting =
        history(&serve).await.into_iter().find(|p| tenant(p, "globex").is_some_and(|t| t["outcome"] == "applied"));
    let deleting = deleting.expect("the deleting pass in the history");
    assert_eq!(deleting["trigger"], "manual");
    let globex = tenant(&deleting, "globex").expect("globex");
    assert_eq!(globex["deleted"], 7, "the tenant, its four users and two flags: {globex}");

    // Once only: declaring globex again and removing it again is refused again.
    let original =
        std::fs::read_to_string(crate::helpers::project_dir().join("example-config-repo/tenants/globex.yaml"))
            .expect("example");
    repo.write("tenants/globex.yaml", &original);
    within(Duration::from_secs(10), "globex back", || async {
        db.count("SELECT count(*) FROM tenants WHERE name = 'globex'").await == 1
    })
    .await;
    repo.remove("tenants/globex.yaml");
    within(Duration::from_secs(10), "refused again", || async {
        get(&serve, "/v1/sync/tenants/globex").await["state"] == "Error"
    })
    .await;
    assert_eq!(db.count("SELECT count(*) FROM tenants WHERE name = 'globex'").await, 1);

    // Nothing to allow for a tenant that is not live.
    let missing = cli(&serve, &["sync", "allow-deletion", "nobody"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(stderr(&missing).contains("answered 404: no tenant `nobody` is live"), "{}", stderr(&missing));
}

// Issue 15.7
#[tokio::test]
async fn apply_allow_mass_delete_with_a_tenant_deletes_only_that_tenant() {
    let (db, repo) = (TestDb::new().await, Repo::example());
    crate::helpers::apply(&db, &repo).await;
    repo.remove("tenants/globex.yaml");
    repo.remove("tenants/initech.yaml");
    let dir = repo.path().display().to_string();
    let output = gatehouse(&["apply", &dir, "--allow-mass-delete=globex"], &[("DATABASE_URL", &db.url)]);
    assert_eq!(output.status.code(), Some(1), "initech is still refused: {}", stderr(&output));
    assert!(stderr(&output).contains("tenant initech: not applied: would delete 3 of 3 users"), "{}", stderr(&output));
    assert_eq!(db.count("SELECT count(*) FROM tenants WHERE name = 'globex'").await, 0);
    assert_eq!(db.count("SELECT count(*) FROM tenants WHERE name = 'initech'").await, 1);

    let output = gatehouse(&["apply", &dir, "--allow-mass-delete"], &[("DATABASE_URL", &db.url)]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(db.count("SELECT count(*) FROM tenants WHERE name = 'initech'").await, 0);
}

/// Found walking the README: a tenant's last change moves when only its users or flags change, not
/// just when the tenant row itself does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_last_change_moves_when_only_its_users_or_flags_change() {
    let (db, repo) = (TestDb::new().await, Repo::example());
    let serve = ServeProcess::start(repo.path(), &db.url, "200ms");
    synced(&serve).await;
    let changed_at = || async {
        let listing = get(&serve, "/v1/sync/tenants?all=true").await;
        let acme = listing["tenants"].as_array().expect("tenants").iter().find(|t| t["tenant"] == "acme").cloned();
        acme.expect("acme listed")["changedAt"].as_str().expect("changedAt").to_owned()
    };
    let before = changed_at().await;
    repo.edit("tenants/acme.yaml", "max_projects: 1000", "max_projects: 1300");
    within(Duration::from_secs(10), "the flag change applied", || async {
        db.count("SELECT count(*) FROM tenant_flags WHERE key = 'max_projects' AND value = '1300'").await == 1
    })
    .await;
    let after = changed_at().await;
    let parse = |at: &str| chrono::DateTime::parse_from_rfc3339(at).expect("RFC 3339");
    assert!(parse(&after) > parse(&before), "last change {before} → {after}");
}
