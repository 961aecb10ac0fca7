//! The auditor console (issue 23.5, IF-AUDIT-CONSOLE, FR-LOG-002): platform auditors and operators
//! search the audit log by time, tenant, actor, action, outcome and resource, paged on the server,
//! export exactly the rows of the current filter as CSV, and see where each hash chain ends and the
//! last signed checkpoint. Reads go through the JSON API's functions (`audit::read_page`,
//! `audit::export_csv`) and are audited as its reads are.

use axum::extract::Query;
use axum::response::Response;
use chrono::NaiveDate;
use serde::Deserialize;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::Signed;
use crate::api::audit::{self, AuditQuery};
use crate::api::web::templates::{self, Body};
use crate::api::web::{Page, Tr};
use crate::api::{ApiError, AppState};
use crate::authz::{Action, Resource};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(audit_page)).routes(routes!(audit_csv))
}

/// Rows shown on one page.
const PAGE_SIZE: i64 = 50;

/// The console's filter, as its form sends it (days, not instants).
#[derive(Deserialize, Default, Clone)]
struct Filter {
    /// The first day, `YYYY-MM-DD`.
    #[serde(default)]
    from: String,
    /// The last day, included.
    #[serde(default)]
    to: String,
    #[serde(default)]
    tenant: String,
    #[serde(default)]
    actor: String,
    #[serde(default)]
    action: String,
    /// `success`, `failure` or empty.
    #[serde(default)]
    outcome: String,
    #[serde(default)]
    resource: String,
    after: Option<String>,
}

impl Filter {
    /// The JSON API's query of this filter: a day's start, and the start of the day after the last.
    fn query(&self, limit: Option<i64>) -> Result<AuditQuery, ApiError> {
        let day = |field: &str, value: &str, next: bool| -> Result<Option<String>, ApiError> {
            let value = value.trim();
            if value.is_empty() {
                return Ok(None);
            }
            let date = NaiveDate::parse_from_str(value, "%Y-%m-%d")
                .map_err(|_| ApiError::BadRequest(format!("{field}: `{value}` is not a day such as 2026-12-06")))?;
            let date = if next { date.succ_opt().unwrap_or(date) } else { date };
            Ok(Some(format!("{date}T00:00:00Z")))
        };
        let some = |value: &str| Some(value.trim().to_owned()).filter(|v| !v.is_empty());
        Ok(AuditQuery {
            from: day("from", &self.from, false)?,
            to: day("to", &self.to, true)?,
            tenant: some(&self.tenant),
            actor: some(&self.actor),
            action: some(&self.action),
            outcome: some(&self.outcome),
            resource_prefix: some(&self.resource),
            after: self.after.clone(),
            limit,
        })
    }

    /// The filter as a query string (without the page).
    fn encoded(&self) -> String {
        let pairs = [
            ("from", &self.from),
            ("to", &self.to),
            ("tenant", &self.tenant),
            ("actor", &self.actor),
            ("action", &self.action),
            ("outcome", &self.outcome),
            ("resource", &self.resource),
        ];
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs.iter().map(|(k, v)| (*k, v.as_str())))
            .finish()
    }
}

/// The audit log, searched and paged on the server, with the state of its hash chains.
#[utoipa::path(get, operation_id = "console_audit", path = "/console/audit", tag = "console",
    params(
        ("from" = Option<String>, Query, description = "The first day (YYYY-MM-DD)."),
        ("to" = Option<String>, Query, description = "The last day, included."),
        ("tenant" = Option<String>, Query, description = "Only this tenant's rows."),
        ("actor" = Option<String>, Query, description = "Only this actor's rows."),
        ("action" = Option<String>, Query, description = "Only rows of this action."),
        ("outcome" = Option<String>, Query, description = "`success` or `failure`."),
        ("resource" = Option<String>, Query, description = "Only rows whose resource starts with this."),
        ("after" = Option<String>, Query, description = "The page after this row."),
    ),
    responses(
        (status = 200, description = "The page.", body = String, content_type = "text/html"),
        (status = 303, description = "Not signed in: to the login page."),
        (status = 400, description = "The page with the problem in the filter.", body = String, content_type = "text/html"),
        (status = 403, description = "A page: not allowed to read the audit log (audited).", body = String, content_type = "text/html"),
    ))]
async fn audit_page(
    signed: Signed,
    query: Result<Query<Filter>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let filter = query.map(|Query(f)| f).unwrap_or_default();
    let tr = signed.browser.tr;
    let title = tr.t("console-audit");
    let read = async {
        let query = filter.query(Some(PAGE_SIZE))?;
        audit::read_page(&signed.state, &signed.caller, &query).await
    }
    .await;
    let (page, problem) = match read {
        Ok(page) => (Some(page), None),
        Err(error @ (ApiError::Forbidden { .. } | ApiError::Unauthorized(_))) => return signed.refused(&title, &error),
        Err(error) => (None, Some(super::said(tr, error.shown().code, &error.shown().message))),
    };
    let everything = matches!(
        crate::authz::authorize(&signed.caller.actor, Action::ReadAudit, &Resource::every_tenant("the audit log")),
        crate::authz::Decision::Allow
    );
    let (heads, checkpoint) = if everything {
        let heads = crate::store::audit_chain::current_heads(&signed.state.pool).await.unwrap_or_default();
        let last = crate::store::audit_chain::latest_checkpoint(&signed.state.pool).await.ok().flatten();
        (heads, last)
    } else {
        (Vec::new(), None)
    };
    let rows: Vec<templates::AuditLine> = page
        .as_ref()
        .map(|p| {
            p.events
                .iter()
                .map(|r| templates::AuditLine {
                    time: r.time.format("%Y-%m-%d %H:%M:%S").to_string(),
                    tenant: r.tenant.clone().unwrap_or_default(),
                    actor: format!("{} ({})", r.actor, r.actor_type),
                    action: r.action.clone(),
                    resource: r.resource.clone(),
                    outcome: if r.outcome == "success" { tr.t("audit-success") } else { tr.t("audit-failure") },
                })
                .collect()
        })
        .unwrap_or_default();
    let next = page.as_ref().and_then(|p| p.next.as_deref()).map(|after| {
        format!(
            "/console/audit?{}&after={}",
            filter.encoded(),
            url::form_urlencoded::byte_serialize(after.as_bytes()).collect::<String>()
        )
    });
    let picture = (!rows.is_empty()).then(|| per_day(tr, &rows));
    let body = templates::AuditConsole {
        t: tr,
        picture,
        problem: problem.as_deref(),
        from: &filter.from,
        to: &filter.to,
        tenant: &filter.tenant,
        actor: &filter.actor,
        action: &filter.action,
        outcome: &filter.outcome,
        resource: &filter.resource,
        count: &rows.len().to_string(),
        rows: &rows,
        next,
        export: format!("/console/audit.csv?{}", filter.encoded()),
        heads: heads.iter().map(|h| (h.chain.to_string(), h.seq.to_string(), hex(&h.hash))).collect(),
        checkpoint: checkpoint.map(|c| (c.created_at.format("%Y-%m-%d %H:%M:%S UTC").to_string(), c.key_id)),
        everything,
    };
    let status = if problem.is_some() { axum::http::StatusCode::BAD_REQUEST } else { axum::http::StatusCode::OK };
    signed.render(Page::new(&title, body.html()).status(status), "/console/audit")
}

/// The page's rows per day, oldest first: columns and their words.
fn per_day(tr: Tr, rows: &[templates::AuditLine]) -> String {
    let mut days: Vec<(String, i64)> = Vec::new();
    for row in rows.iter().rev() {
        let day = row.time.get(..10).unwrap_or(&row.time).to_owned();
        match days.last_mut() {
            Some((last, count)) if *last == day => *count += 1,
            _ => days.push((day, 1)),
        }
    }
    let (busiest, most) = days.iter().max_by_key(|(_, n)| *n).cloned().unwrap_or_default();
    let caption = tr.args(
        "audit-picture-caption",
        &[
            ("total", &rows.len().to_string()),
            ("days", &days.len().to_string()),
            ("most", &most.to_string()),
            ("day", &busiest),
        ],
    );
    crate::api::web::charts::daily_columns("audit-picture", &tr.t("audit-picture-title"), &caption, &days)
}

fn hex(bytes: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(bytes).chars().take(16).collect()
}

/// Exactly the rows of the console's filter, as CSV (the JSON API's export, audited as it is).
#[utoipa::path(get, operation_id = "console_audit_csv", path = "/console/audit.csv", tag = "console",
    params(
        ("from" = Option<String>, Query, description = "The first day (YYYY-MM-DD)."),
        ("to" = Option<String>, Query, description = "The last day, included."),
        ("tenant" = Option<String>, Query, description = "Only this tenant's rows."),
        ("actor" = Option<String>, Query, description = "Only this actor's rows."),
        ("action" = Option<String>, Query, description = "Only rows of this action."),
        ("outcome" = Option<String>, Query, description = "`success` or `failure`."),
        ("resource" = Option<String>, Query, description = "Only rows whose resource starts with this."),
    ),
    responses(
        (status = 200, description = "Every matching row as CSV (RFC 4180, a header row), streamed.", content_type = "text/csv"),
        (status = 303, description = "Not signed in: to the login page."),
        (status = 400, description = "A page: the filter is not valid.", body = String, content_type = "text/html"),
        (status = 403, description = "A page: not allowed to read the audit log (audited).", body = String, content_type = "text/html"),
    ))]
async fn audit_csv(signed: Signed, query: Result<Query<Filter>, axum::extract::rejection::QueryRejection>) -> Response {
    let mut filter = query.map(|Query(f)| f).unwrap_or_default();
    filter.after = None;
    let title = signed.browser.tr.t("console-audit");
    let exported = async {
        let query = filter.query(None)?;
        audit::export_csv(&signed.state, signed.caller.clone(), &query).await
    }
    .await;
    match exported {
        Ok(csv) => csv,
        Err(error) => signed.refused(&title, &error),
    }
}
