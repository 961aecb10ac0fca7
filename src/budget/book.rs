//! Every tenant's budget, usage this month and overrides in force, in memory on every replica, so
//! that a budget check never waits for the database. Kept current by `keep_current`: stored usage
//! notifies `gatehouse_usage` with the tenants it counted (their usage is read again, a batch of
//! notifications at a time); overrides notify `gatehouse_budget`, and a change to a tenant or plan
//! `gatehouse_access` (the delivery cache's feed): both read every budget again, as does every
//! `REFRESH` and a lost connection.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{Decision, Granted, Limit, TypeRequired, decide};
use crate::store::apps::ACCESS_CHANNEL;
use crate::store::budget::{self as db, BUDGET_CHANNEL, USAGE_CHANNEL};
use crate::store::listen::{Event, Listener};

/// How often budgets themselves are read again.
const REFRESH: Duration = Duration::from_secs(10);
/// Notifications handled per reload.
const BATCH: usize = 256;

#[derive(Debug, Default)]
pub struct Book {
    inner: RwLock<Inner>,
    /// Numbers each read of usage, taken before it starts: a read never overwrites usage that a
    /// later-started read already wrote (a full reload that began before an ingest committed must
    /// not undo the ingest's own refresh).
    reads: std::sync::atomic::AtomicU64,
}

#[derive(Debug, Default)]
struct Inner {
    /// The first day of the month the usage is of.
    month: Option<NaiveDate>,
    by_name: HashMap<String, Uuid>,
    tenants: HashMap<Uuid, TenantBudget>,
}

#[derive(Debug, Default, Clone)]
struct TenantBudget {
    limit: Option<Limit>,
    /// This month's usage by event type.
    usage: HashMap<String, i64>,
    /// The number of the read `usage` comes from.
    read: u64,
    granted: Vec<Granted>,
    /// Thresholds this replica knows are recorded this month (the database holds the truth; this
    /// only spares a write per batch once a tenant is past them).
    recorded: Vec<i16>,
}

impl TenantBudget {
    fn counted(&self) -> i64 {
        match &self.limit {
            Some(limit) => self
                .usage
                .iter()
                .filter(|(kind, _)| limit.counts(kind))
                .fold(0i64, |sum, (_, q)| sum.saturating_add(*q)),
            None => self.usage.values().fold(0i64, |sum, q| sum.saturating_add(*q)),
        }
    }

    fn in_force(&self, now: DateTime<Utc>) -> Option<&Granted> {
        self.granted.iter().filter(|g| g.expires_at > now).max_by_key(|g| g.limit)
    }
}

/// A tenant's budget as `GET /v1/tenants/{t}/budget` shows it.
#[derive(Debug, Clone)]
pub struct View {
    pub id: Uuid,
    pub month: NaiveDate,
    pub limit: Option<Limit>,
    pub usage: i64,
    pub granted: Option<Granted>,
}

/// The first day of `now`'s month.
pub fn month_of(now: DateTime<Utc>) -> NaiveDate {
    now.date_naive().with_day(1).unwrap_or(now.date_naive())
}

impl Book {
    /// The answer to a check of `quantity` more of `kind` for `tenant` (`None`: no such tenant).
    /// `None` when no tenant has that name.
    pub fn check(
        &self,
        tenant: &str,
        quantity: i64,
        kind: Option<&str>,
        now: DateTime<Utc>,
    ) -> Option<Result<Decision, TypeRequired>> {
        let inner = self.inner.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let budget = inner.tenants.get(inner.by_name.get(tenant)?)?;
        let usage = if inner.month == Some(month_of(now)) { budget.counted() } else { 0 };
        Some(decide(budget.limit.as_ref(), usage, quantity, kind, budget.in_force(now)))
    }

    pub fn view(&self, tenant: &str, now: DateTime<Utc>) -> Option<View> {
        let inner = self.inner.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let id = *inner.by_name.get(tenant)?;
        let budget = inner.tenants.get(&id)?;
        let usage = if inner.month == Some(month_of(now)) { budget.counted() } else { 0 };
        Some(View {
            id,
            month: month_of(now),
            limit: budget.limit.clone(),
            usage,
            granted: budget.in_force(now).cloned(),
        })
    }

    /// Reads every budget, this month's usage and the overrides in force.
    pub async fn reload(&self, pool: &PgPool) -> crate::store::Result<()> {
        let read = self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        let month = month_of(Utc::now());
        let limits = db::limits(pool).await?;
        let usage = db::month_usage(pool, None, month).await?;
        let granted = db::granted(pool).await?;
        let mut tenants: HashMap<Uuid, TenantBudget> = HashMap::with_capacity(limits.len());
        let mut by_name = HashMap::with_capacity(limits.len());
        for (id, name, limit) in limits {
            let limit = limit.map(serde_json::from_value::<Limit>).transpose().map_err(|e| {
                crate::store::StoreError::Task(format!("the stored budget of tenant {name} does not read: {e}"))
            })?;
            by_name.insert(name, id);
            tenants.insert(id, TenantBudget { limit, read, ..TenantBudget::default() });
        }
        for (tenant, kind, quantity) in usage {
            if let Some(budget) = tenants.get_mut(&tenant) {
                budget.usage.insert(kind, quantity);
            }
        }
        let mut inner = self.inner.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if inner.month == Some(month) {
            // Usage read after this reload began is newer than what it read.
            for (id, budget) in &mut tenants {
                if let Some(newer) = inner.tenants.get(id).filter(|b| b.read > read) {
                    budget.usage.clone_from(&newer.usage);
                    budget.read = newer.read;
                }
            }
        }
        for (tenant, id, limit, expires_at) in granted {
            if let Some(budget) = tenants.get_mut(&tenant) {
                budget.granted.push(Granted { id, limit, expires_at });
            }
        }
        *inner = Inner { month: Some(month), by_name, tenants };
        Ok(())
    }

    /// Those of `thresholds` not yet known to be recorded for tenant `id` this month.
    pub fn unrecorded(&self, id: Uuid, thresholds: &[i16]) -> Vec<i16> {
        let inner = self.inner.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let known = inner.tenants.get(&id).map(|b| b.recorded.as_slice()).unwrap_or_default();
        thresholds.iter().copied().filter(|t| !known.contains(t)).collect()
    }

    /// Notes that `thresholds` are recorded for tenant `id` this month (a new month reloads the
    /// book, which forgets them).
    pub fn mark_recorded(&self, id: Uuid, thresholds: &[i16]) {
        let mut inner = self.inner.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(budget) = inner.tenants.get_mut(&id) {
            budget.recorded.extend_from_slice(thresholds);
            budget.recorded.sort_unstable();
            budget.recorded.dedup();
        }
    }

    /// The views of the tenants `ids`, by name.
    pub fn views_of(&self, ids: &[Uuid], now: DateTime<Utc>) -> Vec<(String, View)> {
        let inner = self.inner.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let current = inner.month == Some(month_of(now));
        let names: HashMap<&Uuid, &String> = inner.by_name.iter().map(|(name, id)| (id, name)).collect();
        ids.iter()
            .filter_map(|id| {
                let budget = inner.tenants.get(id)?;
                let view = View {
                    id: *id,
                    month: month_of(now),
                    limit: budget.limit.clone(),
                    usage: if current { budget.counted() } else { 0 },
                    granted: budget.in_force(now).cloned(),
                };
                Some(((*names.get(id)?).clone(), view))
            })
            .collect()
    }

    /// Reads the usage of `tenants` again (after they stored usage).
    pub async fn reload_usage(&self, pool: &PgPool, tenants: &[Uuid]) -> crate::store::Result<()> {
        let month = month_of(Utc::now());
        if self.inner.read().unwrap_or_else(std::sync::PoisonError::into_inner).month != Some(month) {
            return self.reload(pool).await; // a new month: everything starts again
        }
        let known = {
            let inner = self.inner.read().unwrap_or_else(std::sync::PoisonError::into_inner);
            tenants.iter().all(|t| inner.tenants.contains_key(t))
        };
        if !known {
            return self.reload(pool).await; // a tenant created since the last reload
        }
        let read = self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        let rows = db::month_usage(pool, Some(tenants), month).await?;
        let mut inner = self.inner.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut fresh: HashMap<Uuid, HashMap<String, i64>> = tenants.iter().map(|t| (*t, HashMap::new())).collect();
        for (tenant, kind, quantity) in rows {
            fresh.entry(tenant).or_default().insert(kind, quantity);
        }
        for (tenant, usage) in fresh {
            if let Some(budget) = inner.tenants.get_mut(&tenant).filter(|b| b.read < read) {
                budget.usage = usage;
                budget.read = read;
            }
        }
        Ok(())
    }
}

/// Keeps `book` current until `shutdown`.
pub async fn keep_current(book: std::sync::Arc<Book>, pool: PgPool, shutdown: CancellationToken) {
    let mut listener = Listener::new(&pool, "budgets", &[USAGE_CHANNEL, BUDGET_CHANNEL, ACCESS_CHANNEL]);
    let mut refresh = tokio::time::interval(REFRESH);
    refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let event = tokio::select! {
            () = shutdown.cancelled() => return,
            _ = refresh.tick() => None,
            event = listener.next() => Some(event),
        };
        let reloaded = match event {
            None | Some(Event::Connected { .. }) => book.reload(&pool).await,
            Some(Event::Notification(first)) => {
                let mut everything = first.channel() != USAGE_CHANNEL;
                let mut tenants: Vec<Uuid> = ids(first.payload());
                for _ in 0..BATCH {
                    match listener.next_buffered() {
                        Some(next) if next.channel() != USAGE_CHANNEL => everything = true,
                        Some(next) => tenants.extend(ids(next.payload())),
                        None => break,
                    }
                }
                if everything {
                    book.reload(&pool).await
                } else {
                    tenants.sort_unstable();
                    tenants.dedup();
                    book.reload_usage(&pool, &tenants).await
                }
            }
        };
        if let Err(error) = reloaded {
            listener.start_over(&format_args!("cannot reload the budgets: {error}"));
        }
    }
}

fn ids(payload: &str) -> Vec<Uuid> {
    payload.split(',').filter_map(|id| id.trim().parse().ok()).collect()
}
