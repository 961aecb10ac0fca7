//! The one API error type and its one body shape: `{"error":{"code","message"}}`.

use std::sync::atomic::{AtomicU64, Ordering};

use super::openapi::{ErrorBody, ErrorDetail};
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::identity::AuthError;
use crate::store::{Rule, StoreError};

pub type Result<T, E = ApiError> = std::result::Result<T, E>;

/// A malformed query string gets the same body as every other error.
impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::QueryRejection) -> Self {
        ApiError::BadRequest(rejection.body_text())
    }
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        let message = error.to_string();
        match error {
            AuthError::InvalidCredentials | AuthError::InvalidToken => ApiError::Unauthorized(message),
            AuthError::AccountDisabled => ApiError::Forbidden { code: "account_disabled", message },
            AuthError::TenantSuspended => ApiError::Forbidden { code: "tenant_suspended", message },
            AuthError::SsoRequired => ApiError::Forbidden { code: "sso_required", message },
            AuthError::Locked { retry_after } => ApiError::TooManyRequests { retry_after },
            AuthError::Link { code, .. } => ApiError::Invalid { code, message },
            AuthError::WeakPassword(_) => ApiError::Invalid { code: "weak_password", message },
            AuthError::InvalidCode => ApiError::Invalid { code: "invalid_code", message },
            AuthError::WrongCurrentPassword => ApiError::Invalid { code: "invalid_current_password", message },
            AuthError::Conflict(_) => ApiError::rule(Rule::Conflict, "conflict", message),
            AuthError::Store(error) => error.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unauthorized(String),
    /// 403 with a code saying why: `forbidden`, `insufficient_scope`, `tenant_suspended`,
    /// `application_disabled`.
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    #[error("{0}")]
    NotFound(String),
    #[error("too many requests; retry after {retry_after} s")]
    TooManyRequests { retry_after: u64 },
    #[error("{0}")]
    BadRequest(String),
    /// 400 with a code saying what is wrong: `weak_password`, `expired_token`, `invalid_code`, …
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    #[error("{0}")]
    MethodNotAllowed(String),
    /// 503 with `Retry-After`: the database is unreachable, or the server is not ready yet.
    #[error("{0}")]
    Unavailable(String),
    /// 413: the body is larger than the route accepts; refused before it is read.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// 415: a body of a content type the route does not read.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 408: the body did not arrive in time.
    #[error("{0}")]
    Timeout(String),
    /// A rule of the data refused the change: 404, 409, 412 or 422 with the rule's own code
    /// (`last_owner`, `managed_by_git`, `tenant_exists`, `stale`, `unknown_plan`, …).
    #[error("{message}")]
    Rule { rule: Rule, code: &'static str, message: String },
    /// 502: a server Gatehouse depends on refused (the config repository's remote refusing a
    /// write-back's push): the message is that server's, credentials removed.
    #[error("{message}")]
    BadGateway { code: &'static str, message: String },
    #[error(transparent)]
    Store(StoreError),
    /// 500 for a broken invariant of our own (logged; the client sees "internal error").
    #[error("{0}")]
    Internal(String),
}

/// Seconds a client is asked to wait after a 503.
const RETRY_UNAVAILABLE_AFTER: u64 = 2;

/// A database that cannot be reached is a 503 the client may retry (logged as a warning, at most
/// once a second however many requests meet it); any other store error is a 500.
impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        if let StoreError::Rule { rule, code, message } = error {
            return ApiError::Rule { rule, code, message };
        }
        if !error.is_unavailable() {
            return ApiError::Store(error);
        }
        static LAST_WARNED: AtomicU64 = AtomicU64::new(0);
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if LAST_WARNED.swap(now, Ordering::Relaxed) != now {
            tracing::warn!(%error, "the database is unavailable; answering 503");
        }
        ApiError::Unavailable("the database is unavailable; retry in a moment".into())
    }
}

impl ApiError {
    pub fn rule(rule: Rule, code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Rule { rule, code, message: message.into() }
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::Forbidden { code, .. } => (StatusCode::FORBIDDEN, *code),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::TooManyRequests { .. } => (StatusCode::TOO_MANY_REQUESTS, "too_many_requests"),
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Self::Invalid { code, .. } => (StatusCode::BAD_REQUEST, *code),
            Self::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Self::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Self::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Self::Timeout(_) => (StatusCode::REQUEST_TIMEOUT, "request_timeout"),
            Self::UnsupportedMediaType(_) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            Self::Rule { rule, code, .. } => (
                match rule {
                    Rule::NotFound => StatusCode::NOT_FOUND,
                    Rule::Conflict => StatusCode::CONFLICT,
                    Rule::Stale => StatusCode::PRECONDITION_FAILED,
                    Rule::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
                },
                *code,
            ),
            Self::BadGateway { code, .. } => (StatusCode::BAD_GATEWAY, *code),
            Self::Store(_) | Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

/// What a client is shown of an error: status, code, message (a 5xx only generically), and the
/// mark of a rule's refusal, for `refusals::layer` to audit.
pub(super) struct Shown {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub refused: Option<super::refusals::Refused>,
}

impl ApiError {
    pub(super) fn shown(&self) -> Shown {
        let (status, code) = self.status_and_code();
        let message = match self {
            // 5xx are logged and answered generically: no internals in responses.
            Self::Store(_) | Self::Internal(_) => {
                tracing::error!(error = %self, "request failed");
                "internal error".to_owned()
            }
            other => other.to_string(),
        };
        let refused =
            matches!(self, Self::Rule { .. }).then(|| super::refusals::Refused { code, message: message.clone() });
        Shown { status, code, message, refused }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let Shown { status, code, message, refused } = self.shown();
        let body = ErrorBody { error: ErrorDetail { code: code.to_owned(), message } };
        let mut response = (status, Json(body)).into_response();
        if let Some(refused) = refused {
            // Audited by `refusals::layer` on the routes that take it.
            response.extensions_mut().insert(refused);
        }
        let retry_after = match self {
            Self::TooManyRequests { retry_after } => Some(retry_after),
            Self::Unavailable(_) => Some(RETRY_UNAVAILABLE_AFTER),
            _ => None,
        };
        if let Some(retry_after) = retry_after {
            response.headers_mut().insert("retry-after", axum::http::HeaderValue::from(retry_after));
        }
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert("www-authenticate", axum::http::HeaderValue::from_static("Bearer"));
        }
        response
    }
}
