//! The operator's page of one tenant (issue 23.3, FR-OPS-001, FR-FLAG-001): flags with the plan's
//! default, the override and the effective value, applications, budget and the overrides waiting
//! for approval (approved here, two people other than the requester), the sync state with each
//! drifted field (applied, live, who, when) and the history; then the staff screens in Chromium,
//! signed in at the real identity provider (npm `oidc-provider`): provisioning by keyboard alone
//! with JavaScript off, and every screen through axe-core, in English and German.

use std::time::Duration;

use serde_json::json;

use crate::console::{console_sign_in, get, post, staff_sign_in, staffed};
use crate::helpers::{OPERATOR, PASSWORD, activate, call, within};
use crate::identity::login;
use crate::login::enrol_totp;
use crate::operators::person;

/// FR-OPS-001, FR-FLAG-001: one tenant on one page for staff, its drift field by field, a budget
/// override approved in the browser as the JSON API approves it; auditors read; tenant owners are
/// refused (audited).
#[tokio::test]
async fn operators_see_a_tenants_flags_budget_drift_and_history_and_approve_an_override() {
    let (db, _repo, server, idp) = staffed().await;
    for (who, group) in [("ada", "platform-ops"), ("grace", "platform-ops"), ("aud", "platform-audit")] {
        let email = format!("{who}@ops.example");
        idp.account(&email, person(&email, json!([group]))).await;
    }
    within(Duration::from_secs(20), "the first pass", || async {
        call(&server, "GET", "/v1/sync/status", Some(OPERATOR), None).await.body["state"] == "Synced"
    })
    .await;

    // Drift on umbrella, which does not heal itself: a role changed behind Gatehouse's back.
    db.execute("UPDATE users SET role = 'admin' WHERE email = 'leon@umbrella.example'").await;
    assert_eq!(call(&server, "POST", "/v1/sync", Some(OPERATOR), None).await.status, 202);
    within(Duration::from_secs(20), "the drift is found", || async {
        call(&server, "GET", "/v1/sync/tenants/umbrella", Some(OPERATOR), None).await.body["state"] == "Drifted"
    })
    .await;

    let (mut ada, _) = staff_sign_in(&server, &idp, "ada@ops.example").await;
    // The list filters by sync state, on the page and through the API.
    let drifted = get(&server, "/console?q=&state=&plan=&sync=Drifted", &mut ada).await;
    assert!(drifted.text.contains(">umbrella<") && !drifted.text.contains(">acme<"), "{}", drifted.text);
    assert!(drifted.text.contains("<td>Drifted</td>"), "{}", drifted.text);
    let synced = get(&server, "/console?sync=Synced", &mut ada).await;
    assert!(synced.text.contains(">acme<") && !synced.text.contains(">umbrella<"), "{}", synced.text);
    let api = call(&server, "GET", "/v1/tenants?sync=Drifted", Some(OPERATOR), None).await;
    let names: Vec<&str> =
        api.body["tenants"].as_array().expect("tenants").iter().filter_map(|t| t["name"].as_str()).collect();
    assert_eq!(names, ["umbrella"], "{}", api.text);
    let bad = call(&server, "GET", "/v1/tenants?sync=Sideways", Some(OPERATOR), None).await;
    assert_eq!(bad.status, 400, "{}", bad.text);
    let list = get(&server, "/console?q=umb&state=&plan=", &mut ada).await;
    assert!(
        list.text.contains("href=\"/console/tenants/umbrella\""),
        "the list leads to the tenant's page: {}",
        list.text
    );
    let umbrella = get(&server, "/console/tenants/umbrella", &mut ada).await;
    assert_eq!(umbrella.status, 200, "{}", umbrella.text);
    assert!(umbrella.text.contains("Git (tenants/umbrella.yaml:6)"), "its file and line: {}", umbrella.text);
    assert!(umbrella.text.contains("<dd>Drifted</dd>"), "{}", umbrella.text);
    let row = umbrella.text.split("<td><code>role</code></td>").nth(1).expect("the drifted field's row");
    let row = row.split("</tr>").next().unwrap_or_default();
    assert!(row.contains("<td>user</td><td>admin</td>"), "applied, then live: {row}");
    assert!(row.contains("changed outside Gatehouse"), "who, from the audit log (nobody here): {row}");
    assert!(umbrella.text.contains("id=\"history\""), "{}", umbrella.text);
    assert!(
        umbrella.text.contains("<td>Start</td>") || umbrella.text.contains("<td>Sync now</td>"),
        "{}",
        umbrella.text
    );

    // acme's flags: the plan's default, acme's own value from its file, the effective value.
    let acme = get(&server, "/console/tenants/acme", &mut ada).await;
    let flag = acme
        .text
        .split("<code>max_projects</code></th>")
        .nth(1)
        .expect("max_projects")
        .split("</tr>")
        .next()
        .unwrap_or_default();
    assert!(flag.contains("<td>1000 <span class=\"note\">(Git)</span></td><td><strong>1000</strong></td>"), "{flag}");
    assert!(acme.text.contains("<code>billing-app</code>"), "its applications: {}", acme.text);

    // A budget override asked by globex's owner waits for two people other than them.
    activate(&db, &["hank@globex.example"]).await;
    let hank = owner_token(&server, "hank@globex.example").await;
    let asked = json!({ "amount": 5, "reason": "quarter-end import", "expiresIn": "1d" });
    let requested = call(&server, "POST", "/v1/tenants/globex/budget/overrides", Some(&hank), Some(asked)).await;
    assert_eq!(requested.status, 201, "{}", requested.text);
    let globex = get(&server, "/console/tenants/globex", &mut ada).await;
    assert!(
        globex.text.contains("quarter-end import") && globex.text.contains("by hank@globex.example"),
        "{}",
        globex.text
    );
    let id = requested.body["id"].as_str().expect("an id");
    let approve = [("action", "approve"), ("override", id)];
    let approved = post(&server, "/console/tenants/globex", &mut ada, &approve).await;
    assert_eq!(
        crate::login::header(&approved, "location"),
        Some("/console/tenants/globex?approved=1"),
        "{}",
        approved.text
    );
    let again = post(&server, "/console/tenants/globex", &mut ada, &approve).await;
    assert_eq!(again.status, 409, "{}", again.text);
    // An auditor sees the override waiting, without the form that approves it, and is refused it.
    let (mut aud, _) = staff_sign_in(&server, &idp, "aud@ops.example").await;
    let waiting = get(&server, "/console/tenants/globex", &mut aud).await;
    assert!(
        waiting.text.contains("quarter-end import") && !waiting.text.contains("name=\"override\""),
        "{}",
        waiting.text
    );
    let refused = post(&server, "/console/tenants/globex", &mut aud, &approve).await;
    assert_eq!(refused.status, 403, "{}", refused.text);
    let (mut grace, _) = staff_sign_in(&server, &idp, "grace@ops.example").await;
    assert_eq!(post(&server, "/console/tenants/globex", &mut grace, &approve).await.status, 303);
    let granted = call(&server, "GET", "/v1/tenants/globex/budget/overrides", Some(OPERATOR), None).await;
    assert_eq!(granted.body["overrides"][0]["status"], "granted", "{}", granted.text);
    assert_eq!(granted.body["overrides"][0]["approvals"], json!(["ada@ops.example", "grace@ops.example"]));
    let audited = "SELECT count(*) FROM audit_log WHERE action IN ('budget.override.approve', 'budget.override.grant') AND outcome = 'success' AND tenant = 'globex'";
    assert_eq!(db.count(audited).await, 2);

    // A tenant's owner is refused the page, audited.
    activate(&db, &["alice@acme.example"]).await;
    let secret = enrol_totp(&server, "alice@acme.example").await;
    let mut alice = console_sign_in(&server, "alice@acme.example", Some(&secret)).await;
    let owner = get(&server, "/console/tenants/acme", &mut alice).await;
    assert_eq!(owner.status, 403, "{}", owner.text);
    let denied = "SELECT count(*) FROM audit_log WHERE action = 'api.denied' AND actor = 'alice@acme.example'";
    within(Duration::from_secs(5), "the refusal is audited", || async { db.count(denied).await >= 1 }).await;

    crate::web::nu_check(vec![
        ("an operator's tenant page with drift".into(), umbrella.text),
        ("an operator's tenant page with flags".into(), acme.text),
        ("an override waiting".into(), globex.text),
        ("an approval refused".into(), again.text),
    ])
    .await;
}

/// An owner's access token: signed in, TOTP enrolled and confirmed (owners must have it).
async fn owner_token(server: &crate::helpers::Served, email: &str) -> String {
    let first = login(server, email, PASSWORD).await;
    let access = first.body["access_token"].as_str().expect("a token").to_owned();
    let enrolment = call(server, "POST", "/v1/auth/mfa/totp/enrol", Some(&access), None).await;
    let secret = enrolment.body["secret"].as_str().expect("a secret").to_owned();
    let confirm = json!({ "code": crate::identity::totp_now(&secret, 0) });
    let confirmed = call(server, "POST", "/v1/auth/mfa/totp/confirm", Some(&access), Some(confirm)).await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.text);
    confirmed.body["access_token"].as_str().map_or(access, str::to_owned)
}

/// IF-OPS-CONSOLE, IF-AUDIT-CONSOLE, WCAG 2.1 AA in Chromium: an operator signs in at the identity
/// provider, provisions a tenant with the keyboard alone and JavaScript off, and every staff screen
/// (tenants, a tenant's page, the audit log, a tenant's users and SSO as the operator sees them,
/// German) passes axe-core with no violation; screenshots for the README.
#[tokio::test]
async fn staff_screens_in_chromium_pass_axe_and_provisioning_works_by_keyboard() {
    let (db, _repo, server, idp) = staffed().await;
    idp.account("ada@ops.example", person("ada@ops.example", json!(["platform-ops"]))).await;
    idp.account("aud@ops.example", person("aud@ops.example", json!(["platform-audit"]))).await;
    let shots = crate::helpers::project_dir().join("target/screenshots");
    std::fs::create_dir_all(&shots).expect("target/screenshots");
    let base = server.base.clone();
    let result = tokio::task::spawn_blocking(move || {
        crate::login::run_script(
            "console_staff.mjs",
            &[
                ("BASE", base),
                ("IDP_LOGIN", "ada@ops.example".into()),
                ("AUDITOR_LOGIN", "aud@ops.example".into()),
                ("TENANT", "lumon".into()),
                ("OWNER", "olive@lumon.example".into()),
                ("SCREENSHOTS", shots.display().to_string()),
            ],
        )
    })
    .await
    .expect("the script");
    assert_eq!(result["problems"], json!([]), "{result}");
    assert_eq!(result["provisioned"], true, "{result}");
    assert!(result["keyboardStops"].as_u64().is_some_and(|n| n < 15), "reached in a few Tab presses: {result}");
    assert_eq!(result["germanLang"], "de", "{result}");
    assert_eq!(
        result["germanStatus"], "Die Organisation lumon-de ist eingerichtet; ihr Inhaber ist eingeladen.",
        "provisioned in German: {result}"
    );
    assert_eq!(result["auditorLang"], "de", "the auditor reads German pages: {result}");
    // FR-LOG-002 in the browser: the auditor's download is exactly the filter's rows, read by
    // Python's csv module as a spreadsheet import would.
    let file = result["csvFile"].as_str().expect("the downloaded CSV").to_owned();
    let script = crate::helpers::project_dir().join("tests/support/csv_rows.py");
    let read = std::process::Command::new("python3").arg(&script).args(["--file", &file]).output().expect("python3");
    assert!(read.status.success(), "{}", String::from_utf8_lossy(&read.stderr));
    let csv: serde_json::Value = serde_json::from_slice(&read.stdout).expect("JSON");
    let rows = csv["rows"].as_array().expect("rows");
    assert!(rows.iter().all(|row| row["action"] == "tenant.create"), "only the filter's rows: {csv}");
    let mut created: Vec<&str> = rows
        .iter()
        .filter(|row| row["actor"] == "ada@ops.example")
        .map(|row| row["tenant"].as_str().unwrap_or_default())
        .collect();
    created.sort_unstable();
    assert_eq!(created, ["lumon", "lumon-de"], "{csv}");
    let _ = std::fs::remove_file(&file);
    let exported = "SELECT count(*) FROM audit_log WHERE action = 'audit.export' AND actor = 'aud@ops.example'";
    assert_eq!(db.count(exported).await, 1, "the browser's export is audited");
    let screens = result["axe"].as_object().expect("axe results");
    assert!(screens.len() >= 7, "{result}");
    for (screen, violations) in screens {
        assert_eq!(violations, &json!([]), "axe (WCAG 2.1 A and AA) on {screen}");
    }
    let invited = "SELECT count(*) FROM users u JOIN tenants t ON t.id = u.tenant_id WHERE t.name = 'lumon' AND u.email = 'olive@lumon.example' AND u.role = 'owner' AND u.status = 'invited'";
    assert_eq!(db.count(invited).await, 1, "provisioned with its owner invited");
    let german = "SELECT count(*) FROM users WHERE email = 'de-olive@lumon.example' AND language IS NULL";
    assert_eq!(db.count(german).await, 1, "an owner provisioned in German, invited (mail in English until known)");
    let audited = "SELECT count(*) FROM audit_log WHERE action = 'tenant.create' AND actor = 'ada@ops.example'";
    assert_eq!(db.count(audited).await, 2);
}

/// IF-OPS-CONSOLE "system monitoring", FR-SYS-001..003: the platform page shows the tenants per
/// sync state as a picture with its words, the replicas and the leader, the outboxes and the last
/// checkpoint; operators pause, resume and sync now there (audited); an application's key is
/// issued with its secret shown once on a page no cache keeps, works at once, and is revoked;
/// auditors read and change nothing.
#[tokio::test]
async fn operators_run_the_platform_and_issue_and_revoke_keys_in_the_console() {
    let (db, _repo, server, idp) = staffed().await;
    idp.account("ada@ops.example", person("ada@ops.example", json!(["platform-ops"]))).await;
    idp.account("aud@ops.example", person("aud@ops.example", json!(["platform-audit"]))).await;
    within(Duration::from_secs(20), "the first pass", || async {
        call(&server, "GET", "/v1/sync/status", Some(OPERATOR), None).await.body["state"] == "Synced"
    })
    .await;
    let (mut ada, _) = staff_sign_in(&server, &idp, "ada@ops.example").await;

    let platform = get(&server, "/console/platform", &mut ada).await;
    assert_eq!(platform.status, 200, "{}", platform.text);
    assert!(platform.text.contains("role=\"img\" aria-labelledby=\"sync-picture-title\""), "{}", platform.text);
    let tenants = db.count("SELECT count(*) FROM tenants").await;
    assert!(
        platform.text.contains(&format!("{tenants} tenants. Synced: {tenants},")),
        "the picture in words: {}",
        platform.text
    );
    let replica = db.text("SELECT name FROM replicas").await;
    assert!(platform.text.contains(&format!("{replica} <strong>(leader)</strong>")), "{}", platform.text);
    assert!(platform.text.contains("Webhooks") && platform.text.contains("signed checkpoint"), "{}", platform.text);
    let api = call(&server, "GET", "/v1/platform", Some(OPERATOR), None).await;
    assert_eq!(
        (api.body["leader"].as_str(), api.body["replicas"][0]["name"].as_str()),
        (Some(replica.as_str()), Some(replica.as_str())),
        "{}",
        api.text
    );

    for (action, said, audited) in [
        ("pause", "Reconciling is paused.", "sync.pause"),
        ("resume", "Reconciling resumes.", "sync.resume"),
        ("sync", "A pass is requested.", "sync.request"),
    ] {
        let done = post(&server, "/console/platform", &mut ada, &[("action", action)]).await;
        let location = crate::login::header(&done, "location").expect("back to the page").to_owned();
        assert!(get(&server, &location, &mut ada).await.text.contains(said), "{action}");
        let sql = format!("SELECT count(*) FROM audit_log WHERE action = '{audited}' AND actor = 'ada@ops.example'");
        assert_eq!(db.count(&sql).await, 1, "{audited}");
        if action == "pause" {
            assert_eq!(db.text("SELECT paused::text FROM sync_state").await, "true");
        }
    }

    // An application's key: issued with its secret shown once, working at once, then revoked.
    let apps = get(&server, "/console/apps", &mut ada).await;
    assert!(
        apps.text.contains("href=\"/console/apps/billing-app\"")
            && apps.text.contains("Git (applications/billing-app.yaml)"),
        "{}",
        apps.text
    );
    let issued = post(
        &server,
        "/console/apps/billing-app",
        &mut ada,
        &[("action", "issue"), ("name", "ci"), ("expires_in", "90d")],
    )
    .await;
    assert_eq!(issued.status, 201, "{}", issued.text);
    assert_eq!(crate::login::header(&issued, "cache-control"), Some("no-store"));
    let secret = issued
        .text
        .split("id=\"secret\" readonly value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("the secret")
        .to_owned();
    assert!(secret.starts_with("gatehouse_"), "{secret}");
    let key_id = secret.split('_').nth(1).expect("a key id").to_owned();
    let flags = call(&server, "GET", "/v1/tenants/acme/flags", Some(&secret), None).await;
    assert_eq!(flags.status, 200, "the key works at once: {}", flags.text);
    let later = get(&server, "/console/apps/billing-app", &mut ada).await;
    assert!(later.text.contains(&key_id) && !later.text.contains(&secret), "listed, never its secret again");
    let stored =
        format!("SELECT count(*) FROM audit_log WHERE metadata::text LIKE '%{}%'", &secret[secret.len() - 12..]);
    assert_eq!(db.count(&stored).await, 0, "no secret in the audit log");
    let unconfirmed =
        post(&server, "/console/apps/billing-app", &mut ada, &[("action", "revoke"), ("key", &key_id)]).await;
    assert_eq!(unconfirmed.status, 400, "{}", unconfirmed.text);
    let revoked = post(
        &server,
        "/console/apps/billing-app",
        &mut ada,
        &[("action", "revoke"), ("key", &key_id), ("confirm", "yes")],
    )
    .await;
    assert_eq!(revoked.status, 303, "{}", revoked.text);
    within(Duration::from_secs(5), "the revoked key is refused", || async {
        call(&server, "GET", "/v1/tenants/acme/flags", Some(&secret), None).await.status == 401
    })
    .await;
    for action in ["api_key.create", "api_key.revoke"] {
        let sql = format!("SELECT count(*) FROM audit_log WHERE action = '{action}' AND actor = 'ada@ops.example'");
        assert_eq!(db.count(&sql).await, 1, "{action}");
    }

    // Auditors read both pages, without a form, and are refused the actions.
    let (mut aud, _) = staff_sign_in(&server, &idp, "aud@ops.example").await;
    let read = get(&server, "/console/platform", &mut aud).await;
    assert!(
        read.status == 200 && !read.text.contains("value=\"pause\"") && !read.text.contains("value=\"resume\""),
        "{}",
        read.text
    );
    assert!(read.text.contains("Only operators read the outboxes"), "{}", read.text);
    assert_eq!(post(&server, "/console/platform", &mut aud, &[("action", "pause")]).await.status, 403);
    assert_eq!(db.text("SELECT paused::text FROM sync_state").await, "false", "nothing paused");
    let denied = "SELECT count(*) FROM audit_log WHERE action = 'api.denied' AND actor = 'aud@ops.example'";
    within(Duration::from_secs(5), "the refusal is audited", || async { db.count(denied).await >= 1 }).await;
    let api = call(&server, "GET", "/v1/platform", Some(OPERATOR), None).await;
    assert!(api.body["outboxes"]["mailWaiting"].is_i64(), "operators read the outboxes: {}", api.text);
    let app = get(&server, "/console/apps/billing-app", &mut aud).await;
    assert!(app.status == 200 && !app.text.contains("value=\"issue\""), "{}", app.text);
    assert_eq!(post(&server, "/console/apps/billing-app", &mut aud, &[("action", "issue")]).await.status, 403);

    crate::web::nu_check(vec![
        ("the platform page".into(), platform.text),
        ("the applications".into(), apps.text),
        ("a key just issued".into(), issued.text),
        ("an application's keys".into(), later.text),
    ])
    .await;
}
