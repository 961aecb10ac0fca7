//! `gatehouse audit verify` (issue 13.2): walks every chain of the audit log in sequence order
//! (a page at a time), recomputes every row's hash, checks the signed checkpoints (their chain of
//! signatures, their signatures against the keys the operator trusts, their copies in a directory)
//! and that every row they signed is still there as it was; and counts the rows that have no place
//! in any chain. Every problem is named: which row, which chain and place, what happened to it.

use std::collections::HashMap;
use std::path::Path;

use ed25519_dalek::VerifyingKey;
use sqlx::PgPool;

use super::checkpoint::{self, Body};
use crate::store::Result;
use crate::store::audit_chain::{self as db, CheckpointRow};
use crate::store::audit_retention::Dropped;
use crate::store::chain::{CHAINS, Content, Link, Walk, row_hash};

/// Rows read per query.
const PAGE: i64 = 5000;

/// What `verify` found.
#[derive(Debug, Default)]
pub struct Report {
    pub rows: u64,
    pub checkpoints: usize,
    /// Problems: the log is not as it was written.
    pub findings: Vec<String>,
    /// Things worth knowing that are not problems.
    pub notes: Vec<String>,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }
}

/// Verifies the log; `keys` are the public keys trusted to have signed checkpoints, `dir` where
/// checkpoint files were written, `retention` the audit retention serve runs with.
pub async fn verify(
    pool: &PgPool,
    keys: &[VerifyingKey],
    dir: Option<&Path>,
    retention: chrono::TimeDelta,
) -> Result<Report> {
    // One snapshot for the whole walk: rows written (or months dropped) while it runs are not
    // mistaken for rows inserted past a head, or deleted.
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await?;
    let conn = &mut *tx;
    let mut report = Report::default();
    let checkpoints = db::checkpoints(conn).await?;
    report.checkpoints = checkpoints.len();
    if checkpoints.is_empty() && !keys.is_empty() {
        report.findings.push(
            "there is no checkpoint, though --public-key says the log is signed: the checkpoints were deleted (or serve never had the signing key)"
                .into(),
        );
    }
    let mut signed = check_checkpoints(&checkpoints, keys, &mut report);
    if let Some(dir) = dir {
        check_files(dir, &checkpoints, &mut report);
    }

    // Where retention ended each chain: the walk starts after it, and what checkpoints signed
    // before it is gone by design. Retention is evidence too (ADR 0014): its records must be those
    // the last checkpoint signed, agree with the months that exist and the retention period, and
    // leave nothing at or below where they say each chain ended.
    let dropped = crate::store::audit_retention::dropped(conn).await?;
    check_retention_records(conn, &dropped, &checkpoints, !keys.is_empty(), retention, &mut report).await?;
    let mut anchors: HashMap<i16, (i64, Vec<u8>)> = HashMap::new();
    for anchor in dropped.iter().flat_map(|d| d.anchors.0.iter()) {
        let hash = hex::decode(&anchor.hash).unwrap_or_default();
        if anchors.get(&anchor.chain).is_none_or(|(seq, _)| *seq < anchor.seq) {
            anchors.insert(anchor.chain, (anchor.seq, hash));
        }
    }
    let mut anchored: Vec<_> = anchors.iter().map(|(chain, (seq, _))| (*chain, *seq)).collect();
    anchored.sort_unstable();
    for (chain, seq) in anchored {
        let left = db::rows_at_or_below(conn, chain, seq).await?;
        if left > 0 {
            report.findings.push(format!(
                "chain {chain}: {left} rows at or below seq {seq}, where retention says the chain ended, are still in the log (the retention record is false)"
            ));
        }
    }
    signed.retain(|(chain, seq), _| anchors.get(chain).is_none_or(|(anchor, _)| seq > anchor));
    if let Some(last) = dropped.last() {
        let rows: i64 = dropped.iter().map(|d| d.rows).sum();
        report.notes.push(format!(
            "retention dropped {} months ({rows} rows) up to {}; each chain is checked from where they ended",
            dropped.len(),
            last.until
        ));
    }
    let heads: HashMap<i16, db::ChainHead> = db::heads(conn).await?.into_iter().map(|h| (h.chain, h)).collect();
    for chain in 0..CHAINS {
        let start = anchors.get(&chain).cloned();
        let mut after = start.as_ref().map_or(0, |(seq, _)| *seq);
        let mut walk = Walk::new(chain, start);
        loop {
            let page = db::chain_page(conn, chain, after, PAGE).await?;
            for row in &page {
                if let Some((hash, id)) = signed.remove(&(chain, row.seq))
                    && hex::encode(&row.hash) != hash
                {
                    report.findings.push(format!(
                        "chain {chain} seq {}: row {} is not the row checkpoint {id} signed (the chain was rewritten)",
                        row.seq,
                        label(row)
                    ));
                }
                let hashed_from = heads.get(&chain).map_or(1, |h| h.recorded_hashed_from);
                walk.push(link(row, row.seq >= hashed_from));
            }
            match page.last() {
                Some(last) if page.len() as i64 == PAGE => after = last.seq,
                _ => break,
            }
        }
        report.rows += walk.rows;
        report.findings.extend(walk.findings.iter().map(ToString::to_string));
        let last = walk.head().cloned().unwrap_or((0, crate::store::chain::GENESIS.to_vec()));
        match heads.get(&chain).map(|h| (&h.seq, &h.hash)) {
            Some((seq, _)) if *seq > last.0 => report.findings.push(if *seq == last.0 + 1 {
                format!("chain {chain} seq {seq}: the last row was deleted")
            } else {
                format!("chain {chain} seq {}–{seq}: the last {} rows were deleted", last.0 + 1, seq - last.0)
            }),
            Some((seq, _)) if *seq < last.0 => report.findings.push(format!(
                "chain {chain} seq {}–{}: rows past the chain's head (inserted)",
                seq + 1,
                last.0
            )),
            Some((_, hash)) if *hash != last.1 => {
                report.findings.push(format!("chain {chain}: the head does not match the last row (one was changed)"))
            }
            Some(_) => {}
            None => report.findings.push(format!("chain {chain}: its head is missing")),
        }
    }
    let mut missing: Vec<_> = signed.into_iter().collect();
    missing.sort();
    for ((chain, seq), (_, id)) in missing {
        report.findings.push(format!("chain {chain} seq {seq}: the row checkpoint {id} signed is missing (deleted)"));
    }

    // A page ends at a sequence number: a second row claiming a place a page ended on would not be
    // read, so places held twice are counted on their own.
    for (chain, seq, rows) in db::doubled(conn).await? {
        report.findings.push(format!("chain {chain} seq {seq}: {rows} rows claim this place (inserted)"));
    }
    let unchained = db::unchained(conn).await?;
    let legacy_dropped: i64 = dropped.iter().map(|d| d.legacy_rows).sum();
    if unchained.legacy_found + legacy_dropped != unchained.legacy_recorded {
        report.findings.push(format!(
            "{} rows predate the chains (and retention dropped {legacy_dropped}), but {} were recorded when they began: rows were inserted or deleted among them",
            unchained.legacy_found, unchained.legacy_recorded
        ));
    } else if unchained.legacy_recorded > 0 {
        report
            .notes
            .push(format!("{} rows predate the chains (written before migration 0015)", unchained.legacy_found));
    }
    for (id, at, action) in &unchained.inserted {
        report.findings.push(format!("row {id} ({action} at {at}) has no place in any chain (inserted)"));
    }
    Ok(report)
}

/// Checks each checkpoint's body, its link to the one before and its signature; returns the rows
/// they signed: (chain, seq) → (hash, checkpoint id).
fn check_checkpoints(
    checkpoints: &[CheckpointRow],
    keys: &[VerifyingKey],
    report: &mut Report,
) -> HashMap<(i16, i64), (String, uuid::Uuid)> {
    let mut signed = HashMap::new();
    let mut previous: Option<String> = None;
    for row in checkpoints {
        let body: Body = match serde_json::from_str(&row.body) {
            Ok(body) => body,
            Err(error) => {
                report.findings.push(format!("checkpoint {}: its body cannot be read ({error}): edited", row.id));
                previous = Some(hex::encode(&row.signature));
                continue;
            }
        };
        if body.previous != previous {
            report.findings.push(format!(
                "checkpoint {} does not follow the checkpoint before it (one was deleted or edited)",
                row.id
            ));
        }
        if !keys.is_empty() && !checkpoint::signed_by(row, keys) {
            report.findings.push(format!(
                "checkpoint {}: its signature is not valid for any trusted key (key {}): edited or forged",
                row.id, row.key_id
            ));
        }
        for head in body.heads.into_iter().filter(|h| h.seq > 0) {
            signed.insert((head.chain, head.seq), (head.hash, row.id));
        }
        previous = Some(hex::encode(&row.signature));
    }
    if keys.is_empty() && !checkpoints.is_empty() {
        report.notes.push("checkpoint signatures were not checked: pass --public-key with the key you trust".into());
    }
    report.notes.extend(checkpoints.last().map(|c| format!("last checkpoint {} at {}", c.id, c.created_at)));
    signed
}

/// Compares the checkpoint files in `dir` with the database's.
fn check_files(dir: &Path, checkpoints: &[CheckpointRow], report: &mut Report) {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) => {
            report.findings.push(format!("cannot read the checkpoint directory {}: {error}", dir.display()));
            return;
        }
    };
    let stored: HashMap<&str, &CheckpointRow> = checkpoints.iter().map(|c| (c.body.as_str(), c)).collect();
    let mut copied = std::collections::HashSet::new();
    let mut files = 0;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("checkpoint-") || !name.ends_with(".json") {
            continue;
        }
        files += 1;
        let file: Option<checkpoint::File> =
            std::fs::read(entry.path()).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok());
        let Some(file) = file else {
            report.findings.push(format!("checkpoint file {name} cannot be read"));
            continue;
        };
        if let Some(row) = stored.get(file.body.as_str()) {
            copied.insert(row.id);
        }
        match stored.get(file.body.as_str()) {
            Some(row) if hex::encode(&row.signature) == file.signature => {}
            Some(row) => report.findings.push(format!("checkpoint {}: its signature differs from file {name}", row.id)),
            None => report.findings.push(format!(
                "checkpoint file {name} is not in the database (the checkpoint was deleted or edited there)"
            )),
        }
    }
    for row in checkpoints.iter().filter(|c| !copied.contains(&c.id)) {
        report.findings.push(format!(
            "checkpoint {} has no file {} in {} (the copy was deleted)",
            row.id,
            checkpoint::file_name(row),
            dir.display()
        ));
    }
    report.notes.push(format!("{files} checkpoint files in {}", dir.display()));
}

/// The checks of the retention records besides their anchors: signed by the last checkpoint, their
/// month gone, ended within the month they name, dropped no sooner than their retention allowed,
/// under no shorter retention than `retention`.
async fn check_retention_records(
    conn: &mut sqlx::PgConnection,
    dropped: &[Dropped],
    checkpoints: &[CheckpointRow],
    signed_log: bool,
    retention: chrono::TimeDelta,
    report: &mut Report,
) -> Result<()> {
    let digest = checkpoint::retention_digest(dropped);
    match checkpoints.last() {
        Some(last) => {
            let signed = serde_json::from_str::<Body>(&last.body).ok().and_then(|body| body.retention);
            if signed != digest {
                report.findings.push(format!(
                    "the {} retention records are not those checkpoint {} signed: one was inserted, edited or deleted (or a month was dropped without the signing key)",
                    dropped.len(),
                    last.id
                ));
            }
        }
        // With keys the log is signed: retention records no checkpoint signed were made or kept
        // without the key, or the checkpoints were deleted with them.
        None if !dropped.is_empty() && signed_log => report.findings.push(format!(
            "{} retention records, but no checkpoint signs them (the checkpoints were deleted, or months were dropped without the signing key)",
            dropped.len()
        )),
        None if !dropped.is_empty() => {
            report.notes.push("retention records were not signed: there are no checkpoints".into());
        }
        None => {}
    }
    for record in dropped {
        let name = &record.partition;
        if db::table_exists(conn, name).await? {
            report.findings.push(format!("retention record {name}: the month it says was dropped is still in the log"));
        }
        if crate::store::audit_retention::month_end(name) != Some(record.until) {
            report.findings.push(format!(
                "retention record {name}: it says the month ended at {}, which is not the end of {name}",
                record.until
            ));
        }
        if record.until + chrono::TimeDelta::days(record.kept_for_days) > record.dropped_at {
            report.findings.push(format!(
                "retention record {name}: dropped at {}, before its {} days of retention had passed",
                record.dropped_at, record.kept_for_days
            ));
        }
        if record.kept_for_days < retention.num_days() {
            report.findings.push(format!(
                "retention record {name}: dropped under a retention of {} days, shorter than the {} days configured",
                record.kept_for_days,
                retention.num_days()
            ));
        }
    }
    Ok(())
}

fn link(row: &db::ChainRow, recorded_hashed: bool) -> Link {
    let content = Content {
        id: row.id,
        occurred_at_micros: row.occurred_at.timestamp_micros(),
        actor: &row.actor,
        actor_type: &row.actor_type,
        action: &row.action,
        resource: &row.resource,
        tenant: row.tenant.as_deref(),
        outcome: &row.outcome,
        application: row.application.as_deref(),
        event_id: row.event_id.as_deref(),
        metadata: &row.metadata,
        recorded_at_micros: recorded_hashed.then(|| row.recorded_at.timestamp_micros()),
    };
    Link {
        seq: row.seq,
        recomputed: row_hash(&row.prev_hash, &content),
        prev_hash: row.prev_hash.clone(),
        hash: row.hash.clone(),
        label: label(row),
    }
}

fn label(row: &db::ChainRow) -> String {
    format!("{} ({} by {} at {})", row.id, row.action, row.actor, row.occurred_at.format("%Y-%m-%d %H:%M:%S%.6f UTC"))
}
