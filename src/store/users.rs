//! Tenant users administered through the API (issue 12): invited, listed a page at a time, re-roled,
//! disabled, enabled, deleted. Each change runs with the tenant's row locked (`tenants::lock`), so
//! the last-owner rule sees every concurrent change of the tenant's owners: of two demotions of the
//! last two owners, the second waits for the first and is then refused. The triggers of migration
//! 0004 end the sessions a change must end, in the same transaction.

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::{AuditEntry, Result, Rule, StoreError, insert_audit, rule};
use crate::model::{AccountStatus, Role};

/// A user's account as an admin sees it: never a credential.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantUser {
    #[serde(skip)]
    pub id: Uuid,
    pub email: String,
    pub name: Option<String>,
    pub role: Role,
    pub status: AccountStatus,
    pub activated_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Whether the user has a confirmed second factor.
    pub mfa: bool,
    pub live_sessions: i64,
}

/// A user as the admin API shows it, with who owns its declaration.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserRecord {
    #[serde(flatten)]
    #[sqlx(flatten)]
    pub user: TenantUser,
    /// `git` (declared in the tenant's file) or `api`.
    pub managed_by: String,
}

impl UserRecord {
    /// The tag of what an update can change: not the live session count or MFA, which move
    /// without anyone editing the user (a sign-in must not turn a correct `If-Match` stale).
    pub fn etag(&self) -> String {
        let u = &self.user;
        super::etag(&(&u.email, &u.name, u.role, u.status, u.activated_at, &self.managed_by))
    }
}

const RECORD: &str = "SELECT u.id, u.email, u.name, u.role, u.status, u.activated_at,
        EXISTS (SELECT 1 FROM totp_credentials p WHERE p.user_id = u.id AND p.confirmed_at IS NOT NULL) AS mfa,
        (SELECT count(*) FROM sessions s WHERE s.user_id = u.id AND s.revoked_at IS NULL AND s.expires_at > now()) AS live_sessions,
        u.managed_by
   FROM users u";

/// Inserts a user `invited` (the mail worker sends the invitation after commit). An email is one
/// person across the platform: one that exists anywhere is a 409 (`email_taken` in this tenant,
/// `email_unavailable` elsewhere).
pub async fn insert_invited(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    email: &str,
    name: Option<&str>,
    role: Role,
    by: Option<Uuid>,
) -> Result<Uuid> {
    // An address in a domain another tenant verified for its own sign-in belongs to that tenant:
    // nobody else may take it (issue 25.10).
    let claimed: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM tenant_idp_domains d JOIN tenant_idps p ON p.tenant_id = d.tenant_id
                         WHERE d.domain = lower(split_part($1, '@', 2)) AND d.tenant_id <> $2 AND p.state <> 'draft')",
    )
    .bind(email)
    .bind(tenant_id)
    .fetch_one(&mut *conn)
    .await?;
    if claimed {
        return Err(unavailable(email));
    }
    let id = Uuid::now_v7();
    let inserted = sqlx::query(
        "INSERT INTO users (id, tenant_id, email, name, role, status, managed_by, lineage)
         VALUES ($1, $2, $3, $4, $5, 'invited', 'api',
                 coalesce((SELECT lineage || id FROM users WHERE id = $6), '{}')) ON CONFLICT (email) DO NOTHING",
    )
    .bind(id)
    .bind(tenant_id)
    .bind(email)
    .bind(name)
    .bind(role)
    .bind(by)
    .execute(&mut *conn)
    .await?;
    if inserted.rows_affected() == 0 {
        let here: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users WHERE email = $1 AND tenant_id = $2)")
            .bind(email)
            .bind(tenant_id)
            .fetch_one(&mut *conn)
            .await?;
        if here {
            return Err(rule(Rule::Conflict, "email_taken", format!("{email} is already a user of this tenant")));
        }
        return Err(unavailable(email));
    }
    Ok(id)
}

/// The rule `insert_invited` keeps, checked without inserting (an invitation written back to Git is
/// checked before it is committed): the address is nobody's yet, and in no domain another tenant
/// verified.
pub async fn check_invitable(conn: &mut PgConnection, tenant_id: Uuid, email: &str) -> Result<()> {
    let (here, elsewhere): (bool, bool) = sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM users WHERE email = $1 AND tenant_id = $2),
                EXISTS (SELECT 1 FROM users WHERE email = $1 AND tenant_id <> $2)
                OR EXISTS (SELECT 1 FROM tenant_idp_domains d JOIN tenant_idps p ON p.tenant_id = d.tenant_id
                            WHERE d.domain = lower(split_part($1, '@', 2)) AND d.tenant_id <> $2 AND p.state <> 'draft')",
    )
    .bind(email)
    .bind(tenant_id)
    .fetch_one(&mut *conn)
    .await?;
    if here {
        return Err(rule(Rule::Conflict, "email_taken", format!("{email} is already a user of this tenant")));
    }
    if elsewhere {
        return Err(unavailable(email));
    }
    Ok(())
}

/// The refusal of an address another tenant has, as a user or by its verified sign-in domain: one
/// answer for both that names neither the user nor the tenant (issue 25.10).
fn unavailable(email: &str) -> StoreError {
    rule(
        Rule::Conflict,
        "email_unavailable",
        format!(
            "{email} cannot join this tenant: the address is in use on the platform or belongs to another organisation's sign-in"
        ),
    )
}

/// Invites a user into the locked tenant and returns it; `by` is the tenant user who invites (their
/// lineage and they become the new user's).
pub async fn invite(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    email: &str,
    name: Option<&str>,
    role: Role,
    by: Option<Uuid>,
    audit: &[AuditEntry],
) -> Result<UserRecord> {
    let id = insert_invited(conn, tenant_id, email, name, role, by).await?;
    insert_audit(conn, audit).await?;
    Ok(sqlx::query_as(&format!("{RECORD} WHERE u.id = $1")).bind(id).fetch_one(&mut *conn).await?)
}

/// Which users a list shows, and from where.
#[derive(Debug, Default)]
pub struct UserFilter<'a> {
    pub role: Option<Role>,
    pub status: Option<AccountStatus>,
    pub email_prefix: Option<&'a str>,
    /// The last email of the previous page.
    pub after: Option<&'a str>,
    pub limit: i64,
}

/// One page of the users of tenant `tenant_id`, in email order (only the filters given are in the
/// statement, so it is a range of the `(tenant_id, email)` index).
pub async fn list(pool: &PgPool, tenant_id: Uuid, filter: &UserFilter<'_>) -> Result<Vec<UserRecord>> {
    let mut query = sqlx::QueryBuilder::new(RECORD);
    query.push(" WHERE u.tenant_id = ").push_bind(tenant_id);
    if let Some(after) = filter.after {
        query.push(" AND u.email COLLATE \"C\" > ").push_bind(after);
    }
    if let Some(prefix) = filter.email_prefix {
        query.push(" AND u.email COLLATE \"C\" >= ").push_bind(prefix);
        query.push(" AND u.email COLLATE \"C\" < ").push_bind(format!("{prefix}\u{10ffff}"));
    }
    if let Some(role) = filter.role {
        query.push(" AND u.role = ").push_bind(role);
    }
    if let Some(status) = filter.status {
        query.push(" AND u.status = ").push_bind(status);
    }
    query.push(" ORDER BY u.email COLLATE \"C\" LIMIT ").push_bind(filter.limit);
    Ok(query.build_query_as().fetch_all(pool).await?)
}

/// Whether tenant `tenant` (by name) has a user `email` (any status).
pub async fn exists(pool: &PgPool, tenant: &str, email: &str) -> Result<bool> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM users u JOIN tenants t ON t.id = u.tenant_id
                         WHERE t.name = $1 AND u.email = lower($2))",
    )
    .bind(tenant)
    .bind(email)
    .fetch_one(pool)
    .await?)
}

pub async fn get(pool: &PgPool, tenant_id: Uuid, email: &str) -> Result<Option<UserRecord>> {
    Ok(sqlx::query_as(&format!("{RECORD} WHERE u.tenant_id = $1 AND u.email = $2"))
        .bind(tenant_id)
        .bind(email)
        .fetch_optional(pool)
        .await?)
}

/// The user `email` of the tenant whose row this transaction holds, locked.
pub async fn lock(conn: &mut PgConnection, tenant: &str, tenant_id: Uuid, email: &str) -> Result<UserRecord> {
    sqlx::query_as(&format!("{RECORD} WHERE u.tenant_id = $1 AND u.email = $2 FOR NO KEY UPDATE OF u"))
        .bind(tenant_id)
        .bind(email)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| rule(Rule::NotFound, "not_found", format!("tenant `{tenant}` has no user {email}")))
}

/// A change to a user; `None` leaves a field as it is. `status` is `active` or `disabled`.
#[derive(Debug, Default, Clone, Copy)]
pub struct UserChange<'a> {
    pub role: Option<Role>,
    pub name: Option<&'a str>,
    pub status: Option<AccountStatus>,
    /// The tenant user making the change: one who changes a role joins the user's lineage.
    pub by: Option<Uuid>,
}

/// Changes the locked user `current` of the locked tenant, refusing to leave the tenant without an
/// active owner.
pub async fn update(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    current: &UserRecord,
    change: UserChange<'_>,
    audit: &[AuditEntry],
) -> Result<UserRecord> {
    check_change(conn, tenant_id, current, change.role, change.status).await?;
    let user = &current.user;
    // Enabling never skips an invitation: a user who has not accepted theirs (no `activated_at`)
    // is `invited` again, not `active`, whether they were invited or disabled.
    sqlx::query(
        "UPDATE users SET role = coalesce($2, role), name = coalesce($3, name),
                status = CASE WHEN $4 = 'active' AND activated_at IS NULL THEN 'invited' ELSE coalesce($4, status) END,
                lineage = CASE WHEN $2 IS NOT NULL AND $2 IS DISTINCT FROM role
                               THEN lineage || coalesce((SELECT b.lineage || b.id FROM users b WHERE b.id = $5), '{}')
                               ELSE lineage END,
                updated_at = now()
          WHERE id = $1",
    )
    .bind(user.id)
    .bind(change.role)
    .bind(change.name)
    .bind(change.status)
    .bind(change.by)
    .execute(&mut *conn)
    .await?;
    insert_audit(conn, audit).await?;
    Ok(sqlx::query_as(&format!("{RECORD} WHERE u.id = $1")).bind(user.id).fetch_one(&mut *conn).await?)
}

/// The rule `update` keeps, checked without changing anything (a change written back to Git is
/// checked before it is committed): the tenant keeps an active owner.
pub async fn check_change(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    current: &UserRecord,
    role: Option<Role>,
    status: Option<AccountStatus>,
) -> Result<()> {
    let user = &current.user;
    let stays_owner = role.unwrap_or(user.role) == Role::Owner;
    let stays_active = status.map_or(user.status == AccountStatus::Active, |s| s == AccountStatus::Active);
    // An invited user asked to be active stays invited until they accept (see `update`).
    let stays_live = status.is_none_or(|s| s == AccountStatus::Active);
    if (is_active_owner(current) && !(stays_owner && stays_active))
        || (is_invited_owner(current) && !(stays_owner && stays_live))
    {
        refuse_last_owner(conn, tenant_id, current, "demote or disable").await?;
    }
    Ok(())
}

/// The rule `delete` keeps, checked without deleting.
pub async fn check_delete(conn: &mut PgConnection, tenant_id: Uuid, current: &UserRecord) -> Result<()> {
    if is_active_owner(current) || is_invited_owner(current) {
        refuse_last_owner(conn, tenant_id, current, "delete").await?;
    }
    Ok(())
}

/// Deletes the locked user (their sessions, tokens and credentials go with them), refusing to
/// delete the tenant's last active owner.
pub async fn delete(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    current: &UserRecord,
    audit: &[AuditEntry],
) -> Result<()> {
    check_delete(conn, tenant_id, current).await?;
    sqlx::query("DELETE FROM users WHERE id = $1").bind(current.user.id).execute(&mut *conn).await?;
    insert_audit(conn, audit).await
}

fn is_active_owner(record: &UserRecord) -> bool {
    record.user.role == Role::Owner && record.user.status == AccountStatus::Active
}

fn is_invited_owner(record: &UserRecord) -> bool {
    record.user.role == Role::Owner && record.user.status == AccountStatus::Invited
}

/// 409 `last_owner` unless the tenant keeps another owner like `current`: the last active owner
/// stays while no other is active; an invited owner (a new tenant's first, say) stays while no other
/// owner is active or invited, so a tenant is never left with nobody who owns it (issue 25.16).
/// The caller holds the tenant's row lock, which every change to its users takes first, so the
/// count cannot change under it.
async fn refuse_last_owner(conn: &mut PgConnection, tenant_id: Uuid, current: &UserRecord, verb: &str) -> Result<()> {
    let statuses: &[&str] = if is_active_owner(current) { &["active"] } else { &["active", "invited"] };
    let others: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM users WHERE tenant_id = $1 AND role = 'owner' AND status = ANY($3) AND id <> $2",
    )
    .bind(tenant_id)
    .bind(current.user.id)
    .bind(statuses)
    .fetch_one(&mut *conn)
    .await?;
    if others == 0 {
        let which = if is_active_owner(current) { "active owner" } else { "owner" };
        return Err(rule(
            Rule::Conflict,
            "last_owner",
            format!(
                "{} is the last {which} of the tenant; make another user owner first, then {verb} them",
                current.user.email
            ),
        ));
    }
    Ok(())
}

/// The language `user_id` reads mail in, if known.
pub async fn language(conn: &mut PgConnection, user_id: Uuid) -> Result<Option<String>> {
    Ok(sqlx::query_scalar("SELECT language FROM users WHERE id = $1")
        .bind(user_id)
        .fetch_optional(conn)
        .await?
        .flatten())
}

/// Remembers the language `user_id` reads mail in (`en`, `de`).
pub async fn set_language(conn: &mut PgConnection, user_id: Uuid, language: &str) -> Result<()> {
    sqlx::query("UPDATE users SET language = $2 WHERE id = $1 AND language IS DISTINCT FROM $2")
        .bind(user_id)
        .bind(language)
        .execute(conn)
        .await?;
    Ok(())
}
