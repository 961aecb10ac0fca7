//! The universal login page (issue 14.1): `/login`, identity first. The user types an email; then
//! the password, then the TOTP code (or enrols TOTP when their role requires it), and lands where
//! they came from (an authorization of a managed application) or on `/account`. Server-rendered,
//! no scripts, every form CSRF-protected, limited per client IP like the JSON sign-in. The flows
//! are `identity`'s: a page sign-in is a JSON sign-in with the session's refresh token kept in an
//! HTTP-only cookie.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::AppState;
use super::caller::client;
use super::web::templates::{self, Body};
use super::web::{self, Browser, Page, SESSION_COOKIE};
use crate::identity::token;
use crate::identity::{AuthError, Tokens};
use crate::model::Pending;
use crate::model::SessionView;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(show_login, submit_login)).routes(routes!(account)).routes(routes!(logout))
}

/// Where a sign-in goes when it was not sent by anything: the start that fits the person (`/`).
const HOME: &str = "/";

#[derive(Deserialize, Default)]
struct LoginQuery {
    #[serde(default)]
    return_to: Option<String>,
    /// Set by the authorization endpoint for `prompt=login` and `max_age`: show the form even to a
    /// signed-in browser.
    #[serde(default)]
    force: Option<String>,
    #[serde(default)]
    signed_out: Option<String>,
}

/// The fields of every step's form (its CSRF token is checked by the pages' layer).
#[derive(Deserialize, Default, utoipa::ToSchema)]
pub(super) struct LoginForm {
    /// The browser's CSRF token (checked by the pages' layer).
    #[serde(default, rename = "csrf")]
    _csrf: String,
    /// `email`, `password`, `totp` or `enrol`.
    #[serde(default)]
    step: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    return_to: String,
}

/// A path on this server to return to; anything else (another origin, `//host`) goes home.
pub(super) fn safe_return(return_to: Option<&str>) -> String {
    match return_to {
        // Printable ASCII only: browsers drop tabs and newlines, so `/\t/evil.example` is `//evil.example`.
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && path.bytes().all(|b| (0x21..0x7f).contains(&b) && b != b'\\') =>
        {
            path.to_owned()
        }
        _ => HOME.to_owned(),
    }
}

/// One sign-in in a browser: the page's browser and where to return once signed in.
struct Flow {
    browser: Browser,
    return_to: String,
    /// Whether platform staff sign in in a browser here (the email page links to it).
    staff: bool,
}

impl Flow {
    fn start(state: &AppState, browser: Browser, return_to: Option<&str>) -> Flow {
        Flow { browser, return_to: safe_return(return_to), staff: state.staff.is_some() }
    }

    fn t(&self, key: &str) -> String {
        self.browser.tr.t(key)
    }

    fn page(&self, page: Page) -> Response {
        self.browser.render(page)
    }

    fn email_form(&self, email: &str, problem: Option<&str>, status: StatusCode) -> Response {
        self.email_page(email, problem, false, status)
    }

    fn email_page(&self, email: &str, problem: Option<&str>, signed_out: bool, status: StatusCode) -> Response {
        let body = templates::LoginEmail {
            t: self.browser.tr,
            csrf: self.browser.csrf(),
            step: "email",
            return_to: &self.return_to,
            problem,
            signed_out,
            email,
            // Staff come back where they were going too.
            staff: self.staff.then(|| format!("/console/login?return_to={}", url_encode(&self.return_to))),
        };
        self.page(Page::new(&self.t("login-title"), body.html()).status(status))
    }

    fn password_form(&self, email: &str, problem: Option<&str>, status: StatusCode) -> Response {
        let body = templates::LoginPassword {
            t: self.browser.tr,
            csrf: self.browser.csrf(),
            step: "password",
            return_to: &self.return_to,
            return_to_encoded: &url_encode(&self.return_to),
            problem,
            email,
        };
        self.page(Page::new(&self.t("login-password-title"), body.html()).status(status))
    }

    fn totp_form(&self, problem: Option<&str>, status: StatusCode) -> Response {
        let body = templates::LoginTotp {
            t: self.browser.tr,
            csrf: self.browser.csrf(),
            step: "totp",
            return_to: &self.return_to,
            problem,
        };
        self.page(Page::new(&self.t("login-totp-title"), body.html()).status(status))
    }

    fn enrol_form(&self, secret: &str, uri: &str, problem: Option<&str>, status: StatusCode) -> Response {
        let body = templates::LoginEnrol {
            t: self.browser.tr,
            csrf: self.browser.csrf(),
            step: "enrol",
            return_to: &self.return_to,
            problem,
            qr: &qr_svg(uri, &self.t("login-enrol-qr")),
            secret,
        };
        self.page(Page::new(&self.t("login-enrol-title"), body.html()).status(status))
    }
}

fn url_encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// The otpauth URI as an inline SVG QR code (no image request, nothing for the CSP to allow).
fn qr_svg(uri: &str, label: &str) -> String {
    let Ok(code) = qrcode::QrCode::new(uri.as_bytes()) else { return String::new() };
    let svg = code.render::<qrcode::render::svg::Color>().min_dimensions(200, 200).build();
    let svg = svg.find("<svg").map_or(svg.as_str(), |start| &svg[start..]);
    let label = crate::mail::templates::escape(label);
    svg.replacen("<svg", &format!("<svg role=\"img\" aria-label=\"{label}\""), 1)
}

/// The browser's session, if its cookie names a live one (complete or waiting for MFA).
pub(super) async fn browser_session(state: &AppState, parts: &Parts) -> Option<SessionView> {
    let presented = web::cookies::read(&parts.headers, &session_cookie_name(state))?;
    let times = state.identity.settings.times;
    let session =
        crate::store::identity::session_by_refresh(&state.pool, &token::hash(&presented), times).await.ok()??;
    // Only a browser's own session: an application's refresh token (a session issued to an OpenID
    // client) presented as this cookie opens neither the account page nor a console.
    if session.client_id.is_some() {
        return None;
    }
    // A browser's use keeps its session from the idle expiry, as requests do for API sessions.
    let _ = crate::store::identity::touch_sessions(&state.pool, &[session.id]).await;
    Some(session)
}

/// The name of the browser session's cookie (host-only under https).
pub(super) fn session_cookie_name(state: &AppState) -> String {
    web::cookies::host_only(SESSION_COOKIE, web::is_https(state))
}

fn session_cookie(state: &AppState, tokens: &Tokens) -> String {
    web::cookies::set(&session_cookie_name(state), &tokens.refresh_token, web::is_https(state), None)
}

/// The login page: the email form (or, for a signed-in browser, on to `return_to`).
#[utoipa::path(get, path = "/login", tag = "public",
    params(
        ("return_to" = Option<String>, Query, description = "A path on this server to go to once signed in (an authorization request)."),
        ("force" = Option<String>, Query, description = "Show the form even to a signed-in browser."),
        ("signed_out" = Option<String>, Query, description = "Say that the browser was signed out."),
    ),
    responses(
        (status = 200, description = "The page.", body = String, content_type = "text/html"),
        (status = 303, description = "Already signed in: on to `return_to`."),
    ))]
async fn show_login(
    State(state): State<AppState>,
    browser: Browser,
    query: Result<Query<LoginQuery>, axum::extract::rejection::QueryRejection>,
    parts: Parts,
) -> Response {
    // A query that does not parse is ignored: the page is the plain sign-in form.
    let query = query.map(|Query(q)| q).unwrap_or_default();
    let flow = Flow::start(&state, browser, query.return_to.as_deref());
    if query.force.is_none()
        && let Some(session) = browser_session(&state, &parts).await
    {
        match session.pending {
            None => return Redirect::to(&flow.return_to).into_response(),
            Some(Pending::MfaVerify) => return flow.totp_form(None, StatusCode::OK),
            // An enrolment is started again from the password: its key is shown only once.
            Some(Pending::MfaEnrol) => {}
        }
    }
    flow.email_page("", None, query.signed_out.is_some(), StatusCode::OK)
}

/// One step of the sign-in: `email`, `password`, `totp` or `enrol`.
#[utoipa::path(post, path = "/login", tag = "public",
    request_body(content = LoginForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The next step's page, or the page that moves on once signed in.", body = String, content_type = "text/html"),
        (status = 400, description = "The page with the problem (a damaged form, an expired step, a form without its CSRF token).", body = String, content_type = "text/html"),
        (status = 401, description = "The page: a wrong password or code.", body = String, content_type = "text/html"),
        (status = 403, description = "The page: the account is disabled or the organisation suspended.", body = String, content_type = "text/html"),
        (status = 429, description = "The page: too many attempts; `Retry-After`.", body = String, content_type = "text/html"),
        (status = 500, description = "An error page.", body = String, content_type = "text/html"),
        (status = 502, description = "The page: the organisation's identity provider cannot be reached.", body = String, content_type = "text/html"),
    ))]
async fn submit_login(State(state): State<AppState>, browser: Browser, parts: Parts, body: Bytes) -> Response {
    if let Some(limited) = super::auth::page_rate_limit(&state, &parts, &browser).await {
        return limited;
    }
    let form: LoginForm = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let flow = Flow::start(&state, browser, Some(&form.return_to));
    match form.step.as_str() {
        "password" => password_step(&state, &parts, &flow, &form).await,
        "totp" => totp_step(&state, &parts, &flow, &form).await,
        "enrol" => enrol_step(&state, &parts, &flow, &form).await,
        _ => email_step(&state, &flow, &form).await,
    }
}

async fn email_step(state: &AppState, flow: &Flow, form: &LoginForm) -> Response {
    let email = form.email.trim().to_lowercase();
    if crate::model::Email::parse(&email).is_err() {
        return flow.email_form(&email, Some(&flow.t("problem-email-invalid")), StatusCode::BAD_REQUEST);
    }
    // Home-realm discovery: a user whose tenant signs in through its own provider goes there.
    match sso_for(state, &email).await {
        Ok(Some(idp)) => match state.sso.start(&idp, "login", &flow.return_to, Some(&email), None).await {
            Ok((url, browser)) => {
                let mut page = flow.browser.continue_to(&flow.t("login-sso-title"), &url);
                if let Some(browser) = browser {
                    page = page.cookie(web::cookies::set(web::SSO_COOKIE, &browser, flow.browser.secure, Some(600)));
                }
                flow.page(page)
            }
            Err(error) => flow.email_form(&email, Some(&error.to_string()), StatusCode::BAD_GATEWAY),
        },
        Ok(None) => flow.password_form(&email, None, StatusCode::OK),
        Err(error) => failed(flow, &AuthError::Store(error)),
    }
}

/// The provider to send `email` to: its user's tenant's active provider when the user exists (by
/// tenant, not domain: a domain never takes another tenant's users away); for an email no tenant
/// has, the active provider that serves its domain (it may create the user just in time).
async fn sso_for(
    state: &AppState,
    email: &str,
) -> Result<Option<crate::store::sso::TenantIdp>, crate::store::StoreError> {
    if let Some(of_user) = crate::store::sso::active_idp_of_user(&state.pool, email).await? {
        return Ok(of_user);
    }
    let domain = email.rsplit_once('@').map_or("", |(_, d)| d);
    crate::store::sso::active_idp_for_domain(&state.pool, domain).await
}

async fn password_step(state: &AppState, parts: &Parts, flow: &Flow, form: &LoginForm) -> Response {
    let email = form.email.trim();
    match state.identity.login(email, &form.password, &client(parts)).await {
        Ok(tokens) => {
            // A new sign-in replaces the browser's previous session (and its applications'), and
            // a platform session of someone else who used this browser.
            end_browser_session(state, parts).await;
            super::console::staff::end_staff_session(state, parts).await;
            let staff = web::cookies::host_only(super::console::STAFF_COOKIE, flow.browser.secure);
            let cleared = web::cookies::clear(&staff, flow.browser.secure);
            with_cookie(after_password(state, parts, flow, tokens).await, &cleared)
        }
        Err(AuthError::InvalidCredentials) => {
            flow.password_form(email, Some(&flow.t("problem-wrong-password")), StatusCode::UNAUTHORIZED)
        }
        Err(error) => refused(flow, &error, |message, status| flow.password_form(email, Some(message), status)),
    }
}

/// After the password: the second factor when the session waits for one, else onwards.
async fn after_password(state: &AppState, parts: &Parts, flow: &Flow, tokens: Tokens) -> Response {
    let cookie = session_cookie(state, &tokens);
    let response = match tokens.session.pending {
        Some(Pending::MfaVerify) => flow.totp_form(None, StatusCode::OK),
        Some(Pending::MfaEnrol) => {
            let session = crate::store::identity::session_by_refresh(
                &state.pool,
                &token::hash(&tokens.refresh_token),
                state.identity.settings.times,
            )
            .await;
            match session {
                Ok(Some(session)) => match state.identity.start_totp(&session, &client(parts)).await {
                    Ok(enrolment) => flow.enrol_form(&enrolment.secret, &enrolment.otpauth_uri, None, StatusCode::OK),
                    Err(error) => return failed(flow, &error),
                },
                _ => return expired(flow),
            }
        }
        None => return finish(state, flow, &tokens),
    };
    with_cookie(response, &cookie)
}

/// The email form again: the step's session is gone.
fn expired(flow: &Flow) -> Response {
    flow.email_form("", Some(&flow.t("problem-sign-in-expired")), StatusCode::BAD_REQUEST)
}

async fn totp_step(state: &AppState, parts: &Parts, flow: &Flow, form: &LoginForm) -> Response {
    let Some(session) = browser_session(state, parts).await.filter(|s| s.pending == Some(Pending::MfaVerify)) else {
        return expired(flow);
    };
    let code = form.code.trim();
    // A recovery code (`xxxxx-xxxxx`) is accepted in the same field.
    let (totp, recovery) = if code.contains('-') { (None, Some(code)) } else { (Some(code), None) };
    match state.identity.verify_mfa(&session, totp, recovery, &client(parts)).await {
        Ok(tokens) => finish(state, flow, &tokens),
        Err(AuthError::InvalidCode) => flow.totp_form(Some(&flow.t("problem-wrong-code")), StatusCode::UNAUTHORIZED),
        Err(error) => refused(flow, &error, |message, status| flow.totp_form(Some(message), status)),
    }
}

async fn enrol_step(state: &AppState, parts: &Parts, flow: &Flow, form: &LoginForm) -> Response {
    let Some(session) = browser_session(state, parts).await.filter(|s| s.pending == Some(Pending::MfaEnrol)) else {
        return expired(flow);
    };
    match state.identity.confirm_totp(&session, form.code.trim(), &client(parts)).await {
        Ok(enrolled) => {
            let body = templates::LoginRecovery {
                t: flow.browser.tr,
                codes: &enrolled.recovery_codes,
                return_to: &flow.return_to,
            };
            let page =
                Page::new(&flow.t("login-recovery-title"), body.html()).cookie(session_cookie(state, &enrolled.tokens));
            flow.page(page)
        }
        Err(AuthError::InvalidCode) => {
            // The key is shown once: a new one is made, to be scanned again.
            match state.identity.start_totp(&session, &client(parts)).await {
                Ok(enrolment) => flow.enrol_form(
                    &enrolment.secret,
                    &enrolment.otpauth_uri,
                    Some(&flow.t("problem-wrong-enrol-code")),
                    StatusCode::UNAUTHORIZED,
                ),
                Err(error) => failed(flow, &error),
            }
        }
        Err(error) => refused(flow, &error, |message, status| flow.email_form("", Some(message), status)),
    }
}

/// The pages of refusals other than a wrong secret, each said plainly.
fn refused(flow: &Flow, error: &AuthError, form: impl Fn(&str, StatusCode) -> Response) -> Response {
    let tr = flow.browser.tr;
    match error {
        AuthError::Locked { retry_after } => {
            let message = tr.arg("problem-locked", "seconds", &retry_after.to_string());
            let mut response = form(&message, StatusCode::TOO_MANY_REQUESTS);
            if let Ok(value) = axum::http::HeaderValue::from_str(&retry_after.to_string()) {
                response.headers_mut().insert(axum::http::header::RETRY_AFTER, value);
            }
            response
        }
        AuthError::AccountDisabled => form(&tr.t("problem-account-disabled"), StatusCode::FORBIDDEN),
        AuthError::TenantSuspended => form(&tr.t("problem-tenant-suspended"), StatusCode::FORBIDDEN),
        AuthError::SsoRequired => form(&tr.t("problem-sso-required"), StatusCode::FORBIDDEN),
        AuthError::InvalidToken => expired(flow),
        other => failed(flow, other),
    }
}

fn failed(flow: &Flow, error: &AuthError) -> Response {
    tracing::error!(%error, "a sign-in page failed");
    flow.browser.failed()
}

/// Signed in: the session's cookie, then on to where the sign-in was going.
fn finish(state: &AppState, flow: &Flow, tokens: &Tokens) -> Response {
    let page = flow.browser.continue_to(&flow.t("login-signed-in-title"), &flow.return_to);
    flow.page(page.cookie(session_cookie(state, tokens)))
}

fn with_cookie(mut response: Response, cookie: &str) -> Response {
    if let Ok(value) = axum::http::HeaderValue::from_str(cookie) {
        response.headers_mut().append(axum::http::header::SET_COOKIE, value);
    }
    response
}

/// The signed-in user's page: who, which organisation, and sign out.
#[utoipa::path(get, path = "/account", tag = "public",
    responses(
        (status = 200, description = "The page.", body = String, content_type = "text/html"),
        (status = 303, description = "Not signed in: to the login page."),
    ))]
async fn account(State(state): State<AppState>, browser: Browser, parts: Parts) -> Response {
    let Some(session) = browser_session(&state, &parts).await.filter(|s| s.pending.is_none()) else {
        return Redirect::to("/login?return_to=%2Faccount").into_response();
    };
    let body = templates::Account {
        t: browser.tr,
        csrf: browser.csrf(),
        email: &session.email,
        tenant: &session.tenant,
        role: session.role.as_str(),
        administers: matches!(session.role, crate::model::Role::Owner | crate::model::Role::Admin),
    };
    browser.render(Page::new(&browser.tr.t("account-title"), body.html()))
}

/// Signs the browser out: its session and every application session that came from it.
#[utoipa::path(post, operation_id = "sign_out_page", path = "/logout", tag = "public",
    request_body(content = LoginForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "To the login page."),
        (status = 400, description = "A page: the form has no CSRF token of this browser; nothing was done.", body = String, content_type = "text/html"),
    ))]
async fn logout(State(state): State<AppState>, parts: Parts) -> Response {
    end_browser_session(&state, &parts).await;
    let response = Redirect::to("/login?signed_out=1").into_response();
    with_cookie(response, &web::cookies::clear(&session_cookie_name(&state), web::is_https(&state)))
}

/// Ends the browser's session and the sessions of the applications it signed in to.
pub(super) async fn end_browser_session(state: &AppState, parts: &Parts) -> Option<SessionView> {
    let session = browser_session(state, parts).await?;
    if let Err(error) = crate::store::oidc::end_session_family(&state.pool, session.id, "logout").await {
        tracing::warn!(%error, "cannot end a browser session");
    }
    let origin = super::caller::origin(parts);
    let target = crate::audit::Target::in_tenant(&session.tenant, format!("user/{}", session.email));
    let actor = crate::authz::Actor::User(session.clone());
    let details = serde_json::json!({ "sessionId": session.id, "via": "browser" });
    let entry = crate::audit::entry(&actor, "auth.logout", target, crate::audit::Outcome::Success, &origin, details);
    if let Err(error) = crate::store::apps::audit(&state.pool, entry).await {
        tracing::warn!(%error, "cannot write an audit row");
    }
    Some(session)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_on_this_server_are_returned_to() {
        assert_eq!(safe_return(Some("/oauth2/authorize?client_id=a")), "/oauth2/authorize?client_id=a");
        assert_eq!(safe_return(Some("//evil.example/x")), "/");
        assert_eq!(safe_return(Some("https://evil.example/")), HOME);
        assert_eq!(safe_return(Some("/\\evil.example")), HOME);
        assert_eq!(safe_return(Some("/\t/evil.example")), HOME);
        assert_eq!(safe_return(Some("/\n/evil.example")), HOME);
        assert_eq!(safe_return(None), HOME);
    }

    #[test]
    fn the_qr_code_is_an_inline_svg_with_a_text_alternative() {
        let svg = qr_svg("otpauth://totp/Gatehouse:a@b.example?secret=JBSWY3DPEHPK3PXP", "QR \"code\"");
        assert!(
            svg.starts_with("<svg role=\"img\" aria-label=\"QR &#34;code&#34;\"")
                || svg.starts_with("<svg role=\"img\" aria-label=\"QR &quot;code&quot;\""),
            "{svg}"
        );
        assert!(!svg.contains("<?xml"));
    }
}
