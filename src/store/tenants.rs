//! Tenants administered through the API (issue 12): created with an invited owner, listed a page at
//! a time, changed, suspended, restored, deleted safely (pending deletion until purged) and purged.
//!
//! Every change takes the tenant's row lock first (`FOR NO KEY UPDATE`, what the user triggers'
//! revision bump takes too, so no two orders of locking can deadlock), checks its preconditions
//! under the lock (Git ownership, `If-Match`) and commits with its audit rows. Suspension ends the
//! tenant's sessions through the trigger of migration 0004; the `gatehouse_access` trigger tells
//! every replica's delivery cache, which then refuses the tenant's keys.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use super::{AuditEntry, Result, Rule, StoreError, insert_audit, rule};
use crate::model::{Role, TenantState};

/// A tenant as the admin API shows it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantRecord {
    #[serde(skip)]
    pub id: Uuid,
    pub name: String,
    pub display_name: String,
    pub plan: String,
    pub state: TenantState,
    pub applications: Vec<String>,
    pub suspended_reason: Option<String>,
    pub suspended_at: Option<DateTime<Utc>>,
    /// When a tenant pending deletion is purged, unless it is restored before.
    pub purge_after: Option<DateTime<Utc>>,
    /// `git` (declared in the config repository) or `api`.
    pub managed_by: String,
    pub source_file: Option<String>,
    /// Whether Git lets the API change what it declares here (`sync.interactiveEdits`).
    pub interactive_edits: bool,
    /// `direct` or `review` when such changes become commits (`interactiveEdits: writeBack`).
    pub write_back: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl TenantRecord {
    /// The strong validator of this representation: any visible change changes it.
    pub fn etag(&self) -> String {
        super::etag(self)
    }

    /// How a change of a row this tenant's file declares (`managed_by`) reaches Git, if it does:
    /// `None` for rows the API owns and for tenants without write-back.
    pub fn writes_back(&self, managed_by: &str) -> Option<crate::model::WriteBackMode> {
        (managed_by == "git").then(|| self.write_back.as_deref().and_then(crate::model::WriteBackMode::parse)).flatten()
    }

    /// 409 `managed_by_git` for `what`, a row of this tenant that Git declares (`managed_by`),
    /// naming the file, unless the tenant allows interactive edits (the change then shows as drift).
    pub fn refuse_if_git(&self, managed_by: &str, what: std::fmt::Arguments<'_>) -> Result<()> {
        if managed_by != "git" || self.interactive_edits {
            return Ok(());
        }
        let file = self.source_file.as_deref().unwrap_or("the config repository");
        let how = if self.write_back.is_some() {
            "this change is not one Gatehouse writes back to Git"
        } else {
            "or set `sync.interactiveEdits: writeBack` (a commit per change) or `true` (drift) in that file"
        };
        Err(rule(
            Rule::Conflict,
            "managed_by_git",
            format!("{what} is declared in Git ({file}); change it there, {how}"),
        ))
    }
}

const RECORD: &str = "SELECT t.id, t.name, t.display_name, p.name AS plan,
        CASE WHEN t.purge_after IS NOT NULL THEN 'pending_deletion' ELSE t.status END AS state,
        t.applications, t.suspended_reason, t.suspended_at, t.purge_after, t.managed_by, t.source_file,
        t.interactive_edits, t.write_back, t.created_at, t.updated_at
   FROM tenants t JOIN plans p ON p.id = t.plan_id";

pub async fn get(pool: &PgPool, name: &str) -> Result<Option<TenantRecord>> {
    Ok(sqlx::query_as(&format!("{RECORD} WHERE t.name = $1")).bind(name).fetch_optional(pool).await?)
}

/// Locks the tenant's row for the rest of the transaction and returns it.
pub async fn lock(conn: &mut PgConnection, name: &str) -> Result<TenantRecord> {
    sqlx::query_as(&format!("{RECORD} WHERE t.name = $1 FOR NO KEY UPDATE OF t"))
        .bind(name)
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| not_found(name))
}

pub fn not_found(name: &str) -> StoreError {
    StoreError::Rule { rule: Rule::NotFound, code: "not_found", message: format!("no tenant is named `{name}`") }
}

/// Which tenants a list shows, and from where.
#[derive(Debug, Default)]
pub struct TenantFilter<'a> {
    pub state: Option<TenantState>,
    pub plan: Option<&'a str>,
    pub name_prefix: Option<&'a str>,
    /// The last name of the previous page.
    pub after: Option<&'a str>,
    /// Only tenants in this sync state: `Synced`, `OutOfSync`, `Drifted`, `Error` or `Unmanaged`.
    pub sync: Option<&'a str>,
    pub limit: i64,
}

/// One page of tenants in name (byte) order. Only the filters given are in the statement, so the planner
/// sees a plain range on the name index (a page, a prefix) whatever the table's size.
pub async fn list(pool: &PgPool, filter: &TenantFilter<'_>) -> Result<Vec<TenantRecord>> {
    let mut query = sqlx::QueryBuilder::new(RECORD);
    query.push(" WHERE true");
    if let Some(after) = filter.after {
        query.push(" AND t.name COLLATE \"C\" > ").push_bind(after);
    }
    if let Some(prefix) = filter.name_prefix {
        query.push(" AND t.name COLLATE \"C\" >= ").push_bind(prefix);
        query.push(" AND t.name COLLATE \"C\" < ").push_bind(prefix_upper_bound(prefix));
    }
    if let Some(plan) = filter.plan {
        query.push(" AND p.name = ").push_bind(plan);
    }
    match filter.sync {
        // Synced tenants have no row in tenant_sync; tenants made through the API are not Git's.
        Some("Unmanaged") => query.push(" AND t.managed_by <> 'git'"),
        Some("Synced") => {
            query.push(" AND t.managed_by = 'git' AND NOT EXISTS (SELECT 1 FROM tenant_sync s WHERE s.tenant = t.name)")
        }
        // The few tenants not in sync drive the search (a semi-join), not the whole list.
        Some(other) => query
            .push(" AND t.managed_by = 'git' AND t.name IN (SELECT s.tenant FROM tenant_sync s WHERE s.state = ")
            .push_bind(other)
            .push(")"),
        None => &mut query,
    };
    match filter.state {
        Some(TenantState::Active) => query.push(" AND t.status = 'active'"),
        Some(TenantState::Suspended) => query.push(" AND t.status = 'suspended' AND t.purge_after IS NULL"),
        Some(TenantState::PendingDeletion) => query.push(" AND t.purge_after IS NOT NULL"),
        None => &mut query,
    };
    query.push(" ORDER BY t.name COLLATE \"C\" LIMIT ").push_bind(filter.limit);
    Ok(query.build_query_as().fetch_all(pool).await?)
}

/// The least string above every string that starts with `prefix` (names are ASCII): a prefix
/// search becomes a range the name index answers.
fn prefix_upper_bound(prefix: &str) -> String {
    format!("{prefix}\u{7f}")
}

/// A tenant to create, with its first owner.
pub struct NewTenant<'a> {
    pub name: &'a str,
    pub display_name: &'a str,
    pub plan: &'a str,
    pub applications: &'a [String],
    pub owner_email: &'a str,
    pub owner_name: Option<&'a str>,
}

/// Creates an API-managed tenant and its owner, `invited` (the mail worker sends the invitation
/// once this commits). Refuses a reserved name, an unknown plan or application, a name or an
/// owner's email that exists.
pub async fn create(conn: &mut PgConnection, new: &NewTenant<'_>, audit: &[AuditEntry]) -> Result<TenantRecord> {
    let reserved: Option<DateTime<Utc>> = sqlx::query_scalar(
        "SELECT reserved_until FROM reserved_tenant_names WHERE name = $1 AND reserved_until > now()",
    )
    .bind(new.name)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(until) = reserved {
        return Err(rule(
            Rule::Conflict,
            "name_reserved",
            format!("the name `{}` belonged to a purged tenant and is reserved until {}", new.name, until.to_rfc3339()),
        ));
    }
    let plan_id = share_plan(conn, new.plan).await?;
    check_applications(conn, new.applications).await?;
    let id = Uuid::now_v7();
    let inserted = sqlx::query(
        "INSERT INTO tenants (id, name, display_name, plan_id, status, applications, managed_by)
         VALUES ($1, $2, $3, $4, 'active', $5, 'api') ON CONFLICT (name) DO NOTHING",
    )
    .bind(id)
    .bind(new.name)
    .bind(new.display_name)
    .bind(plan_id)
    .bind(new.applications)
    .execute(&mut *conn)
    .await?;
    if inserted.rows_affected() == 0 {
        return Err(rule(Rule::Conflict, "tenant_exists", format!("a tenant named `{}` exists", new.name)));
    }
    super::users::insert_invited(conn, id, new.owner_email, new.owner_name, Role::Owner, None).await?;
    insert_audit(conn, audit).await?;
    lock(conn, new.name).await
}

/// A change to a tenant's declared fields; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct TenantChange<'a> {
    pub display_name: Option<&'a str>,
    pub plan: Option<&'a str>,
    pub applications: Option<&'a [String]>,
}

/// Changes the locked tenant `current` and returns it as it is now.
pub async fn update(
    conn: &mut PgConnection,
    current: &TenantRecord,
    change: &TenantChange<'_>,
    audit: &[AuditEntry],
) -> Result<TenantRecord> {
    let plan_id = match change.plan {
        Some(plan) => Some(share_plan(conn, plan).await?),
        None => None,
    };
    if let Some(applications) = change.applications {
        check_applications(conn, applications).await?;
    }
    sqlx::query(
        "UPDATE tenants SET display_name = coalesce($2, display_name), plan_id = coalesce($3, plan_id),
                applications = coalesce($4, applications), updated_at = now()
          WHERE id = $1",
    )
    .bind(current.id)
    .bind(change.display_name)
    .bind(plan_id)
    .bind(change.applications)
    .execute(&mut *conn)
    .await?;
    insert_audit(conn, audit).await?;
    lock(conn, &current.name).await
}

/// Suspends the locked tenant: its sessions end in this transaction (trigger), its keys are refused
/// once the change feed reaches each replica.
pub async fn suspend(
    conn: &mut PgConnection,
    current: &TenantRecord,
    reason: Option<&str>,
    audit: &[AuditEntry],
) -> Result<TenantRecord> {
    sqlx::query(
        "UPDATE tenants SET status = 'suspended', suspended_reason = $2,
                suspended_at = CASE WHEN status = 'suspended' THEN suspended_at ELSE now() END, updated_at = now()
          WHERE id = $1",
    )
    .bind(current.id)
    .bind(reason)
    .execute(&mut *conn)
    .await?;
    insert_audit(conn, audit).await?;
    lock(conn, &current.name).await
}

/// Makes the locked tenant active again, whether it was suspended or pending deletion.
pub async fn restore(conn: &mut PgConnection, current: &TenantRecord, audit: &[AuditEntry]) -> Result<TenantRecord> {
    sqlx::query(
        "UPDATE tenants SET status = 'active', suspended_reason = NULL, suspended_at = NULL, purge_after = NULL,
                updated_at = now()
          WHERE id = $1",
    )
    .bind(current.id)
    .execute(&mut *conn)
    .await?;
    insert_audit(conn, audit).await?;
    lock(conn, &current.name).await
}

/// Marks the locked tenant pending deletion (suspending it if it was not), purged at `purge_after`.
pub async fn delete(
    conn: &mut PgConnection,
    current: &TenantRecord,
    purge_after: DateTime<Utc>,
    audit: &[AuditEntry],
) -> Result<TenantRecord> {
    sqlx::query(
        "UPDATE tenants SET status = 'suspended', suspended_at = coalesce(suspended_at, now()),
                suspended_reason = coalesce(suspended_reason, 'pending deletion'), purge_after = $2, updated_at = now()
          WHERE id = $1",
    )
    .bind(current.id)
    .bind(purge_after)
    .execute(&mut *conn)
    .await?;
    insert_audit(conn, audit).await?;
    lock(conn, &current.name).await
}

/// Purges every tenant whose deletion is due: its row and everything that cascades from it (users,
/// sessions, flags), keeping its name reserved for `reserve_for` and writing the audit row `audit`
/// makes of each name (audit rows are never deleted). Returns the purged names.
pub async fn purge_due(
    pool: &PgPool,
    reserve_for: chrono::Duration,
    audit: impl Fn(&str) -> AuditEntry,
) -> Result<Vec<String>> {
    let mut tx = pool.begin().await?;
    let purged: Vec<(String, Option<String>)> = sqlx::query(
        "DELETE FROM tenants WHERE id IN (
             SELECT id FROM tenants WHERE purge_after <= now() ORDER BY purge_after LIMIT 100 FOR UPDATE SKIP LOCKED)
         RETURNING name, suspended_reason",
    )
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .map(|r| (r.get("name"), r.get("suspended_reason")))
    .collect();
    if purged.is_empty() {
        return Ok(Vec::new());
    }
    let names: Vec<String> = purged.iter().map(|(name, _)| name.clone()).collect();
    sqlx::query(
        "INSERT INTO reserved_tenant_names (name, reserved_until)
         SELECT name, now() + $2 FROM unnest($1::text[]) AS name
         ON CONFLICT (name) DO UPDATE SET purged_at = now(), reserved_until = EXCLUDED.reserved_until",
    )
    .bind(&names)
    .bind(reserve_for)
    .execute(&mut *tx)
    .await?;
    let rows: Vec<AuditEntry> = names.iter().map(|name| audit(name)).collect();
    insert_audit(&mut tx, &rows).await?;
    tx.commit().await?;
    Ok(names)
}

/// One of a tenant's overrides of its plan's flag defaults.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FlagOverride {
    pub key: String,
    #[schema(value_type = Object)]
    pub value: serde_json::Value,
    /// The plan's default, which the override replaces.
    #[schema(value_type = Object)]
    pub default: Option<serde_json::Value>,
    /// `git` (declared in the tenant's file) or `api`.
    pub managed_by: String,
    pub updated_at: DateTime<Utc>,
}

const OVERRIDE: &str = "SELECT f.key, f.value, p.flags -> f.key AS default, f.managed_by, f.updated_at
   FROM tenant_flags f JOIN tenants t ON t.id = f.tenant_id JOIN plans p ON p.id = t.plan_id";

/// The overrides of tenant `tenant_id`, by key.
pub async fn overrides(pool: &PgPool, tenant_id: Uuid) -> Result<Vec<FlagOverride>> {
    Ok(sqlx::query_as(&format!("{OVERRIDE} WHERE f.tenant_id = $1 ORDER BY f.key"))
        .bind(tenant_id)
        .fetch_all(pool)
        .await?)
}

/// The plan default of `key` for the locked tenant `tenant` (`None`: the plan declares no such flag).
pub async fn plan_default(
    conn: &mut PgConnection,
    tenant: &TenantRecord,
    key: &str,
) -> Result<Option<serde_json::Value>> {
    Ok(sqlx::query_scalar("SELECT flags -> $2 FROM plans WHERE name = $1")
        .bind(&tenant.plan)
        .bind(key)
        .fetch_one(&mut *conn)
        .await?)
}

/// The override of `key` of the locked tenant, locked, if it has one.
pub async fn lock_override(conn: &mut PgConnection, tenant: &TenantRecord, key: &str) -> Result<Option<FlagOverride>> {
    Ok(sqlx::query_as(&format!("{OVERRIDE} WHERE f.tenant_id = $1 AND f.key = $2 FOR NO KEY UPDATE OF f"))
        .bind(tenant.id)
        .bind(key)
        .fetch_optional(&mut *conn)
        .await?)
}

/// Sets the override of `key` (already checked against the plan's type) for the locked tenant.
pub async fn set_override(
    conn: &mut PgConnection,
    tenant: &TenantRecord,
    key: &str,
    value: &serde_json::Value,
    audit: &[AuditEntry],
) -> Result<FlagOverride> {
    sqlx::query(
        "INSERT INTO tenant_flags (id, tenant_id, key, value, managed_by) VALUES ($1, $2, $3, $4, 'api')
         ON CONFLICT (tenant_id, key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()",
    )
    .bind(Uuid::now_v7())
    .bind(tenant.id)
    .bind(key)
    .bind(value)
    .execute(&mut *conn)
    .await?;
    insert_audit(conn, audit).await?;
    lock_override(conn, tenant, key).await?.ok_or_else(|| StoreError::Task(format!("override `{key}` vanished")))
}

/// Removes the override of `key` of the locked tenant: the plan's default applies again.
pub async fn clear_override(
    conn: &mut PgConnection,
    tenant: &TenantRecord,
    key: &str,
    audit: &[AuditEntry],
) -> Result<()> {
    sqlx::query("DELETE FROM tenant_flags WHERE tenant_id = $1 AND key = $2")
        .bind(tenant.id)
        .bind(key)
        .execute(&mut *conn)
        .await?;
    insert_audit(conn, audit).await
}

/// The plan named `plan`, locked against deletion for the rest of the transaction (`FOR KEY SHARE`,
/// what the tenant's foreign key takes anyway); 422 `unknown_plan` if there is none.
pub async fn share_plan(conn: &mut PgConnection, plan: &str) -> Result<Uuid> {
    let found = sqlx::query_scalar("SELECT id FROM plans WHERE name = $1 FOR KEY SHARE")
        .bind(plan)
        .fetch_optional(&mut *conn)
        .await?;
    if let Some(id) = found {
        return Ok(id);
    }
    let known: Vec<String> = sqlx::query_scalar("SELECT name FROM plans ORDER BY name").fetch_all(&mut *conn).await?;
    let known = if known.is_empty() { "none is defined".to_owned() } else { known.join(", ") };
    Err(rule(Rule::Invalid, "unknown_plan", format!("plan: no plan is named `{plan}` (plans: {known})")))
}

async fn check_applications(conn: &mut PgConnection, applications: &[String]) -> Result<()> {
    let known: Vec<String> = sqlx::query_scalar("SELECT name FROM applications WHERE name = ANY($1)")
        .bind(applications)
        .fetch_all(&mut *conn)
        .await?;
    match applications.iter().find(|a| !known.contains(a)) {
        Some(missing) => Err(rule(
            Rule::Invalid,
            "unknown_application",
            format!("applications: no application is named `{missing}` (register it with POST /v1/apps first)"),
        )),
        None => Ok(()),
    }
}

/// The id of the tenant named `name`, if there is one.
pub async fn id_of(pool: &PgPool, name: &str) -> Result<Option<Uuid>> {
    Ok(sqlx::query_scalar("SELECT id FROM tenants WHERE name = $1").bind(name).fetch_optional(pool).await?)
}

#[cfg(test)]
mod tests {
    use super::prefix_upper_bound;

    #[test]
    fn a_prefix_range_holds_every_name_with_the_prefix_and_no_other() {
        let end = prefix_upper_bound("acme");
        for name in ["acme", "acme-eu", "acmez", "acme9"] {
            assert!(name >= "acme" && name < end.as_str(), "{name}");
        }
        for name in ["acm", "acmf", "b", "abc"] {
            assert!(!(name >= "acme" && name < end.as_str()), "{name}");
        }
    }
}

/// A plan as a tenant's subscription page shows it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PlanSummary {
    pub name: String,
    pub display_name: Option<String>,
    /// The flags the plan gives, by key.
    pub flags: serde_json::Value,
}

/// Every plan, by name.
pub async fn plans(pool: &PgPool) -> Result<Vec<PlanSummary>> {
    Ok(sqlx::query_as("SELECT name, display_name, flags FROM plans ORDER BY name").fetch_all(pool).await?)
}
