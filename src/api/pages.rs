//! The two pages a mailed link opens: accept an invitation, reset a password. Each is a form that
//! posts back to itself; the single-use token in the form is also what stops cross-site posts.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::AppState;
use super::caller::client;
use super::html::{self, Page};
use crate::identity::{AuthError, LinkPurpose};
use crate::mail::templates::escape;

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
async fn show_forgot() -> Response {
    forgot_form("", None, StatusCode::OK)
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
struct Forgotten {
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
async fn submit_forgot(State(state): State<AppState>, parts: Parts, body: Bytes) -> Response {
    let form: Forgotten = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let email = form.email.trim();
    if crate::model::Email::parse(email).is_err() {
        return forgot_form(
            email,
            Some("Enter your email address, such as name@example.com."),
            StatusCode::BAD_REQUEST,
        );
    }
    match state.identity.forgot_password(email, &client(&parts)).await {
        Ok(()) => page(
            "Check your mail",
            &format!(
                "<p role=\"status\">If <strong>{}</strong> has an account, a link to choose a new password is on its way. \
                 It works once.</p>\n<p><a href=\"/login\">Back to sign in</a></p>",
                escape(email)
            ),
            StatusCode::OK,
        ),
        Err(error) => {
            tracing::error!(%error, "the forgotten-password page failed");
            page("Something went wrong", "<p>Please try again in a moment.</p>", StatusCode::INTERNAL_SERVER_ERROR)
        }
    }
}

fn forgot_form(email: &str, problem: Option<&str>, status: StatusCode) -> Response {
    let invalid = if problem.is_some() { " aria-invalid=\"true\" aria-describedby=\"problem\"" } else { "" };
    let body = format!(
        "{}<p>Type the email you sign in with; we mail you a link to choose a new password.</p>\n\
         <form method=\"post\" action=\"/password/forgot\">\n\
         <label for=\"email\">Email</label>\
         <input id=\"email\" type=\"email\" name=\"email\" value=\"{}\" autocomplete=\"username\" required{invalid}>\n\
         <button type=\"submit\">Send the link</button>\n</form>\n<p><a href=\"/login\">Back to sign in</a></p>",
        html::problem(problem),
        escape(email),
    );
    page("Forgot your password?", &body, status)
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
    responses((status = 200, description = "The page.", body = String, content_type = "text/html"), (status = 400, description = "The page with the problem.", body = String, content_type = "text/html"), (status = 429, description = "A page: too many attempts from this address; `Retry-After`.", body = String, content_type = "text/html")),
)]
async fn show_invitation(link: LinkQuery) -> Response {
    show(LinkPurpose::Invitation, link)
}

#[utoipa::path(
    get,
    path = "/password/reset",
    tag = "public",
    params(("token" = Option<String>, Query, description = "The single-use token of the mailed link.")),
    responses((status = 200, description = "The page.", body = String, content_type = "text/html"), (status = 400, description = "The page with the problem.", body = String, content_type = "text/html"), (status = 429, description = "A page: too many attempts from this address; `Retry-After`.", body = String, content_type = "text/html")),
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
    responses((status = 200, description = "The page.", body = String, content_type = "text/html"), (status = 400, description = "The page with the problem.", body = String, content_type = "text/html"), (status = 429, description = "A page: too many attempts from this address; `Retry-After`.", body = String, content_type = "text/html"), (status = 500, description = "An error page.", body = String, content_type = "text/html")),
)]
async fn submit_invitation(State(state): State<AppState>, parts: Parts, body: Bytes) -> Response {
    submit(&state, &parts, &body, LinkPurpose::Invitation).await
}

#[utoipa::path(
    post,
    path = "/password/reset",
    tag = "public",
    request_body(content = Submitted, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "The page.", body = String, content_type = "text/html"), (status = 400, description = "The page with the problem.", body = String, content_type = "text/html"), (status = 429, description = "A page: too many attempts from this address; `Retry-After`.", body = String, content_type = "text/html"), (status = 500, description = "An error page.", body = String, content_type = "text/html")),
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
            &format!(
                "<p role=\"status\">Your password is set. You can now sign in as <strong>{}</strong>.</p>\n\
                 <p><a href=\"/login\">Sign in</a></p>",
                escape(&email)
            ),
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
    let invalid = if problem.is_some() { " aria-invalid=\"true\" aria-describedby=\"problem\"" } else { "" };
    let body = format!(
        "{problem}<form method=\"post\" action=\"{action}\">\n\
         <input type=\"hidden\" name=\"token\" value=\"{token}\">\n\
         <label for=\"password\">New password (8 to 128 characters)</label>\
         <input id=\"password\" type=\"password\" name=\"password\" minlength=\"8\" maxlength=\"128\" autocomplete=\"new-password\" required{invalid}>\n\
         <button type=\"submit\">{button}</button>\n</form>",
        problem = html::problem(problem),
        action = purpose.path(),
        token = escape(token),
    );
    page(title, &body, status)
}

fn page(title: &str, body: &str, status: StatusCode) -> Response {
    Page::new(title, body.to_owned()).status(status).into_response()
}
