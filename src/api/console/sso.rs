//! A tenant's single sign-on in its console (FR-AUTH-003, UC-TENANT-SSO): owners (and operators)
//! enter their identity provider, verify it (every problem in words), complete a test sign-in
//! that changes nothing, and activate it; admins read where it stands. The JSON API's functions
//! (`sso::set_sso`, `verify_sso`, …) decide and audit; a provider declared in Git is read-only here.

use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::Signed;
use super::tenant::{see_other, tenant_path};
use crate::api::sso::{self, SsoChange};
use crate::api::web::templates::{self, Body};
use crate::api::web::{Page, Tr};
use crate::api::{ApiError, AppState};
use crate::authz::Action;
use crate::config::declared::Declared;
use crate::store::sso::TenantIdp;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(sso_page, sso_form))
}

pub(super) fn sso_path(tenant: &str) -> String {
    format!("{}/sso", tenant_path(tenant))
}

#[derive(Deserialize, Default)]
struct SsoQuery {
    /// The action just done, to say so.
    done: Option<String>,
}

/// What a refused or verified form shows on the page it returns to.
#[derive(Default)]
struct Shown<'a> {
    /// The values typed, kept after a refusal.
    typed: Option<&'a SsoForm>,
    problem: Option<(String, StatusCode)>,
    /// The verification just run: passed, and each problem in words.
    verification: Option<(bool, Vec<String>)>,
    done: Option<String>,
}

/// The tenant's identity provider: where it stands, the steps to take, and the settings form.
#[utoipa::path(get, operation_id = "console_sso", path = "/admin/{tenant}/sso", tag = "console",
    params(("tenant" = String, Path, description = "The tenant's name.")),
    responses(
        (status = 200, description = "The page.", body = String, content_type = "text/html"),
        (status = 303, description = "Not signed in: to the login page."),
        (status = 403, description = "A page: not an owner or admin of this tenant (audited).", body = String, content_type = "text/html"),
    ))]
async fn sso_page(
    signed: Signed,
    Path(tenant): Path<String>,
    query: Result<Query<SsoQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let done = query.ok().and_then(|Query(q)| q.done).and_then(|d| done_message(signed.browser.tr, &d));
    page(&signed, &tenant, Shown { done, ..Shown::default() }).await
}

fn done_message(tr: Tr, action: &str) -> Option<String> {
    Some(match action {
        "save" => tr.t("sso-done-save"),
        "activate" => tr.t("sso-done-activate"),
        "remove" => tr.t("sso-done-remove"),
        _ => return None,
    })
}

fn state_label(tr: Tr, state: &str) -> String {
    match state {
        "draft" => tr.t("sso-state-draft"),
        "verified" => tr.t("sso-state-verified"),
        "tested" => tr.t("sso-state-tested"),
        "active" => tr.t("sso-state-active"),
        other => other.to_owned(),
    }
}

async fn page(signed: &Signed, tenant: &str, shown: Shown<'_>) -> Response {
    let tr = signed.browser.tr;
    let title = tr.t("console-sso");
    let idp = match sso::sso_of(&signed.state, &signed.caller, tenant).await {
        Ok(idp) => idp,
        Err(error) => return signed.refused(&title, &error),
    };
    let can_change = signed.caller.may_in_tenant(Action::UpdateTenant, tenant);
    let git = match idp.as_ref().filter(|i| i.managed_by == "git") {
        Some(_) => {
            let record = crate::api::users::tenant_record(&signed.state, tenant).await.ok();
            let at = record.and_then(|t| super::declared_at(&signed.state, &t, Declared::Field("sso")));
            let file = at.unwrap_or_else(|| "the config repository".into());
            Some(tr.arg("sso-git", "file", &file))
        }
        None => None,
    };
    let stored = idp.as_ref();
    let typed = shown.typed;
    let field = |typed: Option<&str>, stored: Option<String>| typed.map(str::to_owned).or(stored).unwrap_or_default();
    let (problem, status) = shown.problem.map_or((None, StatusCode::OK), |(p, s)| (Some(p), s));
    let (passed, problems) =
        shown.verification.map_or((None, Vec::new()), |(passed, problems)| (Some(passed), problems));
    let body = templates::TenantSso {
        t: tr,
        csrf: signed.browser.csrf(),
        tenant,
        action: &sso_path(tenant),
        done: shown.done,
        problem: problem.as_deref(),
        configured: stored.is_some(),
        state: stored.map(TenantIdp::stage).unwrap_or(""),
        state_label: stored.map(|i| state_label(tr, i.stage())).unwrap_or_else(|| tr.t("sso-none")),
        redirect_uri: &signed.state.sso.callback_url(),
        verified_at: stored.and_then(|i| i.verified_at).map(|at| super::when(Some(at))),
        tested_at: stored.and_then(|i| i.tested_at).map(|at| super::when(Some(at))),
        passed,
        problems,
        git,
        can_change,
        issuer: &field(typed.map(|f| f.issuer.as_str()), stored.map(|i| i.issuer.clone())),
        client_id: &field(typed.map(|f| f.client_id.as_str()), stored.map(|i| i.client_id.clone())),
        domains: &field(typed.map(|f| f.domains.as_str()), stored.map(|i| i.domains.join(", "))),
        mandatory: typed.map_or(stored.is_some_and(|i| i.mandatory), |f| f.mandatory == "yes"),
        jit_role: &field(typed.map(|f| f.jit_role.as_str()), stored.and_then(|i| i.jit_role.clone())),
        jit_roles: vec![("", tr.t("sso-jit-none")), ("user", tr.t("role-user")), ("admin", tr.t("role-admin"))],
    };
    signed.render(Page::new(&title, body.html()).status(status), &sso_path(tenant))
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
struct SsoForm {
    /// The browser's CSRF token (checked by the pages' layer).
    #[serde(default, rename = "csrf")]
    _csrf: String,
    /// `save`, `verify`, `test`, `activate` or `remove`.
    #[serde(default)]
    action: String,
    #[serde(default)]
    issuer: String,
    #[serde(default)]
    client_id: String,
    /// Empty keeps the stored secret.
    #[serde(default)]
    client_secret: String,
    /// Separated by commas, spaces or lines.
    #[serde(default)]
    domains: String,
    /// `yes`: passwords are refused once the provider is active.
    #[serde(default)]
    mandatory: String,
    /// `user`, `admin`, or empty: unknown emails are refused.
    #[serde(default)]
    jit_role: String,
    /// `yes` to remove.
    #[serde(default)]
    confirm: String,
}

/// One step of the set-up (the JSON API's functions), then back to the page; a test sign-in
/// moves on to the provider.
#[utoipa::path(post, operation_id = "console_sso_action", path = "/admin/{tenant}/sso", tag = "console",
    params(("tenant" = String, Path, description = "The tenant's name.")),
    request_body(content = SsoForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "A verification's outcome, each problem in words; or the page moving on to the provider for a test sign-in.", body = String, content_type = "text/html"),
        (status = 303, description = "Saved, activated or removed: back to the page, which says so."),
        (status = 400, description = "The page with the problem, the values kept.", body = String, content_type = "text/html"),
        (status = 403, description = "A page: only owners and operators set it up (audited).", body = String, content_type = "text/html"),
        (status = 409, description = "The page with the rule that refused it: declared in Git, a domain of another tenant, not verified or tested yet (audited).", body = String, content_type = "text/html"),
    ))]
async fn sso_form(signed: Signed, Path(tenant): Path<String>, body: Bytes) -> Response {
    let (state, caller, tr) = (&signed.state, &signed.caller, signed.browser.tr);
    let decided = caller.authorize_tenant(state, Action::UpdateTenant, "SSO settings", &tenant);
    if let Some(page) = signed.refusal(&tr.t("console-sso"), decided) {
        return page;
    }
    let form: SsoForm = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let outcome = match form.action.as_str() {
        "save" => {
            let domains = domains(&form.domains);
            let change = SsoChange {
                issuer: &form.issuer,
                client_id: &form.client_id,
                client_secret: Some(form.client_secret.as_str()),
                domains: &domains,
                mandatory: form.mandatory == "yes",
                jit_role: Some(form.jit_role.as_str()).filter(|r| !r.is_empty()),
            };
            sso::set_sso(state, caller, &tenant, &change).await.map(|_| ())
        }
        "verify" => {
            return match sso::verify_sso(state, caller, &tenant).await {
                Ok((_, report)) => {
                    let verification = Some((report.passed(), report.said(tr.lang)));
                    page(&signed, &tenant, Shown { verification, ..Shown::default() }).await
                }
                Err(error) => refused(&signed, &tenant, &form, &error).await,
            };
        }
        "test" => {
            return match sso::test_sso(state, caller, &tenant).await {
                Ok(url) => signed.browser.render(signed.browser.continue_to(&tr.t("sso-test-title"), &url)),
                Err(error) => refused(&signed, &tenant, &form, &error).await,
            };
        }
        "activate" => sso::activate_sso(state, caller, &tenant).await.map(|_| ()),
        "remove" if form.confirm == "yes" => sso::remove_sso(state, caller, &tenant).await,
        "remove" => Err(ApiError::BadRequest(tr.t("sso-remove-unconfirmed"))),
        _ => Err(ApiError::BadRequest(format!("no action `{}` on single sign-on", crate::model::shown(&form.action)))),
    };
    match outcome {
        Ok(()) => see_other(&format!("{}?done={}", sso_path(&tenant), form.action)),
        Err(error) => refused(&signed, &tenant, &form, &error).await,
    }
}

/// The page again with the refusal in words and the values typed kept; a caller who may not act
/// here gets the refusal page.
async fn refused(signed: &Signed, tenant: &str, form: &SsoForm, error: &ApiError) -> Response {
    if matches!(error, ApiError::Forbidden { .. } | ApiError::Unauthorized(_)) {
        return signed.refused(&signed.browser.tr.t("console-sso"), error);
    }
    let (problem, status, refused) = signed.problem_of(error);
    let typed = (form.action == "save").then_some(form);
    super::marked(
        page(signed, tenant, Shown { typed, problem: Some((problem, status)), ..Shown::default() }).await,
        refused,
    )
}

/// The domains of a form's field: separated by commas, spaces or lines.
fn domains(field: &str) -> Vec<String> {
    field.split(|c: char| c == ',' || c.is_whitespace()).filter(|d| !d.is_empty()).map(str::to_owned).collect()
}

#[cfg(test)]
mod tests {
    use super::domains;

    #[test]
    fn domains_are_split_on_commas_spaces_and_lines() {
        assert_eq!(domains("acme.example, acme.test\nacme.dev  ,"), ["acme.example", "acme.test", "acme.dev"]);
        assert!(domains(" , ").is_empty());
    }
}
