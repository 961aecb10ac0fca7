//! The SQL of tenant SSO: each tenant's identity provider, the email domains it serves, and the
//! federated sign-ins under way. The logic is in `sso`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::Result;
use super::identity::seconds;

/// A tenant's identity provider as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TenantIdp {
    pub tenant_id: Uuid,
    pub tenant: String,
    pub issuer: String,
    pub client_id: String,
    /// Set through the API: the secret, sealed.
    pub secret_key_id: Option<String>,
    pub secret_sealed: Option<Vec<u8>>,
    /// Declared in Git: the environment variable that holds the secret.
    pub secret_env: Option<String>,
    pub managed_by: String,
    pub domains: Vec<String>,
    pub mandatory: bool,
    pub jit_role: Option<String>,
    pub state: String,
    pub metadata: Option<Value>,
    pub verified_at: Option<DateTime<Utc>>,
    pub tested_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

impl TenantIdp {
    /// Where its set-up stands, as shown: `draft`, `verified`, `tested` (verified, and a test
    /// sign-in completed since: it may be activated, the rule `activate`'s statement checks) or
    /// `active`.
    pub fn stage(&self) -> &str {
        let tested = matches!((self.tested_at, self.verified_at), (Some(tested), Some(verified)) if tested >= verified);
        if self.state == "verified" && tested { "tested" } else { &self.state }
    }
}

const IDP: &str = "SELECT i.tenant_id, t.name AS tenant, i.issuer, i.client_id, i.secret_key_id, i.secret_sealed,
        i.secret_env, i.managed_by, i.domains, i.mandatory, i.jit_role, i.state, i.metadata, i.verified_at, i.tested_at, i.updated_at
   FROM tenant_idps i JOIN tenants t ON t.id = i.tenant_id";

pub async fn idp_of_tenant(pool: &PgPool, tenant: &str) -> Result<Option<TenantIdp>> {
    Ok(sqlx::query_as(&format!("{IDP} WHERE t.name = $1")).bind(tenant).fetch_optional(pool).await?)
}

pub async fn idp_by_id(pool: &PgPool, tenant_id: Uuid) -> Result<Option<TenantIdp>> {
    Ok(sqlx::query_as(&format!("{IDP} WHERE i.tenant_id = $1")).bind(tenant_id).fetch_optional(pool).await?)
}

/// The active provider that serves the domain of an email, if any.
pub async fn active_idp_for_domain(pool: &PgPool, domain: &str) -> Result<Option<TenantIdp>> {
    Ok(sqlx::query_as(&format!(
        "{IDP} JOIN tenant_idp_domains d ON d.tenant_id = i.tenant_id WHERE d.domain = $1 AND i.state = 'active'"
    ))
    .bind(domain)
    .fetch_optional(pool)
    .await?)
}

pub struct NewIdp<'a> {
    pub tenant_id: Uuid,
    pub issuer: &'a str,
    pub client_id: &'a str,
    /// `None` keeps the stored secret.
    pub secret: Option<(&'a str, &'a [u8])>,
    pub domains: &'a [String],
    pub mandatory: bool,
    pub jit_role: Option<&'a str>,
}

/// The first of `domains` that users of another tenant than `tenant_id` have in their email.
pub async fn domain_used_elsewhere(pool: &PgPool, tenant_id: Uuid, domains: &[String]) -> Result<Option<String>> {
    Ok(sqlx::query_scalar(
        "SELECT d FROM unnest($2::text[]) AS d
          WHERE EXISTS (SELECT 1 FROM users WHERE tenant_id <> $1 AND split_part(email, '@', 2) = d) LIMIT 1",
    )
    .bind(tenant_id)
    .bind(domains)
    .fetch_optional(pool)
    .await?)
}

/// The active provider of the tenant of the user with `email`, if the user exists.
pub async fn active_idp_of_user(pool: &PgPool, email: &str) -> Result<Option<Option<TenantIdp>>> {
    let tenant: Option<Uuid> =
        sqlx::query_scalar("SELECT tenant_id FROM users WHERE email = $1").bind(email).fetch_optional(pool).await?;
    let Some(tenant) = tenant else { return Ok(None) };
    Ok(Some(
        sqlx::query_as(&format!("{IDP} WHERE i.tenant_id = $1 AND i.state = 'active'"))
            .bind(tenant)
            .fetch_optional(pool)
            .await?,
    ))
}

/// Whether a user with `email` exists in another tenant than `tenant_id`.
pub async fn email_used_elsewhere(conn: &mut PgConnection, tenant_id: Uuid, email: &str) -> Result<bool> {
    Ok(sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users WHERE email = $1 AND tenant_id <> $2)")
        .bind(email)
        .bind(tenant_id)
        .fetch_one(conn)
        .await?)
}

/// What a change of the provider met.
pub enum Saved {
    Saved,
    /// Another tenant's provider serves this domain.
    DomainTaken(String),
    /// A new provider needs its client secret.
    SecretRequired,
}

/// Creates or replaces a tenant's provider; back to `draft`: it must be verified and tested again.
pub async fn save_idp(pool: &PgPool, new: NewIdp<'_>) -> Result<Saved> {
    let mut tx = pool.begin().await?;
    for domain in new.domains {
        let owner: Option<Uuid> = sqlx::query_scalar("SELECT tenant_id FROM tenant_idp_domains WHERE domain = $1")
            .bind(domain)
            .fetch_optional(&mut *tx)
            .await?;
        if owner.is_some_and(|owner| owner != new.tenant_id) {
            return Ok(Saved::DomainTaken(domain.clone()));
        }
    }
    let (key_id, sealed) = match new.secret {
        Some((key_id, sealed)) => (Some(key_id), Some(sealed)),
        None => (None, None),
    };
    let saved = sqlx::query(
        "INSERT INTO tenant_idps (tenant_id, issuer, client_id, secret_key_id, secret_sealed, domains, mandatory, jit_role)
         SELECT $1, $2, $3, $4, $5, $6, $7, $8 WHERE $4 IS NOT NULL
         ON CONFLICT (tenant_id) DO UPDATE SET issuer = EXCLUDED.issuer, client_id = EXCLUDED.client_id,
             secret_key_id = EXCLUDED.secret_key_id, secret_sealed = EXCLUDED.secret_sealed,
             domains = EXCLUDED.domains, mandatory = EXCLUDED.mandatory, jit_role = EXCLUDED.jit_role,
             state = 'draft', metadata = NULL, verified_at = NULL, tested_at = NULL, updated_at = now()",
    )
    .bind(new.tenant_id)
    .bind(new.issuer)
    .bind(new.client_id)
    .bind(key_id)
    .bind(sealed)
    .bind(new.domains)
    .bind(new.mandatory)
    .bind(new.jit_role)
    .execute(&mut *tx)
    .await?;
    if saved.rows_affected() == 0 {
        // No secret given: only an existing provider may keep its stored one.
        let kept = sqlx::query(
            "UPDATE tenant_idps SET issuer = $2, client_id = $3, domains = $4, mandatory = $5, jit_role = $6,
                    state = 'draft', metadata = NULL, verified_at = NULL, tested_at = NULL, updated_at = now()
              WHERE tenant_id = $1",
        )
        .bind(new.tenant_id)
        .bind(new.issuer)
        .bind(new.client_id)
        .bind(new.domains)
        .bind(new.mandatory)
        .bind(new.jit_role)
        .execute(&mut *tx)
        .await?;
        if kept.rows_affected() == 0 {
            return Ok(Saved::SecretRequired);
        }
    }
    sqlx::query("DELETE FROM tenant_idp_domains WHERE tenant_id = $1").bind(new.tenant_id).execute(&mut *tx).await?;
    let claimed = sqlx::query("INSERT INTO tenant_idp_domains (domain, tenant_id) SELECT unnest($1::text[]), $2")
        .bind(new.domains)
        .bind(new.tenant_id)
        .execute(&mut *tx)
        .await;
    match claimed {
        // Another tenant claimed one of the domains meanwhile.
        Err(sqlx::Error::Database(error)) if error.is_unique_violation() => {
            return Ok(Saved::DomainTaken(new.domains.join(", ")));
        }
        other => other?,
    };
    tx.commit().await?;
    Ok(Saved::Saved)
}

pub async fn delete_idp(pool: &PgPool, tenant_id: Uuid) -> Result<bool> {
    Ok(sqlx::query("DELETE FROM tenant_idps WHERE tenant_id = $1").bind(tenant_id).execute(pool).await?.rows_affected()
        == 1)
}

/// Records a verification: its report, and `verified` when it passed (an active provider whose
/// check fails goes back to draft). `updated_at` guards against a change made meanwhile.
pub async fn record_verification(
    pool: &PgPool,
    tenant_id: Uuid,
    seen: DateTime<Utc>,
    passed: bool,
    report: &Value,
) -> Result<bool> {
    Ok(sqlx::query(
        "UPDATE tenant_idps SET metadata = $4,
                state = CASE WHEN NOT $3 THEN 'draft' WHEN state = 'active' THEN 'active' ELSE 'verified' END,
                verified_at = CASE WHEN $3 THEN now() END,
                -- An active provider that still passes stays active: its test stands, as nothing
                -- in its settings changed since (a change returns it to draft).
                tested_at = CASE WHEN $3 AND state = 'active' THEN now() WHEN $3 THEN tested_at END
          WHERE tenant_id = $1 AND updated_at = $2",
    )
    .bind(tenant_id)
    .bind(seen)
    .bind(passed)
    .bind(report)
    .execute(pool)
    .await?
    .rows_affected()
        == 1)
}

pub async fn record_test(pool: &PgPool, tenant_id: Uuid) -> Result<()> {
    sqlx::query("UPDATE tenant_idps SET tested_at = now() WHERE tenant_id = $1 AND state IN ('verified', 'active')")
        .bind(tenant_id)
        .execute(pool)
        .await?;
    Ok(())
}

/// Activates a provider that is verified and was tested since; `false` otherwise.
pub async fn activate(pool: &PgPool, tenant_id: Uuid) -> Result<bool> {
    Ok(sqlx::query(
        "UPDATE tenant_idps SET state = 'active', updated_at = now()
          WHERE tenant_id = $1 AND state = 'verified' AND tested_at >= verified_at",
    )
    .bind(tenant_id)
    .execute(pool)
    .await?
    .rows_affected()
        == 1)
}

// --- Federated sign-ins under way -------------------------------------------------------------

pub struct NewLogin<'a> {
    pub state_hash: &'a [u8],
    pub tenant_id: Uuid,
    pub purpose: &'a str,
    pub nonce: &'a str,
    pub verifier: (&'a str, &'a [u8]),
    pub return_to: &'a str,
    pub started_by: Option<&'a str>,
    /// SHA-256 of the cookie that binds the sign-in to its browser (`None` for a test).
    pub browser_hash: Option<&'a [u8]>,
    pub ttl: Duration,
}

pub async fn start_login(pool: &PgPool, new: NewLogin<'_>) -> Result<()> {
    sqlx::query(
        "INSERT INTO sso_logins (state_hash, tenant_id, purpose, nonce, verifier_key_id, verifier_sealed, return_to,
                                 started_by, expires_at, browser_hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now() + make_interval(secs => $9), $10)",
    )
    .bind(new.state_hash)
    .bind(new.tenant_id)
    .bind(new.purpose)
    .bind(new.nonce)
    .bind(new.verifier.0)
    .bind(new.verifier.1)
    .bind(new.return_to)
    .bind(new.started_by)
    .bind(seconds(new.ttl))
    .bind(new.browser_hash)
    .execute(pool)
    .await?;
    Ok(())
}

#[derive(Debug, sqlx::FromRow)]
pub struct PendingLogin {
    pub tenant_id: Uuid,
    pub purpose: String,
    pub nonce: String,
    pub verifier_key_id: String,
    pub verifier_sealed: Vec<u8>,
    pub return_to: String,
    pub started_by: Option<String>,
    pub browser_hash: Option<Vec<u8>>,
}

/// Takes a sign-in under way by its state, once: a state seen before, or expired, is `None`.
pub async fn take_login(pool: &PgPool, state_hash: &[u8]) -> Result<Option<PendingLogin>> {
    Ok(sqlx::query_as(
        "UPDATE sso_logins SET used_at = now()
          WHERE state_hash = $1 AND used_at IS NULL AND expires_at > now()
         RETURNING tenant_id, purpose, nonce, verifier_key_id, verifier_sealed, return_to, started_by, browser_hash",
    )
    .bind(state_hash)
    .fetch_optional(pool)
    .await?)
}

pub async fn prune_logins(pool: &PgPool) -> Result<u64> {
    Ok(sqlx::query("DELETE FROM sso_logins WHERE expires_at < now() - interval '1 day'")
        .execute(pool)
        .await?
        .rows_affected())
}

// --- The user a federated sign-in maps to -----------------------------------------------------

#[derive(Debug, sqlx::FromRow)]
pub struct Member {
    pub user_id: Uuid,
    pub status: String,
    pub tenant_status: String,
}

/// The tenant's user of `email`, if any.
pub async fn member(conn: &mut PgConnection, tenant_id: Uuid, email: &str) -> Result<Option<Member>> {
    Ok(sqlx::query_as(
        "SELECT u.id AS user_id, u.status, t.status AS tenant_status
           FROM users u JOIN tenants t ON t.id = u.tenant_id WHERE u.tenant_id = $1 AND u.email = $2",
    )
    .bind(tenant_id)
    .bind(email)
    .fetch_optional(conn)
    .await?)
}

/// An invited user who signs in through the tenant's provider becomes active.
pub async fn activate_invited(conn: &mut PgConnection, user_id: Uuid) -> Result<()> {
    sqlx::query("UPDATE users SET status = 'active', activated_at = now(), updated_at = now() WHERE id = $1 AND status = 'invited'")
        .bind(user_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Creates a user just in time (the tenant allows it), active, with `role`.
pub async fn create_jit_user(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    email: &str,
    name: Option<&str>,
    role: &str,
) -> Result<Uuid> {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO users (id, tenant_id, email, name, role, status, activated_at)
         VALUES ($1, $2, $3, $4, $5, 'active', now())",
    )
    .bind(id)
    .bind(tenant_id)
    .bind(email)
    .bind(name)
    .bind(role)
    .execute(conn)
    .await?;
    Ok(id)
}

/// A session of a federated sign-in: no password, no pending step (the provider authenticated).
pub struct FederatedSession<'a> {
    pub user_id: Uuid,
    pub tenant_id: Uuid,
    pub access_hash: &'a [u8],
    pub refresh_hash: &'a [u8],
    pub absolute: Duration,
    pub ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
}

pub async fn create_federated_session(conn: &mut PgConnection, new: FederatedSession<'_>) -> Result<Uuid> {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO sessions (id, user_id, tenant_id, access_hash, refresh_hash, expires_at, ip, user_agent, amr)
         VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6), $7, $8, '{fed}')",
    )
    .bind(id)
    .bind(new.user_id)
    .bind(new.tenant_id)
    .bind(new.access_hash)
    .bind(new.refresh_hash)
    .bind(seconds(new.absolute))
    .bind(new.ip)
    .bind(new.user_agent)
    .execute(conn)
    .await?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::TenantIdp;
    use chrono::{Duration, Utc};

    fn idp(state: &str, verified: Option<i64>, tested: Option<i64>) -> TenantIdp {
        let at = |minutes: i64| Utc::now() + Duration::minutes(minutes);
        TenantIdp {
            tenant_id: uuid::Uuid::nil(),
            tenant: "acme".into(),
            issuer: "https://login.acme.example".into(),
            client_id: "gatehouse".into(),
            secret_key_id: None,
            secret_sealed: None,
            secret_env: None,
            managed_by: "api".into(),
            domains: vec!["acme.example".into()],
            mandatory: false,
            jit_role: None,
            state: state.into(),
            metadata: None,
            verified_at: verified.map(at),
            tested_at: tested.map(at),
            updated_at: Utc::now(),
        }
    }

    #[test]
    fn a_verified_provider_is_tested_only_by_a_test_since_its_verification() {
        assert_eq!(idp("draft", None, None).stage(), "draft");
        assert_eq!(idp("verified", Some(0), None).stage(), "verified");
        assert_eq!(idp("verified", Some(0), Some(1)).stage(), "tested");
        assert_eq!(idp("verified", Some(1), Some(0)).stage(), "verified", "verified again after the test");
        assert_eq!(idp("active", Some(0), Some(1)).stage(), "active");
    }
}
