//! The audit rows the reconciler writes with every change it applies.

use serde_json::json;

use crate::plan::{Action, Change, Reason};
use crate::store::AuditEntry;

pub const ACTOR: &str = "gatehouse-reconciler";

pub fn for_changes<'a>(
    changes: impl Iterator<Item = &'a Change>,
    tenant: Option<&str>,
    commit: Option<&str>,
) -> Vec<AuditEntry> {
    changes
        .map(|c| {
            let reason = match c.reason {
                Reason::Git => "git",
                Reason::Drift => "drift",
                Reason::Adopt => "adopt",
            };
            AuditEntry {
                actor: ACTOR.to_owned(),
                actor_type: "system",
                action: format!("{}.{}", c.resource.kind(), c.action.as_str()),
                resource: c.resource.to_string(),
                tenant: tenant.map(str::to_owned),
                success: true,
                metadata: metadata(c, reason, commit),
            }
        })
        .collect()
}

pub fn refusal(tenant: &str, reason: &str, commit: Option<&str>) -> AuditEntry {
    AuditEntry {
        actor: ACTOR.to_owned(),
        actor_type: "system",
        action: "tenant.apply".to_owned(),
        resource: format!("tenant/{tenant}"),
        tenant: Some(tenant.to_owned()),
        success: false,
        metadata: json!({ "commit": commit, "reason": reason }),
    }
}

/// What changed: for a create the values set, for an update each field's before and after, for a
/// delete the values removed.
fn metadata(change: &Change, reason: &str, commit: Option<&str>) -> serde_json::Value {
    let values =
        |pick: fn(&crate::plan::FieldChange) -> &serde_json::Value| -> serde_json::Map<String, serde_json::Value> {
            change.fields.iter().map(|f| (f.field.to_owned(), pick(f).clone())).collect()
        };
    match change.action {
        Action::Create => json!({ "commit": commit, "reason": reason, "set": values(|f| &f.after) }),
        Action::Delete => json!({ "commit": commit, "reason": reason, "removed": values(|f| &f.before) }),
        Action::Update => json!({ "commit": commit, "reason": reason, "changes": change.fields }),
    }
}
