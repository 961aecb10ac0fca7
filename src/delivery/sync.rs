//! Keeps an `DeliveryCache` current: LISTEN on `gatehouse_access`, reload what each notification
//! names (in batches, so a bulk apply costs a few queries), and reload everything whenever the
//! listening connection is (re)established (`store::listen`), so nothing said while it was down is
//! missed.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::DeliveryCache;
use crate::store;
use crate::store::apps::{self as db, ACCESS_CHANNEL, TenantSelection};
use crate::store::listen::{Event, Listener};

/// Notifications handled in one reload.
const BATCH: usize = 10_000;

/// What a batch of notifications asks to reload.
#[derive(Debug, Default)]
struct Changes {
    keys: BTreeSet<String>,
    apps: BTreeSet<Uuid>,
    tenants: BTreeSet<String>,
    plans: BTreeSet<Uuid>,
}

impl Changes {
    fn add(&mut self, payload: &str) {
        let Some((kind, id)) = payload.split_once(':') else { return };
        match kind {
            "key" => {
                self.keys.insert(id.to_owned());
            }
            "tenant" => {
                self.tenants.insert(id.to_owned());
            }
            "app" => self.apps.extend(Uuid::parse_str(id).ok()),
            "plan" => self.plans.extend(Uuid::parse_str(id).ok()),
            _ => tracing::debug!(payload, "ignoring an unknown access notification"),
        }
    }

    fn len(&self) -> usize {
        self.keys.len() + self.apps.len() + self.tenants.len() + self.plans.len()
    }
}

/// Loads everything: at start and after every reconnection.
pub async fn resync(cache: &DeliveryCache, pool: &PgPool) -> store::Result<()> {
    let started = std::time::Instant::now();
    let (apps, keys, tenants) = tokio::try_join!(
        db::load_apps(pool, None),
        db::load_keys(pool, None),
        db::load_tenant_flags(pool, TenantSelection::All),
    )?;
    let counts = (apps.len(), keys.len(), tenants.len());
    cache.put_apps(apps, None);
    cache.put_keys(keys, None);
    cache.put_tenants(tenants, None);
    cache.mark_ready();
    tracing::info!(apps = counts.0, keys = counts.1, tenants = counts.2, elapsed = ?started.elapsed(), "access cache loaded");
    Ok(())
}

/// Reloads keys and applications this replica just changed, so its own next request sees the change
/// without waiting for the notification (which still reaches the other replicas).
pub async fn refresh(cache: &DeliveryCache, pool: &PgPool, key_ids: &[&str], apps: &[Uuid]) -> store::Result<()> {
    let mut changes = Changes::default();
    changes.keys.extend(key_ids.iter().map(|k| (*k).to_owned()));
    changes.apps.extend(apps.iter().copied());
    reload(cache, pool, changes).await
}

/// Reloads tenants this replica just changed (status, plan, applications, flags).
pub async fn refresh_tenants(cache: &DeliveryCache, pool: &PgPool, names: &[&str]) -> store::Result<()> {
    let mut changes = Changes::default();
    changes.tenants.extend(names.iter().map(|n| (*n).to_owned()));
    reload(cache, pool, changes).await
}

async fn reload(cache: &DeliveryCache, pool: &PgPool, changes: Changes) -> store::Result<()> {
    let keys: Vec<String> = changes.keys.into_iter().collect();
    let apps: Vec<Uuid> = changes.apps.into_iter().collect();
    let tenants: Vec<String> = changes.tenants.into_iter().collect();
    let plans: Vec<Uuid> = changes.plans.into_iter().collect();
    if !apps.is_empty() {
        cache.put_apps(db::load_apps(pool, Some(&apps)).await?, Some(&apps));
    }
    if !keys.is_empty() {
        cache.put_keys(db::load_keys(pool, Some(&keys)).await?, Some(&keys));
    }
    if !tenants.is_empty() || !plans.is_empty() {
        let rows = db::load_tenant_flags(pool, TenantSelection::Some { names: &tenants, plans: &plans }).await?;
        cache.put_tenants(rows, Some(&tenants));
    }
    Ok(())
}

/// Runs until `shutdown`: reloads everything whenever it is (again) listening, and what each batch
/// of notifications names in between. A failed reload starts over, after the listener's backoff.
pub async fn keep_current(cache: Arc<DeliveryCache>, pool: PgPool, shutdown: CancellationToken) {
    let mut listener = Listener::new(&pool, "access cache", &[ACCESS_CHANNEL]);
    loop {
        let event = tokio::select! {
            () = shutdown.cancelled() => return,
            event = listener.next() => event,
        };
        let reloaded = match event {
            // Listening before loading: a change committed during the load is reloaded again after.
            Event::Connected { .. } => resync(&cache, &pool).await,
            Event::Notification(first) => {
                let mut changes = Changes::default();
                changes.add(first.payload());
                while changes.len() < BATCH {
                    match listener.next_buffered() {
                        Some(next) => changes.add(next.payload()),
                        None => break,
                    }
                }
                reload(&cache, &pool, changes).await
            }
        };
        if let Err(error) = reloaded {
            listener.start_over(&format_args!("cannot reload the access cache: {error}"));
        }
    }
}

/// Writes `last_used_at` every `every`, in one statement per round: no write per request.
pub async fn flush_key_use(cache: Arc<DeliveryCache>, pool: PgPool, every: Duration, shutdown: CancellationToken) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stopping = tokio::select! {
            () = shutdown.cancelled() => true,
            _ = ticker.tick() => false,
        };
        let uses: Vec<(Uuid, DateTime<Utc>)> = cache
            .take_uses()
            .into_iter()
            .filter_map(|(id, secs)| DateTime::from_timestamp(secs, 0).map(|at| (id, at)))
            .collect();
        if let Err(error) = db::record_key_use(&pool, &uses).await {
            tracing::warn!(%error, keys = uses.len(), "cannot record API key use");
        }
        if stopping {
            return;
        }
    }
}
