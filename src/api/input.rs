//! Parsing at the edge (issue 11.6): path parameters, query cursors and body fields become typed
//! values here, so no handler sends a NUL byte, an oversize string or an overflowing date to
//! PostgreSQL. A refusal is a 400 that names the parameter or field and says what is wrong. A
//! malformed path parameter is a 400 as well, not a 404: it cannot name anything, and saying why
//! points at the typo.

use chrono::{DateTime, TimeDelta, Utc};

use super::{ApiError, Result};
use crate::model::{AppName, DisplayName, Email, KeyId, NameError, TenantName, shown};

fn in_path(parameter: &str, error: NameError) -> ApiError {
    ApiError::BadRequest(format!("path parameter `{parameter}`: {error}"))
}

fn in_field(field: &str, error: NameError) -> ApiError {
    ApiError::BadRequest(format!("{field}: {error}"))
}

/// `{tenant}` in a path.
pub(crate) fn tenant(value: &str) -> Result<TenantName> {
    TenantName::parse(value).map_err(|e| in_path("tenant", e))
}

/// `{app}` in a path.
pub(crate) fn app(value: &str) -> Result<AppName> {
    AppName::parse(value).map_err(|e| in_path("app", e))
}

/// `{key}` in a path.
pub(crate) fn key_id(value: &str) -> Result<KeyId> {
    KeyId::parse(value).map_err(|e| in_path("key", e))
}

/// `{email}` in a path.
pub(crate) fn path_email(value: &str) -> Result<Email> {
    Email::parse(value).map_err(|e| in_path("email", e))
}

/// An email address in the body's `field`.
pub(crate) fn email(field: &str, value: &str) -> Result<Email> {
    Email::parse(value).map_err(|e| in_field(field, e))
}

/// A name for people in the body's `field`.
pub(crate) fn display_name(field: &str, value: &str) -> Result<DisplayName> {
    DisplayName::parse(value).map_err(|e| in_field(field, e))
}

/// Longest name a status lookup or a cursor takes. The status table also lists tenants whose
/// declaration was refused, whose names need not be DNS labels: these are bounded text, not
/// `TenantName`s.
const MAX_LOOKUP_CHARS: usize = 253;

/// A name to look up or to page after (`place` says where it came from): at most 253 characters,
/// no control characters.
pub(crate) fn lookup<'a>(place: &str, value: &'a str) -> Result<&'a str> {
    if value.chars().count() > MAX_LOOKUP_CHARS || value.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(format!(
            "{place}: `{}` names nothing: names have at most {MAX_LOOKUP_CHARS} characters and no control characters",
            shown(value)
        )));
    }
    Ok(value)
}

/// Longest reason an operator gives for a decision (an allowed drift): a sentence or two.
const MAX_REASON_CHARS: usize = 500;

/// A reason in the body's `field`: not blank, at most 500 characters, no control characters.
pub(crate) fn reason<'a>(field: &str, text: &'a str) -> Result<&'a str> {
    let text = text.trim();
    if text.is_empty() {
        return Err(ApiError::BadRequest(format!("{field} is required: say why")));
    }
    if text.chars().count() > MAX_REASON_CHARS || text.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(format!(
            "{field}: `{}` is not a reason: at most {MAX_REASON_CHARS} characters, no control characters",
            shown(text)
        )));
    }
    Ok(text)
}

/// The longest time a request may ask for: a key's lifetime, a grace period.
const MAX_YEARS: i64 = 100;

fn max_span() -> TimeDelta {
    // 100 Julian years; `try_days` cannot fail here, the fallback only satisfies the type.
    TimeDelta::try_days(MAX_YEARS * 36525 / 100).unwrap_or(TimeDelta::MAX)
}

/// A duration such as `90d` or `12h` in the body's `field`, of at most 100 years.
pub(crate) fn duration(field: &str, text: &str) -> Result<TimeDelta> {
    let parsed = humantime::parse_duration(text).map_err(|e| {
        ApiError::BadRequest(format!("{field}: `{}` is not a duration such as 30d or 12h: {e}", shown(text)))
    })?;
    TimeDelta::from_std(parsed)
        .ok()
        .filter(|span| *span <= max_span())
        .ok_or_else(|| ApiError::BadRequest(format!("{field}: `{}` is longer than {MAX_YEARS} years", shown(text))))
}

/// Now plus a duration parsed by `duration` (named `field` in a refusal).
pub(crate) fn from_now(field: &str, span: TimeDelta) -> Result<DateTime<Utc>> {
    Utc::now()
        .checked_add_signed(span)
        .ok_or_else(|| ApiError::BadRequest(format!("{field}: the time it names is past the dates this server keeps")))
}

/// An expiry in the body's `field`: in the future, and at most 100 years away.
pub(crate) fn expiry(field: &str, at: DateTime<Utc>) -> Result<DateTime<Utc>> {
    let now = Utc::now();
    if at <= now {
        return Err(ApiError::BadRequest(format!("{field} is in the past")));
    }
    if now.checked_add_signed(max_span()).is_none_or(|latest| at > latest) {
        return Err(ApiError::BadRequest(format!("{field} is more than {MAX_YEARS} years away")));
    }
    Ok(at)
}

/// A text filter of a query: text PostgreSQL can compare (no control characters).
pub(crate) fn plain_text(name: &str, value: String) -> Result<String> {
    if value.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(format!("query parameter `{name}` holds a control character")));
    }
    Ok(value)
}

/// An RFC 3339 instant of a query.
pub(crate) fn instant(name: &str, value: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(value).map(|t| t.with_timezone(&Utc)).map_err(|e| {
        ApiError::BadRequest(format!("query parameter `{name}`: {value:?} is not an RFC 3339 instant ({e})"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(error: ApiError) -> String {
        error.to_string()
    }

    #[test]
    fn durations_past_a_hundred_years_are_refused_naming_the_field() {
        assert_eq!(duration("expiresIn", "90d").ok(), TimeDelta::try_days(90));
        for text in ["99999999999d", "101y", "9999999999999999999999d"] {
            let refused = message(duration("gracePeriod", text).expect_err(text));
            assert!(refused.starts_with("gracePeriod: "), "{refused}");
        }
        assert!(from_now("expiresIn", duration("expiresIn", "100y").expect("100 years")).is_ok());
    }

    #[test]
    fn an_expiry_is_in_the_future_and_within_a_hundred_years() {
        let now = Utc::now();
        assert!(expiry("expiresAt", now + TimeDelta::days(1)).is_ok());
        assert!(message(expiry("expiresAt", now - TimeDelta::days(1)).expect_err("past")).contains("past"));
        let far = DateTime::<Utc>::MAX_UTC;
        assert!(message(expiry("expiresAt", far).expect_err("far")).contains("100 years"));
    }

    #[test]
    fn a_malformed_path_parameter_is_named_in_the_refusal() {
        let refused = message(tenant("ac\0me").expect_err("NUL"));
        assert!(refused.starts_with("path parameter `tenant`: ") && refused.contains("ac\\u{0}me"), "{refused}");
        assert!(message(app(&"a".repeat(10_000)).expect_err("10 KB")).len() < 300, "the refusal quotes a bounded part");
        assert!(key_id(&crate::delivery::key::issue().key_id).is_ok(), "every issued key id parses");
        assert!(path_email("dan@acme.example").is_ok());
    }

    #[test]
    fn a_reason_is_a_bounded_line_of_text() {
        // Issue 15.6
        assert_eq!(
            reason("reason", "  incident 42: roles changed by hand  ").ok(),
            Some("incident 42: roles changed by hand")
        );
        assert!(message(reason("reason", " ").expect_err("blank")).starts_with("reason is required"));
        assert!(reason("reason", "a\0b").is_err());
        assert!(reason("reason", &"a".repeat(501)).is_err());
    }

    #[test]
    fn lookups_and_cursors_are_bounded_text_without_control_characters() {
        assert_eq!(lookup("after", "").ok(), Some(""));
        assert_eq!(lookup("after", "Acme_Corp").ok(), Some("Acme_Corp"), "a refused declaration's name");
        assert!(lookup("after", "a\0").is_err());
        assert!(lookup("after", &"a".repeat(254)).is_err());
    }
}
