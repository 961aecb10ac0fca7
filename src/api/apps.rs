//! Managed applications and their API keys (FR-SYS-001..003, FR-004), for operators. A key's secret
//! is in the response that issues it and nowhere else; every change is audited.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::auth::no_store;
use super::body::JsonBody;
use super::caller::Caller;
use super::{ApiError, AppState, Result, input};
use crate::audit::Target;
use crate::authz::{Action, Resource};
use crate::delivery::{key, sync};
use crate::model::{AppName, AppStatus, Scope, shown};
use crate::store::Rule;
use crate::store::apps::{self as db, ApplicationChange, ApplicationRecord, KeyRecord, NewApplication, NewKey};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_apps, create_app))
        .routes(routes!(show_app, update_app))
        .routes(routes!(list_keys, create_key))
        .routes(routes!(show_key, revoke_key))
        .routes(routes!(rotate_key))
}

fn scopes(names: &[String]) -> Result<Vec<String>> {
    let mut parsed = Vec::with_capacity(names.len());
    for name in names {
        let scope = Scope::parse(name).ok_or_else(|| {
            let known: Vec<&str> = Scope::ALL.iter().map(|s| s.as_str()).collect();
            ApiError::BadRequest(format!("unknown scope `{}`; scopes are {}", shown(name), known.join(", ")))
        })?;
        if !parsed.contains(&scope.as_str().to_owned()) {
            parsed.push(scope.as_str().to_owned());
        }
    }
    Ok(parsed)
}

fn status(value: &str) -> Result<AppStatus> {
    AppStatus::parse(value)
        .ok_or_else(|| ApiError::BadRequest(format!("status `{}` is not one of active, disabled", shown(value))))
}

/// The application `{app}` of a path names.
async fn find_app(state: &AppState, name: &str) -> Result<ApplicationRecord> {
    let name = input::app(name)?;
    let mut conn = state.pool.acquire().await.map_err(crate::store::StoreError::from)?;
    db::application(&mut conn, name.as_str())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no application `{name}`")))
}

#[utoipa::path(
    get,
    path = "/v1/apps",
    tag = "operator",
    security(("operator" = ["operator", "auditor"])),
    responses((status = 200, description = "Every application.", body = Applications)),
)]
async fn list_apps(State(state): State<AppState>, caller: Caller) -> Result<Response> {
    Ok(axum::Json(Applications { applications: applications(&state, &caller).await? }).into_response())
}

/// Every application.
pub(super) async fn applications(state: &AppState, caller: &Caller) -> Result<Vec<ApplicationRecord>> {
    caller.authorize(state, Action::ReadApps, &Resource::platform("applications"))?;
    Ok(db::list_applications(&state.pool).await?)
}

#[utoipa::path(
    get,
    path = "/v1/apps/{app}",
    tag = "operator",
    security(("operator" = ["operator", "auditor"])),
    params(("app" = String, Path, description = "The application's name.", pattern = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", example = "analytics-app")),
    responses((status = 200, description = "The application.", body = ApplicationRecord)),
)]
async fn show_app(State(state): State<AppState>, caller: Caller, Path(app): Path<String>) -> Result<Response> {
    caller.authorize(&state, Action::ReadApps, &Resource::application(&app))?;
    Ok(axum::Json(find_app(&state, &app).await?).into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateApp {
    #[schema(example = "reports-app")]
    name: String,
    #[schema(example = "Reports")]
    display_name: String,
    /// Who answers for the application: an email address.
    #[schema(example = "ops@corp.example")]
    owner: String,
    #[serde(default)]
    #[schema(example = json!(["flags:read"]))]
    scopes: Vec<String>,
    /// `active` (the default) or `disabled`.
    #[schema(example = "active")]
    status: Option<String>,
}

#[utoipa::path(
    post,
    path = "/v1/apps",
    tag = "operator",
    security(("operator" = ["operator"])),
    request_body(content = CreateApp),
    responses((status = 201, description = "The created application.", body = ApplicationRecord)),
)]
async fn create_app(State(state): State<AppState>, caller: Caller, body: JsonBody<CreateApp>) -> Result<Response> {
    caller.authorize(&state, Action::ManageApps, &Resource::platform("applications"))?;
    let request = body.value()?;
    let name = AppName::parse(&request.name).map_err(|e| ApiError::BadRequest(format!("name: {e}")))?;
    let display_name = input::display_name("displayName", &request.display_name)?;
    let owner = input::email("owner", &request.owner)?;
    let scopes = scopes(&request.scopes)?;
    let status = status(request.status.as_deref().unwrap_or("active"))?;
    let new = NewApplication {
        name: name.as_str(),
        display_name: display_name.as_str(),
        owner: owner.as_str(),
        status,
        scopes: &scopes,
    };
    let details = json!({ "scopes": scopes, "status": status });
    let entry = caller.audit("application.create", Target::platform(format!("application/{name}")), details);
    let created = db::create_application(&state.pool, new, entry).await?.ok_or_else(|| {
        ApiError::rule(Rule::Conflict, "application_exists", format!("an application named `{name}` already exists"))
    })?;
    sync::refresh(&state.delivery, &state.pool, &[], &[created.id]).await?;
    Ok((StatusCode::CREATED, axum::Json(created)).into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct UpdateApp {
    #[schema(example = "Reports")]
    display_name: Option<String>,
    #[schema(example = "ops@corp.example")]
    owner: Option<String>,
    #[schema(example = json!(["flags:read"]))]
    scopes: Option<Vec<String>>,
    /// `active` or `disabled`.
    #[schema(example = "active")]
    status: Option<String>,
}

/// Changes an application registered through the API. One declared in Git is changed in Git:
/// a change here would be reverted as drift on the next pass.
#[utoipa::path(
    patch,
    path = "/v1/apps/{app}",
    tag = "operator",
    security(("operator" = ["operator"])),
    params(("app" = String, Path, description = "The application's name.", pattern = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", example = "analytics-app")),
    request_body(content = UpdateApp),
    responses((status = 200, description = "The updated application.", body = ApplicationRecord)),
)]
async fn update_app(
    State(state): State<AppState>,
    caller: Caller,
    Path(app): Path<String>,
    body: JsonBody<UpdateApp>,
) -> Result<Response> {
    caller.authorize(&state, Action::ManageApps, &Resource::application(&app))?;
    let request = body.value()?;
    let display_name = request.display_name.as_deref().map(|d| input::display_name("displayName", d)).transpose()?;
    let owner = request.owner.as_deref().map(|o| input::email("owner", o)).transpose()?;
    let current = find_app(&state, &app).await?;
    if current.managed_by == "git" {
        let file = current.source_file.as_deref().unwrap_or("the config repository");
        return Err(ApiError::rule(
            Rule::Conflict,
            "managed_by_git",
            format!("application `{app}` is declared in Git ({file}); change it there"),
        ));
    }
    let change = ApplicationChange {
        display_name: display_name.map(|d| d.as_str().to_owned()),
        owner: owner.map(|o| o.to_string()),
        status: request.status.as_deref().map(status).transpose()?,
        scopes: request.scopes.as_deref().map(scopes).transpose()?,
    };
    let details = json!({ "displayName": change.display_name, "owner": change.owner, "status": change.status, "scopes": change.scopes });
    let entry = caller.audit("application.update", Target::platform(format!("application/{app}")), details);
    let updated = db::update_application(&state.pool, current.id, &change, entry).await?;
    sync::refresh(&state.delivery, &state.pool, &[], &[updated.id]).await?;
    Ok(axum::Json(updated).into_response())
}

#[utoipa::path(
    get,
    path = "/v1/apps/{app}/keys",
    tag = "operator",
    security(("operator" = ["operator", "auditor"])),
    params(("app" = String, Path, description = "The application's name.", pattern = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", example = "analytics-app")),
    responses((status = 200, description = "The application's keys, never their secrets.", body = Keys)),
)]
async fn list_keys(State(state): State<AppState>, caller: Caller, Path(app): Path<String>) -> Result<Response> {
    let (_, keys) = app_keys(&state, &caller, &app).await?;
    Ok(axum::Json(Keys { keys }).into_response())
}

/// An application and its keys, never their secrets.
pub(super) async fn app_keys(
    state: &AppState,
    caller: &Caller,
    app: &str,
) -> Result<(ApplicationRecord, Vec<KeyRecord>)> {
    caller.authorize(state, Action::ReadApps, &Resource::application(app))?;
    let app = find_app(state, app).await?;
    let keys = db::list_keys(&state.pool, app.id).await?;
    Ok((app, keys))
}

#[utoipa::path(
    get,
    path = "/v1/apps/{app}/keys/{key}",
    tag = "operator",
    security(("operator" = ["operator", "auditor"])),
    params(("app" = String, Path, description = "The application's name.", pattern = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", example = "analytics-app"), ("key" = String, Path, description = "The key id: the 12 letters and digits after `gatehouse_` in the key.", pattern = "^[A-Za-z0-9]{12}$")),
    responses((status = 200, description = "The key, without its secret.", body = KeyRecord)),
)]
async fn show_key(
    State(state): State<AppState>,
    caller: Caller,
    Path((app, key_id)): Path<(String, String)>,
) -> Result<Response> {
    caller.authorize(&state, Action::ReadApps, &Resource::application(&app))?;
    let key_id = input::key_id(&key_id)?;
    let key_id = key_id.as_str();
    let app = find_app(&state, &app).await?;
    let mut conn = state.pool.acquire().await.map_err(crate::store::StoreError::from)?;
    let key = db::key(&mut conn, app.id, key_id).await?.ok_or_else(|| no_key(&app.name, key_id))?;
    Ok(axum::Json(key).into_response())
}

fn no_key(app: &str, key_id: &str) -> ApiError {
    ApiError::NotFound(format!("application `{app}` has no key `{key_id}`"))
}

#[derive(Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({ "name": "ci", "scopes": ["flags:read"], "expiresIn": "90d" }))]
struct CreateKey {
    name: Option<String>,
    /// Default: every scope of the application.
    scopes: Option<Vec<String>>,
    /// Such as `90d`; or `expiresAt`.
    expires_in: Option<String>,
    expires_at: Option<DateTime<Utc>>,
}

/// The response that carries a secret: the key as lists show it, plus `secret`, shown this once.
fn issued(record: KeyRecord, token: &str) -> IssuedKey {
    IssuedKey { key: record, secret: token.to_owned(), notice: "store this secret now: it is not shown again" }
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Applications {
    applications: Vec<ApplicationRecord>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Keys {
    keys: Vec<KeyRecord>,
}

/// A key as it is issued: the only response that carries its secret.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct IssuedKey {
    #[serde(flatten)]
    key: KeyRecord,
    /// The whole API key (`gatehouse_<key id>_<secret>`); not shown again.
    secret: String,
    notice: &'static str,
}

/// A rotation: the replacement with its secret, and the old key with its new expiry.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Rotated {
    key: IssuedKey,
    previous: KeyRecord,
}

#[utoipa::path(
    post,
    path = "/v1/apps/{app}/keys",
    tag = "operator",
    security(("operator" = ["operator"])),
    params(("app" = String, Path, description = "The application's name.", pattern = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", example = "analytics-app")),
    request_body(content = Option<CreateKey>, description = "Optional; an empty body issues a key with every scope of the application."),
    responses((status = 201, description = "The key with its `secret`, shown this once.", body = IssuedKey)),
)]
async fn create_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(app): Path<String>,
    body: JsonBody<Option<CreateKey>>,
) -> Result<Response> {
    // Who may not issue keys learns that before anything about their body.
    caller.authorize(&state, Action::ManageKeys, &Resource::application(&app))?;
    let request = body.value()?.unwrap_or_default();
    let asked = KeyRequest {
        name: request.name.as_deref(),
        scopes: request.scopes.as_deref(),
        expires_in: request.expires_in.as_deref(),
        expires_at: request.expires_at,
    };
    let (record, token) = issue_key(&state, &caller, &app, &asked).await?;
    Ok(no_store((StatusCode::CREATED, axum::Json(issued(record, &token)))))
}

/// A key as asked for, before it is checked.
#[derive(Default)]
pub(super) struct KeyRequest<'a> {
    pub name: Option<&'a str>,
    /// `None`: every scope of the application.
    pub scopes: Option<&'a [String]>,
    /// Such as `90d`; or `expires_at`.
    pub expires_in: Option<&'a str>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Issues a key of `app`, audited and known to every replica at once: its record and the whole
/// key, whose secret is shown this once and stored only as a hash.
pub(super) async fn issue_key(
    state: &AppState,
    caller: &Caller,
    app: &str,
    request: &KeyRequest<'_>,
) -> Result<(KeyRecord, String)> {
    caller.authorize(state, Action::ManageKeys, &Resource::application(app))?;
    let name = request.name.map(|n| input::display_name("name", n)).transpose()?;
    let app = find_app(state, app).await?;
    let scopes = match request.scopes {
        Some(asked) => {
            let asked = scopes(asked)?;
            if let Some(extra) = asked.iter().find(|s| !app.scopes.contains(s)) {
                return Err(ApiError::BadRequest(format!(
                    "application `{}` may not use the {extra} scope (it has: {})",
                    app.name,
                    app.scopes.join(", ")
                )));
            }
            asked
        }
        None => app.scopes.clone(),
    };
    let expires_at = match (request.expires_in, request.expires_at) {
        (Some(_), Some(_)) => return Err(ApiError::BadRequest("give expiresIn or expiresAt, not both".into())),
        (Some(text), None) => Some(input::from_now("expiresIn", input::duration("expiresIn", text)?)?),
        (None, Some(at)) => Some(input::expiry("expiresAt", at)?),
        (None, None) => None,
    };
    let issued_key = key::issue();
    let target = Target::platform(format!("application/{}/key/{}", app.name, issued_key.key_id));
    let entry =
        caller.audit("api_key.create", target, json!({ "scopes": scopes, "expiresAt": expires_at, "name": name }));
    let new = NewKey {
        key_id: &issued_key.key_id,
        application: app.id,
        secret_hash: &issued_key.secret_hash,
        name: name.as_ref().map(|n| n.as_str()),
        scopes: &scopes,
        expires_at,
        created_by: caller.actor.name(),
    };
    let record = db::create_key(&state.pool, new, entry).await?;
    sync::refresh(&state.delivery, &state.pool, &[&issued_key.key_id], &[]).await?;
    Ok((record, issued_key.token))
}

/// Revokes at once, on every replica (the change feed), and keeps the key listed as revoked.
#[utoipa::path(
    delete,
    path = "/v1/apps/{app}/keys/{key}",
    tag = "operator",
    security(("operator" = ["operator"])),
    params(("app" = String, Path, description = "The application's name.", pattern = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", example = "analytics-app"), ("key" = String, Path, description = "The key id: the 12 letters and digits after `gatehouse_` in the key.", pattern = "^[A-Za-z0-9]{12}$")),
    responses((status = 200, description = "The revoked key.", body = KeyRecord)),
)]
async fn revoke_key(
    State(state): State<AppState>,
    caller: Caller,
    Path((app, key_id)): Path<(String, String)>,
) -> Result<Response> {
    Ok(axum::Json(revoke(&state, &caller, &app, &key_id).await?).into_response())
}

/// Revokes a key at once, on every replica, audited; it stays listed as revoked.
pub(super) async fn revoke(state: &AppState, caller: &Caller, app: &str, key_id: &str) -> Result<KeyRecord> {
    caller.authorize(state, Action::ManageKeys, &Resource::application(app))?;
    let key_id = input::key_id(key_id)?;
    let key_id = key_id.as_str();
    let app = find_app(state, app).await?;
    let entry =
        caller.audit("api_key.revoke", Target::platform(format!("application/{}/key/{key_id}", app.name)), json!({}));
    let revoked = db::revoke_key(&state.pool, app.id, key_id, entry).await?.ok_or_else(|| no_key(&app.name, key_id))?;
    sync::refresh(&state.delivery, &state.pool, &[key_id], &[]).await?;
    Ok(revoked)
}

#[derive(Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RotateKey {
    /// How long the old key keeps working, such as `24h` (the default) or `0s`.
    #[schema(example = "1h")]
    grace_period: Option<String>,
}

/// A new key with the old one's name and scopes; the old one works for the grace period, then expires.
#[utoipa::path(
    post,
    path = "/v1/apps/{app}/keys/{key}/rotate",
    tag = "operator",
    security(("operator" = ["operator"])),
    params(("app" = String, Path, description = "The application's name.", pattern = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", example = "analytics-app"), ("key" = String, Path, description = "The key id: the 12 letters and digits after `gatehouse_` in the key.", pattern = "^[A-Za-z0-9]{12}$")),
    request_body(content = Option<RotateKey>, description = "Optional; the old key works for `gracePeriod` (default 24h)."),
    responses((status = 201, description = "The replacement key with its secret, and the previous one.", body = Rotated)),
)]
async fn rotate_key(
    State(state): State<AppState>,
    caller: Caller,
    Path((app, key_id)): Path<(String, String)>,
    body: JsonBody<Option<RotateKey>>,
) -> Result<Response> {
    caller.authorize(&state, Action::ManageKeys, &Resource::application(&app))?;
    let request = body.value()?.unwrap_or_default();
    let grace = input::duration("gracePeriod", request.grace_period.as_deref().unwrap_or("24h"))?;
    let old_until = input::from_now("gracePeriod", grace)?;
    let key_id = input::key_id(&key_id)?;
    let key_id = key_id.as_str();
    let app = find_app(&state, &app).await?;
    let issued_key = key::issue();
    let target = Target::platform(format!("application/{}/key/{key_id}", app.name));
    let entry = caller.audit(
        "api_key.rotate",
        target,
        json!({ "replacement": issued_key.key_id, "oldKeyExpiresAt": old_until }),
    );
    let new = NewKey {
        key_id: &issued_key.key_id,
        application: app.id,
        secret_hash: &issued_key.secret_hash,
        name: None,
        scopes: &[],
        expires_at: None,
        created_by: caller.actor.name(),
    };
    let (old, new) = db::rotate_key(&state.pool, key_id, new, old_until, entry)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("application `{}` has no unrevoked key `{key_id}`", app.name)))?;
    sync::refresh(&state.delivery, &state.pool, &[key_id, &issued_key.key_id], &[]).await?;
    let body = Rotated { key: issued(new, &issued_key.token), previous: old };
    Ok(no_store((StatusCode::CREATED, axum::Json(body))))
}
