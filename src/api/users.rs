//! `/v1/tenants/{tenant}/users/...`: what a tenant's owners and admins (or an operator) do to its
//! users (FR-TENANT-002, -004, -006): invite, list, read, change role or name, disable and enable,
//! delete, end sessions, resend an invitation, unlock. Admins may not touch owners; nobody may
//! remove, demote or disable the last active owner (409 `last_owner`). Every query names the
//! tenant; a session of another tenant is refused and audited.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::body::JsonBody;
use super::caller::Caller;
use super::conditional::{self, check_if_match, tagged};
use super::writeback::{self, Done};
use super::{ApiError, AppState, Result, input};
use crate::audit::Target;
use crate::authz::Action;
use crate::model::{AccountStatus, Email, Role, TenantName, WriteBackMode, shown};
use crate::store::tenants::{self as tenants_db, TenantRecord};
use crate::store::users::{self as db, UserChange, UserFilter, UserRecord};
use crate::store::{self, Rule, StoreError};
use crate::writeback::Edit;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, invite))
        .routes(routes!(show, update, remove))
        .routes(routes!(end_sessions))
        .routes(routes!(resend_invitation))
        .routes(routes!(unlock))
}

/// The answer of ending a user's sessions.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SessionsEnded {
    sessions_ended: u64,
}

/// The answer of clearing a user's lockout.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Unlocked {
    was_locked: bool,
}

fn user_target(tenant: &TenantName, email: &str) -> Target {
    Target::in_tenant(tenant.as_str(), format!("tenant/{tenant}/user/{email}"))
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
    caller.record(state, action, user_target(tenant, email), details).await
}

fn role(value: &str) -> Result<Role> {
    Role::parse(value)
        .ok_or_else(|| ApiError::BadRequest(format!("role: `{}` is not one of owner, admin, user", shown(value))))
}

fn status(value: &str) -> Result<AccountStatus> {
    match AccountStatus::parse(value) {
        Some(status @ (AccountStatus::Active | AccountStatus::Disabled)) => Ok(status),
        _ => Err(ApiError::BadRequest(format!(
            "status: `{}` is not one of active, disabled (invited users become active by accepting their invitation)",
            shown(value)
        ))),
    }
}

/// The tenant a path names (404 if there is none).
async fn tenant_of(state: &AppState, tenant: &TenantName) -> Result<TenantRecord> {
    Ok(tenants_db::get(&state.pool, tenant.as_str()).await?.ok_or_else(|| tenants_db::not_found(tenant.as_str()))?)
}

/// The record of the tenant `tenant` names, for a page that already authorized reading its users.
pub(super) async fn tenant_record(state: &AppState, tenant: &str) -> Result<TenantRecord> {
    tenant_of(state, &input::tenant(tenant)?).await
}

/// 409 for deleting a row Git declares, interactive edits or not: the next pass would create it again
/// (a missing row is not drift), so it is removed from its file.
pub(crate) fn refuse_git_delete(tenant: &TenantRecord, managed_by: &str, what: std::fmt::Arguments<'_>) -> Result<()> {
    if managed_by != "git" {
        return Ok(());
    }
    let file = tenant.source_file.as_deref().unwrap_or("the config repository");
    Err(ApiError::rule(
        Rule::Conflict,
        "managed_by_git",
        format!("{what} is declared in Git ({file}); remove it there"),
    ))
}

/// Users are invited only to active tenants.
fn refuse_inactive(tenant: &TenantRecord) -> Result<()> {
    if tenant.state == crate::model::TenantState::Active {
        return Ok(());
    }
    Err(ApiError::rule(
        Rule::Conflict,
        "tenant_not_active",
        format!("tenant `{}` is {}; restore it before inviting users", tenant.name, tenant.state),
    ))
}

/// A change of a user that Git declares, when the tenant writes such changes back: the user as
/// read, under the preconditions `change_locked` keeps (owners changed by owners, `If-Match`).
async fn git_user(
    state: &AppState,
    caller: &Caller,
    tenant: &TenantName,
    email: &Email,
    headers: &HeaderMap,
    new_role: Option<Role>,
) -> Result<Option<(TenantRecord, WriteBackMode, UserRecord)>> {
    let record = tenant_of(state, tenant).await?;
    if record.write_back.is_none() {
        return Ok(None);
    }
    let current = user(state, tenant, email).await?;
    let Some(mode) = record.writes_back(&current.managed_by) else { return Ok(None) };
    authorize_owner_change(state, caller, tenant, Some(current.user.role), new_role)?;
    check_if_match(headers, &current.etag())?;
    Ok(Some((record, mode, current)))
}

/// The tenant user acting, if the caller is one: who made an account what it is (issue 25.4).
fn acting_user(caller: &Caller) -> Option<uuid::Uuid> {
    match &caller.actor {
        crate::authz::Actor::User(session) => Some(session.user_id),
        _ => None,
    }
}

/// Owners are changed only by operators and owners (`authz::owner_change`).
fn authorize_owner_change(
    state: &AppState,
    caller: &Caller,
    tenant: &TenantName,
    current: Option<Role>,
    new: Option<Role>,
) -> Result<()> {
    if let Some(action) = crate::authz::owner_change(current, new) {
        caller.authorize_tenant(state, action, "owners", tenant.as_str())?;
    }
    Ok(())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Invitation {
    #[schema(example = "newcomer@acme.example")]
    email: String,
    /// owner, admin or user. Only operators and owners invite owners.
    #[schema(example = "user")]
    role: String,
    name: Option<String>,
}

#[utoipa::path(
    post, operation_id = "invite_user",
    path = "/v1/tenants/{tenant}/users",
    tag = "admin",
    security(("operator" = ["operator"]), ("session" = ["owner", "admin"])),
    params(("tenant" = String, Path, description = "The tenant's name.", pattern = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", example = "acme"), ("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key within 24 h gets the first answer.")),
    request_body(content = Invitation),
    responses((status = 201, description = "The user, `invited`; the invitation is mailed. 409 `email_taken` if the email is a user of this tenant, `email_unavailable` if it is used elsewhere on the platform or in a domain another tenant verified for its sign-in (the answer names neither).", body = UserRecord)),
)]
#[allow(clippy::too_many_arguments)]
async fn invite(
    State(state): State<AppState>,
    caller: Caller,
    Path(tenant): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: JsonBody<Invitation>,
) -> Result<Response> {
    // Who may not invite learns that before anything about their body (`Invite::check` asks again).
    caller.authorize_tenant(&state, Action::ManageUsers, "users", &tenant)?;
    let raw = body.raw().to_vec();
    let request = body.value()?;
    let mut invite = Invite::check(&state, &caller, &tenant, &request.email, &request.role, request.name.as_deref())?;
    invite.language = super::web::Lang::accepted(&headers);
    if let Some(done) = invite.to_git(&state, &caller).await? {
        return writeback::answer(done, async |_| {
            let user = user(&state, &invite.tenant, &invite.email).await?;
            Ok(tagged(StatusCode::CREATED, &user, &user.etag()))
        })
        .await;
    }
    conditional::create(&state, &caller, (&method, uri.path(), &headers, &raw), async |conn| {
        let user = invite.apply(conn, &caller).await?;
        let etag = user.etag();
        Ok((user, etag))
    })
    .await
}

/// An invitation the caller may send, its fields parsed (FR-TENANT-002): the JSON API and the
/// tenant console both send it through here.
pub(super) struct Invite {
    tenant: TenantName,
    email: Email,
    name: Option<crate::model::DisplayName>,
    role: Role,
    /// The language the invitation is mailed in: the inviting page's, or the API request's
    /// `Accept-Language`; `None`: English until the user chooses.
    pub language: Option<crate::i18n::Lang>,
}

impl Invite {
    /// Authorizes and parses an invitation of `email` as `role` to `tenant`.
    pub(super) fn check(
        state: &AppState,
        caller: &Caller,
        tenant: &str,
        email: &str,
        role_name: &str,
        name: Option<&str>,
    ) -> Result<Invite> {
        let (tenant, _) = caller.authorize_tenant(state, Action::ManageUsers, "users", tenant)?;
        let role = role(role_name)?;
        authorize_owner_change(state, caller, &tenant, None, Some(role))?;
        let email = input::email("email", email)?;
        let name = name.map(|n| input::display_name("name", n)).transpose()?;
        Ok(Invite { tenant, email, name, role, language: None })
    }

    /// Writes the invitation back to Git when the tenant's users are declared there and its file
    /// says so (`interactiveEdits: writeBack`): a new item of `spec.users`; the reconciler creates
    /// the user, `invited`, and the mail worker sends the invitation. `None`: not written back.
    pub(super) async fn to_git(&self, state: &AppState, caller: &Caller) -> Result<Option<Done<UserRecord>>> {
        let record = tenant_of(state, &self.tenant).await?;
        let Some(mode) = record.writes_back(&record.managed_by) else { return Ok(None) };
        refuse_inactive(&record)?;
        let email = self.email.as_str();
        let mut conn = state.pool.acquire().await.map_err(StoreError::from)?;
        db::check_invitable(&mut conn, record.id, email).await?;
        drop(conn);
        let mut item = vec![("email".to_owned(), json!(email))];
        if let Some(name) = &self.name {
            item.push(("name".to_owned(), json!(name.as_str())));
        }
        item.push(("role".to_owned(), json!(self.role)));
        let edit = Edit::AddUser { tenant: record.name.clone(), item };
        let details = json!({ "role": self.role, "name": self.name.as_ref().map(|n| n.as_str()) });
        let target = user_target(&self.tenant, email);
        let done = writeback::write_back(
            state,
            caller,
            &record,
            mode,
            writeback::Asked { action: "user.invite", target, details, edits: vec![edit] },
        )
        .await?;
        if let (Done::Committed { applied: true, .. }, Some(lang)) = (&done, self.language)
            && let Some(user) = db::get(&state.pool, record.id, email).await?
        {
            let mut conn = state.pool.acquire().await.map_err(StoreError::from)?;
            db::set_language(&mut conn, user.user.id, lang.tag()).await?;
        }
        Ok(Some(done))
    }

    /// Inserts the user, `invited`, with its audit row, in `conn`'s transaction; the mail worker
    /// sends the invitation after commit.
    pub(super) async fn apply(&self, conn: &mut sqlx::PgConnection, caller: &Caller) -> Result<UserRecord> {
        let (tenant, email, role) = (&self.tenant, &self.email, self.role);
        let name = self.name.as_ref().map(|n| n.as_str());
        let row =
            caller.audit("user.invite", user_target(tenant, email.as_str()), json!({ "role": role, "name": name }));
        let locked = tenants_db::lock(conn, tenant.as_str()).await?;
        refuse_inactive(&locked)?;
        locked.refuse_if_git(&locked.managed_by, format_args!("the users of tenant `{}`", locked.name))?;
        let user = db::invite(conn, locked.id, email.as_str(), name, role, acting_user(caller), &[row]).await?;
        if let Some(lang) = self.language {
            db::set_language(conn, user.user.id, lang.tag()).await?;
        }
        Ok(user)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ListQuery {
    after: Option<String>,
    limit: Option<i64>,
    role: Option<String>,
    status: Option<String>,
    email_prefix: Option<String>,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct Users {
    pub users: Vec<UserRecord>,
    /// The `after` of the next page; absent on the last.
    pub next: Option<String>,
}

#[utoipa::path(
    get, operation_id = "list_users",
    path = "/v1/tenants/{tenant}/users",
    tag = "admin",
    security(("operator" = ["operator", "auditor"]), ("session" = ["owner", "admin"])),
    params(
        ("tenant" = String, Path, description = "The tenant's name.", pattern = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", example = "acme"),
        ("after" = Option<String>, Query, description = "Only users after this email (the `next` of the previous page)."),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 1000, description = "At most this many (default 100)."),
        ("role" = Option<String>, Query, description = "Only users with this role: owner, admin, user."),
        ("status" = Option<String>, Query, description = "Only users in this status: invited, active, disabled."),
        ("emailPrefix" = Option<String>, Query, description = "Only users whose email starts with this."),
    ),
    responses((status = 200, description = "A page of the tenant's users in email order (an operator or auditor, or an owner or admin of the tenant).", body = Users)),
)]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(tenant): Path<String>,
    query: std::result::Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response> {
    caller.authorize_tenant(&state, Action::ListUsers, "users", &tenant)?;
    let Query(query) = query?;
    let filter = Listing {
        limit: query.limit,
        role: query.role.as_deref(),
        status: query.status.as_deref(),
        after: query.after.as_deref(),
        email_prefix: query.email_prefix.as_deref(),
    };
    Ok(axum::Json(list_users(&state, &caller, &tenant, &filter).await?).into_response())
}

/// A page of users as asked for, before parsing.
#[derive(Default)]
pub(super) struct Listing<'a> {
    pub limit: Option<i64>,
    pub role: Option<&'a str>,
    pub status: Option<&'a str>,
    pub after: Option<&'a str>,
    pub email_prefix: Option<&'a str>,
}

/// A page of `tenant`'s users in email order, if the caller may list them.
pub(super) async fn list_users(state: &AppState, caller: &Caller, tenant: &str, asked: &Listing<'_>) -> Result<Users> {
    let (tenant, _) = caller.authorize_tenant(state, Action::ListUsers, "users", tenant)?;
    let limit = asked.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::BadRequest("query parameter `limit`: from 1 to 1000".into()));
    }
    let role = asked.role.map(role).transpose()?;
    let status = asked
        .status
        .map(|s| {
            AccountStatus::parse(s).ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "query parameter `status`: `{}` is not one of invited, active, disabled",
                    shown(s)
                ))
            })
        })
        .transpose()?;
    let after = asked.after.map(|a| input::lookup("query parameter `after`", a)).transpose()?;
    let prefix = asked.email_prefix.map(|p| input::lookup("query parameter `emailPrefix`", p)).transpose()?;
    let found = tenant_of(state, &tenant).await?;
    let prefix = prefix.map(str::to_lowercase);
    let filter = UserFilter { role, status, email_prefix: prefix.as_deref(), after, limit };
    let users = db::list(&state.pool, found.id, &filter).await?;
    let next = users.last().filter(|_| users.len() as i64 == limit).map(|u| u.user.email.clone());
    Ok(Users { users, next })
}

async fn user(state: &AppState, tenant: &TenantName, email: &Email) -> Result<UserRecord> {
    let found = tenant_of(state, tenant).await?;
    db::get(&state.pool, found.id, email.as_str())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("tenant `{tenant}` has no user {email}")))
}

#[utoipa::path(
    get, operation_id = "show_user",
    path = "/v1/tenants/{tenant}/users/{email}",
    tag = "admin",
    security(("operator" = ["operator", "auditor"]), ("session" = ["owner", "admin"])),
    params(("tenant" = String, Path, description = "The tenant's name.", pattern = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", example = "acme"), ("email" = String, Path, description = "The user's email address.", example = "dan@acme.example")),
    responses((status = 200, description = "The user, with its ETag.", body = UserRecord)),
)]
async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path((tenant, email)): Path<(String, String)>,
) -> Result<Response> {
    let user = show_user(&state, &caller, &tenant, &email).await?;
    Ok(tagged(StatusCode::OK, &user, &user.etag()))
}

/// One user of `tenant`, if the caller may see the tenant's users.
pub(super) async fn show_user(state: &AppState, caller: &Caller, tenant: &str, email: &str) -> Result<UserRecord> {
    let tenant = caller.authorize_tenant_user(state, Action::ListUsers, tenant, email)?;
    let email = input::path_email(email)?;
    user(state, &tenant, &email).await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserUpdate {
    /// owner, admin or user (ends the user's sessions).
    #[schema(example = "user")]
    role: Option<String>,
    #[schema(example = "Dan Brown")]
    name: Option<String>,
    /// active or disabled (disabling ends the user's sessions).
    #[schema(example = "active")]
    status: Option<String>,
}

/// Runs `change` on the user locked (after the tenant) in a transaction, after its preconditions:
/// an owner's change needs `ManageOwners`, a user declared in Git is a 409, a stale `If-Match` a
/// 412.
async fn change_locked<T>(
    state: &AppState,
    caller: &Caller,
    tenant: &TenantName,
    email: &Email,
    headers: &HeaderMap,
    new_role: Option<Role>,
    change: impl AsyncFnOnce(&mut sqlx::PgConnection, &TenantRecord, &UserRecord) -> Result<T>,
) -> Result<T> {
    let mut tx = state.pool.begin().await.map_err(StoreError::from)?;
    let locked = tenants_db::lock(&mut tx, tenant.as_str()).await?;
    let current = db::lock(&mut tx, tenant.as_str(), locked.id, email.as_str()).await?;
    authorize_owner_change(state, caller, tenant, Some(current.user.role), new_role)?;
    let email = &current.user.email;
    locked.refuse_if_git(&current.managed_by, format_args!("user {email} of tenant `{}`", locked.name))?;
    check_if_match(headers, &current.etag())?;
    let done = change(&mut tx, &locked, &current).await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(done)
}

#[utoipa::path(
    patch, operation_id = "update_user",
    path = "/v1/tenants/{tenant}/users/{email}",
    tag = "admin",
    security(("operator" = ["operator"]), ("session" = ["owner", "admin"])),
    params(("tenant" = String, Path, description = "The tenant's name.", pattern = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", example = "acme"), ("email" = String, Path, description = "The user's email address.", example = "dan@acme.example"), ("If-Match" = Option<String>, Header, description = "The ETag the change is based on: 412 if the user changed since.")),
    request_body(content = UserUpdate),
    responses((status = 200, description = "The changed user, with its ETag. 409 `last_owner` if the tenant would have no active owner left.", body = UserRecord)),
)]
async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path((tenant, email)): Path<(String, String)>,
    headers: HeaderMap,
    body: JsonBody<UserUpdate>,
) -> Result<Response> {
    caller.authorize_tenant_user(&state, Action::ManageUsers, &tenant, &email)?;
    let request = body.value()?;
    let change =
        Change { role: request.role.as_deref(), name: request.name.as_deref(), status: request.status.as_deref() };
    let done = update_user(&state, &caller, &tenant, &email, &headers, &change).await?;
    writeback::answer(done, async |updated| {
        let updated = match updated {
            Some(updated) => updated,
            None => show_user(&state, &caller, &tenant, &email).await?,
        };
        Ok(tagged(StatusCode::OK, &updated, &updated.etag()))
    })
    .await
}

/// A change of a user as asked for, before parsing; `None` leaves the field as it is.
#[derive(Default)]
pub(super) struct Change<'a> {
    pub role: Option<&'a str>,
    pub name: Option<&'a str>,
    pub status: Option<&'a str>,
}

/// Changes a user's role, name or status (FR-TENANT-004): admins do not touch owners, the last
/// active owner stays, a user Git declares is a 409, a stale `If-Match` in `headers` a 412.
pub(super) async fn update_user(
    state: &AppState,
    caller: &Caller,
    tenant: &str,
    email: &str,
    headers: &HeaderMap,
    asked: &Change<'_>,
) -> Result<Done<UserRecord>> {
    let tenant = caller.authorize_tenant_user(state, Action::ManageUsers, tenant, email)?;
    let email = input::path_email(email)?;
    let new_role = asked.role.map(role).transpose()?;
    let new_status = asked.status.map(status).transpose()?;
    let name = asked.name.map(|n| input::display_name("name", n)).transpose()?;
    let change = UserChange {
        role: new_role,
        name: name.as_ref().map(|n| n.as_str()),
        status: new_status,
        by: acting_user(caller),
    };
    if let Some((record, mode, current)) = git_user(state, caller, &tenant, &email, headers, new_role).await? {
        let mut conn = state.pool.acquire().await.map_err(StoreError::from)?;
        db::check_change(&mut conn, record.id, &current, new_role, new_status).await?;
        drop(conn);
        let user = &current.user;
        let field = |field: &str, expected: serde_json::Value, value: serde_json::Value| Edit::User {
            tenant: record.name.clone(),
            email: user.email.clone(),
            field: field.to_owned(),
            expected,
            value,
        };
        let mut edits = Vec::new();
        if let Some(role) = new_role.filter(|r| *r != user.role) {
            edits.push(field("role", json!(user.role), json!(role)));
        }
        if let Some(name) = change.name.filter(|n| user.name.as_deref() != Some(*n)) {
            edits.push(field("name", json!(user.name), json!(name)));
        }
        // The file writes `disabled`, or nothing for active (an invited user is active in Git).
        let written = |s: AccountStatus| if s == AccountStatus::Disabled { json!("disabled") } else { json!(null) };
        if let Some(status) = new_status.filter(|s| written(*s) != written(user.status)) {
            edits.push(field("status", written(user.status), written(status)));
        }
        if edits.is_empty() {
            return Ok(Done::Now(current));
        }
        let details = json!({
            "role": new_role.filter(|r| *r != user.role),
            "status": new_status.filter(|s| *s != user.status),
            "name": change.name,
            "from": { "role": user.role, "status": user.status },
        });
        let target = user_target(&tenant, email.as_str());
        return writeback::write_back(
            state,
            caller,
            &record,
            mode,
            writeback::Asked { action: "user.update", target, details, edits },
        )
        .await;
    }
    change_locked(state, caller, &tenant, &email, headers, new_role, async |conn, locked, current| {
        let details = json!({
            "role": change.role.filter(|r| *r != current.user.role),
            "status": change.status.filter(|s| *s != current.user.status),
            "name": change.name,
            "from": { "role": current.user.role, "status": current.user.status },
        });
        let row = caller.audit("user.update", user_target(&tenant, email.as_str()), details);
        Ok(Done::Now(db::update(conn, locked.id, current, change, &[row]).await?))
    })
    .await
}

#[utoipa::path(
    delete, operation_id = "delete_user",
    path = "/v1/tenants/{tenant}/users/{email}",
    tag = "admin",
    security(("operator" = ["operator"]), ("session" = ["owner", "admin"])),
    params(("tenant" = String, Path, description = "The tenant's name.", pattern = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", example = "acme"), ("email" = String, Path, description = "The user's email address.", example = "dan@acme.example"), ("If-Match" = Option<String>, Header, description = "The ETag the deletion is based on: 412 if the user changed since.")),
    responses((status = 204, description = "The user is deleted, with their sessions. 409 `last_owner` for the last active owner.")),
)]
async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path((tenant, email)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response> {
    let done = delete_user(&state, &caller, &tenant, &email, &headers).await?;
    writeback::answer(done, async |_| Ok(StatusCode::NO_CONTENT.into_response())).await
}

/// Deletes a user with their sessions (FR-TENANT-006), under the rules of `update_user`.
pub(super) async fn delete_user(
    state: &AppState,
    caller: &Caller,
    tenant: &str,
    email: &str,
    headers: &HeaderMap,
) -> Result<Done<()>> {
    let tenant = caller.authorize_tenant_user(state, Action::ManageUsers, tenant, email)?;
    let email = input::path_email(email)?;
    if let Some((record, mode, current)) = git_user(state, caller, &tenant, &email, headers, None).await? {
        let mut conn = state.pool.acquire().await.map_err(StoreError::from)?;
        db::check_delete(&mut conn, record.id, &current).await?;
        drop(conn);
        writeback::refuse_unless_pruned(state, &record, &format!("user {}", current.user.email)).await?;
        let details = json!({ "role": current.user.role, "status": current.user.status });
        let edit = Edit::RemoveUser { tenant: record.name.clone(), email: current.user.email.clone() };
        let target = user_target(&tenant, email.as_str());
        return writeback::write_back(
            state,
            caller,
            &record,
            mode,
            writeback::Asked { action: "user.delete", target, details, edits: vec![edit] },
        )
        .await;
    }
    change_locked(state, caller, &tenant, &email, headers, None, async |conn, locked, current| {
        refuse_git_delete(
            locked,
            &current.managed_by,
            format_args!("user {} of tenant `{}`", current.user.email, locked.name),
        )?;
        let details = json!({ "role": current.user.role, "status": current.user.status });
        let row = caller.audit("user.delete", user_target(&tenant, email.as_str()), details);
        db::delete(conn, locked.id, current, &[row]).await?;
        Ok(Done::Now(()))
    })
    .await
}

/// An admin's revoke: ends every session of the user at once.
#[utoipa::path(
    delete, operation_id = "end_user_sessions",
    path = "/v1/tenants/{tenant}/users/{email}/sessions",
    tag = "session",
    security(("operator" = ["operator"]), ("session" = ["owner", "admin"])),
    params(("tenant" = String, Path, description = "The tenant's name.", pattern = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", example = "acme"), ("email" = String, Path, description = "The user's email address.", example = "dan@acme.example")),
    responses((status = 200, description = "How many sessions were ended.", body = SessionsEnded)),
)]
async fn end_sessions(
    State(state): State<AppState>,
    caller: Caller,
    Path((tenant, email)): Path<(String, String)>,
) -> Result<Response> {
    let ended = end_user_sessions(&state, &caller, &tenant, &email).await?;
    Ok(axum::Json(SessionsEnded { sessions_ended: ended }).into_response())
}

/// Ends every session of a user at once; how many were live.
pub(super) async fn end_user_sessions(state: &AppState, caller: &Caller, tenant: &str, email: &str) -> Result<u64> {
    let tenant = caller.authorize_tenant_user(state, Action::EndUserSessions, tenant, email)?;
    let email = input::path_email(email)?;
    let user = user(state, &tenant, &email).await?.user;
    // Ending an owner's sessions is owner management (issue 25.9): operators and owners only.
    authorize_owner_change(state, caller, &tenant, Some(user.role), None)?;
    let ended = {
        let mut conn = state.pool.acquire().await.map_err(store::StoreError::from)?;
        store::identity::revoke_user_sessions(&mut conn, user.id, None, "revoked_by_admin").await?
    };
    audit(state, caller, "auth.session.revoke", &tenant, &user.email, json!({ "sessionsEnded": ended })).await?;
    Ok(ended)
}

/// Resends an invitation: a new link, the earlier ones stop working.
#[utoipa::path(
    post, operation_id = "resend_user_invitation",
    path = "/v1/tenants/{tenant}/users/{email}/invitation",
    tag = "session",
    security(("operator" = ["operator"]), ("session" = ["owner", "admin"])),
    params(("tenant" = String, Path, description = "The tenant's name.", pattern = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", example = "acme"), ("email" = String, Path, description = "The user's email address.", example = "dan@acme.example")),
    responses((status = 202, description = "A new invitation is on its way.", body = super::openapi::Message)),
)]
async fn resend_invitation(
    State(state): State<AppState>,
    caller: Caller,
    Path((tenant, email)): Path<(String, String)>,
) -> Result<Response> {
    let email = resend_user_invitation(&state, &caller, &tenant, &email).await?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(super::openapi::Message { message: format!("a new invitation is on its way to {email}") }),
    )
        .into_response())
}

/// Mails an invited user a new link (the earlier ones stop working); returns their email.
pub(super) async fn resend_user_invitation(
    state: &AppState,
    caller: &Caller,
    tenant: &str,
    email: &str,
) -> Result<String> {
    let tenant = caller.authorize_tenant_user(state, Action::ResendInvitation, tenant, email)?;
    let email = input::path_email(email)?;
    let user = user(state, &tenant, &email).await?.user;
    // A new link voids the owner's earlier one: owner management too (issue 25.9).
    authorize_owner_change(state, caller, &tenant, Some(user.role), None)?;
    if user.status != AccountStatus::Invited {
        return Err(ApiError::rule(
            Rule::Conflict,
            "not_invited",
            format!("{} is {}, not invited", user.email, user.status),
        ));
    }
    state.identity.resend_invitation(user.id).await?.ok_or_else(|| ApiError::NotFound(email.to_string()))?;
    audit(state, caller, "auth.invitation.send", &tenant, &user.email, json!({})).await?;
    Ok(user.email)
}

#[utoipa::path(
    delete, operation_id = "unlock_user",
    path = "/v1/tenants/{tenant}/users/{email}/lockout",
    tag = "admin",
    security(("operator" = ["operator"]), ("session" = ["owner", "admin"])),
    params(("tenant" = String, Path, description = "The tenant's name.", pattern = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", example = "acme"), ("email" = String, Path, description = "The user's email address.", example = "dan@acme.example")),
    responses((status = 200, description = "The user's failed sign-in attempts are forgotten; whether they were locked out.", body = Unlocked)),
)]
async fn unlock(
    State(state): State<AppState>,
    caller: Caller,
    Path((tenant, email)): Path<(String, String)>,
) -> Result<Response> {
    let was_locked = unlock_user(&state, &caller, &tenant, &email).await?;
    Ok(axum::Json(Unlocked { was_locked }).into_response())
}

/// Forgets a user's failed sign-in attempts; whether they were locked out.
pub(super) async fn unlock_user(state: &AppState, caller: &Caller, tenant: &str, email: &str) -> Result<bool> {
    let tenant = caller.authorize_tenant_user(state, Action::ClearLockout, tenant, email)?;
    let email = input::path_email(email)?;
    let user = user(state, &tenant, &email).await?.user;
    // An owner's lockout guards the tenant's most powerful account: only operators and owners lift it.
    authorize_owner_change(state, caller, &tenant, Some(user.role), None)?;
    let was_locked = store::identity::clear_failures(&state.pool, &user.email).await?;
    audit(state, caller, "auth.unlock", &tenant, &user.email, json!({ "wasLocked": was_locked })).await?;
    Ok(was_locked)
}
