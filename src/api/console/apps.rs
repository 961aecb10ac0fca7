//! Applications and their API keys in the operator console (issue 23.3, FR-SYS-001..003): every
//! application with who manages it; per application its keys (never their secrets), a form that
//! issues a key whose secret is shown once on the page that answers it (never stored, never
//! cached), and revocation. Operators act; auditors read. The JSON API's functions decide and audit.

use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::tenant::see_other;
use super::{Signed, managed, when};
use crate::api::apps::{self, KeyRequest};
use crate::api::web::templates::{self, Body};
use crate::api::web::{Page, Tr};
use crate::api::{ApiError, AppState};
use crate::authz::{Action, Resource};
use crate::store::apps::KeyRecord;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(apps_page)).routes(routes!(app_page, app_form))
}

pub(super) const APPS_PATH: &str = "/console/apps";

fn app_path(app: &str) -> String {
    format!("{APPS_PATH}/{}", super::encode(app))
}

/// Every application.
#[utoipa::path(get, operation_id = "console_apps", path = "/console/apps", tag = "console",
    responses(
        (status = 200, description = "The page.", body = String, content_type = "text/html"),
        (status = 303, description = "Not signed in: to the login page."),
        (status = 403, description = "A page: not platform staff (audited).", body = String, content_type = "text/html"),
    ))]
async fn apps_page(signed: Signed) -> Response {
    let tr = signed.browser.tr;
    let title = tr.t("console-apps");
    let found = match apps::applications(&signed.state, &signed.caller).await {
        Ok(found) => found,
        Err(error) => return signed.refused(&title, &error),
    };
    let rows = found
        .iter()
        .map(|a| templates::AppRow {
            href: app_path(&a.name),
            name: a.name.clone(),
            display_name: a.display_name.clone(),
            owner: a.owner.clone(),
            status: app_status(tr, a.status),
            scopes: a.scopes.join(", "),
            managed_by: managed(tr, &a.managed_by, a.source_file.as_deref()),
        })
        .collect::<Vec<_>>();
    let body = templates::Apps { t: tr, rows: &rows };
    signed.render(Page::new(&title, body.html()), APPS_PATH)
}

#[derive(Deserialize, Default)]
struct AppQuery {
    /// The key just revoked.
    revoked: Option<String>,
}

/// One application: its keys, the form that issues one, revocation.
#[utoipa::path(get, operation_id = "console_app", path = "/console/apps/{app}", tag = "console",
    params(("app" = String, Path, description = "The application's name.")),
    responses(
        (status = 200, description = "The page.", body = String, content_type = "text/html"),
        (status = 303, description = "Not signed in: to the login page."),
        (status = 403, description = "A page: not platform staff (audited).", body = String, content_type = "text/html"),
        (status = 404, description = "A page: no such application.", body = String, content_type = "text/html"),
    ))]
async fn app_page(
    signed: Signed,
    Path(app): Path<String>,
    query: Result<Query<AppQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let revoked = query.ok().and_then(|Query(q)| q.revoked);
    application(&signed, &app, Shown { revoked, ..Shown::default() }).await
}

/// What the page shows besides the application.
#[derive(Default)]
struct Shown {
    /// The key just revoked, said only if it is.
    revoked: Option<String>,
    /// A key just issued: its whole value, shown this once.
    issued: Option<(String, String)>,
    problem: Option<(String, StatusCode)>,
}

async fn application(signed: &Signed, app: &str, shown: Shown) -> Response {
    let tr = signed.browser.tr;
    let (record, keys) = match apps::app_keys(&signed.state, &signed.caller, app).await {
        Ok(found) => found,
        Err(error) => return signed.refused(&tr.t("console-apps"), &error),
    };
    let rows = keys.iter().map(|k| key_row(tr, k)).collect::<Vec<_>>();
    let (problem, status) = shown.problem.map_or((None, StatusCode::OK), |(p, s)| (Some(p), s));
    let body = templates::App {
        t: tr,
        csrf: signed.browser.csrf(),
        action: &app_path(&record.name),
        done: shown
            .revoked
            .filter(|id| keys.iter().any(|k| &k.id == id && k.revoked_at.is_some()))
            .map(|id| tr.arg("app-key-revoked", "key", &id)),
        problem: problem.as_deref(),
        issued: shown.issued,
        display_name: &record.display_name,
        owner: &record.owner,
        status: &app_status(tr, record.status),
        scopes: &record.scopes,
        managed_by: &managed(tr, &record.managed_by, record.source_file.as_deref()),
        keys: &rows,
        may_manage: signed.caller.may(Action::ManageKeys, &Resource::application(&record.name)),
    };
    // Like every page, never kept by a cache (`web::secure`): this one may carry a secret.
    let page = Page::new(&tr.arg("app-title", "app", &record.name), body.html()).status(status);
    signed.render(page, APPS_PATH)
}

fn app_status(tr: Tr, status: crate::model::AppStatus) -> String {
    match status {
        crate::model::AppStatus::Active => tr.t("app-status-active"),
        crate::model::AppStatus::Disabled => tr.t("app-status-disabled"),
    }
}

fn key_row(tr: Tr, key: &KeyRecord) -> templates::KeyRow {
    let state = match (key.revoked_at, key.expires_at) {
        (Some(at), _) => tr.arg("app-key-revoked-at", "at", &when(Some(at))),
        (None, Some(at)) if at <= chrono::Utc::now() => tr.arg("app-key-expired-at", "at", &when(Some(at))),
        (None, Some(at)) => tr.arg("app-key-expires-at", "at", &when(Some(at))),
        (None, None) => tr.t("app-key-active"),
    };
    templates::KeyRow {
        id: key.id.clone(),
        name: key.name.clone().unwrap_or_default(),
        scopes: key.scopes.join(", "),
        created: format!("{} · {}", when(Some(key.created_at)), key.created_by),
        last_used: when(key.last_used_at),
        state,
        revocable: key.revoked_at.is_none(),
    }
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
struct AppForm {
    /// The browser's CSRF token (checked by the pages' layer).
    #[serde(default, rename = "csrf")]
    _csrf: String,
    /// `issue` or `revoke`.
    #[serde(default)]
    action: String,
    /// The new key's name.
    #[serde(default)]
    name: String,
    /// Such as `90d`; empty: no expiry.
    #[serde(default)]
    expires_in: String,
    /// The key to revoke.
    #[serde(default)]
    key: String,
    /// `yes` to revoke.
    #[serde(default)]
    confirm: String,
}

/// Issues a key (its secret on the page that answers, once) or revokes one.
#[utoipa::path(post, operation_id = "console_app_action", path = "/console/apps/{app}", tag = "console",
    params(("app" = String, Path, description = "The application's name.")),
    request_body(content = AppForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 201, description = "Issued: the page with the key's secret, shown this once (never cached).", body = String, content_type = "text/html"),
        (status = 303, description = "Revoked: back to the page, which says so."),
        (status = 400, description = "The page with the problem.", body = String, content_type = "text/html"),
        (status = 403, description = "A page: only operators manage keys (audited).", body = String, content_type = "text/html"),
    ))]
async fn app_form(signed: Signed, Path(name): Path<String>, body: Bytes) -> Response {
    let (state, caller, tr) = (&signed.state, &signed.caller, signed.browser.tr);
    let decided = caller.authorize(state, Action::ManageKeys, &Resource::application(&name));
    if let Some(page) = signed.refusal(&tr.t("console-apps"), decided) {
        return page;
    }
    let form: AppForm = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let outcome = match form.action.as_str() {
        "issue" => {
            let asked = KeyRequest {
                name: Some(form.name.trim()).filter(|n| !n.is_empty()),
                expires_in: Some(form.expires_in.trim()).filter(|e| !e.is_empty()),
                ..KeyRequest::default()
            };
            match apps::issue_key(state, caller, &name, &asked).await {
                Ok((record, secret)) => {
                    let issued = Some((record.id, secret));
                    let page = application(&signed, &name, Shown { issued, ..Shown::default() }).await;
                    return with_status(page, StatusCode::CREATED);
                }
                Err(error) => Err(error),
            }
        }
        "revoke" if form.confirm == "yes" => apps::revoke(state, caller, &name, &form.key).await.map(|_| ()),
        "revoke" => Err(ApiError::BadRequest(tr.t("app-revoke-unconfirmed"))),
        other => Err(ApiError::BadRequest(format!("no action `{}` on an application", crate::model::shown(other)))),
    };
    match outcome {
        Ok(()) => see_other(&format!("{}?revoked={}", app_path(&name), super::encode(&form.key))),
        Err(error @ (ApiError::Forbidden { .. } | ApiError::Unauthorized(_) | ApiError::NotFound(_))) => {
            signed.refused(&tr.t("console-apps"), &error)
        }
        Err(error) => {
            let (problem, status, refused) = signed.problem_of(&error);
            super::marked(
                application(&signed, &name, Shown { problem: Some((problem, status)), ..Shown::default() }).await,
                refused,
            )
        }
    }
}

fn with_status(mut response: Response, status: StatusCode) -> Response {
    if response.status() == StatusCode::OK {
        *response.status_mut() = status;
    }
    response
}
