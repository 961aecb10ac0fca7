//! Issue 11.6, 11.7, 11.10, 11.11: the real server under hostile input. Every route of the API gets
//! path parameters with a NUL byte, invalid UTF-8 and 10 KB of text, and JSON and form bodies with
//! wrong types, NUL bytes, 10 KB strings, numbers at the edges and sizes over the limit. Nothing
//! may answer 5xx; every error is in the JSON envelope; every response says `nosniff`.
//!
//! The requests are written by hand over TCP: a client library would refuse to send most of them.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{
    ENCRYPTION_KEY, HttpResponse, OPERATOR, PASSWORD, Repo, ServeProcess, TestDb, activate, call, request, within,
};

/// The largest JSON body the API reads (issue 11.7).
const BODY_LIMIT: usize = 1024 * 1024;

/// A response as it came off the wire.
struct Raw {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Raw {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request on a fresh connection, bytes exactly as given (`target` is sent as is, so
/// `%00` and `%ff` reach the server encoded, and raw bytes raw).
fn send(addr: &str, method: &str, target: &[u8], headers: &[(&str, String)], body: &[u8]) -> Result<Raw, String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
    let mut head = Vec::new();
    head.extend_from_slice(method.as_bytes());
    head.push(b' ');
    head.extend_from_slice(target);
    head.extend_from_slice(format!(" HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n").as_bytes());
    for (name, value) in headers {
        head.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    head.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    // A server may answer (413) and stop reading before all of a large body is written.
    let written = stream.write_all(&head).and_then(|()| stream.write_all(body));
    let mut received = Vec::new();
    let mut buffer = [0u8; 16 * 1024];
    let header_end = loop {
        if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        match stream.read(&mut buffer) {
            Ok(0) => {
                return Err(format!(
                    "the connection closed without a response (write: {written:?}, got {:?})",
                    String::from_utf8_lossy(&received)
                ));
            }
            Ok(n) => received.extend_from_slice(&buffer[..n]),
            Err(error) => return Err(format!("no response: {error} (write: {written:?})")),
        }
    };
    let head = String::from_utf8_lossy(&received[..header_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status line in {head:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = received[header_end + 4..].to_vec();
    let streaming = headers.iter().any(|(n, v)| n == "content-type" && v.starts_with("text/event-stream"));
    if !streaming {
        // `Connection: close`: the server closes once the response is complete.
        let _ = stream.read_to_end(&mut body);
        if headers.iter().any(|(n, v)| n == "transfer-encoding" && v.contains("chunked")) {
            body = dechunk(&body);
        }
    }
    Ok(Raw { status, headers, body })
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = data.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&data[..line_end]).trim(), 16).unwrap_or(0);
        if size == 0 || data.len() < line_end + 2 + size {
            break;
        }
        out.extend_from_slice(&data[line_end + 2..line_end + 2 + size]);
        data = &data[(line_end + 4 + size).min(data.len())..];
    }
    out
}

/// What every answer must be, whatever was asked: no 5xx, `nosniff`, errors in the envelope.
/// `html_errors`: the two pages a mailed link opens answer their errors as HTML pages.
fn problems_with(raw: &Result<Raw, String>, errors: Errors) -> Option<String> {
    let raw = match raw {
        Ok(raw) => raw,
        Err(error) => return Some(error.clone()),
    };
    let mut problems = Vec::new();
    if raw.status >= 500 {
        problems.push(format!("answered {}", raw.status));
    }
    if raw.header("x-content-type-options") != Some("nosniff") {
        problems.push("no `X-Content-Type-Options: nosniff`".to_owned());
    }
    let content_type = raw.header("content-type").unwrap_or("");
    if raw.status >= 400 && errors == Errors::OAuth && content_type.starts_with("application/json") {
        let body: Value = serde_json::from_slice(&raw.body).unwrap_or(Value::Null);
        // The OAuth error, or the envelope of a refusal before the handler (a body over the limit).
        if !body["error"].is_string() && !body["error"]["code"].is_string() {
            problems.push(format!("{} without an OAuth `error`", raw.status));
        }
    } else if raw.status >= 400 && !(errors == Errors::Html && content_type.starts_with("text/html")) {
        if !content_type.starts_with("application/json") {
            problems.push(format!("{} with content type {content_type:?}", raw.status));
        }
        let body: Value = serde_json::from_slice(&raw.body).unwrap_or(Value::Null);
        if !body["error"]["code"].is_string() || !body["error"]["message"].is_string() {
            let text = String::from_utf8_lossy(&raw.body);
            problems.push(format!(
                "{} without the error envelope: {:?}",
                raw.status,
                text.chars().take(120).collect::<String>()
            ));
        }
    }
    (!problems.is_empty()).then(|| format!("{} ({})", problems.join("; "), raw.status))
}

/// Who calls a route in the suite.
#[derive(Clone, Copy)]
enum Caller {
    Anyone,
    Operator,
    /// An API key of an application with `flags:read`, `usage:write` and `audit:write`, open to
    /// tenant `acme`.
    FlagsKey,
    /// An API key with `auth:introspect` and `authz:evaluate`, open to tenant `acme`.
    IntrospectKey,
    /// A tenant admin's session.
    Session,
    /// A session of its own, which the route ends.
    SpareSession,
}

/// What a route reads from its body.
#[derive(Clone, Copy)]
pub(crate) enum Body {
    None,
    /// A JSON object: a valid-looking base and the fields to spoil one at a time.
    Json(fn() -> Value),
    /// `application/x-www-form-urlencoded` with these fields.
    Form(&'static [&'static str]),
    /// Whatever the webhook route makes of bytes.
    Bytes,
}

pub(crate) struct Route {
    pub(crate) method: &'static str,
    /// With `{tenant}`, `{app}`, `{key}`, `{email}`, `{id}`, `{flag}` for path parameters.
    pub(crate) path: &'static str,
    caller: Caller,
    pub(crate) body: Body,
    /// Query parameters the route reads.
    query: &'static [&'static str],
}

const fn route(method: &'static str, path: &'static str, caller: Caller, body: Body) -> Route {
    Route { method, path, caller, body, query: &[] }
}

const AUTHORIZE: &[&str] =
    &["response_type", "client_id", "redirect_uri", "scope", "state", "nonce", "code_challenge", "prompt", "max_age"];
const LOGOUT: &[&str] = &["id_token_hint", "post_logout_redirect_uri", "state", "client_id"];

/// How a route answers its errors: the JSON envelope, a page (what a browser opens), or the
/// OAuth 2.0 error object (RFC 6749 §5.2, RFC 6750 §3: what an OAuth client library reads).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Errors {
    Envelope,
    Html,
    OAuth,
}

fn errors_of(path: &str) -> Errors {
    match path {
        "/invitations/accept"
        | "/password/reset"
        | "/password/forgot"
        | "/login"
        | "/account"
        | "/logout"
        | "/oauth2/authorize"
        | "/oauth2/logout"
        | "/login/sso/callback" => Errors::Html,
        "/oauth2/token" | "/oauth2/userinfo" => Errors::OAuth,
        _ => Errors::Envelope,
    }
}

/// Every route of the API, from the `router()` functions in `src/api/*.rs`, with a valid-looking body.
pub(crate) fn routes() -> Vec<Route> {
    use Body::{Bytes, Form, Json, None};
    use Caller::*;
    vec![
        // health.rs
        route("GET", "/healthz", Anyone, None),
        route("GET", "/readyz", Anyone, None),
        route("GET", "/metrics", Anyone, None),
        route("GET", "/openapi.json", Anyone, None),
        // hooks.rs
        route("POST", "/v1/hooks/git", Anyone, Bytes),
        // flags.rs
        route("GET", "/v1/tenants/{tenant}/flags", FlagsKey, None),
        route("GET", "/v1/tenants/{tenant}/flags/events", FlagsKey, None),
        // ofrep.rs
        route("POST", "/ofrep/v1/evaluate/flags", FlagsKey, Json(|| json!({ "context": { "tenant": "acme" } }))),
        route(
            "POST",
            "/ofrep/v1/evaluate/flags/{flag}",
            FlagsKey,
            Json(|| json!({ "context": { "tenant": "acme", "targetingKey": "u1" } })),
        ),
        // auth.rs, limited per IP
        route(
            "POST",
            "/v1/auth/login",
            Anyone,
            Json(|| json!({ "email": "carol@acme.example", "password": "wrong password" })),
        ),
        route("POST", "/v1/auth/refresh", Anyone, Json(|| json!({ "refresh_token": "gatehouse_rt_unknown" }))),
        route("POST", "/v1/auth/password/forgot", Anyone, Json(|| json!({ "email": "nobody@acme.example" }))),
        route(
            "POST",
            "/v1/auth/password/reset",
            Anyone,
            Json(|| json!({ "token": "gatehouse_lt_x", "password": "x" })),
        ),
        route(
            "POST",
            "/v1/auth/invitations/accept",
            Anyone,
            Json(|| json!({ "token": "gatehouse_lt_x", "password": "x" })),
        ),
        route("POST", "/v1/auth/mfa/verify", Session, Json(|| json!({ "code": "000000" }))),
        route("POST", "/v1/auth/mfa/totp/confirm", Session, Json(|| json!({ "code": "000000" }))),
        Route { query: &["token"], ..route("GET", "/invitations/accept", Anyone, None) },
        route("POST", "/invitations/accept", Anyone, Form(&["token", "password"])),
        Route { query: &["token"], ..route("GET", "/password/reset", Anyone, None) },
        route("POST", "/password/reset", Anyone, Form(&["token", "password"])),
        route("GET", "/password/forgot", Anyone, None),
        route("POST", "/password/forgot", Anyone, Form(&["email"])),
        // login.rs
        Route { query: &["return_to", "force", "signed_out"], ..route("GET", "/login", Anyone, None) },
        route("POST", "/login", Anyone, Form(&["csrf", "step", "email", "password", "code", "return_to"])),
        route("GET", "/account", Anyone, None),
        route("POST", "/logout", Anyone, Form(&["csrf"])),
        // oidc.rs
        route("GET", "/.well-known/openid-configuration", Anyone, None),
        route("GET", "/oauth2/jwks", Anyone, None),
        Route { query: AUTHORIZE, ..route("GET", "/oauth2/authorize", Anyone, None) },
        route("POST", "/oauth2/authorize", Anyone, Form(AUTHORIZE)),
        route(
            "POST",
            "/oauth2/token",
            Anyone,
            Form(&[
                "grant_type",
                "code",
                "redirect_uri",
                "code_verifier",
                "client_id",
                "client_secret",
                "refresh_token",
            ]),
        ),
        route("GET", "/oauth2/userinfo", Anyone, None),
        route("POST", "/oauth2/userinfo", Anyone, Form(&["access_token"])),
        Route { query: LOGOUT, ..route("GET", "/oauth2/logout", Anyone, None) },
        route("POST", "/oauth2/logout", Anyone, Form(LOGOUT)),
        route("POST", "/v1/apps/{app}/client-secret", Operator, None),
        route("POST", "/v1/oidc/keys/rotate", Operator, None),
        // sso.rs
        Route {
            query: &["code", "state", "error", "error_description"],
            ..route("GET", "/login/sso/callback", Anyone, None)
        },
        route("GET", "/v1/tenants/{tenant}/sso", Operator, None),
        route(
            "PUT",
            "/v1/tenants/{tenant}/sso",
            Operator,
            Json(
                || json!({ "issuer": "https://login.acme.example", "clientId": "gatehouse", "clientSecret": "s", "domains": ["acme.example"] }),
            ),
        ),
        route("POST", "/v1/tenants/{tenant}/sso/verify", Operator, None),
        route("POST", "/v1/tenants/{tenant}/sso/test", Operator, None),
        route("POST", "/v1/tenants/{tenant}/sso/activate", Operator, None),
        route("DELETE", "/v1/tenants/{tenant}/sso", Operator, None),
        // auth.rs, operators
        route("DELETE", "/v1/auth/lockouts/{email}", Operator, None),
        // auth.rs, sessions and applications
        route("POST", "/v1/auth/logout", SpareSession, None),
        route("GET", "/v1/auth/session", Session, None),
        route("GET", "/v1/auth/sessions", Session, None),
        route("DELETE", "/v1/auth/sessions/{id}", Session, None),
        route(
            "POST",
            "/v1/auth/password/change",
            Session,
            Json(|| json!({ "current_password": "not the password", "new_password": "x" })),
        ),
        route("POST", "/v1/auth/mfa/totp/enrol", Session, None),
        route("POST", "/v1/auth/introspect", IntrospectKey, Form(&["token"])),
        route("POST", "/v1/auth/revoke", IntrospectKey, Form(&["token"])),
        // tenants.rs
        Route { query: &["after", "limit", "state", "plan", "prefix"], ..route("GET", "/v1/tenants", Operator, None) },
        route(
            "POST",
            "/v1/tenants",
            Operator,
            Json(
                || json!({ "name": "hostile-tenant", "displayName": "Hostile", "plan": "free", "applications": ["billing-app"], "owner": { "email": "owner@hostile.example", "name": "Owner" } }),
            ),
        ),
        route("GET", "/v1/tenants/{tenant}", Operator, None),
        route("PATCH", "/v1/tenants/{tenant}", Operator, Json(|| json!({ "displayName": "Probe", "plan": "pro" }))),
        route("DELETE", "/v1/tenants/{tenant}", Operator, None),
        route("POST", "/v1/tenants/{tenant}/suspend", Operator, Json(|| json!({ "reason": "hostile" }))),
        route("POST", "/v1/tenants/{tenant}/restore", Operator, None),
        // overrides.rs
        route("GET", "/v1/tenants/{tenant}/overrides", Operator, None),
        route("PUT", "/v1/tenants/{tenant}/overrides/{flag}", Operator, Json(|| json!({ "value": true }))),
        route("DELETE", "/v1/tenants/{tenant}/overrides/{flag}", Operator, None),
        // users.rs
        Route {
            query: &["after", "limit", "role", "status", "emailPrefix"],
            ..route("GET", "/v1/tenants/{tenant}/users", Session, None)
        },
        route(
            "POST",
            "/v1/tenants/{tenant}/users",
            Session,
            Json(|| json!({ "email": "newcomer@acme.example", "role": "user", "name": "New Comer" })),
        ),
        route("GET", "/v1/tenants/{tenant}/users/{email}", Session, None),
        route(
            "PATCH",
            "/v1/tenants/{tenant}/users/{email}",
            Session,
            Json(|| json!({ "name": "Probe", "role": "user", "status": "active" })),
        ),
        route("DELETE", "/v1/tenants/{tenant}/users/{email}", Session, None),
        route("DELETE", "/v1/tenants/{tenant}/users/{email}/lockout", Session, None),
        route("DELETE", "/v1/tenants/{tenant}/users/{email}/sessions", Session, None),
        route("POST", "/v1/tenants/{tenant}/users/{email}/invitation", Session, None),
        // sync.rs
        route("GET", "/v1/sync/status", Operator, None),
        Route { query: &["after", "limit", "all", "state"], ..route("GET", "/v1/sync/tenants", Operator, None) },
        route("GET", "/v1/sync/tenants/{tenant}", Operator, None),
        Route { query: &["before", "limit"], ..route("GET", "/v1/sync/tenants/{tenant}/history", Operator, None) },
        route("POST", "/v1/sync/tenants/{tenant}/allow-deletion", Operator, None),
        Route { query: &["before", "limit"], ..route("GET", "/v1/sync/history", Operator, None) },
        route("POST", "/v1/sync", Operator, None),
        route("POST", "/v1/sync/pause", Operator, None),
        route("POST", "/v1/sync/resume", Operator, None),
        route(
            "POST",
            "/v1/sync/tenants/{tenant}/drift/allow",
            Operator,
            Json(|| json!({ "until": "2099-01-01T00:00:00Z", "reason": "hostile" })),
        ),
        route("DELETE", "/v1/sync/tenants/{tenant}/drift/allow", Operator, None),
        // mail.rs
        Route { query: &["to", "all", "limit"], ..route("GET", "/v1/mail/outbox", Operator, None) },
        // evaluation.rs
        route(
            "POST",
            "/access/v1/evaluation",
            IntrospectKey,
            Json(|| {
                json!({
                    "subject": { "type": "session", "id": "gatehouse_at_x" },
                    "action": { "name": "users.list" },
                    "resource": { "type": "tenant", "id": "acme" }
                })
            }),
        ),
        // usage.rs (billing-app's key holds usage:write; acme lists billing-app)
        route(
            "POST",
            "/v1/usage/events",
            FlagsKey,
            Json(|| {
                json!({ "specversion": "1.0", "id": "hostile-1", "source": "//hostile", "type": "api.call",
                        "subject": "acme", "time": chrono::Utc::now().to_rfc3339(), "data": { "quantity": 1 } })
            }),
        ),
        Route {
            query: &["tenant", "type", "from", "to", "after", "limit"],
            ..route("GET", "/v1/usage/events", Operator, None)
        },
        Route {
            query: &["tenant", "type", "from", "to", "granularity"],
            ..route("GET", "/v1/usage/totals", Operator, None)
        },
        // budget.rs
        route("GET", "/v1/tenants/{tenant}/budget", Operator, None),
        route(
            "POST",
            "/v1/tenants/{tenant}/budget/check",
            FlagsKey,
            Json(|| json!({ "quantity": 1, "type": "api.call" })),
        ),
        route("GET", "/v1/tenants/{tenant}/budget/overrides", Operator, None),
        route(
            "POST",
            "/v1/tenants/{tenant}/budget/overrides",
            Operator,
            Json(|| json!({ "amount": 10, "reason": "hostile", "expiresIn": "1h" })),
        ),
        route("POST", "/v1/tenants/{tenant}/budget/overrides/{id}/approve", Operator, None),
        // audit.rs
        route(
            "POST",
            "/v1/audit/events",
            FlagsKey,
            Json(|| {
                json!({ "id": "hostile-1", "tenant": "acme", "timestamp": chrono::Utc::now().to_rfc3339(),
                        "actor": "u-1", "type": "doc.read", "resource": "doc/1", "outcome": "success",
                        "ip": "127.0.0.1", "metadata": { "k": "v" } })
            }),
        ),
        Route {
            query: &["from", "to", "tenant", "actor", "action", "outcome", "resourcePrefix", "after", "limit"],
            ..route("GET", "/v1/audit/events", Operator, None)
        },
        Route {
            query: &["from", "to", "tenant", "actor", "action", "outcome", "resourcePrefix"],
            ..route("GET", "/v1/audit/export", Operator, None)
        },
        // apps.rs
        route("GET", "/v1/apps", Operator, None),
        route(
            "POST",
            "/v1/apps",
            Operator,
            Json(
                || json!({ "name": "hostile-new", "displayName": "New", "owner": "ops@corp.example", "scopes": ["flags:read"], "status": "disabled" }),
            ),
        ),
        route("GET", "/v1/apps/{app}", Operator, None),
        route(
            "PATCH",
            "/v1/apps/{app}",
            Operator,
            Json(
                || json!({ "displayName": "Probe", "owner": "ops@corp.example", "scopes": ["flags:read"], "status": "active" }),
            ),
        ),
        route("GET", "/v1/apps/{app}/keys", Operator, None),
        route(
            "POST",
            "/v1/apps/{app}/keys",
            Operator,
            Json(|| json!({ "name": "probe", "scopes": ["flags:read"], "expiresIn": "1h", "expiresAt": null })),
        ),
        route("GET", "/v1/apps/{app}/keys/{key}", Operator, None),
        route("DELETE", "/v1/apps/{app}/keys/{key}", Operator, None),
        route("POST", "/v1/apps/{app}/keys/{key}/rotate", Operator, Json(|| json!({ "gracePeriod": "1h" }))),
    ]
}

/// Issue 11.11: the suite's table lists every route the routers declare, so a new route cannot
/// escape the hostile input. The routes are the OpenAPI document's, which in turn must list every
/// route the routers declare (issue 10.7, `openapi::the_openapi_document_describes_every_route_…`).
#[test]
fn the_hostile_suite_lists_every_route_the_routers_declare() {
    use crate::openapi::shape;
    let listed: std::collections::BTreeSet<String> = routes().iter().map(|r| shape(r.method, r.path)).collect();
    let declared = crate::openapi::documented_routes();
    assert!(declared.len() > 40, "the routers were read: {declared:?}");
    let missing: Vec<&String> = declared.difference(&listed).collect();
    assert!(missing.is_empty(), "routes missing from the hostile suite's table: {missing:?}");
}

/// Path parameter values, as sent on the wire (percent-encoded where a URL must be).
fn hostile_segments() -> Vec<String> {
    vec![
        "a%00b".into(),
        "%00".into(),
        "%ff".into(),
        "a%ff%fe".into(),
        "a".repeat(10 * 1024),
        "%e2%80%ae".into(),
        "a%0d%0ab".into(),
        "%2e%2e".into(),
    ]
}

/// JSON field values: wrong types, NUL bytes, 10 KB, numbers and durations at the edges.
fn hostile_values() -> Vec<Value> {
    vec![
        Value::Null,
        json!(true),
        json!(1),
        json!([]),
        json!({}),
        json!("a\u{0}b"),
        json!("\u{0}"),
        json!("x".repeat(10 * 1024)),
        json!(i64::MAX),
        json!(u64::MAX),
        json!(-1),
        json!(1e308),
        json!(-1e308),
        json!("99999999999d"),
        json!("9999999999999999999999d"),
        json!("-1s"),
        json!("+275760-09-13T00:00:00Z"),
        json!("2000-01-01T00:00:00Z"),
        json!(["a\u{0}b"]),
        json!(["x".repeat(10 * 1024)]),
        json!({ "tenant": "a\u{0}b" }),
        json!({ "tenant": "x".repeat(10 * 1024) }),
    ]
}

/// Whole bodies that are not what any route reads, and one over the limit.
fn hostile_bodies() -> Vec<Vec<u8>> {
    let mut over = br#"{"x":""#.to_vec();
    over.resize(BODY_LIMIT + 1 - 2, b'x');
    over.extend_from_slice(br#""}"#);
    vec![
        b"".to_vec(),
        b"{".to_vec(),
        b"[]".to_vec(),
        b"null".to_vec(),
        b"\"\\u0000\"".to_vec(),
        b"\xff\xfe{}".to_vec(),
        b"{\"a\":\"\\ud800\"}".to_vec(),
        "[".repeat(100_000).into_bytes(),
        over,
    ]
}

/// Form field values, as sent (already form-encoded).
fn hostile_form_values() -> Vec<String> {
    vec!["%00".into(), "a%00b".into(), "%ff".into(), "x".repeat(10 * 1024), "a&token=b".into()]
}

struct Credentials {
    flags_key: String,
    introspect_key: String,
    session: String,
    spare_session: String,
    victim_key: String,
}

fn authorization(caller: Caller, credentials: &Credentials) -> Vec<(&'static str, String)> {
    let token = match caller {
        Caller::Anyone => return vec![],
        Caller::Operator => OPERATOR,
        Caller::FlagsKey => &credentials.flags_key,
        Caller::IntrospectKey => &credentials.introspect_key,
        Caller::Session => &credentials.session,
        Caller::SpareSession => &credentials.spare_session,
    };
    vec![("authorization", format!("Bearer {token}"))]
}

/// `path` with every parameter at a valid value, except `spoiled` at `value`.
fn fill(path: &str, credentials: &Credentials, spoiled: Option<(&str, &str)>) -> String {
    let mut out = path.to_owned();
    for (name, valid) in [
        ("tenant", "acme"),
        ("app", "hostile-probe"),
        ("key", credentials.victim_key.as_str()),
        ("email", "dan@acme.example"),
        ("id", "0190a0d4-0000-7000-8000-000000000000"),
        ("flag", "ai_module_enabled"),
    ] {
        let value = match spoiled {
            Some((n, v)) if n == name => v,
            _ => valid,
        };
        out = out.replace(&format!("{{{name}}}"), value);
    }
    out
}

fn parameters(path: &str) -> Vec<&str> {
    path.split('/').filter_map(|s| s.strip_prefix('{')?.strip_suffix('}')).collect()
}

async fn started(db: &TestDb, repo: &Repo) -> ServeProcess {
    let env = [
        ("GATEHOUSE_ENCRYPTION_KEY", ENCRYPTION_KEY),
        // The suite sends hundreds of requests from one address to the sign-in routes and spoils
        // many passwords: neither the per-IP limit nor the lockout should hide a route's answer.
        ("GATEHOUSE_AUTH_IP_LIMIT", "1000000"),
        ("GATEHOUSE_LOCKOUT_THRESHOLD", "1000000"),
    ];
    let server = ServeProcess::start_with(repo.path(), &db.url, "60s", &env);
    within(Duration::from_secs(30), "replica ready", || async {
        request("GET", format!("{}/readyz", server.base), vec![], vec![]).await.status == 200
    })
    .await;
    server
}

async fn sign_in(server: &ServeProcess, email: &str) -> Value {
    let response =
        call(server, "POST", "/v1/auth/login", None, Some(json!({ "email": email, "password": PASSWORD }))).await;
    assert_eq!(response.status, 200, "sign-in of {email}: {}", response.text);
    response.body
}

async fn issue_key(server: &ServeProcess, app: &str) -> Value {
    let response = call(server, "POST", &format!("/v1/apps/{app}/keys"), Some(OPERATOR), Some(json!({}))).await;
    assert_eq!(response.status, 201, "a key for {app}: {}", response.text);
    response.body
}

/// One credential of each kind: operator token, API keys, sessions.
async fn credentials(server: &ServeProcess, db: &TestDb) -> Credentials {
    let probe = json!({
        "name": "hostile-probe", "displayName": "Probe", "owner": "ops@corp.example",
        "scopes": ["flags:read", "auth:introspect", "authz:evaluate"]
    });
    let created = call(server, "POST", "/v1/apps", Some(OPERATOR), Some(probe)).await;
    assert_eq!(created.status, 201, "{}", created.text);
    activate(db, &["carol@acme.example"]).await;
    let secret = |key: &Value| key["secret"].as_str().expect("secret").to_owned();
    let token = |tokens: &Value| tokens["access_token"].as_str().expect("access token").to_owned();
    Credentials {
        flags_key: secret(&issue_key(server, "billing-app").await),
        introspect_key: secret(&issue_key(server, "hostile-probe").await),
        victim_key: issue_key(server, "hostile-probe").await["id"].as_str().expect("id").to_owned(),
        session: token(&sign_in(server, "carol@acme.example").await),
        spare_session: token(&sign_in(server, "carol@acme.example").await),
    }
}

/// One hostile request of the suite.
struct Case {
    what: String,
    method: &'static str,
    target: Vec<u8>,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    errors: Errors,
    /// The request carries a credential that must stay valid through the suite: a 401 would mean
    /// the case never reached the code it probes.
    authenticated: bool,
}

fn cases(credentials: &Credentials) -> Vec<Case> {
    let mut cases = Vec::new();
    for route in routes() {
        let auth = authorization(route.caller, credentials);
        let errors = errors_of(route.path);
        // The spare session is ended by the first logout; the others keep working throughout.
        let authenticated = !matches!(route.caller, Caller::Anyone | Caller::SpareSession);
        let (content_type, valid_body) = match route.body {
            Body::None | Body::Bytes => ("application/json", Vec::new()),
            Body::Json(base) => ("application/json", serde_json::to_vec(&base()).expect("json")),
            Body::Form(fields) => {
                let form = fields.iter().map(|f| format!("{f}=x")).collect::<Vec<_>>().join("&");
                ("application/x-www-form-urlencoded", form.into_bytes())
            }
        };
        let mut headers = auth.clone();
        headers.push(("content-type", content_type.to_owned()));
        let mut add = |what: String, target: String, body: Vec<u8>| {
            cases.push(Case {
                what: format!("{} {}: {what}", route.method, route.path),
                method: route.method,
                target: target.into_bytes(),
                headers: headers.clone(),
                body,
                errors,
                authenticated,
            });
        };
        add("a well-formed request".into(), fill(route.path, credentials, None), valid_body.clone());
        for parameter in parameters(route.path) {
            for value in hostile_segments() {
                let shown: String = value.chars().take(24).collect();
                add(
                    format!("{{{parameter}}} = {shown}"),
                    fill(route.path, credentials, Some((parameter, &value))),
                    valid_body.clone(),
                );
            }
        }
        for parameter in route.query {
            for value in hostile_segments()
                .into_iter()
                .chain(["9223372036854775807", "-1", "1e308", "99999999999999999999", "x&{p}=y"].map(String::from))
            {
                let value = value.replace("{p}", parameter);
                let shown: String = value.chars().take(24).collect();
                add(
                    format!("?{parameter}={shown}"),
                    format!("{}?{parameter}={value}", fill(route.path, credentials, None)),
                    valid_body.clone(),
                );
            }
        }
        let target = fill(route.path, credentials, None);
        match route.body {
            // A body where none is read is ignored, whatever it is.
            Body::None if route.method != "GET" => {
                for body in hostile_bodies() {
                    add(format!("unread body of {} bytes", body.len()), target.clone(), body);
                }
            }
            Body::None => {}
            Body::Json(base) => {
                let base = base();
                let fields: Vec<String> = base.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
                for field in &fields {
                    for value in hostile_values() {
                        let mut body = base.clone();
                        body[field.as_str()] = value.clone();
                        let shown: String = value.to_string().chars().take(24).collect();
                        add(format!("{field}: {shown}"), target.clone(), serde_json::to_vec(&body).expect("json"));
                    }
                }
                for body in hostile_bodies() {
                    let shown: String = String::from_utf8_lossy(&body).chars().take(24).collect();
                    add(format!("body {shown:?} ({} bytes)", body.len()), target.clone(), body);
                }
            }
            Body::Form(fields) => {
                for field in fields {
                    for value in hostile_form_values() {
                        let body = fields
                            .iter()
                            .map(|f| format!("{f}={}", if f == field { value.as_str() } else { "x" }))
                            .collect::<Vec<_>>()
                            .join("&");
                        let shown: String = value.chars().take(24).collect();
                        add(format!("{field}={shown}"), target.clone(), body.into_bytes());
                    }
                }
                for body in hostile_bodies() {
                    add(format!("body of {} bytes", body.len()), target.clone(), body);
                }
            }
            Body::Bytes => {
                for body in hostile_bodies() {
                    add(format!("body of {} bytes", body.len()), target.clone(), body);
                }
            }
        }
    }
    cases
}

/// Issue 11.6, 11.7, 11.10, 11.11: for every route, hostile path parameters, query strings and
/// bodies answer without a 5xx, every error in the JSON envelope, every response with `nosniff`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_hostile_input_without_a_5xx_and_every_error_in_the_json_envelope() {
    let (db, repo) = (TestDb::new().await, Repo::example());
    let server = started(&db, &repo).await;
    let credentials = credentials(&server, &db).await;
    let cases = cases(&credentials);
    let addr = server.base.trim_start_matches("http://").to_owned();
    let count = cases.len();
    let started = std::time::Instant::now();
    let (failures, statuses) = tokio::task::spawn_blocking(move || {
        let mut failures = Vec::new();
        let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
        for case in cases {
            let raw = send(&addr, case.method, &case.target, &case.headers, &case.body);
            if let Ok(raw) = &raw {
                *statuses.entry(raw.status).or_insert(0) += 1;
            }
            if let Some(problem) = problems_with(&raw, case.errors) {
                failures.push(format!("{}: {problem}", case.what));
            }
            if case.authenticated && raw.as_ref().is_ok_and(|raw| raw.status == 401) {
                failures.push(format!("{}: 401, so the case never reached the code it probes", case.what));
            }
        }
        (failures, statuses)
    })
    .await
    .expect("the suite runs");
    eprintln!("{count} hostile requests in {:?}; answers by status: {statuses:?}", started.elapsed());
    assert!(failures.is_empty(), "{} of {count} hostile requests failed:\n{}", failures.len(), failures.join("\n"));
    let ready = request("GET", format!("{}/readyz", server.base), vec![], vec![]).await;
    assert_eq!(ready.status, 200, "the server still serves after the suite");
}

fn envelope_code(raw: &Raw) -> String {
    let body: Value = serde_json::from_slice(&raw.body).unwrap_or(Value::Null);
    body["error"]["code"].as_str().unwrap_or("").to_owned()
}

fn envelope_message(raw: &Raw) -> String {
    let body: Value = serde_json::from_slice(&raw.body).unwrap_or(Value::Null);
    body["error"]["message"].as_str().unwrap_or("").to_owned()
}

/// A request of the probe and what it must answer: status, code, and a word the message names.
struct Probe {
    method: &'static str,
    target: String,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    status: u16,
    code: &'static str,
    names: &'static str,
}

fn probe(
    method: &'static str,
    target: &str,
    headers: &[(&'static str, String)],
    body: impl Into<Vec<u8>>,
    (status, code): (u16, &'static str),
    names: &'static str,
) -> Probe {
    Probe { method, target: target.to_owned(), headers: headers.to_vec(), body: body.into(), status, code, names }
}

/// Issue 11.6, 11.7: the probe's reproductions answer 4xx in the JSON envelope, saying what is
/// wrong: durations past 100 years (a panic and an empty reply before), NUL bytes and a 3 KB email
/// (500s before), a body over the limit, invalid UTF-8 in a path, an oversize URI and header.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probes_reproductions_answer_4xx_in_the_json_envelope_saying_what_is_wrong() {
    let (db, repo) = (TestDb::new().await, Repo::example());
    let server = started(&db, &repo).await;
    let addr = server.base.trim_start_matches("http://").to_owned();
    let key = issue_key(&server, "billing-app").await;
    let key_id = key["id"].as_str().expect("id").to_owned();
    let operator = vec![("authorization", format!("Bearer {OPERATOR}")), ("content-type", "application/json".into())];
    let huge_email = format!("{}@acme.example", "a".repeat(3000));
    let json = vec![("content-type", "application/json".to_owned())];
    let bad = (400, "bad_request");
    let probes = [
        probe("POST", "/v1/apps/billing-app/keys", &operator, r#"{"expiresIn":"99999999999d"}"#, bad, "expiresIn"),
        probe(
            "POST",
            &format!("/v1/apps/billing-app/keys/{key_id}/rotate"),
            &operator,
            r#"{"gracePeriod":"99999999999d"}"#,
            bad,
            "gracePeriod",
        ),
        probe(
            "POST",
            "/v1/apps/billing-app/keys",
            &operator,
            r#"{"expiresAt":"+200000-01-01T00:00:00Z"}"#,
            bad,
            "expiresAt",
        ),
        probe("POST", "/v1/auth/login", &json, r#"{"email":"carol\u0000@acme.example","password":"x"}"#, bad, "email"),
        probe(
            "POST",
            "/v1/auth/login",
            &json,
            json!({ "email": huge_email, "password": "x" }).to_string(),
            bad,
            "email",
        ),
        probe("POST", "/v1/auth/password/forgot", &json, r#"{"email":"a\u0000@acme.example"}"#, bad, "email"),
        probe("DELETE", "/v1/auth/lockouts/a%00b@acme.example", &operator, "", bad, "email"),
        probe("GET", "/v1/tenants/ac%00me/users", &operator, "", bad, "tenant"),
        probe("GET", "/v1/sync/tenants/ac%00me", &operator, "", bad, "tenant"),
        probe("GET", "/v1/sync/tenants?after=%00", &operator, "", bad, "after"),
        probe("GET", "/v1/apps/bill%00ing", &operator, "", bad, "app"),
        probe("GET", "/v1/apps/billing-app/keys/a%00b", &operator, "", bad, "key"),
        probe("GET", "/v1/apps/%ff", &operator, "", bad, "UTF-8"),
        probe("POST", "/v1/apps", &operator, "{".repeat(BODY_LIMIT + 1), (413, "payload_too_large"), "body"),
        probe("GET", &format!("/v1/apps/{}", "a".repeat(20 * 1024)), &[], "", (414, "uri_too_long"), "URI"),
        probe(
            "GET",
            "/healthz",
            &[("x-filler", "a".repeat(40 * 1024))],
            "",
            (431, "request_header_fields_too_large"),
            "header",
        ),
    ];
    let mut failures = Vec::new();
    for Probe { method, target, headers, body, status, code, names } in probes {
        let addr = addr.clone();
        let what = format!("{method} {}", target.chars().take(60).collect::<String>());
        let raw = tokio::task::spawn_blocking(move || send(&addr, method, target.as_bytes(), &headers, &body))
            .await
            .expect("request");
        match raw {
            Ok(raw) => {
                let got = (raw.status, envelope_code(&raw), raw.header("content-type").unwrap_or("").to_owned());
                let message = envelope_message(&raw);
                if got.0 != status
                    || got.1 != code
                    || !got.2.starts_with("application/json")
                    || !message.contains(names)
                {
                    failures
                        .push(format!("{what}: expected {status} {code} naming {names:?}, got {got:?} {message:?}"));
                }
                if message.len() > 600 {
                    failures.push(format!("{what}: the message echoes {} bytes", message.len()));
                }
            }
            Err(error) => failures.push(format!("{what}: {error}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let alive = request("GET", format!("{}/healthz", server.base), vec![], vec![]).await;
    assert_eq!(alive.status, 200, "the server survived");
}

/// Past hyper's own limits (a 64 KB request target, 100 headers) and on bytes HTTP does not allow
/// in a request target or header (a raw NUL or 0xff, not percent-encoded), hyper answers before any
/// of our code runs: with the right status and an empty body, which no layer can change. What this
/// pins is that such a request is answered, never dropped, and that the server lives on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_hypers_own_limits_and_on_bytes_http_forbids_hyper_still_answers_414_431_or_400() {
    let (db, repo) = (TestDb::new().await, Repo::example());
    let server = started(&db, &repo).await;
    let addr = server.base.trim_start_matches("http://").to_owned();
    let statuses = tokio::task::spawn_blocking(move || {
        let long = format!("/v1/apps/{}", "a".repeat(70 * 1024));
        let many: Vec<(&str, String)> = (0..120).map(|_| ("x-filler", "a".to_owned())).collect();
        [
            send(&addr, "GET", long.as_bytes(), &[], b""),
            send(&addr, "GET", b"/healthz", &many, b""),
            send(&addr, "GET", b"/v1/apps/a\xffb", &[], b""),
            send(&addr, "GET", b"/v1/apps/a\x00b", &[], b""),
            send(&addr, "GET", b"/healthz", &[("x-filler", "a\u{0}b".to_owned())], b""),
        ]
        .map(|r| r.map(|r| r.status))
    })
    .await
    .expect("requests");
    assert_eq!(statuses, [Ok(414), Ok(431), Ok(400), Ok(400), Ok(400)]);
    let alive = request("GET", format!("{}/healthz", server.base), vec![], vec![]).await;
    assert_eq!(alive.status, 200, "the server survived");
}

/// Issue 11.10: every response that carries a secret says `Cache-Control: no-store`: API key
/// create and rotate, tokens from sign-in, refresh and the second factor, TOTP enrolment and
/// recovery codes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_that_carries_a_secret_says_no_store_and_nosniff() {
    let (db, repo) = (TestDb::new().await, Repo::example());
    let server = started(&db, &repo).await;
    let mut checked: Vec<(&str, HttpResponse)> = Vec::new();

    let created = call(&server, "POST", "/v1/apps/billing-app/keys", Some(OPERATOR), Some(json!({}))).await;
    let key_id = created.body["id"].as_str().expect("key id").to_owned();
    checked.push(("key create", created));
    let rotate = format!("/v1/apps/billing-app/keys/{key_id}/rotate");
    checked.push(("key rotate", call(&server, "POST", &rotate, Some(OPERATOR), Some(json!({}))).await));
    // Undelivered mail carries its invitation and reset links.
    checked.push(("mail outbox", call(&server, "GET", "/v1/mail/outbox", Some(OPERATOR), None).await));

    activate(&db, &["carol@acme.example"]).await;
    let login = call(
        &server,
        "POST",
        "/v1/auth/login",
        None,
        Some(json!({ "email": "carol@acme.example", "password": PASSWORD })),
    )
    .await;
    let refresh_token = login.body["refresh_token"].as_str().expect("refresh token").to_owned();
    checked.push(("sign-in", login));
    let refreshed =
        call(&server, "POST", "/v1/auth/refresh", None, Some(json!({ "refresh_token": refresh_token }))).await;
    checked.push(("refresh", refreshed));

    // An owner enrols TOTP (secret, then recovery codes), then completes a second sign-in with a
    // recovery code.
    activate(&db, &["alice@acme.example"]).await;
    let pending = sign_in(&server, "alice@acme.example").await;
    let pending = pending["access_token"].as_str().expect("access token").to_owned();
    let enrolment = call(&server, "POST", "/v1/auth/mfa/totp/enrol", Some(&pending), None).await;
    let secret = enrolment.body["secret"].as_str().expect("TOTP secret").to_owned();
    checked.push(("TOTP enrolment", enrolment));
    let code = totp_now(&secret);
    let confirmed =
        call(&server, "POST", "/v1/auth/mfa/totp/confirm", Some(&pending), Some(json!({ "code": code }))).await;
    let recovery = confirmed.body["recoveryCodes"][0].as_str().expect("recovery codes").to_owned();
    checked.push(("TOTP confirmation with recovery codes", confirmed));
    let second = sign_in(&server, "alice@acme.example").await;
    let second = second["access_token"].as_str().expect("access token").to_owned();
    let verified =
        call(&server, "POST", "/v1/auth/mfa/verify", Some(&second), Some(json!({ "recovery_code": recovery }))).await;
    checked.push(("second factor", verified));

    for (what, response) in &checked {
        assert!((200..300).contains(&response.status), "{what}: {} {}", response.status, response.text);
        assert_eq!(response.header("cache-control"), Some("no-store"), "{what}");
        assert_eq!(response.header("x-content-type-options"), Some("nosniff"), "{what}");
    }
}

fn totp_now(secret_base32: &str) -> String {
    let secret = data_encoding::BASE32_NOPAD.decode(secret_base32.as_bytes()).expect("base32 secret");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    gatehouse::identity::totp::code(&secret, gatehouse::identity::totp::step_at(now))
}
