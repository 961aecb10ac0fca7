//! `GET /v1/platform` (operators and auditors): the replicas running and which one leads the
//! reconciler, and what waits in the mail and webhook outboxes, as the operator console's platform
//! page shows them.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::caller::Caller;
use super::{AppState, Result};
use crate::authz::{Action, Resource};
use crate::store::{self, status};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(platform))
}

/// The replicas and the outboxes.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct PlatformStatus {
    /// The replica that runs the reconciler now.
    pub leader: Option<String>,
    /// Every replica seen in the last day, the most recently started first.
    #[schema(value_type = Vec<Object>)]
    pub replicas: Vec<status::Replica>,
    /// What waits in the mail and webhook outboxes; `null` unless the caller may read the outbox
    /// (operators).
    #[schema(value_type = Option<Object>)]
    pub outboxes: Option<status::Outboxes>,
}

#[utoipa::path(
    get,
    path = "/v1/platform",
    tag = "operator",
    security(("operator" = ["operator", "auditor"])),
    responses((status = 200, description = "The replicas (name, address, version, started, last seen), the reconciler's leader, and (operators) the mail and webhook outboxes' waiting and failed counts.", body = PlatformStatus)),
)]
async fn platform(State(state): State<AppState>, caller: Caller) -> Result<Json<PlatformStatus>> {
    Ok(Json(platform_status(&state, &caller).await?))
}

/// The replicas, the leader and the outboxes.
pub(super) async fn platform_status(state: &AppState, caller: &Caller) -> Result<PlatformStatus> {
    caller.authorize(state, Action::ReadSync, &Resource::platform("the platform's status"))?;
    let mut conn = state.pool.acquire().await.map_err(store::StoreError::from)?;
    let leader = status::sync_state(&mut conn).await?.leader;
    let replicas = status::replicas(&mut conn).await?;
    let outboxes = match caller.may(Action::ReadOutbox, &Resource::platform("the mail outbox")) {
        true => Some(status::outboxes(&mut conn).await?),
        false => None,
    };
    Ok(PlatformStatus { leader, replicas, outboxes })
}
