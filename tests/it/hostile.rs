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
    ENCRYPTION_KEY, HttpResponse, InProcess, OPERATOR, PASSWORD, Repo, Served, TestDb, activate, call, request,
};
use crate::operations::{Body, Errors, Operation, operations};

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

/// Who calls a route in the suite: whoever its security requirements name first among the
/// operator, a key with the scope, a session; anyone when it asks for no credential.
#[derive(Clone, Copy)]
enum Caller {
    Anyone,
    Operator,
    /// billing-app's key (`flags:read`, `usage:write`, `audit:write`; tenant `acme` lists it).
    BillingKey,
    /// The probe application's key, with every other scope the document names.
    ProbeKey,
    /// A tenant admin's session.
    Session,
    /// A session of its own, which the route ends (signing out).
    SpareSession,
}

/// The scopes billing-app holds (example-config-repo/applications/billing-app.yaml).
const BILLING_SCOPES: &[&str] = &["flags:read", "usage:write", "audit:write"];

fn caller_of(operation: &Operation) -> Caller {
    if operation.security.is_none() || operation.is_webhook() {
        Caller::Anyone
    } else if operation.roles("session").is_some() && operation.path.ends_with("/logout") {
        Caller::SpareSession
    } else if operation.roles("session").is_some_and(|roles| roles.iter().any(|r| r == "admin")) {
        // carol, a tenant admin, where admins may: the session path (its tenant check, its
        // role rules) is probed as well as the operator's.
        Caller::Session
    } else if operation.roles("operator").is_some_and(|roles| roles.iter().any(|r| r == "operator")) {
        Caller::Operator
    } else if let Some(scopes) = operation.roles("apiKey") {
        if scopes.iter().all(|s| BILLING_SCOPES.contains(&s.as_str())) { Caller::BillingKey } else { Caller::ProbeKey }
    } else {
        Caller::Session
    }
}

/// Every key scope the document names that billing-app does not hold: the probe's.
fn probe_scopes() -> Vec<String> {
    let mut scopes: Vec<String> = operations()
        .iter()
        .filter_map(|o| o.roles("apiKey").map(<[String]>::to_vec))
        .flatten()
        .filter(|s| !BILLING_SCOPES.contains(&s.as_str()))
        .collect();
    scopes.sort();
    scopes.dedup();
    scopes
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
    billing_key: String,
    probe_key: String,
    session: String,
    spare_session: String,
    victim_key: String,
}

fn authorization(caller: Caller, credentials: &Credentials) -> Vec<(&'static str, String)> {
    let token = match caller {
        Caller::Anyone => return vec![],
        Caller::Operator => OPERATOR,
        Caller::BillingKey => &credentials.billing_key,
        Caller::ProbeKey => &credentials.probe_key,
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
        ("app", "hostile-target"),
        // OFREP names a flag `{key}`; the key routes an API key.
        ("key", if path.starts_with("/ofrep/") { "ai_module_enabled" } else { credentials.victim_key.as_str() }),
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

async fn started(db: &TestDb, repo: &Repo) -> InProcess {
    let env = [
        ("GATEHOUSE_ENCRYPTION_KEY", ENCRYPTION_KEY),
        // The suite sends hundreds of requests from one address to the sign-in routes and spoils
        // many passwords: neither the per-IP limit nor the lockout should hide a route's answer.
        ("GATEHOUSE_AUTH_IP_LIMIT", "1000000"),
        ("GATEHOUSE_LOCKOUT_THRESHOLD", "1000000"),
    ];
    let server = InProcess::start(repo.path(), &db.url, "60s", &env);
    server.ready().await;
    server
}

async fn sign_in(server: &Served, email: &str) -> Value {
    let response =
        call(server, "POST", "/v1/auth/login", None, Some(json!({ "email": email, "password": PASSWORD }))).await;
    assert_eq!(response.status, 200, "sign-in of {email}: {}", response.text);
    response.body
}

async fn issue_key(server: &Served, app: &str) -> Value {
    let response = call(server, "POST", &format!("/v1/apps/{app}/keys"), Some(OPERATOR), Some(json!({}))).await;
    assert_eq!(response.status, 201, "a key for {app}: {}", response.text);
    response.body
}

/// One credential of each kind: operator token, API keys, sessions.
async fn credentials(server: &Served, db: &TestDb) -> Credentials {
    // The probe holds the keys the suite calls with; the routes about an application change
    // another one, so that no spoiled change takes the probe's scopes away.
    let probe = json!({
        "name": "hostile-probe", "displayName": "Probe", "owner": "ops@corp.example", "scopes": probe_scopes()
    });
    let target = json!({ "name": "hostile-target", "displayName": "Target", "owner": "ops@corp.example", "scopes": ["flags:read"] });
    for app in [probe, target] {
        let created = call(server, "POST", "/v1/apps", Some(OPERATOR), Some(app)).await;
        assert_eq!(created.status, 201, "{}", created.text);
    }
    activate(db, &["carol@acme.example"]).await;
    let secret = |key: &Value| key["secret"].as_str().expect("secret").to_owned();
    let token = |tokens: &Value| tokens["access_token"].as_str().expect("access token").to_owned();
    Credentials {
        billing_key: secret(&issue_key(server, "billing-app").await),
        probe_key: secret(&issue_key(server, "hostile-probe").await),
        victim_key: issue_key(server, "hostile-target").await["id"].as_str().expect("id").to_owned(),
        session: token(&sign_in(server, "carol@acme.example").await),
        spare_session: token(&sign_in(server, "carol@acme.example").await),
    }
}

/// One hostile request of the suite.
struct Case {
    what: String,
    method: String,
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
    for route in operations() {
        let caller = caller_of(&route);
        let auth = authorization(caller, credentials);
        let errors = route.errors;
        // The spare session is ended by the first logout; the others keep working throughout.
        let authenticated = !matches!(caller, Caller::Anyone | Caller::SpareSession);
        let (content_type, valid_body) = match &route.body {
            Body::None | Body::Bytes => ("application/json", Vec::new()),
            Body::Json { base, .. } => ("application/json", serde_json::to_vec(base).expect("json")),
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
                method: route.method.clone(),
                target: target.into_bytes(),
                headers: headers.clone(),
                body,
                errors,
                authenticated,
            });
        };
        add("a well-formed request".into(), fill(&route.path, credentials, None), valid_body.clone());
        for parameter in parameters(&route.path) {
            for value in hostile_segments() {
                let shown: String = value.chars().take(24).collect();
                add(
                    format!("{{{parameter}}} = {shown}"),
                    fill(&route.path, credentials, Some((parameter, &value))),
                    valid_body.clone(),
                );
            }
        }
        for parameter in &route.query {
            for value in hostile_segments()
                .into_iter()
                .chain(["9223372036854775807", "-1", "1e308", "99999999999999999999", "x&{p}=y"].map(String::from))
            {
                let value = value.replace("{p}", parameter);
                let shown: String = value.chars().take(24).collect();
                add(
                    format!("?{parameter}={shown}"),
                    format!("{}?{parameter}={value}", fill(&route.path, credentials, None)),
                    valid_body.clone(),
                );
            }
        }
        let target = fill(&route.path, credentials, None);
        match &route.body {
            // A body where none is read is ignored, whatever it is.
            Body::None if route.method != "GET" => {
                for body in hostile_bodies() {
                    add(format!("unread body of {} bytes", body.len()), target.clone(), body);
                }
            }
            Body::None => {}
            Body::Json { base, fields } => {
                for field in fields {
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
            let raw = send(&addr, &case.method, &case.target, &case.headers, &case.body);
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
