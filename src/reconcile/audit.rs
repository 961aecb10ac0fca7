//! The audit rows the reconciler writes with every change it applies.

use serde_json::json;

use crate::audit::{self, Origin, Outcome, Target};
use crate::authz::{Actor, Job};
use crate::plan::{Action, Change, Reason};
use crate::store::AuditEntry;

const RECONCILER: Actor = Actor::System(Job::Reconciler);

/// The reconciler's row of `action` to `resource` (in `tenant`).
fn entry(
    action: &str,
    resource: String,
    tenant: Option<&str>,
    outcome: Outcome,
    details: serde_json::Value,
) -> AuditEntry {
    let target = Target { path: resource, tenant: tenant.map(str::to_owned) };
    audit::entry(&RECONCILER, action, target, outcome, &Origin::default(), details)
}

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
            let action = format!("{}.{}", c.resource.kind(), c.action.as_str());
            entry(&action, c.resource.to_string(), tenant, Outcome::Success, metadata(c, reason, commit))
        })
        .collect()
}

pub fn refusal(tenant: &str, reason: &str, commit: Option<&str>) -> AuditEntry {
    let details = json!({ "commit": commit, "reason": reason });
    entry("tenant.apply", format!("tenant/{tenant}"), Some(tenant), Outcome::Failure, details)
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
