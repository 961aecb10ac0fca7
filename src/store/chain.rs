//! The audit log's hash chains (issue 13.2): every row has a place in one of `CHAINS` chains (by its
//! tenant, so one tenant's rows are in one order), a sequence number there, the hash of the row
//! before it and its own hash, `SHA-256(previous hash ‖ content)`. The content is the row's fields,
//! each length-prefixed so that no two rows share one, with the metadata in a canonical JSON form
//! (keys sorted) that reads back the same from PostgreSQL's `jsonb`.
//!
//! `Walk` checks one chain in sequence order and names every row that breaks it: a row edited (its
//! hash is not that of its content), deleted (a gap in the sequence), or moved (its previous hash is
//! not the hash of the row before it). Rows that have no place in any chain were inserted around
//! Gatehouse; the store finds those.

use serde_json::Value;
use sha2::{Digest as _, Sha256};

/// How many chains the log is spread over: writers of different tenants wait for one another only
/// when their tenants share a chain.
pub const CHAINS: i16 = 16;

/// The hash before the first row of every chain.
pub const GENESIS: [u8; 32] = [0; 32];

/// The chain of a row of `tenant` (`None`: the platform's own rows).
pub fn chain_of(tenant: Option<&str>) -> i16 {
    let digest = Sha256::digest(tenant.unwrap_or_default().as_bytes());
    i16::from(digest[0]) % CHAINS
}

/// What a row's hash covers: every field as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Content<'a> {
    pub id: uuid::Uuid,
    /// Microseconds since the epoch (what PostgreSQL keeps of a `timestamptz`).
    pub occurred_at_micros: i64,
    pub actor: &'a str,
    pub actor_type: &'a str,
    pub action: &'a str,
    pub resource: &'a str,
    pub tenant: Option<&'a str>,
    pub outcome: &'a str,
    pub application: Option<&'a str>,
    pub event_id: Option<&'a str>,
    pub metadata: &'a Value,
    /// When Gatehouse recorded the row (microseconds), which picks the month retention drops it
    /// in. `None` for rows written before migration 0021, whose hash does not cover it.
    pub recorded_at_micros: Option<i64>,
}

/// `SHA-256(previous ‖ content)`.
pub fn row_hash(previous: &[u8], content: &Content<'_>) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(previous);
    let id = content.id.to_string();
    let occurred = content.occurred_at_micros.to_string();
    let metadata = canonical_json(content.metadata);
    let recorded = content.recorded_at_micros.map(|micros| micros.to_string());
    let fields = [
        Some(id.as_str()),
        Some(occurred.as_str()),
        Some(content.actor),
        Some(content.actor_type),
        Some(content.action),
        Some(content.resource),
        content.tenant,
        Some(content.outcome),
        content.application,
        content.event_id,
        Some(metadata.as_str()),
    ];
    // Rows from before migration 0021 end at the metadata; later ones add the recorded time.
    for field in fields.into_iter().chain(recorded.as_deref().map(Some)) {
        match field {
            Some(value) => {
                hasher.update(value.len().to_string().as_bytes());
                hasher.update(b":");
                hasher.update(value.as_bytes());
            }
            None => hasher.update(b"-"),
        }
        hasher.update(b";");
    }
    hasher.finalize().into()
}

/// JSON with every object's keys in byte order and no spaces: the same text for the same value,
/// whatever order its keys were written or stored in.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        // PostgreSQL's numeric has no negative zero: -0.0 reads back from jsonb as 0.0.
        Value::Number(n) if n.as_f64() == Some(0.0) && n.is_f64() => out.push_str("0.0"),
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// One row as the chain saw it: where it claims to be and what it holds.
#[derive(Debug, Clone)]
pub struct Link {
    pub seq: i64,
    pub prev_hash: Vec<u8>,
    pub hash: Vec<u8>,
    /// `row_hash(prev_hash, content)`, recomputed from the row as stored.
    pub recomputed: [u8; 32],
    /// How to name the row in a finding.
    pub label: String,
}

/// What is wrong with a chain, row by row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// The row's content is not what was hashed when it was written.
    Edited { chain: i16, seq: i64, row: String },
    /// Rows `from..=to` of the chain are missing.
    Deleted { chain: i16, from: i64, to: i64 },
    /// The row does not follow the row before it (moved, or the rows around it were changed).
    OutOfOrder { chain: i16, seq: i64, row: String },
    /// Two rows claim the same place.
    Duplicate { chain: i16, seq: i64, row: String },
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Finding::Edited { chain, seq, row } => {
                write!(f, "chain {chain} seq {seq}: row {row} was edited (its content no longer matches its hash)")
            }
            Finding::Deleted { chain, from, to } if from == to => {
                write!(f, "chain {chain} seq {from}: a row was deleted")
            }
            Finding::Deleted { chain, from, to } => {
                write!(f, "chain {chain} seq {from}–{to}: {} rows were deleted", to - from + 1)
            }
            Finding::OutOfOrder { chain, seq, row } => {
                write!(f, "chain {chain} seq {seq}: row {row} is out of order (it does not follow the row before it)")
            }
            Finding::Duplicate { chain, seq, row } => {
                write!(f, "chain {chain} seq {seq}: row {row} claims a place another row holds (inserted)")
            }
        }
    }
}

/// Checks one chain, a row at a time in `seq` order, in constant memory.
#[derive(Debug)]
pub struct Walk {
    chain: i16,
    /// The sequence number and hash of the last row seen (`None`: none yet).
    last: Option<(i64, Vec<u8>)>,
    pub rows: u64,
    pub findings: Vec<Finding>,
}

impl Walk {
    /// A walk of `chain`; `start` is the row before the first one to be read, when the rows before
    /// it are known to be gone (dropped by retention) or were checked already.
    pub fn new(chain: i16, start: Option<(i64, Vec<u8>)>) -> Self {
        Walk { chain, last: start.or(Some((0, GENESIS.to_vec()))), rows: 0, findings: Vec::new() }
    }

    pub fn push(&mut self, link: Link) {
        self.rows += 1;
        let chain = self.chain;
        if link.recomputed.as_slice() != link.hash.as_slice() {
            self.findings.push(Finding::Edited { chain, seq: link.seq, row: link.label.clone() });
        }
        if let Some((last_seq, last_hash)) = &self.last {
            if link.seq == *last_seq {
                self.findings.push(Finding::Duplicate { chain, seq: link.seq, row: link.label });
                return;
            }
            if link.seq > last_seq + 1 {
                self.findings.push(Finding::Deleted { chain, from: last_seq + 1, to: link.seq - 1 });
            } else if link.prev_hash != *last_hash {
                self.findings.push(Finding::OutOfOrder { chain, seq: link.seq, row: link.label });
            }
        }
        self.last = Some((link.seq, link.hash));
    }

    /// The sequence number and hash of the last row read.
    pub fn head(&self) -> Option<&(i64, Vec<u8>)> {
        self.last.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn content(metadata: &Value, actor: &'static str) -> Content<'static> {
        let metadata: &'static Value = Box::leak(Box::new(metadata.clone()));
        Content {
            id: uuid::Uuid::nil(),
            occurred_at_micros: 1_764_590_400_000_000,
            actor,
            actor_type: "user",
            action: "user.update",
            resource: "tenant/acme/user/a@acme.example",
            tenant: Some("acme"),
            outcome: "success",
            application: None,
            event_id: None,
            metadata,
            recorded_at_micros: Some(1_764_590_400_000_001),
        }
    }

    #[test]
    fn the_hash_ignores_key_order_and_sees_every_field() {
        let a = row_hash(&GENESIS, &content(&json!({"b": 1, "a": [true, {"y": null, "x": "s"}]}), "alice"));
        let b = row_hash(&GENESIS, &content(&json!({"a": [true, {"x": "s", "y": null}], "b": 1}), "alice"));
        assert_eq!(a, b, "key order does not matter");
        assert_ne!(a, row_hash(&GENESIS, &content(&json!({"b": 2, "a": [true, {"x": "s", "y": null}]}), "alice")));
        assert_ne!(a, row_hash(&GENESIS, &content(&json!({"b": 1, "a": [true, {"x": "s", "y": null}]}), "alicf")));
        assert_ne!(a, row_hash(&[1; 32], &content(&json!({"b": 1, "a": [true, {"x": "s", "y": null}]}), "alice")));
        let mut moved = content(&json!({}), "ab");
        moved.actor_type = "c";
        let mut other = content(&json!({}), "a");
        other.actor_type = "bc";
        assert_ne!(row_hash(&GENESIS, &moved), row_hash(&GENESIS, &other), "fields are length-prefixed");
        let mut recorded_later = content(&json!({}), "a");
        recorded_later.recorded_at_micros = Some(1_764_590_400_000_002);
        assert_ne!(
            row_hash(&GENESIS, &recorded_later),
            row_hash(&GENESIS, &content(&json!({}), "a")),
            "the recorded time is hashed (issue 25.2)"
        );
        let mut legacy = content(&json!({}), "a");
        legacy.recorded_at_micros = None;
        assert_ne!(row_hash(&GENESIS, &legacy), row_hash(&GENESIS, &content(&json!({}), "a")));
        assert_eq!(canonical_json(&json!({"k": "\"q\"", "n": 1.5})), r#"{"k":"\"q\"","n":1.5}"#);
        assert_eq!(canonical_json(&json!([-0.0, 0.0, 0])), "[0.0,0.0,0]", "no negative zero, as jsonb");
    }

    #[test]
    fn a_tenant_always_lands_in_the_same_chain() {
        assert_eq!(chain_of(Some("acme")), chain_of(Some("acme")));
        assert!((0..CHAINS).contains(&chain_of(None)));
        let spread: std::collections::BTreeSet<i16> = (0..200).map(|i| chain_of(Some(&format!("t{i}")))).collect();
        assert_eq!(spread.len(), CHAINS as usize, "200 tenants use every chain");
    }

    /// A chain of `n` rows, as `Link`s.
    fn chain(n: i64) -> Vec<Link> {
        let mut previous = GENESIS.to_vec();
        (1..=n)
            .map(|seq| {
                let hash = row_hash(&previous, &content(&json!({ "seq": seq }), "alice"));
                let link = Link {
                    seq,
                    prev_hash: previous.clone(),
                    hash: hash.to_vec(),
                    recomputed: hash,
                    label: format!("r{seq}"),
                };
                previous = hash.to_vec();
                link
            })
            .collect()
    }

    fn walk(links: Vec<Link>) -> Vec<Finding> {
        let mut walk = Walk::new(3, None);
        links.into_iter().for_each(|l| walk.push(l));
        walk.findings
    }

    #[test]
    fn a_clean_chain_has_no_findings() {
        assert!(walk(chain(5)).is_empty());
    }

    #[test]
    fn each_kind_of_tampering_names_the_row() {
        let mut edited = chain(5);
        edited[2].recomputed = [9; 32];
        assert_eq!(walk(edited), [Finding::Edited { chain: 3, seq: 3, row: "r3".into() }]);

        let mut deleted = chain(5);
        deleted.remove(2);
        assert_eq!(walk(deleted), [Finding::Deleted { chain: 3, from: 3, to: 3 }]);

        let mut swapped = chain(5);
        swapped.swap(1, 2);
        let (a, b) = (swapped[1].seq, swapped[2].seq);
        swapped[1].seq = b;
        swapped[2].seq = a;
        let findings = walk(swapped);
        assert_eq!(
            findings,
            [
                Finding::OutOfOrder { chain: 3, seq: 2, row: "r3".into() },
                Finding::OutOfOrder { chain: 3, seq: 3, row: "r2".into() },
                Finding::OutOfOrder { chain: 3, seq: 4, row: "r4".into() },
            ]
        );

        let mut doubled = chain(3);
        let mut copy = doubled[1].clone();
        copy.label = "forged".into();
        doubled.insert(2, copy);
        assert_eq!(walk(doubled), [Finding::Duplicate { chain: 3, seq: 2, row: "forged".into() }]);
    }
}
