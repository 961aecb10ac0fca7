//! The operator console (issue 23.3, FR-OPS-001, UC-PROV-001): platform operators and auditors
//! find any tenant in one paged, searchable, filterable list (state, plan, who manages it), and
//! operators provision a tenant with its owner, who is invited. The functions and rules are the
//! JSON API's (`tenants::list_tenants`, `tenants::Provision`).

use axum::body::Bytes;
use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::tenant::see_other;
use super::{Signed, encode};
use crate::api::tenants::{self, Provision, TenantListing};
use crate::api::web::templates::{self, Body};
use crate::api::web::{Page, Tr};
use crate::api::{ApiError, AppState};
use crate::authz::{Action, Resource};
use crate::model::TenantState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(tenants_page, provision_form))
}

/// Tenants shown on one page of the list.
const PAGE_SIZE: i64 = 50;

pub(super) fn state_label(tr: Tr, state: TenantState) -> String {
    match state {
        TenantState::Active => tr.t("tenant-active"),
        TenantState::Suspended => tr.t("tenant-suspended"),
        TenantState::PendingDeletion => tr.t("tenant-pending-deletion"),
    }
}

#[derive(Deserialize, Default)]
struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    plan: String,
    /// A sync state.
    #[serde(default)]
    sync: String,
    after: Option<String>,
    /// The tenant just provisioned, to say so.
    created: Option<String>,
}

/// What the provisioning form shows again after a refusal.
#[derive(Default)]
struct Typed<'a> {
    name: &'a str,
    display_name: &'a str,
    plan: &'a str,
    owner: &'a str,
    applications: &'a str,
    problem: Option<String>,
    status: Option<StatusCode>,
}

/// Every tenant, paged on the server by name: a prefix search, a state and a plan filter, and (for
/// operators) the form that provisions a tenant.
#[utoipa::path(get, operation_id = "console_tenants", path = "/console", tag = "console",
    params(
        ("q" = Option<String>, Query, description = "Only tenants whose name starts with this."),
        ("state" = Option<String>, Query, description = "Only tenants in this state."),
        ("plan" = Option<String>, Query, description = "Only tenants on this plan."),
        ("sync" = Option<String>, Query, description = "Only tenants in this sync state."),
        ("after" = Option<String>, Query, description = "The page after this tenant."),
    ),
    responses(
        (status = 200, description = "The page.", body = String, content_type = "text/html"),
        (status = 303, description = "Not signed in: to the login page."),
        (status = 403, description = "A page: not an operator or auditor (audited).", body = String, content_type = "text/html"),
    ))]
async fn tenants_page(
    signed: Signed,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let query = query.map(|Query(q)| q).unwrap_or_default();
    page(&signed, &query, Typed::default()).await
}

async fn page(signed: &Signed, query: &ListQuery, typed: Typed<'_>) -> Response {
    let tr = signed.browser.tr;
    let title = tr.t("console-tenants");
    let asked = TenantListing {
        limit: Some(PAGE_SIZE),
        state: Some(query.state.as_str()).filter(|s| !s.is_empty()),
        plan: Some(query.plan.trim()).filter(|p| !p.is_empty()),
        prefix: Some(query.q.trim()).filter(|q| !q.is_empty()),
        after: query.after.as_deref(),
        sync: Some(query.sync.as_str()).filter(|s| !s.is_empty()),
    };
    let found = match tenants::list_tenants(&signed.state, &signed.caller, &asked).await {
        Ok(found) => found,
        Err(error) => return signed.refused(&title, &error),
    };
    let names: Vec<String> = found.tenants.iter().map(|t| t.name.clone()).collect();
    let sync_states = match signed.state.pool.acquire().await {
        Ok(mut conn) => crate::store::status::sync_states(&mut conn, &names).await.unwrap_or_default(),
        Err(_) => Default::default(),
    };
    let rows: Vec<templates::TenantRow> = found
        .tenants
        .iter()
        .map(|t| templates::TenantRow {
            sync: super::overview::sync_label(
                tr,
                match sync_states.get(&t.name) {
                    Some(state) => state.as_str(),
                    None if t.managed_by == "git" => "Synced",
                    None => "Unmanaged",
                },
            ),
            href: super::overview::overview_path(&t.name),
            name: t.name.clone(),
            display_name: t.display_name.clone(),
            plan: t.plan.clone(),
            state: state_label(tr, t.state),
            managed_by: super::managed(tr, &t.managed_by, t.source_file.as_deref()),
            purge: t.purge_after.map(|at| at.format("%Y-%m-%d").to_string()).unwrap_or_default(),
        })
        .collect();
    let next = found.next.as_deref().map(|after| {
        format!(
            "/console?q={}&state={}&plan={}&sync={}&after={}",
            encode(&query.q),
            encode(&query.state),
            encode(&query.plan),
            encode(&query.sync),
            encode(after)
        )
    });
    // A crafted `?created=` names no tenant that does not exist.
    let created = match query.created.as_deref() {
        Some(name) => crate::api::users::tenant_record(&signed.state, name).await.ok().map(|t| t.name),
        None => None,
    };
    let may_provision = signed.caller.may(Action::ManageTenants, &Resource::platform("tenants"));
    let body = templates::PlatformTenants {
        t: tr,
        csrf: signed.browser.csrf(),
        done: created.map(|name| tr.arg("tenant-created", "tenant", &name)),
        problem: typed.problem.as_deref(),
        may_provision,
        form_name: typed.name,
        form_display_name: typed.display_name,
        form_plan: if typed.plan.is_empty() { "free" } else { typed.plan },
        form_owner: typed.owner,
        form_applications: typed.applications,
        q: &query.q,
        filter_state: &query.state,
        filter_plan: &query.plan,
        filter_sync: &query.sync,
        syncs: crate::api::sync::STATES.iter().map(|s| (*s, super::overview::sync_label(tr, s))).collect(),
        states: [TenantState::Active, TenantState::Suspended, TenantState::PendingDeletion]
            .into_iter()
            .map(|s| (s.as_str(), state_label(tr, s)))
            .collect(),
        count: &rows.len().to_string(),
        rows: &rows,
        next,
    };
    let page = Page::new(&title, body.html()).status(typed.status.unwrap_or(StatusCode::OK));
    signed.render(page, "/console")
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
struct ProvisionForm {
    /// The browser's CSRF token (checked by the pages' layer).
    #[serde(default, rename = "csrf")]
    _csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    plan: String,
    #[serde(default)]
    owner: String,
    /// Application names, separated by commas or spaces.
    #[serde(default)]
    applications: String,
}

/// Provisions a tenant and invites its owner (the same as `POST /v1/tenants`), then back to the list.
#[utoipa::path(post, operation_id = "console_provision", path = "/console", tag = "console",
    request_body(content = ProvisionForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Provisioned: back to the list, which says so."),
        (status = 400, description = "The page with the problem, the values kept.", body = String, content_type = "text/html"),
        (status = 403, description = "A page: not an operator (audited).", body = String, content_type = "text/html"),
        (status = 409, description = "The page with the rule that refused it, such as a name in use (audited).", body = String, content_type = "text/html"),
    ))]
async fn provision_form(signed: Signed, body: Bytes) -> Response {
    let form: ProvisionForm = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let applications: Vec<String> =
        form.applications.split([',', ' ']).map(str::trim).filter(|a| !a.is_empty()).map(str::to_owned).collect();
    let state = signed.state.clone();
    let provisioned = async {
        let provision = Provision::check(
            &state,
            &signed.caller,
            form.name.trim(),
            form.display_name.trim(),
            form.plan.trim(),
            &applications,
            (form.owner.trim(), None),
        )?;
        let mut tx = state.pool.begin().await.map_err(crate::store::StoreError::from)?;
        let created = provision.apply(&mut tx).await?;
        tx.commit().await.map_err(crate::store::StoreError::from)?;
        tenants::refreshed(&state, &created.name).await;
        Ok::<_, ApiError>(created)
    }
    .await;
    match provisioned {
        Ok(created) => see_other(&format!("/console?created={}", encode(&created.name))),
        Err(error @ (ApiError::Forbidden { .. } | ApiError::Unauthorized(_))) => {
            signed.refused(&signed.browser.tr.t("console-tenants"), &error)
        }
        Err(error) => {
            let (problem, status, refused) = signed.problem_of(&error);
            let typed = Typed {
                name: &form.name,
                display_name: &form.display_name,
                plan: &form.plan,
                owner: &form.owner,
                applications: &form.applications,
                problem: Some(problem),
                status: Some(status),
            };
            super::marked(page(&signed, &ListQuery::default(), typed).await, refused)
        }
    }
}
