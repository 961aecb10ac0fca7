//! The OpenAPI 3.1 document of the whole HTTP API, generated from the handlers' `#[utoipa::path]`
//! annotations and served at `GET /openapi.json`. The committed copy (`openapi.json`) is checked
//! against this one by a test, and schemathesis fuzzes the running server against it.

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi, ToSchema};

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

/// An answer that only says, in a sentence, what happens next (`202`s of mailed links).
#[derive(serde::Serialize, ToSchema)]
pub(crate) struct Message {
    #[schema(example = "a new invitation is on its way to dan@acme.example")]
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

/// A handler that serves several methods (`GET` and `POST /oauth2/authorize`) gives each the same
/// operation id; a client generator needs one per operation, so each gets its method as a suffix.
struct OneIdPerOperation;

impl Modify for OneIdPerOperation {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let mut seen = std::collections::HashMap::<String, usize>::new();
        for item in openapi.paths.paths.values() {
            for (_, operation) in operations(item) {
                if let Some(id) = &operation.operation_id {
                    *seen.entry(id.clone()).or_default() += 1;
                }
            }
        }
        for item in openapi.paths.paths.values_mut() {
            let methods = [
                ("get", &mut item.get),
                ("put", &mut item.put),
                ("post", &mut item.post),
                ("delete", &mut item.delete),
                ("patch", &mut item.patch),
            ];
            for (method, operation) in methods {
                if let Some(operation) = operation
                    && let Some(id) = &operation.operation_id
                    && seen.get(id).is_some_and(|n| *n > 1)
                {
                    operation.operation_id = Some(format!("{id}_{method}"));
                }
            }
        }
    }
}

fn operations(
    item: &utoipa::openapi::PathItem,
) -> impl Iterator<Item = (&'static str, &utoipa::openapi::path::Operation)> {
    [("get", &item.get), ("put", &item.put), ("post", &item.post), ("delete", &item.delete), ("patch", &item.patch)]
        .into_iter()
        .filter_map(|(method, operation)| operation.as_ref().map(|o| (method, o)))
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
                 `Authorization: Bearer <token>`. An operation's roles (`operator`, `auditor`) name who may \
                 call it: any one of them.",
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
            bearer(
                "A tenant user's session access token (`gatehouse_at_…`): `Authorization: Bearer <token>`. An \
                 operation's roles (`owner`, `admin`, `user`) name who may call it: any one of them, on their own \
                 tenant only; `pending`: also a session still waiting for its second factor.",
            ),
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
    components(schemas(ErrorBody, ErrorDetail), responses(Failure)),
    tags(
        (name = "public", description = "No credential."),
        (name = "operator", description = "Platform operators (and, for reads, auditors): a JWT of the configured identity provider, or the bootstrap operator token."),
        (name = "admin", description = "Administration of tenants and their users: operators, and a tenant's owners and admins for their own tenant."),
        (name = "application", description = "Applications: an API key with the named scope."),
        (name = "session", description = "Tenant users: a session access token."),
    ),
)]
pub struct ApiDoc;

/// What the document says beside its operations: info, shared components and tags. The operations
/// come from the routes (`super::routes`), each registered once.
pub(super) fn base() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The document of every route, pretty-printed with a final newline, as committed at `openapi.json`.
/// Made once per process: `GET /openapi.json` is public.
pub fn document() -> String {
    static DOCUMENT: std::sync::LazyLock<String> = std::sync::LazyLock::new(make_document);
    DOCUMENT.clone()
}

fn make_document() -> String {
    let mut openapi = super::routes(None).into_openapi();
    // The modifiers see every operation only once the routes have added them.
    Security.modify(&mut openapi);
    Failures.modify(&mut openapi);
    OneIdPerOperation.modify(&mut openapi);
    let mut text = openapi.to_pretty_json().unwrap_or_default();
    text.push('\n');
    text
}

/// An OpenAPI 3.1 document (its own schema is the OpenAPI Specification's, at
/// https://spec.openapis.org/oas/3.1/schema).
#[allow(dead_code)]
#[derive(utoipa::ToSchema)]
pub(super) struct OpenApiDocument {
    #[schema(example = "3.1.0")]
    openapi: String,
    /// The API's title and version.
    #[schema(value_type = Object)]
    info: serde_json::Value,
    /// Every operation, by path and method.
    #[schema(value_type = Object)]
    paths: serde_json::Value,
    /// The schemas and security schemes the operations name.
    #[schema(value_type = Object)]
    components: serde_json::Value,
}

/// The OpenAPI document of this API.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "public",
    responses((status = 200, description = "The OpenAPI 3.1 document of this API.", content_type = "application/json", body = OpenApiDocument)),
)]
pub(super) async fn openapi_json() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], document())
}
