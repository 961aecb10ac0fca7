//! Interactive administration (issue 12) against the real binary: tenants and users created,
//! changed, suspended and safely deleted through the API, with Git as an opt-in owner.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{HttpResponse, OPERATOR, PASSWORD, Repo, Served, TestDb, activate, call, request, within};
use crate::identity::{SmtpSink, link_in, login, started, str_of, totp_now};
use crate::operators::{Idp, cli, json_out, person};

/// Accepts the invitation mailed to `email` (to join `organisation`) with the test password.
async fn accept_mailed_invitation(server: &Served, sink: &SmtpSink, email: &str, organisation: &str) {
    let mail = sink.mail(email, &format!("You are invited to {organisation}")).await;
    let (_, token) = link_in(&mail);
    let body = json!({ "token": token, "password": PASSWORD });
    let accepted = call(server, "POST", "/v1/auth/invitations/accept", None, Some(body)).await;
    assert_eq!(accepted.status, 204, "{email}: {}", accepted.text);
}

fn code(response: &HttpResponse) -> &str {
    response.body["error"]["code"].as_str().unwrap_or("")
}

async fn create_tenant(server: &Served, name: &str, owner: &str) -> HttpResponse {
    let body =
        json!({ "name": name, "displayName": format!("{name} Inc"), "plan": "free", "owner": { "email": owner } });
    let created = call(server, "POST", "/v1/tenants", Some(OPERATOR), Some(body)).await;
    assert_eq!(created.status, 201, "{}", created.text);
    created
}

async fn with_headers(
    server: &Served,
    method: &str,
    path: &str,
    bearer: &str,
    extra: &[(&'static str, &str)],
    body: Option<Value>,
) -> HttpResponse {
    let mut headers = vec![("authorization", format!("Bearer {bearer}"))];
    headers.extend(extra.iter().map(|(n, v)| (*n, (*v).to_owned())));
    let body = body.map_or_else(Vec::new, |b| {
        headers.push(("content-type", "application/json".to_owned()));
        serde_json::to_vec(&b).expect("json")
    });
    request(method, format!("{}{path}", server.base), headers, body).await
}

/// SC-001, UC-PROV-001, FR-TENANT-001: with no Git edit, an operator signed in at the identity
/// provider creates a tenant with its owner from the CLI; the owner accepts the mailed invitation,
/// enrols TOTP and invites a user; the user accepts and signs in; a developer registers an
/// application, enables it for the tenant and issues a key that reads the tenant's flags.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_goes_from_nothing_to_serving_flags_without_a_git_edit() {
    let db = TestDb::new().await;
    let repo = Repo::example();
    let sink = SmtpSink::start();
    let smtp = sink.url();
    let idp = Idp::start();
    let server = started(
        &repo,
        &db,
        &[
            ("GATEHOUSE_SMTP_URL", &smtp),
            ("GATEHOUSE_MAIL_FROM", "Gatehouse <noreply@gatehouse.test>"),
            ("GATEHOUSE_OIDC_ISSUER_URL", &idp.issuer),
            ("GATEHOUSE_OIDC_AUDIENCE", "gatehouse"),
            ("GATEHOUSE_OIDC_USERNAME_CLAIM", "email"),
            ("GATEHOUSE_OIDC_GROUP_BINDINGS", "platform-ops=operator"),
        ],
    )
    .await;
    let began = std::time::Instant::now();
    let operator = idp.token("ada", person("ada@ops.example", json!(["platform-ops"]))).await;

    let created = json_out(
        &cli(
            &server,
            &operator,
            &[
                "tenants",
                "create",
                "newco",
                "--display-name",
                "Newco Inc",
                "--plan",
                "free",
                "--owner",
                "founder@newco.example",
            ],
        ),
        "tenants create",
    );
    assert_eq!((created["state"].as_str(), created["managedBy"].as_str()), (Some("active"), Some("api")), "{created}");
    let by: String = db.text("SELECT actor FROM audit_log WHERE action = 'tenant.create' AND tenant = 'newco'").await;
    assert_eq!(by, "ada@ops.example", "the audit row names the operator");

    // The owner accepts the invitation, enrols TOTP.
    accept_mailed_invitation(&server, &sink, "founder@newco.example", "Newco Inc").await;
    let first = login(&server, "founder@newco.example", PASSWORD).await;
    assert_eq!(first.body["session"]["pending"], "mfa_enrol", "{}", first.text);
    let pending = str_of(&first.body, "access_token").to_owned();
    let enrolment = call(&server, "POST", "/v1/auth/mfa/totp/enrol", Some(&pending), None).await;
    let secret = str_of(&enrolment.body, "secret").to_owned();
    let confirmed = call(
        &server,
        "POST",
        "/v1/auth/mfa/totp/confirm",
        Some(&pending),
        Some(json!({ "code": totp_now(&secret, 0) })),
    )
    .await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.text);
    let owner = str_of(&confirmed.body, "access_token").to_owned();

    // The owner invites a user (with the CLI, as a session), who accepts and signs in.
    let invited = json_out(
        &cli(&server, &owner, &["users", "invite", "newco", "dev@newco.example", "--role", "user", "--name", "Dev"]),
        "users invite",
    );
    assert_eq!((invited["status"].as_str(), invited["role"].as_str()), (Some("invited"), Some("user")), "{invited}");
    accept_mailed_invitation(&server, &sink, "dev@newco.example", "Newco Inc").await;
    let dev = login(&server, "dev@newco.example", PASSWORD).await;
    assert_eq!((dev.status, dev.body["session"]["tenant"].as_str()), (200, Some("newco")), "{}", dev.text);

    // A developer registers an application, enables it for the tenant and reads its flags.
    let app = [
        "apps",
        "create",
        "newco-app",
        "--display-name",
        "Newco App",
        "--owner",
        "dev@corp.example",
        "--scope",
        "flags:read",
    ];
    json_out(&cli(&server, &operator, &app), "apps create");
    let issued =
        json_out(&cli(&server, &operator, &["keys", "create", "--app", "newco-app", "--name", "web"]), "keys create");
    let key = str_of(&issued, "secret").to_owned();
    assert_eq!(call(&server, "GET", "/v1/tenants/newco/flags", Some(&key), None).await.status, 403, "not enabled yet");
    json_out(&cli(&server, &operator, &["tenants", "update", "newco", "--app", "newco-app"]), "tenants update");
    let flags = call(&server, "GET", "/v1/tenants/newco/flags", Some(&key), None).await;
    assert_eq!(flags.status, 200, "{}", flags.text);
    assert_eq!(flags.body["flags"]["max_projects"]["value"], 3, "the free plan's default: {}", flags.text);
    println!("SC-001 scripted, no Git edit: {:.1} s", began.elapsed().as_secs_f64());

    // Every step is on the record under its actor.
    for (action, actor) in [
        ("tenant.create", "ada@ops.example"),
        ("user.invite", "founder@newco.example"),
        ("tenant.update", "ada@ops.example"),
    ] {
        let rows = db
            .count(&format!(
                "SELECT count(*) FROM audit_log WHERE action = '{action}' AND actor = '{actor}' AND tenant = 'newco'"
            ))
            .await;
        assert!(rows >= 1, "{action} by {actor}");
    }
}

/// FR-TENANT-004, FR-TENANT-006: admins may not touch owners; nobody removes, demotes or disables
/// the last active owner, also when two demotions race.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_owner_stays_and_admins_cannot_touch_owners() {
    let db = TestDb::new().await;
    let repo = Repo::example();
    let server = started(&repo, &db, &[("GATEHOUSE_OWNERS_NEED_MFA", "false")]).await;
    create_tenant(&server, "duo", "one@duo.example").await;
    for (email, role) in [("two@duo.example", "owner"), ("admin@duo.example", "admin"), ("user@duo.example", "user")] {
        let invited = call(
            &server,
            "POST",
            "/v1/tenants/duo/users",
            Some(OPERATOR),
            Some(json!({ "email": email, "role": role })),
        )
        .await;
        assert_eq!(invited.status, 201, "{}", invited.text);
    }
    activate(&db, &["one@duo.example", "two@duo.example", "admin@duo.example", "user@duo.example"]).await;
    let admin = str_of(&login(&server, "admin@duo.example", PASSWORD).await.body, "access_token").to_owned();

    // An admin manages users but not owners.
    let user_path = "/v1/tenants/duo/users/user@duo.example";
    let disabled = call(&server, "PATCH", user_path, Some(&admin), Some(json!({ "status": "disabled" }))).await;
    assert_eq!((disabled.status, disabled.body["status"].as_str()), (200, Some("disabled")), "{}", disabled.text);
    for (method, path, body) in [
        ("PATCH", "/v1/tenants/duo/users/one@duo.example", Some(json!({ "role": "admin" }))),
        ("DELETE", "/v1/tenants/duo/users/two@duo.example", None),
        ("PATCH", user_path, Some(json!({ "role": "owner" }))),
        ("POST", "/v1/tenants/duo/users", Some(json!({ "email": "three@duo.example", "role": "owner" }))),
    ] {
        let refused = call(&server, method, path, Some(&admin), body).await;
        assert_eq!((refused.status, code(&refused)), (403, "forbidden"), "{method} {path}: {}", refused.text);
        assert!(
            refused.body["error"]["message"].as_str().is_some_and(|m| m.contains("owners of tenant `duo`")),
            "{}",
            refused.text
        );
    }
    assert_eq!(db.count("SELECT count(*) FROM users WHERE role = 'owner' AND tenant_id = (SELECT id FROM tenants WHERE name = 'duo')").await, 2);
    // Nor lift an owner's lockout (that would make guessing their password unlimited).
    let unlock = call(&server, "DELETE", "/v1/tenants/duo/users/one@duo.example/lockout", Some(&admin), None).await;
    assert_eq!((unlock.status, code(&unlock)), (403, "forbidden"), "{}", unlock.text);
    let unlock = call(&server, "DELETE", "/v1/tenants/duo/users/user@duo.example/lockout", Some(&admin), None).await;
    assert_eq!(unlock.status, 200, "{}", unlock.text);
    // Nor end an owner's sessions or resend an owner's invitation, which voids the earlier link
    // (issue 25.9): both are owner management. The user's are the admin's to manage.
    let one = str_of(&login(&server, "one@duo.example", PASSWORD).await.body, "access_token").to_owned();
    let ended = call(&server, "DELETE", "/v1/tenants/duo/users/one@duo.example/sessions", Some(&admin), None).await;
    assert_eq!((ended.status, code(&ended)), (403, "forbidden"), "{}", ended.text);
    assert_eq!(call(&server, "GET", "/v1/auth/session", Some(&one), None).await.status, 200, "the owner is signed in");
    let ended = call(&server, "DELETE", "/v1/tenants/duo/users/user@duo.example/sessions", Some(&admin), None).await;
    assert_eq!(ended.status, 200, "{}", ended.text);
    let invited_owner = json!({ "email": "four@duo.example", "role": "owner" });
    assert_eq!(call(&server, "POST", "/v1/tenants/duo/users", Some(OPERATOR), Some(invited_owner)).await.status, 201);
    let resent = call(&server, "POST", "/v1/tenants/duo/users/four@duo.example/invitation", Some(&admin), None).await;
    assert_eq!((resent.status, code(&resent)), (403, "forbidden"), "{}", resent.text);
    assert_eq!(
        call(&server, "DELETE", "/v1/tenants/duo/users/four@duo.example", Some(OPERATOR), None).await.status,
        204
    );

    // Two demotions of the last two owners race: exactly one passes.
    let demote = |email: &'static str| {
        let base = server.base.clone();
        tokio::spawn(async move {
            request(
                "PATCH",
                format!("{base}/v1/tenants/duo/users/{email}"),
                vec![("authorization", format!("Bearer {OPERATOR}")), ("content-type", "application/json".into())],
                br#"{"role":"admin"}"#.to_vec(),
            )
            .await
        })
    };
    let (a, b) = (demote("one@duo.example"), demote("two@duo.example"));
    let (a, b) = (a.await.expect("a"), b.await.expect("b"));
    let mut outcomes = [(a.status, code(&a).to_owned()), (b.status, code(&b).to_owned())];
    outcomes.sort();
    assert_eq!(outcomes, [(200, String::new()), (409, "last_owner".to_owned())], "{} / {}", a.text, b.text);
    let last = db
        .text("SELECT email FROM users WHERE role = 'owner' AND status = 'active' AND email LIKE '%@duo.example'")
        .await;

    // The one owner left cannot be demoted, disabled or deleted.
    let path = format!("/v1/tenants/duo/users/{last}");
    for (method, body) in
        [("PATCH", Some(json!({ "role": "user" }))), ("PATCH", Some(json!({ "status": "disabled" }))), ("DELETE", None)]
    {
        let refused = call(&server, method, &path, Some(OPERATOR), body).await;
        assert_eq!((refused.status, code(&refused)), (409, "last_owner"), "{method}: {}", refused.text);
    }
    let audited = "SELECT count(*) FROM audit_log WHERE action = 'api.refused' AND tenant = 'duo'
        AND metadata->>'code' = 'last_owner'";
    // The three above, and the loser of the race before them.
    within(Duration::from_secs(5), "each refusal audited (issue 22.4)", || async { db.count(audited).await == 4 })
        .await;
    // Promoting someone else first makes it possible.
    let promoted = call(
        &server,
        "PATCH",
        "/v1/tenants/duo/users/admin@duo.example",
        Some(OPERATOR),
        Some(json!({ "role": "owner" })),
    )
    .await;
    assert_eq!(promoted.status, 200, "{}", promoted.text);
    assert_eq!(call(&server, "DELETE", &path, Some(OPERATOR), None).await.status, 204);
    assert_eq!(db.count(&format!("SELECT count(*) FROM users WHERE email = '{last}'")).await, 0);
}

/// Issue 25.10: the owner of beta inviting an address another tenant has is refused without being
/// told who or where; an unused address in a domain another tenant verified for its own sign-in
/// cannot be taken either; the tenant's own duplicate is named as such.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_learns_nothing_of_other_tenants_users_and_cannot_take_their_sign_in_domain() {
    let db = TestDb::new().await;
    let server = started(&Repo::example(), &db, &[("GATEHOUSE_OWNERS_NEED_MFA", "false")]).await;
    create_tenant(&server, "beta", "boss@beta.example").await;
    activate(&db, &["boss@beta.example"]).await;
    let boss = str_of(&login(&server, "boss@beta.example", PASSWORD).await.body, "access_token").to_owned();
    let invite = |email: &str| {
        let body = json!({ "email": email, "role": "user" });
        let (server, boss) = (&server, boss.clone());
        async move { call(server, "POST", "/v1/tenants/beta/users", Some(&boss), Some(body)).await }
    };
    let elsewhere = invite("jack@globex.example").await;
    assert_eq!((elsewhere.status, code(&elsewhere)), (409, "email_unavailable"), "{}", elsewhere.text);
    assert!(!elsewhere.text.contains("globex`") && !elsewhere.text.contains("exists"), "{}", elsewhere.text);
    let here = invite("boss@beta.example").await;
    assert_eq!((here.status, code(&here)), (409, "email_taken"), "{}", here.text);

    db.execute(
        "INSERT INTO tenant_idps (tenant_id, issuer, client_id, secret_env, domains, state, verified_at)
         SELECT id, 'https://login.globex.example', 'gatehouse', 'GLOBEX_SECRET', '{globex.example}', 'verified', now()
           FROM tenants WHERE name = 'globex'",
    )
    .await;
    db.execute("INSERT INTO tenant_idp_domains (domain, tenant_id) SELECT 'globex.example', id FROM tenants WHERE name = 'globex'")
        .await;
    let squatted = invite("new-hire@globex.example").await;
    assert_eq!((squatted.status, code(&squatted)), (409, "email_unavailable"), "{}", squatted.text);
    assert_eq!(db.count("SELECT count(*) FROM users WHERE email = 'new-hire@globex.example'").await, 0);
    assert_eq!(invite("new-hire@elsewhere.example").await.status, 201, "other domains stay open");
}

/// Issue 25.16: a new tenant's only owner, still invited, can be neither demoted, disabled nor
/// deleted: the tenant would be left with nobody who owns it. A second invited owner makes it
/// possible.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_tenants_invited_owner_is_the_last_owner_too() {
    let db = TestDb::new().await;
    let server = started(&Repo::example(), &db, &[]).await;
    create_tenant(&server, "solo", "first@solo.example").await;
    let path = "/v1/tenants/solo/users/first@solo.example";
    for (method, body) in
        [("PATCH", Some(json!({ "role": "user" }))), ("PATCH", Some(json!({ "status": "disabled" }))), ("DELETE", None)]
    {
        let refused = call(&server, method, path, Some(OPERATOR), body).await;
        assert_eq!((refused.status, code(&refused)), (409, "last_owner"), "{method}: {}", refused.text);
    }
    let second = json!({ "email": "second@solo.example", "role": "owner" });
    assert_eq!(call(&server, "POST", "/v1/tenants/solo/users", Some(OPERATOR), Some(second)).await.status, 201);
    assert_eq!(call(&server, "DELETE", path, Some(OPERATOR), None).await.status, 204);
    let owners =
        "SELECT count(*) FROM users WHERE role = 'owner' AND tenant_id = (SELECT id FROM tenants WHERE name = 'solo')";
    assert_eq!(db.count(owners).await, 1);
}

/// FR-008: a user declared in Git answers an interactive change with 409 naming the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_declared_tenants_and_users_are_changed_in_git() {
    let db = TestDb::new().await;
    let repo = Repo::example();
    let server = started(&repo, &db, &[]).await;
    within(Duration::from_secs(30), "first sync", || async {
        call(&server, "GET", "/v1/sync/status", Some(OPERATOR), None).await.body["state"] == "Synced"
    })
    .await;
    for (method, path, body) in [
        ("PATCH", "/v1/tenants/acme/users/dan@acme.example", Some(json!({ "role": "admin" }))),
        ("DELETE", "/v1/tenants/acme/users/dan@acme.example", None),
        ("PATCH", "/v1/tenants/acme", Some(json!({ "displayName": "Not Acme" }))),
        ("POST", "/v1/tenants/acme/suspend", None),
        ("DELETE", "/v1/tenants/acme", None),
    ] {
        let refused = call(&server, method, path, Some(OPERATOR), body).await;
        assert_eq!((refused.status, code(&refused)), (409, "managed_by_git"), "{method} {path}: {}", refused.text);
        assert!(refused.text.contains("tenants/acme.yaml"), "names the file: {}", refused.text);
    }
    assert_eq!(db.text("SELECT role FROM users WHERE email = 'dan@acme.example'").await, "user");
    // Its users list is Git's too: an invitation is refused, naming the file.
    let invited = call(
        &server,
        "POST",
        "/v1/tenants/acme/users",
        Some(OPERATOR),
        Some(json!({ "email": "contractor@acme.example", "role": "user" })),
    )
    .await;
    assert_eq!((invited.status, code(&invited)), (409, "managed_by_git"), "{}", invited.text);
    assert_eq!(db.count("SELECT count(*) FROM users WHERE email = 'contractor@acme.example'").await, 0);

    // Issue 22.4: every one of the six refusals is audited once, naming who, what and why, in the
    // tenant's log.
    let refused_rows = "SELECT count(*) FROM audit_log WHERE action = 'api.refused' AND outcome = 'failure'
        AND actor = 'bootstrap-token' AND actor_type = 'operator' AND tenant = 'acme'
        AND metadata->>'code' = 'managed_by_git' AND metadata->>'status' = '409'
        AND metadata->>'reason' LIKE '%tenants/acme.yaml%'";
    within(Duration::from_secs(10), "six refusals audited", || async { db.count(refused_rows).await == 6 }).await;
    let invitation = "SELECT count(*) FROM audit_log WHERE action = 'api.refused'
        AND resource = '/v1/tenants/acme/users' AND metadata->>'method' = 'POST' AND metadata->>'route' = '/v1/tenants/{tenant}/users'";
    assert_eq!(db.count(invitation).await, 1);
}

/// FR-OPS-001, UC-TENANT-SUSPEND, FR-TENANT-002: suspension ends sessions and refuses keys on both
/// replicas; delete → restore → delete → purge after the (shortened) retention; the name is then
/// reserved, and the audit rows outlive the tenant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspend_restore_delete_and_purge_across_two_replicas() {
    let db = TestDb::new().await;
    let repo = Repo::example();
    let env = [("GATEHOUSE_OWNERS_NEED_MFA", "false"), ("GATEHOUSE_TENANT_RETENTION", "3s")];
    let a = started(&repo, &db, &env).await;
    let b = started(&repo, &db, &env).await;
    let app =
        json!({ "name": "temp-app", "displayName": "Temp", "owner": "dev@corp.example", "scopes": ["flags:read"] });
    assert_eq!(call(&a, "POST", "/v1/apps", Some(OPERATOR), Some(app)).await.status, 201);
    let key =
        call(&a, "POST", "/v1/apps/temp-app/keys", Some(OPERATOR), Some(json!({ "scopes": ["flags:read"] }))).await;
    let key = str_of(&key.body, "secret").to_owned();
    let body = json!({ "name": "temp", "displayName": "Temp", "plan": "free", "applications": ["temp-app"], "owner": { "email": "boss@temp.example" } });
    assert_eq!(call(&a, "POST", "/v1/tenants", Some(OPERATOR), Some(body)).await.status, 201);
    activate(&db, &["boss@temp.example"]).await;
    let session = str_of(&login(&b, "boss@temp.example", PASSWORD).await.body, "access_token").to_owned();
    for server in [&a, &b] {
        let readable = || async { call(server, "GET", "/v1/tenants/temp/flags", Some(&key), None).await.status == 200 };
        within(Duration::from_secs(5), "flags readable", readable).await;
        assert_eq!(call(server, "GET", "/v1/auth/session", Some(&session), None).await.status, 200);
    }

    let suspended =
        call(&a, "POST", "/v1/tenants/temp/suspend", Some(OPERATOR), Some(json!({ "reason": "unpaid invoice" }))).await;
    assert_eq!((suspended.status, suspended.body["state"].as_str()), (200, Some("suspended")), "{}", suspended.text);
    assert_eq!(suspended.body["suspendedReason"], "unpaid invoice");
    // Sessions end in the transaction of the change: on both replicas at once.
    assert_eq!(call(&b, "GET", "/v1/auth/session", Some(&session), None).await.status, 401);
    assert_eq!(call(&a, "GET", "/v1/auth/session", Some(&session), None).await.status, 401);
    // Keys: at once on the replica that made the change, through the change feed on the other.
    let refused = call(&a, "GET", "/v1/tenants/temp/flags", Some(&key), None).await;
    assert_eq!((refused.status, code(&refused)), (403, "tenant_suspended"), "{}", refused.text);
    within(Duration::from_secs(1), "replica b refuses the key", || async {
        code(&call(&b, "GET", "/v1/tenants/temp/flags", Some(&key), None).await) == "tenant_suspended"
    })
    .await;

    // Restore, then delete: pending deletion, restorable, then delete again and wait for the purge.
    let restored = call(&a, "POST", "/v1/tenants/temp/restore", Some(OPERATOR), None).await;
    assert_eq!((restored.status, restored.body["state"].as_str()), (200, Some("active")), "{}", restored.text);
    assert_eq!(call(&a, "GET", "/v1/tenants/temp/flags", Some(&key), None).await.status, 200);
    let deleted = call(&a, "DELETE", "/v1/tenants/temp", Some(OPERATOR), None).await;
    assert_eq!((deleted.status, deleted.body["state"].as_str()), (200, Some("pending_deletion")), "{}", deleted.text);
    assert!(deleted.body["purgeAfter"].is_string());
    let restored = call(&b, "POST", "/v1/tenants/temp/restore", Some(OPERATOR), None).await;
    assert_eq!(restored.body["state"], "active", "{}", restored.text);
    assert_eq!(call(&b, "DELETE", "/v1/tenants/temp", Some(OPERATOR), None).await.status, 200);
    let listed = call(&a, "GET", "/v1/tenants?state=pending_deletion", Some(OPERATOR), None).await;
    assert_eq!(listed.body["tenants"][0]["name"], "temp", "{}", listed.text);
    within(Duration::from_secs(15), "the purge", || async {
        call(&a, "GET", "/v1/tenants/temp", Some(OPERATOR), None).await.status == 404
    })
    .await;
    assert_eq!(db.count("SELECT count(*) FROM users WHERE email = 'boss@temp.example'").await, 0);
    assert_eq!(db.count("SELECT count(*) FROM audit_log WHERE action = 'tenant.purge' AND tenant = 'temp'").await, 1);
    assert!(db.count("SELECT count(*) FROM audit_log WHERE tenant = 'temp' AND action = 'tenant.create'").await == 1);

    // The name stays reserved.
    let body =
        json!({ "name": "temp", "displayName": "Again", "plan": "free", "owner": { "email": "new@temp.example" } });
    let reused = call(&a, "POST", "/v1/tenants", Some(OPERATOR), Some(body)).await;
    assert_eq!((reused.status, code(&reused)), (409, "name_reserved"), "{}", reused.text);
}

/// Issue 12.4: a retried create with the same Idempotency-Key creates one tenant; the same key with
/// another body is a 422; a stale If-Match is a 412.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_are_idempotent_and_stale_writes_are_refused() {
    let db = TestDb::new().await;
    let repo = Repo::example();
    let server = started(&repo, &db, &[]).await;
    let body =
        json!({ "name": "retry", "displayName": "Retry", "plan": "free", "owner": { "email": "o@retry.example" } });
    let key = [("idempotency-key", "9b2d3c52-create-retry")];
    // Two at once and one after: one tenant, one answer.
    let send = || with_headers(&server, "POST", "/v1/tenants", OPERATOR, &key, Some(body.clone()));
    let (first, second) = tokio::join!(send(), send());
    let third = send().await;
    for response in [&first, &second, &third] {
        assert_eq!(response.status, 201, "{}", response.text);
        assert_eq!(response.body, first.body);
    }
    assert_eq!(third.header("idempotent-replayed"), Some("true"));
    assert_eq!(db.count("SELECT count(*) FROM tenants WHERE name = 'retry'").await, 1);
    assert_eq!(db.count("SELECT count(*) FROM audit_log WHERE action = 'tenant.create' AND tenant = 'retry'").await, 1);
    let other =
        json!({ "name": "retry2", "displayName": "Other", "plan": "free", "owner": { "email": "o@retry2.example" } });
    let reused = with_headers(&server, "POST", "/v1/tenants", OPERATOR, &key, Some(other)).await;
    assert_eq!((reused.status, code(&reused)), (422, "idempotency_key_reused"), "{}", reused.text);
    // Another actor's key is another key.
    let duplicate = call(&server, "POST", "/v1/tenants", Some(OPERATOR), Some(body.clone())).await;
    assert_eq!((duplicate.status, code(&duplicate)), (409, "tenant_exists"));

    // If-Match: the current ETag passes, a stale one is refused and changes nothing.
    let current = call(&server, "GET", "/v1/tenants/retry", Some(OPERATOR), None).await;
    let etag = current.header("etag").expect("etag").to_owned();
    let changed = with_headers(
        &server,
        "PATCH",
        "/v1/tenants/retry",
        OPERATOR,
        &[("if-match", &etag)],
        Some(json!({ "displayName": "Renamed" })),
    )
    .await;
    assert_eq!(changed.status, 200, "{}", changed.text);
    assert_ne!(changed.header("etag"), Some(etag.as_str()));
    let stale = with_headers(
        &server,
        "PATCH",
        "/v1/tenants/retry",
        OPERATOR,
        &[("if-match", &etag)],
        Some(json!({ "plan": "pro" })),
    )
    .await;
    assert_eq!((stale.status, code(&stale)), (412, "stale"), "{}", stale.text);
    assert_eq!(
        db.text("SELECT p.name FROM tenants t JOIN plans p ON p.id = t.plan_id WHERE t.name = 'retry'").await,
        "free"
    );
    let user = call(&server, "GET", "/v1/tenants/retry/users/o@retry.example", Some(OPERATOR), None).await;
    let user_etag = user.header("etag").expect("etag").to_owned();
    let renamed = with_headers(
        &server,
        "PATCH",
        "/v1/tenants/retry/users/o@retry.example",
        OPERATOR,
        &[("if-match", &user_etag)],
        Some(json!({ "name": "O" })),
    )
    .await;
    assert_eq!(renamed.status, 200, "{}", renamed.text);
    let stale = with_headers(
        &server,
        "DELETE",
        "/v1/tenants/retry/users/o@retry.example",
        OPERATOR,
        &[("if-match", &user_etag)],
        None,
    )
    .await;
    assert_eq!((stale.status, code(&stale)), (412, "stale"), "{}", stale.text);
    // The CLI sends If-Match too.
    let stale = cli(&server, OPERATOR, &["tenants", "update", "retry", "--display-name", "Again", "--if-match", &etag]);
    assert_eq!(stale.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&stale.stderr).contains("changed since you read it"), "{stale:?}");
    let current = call(&server, "GET", "/v1/tenants/retry", Some(OPERATOR), None).await;
    let fresh = current.header("etag").expect("etag").to_owned();
    let changed =
        cli(&server, OPERATOR, &["tenants", "update", "retry", "--display-name", "Again", "--if-match", &fresh]);
    assert_eq!(json_out(&changed, "tenants update --if-match")["displayName"], "Again");
}

/// Lists page by name or email and filter; bad filters are a 400 naming the parameter; unknown
/// plans and applications a 422; an email that exists anywhere a 409.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_page_and_filter_and_bad_input_is_named() {
    let db = TestDb::new().await;
    let repo = Repo::example();
    let server = started(&repo, &db, &[]).await;
    for name in ["pa", "pb", "pc", "qa"] {
        create_tenant(&server, name, &format!("owner@{name}.example")).await;
    }
    let page = call(&server, "GET", "/v1/tenants?prefix=p&limit=2", Some(OPERATOR), None).await;
    let names = |r: &HttpResponse| -> Vec<String> {
        r.body["tenants"]
            .as_array()
            .expect("tenants")
            .iter()
            .map(|t| t["name"].as_str().expect("name").to_owned())
            .collect()
    };
    assert_eq!((names(&page), page.body["next"].as_str()), (vec!["pa".to_owned(), "pb".to_owned()], Some("pb")));
    let rest = call(&server, "GET", "/v1/tenants?prefix=p&limit=2&after=pb", Some(OPERATOR), None).await;
    assert_eq!((names(&rest), rest.body["next"].is_null()), (vec!["pc".to_owned()], true));
    let bad = call(&server, "GET", "/v1/tenants?state=gone", Some(OPERATOR), None).await;
    assert_eq!(bad.status, 400);
    assert!(bad.text.contains("query parameter `state`"), "{}", bad.text);

    let unknown_plan =
        json!({ "name": "zz", "displayName": "Z", "plan": "platinum", "owner": { "email": "z@zz.example" } });
    let refused = call(&server, "POST", "/v1/tenants", Some(OPERATOR), Some(unknown_plan)).await;
    assert_eq!((refused.status, code(&refused)), (422, "unknown_plan"), "{}", refused.text);
    assert!(refused.text.contains("enterprise, free, pro"), "lists the plans: {}", refused.text);
    let unknown_app = json!({ "name": "zz", "displayName": "Z", "plan": "free", "applications": ["nope"], "owner": { "email": "z@zz.example" } });
    let refused = call(&server, "POST", "/v1/tenants", Some(OPERATOR), Some(unknown_app)).await;
    assert_eq!((refused.status, code(&refused)), (422, "unknown_application"), "{}", refused.text);
    let taken = json!({ "name": "zz", "displayName": "Z", "plan": "free", "owner": { "email": "owner@pa.example" } });
    let refused = call(&server, "POST", "/v1/tenants", Some(OPERATOR), Some(taken)).await;
    assert_eq!((refused.status, code(&refused)), (409, "email_unavailable"), "{}", refused.text);
    assert!(!refused.text.contains("pa\"") && !refused.text.contains("exists"), "names no tenant: {}", refused.text);
    assert_eq!(db.count("SELECT count(*) FROM tenants WHERE name = 'zz'").await, 0, "nothing half-written");

    for email in ["b@pa.example", "a@pa.example", "c@pa.example"] {
        let invited = call(
            &server,
            "POST",
            "/v1/tenants/pa/users",
            Some(OPERATOR),
            Some(json!({ "email": email, "role": "admin" })),
        )
        .await;
        assert_eq!(invited.status, 201, "{}", invited.text);
    }
    let users = call(&server, "GET", "/v1/tenants/pa/users?role=admin&limit=2", Some(OPERATOR), None).await;
    let emails: Vec<&str> =
        users.body["users"].as_array().expect("users").iter().map(|u| u["email"].as_str().expect("email")).collect();
    assert_eq!((emails, users.body["next"].as_str()), (vec!["a@pa.example", "b@pa.example"], Some("b@pa.example")));
    let owners = call(&server, "GET", "/v1/tenants/pa/users?emailPrefix=OWNER", Some(OPERATOR), None).await;
    assert_eq!(owners.body["users"][0]["email"], "owner@pa.example", "{}", owners.text);
}

/// FR-FLAG-001: operators set and clear a tenant's flag overrides with the plan's type checked, as
/// `validate` checks Git; applications see the result at once; Git's overrides stay Git's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_override_flags_with_the_plans_types() {
    let db = TestDb::new().await;
    let repo = Repo::example();
    let server = started(&repo, &db, &[]).await;
    let app =
        json!({ "name": "flag-app", "displayName": "Flags", "owner": "dev@corp.example", "scopes": ["flags:read"] });
    assert_eq!(call(&server, "POST", "/v1/apps", Some(OPERATOR), Some(app)).await.status, 201);
    let key =
        call(&server, "POST", "/v1/apps/flag-app/keys", Some(OPERATOR), Some(json!({ "scopes": ["flags:read"] })))
            .await;
    let key = str_of(&key.body, "secret").to_owned();
    let body = json!({ "name": "flagged", "displayName": "Flagged", "plan": "free", "applications": ["flag-app"], "owner": { "email": "o@flagged.example" } });
    assert_eq!(call(&server, "POST", "/v1/tenants", Some(OPERATOR), Some(body)).await.status, 201);

    let set = call(
        &server,
        "PUT",
        "/v1/tenants/flagged/overrides/max_projects",
        Some(OPERATOR),
        Some(json!({ "value": 10 })),
    )
    .await;
    assert_eq!(set.status, 200, "{}", set.text);
    assert_eq!((set.body["value"].as_i64(), set.body["default"].as_i64()), (Some(10), Some(3)));
    let widened = call(
        &server,
        "PUT",
        "/v1/tenants/flagged/overrides/storage_quota_gb",
        Some(OPERATOR),
        Some(json!({ "value": 2 })),
    )
    .await;
    assert_eq!(widened.body["value"], json!(2.0), "an integer is widened for a number flag: {}", widened.text);
    let flags = call(&server, "GET", "/v1/tenants/flagged/flags", Some(&key), None).await;
    assert_eq!(flags.body["flags"]["max_projects"]["value"], 10, "{}", flags.text);
    assert_eq!(flags.body["flags"]["max_projects"]["source"], "tenant", "{}", flags.text);

    let wrong = call(
        &server,
        "PUT",
        "/v1/tenants/flagged/overrides/max_projects",
        Some(OPERATOR),
        Some(json!({ "value": "ten" })),
    )
    .await;
    assert_eq!((wrong.status, code(&wrong)), (422, "wrong_flag_type"), "{}", wrong.text);
    assert!(wrong.text.contains("flag `max_projects` is integer in plan `free`"), "{}", wrong.text);
    let audited = "SELECT count(*) FROM audit_log WHERE action = 'api.refused' AND tenant = 'flagged'
        AND metadata->>'code' = 'wrong_flag_type' AND metadata->>'status' = '422'";
    within(Duration::from_secs(5), "the refusal audited (issue 22.4)", || async { db.count(audited).await == 1 }).await;
    let unknown =
        call(&server, "PUT", "/v1/tenants/flagged/overrides/teleport", Some(OPERATOR), Some(json!({ "value": true })))
            .await;
    assert_eq!((unknown.status, code(&unknown)), (422, "unknown_flag"), "{}", unknown.text);

    let listed = call(&server, "GET", "/v1/tenants/flagged/overrides", Some(OPERATOR), None).await;
    assert_eq!(listed.body["overrides"].as_array().map(Vec::len), Some(2), "{}", listed.text);
    assert_eq!(
        call(&server, "DELETE", "/v1/tenants/flagged/overrides/max_projects", Some(OPERATOR), None).await.status,
        204
    );
    let flags = call(&server, "GET", "/v1/tenants/flagged/flags", Some(&key), None).await;
    assert_eq!(flags.body["flags"]["max_projects"]["value"], 3, "the plan's default again: {}", flags.text);
    assert_eq!(
        call(&server, "DELETE", "/v1/tenants/flagged/overrides/max_projects", Some(OPERATOR), None).await.status,
        404
    );
    assert_eq!(
        db.count("SELECT count(*) FROM audit_log WHERE action IN ('flag.set', 'flag.clear') AND tenant = 'flagged'")
            .await,
        3
    );

    // An override declared in Git is changed in Git.
    within(Duration::from_secs(30), "first sync", || async {
        call(&server, "GET", "/v1/sync/status", Some(OPERATOR), None).await.body["state"] == "Synced"
    })
    .await;
    let declared = db.text("SELECT key FROM tenant_flags WHERE managed_by = 'git' AND tenant_id = (SELECT id FROM tenants WHERE name = 'acme') LIMIT 1").await;
    let refused =
        call(&server, "DELETE", &format!("/v1/tenants/acme/overrides/{declared}"), Some(OPERATOR), None).await;
    assert_eq!((refused.status, code(&refused)), (409, "managed_by_git"), "{}", refused.text);
}

/// FR-008, issue 12.3: a tenant whose Git file allows interactive edits takes the API's change, which
/// then shows as drift under the name of the actor who made it; `selfHeal: false` keeps it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interactive_edits_of_a_git_tenant_show_as_drift_with_the_actors_name() {
    let db = TestDb::new().await;
    let repo = Repo::example();
    repo.edit(
        "tenants/acme.yaml",
        "sync: { selfHeal: true, prune: true }",
        "sync: { selfHeal: false, prune: true, interactiveEdits: true }",
    );
    let server = started(&repo, &db, &[]).await;
    let synced =
        || async { call(&server, "GET", "/v1/sync/status", Some(OPERATOR), None).await.body["state"] == "Synced" };
    within(Duration::from_secs(30), "first sync", synced).await;

    let changed = call(
        &server,
        "PATCH",
        "/v1/tenants/acme/users/dan@acme.example",
        Some(OPERATOR),
        Some(json!({ "role": "admin" })),
    )
    .await;
    assert_eq!(changed.status, 200, "{}", changed.text);
    assert_eq!(call(&server, "POST", "/v1/sync", Some(OPERATOR), None).await.status, 202);
    let drift = || async {
        let status = call(&server, "GET", "/v1/sync/tenants/acme", Some(OPERATOR), None).await;
        status.body["drift"]
            .as_array()
            .and_then(|d| d.iter().find(|e| e["resource"] == "tenant/acme/user/dan@acme.example").cloned())
    };
    within(Duration::from_secs(30), "the change shows as drift", || async { drift().await.is_some() }).await;
    let entry = drift().await.expect("drift");
    assert_eq!(entry["changedBy"], "bootstrap-token", "{entry}");
    // Interactive edits let users in; deleting a declared one is still done in Git (the next pass
    // would create it again).
    let invited = call(
        &server,
        "POST",
        "/v1/tenants/acme/users",
        Some(OPERATOR),
        Some(json!({ "email": "temp@acme.example", "role": "user" })),
    )
    .await;
    assert_eq!((invited.status, invited.body["managedBy"].as_str()), (201, Some("api")), "{}", invited.text);
    let removed = call(&server, "DELETE", "/v1/tenants/acme/users/dan@acme.example", Some(OPERATOR), None).await;
    assert_eq!((removed.status, code(&removed)), (409, "managed_by_git"), "{}", removed.text);
    assert!(removed.text.contains("remove it there"), "{}", removed.text);
    let deleted = call(&server, "DELETE", "/v1/tenants/acme", Some(OPERATOR), None).await;
    assert_eq!((deleted.status, code(&deleted)), (409, "managed_by_git"), "{}", deleted.text);
    assert_eq!(
        db.text("SELECT role FROM users WHERE email = 'dan@acme.example'").await,
        "admin",
        "selfHeal: false keeps it"
    );
    // Globex does not allow interactive edits.
    let refused =
        call(&server, "PATCH", "/v1/tenants/globex", Some(OPERATOR), Some(json!({ "displayName": "G" }))).await;
    assert_eq!((refused.status, code(&refused)), (409, "managed_by_git"), "{}", refused.text);
    assert!(refused.text.contains("interactiveEdits"), "says how to allow it: {}", refused.text);
}

/// Issue 12.3: a tenant created through the API and then declared in Git is adopted with its owner,
/// and `plan` says so; a user Git does not name stays the API's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declaring_an_api_tenant_in_git_adopts_it_and_plan_says_so() {
    let db = TestDb::new().await;
    let repo = Repo::example();
    let server = started(&repo, &db, &[]).await;
    create_tenant(&server, "adoptee", "boss@adoptee.example").await;
    let body = json!({ "email": "temp@adoptee.example", "role": "user" });
    assert_eq!(call(&server, "POST", "/v1/tenants/adoptee/users", Some(OPERATOR), Some(body)).await.status, 201);
    // Deleted through the API, then declared in Git: Git's `active` ends the pending deletion.
    assert_eq!(call(&server, "DELETE", "/v1/tenants/adoptee", Some(OPERATOR), None).await.status, 200);
    drop(server);
    repo.write(
        "tenants/adoptee.yaml",
        "apiVersion: gatehouse.dev/v1\nkind: Tenant\nmetadata:\n  name: adoptee\nspec:\n  displayName: Adoptee Ltd\n  plan: pro\n  users:\n    - { email: boss@adoptee.example, role: owner }\n",
    );
    let dir = repo.path().display().to_string();
    let planned = crate::helpers::gatehouse(&["plan", &dir], &[("DATABASE_URL", &db.url)]);
    let text = crate::helpers::stdout(&planned);
    let line = text.lines().find(|l| l.contains("tenant adoptee") && l.contains("adopted from the API"));
    assert!(line.is_some(), "plan shows the adoption:\n{text}{}", crate::helpers::stderr(&planned));
    let applied = crate::helpers::gatehouse(&["apply", &dir], &[("DATABASE_URL", &db.url)]);
    assert!(applied.status.success(), "{}", crate::helpers::stderr(&applied));
    assert_eq!(db.text("SELECT managed_by FROM tenants WHERE name = 'adoptee'").await, "git");
    let lifecycle = "SELECT status || coalesce(purge_after::text, '') || coalesce(suspended_reason, '') FROM tenants WHERE name = 'adoptee'";
    assert_eq!(db.text(lifecycle).await, "active", "no pending deletion, no stale suspension");
    assert_eq!(db.text("SELECT managed_by FROM users WHERE email = 'boss@adoptee.example'").await, "git");
    assert_eq!(db.text("SELECT managed_by FROM users WHERE email = 'temp@adoptee.example'").await, "api");
}

/// FR-TENANT-006: disabling and enabling never skips an invitation: a user who has not accepted
/// theirs is `invited` again after `enable`, and cannot sign in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enabling_a_user_who_never_accepted_their_invitation_leaves_them_invited() {
    let db = TestDb::new().await;
    let repo = Repo::example();
    let server = started(&repo, &db, &[]).await;
    create_tenant(&server, "inv", "owner@inv.example").await;
    let invited = call(
        &server,
        "POST",
        "/v1/tenants/inv/users",
        Some(OPERATOR),
        Some(json!({ "email": "late@inv.example", "role": "user" })),
    )
    .await;
    assert_eq!(invited.status, 201, "{}", invited.text);
    let path = "/v1/tenants/inv/users/late@inv.example";
    let disabled = call(&server, "PATCH", path, Some(OPERATOR), Some(json!({ "status": "disabled" }))).await;
    assert_eq!(disabled.body["status"], "disabled", "{}", disabled.text);
    let enabled = call(&server, "PATCH", path, Some(OPERATOR), Some(json!({ "status": "active" }))).await;
    assert_eq!((enabled.status, enabled.body["status"].as_str()), (200, Some("invited")), "{}", enabled.text);
    activate(&db, &["owner@inv.example"]).await;
    let disabled = call(
        &server,
        "PATCH",
        "/v1/tenants/inv/users/owner@inv.example",
        Some(OPERATOR),
        Some(json!({ "status": "disabled" })),
    )
    .await;
    assert_eq!((disabled.status, code(&disabled)), (409, "last_owner"), "{}", disabled.text);
}
