//! The audit log's chains and checkpoints as `audit::verify` and `audit::checkpoint` read and write
//! them (migration 0015). Writing rows into the chains is `audit::append`'s.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::Result;
use super::audit_retention::Dropped;

/// One row with its place in its chain.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ChainRow {
    pub id: Uuid,
    pub occurred_at: DateTime<Utc>,
    pub actor: String,
    pub actor_type: String,
    pub action: String,
    pub resource: String,
    pub tenant: Option<String>,
    pub outcome: String,
    pub application: Option<String>,
    pub event_id: Option<String>,
    pub metadata: serde_json::Value,
    pub seq: i64,
    pub prev_hash: Vec<u8>,
    pub hash: Vec<u8>,
    pub recorded_at: DateTime<Utc>,
}

/// The rows of `chain` after `after_seq`, in sequence order.
pub async fn chain_page(conn: &mut PgConnection, chain: i16, after_seq: i64, limit: i64) -> Result<Vec<ChainRow>> {
    Ok(sqlx::query_as(
        "SELECT id, occurred_at, actor, actor_type, action, resource, tenant, outcome, application, event_id,
                metadata, seq, coalesce(prev_hash, '') AS prev_hash, coalesce(hash, '') AS hash, recorded_at
           FROM audit_log WHERE chain = $1 AND seq > $2 ORDER BY seq LIMIT $3",
    )
    .bind(chain)
    .bind(after_seq)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?)
}

/// Places in a chain that more than one row claims: (chain, seq, rows).
pub async fn doubled(conn: &mut PgConnection) -> Result<Vec<(i16, i64, i64)>> {
    Ok(sqlx::query_as(
        "SELECT chain, seq, count(*) FROM audit_log WHERE chain IS NOT NULL GROUP BY chain, seq HAVING count(*) > 1
          ORDER BY chain, seq LIMIT 100",
    )
    .fetch_all(&mut *conn)
    .await?)
}

/// The head of a chain, and the first of its rows whose hash covers the time it was recorded.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ChainHead {
    pub chain: i16,
    pub seq: i64,
    pub hash: Vec<u8>,
    pub recorded_hashed_from: i64,
}

/// The head (last sequence number and hash) of every chain.
pub async fn heads(conn: &mut PgConnection) -> Result<Vec<ChainHead>> {
    Ok(sqlx::query_as("SELECT chain, seq, hash, recorded_hashed_from FROM audit_chain_heads ORDER BY chain")
        .fetch_all(&mut *conn)
        .await?)
}

/// How many rows of `chain` are at or below `seq`: where retention says the chain ended, none is left.
pub async fn rows_at_or_below(conn: &mut PgConnection, chain: i16, seq: i64) -> Result<i64> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE chain = $1 AND seq <= $2")
        .bind(chain)
        .bind(seq)
        .fetch_one(&mut *conn)
        .await?)
}

/// Whether the table `name` exists (a month of the log).
pub async fn table_exists(conn: &mut PgConnection, name: &str) -> Result<bool> {
    Ok(sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL").bind(name).fetch_one(&mut *conn).await?)
}

/// Rows with no place in any chain: those written before the chains began (how many there were
/// then, how many there are now), and any others (inserted around Gatehouse) by id.
#[derive(Debug, Clone)]
pub struct Unchained {
    pub legacy_recorded: i64,
    pub legacy_found: i64,
    pub inserted: Vec<(Uuid, DateTime<Utc>, String)>,
}

/// The most inserted rows named one by one.
const NAMED: i64 = 100;

pub async fn unchained(conn: &mut PgConnection) -> Result<Unchained> {
    let (started_at, legacy_recorded): (DateTime<Utc>, i64) =
        sqlx::query_as("SELECT started_at, legacy_rows FROM audit_chain_start").fetch_one(&mut *conn).await?;
    let legacy_found: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE chain IS NULL AND occurred_at < $1")
            .bind(started_at)
            .fetch_one(&mut *conn)
            .await?;
    let inserted = sqlx::query_as(
        "SELECT id, occurred_at, action FROM audit_log WHERE chain IS NULL AND occurred_at >= $1
          ORDER BY occurred_at, id LIMIT $2",
    )
    .bind(started_at)
    .bind(NAMED)
    .fetch_all(&mut *conn)
    .await?;
    Ok(Unchained { legacy_recorded, legacy_found, inserted })
}

/// A checkpoint as stored: the signed body text and its signature.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CheckpointRow {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    pub key_id: String,
    pub body: String,
    pub signature: Vec<u8>,
}

/// Every checkpoint, oldest first.
pub async fn checkpoints(conn: &mut PgConnection) -> Result<Vec<CheckpointRow>> {
    Ok(sqlx::query_as("SELECT id, created_at, key_id, body, signature FROM audit_checkpoints ORDER BY created_at, id")
        .fetch_all(&mut *conn)
        .await?)
}

/// The heads of every chain, the last checkpoint and every retention record, as a checkpoint signs
/// them.
pub type Sign<'a> =
    dyn Fn(&[(i16, i64, Vec<u8>)], Option<&CheckpointRow>, &[Dropped]) -> CheckpointRow + Send + Sync + 'a;

/// Runs `sign` on the heads, the last checkpoint and the retention records, and stores what it
/// returns, unless another replica is doing the same or the last checkpoint is younger than
/// `min_age` (`None` returned).
pub async fn checkpoint(pool: &PgPool, min_age: chrono::TimeDelta, sign: &Sign<'_>) -> Result<Option<CheckpointRow>> {
    let mut tx = pool.begin().await?;
    // One replica at a time; the others skip this round.
    let mine: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(hashtext('gatehouse.audit.checkpoint'))")
        .fetch_one(&mut *tx)
        .await?;
    if !mine {
        return Ok(None);
    }
    let last = last_checkpoint(&mut tx).await?;
    if last.as_ref().is_some_and(|l| Utc::now() - l.created_at < min_age) {
        return Ok(None);
    }
    let row = store_checkpoint(&mut tx, last, sign).await?;
    tx.commit().await?;
    Ok(Some(row))
}

/// Signs and stores a checkpoint inside the caller's transaction, waiting for a replica that is
/// writing one: retention signs its record this way, in the transaction that drops the month.
pub async fn checkpoint_in(conn: &mut PgConnection, sign: &Sign<'_>) -> Result<CheckpointRow> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('gatehouse.audit.checkpoint'))").execute(&mut *conn).await?;
    let last = last_checkpoint(conn).await?;
    store_checkpoint(conn, last, sign).await
}

async fn last_checkpoint(conn: &mut PgConnection) -> Result<Option<CheckpointRow>> {
    Ok(sqlx::query_as(
        "SELECT id, created_at, key_id, body, signature FROM audit_checkpoints ORDER BY created_at DESC, id DESC LIMIT 1",
    )
    .fetch_optional(&mut *conn)
    .await?)
}

async fn store_checkpoint(
    conn: &mut PgConnection,
    last: Option<CheckpointRow>,
    sign: &Sign<'_>,
) -> Result<CheckpointRow> {
    let heads: Vec<(i16, i64, Vec<u8>)> =
        sqlx::query_as("SELECT chain, seq, hash FROM audit_chain_heads ORDER BY chain").fetch_all(&mut *conn).await?;
    let retention = super::audit_retention::dropped(conn).await?;
    let row = sign(&heads, last.as_ref(), &retention);
    sqlx::query("INSERT INTO audit_checkpoints (id, created_at, key_id, body, signature) VALUES ($1, $2, $3, $4, $5)")
        .bind(row.id)
        .bind(row.created_at)
        .bind(&row.key_id)
        .bind(&row.body)
        .bind(&row.signature)
        .execute(&mut *conn)
        .await?;
    Ok(row)
}

/// The latest signed checkpoint, if any, read from the pool.
pub async fn latest_checkpoint(pool: &PgPool) -> Result<Option<CheckpointRow>> {
    let mut conn = pool.acquire().await?;
    last_checkpoint(&mut conn).await
}

/// The head of every chain, read from the pool.
pub async fn current_heads(pool: &PgPool) -> Result<Vec<ChainHead>> {
    let mut conn = pool.acquire().await?;
    heads(&mut conn).await
}
