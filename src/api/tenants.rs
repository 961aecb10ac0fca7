//! `/v1/tenants`: operators create, list, change, suspend, restore and safely delete tenants
//! (FR-TENANT-001..003, FR-OPS-001, UC-PROV-001, UC-TENANT-*); a tenant's owners read it and change
//! its display name and plan. A tenant declared in Git answers changes with 409 `managed_by_git`.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::body::JsonBody;
use super::caller::Caller;
use super::conditional::{self, check_if_match, tagged};
use super::writeback::{self, Done};
use super::{ApiError, AppState, Result, input};
use crate::audit::Target;
use crate::authz::{Action, Resource};
use crate::delivery::sync;
use crate::model::{AppName, PlanName, TenantName, TenantState, shown};
use crate::store::tenants::{self as db, NewTenant, TenantChange, TenantFilter, TenantRecord};
use crate::store::{Rule, StoreError};
use crate::writeback::Edit;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, update, delete))
        .routes(routes!(suspend))
        .routes(routes!(restore))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct CreateTenant {
    /// The tenant's name: lower-case letters, digits and `-`, as in its URLs.
    #[schema(pattern = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", example = "wayne")]
    name: String,
    #[schema(example = "Wayne Enterprises")]
    display_name: String,
    #[schema(example = "pro")]
    plan: String,
    /// Applications whose keys may read the tenant (registered through `POST /v1/apps` or in Git).
    #[serde(default)]
    #[schema(example = json!(["billing-app"]))]
    applications: Vec<String>,
    /// The first owner: created `invited`, and mailed an invitation.
    owner: NewOwner,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewOwner {
    #[schema(example = "ceo@wayne.example")]
    email: String,
    name: Option<String>,
}

/// The fields to change; the others stay.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(example = json!({ "displayName": "Acme Corporation", "plan": "pro" }))]
pub(crate) struct UpdateTenant {
    display_name: Option<String>,
    /// Operators, and the tenant's own owners (FR-TENANT-003).
    plan: Option<String>,
    /// Operators only.
    applications: Option<Vec<String>>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Suspension {
    /// Why, for the audit log and for the tenant's admins.
    reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ListQuery {
    after: Option<String>,
    limit: Option<i64>,
    state: Option<String>,
    plan: Option<String>,
    prefix: Option<String>,
    sync: Option<String>,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct Tenants {
    pub tenants: Vec<TenantRecord>,
    /// The `after` of the next page; absent on the last.
    pub next: Option<String>,
}

fn applications(names: &[String]) -> Result<Vec<String>> {
    let mut parsed: Vec<String> = Vec::with_capacity(names.len());
    for name in names {
        let name = AppName::parse(name).map_err(|e| ApiError::BadRequest(format!("applications: {e}")))?;
        if !parsed.iter().any(|p| p == name.as_str()) {
            parsed.push(name.as_str().to_owned());
        }
    }
    Ok(parsed)
}

fn plan(name: &str) -> Result<PlanName> {
    PlanName::parse(name).map_err(|e| ApiError::BadRequest(format!("plan: {e}")))
}

fn target(tenant: &str) -> Target {
    Target::in_tenant(tenant, format!("tenant/{tenant}"))
}

/// Makes this replica's delivery cache see the tenant's change before its next request (the change
/// feed tells the other replicas).
/// Best effort: the change is committed, so a failed reload is logged, not answered as a failure
/// (the change feed still brings it).
pub(crate) async fn refreshed(state: &AppState, tenant: &str) {
    if let Err(error) = sync::refresh_tenants(&state.delivery, &state.pool, &[tenant]).await {
        tracing::warn!(%error, tenant, "cannot reload a changed tenant; the change feed will bring it");
    }
}

#[utoipa::path(
    post, operation_id = "create_tenant",
    path = "/v1/tenants",
    tag = "admin",
    security(("operator" = ["operator"])),
    params(("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key within 24 h gets the first answer.")),
    request_body(content = CreateTenant),
    responses((status = 201, description = "The tenant, with its ETag; its owner is invited.", body = TenantRecord)),
)]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: JsonBody<CreateTenant>,
) -> Result<Response> {
    // Who may not provision learns that before anything about their body (`Provision::check` asks again).
    caller.authorize(&state, Action::ManageTenants, &Resource::platform("tenants"))?;
    let raw = body.raw().to_vec();
    let request = body.value()?;
    let owner = (request.owner.email.as_str(), request.owner.name.as_deref());
    let provision = Provision::check(
        &state,
        &caller,
        &request.name,
        &request.display_name,
        &request.plan,
        &request.applications,
        owner,
    )?;
    let response = conditional::create(&state, &caller, (&method, uri.path(), &headers, &raw), async |conn| {
        let created = provision.apply(conn).await?;
        let etag = created.etag();
        Ok((created, etag))
    })
    .await?;
    refreshed(&state, provision.name.as_str()).await;
    Ok(response)
}

/// A tenant the caller may provision, its fields parsed, with the audit rows of the creation and of
/// the owner's invitation (UC-PROV-001): the JSON API and the operator console both create it here.
pub(super) struct Provision {
    pub name: TenantName,
    display_name: crate::model::DisplayName,
    plan: PlanName,
    applications: Vec<String>,
    owner_email: crate::model::Email,
    owner_name: Option<crate::model::DisplayName>,
    rows: [crate::store::AuditEntry; 2],
}

impl Provision {
    pub(super) fn check(
        state: &AppState,
        caller: &Caller,
        name: &str,
        display_name: &str,
        plan_name: &str,
        applications_named: &[String],
        (owner_email, owner_name): (&str, Option<&str>),
    ) -> Result<Provision> {
        caller.authorize(state, Action::ManageTenants, &Resource::platform("tenants"))?;
        let name = TenantName::parse(name).map_err(|e| ApiError::BadRequest(format!("name: {e}")))?;
        let display_name = input::display_name("displayName", display_name)?;
        let plan = plan(plan_name)?;
        let applications = applications(applications_named)?;
        let owner_email = input::email("owner.email", owner_email)?;
        let owner_name = owner_name.map(|n| input::display_name("owner.name", n)).transpose()?;
        let details = json!({ "displayName": display_name.as_str(), "plan": plan.as_str(), "applications": applications, "owner": owner_email.as_str() });
        let rows = [
            caller.audit("tenant.create", target(name.as_str()), details),
            caller.audit(
                "user.invite",
                Target::in_tenant(name.as_str(), format!("tenant/{}/user/{}", name, owner_email)),
                json!({ "role": "owner" }),
            ),
        ];
        Ok(Provision { name, display_name, plan, applications, owner_email, owner_name, rows })
    }

    /// Creates the tenant and invites its owner, in `conn`'s transaction.
    pub(super) async fn apply(&self, conn: &mut sqlx::PgConnection) -> Result<TenantRecord> {
        let new = NewTenant {
            name: self.name.as_str(),
            display_name: self.display_name.as_str(),
            plan: self.plan.as_str(),
            applications: &self.applications,
            owner_email: self.owner_email.as_str(),
            owner_name: self.owner_name.as_ref().map(|n| n.as_str()),
        };
        Ok(db::create(conn, &new, &self.rows).await?)
    }
}

#[utoipa::path(
    get, operation_id = "list_tenants",
    path = "/v1/tenants",
    tag = "admin",
    security(("operator" = ["operator", "auditor"])),
    params(
        ("after" = Option<String>, Query, description = "Only tenants after this name (the `next` of the previous page)."),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 1000, description = "At most this many (default 100)."),
        ("state" = Option<String>, Query, description = "Only tenants in this state: active, suspended, pending_deletion."),
        ("plan" = Option<String>, Query, description = "Only tenants on this plan."),
        ("prefix" = Option<String>, Query, description = "Only tenants whose name starts with this."),
        ("sync" = Option<String>, Query, description = "Only tenants in this sync state: Synced, OutOfSync, Drifted, Error, Unmanaged (made through the API)."),
    ),
    responses((status = 200, description = "A page of tenants in name order.", body = Tenants)),
)]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    query: std::result::Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response> {
    caller.authorize(&state, Action::ReadTenants, &Resource::platform("tenants"))?;
    let Query(query) = query?;
    let asked = TenantListing {
        limit: query.limit,
        state: query.state.as_deref(),
        plan: query.plan.as_deref(),
        prefix: query.prefix.as_deref(),
        after: query.after.as_deref(),
        sync: query.sync.as_deref(),
    };
    Ok(axum::Json(list_tenants(&state, &caller, &asked).await?).into_response())
}

/// A page of tenants as asked for, before parsing.
#[derive(Default)]
pub(super) struct TenantListing<'a> {
    pub limit: Option<i64>,
    pub state: Option<&'a str>,
    pub plan: Option<&'a str>,
    pub prefix: Option<&'a str>,
    pub after: Option<&'a str>,
    /// A sync state (`Synced`, `OutOfSync`, `Drifted`, `Error`, `Unmanaged`).
    pub sync: Option<&'a str>,
}

/// A page of tenants in name order, if the caller may read them (operators and auditors).
pub(super) async fn list_tenants(state: &AppState, caller: &Caller, asked: &TenantListing<'_>) -> Result<Tenants> {
    caller.authorize(state, Action::ReadTenants, &Resource::platform("tenants"))?;
    let limit = asked.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::BadRequest("query parameter `limit`: from 1 to 1000".into()));
    }
    let state_filter = asked
        .state
        .map(|s| {
            TenantState::parse(s).ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "query parameter `state`: `{}` is not one of active, suspended, pending_deletion",
                    shown(s)
                ))
            })
        })
        .transpose()?;
    let after = asked.after.map(|a| input::lookup("query parameter `after`", a)).transpose()?;
    let prefix = asked.prefix.map(|p| input::lookup("query parameter `prefix`", p)).transpose()?;
    let plan = asked.plan.map(|p| input::lookup("query parameter `plan`", p)).transpose()?;
    let sync = asked
        .sync
        .map(|s| {
            super::sync::tenant_state(s).map_err(|_| {
                ApiError::BadRequest(format!(
                    "query parameter `sync`: `{}` is not one of {}",
                    shown(s),
                    super::sync::STATES.join(", ")
                ))
            })
        })
        .transpose()?;
    let filter = TenantFilter { state: state_filter, plan, name_prefix: prefix, after, sync, limit };
    let tenants = db::list(&state.pool, &filter).await?;
    let next = tenants.last().filter(|_| tenants.len() as i64 == limit).map(|t| t.name.clone());
    Ok(Tenants { tenants, next })
}

#[utoipa::path(
    get, operation_id = "show_tenant",
    path = "/v1/tenants/{tenant}",
    tag = "admin",
    security(("operator" = ["operator", "auditor"]), ("session" = ["owner", "admin"])),
    params(("tenant" = String, Path, description = "The tenant's name.", pattern = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", example = "acme")),
    responses((status = 200, description = "The tenant, with its ETag (operators, auditors, its owners and admins).", body = TenantRecord)),
)]
async fn show(State(state): State<AppState>, caller: Caller, Path(tenant): Path<String>) -> Result<Response> {
    let (name, _) = caller.authorize_tenant(&state, Action::ReadTenants, "settings", &tenant)?;
    let record = db::get(&state.pool, name.as_str()).await?.ok_or_else(|| db::not_found(name.as_str()))?;
    Ok(tagged(StatusCode::OK, &record, &record.etag()))
}

/// Runs `change` on the tenant locked in a transaction, after its preconditions: declared in Git →
/// 409, `If-Match` stale → 412. Commits, refreshes this replica and answers the tenant with its ETag.
///
/// A plan the change moves the tenant to is locked (`FOR KEY SHARE`) before the tenant, in the order
/// the reconciler locks plans and tenants, so the two cannot deadlock.
async fn change_locked(
    state: &AppState,
    name: &TenantName,
    headers: &HeaderMap,
    plan: Option<&str>,
    change: impl AsyncFnOnce(&mut sqlx::PgConnection, &TenantRecord) -> Result<TenantRecord>,
) -> Result<TenantRecord> {
    let mut tx = state.pool.begin().await.map_err(StoreError::from)?;
    if let Some(plan) = plan {
        db::share_plan(&mut tx, plan).await?;
    }
    let current = db::lock(&mut tx, name.as_str()).await?;
    current.refuse_if_git(&current.managed_by, format_args!("tenant `{}`", current.name))?;
    check_if_match(headers, &current.etag())?;
    let changed = change(&mut tx, &current).await?;
    tx.commit().await.map_err(StoreError::from)?;
    refreshed(state, name.as_str()).await;
    Ok(changed)
}

/// The tenant as a JSON answer with its ETag.
fn answered(tenant: &TenantRecord) -> Response {
    tagged(StatusCode::OK, tenant, &tenant.etag())
}

#[utoipa::path(
    patch, operation_id = "update_tenant",
    path = "/v1/tenants/{tenant}",
    tag = "admin",
    security(("operator" = ["operator"]), ("session" = ["owner"])),
    params(("tenant" = String, Path, description = "The tenant's name.", pattern = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", example = "acme"), ("If-Match" = Option<String>, Header, description = "The ETag the change is based on: 412 if the tenant changed since.")),
    request_body(content = UpdateTenant),
    responses((status = 200, description = "The changed tenant, with its ETag.", body = TenantRecord)),
)]
async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: JsonBody<UpdateTenant>,
) -> Result<Response> {
    // Who may not change the tenant learns that before anything about their body.
    caller.authorize_tenant(&state, Action::UpdateTenant, "settings", &tenant)?;
    let request = body.value()?;
    let asked = TenantUpdate {
        display_name: request.display_name.as_deref(),
        plan: request.plan.as_deref(),
        applications: request.applications.as_deref(),
    };
    let done = update_tenant(&state, &caller, &tenant, &headers, &asked).await?;
    writeback::answer(done, async |updated| {
        let updated = match updated {
            Some(updated) => updated,
            None => db::get(&state.pool, &tenant).await?.ok_or_else(|| db::not_found(&tenant))?,
        };
        Ok(answered(&updated))
    })
    .await
}

/// A change of a tenant as asked for, before parsing; `None` leaves the field as it is.
#[derive(Default)]
pub(super) struct TenantUpdate<'a> {
    pub display_name: Option<&'a str>,
    pub plan: Option<&'a str>,
    pub applications: Option<&'a [String]>,
}

/// Changes a tenant's display name, plan (operators and its owners, FR-TENANT-003) or applications
/// (operators only); a tenant Git declares is a 409, a stale `If-Match` in `headers` a 412.
pub(super) async fn update_tenant(
    state: &AppState,
    caller: &Caller,
    tenant: &str,
    headers: &HeaderMap,
    asked: &TenantUpdate<'_>,
) -> Result<Done<TenantRecord>> {
    // Which applications may read a tenant is the platform's decision; its name and plan are also
    // its owners' (FR-TENANT-003).
    let (name, _) = caller.authorize_tenant(state, Action::UpdateTenant, "settings", tenant)?;
    if asked.applications.is_some() {
        caller.authorize_tenant(state, Action::ManageTenants, "applications", tenant)?;
    }
    let display_name = asked.display_name.map(|d| input::display_name("displayName", d)).transpose()?;
    let plan = asked.plan.map(plan).transpose()?;
    let applications = asked.applications.map(applications).transpose()?;
    let change = TenantChange {
        display_name: display_name.as_ref().map(|d| d.as_str()),
        plan: plan.as_ref().map(|p| p.as_str()),
        applications: applications.as_deref(),
    };
    let details =
        json!({ "displayName": change.display_name, "plan": change.plan, "applications": change.applications });
    if let Some(current) = db::get(&state.pool, name.as_str()).await?
        && let Some(mode) = current.writes_back(&current.managed_by)
    {
        check_if_match(headers, &current.etag())?;
        let field = |path: &str, expected: Value, value: Value| Edit::Tenant {
            tenant: current.name.clone(),
            path: path.to_owned(),
            expected,
            value,
        };
        let mut edits = Vec::new();
        if let Some(display_name) = change.display_name.filter(|d| *d != current.display_name) {
            edits.push(field("spec.displayName", json!(current.display_name), json!(display_name)));
        }
        if let Some(plan) = change.plan.filter(|p| *p != current.plan) {
            edits.push(field("spec.plan", json!(current.plan), json!(plan)));
        }
        if let Some(apps) = change.applications.filter(|a| **a != current.applications) {
            edits.push(field("spec.applications", json!(current.applications), json!(apps)));
        }
        if edits.is_empty() {
            return Ok(Done::Now(current));
        }
        return writeback::write_back(
            state,
            caller,
            &current,
            mode,
            writeback::Asked { action: "tenant.update", target: target(name.as_str()), details, edits },
        )
        .await;
    }
    let row = caller.audit("tenant.update", target(name.as_str()), details);
    let updated = change_locked(state, &name, headers, None, async |conn, current| {
        db::update(conn, current, &change, &[row]).await.map_err(ApiError::from)
    })
    .await?;
    Ok(Done::Now(updated))
}

#[utoipa::path(
    post, operation_id = "suspend_tenant",
    path = "/v1/tenants/{tenant}/suspend",
    tag = "admin",
    security(("operator" = ["operator"])),
    params(("tenant" = String, Path, description = "The tenant's name.", pattern = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", example = "acme"), ("If-Match" = Option<String>, Header, description = "The ETag the change is based on: 412 if the tenant changed since.")),
    request_body(content = Option<Suspension>),
    responses((status = 200, description = "The suspended tenant: its sessions ended, its keys refused (FR-OPS-001).", body = TenantRecord)),
)]
async fn suspend(
    State(state): State<AppState>,
    caller: Caller,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: JsonBody<Option<Suspension>>,
) -> Result<Response> {
    // Who may not suspend learns that before anything about their body (`suspend_tenant` asks again).
    caller.authorize_tenant(&state, Action::ManageTenants, "status", &tenant)?;
    let request = body.value()?;
    let reason = request.as_ref().and_then(|r| r.reason.as_deref());
    Ok(answered(&suspend_tenant(&state, &caller, &tenant, &headers, reason).await?))
}

/// Suspends a tenant (FR-OPS-001): its sessions end, its keys are refused; `reason` is kept.
pub(super) async fn suspend_tenant(
    state: &AppState,
    caller: &Caller,
    tenant: &str,
    headers: &HeaderMap,
    reason: Option<&str>,
) -> Result<TenantRecord> {
    let (name, _) = caller.authorize_tenant(state, Action::ManageTenants, "status", tenant)?;
    let reason = reason.map(|r| input::reason("reason", r)).transpose()?;
    let row = caller.audit("tenant.suspend", target(name.as_str()), json!({ "reason": reason }));
    change_locked(state, &name, headers, None, async |conn, current| {
        if current.state == TenantState::PendingDeletion {
            return Err(ApiError::rule(
                Rule::Conflict,
                "pending_deletion",
                format!("tenant `{name}` is pending deletion; restore it first"),
            ));
        }
        Ok(db::suspend(conn, current, reason, &[row]).await?)
    })
    .await
}

#[utoipa::path(
    post, operation_id = "restore_tenant",
    path = "/v1/tenants/{tenant}/restore",
    tag = "admin",
    security(("operator" = ["operator"])),
    params(("tenant" = String, Path, description = "The tenant's name.", pattern = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", example = "acme"), ("If-Match" = Option<String>, Header, description = "The ETag the change is based on: 412 if the tenant changed since.")),
    responses((status = 200, description = "The tenant, active again (from suspended or pending deletion).", body = TenantRecord)),
)]
async fn restore(
    State(state): State<AppState>,
    caller: Caller,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Result<Response> {
    Ok(answered(&restore_tenant(&state, &caller, &tenant, &headers).await?))
}

/// Makes a suspended tenant, or one pending deletion, active again.
pub(super) async fn restore_tenant(
    state: &AppState,
    caller: &Caller,
    tenant: &str,
    headers: &HeaderMap,
) -> Result<TenantRecord> {
    let (name, _) = caller.authorize_tenant(state, Action::ManageTenants, "status", tenant)?;
    change_locked(state, &name, headers, None, async |conn, current| {
        let details = json!({ "from": current.state.as_str() });
        let row = caller.audit("tenant.restore", target(name.as_str()), details);
        Ok(db::restore(conn, current, &[row]).await?)
    })
    .await
}

#[utoipa::path(
    delete, operation_id = "delete_tenant",
    path = "/v1/tenants/{tenant}",
    tag = "admin",
    security(("operator" = ["operator"])),
    params(("tenant" = String, Path, description = "The tenant's name.", pattern = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", example = "acme"), ("If-Match" = Option<String>, Header, description = "The ETag the change is based on: 412 if the tenant changed since.")),
    responses((status = 200, description = "The tenant, suspended and pending deletion until `purgeAfter` (restorable until then).", body = TenantRecord)),
)]
async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Result<Response> {
    Ok(answered(&delete_tenant(&state, &caller, &tenant, &headers).await?))
}

/// Deletes a tenant safely (issue 12.1): suspended and pending deletion until its purge date,
/// restorable until then.
pub(super) async fn delete_tenant(
    state: &AppState,
    caller: &Caller,
    tenant: &str,
    headers: &HeaderMap,
) -> Result<TenantRecord> {
    let (name, _) = caller.authorize_tenant(state, Action::ManageTenants, "status", tenant)?;
    let purge_after = input::from_now("purgeAfter", state.retention.restorable_for)?;
    change_locked(state, &name, headers, None, async |conn, current| {
        super::users::refuse_git_delete(current, &current.managed_by, format_args!("tenant `{}`", current.name))?;
        if current.state == TenantState::PendingDeletion {
            return Ok(current.clone());
        }
        let details = json!({ "purgeAfter": purge_after, "from": current.state.as_str() });
        let row = caller.audit("tenant.delete", target(name.as_str()), details);
        Ok(db::delete(conn, current, purge_after, &[row]).await?)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applications_are_checked_and_deduplicated() {
        let names = vec!["billing".to_owned(), "billing".to_owned(), "crm".to_owned()];
        assert_eq!(applications(&names).expect("valid"), vec!["billing", "crm"]);
        let refused = applications(&["Not An App".to_owned()]).expect_err("invalid");
        assert!(refused.to_string().starts_with("applications: "), "{refused}");
    }
}
