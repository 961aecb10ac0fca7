//! `POST /access/v1/evaluation`: access decisions for other services, in the shape of the OpenID
//! AuthZEN Authorization API 1.0 (Access Evaluation). A managed application holding the
//! `authz:evaluate` scope asks whether the user of a Gatehouse session may do an action to a resource
//! of a tenant open to the application; the answer comes from the same `authorize` as every route of
//! this API.
//!
//! ```json
//! {"subject": {"type": "session", "id": "gatehouse_at_…"},
//!  "action": {"name": "users.list"},
//!  "resource": {"type": "tenant", "id": "acme"}}
//! → {"decision": false, "context": {"reason": "…", "code": "forbidden"}}
//! ```

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::body::JsonBody;
use super::caller::{Caller, facts};
use super::{ApiError, AppState, Result};
use crate::authz::{self, Action, Actor, Decision, Resource};
use crate::identity::token::{self, TokenKind};
use crate::model::shown;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(evaluate))
}

/// An AuthZEN access evaluation request.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EvaluationRequest {
    subject: Subject,
    action: ActionRef,
    resource: ResourceRef,
    /// Accepted and ignored: Gatehouse decisions depend on the subject, action and resource only.
    #[serde(default)]
    #[schema(value_type = Object)]
    #[allow(dead_code)]
    context: Option<Map<String, Value>>,
}

/// The user asking, by their session: `type` is `session`, `id` its access token.
#[derive(Deserialize, utoipa::ToSchema)]
struct Subject {
    #[serde(rename = "type")]
    #[schema(example = "session")]
    kind: String,
    #[schema(example = "gatehouse_at_…")]
    id: String,
    #[serde(default)]
    #[schema(value_type = Object)]
    #[allow(dead_code)]
    properties: Option<Map<String, Value>>,
}

/// The action, by its name in Gatehouse's table, such as `users.list` or `flags.read`.
#[derive(Deserialize, utoipa::ToSchema)]
struct ActionRef {
    #[schema(example = "users.list")]
    name: String,
    #[serde(default)]
    #[schema(value_type = Object)]
    #[allow(dead_code)]
    properties: Option<Map<String, Value>>,
}

/// The resource: `tenant` (`id` the tenant), or `user` (`id` the email, `properties.tenant` the
/// tenant).
#[derive(Deserialize, utoipa::ToSchema)]
struct ResourceRef {
    #[serde(rename = "type")]
    #[schema(example = "tenant")]
    kind: String,
    #[schema(example = "acme")]
    id: String,
    #[serde(default)]
    #[schema(value_type = Object)]
    properties: Option<Map<String, Value>>,
}

/// An AuthZEN decision.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct EvaluationResponse {
    decision: bool,
    /// `reason` (why not, in words) and `code` when denied.
    #[schema(value_type = Object)]
    context: Value,
}

#[utoipa::path(
    post,
    path = "/access/v1/evaluation",
    tag = "application",
    security(("apiKey" = ["authz:evaluate"]), ("apiKeyHeader" = ["authz:evaluate"])),
    request_body(content = EvaluationRequest),
    responses((status = 200, description = "The decision (OpenID AuthZEN 1.0).", body = EvaluationResponse)),
)]
async fn evaluate(
    State(state): State<AppState>,
    caller: Caller,
    body: JsonBody<EvaluationRequest>,
) -> Result<Json<EvaluationResponse>> {
    caller.authorize(&state, Action::EvaluateAccess, &Resource::platform("access decisions"))?;
    let request = body.value()?;
    let tenant = resource_tenant(&request.resource)?;
    // The asking application may ask only about tenants open to it.
    caller.authorize_tenant(&state, Action::EvaluateAccess, "access decisions", tenant)?;
    let action = Action::parse(&request.action.name).ok_or_else(|| {
        let known: Vec<&str> = Action::ALL.iter().map(|a| a.name()).collect();
        ApiError::BadRequest(format!(
            "action.name: `{}` is not an action; actions are {}",
            shown(&request.action.name),
            known.join(", ")
        ))
    })?;
    if request.subject.kind != "session" {
        return Err(ApiError::BadRequest(format!(
            "subject.type: `{}` is not supported; the subject is a session (`type`: `session`, `id`: its access token)",
            shown(&request.subject.kind)
        )));
    }
    let subject = match TokenKind::of(&request.subject.id) {
        Some(TokenKind::Access) => state.identity.sessions.find(token::hash(&request.subject.id)).await?,
        _ => None,
    };
    // A session of a tenant not open to the asking application is none of its business: it is
    // answered like an unknown one, as introspection does.
    let app = &caller.principal()?.app.name;
    let subject = subject.filter(|s| state.delivery.tenant(&s.tenant).is_some_and(|t| t.open_to(app)));
    let Some(session) = subject else {
        return Ok(Json(denied("the subject's session is unknown, expired or revoked", "unknown_subject")));
    };
    let flags = state.delivery.tenant(tenant);
    let facts = facts(tenant, flags.as_deref());
    let resource = match request.resource.kind.as_str() {
        "user" => Resource::tenant_user(&request.resource.id, facts),
        _ => Resource::of_tenant(noun(action), facts),
    };
    Ok(Json(match authz::authorize(&Actor::User(session), action, &resource) {
        // A user resource must be a user of the tenant it names, or the decision would be about a
        // user of another tenant as if they were in this one (issue 25.14). Asked only of what
        // would be allowed: a deny stands either way.
        Decision::Allow
            if request.resource.kind == "user"
                && !crate::store::users::exists(&state.pool, tenant, &request.resource.id).await? =>
        {
            let reason = format!("tenant `{}` has no user `{}`", shown(tenant), shown(&request.resource.id));
            denied(&reason, "unknown_resource")
        }
        Decision::Allow => EvaluationResponse { decision: true, context: json!({}) },
        Decision::Deny(deny) => denied(&deny.message, deny.code),
    }))
}

/// What of a tenant an action is about, for the reason of a denial.
fn noun(action: Action) -> &'static str {
    match action {
        Action::ListUsers | Action::EndUserSessions | Action::ResendInvitation => "users",
        Action::ReadFlags => "flags",
        _ => "resources",
    }
}

fn denied(reason: &str, code: &str) -> EvaluationResponse {
    EvaluationResponse { decision: false, context: json!({ "reason": reason, "code": code }) }
}

/// The tenant a resource belongs to: a `tenant`'s id, or the `tenant` property of anything else.
fn resource_tenant(resource: &ResourceRef) -> Result<&str> {
    let tenant = match resource.kind.as_str() {
        "tenant" => Some(resource.id.as_str()),
        "user" => resource.properties.as_ref().and_then(|p| p.get("tenant")).and_then(Value::as_str),
        other => {
            return Err(ApiError::BadRequest(format!("resource.type: `{}` is not one of tenant, user", shown(other))));
        }
    };
    let tenant = tenant
        .ok_or_else(|| ApiError::BadRequest("resource.properties.tenant: a `user` resource names its tenant".into()))?;
    Ok(tenant)
}
