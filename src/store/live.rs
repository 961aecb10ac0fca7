//! Reads live state into the shape `plan::diff` compares: declared columns become `Fields` through
//! the same constructors the desired side uses.

use std::collections::HashMap;

use serde_json::Value;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::Result;
use crate::plan::fields::{self, Hash};
use crate::plan::live::{DriftAllowance, LiveRow, LiveState, LiveTenant, ManagedBy, TenantDetail};
use crate::plan::rows::{ApplicationRow, FlagRow, PlanRow, TenantRow, UserRow};

fn hash(bytes: Option<Vec<u8>>) -> Option<Hash> {
    bytes.and_then(|b| b.try_into().ok())
}

fn json_or_null(value: Option<Value>) -> Value {
    value.unwrap_or(Value::Null)
}

/// Plans, applications and every tenant's own row (not their users or flags).
pub async fn load_live(conn: &mut PgConnection) -> Result<LiveState> {
    load(conn, false).await
}

/// `load_live`, with every row it reads locked for the rest of the transaction: a change to a
/// tenant's users or flags outside the reconciler waits too, as its trigger updates the tenant row.
pub async fn load_live_locked(conn: &mut PgConnection) -> Result<LiveState> {
    load(conn, true).await
}

async fn load(conn: &mut PgConnection, lock: bool) -> Result<LiveState> {
    let mut state = LiveState::default();
    let for_update = if lock { " FOR UPDATE" } else { "" };
    let plans = sqlx::query(&format!(
        "SELECT id, name, display_name, flags, budget, managed_by, applied_hash, source_file FROM plans{for_update}"
    ))
    .fetch_all(&mut *conn)
    .await?;
    for r in plans {
        let plan = PlanRow {
            display_name: r.get("display_name"),
            flags: r.get("flags"),
            budget: json_or_null(r.get("budget")),
        };
        state.plans.insert(r.get("name"), row(&r, plan.fields()));
    }
    let applications = sqlx::query(&format!(
        "SELECT id, name, display_name, owner, status, scopes, oidc, managed_by, applied_hash, source_file FROM applications{for_update}"
    ))
    .fetch_all(&mut *conn)
    .await?;
    for r in applications {
        let application = ApplicationRow {
            display_name: r.get("display_name"),
            owner: r.get("owner"),
            status: r.get("status"),
            scopes: r.get("scopes"),
            oidc: json_or_null(r.get("oidc")),
        };
        state.applications.insert(r.get("name"), row(&r, application.fields()));
    }
    for tenant in tenants(conn, None, lock).await? {
        state.tenants.insert(tenant.name.clone(), tenant);
    }
    Ok(state)
}

/// One tenant's row, locked for the rest of the transaction when `lock` is set.
pub async fn load_tenant(conn: &mut PgConnection, name: &str) -> Result<Option<LiveTenant>> {
    Ok(tenants(conn, Some(name), true).await?.pop())
}

async fn tenants(conn: &mut PgConnection, only: Option<&str>, lock: bool) -> Result<Vec<LiveTenant>> {
    let mut sql = String::from(
        "SELECT t.id, t.name, t.display_name, p.name AS plan, t.status, t.budget, t.sso, t.applications,
                t.prune, t.managed_by, t.applied_hash, t.applied_tree_hash, t.source_file,
                t.live_revision, t.checked_revision, a.until AS allowed_until, a.reason AS allowed_reason,
                a.allowed_by
         FROM tenants t JOIN plans p ON p.id = t.plan_id
         LEFT JOIN drift_allowances a ON a.tenant_id = t.id AND a.until > now()",
    );
    if only.is_some() {
        sql.push_str(" WHERE t.name = $1");
    }
    if lock {
        sql.push_str(" FOR UPDATE OF t");
    }
    let mut query = sqlx::query(&sql);
    if let Some(name) = only {
        query = query.bind(name);
    }
    let rows = query.fetch_all(conn).await?;
    Ok(rows
        .iter()
        .map(|r| {
            let tenant = TenantRow {
                display_name: r.get("display_name"),
                plan: r.get("plan"),
                status: r.get("status"),
                budget: json_or_null(r.get("budget")),
                sso: json_or_null(r.get("sso")),
                applications: r.get("applications"),
            };
            LiveTenant {
                name: r.get("name"),
                row: row(r, tenant.fields()),
                applied_tree_hash: hash(r.get("applied_tree_hash")),
                live_revision: r.get("live_revision"),
                checked_revision: r.get("checked_revision"),
                prune: r.get("prune"),
                drift_allowed: r.get::<Option<chrono::DateTime<chrono::Utc>>, _>("allowed_until").map(|until| {
                    DriftAllowance { until, reason: r.get("allowed_reason"), allowed_by: r.get("allowed_by") }
                }),
            }
        })
        .collect())
}

fn row(r: &sqlx::postgres::PgRow, fields: fields::Fields) -> LiveRow {
    LiveRow {
        id: r.get("id"),
        fields,
        managed_by: ManagedBy::parse(r.get("managed_by")),
        applied_hash: hash(r.get("applied_hash")),
        source: r.try_get("source_file").ok().flatten(),
    }
}

/// Users and flags of the given tenants.
pub async fn load_details(conn: &mut PgConnection, tenant_ids: &[Uuid]) -> Result<HashMap<Uuid, TenantDetail>> {
    let mut details: HashMap<Uuid, TenantDetail> = tenant_ids.iter().map(|id| (*id, TenantDetail::default())).collect();
    if tenant_ids.is_empty() {
        return Ok(details);
    }
    let users = sqlx::query(
        "SELECT id, tenant_id, email, name, role, status, managed_by, applied_hash FROM users WHERE tenant_id = ANY($1)",
    )
    .bind(tenant_ids)
    .fetch_all(&mut *conn)
    .await?;
    for r in users {
        let user = UserRow {
            email: r.get("email"),
            name: r.get("name"),
            role: r.get("role"),
            enabled: r.get::<&str, _>("status") != "disabled",
        };
        let tenant: Uuid = r.get("tenant_id");
        let fields = user.fields();
        details.entry(tenant).or_default().users.insert(user.email, row(&r, fields));
    }
    let flags = sqlx::query(
        "SELECT id, tenant_id, key, value, managed_by, applied_hash FROM tenant_flags WHERE tenant_id = ANY($1)",
    )
    .bind(tenant_ids)
    .fetch_all(&mut *conn)
    .await?;
    for r in flags {
        let flag = FlagRow { value: r.get("value") };
        let tenant: Uuid = r.get("tenant_id");
        details.entry(tenant).or_default().flags.insert(r.get("key"), row(&r, flag.fields()));
    }
    Ok(details)
}

/// Locks the given tenant rows for the rest of the transaction and returns their live revisions.
pub async fn lock_tenants(conn: &mut PgConnection, tenant_ids: &[Uuid]) -> Result<HashMap<Uuid, i64>> {
    let rows = sqlx::query("SELECT id, live_revision FROM tenants WHERE id = ANY($1) ORDER BY id FOR UPDATE")
        .bind(tenant_ids)
        .fetch_all(conn)
        .await?;
    Ok(rows.iter().map(|r| (r.get("id"), r.get("live_revision"))).collect())
}

/// The reconciler's audit metadata of each resource, newest first: what it set, change by change.
pub async fn reconciler_history(conn: &mut PgConnection, resources: &[String]) -> Result<HashMap<String, Vec<Value>>> {
    let mut history: HashMap<String, Vec<Value>> = HashMap::new();
    if resources.is_empty() {
        return Ok(history);
    }
    let rows = sqlx::query(
        "SELECT resource, metadata FROM audit_log
         WHERE resource = ANY($1) AND actor = 'gatehouse-reconciler' AND outcome = 'success'
         ORDER BY occurred_at DESC, id DESC",
    )
    .bind(resources)
    .fetch_all(conn)
    .await?;
    for r in rows {
        history.entry(r.get("resource")).or_default().push(r.get("metadata"));
    }
    Ok(history)
}
