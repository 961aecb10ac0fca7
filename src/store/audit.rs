//! The append-only audit log.

use sqlx::PgConnection;
use uuid::Uuid;

use super::Result;

/// One audit row. Never carries a secret: callers put identifiers and field values only.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub actor: String,
    /// `user`, `operator`, `system` or `application`.
    pub actor_type: &'static str,
    /// `<kind>.<verb>`, such as `user.update`.
    pub action: String,
    /// Path of the resource, such as `tenant/acme/user/alice@acme.example`.
    pub resource: String,
    pub tenant: Option<String>,
    pub success: bool,
    pub metadata: serde_json::Value,
}

/// Inserts audit rows in one statement, inside the caller's transaction.
pub async fn insert_audit(conn: &mut PgConnection, entries: &[AuditEntry]) -> Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let mut ids = Vec::with_capacity(entries.len());
    let (mut actors, mut actor_types, mut actions, mut resources, mut tenants, mut outcomes, mut metadata) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    for e in entries {
        ids.push(Uuid::now_v7());
        actors.push(e.actor.as_str());
        actor_types.push(e.actor_type);
        actions.push(e.action.as_str());
        resources.push(e.resource.as_str());
        tenants.push(e.tenant.as_deref());
        outcomes.push(if e.success { "success" } else { "failure" });
        metadata.push(&e.metadata);
    }
    sqlx::query(
        "INSERT INTO audit_log (id, actor, actor_type, action, resource, tenant, outcome, metadata)
         SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::jsonb[])",
    )
    .bind(&ids)
    .bind(&actors)
    .bind(&actor_types)
    .bind(&actions)
    .bind(&resources)
    .bind(&tenants)
    .bind(&outcomes)
    .bind(&metadata)
    .execute(conn)
    .await?;
    Ok(())
}
