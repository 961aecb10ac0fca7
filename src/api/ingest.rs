//! What the two ingest routes (`/v1/usage/events`, `/v1/audit/events`) share: a body of one event
//! or a batch of at most 1,000, and an answer that counts what was stored, what was a duplicate, and
//! names each refused event (index, id, code, reason) while the others are stored. A request that
//! stored nothing is a 422 naming the refusals.

use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;

use super::{ApiError, Result};
use crate::store::Rule;

/// The most events in one request.
pub const MAX_BATCH: usize = 1000;

/// The events of a JSON body: an array is a batch (`true`), an object one event. `batch` is what
/// the content type demands (`None`: either).
pub fn events(body: &[u8], batch: Option<bool>) -> Result<(Vec<Value>, bool)> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::BadRequest(format!("invalid request body: {e}; a JSON event or array of events is expected"))
    })?;
    let (items, batch) = match (value, batch) {
        (Value::Array(items), Some(true) | None) => (items, true),
        (value @ Value::Object(_), Some(false) | None) => (vec![value], false),
        (_, Some(true)) => return Err(ApiError::BadRequest("a batch is a JSON array of events".into())),
        (_, _) => return Err(ApiError::BadRequest("an event is a JSON object; send a batch as an array".into())),
    };
    if items.len() > MAX_BATCH {
        return Err(ApiError::rule(
            Rule::Invalid,
            "batch_too_large",
            format!("a batch holds at most {MAX_BATCH} events; this one has {}: split it", items.len()),
        ));
    }
    Ok((items, batch))
}

/// What became of a request's events.
#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
pub(crate) struct IngestResult {
    /// Events stored.
    accepted: usize,
    /// Events stored before (same identity): acknowledged, not stored or counted again.
    duplicates: usize,
    /// Events refused, with why; the others were stored.
    rejected: Vec<RejectedEvent>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct RejectedEvent {
    /// The event's position in the batch (0 for a single event).
    index: usize,
    /// The event's `id`, when it had one.
    id: Option<String>,
    code: &'static str,
    message: String,
}

impl IngestResult {
    pub fn refuse(&mut self, index: usize, item: &Value, code: &'static str, message: String) {
        let id = item.get("id").and_then(Value::as_str).map(str::to_owned);
        self.rejected.push(RejectedEvent { index, id, code, message });
    }

    pub fn stored(&mut self, new: bool) {
        if new {
            self.accepted += 1;
        } else {
            self.duplicates += 1;
        }
    }

    /// 200 with the counts, or 422 when nothing was stored: the event's own refusal, or for a
    /// batch every refusal by index.
    pub fn answer(mut self, batch: bool) -> Result<Response> {
        self.rejected.sort_by_key(|r| r.index);
        if self.accepted + self.duplicates > 0 || self.rejected.is_empty() {
            return Ok(axum::Json(self).into_response());
        }
        if !batch && let Some(only) = self.rejected.pop() {
            return Err(ApiError::rule(Rule::Invalid, only.code, only.message));
        }
        const SHOWN: usize = 10;
        let total = self.rejected.len();
        let mut reasons: Vec<String> =
            self.rejected.iter().take(SHOWN).map(|r| format!("event {}: {}", r.index, r.message)).collect();
        if total > SHOWN {
            reasons.push(format!("and {} more", total - SHOWN));
        }
        Err(ApiError::rule(
            Rule::Invalid,
            "invalid_events",
            format!("none of the {total} events was stored: {}", reasons.join("; ")),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_body_is_one_event_or_a_bounded_batch() {
        assert!(!events(br#"{"id":"a"}"#, None).expect("one").1, "one event, not a batch");
        assert_eq!(events(br#"[{"id":"a"},{"id":"b"}]"#, None).expect("batch").0.len(), 2);
        assert!(events(br#"{"id":"a"}"#, Some(true)).is_err(), "a batch content type needs an array");
        assert!(events(br#"[]"#, Some(false)).is_err(), "a single-event content type needs an object");
        let huge = serde_json::to_vec(&vec![json!({}); MAX_BATCH + 1]).expect("json");
        assert!(events(&huge, None).expect_err("too many").to_string().contains("at most 1000"));
    }

    #[test]
    fn nothing_stored_is_a_422_naming_each_refusal() {
        let mut single = IngestResult::default();
        single.refuse(0, &json!({"id": "x"}), "too_old", "too old".into());
        let error = single.answer(false).expect_err("422");
        assert!(matches!(error, ApiError::Rule { code: "too_old", .. }), "{error:?}");
        let mut batch = IngestResult::default();
        for i in 0..12 {
            batch.refuse(i, &json!(7), "invalid_event", format!("bad {i}"));
        }
        let error = batch.answer(true).expect_err("422").to_string();
        assert!(error.starts_with("none of the 12 events was stored: event 0: bad 0;"), "{error}");
        assert!(error.ends_with("and 2 more"), "{error}");
        let mut partly = IngestResult::default();
        partly.refuse(1, &json!({}), "invalid_event", "bad".into());
        partly.stored(true);
        assert!(partly.answer(true).is_ok());
    }
}
