//! Budgets (issue 13.6; FR-006, US2-2) against the real binary: usage reported through the API
//! counts against the tenant's monthly limit on every replica's memory; each `warnAt` threshold is
//! recorded once; `block` refuses with usage and limit; `requireOverride` waits for an override that
//! two people other than the requester approve. Every step has an audit row.

use std::time::Duration;

use serde_json::{Value, json};

use crate::access::issue;
use crate::helpers::{
    HttpResponse, InProcess, OPERATOR, PASSWORD, Repo, Served, TestDb, activate, call, request, within,
};
use crate::identity::{SmtpSink, login, started, str_of};
use crate::operators::{Idp, cli, json_out, person};

async fn report(server: &Served, key: &str, tenant: &str, from: usize, quantity: usize) {
    let events: Vec<Value> = (from..from + quantity)
        .map(|i| {
            json!({ "id": format!("{tenant}-{i}"), "source": "//test", "type": "api.call", "subject": tenant,
                    "time": chrono::Utc::now().to_rfc3339(), "data": { "quantity": 1 } })
        })
        .collect();
    let answer = call(server, "POST", "/v1/usage/events", Some(key), Some(Value::Array(events))).await;
    assert_eq!(answer.body["accepted"].as_u64(), Some(quantity as u64), "{}", answer.text);
}

async fn check(server: &Served, key: &str, tenant: &str, quantity: i64) -> HttpResponse {
    let body = json!({ "quantity": quantity, "type": "api.call" });
    call(server, "POST", &format!("/v1/tenants/{tenant}/budget/check"), Some(key), Some(body)).await
}

/// Waits until `server`'s memory counts `usage` for `tenant`.
async fn counted(server: &Served, key: &str, tenant: &str, usage: i64) {
    within(Duration::from_secs(3), "the usage is counted in memory", || async {
        check(server, key, tenant, 1).await.body["usage"] == usage
    })
    .await;
}

/// A webhook receiver on loopback: every request's headers and body, in order; the first answer is
/// a 500, so that the sender's retry is exercised.
struct Listener {
    url: String,
    received: std::sync::Arc<std::sync::Mutex<Vec<(axum::http::HeaderMap, String)>>>,
}

impl Listener {
    async fn start() -> Listener {
        let received: std::sync::Arc<std::sync::Mutex<Vec<(axum::http::HeaderMap, String)>>> = Default::default();
        let kept = received.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
                let kept = kept.clone();
                async move {
                    let mut all = kept.lock().expect("lock");
                    all.push((headers, body));
                    if all.len() == 1 {
                        axum::http::StatusCode::INTERNAL_SERVER_ERROR
                    } else {
                        axum::http::StatusCode::OK
                    }
                }
            }),
        );
        let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/hook", socket.local_addr().expect("address"));
        tokio::spawn(async move { axum::serve(socket, app).await });
        Listener { url, received }
    }

    /// The delivered (answered 200) notices' `type`s, with their signatures checked.
    fn delivered(&self, secret: &str) -> Vec<String> {
        let all = self.received.lock().expect("lock");
        all.iter()
            .skip(1)
            .map(|(headers, body)| {
                let signature = headers["gatehouse-signature"].to_str().expect("ascii");
                let t: i64 =
                    signature.split(',').next().and_then(|t| t.strip_prefix("t=")).expect("t").parse().expect("int");
                assert_eq!(signature, gatehouse::budget::notify::signature(secret.as_bytes(), t, body), "signed");
                let body: Value = serde_json::from_str(body).expect("JSON");
                body["type"].as_str().expect("type").to_owned()
            })
            .collect()
    }
}

/// Serves `repo` with operators signed in at a real identity provider (group `platform-ops`), and
/// owners free of the MFA requirement; returns the provider and the server.
async fn with_operators(repo: &Repo, db: &TestDb) -> (Idp, InProcess) {
    let idp = Idp::start();
    let env = [
        ("GATEHOUSE_OIDC_ISSUER_URL", idp.issuer.as_str()),
        ("GATEHOUSE_OIDC_AUDIENCE", "gatehouse"),
        ("GATEHOUSE_OIDC_USERNAME_CLAIM", "email"),
        ("GATEHOUSE_OIDC_GROUP_BINDINGS", "platform-ops=operator"),
        ("GATEHOUSE_OWNERS_NEED_MFA", "false"),
    ];
    let server = started(repo, db, &env).await;
    (idp, server)
}

fn code(response: &HttpResponse) -> &str {
    response.body["error"]["code"].as_str().unwrap_or("")
}

/// FR-006, US2-2: thresholds at 75 % and 90 % are recorded once each, on both replicas the check
/// answers from memory, and at 100 % with `block` it says no with usage and limit; ingest itself
/// still stores every event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocking_budget_warns_at_each_threshold_once_and_refuses_past_the_limit_on_every_replica() {
    let (db, repo) = (TestDb::new().await, Repo::example());
    repo.edit(
        "tenants/acme.yaml",
        "budget: { monthlyLimit: 500000, onLimit: block, warnAt: [75, 90] }",
        "budget: { monthlyLimit: 100, onLimit: block, warnAt: [75, 90], eventTypes: [api.call] }",
    );
    let sink = SmtpSink::start();
    let hook = Listener::start().await;
    let smtp = sink.url();
    let env = [
        ("GATEHOUSE_SMTP_URL", smtp.as_str()),
        ("GATEHOUSE_BUDGET_WEBHOOK_URL", hook.url.as_str()),
        ("GATEHOUSE_BUDGET_WEBHOOK_SECRET", "hook-secret"),
    ];
    let a = started(&repo, &db, &env).await;
    activate(&db, &["alice@acme.example"]).await;
    let b = started(&repo, &db, &env).await;
    let (_, key) = issue(&a, "billing-app", &[]);

    within(Duration::from_secs(3), "the key is known on b", || async {
        check(&b, &key, "acme", 10).await.status == 200
    })
    .await;
    let fresh = check(&b, &key, "acme", 10).await;
    assert_eq!(fresh.body["allowed"], true);
    assert_eq!((fresh.body["state"].as_str(), fresh.body["limit"].as_i64()), (Some("ok"), Some(100)));

    report(&a, &key, "acme", 0, 74).await;
    counted(&b, &key, "acme", 74).await;
    assert_eq!(db.count("SELECT count(*) FROM budget_alerts").await, 0);
    report(&a, &key, "acme", 74, 1).await;
    report(&a, &key, "acme", 75, 15).await;
    report(&a, &key, "acme", 90, 5).await;
    counted(&b, &key, "acme", 95).await;
    let shown = call(&a, "GET", "/v1/tenants/acme/budget", Some(OPERATOR), None).await;
    assert_eq!(shown.status, 200, "{}", shown.text);
    assert_eq!(shown.body["thresholdsCrossed"], json!([75, 90]), "{}", shown.text);
    assert_eq!((shown.body["state"].as_str(), shown.body["remaining"].as_i64()), (Some("warning"), Some(5)));
    let shown_by_cli = json_out(&cli(&a, OPERATOR, &["budget", "show", "acme"]), "budget show");
    assert_eq!((shown_by_cli["usage"].as_i64(), shown_by_cli["limit"].as_i64()), (Some(95), Some(100)));
    let warnings = "SELECT count(*) FROM audit_log WHERE action = 'budget.threshold' AND tenant = 'acme'";
    assert_eq!(db.count(warnings).await, 2, "one row per threshold, however many batches crossed it");

    report(&a, &key, "acme", 95, 10).await;
    counted(&b, &key, "acme", 105).await;
    for replica in [&a, &b] {
        let refused = check(replica, &key, "acme", 1).await;
        assert_eq!(refused.body["allowed"], false, "{}", refused.text);
        assert_eq!(refused.body["reason"], "budget_exceeded");
        assert_eq!((refused.body["usage"].as_i64(), refused.body["limit"].as_i64()), (Some(105), Some(100)));
        assert!(refused.body["message"].as_str().is_some_and(|m| m.contains("105 + 1") && m.contains("limit of 100")));
    }
    assert_eq!(db.count("SELECT sum(quantity)::bigint FROM usage_daily").await, 105, "ingest never drops an event");
    let other_type = call(
        &b,
        "POST",
        "/v1/tenants/acme/budget/check",
        Some(&key),
        Some(json!({ "quantity": 1, "type": "storage.gb" })),
    )
    .await;
    assert_eq!(other_type.body["allowed"], true, "a type the budget does not count: {}", other_type.text);
    // Issue 22.9: a budget that counts only some types needs the check to name one.
    let untyped = call(&b, "POST", "/v1/tenants/acme/budget/check", Some(&key), Some(json!({ "quantity": 1 }))).await;
    assert_eq!(
        (untyped.status, untyped.body["error"]["code"].as_str()),
        (400, Some("type_required")),
        "{}",
        untyped.text
    );
    assert!(untyped.text.contains("api.call"), "names the types it counts: {}", untyped.text);
    // One mail to the active owner and one signed webhook per threshold and at the limit (the
    // webhook's first delivery failed and was retried).
    let notices =
        || sink.mails_to("alice@acme.example").into_iter().filter(|m| m["subject"] == "The budget of acme").count();
    within(Duration::from_secs(20), "three mails", || std::future::ready(notices() == 3)).await;
    let mails = sink.mails_to("alice@acme.example");
    assert!(
        mails.iter().any(|m| m["text"]
            .as_str()
            .is_some_and(|t| t.contains("acme has used 75 % of its monthly budget: 75 of 100"))),
        "{mails:?}"
    );
    assert!(
        mails.iter().any(|m| m["text"].as_str().is_some_and(|t| t.contains("acme has reached its monthly limit"))),
        "{mails:?}"
    );
    within(Duration::from_secs(20), "three webhooks delivered", || {
        std::future::ready(hook.received.lock().expect("lock").len() >= 4)
    })
    .await;
    let mut delivered = hook.delivered("hook-secret");
    delivered.sort();
    assert_eq!(delivered, ["budget.limit_reached", "budget.threshold", "budget.threshold"]);
    within(Duration::from_secs(5), "the limit and the refusals are audited", || async {
        db.count("SELECT count(*) FROM audit_log WHERE action = 'budget.limit_reached' AND tenant = 'acme'").await == 1
            && db.count("SELECT coalesce(sum(coalesce((metadata->>'count')::bigint, 1)), 0)::bigint FROM audit_log WHERE action = 'budget.block' AND tenant = 'acme'").await >= 2
    })
    .await;
}

/// US2-2: with `requireOverride` the check says no until an override is granted; the requester
/// cannot approve it, one approver is not enough, two other people grant it, and it ends when it
/// expires. Every step is audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_override_needs_two_approvers_other_than_the_requester_and_ends_when_it_expires() {
    let (db, repo) = (TestDb::new().await, Repo::example());
    let globex = std::fs::read_to_string(repo.path().join("tenants/globex.yaml")).expect("globex");
    let budget = "  budget: { monthlyLimit: 10, onLimit: requireOverride }\n  applications:";
    repo.write("tenants/globex.yaml", &globex.replacen("  applications:", budget, 1));
    let (idp, server) = with_operators(&repo, &db).await;
    activate(&db, &["hank@globex.example"]).await;
    let hank = str_of(&login(&server, "hank@globex.example", PASSWORD).await.body, "access_token").to_owned();
    let ada = idp.token("ada", person("ada@ops.example", json!(["platform-ops"]))).await;
    let grace = idp.token("grace", person("grace@ops.example", json!(["platform-ops"]))).await;
    let (_, key) = issue(&server, "billing-app", &[]);

    report(&server, &key, "globex", 0, 10).await;
    counted(&server, &key, "globex", 10).await;
    let waiting = check(&server, &key, "globex", 1).await;
    assert_eq!(
        (waiting.body["allowed"].as_bool(), waiting.body["reason"].as_str()),
        (Some(false), Some("override_required"))
    );
    // Issue 22.9: a budget that counts every type needs no `type` in the check.
    let untyped =
        call(&server, "POST", "/v1/tenants/globex/budget/check", Some(&key), Some(json!({ "quantity": 1 }))).await;
    assert_eq!((untyped.status, untyped.body["reason"].as_str()), (200, Some("override_required")), "{}", untyped.text);

    let path = "/v1/tenants/globex/budget/overrides";
    let asked = json!({ "amount": 5, "reason": "quarter-end import", "expiresIn": "4s" });
    let requested = call(&server, "POST", path, Some(&hank), Some(asked)).await;
    assert_eq!(requested.status, 201, "{}", requested.text);
    assert_eq!((requested.body["status"].as_str(), requested.body["limit"].as_i64()), (Some("pending"), Some(15)));
    let approve = format!("{path}/{}/approve", str_of(&requested.body, "id"));

    let own = call(&server, "POST", &approve, Some(&hank), None).await;
    assert_eq!((own.status, code(&own)), (409, "self_approval"), "{}", own.text);
    let bootstrap = call(&server, "POST", &approve, Some(OPERATOR), None).await;
    assert_eq!((bootstrap.status, code(&bootstrap)), (403, "person_required"), "{}", bootstrap.text);
    let first = call(&server, "POST", &approve, Some(&ada), None).await;
    assert_eq!((first.status, first.body["status"].as_str()), (200, Some("pending")), "{}", first.text);
    let again = call(&server, "POST", &approve, Some(&ada), None).await;
    assert_eq!((again.status, code(&again)), (409, "already_approved"), "{}", again.text);
    assert_eq!(check(&server, &key, "globex", 1).await.body["allowed"], false, "one approver is not enough");

    let second = call(&server, "POST", &approve, Some(&grace), None).await;
    assert_eq!((second.status, second.body["status"].as_str()), (200, Some("granted")), "{}", second.text);
    assert_eq!(second.body["approvals"], json!(["ada@ops.example", "grace@ops.example"]));
    within(Duration::from_secs(3), "the override is in force", || async {
        let answer = check(&server, &key, "globex", 1).await;
        answer.body["allowed"] == true && answer.body["limit"] == 15
    })
    .await;
    within(Duration::from_secs(8), "the override ends when it expires", || async {
        check(&server, &key, "globex", 1).await.body["reason"] == "override_required"
    })
    .await;

    for (action, outcome, expected) in [
        ("budget.override.request", "success", 1),
        ("budget.override.approve", "success", 1),
        ("budget.override.grant", "success", 1),
    ] {
        let sql = format!(
            "SELECT count(*) FROM audit_log WHERE action = '{action}' AND outcome = '{outcome}' AND tenant = 'globex'"
        );
        assert_eq!(db.count(&sql).await, expected, "{action}");
    }
    within(Duration::from_secs(5), "refused approvals and checks are audited", || async {
        db.count("SELECT count(*) FROM audit_log WHERE action = 'budget.override.approve' AND outcome = 'failure'")
            .await
            >= 2
            && db.count("SELECT count(*) FROM audit_log WHERE action = 'budget.override_required'").await >= 1
    })
    .await;
    let listed = json_out(&cli(&server, &hank, &["budget", "override", "list", "globex"]), "budget override list");
    assert_eq!(listed["overrides"][0]["status"], "expired", "{listed}");
    let raw = request("GET", format!("{}/v1/tenants/globex/budget", server.base), vec![], vec![]).await;
    assert_eq!(raw.status, 401);
}

/// Issue 25.5: approvals of one override race. Two different approvers at once grant it, every
/// round (the second to land grants; never two approvals and a pending override); ten approvals
/// of one approver at once give one approval and nine `already_approved`, never a 5xx (a primary
/// key violation).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_approvals_grant_once_and_never_fail() {
    use gatehouse::store::{StoreError, budget as db};
    let (db_handle, repo) = (TestDb::new().await, Repo::example());
    crate::helpers::apply(&db_handle, &repo).await;
    let pool = db_handle.pool.clone();
    let tenant: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM tenants WHERE name = 'globex'").fetch_one(&pool).await.expect("globex");
    let request = || {
        let pool = pool.clone();
        async move {
            let mut conn = pool.acquire().await.expect("connection");
            let hank = db::Person { name: "hank@globex.example", user_id: None, session_id: None };
            db::request(&mut conn, tenant, 15, "race", &hank, chrono::TimeDelta::hours(1), &[])
                .await
                .expect("requested")
                .id
        }
    };
    let approve = |id: uuid::Uuid, approver: String| {
        let pool = pool.clone();
        tokio::spawn(async move {
            let mut tx = pool.begin().await.expect("transaction");
            let person = db::Person { name: &approver, user_id: None, session_id: None };
            let approved = gatehouse::budget::approval::approve(&mut tx, tenant, id, &person, |o, _| {
                gatehouse::store::AuditEntry {
                    actor: approver.clone(),
                    actor_type: "operator",
                    action: "budget.override.approve".into(),
                    resource: format!("tenant/globex/budget/override/{}", o.id),
                    tenant: Some("globex".into()),
                    success: true,
                    metadata: json!({}),
                }
            })
            .await;
            tx.commit().await.expect("committed");
            approved
        })
    };
    for round in 0..8 {
        let id = request().await;
        let racers = [approve(id, "ada@ops.example".into()), approve(id, "grace@ops.example".into())];
        let mut statuses = Vec::new();
        for racer in racers {
            statuses.push(racer.await.expect("joined").expect("approved").status);
        }
        statuses.sort();
        assert_eq!(statuses, ["granted", "pending"], "round {round}");
        let record = db::get_override(&pool, tenant, id).await.expect("read").expect("there");
        assert_eq!((record.status.as_str(), record.approvals.len()), ("granted", 2), "round {round}");
    }

    let id = request().await;
    let same: Vec<_> = (0..10).map(|_| approve(id, "ada@ops.example".into())).collect();
    let (mut approved, mut already) = (0, 0);
    for racer in same {
        match racer.await.expect("joined") {
            Ok(_) => approved += 1,
            Err(StoreError::Rule { code: "already_approved", .. }) => already += 1,
            Err(other) => panic!("a racing approval failed: {other}"),
        }
    }
    assert_eq!((approved, already), (1, 9));
}

/// A session of `email` that passed their own TOTP just now (`secret` from `enrol_totp`).
async fn fresh_totp_session(server: &Served, email: &str, secret: &str) -> String {
    let pending = login(server, email, PASSWORD).await;
    assert_eq!(pending.body["session"]["pending"], "mfa_verify", "{}", pending.text);
    let pending = str_of(&pending.body, "access_token").to_owned();
    let code = json!({ "code": crate::identity::totp_now(secret, 1) });
    let verified = call(server, "POST", "/v1/auth/mfa/verify", Some(&pending), Some(code)).await;
    assert_eq!(verified.status, 200, "{}", verified.text);
    str_of(&verified.body, "access_token").to_owned()
}

/// Issue 25.4, the probe's first way: the owner of an API tenant invites two more owner addresses
/// of their own, accepts both invitations and approves their own request with them: refused, even
/// with a fresh second factor, because the owner made both accounts. Two operators, whom no tenant
/// makes, still grant it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_cannot_grant_their_own_override_with_owners_they_invited() {
    let (db, repo) = (TestDb::new().await, Repo::example());
    let (idp, server) = with_operators(&repo, &db).await;
    let tenant = json!({ "name": "solo", "displayName": "Solo", "plan": "enterprise", "owner": { "email": "boss@solo.example" } });
    assert_eq!(call(&server, "POST", "/v1/tenants", Some(OPERATOR), Some(tenant)).await.status, 201);
    activate(&db, &["boss@solo.example"]).await;
    let boss = str_of(&login(&server, "boss@solo.example", PASSWORD).await.body, "access_token").to_owned();
    for puppet in ["p1@solo.example", "p2@solo.example"] {
        let invited = json!({ "email": puppet, "role": "owner" });
        let invited = call(&server, "POST", "/v1/tenants/solo/users", Some(&boss), Some(invited)).await;
        assert_eq!(invited.status, 201, "{}", invited.text);
    }
    activate(&db, &["p1@solo.example", "p2@solo.example"]).await;
    let secret = crate::login::enrol_totp(&server, "p1@solo.example").await;
    let p1 = fresh_totp_session(&server, "p1@solo.example", &secret).await;
    let p2 = str_of(&login(&server, "p2@solo.example", PASSWORD).await.body, "access_token").to_owned();

    let path = "/v1/tenants/solo/budget/overrides";
    let asked = json!({ "amount": 5, "reason": "quarter-end import", "expiresIn": "1h" });
    let mut requested = call(&server, "POST", path, Some(&boss), Some(asked.clone())).await;
    for _ in 0..50 {
        // The new tenant's budget reaches every replica's memory through its feed.
        if requested.status == 201 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        requested = call(&server, "POST", path, Some(&boss), Some(asked.clone())).await;
    }
    assert_eq!(requested.status, 201, "{}", requested.text);
    let approve = format!("{path}/{}/approve", str_of(&requested.body, "id"));
    for (who, token) in [("p1", &p1), ("p2", &p2)] {
        let refused = call(&server, "POST", &approve, Some(token), None).await;
        assert_eq!((refused.status, code(&refused)), (409, "approver_not_independent"), "{who}: {}", refused.text);
    }
    let ada = idp.token("ada", person("ada@ops.example", json!(["platform-ops"]))).await;
    let grace = idp.token("grace", person("grace@ops.example", json!(["platform-ops"]))).await;
    assert_eq!(call(&server, "POST", &approve, Some(&ada), None).await.body["status"], "pending");
    let granted = call(&server, "POST", &approve, Some(&grace), None).await;
    assert_eq!((granted.status, granted.body["status"].as_str()), (200, Some("granted")), "{}", granted.text);
    assert_eq!(granted.body["approvals"], json!(["ada@ops.example", "grace@ops.example"]));
}

/// Issue 25.4, the probe's second way: the owner signs in as a co-owner who has TOTP enrolled
/// through an identity provider they control (a federated session, as the SSO callback opens it),
/// with neither the co-owner's password nor code: the approval is refused. The co-owner, signed
/// in with their own password and code, approves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_federated_sign_in_as_a_co_owner_cannot_approve() {
    use gatehouse::identity::token::{TokenKind, issue};
    let (db, repo) = (TestDb::new().await, Repo::example());
    repo.edit(
        "tenants/acme.yaml",
        "budget: { monthlyLimit: 500000, onLimit: block, warnAt: [75, 90] }",
        "budget: { monthlyLimit: 10, onLimit: requireOverride }",
    );
    let server = started(&repo, &db, &[("GATEHOUSE_OWNERS_NEED_MFA", "false")]).await;
    activate(&db, &["alice@acme.example", "arthur@acme.example"]).await;
    let secret = crate::login::enrol_totp(&server, "arthur@acme.example").await;
    let alice = str_of(&login(&server, "alice@acme.example", PASSWORD).await.body, "access_token").to_owned();
    let path = "/v1/tenants/acme/budget/overrides";
    let asked = json!({ "amount": 5, "reason": "launch week", "expiresIn": "1h" });
    let requested = call(&server, "POST", path, Some(&alice), Some(asked)).await;
    assert_eq!(requested.status, 201, "{}", requested.text);
    let approve = format!("{path}/{}/approve", str_of(&requested.body, "id"));

    let (access, refresh) = (issue(TokenKind::Access), issue(TokenKind::Refresh));
    let (user_id, tenant_id): (uuid::Uuid, uuid::Uuid) =
        sqlx::query_as("SELECT id, tenant_id FROM users WHERE email = 'arthur@acme.example'")
            .fetch_one(&db.pool)
            .await
            .expect("arthur");
    let mut conn = db.pool.acquire().await.expect("connection");
    let federated = gatehouse::store::sso::FederatedSession {
        user_id,
        tenant_id,
        access_hash: &access.hash,
        refresh_hash: &refresh.hash,
        absolute: Duration::from_secs(3600),
        ip: None,
        user_agent: None,
    };
    gatehouse::store::sso::create_federated_session(&mut conn, federated).await.expect("a federated session");
    drop(conn);
    let refused = call(&server, "POST", &approve, Some(&access.token), None).await;
    assert_eq!((refused.status, code(&refused)), (409, "fresh_second_factor_required"), "{}", refused.text);

    let arthur = fresh_totp_session(&server, "arthur@acme.example", &secret).await;
    let approved = call(&server, "POST", &approve, Some(&arthur), None).await;
    assert_eq!((approved.status, approved.body["status"].as_str()), (200, Some("pending")), "{}", approved.text);
}

/// Issue 22.5: a webhook is claimed in a committed statement and sent with no transaction open, so
/// a receiver that takes its time holds no row lock and no connection; a server stopped while it
/// waits ends within its deadline and gives its claim back, and the next replica delivers it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_transaction_stays_open_while_a_slow_webhook_receiver_answers_and_a_stop_gives_the_claim_back() {
    let (db, repo) = (TestDb::new().await, Repo::example());
    repo.edit(
        "tenants/acme.yaml",
        "budget: { monthlyLimit: 500000, onLimit: block, warnAt: [75, 90] }",
        "budget: { monthlyLimit: 100, onLimit: block, warnAt: [50] }",
    );
    // Answers after 30 s: longer than the test looks and than the server's stop deadline.
    let (slow, calls) = {
        let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = calls.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move || {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                async {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    axum::http::StatusCode::OK
                }
            }),
        );
        let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/hook", socket.local_addr().expect("address"));
        tokio::spawn(async move { axum::serve(socket, app).await });
        (url, calls)
    };
    let env = [("GATEHOUSE_BUDGET_WEBHOOK_URL", slow.as_str()), ("GATEHOUSE_BUDGET_WEBHOOK_SECRET", "hook-secret")];
    let mut server = started(&repo, &db, &env).await;
    let (_, key) = issue(&server, "billing-app", &[]);
    report(&server, &key, "acme", 0, 60).await;
    within(Duration::from_secs(10), "the receiver is called", || {
        std::future::ready(calls.load(std::sync::atomic::Ordering::SeqCst) >= 1)
    })
    .await;

    let name = db.url.rsplit('/').next().expect("db name").to_owned();
    let open = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = '{name}' AND xact_start IS NOT NULL
            AND state <> 'active' AND now() - xact_start > interval '1 second'"
    );
    let locked =
        "SELECT count(*) FROM webhook_outbox WHERE id IN (SELECT id FROM webhook_outbox FOR UPDATE SKIP LOCKED)";
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(db.count(&open).await, 0, "no transaction stays open while the receiver waits");
    assert_eq!(db.count(locked).await, 1, "the webhook's row is not locked while it is sent");

    let stopped = std::time::Instant::now();
    let status = tokio::task::spawn_blocking(move || server.terminate()).await.expect("stopped");
    assert_eq!(status, Some(0), "a clean exit");
    assert!(stopped.elapsed() < Duration::from_secs(25), "stopped within its deadline: {:?}", stopped.elapsed());
    let due_again = "SELECT count(*) FROM webhook_outbox WHERE delivered_at IS NULL AND next_attempt_at <= now() + interval '5 seconds'";
    assert_eq!(db.count(due_again).await, 1, "the claim is given back, due again at once, not after its lease");
}
