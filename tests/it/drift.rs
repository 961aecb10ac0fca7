//! Drift: a managed row changed outside Git (here with plain SQL) is found, shown field by field with
//! the applied and the live value, and reverted or kept per the tenant's `selfHeal` (US3, FR-008).

use std::time::Duration;

use gatehouse::plan::{DriftedField, Resource};
use serde_json::{Value, json};

use crate::helpers::{Repo, ServeProcess, Served, TestDb, apply, gatehouse, http, plan, stderr, stdout, within};

#[tokio::test]
async fn a_manual_sql_change_shows_as_drift_with_the_applied_and_the_live_value() {
    let (db, repo) = (TestDb::new().await, Repo::example());
    apply(&db, &repo).await;
    db.execute("UPDATE users SET role = 'user' WHERE email = 'carol@acme.example'").await;

    let plan = plan(&db, &repo).await;
    let acme = plan.tenants.iter().find(|t| t.name == "acme").expect("acme drifted");
    assert_eq!(acme.drift.len(), 1);
    assert_eq!(acme.drift[0].resource, Resource::User { tenant: "acme".into(), email: "carol@acme.example".into() });
    assert_eq!(
        acme.drift[0].fields,
        vec![DriftedField { field: "role", applied: "admin".into(), live: "user".into() }]
    );
    assert!(acme.drift[0].revert, "acme self-heals");
    assert!(plan.has_changes(), "reverting drift is a change");
}

#[tokio::test]
async fn apply_reverts_drift_when_the_tenant_self_heals() {
    let (db, repo) = (TestDb::new().await, Repo::example());
    apply(&db, &repo).await;
    db.execute("UPDATE users SET role = 'user' WHERE email = 'carol@acme.example'").await;
    db.execute("UPDATE tenant_flags SET value = '7' WHERE key = 'max_projects' AND tenant_id = (SELECT id FROM tenants WHERE name = 'stark')").await;

    let report = apply(&db, &repo).await;
    assert_eq!(report.applied_changes, 2);
    assert_eq!(db.text("SELECT role FROM users WHERE email = 'carol@acme.example'").await, "admin");
    assert_eq!(db.text("SELECT f.value::text FROM tenant_flags f JOIN tenants t ON t.id = f.tenant_id WHERE t.name = 'stark' AND f.key = 'max_projects'").await, "5");
    assert_eq!(db.count("SELECT count(*) FROM audit_log WHERE metadata->>'reason' = 'drift'").await, 2);
    assert!(!plan(&db, &repo).await.has_changes());
}

#[tokio::test]
async fn apply_keeps_and_reports_drift_when_self_heal_is_off() {
    let (db, repo) = (TestDb::new().await, Repo::example());
    apply(&db, &repo).await;
    db.execute("UPDATE users SET role = 'admin' WHERE email = 'leon@umbrella.example'").await;

    let report = apply(&db, &repo).await;
    assert_eq!(report.drift_kept, 1);
    assert_eq!(report.applied_changes, 0);
    assert_eq!(db.text("SELECT role FROM users WHERE email = 'leon@umbrella.example'").await, "admin");
    // Reported again on every pass until Git or the database changes.
    let plan = plan(&db, &repo).await;
    let umbrella = plan.tenants.iter().find(|t| t.name == "umbrella").expect("umbrella still drifted");
    assert_eq!(umbrella.drift[0].fields[0].live, serde_json::json!("admin"));
    assert!(!umbrella.drift[0].revert);
}

#[tokio::test]
async fn a_git_change_to_a_drifted_field_wins_even_without_self_heal() {
    let (db, repo) = (TestDb::new().await, Repo::example());
    apply(&db, &repo).await;
    db.execute("UPDATE users SET role = 'admin' WHERE email = 'leon@umbrella.example'").await;
    repo.edit(
        "tenants/umbrella.yaml",
        "{ email: leon@umbrella.example, role: user }",
        "{ email: leon@umbrella.example, role: owner }",
    );
    apply(&db, &repo).await;
    assert_eq!(db.text("SELECT role FROM users WHERE email = 'leon@umbrella.example'").await, "owner");
}

#[tokio::test]
async fn drift_of_the_tenant_row_itself_is_found() {
    let (db, repo) = (TestDb::new().await, Repo::example());
    apply(&db, &repo).await;
    db.execute("UPDATE tenants SET status = 'suspended', display_name = 'Hacked' WHERE name = 'stark'").await;
    let plan = plan(&db, &repo).await;
    let stark = plan.tenants.iter().find(|t| t.name == "stark").expect("stark drifted");
    let fields: Vec<&str> = stark.drift[0].fields.iter().map(|f| f.field).collect();
    assert_eq!(fields, ["displayName", "status"]);
    apply(&db, &repo).await;
    assert_eq!(db.text("SELECT status FROM tenants WHERE name = 'stark'").await, "active");
}

#[tokio::test]
async fn a_row_deleted_or_added_by_hand_is_drift_too() {
    let (db, repo) = (TestDb::new().await, Repo::example());
    apply(&db, &repo).await;
    db.execute("DELETE FROM users WHERE email = 'happy@stark.example'").await;
    let report = apply(&db, &repo).await;
    assert_eq!(report.applied_changes, 1);
    assert_eq!(db.count("SELECT count(*) FROM users WHERE email = 'happy@stark.example'").await, 1);
}

#[tokio::test]
async fn unchanged_tenants_are_not_read_again_so_work_follows_the_change() {
    let (db, repo) = (TestDb::new().await, Repo::example());
    apply(&db, &repo).await;
    let validated = repo.validated();
    let live = || async {
        let mut conn = db.pool.acquire().await.expect("conn");
        gatehouse::store::load_live(&mut conn).await.expect("live")
    };
    assert_eq!(
        gatehouse::plan::tenants_to_inspect(&gatehouse::plan::desired_tenants(&validated), &live().await),
        Vec::<uuid::Uuid>::new()
    );

    // A change that is not drift (last sign-in, say) leaves the tenant skipped...
    db.execute("UPDATE users SET updated_at = now() WHERE email = 'pepper@stark.example'").await;
    assert_eq!(
        gatehouse::plan::tenants_to_inspect(&gatehouse::plan::desired_tenants(&validated), &live().await),
        Vec::<uuid::Uuid>::new()
    );
    // ...a change to a declared column marks exactly its tenant for inspection.
    db.execute("UPDATE users SET name = 'Pep' WHERE email = 'pepper@stark.example'").await;
    let stark = db.text("SELECT id::text FROM tenants WHERE name = 'stark'").await;
    let inspect: Vec<String> =
        gatehouse::plan::tenants_to_inspect(&gatehouse::plan::desired_tenants(&validated), &live().await)
            .iter()
            .map(|id| id.to_string())
            .collect();
    assert_eq!(inspect, vec![stark]);
}

/// Every YAML file of the repo by path, to compare before and after `drift adopt`.
fn files(repo: &Repo) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    for dir in ["tenants", "plans", "applications"] {
        for entry in std::fs::read_dir(repo.path().join(dir)).expect("dir") {
            let path = entry.expect("entry").path();
            out.insert(
                format!("{dir}/{}", path.file_name().expect("name").to_string_lossy()),
                std::fs::read_to_string(&path).expect("read"),
            );
        }
    }
    out
}

/// The lines that differ between two versions of the repo, as `file:line: new text`, as a
/// `git diff` would show them (no file may gain or lose lines unless `added` says so).
fn changed_lines(
    before: &std::collections::BTreeMap<String, String>,
    after: &std::collections::BTreeMap<String, String>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (file, old) in before {
        let new = &after[file];
        let diff = similar::TextDiff::from_lines(old.as_str(), new.as_str());
        for change in diff.iter_all_changes().filter(|c| c.tag() != similar::ChangeTag::Equal) {
            let sign = if change.tag() == similar::ChangeTag::Insert { '+' } else { '-' };
            out.push(format!("{file}: {sign}{}", change.value().trim_end()));
        }
    }
    out
}

#[tokio::test]
async fn drift_adopt_rewrites_only_the_drifted_lines_and_the_next_plan_is_clean() {
    // Issue 15.6 (acceptance): a role and a flag override changed with SQL are written back into
    // the files; a diff shows those two lines and nothing else.
    let (db, repo) = (TestDb::new().await, Repo::example());
    apply(&db, &repo).await;
    db.execute("UPDATE users SET role = 'user' WHERE email = 'carol@acme.example'").await;
    db.execute("UPDATE tenant_flags SET value = '7' WHERE key = 'max_projects' AND tenant_id = (SELECT id FROM tenants WHERE name = 'stark')").await;
    let before = files(&repo);
    let dir = repo.path().display().to_string();

    // One tenant at a time: stark's file is left alone.
    let out = gatehouse(&["drift", "adopt", &dir, "--tenant", "acme", "--database-url", &db.url], &[]);
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out)
            .contains("tenants/acme.yaml:20: adopted tenant/acme/user/carol@acme.example role: \"admin\" → \"user\""),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        changed_lines(&before, &files(&repo)),
        [
            "tenants/acme.yaml: -    - { email: carol@acme.example, name: Carol Chen, role: admin }",
            "tenants/acme.yaml: +    - { email: carol@acme.example, name: Carol Chen, role: user }",
        ]
    );

    let out = gatehouse(&["drift", "adopt", &dir, "--database-url", &db.url], &[]);
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(
        changed_lines(&before, &files(&repo)),
        [
            "tenants/acme.yaml: -    - { email: carol@acme.example, name: Carol Chen, role: admin }",
            "tenants/acme.yaml: +    - { email: carol@acme.example, name: Carol Chen, role: user }",
            "tenants/stark.yaml: -    max_projects: 5",
            "tenants/stark.yaml: +    max_projects: 7",
        ]
    );

    let next = plan(&db, &repo).await;
    assert!(!next.has_changes(), "{:?}", next.summary());
    assert_eq!(next.summary().drift, 0);
    let out = gatehouse(&["plan", &dir, "--database-url", &db.url], &[]);
    assert_eq!(out.status.code(), Some(0), "plan exits 0 when clean: {}", stdout(&out));
    // Applying the adopted files keeps the live values.
    apply(&db, &repo).await;
    assert_eq!(db.text("SELECT role FROM users WHERE email = 'carol@acme.example'").await, "user");
    let out = gatehouse(&["drift", "adopt", &dir, "--database-url", &db.url], &[]);
    assert!(stdout(&out).contains("no drift to adopt"), "{}", stdout(&out));
}

#[tokio::test]
async fn drift_adopt_adds_a_user_created_outside_git_and_leaves_a_deleted_one_by_hand() {
    // Issue 15.6: rows that exist on one side only.
    let (db, repo) = (TestDb::new().await, Repo::example());
    apply(&db, &repo).await;
    db.execute("INSERT INTO users (id, tenant_id, email, role, status) SELECT gen_random_uuid(), id, 'zed@stark.example', 'admin', 'active' FROM tenants WHERE name = 'stark'").await;
    db.execute("DELETE FROM users WHERE email = 'happy@stark.example'").await;
    let before = files(&repo);

    let dir = repo.path().display().to_string();
    let out = gatehouse(&["drift", "adopt", &dir, "--database-url", &db.url], &[]);
    assert_eq!(out.status.code(), Some(1), "something is left by hand: {}", stdout(&out));
    assert!(
        stdout(&out).contains("adopt by hand: tenant/stark/user/happy@stark.example (deleted outside Git): line 12: happy@stark.example was deleted outside Git; to adopt that, remove `- { email: happy@stark.example, role: user }`"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        changed_lines(&before, &files(&repo)),
        ["tenants/stark.yaml: +    - { email: zed@stark.example, role: admin }"]
    );
    let next = plan(&db, &repo).await;
    let stark = next.tenants.iter().find(|t| t.name == "stark").expect("stark");
    let visible: Vec<String> =
        stark.visible_changes().map(|c| format!("{} {}", c.action.as_str(), c.resource)).collect();
    assert_eq!(visible, ["create tenant/stark/user/happy@stark.example"], "only the deletion is left");
}

const TOKEN: &str = "cli-test-token";

async fn operator(method: &str, serve: &Served, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
    let body = if body.is_null() { Vec::new() } else { body.to_string().into_bytes() };
    let headers = vec![("authorization", format!("Bearer {TOKEN}")), ("content-type", "application/json".into())];
    http(method, format!("{}{path}", serve.base), headers, body).await
}

async fn role(db: &TestDb, email: &str) -> String {
    db.text(&format!("SELECT role FROM users WHERE email = '{email}'")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_drift_survives_passes_until_its_expiry_then_is_reverted() {
    // Issue 15.6 (acceptance): acme self-heals, yet drift allowed until a deadline is kept and
    // reported as allowed; after the deadline the next pass reverts it.
    let (db, repo) = (TestDb::new().await, Repo::example());
    let serve = ServeProcess::start(repo.path(), &db.url, "300ms");
    within(Duration::from_secs(20), "first sync", || async {
        operator("GET", &serve, "/v1/sync/status", Value::Null).await.1["state"] == "Synced"
    })
    .await;

    let server = ["--server", &serve.base, "--operator-token", TOKEN];
    let out = gatehouse(
        &[&["drift", "allow", "acme", "--for", "4s", "--reason", "incident 7: roles by hand"][..], &server].concat(),
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("drift of acme allowed until"), "{}", stdout(&out));
    let until: chrono::DateTime<chrono::Utc> = {
        let (_, acme) = operator("GET", &serve, "/v1/sync/tenants/acme", Value::Null).await;
        acme["driftAllowance"]["until"].as_str().expect("until").parse().expect("a time")
    };
    db.execute("UPDATE users SET role = 'user' WHERE email = 'carol@acme.example'").await;

    within(Duration::from_secs(10), "the drift is reported as allowed", || async {
        let (_, acme) = operator("GET", &serve, "/v1/sync/tenants/acme", Value::Null).await;
        acme["state"] == "Drifted"
            && acme["drift"][0]["field"] == "role"
            && acme["drift"][0]["reverted"] == false
            && acme["drift"][0]["allowed"]["reason"] == "incident 7: roles by hand"
    })
    .await;
    // Several passes (300 ms apart) run before the deadline; none reverts it.
    while chrono::Utc::now() + chrono::TimeDelta::milliseconds(700) < until {
        assert_eq!(role(&db, "carol@acme.example").await, "user", "reverted before the allowance ended");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let status = gatehouse(&[&["status", "--tenant", "acme"][..], &server].concat(), &[]);
    assert!(stdout(&status).contains("allowed until"), "{}", stdout(&status));

    within(Duration::from_secs(15), "reverted after the deadline", || async {
        role(&db, "carol@acme.example").await == "admin"
    })
    .await;
    assert!(chrono::Utc::now() >= until);
    assert_eq!(
        db.count("SELECT count(*) FROM audit_log WHERE action = 'tenant.drift.allow' AND tenant = 'acme'").await,
        1
    );
    assert_eq!(db.count("SELECT count(*) FROM audit_log WHERE metadata->>'reason' = 'drift' AND resource = 'tenant/acme/user/carol@acme.example'").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drift_allowance_is_operator_only_checked_at_the_edge_and_can_be_withdrawn() {
    // Issue 15.6
    let (db, repo) = (TestDb::new().await, Repo::example());
    let serve = ServeProcess::start(repo.path(), &db.url, "300ms");
    within(Duration::from_secs(20), "first sync", || async {
        operator("GET", &serve, "/v1/sync/status", Value::Null).await.1["state"] == "Synced"
    })
    .await;
    let path = "/v1/sync/tenants/acme/drift/allow";
    let in_a_day = (chrono::Utc::now() + chrono::TimeDelta::days(1)).to_rfc3339();

    let anonymous = http(
        "POST",
        format!("{}{path}", serve.base),
        vec![],
        json!({ "until": in_a_day, "reason": "x" }).to_string().into_bytes(),
    )
    .await;
    assert_eq!(anonymous.0, 401);
    let past = operator("POST", &serve, path, json!({ "until": "2020-01-01T00:00:00Z", "reason": "late" })).await;
    assert_eq!((past.0, past.1["error"]["message"].as_str()), (400, Some("until is in the past")));
    let blank = operator("POST", &serve, path, json!({ "until": in_a_day, "reason": " " })).await;
    assert_eq!(blank.0, 400);
    let unknown =
        operator("POST", &serve, "/v1/sync/tenants/nobody/drift/allow", json!({ "until": in_a_day, "reason": "x" }))
            .await;
    assert_eq!(unknown.0, 404);

    // Allowed: drift is kept although acme self-heals.
    let (code, body) = operator("POST", &serve, path, json!({ "until": in_a_day, "reason": "migration" })).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["driftAllowance"]["active"], true);
    db.execute("UPDATE users SET role = 'user' WHERE email = 'carol@acme.example'").await;
    within(Duration::from_secs(10), "kept as allowed", || async {
        operator("GET", &serve, "/v1/sync/tenants/acme", Value::Null).await.1["drift"][0]["allowed"]["reason"]
            == "migration"
    })
    .await;
    assert_eq!(role(&db, "carol@acme.example").await, "user");

    // Withdrawn: the next pass reverts it.
    let out = gatehouse(&["drift", "withdraw", "acme", "--server", &serve.base, "--operator-token", TOKEN], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    within(Duration::from_secs(10), "reverted once withdrawn", || async {
        role(&db, "carol@acme.example").await == "admin"
    })
    .await;
    assert_eq!(operator("DELETE", &serve, path, Value::Null).await.0, 404, "nothing left to withdraw");
    assert_eq!(db.count("SELECT count(*) FROM audit_log WHERE action IN ('tenant.drift.allow', 'tenant.drift.withdraw') AND actor_type = 'operator'").await, 2);
}
