//! The tenant administration console (issue 23.4, IF-TENANT-CONSOLE, FR-TENANT-002, -004, -006),
//! driven over HTTP as a browser without JavaScript would: plain links and form posts, the CSRF
//! token of the page, a cookie jar. The same functions and `authorize` as the JSON API decide, and
//! leave the same audit rows.

use serde_json::json;

use crate::helpers::{OPERATOR, PASSWORD, Repo, Served, TestDb, activate, call, within};
use crate::identity::{started, totp_now};
use crate::login::{browse, csrf, encode, enrol_totp, header};

pub(crate) type Jar = Vec<(String, String)>;

/// Signs `email` in on the login pages (password, then the code of `totp_secret` if any).
pub(crate) async fn console_sign_in(server: &Served, email: &str, totp_secret: Option<&str>) -> Jar {
    let mut jar = Vec::new();
    let login = format!("{}/login", server.base);
    browse("GET", &login, &mut jar, None).await;
    let form = format!("csrf={}&step=password&email={}&password={}", csrf(&jar), encode(email), encode(PASSWORD));
    let answered = browse("POST", &login, &mut jar, Some(&form)).await;
    assert_eq!(answered.status, 200, "{}", answered.text);
    if let Some(secret) = totp_secret {
        // The enrolment used this step's code; the next step's is accepted too.
        let form = format!("csrf={}&step=totp&code={}", csrf(&jar), totp_now(secret, 1));
        let verified = browse("POST", &login, &mut jar, Some(&form)).await;
        assert_eq!(verified.status, 200, "{}", verified.text);
    }
    assert!(jar.iter().any(|(k, _)| k == "gatehouse_session"), "signed in: {jar:?}");
    jar
}

/// A form post of the console: the page's CSRF token first, then `fields`.
pub(crate) async fn post(
    server: &Served,
    path: &str,
    jar: &mut Jar,
    fields: &[(&str, &str)],
) -> crate::helpers::HttpResponse {
    let mut body = format!("csrf={}", csrf(jar));
    for (key, value) in fields {
        body.push_str(&format!("&{key}={}", encode(value)));
    }
    browse("POST", &format!("{}{path}", server.base), jar, Some(&body)).await
}

pub(crate) async fn get(server: &Served, path: &str, jar: &mut Jar) -> crate::helpers::HttpResponse {
    browse("GET", &format!("{}{path}", server.base), jar, None).await
}

/// The `etag` hidden field of a user's page.
fn etag_of(page: &str) -> String {
    let tag =
        page.split("name=\"etag\" value=\"").nth(1).and_then(|rest| rest.split('"').next()).expect("an etag field");
    tag.replace("&#34;", "\"").replace("&quot;", "\"")
}

/// IF-TENANT-CONSOLE, FR-TENANT-002, -004, -006: an owner of a tenant made through the API signs in
/// at `/login`, lands in the console, invites an admin, finds them, changes their role, disables and
/// deletes them; the last owner guard, a duplicate email and a stale page are said in sentences;
/// every action leaves the JSON API's audit row; German on request.
#[tokio::test]
async fn an_owner_runs_their_users_in_the_tenant_console_with_plain_forms() {
    let db = TestDb::new().await;
    let repo = Repo::example();
    let server = started(&repo, &db, &[]).await;
    let body = json!({ "name": "lumon", "displayName": "Lumon Industries", "plan": "free", "owner": { "email": "olive@lumon.example" } });
    assert_eq!(call(&server, "POST", "/v1/tenants", Some(OPERATOR), Some(body)).await.status, 201);
    activate(&db, &["olive@lumon.example"]).await;
    let secret = enrol_totp(&server, "olive@lumon.example").await;
    let mut jar = console_sign_in(&server, "olive@lumon.example", Some(&secret)).await;

    // The owner lands in their tenant's console.
    let landing = get(&server, "/", &mut jar).await;
    assert_eq!((landing.status, header(&landing, "location")), (303, Some("/admin/lumon/users")));
    let users = get(&server, "/admin/lumon/users", &mut jar).await;
    assert_eq!(users.status, 200, "{}", users.text);
    assert!(users.text.contains("olive@lumon.example") && users.text.contains("Invite a user"), "{}", users.text);
    assert!(users.text.contains("id=\"signed-in\""), "{}", users.text);

    // Invite an admin: a real form post, then the list says so.
    let fields = [("email", "mark@lumon.example"), ("name", "Mark Scout"), ("role", "admin")];
    let invited = post(&server, "/admin/lumon/users", &mut jar, &fields).await;
    assert_eq!(invited.status, 303, "{}", invited.text);
    let location = header(&invited, "location").expect("a redirect").to_owned();
    assert_eq!(location, "/admin/lumon/users?invited=mark%40lumon.example");
    let listed = get(&server, &location, &mut jar).await;
    assert!(listed.text.contains("Invitation sent to mark@lumon.example"), "{}", listed.text);
    // A crafted link cannot make the page claim an invitation that was not sent.
    let crafted = get(&server, "/admin/lumon/users?invited=someone%40evil.example", &mut jar).await;
    assert!(!crafted.text.contains("Invitation sent to"), "{}", crafted.text);
    assert!(listed.text.contains("href=\"/admin/lumon/users/mark%40lumon.example\""), "{}", listed.text);
    let audited = "SELECT count(*) FROM audit_log WHERE action = 'user.invite' AND actor = 'olive@lumon.example' AND resource = 'tenant/lumon/user/mark@lumon.example'";
    assert_eq!(db.count(audited).await, 1, "the invitation is audited as the JSON API's");

    // The same email again: said plainly, the form keeps what was typed, the refusal is audited.
    let again = post(&server, "/admin/lumon/users", &mut jar, &fields).await;
    assert_eq!(again.status, 409, "{}", again.text);
    assert!(again.text.contains("already a user of this organisation"), "{}", again.text);
    assert!(again.text.contains("value=\"Mark Scout\""), "{}", again.text);
    let refused = "SELECT count(*) FROM audit_log WHERE action = 'api.refused' AND actor = 'olive@lumon.example' AND metadata->>'code' = 'email_taken'";
    within(std::time::Duration::from_secs(5), "the refusal is audited", || async { db.count(refused).await == 1 })
        .await;

    // Search by prefix and filter by role, paged on the server.
    let found = get(&server, "/admin/lumon/users?q=mar&role=&status=", &mut jar).await;
    assert!(
        found.text.contains("mark@lumon.example") && !found.text.contains("users/olive%40lumon.example"),
        "{}",
        found.text
    );
    let owners = get(&server, "/admin/lumon/users?q=&role=owner&status=", &mut jar).await;
    assert!(
        owners.text.contains("users/olive%40lumon.example") && !owners.text.contains("mark@lumon.example"),
        "{}",
        owners.text
    );

    // Change the role, with the tag of the page shown; a stale page is refused, not overwritten.
    activate(&db, &["mark@lumon.example"]).await;
    let mark = "/admin/lumon/users/mark%40lumon.example";
    let page = get(&server, mark, &mut jar).await;
    assert_eq!(page.status, 200, "{}", page.text);
    let tag = etag_of(&page.text);
    let changed = post(&server, mark, &mut jar, &[("action", "role"), ("role", "user"), ("etag", &tag)]).await;
    assert_eq!(
        (changed.status, header(&changed, "location")),
        (303, Some("/admin/lumon/users/mark%40lumon.example?done=role"))
    );
    let shown = get(&server, &format!("{mark}?done=role"), &mut jar).await;
    assert!(shown.text.contains("The role is changed.") && shown.text.contains("<dd>User</dd>"), "{}", shown.text);
    let stale = post(&server, mark, &mut jar, &[("action", "role"), ("role", "admin"), ("etag", &tag)]).await;
    assert_eq!(stale.status, 412, "{}", stale.text);
    assert!(stale.text.contains("Someone changed this user"), "{}", stale.text);

    // The last active owner: the page says so before, and the refusal says so after.
    let olive = get(&server, "/admin/lumon/users/olive%40lumon.example", &mut jar).await;
    assert!(olive.text.contains("only active owner"), "{}", olive.text);
    let tag = etag_of(&olive.text);
    let last = post(
        &server,
        "/admin/lumon/users/olive%40lumon.example",
        &mut jar,
        &[("action", "status"), ("status", "disabled"), ("etag", &tag)],
    )
    .await;
    assert_eq!(last.status, 409, "{}", last.text);
    assert!(last.text.contains("needs an active owner"), "{}", last.text);

    // Disable, end sessions, unlock, then delete (which must be confirmed).
    let tag = etag_of(&get(&server, mark, &mut jar).await.text);
    let disabled = post(&server, mark, &mut jar, &[("action", "status"), ("status", "disabled"), ("etag", &tag)]).await;
    assert_eq!(disabled.status, 303, "{}", disabled.text);
    assert_eq!(db.text("SELECT status::text FROM users WHERE email = 'mark@lumon.example'").await, "disabled");
    for action in ["sessions", "unlock"] {
        let done = post(&server, mark, &mut jar, &[("action", action)]).await;
        assert_eq!(done.status, 303, "{action}: {}", done.text);
    }
    let tag = etag_of(&get(&server, mark, &mut jar).await.text);
    let unconfirmed = post(&server, mark, &mut jar, &[("action", "delete"), ("etag", &tag)]).await;
    assert_eq!(unconfirmed.status, 400);
    assert!(unconfirmed.text.contains("Tick the box"), "{}", unconfirmed.text);
    let deleted = post(&server, mark, &mut jar, &[("action", "delete"), ("etag", &tag), ("confirm", "yes")]).await;
    assert_eq!(header(&deleted, "location"), Some("/admin/lumon/users?deleted=mark%40lumon.example"));
    assert_eq!(db.count("SELECT count(*) FROM users WHERE email = 'mark@lumon.example'").await, 0);
    for action in ["user.update", "auth.session.revoke", "auth.unlock", "user.delete"] {
        let sql = format!("SELECT count(*) FROM audit_log WHERE action = '{action}' AND actor = 'olive@lumon.example'");
        assert!(db.count(&sql).await >= 1, "{action} is audited");
    }

    // IF-TENANT-CONSOLE: the owner reads their tenant's own audit trail, and only that.
    let trail = get(&server, "/console/audit?action=user.invite", &mut jar).await;
    assert_eq!(trail.status, 200, "{}", trail.text);
    assert!(trail.text.contains("tenant/lumon/user/mark@lumon.example"), "{}", trail.text);
    assert!(!trail.text.contains("Hash chains"), "the platform's chains are not a tenant's to see");
    let other = get(&server, "/console/audit?tenant=acme", &mut jar).await;
    assert_eq!(other.status, 403, "{}", other.text);

    // FR-TENANT-003: the subscription, what the plan includes, the budget; the owner changes the plan.
    let subscription = get(&server, "/admin/lumon/subscription", &mut jar).await;
    assert_eq!(subscription.status, 200, "{}", subscription.text);
    assert!(
        subscription.text.contains("<strong>free</strong>") && subscription.text.contains("What the plan includes"),
        "{}",
        subscription.text
    );
    assert!(subscription.text.contains("Budget this month"), "{}", subscription.text);
    let tag = etag_of(&subscription.text);
    let changed = post(&server, "/admin/lumon/subscription", &mut jar, &[("plan", "pro"), ("etag", &tag)]).await;
    assert_eq!(header(&changed, "location"), Some("/admin/lumon/subscription?changed=1"), "{}", changed.text);
    assert_eq!(
        db.text("SELECT p.name FROM tenants t JOIN plans p ON p.id = t.plan_id WHERE t.name = 'lumon'").await,
        "pro"
    );
    let stale = post(&server, "/admin/lumon/subscription", &mut jar, &[("plan", "free"), ("etag", &tag)]).await;
    assert_eq!(stale.status, 412, "{}", stale.text);
    let unknown = post(&server, "/admin/lumon/subscription", &mut jar, &[("plan", "platinum")]).await;
    assert!(unknown.status >= 400 && unknown.text.contains("platinum"), "{}: {}", unknown.status, unknown.text);
    let audited = "SELECT count(*) FROM audit_log WHERE action = 'tenant.update' AND actor = 'olive@lumon.example'";
    assert_eq!(db.count(audited).await, 1);

    // NFR-017: the console in German.
    jar.push(("gatehouse_lang".into(), "de".into()));
    let german = get(&server, "/admin/lumon/users", &mut jar).await;
    assert!(german.text.contains("Benutzer einladen") && german.text.contains("<html lang=\"de\">"), "{}", german.text);
}

/// IF-TENANT-CONSOLE, FR-005: an admin sees a Git-declared tenant read-only with the file named,
/// an owner's page with the rule in words and no forms; an admin who edits the URL to another
/// tenant's console gets a refusal page and an audit row; a plain user starts on their account; a
/// browser not signed in is sent to sign in and back.
#[tokio::test]
async fn the_console_refuses_other_tenants_and_shows_the_rules_in_words() {
    let db = TestDb::new().await;
    let repo = Repo::example();
    let server = started(&repo, &db, &[]).await;
    activate(&db, &["carol@acme.example", "dan@acme.example"]).await;

    let mut nobody = Vec::new();
    let away = get(&server, "/admin/acme/users", &mut nobody).await;
    assert_eq!((away.status, header(&away, "location")), (303, Some("/login?return_to=%2Fadmin%2Facme%2Fusers")));

    let mut carol = console_sign_in(&server, "carol@acme.example", None).await;
    let users = get(&server, "/admin/acme/users", &mut carol).await;
    assert_eq!(users.status, 200, "{}", users.text);
    assert!(users.text.contains("declared in Git (tenants/acme.yaml:16)"), "the file and line: {}", users.text);
    let alice = get(&server, "/admin/acme/users/alice%40acme.example", &mut carol).await;
    assert!(alice.text.contains("Only owners can change"), "{}", alice.text);
    // alice's own entry in the tenant's file, by line.
    assert!(alice.text.contains("This user is declared in Git (tenants/acme.yaml:17)"), "{}", alice.text);
    assert!(!alice.text.contains("name=\"action\""), "no forms for what the admin may not do: {}", alice.text);

    let plan = get(&server, "/admin/acme/subscription", &mut carol).await;
    assert_eq!(plan.status, 200, "{}", plan.text);
    assert!(
        plan.text.contains("declared in Git (tenants/acme.yaml:8)") && !plan.text.contains("name=\"plan\""),
        "{}",
        plan.text
    );
    let other = get(&server, "/admin/globex/users", &mut carol).await;
    assert_eq!(other.status, 403, "{}", other.text);
    assert!(other.text.contains("signed in to another organisation"), "{}", other.text);
    let denied = "SELECT count(*) FROM audit_log WHERE action = 'api.denied' AND actor = 'carol@acme.example' AND tenant = 'globex'";
    within(std::time::Duration::from_secs(5), "the denial is audited", || async { db.count(denied).await == 1 }).await;
    let posted =
        post(&server, "/admin/globex/users", &mut carol, &[("email", "x@globex.example"), ("role", "user")]).await;
    assert_eq!(posted.status, 403, "{}", posted.text);

    let mut dan = console_sign_in(&server, "dan@acme.example", None).await;
    let start = get(&server, "/", &mut dan).await;
    assert_eq!(header(&start, "location"), Some("/account"));
    let refused = get(&server, "/admin/acme/users", &mut dan).await;
    assert_eq!(refused.status, 403, "{}", refused.text);
}

/// Issue 23.4 and 23.8, NFR-017, WCAG 2.1 AA: in Chromium, an owner signs in and lands in the
/// console; with JavaScript off and the keyboard alone they invite an admin; then every console
/// screen (the list, a user, a refused invitation, another tenant's refusal page, the account page,
/// German) passes axe-core's WCAG 2.1 A and AA rules with no violation at all. Screenshots of the
/// main screens land in target/screenshots (the README shows them).
#[tokio::test]
async fn the_tenant_console_in_chromium_passes_axe_by_keyboard_and_without_javascript() {
    let db = TestDb::new().await;
    let repo = Repo::example();
    let server = started(&repo, &db, &[]).await;
    let body = json!({ "name": "lumon", "displayName": "Lumon Industries", "plan": "free", "owner": { "email": "olive@lumon.example" } });
    assert_eq!(call(&server, "POST", "/v1/tenants", Some(OPERATOR), Some(body)).await.status, 201);
    activate(&db, &["olive@lumon.example"]).await;
    let secret = enrol_totp(&server, "olive@lumon.example").await;
    let shots = crate::helpers::project_dir().join("target/screenshots");
    std::fs::create_dir_all(&shots).expect("target/screenshots");
    let result = tokio::task::spawn_blocking(move || {
        crate::login::run_script(
            "console.mjs",
            &[
                ("BASE", server.base.clone()),
                ("EMAIL", "olive@lumon.example".into()),
                ("PASSWORD", PASSWORD.into()),
                ("TOTP_SECRET", secret),
                ("TOTP_STEP", "1".into()),
                ("TENANT", "lumon".into()),
                ("OTHER_TENANT", "acme".into()),
                ("INVITE_EMAIL", "helly@lumon.example".into()),
                ("SCREENSHOTS", shots.display().to_string()),
            ],
        )
    })
    .await
    .expect("the script");
    assert_eq!(result["problems"], json!([]), "{result}");
    assert!(result["landedOn"].as_str().is_some_and(|u| u.ends_with("/admin/lumon/users")), "{result}");
    assert_eq!(result["invited"], json!(true), "{result}");
    assert!(result["keyboardStops"].as_u64().is_some_and(|n| n < 15), "reached in a few Tab presses: {result}");
    assert_eq!(result["roleChanged"], json!(true), "{result}");
    assert_eq!(result["refusedStatus"], json!(403), "{result}");
    assert_eq!(result["germanLang"], json!("de"), "{result}");
    assert_eq!(result["germanRoleStatus"], "Die Rolle ist geändert.", "{result}");
    assert_eq!(result["germanInviteStatus"], "Einladung an de-helly@lumon.example gesendet.", "{result}");
    let screens = result["axe"].as_object().expect("axe results");
    assert!(screens.len() >= 8, "{result}");
    for (screen, violations) in screens {
        assert_eq!(violations, &json!([]), "axe (WCAG 2.1 A and AA) on {screen}");
    }
    assert_eq!(
        db.count("SELECT count(*) FROM users WHERE email = 'helly@lumon.example' AND role = 'admin'").await,
        1,
        "invited as an admin with the keyboard, made a user, then an admin again in German"
    );
    assert_eq!(
        db.text("SELECT language FROM users WHERE email = 'de-helly@lumon.example'").await,
        "de",
        "invited from a German page: mailed in German"
    );
}

/// The example served with the operators' identity provider (tests/idp) able to sign staff in
/// in a browser: its callback registered, `platform-ops` bound to operators and `platform-audit`
/// to auditors.
pub(crate) async fn staffed() -> (TestDb, Repo, crate::helpers::InProcess, crate::operators::Idp) {
    let db = TestDb::new().await;
    let repo = Repo::example();
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("a port").local_addr().expect("port").port();
    let callback = format!("http://127.0.0.1:{port}/console/login/callback");
    let idp = crate::operators::Idp::start_with(&[("IDP_REDIRECT_URIS", callback.as_str())]);
    let listen = format!("127.0.0.1:{port}");
    let server = started(
        &repo,
        &db,
        &[
            ("GATEHOUSE_LISTEN", listen.as_str()),
            ("GATEHOUSE_OIDC_ISSUER_URL", idp.issuer.as_str()),
            ("GATEHOUSE_OIDC_AUDIENCE", "gatehouse"),
            ("GATEHOUSE_OIDC_USERNAME_CLAIM", "email"),
            ("GATEHOUSE_OIDC_GROUP_BINDINGS", "platform-ops=operator,platform-audit=auditor"),
            ("GATEHOUSE_OIDC_CLIENT_SECRET", "gatehouse-secret"),
        ],
    )
    .await;
    (db, repo, server, idp)
}

/// Signs platform staff in as a browser would: `/console/login`, then the identity provider's own
/// login and consent pages (tests/idp, oidc-provider's development interactions) as `account`,
/// then back to Gatehouse's callback. Returns the jar and the callback's answer.
pub(crate) async fn staff_sign_in(
    server: &Served,
    idp: &crate::operators::Idp,
    account: &str,
) -> (Jar, crate::helpers::HttpResponse) {
    let mut jar = Vec::new();
    let page = get(server, "/console/login", &mut jar).await;
    assert_eq!(page.status, 200, "{}", page.text);
    let start = page.text.split("url=").nth(1).and_then(|rest| rest.split('"').next()).expect("a page moving on");
    let mut next = start.replace("&amp;", "&").replace("&#38;", "&");
    let mut at_idp = Vec::new();
    for _ in 0..12 {
        if next.starts_with(&format!("{}/console/login/callback", server.base)) {
            let answered = browse("GET", &next, &mut jar, None).await;
            return (jar, answered);
        }
        let url = if next.starts_with('/') { format!("{}{next}", idp.issuer) } else { next.clone() };
        let mut response = browse("GET", &url, &mut at_idp, None).await;
        if let Some(prompt) = response.text.split("name=\"prompt\" value=\"").nth(1).and_then(|r| r.split('"').next()) {
            let form = if prompt == "login" {
                format!("prompt=login&login={}&password=any", encode(account))
            } else {
                "prompt=consent".to_owned()
            };
            response = browse("POST", &url, &mut at_idp, Some(&form)).await;
        }
        next = header(&response, "location")
            .unwrap_or_else(|| panic!("the provider stopped at {url}: {}", response.text))
            .to_owned();
    }
    panic!("the provider never answered back to Gatehouse");
}

/// Issue 23.2 and 23.3, IF-OPS-CONSOLE, UC-PROV-001: an operator signs in at the platform's
/// identity provider (code + PKCE + state + nonce, the same client and group bindings as bearer
/// tokens), lands in the operator console, finds a tenant, provisions one whose owner is invited,
/// manages its users, and signs out (the platform session ends); an auditor reads but provisions
/// nothing; a person in no bound group gets a page saying so; every step is audited.
#[tokio::test]
async fn an_operator_signs_in_at_the_identity_provider_and_provisions_a_tenant_in_the_console() {
    let (db, _repo, server, idp) = staffed().await;
    idp.account("ada@ops.example", crate::operators::person("ada@ops.example", json!(["platform-ops"]))).await;
    idp.account("aud@ops.example", crate::operators::person("aud@ops.example", json!(["platform-audit"]))).await;
    idp.account("eve@ops.example", crate::operators::person("eve@ops.example", json!(["marketing"]))).await;

    // The login page offers platform staff their way in.
    let login = get(&server, "/login", &mut Vec::new()).await;
    assert!(login.text.contains("href=\"/console/login?return_to=%2F\""), "{}", login.text);
    // A staff member sent to sign in from a console page comes back to it.
    let sent = get(&server, "/login?return_to=%2Fconsole%2Faudit", &mut Vec::new()).await;
    assert!(sent.text.contains("href=\"/console/login?return_to=%2Fconsole%2Faudit\""), "{}", sent.text);

    let (mut ada, answered) = staff_sign_in(&server, &idp, "ada@ops.example").await;
    assert_eq!(answered.status, 200, "{}", answered.text);
    assert!(ada.iter().any(|(k, _)| k == "gatehouse_staff"), "{ada:?}");
    assert!(!answered.text.contains("gatehouse_staff"), "the session's token is only in the cookie");
    let landing = get(&server, "/", &mut ada).await;
    assert_eq!(header(&landing, "location"), Some("/console"));
    let tenants = get(&server, "/console", &mut ada).await;
    assert_eq!(tenants.status, 200, "{}", tenants.text);
    assert!(
        tenants.text.contains("Provision a tenant") && tenants.text.contains("Git (tenants/acme.yaml)"),
        "{}",
        tenants.text
    );
    let found = get(&server, "/console?q=ac&state=&plan=", &mut ada).await;
    assert!(found.text.contains(">acme<") && !found.text.contains(">globex<"), "{}", found.text);
    let signed_in = "SELECT count(*) FROM audit_log WHERE action = 'operator.login' AND actor = 'ada@ops.example' AND actor_type = 'operator' AND outcome = 'success'";
    assert_eq!(db.count(signed_in).await, 1);

    // Provision a tenant: its owner is invited by mail.
    let fields = [
        ("name", "lumon"),
        ("display_name", "Lumon Industries"),
        ("plan", "free"),
        ("owner", "olive@lumon.example"),
        ("applications", ""),
    ];
    let provisioned = post(&server, "/console", &mut ada, &fields).await;
    assert_eq!(header(&provisioned, "location"), Some("/console?created=lumon"), "{}", provisioned.text);
    let listed = get(&server, "/console?created=lumon", &mut ada).await;
    assert!(listed.text.contains("Tenant lumon is provisioned"), "{}", listed.text);
    let crafted = get(&server, "/console?created=nowhere", &mut ada).await;
    assert!(!crafted.text.contains("is provisioned"), "a crafted link claims nothing: {}", crafted.text);
    assert_eq!(
        db.count(
            "SELECT count(*) FROM users WHERE email = 'olive@lumon.example' AND role = 'owner' AND status = 'invited'"
        )
        .await,
        1
    );
    let mailed = "SELECT count(*) FROM email_outbox WHERE recipient = 'olive@lumon.example'";
    within(std::time::Duration::from_secs(10), "the owner's invitation is mailed", || async {
        db.count(mailed).await == 1
    })
    .await;
    let created = "SELECT count(*) FROM audit_log WHERE action = 'tenant.create' AND actor = 'ada@ops.example' AND actor_type = 'operator'";
    assert_eq!(db.count(created).await, 1);
    let again = post(&server, "/console", &mut ada, &fields).await;
    assert_eq!(again.status, 409, "{}", again.text);
    assert!(
        again.text.contains("exists already") && again.text.contains("value=\"Lumon Industries\""),
        "{}",
        again.text
    );
    // The tenant's users, in the console the operator shares with the tenant's admins.
    let users = get(&server, "/admin/lumon/users", &mut ada).await;
    assert!(users.text.contains("olive@lumon.example") && users.text.contains("Invite a user"), "{}", users.text);

    // FR-OPS-001: suspend with a reason, restore, delete with the purge date shown.
    assert!(users.text.contains("The tenant") && users.text.contains("Suspend"), "{}", users.text);
    let suspended =
        post(&server, "/admin/lumon", &mut ada, &[("action", "suspend"), ("reason", "unpaid invoices")]).await;
    assert_eq!(header(&suspended, "location"), Some("/admin/lumon/users?tenant_done=suspend"), "{}", suspended.text);
    let shown = get(&server, "/admin/lumon/users?tenant_done=suspend", &mut ada).await;
    assert!(
        shown.text.contains("The tenant is suspended.") && shown.text.contains("unpaid invoices"),
        "{}",
        shown.text
    );
    assert_eq!(db.text("SELECT status FROM tenants WHERE name = 'lumon'").await, "suspended");
    let restored = post(&server, "/admin/lumon", &mut ada, &[("action", "restore")]).await;
    assert_eq!(restored.status, 303, "{}", restored.text);
    assert_eq!(db.text("SELECT status FROM tenants WHERE name = 'lumon'").await, "active");
    let unconfirmed = post(&server, "/admin/lumon", &mut ada, &[("action", "delete")]).await;
    assert_eq!(unconfirmed.status, 400, "{}", unconfirmed.text);
    let deleted = post(&server, "/admin/lumon", &mut ada, &[("action", "delete"), ("confirm", "yes")]).await;
    assert_eq!(deleted.status, 303, "{}", deleted.text);
    let pending = get(&server, "/admin/lumon/users?tenant_done=delete", &mut ada).await;
    assert!(pending.text.contains("Pending deletion") && pending.text.contains("purged on 20"), "{}", pending.text);
    for action in ["tenant.suspend", "tenant.restore", "tenant.delete"] {
        let sql = format!("SELECT count(*) FROM audit_log WHERE action = '{action}' AND actor = 'ada@ops.example'");
        assert_eq!(db.count(&sql).await, 1, "{action} is audited");
    }
    let restored = post(&server, "/admin/lumon", &mut ada, &[("action", "restore")]).await;
    assert_eq!(restored.status, 303, "{}", restored.text);
    // A tenant declared in Git is deleted in Git: no form, and a post is refused naming the file.
    let acme = get(&server, "/admin/acme/users", &mut ada).await;
    assert!(acme.text.contains("Suspend") && !acme.text.contains("Yes, delete this tenant"), "{}", acme.text);
    let git = post(&server, "/admin/acme", &mut ada, &[("action", "delete"), ("confirm", "yes")]).await;
    assert_eq!(git.status, 409, "{}", git.text);
    assert!(git.text.contains("tenants/acme.yaml"), "{}", git.text);

    // Signing out ends the platform session, not just the cookie.
    let stolen = ada.clone();
    let out = post(&server, "/console/logout", &mut ada, &[]).await;
    assert_eq!(header(&out, "location"), Some("/login?signed_out=1"));
    let replayed = get(&server, "/console", &mut stolen.clone()).await;
    assert_eq!(replayed.status, 303, "an ended session opens nothing: {}", replayed.text);
    assert_eq!(
        db.count("SELECT count(*) FROM audit_log WHERE action = 'operator.logout' AND actor = 'ada@ops.example'").await,
        1
    );

    // An auditor reads, and provisions nothing.
    let (mut auditor, _) = staff_sign_in(&server, &idp, "aud@ops.example").await;
    let read = get(&server, "/console", &mut auditor).await;
    assert_eq!(read.status, 200, "{}", read.text);
    assert!(read.text.contains(">acme<") && !read.text.contains("Provision a tenant"), "{}", read.text);
    let refused = post(
        &server,
        "/console",
        &mut auditor,
        &[("name", "x"), ("display_name", "X"), ("plan", "free"), ("owner", "x@x.example")],
    )
    .await;
    assert_eq!(refused.status, 403, "{}", refused.text);
    let lumon = get(&server, "/admin/lumon/users", &mut auditor).await;
    assert!(lumon.text.contains("olive@lumon.example") && !lumon.text.contains("Suspend"), "{}", lumon.text);
    let suspend = post(&server, "/admin/lumon", &mut auditor, &[("action", "suspend")]).await;
    assert_eq!(suspend.status, 403, "{}", suspend.text);

    // IF-AUDIT-CONSOLE, FR-LOG-002: the auditor searches the log and exports exactly that filter.
    let filter = "action=tenant.create&outcome=success&actor=ada%40ops.example";
    let search = get(&server, &format!("/console/audit?{filter}"), &mut auditor).await;
    assert_eq!(search.status, 200, "{}", search.text);
    assert!(
        search.text.contains("ada@ops.example (operator)") && search.text.contains("tenant/lumon"),
        "{}",
        search.text
    );
    assert!(!search.text.contains("gatehouse-reconciler"), "only the filter's rows: {}", search.text);
    assert!(search.text.contains("Hash chains"), "the chains' heads are shown: {}", search.text);
    let link = search
        .text
        .split("href=\"/console/audit.csv?")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("an export link");
    assert!(
        link.contains("action=tenant.create") && link.contains("actor=ada%40ops.example"),
        "the export keeps the filter: {link}"
    );
    let cookies = auditor.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ");
    let url = format!("{}/console/audit.csv?{filter}", server.base);
    let csv = tokio::task::spawn_blocking(move || crate::audit::csv_rows(&url, &format!("cookie:{cookies}")))
        .await
        .expect("python3 reads the CSV");
    assert!(csv["contentType"].as_str().is_some_and(|t| t.starts_with("text/csv")), "{csv}");
    let rows = csv["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 1, "exactly the filter's rows: {csv}");
    assert_eq!(
        (rows[0]["tenant"].as_str(), rows[0]["actor"].as_str()),
        (Some("lumon"), Some("ada@ops.example")),
        "{csv}"
    );
    let exported = "SELECT count(*) FROM audit_log WHERE action = 'audit.export' AND actor = 'aud@ops.example'";
    assert_eq!(db.count(exported).await, 1, "the export is audited");
    let bad = get(&server, "/console/audit?from=yesterday", &mut auditor).await;
    assert_eq!(bad.status, 400, "{}", bad.text);
    assert!(bad.text.contains("is not a day"), "{}", bad.text);

    // The staff's screens are valid HTML too (the tenant's: tests/it/web.rs).
    let mut pages = Vec::new();
    for path in ["/console", "/console/audit", "/admin/lumon/users"] {
        pages.push((path.to_owned(), get(&server, path, &mut auditor).await.text));
    }
    pages.push(("the provisioning refusal".into(), again.text.clone()));
    crate::web::nu_check(pages).await;

    // No bound group: a page that says so, and an audit row.
    let (_, unbound) = staff_sign_in(&server, &idp, "eve@ops.example").await;
    assert_eq!(unbound.status, 403, "{}", unbound.text);
    assert!(unbound.text.contains("none of your groups"), "{}", unbound.text);
    assert_eq!(
        db.count("SELECT count(*) FROM audit_log WHERE action = 'operator.login' AND outcome = 'failure'").await,
        1
    );
}

/// A refresh token Gatehouse issued to an application (an OpenID client's session) is no browser
/// session: presented as the session cookie it opens neither the account page nor a console.
#[tokio::test]
async fn an_applications_refresh_token_opens_no_console() {
    use gatehouse::identity::token::{TokenKind, issue};
    let db = TestDb::new().await;
    let repo = Repo::example();
    let server = started(&repo, &db, &[]).await;
    activate(&db, &["carol@acme.example"]).await;
    let refresh = issue(TokenKind::Refresh);
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    db.execute(&format!(
        "INSERT INTO sessions (id, user_id, tenant_id, access_hash, refresh_hash, expires_at, client_id)
         SELECT gen_random_uuid(), u.id, u.tenant_id, '\\x{}', '\\x{}', now() + interval '1 hour',
                (SELECT id FROM applications WHERE name = 'analytics-app')
           FROM users u WHERE u.email = 'carol@acme.example'",
        hex(&issue(TokenKind::Access).hash),
        hex(&refresh.hash)
    ))
    .await;
    let mut jar = vec![("gatehouse_session".to_owned(), refresh.token.clone())];
    for path in ["/admin/acme/users", "/account"] {
        let answer = get(&server, path, &mut jar).await;
        assert_eq!(answer.status, 303, "{path}: {}", answer.text);
        assert!(header(&answer, "location").is_some_and(|l| l.starts_with("/login")), "{path}");
    }
    let mut form_jar = jar.clone();
    get(&server, "/login", &mut form_jar).await;
    let posted =
        post(&server, "/admin/acme/users", &mut form_jar, &[("email", "x@acme.example"), ("role", "owner")]).await;
    assert_eq!(header(&posted, "location"), Some("/login?return_to=%2F"), "{}", posted.text);
    assert_eq!(db.count("SELECT count(*) FROM users WHERE email = 'x@acme.example'").await, 0);
}

/// The JSON API still tells a caller who may not act so before it reads their body or query
/// (the console's refactor kept the order): no schema is revealed to them, and the denial is audited.
#[tokio::test]
async fn the_json_api_refuses_before_it_reads_a_body() {
    let db = TestDb::new().await;
    let repo = Repo::example();
    let server = started(&repo, &db, &[]).await;
    activate(&db, &["carol@acme.example"]).await;
    let carol = crate::identity::login(&server, "carol@acme.example", PASSWORD).await;
    let carol = carol.body["access_token"].as_str().expect("a token").to_owned();
    let raw = |method: &'static str, path: &str, bearer: Option<&str>, body: &str| {
        let mut headers = vec![("content-type", "application/json".to_owned())];
        if let Some(token) = bearer {
            headers.push(("authorization", format!("Bearer {token}")));
        }
        crate::helpers::request(method, format!("{}{path}", server.base), headers, body.as_bytes().to_vec())
    };
    assert_eq!(raw("POST", "/v1/tenants", None, "{").await.status, 401);
    assert_eq!(raw("POST", "/v1/tenants", Some(&carol), "{").await.status, 403);
    assert_eq!(raw("POST", "/v1/tenants/globex/users", Some(&carol), "{").await.status, 403);
    assert_eq!(raw("PATCH", "/v1/tenants/globex/users/x%40globex.example", Some(&carol), "{").await.status, 403);
    assert_eq!(raw("GET", "/v1/tenants?limit=x", Some(&carol), "").await.status, 403);
    assert_eq!(raw("GET", "/v1/tenants/globex/users?limit=x", Some(&carol), "").await.status, 403);
}
