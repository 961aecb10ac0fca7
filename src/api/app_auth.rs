//! `authorize`: the one place an application's request is let in or refused. It checks the key
//! (memory only), its scope, and that the tenant is open to the key's application and active.
//! Every refusal is audited (through the queue of `denials`: aggregated when the caller is anonymous,
//! never waiting for the database); 429s are counted instead.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, MatchedPath};
use axum::http::{HeaderMap, Method, header};
use serde_json::json;

use super::{ApiError, AppState};
use crate::delivery::flags::TenantFlags;
use crate::delivery::{KeyRefusal, Principal};
use crate::denials::Refusal;
use crate::model::Scope;
use crate::store::AuditEntry;

/// The key a request presents: `Authorization: Bearer <key>` or `X-API-Key: <key>`.
pub(crate) fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        return value.to_str().ok()?.strip_prefix("Bearer ");
    }
    headers.get("x-api-key")?.to_str().ok()
}

/// Where a request came from, for the audit row of a refusal.
pub(crate) struct RequestInfo<'a> {
    pub method: &'a Method,
    pub path: &'a str,
    /// The route's template, under which repeated anonymous refusals are aggregated.
    pub route: Option<&'a MatchedPath>,
    pub headers: &'a HeaderMap,
    pub peer: Option<&'a ConnectInfo<SocketAddr>>,
}

/// Lets `request` read `tenant` with `scope`, or refuses it (audited) with the documented status:
/// 401 for a missing, unknown, revoked or expired key; 403 `application_disabled`,
/// `insufficient_scope`, `forbidden` (a tenant that does not exist or is not open to the key's
/// application: the two look alike) or `tenant_suspended`; 429 over the key's rate limit; to a
/// valid key, 400 for a tenant name that is malformed.
pub(crate) async fn authorize(
    state: &AppState,
    request: RequestInfo<'_>,
    scope: Scope,
    tenant: &str,
) -> Result<(Principal, Arc<TenantFlags>), ApiError> {
    let principal = check_key(state, &request, scope, Some(tenant)).await?;
    // A name that cannot be a tenant's is the caller's typo, not a refusal: say so (issue 11.6).
    super::input::tenant(tenant)?;
    let cache = &state.delivery;
    let principal_ref = &principal;
    let request_ref = &request;
    let refuse = |code: &'static str, message: String, reason: &'static str| {
        let key_id = Some(principal_ref.key.key_id.to_string());
        audit_refusal(state, request_ref, Some(principal_ref), key_id, Some(tenant), reason);
        Err(ApiError::Forbidden { code, message })
    };
    let flags = match cache.tenant(tenant) {
        Some(flags) if flags.open_to(&principal.app.name) => flags,
        _ => {
            let message = format!("tenant `{tenant}` is not open to application `{}`", principal.app.name);
            return refuse("forbidden", message, "tenant not open to the application");
        }
    };
    if !flags.active {
        let message = format!("tenant `{tenant}` is suspended; its flags are not served until it is active again");
        return refuse("tenant_suspended", message, "tenant suspended");
    }
    Ok((principal, flags))
}

/// Lets in an application key with `scope`, whatever the tenant (the caller checks what the key
/// may see); refusals as in `authorize`.
pub(crate) async fn authenticate(
    state: &AppState,
    request: &RequestInfo<'_>,
    scope: Scope,
) -> Result<Principal, ApiError> {
    check_key(state, request, scope, None).await
}

async fn check_key(
    state: &AppState,
    request: &RequestInfo<'_>,
    scope: Scope,
    tenant: Option<&str>,
) -> Result<Principal, ApiError> {
    let cache = &state.delivery;
    if !cache.is_ready() {
        return Err(ApiError::Unavailable("API keys are still loading; retry in a moment".into()));
    }
    let principal = match cache.authenticate(presented_key(request.headers)) {
        Ok(principal) => principal,
        Err((KeyRefusal::RateLimited(retry_after), _)) => {
            state.metrics.rate_limited.inc();
            return Err(ApiError::TooManyRequests { retry_after });
        }
        Err((refusal, entry)) => {
            let error = match refusal {
                KeyRefusal::ApplicationDisabled => ApiError::Forbidden {
                    code: "application_disabled",
                    message: "the application of this API key is disabled".into(),
                },
                _ => ApiError::Unauthorized(
                    "a valid API key is required (Authorization: Bearer … or X-API-Key); this one is missing, unknown, revoked or expired"
                        .into(),
                ),
            };
            let key_id = entry.as_ref().map(|e| e.key_id.to_string());
            audit_refusal(state, request, None, key_id, tenant, refusal.reason());
            return Err(error);
        }
    };
    if !principal.scopes().contains(scope) {
        let key_id = Some(principal.key.key_id.to_string());
        audit_refusal(state, request, Some(&principal), key_id, tenant, "insufficient scope");
        return Err(ApiError::Forbidden {
            code: "insufficient_scope",
            message: format!("this API key lacks the {scope} scope"),
        });
    }
    Ok(principal)
}

/// Queues the audit row of a refusal: one per refusal of a known key, aggregated otherwise.
fn audit_refusal(
    state: &AppState,
    request: &RequestInfo<'_>,
    principal: Option<&Principal>,
    key_id: Option<String>,
    tenant: Option<&str>,
    reason: &str,
) {
    let ip = request.peer.map(|c| c.0.ip().to_string());
    let Some(principal) = principal else {
        state.denials.refused(Refusal {
            action: "api.denied",
            ip,
            method: Some(request.method.to_string()),
            route: request.route.map_or(request.path, MatchedPath::as_str).to_owned(),
            resource: request.path.to_owned(),
            tenant: tenant.map(str::to_owned),
            reason: reason.to_owned(),
            key_id,
            extra: serde_json::Map::new(),
        });
        return;
    };
    state.denials.record(AuditEntry {
        actor: principal.app.name.to_string(),
        actor_type: "application",
        action: "api.denied".into(),
        resource: request.path.to_owned(),
        tenant: tenant.map(str::to_owned),
        success: false,
        metadata: json!({ "method": request.method.as_str(), "ip": ip, "reason": reason, "keyId": key_id }),
    });
}
