//! A tenant's single sign-on in its console (issue 23.4, FR-AUTH-003, UC-TENANT-SSO): the owner
//! enters the provider, reads each verification problem in words, verifies, tests and activates
//! it in Chromium against a real certified provider (npm `oidc-provider`, tests/idp); admins read
//! where it stands and are refused its forms; the JSON API's audit rows are left.

use serde_json::json;

use crate::console::{console_sign_in, get, post};
use crate::helpers::{OPERATOR, PASSWORD, Repo, Served, TestDb, activate, call, within};
use crate::identity::started;
use crate::login::enrol_totp;
use crate::operators::Idp;

const LOOPBACK: (&str, &str) = ("GATEHOUSE_SSO_ALLOW_LOOPBACK_HTTP", "true");

/// A tenant `lumon` made through the API, its owner olive signed up with an authenticator.
async fn lumon(server: &Served, db: &TestDb) -> String {
    let body = json!({ "name": "lumon", "displayName": "Lumon Industries", "plan": "free", "owner": { "email": "olive@lumon.example" } });
    assert_eq!(call(server, "POST", "/v1/tenants", Some(OPERATOR), Some(body)).await.status, 201);
    activate(db, &["olive@lumon.example"]).await;
    enrol_totp(server, "olive@lumon.example").await
}

/// FR-AUTH-003 in the browser: enter, verify with each problem in words, test sign-in, activate;
/// every screen passes axe (WCAG 2.1 A and AA); then the login page sends the tenant's domain to
/// its provider.
#[tokio::test]
async fn an_owner_sets_up_sso_in_the_console_in_chromium() {
    sets_up_sso_in_chromium("en").await;
}

/// NFR-017: the same set-up with every step in German.
#[tokio::test]
async fn an_owner_sets_up_sso_in_german() {
    sets_up_sso_in_chromium("de").await;
}

async fn sets_up_sso_in_chromium(lang: &'static str) {
    let db = TestDb::new().await;
    let repo = Repo::example();
    let server = started(&repo, &db, &[LOOPBACK]).await;
    let secret = lumon(&server, &db).await;
    let callback = format!("{}/login/sso/callback", server.base);
    let idp = Idp::start_with(&[("IDP_REDIRECT_URIS", callback.as_str())]);
    idp.account("irving", json!({ "email": "irving@lumon.example", "email_verified": true })).await;
    let shots = crate::helpers::project_dir().join("target/screenshots");
    std::fs::create_dir_all(&shots).expect("target/screenshots");
    let (base, issuer) = (server.base.clone(), idp.issuer.clone());
    let result = tokio::task::spawn_blocking(move || {
        crate::login::run_script(
            "console_sso.mjs",
            &[
                ("BASE", base),
                ("EMAIL", "olive@lumon.example".into()),
                ("PASSWORD", PASSWORD.into()),
                ("TOTP_SECRET", secret),
                ("TOTP_STEP", "1".into()),
                ("TENANT", "lumon".into()),
                // Nothing listens on port 9: the discovery document cannot be read.
                ("BAD_ISSUER", "http://127.0.0.1:9/".into()),
                ("ISSUER", issuer),
                ("DOMAIN", "lumon.example".into()),
                ("IDP_LOGIN", "irving".into()),
                ("SCREENSHOTS", shots.display().to_string()),
                ("LANG_TAG", lang.into()),
            ],
        )
    })
    .await
    .expect("the script");
    assert_eq!(result["problems"], json!([]), "{result}");
    assert_eq!(result["saved"], true, "{result}");
    let said = result["verifyProblems"].as_array().expect("the verification's problems");
    let expected_problem = if lang == "de" {
        "Das Discovery-Dokument lässt sich nicht lesen"
    } else {
        "cannot read the discovery document"
    };
    assert!(
        said.iter().any(|p| p.as_str().is_some_and(|p| p.contains(expected_problem))),
        "each problem in words: {result}"
    );
    assert_eq!(
        (&result["verified"], &result["tested"], &result["active"]),
        (&json!(true), &json!(true), &json!(true)),
        "{result}"
    );
    assert_eq!(result["lang"], lang, "{result}");
    if lang == "en" {
        assert_eq!(result["germanTitle"], "Single Sign-on", "{result}");
    }
    let screens = result["axe"].as_object().expect("axe results");
    assert!(screens.len() >= 4, "{result}");
    for (screen, violations) in screens {
        assert_eq!(violations, &json!([]), "axe (WCAG 2.1 A and AA) on {screen}");
    }

    assert_eq!(db.count("SELECT count(*) FROM tenant_idps WHERE state = 'active' AND managed_by = 'api'").await, 1);
    for (action, times) in
        [("tenant.sso.set", 2), ("tenant.sso.verify", 2), ("tenant.sso.activate", 1), ("sso.test", 1)]
    {
        let audited = format!(
            "SELECT count(*) FROM audit_log WHERE action = '{action}' AND actor = 'olive@lumon.example' AND tenant = 'lumon'"
        );
        assert_eq!(db.count(&audited).await, times, "{action} audited as the owner's");
    }
    let sealed =
        "SELECT count(*) FROM tenant_idps WHERE position('gatehouse-secret' in encode(secret_sealed, 'escape')) > 0";
    assert_eq!(db.count(sealed).await, 0, "the secret typed in the console is sealed at rest");
    let kept = "SELECT count(*) FROM tenant_idps WHERE secret_sealed IS NOT NULL AND secret_key_id IS NOT NULL";
    assert_eq!(db.count(kept).await, 1, "and it is stored, sealed");

    // Active: the login page sends lumon's people to the provider.
    let mut jar = Vec::new();
    let login = format!("{}/login", server.base);
    crate::login::browse("GET", &login, &mut jar, None).await;
    let form = format!("csrf={}&step=email&email=irving%40lumon.example", crate::login::csrf(&jar));
    let routed = crate::login::browse("POST", &login, &mut jar, Some(&form)).await;
    assert!(routed.text.contains(&format!("url={}", idp.issuer)), "{}", routed.text);
}

/// Admins read where single sign-on stands but its forms are the owners': the page says so, a
/// post is refused with a page and audited; a domain another tenant signs in and a test before a
/// verification are refused in words, the typed values kept.
#[tokio::test]
async fn admins_read_sso_and_only_owners_change_it() {
    let db = TestDb::new().await;
    let repo = Repo::example();
    let server = started(&repo, &db, &[LOOPBACK]).await;
    let secret = lumon(&server, &db).await;
    let mut owner = console_sign_in(&server, "olive@lumon.example", Some(&secret)).await;

    // A domain another tenant already signs in (the example's acme users) is refused in words.
    let fields = [
        ("action", "save"),
        ("issuer", "https://login.lumon.example/"),
        ("client_id", "gatehouse"),
        ("client_secret", "s3cret"),
        ("domains", "acme.example"),
    ];
    let taken = post(&server, "/admin/lumon/sso", &mut owner, &fields).await;
    assert_eq!(taken.status, 409, "{}", taken.text);
    assert!(taken.text.contains("Another organisation already signs in"), "{}", taken.text);
    assert!(taken.text.contains("value=\"https://login.lumon.example/\""), "the values are kept: {}", taken.text);
    assert!(!taken.text.contains("s3cret"), "a secret is never echoed");
    // Testing before verifying: the rule in words.
    let fields = [
        ("action", "save"),
        ("issuer", "https://login.lumon.example/"),
        ("client_id", "gatehouse"),
        ("client_secret", "s3cret"),
        ("domains", "lumon.example"),
    ];
    assert_eq!(post(&server, "/admin/lumon/sso", &mut owner, &fields).await.status, 303);
    let early = post(&server, "/admin/lumon/sso", &mut owner, &[("action", "test")]).await;
    assert_eq!(early.status, 409, "{}", early.text);
    assert!(early.text.contains("Verify the provider before testing it"), "{}", early.text);

    let invite = [("email", "mark@lumon.example"), ("role", "admin")];
    assert_eq!(post(&server, "/admin/lumon/users", &mut owner, &invite).await.status, 303);
    activate(&db, &["mark@lumon.example"]).await;
    let mut admin = console_sign_in(&server, "mark@lumon.example", None).await;
    let page = get(&server, "/admin/lumon/sso", &mut admin).await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(page.text.contains("owners set up single sign-on"), "{}", page.text);
    assert!(
        page.text.contains("https://login.lumon.example/") && !page.text.contains("name=\"issuer\""),
        "{}",
        page.text
    );
    let refused = post(&server, "/admin/lumon/sso", &mut admin, &[("action", "remove"), ("confirm", "yes")]).await;
    assert_eq!(refused.status, 403, "{}", refused.text);
    let denied = "SELECT count(*) FROM audit_log WHERE action = 'api.denied' AND actor = 'mark@lumon.example'";
    within(std::time::Duration::from_secs(5), "the refusal is audited", || async { db.count(denied).await >= 1 }).await;
    assert_eq!(db.count("SELECT count(*) FROM tenant_idps WHERE managed_by = 'api'").await, 1, "nothing removed");

    // A provider declared in Git: its settings are read-only here, named with their file; its
    // owners still verify, test and activate it.
    activate(&db, &["alice@acme.example"]).await;
    let alice = enrol_totp(&server, "alice@acme.example").await;
    let mut git_owner = console_sign_in(&server, "alice@acme.example", Some(&alice)).await;
    let declared = get(&server, "/admin/acme/sso", &mut git_owner).await;
    assert_eq!(declared.status, 200, "{}", declared.text);
    assert!(declared.text.contains("declared in Git (tenants/acme.yaml:12)"), "{}", declared.text);
    assert!(
        declared.text.contains("Verify the provider") && !declared.text.contains("name=\"issuer\""),
        "{}",
        declared.text
    );
    let save =
        [("action", "save"), ("issuer", "https://evil.example/"), ("client_id", "x"), ("domains", "acme.example")];
    let refused = post(&server, "/admin/acme/sso", &mut git_owner, &save).await;
    assert_eq!(refused.status, 409, "{}", refused.text);
    assert_eq!(db.count("SELECT count(*) FROM tenant_idps WHERE issuer = 'https://login.acme.example'").await, 1);
}
