//! SC-002, FR-005 for the consoles (issue 23, "every console route in the route × actor matrix"):
//! every console route of the OpenAPI document (tag `console`) × every kind of signed-in browser
//! (a tenant's user, admin and owner, another tenant's owner, a platform operator and auditor) and
//! an anonymous one. A route's allowed roles are declared once below; the test fails when a console
//! route is missing from the table, when an allowed role is refused, and when any other role is
//! not refused with a 403 page and an `api.denied` row naming them, whatever its form says. Anonymous browsers are sent to
//! sign in (a page) or refused by the CSRF layer (a form). Then hostile path parameters and form
//! fields (NUL bytes, invalid UTF-8, 10 KB, a path escape) from a signed-in operator: never a 5xx,
//! always a page.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};

use crate::console::{Jar, console_sign_in, get, post, staff_sign_in, staffed};
use crate::helpers::activate;
use crate::login::{enrol_totp, header};
use crate::operators::person;

const STAFF: [&str; 2] = ["operator", "auditor"];

/// One console route: how to call it, and who may.
struct Route {
    method: &'static str,
    /// The document's path, with its parameters.
    path: &'static str,
    /// `path` with acme's values.
    url: &'static str,
    /// A form that an allowed caller may post without harm to the other cells; `{who}` is the
    /// actor's label.
    form: &'static [(&'static str, &'static str)],
    allowed: &'static [&'static str],
}

const EVERYONE: &[&str] = &["user", "admin", "owner", "globex-owner", "operator", "auditor"];
const TENANT_READERS: &[&str] = &["admin", "owner", "operator", "auditor"];
const TENANT_ADMINS: &[&str] = &["admin", "owner", "operator"];
const OWNERS: &[&str] = &["owner", "operator"];
const OPERATORS: &[&str] = &["operator"];
const AUDIT_READERS: &[&str] = &["owner", "globex-owner", "operator", "auditor"];

const ROUTES: &[Route] = &[
    Route { method: "GET", path: "/", url: "/", form: &[], allowed: EVERYONE },
    Route { method: "GET", path: "/admin", url: "/admin", form: &[], allowed: EVERYONE },
    Route {
        method: "GET",
        path: "/admin/{tenant}/users",
        url: "/admin/acme/users",
        form: &[],
        allowed: TENANT_READERS,
    },
    Route {
        method: "POST",
        path: "/admin/{tenant}/users",
        url: "/admin/acme/users",
        form: &[("email", "matrix-{who}@acme.example"), ("role", "user")],
        allowed: TENANT_ADMINS,
    },
    Route {
        method: "POST",
        path: "/admin/{tenant}",
        url: "/admin/acme",
        form: &[("action", "restore")],
        allowed: OPERATORS,
    },
    Route {
        method: "GET",
        path: "/admin/{tenant}/users/{email}",
        url: "/admin/acme/users/dan%40acme.example",
        form: &[],
        allowed: TENANT_READERS,
    },
    Route {
        method: "POST",
        path: "/admin/{tenant}/users/{email}",
        url: "/admin/acme/users/dan%40acme.example",
        form: &[("action", "unlock")],
        allowed: TENANT_ADMINS,
    },
    Route {
        method: "GET",
        path: "/admin/{tenant}/subscription",
        url: "/admin/acme/subscription",
        form: &[],
        allowed: TENANT_READERS,
    },
    Route {
        method: "POST",
        path: "/admin/{tenant}/subscription",
        url: "/admin/acme/subscription",
        form: &[("plan", "enterprise")],
        allowed: OWNERS,
    },
    Route { method: "GET", path: "/admin/{tenant}/sso", url: "/admin/acme/sso", form: &[], allowed: TENANT_READERS },
    Route {
        method: "POST",
        path: "/admin/{tenant}/sso",
        url: "/admin/acme/sso",
        form: &[("action", "activate")],
        allowed: OWNERS,
    },
    Route { method: "GET", path: "/console", url: "/console", form: &[], allowed: &STAFF },
    Route {
        method: "POST",
        path: "/console",
        url: "/console",
        form: &[
            ("name", "matrix-{who}"),
            ("display_name", "Matrix"),
            ("plan", "free"),
            ("owner", "o@matrix-{who}.example"),
        ],
        allowed: OPERATORS,
    },
    Route {
        method: "GET",
        path: "/console/tenants/{tenant}",
        url: "/console/tenants/acme",
        form: &[],
        allowed: &STAFF,
    },
    Route {
        method: "POST",
        path: "/console/tenants/{tenant}",
        url: "/console/tenants/acme",
        form: &[("action", "approve"), ("override", "00000000-0000-0000-0000-000000000000")],
        allowed: OPERATORS,
    },
    Route { method: "GET", path: "/console/platform", url: "/console/platform", form: &[], allowed: &STAFF },
    Route {
        method: "POST",
        path: "/console/platform",
        url: "/console/platform",
        form: &[("action", "sync")],
        allowed: OPERATORS,
    },
    Route { method: "GET", path: "/console/apps", url: "/console/apps", form: &[], allowed: &STAFF },
    Route { method: "GET", path: "/console/apps/{app}", url: "/console/apps/billing-app", form: &[], allowed: &STAFF },
    Route {
        method: "POST",
        path: "/console/apps/{app}",
        url: "/console/apps/billing-app",
        form: &[("action", "revoke"), ("key", "AAAAAAAAAAAA"), ("confirm", "yes")],
        allowed: OPERATORS,
    },
    Route { method: "GET", path: "/console/audit", url: "/console/audit", form: &[], allowed: AUDIT_READERS },
    Route { method: "GET", path: "/console/audit.csv", url: "/console/audit.csv", form: &[], allowed: AUDIT_READERS },
];

/// Console routes outside the matrix, and why.
const OUTSIDE: &[(&str, &str, &str)] = &[
    ("GET", "/console/login", "the staff sign-in's start: public"),
    ("GET", "/console/login/callback", "the identity provider's return: public (tests/it/console.rs)"),
    ("POST", "/console/logout", "ends the session it is called with (tests/it/console.rs)"),
];

#[tokio::test]
async fn every_console_route_admits_exactly_its_roles_and_audits_every_refusal() {
    // Every console route of the document is in the table or named outside it, and nothing else.
    let document: Value = serde_json::from_str(&gatehouse::api::openapi::document()).expect("the document");
    let mut documented = BTreeSet::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("an item") {
            if operation["tags"].as_array().is_some_and(|tags| tags.contains(&json!("console"))) {
                documented.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    let listed: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|r| (r.method.to_owned(), r.path.to_owned()))
        .chain(OUTSIDE.iter().map(|(m, p, _)| ((*m).to_owned(), (*p).to_owned())))
        .collect();
    assert_eq!(documented, listed, "every console route has its line in ROUTES (or OUTSIDE)");

    let (db, _repo, server, idp) = staffed().await;
    idp.account("ada@ops.example", person("ada@ops.example", json!(["platform-ops"]))).await;
    idp.account("eve@ops.example", person("eve@ops.example", json!(["platform-audit"]))).await;
    activate(&db, &["dan@acme.example", "carol@acme.example", "alice@acme.example", "hank@globex.example"]).await;
    let alice = enrol_totp(&server, "alice@acme.example").await;
    let hank = enrol_totp(&server, "hank@globex.example").await;
    let mut actors: Vec<(&str, &str, Jar)> = vec![
        ("user", "dan@acme.example", console_sign_in(&server, "dan@acme.example", None).await),
        ("admin", "carol@acme.example", console_sign_in(&server, "carol@acme.example", None).await),
        ("owner", "alice@acme.example", console_sign_in(&server, "alice@acme.example", Some(&alice)).await),
        ("globex-owner", "hank@globex.example", console_sign_in(&server, "hank@globex.example", Some(&hank)).await),
        ("operator", "ada@ops.example", staff_sign_in(&server, &idp, "ada@ops.example").await.0),
        ("auditor", "eve@ops.example", staff_sign_in(&server, &idp, "eve@ops.example").await.0),
    ];

    let mut wrong = Vec::new();
    for route in ROUTES {
        // Anonymous: a page sends the browser to sign in; a form without the page's token is refused.
        let anonymous = match route.method {
            "GET" => get(&server, route.url, &mut Vec::new()).await,
            _ => {
                crate::login::browse("POST", &format!("{}{}", server.base, route.url), &mut Vec::new(), Some("")).await
            }
        };
        let to_login =
            anonymous.status == 303 && header(&anonymous, "location").is_some_and(|l| l.starts_with("/login"));
        if !(to_login || (route.method == "POST" && anonymous.status == 400)) {
            wrong.push(format!("anonymous {} {}: {}", route.method, route.url, anonymous.status));
        }
        for (label, email, jar) in &mut actors {
            let denied = format!("SELECT count(*) FROM audit_log WHERE action = 'api.denied' AND actor = '{email}'");
            let before = db.count(&denied).await;
            let answer = match route.method {
                "GET" => get(&server, route.url, jar).await,
                _ => {
                    let form: Vec<(&str, String)> =
                        route.form.iter().map(|(k, v)| (*k, v.replace("{who}", label))).collect();
                    let fields: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
                    post(&server, route.url, jar, &fields).await
                }
            };
            let signed_out =
                answer.status == 303 && header(&answer, "location").is_some_and(|l| l.starts_with("/login"));
            let allowed = route.allowed.contains(label);
            let cell = format!("{label} {} {}", route.method, route.url);
            if allowed && (answer.status == 403 || answer.status == 401 || signed_out || answer.status >= 500) {
                wrong.push(format!("{cell}: allowed, answered {}", answer.status));
            }
            if !allowed {
                if answer.status != 403 {
                    wrong.push(format!("{cell}: not allowed, answered {}", answer.status));
                    continue;
                }
                // Refused before anything of the form is read: a form that makes no sense is
                // refused the same.
                if route.method == "POST" {
                    let nonsense = post(&server, route.url, jar, &[("action", "nonsense")]).await;
                    if nonsense.status != 403 {
                        wrong.push(format!("{cell} with a form that makes no sense: answered {}", nonsense.status));
                    }
                }
                let started = std::time::Instant::now();
                while db.count(&denied).await == before && started.elapsed() < Duration::from_secs(5) {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                if db.count(&denied).await == before {
                    wrong.push(format!("{cell}: refused without an api.denied row"));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{} cells disagree with the table:\n{}", wrong.len(), wrong.join("\n"));

    // Issue 11.6 for the consoles: hostile path parameters and form fields from a signed-in
    // operator never answer 5xx, and every answer is a page (or a redirect to one).
    let (_, _, operator) = actors.iter_mut().find(|(label, _, _)| *label == "operator").expect("the operator");
    let long = "x".repeat(10_000);
    let mut broken = Vec::new();
    for route in ROUTES {
        let mut urls = vec![route.url.to_owned()];
        for value in ["%00", "%FF%FE", long.as_str(), "..%2F..%2Fetc"] {
            for param in ["acme", "dan%40acme.example", "billing-app"] {
                if route.url.contains(param) {
                    urls.push(route.url.replacen(param, value, 1));
                }
            }
        }
        for url in urls {
            let fields: Vec<(&str, String)> = match route.method {
                "GET" => Vec::new(),
                _ => route.form.iter().map(|(k, _)| (*k, format!("\u{0}{long}"))).collect(),
            };
            let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let answer = match route.method {
                "GET" => get(&server, &url, operator).await,
                _ => post(&server, &url, operator, &fields).await,
            };
            let kind = header(&answer, "content-type").unwrap_or_default();
            if answer.status >= 500
                || !(answer.status == 303 || kind.starts_with("text/html") || kind.starts_with("text/csv"))
            {
                broken.push(format!("{} {}…: {} {kind}", route.method, &url[..url.len().min(60)], answer.status));
            }
        }
    }
    assert!(broken.is_empty(), "hostile input broke console routes:\n{}", broken.join("\n"));
}
