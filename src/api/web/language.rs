//! The language switch of every page: a plain link that remembers the choice in a cookie and
//! comes back to the page it was clicked on.

use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::i18n::{LANGUAGE_COOKIE, Lang};
use crate::api::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(switch_language))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct Switch {
    /// `en` or `de`.
    lang: Option<String>,
    /// A path on this server to go back to.
    return_to: Option<String>,
}

/// How long the choice is remembered: a year.
const REMEMBERED_SECONDS: u64 = 365 * 24 * 3600;

/// Switches the pages' language (English or German) and goes back.
#[utoipa::path(get, path = "/language", tag = "public", params(Switch),
    responses((status = 303, description = "Back to `return_to` (or the login page), the choice remembered.")))]
async fn switch_language(
    State(state): State<AppState>,
    parts: axum::http::request::Parts,
    query: Result<Query<Switch>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let (lang, return_to) = query.map(|Query(q)| (q.lang, q.return_to)).unwrap_or_default();
    let back = crate::api::login::safe_return(return_to.as_deref());
    let mut response = Redirect::to(&back).into_response();
    if let Some(lang) = lang.as_deref().and_then(Lang::parse) {
        let cookie =
            super::cookies::set(LANGUAGE_COOKIE, lang.tag(), super::is_https(&state), Some(REMEMBERED_SECONDS));
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
        // A signed-in user's mail follows the pages' language from now on, when the switch was
        // clicked on one of Gatehouse's own pages (or typed): a link on another site, which a
        // browser marks `Sec-Fetch-Site: cross-site`, changes only the cookie.
        let own = parts
            .headers
            .get("sec-fetch-site")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|site| site == "same-origin" || site == "none");
        if own && let Some(session) = crate::api::login::browser_session(&state, &parts).await {
            let remembered = async {
                let mut conn = state.pool.acquire().await?;
                crate::store::users::set_language(&mut conn, session.user_id, lang.tag()).await
            };
            if let Err(error) = remembered.await {
                tracing::warn!(%error, "cannot remember a user's language");
            }
        }
    }
    response
}
