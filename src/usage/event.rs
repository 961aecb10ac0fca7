//! One usage event as an application sends it: a CloudEvents 1.0 event in structured JSON (`subject`
//! the tenant, `type` the event type, `data.quantity` what it counts), or the same fields as plain
//! JSON. Checking one is pure: what it says, and whether its `time` is inside the window (no older
//! than 35 days, at most 5 minutes ahead, as Stripe's meter events).

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Map, Value};

/// How far back an event may be dated.
pub const OLDEST: TimeDelta = TimeDelta::days(35);
/// How far ahead of the server's clock an event may be dated.
pub const NEWEST: TimeDelta = TimeDelta::minutes(5);
/// The largest quantity of one event: sums of many stay far inside 64 bits.
pub const MAX_QUANTITY: i64 = 1_000_000_000_000;

const MAX_ID: usize = 256;
const MAX_SOURCE: usize = 512;
const MAX_TYPE: usize = 256;

/// A valid event, ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageEvent {
    pub tenant: String,
    pub source: String,
    pub id: String,
    pub kind: String,
    pub time: DateTime<Utc>,
    pub quantity: i64,
    /// The event's whole `data` object, `quantity` included.
    pub data: Value,
}

/// Why an event was refused: a stable code and a sentence naming the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: &'static str,
    pub message: String,
}

impl Refusal {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Refusal { code, message: message.into() }
    }
}

/// Whether the body was sent as CloudEvents (`specversion` is then required) or as plain JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    CloudEvents,
    Plain,
}

/// Checks one event received at `now`.
pub fn parse(value: &Value, format: Format, now: DateTime<Utc>) -> Result<UsageEvent, Refusal> {
    let Value::Object(fields) = value else {
        return Err(Refusal::new("invalid_event", "an event is a JSON object"));
    };
    match fields.get("specversion") {
        Some(Value::String(v)) if v == "1.0" => {}
        None if format == Format::Plain => {}
        None => {
            return Err(Refusal::new("invalid_event", "`specversion` is required in a CloudEvent; it must be \"1.0\""));
        }
        Some(other) => {
            return Err(Refusal::new("invalid_event", format!("`specversion` is {other}; only \"1.0\" is supported")));
        }
    }
    let id = text(fields, "id", MAX_ID)?;
    let source = text(fields, "source", MAX_SOURCE)?;
    let kind = text(fields, "type", MAX_TYPE)?;
    let tenant =
        text(fields, "subject", 63).map_err(|r| Refusal::new(r.code, format!("{} (the tenant's name)", r.message)))?;
    let time = time(fields, now)?;
    let data = match fields.get("data") {
        Some(Value::Object(data)) => data,
        Some(_) => return Err(Refusal::new("invalid_event", "`data` must be a JSON object holding `quantity`")),
        None => return Err(Refusal::new("invalid_event", "`data` is required: {\"quantity\": <a positive integer>}")),
    };
    let quantity = match data.get("quantity") {
        Some(Value::Number(n)) => n.as_i64().filter(|q| (1..=MAX_QUANTITY).contains(q)),
        _ => None,
    }
    .ok_or_else(|| {
        let got = data.get("quantity").map_or("missing".to_owned(), Value::to_string);
        Refusal::new(
            "invalid_quantity",
            format!("`data.quantity` must be a positive integer of at most {MAX_QUANTITY}; it is {got}"),
        )
    })?;
    let data = Value::Object(data.clone());
    if holds_nul(&data) {
        return Err(Refusal::new("invalid_event", "`data` holds a NUL character (\\u0000), which cannot be stored"));
    }
    Ok(UsageEvent { tenant, source, id, kind, time, quantity, data })
}

/// Whether a string anywhere in `value` (keys included) holds U+0000, which PostgreSQL's text and
/// jsonb cannot store.
fn holds_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(holds_nul),
        Value::Object(fields) => fields.iter().any(|(k, v)| k.contains('\0') || holds_nul(v)),
        _ => false,
    }
}

fn text(fields: &Map<String, Value>, name: &str, max: usize) -> Result<String, Refusal> {
    match fields.get(name) {
        Some(Value::String(s)) if s.is_empty() => Err(Refusal::new("invalid_event", format!("`{name}` is empty"))),
        Some(Value::String(s)) if s.chars().any(char::is_control) => {
            Err(Refusal::new("invalid_event", format!("`{name}` holds a control character")))
        }
        // Bytes, not characters: the dedup index holds them, and its entries are bounded.
        Some(Value::String(s)) if s.len() <= max => Ok(s.clone()),
        Some(Value::String(_)) => Err(Refusal::new("invalid_event", format!("`{name}` is longer than {max} bytes"))),
        Some(_) => Err(Refusal::new("invalid_event", format!("`{name}` must be a string"))),
        None => Err(Refusal::new("invalid_event", format!("`{name}` is required"))),
    }
}

fn time(fields: &Map<String, Value>, now: DateTime<Utc>) -> Result<DateTime<Utc>, Refusal> {
    let Some(Value::String(raw)) = fields.get("time") else {
        return Err(Refusal::new(
            "invalid_event",
            "`time` is required: an RFC 3339 timestamp such as 2026-12-01T10:00:00Z",
        ));
    };
    let time = DateTime::parse_from_rfc3339(raw)
        .map_err(|e| Refusal::new("invalid_time", format!("`time` {raw:?} is not an RFC 3339 timestamp: {e}")))?
        .with_timezone(&Utc);
    if time < now - OLDEST {
        let days = (now - time).num_days();
        return Err(Refusal::new(
            "too_old",
            format!("`time` {raw} is {days} days ago; events older than {} days are refused", OLDEST.num_days()),
        ));
    }
    if time > now + NEWEST {
        let minutes = (time - now).num_minutes();
        return Err(Refusal::new(
            "in_future",
            format!(
                "`time` {raw} is {minutes} minutes ahead of the server's clock; at most {} minutes are allowed",
                NEWEST.num_minutes()
            ),
        ));
    }
    Ok(time)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-01T12:00:00Z").expect("time").with_timezone(&Utc)
    }

    fn event(time: &str) -> Value {
        json!({"specversion": "1.0", "id": "e1", "source": "//billing/api", "type": "api.call",
               "subject": "acme", "time": time, "data": {"quantity": 3, "region": "eu"}})
    }

    #[test]
    fn a_cloudevent_is_read_with_its_whole_data() {
        let parsed = parse(&event("2026-12-01T11:59:00Z"), Format::CloudEvents, now()).expect("valid");
        assert_eq!(parsed.tenant, "acme");
        assert_eq!(parsed.kind, "api.call");
        assert_eq!(parsed.quantity, 3);
        assert_eq!(parsed.data, json!({"quantity": 3, "region": "eu"}));
    }

    // FR-BILL-001: events outside the window are refused with the reason.
    #[test]
    fn events_older_than_35_days_or_more_than_5_minutes_ahead_are_refused() {
        let old = parse(&event("2026-10-22T12:00:00Z"), Format::CloudEvents, now()).expect_err("40 days old");
        assert_eq!(old.code, "too_old");
        assert!(old.message.contains("40 days ago"), "{}", old.message);
        let ahead = parse(&event("2026-12-01T12:10:00Z"), Format::CloudEvents, now()).expect_err("10 minutes ahead");
        assert_eq!(ahead.code, "in_future");
        assert!(ahead.message.contains("10 minutes ahead"), "{}", ahead.message);
        assert!(parse(&event("2026-10-27T12:00:01Z"), Format::CloudEvents, now()).is_ok(), "just inside 35 days");
        assert!(parse(&event("2026-12-01T12:04:59Z"), Format::CloudEvents, now()).is_ok(), "just inside 5 minutes");
    }

    #[test]
    fn quantity_must_be_a_positive_integer() {
        for bad in [json!(0), json!(-1), json!(1.5), json!("3"), Value::Null, json!(MAX_QUANTITY + 1), json!(i64::MAX)]
        {
            let mut e = event("2026-12-01T11:00:00Z");
            e["data"]["quantity"] = bad.clone();
            let refusal = parse(&e, Format::CloudEvents, now()).expect_err("bad quantity");
            assert_eq!(refusal.code, "invalid_quantity", "{bad}");
        }
    }

    #[test]
    fn specversion_is_required_of_cloudevents_only() {
        let mut e = event("2026-12-01T11:00:00Z");
        e.as_object_mut().expect("object").remove("specversion");
        assert!(parse(&e, Format::Plain, now()).is_ok());
        let refused = parse(&e, Format::CloudEvents, now()).expect_err("cloudevents need it");
        assert!(refused.message.contains("specversion"), "{}", refused.message);
        e["specversion"] = json!("0.3");
        assert!(parse(&e, Format::Plain, now()).expect_err("0.3").message.contains("only \"1.0\""));
    }

    #[test]
    fn missing_and_malformed_fields_are_named() {
        for field in ["id", "source", "type", "subject", "time", "data"] {
            let mut e = event("2026-12-01T11:00:00Z");
            e.as_object_mut().expect("object").remove(field);
            let refusal = parse(&e, Format::CloudEvents, now()).expect_err(field);
            assert!(refusal.message.contains(&format!("`{field}`")), "{field}: {}", refusal.message);
        }
        let mut e = event("yesterday");
        assert_eq!(parse(&e, Format::CloudEvents, now()).expect_err("time").code, "invalid_time");
        e = event("2026-12-01T11:00:00Z");
        e["id"] = json!("x".repeat(257));
        assert!(parse(&e, Format::CloudEvents, now()).expect_err("long").message.contains("longer than 256"));
        e["id"] = json!("\u{1F600}".repeat(65));
        assert!(parse(&e, Format::CloudEvents, now()).is_err(), "65 four-byte characters are 260 bytes");
        assert_eq!(parse(&json!([1]), Format::Plain, now()).expect_err("array").code, "invalid_event");
        e = event("2026-12-01T11:00:00Z");
        e["source"] = json!("a\u{0}b");
        assert!(parse(&e, Format::CloudEvents, now()).expect_err("NUL").message.contains("control character"));
        e = event("2026-12-01T11:00:00Z");
        e["data"]["note"] = json!(["fine", {"k": "x\u{0}"}]);
        assert!(parse(&e, Format::CloudEvents, now()).expect_err("NUL in data").message.contains("NUL"));
    }
}
