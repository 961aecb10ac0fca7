//! The append-only audit log. Every row reaches the database through `insert_audit`, which cleans and
//! bounds what it writes: a refusal is audited whatever bytes the request carried.

use std::borrow::Cow;
use std::fmt::Write as _;

use serde_json::Value;
use sha2::{Digest as _, Sha256};
use sqlx::PgConnection;
use uuid::Uuid;

use chrono::{DateTime, Utc};

use super::chain::{Content, chain_of, row_hash};
use super::{Result, StoreError};

/// One audit row. Never carries a secret: callers put identifiers and field values only.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub actor: String,
    /// `user`, `operator`, `system`, `application` or `anonymous`.
    pub actor_type: &'static str,
    /// `<kind>.<verb>`, such as `user.update`.
    pub action: String,
    /// Path of the resource, such as `tenant/acme/user/alice@acme.example`.
    pub resource: String,
    pub tenant: Option<String>,
    pub success: bool,
    pub metadata: Value,
}

/// Longest values written, in bytes. `resource` is in a B-tree index whose entries cannot exceed
/// about 2.7 KB, so a longer request path would make the insert fail and the refusal go unaudited.
pub const MAX_RESOURCE: usize = 1024;
pub const MAX_ACTOR: usize = 512;
pub const MAX_ACTION: usize = 128;
pub const MAX_TENANT: usize = 256;
/// Each string in the metadata (values and keys); large enough for any declared field value.
pub const MAX_METADATA_STRING: usize = 4096;

/// `value` as it may be stored: control characters (PostgreSQL refuses NUL in text and in jsonb; the
/// others would forge lines in exports) written as `\xNN`, and anything longer than `max` bytes cut,
/// ending in the SHA-256 of the whole original value (`…[sha256:<16 hex>]`) so that two long values
/// stay distinguishable. Bounding a bounded value changes nothing.
pub fn bounded(value: &str, max: usize) -> Cow<'_, str> {
    if value.len() <= max && !value.chars().any(char::is_control) {
        return Cow::Borrowed(value);
    }
    let mut cleaned = String::with_capacity(value.len().min(max + 4));
    for c in value.chars() {
        if cleaned.len() > max {
            break; // enough to know it is cut
        }
        if c.is_control() {
            let _ = write!(cleaned, "\\x{:02x}", u32::from(c));
        } else {
            cleaned.push(c);
        }
    }
    if cleaned.len() <= max {
        return Cow::Owned(cleaned);
    }
    let digest = hex::encode(Sha256::digest(value.as_bytes()));
    let suffix = format!("…[sha256:{}]", &digest[..16]);
    let mut cut = max.saturating_sub(suffix.len());
    while !cleaned.is_char_boundary(cut) {
        cut -= 1;
    }
    cleaned.truncate(cut);
    cleaned.push_str(&suffix);
    Cow::Owned(cleaned)
}

/// `metadata` with every string (and object key) bounded; borrowed when nothing needs it.
fn bounded_metadata(metadata: &Value) -> Cow<'_, Value> {
    if is_clean(metadata) { Cow::Borrowed(metadata) } else { Cow::Owned(clean(metadata)) }
}

fn is_clean(value: &Value) -> bool {
    let ok = |s: &str| matches!(bounded(s, MAX_METADATA_STRING), Cow::Borrowed(_));
    match value {
        Value::String(s) => ok(s),
        Value::Array(items) => items.iter().all(is_clean),
        Value::Object(map) => map.iter().all(|(k, v)| ok(k) && is_clean(v)),
        Value::Null | Value::Bool(_) | Value::Number(_) => true,
    }
}

fn clean(value: &Value) -> Value {
    match value {
        Value::String(s) => Value::String(bounded(s, MAX_METADATA_STRING).into_owned()),
        Value::Array(items) => Value::Array(items.iter().map(clean).collect()),
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (bounded(k, MAX_METADATA_STRING).into_owned(), clean(v))).collect())
        }
        other => other.clone(),
    }
}

impl AuditEntry {
    /// This entry with every value as `insert_audit` would store it, for rows that wait in memory
    /// before they are written (so what waits is small, whatever a client sent).
    pub fn bounded(self) -> AuditEntry {
        let own = |value: &str, max| bounded(value, max).into_owned();
        AuditEntry {
            actor: own(&self.actor, MAX_ACTOR),
            action: own(&self.action, MAX_ACTION),
            resource: own(&self.resource, MAX_RESOURCE),
            tenant: self.tenant.as_deref().map(|t| own(t, MAX_TENANT)),
            metadata: bounded_metadata(&self.metadata).into_owned(),
            ..self
        }
    }
}

/// Inserts audit rows inside the caller's transaction, each in its place in its tenant's hash chain
/// (`chain`). Values are cleaned and bounded here, the one way into the table (see
/// `bounded`).
pub async fn insert_audit(conn: &mut PgConnection, entries: &[AuditEntry]) -> Result<()> {
    insert_audit_at(conn, entries, Utc::now()).await
}

/// `insert_audit` with the clock given: the rows occurred, and are recorded, at `now` (or just
/// after the row before them in their chain, if that was recorded later).
#[tracing::instrument(name = "db.insert_audit", level = "debug", skip_all, fields(rows = entries.len()))]
pub async fn insert_audit_at(conn: &mut PgConnection, entries: &[AuditEntry], now: DateTime<Utc>) -> Result<()> {
    let now = stored_time(now);
    let rows = entries.iter().map(|e| NewRow::of(e, None, now)).collect();
    append(conn, rows, now).await
}

/// Writes one row with the id `id`, chosen before (a write-back names it in its commit's
/// `Gatehouse-Audit-Id:` trailer, so the commit and the row point at each other).
pub async fn insert_audit_with_id(conn: &mut PgConnection, entry: &AuditEntry, id: Uuid) -> Result<()> {
    let now = stored_time(Utc::now());
    append(conn, vec![NewRow::of(entry, Some(id), now)], now).await
}

/// An event an application reported, checked (`audit::reported::parse`).
#[derive(Debug, Clone, PartialEq)]
pub struct ReportedEvent {
    pub id: String,
    pub tenant: String,
    pub timestamp: DateTime<Utc>,
    pub actor: String,
    pub kind: String,
    pub resource: String,
    /// `outcome` was `success`.
    pub success: bool,
    pub ip: std::net::IpAddr,
    pub metadata: serde_json::Map<String, Value>,
}

/// Stores events reported by `application` (already checked and authorized): each (application,
/// event id) is claimed once, so a retried or repeated event is a duplicate. Returns, per event,
/// whether it was stored now (`true`) or before (`false`).
pub async fn insert_reported(
    conn: &mut PgConnection,
    application: &str,
    events: &[ReportedEvent],
) -> Result<Vec<bool>> {
    let ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
    let claimed: Vec<String> = sqlx::query_scalar(
        "INSERT INTO audit_reported_ids (application, event_id)
         SELECT $1, id FROM UNNEST($2::text[]) AS id ORDER BY id
         ON CONFLICT DO NOTHING RETURNING event_id",
    )
    .bind(application)
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?;
    let mut claimed: std::collections::HashSet<String> = claimed.into_iter().collect();
    let mut new = Vec::with_capacity(events.len());
    let mut rows = Vec::with_capacity(claimed.len());
    for e in events {
        // A repeated id in one batch is claimed once: its first event is stored, the others are duplicates.
        let first = claimed.remove(&e.id);
        new.push(first);
        if !first {
            continue;
        }
        let mut fields = e.metadata.clone();
        fields.insert("ip".into(), Value::String(e.ip.to_string()));
        rows.push(NewRow {
            id: None,
            occurred_at: stored_time(e.timestamp),
            actor: bounded(&e.actor, MAX_ACTOR),
            actor_type: "external",
            action: bounded(&e.kind, MAX_ACTION),
            resource: bounded(&e.resource, MAX_RESOURCE),
            tenant: Some(bounded(&e.tenant, MAX_TENANT)),
            success: e.success,
            application: Some(application),
            event_id: Some(e.id.as_str()),
            metadata: Cow::Owned(bounded_metadata(&Value::Object(fields)).into_owned()),
        });
    }
    append(conn, rows, Utc::now()).await?;
    Ok(new)
}

/// `time` as PostgreSQL keeps it (microseconds), so that the hash covers what is stored.
fn stored_time(time: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(time.timestamp_micros()).unwrap_or(time)
}

/// A row about to be written, every value as it will be stored.
struct NewRow<'a> {
    /// The row's id when the caller chose it (a write-back names it in its commit); else a new one.
    id: Option<Uuid>,
    occurred_at: DateTime<Utc>,
    actor: Cow<'a, str>,
    actor_type: &'a str,
    action: Cow<'a, str>,
    resource: Cow<'a, str>,
    tenant: Option<Cow<'a, str>>,
    success: bool,
    application: Option<&'a str>,
    event_id: Option<&'a str>,
    metadata: Cow<'a, Value>,
}

impl<'a> NewRow<'a> {
    /// The row of `entry`, bounded as stored, occurring at `now`.
    fn of(entry: &'a AuditEntry, id: Option<Uuid>, now: DateTime<Utc>) -> Self {
        NewRow {
            id,
            occurred_at: now,
            actor: bounded(&entry.actor, MAX_ACTOR),
            actor_type: entry.actor_type,
            action: bounded(&entry.action, MAX_ACTION),
            resource: bounded(&entry.resource, MAX_RESOURCE),
            tenant: entry.tenant.as_deref().map(|t| bounded(t, MAX_TENANT)),
            success: entry.success,
            application: None,
            event_id: None,
            metadata: bounded_metadata(&entry.metadata),
        }
    }
}

/// Writes `rows`, each after the head of its chain: the heads of the chains used are locked (in
/// chain order, so writers never wait on each other in a cycle) until the caller's transaction
/// ends, the hashes computed here, then the rows and the new heads written in one statement. Rows
/// are recorded at `now`, or at their chain's last time if the clock (of another replica) is behind
/// it: a chain's rows are recorded in order, so a month dropped by retention is a prefix of it.
async fn append(conn: &mut PgConnection, rows: Vec<NewRow<'_>>, now: DateTime<Utc>) -> Result<()> {
    let now = stored_time(now);
    if rows.is_empty() {
        return Ok(());
    }
    let chains: Vec<i16> = rows.iter().map(|r| chain_of(r.tenant.as_deref())).collect();
    let mut used = chains.clone();
    used.sort_unstable();
    used.dedup();
    // The heads must stay locked from the read to the write: a caller without a transaction gets
    // one here (a caller inside one, a savepoint, and its transaction keeps the locks).
    let mut tx = sqlx::Connection::begin(conn).await?;
    let locked: Vec<(i16, i64, Vec<u8>, DateTime<Utc>)> = sqlx::query_as(
        "SELECT chain, seq, hash, recorded_at FROM audit_chain_heads WHERE chain = ANY($1) ORDER BY chain FOR UPDATE",
    )
    .bind(&used)
    .fetch_all(&mut *tx)
    .await?;
    let mut heads: std::collections::HashMap<i16, (i64, Vec<u8>, DateTime<Utc>)> =
        locked.into_iter().map(|(chain, seq, hash, at)| (chain, (seq, hash, at.max(now)))).collect();
    let mut c = Columns::default();
    for (row, chain) in rows.iter().zip(chains) {
        let head =
            heads.get_mut(&chain).ok_or_else(|| StoreError::Broken(format!("audit chain {chain} has no head")))?;
        let id = row.id.unwrap_or_else(Uuid::now_v7);
        let outcome = if row.success { "success" } else { "failure" };
        let content = Content {
            id,
            occurred_at_micros: row.occurred_at.timestamp_micros(),
            actor: &row.actor,
            actor_type: row.actor_type,
            action: &row.action,
            resource: &row.resource,
            tenant: row.tenant.as_deref(),
            outcome,
            application: row.application,
            event_id: row.event_id,
            metadata: &row.metadata,
            recorded_at_micros: Some(head.2.timestamp_micros()),
        };
        let hash = row_hash(&head.1, &content);
        c.ids.push(id);
        c.times.push(row.occurred_at);
        c.actors.push(&row.actor);
        c.actor_types.push(row.actor_type);
        c.actions.push(&row.action);
        c.resources.push(&row.resource);
        c.tenants.push(row.tenant.as_deref());
        c.outcomes.push(outcome);
        c.applications.push(row.application);
        c.event_ids.push(row.event_id);
        c.metadata.push(&row.metadata);
        c.chains.push(chain);
        c.recorded.push(head.2);
        c.seqs.push(head.0 + 1);
        c.prev_hashes.push(std::mem::replace(&mut head.1, hash.to_vec()));
        c.hashes.push(hash.to_vec());
        head.0 += 1;
    }
    let (mut head_chains, mut head_seqs, mut head_hashes, mut head_times) = (vec![], vec![], vec![], vec![]);
    for (chain, (seq, hash, at)) in heads {
        head_chains.push(chain);
        head_seqs.push(seq);
        head_hashes.push(hash);
        head_times.push(at);
    }
    sqlx::query(
        "WITH heads AS (
             UPDATE audit_chain_heads h SET seq = u.seq, hash = u.hash, recorded_at = u.recorded_at
               FROM UNNEST($16::smallint[], $17::bigint[], $18::bytea[], $19::timestamptz[]) AS u(chain, seq, hash, recorded_at)
              WHERE h.chain = u.chain
         )
         INSERT INTO audit_log (id, occurred_at, actor, actor_type, action, resource, tenant, outcome, application,
                                event_id, metadata, chain, seq, prev_hash, hash, recorded_at)
         SELECT * FROM UNNEST($1::uuid[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[],
                              $7::text[], $8::text[], $9::text[], $10::text[], $11::jsonb[], $12::smallint[],
                              $13::bigint[], $14::bytea[], $15::bytea[], $20::timestamptz[])",
    )
    .bind(&c.ids)
    .bind(&c.times)
    .bind(&c.actors)
    .bind(&c.actor_types)
    .bind(&c.actions)
    .bind(&c.resources)
    .bind(&c.tenants)
    .bind(&c.outcomes)
    .bind(&c.applications)
    .bind(&c.event_ids)
    .bind(&c.metadata)
    .bind(&c.chains)
    .bind(&c.seqs)
    .bind(&c.prev_hashes)
    .bind(&c.hashes)
    .bind(&head_chains)
    .bind(&head_seqs)
    .bind(&head_hashes)
    .bind(&head_times)
    .bind(&c.recorded)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

#[derive(Default)]
struct Columns<'a> {
    ids: Vec<Uuid>,
    times: Vec<DateTime<Utc>>,
    actors: Vec<&'a str>,
    actor_types: Vec<&'a str>,
    actions: Vec<&'a str>,
    resources: Vec<&'a str>,
    tenants: Vec<Option<&'a str>>,
    outcomes: Vec<&'a str>,
    applications: Vec<Option<&'a str>>,
    event_ids: Vec<Option<&'a str>>,
    metadata: Vec<&'a Value>,
    chains: Vec<i16>,
    recorded: Vec<DateTime<Utc>>,
    seqs: Vec<i64>,
    prev_hashes: Vec<Vec<u8>>,
    hashes: Vec<Vec<u8>>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_clean_short_value_is_stored_as_it_is() {
        assert!(matches!(bounded("/v1/tenants/acme/flags", MAX_RESOURCE), Cow::Borrowed("/v1/tenants/acme/flags")));
        let metadata = json!({ "ip": "127.0.0.1", "count": 3, "nested": ["a", { "b": null }] });
        assert!(matches!(bounded_metadata(&metadata), Cow::Borrowed(_)));
    }

    #[test]
    fn nul_and_other_control_characters_are_written_as_escapes() {
        // Issue 11.3: PostgreSQL refuses NUL in text; a newline would forge a line in an export.
        assert_eq!(bounded("ac\0me", MAX_TENANT), "ac\\x00me");
        assert_eq!(bounded("a\nb\u{7f}c\u{9b}", MAX_TENANT), "a\\x0ab\\x7fc\\x9b");
        assert_eq!(bounded("ünïcode stays", MAX_TENANT), "ünïcode stays");
    }

    #[test]
    fn a_long_value_is_cut_and_ends_with_the_digest_of_the_whole() {
        // Issue 11.3: a 3 KB path must fit the resource index.
        let long = format!("/v1/tenants/{}/flags", "a".repeat(3000));
        let stored = bounded(&long, MAX_RESOURCE);
        assert!(stored.len() <= MAX_RESOURCE, "{}", stored.len());
        assert!(stored.starts_with("/v1/tenants/aaaa"));
        let digest = hex::encode(Sha256::digest(long.as_bytes()));
        assert!(stored.ends_with(&format!("…[sha256:{}]", &digest[..16])), "{stored}");
        let longer = format!("{long}x");
        let other = bounded(&longer, MAX_RESOURCE);
        assert_ne!(stored, other, "two long values that differ only past the cut stay distinguishable");
        assert_eq!(bounded(&stored, MAX_RESOURCE), stored, "bounding twice changes nothing");
    }

    #[test]
    fn a_cut_never_splits_a_character_and_escapes_stay_within_the_bound() {
        let wide = "é".repeat(700);
        let stored = bounded(&wide, MAX_RESOURCE);
        assert!(stored.len() <= MAX_RESOURCE && stored.contains("…[sha256:"));
        let nuls = "\0".repeat(2000);
        let stored = bounded(&nuls, MAX_RESOURCE);
        assert!(stored.len() <= MAX_RESOURCE && !stored.contains('\0'));
    }

    #[test]
    fn metadata_strings_and_keys_are_cleaned_and_bounded_at_any_depth() {
        // Issue 11.3: jsonb refuses \u0000 too.
        let metadata = json!({
            "reason": "ok",
            "context": { "ten\u{0}ant": ["x\u{0}y", "z".repeat(MAX_METADATA_STRING + 10)] },
            "count": 2,
        });
        let cleaned = bounded_metadata(&metadata).into_owned();
        let text = cleaned.to_string();
        assert!(!text.contains("\\u0000"), "{text}");
        assert_eq!(cleaned["context"]["ten\\x00ant"][0], "x\\x00y");
        let long = cleaned["context"]["ten\\x00ant"][1].as_str().expect("string");
        assert!(long.len() <= MAX_METADATA_STRING && long.contains("…[sha256:"));
        assert_eq!((cleaned["reason"].as_str(), cleaned["count"].as_i64()), (Some("ok"), Some(2)));
    }
}
