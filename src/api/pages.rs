//! The two pages a mailed link opens: accept an invitation, reset a password. Each is a form that
//! posts back to itself; the single-use token in the form is also what stops cross-site posts.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;

use super::AppState;
use super::caller::client;
use crate::identity::{AuthError, LinkPurpose};
use crate::mail::templates::escape;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(LinkPurpose::Invitation.path(), get(show_invitation).post(submit_invitation))
        .route(LinkPurpose::PasswordReset.path(), get(show_reset).post(submit_reset))
}

#[derive(Deserialize)]
struct Link {
    #[serde(default)]
    token: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
struct Submitted {
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
    responses((status = 200, description = "The page.", body = String, content_type = "text/html"), (status = 400, description = "The page with the problem.", body = String, content_type = "text/html"), (status = 429, response = super::openapi::Failure)),
)]
async fn show_invitation(link: LinkQuery) -> Response {
    show(LinkPurpose::Invitation, link)
}

#[utoipa::path(
    get,
    path = "/password/reset",
    tag = "public",
    params(("token" = Option<String>, Query, description = "The single-use token of the mailed link.")),
    responses((status = 200, description = "The page.", body = String, content_type = "text/html"), (status = 400, description = "The page with the problem.", body = String, content_type = "text/html"), (status = 429, response = super::openapi::Failure)),
)]
async fn show_reset(link: LinkQuery) -> Response {
    show(LinkPurpose::PasswordReset, link)
}

fn show(purpose: LinkPurpose, link: LinkQuery) -> Response {
    match link {
        Ok(Query(link)) => form(purpose, &link.token, None, StatusCode::OK),
        Err(_) => form(purpose, "", Some(DAMAGED_LINK), StatusCode::BAD_REQUEST),
    }
}

const DAMAGED_LINK: &str = "The link is damaged; open it from the mail again.";

#[utoipa::path(
    post,
    path = "/invitations/accept",
    tag = "public",
    request_body(content = Submitted, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "The page.", body = String, content_type = "text/html"), (status = 400, description = "The page with the problem.", body = String, content_type = "text/html"), (status = 429, response = super::openapi::Failure), (status = 500, description = "An error page.", body = String, content_type = "text/html")),
)]
async fn submit_invitation(State(state): State<AppState>, parts: Parts, body: Bytes) -> Response {
    submit(&state, &parts, &body, LinkPurpose::Invitation).await
}

#[utoipa::path(
    post,
    path = "/password/reset",
    tag = "public",
    request_body(content = Submitted, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "The page.", body = String, content_type = "text/html"), (status = 400, description = "The page with the problem.", body = String, content_type = "text/html"), (status = 429, response = super::openapi::Failure), (status = 500, description = "An error page.", body = String, content_type = "text/html")),
)]
async fn submit_reset(State(state): State<AppState>, parts: Parts, body: Bytes) -> Response {
    submit(&state, &parts, &body, LinkPurpose::PasswordReset).await
}

async fn submit(state: &AppState, parts: &Parts, body: &[u8], purpose: LinkPurpose) -> Response {
    let Ok(submitted) = serde_urlencoded::from_bytes::<Submitted>(body) else {
        return form(
            purpose,
            "",
            Some("The form could not be read; open the link from the mail again."),
            StatusCode::BAD_REQUEST,
        );
    };
    let client = client(parts);
    let identity = &state.identity;
    let outcome = match purpose {
        LinkPurpose::Invitation => identity.accept_invitation(&submitted.token, &submitted.password, &client).await,
        LinkPurpose::PasswordReset => identity.reset_password(&submitted.token, &submitted.password, &client).await,
    };
    match outcome {
        Ok(email) => page(
            "Password set",
            &format!("<p>Your password is set. You can now sign in as <strong>{}</strong>.</p>", escape(&email)),
            StatusCode::OK,
        ),
        // A weak password keeps the link usable: show the form again with the reason.
        Err(AuthError::WeakPassword(reason)) => form(purpose, &submitted.token, Some(&reason), StatusCode::BAD_REQUEST),
        Err(AuthError::Link { message, .. }) => {
            page("Link not valid", &format!("<p>{}</p>", escape(&message)), StatusCode::BAD_REQUEST)
        }
        Err(error) => {
            tracing::error!(%error, "a link page failed");
            page("Something went wrong", "<p>Please try again in a moment.</p>", StatusCode::INTERNAL_SERVER_ERROR)
        }
    }
}

fn form(purpose: LinkPurpose, token: &str, problem: Option<&str>, status: StatusCode) -> Response {
    let (title, button) = match purpose {
        LinkPurpose::Invitation => ("Accept your invitation", "Set password and accept"),
        LinkPurpose::PasswordReset => ("Choose a new password", "Set new password"),
    };
    let problem = problem.map(|p| format!("<p class=\"problem\">{}</p>", escape(p))).unwrap_or_default();
    let body = format!(
        "{problem}<form method=\"post\" action=\"{action}\">\n\
         <input type=\"hidden\" name=\"token\" value=\"{token}\">\n\
         <label>New password (8 to 128 characters)<br>\
         <input type=\"password\" name=\"password\" minlength=\"8\" maxlength=\"128\" autocomplete=\"new-password\" required></label>\n\
         <p><button type=\"submit\">{button}</button></p>\n</form>",
        action = purpose.path(),
        token = escape(token),
    );
    page(title, &body, status)
}

fn page(title: &str, body: &str, status: StatusCode) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title} · Gatehouse</title>\n\
         <meta name=\"viewport\" content=\"width=device-width\">\n\
         <style>body{{font-family:sans-serif;max-width:28rem;margin:3rem auto;line-height:1.5}}\
         .problem{{color:#a00}}input{{width:100%;padding:.4rem}}</style></head>\n\
         <body><h1>{title}</h1>\n{body}\n</body></html>\n",
        title = escape(title)
    );
    let mut response = (status, Html(html)).into_response();
    let headers = response.headers_mut();
    // The token is in the URL: keep it out of caches and Referer headers; no scripts at all.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}
