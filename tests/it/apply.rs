//! `apply` converges PostgreSQL with the config repository (FR-008, SC-004) and audits every change
//! it makes (FR-007, FR-LOG-003).

use gatehouse::plan::{Action, Options, Resource, TenantState};
use gatehouse::reconcile::TenantOutcome;

use crate::helpers::{Repo, TestDb, apply, apply_with, plan};

fn outcome<'a>(report: &'a gatehouse::reconcile::ApplyReport, tenant: &str) -> Option<&'a TenantOutcome> {
    report.tenants.iter().find(|t| t.tenant == tenant).map(|t| &t.outcome)
}

#[tokio::test]
async fn apply_on_an_empty_database_creates_everything_and_the_next_plan_is_empty() {
    let (db, repo) = (TestDb::new().await, Repo::example());
    let before = plan(&db, &repo).await;
    assert_eq!(before.summary().create, 3 + 2 + 6 + 30 + 10);

    let report = apply(&db, &repo).await;
    assert!(report.succeeded(), "{report:#?}");
    assert_eq!(report.applied_changes, 51);
    assert_eq!(db.count("SELECT count(*) FROM plans").await, 3);
    assert_eq!(db.count("SELECT count(*) FROM applications").await, 2);
    assert_eq!(db.count("SELECT count(*) FROM tenants").await, 6);
    assert_eq!(db.count("SELECT count(*) FROM users").await, 30);
    assert_eq!(db.count("SELECT count(*) FROM tenant_flags").await, 10);
    assert_eq!(db.count("SELECT count(*) FROM tenants WHERE managed_by = 'git' AND applied_hash IS NOT NULL").await, 6);
    assert_eq!(db.text("SELECT status FROM tenants WHERE name = 'initech'").await, "suspended");

    let after = plan(&db, &repo).await;
    assert!(!after.has_changes(), "{after:#?}");
    assert_eq!(after.summary().drift, 0);
}

#[tokio::test]
async fn users_declared_in_git_start_invited_because_they_have_no_credential_yet() {
    let (db, repo) = (TestDb::new().await, Repo::example());
    apply(&db, &repo).await;
    assert_eq!(db.text("SELECT status FROM users WHERE email = 'alice@acme.example'").await, "invited");
    assert_eq!(db.text("SELECT status FROM users WHERE email = 'bob@acme.example'").await, "disabled");
    assert_eq!(db.count("SELECT count(*) FROM users WHERE status NOT IN ('invited', 'disabled')").await, 0);
}

#[tokio::test]
async fn applying_the_same_tree_twice_makes_the_second_a_no_op() {
    let (db, repo) = (TestDb::new().await, Repo::example());
    apply(&db, &repo).await;
    let audit_rows = db.count("SELECT count(*) FROM audit_log").await;
    let updated_at = db.text("SELECT max(updated_at)::text FROM users").await;

    let second = apply(&db, &repo).await;
    assert!(second.succeeded());
    assert_eq!(second.applied_changes, 0);
    assert!(second.tenants.is_empty(), "{:?}", second.tenants);
    assert_eq!(db.count("SELECT count(*) FROM audit_log").await, audit_rows);
    assert_eq!(db.text("SELECT max(updated_at)::text FROM users").await, updated_at);
}

#[tokio::test]
async fn editing_one_users_role_plans_exactly_that_one_field_change() {
    // FR-TENANT-004: a role change is one field of one user.
    let (db, repo) = (TestDb::new().await, Repo::example());
    apply(&db, &repo).await;
    repo.edit(
        "tenants/acme.yaml",
        "{ email: dan@acme.example, role: user }",
        "{ email: dan@acme.example, role: admin }",
    );

    let plan = plan(&db, &repo).await;
    let changes: Vec<_> = plan.tenants.iter().flat_map(|t| t.visible_changes()).collect();
    assert_eq!(changes.len(), 1, "{changes:#?}");
    assert_eq!(changes[0].resource, Resource::User { tenant: "acme".into(), email: "dan@acme.example".into() });
    assert_eq!(changes[0].action, Action::Update);
    assert_eq!(changes[0].fields.len(), 1);
    assert_eq!(
        (changes[0].fields[0].field, &changes[0].fields[0].before, &changes[0].fields[0].after),
        ("role", &"user".into(), &"admin".into())
    );

    let report = apply(&db, &repo).await;
    assert_eq!(report.applied_changes, 1);
    assert_eq!(db.text("SELECT role FROM users WHERE email = 'dan@acme.example'").await, "admin");
}

#[tokio::test]
async fn every_applied_change_has_an_audit_row_naming_actor_resource_and_fields() {
    // FR-007, FR-LOG-003
    let (db, repo) = (TestDb::new().await, Repo::example());
    let report = apply(&db, &repo).await;
    assert_eq!(db.count("SELECT count(*) FROM audit_log").await, report.applied_changes as i64);

    repo.edit(
        "tenants/globex.yaml",
        "{ email: ivy@globex.example, role: admin }",
        "{ email: ivy@globex.example, role: user }",
    );
    apply(&db, &repo).await;
    let row: (String, String, String, String, Option<String>, serde_json::Value) = sqlx::query_as(
        "SELECT actor, actor_type, action, outcome, tenant, metadata FROM audit_log
         WHERE resource = 'tenant/globex/user/ivy@globex.example' AND action = 'user.update'",
    )
    .fetch_one(&db.pool)
    .await
    .expect("audit row");
    assert_eq!(
        (row.0.as_str(), row.1.as_str(), row.2.as_str(), row.3.as_str()),
        ("gatehouse-reconciler", "system", "user.update", "success")
    );
    assert_eq!(row.4.as_deref(), Some("globex"));
    assert_eq!(row.5["changes"], serde_json::json!([{ "field": "role", "before": "admin", "after": "user" }]));
}

#[tokio::test]
async fn the_audit_log_cannot_be_rewritten() {
    let (db, repo) = (TestDb::new().await, Repo::example());
    apply(&db, &repo).await;
    for sql in ["UPDATE audit_log SET outcome = 'failure'", "DELETE FROM audit_log", "TRUNCATE audit_log"] {
        let error = sqlx::query(sql).execute(&db.pool).await.expect_err(sql);
        assert!(error.to_string().contains("append-only"), "{sql}: {error}");
    }
}

#[tokio::test]
async fn the_applied_commit_is_recorded_when_the_repo_is_a_git_work_tree() {
    let (db, repo) = (TestDb::new().await, Repo::example());
    let commit = repo.commit_all("initial config");
    assert_eq!(gatehouse::source::work_tree_commit(repo.path()).as_deref(), Some(commit.as_str()));
    let report = gatehouse::reconcile::apply(&db.pool, &repo.validated(), Options::default(), Some(&commit))
        .await
        .expect("apply");
    assert_eq!(report.commit.as_deref(), Some(commit.as_str()));
    assert_eq!(db.count(&format!("SELECT count(*) FROM users WHERE applied_commit = '{commit}'")).await, 30);

    repo.edit("tenants/stark.yaml", "role: admin", "role: user");
    let dirty = gatehouse::source::work_tree_commit(repo.path()).expect("work tree");
    assert_eq!(dirty, format!("{commit}-dirty"));
}

#[tokio::test]
async fn a_user_removed_from_git_is_deleted_when_the_tenant_prunes() {
    let (db, repo) = (TestDb::new().await, Repo::example());
    apply(&db, &repo).await;
    repo.edit("tenants/acme.yaml", "    - { email: erin@acme.example, role: user }\n", "");
    let report = apply(&db, &repo).await;
    assert_eq!(outcome(&report, "acme"), Some(&TenantOutcome::Applied { changes: 1 }));
    assert_eq!(db.count("SELECT count(*) FROM users WHERE email = 'erin@acme.example'").await, 0);
    assert_eq!(db.count("SELECT count(*) FROM audit_log WHERE action = 'user.delete'").await, 1);
}

#[tokio::test]
async fn a_user_removed_from_git_is_kept_and_reported_as_an_orphan_when_prune_is_off() {
    let (db, repo) = (TestDb::new().await, Repo::example());
    apply(&db, &repo).await;
    repo.edit("tenants/hooli.yaml", "    - { email: dinesh@hooli.example, role: user }\n", "");
    let plan = plan(&db, &repo).await;
    let hooli = plan.tenants.iter().find(|t| t.name == "hooli").expect("hooli planned");
    assert_eq!(hooli.orphans, vec![Resource::User { tenant: "hooli".into(), email: "dinesh@hooli.example".into() }]);
    assert_eq!(hooli.visible_changes().count(), 0);

    let report = apply(&db, &repo).await;
    assert_eq!(report.orphans, 1);
    assert_eq!(db.count("SELECT count(*) FROM users WHERE email = 'dinesh@hooli.example'").await, 1);
    // Still reported on the next pass: an orphan is not forgotten once seen.
    assert_eq!(crate::helpers::plan(&db, &repo).await.summary().orphans, 1);
}

#[tokio::test]
async fn removing_more_than_half_of_a_tenants_users_is_refused_unless_allowed() {
    let (db, repo) = (TestDb::new().await, Repo::example());
    apply(&db, &repo).await;
    for user in ["tony", "happy", "rhodey", "morgan"] {
        repo.edit("tenants/stark.yaml", &format!("{user}@stark.example"), &format!("{user}-new@stark.example"));
    }
    repo.edit("tenants/stark.yaml", "max_projects: 5", "max_projects: 6");

    let refused = apply(&db, &repo).await;
    assert!(!refused.succeeded());
    let Some(TenantOutcome::Refused { reason }) = outcome(&refused, "stark") else { panic!("{refused:#?}") };
    assert!(reason.contains("would delete 4 of 6 users") && reason.contains("--allow-mass-delete"), "{reason}");
    assert_eq!(db.count("SELECT count(*) FROM users WHERE email = 'tony@stark.example'").await, 1);
    assert_eq!(
        db.count("SELECT count(*) FROM tenant_flags WHERE value = '6'").await,
        0,
        "nothing of a refused tenant is applied"
    );
    assert_eq!(
        db.count("SELECT count(*) FROM audit_log WHERE action = 'tenant.apply' AND outcome = 'failure'").await,
        1
    );

    let allowed = apply_with(&db, &repo, Options { allow_mass_delete: true }).await;
    assert!(allowed.succeeded(), "{allowed:#?}");
    assert_eq!(db.count("SELECT count(*) FROM users WHERE email LIKE '%-new@stark.example'").await, 4);
}

#[tokio::test]
async fn a_tenant_removed_from_git_is_deleted_only_with_allow_mass_delete() {
    let (db, repo) = (TestDb::new().await, Repo::example());
    apply(&db, &repo).await;
    repo.remove("tenants/globex.yaml");
    let refused = apply(&db, &repo).await;
    assert!(matches!(outcome(&refused, "globex"), Some(TenantOutcome::Refused { .. })), "{refused:#?}");
    assert_eq!(db.count("SELECT count(*) FROM tenants WHERE name = 'globex'").await, 1);

    let allowed = apply_with(&db, &repo, Options { allow_mass_delete: true }).await;
    assert!(allowed.succeeded(), "{allowed:#?}");
    assert_eq!(db.count("SELECT count(*) FROM tenants WHERE name = 'globex'").await, 0);
    assert_eq!(db.count("SELECT count(*) FROM users WHERE email LIKE '%@globex.example'").await, 0);
    assert_eq!(
        db.count("SELECT count(*) FROM audit_log WHERE action = 'tenant.delete' AND resource = 'tenant/globex'").await,
        1
    );
    assert_eq!(db.count("SELECT count(*) FROM audit_log WHERE action = 'user.delete' AND tenant = 'globex'").await, 4);
}

#[tokio::test]
async fn an_invalid_tenant_keeps_its_last_good_state_while_every_valid_tenant_converges() {
    let (db, repo) = (TestDb::new().await, Repo::example());
    apply(&db, &repo).await;
    repo.edit(
        "tenants/globex.yaml",
        "{ email: ivy@globex.example, role: admin }",
        "{ email: ivy@globex.example, role: boss }",
    );
    repo.edit("tenants/globex.yaml", "ai_module_enabled: true", "ai_module_enabled: false");
    repo.edit(
        "tenants/stark.yaml",
        "{ email: tony@stark.example, name: Tony Stark, role: admin }",
        "{ email: tony@stark.example, name: Tony Stark, role: user }",
    );

    let report = apply(&db, &repo).await;
    assert!(!report.succeeded());
    let Some(TenantOutcome::Invalid { problems }) = outcome(&report, "globex") else { panic!("{report:#?}") };
    assert!(problems[0].to_string().starts_with("tenants/globex.yaml:12:42:"), "{problems:?}");
    assert_eq!(outcome(&report, "stark"), Some(&TenantOutcome::Applied { changes: 1 }));
    assert_eq!(db.text("SELECT role FROM users WHERE email = 'ivy@globex.example'").await, "admin");
    assert_eq!(db.count("SELECT count(*) FROM tenant_flags f JOIN tenants t ON t.id = f.tenant_id WHERE t.name = 'globex' AND f.value = 'true'").await, 1);
    assert_eq!(db.text("SELECT role FROM users WHERE email = 'tony@stark.example'").await, "user");
}

#[tokio::test]
async fn a_file_that_no_longer_parses_holds_back_what_it_declared_instead_of_pruning_it() {
    let (db, repo) = (TestDb::new().await, Repo::example());
    apply(&db, &repo).await;
    repo.write("tenants/stark.yaml", "apiVersion: gatehouse.dev/v1\nkind: Tenant\nmetadata: { name: stark\n");
    let report = apply_with(&db, &repo, Options { allow_mass_delete: true }).await;
    assert!(matches!(outcome(&report, "stark"), Some(TenantOutcome::Invalid { .. })), "{report:#?}");
    assert_eq!(db.count("SELECT count(*) FROM tenants WHERE name = 'stark'").await, 1);
    assert_eq!(db.count("SELECT count(*) FROM users WHERE email LIKE '%@stark.example'").await, 6);
}

#[tokio::test]
async fn a_tenant_created_through_the_api_is_left_alone_by_git() {
    let (db, repo) = (TestDb::new().await, Repo::example());
    apply(&db, &repo).await;
    db.execute(
        "INSERT INTO tenants (id, name, display_name, plan_id, status)
         SELECT gen_random_uuid(), 'walk-in', 'Walk-in Ltd', id, 'active' FROM plans WHERE name = 'free'",
    )
    .await;
    let report = apply_with(&db, &repo, Options { allow_mass_delete: true }).await;
    assert!(report.succeeded());
    assert_eq!(db.count("SELECT count(*) FROM tenants WHERE name = 'walk-in' AND managed_by = 'api'").await, 1);
}

#[tokio::test]
async fn a_tenant_suspended_in_git_is_suspended_live() {
    // FR-OPS-001: the status change arrives through Git.
    let (db, repo) = (TestDb::new().await, Repo::example());
    apply(&db, &repo).await;
    repo.edit("tenants/globex.yaml", "plan: pro", "plan: pro\n  status: suspended");
    apply(&db, &repo).await;
    assert_eq!(db.text("SELECT status FROM tenants WHERE name = 'globex'").await, "suspended");
}

#[tokio::test]
async fn a_user_enabled_again_in_git_returns_to_invited_until_they_have_a_credential() {
    let (db, repo) = (TestDb::new().await, Repo::example());
    apply(&db, &repo).await;
    repo.edit("tenants/acme.yaml", "role: admin, status: disabled", "role: admin");
    apply(&db, &repo).await;
    assert_eq!(db.text("SELECT status FROM users WHERE email = 'bob@acme.example'").await, "invited");
}

#[tokio::test]
async fn a_tenant_that_fails_in_the_database_does_not_hold_back_the_others() {
    let (db, repo) = (TestDb::new().await, Repo::example());
    apply(&db, &repo).await;
    // An API-created user elsewhere already owns the email Git now gives to stark.
    db.execute(
        "INSERT INTO users (id, tenant_id, email, role, status)
         SELECT gen_random_uuid(), id, 'nick@shield.example', 'user', 'active' FROM tenants WHERE name = 'acme'",
    )
    .await;
    repo.edit(
        "tenants/stark.yaml",
        "    - { email: morgan@stark.example, role: user }",
        "    - { email: morgan@stark.example, role: user }\n    - { email: nick@shield.example, role: user }",
    );
    repo.edit(
        "tenants/globex.yaml",
        "{ email: kim@globex.example, role: user }",
        "{ email: kim@globex.example, role: admin }",
    );

    let report = apply(&db, &repo).await;
    let Some(TenantOutcome::Failed { reason }) = outcome(&report, "stark") else { panic!("{report:#?}") };
    assert!(reason.contains("users_email_key"), "{reason}");
    assert_eq!(outcome(&report, "globex"), Some(&TenantOutcome::Applied { changes: 1 }));
    assert_eq!(db.text("SELECT role FROM users WHERE email = 'kim@globex.example'").await, "admin");
}

#[tokio::test]
async fn only_one_reconciler_applies_at_a_time() {
    let (db, repo) = (TestDb::new().await, Repo::example());
    let held = gatehouse::store::try_lock_reconciler(&db.pool).await.expect("first lock");
    let second = gatehouse::reconcile::apply(&db.pool, &repo.validated(), Options::default(), None).await;
    assert!(matches!(second, Err(gatehouse::store::StoreError::Busy)), "{second:?}");
    held.release().await.expect("released");
    let third = gatehouse::reconcile::apply(&db.pool, &repo.validated(), Options::default(), None)
        .await
        .expect("lock released");
    assert!(third.succeeded());
}

#[tokio::test]
async fn a_plan_for_an_invalid_tenant_says_why_it_is_held_back() {
    let (db, repo) = (TestDb::new().await, Repo::example());
    apply(&db, &repo).await;
    repo.edit("tenants/hooli.yaml", "plan: pro", "plan: platinum");
    let plan = plan(&db, &repo).await;
    let hooli = plan.tenants.iter().find(|t| t.name == "hooli").expect("hooli");
    let TenantState::Invalid { problems } = &hooli.state else { panic!("{hooli:#?}") };
    assert_eq!(
        problems[0].to_string(),
        "tenants/hooli.yaml:9:9: spec.plan: plan `platinum` is not declared; declared plans: enterprise, free, pro"
    );
}

#[tokio::test]
async fn a_user_moved_between_tenants_in_different_batches_ends_up_in_the_new_one() {
    let db = TestDb::new().await;
    let repo = Repo::example();
    let tenant = |t: usize, extra: &str| {
        format!(
            "apiVersion: gatehouse.dev/v1\nkind: Tenant\nmetadata: {{ name: m{t:03} }}\nspec:\n  displayName: M {t}\n  plan: free\n  users:\n    - {{ email: owner@m{t:03}.example, role: owner }}\n{extra}"
        )
    };
    for t in 0..600 {
        let extra = if t == 599 { "    - { email: mover@corp.example, role: user }\n" } else { "" };
        repo.write(&format!("many/m{t:03}.yaml"), &tenant(t, extra));
    }
    assert!(apply(&db, &repo).await.succeeded());
    // m000 and m599 are planned in different batches; m000 (first) receives the user m599 still has.
    repo.write("many/m000.yaml", &tenant(0, "    - { email: mover@corp.example, role: admin }\n"));
    repo.write("many/m599.yaml", &tenant(599, ""));
    let report = apply(&db, &repo).await;
    assert!(report.succeeded(), "{:?}", report.tenants);
    assert_eq!(
        db.text("SELECT t.name FROM users u JOIN tenants t ON t.id = u.tenant_id WHERE u.email = 'mover@corp.example'")
            .await,
        "m000"
    );
}
