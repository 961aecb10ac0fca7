//! `apply --plan`: applies a saved plan exactly, or nothing. One transaction reads live state with
//! every plan, application and tenant row locked, plans again, and applies only if the config, every
//! tenant's declaration and live revision, and so the plan itself, are what `plan --out` saved.
//! Also the lookups that turn `plan::overwrite` candidates into warnings naming who made the change.

use sqlx::{PgConnection, PgPool};

use super::{ApplyReport, Result, TenantOutcome, TenantResult, audit};
use crate::config::Validated;
use crate::plan::exact::{self, SavedPlan, Stale};
use crate::plan::live::LiveState;
use crate::plan::overwrite::{self, Overwrite};
use crate::plan::{self, Action, Change, Plan, TenantPlan, TenantState};
use crate::store::{self, status};

/// What `apply --plan` did.
#[derive(Debug)]
pub enum Outcome {
    /// The saved plan held and was applied, all in one transaction.
    Applied(ApplyReport),
    /// Something the plan read changed since: nothing was applied.
    Stale(Vec<Stale>),
    /// The plan was applied before (the same config files, nothing left to change): nothing to do.
    AlreadyApplied,
}

/// The changes in `plan` that overwrite a manual change, with who made it and when.
pub async fn overwrites(conn: &mut PgConnection, plan: &Plan, live: &LiveState) -> Result<Vec<Overwrite>> {
    let candidates = overwrite::candidates(plan, live);
    let resources: Vec<String> = candidates.iter().map(|c| c.resource.to_string()).collect();
    let history = store::reconciler_history(conn, &resources).await?;
    let mut warnings = Vec::new();
    for candidate in candidates {
        let resource = candidate.resource.to_string();
        let entries = history.get(&resource).map(Vec::as_slice).unwrap_or_default();
        let Some(mut warning) = overwrite::narrow(candidate, entries) else { continue };
        if let Some((actor, at)) = status::last_change_outside_git(conn, &resource).await? {
            warning.changed_by = Some(actor);
            warning.changed_at = Some(at);
        }
        warnings.push(warning);
    }
    Ok(warnings)
}

/// Applies `saved` if it still holds for `validated` (whose files hash to `content`, recorded as
/// `commit`). Holds the reconciler lock for its whole run.
pub async fn apply_plan(
    pool: &PgPool,
    validated: &Validated,
    saved: &SavedPlan,
    content: [u8; 32],
    commit: Option<&str>,
) -> Result<Outcome> {
    let lock = store::try_lock_reconciler(pool).await?;
    let outcome = apply_locked(pool, validated, saved, content, commit).await;
    lock.release().await?;
    outcome
}

async fn apply_locked(
    pool: &PgPool,
    validated: &Validated,
    saved: &SavedPlan,
    content: [u8; 32],
    commit: Option<&str>,
) -> Result<Outcome> {
    let mut tx = pool.begin().await?;
    store::mark_reconciler(&mut tx).await?;
    // Read under lock, so that nothing the check below compares can change before the commit.
    let mut live = store::load_live_locked(&mut tx).await?;
    let inspect = plan::tenants_to_inspect(&plan::desired_tenants(validated), &live);
    live.details = store::load_details(&mut tx, &inspect).await?;
    let plan = plan::diff(validated, &live, saved.options);
    let stale = exact::check(saved, content, commit, &exact::stamps(validated, &live), &plan);
    if !stale.is_empty() {
        tx.rollback().await?;
        if exact::already_applied(saved, content, &plan) {
            return Ok(Outcome::AlreadyApplied);
        }
        return Ok(Outcome::Stale(stale));
    }

    let mut report = ApplyReport { commit: commit.map(str::to_owned), ..ApplyReport::default() };
    let (deletes, upserts): (Vec<&Change>, Vec<&Change>) = plan.global.iter().partition(|c| c.action == Action::Delete);
    store::apply_global(&mut tx, &upserts, commit).await?;
    // Every audit row of the apply is written once, last: the audit chains' heads are then locked
    // in chain order at the end of the transaction, as every other writer locks them.
    let mut entries: Vec<_> = audit::for_changes(upserts.iter().copied(), None, commit).into_iter().collect();

    let ready: Vec<&TenantPlan> = plan.tenants.iter().filter(|t| t.needs_apply()).collect();
    store::apply_tenants(&mut tx, &ready, commit).await?;
    entries.extend(ready.iter().flat_map(|t| audit::for_changes(t.changes.iter(), Some(&t.name), commit)));
    for tenant in &plan.tenants {
        report.drift_kept += tenant.drift.iter().filter(|d| !d.revert).count();
        report.orphans += tenant.orphans.len();
        let outcome = match &tenant.state {
            TenantState::Invalid { problems } => TenantOutcome::Invalid { problems: problems.clone() },
            TenantState::Refused { reason } => {
                entries.push(audit::refusal(&tenant.name, reason, commit));
                TenantOutcome::Refused { reason: reason.clone() }
            }
            TenantState::OutOfSync | TenantState::Synced => {
                TenantOutcome::Applied { changes: tenant.visible_changes().count() }
            }
        };
        report.add(TenantResult::of(tenant, outcome));
    }
    store::apply_global(&mut tx, &deletes, commit).await?;
    entries.extend(audit::for_changes(deletes.iter().copied(), None, commit));
    store::insert_audit(&mut tx, &entries).await?;
    tx.commit().await?;
    report.applied_changes += upserts.iter().filter(|c| c.is_visible()).count() + deletes.len();
    Ok(Outcome::Applied(report))
}
