//! The audit log over HTTP (API-LOG, FR-LOG-001/002, UC-AUDIT-EXPORT).
//!
//! - `POST /v1/audit/events` (`audit:write`): applications report their own audit events, one or a
//!   batch of at most 1,000, into the one log; each under the tenant it names, which must list the
//!   application. Bad events are answered one by one; an event id is stored once per application.
//! - `GET /v1/audit/events`: the log in time order, a page at a time, filtered by time range,
//!   tenant, actor, action, outcome and resource prefix. `GET /v1/audit/export`: the same rows as
//!   CSV, streamed. For auditors and operators; a tenant's owners read their own tenant's rows.
//!   Reading or exporting the log is itself audited, with the filters used.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::caller::{Caller, facts};
use super::ingest::{self, IngestResult};
use super::{ApiError, AppState, Result, csv, input};
use crate::audit::Target;
use crate::audit::reported;
use crate::authz::{Action, Actor, Resource};
use crate::store::ReportedEvent;
use crate::store::StoreError;
use crate::store::audit_read::{self as db, AuditFilter, AuditRow};

// It documents the body that `audit::reported::parse` checks field by field (so that a batch
// answers each bad event on its own, which a typed parse could not); a test keeps its fields and
// `reported::FIELDS` equal.
/// An audit event as an application reports it (API-LOG, FR-LOG-001).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub(crate) struct ReportedAuditEvent {
    /// Yours: an event id is stored once per application, so a retry is safe.
    #[schema(min_length = 1, max_length = 256, example = "evt-0001")]
    id: String,
    /// The tenant it happened in; the tenant must list the application.
    #[schema(min_length = 1, max_length = 256, example = "acme")]
    tenant: String,
    /// When it happened: RFC 3339, at most 400 days back and 5 minutes ahead.
    timestamp: DateTime<Utc>,
    /// Who did it, as the application knows them.
    #[schema(min_length = 1, max_length = 512, example = "alice@acme.example")]
    actor: String,
    /// What was done, such as `invoice.export`.
    #[serde(rename = "type")]
    #[schema(min_length = 1, max_length = 128, example = "invoice.export")]
    kind: String,
    /// What it was done to.
    #[schema(min_length = 1, max_length = 1024, example = "invoice/2026-11")]
    resource: String,
    outcome: ReportedOutcome,
    /// The client's address, IPv4 or IPv6.
    #[schema(value_type = String, example = "203.0.113.7")]
    ip: std::net::IpAddr,
    /// Anything else, as a JSON object.
    #[schema(value_type = Option<Object>)]
    metadata: Option<serde_json::Map<String, Value>>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
enum ReportedOutcome {
    Success,
    Failure,
}

/// The body of `POST /v1/audit/events`: one event, or a batch of at most 1,000.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub(crate) enum ReportedAuditEvents {
    One(ReportedAuditEvent),
    Batch(Vec<ReportedAuditEvent>),
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(events, ingest)).routes(routes!(export))
}

#[utoipa::path(
    post, operation_id = "ingest_audit",
    path = "/v1/audit/events",
    tag = "application",
    security(("apiKey" = ["audit:write"]), ("apiKeyHeader" = ["audit:write"])),
    request_body(content = ReportedAuditEvents, description = "One event, or an array of at most 1,000. Each is checked on its own: a batch stores the good ones and answers each bad one with its reason."),
    responses(
        (status = 200, description = "What was stored, what was a duplicate, and each refused event with its reason.", body = IngestResult),
        (status = 422, description = "No event of the request could be stored: the event's own code (a single event) or `invalid_events` naming each.")
    ),
)]
async fn ingest(State(state): State<AppState>, caller: Caller, body: Bytes) -> Result<Response> {
    caller.authorize(&state, Action::IngestAudit, &Resource::platform("audit events"))?;
    let application = caller.principal()?.app.name.clone();
    let (items, batch) = ingest::events(&body, None)?;
    let now = Utc::now();
    let mut result = IngestResult::default();
    let mut valid: Vec<ReportedEvent> = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let checked = reported::parse(item, now)
            .map_err(|r| (r.code, r.message))
            .and_then(|event| open_to(&state, &caller, event));
        match checked {
            Ok(event) => valid.push(event),
            Err((code, message)) => result.refuse(index, item, code, message),
        }
    }
    if !valid.is_empty() {
        let mut tx = state.pool.begin().await.map_err(StoreError::from)?;
        let stored = crate::store::insert_reported(&mut tx, &application, &valid).await?;
        tx.commit().await.map_err(StoreError::from)?;
        stored.into_iter().for_each(|new| result.stored(new));
    }
    result.answer(batch)
}

/// The event, if its tenant lists the key's application (every refusal audited).
fn open_to(state: &AppState, caller: &Caller, event: ReportedEvent) -> Result<ReportedEvent, (&'static str, String)> {
    let name = input::tenant(&event.tenant).map_err(|e| ("invalid_event", format!("`tenant`: {e}")))?;
    let tenant = state.delivery.tenant(name.as_str());
    let resource = Resource::of_tenant("audit log", facts(name.as_str(), tenant.as_deref()));
    match caller.authorize(state, Action::IngestAudit, &resource) {
        Ok(()) => Ok(event),
        Err(ApiError::Forbidden { code, message }) => Err((code, message)),
        Err(other) => Err(("forbidden", other.to_string())),
    }
}

/// A read of the audit log as asked for, before parsing (the JSON API's query, the auditor
/// console's form).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct AuditQuery {
    pub from: Option<String>,
    pub to: Option<String>,
    pub tenant: Option<String>,
    pub actor: Option<String>,
    pub action: Option<String>,
    pub outcome: Option<String>,
    pub resource_prefix: Option<String>,
    pub after: Option<String>,
    pub limit: Option<i64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct AuditPage {
    pub events: Vec<AuditRow>,
    /// The `after` of the next page; absent on the last.
    pub next: Option<String>,
}

#[utoipa::path(
    get, operation_id = "list_audit_events",
    path = "/v1/audit/events",
    tag = "operator",
    security(("operator" = ["operator", "auditor"]), ("session" = ["owner"])),
    params(
        ("from" = Option<String>, Query, description = "Only rows at or after this RFC 3339 instant."),
        ("to" = Option<String>, Query, description = "Only rows before this RFC 3339 instant."),
        ("tenant" = Option<String>, Query, description = "Only this tenant's rows (an owner's session reads only its own tenant, the default for it)."),
        ("actor" = Option<String>, Query, description = "Only rows of this actor."),
        ("action" = Option<String>, Query, description = "Only rows of this action, such as `user.update`."),
        ("outcome" = Option<String>, Query, description = "`success` or `failure`."),
        ("resourcePrefix" = Option<String>, Query, description = "Only rows whose resource starts with this."),
        ("after" = Option<String>, Query, description = "The `next` of the previous page."),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 1000, description = "At most this many (default 100)."),
    ),
    responses((status = 200, description = "A page of the log in time order.", body = AuditPage)),
)]
async fn events(State(state): State<AppState>, caller: Caller, Query(query): Query<AuditQuery>) -> Result<Response> {
    Ok(axum::Json(read_page(&state, &caller, &query).await?).into_response())
}

/// A page of the rows `query` asks for, if the caller may read them; the read is audited.
pub(super) async fn read_page(state: &AppState, caller: &Caller, query: &AuditQuery) -> Result<AuditPage> {
    let mut filter = readable(state, caller, query).await?;
    if let Some(after) = &query.after {
        filter.after = Some(cursor(after)?);
    }
    let mut rows = db::page(&state.pool, &filter).await?;
    let next =
        rows.last().filter(|_| rows.len() as i64 == filter.limit).map(|r| format!("{}_{}", micros(r.time), r.id));
    redact_for(state, caller, &mut rows, filter.actor.as_deref()).await?;
    caller.record(state, "audit.read", target(&filter), described(&filter, Some(rows.len()))).await?;
    Ok(AuditPage { events: rows, next })
}

/// Rows read per page of a CSV export.
const CSV_PAGE: i64 = 2000;

const CSV_HEADER: [&str; 15] = [
    "time",
    "id",
    "tenant",
    "actor",
    "actor_type",
    "action",
    "resource",
    "outcome",
    "ip",
    "application",
    "event_id",
    "metadata",
    "chain",
    "seq",
    "hash",
];

#[utoipa::path(
    get, operation_id = "export_audit",
    path = "/v1/audit/export",
    tag = "operator",
    security(("operator" = ["operator", "auditor"]), ("session" = ["owner"])),
    params(
        ("from" = Option<String>, Query, description = "Only rows at or after this RFC 3339 instant."),
        ("to" = Option<String>, Query, description = "Only rows before this RFC 3339 instant."),
        ("tenant" = Option<String>, Query, description = "Only this tenant's rows."),
        ("actor" = Option<String>, Query, description = "Only rows of this actor."),
        ("action" = Option<String>, Query, description = "Only rows of this action."),
        ("outcome" = Option<String>, Query, description = "`success` or `failure`."),
        ("resourcePrefix" = Option<String>, Query, description = "Only rows whose resource starts with this."),
    ),
    responses((status = 200, description = "Every matching row as CSV (RFC 4180, a header row, formulas neutralised), streamed.", content_type = "text/csv")),
)]
async fn export(State(state): State<AppState>, caller: Caller, Query(query): Query<AuditQuery>) -> Result<Response> {
    export_csv(&state, caller, &query).await
}

/// Every row `query` asks for as a streamed CSV download (FR-LOG-002), if the caller may read
/// them; the export is audited.
pub(super) async fn export_csv(state: &AppState, caller: Caller, query: &AuditQuery) -> Result<Response> {
    if query.after.is_some() || query.limit.is_some() {
        return Err(ApiError::BadRequest(
            "the export holds every matching row: `after` and `limit` page /v1/audit/events".into(),
        ));
    }
    let mut filter = readable(state, &caller, query).await?;
    caller.record(state, "audit.export", target(&filter), described(&filter, None)).await?;
    filter.limit = CSV_PAGE;
    let (state, caller) = (state.clone(), std::sync::Arc::new(caller));
    Ok(csv::download("audit.csv", &CSV_HEADER, filter, move |mut filter: AuditFilter| {
        let (state, caller) = (state.clone(), caller.clone());
        async move {
            let mut page = db::page(&state.pool, &filter).await?;
            let more = page.len() as i64 == filter.limit;
            filter.after = page.last().map(|r| (r.time, r.id)).or(filter.after);
            redact_for(&state, &caller, &mut page, filter.actor.as_deref()).await?;
            let mut out = Vec::with_capacity(page.len() * 256);
            for r in &page {
                let (time, id, metadata) = (csv::time(r.time), r.id.to_string(), r.metadata.to_string());
                let ip = r.ip.as_deref().unwrap_or_default();
                let tenant = r.tenant.as_deref().unwrap_or_default();
                let (application, event_id) =
                    (r.application.as_deref().unwrap_or_default(), r.event_id.as_deref().unwrap_or_default());
                let (chain, seq) = (r.chain.map(|c| c.to_string()), r.seq.map(|s| s.to_string()));
                let (chain, seq, hash) = (
                    chain.as_deref().unwrap_or_default(),
                    seq.as_deref().unwrap_or_default(),
                    r.hash.as_deref().unwrap_or_default(),
                );
                let cells = [&*time, &id, tenant, &r.actor, &r.actor_type, &r.action, &r.resource, &r.outcome, ip];
                csv::row(&mut out, cells.into_iter().chain([application, event_id, &metadata, chain, seq, hash]));
            }
            Ok((out, more.then_some(filter)))
        }
    }))
}

/// A tenant's own users read their rows without other tenants' principals (`audit::redact`);
/// operators and auditors read them as they are.
/// With an `actor` filter, a redacted row no longer matches it: asking for another tenant's
/// principal by name must not tell whether they acted on this tenant.
async fn redact_for(
    state: &AppState,
    caller: &Caller,
    rows: &mut Vec<db::AuditRow>,
    actor: Option<&str>,
) -> crate::store::Result<()> {
    let Actor::User(session) = &caller.actor else { return Ok(()) };
    let tenant: &str = &session.tenant;
    let emails: Vec<&str> = rows
        .iter()
        .filter(|r| r.actor_type == "user" && r.metadata.get("actor").is_none())
        .map(|r| r.actor.as_str())
        .collect();
    let foreign = db::users_of_other_tenants(&state.pool, tenant, &emails).await?;
    let flags = state.delivery.tenant(tenant);
    let enables = |app: &str| flags.as_ref().is_some_and(|t| t.open_to(app));
    let foreign_user = |email: &str| foreign.iter().any(|f| f == email);
    let view = crate::audit::redact::TenantView { tenant, enables: &enables, foreign_user: &foreign_user };
    rows.iter_mut().for_each(|row| view.redact(row));
    if let Some(actor) = actor {
        rows.retain(|row| row.actor == actor);
    }
    Ok(())
}

/// Authorizes reading the rows `query` asks for and returns the filter: auditors and operators read
/// any tenant or all of them; an owner reads only its own tenant's (named or not).
async fn readable(state: &AppState, caller: &Caller, query: &AuditQuery) -> Result<AuditFilter> {
    let tenant = match (&query.tenant, &caller.actor) {
        (Some(tenant), _) => Some(tenant.clone()),
        (None, Actor::User(session)) => Some(session.tenant.to_string()),
        (None, _) => None,
    };
    match &tenant {
        Some(tenant) => {
            caller.authorize_tenant(state, Action::ReadAudit, "audit log", tenant)?;
        }
        None => caller.authorize(state, Action::ReadAudit, &Resource::every_tenant("the audit log of every tenant"))?,
    }
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::BadRequest("query parameter `limit`: from 1 to 1000".into()));
    }
    let outcome = match query.outcome.as_deref() {
        None => None,
        Some(o @ ("success" | "failure")) => Some(o.to_owned()),
        Some(other) => {
            return Err(ApiError::BadRequest(format!("query parameter `outcome`: {other:?}; use success or failure")));
        }
    };
    let mut from = query.from.as_deref().map(|v| input::instant("from", v)).transpose()?;
    // A tenant's own users read only what happened since their tenant was created: a name reused
    // after a purge does not reach the rows of the tenant that had it before.
    if let (Actor::User(_), Some(name)) = (&caller.actor, &tenant) {
        let created = crate::store::tenants::get(&state.pool, name).await?.map(|t| t.created_at);
        from = match (from, created) {
            (Some(f), Some(c)) => Some(f.max(c)),
            (f, c) => f.or(c),
        };
    }
    Ok(AuditFilter {
        from,
        to: query.to.as_deref().map(|v| input::instant("to", v)).transpose()?,
        tenant,
        actor: query.actor.clone().map(|v| input::plain_text("actor", v)).transpose()?,
        action: query.action.clone().map(|v| input::plain_text("action", v)).transpose()?,
        outcome,
        resource_prefix: query.resource_prefix.clone().map(|v| input::plain_text("resourcePrefix", v)).transpose()?,
        after: None,
        limit,
    })
}

/// `<microseconds since the epoch>_<id>`: the row a page ended on.
fn cursor(value: &str) -> Result<(DateTime<Utc>, Uuid)> {
    let bad = || ApiError::BadRequest(format!("query parameter `after`: {value:?} is not the `next` of a page"));
    let (time, id) = value.split_once('_').ok_or_else(bad)?;
    let time = time.parse::<i64>().ok().and_then(DateTime::from_timestamp_micros).ok_or_else(bad)?;
    Ok((time, id.parse().map_err(|_| bad())?))
}

fn micros(time: DateTime<Utc>) -> i64 {
    time.timestamp_micros()
}

/// What the audit row of a read names: the tenant read, or the log as a whole.
fn target(filter: &AuditFilter) -> Target {
    match &filter.tenant {
        Some(tenant) => Target::in_tenant(tenant, format!("tenant/{tenant}/audit-log")),
        None => Target::platform("audit-log"),
    }
}

/// The filters of a read, for its own audit row.
fn described(filter: &AuditFilter, rows: Option<usize>) -> Value {
    let mut details = json!({
        "from": filter.from, "to": filter.to, "tenant": filter.tenant, "actor": filter.actor,
        "action": filter.action, "outcome": filter.outcome, "resourcePrefix": filter.resource_prefix,
    });
    // An export streams: how many rows it held is not known when it is recorded.
    if let Some(rows) = rows {
        details["rows"] = json!(rows);
    }
    details
}

#[cfg(test)]
mod tests {
    use super::*;

    // Issue 22.2: the documented event has exactly the fields the parser reads.
    #[test]
    fn the_documented_event_has_the_fields_the_parser_reads() {
        use utoipa::PartialSchema as _;
        let schema = serde_json::to_value(ReportedAuditEvent::schema()).expect("json");
        let mut documented: Vec<&str> =
            schema["properties"].as_object().expect("properties").keys().map(String::as_str).collect();
        documented.sort_unstable();
        let mut read = crate::audit::reported::FIELDS.to_vec();
        read.sort_unstable();
        assert_eq!(documented, read);
        assert_eq!(schema["additionalProperties"], false, "unknown fields are refused");
    }

    #[test]
    fn a_page_cursor_reads_back_what_it_wrote() {
        let time = DateTime::from_timestamp_micros(1_764_590_400_123_456).expect("time");
        let id = Uuid::now_v7();
        assert_eq!(cursor(&format!("{}_{id}", micros(time))).expect("cursor"), (time, id));
        assert!(cursor("yesterday").is_err());
        assert!(cursor("12_not-a-uuid").is_err());
    }
}
