//! `POST /v1/hooks/git`: a push webhook from GitHub (`X-Hub-Signature-256`, HMAC-SHA256 of the body)
//! or GitLab (`X-Gitlab-Token`) that makes the leader fetch at once, whichever replica receives it.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::post;
use axum::{Json, Router};
use futures_util::StreamExt as _;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use tokio::sync::Semaphore;

use super::{ApiError, AppState, Denied, Result, deny, secret_matches};
use crate::source::Secret;
use crate::store;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/hooks/git", post(git_webhook))
}

/// Largest webhook body read. GitHub caps push payloads at 25 MB, but a config repository's pushes
/// are small (the payload lists commits and file names, not contents), so 5 MiB is ample; anything
/// larger is refused, before it is read when its length is announced.
const MAX_BODY: u64 = 5 * 1024 * 1024;

/// Webhook bodies read at once. Checking a signature streams the body through the HMAC, so nothing
/// is held in memory; this bounds the time and connections a flood of signed-looking posts can take.
static READING: Semaphore = Semaphore::const_new(4);

/// Everything that can be refused is refused before the body is read: no secret configured, no
/// signature or token, a wrong GitLab token (which does not depend on the body), a malformed
/// signature, an announced length over the limit. Only then is the body read, streamed and at most
/// `MAX_BODY` bytes of it: for the signature and the digest that recognises a replay.
async fn git_webhook(State(state): State<AppState>, request: Request) -> Result<(StatusCode, Json<Value>)> {
    let denied = Denied::of(&request);
    let (parts, body) = request.into_parts();
    let refuse = |reason: &str| Err(deny(&state.denials, denied, reason));
    let Some(secret) = state.webhook_secret.as_ref() else {
        return refuse("webhooks are disabled: set GATEHOUSE_WEBHOOK_SECRET");
    };
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let digest = match (header("x-hub-signature-256"), header("x-gitlab-token")) {
        (Some(signature), _) => {
            let Some(expected) = announced(signature) else { return refuse("malformed webhook signature") };
            if announced_length(&parts.headers).is_some_and(|length| length > MAX_BODY) {
                return Err(too_large());
            }
            let _reading = READING.acquire().await.map_err(|_| ApiError::Unavailable("shutting down".into()))?;
            let (digest, mac) = read_body(body, hmac_of(secret)).await?;
            // verify_slice compares in constant time.
            if mac.is_none_or(|mac| mac.verify_slice(&expected).is_err()) {
                return refuse("wrong webhook signature");
            }
            digest
        }
        (None, Some(token)) => {
            if !secret_matches(Some(secret), Some(token)) {
                return refuse("wrong webhook token");
            }
            if announced_length(&parts.headers).is_some_and(|length| length > MAX_BODY) {
                return Err(too_large());
            }
            let _reading = READING.acquire().await.map_err(|_| ApiError::Unavailable("shutting down".into()))?;
            read_body(body, None).await?.0
        }
        (None, None) => {
            return refuse("a webhook signature (X-Hub-Signature-256) or token (X-Gitlab-Token) is required");
        }
    };
    if !store::remember_delivery(&state.pool, &delivery_keys(&parts.headers, &digest)).await? {
        // A redelivery or a replay: acknowledged, so the sender stops retrying, but no pass.
        return Ok((StatusCode::OK, Json(json!({ "status": "duplicate" }))));
    }
    store::notify_sync(&state.pool).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "status": "accepted" }))))
}

fn too_large() -> ApiError {
    ApiError::PayloadTooLarge(format!("a webhook body may be at most {MAX_BODY} bytes"))
}

fn announced_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// The HMAC-SHA256 a GitHub signature header (`sha256=<hex>`) announces, if it is well-formed.
fn announced(signature: &str) -> Option<Vec<u8>> {
    hex::decode(signature.strip_prefix("sha256=")?).ok().filter(|mac| mac.len() == 32)
}

/// The keyed MAC GitHub signs with (HMAC takes a key of any length, so this is always `Some`).
fn hmac_of(secret: &Secret) -> Option<Hmac<Sha256>> {
    <Hmac<Sha256> as Mac>::new_from_slice(secret.expose().as_bytes()).ok()
}

/// Reads `body` (at most `MAX_BODY` bytes, else 413) without holding it: its SHA-256 and, given a
/// keyed `mac`, the MAC of it too.
async fn read_body(body: Body, mut mac: Option<Hmac<Sha256>>) -> Result<(Vec<u8>, Option<Hmac<Sha256>>)> {
    let mut digest = Sha256::new();
    let mut chunks = body.into_data_stream();
    let mut read = 0u64;
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|e| ApiError::BadRequest(format!("cannot read the webhook body: {e}")))?;
        read += chunk.len() as u64;
        if read > MAX_BODY {
            return Err(too_large());
        }
        digest.update(&chunk);
        if let Some(mac) = &mut mac {
            mac.update(&chunk);
        }
    }
    Ok((digest.finalize().to_vec(), mac))
}

/// What identifies a delivery: the provider's delivery id when it sends one, and always the digest
/// of the body, since GitHub's signature does not cover its delivery id header.
fn delivery_keys(headers: &HeaderMap, body_digest: &[u8]) -> Vec<String> {
    let mut keys = vec![format!("body:{}", hex::encode(body_digest))];
    for (header, provider) in [("x-github-delivery", "github"), ("x-gitlab-event-uuid", "gitlab")] {
        if let Some(id) = headers.get(header).and_then(|v| v.to_str().ok()) {
            // Bounded: the id is the sender's word, and the digest keeps it one short key.
            keys.push(format!("{provider}:{}", hex::encode(Sha256::digest(id.as_bytes()))));
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(secret: &str, body: &'static [u8], signature: &str) -> bool {
        let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        let expected = announced(signature).expect("well-formed");
        let mac = hmac_of(&Secret::new(secret.into()));
        let (_, mac) = runtime.block_on(read_body(Body::from(body), mac)).expect("read");
        mac.expect("a MAC").verify_slice(&expected).is_ok()
    }

    #[test]
    fn a_github_signature_is_the_hmac_of_the_body() {
        // The example from GitHub's documentation on validating webhook deliveries.
        let secret = "It's a Secret to Everybody";
        let valid = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert!(signed(secret, b"Hello, World!", valid));
        assert!(!signed(secret, b"Hello, World?", valid));
        assert!(!signed("other", b"Hello, World!", valid));
        assert!(announced("757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17").is_none());
        assert!(announced("sha256=not-hex").is_none());
        assert!(announced("sha256=abcd").is_none(), "too short for a SHA-256");
    }

    #[test]
    fn a_body_over_the_limit_is_refused_while_it_is_read() {
        // Issue 11.4: a body without a Content-Length is cut at the limit, never held.
        let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        let chunk = axum::body::Bytes::from(vec![b'x'; 1024 * 1024]);
        let chunks = futures_util::stream::iter((0..6).map(move |_| Ok::<_, std::io::Error>(chunk.clone())));
        let result = runtime.block_on(read_body(Body::from_stream(chunks), None));
        assert!(matches!(result, Err(ApiError::PayloadTooLarge(_))));
    }

    #[test]
    fn a_delivery_is_known_by_its_body_and_by_its_provider_id() {
        let mut headers = HeaderMap::new();
        let digest = |body: &[u8]| Sha256::digest(body).to_vec();
        assert_eq!(delivery_keys(&headers, &digest(b"{}")).len(), 1);
        headers.insert("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958".parse().expect("header"));
        let keys = delivery_keys(&headers, &digest(b"{}"));
        assert_eq!(keys.len(), 2);
        assert!(keys[1].starts_with("github:"));
        assert_ne!(delivery_keys(&headers, &digest(b"{}"))[0], delivery_keys(&headers, &digest(b"{ }"))[0]);
    }
}
