//! Tenant SSO through the API (issue 14.2): a tenant's owner sets the tenant's OpenID provider,
//! verifies it, completes a test sign-in and activates it; and the callback the providers return
//! browsers to.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::body::JsonBody;
use super::caller::{Caller, client};
use super::web::templates::{self, Body};
use super::web::{self, Browser, Page};
use super::{ApiError, AppState, Result};
use crate::authz::Action;
use crate::sso::discovery::Report;
use crate::sso::{Finished, SsoError};
use crate::store::Rule;
use crate::store::sso::{self as db, Saved, TenantIdp};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(show, set, remove))
        .routes(routes!(verify))
        .routes(routes!(test))
        .routes(routes!(activate))
        .routes(routes!(callback))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(example = json!({
    "issuer": "https://login.acme.example", "clientId": "gatehouse", "clientSecret": "…",
    "domains": ["acme.example"], "mandatory": false, "jitRole": "user"
}))]
pub(super) struct SetSso {
    /// The provider's issuer URL, exactly as its tokens' `iss` (https).
    issuer: String,
    client_id: String,
    /// Required the first time; absent keeps the stored secret. Sealed at rest, never shown.
    client_secret: Option<String>,
    /// The email domains it signs in (the login page routes them to it).
    domains: Vec<String>,
    /// Refuse passwords for the tenant's users once active.
    #[serde(default)]
    mandatory: bool,
    /// Create unknown users on their first sign-in with this role (`admin` or `user`); absent:
    /// unknown emails are refused.
    jit_role: Option<String>,
}

/// A tenant's identity provider as the API shows it: never its secret.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct SsoProvider {
    #[schema(example = "acme")]
    tenant: String,
    /// Exactly as its tokens' `iss`.
    issuer: String,
    client_id: String,
    /// The email domains the login page sends to it.
    domains: Vec<String>,
    /// Passwords are refused for the tenant's users once it is active.
    mandatory: bool,
    /// The role of users created on their first sign-in; `null`: unknown emails are refused.
    jit_role: Option<String>,
    /// `draft`, `verified`, `tested` or `active`.
    state: String,
    /// `git` (its `sso` block) or `api`.
    managed_by: String,
    /// What the last verification found: the provider's endpoints.
    verification: Option<Value>,
    verified_at: Option<chrono::DateTime<chrono::Utc>>,
    tested_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The redirect URI to register at the provider.
    redirect_uri: String,
}

fn view(state: &AppState, idp: &TenantIdp) -> SsoProvider {
    SsoProvider {
        tenant: idp.tenant.clone(),
        issuer: idp.issuer.clone(),
        client_id: idp.client_id.clone(),
        domains: idp.domains.clone(),
        mandatory: idp.mandatory,
        jit_role: idp.jit_role.clone(),
        state: idp.stage().to_owned(),
        managed_by: idp.managed_by.clone(),
        verification: idp.metadata.clone(),
        verified_at: idp.verified_at,
        tested_at: idp.tested_at,
        redirect_uri: state.sso.callback_url(),
    }
}

/// What a verification found.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(super) struct SsoVerification {
    /// The provider's state after it: `verified` when it passed.
    state: String,
    passed: bool,
    /// Each problem, in words.
    problems: Vec<String>,
}

/// A test sign-in to open in a browser.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(super) struct SsoTest {
    /// Sign in at the provider through it; nothing changes but the test's record.
    url: String,
}

/// A provider declared in Git changes there, not through the API.
fn not_from_git(idp: Option<&TenantIdp>) -> Result<()> {
    match idp {
        Some(idp) if idp.managed_by == "git" => Err(ApiError::rule(
            Rule::Conflict,
            "managed_by_git",
            format!(
                "the SSO provider of tenant `{}` is declared in Git (its `sso` block): change it there",
                idp.tenant
            ),
        )),
        _ => Ok(()),
    }
}

async fn load(state: &AppState, tenant: &str) -> Result<TenantIdp> {
    db::idp_of_tenant(&state.pool, tenant)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("tenant `{tenant}` has no SSO provider; PUT one first")))
}

#[utoipa::path(get, operation_id = "show_sso", path = "/v1/tenants/{tenant}/sso", tag = "admin", security(("operator" = ["operator", "auditor"]), ("session" = ["owner", "admin"])),
    params(("tenant" = String, Path, description = "The tenant's name.", pattern = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", example = "acme")),
    responses((status = 200, description = "The provider (never its secret), its state and last verification.", body = SsoProvider)))]
async fn show(State(state): State<AppState>, caller: Caller, Path(tenant): Path<String>) -> Result<Response> {
    let idp = sso_of(&state, &caller, &tenant).await?;
    let idp = idp.ok_or_else(|| ApiError::NotFound(format!("tenant `{tenant}` has no SSO provider; PUT one first")))?;
    Ok(axum::Json(view(&state, &idp)).into_response())
}

/// The tenant's provider, if it has one, to whoever may read the tenant's settings.
pub(super) async fn sso_of(state: &AppState, caller: &Caller, tenant: &str) -> Result<Option<TenantIdp>> {
    let (name, _) = caller.authorize_tenant(state, Action::ReadTenants, "SSO settings", tenant)?;
    Ok(db::idp_of_tenant(&state.pool, name.as_str()).await?)
}

#[utoipa::path(put, operation_id = "set_sso", path = "/v1/tenants/{tenant}/sso", tag = "admin", security(("operator" = ["operator"]), ("session" = ["owner"])),
    params(("tenant" = String, Path, description = "The tenant's name.", pattern = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", example = "acme")),
    request_body(content = SetSso),
    responses((status = 200, description = "The provider, in `draft`: verify it, test it, then activate it.", body = SsoProvider)))]
async fn set(
    State(state): State<AppState>,
    caller: Caller,
    Path(tenant): Path<String>,
    body: JsonBody<SetSso>,
) -> Result<Response> {
    // Who may not set it learns that before anything about their body.
    caller.authorize_tenant(&state, Action::UpdateTenant, "SSO settings", &tenant)?;
    let request = body.value()?;
    let change = SsoChange {
        issuer: &request.issuer,
        client_id: &request.client_id,
        client_secret: request.client_secret.as_deref(),
        domains: &request.domains,
        mandatory: request.mandatory,
        jit_role: request.jit_role.as_deref(),
    };
    let idp = set_sso(&state, &caller, &tenant, &change).await?;
    Ok(axum::Json(view(&state, &idp)).into_response())
}

/// A tenant's provider as an owner or operator sets it, before it is checked.
pub(super) struct SsoChange<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    /// Required the first time; `None` or empty keeps the stored secret.
    pub client_secret: Option<&'a str>,
    pub domains: &'a [String],
    pub mandatory: bool,
    pub jit_role: Option<&'a str>,
}

/// Sets the tenant's provider, in `draft` (it must be verified and tested again), audited.
pub(super) async fn set_sso(
    state: &AppState,
    caller: &Caller,
    tenant: &str,
    change: &SsoChange<'_>,
) -> Result<TenantIdp> {
    let (name, _) = caller.authorize_tenant(state, Action::UpdateTenant, "SSO settings", tenant)?;
    not_from_git(db::idp_of_tenant(&state.pool, name.as_str()).await?.as_ref())?;
    let settings = crate::sso::settings::check(change.issuer, change.client_id, change.domains, change.jit_role)
        .map_err(ApiError::BadRequest)?;
    let tenant_id = crate::store::tenants::id_of(&state.pool, name.as_str())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("there is no tenant `{name}`")))?;
    let (issuer, domains) = (&settings.issuer, &settings.domains);
    // A domain another tenant's users sign in with is theirs: claiming it would send them to this
    // tenant's provider.
    if let Some(domain) = db::domain_used_elsewhere(&state.pool, tenant_id, domains).await? {
        return Err(ApiError::rule(
            Rule::Conflict,
            "domain_in_use",
            format!(
                "users of another tenant sign in with `@{domain}` addresses; it cannot route to this tenant's provider"
            ),
        ));
    }
    let sealed = change
        .client_secret
        .filter(|s| !s.is_empty())
        .map(|secret| state.identity.keyring.seal(secret.as_bytes(), tenant_id.as_bytes()));
    let new = db::NewIdp {
        tenant_id,
        issuer,
        client_id: &settings.client_id,
        secret: sealed.as_ref().map(|(key, bytes)| (key.as_str(), bytes.as_slice())),
        domains,
        mandatory: change.mandatory,
        jit_role: settings.jit_role.map(|r| r.as_str()),
    };
    match db::save_idp(&state.pool, new).await? {
        Saved::Saved => {}
        Saved::DomainTaken(domain) => {
            return Err(ApiError::rule(Rule::Conflict, "domain_taken", format!("another tenant signs in `{domain}`")));
        }
        Saved::SecretRequired => {
            return Err(ApiError::BadRequest("clientSecret is required when setting a provider the first time".into()));
        }
    }
    let jit_role = settings.jit_role.map(|r| r.as_str());
    let details = json!({ "issuer": issuer, "clientId": settings.client_id, "domains": domains, "mandatory": change.mandatory, "jitRole": jit_role });
    caller.record(state, "tenant.sso.set", crate::audit::Target::in_tenant(name.as_str(), "sso"), details).await?;
    load(state, name.as_str()).await
}

#[utoipa::path(delete, operation_id = "remove_sso", path = "/v1/tenants/{tenant}/sso", tag = "admin", security(("operator" = ["operator"]), ("session" = ["owner"])),
    params(("tenant" = String, Path, description = "The tenant's name.", pattern = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", example = "acme")),
    responses((status = 204, description = "Removed: the tenant's users sign in with passwords again.")))]
async fn remove(State(state): State<AppState>, caller: Caller, Path(tenant): Path<String>) -> Result<Response> {
    remove_sso(&state, &caller, &tenant).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Removes the tenant's provider: its users sign in with passwords again.
pub(super) async fn remove_sso(state: &AppState, caller: &Caller, tenant: &str) -> Result<()> {
    let (name, _) = caller.authorize_tenant(state, Action::UpdateTenant, "SSO settings", tenant)?;
    let idp = load(state, name.as_str()).await?;
    not_from_git(Some(&idp))?;
    db::delete_idp(&state.pool, idp.tenant_id).await?;
    caller.record(state, "tenant.sso.delete", crate::audit::Target::in_tenant(name.as_str(), "sso"), json!({})).await
}

#[utoipa::path(post, operation_id = "verify_sso", path = "/v1/tenants/{tenant}/sso/verify", tag = "admin", security(("operator" = ["operator"]), ("session" = ["owner"])),
    params(("tenant" = String, Path, description = "The tenant's name.", pattern = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", example = "acme")),
    responses((status = 200, description = "`passed`, and each `problem` in words; a passing provider is `verified`.", body = SsoVerification)))]
async fn verify(State(state): State<AppState>, caller: Caller, Path(tenant): Path<String>) -> Result<Response> {
    let (idp, report) = verify_sso(&state, &caller, &tenant).await?;
    let verification = SsoVerification {
        state: idp.stage().to_owned(),
        passed: report.passed(),
        problems: report.said(crate::i18n::Lang::En),
    };
    Ok(axum::Json(verification).into_response())
}

/// Verifies the tenant's provider (discovery and keys fetched), audited: the provider after it
/// (`verified` when it passed) and what was found.
pub(super) async fn verify_sso(state: &AppState, caller: &Caller, tenant: &str) -> Result<(TenantIdp, Report)> {
    let (name, _) = caller.authorize_tenant(state, Action::UpdateTenant, "SSO settings", tenant)?;
    let idp = load(state, name.as_str()).await?;
    let report = state.sso.verify(&idp).await?;
    let details = json!({ "passed": report.passed(), "problems": report.said(crate::i18n::Lang::En) });
    caller.record(state, "tenant.sso.verify", crate::audit::Target::in_tenant(name.as_str(), "sso"), details).await?;
    Ok((load(state, name.as_str()).await?, report))
}

#[utoipa::path(post, operation_id = "test_sso", path = "/v1/tenants/{tenant}/sso/test", tag = "admin", security(("operator" = ["operator"]), ("session" = ["owner"])),
    params(("tenant" = String, Path, description = "The tenant's name.", pattern = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", example = "acme")),
    responses((status = 200, description = "`url`: open it in a browser and sign in at the provider; nothing changes but the test's record.", body = SsoTest)))]
async fn test(State(state): State<AppState>, caller: Caller, Path(tenant): Path<String>) -> Result<Response> {
    let url = test_sso(&state, &caller, &tenant).await?;
    Ok(super::auth::no_store(axum::Json(SsoTest { url })))
}

/// Starts a test sign-in at the tenant's verified provider: the URL to open in a browser.
pub(super) async fn test_sso(state: &AppState, caller: &Caller, tenant: &str) -> Result<String> {
    let (name, _) = caller.authorize_tenant(state, Action::UpdateTenant, "SSO settings", tenant)?;
    let idp = load(state, name.as_str()).await?;
    if idp.state == "draft" {
        return Err(ApiError::rule(Rule::Conflict, "not_verified", "verify the provider first (POST …/sso/verify)"));
    }
    let by = caller.actor.name();
    let (url, _) = state.sso.start(&idp, "test", "/account", None, Some(by)).await.map_err(sso_error)?;
    Ok(url)
}

#[utoipa::path(post, operation_id = "activate_sso", path = "/v1/tenants/{tenant}/sso/activate", tag = "admin", security(("operator" = ["operator"]), ("session" = ["owner"])),
    params(("tenant" = String, Path, description = "The tenant's name.", pattern = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", example = "acme")),
    responses((status = 200, description = "Active: the login page sends the tenant's domains to the provider.", body = SsoProvider)))]
async fn activate(State(state): State<AppState>, caller: Caller, Path(tenant): Path<String>) -> Result<Response> {
    let idp = activate_sso(&state, &caller, &tenant).await?;
    Ok(axum::Json(view(&state, &idp)).into_response())
}

/// Activates the tenant's provider once it is verified and tested, audited.
pub(super) async fn activate_sso(state: &AppState, caller: &Caller, tenant: &str) -> Result<TenantIdp> {
    let (name, _) = caller.authorize_tenant(state, Action::UpdateTenant, "SSO settings", tenant)?;
    let idp = load(state, name.as_str()).await?;
    if idp.state != "active" && !db::activate(&state.pool, idp.tenant_id).await? {
        return Err(ApiError::rule(
            Rule::Conflict,
            "not_tested",
            "the provider must be verified and complete a test sign-in since (POST …/sso/verify, then …/sso/test)",
        ));
    }
    caller
        .record(state, "tenant.sso.activate", crate::audit::Target::in_tenant(name.as_str(), "sso"), json!({}))
        .await?;
    load(state, name.as_str()).await
}

fn sso_error(error: SsoError) -> ApiError {
    match error {
        SsoError::Store(error) => error.into(),
        other => ApiError::rule(Rule::Conflict, "sso_unavailable", other.to_string()),
    }
}

#[derive(Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// Where a tenant's provider returns the browser: the sign-in completes, or a page says why not.
#[utoipa::path(get, operation_id = "sso_callback", path = "/login/sso/callback", tag = "public", params(Callback),
    responses(
        (status = 200, description = "Signed in (a page that moves on), or the test's outcome.", body = String, content_type = "text/html"),
        (status = 400, description = "A page saying why the sign-in did not complete.", body = String, content_type = "text/html"),
    ))]
async fn callback(
    State(state): State<AppState>,
    page: Browser,
    query: std::result::Result<Query<Callback>, axum::extract::rejection::QueryRejection>,
    parts: Parts,
) -> Response {
    let query = query.map(|Query(q)| q).unwrap_or_default();
    let outcome = match (&query.error, &query.code, &query.state) {
        (Some(error), _, _) => {
            let description = query.error_description.as_deref().unwrap_or(error);
            Err(SsoError::Provider(description.to_owned()))
        }
        (None, Some(code), Some(sso_state)) => {
            let browser = web::cookies::read(&parts.headers, web::SSO_COOKIE);
            state.sso.finish(sso_state, code, browser.as_deref(), &client(&parts)).await
        }
        _ => Err(SsoError::UnknownState),
    };
    let secure = state.identity.settings.public_url.starts_with("https://");
    if let Err(error) = &outcome
        && !matches!(error, SsoError::Store(_))
    {
        // Audited like every refusal of a caller who proved nothing (aggregated with its repeats).
        state.denials.refused(crate::denials::Refusal {
            action: "auth.sso.callback",
            ip: client(&parts).ip,
            method: Some("GET".into()),
            route: "/login/sso/callback".into(),
            resource: "/login/sso/callback".into(),
            tenant: None,
            reason: error.to_string(),
            key_id: None,
            extra: serde_json::Map::new(),
        });
    }
    let tr = page.tr;
    match outcome {
        Ok(Finished::SignedIn { refresh_token, return_to, .. }) => {
            // A new sign-in replaces the browser's previous session (and its applications').
            super::login::end_browser_session(&state, &parts).await;
            let signed_in = page
                .continue_to(&tr.t("login-signed-in-title"), &return_to)
                .cookie(web::cookies::set(
                    &web::cookies::host_only(web::SESSION_COOKIE, secure),
                    &refresh_token,
                    secure,
                    None,
                ))
                .cookie(web::cookies::clear(web::SSO_COOKIE, secure));
            page.render(signed_in)
        }
        Ok(Finished::Tested { tenant, email }) => {
            let text = tr.args("sso-tested", &[("tenant", &tenant), ("email", &email)]);
            let settings =
                format!("/admin/{}/sso", url::form_urlencoded::byte_serialize(tenant.as_bytes()).collect::<String>());
            let body = templates::Message { alert: None, text: Some(text), link: Some((&settings, tr.t("sso-back"))) };
            page.render(Page::new(&tr.t("sso-tested-title"), body.html()))
        }
        Err(SsoError::Store(error)) => {
            tracing::error!(%error, "a federated sign-in failed");
            page.failed()
        }
        Err(error) => {
            tracing::warn!(%error, "a federated sign-in did not complete");
            let body = templates::Message {
                alert: Some(error.for_browser()),
                text: None,
                link: Some(("/login", tr.t("back-to-sign-in"))),
            };
            page.render(Page::new(&tr.t("sso-failed-title"), body.html()).status(StatusCode::BAD_REQUEST))
        }
    }
}
