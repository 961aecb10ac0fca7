//! Each replica's in-memory copy of API keys, applications and resolved flags: the hot path of every
//! managed application's request. Lock-free maps (papaya), so readers never wait on a writer, and
//! no database round trip per request. `sync` keeps it current.

use crate::model::AppStatus;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use subtle::ConstantTimeEq;
use tokio::sync::{broadcast, watch};
use uuid::Uuid;

use super::flags::{TenantFlags, TenantFlagsRow};
use super::key;
use crate::model::Scope;
use crate::store::apps::{AppRow, KeyRow, TenantFlagInputs};

/// A set of scopes as a bit set, so a check is one AND.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScopeSet(u8);

impl ScopeSet {
    pub fn of<'a>(names: impl IntoIterator<Item = &'a String>) -> Self {
        ScopeSet(names.into_iter().filter_map(|n| Scope::parse(n)).fold(0, |bits, s| bits | Self::bit(s)))
    }

    fn bit(scope: Scope) -> u8 {
        1 << Scope::ALL.iter().position(|s| *s == scope).unwrap_or(7)
    }

    pub fn contains(self, scope: Scope) -> bool {
        self.0 & Self::bit(scope) != 0
    }

    pub fn intersect(self, other: ScopeSet) -> ScopeSet {
        ScopeSet(self.0 & other.0)
    }

    pub fn of_scopes(scopes: &[Scope]) -> Self {
        ScopeSet(scopes.iter().fold(0, |bits, s| bits | Self::bit(*s)))
    }
}

pub struct KeyEntry {
    pub id: Uuid,
    pub key_id: Box<str>,
    pub application_id: Uuid,
    secret_hash: [u8; 32],
    pub scopes: ScopeSet,
    /// Unix seconds.
    expires_at: Option<i64>,
    revoked: bool,
    /// Unix seconds of the last use seen here, and of the last one written to the database.
    last_used: AtomicI64,
    flushed: AtomicI64,
    limiter: Option<DefaultDirectRateLimiter>,
}

impl KeyEntry {
    /// When the key expires, in Unix seconds.
    pub fn expires_at(&self) -> Option<i64> {
        self.expires_at
    }
}

pub struct AppEntry {
    pub id: Uuid,
    pub name: Box<str>,
    pub active: bool,
    pub scopes: ScopeSet,
}

/// An authenticated application key.
#[derive(Clone)]
pub struct Principal {
    pub key: Arc<KeyEntry>,
    pub app: Arc<AppEntry>,
}

impl Principal {
    /// A principal outside any cache, of an active application `app` holding a key with `scopes`:
    /// for unit tests and benchmarks of `authz`, which need an application actor but no key store.
    pub fn detached(app: &str, key_id: &str, scopes: ScopeSet) -> Self {
        let app = AppEntry { id: Uuid::nil(), name: app.into(), active: true, scopes };
        let key = KeyEntry {
            id: Uuid::nil(),
            key_id: key_id.into(),
            application_id: Uuid::nil(),
            secret_hash: [0; 32],
            scopes,
            expires_at: None,
            revoked: false,
            last_used: AtomicI64::new(0),
            flushed: AtomicI64::new(0),
            limiter: None,
        };
        Principal { key: Arc::new(key), app: Arc::new(app) }
    }

    /// The key's scopes that its application still allows.
    pub fn scopes(&self) -> ScopeSet {
        self.key.scopes.intersect(self.app.scopes)
    }
}

/// Why a presented key was refused. The message a client sees never says which of the 401 reasons
/// applied (a stolen revoked key learns nothing); the audit row does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRefusal {
    Missing,
    Unknown,
    Revoked,
    Expired,
    ApplicationDisabled,
    /// Over the per-key rate limit; retry after this many seconds.
    RateLimited(u64),
}

impl KeyRefusal {
    pub fn reason(self) -> &'static str {
        match self {
            Self::Missing => "no API key presented",
            Self::Unknown => "unknown API key",
            Self::Revoked => "revoked API key",
            Self::Expired => "expired API key",
            Self::ApplicationDisabled => "application disabled",
            Self::RateLimited(_) => "rate limited",
        }
    }
}

pub struct DeliveryCache {
    keys: papaya::HashMap<Box<str>, Arc<KeyEntry>>,
    apps: papaya::HashMap<Uuid, Arc<AppEntry>>,
    tenants: papaya::HashMap<Box<str>, Arc<TenantFlags>>,
    /// Tenants whose resolved flags changed, for the event streams.
    changes: broadcast::Sender<Arc<TenantFlags>>,
    /// Bumped whenever keys or applications are loaded, so a stream can end the moment its key
    /// is revoked or its application disabled, without waiting for an unrelated flag change.
    credentials: watch::Sender<u64>,
    /// The API's public base URL, for the event-stream links in OFREP responses.
    public_url: String,
    rate_limit: Option<Quota>,
    ready: AtomicBool,
}

pub fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

impl DeliveryCache {
    /// `rate_limit`: requests per second allowed to each key on this replica (`None`: no limit).
    pub fn new(public_url: &str, rate_limit: Option<std::num::NonZeroU32>) -> Self {
        DeliveryCache {
            keys: papaya::HashMap::new(),
            apps: papaya::HashMap::new(),
            tenants: papaya::HashMap::new(),
            changes: broadcast::channel(1024).0,
            credentials: watch::Sender::new(0),
            public_url: public_url.trim_end_matches('/').to_owned(),
            rate_limit: rate_limit.map(Quota::per_second),
            ready: AtomicBool::new(false),
        }
    }

    /// Whether the first full load is done; until then every key would look unknown.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    pub(super) fn mark_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }

    /// Checks a presented key: format and checksum, then a lookup by its public id, then a
    /// constant-time comparison of hashes, then revocation, expiry, application and rate limit.
    pub fn authenticate(&self, presented: Option<&str>) -> Result<Principal, (KeyRefusal, Option<Arc<KeyEntry>>)> {
        let presented = presented.ok_or((KeyRefusal::Missing, None))?;
        let key_id = key::key_id(presented).ok_or((KeyRefusal::Unknown, None))?;
        let entry = self.keys.pin().get(key_id).cloned().ok_or((KeyRefusal::Unknown, None))?;
        if !bool::from(key::hash(presented).ct_eq(&entry.secret_hash)) {
            return Err((KeyRefusal::Unknown, None));
        }
        let now = now_secs();
        let refuse = |why| Err((why, Some(entry.clone())));
        if entry.revoked {
            return refuse(KeyRefusal::Revoked);
        }
        if entry.expires_at.is_some_and(|at| at <= now) {
            return refuse(KeyRefusal::Expired);
        }
        let Some(app) = self.apps.pin().get(&entry.application_id).cloned() else {
            return refuse(KeyRefusal::Unknown);
        };
        if !app.active {
            return refuse(KeyRefusal::ApplicationDisabled);
        }
        if let Some(limiter) = &entry.limiter
            && let Err(not_until) = limiter.check()
        {
            let wait = not_until.wait_time_from(governor::clock::Clock::now(&governor::clock::DefaultClock::default()));
            return refuse(KeyRefusal::RateLimited(wait.as_secs().max(1)));
        }
        if entry.last_used.load(Ordering::Relaxed) != now {
            entry.last_used.store(now, Ordering::Relaxed);
        }
        Ok(Principal { key: entry, app })
    }

    /// Whether the key is still known, unrevoked, unexpired and its application active: long-lived
    /// streams check this on every event, so revoking a key ends them too.
    pub fn key_still_valid(&self, key_id: &str) -> bool {
        let Some(entry) = self.keys.pin().get(key_id).cloned() else { return false };
        let app_active = self.apps.pin().get(&entry.application_id).is_some_and(|a| a.active);
        app_active && !entry.revoked && entry.expires_at.is_none_or(|at| at > now_secs())
    }

    /// When a key expires now, in Unix seconds (a rotation shortens the old key's life).
    pub fn key_expires_at(&self, key_id: &str) -> Option<i64> {
        self.keys.pin().get(key_id).and_then(|entry| entry.expires_at)
    }

    pub fn tenant(&self, name: &str) -> Option<Arc<TenantFlags>> {
        self.tenants.pin().get(name).cloned()
    }

    /// A receiver of every tenant whose resolved flags change from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<TenantFlags>> {
        self.changes.subscribe()
    }

    /// A receiver that changes whenever keys or applications are reloaded (then ask
    /// `key_still_valid`).
    pub fn watch_credentials(&self) -> watch::Receiver<u64> {
        self.credentials.subscribe()
    }

    pub fn events_url(&self, tenant: &str) -> String {
        format!("{}/v1/tenants/{tenant}/flags/events", self.public_url)
    }

    /// Replaces or adds keys; ids in `asked` that `rows` lacks are removed (deleted in the database).
    pub(super) fn put_keys(&self, rows: Vec<KeyRow>, asked: Option<&[String]>) {
        let keys = self.keys.pin();
        let loaded: std::collections::HashSet<String> = rows.iter().map(|r| r.key_id.clone()).collect();
        for row in rows {
            let previous = keys.get(row.key_id.as_str());
            let entry = self.key_entry(row, previous.map(|p| &**p));
            keys.insert(entry.key_id.clone(), Arc::new(entry));
        }
        match asked {
            Some(asked) => asked.iter().filter(|id| !loaded.contains(*id)).for_each(|id| {
                keys.remove(id.as_str());
            }),
            None => keys.retain(|id, _| loaded.contains(&**id)),
        }
        self.credentials.send_modify(|generation| *generation += 1);
    }

    fn key_entry(&self, row: KeyRow, previous: Option<&KeyEntry>) -> KeyEntry {
        let mut secret_hash = [0u8; 32];
        if row.secret_hash.len() == 32 {
            secret_hash.copy_from_slice(&row.secret_hash);
        }
        let (last_used, flushed) =
            previous.map_or((0, 0), |p| (p.last_used.load(Ordering::Relaxed), p.flushed.load(Ordering::Relaxed)));
        KeyEntry {
            id: row.id,
            key_id: row.key_id.into_boxed_str(),
            application_id: row.application_id,
            secret_hash,
            scopes: ScopeSet::of(&row.scopes),
            expires_at: row.expires_at.map(|t| t.timestamp()),
            revoked: row.revoked_at.is_some(),
            last_used: AtomicI64::new(last_used),
            flushed: AtomicI64::new(flushed),
            limiter: self.rate_limit.map(RateLimiter::direct),
        }
    }

    pub(super) fn put_apps(&self, rows: Vec<AppRow>, asked: Option<&[Uuid]>) {
        let apps = self.apps.pin();
        let loaded: std::collections::HashSet<Uuid> = rows.iter().map(|r| r.id).collect();
        for row in rows {
            let entry = AppEntry {
                id: row.id,
                active: row.status == AppStatus::Active,
                scopes: ScopeSet::of(&row.scopes),
                name: row.name.into_boxed_str(),
            };
            apps.insert(entry.id, Arc::new(entry));
        }
        match asked {
            Some(asked) => asked.iter().filter(|id| !loaded.contains(id)).for_each(|id| {
                apps.remove(id);
            }),
            None => apps.retain(|id, _| loaded.contains(id)),
        }
        self.credentials.send_modify(|generation| *generation += 1);
    }

    /// Resolves and stores tenants; those in `asked` that `rows` lacks are removed. A tenant whose
    /// flags, status or applications changed is announced to the event streams.
    pub(super) fn put_tenants(&self, rows: Vec<TenantFlagInputs>, asked: Option<&[String]>) {
        let tenants = self.tenants.pin();
        let loaded: std::collections::HashSet<String> = rows.iter().map(|r| r.name.clone()).collect();
        for row in rows {
            let url = self.events_url(&row.name);
            let built = Arc::new(TenantFlags::build(
                TenantFlagsRow {
                    active: row.status == crate::model::TenantStatus::Active,
                    name: row.name,
                    applications: row.applications,
                    plan_flags: row.plan_flags,
                    overrides: row.overrides,
                },
                &url,
            ));
            let changed =
                tenants.get(&*built.name).is_none_or(|old| old.version != built.version || old.active != built.active);
            tenants.insert(built.name.clone(), built.clone());
            if changed {
                // No receivers is not an error: nobody is streaming.
                let _ = self.changes.send(built);
            }
        }
        match asked {
            Some(asked) => asked.iter().filter(|n| !loaded.contains(*n)).for_each(|n| {
                tenants.remove(n.as_str());
            }),
            None => tenants.retain(|name, _| loaded.contains(&**name)),
        }
    }

    /// Uses seen since the last call, to write to the database; marks them written.
    pub(super) fn take_uses(&self) -> Vec<(Uuid, i64)> {
        let keys = self.keys.pin();
        let mut uses = Vec::new();
        for entry in keys.values() {
            let used = entry.last_used.load(Ordering::Relaxed);
            if used > entry.flushed.load(Ordering::Relaxed) {
                entry.flushed.store(used, Ordering::Relaxed);
                uses.push((entry.id, used));
            }
        }
        uses
    }

    pub fn key_count(&self) -> usize {
        self.keys.len()
    }
}
