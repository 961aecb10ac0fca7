//! Budgets over HTTP (issue 13.6, FR-006, US2-2).
//!
//! - `POST /v1/tenants/{t}/budget/check` (`usage:write`): may the application spend `quantity` more
//!   of `type`? Answered from memory (`budget::book`), never the database. A refusal is audited.
//! - `GET /v1/tenants/{t}/budget`: usage this month, the limit in force, the state and the
//!   thresholds crossed; for operators, auditors, the tenant's owners and admins, `usage:read` keys.
//! - `…/budget/overrides`: an owner or operator asks for a higher limit until a time, with a reason;
//!   two people other than the requester approve it (operators or owners, each once); it is then in
//!   force until it expires or its limit is reached. Every step is an audit row.

use crate::i18n::Text;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::body::JsonBody;
use super::caller::Caller;
use super::{ApiError, AppState, Result};
use crate::audit::{self, Outcome, Target};
use crate::authz::{Action, Actor, PlatformVia};
use crate::budget::notify::{Notice, Outbox};
use crate::budget::{Decision, State as BudgetState, state as budget_state};
use crate::model::{OnLimit, TenantName};
use crate::store::budget::{self as db, OverrideRecord};
use crate::store::{Rule, StoreError};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(show))
        .routes(routes!(check))
        .routes(routes!(list_overrides, request_override))
        .routes(routes!(approve_override))
}

fn target(tenant: &TenantName) -> Target {
    Target::in_tenant(tenant.as_str(), format!("tenant/{tenant}/budget"))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CheckRequest {
    /// What the application is about to spend, in the budget's units.
    quantity: i64,
    /// The usage event type it will report. Optional when the budget counts every type; required
    /// (400 `type_required`) when it lists `eventTypes`.
    #[serde(rename = "type", default)]
    kind: Option<String>,
}

#[utoipa::path(
    post, operation_id = "check_budget",
    path = "/v1/tenants/{tenant}/budget/check",
    tag = "application",
    security(("apiKey" = ["usage:write"]), ("apiKeyHeader" = ["usage:write"])),
    params(("tenant" = String, Path, description = "The tenant's name.", pattern = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", example = "acme")),
    request_body(content = CheckRequest),
    responses((status = 200, description = "Whether the spend is allowed, with the state, usage, limit and remaining quantity; `reason` `budget_exceeded` or `override_required` when not.", body = Decision)),
)]
async fn check(
    State(state): State<AppState>,
    caller: Caller,
    Path(tenant): Path<String>,
    body: JsonBody<CheckRequest>,
) -> Result<Response> {
    let (name, _) = caller.authorize_tenant(&state, Action::CheckBudget, "budget", &tenant)?;
    let request = body.value()?;
    if request.quantity < 1 {
        return Err(ApiError::BadRequest(format!("quantity: a positive integer, not {}", request.quantity)));
    }
    if let Some(kind) = &request.kind
        && (kind.is_empty() || kind.len() > 256 || kind.chars().any(char::is_control))
    {
        return Err(ApiError::BadRequest("type: the usage event type, 1 to 256 characters".into()));
    }
    let decision = state
        .budgets
        .check(name.as_str(), request.quantity, request.kind.as_deref(), Utc::now())
        .ok_or_else(|| ApiError::rule(Rule::NotFound, "not_found", format!("no tenant is named `{name}`")))?
        .map_err(|required| ApiError::Invalid { code: "type_required", message: required.to_string() })?;
    if !decision.allowed {
        let details = json!({ "quantity": request.quantity, "type": request.kind, "usage": decision.usage,
                              "limit": decision.limit, "reason": decision.reason });
        let action = match decision.reason {
            Some("override_required") => "budget.override_required",
            _ => "budget.block",
        };
        state.denials.record(audit::entry(
            &caller.actor,
            action,
            target(&name),
            Outcome::Failure,
            &caller.origin(),
            details,
        ));
    }
    Ok(axum::Json(decision).into_response())
}

/// A tenant's budget this month.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BudgetView {
    pub tenant: String,
    /// The first day of the month counted (UTC).
    pub month: chrono::NaiveDate,
    pub state: BudgetState,
    pub usage: i64,
    /// The budget's monthly limit; absent without a budget.
    pub monthly_limit: Option<i64>,
    /// The limit in force: an override's while one is.
    pub limit: Option<i64>,
    pub remaining: Option<i64>,
    /// `warn`, `block` or `requireOverride`.
    #[schema(value_type = Option<String>)]
    pub on_limit: Option<OnLimit>,
    pub warn_at: Vec<u8>,
    /// The event types counted; empty: every type.
    pub event_types: Vec<String>,
    /// The `warnAt` thresholds (and 100, the limit) crossed this month.
    pub thresholds_crossed: Vec<i16>,
    /// The override in force, if any.
    #[serde(rename = "override")]
    pub granted: Option<serde_json::Value>,
}

#[utoipa::path(
    get, operation_id = "show_budget",
    path = "/v1/tenants/{tenant}/budget",
    tag = "admin",
    security(("operator" = ["operator", "auditor"]), ("session" = ["owner", "admin"]), ("apiKey" = ["usage:read"])),
    params(("tenant" = String, Path, description = "The tenant's name.", pattern = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", example = "acme")),
    responses((status = 200, description = "Usage this month, the limit in force, the state and the thresholds crossed.", body = BudgetView)),
)]
async fn show(State(state): State<AppState>, caller: Caller, Path(tenant): Path<String>) -> Result<Response> {
    Ok(axum::Json(budget_view(&state, &caller, &tenant).await?).into_response())
}

/// A tenant's budget this month, if the caller may read it (the JSON API's and the console's).
pub(super) async fn budget_view(state: &AppState, caller: &Caller, tenant: &str) -> Result<BudgetView> {
    let (name, _) = caller.authorize_tenant(state, Action::ReadBudget, "budget", tenant)?;
    let now = Utc::now();
    let view = state
        .budgets
        .view(name.as_str(), now)
        .ok_or_else(|| ApiError::rule(Rule::NotFound, "not_found", format!("no tenant is named `{name}`")))?;
    let thresholds_crossed = db::alerts(&state.pool, view.id, view.month).await?;
    let effective = view.granted.as_ref().map_or(view.limit.as_ref().map(|l| l.monthly_limit), |g| Some(g.limit));
    let budget_state = match (&view.limit, effective) {
        (Some(limit), Some(effective)) => budget_state(limit, view.usage, effective),
        _ => BudgetState::Unlimited,
    };
    Ok(BudgetView {
        tenant: name.to_string(),
        month: view.month,
        state: budget_state,
        usage: view.usage,
        monthly_limit: view.limit.as_ref().map(|l| l.monthly_limit),
        limit: effective,
        remaining: effective.map(|e| (e - view.usage).max(0)),
        on_limit: view.limit.as_ref().map(|l| l.on_limit),
        warn_at: view.limit.as_ref().map(|l| l.warn_at.clone()).unwrap_or_default(),
        event_types: view.limit.as_ref().map(|l| l.event_types.clone()).unwrap_or_default(),
        thresholds_crossed,
        granted: view.granted.map(|g| json!({ "id": g.id, "limit": g.limit, "expiresAt": g.expires_at })),
    })
}

/// A tenant's budget overrides, newest first.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = BudgetOverrides)]
pub(crate) struct Overrides {
    overrides: Vec<OverrideRecord>,
}

#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/budget/overrides",
    tag = "admin",
    security(("operator" = ["operator", "auditor"]), ("session" = ["owner", "admin"]), ("apiKey" = ["usage:read"])),
    params(("tenant" = String, Path, description = "The tenant's name.", pattern = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", example = "acme")),
    responses((status = 200, description = "The tenant's overrides, newest first, with their approvals.", body = Overrides)),
)]
async fn list_overrides(State(state): State<AppState>, caller: Caller, Path(tenant): Path<String>) -> Result<Response> {
    Ok(axum::Json(Overrides { overrides: budget_overrides(&state, &caller, &tenant).await? }).into_response())
}

/// A tenant's budget overrides, newest first, with their approvals.
pub(super) async fn budget_overrides(state: &AppState, caller: &Caller, tenant: &str) -> Result<Vec<OverrideRecord>> {
    let (name, _) = caller.authorize_tenant(state, Action::ReadBudget, "budget", tenant)?;
    let id = tenant_id(state, &name)?;
    Ok(db::overrides(&state.pool, id).await?)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(example = json!({ "amount": 10000, "reason": "launch week", "expiresIn": "7d" }))]
pub(crate) struct OverrideRequest {
    /// How much more than the budget's monthly limit (give this or `limit`).
    amount: Option<i64>,
    /// The monthly limit while the override is in force (give this or `amount`).
    limit: Option<i64>,
    /// Why, for the approvers and the audit log.
    reason: String,
    /// How long it stays in force once granted, such as `7d` or `12h` (at most 31 days).
    expires_in: String,
}

#[utoipa::path(
    post,
    path = "/v1/tenants/{tenant}/budget/overrides",
    tag = "admin",
    security(("operator" = ["operator"]), ("session" = ["owner"])),
    params(("tenant" = String, Path, description = "The tenant's name.", pattern = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", example = "acme")),
    request_body(content = OverrideRequest),
    responses((status = 201, description = "The override, `pending` until two people other than the requester approve it (within 7 days); then in force for `expiresIn`.", body = OverrideRecord)),
)]
async fn request_override(
    State(state): State<AppState>,
    caller: Caller,
    Path(tenant): Path<String>,
    body: JsonBody<OverrideRequest>,
) -> Result<Response> {
    let (name, _) = caller.authorize_tenant(&state, Action::RequestOverride, "budget", &tenant)?;
    let requester = caller.actor.name().to_owned();
    let request = body.value()?;
    let view = state
        .budgets
        .view(name.as_str(), Utc::now())
        .ok_or_else(|| ApiError::rule(Rule::NotFound, "not_found", format!("no tenant is named `{name}`")))?;
    let Some(limit) = view.limit else {
        return Err(ApiError::rule(Rule::Conflict, "no_budget", format!("tenant `{name}` has no budget to override")));
    };
    let new_limit = match (request.amount, request.limit) {
        (Some(amount), None) if amount > 0 => limit.monthly_limit.saturating_add(amount),
        (None, Some(new)) if new > limit.monthly_limit => new,
        (None, Some(new)) => {
            return Err(ApiError::BadRequest(format!(
                "limit: {new} is not above the monthly limit of {}",
                limit.monthly_limit
            )));
        }
        _ => return Err(ApiError::BadRequest("give `amount` (a positive integer) or `limit`, not both".into())),
    };
    let reason = request.reason.trim();
    if reason.is_empty() || reason.len() > 1000 || reason.chars().any(char::is_control) {
        return Err(ApiError::BadRequest("reason: 1 to 1,000 characters, for the approvers".into()));
    }
    let lasts = humantime::parse_duration(&request.expires_in)
        .ok()
        .and_then(|d| chrono::TimeDelta::from_std(d).ok())
        .filter(|d| *d > chrono::TimeDelta::zero() && *d <= chrono::TimeDelta::days(31))
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "expiresIn: {:?} is not a duration of at most 31 days, such as 7d",
                request.expires_in
            ))
        })?;
    let details = json!({ "limit": new_limit, "reason": reason, "expiresIn": request.expires_in });
    let row = caller.audit("budget.override.request", target(&name), details);
    let mut tx = state.pool.begin().await.map_err(StoreError::from)?;
    let created = db::request(&mut tx, view.id, new_limit, reason, &party(&caller, &requester), lasts, &[row]).await?;
    let summary = Text::new(
        "budget-said-request",
        vec![
            ("requester", requester.clone()),
            ("tenant", name.to_string()),
            ("from", limit.monthly_limit.to_string()),
            ("to", new_limit.to_string()),
            ("lasts", request.expires_in.clone()),
            ("reason", reason.to_owned()),
        ],
    );
    let details = json!({ "override": created.id, "limit": new_limit, "requestedBy": requester, "reason": reason });
    notify(&state, &mut tx, name.as_str(), view.id, "budget.override.request", summary, details).await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok((StatusCode::CREATED, axum::Json(created)).into_response())
}

#[utoipa::path(
    post,
    path = "/v1/tenants/{tenant}/budget/overrides/{id}/approve",
    tag = "admin",
    security(("operator" = ["operator"]), ("session" = ["owner"])),
    params(
        ("tenant" = String, Path, description = "The tenant's name.", pattern = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", example = "acme"),
        ("id" = String, Path, description = "The override's id."),
    ),
    responses((status = 200, description = "The override with this approval; `granted` after the second. 409 `self_approval`, `already_approved`, `override_not_pending`, `approver_not_independent` (the approver and the requester or the other approver made one another's accounts, or one person made both), `fresh_second_factor_required` (an owner approves from a session that passed their own TOTP within 15 minutes).", body = OverrideRecord)),
)]
async fn approve_override(
    State(state): State<AppState>,
    caller: Caller,
    Path((tenant, id)): Path<(String, String)>,
) -> Result<Response> {
    Ok(axum::Json(approve_budget_override(&state, &caller, &tenant, &id).await?).into_response())
}

/// Approves a pending budget override as `caller`, audited; granted after the second approval.
pub(super) async fn approve_budget_override(
    state: &AppState,
    caller: &Caller,
    tenant: &str,
    id: &str,
) -> Result<OverrideRecord> {
    let (name, _) = caller.authorize_tenant(state, Action::ApproveOverride, "budget", tenant)?;
    let id: Uuid =
        id.parse().map_err(|_| ApiError::BadRequest(format!("path parameter `id`: {id:?} is not an override id")))?;
    let tenant_id = tenant_id(state, &name)?;
    if db::get_override(&state.pool, tenant_id, id).await?.is_none() {
        return Err(ApiError::rule(Rule::NotFound, "not_found", format!("tenant `{name}` has no override {id}")));
    }
    let refused = |error: ApiError| {
        let details = json!({ "override": id, "refused": error.to_string() });
        let row = audit::entry(
            &caller.actor,
            "budget.override.approve",
            target(&name),
            Outcome::Failure,
            &caller.origin(),
            details,
        );
        state.denials.record(row);
        error
    };
    let person = person(caller).map_err(refused)?;
    let mut tx = state.pool.begin().await.map_err(StoreError::from)?;
    let approved = crate::budget::approval::approve(&mut tx, tenant_id, id, &party(caller, &person), |o, granted| {
        let action = if granted { "budget.override.grant" } else { "budget.override.approve" };
        caller.audit(action, target(&name), json!({ "override": o.id, "limit": o.limit, "approvals": o.approvals }))
    })
    .await;
    let approved = approved.map_err(|e| refused(e.into()))?;
    let (person, tenant, limit) = (person.clone(), name.to_string(), approved.limit.to_string());
    let (event, summary) = if approved.status == "granted" {
        let until = approved.expires_at.to_string();
        let args = vec![("person", person), ("tenant", tenant), ("limit", limit), ("until", until)];
        ("budget.override.grant", Text::new("budget-said-grant", args))
    } else {
        let args = vec![("person", person), ("tenant", tenant), ("limit", limit)];
        ("budget.override.approve", Text::new("budget-said-approve", args))
    };
    let details = json!({ "override": approved.id, "limit": approved.limit, "approvals": approved.approvals, "status": approved.status });
    notify(state, &mut tx, name.as_str(), tenant_id, event, summary, details).await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(approved)
}

/// Mails the tenant's owners and queues the webhook of a budget step, in `tx`.
async fn notify(
    state: &AppState,
    tx: &mut sqlx::PgConnection,
    tenant: &str,
    tenant_id: Uuid,
    event: &'static str,
    summary: Text,
    details: serde_json::Value,
) -> Result<()> {
    outbox(state).queue(tx, &Notice { tenant, tenant_id, event, summary, details }).await?;
    Ok(())
}

/// Where this server sends the notices of budget steps.
pub(crate) fn outbox(state: &AppState) -> Outbox<'_> {
    let identity = &state.identity;
    Outbox {
        keyring: &identity.keyring,
        public_url: &identity.settings.public_url,
        webhook: state.budget_webhook.as_ref(),
    }
}

/// Who approves: a person (an owner, or an operator signed in at the identity provider), never the
/// shared bootstrap token, which names nobody.
fn person(caller: &Caller) -> Result<String> {
    match &caller.actor {
        Actor::Platform(platform) if platform.via == PlatformVia::BootstrapToken => Err(ApiError::Forbidden {
            code: "person_required",
            message:
                "overrides are approved by people: sign in at the identity provider; the bootstrap token names nobody"
                    .into(),
        }),
        actor => Ok(actor.name().to_owned()),
    }
}

/// The person `caller` is, by `name`, for the separation-of-duties rules (issue 25.4).
fn party<'a>(caller: &Caller, name: &'a str) -> db::Person<'a> {
    match &caller.actor {
        Actor::User(session) => db::Person { name, user_id: Some(session.user_id), session_id: Some(session.id) },
        _ => db::Person { name, user_id: None, session_id: None },
    }
}

fn tenant_id(state: &AppState, name: &TenantName) -> Result<Uuid> {
    state
        .budgets
        .view(name.as_str(), Utc::now())
        .map(|v| v.id)
        .ok_or_else(|| ApiError::rule(Rule::NotFound, "not_found", format!("no tenant is named `{name}`")))
}
