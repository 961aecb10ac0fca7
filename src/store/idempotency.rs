//! `Idempotency-Key` on creates (issue 12.4): the first answer is kept 24 hours and a retry gets it
//! again. The key is claimed inside the create's own transaction, so a retry that arrives while the
//! first attempt runs waits on the key's row and then reads the committed answer; if the first
//! attempt rolled back, the retry makes the create itself.

use serde_json::Value;
use sqlx::{PgConnection, PgPool, Row};

use super::Result;

/// How long an answer is replayed.
pub const KEPT_FOR: chrono::TimeDelta = chrono::TimeDelta::hours(24);

/// One create's key: who asked (their audit identity), the key they sent and the hash of the
/// request (method, path and body).
pub struct Claim<'a> {
    pub actor: &'a str,
    pub key: &'a str,
    pub request_hash: &'a [u8],
}

/// What the key says about this request.
pub enum Claimed {
    /// A new key: go on with the create, then `answer`.
    New,
    /// A retry: the first answer.
    Replay { status: u16, body: Value },
    /// The same key with a different request.
    Mismatch,
}

/// Claims `claim.key` in the transaction of `conn`.
pub async fn claim(conn: &mut PgConnection, claim: &Claim<'_>) -> Result<Claimed> {
    let inserted = sqlx::query(
        "INSERT INTO idempotency_keys (actor, key, request_hash, status, body) VALUES ($1, $2, $3, 0, 'null')
         ON CONFLICT (actor, key) DO NOTHING",
    )
    .bind(claim.actor)
    .bind(claim.key)
    .bind(claim.request_hash)
    .execute(&mut *conn)
    .await?;
    if inserted.rows_affected() == 1 {
        return Ok(Claimed::New);
    }
    let row = sqlx::query(
        "SELECT request_hash, status, body, created_at FROM idempotency_keys WHERE actor = $1 AND key = $2",
    )
    .bind(claim.actor)
    .bind(claim.key)
    .fetch_one(&mut *conn)
    .await?;
    let created_at: chrono::DateTime<chrono::Utc> = row.get("created_at");
    if created_at < chrono::Utc::now() - KEPT_FOR {
        // Expired but not yet pruned: the key starts over.
        sqlx::query(
            "UPDATE idempotency_keys SET request_hash = $3, status = 0, body = 'null', created_at = now()
              WHERE actor = $1 AND key = $2",
        )
        .bind(claim.actor)
        .bind(claim.key)
        .bind(claim.request_hash)
        .execute(&mut *conn)
        .await?;
        return Ok(Claimed::New);
    }
    if row.get::<Vec<u8>, _>("request_hash") != claim.request_hash {
        return Ok(Claimed::Mismatch);
    }
    let status: i16 = row.get("status");
    Ok(Claimed::Replay { status: status as u16, body: row.get("body") })
}

/// Records the answer of the create that claimed the key, in its transaction.
pub async fn answer(conn: &mut PgConnection, claim: &Claim<'_>, status: u16, body: &Value) -> Result<()> {
    sqlx::query("UPDATE idempotency_keys SET status = $3, body = $4 WHERE actor = $1 AND key = $2")
        .bind(claim.actor)
        .bind(claim.key)
        .bind(status as i16)
        .bind(body)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Forgets answers older than `KEPT_FOR`.
pub async fn prune(pool: &PgPool) -> Result<u64> {
    Ok(sqlx::query("DELETE FROM idempotency_keys WHERE created_at < now() - $1::interval")
        .bind(KEPT_FOR)
        .execute(pool)
        .await?
        .rows_affected())
}
