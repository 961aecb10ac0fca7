//! The tenant administration console (IF-TENANT-CONSOLE, FR-TENANT-002, -004, -006): a tenant's
//! owners and admins list, search and invite its users, change a role, disable or enable, end
//! sessions, unlock, resend an invitation and delete. The rules (admins do not touch owners, the
//! last active owner stays, Git owns what it declares) are `users`' and `authorize`'s, shown here
//! as sentences before anyone runs into them.

use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{Signed, encode};
use crate::api::users::{self, Change, Invite, Listing};
use crate::api::web::templates::{self, Body};
use crate::api::web::{Page, Tr};
use crate::api::{ApiError, AppState};
use crate::authz::Action;
use crate::config::declared::Declared;
use crate::model::{AccountStatus, Role};
use crate::store::users::UserRecord;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(home))
        .routes(routes!(list_page, invite_form))
        .routes(routes!(tenant_form))
        .routes(routes!(subscription_page, subscription_form))
        .routes(routes!(user_page, user_form))
}

/// Users shown on one page of the list.
const PAGE_SIZE: i64 = 50;

/// The console's path of a tenant.
pub(super) fn tenant_path(tenant: &str) -> String {
    format!("/admin/{}", encode(tenant))
}

pub(super) fn users_path(tenant: &str) -> String {
    format!("/admin/{}/users", encode(tenant))
}

fn user_path(tenant: &str, email: &str) -> String {
    format!("{}/{}", users_path(tenant), encode(email))
}

fn role_label(tr: Tr, role: Role) -> String {
    match role {
        Role::Owner => tr.t("role-owner"),
        Role::Admin => tr.t("role-admin"),
        Role::User => tr.t("role-user"),
    }
}

fn status_label(tr: Tr, status: AccountStatus) -> String {
    match status {
        AccountStatus::Invited => tr.t("status-invited"),
        AccountStatus::Active => tr.t("status-active"),
        AccountStatus::Disabled => tr.t("status-disabled"),
    }
}

fn yes_no(tr: Tr, yes: bool) -> String {
    if yes { tr.t("yes") } else { tr.t("no") }
}

/// The roles `signed` may give: owners only by those who may manage owners.
fn roles(signed: &Signed, tenant: &str) -> Vec<(&'static str, String)> {
    let tr = signed.browser.tr;
    let owners = signed.caller.may_in_tenant(Action::ManageOwners, tenant);
    [Role::User, Role::Admin, Role::Owner]
        .into_iter()
        .filter(|role| *role != Role::Owner || owners)
        .map(|role| (role.as_str(), role_label(tr, role)))
        .collect()
}

/// The tenant console's start: as `/`.
#[utoipa::path(get, operation_id = "console_home", path = "/admin", tag = "console",
    responses((status = 303, description = "To the console or page that fits who is signed in, or to the login page.")))]
async fn home(signed: Signed) -> Response {
    super::start(&signed)
}

#[derive(Deserialize, Default)]
struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    status: String,
    after: Option<String>,
    /// The email just invited, to say so (after the invitation's redirect).
    invited: Option<String>,
    /// The email just deleted.
    deleted: Option<String>,
    /// What was just done to the tenant itself.
    tenant_done: Option<String>,
}

/// What the invitation form shows: the values typed and the problem, after a refused invitation.
#[derive(Default)]
struct Typed<'a> {
    email: &'a str,
    name: &'a str,
    role: &'a str,
    problem: Option<String>,
    status: Option<StatusCode>,
}

/// A tenant's users: the invitation form, a search by email prefix, role and status, and one page
/// of the list (server-side paging by email).
#[utoipa::path(get, operation_id = "console_users", path = "/admin/{tenant}/users", tag = "console",
    params(
        ("tenant" = String, Path, description = "The tenant's name."),
        ("q" = Option<String>, Query, description = "Only users whose email starts with this."),
        ("role" = Option<String>, Query, description = "Only users with this role."),
        ("status" = Option<String>, Query, description = "Only users in this status."),
        ("after" = Option<String>, Query, description = "The page after this email."),
    ),
    responses(
        (status = 200, description = "The page.", body = String, content_type = "text/html"),
        (status = 303, description = "Not signed in: to the login page."),
        (status = 403, description = "A page: not an owner or admin of this tenant (audited).", body = String, content_type = "text/html"),
    ))]
async fn list_page(
    signed: Signed,
    Path(tenant): Path<String>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let query = query.map(|Query(q)| q).unwrap_or_default();
    users_page(&signed, &tenant, &query, Typed::default()).await
}

async fn users_page(signed: &Signed, tenant: &str, query: &ListQuery, typed: Typed<'_>) -> Response {
    let tr = signed.browser.tr;
    let listing = Listing {
        limit: Some(PAGE_SIZE),
        role: Some(query.role.as_str()).filter(|r| !r.is_empty()),
        status: Some(query.status.as_str()).filter(|s| !s.is_empty()),
        after: query.after.as_deref(),
        email_prefix: Some(query.q.trim()).filter(|q| !q.is_empty()),
    };
    let title = tr.t("console-users");
    let found = match users::list_users(&signed.state, &signed.caller, tenant, &listing).await {
        Ok(found) => found,
        Err(error) => return signed.refused(&title, &error),
    };
    let record = users::tenant_record(&signed.state, tenant).await;
    let git = record.as_ref().ok().filter(|t| t.managed_by == "git" && !t.interactive_edits).map(|t| {
        let at = super::declared_at(&signed.state, t, Declared::Field("users"));
        tr.arg("console-git-owns-users", "file", at.as_deref().unwrap_or("the config repository"))
    });
    let rows = found
        .users
        .iter()
        .map(|u| templates::UserRow {
            href: user_path(tenant, &u.user.email),
            email: u.user.email.clone(),
            name: u.user.name.clone().unwrap_or_default(),
            role: role_label(tr, u.user.role),
            status: status_label(tr, u.user.status),
            mfa: yes_no(tr, u.user.mfa),
            managed_by: managed_by(tr, u),
        })
        .collect::<Vec<_>>();
    let next = found.next.as_deref().map(|after| {
        format!(
            "{}?q={}&role={}&status={}&after={}",
            users_path(tenant),
            encode(&query.q),
            encode(&query.role),
            encode(&query.status),
            encode(after)
        )
    });
    // What a link claims is said only if it holds: a crafted `?invited=` names no one who is not.
    let invited = match &query.invited {
        Some(email) => users::show_user(&signed.state, &signed.caller, tenant, email)
            .await
            .ok()
            .filter(|u| u.user.status == AccountStatus::Invited)
            .map(|u| u.user.email),
        None => None,
    };
    let deleted = match &query.deleted {
        Some(email) => users::show_user(&signed.state, &signed.caller, tenant, email).await.is_err().then_some(email),
        None => None,
    };
    let done = match (&invited, deleted, query.tenant_done.as_deref()) {
        (Some(email), _, _) => Some(tr.arg("console-invited", "email", email)),
        (None, Some(email), _) => Some(tr.arg("console-deleted", "email", email)),
        (None, None, Some("suspend")) => Some(tr.t("tenant-done-suspend")),
        (None, None, Some("restore")) => Some(tr.t("tenant-done-restore")),
        (None, None, Some("delete")) => Some(tr.t("tenant-done-delete")),
        _ => None,
    };
    let panel = record.as_ref().ok().filter(|_| signed.caller.may_in_tenant(Action::ManageTenants, tenant)).map(|t| {
        templates::TenantPanel {
            action: format!("/admin/{}", encode(tenant)),
            state: crate::api::console::platform::state_label(tr, t.state),
            state_value: t.state.as_str(),
            purge: t.purge_after.map(|at| at.format("%Y-%m-%d").to_string()).unwrap_or_default(),
            reason: t.suspended_reason.clone().unwrap_or_default(),
            git: t.managed_by == "git",
            restorable_days: signed.state.retention.restorable_for.num_days().to_string(),
        }
    });
    let body = templates::TenantUsers {
        t: tr,
        csrf: signed.browser.csrf(),
        tenant,
        done,
        problem: typed.problem.as_deref(),
        git,
        panel,
        can_invite: signed.caller.may_in_tenant(Action::ManageUsers, tenant),
        form_email: typed.email,
        form_name: typed.name,
        form_role: if typed.role.is_empty() { "user" } else { typed.role },
        roles: roles(signed, tenant),
        statuses: [AccountStatus::Invited, AccountStatus::Active, AccountStatus::Disabled]
            .into_iter()
            .map(|s| (s.as_str(), status_label(tr, s)))
            .collect(),
        q: &query.q,
        filter_role: &query.role,
        filter_status: &query.status,
        count: &rows.len().to_string(),
        rows: &rows,
        next,
    };
    let page = Page::new(&title, body.html()).status(typed.status.unwrap_or(StatusCode::OK));
    signed.render(page, &users_path(tenant))
}

fn managed_by(tr: Tr, user: &UserRecord) -> String {
    if user.managed_by == "git" { tr.t("managed-git") } else { tr.t("managed-console") }
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
struct InviteForm {
    /// The browser's CSRF token (checked by the pages' layer).
    #[serde(default, rename = "csrf")]
    _csrf: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    role: String,
}

/// Invites a user (the same invitation as `POST /v1/tenants/{tenant}/users`), then back to the list.
#[utoipa::path(post, operation_id = "console_invite", path = "/admin/{tenant}/users", tag = "console",
    params(("tenant" = String, Path, description = "The tenant's name.")),
    request_body(content = InviteForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Invited: back to the list, which says so."),
        (status = 400, description = "The page with the problem, the values kept.", body = String, content_type = "text/html"),
        (status = 403, description = "A page: not allowed (audited).", body = String, content_type = "text/html"),
        (status = 409, description = "The page with the rule that refused it (audited).", body = String, content_type = "text/html"),
    ))]
async fn invite_form(signed: Signed, Path(tenant): Path<String>, body: Bytes) -> Response {
    let form: InviteForm = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let name = Some(form.name.trim()).filter(|n| !n.is_empty());
    let state = signed.state.clone();
    let invited = async {
        let mut invite = Invite::check(&state, &signed.caller, &tenant, form.email.trim(), &form.role, name)?;
        invite.language = Some(signed.browser.tr.lang);
        // A tenant that writes back to Git takes the invitation as a commit; the list says it once
        // the reconciler created the user.
        if invite.to_git(&state, &signed.caller).await?.is_some() {
            return Ok::<_, ApiError>(form.email.trim().to_lowercase());
        }
        let mut tx = state.pool.begin().await.map_err(crate::store::StoreError::from)?;
        let user = invite.apply(&mut tx, &signed.caller).await?;
        tx.commit().await.map_err(crate::store::StoreError::from)?;
        Ok::<_, ApiError>(user.user.email)
    }
    .await;
    match invited {
        Ok(email) => see_other(&format!("{}?invited={}", users_path(&tenant), encode(&email))),
        Err(error @ (ApiError::Forbidden { .. } | ApiError::Unauthorized(_))) => {
            signed.refused(&signed.browser.tr.t("console-users"), &error)
        }
        Err(error) => {
            let (problem, status, refused) = signed.problem_of(&error);
            let typed = Typed {
                email: &form.email,
                name: &form.name,
                role: &form.role,
                problem: Some(problem),
                status: Some(status),
            };
            super::marked(users_page(&signed, &tenant, &ListQuery::default(), typed).await, refused)
        }
    }
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
struct TenantForm {
    /// The browser's CSRF token (checked by the pages' layer).
    #[serde(default, rename = "csrf")]
    _csrf: String,
    /// `suspend`, `restore` or `delete`.
    #[serde(default)]
    action: String,
    /// Why it is suspended.
    #[serde(default)]
    reason: String,
    /// `yes` to delete.
    #[serde(default)]
    confirm: String,
}

/// An operator suspends, restores or deletes the tenant (the JSON API's functions), then back to it.
#[utoipa::path(post, operation_id = "console_tenant_action", path = "/admin/{tenant}", tag = "console",
    params(("tenant" = String, Path, description = "The tenant's name.")),
    request_body(content = TenantForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Done: back to the tenant's page, which says so."),
        (status = 400, description = "A page: the action is not known or not confirmed.", body = String, content_type = "text/html"),
        (status = 403, description = "A page: not an operator (audited).", body = String, content_type = "text/html"),
        (status = 409, description = "A page with the rule that refused it, such as a tenant declared in Git (audited).", body = String, content_type = "text/html"),
    ))]
async fn tenant_form(signed: Signed, Path(tenant): Path<String>, body: Bytes) -> Response {
    let (state, caller, tr) = (&signed.state, &signed.caller, signed.browser.tr);
    let decided = caller.authorize_tenant(state, Action::ManageTenants, "status", &tenant);
    if let Some(page) = signed.refusal(&tr.t("console-tenants"), decided) {
        return page;
    }
    let form: TenantForm = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let none = HeaderMap::new();
    let reason = Some(form.reason.trim()).filter(|r| !r.is_empty());
    let outcome = match form.action.as_str() {
        "suspend" => crate::api::tenants::suspend_tenant(state, caller, &tenant, &none, reason).await,
        "restore" => crate::api::tenants::restore_tenant(state, caller, &tenant, &none).await,
        "delete" if form.confirm == "yes" => crate::api::tenants::delete_tenant(state, caller, &tenant, &none).await,
        "delete" => Err(ApiError::BadRequest(tr.t("tenant-delete-unconfirmed"))),
        _ => Err(ApiError::BadRequest(format!("no action `{}` on a tenant", crate::model::shown(&form.action)))),
    };
    match outcome {
        Ok(_) => see_other(&format!("{}?tenant_done={}", users_path(&tenant), encode(&form.action))),
        Err(error) => signed.refused(&tr.t("console-tenants"), &error),
    }
}

/// The `If-Match` of a form's hidden `etag` (none when it is empty): the JSON API's precondition,
/// so a page shown before someone else's change is refused rather than overwriting it.
fn if_match(etag: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Ok(tag) = HeaderValue::from_str(etag)
        && !etag.is_empty()
    {
        headers.insert(header::IF_MATCH, tag);
    }
    headers
}

/// 303 to `location`: a form's outcome shown by a page the browser can reload.
pub(super) fn see_other(location: &str) -> Response {
    Redirect::to(location).into_response()
}

#[derive(Deserialize, Default)]
struct UserQuery {
    /// The action just done, to say so.
    done: Option<String>,
}

/// One user: what they are, the rules that apply in sentences, and a form per action.
#[utoipa::path(get, operation_id = "console_user", path = "/admin/{tenant}/users/{email}", tag = "console",
    params(("tenant" = String, Path, description = "The tenant's name."), ("email" = String, Path, description = "The user's email.")),
    responses(
        (status = 200, description = "The page.", body = String, content_type = "text/html"),
        (status = 303, description = "Not signed in: to the login page."),
        (status = 403, description = "A page: not an owner or admin of this tenant (audited).", body = String, content_type = "text/html"),
        (status = 404, description = "A page: no such user.", body = String, content_type = "text/html"),
    ))]
async fn user_page(
    signed: Signed,
    Path((tenant, email)): Path<(String, String)>,
    query: Result<Query<UserQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let query = query.map(|Query(q)| q).unwrap_or_default();
    let done = query.done.as_deref().and_then(|action| done_message(signed.browser.tr, action));
    show_user(&signed, &tenant, &email, done, None).await
}

fn done_message(tr: Tr, action: &str) -> Option<String> {
    Some(match action {
        "role" => tr.t("user-done-role"),
        "status" => tr.t("user-done-status"),
        "sessions" => tr.t("user-done-sessions"),
        "unlock" => tr.t("user-done-unlock"),
        "resend" => tr.t("user-done-resend"),
        _ => return None,
    })
}

async fn show_user(
    signed: &Signed,
    tenant: &str,
    email: &str,
    done: Option<String>,
    problem: Option<(String, StatusCode)>,
) -> Response {
    let tr = signed.browser.tr;
    let state = signed.state.clone();
    let user = match users::show_user(&state, &signed.caller, tenant, email).await {
        Ok(user) => user,
        Err(error) => return signed.refused(&tr.t("console-users"), &error),
    };
    let record = users::tenant_record(&state, tenant).await.ok();
    let mut rules = Vec::new();
    let git_owned = user.managed_by == "git" && !record.as_ref().is_some_and(|t| t.interactive_edits);
    if git_owned {
        let file = record.as_ref().and_then(|t| super::declared_at(&state, t, Declared::User(&user.user.email)));
        let file = file.unwrap_or_default();
        rules.push(tr.arg("user-rule-git", "file", &file));
    }
    let owners = signed.caller.may_in_tenant(Action::ManageOwners, tenant);
    if user.user.role == Role::Owner && !owners {
        rules.push(tr.t("user-rule-admin-owner"));
    }
    if user.user.role == Role::Owner && user.user.status == AccountStatus::Active {
        let listing = Listing { limit: Some(2), role: Some("owner"), status: Some("active"), ..Listing::default() };
        let active_owners = users::list_users(&state, &signed.caller, tenant, &listing).await.map(|f| f.users.len());
        if active_owners.is_ok_and(|n| n < 2) {
            rules.push(tr.t("user-rule-last-owner"));
        }
    }
    let can_change = signed.caller.may_in_tenant(Action::ManageUsers, tenant)
        && !git_owned
        && (user.user.role != Role::Owner || owners);
    let (problem, status) = problem.map_or((None, StatusCode::OK), |(p, s)| (Some(p), s));
    let body = templates::TenantUser {
        t: tr,
        csrf: signed.browser.csrf(),
        tenant,
        action: &user_path(tenant, &user.user.email),
        done,
        problem: problem.as_deref(),
        name: user.user.name.as_deref().unwrap_or("—"),
        role: &role_label(tr, user.user.role),
        role_value: user.user.role.as_str(),
        status: &status_label(tr, user.user.status),
        status_value: user.user.status.as_str(),
        mfa: &yes_no(tr, user.user.mfa),
        sessions: &user.user.live_sessions.to_string(),
        managed_by: &managed_by(tr, &user),
        rules: &rules,
        can_change,
        roles: roles(signed, tenant),
        etag: &user.etag(),
    };
    let page = Page::new(&user.user.email, body.html()).status(status);
    signed.render(page, &users_path(tenant))
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
struct UserForm {
    /// The browser's CSRF token (checked by the pages' layer).
    #[serde(default, rename = "csrf")]
    _csrf: String,
    /// `role`, `status`, `sessions`, `unlock`, `resend` or `delete`.
    #[serde(default)]
    action: String,
    /// The user's tag when the page was shown: a change made since is refused, not overwritten.
    #[serde(default)]
    etag: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    status: String,
    /// `yes` to delete.
    #[serde(default)]
    confirm: String,
}

/// One action on a user (the same functions as the JSON API's), then back to the user's page.
#[utoipa::path(post, operation_id = "console_user_action", path = "/admin/{tenant}/users/{email}", tag = "console",
    params(("tenant" = String, Path, description = "The tenant's name."), ("email" = String, Path, description = "The user's email.")),
    request_body(content = UserForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Done: back to the user's page (or the list after a deletion), which says so."),
        (status = 400, description = "The page with the problem.", body = String, content_type = "text/html"),
        (status = 403, description = "A page: not allowed (audited).", body = String, content_type = "text/html"),
        (status = 409, description = "The page with the rule that refused it, such as the last owner (audited).", body = String, content_type = "text/html"),
        (status = 412, description = "The page: the user changed since the page was shown.", body = String, content_type = "text/html"),
    ))]
async fn user_form(signed: Signed, Path((tenant, email)): Path<(String, String)>, body: Bytes) -> Response {
    let decided = signed.caller.authorize_tenant(&signed.state, Action::ManageUsers, "users", &tenant);
    if let Some(page) = signed.refusal(&signed.browser.tr.t("console-users"), decided) {
        return page;
    }
    let form: UserForm = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let (state, caller) = (signed.state.clone(), &signed.caller);
    let if_match = if_match(&form.etag);
    let outcome = match form.action.as_str() {
        "role" => {
            let change = Change { role: Some(&form.role), ..Change::default() };
            users::update_user(&state, caller, &tenant, &email, &if_match, &change).await.map(|_| ())
        }
        "status" => {
            let change = Change { status: Some(&form.status), ..Change::default() };
            users::update_user(&state, caller, &tenant, &email, &if_match, &change).await.map(|_| ())
        }
        "sessions" => users::end_user_sessions(&state, caller, &tenant, &email).await.map(|_| ()),
        "unlock" => users::unlock_user(&state, caller, &tenant, &email).await.map(|_| ()),
        "resend" => users::resend_user_invitation(&state, caller, &tenant, &email).await.map(|_| ()),
        "delete" if form.confirm == "yes" => {
            match users::delete_user(&state, caller, &tenant, &email, &if_match).await {
                Ok(_) => return see_other(&format!("{}?deleted={}", users_path(&tenant), encode(&email))),
                Err(error) => Err(error),
            }
        }
        "delete" => Err(ApiError::BadRequest(signed.browser.tr.t("user-delete-unconfirmed"))),
        _ => Err(ApiError::BadRequest(format!("no action `{}` on a user", crate::model::shown(&form.action)))),
    };
    match outcome {
        Ok(()) => see_other(&format!("{}?done={}", user_path(&tenant, &email), encode(&form.action))),
        Err(error @ (ApiError::Forbidden { .. } | ApiError::Unauthorized(_))) => {
            signed.refused(&signed.browser.tr.t("console-users"), &error)
        }
        Err(error) => {
            let (problem, status, refused) = signed.problem_of(&error);
            super::marked(show_user(&signed, &tenant, &email, None, Some((problem, status))).await, refused)
        }
    }
}

pub(super) fn subscription_path(tenant: &str) -> String {
    format!("{}/subscription", tenant_path(tenant))
}

#[derive(Deserialize, Default)]
struct SubscriptionQuery {
    /// The plan was just changed.
    changed: Option<String>,
}

/// The tenant's subscription (FR-TENANT-003): its plan and what the plan includes, the budget and
/// this month's usage; owners (and operators) change the plan.
#[utoipa::path(get, operation_id = "console_subscription", path = "/admin/{tenant}/subscription", tag = "console",
    params(("tenant" = String, Path, description = "The tenant's name.")),
    responses(
        (status = 200, description = "The page.", body = String, content_type = "text/html"),
        (status = 303, description = "Not signed in: to the login page."),
        (status = 403, description = "A page: not an owner or admin of this tenant (audited).", body = String, content_type = "text/html"),
    ))]
async fn subscription_page(
    signed: Signed,
    Path(tenant): Path<String>,
    query: Result<Query<SubscriptionQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let changed = query.ok().and_then(|Query(q)| q.changed).is_some();
    subscription(&signed, &tenant, changed, None).await
}

async fn subscription(signed: &Signed, tenant: &str, changed: bool, problem: Option<(String, StatusCode)>) -> Response {
    let tr = signed.browser.tr;
    let title = tr.t("console-subscription");
    let (state, caller) = (&signed.state, &signed.caller);
    let budget = match crate::api::budget::budget_view(state, caller, tenant).await {
        Ok(budget) => budget,
        Err(error) => return signed.refused(&title, &error),
    };
    let Ok(record) = users::tenant_record(state, tenant).await else {
        return signed.refused(&title, &ApiError::NotFound(format!("no tenant is named `{tenant}`")));
    };
    let plans = crate::store::tenants::plans(&state.pool).await.unwrap_or_default();
    let includes = plans
        .iter()
        .find(|p| p.name == record.plan)
        .and_then(|p| p.flags.as_object())
        .map(|flags| flags.iter().map(|(k, v)| (k.clone(), v.to_string())).collect())
        .unwrap_or_default();
    let git = (record.managed_by == "git" && !record.interactive_edits)
        .then(|| super::declared_at(state, &record, Declared::Field("plan")))
        .map(|at| tr.arg("subscription-git", "file", at.as_deref().unwrap_or("the config repository")));
    let state_label = match budget.state {
        crate::budget::State::Unlimited => tr.t("budget-unlimited"),
        crate::budget::State::Ok => tr.t("budget-ok"),
        crate::budget::State::Warning => tr.t("budget-warning"),
        crate::budget::State::Exceeded => tr.t("budget-exceeded"),
    };
    let (problem, status) = problem.map_or((None, StatusCode::OK), |(p, s)| (Some(p), s));
    let body = templates::TenantSubscription {
        t: tr,
        picture: super::budget_picture(tr, &budget),
        csrf: signed.browser.csrf(),
        tenant,
        action: &subscription_path(tenant),
        done: changed.then(|| tr.t("subscription-changed")),
        problem: problem.as_deref(),
        plan: &record.plan,
        includes,
        git,
        can_change: caller.may_in_tenant(Action::UpdateTenant, tenant),
        plans: plans.iter().map(|p| p.name.clone()).collect(),
        etag: &record.etag(),
        month: &budget.month.format("%Y-%m").to_string(),
        usage: &budget.usage.to_string(),
        limit: &budget.limit.map_or_else(|| tr.t("budget-no-limit"), |l| l.to_string()),
        state: &state_label,
    };
    signed.render(Page::new(&title, body.html()).status(status), &subscription_path(tenant))
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
struct SubscriptionForm {
    /// The browser's CSRF token (checked by the pages' layer).
    #[serde(default, rename = "csrf")]
    _csrf: String,
    /// The tenant's tag when the page was shown.
    #[serde(default)]
    etag: String,
    #[serde(default)]
    plan: String,
}

/// Changes the tenant's plan (the same change as `PATCH /v1/tenants/{tenant}`), then back.
#[utoipa::path(post, operation_id = "console_change_plan", path = "/admin/{tenant}/subscription", tag = "console",
    params(("tenant" = String, Path, description = "The tenant's name.")),
    request_body(content = SubscriptionForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Changed: back to the page, which says so."),
        (status = 400, description = "The page with the problem (an unknown plan).", body = String, content_type = "text/html"),
        (status = 403, description = "A page: only owners and operators change the plan (audited).", body = String, content_type = "text/html"),
        (status = 409, description = "The page: Git declares the tenant (audited).", body = String, content_type = "text/html"),
        (status = 412, description = "The page: the tenant changed since the page was shown.", body = String, content_type = "text/html"),
    ))]
async fn subscription_form(signed: Signed, Path(tenant): Path<String>, body: Bytes) -> Response {
    let form: SubscriptionForm = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let if_match = if_match(&form.etag);
    let asked = crate::api::tenants::TenantUpdate { plan: Some(form.plan.trim()), ..Default::default() };
    match crate::api::tenants::update_tenant(&signed.state, &signed.caller, &tenant, &if_match, &asked).await {
        Ok(_) => see_other(&format!("{}?changed=1", subscription_path(&tenant))),
        Err(error @ (ApiError::Forbidden { .. } | ApiError::Unauthorized(_))) => {
            signed.refused(&signed.browser.tr.t("console-subscription"), &error)
        }
        Err(error) => {
            let (problem, status, refused) = signed.problem_of(&error);
            super::marked(subscription(&signed, &tenant, false, Some((problem, status))).await, refused)
        }
    }
}
