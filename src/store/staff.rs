//! The SQL of platform staff in the browser: their sign-ins under way at the identity provider,
//! and their platform sessions. The logic is in `staff`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use super::Result;
use super::identity::seconds;

/// A sign-in started at the identity provider.
pub struct NewLogin<'a> {
    pub state_hash: &'a [u8],
    pub nonce: &'a str,
    pub verifier: (&'a str, &'a [u8]),
    pub browser_hash: &'a [u8],
    pub return_to: &'a str,
    pub ttl: Duration,
}

pub async fn start_login(pool: &PgPool, login: NewLogin<'_>) -> Result<()> {
    // Sign-ins nobody finished go when the next one starts: the table holds ten minutes of starts.
    sqlx::query("DELETE FROM staff_logins WHERE expires_at < now()").execute(pool).await?;
    sqlx::query(
        "INSERT INTO staff_logins (state_hash, nonce, verifier_key_id, verifier_sealed, browser_hash, return_to, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, now() + make_interval(secs => $7))",
    )
    .bind(login.state_hash)
    .bind(login.nonce)
    .bind(login.verifier.0)
    .bind(login.verifier.1)
    .bind(login.browser_hash)
    .bind(login.return_to)
    .bind(seconds(login.ttl))
    .execute(pool)
    .await?;
    Ok(())
}

#[derive(Debug, sqlx::FromRow)]
pub struct PendingLogin {
    pub nonce: String,
    pub verifier_key_id: String,
    pub verifier_sealed: Vec<u8>,
    pub browser_hash: Vec<u8>,
    pub return_to: String,
}

/// The sign-in of `state_hash`, once: a replayed or expired state finds nothing.
pub async fn take_login(pool: &PgPool, state_hash: &[u8]) -> Result<Option<PendingLogin>> {
    Ok(sqlx::query_as(
        "DELETE FROM staff_logins WHERE state_hash = $1 AND expires_at > now()
         RETURNING nonce, verifier_key_id, verifier_sealed, browser_hash, return_to",
    )
    .bind(state_hash)
    .fetch_optional(pool)
    .await?)
}

/// A platform session opened by a sign-in at the identity provider.
pub struct NewSession<'a> {
    pub token_hash: &'a [u8],
    pub issuer: &'a str,
    pub subject: &'a str,
    pub username: &'a str,
    pub display_name: Option<&'a str>,
    pub role: &'a str,
    pub lifetime: Duration,
}

pub async fn create_session(pool: &PgPool, session: NewSession<'_>) -> Result<Uuid> {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO staff_sessions (id, token_hash, issuer, subject, username, display_name, role, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, now() + make_interval(secs => $8))",
    )
    .bind(id)
    .bind(session.token_hash)
    .bind(session.issuer)
    .bind(session.subject)
    .bind(session.username)
    .bind(session.display_name)
    .bind(session.role)
    .bind(seconds(session.lifetime))
    .execute(pool)
    .await?;
    // Expired and ended sessions are kept a day (for the record), then go.
    sqlx::query("DELETE FROM staff_sessions WHERE coalesce(revoked_at, expires_at) < now() - interval '1 day'")
        .execute(pool)
        .await?;
    Ok(id)
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StaffSession {
    pub id: Uuid,
    pub issuer: String,
    pub subject: String,
    pub username: String,
    pub display_name: Option<String>,
    pub role: String,
    pub expires_at: DateTime<Utc>,
}

/// The live session whose token hashes to `token_hash`.
pub async fn session(pool: &PgPool, token_hash: &[u8]) -> Result<Option<StaffSession>> {
    Ok(sqlx::query_as(
        "SELECT id, issuer, subject, username, display_name, role, expires_at FROM staff_sessions
          WHERE token_hash = $1 AND revoked_at IS NULL AND expires_at > now()",
    )
    .bind(token_hash)
    .fetch_optional(pool)
    .await?)
}

/// Ends a session; whether it was live.
pub async fn revoke(pool: &PgPool, id: Uuid, reason: &str) -> Result<bool> {
    Ok(sqlx::query(
        "UPDATE staff_sessions SET revoked_at = now(), revoked_reason = $2 WHERE id = $1 AND revoked_at IS NULL",
    )
    .bind(id)
    .bind(reason)
    .execute(pool)
    .await?
    .rows_affected()
        == 1)
}
