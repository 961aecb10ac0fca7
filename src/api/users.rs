//! `/v1/tenants/{tenant}/users/...`: what a tenant's owners and admins (or an operator) do to its
//! users' access: list them, end their sessions, resend an invitation. Every query names the
//! tenant; a session of another tenant is refused and audited.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde_json::json;

use super::session_auth::{pending_refusal, presented_session};
use super::{ApiError, AppState, Denied, Result, deny, input, secret_matches};
use crate::model::{Email, TenantName};
use crate::store::{self, AuditEntry};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/tenants/{tenant}/users", get(list))
        .route("/v1/tenants/{tenant}/users/{email}/sessions", delete(end_sessions))
        .route("/v1/tenants/{tenant}/users/{email}/invitation", post(resend_invitation))
}

/// Who may administer a tenant's users: an operator, or an owner or admin of that very tenant.
struct Admin {
    actor: String,
    actor_type: &'static str,
}

/// The caller, if it may administer `tenant` (as the path gives it), and the tenant's name. The
/// caller is authenticated first: a malformed tenant is a 400 only to someone who may ask.
async fn admin_of(state: &AppState, parts: &Parts, tenant: &str) -> Result<(Admin, TenantName)> {
    if let Some(session) = presented_session(state, parts).await? {
        if let Some(pending) = session.pending.as_deref() {
            return Err(pending_refusal(pending));
        }
        let tenant = input::tenant(tenant)?;
        let reason = if session.tenant != tenant.as_str() {
            Some("a session of another tenant")
        } else if !matches!(session.role.as_str(), "owner" | "admin") {
            Some("the session's role is not owner or admin")
        } else {
            None
        };
        if let Some(reason) = reason {
            let entry = AuditEntry {
                actor: session.email.clone(),
                actor_type: "user",
                action: "api.denied".into(),
                resource: parts.uri.path().to_owned(),
                tenant: Some(tenant.to_string()),
                success: false,
                metadata: json!({ "method": parts.method.as_str(), "reason": reason, "sessionTenant": session.tenant }),
            };
            state.denials.record(entry);
            return Err(ApiError::Forbidden {
                code: "forbidden",
                message: format!("only owners and admins of tenant `{tenant}` may do this"),
            });
        }
        return Ok((Admin { actor: session.email, actor_type: "user" }, tenant));
    }
    let presented = super::session_auth::bearer(parts);
    if secret_matches(state.operator_token.as_ref(), presented) {
        return Ok((Admin { actor: "operator".into(), actor_type: "operator" }, input::tenant(tenant)?));
    }
    Err(deny(
        &state.denials,
        Denied::of_parts(parts),
        "a session of a tenant owner or admin, or the operator token, is required",
    ))
}

async fn audit(
    state: &AppState,
    admin: &Admin,
    action: &str,
    tenant: &TenantName,
    email: &str,
    metadata: serde_json::Value,
) -> Result<()> {
    let entry = AuditEntry {
        actor: admin.actor.clone(),
        actor_type: admin.actor_type,
        action: action.into(),
        resource: format!("tenant/{tenant}/user/{email}"),
        tenant: Some(tenant.to_string()),
        success: true,
        metadata,
    };
    Ok(store::apps::audit(&state.pool, entry).await?)
}

#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/users",
    tag = "session",
    security(("operator" = []), ("session" = [])),
    params(("tenant" = String, Path, description = "The tenant's name.", pattern = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", example = "acme")),
    responses((status = 200, description = "The tenant's users (an operator, or an owner or admin of the tenant).", body = Users)),
)]
async fn list(State(state): State<AppState>, parts: Parts, Path(tenant): Path<String>) -> Result<Response> {
    let (_, tenant) = admin_of(&state, &parts, &tenant).await?;
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
    parts: Parts,
    Path((tenant, email)): Path<(String, String)>,
) -> Result<Response> {
    let (admin, tenant) = admin_of(&state, &parts, &tenant).await?;
    let email = input::path_email(&email)?;
    let user = user(&state, &tenant, &email).await?;
    let ended = {
        let mut conn = state.pool.acquire().await.map_err(store::StoreError::from)?;
        store::identity::revoke_user_sessions(&mut conn, user.id, None, "revoked_by_admin").await?
    };
    audit(&state, &admin, "auth.session.revoke", &tenant, &user.email, json!({ "sessionsEnded": ended })).await?;
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
    parts: Parts,
    Path((tenant, email)): Path<(String, String)>,
) -> Result<Response> {
    let (admin, tenant) = admin_of(&state, &parts, &tenant).await?;
    let email = input::path_email(&email)?;
    let user = user(&state, &tenant, &email).await?;
    if user.status != "invited" {
        return Err(ApiError::Conflict(format!("{} is {}, not invited", user.email, user.status)));
    }
    state.identity.resend_invitation(user.id).await?.ok_or_else(|| ApiError::NotFound(email.to_string()))?;
    audit(&state, &admin, "auth.invitation.send", &tenant, &user.email, json!({})).await?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(json!({ "message": format!("a new invitation is on its way to {}", user.email) })),
    )
        .into_response())
}
