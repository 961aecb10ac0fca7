//! The role × action table: every action an API route performs, and who may perform it. Read it as
//! the access policy of the whole API; `authorize` adds the invariants on top.

use crate::model::{Pending, PlatformRole, Role, Scope};

/// One thing a caller may ask to do. Each route performs exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    ReadSync,
    ControlSync,
    AllowGuardedChange,
    ReadApps,
    ManageApps,
    ManageKeys,
    ReadOutbox,
    ClearLockout,
    ReadTenants,
    ManageTenants,
    UpdateTenant,
    ManageFlags,
    ListUsers,
    ManageUsers,
    ManageOwners,
    EndUserSessions,
    ResendInvitation,
    ReadOwnSession,
    ManageOwnSessions,
    ChangeOwnPassword,
    EnrolTotp,
    VerifySecondFactor,
    SignOut,
    ReadFlags,
    IntrospectTokens,
    EvaluateAccess,
    IngestUsage,
    ReadUsage,
    IngestAudit,
    ReadAudit,
    CheckBudget,
    ReadBudget,
    RequestOverride,
    ApproveOverride,
    /// Sign in to a managed application through Gatehouse (OpenID Connect).
    SignInToApplication,
}

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

/// The whole policy. Deny by default: an action missing here is allowed to nobody.
#[rustfmt::skip]
pub const TABLE: &[(Action, &[Grant])] = &[
    // action               who may
    (ReadSync,              &[Platform(Operator), Platform(Auditor)]),
    (ControlSync,           &[Platform(Operator)]),
    (AllowGuardedChange,    &[Platform(Operator)]),
    (ReadApps,              &[Platform(Operator), Platform(Auditor)]),
    (ManageApps,            &[Platform(Operator)]),
    (ManageKeys,            &[Platform(Operator)]),
    (ReadOutbox,            &[Platform(Operator)]),
    (ClearLockout,          &[Platform(Operator), TenantRole(Owner), TenantRole(Admin)]),
    (ReadTenants,           &[Platform(Operator), Platform(Auditor), TenantRole(Owner), TenantRole(Admin)]),
    (ManageTenants,         &[Platform(Operator)]),
    (UpdateTenant,          &[Platform(Operator), TenantRole(Owner)]),
    (ManageFlags,           &[Platform(Operator)]),
    (ListUsers,             &[Platform(Operator), Platform(Auditor), TenantRole(Owner), TenantRole(Admin)]),
    (ManageUsers,           &[Platform(Operator), TenantRole(Owner), TenantRole(Admin)]),
    (ManageOwners,          &[Platform(Operator), TenantRole(Owner)]),
    (EndUserSessions,       &[Platform(Operator), TenantRole(Owner), TenantRole(Admin)]),
    (ResendInvitation,      &[Platform(Operator), TenantRole(Owner), TenantRole(Admin)]),
    (ReadOwnSession,        &[AnySession]),
    (ManageOwnSessions,     &[AnySession]),
    (ChangeOwnPassword,     &[AnySession]),
    (EnrolTotp,             &[AnySession]),
    (VerifySecondFactor,    &[AnySession]),
    (SignOut,               &[AnySession]),
    (ReadFlags,             &[Key(Scope::FlagsRead)]),
    (IntrospectTokens,      &[Key(Scope::AuthIntrospect)]),
    (EvaluateAccess,        &[Key(Scope::AuthzEvaluate)]),
    (IngestUsage,           &[Key(Scope::UsageWrite)]),
    (ReadUsage,             &[Platform(Operator), Key(Scope::UsageRead)]),
    (IngestAudit,           &[Key(Scope::AuditWrite)]),
    (ReadAudit,             &[Platform(Operator), Platform(Auditor), TenantRole(Owner)]),
    (CheckBudget,           &[Key(Scope::UsageWrite)]),
    (ReadBudget,            &[Platform(Operator), Platform(Auditor), TenantRole(Owner), TenantRole(Admin), Key(Scope::UsageRead)]),
    (RequestOverride,       &[Platform(Operator), TenantRole(Owner)]),
    (ApproveOverride,       &[Platform(Operator), TenantRole(Owner)]),
    (SignInToApplication,   &[TenantRole(Owner), TenantRole(Admin), TenantRole(Role::User)]),
];

/// The grants of `action` in `TABLE` (none if it is missing: deny).
pub fn grants(action: Action) -> &'static [Grant] {
    TABLE.iter().find(|(a, _)| *a == action).map_or(&[], |(_, granted)| granted)
}

impl Action {
    /// Every action, in table order.
    pub const ALL: &'static [Action] = &[
        ReadSync,
        ControlSync,
        AllowGuardedChange,
        ReadApps,
        ManageApps,
        ManageKeys,
        ReadOutbox,
        ClearLockout,
        ReadTenants,
        ManageTenants,
        UpdateTenant,
        ManageFlags,
        ListUsers,
        ManageUsers,
        ManageOwners,
        EndUserSessions,
        ResendInvitation,
        ReadOwnSession,
        ManageOwnSessions,
        ChangeOwnPassword,
        EnrolTotp,
        VerifySecondFactor,
        SignOut,
        ReadFlags,
        IntrospectTokens,
        EvaluateAccess,
        IngestUsage,
        ReadUsage,
        IngestAudit,
        ReadAudit,
        CheckBudget,
        ReadBudget,
        RequestOverride,
        ApproveOverride,
        SignInToApplication,
    ];

    /// The action's stable name: in audit rows and in AuthZEN requests (`action.name`).
    pub fn name(self) -> &'static str {
        match self {
            ReadSync => "sync.read",
            ControlSync => "sync.control",
            AllowGuardedChange => "sync.allow",
            ReadApps => "apps.read",
            ManageApps => "apps.manage",
            ManageKeys => "keys.manage",
            ReadOutbox => "mail.read",
            ClearLockout => "users.unlock",
            ReadTenants => "tenants.read",
            ManageTenants => "tenants.manage",
            UpdateTenant => "tenants.update",
            ManageFlags => "flags.manage",
            ListUsers => "users.list",
            ManageUsers => "users.manage",
            ManageOwners => "users.owners.manage",
            EndUserSessions => "users.sessions.end",
            ResendInvitation => "users.invitation.send",
            ReadOwnSession => "session.read",
            ManageOwnSessions => "session.manage",
            ChangeOwnPassword => "session.password.change",
            EnrolTotp => "session.totp.enrol",
            VerifySecondFactor => "session.mfa.verify",
            SignOut => "session.logout",
            ReadFlags => "flags.read",
            IntrospectTokens => "tokens.introspect",
            EvaluateAccess => "access.evaluate",
            IngestUsage => "usage.ingest",
            ReadUsage => "usage.read",
            IngestAudit => "audit.ingest",
            ReadAudit => "audit.read",
            CheckBudget => "budget.check",
            ReadBudget => "budget.read",
            RequestOverride => "budget.override.request",
            ApproveOverride => "budget.override.approve",
            SignInToApplication => "applications.sign_in",
        }
    }

    pub fn parse(name: &str) -> Option<Action> {
        Self::ALL.iter().copied().find(|a| a.name() == name)
    }

    /// The verb of a denial's message: "<who> may not <verb> <resource>".
    pub fn verb(self) -> &'static str {
        match self {
            ReadSync | ReadApps | ReadOutbox | ReadOwnSession | ReadFlags | ReadTenants | ReadUsage | ReadAudit
            | ReadBudget => "read",
            IngestUsage | IngestAudit => "report",
            CheckBudget => "check",
            RequestOverride => "request an override of",
            ApproveOverride => "approve an override of",
            SignInToApplication => "sign in to",
            ManageTenants => "create, suspend, restore or delete",
            UpdateTenant | ManageFlags => "change",
            ManageUsers => "invite, change, disable or delete",
            ManageOwners => "add, change, disable or remove",
            ControlSync => "trigger, pause or resume",
            AllowGuardedChange => "allow a guarded change to",
            ManageApps => "create or change",
            ManageKeys => "issue, rotate or revoke the keys of",
            ClearLockout => "clear the lockout of",
            ListUsers => "list or read",
            EndUserSessions => "end the sessions of",
            ResendInvitation => "resend the invitation of",
            ManageOwnSessions => "list or end",
            ChangeOwnPassword => "change",
            EnrolTotp => "enrol TOTP for",
            VerifySecondFactor => "verify a second factor for",
            SignOut => "end",
            IntrospectTokens => "introspect or revoke",
            EvaluateAccess => "ask for",
        }
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
