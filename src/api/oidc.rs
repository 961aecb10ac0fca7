//! Gatehouse as the OpenID provider of the managed applications (issue 14.3): discovery, JWKS,
//! the authorization endpoint (code flow, PKCE), the token endpoint (code and refresh grants),
//! userinfo and RP-initiated logout; and, for operators, a client's secret and key rotation.
//!
//! Errors of a redirect flow never reach the browser as JSON or a 500: before the client and its
//! redirect URI are known to match a registration, a readable page; after, the client's redirect
//! URI with `error` and `error_description` (RFC 6749 §4.1.2.1).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header::{self, HeaderValue};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::auth::no_store;
use super::caller::{Caller, client};
use super::login::{browser_session, end_browser_session};
use super::web::templates::{self, Body};
use super::web::{self, Browser, Page};
use super::{ApiError, AppState, Result};
use crate::audit::Target;
use crate::authz::{Action, Resource};
use crate::identity::token::{self, TokenKind};
use crate::model::Alg;
use crate::model::ClientType;
use crate::model::SessionView;
use crate::oidc;
use crate::oidc::request::{AuthorizeRequest, Next};
use crate::store::oidc::{self as db, ClientSession};
use crate::store::{self, AuditEntry, StoreError};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(discovery))
        .routes(routes!(jwks))
        .routes(routes!(authorize))
        .routes(routes!(token_endpoint))
        .routes(routes!(userinfo, userinfo_form))
        .routes(routes!(end_session))
        .routes(routes!(set_client_secret))
        .routes(routes!(rotate_keys))
}

/// OpenID Connect Discovery 1.0.
#[utoipa::path(get, path = "/.well-known/openid-configuration", tag = "public",
    responses((status = 200, description = "The OpenID Provider Metadata.", body = ProviderMetadata)))]
async fn discovery(State(state): State<AppState>) -> Response {
    cached(axum::Json(oidc::discovery(&state.provider.issuer)), "public, max-age=300")
}

/// The published signing keys (RFC 7517): those that sign, the next ones, and retired ones whose
/// tokens may still be out.
#[utoipa::path(get, path = "/oauth2/jwks", tag = "public",
    responses((status = 200, description = "The JWK Set of ID token signing keys.", body = JwkSet)))]
async fn jwks(State(state): State<AppState>) -> Response {
    // Short: a rotation must reach clients before the next one (the next key is already here).
    cached(axum::Json(state.provider.keys.jwks()), "public, max-age=300")
}

fn cached(body: impl IntoResponse, policy: &'static str) -> Response {
    let mut response = body.into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static(policy));
    response
}

// --- The authorization endpoint ----------------------------------------------------------------

/// `request` as a URL of the authorization endpoint, to come back to after signing in.
fn url_of(request: &AuthorizeRequest) -> String {
    format!("/oauth2/authorize?{}", serde_urlencoded::to_string(request).unwrap_or_default())
}

/// The authorization endpoint (OpenID Connect Core §3.1.2), GET or form POST.
#[utoipa::path(method(get, post), operation_id = "oidc_authorize", path = "/oauth2/authorize", tag = "public", params(AuthorizeRequest),
    responses(
        (status = 302, description = "To the client's redirect URI with `code` (or `error`), or to the login page."),
        (status = 400, description = "A page: the client or its redirect URI is not registered.", body = String, content_type = "text/html"),
    ))]
async fn authorize(
    State(state): State<AppState>,
    browser: Browser,
    method: Method,
    parts: Parts,
    body: Bytes,
) -> Response {
    let raw = if method == Method::POST { body.to_vec() } else { parts.uri.query().unwrap_or("").as_bytes().to_vec() };
    let request: AuthorizeRequest = match serde_urlencoded::from_bytes(&raw) {
        Ok(request) => request,
        Err(_) => return error_page(&browser, "oidc-damaged-title", "oidc-damaged"),
    };
    let Some(client) = find_client(&state, request.client_id.as_deref()).await else {
        return error_page(&browser, "oidc-unknown-app-title", "oidc-unknown-app");
    };
    let Some(redirect_uri) = request.registered_redirect(&client.oidc.redirect_uris).map(str::to_owned) else {
        return error_page(&browser, "oidc-link-invalid-title", "oidc-unregistered-return");
    };
    let back = Back {
        issuer: &state.provider.issuer,
        redirect_uri: &redirect_uri,
        state: request.state.as_deref(),
        browser: &browser,
    };
    let checked = match request.check(client.active, client.oidc.client_type) {
        Ok(checked) => checked,
        Err((code, message)) => return back.error(code, &message),
    };
    let browser = session_of_browser(&state, &parts).await;
    let now = chrono::Utc::now().timestamp();
    let auth_time = browser.as_ref().map(|(_, session)| session.auth_time.timestamp());
    match checked.next(auth_time, request.auth_after, now) {
        Next::Issue => {}
        Next::SignIn { again: false } => return to_login(&request, false),
        Next::SignIn { again: true } => {
            let again = AuthorizeRequest { prompt: None, auth_after: Some(now), ..request.clone() };
            return to_login(&again, true);
        }
        Next::Refuse((code, message)) => return back.error(code, &message),
    }
    let Some((view, session)) = browser else { return to_login(&request, false) };
    // The decision, like every other, through `authorize`: a tenant user signs in to an
    // application the tenant enables (the tenant facts of the in-memory cache).
    let actor = crate::authz::Actor::User(view);
    let origin = super::caller::origin(&parts);
    let audit = |outcome: crate::audit::Outcome, reason: Option<&str>| {
        let target = Target::in_tenant(&session.tenant, format!("application/{}", client.name));
        crate::audit::entry(
            &actor,
            "oidc.authorize",
            target,
            outcome,
            &origin,
            json!({ "client": client.name, "reason": reason, "sessionId": session.id }),
        )
    };
    let tenant = state.delivery.tenant(&session.tenant);
    let facts = super::caller::facts(&session.tenant, tenant.as_deref());
    let resource = Resource::tenant_application(&client.name, facts);
    if let crate::authz::Decision::Deny(deny) = crate::authz::authorize(&actor, Action::SignInToApplication, &resource)
    {
        write_audit(&state, audit(crate::audit::Outcome::Failure, Some(deny.reason))).await;
        return back.error("access_denied", &deny.message);
    }
    let code = token::issue(TokenKind::Code);
    let scope = checked.scopes.join(" ");
    let new = db::NewCode {
        code_hash: &code.hash,
        application_id: client.id,
        session_id: session.id,
        redirect_uri: &redirect_uri,
        scope: &scope,
        nonce: request.nonce.as_deref(),
        code_challenge: request.code_challenge.as_deref(),
        ttl: state.provider.lifetimes.code,
    };
    if let Err(error) = db::insert_code(&state.pool, new).await {
        return server_error(&back, &error);
    }
    write_audit(&state, audit(crate::audit::Outcome::Success, None)).await;
    back.with(&[("code", &code.token)])
}

/// The browser's complete session: as `authorize` sees it, and as the provider does (with `amr`
/// and `auth_time`); never a session of a client.
async fn session_of_browser(state: &AppState, parts: &Parts) -> Option<(SessionView, ClientSession)> {
    let view = browser_session(state, parts).await.filter(|s| s.pending.is_none() && s.client_id.is_none())?;
    let mut conn = state.pool.acquire().await.ok()?;
    let session = db::live_session(&mut conn, view.id, state.identity.settings.times).await.ok()??;
    Some((view, session))
}

/// To the login page, which comes back to `request` once the user has signed in.
fn to_login(request: &AuthorizeRequest, force: bool) -> Response {
    let return_to: String = url::form_urlencoded::byte_serialize(url_of(request).as_bytes()).collect();
    let force = if force { "&force=1" } else { "" };
    Redirect::to(&format!("/login?return_to={return_to}{force}")).into_response()
}

/// A registered redirect URI to answer through.
struct Back<'a> {
    issuer: &'a str,
    redirect_uri: &'a str,
    state: Option<&'a str>,
    browser: &'a Browser,
}

impl Back<'_> {
    /// Redirects with `params`, the request's `state` and the issuer (RFC 9207).
    fn with(&self, params: &[(&str, &str)]) -> Response {
        let Ok(mut url) = url::Url::parse(self.redirect_uri) else {
            return error_page(self.browser, "oidc-link-invalid-title", "oidc-bad-address");
        };
        {
            let mut query = url.query_pairs_mut();
            for (key, value) in params {
                query.append_pair(key, value);
            }
            if let Some(state) = self.state {
                query.append_pair("state", state);
            }
            query.append_pair("iss", self.issuer);
        }
        let mut response = Redirect::to(url.as_str()).into_response();
        web::secure(response.headers_mut());
        response
    }

    fn error(&self, code: &str, description: &str) -> Response {
        self.with(&[("error", code), ("error_description", description)])
    }
}

fn server_error(back: &Back<'_>, error: &StoreError) -> Response {
    tracing::error!(%error, "an authorization failed");
    back.error("server_error", "Gatehouse could not complete the sign-in; try again")
}

/// A page of the provider's refusal (`title` and `message` are catalogue keys).
fn error_page(browser: &Browser, title: &str, message: &str) -> Response {
    browser.render(browser.problem_page(&browser.tr.t(title), &browser.tr.t(message)))
}

/// The client named `client_id`; `None` for a name no application can have.
async fn find_client(state: &AppState, client_id: Option<&str>) -> Option<db::Client> {
    let name = crate::model::AppName::parse(client_id?).ok()?;
    db::client(&state.pool, name.as_str()).await.ok()?
}

fn client_ip(parts: &Parts) -> Option<String> {
    client(parts).ip
}

async fn write_audit(state: &AppState, entry: AuditEntry) {
    if let Err(error) = store::apps::audit(&state.pool, entry).await {
        tracing::warn!(%error, "cannot write an audit row");
    }
}

// --- The token endpoint ---------------------------------------------------------------------

#[derive(Deserialize, Default, utoipa::ToSchema)]
pub(super) struct TokenRequest {
    grant_type: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    refresh_token: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    scope: Option<String>,
}

/// An error of the token endpoint (RFC 6749 §5.2).
struct TokenError {
    status: StatusCode,
    code: &'static str,
    description: String,
    /// `client_secret_basic` was tried: 401 answers with a `WWW-Authenticate` challenge.
    basic: bool,
}

impl TokenError {
    fn new(code: &'static str, description: impl Into<String>) -> TokenError {
        TokenError { status: StatusCode::BAD_REQUEST, code, description: description.into(), basic: false }
    }
}

// The documents of OpenID Connect Discovery 1.0 §3, RFC 7517 §5 and OpenID Connect Core §5.3.2,
// as the OpenAPI document names them (`oidc::discovery`, the key set and `oidc::user_claims` build
// them; a test keeps the discovery document's fields equal to these).

/// The OpenID Provider Metadata (OpenID Connect Discovery 1.0 §3).
#[allow(dead_code)]
#[derive(utoipa::ToSchema)]
pub(crate) struct ProviderMetadata {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    userinfo_endpoint: String,
    jwks_uri: String,
    end_session_endpoint: String,
    scopes_supported: Vec<String>,
    response_types_supported: Vec<String>,
    response_modes_supported: Vec<String>,
    grant_types_supported: Vec<String>,
    subject_types_supported: Vec<String>,
    id_token_signing_alg_values_supported: Vec<String>,
    token_endpoint_auth_methods_supported: Vec<String>,
    code_challenge_methods_supported: Vec<String>,
    claims_supported: Vec<String>,
    acr_values_supported: Vec<String>,
    prompt_values_supported: Vec<String>,
    claims_parameter_supported: bool,
    request_parameter_supported: bool,
    request_uri_parameter_supported: bool,
}

/// A JWK Set (RFC 7517 §5): the public keys ID tokens are signed with.
#[allow(dead_code)]
#[derive(utoipa::ToSchema)]
pub(crate) struct JwkSet {
    /// Each a JWK (RFC 7517 §4) with its `kid`, `alg` and `use`.
    #[schema(value_type = Vec<Object>)]
    keys: Vec<Value>,
}

/// The claims the UserInfo endpoint releases (OpenID Connect Core §5.3.2), by the scopes granted:
/// `openid` the subject, `email` the address, `profile` the name, `tenant` the tenant and role.
#[allow(dead_code)]
#[derive(utoipa::ToSchema)]
pub(crate) struct UserInfo {
    sub: String,
    email: Option<String>,
    email_verified: Option<bool>,
    name: Option<String>,
    tenant: Option<String>,
    role: Option<crate::model::Role>,
}

/// An OAuth 2.0 error (RFC 6749 §5.2).
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct OAuthError {
    /// `invalid_request`, `invalid_client`, `invalid_grant`, `unauthorized_client`,
    /// `unsupported_grant_type`, `invalid_scope`.
    #[schema(example = "invalid_grant")]
    error: &'static str,
    error_description: String,
}

/// The tokens of a code exchange or a refresh (RFC 6749 §5.1, OpenID Connect Core §3.1.3.3).
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct TokenResponse {
    access_token: String,
    /// Always `Bearer`.
    #[schema(example = "Bearer")]
    token_type: &'static str,
    /// Seconds the access token lives.
    expires_in: u64,
    refresh_token: String,
    /// The signed ID token (JWT).
    id_token: String,
    /// The scopes granted, space-separated.
    #[schema(example = "openid email profile")]
    scope: String,
}

impl IntoResponse for TokenError {
    fn into_response(self) -> Response {
        let body = OAuthError { error: self.code, error_description: self.description };
        let mut response = no_store((self.status, axum::Json(body)));
        if self.basic {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"gatehouse\""));
        }
        response
    }
}

impl From<StoreError> for TokenError {
    fn from(error: StoreError) -> Self {
        tracing::error!(%error, "the token endpoint failed");
        TokenError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "temporarily_unavailable",
            description: "try again in a moment".into(),
            basic: false,
        }
    }
}

/// The token endpoint (RFC 6749 §3.2): `authorization_code` and `refresh_token` grants, clients
/// authenticated by `client_secret_basic` or `client_secret_post`, public clients by PKCE alone.
#[utoipa::path(post, path = "/oauth2/token", tag = "public",
    request_body(content = TokenRequest, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The tokens.", body = TokenResponse),
        (status = 400, description = "RFC 6749 §5.2: `error` and `error_description`.", body = OAuthError),
        (status = 401, description = "`invalid_client`.", body = OAuthError),
    ))]
async fn token_endpoint(State(state): State<AppState>, parts: Parts, body: Bytes) -> Response {
    match token_grant(&state, &parts, &body).await {
        Ok(response) => response,
        Err(error) => {
            if error.status != StatusCode::SERVICE_UNAVAILABLE {
                // Audited like every refusal of a caller who proved nothing (aggregated).
                state.denials.refused(crate::denials::Refusal {
                    action: "oidc.token",
                    ip: client_ip(&parts),
                    method: Some("POST".into()),
                    route: "/oauth2/token".into(),
                    resource: "/oauth2/token".into(),
                    tenant: None,
                    reason: format!("{}: {}", error.code, error.description),
                    key_id: None,
                    extra: serde_json::Map::new(),
                });
            }
            error.into_response()
        }
    }
}

async fn token_grant(state: &AppState, parts: &Parts, body: &[u8]) -> std::result::Result<Response, TokenError> {
    let request: TokenRequest = serde_urlencoded::from_bytes(body)
        .map_err(|e| TokenError::new("invalid_request", format!("the form body cannot be read: {e}")))?;
    let client = authenticate_client(state, parts, &request).await?;
    match request.grant_type.as_deref() {
        Some("authorization_code") => exchange_code(state, parts, &client, &request).await,
        Some("refresh_token") => refresh_grant(state, parts, &client, &request).await,
        Some(_) => Err(TokenError::new("unsupported_grant_type", "grant_type is authorization_code or refresh_token")),
        None => Err(TokenError::new("invalid_request", "grant_type is required")),
    }
}

/// The client, authenticated as its type requires.
async fn authenticate_client(
    state: &AppState,
    parts: &Parts,
    request: &TokenRequest,
) -> std::result::Result<db::Client, TokenError> {
    let basic = basic_credentials(parts);
    let tried_basic = parts.headers.contains_key(header::AUTHORIZATION);
    let invalid = |description: &str| TokenError {
        status: StatusCode::UNAUTHORIZED,
        code: "invalid_client",
        description: description.to_owned(),
        basic: tried_basic,
    };
    let (client_id, secret) = match (&basic, &request.client_id, &request.client_secret) {
        (Some(_), _, Some(_)) => {
            return Err(TokenError::new("invalid_request", "use one client authentication method"));
        }
        (Some((id, secret)), form_id, None) => {
            if form_id.as_ref().is_some_and(|f| f != id) {
                return Err(TokenError::new("invalid_request", "client_id differs from the authenticated client"));
            }
            (id.clone(), Some(secret.clone()))
        }
        (None, Some(id), secret) => (id.clone(), secret.clone()),
        (None, None, _) => return Err(invalid("client authentication is required")),
    };
    let Ok(name) = crate::model::AppName::parse(&client_id) else { return Err(invalid("unknown client")) };
    let client = db::client(&state.pool, name.as_str()).await?.ok_or_else(|| invalid("unknown client"))?;
    match (client.oidc.client_type, secret, &client.secret_hash) {
        (ClientType::Confidential, Some(secret), Some(hash)) => {
            let presented = token::hash(&secret);
            if !bool::from(subtle::ConstantTimeEq::ct_eq(presented.as_slice(), hash.as_slice())) {
                return Err(invalid("wrong client secret"));
            }
        }
        (ClientType::Confidential, None, _) => return Err(invalid("this client must authenticate with its secret")),
        (ClientType::Confidential, Some(_), None) => {
            return Err(invalid("this client has no secret yet (POST /v1/apps/{app}/client-secret)"));
        }
        (ClientType::Public, None, _) => {}
        (ClientType::Public, Some(_), _) => return Err(invalid("a public client has no secret")),
    }
    if !client.active {
        return Err(TokenError::new("unauthorized_client", "the application is disabled"));
    }
    Ok(client)
}

/// `Authorization: Basic` credentials, form-decoded as RFC 6749 §2.3.1 says.
fn basic_credentials(parts: &Parts) -> Option<(String, String)> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ").or_else(|| value.strip_prefix("basic "))?;
    let decoded = data_encoding::BASE64.decode(encoded.trim().as_bytes()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    let decode = |s: &str| url::form_urlencoded::parse(format!("v={s}").as_bytes()).next().map(|(_, v)| v.into_owned());
    Some((decode(id)?, decode(secret)?))
}

async fn exchange_code(
    state: &AppState,
    parts: &Parts,
    client: &db::Client,
    request: &TokenRequest,
) -> std::result::Result<Response, TokenError> {
    let presented = request.code.as_deref().ok_or_else(|| TokenError::new("invalid_request", "code is required"))?;
    let code_hash = token::hash(presented);
    let invalid_grant = |why: &str| TokenError::new("invalid_grant", why);
    let mut tx = state.pool.begin().await.map_err(StoreError::from)?;
    let code = db::take_code(&mut tx, &code_hash).await?.ok_or_else(|| invalid_grant("unknown code"))?;
    if code.used {
        // A code presented twice was stolen or replayed: the tokens it gave are ended too.
        if let Some(issued) = code.issued_session_id {
            store::identity::revoke_session(&mut tx, issued, "authorization_code_reused").await?;
        }
        tx.commit().await.map_err(StoreError::from)?;
        return Err(invalid_grant("the code was already used"));
    }
    if code.expired {
        return Err(invalid_grant("the code has expired"));
    }
    if code.application_id != client.id {
        return Err(invalid_grant("the code was issued to another client"));
    }
    if request.redirect_uri.as_deref() != Some(code.redirect_uri.as_str()) {
        return Err(invalid_grant("redirect_uri differs from the authorization request's"));
    }
    match (&code.code_challenge, request.code_verifier.as_deref()) {
        (Some(challenge), Some(verifier)) if oidc::pkce_matches(verifier, challenge) => {}
        (Some(_), _) => return Err(invalid_grant("code_verifier does not match the code_challenge")),
        (None, Some(_)) => return Err(invalid_grant("the authorization request had no code_challenge")),
        (None, None) => {}
    }
    let (access, refresh) = (token::issue(TokenKind::Access), token::issue(TokenKind::Refresh));
    let times = state.identity.settings.times;
    let session = db::create_client_session(&mut tx, code.session_id, client.id, &access.hash, &refresh.hash, times)
        .await?
        .ok_or_else(|| invalid_grant("the sign-in this code came from has ended"))?;
    db::record_issued_session(&mut tx, &code_hash, session.id).await?;
    tx.commit().await.map_err(StoreError::from)?;
    let user = crate::audit::SessionUser {
        email: &session.email,
        user_id: session.user_id,
        session_id: session.id,
        tenant: &session.tenant,
        role: session.role,
    };
    let target = crate::audit::Target::in_tenant(&session.tenant, format!("application/{}", client.name));
    let origin = super::caller::client(parts).origin();
    let details = json!({ "client": client.name, "grant": "authorization_code", "sessionId": session.id });
    let row = crate::audit::session_user(user, "oidc.token", target, crate::audit::Outcome::Success, &origin, details);
    write_audit(state, row).await;
    let id_token = sign_id_token(state, client, &session, &code.scope, code.nonce.as_deref()).await?;
    Ok(tokens(state, &access.token, &refresh.token, &id_token, &code.scope))
}

async fn refresh_grant(
    state: &AppState,
    parts: &Parts,
    client: &db::Client,
    request: &TokenRequest,
) -> std::result::Result<Response, TokenError> {
    let presented = request
        .refresh_token
        .as_deref()
        .ok_or_else(|| TokenError::new("invalid_request", "refresh_token is required"))?;
    // The scope is checked before the token rotates: a refused refresh leaves the client's tokens
    // as they were (issue 25.7). A token that is not current (unknown, spent) goes on to `refresh`,
    // which refuses it and ends a session whose spent token came back.
    let granted = db::granted_scope_by_refresh(&state.pool, &token::hash(presented)).await?;
    let narrow = |granted: &str| {
        oidc::narrowed(request.scope.as_deref(), granted).map_err(|why| TokenError::new("invalid_scope", why))
    };
    let scope = granted.as_deref().map(narrow).transpose()?;
    let refreshed = state.identity.refresh(presented, Some(client.id), &super::caller::client(parts)).await;
    let tokens_out = match refreshed {
        Ok(tokens) => tokens,
        Err(crate::identity::AuthError::Store(error)) => return Err(error.into()),
        Err(_) => {
            return Err(TokenError::new(
                "invalid_grant",
                "the refresh token is unknown, expired, already used (which ends its session) or another client's",
            ));
        }
    };
    let mut conn = state.pool.acquire().await.map_err(StoreError::from)?;
    let session = db::live_session(&mut conn, tokens_out.session.id, state.identity.settings.times)
        .await?
        .ok_or_else(|| TokenError::new("invalid_grant", "the session has ended"))?;
    // A racing refresh of the same token got its successor (the token was no longer current).
    let scope = match scope {
        Some(scope) => scope,
        None => narrow(&db::granted_scope(&mut conn, session.id).await?.unwrap_or_else(|| "openid".to_owned()))?,
    };
    drop(conn);
    let id_token = sign_id_token(state, client, &session, &scope, None).await?;
    Ok(tokens(state, &tokens_out.access_token, &tokens_out.refresh_token, &id_token, &scope))
}

async fn sign_id_token(
    state: &AppState,
    client: &db::Client,
    session: &ClientSession,
    scope: &str,
    nonce: Option<&str>,
) -> std::result::Result<String, TokenError> {
    let alg: Alg = client.oidc.id_token_signed_response_alg;
    // Just after the first start the keys may still be in the making.
    state.provider.keys.ready(std::time::Duration::from_secs(10)).await;
    let key = state
        .provider
        .keys
        .signer(alg)
        .ok_or_else(|| StoreError::Task(format!("no {} signing key is loaded", alg.as_str())))?;
    let provider = &state.provider;
    let claims =
        oidc::id_token_claims(&provider.issuer, &client.name, session, scope, nonce, provider.lifetimes.id_token);
    Ok(key.sign(&claims))
}

fn tokens(state: &AppState, access: &str, refresh: &str, id_token: &str, scope: &str) -> Response {
    no_store(axum::Json(TokenResponse {
        access_token: access.to_owned(),
        token_type: "Bearer",
        expires_in: state.identity.settings.times.access_ttl.as_secs(),
        refresh_token: refresh.to_owned(),
        id_token: id_token.to_owned(),
        scope: scope.to_owned(),
    }))
}

// --- Userinfo -----------------------------------------------------------------------------------

/// The UserInfo endpoint (OpenID Connect Core §5.3): the claims of the access token's user, whose
/// token comes as `Authorization: Bearer`.
#[utoipa::path(get, operation_id = "oidc_userinfo_get", path = "/oauth2/userinfo", tag = "public",
    responses(
        (status = 200, description = "The user's claims: sub, email, email_verified, name, tenant, role.", body = UserInfo),
        (status = 401, description = "`WWW-Authenticate: Bearer error=\"invalid_token\"`.", body = OAuthError),
    ))]
async fn userinfo(state: State<AppState>, parts: Parts, body: Bytes) -> Response {
    answer_userinfo(state, parts, body).await
}

/// The access token in a form body (RFC 6750 §2.2), where the client does not send it as a header.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct UserInfoForm {
    access_token: Option<String>,
}

/// The UserInfo endpoint on POST: the token as `Authorization: Bearer` or in the form.
#[utoipa::path(post, operation_id = "oidc_userinfo_post", path = "/oauth2/userinfo", tag = "public",
    request_body(content = Option<UserInfoForm>, content_type = "application/x-www-form-urlencoded", description = "Optional, with the token as `Authorization: Bearer` instead."),
    responses(
        (status = 200, description = "The user's claims: sub, email, email_verified, name, tenant, role.", body = UserInfo),
        (status = 401, description = "`WWW-Authenticate: Bearer error=\"invalid_token\"`.", body = OAuthError),
    ))]
async fn userinfo_form(state: State<AppState>, parts: Parts, body: Bytes) -> Response {
    answer_userinfo(state, parts, body).await
}

async fn answer_userinfo(State(state): State<AppState>, parts: Parts, body: Bytes) -> Response {
    let header_token = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .map(str::to_owned);
    let form_token =
        || url::form_urlencoded::parse(&body).find(|(k, _)| k == "access_token").map(|(_, v)| v.into_owned());
    let presented = header_token.or_else(form_token);
    let session = match &presented {
        Some(token) => db::session_by_access(&state.pool, &token::hash(token), state.identity.settings.times)
            .await
            .ok()
            .flatten()
            .filter(|s| s.client_id.is_some()),
        None => None,
    };
    let scope = match &session {
        Some(session) => db::granted_scope_by_session(&state.pool, session.id).await.ok().flatten(),
        None => None,
    };
    match (session, scope) {
        (Some(session), Some(scope)) => no_store(axum::Json(oidc::user_claims(&session, &scope))),
        _ => {
            // Refusals of unknown tokens are audited like the API's (issue 25.12), aggregated.
            let reason = if presented.is_some() { "unknown, expired or revoked token" } else { "no token" };
            state.denials.refused(crate::denials::Refusal {
                action: "oidc.userinfo",
                ip: client_ip(&parts),
                method: Some(parts.method.as_str().to_owned()),
                route: "/oauth2/userinfo".into(),
                resource: "/oauth2/userinfo".into(),
                tenant: None,
                reason: reason.into(),
                key_id: None,
                extra: serde_json::Map::new(),
            });
            let body = OAuthError {
                error: "invalid_token",
                error_description: "the access token is unknown, expired or revoked".into(),
            };
            let mut response = no_store((StatusCode::UNAUTHORIZED, axum::Json(body)));
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer error=\"invalid_token\""));
            response
        }
    }
}

// --- RP-initiated logout --------------------------------------------------------------------

#[derive(Deserialize, Default, utoipa::IntoParams, utoipa::ToSchema)]
#[into_params(parameter_in = Query)]
pub(super) struct LogoutRequest {
    id_token_hint: Option<String>,
    post_logout_redirect_uri: Option<String>,
    state: Option<String>,
    client_id: Option<String>,
    /// The CSRF token of the confirmation form (a logout without `id_token_hint`).
    csrf: Option<String>,
}

/// RP-Initiated Logout 1.0: ends the browser's session and the application sessions that came
/// from it, then returns to a registered post-logout URI or shows the login page.
#[utoipa::path(method(get, post), operation_id = "oidc_end_session", path = "/oauth2/logout", tag = "public", params(LogoutRequest),
    responses(
        (status = 303, description = "To the registered `post_logout_redirect_uri`, or to the login page."),
        (status = 200, description = "A page asking to confirm the sign-out (no `id_token_hint`).", body = String, content_type = "text/html"),
        (status = 400, description = "A page: the post-logout URI is not registered.", body = String, content_type = "text/html"),
    ))]
async fn end_session(
    State(state): State<AppState>,
    page: Browser,
    method: Method,
    parts: Parts,
    body: Bytes,
) -> Response {
    let raw = if method == Method::POST { body.to_vec() } else { parts.uri.query().unwrap_or("").as_bytes().to_vec() };
    let request: LogoutRequest = serde_urlencoded::from_bytes(&raw).unwrap_or_default();
    // A hint counts only if Gatehouse signed it (expired is fine) and it names a session of this
    // browser; otherwise the person is asked to confirm, so a link alone signs no one out.
    let browser = browser_session(&state, &parts).await;
    let hint = match (&request.id_token_hint, &browser) {
        (Some(hint), Some(browser)) => own_hint(&state, hint, browser.id).await,
        _ => None,
    };
    let hinted = hint.as_ref().and_then(audience_of_claims);
    if let (Some(asked), Some(hinted)) = (&request.client_id, &hinted)
        && asked != hinted
    {
        return error_page(&page, "oidc-logout-invalid-title", "oidc-logout-other-app");
    }
    let client_id = request.client_id.clone().or(hinted.clone());
    let target = match &request.post_logout_redirect_uri {
        None => None,
        Some(uri) => {
            let client = find_client(&state, client_id.as_deref()).await;
            match client.filter(|c| c.oidc.post_logout_redirect_uris.contains(uri)) {
                Some(_) => Some(uri.clone()),
                None => {
                    return error_page(&page, "oidc-logout-invalid-title", "oidc-logout-unregistered");
                }
            }
        }
    };
    let confirmed = hint.is_some()
        || (method == Method::POST
            && request.csrf.as_deref().is_some_and(|csrf| web::Csrf::of(&state).matches(&parts.headers, csrf)));
    if !confirmed {
        return confirm_logout(&page, &request);
    }
    end_browser_session(&state, &parts).await;
    let secure = state.identity.settings.public_url.starts_with("https://");
    let destination = match target {
        Some(uri) => match url::Url::parse(&uri) {
            Ok(mut url) => {
                if let Some(state) = &request.state {
                    url.query_pairs_mut().append_pair("state", state);
                }
                url.to_string()
            }
            Err(_) => "/login?signed_out=1".to_owned(),
        },
        None => "/login?signed_out=1".to_owned(),
    };
    // After the confirmation form, a redirect would be checked against its `form-action`.
    let mut response = if method == Method::POST {
        page.render(page.continue_to(&page.tr.t("signed-out-title"), &destination))
    } else {
        Redirect::to(&destination).into_response()
    };
    if let Ok(value) =
        HeaderValue::from_str(&web::cookies::clear(&web::cookies::host_only(web::SESSION_COOKIE, secure), secure))
    {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    web::secure(response.headers_mut());
    response
}

/// Without an ID token, a logout must be confirmed: a link alone must not sign anyone out.
fn confirm_logout(browser: &Browser, request: &LogoutRequest) -> Response {
    let hidden = [
        ("post_logout_redirect_uri", &request.post_logout_redirect_uri),
        ("state", &request.state),
        ("client_id", &request.client_id),
    ]
    .into_iter()
    .filter_map(|(name, value)| value.as_deref().map(|value| (name, value)))
    .collect();
    let body = templates::LogoutConfirm { t: browser.tr, csrf: browser.csrf(), hidden };
    browser.render(Page::new(&browser.tr.t("logout-title"), body.html()))
}

/// The claims of an ID token Gatehouse signed (with a key it still publishes) about a session of
/// the browser session `browser`.
async fn own_hint(state: &AppState, hint: &str, browser: uuid::Uuid) -> Option<serde_json::Map<String, Value>> {
    let keys = crate::operators::keys::KeySet::parse(&state.provider.keys.jwks()).ok()?;
    let claims = crate::operators::verify_signature(&keys, hint).ok()?;
    if claims.get("iss").and_then(Value::as_str) != Some(state.provider.issuer.as_str()) {
        return None;
    }
    let sid = claims.get("sid").and_then(Value::as_str).and_then(|sid| sid.parse::<uuid::Uuid>().ok())?;
    let family = db::family_of(&state.pool, sid).await.ok()??;
    (family == browser).then_some(claims)
}

/// The `azp` (or `aud`) of checked claims.
fn audience_of_claims(claims: &serde_json::Map<String, Value>) -> Option<String> {
    match (claims.get("azp").unwrap_or(&Value::Null), claims.get("aud").unwrap_or(&Value::Null)) {
        (Value::String(azp), _) => Some(azp.clone()),
        (_, Value::String(aud)) => Some(aud.clone()),
        (_, Value::Array(auds)) => auds.first()?.as_str().map(str::to_owned),
        _ => None,
    }
}

// --- Operators: client secrets and key rotation ---------------------------------------------

/// Sets a new secret for a confidential client, shown this once; the previous one stops working.
#[utoipa::path(post, path = "/v1/apps/{app}/client-secret", tag = "operator", security(("operator" = ["operator"])),
    params(("app" = String, Path, description = "The application's name (its OIDC client id).", pattern = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", example = "analytics-app")),
    responses(
        (status = 201, description = "The client's new secret, shown this once.", body = ClientSecret),
        (status = 404, response = super::openapi::Failure),
        (status = 409, response = super::openapi::Failure),
    ))]
async fn set_client_secret(State(state): State<AppState>, caller: Caller, Path(app): Path<String>) -> Result<Response> {
    caller.authorize(&state, Action::ManageKeys, &Resource::application(&app))?;
    let app = super::input::app(&app)?;
    let app = app.as_str();
    let client = db::client(&state.pool, app).await?;
    let Some(client) = client else {
        let mut conn = state.pool.acquire().await.map_err(StoreError::from)?;
        return Err(match store::apps::application(&mut conn, app).await? {
            Some(_) => ApiError::rule(
                store::Rule::Conflict,
                "not_an_oidc_client",
                format!("application `{app}` declares no `oidc` block; it is not an OpenID Connect client"),
            ),
            None => ApiError::NotFound(format!("there is no application `{app}`")),
        });
    };
    if client.oidc.client_type == ClientType::Public {
        return Err(ApiError::rule(
            store::Rule::Conflict,
            "public_client",
            format!("application `{app}` is a public client: it has no secret (it uses PKCE)"),
        ));
    }
    let secret = token::issue(TokenKind::ClientSecret);
    db::set_client_secret(&state.pool, client.id, &secret.hash).await?;
    caller.record(&state, "oidc.client_secret.set", Target::platform(format!("application/{app}")), json!({})).await?;
    Ok(no_store((
        StatusCode::CREATED,
        axum::Json(ClientSecret { client_id: app.to_owned(), client_secret: secret.token }),
    )))
}

/// A confidential client's new secret; the old one stops working.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ClientSecret {
    client_id: String,
    /// Shown this once; stored as a digest.
    client_secret: String,
}

/// The keys that sign ID tokens from now on.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct RotatedKeys {
    kids: Vec<String>,
}

/// Rotates the ID token signing keys at once: the published next keys start signing.
#[utoipa::path(post, path = "/v1/oidc/keys/rotate", tag = "operator", security(("operator" = ["operator"])),
    responses((status = 200, description = "The keys that sign from now on.", body = RotatedKeys)))]
async fn rotate_keys(State(state): State<AppState>, caller: Caller) -> Result<Response> {
    caller.authorize(&state, Action::ManageKeys, &Resource::platform("ID token signing keys"))?;
    let kids = state.provider.keys.rotate().await?;
    caller
        .record(&state, "oidc.keys.rotate", Target::platform("oidc/keys".to_owned()), json!({ "kids": kids }))
        .await?;
    Ok(axum::Json(RotatedKeys { kids }).into_response())
}

#[cfg(test)]
mod tests {
    /// The discovery document has exactly the fields `ProviderMetadata` documents.
    #[test]
    fn the_documented_provider_metadata_is_what_discovery_serves() {
        let utoipa::openapi::RefOr::T(utoipa::openapi::schema::Schema::Object(schema)) =
            <super::ProviderMetadata as utoipa::PartialSchema>::schema()
        else {
            panic!("ProviderMetadata is an object schema");
        };
        let documented: std::collections::BTreeSet<&String> = schema.properties.keys().collect();
        let served = crate::oidc::discovery("https://gatehouse.example");
        let served: std::collections::BTreeSet<&String> = served.as_object().expect("an object").keys().collect();
        assert_eq!(documented, served);
    }

    use super::*;

    #[test]
    fn basic_credentials_are_form_decoded() {
        let encoded = data_encoding::BASE64.encode(b"my%20app:s%3Acret");
        let request = axum::http::Request::builder()
            .header(header::AUTHORIZATION, format!("Basic {encoded}"))
            .body(())
            .expect("request");
        let (parts, ()) = request.into_parts();
        assert_eq!(basic_credentials(&parts), Some(("my app".into(), "s:cret".into())));
    }

    #[test]
    fn the_audience_of_a_hint_is_read_from_azp_or_aud() {
        let claims = |v: Value| v.as_object().cloned().unwrap_or_default();
        assert_eq!(audience_of_claims(&claims(json!({ "aud": ["billing-app"] }))), Some("billing-app".into()));
        assert_eq!(audience_of_claims(&claims(json!({ "azp": "a", "aud": "b" }))), Some("a".into()));
        assert_eq!(audience_of_claims(&claims(json!({}))), None);
    }

    #[test]
    fn an_authorization_request_survives_the_trip_through_the_login_page() {
        let request = AuthorizeRequest {
            client_id: Some("a b".into()),
            state: Some("s&t".into()),
            ..AuthorizeRequest::default()
        };
        let url = url_of(&request);
        let query = url.strip_prefix("/oauth2/authorize?").unwrap_or("");
        let back: AuthorizeRequest = serde_urlencoded::from_str(query).unwrap_or_default();
        assert_eq!((back.client_id.as_deref(), back.state.as_deref()), (Some("a b"), Some("s&t")));
    }
}
