//! Stage 4 of the pipeline: read live state, plan, and apply.
//!
//! `apply` converges global resources first, then tenants, then deletes global resources the tenants
//! no longer use. Tenants are planned and applied in batches, streaming: while one batch is written
//! (one transaction for the batch), the next is planned, so memory stays bounded and the two cores
//! work together. A batch that fails is retried one tenant per transaction, so a tenant's failure
//! never holds back another, and every tenant is always at its old or its new state.

mod audit;
pub mod controller;
pub mod exact;

use std::collections::{BTreeSet, HashMap, HashSet};

use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::config::Validated;
use crate::model::Tenant;
use crate::plan::{self, Action, Change, Options, Plan, Reason, TenantPlan, TenantState};
use crate::store::history::ChangeCounts;
use crate::store::{self, StoreError};

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Tenants per batch: enough to amortise round trips, few enough that a failed batch is cheap to
/// redo tenant by tenant and that memory stays small.
const BATCH_TENANTS: usize = 500;

/// Batches written at once, each on its own connection, while the next one is planned: with two,
/// PostgreSQL writes on two cores (`cargo bench --bench declarative` measures it).
const BATCHES_IN_FLIGHT: usize = 2;
/// A tenant whose apply met a busy or unavailable database is tried this often in the pass, …
const TRANSIENT_TRIES: u32 = 5;
/// … waiting this long before the second try, and twice as long before each next one (3 s in all).
const TRANSIENT_BACKOFF: std::time::Duration = std::time::Duration::from_millis(200);

/// Reads live state and plans the changes that would converge it with `validated`, with a warning
/// for each change that overwrites a manual change.
pub async fn plan(pool: &PgPool, validated: &Validated, options: Options) -> Result<Plan> {
    Ok(plan_and_live(pool, validated, options, &BTreeSet::new()).await?.0)
}

/// `plan`, where the tenants in `once` (and those an operator allowed through the API) may make a
/// change the guards would refuse, as `apply_allowing` would.
pub async fn plan_allowing(
    pool: &PgPool,
    validated: &Validated,
    options: Options,
    once: &BTreeSet<String>,
) -> Result<Plan> {
    Ok(plan_and_live(pool, validated, options, once).await?.0)
}

/// `plan_allowing`, and the live state it was computed from (what `plan --out` records).
pub async fn plan_and_live(
    pool: &PgPool,
    validated: &Validated,
    options: Options,
    once: &BTreeSet<String>,
) -> Result<(Plan, plan::live::LiveState)> {
    let mut conn = pool.acquire().await?;
    let mut live = store::load_live(&mut conn).await?;
    let desired = plan::desired_tenants(validated);
    let inspect = plan::tenants_to_inspect(&desired, &live);
    live.details = store::load_details(&mut conn, &inspect).await?;
    let mut plan = plan::diff(validated, &live, options);
    let mut once = once.clone();
    once.extend(store::allowance::pending(&mut conn).await?);
    for tenant in &mut plan.tenants {
        if matches!(tenant.state, TenantState::Refused { .. }) && once.contains(&tenant.name) {
            *tenant = plan::plan_tenant(&tenant.name, validated, &desired, &live, allowing(options));
        }
    }
    plan.warnings = exact::overwrites(&mut conn, &plan, &live).await?;
    Ok((plan, live))
}

/// `options` for a tenant allowed its guarded change once.
fn allowing(mut options: Options) -> Options {
    options.allow_mass_delete = true;
    options
}

/// What `changes` do, by kind; bookkeeping-only updates are not counted.
pub fn change_counts<'a>(changes: impl Iterator<Item = &'a Change>) -> ChangeCounts {
    let mut counts = ChangeCounts::default();
    for change in changes.filter(|c| c.is_visible()) {
        match (change.reason, change.action) {
            (Reason::Drift, _) => counts.healed += 1,
            (_, Action::Create) => counts.created += 1,
            (_, Action::Update) => counts.updated += 1,
            (_, Action::Delete) => counts.deleted += 1,
        }
    }
    counts
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "camelCase")]
pub enum TenantOutcome {
    Applied {
        changes: usize,
    },
    Failed {
        reason: String,
    },
    /// The database was unavailable or busy through every retry: nothing a person must fix, so it
    /// is tried again at the next pass, soon, and never held back (issue 25.6).
    Deferred {
        reason: String,
    },
    Refused {
        reason: String,
    },
    Invalid {
        problems: Vec<crate::config::Diagnostic>,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct TenantResult {
    pub tenant: String,
    #[serde(flatten)]
    pub outcome: TenantOutcome,
    /// Drift found on this pass (reverted or kept).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub drift: Vec<plan::Drift>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub orphans: Vec<plan::Resource>,
    #[serde(skip)]
    pub source: Option<String>,
    /// What the plan applied (or would have), by kind; counted in the history only when applied. A
    /// tenant re-planned alone after its batch failed keeps its first plan's counts.
    #[serde(skip)]
    pub counts: ChangeCounts,
}

impl TenantResult {
    fn of(plan: &TenantPlan, outcome: TenantOutcome) -> Self {
        TenantResult {
            tenant: plan.name.clone(),
            outcome,
            drift: plan.drift.clone(),
            orphans: plan.orphans.clone(),
            source: plan.source.clone(),
            counts: change_counts(plan.changes.iter()),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
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
    /// Tenants whose guarded change was allowed once (`--allow-mass-delete=TENANT` or
    /// `POST /v1/sync/tenants/{tenant}/allow-deletion`) and applied.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allowed_once: Vec<String>,
    /// Changes applied to plans and applications, by kind.
    #[serde(skip)]
    pub global_counts: ChangeCounts,
    /// Drift of plans and applications that was reverted.
    #[serde(skip)]
    pub global_healed: Vec<plan::Drift>,
}

impl ApplyReport {
    /// Whether every declared resource converged (kept drift and orphans are not failures).
    pub fn succeeded(&self) -> bool {
        self.global_error.is_none() && self.tenants.iter().all(|t| matches!(t.outcome, TenantOutcome::Applied { .. }))
    }

    fn add(&mut self, result: TenantResult) {
        if let TenantOutcome::Applied { changes } = result.outcome {
            self.applied_changes += changes;
        }
        self.tenants.push(result);
    }
}

/// Converges live state with `validated`. Holds the reconciler lock for its whole run.
pub async fn apply(
    pool: &PgPool,
    validated: &Validated,
    options: Options,
    commit: Option<&str>,
) -> Result<ApplyReport> {
    apply_allowing(pool, validated, options, commit, &BTreeSet::new()).await
}

/// `apply`, where the tenants in `once` may make a change the guards refuse (as may those an operator
/// allowed through the API, whose allowance is then used up).
pub async fn apply_allowing(
    pool: &PgPool,
    validated: &Validated,
    options: Options,
    commit: Option<&str>,
    once: &BTreeSet<String>,
) -> Result<ApplyReport> {
    let lock = store::try_lock_reconciler(pool).await?;
    let report = apply_with_lock(&lock, pool, validated, options, commit, once).await;
    lock.release().await?;
    report
}

/// `apply_allowing` for a caller that already holds the reconciler lock (the `serve` leader); the
/// lock is the proof asked for.
#[tracing::instrument(name = "reconcile.apply", level = "debug", skip_all, fields(commit = commit.unwrap_or("")))]
pub async fn apply_with_lock(
    _lock: &store::ReconcilerLock,
    pool: &PgPool,
    validated: &Validated,
    options: Options,
    commit: Option<&str>,
    once: &BTreeSet<String>,
) -> Result<ApplyReport> {
    let started = std::time::Instant::now();
    let mut report = ApplyReport { commit: commit.map(str::to_owned), ..ApplyReport::default() };
    let (mut live, granted) = {
        let mut conn = pool.acquire().await?;
        (store::load_live(&mut conn).await?, store::allowance::pending(&mut conn).await?)
    };
    let once: BTreeSet<&str> = once.iter().chain(&granted).map(String::as_str).collect();
    let live_loaded = started.elapsed();

    let (global, drift) = plan::diff_global(validated, &live);
    report.global_healed = drift.into_iter().filter(|d| d.revert).collect();
    let (global_deletes, global_upserts): (Vec<&Change>, Vec<&Change>) =
        global.iter().partition(|c| c.action == Action::Delete);
    if let Err(e) = apply_global(pool, &global_upserts, commit).await {
        // Tenants may reference what failed to apply: stop before touching them.
        report.global_error = Some(format!("plans and applications: {e}"));
        return Ok(report);
    }
    report.applied_changes += global_upserts.iter().filter(|c| c.is_visible()).count();
    report.global_counts.add(change_counts(global_upserts.iter().copied()));

    let desired = plan::desired_tenants(validated);
    let inspect: HashSet<Uuid> = plan::tenants_to_inspect(&desired, &live).into_iter().collect();
    let names = plan::tenant_names(validated, &live);
    tracing::debug!(tenants = names.len(), inspect = inspect.len(), ?live_loaded, inspected = ?started.elapsed(), "planning tenants");
    let mut in_flight: std::collections::VecDeque<tokio::task::JoinHandle<Vec<TenantResult>>> = Default::default();
    // Tenants planned past a guard because they were allowed once.
    let mut used: HashSet<String> = HashSet::new();
    for chunk in names.chunks(BATCH_TENANTS) {
        let ids: Vec<Uuid> = chunk
            .iter()
            .filter_map(|n| live.tenants.get(n))
            .map(|t| t.row.id)
            .filter(|id| inspect.contains(id))
            .collect();
        live.details = store::load_details(&mut *pool.acquire().await?, &ids).await?;
        let mut ready = Vec::new();
        for name in chunk {
            let mut tenant = plan::plan_tenant(name, validated, &desired, &live, options);
            if matches!(tenant.state, TenantState::Refused { .. }) && once.contains(name.as_str()) {
                tenant = plan::plan_tenant(name, validated, &desired, &live, allowing(options));
                used.insert(name.clone());
            }
            report.drift_kept += tenant.drift.iter().filter(|d| !d.revert).count();
            report.orphans += tenant.orphans.len();
            match &tenant.state {
                TenantState::Invalid { problems } => {
                    report.add(TenantResult::of(&tenant, TenantOutcome::Invalid { problems: problems.clone() }))
                }
                TenantState::Refused { reason } => {
                    refuse(pool, &tenant.name, reason, commit).await?;
                    report.add(TenantResult::of(&tenant, TenantOutcome::Refused { reason: reason.clone() }));
                }
                TenantState::OutOfSync => ready.push(tenant),
                TenantState::Synced => {}
            }
        }
        if ready.is_empty() {
            continue;
        }
        if in_flight.len() == BATCHES_IN_FLIGHT
            && let Some(oldest) = in_flight.pop_front()
        {
            oldest.await.map_err(|e| StoreError::Task(e.to_string()))?.into_iter().for_each(|r| report.add(r));
        }
        let fallback: HashMap<String, Tenant> = ready
            .iter()
            .filter_map(|t| desired.get(t.name.as_str()))
            .map(|t| (t.name.to_string(), (*t).clone()))
            .collect();
        let allowed = ready.iter().filter(|t| used.contains(&t.name)).map(|t| t.name.clone()).collect();
        let batch =
            Batch { pool: pool.clone(), plans: ready, fallback, allowed, options, commit: commit.map(str::to_owned) };
        in_flight.push_back(tokio::spawn(batch.apply()));
    }
    let mut failed = Vec::new();
    for batch in in_flight {
        for result in batch.await.map_err(|e| StoreError::Task(e.to_string()))? {
            if matches!(result.outcome, TenantOutcome::Failed { .. }) {
                failed.push(result);
            } else {
                report.add(result);
            }
        }
    }
    // A tenant can fail only because another, in a later batch, had not yet given up a user's email;
    // with every batch committed, one more try settles that.
    // Once the database proved unavailable for one tenant, the others wait for the next pass too,
    // rather than each waiting out its own retries.
    let mut unavailable: Option<String> = None;
    for result in failed {
        let allow_once = used.contains(&result.tenant);
        let desired = desired.get(result.tenant.as_str()).copied();
        let outcome = match &unavailable {
            Some(reason) => TenantOutcome::Deferred { reason: reason.clone() },
            None => apply_alone(pool, &result.tenant, desired, options, allow_once, commit).await,
        };
        if let TenantOutcome::Deferred { reason } = &outcome {
            unavailable = Some(reason.clone());
        }
        report.add(TenantResult { outcome, ..result });
    }

    if let Err(e) = apply_global(pool, &global_deletes, commit).await {
        report.global_error = Some(format!("deleting plans and applications: {e}"));
    } else {
        report.applied_changes += global_deletes.len();
        report.global_counts.add(change_counts(global_deletes.iter().copied()));
    }
    report.tenants.sort_by(|a, b| a.tenant.cmp(&b.tenant));
    report.allowed_once = (report.tenants.iter())
        .filter(|t| used.contains(&t.tenant) && matches!(t.outcome, TenantOutcome::Applied { .. }))
        .map(|t| t.tenant.clone())
        .collect();
    Ok(report)
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

/// A batch of planned tenants, owned so that it can be written while the next batch is planned.
struct Batch {
    pool: PgPool,
    plans: Vec<TenantPlan>,
    /// The declarations of the batch's tenants, to re-plan them one by one if the batch fails.
    fallback: HashMap<String, Tenant>,
    /// Tenants of the batch allowed their guarded change once: their allowance is used up with it.
    allowed: HashSet<String>,
    options: Options,
    commit: Option<String>,
}

impl Batch {
    async fn apply(self) -> Vec<TenantResult> {
        let commit = self.commit.as_deref();
        let plans: Vec<&TenantPlan> = self.plans.iter().collect();
        let allowed: Vec<&str> = self.allowed.iter().map(String::as_str).collect();
        match apply_together(&self.pool, &plans, commit, &allowed).await {
            Ok(()) => plans
                .iter()
                .map(|t| TenantResult::of(t, TenantOutcome::Applied { changes: t.visible_changes().count() }))
                .collect(),
            Err(e) => {
                tracing::debug!(error = %e, tenants = plans.len(), "batch failed; applying its tenants one by one");
                let mut results = Vec::with_capacity(plans.len());
                for tenant in plans {
                    let desired = self.fallback.get(&tenant.name);
                    let allow_once = self.allowed.contains(&tenant.name);
                    let outcome =
                        apply_alone(&self.pool, &tenant.name, desired, self.options, allow_once, commit).await;
                    results.push(TenantResult::of(tenant, outcome));
                }
                results
            }
        }
    }
}

/// One transaction for a batch of tenants, applied only if none of them changed since it was read.
async fn apply_together(pool: &PgPool, batch: &[&TenantPlan], commit: Option<&str>, allowed: &[&str]) -> Result<()> {
    let mut tx = pool.begin().await?;
    store::mark_reconciler(&mut tx).await?;
    let ids: Vec<_> = batch.iter().filter_map(|t| t.id).collect();
    let revisions = store::lock_tenants(&mut tx, &ids).await?;
    if let Some(changed) = batch.iter().find(|t| t.id.is_some_and(|id| revisions.get(&id) != t.live_revision.as_ref()))
    {
        return Err(StoreError::Conflict(format!("tenant {}", changed.name)));
    }
    store::apply_tenants(&mut tx, batch, commit).await?;
    store::allowance::use_up(&mut tx, allowed).await?;
    let entries: Vec<_> =
        batch.iter().flat_map(|t| audit::for_changes(t.changes.iter(), Some(&t.name), commit)).collect();
    store::insert_audit(&mut tx, &entries).await?;
    tx.commit().await?;
    Ok(())
}

/// Re-plans and applies one tenant in its own transaction, reading it under lock. `allow_once`: the
/// tenant may make a change the guards refuse, using up its allowance.
async fn apply_alone(
    pool: &PgPool,
    name: &str,
    desired: Option<&Tenant>,
    options: Options,
    allow_once: bool,
    commit: Option<&str>,
) -> TenantOutcome {
    let attempt = || async {
        let mut tx = pool.begin().await?;
        store::mark_reconciler(&mut tx).await?;
        let live = store::load_tenant(&mut tx, name).await?;
        let ids: Vec<_> = live.iter().map(|t| t.row.id).collect();
        let details = store::load_details(&mut tx, &ids).await?;
        let detail = live.as_ref().and_then(|t| details.get(&t.row.id));
        let mut plan = plan::diff_tenant(desired, live.as_ref(), detail, options);
        let allowed = allow_once && matches!(plan.state, TenantState::Refused { .. });
        if allowed {
            plan = plan::diff_tenant(desired, live.as_ref(), detail, allowing(options));
            store::allowance::use_up(&mut tx, &[name]).await?;
        }
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
    let mut tries = 0;
    loop {
        tries += 1;
        match attempt().await {
            Ok(outcome) => return outcome,
            // A pool timeout has waited long already (the reconciler's pool waits 30 s): no retry.
            Err(e) if e.is_transient() && !e.is_pool_timeout() && tries < TRANSIENT_TRIES => {
                tracing::debug!(tenant = name, error = %e, tries, "the database was busy; trying the tenant again");
                tokio::time::sleep(TRANSIENT_BACKOFF * 2u32.pow(tries - 1)).await;
            }
            Err(e) if e.is_transient() => {
                tracing::warn!(tenant = name, error = %e, "the database stayed busy; the tenant waits for the next pass");
                return TenantOutcome::Deferred { reason: e.to_string() };
            }
            Err(e) => {
                tracing::warn!(tenant = name, error = %e, "tenant failed to apply");
                return TenantOutcome::Failed { reason: e.to_string() };
            }
        }
    }
}

/// A refusal is a denial: it is audited, in its own transaction.
async fn refuse(pool: &PgPool, tenant: &str, reason: &str, commit: Option<&str>) -> Result<()> {
    let mut conn = pool.acquire().await?;
    store::insert_audit(&mut conn, &[audit::refusal(tenant, reason, commit)]).await
}
