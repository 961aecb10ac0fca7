//! Refusals by a rule of the data audited in one place (issue 22.4): a known caller's request that
//! a rule refuses (`409 managed_by_git`, `last_owner`, `email_taken`, `422 wrong_flag_type`,
//! `412 stale`, `404` of what it names, …) leaves one `api.refused` row naming who, what and why,
//! whichever handler refused it. `authorize`'s denials (401, 403) are audited where they are
//! decided; a malformed request (400) is not a decision about anyone's data.
//!
//! The administration routes take this layer; the hot paths (flags, OFREP, session checks, usage)
//! do not, and pay nothing for it. The `Caller` extractor leaves who asked in the request's
//! `Asker`; `ApiError` marks a rule's refusal on its response (`Refused`).

use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use serde_json::json;

use super::AppState;
use crate::audit::{self, Origin, Outcome, Target};
use crate::authz::Actor;

/// Who asked, left by the `Caller` extractor on the routes that take this layer, with the tenant
/// the request acts in once `authorize` has read its name (as the handler decoded it).
#[derive(Clone, Default)]
pub(crate) struct Asker(Arc<Mutex<Asked>>);

#[derive(Default)]
struct Asked {
    who: Option<(Actor, Origin)>,
    tenant: Option<String>,
}

impl Asker {
    pub(super) fn set(&self, actor: &Actor, origin: Origin) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).who = Some((actor.clone(), origin));
    }

    pub(super) fn in_tenant(&self, tenant: &str) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).tenant = Some(tenant.to_owned());
    }

    fn take(&self) -> Asked {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// On a response: a rule refused the request, with this code and message.
#[derive(Clone, Debug)]
pub(super) struct Refused {
    pub(super) code: &'static str,
    pub(super) message: String,
}

pub(super) async fn layer(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let asker = Asker::default();
    request.extensions_mut().insert(asker.clone());
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let route = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned());
    let response = next.run(request).await;
    let asked = asker.take();
    if let (Some(refused), Some((actor, origin))) = (response.extensions().get::<Refused>(), asked.who)
        && !matches!(actor, Actor::Anonymous)
    {
        let details = json!({
            "method": method.as_str(),
            "route": route,
            "status": response.status().as_u16(),
            "code": refused.code,
            "reason": refused.message,
        });
        let target = Target { tenant: asked.tenant, path };
        state.denials.record(audit::entry(&actor, "api.refused", target, Outcome::Failure, &origin, details));
    }
    response
}
