//! Tenant users' credentials and sessions: passwords, sessions and their token pairs, single-use
//! link tokens, TOTP, recovery codes, lockout and rate-limit counters. Revocation on role, status
//! and tenant changes is done by the triggers of migration 0004, in the transaction of the change.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::Result;
use crate::model::SessionView;
use crate::model::{AccountStatus, Pending, Role, TenantStatus};

pub(super) fn seconds(duration: Duration) -> f64 {
    duration.as_secs_f64()
}

/// What sign-in needs to know of an account.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Account {
    pub user_id: Uuid,
    pub tenant_id: Uuid,
    pub email: String,
    pub name: Option<String>,
    pub role: Role,
    pub user_status: AccountStatus,
    pub tenant: String,
    pub tenant_display_name: String,
    pub tenant_status: TenantStatus,
    pub password_hash: Option<String>,
    pub totp_confirmed: bool,
    /// The tenant signs its users in through its own provider only (mandatory SSO, active).
    pub sso_required: bool,
}

/// Whether the tenant of `u` makes SSO mandatory.
const SSO_REQUIRED: &str = "EXISTS (SELECT 1 FROM tenant_idps i WHERE i.tenant_id = u.tenant_id AND i.state = 'active' AND i.mandatory) AS sso_required";

impl Account {
    /// Only an active user of an active tenant signs in.
    pub fn may_sign_in(&self) -> bool {
        self.user_status == AccountStatus::Active && self.tenant_status == TenantStatus::Active
    }
}

const ACCOUNT: &str = "SELECT u.id AS user_id, u.tenant_id, u.email, u.name, u.role, u.status AS user_status,
        t.name AS tenant, t.display_name AS tenant_display_name, t.status AS tenant_status,
        c.password_hash, (p.confirmed_at IS NOT NULL) AS totp_confirmed,
        EXISTS (SELECT 1 FROM tenant_idps i WHERE i.tenant_id = u.tenant_id AND i.state = 'active' AND i.mandatory) AS sso_required
   FROM users u JOIN tenants t ON t.id = u.tenant_id
   LEFT JOIN credentials c ON c.user_id = u.id
   LEFT JOIN totp_credentials p ON p.user_id = u.id";

pub async fn account_by_email(pool: &PgPool, email: &str) -> Result<Option<Account>> {
    Ok(sqlx::query_as(&format!("{ACCOUNT} WHERE u.email = $1")).bind(email).fetch_optional(pool).await?)
}

pub async fn account_by_id(conn: &mut PgConnection, user_id: Uuid) -> Result<Option<Account>> {
    Ok(sqlx::query_as(&format!("{ACCOUNT} WHERE u.id = $1")).bind(user_id).fetch_optional(conn).await?)
}

/// What sign-in gets in one round trip: the account (if the email is known) and an attempt
/// reserved against the email's lock (known or not, so that both answer alike).
pub struct SignIn {
    pub account: Option<Account>,
    pub attempt: Attempt,
}

#[tracing::instrument(name = "db.sign_in", level = "debug", skip_all)]
pub async fn sign_in(pool: &PgPool, email: &str, lockout: Lockout) -> Result<SignIn> {
    #[derive(sqlx::FromRow)]
    struct Row {
        user_id: Option<Uuid>,
        tenant_id: Option<Uuid>,
        name: Option<String>,
        role: Option<Role>,
        user_status: Option<AccountStatus>,
        tenant: Option<String>,
        tenant_display_name: Option<String>,
        tenant_status: Option<TenantStatus>,
        password_hash: Option<String>,
        totp_confirmed: bool,
        sso_required: bool,
        #[sqlx(flatten)]
        attempt: AttemptRow,
    }
    let row: Row = sqlx::query_as(&format!(
        "WITH attempt AS ({RESERVE})
         SELECT u.id AS user_id, u.tenant_id, u.name, u.role, u.status AS user_status,
                t.name AS tenant, t.display_name AS tenant_display_name, t.status AS tenant_status,
                c.password_hash, (p.confirmed_at IS NOT NULL) AS totp_confirmed, {SSO_REQUIRED}, {ATTEMPT_COLUMNS}
           FROM (SELECT $1::text AS email) e
           LEFT JOIN users u ON u.email = e.email
           LEFT JOIN tenants t ON t.id = u.tenant_id
           LEFT JOIN credentials c ON c.user_id = u.id
           LEFT JOIN totp_credentials p ON p.user_id = u.id
           LEFT JOIN attempt a ON true
           LEFT JOIN account_lockouts l ON l.email = e.email"
    ))
    .bind(email)
    .bind(threshold(lockout))
    .bind(seconds(lockout.base))
    .bind(seconds(lockout.max))
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
            sso_required: row.sso_required,
        }),
        _ => None,
    };
    Ok(SignIn { account, attempt: row.attempt.into() })
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
    pub pending: Option<Pending>,
    pub ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    /// The sign-in attempt's email (as typed) and what its verified password does to the count.
    pub email: &'a str,
    pub settle: Settle,
}

/// Creates a session and returns it as requests will see it, and settles the sign-in attempt, in
/// one statement.
/// The session that takes the place of an ended one (after a password change): the same user,
/// client address, second factors and time of sign-in (a password change is no new second factor),
/// new tokens.
pub struct NewSuccessor<'a> {
    pub id: Uuid,
    pub access_hash: &'a [u8],
    pub refresh_hash: &'a [u8],
}

pub async fn successor_session(
    conn: &mut PgConnection,
    ended: Uuid,
    new: NewSuccessor<'_>,
    times: SessionTimes,
) -> Result<SessionView> {
    Ok(sqlx::query_as(
        "WITH s AS (
             INSERT INTO sessions (id, user_id, tenant_id, access_hash, refresh_hash, expires_at, ip, user_agent, amr,
                                   auth_time)
             SELECT $1, user_id, tenant_id, $2, $3, now() + make_interval(secs => $4), ip, user_agent, amr, auth_time
               FROM sessions WHERE id = $5 RETURNING *)
         SELECT s.access_hash, s.id, s.user_id, s.tenant_id, t.name AS tenant, u.email, u.name, u.role,
                s.pending, s.created_at, s.rotated_at, s.last_seen_at, s.expires_at, s.client_id
           FROM s JOIN users u ON u.id = s.user_id JOIN tenants t ON t.id = s.tenant_id",
    )
    .bind(new.id)
    .bind(new.access_hash)
    .bind(new.refresh_hash)
    .bind(seconds(times.absolute))
    .bind(ended)
    .fetch_one(conn)
    .await?)
}

#[tracing::instrument(name = "db.create_session", level = "debug", skip_all)]
pub async fn create_session(pool: &PgPool, new: NewSession<'_>, times: SessionTimes) -> Result<SessionView> {
    Ok(sqlx::query_as(&format!(
        "WITH s AS (
             INSERT INTO sessions (id, user_id, tenant_id, access_hash, refresh_hash, pending, expires_at, ip, user_agent)
             VALUES ($1, $2, $3, $4, $5, $6, now() + make_interval(secs => $7), $8, $9) RETURNING *),
         settled AS ({})
         SELECT s.access_hash, s.id, s.user_id, s.tenant_id, t.name AS tenant, u.email, u.name, u.role,
                s.pending, s.created_at, s.rotated_at, s.last_seen_at, s.expires_at, s.client_id
           FROM s JOIN users u ON u.id = s.user_id JOIN tenants t ON t.id = s.tenant_id",
        settle_statement(10)
    ))
    .bind(new.id)
    .bind(new.user_id)
    .bind(new.tenant_id)
    .bind(new.access_hash)
    .bind(new.refresh_hash)
    .bind(new.pending)
    .bind(seconds(times.absolute))
    .bind(new.ip)
    .bind(new.user_agent)
    .bind(new.email)
    .bind(new.settle.forgiven())
    .bind(new.settle.lock())
    .fetch_one(pool)
    .await?)
}

/// A `SessionView` read from the columns `session_view!` names (the model knows no SQL).
impl<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> for SessionView {
    fn from_row(row: &'r sqlx::postgres::PgRow) -> sqlx::Result<Self> {
        use sqlx::Row;
        Ok(SessionView {
            access_hash: row.try_get("access_hash")?,
            id: row.try_get("id")?,
            user_id: row.try_get("user_id")?,
            tenant_id: row.try_get("tenant_id")?,
            tenant: row.try_get("tenant")?,
            email: row.try_get("email")?,
            name: row.try_get("name")?,
            role: row.try_get("role")?,
            pending: row.try_get("pending")?,
            created_at: row.try_get("created_at")?,
            rotated_at: row.try_get("rotated_at")?,
            last_seen_at: row.try_get("last_seen_at")?,
            expires_at: row.try_get("expires_at")?,
            client_id: row.try_get("client_id")?,
        })
    }
}

/// The live sessions (`s`, with the user `u` and tenant `t`) a query reads; `$2` is the idle
/// timeout in seconds.
macro_rules! live_sessions {
    () => {
        "FROM sessions s JOIN users u ON u.id = s.user_id JOIN tenants t ON t.id = s.tenant_id
  WHERE s.revoked_at IS NULL AND s.expires_at > now() AND s.last_seen_at > now() - make_interval(secs => $2)
    AND u.status = 'active' AND t.status = 'active'"
    };
}

/// The columns of a `SessionView` of `s`.
macro_rules! session_view {
    () => {
        "s.access_hash, s.id, s.user_id, s.tenant_id, t.name AS tenant, u.email, u.name, u.role,
        s.pending, s.created_at, s.rotated_at, s.last_seen_at, s.expires_at, s.client_id "
    };
}

const LIVE_SESSION: &str = concat!("SELECT ", session_view!(), live_sessions!());

/// `FROM … WHERE` of live sessions `s` with their user `u` and tenant `t` (`$2`: the idle timeout in
/// seconds), for the queries of `store::oidc`.
pub(super) const LIVE_SESSIONS: &str = live_sessions!();

/// The live sessions whose current access token hashes are among `hashes`, in one query.
pub async fn sessions_by_access(pool: &PgPool, hashes: &[Vec<u8>], times: SessionTimes) -> Result<Vec<SessionView>> {
    Ok(sqlx::query_as(&format!(
        "{LIVE_SESSION} AND s.access_hash = ANY($1) AND s.rotated_at > now() - make_interval(secs => $3)
           AND s.client_id IS NULL"
    ))
    .bind(hashes)
    .bind(seconds(times.idle))
    .bind(seconds(times.access_ttl))
    .fetch_all(pool)
    .await?)
}

/// The live session of an OIDC client whose current access token hashes to `hash`.
pub async fn client_session_by_access(pool: &PgPool, hash: &[u8], times: SessionTimes) -> Result<Option<SessionView>> {
    Ok(sqlx::query_as(&format!(
        "{LIVE_SESSION} AND s.access_hash = $1 AND s.rotated_at > now() - make_interval(secs => $3)
           AND s.client_id IS NOT NULL"
    ))
    .bind(hash)
    .bind(seconds(times.idle))
    .bind(seconds(times.access_ttl))
    .fetch_optional(pool)
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
    /// The token was spent less than the grace window ago: a client's retry, or a parallel refresh
    /// that lost the race. The pair it was exchanged for is here, sealed as the winner left it, with
    /// the session's current refresh hash (the pair is only answered while it is still current).
    Retried {
        session: SessionView,
        successor: Sealed,
        current_refresh_hash: Vec<u8>,
    },
    /// A spent refresh token came back after the grace window: the session was revoked.
    Reused {
        session_id: Uuid,
        user_id: Uuid,
        tenant: String,
        email: String,
    },
    Refused,
}

/// A value sealed by the key ring: the key's id and the bytes.
#[derive(Debug, Clone)]
pub struct Sealed {
    pub key_id: String,
    pub bytes: Vec<u8>,
}

/// A new token pair: the hashes the session keeps, and (for a refresh) the pair sealed for
/// retries within the grace window.
pub struct NewPair<'a> {
    pub access: &'a [u8],
    pub refresh: &'a [u8],
    pub successor: Option<&'a Sealed>,
}

/// Replaces the token pair of the live session picked by `which` (on `$1`), in one statement. The
/// session row is locked before anything else is written, so concurrent rotations of one session
/// queue on that lock, in one order, and never deadlock (inserting the spent token first would
/// take a key-share lock on the session through the foreign key in each transaction, and their
/// updates of the unique token columns would then wait for each other). Once the first commits,
/// a rotation picked by the old refresh hash no longer matches: exactly one wins. The old refresh
/// token is kept as spent, with the new pair sealed for the grace window.
fn rotate_statement(which: &str) -> String {
    format!(
        "WITH old AS (
             SELECT s.id, s.refresh_hash {live} AND {which}
                FOR UPDATE OF s),
         new AS (
             UPDATE sessions s SET access_hash = $3, refresh_hash = $4, rotated_at = now(), last_seen_at = now()
               FROM old WHERE s.id = old.id
             RETURNING s.*),
         spent AS (
             INSERT INTO spent_refresh_tokens (token_hash, session_id, key_id, pair_sealed)
             SELECT refresh_hash, id, $5, $6 FROM old
             ON CONFLICT (token_hash) DO NOTHING)
         SELECT {view} FROM new s JOIN users u ON u.id = s.user_id JOIN tenants t ON t.id = s.tenant_id",
        live = live_sessions!(),
        view = session_view!()
    )
}

/// Exchanges a refresh token for `pair`. Of concurrent exchanges of one token exactly one rotates;
/// a token spent less than the grace window ago (a retry, or a loser of that race) gets the pair
/// it was exchanged for; one spent earlier revokes the session. Every path is a single statement
/// that locks at most the session row, so none waits on another while holding a lock.
///
/// `client` is the OIDC client whose session the token must belong to; `None`: a session of the
/// JSON API. A refresh token of one is refused as the other, so a client's token never works
/// without its client's authentication.
pub async fn refresh(
    pool: &PgPool,
    presented: &[u8],
    client: Option<Uuid>,
    pair: NewPair<'_>,
    times: SessionTimes,
) -> Result<Refreshed> {
    let which = "s.refresh_hash = $1 AND s.client_id IS NOT DISTINCT FROM $7";
    let rotated: Option<SessionView> = sqlx::query_as(&rotate_statement(which))
        .bind(presented)
        .bind(seconds(times.idle))
        .bind(pair.access)
        .bind(pair.refresh)
        .bind(pair.successor.map(|s| s.key_id.as_str()))
        .bind(pair.successor.map(|s| s.bytes.as_slice()))
        .bind(client)
        .fetch_optional(pool)
        .await?;
    if let Some(session) = rotated {
        return Ok(Refreshed::Rotated(session));
    }
    #[derive(sqlx::FromRow)]
    struct Spent {
        session_id: Uuid,
        in_grace: bool,
        key_id: Option<String>,
        pair_sealed: Option<Vec<u8>>,
    }
    let spent: Option<Spent> = sqlx::query_as(
        "SELECT session_id, spent_at > now() - make_interval(secs => $2) AS in_grace, key_id, pair_sealed
           FROM spent_refresh_tokens WHERE token_hash = $1",
    )
    .bind(presented)
    .bind(seconds(times.refresh_grace))
    .fetch_optional(pool)
    .await?;
    let Some(spent) = spent else {
        return Ok(Refreshed::Refused);
    };
    match (spent.in_grace, spent.key_id, spent.pair_sealed) {
        (true, Some(key_id), Some(bytes)) => {
            #[derive(sqlx::FromRow)]
            struct Current {
                #[sqlx(flatten)]
                session: SessionView,
                refresh_hash: Vec<u8>,
            }
            let current: Option<Current> = sqlx::query_as(concat!(
                "SELECT s.refresh_hash, ",
                session_view!(),
                live_sessions!(),
                " AND s.id = $1 AND s.client_id IS NOT DISTINCT FROM $3"
            ))
            .bind(spent.session_id)
            .bind(seconds(times.idle))
            .bind(client)
            .fetch_optional(pool)
            .await?;
            Ok(current.map_or(Refreshed::Refused, |c| Refreshed::Retried {
                session: c.session,
                successor: Sealed { key_id, bytes },
                current_refresh_hash: c.refresh_hash,
            }))
        }
        // Within the window, but nothing to answer with (spent by an MFA completion, which
        // answered the new pair to its own request): refused, and the session lives on.
        (true, _, _) => Ok(Refreshed::Refused),
        (false, _, _) => {
            let id = spent.session_id;
            let revoked: Option<(Uuid, String, String)> = sqlx::query_as(
                "UPDATE sessions s SET revoked_at = now(), revoked_reason = 'refresh_token_reused'
                   FROM users u, tenants t
                  WHERE s.id = $1 AND s.revoked_at IS NULL AND u.id = s.user_id AND t.id = s.tenant_id
                 RETURNING s.user_id, t.name, u.email",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?;
            Ok(match revoked {
                Some((user_id, tenant, email)) => Refreshed::Reused { session_id: id, user_id, tenant, email },
                None => Refreshed::Refused,
            })
        }
    }
}

/// Replaces a live session's token pair in the caller's transaction (the old refresh token is kept
/// as spent), as completing MFA does.
pub async fn rotate(
    conn: &mut PgConnection,
    session_id: Uuid,
    access: &[u8],
    refresh: &[u8],
    times: SessionTimes,
) -> Result<Option<SessionView>> {
    Ok(sqlx::query_as(&rotate_statement("s.id = $1"))
        .bind(session_id)
        .bind(seconds(times.idle))
        .bind(access)
        .bind(refresh)
        .bind(None::<&str>)
        .bind(None::<&[u8]>)
        .fetch_optional(conn)
        .await?)
}

/// Locks a session's row in the caller's transaction and returns what it waits for (`pending`),
/// as committed by now; `None` once it is revoked. The flows that change a session take this lock
/// first, so they queue on it in one order.
pub async fn lock_session(conn: &mut PgConnection, session_id: Uuid) -> Result<Option<Option<String>>> {
    let row: Option<(Option<String>,)> =
        sqlx::query_as("SELECT pending FROM sessions WHERE id = $1 AND revoked_at IS NULL FOR UPDATE")
            .bind(session_id)
            .fetch_optional(conn)
            .await?;
    Ok(row.map(|(pending,)| pending))
}

/// Lifts the MFA restriction of a session, in the caller's transaction (with a rotation).
/// Lifts a session's MFA restriction and records the one-time code in its `amr` (RFC 8176: `otp`
/// for a TOTP or recovery code).
pub async fn satisfy_mfa(conn: &mut PgConnection, session_id: Uuid) -> Result<()> {
    sqlx::query(
        "UPDATE sessions SET pending = NULL,
                amr = CASE WHEN 'otp' = ANY (amr) THEN amr ELSE array_append(amr, 'otp') END
          WHERE id = $1",
    )
    .bind(session_id)
    .execute(conn)
    .await?;
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

/// One of a user's live sessions, as they list them.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
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

/// Growing delays after repeated failed attempts on one account.
#[derive(Debug, Clone, Copy)]
pub struct Lockout {
    /// Failures before the first lock.
    pub threshold: u32,
    /// The first lock; each later failure doubles it.
    pub base: Duration,
    pub max: Duration,
}

fn threshold(lockout: Lockout) -> i32 {
    i32::try_from(lockout.threshold).unwrap_or(i32::MAX)
}

/// Reserves an attempt on `$1` (threshold `$2`, base and max lock in seconds `$3`, `$4`) in one
/// statement, before the secret is verified: the attempt counts as a failure at once, and the one
/// that reaches the threshold starts the lock (`base × 2^(failures − threshold)`, at most `max`; the
/// exponent is capped, so years of guessing cannot overflow it)
/// before it is verified. A locked email gets no row back, so however many requests arrive at
/// once, the row lock serialises them and at most `threshold` are verified before the first lock
/// and one per lock after it. A verified attempt is given back by `settle_attempt`; one whose
/// process dies stays a failure, so nothing leaks in the caller's favour. Failures a day old are
/// forgotten.
const RESERVE: &str = "INSERT INTO account_lockouts AS l (email, failures, last_failure_at, locked_until)
    VALUES ($1, 1, now(), CASE WHEN $2 <= 1 THEN now() + make_interval(secs => least($3, $4)) END)
    ON CONFLICT (email) DO UPDATE
       SET (failures, last_failure_at, locked_until) = (
           SELECT n, now(), CASE WHEN n >= $2 THEN now() + make_interval(secs => least($3 * power(2, least(n - $2, 30)), $4)) END
             FROM (SELECT CASE WHEN l.last_failure_at < now() - interval '1 day' THEN 1 ELSE l.failures + 1 END AS n) c)
     WHERE l.locked_until IS NULL OR l.locked_until <= now()
    RETURNING failures, locked_until";

/// What a query joining `attempt` (RESERVE) as `a` and `account_lockouts` as `l` reads of the
/// attempt. When it was refused, the lock is read from the statement's snapshot, which misses a lock
/// committed while the statement waited for the row: then the base delay is a fair Retry-After.
const ATTEMPT_COLUMNS: &str = "a.failures AS reserved_failures, a.locked_until AS reserved_lock,
    coalesce(CASE WHEN l.locked_until > now() THEN l.locked_until END, now() + make_interval(secs => $3)) AS locked_until";

#[derive(sqlx::FromRow)]
struct AttemptRow {
    reserved_failures: Option<i32>,
    reserved_lock: Option<DateTime<Utc>>,
    locked_until: DateTime<Utc>,
}

/// An attempt to verify a password or code of an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// Go ahead and verify.
    Reserved(Reserved),
    /// Locked: refused without verifying anything.
    Locked { until: DateTime<Utc> },
}

/// A reserved attempt: it already counts as failure number `failures`; `lock` is the lock it
/// started, if it reached the threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reserved {
    pub failures: i32,
    pub lock: Option<DateTime<Utc>>,
}

impl From<AttemptRow> for Attempt {
    fn from(row: AttemptRow) -> Self {
        match row.reserved_failures {
            Some(failures) => Attempt::Reserved(Reserved { failures, lock: row.reserved_lock }),
            None => Attempt::Locked { until: row.locked_until },
        }
    }
}

/// Reserves an attempt on the account of `email` (known or not); see `RESERVE`.
pub async fn reserve_attempt(pool: &PgPool, email: &str, lockout: Lockout) -> Result<Attempt> {
    let row: AttemptRow = sqlx::query_as(&format!(
        "WITH attempt AS ({RESERVE})
         SELECT {ATTEMPT_COLUMNS}
           FROM (SELECT $1::text AS email) e
           LEFT JOIN attempt a ON true
           LEFT JOIN account_lockouts l ON l.email = e.email"
    ))
    .bind(email)
    .bind(threshold(lockout))
    .bind(seconds(lockout.base))
    .bind(seconds(lockout.max))
    .fetch_one(pool)
    .await?;
    Ok(row.into())
}

/// What a verified attempt does to the failures counted for the email.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    /// The user proved who they are: forgive the failures counted up to this attempt, and the lock
    /// it started. Attempts reserved after it, still in flight, stay counted (and a lock one of
    /// them started stays), so a success cannot hand a burst of parallel guesses a new allowance.
    Forgive(Reserved),
    /// Give this attempt back (and the lock it started) but keep the earlier failures: the attempt
    /// was right, yet proved too little to forgive them (a password before the second factor), or
    /// nothing was verified.
    GiveBack(Reserved),
}

impl Settle {
    fn forgiven(self) -> i32 {
        match self {
            Settle::Forgive(attempt) => attempt.failures,
            Settle::GiveBack(_) => 1,
        }
    }

    fn lock(self) -> Option<DateTime<Utc>> {
        match self {
            Settle::Forgive(attempt) | Settle::GiveBack(attempt) => attempt.lock,
        }
    }
}

/// The statement that settles an attempt, with its parameters (email, failures forgiven, the lock
/// the attempt started) numbered from `first`, so that sign-in can run it inside the statement
/// that creates the session. A lock that is not the attempt's own was started by a later attempt
/// (none is granted while a lock holds), so it stays.
fn settle_statement(first: u8) -> String {
    let (email, forgiven, lock) = (first, first + 1, first + 2);
    format!(
        "UPDATE account_lockouts
            SET failures = greatest(failures - ${forgiven}, 0),
                locked_until = CASE WHEN locked_until = ${lock} THEN NULL ELSE locked_until END
          WHERE email = ${email}"
    )
}

/// Settles a verified attempt reserved by `reserve_attempt` or `sign_in`.
pub async fn settle_attempt(pool: &PgPool, email: &str, settle: Settle) -> Result<()> {
    sqlx::query(&settle_statement(1)).bind(email).bind(settle.forgiven()).bind(settle.lock()).execute(pool).await?;
    Ok(())
}

/// Forgets an account's failures: a completed reset, or an operator's unlock. Returns whether
/// there was anything to forget.
pub async fn clear_failures(pool: &PgPool, email: &str) -> Result<bool> {
    let forgotten: Option<(bool,)> = sqlx::query_as(
        "DELETE FROM account_lockouts WHERE email = $1 RETURNING failures > 0 OR coalesce(locked_until > now(), false)",
    )
    .bind(email)
    .fetch_optional(pool)
    .await?;
    Ok(forgotten.is_some_and(|(anything,)| anything))
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

/// Deletes what has expired: sessions a day past their end, spent tokens (and their sealed
/// successors once the grace window is over), old counters.
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
    // A spent token's successor pair is only answered within the grace window; past it, it goes.
    deleted += sqlx::query(
        "UPDATE spent_refresh_tokens SET key_id = NULL, pair_sealed = NULL
          WHERE pair_sealed IS NOT NULL AND spent_at < now() - make_interval(secs => $1)",
    )
    .bind(seconds(times.refresh_grace))
    .execute(pool)
    .await?
    .rows_affected();
    Ok(deleted)
}
