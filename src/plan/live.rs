//! Live state as the store reads it, in the shape `diff` compares with the desired state.

use std::collections::HashMap;

use uuid::Uuid;

use super::fields::{Fields, Hash};

/// Who owns a row: Git (the reconciler may change and delete it) or the API (Git leaves it alone).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ManagedBy {
    Git,
    Api,
}

impl ManagedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Git => "git",
            Self::Api => "api",
        }
    }

    pub fn parse(text: &str) -> Self {
        if text == "git" { Self::Git } else { Self::Api }
    }
}

/// One managed row: its id, its declared fields as they are now, and the three-way bookkeeping.
#[derive(Debug, Clone)]
pub struct LiveRow {
    pub id: Uuid,
    pub fields: Fields,
    pub managed_by: ManagedBy,
    /// Hash of the fields as Git last applied them; `None` for rows Git never applied.
    pub applied_hash: Option<Hash>,
    pub source: Option<String>,
}

/// A tenant row with what is needed to decide whether its users and flags must be read at all.
#[derive(Debug, Clone)]
pub struct LiveTenant {
    pub name: String,
    pub row: LiveRow,
    pub applied_tree_hash: Option<Hash>,
    /// Bumped by triggers whenever a declared column of the tenant, its users or flags changes
    /// outside the reconciler.
    pub live_revision: i64,
    /// The `live_revision` at which the reconciler last left this tenant converged.
    pub checked_revision: Option<i64>,
    /// The prune policy Git last declared, used when the tenant itself is removed from Git.
    pub prune: bool,
    /// An operator's allowance of this tenant's drift, while it lasts (issue 15.6).
    pub drift_allowed: Option<DriftAllowance>,
}

/// Drift an operator allowed until a deadline: reported, not reverted, even when the tenant
/// self-heals. The store reads only allowances that have not expired.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DriftAllowance {
    pub until: chrono::DateTime<chrono::Utc>,
    pub reason: String,
    pub allowed_by: String,
}

/// A tenant's users (by email) and flags (by key).
#[derive(Debug, Clone, Default)]
pub struct TenantDetail {
    pub users: HashMap<String, LiveRow>,
    pub flags: HashMap<String, LiveRow>,
}

#[derive(Debug, Clone, Default)]
pub struct LiveState {
    pub plans: HashMap<String, LiveRow>,
    pub applications: HashMap<String, LiveRow>,
    pub tenants: HashMap<String, LiveTenant>,
    /// Users and flags of the tenants `diff::tenants_to_inspect` asked for, by tenant id.
    pub details: HashMap<Uuid, TenantDetail>,
}
