//! The consoles (issue 23): server-rendered pages for a tenant's owners and admins (`tenant`) and
//! for platform operators and auditors (`platform`, signed in at their identity provider:
//! `staff`). A console handler is an adapter like a JSON handler: it turns the browser's session
//! into the same `Caller` a bearer token makes, calls the same functions (`users::Invite`,
//! `tenants::Provision`, …), which decide through the same `authorize` and leave the same audit
//! rows, and shows the outcome as a page in the browser's language. Every form posts through the
//! pages' CSRF layer.

mod apps;
mod audit;
mod overview;
mod platform;
mod sso;
pub(super) mod staff;
mod system;
mod tenant;

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::caller::Caller;
use super::refusals::Refused;
use super::web::templates::{self, Body};
use super::web::{Browser, Page, Tr};
use super::{ApiError, AppState};
use crate::model::{Role, SessionView};
use crate::store::staff::StaffSession;

/// The cookie of a platform session (operators and auditors in a browser).
pub const STAFF_COOKIE: &str = "gatehouse_staff";
/// Binds a staff sign-in at the identity provider to the browser that started it (ten minutes).
pub const STAFF_LOGIN_COOKIE: &str = "gatehouse_staff_login";

/// The console routes that need a signed-in browser (and the CSRF layer on their forms).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(landing))
        .merge(tenant::router())
        .merge(sso::router())
        .merge(overview::router())
        .merge(system::router())
        .merge(apps::router())
        .merge(platform::router())
        .merge(audit::router())
        .merge(staff::sign_out_router())
}

/// The staff sign-in routes: their callback is a navigation from the identity provider.
pub fn sign_in_router() -> OpenApiRouter<AppState> {
    staff::router()
}

/// Who a signed-in browser is.
pub(super) enum Who {
    /// A tenant user signed in at `/login`.
    Tenant(SessionView),
    /// An operator or auditor signed in at the identity provider.
    Staff(StaffSession),
}

/// A signed-in browser on a console page; anyone else is sent to sign in and comes back.
pub(super) struct Signed {
    pub state: AppState,
    pub caller: Caller,
    pub browser: Browser,
    pub who: Who,
}

impl FromRequestParts<AppState> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Signed, Response> {
        let browser = Browser::of(state, parts);
        if let Some((session, actor)) = staff::browser_session(state, parts).await {
            let caller = Caller::of_browser(parts, actor);
            return Ok(Signed { state: state.clone(), caller, browser, who: Who::Staff(session) });
        }
        let Some(session) = super::login::browser_session(state, parts).await.filter(|s| s.pending.is_none()) else {
            // A form posted after the session ended comes back to the start (its path may take
            // only posts); a page comes back to itself.
            let here = match parts.method {
                axum::http::Method::GET => parts.uri.path_and_query().map_or("/", |p| p.as_str()),
                _ => "/",
            };
            let back: String = url::form_urlencoded::byte_serialize(here.as_bytes()).collect();
            return Err(Redirect::to(&format!("/login?return_to={back}")).into_response());
        };
        let caller = Caller::of_browser(parts, crate::authz::Actor::User(session.clone()));
        Ok(Signed { state: state.clone(), caller, browser, who: Who::Tenant(session) })
    }
}

impl Signed {
    /// Who is signed in, as the navigation names them.
    fn name(&self) -> &str {
        match &self.who {
            Who::Tenant(session) => &session.email,
            Who::Staff(session) => &session.username,
        }
    }

    /// The console's navigation for who is signed in, `current` marked.
    pub fn nav(&self, current: &str) -> Vec<(String, String, bool)> {
        let tr = self.browser.tr;
        let links = match &self.who {
            Who::Tenant(session) => {
                let mut links = vec![
                    (tenant::users_path(&session.tenant), tr.t("console-users")),
                    (format!("{}/subscription", tenant::tenant_path(&session.tenant)), tr.t("console-subscription")),
                    (sso::sso_path(&session.tenant), tr.t("console-sso")),
                ];
                // A tenant's owners read its own audit trail in the auditor's screen.
                if session.role == Role::Owner {
                    links.push(("/console/audit".to_owned(), tr.t("console-audit")));
                }
                links.push(("/account".to_owned(), tr.t("account-title")));
                links
            }
            Who::Staff(_) => vec![
                ("/console".to_owned(), tr.t("console-tenants")),
                (system::PLATFORM_PATH.to_owned(), tr.t("console-platform")),
                (apps::APPS_PATH.to_owned(), tr.t("console-apps")),
                ("/console/audit".to_owned(), tr.t("console-audit")),
            ],
        };
        links.into_iter().map(|(href, label)| (href.clone(), label, href == current)).collect()
    }

    /// `page` in the console's frame (its navigation, `current` marked), rendered.
    pub fn render(&self, page: Page, current: &str) -> Response {
        let nav = templates::ConsoleNav {
            t: self.browser.tr,
            csrf: self.browser.csrf(),
            email: self.name(),
            sign_out: if matches!(self.who, Who::Staff(_)) { "/console/logout" } else { "/logout" },
            items: self.nav(current),
        }
        .html();
        self.browser.render(page.in_console(nav))
    }

    /// The page of an action refused or failed, with the status the JSON API would answer. The
    /// refusal is already audited (`authorize`), or marked for the refusals layer (a rule's).
    pub fn refused(&self, title: &str, error: &ApiError) -> Response {
        let (problem, status, refused) = self.problem_of(error);
        marked(self.render(self.browser.problem_page(title, &problem).status(status), ""), refused)
    }

    /// A form's first step, as the JSON API's: whoever may not act gets the refusal page (the
    /// decision audited) before anything of the form is read.
    pub fn refusal<T>(&self, title: &str, decided: Result<T, ApiError>) -> Option<Response> {
        decided.err().map(|error| self.refused(title, &error))
    }

    /// What a form's page shows of a refusal: the sentence, the status, and the mark of a rule's
    /// refusal that `marked` puts on the page's response.
    pub fn problem_of(&self, error: &ApiError) -> (String, StatusCode, Option<Refused>) {
        let shown = error.shown();
        (said(self.browser.tr, shown.code, &shown.message), shown.status, shown.refused)
    }
}

/// A tenant's month of usage against its limit and warning thresholds: a meter and its words.
pub(super) fn budget_picture(tr: Tr, budget: &crate::api::budget::BudgetView) -> String {
    let thresholds: Vec<i64> = budget.warn_at.iter().map(|t| i64::from(*t)).collect();
    let usage = budget.usage.to_string();
    let caption = match budget.limit {
        Some(limit) => {
            let share = format!("{:.1}", budget.usage as f64 * 100.0 / limit.max(1) as f64);
            let warn = thresholds.iter().map(|t| format!("{t} %")).collect::<Vec<_>>().join(", ");
            let words =
                tr.args("budget-picture-of", &[("usage", &usage), ("limit", &limit.to_string()), ("share", &share)]);
            if warn.is_empty() { words } else { format!("{words} {}", tr.arg("budget-picture-warn", "at", &warn)) }
        }
        None => tr.arg("budget-picture-unlimited", "usage", &usage),
    };
    let title = tr.t("budget-picture-title");
    crate::api::web::charts::usage_meter("budget-picture", &title, &caption, budget.usage, budget.limit, &thresholds)
}

/// `text` as one part of a URL's path or query.
pub(super) fn encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// Who manages a resource, in words: Git and its file, or the consoles and the API.
pub(super) fn managed(tr: Tr, managed_by: &str, file: Option<&str>) -> String {
    match (managed_by, file) {
        ("git", Some(file)) => tr.arg("managed-git-file", "file", file),
        ("git", None) => tr.t("managed-git"),
        _ => tr.t("managed-console"),
    }
}

/// Where Git declares `what` of `tenant`: its file and line (`tenants/acme.yaml:12`), or the file
/// alone when the line is not found; `None` for a tenant Git does not declare.
pub(super) fn declared_at(
    state: &AppState,
    record: &crate::store::tenants::TenantRecord,
    what: crate::config::declared::Declared<'_>,
) -> Option<String> {
    let file = record.source_file.as_deref().filter(|_| record.managed_by == "git")?;
    Some(crate::config::declared::file_and_line(state.config_dir.as_deref(), file, &record.name, what))
}

/// A time as the consoles show it, `—` for none.
pub(super) fn when(at: Option<chrono::DateTime<chrono::Utc>>) -> String {
    at.map_or_else(|| "—".to_owned(), |at| at.format("%Y-%m-%d %H:%M:%S UTC").to_string())
}

/// The start of a commit or version, `—` for none.
pub(super) fn short(commit: Option<&str>) -> String {
    commit.map_or_else(|| "—".to_owned(), |c| c.chars().take(12).collect())
}

/// `response` marked as a rule's refusal, if it is one, for the refusals layer to audit.
pub(super) fn marked(mut response: Response, refused: Option<Refused>) -> Response {
    if let Some(refused) = refused {
        response.extensions_mut().insert(refused);
    }
    response
}

/// Where a signed-in browser starts: operators and auditors in the platform console, a tenant's
/// owners and admins in their tenant's console, other users on their account page; a browser not
/// signed in at the login page.
#[utoipa::path(get, operation_id = "console_landing", path = "/", tag = "console",
    responses((status = 303, description = "To the console or page that fits who is signed in, or to the login page.")))]
async fn landing(signed: Signed) -> Response {
    start(&signed)
}

pub(super) fn start(signed: &Signed) -> Response {
    match &signed.who {
        Who::Staff(_) => Redirect::to("/console").into_response(),
        Who::Tenant(session) if matches!(session.role, Role::Owner | Role::Admin) => {
            Redirect::to(&tenant::users_path(&session.tenant)).into_response()
        }
        Who::Tenant(_) => Redirect::to("/account").into_response(),
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
        "tenant_exists" => tr.t("problem-tenant-exists"),
        "not_verified" => tr.t("problem-not-verified"),
        "not_tested" => tr.t("problem-not-tested"),
        "domain_taken" | "domain_in_use" => tr.t("problem-domain-taken"),
        "internal" => tr.t("failed-text"),
        "forbidden" if message.contains("a session of tenant") => tr.t("problem-other-tenant"),
        "forbidden" if message.contains("owners") => tr.t("problem-owners-only"),
        "forbidden" => tr.t("problem-not-allowed"),
        _ => message.to_owned(),
    }
}
