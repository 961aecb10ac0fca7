//! Exact plans: `plan --out` saves a plan with what it was computed from (the config's content and
//! version, and per tenant its declaration in Git and its live revision), and `apply --plan` applies
//! it only if all of that is still the same, so what is applied is exactly what was reviewed. The
//! comparison is pure and lives here; the reconciler does it inside its transaction, with the rows
//! locked.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::diff::{Options, desired_tenants, tenant_names};
use super::fields::{self, Hash};
use super::live::LiveState;
use super::{Plan, render};
use crate::config::Validated;

/// The `format` of a saved plan; another value is refused, not guessed at.
pub const FORMAT: &str = "gatehouse-plan/1";

/// A plan as `plan --out` writes it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SavedPlan {
    pub format: String,
    /// The config version as `apply` records it: the commit of a clean work tree, otherwise a hash
    /// of the config files.
    pub version: Option<String>,
    /// SHA-256 over the config files' paths and contents: equal means the same declarations.
    pub content: String,
    /// The options the plan was computed with; `apply --plan` uses these.
    pub options: Options,
    /// Every tenant the plan read (declared in Git or live), with the state it read.
    pub tenants: BTreeMap<String, TenantStamp>,
    /// The plan itself, as `plan --format json` prints it.
    pub plan: Value,
}

/// What a plan read of one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantStamp {
    /// Hash of the tenant's declaration in Git; `null` when it is not declared (or invalid).
    pub desired: Option<String>,
    /// The tenant's live revision, bumped by every change to it, its users or flags outside the
    /// reconciler; `null` when it has no live row.
    pub live_revision: Option<i64>,
    /// Hash of the declaration the reconciler last applied to it: another apply changes it.
    pub applied: Option<String>,
}

/// A reason the saved plan no longer holds: for one tenant, or for the config as a whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stale {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    pub reason: String,
}

impl std::fmt::Display for Stale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.tenant {
            Some(tenant) => write!(f, "tenant {tenant}: {}", self.reason),
            None => f.write_str(&self.reason),
        }
    }
}

fn hex(hash: Hash) -> String {
    hex::encode(hash)
}

/// Whether a saved plan that no longer holds was already applied: the config files are the ones it
/// was planned from and nothing is left to change. (Re-running `apply --plan` after it succeeded
/// says so, rather than calling the plan stale.)
pub fn already_applied(saved: &SavedPlan, content: [u8; 32], now: &Plan) -> bool {
    saved.content == hex(content) && !now.has_changes()
}

/// The stamp of every tenant `diff` would consider, from the declarations and the live state read.
pub fn stamps(validated: &Validated, live: &LiveState) -> BTreeMap<String, TenantStamp> {
    let desired = desired_tenants(validated);
    tenant_names(validated, live)
        .into_iter()
        .map(|name| {
            let live_tenant = live.tenants.get(&name);
            let stamp = TenantStamp {
                desired: desired.get(name.as_str()).map(|t| hex(fields::tree_hash(t))),
                live_revision: live_tenant.map(|t| t.live_revision),
                applied: live_tenant.and_then(|t| t.applied_tree_hash).map(hex),
            };
            (name, stamp)
        })
        .collect()
}

/// Saves `plan` with what it was computed from.
pub fn save(
    plan: &Plan,
    validated: &Validated,
    live: &LiveState,
    version: Option<String>,
    content: [u8; 32],
    options: Options,
) -> SavedPlan {
    SavedPlan {
        format: FORMAT.to_owned(),
        version,
        content: hex(content),
        options,
        tenants: stamps(validated, live),
        plan: render::json(plan),
    }
}

/// The parts of a plan's JSON that must be equal for two plans to apply the same changes (the
/// summary follows from them; warnings only explain).
fn tenant_plans(plan: &Value) -> BTreeMap<String, &Value> {
    let tenants = plan["tenants"].as_array().map(Vec::as_slice).unwrap_or_default();
    tenants.iter().map(|t| (t["name"].as_str().unwrap_or_default().to_owned(), t)).collect()
}

/// Everything that changed since `saved` was planned: the config (`content`), a tenant's declaration
/// or live revision, or what the plan would now do. Empty when `plan` (computed now, from
/// `stamps`) is exactly the saved plan.
pub fn check(
    saved: &SavedPlan,
    content: [u8; 32],
    version: Option<&str>,
    stamps: &BTreeMap<String, TenantStamp>,
    plan: &Plan,
) -> Vec<Stale> {
    let mut stale = Vec::new();
    if saved.content != hex(content) {
        let shown = |v: Option<&str>| v.unwrap_or("(none)").to_owned();
        stale.push(Stale {
            tenant: None,
            reason: format!(
                "the config changed since the plan (version {} → {})",
                shown(saved.version.as_deref()),
                shown(version)
            ),
        });
    }
    let (before, after) = (&saved.tenants, stamps);
    let names: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    let mut named = BTreeSet::new();
    for name in names {
        let (b, a) = (before.get(name), after.get(name));
        let desired = |s: Option<&TenantStamp>| s.and_then(|s| s.desired.clone());
        let revision = |s: Option<&TenantStamp>| s.and_then(|s| s.live_revision);
        let applied = |s: Option<&TenantStamp>| s.and_then(|s| s.applied.clone());
        let mut reasons = Vec::new();
        if desired(b) != desired(a) {
            reasons.push(match (desired(b), desired(a)) {
                (None, Some(_)) => "declared in Git since the plan".to_owned(),
                (Some(_), None) => "removed from Git (or made invalid) since the plan".to_owned(),
                _ => "its declaration in Git changed since the plan".to_owned(),
            });
        }
        match (revision(b), revision(a)) {
            (Some(x), Some(y)) if x != y => reasons.push(format!("changed live since the plan (revision {x} → {y})")),
            (None, Some(_)) => reasons.push("created live since the plan".to_owned()),
            (Some(_), None) => reasons.push("deleted live since the plan".to_owned()),
            _ => {}
        }
        if revision(b).is_some() && revision(a).is_some() && applied(b) != applied(a) {
            reasons.push("applied by another reconciler since the plan".to_owned());
        }
        if !reasons.is_empty() {
            named.insert(name.clone());
            stale.push(Stale { tenant: Some(name.clone()), reason: reasons.join("; ") });
        }
    }

    // Belt and braces: what the plan would do now must be what was saved, tenant by tenant.
    let now = render::json(plan);
    if now["global"] != saved.plan["global"] || now["globalDrift"] != saved.plan["globalDrift"] {
        stale.push(Stale { tenant: None, reason: "plans or applications changed live since the plan".to_owned() });
    }
    let (was, is) = (tenant_plans(&saved.plan), tenant_plans(&now));
    let differing: BTreeSet<&String> =
        was.keys().chain(is.keys()).filter(|name| was.get(*name) != is.get(*name)).collect();
    for name in differing.into_iter().filter(|n| !named.contains(*n)) {
        stale.push(Stale { tenant: Some(name.clone()), reason: "its plan is different now".to_owned() });
    }
    stale
}
