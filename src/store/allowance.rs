//! One-time allowances of a tenant's guarded change (issue 15.7): an operator allows the removal of
//! a tenant (or of most of its users) that the mass-delete guard refuses, and the next apply of that
//! tenant makes it and deletes the allowance in the same transaction. Kept in PostgreSQL so that an
//! API call on any replica reaches the leader.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, Row};

use super::{AuditEntry, Result, insert_audit};

/// A guarded change (a tenant's removal from Git) allowed once.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = DeletionAllowance)]
pub struct Allowance {
    pub tenant: String,
    pub allowed_by: String,
    pub allowed_at: DateTime<Utc>,
}

/// Allows `tenant`'s guarded change once, audited with `audit` in the same transaction, and asks the
/// leader for a pass (a refused change is otherwise not retried until a new commit). `None` when no
/// such tenant is live: there is nothing to delete.
pub async fn allow(pool: &sqlx::PgPool, tenant: &str, audit: AuditEntry) -> Result<Option<Allowance>> {
    let mut tx = pool.begin().await?;
    let live: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM tenants WHERE name = $1)")
        .bind(tenant)
        .fetch_one(&mut *tx)
        .await?;
    if !live {
        return Ok(None);
    }
    let row = sqlx::query(
        "INSERT INTO guard_allowances (tenant, allowed_by) VALUES ($1, $2)
         ON CONFLICT (tenant) DO UPDATE SET allowed_by = EXCLUDED.allowed_by, allowed_at = now()
         RETURNING tenant, allowed_by, allowed_at",
    )
    .bind(tenant)
    .bind(&audit.actor)
    .fetch_one(&mut *tx)
    .await?;
    insert_audit(&mut tx, &[audit]).await?;
    super::status::request_sync(&mut tx).await?;
    tx.commit().await?;
    Ok(Some(Allowance {
        tenant: row.get("tenant"),
        allowed_by: row.get("allowed_by"),
        allowed_at: row.get("allowed_at"),
    }))
}

/// Tenants allowed a guarded change that no apply has made yet.
pub async fn pending(conn: &mut PgConnection) -> Result<BTreeSet<String>> {
    let names: Vec<String> = sqlx::query_scalar("SELECT tenant FROM guard_allowances").fetch_all(conn).await?;
    Ok(names.into_iter().collect())
}

/// A tenant's pending allowance, if any.
pub async fn of_tenant(conn: &mut PgConnection, tenant: &str) -> Result<Option<Allowance>> {
    let row = sqlx::query("SELECT tenant, allowed_by, allowed_at FROM guard_allowances WHERE tenant = $1")
        .bind(tenant)
        .fetch_optional(conn)
        .await?;
    Ok(row.map(|r| Allowance {
        tenant: r.get("tenant"),
        allowed_by: r.get("allowed_by"),
        allowed_at: r.get("allowed_at"),
    }))
}

/// Uses up the allowances of `tenants`, inside the transaction that applies their change.
pub async fn use_up(conn: &mut PgConnection, tenants: &[&str]) -> Result<()> {
    if !tenants.is_empty() {
        sqlx::query("DELETE FROM guard_allowances WHERE tenant = ANY($1)").bind(tenants).execute(conn).await?;
    }
    Ok(())
}
