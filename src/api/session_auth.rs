//! Sessions of tenant users on our API: `Authorization: Bearer gatehouse_at_…`, checked against the
//! database on every request (coalesced, see `identity::lookup`), so a revocation holds from the
//! next request. Refusals are audited.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;

use super::{ApiError, AppState, Denied, deny};
use crate::identity::Client;
use crate::identity::token::{self, TokenKind};
use crate::store::identity::SessionView;

/// Any live session, also one that still waits for its second factor.
pub struct AnySession(pub SessionView);

/// A live session with nothing pending: what every endpoint but sign-in's own needs.
pub struct Session(pub SessionView);

pub(crate) fn bearer(parts: &Parts) -> Option<&str> {
    parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ")
}

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

/// The session a request presents, or `None` if it presents no access token.
pub(crate) async fn presented_session(state: &AppState, parts: &Parts) -> Result<Option<SessionView>, ApiError> {
    let Some(presented) = bearer(parts).filter(|t| TokenKind::of(t) == Some(TokenKind::Access)) else {
        return Ok(None);
    };
    match state.identity.sessions.find(token::hash(presented)).await? {
        Some(session) => Ok(Some(session)),
        None => Err(deny(&state.denials, Denied::of_parts(parts), "the session token is unknown, expired or revoked")),
    }
}

impl FromRequestParts<AppState> for AnySession {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match presented_session(state, parts).await? {
            Some(session) => Ok(AnySession(session)),
            None => Err(deny(
                &state.denials,
                Denied::of_parts(parts),
                "a session is required (Authorization: Bearer gatehouse_at_…)",
            )),
        }
    }
}

impl FromRequestParts<AppState> for Session {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let AnySession(session) = AnySession::from_request_parts(parts, state).await?;
        match session.pending.as_deref() {
            None => Ok(Session(session)),
            Some(pending) => Err(pending_refusal(pending)),
        }
    }
}

pub(crate) fn pending_refusal(pending: &str) -> ApiError {
    if pending == "mfa_enrol" {
        ApiError::Forbidden {
            code: "mfa_enrolment_required",
            message: "owners must enrol TOTP first: POST /v1/auth/mfa/totp/enrol, then /v1/auth/mfa/totp/confirm"
                .into(),
        }
    } else {
        ApiError::Forbidden {
            code: "mfa_required",
            message: "this session waits for a second factor: POST /v1/auth/mfa/verify".into(),
        }
    }
}
