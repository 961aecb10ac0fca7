//! The HTTP API: a thin axum adapter over `store` and the reconciler's status. Handlers extract,
//! call one store function, respond; every error has the body `{"error":{"code","message"}}`.

mod app_auth;
mod apps;
mod auth;
mod envelope;
mod error;
mod flags;
mod health;
mod hooks;
mod input;
mod mail;
mod ofrep;
pub mod openapi;
mod pages;
mod session_auth;
mod sync;
mod users;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use sqlx::PgPool;
use subtle::ConstantTimeEq;
use tokio_util::sync::CancellationToken;

pub use error::{ApiError, Result};

use crate::delivery::DeliveryCache;
use crate::denials::{DenialLog, Refusal};
use crate::identity::Identity;
use crate::secret::Secret;
use crate::telemetry::Metrics;

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub metrics: Arc<Metrics>,
    /// The bootstrap operator token (first set-up, break-glass); `None` refuses it.
    pub operator_token: Option<Secret>,
    /// Checks the bearer JWTs of operators and auditors from the external identity provider;
    /// `None` when none is configured.
    pub operators: Option<Arc<crate::operators::Verifier>>,
    /// Shared secret of Git webhooks; `None` refuses every webhook.
    pub webhook_secret: Option<Secret>,
    /// API keys, applications and resolved flags, in memory.
    pub delivery: Arc<DeliveryCache>,
    /// Tenant users' sign-in and sessions.
    pub identity: Identity,
    /// The audit rows of refused requests: queued, aggregated, written off the request path.
    pub denials: DenialLog,
}

/// The whole API, separate from serving it so tests can call it in-process.
pub fn app(state: AppState) -> Router {
    let operator = sync::router()
        .merge(apps::router())
        .merge(mail::router())
        .route_layer(middleware::from_fn_with_state(state.clone(), require_operator));
    // JSON and form bodies are bounded here; the webhook route bounds its own.
    let bounded = Router::new()
        .merge(health::router())
        .merge(flags::router())
        .merge(ofrep::router())
        .merge(auth::router(&state))
        .merge(users::router())
        .merge(operator)
        .layer(DefaultBodyLimit::max(envelope::BODY_LIMIT));
    Router::new()
        .merge(hooks::router())
        .merge(bounded)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        .layer(middleware::from_fn(envelope::layer))
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
    let signalled = shutdown.clone();
    let server = axum::serve(listener, service).with_graceful_shutdown(async move { signalled.cancelled().await });
    // Event streams never end by themselves, and a client may trickle a body: after the signal,
    // requests in flight get `DRAIN_DEADLINE`, so that what follows (writing queued audit rows)
    // still fits a container's grace period.
    tokio::select! {
        served = std::future::IntoFuture::into_future(server) => served,
        () = async { shutdown.cancelled().await; tokio::time::sleep(DRAIN_DEADLINE).await } => {
            tracing::warn!(seconds = DRAIN_DEADLINE.as_secs(), "requests still in flight after the drain deadline are cut");
            Ok(())
        }
    }
}

/// How long requests in flight may finish after SIGTERM.
const DRAIN_DEADLINE: std::time::Duration = std::time::Duration::from_secs(5);

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

async fn require_operator(State(state): State<AppState>, mut request: Request, next: Next) -> Result<Response> {
    let presented = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if secret_matches(state.operator_token.as_ref(), presented) {
        return Ok(next.run(request).await);
    }
    // A JWT from the identity provider (interim: the Actor extractor takes this over).
    if let (Some(verifier), Some(token)) = (state.operators.clone(), presented)
        && crate::operators::looks_like_jwt(token)
    {
        let token = token.to_owned();
        return match verifier.verify(&token).await {
            Ok(operator) if operator.role == crate::model::PlatformRole::Operator => {
                request.extensions_mut().insert(operator);
                Ok(next.run(request).await)
            }
            Ok(auditor) => {
                let message = format!(
                    "auditor {} may not {} {}: requires operator",
                    auditor.username,
                    request.method(),
                    request.uri().path()
                );
                state.denials.record(crate::store::AuditEntry {
                    actor: auditor.username.clone(),
                    // The audit log's actor types have no `auditor` yet: a platform person, role below.
                    actor_type: "operator",
                    action: "api.denied".into(),
                    resource: request.uri().path().to_owned(),
                    tenant: None,
                    success: false,
                    metadata: serde_json::json!({
                        "method": request.method().as_str(),
                        "reason": message,
                        "role": "auditor",
                        "issuer": auditor.issuer,
                        "subject": auditor.subject,
                    }),
                });
                Err(ApiError::Forbidden { code: "forbidden", message })
            }
            Err(refusal) => Err(deny(&state.denials, Denied::of(&request), &refusal.to_string())),
        };
    }
    let reason = match (&state.operator_token, &state.operators) {
        (None, None) => "operator endpoints are disabled: set --oidc-issuer-url or GATEHOUSE_OPERATOR_TOKEN",
        (_, Some(_)) => {
            "a token from the identity provider, or the operator token, is required (Authorization: Bearer …)"
        }
        (Some(_), None) => "a valid operator token is required (Authorization: Bearer …)",
    };
    Err(deny(&state.denials, Denied::of(&request), reason))
}

/// What is recorded of a refused request: never the presented credential.
pub(crate) struct Denied {
    method: String,
    path: String,
    /// The route's template, under which repeated refusals are aggregated.
    route: Option<String>,
    ip: Option<String>,
}

impl Denied {
    pub(crate) fn of<B>(request: &axum::http::Request<B>) -> Self {
        Self::from_head(request.method(), request.uri(), request.extensions())
    }

    pub(crate) fn of_parts(parts: &axum::http::request::Parts) -> Self {
        Self::from_head(&parts.method, &parts.uri, &parts.extensions)
    }

    fn from_head(method: &axum::http::Method, uri: &axum::http::Uri, extensions: &axum::http::Extensions) -> Self {
        Denied {
            method: method.to_string(),
            path: uri.path().to_owned(),
            route: extensions.get::<MatchedPath>().map(|m| m.as_str().to_owned()),
            ip: extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip().to_string()),
        }
    }
}

/// Audits a refused request (queued: never waits for the database) and returns the 401 to send.
pub(crate) fn deny(denials: &DenialLog, request: Denied, reason: &str) -> ApiError {
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
