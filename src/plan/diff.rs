//! The three-way diff. For each resource: desired fields (Git), live fields (database) and the hash
//! of what Git last applied decide between create, update, delete, drift and orphan.

use std::collections::{BTreeSet, HashMap};

use rayon::prelude::*;
use uuid::Uuid;

use super::fields::{self, Fields};
use super::live::{LiveRow, LiveState, LiveTenant, ManagedBy, TenantDetail};
use super::rows::{ApplicationRow, FlagRow, PlanRow, Row, TenantRow, UserRow};
use super::{
    Action, Change, Drift, DriftedField, FieldChange, Plan, Reason, Record, Resource, TenantPlan, TenantState,
};
use crate::config::{Subject, Validated};
use crate::model::{SyncPolicy, Tenant};

#[derive(Debug, Clone, Copy, Default, serde::Serialize, serde::Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Options {
    /// Allow a plan that removes more than half of a tenant's users, or all of them.
    pub allow_mass_delete: bool,
}

/// Desired tenants by name.
pub type DesiredTenants<'a> = HashMap<&'a str, &'a Tenant>;

pub fn desired_tenants(validated: &Validated) -> DesiredTenants<'_> {
    validated.desired.tenants.iter().map(|t| (t.name.as_str(), t)).collect()
}

/// Tenants whose users and flags must be read to plan them: everything except tenants whose Git
/// declaration and live rows are both unchanged since the reconciler last left them converged.
pub fn tenants_to_inspect(desired: &DesiredTenants, live: &LiveState) -> Vec<Uuid> {
    live.tenants
        .par_iter()
        .filter(|(name, tenant)| match desired.get(name.as_str()) {
            Some(t) => !is_converged(t, tenant),
            None => tenant.row.managed_by == ManagedBy::Git,
        })
        .map(|(_, tenant)| tenant.row.id)
        .collect()
}

fn is_converged(desired: &Tenant, live: &LiveTenant) -> bool {
    live.row.managed_by == ManagedBy::Git
        && live.live_revision == live.checked_revision.unwrap_or(-1)
        && live.applied_tree_hash == Some(fields::tree_hash(desired))
}

/// Desired and live rows of one global kind, with how to name them.
type GlobalKind<'a> =
    (&'a HashMap<String, Row>, &'a HashMap<String, LiveRow>, fn(String) -> Resource, fn(String) -> Subject);

/// The whole plan: global resources, then every tenant that is not in sync. `live.details` must
/// hold the tenants `tenants_to_inspect` named.
pub fn diff(validated: &Validated, live: &LiveState, options: Options) -> Plan {
    let (global, global_drift) = diff_global(validated, live);
    let desired = desired_tenants(validated);
    let tenants = tenant_names(validated, live)
        .iter()
        .map(|name| plan_tenant(name, validated, &desired, live, options))
        .filter(|t| !matches!(t.state, TenantState::Synced))
        .collect();
    Plan { global, global_drift, tenants, warnings: Vec::new() }
}

/// Changes and drift of plans and applications; they always self-heal and prune.
pub fn diff_global(validated: &Validated, live: &LiveState) -> (Vec<Change>, Vec<Drift>) {
    let (mut changes, mut drifts) = (Vec::new(), Vec::new());
    let global_policy = SyncPolicy::default();
    let desired_plans: HashMap<String, Row> =
        validated.desired.plans.iter().map(|p| (p.name.to_string(), Row::Plan(PlanRow::of(p)))).collect();
    let desired_apps: HashMap<String, Row> = (validated.desired.applications.iter())
        .map(|a| (a.name.to_string(), Row::Application(ApplicationRow::of(a))))
        .collect();
    let sources: HashMap<Resource, &str> = (validated.desired.plans.iter())
        .map(|p| (Resource::Plan { name: p.name.to_string() }, p.source.as_str()))
        .chain(
            (validated.desired.applications.iter())
                .map(|a| (Resource::Application { name: a.name.to_string() }, a.source.as_str())),
        )
        .collect();
    let kinds: [GlobalKind; 2] = [
        (&desired_plans, &live.plans, |name| Resource::Plan { name }, Subject::Plan),
        (&desired_apps, &live.applications, |name| Resource::Application { name }, Subject::Application),
    ];
    for (desired, live_rows, resource, subject) in kinds {
        for name in sorted_union(desired.keys(), live_rows.keys()) {
            let row = live_rows.get(&name);
            if validated.holds_back(&subject(name.clone()), row.and_then(|r| r.source.as_deref())) {
                continue;
            }
            match diff_row(resource(name.clone()), desired.get(&name), row, global_policy) {
                RowOutcome::Change(c) => changes.push(c),
                RowOutcome::Drift(d, c) => {
                    drifts.push(d);
                    changes.extend(c);
                }
                RowOutcome::Orphan | RowOutcome::Nothing => {}
            }
        }
    }
    for change in &mut changes {
        change.source = sources.get(&change.resource).map(|s| (*s).to_owned());
    }
    (changes, drifts)
}

/// Every tenant name to consider, sorted: declared (valid or not) or live.
pub fn tenant_names(validated: &Validated, live: &LiveState) -> Vec<String> {
    let invalid = validated.problems.iter().filter_map(|(s, _)| match s {
        Subject::Tenant(name) => Some(name.as_str()),
        _ => None,
    });
    let names: BTreeSet<&str> = (validated.desired.tenants.iter().map(|t| t.name.as_str()))
        .chain(live.tenants.keys().map(String::as_str))
        .chain(invalid)
        .collect();
    names.into_iter().map(str::to_owned).collect()
}

/// Plans one tenant by name: held back when its declaration has problems, otherwise diffed.
pub fn plan_tenant(
    name: &str,
    validated: &Validated,
    desired: &DesiredTenants,
    live: &LiveState,
    options: Options,
) -> TenantPlan {
    let live_tenant = live.tenants.get(name);
    let source = live_tenant.and_then(|t| t.row.source.as_deref());
    if validated.holds_back(&Subject::Tenant(name.to_owned()), source) {
        let mut problems: Vec<_> = validated.tenant_problems(name).into_iter().cloned().collect();
        problems.extend(
            (validated.problems.iter())
                .filter(|(s, _)| matches!((s, source), (Subject::File(f), Some(src)) if f == src))
                .map(|(_, d)| d.clone()),
        );
        return held_back(name, live_tenant, problems);
    }
    let detail = live_tenant.and_then(|t| live.details.get(&t.row.id));
    diff_tenant(desired.get(name).copied(), live_tenant, detail, options)
}

fn held_back(name: &str, live: Option<&LiveTenant>, problems: Vec<crate::config::Diagnostic>) -> TenantPlan {
    let source = problems.first().map(|d| d.file.clone());
    empty_plan(name.to_owned(), source, live, TenantState::Invalid { problems })
}

fn empty_plan(name: String, source: Option<String>, live: Option<&LiveTenant>, state: TenantState) -> TenantPlan {
    TenantPlan {
        name,
        source,
        state,
        changes: Vec::new(),
        drift: Vec::new(),
        orphans: Vec::new(),
        id: live.map(|t| t.row.id),
        live_revision: live.map(|t| t.live_revision),
        record: None,
    }
}

/// Plans one tenant. `detail` is `None` when `tenants_to_inspect` found nothing to look at.
pub fn diff_tenant(
    desired: Option<&Tenant>,
    live: Option<&LiveTenant>,
    detail: Option<&TenantDetail>,
    options: Options,
) -> TenantPlan {
    let name = desired.map(|t| t.name.to_string()).or_else(|| live.map(|t| t.name.clone())).unwrap_or_default();
    let source = desired.map(|t| t.source.clone()).or_else(|| live.and_then(|t| t.row.source.clone()));
    let mut plan = empty_plan(name.clone(), source, live, TenantState::Synced);
    let empty = TenantDetail::default();
    let detail = match (desired, live, detail) {
        (Some(_), Some(_), None) => return plan, // converged, not inspected
        (_, _, detail) => detail.unwrap_or(&empty),
    };
    if live.is_some_and(|t| t.row.managed_by == ManagedBy::Api) && desired.is_none() {
        return plan; // created through the API and never declared in Git: not ours
    }
    let mut policy = match (desired, live) {
        (Some(t), _) => t.sync,
        (None, Some(t)) => SyncPolicy { prune: t.prune, ..SyncPolicy::default() },
        (None, None) => return plan,
    };
    // Allowed drift is kept like that of a tenant that does not self-heal, until the allowance ends.
    let allowed = live.and_then(|t| t.drift_allowed.clone()).filter(|_| desired.is_some());
    if allowed.is_some() {
        policy.self_heal = false;
    }

    let tenant_resource = Resource::Tenant { name: name.clone() };
    let desired_row = desired.map(|t| Row::Tenant(TenantRow::of(t)));
    let tenant_outcome = diff_row(tenant_resource.clone(), desired_row.as_ref(), live.map(|t| &t.row), policy);
    if let RowOutcome::Orphan = tenant_outcome {
        plan.orphans.push(tenant_resource);
        plan.state = TenantState::OutOfSync;
        return plan;
    }

    let user_resource = |email: String| Resource::User { tenant: name.clone(), email };
    let desired_users: HashMap<String, Row> = desired
        .map(|t| t.users.iter().map(|u| (u.email.to_string(), Row::User(UserRow::of(u)))).collect())
        .unwrap_or_default();
    // A tenant being deleted takes all its rows with it, whoever created them.
    let row_policy = if desired.is_none() { SyncPolicy::default() } else { policy };
    let mut outcomes = Vec::new();
    for email in sorted_union(desired_users.keys(), detail.users.keys()) {
        let live_row = detail.users.get(&email).map(|r| claim_if_deleting(r, desired.is_none()));
        outcomes.push(diff_row(user_resource(email.clone()), desired_users.get(&email), live_row.as_ref(), row_policy));
    }
    let desired_flags: HashMap<String, Row> = desired
        .map(|t| {
            t.flags.iter().map(|(k, v)| (k.to_string(), Row::Flag(FlagRow { value: v.as_json().clone() }))).collect()
        })
        .unwrap_or_default();
    for key in sorted_union(desired_flags.keys(), detail.flags.keys()) {
        let resource = Resource::Flag { tenant: name.clone(), key: key.clone() };
        let live_row = detail.flags.get(&key).map(|r| claim_if_deleting(r, desired.is_none()));
        outcomes.push(diff_row(resource, desired_flags.get(&key), live_row.as_ref(), row_policy));
    }

    // Creates start with the tenant row, deletes end with it.
    let deleting_tenant = matches!(&tenant_outcome, RowOutcome::Change(c) if c.action == Action::Delete);
    let mut tenant_change = None;
    for outcome in std::iter::once(tenant_outcome).chain(outcomes) {
        match outcome {
            RowOutcome::Nothing => {}
            RowOutcome::Orphan => {}
            RowOutcome::Change(c) if matches!(c.resource, Resource::Tenant { .. }) => tenant_change = Some(c),
            RowOutcome::Change(c) => plan.changes.push(c),
            RowOutcome::Drift(d, c) => {
                plan.drift.push(d);
                plan.changes.extend(c);
            }
        }
    }
    for email in detail.users.keys().filter(|e| !desired_users.contains_key(*e)) {
        if !deleting_tenant && !policy.prune && detail.users[email].managed_by == ManagedBy::Git {
            plan.orphans.push(user_resource(email.clone()));
        }
    }
    for key in detail.flags.keys().filter(|k| !desired_flags.contains_key(*k)) {
        if !deleting_tenant && !policy.prune && detail.flags[key].managed_by == ManagedBy::Git {
            plan.orphans.push(Resource::Flag { tenant: name.clone(), key: key.clone() });
        }
    }
    plan.orphans.sort();
    for drift in &mut plan.drift {
        drift.allowed = allowed.clone();
    }
    if let Some(change) = tenant_change {
        if deleting_tenant {
            plan.changes.push(change);
        } else {
            plan.changes.insert(0, change);
        }
    }

    if let Some(t) = desired {
        let unreverted = plan.drift.iter().any(|d| !d.revert);
        plan.record = Some(Record {
            tree_hash: fields::tree_hash(t),
            sync: t.sync,
            source: t.source.clone(),
            converged: !unreverted && plan.orphans.is_empty(),
        });
    }
    let needs_record = live.is_none_or(|l| {
        l.applied_tree_hash != plan.record.as_ref().map(|r| r.tree_hash)
            || plan.record.as_ref().is_some_and(|r| r.converged && l.checked_revision != Some(l.live_revision))
    });
    plan.state = if plan.changes.is_empty() && plan.drift.is_empty() && plan.orphans.is_empty() && !needs_record {
        TenantState::Synced
    } else {
        TenantState::OutOfSync
    };

    let deletes = plan
        .changes
        .iter()
        .filter(|c| c.action == Action::Delete && matches!(c.resource, Resource::User { .. }))
        .count();
    let users = detail.users.len();
    if !options.allow_mass_delete && deletes > 0 && (deletes == users || deletes * 2 > users) {
        plan.state = TenantState::Refused {
            reason: format!(
                "would delete {deletes} of {users} users; if this is intended, allow it once with \
                 `gatehouse sync allow-deletion {name}` (or `apply --allow-mass-delete={name}`)"
            ),
        };
    }
    plan
}

/// When a tenant is deleted its API-created rows go with it, so they are planned as Git's to delete.
fn claim_if_deleting(row: &LiveRow, deleting: bool) -> LiveRow {
    let mut row = row.clone();
    if deleting {
        row.managed_by = ManagedBy::Git;
    }
    row
}

enum RowOutcome {
    Nothing,
    Change(Change),
    /// Drift, with the change that reverts it when the policy self-heals.
    Drift(Drift, Option<Change>),
    /// Removed from Git, not pruned.
    Orphan,
}

fn diff_row(resource: Resource, desired_row: Option<&Row>, live: Option<&LiveRow>, policy: SyncPolicy) -> RowOutcome {
    let desired_fields = desired_row.map(Row::fields);
    let desired = desired_fields.as_ref();
    // A change carries the declared row (and its hash) whenever there is one: creates and updates.
    let change = |action, reason, fields, id| Change {
        resource: resource.clone(),
        action,
        reason,
        fields,
        id,
        hash: desired.map(fields::hash),
        desired: desired_row.cloned(),
        source: None,
    };
    match (desired, live) {
        (None, None) => RowOutcome::Nothing,
        (Some(d), None) => RowOutcome::Change(change(Action::Create, Reason::Git, creation(d), None)),
        (None, Some(l)) if l.managed_by == ManagedBy::Api => RowOutcome::Nothing,
        (None, Some(l)) if policy.prune => {
            RowOutcome::Change(change(Action::Delete, Reason::Git, deletion(&l.fields), Some(l.id)))
        }
        (None, Some(_)) => RowOutcome::Orphan,
        (Some(d), Some(l)) if l.managed_by == ManagedBy::Api => {
            RowOutcome::Change(change(Action::Update, Reason::Adopt, field_changes(&l.fields, d), Some(l.id)))
        }
        (Some(d), Some(l)) => {
            let desired_hash = fields::hash(d);
            let live_hash = fields::hash(&l.fields);
            if l.applied_hash != Some(desired_hash) {
                // Git changed (or was never applied here): apply converges, over any drift.
                RowOutcome::Change(change(Action::Update, Reason::Git, field_changes(&l.fields, d), Some(l.id)))
            } else if live_hash == desired_hash {
                RowOutcome::Nothing
            } else {
                let drifted = field_changes(&l.fields, d)
                    .into_iter()
                    .map(|f| DriftedField { field: f.field, applied: f.after, live: f.before })
                    .collect();
                let drift =
                    Drift { resource: resource.clone(), fields: drifted, revert: policy.self_heal, allowed: None };
                let revert = policy
                    .self_heal
                    .then(|| change(Action::Update, Reason::Drift, field_changes(&l.fields, d), Some(l.id)));
                RowOutcome::Drift(drift, revert)
            }
        }
    }
}

fn field_changes(before: &Fields, after: &Fields) -> Vec<FieldChange> {
    after
        .iter()
        .filter(|(field, value)| before.get(*field) != Some(value))
        .map(|(field, value)| FieldChange {
            field,
            before: before.get(field).cloned().unwrap_or_default(),
            after: value.clone(),
        })
        .collect()
}

fn creation(desired: &Fields) -> Vec<FieldChange> {
    desired
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(field, value)| FieldChange { field, before: serde_json::Value::Null, after: value.clone() })
        .collect()
}

fn deletion(live: &Fields) -> Vec<FieldChange> {
    live.iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(field, value)| FieldChange { field, before: value.clone(), after: serde_json::Value::Null })
        .collect()
}

fn sorted_union<'a>(a: impl Iterator<Item = &'a String>, b: impl Iterator<Item = &'a String>) -> BTreeSet<String> {
    a.chain(b).cloned().collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::model::{
        Email, FlagKey, FlagType, FlagValue, PlanName, Role, TenantName, TenantStatus, User, UserStatus,
    };

    fn user(email: &str, role: Role) -> User {
        User { email: Email::parse(email).expect("email"), name: None, role, status: UserStatus::Active }
    }

    fn tenant(users: &[(&str, Role)], sync: SyncPolicy) -> Tenant {
        Tenant {
            name: TenantName::parse("acme").expect("name"),
            display_name: "Acme".into(),
            plan: PlanName::parse("pro").expect("plan"),
            status: TenantStatus::Active,
            sync,
            budget: None,
            sso: None,
            applications: Vec::new(),
            users: users.iter().map(|(e, r)| user(e, *r)).collect(),
            flags: [(
                FlagKey::parse("max_projects").expect("key"),
                FlagValue::typed(FlagType::Integer, json!(5)).expect("int"),
            )]
            .into(),
            source: "tenants/acme.yaml".into(),
        }
    }

    const HEAL_AND_PRUNE: SyncPolicy =
        SyncPolicy { self_heal: true, prune: true, interactive_edits: false, write_back: None };
    const NEITHER: SyncPolicy =
        SyncPolicy { self_heal: false, prune: false, interactive_edits: false, write_back: None };

    fn row(fields: Fields, applied: Option<&Fields>) -> LiveRow {
        LiveRow {
            id: Uuid::now_v7(),
            fields,
            managed_by: ManagedBy::Git,
            applied_hash: applied.map(fields::hash),
            source: None,
        }
    }

    /// The live state after Git applied `t`: every row as declared, with its applied hash.
    fn applied(t: &Tenant) -> (LiveTenant, TenantDetail) {
        let own = TenantRow::of(t).fields();
        let live = LiveTenant {
            name: t.name.to_string(),
            row: row(own.clone(), Some(&own)),
            applied_tree_hash: Some(fields::tree_hash(t)),
            live_revision: 0,
            checked_revision: Some(0),
            prune: t.sync.prune,
            drift_allowed: None,
        };
        let mut detail = TenantDetail::default();
        for u in &t.users {
            let f = UserRow::of(u).fields();
            detail.users.insert(u.email.to_string(), row(f.clone(), Some(&f)));
        }
        for (k, v) in &t.flags {
            let f = fields::flag(v.as_json());
            detail.flags.insert(k.to_string(), row(f.clone(), Some(&f)));
        }
        (live, detail)
    }

    fn kinds_and_actions(plan: &TenantPlan) -> Vec<(String, Action)> {
        plan.changes.iter().map(|c| (c.resource.to_string(), c.action)).collect()
    }

    fn options(allow_mass_delete: bool) -> Options {
        Options { allow_mass_delete }
    }

    #[test]
    fn a_new_tenant_is_created_tenant_row_first_with_typed_rows_to_write() {
        let t = tenant(&[("ann@acme.example", Role::Owner)], HEAL_AND_PRUNE);
        let plan = diff_tenant(Some(&t), None, None, options(false));
        assert!(matches!(plan.state, TenantState::OutOfSync));
        assert_eq!(
            kinds_and_actions(&plan),
            [
                ("tenant/acme".to_owned(), Action::Create),
                ("tenant/acme/user/ann@acme.example".to_owned(), Action::Create),
                ("tenant/acme/flag/max_projects".to_owned(), Action::Create),
            ]
        );
        assert!(matches!(&plan.changes[0].desired, Some(Row::Tenant(r)) if r.plan == "pro" && r.budget.is_null()));
        assert!(matches!(&plan.changes[1].desired, Some(Row::User(r)) if r.role == "owner" && r.enabled));
        assert!(matches!(&plan.changes[2].desired, Some(Row::Flag(r)) if r.value == json!(5)));
        // A create shows the values it sets, not the empty ones.
        let user_fields: Vec<&str> = plan.changes[1].fields.iter().map(|f| f.field).collect();
        assert_eq!(user_fields, ["email", "enabled", "role"]);
        assert_eq!(plan.record.as_ref().map(|r| r.tree_hash), Some(fields::tree_hash(&t)));
    }

    #[test]
    fn a_git_edit_updates_exactly_the_fields_that_differ() {
        let before = tenant(&[("ann@acme.example", Role::Owner), ("dan@acme.example", Role::User)], HEAL_AND_PRUNE);
        let (live, detail) = applied(&before);
        let after = tenant(&[("ann@acme.example", Role::Owner), ("dan@acme.example", Role::Admin)], HEAL_AND_PRUNE);
        let plan = diff_tenant(Some(&after), Some(&live), Some(&detail), options(false));
        assert_eq!(kinds_and_actions(&plan), [("tenant/acme/user/dan@acme.example".to_owned(), Action::Update)]);
        let change = &plan.changes[0];
        assert_eq!((change.reason, change.id), (Reason::Git, Some(detail.users["dan@acme.example"].id)));
        assert_eq!(change.fields, [FieldChange { field: "role", before: json!("user"), after: json!("admin") }]);
        assert!(plan.drift.is_empty());
    }

    #[test]
    fn nothing_changed_is_synced_and_a_converged_tenant_is_not_even_read() {
        let t = tenant(&[("ann@acme.example", Role::Owner)], HEAL_AND_PRUNE);
        let (live, detail) = applied(&t);
        assert!(matches!(diff_tenant(Some(&t), Some(&live), Some(&detail), options(false)).state, TenantState::Synced));
        assert!(matches!(diff_tenant(Some(&t), Some(&live), None, options(false)).state, TenantState::Synced));
    }

    #[test]
    fn a_user_removed_from_git_is_deleted_when_the_tenant_prunes_and_an_orphan_when_it_does_not() {
        let users =
            [("ann@acme.example", Role::Owner), ("bob@acme.example", Role::User), ("cy@acme.example", Role::User)];
        for (policy, deleted) in [(HEAL_AND_PRUNE, true), (NEITHER, false)] {
            let (live, detail) = applied(&tenant(&users, policy));
            let t = tenant(&users[..2], policy);
            let plan = diff_tenant(Some(&t), Some(&live), Some(&detail), options(false));
            let cy = Resource::User { tenant: "acme".into(), email: "cy@acme.example".into() };
            if deleted {
                assert_eq!(kinds_and_actions(&plan), [(cy.to_string(), Action::Delete)]);
                assert_eq!(
                    plan.changes[0].fields[0],
                    FieldChange { field: "email", before: json!("cy@acme.example"), after: json!(null) }
                );
                assert!(plan.orphans.is_empty());
            } else {
                assert!(plan.changes.is_empty(), "{:?}", plan.changes);
                assert_eq!(plan.orphans, [cy]);
                assert!(matches!(plan.state, TenantState::OutOfSync), "an orphan is reported, so not synced");
                assert!(!plan.record.as_ref().is_some_and(|r| r.converged));
            }
        }
    }

    #[test]
    fn a_live_change_while_git_is_unchanged_is_drift_reverted_only_with_self_heal() {
        for policy in [HEAL_AND_PRUNE, NEITHER] {
            let t = tenant(&[("ann@acme.example", Role::Owner)], policy);
            let (live, mut detail) = applied(&t);
            if let Some(ann) = detail.users.get_mut("ann@acme.example") {
                ann.fields.insert("role", json!("user"));
            }
            let plan = diff_tenant(Some(&t), Some(&live), Some(&detail), options(false));
            assert_eq!(plan.drift.len(), 1);
            assert_eq!(
                plan.drift[0].fields,
                [DriftedField { field: "role", applied: json!("owner"), live: json!("user") }]
            );
            assert_eq!(plan.drift[0].revert, policy.self_heal);
            if policy.self_heal {
                assert_eq!(plan.changes.len(), 1);
                assert_eq!(plan.changes[0].reason, Reason::Drift);
                assert_eq!(plan.changes[0].fields[0].after, json!("owner"));
            } else {
                assert!(plan.changes.is_empty(), "kept and reported");
            }
        }
    }

    #[test]
    fn a_git_change_to_a_drifted_row_is_an_update_from_git_not_drift() {
        // Git applied owner, someone set user by hand, Git now says admin: three values, Git wins.
        let (live, mut detail) = applied(&tenant(&[("ann@acme.example", Role::Owner)], NEITHER));
        if let Some(ann) = detail.users.get_mut("ann@acme.example") {
            ann.fields.insert("role", json!("user"));
        }
        let t = tenant(&[("ann@acme.example", Role::Admin)], NEITHER);
        let plan = diff_tenant(Some(&t), Some(&live), Some(&detail), options(false));
        assert!(plan.drift.is_empty());
        assert_eq!(plan.changes.len(), 1);
        assert_eq!(plan.changes[0].reason, Reason::Git);
        assert_eq!(
            plan.changes[0].fields,
            [FieldChange { field: "role", before: json!("user"), after: json!("admin") }]
        );
    }

    #[test]
    fn rows_created_through_the_api_are_left_alone_until_git_declares_them() {
        let t = tenant(&[("ann@acme.example", Role::Owner)], HEAL_AND_PRUNE);
        let (live, mut detail) = applied(&t);
        let mut api_user = row(fields::user("eve@acme.example", None, "user", true), None);
        api_user.managed_by = ManagedBy::Api;
        detail.users.insert("eve@acme.example".into(), api_user);
        let plan = diff_tenant(Some(&t), Some(&live), Some(&detail), options(false));
        assert!(plan.changes.is_empty() && plan.orphans.is_empty(), "not Git's to prune: {plan:?}");

        let declared = tenant(&[("ann@acme.example", Role::Owner), ("eve@acme.example", Role::Admin)], HEAL_AND_PRUNE);
        let plan = diff_tenant(Some(&declared), Some(&live), Some(&detail), options(false));
        assert_eq!(plan.changes.len(), 1);
        assert_eq!((plan.changes[0].action, plan.changes[0].reason), (Action::Update, Reason::Adopt));
    }

    #[test]
    fn deleting_more_than_half_of_a_tenants_users_is_refused_unless_allowed() {
        let four = [
            ("ann@acme.example", Role::Owner),
            ("bob@acme.example", Role::User),
            ("cy@acme.example", Role::User),
            ("dee@acme.example", Role::User),
        ];
        let (live, detail) = applied(&tenant(&four, HEAL_AND_PRUNE));
        let half = diff_tenant(Some(&tenant(&four[..2], HEAL_AND_PRUNE)), Some(&live), Some(&detail), options(false));
        assert!(matches!(half.state, TenantState::OutOfSync), "half is not more than half");

        let most = tenant(&four[..1], HEAL_AND_PRUNE);
        let refused = diff_tenant(Some(&most), Some(&live), Some(&detail), options(false));
        let TenantState::Refused { reason } = &refused.state else { panic!("not refused: {:?}", refused.state) };
        assert_eq!(
            reason,
            "would delete 3 of 4 users; if this is intended, allow it once with `gatehouse sync allow-deletion acme` (or `apply --allow-mass-delete=acme`)"
        );
        let allowed = diff_tenant(Some(&most), Some(&live), Some(&detail), options(true));
        assert!(matches!(allowed.state, TenantState::OutOfSync));
        assert_eq!(allowed.changes.len(), 3);
    }

    #[test]
    fn a_tenant_removed_from_git_is_deleted_last_with_all_its_rows_and_guarded() {
        let t = tenant(&[("ann@acme.example", Role::Owner)], HEAL_AND_PRUNE);
        let (live, detail) = applied(&t);
        assert!(matches!(
            diff_tenant(None, Some(&live), Some(&detail), options(false)).state,
            TenantState::Refused { .. }
        ));
        let plan = diff_tenant(None, Some(&live), Some(&detail), options(true));
        assert_eq!(
            kinds_and_actions(&plan),
            [
                ("tenant/acme/user/ann@acme.example".to_owned(), Action::Delete),
                ("tenant/acme/flag/max_projects".to_owned(), Action::Delete),
                ("tenant/acme".to_owned(), Action::Delete),
            ]
        );
        assert!(plan.changes.iter().all(|c| c.desired.is_none()), "a delete writes no row");

        // Without prune the removed tenant stays, as an orphan, untouched.
        let mut kept = live.clone();
        kept.prune = false;
        let plan = diff_tenant(None, Some(&kept), Some(&detail), options(false));
        assert!(plan.changes.is_empty());
        assert_eq!(plan.orphans, [Resource::Tenant { name: "acme".into() }]);
    }
}
