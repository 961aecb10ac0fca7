//! Universal login and Gatehouse as an OpenID provider (issue 14; FR-AUTH-001, UC-LOGIN,
//! UC-LOGOUT, IF-LOGIN-UI): Debian's Chromium, driven by npm `playwright-core`, signs in on the
//! real `/login` pages (tests/browser/login.mjs) while npm `axe-core` audits each page; a managed
//! application using the certified relying party npm `openid-client` (tests/browser/rp.mjs) signs a
//! tenant user in through Gatehouse, checks the ID token against the JWKS, calls userinfo,
//! refreshes across a key rotation and logs out. The refusals are checked over plain HTTP.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{
    HttpResponse, OPERATOR, PASSWORD, Repo, Served, TestDb, activate, call, project_dir, request, within,
};
use crate::identity::{login, started, str_of, totp_now};

/// The browser scripts' folder, checked to be installed (scripts/test installs it).
fn browser_dir() -> std::path::PathBuf {
    let dir = project_dir().join("tests/browser");
    assert!(
        dir.join("node_modules/playwright-core/package.json").exists(),
        "tests/browser/node_modules is missing: run scripts/test, or `npm ci --prefix tests/browser`"
    );
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).exists(),
        "{chromium} is missing: run scripts/test (it installs Debian's chromium), or `apt-get install chromium`"
    );
    dir
}

/// Runs a browser script to its end; returns its last JSON line.
pub(crate) fn run_script(script: &str, env: &[(&str, String)]) -> Value {
    let dir = browser_dir();
    let output = Command::new("node")
        .arg(dir.join(script))
        .current_dir(&dir)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap_or_else(|e| panic!("cannot run node {script}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stdout.lines().last().unwrap_or("");
    let result: Value = serde_json::from_str(last)
        .unwrap_or_else(|_| panic!("{script} printed no result (exit {:?}):\n{stdout}\n{stderr}", output.status));
    assert!(output.status.success(), "{script} failed: {result}\n{stderr}");
    result
}

/// A running tests/browser/rp.mjs, answering one command at a time.
struct RelyingParty {
    child: Child,
    stdin: ChildStdin,
    lines: std::sync::mpsc::Receiver<String>,
    stderr: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl RelyingParty {
    fn start(env: &[(&str, String)]) -> (RelyingParty, Value) {
        let dir = browser_dir();
        let mut child = Command::new("node")
            .arg(dir.join("rp.mjs"))
            .current_dir(&dir)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("HARNESS_TIMEOUT_SECONDS", "150")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("node rp.mjs");
        let stdin = child.stdin.take().expect("stdin");
        let (send, lines) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = send.send(line);
            }
        });
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = stderr.clone();
        let pipe = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            BufReader::new(pipe).lines().map_while(Result::ok).for_each(|l| kept.lock().expect("log").push(l))
        });
        let mut rp = RelyingParty { child, stdin, lines, stderr };
        let first = rp.next_line();
        (rp, first)
    }

    fn next_line(&mut self) -> Value {
        match self.lines.recv_timeout(Duration::from_secs(90)) {
            Ok(line) => serde_json::from_str(&line).unwrap_or_else(|_| panic!("rp.mjs printed {line}")),
            Err(_) => panic!("rp.mjs said nothing:\n{}", self.stderr.lock().expect("log").join("\n")),
        }
    }

    fn command(&mut self, command: &str) -> Value {
        writeln!(self.stdin, "{command}").expect("rp.mjs stdin");
        self.next_line()
    }

    fn log(&self) -> String {
        self.stderr.lock().expect("log").join("\n")
    }
}

impl Drop for RelyingParty {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().expect("port").port()
}

/// The example repository with analytics-app's redirect URIs on `port` (a port of this test only).
fn repo_with_client_on(port: u16) -> Repo {
    let repo = Repo::example();
    let file = "applications/analytics-app.yaml";
    repo.edit(file, "http://127.0.0.1:8400/callback", &format!("http://127.0.0.1:{port}/callback"));
    repo.edit(file, "http://127.0.0.1:8400/]", &format!("http://127.0.0.1:{port}/]"));
    repo
}

async fn client_secret(server: &Served, app: &str) -> String {
    let set = call(server, "POST", &format!("/v1/apps/{app}/client-secret"), Some(OPERATOR), None).await;
    assert_eq!(set.status, 201, "{}", set.text);
    str_of(&set.body, "clientSecret").to_owned()
}

/// Enrols TOTP for `email` through the JSON API; returns the base32 secret.
pub(crate) async fn enrol_totp(server: &Served, email: &str) -> String {
    let first = login(server, email, PASSWORD).await;
    assert_eq!(first.status, 200, "{}", first.text);
    let access = str_of(&first.body, "access_token").to_owned();
    let enrolment = call(server, "POST", "/v1/auth/mfa/totp/enrol", Some(&access), None).await;
    let secret = str_of(&enrolment.body, "secret").to_owned();
    let confirm = json!({ "code": totp_now(&secret, 0) });
    let confirmed = call(server, "POST", "/v1/auth/mfa/totp/confirm", Some(&access), Some(confirm)).await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.text);
    secret
}

/// IF-LOGIN-UI, UC-LOGIN, FR-AUTH-005: in a real browser, an owner signs in on `/login` with their
/// password and TOTP after a wrong password is refused in an announced alert; axe-core finds no
/// violation of WCAG 2.1 A or AA on the login, password, code, console, reset, invitation and
/// forgotten-password pages.
#[tokio::test]
async fn an_owner_signs_in_on_the_login_page_with_password_and_totp_and_every_page_passes_axe() {
    let db = TestDb::new().await;
    let repo = Repo::example();
    let server = started(&repo, &db, &[]).await;
    activate(&db, &["alice@acme.example"]).await;
    let secret = enrol_totp(&server, "alice@acme.example").await;
    let extra =
        ["/password/reset?token=gatehouse_lt_x", "/invitations/accept?token=gatehouse_lt_x", "/password/forgot"]
            .map(|path| format!("{}{path}", server.base))
            .join(",");
    let result = run_script(
        "login.mjs",
        &[
            ("BASE", server.base.clone()),
            ("EMAIL", "alice@acme.example".into()),
            ("PASSWORD", PASSWORD.into()),
            ("TOTP_SECRET", secret),
            // The enrolment used this step's code; each step's code is accepted once.
            ("TOTP_STEP", "1".into()),
            ("EXTRA_PAGES", extra),
        ],
    );
    assert_eq!(result["signedIn"], true, "{result}");
    // IF-TENANT-CONSOLE: an owner lands in their tenant's console.
    assert!(str_of(&result, "landedOn").ends_with("/admin/acme/users"), "{result}");
    assert!(str_of(&result, "signedInText").contains("alice@acme.example"), "{result}");
    assert!(str_of(&result, "wrongPasswordMessage").contains("wrong"), "{result}");
    assert_eq!(result["problems"], json!([]), "{result}");
    let audited = result["axe"].as_object().expect("axe results by page");
    for page in ["login", "password", "wrong-password", "code", "account"] {
        assert!(audited.contains_key(page), "axe did not audit the {page} page: {result}");
    }
    assert_eq!(audited.len(), 8, "every page and the three mailed-link pages: {result}");
    for (page, violations) in audited {
        assert_eq!(violations, &json!([]), "axe (WCAG 2.1 A and AA) on {page}");
    }
    // The sign-in went through the identity flows: audited with the second factor.
    let rows = db
        .count(
            "SELECT count(*) FROM audit_log WHERE action = 'auth.mfa.verify' AND outcome = 'success' AND actor = 'alice@acme.example'",
        )
        .await;
    assert_eq!(rows, 1);
}

/// FR-AUTH-001 and the scope's "centralized authentication for all managed applications": a
/// confidential application signs a user in through Gatehouse with openid-client (code + PKCE),
/// validates the ID token against the JWKS, calls userinfo, refreshes; keeps working across a
/// signing-key rotation; and logs out through end_session, which ends its tokens.
#[tokio::test]
async fn an_application_signs_a_user_in_through_gatehouse_and_survives_a_key_rotation() {
    let db = TestDb::new().await;
    let port = free_port();
    let repo = repo_with_client_on(port);
    let server = started(&repo, &db, &[]).await;
    activate(&db, &["dan@acme.example"]).await;
    let secret = client_secret(&server, "analytics-app").await;
    let (mut rp, first) = RelyingParty::start(&[
        ("ISSUER", server.base.clone()),
        ("CLIENT_ID", "analytics-app".into()),
        ("CLIENT_SECRET", secret),
        ("REDIRECT_URI", format!("http://127.0.0.1:{port}/callback")),
        ("POST_LOGOUT_REDIRECT_URI", format!("http://127.0.0.1:{port}/")),
        ("EMAIL", "dan@acme.example".into()),
        ("PASSWORD", PASSWORD.into()),
    ]);
    assert!(first["error"].is_null(), "{first}\n{}", rp.log());
    let claims = &first["claims"];
    assert_eq!(claims["iss"], server.base.as_str());
    assert_eq!(claims["aud"], "analytics-app");
    assert_eq!((claims["email"].as_str(), claims["email_verified"].as_bool()), (Some("dan@acme.example"), Some(true)));
    assert_eq!((claims["tenant"].as_str(), claims["role"].as_str()), (Some("acme"), Some("user")));
    assert_eq!((claims["amr"].clone(), claims["acr"].as_str()), (json!(["pwd"]), Some("aal1")));
    assert!(claims["auth_time"].is_i64() && claims["nonce"].is_string(), "{claims}");
    assert_eq!(first["userinfo"]["tenant"], "acme");
    assert_eq!(first["refreshed"], true, "{first}");
    let first_kid = str_of(&first, "kid").to_owned();
    assert!(first_kid.starts_with("rs256-"), "{first}");

    // A rotation while the client runs: the key that signs now was published before.
    let rotated = call(&server, "POST", "/v1/oidc/keys/rotate", Some(OPERATOR), None).await;
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    let jwks = request("GET", format!("{}/oauth2/jwks", server.base), vec![], vec![]).await;
    let kids: Vec<&str> =
        jwks.body["keys"].as_array().expect("keys").iter().filter_map(|k| k["kid"].as_str()).collect();
    assert!(kids.contains(&first_kid.as_str()), "the retired key stays published while its tokens live: {kids:?}");
    assert_eq!(rp.command("refresh")["refresh"], "ok", "{}", rp.log());
    assert_eq!(rp.command("userinfo")["userinfo"]["email"], "dan@acme.example");

    // RP-initiated logout: back to the registered URI with the state; the tokens end with it.
    let logout = rp.command("logout");
    assert!(str_of(&logout["logout"], "landedOn").starts_with(&format!("http://127.0.0.1:{port}/")), "{logout}");
    assert_eq!(logout["logout"]["stateBack"], true, "{logout}");
    assert_eq!(rp.command("refresh")["refresh"], "refused");
    assert!(rp.command("userinfo")["userinfo"].is_null());
    let audited =
        "SELECT count(*) FROM audit_log WHERE action IN ('oidc.authorize', 'oidc.token') AND outcome = 'success'";
    assert_eq!(db.count(audited).await, 2);
    // ADR 0009: the code's redemption names the user as every user row does, by id, session,
    // tenant and role.
    let identified = "SELECT count(*) FROM audit_log WHERE action = 'oidc.token' AND outcome = 'success'
        AND actor = 'dan@acme.example' AND metadata->'actor'->>'tenant' = 'acme'
        AND metadata->'actor'->>'role' = 'user' AND metadata->'actor'->>'userId' IS NOT NULL
        AND metadata->'actor'->>'sessionId' = metadata->>'sessionId'";
    assert_eq!(db.count(identified).await, 1);
    // The refused refresh is audited as a denial.
    within(Duration::from_secs(10), "the refused refresh audited", || async {
        db.count("SELECT count(*) FROM audit_log WHERE action = 'oidc.token' AND outcome = 'failure'").await >= 1
    })
    .await;
}

/// UC-LOGOUT and revocation (FR-TENANT-002): a public client (PKCE only, EdDSA ID tokens) signs a
/// user in; a role change in Git ends the session, and the client's refresh is refused at once.
#[tokio::test]
async fn a_role_change_in_git_refuses_the_refresh_of_a_public_client() {
    let db = TestDb::new().await;
    let port = free_port();
    let repo = repo_with_client_on(port);
    let file = "applications/analytics-app.yaml";
    repo.edit(file, "clientType: confidential", "clientType: public\n    idTokenSignedResponseAlg: EdDSA");
    let server = started(&repo, &db, &[]).await;
    activate(&db, &["dan@acme.example"]).await;
    let (mut rp, first) = RelyingParty::start(&[
        ("ISSUER", server.base.clone()),
        ("CLIENT_ID", "analytics-app".into()),
        ("REDIRECT_URI", format!("http://127.0.0.1:{port}/callback")),
        ("POST_LOGOUT_REDIRECT_URI", format!("http://127.0.0.1:{port}/")),
        ("EMAIL", "dan@acme.example".into()),
        ("PASSWORD", PASSWORD.into()),
    ]);
    assert!(first["error"].is_null(), "{first}\n{}", rp.log());
    assert!(str_of(&first, "kid").starts_with("eddsa-"), "{first}");
    assert_eq!(first["claims"]["role"], "user");

    repo.edit(
        "tenants/acme.yaml",
        "{ email: dan@acme.example, role: user }",
        "{ email: dan@acme.example, role: admin }",
    );
    let synced = call(&server, "POST", "/v1/sync", Some(OPERATOR), None).await;
    assert!(synced.status < 300, "{}", synced.text);
    within(Duration::from_secs(20), "the role change applied", || async {
        db.count("SELECT count(*) FROM users WHERE email = 'dan@acme.example' AND role = 'admin'").await == 1
    })
    .await;
    let refused = rp.command("refresh");
    assert_eq!(refused["refresh"], "refused", "{refused}");
    assert!(str_of(&refused, "error").contains("invalid_grant"), "{refused}");
}

// --- Without a browser: the refusals ---------------------------------------------------------

/// One request without following redirects, with the cookies of `jar`, which it keeps current.
pub(crate) async fn browse(
    method: &str,
    url: &str,
    jar: &mut Vec<(String, String)>,
    form: Option<&str>,
) -> HttpResponse {
    let (method, url) = (method.to_owned(), url.to_owned());
    let cookies = jar.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ");
    let form = form.map(str::to_owned);
    let (response, set) = tokio::task::spawn_blocking(move || {
        let agent = ureq::AgentBuilder::new().redirects(0).build();
        let mut request = agent.request(&method, &url);
        if !cookies.is_empty() {
            request = request.set("cookie", &cookies);
        }
        let sent = match &form {
            Some(body) => request.set("content-type", "application/x-www-form-urlencoded").send_string(body),
            None => request.call(),
        };
        let response = match sent {
            Ok(r) | Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{method} {url}: {e}"),
        };
        let set: Vec<String> = response.all("set-cookie").into_iter().map(str::to_owned).collect();
        let headers = response
            .headers_names()
            .into_iter()
            .filter_map(|n| Some((n.clone(), response.header(&n)?.to_owned())))
            .collect();
        let status = response.status();
        let text = response.into_string().unwrap_or_default();
        (HttpResponse { status, headers, body: serde_json::from_str(&text).unwrap_or(Value::Null), text }, set)
    })
    .await
    .expect("request");
    for cookie in set {
        let pair = cookie.split(';').next().unwrap_or("");
        if let Some((name, value)) = pair.split_once('=') {
            jar.retain(|(k, _)| k != name);
            if !value.is_empty() {
                jar.push((name.to_owned(), value.to_owned()));
            }
        }
    }
    response
}

pub(crate) fn header<'a>(response: &'a HttpResponse, name: &str) -> Option<&'a str> {
    response.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

pub(crate) fn csrf(jar: &[(String, String)]) -> String {
    jar.iter().find(|(k, _)| k == "gatehouse_csrf").map(|(_, v)| v.clone()).expect("a CSRF cookie")
}

pub(crate) fn encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// Signs in on the pages, without a browser; returns the cookie jar.
async fn page_sign_in(server: &Served, email: &str) -> Vec<(String, String)> {
    let mut jar = Vec::new();
    let shown = browse("GET", &format!("{}/login", server.base), &mut jar, None).await;
    assert_eq!(shown.status, 200);
    let form = format!("csrf={}&step=password&email={}&password={}", csrf(&jar), encode(email), encode(PASSWORD));
    let signed_in = browse("POST", &format!("{}/login", server.base), &mut jar, Some(&form)).await;
    assert_eq!(signed_in.status, 200, "{}", signed_in.text);
    assert!(jar.iter().any(|(k, _)| k == "gatehouse_session"), "{}", signed_in.text);
    jar
}

/// An authorization request of analytics-app, with `extra` parameters.
fn authorize_url(server: &Served, redirect_uri: &str, extra: &str) -> String {
    format!(
        "{}/oauth2/authorize?response_type=code&client_id=analytics-app&scope=openid&state=st4te&nonce=n0nce&redirect_uri={}{extra}",
        server.base,
        encode(redirect_uri)
    )
}

fn query_of(location: &str) -> std::collections::HashMap<String, String> {
    let url = url::Url::parse(location).expect("a redirect URL");
    url.query_pairs().into_owned().collect()
}

/// Issue 14.4 and 14.1: an unregistered redirect URI or client gets a page and no redirect; the
/// client's own errors go back to it with `error`; a code is good once (a replay ends the tokens
/// it gave), for its client, with its PKCE verifier; a client's tokens do nothing on the API or
/// at the JSON refresh; the login form refuses a post without its CSRF token; a disabled user with
/// the right password is told so; `return_to` never leaves the server.
#[tokio::test]
async fn the_provider_refuses_what_it_must_without_redirecting_where_it_must_not() {
    let db = TestDb::new().await;
    let port = free_port();
    let repo = repo_with_client_on(port);
    // Another application that introspects tokens, open to acme too.
    repo.write(
        "applications/other-app.yaml",
        "apiVersion: gatehouse.dev/v1\nkind: Application\nmetadata: { name: other-app }\nspec:\n  displayName: Other\n  owner: other@corp.example\n  scopes: [auth:introspect]\n",
    );
    repo.edit(
        "tenants/acme.yaml",
        "applications: [billing-app, analytics-app]",
        "applications: [billing-app, analytics-app, other-app]",
    );
    let server = started(&repo, &db, &[]).await;
    activate(&db, &["dan@acme.example", "erin@acme.example", "jack@globex.example"]).await;
    let secret = client_secret(&server, "analytics-app").await;
    let redirect = format!("http://127.0.0.1:{port}/callback");

    // Pages: CSP, no-store, no framing.
    let mut jar = Vec::new();
    let login_page = browse("GET", &format!("{}/login", server.base), &mut jar, None).await;
    assert!(header(&login_page, "content-security-policy").is_some_and(|v| v.contains("form-action 'self'")));
    assert_eq!(header(&login_page, "cache-control"), Some("no-store"));
    assert_eq!(header(&login_page, "x-frame-options"), Some("DENY"));
    // A post without the CSRF cookie's token is refused, whatever its password.
    let forged = format!("csrf=forged&step=password&email=dan%40acme.example&password={}", encode(PASSWORD));
    let refused = browse("POST", &format!("{}/login", server.base), &mut jar, Some(&forged)).await;
    assert_eq!(refused.status, 400);
    assert!(!jar.iter().any(|(k, _)| k == "gatehouse_session"));
    // Nor does a token planted in the cookie by someone else, even repeated by the form: only a
    // token Gatehouse minted counts (issue 25.15).
    let mut planted = vec![("gatehouse_csrf".to_owned(), "a".to_owned())];
    let body = format!("csrf=a&step=password&email=dan%40acme.example&password={}", encode(PASSWORD));
    let refused = browse("POST", &format!("{}/login", server.base), &mut planted, Some(&body)).await;
    assert_eq!(refused.status, 400, "{}", refused.text);
    assert!(!planted.iter().any(|(k, _)| k == "gatehouse_session"));
    // The right password of a disabled user is told plainly; a wrong one says nothing more.
    db.execute("UPDATE users SET status = 'disabled' WHERE email = 'erin@acme.example'").await;
    let form = |email: &str, password: &str, jar: &[(String, String)]| {
        format!("csrf={}&step=password&email={}&password={}", csrf(jar), encode(email), encode(password))
    };
    let body = form("erin@acme.example", PASSWORD, &jar);
    let disabled = browse("POST", &format!("{}/login", server.base), &mut jar, Some(&body)).await;
    assert_eq!(disabled.status, 403);
    assert!(disabled.text.contains("role=\"alert\"") && disabled.text.contains("disabled"), "{}", disabled.text);
    let body = form("erin@acme.example", "nope nope nope", &jar);
    let wrong = browse("POST", &format!("{}/login", server.base), &mut jar, Some(&body)).await;
    assert_eq!(wrong.status, 401);
    assert!(!wrong.text.contains("disabled"));
    // return_to stays on this server.
    let mut jar = Vec::new();
    browse("GET", &format!("{}/login", server.base), &mut jar, None).await;
    for elsewhere in ["//evil.example/x", "/\t/evil.example"] {
        let away = format!("{}&return_to={}", form("dan@acme.example", PASSWORD, &jar), encode(elsewhere));
        let signed_in = browse("POST", &format!("{}/login", server.base), &mut jar, Some(&away)).await;
        assert!(signed_in.text.contains("url=/\">"), "{elsewhere:?}: {}", signed_in.text);
    }

    // Unknown client, unregistered redirect URI: a page, never a redirect.
    let mut jar = page_sign_in(&server, "dan@acme.example").await;
    let unregistered = browse("GET", &authorize_url(&server, "http://127.0.0.1:1/steal", ""), &mut jar, None).await;
    assert_eq!((unregistered.status, header(&unregistered, "location")), (400, None));
    assert!(unregistered.text.contains("not registered"), "{}", unregistered.text);
    let unknown =
        browse("GET", &authorize_url(&server, &redirect, "").replace("analytics-app", "nobody"), &mut jar, None).await;
    assert_eq!((unknown.status, header(&unknown, "location")), (400, None));
    // The client's own mistakes go back to it, with its state.
    let no_openid =
        browse("GET", &authorize_url(&server, &redirect, "").replace("scope=openid", "scope=email"), &mut jar, None)
            .await;
    let back = query_of(header(&no_openid, "location").expect("a redirect"));
    assert_eq!((back["error"].as_str(), back["state"].as_str()), ("invalid_scope", "st4te"));
    assert_eq!(back["iss"], server.base);
    let plain = browse(
        "GET",
        &authorize_url(&server, &redirect, "&code_challenge=abc&code_challenge_method=plain"),
        &mut jar,
        None,
    )
    .await;
    assert_eq!(query_of(header(&plain, "location").expect("a redirect"))["error"], "invalid_request");
    // prompt=none without a session: login_required, not the login page.
    let mut nobody = Vec::new();
    let silent = browse("GET", &authorize_url(&server, &redirect, "&prompt=none"), &mut nobody, None).await;
    assert_eq!(query_of(header(&silent, "location").expect("a redirect"))["error"], "login_required");
    // Not signed in: to the login page, which comes back here.
    let to_login = browse("GET", &authorize_url(&server, &redirect, ""), &mut nobody, None).await;
    assert!(header(&to_login, "location").is_some_and(|l| l.starts_with("/login?return_to=%2Foauth2%2Fauthorize")));
    // A tenant that does not enable the application: access_denied (globex has only billing-app).
    let mut globex = page_sign_in(&server, "jack@globex.example").await;
    let denied = browse("GET", &authorize_url(&server, &redirect, ""), &mut globex, None).await;
    assert_eq!(query_of(header(&denied, "location").expect("a redirect"))["error"], "access_denied");

    // A code, exchanged once, with its verifier.
    let verifier = "a".repeat(50);
    let challenge = data_encoding::BASE64URL_NOPAD.encode(&sha2_digest(verifier.as_bytes()));
    let pkce = format!("&code_challenge={challenge}&code_challenge_method=S256");
    let authorized = browse("GET", &authorize_url(&server, &redirect, &pkce), &mut jar, None).await;
    assert_eq!(authorized.status, 303, "{}", authorized.text);
    let code = query_of(header(&authorized, "location").expect("a redirect"))["code"].clone();
    let token = |body: String| {
        let (base, secret) = (server.base.clone(), secret.clone());
        async move {
            let basic = data_encoding::BASE64.encode(format!("analytics-app:{secret}").as_bytes());
            request(
                "POST",
                format!("{base}/oauth2/token"),
                vec![
                    ("authorization", format!("Basic {basic}")),
                    ("content-type", "application/x-www-form-urlencoded".into()),
                ],
                body.into_bytes(),
            )
            .await
        }
    };
    let exchange = |code: &str, verifier: &str| {
        format!("grant_type=authorization_code&code={code}&redirect_uri={}&code_verifier={verifier}", encode(&redirect))
    };
    let wrong_verifier = token(exchange(&code, &"b".repeat(50))).await;
    assert_eq!((wrong_verifier.status, wrong_verifier.body["error"].as_str()), (400, Some("invalid_grant")));
    // The failed attempt used the code up: a code is good for one exchange.
    let authorized = browse("GET", &authorize_url(&server, &redirect, &pkce), &mut jar, None).await;
    let code = query_of(header(&authorized, "location").expect("a redirect"))["code"].clone();
    let granted = token(exchange(&code, &verifier)).await;
    assert_eq!(granted.status, 200, "{}", granted.text);
    let access = str_of(&granted.body, "access_token").to_owned();
    let refresh = str_of(&granted.body, "refresh_token").to_owned();
    let userinfo = |access: String| {
        let base = server.base.clone();
        async move {
            request(
                "GET",
                format!("{base}/oauth2/userinfo"),
                vec![("authorization", format!("Bearer {access}"))],
                vec![],
            )
            .await
        }
    };
    assert_eq!(userinfo(access.clone()).await.status, 200);
    // RFC 7662 for these tokens: the client's own key sees it active; another application's key,
    // even one open to the tenant, sees it inactive (a token is for the client it was issued to).
    let introspect = |app: &'static str, token: String| {
        let server = &server;
        async move {
            let key = call(
                server,
                "POST",
                &format!("/v1/apps/{app}/keys"),
                Some(OPERATOR),
                Some(json!({ "scopes": ["auth:introspect"] })),
            )
            .await;
            let key = str_of(&key.body, "secret").to_owned();
            request(
                "POST",
                format!("{}/v1/auth/introspect", server.base),
                vec![
                    ("authorization", format!("Bearer {key}")),
                    ("content-type", "application/x-www-form-urlencoded".into()),
                ],
                format!("token={token}").into_bytes(),
            )
            .await
            .body
        }
    };
    let own = introspect("analytics-app", access.clone()).await;
    assert_eq!((own["active"].as_bool(), own["client_id"].as_str()), (Some(true), Some("analytics-app")), "{own}");
    assert_eq!(introspect("other-app", access.clone()).await["active"], false);
    // A client's tokens are not the user's API credentials, nor refreshable without the client.
    assert_eq!(call(&server, "GET", "/v1/auth/session", Some(&access), None).await.status, 401);
    let json_refresh = call(&server, "POST", "/v1/auth/refresh", None, Some(json!({ "refresh_token": refresh }))).await;
    assert_eq!(json_refresh.status, 401);
    // A wrong secret: invalid_client with a Basic challenge.
    let basic = data_encoding::BASE64.encode(b"analytics-app:gatehouse_cs_wrong");
    let bad_client = request(
        "POST",
        format!("{}/oauth2/token", server.base),
        vec![("authorization", format!("Basic {basic}")), ("content-type", "application/x-www-form-urlencoded".into())],
        format!("grant_type=refresh_token&refresh_token={refresh}").into_bytes(),
    )
    .await;
    assert_eq!((bad_client.status, bad_client.body["error"].as_str()), (401, Some("invalid_client")));
    assert!(header(&bad_client, "www-authenticate").is_some_and(|v| v.starts_with("Basic")));
    // A replayed code is refused and ends the tokens it gave.
    let replay = token(exchange(&code, &verifier)).await;
    assert_eq!((replay.status, replay.body["error"].as_str()), (400, Some("invalid_grant")));
    assert_eq!(userinfo(access).await.status, 401);

    // A sign-out link with a hint Gatehouse did not sign only asks; the browser stays signed in.
    let forged = "eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJhbmFseXRpY3MtYXBwIn0.c2ln";
    let logout = browse("GET", &format!("{}/oauth2/logout?id_token_hint={forged}", server.base), &mut jar, None).await;
    assert_eq!((logout.status, header(&logout, "location")), (200, None));
    assert!(logout.text.contains("Do you want to sign out"), "{}", logout.text);
    let account = browse("GET", &format!("{}/account", server.base), &mut jar, None).await;
    assert!(account.text.contains("id=\"signed-in\""), "{}", account.text);
}

/// A form post to the token endpoint as analytics-app (client_secret_basic).
async fn token_request(server: &Served, secret: &str, body: String) -> HttpResponse {
    let basic = data_encoding::BASE64.encode(format!("analytics-app:{secret}").as_bytes());
    request(
        "POST",
        format!("{}/oauth2/token", server.base),
        vec![("authorization", format!("Basic {basic}")), ("content-type", "application/x-www-form-urlencoded".into())],
        body.into_bytes(),
    )
    .await
}

async fn userinfo_of(server: &Served, access: &str) -> HttpResponse {
    request(
        "GET",
        format!("{}/oauth2/userinfo", server.base),
        vec![("authorization", format!("Bearer {access}"))],
        vec![],
    )
    .await
}

/// The names of the claims of a JWT's payload, sorted.
fn claim_names(jwt: &str) -> Vec<String> {
    let payload = jwt.split('.').nth(1).expect("a JWT");
    let payload = data_encoding::BASE64URL_NOPAD.decode(payload.as_bytes()).expect("base64url");
    let claims: Value = serde_json::from_slice(&payload).expect("JSON");
    let mut names: Vec<String> = claims.as_object().expect("claims").keys().cloned().collect();
    names.sort();
    names
}

/// Issue 25.8, 25.7, 25.12: claims follow the granted scope (`openid` alone releases only `sub`,
/// in the ID token and at userinfo) and an unknown scope is refused; a refresh asking for a wider
/// scope is refused and rotates nothing (the access token still works, the refresh token still
/// refreshes); a refused userinfo call is audited.
#[tokio::test]
async fn claims_follow_the_scope_and_a_refused_refresh_rotates_nothing() {
    let db = TestDb::new().await;
    let port = free_port();
    let server = started(&repo_with_client_on(port), &db, &[]).await;
    activate(&db, &["dan@acme.example"]).await;
    let secret = client_secret(&server, "analytics-app").await;
    let redirect = format!("http://127.0.0.1:{port}/callback");
    let mut jar = page_sign_in(&server, "dan@acme.example").await;

    let unknown = authorize_url(&server, &redirect, "").replace("scope=openid", "scope=openid%20admin");
    let refused = browse("GET", &unknown, &mut jar, None).await;
    let back = query_of(header(&refused, "location").expect("a redirect"));
    assert_eq!(back["error"], "invalid_scope");
    assert!(back["error_description"].contains("`admin`"), "{back:?}");

    let authorized = browse("GET", &authorize_url(&server, &redirect, ""), &mut jar, None).await;
    let code = query_of(header(&authorized, "location").expect("a redirect"))["code"].clone();
    let exchange = format!("grant_type=authorization_code&code={code}&redirect_uri={}", encode(&redirect));
    let granted = token_request(&server, &secret, exchange).await;
    assert_eq!((granted.status, str_of(&granted.body, "scope")), (200, "openid"), "{}", granted.text);
    let names = claim_names(str_of(&granted.body, "id_token"));
    assert!(names.contains(&"sub".to_owned()), "{names:?}");
    for withheld in ["email", "email_verified", "name", "tenant", "role"] {
        assert!(!names.contains(&withheld.to_owned()), "{withheld} without its scope: {names:?}");
    }
    let access = str_of(&granted.body, "access_token").to_owned();
    let refresh = str_of(&granted.body, "refresh_token").to_owned();
    let info = userinfo_of(&server, &access).await;
    assert_eq!(info.status, 200, "{}", info.text);
    assert_eq!(info.body.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()), Some(vec!["sub".to_owned()]));

    // The code is pruned an hour after it expires; its session's scope stays with the session.
    db.execute("DELETE FROM oidc_codes").await;
    assert_eq!(userinfo_of(&server, &access).await.status, 200, "userinfo outlives the code");
    let wider = format!("grant_type=refresh_token&refresh_token={refresh}&scope=openid%20email");
    let wider = token_request(&server, &secret, wider).await;
    assert_eq!((wider.status, wider.body["error"].as_str()), (400, Some("invalid_scope")), "{}", wider.text);
    assert_eq!(userinfo_of(&server, &access).await.status, 200, "the refused refresh rotated nothing");
    let same = token_request(&server, &secret, format!("grant_type=refresh_token&refresh_token={refresh}")).await;
    assert_eq!((same.status, str_of(&same.body, "scope")), (200, "openid"), "{}", same.text);

    assert_eq!(userinfo_of(&server, "gatehouse_at_forged").await.status, 401);
    within(Duration::from_secs(10), "the refused userinfo call audited", || async {
        db.count("SELECT count(*) FROM audit_log WHERE action = 'oidc.userinfo' AND outcome = 'failure'").await >= 1
    })
    .await;
}

fn sha2_digest(bytes: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).to_vec()
}

/// Issue 14.1: an owner without TOTP enrols on the page: the QR code is an inline SVG beside the
/// key as text; a wrong code shows a new key; the right one shows the recovery codes once and signs
/// the browser in, with a second factor on the session (`amr` otp).
#[tokio::test]
async fn an_owner_without_totp_enrols_on_the_page_and_is_signed_in() {
    let db = TestDb::new().await;
    let repo = Repo::example();
    let server = started(&repo, &db, &[]).await;
    activate(&db, &["arthur@acme.example"]).await;
    let mut jar = Vec::new();
    let login = format!("{}/login", server.base);
    browse("GET", &login, &mut jar, None).await;
    let form = format!(
        "csrf={}&step=password&email={}&password={}",
        csrf(&jar),
        encode("arthur@acme.example"),
        encode(PASSWORD)
    );
    let enrol = browse("POST", &login, &mut jar, Some(&form)).await;
    assert_eq!(enrol.status, 200, "{}", enrol.text);
    assert!(enrol.text.contains("<svg role=\"img\" aria-label="), "an inline SVG QR code: {}", enrol.text);
    let key_of = |page: &str| {
        page.split("<code id=\"totp-secret\">")
            .nth(1)
            .and_then(|r| r.split('<').next())
            .expect("the key as text")
            .to_owned()
    };
    let first_key = key_of(&enrol.text);
    let body = format!("csrf={}&step=enrol&code=000000", csrf(&jar));
    let wrong = browse("POST", &login, &mut jar, Some(&body)).await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.text.contains("role=\"alert\""), "{}", wrong.text);
    let key = key_of(&wrong.text);
    assert_ne!(key, first_key, "a key is shown once: a wrong code makes a new one");
    let confirm = format!("csrf={}&step=enrol&code={}", csrf(&jar), totp_now(&key, 0));
    let done = browse("POST", &login, &mut jar, Some(&confirm)).await;
    assert_eq!(done.status, 200, "{}", done.text);
    assert_eq!(done.text.matches("<li><code>").count(), 10, "ten recovery codes: {}", done.text);
    let account = browse("GET", &format!("{}/account", server.base), &mut jar, None).await;
    assert!(account.text.contains("arthur@acme.example"), "{}", account.text);
    let otp = "SELECT count(*) FROM sessions s JOIN users u ON u.id = s.user_id
                WHERE u.email = 'arthur@acme.example' AND s.revoked_at IS NULL AND 'otp' = ANY (s.amr)";
    assert_eq!(db.count(otp).await, 1);
}
