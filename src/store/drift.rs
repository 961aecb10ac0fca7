//! Drift allowances (issue 15.6): an operator allows a tenant's drift until a deadline, with a reason.
//! The reconciler reads the ones that have not expired with the tenant row (`live`); each change is
//! audited in the same transaction.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool, Row};

use super::{AuditEntry, Result, insert_audit};

/// A tenant's latest drift allowance, as the status API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = DriftAllowance)]
pub struct Allowance {
    pub until: DateTime<Utc>,
    pub reason: String,
    pub allowed_by: String,
    pub allowed_at: DateTime<Utc>,
    /// Whether `until` is still ahead.
    pub active: bool,
}

const COLUMNS: &str = "a.until, a.reason, a.allowed_by, a.allowed_at, a.until > now() AS active";

fn allowance(r: &sqlx::postgres::PgRow) -> Allowance {
    Allowance {
        until: r.get("until"),
        reason: r.get("reason"),
        allowed_by: r.get("allowed_by"),
        allowed_at: r.get("allowed_at"),
        active: r.get("active"),
    }
}

/// Allows `tenant`'s drift until `until` (replacing an earlier allowance); `None` when no such tenant
/// is live.
pub async fn allow(
    pool: &PgPool,
    tenant: &str,
    until: DateTime<Utc>,
    reason: &str,
    audit: AuditEntry,
) -> Result<Option<Allowance>> {
    let mut tx = pool.begin().await?;
    let row = sqlx::query(&format!(
        "INSERT INTO drift_allowances AS a (tenant_id, until, reason, allowed_by)
         SELECT id, $2, $3, $4 FROM tenants WHERE name = $1
         ON CONFLICT (tenant_id) DO UPDATE SET until = EXCLUDED.until, reason = EXCLUDED.reason,
             allowed_by = EXCLUDED.allowed_by, allowed_at = now()
         RETURNING {COLUMNS}"
    ))
    .bind(tenant)
    .bind(until)
    .bind(reason)
    .bind(&audit.actor)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else { return Ok(None) };
    insert_audit(&mut tx, &[audit]).await?;
    tx.commit().await?;
    Ok(Some(allowance(&row)))
}

/// Withdraws `tenant`'s allowance that has not expired; `None` when there is none.
pub async fn withdraw(pool: &PgPool, tenant: &str, audit: AuditEntry) -> Result<Option<Allowance>> {
    let mut tx = pool.begin().await?;
    let row = sqlx::query(&format!(
        "DELETE FROM drift_allowances a USING tenants t
         WHERE a.tenant_id = t.id AND t.name = $1 AND a.until > now()
         RETURNING {COLUMNS}"
    ))
    .bind(tenant)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else { return Ok(None) };
    insert_audit(&mut tx, &[audit]).await?;
    tx.commit().await?;
    Ok(Some(allowance(&row)))
}

/// `tenant`'s latest allowance, expired or not.
pub async fn allowance_of(conn: &mut PgConnection, tenant: &str) -> Result<Option<Allowance>> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM drift_allowances a JOIN tenants t ON t.id = a.tenant_id WHERE t.name = $1"
    ))
    .bind(tenant)
    .fetch_optional(conn)
    .await?;
    Ok(row.as_ref().map(allowance))
}
