//! Executes planned changes, set-based: one statement per kind of change for a whole batch of
//! tenants, whatever its size. The caller owns the transaction (and marks it as the reconciler's).

use std::collections::HashMap;

use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{Result, StoreError};
use crate::plan::rows::{FlagRow, Row, TenantRow, UserRow};
use crate::plan::{Action, Change, Resource, TenantPlan};

fn hash(change: &Change) -> Vec<u8> {
    change.hash.map(|h| h.to_vec()).unwrap_or_default()
}

fn ids_of<'a>(changes: impl Iterator<Item = &'a Change>) -> Vec<Uuid> {
    changes.filter_map(|c| c.id).collect()
}

/// A create or update planned without the row it writes: a bug in `plan`, refused rather than
/// written as NULLs.
fn missing_row(change: &Change) -> StoreError {
    StoreError::Task(format!("{}: planned {} has no row to write", change.resource, change.action.as_str()))
}

/// Creates, updates or deletes plans and applications (the caller picks which changes, so that
/// deletes can run after the tenants that stop referencing them).
pub async fn apply_global(conn: &mut PgConnection, changes: &[&Change], commit: Option<&str>) -> Result<()> {
    let of = |kind: &str, action: Action| -> Vec<&Change> {
        changes.iter().copied().filter(|c| c.resource.kind() == kind && c.action == action).collect()
    };
    let upserts = of("plan", Action::Create).into_iter().chain(of("plan", Action::Update));
    for c in upserts {
        let Some(Row::Plan(row)) = &c.desired else { return Err(missing_row(c)) };
        sqlx::query(
            "INSERT INTO plans (id, name, display_name, flags, budget, managed_by, applied_hash, applied_commit, source_file)
             VALUES ($1, $2, $3, $4, NULLIF($5, 'null'::jsonb), 'git', $6, $7, $8)
             ON CONFLICT (name) DO UPDATE SET display_name = EXCLUDED.display_name, flags = EXCLUDED.flags,
                budget = EXCLUDED.budget, managed_by = 'git', applied_hash = EXCLUDED.applied_hash,
                applied_commit = EXCLUDED.applied_commit, source_file = EXCLUDED.source_file, updated_at = now()",
        )
        .bind(c.id.unwrap_or_else(Uuid::now_v7))
        .bind(c.resource.short_name())
        .bind(&row.display_name)
        .bind(&row.flags)
        .bind(&row.budget)
        .bind(hash(c))
        .bind(commit)
        .bind(&c.source)
        .execute(&mut *conn)
        .await?;
    }
    let upserts = of("application", Action::Create).into_iter().chain(of("application", Action::Update));
    for c in upserts {
        let Some(Row::Application(row)) = &c.desired else { return Err(missing_row(c)) };
        sqlx::query(
            "INSERT INTO applications (id, name, display_name, owner, status, scopes, managed_by, applied_hash, applied_commit, source_file, oidc)
             VALUES ($1, $2, $3, $4, $5, $6, 'git', $7, $8, $9, NULLIF($10, 'null'::jsonb))
             ON CONFLICT (name) DO UPDATE SET display_name = EXCLUDED.display_name, owner = EXCLUDED.owner,
                status = EXCLUDED.status, scopes = EXCLUDED.scopes, oidc = EXCLUDED.oidc, managed_by = 'git', applied_hash = EXCLUDED.applied_hash,
                applied_commit = EXCLUDED.applied_commit, source_file = EXCLUDED.source_file, updated_at = now()",
        )
        .bind(c.id.unwrap_or_else(Uuid::now_v7))
        .bind(c.resource.short_name())
        .bind(&row.display_name)
        .bind(&row.owner)
        .bind(&row.status)
        .bind(&row.scopes)
        .bind(hash(c))
        .bind(commit)
        .bind(&c.source)
        .bind(&row.oidc)
        .execute(&mut *conn)
        .await?;
    }
    let deleted_apps = ids_of(of("application", Action::Delete).into_iter());
    sqlx::query("DELETE FROM applications WHERE id = ANY($1)").bind(&deleted_apps).execute(&mut *conn).await?;
    let deleted_plans = ids_of(of("plan", Action::Delete).into_iter());
    sqlx::query("DELETE FROM plans WHERE id = ANY($1)").bind(&deleted_plans).execute(&mut *conn).await?;
    Ok(())
}

/// Column arrays of one UNNEST statement on `tenants`, one per declared column.
#[derive(Default)]
struct TenantColumns {
    ids: Vec<Uuid>,
    names: Vec<String>,
    display_names: Vec<String>,
    plans: Vec<String>,
    statuses: Vec<String>,
    budgets: Vec<Value>,
    ssos: Vec<Value>,
    /// One JSON array per row: UNNEST cannot take an array of arrays of different lengths.
    applications: Vec<Value>,
    hashes: Vec<Vec<u8>>,
}

impl TenantColumns {
    fn push(&mut self, id: Uuid, name: &str, row: &TenantRow, hash: Vec<u8>) {
        self.ids.push(id);
        self.names.push(name.to_owned());
        self.display_names.push(row.display_name.clone());
        self.plans.push(row.plan.clone());
        self.statuses.push(row.status.clone());
        self.budgets.push(row.budget.clone());
        self.ssos.push(row.sso.clone());
        self.applications.push(row.applications_json());
        self.hashes.push(hash);
    }
}

/// Column arrays of one UNNEST statement on `users`.
#[derive(Default)]
struct UserColumns {
    ids: Vec<Uuid>,
    tenant_ids: Vec<Uuid>,
    emails: Vec<String>,
    names: Vec<Option<String>>,
    roles: Vec<String>,
    enabled: Vec<bool>,
    hashes: Vec<Vec<u8>>,
}

impl UserColumns {
    fn push(&mut self, id: Uuid, tenant_id: Uuid, row: &UserRow, hash: Vec<u8>) {
        self.ids.push(id);
        self.tenant_ids.push(tenant_id);
        self.emails.push(row.email.clone());
        self.names.push(row.name.clone());
        self.roles.push(row.role.clone());
        self.enabled.push(row.enabled);
        self.hashes.push(hash);
    }
}

/// Column arrays of one UNNEST statement on `tenant_flags`.
#[derive(Default)]
struct FlagColumns {
    ids: Vec<Uuid>,
    tenant_ids: Vec<Uuid>,
    keys: Vec<String>,
    values: Vec<Value>,
    hashes: Vec<Vec<u8>>,
}

impl FlagColumns {
    fn push(&mut self, id: Uuid, tenant_id: Uuid, key: &str, row: &FlagRow, hash: Vec<u8>) {
        self.ids.push(id);
        self.tenant_ids.push(tenant_id);
        self.keys.push(key.to_owned());
        self.values.push(row.value.clone());
        self.hashes.push(hash);
    }
}

/// Applies the changes and bookkeeping of a batch of tenants.
pub async fn apply_tenants(conn: &mut PgConnection, plans: &[&TenantPlan], commit: Option<&str>) -> Result<()> {
    let mut new_ids: HashMap<&str, Uuid> = HashMap::new();
    let (mut tenant_create, mut tenant_update) = (TenantColumns::default(), TenantColumns::default());
    let mut tenant_delete = Vec::new();
    let (mut user_create, mut user_update) = (UserColumns::default(), UserColumns::default());
    let (mut flag_create, mut flag_update) = (FlagColumns::default(), FlagColumns::default());
    let mut row_delete = (Vec::new(), Vec::new());

    for plan in plans {
        let tenant_id = match plan.id {
            Some(id) => id,
            None => *new_ids.entry(plan.name.as_str()).or_insert_with(Uuid::now_v7),
        };
        for c in &plan.changes {
            match (&c.resource, c.action, &c.desired) {
                (Resource::Tenant { .. }, Action::Delete, _) => tenant_delete.push(tenant_id),
                (Resource::User { .. }, Action::Delete, _) => row_delete.0.extend(c.id),
                (Resource::Flag { .. }, Action::Delete, _) => row_delete.1.extend(c.id),
                (Resource::Tenant { name }, action, Some(Row::Tenant(row))) => {
                    let cols = if action == Action::Create { &mut tenant_create } else { &mut tenant_update };
                    cols.push(tenant_id, name, row, hash(c));
                }
                (Resource::User { .. }, action, Some(Row::User(row))) => {
                    let cols = if action == Action::Create { &mut user_create } else { &mut user_update };
                    cols.push(c.id.unwrap_or_else(Uuid::now_v7), tenant_id, row, hash(c));
                }
                (Resource::Flag { key, .. }, action, Some(Row::Flag(row))) => {
                    let cols = if action == Action::Create { &mut flag_create } else { &mut flag_update };
                    cols.push(c.id.unwrap_or_else(Uuid::now_v7), tenant_id, key, row, hash(c));
                }
                (Resource::Plan { .. } | Resource::Application { .. }, _, _) => {}
                (Resource::Tenant { .. } | Resource::User { .. } | Resource::Flag { .. }, _, _) => {
                    return Err(missing_row(c));
                }
            }
        }
    }

    if !tenant_create.ids.is_empty() {
        let t = &tenant_create;
        sqlx::query(
            "INSERT INTO tenants (id, name, display_name, plan_id, status, budget, sso, applications, managed_by, applied_hash, applied_commit)
             SELECT t.id, t.name, t.display_name, p.id, t.status, NULLIF(t.budget, 'null'::jsonb), NULLIF(t.sso, 'null'::jsonb),
                    ARRAY(SELECT jsonb_array_elements_text(t.applications)), 'git', t.hash, $10
             FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::jsonb[], $7::jsonb[], $8::jsonb[], $9::bytea[])
                  AS t(id, name, display_name, plan, status, budget, sso, applications, hash)
             JOIN plans p ON p.name = t.plan",
        )
        .bind(&t.ids)
        .bind(&t.names)
        .bind(&t.display_names)
        .bind(&t.plans)
        .bind(&t.statuses)
        .bind(&t.budgets)
        .bind(&t.ssos)
        .bind(&t.applications)
        .bind(&t.hashes)
        .bind(commit)
        .execute(&mut *conn)
        .await?;
    }
    if !tenant_update.ids.is_empty() {
        let t = &tenant_update;
        sqlx::query(
            "UPDATE tenants SET display_name = t.display_name, plan_id = p.id, status = t.status,
                    -- Git's status wins, with the lifecycle bookkeeping the admin API keeps beside it.
                    purge_after = CASE WHEN t.status = 'active' THEN NULL ELSE tenants.purge_after END,
                    suspended_at = CASE WHEN t.status = 'active' THEN NULL ELSE coalesce(tenants.suspended_at, now()) END,
                    suspended_reason = CASE WHEN t.status = 'active' THEN NULL ELSE tenants.suspended_reason END,
                    budget = NULLIF(t.budget, 'null'::jsonb), sso = NULLIF(t.sso, 'null'::jsonb),
                    applications = ARRAY(SELECT jsonb_array_elements_text(t.applications)),
                    managed_by = 'git', applied_hash = t.hash, applied_commit = $9, updated_at = now()
             FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::jsonb[], $6::jsonb[], $7::jsonb[], $8::bytea[])
                  AS t(id, display_name, plan, status, budget, sso, applications, hash)
             JOIN plans p ON p.name = t.plan
             WHERE tenants.id = t.id",
        )
        .bind(&t.ids)
        .bind(&t.display_names)
        .bind(&t.plans)
        .bind(&t.statuses)
        .bind(&t.budgets)
        .bind(&t.ssos)
        .bind(&t.applications)
        .bind(&t.hashes)
        .bind(commit)
        .execute(&mut *conn)
        .await?;
    }

    if !row_delete.0.is_empty() {
        sqlx::query("DELETE FROM users WHERE id = ANY($1)").bind(&row_delete.0).execute(&mut *conn).await?;
    }
    if !row_delete.1.is_empty() {
        sqlx::query("DELETE FROM tenant_flags WHERE id = ANY($1)").bind(&row_delete.1).execute(&mut *conn).await?;
    }
    if !user_update.ids.is_empty() {
        let u = &user_update;
        sqlx::query(
            "UPDATE users SET email = u.email, name = u.name, role = u.role,
                    status = CASE WHEN NOT u.enabled THEN 'disabled'
                                  WHEN users.status = 'disabled' THEN CASE WHEN users.activated_at IS NULL THEN 'invited' ELSE 'active' END
                                  ELSE users.status END,
                    managed_by = 'git', applied_hash = u.hash, applied_commit = $7, updated_at = now()
             FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::boolean[], $6::bytea[])
                  AS u(id, email, name, role, enabled, hash)
             WHERE users.id = u.id",
        )
        .bind(&u.ids)
        .bind(&u.emails)
        .bind(&u.names)
        .bind(&u.roles)
        .bind(&u.enabled)
        .bind(&u.hashes)
        .bind(commit)
        .execute(&mut *conn)
        .await?;
    }
    if !user_create.ids.is_empty() {
        let u = &user_create;
        sqlx::query(
            "INSERT INTO users (id, tenant_id, email, name, role, status, managed_by, applied_hash, applied_commit)
             SELECT u.id, u.tenant_id, u.email, u.name, u.role, CASE WHEN u.enabled THEN 'invited' ELSE 'disabled' END,
                    'git', u.hash, $8
             FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::boolean[], $7::bytea[])
                  AS u(id, tenant_id, email, name, role, enabled, hash)",
        )
        .bind(&u.ids)
        .bind(&u.tenant_ids)
        .bind(&u.emails)
        .bind(&u.names)
        .bind(&u.roles)
        .bind(&u.enabled)
        .bind(&u.hashes)
        .bind(commit)
        .execute(&mut *conn)
        .await?;
    }
    for (f, insert) in [(&flag_update, false), (&flag_create, true)] {
        if f.ids.is_empty() {
            continue;
        }
        let sql = if insert {
            "INSERT INTO tenant_flags (id, tenant_id, key, value, managed_by, applied_hash, applied_commit)
             SELECT f.id, f.tenant_id, f.key, f.value, 'git', f.hash, $6
             FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::jsonb[], $5::bytea[]) AS f(id, tenant_id, key, value, hash)"
        } else {
            "UPDATE tenant_flags SET value = f.value, managed_by = 'git', applied_hash = f.hash, applied_commit = $6, updated_at = now()
             FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::jsonb[], $5::bytea[]) AS f(id, tenant_id, key, value, hash)
             WHERE tenant_flags.id = f.id"
        };
        sqlx::query(sql)
            .bind(&f.ids)
            .bind(&f.tenant_ids)
            .bind(&f.keys)
            .bind(&f.values)
            .bind(&f.hashes)
            .bind(commit)
            .execute(&mut *conn)
            .await?;
    }
    if !tenant_delete.is_empty() {
        sqlx::query("DELETE FROM tenants WHERE id = ANY($1)").bind(&tenant_delete).execute(&mut *conn).await?;
    }

    record(conn, plans, &new_ids, commit).await
}

/// Column arrays of the bookkeeping UPDATE: what Git declared for each applied tenant.
#[derive(Default)]
struct RecordColumns {
    ids: Vec<Uuid>,
    tree_hashes: Vec<Vec<u8>>,
    self_heal: Vec<bool>,
    prune: Vec<bool>,
    interactive_edits: Vec<bool>,
    write_back: Vec<Option<&'static str>>,
    sources: Vec<String>,
    converged: Vec<bool>,
}

/// Stores what Git declared for each tenant, so the next pass can skip it while nothing changes.
async fn record(
    conn: &mut PgConnection,
    plans: &[&TenantPlan],
    new_ids: &HashMap<&str, Uuid>,
    commit: Option<&str>,
) -> Result<()> {
    let mut r = RecordColumns::default();
    for plan in plans {
        let Some(record) = &plan.record else { continue };
        let Some(id) = plan.id.or_else(|| new_ids.get(plan.name.as_str()).copied()) else {
            continue;
        };
        r.ids.push(id);
        r.tree_hashes.push(record.tree_hash.to_vec());
        r.self_heal.push(record.sync.self_heal);
        r.prune.push(record.sync.prune);
        r.interactive_edits.push(record.sync.interactive_edits);
        r.write_back.push(record.sync.write_back.map(crate::model::WriteBackMode::as_str));
        r.sources.push(record.source.clone());
        r.converged.push(record.converged);
    }
    if r.ids.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "UPDATE tenants SET applied_tree_hash = r.tree_hash, self_heal = r.self_heal, prune = r.prune,
                interactive_edits = r.interactive_edits, write_back = r.write_back, source_file = r.source,
                applied_commit = $7, checked_revision = CASE WHEN r.converged THEN live_revision ELSE NULL END
         FROM UNNEST($1::uuid[], $2::bytea[], $3::boolean[], $4::boolean[], $5::text[], $6::boolean[], $8::boolean[],
                     $9::text[])
              AS r(id, tree_hash, self_heal, prune, source, converged, interactive_edits, write_back)
         WHERE tenants.id = r.id",
    )
    .bind(&r.ids)
    .bind(&r.tree_hashes)
    .bind(&r.self_heal)
    .bind(&r.prune)
    .bind(&r.sources)
    .bind(&r.converged)
    .bind(commit)
    .bind(&r.interactive_edits)
    .bind(&r.write_back)
    .execute(conn)
    .await?;
    Ok(())
}
