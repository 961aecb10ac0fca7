//! An operator's page of one tenant (issue 23.3, FR-OPS-001, FR-FLAG-001): what it is and who
//! manages it, its flags (the plan's default, the tenant's override, the value applications get),
//! its applications, its budget this month and the overrides waiting for approval, its sync state
//! with each drifted field (applied, live, who, when), and the passes that touched it. Operators
//! and auditors read it; operators approve a budget override here. Every figure comes from the
//! JSON API's functions, which decide through `authorize`.

use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::response::Response;
use serde::Deserialize;
use serde_json::Value;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::tenant::{see_other, subscription_path, users_path};
use super::{Signed, managed, short, when};
use crate::api::web::templates::{self, Body};
use crate::api::web::{Page, Tr};
use crate::api::{ApiError, AppState};
use crate::authz::Action;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(overview_page, overview_form))
}

/// The operator's page of a tenant.
pub(super) fn overview_path(tenant: &str) -> String {
    format!("/console/tenants/{}", super::encode(tenant))
}

/// Passes of the tenant's history shown.
const HISTORY: i64 = 10;

#[derive(Deserialize, Default)]
struct OverviewQuery {
    /// A budget override was just approved.
    approved: Option<String>,
}

/// One tenant for platform staff: flags, applications, budget and overrides, sync and drift, history.
#[utoipa::path(get, operation_id = "console_tenant", path = "/console/tenants/{tenant}", tag = "console",
    params(("tenant" = String, Path, description = "The tenant's name.")),
    responses(
        (status = 200, description = "The page.", body = String, content_type = "text/html"),
        (status = 303, description = "Not signed in: to the login page."),
        (status = 403, description = "A page: not platform staff (audited).", body = String, content_type = "text/html"),
        (status = 404, description = "A page: no such tenant.", body = String, content_type = "text/html"),
    ))]
async fn overview_page(
    signed: Signed,
    Path(tenant): Path<String>,
    query: Result<Query<OverviewQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let approved = query.ok().and_then(|Query(q)| q.approved).is_some();
    let done = approved.then(|| signed.browser.tr.t("overview-approved"));
    overview(&signed, &tenant, done, None).await
}

/// A JSON value as a person reads it: strings without quotes.
fn shown(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => "—".to_owned(),
        other => other.to_string(),
    }
}

/// What started a pass, in words (`interval`, `webhook`, `manual`, `file change`, `start`).
fn trigger_label(tr: Tr, trigger: &str) -> String {
    match trigger {
        "interval" => tr.t("trigger-interval"),
        "webhook" => tr.t("trigger-webhook"),
        "manual" => tr.t("trigger-manual"),
        "file change" => tr.t("trigger-file-change"),
        "start" => tr.t("trigger-start"),
        other => other.to_owned(),
    }
}

pub(super) fn sync_label(tr: Tr, state: &str) -> String {
    match state {
        "Synced" => tr.t("sync-synced"),
        "OutOfSync" => tr.t("sync-out-of-sync"),
        "Drifted" => tr.t("sync-drifted"),
        "Error" => tr.t("sync-error"),
        "Unmanaged" => tr.t("sync-unmanaged"),
        other => other.to_owned(),
    }
}

async fn overview(
    signed: &Signed,
    tenant: &str,
    done: Option<String>,
    problem: Option<(String, axum::http::StatusCode)>,
) -> Response {
    let tr = signed.browser.tr;
    let (state, caller) = (&signed.state, &signed.caller);
    // Platform staff only: the sync state is theirs (an owner is refused here, and audited).
    let sync = match crate::api::sync::tenant_sync(state, caller, tenant).await {
        Ok(sync) => sync,
        Err(error) => return signed.refused(&tr.t("console-tenants"), &error),
    };
    let record = match crate::api::users::tenant_record(state, tenant).await {
        Ok(record) => record,
        Err(error) => return signed.refused(&tr.t("console-tenants"), &error),
    };
    // What the page reads beside: a failure is the page's (a 500 page), never an empty section.
    let read = async {
        let overrides = crate::api::overrides::flag_overrides(state, caller, tenant).await?;
        let plans = crate::store::tenants::plans(&state.pool).await?;
        // A tenant without a budget (or no longer active) has none to show.
        let budget = absent(crate::api::budget::budget_view(state, caller, tenant).await)?;
        let budget_overrides = absent(crate::api::budget::budget_overrides(state, caller, tenant).await)?;
        let history = crate::api::sync::tenant_history_page(state, caller, tenant, None, HISTORY).await?;
        Ok::<_, ApiError>((overrides, plans, budget, budget_overrides.unwrap_or_default(), history.passes))
    };
    let (overrides, plans, budget, budget_overrides, history) = match read.await {
        Ok(read) => read,
        Err(error) => return signed.refused(&tr.t("console-tenants"), &error),
    };
    let flags = flag_rows(&plans, &record.plan, &overrides);
    let may_approve = caller.may_in_tenant(Action::ApproveOverride, tenant);
    let pending = budget_overrides
        .into_iter()
        .filter(|o| o.status == "pending")
        .map(|o| templates::PendingOverride {
            id: o.id.to_string(),
            limit: o.limit.to_string(),
            reason: o.reason,
            requested: tr.args("overview-requested", &[("who", &o.requested_by), ("at", &when(Some(o.requested_at)))]),
            approvals: if o.approvals.is_empty() { "—".to_owned() } else { o.approvals.join(", ") },
        })
        .collect::<Vec<_>>();
    let errors = sync
        .errors
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| format!("{}:{}: {}", shown(&e["file"]), shown(&e["line"]), shown(&e["message"])))
        .collect::<Vec<_>>();
    let drift = sync
        .drift
        .iter()
        .map(|d| templates::DriftRow {
            resource: shown(&d["resource"]),
            field: shown(&d["field"]),
            applied: shown(&d["applied"]),
            live: shown(&d["live"]),
            by: shown(&d["changedBy"]),
            at: shown(&d["changedAt"]),
        })
        .collect::<Vec<_>>();
    let history = history
        .into_iter()
        .map(|p| templates::PassRow {
            at: when(Some(p.started_at)),
            trigger: trigger_label(tr, &p.trigger),
            state: sync_label(tr, &p.state),
            version: short(p.version.as_deref()),
            change: p.subject.unwrap_or_default(),
            author: p.author.unwrap_or_default(),
        })
        .collect::<Vec<_>>();
    let at = super::declared_at(state, &record, crate::config::declared::Declared::Tenant);
    let managed = managed(tr, &record.managed_by, at.as_deref().or(sync.source_file.as_deref()));
    let (problem, status) = problem.map_or((None, axum::http::StatusCode::OK), |(p, s)| (Some(p), s));
    let body = templates::TenantOverview {
        t: tr,
        csrf: signed.browser.csrf(),
        action: &overview_path(tenant),
        done,
        problem: problem.as_deref(),
        display_name: &record.display_name,
        state: &super::platform::state_label(tr, record.state),
        plan: &record.plan,
        managed: &managed,
        links: vec![
            (users_path(tenant), tr.t("console-users")),
            (subscription_path(tenant), tr.t("console-subscription")),
            (super::sso::sso_path(tenant), tr.t("console-sso")),
        ],
        flags: &flags,
        applications: &record.applications,
        month: budget.as_ref().map(|b| b.month.format("%Y-%m").to_string()).unwrap_or_default(),
        usage: budget.as_ref().map(|b| b.usage.to_string()).unwrap_or_default(),
        limit: budget.as_ref().and_then(|b| b.limit).map_or_else(|| tr.t("budget-no-limit"), |l| l.to_string()),
        budget_picture: budget.as_ref().map(|b| super::budget_picture(tr, b)).unwrap_or_default(),
        pending: &pending,
        may_approve,
        sync_state: &sync_label(tr, &sync.state),
        synced_commit: &short(sync.synced_commit.as_deref()),
        applied_commit: &short(sync.applied_commit.as_deref()),
        errors: &errors,
        drift: &drift,
        orphans: sync.orphans.as_array().into_iter().flatten().map(shown).collect(),
        history: &history,
    };
    signed.render(Page::new(&tr.arg("overview-title", "tenant", tenant), body.html()).status(status), "/console")
}

/// What was found, `None` for a 404 (a tenant with nothing of the kind).
fn absent<T>(found: Result<T, ApiError>) -> Result<Option<T>, ApiError> {
    match found {
        Ok(found) => Ok(Some(found)),
        Err(error) if error.shown().status == axum::http::StatusCode::NOT_FOUND => Ok(None),
        Err(error) => Err(error),
    }
}

/// Each flag the plan declares or the tenant overrides: the plan's default, the override, and
/// the value applications get (the override's, else the default's).
fn flag_rows(
    plans: &[crate::store::tenants::PlanSummary],
    plan: &str,
    overrides: &[crate::store::tenants::FlagOverride],
) -> Vec<templates::FlagRow> {
    let defaults = plans.iter().find(|p| p.name == plan).and_then(|p| p.flags.as_object());
    let mut keys: Vec<&str> = defaults.into_iter().flat_map(|d| d.keys().map(String::as_str)).collect();
    keys.extend(overrides.iter().map(|o| o.key.as_str()));
    keys.sort_unstable();
    keys.dedup();
    keys.into_iter()
        .map(|key| {
            let default = defaults.and_then(|d| d.get(key));
            let own = overrides.iter().find(|o| o.key == key);
            templates::FlagRow {
                key: key.to_owned(),
                default: default.map_or_else(|| "—".to_owned(), shown),
                own: own.map_or_else(|| "—".to_owned(), |o| shown(&o.value)),
                effective: own.map(|o| &o.value).or(default).map_or_else(|| "—".to_owned(), shown),
                from_git: own.is_some_and(|o| o.managed_by == "git"),
            }
        })
        .collect()
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
struct OverviewForm {
    /// The browser's CSRF token (checked by the pages' layer).
    #[serde(default, rename = "csrf")]
    _csrf: String,
    /// `approve`.
    #[serde(default)]
    action: String,
    /// The budget override to approve.
    #[serde(default, rename = "override")]
    override_id: String,
}

/// Approves a budget override (the JSON API's approval: two people other than the requester), then back.
#[utoipa::path(post, operation_id = "console_tenant_action_staff", path = "/console/tenants/{tenant}", tag = "console",
    params(("tenant" = String, Path, description = "The tenant's name.")),
    request_body(content = OverviewForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Approved: back to the page, which says so."),
        (status = 400, description = "The page with the problem.", body = String, content_type = "text/html"),
        (status = 403, description = "A page: not allowed (audited).", body = String, content_type = "text/html"),
        (status = 409, description = "The page with the rule that refused it: one's own request, approved already, not independent (audited).", body = String, content_type = "text/html"),
    ))]
async fn overview_form(signed: Signed, Path(tenant): Path<String>, body: Bytes) -> Response {
    // The page is platform staff's: whoever may not read it does not act on it either (owners
    // approve overrides through the API).
    let (state, caller, title) = (&signed.state, &signed.caller, signed.browser.tr.t("console-tenants"));
    let decided = caller
        .authorize(state, Action::ReadSync, &crate::api::sync::SYNC_STATUS)
        .and_then(|()| caller.authorize_tenant(state, Action::ApproveOverride, "budget", &tenant));
    if let Some(page) = signed.refusal(&title, decided) {
        return page;
    }
    let form: OverviewForm = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let outcome = match form.action.as_str() {
        "approve" => {
            crate::api::budget::approve_budget_override(&signed.state, &signed.caller, &tenant, &form.override_id)
                .await
                .map(|_| ())
        }
        other => Err(ApiError::BadRequest(format!("no action `{}` on a tenant", crate::model::shown(other)))),
    };
    match outcome {
        Ok(()) => see_other(&format!("{}?approved=1", overview_path(&tenant))),
        Err(error @ (ApiError::Forbidden { .. } | ApiError::Unauthorized(_))) => {
            signed.refused(&signed.browser.tr.t("console-tenants"), &error)
        }
        Err(error) => {
            let (problem, status, refused) = signed.problem_of(&error);
            super::marked(overview(&signed, &tenant, None, Some((problem, status))).await, refused)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{short, shown};
    use serde_json::json;

    #[test]
    fn a_flag_is_the_overrides_else_the_plans_and_an_override_without_a_default_is_listed() {
        let plans = [crate::store::tenants::PlanSummary {
            name: "pro".into(),
            display_name: None,
            flags: json!({ "max_projects": 10, "sso": false }),
        }];
        let own = |key: &str, value: serde_json::Value| crate::store::tenants::FlagOverride {
            key: key.into(),
            value,
            default: None,
            managed_by: "git".into(),
            updated_at: chrono::Utc::now(),
        };
        let rows = super::flag_rows(&plans, "pro", &[own("max_projects", json!(50)), own("legacy", json!("x"))]);
        let seen: Vec<(&str, &str, &str, &str, bool)> = rows
            .iter()
            .map(|r| (r.key.as_str(), r.default.as_str(), r.own.as_str(), r.effective.as_str(), r.from_git))
            .collect();
        assert_eq!(
            seen,
            [
                ("legacy", "—", "x", "x", true),
                ("max_projects", "10", "50", "50", true),
                ("sso", "false", "—", "false", false),
            ]
        );
    }

    #[test]
    fn values_are_shown_as_people_read_them() {
        assert_eq!(shown(&json!("dark")), "dark");
        assert_eq!(shown(&json!(1000)), "1000");
        assert_eq!(shown(&json!(["usage", "sso"])), "[\"usage\",\"sso\"]");
        assert_eq!(shown(&json!(null)), "—");
        assert_eq!(short(Some("0123456789abcdef")), "0123456789ab");
        assert_eq!(short(None), "—");
    }
}
