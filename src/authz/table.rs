//! The role × action table: every action an API route performs, and who may perform it. Read it as
//! the access policy of the whole API; `authorize` adds the invariants on top.

use crate::model::{Pending, PlatformRole, Role, Scope};

/// Who an action is granted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// A platform operator or auditor (IdP group binding or the bootstrap token).
    Platform(PlatformRole),
    /// A session of a user with this role in the resource's tenant.
    TenantRole(Role),
    /// Any session, acting on the user's own account.
    AnySession,
    /// An application key holding this scope (for a tenant open to the application).
    Scope(Scope),
}

use Action::*;
use Grant::{AnySession, Platform, Scope as Key, TenantRole};
use PlatformRole::{Auditor, Operator};
use Role::{Admin, Owner};

/// One row per action makes the enum, `Action::ALL`, `name`, `verb` and `TABLE`: adding an action
/// is one line.
macro_rules! actions {
    ($( $(#[$doc:meta])* $action:ident => $name:literal, $verb:literal, [$($grant:expr),* $(,)?]; )*) => {
        /// One thing a caller may ask to do. Each route performs exactly one.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Action {
            $( $(#[$doc])* $action, )*
        }

        /// The whole policy. Deny by default: an action missing here is allowed to nobody.
        pub const TABLE: &[(Action, &[Grant])] = &[ $( (Action::$action, &[$($grant),*]), )* ];

        impl Action {
            /// Every action, in table order.
            pub const ALL: &'static [Action] = &[ $( Action::$action, )* ];

            /// The action's stable name: in audit rows and in AuthZEN requests (`action.name`).
            pub fn name(self) -> &'static str {
                match self { $( Action::$action => $name, )* }
            }

            /// The verb of a denial's message: "<who> may not <verb> <resource>".
            pub fn verb(self) -> &'static str {
                match self { $( Action::$action => $verb, )* }
            }
        }
    };
}

// action                 name, verb of a denial ("<who> may not <verb> <resource>"), who may
#[rustfmt::skip]
actions! {
    ReadSync             => "sync.read", "read", [Platform(Operator), Platform(Auditor)];
    ControlSync          => "sync.control", "trigger, pause or resume", [Platform(Operator)];
    AllowGuardedChange   => "sync.allow", "allow a guarded change to", [Platform(Operator)];
    ReadApps             => "apps.read", "read", [Platform(Operator), Platform(Auditor)];
    ManageApps           => "apps.manage", "create or change", [Platform(Operator)];
    ManageKeys           => "keys.manage", "issue, rotate or revoke the keys of", [Platform(Operator)];
    ReadOutbox           => "mail.read", "read", [Platform(Operator)];
    ClearLockout         => "users.unlock", "clear the lockout of", [Platform(Operator), TenantRole(Owner), TenantRole(Admin)];
    ReadTenants          => "tenants.read", "read", [Platform(Operator), Platform(Auditor), TenantRole(Owner), TenantRole(Admin)];
    ManageTenants        => "tenants.manage", "create, suspend, restore or delete", [Platform(Operator)];
    UpdateTenant         => "tenants.update", "change", [Platform(Operator), TenantRole(Owner)];
    ManageFlags          => "flags.manage", "change", [Platform(Operator)];
    ListUsers            => "users.list", "list or read", [Platform(Operator), Platform(Auditor), TenantRole(Owner), TenantRole(Admin)];
    ManageUsers          => "users.manage", "invite, change, disable or delete", [Platform(Operator), TenantRole(Owner), TenantRole(Admin)];
    ManageOwners         => "users.owners.manage", "add, change, disable or remove", [Platform(Operator), TenantRole(Owner)];
    EndUserSessions      => "users.sessions.end", "end the sessions of", [Platform(Operator), TenantRole(Owner), TenantRole(Admin)];
    ResendInvitation     => "users.invitation.send", "resend the invitation of", [Platform(Operator), TenantRole(Owner), TenantRole(Admin)];
    ReadOwnSession       => "session.read", "read", [AnySession];
    ManageOwnSessions    => "session.manage", "list or end", [AnySession];
    ChangeOwnPassword    => "session.password.change", "change", [AnySession];
    EnrolTotp            => "session.totp.enrol", "enrol TOTP for", [AnySession];
    VerifySecondFactor   => "session.mfa.verify", "verify a second factor for", [AnySession];
    SignOut              => "session.logout", "end", [AnySession];
    ReadFlags            => "flags.read", "read", [Key(Scope::FlagsRead)];
    IntrospectTokens     => "tokens.introspect", "introspect or revoke", [Key(Scope::AuthIntrospect)];
    EvaluateAccess       => "access.evaluate", "ask for", [Key(Scope::AuthzEvaluate)];
    IngestUsage          => "usage.ingest", "report", [Key(Scope::UsageWrite)];
    ReadUsage            => "usage.read", "read", [Platform(Operator), Key(Scope::UsageRead)];
    IngestAudit          => "audit.ingest", "report", [Key(Scope::AuditWrite)];
    ReadAudit            => "audit.read", "read", [Platform(Operator), Platform(Auditor), TenantRole(Owner)];
    CheckBudget          => "budget.check", "check", [Key(Scope::UsageWrite)];
    ReadBudget           => "budget.read", "read", [Platform(Operator), Platform(Auditor), TenantRole(Owner), TenantRole(Admin), Key(Scope::UsageRead)];
    RequestOverride      => "budget.override.request", "request an override of", [Platform(Operator), TenantRole(Owner)];
    ApproveOverride      => "budget.override.approve", "approve an override of", [Platform(Operator), TenantRole(Owner)];
    /// Sign in to a managed application through Gatehouse (OpenID Connect).
    SignInToApplication  => "applications.sign_in", "sign in to", [TenantRole(Owner), TenantRole(Admin), TenantRole(Role::User)];
}

/// The grants of `action` in `TABLE` (none if it is missing: deny).
pub fn grants(action: Action) -> &'static [Grant] {
    TABLE.iter().find(|(a, _)| *a == action).map_or(&[], |(_, granted)| granted)
}

impl Action {
    pub fn parse(name: &str) -> Option<Action> {
        Self::ALL.iter().copied().find(|a| a.name() == name)
    }

    /// What a session waiting for `pending` may still do: sign out and read itself, and take the
    /// step it waits for.
    pub fn allowed_while(self, pending: Pending) -> bool {
        match self {
            SignOut | ReadOwnSession => true,
            VerifySecondFactor => pending == Pending::MfaVerify,
            EnrolTotp => pending == Pending::MfaEnrol,
            _ => false,
        }
    }
}
