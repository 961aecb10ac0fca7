//! The SQL of the OpenID provider: clients, authorization codes, the sessions of clients, and the
//! signing keys. The logic is in `oidc` and `api::oidc`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::Result;
use super::identity::{LIVE_SESSIONS, SessionTimes, seconds};
use crate::model::{OidcClient, Role};

// --- Clients ----------------------------------------------------------------------------------

/// An application that may sign users in, as the authorization and token endpoints see it.
#[derive(Debug, Clone)]
pub struct Client {
    pub id: Uuid,
    pub name: String,
    pub active: bool,
    pub oidc: OidcClient,
    /// SHA-256 of the client secret, if one is set.
    pub secret_hash: Option<Vec<u8>>,
}

/// The OIDC client named `client_id`; `None` if there is no such application or it is not a client.
pub async fn client(pool: &PgPool, client_id: &str) -> Result<Option<Client>> {
    type Row = (Uuid, String, String, Option<Value>, Option<Vec<u8>>);
    let row: Option<Row> = sqlx::query_as(
        "SELECT a.id, a.name, a.status, a.oidc, s.secret_hash
           FROM applications a LEFT JOIN oidc_client_secrets s ON s.application_id = a.id
          WHERE a.name = $1",
    )
    .bind(client_id)
    .fetch_optional(pool)
    .await?;
    Ok(row.and_then(|(id, name, status, oidc, secret_hash)| {
        let oidc = serde_json::from_value(oidc?).ok()?;
        Some(Client { id, name, active: status == "active", oidc, secret_hash })
    }))
}

/// Sets (or replaces) the secret of a client; `false` if the application does not exist.
pub async fn set_client_secret(pool: &PgPool, application_id: Uuid, secret_hash: &[u8]) -> Result<()> {
    sqlx::query(
        "INSERT INTO oidc_client_secrets (application_id, secret_hash) VALUES ($1, $2)
         ON CONFLICT (application_id) DO UPDATE SET secret_hash = EXCLUDED.secret_hash, created_at = now()",
    )
    .bind(application_id)
    .bind(secret_hash)
    .execute(pool)
    .await?;
    Ok(())
}

// --- Authorization codes ----------------------------------------------------------------------

pub struct NewCode<'a> {
    pub code_hash: &'a [u8],
    pub application_id: Uuid,
    pub session_id: Uuid,
    pub redirect_uri: &'a str,
    pub scope: &'a str,
    pub nonce: Option<&'a str>,
    pub code_challenge: Option<&'a str>,
    pub ttl: Duration,
}

pub async fn insert_code(pool: &PgPool, code: NewCode<'_>) -> Result<()> {
    sqlx::query(
        "INSERT INTO oidc_codes (code_hash, application_id, session_id, redirect_uri, scope, nonce, code_challenge, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, now() + make_interval(secs => $8))",
    )
    .bind(code.code_hash)
    .bind(code.application_id)
    .bind(code.session_id)
    .bind(code.redirect_uri)
    .bind(code.scope)
    .bind(code.nonce)
    .bind(code.code_challenge)
    .bind(seconds(code.ttl))
    .execute(pool)
    .await?;
    Ok(())
}

/// An authorization code as presented at the token endpoint.
#[derive(Debug, sqlx::FromRow)]
pub struct Code {
    pub application_id: Uuid,
    pub session_id: Uuid,
    pub redirect_uri: String,
    pub scope: String,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub expired: bool,
    /// Set when the code was already exchanged: the session it was exchanged for.
    pub used: bool,
    pub issued_session_id: Option<Uuid>,
}

/// Marks the code used and returns it as it was (`used` tells a replay), under its row lock.
pub async fn take_code(conn: &mut PgConnection, code_hash: &[u8]) -> Result<Option<Code>> {
    Ok(sqlx::query_as(
        "WITH old AS (SELECT * FROM oidc_codes WHERE code_hash = $1 FOR UPDATE)
         UPDATE oidc_codes c SET used_at = coalesce(c.used_at, now()) FROM old
          WHERE c.code_hash = old.code_hash
         RETURNING old.application_id, old.session_id, old.redirect_uri, old.scope, old.nonce, old.code_challenge,
                   old.expires_at <= now() AS expired, old.used_at IS NOT NULL AS used, old.issued_session_id",
    )
    .bind(code_hash)
    .fetch_optional(conn)
    .await?)
}

pub async fn record_issued_session(conn: &mut PgConnection, code_hash: &[u8], session_id: Uuid) -> Result<()> {
    sqlx::query(
        "WITH c AS (UPDATE oidc_codes SET issued_session_id = $2 WHERE code_hash = $1 RETURNING scope)
         UPDATE sessions SET scope = (SELECT scope FROM c) WHERE id = $2",
    )
    .bind(code_hash)
    .bind(session_id)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn prune_codes(pool: &PgPool) -> Result<u64> {
    Ok(sqlx::query("DELETE FROM oidc_codes WHERE expires_at < now() - interval '1 hour'")
        .execute(pool)
        .await?
        .rows_affected())
}

// --- The sessions of clients ------------------------------------------------------------------

/// A live session as the OpenID provider sees it: who, how they signed in, and for which client.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ClientSession {
    pub id: Uuid,
    pub user_id: Uuid,
    pub tenant_id: Uuid,
    pub tenant: String,
    pub email: String,
    pub name: Option<String>,
    pub role: Role,
    pub amr: Vec<String>,
    pub auth_time: DateTime<Utc>,
    pub client_id: Option<Uuid>,
    pub pending: Option<String>,
    pub created_at: DateTime<Utc>,
}

const CLIENT_SESSION: &str =
    "s.id, s.user_id, s.tenant_id, t.name AS tenant, u.email, u.name, u.role, s.amr, s.auth_time,
     s.client_id, s.pending, s.created_at";

/// The live session `id` (a browser's, or a client's).
pub async fn live_session(conn: &mut PgConnection, id: Uuid, times: SessionTimes) -> Result<Option<ClientSession>> {
    Ok(sqlx::query_as(&format!("SELECT {CLIENT_SESSION} {LIVE_SESSIONS} AND s.id = $1"))
        .bind(id)
        .bind(seconds(times.idle))
        .fetch_optional(conn)
        .await?)
}

/// The live session whose current refresh token hashes to `hash`.
pub async fn session_by_refresh(pool: &PgPool, hash: &[u8], times: SessionTimes) -> Result<Option<ClientSession>> {
    Ok(sqlx::query_as(&format!("SELECT {CLIENT_SESSION} {LIVE_SESSIONS} AND s.refresh_hash = $1"))
        .bind(hash)
        .bind(seconds(times.idle))
        .fetch_optional(pool)
        .await?)
}

/// The live session whose current, unexpired access token hashes to `hash`.
pub async fn session_by_access(pool: &PgPool, hash: &[u8], times: SessionTimes) -> Result<Option<ClientSession>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {CLIENT_SESSION} {LIVE_SESSIONS} AND s.access_hash = $1 AND s.rotated_at > now() - make_interval(secs => $3)"
    ))
    .bind(hash)
    .bind(seconds(times.idle))
    .bind(seconds(times.access_ttl))
    .fetch_optional(pool)
    .await?)
}

/// A new session of a client, for the user of the live browser session `parent`, which it
/// inherits `amr` and `auth_time` from and cannot outlive. `None` if the parent is no longer live.
pub async fn create_client_session(
    conn: &mut PgConnection,
    parent: Uuid,
    client_id: Uuid,
    access_hash: &[u8],
    refresh_hash: &[u8],
    times: SessionTimes,
) -> Result<Option<ClientSession>> {
    let id = Uuid::now_v7();
    Ok(sqlx::query_as(&format!(
        "WITH s AS (
             INSERT INTO sessions (id, user_id, tenant_id, access_hash, refresh_hash, expires_at, ip, user_agent,
                                   amr, auth_time, client_id, parent_id)
             SELECT $3, s.user_id, s.tenant_id, $4, $5, s.expires_at, s.ip, s.user_agent, s.amr, s.auth_time, $6, s.id
               {LIVE_SESSIONS} AND s.id = $1 AND s.pending IS NULL
             RETURNING *)
         SELECT {CLIENT_SESSION} FROM s JOIN users u ON u.id = s.user_id JOIN tenants t ON t.id = s.tenant_id"
    ))
    .bind(parent)
    .bind(seconds(times.idle))
    .bind(id)
    .bind(access_hash)
    .bind(refresh_hash)
    .bind(client_id)
    .fetch_optional(conn)
    .await?)
}

/// The scope granted to the client session `session_id` (at the code it came from).
pub async fn granted_scope(conn: &mut PgConnection, session_id: Uuid) -> Result<Option<String>> {
    Ok(sqlx::query_scalar("SELECT scope FROM sessions WHERE id = $1")
        .bind(session_id)
        .fetch_optional(conn)
        .await?
        .flatten())
}

/// The scope granted to a client session.
pub async fn granted_scope_by_session(pool: &PgPool, session_id: Uuid) -> Result<Option<String>> {
    let mut conn = pool.acquire().await?;
    granted_scope(&mut conn, session_id).await
}

/// The scope granted to the client session whose current refresh token hashes to `refresh_hash`.
pub async fn granted_scope_by_refresh(pool: &PgPool, refresh_hash: &[u8]) -> Result<Option<String>> {
    Ok(sqlx::query_scalar("SELECT scope FROM sessions WHERE refresh_hash = $1 AND scope IS NOT NULL")
        .bind(refresh_hash)
        .fetch_optional(pool)
        .await?)
}

/// The browser session a session belongs to: itself, or the parent of a client's session.
pub async fn family_of(pool: &PgPool, session_id: Uuid) -> Result<Option<Uuid>> {
    Ok(sqlx::query_scalar("SELECT coalesce(parent_id, id) FROM sessions WHERE id = $1")
        .bind(session_id)
        .fetch_optional(pool)
        .await?)
}

/// Ends a browser session and every client session that came from it (RP-initiated logout).
pub async fn end_session_family(pool: &PgPool, session_id: Uuid, reason: &str) -> Result<u64> {
    Ok(sqlx::query(
        "UPDATE sessions SET revoked_at = now(), revoked_reason = $2
          WHERE (id = $1 OR parent_id = $1) AND revoked_at IS NULL",
    )
    .bind(session_id)
    .bind(reason)
    .execute(pool)
    .await?
    .rows_affected())
}

// --- Signing keys -----------------------------------------------------------------------------

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredKey {
    pub kid: String,
    pub alg: String,
    pub state: String,
    pub public_jwk: Value,
    pub sealing_key: String,
    pub private_sealed: Vec<u8>,
}

/// Serialises key changes between replicas (a transaction-scoped advisory lock).
async fn lock_keys(conn: &mut PgConnection) -> Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('gatehouse_oidc_keys'))").execute(conn).await?;
    Ok(())
}

async fn insert_key(conn: &mut PgConnection, key: &StoredKey, state: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO oidc_signing_keys (kid, alg, state, public_jwk, sealing_key, private_sealed, activated_at)
         VALUES ($1, $2, $3, $4, $5, $6, CASE WHEN $3 = 'current' THEN now() END)",
    )
    .bind(&key.kid)
    .bind(&key.alg)
    .bind(state)
    .bind(&key.public_jwk)
    .bind(&key.sealing_key)
    .bind(&key.private_sealed)
    .execute(conn)
    .await?;
    Ok(())
}

async fn has_key(conn: &mut PgConnection, alg: &str, state: &str) -> Result<bool> {
    Ok(sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM oidc_signing_keys WHERE alg = $1 AND state = $2)")
        .bind(alg)
        .bind(state)
        .fetch_one(conn)
        .await?)
}

/// Gives each algorithm a current and a next key where it has none, from `fresh` (two keys per
/// algorithm, in order).
pub async fn fill_keys(pool: &PgPool, fresh: &[StoredKey]) -> Result<()> {
    let mut tx = pool.begin().await?;
    lock_keys(&mut tx).await?;
    for pair in fresh.chunks(2) {
        for (key, state) in pair.iter().zip(["current", "next"]) {
            if !has_key(&mut tx, &key.alg, state).await? {
                insert_key(&mut tx, key, state).await?;
            }
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Retires each algorithm's current key, promotes its next one and publishes a new next key from
/// `fresh` (two per algorithm; the first is used). Returns the kids that now sign.
pub async fn rotate_keys(pool: &PgPool, fresh: &[StoredKey]) -> Result<Vec<String>> {
    let mut tx = pool.begin().await?;
    lock_keys(&mut tx).await?;
    let current = rotate_locked(&mut tx, fresh).await?;
    tx.commit().await?;
    Ok(current)
}

/// The rotation itself, in a transaction that holds the keys' lock.
async fn rotate_locked(tx: &mut PgConnection, fresh: &[StoredKey]) -> Result<Vec<String>> {
    let mut current = Vec::new();
    for pair in fresh.chunks(2) {
        let alg = &pair[0].alg;
        sqlx::query(
            "UPDATE oidc_signing_keys SET state = 'retired', retired_at = now() WHERE alg = $1 AND state = 'current'",
        )
        .bind(alg)
        .execute(&mut *tx)
        .await?;
        let promoted: Option<String> = sqlx::query_scalar(
            "UPDATE oidc_signing_keys SET state = 'current', activated_at = now()
              WHERE alg = $1 AND state = 'next' RETURNING kid",
        )
        .bind(alg)
        .fetch_optional(&mut *tx)
        .await?;
        match promoted {
            Some(kid) => current.push(kid),
            None => {
                insert_key(&mut *tx, &pair[1], "current").await?;
                current.push(pair[1].kid.clone());
            }
        }
        insert_key(&mut *tx, &pair[0], "next").await?;
    }
    Ok(current)
}

/// Rotates as `rotate_keys` does, but only if a current key has signed for longer than `age`,
/// checked under the keys' lock: of replicas that find the keys due at once, one rotates.
pub async fn rotate_keys_if_older(pool: &PgPool, fresh: &[StoredKey], age: Duration) -> Result<bool> {
    let mut tx = pool.begin().await?;
    lock_keys(&mut tx).await?;
    let due: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM oidc_signing_keys
                         WHERE state = 'current' AND activated_at < now() - make_interval(secs => $1))",
    )
    .bind(seconds(age))
    .fetch_one(&mut *tx)
    .await?;
    if due {
        rotate_locked(&mut tx, fresh).await?;
        tx.commit().await?;
    }
    Ok(due)
}

/// Whether any current key has signed for longer than `age`.
pub async fn current_key_older_than(pool: &PgPool, age: Duration) -> Result<bool> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM oidc_signing_keys
                         WHERE state = 'current' AND activated_at < now() - make_interval(secs => $1))",
    )
    .bind(seconds(age))
    .fetch_one(pool)
    .await?)
}

/// The published keys, current first, then next, then retired (newest first).
pub async fn signing_keys(pool: &PgPool) -> Result<Vec<StoredKey>> {
    Ok(sqlx::query_as(
        "SELECT kid, alg, state, public_jwk, sealing_key, private_sealed FROM oidc_signing_keys
          ORDER BY CASE state WHEN 'current' THEN 0 WHEN 'next' THEN 1 ELSE 2 END, alg, retired_at DESC",
    )
    .fetch_all(pool)
    .await?)
}

/// Deletes retired keys that no unexpired ID token can name.
pub async fn prune_retired_keys(pool: &PgPool, keep: Duration) -> Result<u64> {
    Ok(sqlx::query(
        "DELETE FROM oidc_signing_keys WHERE state = 'retired' AND retired_at < now() - make_interval(secs => $1)",
    )
    .bind(seconds(keep))
    .execute(pool)
    .await?
    .rows_affected())
}
