//! Tenant users' credentials and sessions: passwords, sessions and their token pairs, single-use
//! link tokens, TOTP, recovery codes, lockout and rate-limit counters. Revocation on role, status
//! and tenant changes is done by the triggers of migration 0004, in the transaction of the change.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::Result;

fn seconds(duration: Duration) -> f64 {
    duration.as_secs_f64()
}

/// What sign-in needs to know of an account.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Account {
    pub user_id: Uuid,
    pub tenant_id: Uuid,
    pub email: String,
    pub name: Option<String>,
    pub role: String,
    pub user_status: String,
    pub tenant: String,
    pub tenant_display_name: String,
    pub tenant_status: String,
    pub password_hash: Option<String>,
    pub totp_confirmed: bool,
}

impl Account {
    /// Only an active user of an active tenant signs in.
    pub fn may_sign_in(&self) -> bool {
        self.user_status == "active" && self.tenant_status == "active"
    }
}

const ACCOUNT: &str = "SELECT u.id AS user_id, u.tenant_id, u.email, u.name, u.role, u.status AS user_status,
        t.name AS tenant, t.display_name AS tenant_display_name, t.status AS tenant_status,
        c.password_hash, (p.confirmed_at IS NOT NULL) AS totp_confirmed
   FROM users u JOIN tenants t ON t.id = u.tenant_id
   LEFT JOIN credentials c ON c.user_id = u.id
   LEFT JOIN totp_credentials p ON p.user_id = u.id";

pub async fn account_by_email(pool: &PgPool, email: &str) -> Result<Option<Account>> {
    Ok(sqlx::query_as(&format!("{ACCOUNT} WHERE u.email = $1")).bind(email).fetch_optional(pool).await?)
}

pub async fn account_by_id(conn: &mut PgConnection, user_id: Uuid) -> Result<Option<Account>> {
    Ok(sqlx::query_as(&format!("{ACCOUNT} WHERE u.id = $1")).bind(user_id).fetch_optional(conn).await?)
}

/// What sign-in reads, in one round trip: the account (if the email is known) and the email's
/// lock (known or not).
pub struct SignIn {
    pub account: Option<Account>,
    pub locked_until: Option<DateTime<Utc>>,
    pub has_failures: bool,
}

pub async fn sign_in(pool: &PgPool, email: &str) -> Result<SignIn> {
    #[derive(sqlx::FromRow)]
    struct Row {
        user_id: Option<Uuid>,
        tenant_id: Option<Uuid>,
        name: Option<String>,
        role: Option<String>,
        user_status: Option<String>,
        tenant: Option<String>,
        tenant_display_name: Option<String>,
        tenant_status: Option<String>,
        password_hash: Option<String>,
        totp_confirmed: bool,
        locked_until: Option<DateTime<Utc>>,
        has_failures: bool,
    }
    let row: Row = sqlx::query_as(
        "SELECT u.id AS user_id, u.tenant_id, u.name, u.role, u.status AS user_status,
                t.name AS tenant, t.display_name AS tenant_display_name, t.status AS tenant_status,
                c.password_hash, (p.confirmed_at IS NOT NULL) AS totp_confirmed,
                CASE WHEN l.locked_until > now() THEN l.locked_until END AS locked_until,
                (l.email IS NOT NULL) AS has_failures
           FROM (SELECT $1::text AS email) e
           LEFT JOIN users u ON u.email = e.email
           LEFT JOIN tenants t ON t.id = u.tenant_id
           LEFT JOIN credentials c ON c.user_id = u.id
           LEFT JOIN totp_credentials p ON p.user_id = u.id
           LEFT JOIN account_lockouts l ON l.email = e.email",
    )
    .bind(email)
    .fetch_one(pool)
    .await?;
    let account = match (
        row.user_id,
        row.tenant_id,
        row.role,
        row.user_status,
        row.tenant,
        row.tenant_display_name,
        row.tenant_status,
    ) {
        (
            Some(user_id),
            Some(tenant_id),
            Some(role),
            Some(user_status),
            Some(tenant),
            Some(tenant_display_name),
            Some(tenant_status),
        ) => Some(Account {
            user_id,
            tenant_id,
            email: email.to_owned(),
            name: row.name,
            role,
            user_status,
            tenant,
            tenant_display_name,
            tenant_status,
            password_hash: row.password_hash,
            totp_confirmed: row.totp_confirmed,
        }),
        _ => None,
    };
    Ok(SignIn { account, locked_until: row.locked_until, has_failures: row.has_failures })
}

/// Sets the password; an invited user becomes active.
pub async fn set_password(conn: &mut PgConnection, user_id: Uuid, password_hash: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO credentials (user_id, password_hash) VALUES ($1, $2)
         ON CONFLICT (user_id) DO UPDATE SET password_hash = EXCLUDED.password_hash, changed_at = now()",
    )
    .bind(user_id)
    .bind(password_hash)
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE users SET status = 'active', activated_at = now(), updated_at = now() WHERE id = $1 AND status = 'invited'")
        .bind(user_id)
        .execute(conn)
        .await?;
    Ok(())
}

// --- Sessions ---------------------------------------------------------------------------------

/// How long sessions and their tokens live.
#[derive(Debug, Clone, Copy)]
pub struct SessionTimes {
    pub access_ttl: Duration,
    pub idle: Duration,
    pub absolute: Duration,
    pub refresh_grace: Duration,
}

pub struct NewSession<'a> {
    pub id: Uuid,
    pub user_id: Uuid,
    pub tenant_id: Uuid,
    pub access_hash: &'a [u8],
    pub refresh_hash: &'a [u8],
    pub pending: Option<&'a str>,
    pub ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
}

/// Creates a session and returns it as requests will see it, in one statement.
pub async fn create_session(pool: &PgPool, new: NewSession<'_>, times: SessionTimes) -> Result<SessionView> {
    Ok(sqlx::query_as(
        "WITH s AS (
             INSERT INTO sessions (id, user_id, tenant_id, access_hash, refresh_hash, pending, expires_at, ip, user_agent)
             VALUES ($1, $2, $3, $4, $5, $6, now() + make_interval(secs => $7), $8, $9) RETURNING *)
         SELECT s.access_hash, s.id, s.user_id, s.tenant_id, t.name AS tenant, u.email, u.name, u.role,
                s.pending, s.created_at, s.rotated_at, s.last_seen_at, s.expires_at
           FROM s JOIN users u ON u.id = s.user_id JOIN tenants t ON t.id = s.tenant_id",
    )
    .bind(new.id)
    .bind(new.user_id)
    .bind(new.tenant_id)
    .bind(new.access_hash)
    .bind(new.refresh_hash)
    .bind(new.pending)
    .bind(seconds(times.absolute))
    .bind(new.ip)
    .bind(new.user_agent)
    .fetch_one(pool)
    .await?)
}

/// A live session as a request sees it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct SessionView {
    #[serde(skip)]
    pub access_hash: Vec<u8>,
    pub id: Uuid,
    pub user_id: Uuid,
    #[serde(skip)]
    pub tenant_id: Uuid,
    pub tenant: String,
    pub email: String,
    pub name: Option<String>,
    pub role: String,
    pub pending: Option<String>,
    pub created_at: DateTime<Utc>,
    pub rotated_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

const LIVE_SESSION: &str =
    "SELECT s.access_hash, s.id, s.user_id, s.tenant_id, t.name AS tenant, u.email, u.name, u.role,
        s.pending, s.created_at, s.rotated_at, s.last_seen_at, s.expires_at
   FROM sessions s JOIN users u ON u.id = s.user_id JOIN tenants t ON t.id = s.tenant_id
  WHERE s.revoked_at IS NULL AND s.expires_at > now() AND s.last_seen_at > now() - make_interval(secs => $2)
    AND u.status = 'active' AND t.status = 'active'";

/// The live sessions whose current access token hashes are among `hashes`, in one query.
pub async fn sessions_by_access(pool: &PgPool, hashes: &[Vec<u8>], times: SessionTimes) -> Result<Vec<SessionView>> {
    Ok(sqlx::query_as(&format!(
        "{LIVE_SESSION} AND s.access_hash = ANY($1) AND s.rotated_at > now() - make_interval(secs => $3)"
    ))
    .bind(hashes)
    .bind(seconds(times.idle))
    .bind(seconds(times.access_ttl))
    .fetch_all(pool)
    .await?)
}

/// Records use for the idle expiry, to the minute (a write per minute per session, not per request).
pub async fn touch_sessions(pool: &PgPool, ids: &[Uuid]) -> Result<()> {
    sqlx::query(
        "UPDATE sessions SET last_seen_at = now() WHERE id = ANY($1) AND last_seen_at < now() - interval '60 seconds'",
    )
    .bind(ids)
    .execute(pool)
    .await?;
    Ok(())
}

pub enum Refreshed {
    Rotated(SessionView),
    /// A spent refresh token came back after the grace window: the session was revoked.
    Reused {
        session_id: Uuid,
        user_id: Uuid,
        tenant: String,
        email: String,
    },
    Refused,
}

/// Exchanges a refresh token for the pair `(access, refresh)`. A token spent less than the grace
/// window ago (a client retrying) rotates again; one spent earlier revokes the session.
pub async fn refresh(
    pool: &PgPool,
    presented: &[u8],
    access: &[u8],
    refresh: &[u8],
    times: SessionTimes,
) -> Result<Refreshed> {
    let mut tx = pool.begin().await?;
    let current: Option<(Uuid,)> = sqlx::query_as(&format!("{LIVE_SESSION} AND s.refresh_hash = $1 FOR UPDATE OF s"))
        .bind(presented)
        .bind(seconds(times.idle))
        .fetch_optional(&mut *tx)
        .await?
        .map(|s: SessionView| (s.id,));
    let session_id = match current {
        Some((id,)) => id,
        None => {
            let spent: Option<(Uuid, bool)> = sqlx::query_as(
                "SELECT session_id, spent_at > now() - make_interval(secs => $2) FROM spent_refresh_tokens WHERE token_hash = $1",
            )
            .bind(presented)
            .bind(seconds(times.refresh_grace))
            .fetch_optional(&mut *tx)
            .await?;
            match spent {
                None => return Ok(Refreshed::Refused),
                Some((id, true)) => id,
                Some((id, false)) => {
                    let revoked: Option<(Uuid, String, String)> = sqlx::query_as(
                        "UPDATE sessions s SET revoked_at = now(), revoked_reason = 'refresh_token_reused'
                           FROM users u, tenants t
                          WHERE s.id = $1 AND s.revoked_at IS NULL AND u.id = s.user_id AND t.id = s.tenant_id
                         RETURNING s.user_id, t.name, u.email",
                    )
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
                    tx.commit().await?;
                    return Ok(match revoked {
                        Some((user_id, tenant, email)) => Refreshed::Reused { session_id: id, user_id, tenant, email },
                        None => Refreshed::Refused,
                    });
                }
            }
        }
    };
    let rotated = rotate(&mut tx, session_id, access, refresh, times).await?;
    tx.commit().await?;
    Ok(rotated.map_or(Refreshed::Refused, Refreshed::Rotated))
}

/// Replaces a live session's token pair (the old refresh token is kept as spent), optionally
/// clearing its MFA restriction.
pub async fn rotate(
    conn: &mut PgConnection,
    session_id: Uuid,
    access: &[u8],
    refresh: &[u8],
    times: SessionTimes,
) -> Result<Option<SessionView>> {
    let spent = sqlx::query(
        "INSERT INTO spent_refresh_tokens (token_hash, session_id)
         SELECT refresh_hash, id FROM sessions WHERE id = $1 AND revoked_at IS NULL
         ON CONFLICT (token_hash) DO NOTHING",
    )
    .bind(session_id)
    .execute(&mut *conn)
    .await?;
    if spent.rows_affected() == 0 {
        return Ok(None);
    }
    sqlx::query(
        "UPDATE sessions SET access_hash = $2, refresh_hash = $3, rotated_at = now(), last_seen_at = now() WHERE id = $1",
    )
    .bind(session_id)
    .bind(access)
    .bind(refresh)
    .execute(&mut *conn)
    .await?;
    Ok(sqlx::query_as(&format!("{LIVE_SESSION} AND s.id = $1"))
        .bind(session_id)
        .bind(seconds(times.idle))
        .fetch_optional(conn)
        .await?)
}

/// Lifts the MFA restriction of a session, in the caller's transaction (with a rotation).
pub async fn satisfy_mfa(conn: &mut PgConnection, session_id: Uuid) -> Result<()> {
    sqlx::query("UPDATE sessions SET pending = NULL WHERE id = $1").bind(session_id).execute(conn).await?;
    Ok(())
}

/// Ends one session. Returns whether it was live.
pub async fn revoke_session(conn: &mut PgConnection, session_id: Uuid, reason: &str) -> Result<bool> {
    let done =
        sqlx::query("UPDATE sessions SET revoked_at = now(), revoked_reason = $2 WHERE id = $1 AND revoked_at IS NULL")
            .bind(session_id)
            .bind(reason)
            .execute(conn)
            .await?;
    Ok(done.rows_affected() == 1)
}

/// Ends every session of a user but `keep`. Returns how many ended.
pub async fn revoke_user_sessions(
    conn: &mut PgConnection,
    user_id: Uuid,
    keep: Option<Uuid>,
    reason: &str,
) -> Result<u64> {
    let done = sqlx::query(
        "UPDATE sessions SET revoked_at = now(), revoked_reason = $3
          WHERE user_id = $1 AND revoked_at IS NULL AND id IS DISTINCT FROM $2",
    )
    .bind(user_id)
    .bind(keep)
    .bind(reason)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// The live session whose current refresh token hashes to `hash`.
pub async fn session_by_refresh(pool: &PgPool, hash: &[u8], times: SessionTimes) -> Result<Option<SessionView>> {
    Ok(sqlx::query_as(&format!("{LIVE_SESSION} AND s.refresh_hash = $1"))
        .bind(hash)
        .bind(seconds(times.idle))
        .fetch_optional(pool)
        .await?)
}

/// Ends one of a user's own sessions. Returns whether it was theirs and live.
pub async fn revoke_own_session(pool: &PgPool, session_id: Uuid, user_id: Uuid, reason: &str) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE sessions SET revoked_at = now(), revoked_reason = $3 WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL",
    )
    .bind(session_id)
    .bind(user_id)
    .bind(reason)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct SessionSummary {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

pub async fn list_user_sessions(pool: &PgPool, user_id: Uuid, times: SessionTimes) -> Result<Vec<SessionSummary>> {
    Ok(sqlx::query_as(
        "SELECT id, created_at, last_seen_at, expires_at, ip, user_agent FROM sessions
          WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > now() AND last_seen_at > now() - make_interval(secs => $2)
          ORDER BY created_at DESC",
    )
    .bind(user_id)
    .bind(seconds(times.idle))
    .fetch_all(pool)
    .await?)
}

// --- Single-use link tokens (invitations, password resets) ---------------------------------------

pub async fn issue_link_token(
    conn: &mut PgConnection,
    user_id: Uuid,
    purpose: &str,
    hash: &[u8],
    ttl: Duration,
) -> Result<()> {
    // A new link replaces the earlier ones of the same purpose.
    sqlx::query("UPDATE user_tokens SET used_at = now() WHERE user_id = $1 AND purpose = $2 AND used_at IS NULL")
        .bind(user_id)
        .bind(purpose)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO user_tokens (token_hash, user_id, purpose, expires_at) VALUES ($1, $2, $3, now() + make_interval(secs => $4))",
    )
    .bind(hash)
    .bind(user_id)
    .bind(purpose)
    .bind(seconds(ttl))
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Debug, PartialEq, Eq)]
pub enum LinkToken {
    Valid(Uuid),
    Unknown,
    Expired,
    Used,
}

/// Marks a link token used (in the caller's transaction) and returns its user.
pub async fn consume_link_token(conn: &mut PgConnection, hash: &[u8], purpose: &str) -> Result<LinkToken> {
    let row: Option<(Uuid, bool, bool)> = sqlx::query_as(
        "SELECT user_id, expires_at <= now(), used_at IS NOT NULL FROM user_tokens WHERE token_hash = $1 AND purpose = $2 FOR UPDATE",
    )
    .bind(hash)
    .bind(purpose)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(match row {
        None => LinkToken::Unknown,
        Some((_, _, true)) => LinkToken::Used,
        Some((_, true, false)) => LinkToken::Expired,
        Some((user_id, false, false)) => {
            sqlx::query("UPDATE user_tokens SET used_at = now() WHERE token_hash = $1")
                .bind(hash)
                .execute(conn)
                .await?;
            LinkToken::Valid(user_id)
        }
    })
}

// --- TOTP and recovery codes ------------------------------------------------------------------------

pub struct TotpRow {
    pub key_id: String,
    pub secret_sealed: Vec<u8>,
    pub confirmed: bool,
    pub last_used_step: i64,
}

pub async fn totp(conn: &mut PgConnection, user_id: Uuid) -> Result<Option<TotpRow>> {
    let row: Option<(String, Vec<u8>, bool, i64)> = sqlx::query_as(
        "SELECT key_id, secret_sealed, confirmed_at IS NOT NULL, last_used_step FROM totp_credentials WHERE user_id = $1 FOR UPDATE",
    )
    .bind(user_id)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|(key_id, secret_sealed, confirmed, last_used_step)| TotpRow {
        key_id,
        secret_sealed,
        confirmed,
        last_used_step,
    }))
}

/// Starts (or restarts) an enrolment; refused once one is confirmed.
pub async fn start_totp(conn: &mut PgConnection, user_id: Uuid, key_id: &str, sealed: &[u8]) -> Result<bool> {
    let done = sqlx::query(
        "INSERT INTO totp_credentials (user_id, key_id, secret_sealed) VALUES ($1, $2, $3)
         ON CONFLICT (user_id) DO UPDATE SET key_id = EXCLUDED.key_id, secret_sealed = EXCLUDED.secret_sealed, created_at = now()
          WHERE totp_credentials.confirmed_at IS NULL",
    )
    .bind(user_id)
    .bind(key_id)
    .bind(sealed)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Records that the code of `step` was used (and confirms the enrolment).
pub async fn use_totp_step(conn: &mut PgConnection, user_id: Uuid, step: i64) -> Result<()> {
    sqlx::query(
        "UPDATE totp_credentials SET last_used_step = $2, confirmed_at = coalesce(confirmed_at, now()) WHERE user_id = $1",
    )
    .bind(user_id)
    .bind(step)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn replace_recovery_codes(conn: &mut PgConnection, user_id: Uuid, hashes: &[Vec<u8>]) -> Result<()> {
    sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1").bind(user_id).execute(&mut *conn).await?;
    sqlx::query("INSERT INTO recovery_codes (user_id, code_hash) SELECT $1, * FROM UNNEST($2::bytea[])")
        .bind(user_id)
        .bind(hashes)
        .execute(conn)
        .await?;
    Ok(())
}

/// Uses a recovery code once. Returns whether it was valid and unused.
pub async fn use_recovery_code(conn: &mut PgConnection, user_id: Uuid, hash: &[u8]) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE recovery_codes SET used_at = now() WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL",
    )
    .bind(user_id)
    .bind(hash)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

// --- Lockout and rate limits ----------------------------------------------------------------------

/// Until when the account (by email, known or not) is locked.
pub async fn locked_until(pool: &PgPool, email: &str) -> Result<Option<DateTime<Utc>>> {
    let row: Option<(Option<DateTime<Utc>>,)> =
        sqlx::query_as("SELECT locked_until FROM account_lockouts WHERE email = $1 AND locked_until > now()")
            .bind(email)
            .fetch_optional(pool)
            .await?;
    Ok(row.and_then(|r| r.0))
}

/// Counts a failure; from the `threshold`-th one on, locks for `base × 2^(failures − threshold)`,
/// at most `max`. Failures older than a day are forgotten. Returns the count and the lock's end.
pub async fn record_failure(
    pool: &PgPool,
    email: &str,
    threshold: u32,
    base: Duration,
    max: Duration,
) -> Result<(i32, Option<DateTime<Utc>>)> {
    Ok(sqlx::query_as(
        "WITH counted AS (
             SELECT coalesce((SELECT CASE WHEN last_failure_at < now() - interval '1 day' THEN 0 ELSE failures END
                                FROM account_lockouts WHERE email = $1), 0) + 1 AS failures)
         INSERT INTO account_lockouts AS l (email, failures, last_failure_at, locked_until)
         SELECT $1, failures, now(),
                CASE WHEN failures >= $2 THEN now() + make_interval(secs => least($3 * power(2, failures - $2), $4)) END
           FROM counted
         ON CONFLICT (email) DO UPDATE
            SET failures = EXCLUDED.failures, last_failure_at = now(),
                locked_until = coalesce(EXCLUDED.locked_until, l.locked_until)
         RETURNING failures, locked_until",
    )
    .bind(email)
    .bind(i32::try_from(threshold).unwrap_or(i32::MAX))
    .bind(seconds(base))
    .bind(seconds(max))
    .fetch_one(pool)
    .await?)
}

/// Forgets an account's failures: after a successful sign-in, or an operator's unlock. Returns
/// whether there was anything to forget.
pub async fn clear_failures(pool: &PgPool, email: &str) -> Result<bool> {
    let done = sqlx::query("DELETE FROM account_lockouts WHERE email = $1").bind(email).execute(pool).await?;
    Ok(done.rows_affected() > 0)
}

/// Counts a hit on `key` in a fixed window; `Err(seconds)` when over `limit`, with the time left.
pub async fn hit_rate_limit(pool: &PgPool, key: &str, window: Duration, limit: u32) -> Result<Result<(), u64>> {
    let (hits, left): (i32, f64) = sqlx::query_as(
        "INSERT INTO rate_limits AS r (key, window_start, hits) VALUES ($1, now(), 1)
         ON CONFLICT (key) DO UPDATE
            SET window_start = CASE WHEN r.window_start <= now() - make_interval(secs => $2) THEN now() ELSE r.window_start END,
                hits = CASE WHEN r.window_start <= now() - make_interval(secs => $2) THEN 1 ELSE r.hits + 1 END
         RETURNING hits, extract(epoch FROM window_start + make_interval(secs => $2) - now())::float8",
    )
    .bind(key)
    .bind(seconds(window))
    .fetch_one(pool)
    .await?;
    if u32::try_from(hits).unwrap_or(u32::MAX) > limit {
        return Ok(Err(left.ceil().max(1.0) as u64));
    }
    Ok(Ok(()))
}

/// Deletes what has expired: sessions a day past their end, spent tokens, old counters.
pub async fn prune_expired(pool: &PgPool, times: SessionTimes) -> Result<u64> {
    let mut deleted = 0;
    for statement in [
        "DELETE FROM sessions WHERE expires_at < now() - interval '1 day'
             OR revoked_at < now() - interval '1 day'
             OR last_seen_at < now() - make_interval(secs => $1) - interval '1 day'",
        "DELETE FROM spent_refresh_tokens WHERE spent_at < now() - make_interval(secs => $1) - interval '1 day'",
        "DELETE FROM rate_limits WHERE window_start < now() - interval '1 day' AND $1 IS NOT NULL",
        "DELETE FROM account_lockouts WHERE last_failure_at < now() - interval '1 day'
             AND (locked_until IS NULL OR locked_until < now()) AND $1 IS NOT NULL",
        "DELETE FROM user_tokens WHERE purpose = 'password_reset' AND created_at < now() - interval '1 day' AND $1 IS NOT NULL",
    ] {
        deleted += sqlx::query(statement).bind(seconds(times.idle)).execute(pool).await?.rows_affected();
    }
    Ok(deleted)
}

// --- Tenant administration ---------------------------------------------------------------------------

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct TenantUser {
    #[serde(skip)]
    pub id: Uuid,
    pub email: String,
    pub name: Option<String>,
    pub role: String,
    pub status: String,
    pub activated_at: Option<DateTime<Utc>>,
    pub mfa: bool,
    pub live_sessions: i64,
}

const TENANT_USER: &str = "SELECT u.id, u.email, u.name, u.role, u.status, u.activated_at,
        EXISTS (SELECT 1 FROM totp_credentials p WHERE p.user_id = u.id AND p.confirmed_at IS NOT NULL) AS mfa,
        (SELECT count(*) FROM sessions s WHERE s.user_id = u.id AND s.revoked_at IS NULL AND s.expires_at > now()) AS live_sessions
   FROM users u JOIN tenants t ON t.id = u.tenant_id";

/// The users of one tenant; every query names the tenant, so no other tenant's user is reachable.
pub async fn tenant_users(pool: &PgPool, tenant: &str) -> Result<Vec<TenantUser>> {
    Ok(sqlx::query_as(&format!("{TENANT_USER} WHERE t.name = $1 ORDER BY u.email"))
        .bind(tenant)
        .fetch_all(pool)
        .await?)
}

pub async fn tenant_user(pool: &PgPool, tenant: &str, email: &str) -> Result<Option<TenantUser>> {
    Ok(sqlx::query_as(&format!("{TENANT_USER} WHERE t.name = $1 AND u.email = $2"))
        .bind(tenant)
        .bind(email)
        .fetch_optional(pool)
        .await?)
}
