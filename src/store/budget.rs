//! Budgets in the database (migration 0017): each tenant's limit (its own, else its plan's), its
//! usage this month (from `usage_daily`), overrides and their approvals, and the thresholds crossed.
//! A change to overrides notifies `gatehouse_budget`; stored usage notifies `gatehouse_usage` with
//! the tenants' ids (`store::usage::ingest`).

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::{AuditEntry, Result, insert_audit};

pub const BUDGET_CHANNEL: &str = "gatehouse_budget";
pub const USAGE_CHANNEL: &str = "gatehouse_usage";

/// Every tenant's budget as stored JSON (`None`: none applies).
pub async fn limits(pool: &PgPool) -> Result<Vec<(Uuid, String, Option<serde_json::Value>)>> {
    Ok(sqlx::query_as(
        "SELECT t.id, t.name, coalesce(t.budget, p.budget) FROM tenants t JOIN plans p ON p.id = t.plan_id",
    )
    .fetch_all(pool)
    .await?)
}

/// Usage since `month` (its first day) by tenant and type: of `tenants`, or of every tenant.
pub async fn month_usage(
    pool: &PgPool,
    tenants: Option<&[Uuid]>,
    month: NaiveDate,
) -> Result<Vec<(Uuid, String, i64)>> {
    Ok(sqlx::query_as(
        "SELECT tenant_id, type, least(sum(quantity), 9223372036854775807)::bigint FROM usage_daily
          WHERE day >= $1 AND ($2::uuid[] IS NULL OR tenant_id = ANY($2)) GROUP BY 1, 2",
    )
    .bind(month)
    .bind(tenants)
    .fetch_all(pool)
    .await?)
}

/// Overrides in force: (tenant, override, limit, expiry).
pub async fn granted(pool: &PgPool) -> Result<Vec<(Uuid, Uuid, i64, DateTime<Utc>)>> {
    Ok(sqlx::query_as(
        "SELECT tenant_id, id, new_limit, expires_at FROM budget_overrides
          WHERE granted_at IS NOT NULL AND expires_at > now()",
    )
    .fetch_all(pool)
    .await?)
}

/// An override as the API shows it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OverrideRecord {
    pub id: Uuid,
    /// `pending` (fewer than two approvals), `granted` or `expired`.
    pub status: String,
    /// The monthly limit while it is in force.
    pub limit: i64,
    pub reason: String,
    pub requested_by: String,
    pub requested_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub granted_at: Option<DateTime<Utc>>,
    /// Who approved it, in order.
    pub approvals: Vec<String>,
}

const RECORD: &str = "SELECT o.id,
        CASE WHEN o.expires_at <= now() THEN 'expired' WHEN o.granted_at IS NOT NULL THEN 'granted' ELSE 'pending' END
            AS status,
        o.new_limit AS limit, o.reason, o.requested_by, o.requested_at, o.expires_at, o.granted_at,
        coalesce((SELECT array_agg(a.approver ORDER BY a.approved_at) FROM budget_override_approvals a
                   WHERE a.override_id = o.id), '{}') AS approvals
   FROM budget_overrides o";

/// A tenant's overrides, newest first.
pub async fn overrides(pool: &PgPool, tenant_id: Uuid) -> Result<Vec<OverrideRecord>> {
    Ok(sqlx::query_as(&format!("{RECORD} WHERE o.tenant_id = $1 ORDER BY o.requested_at DESC LIMIT 100"))
        .bind(tenant_id)
        .fetch_all(pool)
        .await?)
}

/// One override of `tenant_id`.
pub async fn get_override(pool: &PgPool, tenant_id: Uuid, id: Uuid) -> Result<Option<OverrideRecord>> {
    Ok(sqlx::query_as(&format!("{RECORD} WHERE o.id = $1 AND o.tenant_id = $2"))
        .bind(id)
        .bind(tenant_id)
        .fetch_optional(pool)
        .await?)
}

/// A person who requests or approves an override: their name, and for a tenant user, their user
/// and the session they act from.
#[derive(Debug, Clone, Copy)]
pub struct Person<'a> {
    pub name: &'a str,
    pub user_id: Option<Uuid>,
    pub session_id: Option<Uuid>,
}

/// Records a request for an override of `tenant_id`'s budget, in force for `lasts` once granted;
/// a request not granted within 7 days lapses.
pub async fn request(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    new_limit: i64,
    reason: &str,
    requested_by: &Person<'_>,
    lasts: chrono::TimeDelta,
    audit: &[AuditEntry],
) -> Result<OverrideRecord> {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO budget_overrides (id, tenant_id, new_limit, reason, requested_by, lasts, expires_at, requester_lineage)
         VALUES ($1, $2, $3, $4, $5, $6, now() + interval '7 days',
                 coalesce((SELECT lineage || id FROM users WHERE id = $7), '{}'))",
    )
    .bind(id)
    .bind(tenant_id)
    .bind(new_limit)
    .bind(reason)
    .bind(requested_by.name)
    .bind(lasts)
    .bind(requested_by.user_id)
    .execute(&mut *conn)
    .await?;
    insert_audit(conn, audit).await?;
    Ok(sqlx::query_as(&format!("{RECORD} WHERE o.id = $1")).bind(id).fetch_one(&mut *conn).await?)
}

/// What a decision on `person`'s approval of an override rests on (`budget::approval::approve`).
pub struct ApprovalFacts {
    pub current: OverrideRecord,
    /// The requester's lineage.
    pub requester_lineage: Vec<Uuid>,
    /// The approvals so far: each approver and their lineage.
    pub approvals: Vec<(String, Vec<Uuid>)>,
    /// The approver's lineage, with their own id (empty for an operator).
    pub lineage: Vec<Uuid>,
    /// How the approver's session was authenticated (`amr`, `auth_time`); `None` for an operator.
    pub factor: Option<(Vec<String>, DateTime<Utc>)>,
}

/// Locks override `id` of `tenant_id` and reads what an approval by `person` is decided on (`None`:
/// no such override). The row is locked in a statement of its own, and only then are the approvals
/// read: a statement that both locked and read would read them as they were before the approval it
/// waited for committed, so two approvers at once would each count as the first (issue 25.5). With
/// the lock, approvals of one override happen one after the other, until the caller's transaction
/// ends.
pub async fn lock_for_approval(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    id: Uuid,
    person: &Person<'_>,
) -> Result<Option<ApprovalFacts>> {
    sqlx::query("SELECT 1 FROM budget_overrides WHERE id = $1 AND tenant_id = $2 FOR UPDATE")
        .bind(id)
        .bind(tenant_id)
        .fetch_optional(&mut *conn)
        .await?;
    let current: Option<OverrideRecord> = sqlx::query_as(&format!("{RECORD} WHERE o.id = $1 AND o.tenant_id = $2"))
        .bind(id)
        .bind(tenant_id)
        .fetch_optional(&mut *conn)
        .await?;
    let Some(current) = current else { return Ok(None) };
    let requester_lineage: Vec<Uuid> =
        sqlx::query_scalar("SELECT requester_lineage FROM budget_overrides WHERE id = $1")
            .bind(id)
            .fetch_one(&mut *conn)
            .await?;
    let approvals: Vec<(String, Vec<Uuid>)> =
        sqlx::query_as("SELECT approver, lineage FROM budget_override_approvals WHERE override_id = $1")
            .bind(id)
            .fetch_all(&mut *conn)
            .await?;
    let lineage: Vec<Uuid> = match person.user_id {
        Some(user) => sqlx::query_scalar("SELECT lineage || id FROM users WHERE id = $1")
            .bind(user)
            .fetch_optional(&mut *conn)
            .await?
            .unwrap_or_else(|| vec![user]),
        None => Vec::new(),
    };
    let factor = match person.session_id {
        // A session that ended meanwhile proves no factor (the approval is then refused).
        Some(session) => {
            sqlx::query_as("SELECT amr, auth_time FROM sessions WHERE id = $1")
                .bind(session)
                .fetch_optional(&mut *conn)
                .await?
        }
        None => None,
    };
    Ok(Some(ApprovalFacts { current, requester_lineage, approvals, lineage, factor }))
}

/// Adds `approver`'s approval (with their `lineage`) to override `id` of `tenant_id`, granting it
/// when `grants`, and writes the audit row `audit` makes of the result. It checks no rule: only
/// `budget::approval::approve` calls it, after the rules passed.
pub(crate) async fn add_approval(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    id: Uuid,
    (approver, lineage): (&str, &[Uuid]),
    grants: bool,
    audit: impl FnOnce(&OverrideRecord, bool) -> AuditEntry,
) -> Result<OverrideRecord> {
    sqlx::query("INSERT INTO budget_override_approvals (override_id, approver, lineage) VALUES ($1, $2, $3)")
        .bind(id)
        .bind(approver)
        .bind(lineage)
        .execute(&mut *conn)
        .await?;
    if grants {
        sqlx::query("UPDATE budget_overrides SET granted_at = now(), expires_at = now() + lasts WHERE id = $1")
            .bind(id)
            .execute(&mut *conn)
            .await?;
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(BUDGET_CHANNEL)
            .bind(tenant_id.to_string())
            .execute(&mut *conn)
            .await?;
    }
    let updated: OverrideRecord =
        sqlx::query_as(&format!("{RECORD} WHERE o.id = $1")).bind(id).fetch_one(&mut *conn).await?;
    insert_audit(conn, &[audit(&updated, grants)]).await?;
    Ok(updated)
}

/// Records that `tenant_id` crossed `thresholds` in `month`; returns those not recorded before
/// (each is recorded once, whichever replica sees it first).
pub async fn crossed(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    month: NaiveDate,
    thresholds: &[i16],
) -> Result<Vec<i16>> {
    Ok(sqlx::query_scalar(
        "INSERT INTO budget_alerts (tenant_id, month, threshold) SELECT $1, $2, t FROM UNNEST($3::smallint[]) AS t
         ON CONFLICT DO NOTHING RETURNING threshold",
    )
    .bind(tenant_id)
    .bind(month)
    .bind(thresholds)
    .fetch_all(conn)
    .await?)
}

/// The thresholds `tenant_id` crossed in `month`.
pub async fn alerts(pool: &PgPool, tenant_id: Uuid, month: NaiveDate) -> Result<Vec<i16>> {
    Ok(sqlx::query_scalar("SELECT threshold FROM budget_alerts WHERE tenant_id = $1 AND month = $2 ORDER BY threshold")
        .bind(tenant_id)
        .bind(month)
        .fetch_all(pool)
        .await?)
}

pub const WEBHOOK_CHANNEL: &str = "gatehouse_webhook";

/// The active owners of `tenant_id`, whom budget notices are mailed to.
pub async fn owners(conn: &mut PgConnection, tenant_id: Uuid) -> Result<Vec<(String, Option<String>)>> {
    Ok(sqlx::query_as(
        "SELECT email, language FROM users WHERE tenant_id = $1 AND role = 'owner' AND status = 'active' ORDER BY email",
    )
    .bind(tenant_id)
    .fetch_all(conn)
    .await?)
}

/// Queues a webhook; the workers wake at commit.
pub async fn enqueue_webhook(conn: &mut PgConnection, url: &str, event: &str, body: &str) -> Result<()> {
    sqlx::query("INSERT INTO webhook_outbox (id, url, event, body) VALUES ($1, $2, $3, $4)")
        .bind(Uuid::now_v7())
        .bind(url)
        .bind(event)
        .bind(body)
        .execute(&mut *conn)
        .await?;
    sqlx::query("SELECT pg_notify($1, '')").bind(WEBHOOK_CHANNEL).execute(conn).await?;
    Ok(())
}

/// A webhook to deliver.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DueWebhook {
    pub id: Uuid,
    pub url: String,
    pub event: String,
    pub body: String,
    pub attempts: i32,
    /// Until when the claim holds; also its token.
    #[sqlx(rename = "next_attempt_at")]
    pub claimed_until: chrono::DateTime<chrono::Utc>,
}

/// Claims the next due webhook for `lease`: it is this replica's to send until then (other
/// replicas skip it) and comes back by itself if this one stops before recording the outcome. The
/// claim commits at once: nothing stays open while it is sent. The row's new `next_attempt_at` is
/// the claim's token: the outcome is recorded only while it still holds.
pub async fn claim_webhook(pool: &PgPool, lease: std::time::Duration) -> Result<Option<DueWebhook>> {
    Ok(sqlx::query_as(
        "UPDATE webhook_outbox o SET next_attempt_at = now() + $1
           FROM (SELECT id FROM webhook_outbox
                  WHERE delivered_at IS NULL AND failed_at IS NULL AND next_attempt_at <= now()
                  ORDER BY next_attempt_at LIMIT 1 FOR UPDATE SKIP LOCKED) due
          WHERE o.id = due.id
      RETURNING o.id, o.url, o.event, o.body, o.attempts, o.next_attempt_at",
    )
    .bind(chrono::TimeDelta::from_std(lease).unwrap_or_default())
    .fetch_optional(pool)
    .await?)
}

/// Gives a claimed webhook back unsent (a stopping replica): due again at once, for any replica.
pub async fn release_webhook(pool: &PgPool, claimed: &DueWebhook) -> Result<()> {
    sqlx::query("UPDATE webhook_outbox SET next_attempt_at = now() WHERE id = $1 AND next_attempt_at = $2 AND delivered_at IS NULL AND failed_at IS NULL")
        .bind(claimed.id)
        .bind(claimed.claimed_until)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn webhook_delivered(pool: &PgPool, claimed: &DueWebhook) -> Result<()> {
    sqlx::query(
        "UPDATE webhook_outbox SET delivered_at = now(), attempts = attempts + 1, last_error = NULL
          WHERE id = $1 AND next_attempt_at = $2 AND delivered_at IS NULL",
    )
    .bind(claimed.id)
    .bind(claimed.claimed_until)
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn webhook_failed(
    pool: &PgPool,
    claimed: &DueWebhook,
    error: &str,
    delay: std::time::Duration,
    give_up: bool,
) -> Result<()> {
    sqlx::query(
        "UPDATE webhook_outbox SET attempts = attempts + 1, last_error = $3,
                next_attempt_at = now() + $4, failed_at = CASE WHEN $5 THEN now() END
          WHERE id = $1 AND next_attempt_at = $2 AND delivered_at IS NULL AND failed_at IS NULL",
    )
    .bind(claimed.id)
    .bind(claimed.claimed_until)
    .bind(crate::store::bounded(error, 1000).as_ref())
    .bind(chrono::TimeDelta::from_std(delay).unwrap_or_default())
    .bind(give_up)
    .execute(pool)
    .await?;
    Ok(())
}
