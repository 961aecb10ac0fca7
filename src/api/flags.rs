//! Flag delivery to managed applications (FR-FLAG-002): a tenant's resolved flags with a strong ETag,
//! and a server-sent-events stream that says when to fetch them again. Served from memory.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use utoipa_axum::{router::OpenApiRouter, routes};

use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use tokio::sync::broadcast::error::RecvError;

use super::caller::Caller;
use super::{ApiError, AppState, Result};
use crate::authz::Action;
use crate::delivery::flags::{Rendered, TenantFlags, not_modified};
use crate::delivery::{DeliveryCache, Principal};

/// Clients may keep a copy but must revalidate it (cheaply, with `If-None-Match`) before each use:
/// a flag change is served within a second, so a copy is never trusted blindly.
const CACHE_CONTROL: HeaderValue = HeaderValue::from_static("private, no-cache");

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(tenant_flags)).routes(routes!(flag_events))
}

/// Lets the caller read the flags of `tenant` and returns them (served from memory).
pub(crate) fn readable(state: &AppState, caller: &Caller, tenant: &str) -> Result<Arc<TenantFlags>> {
    let (_, flags) = caller.authorize_tenant(state, Action::ReadFlags, "flags", tenant)?;
    // `authorize` lets an application read only a tenant it knows.
    flags.ok_or_else(|| ApiError::Internal(format!("tenant `{tenant}` was authorized but is not in memory")))
}

#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/flags",
    tag = "application",
    security(("apiKey" = ["flags:read"]), ("apiKeyHeader" = ["flags:read"])),
    params(("tenant" = String, Path, description = "The tenant's name.", pattern = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", example = "acme"), ("If-None-Match" = Option<String>, Header, description = "The ETag of a previous answer: 304 when nothing changed.")),
    responses((status = 200, description = "The tenant's resolved flags, with an ETag.", body = crate::delivery::flags::TenantFlagsBody), (status = 304, description = "Not modified since the given ETag.")),
)]
async fn tenant_flags(
    State(state): State<AppState>,
    caller: Caller,
    Path(tenant): Path<String>,
    request: Request,
) -> Result<Response> {
    let (parts, _) = request.into_parts();
    let flags = readable(&state, &caller, &tenant)?;
    Ok(conditional(&flags.rest, parts.headers.get(header::IF_NONE_MATCH)))
}

/// 304 when `If-None-Match` matches, else the body; both with the ETag and `Cache-Control`.
pub(crate) fn conditional(rendered: &Rendered, if_none_match: Option<&HeaderValue>) -> Response {
    let mut response = if not_modified(if_none_match, &rendered.etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut response = rendered.body.clone().into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        response
    };
    let headers = response.headers_mut();
    headers.insert(header::ETAG, rendered.etag.clone());
    headers.insert(header::CACHE_CONTROL, CACHE_CONTROL);
    response
}

/// `text/event-stream`: one event at once (the current version), then one per change of the
/// tenant's flags or status, in the OFREP event-stream format
/// (`{"type":"refetchEvaluation","etag":…}`). The stream ends when the key stops being valid.
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/flags/events",
    tag = "application",
    security(("apiKey" = ["flags:read"]), ("apiKeyHeader" = ["flags:read"])),
    params(("tenant" = String, Path, description = "The tenant's name.", pattern = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", example = "acme")),
    responses((status = 200, description = "Server-sent events: the tenant's flags now and on every change.", body = String, content_type = "text/event-stream")),
)]
async fn flag_events(State(state): State<AppState>, caller: Caller, Path(tenant): Path<String>) -> Result<Response> {
    let flags = readable(&state, &caller, &tenant)?;
    let principal = caller.principal()?.clone();
    let stream = events(state.delivery.clone(), principal, flags);
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response())
}

fn refetch_event(flags: &TenantFlags) -> Event {
    let data = serde_json::json!({
        "type": "refetchEvaluation",
        "etag": flags.ofrep_bulk.etag.to_str().unwrap_or_default(),
        "version": &*flags.version,
        "active": flags.active,
        "lastModified": crate::delivery::cache::now_secs(),
    });
    Event::default().id(&*flags.version).data(data.to_string())
}

fn events(
    cache: Arc<DeliveryCache>,
    principal: Principal,
    current: Arc<TenantFlags>,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let stream = EventStream {
        changes: cache.subscribe(),
        credentials: cache.watch_credentials(),
        expires: principal.key.expires_at().map(instant_at),
        name: current.name.as_ref().into(),
        key_id: principal.key.key_id.clone(),
        app: principal.app.name.clone(),
        cache,
    };
    futures_util::stream::unfold((stream, Some(current)), |(mut stream, first)| async move {
        let event = match first {
            Some(first) => first,
            None => stream.next_change().await?,
        };
        Some((Ok(refetch_event(&event)), (stream, None)))
    })
}

/// What one event stream waits on: its tenant's changes, and any change of keys or applications
/// (a revocation or a disabled application ends the stream at once), and its key's expiry.
struct EventStream {
    changes: tokio::sync::broadcast::Receiver<Arc<TenantFlags>>,
    credentials: tokio::sync::watch::Receiver<u64>,
    expires: Option<tokio::time::Instant>,
    name: Arc<str>,
    key_id: Box<str>,
    app: Box<str>,
    cache: Arc<DeliveryCache>,
}

impl EventStream {
    /// The tenant's next state to announce, or `None` when the stream must end.
    async fn next_change(&mut self) -> Option<Arc<TenantFlags>> {
        loop {
            tokio::select! {
                received = self.changes.recv() => {
                    let changed = match received {
                        Ok(changed) if *changed.name == *self.name => changed,
                        Ok(_) => continue,
                        // Missed some changes: whatever they were, the current state is what to announce.
                        Err(RecvError::Lagged(_)) => self.cache.tenant(&self.name)?,
                        Err(RecvError::Closed) => return None,
                    };
                    if !self.cache.key_still_valid(&self.key_id) || !changed.open_to(&self.app) {
                        return None;
                    }
                    return Some(changed);
                }
                changed = self.credentials.changed() => {
                    if changed.is_err() || !self.cache.key_still_valid(&self.key_id) {
                        return None;
                    }
                    // A rotation shortens the old key's life to its grace period.
                    self.expires = self.cache.key_expires_at(&self.key_id).map(instant_at);
                }
                () = sleep_until(self.expires) => return None,
            }
        }
    }
}

/// Sleeps until `at`, or forever.
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The monotonic instant of a Unix time in seconds (now, if it is past).
fn instant_at(unix_secs: i64) -> tokio::time::Instant {
    let from_now = u64::try_from(unix_secs - crate::delivery::cache::now_secs()).unwrap_or(0);
    tokio::time::Instant::now() + Duration::from_secs(from_now.min(100 * 365 * 24 * 3600))
}
