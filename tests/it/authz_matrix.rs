//! SC-002, FR-005, FR-LOG-003 (issue 10.4): every route × every kind of actor. The routes, and who
//! may call each, are the OpenAPI document's (issue 22.1: generated from the routers; each
//! operation's security requirements name the roles of `operator` and `session` and the scopes of
//! `apiKey`), so a new route cannot escape and needs no line here. For every cell the test asserts
//! the status, the error body and, for a refusal, the audit row that names the actor. A route that
//! skipped `authorize`, or an `authorize` rule that disagrees with the document, answers a cell
//! with something other than what the document promises.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{ENCRYPTION_KEY, InProcess, OPERATOR, PASSWORD, Repo, Served, TestDb, activate, call, within};
use crate::operations::{Body, Operation, operations};
use crate::operators::{Idp, person};

/// The actors of the matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Who {
    Anonymous,
    /// The bootstrap operator token.
    Operator,
    /// A person signed in at the identity provider, in a group bound to `operator` or `auditor`.
    Platform {
        label: &'static str,
        email: &'static str,
        group: &'static str,
    },
    /// A session of a user of tenant `acme` with this email, waiting for a code if `pending`.
    Session {
        label: &'static str,
        email: &'static str,
        role: &'static str,
        tenant: &'static str,
        pending: bool,
    },
    /// An API key of `app` with one scope.
    Key {
        label: &'static str,
        app: &'static str,
        scope: &'static str,
    },
}

impl Who {
    fn label(self) -> &'static str {
        match self {
            Who::Anonymous => "anonymous",
            Who::Operator => "operator",
            Who::Platform { label, .. } | Who::Session { label, .. } | Who::Key { label, .. } => label,
        }
    }

    /// The role of a platform actor, as the audit log and the document name it.
    fn platform_kind(self) -> &'static str {
        match self {
            Who::Platform { label: "idp-operator", .. } => "operator",
            _ => "auditor",
        }
    }

    /// What the document promises this actor on `operation` (`Public` and `Webhook` whoever calls).
    fn expects(self, operation: &Operation) -> Expect {
        if operation.security.is_none() {
            return Expect::Public;
        }
        if operation.is_webhook() {
            return Expect::Webhook;
        }
        let holds =
            |scheme: &str, role: &str| operation.roles(scheme).is_some_and(|roles| roles.iter().any(|r| r == role));
        let allowed = match self {
            Who::Anonymous => false,
            Who::Operator => holds("operator", "operator"),
            Who::Platform { .. } => holds("operator", self.platform_kind()),
            Who::Session { role, tenant, pending, .. } => {
                holds("session", role)
                    && (!pending || holds("session", "pending"))
                    && (tenant == "acme" || !about_acme(operation))
            }
            Who::Key { scope, .. } => holds("apiKey", scope),
        };
        if allowed { Expect::Allowed } else { Expect::Denied }
    }
}

/// What a cell must answer.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// No credential is asked for, and none is refused.
    Public,
    /// An unsigned delivery is refused (401).
    Webhook,
    /// Not 401 or 403.
    Allowed,
    /// 401 or 403 with the code, message and audit row of a refusal.
    Denied,
}

const ACTORS: &[Who] = &[
    Who::Anonymous,
    Who::Operator,
    Who::Platform { label: "idp-operator", email: "ada@ops.example", group: "platform-ops" },
    Who::Platform { label: "auditor", email: "eve@ops.example", group: "platform-audit" },
    Who::Session { label: "owner", email: "alice@acme.example", role: "owner", tenant: "acme", pending: false },
    Who::Session { label: "admin", email: "carol@acme.example", role: "admin", tenant: "acme", pending: false },
    Who::Session { label: "user", email: "dan@acme.example", role: "user", tenant: "acme", pending: false },
    Who::Session {
        label: "globex-owner",
        email: "hank@globex.example",
        role: "owner",
        tenant: "globex",
        pending: false,
    },
    Who::Session { label: "pending", email: "erin@acme.example", role: "user", tenant: "acme", pending: true },
    Who::Key { label: "flags-key", app: "billing-app", scope: "flags:read" },
    Who::Key { label: "introspect-key", app: "analytics-app", scope: "auth:introspect" },
    Who::Key { label: "evaluate-key", app: "analytics-app", scope: "authz:evaluate" },
    Who::Key { label: "usage-key", app: "billing-app", scope: "usage:write" },
    Who::Key { label: "audit-key", app: "billing-app", scope: "audit:write" },
    Who::Key { label: "usage-read-key", app: "analytics-app", scope: "usage:read" },
];

/// Routes granted to a key scope (a key without it is `insufficient_scope`, not `forbidden`).
fn granted_by_scope(operation: &Operation) -> bool {
    operation.roles("apiKey").is_some()
}

/// Routes about tenant `acme`, in the path or (OFREP) in the body: a session of globex is refused
/// as another tenant's.
fn about_acme(operation: &Operation) -> bool {
    operation.path.contains("/v1/tenants/{tenant}")
        || operation.path.contains("/ofrep/")
        || fill(operation).contains("tenant=acme")
}

struct Cell<'a> {
    operation: &'a Operation,
    who: Who,
    status: u16,
    body: Value,
    path: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_for_every_actor_is_allowed_or_denied_clearly_and_denials_are_audited() {
    let db = TestDb::new().await;
    let repo = Repo::example();
    // analytics-app may ask for access decisions (authz:evaluate); acme lists it.
    let analytics = std::fs::read_to_string(repo.path().join("applications/analytics-app.yaml")).expect("app");
    repo.write(
        "applications/analytics-app.yaml",
        &analytics.replace(
            "scopes: [flags:read, usage:read, auth:introspect]",
            "scopes: [flags:read, usage:read, auth:introspect, authz:evaluate]",
        ),
    );
    let idp = Idp::start();
    let server = started(&db, &repo, &idp.issuer).await;
    activate(
        &db,
        &["alice@acme.example", "carol@acme.example", "dan@acme.example", "erin@acme.example", "hank@globex.example"],
    )
    .await;
    let mut keys = issue_keys(&server).await;
    for who in ACTORS {
        if let Who::Platform { label, email, group } = who {
            let account = email.split('@').next().unwrap_or(email);
            keys.insert(label, idp.token(account, person(email, json!([group]))).await);
        }
    }

    let mut operations = operations();
    operations.sort_by_key(Operation::shape);
    let mut cells = Vec::new();
    let mut sessions = BTreeMap::new();
    for operation in &operations {
        for who in ACTORS {
            let credential = credential(&server, &db, *who, &keys, &mut sessions).await;
            let path = fill(operation);
            let (status, body) = send(&server, &operation.method, &path, &operation.body, credential.as_deref()).await;
            cells.push(Cell { operation, who: *who, status, body, path });
        }
    }

    let mut failures = Vec::new();
    let mut denied_rows = Vec::new();
    for cell in &cells {
        let route = cell.operation.shape();
        let label = cell.who.label();
        let code = cell.body["error"]["code"].as_str().unwrap_or("");
        let message = cell.body["error"]["message"].as_str().unwrap_or("");
        let body: String = cell.body.to_string().chars().take(300).collect();
        let what = format!("{route} as {label} ({}): {} {body}", cell.path, cell.status);
        let expect = cell.who.expects(cell.operation);
        if expect == Expect::Public {
            if cell.status == 403 || ["insufficient_scope", "forbidden"].contains(&code) {
                failures.push(format!("public route refused: {what}"));
            }
            continue;
        }
        if expect == Expect::Webhook {
            if cell.status != 401 {
                failures.push(format!("an unsigned webhook was let in: {what}"));
            }
            continue;
        }
        if expect == Expect::Allowed {
            if matches!(cell.status, 401 | 403) {
                failures.push(format!("allowed actor refused: {what}"));
            }
            continue;
        }
        // Denied: the status, the code, a message saying who may not do what, and an audit row.
        let (want_status, want_code) = match cell.who {
            Who::Anonymous => (401, "unauthorized"),
            Who::Session { pending: true, .. } => (403, "mfa_required"),
            Who::Session { tenant: "globex", .. } if about_acme(cell.operation) => (403, "forbidden"),
            Who::Key { .. } if granted_by_scope(cell.operation) => (403, "insufficient_scope"),
            _ => (403, "forbidden"),
        };
        if (cell.status, code) != (want_status, want_code) {
            failures.push(format!("expected {want_status} {want_code}: {what}"));
            continue;
        }
        let says = match cell.who {
            Who::Anonymous => message.starts_with("a credential is required to "),
            Who::Operator => message.starts_with("the bootstrap operator token may not "),
            Who::Platform { email, .. } => {
                message.starts_with(&format!("{} {email} may not ", cell.who.platform_kind()))
                    && message.contains(": requires ")
            }
            Who::Session { pending: true, .. } => message.contains("waits for a second factor"),
            Who::Session { email, tenant, .. }
                if want_code == "forbidden" && !(tenant == "globex" && about_acme(cell.operation)) =>
            {
                message.starts_with(&format!("user {email} ("))
                    && message.contains(" may not ")
                    && message.contains(": requires ")
            }
            Who::Session { tenant, .. } if want_code == "forbidden" => {
                message.contains(&format!("a session of tenant `{tenant}` acts only on that tenant"))
            }
            Who::Key { app, .. } => {
                message.starts_with(&format!("application `{app}` (key ")) && message.contains(": requires ")
            }
            _ => !message.is_empty(),
        };
        if !says {
            failures.push(format!("the message does not say who may not do what: {what}"));
        }
        denied_rows.push((cell, want_code));
    }
    assert!(failures.is_empty(), "{} of {} cells wrong:\n{}", failures.len(), cells.len(), failures.join("\n"));

    // Every denial has its row: the actor by name and kind, the path, the code (anonymous ones are
    // aggregated per address, route and reason: at least one row each, written at once).
    within(Duration::from_secs(10), "every denial audited", || async {
        for (cell, code) in &denied_rows {
            // The row names the path; the query string is not part of it.
            let path = cell.path.split('?').next().unwrap_or_default().replace('\'', "''");
            let sql = match cell.who {
                Who::Anonymous => format!(
                    "SELECT count(*) FROM audit_log WHERE action = 'api.denied' AND outcome = 'failure' AND actor_type = 'anonymous' AND resource = '{path}'"
                ),
                who => {
                    let (actor, kind) = match who {
                        Who::Operator => ("bootstrap-token", "operator"),
                        Who::Platform { email, .. } => (email, who.platform_kind()),
                        Who::Session { email, .. } => (email, "user"),
                        Who::Key { app, .. } => (app, "application"),
                        Who::Anonymous => unreachable!("handled above"),
                    };
                    format!(
                        "SELECT count(*) FROM audit_log WHERE action = 'api.denied' AND outcome = 'failure' AND actor = '{actor}' AND actor_type = '{kind}' AND resource = '{path}' AND metadata->>'code' = '{code}'"
                    )
                }
            };
            if db.count(&sql).await < 1 {
                return false;
            }
        }
        true
    })
    .await;
    assert!(denied_rows.len() > 300, "the matrix denied {} cells", denied_rows.len());
    drop(server);
}

async fn started(db: &TestDb, repo: &Repo, issuer: &str) -> InProcess {
    let env = [
        ("GATEHOUSE_ENCRYPTION_KEY", ENCRYPTION_KEY),
        ("GATEHOUSE_OIDC_ISSUER_URL", issuer),
        ("GATEHOUSE_OIDC_AUDIENCE", "gatehouse"),
        ("GATEHOUSE_OIDC_USERNAME_CLAIM", "email"),
        ("GATEHOUSE_OIDC_GROUP_BINDINGS", "platform-ops=operator,platform-audit=auditor"),
        ("GATEHOUSE_OWNERS_NEED_MFA", "false"),
        // Every session cell signs in afresh: the per-IP limit of the sign-in routes must not hide it.
        ("GATEHOUSE_AUTH_IP_LIMIT", "1000000"),
        // The login route's cells spoil carol's password on every row: no lockout may hide a cell.
        ("GATEHOUSE_LOCKOUT_THRESHOLD", "1000000"),
    ];
    let server = InProcess::start(repo.path(), &db.url, "60s", &env);
    server.ready().await;
    server
}

/// One key per key actor, by label.
async fn issue_keys(server: &Served) -> BTreeMap<&'static str, String> {
    let mut keys = BTreeMap::new();
    for who in ACTORS {
        if let Who::Key { label, app, scope } = who {
            let issued = call(
                server,
                "POST",
                &format!("/v1/apps/{app}/keys"),
                Some(OPERATOR),
                Some(json!({ "scopes": [scope] })),
            )
            .await;
            assert_eq!(issued.status, 201, "{label}: {}", issued.text);
            keys.insert(*label, issued.body["secret"].as_str().expect("secret").to_owned());
        }
    }
    keys
}

/// The bearer of `who`. A session actor keeps its session from cell to cell while it is live, and
/// signs in again once a cell has ended it (signed out, ended, its role or password changed): a
/// sign-in per cell would be 500 argon2 hashes.
async fn credential(
    server: &Served,
    db: &TestDb,
    who: Who,
    keys: &BTreeMap<&str, String>,
    sessions: &mut BTreeMap<&'static str, String>,
) -> Option<String> {
    match who {
        Who::Anonymous => None,
        Who::Operator => Some(OPERATOR.to_owned()),
        Who::Key { label, .. } | Who::Platform { label, .. } => Some(keys[label].clone()),
        Who::Session { label, email, role, pending, .. } => {
            if let Some(token) = sessions.get(label) {
                let check = call(server, "GET", "/v1/auth/session", Some(token), None).await;
                if check.status == 200 && check.body["role"] == role {
                    return Some(token.clone());
                }
            }
            let tokens =
                call(server, "POST", "/v1/auth/login", None, Some(json!({ "email": email, "password": PASSWORD })))
                    .await;
            assert_eq!(tokens.status, 200, "sign-in of {email}: {}", tokens.text);
            assert_eq!(tokens.body["session"]["role"], role);
            if pending {
                let id = tokens.body["session"]["id"].as_str().expect("session id");
                db.execute(&format!("UPDATE sessions SET pending = 'mfa_verify' WHERE id = '{id}'")).await;
            }
            let token = tokens.body["access_token"].as_str().expect("access token").to_owned();
            sessions.insert(label, token.clone());
            Some(token)
        }
    }
}

/// The operation's path with every parameter filled: tenant `acme`, a real application, a key
/// id, a user; a key names its tenant (`?tenant=acme`) where the operation reads one.
fn fill(operation: &Operation) -> String {
    let query = if operation.roles("apiKey").is_some() && operation.query.iter().any(|q| q == "tenant") {
        "?tenant=acme"
    } else {
        ""
    };
    let path = operation
        .path
        .replace("{tenant}", "acme")
        .replace("{app}", "billing-app")
        .replace("{key}", "AAAAAAAAAAAA")
        .replace("{email}", "dan@acme.example")
        .replace("{id}", "0190a0d4-0000-7000-8000-000000000000")
        .replace("{flag}", "max_projects");
    format!("{path}{query}")
}

/// Sends one request and reads the status and JSON body; an event stream's status only (it does not end).
async fn send(server: &Served, method: &str, path: &str, body: &Body, bearer: Option<&str>) -> (u16, Value) {
    let url = format!("{}{path}", server.base);
    let (content_type, bytes) = match body {
        Body::None | Body::Bytes => ("application/json", Vec::new()),
        Body::Json { base, .. } => ("application/json", serde_json::to_vec(base).expect("json")),
        Body::Form(fields) => (
            "application/x-www-form-urlencoded",
            fields.iter().map(|f| format!("{f}=x")).collect::<Vec<_>>().join("&").into_bytes(),
        ),
    };
    let (method, bearer) = (method.to_owned(), bearer.map(str::to_owned));
    tokio::task::spawn_blocking(move || {
        let mut request =
            ureq::request(&method, &url).timeout(Duration::from_secs(10)).set("content-type", content_type);
        if let Some(bearer) = &bearer {
            request = request.set("authorization", &format!("Bearer {bearer}"));
        }
        let response = match request.send_bytes(&bytes) {
            Ok(response) | Err(ureq::Error::Status(_, response)) => response,
            Err(error) => panic!("{method} {url}: {error}"),
        };
        let status = response.status();
        if response.content_type() == "text/event-stream" {
            return (status, Value::Null);
        }
        let text = response.into_string().unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    })
    .await
    .expect("request task")
}
