//! The audit rows of refused requests, written off the request path. A refusal is answered at once,
//! whether or not the database is there: its row waits in a bounded queue that one background task
//! writes in batches, retries while the database is away, and flushes when the server stops.
//!
//! Anonymous refusals are aggregated, so that nobody can grow the audit log (or this process) at
//! will. Per client address, route, reason, action, method and key id, the first refusal in a minute
//! gets its own row at once (`count: 1`); the repeats within that minute become one more row with
//! their `count` when the minute ends. The record stays complete (the counts add up to the refusals)
//! and bounded: at most two rows per address, route and reason a minute, which is the per-address
//! rate limit of refusals. Memory is bounded too: beyond `MAX_KEYS` addresses-and-routes or
//! `MAX_QUEUED` waiting rows, refusals are counted in one row per reason. Denials of known callers (a
//! key lacking a scope, a user of another tenant) get a row each, through the same queue.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};
use sqlx::PgPool;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::audit::{Origin, Outcome, Target};
use crate::authz::Actor;
use crate::store::{self, AuditEntry, MAX_RESOURCE, StoreError, bounded};

/// Repeats of one refusal within this window share one row.
const WINDOW: Duration = Duration::from_secs(60);
/// Most aggregation keys (address, route, reason, …) held at once; more are counted per reason.
const MAX_KEYS: usize = 10_000;
/// Most rows waiting to be written (say, while the database is away); more are counted per reason.
const MAX_QUEUED: usize = 10_000;
/// How often the writer looks for closed windows.
const TICK: Duration = Duration::from_secs(1);
/// Most rows in one INSERT.
const BATCH: usize = 500;
/// Longest one batch may take to be written before the database counts as away.
const INSERT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait between two attempts while the database is away.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How long a stopping server keeps trying to write what waits (under Kubernetes' default 30 s
/// grace period), before it logs the rows instead.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);
/// Longest method and reason kept in an aggregation key.
const MAX_LABEL: usize = 128;

/// A refusal of a caller who proved no identity. Never carries the credential presented.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// `api.denied`, or the flow's action such as `auth.refresh`.
    pub action: &'static str,
    pub ip: Option<String>,
    pub method: Option<String>,
    /// The route's template (`/v1/tenants/{tenant}/flags`), so that refusals on many paths of one
    /// route share a row.
    pub route: String,
    /// The path refused. The row of repeats names it if they all had the same one, else the route.
    pub resource: String,
    pub tenant: Option<String>,
    pub reason: String,
    /// The public id of a known but unusable API key (revoked, expired).
    pub key_id: Option<String>,
    /// More metadata, such as the user agent; the row of repeats keeps what they agree on.
    pub extra: Map<String, Value>,
}

impl Refusal {
    fn key(&self) -> Key {
        Key {
            action: self.action,
            ip: self.ip.clone(),
            method: self.method.as_deref().map(|m| bounded(m, MAX_LABEL).into_owned()),
            route: bounded(&self.route, MAX_RESOURCE).into_owned(),
            reason: bounded(&self.reason, MAX_LABEL).into_owned(),
            key_id: self.key_id.as_deref().map(|k| bounded(k, MAX_LABEL).into_owned()),
        }
    }

    /// The row, with strings bounded already so that what waits in memory is small.
    fn into_entry(self, key: &Key) -> AuditEntry {
        let mut details = self.extra;
        details.insert("method".into(), json!(key.method));
        details.insert("reason".into(), json!(key.reason));
        details.insert("route".into(), json!(key.route));
        if let Some(key_id) = &key.key_id {
            details.insert("keyId".into(), json!(key_id));
        }
        let target = Target {
            path: bounded(&self.resource, MAX_RESOURCE).into_owned(),
            tenant: self.tenant.as_deref().map(|t| bounded(t, store::MAX_TENANT).into_owned()),
        };
        // A user agent the caller sent is among the details already (bounded with them).
        let origin = Origin { ip: key.ip.clone(), user_agent: None };
        crate::audit::entry(&Actor::Anonymous, self.action, target, Outcome::Failure, &origin, Value::Object(details))
    }
}

/// What makes two refusals repeats of one another.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    action: &'static str,
    ip: Option<String>,
    method: Option<String>,
    route: String,
    reason: String,
    key_id: Option<String>,
}

/// Refusals counted into one row.
#[derive(Debug)]
struct Tally {
    /// The first one; fields on which later ones differ are generalised (see `absorb`).
    entry: AuditEntry,
    /// What `resource` becomes when the refused paths differ.
    route: String,
    count: u64,
    first_at: DateTime<Utc>,
    last_at: DateTime<Utc>,
    opened: Instant,
    /// Counted here because the queue or the keys were at their bound.
    overflow: bool,
}

impl Tally {
    fn new(entry: AuditEntry, route: String, now: Instant, at: DateTime<Utc>) -> Tally {
        let count = count_of(&entry);
        Tally { entry, route, count, first_at: at, last_at: at, opened: now, overflow: false }
    }

    fn absorb(&mut self, other: &AuditEntry, at: DateTime<Utc>) {
        self.count += count_of(other);
        self.last_at = at;
        if self.entry.actor != other.actor {
            self.entry.actor = "(various)".into();
        }
        if self.entry.resource != other.resource {
            self.entry.resource.clone_from(&self.route);
        }
        if self.entry.tenant != other.tenant {
            self.entry.tenant = None;
        }
        if let Value::Object(mine) = &mut self.entry.metadata {
            for (name, value) in mine.iter_mut() {
                if other.metadata.get(name) != Some(value) {
                    *value = Value::Null;
                }
            }
        }
    }

    fn into_entry(self) -> AuditEntry {
        let mut entry = self.entry;
        if !entry.metadata.is_object() {
            entry.metadata = json!({});
        }
        if let Value::Object(metadata) = &mut entry.metadata {
            metadata.insert("count".into(), json!(self.count));
            metadata.insert("firstAt".into(), json!(self.first_at.to_rfc3339_opts(SecondsFormat::Millis, true)));
            metadata.insert("lastAt".into(), json!(self.last_at.to_rfc3339_opts(SecondsFormat::Millis, true)));
            if self.overflow {
                metadata.insert("overflow".into(), json!(true));
            }
        }
        entry
    }
}

/// How many refusals a row stands for: an aggregated row says so, any other row is one.
fn count_of(entry: &AuditEntry) -> u64 {
    entry.metadata.get("count").and_then(Value::as_u64).unwrap_or(1)
}

/// One key's current minute: its first refusal is written already, its repeats are counted.
#[derive(Debug)]
struct Window {
    opened: Instant,
    repeats: Option<Tally>,
}

/// Everything not yet written. All of it is bounded: `windows` by `MAX_KEYS`, `rows` by
/// `MAX_QUEUED`, `overflow` by the number of distinct actions and reasons (a fixed set in the code).
#[derive(Debug, Default)]
struct Queue {
    windows: HashMap<Key, Window>,
    rows: VecDeque<AuditEntry>,
    overflow: HashMap<(&'static str, String, String), Tally>,
}

impl Queue {
    /// Takes an anonymous refusal; returns whether a row became ready to write.
    fn refused(&mut self, refusal: Refusal, now: Instant, at: DateTime<Utc>) -> bool {
        let key = refusal.key();
        let route = key.route.clone();
        let room = self.windows.len() < MAX_KEYS;
        match self.windows.get_mut(&key) {
            Some(window) if now.duration_since(window.opened) < WINDOW => {
                let entry = refusal.into_entry(&key);
                match &mut window.repeats {
                    Some(tally) => tally.absorb(&entry, at),
                    None => window.repeats = Some(Tally::new(entry, route, now, at)),
                }
                false
            }
            Some(window) => {
                // Its minute is over but the writer has not swept it yet: close it here.
                let repeats = window.repeats.take();
                window.opened = now;
                if let Some(tally) = repeats {
                    push(&mut self.rows, &mut self.overflow, tally.into_entry(), now, at);
                }
                let first = Tally::new(refusal.into_entry(&key), route, now, at).into_entry();
                push(&mut self.rows, &mut self.overflow, first, now, at)
            }
            None if room => {
                self.windows.insert(key.clone(), Window { opened: now, repeats: None });
                let first = Tally::new(refusal.into_entry(&key), route, now, at).into_entry();
                push(&mut self.rows, &mut self.overflow, first, now, at)
            }
            None => {
                fold(&mut self.overflow, refusal.into_entry(&key), now, at);
                false
            }
        }
    }

    /// Takes a row of its own; returns whether it waits to be written (else it was counted).
    fn record(&mut self, entry: AuditEntry, now: Instant, at: DateTime<Utc>) -> bool {
        push(&mut self.rows, &mut self.overflow, entry, now, at)
    }

    /// Up to `max` rows to write now: the waiting rows, the repeats of every window whose minute is
    /// over (of every window when `all`), and the overflow counts likewise.
    fn take(&mut self, now: Instant, all: bool, max: usize) -> Vec<AuditEntry> {
        let mut due = Vec::new();
        self.windows.retain(|_, window| {
            if !all && now.duration_since(window.opened) < WINDOW {
                return true;
            }
            due.extend(window.repeats.take());
            false
        });
        for tally in due {
            push(&mut self.rows, &mut self.overflow, tally.into_entry(), now, Utc::now());
        }
        // Few (one per action and reason), so they may pass the bound rather than be folded again.
        let closed: Vec<_> = self
            .overflow
            .keys()
            .filter(|k| all || now.duration_since(self.overflow[*k].opened) >= WINDOW)
            .cloned()
            .collect();
        for key in closed {
            if let Some(tally) = self.overflow.remove(&key) {
                self.rows.push_back(tally.into_entry());
            }
        }
        let n = max.min(self.rows.len());
        self.rows.drain(..n).collect()
    }

    /// Returns rows that could not be written to the front of the queue, counting what no longer fits.
    fn put_back(&mut self, batch: Vec<AuditEntry>, now: Instant) {
        for entry in batch.into_iter().rev() {
            self.rows.push_front(entry);
        }
        while self.rows.len() > MAX_QUEUED {
            if let Some(entry) = self.rows.pop_back() {
                fold(&mut self.overflow, entry, now, Utc::now());
            }
        }
    }

    /// Refusals still waiting to be written (aggregated ones by their count).
    fn pending(&self) -> u64 {
        let tallies = self.windows.values().filter_map(|w| w.repeats.as_ref()).chain(self.overflow.values());
        tallies.map(|t| t.count).sum::<u64>() + self.rows.iter().map(count_of).sum::<u64>()
    }

    fn drain_all(&mut self) -> Vec<AuditEntry> {
        let mut rows = self.take(Instant::now(), true, usize::MAX);
        rows.extend(self.overflow.drain().map(|(_, tally)| tally.into_entry()));
        rows
    }
}

/// Queues `entry`, or counts it in its reason's overflow row when the queue is full.
fn push(
    rows: &mut VecDeque<AuditEntry>,
    overflow: &mut HashMap<(&'static str, String, String), Tally>,
    entry: AuditEntry,
    now: Instant,
    at: DateTime<Utc>,
) -> bool {
    if rows.len() < MAX_QUEUED {
        rows.push_back(entry);
        true
    } else {
        fold(overflow, entry, now, at);
        false
    }
}

fn fold(
    overflow: &mut HashMap<(&'static str, String, String), Tally>,
    entry: AuditEntry,
    now: Instant,
    at: DateTime<Utc>,
) {
    let reason = entry.metadata.get("reason").and_then(Value::as_str).unwrap_or_default();
    let key =
        (entry.actor_type, bounded(&entry.action, MAX_LABEL).into_owned(), bounded(reason, MAX_LABEL).into_owned());
    match overflow.get_mut(&key) {
        Some(tally) => tally.absorb(&entry, at),
        None => {
            let mut tally = Tally::new(entry, "*".into(), now, at);
            tally.overflow = true;
            overflow.insert(key, tally);
        }
    }
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Notify,
    closing: AtomicBool,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl Shared {
    fn queue(&self) -> MutexGuard<'_, Queue> {
        // A panic while holding the lock leaves a consistent queue (every step is a plain move).
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The queue of refusals' audit rows and its writer; one per server, shared by every request.
#[derive(Clone)]
pub struct DenialLog {
    shared: Arc<Shared>,
}

impl DenialLog {
    /// Starts the writer; call `close` when the server stops, so that nothing waiting is lost.
    pub fn start(pool: PgPool) -> DenialLog {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            wake: Notify::new(),
            closing: AtomicBool::new(false),
            writer: Mutex::new(None),
        });
        let writer = tokio::spawn(write(pool, shared.clone()));
        *shared.writer.lock().unwrap_or_else(PoisonError::into_inner) = Some(writer);
        DenialLog { shared }
    }

    /// Records an anonymous refusal (aggregated with its repeats); never waits.
    pub fn refused(&self, refusal: Refusal) {
        if self.shared.queue().refused(refusal, Instant::now(), Utc::now()) {
            self.shared.wake.notify_one();
        }
    }

    /// Records a denial of a known caller, one row (bounded first, so that what waits while the
    /// database is away stays small); never waits.
    pub fn record(&self, entry: AuditEntry) {
        if self.shared.queue().record(entry.bounded(), Instant::now(), Utc::now()) {
            self.shared.wake.notify_one();
        }
    }

    /// Writes everything that waits, repeats of open windows included, and stops the writer. While
    /// the database is away it keeps trying for `SHUTDOWN_GRACE`, then logs the rows instead.
    pub async fn close(&self) {
        self.shared.closing.store(true, Ordering::Release);
        self.shared.wake.notify_one();
        let writer = self.shared.writer.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(writer) = writer
            && let Err(error) = writer.await
        {
            tracing::error!(%error, "the writer of refusals' audit rows failed");
        }
    }
}

async fn write(pool: PgPool, shared: Arc<Shared>) {
    let mut backoff = TICK;
    let mut failing = false;
    let mut deadline = None;
    loop {
        let closing = shared.closing.load(Ordering::Acquire);
        if closing && deadline.is_none() {
            deadline = Some(Instant::now() + SHUTDOWN_GRACE);
        }
        let batch = shared.queue().take(Instant::now(), closing, BATCH);
        if batch.is_empty() {
            if closing {
                return;
            }
            tokio::select! {
                () = shared.wake.notified() => {}
                () = tokio::time::sleep(TICK) => {}
            }
            continue;
        }
        let error = match insert(&pool, &batch).await {
            Ok(()) => {
                if failing {
                    tracing::info!("the audit rows of refused requests are written again");
                }
                (failing, backoff) = (false, TICK);
                continue;
            }
            Err(error) => error,
        };
        if !error.is_unavailable() {
            // Not the database being away but these rows: retrying would block every later row.
            tracing::error!(%error, "cannot write audit rows of refused requests; they follow in the log");
            log_rows(&batch);
            continue;
        }
        if !failing {
            let waiting = shared.queue().pending() + batch.iter().map(count_of).sum::<u64>();
            tracing::warn!(%error, waiting, "cannot write the audit rows of refused requests yet; they wait (bounded) until the database is back");
            failing = true;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let mut rest = batch;
            rest.extend(shared.queue().drain_all());
            tracing::error!(%error, rows = rest.len(), "stopping with audit rows of refused requests unwritten; they follow in the log");
            log_rows(&rest);
            return;
        }
        shared.queue().put_back(batch, Instant::now());
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Writes one batch. A database that hangs rather than refusing counts as away, so the writer keeps
/// its backoff and its shutdown deadline.
async fn insert(pool: &PgPool, batch: &[AuditEntry]) -> Result<(), StoreError> {
    let write = async {
        let mut conn = pool.acquire().await?;
        store::insert_audit(&mut conn, batch).await
    };
    tokio::time::timeout(INSERT_TIMEOUT, write)
        .await
        .map_err(|_| StoreError::Unavailable(format!("no answer within {} s", INSERT_TIMEOUT.as_secs())))?
}

/// The last resort for rows the database would not take: the log keeps them.
fn log_rows(rows: &[AuditEntry]) {
    for row in rows {
        tracing::error!(
            actor = %row.actor,
            actor_type = row.actor_type,
            action = %row.action,
            resource = %bounded(&row.resource, MAX_RESOURCE),
            tenant = row.tenant.as_deref().unwrap_or_default(),
            metadata = %row.metadata,
            "unwritten audit row"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(ip: &str, path: &str, reason: &str) -> Refusal {
        Refusal {
            action: "api.denied",
            ip: Some(ip.into()),
            method: Some("GET".into()),
            route: "/v1/tenants/{tenant}/flags".into(),
            resource: path.into(),
            tenant: path.split('/').nth(3).map(str::to_owned),
            reason: reason.into(),
            key_id: None,
            extra: Map::new(),
        }
    }

    fn total(rows: &[AuditEntry]) -> u64 {
        rows.iter().map(count_of).sum()
    }

    #[test]
    fn repeats_within_a_minute_are_one_row_with_their_count_after_the_first() {
        // Issue 11.4: a flood from one address to one route is two rows a minute, not one per request.
        let (mut queue, start) = (Queue::default(), Instant::now());
        assert!(queue.refused(refusal("10.0.0.1", "/v1/tenants/acme/flags", "missing API key"), start, Utc::now()));
        for i in 1..1000 {
            let now = start + Duration::from_millis(i * 10);
            assert!(!queue.refused(refusal("10.0.0.1", "/v1/tenants/acme/flags", "missing API key"), now, Utc::now()));
        }
        let first = queue.take(start + Duration::from_secs(1), false, BATCH);
        assert_eq!(first.len(), 1);
        assert_eq!(
            (first[0].resource.as_str(), first[0].metadata["count"].as_u64()),
            ("/v1/tenants/acme/flags", Some(1))
        );
        assert_eq!(first[0].actor_type, "anonymous");
        assert!(queue.take(start + Duration::from_secs(30), false, BATCH).is_empty(), "nothing more within the minute");
        let repeats = queue.take(start + WINDOW, false, BATCH);
        assert_eq!(repeats.len(), 1);
        assert_eq!(repeats[0].metadata["count"], 999);
        assert_eq!(repeats[0].metadata["ip"], "10.0.0.1");
        assert_eq!(queue.pending(), 0);
    }

    #[test]
    fn repeats_on_different_paths_of_a_route_name_the_route() {
        let (mut queue, now) = (Queue::default(), Instant::now());
        for tenant in ["a", "a", "b", "c"] {
            queue.refused(
                refusal("10.0.0.1", &format!("/v1/tenants/{tenant}/flags"), "missing API key"),
                now,
                Utc::now(),
            );
        }
        let rows = queue.take(now, true, BATCH);
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].resource.as_str(), rows[0].tenant.as_deref()), ("/v1/tenants/a/flags", Some("a")));
        assert_eq!((rows[1].resource.as_str(), rows[1].tenant.as_deref()), ("/v1/tenants/{tenant}/flags", None));
        assert_eq!(rows[1].metadata["count"], 3);
    }

    #[test]
    fn each_address_route_and_reason_has_its_own_rows() {
        let (mut queue, now) = (Queue::default(), Instant::now());
        queue.refused(refusal("10.0.0.1", "/v1/tenants/a/flags", "missing API key"), now, Utc::now());
        queue.refused(refusal("10.0.0.2", "/v1/tenants/a/flags", "missing API key"), now, Utc::now());
        queue.refused(refusal("10.0.0.1", "/v1/tenants/a/flags", "unknown API key"), now, Utc::now());
        let mut other_route = refusal("10.0.0.1", "/ofrep/v1/evaluate/flags", "missing API key");
        other_route.route = "/ofrep/v1/evaluate/flags".into();
        queue.refused(other_route, now, Utc::now());
        assert_eq!(queue.take(now, false, BATCH).len(), 4);
    }

    #[test]
    fn a_new_minute_opens_with_a_row_at_once() {
        let (mut queue, start) = (Queue::default(), Instant::now());
        queue.refused(refusal("10.0.0.1", "/v1/tenants/a/flags", "missing API key"), start, Utc::now());
        queue.refused(refusal("10.0.0.1", "/v1/tenants/a/flags", "missing API key"), start, Utc::now());
        let later = start + WINDOW + Duration::from_secs(1);
        assert!(queue.refused(refusal("10.0.0.1", "/v1/tenants/a/flags", "missing API key"), later, Utc::now()));
        let rows = queue.take(later, false, BATCH);
        assert_eq!(
            rows.iter().map(|r| r.metadata["count"].as_u64()).collect::<Vec<_>>(),
            vec![Some(1), Some(1), Some(1)]
        );
    }

    #[test]
    fn beyond_the_key_bound_refusals_are_counted_per_reason() {
        let (mut queue, now) = (Queue::default(), Instant::now());
        let addresses = MAX_KEYS + 25;
        for i in 0..addresses {
            queue.refused(
                refusal(
                    &format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255),
                    "/v1/tenants/a/flags",
                    "missing API key",
                ),
                now,
                Utc::now(),
            );
        }
        assert_eq!(queue.windows.len(), MAX_KEYS);
        let rows = queue.take(now, true, usize::MAX);
        let overflow: Vec<_> = rows.iter().filter(|r| r.metadata["overflow"] == true).collect();
        assert_eq!(overflow.len(), 1);
        assert_eq!((overflow[0].metadata["count"].as_u64(), &overflow[0].metadata["ip"]), (Some(25), &Value::Null));
        assert_eq!(total(&rows), addresses as u64, "every refusal is counted");
    }

    #[test]
    fn rows_that_cannot_be_written_wait_and_past_the_bound_become_counts() {
        // Issue 11.5: while the database is away nothing is lost and nothing grows without bound.
        let (mut queue, now) = (Queue::default(), Instant::now());
        let known = |i: usize| AuditEntry {
            actor: format!("app-{i}"),
            actor_type: "application",
            action: "api.denied".into(),
            resource: "/v1/tenants/a/flags".into(),
            tenant: Some("a".into()),
            success: false,
            metadata: json!({ "reason": "insufficient scope" }),
        };
        for i in 0..MAX_QUEUED + 10 {
            queue.record(known(i), now, Utc::now());
        }
        assert_eq!(queue.rows.len(), MAX_QUEUED);
        let batch = queue.take(now, false, BATCH);
        queue.record(known(0), now, Utc::now());
        queue.put_back(batch, now);
        assert!(queue.rows.len() <= MAX_QUEUED);
        assert_eq!(queue.pending(), (MAX_QUEUED + 11) as u64);
        let rows = queue.drain_all();
        assert_eq!(total(&rows), (MAX_QUEUED + 11) as u64);
        let overflow = rows.iter().find(|r| r.metadata["overflow"] == true).expect("an overflow row");
        assert_eq!((overflow.actor.as_str(), overflow.actor_type), ("(various)", "application"));
    }

    #[test]
    fn what_waits_in_memory_is_bounded_per_value() {
        let (mut queue, now) = (Queue::default(), Instant::now());
        let long = format!("/v1/tenants/{}\0/flags", "x".repeat(100_000));
        queue.refused(refusal("10.0.0.1", &long, "missing API key"), now, Utc::now());
        let rows = queue.take(now, false, BATCH);
        assert!(rows[0].resource.len() <= MAX_RESOURCE);
        assert!(rows[0].tenant.as_deref().is_some_and(|t| t.len() <= store::MAX_TENANT && !t.contains('\0')));
    }
}
