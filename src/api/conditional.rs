//! Retries and races on the admin API (issue 12.4): `If-Match` on every update (412 when the
//! resource changed since the caller read it) and `Idempotency-Key` on every create (a retry within
//! 24 hours gets the first answer; the same key with a different request is a 422).

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sha2::Digest;
use sqlx::PgConnection;

use super::caller::Caller;
use super::{ApiError, AppState, Result};
use crate::store::idempotency::{self, Claim, Claimed};
use crate::store::{Rule, StoreError};

/// Refuses the write when `If-Match` names none of the current representation's tags (`*` matches
/// any). Weak tags never match (RFC 9110 §13.1.1: strong comparison).
pub fn check_if_match(headers: &HeaderMap, current: &str) -> Result<()> {
    let Some(value) = headers.get(header::IF_MATCH) else { return Ok(()) };
    let value = value.to_str().map_err(|_| ApiError::BadRequest("If-Match: not a list of entity tags".into()))?;
    if value.trim() == "*" || value.split(',').map(str::trim).any(|tag| tag == current) {
        return Ok(());
    }
    Err(ApiError::rule(
        Rule::Stale,
        "stale",
        format!("it changed since you read it (If-Match: {value}; its ETag is now {current}): read it again and retry"),
    ))
}

/// A JSON answer with the ETag of its representation.
pub fn tagged(status: StatusCode, representation: &impl Serialize, etag: &str) -> Response {
    let mut response = (status, axum::Json(representation)).into_response();
    if let Ok(value) = HeaderValue::from_str(etag) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

const MAX_KEY_CHARS: usize = 255;

/// The `Idempotency-Key` of a request, if it carries one.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<&str>> {
    let Some(value) = headers.get("idempotency-key") else { return Ok(None) };
    let key = value.to_str().ok().map(str::trim).filter(|k| !k.is_empty() && k.len() <= MAX_KEY_CHARS);
    key.map(Some).ok_or_else(|| {
        ApiError::BadRequest(format!("Idempotency-Key: 1 to {MAX_KEY_CHARS} visible ASCII characters, such as a UUID"))
    })
}

/// Runs `create` in a transaction and answers 201 with what it made (and its ETag), honouring the
/// request's `Idempotency-Key`: a retry gets the first answer (`Idempotent-Replayed: true`), the same
/// key with another method, path or body a 422.
pub async fn create<T: Serialize>(
    state: &AppState,
    caller: &Caller,
    request: (&Method, &str, &HeaderMap, &[u8]),
    create: impl AsyncFnOnce(&mut PgConnection) -> Result<(T, String)>,
) -> Result<Response> {
    let (method, path, headers, body) = request;
    let key = idempotency_key(headers)?;
    let mut tx = state.pool.begin().await.map_err(StoreError::from)?;
    // What tells a retry from another request under the same key (computed only when there is one).
    let hash = key.map(|_| {
        let mut hasher = sha2::Sha256::new();
        for part in [method.as_str().as_bytes(), path.as_bytes(), body] {
            hasher.update((part.len() as u64).to_be_bytes());
            hasher.update(part);
        }
        hasher.finalize().to_vec()
    });
    let actor = format!("{}:{}", caller.actor.kind(), caller.actor.name());
    let claim = key.zip(hash.as_deref()).map(|(key, request_hash)| Claim { actor: &actor, key, request_hash });
    if let Some(claim) = &claim {
        match idempotency::claim(&mut tx, claim).await? {
            Claimed::New => {}
            Claimed::Replay { status, body } => {
                let status = StatusCode::from_u16(status).unwrap_or(StatusCode::CREATED);
                let mut response = (status, axum::Json(body)).into_response();
                response.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
                return Ok(response);
            }
            Claimed::Mismatch => {
                return Err(ApiError::rule(
                    Rule::Invalid,
                    "idempotency_key_reused",
                    "Idempotency-Key: this key was used within 24 hours for a different request; use a new key",
                ));
            }
        }
    }
    let (made, etag) = create(&mut tx).await?;
    let body = serde_json::to_value(&made).map_err(|e| ApiError::Internal(e.to_string()))?;
    if let Some(claim) = &claim {
        idempotency::answer(&mut tx, claim, StatusCode::CREATED.as_u16(), &body).await?;
    }
    tx.commit().await.map_err(StoreError::from)?;
    Ok(tagged(StatusCode::CREATED, &body, &etag))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(if_match: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::IF_MATCH, HeaderValue::from_str(if_match).expect("header"));
        headers
    }

    #[test]
    fn if_match_holds_for_the_current_tag_or_any_and_fails_for_stale_or_weak_ones() {
        assert!(check_if_match(&HeaderMap::new(), "\"a\"").is_ok());
        assert!(check_if_match(&headers("\"a\""), "\"a\"").is_ok());
        assert!(check_if_match(&headers("\"b\", \"a\""), "\"a\"").is_ok());
        assert!(check_if_match(&headers("*"), "\"a\"").is_ok());
        for stale in ["\"b\"", "W/\"a\"", "a"] {
            let refused = check_if_match(&headers(stale), "\"a\"").expect_err(stale);
            assert!(matches!(refused, ApiError::Rule { rule: Rule::Stale, code: "stale", .. }), "{refused:?}");
        }
    }
}
