//! The OpenFeature Remote Evaluation Protocol (OFREP) v1, as its OpenAPI document specifies, so any
//! OpenFeature SDK with an OFREP provider reads Gatehouse flags.
//!
//! The tenant comes from the evaluation context's `tenant` attribute:
//! `{"context": {"targetingKey": "user-1", "tenant": "acme"}}`. Gatehouse flags are per tenant, so
//! every other attribute is accepted and ignored.

use std::borrow::Cow;
use utoipa_axum::{router::OpenApiRouter, routes};

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::caller::Caller;
use super::flags::{conditional, readable};
use super::{AppState, Result};
use crate::model::{TenantName, shown};

/// Evaluation requests are small; anything larger is refused before it is read.
const MAX_BODY: usize = 64 * 1024;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(evaluate_all)).routes(routes!(evaluate_one))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = OfrepEvaluationRequest)]
struct EvaluationRequest<'a> {
    /// The evaluation context; without `context.tenant` the answer is 400 `INVALID_CONTEXT`.
    #[serde(borrow, default)]
    #[schema(required = true, nullable = false)]
    context: Option<Context<'a>>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = OfrepContext)]
struct Context<'a> {
    /// The tenant whose flags to evaluate; every other attribute of the context is ignored.
    #[serde(borrow, default)]
    #[schema(required = true, value_type = String, pattern = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", example = "acme")]
    tenant: Option<Cow<'a, str>>,
}

/// An OFREP 400: `PARSE_ERROR` or `INVALID_CONTEXT`, with the key for a single evaluation.
struct EvaluationFailure {
    code: &'static str,
    details: String,
}

impl EvaluationFailure {
    fn into_response(self, key: Option<&str>) -> Response {
        failure(StatusCode::BAD_REQUEST, key, self.code, self.details)
    }
}

/// An OFREP error body (`key`, `errorCode`, `errorDetails`, what OpenFeature providers read) that
/// also carries the envelope every Gatehouse error has (issue 11.7), with the code in snake case.
fn failure(status: StatusCode, key: Option<&str>, code: &str, details: String) -> Response {
    let mut body = json!({
        "errorCode": code,
        "errorDetails": details,
        "error": { "code": code.to_lowercase(), "message": details },
    });
    if let Some(key) = key {
        body["key"] = json!(key);
    }
    (status, axum::Json(body)).into_response()
}

/// The tenant named by the request's evaluation context. Parsing borrows from the body: no
/// allocation for a well-formed request.
fn tenant_of(body: &[u8]) -> std::result::Result<Cow<'_, str>, EvaluationFailure> {
    let context_needed = || EvaluationFailure {
        code: "INVALID_CONTEXT",
        details: "the evaluation context must carry the tenant: {\"context\": {\"tenant\": \"<tenant name>\"}}".into(),
    };
    match serde_json::from_slice::<EvaluationRequest>(body) {
        Ok(EvaluationRequest { context: Some(Context { tenant: Some(tenant) }) }) => match TenantName::parse(&tenant) {
            Ok(_) => Ok(tenant),
            Err(error) => {
                Err(EvaluationFailure { code: "INVALID_CONTEXT", details: format!("context.tenant: {error}") })
            }
        },
        Ok(_) => Err(context_needed()),
        // Valid JSON of the wrong shape is a context problem; anything else cannot be parsed.
        Err(_) if serde_json::from_slice::<serde_json::Value>(body).is_ok() => Err(context_needed()),
        Err(error) => Err(EvaluationFailure { code: "PARSE_ERROR", details: format!("invalid JSON body: {error}") }),
    }
}

async fn read_body(body: axum::body::Body) -> std::result::Result<Bytes, EvaluationFailure> {
    axum::body::to_bytes(body, MAX_BODY).await.map_err(|_| EvaluationFailure {
        code: "PARSE_ERROR",
        details: format!("the request body is unreadable or larger than {MAX_BODY} bytes"),
    })
}

/// `POST /ofrep/v1/evaluate/flags`: every flag of the tenant, with `ETag` and 304.
#[utoipa::path(
    post,
    path = "/ofrep/v1/evaluate/flags",
    tag = "application",
    security(("apiKey" = ["flags:read"]), ("apiKeyHeader" = ["flags:read"])),
    params(("If-None-Match" = Option<String>, Header, description = "The ETag of a previous answer: 304 when nothing changed.")),
    request_body(content = EvaluationRequest, description = "The OFREP evaluation context; it must carry the tenant."),
    responses((status = 200, description = "Every flag of the tenant (OFREP bulk evaluation), with an ETag.", body = crate::delivery::flags::OfrepBulk), (status = 304, description = "Not modified since the given ETag.")),
)]
async fn evaluate_all(State(state): State<AppState>, caller: Caller, request: Request) -> Result<Response> {
    let (parts, body) = request.into_parts();
    let body = match read_body(body).await {
        Ok(body) => body,
        Err(failure) => return Ok(failure.into_response(None)),
    };
    let tenant = match tenant_of(&body) {
        Ok(tenant) => tenant,
        Err(failure) => return Ok(failure.into_response(None)),
    };
    let flags = readable(&state, &caller, &tenant)?;
    Ok(conditional(&flags.ofrep_bulk, parts.headers.get(header::IF_NONE_MATCH)))
}

/// `POST /ofrep/v1/evaluate/flags/{key}`: one flag, or 404 `FLAG_NOT_FOUND`.
#[utoipa::path(
    post,
    path = "/ofrep/v1/evaluate/flags/{key}",
    tag = "application",
    security(("apiKey" = ["flags:read"]), ("apiKeyHeader" = ["flags:read"])),
    params(("key" = String, Path, description = "The flag's key.")),
    request_body(content = EvaluationRequest, description = "The OFREP evaluation context; it must carry the tenant."),
    responses((status = 200, description = "The flag's evaluation (OFREP).", body = crate::delivery::flags::OfrepEvaluation)),
)]
async fn evaluate_one(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
    request: Request,
) -> Result<Response> {
    let body = match read_body(request.into_body()).await {
        Ok(body) => body,
        Err(failure) => return Ok(failure.into_response(Some(&key))),
    };
    let tenant = match tenant_of(&body) {
        Ok(tenant) => tenant,
        Err(failure) => return Ok(failure.into_response(Some(&key))),
    };
    let flags = readable(&state, &caller, &tenant)?;
    let Some(evaluation) = flags.ofrep_single.get(key.as_str()) else {
        let details = format!("flag `{}` is not defined for tenant `{tenant}`", shown(&key));
        return Ok(failure(StatusCode::NOT_FOUND, Some(&key), "FLAG_NOT_FOUND", details));
    };
    Ok(([(header::CONTENT_TYPE, "application/json")], evaluation.clone()).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tenant_comes_from_the_context() {
        let tenant = tenant_of(br#"{"context":{"targetingKey":"u1","tenant":"acme","plan":{"x":[1]}}}"#);
        assert_eq!(tenant.ok().as_deref(), Some("acme"));
    }

    #[test]
    fn a_missing_tenant_is_an_invalid_context_and_bad_json_a_parse_error() {
        for body in [&b"{}"[..], br#"{"context":{}}"#, br#"{"context":"acme"}"#, br#"{"context":{"tenant":1}}"#] {
            assert_eq!(tenant_of(body).err().map(|f| f.code), Some("INVALID_CONTEXT"), "{body:?}");
        }
        assert_eq!(tenant_of(b"{\"context\":").err().map(|f| f.code), Some("PARSE_ERROR"));
    }

    #[test]
    fn a_tenant_that_is_no_tenant_name_is_an_invalid_context() {
        for body in [&br#"{"context":{"tenant":"ac\u0000me"}}"#[..], br#"{"context":{"tenant":""}}"#] {
            let failure = tenant_of(body).expect_err("refused");
            assert_eq!(failure.code, "INVALID_CONTEXT", "{body:?}");
            assert!(failure.details.starts_with("context.tenant: "), "{}", failure.details);
        }
    }
}
