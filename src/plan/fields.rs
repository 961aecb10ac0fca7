//! One representation for the declared fields of every kind of resource: a sorted map of JSON values.
//! The desired side (from `model`) and the live side (from database columns) are both built through
//! the constructors here, so a hash computed on either side means the same thing.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::model::Tenant;

/// Declared fields by name; sorted, so serialisation and hashing are deterministic.
pub type Fields = BTreeMap<&'static str, Value>;

/// SHA-256 of a resource's declared fields, as stored in `applied_hash`.
pub type Hash = [u8; 32];

pub fn hash(fields: &Fields) -> Hash {
    hash_json(fields)
}

/// SHA-256 of a value's JSON, streamed into the hasher without an intermediate buffer.
fn hash_json<T: serde::Serialize + ?Sized>(value: &T) -> Hash {
    let mut hasher = Sha256::new();
    // Writing JSON of plain data into a hasher cannot fail.
    let _ = serde_json::to_writer(&mut hasher, value);
    hasher.finalize().into()
}

pub(super) fn opt<T: serde::Serialize>(value: Option<T>) -> Value {
    value.map_or(Value::Null, |v| serde_json::to_value(v).unwrap_or(Value::Null))
}

pub fn plan(display_name: Option<&str>, flags: Value, budget: Value) -> Fields {
    Fields::from([("displayName", opt(display_name)), ("flags", flags), ("budget", budget)])
}

pub fn application(display_name: &str, owner: &str, status: &str, scopes: &[String], oidc: Value) -> Fields {
    Fields::from([
        ("displayName", json!(display_name)),
        ("owner", json!(owner)),
        ("status", json!(status)),
        ("scopes", json!(scopes)),
        ("oidc", oidc),
    ])
}

pub fn tenant(
    display_name: &str,
    plan: &str,
    status: &str,
    budget: Value,
    sso: Value,
    applications: &[String],
) -> Fields {
    Fields::from([
        ("displayName", json!(display_name)),
        ("plan", json!(plan)),
        ("status", json!(status)),
        ("budget", budget),
        ("sso", sso),
        ("applications", json!(applications)),
    ])
}

/// `enabled` rather than the live status: `invited → active` is a user's lifecycle, not drift.
pub fn user(email: &str, name: Option<&str>, role: &str, enabled: bool) -> Fields {
    Fields::from([("email", json!(email)), ("name", opt(name)), ("role", json!(role)), ("enabled", json!(enabled))])
}

pub fn flag(value: &Value) -> Fields {
    Fields::from([("value", value.clone())])
}

/// Hash of everything Git says about a tenant: its fields, users, flags, sync policy and file. When
/// it equals the stored one and nothing changed live, the tenant is skipped without loading its rows.
/// Only ever compared with itself (never with live rows), so the model's own serialisation serves:
/// users, flags and applications are sorted, so equal declarations hash alike.
pub fn tree_hash(t: &Tenant) -> Hash {
    hash_json(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_key_order_does_not_change_the_hash() {
        let a: Value = serde_json::from_str(r#"{"b": 1, "a": {"y": 2, "x": 3}}"#).unwrap_or_default();
        let b: Value = serde_json::from_str(r#"{"a": {"x": 3, "y": 2}, "b": 1}"#).unwrap_or_default();
        assert_eq!(hash(&flag(&a)), hash(&flag(&b)));
        assert_ne!(hash(&flag(&a)), hash(&flag(&json!({"b": 2}))));
    }

    #[test]
    fn an_invited_user_hashes_like_an_active_one() {
        assert_eq!(hash(&user("a@b.example", None, "owner", true)), hash(&user("a@b.example", None, "owner", true)));
        assert_ne!(hash(&user("a@b.example", None, "owner", true)), hash(&user("a@b.example", None, "owner", false)));
    }
}
