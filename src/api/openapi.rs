//! The OpenAPI 3.1 document of the whole HTTP API, generated from the handlers' `#[utoipa::path]`
//! annotations and served at `GET /openapi.json`. The committed copy (`openapi.json`) is checked
//! against this one by a test, and schemathesis fuzzes the running server against it.

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi, ToSchema};

use super::{
    apps, audit, auth, budget, evaluation, flags, health, hooks, login, mail, ofrep, oidc, overrides, pages, sso, sync,
    tenants, usage, users,
};

/// The envelope of every error (4xx and 5xx) the JSON API answers.
/// `ApiError` writes exactly this, so the schema cannot drift from the bodies sent.
#[derive(serde::Serialize, ToSchema)]
#[schema(as = Error)]
pub(crate) struct ErrorBody {
    pub(crate) error: ErrorDetail,
}

#[derive(serde::Serialize, ToSchema)]
pub(crate) struct ErrorDetail {
    /// A stable, machine-readable code, e.g. `not_found`, `forbidden`, `insufficient_scope`.
    pub(crate) code: String,
    /// What went wrong, for a human.
    pub(crate) message: String,
}

/// The shared response of every failure: `{"error":{"code","message"}}`.
pub(crate) struct Failure;

impl<'s> utoipa::ToResponse<'s> for Failure {
    fn response() -> (&'s str, RefOr<utoipa::openapi::Response>) {
        let content = ContentBuilder::new().schema(Some(utoipa::openapi::Ref::from_schema_name("Error"))).build();
        let response = ResponseBuilder::new()
            .description("The request failed; the envelope names a stable code and says why.")
            .content("application/json", content)
            .build();
        ("Failure", response.into())
    }
}

/// Every operation answers its failures with the one shared envelope (`Failure`) unless it says
/// otherwise (the HTML pages do): a reader of the document sees the error shape once.
struct Failures;

impl Modify for Failures {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let operations = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
            for operation in operations.into_iter().flatten() {
                for status in ["4XX", "5XX"] {
                    operation
                        .responses
                        .responses
                        .entry(status.to_owned())
                        .or_insert_with(|| utoipa::openapi::Ref::from_response_name("Failure").into());
                }
            }
        }
    }
}

/// Security schemes: the operator token, an application's API key (as a bearer token or in
/// `X-API-Key`), and a tenant user's session (access token).
struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = |description: &str| {
            SecurityScheme::Http(
                HttpBuilder::new().scheme(HttpAuthScheme::Bearer).description(Some(description.to_owned())).build(),
            )
        };
        components.add_security_scheme(
            "operator",
            bearer(
                "A platform operator or auditor: a JWT of the configured identity provider (its groups bound to \
                 `operator` or `auditor`), or the bootstrap operator token (GATEHOUSE_OPERATOR_TOKEN): \
                 `Authorization: Bearer <token>`.",
            ),
        );
        components.add_security_scheme(
            "apiKey",
            bearer("An application's API key (`gatehouse_<key id>_<secret>`): `Authorization: Bearer <key>`."),
        );
        components.add_security_scheme(
            "apiKeyHeader",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-API-Key",
                "An application's API key (`gatehouse_<key id>_<secret>`) in the X-API-Key header.",
            ))),
        );
        components.add_security_scheme(
            "githubSignature",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Hub-Signature-256",
                "GitHub's `sha256=<hex>` HMAC of the body under the webhook secret.",
            ))),
        );
        components.add_security_scheme(
            "gitlabToken",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Gitlab-Token",
                "GitLab's webhook secret token.",
            ))),
        );
        components.add_security_scheme(
            "session",
            bearer("A tenant user's session access token (`gatehouse_at_…`): `Authorization: Bearer <token>`."),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Gatehouse",
        description = "Control plane for a multi-tenant B2B SaaS: sync status, applications and API keys, \
                       tenant users' sign-in and sessions, feature flags (REST, events and OFREP).",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        health::healthz,
        health::readyz,
        health::metrics,
        openapi_json,
        hooks::git_webhook,
        flags::tenant_flags,
        flags::flag_events,
        ofrep::evaluate_all,
        ofrep::evaluate_one,
        auth::login,
        auth::refresh,
        auth::forgot,
        auth::reset,
        auth::accept,
        auth::verify_mfa,
        auth::confirm_totp,
        auth::unlock,
        auth::logout,
        auth::whoami,
        auth::list_sessions,
        auth::end_session,
        auth::change_password,
        auth::start_totp,
        auth::introspect,
        auth::revoke,
        pages::show_invitation,
        pages::submit_invitation,
        pages::show_reset,
        pages::submit_reset,
        pages::show_forgot,
        pages::submit_forgot,
        login::show_login,
        login::submit_login,
        login::account,
        login::logout,
        oidc::discovery,
        oidc::jwks,
        oidc::authorize,
        oidc::token_endpoint,
        oidc::userinfo,
        oidc::end_session,
        oidc::set_client_secret,
        oidc::rotate_keys,
        sso::show,
        sso::set,
        sso::remove,
        sso::verify,
        sso::test,
        sso::activate,
        sso::callback,
        tenants::create,
        tenants::list,
        tenants::show,
        tenants::update,
        tenants::suspend,
        tenants::restore,
        tenants::delete,
        overrides::list,
        overrides::set,
        overrides::clear,
        users::invite,
        users::list,
        users::show,
        users::update,
        users::remove,
        users::end_sessions,
        users::resend_invitation,
        users::unlock,
        sync::overall,
        sync::tenants,
        sync::tenant,
        sync::tenant_history,
        sync::allow_deletion,
        sync::passes,
        sync::allow_drift,
        sync::withdraw_drift,
        sync::sync_now,
        sync::pause,
        sync::resume,
        apps::list_apps,
        apps::create_app,
        apps::show_app,
        apps::update_app,
        apps::list_keys,
        apps::create_key,
        apps::show_key,
        apps::revoke_key,
        apps::rotate_key,
        mail::outbox,
        evaluation::evaluate,
        usage::ingest,
        usage::export,
        usage::totals,
        audit::ingest,
        audit::events,
        audit::export,
        budget::show,
        budget::check,
        budget::list_overrides,
        budget::request_override,
        budget::approve_override,
    ),
    components(schemas(ErrorBody, ErrorDetail), responses(Failure)),
    modifiers(&Security, &Failures),
    tags(
        (name = "public", description = "No credential."),
        (name = "operator", description = "Platform operators (and, for reads, auditors): a JWT of the configured identity provider, or the bootstrap operator token."),
        (name = "admin", description = "Administration of tenants and their users: operators, and a tenant's owners and admins for their own tenant."),
        (name = "application", description = "Applications: an API key with the named scope."),
        (name = "session", description = "Tenant users: a session access token."),
    ),
)]
pub struct ApiDoc;

/// The document, pretty-printed with a final newline, as committed at `openapi.json`.
pub fn document() -> String {
    let mut text = ApiDoc::openapi().to_pretty_json().unwrap_or_default();
    text.push('\n');
    text
}

/// The OpenAPI document of this API.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "public",
    responses((status = 200, description = "The OpenAPI 3.1 document of this API.", content_type = "application/json", body = Object)),
)]
pub(super) async fn openapi_json() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], document())
}
