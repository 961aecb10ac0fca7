//! Platform operators and auditors signed in through an external identity provider (issue 10.5,
//! FR-005, SC-002, FR-LOG-003 and the spec's note that operator identity is delegated to an IdP):
//! the real `gatehouse serve` trusts a real, certified OpenID Provider, npm `oidc-provider`, run on
//! loopback by tests/idp/idp.mjs. Every token here is issued by that provider after a sign-in
//! through its own pages (authorization code flow with PKCE); none is signed by the test.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{Repo, ServeProcess, Served, TestDb, call, project_dir, request, within};

/// A running tests/idp/idp.mjs: one issuer, stopped when dropped.
pub(crate) struct Idp {
    child: Child,
    /// Closing it tells the provider to exit, should the kill below be missed.
    _stdin: ChildStdin,
    pub(crate) issuer: String,
    /// What the provider wrote on stderr, shown when it fails.
    log: Arc<Mutex<Vec<String>>>,
}

impl Idp {
    /// Starts the provider; fails the test, saying what to do, when Node or its modules are missing.
    pub(crate) fn start() -> Idp {
        Idp::start_with(&[])
    }

    /// Starts the provider with environment `env` (such as `IDP_REDIRECT_URIS`).
    pub(crate) fn start_with(env: &[(&str, &str)]) -> Idp {
        let dir = project_dir().join("tests/idp");
        assert!(
            dir.join("node_modules/oidc-provider/package.json").exists(),
            "tests/idp/node_modules is missing: the identity-provider tests need the npm package oidc-provider. \
             Run scripts/test, which installs it, or `npm ci --prefix tests/idp`."
        );
        let mut child = Command::new("node")
            .arg(dir.join("idp.mjs"))
            .current_dir(&dir)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run `node` (Node.js 20 or later runs tests/idp/idp.mjs): {e}"));
        let stdin = child.stdin.take().expect("stdin");
        let log = Arc::new(Mutex::new(Vec::new()));
        let kept = log.clone();
        let stderr = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            BufReader::new(stderr).lines().map_while(Result::ok).for_each(|l| kept.lock().expect("log").push(l))
        });
        let mut issuer = String::new();
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        stdout.read_line(&mut issuer).expect("idp stdout");
        // Keep reading: a provider that writes to a closed pipe dies of EPIPE.
        let kept = log.clone();
        std::thread::spawn(move || {
            stdout.lines().map_while(Result::ok).for_each(|l| kept.lock().expect("log").push(l))
        });
        if !issuer.starts_with("http://127.0.0.1:") {
            let _ = child.wait();
            panic!("tests/idp/idp.mjs did not start: {}", log.lock().expect("log").join("\n"));
        }
        Idp { child, _stdin: stdin, issuer: issuer.trim().to_owned(), log }
    }

    /// An ID token for `account`, from a sign-in at the provider.
    pub(crate) async fn token(&self, account: &str, claims: Value) -> String {
        self.token_with(account, claims, "gatehouse", 600).await
    }

    async fn token_with(&self, account: &str, claims: Value, client: &str, ttl: u64) -> String {
        let body = json!({ "account": account, "claims": claims, "client": client, "ttl": ttl });
        let response = self.control("token", body).await;
        response["id_token"].as_str().unwrap_or_else(|| panic!("no id_token: {response}")).to_owned()
    }

    /// Rotates the provider's signing key; returns the new key's id.
    async fn rotate(&self) -> String {
        self.control("rotate", json!({})).await["kid"].as_str().expect("kid").to_owned()
    }

    /// Registers the claims of `account`, which signs in through the provider's pages in a browser.
    pub(crate) async fn account(&self, account: &str, claims: Value) {
        self.control("account", json!({ "account": account, "claims": claims })).await;
    }

    async fn control(&self, what: &str, body: Value) -> Value {
        let url = format!("{}/_harness/{what}", self.issuer);
        let answer = tokio::task::spawn_blocking(move || match ureq::post(&url).send_json(body) {
            Ok(response) => response.into_json::<Value>().map_err(|e| e.to_string()),
            Err(ureq::Error::Status(code, response)) => {
                Err(format!("{code}: {}", response.into_string().unwrap_or_default()))
            }
            Err(error) => Err(error.to_string()),
        })
        .await
        .expect("idp request");
        answer.unwrap_or_else(|e| panic!("idp {what}: {e}\nidp log:\n{}", self.log.lock().expect("log").join("\n")))
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The claims of a person in the `platform-ops` group, as the provider will assert them.
pub(crate) fn person(email: &str, groups: Value) -> Value {
    json!({ "email": email, "email_verified": true, "name": "Ada Lovelace", "groups": groups, "hd": "ops.example" })
}

/// `serve` trusting `idp`: username from `email`, `hd` required, two group bindings, a one-second
/// clock leeway so that an expired token is refused within seconds.
async fn serve_trusting(issuer: &str, repo: &Repo, db: &TestDb) -> ServeProcess {
    serve_trusting_with(issuer, repo, db, &[]).await
}

async fn serve_trusting_with(issuer: &str, repo: &Repo, db: &TestDb, extra: &[(&str, &str)]) -> ServeProcess {
    let mut env = vec![
        ("GATEHOUSE_OIDC_ISSUER_URL", issuer),
        ("GATEHOUSE_OIDC_AUDIENCE", "gatehouse"),
        ("GATEHOUSE_OIDC_USERNAME_CLAIM", "email"),
        ("GATEHOUSE_OIDC_REQUIRED_CLAIMS", "hd=ops.example"),
        ("GATEHOUSE_OIDC_GROUP_BINDINGS", "platform-ops=operator,platform-audit=auditor"),
        ("GATEHOUSE_OIDC_CLOCK_LEEWAY", "1s"),
    ];
    env.extend_from_slice(extra);
    let server = ServeProcess::start_with(repo.path(), &db.url, "60s", &env);
    within(Duration::from_secs(30), "server ready", || async {
        request("GET", format!("{}/readyz", server.base), vec![], vec![]).await.status == 200
    })
    .await;
    server
}

/// The real CLI with the bearer in GATEHOUSE_TOKEN only (the bootstrap token's variable removed).
pub(crate) fn cli(server: &Served, token: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(args)
        .args(["--format", "json"])
        .env_remove("GATEHOUSE_OPERATOR_TOKEN")
        .env("GATEHOUSE_SERVER", &server.base)
        .env("GATEHOUSE_TOKEN", token)
        .env("NO_COLOR", "1")
        .output()
        .expect("gatehouse runs")
}

pub(crate) fn json_out(output: &Output, what: &str) -> Value {
    assert!(output.status.success(), "{what}: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{what}: not JSON ({e})"))
}

/// Asserts a 401 whose message is `expected` (or starts with it), and that the refusal is audited.
async fn refused(server: &Served, db: &TestDb, token: &str, expected: &str) {
    refused_with(server, db, token, (401, "unauthorized"), expected).await;
}

/// As `refused`, with the status and code expected: 403 `forbidden` for a valid token whose groups
/// are bound to no role. The audit row's reason is one of a fixed few (refusals are aggregated by
/// reason); the message is its `detail`.
async fn refused_with(server: &Served, db: &TestDb, token: &str, (status, code): (u16, &str), expected: &str) {
    let response = call(server, "GET", "/v1/apps", Some(token), None).await;
    assert_eq!(response.status, status, "{}", response.text);
    assert_eq!(response.body["error"]["code"], code, "{}", response.text);
    let message = response.body["error"]["message"].as_str().expect("message").to_owned();
    assert!(message.starts_with(expected), "expected «{expected}…», got «{message}»");
    assert!(!response.text.contains(token), "the refusal echoes the token");
    let query = "SELECT count(*) FROM audit_log WHERE action = 'api.denied' AND outcome = 'failure' \
                 AND resource = '/v1/apps' AND metadata->>'reason' LIKE 'identity-provider %' AND left(metadata->>'detail', 100) = left($1, 100)";
    within(Duration::from_secs(3), &format!("refusal audited: {message}"), || async {
        sqlx::query_scalar::<_, i64>(query).bind(&message).fetch_one(&db.pool).await.expect("audit query") == 1
    })
    .await;
}

/// Issue 10 acceptance: an operator signed in through oidc-provider lists apps and issues a key
/// from the CLI (GATEHOUSE_TOKEN), with no operator token in the CLI's environment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_signed_in_at_the_idp_lists_apps_and_issues_a_key_from_the_cli() {
    let (idp, db, repo) = (Idp::start(), TestDb::new().await, Repo::example());
    let server = serve_trusting(&idp.issuer, &repo, &db).await;
    let token = idp.token("ada", person("ada@ops.example", json!(["staff", "platform-ops"]))).await;

    let apps = json_out(&cli(&server, &token, &["apps", "list"]), "apps list");
    let names: Vec<_> =
        apps["applications"].as_array().expect("applications").iter().map(|a| a["name"].clone()).collect();
    assert!(names.contains(&json!("billing-app")), "{apps}");
    let key =
        json_out(&cli(&server, &token, &["keys", "create", "--app", "billing-app", "--name", "idp"]), "keys create");
    assert!(key["secret"].as_str().expect("secret").starts_with("gatehouse_"), "{key}");

    // Without a token the same command is refused, so the JWT above is what let it through.
    let refused = cli(&server, "", &["apps", "list"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("401"), "{}", String::from_utf8_lossy(&refused.stderr));
}

/// FR-LOG-003 with operator identity: the audit row of a key an IdP operator created names that
/// operator (the username claim), not the shared word "operator".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_row_of_a_key_issued_by_an_idp_operator_names_the_operator() {
    let (idp, db, repo) = (Idp::start(), TestDb::new().await, Repo::example());
    let server = serve_trusting(&idp.issuer, &repo, &db).await;
    let token = idp.token("ada", person("ada@ops.example", json!(["platform-ops"]))).await;
    json_out(&cli(&server, &token, &["keys", "create", "--app", "billing-app"]), "keys create");
    let (actor, actor_type, subject, issuer): (String, String, String, String) = sqlx::query_as(
        "SELECT actor, actor_type, metadata->'actor'->>'subject', metadata->'actor'->>'issuer' FROM audit_log
          WHERE action = 'api_key.create'",
    )
    .fetch_one(&db.pool)
    .await
    .expect("the key creation is audited");
    assert_eq!((actor.as_str(), actor_type.as_str(), subject.as_str()), ("ada@ops.example", "operator", "ada"));
    assert_eq!(issuer, idp.issuer);
}

/// Issue 10 acceptance: after the IdP rotates its signing key, the next call with a token signed by
/// the new key works without restarting Gatehouse: the unknown `kid` makes it fetch the keys at
/// once, one fetch for all the requests that wait for it. Tokens signed by the previous key, still
/// published, keep working. Fetches are at most one per window (`--oidc-jwks-min-interval`, 10 s by
/// default, 2 s here), so a second rotation within it is honoured only once the window has passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_rotation_at_the_idp_needs_no_restart() {
    let (idp, db, repo) = (Idp::start(), TestDb::new().await, Repo::example());
    let server = serve_trusting_with(&idp.issuer, &repo, &db, &[("GATEHOUSE_OIDC_JWKS_MIN_INTERVAL", "2s")]).await;
    let ada = || person("ada@ops.example", json!(["platform-ops"]));
    let fetches = || {
        let log = server.log.lock().expect("log");
        log.iter().filter(|l| l.contains("fetched the identity provider's signing keys")).count()
    };
    let first = idp.token("ada", ada()).await;
    assert_eq!(call(&server, "GET", "/v1/apps", Some(&first), None).await.status, 200);
    // The server's log is read by a thread of its own: a line may land a moment after the answer.
    let logged = |n: usize, what: &'static str| {
        let fetches = &fetches;
        async move { within(Duration::from_secs(3), what, || async { fetches() == n }).await }
    };
    logged(1, "the keys are fetched once at start").await;
    // Past the window of the fetch at start.
    tokio::time::sleep(Duration::from_millis(2_500)).await;

    let kid = idp.rotate().await;
    let second = idp.token("ada", ada()).await;
    assert_eq!(header(&second)["kid"], kid.as_str(), "the provider signs with the new key");
    // Sixteen requests at once with the new kid: they wait for one and the same fetch.
    let calls = (0..16).map(|_| call(&server, "GET", "/v1/apps", Some(&second), None));
    for response in futures_util::future::join_all(calls).await {
        assert_eq!(response.status, 200, "{}", response.text);
    }
    logged(2, "the new kid made Gatehouse fetch the keys again").await;
    assert_eq!(fetches(), 2, "once");
    assert_eq!(call(&server, "GET", "/v1/apps", Some(&first), None).await.status, 200, "the previous key");

    let kid = idp.rotate().await;
    let third = idp.token("ada", ada()).await;
    let early = call(&server, "GET", "/v1/apps", Some(&third), None).await;
    assert_eq!(early.status, 401, "{}", early.text);
    assert_eq!(
        early.body["error"]["message"],
        format!("the token's signing key `{kid}` is not among the identity provider's keys")
    );
    assert_eq!(fetches(), 2, "no second fetch within the window");
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let response = call(&server, "GET", "/v1/apps", Some(&third), None).await;
    assert_eq!(response.status, 200, "{}", response.text);
    logged(3, "the window passed: the keys fetched again").await;
}

/// SC-002: expired, wrong audience, wrong issuer, unbound groups, a missing required claim: each
/// refused 401 with a message that says what is wrong, and each audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sc002_bad_idp_tokens_are_refused_clearly_and_audited() {
    let (idp, other_idp, db, repo) = (Idp::start(), Idp::start(), TestDb::new().await, Repo::example());
    let server = serve_trusting(&idp.issuer, &repo, &db).await;
    let ops = || person("ada@ops.example", json!(["platform-ops"]));

    let short = idp.token_with("ada", ops(), "gatehouse", 1).await;
    let wrong_audience = idp.token_with("ada", ops(), "other-client", 600).await;
    let wrong_issuer = other_idp.token("ada", ops()).await;
    let unbound = idp.token("bob", person("bob@ops.example", json!(["developers", "on-call"]))).await;
    let mut no_hd = person("carol@ops.example", json!(["platform-ops"]));
    no_hd.as_object_mut().expect("claims").remove("hd");
    let no_hd = idp.token("carol", no_hd).await;
    let mut unverified = person("dave@ops.example", json!(["platform-ops"]));
    unverified["email_verified"] = json!(false);
    let unverified = idp.token("dave", unverified).await;

    refused(&server, &db, &wrong_audience, "the token's audience [other-client] does not include `gatehouse`").await;
    refused(&server, &db, &wrong_issuer, &format!("the token's issuer `{}` is not `{}`", other_idp.issuer, idp.issuer))
        .await;
    let unbound_message = "none of the groups [developers, on-call] is bound to a platform role";
    refused_with(&server, &db, &unbound, (403, "forbidden"), unbound_message).await;
    refused(&server, &db, &no_hd, "the token has no `hd` claim, which must be `ops.example`").await;
    refused(&server, &db, &unverified, "the token's email `dave@ops.example` is not verified").await;

    // The short-lived token works until it expires (plus the one-second leeway), then is refused.
    assert_eq!(call(&server, "GET", "/v1/apps", Some(&short), None).await.status, 200);
    let exp = claims(&short)["exp"].as_i64().expect("exp");
    let wait = (exp + 2 - chrono::Utc::now().timestamp()).max(0) as u64;
    tokio::time::sleep(Duration::from_millis(wait * 1000 + 200)).await;
    let expired_at =
        chrono::DateTime::from_timestamp(exp, 0).expect("time").to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    refused(&server, &db, &short, &format!("the token expired at {expired_at}")).await;

    // A foreign issuer's token is refused before any key fetch: only the one at start happened.
    let fetches = server.log.lock().expect("log").iter().filter(|l| l.contains("signing keys")).count();
    assert_eq!(fetches, 1, "{:?}", server.log.lock().expect("log"));
}

/// Groups as a single string bind like an array; an auditor is refused operator routes with 403,
/// audited under their name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_as_a_string_bind_and_auditors_are_refused_operator_routes() {
    let (idp, db, repo) = (Idp::start(), TestDb::new().await, Repo::example());
    let server = serve_trusting(&idp.issuer, &repo, &db).await;
    let single = idp.token("ada", person("ada@ops.example", json!("platform-ops"))).await;
    assert!(claims(&single)["groups"].is_string(), "the provider sends the groups as one string");
    let response = call(&server, "GET", "/v1/apps", Some(&single), None).await;
    assert_eq!(response.status, 200, "{}", response.text);

    let auditor = idp.token("eve", person("eve@ops.example", json!("platform-audit"))).await;
    let response = call(&server, "GET", "/v1/apps", Some(&auditor), None).await;
    assert_eq!(response.status, 200, "auditors read: {}", response.text);
    let response = call(&server, "POST", "/v1/apps/billing-app/keys", Some(&auditor), Some(json!({}))).await;
    assert_eq!(response.status, 403, "{}", response.text);
    assert_eq!(response.body["error"]["code"], "forbidden");
    assert_eq!(
        response.body["error"]["message"],
        "auditor eve@ops.example may not issue, rotate or revoke the keys of application `billing-app`: requires a platform operator"
    );
    let query = "SELECT count(*) FROM audit_log WHERE action = 'api.denied' AND actor = 'eve@ops.example' \
                 AND actor_type = 'auditor' AND metadata->'actor'->>'subject' = 'eve'";
    within(Duration::from_secs(3), "the auditor's refusal audited", || async { db.count(query).await == 1 }).await;
}

/// Gatehouse starts when the identity provider is down, and says so to the callers it must refuse.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_idp_does_not_stop_gatehouse_and_its_callers_are_told() {
    let (db, repo) = (TestDb::new().await, Repo::example());
    let idp = Idp::start();
    let issuer = idp.issuer.clone();
    let token = idp.token("ada", person("ada@ops.example", json!(["platform-ops"]))).await;
    drop(idp);
    let server = serve_trusting(&issuer, &repo, &db).await;
    // 503: the same token may pass once the provider is back; what failed is in the log and the audit row.
    let response = call(&server, "GET", "/v1/apps", Some(&token), None).await;
    assert_eq!(
        (response.status, response.body["error"]["code"].clone()),
        (503, json!("unavailable")),
        "{}",
        response.text
    );
    assert!(response.header("retry-after").is_some());
    let query = "SELECT count(*) FROM audit_log WHERE action = 'api.denied' AND metadata->>'reason' = 'identity-provider keys unavailable' \
                 AND metadata->>'detail' LIKE 'the identity provider''s signing keys cannot be fetched: GET %'";
    within(Duration::from_secs(3), "the refusal audited", || async { db.count(query).await == 1 }).await;
    // The bootstrap token still works (break-glass).
    assert_eq!(call(&server, "GET", "/v1/apps", Some(crate::helpers::OPERATOR), None).await.status, 200);
}

fn segment(token: &str, index: usize) -> Value {
    use data_encoding::BASE64URL_NOPAD;
    let part = token.split('.').nth(index).expect("segment");
    serde_json::from_slice(&BASE64URL_NOPAD.decode(part.as_bytes()).expect("base64url")).expect("json")
}

fn header(token: &str) -> Value {
    segment(token, 0)
}

fn claims(token: &str) -> Value {
    segment(token, 1)
}
