//! The audit rows the reconciler writes with every change it applies.

use serde_json::json;

use crate::plan::{Change, Reason};
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
                metadata: json!({ "commit": commit, "reason": reason, "changes": c.fields }),
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
