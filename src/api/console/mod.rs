//! The consoles (issue 23): server-rendered pages for a tenant's owners and admins (`tenant`). A
//! console handler is an adapter like a JSON handler: it turns the browser's session into the same
//! `Caller` a bearer token makes, calls the same functions (`users::invite`, `users::update_user`,
//! …), which decide through the same `authorize` and leave the same audit rows, and shows the
//! outcome as a page in the browser's language. Every form posts through the pages' CSRF layer.

mod tenant;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use utoipa_axum::router::OpenApiRouter;

use super::caller::Caller;
use super::web::templates::{self, Body};
use super::web::{Browser, Page, Tr};
use super::{ApiError, AppState};
use crate::model::SessionView;

pub fn router() -> OpenApiRouter<AppState> {
    tenant::router()
}

/// A browser signed in at `/login` with a complete session, on a console page; anyone else is sent
/// to sign in and comes back.
pub(super) struct Signed {
    pub state: AppState,
    pub caller: Caller,
    pub browser: Browser,
    pub session: SessionView,
}

impl FromRequestParts<AppState> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Signed, Response> {
        let browser = Browser::of(state, parts);
        let Some(session) = super::login::browser_session(state, parts).await.filter(|s| s.pending.is_none()) else {
            let here = parts.uri.path_and_query().map_or("/", |p| p.as_str());
            let back: String = url::form_urlencoded::byte_serialize(here.as_bytes()).collect();
            return Err(Redirect::to(&format!("/login?return_to={back}")).into_response());
        };
        let caller = Caller::of_browser(parts, session.clone());
        Ok(Signed { state: state.clone(), caller, browser, session })
    }
}

impl Signed {
    /// `page` in the console's frame (its navigation), rendered.
    pub fn render(&self, page: Page, nav: Vec<(String, String, bool)>) -> Response {
        let nav = templates::ConsoleNav {
            t: self.browser.tr,
            csrf: self.browser.csrf(),
            email: &self.session.email,
            items: nav,
        }
        .html();
        self.browser.render(page.in_console(nav))
    }

    /// The page of an action refused or failed, with the status the JSON API would answer. The
    /// refusal is already audited (`authorize`), or marked for the refusals layer (a rule's).
    pub fn refused(&self, title: &str, error: &ApiError, nav: Vec<(String, String, bool)>) -> Response {
        let shown = error.shown();
        let problem = said(self.browser.tr, shown.code, &shown.message);
        let mut response = self.render(self.browser.problem_page(title, &problem).status(shown.status), nav);
        if let Some(refused) = shown.refused {
            response.extensions_mut().insert(refused);
        }
        response
    }
}

/// A refusal as a plain sentence in the page's language; the API's English message where no
/// sentence is written for its code yet.
pub(super) fn said(tr: Tr, code: &str, message: &str) -> String {
    match code {
        "last_owner" => tr.t("problem-last-owner"),
        "email_taken" => tr.t("problem-email-taken"),
        "email_unavailable" => tr.t("problem-email-unavailable"),
        "stale" => tr.t("problem-stale"),
        "not_invited" => tr.t("problem-not-invited"),
        "tenant_not_active" => tr.t("problem-tenant-not-active"),
        "internal" => tr.t("failed-text"),
        "forbidden" if message.contains("a session of tenant") => tr.t("problem-other-tenant"),
        "forbidden" if message.contains("owners") => tr.t("problem-owners-only"),
        _ => message.to_owned(),
    }
}
