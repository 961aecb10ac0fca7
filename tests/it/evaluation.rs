//! Issue 10.6: `POST /access/v1/evaluation` in the OpenID AuthZEN 1.0 shape answers other services
//! from the same `authorize` as the API's own routes (FR-005).

use serde_json::{Value, json};

use crate::helpers::{ENCRYPTION_KEY, InProcess, OPERATOR, PASSWORD, Repo, TestDb, activate, call};

fn evaluation(subject: &str, action: &str, resource: Value) -> Value {
    json!({ "subject": { "type": "session", "id": subject }, "action": { "name": action }, "resource": resource })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_for_other_services_come_from_the_same_authorize() {
    let db = TestDb::new().await;
    let repo = Repo::example();
    let analytics = std::fs::read_to_string(repo.path().join("applications/analytics-app.yaml")).expect("app");
    repo.write(
        "applications/analytics-app.yaml",
        &analytics.replace(
            "scopes: [flags:read, usage:read, auth:introspect]",
            "scopes: [flags:read, usage:read, auth:introspect, authz:evaluate]",
        ),
    );
    let server = InProcess::start(
        repo.path(),
        &db.url,
        "60s",
        &[("GATEHOUSE_ENCRYPTION_KEY", ENCRYPTION_KEY), ("GATEHOUSE_OWNERS_NEED_MFA", "false")],
    );
    server.ready().await;
    activate(&db, &["carol@acme.example", "dan@acme.example"]).await;
    let key = |scopes: Value| {
        let server = &server;
        async move {
            let issued =
                call(server, "POST", "/v1/apps/analytics-app/keys", Some(OPERATOR), Some(json!({ "scopes": scopes })))
                    .await;
            assert_eq!(issued.status, 201, "{}", issued.text);
            issued.body["secret"].as_str().expect("secret").to_owned()
        }
    };
    let (evaluator, reader) = (key(json!(["authz:evaluate"])).await, key(json!(["flags:read"])).await);
    let session = |email: &'static str| {
        let server = &server;
        async move {
            let tokens =
                call(server, "POST", "/v1/auth/login", None, Some(json!({ "email": email, "password": PASSWORD })))
                    .await;
            tokens.body["access_token"].as_str().expect("access token").to_owned()
        }
    };
    let (carol, dan) = (session("carol@acme.example").await, session("dan@acme.example").await);
    let ask = |key: String, body: Value| {
        let server = &server;
        async move { call(server, "POST", "/access/v1/evaluation", Some(&key), Some(body)).await }
    };
    let acme = json!({ "type": "tenant", "id": "acme" });

    // An admin of acme may list its users; a plain user may not, and is told why.
    let allowed = ask(evaluator.clone(), evaluation(&carol, "users.list", acme.clone())).await;
    assert_eq!((allowed.status, &allowed.body), (200, &json!({ "decision": true, "context": {} })));
    let denied = ask(evaluator.clone(), evaluation(&dan, "users.list", acme.clone())).await;
    assert_eq!((denied.status, &denied.body["decision"]), (200, &json!(false)));
    assert_eq!(denied.body["context"]["code"], "forbidden");
    assert!(
        denied.body["context"]["reason"]
            .as_str()
            .is_some_and(|r| r
                .starts_with("user dan@acme.example (user of `acme`) may not list or read the users of tenant `acme`")),
        "{}",
        denied.body
    );
    // A user resource of the tenant; a user's own session actions.
    let user = json!({ "type": "user", "id": "erin@acme.example", "properties": { "tenant": "acme" } });
    assert_eq!(ask(evaluator.clone(), evaluation(&carol, "users.sessions.end", user)).await.body["decision"], true);
    assert_eq!(ask(evaluator.clone(), evaluation(&dan, "session.read", acme.clone())).await.body["decision"], true);
    // A user named as if in acme but in globex is no user of acme: a deny with the reason, not a
    // decision about acme's rules (issue 25.14).
    let stranger = json!({ "type": "user", "id": "jack@globex.example", "properties": { "tenant": "acme" } });
    let stranger = ask(evaluator.clone(), evaluation(&carol, "users.sessions.end", stranger)).await;
    assert_eq!(
        (stranger.status, stranger.body["decision"].clone(), stranger.body["context"]["code"].clone()),
        (200, json!(false), json!("unknown_resource")),
        "{}",
        stranger.text
    );
    assert!(
        stranger.body["context"]["reason"].as_str().is_some_and(|r| r.contains("has no user")),
        "{}",
        stranger.text
    );
    // A session that is not one: no decision for it, but no error either.
    let unknown = ask(evaluator.clone(), evaluation("gatehouse_at_nope", "users.list", acme.clone())).await;
    assert_eq!(
        (unknown.body["decision"].clone(), unknown.body["context"]["code"].clone()),
        (json!(false), json!("unknown_subject"))
    );
    // What the asking application may not ask: a tenant not open to it, without the scope.
    let closed =
        ask(evaluator.clone(), evaluation(&carol, "users.list", json!({ "type": "tenant", "id": "globex" }))).await;
    assert_eq!((closed.status, closed.body["error"]["code"].clone()), (403, json!("forbidden")));
    let scopeless = ask(reader, evaluation(&carol, "users.list", acme.clone())).await;
    assert_eq!((scopeless.status, scopeless.body["error"]["code"].clone()), (403, json!("insufficient_scope")));
    // Bad requests say what is wrong.
    let typo = ask(evaluator.clone(), evaluation(&carol, "users.lst", acme)).await;
    assert_eq!(typo.status, 400);
    assert!(typo.body["error"]["message"].as_str().is_some_and(|m| m.contains("users.list")), "{}", typo.body);
}
