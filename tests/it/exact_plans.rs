//! Exact plans (issue 15.5): `plan --out` saves the plan with the config version and every tenant's
//! live revision; `apply --plan` applies exactly that, or refuses naming what changed since, in Git or
//! live. And `plan` warns when a change overwrites a manual one.

use crate::helpers::{Repo, TestDb, apply, gatehouse, stderr, stdout};

/// The example applied, then Dan's role changed in Git: a one-change plan is pending.
async fn one_change_pending() -> (TestDb, Repo) {
    let (db, repo) = (TestDb::new().await, Repo::example());
    apply(&db, &repo).await;
    repo.edit(
        "tenants/acme.yaml",
        "{ email: dan@acme.example, role: user }",
        "{ email: dan@acme.example, role: admin }",
    );
    (db, repo)
}

fn plan_out(db: &TestDb, repo: &Repo, out: &std::path::Path) -> std::process::Output {
    let output = gatehouse(
        &["plan", &repo.path().display().to_string(), "--out", &out.display().to_string()],
        &[("DATABASE_URL", db.url.as_str())],
    );
    assert_eq!(output.status.code(), Some(1), "changes pending: {}{}", stdout(&output), stderr(&output));
    output
}

fn apply_plan(db: &TestDb, repo: &Repo, saved: &std::path::Path) -> std::process::Output {
    gatehouse(
        &["apply", &repo.path().display().to_string(), "--plan", &saved.display().to_string()],
        &[("DATABASE_URL", db.url.as_str())],
    )
}

#[tokio::test]
async fn a_saved_plan_records_the_config_version_and_every_tenants_live_revision() {
    // Issue 15.5
    let (db, repo) = one_change_pending().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("plan.json");
    let output = plan_out(&db, &repo, &out);
    assert!(stdout(&output).starts_with("Plan: 0 to create, 1 to update, 0 to delete"), "{}", stdout(&output));

    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).expect("plan written")).expect("json");
    assert_eq!(saved["format"], "gatehouse-plan/1");
    assert!(saved["version"].as_str().is_some_and(|v| v.starts_with("content:")), "{saved:#}");
    let tenants = saved["tenants"].as_object().expect("tenants");
    assert_eq!(tenants.len(), 6, "every tenant read: {saved:#}");
    assert!(tenants.values().all(|t| t["liveRevision"] == 0 && t["desired"].is_string()), "{saved:#}");
    assert_eq!(saved["plan"]["summary"]["update"], 1);
    assert_eq!(saved["plan"]["tenants"][0]["changes"][0]["resource"]["email"], "dan@acme.example");
}

#[tokio::test]
async fn without_a_change_since_apply_plan_applies_exactly_the_saved_plan() {
    // Issue 15.5 acceptance: plan --out, then apply --plan applies exactly the plan.
    let (db, repo) = one_change_pending().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("plan.json");
    plan_out(&db, &repo, &out);
    let audit_before = db.count("SELECT count(*) FROM audit_log").await;

    let applied = apply_plan(&db, &repo, &out);
    assert_eq!(applied.status.code(), Some(0), "{}{}", stdout(&applied), stderr(&applied));
    assert!(stdout(&applied).starts_with("applied 1 changes at content:"), "{}", stdout(&applied));
    assert_eq!(db.text("SELECT role FROM users WHERE email = 'dan@acme.example'").await, "admin");
    assert_eq!(db.count("SELECT count(*) FROM audit_log").await, audit_before + 1, "one change, one audit row");

    let again = gatehouse(&["plan", &repo.path().display().to_string()], &[("DATABASE_URL", db.url.as_str())]);
    assert_eq!(again.status.code(), Some(0), "converged: {}", stdout(&again));
}

#[tokio::test]
async fn a_live_edit_after_the_plan_refuses_it_naming_the_tenant_and_applies_nothing() {
    // Issue 15.5 acceptance: plan --out, a live edit (SQL by hand), apply --plan → refused.
    let (db, repo) = one_change_pending().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("plan.json");
    plan_out(&db, &repo, &out);
    // Stark is not in the plan: a plan that says "nothing to do" for it no longer holds either.
    db.execute("UPDATE users SET name = 'Pep' WHERE email = 'pepper@stark.example'").await;

    let refused = apply_plan(&db, &repo, &out);
    assert_eq!(refused.status.code(), Some(1), "{}{}", stdout(&refused), stderr(&refused));
    let message = stderr(&refused);
    assert!(message.contains("is stale, nothing was applied"), "{message}");
    assert!(message.contains("tenant stark: changed live since the plan (revision 0 → 1)"), "{message}");
    assert!(!message.contains("tenant acme"), "acme did not change since: {message}");
    assert_eq!(db.text("SELECT role FROM users WHERE email = 'dan@acme.example'").await, "user", "nothing applied");
    assert_eq!(db.text("SELECT name FROM users WHERE email = 'pepper@stark.example'").await, "Pep");
}

#[tokio::test]
async fn a_git_change_after_the_plan_refuses_it_naming_the_tenant() {
    // Issue 15.5: changed in Git since the plan.
    let (db, repo) = one_change_pending().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("plan.json");
    plan_out(&db, &repo, &out);
    repo.edit(
        "tenants/globex.yaml",
        "{ email: ivy@globex.example, role: admin }",
        "{ email: ivy@globex.example, role: user }",
    );

    let refused = apply_plan(&db, &repo, &out);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    let message = stderr(&refused);
    assert!(message.contains("the config changed since the plan (version content:"), "{message}");
    assert!(message.contains("tenant globex: its declaration in Git changed since the plan"), "{message}");
    assert!(!message.contains("tenant acme"), "{message}");
    assert_eq!(db.text("SELECT role FROM users WHERE email = 'dan@acme.example'").await, "user");
    assert_eq!(db.text("SELECT role FROM users WHERE email = 'ivy@globex.example'").await, "admin");
}

#[tokio::test]
async fn another_apply_between_plan_and_apply_plan_makes_the_plan_stale() {
    // Issue 15.5: the reconciler's own writes do not bump the live revision; they are caught too.
    // Another apply of a Git edit since reverted: the files are the plan's again, the rows are not.
    let (db, repo) = one_change_pending().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("plan.json");
    plan_out(&db, &repo, &out);
    let (ivy_admin, ivy_user) =
        ("{ email: ivy@globex.example, role: admin }", "{ email: ivy@globex.example, role: user }");
    repo.edit("tenants/globex.yaml", ivy_admin, ivy_user);
    apply(&db, &repo).await;
    repo.edit("tenants/globex.yaml", ivy_user, ivy_admin);

    let refused = apply_plan(&db, &repo, &out);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("tenant globex: applied by another reconciler since the plan"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(db.text("SELECT role FROM users WHERE email = 'ivy@globex.example'").await, "user", "nothing applied");
}

#[tokio::test]
async fn apply_plan_run_again_after_it_succeeded_says_it_was_already_applied() {
    // Issue 22.9: the second run is not "stale"; it changes nothing and exits 0.
    let (db, repo) = one_change_pending().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("plan.json");
    plan_out(&db, &repo, &out);
    let first = apply_plan(&db, &repo, &out);
    assert_eq!(first.status.code(), Some(0), "{}{}", stdout(&first), stderr(&first));
    let audit_after_first = db.count("SELECT count(*) FROM audit_log").await;

    let again = apply_plan(&db, &repo, &out);
    assert_eq!(again.status.code(), Some(0), "{}{}", stdout(&again), stderr(&again));
    assert!(stderr(&again).contains("was already applied"), "{}", stderr(&again));
    assert!(!stderr(&again).contains("stale"), "{}", stderr(&again));
    assert_eq!(db.count("SELECT count(*) FROM audit_log").await, audit_after_first, "nothing written");

    // The same after a live edit would be stale: something is left to change.
    db.execute("UPDATE users SET role = 'user' WHERE email = 'dan@acme.example'").await;
    let stale = apply_plan(&db, &repo, &out);
    assert_eq!(stale.status.code(), Some(1), "{}", stderr(&stale));
    assert!(stderr(&stale).contains("tenant acme: changed live since the plan"), "{}", stderr(&stale));
}

#[tokio::test]
async fn apply_plan_as_json_lists_what_changed_and_a_bad_file_is_an_error() {
    let (db, repo) = one_change_pending().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("plan.json");
    plan_out(&db, &repo, &out);
    db.execute("UPDATE users SET role = 'owner' WHERE email = 'dan@acme.example'").await;
    let refused = gatehouse(
        &["apply", &repo.path().display().to_string(), "--plan", &out.display().to_string(), "--format", "json"],
        &[("DATABASE_URL", db.url.as_str())],
    );
    assert_eq!(refused.status.code(), Some(1));
    let body: serde_json::Value = serde_json::from_slice(&refused.stdout).expect("json");
    assert_eq!(body["applied"], false);
    assert_eq!(body["stale"][0]["tenant"], "acme");

    std::fs::write(&out, "{}").expect("write");
    let broken = apply_plan(&db, &repo, &out);
    assert_eq!(broken.status.code(), Some(2));
    assert!(stderr(&broken).contains("is not a plan saved by `gatehouse plan --out`"), "{}", stderr(&broken));
}

#[tokio::test]
async fn plan_warns_when_a_merge_would_overwrite_a_manual_change_naming_who_and_when() {
    // Issue 15.5: the change touches a field that is drifted right now.
    let (db, repo) = (TestDb::new().await, Repo::example());
    apply(&db, &repo).await;
    db.execute("UPDATE users SET role = 'admin' WHERE email = 'leon@umbrella.example'").await;
    // Git changes the role (drifted) and adds a name (not drifted).
    repo.edit(
        "tenants/umbrella.yaml",
        "{ email: leon@umbrella.example, role: user }",
        "{ email: leon@umbrella.example, name: Leon Kennedy, role: owner }",
    );
    let dir = repo.path().display().to_string();
    let env = [("DATABASE_URL", db.url.as_str())];

    let output = gatehouse(&["plan", &dir], &env);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stdout(&output).contains(
            "⚠ tenant/umbrella/user/leon@umbrella.example: this merge would overwrite a manual change made outside \
             Gatehouse (no audit record): role: \"admin\" → \"owner\"\n"
        ),
        "{}",
        stdout(&output)
    );

    // A change made through Gatehouse names its actor and time (its audit row, written the one way
    // rows are written: in its place in the hash chain).
    let row = gatehouse::store::AuditEntry {
        actor: "ada@umbrella.example".into(),
        actor_type: "user",
        action: "user.update".into(),
        resource: "tenant/umbrella/user/leon@umbrella.example".into(),
        tenant: Some("umbrella".into()),
        success: true,
        metadata: serde_json::json!({}),
    };
    let mut conn = db.pool.acquire().await.expect("connection");
    gatehouse::store::insert_audit(&mut conn, &[row]).await.expect("audited");
    let at: String = sqlx::query_scalar(
        "SELECT to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') FROM audit_log WHERE actor = 'ada@umbrella.example'",
    )
    .fetch_one(&db.pool)
    .await
    .expect("the row");
    let output = gatehouse(&["plan", "--format", "json", &dir], &env);
    let body: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    let warnings = body["warnings"].as_array().expect("warnings");
    assert_eq!(warnings.len(), 1, "{body:#}");
    assert_eq!(warnings[0]["changedBy"], "ada@umbrella.example");
    assert_eq!(warnings[0]["fields"], serde_json::json!([{ "field": "role", "before": "admin", "after": "owner" }]));
    let text = stdout(&gatehouse(&["plan", &dir], &env));
    assert!(text.contains(&format!("made by ada@umbrella.example at {at} UTC: role")), "{text}");
}
