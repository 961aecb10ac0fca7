//! `Actor`: who is acting: a caller, whatever credential they presented, or Gatehouse's own job.

use crate::delivery::Principal;
use crate::model::PlatformRole;
use crate::model::SessionView;

/// Who acts: the caller of a request, or one of Gatehouse's jobs.
#[derive(Clone)]
pub enum Actor {
    /// Someone who runs Gatehouse: an operator or an auditor.
    Platform(PlatformActor),
    /// A tenant's user, through a session (possibly waiting for a second factor).
    User(SessionView),
    /// A managed application, through one of its API keys.
    Application(Principal),
    /// No credential at all.
    Anonymous,
    /// Gatehouse itself: a job acting on nobody's request (it is never authorized, only audited).
    System(Job),
}

/// The jobs that act as `Actor::System`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    /// Applies what Git declares.
    Reconciler,
    /// Records the budget thresholds crossed.
    Budgets,
    /// Purges deleted tenants whose reservation ended.
    Purge,
    /// Drops the audit log's partitions past retention.
    Retention,
}

impl Job {
    /// The job's name: the audit row's `actor`.
    pub fn name(self) -> &'static str {
        match self {
            Job::Reconciler => "gatehouse-reconciler",
            Job::Budgets => "gatehouse-budgets",
            Job::Purge => "gatehouse-purge",
            Job::Retention => "gatehouse-retention",
        }
    }
}

/// A platform operator or auditor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformActor {
    pub role: PlatformRole,
    /// Who: the IdP's username claim, or `bootstrap-token`.
    pub name: String,
    pub via: PlatformVia,
}

/// How a platform actor proved who they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlatformVia {
    /// A JWT of the configured identity provider.
    IdentityProvider { issuer: String, subject: String, display_name: Option<String> },
    /// The bootstrap operator token: first set-up and break-glass only.
    BootstrapToken,
}

impl PlatformActor {
    pub fn bootstrap() -> Self {
        PlatformActor { role: PlatformRole::Operator, name: "bootstrap-token".into(), via: PlatformVia::BootstrapToken }
    }
}

impl Actor {
    /// The audit row's `actor_type`.
    pub fn kind(&self) -> &'static str {
        match self {
            Actor::Platform(p) => p.role.as_str(),
            Actor::User(_) => "user",
            Actor::Application(_) => "application",
            Actor::Anonymous => "anonymous",
            Actor::System(_) => "system",
        }
    }

    /// The audit row's `actor`: an email, an IdP username, an application's name, a job's name.
    pub fn name(&self) -> &str {
        match self {
            Actor::Platform(p) => &p.name,
            Actor::User(session) => &session.email,
            Actor::Application(principal) => &principal.app.name,
            Actor::Anonymous => "anonymous",
            Actor::System(job) => job.name(),
        }
    }

    /// The tenant the actor belongs to: a user's.
    pub fn tenant(&self) -> Option<&str> {
        match self {
            Actor::User(session) => Some(&session.tenant),
            _ => None,
        }
    }

    /// How the actor is identified beyond its name, the same way in every audit row.
    pub fn identity(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            Actor::Platform(PlatformActor { via: PlatformVia::BootstrapToken, .. }) => {
                json!({ "via": "bootstrap-token" })
            }
            Actor::Platform(PlatformActor {
                via: PlatformVia::IdentityProvider { issuer, subject, display_name },
                ..
            }) => {
                json!({ "via": "identity-provider", "issuer": issuer, "subject": subject, "displayName": display_name })
            }
            Actor::User(session) => {
                crate::model::user_identity(session.user_id, session.id, &session.tenant, session.role)
            }
            Actor::Application(principal) => json!({ "keyId": &*principal.key.key_id }),
            // A job is named in full by the row's `actor` and `actor_type` (`system`).
            Actor::Anonymous | Actor::System(_) => serde_json::Value::Null,
        }
    }
}

impl std::fmt::Display for Actor {
    /// "operator alice@corp.example", "user dan@acme.example (user of `acme`)".
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Actor::Platform(PlatformActor { via: PlatformVia::BootstrapToken, .. }) => {
                f.write_str("the bootstrap operator token")
            }
            Actor::Platform(p) => write!(f, "{} {}", p.role, p.name),
            Actor::User(s) => write!(f, "user {} ({} of `{}`)", s.email, s.role, s.tenant),
            Actor::Application(p) => write!(f, "application `{}` (key {})", p.app.name, p.key.key_id),
            Actor::Anonymous => f.write_str("an anonymous caller"),
            Actor::System(job) => write!(f, "Gatehouse's {}", job.name()),
        }
    }
}

impl std::fmt::Debug for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}
