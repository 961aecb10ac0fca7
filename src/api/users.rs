//! `/v1/tenants/{tenant}/users/...`: what a tenant's owners and admins (or an operator) do to its
//! users' access: list them, end their sessions, resend an invitation. Every query names the
//! tenant; a session of another tenant is refused and audited.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde_json::json;

use super::caller::Caller;
use super::{ApiError, AppState, Result, input};
use crate::audit::Target;
use crate::authz::Action;
use crate::model::{AccountStatus, Email, TenantName};
use crate::store;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/tenants/{tenant}/users", get(list))
        .route("/v1/tenants/{tenant}/users/{email}/sessions", delete(end_sessions))
        .route("/v1/tenants/{tenant}/users/{email}/invitation", post(resend_invitation))
}

/// Writes the row of `caller` having done `action` to a user of `tenant`.
async fn audit(
    state: &AppState,
    caller: &Caller,
    action: &str,
    tenant: &TenantName,
    email: &str,
    details: serde_json::Value,
) -> Result<()> {
    let target = Target::in_tenant(tenant.as_str(), format!("tenant/{tenant}/user/{email}"));
    caller.record(state, action, target, details).await
}

#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/users",
    tag = "session",
    security(("operator" = []), ("session" = [])),
    params(("tenant" = String, Path, description = "The tenant's name.", pattern = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", example = "acme")),
    responses((status = 200, description = "The tenant's users (an operator, or an owner or admin of the tenant).", body = Users)),
)]
async fn list(State(state): State<AppState>, caller: Caller, Path(tenant): Path<String>) -> Result<Response> {
    let (tenant, _) = caller.authorize_tenant(&state, Action::ListUsers, "users", &tenant)?;
    let users = store::identity::tenant_users(&state.pool, tenant.as_str()).await?;
    Ok(axum::Json(Users { users }).into_response())
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct Users {
    users: Vec<store::identity::TenantUser>,
}

async fn user(state: &AppState, tenant: &TenantName, email: &Email) -> Result<store::identity::TenantUser> {
    store::identity::tenant_user(&state.pool, tenant.as_str(), email.as_str())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("tenant `{tenant}` has no user {email}")))
}

/// An admin's revoke: ends every session of the user at once.
#[utoipa::path(
    delete,
    path = "/v1/tenants/{tenant}/users/{email}/sessions",
    tag = "session",
    security(("operator" = []), ("session" = [])),
    params(("tenant" = String, Path, description = "The tenant's name.", pattern = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", example = "acme"), ("email" = String, Path, description = "The user's email address.", example = "dan@acme.example")),
    responses((status = 200, description = "`{\"sessionsEnded\": n}`.", body = Object)),
)]
async fn end_sessions(
    State(state): State<AppState>,
    caller: Caller,
    Path((tenant, email)): Path<(String, String)>,
) -> Result<Response> {
    let tenant = caller.authorize_tenant_user(&state, Action::EndUserSessions, &tenant, &email)?;
    let email = input::path_email(&email)?;
    let user = user(&state, &tenant, &email).await?;
    let ended = {
        let mut conn = state.pool.acquire().await.map_err(store::StoreError::from)?;
        store::identity::revoke_user_sessions(&mut conn, user.id, None, "revoked_by_admin").await?
    };
    audit(&state, &caller, "auth.session.revoke", &tenant, &user.email, json!({ "sessionsEnded": ended })).await?;
    Ok(axum::Json(json!({ "sessionsEnded": ended })).into_response())
}

/// Resends an invitation: a new link, the earlier ones stop working.
#[utoipa::path(
    post,
    path = "/v1/tenants/{tenant}/users/{email}/invitation",
    tag = "session",
    security(("operator" = []), ("session" = [])),
    params(("tenant" = String, Path, description = "The tenant's name.", pattern = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", example = "acme"), ("email" = String, Path, description = "The user's email address.", example = "dan@acme.example")),
    responses((status = 202, description = "A new invitation is on its way.", body = Object)),
)]
async fn resend_invitation(
    State(state): State<AppState>,
    caller: Caller,
    Path((tenant, email)): Path<(String, String)>,
) -> Result<Response> {
    let tenant = caller.authorize_tenant_user(&state, Action::ResendInvitation, &tenant, &email)?;
    let email = input::path_email(&email)?;
    let user = user(&state, &tenant, &email).await?;
    if user.status != AccountStatus::Invited {
        return Err(ApiError::Conflict(format!("{} is {}, not invited", user.email, user.status)));
    }
    state.identity.resend_invitation(user.id).await?.ok_or_else(|| ApiError::NotFound(email.to_string()))?;
    audit(&state, &caller, "auth.invitation.send", &tenant, &user.email, json!({})).await?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(json!({ "message": format!("a new invitation is on its way to {}", user.email) })),
    )
        .into_response())
}
