//! Drift: a managed row changed outside Git (here with plain SQL) is found, shown field by field with
//! the applied and the live value, and reverted or kept per the tenant's `selfHeal` (US3, FR-008).

use gatehouse::plan::{DriftedField, Resource};

use crate::helpers::{Repo, TestDb, apply, plan};

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
