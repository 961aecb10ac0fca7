//! Executes planned changes, set-based: one statement per kind of change for a whole batch of
//! tenants, whatever its size. The caller owns the transaction (and marks it as the reconciler's).

use std::collections::HashMap;

use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use super::Result;
use crate::plan::{Action, Change, Resource, TenantPlan};

fn text(change: &Change, field: &str) -> Option<String> {
    change.desired.as_ref()?.get(field)?.as_str().map(str::to_owned)
}

fn json(change: &Change, field: &str) -> Value {
    change.desired.as_ref().and_then(|d| d.get(field)).cloned().unwrap_or(Value::Null)
}

fn hash(change: &Change) -> Vec<u8> {
    change.hash.map(|h| h.to_vec()).unwrap_or_default()
}

fn ids_of<'a>(changes: impl Iterator<Item = &'a Change>) -> Vec<Uuid> {
    changes.filter_map(|c| c.id).collect()
}

/// Creates, updates or deletes plans and applications (the caller picks which changes, so that
/// deletes can run after the tenants that stop referencing them).
pub async fn apply_global(conn: &mut PgConnection, changes: &[&Change], commit: Option<&str>) -> Result<()> {
    let of = |kind: &str, action: Action| -> Vec<&Change> {
        changes.iter().copied().filter(|c| c.resource.kind() == kind && c.action == action).collect()
    };
    let upserts = of("plan", Action::Create).into_iter().chain(of("plan", Action::Update));
    for c in upserts {
        sqlx::query(
            "INSERT INTO plans (id, name, display_name, flags, budget, managed_by, applied_hash, applied_commit, source_file)
             VALUES ($1, $2, $3, $4, NULLIF($5, 'null'::jsonb), 'git', $6, $7, $8)
             ON CONFLICT (name) DO UPDATE SET display_name = EXCLUDED.display_name, flags = EXCLUDED.flags,
                budget = EXCLUDED.budget, managed_by = 'git', applied_hash = EXCLUDED.applied_hash,
                applied_commit = EXCLUDED.applied_commit, source_file = EXCLUDED.source_file, updated_at = now()",
        )
        .bind(c.id.unwrap_or_else(Uuid::now_v7))
        .bind(c.resource.short_name())
        .bind(text(c, "displayName"))
        .bind(json(c, "flags"))
        .bind(json(c, "budget"))
        .bind(hash(c))
        .bind(commit)
        .bind(&c.source)
        .execute(&mut *conn)
        .await?;
    }
    let upserts = of("application", Action::Create).into_iter().chain(of("application", Action::Update));
    for c in upserts {
        sqlx::query(
            "INSERT INTO applications (id, name, display_name, owner, status, scopes, managed_by, applied_hash, applied_commit, source_file)
             VALUES ($1, $2, $3, $4, $5, ARRAY(SELECT jsonb_array_elements_text($6)), 'git', $7, $8, $9)
             ON CONFLICT (name) DO UPDATE SET display_name = EXCLUDED.display_name, owner = EXCLUDED.owner,
                status = EXCLUDED.status, scopes = EXCLUDED.scopes, managed_by = 'git', applied_hash = EXCLUDED.applied_hash,
                applied_commit = EXCLUDED.applied_commit, source_file = EXCLUDED.source_file, updated_at = now()",
        )
        .bind(c.id.unwrap_or_else(Uuid::now_v7))
        .bind(c.resource.short_name())
        .bind(text(c, "displayName"))
        .bind(text(c, "owner"))
        .bind(text(c, "status"))
        .bind(json(c, "scopes"))
        .bind(hash(c))
        .bind(commit)
        .bind(&c.source)
        .execute(&mut *conn)
        .await?;
    }
    let deleted_apps = ids_of(of("application", Action::Delete).into_iter());
    sqlx::query("DELETE FROM applications WHERE id = ANY($1)").bind(&deleted_apps).execute(&mut *conn).await?;
    let deleted_plans = ids_of(of("plan", Action::Delete).into_iter());
    sqlx::query("DELETE FROM plans WHERE id = ANY($1)").bind(&deleted_plans).execute(&mut *conn).await?;
    Ok(())
}

/// Column arrays for one UNNEST statement.
#[derive(Default)]
struct Columns {
    ids: Vec<Uuid>,
    tenant_ids: Vec<Uuid>,
    texts: [Vec<Option<String>>; 4],
    jsons: [Vec<Value>; 3],
    flags: Vec<bool>,
    hashes: Vec<Vec<u8>>,
}

/// Applies the changes and bookkeeping of a batch of tenants.
pub async fn apply_tenants(conn: &mut PgConnection, plans: &[&TenantPlan], commit: Option<&str>) -> Result<()> {
    let mut new_ids: HashMap<&str, Uuid> = HashMap::new();
    let (mut tenant_create, mut tenant_update) = (Columns::default(), Columns::default());
    let mut tenant_delete = Vec::new();
    let (mut user_create, mut user_update, mut flag_create, mut flag_update) =
        (Columns::default(), Columns::default(), Columns::default(), Columns::default());
    let mut row_delete = (Vec::new(), Vec::new());

    for plan in plans {
        let tenant_id = match plan.id {
            Some(id) => id,
            None => *new_ids.entry(plan.name.as_str()).or_insert_with(Uuid::now_v7),
        };
        for c in &plan.changes {
            match (&c.resource, c.action) {
                (Resource::Tenant { .. }, Action::Delete) => tenant_delete.push(tenant_id),
                (Resource::Tenant { name }, action) => {
                    let cols = if action == Action::Create { &mut tenant_create } else { &mut tenant_update };
                    cols.ids.push(tenant_id);
                    cols.texts[0].push(Some(name.clone()));
                    cols.texts[1].push(text(c, "displayName"));
                    cols.texts[2].push(text(c, "plan"));
                    cols.texts[3].push(text(c, "status"));
                    cols.jsons[0].push(json(c, "budget"));
                    cols.jsons[1].push(json(c, "sso"));
                    cols.jsons[2].push(json(c, "applications"));
                    cols.hashes.push(hash(c));
                }
                (Resource::User { .. }, Action::Delete) => row_delete.0.extend(c.id),
                (Resource::Flag { .. }, Action::Delete) => row_delete.1.extend(c.id),
                (Resource::User { email, .. }, action) => {
                    let cols = if action == Action::Create { &mut user_create } else { &mut user_update };
                    cols.ids.push(c.id.unwrap_or_else(Uuid::now_v7));
                    cols.tenant_ids.push(tenant_id);
                    cols.texts[0].push(Some(email.clone()));
                    cols.texts[1].push(text(c, "name"));
                    cols.texts[2].push(text(c, "role"));
                    cols.flags.push(json(c, "enabled").as_bool().unwrap_or(true));
                    cols.hashes.push(hash(c));
                }
                (Resource::Flag { key, .. }, action) => {
                    let cols = if action == Action::Create { &mut flag_create } else { &mut flag_update };
                    cols.ids.push(c.id.unwrap_or_else(Uuid::now_v7));
                    cols.tenant_ids.push(tenant_id);
                    cols.texts[0].push(Some(key.clone()));
                    cols.jsons[0].push(json(c, "value"));
                    cols.hashes.push(hash(c));
                }
                (Resource::Plan { .. } | Resource::Application { .. }, _) => {}
            }
        }
    }

    if !tenant_create.ids.is_empty() {
        sqlx::query(
            "INSERT INTO tenants (id, name, display_name, plan_id, status, budget, sso, applications, managed_by, applied_hash, applied_commit)
             SELECT t.id, t.name, t.display_name, p.id, t.status, NULLIF(t.budget, 'null'::jsonb), NULLIF(t.sso, 'null'::jsonb),
                    ARRAY(SELECT jsonb_array_elements_text(t.applications)), 'git', t.hash, $10
             FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::jsonb[], $7::jsonb[], $8::jsonb[], $9::bytea[])
                  AS t(id, name, display_name, plan, status, budget, sso, applications, hash)
             JOIN plans p ON p.name = t.plan",
        )
        .bind(&tenant_create.ids)
        .bind(&tenant_create.texts[0])
        .bind(&tenant_create.texts[1])
        .bind(&tenant_create.texts[2])
        .bind(&tenant_create.texts[3])
        .bind(&tenant_create.jsons[0])
        .bind(&tenant_create.jsons[1])
        .bind(&tenant_create.jsons[2])
        .bind(&tenant_create.hashes)
        .bind(commit)
        .execute(&mut *conn)
        .await?;
    }
    if !tenant_update.ids.is_empty() {
        sqlx::query(
            "UPDATE tenants SET display_name = t.display_name, plan_id = p.id, status = t.status,
                    budget = NULLIF(t.budget, 'null'::jsonb), sso = NULLIF(t.sso, 'null'::jsonb),
                    applications = ARRAY(SELECT jsonb_array_elements_text(t.applications)),
                    managed_by = 'git', applied_hash = t.hash, applied_commit = $9, updated_at = now()
             FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::jsonb[], $6::jsonb[], $7::jsonb[], $8::bytea[])
                  AS t(id, display_name, plan, status, budget, sso, applications, hash)
             JOIN plans p ON p.name = t.plan
             WHERE tenants.id = t.id",
        )
        .bind(&tenant_update.ids)
        .bind(&tenant_update.texts[1])
        .bind(&tenant_update.texts[2])
        .bind(&tenant_update.texts[3])
        .bind(&tenant_update.jsons[0])
        .bind(&tenant_update.jsons[1])
        .bind(&tenant_update.jsons[2])
        .bind(&tenant_update.hashes)
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
        .bind(&user_update.ids)
        .bind(&user_update.texts[0])
        .bind(&user_update.texts[1])
        .bind(&user_update.texts[2])
        .bind(&user_update.flags)
        .bind(&user_update.hashes)
        .bind(commit)
        .execute(&mut *conn)
        .await?;
    }
    if !user_create.ids.is_empty() {
        sqlx::query(
            "INSERT INTO users (id, tenant_id, email, name, role, status, managed_by, applied_hash, applied_commit)
             SELECT u.id, u.tenant_id, u.email, u.name, u.role, CASE WHEN u.enabled THEN 'invited' ELSE 'disabled' END,
                    'git', u.hash, $8
             FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::boolean[], $7::bytea[])
                  AS u(id, tenant_id, email, name, role, enabled, hash)",
        )
        .bind(&user_create.ids)
        .bind(&user_create.tenant_ids)
        .bind(&user_create.texts[0])
        .bind(&user_create.texts[1])
        .bind(&user_create.texts[2])
        .bind(&user_create.flags)
        .bind(&user_create.hashes)
        .bind(commit)
        .execute(&mut *conn)
        .await?;
    }
    for (cols, insert) in [(&flag_update, false), (&flag_create, true)] {
        if cols.ids.is_empty() {
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
            .bind(&cols.ids)
            .bind(&cols.tenant_ids)
            .bind(&cols.texts[0])
            .bind(&cols.jsons[0])
            .bind(&cols.hashes)
            .bind(commit)
            .execute(&mut *conn)
            .await?;
    }
    if !tenant_delete.is_empty() {
        sqlx::query("DELETE FROM tenants WHERE id = ANY($1)").bind(&tenant_delete).execute(&mut *conn).await?;
    }

    record(conn, plans, &new_ids, commit).await
}

/// Stores what Git declared for each tenant, so the next pass can skip it while nothing changes.
async fn record(
    conn: &mut PgConnection,
    plans: &[&TenantPlan],
    new_ids: &HashMap<&str, Uuid>,
    commit: Option<&str>,
) -> Result<()> {
    let mut cols = Columns::default();
    let (mut prune, mut converged) = (Vec::new(), Vec::new());
    for plan in plans {
        let Some(record) = &plan.record else { continue };
        let Some(id) = plan.id.or_else(|| new_ids.get(plan.name.as_str()).copied()) else {
            continue;
        };
        cols.ids.push(id);
        cols.hashes.push(record.tree_hash.to_vec());
        cols.flags.push(record.sync.self_heal);
        prune.push(record.sync.prune);
        converged.push(record.converged);
        cols.texts[0].push(Some(record.source.clone()));
    }
    if cols.ids.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "UPDATE tenants SET applied_tree_hash = r.tree_hash, self_heal = r.self_heal, prune = r.prune,
                source_file = r.source, applied_commit = $7,
                checked_revision = CASE WHEN r.converged THEN live_revision ELSE NULL END
         FROM UNNEST($1::uuid[], $2::bytea[], $3::boolean[], $4::boolean[], $5::text[], $6::boolean[])
              AS r(id, tree_hash, self_heal, prune, source, converged)
         WHERE tenants.id = r.id",
    )
    .bind(&cols.ids)
    .bind(&cols.hashes)
    .bind(&cols.flags)
    .bind(&prune)
    .bind(&cols.texts[0])
    .bind(&converged)
    .bind(commit)
    .execute(conn)
    .await?;
    Ok(())
}
