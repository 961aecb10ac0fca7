//! Platform staff in the browser (issue 23.2): operators and auditors sign in at the operators'
//! identity provider (the same provider, client and group bindings as their bearer tokens), by the
//! authorization code flow with PKCE, state and nonce, and Gatehouse keeps its own platform session:
//! an absolute lifetime (8 hours by default), revocable, the role worked out again from the groups
//! at each sign-in, every sign-in and sign-out audited. A browser with that session is the same
//! `Actor::Platform` as a bearer token of the provider.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use sqlx::PgPool;

use crate::audit::{Outcome, Target};
use crate::authz::{Actor, PlatformActor, PlatformVia};
use crate::identity::Client;
use crate::identity::token;
use crate::operators::Verifier;
use crate::secret::Secret;
use crate::secret::sealed::Keyring;
use crate::sso::{AuthorizationRequest, random};
use crate::store::StoreError;
use crate::store::staff::{self as db, StaffSession};

/// How long a started sign-in may take at the provider.
const LOGIN_TTL: Duration = Duration::from_secs(600);

/// How platform staff sign in in a browser.
pub struct Staff {
    pool: PgPool,
    keyring: Arc<Keyring>,
    /// The callback is `<public_url>/console/login/callback`.
    public_url: String,
    verifier: Arc<Verifier>,
    client_secret: Secret,
    /// A platform session's absolute lifetime.
    pub lifetime: Duration,
    client: crate::outbound::Client,
    /// The provider's authorization and token endpoints, read from its discovery document once.
    endpoints: tokio::sync::OnceCell<Endpoints>,
}

#[derive(Debug, Clone)]
struct Endpoints {
    authorization: String,
    token: String,
}

/// Why a staff sign-in did not happen, in words.
#[derive(Debug, thiserror::Error)]
pub enum StaffError {
    #[error("this sign-in link was already used or has expired; start again")]
    UnknownState,
    #[error("this sign-in was started in another browser; start again in this one")]
    OtherBrowser,
    #[error("the identity provider refused: {0}")]
    Provider(String),
    /// The provider cannot be reached or answered something unusable (its words stay in the log).
    #[error("the sign-in at the identity provider could not be completed: {0}")]
    Exchange(String),
    /// The ID token, or the person's groups, were refused (the refusal's words).
    #[error("{0}")]
    Refused(crate::operators::Refusal),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A platform session that was opened: its token (the browser's cookie) and where to go on.
pub struct SignedIn {
    pub token: String,
    pub return_to: String,
    pub actor: Actor,
}

impl Staff {
    pub fn new(
        pool: PgPool,
        keyring: Arc<Keyring>,
        public_url: &str,
        verifier: Arc<Verifier>,
        client_secret: Secret,
        lifetime: Duration,
    ) -> Staff {
        Staff {
            pool,
            keyring,
            public_url: public_url.trim_end_matches('/').to_owned(),
            verifier,
            client_secret,
            lifetime,
            client: crate::outbound::Client::new(crate::outbound::Policy::operator()),
            endpoints: tokio::sync::OnceCell::new(),
        }
    }

    /// The redirect URI to register at the provider for Gatehouse's client.
    pub fn callback_url(&self) -> String {
        format!("{}/console/login/callback", self.public_url)
    }

    async fn endpoints(&self) -> Result<&Endpoints, StaffError> {
        self.endpoints
            .get_or_try_init(|| async {
                let issuer = self.verifier.settings().issuer_url.trim_end_matches('/');
                let url = format!("{issuer}/.well-known/openid-configuration");
                let response = self
                    .client
                    .request(reqwest::Method::GET, &url)
                    .map_err(StaffError::Exchange)?
                    .send()
                    .await
                    .map_err(|e| StaffError::Exchange(format!("{url}: {}", crate::outbound::transport(&e))))?;
                let body = crate::outbound::bounded_body(response, 512 * 1024).await.map_err(StaffError::Exchange)?;
                let document: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let endpoint = |name: &str| {
                    document[name]
                        .as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| StaffError::Exchange(format!("{url} names no {name}")))
                };
                Ok(Endpoints { authorization: endpoint("authorization_endpoint")?, token: endpoint("token_endpoint")? })
            })
            .await
    }

    /// Starts a sign-in; returns the provider's URL to send the browser to, and the value of the
    /// cookie that binds the sign-in to this browser.
    pub async fn start(&self, return_to: &str) -> Result<(String, String), StaffError> {
        let endpoints = self.endpoints().await?;
        let request = AuthorizationRequest::new(&self.keyring);
        let browser = random();
        let login = db::NewLogin {
            state_hash: &request.state_hash,
            nonce: &request.nonce,
            verifier: (&request.sealed_verifier.0, &request.sealed_verifier.1),
            browser_hash: &token::hash(&browser),
            return_to,
            ttl: LOGIN_TTL,
        };
        db::start_login(&self.pool, login).await?;
        let client_id = &self.verifier.settings().audience;
        let url = request
            .url(&endpoints.authorization, client_id, &self.callback_url(), "openid email profile groups")
            .map_err(StaffError::Exchange)?;
        Ok((url.to_string(), browser))
    }

    /// Completes a sign-in that came back with `code` and `state` in the browser whose binding
    /// cookie is `browser`: a platform session for the role the person's groups hold now.
    pub async fn finish(
        &self,
        state: &str,
        code: &str,
        browser: Option<&str>,
        client: &Client,
    ) -> Result<SignedIn, StaffError> {
        let state_hash = token::hash(state);
        let pending = db::take_login(&self.pool, &state_hash).await?.ok_or(StaffError::UnknownState)?;
        let presented = browser.map(token::hash).unwrap_or_default();
        if !bool::from(subtle::ConstantTimeEq::ct_eq(presented.as_slice(), pending.browser_hash.as_slice())) {
            return Err(StaffError::OtherBrowser);
        }
        let verifier = self
            .keyring
            .open(&pending.verifier_key_id, &pending.verifier_sealed, &state_hash)
            .map_err(|e| StoreError::Task(e.to_string()))?;
        let verifier = String::from_utf8(verifier).map_err(|e| StoreError::Task(e.to_string()))?;
        let token_endpoint = self.endpoints().await?.token.clone();
        let form = [
            ("grant_type", "authorization_code".to_owned()),
            ("code", code.to_owned()),
            ("redirect_uri", self.callback_url()),
            ("code_verifier", verifier),
        ];
        let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let client_id = &self.verifier.settings().audience;
        let basic = data_encoding::BASE64
            .encode(format!("{}:{}", encode(client_id), encode(self.client_secret.expose())).as_bytes());
        let answer =
            crate::sso::exchange(&self.client, &token_endpoint, &basic, &form).await.map_err(StaffError::Exchange)?;
        let id_token = answer["id_token"].as_str().ok_or_else(|| StaffError::Exchange("no id_token".into()))?;
        let operator = match self.verifier.sign_in(id_token, &pending.nonce).await {
            Ok(operator) => operator,
            Err(refusal) => {
                let details = json!({ "via": "browser", "reason": refusal.category() });
                let entry = crate::audit::claimed(
                    "unknown",
                    "operator.login",
                    Target::platform("/console/login"),
                    Outcome::Failure,
                    &client.origin(),
                    details,
                );
                if let Err(error) = crate::store::apps::audit(&self.pool, entry).await {
                    tracing::warn!(%error, "cannot write an audit row");
                }
                return Err(StaffError::Refused(refusal));
            }
        };
        let session_token = random();
        let role = operator.role.as_str();
        let new = db::NewSession {
            token_hash: &token::hash(&session_token),
            issuer: &operator.issuer,
            subject: &operator.subject,
            username: &operator.username,
            display_name: operator.name.as_deref(),
            role,
            lifetime: self.lifetime,
        };
        let id = db::create_session(&self.pool, new).await?;
        let actor = Actor::Platform(PlatformActor {
            role: operator.role,
            name: operator.username.clone(),
            via: PlatformVia::IdentityProvider {
                issuer: operator.issuer.clone(),
                subject: operator.subject.clone(),
                display_name: operator.name.clone(),
            },
        });
        let details = json!({ "via": "browser", "sessionId": id, "role": role, "groups": operator.groups });
        crate::audit::record(
            &self.pool,
            &actor,
            "operator.login",
            Target::platform("/console/login"),
            Outcome::Success,
            &client.origin(),
            details,
        )
        .await?;
        Ok(SignedIn { token: session_token, return_to: pending.return_to, actor })
    }

    /// The platform actor of a browser's session token, if it names a live session.
    pub async fn actor(&self, session_token: &str) -> Result<Option<(StaffSession, Actor)>, StoreError> {
        let Some(session) = db::session(&self.pool, &token::hash(session_token)).await? else { return Ok(None) };
        let Some(role) = crate::model::PlatformRole::parse(&session.role) else { return Ok(None) };
        let actor = Actor::Platform(PlatformActor {
            role,
            name: session.username.clone(),
            via: PlatformVia::IdentityProvider {
                issuer: session.issuer.clone(),
                subject: session.subject.clone(),
                display_name: session.display_name.clone(),
            },
        });
        Ok(Some((session, actor)))
    }

    /// Ends a browser's platform session (sign-out), audited.
    pub async fn end(&self, session: &StaffSession, actor: &Actor, client: &Client) -> Result<(), StoreError> {
        if db::revoke(&self.pool, session.id, "logout").await? {
            let details = json!({ "via": "browser", "sessionId": session.id });
            let target = Target::platform("/console/logout");
            crate::audit::record(
                &self.pool,
                actor,
                "operator.logout",
                target,
                Outcome::Success,
                &client.origin(),
                details,
            )
            .await?;
        }
        Ok(())
    }
}
