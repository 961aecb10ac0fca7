//! The sign-in flows. Each returns a domain outcome or an `AuthError`; every one writes its audit
//! row (never a token, password, code or secret).

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

use super::password::{self, Weak};
use super::successor::{self, Pair};
use super::token::{self, Issued, TokenKind};
use super::{Identity, totp};
use crate::i18n::Lang;
use crate::mail::{self, Message};
use crate::model::{AccountStatus, Pending, Role, SessionView, TenantStatus};
use crate::store::identity::{
    self as db, Account, Attempt, LinkToken, NewPair, NewSession, Refreshed, Reserved, Sealed, Settle,
};
use crate::store::{self, AuditEntry, StoreError};

/// Who is calling, for audit rows and session records.
#[derive(Debug, Clone, Default)]
pub struct Client {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

impl Client {
    /// Where the request came from, as its audit rows name it.
    pub fn origin(&self) -> crate::audit::Origin {
        crate::audit::Origin { ip: self.ip.clone(), user_agent: self.user_agent.clone() }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// One answer for every sign-in failure, so accounts cannot be enumerated.
    #[error("invalid email or password")]
    InvalidCredentials,
    /// The right password of a user who may not sign in: told plainly, since the password proved
    /// who asks (issue 14.1).
    #[error("this account is disabled; ask an administrator of your organisation")]
    AccountDisabled,
    #[error("your organisation's access is suspended; contact its owner or the platform's support")]
    TenantSuspended,
    #[error("your organisation signs you in through its own identity provider: continue from the login page")]
    SsoRequired,
    #[error("too many failed attempts; try again in {retry_after} s")]
    Locked { retry_after: u64 },
    #[error("the token is missing, unknown, expired or revoked")]
    InvalidToken,
    #[error("{message}")]
    Link { code: &'static str, message: String },
    #[error("{0}")]
    WeakPassword(String),
    #[error("the code is wrong or was already used")]
    InvalidCode,
    #[error("the current password is wrong")]
    WrongCurrentPassword,
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<Weak> for AuthError {
    fn from(weak: Weak) -> Self {
        AuthError::WeakPassword(weak.0)
    }
}

impl From<sqlx::Error> for AuthError {
    fn from(error: sqlx::Error) -> Self {
        AuthError::Store(error.into())
    }
}

/// What single-use links are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkPurpose {
    Invitation,
    PasswordReset,
}

impl LinkPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkPurpose::Invitation => "invitation",
            LinkPurpose::PasswordReset => "password_reset",
        }
    }

    /// The page a mailed link opens.
    pub fn path(self) -> &'static str {
        match self {
            LinkPurpose::Invitation => "/invitations/accept",
            LinkPurpose::PasswordReset => "/password/reset",
        }
    }

    pub fn url(self, public_url: &str, token: &str) -> String {
        format!("{}{}?token={token}", public_url.trim_end_matches('/'), self.path())
    }
}

/// A session's token pair, as sign-in, refresh and MFA return it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: String,
    pub token_type: &'static str,
    /// Seconds the access token lives.
    pub expires_in: u64,
    pub session: SessionInfo,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionInfo {
    pub id: Uuid,
    pub tenant: String,
    pub email: String,
    pub role: Role,
    /// `mfa_verify` or `mfa_enrol` while the session may do nothing else; absent when complete.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending: Option<Pending>,
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

/// A started TOTP enrolment: shown once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Enrolment {
    pub secret: String,
    pub otpauth_uri: String,
}

/// A completed TOTP enrolment: new tokens and the recovery codes, shown once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Enrolled {
    #[serde(flatten)]
    pub tokens: Tokens,
    pub recovery_codes: Vec<String>,
}

fn normalise(email: &str) -> String {
    email.trim().to_lowercase()
}

fn now_step() -> u64 {
    totp::step_at(SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()))
}

fn retry_after(until: chrono::DateTime<chrono::Utc>) -> u64 {
    u64::try_from((until - chrono::Utc::now()).num_milliseconds()).map_or(1, |ms| ms.div_ceil(1000).max(1))
}

impl Identity {
    fn tokens(&self, access: Issued, refresh: Issued, session: &SessionView) -> Tokens {
        self.pair_tokens(Pair { access: access.token, refresh: refresh.token }, session, self.settings.times.access_ttl)
    }

    fn pair_tokens(&self, pair: Pair, session: &SessionView, expires_in: std::time::Duration) -> Tokens {
        Tokens {
            access_token: pair.access,
            refresh_token: pair.refresh,
            token_type: "Bearer",
            expires_in: expires_in.as_secs(),
            session: SessionInfo {
                id: session.id,
                tenant: session.tenant.clone(),
                email: session.email.clone(),
                role: session.role,
                pending: session.pending,
                expires_at: session.expires_at,
            },
        }
    }

    async fn audit(&self, entry: AuditEntry) {
        if let Err(error) = store::apps::audit(&self.pool, entry).await {
            tracing::warn!(%error, "cannot write an audit row");
        }
    }

    /// The row of whoever named `email` (no session proves it yet).
    fn entry(
        action: &str,
        email: &str,
        tenant: Option<&str>,
        success: bool,
        client: &Client,
        extra: serde_json::Value,
    ) -> AuditEntry {
        let target = crate::audit::Target { path: format!("user/{email}"), tenant: tenant.map(str::to_owned) };
        let outcome = if success { crate::audit::Outcome::Success } else { crate::audit::Outcome::Failure };
        crate::audit::claimed(email, action, target, outcome, &client.origin(), extra)
    }

    /// Audits a refusal of a caller who proved nothing (aggregated with its repeats; never waits).
    fn refused_anonymous(&self, action: &'static str, reason: &str, client: &Client) {
        let mut extra = serde_json::Map::new();
        extra.insert("userAgent".into(), json!(client.user_agent));
        self.denials.refused(crate::denials::Refusal {
            action,
            ip: client.ip.clone(),
            method: None,
            route: "user/anonymous".into(),
            resource: "user/anonymous".into(),
            tenant: None,
            reason: reason.to_owned(),
            key_id: None,
            extra,
        });
    }

    /// Audits what the user of `session` did.
    async fn audit_session(
        &self,
        action: &str,
        session: &SessionView,
        success: bool,
        client: &Client,
        extra: serde_json::Value,
    ) {
        let actor = crate::authz::Actor::User(session.clone());
        let target = crate::audit::Target::in_tenant(&session.tenant, format!("user/{}", session.email));
        let outcome = if success { crate::audit::Outcome::Success } else { crate::audit::Outcome::Failure };
        self.audit(crate::audit::entry(&actor, action, target, outcome, &client.origin(), extra)).await;
    }

    /// Reserves an attempt to verify a secret of the account of `email` before verifying it (see
    /// `db::reserve_attempt`); refuses while the account is locked.
    async fn reserve(&self, email: &str, action: &str, client: &Client) -> Result<Reserved, AuthError> {
        let attempt = db::reserve_attempt(&self.pool, email, self.settings.lockout).await?;
        self.admit(attempt, email, action, client).await
    }

    /// A reserved attempt goes ahead; a locked account is refused (audited as a failed `action`).
    async fn admit(&self, attempt: Attempt, email: &str, action: &str, client: &Client) -> Result<Reserved, AuthError> {
        match attempt {
            Attempt::Reserved(attempt) => Ok(attempt),
            Attempt::Locked { until } => {
                let retry_after = retry_after(until);
                let extra = json!({ "reason": "locked", "retryAfter": retry_after });
                self.audit(Self::entry(action, email, None, false, client, extra)).await;
                Err(AuthError::Locked { retry_after })
            }
        }
    }

    /// Audits the lock a failed attempt started. The failure itself was counted when the attempt
    /// was reserved.
    async fn audit_lockout(&self, email: &str, tenant: Option<&str>, attempt: Reserved, client: &Client) {
        if let Some(until) = attempt.lock.filter(|until| *until > chrono::Utc::now()) {
            let extra = json!({ "failures": attempt.failures, "lockedFor": retry_after(until) });
            self.audit(Self::entry("auth.lockout", email, tenant, true, client, extra)).await;
        }
    }

    /// `POST /v1/auth/login`.
    pub async fn login(&self, email: &str, password: &str, client: &Client) -> Result<Tokens, AuthError> {
        let email = normalise(email);
        let sign_in = db::sign_in(&self.pool, &email, self.settings.lockout).await?;
        let attempt = self.admit(sign_in.attempt, &email, "auth.login", client).await?;
        let account = sign_in.account;
        let phc = account.as_ref().and_then(|a| a.password_hash.as_deref());
        let verified = self.hasher.verify(password, phc).await;
        let refusal = match &account {
            None => Some("unknown email"),
            Some(a) if a.password_hash.is_none() => Some("no password set"),
            Some(_) if !verified => Some("wrong password"),
            Some(a) if a.user_status != AccountStatus::Active => Some("user not active"),
            Some(a) if a.tenant_status != TenantStatus::Active => Some("tenant suspended"),
            Some(a) if a.sso_required => Some("the tenant requires SSO"),
            Some(_) => None,
        };
        let tenant = account.as_ref().map(|a| a.tenant.as_str());
        if let Some(reason) = refusal {
            self.audit_lockout(&email, tenant, attempt, client).await;
            self.audit(Self::entry("auth.login", &email, tenant, false, client, json!({ "reason": reason }))).await;
            return Err(match reason {
                "user not active" => AuthError::AccountDisabled,
                "tenant suspended" => AuthError::TenantSuspended,
                "the tenant requires SSO" => AuthError::SsoRequired,
                _ => AuthError::InvalidCredentials,
            });
        }
        let account = account.expect("a refusal is returned when there is no account");
        // A password forgives earlier failures, unless a second factor is still to come: those
        // failures may be wrong codes, and signing in again must not reset their count.
        let settle = if account.totp_confirmed { Settle::GiveBack(attempt) } else { Settle::Forgive(attempt) };
        let pending = if account.totp_confirmed {
            Some(Pending::MfaVerify)
        } else if account.role == Role::Owner && self.settings.owners_need_mfa {
            Some(Pending::MfaEnrol)
        } else {
            None
        };
        let (access, refresh) = (token::issue(TokenKind::Access), token::issue(TokenKind::Refresh));
        let id = Uuid::now_v7();
        let new = NewSession {
            id,
            user_id: account.user_id,
            tenant_id: account.tenant_id,
            access_hash: &access.hash,
            refresh_hash: &refresh.hash,
            pending,
            ip: client.ip.as_deref(),
            user_agent: client.user_agent.as_deref(),
            email: &email,
            settle,
        };
        let session = db::create_session(&self.pool, new, self.settings.times).await?;
        self.audit_session("auth.login", &session, true, client, json!({ "sessionId": id, "pending": pending })).await;
        Ok(self.tokens(access, refresh, &session))
    }

    /// `POST /v1/auth/refresh` (`oidc_client: None`), and the token endpoint's refresh grant for
    /// the sessions of an OIDC client.
    pub async fn refresh(
        &self,
        refresh_token: &str,
        oidc_client: Option<Uuid>,
        client: &Client,
    ) -> Result<Tokens, AuthError> {
        let presented = token::hash(refresh_token);
        let (access, refresh) = (token::issue(TokenKind::Access), token::issue(TokenKind::Refresh));
        let pair = Pair { access: access.token, refresh: refresh.token };
        let (key_id, bytes) = successor::seal(&self.keyring, refresh_token, &pair);
        let sealed = Sealed { key_id, bytes };
        let new = NewPair { access: &access.hash, refresh: &refresh.hash, successor: Some(&sealed) };
        match db::refresh(&self.pool, &presented, oidc_client, new, self.settings.times).await? {
            Refreshed::Rotated(session) => {
                let extra = json!({ "sessionId": session.id });
                self.audit_session("auth.refresh", &session, true, client, extra).await;
                Ok(self.pair_tokens(pair, &session, self.settings.times.access_ttl))
            }
            Refreshed::Retried { session, successor: sealed, current_refresh_hash } => {
                let pair = successor::open(&self.keyring, refresh_token, &sealed.key_id, &sealed.bytes)
                    .filter(|pair| token::hash(&pair.refresh) == current_refresh_hash);
                let Some(pair) = pair else {
                    // The session has moved on since (or the key ring lost the key): refused, and
                    // the session lives on with its current pair.
                    let extra = json!({ "sessionId": session.id, "reason": "spent refresh token; the session has a newer pair" });
                    self.audit_session("auth.refresh", &session, false, client, extra).await;
                    return Err(AuthError::InvalidToken);
                };
                let extra = json!({ "sessionId": session.id, "retry": true });
                self.audit_session("auth.refresh", &session, true, client, extra).await;
                // The pair's access token lives from the rotation that issued it.
                let age = (chrono::Utc::now() - session.rotated_at).to_std().unwrap_or_default();
                let expires_in =
                    self.settings.times.access_ttl.saturating_sub(age.min(self.settings.times.refresh_grace));
                Ok(self.pair_tokens(pair, &session, expires_in))
            }
            Refreshed::Reused { session_id, email, tenant, .. } => {
                let extra = json!({ "sessionId": session_id, "reason": "spent refresh token reused; session revoked" });
                self.audit(Self::entry("auth.refresh.reuse", &email, Some(&tenant), false, client, extra)).await;
                Err(AuthError::InvalidToken)
            }
            Refreshed::Refused => {
                self.refused_anonymous("auth.refresh", "unknown or expired refresh token", client);
                Err(AuthError::InvalidToken)
            }
        }
    }

    /// `POST /v1/auth/logout`: ends the session at once.
    pub async fn logout(&self, session: &SessionView, client: &Client) -> Result<(), AuthError> {
        let mut conn = self.pool.acquire().await?;
        db::revoke_session(&mut conn, session.id, "logout").await?;
        drop(conn);
        self.audit_session("auth.logout", session, true, client, json!({ "sessionId": session.id })).await;
        Ok(())
    }

    /// Ends one of the user's own sessions; `false` if it is not theirs or not live.
    pub async fn end_own_session(
        &self,
        session: &SessionView,
        target: Uuid,
        client: &Client,
    ) -> Result<bool, AuthError> {
        if !db::revoke_own_session(&self.pool, target, session.user_id, "ended_by_user").await? {
            return Ok(false);
        }
        self.audit_session("auth.session.revoke", session, true, client, json!({ "sessionId": target })).await;
        Ok(true)
    }

    /// `POST /v1/auth/password/forgot`: always answers the same; mails a link to an active account,
    /// in the language `asked` (the page's), else the user's, else English.
    pub async fn forgot_password(&self, email: &str, asked: Option<Lang>, client: &Client) -> Result<(), AuthError> {
        let email = normalise(email);
        let account = db::account_by_email(&self.pool, &email).await?;
        let eligible = account.filter(|a| a.may_sign_in() && a.password_hash.is_some());
        let tenant = eligible.as_ref().map(|a| a.tenant.clone());
        if let Some(account) = eligible {
            let link = token::issue(TokenKind::Link);
            let mut tx = self.pool.begin().await?;
            let purpose = LinkPurpose::PasswordReset;
            db::issue_link_token(&mut tx, account.user_id, purpose.as_str(), &link.hash, self.settings.reset_ttl)
                .await?;
            let message = Message::PasswordReset {
                name: account.name.clone(),
                link: purpose.url(&self.settings.public_url, &link.token),
                valid_for: self.settings.reset_ttl,
            };
            let known = store::users::language(&mut tx, account.user_id).await?;
            let lang = asked.or_else(|| known.as_deref().and_then(Lang::parse)).unwrap_or(Lang::En);
            mail::queue(&mut tx, &self.keyring, &account.email, lang, &message).await?;
            tx.commit().await?;
        }
        let extra = json!({ "mailed": tenant.is_some() });
        self.audit(Self::entry("auth.password.forgot", &email, tenant.as_deref(), true, client, extra)).await;
        Ok(())
    }

    /// Checks a mailed link and sets the new password, in one transaction: a refused password
    /// leaves the link usable. (`invitation` accepts invitations with it.)
    pub(super) async fn use_link(
        &self,
        purpose: LinkPurpose,
        link: &str,
        new_password: &str,
        client: &Client,
    ) -> Result<Account, AuthError> {
        let action = match purpose {
            LinkPurpose::Invitation => "auth.invitation.accept",
            LinkPurpose::PasswordReset => "auth.password.reset",
        };
        let mut tx = self.pool.begin().await?;
        let user_id = match db::consume_link_token(&mut tx, &token::hash(link), purpose.as_str()).await? {
            LinkToken::Valid(user_id) => user_id,
            problem => {
                drop(tx);
                let (code, message) = link_problem(purpose, &problem);
                self.refused_anonymous(action, code, client);
                return Err(AuthError::Link { code, message });
            }
        };
        let account = db::account_by_id(&mut tx, user_id).await?.ok_or(AuthError::InvalidToken)?;
        let usable = match purpose {
            LinkPurpose::Invitation => {
                account.user_status == AccountStatus::Invited && account.tenant_status == TenantStatus::Active
            }
            LinkPurpose::PasswordReset => account.may_sign_in(),
        };
        if !usable {
            drop(tx);
            let extra = json!({ "reason": "account not in a state to use this link" });
            self.audit(Self::entry(action, &account.email, Some(&account.tenant), false, client, extra)).await;
            let (code, message) = link_problem(purpose, &LinkToken::Used);
            return Err(AuthError::Link { code, message });
        }
        password::check_policy(new_password, &account.email, &[&account.tenant, &account.tenant_display_name])?;
        let phc = self.hasher.hash(new_password).await;
        db::set_password(&mut tx, account.user_id, &phc).await?;
        let ended = db::revoke_user_sessions(&mut tx, account.user_id, None, purpose.as_str()).await?;
        tx.commit().await?;
        // A new password ends a lock earned by wrong passwords, but not one earned by wrong codes:
        // with a second factor, whoever can read the mailbox must not get fresh guesses at it.
        if !account.totp_confirmed {
            db::clear_failures(&self.pool, &account.email).await?;
        }
        self.audit(Self::entry(
            action,
            &account.email,
            Some(&account.tenant),
            true,
            client,
            json!({ "sessionsEnded": ended }),
        ))
        .await;
        Ok(account)
    }

    /// A reset sets the password and ends every session of the user.
    pub async fn reset_password(&self, link: &str, password: &str, client: &Client) -> Result<String, AuthError> {
        Ok(self.use_link(LinkPurpose::PasswordReset, link, password, client).await?.email)
    }

    /// `POST /v1/auth/password/change`: needs the current password; ends every session of the user,
    /// the one that made the change too (FR-AUTH-004, issue 25.17), and returns the tokens of a new
    /// session in its place, with the second factor it had, so the person at the keyboard goes on.
    pub async fn change_password(
        &self,
        session: &SessionView,
        current: &str,
        new: &str,
        client: &Client,
    ) -> Result<Tokens, AuthError> {
        let account = db::account_by_email(&self.pool, &session.email).await?.ok_or(AuthError::InvalidToken)?;
        let attempt = self.reserve(&session.email, "auth.password.change", client).await?;
        if !self.hasher.verify(current, account.password_hash.as_deref()).await {
            self.audit_lockout(&session.email, Some(&session.tenant), attempt, client).await;
            let extra = json!({ "reason": "wrong current password" });
            self.audit_session("auth.password.change", session, false, client, extra).await;
            return Err(AuthError::WrongCurrentPassword);
        }
        db::settle_attempt(&self.pool, &session.email, Settle::GiveBack(attempt)).await?;
        password::check_policy(new, &account.email, &[&account.tenant, &account.tenant_display_name])?;
        let phc = self.hasher.hash(new).await;
        let mut tx = self.pool.begin().await?;
        db::set_password(&mut tx, account.user_id, &phc).await?;
        let ended = db::revoke_user_sessions(&mut tx, account.user_id, None, "password_changed").await?;
        let (access, refresh) = (token::issue(TokenKind::Access), token::issue(TokenKind::Refresh));
        let next = db::NewSuccessor { id: Uuid::now_v7(), access_hash: &access.hash, refresh_hash: &refresh.hash };
        let successor = db::successor_session(&mut tx, session.id, next, self.settings.times).await?;
        tx.commit().await?;
        let extra = json!({ "sessionsEnded": ended, "newSessionId": successor.id });
        self.audit_session("auth.password.change", session, true, client, extra).await;
        Ok(self.tokens(access, refresh, &successor))
    }

    /// `POST /v1/auth/mfa/totp/enrol`: a new secret, sealed at rest; confirmed by a first code.
    pub async fn start_totp(&self, session: &SessionView, client: &Client) -> Result<Enrolment, AuthError> {
        let secret = totp::new_secret();
        let (key_id, sealed) = self.keyring.seal(&secret, session.user_id.as_bytes());
        let mut conn = self.pool.acquire().await?;
        if !db::start_totp(&mut conn, session.user_id, &key_id, &sealed).await? {
            return Err(AuthError::Conflict("TOTP is already enrolled for this account".into()));
        }
        drop(conn);
        self.audit_session("auth.mfa.enrol.start", session, true, client, json!({})).await;
        Ok(Enrolment {
            secret: totp::base32(&secret),
            otpauth_uri: totp::provisioning_uri("Gatehouse", &session.email, &secret),
        })
    }

    /// `POST /v1/auth/mfa/totp/confirm`: the first code confirms the enrolment; the session is
    /// complete and gets new tokens; ten recovery codes are returned once.
    pub async fn confirm_totp(
        &self,
        session: &SessionView,
        code: &str,
        client: &Client,
    ) -> Result<Enrolled, AuthError> {
        // Reserved before the transaction: the reservation must outlive a rolled-back one, and
        // no connection is held while waiting for another.
        let attempt = self.reserve(&session.email, "auth.mfa.enrol", client).await?;
        let mut tx = self.pool.begin().await?;
        // The session's row first, in the order verify_mfa takes it (completing rotates it).
        db::lock_session(&mut tx, session.id).await?;
        let row = db::totp(&mut tx, session.user_id).await?;
        let Some(row) = row.filter(|r| !r.confirmed) else {
            drop(tx);
            db::settle_attempt(&self.pool, &session.email, Settle::GiveBack(attempt)).await?;
            return Err(AuthError::Conflict("there is no TOTP enrolment to confirm; start one first".into()));
        };
        let secret = self
            .keyring
            .open(&row.key_id, &row.secret_sealed, session.user_id.as_bytes())
            .map_err(|e| StoreError::Task(e.to_string()))?;
        let last = u64::try_from(row.last_used_step).unwrap_or(0);
        let Some(step) = totp::matching_step(&secret, code, now_step(), last) else {
            drop(tx);
            return Err(self.code_refused(session, "auth.mfa.enrol", attempt, client).await);
        };
        db::use_totp_step(&mut tx, session.user_id, i64::try_from(step).unwrap_or(i64::MAX)).await?;
        let codes: Vec<String> = (0..10).map(|_| token::recovery_code()).collect();
        let hashes: Vec<Vec<u8>> = codes.iter().map(|c| token::hash(c)).collect();
        db::replace_recovery_codes(&mut tx, session.user_id, &hashes).await?;
        let tokens = self.complete_mfa(&mut tx, session).await?;
        tx.commit().await?;
        db::settle_attempt(&self.pool, &session.email, Settle::GiveBack(attempt)).await?;
        self.audit_session("auth.mfa.enrol", session, true, client, json!({ "sessionId": session.id })).await;
        Ok(Enrolled { tokens, recovery_codes: codes })
    }

    /// `POST /v1/auth/mfa/verify`: a TOTP code (each usable once) or a recovery code completes a
    /// session that waits for it, with new tokens.
    pub async fn verify_mfa(
        &self,
        session: &SessionView,
        code: Option<&str>,
        recovery_code: Option<&str>,
        client: &Client,
    ) -> Result<Tokens, AuthError> {
        if session.pending != Some(Pending::MfaVerify) {
            return Err(AuthError::Conflict("this session does not wait for a second factor".into()));
        }
        let attempt = self.reserve(&session.email, "auth.mfa.verify", client).await?;
        let mut tx = self.pool.begin().await?;
        // Checked again under the session's lock: parallel requests that lost to a right code find
        // the session complete and are refused unchecked, so a right code opens no new allowance.
        let pending = db::lock_session(&mut tx, session.id).await?;
        if pending.as_ref().map(Option::as_deref) != Some(Some("mfa_verify")) {
            drop(tx);
            db::settle_attempt(&self.pool, &session.email, Settle::GiveBack(attempt)).await?;
            return Err(match pending {
                None => AuthError::InvalidToken,
                Some(_) => AuthError::Conflict("this session does not wait for a second factor".into()),
            });
        }
        let accepted = match (code, recovery_code) {
            (Some(code), _) => match db::totp(&mut tx, session.user_id).await?.filter(|r| r.confirmed) {
                Some(row) => {
                    let secret = self
                        .keyring
                        .open(&row.key_id, &row.secret_sealed, session.user_id.as_bytes())
                        .map_err(|e| StoreError::Task(e.to_string()))?;
                    match totp::matching_step(&secret, code, now_step(), u64::try_from(row.last_used_step).unwrap_or(0))
                    {
                        Some(step) => {
                            db::use_totp_step(&mut tx, session.user_id, i64::try_from(step).unwrap_or(i64::MAX))
                                .await?;
                            Some("totp")
                        }
                        None => None,
                    }
                }
                None => None,
            },
            (None, Some(recovery)) => {
                let normalised = recovery.trim().to_lowercase();
                db::use_recovery_code(&mut tx, session.user_id, &token::hash(&normalised))
                    .await?
                    .then_some("recovery_code")
            }
            (None, None) => None,
        };
        let Some(method) = accepted else {
            drop(tx);
            return Err(self.code_refused(session, "auth.mfa.verify", attempt, client).await);
        };
        let tokens = self.complete_mfa(&mut tx, session).await?;
        tx.commit().await?;
        db::settle_attempt(&self.pool, &session.email, Settle::Forgive(attempt)).await?;
        let extra = json!({ "sessionId": session.id, "method": method });
        self.audit_session("auth.mfa.verify", session, true, client, extra).await;
        Ok(tokens)
    }

    async fn code_refused(&self, session: &SessionView, action: &str, attempt: Reserved, client: &Client) -> AuthError {
        self.audit_lockout(&session.email, Some(&session.tenant), attempt, client).await;
        self.audit_session(action, session, false, client, json!({ "reason": "wrong or used code" })).await;
        AuthError::InvalidCode
    }

    /// Lifts the session's MFA restriction and rotates its tokens (a new privilege, new tokens).
    async fn complete_mfa(&self, conn: &mut PgConnection, session: &SessionView) -> Result<Tokens, AuthError> {
        db::satisfy_mfa(conn, session.id).await?;
        let (access, refresh) = (token::issue(TokenKind::Access), token::issue(TokenKind::Refresh));
        let rotated = db::rotate(conn, session.id, &access.hash, &refresh.hash, self.settings.times).await?;
        let rotated = rotated.ok_or(AuthError::InvalidToken)?;
        Ok(self.tokens(access, refresh, &rotated))
    }
}

fn link_problem(purpose: LinkPurpose, problem: &LinkToken) -> (&'static str, String) {
    let what = match purpose {
        LinkPurpose::Invitation => "invitation",
        LinkPurpose::PasswordReset => "password reset link",
    };
    let ask = match purpose {
        LinkPurpose::Invitation => "ask an administrator to send a new invitation",
        LinkPurpose::PasswordReset => "request a new one",
    };
    match problem {
        LinkToken::Expired => ("expired_token", format!("this {what} has expired; {ask}")),
        LinkToken::Used => ("used_token", format!("this {what} was already used or replaced; {ask}")),
        _ => ("invalid_token", format!("this {what} is not valid; {ask}")),
    }
}
