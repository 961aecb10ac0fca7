//! The `Caller` extractor: the one place a request's credential becomes an `Actor`, whatever it is
//! (a session token, an API key in either header, an identity provider's JWT, the bootstrap operator
//! token) — and `Caller::authorize`, the one place a decision of `authz` becomes a 401 or 403 that is
//! audited. A credential that proves nothing is refused (and audited) here, once; no credential at
//! all is the anonymous actor, whom `authorize` refuses where a route needs more.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, RawPathParams};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, Uri, header};
use serde_json::json;

use super::{ApiError, AppState, input};
use crate::audit::{self, Origin, Outcome, Target};
use crate::authz::{self, Action, Actor, Decision, Deny, Kind, KnownTenant, PlatformActor, Resource, TenantFacts};
use crate::delivery::KeyRefusal;
use crate::delivery::flags::TenantFlags;
use crate::denials::Refusal;
use crate::identity::Client;
use crate::identity::token::{self, TokenKind};
use crate::model::TenantName;
use crate::operators::RefusalKind;

/// Who is calling, and what the audit rows of their request say about where from.
#[derive(Clone)]
pub struct Caller {
    pub actor: Actor,
    head: Head,
    /// Where a refusal of this request is audited from (`refusals`), on the routes that audit them.
    asker: Option<super::refusals::Asker>,
}

/// What audit rows keep of a request: never its credential.
#[derive(Clone)]
struct Head {
    method: Method,
    uri: Uri,
    route: Option<MatchedPath>,
    ip: Option<IpAddr>,
    user_agent: Option<HeaderValue>,
}

impl Head {
    fn of(parts: &Parts) -> Head {
        Head {
            method: parts.method.clone(),
            uri: parts.uri.clone(),
            route: parts.extensions.get::<MatchedPath>().cloned(),
            ip: parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()),
            user_agent: parts.headers.get(header::USER_AGENT).cloned(),
        }
    }
}

/// The credential a request presents: `Authorization: Bearer …`, else `X-API-Key: …`. The header's
/// value is kept (a cheap reference-counted clone) so the request stays free to be read again.
enum Presented {
    Bearer(HeaderValue),
    ApiKey(HeaderValue),
}

/// The one bearer parser. The scheme is case-insensitive (RFC 9110 §11.1); any other scheme is no
/// credential of ours.
fn presented(headers: &HeaderMap) -> Option<Presented> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let (scheme, _) = value.to_str().ok()?.split_once(' ')?;
        return scheme.eq_ignore_ascii_case("bearer").then(|| Presented::Bearer(value.clone()));
    }
    headers.get("x-api-key").map(|key| Presented::ApiKey(key.clone()))
}

/// The token of an `Authorization: Bearer <token>` value, or an `X-API-Key` value.
fn token_of(value: &HeaderValue, bearer: bool) -> &str {
    let text = value.to_str().unwrap_or_default();
    let token = if bearer { text.split_once(' ').map_or("", |(_, token)| token) } else { text };
    token.trim()
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let head = Head::of(parts);
        let actor = match presented(&parts.headers) {
            None => Actor::Anonymous,
            Some(Presented::ApiKey(key)) => application(state, parts, &head, token_of(&key, false)).await?,
            Some(Presented::Bearer(token)) => bearer(state, parts, &head, token_of(&token, true)).await?,
        };
        crate::traces::on_request("actor.kind", actor.kind());
        let asker = parts.extensions.get::<super::refusals::Asker>().cloned();
        let caller = Caller { actor, head, asker };
        if let Some(asker) = &caller.asker {
            asker.set(&caller.actor, caller.origin());
        }
        if let Actor::Platform(PlatformActor { via: authz::PlatformVia::BootstrapToken, .. }) = &caller.actor {
            // Break-glass: every use of the bootstrap token is on the record.
            let target = Target::platform(caller.head.uri.path());
            let details = json!({ "method": caller.head.method.as_str() });
            Box::pin(caller.record(state, "operator.bootstrap_token.use", target, details)).await?;
        }
        Ok(caller)
    }
}

/// The actor a bearer token proves, by its kind.
async fn bearer(state: &AppState, parts: &mut Parts, head: &Head, token: &str) -> Result<Actor, ApiError> {
    // A bootstrap token never looks like another credential (`serve` refuses one that does), so
    // it is compared last: the hot paths (keys, sessions) pay no digest.
    match TokenKind::of(token) {
        Some(TokenKind::Access) => match state.identity.sessions.find(token::hash(token)).await? {
            Some(session) => Ok(Actor::User(session)),
            None => Err(refuse(state, parts, head, None, "the session token is unknown, expired or revoked").await),
        },
        Some(TokenKind::Refresh | TokenKind::Link | TokenKind::Code | TokenKind::ClientSecret) => {
            let reason = "this is not an access token (Authorization: Bearer gatehouse_at_…)";
            Err(refuse(state, parts, head, None, reason).await)
        }
        None if token.starts_with(crate::delivery::key::PREFIX) => application(state, parts, head, token).await,
        // Boxed: the verification's future (a JWKS fetch) is large, and every request's future
        // would otherwise carry its size (and be copied with it) on the hot paths too.
        None if crate::operators::looks_like_jwt(token) => Box::pin(platform(state, parts, head, token)).await,
        None if matches_bootstrap(state, token) => Ok(Actor::Platform(PlatformActor::bootstrap())),
        None => {
            let reason = "the bearer token is not a session token, an API key or an operator token this server knows";
            Err(refuse(state, parts, head, None, reason).await)
        }
    }
}

/// The operator or auditor an identity provider's JWT proves.
async fn platform(state: &AppState, parts: &mut Parts, head: &Head, token: &str) -> Result<Actor, ApiError> {
    let Some(verifier) = &state.operators else {
        let reason = "this server accepts no identity-provider tokens: it has no --oidc-issuer-url";
        return Err(refuse(state, parts, head, None, reason).await);
    };
    match verifier.verify(token).await {
        Ok(operator) => Ok(Actor::Platform(PlatformActor {
            role: operator.role,
            name: operator.username,
            via: authz::PlatformVia::IdentityProvider {
                issuer: operator.issuer,
                subject: operator.subject,
                display_name: operator.name,
            },
        })),
        Err(refusal) => {
            // The audit reason is one of a fixed few (refusals are aggregated by reason, and the
            // message repeats claims the caller chose); the message goes to `detail`.
            let message = crate::store::bounded(&refusal.to_string(), 512).into_owned();
            let reason = refusal.category();
            let error = match refusal.kind() {
                RefusalKind::Invalid => ApiError::Unauthorized(message.clone()),
                RefusalKind::Unbound => ApiError::Forbidden { code: "forbidden", message: message.clone() },
                RefusalKind::Unavailable => {
                    tracing::warn!(%message, "an operator's token cannot be checked");
                    let retry = "the identity provider's signing keys cannot be fetched; retry in a moment";
                    ApiError::Unavailable(retry.into())
                }
            };
            let detail = serde_json::Map::from_iter([("detail".to_owned(), json!(message))]);
            audit_refused(state, parts, head, None, reason, detail).await;
            Err(error)
        }
    }
}

/// Why a bootstrap token would be mistaken for another credential, if it would: such a token is
/// refused when `serve` starts rather than silently never matching.
pub fn bootstrap_token_problem(token: &str) -> Option<&'static str> {
    if token.starts_with(crate::delivery::key::PREFIX) {
        Some("it starts with `gatehouse_`, the prefix of API keys and session tokens")
    } else if crate::operators::looks_like_jwt(token) {
        Some("it looks like a JWT, which is checked against the identity provider")
    } else {
        None
    }
}

/// Constant-time comparison with the bootstrap operator token.
fn matches_bootstrap(state: &AppState, presented: &str) -> bool {
    state.operator_token.as_ref().is_some_and(|expected| expected.matches(presented))
}

/// The application an API key proves (memory only).
async fn application(state: &AppState, parts: &mut Parts, head: &Head, key: &str) -> Result<Actor, ApiError> {
    let cache = &state.delivery;
    if !cache.is_ready() {
        return Err(ApiError::Unavailable("API keys are still loading; retry in a moment".into()));
    }
    match cache.authenticate(Some(key)) {
        Ok(principal) => Ok(Actor::Application(principal)),
        Err((KeyRefusal::RateLimited(retry_after), _)) => {
            state.metrics.rate_limited.inc();
            Err(ApiError::TooManyRequests { retry_after })
        }
        Err((refusal, entry)) => {
            let key_id = entry.map(|e| e.key_id.to_string());
            audit_refused(state, parts, head, key_id, refusal.reason(), serde_json::Map::new()).await;
            Err(match refusal {
                KeyRefusal::ApplicationDisabled => ApiError::Forbidden {
                    code: "application_disabled",
                    message: "the application of this API key is disabled".into(),
                },
                _ => ApiError::Unauthorized(
                    "a valid API key is required (Authorization: Bearer … or X-API-Key); this one is missing, unknown, revoked or expired"
                        .into(),
                ),
            })
        }
    }
}

/// Audits a credential that proved nothing and returns the 401 to send.
async fn refuse(state: &AppState, parts: &mut Parts, head: &Head, key_id: Option<String>, reason: &str) -> ApiError {
    audit_refused(state, parts, head, key_id, reason, serde_json::Map::new()).await;
    ApiError::Unauthorized(reason.to_owned())
}

/// Audits a credential that proved nothing (aggregated with its repeats; never waits).
async fn audit_refused(
    state: &AppState,
    parts: &mut Parts,
    head: &Head,
    key_id: Option<String>,
    reason: &str,
    extra: serde_json::Map<String, serde_json::Value>,
) {
    let tenant = path_tenant(parts, state).await;
    state.denials.refused(Refusal {
        action: "api.denied",
        ip: head.ip.map(|ip| ip.to_string()),
        method: Some(head.method.to_string()),
        route: head.route.as_ref().map_or(head.uri.path(), MatchedPath::as_str).to_owned(),
        resource: head.uri.path().to_owned(),
        tenant,
        reason: reason.to_owned(),
        key_id,
        extra,
    });
}

/// The `{tenant}` of the route, for the audit row of a refusal.
async fn path_tenant(parts: &mut Parts, state: &AppState) -> Option<String> {
    let params = RawPathParams::from_request_parts(parts, state).await.ok()?;
    params.iter().find(|(name, _)| *name == "tenant").map(|(_, value)| value.to_owned())
}

/// What `authz` needs to know of a tenant, from the delivery cache.
pub(crate) fn facts<'a>(name: &'a str, flags: Option<&'a TenantFlags>) -> TenantFacts<'a> {
    TenantFacts { name, known: flags.map(|f| KnownTenant { active: f.active, applications: &f.applications }) }
}

impl Caller {
    /// A browser signed in (a tenant user's session cookie, or platform staff's): the same actor
    /// as a bearer token of the same person, so the consoles pass the same `authorize` and leave
    /// the same audit rows.
    pub fn of_browser(parts: &Parts, actor: Actor) -> Caller {
        let asker = parts.extensions.get::<super::refusals::Asker>().cloned();
        let caller = Caller { actor, head: Head::of(parts), asker };
        if let Some(asker) = &caller.asker {
            asker.set(&caller.actor, caller.origin());
        }
        caller
    }

    /// Whether `authorize` would let this caller do `action` to the users of `tenant` (an active
    /// tenant): what a console shows, never a decision itself (that is `authorize_tenant`'s, audited).
    pub fn may_in_tenant(&self, action: Action, tenant: &str) -> bool {
        let facts =
            authz::TenantFacts { name: tenant, known: Some(authz::KnownTenant { active: true, applications: &[] }) };
        self.may(action, &Resource { kind: authz::Kind::OfTenant("users"), tenant: Some(facts) })
    }

    /// Whether `authorize` would let this caller do `action` to `resource`: what a console shows,
    /// never a decision itself.
    pub fn may(&self, action: Action, resource: &Resource<'_>) -> bool {
        matches!(authz::authorize(&self.actor, action, resource), Decision::Allow)
    }

    /// Lets the request do `action` to `resource`, or refuses it: audited, 401 to an anonymous
    /// caller, 403 with the denial's code and message otherwise.
    pub fn authorize(&self, state: &AppState, action: Action, resource: &Resource<'_>) -> Result<(), ApiError> {
        match authz::authorize(&self.actor, action, resource) {
            Decision::Allow => Ok(()),
            Decision::Deny(deny) => Err(self.denied(state, action, resource, deny)),
        }
    }

    /// Lets the request do `action` to the `what` of the tenant a path names, and returns the
    /// tenant's name and in-memory state.
    pub fn authorize_tenant(
        &self,
        state: &AppState,
        action: Action,
        what: &'static str,
        tenant: &str,
    ) -> Result<(TenantName, Option<Arc<TenantFlags>>), ApiError> {
        self.authorize_in_tenant(state, action, tenant, Kind::OfTenant(what))
    }

    /// As `authorize_tenant`, for one user (by email) of the tenant.
    pub fn authorize_tenant_user(
        &self,
        state: &AppState,
        action: Action,
        tenant: &str,
        email: &str,
    ) -> Result<TenantName, ApiError> {
        let shown = crate::model::shown(email);
        let (name, _) = self.authorize_in_tenant(state, action, tenant, Kind::TenantUser(&shown))?;
        Ok(name)
    }

    /// Decides `action` on the resource `resource` makes of the tenant `tenant` names. A malformed
    /// name is a 400 only to someone who may do the action to a tenant of their own: the others
    /// learn first that they may not (their pending step, role or scope).
    fn authorize_in_tenant(
        &self,
        state: &AppState,
        action: Action,
        tenant: &str,
        kind: Kind<'_>,
    ) -> Result<(TenantName, Option<Arc<TenantFlags>>), ApiError> {
        crate::traces::on_request("tenant", tenant);
        let name = match input::tenant(tenant) {
            Ok(name) => name,
            Err(malformed) => {
                let own = match &self.actor {
                    Actor::User(session) => TenantFacts {
                        name: &session.tenant,
                        known: Some(KnownTenant { active: true, applications: &[] }),
                    },
                    Actor::Application(principal) => TenantFacts {
                        name: tenant,
                        known: Some(KnownTenant {
                            active: true,
                            applications: std::slice::from_ref(&principal.app.name),
                        }),
                    },
                    Actor::Platform(_) | Actor::Anonymous | Actor::System(_) => facts(tenant, None),
                };
                self.authorize(state, action, &Resource { kind, tenant: Some(own) })?;
                return Err(malformed);
            }
        };
        let flags = state.delivery.tenant(name.as_str());
        self.authorize(state, action, &Resource { kind, tenant: Some(facts(name.as_str(), flags.as_deref())) })?;
        // A refusal from here on is in the log of the tenant the path names (only callers allowed
        // to act on that name get here: a made-up name is an operator's).
        if let Some(asker) = &self.asker {
            asker.in_tenant(name.as_str());
        }
        Ok((name, flags))
    }

    /// Audits a denial and returns the error to send.
    fn denied(&self, state: &AppState, action: Action, resource: &Resource<'_>, deny: Deny) -> ApiError {
        let tenant = resource.tenant.map(|t| t.name.to_owned());
        if matches!(self.actor, Actor::Anonymous) {
            state.denials.refused(Refusal {
                action: "api.denied",
                ip: self.head.ip.map(|ip| ip.to_string()),
                method: Some(self.head.method.to_string()),
                route: self.route_template().to_owned(),
                resource: self.head.uri.path().to_owned(),
                tenant,
                reason: deny.reason.to_owned(),
                key_id: None,
                extra: serde_json::Map::new(),
            });
        } else {
            let target = Target { path: self.head.uri.path().to_owned(), tenant };
            let details = json!({
                "method": self.head.method.as_str(),
                "route": self.route_template(),
                "action": action.name(),
                "reason": deny.reason,
                "code": deny.code,
                "required": deny.required,
            });
            state.denials.record(audit::entry(
                &self.actor,
                "api.denied",
                target,
                Outcome::Failure,
                &self.origin(),
                details,
            ));
        }
        if deny.is_unauthenticated() {
            ApiError::Unauthorized(deny.message)
        } else {
            ApiError::Forbidden { code: deny.code, message: deny.message }
        }
    }

    fn route_template(&self) -> &str {
        self.head.route.as_ref().map_or(self.head.uri.path(), MatchedPath::as_str)
    }

    /// Where the request came from, for audit rows.
    pub fn origin(&self) -> Origin {
        self.client().origin()
    }

    /// The client as the identity flows record it.
    pub fn client(&self) -> Client {
        Client {
            ip: self.head.ip.map(|ip| ip.to_string()),
            user_agent: self
                .head
                .user_agent
                .as_ref()
                .and_then(|v| v.to_str().ok())
                .map(|v| v.chars().take(200).collect()),
        }
    }

    /// Writes the row of this caller having done `action` to `target` (for an action that commits
    /// on its own; one that must commit with a change passes `audit(…)` to the store function).
    pub async fn record(
        &self,
        state: &AppState,
        action: &str,
        target: Target,
        details: serde_json::Value,
    ) -> Result<(), ApiError> {
        Ok(audit::record(&state.pool, &self.actor, action, target, Outcome::Success, &self.origin(), details).await?)
    }

    /// The row of this caller having done `action` to `target`.
    pub fn audit(&self, action: &str, target: Target, details: serde_json::Value) -> crate::store::AuditEntry {
        audit::entry(&self.actor, action, target, Outcome::Success, &self.origin(), details)
    }

    /// The session of a user actor (routes whose only grant is a session use it after `authorize`).
    pub fn session(&self) -> Result<&crate::model::SessionView, ApiError> {
        match &self.actor {
            Actor::User(session) => Ok(session),
            _ => Err(ApiError::Internal("a route granted to sessions reached its handler without one".into())),
        }
    }

    /// The key of an application actor.
    pub fn principal(&self) -> Result<&crate::delivery::Principal, ApiError> {
        match &self.actor {
            Actor::Application(principal) => Ok(principal),
            _ => Err(ApiError::Internal("a route granted to API keys reached its handler without one".into())),
        }
    }
}

/// The client of a request that needs no credential (sign-in, refresh, links).
pub(crate) fn client(parts: &Parts) -> Client {
    Client {
        ip: parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip().to_string()),
        user_agent: parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().take(200).collect()),
    }
}

/// Where a request without a `Caller` came from, as its audit rows name it.
pub(crate) fn origin(parts: &Parts) -> Origin {
    client(parts).origin()
}

#[cfg(test)]
mod tests {
    use super::bootstrap_token_problem;

    #[test]
    fn a_bootstrap_token_shaped_like_another_credential_is_refused() {
        assert!(bootstrap_token_problem("gatehouse_admin").is_some());
        assert!(bootstrap_token_problem("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln").is_some());
        assert_eq!(bootstrap_token_problem("cli-test-token"), None);
    }
}
