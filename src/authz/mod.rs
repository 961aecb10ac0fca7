//! Who may do what: one pure decision, `authorize(&Actor, Action, &Resource)`, for every request of
//! every kind of caller. No HTTP, no SQL: the API extracts the `Actor`, describes the `Resource` from
//! what it already knows (the in-memory tenant facts), and turns a `Deny` into a 401 or 403 that it
//! audits.
//!
//! Deny by default. `TABLE` grants each action to roles; the invariants (`invariant`) are checked
//! first and always win over it: a session waiting for a second factor does nothing else, nobody but
//! a platform operator or auditor touches another tenant, and a suspended tenant is closed to its own
//! users and to applications.

mod actor;
mod table;

pub use actor::{Actor, Job, PlatformActor, PlatformVia};
pub use table::{Action, Grant, TABLE, grants};

use crate::model::{PlatformRole, Role};

/// What an action is done to: a description for messages, and the tenant it belongs to, if any.
#[derive(Debug, Clone, Copy)]
pub struct Resource<'a> {
    pub kind: Kind<'a>,
    pub tenant: Option<TenantFacts<'a>>,
}

/// The resource, for messages and audit rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind<'a> {
    /// Something of the platform as a whole: "the sync status", "applications".
    Platform(&'static str),
    /// One managed application.
    Application(&'a str),
    /// Part of one tenant: "flags", "users".
    OfTenant(&'static str),
    /// One user of the tenant.
    TenantUser(&'a str),
    /// The caller's own account: "their own sessions".
    Own(&'static str),
    /// Something of every tenant at once: "the usage of every tenant". Never an application's:
    /// a key reaches only the tenants that list its application, one at a time.
    EveryTenant(&'static str),
    /// A managed application as the tenant's users reach it (sign-in through Gatehouse).
    TenantApplication(&'a str),
}

/// What `authorize` needs to know of a tenant, from the in-memory delivery cache.
#[derive(Debug, Clone, Copy)]
pub struct TenantFacts<'a> {
    pub name: &'a str,
    /// `None`: no tenant has this name (to an application, that looks like a closed tenant).
    pub known: Option<KnownTenant<'a>>,
}

#[derive(Debug, Clone, Copy)]
pub struct KnownTenant<'a> {
    pub active: bool,
    /// Applications whose keys may read this tenant.
    pub applications: &'a [Box<str>],
}

impl<'a> Resource<'a> {
    pub const fn platform(what: &'static str) -> Self {
        Resource { kind: Kind::Platform(what), tenant: None }
    }

    pub fn application(name: &'a str) -> Self {
        Resource { kind: Kind::Application(name), tenant: None }
    }

    pub const fn every_tenant(what: &'static str) -> Self {
        Resource { kind: Kind::EveryTenant(what), tenant: None }
    }

    pub const fn own(what: &'static str) -> Self {
        Resource { kind: Kind::Own(what), tenant: None }
    }

    pub fn of_tenant(what: &'static str, tenant: TenantFacts<'a>) -> Self {
        Resource { kind: Kind::OfTenant(what), tenant: Some(tenant) }
    }

    pub fn tenant_user(email: &'a str, tenant: TenantFacts<'a>) -> Self {
        Resource { kind: Kind::TenantUser(email), tenant: Some(tenant) }
    }

    pub fn tenant_application(application: &'a str, tenant: TenantFacts<'a>) -> Self {
        Resource { kind: Kind::TenantApplication(application), tenant: Some(tenant) }
    }
}

impl std::fmt::Display for Resource<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tenant = self.tenant.map(|t| t.name).unwrap_or_default();
        match self.kind {
            Kind::Platform(what) | Kind::Own(what) | Kind::EveryTenant(what) => f.write_str(what),
            Kind::Application(name) => write!(f, "application `{name}`"),
            Kind::OfTenant(what) => write!(f, "the {what} of tenant `{tenant}`"),
            Kind::TenantUser(email) => write!(f, "user {email} of tenant `{tenant}`"),
            Kind::TenantApplication(name) => write!(f, "application `{name}` for tenant `{tenant}`"),
        }
    }
}

/// The decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny(Deny),
}

/// Why not: `code` is the error code the caller sees, `reason` the short phrase of the audit row,
/// `message` the sentence the caller reads, `required` what would have been allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deny {
    pub code: &'static str,
    pub reason: &'static str,
    pub message: String,
    pub required: String,
}

impl Deny {
    /// A caller that presented no credential at all: the API answers 401, not 403.
    pub fn is_unauthenticated(&self) -> bool {
        self.code == UNAUTHENTICATED
    }
}

/// The code of a denial to an anonymous caller.
pub const UNAUTHENTICATED: &str = "unauthorized";

/// May `actor` do `action` to `resource`? Invariants first, then the table; deny by default.
pub fn authorize(actor: &Actor, action: Action, resource: &Resource<'_>) -> Decision {
    if let Some(deny) = invariant(actor, action, resource) {
        return Decision::Deny(deny);
    }
    let granted = grants(action);
    if granted.iter().any(|grant| holds(actor, *grant, resource)) {
        return Decision::Allow;
    }
    let required = describe_grants(granted, resource);
    if matches!(actor, Actor::Anonymous) {
        return Decision::Deny(Deny {
            code: UNAUTHENTICATED,
            reason: "no credential presented",
            message: format!("a credential is required to {} {resource}: {required}", action.verb()),
            required,
        });
    }
    let (code, reason) = match actor {
        Actor::Application(_) if granted.iter().any(|g| matches!(g, Grant::Scope(_))) => {
            ("insufficient_scope", "insufficient scope")
        }
        _ => ("forbidden", "role not allowed"),
    };
    Decision::Deny(Deny {
        code,
        reason,
        message: format!("{actor} may not {} {resource}: requires {required}", action.verb()),
        required,
    })
}

/// The rules that win over the table.
fn invariant(actor: &Actor, action: Action, resource: &Resource<'_>) -> Option<Deny> {
    match actor {
        Actor::User(session) => {
            if let Some(pending) = session.pending
                && !action.allowed_while(pending)
            {
                return Some(pending_deny(pending));
            }
            let tenant = resource.tenant?;
            if tenant.name != session.tenant {
                return Some(Deny {
                    code: "forbidden",
                    reason: "a session of another tenant",
                    message: format!(
                        "{actor} may not {} {resource}: a session of tenant `{}` acts only on that tenant",
                        action.verb(),
                        session.tenant
                    ),
                    required: format!("a session of tenant `{}`", tenant.name),
                });
            }
            // Only the applications a tenant enables may sign its users in.
            if let (Kind::TenantApplication(application), Some(known)) = (resource.kind, tenant.known)
                && known.active
                && !known.applications.iter().any(|a| &**a == application)
            {
                return Some(Deny {
                    code: "forbidden",
                    reason: "application not enabled by the tenant",
                    message: format!(
                        "{actor} may not {} {resource}: tenant `{}` has not enabled it",
                        action.verb(),
                        tenant.name
                    ),
                    required: format!("`{application}` among the applications of tenant `{}`", tenant.name),
                });
            }
            // Sessions of a suspended tenant are not found at all; this keeps the rule where it is
            // stated, for every other way a session may be asked about (AuthZEN).
            tenant.known.filter(|k| !k.active).map(|_| Deny {
                code: "tenant_suspended",
                reason: "tenant suspended",
                message: format!(
                    "tenant `{}` is suspended; its users may do nothing until it is active again",
                    tenant.name
                ),
                required: format!("tenant `{}` active", tenant.name),
            })
        }
        Actor::Application(principal) => {
            if let Kind::EveryTenant(what) = resource.kind {
                return Some(Deny {
                    code: "forbidden",
                    reason: "every tenant asked by an application",
                    message: format!(
                        "{actor} may not {} {what}: requires a platform role; an API key reads one tenant at a time (name it with `tenant=`)",
                        action.verb()
                    ),
                    required: "a platform role, or a `tenant` that lists the application".into(),
                });
            }
            let tenant = resource.tenant?;
            let app = &*principal.app.name;
            let Some(known) = tenant.known.filter(|k| k.applications.iter().any(|a| &**a == app)) else {
                // A tenant that does not exist and one closed to the application look alike.
                return Some(Deny {
                    code: "forbidden",
                    reason: "tenant not open to the application",
                    message: format!("tenant `{}` is not open to application `{app}`", tenant.name),
                    required: format!("tenant `{}` listing application `{app}`", tenant.name),
                });
            };
            (!known.active).then(|| Deny {
                code: "tenant_suspended",
                reason: "tenant suspended",
                message: format!(
                    "tenant `{}` is suspended; it is served to no application until it is active again",
                    tenant.name
                ),
                required: format!("tenant `{}` active", tenant.name),
            })
        }
        Actor::Platform(_) | Actor::Anonymous | Actor::System(_) => None,
    }
}

fn pending_deny(pending: crate::model::Pending) -> Deny {
    use crate::model::Pending;
    match pending {
        Pending::MfaEnrol => Deny {
            code: "mfa_enrolment_required",
            reason: "TOTP enrolment pending",
            message: "owners must enrol TOTP first: POST /v1/auth/mfa/totp/enrol, then /v1/auth/mfa/totp/confirm"
                .into(),
            required: "an enrolled second factor".into(),
        },
        Pending::MfaVerify => Deny {
            code: "mfa_required",
            reason: "second factor pending",
            message: "this session waits for a second factor: POST /v1/auth/mfa/verify".into(),
            required: "a verified second factor".into(),
        },
    }
}

/// The owner rule: a change to a user who is, or would become, an owner (`current` and `new`
/// roles) is owner management, which needs `ManageOwners` (operators and owners) beyond the
/// action itself; `None`: no more than the action.
pub fn owner_change(current: Option<Role>, new: Option<Role>) -> Option<Action> {
    (current == Some(Role::Owner) || new == Some(Role::Owner)).then_some(Action::ManageOwners)
}

/// Whether `actor` holds `grant` (the invariants already passed).
fn holds(actor: &Actor, grant: Grant, resource: &Resource<'_>) -> bool {
    match (grant, actor) {
        (Grant::Platform(role), Actor::Platform(platform)) => platform.role == role,
        (Grant::TenantRole(role), Actor::User(session)) => session.role == role && resource.tenant.is_some(),
        (Grant::AnySession, Actor::User(_)) => true,
        (Grant::Scope(scope), Actor::Application(principal)) => principal.scopes().contains(scope),
        _ => false,
    }
}

/// "operator, or owner or admin of tenant `acme`".
fn describe_grants(granted: &[Grant], resource: &Resource<'_>) -> String {
    let mut parts: Vec<String> = Vec::new();
    let roles: Vec<&str> =
        granted.iter().filter_map(|g| if let Grant::TenantRole(r) = g { Some(r.as_str()) } else { None }).collect();
    for grant in granted {
        match grant {
            Grant::Platform(PlatformRole::Operator) => parts.push("a platform operator".into()),
            Grant::Platform(PlatformRole::Auditor) => parts.push("a platform auditor".into()),
            Grant::AnySession => parts.push("a session of the user (Authorization: Bearer gatehouse_at_…)".into()),
            Grant::Scope(scope) => {
                parts.push(format!("an API key with the {scope} scope (Authorization: Bearer … or X-API-Key)"))
            }
            Grant::TenantRole(_) => {}
        }
    }
    if !roles.is_empty() {
        let tenant = resource.tenant.map(|t| t.name).unwrap_or_default();
        parts.push(format!("a session of an {} of tenant `{tenant}`", roles.join(" or ")));
    }
    parts.join(", or ")
}

#[cfg(test)]
mod tests;
