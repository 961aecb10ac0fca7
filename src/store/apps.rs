//! Applications and API keys: what the management API changes and what each replica's in-memory
//! access cache loads. Every change is audited in its own transaction; the `gatehouse_access`
//! triggers (migration 0003) tell every replica at commit.

use crate::model::{AppStatus, TenantStatus};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::{AuditEntry, Result, insert_audit};

/// The channel on which key, application, tenant and plan changes are announced.
pub const ACCESS_CHANNEL: &str = "gatehouse_access";

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationRecord {
    pub id: Uuid,
    pub name: String,
    pub display_name: String,
    pub owner: String,
    pub status: AppStatus,
    pub scopes: Vec<String>,
    pub managed_by: String,
    pub source_file: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyRecord {
    /// The public key id.
    #[sqlx(rename = "key_id")]
    pub id: String,
    pub application: String,
    pub name: Option<String>,
    pub scopes: Vec<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub rotated_from: Option<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// A key as the access cache holds it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct KeyRow {
    pub id: Uuid,
    pub key_id: String,
    pub application_id: Uuid,
    pub secret_hash: Vec<u8>,
    pub scopes: Vec<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// An application as the access cache holds it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AppRow {
    pub id: Uuid,
    pub name: String,
    pub status: AppStatus,
    pub scopes: Vec<String>,
}

/// A tenant's flag inputs as the access cache resolves them.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TenantFlagInputs {
    pub name: String,
    pub status: TenantStatus,
    pub applications: Vec<String>,
    pub plan_flags: Value,
    pub overrides: Value,
}

const APP_COLUMNS: &str =
    "id, name, display_name, owner, status, scopes, managed_by, source_file, created_at, updated_at";
const KEY_COLUMNS: &str = "k.key_id, a.name AS application, k.name, k.scopes, k.expires_at, k.revoked_at, \
     k.rotated_from, k.created_by, k.created_at, k.last_used_at";

pub async fn list_applications(pool: &PgPool) -> Result<Vec<ApplicationRecord>> {
    Ok(sqlx::query_as(&format!("SELECT {APP_COLUMNS} FROM applications ORDER BY name")).fetch_all(pool).await?)
}

pub async fn application(conn: &mut PgConnection, name: &str) -> Result<Option<ApplicationRecord>> {
    Ok(sqlx::query_as(&format!("SELECT {APP_COLUMNS} FROM applications WHERE name = $1"))
        .bind(name)
        .fetch_optional(conn)
        .await?)
}

/// A new application, registered through the API; `None` when the name is taken.
pub struct NewApplication<'a> {
    pub name: &'a str,
    pub display_name: &'a str,
    pub owner: &'a str,
    pub status: AppStatus,
    pub scopes: &'a [String],
}

pub async fn create_application(
    pool: &PgPool,
    app: NewApplication<'_>,
    audit: AuditEntry,
) -> Result<Option<ApplicationRecord>> {
    let mut tx = pool.begin().await?;
    let created: Option<ApplicationRecord> = sqlx::query_as(&format!(
        "INSERT INTO applications (id, name, display_name, owner, status, scopes, managed_by)
         VALUES ($1, $2, $3, $4, $5, $6, 'api') ON CONFLICT (name) DO NOTHING RETURNING {APP_COLUMNS}"
    ))
    .bind(Uuid::now_v7())
    .bind(app.name)
    .bind(app.display_name)
    .bind(app.owner)
    .bind(app.status)
    .bind(app.scopes)
    .fetch_optional(&mut *tx)
    .await?;
    if created.is_some() {
        insert_audit(&mut tx, &[audit]).await?;
    }
    tx.commit().await?;
    Ok(created)
}

/// Changes to an application; `None` fields stay as they are.
#[derive(Debug, Default)]
pub struct ApplicationChange {
    pub display_name: Option<String>,
    pub owner: Option<String>,
    pub status: Option<AppStatus>,
    pub scopes: Option<Vec<String>>,
}

pub async fn update_application(
    pool: &PgPool,
    id: Uuid,
    change: &ApplicationChange,
    audit: AuditEntry,
) -> Result<ApplicationRecord> {
    let mut tx = pool.begin().await?;
    let updated = sqlx::query_as(&format!(
        "UPDATE applications SET display_name = coalesce($2, display_name), owner = coalesce($3, owner),
             status = coalesce($4, status), scopes = coalesce($5, scopes), updated_at = now()
         WHERE id = $1 RETURNING {APP_COLUMNS}"
    ))
    .bind(id)
    .bind(&change.display_name)
    .bind(&change.owner)
    .bind(change.status)
    .bind(&change.scopes)
    .fetch_one(&mut *tx)
    .await?;
    insert_audit(&mut tx, &[audit]).await?;
    tx.commit().await?;
    Ok(updated)
}

pub async fn list_keys(pool: &PgPool, application: Uuid) -> Result<Vec<KeyRecord>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {KEY_COLUMNS} FROM api_keys k JOIN applications a ON a.id = k.application_id
         WHERE k.application_id = $1 ORDER BY k.created_at, k.key_id"
    ))
    .bind(application)
    .fetch_all(pool)
    .await?)
}

pub async fn key(conn: &mut PgConnection, application: Uuid, key_id: &str) -> Result<Option<KeyRecord>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {KEY_COLUMNS} FROM api_keys k JOIN applications a ON a.id = k.application_id
         WHERE k.application_id = $1 AND k.key_id = $2"
    ))
    .bind(application)
    .bind(key_id)
    .fetch_optional(conn)
    .await?)
}

/// A key to store: never the secret, only its hash.
pub struct NewKey<'a> {
    pub key_id: &'a str,
    pub application: Uuid,
    pub secret_hash: &'a [u8; 32],
    pub name: Option<&'a str>,
    pub scopes: &'a [String],
    pub expires_at: Option<DateTime<Utc>>,
    pub created_by: &'a str,
}

async fn insert_key(conn: &mut PgConnection, key: &NewKey<'_>, rotated_from: Option<&str>) -> Result<()> {
    sqlx::query(
        "INSERT INTO api_keys (id, key_id, application_id, secret_hash, name, scopes, expires_at, rotated_from, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(Uuid::now_v7())
    .bind(key.key_id)
    .bind(key.application)
    .bind(&key.secret_hash[..])
    .bind(key.name)
    .bind(key.scopes)
    .bind(key.expires_at)
    .bind(rotated_from)
    .bind(key.created_by)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn create_key(pool: &PgPool, key: NewKey<'_>, audit: AuditEntry) -> Result<KeyRecord> {
    let mut tx = pool.begin().await?;
    insert_key(&mut tx, &key, None).await?;
    insert_audit(&mut tx, &[audit]).await?;
    let created = self::key(&mut tx, key.application, key.key_id).await?;
    tx.commit().await?;
    created.ok_or_else(|| super::StoreError::Conflict(format!("key {}", key.key_id)))
}

/// Revokes a key now; `None` when the application has no such key. Revoking twice keeps the first time.
pub async fn revoke_key(
    pool: &PgPool,
    application: Uuid,
    key_id: &str,
    audit: AuditEntry,
) -> Result<Option<KeyRecord>> {
    let mut tx = pool.begin().await?;
    let found = sqlx::query(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE application_id = $1 AND key_id = $2",
    )
    .bind(application)
    .bind(key_id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if found == 0 {
        return Ok(None);
    }
    insert_audit(&mut tx, &[audit]).await?;
    let revoked = self::key(&mut tx, application, key_id).await?;
    tx.commit().await?;
    Ok(revoked)
}

/// Issues `replacement` with the old key's name and scopes, and lets the old key live until
/// `old_until` (or its own expiry, if sooner). `None` when the old key is unknown or revoked.
pub async fn rotate_key(
    pool: &PgPool,
    old_key_id: &str,
    replacement: NewKey<'_>,
    old_until: DateTime<Utc>,
    audit: AuditEntry,
) -> Result<Option<(KeyRecord, KeyRecord)>> {
    let mut tx = pool.begin().await?;
    let old: Option<(Option<String>, Vec<String>)> = sqlx::query_as(
        "UPDATE api_keys SET expires_at = least(coalesce(expires_at, $3), $3)
         WHERE application_id = $1 AND key_id = $2 AND revoked_at IS NULL
         RETURNING name, scopes",
    )
    .bind(replacement.application)
    .bind(old_key_id)
    .bind(old_until)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((name, scopes)) = old else { return Ok(None) };
    let new = NewKey { name: name.as_deref(), scopes: &scopes, ..replacement };
    insert_key(&mut tx, &new, Some(old_key_id)).await?;
    insert_audit(&mut tx, &[audit]).await?;
    let old = self::key(&mut tx, new.application, old_key_id).await?;
    let new = self::key(&mut tx, new.application, new.key_id).await?;
    tx.commit().await?;
    Ok(old.zip(new))
}

/// Keys for the access cache: all of them, or those with the given key ids.
pub async fn load_keys(pool: &PgPool, key_ids: Option<&[String]>) -> Result<Vec<KeyRow>> {
    Ok(sqlx::query_as(
        "SELECT id, key_id, application_id, secret_hash, scopes, expires_at, revoked_at FROM api_keys
         WHERE $1::text[] IS NULL OR key_id = ANY($1)",
    )
    .bind(key_ids)
    .fetch_all(pool)
    .await?)
}

/// Applications for the access cache: all of them, or those with the given ids.
pub async fn load_apps(pool: &PgPool, ids: Option<&[Uuid]>) -> Result<Vec<AppRow>> {
    Ok(sqlx::query_as("SELECT id, name, status, scopes FROM applications WHERE $1::uuid[] IS NULL OR id = ANY($1)")
        .bind(ids)
        .fetch_all(pool)
        .await?)
}

/// Which tenants a reload covers.
pub enum TenantSelection<'a> {
    All,
    Some { names: &'a [String], plans: &'a [Uuid] },
}

/// Flag inputs of tenants: their plan's defaults and their own overrides.
pub async fn load_tenant_flags(pool: &PgPool, selection: TenantSelection<'_>) -> Result<Vec<TenantFlagInputs>> {
    let (all, names, plans): (bool, &[String], &[Uuid]) = match selection {
        TenantSelection::All => (true, &[], &[]),
        TenantSelection::Some { names, plans } => (false, names, plans),
    };
    Ok(sqlx::query_as(
        "SELECT t.name, t.status, t.applications, p.flags AS plan_flags,
                coalesce(o.flags, '{}'::jsonb) AS overrides
         FROM tenants t
         JOIN plans p ON p.id = t.plan_id
         LEFT JOIN (SELECT tenant_id, jsonb_object_agg(key, value) AS flags FROM tenant_flags
                    WHERE $1 OR tenant_id IN (SELECT id FROM tenants WHERE name = ANY($2) OR plan_id = ANY($3))
                    GROUP BY tenant_id) o ON o.tenant_id = t.id
         WHERE $1 OR t.name = ANY($2) OR t.plan_id = ANY($3)",
    )
    .bind(all)
    .bind(names)
    .bind(plans)
    .fetch_all(pool)
    .await?)
}

/// Records when keys were last used, from each replica's in-memory counters. Never moves a time back.
pub async fn record_key_use(pool: &PgPool, uses: &[(Uuid, DateTime<Utc>)]) -> Result<()> {
    if uses.is_empty() {
        return Ok(());
    }
    let (ids, times): (Vec<Uuid>, Vec<DateTime<Utc>>) = uses.iter().copied().unzip();
    sqlx::query(
        "UPDATE api_keys k SET last_used_at = greatest(k.last_used_at, u.at)
         FROM UNNEST($1::uuid[], $2::timestamptz[]) AS u(id, at) WHERE k.id = u.id",
    )
    .bind(&ids)
    .bind(&times)
    .execute(pool)
    .await?;
    Ok(())
}

/// Audits outside any other change (denied requests).
pub async fn audit(pool: &PgPool, entry: AuditEntry) -> Result<()> {
    let mut conn = pool.acquire().await?;
    insert_audit(&mut conn, &[entry]).await
}
