//! Every row of the table, for every kind of actor, against an expectation written out by hand
//! (not derived from `TABLE`): a changed row fails here. FR-005, SC-002.

use super::*;
use crate::delivery::{Principal, ScopeSet};
use crate::model::SessionView;
use crate::model::{Pending, Role, Scope};

fn session(tenant: &str, role: Role, pending: Option<Pending>) -> Actor {
    let now = chrono::Utc::now();
    Actor::User(SessionView {
        access_hash: Vec::new(),
        id: uuid::Uuid::nil(),
        user_id: uuid::Uuid::nil(),
        tenant_id: uuid::Uuid::nil(),
        tenant: tenant.into(),
        email: format!("{}@{tenant}.example", role.as_str()),
        name: None,
        role,
        pending,
        created_at: now,
        rotated_at: now,
        last_seen_at: now,
        expires_at: now,
        client_id: None,
    })
}

fn platform(role: PlatformRole) -> Actor {
    Actor::Platform(PlatformActor {
        role,
        name: "alice@corp.example".into(),
        via: PlatformVia::IdentityProvider {
            issuer: "https://idp.example".into(),
            subject: "alice".into(),
            display_name: None,
        },
    })
}

fn app(scope: Scope) -> Actor {
    Actor::Application(Principal::detached("analytics-app", "gh_test", ScopeSet::of_scopes(&[scope])))
}

const APPS: &[Box<str>] = &[];

fn open_apps() -> Vec<Box<str>> {
    vec!["analytics-app".into()]
}

/// The actors of the matrix, by label.
fn actors() -> Vec<(&'static str, Actor)> {
    vec![
        ("operator", platform(PlatformRole::Operator)),
        ("bootstrap", Actor::Platform(PlatformActor::bootstrap())),
        ("auditor", platform(PlatformRole::Auditor)),
        ("owner", session("acme", Role::Owner, None)),
        ("admin", session("acme", Role::Admin, None)),
        ("user", session("acme", Role::User, None)),
        ("flags-key", app(Scope::FlagsRead)),
        ("introspect-key", app(Scope::AuthIntrospect)),
        ("evaluate-key", app(Scope::AuthzEvaluate)),
        ("usage-key", app(Scope::UsageWrite)),
        ("usage-read-key", app(Scope::UsageRead)),
        ("audit-key", app(Scope::AuditWrite)),
        ("anonymous", Actor::Anonymous),
        // Gatehouse's own jobs are audited, never authorized: no action is theirs.
        ("system", Actor::System(Job::Reconciler)),
    ]
}

/// The resource each action is tried on: acme's where the action is about a tenant.
fn resource_of(action: Action, apps: &[Box<str>]) -> Resource<'_> {
    let acme = TenantFacts { name: "acme", known: Some(KnownTenant { active: true, applications: apps }) };
    match action {
        Action::ListUsers | Action::ManageUsers | Action::ClearLockout => Resource::of_tenant("users", acme),
        Action::ReadTenants | Action::UpdateTenant => Resource::of_tenant("settings", acme),
        Action::ManageFlags => Resource::of_tenant("flag overrides", acme),
        Action::ManageOwners => Resource::of_tenant("owners", acme),
        Action::EndUserSessions | Action::ResendInvitation => Resource::tenant_user("dan@acme.example", acme),
        Action::ReadFlags => Resource::of_tenant("flags", acme),
        Action::IngestUsage | Action::ReadUsage => Resource::of_tenant("usage", acme),
        Action::IngestAudit | Action::ReadAudit => Resource::of_tenant("audit log", acme),
        Action::CheckBudget | Action::ReadBudget | Action::RequestOverride | Action::ApproveOverride => {
            Resource::of_tenant("budget", acme)
        }
        Action::ReadOwnSession
        | Action::ManageOwnSessions
        | Action::ChangeOwnPassword
        | Action::EnrolTotp
        | Action::VerifySecondFactor
        | Action::SignOut => Resource::own("their own session"),
        Action::ManageKeys => Resource::application("analytics-app"),
        Action::SignInToApplication => Resource::tenant_application("analytics-app", acme),
        _ => Resource::platform("the platform"),
    }
}

/// Who may do each action, written out by hand.
fn expected(action: Action) -> &'static [&'static str] {
    use Action::*;
    match action {
        ReadSync | ReadApps => &["operator", "bootstrap", "auditor"],
        ControlSync | AllowGuardedChange | ManageApps | ManageKeys | ReadOutbox | ManageTenants | ManageFlags => {
            &["operator", "bootstrap"]
        }
        ListUsers | ReadTenants => &["operator", "bootstrap", "auditor", "owner", "admin"],
        EndUserSessions | ResendInvitation | ManageUsers | ClearLockout => &["operator", "bootstrap", "owner", "admin"],
        UpdateTenant | ManageOwners => &["operator", "bootstrap", "owner"],
        ReadOwnSession | ManageOwnSessions | ChangeOwnPassword | EnrolTotp | VerifySecondFactor | SignOut => {
            &["owner", "admin", "user"]
        }
        ReadFlags => &["flags-key"],
        IntrospectTokens => &["introspect-key"],
        EvaluateAccess => &["evaluate-key"],
        IngestUsage => &["usage-key"],
        ReadUsage => &["operator", "bootstrap", "usage-read-key"],
        IngestAudit => &["audit-key"],
        ReadAudit => &["operator", "bootstrap", "auditor", "owner"],
        CheckBudget => &["usage-key"],
        ReadBudget => &["operator", "bootstrap", "auditor", "owner", "admin", "usage-read-key"],
        RequestOverride | ApproveOverride => &["operator", "bootstrap", "owner"],
        SignInToApplication => &["owner", "admin", "user"],
    }
}

/// Every tenant's usage at once is for operators: a key with `usage:read` reads one open tenant.
#[test]
fn a_key_reads_the_usage_of_one_tenant_at_a_time() {
    let every = Resource::every_tenant("the usage of every tenant");
    assert_eq!(authorize(&platform(PlatformRole::Operator), Action::ReadUsage, &every), Decision::Allow);
    let Decision::Deny(deny) = authorize(&app(Scope::UsageRead), Action::ReadUsage, &every) else {
        panic!("a key may not read every tenant");
    };
    assert_eq!(deny.code, "forbidden");
    assert!(deny.message.contains("one tenant at a time"), "{}", deny.message);
    let apps = open_apps();
    let acme = TenantFacts { name: "acme", known: Some(KnownTenant { active: true, applications: &apps }) };
    assert_eq!(
        authorize(&app(Scope::UsageRead), Action::ReadUsage, &Resource::of_tenant("usage", acme)),
        Decision::Allow
    );
}

#[test]
fn every_row_of_the_table_for_every_kind_of_actor() {
    let apps = open_apps();
    let mut checked = 0;
    for action in Action::ALL.iter().copied() {
        let resource = resource_of(action, &apps);
        for (label, actor) in actors() {
            let allowed = expected(action).contains(&label);
            let decision = authorize(&actor, action, &resource);
            assert_eq!(decision == Decision::Allow, allowed, "{label} {action:?}: {decision:?}");
            if let Decision::Deny(deny) = decision {
                let by_scope = grants(action).iter().any(|g| matches!(g, Grant::Scope(_)));
                let code = match label {
                    "anonymous" => "unauthorized",
                    key if key.ends_with("-key") && by_scope => "insufficient_scope",
                    _ => "forbidden",
                };
                assert_eq!(deny.code, code, "{label} {action:?}");
                assert!(deny.message.contains(action.verb()), "{}", deny.message);
                assert!(!deny.required.is_empty());
            }
            checked += 1;
        }
    }
    assert_eq!(checked, Action::ALL.len() * actors().len());
}

#[test]
fn every_action_has_a_row_and_a_unique_name() {
    for action in Action::ALL {
        assert!(!grants(*action).is_empty(), "{action:?} has no row: nobody may do it");
        assert_eq!(Action::parse(action.name()), Some(*action));
    }
    assert_eq!(TABLE.len(), Action::ALL.len());
}

/// A tenant role holds only for a resource of a tenant: the platform-wide lockout route stays the
/// operators', the per-tenant one is also its owners' and admins'.
#[test]
fn tenant_roles_hold_only_for_a_resource_of_their_tenant() {
    let owner = session("acme", Role::Owner, None);
    let platform_wide = Resource::platform("the lockouts of sign-in");
    assert!(matches!(authorize(&owner, Action::ClearLockout, &platform_wide), Decision::Deny(_)));
    let apps = open_apps();
    assert_eq!(authorize(&owner, Action::ClearLockout, &resource_of(Action::ClearLockout, &apps)), Decision::Allow);
    let admin = session("acme", Role::Admin, None);
    let Decision::Deny(deny) = authorize(&admin, Action::ManageOwners, &resource_of(Action::ManageOwners, &apps))
    else {
        panic!("an admin may not change owners");
    };
    assert!(
        deny.message.contains("may not add, change, disable or remove the owners of tenant `acme`"),
        "{}",
        deny.message
    );
}

#[test]
fn denials_say_who_what_and_what_is_required() {
    let apps = open_apps();
    let Decision::Deny(deny) =
        authorize(&session("acme", Role::User, None), Action::ListUsers, &resource_of(Action::ListUsers, &apps))
    else {
        panic!("a plain user may not list users");
    };
    assert_eq!(
        deny.message,
        "user user@acme.example (user of `acme`) may not list or read the users of tenant `acme`: requires a platform operator, or a platform auditor, or a session of an owner or admin of tenant `acme`"
    );
    let Decision::Deny(deny) = authorize(&Actor::Anonymous, Action::ReadFlags, &resource_of(Action::ReadFlags, &apps))
    else {
        panic!("anonymous may not read flags");
    };
    assert!(deny.is_unauthenticated());
    assert!(deny.message.contains("flags:read"), "{}", deny.message);
}

#[test]
fn another_tenants_session_is_refused_whatever_its_role() {
    let apps = open_apps();
    let globex = session("globex", Role::Owner, None);
    for action in [Action::ListUsers, Action::EndUserSessions, Action::ResendInvitation] {
        let Decision::Deny(deny) = authorize(&globex, action, &resource_of(action, &apps)) else {
            panic!("{action:?} allowed across tenants");
        };
        assert_eq!((deny.code, deny.reason), ("forbidden", "a session of another tenant"));
    }
}

#[test]
fn a_pending_second_factor_wins_over_the_table() {
    let apps = open_apps();
    let waiting = session("acme", Role::Owner, Some(Pending::MfaVerify));
    let enrolling = session("acme", Role::Owner, Some(Pending::MfaEnrol));
    for action in Action::ALL.iter().copied().filter(|a| expected(*a).contains(&"owner")) {
        let resource = resource_of(action, &apps);
        let verify = authorize(&waiting, action, &resource);
        let enrol = authorize(&enrolling, action, &resource);
        let verify_ok = matches!(action, Action::SignOut | Action::ReadOwnSession | Action::VerifySecondFactor);
        let enrol_ok = matches!(action, Action::SignOut | Action::ReadOwnSession | Action::EnrolTotp);
        assert_eq!(verify == Decision::Allow, verify_ok, "{action:?} while waiting for a code");
        assert_eq!(enrol == Decision::Allow, enrol_ok, "{action:?} while enrolment is due");
        if let Decision::Deny(deny) = verify {
            assert_eq!(deny.code, "mfa_required");
        }
        if let Decision::Deny(deny) = enrol {
            assert_eq!(deny.code, "mfa_enrolment_required");
        }
    }
}

#[test]
fn applications_see_only_open_active_tenants() {
    let key = app(Scope::FlagsRead);
    let open = open_apps();
    let closed = TenantFacts { name: "acme", known: Some(KnownTenant { active: true, applications: APPS }) };
    let unknown = TenantFacts { name: "acme", known: None };
    let suspended = TenantFacts { name: "acme", known: Some(KnownTenant { active: false, applications: &open }) };
    for facts in [closed, unknown] {
        let Decision::Deny(deny) = authorize(&key, Action::ReadFlags, &Resource::of_tenant("flags", facts)) else {
            panic!("a closed or unknown tenant was served");
        };
        assert_eq!((deny.code, deny.reason), ("forbidden", "tenant not open to the application"));
    }
    let Decision::Deny(deny) = authorize(&key, Action::ReadFlags, &Resource::of_tenant("flags", suspended)) else {
        panic!("a suspended tenant was served");
    };
    assert_eq!(deny.code, "tenant_suspended");
}

#[test]
fn a_suspended_tenant_is_closed_to_its_own_users() {
    let apps = open_apps();
    let suspended = TenantFacts { name: "acme", known: Some(KnownTenant { active: false, applications: &apps }) };
    let Decision::Deny(deny) =
        authorize(&session("acme", Role::Owner, None), Action::ListUsers, &Resource::of_tenant("users", suspended))
    else {
        panic!("an owner acted on a suspended tenant");
    };
    assert_eq!(deny.code, "tenant_suspended");
    let operator =
        authorize(&platform(PlatformRole::Operator), Action::ListUsers, &Resource::of_tenant("users", suspended));
    assert_eq!(operator, Decision::Allow, "operators restore suspended tenants");
}

#[test]
fn platform_actors_act_on_suspended_and_unknown_tenants() {
    let unknown = TenantFacts { name: "gone", known: None };
    let decision =
        authorize(&platform(PlatformRole::Operator), Action::ListUsers, &Resource::of_tenant("users", unknown));
    assert_eq!(decision, Decision::Allow);
}

#[test]
fn the_audit_identity_names_each_kind_of_actor() {
    assert_eq!(platform(PlatformRole::Operator).name(), "alice@corp.example");
    assert_eq!(platform(PlatformRole::Auditor).kind(), "auditor");
    assert_eq!(Actor::Platform(PlatformActor::bootstrap()).identity()["via"], "bootstrap-token");
    assert_eq!(platform(PlatformRole::Operator).identity()["subject"], "alice");
    assert_eq!(app(Scope::FlagsRead).identity()["keyId"], "gh_test");
    assert_eq!(session("acme", Role::Admin, None).name(), "admin@acme.example");
}

/// Issue 14.3: only the applications a tenant enables may sign its users in, whatever their role.
#[test]
fn a_tenant_user_signs_in_only_to_applications_the_tenant_enables() {
    let apps = open_apps();
    let acme = TenantFacts { name: "acme", known: Some(KnownTenant { active: true, applications: &apps }) };
    let user = session("acme", Role::User, None);
    let enabled = Resource::tenant_application("analytics-app", acme);
    assert_eq!(authorize(&user, Action::SignInToApplication, &enabled), Decision::Allow);
    let Decision::Deny(deny) =
        authorize(&user, Action::SignInToApplication, &Resource::tenant_application("billing-app", acme))
    else {
        panic!("billing-app is not enabled by acme");
    };
    assert_eq!(deny.reason, "application not enabled by the tenant");
    assert!(deny.message.contains("has not enabled it"), "{}", deny.message);
    let pending = session("acme", Role::Owner, Some(Pending::MfaVerify));
    assert!(matches!(authorize(&pending, Action::SignInToApplication, &enabled), Decision::Deny(_)));
}

#[test]
fn a_change_that_touches_an_owner_is_owner_management() {
    assert_eq!(owner_change(Some(Role::Owner), None), Some(Action::ManageOwners));
    assert_eq!(owner_change(Some(Role::Admin), Some(Role::Owner)), Some(Action::ManageOwners));
    assert_eq!(owner_change(None, Some(Role::Owner)), Some(Action::ManageOwners));
    assert_eq!(owner_change(Some(Role::Admin), Some(Role::User)), None);
    assert_eq!(owner_change(Some(Role::User), None), None);
}
