//! Platform staff's sign-in in a browser (issue 23.2): `/console/login` sends the browser to the
//! operators' identity provider, its answer comes back to `/console/login/callback`, and a platform
//! session's cookie follows; `/console/logout` ends it. The flow is `crate::staff`'s.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{STAFF_COOKIE, STAFF_LOGIN_COOKIE};
use crate::api::AppState;
use crate::api::caller::client;
use crate::api::web::{self, Browser};
use crate::authz::Actor;
use crate::staff::StaffError;
use crate::store::staff::StaffSession;

/// Starting and completing a sign-in (navigations from and to the identity provider).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(start)).routes(routes!(callback))
}

/// Signing out: a form post, through the pages' CSRF layer.
pub fn sign_out_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(sign_out))
}

/// The platform session of the browser, with its actor, if its cookie names a live one.
pub(super) async fn browser_session(state: &AppState, parts: &Parts) -> Option<(StaffSession, Actor)> {
    let staff = state.staff.as_ref()?;
    let token = web::cookies::read(&parts.headers, &web::cookies::host_only(STAFF_COOKIE, web::is_https(state)))?;
    match staff.actor(&token).await {
        Ok(found) => found,
        Err(error) => {
            tracing::warn!(%error, "cannot read a platform session");
            None
        }
    }
}

/// Ends the browser's platform session, if it has one (audited).
pub(in crate::api) async fn end_staff_session(state: &AppState, parts: &Parts) {
    if let (Some(staff), Some((session, actor))) = (&state.staff, browser_session(state, parts).await)
        && let Err(error) = staff.end(&session, &actor, &client(parts)).await
    {
        tracing::warn!(%error, "cannot end a platform session");
    }
}

#[derive(Deserialize, Default)]
struct Start {
    return_to: Option<String>,
}

/// Operators and auditors: on to the identity provider to sign in.
#[utoipa::path(get, operation_id = "staff_sign_in", path = "/console/login", tag = "console",
    params(("return_to" = Option<String>, Query, description = "A path on this server to go to once signed in.")),
    responses(
        (status = 200, description = "A page that moves on to the identity provider.", body = String, content_type = "text/html"),
        (status = 404, description = "A page: no identity provider (or no client secret) is configured for platform staff.", body = String, content_type = "text/html"),
        (status = 502, description = "A page: the identity provider cannot be reached.", body = String, content_type = "text/html"),
    ))]
async fn start(
    State(state): State<AppState>,
    browser: Browser,
    query: Result<Query<Start>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let tr = browser.tr;
    let Some(staff) = &state.staff else {
        let page = browser.problem_page(&tr.t("staff-title"), &tr.t("staff-not-configured"));
        return browser.render(page.status(StatusCode::NOT_FOUND));
    };
    let return_to = query.ok().and_then(|Query(q)| q.return_to);
    let return_to = crate::api::login::safe_return(return_to.as_deref().or(Some("/console")));
    match staff.start(&return_to).await {
        Ok((url, binding)) => {
            let page = browser.continue_to(&tr.t("staff-continuing"), &url);
            let cookie = web::cookies::set(STAFF_LOGIN_COOKIE, &binding, browser.secure, Some(600));
            browser.render(page.cookie(cookie))
        }
        Err(error) => {
            tracing::warn!(%error, "a staff sign-in could not start");
            let page = browser.problem_page(&tr.t("staff-title"), &tr.t("staff-unreachable"));
            browser.render(page.status(StatusCode::BAD_GATEWAY))
        }
    }
}

#[derive(Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// Where the identity provider sends the browser back: a platform session, or a page saying why not.
#[utoipa::path(get, operation_id = "staff_callback", path = "/console/login/callback", tag = "console", params(Callback),
    responses(
        (status = 200, description = "Signed in: a page that moves on to the console.", body = String, content_type = "text/html"),
        (status = 400, description = "A page saying why the sign-in did not complete (audited).", body = String, content_type = "text/html"),
        (status = 403, description = "A page: the person's groups hold no platform role (audited).", body = String, content_type = "text/html"),
    ))]
async fn callback(
    State(state): State<AppState>,
    browser: Browser,
    query: Result<Query<Callback>, axum::extract::rejection::QueryRejection>,
    parts: Parts,
) -> Response {
    let tr = browser.tr;
    let Some(staff) = &state.staff else {
        let page = browser.problem_page(&tr.t("staff-title"), &tr.t("staff-not-configured"));
        return browser.render(page.status(StatusCode::NOT_FOUND));
    };
    let query = query.map(|Query(q)| q).unwrap_or_default();
    let outcome = match (&query.error, &query.code, &query.state) {
        (Some(error), _, _) => Err(StaffError::Provider(query.error_description.clone().unwrap_or(error.clone()))),
        (None, Some(code), Some(sso_state)) => {
            let binding = web::cookies::read(&parts.headers, STAFF_LOGIN_COOKIE);
            staff.finish(sso_state, code, binding.as_deref(), &client(&parts)).await
        }
        _ => Err(StaffError::UnknownState),
    };
    match outcome {
        Ok(signed_in) => {
            // A browser holds one session: this one replaces an earlier platform session and a
            // tenant user's (a shared browser does not open the wrong console).
            end_staff_session(&state, &parts).await;
            crate::api::login::end_browser_session(&state, &parts).await;
            let page = browser
                .continue_to(&tr.t("login-signed-in-title"), &signed_in.return_to)
                .cookie(web::cookies::set(
                    &web::cookies::host_only(STAFF_COOKIE, browser.secure),
                    &signed_in.token,
                    browser.secure,
                    None,
                ))
                .cookie(web::cookies::clear(STAFF_LOGIN_COOKIE, browser.secure))
                .cookie(web::cookies::clear(
                    &web::cookies::host_only(web::SESSION_COOKIE, browser.secure),
                    browser.secure,
                ));
            browser.render(page)
        }
        Err(StaffError::Store(error)) => {
            tracing::error!(%error, "a staff sign-in failed");
            browser.failed()
        }
        Err(error) => {
            tracing::warn!(%error, "a staff sign-in did not complete");
            let (problem, status) = match &error {
                StaffError::Refused(refusal) if refusal.kind() == crate::operators::RefusalKind::Unbound => {
                    (tr.t("staff-no-role"), StatusCode::FORBIDDEN)
                }
                StaffError::UnknownState => (tr.t("staff-expired"), StatusCode::BAD_REQUEST),
                StaffError::OtherBrowser => (tr.t("staff-other-browser"), StatusCode::BAD_REQUEST),
                _ => (tr.t("staff-refused"), StatusCode::BAD_REQUEST),
            };
            if !matches!(error, StaffError::Refused(_)) {
                state.denials.refused(crate::denials::Refusal {
                    action: "operator.login",
                    ip: client(&parts).ip,
                    method: Some("GET".into()),
                    route: "/console/login/callback".into(),
                    resource: "/console/login/callback".into(),
                    tenant: None,
                    reason: error.to_string(),
                    key_id: None,
                    extra: serde_json::Map::new(),
                });
            }
            let body = web::templates::Message {
                alert: Some(problem),
                text: None,
                link: Some(("/console/login", tr.t("staff-again"))),
            };
            use web::templates::Body;
            browser.render(web::Page::new(&tr.t("staff-title"), body.html()).status(status))
        }
    }
}

/// Ends the browser's platform session.
#[utoipa::path(post, operation_id = "staff_sign_out", path = "/console/logout", tag = "console",
    request_body(content = crate::api::login::LoginForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "To the login page."),
        (status = 400, description = "A page: the form has no CSRF token of this browser; nothing was done.", body = String, content_type = "text/html"),
    ))]
async fn sign_out(State(state): State<AppState>, parts: Parts) -> Response {
    end_staff_session(&state, &parts).await;
    let mut response = Redirect::to("/login?signed_out=1").into_response();
    if let Ok(value) = axum::http::HeaderValue::from_str(&web::cookies::clear(
        &web::cookies::host_only(STAFF_COOKIE, web::is_https(&state)),
        web::is_https(&state),
    )) {
        response.headers_mut().append(axum::http::header::SET_COOKIE, value);
    }
    response
}
