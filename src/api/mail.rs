//! `GET /v1/mail/outbox` (operators): the mail outbox with the text of undelivered mail, as
//! `gatehouse mail list --server` shows it, for operators who cannot reach the database.

use axum::Json;
use axum::extract::{Query, State};
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::caller::Caller;
use super::{ApiError, AppState, Result};
use crate::audit::Target;
use crate::authz::{Action, Resource};
use crate::store;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(outbox))
}

#[derive(Deserialize)]
struct Filter {
    /// Only mail to this address.
    to: Option<String>,
    /// Also delivered and abandoned mail.
    #[serde(default)]
    all: bool,
    limit: Option<i64>,
}

#[utoipa::path(
    get,
    path = "/v1/mail/outbox",
    tag = "operator",
    security(("operator" = ["operator"])),
    params(("to" = Option<String>, Query, description = "Only mail to this address."), ("all" = Option<bool>, Query, description = "Also delivered and abandoned mail."), ("limit" = Option<i64>, Query, minimum = 1, maximum = 1000, description = "At most this many (default 20).")),
    responses((status = 200, description = "The mail, newest first.", body = Outbox)),
)]
async fn outbox(
    State(state): State<AppState>,
    caller: Caller,
    filter: std::result::Result<Query<Filter>, axum::extract::rejection::QueryRejection>,
) -> Result<Response> {
    caller.authorize(&state, Action::ReadOutbox, &Resource::platform("the mail outbox"))?;
    let Query(filter) = filter?;
    let limit = filter.limit.unwrap_or(20);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::BadRequest("limit must be from 1 to 1000".into()));
    }
    let to = filter.to.as_deref().map(|to| super::input::lookup("query parameter `to`", to)).transpose()?;
    let to = to.map(str::to_lowercase);
    let rows = store::mail::list(&state.pool, to.as_deref(), !filter.all, limit).await?;
    // Undelivered mail carries credentials (links): who read it is on the record.
    let details = json!({ "to": to, "all": filter.all, "rows": rows.len() });
    caller.record(&state, "mail.outbox.read", Target::platform("mail/outbox"), details).await?;
    // Undelivered mail carries its links, which are credentials: never cached.
    Ok(super::auth::no_store(Json(Outbox { mail: crate::mail::listing(&state.identity.keyring, rows) })))
}

/// The mail outbox.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(super) struct Outbox {
    mail: Vec<crate::mail::ListedMail>,
}
