//! The pages a mailed link opens (accept an invitation, reset a password) and the page that mails a
//! reset link. Each is a form that posts back to itself, through the pages' CSRF layer.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::Response;
use serde::Deserialize;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::AppState;
use super::caller::client;
use super::web::templates::{self, Body};
use super::web::{Browser, Page};
use crate::identity::{AuthError, LinkPurpose};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(show_invitation, submit_invitation))
        .routes(routes!(show_reset, submit_reset))
        .routes(routes!(show_forgot, submit_forgot))
}

#[utoipa::path(
    get,
    path = "/password/forgot",
    tag = "public",
    responses((status = 200, description = "The page: an email field.", body = String, content_type = "text/html"), (status = 429, description = "A page: too many attempts from this address; `Retry-After`.", body = String, content_type = "text/html")),
)]
async fn show_forgot(browser: Browser) -> Response {
    forgot_form(&browser, "", None, StatusCode::OK)
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
struct Forgotten {
    /// The browser's CSRF token (checked by the pages' layer).
    #[serde(default, rename = "csrf")]
    _csrf: String,
    #[serde(default)]
    email: String,
}

/// Mails a reset link to an account that may have one; the answer is the same for every email.
#[utoipa::path(
    post,
    path = "/password/forgot",
    tag = "public",
    request_body(content = Forgotten, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "The page: a link is on its way if the account exists.", body = String, content_type = "text/html"), (status = 400, description = "The page with the problem.", body = String, content_type = "text/html"), (status = 429, description = "A page: too many attempts from this address; `Retry-After`.", body = String, content_type = "text/html"), (status = 500, description = "An error page.", body = String, content_type = "text/html")),
)]
async fn submit_forgot(State(state): State<AppState>, browser: Browser, parts: Parts, body: Bytes) -> Response {
    let form: Forgotten = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let email = form.email.trim();
    let tr = browser.tr;
    if crate::model::Email::parse(email).is_err() {
        return forgot_form(&browser, email, Some(&tr.t("problem-email-invalid")), StatusCode::BAD_REQUEST);
    }
    match state.identity.forgot_password(email, Some(tr.lang), &client(&parts)).await {
        Ok(()) => {
            let text = tr.arg("forgot-sent", "email", email);
            let body =
                templates::Message { alert: None, text: Some(text), link: Some(("/login", tr.t("back-to-sign-in"))) };
            browser.render(Page::new(&tr.t("forgot-sent-title"), body.html()))
        }
        Err(error) => {
            tracing::error!(%error, "the forgotten-password page failed");
            browser.failed()
        }
    }
}

fn forgot_form(browser: &Browser, email: &str, problem: Option<&str>, status: StatusCode) -> Response {
    let body = templates::Forgot { t: browser.tr, csrf: browser.csrf(), problem, email };
    browser.render(Page::new(&browser.tr.t("forgot-title"), body.html()).status(status))
}

#[derive(Deserialize)]
struct Link {
    #[serde(default)]
    token: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
struct Submitted {
    /// The browser's CSRF token (checked by the pages' layer).
    #[serde(default, rename = "csrf")]
    _csrf: String,
    #[serde(default)]
    token: String,
    #[serde(default)]
    password: String,
}

/// A link's query as the page reads it; one that does not parse (a damaged or edited link) shows
/// the form with the problem, as a page rather than a JSON error.
type LinkQuery = Result<Query<Link>, axum::extract::rejection::QueryRejection>;

#[utoipa::path(
    get,
    path = "/invitations/accept",
    tag = "public",
    params(("token" = Option<String>, Query, description = "The single-use token of the mailed link.")),
    responses((status = 200, description = "The page.", body = String, content_type = "text/html"), (status = 400, description = "The page with the problem.", body = String, content_type = "text/html"), (status = 429, description = "A page: too many attempts from this address; `Retry-After`.", body = String, content_type = "text/html")),
)]
async fn show_invitation(browser: Browser, link: LinkQuery) -> Response {
    show(&browser, LinkPurpose::Invitation, link)
}

#[utoipa::path(
    get,
    path = "/password/reset",
    tag = "public",
    params(("token" = Option<String>, Query, description = "The single-use token of the mailed link.")),
    responses((status = 200, description = "The page.", body = String, content_type = "text/html"), (status = 400, description = "The page with the problem.", body = String, content_type = "text/html"), (status = 429, description = "A page: too many attempts from this address; `Retry-After`.", body = String, content_type = "text/html")),
)]
async fn show_reset(browser: Browser, link: LinkQuery) -> Response {
    show(&browser, LinkPurpose::PasswordReset, link)
}

fn show(browser: &Browser, purpose: LinkPurpose, link: LinkQuery) -> Response {
    match link {
        Ok(Query(link)) => form(browser, purpose, &link.token, None, StatusCode::OK),
        Err(_) => form(browser, purpose, "", Some(&browser.tr.t("link-damaged")), StatusCode::BAD_REQUEST),
    }
}

#[utoipa::path(
    post,
    path = "/invitations/accept",
    tag = "public",
    request_body(content = Submitted, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "The page.", body = String, content_type = "text/html"), (status = 400, description = "The page with the problem.", body = String, content_type = "text/html"), (status = 429, description = "A page: too many attempts from this address; `Retry-After`.", body = String, content_type = "text/html"), (status = 500, description = "An error page.", body = String, content_type = "text/html")),
)]
async fn submit_invitation(State(state): State<AppState>, browser: Browser, parts: Parts, body: Bytes) -> Response {
    submit(&state, &browser, &parts, &body, LinkPurpose::Invitation).await
}

#[utoipa::path(
    post,
    path = "/password/reset",
    tag = "public",
    request_body(content = Submitted, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "The page.", body = String, content_type = "text/html"), (status = 400, description = "The page with the problem.", body = String, content_type = "text/html"), (status = 429, description = "A page: too many attempts from this address; `Retry-After`.", body = String, content_type = "text/html"), (status = 500, description = "An error page.", body = String, content_type = "text/html")),
)]
async fn submit_reset(State(state): State<AppState>, browser: Browser, parts: Parts, body: Bytes) -> Response {
    submit(&state, &browser, &parts, &body, LinkPurpose::PasswordReset).await
}

async fn submit(state: &AppState, browser: &Browser, parts: &Parts, body: &[u8], purpose: LinkPurpose) -> Response {
    let tr = browser.tr;
    let Ok(submitted) = serde_urlencoded::from_bytes::<Submitted>(body) else {
        return form(browser, purpose, "", Some(&tr.t("link-unreadable")), StatusCode::BAD_REQUEST);
    };
    let client = client(parts);
    let identity = &state.identity;
    let outcome = match purpose {
        LinkPurpose::Invitation => identity.accept_invitation(&submitted.token, &submitted.password, &client).await,
        LinkPurpose::PasswordReset => identity.reset_password(&submitted.token, &submitted.password, &client).await,
    };
    match outcome {
        Ok(email) => {
            let text = tr.arg("link-done", "email", &email);
            let body =
                templates::Message { alert: None, text: Some(text), link: Some(("/login", tr.t("login-sign-in"))) };
            browser.render(Page::new(&tr.t("link-done-title"), body.html()))
        }
        // A weak password keeps the link usable: show the form again with the reason.
        Err(AuthError::WeakPassword(reason)) => {
            form(browser, purpose, &submitted.token, Some(&reason), StatusCode::BAD_REQUEST)
        }
        Err(AuthError::Link { message, .. }) => {
            browser.render(browser.problem_page(&tr.t("link-invalid-title"), &message))
        }
        Err(error) => {
            tracing::error!(%error, "a link page failed");
            browser.failed()
        }
    }
}

fn form(browser: &Browser, purpose: LinkPurpose, token: &str, problem: Option<&str>, status: StatusCode) -> Response {
    let tr = browser.tr;
    let (title, button) = match purpose {
        LinkPurpose::Invitation => (tr.t("invitation-title"), tr.t("invitation-button")),
        LinkPurpose::PasswordReset => (tr.t("reset-title"), tr.t("reset-button")),
    };
    let body =
        templates::LinkForm { t: tr, csrf: browser.csrf(), problem, action: purpose.path(), token, button: &button };
    browser.render(Page::new(&title, body.html()).status(status))
}
