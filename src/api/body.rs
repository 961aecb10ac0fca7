//! `JsonBody<T>`: a JSON request body, parsed with our error messages (unknown fields refused, so
//! a typo is not silently ignored). An empty body reads as `null`, so `JsonBody<Option<T>>` makes
//! the body optional.
//!
//! A body that does not parse is reported when the handler asks for it (`value()`), after it has
//! authorized the caller: whoever may not call a route learns that first, whatever they sent.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};

use super::ApiError;

pub struct JsonBody<T> {
    parsed: Result<T, ApiError>,
    raw: Bytes,
}

impl<T> JsonBody<T> {
    /// The parsed body, or the 400 saying what is wrong with it.
    pub fn value(self) -> Result<T, ApiError> {
        self.parsed
    }

    /// The body as it arrived, for `Idempotency-Key` to tell a retry from a different request.
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }
}

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let body = Bytes::from_request(request, state).await.map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge(rejection.body_text())
            } else {
                ApiError::BadRequest(format!("cannot read the request body: {}", rejection.body_text()))
            }
        })?;
        Ok(JsonBody { parsed: parse(&body), raw: body })
    }
}

/// Parses a JSON body; an empty one as `null`.
pub(crate) fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.is_empty() {
        return serde_json::from_slice(b"null")
            .map_err(|_| ApiError::BadRequest("invalid request body: it is empty; a JSON object is expected".into()));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(format!("invalid request body: {e}")))
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Login {
        #[allow(dead_code)]
        email: String,
    }

    #[test]
    fn empty_bodies_are_null_and_errors_say_what_is_wrong() {
        assert!(parse::<Option<Login>>(b"").expect("empty is none").is_none());
        let empty = parse::<Login>(b"").expect_err("a required body");
        assert!(empty.to_string().contains("it is empty"), "{empty}");
        let typo = parse::<Login>(br#"{"emial":"a"}"#).expect_err("unknown field");
        assert!(typo.to_string().contains("unknown field `emial`"), "{typo}");
    }
}
