//! Operator endpoints: sync status (overall and per tenant, with drift and errors), the history of
//! passes, manual sync, pause and resume, allowing one tenant's guarded change once, and allowing a
//! tenant's drift until a deadline. Everything is read from the database, so every replica answers
//! the same.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::body::JsonBody;
use super::caller::Caller;
use super::{ApiError, AppState, Result, input};
use crate::audit::Target;
use crate::authz::{Action, Resource};
use crate::store::{self, allowance, drift, history, status};

/// What the sync routes act on, in denials' messages.
pub(super) const SYNC_STATUS: Resource<'static> = Resource::platform("the sync status");
pub(super) const RECONCILER: Resource<'static> = Resource::platform("the reconciler");

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(overall))
        .routes(routes!(tenants))
        .routes(routes!(tenant))
        .routes(routes!(tenant_history))
        .routes(routes!(allow_deletion))
        .routes(routes!(passes))
        .routes(routes!(allow_drift, withdraw_drift))
        .routes(routes!(sync_now))
        .routes(routes!(pause))
        .routes(routes!(resume))
}

#[utoipa::path(
    get,
    path = "/v1/sync/status",
    tag = "operator",
    security(("operator" = ["operator", "auditor"])),
    responses((status = 200, description = "The sync state: source commit, counts, last pass.", body = status::SyncState)),
)]
async fn overall(State(state): State<AppState>, caller: Caller) -> Result<Json<status::SyncState>> {
    Ok(Json(sync_status(&state, &caller).await?))
}

/// The sync state: source commit, counts, last pass, leader.
pub(super) async fn sync_status(state: &AppState, caller: &Caller) -> Result<status::SyncState> {
    caller.authorize(state, Action::ReadSync, &SYNC_STATUS)?;
    let mut conn = state.pool.acquire().await.map_err(store::StoreError::from)?;
    Ok(status::sync_state(&mut conn).await?)
}

#[derive(Deserialize)]
struct Page {
    #[serde(default)]
    after: String,
    limit: Option<i64>,
    /// Every tenant, synced ones included (issue 15.4).
    #[serde(default)]
    all: bool,
    /// Only tenants in this state (implies `all`).
    state: Option<String>,
}

/// The states a tenant can be listed in.
pub(super) const STATES: [&str; 5] = ["Synced", "OutOfSync", "Drifted", "Error", "Unmanaged"];

/// Tenants by name: by default those that are not simply in sync (the rest are `Synced` at the
/// overall commit); with `all=true` every tenant, or those in one `state`.
#[utoipa::path(
    get,
    path = "/v1/sync/tenants",
    tag = "operator",
    security(("operator" = ["operator", "auditor"])),
    params(("after" = Option<String>, Query, description = "Only tenants after this name (the `next` of the previous page)."), ("limit" = Option<i64>, Query, minimum = 1, maximum = 1000, description = "At most this many (default 100)."), ("all" = Option<bool>, Query, description = "Every tenant, not only those out of sync."), ("state" = Option<String>, Query, description = "Only tenants in this state: Synced, OutOfSync, Drifted, Error, Unmanaged.")),
    responses((status = 200, description = "Counts and a page of tenants.", body = SyncTenants)),
)]
async fn tenants(
    State(state): State<AppState>,
    caller: Caller,
    page: std::result::Result<Query<Page>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<SyncTenants>> {
    caller.authorize(&state, Action::ReadSync, &SYNC_STATUS)?;
    let Query(page) = page?;
    let after = input::lookup("query parameter `after`", &page.after)?;
    let limit = page.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::BadRequest("limit must be from 1 to 1000".into()));
    }
    let only = page.state.as_deref().map(tenant_state).transpose()?;
    let mut conn = state.pool.acquire().await.map_err(store::StoreError::from)?;
    let sync = status::sync_state(&mut conn).await?;
    let (tenants, last) = if page.all || only.is_some() {
        let items = status::all_tenants(&mut conn, after, limit, only).await?;
        let last = items.last().map(|t| t.status.tenant.clone());
        (TenantPage::Listed(items), last)
    } else {
        let items = status::tenant_statuses(&mut conn, after, limit).await?;
        let last = items.last().map(|t| t.tenant.clone());
        (TenantPage::NotInSync(items), last)
    };
    let next = last.filter(|_| tenants.len() as i64 == limit);
    Ok(Json(SyncTenants { counts: sync.counts, commit: sync.source_commit, tenants, next }))
}

/// A page of `GET /v1/sync/tenants`.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct SyncTenants {
    /// Tenants per state, every tenant counted.
    #[schema(value_type = Object, example = json!({ "Synced": 2, "Drifted": 1 }))]
    counts: Value,
    /// The version of the config of the last pass.
    commit: Option<String>,
    /// With `all` or `state`, each tenant also has its database record (`appliedCommit`,
    /// `changedAt`, `managedBy`).
    #[schema(value_type = Vec<status::TenantListing>)]
    tenants: TenantPage,
    /// The `after` of the next page; `null` on the last.
    next: Option<String>,
}

/// The tenants of a page: every tenant with its database record (`all`, `state`), or only those
/// not simply in sync.
#[derive(Serialize)]
#[serde(untagged)]
pub(super) enum TenantPage {
    Listed(Vec<status::TenantListing>),
    NotInSync(Vec<status::TenantStatus>),
}

impl TenantPage {
    fn len(&self) -> usize {
        match self {
            TenantPage::Listed(items) => items.len(),
            TenantPage::NotInSync(items) => items.len(),
        }
    }
}

pub(super) fn tenant_state(value: &str) -> Result<&'static str> {
    STATES.into_iter().find(|s| *s == value).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "query parameter `state`: `{}` is not one of {}",
            crate::model::shown(value),
            STATES.join(", ")
        ))
    })
}

#[derive(Deserialize)]
struct HistoryPage {
    /// The `id` of the last pass of the previous page.
    before: Option<i64>,
    limit: Option<i64>,
}

impl HistoryPage {
    fn limit(&self) -> Result<i64> {
        let limit = self.limit.unwrap_or(20);
        if !(1..=100).contains(&limit) {
            return Err(ApiError::BadRequest("limit must be from 1 to 100".into()));
        }
        Ok(limit)
    }
}

/// The history of passes that changed, reverted or failed something, newest first.
#[utoipa::path(
    get,
    path = "/v1/sync/history",
    tag = "operator",
    security(("operator" = ["operator", "auditor"])),
    params(("before" = Option<i64>, Query, description = "Only passes older than this pass id (the `next` of the previous page)."), ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "At most this many (default 20).")),
    responses((status = 200, description = "Reconcile passes, newest first.", body = SyncHistory)),
)]
async fn passes(
    State(state): State<AppState>,
    caller: Caller,
    page: std::result::Result<Query<HistoryPage>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<SyncHistory>> {
    caller.authorize(&state, Action::ReadSync, &SYNC_STATUS)?;
    let Query(page) = page?;
    let limit = page.limit()?;
    let mut conn = state.pool.acquire().await.map_err(store::StoreError::from)?;
    let passes = history::passes(&mut conn, page.before, limit).await?;
    Ok(Json(history_page(passes, limit)))
}

/// The passes that changed, reverted, refused or failed one tenant, newest first.
#[utoipa::path(
    get,
    path = "/v1/sync/tenants/{tenant}/history",
    tag = "operator",
    security(("operator" = ["operator", "auditor"])),
    params(("tenant" = String, Path, description = "The tenant's name.", pattern = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", example = "acme"), ("before" = Option<i64>, Query, description = "Only passes older than this pass id (the `next` of the previous page)."), ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "At most this many (default 20).")),
    responses((status = 200, description = "The passes that touched the tenant, newest first.", body = SyncHistory)),
)]
async fn tenant_history(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    page: std::result::Result<Query<HistoryPage>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<SyncHistory>> {
    // Who may not read it learns that before anything about their query.
    caller.authorize(&state, Action::ReadSync, &SYNC_STATUS)?;
    let Query(page) = page?;
    Ok(Json(tenant_history_page(&state, &caller, &name, page.before, page.limit()?).await?))
}

/// The passes that touched a tenant, newest first: `limit` of them before the pass `before`.
pub(super) async fn tenant_history_page(
    state: &AppState,
    caller: &Caller,
    name: &str,
    before: Option<i64>,
    limit: i64,
) -> Result<SyncHistory> {
    caller.authorize(state, Action::ReadSync, &SYNC_STATUS)?;
    let name = input::lookup("path parameter `tenant`", name)?;
    let mut conn = state.pool.acquire().await.map_err(store::StoreError::from)?;
    let passes = history::tenant_passes(&mut conn, name, before, limit).await?;
    Ok(history_page(passes, limit))
}

/// A page of passes.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct SyncHistory {
    pub(super) passes: Vec<history::PassEntry>,
    /// The `before` of the next page; `null` on the last.
    next: Option<i64>,
}

fn history_page(passes: Vec<history::PassEntry>, limit: i64) -> SyncHistory {
    let next = passes.last().map(|p| p.id).filter(|_| passes.len() as i64 == limit);
    SyncHistory { passes, next }
}

/// Allows one tenant's guarded change (its removal from Git, refused by the mass-delete guard) once:
/// the next pass applies it and uses the allowance up.
#[utoipa::path(
    post,
    path = "/v1/sync/tenants/{tenant}/allow-deletion",
    tag = "operator",
    security(("operator" = ["operator"])),
    params(("tenant" = String, Path, description = "The tenant's name.", pattern = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", example = "acme")),
    responses((status = 202, description = "The next pass may delete what the tenant no longer declares, once.", body = DeletionAllowed)),
)]
async fn allow_deletion(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<(StatusCode, Json<DeletionAllowed>)> {
    caller.authorize(&state, Action::AllowGuardedChange, &RECONCILER)?;
    let name = input::tenant(&name)?;
    let target = Target::in_tenant(name.as_str(), format!("tenant/{name}/guard"));
    let audit = caller.audit("tenant.allow_deletion", target, json!({ "once": true }));
    let allowed = allowance::allow(&state.pool, name.as_str(), audit)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no tenant `{name}` is live: there is nothing to delete")))?;
    store::notify_sync(&state.pool).await?;
    Ok((StatusCode::ACCEPTED, Json(DeletionAllowed { allowed, status: "the next pass applies the change" })))
}

/// A guarded change allowed once.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct DeletionAllowed {
    allowed: allowance::Allowance,
    #[schema(example = "the next pass applies the change")]
    status: &'static str,
}

/// One tenant: its state, the commit it is synced to, errors with file:line, and each drifted field
/// with the applied and live value and who changed it when (from the audit log).
#[utoipa::path(
    get,
    path = "/v1/sync/tenants/{tenant}",
    tag = "operator",
    security(("operator" = ["operator", "auditor"])),
    params(("tenant" = String, Path, description = "The tenant's name.", pattern = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", example = "acme")),
    responses((status = 200, description = "The tenant's sync status: errors, drift, orphans, allowances.", body = TenantSync)),
)]
async fn tenant(State(state): State<AppState>, caller: Caller, Path(name): Path<String>) -> Result<Json<TenantSync>> {
    Ok(Json(tenant_sync(&state, &caller, &name).await?))
}

/// One tenant's sync status: its errors with file and line, each drifted field with the applied
/// and live values and who changed it when, orphans and allowances.
pub(super) async fn tenant_sync(state: &AppState, caller: &Caller, name: &str) -> Result<TenantSync> {
    caller.authorize(state, Action::ReadSync, &SYNC_STATUS)?;
    let name = input::lookup("path parameter `tenant`", name)?;
    let mut conn = state.pool.acquire().await.map_err(store::StoreError::from)?;
    let sync = status::sync_state(&mut conn).await?;
    let row = status::tenant_sync(&mut conn, name).await?;
    let record = status::tenant_record(&mut conn, name).await?;
    if row.is_none() && record.is_none() {
        return Err(ApiError::NotFound(format!("no tenant `{name}` is declared or live")));
    }
    let mut drift = row.as_ref().and_then(|r| r.drift.as_array().cloned()).unwrap_or_default();
    for entry in &mut drift {
        let resource = entry["resource"].as_str().unwrap_or_default().to_owned();
        let (by, at) = match status::last_change_outside_git(&mut conn, &resource).await? {
            Some((actor, at)) => (json!(actor), json!(at)),
            None => (json!("unknown: changed outside Gatehouse, no audit record"), Value::Null),
        };
        entry["changedBy"] = by;
        entry["changedAt"] = at;
    }
    let allowance = drift::allowance_of(&mut conn, name).await?;
    let state_name = row.as_ref().map_or("Synced", |r| r.state.as_str()).to_owned();
    Ok(TenantSync {
        tenant: name.to_owned(),
        synced_commit: (state_name == "Synced").then(|| sync.source_commit.clone()).flatten(),
        state: state_name,
        source_commit: sync.source_commit,
        applied_commit: record.as_ref().and_then(|r| r.applied_commit.clone()),
        managed_by: record.as_ref().map(|r| r.managed_by.clone()),
        source_file: row.as_ref().and_then(|r| r.source_file.clone()).or(record.and_then(|r| r.source_file)),
        last_attempt_at: sync.last_attempt_at,
        errors: row.as_ref().map_or(json!([]), |r| r.errors.clone()),
        drift,
        orphans: row.as_ref().map_or(json!([]), |r| r.orphans.clone()),
        allowed_deletion: allowance::of_tenant(&mut conn, name).await?,
        drift_allowance: allowance,
    })
}

/// One tenant's sync status.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct TenantSync {
    #[schema(example = "acme")]
    pub(super) tenant: String,
    /// `Synced | OutOfSync | Drifted | Error | Unmanaged`.
    pub(super) state: String,
    /// The version the tenant is synced to; `null` unless `Synced`.
    pub(super) synced_commit: Option<String>,
    /// The version of the config of the last pass.
    pub(super) source_commit: Option<String>,
    /// The version that last changed the tenant.
    pub(super) applied_commit: Option<String>,
    /// `git` or `api`; `null` when the tenant is not live.
    pub(super) managed_by: Option<String>,
    pub(super) source_file: Option<String>,
    pub(super) last_attempt_at: Option<DateTime<Utc>>,
    /// Each problem, with its file and line.
    #[schema(value_type = Vec<Object>)]
    pub(super) errors: Value,
    /// Each drifted field: the applied and live values, who changed it and when.
    #[schema(value_type = Vec<Object>)]
    pub(super) drift: Vec<Value>,
    /// Live resources Git does not declare.
    #[schema(value_type = Vec<Object>)]
    pub(super) orphans: Value,
    /// A guarded change allowed once, not yet used.
    pub(super) allowed_deletion: Option<allowance::Allowance>,
    pub(super) drift_allowance: Option<drift::Allowance>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct AllowDrift {
    /// When the allowance ends: a time to come.
    #[schema(example = "2099-01-01T00:00:00Z")]
    until: DateTime<Utc>,
    #[schema(example = "hotfix applied by hand; the pull request follows")]
    reason: String,
}

/// A tenant's drift allowance, as given.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct DriftAllowed {
    #[schema(example = "acme")]
    tenant: String,
    drift_allowance: drift::Allowance,
}

/// A tenant's drift allowance, as withdrawn.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct DriftWithdrawn {
    #[schema(example = "acme")]
    tenant: String,
    withdrawn: drift::Allowance,
}

/// Allows a tenant's drift until `until` (issue 15.6): reported, not reverted, even with selfHeal.
#[utoipa::path(
    post,
    path = "/v1/sync/tenants/{tenant}/drift/allow",
    tag = "operator",
    security(("operator" = ["operator"])),
    params(("tenant" = String, Path, description = "The tenant's name.", pattern = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", example = "acme")),
    request_body(content = AllowDrift),
    responses((status = 200, description = "The drift allowance in force.", body = DriftAllowed)),
)]
async fn allow_drift(
    State(state): State<AppState>,
    caller: Caller,
    Path(tenant): Path<String>,
    body: JsonBody<AllowDrift>,
) -> Result<Json<DriftAllowed>> {
    caller.authorize(&state, Action::AllowGuardedChange, &RECONCILER)?;
    let tenant = input::tenant(&tenant)?;
    let request = body.value()?;
    let until = input::expiry("until", request.until)?;
    let reason = input::reason("reason", &request.reason)?;
    let target = Target::in_tenant(tenant.as_str(), format!("tenant/{tenant}"));
    let entry = caller.audit("tenant.drift.allow", target, json!({ "until": until, "reason": reason }));
    let allowed = drift::allow(&state.pool, tenant.as_str(), until, reason, entry)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no tenant `{tenant}` is live")))?;
    store::notify_sync(&state.pool).await?;
    Ok(Json(DriftAllowed { tenant: tenant.as_str().to_owned(), drift_allowance: allowed }))
}

/// Withdraws a tenant's drift allowance: the next pass reverts its drift if it self-heals.
#[utoipa::path(
    delete,
    path = "/v1/sync/tenants/{tenant}/drift/allow",
    tag = "operator",
    security(("operator" = ["operator"])),
    params(("tenant" = String, Path, description = "The tenant's name.", pattern = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", example = "acme")),
    responses((status = 200, description = "The withdrawn allowance.", body = DriftWithdrawn)),
)]
async fn withdraw_drift(
    State(state): State<AppState>,
    caller: Caller,
    Path(tenant): Path<String>,
) -> Result<Json<DriftWithdrawn>> {
    caller.authorize(&state, Action::AllowGuardedChange, &RECONCILER)?;
    let tenant = input::tenant(&tenant)?;
    let target = Target::in_tenant(tenant.as_str(), format!("tenant/{tenant}"));
    let entry = caller.audit("tenant.drift.withdraw", target, json!({}));
    let withdrawn = drift::withdraw(&state.pool, tenant.as_str(), entry)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("tenant `{tenant}` has no drift allowance in force")))?;
    store::notify_sync(&state.pool).await?;
    Ok(Json(DriftWithdrawn { tenant: tenant.as_str().to_owned(), withdrawn }))
}

#[utoipa::path(
    post,
    path = "/v1/sync",
    tag = "operator",
    security(("operator" = ["operator"])),
    responses((status = 202, description = "A reconcile pass is requested.", body = SyncRequested)),
)]
async fn sync_now(State(state): State<AppState>, caller: Caller) -> Result<(StatusCode, Json<SyncRequested>)> {
    request_sync(&state, &caller).await?;
    Ok((StatusCode::ACCEPTED, Json(SyncRequested { status: "sync requested" })))
}

/// Asks the reconciler for a pass now, audited.
pub(super) async fn request_sync(state: &AppState, caller: &Caller) -> Result<()> {
    caller.authorize(state, Action::ControlSync, &RECONCILER)?;
    let mut tx = state.pool.begin().await.map_err(store::StoreError::from)?;
    status::request_sync(&mut tx).await?;
    store::insert_audit(&mut tx, &[caller.audit("sync.request", Target::platform("reconciler"), json!({}))]).await?;
    tx.commit().await.map_err(store::StoreError::from)?;
    store::notify_sync(&state.pool).await?;
    Ok(())
}

#[utoipa::path(
    post,
    path = "/v1/sync/pause",
    tag = "operator",
    security(("operator" = ["operator"])),
    responses((status = 200, description = "Reconciling is paused.", body = Paused)),
)]
async fn pause(State(state): State<AppState>, caller: Caller) -> Result<Json<Paused>> {
    set_paused(&state, &caller, true).await?;
    Ok(Json(Paused { paused: true }))
}

#[utoipa::path(
    post,
    path = "/v1/sync/resume",
    tag = "operator",
    security(("operator" = ["operator"])),
    responses((status = 200, description = "Reconciling resumes.", body = Paused)),
)]
async fn resume(State(state): State<AppState>, caller: Caller) -> Result<Json<Paused>> {
    set_paused(&state, &caller, false).await?;
    Ok(Json(Paused { paused: false }))
}

/// The answer of `POST /v1/sync`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct SyncRequested {
    #[schema(example = "sync requested")]
    status: &'static str,
}

/// Whether reconciling is paused now.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct Paused {
    paused: bool,
}

/// Pauses or resumes reconciling, audited.
pub(super) async fn set_paused(state: &AppState, caller: &Caller, paused: bool) -> Result<()> {
    caller.authorize(state, Action::ControlSync, &RECONCILER)?;
    let action = if paused { "sync.pause" } else { "sync.resume" };
    let mut tx = state.pool.begin().await.map_err(store::StoreError::from)?;
    status::set_paused(&mut tx, paused).await?;
    store::insert_audit(&mut tx, &[caller.audit(action, Target::platform("reconciler"), json!({}))]).await?;
    tx.commit().await.map_err(store::StoreError::from)?;
    store::notify_sync(&state.pool).await?;
    Ok(())
}
