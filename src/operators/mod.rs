//! Platform operators and auditors, signed in through an external OpenID Connect identity provider:
//! the bearer JWT the provider issued (an ID token, or a JWT access token with the same claims) is
//! checked against the provider's published keys and mapped, through group bindings, to a platform
//! role. Gatehouse keeps no operator accounts: the provider is the source of truth, so leaving the
//! `platform-ops` group there ends someone's access here as soon as their token expires.
//!
//! `settings` says whom to trust, `token` takes a JWT apart, `keys` picks the key that may check
//! it, `jwks` keeps the provider's keys fresh, `claims` turns checked claims into an `Operator`.

mod claims;
pub(crate) mod jwks;
pub(crate) mod keys;
pub mod settings;
mod token;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::model::PlatformRole;

pub(crate) use jwks::Jwks;
pub use settings::{GroupBinding, OidcSettings, RequiredClaim, SettingsError, SigningAlg};
pub use token::looks_like_jwt;

/// The claims of `token` if it is signed by one of `keys` (its signature only: the caller checks
/// the claims it needs).
pub(crate) fn verify_signature(
    keys: &keys::KeySet,
    token: &str,
) -> Result<serde_json::Map<String, serde_json::Value>, Refusal> {
    let parsed = token::parse(token)?;
    let alg = SigningAlg::accepted(&parsed.header.alg)
        .ok_or_else(|| Refusal::invalid(format!("the token is signed with `{}`", parsed.header.alg)))?;
    let keys::Lookup::Found(candidates) = keys.lookup(parsed.header.kid.as_deref(), alg)? else {
        return Err(Refusal::invalid("the token's key is not published"));
    };
    let verified = candidates.iter().any(|key| {
        jsonwebtoken::crypto::verify(parsed.signature, parsed.signed.as_bytes(), &key.decoding, alg.0).unwrap_or(false)
    });
    if !verified {
        return Err(Refusal::invalid("the token's signature does not verify"));
    }
    Ok(parsed.claims)
}

/// Checks an ID token of any OpenID provider (a tenant's, for SSO): its signature with a key the
/// provider publishes (`jwks`), its issuer, audience and times. Returns its claims.
pub(crate) async fn verify_id_token(
    jwks: &Jwks,
    token: &str,
    issuer: &str,
    audience: &str,
) -> Result<serde_json::Map<String, serde_json::Value>, Refusal> {
    let parsed = token::parse(token)?;
    let alg = SigningAlg::accepted(&parsed.header.alg).ok_or_else(|| {
        Refusal::invalid(format!(
            "the ID token is signed with `{}`, which Gatehouse does not accept",
            parsed.header.alg
        ))
    })?;
    let candidates = jwks.lookup(parsed.header.kid.as_deref(), alg).await?;
    let verified = candidates.iter().any(|key| {
        jsonwebtoken::crypto::verify(parsed.signature, parsed.signed.as_bytes(), &key.decoding, alg.0).unwrap_or(false)
    });
    if !verified {
        return Err(Refusal::invalid("the ID token's signature does not verify with the provider's keys"));
    }
    claims::check_issuer(&parsed.claims, issuer)?;
    claims::check_audience(&parsed.claims, audience)?;
    claims::check_times(&parsed.claims, chrono::Utc::now().timestamp(), 60)?;
    Ok(parsed.claims)
}

/// Checks the tokens of one identity provider. Cheap to share as `Arc<Verifier>`.
pub struct Verifier {
    settings: OidcSettings,
    jwks: Arc<jwks::Jwks>,
    verified: Verified,
}

/// A person the identity provider vouches for, with the platform role their groups are bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    pub issuer: String,
    /// The provider's stable id of the person (`sub`).
    pub subject: String,
    /// The `--oidc-username-claim` value: what the audit log names.
    pub username: String,
    pub name: Option<String>,
    pub groups: Vec<String>,
    pub role: PlatformRole,
}

/// Why a token was not accepted, said so the caller can fix it. Never contains the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    kind: RefusalKind,
    message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    /// The token itself is not acceptable: malformed, signature, issuer, audience, expiry, claims.
    Invalid,
    /// A valid token of a person none of whose groups is bound to a platform role.
    Unbound,
    /// The provider's keys cannot be had right now: the same token may pass later.
    Unavailable,
}

impl Refusal {
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Refusal { kind: RefusalKind::Invalid, message: message.into() }
    }

    pub(crate) fn unbound(message: impl Into<String>) -> Self {
        Refusal { kind: RefusalKind::Unbound, message: message.into() }
    }

    pub(crate) fn unavailable(reason: String) -> Self {
        Refusal {
            kind: RefusalKind::Unavailable,
            message: format!("the identity provider's signing keys cannot be fetched: {reason}"),
        }
    }

    pub fn kind(&self) -> RefusalKind {
        self.kind
    }

    /// What kind of problem, as one of a fixed few phrases: the audit reason under which refusals
    /// are aggregated. The message may repeat claims the caller chose; this never does.
    pub fn category(&self) -> &'static str {
        let m = self.message.as_str();
        match self.kind {
            RefusalKind::Unbound => "identity-provider groups bound to no role",
            RefusalKind::Unavailable => "identity-provider keys unavailable",
            RefusalKind::Invalid if m.contains("expired") => "identity-provider token expired",
            RefusalKind::Invalid if m.contains("not valid before") || m.contains("`iat`") => {
                "identity-provider token not yet valid"
            }
            RefusalKind::Invalid if m.contains("issuer") || m.contains("`iss`") => {
                "identity-provider token of another issuer"
            }
            RefusalKind::Invalid if m.contains("audience") || m.contains("`aud`") => {
                "identity-provider token for another audience"
            }
            RefusalKind::Invalid if m.contains("key") || m.contains("signature") => "identity-provider token signature",
            RefusalKind::Invalid if m.contains("algorithm") || m.contains("`alg`") => {
                "identity-provider token algorithm"
            }
            RefusalKind::Invalid if m.contains("verified") => "identity-provider email not verified",
            RefusalKind::Invalid if m.contains("claim") => "identity-provider token claims",
            RefusalKind::Invalid => "identity-provider token malformed",
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Refusal {}

impl Verifier {
    /// A verifier of `settings`; fails only on invalid settings (never because the IdP is down).
    /// Its keys are fetched by `keep_keys_fresh`, which the caller runs.
    pub fn new(settings: OidcSettings) -> Result<Arc<Verifier>, SettingsError> {
        settings.check()?;
        let jwks = Arc::new(jwks::Jwks::new(
            settings.issuer_url.clone(),
            crate::outbound::Policy::operator(),
            settings.jwks_min_interval,
        ));
        Ok(Arc::new(Verifier { settings, jwks, verified: Verified::default() }))
    }

    /// Fetches the provider's keys now, then hourly, until `shutdown` (logs and retries while the
    /// provider is down).
    pub fn keep_keys_fresh(&self, shutdown: CancellationToken) -> impl std::future::Future<Output = ()> + use<> {
        self.jwks.clone().keep_fresh(shutdown)
    }

    pub fn settings(&self) -> &OidcSettings {
        &self.settings
    }

    /// Verifies a bearer JWT and maps it to a platform operator or auditor.
    pub async fn verify(&self, token: &str) -> Result<Operator, Refusal> {
        let parsed = token::parse(token)?;
        let alg = self.allowed(&parsed.header.alg)?;
        claims::check_issuer(&parsed.claims, &self.settings.issuer_url)?;
        // The key must still be in the provider's JWKS, every time; the signature is checked once
        // per token (RSA verification is most of an operator request's CPU otherwise).
        let candidates = self.jwks.lookup(parsed.header.kid.as_deref(), alg).await?;
        let now = chrono::Utc::now().timestamp();
        let seen = self.verified.holds(token, now);
        let verified = seen
            || candidates.iter().any(|key| {
                jsonwebtoken::crypto::verify(parsed.signature, parsed.signed.as_bytes(), &key.decoding, alg.0)
                    .unwrap_or(false)
            });
        if verified && !seen {
            self.verified.remember(token, now);
        }
        if !verified {
            return Err(Refusal::invalid(match &parsed.header.kid {
                Some(kid) => format!("the token's signature does not verify with the identity provider's key `{kid}`"),
                None => "the token's signature does not verify with any of the identity provider's keys".to_owned(),
            }));
        }
        claims::map(&parsed.claims, &self.settings, chrono::Utc::now().timestamp())
    }

    /// Verifies the ID token a browser sign-in at the provider came back with: everything `verify`
    /// checks, and that it carries the `nonce` that sign-in sent.
    pub async fn sign_in(&self, id_token: &str, nonce: &str) -> Result<Operator, Refusal> {
        let operator = self.verify(id_token).await?;
        let claims = token::parse(id_token)?.claims;
        let sent = claims.get("nonce").and_then(serde_json::Value::as_str).unwrap_or_default();
        if !bool::from(subtle::ConstantTimeEq::ct_eq(sent.as_bytes(), nonce.as_bytes())) || sent.is_empty() {
            return Err(Refusal::invalid("the ID token's nonce is not the one this sign-in sent"));
        }
        Ok(operator)
    }

    /// The header's `alg`, if the settings allow it.
    fn allowed(&self, alg: &str) -> Result<SigningAlg, Refusal> {
        if let Some(allowed) = self.settings.signing_algs.iter().find(|a| a.name() == alg) {
            return Ok(*allowed);
        }
        let allowed: Vec<_> = self.settings.signing_algs.iter().map(|a| a.name()).collect();
        Err(Refusal::invalid(if alg.eq_ignore_ascii_case("none") {
            "the token is not signed (alg `none`)".to_owned()
        } else {
            format!(
                "the token is signed with `{alg}`, which is not among the allowed algorithms [{}]",
                allowed.join(", ")
            )
        }))
    }
}

#[cfg(test)]
mod refusal_tests {
    use super::Refusal;

    #[test]
    fn refusals_fall_into_a_fixed_few_categories_whatever_the_caller_sent() {
        let cases = [
            (Refusal::invalid("the token expired at 2026-01-01T00:00:00Z"), "identity-provider token expired"),
            (
                Refusal::invalid("the token's issuer `https://evil.example/x` is not `https://idp`"),
                "identity-provider token of another issuer",
            ),
            (
                Refusal::invalid("the token's audience [x] does not include `gatehouse`"),
                "identity-provider token for another audience",
            ),
            (
                Refusal::invalid("the token has no `hd` claim, which must be `ops.example`"),
                "identity-provider token claims",
            ),
            (
                Refusal::invalid("the bearer token is not a well-formed JWT: header"),
                "identity-provider token malformed",
            ),
            (
                Refusal::unbound("none of the groups [a] is bound to a platform role"),
                "identity-provider groups bound to no role",
            ),
            (Refusal::unavailable("GET https://idp/jwks: timeout".into()), "identity-provider keys unavailable"),
        ];
        for (refusal, category) in cases {
            assert_eq!(refusal.category(), category, "{refusal}");
        }
    }
}

/// Tokens whose signature verified, by SHA-256 of the whole token, each for `VERIFIED_FOR` seconds:
/// a token is the same bytes each time, so its signature is too. Everything else (the key still
/// published, issuer, audience, expiry, groups) is checked on every request.
#[derive(Default)]
struct Verified(papaya::HashMap<[u8; 32], i64>);

/// How long a verified signature is remembered.
const VERIFIED_FOR: i64 = 300;
/// Most signatures remembered; past it, the expired ones are forgotten, and all if none had.
const VERIFIED_MAX: usize = 10_000;

impl Verified {
    fn digest(token: &str) -> [u8; 32] {
        use sha2::Digest;
        sha2::Sha256::digest(token.as_bytes()).into()
    }

    fn holds(&self, token: &str, now: i64) -> bool {
        self.0.pin().get(&Self::digest(token)).is_some_and(|until| *until > now)
    }

    fn remember(&self, token: &str, now: i64) {
        let map = self.0.pin();
        if map.len() >= VERIFIED_MAX {
            map.retain(|_, until| *until > now);
            if map.len() >= VERIFIED_MAX {
                map.clear();
            }
        }
        map.insert(Self::digest(token), now + VERIFIED_FOR);
    }
}

#[cfg(test)]
mod verified_tests {
    use super::{VERIFIED_FOR, VERIFIED_MAX, Verified};

    #[test]
    fn a_signature_is_remembered_for_a_while_and_the_memory_is_bounded() {
        let verified = Verified::default();
        assert!(!verified.holds("a.b.c", 100));
        verified.remember("a.b.c", 100);
        assert!(verified.holds("a.b.c", 100 + VERIFIED_FOR - 1));
        assert!(!verified.holds("a.b.c", 100 + VERIFIED_FOR));
        assert!(!verified.holds("a.b.d", 100), "another token is another signature");
        for i in 0..VERIFIED_MAX + 5 {
            verified.remember(&format!("t{i}"), 200);
        }
        assert!(verified.0.pin().len() <= VERIFIED_MAX);
    }
}
