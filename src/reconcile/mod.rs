//! Stage 4 of the pipeline: read live state, plan, and apply. `apply` converges global resources
//! first, then tenants in batches (each batch one transaction; a batch that fails is retried one
//! tenant per transaction, so one tenant's failure never holds back another), then global deletes.

mod audit;

use std::collections::HashMap;

use serde::Serialize;
use sqlx::PgPool;

use crate::config::Validated;
use crate::model::Tenant;
use crate::plan::{self, Action, Change, Options, Plan, TenantPlan, TenantState};
use crate::store::{self, StoreError};

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Tenants per transaction on the fast path; large enough to amortise round trips, small enough that
/// a failed batch is cheap to redo tenant by tenant.
const BATCH_TENANTS: usize = 500;
const BATCH_CHANGES: usize = 20_000;

/// Reads live state and plans the changes that would converge it with `validated`.
pub async fn plan(pool: &PgPool, validated: &Validated, options: Options) -> Result<Plan> {
    let mut conn = pool.acquire().await?;
    let mut live = store::load_live(&mut conn).await?;
    let inspect = plan::tenants_to_inspect(validated, &live);
    live.details = store::load_details(&mut conn, &inspect).await?;
    Ok(plan::diff(validated, &live, options))
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "camelCase")]
pub enum TenantOutcome {
    Applied { changes: usize },
    Failed { reason: String },
    Refused { reason: String },
    Invalid { problems: Vec<crate::config::Diagnostic> },
}

#[derive(Debug, Clone, Serialize)]
pub struct TenantResult {
    pub tenant: String,
    #[serde(flatten)]
    pub outcome: TenantOutcome,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ApplyReport {
    pub commit: Option<String>,
    /// Visible changes applied, all kinds together.
    pub applied_changes: usize,
    /// Drift found and left in place because the tenant does not self-heal.
    pub drift_kept: usize,
    pub orphans: usize,
    pub global_error: Option<String>,
    /// Every tenant that was not already in sync.
    pub tenants: Vec<TenantResult>,
}

impl ApplyReport {
    /// Whether every declared resource converged (kept drift and orphans are not failures).
    pub fn succeeded(&self) -> bool {
        self.global_error.is_none() && self.tenants.iter().all(|t| matches!(t.outcome, TenantOutcome::Applied { .. }))
    }
}

/// Converges live state with `validated`. Holds the reconciler lock for its whole run.
pub async fn apply(
    pool: &PgPool,
    validated: &Validated,
    options: Options,
    commit: Option<&str>,
) -> Result<ApplyReport> {
    let lock = store::try_lock_reconciler(pool).await?;
    let report = apply_locked(pool, validated, options, commit).await;
    lock.release().await?;
    report
}

async fn apply_locked(
    pool: &PgPool,
    validated: &Validated,
    options: Options,
    commit: Option<&str>,
) -> Result<ApplyReport> {
    let plan = plan(pool, validated, options).await?;
    let mut report = ApplyReport {
        commit: commit.map(str::to_owned),
        drift_kept: plan.tenants.iter().flat_map(|t| &t.drift).filter(|d| !d.revert).count(),
        orphans: plan.tenants.iter().map(|t| t.orphans.len()).sum(),
        ..ApplyReport::default()
    };

    let (global_deletes, global_upserts): (Vec<&Change>, Vec<&Change>) =
        plan.global.iter().partition(|c| c.action == Action::Delete);
    if let Err(e) = apply_global(pool, &global_upserts, commit).await {
        // Tenants may reference what failed to apply: stop before touching them.
        report.global_error = Some(format!("plans and applications: {e}"));
        return Ok(report);
    }
    report.applied_changes += global_upserts.iter().filter(|c| c.is_visible()).count();

    let mut ready = Vec::new();
    for tenant in &plan.tenants {
        match &tenant.state {
            TenantState::Invalid { problems } => report.tenants.push(TenantResult {
                tenant: tenant.name.clone(),
                outcome: TenantOutcome::Invalid { problems: problems.clone() },
            }),
            TenantState::Refused { reason } => {
                refuse(pool, tenant, reason, commit).await?;
                report.tenants.push(TenantResult {
                    tenant: tenant.name.clone(),
                    outcome: TenantOutcome::Refused { reason: reason.clone() },
                });
            }
            TenantState::OutOfSync => ready.push(tenant),
            TenantState::Synced => {}
        }
    }
    let desired: HashMap<&str, &Tenant> = validated.desired.tenants.iter().map(|t| (t.name.as_str(), t)).collect();
    for batch in batches(&ready) {
        match apply_batch(pool, batch, commit).await {
            Ok(()) => {
                for tenant in batch {
                    let changes = tenant.visible_changes().count();
                    report.applied_changes += changes;
                    report.tenants.push(TenantResult {
                        tenant: tenant.name.clone(),
                        outcome: TenantOutcome::Applied { changes },
                    });
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, tenants = batch.len(), "batch failed; applying its tenants one by one");
                for tenant in batch {
                    let outcome =
                        apply_alone(pool, &tenant.name, desired.get(tenant.name.as_str()).copied(), options, commit)
                            .await;
                    if let TenantOutcome::Applied { changes } = outcome {
                        report.applied_changes += changes;
                    }
                    report.tenants.push(TenantResult { tenant: tenant.name.clone(), outcome });
                }
            }
        }
    }

    if let Err(e) = apply_global(pool, &global_deletes, commit).await {
        report.global_error = Some(format!("deleting plans and applications: {e}"));
    } else {
        report.applied_changes += global_deletes.len();
    }
    report.tenants.sort_by(|a, b| a.tenant.cmp(&b.tenant));
    Ok(report)
}

fn batches<'a>(ready: &'a [&'a TenantPlan]) -> Vec<&'a [&'a TenantPlan]> {
    let mut out = Vec::new();
    let (mut start, mut changes) = (0, 0);
    for (i, tenant) in ready.iter().enumerate() {
        if i > start && (i - start >= BATCH_TENANTS || changes + tenant.changes.len() > BATCH_CHANGES) {
            out.push(&ready[start..i]);
            (start, changes) = (i, 0);
        }
        changes += tenant.changes.len();
    }
    if start < ready.len() {
        out.push(&ready[start..]);
    }
    out
}

async fn apply_global(pool: &PgPool, changes: &[&Change], commit: Option<&str>) -> Result<()> {
    if changes.is_empty() {
        return Ok(());
    }
    let mut tx = pool.begin().await?;
    store::mark_reconciler(&mut tx).await?;
    store::apply_global(&mut tx, changes, commit).await?;
    store::insert_audit(&mut tx, &audit::for_changes(changes.iter().copied(), None, commit)).await?;
    tx.commit().await?;
    Ok(())
}

/// One transaction for a batch of tenants, applied only if none of them changed since it was read.
async fn apply_batch(pool: &PgPool, batch: &[&TenantPlan], commit: Option<&str>) -> Result<()> {
    let mut tx = pool.begin().await?;
    store::mark_reconciler(&mut tx).await?;
    let ids: Vec<_> = batch.iter().filter_map(|t| t.id).collect();
    let revisions = store::lock_tenants(&mut tx, &ids).await?;
    for tenant in batch {
        if let Some(id) = tenant.id {
            if revisions.get(&id) != tenant.live_revision.as_ref() {
                return Err(StoreError::Conflict(format!("tenant {}", tenant.name)));
            }
        }
    }
    store::apply_tenants(&mut tx, batch, commit).await?;
    let entries: Vec<_> =
        batch.iter().flat_map(|t| audit::for_changes(t.changes.iter(), Some(&t.name), commit)).collect();
    store::insert_audit(&mut tx, &entries).await?;
    tx.commit().await?;
    Ok(())
}

/// Re-plans and applies one tenant in its own transaction, reading it under lock.
async fn apply_alone(
    pool: &PgPool,
    name: &str,
    desired: Option<&Tenant>,
    options: Options,
    commit: Option<&str>,
) -> TenantOutcome {
    let attempt = async {
        let mut tx = pool.begin().await?;
        store::mark_reconciler(&mut tx).await?;
        let live = store::load_tenant(&mut tx, name).await?;
        let ids: Vec<_> = live.iter().map(|t| t.row.id).collect();
        let details = store::load_details(&mut tx, &ids).await?;
        let detail = live.as_ref().and_then(|t| details.get(&t.row.id));
        let plan = plan::diff_tenant(desired, live.as_ref(), detail, options);
        if let TenantState::Refused { reason } = &plan.state {
            return Ok(TenantOutcome::Refused { reason: reason.clone() });
        }
        if plan.needs_apply() {
            store::apply_tenants(&mut tx, &[&plan], commit).await?;
            store::insert_audit(&mut tx, &audit::for_changes(plan.changes.iter(), Some(name), commit)).await?;
        }
        tx.commit().await?;
        Ok::<_, StoreError>(TenantOutcome::Applied { changes: plan.visible_changes().count() })
    };
    match attempt.await {
        Ok(outcome) => outcome,
        Err(e) => {
            tracing::warn!(tenant = name, error = %e, "tenant failed to apply");
            TenantOutcome::Failed { reason: e.to_string() }
        }
    }
}

/// A refusal is a denial: it is audited, in its own transaction.
async fn refuse(pool: &PgPool, tenant: &TenantPlan, reason: &str, commit: Option<&str>) -> Result<()> {
    let mut conn = pool.acquire().await?;
    store::insert_audit(&mut conn, &[audit::refusal(&tenant.name, reason, commit)]).await
}
