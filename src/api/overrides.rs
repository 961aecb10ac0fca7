//! `/v1/tenants/{tenant}/overrides`: a tenant's overrides of its plan's flag defaults, set and
//! cleared by operators (FR-FLAG-001) with the rules `validate` applies to Git: the plan must
//! declare the flag, and the value must be of the plan's type. Applications read the result through
//! `/v1/tenants/{tenant}/flags` and OFREP, on every replica within the change feed's delay.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::body::JsonBody;
use super::caller::Caller;
use super::writeback;
use super::{ApiError, AppState, Result};
use crate::audit::Target;
use crate::authz::Action;
use crate::model::{FlagKey, FlagType, FlagValue, TenantName, shown};
use crate::store::tenants::{self as db, FlagOverride};
use crate::store::{Rule, StoreError};
use crate::writeback::Edit;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list)).routes(routes!(set, clear))
}

/// A tenant's flag overrides.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[schema(as = FlagOverrides)]
pub(crate) struct Overrides {
    overrides: Vec<FlagOverride>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({ "value": true }))]
pub(crate) struct NewValue {
    /// The value, of the type of the plan's default: a boolean, a number (an integer is accepted
    /// for a number flag), a string or a list of strings.
    #[schema(value_type = Value)]
    value: serde_json::Value,
}

fn flag_key(value: &str) -> Result<FlagKey> {
    FlagKey::parse(value).map_err(|e| ApiError::BadRequest(format!("path parameter `flag`: {e}")))
}

fn target(tenant: &TenantName, key: &FlagKey) -> Target {
    Target::in_tenant(tenant.as_str(), format!("tenant/{tenant}/flag/{key}"))
}

#[utoipa::path(
    get, operation_id = "list_flag_overrides",
    path = "/v1/tenants/{tenant}/overrides",
    tag = "admin",
    security(("operator" = ["operator", "auditor"]), ("session" = ["owner", "admin"])),
    params(("tenant" = String, Path, description = "The tenant's name.", pattern = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", example = "acme")),
    responses((status = 200, description = "The tenant's flag overrides, each beside the plan's default.", body = Overrides)),
)]
async fn list(State(state): State<AppState>, caller: Caller, Path(tenant): Path<String>) -> Result<Response> {
    Ok(axum::Json(Overrides { overrides: flag_overrides(&state, &caller, &tenant).await? }).into_response())
}

/// A tenant's flag overrides, each beside the plan's default.
pub(super) async fn flag_overrides(state: &AppState, caller: &Caller, tenant: &str) -> Result<Vec<FlagOverride>> {
    let (name, _) = caller.authorize_tenant(state, Action::ReadTenants, "flag overrides", tenant)?;
    let found = db::get(&state.pool, name.as_str()).await?.ok_or_else(|| db::not_found(name.as_str()))?;
    Ok(db::overrides(&state.pool, found.id).await?)
}

#[utoipa::path(
    put, operation_id = "set_flag_override",
    path = "/v1/tenants/{tenant}/overrides/{flag}",
    tag = "admin",
    security(("operator" = ["operator"])),
    params(("tenant" = String, Path, description = "The tenant's name.", pattern = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", example = "acme"), ("flag" = String, Path, description = "The flag's key, as its plan declares it.", example = "max_projects")),
    request_body(content = NewValue),
    responses((status = 200, description = "The override as set. 422 `unknown_flag` or `wrong_flag_type` when the plan does not allow it.", body = FlagOverride)),
)]
async fn set(
    State(state): State<AppState>,
    caller: Caller,
    Path((tenant, flag)): Path<(String, String)>,
    body: JsonBody<NewValue>,
) -> Result<Response> {
    let (name, _) = caller.authorize_tenant(&state, Action::ManageFlags, "flag overrides", &tenant)?;
    let key = flag_key(&flag)?;
    let value = body.value()?.value;
    let mut tx = state.pool.begin().await.map_err(StoreError::from)?;
    let locked = db::lock(&mut tx, name.as_str()).await?;
    let Some(default) = db::plan_default(&mut tx, &locked, key.as_str()).await? else {
        return Err(ApiError::rule(
            Rule::Invalid,
            "unknown_flag",
            format!("flag `{key}` is not declared by plan `{}`; add a default there first", locked.plan),
        ));
    };
    let expected = FlagType::of(&default).unwrap_or(FlagType::Object);
    let Some(typed) = FlagValue::typed(expected, value.clone()) else {
        let own = FlagType::of(&value).map_or_else(|| "null or an array".to_owned(), |t| t.to_string());
        let shown_value = shown(&value.to_string());
        return Err(ApiError::rule(
            Rule::Invalid,
            "wrong_flag_type",
            format!(
                "value: flag `{key}` is {expected} in plan `{}`, so the override must be {expected} too, not {own} ({shown_value})",
                locked.plan
            ),
        ));
    };
    let current = db::lock_override(&mut tx, &locked, key.as_str()).await?;
    // A new override of a Git tenant changes what its file declares, as a changed one does.
    let managed_by = current.as_ref().map_or(locked.managed_by.as_str(), |c| c.managed_by.as_str());
    let details = json!({ "value": typed.as_json(), "previous": current.as_ref().map(|c| &c.value) });
    if let Some(mode) = locked.writes_back(managed_by) {
        drop(tx);
        let edit = Edit::Tenant {
            tenant: locked.name.clone(),
            path: writeback::flag_path(&key)?,
            expected: current.as_ref().map_or(Value::Null, |c| c.value.clone()),
            value: typed.as_json().clone(),
        };
        let done = writeback::write_back(
            &state,
            &caller,
            &locked,
            mode,
            writeback::Asked { action: "flag.set", target: target(&name, &key), details, edits: vec![edit] },
        )
        .await?;
        return writeback::answer(done, async |_: Option<()>| {
            let mut conn = state.pool.begin().await.map_err(StoreError::from)?;
            let locked = db::lock(&mut conn, name.as_str()).await?;
            let set = db::lock_override(&mut conn, &locked, key.as_str()).await?;
            Ok(axum::Json(set).into_response())
        })
        .await;
    }
    locked.refuse_if_git(managed_by, format_args!("the flag overrides of tenant `{name}`"))?;
    let row = caller.audit("flag.set", target(&name, &key), details);
    let set = db::set_override(&mut tx, &locked, key.as_str(), typed.as_json(), &[row]).await?;
    tx.commit().await.map_err(StoreError::from)?;
    super::tenants::refreshed(&state, name.as_str()).await;
    Ok(axum::Json(set).into_response())
}

#[utoipa::path(
    delete, operation_id = "clear_flag_override",
    path = "/v1/tenants/{tenant}/overrides/{flag}",
    tag = "admin",
    security(("operator" = ["operator"])),
    params(("tenant" = String, Path, description = "The tenant's name.", pattern = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", example = "acme"), ("flag" = String, Path, description = "The flag's key.", example = "max_projects")),
    responses((status = 204, description = "The override is gone: the plan's default applies again.")),
)]
async fn clear(
    State(state): State<AppState>,
    caller: Caller,
    Path((tenant, flag)): Path<(String, String)>,
) -> Result<Response> {
    let (name, _) = caller.authorize_tenant(&state, Action::ManageFlags, "flag overrides", &tenant)?;
    let key = flag_key(&flag)?;
    let mut tx = state.pool.begin().await.map_err(StoreError::from)?;
    let locked = db::lock(&mut tx, name.as_str()).await?;
    let Some(current) = db::lock_override(&mut tx, &locked, key.as_str()).await? else {
        return Err(ApiError::NotFound(format!("tenant `{name}` has no override of flag `{key}`")));
    };
    if let Some(mode) = locked.writes_back(&current.managed_by) {
        drop(tx);
        writeback::refuse_unless_pruned(&state, &locked, &format!("the override of flag `{key}`")).await?;
        let edit = Edit::Tenant {
            tenant: locked.name.clone(),
            path: writeback::flag_path(&key)?,
            expected: current.value.clone(),
            value: Value::Null,
        };
        let details = json!({ "previous": current.value });
        let done = writeback::write_back(
            &state,
            &caller,
            &locked,
            mode,
            writeback::Asked { action: "flag.clear", target: target(&name, &key), details, edits: vec![edit] },
        )
        .await?;
        return writeback::answer(done, async |_: Option<()>| Ok(StatusCode::NO_CONTENT.into_response())).await;
    }
    super::users::refuse_git_delete(
        &locked,
        &current.managed_by,
        format_args!("the override of flag `{key}` of tenant `{name}`"),
    )?;
    let row = caller.audit("flag.clear", target(&name, &key), json!({ "previous": current.value }));
    db::clear_override(&mut tx, &locked, key.as_str(), &[row]).await?;
    tx.commit().await.map_err(StoreError::from)?;
    super::tenants::refreshed(&state, name.as_str()).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}
