//! Tenant SSO (issue 14.2, FR-AUTH-003): sign-in through a tenant's own OpenID provider. The
//! owner sets it (draft), *verifies* it (discovery and keys fetched, every problem in words),
//! completes one *test sign-in* that changes nothing, then activates it. The login page then sends
//! the tenant's email domains to the provider: authorization code + PKCE + state + nonce, the ID
//! token checked (signature with the provider's cached keys, issuer, audience, expiry, nonce), a
//! verified email in one of the tenant's domains, mapped to the tenant's user, and a Gatehouse
//! session like a password sign-in's.

pub mod discovery;
pub mod settings;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use data_encoding::BASE64URL_NOPAD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use crate::audit::{Outcome, Target};
use crate::identity::Client;
use crate::identity::token::{self, TokenKind};
use crate::operators::Jwks;
use crate::secret::sealed::Keyring;
use crate::store::sso::{self as db, TenantIdp};
use crate::store::{self, StoreError};

/// How long a started sign-in may take at the provider.
const LOGIN_TTL: Duration = Duration::from_secs(600);

/// What the SSO flows share.
pub struct Sso {
    pool: PgPool,
    keyring: Arc<Keyring>,
    /// Gatehouse's public URL: the callback is `<public_url>/login/sso/callback`.
    public_url: String,
    /// http issuers on a loopback host are accepted (local set-ups and tests only).
    pub allow_loopback_http: bool,
    /// Each issuer's signing keys, cached and refreshed on an unknown `kid`.
    keys: Mutex<HashMap<String, Arc<Jwks>>>,
    /// How long a federated session lives at most (as a password sign-in's).
    session_absolute: Duration,
    /// Calls tenants' providers: public addresses only (and loopback when allowed).
    client: crate::outbound::Client,
}

/// Why a federated sign-in did not happen, in words a person can act on.
#[derive(Debug, thiserror::Error)]
pub enum SsoError {
    #[error("this sign-in link was already used or has expired; start again from the login page")]
    UnknownState,
    #[error("this sign-in was started in another browser; start again from the login page in this one")]
    OtherBrowser,
    #[error("your organisation's sign-in service refused: {0}")]
    Provider(String),
    #[error("your organisation's sign-in could not be completed: {0}")]
    Exchange(String),
    #[error("the answer of your organisation's sign-in service was refused: {0}")]
    Token(String),
    #[error("your organisation's sign-in service did not vouch for your email address (email_verified)")]
    EmailNotVerified,
    #[error("the email {0} is not in a domain your organisation signs in")]
    OutsideDomains(String),
    #[error("{0} has no account in this organisation; ask an administrator to invite you")]
    UnknownUser(String),
    #[error("{0} belongs to another organisation")]
    OtherTenant(String),
    #[error("this account is disabled; ask an administrator of your organisation")]
    Disabled,
    #[error("your organisation's access is suspended; contact its owner or the platform's support")]
    Suspended,
    #[error("your organisation no longer signs in through this service")]
    NotConfigured,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl SsoError {
    /// What the person in the browser is told. The remote's own words (a connection error, a token
    /// endpoint's description, why its keys could not be read) stay in the log and the platform's
    /// audit row: shown on a page they would tell whoever set the provider what answers where
    /// (issue 25.3).
    pub fn for_browser(&self) -> String {
        match self {
            SsoError::Exchange(_) | SsoError::Token(_) => "your organisation's sign-in could not be completed; try \
                again, or ask your administrator to check the organisation's sign-in settings"
                .into(),
            other => other.to_string(),
        }
    }
}

/// A federated sign-in that came back.
pub enum Finished {
    /// The owner's test: the provider signed this email in; nothing was changed.
    Tested { tenant: String, email: String },
    /// A session was opened: its refresh token (the browser's cookie), and where to go on.
    SignedIn { refresh_token: String, return_to: String, email: String },
}

impl Sso {
    pub fn new(
        pool: PgPool,
        keyring: Arc<Keyring>,
        public_url: &str,
        allow_loopback_http: bool,
        session_absolute: Duration,
    ) -> Sso {
        Sso {
            pool,
            keyring,
            public_url: public_url.trim_end_matches('/').to_owned(),
            allow_loopback_http,
            keys: Mutex::new(HashMap::new()),
            session_absolute,
            client: crate::outbound::Client::new(crate::outbound::Policy::tenant(allow_loopback_http)),
        }
    }

    /// The redirect URI tenants register at their provider.
    pub fn callback_url(&self) -> String {
        format!("{}/login/sso/callback", self.public_url)
    }

    /// Verifies a tenant's provider and records the outcome (`verified`, or back to `draft`).
    pub async fn verify(&self, idp: &TenantIdp) -> Result<discovery::Report, StoreError> {
        let report = discovery::verify(&idp.issuer, self.allow_loopback_http).await;
        db::record_verification(&self.pool, idp.tenant_id, idp.updated_at, report.passed(), &report.to_json()).await?;
        Ok(report)
    }

    /// Starts a sign-in at the tenant's provider; returns the URL to send the browser to, and for
    /// a `login`, the value of the cookie that binds the sign-in to this browser.
    pub async fn start(
        &self,
        idp: &TenantIdp,
        purpose: &str,
        return_to: &str,
        login_hint: Option<&str>,
        started_by: Option<&str>,
    ) -> Result<(String, Option<String>), SsoError> {
        let endpoint = idp
            .metadata
            .as_ref()
            .and_then(|m| m["authorizationEndpoint"].as_str())
            .ok_or(SsoError::NotConfigured)?
            .to_owned();
        let request = AuthorizationRequest::new(&self.keyring);
        let (state_hash, nonce) = (&request.state_hash, &request.nonce);
        let (key_id, sealed) = (&request.sealed_verifier.0, &request.sealed_verifier.1);
        let browser = (purpose == "login").then(random);
        let browser_hash = browser.as_deref().map(token::hash);
        let new = db::NewLogin {
            state_hash,
            tenant_id: idp.tenant_id,
            purpose,
            nonce,
            verifier: (key_id, sealed),
            return_to,
            started_by,
            browser_hash: browser_hash.as_deref(),
            ttl: LOGIN_TTL,
        };
        db::start_login(&self.pool, new).await?;
        let mut url = request
            .url(&endpoint, &idp.client_id, &self.callback_url(), "openid email profile")
            .map_err(SsoError::Exchange)?;
        if let Some(hint) = login_hint {
            url.query_pairs_mut().append_pair("login_hint", hint);
        }
        Ok((url.to_string(), browser))
    }

    /// Completes a sign-in that came back to the callback with `code` and `state`, in the browser
    /// whose binding cookie is `browser`.
    pub async fn finish(
        &self,
        state: &str,
        code: &str,
        browser: Option<&str>,
        client: &Client,
    ) -> Result<Finished, SsoError> {
        let state_hash = token::hash(state);
        // Single use: a replayed or forged state finds nothing.
        let pending = db::take_login(&self.pool, &state_hash).await?.ok_or(SsoError::UnknownState)?;
        if let Some(expected) = &pending.browser_hash {
            let presented = browser.map(token::hash).unwrap_or_default();
            if !bool::from(subtle::ConstantTimeEq::ct_eq(presented.as_slice(), expected.as_slice())) {
                return Err(SsoError::OtherBrowser);
            }
        }
        let idp = db::idp_by_id(&self.pool, pending.tenant_id).await?.ok_or(SsoError::NotConfigured)?;
        let usable = match pending.purpose.as_str() {
            "test" => matches!(idp.state.as_str(), "verified" | "active"),
            _ => idp.state == "active",
        };
        if !usable {
            return Err(SsoError::NotConfigured);
        }
        let verifier = self
            .keyring
            .open(&pending.verifier_key_id, &pending.verifier_sealed, &state_hash)
            .map_err(|e| StoreError::Task(e.to_string()))?;
        let verifier = String::from_utf8(verifier).map_err(|e| StoreError::Task(e.to_string()))?;
        let secret = self.client_secret(&idp)?;
        let id_token = self.exchange(&idp, code, &verifier, &secret).await?;
        let claims = self.check_id_token(&idp, &id_token, &pending.nonce).await?;
        let email = self.vouched_email(&idp, &claims)?;
        let name = claims
            .get("name")
            .and_then(Value::as_str)
            .map(|n| n.chars().filter(|c| !c.is_control()).take(200).collect::<String>());
        if pending.purpose == "test" {
            db::record_test(&self.pool, idp.tenant_id).await?;
            self.audit(
                &idp,
                pending.started_by.as_deref().unwrap_or(&email),
                "sso.test",
                true,
                client,
                json!({ "email": email }),
            )
            .await;
            return Ok(Finished::Tested { tenant: idp.tenant, email });
        }
        let refresh_token = self.open_session(&idp, &email, name.as_deref(), client).await?;
        self.audit(&idp, &email, "auth.login", true, client, json!({ "method": "sso", "issuer": idp.issuer })).await;
        Ok(Finished::SignedIn { refresh_token, return_to: pending.return_to, email })
    }

    /// The provider's client secret: opened from its seal (set through the API), or read from the
    /// environment variable the tenant's Git file names.
    fn client_secret(&self, idp: &TenantIdp) -> Result<String, SsoError> {
        match (&idp.secret_env, &idp.secret_key_id, &idp.secret_sealed) {
            (Some(env), _, _) => std::env::var(env).map_err(|_| {
                SsoError::Exchange(format!("the client secret's environment variable `{env}` is not set on Gatehouse"))
            }),
            (None, Some(key_id), Some(sealed)) => {
                let secret = self
                    .keyring
                    .open(key_id, sealed, idp.tenant_id.as_bytes())
                    .map_err(|e| StoreError::Task(e.to_string()))?;
                Ok(String::from_utf8(secret).map_err(|e| StoreError::Task(e.to_string()))?)
            }
            _ => Err(SsoError::NotConfigured),
        }
    }

    /// The code, exchanged at the provider's token endpoint (client_secret_basic, PKCE).
    async fn exchange(&self, idp: &TenantIdp, code: &str, verifier: &str, secret: &str) -> Result<String, SsoError> {
        let endpoint =
            idp.metadata.as_ref().and_then(|m| m["tokenEndpoint"].as_str()).ok_or(SsoError::NotConfigured)?.to_owned();
        let form = [
            ("grant_type", "authorization_code".to_owned()),
            ("code", code.to_owned()),
            ("redirect_uri", self.callback_url()),
            ("code_verifier", verifier.to_owned()),
        ];
        let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let basic = data_encoding::BASE64.encode(format!("{}:{}", encode(&idp.client_id), encode(secret)).as_bytes());
        let answer = exchange(&self.client, &endpoint, &basic, &form).await.map_err(SsoError::Exchange)?;
        answer["id_token"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| SsoError::Exchange("no id_token in the answer".into()))
    }

    async fn check_id_token(
        &self,
        idp: &TenantIdp,
        id_token: &str,
        nonce: &str,
    ) -> Result<serde_json::Map<String, Value>, SsoError> {
        let jwks = self.jwks(&idp.issuer);
        let claims = crate::operators::verify_id_token(&jwks, id_token, &idp.issuer, &idp.client_id)
            .await
            .map_err(|refusal| SsoError::Token(refusal.to_string()))?;
        if !nonce_matches(&claims, nonce) {
            return Err(SsoError::Token("its nonce is not the one this sign-in sent".into()));
        }
        Ok(claims)
    }

    /// The verified email the provider vouches for, in one of the tenant's domains.
    fn vouched_email(&self, idp: &TenantIdp, claims: &serde_json::Map<String, Value>) -> Result<String, SsoError> {
        if claims.get("email_verified") != Some(&Value::Bool(true)) {
            return Err(SsoError::EmailNotVerified);
        }
        let email =
            claims.get("email").and_then(Value::as_str).ok_or(SsoError::EmailNotVerified)?.trim().to_lowercase();
        let domain = email.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
        if !idp.domains.iter().any(|d| d == domain) {
            return Err(SsoError::OutsideDomains(email));
        }
        Ok(email)
    }

    /// Maps the email to the tenant's user (an invited one becomes active; an unknown one is
    /// created only with just-in-time creation on) and opens a session; returns its refresh token.
    async fn open_session(
        &self,
        idp: &TenantIdp,
        email: &str,
        name: Option<&str>,
        client: &Client,
    ) -> Result<String, SsoError> {
        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        let member = db::member(&mut tx, idp.tenant_id, email).await?;
        let user_id = match member {
            Some(member) if member.tenant_status != "active" => return Err(SsoError::Suspended),
            Some(member) if member.status == "disabled" => return Err(SsoError::Disabled),
            Some(member) => {
                db::activate_invited(&mut tx, member.user_id).await?;
                member.user_id
            }
            None if db::email_used_elsewhere(&mut tx, idp.tenant_id, email).await? => {
                drop(tx);
                return Err(SsoError::OtherTenant(email.to_owned()));
            }
            None => match &idp.jit_role {
                Some(role) => db::create_jit_user(&mut tx, idp.tenant_id, email, name, role).await?,
                None => {
                    drop(tx);
                    self.audit(
                        idp,
                        email,
                        "auth.login",
                        false,
                        client,
                        json!({ "method": "sso", "reason": "unknown user" }),
                    )
                    .await;
                    return Err(SsoError::UnknownUser(email.to_owned()));
                }
            },
        };
        let (access, refresh) = (token::issue(TokenKind::Access), token::issue(TokenKind::Refresh));
        let session = db::FederatedSession {
            user_id,
            tenant_id: idp.tenant_id,
            access_hash: &access.hash,
            refresh_hash: &refresh.hash,
            absolute: self.session_absolute,
            ip: client.ip.as_deref(),
            user_agent: client.user_agent.as_deref(),
        };
        db::create_federated_session(&mut tx, session).await?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(refresh.token)
    }

    fn jwks(&self, issuer: &str) -> Arc<Jwks> {
        let mut keys = self.keys.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let policy = crate::outbound::Policy::tenant(self.allow_loopback_http);
        keys.entry(issuer.to_owned())
            .or_insert_with(|| Arc::new(Jwks::new(issuer.to_owned(), policy, crate::operators::jwks::MIN_INTERVAL)))
            .clone()
    }

    async fn audit(&self, idp: &TenantIdp, actor: &str, action: &str, success: bool, client: &Client, extra: Value) {
        let mut details = json!({ "issuer": idp.issuer });
        if let (Some(map), Value::Object(extra)) = (details.as_object_mut(), extra) {
            map.extend(extra);
        }
        let target = Target::in_tenant(&idp.tenant, format!("tenant/{}/sso", idp.tenant));
        let outcome = if success { Outcome::Success } else { Outcome::Failure };
        let entry = crate::audit::claimed(actor, action, target, outcome, &client.origin(), details);
        if let Err(error) = store::apps::audit(&self.pool, entry).await {
            tracing::warn!(%error, "cannot write an audit row");
        }
    }
}

/// Whether the ID token carries the nonce this sign-in sent (compared in constant time).
fn nonce_matches(claims: &serde_json::Map<String, Value>, sent: &str) -> bool {
    claims
        .get("nonce")
        .and_then(Value::as_str)
        .is_some_and(|got| subtle::ConstantTimeEq::ct_eq(got.as_bytes(), sent.as_bytes()).into())
}

/// A new authorization request at an OpenID provider (code flow): its single-use `state` (only its
/// hash is kept), its `nonce`, and its PKCE verifier, sealed under the state's hash until the
/// callback opens it, with the verifier's S256 challenge. Tenant SSO and platform staff use it.
pub(crate) struct AuthorizationRequest {
    state: String,
    pub state_hash: Vec<u8>,
    pub nonce: String,
    /// The verifier, sealed: the key ring's key id and the sealed bytes.
    pub sealed_verifier: (String, Vec<u8>),
    challenge: String,
}

impl AuthorizationRequest {
    pub(crate) fn new(keyring: &Keyring) -> AuthorizationRequest {
        let state = random();
        let verifier = random() + &random();
        let challenge = BASE64URL_NOPAD.encode(&Sha256::digest(verifier.as_bytes()));
        let state_hash = token::hash(&state);
        let sealed_verifier = keyring.seal(verifier.as_bytes(), &state_hash);
        AuthorizationRequest { state, state_hash, nonce: random(), sealed_verifier, challenge }
    }

    /// The provider's authorization `endpoint` with this request's parameters.
    pub(crate) fn url(
        &self,
        endpoint: &str,
        client_id: &str,
        redirect_uri: &str,
        scope: &str,
    ) -> Result<url::Url, String> {
        let mut url = url::Url::parse(endpoint).map_err(|e| e.to_string())?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", scope)
            .append_pair("state", &self.state)
            .append_pair("nonce", &self.nonce)
            .append_pair("code_challenge", &self.challenge)
            .append_pair("code_challenge_method", "S256");
        Ok(url)
    }
}

/// 256 random bits, base64url.
pub(crate) fn random() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    BASE64URL_NOPAD.encode(&bytes)
}

/// The token request at an OpenID provider (client_secret_basic when `basic` is set): its
/// answer's JSON, or what went wrong in words.
pub(crate) async fn exchange(
    client: &crate::outbound::Client,
    endpoint: &str,
    basic: &str,
    form: &[(&str, String)],
) -> Result<Value, String> {
    let request = client
        .request(reqwest::Method::POST, endpoint)?
        .header("Authorization", format!("Basic {basic}"))
        .header("Accept", "application/json")
        .form(form);
    let response = request
        .send()
        .await
        .map_err(|e| format!("cannot reach the token endpoint: {}", crate::outbound::transport(&e)))?;
    let status = response.status();
    let body =
        crate::outbound::bounded_body(response, 512 * 1024).await.map_err(|e| format!("the token endpoint: {e}"))?;
    let answer: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if !status.is_success() {
        return Err(format!(
            "the token endpoint answered {} {}",
            status.as_u16(),
            answer["error_description"].as_str().or(answer["error"].as_str()).unwrap_or("")
        ));
    }
    if answer.is_null() {
        return Err("the token endpoint's answer is not JSON".into());
    }
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(value: Value) -> serde_json::Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn an_id_token_with_a_wrong_or_missing_nonce_is_refused() {
        assert!(nonce_matches(&claims(json!({ "nonce": "abc" })), "abc"));
        assert!(!nonce_matches(&claims(json!({ "nonce": "abd" })), "abc"));
        assert!(!nonce_matches(&claims(json!({})), "abc"));
        assert!(!nonce_matches(&claims(json!({ "nonce": 1 })), "abc"));
    }
}
