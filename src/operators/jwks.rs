//! The provider's signing keys, kept in memory: fetched through discovery at start, refreshed
//! hourly in the background, and at once when a token names a key not seen yet (the provider
//! rotated). One fetch at a time: concurrent requests wait for the same one; and at most one per
//! `min_interval` (`MIN_INTERVAL` unless set), so tokens naming made-up keys cannot make Gatehouse
//! hammer the provider.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::Refusal;
use super::keys::{Key, KeySet, Lookup};
use super::settings::{SigningAlg, check_url};
use crate::outbound::{Client, Policy};

/// The background refresh period, as the issue asks (providers announce new keys well ahead).
const REFRESH_EVERY: Duration = Duration::from_secs(3600);
/// At most one fetch in this window, whatever the tokens ask, unless set otherwise.
pub(crate) const MIN_INTERVAL: Duration = Duration::from_secs(10);
/// After a failed background fetch, retry sooner, backing off up to this.
const MAX_RETRY: Duration = Duration::from_secs(300);

pub(crate) struct Jwks {
    issuer: String,
    /// Fetches the issuer's documents from the addresses its policy allows.
    client: Client,
    /// At most one fetch in this window.
    min_interval: Duration,
    current: RwLock<Arc<KeySet>>,
    /// Bumped by every successful fetch, so a waiter knows the fetch it waited for happened.
    generation: AtomicU64,
    /// Held for the whole fetch: the single flight.
    fetch: tokio::sync::Mutex<FetchState>,
}

#[derive(Default)]
struct FetchState {
    last_attempt: Option<Instant>,
    last_error: Option<String>,
}

impl Jwks {
    pub fn new(issuer: String, policy: Policy, min_interval: Duration) -> Self {
        Jwks {
            issuer,
            client: Client::new(policy),
            min_interval,
            current: RwLock::new(Arc::new(KeySet::default())),
            generation: AtomicU64::new(0),
            fetch: tokio::sync::Mutex::new(FetchState::default()),
        }
    }

    fn keys(&self) -> Arc<KeySet> {
        // A poisoned lock still holds a whole key set: the writer only swaps an Arc.
        self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// The keys that may check a token; fetches the set again once when the `kid` is unknown.
    pub async fn lookup(&self, kid: Option<&str>, alg: SigningAlg) -> Result<Vec<Arc<Key>>, Refusal> {
        let seen = self.generation.load(Ordering::Acquire);
        if let Lookup::Found(keys) = self.keys().lookup(kid, alg)? {
            return Ok(keys);
        }
        self.refresh(seen).await.map_err(Refusal::unavailable)?;
        match self.keys().lookup(kid, alg)? {
            Lookup::Found(keys) => Ok(keys),
            Lookup::Unknown => Err(Refusal::invalid(match kid {
                Some(kid) => format!("the token's signing key `{kid}` is not among the identity provider's keys"),
                None => format!("the identity provider publishes no key for {alg}, and the token names none"),
            })),
        }
    }

    /// Fetches the key set unless a fetch succeeded since `seen`, or one was tried within
    /// `min_interval` (then that one's outcome stands).
    async fn refresh(&self, seen: u64) -> Result<(), String> {
        let mut state = self.fetch.lock().await;
        if self.generation.load(Ordering::Acquire) != seen {
            return Ok(());
        }
        if let Some(at) = state.last_attempt
            && at.elapsed() < self.min_interval
        {
            return state.last_error.clone().map_or(Ok(()), Err);
        }
        state.last_attempt = Some(Instant::now());
        match fetch(&self.client, &self.issuer).await {
            Ok(set) => {
                tracing::info!(issuer = %self.issuer, keys = set.len(), "fetched the identity provider's signing keys");
                *self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(set);
                self.generation.fetch_add(1, Ordering::AcqRel);
                state.last_error = None;
                Ok(())
            }
            Err(error) => {
                tracing::warn!(issuer = %self.issuer, %error, "cannot fetch the identity provider's signing keys");
                state.last_error = Some(error.clone());
                Err(error)
            }
        }
    }

    /// Fetches now, then hourly; after a failure, again within seconds to minutes. Never gives up:
    /// the provider may be down at start and back later.
    pub async fn keep_fresh(self: Arc<Self>, shutdown: CancellationToken) {
        let mut retry = self.min_interval;
        loop {
            let seen = self.generation.load(Ordering::Acquire);
            let wait = match self.refresh(seen).await {
                Ok(()) => {
                    retry = self.min_interval;
                    REFRESH_EVERY
                }
                Err(_) => {
                    let wait = retry;
                    retry = (retry * 2).min(MAX_RETRY);
                    wait
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }
}

/// Discovery, then the key set it points to.
async fn fetch(client: &Client, issuer: &str) -> Result<KeySet, String> {
    let discovery_url = format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'));
    let discovery = client.get_json(&discovery_url).await?;
    match discovery.get("issuer").and_then(Value::as_str) {
        Some(named) if named == issuer => {}
        Some(named) => {
            return Err(format!("{discovery_url} names the issuer `{named}`, not `{issuer}` (they must be equal)"));
        }
        None => return Err(format!("{discovery_url} has no `issuer`")),
    }
    let Some(jwks_uri) = discovery.get("jwks_uri").and_then(Value::as_str) else {
        return Err(format!("{discovery_url} has no `jwks_uri`"));
    };
    check_url("the provider's jwks_uri", jwks_uri).map_err(|e| e.to_string())?;
    KeySet::parse(&client.get_json(jwks_uri).await?).map_err(|e| format!("{jwks_uri}: {e}"))
}
