//! The append-only audit log. Every row reaches the database through `insert_audit`, which cleans and
//! bounds what it writes: a refusal is audited whatever bytes the request carried.

use std::borrow::Cow;
use std::fmt::Write as _;

use serde_json::Value;
use sha2::{Digest as _, Sha256};
use sqlx::PgConnection;
use uuid::Uuid;

use super::Result;

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

fn refs<'a>(values: &'a [Cow<'_, str>]) -> Vec<&'a str> {
    values.iter().map(AsRef::as_ref).collect()
}

/// Inserts audit rows in one statement, inside the caller's transaction. Values are cleaned and
/// bounded here, the one way into the table (see `bounded`).
pub async fn insert_audit(conn: &mut PgConnection, entries: &[AuditEntry]) -> Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let mut ids = Vec::with_capacity(entries.len());
    let (mut actors, mut actor_types, mut actions, mut resources, mut tenants, mut outcomes, mut metadata) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    for e in entries {
        ids.push(Uuid::now_v7());
        actors.push(bounded(&e.actor, MAX_ACTOR));
        actor_types.push(e.actor_type);
        actions.push(bounded(&e.action, MAX_ACTION));
        resources.push(bounded(&e.resource, MAX_RESOURCE));
        tenants.push(e.tenant.as_deref().map(|t| bounded(t, MAX_TENANT)));
        outcomes.push(if e.success { "success" } else { "failure" });
        metadata.push(bounded_metadata(&e.metadata));
    }
    let tenants: Vec<Option<&str>> = tenants.iter().map(|t| t.as_deref()).collect();
    let metadata: Vec<&Value> = metadata.iter().map(|m| m.as_ref()).collect();
    sqlx::query(
        "INSERT INTO audit_log (id, actor, actor_type, action, resource, tenant, outcome, metadata)
         SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::jsonb[])",
    )
    .bind(&ids)
    .bind(refs(&actors))
    .bind(&actor_types)
    .bind(refs(&actions))
    .bind(refs(&resources))
    .bind(&tenants)
    .bind(&outcomes)
    .bind(&metadata)
    .execute(conn)
    .await?;
    Ok(())
}

/// Stores events reported by `application` (already checked and authorized), in one statement:
/// each (application, event id) is claimed once, so a retried or repeated event is a duplicate.
/// Returns, per event, whether it was stored now (`true`) or before (`false`).
pub async fn insert_reported(
    conn: &mut PgConnection,
    application: &str,
    events: &[crate::audit::reported::ReportedEvent],
) -> Result<Vec<bool>> {
    let mut index = Vec::with_capacity(events.len());
    let mut ids = Vec::with_capacity(events.len());
    let (mut event_ids, mut times, mut actors, mut actions, mut resources, mut tenants, mut outcomes, mut metadata) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    for (i, e) in events.iter().enumerate() {
        index.push(i32::try_from(i).unwrap_or(i32::MAX));
        ids.push(Uuid::now_v7());
        event_ids.push(e.id.as_str());
        times.push(e.timestamp);
        actors.push(bounded(&e.actor, MAX_ACTOR));
        actions.push(bounded(&e.kind, MAX_ACTION));
        resources.push(bounded(&e.resource, MAX_RESOURCE));
        tenants.push(bounded(&e.tenant, MAX_TENANT));
        outcomes.push(if e.outcome == crate::audit::Outcome::Success { "success" } else { "failure" });
        let mut fields = e.metadata.clone();
        fields.insert("ip".into(), Value::String(e.ip.to_string()));
        metadata.push(bounded_metadata(&Value::Object(fields)).into_owned());
    }
    let stored: Vec<i32> = sqlx::query_scalar(
        "WITH input AS (
             SELECT * FROM UNNEST($1::int[], $2::uuid[], $3::text[], $4::timestamptz[], $5::text[], $6::text[],
                                  $7::text[], $8::text[], $9::text[], $10::jsonb[])
                 AS u(idx, id, event_id, occurred_at, actor, action, resource, tenant, outcome, metadata)
         ), claimed AS (
             INSERT INTO audit_reported_ids (application, event_id)
             SELECT $11, event_id FROM input ORDER BY event_id
             ON CONFLICT DO NOTHING
             RETURNING event_id
         ), inserted AS (
             INSERT INTO audit_log (id, occurred_at, actor, actor_type, action, resource, tenant, outcome, metadata,
                                    application, event_id)
             SELECT DISTINCT ON (i.event_id) i.id, i.occurred_at, i.actor, 'external', i.action, i.resource, i.tenant,
                    i.outcome, i.metadata, $11, i.event_id
               FROM input i JOIN claimed c USING (event_id)
              ORDER BY i.event_id, i.idx
             RETURNING event_id
         )
         SELECT DISTINCT ON (i.event_id) i.idx FROM input i JOIN inserted n USING (event_id) ORDER BY i.event_id, i.idx",
    )
    .bind(&index)
    .bind(&ids)
    .bind(&event_ids)
    .bind(&times)
    .bind(refs(&actors))
    .bind(refs(&actions))
    .bind(refs(&resources))
    .bind(refs(&tenants))
    .bind(&outcomes)
    .bind(&metadata)
    .bind(application)
    .fetch_all(conn)
    .await?;
    let mut new = vec![false; events.len()];
    for i in stored {
        if let Some(slot) = usize::try_from(i).ok().and_then(|i| new.get_mut(i)) {
            *slot = true;
        }
    }
    Ok(new)
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
