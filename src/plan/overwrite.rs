//! Warnings for planned changes that overwrite a manual change: a field that is drifted right now
//! (its live value is not what Git last applied) and that the plan sets. Reverting drift says so
//! already; a Git update of a drifted row does it silently, so `plan` warns: "this merge would
//! overwrite a manual change made by X at T".
//!
//! Only the hash of what Git last applied is stored, so which fields of a drifted row were changed
//! by hand is read back from the reconciler's own audit entries (each records the values it set);
//! a field whose applied value cannot be told is warned about, to be safe.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use super::fields;
use super::live::{LiveRow, LiveState};
use super::{Action, Change, FieldChange, Plan, Reason, Resource};

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Overwrite {
    pub resource: Resource,
    /// Why the plan sets these fields: a change in Git, or reverting drift (selfHeal).
    pub reason: Reason,
    /// Each drifted field the change sets: `before` is the value set by hand, `after` Git's.
    pub fields: Vec<FieldChange>,
    /// Who changed the resource outside Git, from the audit log; `None` for a change made without
    /// Gatehouse (SQL by hand).
    pub changed_by: Option<String>,
    pub changed_at: Option<DateTime<Utc>>,
}

impl std::fmt::Display for Overwrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self.reason {
            Reason::Drift => "reverting drift overwrites",
            Reason::Git | Reason::Adopt => "this merge would overwrite",
        };
        let who = match (&self.changed_by, &self.changed_at) {
            (Some(by), Some(at)) => format!("made by {by} at {}", at.format("%Y-%m-%d %H:%M:%S UTC")),
            (Some(by), None) => format!("made by {by}"),
            _ => "made outside Gatehouse (no audit record)".to_owned(),
        };
        let fields: Vec<String> =
            self.fields.iter().map(|c| format!("{}: {} → {}", c.field, short(&c.before), short(&c.after))).collect();
        write!(f, "{}: {what} a manual change {who}: {}", self.resource, fields.join(", "))
    }
}

fn short(value: &Value) -> String {
    match value {
        Value::Null => "(none)".into(),
        other => other.to_string(),
    }
}

fn live_row<'a>(resource: &Resource, live: &'a LiveState) -> Option<&'a LiveRow> {
    let detail = |tenant: &str| live.tenants.get(tenant).and_then(|t| live.details.get(&t.row.id));
    match resource {
        Resource::Plan { name } => live.plans.get(name),
        Resource::Application { name } => live.applications.get(name),
        Resource::Tenant { name } => live.tenants.get(name).map(|t| &t.row),
        Resource::User { tenant, email } => detail(tenant)?.users.get(email),
        Resource::Flag { tenant, key } => detail(tenant)?.flags.get(key),
    }
}

/// Updates that touch a drifted row: reverts of drift with exactly the drifted fields, and Git
/// updates of a row whose live fields are not what Git last applied, with every field they set
/// (`narrow` keeps the drifted ones). Actor and time are left for the caller to look up.
pub fn candidates(plan: &Plan, live: &LiveState) -> Vec<Overwrite> {
    let changes = plan.global.iter().chain(plan.tenants.iter().flat_map(|t| t.changes.iter()));
    changes.filter_map(|c| candidate(c, live)).collect()
}

fn candidate(change: &Change, live: &LiveState) -> Option<Overwrite> {
    if change.action != Action::Update || change.fields.is_empty() {
        return None;
    }
    let drifted = match change.reason {
        Reason::Drift => true,
        Reason::Git => live_row(&change.resource, live)
            .is_some_and(|row| row.applied_hash.is_some_and(|h| h != fields::hash(&row.fields))),
        // A row created through the API was never Git's: taking it over is not overwriting drift.
        Reason::Adopt => false,
    };
    drifted.then(|| Overwrite {
        resource: change.resource.clone(),
        reason: change.reason,
        fields: change.fields.clone(),
        changed_by: None,
        changed_at: None,
    })
}

/// The value Git last applied to `field`, from the reconciler's audit metadata of the resource,
/// newest first: the newest update that set it, or the create. `None` when the history cannot tell.
pub fn applied_value(history: &[Value], field: &str) -> Option<Value> {
    for entry in history {
        if let Some(changes) = entry["changes"].as_array() {
            if let Some(c) = changes.iter().find(|c| c["field"] == field) {
                return Some(c["after"].clone());
            }
        } else if let Some(set) = entry["set"].as_object() {
            // A create lists every field it set; one it does not list was null.
            return Some(set.get(field).cloned().unwrap_or(Value::Null));
        } else {
            return None;
        }
    }
    None
}

/// Keeps the fields whose live value differs from what Git last applied (or whose applied value is
/// unknown); `None` when no field the change sets is drifted.
pub fn narrow(mut overwrite: Overwrite, history: &[Value]) -> Option<Overwrite> {
    if overwrite.reason == Reason::Git {
        overwrite.fields.retain(|f| applied_value(history, f.field).is_none_or(|applied| applied != f.before));
    }
    (!overwrite.fields.is_empty()).then_some(overwrite)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn role_update(before: &str, after: &str) -> Overwrite {
        Overwrite {
            resource: Resource::User { tenant: "acme".into(), email: "dan@acme.example".into() },
            reason: Reason::Git,
            fields: vec![
                FieldChange { field: "role", before: json!(before), after: json!(after) },
                FieldChange { field: "name", before: json!("Dan"), after: json!("Daniel") },
            ],
            changed_by: None,
            changed_at: None,
        }
    }

    #[test]
    fn the_applied_value_is_the_newest_the_reconciler_set_or_the_one_it_created_with() {
        let history = vec![
            json!({ "reason": "git", "changes": [{ "field": "role", "before": "user", "after": "admin" }] }),
            json!({ "reason": "git", "set": { "email": "dan@acme.example", "role": "user", "name": "Dan" } }),
        ];
        assert_eq!(applied_value(&history, "role"), Some(json!("admin")));
        assert_eq!(applied_value(&history, "name"), Some(json!("Dan")));
        assert_eq!(applied_value(&history, "enabled"), Some(Value::Null), "a create omits only null fields");
        assert_eq!(applied_value(&[], "role"), None);
    }

    #[test]
    fn a_git_update_warns_only_about_the_fields_changed_by_hand() {
        // Git applied role user and name Dan; someone set role admin by hand; Git now says owner
        // and Daniel: only the role overwrites a manual change.
        let history = vec![json!({ "set": { "email": "dan@acme.example", "role": "user", "name": "Dan" } })];
        let narrowed = narrow(role_update("admin", "owner"), &history).expect("role is drifted");
        let fields: Vec<&str> = narrowed.fields.iter().map(|f| f.field).collect();
        assert_eq!(fields, ["role"]);
        // Live values that are what Git applied were not changed by hand: nothing to warn about.
        let as_applied = vec![json!({ "set": { "email": "dan@acme.example", "role": "admin", "name": "Dan" } })];
        assert!(narrow(role_update("admin", "owner"), &as_applied).is_none());
    }

    #[test]
    fn a_field_whose_applied_value_is_unknown_is_warned_about() {
        let narrowed = narrow(role_update("admin", "owner"), &[]).expect("unknown history warns");
        assert_eq!(narrowed.fields.len(), 2);
        assert_eq!(
            narrowed.to_string(),
            "tenant/acme/user/dan@acme.example: this merge would overwrite a manual change made outside Gatehouse \
             (no audit record): role: \"admin\" → \"owner\", name: \"Dan\" → \"Daniel\""
        );
    }
}
