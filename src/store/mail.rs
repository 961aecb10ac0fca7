//! The email outbox: messages are written in the transaction that needs them (so a mail is sent if
//! and only if its change committed) and delivered by the mail worker, with retries.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::Result;

/// The channel the mail triggers of migration 0004 notify.
pub const MAIL_CHANNEL: &str = "gatehouse_mail";

pub struct NewMail<'a> {
    pub id: Uuid,
    pub recipient: &'a str,
    pub subject: &'a str,
    pub kind: &'a str,
    pub key_id: &'a str,
    pub body_sealed: &'a [u8],
}

pub async fn enqueue(conn: &mut PgConnection, mail: NewMail<'_>) -> Result<()> {
    sqlx::query(
        "INSERT INTO email_outbox (id, recipient, subject, kind, key_id, body_sealed) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(mail.id)
    .bind(mail.recipient)
    .bind(mail.subject)
    .bind(mail.kind)
    .bind(mail.key_id)
    .bind(mail.body_sealed)
    .execute(conn)
    .await?;
    Ok(())
}

/// A mail of the outbox: to whom, what, and how its delivery went.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OutboxRow {
    pub id: Uuid,
    pub recipient: String,
    pub subject: String,
    pub kind: String,
    #[serde(skip)]
    pub key_id: Option<String>,
    #[serde(skip)]
    pub body_sealed: Option<Vec<u8>>,
    pub created_at: DateTime<Utc>,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    pub failed_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

const OUTBOX: &str = "SELECT id, recipient, subject, kind, key_id, body_sealed, created_at, attempts, next_attempt_at,
        sent_at, failed_at, last_error FROM email_outbox";

/// Claims the next due message for `lease`: it is this replica's to send until then (other
/// replicas skip it) and comes back by itself if this one stops before recording the outcome. The
/// claim commits at once: nothing stays open while the mail is sent. The row's new
/// `next_attempt_at` is the claim's token: the outcome is recorded only while it still holds.
pub async fn claim_next(pool: &PgPool, lease: Duration) -> Result<Option<OutboxRow>> {
    Ok(sqlx::query_as(
        "UPDATE email_outbox o SET next_attempt_at = now() + make_interval(secs => $1)
           FROM (SELECT id FROM email_outbox
                  WHERE sent_at IS NULL AND failed_at IS NULL AND next_attempt_at <= now()
                  ORDER BY next_attempt_at LIMIT 1 FOR UPDATE SKIP LOCKED) due
          WHERE o.id = due.id
      RETURNING o.id, o.recipient, o.subject, o.kind, o.key_id, o.body_sealed, o.created_at, o.attempts,
                o.next_attempt_at, o.sent_at, o.failed_at, o.last_error",
    )
    .bind(lease.as_secs_f64())
    .fetch_optional(pool)
    .await?)
}

/// Gives a claimed message back unsent (a stopping replica): due again at once, for any replica.
pub async fn release(pool: &PgPool, claimed: &OutboxRow) -> Result<()> {
    sqlx::query("UPDATE email_outbox SET next_attempt_at = now() WHERE id = $1 AND next_attempt_at = $2 AND sent_at IS NULL AND failed_at IS NULL")
        .bind(claimed.id)
        .bind(claimed.next_attempt_at)
        .execute(pool)
        .await?;
    Ok(())
}

/// Delivered: the sealed body (it carries a token) is deleted.
pub async fn mark_sent(pool: &PgPool, claimed: &OutboxRow) -> Result<()> {
    sqlx::query("UPDATE email_outbox SET sent_at = now(), attempts = attempts + 1, body_sealed = NULL, last_error = NULL WHERE id = $1 AND next_attempt_at = $2 AND sent_at IS NULL")
        .bind(claimed.id)
        .bind(claimed.next_attempt_at)
        .execute(pool)
        .await?;
    Ok(())
}

/// Not delivered: try again after `delay`, or give up (the body is deleted) when `give_up`.
pub async fn mark_failed(
    pool: &PgPool,
    claimed: &OutboxRow,
    error: &str,
    delay: Duration,
    give_up: bool,
) -> Result<()> {
    sqlx::query(
        "UPDATE email_outbox SET attempts = attempts + 1, last_error = $3,
                next_attempt_at = now() + make_interval(secs => $4),
                failed_at = CASE WHEN $5 THEN now() END,
                body_sealed = CASE WHEN $5 THEN NULL ELSE body_sealed END
          WHERE id = $1 AND next_attempt_at = $2 AND sent_at IS NULL AND failed_at IS NULL",
    )
    .bind(claimed.id)
    .bind(claimed.next_attempt_at)
    .bind(error)
    .bind(delay.as_secs_f64())
    .bind(give_up)
    .execute(pool)
    .await?;
    Ok(())
}

/// The newest messages, for `gatehouse mail list`; `pending_only` leaves out delivered ones.
pub async fn list(pool: &PgPool, recipient: Option<&str>, pending_only: bool, limit: i64) -> Result<Vec<OutboxRow>> {
    Ok(sqlx::query_as(&format!(
        "{OUTBOX} WHERE ($1::text IS NULL OR recipient = $1) AND (NOT $2 OR (sent_at IS NULL AND failed_at IS NULL))
          ORDER BY created_at DESC, id DESC LIMIT $3"
    ))
    .bind(recipient)
    .bind(pending_only)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}
