//! The shared vocabulary of every stage: typed names parsed once at the edge, and the declared
//! resources (`Tenant`, `User`, `Plan`, `Application`). Depends on nothing else in the crate.

mod flag;
mod names;
mod oidc;
mod resources;
mod session;

pub use flag::{FlagType, FlagValue};
pub use names::{AppName, DisplayName, Email, FlagKey, KeyId, NameError, PlanName, TenantName, shown};
pub use oidc::{Alg, check_redirect_uri, is_loopback};
pub use resources::{
    AccountStatus, AppStatus, Application, Budget, ClientType, DesiredState, OidcClient, OnLimit, Pending, Plan,
    PlatformRole, Role, Scope, SecretRef, Sso, SyncPolicy, Tenant, TenantState, TenantStatus, User, UserStatus,
    WriteBackMode,
};
pub use session::{SessionView, user_identity};
