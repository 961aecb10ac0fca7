//! Tenant SSO (issue 14.2, FR-AUTH-003, UC-TENANT-SSO): a tenant's provider is set through the API,
//! verified (every problem said in words), tested with one sign-in that changes nothing, and only
//! then activated; then, in Debian's Chromium (tests/browser/sso.mjs), the tenant's user types
//! their email on `/login`, is sent to the tenant's provider, a real certified one (npm
//! `oidc-provider`, tests/idp), signs in there and comes back signed in to Gatehouse.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{OPERATOR, Repo, Served, TestDb, call, request};
use crate::identity::started;
use crate::login::run_script;
use crate::operators::Idp;

const LOOPBACK: (&str, &str) = ("GATEHOUSE_SSO_ALLOW_LOOPBACK_HTTP", "true");

async fn put_sso(server: &Served, tenant: &str, body: Value) -> crate::helpers::HttpResponse {
    call(server, "PUT", &format!("/v1/tenants/{tenant}/sso"), Some(OPERATOR), Some(body)).await
}

async fn post(server: &Served, path: &str) -> crate::helpers::HttpResponse {
    call(server, "POST", path, Some(OPERATOR), None).await
}

/// Draft → verified → tested → active, then a federated sign-in in a real browser: an invited
/// user becomes active, is signed in as a password sign-in would be, and the callback it came back
/// through is refused when replayed.
#[tokio::test]
async fn a_tenant_user_signs_in_through_the_tenants_own_provider_after_verify_and_test() {
    let db = TestDb::new().await;
    let repo = Repo::example();
    let server = started(&repo, &db, &[LOOPBACK]).await;
    let callback = format!("{}/login/sso/callback", server.base);
    let idp = Idp::start_with(&[("IDP_REDIRECT_URIS", callback.as_str())]);
    idp.account("richard", json!({ "email": "richard@hooli.example", "email_verified": true })).await;

    let set = put_sso(
        &server,
        "hooli",
        json!({ "issuer": idp.issuer, "clientId": "gatehouse", "clientSecret": "gatehouse-secret", "domains": ["hooli.example"] }),
    )
    .await;
    assert_eq!((set.status, set.body["state"].as_str()), (200, Some("draft")), "{}", set.text);
    assert_eq!(set.body["redirectUri"], callback.as_str());
    assert!(!set.text.contains("gatehouse-secret"), "the secret is never shown");
    let sealed = db.count("SELECT count(*) FROM tenant_idps WHERE position('gatehouse-secret' in encode(secret_sealed, 'escape')) > 0").await;
    assert_eq!(sealed, 0, "the client secret is sealed at rest");
    // Nothing routes to a draft, and a draft cannot be activated.
    let early = post(&server, "/v1/tenants/hooli/sso/activate").await;
    assert_eq!((early.status, early.body["error"]["code"].as_str()), (409, Some("not_tested")));

    let verified = post(&server, "/v1/tenants/hooli/sso/verify").await;
    assert_eq!(verified.body["passed"], true, "{}", verified.text);
    assert_eq!(verified.body["state"], "verified");
    let still_early = post(&server, "/v1/tenants/hooli/sso/activate").await;
    assert_eq!(still_early.status, 409, "verified but not tested");

    // The owner's test sign-in: the provider signs the person in, Gatehouse says so, changes nothing.
    let test = post(&server, "/v1/tenants/hooli/sso/test").await;
    assert_eq!(test.status, 200, "{}", test.text);
    let url = test.body["url"].as_str().expect("a test URL").to_owned();
    assert!(url.starts_with(&idp.issuer), "{url}");
    let tested = run_script(
        "sso.mjs",
        &[
            ("BASE", server.base.clone()),
            ("START_URL", url),
            ("EMAIL", "richard@hooli.example".into()),
            ("IDP_LOGIN", "richard".into()),
            ("IDP_PASSWORD", "any password".into()),
        ],
    );
    assert!(tested["pageText"].as_str().unwrap_or("").contains("Test sign-in succeeded"), "{tested}");
    assert_eq!(
        db.count("SELECT count(*) FROM users WHERE email = 'richard@hooli.example' AND status = 'invited'").await,
        1
    );
    assert_eq!(
        db.count(
            "SELECT count(*) FROM sessions s JOIN users u ON u.id = s.user_id WHERE u.email = 'richard@hooli.example'"
        )
        .await,
        0
    );

    let active = post(&server, "/v1/tenants/hooli/sso/activate").await;
    assert_eq!((active.status, active.body["state"].as_str()), (200, Some("active")), "{}", active.text);

    // The callback must come back to the browser that started the sign-in (no login CSRF): the
    // provider's answer, carried to another browser, is refused.
    let user = [
        ("BASE", server.base.clone()),
        ("EMAIL", "richard@hooli.example".to_owned()),
        ("IDP_LOGIN", "richard".to_owned()),
        ("IDP_PASSWORD", "any password".to_owned()),
        ("IDP_ISSUER", idp.issuer.clone()),
    ];
    let carried = answer_without_following(&server, &idp, "richard@hooli.example", "richard").await;
    let elsewhere = request("GET", carried, vec![], vec![]).await;
    assert_eq!(elsewhere.status, 400);
    assert!(elsewhere.text.contains("started in another browser"), "{}", elsewhere.text);
    assert_eq!(
        db.count("SELECT count(*) FROM users WHERE email = 'richard@hooli.example' AND status = 'invited'").await,
        1
    );

    let signed_in = run_script("sso.mjs", &user);
    assert_eq!(signed_in["signedIn"], true, "{signed_in}");
    assert_eq!(signed_in["visitedIdp"], true, "{signed_in}");
    assert_eq!(signed_in["problems"], json!([]), "{signed_in}");
    assert_eq!(
        db.count("SELECT count(*) FROM users WHERE email = 'richard@hooli.example' AND status = 'active'").await,
        1
    );
    let fed = "SELECT count(*) FROM sessions s JOIN users u ON u.id = s.user_id WHERE u.email = 'richard@hooli.example' AND s.amr = '{fed}'";
    assert_eq!(db.count(fed).await, 1);
    assert_eq!(
        db.count("SELECT count(*) FROM audit_log WHERE action = 'auth.login' AND actor = 'richard@hooli.example' AND metadata->>'method' = 'sso'").await,
        1
    );

    // The state is single use: the same callback again is refused, on a page.
    let callback_url = signed_in["callbackUrls"][0].as_str().expect("the callback the provider returned to").to_owned();
    let replayed = request("GET", callback_url, vec![], vec![]).await;
    assert_eq!(replayed.status, 400);
    assert!(replayed.text.contains("already used or has expired"), "{}", replayed.text);
    assert_eq!(db.count(fed).await, 1, "no second session");
}

/// Starts a sign-in on the login page and completes it at the provider's own pages over plain
/// HTTP (its development login and consent, as tests/idp/idp.mjs does), without following the
/// provider's answer back to Gatehouse: returns that answer (the callback URL with code and state).
async fn answer_without_following(server: &Served, idp: &Idp, email: &str, login: &str) -> String {
    use crate::login::{browse, csrf, encode, header};
    let mut gatehouse = Vec::new();
    browse("GET", &format!("{}/login", server.base), &mut gatehouse, None).await;
    let form = format!("csrf={}&step=email&email={}", csrf(&gatehouse), encode(email));
    let page = browse("POST", &format!("{}/login", server.base), &mut gatehouse, Some(&form)).await;
    let start = page
        .text
        .split("url=")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a page moving on to the provider");
    let mut next = start.replace("&amp;", "&").replace("&#38;", "&");
    let mut jar = Vec::new();
    for _ in 0..12 {
        if next.starts_with(&format!("{}/login/sso/callback", server.base)) {
            return next;
        }
        let url = if next.starts_with('/') { format!("{}{next}", idp.issuer) } else { next.clone() };
        let mut response = browse("GET", &url, &mut jar, None).await;
        if let Some(prompt) = response.text.split("name=\"prompt\" value=\"").nth(1).and_then(|r| r.split('"').next()) {
            let form = if prompt == "login" {
                format!("prompt=login&login={login}&password=any")
            } else {
                "prompt=consent".to_owned()
            };
            response = browse("POST", &url, &mut jar, Some(&form)).await;
        }
        next = header(&response, "location")
            .unwrap_or_else(|| panic!("the provider stopped at {url}: {}", response.text))
            .to_owned();
    }
    panic!("the provider never answered back to Gatehouse");
}

/// A tenant can make SSO mandatory: its users' passwords are refused on the page and the API.
#[tokio::test]
async fn mandatory_sso_refuses_passwords_and_unknown_emails_are_refused_without_jit() {
    let db = TestDb::new().await;
    let repo = Repo::example();
    let server = started(&repo, &db, &[LOOPBACK]).await;
    let callback = format!("{}/login/sso/callback", server.base);
    let idp = Idp::start_with(&[("IDP_REDIRECT_URIS", callback.as_str())]);
    idp.account("stranger", json!({ "email": "stranger@hooli.example", "email_verified": true })).await;
    let body = json!({ "issuer": idp.issuer, "clientId": "gatehouse", "clientSecret": "gatehouse-secret",
                       "domains": ["hooli.example"], "mandatory": true });
    assert_eq!(put_sso(&server, "hooli", body).await.status, 200);
    assert_eq!(post(&server, "/v1/tenants/hooli/sso/verify").await.body["passed"], true);
    let url = post(&server, "/v1/tenants/hooli/sso/test").await.body["url"].as_str().expect("url").to_owned();
    let env = |extra: Vec<(&'static str, String)>| {
        let mut env = vec![
            ("BASE", server.base.clone()),
            ("EMAIL", "stranger@hooli.example".to_owned()),
            ("IDP_LOGIN", "stranger".to_owned()),
            ("IDP_PASSWORD", "any".to_owned()),
        ];
        env.extend(extra);
        env
    };
    run_script("sso.mjs", &env(vec![("START_URL", url)]));
    assert_eq!(post(&server, "/v1/tenants/hooli/sso/activate").await.status, 200);

    // An email the tenant has no user for, without just-in-time creation: refused, in words.
    let unknown = run_script("sso.mjs", &env(vec![]));
    assert_eq!(unknown["signedIn"], false);
    assert!(unknown["pageText"].as_str().unwrap_or("").contains("has no account"), "{unknown}");
    assert_eq!(db.count("SELECT count(*) FROM users WHERE email = 'stranger@hooli.example'").await, 0);

    // Passwords are refused for the tenant's users, on the JSON API as on the page.
    crate::helpers::activate(&db, &["dinesh@hooli.example", "dan@acme.example"]).await;
    let api = crate::identity::login(&server, "dinesh@hooli.example", crate::helpers::PASSWORD).await;
    assert_eq!((api.status, api.body["error"]["code"].as_str()), (403, Some("sso_required")), "{}", api.text);
    let other_tenant = crate::identity::login(&server, "dan@acme.example", crate::helpers::PASSWORD).await;
    assert_eq!(other_tenant.status, 200, "another tenant's users keep their passwords: {}", other_tenant.text);
}

/// Verify reports each problem in words: an http issuer, an issuer the document does not name,
/// and a JWKS that cannot be fetched; the provider stays a draft.
#[tokio::test]
async fn verify_reports_an_http_issuer_a_wrong_issuer_and_an_unreachable_jwks_in_words() {
    let db = TestDb::new().await;
    let repo = Repo::example();
    repo.edit("tenants/acme.yaml", "domains: [acme.example]", "domains: [Acme.example, acme.example]");
    let server = started(&repo, &db, &[LOOPBACK]).await;
    let idp = Idp::start();

    // A provider declared in Git (acme's `sso` block) is a draft like any other, changed only there;
    // its secret is the environment variable the file names.
    let declared = call(&server, "GET", "/v1/tenants/acme/sso", Some(OPERATOR), None).await;
    assert_eq!(declared.status, 200, "{}", declared.text);
    assert_eq!((declared.body["managedBy"].as_str(), declared.body["state"].as_str()), (Some("git"), Some("draft")));
    assert_eq!(
        (declared.body["issuer"].as_str(), declared.body["domains"].clone()),
        (Some("https://login.acme.example"), json!(["acme.example"]))
    );
    let body =
        json!({ "issuer": "https://x.example", "clientId": "c", "clientSecret": "s", "domains": ["acme.example"] });
    let refused = put_sso(&server, "acme", body).await;
    assert_eq!(
        (refused.status, refused.body["error"]["code"].as_str()),
        (409, Some("managed_by_git")),
        "{}",
        refused.text
    );
    let unreachable = post(&server, "/v1/tenants/acme/sso/verify").await;
    assert_eq!(unreachable.body["passed"], false, "{}", unreachable.text);

    let problems = |issuer: String| {
        let server = &server;
        async move {
            let body =
                json!({ "issuer": issuer, "clientId": "gatehouse", "clientSecret": "s", "domains": ["hooli.example"] });
            assert_eq!(put_sso(server, "hooli", body).await.status, 200);
            let verified = post(server, "/v1/tenants/hooli/sso/verify").await;
            assert_eq!(
                (verified.body["passed"].as_bool(), verified.body["state"].as_str()),
                (Some(false), Some("draft"))
            );
            verified.body["problems"]
                .as_array()
                .expect("problems")
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect::<Vec<_>>()
        }
    };
    let http = problems("http://login.hooli.example".into()).await;
    assert!(http[0].contains("`http://login.hooli.example` uses http: it must use https"), "{http:?}");

    let port = idp.issuer.rsplit(':').next().expect("port");
    let wrong = problems(format!("http://localhost:{port}")).await;
    assert!(
        wrong.iter().any(|p| p.contains(&format!("names the issuer `{}`, not `http://localhost:{port}`", idp.issuer))),
        "{wrong:?}"
    );

    // A provider whose discovery points at keys nobody serves.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let issuer = format!("http://{}", listener.local_addr().expect("addr"));
    let document = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/auth"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": "http://127.0.0.1:1/jwks",
        "response_types_supported": ["code"],
        "id_token_signing_alg_values_supported": ["RS256"],
    });
    let app = axum::Router::new()
        .route("/.well-known/openid-configuration", axum::routing::get(move || async move { axum::Json(document) }));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let unreachable = problems(issuer).await;
    assert!(
        unreachable.iter().any(|p| p.starts_with("cannot fetch the JWKS: GET http://127.0.0.1:1/jwks")),
        "{unreachable:?}"
    );
    let _ = Duration::ZERO;
}
