//! `POST /v1/hooks/git`: a push webhook from GitHub (`X-Hub-Signature-256`, HMAC-SHA256 of the body)
//! or GitLab (`X-Gitlab-Token`) that makes the leader fetch at once, whichever replica receives it.

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use super::{AppState, Denied, Result, deny, secret_matches};
use crate::store;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/hooks/git", post(git_webhook))
}

/// Largest webhook body accepted (GitHub caps payloads at 25 MB).
const MAX_BODY: usize = 25 * 1024 * 1024;

async fn git_webhook(State(state): State<AppState>, request: Request) -> Result<(StatusCode, Json<Value>)> {
    let denied = Denied::of(&request);
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, MAX_BODY).await.unwrap_or_default();
    if !is_signed(state.webhook_secret.as_ref(), &parts.headers, &body) {
        let reason = if state.webhook_secret.is_none() {
            "webhooks are disabled: set GATEHOUSE_WEBHOOK_SECRET"
        } else {
            "missing or wrong webhook signature"
        };
        return Err(deny(&state.pool, denied, reason).await);
    }
    if !store::remember_delivery(&state.pool, &delivery_keys(&parts.headers, &body)).await? {
        // A redelivery or a replay: acknowledged, so the sender stops retrying, but no pass.
        return Ok((StatusCode::OK, Json(json!({ "status": "duplicate" }))));
    }
    store::notify_sync(&state.pool).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "status": "accepted" }))))
}

/// What identifies a delivery: the provider's delivery id when it sends one, and always the digest
/// of the body, since GitHub's signature does not cover its delivery id header.
fn delivery_keys(headers: &HeaderMap, body: &[u8]) -> Vec<String> {
    use sha2::Digest as _;
    let mut keys = vec![format!("body:{}", hex::encode(Sha256::digest(body)))];
    for (header, provider) in [("x-github-delivery", "github"), ("x-gitlab-event-uuid", "gitlab")] {
        if let Some(id) = headers.get(header).and_then(|v| v.to_str().ok()) {
            // Bounded: the id is the sender's word, and the digest keeps it one short key.
            keys.push(format!("{provider}:{}", hex::encode(Sha256::digest(id.as_bytes()))));
        }
    }
    keys
}

fn is_signed(secret: Option<&crate::source::Secret>, headers: &HeaderMap, body: &Bytes) -> bool {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(signature) = header("x-hub-signature-256") {
        let (Some(secret), Some(hex)) = (secret, signature.strip_prefix("sha256=")) else { return false };
        let Ok(expected) = hex::decode(hex) else { return false };
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()) else { return false };
        mac.update(body);
        // verify_slice compares in constant time.
        return mac.verify_slice(&expected).is_ok();
    }
    secret_matches(secret, header("x-gitlab-token"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Secret;

    fn github_headers(signature: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-hub-signature-256", signature.parse().expect("header"));
        headers
    }

    #[test]
    fn a_github_signature_is_the_hmac_of_the_body() {
        // The example from GitHub's documentation on validating webhook deliveries.
        let secret = Secret::new("It's a Secret to Everybody".into());
        let body = Bytes::from_static(b"Hello, World!");
        let valid = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert!(is_signed(Some(&secret), &github_headers(valid), &body));
        assert!(!is_signed(Some(&secret), &github_headers(valid), &Bytes::from_static(b"Hello, World?")));
        assert!(!is_signed(Some(&Secret::new("other".into())), &github_headers(valid), &body));
        assert!(!is_signed(None, &github_headers(valid), &body));
        assert!(!is_signed(Some(&secret), &HeaderMap::new(), &body));
    }

    #[test]
    fn a_delivery_is_known_by_its_body_and_by_its_provider_id() {
        let mut headers = HeaderMap::new();
        assert_eq!(delivery_keys(&headers, b"{}").len(), 1);
        headers.insert("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958".parse().expect("header"));
        let keys = delivery_keys(&headers, b"{}");
        assert_eq!(keys.len(), 2);
        assert!(keys[1].starts_with("github:"));
        assert_ne!(delivery_keys(&headers, b"{}")[0], delivery_keys(&headers, b"{ }")[0]);
    }

    #[test]
    fn a_gitlab_token_must_equal_the_secret() {
        let secret = Secret::new("s3cret".into());
        let mut headers = HeaderMap::new();
        headers.insert("x-gitlab-token", "s3cret".parse().expect("header"));
        assert!(is_signed(Some(&secret), &headers, &Bytes::new()));
        headers.insert("x-gitlab-token", "s3cret!".parse().expect("header"));
        assert!(!is_signed(Some(&secret), &headers, &Bytes::new()));
    }
}
