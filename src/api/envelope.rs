//! The outermost layer (issue 11.7, 11.10): every response leaves with
//! `X-Content-Type-Options: nosniff`, and every error in the one envelope
//! `{"error":{"code","message"}}`, whatever produced it: a handler, one of axum's extractor
//! rejections (a path that is not UTF-8, a query that does not parse, a body over the limit), or
//! this layer's own limits on the request target and headers.
//!
//! A handler that panics is answered too: a 500 in the envelope, logged, instead of a connection
//! closed without a word.
//!
//! Those limits sit below hyper's own (a request target of 64 KB, 100 headers, about 400 KB of
//! request head): past them hyper answers 414, 431 or 400 itself, before any of our code runs, with
//! the right status and an empty body.

use std::panic::AssertUnwindSafe;

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt;
use serde_json::json;
use tracing::Instrument as _;

/// The largest body of a JSON or form route. The webhook route sets its own.
pub(crate) const BODY_LIMIT: usize = 1024 * 1024;
/// The longest request target (path and query) read.
const MAX_TARGET: usize = 16 * 1024;
/// The most header bytes (names and values) read.
const MAX_HEADER_BYTES: usize = 32 * 1024;
/// The most of a rejection's plain-text body read, and quoted as the message.
const MAX_READ: usize = 64 * 1024;
const MAX_QUOTED_CHARS: usize = 320;

pub(crate) async fn layer(request: Request, next: Next) -> Response {
    let span = request_span(&request);
    let response = match oversized(&request) {
        Some(refusal) => refusal,
        // Nothing is shared across the unwind but what a handler owned: it is dropped with it.
        None => match AssertUnwindSafe(next.run(request).instrument(span.clone())).catch_unwind().await {
            Ok(response) => response,
            Err(_) => {
                tracing::error!(parent: &span, "a request handler panicked");
                envelope(StatusCode::INTERNAL_SERVER_ERROR, "internal error".into())
            }
        },
    };
    span.record("http.response.status_code", i64::from(response.status().as_u16()));
    // An access log line, inside the span (so with its trace id), when spans are exported or
    // `RUST_LOG=gatehouse::request=debug` asks for it.
    tracing::debug!(target: "gatehouse::request", parent: &span, status = response.status().as_u16(), "answered");
    let mut response = if needs_envelope(&response) { into_envelope(response).await } else { response };
    response.headers_mut().insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

/// The span of one request (issue 22.7): method and route now, the status when it is answered, the
/// tenant and the caller's kind when the handler learns them (`Caller`). `debug`, under its own
/// target: it exists only when spans are exported (`traces`), and then the request's log lines
/// carry it, its trace id included.
fn request_span(request: &Request) -> tracing::Span {
    let route = request.extensions().get::<axum::extract::MatchedPath>().map_or("", |p| p.as_str());
    let span = tracing::debug_span!(
        target: "gatehouse::request",
        "request",
        otel.name = %format_args!("{} {}", request.method(), if route.is_empty() { "unmatched" } else { route }),
        http.request.method = %request.method(),
        http.route = route,
        http.response.status_code = tracing::field::Empty,
        tenant = tracing::field::Empty,
        actor.kind = tracing::field::Empty,
        trace_id = tracing::field::Empty,
    );
    if !span.is_disabled()
        && let Some(id) = span.in_scope(crate::traces::current_trace_id)
    {
        span.record("trace_id", tracing::field::display(id));
    }
    span
}

fn oversized(request: &Request) -> Option<Response> {
    let target = request.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if target > MAX_TARGET {
        let message = format!("the request URI has {target} bytes; at most {MAX_TARGET} are read");
        return Some(envelope(StatusCode::URI_TOO_LONG, message));
    }
    let header_bytes: usize = request.headers().iter().map(|(name, value)| name.as_str().len() + value.len()).sum();
    if header_bytes > MAX_HEADER_BYTES {
        let message =
            format!("the request header fields have {header_bytes} bytes; at most {MAX_HEADER_BYTES} are read");
        return Some(envelope(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, message));
    }
    None
}

fn needs_envelope(response: &Response) -> bool {
    let status = response.status();
    let content_type = response.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    (status.is_client_error() || status.is_server_error())
        && !content_type.starts_with("application/json")
        // The two pages a mailed link opens answer their errors as pages, for the person reading them.
        && !content_type.starts_with("text/html")
}

/// The error's status and headers (`Allow`, `Retry-After`, …) with the envelope as its body; the
/// message is the original plain text (axum's rejections say what is wrong), bounded.
async fn into_envelope(response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    let status = parts.status;
    let text = axum::body::to_bytes(body, MAX_READ)
        .await
        .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_owned())
        .unwrap_or_default();
    let message = if status == StatusCode::SERVICE_UNAVAILABLE {
        "the service is unavailable; retry in a moment".to_owned()
    } else if status.is_server_error() {
        // 5xx are logged and answered generically: no internals in responses.
        tracing::error!(%status, body = %text, "request failed");
        "internal error".to_owned()
    } else if status == StatusCode::PAYLOAD_TOO_LARGE {
        format!("the request body is larger than this endpoint accepts ({BODY_LIMIT} bytes for JSON and forms)")
    } else if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_lowercase()
    } else {
        shown_text(&text)
    };
    let (json_parts, json_body) = envelope(status, message).into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    if let Some(content_type) = json_parts.headers.get(header::CONTENT_TYPE) {
        parts.headers.insert(header::CONTENT_TYPE, content_type.clone());
    }
    Response::from_parts(parts, json_body)
}

/// A rejection's text, with control characters escaped and cut to a few hundred characters (it may
/// quote what the client sent).
fn shown_text(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars().take(MAX_QUOTED_CHARS) {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    if text.chars().count() > MAX_QUOTED_CHARS {
        out.push('…');
    }
    out
}

/// The body every error has.
fn envelope(status: StatusCode, message: String) -> Response {
    let body = json!({ "error": { "code": code(status), "message": message } });
    (status, axum::Json(body)).into_response()
}

/// The envelope's `code` for a status no handler chose a code for: `internal` and `unavailable` as
/// `ApiError` says them, else the status's reason in snake case (`payload_too_large`).
fn code(status: StatusCode) -> String {
    match status {
        StatusCode::SERVICE_UNAVAILABLE => "unavailable".to_owned(),
        s if s.is_server_error() => "internal".to_owned(),
        s => s.canonical_reason().unwrap_or("error").to_lowercase().replace([' ', '-'], "_"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A response as a rejection or a fallback makes it.
    fn bare(status: StatusCode, content_type: Option<&'static str>, text: &'static str) -> Response {
        let mut response = Response::new(axum::body::Body::from(text));
        *response.status_mut() = status;
        if let Some(content_type) = content_type {
            response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        }
        response
    }

    async fn body_of(response: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("body");
        serde_json::from_slice(&bytes).expect("JSON")
    }

    #[tokio::test]
    async fn a_plain_text_rejection_gets_the_envelope_and_keeps_its_headers() {
        let mut rejection = bare(StatusCode::BAD_REQUEST, Some("text/plain; charset=utf-8"), "Invalid UTF-8 in `app`");
        rejection.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("3"));
        assert!(needs_envelope(&rejection));
        let response = into_envelope(rejection).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(response.headers().get(header::CONTENT_TYPE).map(|v| v.as_bytes()), Some(&b"application/json"[..]));
        assert_eq!(response.headers().get(header::RETRY_AFTER).map(|v| v.as_bytes()), Some(&b"3"[..]));
        let body = body_of(response).await;
        assert_eq!(body["error"]["code"], "bad_request");
        assert_eq!(body["error"]["message"], "Invalid UTF-8 in `app`");
    }

    #[tokio::test]
    async fn statuses_become_codes_and_5xx_say_nothing_of_internals() {
        let too_large = into_envelope(bare(StatusCode::PAYLOAD_TOO_LARGE, None, "length limit exceeded")).await;
        assert_eq!(body_of(too_large).await["error"]["code"], "payload_too_large");
        let empty = body_of(into_envelope(bare(StatusCode::URI_TOO_LONG, None, "")).await).await;
        assert_eq!(
            (empty["error"]["code"].as_str(), empty["error"]["message"].as_str()),
            (Some("uri_too_long"), Some("uri too long"))
        );
        let internal = body_of(into_envelope(bare(StatusCode::INTERNAL_SERVER_ERROR, None, "stack trace")).await).await;
        assert_eq!(
            (internal["error"]["code"].as_str(), internal["error"]["message"].as_str()),
            (Some("internal"), Some("internal error"))
        );
    }

    async fn panics() -> &'static str {
        panic!("a bug in a handler")
    }

    /// The layer around a router with a route that panics, one that answers plain text, and one
    /// that is fine.
    async fn through_the_layer(request: axum::http::Request<axum::body::Body>) -> Response {
        use tower::ServiceExt;
        let router = axum::Router::new()
            .route("/panics", axum::routing::get(panics))
            .route("/plain", axum::routing::get(|| async { (StatusCode::CONFLICT, "taken") }))
            .route("/fine", axum::routing::get(|| async { "ok" }))
            .layer(axum::middleware::from_fn(layer));
        router.oneshot(request).await.expect("infallible")
    }

    fn get(uri: &str) -> axum::http::Request<axum::body::Body> {
        axum::http::Request::get(uri).body(axum::body::Body::empty()).expect("request")
    }

    #[tokio::test]
    async fn a_panicking_handler_is_answered_with_a_500_in_the_envelope() {
        let response = through_the_layer(get("/panics")).await;
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(response.headers().get(header::X_CONTENT_TYPE_OPTIONS).map(|v| v.as_bytes()), Some(&b"nosniff"[..]));
        assert_eq!(body_of(response).await["error"]["code"], "internal");
    }

    #[tokio::test]
    async fn every_response_says_nosniff_and_every_error_has_the_envelope() {
        let fine = through_the_layer(get("/fine")).await;
        assert_eq!(fine.headers().get(header::X_CONTENT_TYPE_OPTIONS).map(|v| v.as_bytes()), Some(&b"nosniff"[..]));
        let plain = body_of(through_the_layer(get("/plain")).await).await;
        assert_eq!(
            (plain["error"]["code"].as_str(), plain["error"]["message"].as_str()),
            (Some("conflict"), Some("taken"))
        );
        let missing = through_the_layer(get("/nope")).await;
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        assert_eq!(body_of(missing).await["error"]["code"], "not_found");
    }

    #[tokio::test]
    async fn an_oversize_uri_or_header_section_is_refused_in_the_envelope() {
        let long = through_the_layer(get(&format!("/fine?q={}", "a".repeat(MAX_TARGET)))).await;
        assert_eq!(long.status(), StatusCode::URI_TOO_LONG);
        assert_eq!(body_of(long).await["error"]["code"], "uri_too_long");
        let mut request = get("/fine");
        request.headers_mut().insert("x-filler", HeaderValue::from_str(&"a".repeat(MAX_HEADER_BYTES)).expect("value"));
        let large = through_the_layer(request).await;
        assert_eq!(large.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        assert_eq!(body_of(large).await["error"]["code"], "request_header_fields_too_large");
    }

    #[test]
    fn json_errors_html_pages_and_successes_are_left_alone() {
        assert!(!needs_envelope(&bare(StatusCode::NOT_FOUND, Some("application/json"), "{}")));
        assert!(!needs_envelope(&bare(StatusCode::BAD_REQUEST, Some("text/html; charset=utf-8"), "<p>")));
        assert!(!needs_envelope(&bare(StatusCode::OK, Some("text/plain"), "ok")));
        assert!(!needs_envelope(&bare(StatusCode::NOT_MODIFIED, None, "")));
    }

    #[test]
    fn a_quoted_rejection_is_escaped_and_bounded() {
        let quoted = shown_text(&format!("Failed to deserialize: {}\0", "x".repeat(10_000)));
        assert!(quoted.chars().count() < 400 && quoted.ends_with('…'), "{quoted}");
        assert_eq!(shown_text("a\0b"), "a\\u{0}b");
    }
}
