//! One way to write what an actor did: `audit::entry` builds the row (the actor's identity recorded
//! the same way in every row: who, what kind, and how they proved it), `audit::record` writes it.
//! Rows that must commit with a change are passed to the store function making the change.

pub mod checkpoint;
pub mod redact;
pub mod reported;
pub mod verify;

use serde_json::{Map, Value, json};
use sqlx::PgPool;

use crate::authz::Actor;
use crate::store::{self, AuditEntry, StoreError};

/// What an action was done to, as audit rows name it: `application/analytics-app/key/k1`,
/// `tenant/acme/user/dan@acme.example`.
#[derive(Debug, Clone)]
pub struct Target {
    pub path: String,
    pub tenant: Option<String>,
}

impl Target {
    /// Something of the platform as a whole (an application, the reconciler).
    pub fn platform(path: impl Into<String>) -> Self {
        Target { path: path.into(), tenant: None }
    }

    /// Something that belongs to `tenant`.
    pub fn in_tenant(tenant: &str, path: impl Into<String>) -> Self {
        Target { path: path.into(), tenant: Some(tenant.to_owned()) }
    }
}

/// Whether the action was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
}

/// Where the request came from: the address and user agent every row of a request carries.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// The row of `actor` doing `action` to `target`. `details` (an object) lands in `metadata`, beside
/// `actor` (the identity) and the request's `ip` and `userAgent`.
pub fn entry(
    actor: &Actor,
    action: &str,
    target: Target,
    outcome: Outcome,
    origin: &Origin,
    details: Value,
) -> AuditEntry {
    let who = Who { name: actor.name(), kind: actor.kind(), identity: actor.identity() };
    row(who, action, target, outcome, origin, details)
}

/// The row of someone named by `email` (or, for a provider's test sign-in, whoever started it)
/// without a session to prove it: a sign-in, a reset or an invitation accepted, a federated
/// sign-in. The row's actor is that name, and nothing more is known of them.
pub fn claimed(
    email: &str,
    action: &str,
    target: Target,
    outcome: Outcome,
    origin: &Origin,
    details: Value,
) -> AuditEntry {
    let who = Who { name: email, kind: "user", identity: Value::Null };
    row(who, action, target, outcome, origin, details)
}

/// A user acting through a session that is not the request's credential (an application
/// redeeming the user's authorization code), named as `entry` names a user.
pub struct SessionUser<'a> {
    pub email: &'a str,
    pub user_id: uuid::Uuid,
    pub session_id: uuid::Uuid,
    pub tenant: &'a str,
    pub role: crate::model::Role,
}

/// The row of `user` doing `action` to `target`, through a session that is not the request's own.
pub fn session_user(
    user: SessionUser<'_>,
    action: &str,
    target: Target,
    outcome: Outcome,
    origin: &Origin,
    details: Value,
) -> AuditEntry {
    let identity = crate::model::user_identity(user.user_id, user.session_id, user.tenant, user.role);
    row(Who { name: user.email, kind: "user", identity }, action, target, outcome, origin, details)
}

/// Whom a row names: the `actor` and `actor_type` columns, and the identity in `metadata.actor`.
struct Who<'a> {
    name: &'a str,
    kind: &'static str,
    identity: Value,
}

fn row(who: Who<'_>, action: &str, target: Target, outcome: Outcome, origin: &Origin, details: Value) -> AuditEntry {
    let mut metadata = match details {
        Value::Object(map) => map,
        Value::Null => Map::new(),
        other => Map::from_iter([("details".to_owned(), other)]),
    };
    if !who.identity.is_null() {
        metadata.insert("actor".into(), who.identity);
    }
    if let Some(ip) = &origin.ip {
        metadata.entry("ip").or_insert_with(|| json!(ip));
    }
    if let Some(agent) = &origin.user_agent {
        metadata.entry("userAgent").or_insert_with(|| json!(agent));
    }
    AuditEntry {
        actor: who.name.to_owned(),
        actor_type: who.kind,
        action: action.to_owned(),
        resource: target.path,
        tenant: target.tenant,
        success: outcome == Outcome::Success,
        metadata: Value::Object(metadata),
    }
}

/// Writes the row of `actor` doing `action` to `target`.
pub async fn record(
    pool: &PgPool,
    actor: &Actor,
    action: &str,
    target: Target,
    outcome: Outcome,
    origin: &Origin,
    details: Value,
) -> Result<(), StoreError> {
    store::apps::audit(pool, entry(actor, action, target, outcome, origin, details)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authz::PlatformActor;

    #[test]
    fn every_row_names_the_actor_the_same_way() {
        let actor = Actor::Platform(PlatformActor::bootstrap());
        let origin = Origin { ip: Some("10.0.0.1".into()), user_agent: Some("curl/8".into()) };
        let row = entry(
            &actor,
            "keys.create",
            Target::platform("application/a"),
            Outcome::Success,
            &origin,
            json!({ "n": 1 }),
        );
        assert_eq!((row.actor.as_str(), row.actor_type, row.success), ("bootstrap-token", "operator", true));
        assert_eq!(
            row.metadata,
            json!({ "n": 1, "actor": { "via": "bootstrap-token" }, "ip": "10.0.0.1", "userAgent": "curl/8" })
        );
        let anonymous = entry(
            &Actor::Anonymous,
            "api.denied",
            Target::in_tenant("acme", "/x"),
            Outcome::Failure,
            &Origin::default(),
            Value::Null,
        );
        assert_eq!(
            (anonymous.actor_type, anonymous.tenant.as_deref(), anonymous.metadata),
            ("anonymous", Some("acme"), json!({}))
        );
    }
}
