//! An audit event as an application reports it (API-LOG, FR-LOG-001): who (`actor`), did what
//! (`type`), to what (`resource`), with what `outcome`, from which `ip`, when (`timestamp`), in
//! which `tenant`, with the application's own `id` for it and optional `metadata`. Checking one is
//! pure; the API then checks that the tenant lists the application.

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Map, Value};

use crate::store::ReportedEvent;
use crate::store::{MAX_RESOURCE, MAX_TENANT};

/// How far back a reported event may be dated: the audit log's retention.
pub const OLDEST: TimeDelta = TimeDelta::days(400);
/// How far ahead of the server's clock.
pub const NEWEST: TimeDelta = TimeDelta::minutes(5);

pub const MAX_ID: usize = 256;
pub const MAX_ACTOR: usize = 512;
pub const MAX_TYPE: usize = 128;
/// Every field an event may have (`api::audit::ReportedAuditEvent` documents each).
pub const FIELDS: [&str; 9] = ["id", "tenant", "timestamp", "actor", "type", "resource", "outcome", "ip", "metadata"];

/// Why an event was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: &'static str,
    pub message: String,
}

fn invalid(message: impl Into<String>) -> Refusal {
    Refusal { code: "invalid_event", message: message.into() }
}

/// Checks one event received at `now`.
pub fn parse(value: &Value, now: DateTime<Utc>) -> Result<ReportedEvent, Refusal> {
    let Value::Object(fields) = value else {
        return Err(invalid("an event is a JSON object"));
    };
    if let Some(unknown) = fields.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(invalid(format!("unknown field `{unknown}`; the fields are {}", FIELDS.join(", "))));
    }
    let id = text(fields, "id", MAX_ID)?;
    let tenant = text(fields, "tenant", MAX_TENANT)?;
    let actor = text(fields, "actor", MAX_ACTOR)?;
    let kind = text(fields, "type", MAX_TYPE)?;
    let resource = text(fields, "resource", MAX_RESOURCE)?;
    let success = match text(fields, "outcome", 16)?.as_str() {
        "success" => true,
        "failure" => false,
        other => return Err(invalid(format!("`outcome` is {other:?}; it is \"success\" or \"failure\""))),
    };
    let raw_ip = text(fields, "ip", 64)?;
    let ip = raw_ip.parse().map_err(|_| invalid(format!("`ip` {raw_ip:?} is not an IPv4 or IPv6 address")))?;
    let raw_time = text(fields, "timestamp", 64)?;
    let timestamp = DateTime::parse_from_rfc3339(&raw_time)
        .map_err(|e| Refusal {
            code: "invalid_time",
            message: format!("`timestamp` {raw_time:?} is not an RFC 3339 timestamp: {e}"),
        })?
        .with_timezone(&Utc);
    if timestamp < now - OLDEST {
        return Err(Refusal {
            code: "too_old",
            message: format!(
                "`timestamp` {raw_time} is older than the audit log keeps events ({} days)",
                OLDEST.num_days()
            ),
        });
    }
    if timestamp > now + NEWEST {
        return Err(Refusal {
            code: "in_future",
            message: format!(
                "`timestamp` {raw_time} is {} minutes ahead of the server's clock; at most {} are allowed",
                (timestamp - now).num_minutes(),
                NEWEST.num_minutes()
            ),
        });
    }
    let metadata = match fields.get("metadata") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err(invalid("`metadata` must be a JSON object")),
    };
    Ok(ReportedEvent { id, tenant, timestamp, actor, kind, resource, success, ip, metadata })
}

fn text(fields: &Map<String, Value>, name: &str, max: usize) -> Result<String, Refusal> {
    match fields.get(name) {
        Some(Value::String(s)) if s.is_empty() => Err(invalid(format!("`{name}` is empty"))),
        Some(Value::String(s)) if s.chars().any(char::is_control) => {
            Err(invalid(format!("`{name}` holds a control character")))
        }
        Some(Value::String(s)) if s.len() <= max => Ok(s.clone()),
        Some(Value::String(_)) => Err(invalid(format!("`{name}` is longer than {max} bytes"))),
        Some(_) => Err(invalid(format!("`{name}` must be a string"))),
        None => Err(invalid(format!("`{name}` is required"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-01T12:00:00Z").expect("time").with_timezone(&Utc)
    }

    fn event() -> Value {
        json!({ "id": "e-1", "tenant": "acme", "timestamp": "2026-12-01T11:59:00Z", "actor": "user-42",
                "type": "document.delete", "resource": "doc/991", "outcome": "success", "ip": "203.0.113.7",
                "metadata": { "reason": "cleanup" } })
    }

    // FR-LOG-001: every field the spec requires is read and checked.
    #[test]
    fn a_reported_event_carries_every_required_field() {
        let parsed = parse(&event(), now()).expect("valid");
        assert_eq!(
            (parsed.actor.as_str(), parsed.kind.as_str(), parsed.resource.as_str()),
            ("user-42", "document.delete", "doc/991")
        );
        assert!(parsed.success);
        assert_eq!(parsed.ip.to_string(), "203.0.113.7");
        assert_eq!(parsed.metadata["reason"], "cleanup");
        for field in ["id", "tenant", "timestamp", "actor", "type", "resource", "outcome", "ip"] {
            let mut e = event();
            e.as_object_mut().expect("object").remove(field);
            let refusal = parse(&e, now()).expect_err(field);
            assert_eq!(refusal.message, format!("`{field}` is required"));
        }
    }

    #[test]
    fn bad_values_are_named() {
        let spoil = |field: &str, value: Value| {
            let mut e = event();
            e[field] = value;
            parse(&e, now()).expect_err(field)
        };
        assert!(spoil("outcome", json!("maybe")).message.contains("\"success\" or \"failure\""));
        assert!(spoil("ip", json!("10.0.0")).message.contains("not an IPv4 or IPv6 address"));
        assert_eq!(spoil("timestamp", json!("2026-12-01T12:10:00Z")).code, "in_future");
        assert_eq!(spoil("timestamp", json!("2025-01-01T00:00:00Z")).code, "too_old");
        assert_eq!(spoil("timestamp", json!("noon")).code, "invalid_time");
        assert!(spoil("actor", json!("a\u{0}b")).message.contains("control character"));
        assert!(spoil("metadata", json!([1])).message.contains("JSON object"));
        assert!(spoil("extra", json!(1)).message.contains("unknown field `extra`"));
        assert!(parse(&json!("x"), now()).is_err());
    }
}
