//! The audit log's monthly partitions and its retention (issue 13.2, migration 0016): months are
//! created ahead of time, and a month whose end is older than the retention is dropped whole,
//! recording where each chain stood at its last row there, so that `verify` starts each chain after
//! it and shows where retention ended rather than a gap.

use chrono::{DateTime, Datelike, NaiveDate, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use super::audit_chain::{CheckpointRow, Sign};
use super::{AuditEntry, Result, insert_audit};

/// Creates the partitions of every month from `from` until `to`.
pub async fn ensure_partitions(pool: &PgPool, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<()> {
    sqlx::query("SELECT audit_log_ensure_partitions($1, $2)").bind(from).bind(to).execute(pool).await?;
    Ok(())
}

/// Where a chain stood at the last row of a dropped month.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Anchor {
    pub chain: i16,
    pub seq: i64,
    /// Hex.
    pub hash: String,
}

/// A month dropped by retention.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Dropped {
    pub partition: String,
    pub until: DateTime<Utc>,
    pub dropped_at: DateTime<Utc>,
    pub rows: i64,
    pub legacy_rows: i64,
    /// The retention the month was dropped under.
    pub kept_for_days: i64,
    pub anchors: sqlx::types::Json<Vec<Anchor>>,
}

/// Every month dropped so far, oldest first.
pub async fn dropped(conn: &mut sqlx::PgConnection) -> Result<Vec<Dropped>> {
    Ok(sqlx::query_as(
        "SELECT partition, until, dropped_at, rows, legacy_rows, kept_for_days, anchors FROM audit_retention
          ORDER BY until, partition",
    )
    .fetch_all(conn)
    .await?)
}

/// Makes sure the months from `keep` before `now` to two months after exist, and drops the months
/// that ended more than `keep` before `now`, one transaction each, with the audit row `audit` makes of each and, with
/// `sign`, the checkpoint that signs the record (ADR 0014: a record no checkpoint signed is a
/// finding of `verify`), handed to `copy` as soon as it commits. One replica at a time (the others
/// return at once). Returns the months dropped.
pub async fn apply(
    pool: &PgPool,
    keep: TimeDelta,
    now: DateTime<Utc>,
    sign: Option<&Sign<'_>>,
    copy: &(dyn Fn(&CheckpointRow) + Send + Sync),
    audit: &(dyn Fn(&Dropped) -> AuditEntry + Send + Sync),
) -> Result<Vec<Dropped>> {
    let mut lock = pool.acquire().await?;
    let mine: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext('gatehouse.audit.retention'))")
        .fetch_one(&mut *lock)
        .await?;
    if !mine {
        return Ok(Vec::new());
    }
    let result = apply_locked(pool, keep, now, sign, copy, audit).await;
    sqlx::query("SELECT pg_advisory_unlock(hashtext('gatehouse.audit.retention'))").execute(&mut *lock).await?;
    result
}

async fn apply_locked(
    pool: &PgPool,
    keep: TimeDelta,
    now: DateTime<Utc>,
    sign: Option<&Sign<'_>>,
    copy: &(dyn Fn(&CheckpointRow) + Send + Sync),
    audit: &(dyn Fn(&Dropped) -> AuditEntry + Send + Sync),
) -> Result<Vec<Dropped>> {
    let horizon = now - keep;
    ensure_partitions(pool, horizon.min(now), now + TimeDelta::days(62)).await?;
    let partitions: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
          WHERE i.inhparent = 'audit_log'::regclass ORDER BY c.relname",
    )
    .fetch_all(pool)
    .await?;
    let mut dropped = Vec::new();
    for partition in partitions {
        let Some(until) = month_end(&partition) else { continue };
        if until > horizon {
            continue;
        }
        let mut tx = pool.begin().await?;
        let anchors: Vec<Anchor> = sqlx::query_as(&format!(
            "SELECT DISTINCT ON (chain) chain, seq, encode(hash, 'hex') AS hash FROM {partition}
              WHERE chain IS NOT NULL ORDER BY chain, seq DESC"
        ))
        .fetch_all(&mut *tx)
        .await?;
        let (rows, legacy_rows): (i64, i64) =
            sqlx::query_as(&format!("SELECT count(*), count(*) FILTER (WHERE chain IS NULL) FROM {partition}"))
                .fetch_one(&mut *tx)
                .await?;
        let record: Dropped = sqlx::query_as(
            "INSERT INTO audit_retention (partition, until, rows, legacy_rows, kept_for_days, anchors)
             VALUES ($1, $2, $3, $4, $5, $6)
             RETURNING partition, until, dropped_at, rows, legacy_rows, kept_for_days, anchors",
        )
        .bind(&partition)
        .bind(until)
        .bind(rows)
        .bind(legacy_rows)
        .bind(keep.num_days())
        .bind(sqlx::types::Json(&anchors))
        .fetch_one(&mut *tx)
        .await?;
        let row = audit(&record);
        // The row first: it locks its chain's head before the DROP locks the whole log, as every
        // writer does, so the two orders never meet.
        insert_audit(&mut tx, &[row]).await?;
        sqlx::query(&format!("DROP TABLE {partition}")).execute(&mut *tx).await?;
        let checkpoint = match sign {
            Some(sign) => Some(super::audit_chain::checkpoint_in(&mut tx, sign).await?),
            None => None,
        };
        tx.commit().await?;
        // Copied at once: a later month that fails must not cost this one its copy.
        checkpoint.iter().for_each(copy);
        dropped.push(record);
    }
    Ok(dropped)
}

/// The end of the month a partition `audit_log_YYYYMM` holds (UTC); `None` for another name.
pub fn month_end(partition: &str) -> Option<DateTime<Utc>> {
    let digits = partition.strip_prefix("audit_log_")?;
    if digits.len() != 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (year, month) = (digits[..4].parse::<i32>().ok()?, digits[4..].parse::<u32>().ok()?);
    let first = NaiveDate::from_ymd_opt(year, month, 1)?;
    let next = if first.month() == 12 {
        NaiveDate::from_ymd_opt(year + 1, 1, 1)?
    } else {
        NaiveDate::from_ymd_opt(year, month + 1, 1)?
    };
    Some(next.and_hms_opt(0, 0, 0)?.and_utc())
}

#[cfg(test)]
mod tests {
    use super::month_end;

    #[test]
    fn a_partition_name_says_when_its_month_ends() {
        assert_eq!(month_end("audit_log_202511").map(|t| t.to_rfc3339()), Some("2025-12-01T00:00:00+00:00".into()));
        assert_eq!(month_end("audit_log_202512").map(|t| t.to_rfc3339()), Some("2026-01-01T00:00:00+00:00".into()));
        assert_eq!(month_end("audit_log_2025"), None);
        assert_eq!(month_end("audit_log_202513"), None);
        assert_eq!(month_end("other_202511"), None);
    }
}
