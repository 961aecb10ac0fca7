//! A live session, as a request and the decisions about it see it.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::{Pending, Role};

/// A live session as a request sees it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
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
    pub role: Role,
    pub pending: Option<Pending>,
    pub created_at: DateTime<Utc>,
    pub rotated_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// The OIDC client the session was issued to; `None`: a browser's or the JSON API's.
    #[serde(skip)]
    pub client_id: Option<Uuid>,
}

/// How audit rows identify a user acting through a session: the same object whether the request's
/// own session proves it or an application redeems the user's authorization code.
pub fn user_identity(user_id: Uuid, session_id: Uuid, tenant: &str, role: Role) -> serde_json::Value {
    serde_json::json!({ "userId": user_id, "sessionId": session_id, "tenant": tenant, "role": role })
}
