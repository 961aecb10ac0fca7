//! The identity runtime end to end: the real binary, real SMTP delivery to an aiosmtpd sink, real
//! HTTP, Git changes applied with the real CLI.

use std::io::BufRead;
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{
    ENCRYPTION_KEY, HttpResponse, InProcess, OPERATOR, PASSWORD, Repo, Served, TestDb, activate, call, gatehouse,
    request, stderr, within,
};

pub(crate) async fn started(repo: &Repo, db: &TestDb, env: &[(&str, &str)]) -> InProcess {
    let mut all = vec![("GATEHOUSE_ENCRYPTION_KEY", ENCRYPTION_KEY)];
    all.extend_from_slice(env);
    let server = InProcess::start(repo.path(), &db.url, "60s", &all);
    server.ready().await;
    server
}

/// A real SMTP server; each message lands as decoded JSON in a temp dir.
pub(crate) struct SmtpSink {
    child: std::process::Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl SmtpSink {
    pub(crate) fn start() -> SmtpSink {
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().expect("port").port();
        let dir = tempfile::tempdir().expect("mail dir");
        let mut child = std::process::Command::new("python3")
            .arg(crate::helpers::project_dir().join("tests/support/smtp_sink.py"))
            .arg(dir.path())
            .arg(port.to_string())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3 runs the SMTP sink (pip install aiosmtpd; scripts/test does)");
        let stdout = child.stdout.take().expect("stdout");
        let line = std::io::BufReader::new(stdout).lines().next().expect("the sink starts").expect("line");
        assert_eq!(line, "ready", "the SMTP sink did not start (is aiosmtpd installed?)");
        SmtpSink { child, dir, port }
    }

    pub(crate) fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    pub(crate) fn mails_to(&self, address: &str) -> Vec<Value> {
        let mut files: Vec<_> = std::fs::read_dir(self.dir.path())
            .expect("mail dir")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        files
            .iter()
            .filter_map(|p| serde_json::from_str::<Value>(&std::fs::read_to_string(p).ok()?).ok())
            .filter(|m| m["to"].as_array().is_some_and(|to| to.iter().any(|t| t == address)))
            .collect()
    }

    /// Waits for a mail to `address` with `subject`.
    pub(crate) async fn mail(&self, address: &str, subject: &str) -> Value {
        let find = || self.mails_to(address).into_iter().find(|m| m["subject"] == subject);
        within(Duration::from_secs(30), &format!("{subject} to {address}"), || std::future::ready(find().is_some()))
            .await;
        find().expect("the mail")
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// The link in a mail's plain text, and the token in it.
pub(crate) fn link_in(mail: &Value) -> (String, String) {
    let text = mail["text"].as_str().expect("a plain-text body");
    let link = text.split_whitespace().find(|w| w.starts_with("http")).expect("a link").to_owned();
    let token = link.split("token=").nth(1).expect("a token in the link").to_owned();
    (link, token)
}

async fn form(server: &Served, path: &str, fields: &[(&str, &str)], key: Option<&str>) -> HttpResponse {
    let body = fields
        .iter()
        .map(|(k, v)| {
            format!("{k}={}", v.replace('%', "%25").replace('+', "%2B").replace(' ', "+").replace('&', "%26"))
        })
        .collect::<Vec<_>>()
        .join("&");
    let mut headers = vec![("content-type", "application/x-www-form-urlencoded".to_owned())];
    if let Some(key) = key {
        headers.push(("authorization", format!("Bearer {key}")));
    }
    request("POST", format!("{}{path}", server.base), headers, body.into_bytes()).await
}

/// Posts `fields` to a page's form as a browser does: it opens the page first (its CSRF cookie)
/// and repeats the token in the form.
async fn page_form(server: &Served, path: &str, fields: &[(&str, &str)]) -> HttpResponse {
    let mut jar = Vec::new();
    let url = format!("{}{path}", server.base);
    crate::login::browse("GET", &url, &mut jar, None).await;
    let mut body = format!("csrf={}", crate::login::csrf(&jar));
    for (key, value) in fields {
        body.push_str(&format!("&{key}={}", crate::login::encode(value)));
    }
    crate::login::browse("POST", &url, &mut jar, Some(&body)).await
}

pub(crate) async fn login(server: &Served, email: &str, password: &str) -> HttpResponse {
    call(server, "POST", "/v1/auth/login", None, Some(json!({ "email": email, "password": password }))).await
}

pub(crate) fn str_of<'a>(value: &'a Value, field: &str) -> &'a str {
    value[field].as_str().unwrap_or_else(|| panic!("no `{field}` in {value}"))
}

/// Signs in a user who has no second factor; returns (access, refresh).
async fn signed_in(server: &Served, email: &str) -> (String, String) {
    let response = login(server, email, PASSWORD).await;
    assert_eq!(response.status, 200, "{email}: {}", response.text);
    (str_of(&response.body, "access_token").to_owned(), str_of(&response.body, "refresh_token").to_owned())
}

pub(crate) fn totp_now(secret_base32: &str, offset: i64) -> String {
    let secret = data_encoding::BASE32_NOPAD.decode(secret_base32.as_bytes()).expect("base32 secret");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    let step = gatehouse::identity::totp::step_at(now).checked_add_signed(offset).expect("step");
    gatehouse::identity::totp::code(&secret, step)
}

pub(crate) async fn session_status(server: &Served, access: &str) -> u16 {
    call(server, "GET", "/v1/auth/session", Some(access), None).await.status
}

/// FR-TENANT-001, FR-001, FR-AUTH-005, SC-001: an owner declared in Git gets an invitation by real
/// SMTP, accepts it through the mailed link, enrols TOTP, signs in, refreshes and signs out; every
/// old token is refused, and no secret reaches the audit log.
#[tokio::test]
async fn owner_goes_from_invitation_to_sign_out_over_real_smtp() {
    let db = TestDb::new().await;
    let repo = Repo::example();
    let sink = SmtpSink::start();
    let smtp = sink.url();
    let server = started(
        &repo,
        &db,
        &[("GATEHOUSE_SMTP_URL", &smtp), ("GATEHOUSE_MAIL_FROM", "Gatehouse <noreply@gatehouse.test>")],
    )
    .await;
    let owner = "alice@acme.example";

    let mail = sink.mail(owner, "You are invited to Acme Corp").await;
    assert_eq!(sink.mails_to(owner).len(), 1, "one invitation");
    assert_eq!(mail["from"], "noreply@gatehouse.test");
    assert!(mail["html"].as_str().is_some_and(|h| h.contains("<a href=")), "an HTML part with the link");
    let (link, token) = link_in(&mail);
    assert!(link.starts_with(&format!("{}/invitations/accept?token=gatehouse_lt_", server.base)), "{link}");
    assert_eq!(
        db.count("SELECT count(*) FROM email_outbox WHERE sent_at IS NOT NULL AND body_sealed IS NOT NULL").await,
        0,
        "a delivered mail's body (with its link) is deleted"
    );

    // The link opens a form; a common password is refused and the link stays usable.
    let page = request("GET", link.clone(), vec![], vec![]).await;
    assert_eq!(page.status, 200);
    assert!(page.text.contains("name=\"password\"") && page.text.contains(&token), "{}", page.text);
    assert_eq!(page.header("referrer-policy"), Some("no-referrer"));
    // A post without the browser's CSRF token changes nothing, and says so.
    let forged = form(&server, "/invitations/accept", &[("token", &token), ("password", PASSWORD)], None).await;
    assert_eq!(forged.status, 400, "{}", forged.text);
    assert!(forged.text.contains("Nothing was changed"), "{}", forged.text);
    let weak = page_form(&server, "/invitations/accept", &[("token", &token), ("password", "password123")]).await;
    assert_eq!(weak.status, 400);
    assert!(weak.text.contains("most common passwords"), "{}", weak.text);
    let accepted = page_form(&server, "/invitations/accept", &[("token", &token), ("password", PASSWORD)]).await;
    assert_eq!(accepted.status, 200, "{}", accepted.text);
    assert!(accepted.text.contains("Your password is set"));
    let again = call(
        &server,
        "POST",
        "/v1/auth/invitations/accept",
        None,
        Some(json!({ "token": token, "password": PASSWORD })),
    )
    .await;
    assert_eq!((again.status, str_of(&again.body["error"], "code")), (400, "used_token"), "a link works once");

    // Owners must enrol TOTP before anything else.
    let first = login(&server, owner, PASSWORD).await;
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(first.body["session"]["pending"], "mfa_enrol");
    let pending_access = str_of(&first.body, "access_token").to_owned();
    let blocked = call(&server, "GET", "/v1/auth/sessions", Some(&pending_access), None).await;
    assert_eq!((blocked.status, str_of(&blocked.body["error"], "code")), (403, "mfa_enrolment_required"));
    let enrolment = call(&server, "POST", "/v1/auth/mfa/totp/enrol", Some(&pending_access), None).await;
    assert_eq!(enrolment.status, 200, "{}", enrolment.text);
    let secret = str_of(&enrolment.body, "secret").to_owned();
    assert!(str_of(&enrolment.body, "otpauthUri").starts_with("otpauth://totp/Gatehouse:alice@acme.example?secret="));
    let wrong =
        call(&server, "POST", "/v1/auth/mfa/totp/confirm", Some(&pending_access), Some(json!({ "code": "000000" })))
            .await;
    assert_eq!(wrong.status, 400);
    let confirmed = call(
        &server,
        "POST",
        "/v1/auth/mfa/totp/confirm",
        Some(&pending_access),
        Some(json!({ "code": totp_now(&secret, 0) })),
    )
    .await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.text);
    let recovery: Vec<String> = confirmed.body["recoveryCodes"]
        .as_array()
        .expect("recovery codes")
        .iter()
        .map(|c| c.as_str().expect("code").to_owned())
        .collect();
    assert_eq!(recovery.len(), 10);
    assert!(confirmed.body["session"]["pending"].is_null());
    let access = str_of(&confirmed.body, "access_token").to_owned();
    let refresh = str_of(&confirmed.body, "refresh_token").to_owned();
    assert_eq!(session_status(&server, &pending_access).await, 401, "completing MFA replaces the tokens");
    let me = call(&server, "GET", "/v1/auth/session", Some(&access), None).await;
    assert_eq!((me.status, str_of(&me.body, "email"), str_of(&me.body, "tenant")), (200, owner, "acme"));

    // Refresh rotates both tokens.
    let refreshed = call(&server, "POST", "/v1/auth/refresh", None, Some(json!({ "refresh_token": refresh }))).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.text);
    let access2 = str_of(&refreshed.body, "access_token").to_owned();
    let refresh2 = str_of(&refreshed.body, "refresh_token").to_owned();
    assert_eq!(session_status(&server, &access).await, 401, "the previous access token ends at refresh");
    assert_eq!(session_status(&server, &access2).await, 200);

    // Sign-out ends the session at once: both tokens are refused.
    assert_eq!(call(&server, "POST", "/v1/auth/logout", Some(&access2), None).await.status, 204);
    assert_eq!(session_status(&server, &access2).await, 401);
    let after = call(&server, "POST", "/v1/auth/refresh", None, Some(json!({ "refresh_token": refresh2 }))).await;
    assert_eq!(after.status, 401);

    // Signing in again asks for the second factor; each code works once; so does a recovery code.
    let second = login(&server, owner, PASSWORD).await;
    assert_eq!(second.body["session"]["pending"], "mfa_verify");
    let pending = str_of(&second.body, "access_token").to_owned();
    let used =
        call(&server, "POST", "/v1/auth/mfa/verify", Some(&pending), Some(json!({ "code": totp_now(&secret, 0) })))
            .await;
    assert_eq!(
        (used.status, str_of(&used.body["error"], "code")),
        (400, "invalid_code"),
        "the enrolment's code is spent"
    );
    let verified =
        call(&server, "POST", "/v1/auth/mfa/verify", Some(&pending), Some(json!({ "code": totp_now(&secret, 1) })))
            .await;
    assert_eq!(verified.status, 200, "{}", verified.text);
    assert_eq!(session_status(&server, str_of(&verified.body, "access_token")).await, 200);
    let third = login(&server, owner, PASSWORD).await;
    let pending = str_of(&third.body, "access_token").to_owned();
    let by_recovery =
        call(&server, "POST", "/v1/auth/mfa/verify", Some(&pending), Some(json!({ "recovery_code": recovery[0] })))
            .await;
    assert_eq!(by_recovery.status, 200, "{}", by_recovery.text);
    let fourth = login(&server, owner, PASSWORD).await;
    let pending = str_of(&fourth.body, "access_token").to_owned();
    let reused =
        call(&server, "POST", "/v1/auth/mfa/verify", Some(&pending), Some(json!({ "recovery_code": recovery[0] })))
            .await;
    assert_eq!(reused.status, 400, "a recovery code works once");

    // FR-AUTH-005, SC-002: the audit log has every step, and no secret.
    for action in
        ["auth.invitation.accept", "auth.login", "auth.mfa.enrol", "auth.refresh", "auth.logout", "auth.mfa.verify"]
    {
        let rows = db
            .count(&format!(
                "SELECT count(*) FROM audit_log WHERE action = '{action}' AND actor = '{owner}' AND outcome = 'success'"
            ))
            .await;
        assert!(rows >= 1, "no successful {action} audited");
    }
    assert!(
        db.count("SELECT count(*) FROM audit_log WHERE action = 'auth.mfa.enrol' AND outcome = 'failure'").await >= 1
    );
    let audit =
        db.text("SELECT coalesce(string_agg(metadata::text || actor || resource, ' '), '') FROM audit_log").await;
    for secret in [PASSWORD, &token, &access, &refresh, &secret, &recovery[1]] {
        assert!(!audit.contains(secret), "a secret is in the audit log");
    }
    let sealed = db
        .count(&format!("SELECT count(*) FROM totp_credentials WHERE position('{secret}'::bytea IN secret_sealed) > 0"))
        .await;
    assert_eq!(sealed, 0, "the TOTP secret is sealed at rest");
}

/// FR-TENANT-002/004/006, FR-OPS-001: a role change, a disable, a removal from Git and a suspended
/// tenant each end the sessions in the transaction that applies them, so no request ever sees the
/// change without the revocation. Two changes arrive through the running server's reconciler, two
/// through the CLI's `apply`; sessions of unaffected users live on.
#[tokio::test]
async fn git_changes_end_sessions_before_the_next_request() {
    let db = TestDb::new().await;
    let repo = Repo::example();
    let mut server = started(&repo, &db, &[]).await;
    let users =
        ["dan@acme.example", "jack@globex.example", "erin@acme.example", "carol@acme.example", "richard@hooli.example"];
    activate(&db, &users).await;
    let mut sessions = Vec::new();
    for user in users {
        sessions.push(signed_in(&server, user).await.0);
    }
    for access in &sessions {
        assert_eq!(session_status(&server, access).await, 200);
    }

    // Through the reconciler of the running server (it watches the repository).
    repo.edit(
        "tenants/acme.yaml",
        "{ email: dan@acme.example, role: user }",
        "{ email: dan@acme.example, role: admin }",
    );
    repo.edit("tenants/globex.yaml", "  plan: pro\n", "  plan: pro\n  status: suspended\n");
    within(Duration::from_secs(30), "the reconciler applies the change", || async {
        db.count("SELECT count(*) FROM users WHERE email = 'dan@acme.example' AND role = 'admin'").await == 1
            && db.count("SELECT count(*) FROM tenants WHERE name = 'globex' AND status = 'suspended'").await == 1
    })
    .await;
    for (user, access) in users.iter().zip(&sessions).take(2) {
        let refused = call(&server, "GET", "/v1/auth/session", Some(access), None).await;
        assert_eq!(refused.status, 401, "{user}'s session outlived the change");
        assert_eq!(str_of(&refused.body["error"], "code"), "unauthorized");
    }

    // Through `gatehouse apply` (the serving replica holds the reconciler lock, so it is stopped
    // for the apply and started again).
    server.terminate();
    repo.edit(
        "tenants/acme.yaml",
        "{ email: erin@acme.example, role: user }",
        "{ email: erin@acme.example, role: user, status: disabled }",
    );
    repo.edit("tenants/acme.yaml", "    - { email: carol@acme.example, name: Carol Chen, role: admin }\n", "");
    let applied = gatehouse(&["apply", &repo.path().display().to_string()], &[("DATABASE_URL", &db.url)]);
    assert!(applied.status.success(), "{}", stderr(&applied));
    let server = started(&repo, &db, &[]).await;
    for (user, access) in users.iter().zip(&sessions).skip(2).take(2) {
        assert_eq!(session_status(&server, access).await, 401, "{user}'s session outlived the change");
    }
    assert_eq!(session_status(&server, &sessions[4]).await, 200, "an unaffected user keeps the session");

    let reasons = db
        .text("SELECT string_agg(u.email || ':' || s.revoked_reason, ',' ORDER BY u.email) FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.revoked_at IS NOT NULL")
        .await;
    assert_eq!(
        reasons,
        "dan@acme.example:role_changed,erin@acme.example:user_disabled,jack@globex.example:tenant_suspended"
    );
    assert_eq!(
        db.count(
            "SELECT count(*) FROM sessions s JOIN users u ON u.id = s.user_id WHERE u.email = 'carol@acme.example'"
        )
        .await,
        0
    );
    // Disabled or suspended users cannot sign in again, and the right password is told why (issue
    // 14.1: the password proved who asks); a role change only ends sessions.
    let disabled = login(&server, "erin@acme.example", PASSWORD).await;
    assert_eq!((disabled.status, disabled.body["error"]["code"].as_str()), (403, Some("account_disabled")));
    let suspended = login(&server, "jack@globex.example", PASSWORD).await;
    assert_eq!((suspended.status, suspended.body["error"]["code"].as_str()), (403, Some("tenant_suspended")));
    assert_eq!(login(&server, "jack@globex.example", "wrong password 1").await.status, 401);
    assert_eq!(login(&server, "dan@acme.example", PASSWORD).await.status, 200);
}

/// FR-010: ten wrong passwords lock the account with growing delays and Retry-After; the right
/// password is refused during the lock; unknown and known emails answer alike; an operator unlocks.
#[tokio::test]
async fn wrong_passwords_lock_the_account_with_growing_delays() {
    let db = TestDb::new().await;
    let repo = Repo::example();
    let lockout = [
        ("GATEHOUSE_LOCKOUT_THRESHOLD", "5"),
        ("GATEHOUSE_LOCKOUT_DELAY", "2s"),
        ("GATEHOUSE_LOCKOUT_MAX_DELAY", "8s"),
    ];
    let server = started(&repo, &db, &lockout).await;
    let known = "dan@acme.example";
    activate(&db, &[known]).await;

    let mut answers = Vec::new();
    for email in [known, "nobody@acme.example"] {
        let mut seen = Vec::new();
        for _ in 0..10 {
            let response = login(&server, email, "not the password").await;
            seen.push((
                response.status,
                response.body["error"]["code"].clone(),
                response.header("retry-after").map(str::to_owned),
            ));
        }
        answers.push(seen);
        if email == known {
            // Asked at once: the first lock lasts two seconds, and the unknown email's sign-ins take time.
            let during = login(&server, known, PASSWORD).await;
            assert_eq!(during.status, 429, "the right password is refused during the lock");
        }
    }
    assert_eq!(answers[0], answers[1], "a known and an unknown email answer alike");
    let statuses: Vec<u16> = answers[0].iter().map(|a| a.0).collect();
    assert_eq!(statuses, [401, 401, 401, 401, 401, 429, 429, 429, 429, 429]);
    assert_eq!(answers[0][5].2.as_deref(), Some("2"), "Retry-After of the first lock");
    assert_eq!(answers[0][0].1, "unauthorized");

    // The next failure after the lock locks for twice as long: 4 s, so more than the first lock's
    // 2 s are left even when the machine is busy (the lock starts before that failure is hashed).
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(login(&server, known, "not the password").await.status, 401);
    let longer = login(&server, known, PASSWORD).await;
    let left: Option<u64> = longer.header("retry-after").and_then(|s| s.parse().ok());
    assert!(
        longer.status == 429 && left.is_some_and(|left| (3..=4).contains(&left)),
        "the delay grows: {} Retry-After {left:?}",
        longer.status
    );

    let unlocked = request(
        "DELETE",
        format!("{}/v1/auth/lockouts/{known}", server.base),
        vec![("authorization", format!("Bearer {OPERATOR}"))],
        vec![],
    )
    .await;
    assert_eq!(unlocked.status, 204, "{}", unlocked.text);
    assert_eq!(login(&server, known, PASSWORD).await.status, 200, "an operator's unlock lets the user in at once");

    let audit = |sql: &'static str| db.count(sql);
    assert_eq!(
        audit("SELECT count(*) FROM audit_log WHERE action = 'auth.lockout' AND actor = 'dan@acme.example'").await,
        2
    );
    assert!(audit("SELECT count(*) FROM audit_log WHERE action = 'auth.login' AND outcome = 'failure' AND metadata->>'reason' = 'locked'").await >= 10);
    assert_eq!(audit("SELECT count(*) FROM audit_log WHERE action = 'auth.login' AND outcome = 'failure' AND metadata->>'reason' = 'unknown email'").await, 5);
    assert_eq!(audit("SELECT count(*) FROM audit_log WHERE action = 'auth.unlock'").await, 1);
}

/// FR-010: per-IP limits on the sign-in routes, counted in Postgres, with Retry-After.
#[tokio::test]
async fn sign_in_routes_are_rate_limited_per_ip() {
    let db = TestDb::new().await;
    let server = started(&Repo::example(), &db, &[("GATEHOUSE_AUTH_IP_LIMIT", "3")]).await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(
            call(&server, "POST", "/v1/auth/password/forgot", None, Some(json!({ "email": "x@y.example" }))).await,
        );
    }
    assert_eq!(statuses.iter().map(|r| r.status).collect::<Vec<_>>(), [202, 202, 202, 429]);
    let retry: u64 = statuses[3].header("retry-after").expect("Retry-After").parse().expect("seconds");
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(login(&server, "x@y.example", "whatever123").await.status, 401, "each route counts on its own");
}

/// FR-AUTH-005: a spent refresh token is accepted again within the grace window (a retry); replayed
/// after it, it ends the whole session family, but not the user's other sessions.
#[tokio::test]
async fn refresh_token_replay_after_grace_revokes_the_family() {
    let db = TestDb::new().await;
    let server = started(&Repo::example(), &db, &[("GATEHOUSE_REFRESH_REUSE_GRACE", "1s")]).await;
    let user = "dan@acme.example";
    activate(&db, &[user]).await;
    let (_, first_refresh) = signed_in(&server, user).await;
    let (other_access, _) = signed_in(&server, user).await;

    let server = &server;
    let refresh = |token: String| async move {
        call(server, "POST", "/v1/auth/refresh", None, Some(json!({ "refresh_token": token }))).await
    };
    let rotated = refresh(first_refresh.clone()).await;
    assert_eq!(rotated.status, 200);
    let retried = refresh(first_refresh.clone()).await;
    assert_eq!(retried.status, 200, "a retry within the grace window is answered");
    let live_access = str_of(&retried.body, "access_token").to_owned();
    let live_refresh = str_of(&retried.body, "refresh_token").to_owned();
    assert_eq!(session_status(server, &live_access).await, 200);

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let replay = refresh(first_refresh).await;
    assert_eq!(replay.status, 401);
    assert_eq!(session_status(server, &live_access).await, 401, "the family's access token is revoked");
    assert_eq!(refresh(live_refresh).await.status, 401, "the family's refresh token is revoked");
    assert_eq!(session_status(server, &other_access).await, 200, "another sign-in of the user is another family");
    assert_eq!(
        db.count("SELECT count(*) FROM audit_log WHERE action = 'auth.refresh.reuse' AND actor = 'dan@acme.example'")
            .await,
        1
    );
    assert_eq!(db.count("SELECT count(*) FROM sessions WHERE revoked_reason = 'refresh_token_reused'").await, 1);
}

/// SC-002, tenant isolation: a session of one tenant reaches nothing of another (refused and
/// audited); admins revoke their own tenant's users; introspection and RFC 7009 revocation by an
/// application see none of the users' own API sessions.
#[tokio::test]
async fn another_tenants_session_reaches_nothing() {
    let db = TestDb::new().await;
    let repo = Repo::example();
    let server = started(&repo, &db, &[]).await;
    activate(&db, &["carol@acme.example", "dan@acme.example", "ivy@globex.example", "jack@globex.example"]).await;
    let (carol, _) = signed_in(&server, "carol@acme.example").await;
    let (dan, _) = signed_in(&server, "dan@acme.example").await;
    let (ivy, _) = signed_in(&server, "ivy@globex.example").await;
    let (jack, jack_refresh) = signed_in(&server, "jack@globex.example").await;

    let own = call(&server, "GET", "/v1/tenants/acme/users", Some(&carol), None).await;
    assert_eq!(own.status, 200);
    let emails: Vec<&str> = own.body["users"].as_array().expect("users").iter().map(|u| str_of(u, "email")).collect();
    assert!(emails.contains(&"dan@acme.example") && emails.iter().all(|e| e.ends_with("@acme.example")), "{emails:?}");

    for (method, path) in [
        ("GET", "/v1/tenants/globex/users"),
        ("DELETE", "/v1/tenants/globex/users/jack@globex.example/sessions"),
        ("POST", "/v1/tenants/globex/users/kim@globex.example/invitation"),
    ] {
        let refused = call(&server, method, path, Some(&carol), None).await;
        assert_eq!((refused.status, str_of(&refused.body["error"], "code")), (403, "forbidden"), "{method} {path}");
    }
    assert_eq!(session_status(&server, &jack).await, 200, "the refused revoke did nothing");
    assert_eq!(
        call(&server, "GET", "/v1/tenants/acme/users", Some(&dan), None).await.status,
        403,
        "a plain user is no admin"
    );
    within(Duration::from_secs(2), "three denials of carol audited", || async {
        db.count("SELECT count(*) FROM audit_log WHERE action = 'api.denied' AND actor = 'carol@acme.example' AND tenant = 'globex'").await == 3
    })
    .await;

    // An admin's revoke within the tenant ends the user's sessions at once.
    let ended =
        call(&server, "DELETE", "/v1/tenants/globex/users/jack@globex.example/sessions", Some(&ivy), None).await;
    assert_eq!((ended.status, ended.body["sessionsEnded"].as_i64()), (200, Some(1)));
    assert_eq!(session_status(&server, &jack).await, 401);
    let _ = jack_refresh;

    // Introspection (RFC 7662) and revocation (RFC 7009) by an application see only tokens issued
    // to it (issue 25.11): a user's own API session is inactive to analytics-app, even in acme,
    // which lists it, and its revocation ends nothing. Its OpenID clients' tokens: tests/it/login.rs.
    let key = crate::access::issue(&server, "analytics-app", &[]).1;
    let introspect = |token: String| {
        let key = key.clone();
        let server = &server;
        async move { form(server, "/v1/auth/introspect", &[("token", &token)], Some(&key)).await }
    };
    let seen = introspect(dan.clone()).await;
    assert_eq!((seen.status, &seen.body), (200, &json!({ "active": false })), "{}", seen.text);
    assert_eq!(introspect(ivy.clone()).await.body, json!({ "active": false }), "globex is not open to analytics-app");
    assert_eq!(introspect("gatehouse_at_unknown".into()).await.body, json!({ "active": false }));
    let no_key = form(&server, "/v1/auth/introspect", &[("token", &dan)], None).await;
    assert_eq!(no_key.status, 401);
    for token in [&ivy, &dan] {
        assert_eq!(form(&server, "/v1/auth/revoke", &[("token", token)], Some(&key)).await.status, 200);
        assert_eq!(session_status(&server, token).await, 200, "an application ends no user's own session");
    }
}

/// FR-AUTH-004: forgot answers alike for any email and mails a single-use link; the reset ends every
/// session; a change needs the current password, ends every session and hands over a new one.
#[tokio::test]
async fn password_reset_and_change_end_sessions() {
    let db = TestDb::new().await;
    let sink = SmtpSink::start();
    let smtp = sink.url();
    let server = started(&Repo::example(), &db, &[("GATEHOUSE_SMTP_URL", &smtp)]).await;
    let user = "erin@acme.example";
    activate(&db, &[user]).await;
    let (old_session, _) = signed_in(&server, user).await;

    let known = call(&server, "POST", "/v1/auth/password/forgot", None, Some(json!({ "email": user }))).await;
    let unknown =
        call(&server, "POST", "/v1/auth/password/forgot", None, Some(json!({ "email": "nobody@acme.example" }))).await;
    assert_eq!((known.status, &known.body), (unknown.status, &unknown.body), "no enumeration");
    assert_eq!(known.status, 202);
    let mail = sink.mail(user, "Reset your password").await;
    let (link, token) = link_in(&mail);
    assert!(link.contains("/password/reset?token="), "{link}");

    let new_password = "marble kettle orbit 9";
    let reset = call(
        &server,
        "POST",
        "/v1/auth/password/reset",
        None,
        Some(json!({ "token": token, "password": new_password })),
    )
    .await;
    assert_eq!(reset.status, 204, "{}", reset.text);
    assert_eq!(session_status(&server, &old_session).await, 401, "a reset ends every session");
    let reused = call(
        &server,
        "POST",
        "/v1/auth/password/reset",
        None,
        Some(json!({ "token": token, "password": "another fine pass" })),
    )
    .await;
    assert_eq!(str_of(&reused.body["error"], "code"), "used_token");
    assert_eq!(login(&server, user, PASSWORD).await.status, 401);

    let first = login(&server, user, new_password).await;
    let second = login(&server, user, new_password).await;
    let (first, second) =
        (str_of(&first.body, "access_token").to_owned(), str_of(&second.body, "access_token").to_owned());
    let change = |current: &'static str, new: &'static str| {
        let first = first.clone();
        let server = &server;
        async move {
            call(
                server,
                "POST",
                "/v1/auth/password/change",
                Some(&first),
                Some(json!({ "current_password": current, "new_password": new })),
            )
            .await
        }
    };
    let wrong = change("not it", "copper violin dune").await;
    assert_eq!(str_of(&wrong.body["error"], "code"), "invalid_current_password");
    let named = change("marble kettle orbit 9", "erin loves acme").await;
    assert_eq!(str_of(&named.body["error"], "code"), "weak_password", "the email's name is refused");
    let changed = change("marble kettle orbit 9", "copper violin dune").await;
    assert_eq!(changed.status, 200, "{}", changed.text);
    // FR-AUTH-004, issue 25.17: every session ends, the changing one too; the person at the
    // keyboard goes on with the new session's tokens.
    assert_eq!(session_status(&server, &first).await, 401, "the changing session ended");
    assert_eq!(session_status(&server, &second).await, 401, "the other sessions end");
    assert_eq!(session_status(&server, str_of(&changed.body, "access_token")).await, 200, "its successor works");
    assert_eq!(login(&server, user, "copper violin dune").await.status, 200);
    for action in ["auth.password.forgot", "auth.password.reset", "auth.password.change"] {
        assert!(
            db.count(&format!("SELECT count(*) FROM audit_log WHERE action = '{action}'")).await >= 1,
            "{action} audited"
        );
    }
}

/// With no SMTP server, mail stays in the outbox and `gatehouse mail list` shows the links.
#[tokio::test]
async fn without_smtp_the_outbox_shows_the_invitation_links() {
    let db = TestDb::new().await;
    let server = started(&Repo::example(), &db, &[]).await;
    let env = [("DATABASE_URL", db.url.as_str()), ("GATEHOUSE_ENCRYPTION_KEY", ENCRYPTION_KEY)];
    let mut listed = String::new();
    within(Duration::from_secs(20), "an invitation in the outbox", || {
        let output = gatehouse(&["mail", "list", "--to", "hank@globex.example"], &env);
        listed = crate::helpers::stdout(&output);
        std::future::ready(listed.contains("/invitations/accept?token="))
    })
    .await;
    assert!(listed.contains("Subject: You are invited to Globex Corporation"), "{listed}");
    let token = listed.split("token=").nth(1).and_then(|t| t.split_whitespace().next()).expect("token");
    let accepted = call(
        &server,
        "POST",
        "/v1/auth/invitations/accept",
        None,
        Some(json!({ "token": token, "password": PASSWORD })),
    )
    .await;
    assert_eq!(accepted.status, 204, "{}", accepted.text);
    let sealed = db
        .count(&format!("SELECT count(*) FROM email_outbox WHERE position('{token}'::bytea IN body_sealed) > 0"))
        .await;
    assert_eq!(sealed, 0, "the link is sealed at rest");
    let wrong_key = gatehouse(
        &["mail", "list", "--to", "hank@globex.example"],
        &[
            ("DATABASE_URL", db.url.as_str()),
            ("GATEHOUSE_ENCRYPTION_KEY", "other:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="),
        ],
    );
    assert!(
        crate::helpers::stdout(&wrong_key).contains("cannot open: no key test"),
        "{}",
        crate::helpers::stdout(&wrong_key)
    );
}

/// Issue 15.9: `mail list --server` asks the API (`GET /v1/mail/outbox`, operators only): no
/// database URL or encryption key is needed on the operator's machine.
#[tokio::test]
async fn mail_list_with_a_server_reads_the_outbox_through_the_api() {
    let db = TestDb::new().await;
    let server = started(&Repo::example(), &db, &[]).await;
    let args = ["mail", "list", "--server", server.base.as_str(), "--to", "Hank@Globex.example"];
    let mut listed = String::new();
    within(Duration::from_secs(20), "an invitation in the outbox", || {
        let output = gatehouse(&args, &[("GATEHOUSE_OPERATOR_TOKEN", OPERATOR)]);
        listed = crate::helpers::stdout(&output);
        std::future::ready(output.status.success() && listed.contains("/invitations/accept?token="))
    })
    .await;
    assert!(listed.contains("To: hank@globex.example\nSubject: You are invited to Globex Corporation"), "{listed}");
    let refused = gatehouse(&args, &[("GATEHOUSE_OPERATOR_TOKEN", "wrong")]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(crate::helpers::stderr(&refused).contains("answered 401"), "{}", crate::helpers::stderr(&refused));
}

/// FR-AUTH-005: an access token lives for its TTL even while its session lives on; the refresh
/// token then gets a new one. (Introspection by an application no longer sees a user's own API
/// session at all, issue 25.11.)
#[tokio::test]
async fn an_access_token_expires_after_its_ttl_and_refresh_renews_it() {
    let db = TestDb::new().await;
    let server = started(&Repo::example(), &db, &[("GATEHOUSE_ACCESS_TOKEN_TTL", "1s")]).await;
    let user = "dan@acme.example";
    activate(&db, &[user]).await;
    let (access, refresh) = signed_in(&server, user).await;
    assert_eq!(session_status(&server, &access).await, 200);

    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(session_status(&server, &access).await, 401, "the access token outlived its TTL");
    let renewed = call(&server, "POST", "/v1/auth/refresh", None, Some(json!({ "refresh_token": refresh }))).await;
    assert_eq!(renewed.status, 200, "{}", renewed.text);
    assert_eq!(session_status(&server, str_of(&renewed.body, "access_token")).await, 200);
}
