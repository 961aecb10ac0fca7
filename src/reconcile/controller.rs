//! The `serve` reconcile loop, shaped like kube-runtime's controller: a pass is
//! fetch → load → plan → apply | report drift → write status; the next pass is always scheduled (after
//! the interval, or sooner when a webhook, a manual sync or a file change wakes it); errors back off
//! exponentially with jitter, capped at the interval.
//!
//! Only the replica holding the reconciler lock runs passes; the others keep trying to take it, so one
//! takes over within an interval when the leader dies. A commit whose apply failed is not retried in a
//! loop: its failed tenants are held back until a new commit or a manual sync.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{ApplyReport, TenantOutcome};
use crate::config::{Diagnostic, Subject, Validated};
use crate::plan::Options;
use crate::source::Source;
use crate::store::history::{self, ChangeCounts, HealedField, PassEntry, TenantPass};
use crate::store::listen::{Event, Listener};
use crate::store::status::{self, PassRecord, TenantStatus};
use crate::store::{self, ReconcilerLock};
use crate::telemetry::Metrics;

pub struct Controller {
    pub pool: PgPool,
    pub source: Source,
    pub options: Options,
    pub interval: Duration,
    /// This replica's name, shown as the leader in the status.
    pub replica: String,
    pub wake: Arc<Notify>,
    pub metrics: Arc<Metrics>,
    /// Passes kept in the sync history (`--history-limit`).
    pub history_limit: i64,
}

/// What woke a pass, as the history shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    Start,
    Interval,
    Webhook,
    Manual,
    FileChange,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Interval => "interval",
            Self::Webhook => "webhook",
            Self::Manual => "manual",
            Self::FileChange => "file change",
        }
    }
}

/// What a pass did, for logs and for choosing the next delay.
enum Pass {
    NotLeader,
    Paused,
    /// Woken by a trigger, but the config folder is the same tree as on the last pass: a commit
    /// that touched only files outside `--path`. Nothing to read or apply.
    Unchanged,
    Done {
        commit: Option<String>,
        succeeded: bool,
        /// Some tenants met a busy database: the next pass comes soon, not after the interval.
        deferred: bool,
    },
}

#[derive(Debug, thiserror::Error)]
enum PassError {
    #[error(transparent)]
    Source(#[from] crate::source::SourceError),
    #[error(transparent)]
    Config(#[from] crate::config::ReadError),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("background task failed: {0}")]
    Task(String),
}

impl PassError {
    fn kind(&self) -> &'static str {
        match self {
            Self::Source(_) => "source",
            Self::Config(_) => "config",
            Self::Store(_) => "database",
            Self::Task(_) => "internal",
        }
    }
}

/// State kept by the leader between passes.
#[derive(Default)]
struct Memory {
    lock: Option<ReconcilerLock>,
    /// Parsed files of the previous pass: a pass parses only what changed.
    parsed: Option<crate::config::ParseCache>,
    /// The content (fingerprint of every file) whose apply failed, with the tenants that failed and why.
    failed: Option<([u8; 32], BTreeMap<String, String>)>,
    /// Manual syncs already acted on; a higher count in the status asks for a retry.
    handled_sync_requests: i64,
    /// The git tree id of the config folder on the last pass that ran to the end.
    last_tree: Option<String>,
    errors_in_a_row: u32,
    /// Passes in a row in which some tenants met a busy database.
    deferred_in_a_row: u32,
    /// Passes this replica ran to the end while leading; the first is triggered by `start`.
    passes: u64,
    /// The version, failed tenants and error of the last failing pass recorded in the history: a
    /// pass that fails the same way again (held back, every interval) is not recorded again.
    recorded_failure: Option<(Option<String>, BTreeSet<String>, Option<String>)>,
}

impl Controller {
    /// Runs passes until `shutdown`; a pass in progress finishes first (each tenant is applied in a
    /// transaction, so stopping between passes never leaves one half-applied). Waiting for the
    /// database before a pass leads, or to record a failed one, ends at once on `shutdown`: with the
    /// database away, a stop would otherwise wait out the pool's 30 s.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut memory = Memory::default();
        // Whether a webhook, a manual sync or a file change woke this pass (not the interval).
        let mut triggered = false;
        loop {
            let started = Instant::now();
            let delay = match self.pass(&mut memory, triggered, &shutdown).await {
                Ok(pass) => {
                    memory.errors_in_a_row = 0;
                    let mut delay = self.interval;
                    if let Pass::Done { commit, succeeded, deferred } = pass {
                        self.metrics.pass_finished(started.elapsed(), succeeded);
                        // A pass with problems has logged them as a warning already.
                        if succeeded {
                            tracing::info!(commit = commit.as_deref().unwrap_or("-"), succeeded, elapsed = ?started.elapsed(), "reconciled");
                        }
                        if deferred {
                            memory.deferred_in_a_row += 1;
                            delay = backoff(memory.deferred_in_a_row, self.interval);
                        } else {
                            memory.deferred_in_a_row = 0;
                        }
                    }
                    delay
                }
                Err(error) => {
                    memory.errors_in_a_row += 1;
                    self.metrics.error(error.kind());
                    tracing::warn!(%error, attempt = memory.errors_in_a_row, "reconcile pass failed");
                    tokio::select! {
                        () = shutdown.cancelled() => {}
                        () = self.record_error(&error) => {}
                    }
                    backoff(memory.errors_in_a_row, self.interval)
                }
            };
            triggered = false;
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(delay) => {}
                () = self.wake.notified() => {
                    triggered = true;
                    // Coalesce a burst of triggers (a push touching many files) into one pass.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        if let Some(lock) = memory.lock.take() {
            let _ = lock.release().await;
        }
        tracing::info!("reconciler stopped");
    }

    #[tracing::instrument(name = "reconcile.pass", level = "debug", skip_all, fields(triggered = triggered))]
    async fn pass(
        &self,
        memory: &mut Memory,
        triggered: bool,
        shutdown: &CancellationToken,
    ) -> Result<Pass, PassError> {
        if !self.lead(memory, shutdown).await {
            return Ok(Pass::NotLeader);
        }
        let (started_at, started) = (chrono::Utc::now(), Instant::now());
        let state = status::sync_state(&mut *self.pool.acquire().await.map_err(store::StoreError::from)?).await?;
        if state.paused {
            self.record(&mut PassRecord { state: "Paused".into(), ..self.empty_record(&state) }, None).await?;
            return Ok(Pass::Paused);
        }
        let source = self.source.clone();
        let snapshot = tokio::task::spawn_blocking(move || source.fetch()).await.map_err(task)??;
        let requested = state.sync_requests > memory.handled_sync_requests;
        // Interval passes always run (they look for drift); a triggered one is skipped when the
        // config folder did not change, so commits elsewhere in a monorepo cost one fetch.
        if triggered && !requested && snapshot.tree.is_some() && snapshot.tree == memory.last_tree {
            tracing::debug!(commit = snapshot.commit.as_deref().unwrap_or("-"), "config folder unchanged; no pass");
            return Ok(Pass::Unchanged);
        }
        let dir = snapshot.dir.clone();
        let mut cache = memory.parsed.take().unwrap_or_default();
        let (loaded, cache) =
            tokio::task::spawn_blocking(move || (crate::config::load_repo_cached(&dir, &mut cache), cache))
                .await
                .map_err(task)?;
        let content = cache.fingerprint();
        memory.parsed = Some(cache);
        let mut validated = loaded?;
        let commit = match &self.source {
            Source::Directory(_) => Some(crate::source::directory_version(&snapshot, &content)),
            Source::Git(_) => snapshot.commit.clone(),
        };

        let trigger = match (&self.source, memory.passes, requested, triggered) {
            (_, 0, _, _) => Trigger::Start,
            (_, _, true, _) => Trigger::Manual,
            (_, _, _, false) => Trigger::Interval,
            (Source::Directory(_), _, _, true) => Trigger::FileChange,
            (Source::Git(_), _, _, true) => Trigger::Webhook,
        };
        memory.handled_sync_requests = state.sync_requests;
        let retry = requested || memory.failed.as_ref().is_none_or(|(failed, _)| *failed != content);
        if retry {
            memory.failed = None;
        } else if let Some((_, tenants)) = &memory.failed {
            hold_back(&mut validated, tenants, commit.as_deref());
        }
        let lock = memory.lock.as_ref().ok_or(PassError::Task("leadership lost".into()))?;
        let report =
            super::apply_with_lock(lock, &self.pool, &validated, self.options, commit.as_deref(), &BTreeSet::new())
                .await?;

        let failures: BTreeMap<String, String> = report
            .tenants
            .iter()
            .filter_map(|t| match &t.outcome {
                TenantOutcome::Failed { reason } | TenantOutcome::Refused { reason } => {
                    Some((t.tenant.clone(), reason.clone()))
                }
                _ => None,
            })
            .collect();
        let succeeded = validated.is_valid() && report.succeeded();
        if !failures.is_empty() {
            memory.failed = Some((content, failures));
        }
        let mut record = self.pass_record(&validated, &report, commit.clone(), succeeded);
        record.source_author = snapshot.author;
        record.source_subject = snapshot.subject;
        let mut entry = history_entry(&report, &record, trigger.as_str());
        if !succeeded {
            tracing::warn!(
                commit = commit.as_deref().unwrap_or("-"),
                succeeded,
                failed = entry.tenants.iter().filter(|t| t.outcome != "applied").count(),
                error = record.error.as_deref().unwrap_or("-"),
                elapsed = ?started.elapsed(),
                "reconciled with problems: {}",
                problems_line(&entry.tenants)
            );
        }
        let failure = (!succeeded).then(|| {
            let failed = entry.tenants.iter().filter(|t| t.outcome != "applied").map(|t| t.tenant.clone());
            (commit.clone(), failed.collect::<BTreeSet<_>>(), record.error.clone())
        });
        let keep = entry.counts.any() || (failure.is_some() && failure != memory.recorded_failure);
        if keep {
            entry.started_at = started_at;
            entry.duration_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
            memory.recorded_failure = failure;
        } else if succeeded {
            memory.recorded_failure = None;
        }
        self.record(&mut record, keep.then_some(&entry)).await?;
        self.metrics.observe(&record);
        memory.last_tree = snapshot.tree;
        memory.passes += 1;
        let deferred = report.tenants.iter().any(|t| matches!(t.outcome, TenantOutcome::Deferred { .. }));
        Ok(Pass::Done { commit, succeeded, deferred })
    }

    /// Keeps or takes the reconciler lock; `false` when another replica leads.
    async fn lead(&self, memory: &mut Memory, shutdown: &CancellationToken) -> bool {
        if let Some(lock) = memory.lock.as_mut() {
            if lock.still_held().await {
                return true;
            }
            tracing::warn!("lost the database connection holding leadership");
            memory.lock = None;
        }
        let attempt = tokio::select! {
            attempt = store::try_lock_reconciler(&self.pool) => attempt,
            () = shutdown.cancelled() => return false,
        };
        match attempt {
            Ok(lock) => {
                tracing::info!(replica = %self.replica, "leading the reconciler");
                memory.lock = Some(lock);
                true
            }
            Err(store::StoreError::Busy) => false,
            Err(error) => {
                tracing::warn!(%error, "cannot reach the database to lead");
                false
            }
        }
    }

    fn empty_record(&self, state: &status::SyncState) -> PassRecord {
        PassRecord {
            state: state.state.clone(),
            source_commit: None,
            source_author: None,
            source_subject: None,
            synced_commit: None,
            failed_commit: state.failed_commit.clone(),
            error: None,
            leader: self.replica.clone(),
            counts: state.counts.clone(),
            tenants: None,
        }
    }

    fn pass_record(
        &self,
        validated: &Validated,
        report: &ApplyReport,
        commit: Option<String>,
        succeeded: bool,
    ) -> PassRecord {
        let tenants: Vec<TenantStatus> = report.tenants.iter().filter_map(tenant_status).collect();
        let count = |state: &str| tenants.iter().filter(|t| t.state == state).count();
        let (errors, drifted) = (count("Error"), count("Drifted"));
        let problems: Vec<String> = (validated.problems.iter())
            .filter(|(s, _)| !matches!(s, Subject::Tenant(_)))
            .map(|(_, d)| d.to_string())
            .chain(report.global_error.clone())
            .chain((errors > 0).then(|| format!("{errors} tenants not applied; see /v1/sync/tenants")))
            .collect();
        // Tenants that only met a busy database are applied at the next pass: nothing to fix.
        let only_deferred = !succeeded
            && validated.is_valid()
            && report.global_error.is_none()
            && report
                .tenants
                .iter()
                .all(|t| matches!(t.outcome, TenantOutcome::Applied { .. } | TenantOutcome::Deferred { .. }));
        let state = if only_deferred {
            "OutOfSync"
        } else if !succeeded {
            "Error"
        } else if drifted > 0 {
            "Drifted"
        } else {
            "Synced"
        };
        PassRecord {
            state: state.to_owned(),
            synced_commit: succeeded.then(|| commit.clone()).flatten(),
            failed_commit: if succeeded || only_deferred { None } else { commit.clone() },
            source_commit: commit,
            source_author: None,
            source_subject: None,
            error: (!problems.is_empty()).then(|| problems.join("; ")),
            leader: self.replica.clone(),
            // Counted in the database when the pass is recorded (`status::recount`).
            counts: json!({}),
            tenants: Some(tenants),
        }
    }

    /// Writes the status of a pass, with its tenant counts taken from the database (every tenant in
    /// it, in Git or not, and those whose declaration has problems), and its history entry if any.
    async fn record(&self, record: &mut PassRecord, entry: Option<&PassEntry>) -> Result<(), store::StoreError> {
        let mut tx = self.pool.begin().await?;
        status::record_pass(&mut tx, record).await?;
        if record.tenants.is_some() {
            record.counts = status::recount(&mut tx).await?;
        }
        if let Some(entry) = entry {
            let mut entry = entry.clone();
            let resources: Vec<String> = (entry.tenants.iter().flat_map(|t| &t.drift))
                .chain(&entry.healed_global)
                .map(|f| f.resource.clone())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            let who = history::last_changes_outside_git(&mut tx, &resources).await?;
            for field in entry.tenants.iter_mut().flat_map(|t| t.drift.iter_mut()).chain(&mut entry.healed_global) {
                if let Some((actor, at)) = who.get(&field.resource) {
                    field.changed_by = Some(actor.clone());
                    field.changed_at = Some(*at);
                }
            }
            history::record(&mut tx, &entry, self.history_limit).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn record_error(&self, error: &PassError) {
        let Ok(mut conn) = self.pool.acquire().await else { return };
        let Ok(state) = status::sync_state(&mut conn).await else { return };
        let record = PassRecord { state: "Error".into(), error: Some(error.to_string()), ..self.empty_record(&state) };
        if let Err(e) = status::record_pass(&mut conn, &record).await {
            tracing::warn!(error = %e, "cannot record the failed pass");
        }
    }
}

/// The history entry of a pass: what it did to each tenant it changed, reverted, refused or failed.
/// Who made each reverted change is filled in from the audit log when it is recorded.
fn history_entry(report: &ApplyReport, record: &PassRecord, trigger: &str) -> PassEntry {
    let healed = |drift: &[crate::plan::Drift]| -> Vec<HealedField> {
        (drift.iter().filter(|d| d.revert))
            .flat_map(|d| {
                d.fields.iter().map(|f| HealedField {
                    resource: d.resource.to_string(),
                    field: f.field.to_owned(),
                    applied: f.applied.clone(),
                    reverted: f.live.clone(),
                    changed_by: None,
                    changed_at: None,
                })
            })
            .collect()
    };
    let mut counts = report.global_counts;
    let (mut refused, mut failed) = (0, 0);
    let mut tenants = Vec::new();
    for t in &report.tenants {
        let (outcome, problem) = match &t.outcome {
            TenantOutcome::Applied { .. } => ("applied", None),
            TenantOutcome::Refused { reason } => ("refused", Some(reason.clone())),
            TenantOutcome::Failed { reason } => ("failed", Some(reason.clone())),
            TenantOutcome::Deferred { reason } => ("deferred", Some(reason.clone())),
            TenantOutcome::Invalid { problems } => ("invalid", problems.first().map(ToString::to_string)),
        };
        let applied = outcome == "applied";
        match outcome {
            "refused" => refused += 1,
            "failed" | "invalid" | "deferred" => failed += 1,
            _ => counts.add(t.counts),
        }
        if applied && !t.counts.any() {
            continue;
        }
        tenants.push(TenantPass {
            tenant: t.tenant.clone(),
            outcome: outcome.to_owned(),
            counts: if applied { t.counts } else { ChangeCounts::default() },
            problem,
            drift: if applied { healed(&t.drift) } else { Vec::new() },
        });
    }
    PassEntry {
        id: 0,
        started_at: chrono::Utc::now(),
        duration_ms: 0,
        trigger: trigger.to_owned(),
        state: record.state.clone(),
        version: record.source_commit.clone(),
        author: record.source_author.clone(),
        subject: record.source_subject.clone(),
        counts,
        refused,
        failed,
        error: record.error.clone(),
        healed_global: healed(&report.global_healed),
        tenants_total: i64::try_from(tenants.len()).unwrap_or(i64::MAX),
        tenants,
    }
}

/// Tenants shown by name in the warning of a pass with problems; the count says how many more.
const PROBLEMS_LOGGED: usize = 20;

/// `tenant: first problem; …` for the tenants a pass did not apply.
fn problems_line(tenants: &[TenantPass]) -> String {
    let failed: Vec<&TenantPass> = tenants.iter().filter(|t| t.outcome != "applied").collect();
    let mut line: Vec<String> = (failed.iter().take(PROBLEMS_LOGGED))
        .map(|t| format!("{}: {}", t.tenant, t.problem.as_deref().unwrap_or(&t.outcome)))
        .collect();
    if failed.len() > PROBLEMS_LOGGED {
        line.push(format!("and {} more tenants", failed.len() - PROBLEMS_LOGGED));
    }
    if line.is_empty() {
        line.push("no tenant failed; see the error".to_owned());
    }
    line.join("; ")
}

fn task(error: tokio::task::JoinError) -> PassError {
    PassError::Task(error.to_string())
}

/// Tenants that failed at `commit` are held back like invalid ones until something changes.
fn hold_back(validated: &mut Validated, tenants: &BTreeMap<String, String>, commit: Option<&str>) {
    for (tenant, reason) in tenants {
        let message = format!(
            "not retried: applying commit {} failed ({reason}); push a new commit or POST /v1/sync to retry",
            commit.unwrap_or("-")
        );
        let diagnostic = Diagnostic { file: String::new(), line: 0, column: 0, path: String::new(), message };
        validated.problems.push((Subject::Tenant(tenant.clone()), diagnostic));
    }
}

/// The status row of a tenant that is not simply in sync; `None` for one that is.
fn tenant_status(result: &super::TenantResult) -> Option<TenantStatus> {
    let (state, errors) = match &result.outcome {
        TenantOutcome::Invalid { problems } => ("Error", serde_json::to_value(problems).unwrap_or_default()),
        TenantOutcome::Failed { reason } | TenantOutcome::Refused { reason } => {
            ("Error", json!([{ "message": reason }]))
        }
        TenantOutcome::Deferred { reason } => (
            "OutOfSync",
            json!([{ "message": format!("the database was busy ({reason}); the tenant is applied at the next pass") }]),
        ),
        TenantOutcome::Applied { .. } if result.drift.iter().any(|d| !d.revert) => ("Drifted", json!([])),
        TenantOutcome::Applied { .. } if !result.orphans.is_empty() => ("Synced", json!([])),
        TenantOutcome::Applied { .. } => return None,
    };
    let drift: Vec<_> = result
        .drift
        .iter()
        .flat_map(|d| {
            d.fields.iter().map(move |f| {
                json!({ "resource": d.resource.to_string(), "field": f.field, "applied": f.applied, "live": f.live, "reverted": d.revert, "allowed": d.allowed })
            })
        })
        .collect();
    let orphans: Vec<String> = result.orphans.iter().map(ToString::to_string).collect();
    Some(TenantStatus {
        tenant: result.tenant.clone(),
        state: state.to_owned(),
        source_file: result.source.clone(),
        last_attempt_at: None,
        errors,
        drift: json!(drift),
        orphans: json!(orphans),
    })
}

/// 1 s, 2 s, 4 s, … capped at `cap`, each scaled by a jitter in [0.5, 1).
fn backoff(attempt: u32, cap: Duration) -> Duration {
    let exponential = Duration::from_secs(1u64 << attempt.saturating_sub(1).min(16)).min(cap);
    let jitter = 0.5 + f64::from(uuid::Uuid::now_v7().as_u128() as u16) / f64::from(u16::MAX) / 2.0;
    exponential.mul_f64(jitter)
}

/// Wakes `wake` on every message of the sync channel (webhooks and manual syncs on any replica),
/// and after a reconnection, since a request may have been sent while the connection was down.
pub async fn listen_for_syncs(pool: PgPool, wake: Arc<Notify>, shutdown: CancellationToken) {
    let mut listener = Listener::new(&pool, "sync", &[store::SYNC_CHANNEL]);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            event = listener.next() => match event {
                // The first pass runs at start anyway.
                Event::Connected { first: true } => {}
                Event::Connected { first: false } | Event::Notification(_) => wake.notify_one(),
            },
        }
    }
}

/// Wakes `wake` when a YAML file below `dir` (the config folder) changes. The watcher lives as long
/// as the returned value.
pub fn watch_directory(dir: &std::path::Path, wake: Arc<Notify>) -> notify::Result<notify::RecommendedWatcher> {
    use notify::Watcher as _;
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let relevant = event.is_ok_and(|e| {
            !e.kind.is_access() && e.paths.iter().any(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        });
        if relevant {
            wake.notify_one();
        }
    })?;
    watcher.watch(dir, notify::RecursiveMode::Recursive)?;
    Ok(watcher)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_stops_at_the_cap() {
        let cap = Duration::from_secs(60);
        for attempt in 1..=10 {
            let full = Duration::from_secs(1 << (attempt - 1)).min(cap);
            let delay = backoff(attempt, cap);
            assert!(
                delay >= full / 2 && delay <= full,
                "attempt {attempt}: {delay:?} not in [{:?}, {full:?}]",
                full / 2
            );
        }
        assert!(backoff(40, cap) <= cap);
    }

    fn result(
        tenant: &str,
        outcome: TenantOutcome,
        counts: ChangeCounts,
        drift: Vec<crate::plan::Drift>,
    ) -> super::super::TenantResult {
        super::super::TenantResult { tenant: tenant.into(), outcome, drift, orphans: vec![], source: None, counts }
    }

    fn record() -> PassRecord {
        PassRecord {
            state: "Error".into(),
            source_commit: Some("c0ffee".into()),
            source_author: Some("Ann <ann@corp.example>".into()),
            source_subject: Some("offboard globex".into()),
            synced_commit: None,
            failed_commit: Some("c0ffee".into()),
            error: Some("1 tenants not applied; see /v1/sync/tenants".into()),
            leader: "r1".into(),
            counts: json!({}),
            tenants: Some(vec![]),
        }
    }

    // Issue 15.4
    #[test]
    fn a_history_entry_counts_what_was_applied_and_lists_reverted_fields_and_failed_tenants() {
        use crate::plan::{Drift, DriftedField, Resource};
        let carol = Resource::User { tenant: "acme".into(), email: "carol@acme.example".into() };
        let healed = Drift {
            resource: carol,
            fields: vec![DriftedField { field: "role", applied: json!("admin"), live: json!("user") }],
            revert: true,
            allowed: None,
        };
        let one = |created, healed| ChangeCounts { created, updated: 0, deleted: 0, healed };
        let report = ApplyReport {
            tenants: vec![
                result("acme", TenantOutcome::Applied { changes: 2 }, one(1, 1), vec![healed]),
                result(
                    "globex",
                    TenantOutcome::Refused { reason: "would delete 4 of 4 users".into() },
                    one(0, 0),
                    vec![],
                ),
                result("hooli", TenantOutcome::Failed { reason: "deadlock".into() }, one(3, 0), vec![]),
                result("stark", TenantOutcome::Applied { changes: 0 }, ChangeCounts::default(), vec![]),
            ],
            global_counts: one(2, 0),
            ..ApplyReport::default()
        };
        let entry = history_entry(&report, &record(), "webhook");
        assert_eq!(entry.counts, one(3, 1), "acme's and the global changes; not hooli's, which failed");
        assert_eq!((entry.refused, entry.failed), (1, 1));
        assert_eq!((entry.trigger.as_str(), entry.version.as_deref()), ("webhook", Some("c0ffee")));
        assert_eq!(entry.author.as_deref(), Some("Ann <ann@corp.example>"));
        let names: Vec<&str> = entry.tenants.iter().map(|t| t.tenant.as_str()).collect();
        assert_eq!(names, ["acme", "globex", "hooli"], "stark changed nothing");
        assert_eq!(entry.tenants[0].drift[0].field, "role");
        assert_eq!(entry.tenants[0].drift[0].reverted, json!("user"));
        assert_eq!(entry.tenants[2].counts, ChangeCounts::default());
        assert_eq!(problems_line(&entry.tenants), "globex: would delete 4 of 4 users; hooli: deadlock");
    }

    #[test]
    fn a_tenant_that_met_a_busy_database_is_out_of_sync_not_in_error() {
        // Issue 25.6: Error is for problems a person must fix.
        let deferred = TenantOutcome::Deferred { reason: "pool timed out".into() };
        let status = tenant_status(&result("acme", deferred, ChangeCounts::default(), vec![])).expect("a status");
        assert_eq!(status.state, "OutOfSync");
        assert!(status.errors.to_string().contains("applied at the next pass"), "{}", status.errors);
        let failed = TenantOutcome::Failed { reason: "violates a check".into() };
        assert_eq!(
            tenant_status(&result("acme", failed, ChangeCounts::default(), vec![])).expect("status").state,
            "Error"
        );
    }

    #[test]
    fn the_warning_of_a_pass_names_at_most_twenty_tenants() {
        let failed: Vec<TenantPass> = (0..25)
            .map(|i| TenantPass {
                tenant: format!("t{i:02}"),
                outcome: "invalid".into(),
                counts: ChangeCounts::default(),
                problem: Some("bad".into()),
                drift: vec![],
            })
            .collect();
        let line = problems_line(&failed);
        assert!(line.starts_with("t00: bad; t01: bad;") && line.ends_with("t19: bad; and 5 more tenants"), "{line}");
    }
}
