//! `gatehouse serve`: the API and the reconciler in one process, until SIGTERM or Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use tokio_util::sync::CancellationToken;

use super::DatabaseArgs;
use crate::mail::worker::Delivery;
use crate::secret::Secret;
use crate::source::{Credentials, Source};
use crate::{plan, server, store};

pub(super) fn secret(value: &str) -> Result<Secret, std::convert::Infallible> {
    Ok(Secret::new(value.to_owned()))
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The config repository: a local directory (read in place and watched), a path to a git
    /// repository, or a git URL (file://, https://, ssh://).
    #[arg(long, env = "GATEHOUSE_REPO")]
    pub repo: String,
    /// Branch, tag or ref to follow (default: the remote's HEAD).
    #[arg(long = "ref", env = "GATEHOUSE_REF")]
    pub reference: Option<String>,
    /// The folder of the repository that holds the config (default: its root). Changes elsewhere in
    /// the repository neither trigger nor change a pass.
    #[arg(long, env = "GATEHOUSE_PATH", value_parser = crate::source::config_path)]
    pub path: Option<PathBuf>,
    /// Address the API listens on.
    #[arg(long, env = "GATEHOUSE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// How long a request waits for a database connection before it is answered 503 with
    /// Retry-After (the database is down, restarting or saturated), rather than hanging.
    #[arg(long, env = "GATEHOUSE_DATABASE_ACQUIRE_TIMEOUT", default_value = "1s", value_parser = humantime::parse_duration)]
    pub database_acquire_timeout: Duration,
    /// Time between reconcile passes (drift is checked on every pass), such as 60s or 500ms.
    #[arg(long, env = "GATEHOUSE_INTERVAL", default_value = "60s", value_parser = humantime::parse_duration)]
    pub interval: Duration,
    /// Shared secret of Git webhooks (GitHub X-Hub-Signature-256 or GitLab X-Gitlab-Token).
    #[arg(long, env = "GATEHOUSE_WEBHOOK_SECRET", hide_env_values = true, value_parser = secret)]
    pub webhook_secret: Option<Secret>,
    /// Bootstrap bearer token for the operator endpoints (/v1/sync, /v1/apps, /v1/mail, unlock, tenant
    /// administration): for first set-up and break-glass; people sign in through --oidc-issuer-url.
    #[arg(long, env = "GATEHOUSE_OPERATOR_TOKEN", hide_env_values = true, value_parser = secret)]
    pub operator_token: Option<Secret>,
    /// HTTPS token for the git remote.
    #[arg(long, env = "GATEHOUSE_GIT_TOKEN", hide_env_values = true, value_parser = secret)]
    pub git_token: Option<Secret>,
    /// SSH private key file for the git remote.
    #[arg(long, env = "GATEHOUSE_SSH_KEY")]
    pub ssh_key: Option<PathBuf>,
    /// Where the git remote is cloned (default: a folder under the system temp dir).
    #[arg(long, env = "GATEHOUSE_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// This replica's name in the status (default: host name and process id).
    #[arg(long, env = "GATEHOUSE_REPLICA")]
    pub replica: Option<String>,
    /// The API's address as clients reach it (behind a load balancer, its address), for links in
    /// responses such as OFREP event streams. Default: http://<listen>.
    #[arg(long, env = "GATEHOUSE_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Requests per second each API key may make to this replica (default: no limit). Over it,
    /// requests get 429 with Retry-After.
    #[arg(long, env = "GATEHOUSE_KEY_RATE_LIMIT")]
    pub key_rate_limit: Option<std::num::NonZeroU32>,
    /// How often each replica writes the API keys' last use to the database.
    #[arg(long, env = "GATEHOUSE_KEY_USE_FLUSH_INTERVAL", default_value = "10s", value_parser = humantime::parse_duration)]
    pub key_use_flush_interval: Duration,
    #[command(flatten)]
    pub identity: super::identity::IdentityArgs,
    /// The key that signs the audit log's checkpoints (base64; `gatehouse audit keygen`). Without
    /// it no checkpoints are written (the hash chains still are).
    #[arg(long, env = "GATEHOUSE_AUDIT_SIGNING_KEY", hide_env_values = true, value_parser = secret)]
    pub audit_signing_key: Option<Secret>,
    /// How often a signed checkpoint of the audit log is written (by one replica).
    #[arg(long, env = "GATEHOUSE_AUDIT_CHECKPOINT_INTERVAL", default_value = "1h", value_parser = humantime::parse_duration)]
    pub audit_checkpoint_interval: Duration,
    /// A directory that receives a copy of every checkpoint (a mounted bucket, a backed-up volume).
    #[arg(long, env = "GATEHOUSE_AUDIT_CHECKPOINT_DIR")]
    pub audit_checkpoint_dir: Option<PathBuf>,
    /// Where budget notices (thresholds, the limit, override steps) are POSTed as JSON, signed with
    /// `--budget-webhook-secret` (header Gatehouse-Signature).
    #[arg(long, env = "GATEHOUSE_BUDGET_WEBHOOK_URL", requires = "budget_webhook_secret")]
    pub budget_webhook_url: Option<String>,
    /// The HMAC-SHA256 key of the budget webhooks' signatures.
    #[arg(long, env = "GATEHOUSE_BUDGET_WEBHOOK_SECRET", hide_env_values = true, value_parser = secret)]
    pub budget_webhook_secret: Option<Secret>,
    /// How long the audit log keeps a month: months that ended longer ago are dropped whole (their
    /// checkpoints stay, so `audit verify` shows where retention ended).
    #[arg(long, env = "GATEHOUSE_AUDIT_RETENTION", default_value = "400d", value_parser = humantime::parse_duration)]
    pub audit_retention: Duration,
    /// How long a deleted tenant stays restorable before it is purged (its users, sessions and flags
    /// with it; its audit rows stay).
    #[arg(long, env = "GATEHOUSE_TENANT_RETENTION", default_value = "30d", value_parser = humantime::parse_duration)]
    pub tenant_retention: Duration,

    /// How long a purged tenant's name stays reserved.
    #[arg(long, env = "GATEHOUSE_TENANT_NAME_RESERVATION", default_value = "90d", value_parser = humantime::parse_duration)]
    pub tenant_name_reservation: Duration,

    /// Allow removing more than half of a tenant's users, or all of them, for every tenant. To allow
    /// one tenant's removal once, use `gatehouse sync allow-deletion TENANT` instead.
    #[arg(long, env = "GATEHOUSE_ALLOW_MASS_DELETE")]
    pub allow_mass_delete: bool,
    /// Let tenants' SSO providers use http on a loopback host (127.0.0.1, ::1, localhost): for a
    /// local set-up or tests only. Otherwise every provider URL must be https.
    #[arg(long, env = "GATEHOUSE_SSO_ALLOW_LOOPBACK_HTTP")]
    pub sso_allow_loopback_http: bool,
    /// How long the ID tokens Gatehouse issues to managed applications live.
    #[arg(long, env = "GATEHOUSE_ID_TOKEN_TTL", default_value = "1h", value_parser = humantime::parse_duration)]
    pub id_token_ttl: Duration,
    /// How often the ID token signing keys rotate (the next key is published a whole period before
    /// it signs; `POST /v1/oidc/keys/rotate` rotates at once).
    #[arg(long, env = "GATEHOUSE_SIGNING_KEY_ROTATION", default_value = "30d", value_parser = humantime::parse_duration)]
    pub signing_key_rotation: Duration,
    /// Reconcile passes kept in the sync history (`GET /v1/sync/history`): each pass that changed,
    /// reverted or failed something. Older ones are forgotten.
    #[arg(long, env = "GATEHOUSE_HISTORY_LIMIT", default_value_t = 1000, value_parser = clap::value_parser!(i64).range(1..=1_000_000))]
    pub history_limit: i64,
    /// The committer of write-back commits (`sync.interactiveEdits: writeBack`); the author is the
    /// person who made the change.
    #[arg(long, env = "GATEHOUSE_WRITE_BACK_COMMITTER", default_value = "Gatehouse <gatehouse@localhost>", value_parser = committer)]
    pub write_back_committer: (String, String),
    /// How long an answer to a change written back to Git waits for the reconciler to apply the
    /// commit; after that it answers 202 with the commit.
    #[arg(long, env = "GATEHOUSE_WRITE_BACK_WAIT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub write_back_wait: Duration,
    /// Last: its help heading would otherwise cover the flags after it.
    #[command(flatten)]
    pub oidc: super::oidc::OidcArgs,
}

pub async fn serve(args: ServeArgs) -> anyhow::Result<u8> {
    let server = start(args).await?;
    tokio::spawn(stop_on_signal(server.shutdown.clone()));
    server.wait().await?;
    Ok(0)
}

/// Everything `serve` does before it waits: the settings checked, the database connected and
/// migrated, the listener bound, the server launched on the current runtime. The tests' in-process
/// servers start here too.
pub async fn start(args: ServeArgs) -> anyhow::Result<server::Server> {
    if let Some(problem) = args.operator_token.as_ref().and_then(|t| crate::api::bootstrap_token_problem(t.expose())) {
        anyhow::bail!("--operator-token (GATEHOUSE_OPERATOR_TOKEN) cannot be used: {problem}; choose another value");
    }
    let keyring = args.identity.keys.keyring()?;
    let mailer = Delivery::new(args.identity.smtp_url.as_ref().map(Secret::expose), &args.identity.mail_from)?;
    let pool = store::connect_with(args.database.database_url.expose(), args.database_acquire_timeout).await?;
    crate::source::set_network_timeouts(Duration::from_secs(10), Duration::from_secs(30));
    let cache = args.cache_dir.clone().unwrap_or_else(|| default_cache(&args.repo));
    let credentials = Credentials { token: args.git_token.clone(), ssh_key: args.ssh_key.clone() };
    let source = Source::new(&args.repo, args.reference.clone(), cache, credentials).with_path(args.path.as_deref());
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let settings = server::Settings {
        replica: args.replica.clone().unwrap_or_else(default_replica),
        interval: args.interval,
        options: plan::Options { allow_mass_delete: args.allow_mass_delete },
        history_limit: args.history_limit,
        public_url: args.public_url.clone(),
        key_rate_limit: args.key_rate_limit,
        key_use_flush_interval: args.key_use_flush_interval,
        // `launch` sets the public URL, which may depend on the bound address.
        identity: args.identity.settings(""),
        keyring,
        mailer,
        operator_token: args.operator_token.clone(),
        oidc: args.oidc.settings(),
        staff_sign_in: args.oidc.oidc_client_secret.clone().map(|secret| (secret, args.oidc.oidc_browser_session)),
        webhook_secret: args.webhook_secret.clone(),
        audit_retention: span("--audit-retention", args.audit_retention)?,
        audit_checkpoints: audit_checkpoints(&args)?.map(std::sync::Arc::new),
        budget_webhook: match (&args.budget_webhook_url, &args.budget_webhook_secret) {
            (Some(url), Some(secret)) => {
                Some(crate::budget::notify::Webhook { url: url.clone(), secret: secret.clone() })
            }
            _ => None,
        },
        retention: crate::api::TenantRetention {
            restorable_for: span("--tenant-retention", args.tenant_retention)?,
            name_reserved_for: span("--tenant-name-reservation", args.tenant_name_reservation)?,
        },
        write_back: crate::writeback::Settings {
            committer: args.write_back_committer.clone(),
            wait: args.write_back_wait,
        },
        sso_allow_loopback_http: args.sso_allow_loopback_http,
        provider: crate::oidc::Lifetimes {
            id_token: args.id_token_ttl,
            key_rotation: args.signing_key_rotation,
            ..crate::oidc::Lifetimes::default()
        },
    };
    server::launch(pool, source, listener, settings)
}

/// Where and how often the audit log's checkpoints are signed; `None` without a key.
fn audit_checkpoints(args: &ServeArgs) -> anyhow::Result<Option<crate::audit::checkpoint::Settings>> {
    let Some(key) = &args.audit_signing_key else { return Ok(None) };
    let signer = crate::audit::checkpoint::Signer::from_base64(key.expose())
        .map_err(|e| anyhow::anyhow!("GATEHOUSE_AUDIT_SIGNING_KEY cannot be used: {e}"))?;
    if args.audit_checkpoint_interval < Duration::from_secs(1) {
        anyhow::bail!("--audit-checkpoint-interval must be at least 1s");
    }
    Ok(Some(crate::audit::checkpoint::Settings {
        signer,
        every: args.audit_checkpoint_interval,
        dir: args.audit_checkpoint_dir.clone(),
    }))
}

/// One cache folder per remote, so that two remotes never share a clone.
fn default_cache(repo: &str) -> PathBuf {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(repo.as_bytes());
    std::env::temp_dir().join(format!("gatehouse-{}", &hex::encode(digest)[..16]))
}

fn default_replica() -> String {
    let host =
        std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_owned()).unwrap_or_else(|_| "gatehouse".into());
    format!("{host}-{}", std::process::id())
}

async fn stop_on_signal(shutdown: CancellationToken) {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
    tracing::info!("stopping: finishing the pass and the requests in flight");
    shutdown.cancel();
}

/// A retention period as the database keeps it (at most 100 years).
fn span(flag: &str, duration: Duration) -> anyhow::Result<chrono::TimeDelta> {
    chrono::TimeDelta::from_std(duration)
        .ok()
        .filter(|span| *span <= chrono::TimeDelta::days(36_525))
        .ok_or_else(|| anyhow::anyhow!("{flag}: at most 100 years"))
}

/// `Name <email>`, as git writes a person.
fn committer(text: &str) -> Result<(String, String), String> {
    let (name, rest) = text.split_once('<').ok_or("write it as `Name <email>`")?;
    let email = rest.strip_suffix('>').ok_or("write it as `Name <email>`")?;
    let name = name.trim();
    if name.is_empty() || email.contains(['<', '>']) {
        return Err("write it as `Name <email>`".into());
    }
    Ok((name.to_owned(), email.trim().to_owned()))
}
