//! Stage 3 of the pipeline: `diff(desired, live) -> Plan`, a pure function. A plan lists, per
//! tenant, the creates, updates (field by field) and deletes that would converge live state, and
//! apart from them the drift (live changed outside Git) and the orphans (rows Git no longer declares
//! but may not prune). `render` prints it as text, JSON or Markdown.

pub mod adopt;
pub mod diff;
pub mod exact;
pub mod fields;
pub mod live;
pub mod overwrite;
pub mod render;
pub mod rows;

use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::config::Diagnostic;
use crate::model::SyncPolicy;
use fields::Hash;

pub use diff::{
    DesiredTenants, Options, desired_tenants, diff, diff_global, diff_tenant, plan_tenant, tenant_names,
    tenants_to_inspect,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Update,
    Delete,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Update => "update",
            Self::Delete => "delete",
        }
    }
}

/// Why a change is in the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Reason {
    /// Git declares something the live state does not have.
    Git,
    /// The live row was changed outside Git and the tenant self-heals.
    Drift,
    /// A row created through the API that Git now declares: Git takes it over.
    Adopt,
}

/// The resource a change, drift or orphan is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Resource {
    Plan { name: String },
    Application { name: String },
    Tenant { name: String },
    User { tenant: String, email: String },
    Flag { tenant: String, key: String },
}

impl std::fmt::Display for Resource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Plan { name } => write!(f, "plan/{name}"),
            Self::Application { name } => write!(f, "application/{name}"),
            Self::Tenant { name } => write!(f, "tenant/{name}"),
            Self::User { tenant, email } => write!(f, "tenant/{tenant}/user/{email}"),
            Self::Flag { tenant, key } => write!(f, "tenant/{tenant}/flag/{key}"),
        }
    }
}

impl Resource {
    /// `user`, `flag`, … as used in audit actions (`user.update`).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Plan { .. } => "plan",
            Self::Application { .. } => "application",
            Self::Tenant { .. } => "tenant",
            Self::User { .. } => "user",
            Self::Flag { .. } => "flag",
        }
    }

    /// The short name shown under its tenant: the email, flag key or resource name.
    pub fn short_name(&self) -> &str {
        match self {
            Self::Plan { name } | Self::Application { name } | Self::Tenant { name } => name,
            Self::User { email, .. } => email,
            Self::Flag { key, .. } => key,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldChange {
    pub field: &'static str,
    pub before: Value,
    pub after: Value,
}

#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub resource: Resource,
    pub action: Action,
    pub reason: Reason,
    /// Field by field; empty for a change that only updates the bookkeeping (for example Git now
    /// declares exactly what someone set by hand).
    pub fields: Vec<FieldChange>,
    /// The live row's id, for updates and deletes.
    #[serde(skip)]
    pub id: Option<Uuid>,
    /// The declared row to write, for creates and updates.
    #[serde(skip)]
    pub desired: Option<rows::Row>,
    #[serde(skip)]
    pub hash: Option<Hash>,
    /// The declaring file, recorded for plans and applications.
    #[serde(skip)]
    pub source: Option<String>,
}

impl Change {
    /// Whether this change alters live state (rather than only bookkeeping).
    pub fn is_visible(&self) -> bool {
        self.action != Action::Update || !self.fields.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DriftedField {
    pub field: &'static str,
    /// The value Git applied.
    pub applied: Value,
    /// The value found in the database.
    pub live: Value,
}

#[derive(Debug, Clone, Serialize)]
pub struct Drift {
    pub resource: Resource,
    pub fields: Vec<DriftedField>,
    /// Whether apply reverts it (the tenant self-heals) or only reports it.
    pub revert: bool,
    /// Kept because an operator allowed the tenant's drift until a deadline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed: Option<live::DriftAllowance>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "state", rename_all = "camelCase")]
pub enum TenantState {
    /// Nothing to do.
    Synced,
    /// Changes to apply.
    OutOfSync,
    /// Refused by a guard; nothing of this tenant is applied.
    Refused { reason: String },
    /// Its declaration has problems: it keeps its last good state.
    Invalid { problems: Vec<Diagnostic> },
}

/// What apply records on the tenant row once its changes are in.
#[derive(Debug, Clone)]
pub struct Record {
    pub tree_hash: Hash,
    pub sync: SyncPolicy,
    pub source: String,
    /// No drift or orphans are left, so the next pass may skip the tenant until something changes.
    pub converged: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct TenantPlan {
    pub name: String,
    pub source: Option<String>,
    #[serde(flatten)]
    pub state: TenantState,
    pub changes: Vec<Change>,
    pub drift: Vec<Drift>,
    pub orphans: Vec<Resource>,
    #[serde(skip)]
    pub id: Option<Uuid>,
    /// The tenant's `live_revision` when it was read, checked again under lock before applying.
    #[serde(skip)]
    pub live_revision: Option<i64>,
    #[serde(skip)]
    pub record: Option<Record>,
}

impl TenantPlan {
    pub fn visible_changes(&self) -> impl Iterator<Item = &Change> {
        self.changes.iter().filter(|c| c.is_visible())
    }

    /// Whether apply has anything to write for this tenant.
    pub fn needs_apply(&self) -> bool {
        matches!(self.state, TenantState::OutOfSync)
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Plan {
    /// Changes to plans and applications, applied before the tenants (deletes after them).
    pub global: Vec<Change>,
    pub global_drift: Vec<Drift>,
    /// Every tenant that is not `Synced`, by name.
    pub tenants: Vec<TenantPlan>,
    /// Changes that overwrite a manual change (filled in by `reconcile::plan`, which reads who made it).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<overwrite::Overwrite>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub create: usize,
    pub update: usize,
    pub delete: usize,
    pub drift: usize,
    pub drift_to_revert: usize,
    pub orphans: usize,
    pub invalid_tenants: usize,
    pub refused_tenants: usize,
}

impl Plan {
    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        let changes = self.global.iter().chain(self.tenants.iter().flat_map(|t| t.changes.iter()));
        for change in changes.filter(|c| c.is_visible()) {
            match change.action {
                Action::Create => s.create += 1,
                Action::Update => s.update += 1,
                Action::Delete => s.delete += 1,
            }
        }
        for drift in self.global_drift.iter().chain(self.tenants.iter().flat_map(|t| t.drift.iter())) {
            s.drift += 1;
            s.drift_to_revert += usize::from(drift.revert);
        }
        for t in &self.tenants {
            s.orphans += t.orphans.len();
            s.invalid_tenants += usize::from(matches!(t.state, TenantState::Invalid { .. }));
            s.refused_tenants += usize::from(matches!(t.state, TenantState::Refused { .. }));
        }
        s
    }

    /// Whether applying would change live state.
    pub fn has_changes(&self) -> bool {
        let s = self.summary();
        s.create + s.update + s.delete > 0
    }
}
