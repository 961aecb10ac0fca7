//! Sync status: written by the reconciler on every pass, read by the API on every replica.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::{PgConnection, Row};

use super::Result;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncState {
    pub paused: bool,
    /// `Synced | OutOfSync | Drifted | Error | Paused | Unknown`.
    pub state: String,
    /// The version of the config on the last pass: a commit, or for a directory that is not a clean
    /// git work tree, `content:` and a hash of its files.
    pub source_commit: Option<String>,
    /// Author (`Name <email>`) and subject of that commit.
    pub source_author: Option<String>,
    pub source_subject: Option<String>,
    /// The last commit every valid tenant converged to.
    pub synced_commit: Option<String>,
    pub failed_commit: Option<String>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    /// Manual syncs requested so far.
    pub sync_requests: i64,
    pub leader: Option<String>,
    /// Tenants per state.
    pub counts: Value,
}

pub async fn sync_state(conn: &mut PgConnection) -> Result<SyncState> {
    let r = sqlx::query(
        "SELECT paused, state, source_commit, source_author, source_subject, synced_commit, failed_commit,
                last_attempt_at, last_success_at, last_error, sync_requests, leader, counts FROM sync_state",
    )
    .fetch_one(conn)
    .await?;
    Ok(SyncState {
        paused: r.get("paused"),
        state: r.get("state"),
        source_commit: r.get("source_commit"),
        source_author: r.get("source_author"),
        source_subject: r.get("source_subject"),
        synced_commit: r.get("synced_commit"),
        failed_commit: r.get("failed_commit"),
        last_attempt_at: r.get("last_attempt_at"),
        last_success_at: r.get("last_success_at"),
        last_error: r.get("last_error"),
        sync_requests: r.get("sync_requests"),
        leader: r.get("leader"),
        counts: r.get("counts"),
    })
}

pub async fn set_paused(conn: &mut PgConnection, paused: bool) -> Result<()> {
    sqlx::query("UPDATE sync_state SET paused = $1, updated_at = now()").bind(paused).execute(conn).await?;
    Ok(())
}

/// Asks the reconciler for a pass now, even on a commit whose apply failed.
pub async fn request_sync(conn: &mut PgConnection) -> Result<()> {
    sqlx::query("UPDATE sync_state SET sync_requests = sync_requests + 1, updated_at = now()").execute(conn).await?;
    Ok(())
}

/// One tenant that is not simply in sync.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantStatus {
    pub tenant: String,
    /// `OutOfSync | Drifted | Error`, or `Synced` with orphans to report.
    pub state: String,
    pub source_file: Option<String>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub errors: Value,
    pub drift: Value,
    pub orphans: Value,
}

/// What one reconcile pass found, written in one transaction.
#[derive(Debug, Clone)]
pub struct PassRecord {
    pub state: String,
    pub source_commit: Option<String>,
    pub source_author: Option<String>,
    pub source_subject: Option<String>,
    /// Set when the pass converged every valid tenant.
    pub synced_commit: Option<String>,
    pub failed_commit: Option<String>,
    pub error: Option<String>,
    pub leader: String,
    pub counts: Value,
    /// Whether the pass replaces the per-tenant rows (a pass that never got to plan keeps them).
    pub tenants: Option<Vec<TenantStatus>>,
}

pub async fn record_pass(conn: &mut PgConnection, pass: &PassRecord) -> Result<()> {
    sqlx::query(
        "UPDATE sync_state SET state = $1, source_commit = coalesce($2, source_commit),
                source_author = CASE WHEN $2::text IS NULL THEN source_author ELSE $8 END,
                source_subject = CASE WHEN $2::text IS NULL THEN source_subject ELSE $9 END,
                synced_commit = coalesce($3, synced_commit), failed_commit = $4, last_error = $5, leader = $6,
                counts = $7, last_attempt_at = now(),
                last_success_at = CASE WHEN $5::text IS NULL THEN now() ELSE last_success_at END,
                updated_at = now()",
    )
    .bind(&pass.state)
    .bind(&pass.source_commit)
    .bind(&pass.synced_commit)
    .bind(&pass.failed_commit)
    .bind(&pass.error)
    .bind(&pass.leader)
    .bind(&pass.counts)
    .bind(&pass.source_author)
    .bind(&pass.source_subject)
    .execute(&mut *conn)
    .await?;
    let Some(tenants) = &pass.tenants else { return Ok(()) };
    sqlx::query("DELETE FROM tenant_sync").execute(&mut *conn).await?;
    if tenants.is_empty() {
        return Ok(());
    }
    let column = |f: fn(&TenantStatus) -> Value| tenants.iter().map(f).collect::<Vec<_>>();
    sqlx::query(
        "INSERT INTO tenant_sync (tenant, state, source_file, errors, drift, orphans)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::jsonb[], $5::jsonb[], $6::jsonb[])",
    )
    .bind(tenants.iter().map(|t| t.tenant.as_str()).collect::<Vec<_>>())
    .bind(tenants.iter().map(|t| t.state.as_str()).collect::<Vec<_>>())
    .bind(tenants.iter().map(|t| t.source_file.as_deref()).collect::<Vec<_>>())
    .bind(column(|t| t.errors.clone()))
    .bind(column(|t| t.drift.clone()))
    .bind(column(|t| t.orphans.clone()))
    .execute(conn)
    .await?;
    Ok(())
}

fn tenant_status(r: &sqlx::postgres::PgRow) -> TenantStatus {
    TenantStatus {
        tenant: r.get("tenant"),
        state: r.get("state"),
        source_file: r.get("source_file"),
        last_attempt_at: r.get("last_attempt_at"),
        errors: r.get("errors"),
        drift: r.get("drift"),
        orphans: r.get("orphans"),
    }
}

/// Tenants that are not simply in sync, by name, after `after`, at most `limit`.
pub async fn tenant_statuses(conn: &mut PgConnection, after: &str, limit: i64) -> Result<Vec<TenantStatus>> {
    let rows = sqlx::query("SELECT * FROM tenant_sync WHERE tenant > $1 ORDER BY tenant LIMIT $2")
        .bind(after)
        .bind(limit)
        .fetch_all(conn)
        .await?;
    Ok(rows.iter().map(tenant_status).collect())
}

/// The state of a tenant without a `tenant_sync` row: `Synced`, or `Unmanaged` for one created
/// through the API that Git does not declare.
const QUIET_STATE: &str = "CASE WHEN t.managed_by = 'git' THEN 'Synced' ELSE 'Unmanaged' END";

/// Counts tenants per state into the status and returns the counts: every tenant in the database,
/// in Git or not (one whose deletion was refused is still there), and every declared tenant that has
/// a status row without being live (its declaration is invalid or failed to apply).
pub async fn recount(conn: &mut PgConnection) -> Result<Value> {
    let counts: Value = sqlx::query_scalar(&format!(
        "WITH states AS (SELECT coalesce(s.state, {QUIET_STATE}) AS state
                         FROM tenant_sync s FULL JOIN tenants t ON t.name = s.tenant)
         UPDATE sync_state SET counts = (
             SELECT jsonb_build_object(
                 'Synced', count(*) FILTER (WHERE state = 'Synced'),
                 'OutOfSync', count(*) FILTER (WHERE state = 'OutOfSync'),
                 'Drifted', count(*) FILTER (WHERE state = 'Drifted'),
                 'Error', count(*) FILTER (WHERE state = 'Error'),
                 'Unmanaged', count(*) FILTER (WHERE state = 'Unmanaged'))
             FROM states)
         RETURNING counts"
    ))
    .fetch_one(conn)
    .await?;
    Ok(counts)
}

/// A tenant as the full status table lists it: its sync state and what the database says of it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantListing {
    #[serde(flatten)]
    pub status: TenantStatus,
    /// The version that last changed the tenant; `None` when it is not live.
    pub applied_commit: Option<String>,
    /// When the tenant's row last changed.
    pub changed_at: Option<DateTime<Utc>>,
    pub managed_by: Option<String>,
}

/// Every tenant (in the database or with a status row), by name, after `after`, at most `limit`;
/// only those in `state` when it is given.
pub async fn all_tenants(
    conn: &mut PgConnection,
    after: &str,
    limit: i64,
    state: Option<&str>,
) -> Result<Vec<TenantListing>> {
    let rows = sqlx::query(&format!(
        "SELECT * FROM (
             SELECT coalesce(s.tenant, t.name) AS tenant, coalesce(s.state, {QUIET_STATE}) AS state,
                    coalesce(s.source_file, t.source_file) AS source_file, s.last_attempt_at,
                    coalesce(s.errors, '[]') AS errors, coalesce(s.drift, '[]') AS drift,
                    coalesce(s.orphans, '[]') AS orphans, t.applied_commit,
                    -- A change to a tenant's users or flags is a change of the tenant.
                    greatest(t.updated_at,
                             (SELECT max(u.updated_at) FROM users u WHERE u.tenant_id = t.id),
                             (SELECT max(f.updated_at) FROM tenant_flags f WHERE f.tenant_id = t.id)) AS changed_at,
                    t.managed_by
             FROM tenant_sync s FULL JOIN tenants t ON t.name = s.tenant) listed
         WHERE tenant > $1 AND ($3::text IS NULL OR state = $3) ORDER BY tenant LIMIT $2"
    ))
    .bind(after)
    .bind(limit)
    .bind(state)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .iter()
        .map(|r| TenantListing {
            status: tenant_status(r),
            applied_commit: r.get("applied_commit"),
            changed_at: r.get("changed_at"),
            managed_by: r.get("managed_by"),
        })
        .collect())
}

/// A tenant's row in `tenant_sync`, if it has one.
pub async fn tenant_sync(conn: &mut PgConnection, tenant: &str) -> Result<Option<TenantStatus>> {
    let row = sqlx::query("SELECT * FROM tenant_sync WHERE tenant = $1").bind(tenant).fetch_optional(conn).await?;
    Ok(row.as_ref().map(tenant_status))
}

/// A tenant's live row as the status API shows it: whether it exists, who manages it, the commit that
/// last changed it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantRecord {
    pub managed_by: String,
    pub applied_commit: Option<String>,
    pub source_file: Option<String>,
    pub updated_at: DateTime<Utc>,
}

pub async fn tenant_record(conn: &mut PgConnection, tenant: &str) -> Result<Option<TenantRecord>> {
    let row = sqlx::query("SELECT managed_by, applied_commit, source_file, updated_at FROM tenants WHERE name = $1")
        .bind(tenant)
        .fetch_optional(conn)
        .await?;
    Ok(row.map(|r| TenantRecord {
        managed_by: r.get("managed_by"),
        applied_commit: r.get("applied_commit"),
        source_file: r.get("source_file"),
        updated_at: r.get("updated_at"),
    }))
}

/// Who last changed `resource` other than the reconciler, and when, from the audit log.
pub async fn last_change_outside_git(
    conn: &mut PgConnection,
    resource: &str,
) -> Result<Option<(String, DateTime<Utc>)>> {
    let row = sqlx::query(
        "SELECT actor, occurred_at FROM audit_log WHERE resource = $1 AND actor <> 'gatehouse-reconciler'
         ORDER BY occurred_at DESC LIMIT 1",
    )
    .bind(resource)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| (r.get("actor"), r.get("occurred_at"))))
}

/// Whether the database answers.
pub async fn ping(pool: &sqlx::PgPool) -> bool {
    sqlx::query("SELECT 1").execute(pool).await.is_ok()
}

/// A running (or lately seen) replica.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct Replica {
    pub name: String,
    pub address: String,
    pub version: String,
    pub started_at: DateTime<Utc>,
    pub seen_at: DateTime<Utc>,
}

/// How often each replica says it is alive.
pub const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(15);

/// This replica is alive (its row made or refreshed); rows not seen for a day go.
pub async fn announce(conn: &mut PgConnection, name: &str, address: &str, started_at: DateTime<Utc>) -> Result<()> {
    sqlx::query(
        "INSERT INTO replicas (name, address, version, started_at, seen_at) VALUES ($1, $2, $3, $4, now())
         ON CONFLICT (name) DO UPDATE SET address = $2, version = $3, started_at = $4, seen_at = now()",
    )
    .bind(name)
    .bind(address)
    .bind(env!("CARGO_PKG_VERSION"))
    .bind(started_at)
    .execute(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM replicas WHERE seen_at < now() - interval '1 day'").execute(conn).await?;
    Ok(())
}

/// This replica stopped.
pub async fn retire(conn: &mut PgConnection, name: &str) -> Result<()> {
    sqlx::query("DELETE FROM replicas WHERE name = $1").bind(name).execute(conn).await?;
    Ok(())
}

/// The replicas seen lately, the most recently started first.
pub async fn replicas(conn: &mut PgConnection) -> Result<Vec<Replica>> {
    Ok(sqlx::query_as(
        "SELECT name, address, version, started_at, seen_at FROM replicas ORDER BY started_at DESC, name",
    )
    .fetch_all(conn)
    .await?)
}

/// What waits in the outboxes: mail and webhooks not yet delivered, those given up on, and the
/// age of the oldest waiting.
#[derive(Debug, Clone, Default, Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct Outboxes {
    pub mail_waiting: i64,
    pub mail_failed: i64,
    pub mail_oldest: Option<DateTime<Utc>>,
    pub hooks_waiting: i64,
    pub hooks_failed: i64,
    pub hooks_oldest: Option<DateTime<Utc>>,
}

pub async fn outboxes(conn: &mut PgConnection) -> Result<Outboxes> {
    Ok(sqlx::query_as(
        "SELECT (SELECT count(*) FROM email_outbox WHERE sent_at IS NULL AND failed_at IS NULL) AS mail_waiting,
                (SELECT count(*) FROM email_outbox WHERE failed_at IS NOT NULL) AS mail_failed,
                (SELECT min(created_at) FROM email_outbox WHERE sent_at IS NULL AND failed_at IS NULL) AS mail_oldest,
                (SELECT count(*) FROM webhook_outbox WHERE delivered_at IS NULL AND failed_at IS NULL) AS hooks_waiting,
                (SELECT count(*) FROM webhook_outbox WHERE failed_at IS NOT NULL) AS hooks_failed,
                (SELECT min(created_at) FROM webhook_outbox WHERE delivered_at IS NULL AND failed_at IS NULL) AS hooks_oldest",
    )
    .fetch_one(conn)
    .await?)
}

/// The sync state of each of `tenants` Git declares and that is not simply in sync (a tenant
/// without an entry is `Synced` if Git manages it).
pub async fn sync_states(
    conn: &mut PgConnection,
    tenants: &[String],
) -> Result<std::collections::HashMap<String, String>> {
    let rows: Vec<(String, String)> = sqlx::query_as("SELECT tenant, state FROM tenant_sync WHERE tenant = ANY($1)")
        .bind(tenants)
        .fetch_all(conn)
        .await?;
    Ok(rows.into_iter().collect())
}
