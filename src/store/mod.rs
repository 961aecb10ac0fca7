//! The only module that speaks SQL. Functions take `&mut PgConnection` (or a pool for reads), so the
//! caller decides what runs in which transaction.

pub mod allowance;
pub mod apps;
mod audit;
pub mod audit_chain;
pub mod audit_read;
pub mod audit_retention;
pub mod budget;
pub mod chain;
pub mod drift;
mod enums;
pub mod history;
pub mod idempotency;
pub mod identity;
pub mod invitation;
pub mod listen;
mod live;
pub mod mail;
pub mod oidc;
pub mod sso;
pub mod staff;
pub mod status;
pub mod tenants;
pub mod usage;
pub mod users;
mod write;

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::MigrateDatabase;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres};

pub use audit::{
    AuditEntry, MAX_RESOURCE, MAX_TENANT, ReportedEvent, bounded, insert_audit, insert_audit_at, insert_audit_with_id,
    insert_reported,
};
pub use live::{load_details, load_live, load_live_locked, load_tenant, lock_tenants, reconciler_history};
pub use write::{apply_global, apply_tenants};

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "cannot reach PostgreSQL at {target}: {reason}. Is it running? (locally: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start) Or set DATABASE_URL / --database-url"
    )]
    Unreachable { target: String, reason: String },
    #[error("invalid database URL: {0}")]
    InvalidUrl(String),
    #[error(
        "database {0} does not exist: check DATABASE_URL / --database-url (`gatehouse migrate` or `serve` creates it)"
    )]
    NoDatabase(String),
    #[error("database {0} is not migrated to this version of Gatehouse: run `gatehouse migrate`")]
    NotMigrated(String),
    #[error("cannot migrate the database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(
        "another reconciler holds this database's reconciler lock: an `apply`, or a running `gatehouse serve` (whose leader holds it while it runs; let it apply, or `POST /v1/sync`, or stop it first)"
    )]
    Busy,
    #[error("a background task failed: {0}")]
    Task(String),
    #[error("{0} changed while it was being planned")]
    Conflict(String),
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
    /// A change the data's rules refuse (unknown tenant, last owner, stale `If-Match`, …): the API
    /// answers it with the rule's status and `code`.
    #[error("{message}")]
    Rule { rule: Rule, code: &'static str, message: String },
    /// The database holds something Gatehouse never writes (a migration's rows removed by hand).
    #[error("the database breaks an invariant: {0}")]
    Broken(String),
    /// A connection error met by a task that answers several callers (see `is_unavailable`).
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
}

/// Which kind of rule refused a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// The thing to change does not exist (404).
    NotFound,
    /// It exists, but its state forbids the change (409).
    Conflict,
    /// It changed since the caller read it (412, `If-Match`).
    Stale,
    /// The change names something invalid (422).
    Invalid,
}

/// A refusal by a rule the store enforces: `rule` (which status it answers), `code`, `message`.
pub(crate) fn rule(rule: Rule, code: &'static str, message: String) -> StoreError {
    StoreError::Rule { rule, code, message }
}

/// A strong entity tag of a representation: the first 16 bytes of the SHA-256 of its JSON, quoted.
pub fn etag(representation: &impl serde::Serialize) -> String {
    use sha2::Digest;
    let json = serde_json::to_vec(representation).unwrap_or_default();
    let digest = sha2::Sha256::digest(&json);
    format!("\"{}\"", hex::encode(&digest[..16]))
}

impl StoreError {
    /// Whether the database could not be reached (down, restarting, refusing connections, or no
    /// connection free in time), as opposed to a statement that failed: the first is worth a retry
    /// later, and the API answers it 503 rather than 500.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Unreachable { .. } | StoreError::Unavailable(_) => true,
            StoreError::Sql(error) => is_connection_error(error),
            _ => false,
        }
    }
}

impl StoreError {
    /// Whether no connection was free within the pool's acquire timeout.
    pub fn is_pool_timeout(&self) -> bool {
        matches!(self, StoreError::Sql(sqlx::Error::PoolTimedOut))
    }

    /// Whether trying again soon may succeed without anyone changing anything: the database was
    /// unavailable or busy, or the transaction lost a race (serialization failure, deadlock).
    pub fn is_transient(&self) -> bool {
        self.is_unavailable()
            || matches!(self, StoreError::Sql(sqlx::Error::Database(e))
                if e.code().is_some_and(|code| matches!(&*code, "40001" | "40P01")))
    }
}

fn is_connection_error(error: &sqlx::Error) -> bool {
    match error {
        // Io covers a refused, reset or dropped connection.
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(e) => e.code().is_some_and(|code| {
            refuses_connections(&code)
                // 55000 is also a statement's lasting error (a table a publication cannot
                // update, …): only the database that refuses connections is an outage.
                || (&*code == "55000" && e.message().contains("not currently accepting connections"))
        }),
        _ => false,
    }
}

/// Whether a PostgreSQL error code says the database cannot serve us now, rather than that a
/// statement was wrong: 08 connection exceptions; 28 the role may no longer sign in; 53 out of
/// resources (too many clients, disk full, out of memory); 57P01-57P04 shut down, cannot connect
/// now (starting up, shutting down, recovering), dropped, idle session ended; 3D000 the database
/// does not exist (any more). (A database that does not allow connections answers 55000, told
/// apart by its message in `is_connection_error`.)
fn refuses_connections(code: &str) -> bool {
    code.starts_with("08")
        || code.starts_with("28")
        || code.starts_with("53")
        || matches!(code, "57P01" | "57P02" | "57P03" | "57P04" | "57P05" | "3D000")
}

/// `host:port/database`, never the password.
fn describe(options: &PgConnectOptions) -> String {
    format!("{}:{}/{}", options.get_host(), options.get_port(), options.get_database().unwrap_or("postgres"))
}

/// Connects, creating the database if it does not exist and running the embedded migrations.
pub async fn connect(url: &str) -> Result<PgPool> {
    connect_with(url, Duration::from_secs(10)).await
}

/// `connect`, with the longest a caller waits for a pooled connection before `PoolTimedOut`.
pub async fn connect_with(url: &str, acquire_timeout: Duration) -> Result<PgPool> {
    let options = PgConnectOptions::from_str(url).map_err(|e| StoreError::InvalidUrl(e.to_string()))?;
    let target = describe(&options);
    let unreachable = |e: sqlx::Error| StoreError::Unreachable { target: target.clone(), reason: e.to_string() };
    if !Postgres::database_exists(url).await.map_err(unreachable)? {
        tracing::info!(database = %target, "creating database");
        Postgres::create_database(url).await.map_err(unreachable)?;
    }
    let pool = PgPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(acquire_timeout)
        .connect_with(options)
        .await
        .map_err(unreachable)?;
    migrate(&pool).await?;
    Ok(pool)
}

/// Connects to a database that must already exist, for commands that only read (`plan`, `mail
/// list`): nothing is created and no migration runs. `NoDatabase` when there is no such database,
/// `NotMigrated` when its schema is not this version's.
pub async fn connect_existing(url: &str) -> Result<PgPool> {
    let options = PgConnectOptions::from_str(url).map_err(|e| StoreError::InvalidUrl(e.to_string()))?;
    let target = describe(&options);
    let unreachable = |e: sqlx::Error| StoreError::Unreachable { target: target.clone(), reason: e.to_string() };
    if !Postgres::database_exists(url).await.map_err(unreachable)? {
        return Err(StoreError::NoDatabase(target));
    }
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await
        .map_err(unreachable)?;
    let latest = MIGRATOR.migrations.iter().map(|m| m.version).max().unwrap_or_default();
    // A database without the migrations table is as unmigrated as an older one.
    let applied: Option<i64> = sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success")
        .fetch_one(&pool)
        .await
        .unwrap_or(None);
    if applied.unwrap_or_default() < latest {
        return Err(StoreError::NotMigrated(target));
    }
    Ok(pool)
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

pub async fn migrate(pool: &PgPool) -> Result<()> {
    MIGRATOR.run(pool).await?;
    Ok(())
}

/// Held while a reconciler applies: a session-level advisory lock on a dedicated connection.
/// `release` frees it at once; if the value is dropped instead (an error, a panic) the connection is
/// closed, which frees it too, and the process dying frees it as well.
pub struct ReconcilerLock {
    connection: sqlx::pool::PoolConnection<Postgres>,
}

const RECONCILER_LOCK_KEY: i64 = 0x6761_7465_686f_7573; // "gatehous"

/// Takes the reconciler lock, or fails with `Busy` at once when another reconciler holds it.
pub async fn try_lock_reconciler(pool: &PgPool) -> Result<ReconcilerLock> {
    let mut connection = pool.acquire().await?;
    // Closing the connection, rather than returning it to the pool, is what frees a session-level
    // lock when `release` is not reached, so the lock cannot leak to the connection's next user:
    // set before asking, since a caller may stop waiting (a shutdown) once the lock is taken but
    // before the answer is read. A replica that does not lead reconnects at its next try.
    connection.close_on_drop();
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(RECONCILER_LOCK_KEY)
        .fetch_one(&mut *connection)
        .await?;
    if !locked {
        return Err(StoreError::Busy);
    }
    Ok(ReconcilerLock { connection })
}

impl ReconcilerLock {
    /// Whether the connection holding the lock still answers; a lost connection has lost the lock.
    pub async fn still_held(&mut self) -> bool {
        sqlx::query("SELECT 1").execute(&mut *self.connection).await.is_ok()
    }

    /// Frees the lock now, and returns the connection to the pool.
    pub async fn release(mut self) -> Result<()> {
        sqlx::query("SELECT pg_advisory_unlock($1)").bind(RECONCILER_LOCK_KEY).execute(&mut *self.connection).await?;
        Ok(())
    }
}

/// The channel every replica listens on; a message asks the leader for a pass now.
pub const SYNC_CHANNEL: &str = "gatehouse_sync";

/// Wakes the leader, wherever it runs.
pub async fn notify_sync(pool: &PgPool) -> Result<()> {
    sqlx::query("SELECT pg_notify($1, '')").bind(SYNC_CHANNEL).execute(pool).await?;
    Ok(())
}

/// Remembers a webhook delivery under each of `keys` and, if none of them was seen in the last day,
/// wakes the leader; `false` for a replay. One transaction: the wake-up (NOTIFY) is delivered at
/// commit, so a delivery is never remembered without its pass, and two copies arriving at once
/// cannot both count as new.
pub async fn remember_delivery_and_wake(pool: &PgPool, keys: &[String]) -> Result<bool> {
    let mut tx = pool.begin().await?;
    let seen: bool = sqlx::query_scalar(
        "WITH fresh AS (
             INSERT INTO webhook_deliveries AS d (key) SELECT * FROM UNNEST($1::text[])
             ON CONFLICT (key) DO UPDATE SET received_at = now()
                 WHERE d.received_at < now() - interval '1 day'
             RETURNING key
         )
         SELECT count(*) < cardinality($1::text[]) FROM fresh",
    )
    .bind(keys)
    .fetch_one(&mut *tx)
    .await?;
    if seen {
        // A replay: rolled back, so it leaves nothing new behind.
        return Ok(false);
    }
    sqlx::query("SELECT pg_notify($1, '')").bind(SYNC_CHANNEL).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(true)
}

/// Forgets webhook deliveries older than a day.
pub async fn prune_deliveries(pool: &PgPool) -> Result<u64> {
    let deleted = sqlx::query("DELETE FROM webhook_deliveries WHERE received_at < now() - interval '1 day'")
        .execute(pool)
        .await?;
    Ok(deleted.rows_affected())
}

/// Marks the current transaction as the reconciler's, so the drift triggers ignore its writes.
pub async fn mark_reconciler(conn: &mut sqlx::PgConnection) -> Result<()> {
    sqlx::query("SET LOCAL gatehouse.reconciler = 'on'").execute(conn).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::refuses_connections;

    // Issue 22.9: a database that refuses connections is a 503 the client may retry, not a 500.
    #[test]
    fn codes_of_a_database_that_cannot_serve_now_are_told_from_codes_of_a_wrong_statement() {
        for refusing in ["08006", "28P01", "53300", "53100", "57P01", "57P03", "57P05", "3D000"] {
            assert!(refuses_connections(refusing), "{refusing}");
        }
        for wrong in ["23505", "40001", "40P01", "42P01", "22P02", "P0001", "55P03", "55000"] {
            assert!(!refuses_connections(wrong), "{wrong}");
        }
    }
}
