//! What a tenant's own users see of their tenant's audit rows (issue 25.13): what was done to the
//! tenant, without naming other tenants' principals. A row whose actor is a user of another
//! tenant, or an application the tenant does not enable (or an API key nobody could use), keeps its
//! action, resource, outcome and time; its actor becomes a description, and the metadata that
//! identifies the actor (its identity, address, user agent, key id) is dropped. Operators and
//! auditors read rows as they are.

use serde_json::Value;

use crate::store::audit_read::AuditRow;

/// Metadata keys that identify an actor.
const IDENTIFYING: [&str; 4] = ["actor", "ip", "userAgent", "keyId"];

/// Who the rows are shown to, and what of the platform that tenant may know.
pub struct TenantView<'a> {
    pub tenant: &'a str,
    /// Whether the tenant enables the application.
    pub enables: &'a dyn Fn(&str) -> bool,
    /// Whether an email is a user of another tenant today (for rows written without the actor's
    /// identity).
    pub foreign_user: &'a dyn Fn(&str) -> bool,
}

impl TenantView<'_> {
    /// Replaces, in `row`, the actor another tenant's principal would be named by.
    pub fn redact(&self, row: &mut AuditRow) {
        let described = match row.actor_type.as_str() {
            "user" if self.is_foreign_user(row) => "a user of another tenant",
            "application" if !(self.enables)(&row.actor) => "an application this tenant does not enable",
            "anonymous" if row.metadata.get("keyId").is_some() => "an API key that could not be used",
            _ => return,
        };
        row.actor = described.to_owned();
        row.ip = None;
        if let Value::Object(metadata) = &mut row.metadata {
            for key in IDENTIFYING {
                metadata.remove(key);
            }
        }
    }

    fn is_foreign_user(&self, row: &AuditRow) -> bool {
        match row.metadata.get("actor").and_then(|a| a.get("tenant")).and_then(Value::as_str) {
            Some(tenant) => tenant != self.tenant,
            None => (self.foreign_user)(&row.actor),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(actor: &str, actor_type: &str, metadata: Value) -> AuditRow {
        AuditRow {
            id: uuid::Uuid::nil(),
            time: chrono::Utc::now(),
            actor: actor.into(),
            actor_type: actor_type.into(),
            action: "api.denied".into(),
            resource: "/v1/tenants/ta/flags".into(),
            tenant: Some("ta".into()),
            outcome: "failure".into(),
            ip: Some("192.0.2.7".into()),
            application: None,
            event_id: None,
            metadata,
            chain: None,
            seq: None,
            hash: None,
        }
    }

    #[test]
    fn a_tenant_sees_what_was_done_to_it_without_other_tenants_principals() {
        let enables = |app: &str| app == "billing-app";
        let foreign_user = |email: &str| email == "old@tb.example";
        let view = TenantView { tenant: "ta", enables: &enables, foreign_user: &foreign_user };
        let mut cases = [
            row("eve@tb.example", "user", json!({ "actor": { "tenant": "tb", "userId": "u" }, "ip": "192.0.2.7" })),
            row("old@tb.example", "user", json!({})),
            row("shop-app", "application", json!({ "actor": { "keyId": "k1" } })),
            row("anonymous", "anonymous", json!({ "keyId": "k2", "reason": "revoked key" })),
            row("dan@ta.example", "user", json!({ "actor": { "tenant": "ta" } })),
            row("billing-app", "application", json!({ "actor": { "keyId": "k3" } })),
        ];
        for case in &mut cases {
            view.redact(case);
        }
        let actors: Vec<&str> = cases.iter().map(|r| r.actor.as_str()).collect();
        assert_eq!(
            actors,
            [
                "a user of another tenant",
                "a user of another tenant",
                "an application this tenant does not enable",
                "an API key that could not be used",
                "dan@ta.example",
                "billing-app"
            ]
        );
        assert_eq!(cases[0].metadata, json!({}));
        assert_eq!(cases[0].ip, None);
        assert_eq!(cases[3].metadata, json!({ "reason": "revoked key" }), "the reason stays, the key id goes");
        assert_eq!(cases[5].metadata, json!({ "actor": { "keyId": "k3" } }), "its own application as it is");
        assert_eq!(cases[4].ip.as_deref(), Some("192.0.2.7"));
    }
}
