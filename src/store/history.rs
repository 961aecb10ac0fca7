//! Sync history (issue 15.4): one row per reconcile pass that changed, reverted or failed something,
//! with what it did to each tenant, kept for the last `--history-limit` passes. Written by the
//! leader, read by the API on every replica.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::{PgConnection, Row};

use super::Result;

/// What a pass applied, by kind: declared changes (created, updated, deleted) apart from drift it
/// reverted (healed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChangeCounts {
    pub created: usize,
    pub updated: usize,
    pub deleted: usize,
    pub healed: usize,
}

impl ChangeCounts {
    pub fn add(&mut self, other: ChangeCounts) {
        self.created += other.created;
        self.updated += other.updated;
        self.deleted += other.deleted;
        self.healed += other.healed;
    }

    pub fn any(&self) -> bool {
        self.created + self.updated + self.deleted + self.healed > 0
    }
}

/// A drifted field a pass reverted: the live value it replaced and who had made that change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealedField {
    pub resource: String,
    pub field: String,
    /// The value Git applied, and applied again.
    pub applied: Value,
    /// The live value that was reverted.
    pub reverted: Value,
    /// Who last changed the resource outside Git (from the audit log); `None` when nobody audited it,
    /// such as a change made with plain SQL.
    pub changed_by: Option<String>,
    pub changed_at: Option<DateTime<Utc>>,
}

/// What one pass did to one tenant.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantPass {
    pub tenant: String,
    /// `applied | refused | failed | invalid`.
    pub outcome: String,
    #[serde(flatten)]
    pub counts: ChangeCounts,
    /// The first problem of a tenant that was not applied.
    pub problem: Option<String>,
    /// Drifted fields the pass reverted.
    pub drift: Vec<HealedField>,
}

/// One pass as the history keeps it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PassEntry {
    /// Assigned when the pass is recorded.
    pub id: i64,
    pub started_at: DateTime<Utc>,
    pub duration_ms: i64,
    /// `interval | webhook | manual | file change | start`.
    pub trigger: String,
    /// `Synced | Drifted | Error`.
    pub state: String,
    /// The commit, or `content:` and a hash of the files.
    pub version: Option<String>,
    /// The commit's author (`Name <email>`) and subject.
    pub author: Option<String>,
    pub subject: Option<String>,
    #[serde(flatten)]
    pub counts: ChangeCounts,
    pub refused: usize,
    pub failed: usize,
    pub error: Option<String>,
    /// Reverted drift of plans and applications (tenants' own is under `tenants`).
    pub healed_global: Vec<HealedField>,
    /// The tenants it changed, reverted, refused or failed, by name (at most `TENANTS_SHOWN` when
    /// listed with other passes; `tenantsTotal` says how many there were).
    pub tenants: Vec<TenantPass>,
    pub tenants_total: i64,
}

/// Tenants listed per pass in `GET /v1/sync/history`; the per-tenant history has the rest.
pub const TENANTS_SHOWN: i64 = 100;

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn usize_of(row: &sqlx::postgres::PgRow, column: &str) -> usize {
    usize::try_from(row.get::<i32, _>(column)).unwrap_or(0)
}

fn counts_of(row: &sqlx::postgres::PgRow) -> ChangeCounts {
    ChangeCounts {
        created: usize_of(row, "created"),
        updated: usize_of(row, "updated"),
        deleted: usize_of(row, "deleted"),
        healed: usize_of(row, "healed"),
    }
}

fn healed_of(value: Value) -> Vec<HealedField> {
    serde_json::from_value(value).unwrap_or_default()
}

/// Records `pass` and forgets all but the newest `keep` passes; returns the pass's id.
pub async fn record(conn: &mut PgConnection, pass: &PassEntry, keep: i64) -> Result<i64> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO sync_passes (started_at, duration_ms, trigger, state, version, author, subject,
                created, updated, deleted, healed, refused, failed, error, healed_global)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) RETURNING id",
    )
    .bind(pass.started_at)
    .bind(pass.duration_ms)
    .bind(&pass.trigger)
    .bind(&pass.state)
    .bind(&pass.version)
    .bind(&pass.author)
    .bind(&pass.subject)
    .bind(count(pass.counts.created))
    .bind(count(pass.counts.updated))
    .bind(count(pass.counts.deleted))
    .bind(count(pass.counts.healed))
    .bind(count(pass.refused))
    .bind(count(pass.failed))
    .bind(&pass.error)
    .bind(serde_json::to_value(&pass.healed_global).unwrap_or_default())
    .fetch_one(&mut *conn)
    .await?;
    if !pass.tenants.is_empty() {
        let t = &pass.tenants;
        let column = |f: fn(&ChangeCounts) -> usize| t.iter().map(|t| count(f(&t.counts))).collect::<Vec<_>>();
        sqlx::query(
            "INSERT INTO sync_pass_tenants (pass_id, tenant, outcome, created, updated, deleted, healed, problem, drift)
             SELECT $1, * FROM UNNEST($2::text[], $3::text[], $4::int[], $5::int[], $6::int[], $7::int[],
                                      $8::text[], $9::jsonb[])",
        )
        .bind(id)
        .bind(t.iter().map(|t| t.tenant.as_str()).collect::<Vec<_>>())
        .bind(t.iter().map(|t| t.outcome.as_str()).collect::<Vec<_>>())
        .bind(column(|c| c.created))
        .bind(column(|c| c.updated))
        .bind(column(|c| c.deleted))
        .bind(column(|c| c.healed))
        .bind(t.iter().map(|t| t.problem.as_deref()).collect::<Vec<_>>())
        .bind(t.iter().map(|t| serde_json::to_value(&t.drift).unwrap_or_default()).collect::<Vec<_>>())
        .execute(&mut *conn)
        .await?;
    }
    sqlx::query("DELETE FROM sync_passes WHERE id <= (SELECT id FROM sync_passes ORDER BY id DESC OFFSET $1 LIMIT 1)")
        .bind(keep.max(1))
        .execute(conn)
        .await?;
    Ok(id)
}

fn pass_of(row: &sqlx::postgres::PgRow) -> PassEntry {
    PassEntry {
        id: row.get("id"),
        started_at: row.get("started_at"),
        duration_ms: row.get("duration_ms"),
        trigger: row.get("trigger"),
        state: row.get("state"),
        version: row.get("version"),
        author: row.get("author"),
        subject: row.get("subject"),
        counts: counts_of(row),
        refused: usize_of(row, "refused"),
        failed: usize_of(row, "failed"),
        error: row.get("error"),
        healed_global: healed_of(row.get("healed_global")),
        tenants: Vec::new(),
        tenants_total: 0,
    }
}

fn tenant_pass_of(row: &sqlx::postgres::PgRow) -> TenantPass {
    TenantPass {
        tenant: row.get("tenant"),
        outcome: row.get("outcome"),
        counts: counts_of(row),
        problem: row.get("problem"),
        drift: healed_of(row.get("drift")),
    }
}

/// Passes newest first, older than the pass `before` (all when `None`), at most `limit`, each with
/// up to `TENANTS_SHOWN` of its tenants.
pub async fn passes(conn: &mut PgConnection, before: Option<i64>, limit: i64) -> Result<Vec<PassEntry>> {
    let rows = sqlx::query(
        "SELECT p.*, (SELECT count(*) FROM sync_pass_tenants t WHERE t.pass_id = p.id) AS tenants_total
         FROM sync_passes p WHERE p.id < coalesce($1, 9223372036854775807) ORDER BY p.id DESC LIMIT $2",
    )
    .bind(before)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    let mut passes: Vec<PassEntry> =
        rows.iter().map(|r| PassEntry { tenants_total: r.get("tenants_total"), ..pass_of(r) }).collect();
    let ids: Vec<i64> = passes.iter().map(|p| p.id).collect();
    let tenants = sqlx::query(
        "SELECT * FROM (SELECT t.*, row_number() OVER (PARTITION BY pass_id ORDER BY tenant) AS n
                        FROM sync_pass_tenants t WHERE pass_id = ANY($1)) shown
         WHERE n <= $2 ORDER BY pass_id, tenant",
    )
    .bind(&ids)
    .bind(TENANTS_SHOWN)
    .fetch_all(conn)
    .await?;
    let mut by_pass: HashMap<i64, Vec<TenantPass>> = HashMap::new();
    for row in &tenants {
        by_pass.entry(row.get("pass_id")).or_default().push(tenant_pass_of(row));
    }
    for pass in &mut passes {
        pass.tenants = by_pass.remove(&pass.id).unwrap_or_default();
    }
    Ok(passes)
}

/// The passes that changed, reverted, refused or failed `tenant`, newest first, each with only that
/// tenant's part.
pub async fn tenant_passes(
    conn: &mut PgConnection,
    tenant: &str,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<PassEntry>> {
    let rows = sqlx::query(
        "SELECT p.*, t.tenant, t.outcome, t.created AS t_created, t.updated AS t_updated,
                t.deleted AS t_deleted, t.healed AS t_healed, t.problem, t.drift
         FROM sync_pass_tenants t JOIN sync_passes p ON p.id = t.pass_id
         WHERE t.tenant = $1 AND t.pass_id < coalesce($2, 9223372036854775807)
         ORDER BY t.pass_id DESC LIMIT $3",
    )
    .bind(tenant)
    .bind(before)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let own = TenantPass {
                tenant: r.get("tenant"),
                outcome: r.get("outcome"),
                counts: ChangeCounts {
                    created: usize_of(r, "t_created"),
                    updated: usize_of(r, "t_updated"),
                    deleted: usize_of(r, "t_deleted"),
                    healed: usize_of(r, "t_healed"),
                },
                problem: r.get("problem"),
                drift: healed_of(r.get("drift")),
            };
            PassEntry { tenants: vec![own], tenants_total: 1, ..pass_of(r) }
        })
        .collect())
}

/// Who last changed each of `resources` other than the reconciler, and when, from the audit log.
pub async fn last_changes_outside_git(
    conn: &mut PgConnection,
    resources: &[String],
) -> Result<HashMap<String, (String, DateTime<Utc>)>> {
    if resources.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = sqlx::query(
        "SELECT DISTINCT ON (resource) resource, actor, occurred_at FROM audit_log
         WHERE resource = ANY($1) AND actor <> 'gatehouse-reconciler'
         ORDER BY resource, occurred_at DESC",
    )
    .bind(resources)
    .fetch_all(conn)
    .await?;
    Ok(rows.iter().map(|r| (r.get("resource"), (r.get("actor"), r.get("occurred_at")))).collect())
}
