//! `POST /v1/hooks/git`: a push webhook from GitHub (`X-Hub-Signature-256`, HMAC-SHA256 of the body)
//! or GitLab (`X-Gitlab-Token`) that makes the leader fetch at once, whichever replica receives it.

use axum::Json;
use axum::body::Body;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use futures_util::StreamExt as _;
use hmac::{Hmac, Mac};
use sha2::{Digest as _, Sha256};
use std::net::SocketAddr;
use std::time::Duration;
use utoipa_axum::{router::OpenApiRouter, routes};

use tokio::sync::Semaphore;

use super::{ApiError, AppState, Result};
use crate::denials::{DenialLog, Refusal};
use crate::secret::Secret;
use crate::store;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(git_webhook))
}

/// Largest webhook body read. GitHub caps push payloads at 25 MB, but a config repository's pushes
/// are small (the payload lists commits and file names, not contents), so 5 MiB is ample; anything
/// larger is refused, before it is read when its length is announced.
const MAX_BODY: u64 = 5 * 1024 * 1024;

/// Webhook bodies read at once. Checking a signature streams the body through the HMAC, so nothing
/// is held in memory; this bounds the time and connections a flood of signed-looking posts can take.
/// A post that finds every slot taken is answered 503 at once rather than queued: senders retry.
static READING: Semaphore = Semaphore::const_new(4);

/// Longest a body may take to arrive: a slow sender cannot hold a reading slot for long.
const READ_DEADLINE: Duration = Duration::from_secs(10);

/// Everything that can be refused is refused before the body is read: no secret configured, no
/// signature or token, a wrong GitLab token (which does not depend on the body), a malformed
/// signature, an announced length over the limit. Only then is the body read, streamed and at most
/// `MAX_BODY` bytes of it: for the signature and the digest that recognises a replay.
#[utoipa::path(
    post,
    path = "/v1/hooks/git",
    tag = "public",
    security((), ("githubSignature" = []), ("gitlabToken" = [])),
    params(("X-GitHub-Delivery" = Option<String>, Header, description = "GitHub's delivery id: a repeated delivery is answered once."), ("X-Gitlab-Event-UUID" = Option<String>, Header, description = "GitLab's event id: a repeated delivery is answered once.")),
    request_body(content = serde_json::Value, content_type = "application/json", description = "The push event of GitHub or GitLab; only its signature is read."),
    responses((status = 200, description = "A delivery already seen: `duplicate`.", body = WebhookAnswer), (status = 202, description = "A reconcile pass is requested: `accepted`.", body = WebhookAnswer)),
)]
async fn git_webhook(State(state): State<AppState>, request: Request) -> Result<(StatusCode, Json<WebhookAnswer>)> {
    let denied = Denied::of(&request);
    let (parts, body) = request.into_parts();
    let digest = match verified_digest(state.webhook_secret.as_ref(), &parts.headers, body).await? {
        Verified::Digest(digest) => digest,
        Verified::Refused(reason) => return Err(deny(&state.denials, denied, reason)),
    };
    if !store::remember_delivery_and_wake(&state.pool, &delivery_keys(&parts.headers, &digest)).await? {
        // A redelivery or a replay: acknowledged, so the sender stops retrying, but no pass.
        return Ok((StatusCode::OK, Json(WebhookAnswer { status: "duplicate" })));
    }
    Ok((StatusCode::ACCEPTED, Json(WebhookAnswer { status: "accepted" })))
}

/// What became of a push webhook.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct WebhookAnswer {
    /// `accepted` (a pass is requested) or `duplicate` (a redelivery or replay: no pass).
    #[schema(example = "accepted")]
    status: &'static str,
}

enum Verified {
    /// The SHA-256 of a body whose signature or token is right.
    Digest(Vec<u8>),
    /// Why the request is refused (401, audited).
    Refused(&'static str),
}

/// Checks the signature (GitHub) or token (GitLab), reading the body only when it must.
async fn verified_digest(secret: Option<&Secret>, headers: &HeaderMap, body: Body) -> Result<Verified> {
    let Some(secret) = secret else {
        return Ok(Verified::Refused("webhooks are disabled: set GATEHOUSE_WEBHOOK_SECRET"));
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (expected, mac) = match (header("x-hub-signature-256"), header("x-gitlab-token")) {
        (Some(signature), _) => match announced(signature) {
            Some(expected) => (Some(expected), hmac_of(secret)),
            None => return Ok(Verified::Refused("malformed webhook signature")),
        },
        (None, Some(token)) if secret_matches(Some(secret), Some(token)) => (None, None),
        (None, Some(_)) => return Ok(Verified::Refused("wrong webhook token")),
        (None, None) => {
            return Ok(Verified::Refused(
                "a webhook signature (X-Hub-Signature-256) or token (X-Gitlab-Token) is required",
            ));
        }
    };
    if announced_length(headers).is_some_and(|length| length > MAX_BODY) {
        return Err(too_large());
    }
    let _reading = READING.try_acquire().map_err(|_| busy())?;
    let (digest, mac) = tokio::time::timeout(READ_DEADLINE, read_body(body, mac)).await.map_err(|_| {
        ApiError::Timeout(format!("the webhook body did not arrive within {} s", READ_DEADLINE.as_secs()))
    })??;
    let Some(expected) = expected else { return Ok(Verified::Digest(digest)) };
    // verify_slice compares in constant time.
    match mac.map(|mac| mac.verify_slice(&expected)) {
        Some(Ok(())) => Ok(Verified::Digest(digest)),
        _ => Ok(Verified::Refused("wrong webhook signature")),
    }
}

fn busy() -> ApiError {
    ApiError::Unavailable("too many webhook bodies are being read at once; retry in a moment".into())
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

/// Constant-time comparison of a presented secret with the expected one.
fn secret_matches(expected: Option<&Secret>, presented: Option<&str>) -> bool {
    match (expected, presented) {
        (Some(expected), Some(presented)) => expected.matches(presented),
        _ => false,
    }
}

/// What is recorded of a refused webhook: never the presented signature or token.
struct Denied {
    method: String,
    path: String,
    /// The route's template, under which repeated refusals are aggregated.
    route: Option<String>,
    ip: Option<String>,
}

impl Denied {
    fn of<B>(request: &axum::http::Request<B>) -> Self {
        Denied {
            method: request.method().to_string(),
            path: request.uri().path().to_owned(),
            route: request.extensions().get::<MatchedPath>().map(|m| m.as_str().to_owned()),
            ip: request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip().to_string()),
        }
    }
}

/// Audits a refused webhook (queued: never waits for the database) and returns the 401 to send.
/// A webhook proves a signature, not an identity: it is no `Actor`, so its refusals are its own.
fn deny(denials: &DenialLog, request: Denied, reason: &str) -> ApiError {
    denials.refused(Refusal {
        action: "api.denied",
        ip: request.ip,
        method: Some(request.method),
        route: request.route.unwrap_or_else(|| request.path.clone()),
        resource: request.path,
        tenant: None,
        reason: reason.to_owned(),
        key_id: None,
        extra: serde_json::Map::new(),
    });
    ApiError::Unauthorized(reason.to_owned())
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
