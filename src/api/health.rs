//! Liveness, readiness and metrics.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{ApiError, AppState, Result};
use crate::store::status;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
        .routes(routes!(super::openapi::openapi_json))
}

/// The answer of `/healthz`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct Health {
    /// Always `ok`.
    #[schema(example = "ok")]
    status: &'static str,
}

/// The answer of `/readyz`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct Readiness {
    /// Always `ready`.
    #[schema(example = "ready")]
    status: &'static str,
    /// The platform's sync state: `Synced`, `OutOfSync`, `Drifted`, `Error`, `Paused` or `Unknown`.
    #[schema(example = "Synced")]
    sync: String,
}

/// The process is up.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "public",
    responses((status = 200, description = "The process is up.", body = Health)),
)]
async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// The database answers, a reconcile pass has completed and API keys are loaded.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "public",
    responses((status = 200, description = "Ready: the database answers, a pass has completed, keys are loaded.", body = Readiness), (status = 503, response = super::openapi::Failure)),
)]
async fn readyz(State(state): State<AppState>) -> Result<Json<Readiness>> {
    let check = async {
        let mut conn = state.pool.acquire().await.ok()?;
        status::sync_state(&mut conn).await.ok()
    };
    let sync = tokio::time::timeout(std::time::Duration::from_secs(1), check).await.ok().flatten();
    match sync {
        None => Err(ApiError::Unavailable("the database does not answer".into())),
        Some(sync) if sync.last_attempt_at.is_none() => {
            Err(ApiError::Unavailable("no reconcile pass has completed yet".into()))
        }
        Some(_) if !state.delivery.is_ready() => Err(ApiError::Unavailable("API keys are still loading".into())),
        Some(sync) => Ok(Json(Readiness { status: "ready", sync: sync.state })),
    }
}

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "public",
    responses((status = 200, description = "Prometheus metrics in the OpenMetrics text format.", body = String, content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8")),
)]
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], state.metrics.render())
}
