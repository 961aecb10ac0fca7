//! Usage events and their daily totals (migration 0013). One statement stores a batch: the events
//! not seen before are inserted (a (tenant, source, id) already stored, or repeated in the batch, is
//! a duplicate) and only those are added to `usage_daily`, so a retried batch never counts twice.
//! The caller's transaction commits before the answer: nothing acknowledged is lost.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::Result;
use crate::usage::event::UsageEvent;

/// Stores `events` (already checked) for `application_id`; returns, per event, whether it was new
/// (`true`) or a duplicate (events of a tenant that no longer exists count as not stored), and the
/// tenants whose usage grew.
pub async fn ingest(
    conn: &mut PgConnection,
    application_id: Uuid,
    events: &[UsageEvent],
) -> Result<(Vec<bool>, Vec<Uuid>)> {
    let mut columns = Columns::default();
    for (index, event) in events.iter().enumerate() {
        columns.index.push(i32::try_from(index).unwrap_or(i32::MAX));
        columns.tenant.push(event.tenant.as_str());
        columns.source.push(event.source.as_str());
        columns.id.push(event.id.as_str());
        columns.kind.push(event.kind.as_str());
        columns.time.push(event.time);
        columns.quantity.push(event.quantity);
        columns.data.push(&event.data);
    }
    // Inserted in key order, so two batches sharing events lock them in the same order.
    let stored: Vec<(i32, Uuid)> = sqlx::query_as(
        "WITH input AS (
             SELECT DISTINCT ON (t.id, u.source, u.event_id)
                    u.idx, t.id AS tenant_id, u.source, u.event_id, u.type, u.occurred_at, u.quantity, u.data
               FROM UNNEST($1::int[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[],
                           $7::bigint[], $8::jsonb[])
                    AS u(idx, tenant, source, event_id, type, occurred_at, quantity, data)
               JOIN tenants t ON t.name = u.tenant
              ORDER BY t.id, u.source, u.event_id, u.idx
         ), inserted AS (
             INSERT INTO usage_events (tenant_id, application_id, source, event_id, type, occurred_at, quantity, data)
             SELECT tenant_id, $9, source, event_id, type, occurred_at, quantity, data
               FROM input ORDER BY tenant_id, source, event_id
             ON CONFLICT (tenant_id, source, event_id) DO NOTHING
             RETURNING tenant_id, source, event_id, type, occurred_at, quantity
         ), totals AS (
             INSERT INTO usage_daily (tenant_id, type, day, quantity, events)
             SELECT tenant_id, type, (occurred_at AT TIME ZONE 'UTC')::date,
                    least(sum(quantity), 9223372036854775807)::bigint, count(*)
               FROM inserted GROUP BY 1, 2, 3 ORDER BY 1, 3, 2
             ON CONFLICT (tenant_id, day, type) DO UPDATE
                SET quantity = least(usage_daily.quantity::numeric + EXCLUDED.quantity, 9223372036854775807)::bigint,
                    events = usage_daily.events + EXCLUDED.events
         )
         SELECT i.idx, i.tenant_id FROM input i
           JOIN inserted n ON (n.tenant_id, n.source, n.event_id) = (i.tenant_id, i.source, i.event_id)",
    )
    .bind(&columns.index)
    .bind(&columns.tenant)
    .bind(&columns.source)
    .bind(&columns.id)
    .bind(&columns.kind)
    .bind(&columns.time)
    .bind(&columns.quantity)
    .bind(&columns.data)
    .bind(application_id)
    .fetch_all(&mut *conn)
    .await?;
    let mut new = vec![false; events.len()];
    let mut tenants: Vec<Uuid> = Vec::new();
    for (index, tenant) in stored {
        if let Some(slot) = usize::try_from(index).ok().and_then(|i| new.get_mut(i)) {
            *slot = true;
        }
        tenants.push(tenant);
    }
    // Every replica's budgets read these tenants' usage again once this commits (a notification
    // carries at most 8,000 bytes: 200 ids each).
    tenants.sort_unstable();
    tenants.dedup();
    for chunk in tenants.chunks(200) {
        let ids: Vec<String> = chunk.iter().map(Uuid::to_string).collect();
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(super::budget::USAGE_CHANNEL)
            .bind(ids.join(","))
            .execute(&mut *conn)
            .await?;
    }
    Ok((new, tenants))
}

#[derive(Default)]
struct Columns<'a> {
    index: Vec<i32>,
    tenant: Vec<&'a str>,
    source: Vec<&'a str>,
    id: Vec<&'a str>,
    kind: Vec<&'a str>,
    time: Vec<DateTime<Utc>>,
    quantity: Vec<i64>,
    data: Vec<&'a serde_json::Value>,
}

/// One stored event, as the export shows it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StoredEvent {
    /// The ingest order within a batch.
    pub seq: i64,
    /// Where this event is in the export's order: pass the last one read as `after` to get what
    /// came since.
    pub cursor: String,
    pub tenant: String,
    pub application: Option<String>,
    pub source: String,
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub time: DateTime<Utc>,
    pub quantity: i64,
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    pub received_at: DateTime<Utc>,
}

/// Which events an export reads: `tenant_id` (`None`: every tenant), event time in `[from, to)`,
/// after the cursor `after` (transaction, seq).
#[derive(Debug, Default, Clone)]
pub struct EventFilter {
    pub tenant_id: Option<Uuid>,
    pub kind: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub after: (i64, i64),
    pub limit: i64,
}

/// A page of events in ingest order.
pub async fn events(pool: &PgPool, filter: &EventFilter) -> Result<Vec<StoredEvent>> {
    let mut query = sqlx::QueryBuilder::new(
        "SELECT e.seq, e.xid::text || '.' || e.seq AS cursor, coalesce(t.name, e.tenant_id::text) AS tenant,
                a.name AS application, e.source,
                e.event_id AS id, e.type AS kind, e.occurred_at AS time, e.quantity, e.data, e.received_at
           FROM usage_events e
           LEFT JOIN tenants t ON t.id = e.tenant_id
           LEFT JOIN applications a ON a.id = e.application_id
          WHERE e.xid < pg_snapshot_xmin(pg_current_snapshot()) AND (e.xid, e.seq) > (",
    );
    query.push_bind(filter.after.0.to_string()).push("::xid8, ").push_bind(filter.after.1).push(")");
    if let Some(tenant) = filter.tenant_id {
        query.push(" AND e.tenant_id = ").push_bind(tenant);
    }
    if let Some(kind) = &filter.kind {
        query.push(" AND e.type = ").push_bind(kind);
    }
    if let Some(from) = filter.from {
        query.push(" AND e.occurred_at >= ").push_bind(from);
    }
    if let Some(to) = filter.to {
        query.push(" AND e.occurred_at < ").push_bind(to);
    }
    query.push(" ORDER BY e.xid, e.seq LIMIT ").push_bind(filter.limit);
    Ok(query.build_query_as().fetch_all(pool).await?)
}

/// The sum of one tenant's events of one type over one day or month.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Total {
    pub tenant: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// The first day of the period (UTC).
    pub period: NaiveDate,
    pub quantity: i64,
    pub events: i64,
}

/// Per day or per month.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    Day,
    Month,
}

/// Totals over the days `[from, to)`, by tenant, type and period.
pub async fn totals(
    pool: &PgPool,
    tenant_id: Option<Uuid>,
    kind: Option<&str>,
    (from, to): (NaiveDate, NaiveDate),
    granularity: Granularity,
) -> Result<Vec<Total>> {
    let unit = match granularity {
        Granularity::Day => "day",
        Granularity::Month => "month",
    };
    Ok(sqlx::query_as(
        "SELECT t.name AS tenant, d.type AS kind, date_trunc($1, d.day::timestamp)::date AS period,
                least(sum(d.quantity), 9223372036854775807)::bigint AS quantity, sum(d.events)::bigint AS events
           FROM usage_daily d JOIN tenants t ON t.id = d.tenant_id
          WHERE ($2::uuid IS NULL OR d.tenant_id = $2) AND ($3::text IS NULL OR d.type = $3)
            AND d.day >= $4 AND d.day < $5
          GROUP BY 1, 2, 3 ORDER BY 1, 3, 2",
    )
    .bind(unit)
    .bind(tenant_id)
    .bind(kind)
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await?)
}
