//! Usage (API-BILL, FR-BILL-001..003): applications report billable events, billing systems and
//! operators pull them back.
//!
//! - `POST /v1/usage/events` (`usage:write`): one CloudEvent (`application/cloudevents+json`), a
//!   batch (`application/cloudevents-batch+json`), or the same as plain JSON (an object or an
//!   array). Each event names its tenant in `subject`, which must list the key's application. Bad
//!   events are answered one by one (index, code, reason) and the good ones are stored, before the
//!   answer, once per (tenant, source, id).
//! - `GET /v1/usage/events` (`usage:read`, operators): the raw events in ingest order, a page at a
//!   time (`after` = the `cursor` of the last event read), or all of them as CSV with
//!   `Accept: text/csv`. Only events of finished transactions are served, in an order that nothing
//!   stored later can land behind: a cursor never skips an event.
//! - `GET /v1/usage/totals`: sums per tenant, event type and day or month.
//!
//! An API key reads one tenant at a time; only operators read every tenant at once.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::caller::{Caller, facts};
use super::ingest::{self, IngestResult};
use super::{ApiError, AppState, Result, csv, input};
use crate::authz::{Action, Resource};
use crate::store::usage::{self as db, EventFilter, Granularity, StoredEvent, Total};
use crate::store::{Rule, StoreError};
use crate::usage::event::{self, Format, Refusal, UsageEvent};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(ingest, export)).routes(routes!(totals))
}

// It documents the body that `usage::event::parse` checks field by field (so that a batch answers
// each bad event on its own).
/// A usage event: a CloudEvent 1.0 in structured JSON. Other CloudEvents attributes (extensions,
/// `datacontenttype`, …) are allowed and ignored.
#[derive(Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub(crate) struct ReportedUsageEvent {
    /// `1.0`; required as CloudEvents, optional as plain JSON.
    #[schema(example = "1.0")]
    specversion: Option<UsageSpecVersion>,
    /// Unique for its `source`: a retry of the same event is counted once.
    #[schema(min_length = 1, max_length = 256, example = "evt-0001")]
    id: String,
    /// Who sent it, as a URI reference.
    #[schema(min_length = 1, max_length = 512, example = "//billing-app/worker-1")]
    source: String,
    /// The event type, such as `api.call`: what a budget's `eventTypes` name.
    #[serde(rename = "type")]
    #[schema(min_length = 1, max_length = 256, example = "api.call")]
    kind: String,
    /// The tenant's name; the tenant must list the application.
    #[schema(min_length = 1, max_length = 63, example = "acme")]
    subject: String,
    /// When it happened: RFC 3339, at most 35 days back and 5 minutes ahead.
    time: DateTime<Utc>,
    data: UsageData,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
enum UsageSpecVersion {
    #[serde(rename = "1.0")]
    V1,
}

/// What the event counts, with anything else the application keeps beside it.
#[derive(Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
struct UsageData {
    #[schema(minimum = 1, maximum = 1_000_000_000_000_i64, example = 1)]
    quantity: i64,
}

/// A batch of at most 1,000 usage events.
#[derive(Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub(crate) struct UsageEventBatch(Vec<ReportedUsageEvent>);

/// One usage event, or a batch of at most 1,000 (`application/json`).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub(crate) enum ReportedUsageEvents {
    One(ReportedUsageEvent),
    Batch(UsageEventBatch),
}

#[utoipa::path(
    post, operation_id = "ingest_usage",
    path = "/v1/usage/events",
    tag = "application",
    security(("apiKey" = ["usage:write"]), ("apiKeyHeader" = ["usage:write"])),
    request_body(
        description = "A CloudEvent 1.0 (`application/cloudevents+json`), a batch of at most 1,000 (`application/cloudevents-batch+json`), or the same as plain `application/json` (an object or an array; `specversion` may be left out). Each event is checked on its own: a batch stores the good ones and answers each bad one with its reason.",
        content(
            (ReportedUsageEvent = "application/cloudevents+json"),
            (UsageEventBatch = "application/cloudevents-batch+json"),
            (ReportedUsageEvents = "application/json"),
        ),
    ),
    responses(
        (status = 200, description = "What was stored, what was a duplicate, and each refused event with its reason.", body = IngestResult),
        (status = 415, description = "A content type other than the three above."),
        (status = 422, description = "No event of the request could be stored: `invalid_event`, `too_old`, `in_future`, `invalid_quantity`, `forbidden`, … (a single event) or `invalid_events` (a batch), naming each.")
    ),
)]
async fn ingest(State(state): State<AppState>, caller: Caller, headers: HeaderMap, body: Bytes) -> Result<Response> {
    caller.authorize(&state, Action::IngestUsage, &Resource::platform("usage events"))?;
    let application = caller.principal()?.app.id;
    let (format, batch) = shape(&headers)?;
    let (items, batch) = ingest::events(&body, batch)?;
    let now = Utc::now();
    let mut result = IngestResult::default();
    let mut valid: Vec<UsageEvent> = Vec::with_capacity(items.len());
    let mut positions = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        match event::parse(item, format, now).and_then(|e| open_to(&state, &caller, e)) {
            Ok(event) => {
                valid.push(event);
                positions.push(index);
            }
            Err(refusal) => result.refuse(index, item, refusal.code, refusal.message),
        }
    }
    if !valid.is_empty() {
        let mut tx = state.pool.begin().await.map_err(StoreError::from)?;
        let (stored, grew) = db::ingest(&mut tx, application, &valid).await?;
        tx.commit().await.map_err(StoreError::from)?;
        // The events are stored: a failure to record a threshold is logged, never the answer.
        if let Err(error) =
            crate::budget::thresholds::after_usage(&state.pool, &state.budgets, super::budget::outbox(&state), &grew)
                .await
        {
            tracing::warn!(%error, "cannot record the budget thresholds crossed");
        }
        for ((new, index), event) in stored.into_iter().zip(positions).zip(&valid) {
            // A tenant removed between the check and the insert stores nothing: refused, not
            // passed off as a duplicate.
            if !new && state.delivery.tenant(&event.tenant).is_none() {
                let message = "the tenant was deleted while the event was stored".to_owned();
                result.refuse(index, &items[index], "unknown_tenant", message);
            } else {
                result.stored(new);
            }
        }
    }
    result.answer(batch)
}

/// The event, if its tenant is open to the key's application (every refusal audited).
fn open_to(state: &AppState, caller: &Caller, event: UsageEvent) -> Result<UsageEvent, Refusal> {
    let name = input::tenant(&event.tenant)
        .map_err(|e| Refusal { code: "invalid_event", message: format!("`subject`: {e}") })?;
    let tenant = state.delivery.tenant(name.as_str());
    let resource = Resource::of_tenant("usage", facts(name.as_str(), tenant.as_deref()));
    match caller.authorize(state, Action::IngestUsage, &resource) {
        Ok(()) => Ok(event),
        Err(ApiError::Forbidden { code, message }) => Err(Refusal { code, message }),
        Err(other) => Err(Refusal { code: "forbidden", message: other.to_string() }),
    }
}

/// The format and whether the body must be a batch (`None`: plain JSON, either).
fn shape(headers: &HeaderMap) -> Result<(Format, Option<bool>)> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("application/json");
    let essence = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    match essence.as_str() {
        "application/cloudevents+json" => Ok((Format::CloudEvents, Some(false))),
        "application/cloudevents-batch+json" => Ok((Format::CloudEvents, Some(true))),
        "application/json" => Ok((Format::Plain, None)),
        other => Err(ApiError::UnsupportedMediaType(format!(
            "content type `{other}` is not accepted here: send application/cloudevents+json, \
             application/cloudevents-batch+json or application/json"
        ))),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    tenant: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    from: Option<String>,
    to: Option<String>,
    after: Option<String>,
    limit: Option<i64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct UsageEvents {
    events: Vec<StoredEvent>,
    /// The `after` of the next page; absent on the last.
    next: Option<String>,
}

/// Rows read from the database per page of a CSV export.
const CSV_PAGE: i64 = 2000;

#[utoipa::path(
    get, operation_id = "export_usage",
    path = "/v1/usage/events",
    tag = "application",
    security(("apiKey" = ["usage:read"]), ("apiKeyHeader" = ["usage:read"]), ("operator" = ["operator"])),
    params(
        ("tenant" = Option<String>, Query, description = "Only this tenant's events (required of an API key)."),
        ("type" = Option<String>, Query, description = "Only events of this type."),
        ("from" = Option<String>, Query, description = "Only events whose `time` is at or after this RFC 3339 instant."),
        ("to" = Option<String>, Query, description = "Only events whose `time` is before this RFC 3339 instant."),
        ("after" = Option<String>, Query, description = "Only events after this cursor (the `next` of the previous page, or the `cursor` of the last event you read)."),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 1000, description = "At most this many (default 100; JSON only: CSV holds every matching event)."),
        ("Accept" = Option<String>, Header, description = "`text/csv` for a CSV file of every matching event."),
    ),
    responses((status = 200, description = "A page of events in ingest order (JSON), or all of them as CSV.", body = UsageEvents)),
)]
async fn export(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Query(query): Query<EventsQuery>,
) -> Result<Response> {
    let tenant_id = readable(&state, &caller, query.tenant.as_deref()).await?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::BadRequest("query parameter `limit`: from 1 to 1000".into()));
    }
    let after = match query.after.as_deref() {
        None => (0, 0),
        Some(cursor) => parse_cursor(cursor)?,
    };
    let filter = EventFilter {
        tenant_id,
        kind: query.kind.map(|k| input::plain_text("type", k)).transpose()?,
        from: query.from.as_deref().map(|v| input::instant("from", v)).transpose()?,
        to: query.to.as_deref().map(|v| input::instant("to", v)).transpose()?,
        after,
        limit,
    };
    if wants_csv(&headers) {
        return Ok(csv_export(state, filter));
    }
    let events = db::events(&state.pool, &filter).await?;
    let next = events.last().filter(|_| events.len() as i64 == limit).map(|e| e.cursor.clone());
    Ok(axum::Json(UsageEvents { events, next }).into_response())
}

const CSV_HEADER: [&str; 11] =
    ["seq", "tenant", "application", "source", "id", "type", "time", "quantity", "received_at", "data", "cursor"];

/// `<transaction>.<seq>`, as `cursor` and `next` write it.
fn parse_cursor(value: &str) -> Result<(i64, i64)> {
    let bad =
        || ApiError::BadRequest(format!("query parameter `after`: {value:?} is not a cursor (the `next` of a page)"));
    let (xid, seq) = value.split_once('.').ok_or_else(bad)?;
    let (xid, seq) = (xid.parse::<i64>().map_err(|_| bad())?, seq.parse::<i64>().map_err(|_| bad())?);
    if xid < 0 || seq < 0 {
        return Err(bad());
    }
    Ok((xid, seq))
}

/// Every event of `filter` as CSV, read a page at a time while the client downloads it.
fn csv_export(state: AppState, filter: EventFilter) -> Response {
    csv::download("usage.csv", &CSV_HEADER, filter, move |mut filter: EventFilter| {
        let pool = state.pool.clone();
        async move {
            filter.limit = CSV_PAGE;
            let page = db::events(&pool, &filter).await?;
            let mut out = Vec::with_capacity(page.len() * 160);
            for e in &page {
                let (seq, quantity) = (e.seq.to_string(), e.quantity.to_string());
                let (time, received) = (csv::time(e.time), csv::time(e.received_at));
                let data = e.data.to_string();
                let application = e.application.as_deref().unwrap_or_default();
                let cells = [&*seq, &e.tenant, application, &e.source, &e.id, &e.kind, &time, &quantity, &received];
                csv::row(&mut out, cells.into_iter().chain([data.as_str(), &e.cursor]));
            }
            let more = page.len() as i64 == CSV_PAGE;
            filter.after = page.last().and_then(|e| parse_cursor(&e.cursor).ok()).unwrap_or(filter.after);
            Ok((out, more.then_some(filter)))
        }
    })
}

fn wants_csv(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|m| m.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("text/csv")))
}

/// Authorizes reading usage: of one tenant (its id), or of every tenant (`None`, operators only).
async fn readable(state: &AppState, caller: &Caller, tenant: Option<&str>) -> Result<Option<Uuid>> {
    let Some(tenant) = tenant else {
        caller.authorize(state, Action::ReadUsage, &Resource::every_tenant("the usage of every tenant"))?;
        return Ok(None);
    };
    let (name, _) = caller.authorize_tenant(state, Action::ReadUsage, "usage", tenant)?;
    let id = crate::store::tenants::id_of(&state.pool, name.as_str()).await?;
    id.map(Some).ok_or_else(|| ApiError::rule(Rule::NotFound, "not_found", format!("no tenant is named `{name}`")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TotalsQuery {
    tenant: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    from: Option<String>,
    to: Option<String>,
    granularity: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Totals {
    /// The first day counted and the day after the last (UTC).
    from: NaiveDate,
    to: NaiveDate,
    totals: Vec<Total>,
}

#[utoipa::path(
    get, operation_id = "usage_totals",
    path = "/v1/usage/totals",
    tag = "application",
    security(("apiKey" = ["usage:read"]), ("apiKeyHeader" = ["usage:read"]), ("operator" = ["operator"])),
    params(
        ("tenant" = Option<String>, Query, description = "Only this tenant (required of an API key)."),
        ("type" = Option<String>, Query, description = "Only events of this type."),
        ("from" = Option<String>, Query, description = "First day counted, YYYY-MM-DD (UTC; default: the first of this month)."),
        ("to" = Option<String>, Query, description = "The day after the last one counted, YYYY-MM-DD (default: tomorrow)."),
        ("granularity" = Option<String>, Query, description = "`day` (default) or `month`."),
    ),
    responses((status = 200, description = "Sums per tenant, event type and period.", body = Totals)),
)]
async fn totals(State(state): State<AppState>, caller: Caller, Query(query): Query<TotalsQuery>) -> Result<Response> {
    let tenant_id = readable(&state, &caller, query.tenant.as_deref()).await?;
    let today = Utc::now().date_naive();
    let from = match query.from.as_deref() {
        Some(v) => day("from", v)?,
        None => today.with_day(1).unwrap_or(today),
    };
    let to = match query.to.as_deref() {
        Some(v) => day("to", v)?,
        None => today.succ_opt().unwrap_or(today),
    };
    if to <= from {
        return Err(ApiError::BadRequest(format!("query parameter `to` ({to}) must be after `from` ({from})")));
    }
    let granularity = match query.granularity.as_deref() {
        None | Some("day") => Granularity::Day,
        Some("month") => Granularity::Month,
        Some(other) => {
            return Err(ApiError::BadRequest(format!("query parameter `granularity`: `{other}`; use day or month")));
        }
    };
    let kind = query.kind.map(|k| input::plain_text("type", k)).transpose()?;
    let totals = db::totals(&state.pool, tenant_id, kind.as_deref(), (from, to), granularity).await?;
    Ok((StatusCode::OK, axum::Json(Totals { from, to, totals })).into_response())
}

fn day(name: &str, value: &str) -> Result<NaiveDate> {
    NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .ok()
        .filter(|d| (1..=9999).contains(&d.year()))
        .ok_or_else(|| ApiError::BadRequest(format!("query parameter `{name}`: {value:?} is not a day YYYY-MM-DD")))
}
