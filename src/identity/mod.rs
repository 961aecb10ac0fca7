//! Tenant users' credentials and sessions: sign-in, refresh, sign-out, invitations, password reset
//! and change, lockout, TOTP. The logic lives here; `store::identity` holds the SQL and `api::auth`
//! the HTTP. Revocation on role, status and tenant changes is done by database triggers, so it holds
//! however a change arrives (API, `apply`, the reconciler, SQL).

mod flows;
pub mod invitation;
pub mod lookup;
pub mod password;
mod successor;
pub mod token;
pub mod totp;

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;

use crate::denials::DenialLog;
use crate::secret::sealed::Keyring;
pub use crate::store::identity::Lockout;
use crate::store::identity::SessionTimes;
pub use flows::{AuthError, Client, Enrolled, Enrolment, LinkPurpose, Tokens};
use lookup::SessionLookup;
use password::Hasher;

#[derive(Debug, Clone)]
pub struct Settings {
    pub times: SessionTimes,
    pub invitation_ttl: Duration,
    pub reset_ttl: Duration,
    pub lockout: Lockout,
    /// Requests per minute one client IP may make to each sign-in route.
    pub ip_limit_per_minute: u32,
    /// Owners must enrol TOTP before their session can do anything else.
    pub owners_need_mfa: bool,
    /// Base of the links in mails, such as `https://gatehouse.example.com`.
    pub public_url: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            times: SessionTimes {
                access_ttl: Duration::from_secs(15 * 60),
                idle: Duration::from_secs(30 * 60),
                absolute: Duration::from_secs(12 * 3600),
                refresh_grace: Duration::from_secs(5),
            },
            invitation_ttl: Duration::from_secs(7 * 24 * 3600),
            reset_ttl: Duration::from_secs(30 * 60),
            lockout: Lockout { threshold: 5, base: Duration::from_secs(30), max: Duration::from_secs(15 * 60) },
            ip_limit_per_minute: 60,
            owners_need_mfa: true,
            public_url: "http://127.0.0.1:8080".into(),
        }
    }
}

/// Everything the identity endpoints share.
#[derive(Clone)]
pub struct Identity {
    pub pool: PgPool,
    pub settings: Arc<Settings>,
    pub hasher: Hasher,
    pub keyring: Arc<Keyring>,
    pub sessions: SessionLookup,
    /// Where refusals of anonymous callers (an unknown refresh token, a bad link) are audited.
    pub denials: DenialLog,
}

impl Identity {
    pub fn new(pool: PgPool, settings: Settings, keyring: Arc<Keyring>, denials: DenialLog) -> Identity {
        let threads = std::thread::available_parallelism().map_or(2, usize::from);
        Identity {
            sessions: SessionLookup::new(pool.clone(), settings.times),
            hasher: Hasher::new(threads),
            keyring,
            settings: Arc::new(settings),
            pool,
            denials,
        }
    }
}
