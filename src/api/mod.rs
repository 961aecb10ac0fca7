//! The HTTP API: a thin axum adapter over `store` and the reconciler's status. Handlers extract,
//! call one store function, respond; every error has the body `{"error":{"code","message"}}`.

mod app_auth;
mod apps;
mod auth;
mod error;
mod flags;
mod health;
mod hooks;
mod mail;
mod ofrep;
mod pages;
mod session_auth;
mod sync;
mod users;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use sqlx::PgPool;
use subtle::ConstantTimeEq;
use tokio_util::sync::CancellationToken;

pub use error::{ApiError, Result};

use crate::access::AccessCache;
use crate::identity::Identity;
use crate::source::Secret;
use crate::store::{self, AuditEntry};
use crate::telemetry::Metrics;

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub metrics: Arc<Metrics>,
    /// Bearer token of platform operators (until identity lands); `None` refuses every operator call.
    pub operator_token: Option<Secret>,
    /// Shared secret of Git webhooks; `None` refuses every webhook.
    pub webhook_secret: Option<Secret>,
    /// API keys, applications and resolved flags, in memory.
    pub access: Arc<AccessCache>,
    /// Tenant users' sign-in and sessions.
    pub identity: Identity,
}

/// The whole API, separate from serving it so tests can call it in-process.
pub fn app(state: AppState) -> Router {
    let operator = sync::router()
        .merge(apps::router())
        .merge(mail::router())
        .route_layer(middleware::from_fn_with_state(state.clone(), require_operator));
    Router::new()
        .merge(health::router())
        .merge(hooks::router())
        .merge(flags::router())
        .merge(ofrep::router())
        .merge(auth::router(&state))
        .merge(users::router())
        .merge(operator)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::NotFound(format!("no endpoint at {}", uri.path()))
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::MethodNotAllowed(format!("{method} is not allowed on {}", uri.path()))
}

/// Serves `app(state)` on `listener` until `shutdown`, finishing requests in flight.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let service = app(state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, service).with_graceful_shutdown(async move { shutdown.cancelled().await }).await
}

/// Parses a JSON body; unknown fields are refused so a typo is not silently ignored.
pub(crate) fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T> {
    serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(format!("invalid request body: {e}")))
}

/// Constant-time comparison of a presented secret with the expected one.
pub(crate) fn secret_matches(expected: Option<&Secret>, presented: Option<&str>) -> bool {
    match (expected, presented) {
        (Some(expected), Some(presented)) => bool::from(expected.expose().as_bytes().ct_eq(presented.as_bytes())),
        _ => false,
    }
}

async fn require_operator(State(state): State<AppState>, request: Request, next: Next) -> Result<Response> {
    let presented = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if secret_matches(state.operator_token.as_ref(), presented) {
        return Ok(next.run(request).await);
    }
    let reason = if state.operator_token.is_none() {
        "operator endpoints are disabled: set GATEHOUSE_OPERATOR_TOKEN"
    } else {
        "a valid operator token is required (Authorization: Bearer …)"
    };
    Err(deny(&state.pool, Denied::of(&request), reason).await)
}

/// What is recorded of a refused request: never the presented credential.
pub(crate) struct Denied {
    method: String,
    path: String,
    ip: Option<String>,
}

impl Denied {
    pub(crate) fn of<B>(request: &axum::http::Request<B>) -> Self {
        Denied {
            method: request.method().to_string(),
            path: request.uri().path().to_owned(),
            ip: request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip().to_string()),
        }
    }

    pub(crate) fn of_parts(parts: &axum::http::request::Parts) -> Self {
        Denied {
            method: parts.method.to_string(),
            path: parts.uri.path().to_owned(),
            ip: parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip().to_string()),
        }
    }
}

/// Audits a refused request and returns the 401 to send.
pub(crate) async fn deny(pool: &PgPool, request: Denied, reason: &str) -> ApiError {
    let entry = AuditEntry {
        actor: "anonymous".into(),
        actor_type: "anonymous",
        action: "api.denied".into(),
        resource: request.path,
        tenant: None,
        success: false,
        metadata: serde_json::json!({ "method": request.method, "ip": request.ip, "reason": reason }),
    };
    match pool.acquire().await {
        Ok(mut conn) => {
            if let Err(error) = store::insert_audit(&mut conn, &[entry]).await {
                tracing::warn!(%error, "cannot audit a denied request");
            }
        }
        Err(error) => tracing::warn!(%error, "cannot audit a denied request"),
    }
    ApiError::Unauthorized(reason.to_owned())
}
