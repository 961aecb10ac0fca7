//! `/v1/auth/...`: sign-in, refresh, sign-out, sessions, passwords, invitations, TOTP, and the
//! RFC 7662/7009 endpoints for managed applications. The flows live in `identity`.

use std::net::SocketAddr;
use std::time::Duration;
use utoipa_axum::{router::OpenApiRouter, routes};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::body::JsonBody;
use super::caller::{Caller, client};
use super::{ApiError, AppState, Result, input};
use crate::audit::Target;
use crate::authz::{Action, Resource};
use crate::identity::token::{self, TokenKind};
use crate::model::shown;
use crate::store;

/// What introspection and revocation act on, in denials' messages.
const TOKENS: Resource<'static> = Resource::platform("session tokens");

/// What the session routes act on, in denials' messages.
const OWN_SESSION: Resource<'static> = Resource::own("their own session");

pub fn router(state: Option<&AppState>) -> OpenApiRouter<AppState> {
    // Routes that take a secret from an unauthenticated client are limited per client IP.
    let limited = OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(forgot))
        .routes(routes!(reset))
        .routes(routes!(accept))
        .routes(routes!(verify_mfa))
        .routes(routes!(confirm_totp))
        .merge(super::forms(state, super::pages::router()))
        // Each start of a staff sign-in stores a state and calls the identity provider.
        .merge(super::console::sign_in_router());
    let limited = match state {
        Some(state) => limited.route_layer(middleware::from_fn_with_state(state.clone(), limit_by_ip)),
        None => limited,
    };
    OpenApiRouter::new()
        .routes(routes!(logout))
        .routes(routes!(whoami))
        .routes(routes!(list_sessions))
        .routes(routes!(end_session))
        .routes(routes!(change_password))
        .routes(routes!(start_totp))
        .routes(routes!(introspect))
        .routes(routes!(revoke))
        .routes(routes!(unlock))
        .merge(limited)
}

/// Fixed one-minute windows per route and client IP, counted in Postgres (shared by replicas).
async fn limit_by_ip(State(state): State<AppState>, request: Request, next: Next) -> Result<Response> {
    let ip = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    if let Some(retry_after) = over_limit(&state, ip, request.uri().path()).await? {
        // A browser gets a page, an API client the JSON error.
        if !request.uri().path().starts_with("/v1/") {
            let (parts, _) = request.into_parts();
            return Ok(too_many_page(&super::web::Browser::of(&state, &parts), retry_after));
        }
        return Err(ApiError::TooManyRequests { retry_after });
    }
    Ok(next.run(request).await)
}

/// Counts a request of `ip` to `path`; `Some(retry_after)` once the minute's allowance is spent.
async fn over_limit(state: &AppState, ip: Option<std::net::IpAddr>, path: &str) -> Result<Option<u64>> {
    let Some(ip) = ip else { return Ok(None) };
    let key = format!("ip|{path}|{ip}");
    let limit = state.identity.settings.ip_limit_per_minute;
    match store::identity::hit_rate_limit(&state.pool, &key, Duration::from_secs(60), limit).await? {
        Ok(()) => Ok(None),
        Err(retry_after) => {
            state.metrics.rate_limited.inc();
            Ok(Some(retry_after))
        }
    }
}

fn too_many_page(browser: &super::web::Browser, retry_after: u64) -> Response {
    let tr = browser.tr;
    let problem = tr.arg("too-many", "seconds", &retry_after.to_string());
    let page = browser.problem_page(&tr.t("too-many-title"), &problem).status(StatusCode::TOO_MANY_REQUESTS);
    let mut response = browser.render(page);
    if let Ok(value) = axum::http::HeaderValue::from_str(&retry_after.to_string()) {
        response.headers_mut().insert(axum::http::header::RETRY_AFTER, value);
    }
    response
}

/// The per-IP limit of a page's form posts (the same allowance as the JSON sign-in): `Some` page
/// to answer when it is spent.
pub(super) async fn page_rate_limit(
    state: &AppState,
    parts: &Parts,
    browser: &super::web::Browser,
) -> Option<Response> {
    let ip = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    match over_limit(state, ip, parts.uri.path()).await {
        Ok(None) => None,
        Ok(Some(retry_after)) => Some(too_many_page(browser, retry_after)),
        Err(error) => Some(error.into_response()),
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Login {
    #[schema(example = "carol@acme.example")]
    email: String,
    #[schema(example = "correct horse battery staple")]
    password: String,
}

#[utoipa::path(
    post,
    path = "/v1/auth/login",
    tag = "public",
    request_body(content = Login),
    responses(
        (status = 200, description = "Tokens: `access_token`, `refresh_token`, expiry, and any pending MFA step.", body = crate::identity::Tokens),
        (status = 403, description = "The right password of a disabled user (`account_disabled`), of a suspended tenant's user (`tenant_suspended`), or of a tenant that signs in only through its own provider (`sso_required`).", body = super::openapi::ErrorBody),
    ),
)]
async fn login(State(state): State<AppState>, parts: Parts, body: JsonBody<Login>) -> Result<Response> {
    let request = body.value()?;
    let email = input::email("email", &request.email)?;
    let tokens = state.identity.login(email.as_str(), &request.password, &client(&parts)).await?;
    Ok(no_store(axum::Json(tokens)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Refresh {
    refresh_token: String,
}

#[utoipa::path(
    post,
    path = "/v1/auth/refresh",
    tag = "public",
    request_body(content = Refresh),
    responses((status = 200, description = "New tokens; the refresh token is rotated.", body = crate::identity::Tokens)),
)]
async fn refresh(State(state): State<AppState>, parts: Parts, body: JsonBody<Refresh>) -> Result<Response> {
    let request = body.value()?;
    let tokens = state.identity.refresh(&request.refresh_token, None, &client(&parts)).await?;
    Ok(no_store(axum::Json(tokens)))
}

#[utoipa::path(
    post, operation_id = "sign_out",
    path = "/v1/auth/logout",
    tag = "session",
    security(("session" = ["owner", "admin", "user", "pending"])),
    responses((status = 204, description = "The session has ended.")),
)]
async fn logout(State(state): State<AppState>, caller: Caller) -> Result<StatusCode> {
    caller.authorize(&state, Action::SignOut, &OWN_SESSION)?;
    state.identity.logout(caller.session()?, &caller.client()).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    get,
    path = "/v1/auth/session",
    tag = "session",
    security(("session" = ["owner", "admin", "user", "pending"])),
    responses((status = 200, description = "The session: user, tenant, role, expiry, and `idleExpiresAt`.", body = crate::model::SessionView)),
)]
async fn whoami(State(state): State<AppState>, caller: Caller) -> Result<Response> {
    caller.authorize(&state, Action::ReadOwnSession, &OWN_SESSION)?;
    let session = caller.session()?;
    let idle = chrono::Duration::from_std(state.identity.settings.times.idle).unwrap_or_default();
    let mut body = serde_json::to_value(session).unwrap_or_default();
    body["idleExpiresAt"] = json!(session.last_seen_at + idle);
    Ok(no_store(axum::Json(body)))
}

#[utoipa::path(
    get,
    path = "/v1/auth/sessions",
    tag = "session",
    security(("session" = ["owner", "admin", "user"])),
    responses((status = 200, description = "The user's live sessions; `current` marks this one.", body = Sessions)),
)]
async fn list_sessions(State(state): State<AppState>, caller: Caller) -> Result<Response> {
    caller.authorize(&state, Action::ManageOwnSessions, &OWN_SESSION)?;
    let session = caller.session()?;
    let sessions =
        store::identity::list_user_sessions(&state.pool, session.user_id, state.identity.settings.times).await?;
    let sessions = sessions.into_iter().map(|s| ListedSession { current: s.id == session.id, session: s }).collect();
    Ok(no_store(axum::Json(Sessions { sessions })))
}

/// A user's live sessions.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(super) struct Sessions {
    sessions: Vec<ListedSession>,
}

/// A live session, and whether it is the caller's.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(super) struct ListedSession {
    #[serde(flatten)]
    session: store::identity::SessionSummary,
    current: bool,
}

#[utoipa::path(
    delete, operation_id = "end_own_session",
    path = "/v1/auth/sessions/{id}",
    tag = "session",
    security(("session" = ["owner", "admin", "user"])),
    params(("id" = uuid::Uuid, Path, description = "The session id.")),
    responses((status = 204, description = "That session of the user has ended.")),
)]
async fn end_session(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<StatusCode> {
    caller.authorize(&state, Action::ManageOwnSessions, &OWN_SESSION)?;
    let id = Uuid::parse_str(&id).map_err(|_| {
        ApiError::BadRequest(format!("path parameter `id`: `{}` is not a session id (a UUID)", shown(&id)))
    })?;
    if state.identity.end_own_session(caller.session()?, id, &caller.client()).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!("you have no live session {id}")))
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Forgot {
    #[schema(example = "carol@acme.example")]
    email: String,
}

#[utoipa::path(
    post,
    path = "/v1/auth/password/forgot",
    tag = "public",
    request_body(content = Forgot),
    responses((status = 202, description = "A reset link is mailed if an active account has this email.", body = super::openapi::Message)),
)]
async fn forgot(State(state): State<AppState>, parts: Parts, body: JsonBody<Forgot>) -> Result<Response> {
    let request = body.value()?;
    let email = input::email("email", &request.email)?;
    let asked = super::web::Lang::accepted(&parts.headers);
    state.identity.forgot_password(email.as_str(), asked, &client(&parts)).await?;
    let message = "if an active account has this email, a reset link is on its way";
    Ok((StatusCode::ACCEPTED, axum::Json(super::openapi::Message { message: message.to_owned() })).into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct SetPassword {
    token: String,
    password: String,
}

#[utoipa::path(
    post,
    path = "/v1/auth/password/reset",
    tag = "public",
    request_body(content = SetPassword),
    responses((status = 204, description = "The password is set; every session of the user ends.")),
)]
async fn reset(State(state): State<AppState>, parts: Parts, body: JsonBody<SetPassword>) -> Result<StatusCode> {
    let request = body.value()?;
    state.identity.reset_password(&request.token, &request.password, &client(&parts)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post,
    path = "/v1/auth/invitations/accept",
    tag = "public",
    request_body(content = SetPassword),
    responses((status = 204, description = "The invitation is accepted and the password set.")),
)]
async fn accept(State(state): State<AppState>, parts: Parts, body: JsonBody<SetPassword>) -> Result<StatusCode> {
    let request = body.value()?;
    state.identity.accept_invitation(&request.token, &request.password, &client(&parts)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ChangePassword {
    current_password: String,
    new_password: String,
}

#[utoipa::path(
    post,
    path = "/v1/auth/password/change",
    tag = "session",
    security(("session" = ["owner", "admin", "user"])),
    request_body(content = ChangePassword),
    responses((status = 200, description = "The password is changed and every session of the user ended, this one too; the tokens of the session that takes this one's place.", body = crate::identity::Tokens)),
)]
async fn change_password(
    State(state): State<AppState>,
    caller: Caller,
    body: JsonBody<ChangePassword>,
) -> Result<Response> {
    caller.authorize(&state, Action::ChangeOwnPassword, &OWN_SESSION)?;
    let request = body.value()?;
    let (session, client) = (caller.session()?, caller.client());
    let tokens =
        state.identity.change_password(session, &request.current_password, &request.new_password, &client).await?;
    Ok(no_store(axum::Json(tokens)))
}

#[utoipa::path(
    post,
    path = "/v1/auth/mfa/totp/enrol",
    tag = "session",
    security(("session" = ["owner", "admin", "user"])),
    responses((status = 200, description = "A new TOTP secret and its otpauth URI, to confirm.", body = crate::identity::Enrolment)),
)]
async fn start_totp(State(state): State<AppState>, caller: Caller) -> Result<Response> {
    caller.authorize(&state, Action::EnrolTotp, &OWN_SESSION)?;
    Ok(no_store(axum::Json(state.identity.start_totp(caller.session()?, &caller.client()).await?)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({ "code": "123456" }))]
struct Code {
    code: Option<String>,
    recovery_code: Option<String>,
}

#[utoipa::path(
    post,
    path = "/v1/auth/mfa/totp/confirm",
    tag = "session",
    security(("session" = ["owner", "admin", "user"])),
    request_body(content = Code, description = "`code` is required."),
    responses((status = 200, description = "TOTP is enrolled: recovery codes (shown once).", body = crate::identity::Enrolled)),
)]
async fn confirm_totp(State(state): State<AppState>, caller: Caller, body: JsonBody<Code>) -> Result<Response> {
    caller.authorize(&state, Action::EnrolTotp, &OWN_SESSION)?;
    let request = body.value()?;
    let code = request.code.ok_or_else(|| ApiError::BadRequest("`code` is required".into()))?;
    Ok(no_store(axum::Json(state.identity.confirm_totp(caller.session()?, &code, &caller.client()).await?)))
}

#[utoipa::path(
    post,
    path = "/v1/auth/mfa/verify",
    tag = "session",
    security(("session" = ["owner", "admin", "user", "pending"])),
    request_body(content = Code, description = "Exactly one of `code` and `recovery_code`."),
    responses((status = 200, description = "Tokens of the now verified session.", body = crate::identity::Tokens)),
)]
async fn verify_mfa(State(state): State<AppState>, caller: Caller, body: JsonBody<Code>) -> Result<Response> {
    caller.authorize(&state, Action::VerifySecondFactor, &OWN_SESSION)?;
    let request = body.value()?;
    if request.code.is_none() == request.recovery_code.is_none() {
        return Err(ApiError::BadRequest("give exactly one of `code` and `recovery_code`".into()));
    }
    let (session, client) = (caller.session()?, caller.client());
    let tokens =
        state.identity.verify_mfa(session, request.code.as_deref(), request.recovery_code.as_deref(), &client).await?;
    Ok(no_store(axum::Json(tokens)))
}

#[utoipa::path(
    delete, operation_id = "clear_lockout",
    path = "/v1/auth/lockouts/{email}",
    tag = "operator",
    security(("operator" = ["operator"])),
    params(("email" = String, Path, description = "The user's email address.", example = "dan@acme.example")),
    responses((status = 204, description = "The failed attempts of this email are cleared.")),
)]
async fn unlock(State(state): State<AppState>, caller: Caller, Path(email): Path<String>) -> Result<StatusCode> {
    caller.authorize(&state, Action::ClearLockout, &Resource::platform("the lockouts of sign-in"))?;
    let email = input::path_email(&email)?;
    let email = email.as_str();
    let unlocked = store::identity::clear_failures(&state.pool, email).await?;
    caller
        .record(&state, "auth.unlock", Target::platform(format!("user/{email}")), json!({ "wasLocked": unlocked }))
        .await?;
    if unlocked {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!("{email} has no failed attempts")))
    }
}

/// RFC 7662 and RFC 7009 requests: `application/x-www-form-urlencoded` with `token`.
#[derive(Deserialize, utoipa::ToSchema)]
struct TokenForm {
    token: Option<String>,
}

fn token_form(body: &[u8]) -> Result<String> {
    let form: TokenForm = serde_urlencoded::from_bytes(body)
        .map_err(|e| ApiError::Invalid { code: "invalid_request", message: format!("invalid form body: {e}") })?;
    form.token.filter(|t| !t.is_empty()).ok_or_else(|| ApiError::Invalid {
        code: "invalid_request",
        message: "the form parameter `token` is required".into(),
    })
}

/// The live session a token (access or refresh) belongs to, if the calling application may see
/// it: issued to the application, in a tenant open to it.
async fn visible_session(
    state: &AppState,
    caller: &Caller,
    presented: &str,
) -> Result<Option<crate::model::SessionView>> {
    let principal = caller.principal()?;
    let hash = token::hash(presented);
    let session = match TokenKind::of(presented) {
        // An access token past its lifetime is inactive even while its session lives on.
        Some(TokenKind::Access) => match state.identity.sessions.find(hash.clone()).await? {
            Some(session) => Some(session),
            // The access token of an OIDC client's session (never accepted by the API itself).
            None => {
                store::identity::client_session_by_access(&state.pool, &hash, state.identity.settings.times).await?
            }
        },
        Some(TokenKind::Refresh) => {
            store::identity::session_by_refresh(&state.pool, &hash, state.identity.settings.times).await?
        }
        _ => None,
    };
    // An application sees only tokens issued to it: its OpenID client's sessions. A user's own API
    // session, or another client's, is inactive to it (issue 25.11: a token is not accepted by a
    // service it was not issued to, and an application cannot end what it was not given).
    Ok(session.filter(|s| {
        s.client_id == Some(principal.app.id)
            && state.delivery.tenant(&s.tenant).is_some_and(|t| t.open_to(&principal.app.name))
    }))
}

/// RFC 7662: `{"active": false}` for every token the application may not see.
#[utoipa::path(
    post,
    path = "/v1/auth/introspect",
    tag = "application",
    security(("apiKey" = ["auth:introspect"]), ("apiKeyHeader" = ["auth:introspect"])),
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded", description = "RFC 7662: the token to introspect."),
    responses((status = 200, description = "RFC 7662: `{\"active\":false}` or the active session's claims.", body = Introspection)),
)]
async fn introspect(State(state): State<AppState>, caller: Caller, body: Bytes) -> Result<Response> {
    caller.authorize(&state, Action::IntrospectTokens, &TOKENS)?;
    let presented = token_form(&body)?;
    let session = visible_session(&state, &caller, &presented).await?;
    let principal = caller.principal()?;
    let is_access = TokenKind::of(&presented) == Some(TokenKind::Access);
    let body = match session.filter(|s| s.pending.is_none()) {
        Some(s) => {
            let access_ttl = chrono::Duration::from_std(state.identity.settings.times.access_ttl).unwrap_or_default();
            let exp = if is_access { (s.rotated_at + access_ttl).min(s.expires_at) } else { s.expires_at };
            Introspection {
                active: true,
                token_type: Some(if is_access { "access_token" } else { "refresh_token" }),
                sub: Some(s.user_id),
                username: Some(s.email),
                tenant: Some(s.tenant),
                role: Some(s.role),
                sid: Some(s.id),
                client_id: Some(principal.app.name.to_string()),
                iat: Some(s.rotated_at.timestamp()),
                exp: Some(exp.timestamp()),
            }
        }
        None => Introspection::default(),
    };
    Ok(no_store(axum::Json(body)))
}

/// An introspection answer (RFC 7662 §2.2): `{"active": false}`, or the active session's claims.
#[derive(Default, serde::Serialize, utoipa::ToSchema)]
pub(super) struct Introspection {
    active: bool,
    /// `access_token` or `refresh_token`.
    #[serde(skip_serializing_if = "Option::is_none")]
    token_type: Option<&'static str>,
    /// The user's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<uuid::Uuid>,
    /// The user's email.
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tenant: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<crate::model::Role>,
    /// The session's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    sid: Option<uuid::Uuid>,
    /// The application the introspecting key belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iat: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exp: Option<i64>,
}

/// RFC 7009: ends the token's session; 200 whether or not the token was valid.
#[utoipa::path(
    post,
    path = "/v1/auth/revoke",
    tag = "application",
    security(("apiKey" = ["auth:introspect"]), ("apiKeyHeader" = ["auth:introspect"])),
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded", description = "RFC 7009: the token whose session to end."),
    responses((status = 200, description = "RFC 7009: revoked, or there was nothing this application may revoke.")),
)]
async fn revoke(State(state): State<AppState>, caller: Caller, body: Bytes) -> Result<Response> {
    caller.authorize(&state, Action::IntrospectTokens, &TOKENS)?;
    let presented = token_form(&body)?;
    let session = visible_session(&state, &caller, &presented).await?;
    if let Some(session) = session {
        {
            let mut conn = state.pool.acquire().await.map_err(store::StoreError::from)?;
            store::identity::revoke_session(&mut conn, session.id, "revoked_by_application").await?;
        }
        let target = Target::in_tenant(&session.tenant, format!("user/{}", session.email));
        caller.record(&state, "auth.session.revoke", target, json!({ "sessionId": session.id })).await?;
    }
    Ok(StatusCode::OK.into_response())
}

/// Responses that carry tokens or secrets must not be cached (RFC 6749 §5.1).
pub(crate) fn no_store(body: impl IntoResponse) -> Response {
    let mut response = body.into_response();
    response.headers_mut().insert(axum::http::header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
    response
}
