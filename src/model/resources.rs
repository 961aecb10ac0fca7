//! The declared resources after validation: what Git says the platform should look like.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{AppName, Email, FlagKey, FlagValue, PlanName, TenantName};

/// Declares `as_str` for a unit-only enum from its serde names, so SQL, hashes and output agree.
macro_rules! str_enum {
    ($name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
            pub fn parse(text: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == text)
            }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

/// A tenant user's role: `owner` (everything, incl. contract and SSO), `admin` (users), `user`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Owner,
    Admin,
    User,
}
str_enum!(Role { Owner => "owner", Admin => "admin", User => "user" });

/// A platform role, held by people who run Gatehouse itself (bound from the groups an external
/// identity provider gives them): `operator` (everything) or `auditor` (reads status and audit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PlatformRole {
    Operator,
    Auditor,
}
str_enum!(PlatformRole { Operator => "operator", Auditor => "auditor" });

/// What Git says about a user's access. Live users also pass through `invited` until they set a
/// credential; that is lifecycle, not drift.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum UserStatus {
    #[default]
    Active,
    Disabled,
}
str_enum!(UserStatus { Active => "active", Disabled => "disabled" });

/// A live account's state: `invited` until the user sets a credential, then `active` or `disabled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AccountStatus {
    Invited,
    Active,
    Disabled,
}
str_enum!(AccountStatus { Invited => "invited", Active => "active", Disabled => "disabled" });

/// The step a session waits for before it may do anything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Pending {
    /// A second factor (TOTP or a recovery code): `POST /v1/auth/mfa/verify`.
    MfaVerify,
    /// An owner without TOTP must enrol it first.
    MfaEnrol,
}
str_enum!(Pending { MfaVerify => "mfa_verify", MfaEnrol => "mfa_enrol" });

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TenantStatus {
    #[default]
    Active,
    Suspended,
}
str_enum!(TenantStatus { Active => "active", Suspended => "suspended" });

/// Where a live tenant is in its lifecycle: `active`; `suspended` (its users and applications are
/// refused); `pending_deletion` (suspended, and purged at `purgeAfter` unless restored first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TenantState {
    Active,
    Suspended,
    PendingDeletion,
}
str_enum!(TenantState { Active => "active", Suspended => "suspended", PendingDeletion => "pending_deletion" });

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AppStatus {
    #[default]
    Active,
    Disabled,
}
str_enum!(AppStatus { Active => "active", Disabled => "disabled" });

/// What happens when a tenant reaches its monthly budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum OnLimit {
    /// Refuse further usage.
    Block,
    /// Refuse unless an owner approves an override.
    RequireOverride,
    /// Allow, but warn.
    Warn,
}
str_enum!(OnLimit { Block => "block", RequireOverride => "requireOverride", Warn => "warn" });

/// What an application's API keys may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
pub enum Scope {
    #[serde(rename = "flags:read")]
    FlagsRead,
    #[serde(rename = "usage:write")]
    UsageWrite,
    #[serde(rename = "usage:read")]
    UsageRead,
    #[serde(rename = "audit:write")]
    AuditWrite,
    #[serde(rename = "auth:introspect")]
    AuthIntrospect,
    /// Ask Gatehouse for access decisions about sessions (`POST /access/v1/evaluation`, AuthZEN).
    #[serde(rename = "authz:evaluate")]
    AuthzEvaluate,
}
str_enum!(Scope {
    FlagsRead => "flags:read",
    UsageWrite => "usage:write",
    UsageRead => "usage:read",
    AuditWrite => "audit:write",
    AuthIntrospect => "auth:introspect",
    AuthzEvaluate => "authz:evaluate",
});

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Budget {
    pub monthly_limit: u64,
    pub on_limit: OnLimit,
    /// Percentages of the limit at which to warn, strictly increasing, each 1..=99.
    pub warn_at: Vec<u8>,
    /// The usage event types counted, sorted; empty: every type. Left out of the serialized form
    /// (and so of declaration hashes) while empty.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub event_types: Vec<String>,
}

/// How the reconciler treats this tenant's drift and removed resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncPolicy {
    /// Revert changes made outside Git on the next pass.
    pub self_heal: bool,
    /// Delete resources that were removed from Git.
    pub prune: bool,
    /// Let the admin API change what Git declares; the changes show as drift. Left out of the
    /// serialized form (and so of declaration hashes) while false.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub interactive_edits: bool,
    /// Interactive changes of what Git declares become commits (`interactiveEdits: writeBack`).
    /// Left out of the serialized form while `None`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub write_back: Option<WriteBackMode>,
}

impl Default for SyncPolicy {
    fn default() -> Self {
        Self { self_heal: true, prune: true, interactive_edits: false, write_back: None }
    }
}

/// How an interactive change reaches Git (`sync.writeBack`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum WriteBackMode {
    /// Committed on the tracked branch and applied at once.
    Direct,
    /// Committed on a branch of its own, `gatehouse/<tenant>/<change>`, applied once merged.
    Review,
}

impl WriteBackMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::Review => "review",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "direct" => Some(Self::Direct),
            "review" => Some(Self::Review),
            _ => None,
        }
    }
}

/// Where a secret is read from at run time; the secret itself never lives in Git.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SecretRef {
    pub env: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Sso {
    pub issuer: String,
    pub client_id: String,
    pub client_secret_ref: SecretRef,
    /// Lower-case, sorted, without duplicates.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub domains: Vec<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub mandatory: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jit_role: Option<Role>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct User {
    pub email: Email,
    pub name: Option<String>,
    pub role: Role,
    pub status: UserStatus,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Tenant {
    pub name: TenantName,
    pub display_name: String,
    pub plan: PlanName,
    pub status: TenantStatus,
    pub sync: SyncPolicy,
    pub budget: Option<Budget>,
    pub sso: Option<Sso>,
    /// The applications this tenant uses, sorted.
    pub applications: Vec<AppName>,
    pub users: Vec<User>,
    /// The tenant's overrides of its plan's flag defaults.
    pub flags: BTreeMap<FlagKey, FlagValue>,
    /// The file that declares it, relative to the repository root.
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub name: PlanName,
    pub display_name: Option<String>,
    /// Flag defaults for every tenant on this plan.
    pub flags: BTreeMap<FlagKey, FlagValue>,
    pub budget: Option<Budget>,
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Application {
    pub name: AppName,
    pub display_name: String,
    pub owner: Email,
    pub status: AppStatus,
    /// Sorted, without duplicates.
    pub scopes: Vec<Scope>,
    /// How it signs tenant users in through Gatehouse; `None`: it does not.
    pub oidc: Option<OidcClient>,
    pub source: String,
}

/// An application as an OpenID Connect client of Gatehouse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OidcClient {
    pub client_type: ClientType,
    /// Exact URIs an authorization may return to.
    pub redirect_uris: Vec<String>,
    /// Exact URIs a logout may return to.
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    #[serde(default)]
    pub id_token_signed_response_alg: super::Alg,
}

/// OAuth 2.0 client types (RFC 6749 §2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ClientType {
    /// Holds a secret (a server-side application): authenticates at the token endpoint.
    #[default]
    Confidential,
    /// Cannot keep a secret (a single-page or native application): PKCE only.
    Public,
}

/// Every valid resource of a config repository, each kind sorted by name.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DesiredState {
    pub plans: Vec<Plan>,
    pub applications: Vec<Application>,
    pub tenants: Vec<Tenant>,
}
