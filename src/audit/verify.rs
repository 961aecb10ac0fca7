//! `gatehouse audit verify` (issue 13.2): walks every chain of the audit log in sequence order
//! (a page at a time), recomputes every row's hash, checks the signed checkpoints (their chain of
//! signatures, their signatures against the keys the operator trusts, their copies in a directory)
//! and that every row they signed is still there as it was; and counts the rows that have no place
//! in any chain. Every problem is named: which row, which chain and place, what happened to it.

use std::collections::HashMap;
use std::path::Path;

use ed25519_dalek::VerifyingKey;
use sqlx::PgPool;

use super::chain::{CHAINS, Content, Link, Walk, row_hash};
use super::checkpoint::{self, Body};
use crate::store::Result;
use crate::store::audit_chain::{self as db, CheckpointRow};

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
/// checkpoint files were written.
pub async fn verify(pool: &PgPool, keys: &[VerifyingKey], dir: Option<&Path>) -> Result<Report> {
    // One snapshot for the whole walk: rows written (or months dropped) while it runs are not
    // mistaken for rows inserted past a head, or deleted.
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await?;
    let conn = &mut *tx;
    let mut report = Report::default();
    let checkpoints = db::checkpoints(conn).await?;
    report.checkpoints = checkpoints.len();
    let mut signed = check_checkpoints(&checkpoints, keys, &mut report);
    if let Some(dir) = dir {
        check_files(dir, &checkpoints, &mut report);
    }

    // Where retention ended each chain: the walk starts after it, and what checkpoints signed
    // before it is gone by design.
    let dropped = crate::store::audit_retention::dropped(conn).await?;
    let mut anchors: HashMap<i16, (i64, Vec<u8>)> = HashMap::new();
    for anchor in dropped.iter().flat_map(|d| d.anchors.0.iter()) {
        let hash = hex::decode(&anchor.hash).unwrap_or_default();
        if anchors.get(&anchor.chain).is_none_or(|(seq, _)| *seq < anchor.seq) {
            anchors.insert(anchor.chain, (anchor.seq, hash));
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
    let heads: HashMap<i16, (i64, Vec<u8>)> =
        db::heads(conn).await?.into_iter().map(|(chain, seq, hash)| (chain, (seq, hash))).collect();
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
                walk.push(link(row));
            }
            match page.last() {
                Some(last) if page.len() as i64 == PAGE => after = last.seq,
                _ => break,
            }
        }
        report.rows += walk.rows;
        report.findings.extend(walk.findings.iter().map(ToString::to_string));
        let last = walk.head().cloned().unwrap_or((0, super::chain::GENESIS.to_vec()));
        match heads.get(&chain) {
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
        match stored.get(file.body.as_str()) {
            Some(row) if hex::encode(&row.signature) == file.signature => {}
            Some(row) => report.findings.push(format!("checkpoint {}: its signature differs from file {name}", row.id)),
            None => report.findings.push(format!(
                "checkpoint file {name} is not in the database (the checkpoint was deleted or edited there)"
            )),
        }
    }
    report.notes.push(format!("{files} checkpoint files in {}", dir.display()));
}

fn link(row: &db::ChainRow) -> Link {
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
