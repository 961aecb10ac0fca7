//! Reading the audit log (FR-LOG-002, UC-AUDIT-EXPORT): filtered pages in time order, `(occurred_at,
//! id)` the cursor, over the `(occurred_at, id)` index (or the tenant's, when a tenant is named).

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use super::Result;

/// One row as exports show it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditRow {
    pub id: Uuid,
    pub time: DateTime<Utc>,
    pub actor: String,
    /// `user`, `operator`, `auditor`, `system`, `application`, `anonymous`, or `external` (an actor
    /// an application reported).
    pub actor_type: String,
    pub action: String,
    pub resource: String,
    pub tenant: Option<String>,
    /// `success` or `failure`.
    pub outcome: String,
    /// The address the request came from (also in `metadata.ip`).
    pub ip: Option<String>,
    /// The application that reported the row; absent on the control plane's own rows.
    pub application: Option<String>,
    /// The reporting application's id for the event.
    pub event_id: Option<String>,
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
    /// The row's hash chain, its place there and its hash (hex; `audit verify` checks them). Absent
    /// on rows written before the chains existed.
    pub chain: Option<i16>,
    pub seq: Option<i64>,
    pub hash: Option<String>,
}

/// Which rows, from where. Every filter is optional.
#[derive(Debug, Default, Clone)]
pub struct AuditFilter {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub tenant: Option<String>,
    pub actor: Option<String>,
    pub action: Option<String>,
    pub outcome: Option<String>,
    pub resource_prefix: Option<String>,
    /// The last row of the previous page.
    pub after: Option<(DateTime<Utc>, Uuid)>,
    pub limit: i64,
}

/// A page of rows in time order.
pub async fn page(pool: &PgPool, filter: &AuditFilter) -> Result<Vec<AuditRow>> {
    let mut query = sqlx::QueryBuilder::new(
        "SELECT id, occurred_at AS time, actor, actor_type, action, resource, tenant, outcome, metadata->>'ip' AS ip,
                application, event_id,
                metadata, chain, seq, encode(hash, 'hex') AS hash
           FROM audit_log WHERE true",
    );
    if let Some((time, id)) = filter.after {
        query.push(" AND (occurred_at, id) > (").push_bind(time).push(", ").push_bind(id).push(")");
    }
    if let Some(from) = filter.from {
        query.push(" AND occurred_at >= ").push_bind(from);
    }
    if let Some(to) = filter.to {
        query.push(" AND occurred_at < ").push_bind(to);
    }
    if let Some(tenant) = &filter.tenant {
        query.push(" AND tenant = ").push_bind(tenant);
    }
    if let Some(actor) = &filter.actor {
        query.push(" AND actor = ").push_bind(actor);
    }
    if let Some(action) = &filter.action {
        query.push(" AND action = ").push_bind(action);
    }
    if let Some(outcome) = &filter.outcome {
        query.push(" AND outcome = ").push_bind(outcome);
    }
    if let Some(prefix) = &filter.resource_prefix {
        query.push(" AND resource COLLATE \"C\" >= ").push_bind(prefix);
        query.push(" AND resource COLLATE \"C\" < ").push_bind(format!("{prefix}\u{10ffff}"));
    }
    query.push(" ORDER BY occurred_at, id LIMIT ").push_bind(filter.limit);
    Ok(query.build_query_as().fetch_all(pool).await?)
}

/// Of `emails`, those that are users of a tenant other than `tenant` today.
pub async fn users_of_other_tenants(pool: &PgPool, tenant: &str, emails: &[&str]) -> Result<Vec<String>> {
    if emails.is_empty() {
        return Ok(Vec::new());
    }
    Ok(sqlx::query_scalar(
        "SELECT u.email FROM users u JOIN tenants t ON t.id = u.tenant_id WHERE u.email = ANY($1) AND t.name <> $2",
    )
    .bind(emails)
    .bind(tenant)
    .fetch_all(pool)
    .await?)
}
