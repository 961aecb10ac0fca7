//! The SQL of invitations: who is waiting for one. The link tokens themselves are
//! `store::identity`'s (`issue_link_token`, `consume_link_token`), shared with password resets.

use sqlx::PgConnection;
use uuid::Uuid;

use super::Result;

/// An invited user, with what the invitation mail says.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Invitee {
    pub user_id: Uuid,
    pub email: String,
    pub name: Option<String>,
    pub tenant_display_name: String,
    /// The language the invitee reads mail in, if known.
    pub language: Option<String>,
}

/// Invited users of active tenants who have no invitation yet, locked for the caller's transaction
/// (another replica skips them).
pub async fn users_to_invite(conn: &mut PgConnection, limit: i64) -> Result<Vec<Invitee>> {
    Ok(sqlx::query_as(
        "SELECT u.id AS user_id, u.email, u.name, t.display_name AS tenant_display_name, u.language
           FROM users u JOIN tenants t ON t.id = u.tenant_id
          WHERE u.status = 'invited' AND t.status = 'active'
            AND NOT EXISTS (SELECT 1 FROM user_tokens k WHERE k.user_id = u.id AND k.purpose = 'invitation')
          ORDER BY u.id LIMIT $1 FOR UPDATE OF u SKIP LOCKED",
    )
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// The user `user_id` as an invitee, whatever their status (the caller checks it).
pub async fn invitee(conn: &mut PgConnection, user_id: Uuid) -> Result<Option<Invitee>> {
    Ok(sqlx::query_as(
        "SELECT u.id AS user_id, u.email, u.name, t.display_name AS tenant_display_name, u.language
           FROM users u JOIN tenants t ON t.id = u.tenant_id WHERE u.id = $1",
    )
    .bind(user_id)
    .fetch_optional(conn)
    .await?)
}
