//! One running Gatehouse: the reconciler, the delivery cache and what keeps it current,
//! invitations, the mail worker, pruning, the denial log and the API, wired in one place. `gatehouse serve` and the
//! integration tests both call `launch`, so the tests run what production runs.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::audit::{self, Origin, Outcome, Target};
use crate::authz::{Actor, Job};
use crate::delivery::{self, DeliveryCache};
use crate::denials::DenialLog;
use crate::identity::Identity;
use crate::mail::worker::Delivery;
use crate::reconcile::controller::{self, Controller};
use crate::secret::Secret;
use crate::secret::sealed::Keyring;
use crate::source::Source;
use crate::telemetry::Metrics;
use crate::{api, identity, mail, plan, store};

/// Everything `launch` needs besides the pool, the source and the listener.
pub struct Settings {
    /// This replica's name in the status.
    pub replica: String,
    /// Time between reconcile passes.
    pub interval: Duration,
    pub options: plan::Options,
    /// Reconcile passes kept in the sync history.
    pub history_limit: i64,
    /// The API's address as clients reach it, for links in mails and responses. `None`:
    /// `http://<bound address>`. It replaces `identity.public_url`.
    pub public_url: Option<String>,
    /// Requests per second each API key may make to this replica (`None`: no limit).
    pub key_rate_limit: Option<NonZeroU32>,
    /// How often the API keys' last use is written to the database.
    pub key_use_flush_interval: Duration,
    pub identity: identity::Settings,
    /// Seals TOTP secrets and unsent mail.
    pub keyring: Arc<Keyring>,
    /// Where mail goes (an SMTP relay, or nowhere: it stays in the outbox).
    pub mailer: Delivery,
    /// The bootstrap operator token (first set-up, break-glass); `None` refuses it.
    pub operator_token: Option<Secret>,
    /// The identity provider of operators and auditors; `None`: none is configured.
    pub oidc: Option<crate::operators::OidcSettings>,
    /// Their sign-in in a browser: Gatehouse's client secret at that provider (`None`: bearer
    /// tokens only), and how long a platform session lasts.
    pub staff_sign_in: Option<(Secret, Duration)>,
    /// Shared secret of Git webhooks; `None` refuses every webhook.
    pub webhook_secret: Option<Secret>,
    /// How long deleted tenants stay restorable, and their names reserved after the purge.
    pub retention: api::TenantRetention,
    /// How long the audit log keeps a month.
    pub audit_retention: chrono::TimeDelta,
    /// Signed checkpoints of the audit log (and of what retention drops); `None`: no signing key.
    pub audit_checkpoints: Option<Arc<crate::audit::checkpoint::Settings>>,
    /// Where budget notices are sent as signed webhooks.
    pub budget_webhook: Option<crate::budget::notify::Webhook>,
    /// Gatehouse as the OpenID provider of managed applications: its lifetimes and key rotation.
    pub provider: crate::oidc::Lifetimes,
    /// Tenant SSO may use http issuers on a loopback host (local set-ups and tests only).
    pub sso_allow_loopback_http: bool,
    /// Committer and wait of Git write-back (issue 24).
    pub write_back: crate::writeback::Settings,
}

/// A launched Gatehouse. Cancel `shutdown`, then `wait` for it to drain.
pub struct Server {
    /// The address the API is bound to (the listener's, so port 0 is resolved).
    pub address: SocketAddr,
    /// Cancelling it stops everything: requests in flight and the pass under way finish first.
    pub shutdown: CancellationToken,
    /// The database the server uses, for tasks started beside it.
    pub pool: PgPool,
    api: JoinHandle<std::io::Result<()>>,
    reconciler: JoinHandle<()>,
    flusher: JoinHandle<()>,
    /// Every other background task: shutdown waits for all of them.
    tasks: TaskTracker,
    denials: DenialLog,
    /// Lives as long as the server: a watched config directory wakes the reconciler on an edit.
    _watcher: Option<notify::RecommendedWatcher>,
}

/// How long shutdown waits for the background workers once the API and the reconciler have
/// stopped: the workers stop between messages, so this bounds one send in flight.
const TASKS_DEADLINE: Duration = Duration::from_secs(10);

/// Starts every task of a running Gatehouse on `listener` and returns at once.
pub fn launch(
    pool: PgPool,
    source: Source,
    listener: tokio::net::TcpListener,
    settings: Settings,
) -> anyhow::Result<Server> {
    let address = listener.local_addr().context("cannot read the address the API listens on")?;
    let shutdown = CancellationToken::new();
    // Every background task is started here, on this tracker or (the three `wait` stops in order)
    // with its own handle: nothing runs that shutdown does not wait for.
    let tasks = TaskTracker::new();
    let wake = Arc::new(tokio::sync::Notify::new());
    // Everything that can refuse to start does so before any task is started.
    let watcher = match &source {
        Source::Directory(dir) => {
            Some(controller::watch_directory(dir, wake.clone()).context("cannot watch the config directory")?)
        }
        Source::Git(_) => None,
    };
    let operators = match settings.oidc {
        Some(oidc) => Some(crate::operators::Verifier::new(oidc)?),
        None => None,
    };
    if let Some(verifier) = &operators {
        tasks.spawn(verifier.keep_keys_fresh(shutdown.clone()));
    }
    let metrics = Arc::new(Metrics::default());

    tracing::info!(%address, source = %source.describe(), replica = %settings.replica, interval = ?settings.interval, "gatehouse is serving");

    let config_dir = source.config_dir();
    let write_back = Arc::new(crate::writeback::WriteBack::new(&source, settings.write_back.clone()));
    tasks.spawn(controller::listen_for_syncs(pool.clone(), wake.clone(), shutdown.clone()));
    let reconciler = Controller {
        pool: reconciler_pool(&pool),
        source,
        options: settings.options,
        interval: settings.interval,
        replica: settings.replica.clone(),
        wake,
        metrics: metrics.clone(),
        history_limit: settings.history_limit,
    };
    let reconciler = tokio::spawn(reconciler.run(shutdown.clone()));
    let replica = settings.replica;

    let public_url = settings.public_url.unwrap_or_else(|| format!("http://{address}"));
    let cache = Arc::new(DeliveryCache::new(&public_url, settings.key_rate_limit));
    tasks.spawn(delivery::sync::keep_current(cache.clone(), pool.clone(), shutdown.clone()));
    let flusher = tokio::spawn(delivery::sync::flush_key_use(
        cache.clone(),
        pool.clone(),
        settings.key_use_flush_interval,
        shutdown.clone(),
    ));

    let denials = DenialLog::start(pool.clone());
    let identity_settings = identity::Settings { public_url, ..settings.identity };
    let identity = Identity::new(pool.clone(), identity_settings, settings.keyring, denials.clone());
    tasks.spawn(identity::invitation::run(identity.clone(), shutdown.clone()));
    tasks.spawn(mail::worker::run(pool.clone(), identity.keyring.clone(), settings.mailer, shutdown.clone()));
    tasks.spawn(prune_expired(identity.clone(), shutdown.clone()));
    tasks.spawn(announce_replica(pool.clone(), replica, address.to_string(), shutdown.clone()));
    tasks.spawn(purge_deleted_tenants(pool.clone(), settings.retention, shutdown.clone()));
    tasks.spawn(keep_audit_months(
        pool.clone(),
        settings.audit_retention,
        settings.audit_checkpoints.clone(),
        shutdown.clone(),
    ));
    match settings.audit_checkpoints {
        Some(checkpoints) => {
            tasks.spawn(crate::audit::checkpoint::run(pool.clone(), checkpoints, shutdown.clone()));
        }
        None => tracing::warn!(
            "audit checkpoints are off: set GATEHOUSE_AUDIT_SIGNING_KEY (gatehouse audit keygen) to sign the log's chains"
        ),
    }
    let budgets = Arc::new(crate::budget::book::Book::default());
    tasks.spawn(crate::budget::book::keep_current(budgets.clone(), pool.clone(), shutdown.clone()));
    if let Some(webhook) = settings.budget_webhook.clone() {
        tasks.spawn(crate::budget::notify::run(pool.clone(), webhook, shutdown.clone()));
    }
    let keys = crate::oidc::Keys::new(pool.clone(), identity.keyring.clone(), settings.provider.id_token);
    let provider = Arc::new(crate::oidc::Provider {
        issuer: identity.settings.public_url.trim_end_matches('/').to_owned(),
        lifetimes: settings.provider,
        keys,
    });
    tasks.spawn(keep_signing_keys(provider.clone(), pool.clone(), shutdown.clone()));
    let sso = Arc::new(crate::sso::Sso::new(
        pool.clone(),
        identity.keyring.clone(),
        &identity.settings.public_url,
        settings.sso_allow_loopback_http,
        identity.settings.times.absolute,
    ));
    let staff = match (&operators, settings.staff_sign_in) {
        (Some(verifier), Some((secret, lifetime))) => Some(Arc::new(crate::staff::Staff::new(
            pool.clone(),
            identity.keyring.clone(),
            &identity.settings.public_url,
            verifier.clone(),
            secret,
            lifetime,
        ))),
        _ => None,
    };
    let state = api::AppState::new(api::Services {
        provider,
        sso,
        staff,
        budget_webhook: settings.budget_webhook,
        budgets,
        retention: settings.retention,
        identity,
        delivery: cache,
        pool: pool.clone(),
        metrics,
        operator_token: settings.operator_token,
        operators,
        webhook_secret: settings.webhook_secret,
        denials: denials.clone(),
        config_dir: Some(config_dir),
        write_back: Some(write_back),
    });
    let api = tokio::spawn(api::serve(listener, state, shutdown.clone()));
    tasks.close();
    Ok(Server { address, shutdown, pool, api, reconciler, flusher, tasks, denials, _watcher: watcher })
}

impl Server {
    /// Waits until the server has stopped (after `shutdown` is cancelled): the requests in flight
    /// first, then the refusals they left to audit (written before the process ends), then the
    /// reconciler's pass under way and the last write of the keys' use, then every other task
    /// (workers stop between batches).
    pub async fn wait(self) -> anyhow::Result<()> {
        let served = self.api.await;
        self.denials.close().await;
        // Whatever failed, every task is waited for (workers give back what they claimed); the
        // first failure is reported after.
        self.shutdown.cancel();
        let reconciled = self.reconciler.await;
        let flushed = self.flusher.await;
        if tokio::time::timeout(TASKS_DEADLINE, self.tasks.wait()).await.is_err() {
            tracing::warn!(
                still_running = self.tasks.len(),
                seconds = TASKS_DEADLINE.as_secs(),
                "background tasks still running after the deadline are cut"
            );
        }
        served.context("the API task failed")?.context("the API stopped with an error")?;
        reconciled.context("the reconciler task failed")?;
        flushed.context("the key-use flush task failed")?;
        Ok(())
    }

    /// Stops without draining, as a killed process would: the reconciler dies holding whatever it
    /// holds (its connections close with it, so its lock is freed the way a crash frees it), and
    /// the other tasks are told to stop and not waited for.
    pub fn abort(self) {
        self.reconciler.abort();
        self.shutdown.cancel();
    }
}

/// Keeps every replica's signing keys current (a rotation on another replica is seen within
/// 30 s: until then this one signs with the previous key, still published), rotates them when
/// they are due, and drops spent authorization codes.
async fn keep_signing_keys(provider: Arc<crate::oidc::Provider>, pool: PgPool, shutdown: CancellationToken) {
    // The first load (made on the first start), retried until the database answers.
    while let Err(error) = provider.keys.load().await {
        tracing::warn!(%error, "cannot load the ID token signing keys; retrying");
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(30)) => {}
        }
        match provider.keys.rotate_if_older(provider.lifetimes.key_rotation).await {
            Ok(true) => tracing::info!("rotated the ID token signing keys"),
            Ok(false) => {}
            Err(error) => tracing::warn!(%error, "cannot rotate the ID token signing keys"),
        }
        if let Err(error) = provider.keys.refresh().await {
            tracing::warn!(%error, "cannot reload the ID token signing keys");
        }
        if let Err(error) = store::oidc::prune_codes(&pool).await {
            tracing::warn!(%error, "cannot prune authorization codes");
        }
        if let Err(error) = store::sso::prune_logins(&pool).await {
            tracing::warn!(%error, "cannot prune federated sign-ins");
        }
    }
}

/// Purges the tenants whose deletion is due, on every replica (each purge locks its rows, so two
/// replicas never purge one tenant twice). Checks every minute, or as often as the retention period
/// when that is shorter.
async fn purge_deleted_tenants(pool: sqlx::PgPool, retention: api::TenantRetention, shutdown: CancellationToken) {
    let every =
        retention.restorable_for.to_std().unwrap_or_default().clamp(Duration::from_secs(1), Duration::from_secs(60));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        let reserved_days = retention.name_reserved_for.num_days();
        let row = |name: &str| {
            let target = Target::in_tenant(name, format!("tenant/{name}"));
            let details = serde_json::json!({ "reservedForDays": reserved_days });
            audit::entry(
                &Actor::System(Job::Purge),
                "tenant.purge",
                target,
                Outcome::Success,
                &Origin::default(),
                details,
            )
        };
        match store::tenants::purge_due(&pool, retention.name_reserved_for, row).await {
            Ok(purged) if purged.is_empty() => {}
            Ok(purged) => tracing::info!(?purged, "purged deleted tenants"),
            Err(error) => tracing::warn!(%error, "cannot purge deleted tenants"),
        }
    }
}

/// Connections of the reconciler's own (issue 25.6): its leadership lock, two batches in flight,
/// the tenant it retries alone and its status writes. Requests and workers never take them, nor it
/// theirs, and it waits longer for one: a pass waits out a busy moment rather than failing.
const RECONCILER_CONNECTIONS: u32 = 6;
const RECONCILER_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

fn reconciler_pool(pool: &PgPool) -> PgPool {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(RECONCILER_CONNECTIONS)
        .acquire_timeout(RECONCILER_ACQUIRE_TIMEOUT)
        .connect_lazy_with((*pool.connect_options()).clone())
}

/// The audit row of dropping a month of the audit log.
fn retention_row(dropped: &store::audit_retention::Dropped) -> store::AuditEntry {
    let target = Target::platform(format!("audit-log/{}", dropped.partition));
    let details = serde_json::json!({ "until": dropped.until, "rows": dropped.rows, "keptFor": format!("{} days", dropped.kept_for_days) });
    audit::entry(
        &Actor::System(Job::Retention),
        "audit.retention",
        target,
        Outcome::Success,
        &Origin::default(),
        details,
    )
}

/// Creates the audit log's coming months and drops those past the retention, at start and then
/// every hour; one replica at a time does it. With a signing key, each drop is signed by a checkpoint
/// in its transaction.
async fn keep_audit_months(
    pool: sqlx::PgPool,
    keep: chrono::TimeDelta,
    checkpoints: Option<Arc<crate::audit::checkpoint::Settings>>,
    shutdown: CancellationToken,
) {
    let sign = checkpoints.as_deref().map(|settings| {
        move |heads: &[(i16, i64, Vec<u8>)],
              last: Option<&store::audit_chain::CheckpointRow>,
              retention: &[store::audit_retention::Dropped]| settings.signer.sign(heads, last, retention)
    });
    loop {
        let signer = sign.as_ref().map(|s| s as &store::audit_chain::Sign<'_>);
        let copy = |row: &store::audit_chain::CheckpointRow| checkpoints.iter().for_each(|c| c.copy(row));
        match store::audit_retention::apply(&pool, keep, chrono::Utc::now(), signer, &copy, &retention_row).await {
            Ok(dropped) if dropped.is_empty() => {}
            Ok(dropped) => {
                let months: Vec<&str> = dropped.iter().map(|d| d.partition.as_str()).collect();
                tracing::info!(?months, "dropped audit log months past the retention");
            }
            Err(error) => tracing::warn!(%error, "cannot keep the audit log's months"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(3600)) => {}
        }
    }
}

/// Says this replica is alive every 15 seconds, for the platform page's list of replicas; removes
/// its row when it stops.
async fn announce_replica(pool: PgPool, name: String, address: String, shutdown: CancellationToken) {
    let started_at = chrono::Utc::now();
    loop {
        let announced = async {
            let mut conn = pool.acquire().await?;
            store::status::announce(&mut conn, &name, &address, started_at).await
        };
        if let Err(error) = announced.await {
            tracing::warn!(%error, "cannot announce this replica");
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(store::status::HEARTBEAT) => {}
        }
    }
    if let Ok(mut conn) = pool.acquire().await
        && let Err(error) = store::status::retire(&mut conn, &name).await
    {
        tracing::warn!(%error, "cannot remove this replica from the list");
    }
}

/// Deletes expired sessions, spent tokens, old counters and webhook deliveries, every ten minutes.
async fn prune_expired(identity: Identity, shutdown: CancellationToken) {
    loop {
        match store::identity::prune_expired(&identity.pool, identity.settings.times).await {
            Ok(0) => {}
            Ok(deleted) => tracing::debug!(deleted, "pruned expired sessions and counters"),
            Err(error) => tracing::warn!(%error, "cannot prune expired sessions"),
        }
        if let Err(error) = store::prune_deliveries(&identity.pool).await {
            tracing::warn!(%error, "cannot prune old webhook deliveries");
        }
        if let Err(error) = store::idempotency::prune(&identity.pool).await {
            tracing::warn!(%error, "cannot prune old idempotency keys");
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(600)) => {}
        }
    }
}
