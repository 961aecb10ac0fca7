//! The HTTP API: a thin axum adapter over `store` and the reconciler's status. Handlers extract the
//! `Caller`, ask `authz` through `Caller::authorize`, call one store function, respond; every error
//! has the body `{"error":{"code","message"}}`.

mod apps;
mod audit;
mod auth;
mod body;
mod budget;
mod caller;
mod conditional;
mod console;
mod csv;
mod envelope;
mod error;
mod evaluation;
mod flags;
mod health;
mod hooks;
mod ingest;
mod input;
mod login;
mod mail;
mod ofrep;
mod oidc;
pub mod openapi;
mod overrides;
mod pages;
mod platform;
mod refusals;
mod sso;
mod sync;
mod tenants;
mod usage;
mod users;
mod web;
mod writeback;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use utoipa_axum::router::OpenApiRouter;

pub use caller::bootstrap_token_problem;
pub use error::{ApiError, Result};

use crate::delivery::DeliveryCache;
use crate::denials::DenialLog;
use crate::identity::Identity;
use crate::secret::Secret;
use crate::telemetry::Metrics;

/// What every handler reaches: one reference-counted pointer, so the per-request clones of axum's
/// `State` cost one atomic increment, not one per field (and no copy of the secrets).
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl AppState {
    pub fn new(services: Services) -> Self {
        AppState(Arc::new(services))
    }
}

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

pub struct Services {
    pub pool: PgPool,
    pub metrics: Arc<Metrics>,
    /// The bootstrap operator token (first set-up and break-glass; every use audited); `None`:
    /// operators sign in through the identity provider only.
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
    /// How long deleted tenants are kept before the purge, and their names after it.
    pub retention: TenantRetention,
    /// Every tenant's budget and usage this month, in memory.
    pub budgets: Arc<crate::budget::book::Book>,
    /// Where budget notices are sent as signed webhooks; `None`: mail only.
    pub budget_webhook: Option<crate::budget::notify::Webhook>,
    /// Gatehouse as the OpenID provider of managed applications.
    pub provider: crate::oidc::SharedProvider,
    /// Sign-in through tenants' own OpenID providers.
    pub sso: Arc<crate::sso::Sso>,
    /// Platform staff signed in in a browser; `None` without a client secret at their provider.
    pub staff: Option<Arc<crate::staff::Staff>>,
    /// The local folder of the config the reconciler applies, where the consoles find the line a
    /// resource is declared on.
    pub config_dir: Option<std::path::PathBuf>,
    /// Commits interactive changes of what Git declares (`interactiveEdits: writeBack`); `None`:
    /// such changes are refused.
    pub write_back: Option<Arc<crate::writeback::WriteBack>>,
}

/// Safe delete (issue 12.1): a deleted tenant is restorable for `restorable_for`, then purged; its
/// name stays reserved for `name_reserved_for` after the purge.
#[derive(Debug, Clone, Copy)]
pub struct TenantRetention {
    pub restorable_for: chrono::TimeDelta,
    pub name_reserved_for: chrono::TimeDelta,
}

impl Default for TenantRetention {
    fn default() -> Self {
        TenantRetention { restorable_for: chrono::TimeDelta::days(30), name_reserved_for: chrono::TimeDelta::days(90) }
    }
}

/// The whole API, separate from serving it so tests can call it in-process.
pub fn app(state: AppState) -> Router {
    let (router, _) = routes(Some(&state)).split_for_parts();
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        .layer(middleware::from_fn(envelope::layer))
}

/// Every route, each registered once with its `#[utoipa::path]` operation: the router serves
/// exactly what the OpenAPI document (`openapi::document`) describes, and the tests walk the same
/// list. `state` is `None` only for the document, which needs no per-IP limit (the one layer that
/// reads the state).
pub(crate) fn routes(state: Option<&AppState>) -> OpenApiRouter<AppState> {
    // JSON and form bodies are bounded here; the webhook route bounds its own.
    let bounded = OpenApiRouter::new()
        .merge(health::router())
        .merge(flags::router())
        .merge(ofrep::router())
        .merge(auth::router(state))
        .merge(audited_refusals(
            state,
            OpenApiRouter::new()
                .merge(tenants::router())
                .merge(overrides::router())
                .merge(users::router())
                .merge(sync::router())
                .merge(apps::router())
                .merge(sso::router())
                .merge(writeback::router())
                .merge(forms(state, pages_only(state, console::router()))),
        ))
        .merge(mail::router())
        .merge(platform::router())
        .merge(evaluation::router())
        .merge(usage::router())
        .merge(audit::router())
        .merge(budget::router())
        .merge(forms(state, login::router()))
        .merge(web::assets::router())
        .merge(web::language::router())
        .merge(oidc::router())
        .layer(DefaultBodyLimit::max(envelope::BODY_LIMIT));
    OpenApiRouter::with_openapi(openapi::base()).merge(hooks::router()).merge(bounded)
}

/// `routes` with their rule refusals audited (`refusals`); the document needs no state, nor this.
fn audited_refusals(state: Option<&AppState>, routes: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    match state {
        Some(state) => routes.route_layer(middleware::from_fn_with_state(state.clone(), refusals::layer)),
        None => routes,
    }
}

/// `routes` of pages whose errors are pages too (`web::pages_only`).
fn pages_only(state: Option<&AppState>, routes: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    match state {
        Some(state) => routes.route_layer(middleware::from_fn_with_state(state.clone(), web::pages_only)),
        None => routes,
    }
}

/// `routes` of pages whose form posts pass the one CSRF check (`web::csrf::layer`).
fn forms(state: Option<&AppState>, routes: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    match state {
        Some(state) => routes.route_layer(middleware::from_fn_with_state(state.clone(), web::csrf::layer)),
        None => routes,
    }
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
