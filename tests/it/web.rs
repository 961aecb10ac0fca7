//! The web layer every page shares (issue 23.1, NFR-017): English and German chosen from the
//! browser and remembered, the stylesheet and htmx served by Gatehouse itself under a CSP without
//! inline code, fragments for htmx, and one CSRF check in front of every page's form post.

use crate::helpers::{Repo, TestDb, request, within};
use crate::identity::started;
use crate::login::{browse, header};

/// NFR-017: a browser that prefers German gets German pages; the switch on every page changes the
/// language and is remembered over the browser's own preference.
#[tokio::test]
async fn pages_speak_german_to_a_german_browser_and_remember_the_switch() {
    let db = TestDb::new().await;
    let repo = Repo::example();
    let server = started(&repo, &db, &[]).await;
    let login = format!("{}/login", server.base);

    let german =
        request("GET", login.clone(), vec![("accept-language", "de-DE,de;q=0.9,en;q=0.5".into())], vec![]).await;
    assert_eq!(german.status, 200);
    assert!(german.text.contains("<html lang=\"de\">"), "{}", german.text);
    assert!(german.text.contains("<h1>Anmelden</h1>") && german.text.contains("E-Mail-Adresse"), "{}", german.text);
    let english = request("GET", login.clone(), vec![("accept-language", "fr, en;q=0.8".into())], vec![]).await;
    assert!(
        english.text.contains("<html lang=\"en\">") && english.text.contains("<h1>Sign in</h1>"),
        "{}",
        english.text
    );

    // The switch is a plain link back to the same page; the choice is kept in a cookie.
    assert!(german.text.contains("href=\"/language?lang=en&#38;return_to=%2Flogin\""), "{}", german.text);
    let mut jar = Vec::new();
    let switched = browse("GET", &format!("{}/language?lang=de&return_to=%2Flogin", server.base), &mut jar, None).await;
    assert_eq!((switched.status, header(&switched, "location")), (303, Some("/login")));
    assert!(jar.iter().any(|(k, v)| k == "gatehouse_lang" && v == "de"), "{jar:?}");
    let remembered = browse("GET", &login, &mut jar, None).await;
    assert!(remembered.text.contains("<h1>Anmelden</h1>"), "{}", remembered.text);
    // A switch never leaves the server, and an unknown language changes nothing.
    let away =
        browse("GET", &format!("{}/language?lang=xx&return_to=//evil.example", server.base), &mut jar, None).await;
    assert_eq!(header(&away, "location"), Some("/"));
    assert!(jar.iter().any(|(k, v)| k == "gatehouse_lang" && v == "de"), "{jar:?}");

    // A problem is said in the page's language too.
    let body = format!("csrf={}&step=email&email=not-an-email", crate::login::csrf(&jar));
    let problem = browse("POST", &login, &mut jar, Some(&body)).await;
    assert_eq!(problem.status, 400);
    assert!(problem.text.contains("Geben Sie Ihre E-Mail-Adresse ein"), "{}", problem.text);
}

/// NFR-017, issue 23.7: mail is in its recipient's language. An owner whose pages are German
/// invites a colleague: the invitation is German. A password reset asked on a German page, or
/// through the API with `Accept-Language: de`, is German; an English browser's is English. A user
/// who switches the pages to German while signed in gets German mail from then on.
#[tokio::test]
async fn mail_is_in_its_recipients_language() {
    use crate::helpers::{OPERATOR, activate, call};
    let db = TestDb::new().await;
    let repo = Repo::example();
    let server = started(&repo, &db, &[]).await;
    let subject = |email: &'static str| {
        let db = &db;
        async move {
            let sql = format!(
                "SELECT subject FROM email_outbox WHERE recipient = '{email}' ORDER BY created_at DESC LIMIT 1"
            );
            within(std::time::Duration::from_secs(10), "the mail is queued", || async {
                db.count(&format!("SELECT count(*) FROM email_outbox WHERE recipient = '{email}'")).await > 0
            })
            .await;
            db.text(&sql).await
        }
    };

    let body = serde_json::json!({ "name": "lumon", "displayName": "Lumon Industries", "plan": "free", "owner": { "email": "olive@lumon.example" } });
    assert_eq!(call(&server, "POST", "/v1/tenants", Some(OPERATOR), Some(body)).await.status, 201);
    assert_eq!(
        subject("olive@lumon.example").await,
        "You are invited to Lumon Industries",
        "no language known: English"
    );
    activate(&db, &["olive@lumon.example"]).await;
    let secret = crate::login::enrol_totp(&server, "olive@lumon.example").await;
    let mut jar = crate::console::console_sign_in(&server, "olive@lumon.example", Some(&secret)).await;
    jar.push(("gatehouse_lang".into(), "de".into()));
    let invited = crate::console::post(
        &server,
        "/admin/lumon/users",
        &mut jar,
        &[("email", "mark@lumon.example"), ("role", "user")],
    )
    .await;
    assert_eq!(invited.status, 303, "{}", invited.text);
    assert_eq!(subject("mark@lumon.example").await, "Sie sind zu Lumon Industries eingeladen");

    // A reset asked in German, on the page and through the API; an English page's is English.
    activate(&db, &["dan@acme.example", "erin@acme.example"]).await;
    let mut german = vec![("gatehouse_lang".to_owned(), "de".to_owned())];
    let forgot = format!("{}/password/forgot", server.base);
    browse("GET", &forgot, &mut german, None).await;
    let form = format!("csrf={}&email=dan%40acme.example", crate::login::csrf(&german));
    assert_eq!(browse("POST", &forgot, &mut german, Some(&form)).await.status, 200);
    assert_eq!(subject("dan@acme.example").await, "Passwort zurücksetzen");
    let api = request(
        "POST",
        format!("{}/v1/auth/password/forgot", server.base),
        vec![("accept-language", "de".into()), ("content-type", "application/json".into())],
        br#"{"email":"erin@acme.example"}"#.to_vec(),
    )
    .await;
    assert_eq!(api.status, 202, "{}", api.text);
    assert_eq!(subject("erin@acme.example").await, "Passwort zurücksetzen");

    // The switch while signed in is remembered for mail: a later reset without a language is German.
    let olive = jar.into_iter().filter(|(k, _)| k != "gatehouse_lang").collect::<Vec<_>>();
    let cookies = olive.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ");
    let switch = format!("{}/language?lang=de&return_to=%2Faccount", server.base);
    // A link on another site switches the cookie but not the user's mail language.
    let elsewhere = vec![("cookie", cookies.clone()), ("sec-fetch-site", "cross-site".to_owned())];
    assert_eq!(request("GET", switch.clone(), elsewhere, vec![]).await.status, 200, "back on the account page");
    let unchanged =
        db.count("SELECT count(*) FROM users WHERE email = 'olive@lumon.example' AND language IS NULL").await;
    assert_eq!(unchanged, 1, "a cross-site link records no language");
    let own_page = vec![("cookie", cookies), ("sec-fetch-site", "same-origin".to_owned())];
    assert_eq!(request("GET", switch, own_page, vec![]).await.status, 200, "back on the account page");
    assert_eq!(db.text("SELECT language FROM users WHERE email = 'olive@lumon.example'").await, "de");
    let plain = request(
        "POST",
        format!("{}/v1/auth/password/forgot", server.base),
        vec![("content-type", "application/json".into())],
        br#"{"email":"olive@lumon.example"}"#.to_vec(),
    )
    .await;
    assert_eq!(plain.status, 202);
    within(std::time::Duration::from_secs(10), "the reset is queued", || async {
        db.count(
            "SELECT count(*) FROM email_outbox WHERE recipient = 'olive@lumon.example' AND kind = 'password_reset'",
        )
        .await
            == 1
    })
    .await;
    assert_eq!(subject("olive@lumon.example").await, "Passwort zurücksetzen");
}

/// Issue 23.1: pages run no inline code; their stylesheet and htmx come from Gatehouse, cacheable
/// by the digest in their URL; an htmx request gets the page's fragment, and every page varies on it.
#[tokio::test]
async fn pages_load_only_their_own_stylesheet_and_htmx_and_htmx_gets_fragments() {
    let db = TestDb::new().await;
    let repo = Repo::example();
    let server = started(&repo, &db, &[]).await;
    let page = request("GET", format!("{}/login", server.base), vec![], vec![]).await;
    let policy = page.header("content-security-policy").expect("a CSP").to_owned();
    for directive in ["script-src 'self'", "style-src 'self'", "form-action 'self'", "frame-ancestors 'none'"] {
        assert!(policy.contains(directive), "{directive} in {policy}");
    }
    assert!(!policy.contains("unsafe-inline") && !policy.contains("unsafe-eval"), "{policy}");
    assert!(!page.text.contains("<style") && !page.text.contains("style=\""), "no inline style: {}", page.text);
    assert!(page.header("vary").is_some_and(|v| v.contains("HX-Request")), "{:?}", page.headers);

    for (name, kind) in [("style.css", "text/css"), ("htmx.min.js", "text/javascript")] {
        let link = page
            .text
            .split(&format!("\"/assets/{name}?v="))
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_else(|| panic!("the page links /assets/{name}: {}", page.text));
        let asset = request("GET", format!("{}/assets/{name}?v={link}", server.base), vec![], vec![]).await;
        assert_eq!(asset.status, 200);
        assert!(asset.header("content-type").is_some_and(|t| t.starts_with(kind)), "{:?}", asset.headers);
        assert!(asset.header("cache-control").is_some_and(|c| c.contains("immutable")), "{:?}", asset.headers);
        assert!(asset.text.len() > 1000, "{name} is served whole");
    }
    let missing = request("GET", format!("{}/assets/nothing.js", server.base), vec![], vec![]).await;
    assert_eq!((missing.status, missing.body["error"]["code"].as_str()), (404, Some("not_found")));

    let fragment =
        request("GET", format!("{}/password/forgot", server.base), vec![("hx-request", "true".into())], vec![]).await;
    assert_eq!(fragment.status, 200);
    assert!(!fragment.text.contains("<html") && fragment.text.contains("<h1>"), "{}", fragment.text);
    assert!(fragment.text.contains("name=\"csrf\""), "a fragment's form carries its token: {}", fragment.text);
    let boosted = request(
        "GET",
        format!("{}/password/forgot", server.base),
        vec![("hx-request", "true".into()), ("hx-boosted", "true".into())],
        vec![],
    )
    .await;
    assert!(boosted.text.contains("<html"), "a boosted navigation gets the whole page");
}

/// Issue 23.1: every page's form post (the routes of the OpenAPI document that take a form and
/// answer a page) is refused without the browser's CSRF token, changes nothing, says so, and is
/// audited.
#[tokio::test]
async fn every_page_form_post_without_the_browsers_csrf_token_is_refused_and_audited() {
    let db = TestDb::new().await;
    let repo = Repo::example();
    let server = started(&repo, &db, &[]).await;
    let document = request("GET", format!("{}/openapi.json", server.base), vec![], vec![]).await.body;
    let mut forms = Vec::new();
    for (path, operations) in document["paths"].as_object().expect("paths") {
        let post = &operations["post"];
        let takes_form = post["requestBody"]["content"].get("application/x-www-form-urlencoded").is_some();
        let answers_page = post["responses"]
            .as_object()
            .is_some_and(|r| r.values().any(|response| response["content"].get("text/html").is_some()));
        // The OpenID provider's endpoints take forms from applications, not from our pages.
        if takes_form && answers_page && !path.starts_with("/oauth2/") {
            forms.push(path.clone());
        }
    }
    for expected in ["/login", "/logout", "/password/forgot", "/password/reset", "/invitations/accept"] {
        assert!(forms.iter().any(|p| p == expected), "{expected} in {forms:?}");
    }
    for path in &forms {
        let mut jar = Vec::new();
        // A browser that has a token, and a form that does not repeat it; then none at all.
        browse("GET", &format!("{}/login", server.base), &mut jar, None).await;
        for (jar, body) in [(&mut jar, "csrf=forged&email=a%40b.example"), (&mut Vec::new(), "email=a%40b.example")] {
            let refused = browse("POST", &format!("{}{path}", server.base), jar, Some(body)).await;
            assert_eq!(refused.status, 400, "{path}: {}", refused.text);
            assert!(refused.text.contains("Nothing was changed"), "{path}: {}", refused.text);
            assert!(!jar.iter().any(|(k, _)| k == "gatehouse_session"), "{path}");
        }
    }
    let expected = 2 * forms.len() as i64;
    let sql = "SELECT coalesce(sum(coalesce((metadata->>'count')::bigint, 1)), 0)::bigint FROM audit_log WHERE action = 'web.form'";
    within(std::time::Duration::from_secs(10), "the refusals are audited", || async {
        db.count(sql).await == expected
    })
    .await;
}

/// Issue 23.8: every page is valid HTML for the Nu HTML Checker (npm `vnu-jar`, the W3C's
/// validator): the sign-in steps, the mailed-link pages, the account page, the tenant console's
/// screens, a refusal page and the CSRF refusal, in English and German.
#[tokio::test]
async fn every_page_is_valid_html_for_the_nu_checker() {
    let vnu = crate::helpers::project_dir().join("tests/browser/node_modules/vnu-jar/build/dist/vnu.jar");
    assert!(
        vnu.exists(),
        "tests/browser/node_modules is missing: run scripts/test, or `npm ci --prefix tests/browser`"
    );
    let db = TestDb::new().await;
    let repo = Repo::example();
    let server = started(&repo, &db, &[]).await;
    let body = serde_json::json!({ "name": "lumon", "displayName": "Lumon", "plan": "free", "owner": { "email": "olive@lumon.example" } });
    assert_eq!(
        crate::helpers::call(&server, "POST", "/v1/tenants", Some(crate::helpers::OPERATOR), Some(body)).await.status,
        201
    );
    crate::helpers::activate(&db, &["olive@lumon.example"]).await;
    let secret = crate::login::enrol_totp(&server, "olive@lumon.example").await;

    let mut pages: Vec<(String, String)> = Vec::new();
    let mut anonymous = Vec::new();
    for path in
        ["/login", "/login?signed_out=1", "/password/forgot", "/password/reset?token=x", "/invitations/accept?token=x"]
    {
        let page = browse("GET", &format!("{}{path}", server.base), &mut anonymous, None).await;
        pages.push((path.to_owned(), page.text));
    }
    let body = format!("csrf={}&step=email&email=olive%40lumon.example", crate::login::csrf(&anonymous));
    let password = browse("POST", &format!("{}/login", server.base), &mut anonymous, Some(&body)).await;
    pages.push(("the password step".into(), password.text));
    let forged = browse("POST", &format!("{}/login", server.base), &mut Vec::new(), Some("step=email")).await;
    pages.push(("the CSRF refusal".into(), forged.text));

    let mut jar = crate::console::console_sign_in(&server, "olive@lumon.example", Some(&secret)).await;
    for path in [
        "/account",
        "/admin/lumon/users",
        "/admin/lumon/users/olive%40lumon.example",
        "/admin/lumon/subscription",
        "/admin/lumon/sso",
        "/admin/acme/users",
    ] {
        let page = browse("GET", &format!("{}{path}", server.base), &mut jar, None).await;
        pages.push((path.to_owned(), page.text));
    }
    // Single sign-on entered, and a verification's problems listed.
    let fields = [
        ("action", "save"),
        ("issuer", "https://127.0.0.1:9/"),
        ("client_id", "c"),
        ("client_secret", "s"),
        ("domains", "lumon.example"),
    ];
    assert_eq!(crate::console::post(&server, "/admin/lumon/sso", &mut jar, &fields).await.status, 303);
    let verified = crate::console::post(&server, "/admin/lumon/sso", &mut jar, &[("action", "verify")]).await;
    assert!(verified.text.contains("id=\"verification\""), "{}", verified.text);
    pages.push(("a verification's problems".into(), verified.text));
    jar.push(("gatehouse_lang".into(), "de".into()));
    for path in ["/admin/lumon/users", "/admin/lumon/users/olive%40lumon.example", "/admin/lumon/sso"] {
        let page = browse("GET", &format!("{}{path}", server.base), &mut jar, None).await;
        pages.push((format!("{path} (de)"), page.text));
    }

    nu_check(pages).await;
}

/// Checks every page (named, HTML) with the Nu HTML Checker (npm `vnu-jar`): none may have an
/// error or a warning.
pub(crate) async fn nu_check(pages: Vec<(String, String)>) {
    let vnu = crate::helpers::project_dir().join("tests/browser/node_modules/vnu-jar/build/dist/vnu.jar");
    assert!(
        vnu.exists(),
        "tests/browser/node_modules is missing: run scripts/test, or `npm ci --prefix tests/browser`"
    );
    let dir = tempfile::tempdir().expect("a temp dir");
    let mut files = Vec::new();
    for (i, (_, html)) in pages.iter().enumerate() {
        assert!(html.starts_with("<!doctype html>"), "a whole page: {html}");
        let file = dir.path().join(format!("page-{i}.html"));
        std::fs::write(&file, html).expect("write a page");
        files.push(file);
    }
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("java").arg("-jar").arg(vnu).args(["--format", "json"]).args(&files).output()
    })
    .await
    .expect("join")
    .expect("java runs the Nu HTML Checker");
    let report: serde_json::Value = serde_json::from_slice(&output.stderr)
        .unwrap_or_else(|_| panic!("the checker's report: {}", String::from_utf8_lossy(&output.stderr)));
    let messages = report["messages"].as_array().expect("messages");
    let named: Vec<String> = messages
        .iter()
        .map(|m| {
            let url = m["url"].as_str().unwrap_or("");
            let index: usize =
                url.rsplit("page-").next().and_then(|n| n.trim_end_matches(".html").parse().ok()).unwrap_or(0);
            format!("{} ({}): {} line {}: {}", pages[index].0, m["type"], m["subType"], m["lastLine"], m["message"])
        })
        .collect();
    assert!(named.is_empty(), "the Nu HTML Checker found:\n{}", named.join("\n"));
}

/// Under https, the session's cookie is `__Host-` prefixed (and `Secure`), as the CSRF cookie is:
/// a sibling subdomain can neither plant nor shadow it; the unprefixed name is not read.
#[tokio::test]
async fn under_https_the_session_cookie_is_host_only() {
    let db = TestDb::new().await;
    let repo = Repo::example();
    let server = started(&repo, &db, &[("GATEHOUSE_PUBLIC_URL", "https://gatehouse.example")]).await;
    crate::helpers::activate(&db, &["carol@acme.example"]).await;
    let mut jar = Vec::new();
    browse("GET", &format!("{}/login", server.base), &mut jar, None).await;
    let csrf = jar
        .iter()
        .find(|(k, _)| k == "__Host-gatehouse_csrf")
        .map(|(_, v)| v.clone())
        .expect("a host-only CSRF cookie");
    let form = format!(
        "csrf={csrf}&step=password&email=carol%40acme.example&password={}",
        crate::login::encode(crate::helpers::PASSWORD)
    );
    let signed_in = browse("POST", &format!("{}/login", server.base), &mut jar, Some(&form)).await;
    assert_eq!(signed_in.status, 200, "{}", signed_in.text);
    let session = jar.iter().find(|(k, _)| k == "__Host-gatehouse_session").map(|(_, v)| v.clone());
    let session = session.unwrap_or_else(|| panic!("a host-only session cookie: {jar:?}"));
    assert!(!jar.iter().any(|(k, _)| k == "gatehouse_session"), "{jar:?}");
    let account = browse("GET", &format!("{}/account", server.base), &mut jar, None).await;
    assert_eq!(account.status, 200, "{}", account.text);
    let mut planted = vec![("gatehouse_session".to_owned(), session)];
    let refused = browse("GET", &format!("{}/account", server.base), &mut planted, None).await;
    assert_eq!(refused.status, 303, "the unprefixed name is not read under https");
}
